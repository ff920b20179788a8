//! Resumable, verified downloads into the content store.
//!
//! A client sends the request itself (with its own credentials and redirects), asking for
//! `Range: bytes=N-` when [`Partial::offset`] is not 0 ([`range_header`]), checks the status, and
//! hands the response to [`receive`]. [`receive`] streams the body into a store [`BlobWriter`] on
//! the blocking pool (hashing as it writes, never the whole body in memory) and commits it only
//! when it matches the expected digest and size. Across attempts the [`Partial`] keeps what a
//! transfer that broke off received, so the next attempt asks for the rest:
//!
//! - `206` from the asked offset: the bytes are appended; the hash runs over the whole file;
//! - `200` (a server that ignores `Range`): the kept bytes are dropped and the file starts over;
//! - `206` from another offset: nothing is kept and [`DownloadError::WrongRange`] asks for a
//!   fresh attempt;
//! - the connection breaks, or the body ends before the expected size:
//!   [`DownloadError::Interrupted`], and what arrived stays in the [`Partial`];
//! - too many bytes, or content that does not match its digest: nothing is kept (the temporary
//!   file goes with its writer).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use futures::StreamExt;
use rbuild_oci::{BlobWriter, Digest, Store, StoreError};
use reqwest::header::{CONTENT_RANGE, HeaderMap};

/// What earlier attempts of one download received: a store writer holding the bytes and their
/// running hash. Attempts run one after another; the mutex only lets them share it by reference.
#[derive(Default)]
pub struct Partial(Mutex<Option<BlobWriter>>);

impl std::fmt::Debug for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partial")
            .field("offset", &self.offset())
            .finish()
    }
}

impl Partial {
    /// Nothing received yet.
    pub fn new() -> Self {
        Partial::default()
    }

    /// How many bytes are kept: where the next attempt asks to start.
    pub fn offset(&self) -> u64 {
        self.0
            .lock()
            .expect("partial lock")
            .as_ref()
            .map_or(0, BlobWriter::len)
    }

    fn take(&self) -> Option<BlobWriter> {
        self.0.lock().expect("partial lock").take()
    }

    fn keep(&self, writer: BlobWriter) {
        *self.0.lock().expect("partial lock") = Some(writer);
    }
}

/// The `Range` header value asking for everything from `offset` on (`None` for 0).
pub fn range_header(offset: u64) -> Option<String> {
    (offset > 0).then(|| format!("bytes={offset}-"))
}

/// The first byte offset of a `206` answer's `Content-Range: bytes START-END/TOTAL`.
///
/// ```
/// use rbuild_http::download::content_range_start;
/// let mut h = reqwest::header::HeaderMap::new();
/// assert_eq!(content_range_start(&h), None);
/// h.insert("content-range", "bytes 1000-2999/3000".parse().unwrap());
/// assert_eq!(content_range_start(&h), Some(1000));
/// ```
pub fn content_range_start(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(CONTENT_RANGE)?.to_str().ok()?;
    let range = v.trim().strip_prefix("bytes")?.trim_start();
    range.split('-').next()?.trim().parse().ok()
}

/// What the downloaded bytes must be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// The digest; `None` stores the blob under whatever digest it has.
    pub digest: Option<Digest>,
    /// The size, when known.
    pub size: Option<u64>,
}

/// Told about a transfer as it goes (progress bars).
pub trait Watch: Sync {
    /// The body starts arriving; `from` bytes are kept from earlier attempts (0: from the start);
    /// `size` is the expected size, else the announced one.
    fn started(&self, from: u64, size: Option<u64>) {
        let _ = (from, size);
    }
    /// `bytes` more bytes arrived.
    fn advanced(&self, bytes: u64) {
        let _ = bytes;
    }
}

/// A [`Watch`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoWatch;

impl Watch for NoWatch {}

