//! Verified, parallel wheel (and source distribution) downloads into the content store.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use rbuild_oci::{BlobWriter, Digest, Store, StoreError};
use rbuild_python::wheel_name::WheelFilename;
use rbuild_python::{normalize_name, validate_name};
use url::Url;

use crate::client::{Failure, IndexClient, network_failure, status_failure};
use crate::error::{Error, Result};
use crate::netrc::Credentials;
use crate::progress::Progress;
use crate::redact::{redact_raw, redact_url};

/// One wheel to put in the store, as a lockfile pins it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WheelRequest {
    /// The package name (validated and normalized before anything else happens).
    pub name: String,
    /// The version; when it parses, the wheel file name must have the same (PEP 440) version.
    pub version: String,
    /// The wheel file name (or a source distribution's, `name-version.tar.gz`); its name part
    /// must be `name`.
    pub filename: String,
    /// Where to download it, when the lock says. `None`: looked up on the indexes by file name. A
    /// `#sha256=` fragment counts as the hash when `sha256` is `None`.
    pub url: Option<String>,
    /// A local file to use instead of a download (pylock `path`, already made safe by the lock reader).
    pub path: Option<PathBuf>,
    /// The index the lock names for this package; searched before the configured ones.
    pub index: Option<String>,
    /// The expected sha256. `None` only for requirements files without hashes: the hash then comes
    /// from the index (with a warning), or the request fails with `require_hashes`.
    pub sha256: Option<Digest>,
    /// The expected size, when the lock records it.
    pub size: Option<u64>,
}

impl WheelRequest {
    fn describe(&self) -> String {
        if self.version.is_empty() {
            format!("{} ({})", self.name, self.filename)
        } else {
            format!("{}=={} ({})", self.name, self.version, self.filename)
        }
    }
}

/// A wheel that is in the store, verified.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DownloadedWheel {
    /// The package name, normalized.
    pub name: String,
    /// The version as requested.
    pub version: String,
    /// The wheel file name.
    pub filename: String,
    /// Its sha256 (the store key).
    pub sha256: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The blob in the store.
    pub path: PathBuf,
    /// Where it came from this time (redacted URL, or a `file:` URL for a local file); `None` when it
    /// was already in the store and no lookup was needed.
    pub source: Option<String>,
    /// True when it was downloaded or copied in this call; false when it was already in the store.
    pub fetched: bool,
}

/// The store namespace of `(name, filename) → sha256` records.
const RECORDS: &str = "wheel-files";

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Eq)]
struct Record {
    name: String,
    filename: String,
    sha256: Digest,
    size: u64,
}

fn record_key(norm: &str, filename: &str) -> String {
    Digest::of(format!("{norm}\n{filename}").as_bytes()).hex()
}

/// The sha256 and size recorded for wheel `filename` of package `name` by an earlier download into
/// `store`, if the blob is still there. This is how an offline run finds a wheel that its lock does
/// not pin by hash.
pub fn stored_wheel(store: &Store, name: &str, filename: &str) -> Result<Option<(Digest, u64)>> {
    validate_name(name)?;
    let norm = normalize_name(name);
    let Some(bytes) = store.get_key(RECORDS, &record_key(&norm, filename))? else {
        return Ok(None);
    };
    let Ok(rec) = serde_json::from_slice::<Record>(&bytes) else {
        return Ok(None);
    };
    if rec.name != norm || rec.filename != filename || !store.contains(&rec.sha256) {
        return Ok(None);
    }
    Ok(Some((rec.sha256, rec.size)))
}

fn remember(store: &Store, norm: &str, filename: &str, sha256: Digest, size: u64) -> Result<()> {
    let rec = Record {
        name: norm.to_string(),
        filename: filename.to_string(),
        sha256,
        size,
    };
    let bytes = serde_json::to_vec(&rec).expect("record serializes");
    let key = record_key(norm, filename);
    if store.get_key(RECORDS, &key)?.as_deref() != Some(&bytes[..]) {
        store.put_key(RECORDS, &key, &bytes)?;
    }
    Ok(())
}

