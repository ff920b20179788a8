//! Progress: what a build reports to its caller (the library never prints).
//!
//! Everything a build reports is also an [`Event`] of rbuild's one progress vocabulary (shared
//! with the registry and index clients): implement [`BuildProgress::event`] alone to see all of
//! it, including the long steps that have no method of their own (install, compress, bytecode,
//! sdist builds, as [`Event::Started`]/[`Event::Finished`] pairs).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rbuild_oci::Digest;
pub use rbuild_oci::progress::{Activity, Event, Reporter, count, human_size};

/// Receives what the build does; the library never prints.
///
/// Every method's default passes its event on to [`BuildProgress::event`], whose default ignores
/// it: override `event` to see everything, or only the methods you show.
pub trait BuildProgress: Send + Sync {
    /// A step finished (`what` is one line, e.g. "resolved base ... in 0.2 s").
    fn step(&self, platform: &str, step: &str, detail: &str, seconds: f64) {
        self.event(&Event::Step {
            platform: platform.to_string(),
            step: step.to_string(),
            detail: detail.to_string(),
            elapsed: Duration::from_secs_f64(seconds.max(0.0)),
        });
    }
    /// Something the user should know (e.g. a wheel conflict).
    fn warning(&self, message: &str) {
        self.event(&Event::Warning {
            message: message.to_string(),
        });
    }
    /// A statement of what was done that the user should see (not a warning; not with `-q`).
    fn notice(&self, message: &str) {
        self.event(&Event::Notice {
            message: message.to_string(),
        });
    }
    /// Verbose information (shown at `-v`).
    fn info(&self, message: &str) {
        self.event(&Event::Info {
            message: message.to_string(),
        });
    }
    /// A wheel download started (again, when retried); `size` when known.
    fn download_started(&self, filename: &str, size: Option<u64>) {
        self.event(&Event::Started {
            activity: Activity::WheelDownload,
            id: filename.to_string(),
            platform: None,
            total: size,
        });
    }
    /// `n` more bytes of `filename` arrived.
    fn download_advanced(&self, filename: &str, n: u64) {
        self.event(&Event::Advanced {
            activity: Activity::WheelDownload,
            id: filename.to_string(),
            n,
        });
    }
    /// `filename` is in the store, verified.
    fn download_finished(&self, filename: &str) {
        self.event(&Event::Finished {
            activity: Activity::WheelDownload,
            id: filename.to_string(),
        });
    }
    /// Every event, in the shared vocabulary (the other methods' defaults call this).
    fn event(&self, event: &Event) {
        let _ = event;
    }
}

/// Any shared-vocabulary [`Reporter`] is a [`BuildProgress`].
pub struct ReportBuild<R>(pub R);

impl<R: Reporter> BuildProgress for ReportBuild<R> {
    fn event(&self, event: &Event) {
        self.0.report(event);
    }
}

/// Reports `activity` started now and finished when dropped (also when the step fails).
pub(crate) struct Busy<'a> {
    progress: &'a dyn BuildProgress,
    activity: Activity,
    id: String,
}

/// Starts a long step: `let _busy = busy(&*self.progress, Activity::Install, platform, "deps");`.
pub(crate) fn busy<'a>(
    progress: &'a dyn BuildProgress,
    activity: Activity,
    platform: &str,
    what: &str,
) -> Busy<'a> {
    let id = format!("[{platform}] {what}");
    progress.event(&Event::Started {
        activity,
        id: id.clone(),
        platform: Some(platform.to_string()),
        total: None,
    });
    Busy {
        progress,
        activity,
        id,
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.progress.event(&Event::Finished {
            activity: self.activity,
            id: std::mem::take(&mut self.id),
        });
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
    fn cached(&self, filename: &str, _sha256: &Digest) {
        let _ = filename;
    }
    fn retrying(&self, url: &str, attempt: u32, reason: &str) {
        self.0
            .info(&format!("retrying {url} (attempt {attempt}): {reason}"));
    }
}

/// Seconds since `t`.
pub(crate) fn elapsed(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Collect(Mutex<Vec<Event>>);
    impl BuildProgress for Collect {
        fn event(&self, e: &Event) {
            self.0.lock().unwrap().push(e.clone());
        }
    }

    #[test]
    fn every_method_reaches_event_and_busy_pairs_start_and_finish() {
        let c = Collect::default();
        c.step("linux/amd64", "deps", "installed", 1.5);
        c.warning("w");
        {
            let _b = busy(&c, Activity::Install, "linux/amd64", "deps");
        }
        rbuild_index::Progress::started(&Warn(Arc::new(ReportBuild(NoReporterCount))), "x", None);
        let got = c.0.into_inner().unwrap();
        assert_eq!(got.len(), 4);
        assert!(
            matches!(&got[0], Event::Step { step, elapsed, .. } if step == "deps" && *elapsed == Duration::from_millis(1500))
        );
        assert_eq!(
            got[2],
            Event::Started {
                activity: Activity::Install,
                id: "[linux/amd64] deps".into(),
                platform: Some("linux/amd64".into()),
                total: None
            }
        );
        assert_eq!(
            got[3],
            Event::Finished {
                activity: Activity::Install,
                id: "[linux/amd64] deps".into()
            }
        );
    }

    struct NoReporterCount;
    impl Reporter for NoReporterCount {
        fn report(&self, _e: &Event) {}
    }
}