/// Why one attempt of a download failed. The client maps it to its own error (and decides which
/// are worth another attempt; [`DownloadError::Interrupted`] and [`DownloadError::WrongRange`]
/// always are).
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The transfer broke off (connection error, or the body ended before the expected size);
    /// what arrived is kept in the [`Partial`].
    #[error("the transfer broke off after {received} bytes: {reason}")]
    Interrupted {
        /// Bytes received in all (kept for the next attempt).
        received: u64,
        /// What happened (without the URL).
        reason: String,
        /// The HTTP client's error, when there was one.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// A `206` answer from another offset than asked; nothing is kept.
    #[error(
        "asked for bytes {offset}- and got a partial answer from another offset ({content_range})"
    )]
    WrongRange {
        /// The offset asked for.
        offset: u64,
        /// The answer's `Content-Range` (or `no Content-Range`).
        content_range: String,
    },
    /// More bytes were announced or received than the expected size; nothing is kept.
    #[error("{actual} bytes, but {expected} were expected")]
    Size {
        /// The expected size.
        expected: u64,
        /// The size announced or received (at least).
        actual: u64,
    },
    /// The store failed, or the content does not match its digest or size
    /// ([`StoreError::DigestMismatch`], [`StoreError::SizeMismatch`]); nothing is stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Receives one answer to a download request (status already checked to be a success) into