/// A request after validation.
struct Prepared {
    req: WheelRequest,
    norm: String,
    url: Option<Url>,
    /// Credentials that came with the lock's URL or index, for that host.
    creds: Option<(Url, Credentials)>,
    sha256: Option<Digest>,
}

fn strip_credentials(url: &mut Url) -> Option<(Url, Credentials)> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let creds = Credentials {
        username: url.username().to_string(),
        password: url.password().map(str::to_string),
    };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some((url.clone(), creds))
}

fn map_commit_error(e: StoreError, filename: &str, from: &str) -> Error {
    match e {
        StoreError::DigestMismatch {
            expected,
            actual,
            size,
        } => Error::HashMismatch {
            filename: filename.to_string(),
            url: from.to_string(),
            expected,
            actual,
            size,
        },
        StoreError::SizeMismatch {
            expected, actual, ..
        } => Error::SizeMismatch {
            filename: filename.to_string(),
            url: from.to_string(),
            expected,
            actual,
        },
        other => Error::Store(other),
    }
}

/// Commits a written blob on the blocking pool: against `expected` when known, else under its own
/// digest. Returns the digest, size and path; a mismatch stores nothing.
async fn commit(
    writer: BlobWriter,
    store: &Store,
    expected: Option<Digest>,
    size: Option<u64>,
    filename: &str,
    from: &str,
) -> Result<(Digest, u64, PathBuf)> {
    let len = writer.len();
    let store = store.clone();
    let (filename, from) = (filename.to_string(), from.to_string());
    tokio::task::spawn_blocking(move || {
        let mapped = |e| map_commit_error(e, &filename, &from);
        match expected {
            Some(d) => Ok((d, len, writer.commit_expecting(&d, size).map_err(mapped)?)),
            None => {
                if let Some(want) = size.filter(|w| *w != len) {
                    drop(writer); // removes the temp file
                    return Err(Error::SizeMismatch {
                        filename,
                        url: from,
                        expected: want,
                        actual: len,
                    });
                }
                let (d, n) = writer.commit().map_err(mapped)?;
                Ok((d, n, store.blob_path(&d)))
            }
        }
    })
    .await
    .expect("commit task panicked")
}

/// The normalized name and the version of a source distribution's file name
/// (`name-version.tar.gz`, `.zip`, `.tar.bz2`, `.tgz`); `None` for any other file (a wheel).
/// The version is `None` when it does not parse (the name check still applies).
fn sdist_name_version(filename: &str) -> Option<(String, Option<rbuild_python::version::Version>)> {
    let stem = [".tar.gz", ".zip", ".tar.bz2", ".tgz"]
        .iter()
        .find_map(|s| filename.strip_suffix(s))?;
    let (name, version) = stem.rsplit_once('-')?;
    Some((normalize_name(name), version.parse().ok()))
}

