//! Progress reporting: the library never prints; callers implement [`Progress`].

use rbuild_oci::Digest;

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
}

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
