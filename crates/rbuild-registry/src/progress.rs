//! Progress reporting: the library never prints; callers implement [`Progress`], or any
//! [`rbuild_oci::progress::Reporter`] wrapped in [`ReportEvents`] (the one event type shared with
//! the index client and the build).

use std::time::Duration;

use rbuild_oci::Digest;
use rbuild_oci::progress::{Activity, Event, Reporter};

/// Something that happened to a blob or manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgressEvent {
    /// A blob download or upload started.
    BlobStarted {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
        /// True for an upload, false for a download.
        upload: bool,
    },
    /// More bytes of a blob were transferred.
    BlobAdvanced {
        /// The blob.
        digest: Digest,
        /// Bytes transferred since the last event for this blob.
        bytes: u64,
    },
    /// A blob transfer was tried again after a retryable failure; its byte count goes on from
    /// `from` (0: it starts again; a download cut off part way may resume where it stopped).
    BlobRestarted {
        /// The blob.
        digest: Digest,
        /// The byte the new attempt starts at.
        from: u64,
    },
    /// A blob transfer finished.
    BlobFinished {
        /// The blob.
        digest: Digest,
        /// True for an upload.
        upload: bool,
    },
    /// A blob did not need transferring (already in the store, or already at the destination).
    BlobSkipped {
        /// The blob.
        digest: Digest,
    },
    /// A blob was mounted from another repository of the same registry.
    BlobMounted {
        /// The blob.
        digest: Digest,
        /// The repository it was mounted from.
        from: String,
    },
    /// A manifest or index was pushed.
    ManifestPushed {
        /// Its digest.
        digest: Digest,
        /// Where (`registry/repo:tag` or `@digest`).
        reference: String,
    },
    /// An operation failed with a transient error and starts again after `delay`.
    Retrying {
        /// The operation (`fetching manifest registry/repo:tag`).
        what: String,
        /// The attempt that failed (from 1).
        attempt: u32,
        /// Attempts in all at most.
        max_attempts: u32,
        /// The pause before the next attempt.
        delay: Duration,
        /// Time since the operation's first attempt started.
        elapsed: Duration,
        /// Why the attempt failed.
        reason: String,
    },
    /// A request has waited this long without progress (told once per request, after
    /// [`rbuild_http::Timeouts::notice_after`]); it fails when `limit` is reached.
    Waiting {
        /// The operation.
        what: String,
        /// The host waited for.
        host: String,
        /// How long it has waited.
        waited: Duration,
        /// The bound it fails at.
        limit: Duration,
    },
}

/// Retries of an operation that has run at least this long are shown at default verbosity
/// ([`Event::Notice`]); quicker ones only in the log (`-v`).
pub const NOTICE_AFTER: Duration = Duration::from_secs(3);

/// Receives [`ProgressEvent`]s, from several tasks at once.
pub trait Progress: Send + Sync {
    /// Called for every event.
    fn event(&self, event: ProgressEvent);
}

/// Ignores every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: ProgressEvent) {}
}

impl ProgressEvent {
    /// The same event in rbuild's shared progress vocabulary; `None` for events that are not
    /// progress of a long step (skipped and mounted blobs, pushed manifests).
    ///
    /// Transfers are keyed by the digest's first 19 characters (`sha256:` + 12 hex digits), the
    /// form users see in logs.
    pub fn to_event(&self) -> Option<Event> {
        let id = |d: &Digest| d.to_string().chars().take(19).collect::<String>();
        let activity = |upload: bool| {
            if upload {
                Activity::BlobUpload
            } else {
                Activity::BlobDownload
            }
        };
        Some(match self {
            ProgressEvent::BlobStarted {
                digest,
                size,
                upload,
            } => Event::Started {
                activity: activity(*upload),
                id: id(digest),
                platform: None,
                total: Some(*size),
            },
            ProgressEvent::BlobAdvanced { digest, bytes } => Event::Advanced {
                // The direction is not in this event; the id identifies the bar.
                activity: Activity::BlobDownload,
                id: id(digest),
                n: *bytes,
            },
            ProgressEvent::BlobRestarted { digest, from } => Event::Restarted {
                activity: Activity::BlobDownload,
                id: id(digest),
                from: *from,
            },
            ProgressEvent::BlobFinished { digest, upload } => Event::Finished {
                activity: activity(*upload),
                id: id(digest),
            },
            ProgressEvent::BlobSkipped { .. }
            | ProgressEvent::BlobMounted { .. }
            | ProgressEvent::ManifestPushed { .. } => Event::Info {
                message: self.describe(),
            },
            ProgressEvent::Retrying { elapsed, delay, .. }
                if elapsed.saturating_add(*delay) >= NOTICE_AFTER =>
            {
                Event::Notice {
                    message: self.describe(),
                }
            }
            ProgressEvent::Retrying { .. } => Event::Info {
                message: self.describe(),
            },
            ProgressEvent::Waiting { .. } => Event::Notice {
                message: self.describe(),
            },
        })
    }