impl IndexClient {
    fn prepare(&self, req: WheelRequest) -> Result<Prepared> {
        validate_name(&req.name)?;
        let norm = normalize_name(&req.name);
        if req.filename.contains(['/', '\\']) || req.filename.starts_with('.') {
            return Err(Error::InvalidFilename {
                name: req.name.clone(),
                filename: req.filename.clone(),
                reason: "a file name must not contain a path".to_string(),
            });
        }
        let (file_name, file_version) = match sdist_name_version(&req.filename) {
            Some((n, v)) => (n, v),
            None => {
                let wheel =
                    WheelFilename::parse(&req.filename).map_err(|e| Error::InvalidFilename {
                        name: req.name.clone(),
                        filename: req.filename.clone(),
                        reason: e.reason,
                    })?;
                (wheel.name.clone(), Some(wheel.version.clone()))
            }
        };
        if file_name != norm {
            return Err(Error::InvalidFilename {
                name: req.name.clone(),
                filename: req.filename.clone(),
                reason: format!("it is a file of package `{file_name}`"),
            });
        }
        if let Ok(want) = req.version.parse::<rbuild_python::version::Version>()
            && let Some(have) = &file_version
            && want != *have
        {
            return Err(Error::InvalidFilename {
                name: req.name.clone(),
                filename: req.filename.clone(),
                reason: format!("it is version {have}, not {}", req.version),
            });
        }
        let mut sha256 = req.sha256;
        let mut creds = None;
        let url = match &req.url {
            None => None,
            Some(raw) => {
                let mut url = Url::parse(raw).map_err(|e| Error::InvalidUrl {
                    url: redact_raw(raw),
                    reason: e.to_string(),
                })?;
                if let Some(frag) = url
                    .fragment()
                    .and_then(|f| f.split('&').find_map(|kv| kv.strip_prefix("sha256=")))
                {
                    let d = Digest::parse(&format!("sha256:{}", frag.to_ascii_lowercase()))
                        .map_err(|_| Error::InvalidUrl {
                            url: redact_url(&url),
                            reason: "its #sha256= fragment is not a sha256".to_string(),
                        })?;
                    sha256.get_or_insert(d);
                }
                url.set_fragment(None);
                creds = strip_credentials(&mut url);
                self.check_transport(&url)?;
                Some(url)
            }
        };
        if let Some(index) = &req.index {
            let mut u = Url::parse(index).map_err(|e| Error::InvalidUrl {
                url: redact_raw(index),
                reason: e.to_string(),
            })?;
            if creds.is_none() {
                creds = strip_credentials(&mut u);
            }
            self.check_transport(&u)?;
        }
        Ok(Prepared {
            req,
            norm,
            url,
            creds,
            sha256,
        })
    }

    /// Puts every requested wheel in `store`, verified, and returns them in request order.
    ///
    /// - A wheel whose sha256 is known and already stored is not requested at all.
    /// - Otherwise it comes from its local `path`, else a find-links directory (when the file there
    ///   has the pinned hash), else its `url`, else the indexes (looked up by file name: the lock's own
    ///   index first, then the configured ones).
    /// - Downloads run in parallel (at most `concurrency`), each streamed into the store and verified
    ///   against its sha256 (and size when known) while it streams; a mismatch stores nothing.
    /// - A request without sha256 takes the hash the index lists, with a [`Progress::warning`]
    ///   (`require_hashes` makes it an error before any request).
    /// - Offline, only the store, local paths and find-links directories are used; what is missing is
    ///   listed in one [`Error::Offline`].
    ///
    /// Every request is validated (names, file names, URLs) before anything else happens. When
    /// several wheels fail, the error lists each ([`Error::Several`]); wheels that succeeded stay in
    /// the store (they are verified).
    pub async fn download_all(
        &self,
        requests: Vec<WheelRequest>,
        store: &Store,
        progress: &dyn Progress,
    ) -> Result<Vec<DownloadedWheel>> {
        let mut prepared = Vec::with_capacity(requests.len());
        let mut errors = Vec::new();
        for r in requests {
            match self.prepare(r) {
                Ok(p) => prepared.push(p),
                Err(e) => errors.push(e),
            }
        }
        if let Some(e) = Error::merge(errors) {
            return Err(e);
        }
        let opts = &self.inner.opts;
        if opts.require_hashes {
            let missing: Vec<String> = prepared
                .iter()
                .filter(|p| p.sha256.is_none())
                .map(|p| p.req.describe())
                .collect();
            if !missing.is_empty() {
                return Err(Error::MissingHashes { wheels: missing });
            }
        }

        let mut results: Vec<Option<DownloadedWheel>> = vec![None; prepared.len()];
        // Identical requests are fetched once.
        let mut first_of: HashMap<(String, Option<Digest>), usize> = HashMap::new();
        let mut duplicates: Vec<(usize, usize)> = Vec::new();
        let mut todo: Vec<usize> = Vec::new();
        for (i, p) in prepared.iter().enumerate() {
            let known = match p.sha256 {
                Some(d) => Some(d),
                None if opts.offline => {
                    stored_wheel(store, &p.norm, &p.req.filename)?.map(|(d, _)| d)
                }
                None => None,
            };
            if let Some(d) = known
                && let Some(size) = store.blob_size(&d)
            {
                remember(store, &p.norm, &p.req.filename, d, size)?;
                progress.cached(&p.req.filename, &d);
                results[i] = Some(DownloadedWheel {
                    name: p.norm.clone(),
                    version: p.req.version.clone(),
                    filename: p.req.filename.clone(),
                    sha256: d,
                    size,
                    path: store.blob_path(&d),
                    source: None,
                    fetched: false,
                });
                continue;
            }
            match first_of.entry((p.req.filename.clone(), p.sha256)) {
                std::collections::hash_map::Entry::Occupied(o) => duplicates.push((i, *o.get())),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(i);
                    todo.push(i);
                }
            }
        }

