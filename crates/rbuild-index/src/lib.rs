//! Package-index client (PEP 691/503, find-links) and verified parallel wheel downloads into the content store.
