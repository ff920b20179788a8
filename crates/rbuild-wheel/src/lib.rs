//! Installs wheels into a tar layer without running Python, following the binary distribution format spec.