    /// One line for logs (`mounted sha256:... from library/python`).
    pub fn describe(&self) -> String {
        match self {
            ProgressEvent::BlobStarted {
                digest,
                size,
                upload,
            } => format!(
                "{} {digest} ({})",
                if *upload { "uploading" } else { "downloading" },
                rbuild_oci::progress::human_size(*size)
            ),
            ProgressEvent::BlobAdvanced { digest, bytes } => {
                format!("{digest}: {bytes} more bytes")
            }
            ProgressEvent::BlobRestarted { digest, from: 0 } => {
                format!("retrying {digest} from the start")
            }
            ProgressEvent::BlobRestarted { digest, from } => {
                format!("resuming {digest} at byte {from}")
            }
            ProgressEvent::BlobFinished { digest, upload } => format!(
                "{} {digest}",
                if *upload { "uploaded" } else { "downloaded" }
            ),
            ProgressEvent::BlobSkipped { digest } => format!("already present: {digest}"),
            ProgressEvent::BlobMounted { digest, from } => format!("mounted {digest} from {from}"),
            ProgressEvent::ManifestPushed { digest, reference } => {
                format!("pushed {reference} ({digest})")
            }
            ProgressEvent::Retrying {
                what,
                attempt,
                max_attempts,
                delay,
                reason,
                ..
            } => format!(
                "{what}: attempt {attempt} of {max_attempts} failed ({reason}); retrying in {}",
                rbuild_http::timeout::format_secs(*delay)
            ),
            ProgressEvent::Waiting {
                what,
                host,
                waited,
                limit,
            } => format!(
                "{what}: still waiting for {host} after {} (gives up after {}; --timeout SECS or {} changes that)",
                rbuild_http::timeout::format_secs(*waited),
                rbuild_http::timeout::format_secs(*limit),
                rbuild_http::timeout::ENV
            ),
        }
    }
}

/// A [`Progress`] that passes every event on to a shared-vocabulary [`Reporter`]
/// (`Client::with_progress(Arc::new(ReportEvents(reporter)))`).
pub struct ReportEvents<R>(pub R);

impl<R: Reporter> Progress for ReportEvents<R> {
    fn event(&self, event: ProgressEvent) {
        if let Some(e) = event.to_event() {
            self.0.report(&e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Collect(Mutex<Vec<Event>>);
    impl Reporter for Collect {
        fn report(&self, e: &Event) {
            self.0.lock().unwrap().push(e.clone());
        }
    }

    #[test]
    fn blob_events_map_to_shared_events() {
        let d = Digest::of(b"x");
        let c = ReportEvents(Collect(Mutex::new(Vec::new())));
        c.event(ProgressEvent::BlobStarted {
            digest: d,
            size: 5,
            upload: true,
        });
        c.event(ProgressEvent::BlobFinished {
            digest: d,
            upload: true,
        });
        let got = c.0.0.into_inner().unwrap();
        let id = d.to_string()[..19].to_string();
        // A quick retry goes to the log; a slow one and a long wait are shown.
        let retry = |elapsed| ProgressEvent::Retrying {
            what: "fetching manifest r/x:1".into(),
            attempt: 1,
            max_attempts: 5,
            delay: Duration::from_millis(250),
            elapsed,
            reason: "503".into(),
        };
        assert!(matches!(
            retry(Duration::ZERO).to_event(),
            Some(Event::Info { .. })
        ));
        let Some(Event::Notice { message }) = retry(Duration::from_secs(4)).to_event() else {
            panic!("a slow retry is a notice")
        };
        assert!(
            message.contains("attempt 1 of 5") && message.contains("r/x:1"),
            "{message}"
        );
        let waiting = ProgressEvent::Waiting {
            what: "pushing manifest r/x:1".into(),
            host: "h:5000".into(),
            waited: Duration::from_secs(5),
            limit: Duration::from_secs(60),
        };
        let Some(Event::Notice { message }) = waiting.to_event() else {
            panic!("a wait is a notice")
        };
        assert!(
            message.contains("still waiting for h:5000 after 5 s"),
            "{message}"
        );
        assert_eq!(
            got,
            [
                Event::Started {
                    activity: Activity::BlobUpload,
                    id: id.clone(),
                    platform: None,
                    total: Some(5)
                },
                Event::Finished {
                    activity: Activity::BlobUpload,
                    id
                }
            ]
        );
    }
}
