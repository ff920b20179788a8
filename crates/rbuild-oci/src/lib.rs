//! The OCI image model used everywhere in rbuild.
//!
//! - [`Digest`]: validated `sha256:` content digests and streaming hashers;
//! - [`MediaType`]: OCI and Docker schema 2 media types;
//!
//! Everything rbuild writes itself is serialized with [`canonical_json`], so the same image always has
//! the same digest; manifests that rbuild only copies keep their exact bytes.

mod digest;

pub use digest::{Digest, DigestError, Hasher, HashingReader, HashingWriter};