        if opts.offline {
            let missing: Vec<String> = todo
                .iter()
                .map(|&i| &prepared[i])
                .filter(|p| {
                    p.req.path.is_none() && self.inner.find_links.path_of(&p.req.filename).is_none()
                })
                .map(|p| p.req.describe())
                .collect();
            if !missing.is_empty() {
                return Err(Error::Offline { missing });
            }
        }

        let concurrency = opts.concurrency.max(1);
        let outcomes: Vec<(usize, Result<DownloadedWheel>)> =
            futures::stream::iter(todo.into_iter().map(|i| {
                let p = &prepared[i];
                async move { (i, self.fetch_one(p, store, progress).await) }
            }))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut failed: Vec<(usize, Error)> = Vec::new();
        for (i, outcome) in outcomes {
            match outcome {
                Ok(w) => results[i] = Some(w),
                Err(e) => failed.push((i, e)),
            }
        }
        failed.sort_by_key(|(i, _)| *i);
        if let Some(e) = Error::merge(failed.into_iter().map(|(_, e)| e).collect()) {
            return Err(e);
        }
        for (dup, orig) in duplicates {
            let mut w = results[orig].clone().expect("original fetched");
            w.version = prepared[dup].req.version.clone();
            results[dup] = Some(w);
        }
        Ok(results
            .into_iter()
            .map(|w| w.expect("every request has a result"))
            .collect())
    }

    fn done(
        &self,
        p: &Prepared,
        store: &Store,
        (sha256, size, path): (Digest, u64, PathBuf),
        source: String,
        fetched: bool,
        progress: &dyn Progress,
    ) -> Result<DownloadedWheel> {
        remember(store, &p.norm, &p.req.filename, sha256, size)?;
        if fetched {
            progress.finished(&p.req.filename, &sha256, size);
        } else {
            progress.cached(&p.req.filename, &sha256);
        }
        Ok(DownloadedWheel {
            name: p.norm.clone(),
            version: p.req.version.clone(),
            filename: p.req.filename.clone(),
            sha256,
            size,
            path,
            source: Some(source),
            fetched,
        })
    }

    async fn fetch_one(
        &self,
        p: &Prepared,
        store: &Store,
        progress: &dyn Progress,
    ) -> Result<DownloadedWheel> {
        let file_url = |path: &Path| {
            Url::from_file_path(path)
                .map(|u| u.to_string())
                .unwrap_or_else(|_| path.display().to_string())
        };
        // A local file named by the lock.
        if let Some(path) = &p.req.path {
            if p.sha256.is_none() {
                progress.warning(&format!(
                    "no sha256 for {}: the local file {} is used unverified",
                    p.req.describe(),
                    path.display()
                ));
            }
            let got = import_local(path, p, p.sha256, store, progress).await?;
            return self.done(p, store, got, file_url(path), true, progress);
        }
        // A find-links file with the pinned hash (any file of that name when nothing is pinned).
        let mut local_mismatch = None;
        if let Some(path) = self.inner.find_links.path_of(&p.req.filename) {
            let (d, size) = self.inner.find_links.hash(&path).await?;
            match p.sha256 {
                Some(want) if want != d => {
                    progress.warning(&format!(
                        "{} has {d}, but the lock pins {want} for it: not used",
                        path.display()
                    ));
                    local_mismatch = Some(Error::HashMismatch {
                        filename: p.req.filename.clone(),
                        url: path.display().to_string(),
                        expected: want,
                        actual: d,
                        size,
                    });
                }
                pinned => {
                    if pinned.is_none() {
                        progress.warning(&format!(
                            "no sha256 for {} in the lock: using {} ({d})",
                            p.req.describe(),
                            path.display()
                        ));
                    }
                    let got = if store.contains(&d) {
                        (d, size, store.blob_path(&d))
                    } else {
                        import_local(&path, p, Some(d), store, progress).await?
                    };
                    return self.done(p, store, got, file_url(&path), true, progress);
                }
            }
        }
        if self.inner.opts.offline {
            return Err(local_mismatch.unwrap_or_else(|| Error::Offline {
                missing: vec![p.req.describe()],
            }));
        }
        // The lock's URL, or the indexes.
        let (url, expected) = match &p.url {
            Some(u) => {
                if p.sha256.is_none() {
                    progress.warning(&format!(
                        "no sha256 for {}: the download from {} cannot be verified",
                        p.req.describe(),
                        redact_url(u)
                    ));
                }
                (u.clone(), p.sha256)
            }
            None => {
                let found = match self
                    .find_on_indexes(&p.norm, &p.req.filename, p.req.index.as_deref())
                    .await
                {
                    Ok(f) => f,
                    Err(e @ (Error::FileNotFound { .. } | Error::ProjectNotFound { .. })) => {
                        return Err(local_mismatch.unwrap_or(e));
                    }
                    Err(e) => return Err(e),
                };
                let url = Url::parse(&found.url).map_err(|e| Error::InvalidUrl {
                    url: redact_raw(&found.url),
                    reason: e.to_string(),
                })?;
                let expected = match (p.sha256, found.sha256) {
                    (Some(want), Some(listed)) if want != listed => {
                        return Err(Error::ListedHashMismatch {
                            filename: p.req.filename.clone(),
                            url: redact_url(&url),
                            expected: want,
                            listed,
                        });
                    }
                    (Some(want), _) => Some(want),
                    (None, Some(listed)) => {
                        progress.warning(&format!(
                            "no sha256 for {} in the lock: using the one {} lists ({listed})",
                            p.req.describe(),
                            found.source
                        ));
                        Some(listed)
                    }
                    (None, None) => {
                        progress.warning(&format!(
                            "no sha256 for {} in the lock nor on {}: the download cannot be verified",
                            p.req.describe(),
                            found.source
                        ));
                        None
                    }
                };
                (url, expected)
            }
        };
        // The hash the index gave may already be stored.
        if let Some(d) = expected
            && let Some(size) = store.blob_size(&d)
        {
            return self.done(
                p,
                store,
                (d, size, store.blob_path(&d)),
                redact_url(&url),
                false,
                progress,
            );
        }
        self.check_transport(&url)?;
        let got = self.download(&url, p, expected, store, progress).await?;
        self.done(p, store, got, redact_url(&url), true, progress)
    }

    /// Streams `url` into the store, verifying it; retried on transient failures. A transfer cut
    /// off part way resumes where it stopped (`Range: bytes=N-`, used when the server answers
    /// `206` from that offset; from the start otherwise); the hash is checked over the whole file.
    async fn download(
        &self,
        url: &Url,
        p: &Prepared,
        expected: Option<Digest>,
        store: &Store,
        progress: &dyn Progress,
    ) -> Result<(Digest, u64, PathBuf)> {
        let http = self.http()?;
        let filename = p.req.filename.as_str();
        let want_size = p.req.size;
        let shown = redact_url(url);
        // What failed attempts received (kept across them; they run one after another).
        let partial = rbuild_http::Partial::new();
        let partial = &partial;
        self.with_retries(url, Some(progress), |_| {
            let http = http.clone();
            let shown = shown.clone();
            async move {
                let mut req = self.get(&http, url, p.creds.as_ref());
                if let Some(range) = rbuild_http::download::range_header(partial.offset()) {
                    req = req.header("range", range);
                }
                let resp = self.send(req, url).await?;
                if !resp.status().is_success() {
                    // What was received stays for the next attempt, if there is one.
                    return Err(status_failure(url, &resp));
                }
                let watch = WheelWatch {
                    progress,
                    filename,
                    size: want_size,
                };
                let expected = rbuild_http::Expected {
                    digest: expected,
                    size: want_size,
                };
                rbuild_http::receive(resp, partial, store, expected, &watch)
                    .await
                    .map_err(|e| download_failure(e, url, &shown, filename))
            }
        })
        .await
    }
}

