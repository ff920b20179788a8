//! One progress vocabulary for every long step of rbuild: blob downloads and uploads (registry),
//! wheel downloads (index), and the build's own steps (install, compress, bytecode, sdist build).
//!
//! The libraries never print: they send [`Event`]s to a [`Reporter`] the caller owns. A caller
//! that draws progress bars keys them by `id` (unique among the work running at one time): every
//! `Started` is followed by `Advanced`/`Restarted` events with the same `id` and one `Finished`
//! (or nothing, when the operation failed and the error is returned instead).
//!
//! ```
//! use rbuild_oci::progress::{Activity, Event, Reporter};
//! struct Count(std::sync::atomic::AtomicU64);
//! impl Reporter for Count {
//!     fn report(&self, e: &Event) {
//!         if let Event::Advanced { n, .. } = e {
//!             self.0.fetch_add(*n, std::sync::atomic::Ordering::Relaxed);
//!         }
//!     }
//! }
//! let c = Count(Default::default());
//! c.report(&Event::Started { activity: Activity::WheelDownload, id: "a.whl".into(), platform: None, total: Some(3) });
//! c.report(&Event::Advanced { activity: Activity::WheelDownload, id: "a.whl".into(), n: 3 });
//! assert_eq!(c.0.into_inner(), 3);
//! ```

use std::time::Duration;

/// What kind of work an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Activity {
    /// A blob downloaded from a registry (a base image layer, a config). Counts bytes.
    BlobDownload,
    /// A blob uploaded to a registry. Counts bytes.
    BlobUpload,
    /// A wheel downloaded from an index or copied from a find-links directory. Counts bytes.
    WheelDownload,
    /// Wheels installed into the dependency layer (written and compressed in the same pass).
    Install,
    /// A layer written and compressed (the app layer, a user layer).
    Compress,
    /// Python bytecode compiled with the target's own interpreter.
    Bytecode,
    /// A wheel built from a source distribution (PEP 517).
    SdistBuild,
    /// Reading the base image (target detection).
    Resolve,
}

impl Activity {
    /// A short lowercase verb-noun for progress lines (`download`, `install`, ...).
    pub fn label(self) -> &'static str {
        match self {
            Activity::BlobDownload => "download",
            Activity::BlobUpload => "upload",
            Activity::WheelDownload => "wheel",
            Activity::Install => "install",
            Activity::Compress => "compress",
            Activity::Bytecode => "bytecode",
            Activity::SdistBuild => "sdist",
            Activity::Resolve => "base",
        }
    }

    /// True when `total` and `n` of its events are bytes (transfers); false for steps whose
    /// `total`, when given, counts items (wheels, files).
    pub fn counts_bytes(self) -> bool {
        matches!(
            self,
            Activity::BlobDownload | Activity::BlobUpload | Activity::WheelDownload
        )
    }
}

/// Something that happened during a long operation.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Work started (again, when a transfer is retried from the start).
    Started {
        /// What kind of work.
        activity: Activity,
        /// Which one: a digest, a wheel file name, a layer name.
        id: String,
        /// The platform it is for (`linux/amd64`), when it is for one.
        platform: Option<String>,
        /// Its size (bytes for transfers, items for steps), when known.
        total: Option<u64>,
    },
    /// `n` more bytes (or items) done since the last event for the same work.
    Advanced {
        /// What kind of work.
        activity: Activity,
        /// Which one.
        id: String,
        /// How many more.
        n: u64,
    },
    /// A transfer was tried again; its count goes on from `from` (0: from the start).
    Restarted {
        /// What kind of work.
        activity: Activity,
        /// Which one.
        id: String,
        /// Where the new attempt starts.
        from: u64,
    },
    /// Work finished.
    Finished {
        /// What kind of work.
        activity: Activity,
        /// Which one.
        id: String,
    },
    /// A step of the build finished: one line for the log (`[linux/amd64] deps installed ...`).
    Step {
        /// The platform, or `all`.
        platform: String,
        /// The step's short name (`base`, `download`, `deps`, `app`, ...).
        step: String,
        /// What it did, one line.
        detail: String,
        /// How long it took.
        elapsed: Duration,
    },
    /// Something the user should know that does not stop the work.
    Warning {
        /// One line (or several, for lists).
        message: String,
    },
    /// Something slow the user should see while it happens (a retry, a wait for a server that
    /// does not answer): shown at default verbosity (not with `-q`), not kept as a warning.
    Notice {
        /// One line.
        message: String,
    },
    /// Verbose information (`-v`).
    Info {
        /// One line.
        message: String,
    },
}

/// Receives [`Event`]s, possibly from several tasks at once.
pub trait Reporter: Send + Sync {
    /// Called for every event.
    fn report(&self, event: &Event);
}

/// A [`Reporter`] that ignores every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoReporter;

impl Reporter for NoReporter {
    fn report(&self, _event: &Event) {}
}

impl<R: Reporter + ?Sized> Reporter for std::sync::Arc<R> {
    fn report(&self, event: &Event) {
        (**self).report(event)
    }
}

/// A size in binary units, the one style rbuild uses everywhere: `999 B`, `3.4 KiB`, `42.1 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `1 file`, `2 files`: `n` and the singular or plural noun.
pub fn count(n: usize, singular: &str, plural: &str) -> String {
    if n == 1 {
        format!("1 {singular}")
    } else {
        format!("{n} {plural}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(3_565_158), "3.4 MiB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn counts_are_singular_or_plural() {
        assert_eq!(count(1, "file", "files"), "1 file");
        assert_eq!(count(0, "file", "files"), "0 files");
        assert_eq!(count(2, "wheel", "wheels"), "2 wheels");
    }

    #[test]
    fn transfers_count_bytes_steps_do_not() {
        assert!(Activity::WheelDownload.counts_bytes());
        assert!(Activity::BlobUpload.counts_bytes());
        assert!(!Activity::Install.counts_bytes());
        assert_eq!(Activity::SdistBuild.label(), "sdist");
    }
}
