//! Progress: what a build reports to its caller (the library never prints).

use std::sync::Arc;
use std::time::Instant;

use rbuild_oci::Digest;

/// Receives what the build does; the library never prints.
pub trait BuildProgress: Send + Sync {
    /// A step finished (`what` is one line, e.g. "resolved base ... in 0.2 s").
    fn step(&self, platform: &str, step: &str, detail: &str, seconds: f64) {
        let _ = (platform, step, detail, seconds);
    }
    /// Something the user should know (e.g. a wheel conflict).
    fn warning(&self, message: &str) {
        let _ = message;
    }
    /// Verbose information (shown at `-v`).
    fn info(&self, message: &str) {
        let _ = message;
    }
    /// A wheel download started (again, when retried); `size` when known.
    fn download_started(&self, filename: &str, size: Option<u64>) {
        let _ = (filename, size);
    }
    /// `n` more bytes of `filename` arrived.
    fn download_advanced(&self, filename: &str, n: u64) {
        let _ = (filename, n);
    }
    /// `filename` is in the store, verified.
    fn download_finished(&self, filename: &str) {
        let _ = filename;
    }
}

/// A [`BuildProgress`] that ignores everything.
pub struct NoBuildProgress;

impl BuildProgress for NoBuildProgress {}

/// Passes the index client's warnings on to the build's progress.
pub(crate) struct Warn(pub(crate) Arc<dyn BuildProgress>);

impl rbuild_index::Progress for Warn {
    fn warning(&self, message: &str) {
        self.0.warning(message);
    }
    fn started(&self, filename: &str, size: Option<u64>) {
        self.0.download_started(filename, size);
    }
    fn bytes(&self, filename: &str, n: u64) {
        self.0.download_advanced(filename, n);
    }
    fn finished(&self, filename: &str, _sha256: &Digest, _size: u64) {
        self.0.download_finished(filename);
    }
}

/// Seconds since `t`.
pub(crate) fn elapsed(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}