/// Wheel progress for one transfer attempt.
struct WheelWatch<'a> {
    progress: &'a dyn Progress,
    filename: &'a str,
    size: Option<u64>,
}

impl rbuild_http::Watch for WheelWatch<'_> {
    fn started(&self, from: u64, size: Option<u64>) {
        if from == 0 {
            self.progress.started(self.filename, self.size.or(size));
        }
    }

    fn advanced(&self, bytes: u64) {
        self.progress.bytes(self.filename, bytes);
    }
}

/// This crate's failure for a failed wheel transfer: broken-off transfers and answers from the
/// wrong offset are retried; a wrong size or hash is not.
fn download_failure(
    e: rbuild_http::DownloadError,
    url: &Url,
    shown: &str,
    filename: &str,
) -> Failure {
    use rbuild_http::DownloadError as D;
    match e {
        D::Interrupted {
            source: Some(source),
            ..
        } => network_failure(url, &source),
        e @ D::Interrupted { source: None, .. } => Failure::Retry(
            Error::Network {
                url: shown.to_string(),
                attempts: 1,
                reason: e.to_string(),
            },
            None,
        ),
        D::WrongRange { offset, .. } => Failure::Retry(
            Error::Status {
                url: shown.to_string(),
                status: 206,
                hint: format!("; asked for bytes {offset}- and got another range"),
            },
            None,
        ),
        D::Size { expected, actual } => Failure::Fatal(Error::SizeMismatch {
            filename: filename.to_string(),
            url: shown.to_string(),
            expected,
            actual,
        }),
        D::Store(e) => Failure::Fatal(map_commit_error(e, filename, shown)),
    }
}