/// `store`, resuming from `partial` when the answer is the asked-for range. Returns the digest,
/// size and path of the committed blob. See the module docs for what is kept on failure.
pub async fn receive(
    resp: reqwest::Response,
    partial: &Partial,
    store: &Store,
    expected: Expected,
    watch: &dyn Watch,
) -> Result<(Digest, u64, PathBuf), DownloadError> {
    let mut held = partial.take();
    let offset = held.as_ref().map_or(0, BlobWriter::len);
    let status = resp.status().as_u16();
    let resumed =
        offset > 0 && status == 206 && content_range_start(resp.headers()) == Some(offset);
    if !resumed {
        // A whole-file answer starts over; the old bytes go (with their temporary file).
        held = None;
        if status == 206 {
            return Err(DownloadError::WrongRange {
                offset,
                content_range: resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("no Content-Range")
                    .to_string(),
            });
        }
    }
    let announced = resp
        .content_length()
        .map(|n| n + held.as_ref().map_or(0, BlobWriter::len));
    if let (Some(want), Some(got)) = (expected.size, announced)
        && want != got
    {
        return Err(DownloadError::Size {
            expected: want,
            actual: got,
        });
    }
    let writer = match held {
        Some(w) => w,
        None => store.writer()?,
    };
    let mut received = writer.len();
    watch.started(received, expected.size.or(announced));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(16);
    let write_task = tokio::task::spawn_blocking(move || -> std::io::Result<BlobWriter> {
        let mut w = writer;
        while let Some(chunk) = rx.blocking_recv() {
            w.write_all(&chunk)?;
        }
        Ok(w)
    });
    let mut failure = None;
    let mut stream = resp.bytes_stream();
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => {
                received += chunk.len() as u64;
                if let Some(want) = expected.size
                    && received > want
                {
                    failure = Some(DownloadError::Size {
                        expected: want,
                        actual: received,
                    });
                    break;
                }
                let n = chunk.len() as u64;
                if tx.send(chunk).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
                watch.advanced(n);
            }
            Err(e) => {
                failure = Some(DownloadError::Interrupted {
                    received: 0, // filled in below, from what was written
                    reason: "the response body was cut off".to_string(),
                    source: Some(e.without_url()),
                });
                break;
            }
        }
    }
    drop(tx);
    let writer = write_task
        .await
        .expect("blob writer task panicked")
        .map_err(|source| StoreError::Io {
            action: "write",
            path: store.root().join("tmp"),
            source,
        })?;
    match failure {
        // Kept: the next attempt asks for the rest.
        Some(DownloadError::Interrupted { reason, source, .. }) => {
            let received = writer.len();
            partial.keep(writer);
            return Err(DownloadError::Interrupted {
                received,
                reason,
                source,
            });
        }
        // Dropped with its temporary file.
        Some(e) => return Err(e),
        None => {}
    }
    if let Some(want) = expected.size
        && writer.len() < want
    {
        // The body ended early without a transport error: keep what came, ask for the rest.
        let received = writer.len();
        partial.keep(writer);
        return Err(DownloadError::Interrupted {
            received,
            reason: format!("the body ended after {received} of {want} bytes"),
            source: None,
        });
    }
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let len = writer.len();
        match expected.digest {
            Some(d) => Ok((d, len, writer.commit_expecting(&d, expected.size)?)),
            None => {
                let (d, n) = writer.commit()?;
                Ok((d, n, store.blob_path(&d)))
            }
        }
    })
    .await
    .expect("commit task panicked")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, range: Option<&str>, body: &[u8]) -> reqwest::Response {
        let mut b = http::Response::builder()
            .status(status)
            .header("content-length", body.len());
        if let Some(r) = range {
            b = b.header("content-range", r);
        }
        reqwest::Response::from(b.body(body.to_vec()).unwrap())
    }

    /// A `200` announcing `announced` bytes whose body breaks off after `body`.
    fn cut(body: &[u8], announced: usize) -> reqwest::Response {
        let chunks: Vec<std::io::Result<Vec<u8>>> = vec![
            Ok(body.to_vec()),
            Err(std::io::Error::other("connection reset")),
        ];
        let resp = http::Response::builder()
            .status(200)
            .header("content-length", announced)
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .unwrap();
        reqwest::Response::from(resp)
    }

    #[tokio::test]
    async fn resumes_from_the_kept_bytes_and_verifies_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let expected = Expected {
            digest: Some(Digest::of(&body)),
            size: Some(body.len() as u64),
        };
        let partial = Partial::new();
        // The first answer ends early: its bytes are kept.
        let err = receive(
            answer(200, None, &body[..4000]),
            &partial,
            &store,
            expected,
            &NoWatch,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, DownloadError::Size { .. }), "{err}");
        assert_eq!(partial.offset(), 0, "a wrong announced size keeps nothing");
        // A transfer that breaks off: its bytes are kept.
        let err = receive(
            cut(&body[..4000], body.len()),
            &partial,
            &store,
            expected,
            &NoWatch,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, DownloadError::Interrupted { received: 4000, .. }),
            "{err}"
        );
        assert_eq!(partial.offset(), 4000);
        assert_eq!(
            range_header(partial.offset()).as_deref(),
            Some("bytes=4000-")
        );
        // A range from another offset: nothing kept, try again.
        let err = receive(
            answer(206, Some("bytes 10-9999/10000"), &body[10..]),
            &partial,
            &store,
            expected,
            &NoWatch,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, DownloadError::WrongRange { offset: 4000, .. }),
            "{err}"
        );
        assert_eq!(partial.offset(), 0);
        // Kept bytes + the asked-for range = the verified blob.
        receive(
            cut(&body[..6000], body.len()),
            &partial,
            &store,
            expected,
            &NoWatch,
        )
        .await
        .unwrap_err();
        let (d, n, path) = receive(
            answer(206, Some("bytes 6000-9999/10000"), &body[6000..]),
            &partial,
            &store,
            expected,
            &NoWatch,
        )
        .await
        .unwrap();
        assert_eq!((d, n), (Digest::of(&body), 10_000));
        assert_eq!(std::fs::read(path).unwrap(), body);
    }

    #[tokio::test]
    async fn corrupt_content_is_not_stored_and_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let body = vec![1u8; 1000];
        let expected = Expected {
            digest: Some(Digest::of(&body)),
            size: None,
        };
        let partial = Partial::new();
        let err = receive(
            answer(200, None, &[2u8; 1000]),
            &partial,
            &store,
            expected,
            &NoWatch,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, DownloadError::Store(StoreError::DigestMismatch { .. })),
            "{err}"
        );
        assert_eq!(partial.offset(), 0);
        assert!(!store.contains(&Digest::of(&body)));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
