//! Progress reporting: the library never prints; the caller implements [`Progress`].

use rbuild_oci::Digest;

/// Receives events about wheel downloads. Every method has an empty default, so an implementation
/// overrides only what it shows. Calls may come from several downloads interleaved (up to the
/// configured concurrency), always from the task that awaits [`crate::IndexClient::download_all`].
pub trait Progress: Send + Sync {
    /// A download starts (again, if it is retried from the beginning). `size` when known.
    fn started(&self, filename: &str, size: Option<u64>) {
        let _ = (filename, size);
    }
    /// `n` more bytes of `filename` arrived.
    fn bytes(&self, filename: &str, n: u64) {
        let _ = (filename, n);
    }
    /// `filename` was downloaded (or copied from a find-links directory), verified and stored.
    fn finished(&self, filename: &str, sha256: &Digest, size: u64) {
        let _ = (filename, sha256, size);
    }
    /// `filename` was already in the store: no request was made for it.
    fn cached(&self, filename: &str, sha256: &Digest) {
        let _ = (filename, sha256);
    }
    /// A request failed and is retried after a pause. `url` is redacted.
    fn retrying(&self, url: &str, attempt: u32, reason: &str) {
        let _ = (url, attempt, reason);
    }
    /// Something the user should know that does not stop the download (e.g. a hash taken from the
    /// index because the lock has none). URLs in it are redacted.
    fn warning(&self, message: &str) {
        let _ = message;
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