/// Copies a local file into the store (hashing it in the same pass) on the blocking pool.
async fn import_local(
    path: &Path,
    p: &Prepared,
    expected: Option<Digest>,
    store: &Store,
    progress: &dyn Progress,
) -> Result<(Digest, u64, PathBuf)> {
    let err = |e: io::Error| Error::LocalFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let size = std::fs::metadata(path).map_err(err)?.len();
    progress.started(&p.req.filename, Some(size));
    let (src, dst) = (path.to_path_buf(), store.clone());
    let writer = tokio::task::spawn_blocking(move || -> io::Result<BlobWriter> {
        let mut file = std::fs::File::open(&src)?;
        let mut w = dst.writer().map_err(io::Error::other)?;
        io::copy(&mut file, &mut w)?;
        Ok(w)
    })
    .await
    .expect("copy task panicked")
    .map_err(err)?;
    progress.bytes(&p.req.filename, writer.len());
    commit(
        writer,
        store,
        expected,
        p.req.size,
        &p.req.filename,
        &path.display().to_string(),
    )
    .await
}

#[cfg(test)]
mod sdist_name_tests {
    use super::sdist_name_version;

    #[test]
    fn sdist_file_names_give_name_and_version() {
        let (n, v) = sdist_name_version("docopt-0.6.2.tar.gz").unwrap();
        assert_eq!(n, "docopt");
        assert_eq!(v.unwrap().to_string(), "0.6.2");
        let (n, _) = sdist_name_version("Python_Dateutil-2.8.zip").unwrap();
        assert_eq!(n, "python-dateutil");
        assert!(sdist_name_version("docopt-0.6.2-py3-none-any.whl").is_none());
    }
}
