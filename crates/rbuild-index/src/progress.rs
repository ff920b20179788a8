//! Progress reporting: the library never prints; the caller implements [`Progress`].

use rbuild_oci::Digest;
use rbuild_oci::progress::{Activity, Event};

/// Receives events about wheel downloads. Every method has a default that passes the event on to
/// [`Progress::event`] in rbuild's shared vocabulary ([`rbuild_oci::progress::Event`]), whose own
/// default ignores it: an implementation overrides either `event` (and sees everything) or only
/// the methods it shows. Calls may come from several downloads interleaved (up to the
/// configured concurrency), always from the task that awaits [`crate::IndexClient::download_all`].
pub trait Progress: Send + Sync {
    /// A download starts (again, if it is retried from the beginning). `size` when known.
    fn started(&self, filename: &str, size: Option<u64>) {
        self.event(&Event::Started {
            activity: Activity::WheelDownload,
            id: filename.to_string(),
            platform: None,
            total: size,
        });
    }
    /// `n` more bytes of `filename` arrived.
    fn bytes(&self, filename: &str, n: u64) {
        self.event(&Event::Advanced {
            activity: Activity::WheelDownload,
            id: filename.to_string(),
            n,
        });
    }
    /// `filename` was downloaded (or copied from a find-links directory), verified and stored.
    fn finished(&self, filename: &str, sha256: &Digest, size: u64) {
        let _ = (sha256, size);
        self.event(&Event::Finished {
            activity: Activity::WheelDownload,
            id: filename.to_string(),
        });
    }
    /// `filename` was already in the store: no request was made for it.
    fn cached(&self, filename: &str, sha256: &Digest) {
        self.event(&Event::Info {
            message: format!("{filename} is in the store ({sha256})"),
        });
    }
    /// A request failed and is retried after a pause. `url` is redacted.
    fn retrying(&self, url: &str, attempt: u32, reason: &str) {
        self.event(&Event::Info {
            message: format!("retrying {url} (attempt {attempt}): {reason}"),
        });
    }
    /// Something the user should know that does not stop the download (e.g. a hash taken from the
    /// index because the lock has none). URLs in it are redacted.
    fn warning(&self, message: &str) {
        self.event(&Event::Warning {
            message: message.to_string(),
        });
    }
    /// Every event, in the shared vocabulary (the other methods' defaults call this).
    fn event(&self, event: &Event) {
        let _ = event;
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Collect(Mutex<Vec<Event>>);
    impl Progress for Collect {
        fn event(&self, e: &Event) {
            self.0.lock().unwrap().push(e.clone());
        }
    }

    #[test]
    fn old_methods_arrive_as_shared_events() {
        let c = Collect::default();
        c.started("a-1-py3-none-any.whl", Some(10));
        c.bytes("a-1-py3-none-any.whl", 10);
        c.finished("a-1-py3-none-any.whl", &Digest::of(b""), 10);
        c.warning("careful");
        let got = c.0.into_inner().unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(
            got[0],
            Event::Started {
                activity: Activity::WheelDownload,
                id: "a-1-py3-none-any.whl".into(),
                platform: None,
                total: Some(10)
            }
        );
        assert_eq!(
            got[3],
            Event::Warning {
                message: "careful".into()
            }
        );
    }
}
