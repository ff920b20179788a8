//! One repository on one registry: manifests and blobs, pulled and pushed.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use rbuild_oci::{Descriptor, Digest, MediaType, RawManifest, Store, StoreError};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use url::Url;

use crate::auth::Scopes;
use crate::client::{Body, Client, Host, Req, origin, read_limited, status_error, transport_error};
use crate::error::{Error, Result};
use crate::progress::ProgressEvent;
use crate::reference::Reference;

mod referrers;

/// The largest manifest rbuild reads (distribution's own limit is 4 MiB).
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// What an operation on a repository needs to be allowed to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read manifests and blobs.
    Pull,
    /// Read and write.
    Push,
    /// Read and write, and mount blobs from this other repository of the same registry (its pull
    /// scope is asked for in the same token).
    PushMountingFrom(String),
    /// Read and write, and mount blobs from any of these other repositories of the same registry
    /// (all their pull scopes are asked for in the same token, so one push of one destination
    /// needs one token). With no repository, the same as [`Access::Push`].
    PushMountingFromAll(Vec<String>),
}

/// The largest blob sent in a single request (`POST /v2/NAME/blobs/uploads/?digest=D` with the
/// body): a registry that does not take uploads that way (distribution 2.8 answers `202` and opens
/// a session) reads and drops that much, which costs less than the round trip it saves elsewhere.
pub const SINGLE_POST_MAX: u64 = 128 * 1024;

/// How [`Repository::begin_upload`] ended.
#[derive(Clone, Debug)]
pub enum UploadStart {
    /// The blob went up in that single request (`201`).
    Done,
    /// The registry opened an upload session; the blob still has to be sent.
    Session(UploadSession),
}

/// An upload session a registry opened (its `Location`).
#[derive(Clone, Debug)]
pub struct UploadSession(Url);

/// The result of a cross-repository mount.
#[derive(Clone, Debug)]
pub enum MountOutcome {
    /// The registry mounted the blob (201).
    Mounted,
    /// The registry could not mount it and opened an upload session instead (202).
    Session(UploadSession),
}

/// A repository on a registry, with the access it was opened for. Cheap to clone.
#[derive(Clone)]
pub struct Repository {
    client: Client,
    host: Arc<Host>,
    reference: Reference,
    scopes: Scopes,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({})", self.reference.name())
    }
}

impl Client {
    /// Opens the repository of `reference` for `access`.
    pub fn repository(&self, reference: &Reference, access: Access) -> Result<Repository> {
        let repo = reference.repository();
        let scopes = match &access {
            Access::Pull => Scopes::pull(repo),
            Access::Push => Scopes::push(repo),
            Access::PushMountingFrom(from) => Scopes::push(repo).and_pull(from),
            Access::PushMountingFromAll(from) => from
                .iter()
                .fold(Scopes::push(repo), |s, from| s.and_pull(from)),
        };
        Ok(Repository {
            client: self.clone(),
            host: self.host(reference.api_host(), reference.registry())?,
            reference: reference.clone(),
            scopes,
        })
    }
}

fn content_type(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn docker_content_digest(resp: &reqwest::Response) -> Option<Digest> {
    named_digest(
        resp.headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok()),
    )
}

/// The digest a `Docker-Content-Digest` header value names (`None`: no header, or not a digest).
fn named_digest(value: Option<&str>) -> Option<Digest> {
    value.and_then(|v| Digest::parse(v.trim()).ok())
}

impl Repository {
    /// The reference this repository was opened with.
    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        self.reference.name()
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The registry host's state (shared by every repository on it).
    pub(crate) fn host_arc(&self) -> Arc<Host> {
        self.host.clone()
    }

    async fn url(&self, path: &str) -> Result<Url> {
        let base = self.client.base(&self.host).await?;
        self.url_on(&base, path)
    }

    /// `path` (`manifests/latest`) in this repository on the registry at `base`.
    fn url_on(&self, base: &Url, path: &str) -> Result<Url> {
        base.join(&format!("v2/{}/{path}", self.reference.repository()))
            .map_err(|e| Error::Invalid(format!("invalid URL for {}: {e}", self.name())))
    }

    async fn send(&self, req: &Req, what: &str) -> Result<reqwest::Response> {
        self.client.send(&self.host, &self.scopes, req, what).await
    }

    fn req(method: Method, url: Url) -> Req {
        Req {
            method,
            url,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    async fn fail(&self, resp: reqwest::Response, what: &str) -> Error {
        status_error(resp, what, &self.host.name).await
    }

    /// Fetches a manifest or index by tag or digest with every manifest and index type in `Accept`.
    /// Its bytes are verified against `identifier` when that is a digest, and against
    /// `Docker-Content-Digest` when the registry sends one. Retried.
    pub async fn get_manifest(&self, identifier: &str) -> Result<RawManifest> {
        let expected = Digest::parse(identifier).ok();
        let sep = if expected.is_some() { "@" } else { ":" };
        let what = format!("fetching manifest {}{sep}{identifier}", self.name());
        self.client
            .retried(&what, |_| async {
                let mut req = Self::req(
                    Method::GET,
                    self.url(&format!("manifests/{identifier}")).await?,
                );
                req.headers
                    .push(("accept", MediaType::ACCEPT_MANIFESTS.join(", ")));
                let resp = self.send(&req, &what).await?;
                if resp.status().as_u16() != 200 {
                    return Err(self.fail(resp, &what).await);
                }
                let ct = content_type(&resp);
                let header_digest = docker_content_digest(&resp);
                let bytes = read_limited(resp, MAX_MANIFEST_SIZE, &what, &self.host.name).await?;
                let raw = RawManifest::new(bytes, ct.as_deref());
                for want in expected.iter().chain(header_digest.iter()) {
                    if raw.digest != *want {
                        return Err(Error::DigestMismatch {
                            what: what.clone(),
                            expected: *want,
                            actual: raw.digest,
                            size: raw.bytes.len() as u64,
                        });
                    }
                }
                if expected.is_none() {
                    self.client.remember_tag(
                        self.reference.registry(),
                        self.reference.repository(),
                        identifier,
                        raw.digest,
                    );
                }
                Ok(raw)
            })
            .await
    }

    /// Asks for a manifest's descriptor (`HEAD`); `None` when it does not exist. Retried.
    pub async fn head_manifest(&self, identifier: &str) -> Result<Option<Descriptor>> {
        let what = format!("checking manifest {}:{identifier}", self.name());
        let found = self
            .client
            .retried(&what, |_| async {
                let mut req = Self::req(
                    Method::HEAD,
                    self.url(&format!("manifests/{identifier}")).await?,
                );
                req.headers
                    .push(("accept", MediaType::ACCEPT_MANIFESTS.join(", ")));
                let resp = self.send(&req, &what).await?;
                match resp.status().as_u16() {
                    200 => {
                        let ct = content_type(&resp);
                        let size = resp.content_length();
                        Ok(Some((docker_content_digest(&resp), ct, size)))
                    }
                    404 => Ok(None),
                    _ => Err(self.fail(resp, &what).await),
                }
            })
            .await?;
        match found {
            None => Ok(None),
            Some((Some(d), Some(ct), Some(size))) => Ok(Some(Descriptor::new(
                ct.split(';').next().unwrap_or("").trim(),
                d,
                size,
            ))),
            // The registry did not say enough; fetch it.
            Some(_) => {
                let raw = self.get_manifest(identifier).await?;
                Ok(Some(Descriptor::new(
                    raw.media_type.clone(),
                    raw.digest,
                    raw.bytes.len() as u64,
                )))
            }
        }
    }

    /// Streams a blob into `store`, verifying digest and size while it streams (never the whole
    /// blob in memory). Redirects (to a CDN) are followed without the registry's credentials.
    /// Skipped when the store has it. Retried: a transfer cut off part way resumes where it stopped
    /// (`Range: bytes=N-`, when the server answers `206` from that offset; from the start
    /// otherwise), and a blob whose digest or size is wrong is fetched again from the start, so a
    /// corrupt or truncated download never enters the store. Returns the blob's path in the store.
    pub async fn fetch_blob(&self, desc: &Descriptor, store: &Store) -> Result<PathBuf> {
        let digest = desc.digest;
        if store.contains(&digest) {
            self.client.progress(ProgressEvent::BlobSkipped { digest });
            return Ok(store.blob_path(&digest));
        }
        let what = format!("fetching blob {digest} from {}", self.name());
        // What earlier attempts received, kept across them (attempts run one after another).
        let partial = rbuild_http::Partial::new();
        let partial = &partial;
        self.client
            .retried(&what, |attempt| {
                let what = &what;
                async move {
                    if attempt == 1 {
                        self.client.progress(ProgressEvent::BlobStarted {
                            digest,
                            size: desc.size,
                            upload: false,
                        });
                    }
                    let path = self
                        .fetch_blob_once(desc, store, what, attempt, partial)
                        .await?;
                    self.client.progress(ProgressEvent::BlobFinished {
                        digest,
                        upload: false,
                    });
                    Ok(path)
                }
            })
            .await
    }

    /// One attempt of [`Repository::fetch_blob`]: asks for what `partial` does not hold yet and
    /// receives it with [`rbuild_http::receive`] (which keeps the bytes of a transfer that breaks
    /// off, and drops them when the blob must start over).
    async fn fetch_blob_once(
        &self,
        desc: &Descriptor,
        store: &Store,
        what: &str,
        attempt: u32,
        partial: &rbuild_http::Partial,
    ) -> Result<PathBuf> {
        let digest = desc.digest;
        let size = desc.size;
        let mut req = Self::req(Method::GET, self.url(&format!("blobs/{digest}")).await?);
        if let Some(range) = rbuild_http::download::range_header(partial.offset()) {
            req.headers.push(("range", range));
        }
        let resp = self.send(&req, what).await?;
        if !matches!(resp.status().as_u16(), 200 | 206) {
            return Err(self.fail(resp, what).await);
        }
        let watch = BlobWatch {
            client: &self.client,
            digest,
            attempt,
        };
        let expected = rbuild_http::Expected {
            digest: Some(digest),
            size: Some(size),
        };
        match rbuild_http::receive(resp, partial, store, expected, &watch).await {
            Ok((_, _, path)) => Ok(path),
            Err(e) => Err(self.download_error(e, what, digest)),
        }
    }

    /// This crate's error for a failed blob transfer.
    fn download_error(&self, e: rbuild_http::DownloadError, what: &str, digest: Digest) -> Error {
        use rbuild_http::DownloadError as D;
        match e {
            D::Interrupted {
                source: Some(source),
                ..
            } => transport_error(what, &self.host.name, source),
            e @ (D::Interrupted { source: None, .. } | D::WrongRange { .. }) => Error::Transport {
                what: what.to_string(),
                host: self.host.name.clone(),
                reason: e.to_string(),
            },
            D::Size { expected, actual } => Error::SizeMismatch {
                what: what.to_string(),
                digest,
                expected,
                actual,
            },
            D::Store(StoreError::DigestMismatch {
                expected,
                actual,
                size,
            }) => Error::DigestMismatch {
                what: what.to_string(),
                expected,
                actual,
                size,
            },
            D::Store(StoreError::SizeMismatch {
                digest,
                expected,
                actual,
            }) => Error::SizeMismatch {
                what: what.to_string(),
                digest,
                expected,
                actual,
            },
            D::Store(e) => e.into(),
        }
    }

    /// Fetches a small blob (a config) into memory, verified; at most [`MAX_MANIFEST_SIZE`] bytes.
    /// Retried.
    pub async fn get_small_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let digest = desc.digest;
        if desc.size > MAX_MANIFEST_SIZE as u64 {
            return Err(Error::Invalid(format!(
                "blob {digest} has {} bytes, more than {MAX_MANIFEST_SIZE} (use fetch_blob)",
                desc.size
            )));
        }
        let what = format!("fetching blob {digest} from {}", self.name());
        self.client
            .retried(&what, |_| async {
                let req = Self::req(Method::GET, self.url(&format!("blobs/{digest}")).await?);
                let resp = self.send(&req, &what).await?;
                if resp.status().as_u16() != 200 {
                    return Err(self.fail(resp, &what).await);
                }
                let bytes = read_limited(resp, MAX_MANIFEST_SIZE, &what, &self.host.name).await?;
                let actual = Digest::of(&bytes);
                if actual != digest {
                    return Err(Error::DigestMismatch {
                        what: what.clone(),
                        expected: digest,
                        actual,
                        size: bytes.len() as u64,
                    });
                }
                Ok(bytes)
            })
            .await
    }

    /// True when the repository has the blob (`HEAD`). Retried.
    pub async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        let what = format!("checking blob {digest} in {}", self.name());
        self.client
            .retried(&what, |_| async {
                let req = Self::req(Method::HEAD, self.url(&format!("blobs/{digest}")).await?);
                let resp = self.send(&req, &what).await?;
                match resp.status().as_u16() {
                    200 => Ok(true),
                    404 => Ok(false),
                    _ => Err(self.fail(resp, &what).await),
                }
            })
            .await
    }

    /// Mounts a blob from `from_repo` (another repository of the same registry). Retried.
    pub async fn mount_blob(&self, digest: &Digest, from_repo: &str) -> Result<MountOutcome> {
        let what = format!(
            "mounting blob {digest} from {from_repo} into {}",
            self.name()
        );
        self.client
            .retried(&what, |_| async {
                let mut url = self.url("blobs/uploads/").await?;
                url.query_pairs_mut()
                    .append_pair("mount", &digest.to_string())
                    .append_pair("from", from_repo);
                let resp = self.send(&Self::req(Method::POST, url), &what).await?;
                match resp.status().as_u16() {
                    201 => Ok(MountOutcome::Mounted),
                    202 => Ok(MountOutcome::Session(self.location(&resp, &what).await?)),
                    _ => Err(self.fail(resp, &what).await),
                }
            })
            .await
    }

    async fn location(&self, resp: &reqwest::Response, what: &str) -> Result<UploadSession> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Protocol {
                what: what.to_string(),
                host: self.host.name.clone(),
                reason: "the upload session has no Location".into(),
            })?;
        let base = self.client.base(&self.host).await?;
        let url = base.join(loc).map_err(|e| Error::Protocol {
            what: what.to_string(),
            host: self.host.name.clone(),
            reason: format!("invalid upload Location: {e}"),
        })?;
        Ok(UploadSession(url))
    }

    async fn start_upload(&self, what: &str) -> Result<UploadSession> {
        let url = self.url("blobs/uploads/").await?;
        let resp = self.send(&Self::req(Method::POST, url), what).await?;
        match resp.status().as_u16() {
            202 => self.location(&resp, what).await,
            _ => Err(self.fail(resp, what).await),
        }
    }

    /// The registry does not take single-request uploads: later ones (in this process and, for
    /// hosts with a memory, the next) open a session first.
    fn no_single_post(&self) {
        use std::sync::atomic::Ordering;
        self.host.single_post.store(false, Ordering::Relaxed);
        self.client.learned(&self.host, self.host.is_plain());
    }

    /// Opens an upload session for [`Client::open_upload_sessions`] (`None` when it fails: the
    /// push then opens its own).
    pub(crate) async fn open_session_ahead(&self) -> Option<UploadSession> {
        let what = format!("opening an upload session in {}", self.name());
        match self.start_upload(&what).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!("{what}: {e}");
                None
            }
        }
    }

    /// An upload session opened ahead in this repository ([`Client::open_upload_sessions`]),
    /// waiting for its `POST` if it is still under way; `None` when none is left.
    pub(crate) async fn take_session_ahead(&self) -> Option<UploadSession> {
        loop {
            let early = self
                .client
                .take_session(self.reference.registry(), self.reference.repository())?;
            if let Some(s) = early.await {
                return Some(s);
            }
        }
    }

    /// Cancels the upload sessions opened ahead in this repository that no blob used.
    pub(crate) async fn cancel_sessions_ahead(&self) {
        let mut left = Vec::new();
        while let Some(early) = self
            .client
            .take_session(self.reference.registry(), self.reference.repository())
        {
            left.push(early);
        }
        futures::future::join_all(left.into_iter().map(|early| async move {
            if let Some(s) = early.await {
                self.cancel_upload(s).await;
            }
        }))
        .await;
    }

    /// Cancels an upload session that is not needed (`DELETE` on its URL), best effort: a
    /// registry that does not answer or refuses keeps it until it drops stale sessions.
    pub async fn cancel_upload(&self, session: UploadSession) {
        let what = format!("cancelling an upload to {}", self.name());
        match self
            .send(&Self::req(Method::DELETE, session.0), &what)
            .await
        {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => tracing::debug!("{what}: {}", resp.status()),
            Err(e) => tracing::debug!("{what}: {e}"),
        }
    }

    /// Starts the upload of a blob that is in `store`: a blob of at most [`SINGLE_POST_MAX`]
    /// bytes is sent in the `POST` itself (`?digest=`, the OCI single-request upload) unless this
    /// registry declined that before; a registry that takes it answers `201` ([`UploadStart::Done`]),
    /// one that does not opens a session as for an empty `POST` (`202`, and it is not tried again on
    /// this host). Larger blobs: an empty `POST`. Retried.
    pub async fn begin_upload(&self, desc: &Descriptor, store: &Store) -> Result<UploadStart> {
        let digest = desc.digest;
        let what = format!("uploading blob {digest} to {}", self.name());
        let started = self
            .client
            .retried(&what, |_| self.begin_upload_once(desc, store, &what))
            .await?;
        if let (UploadStart::Done, Some(size)) = (&started, store.blob_size(&digest)) {
            self.client.progress(ProgressEvent::BlobStarted {
                digest,
                size,
                upload: true,
            });
            self.client.progress(ProgressEvent::BlobFinished {
                digest,
                upload: true,
            });
        }
        Ok(started)
    }

    /// One attempt of [`Repository::begin_upload`].
    async fn begin_upload_once(
        &self,
        desc: &Descriptor,
        store: &Store,
        what: &str,
    ) -> Result<UploadStart> {
        use std::sync::atomic::Ordering;
        let digest = desc.digest;
        let single = store
            .blob_size(&digest)
            .filter(|s| *s <= SINGLE_POST_MAX && self.host.single_post.load(Ordering::Relaxed));
        let Some(size) = single else {
            return Ok(UploadStart::Session(self.start_upload(what).await?));
        };
        let mut url = self.url("blobs/uploads/").await?;
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let req = Req {
            method: Method::POST,
            url,
            headers: vec![("content-type", "application/octet-stream".into())],
            body: Body::File {
                path: store.blob_path(&digest),
                offset: 0,
                len: size,
                progress: None,
            },
        };
        let resp = self.send(&req, what).await?;
        match resp.status().as_u16() {
            201 => {
                self.check_digest_header(&resp, &digest, what)?;
                Ok(UploadStart::Done)
            }
            202 => {
                tracing::debug!(
                    "{}: no single-request uploads (202); opening sessions from now on",
                    self.host.name
                );
                self.no_single_post();
                Ok(UploadStart::Session(self.location(&resp, what).await?))
            }
            status @ (400 | 404 | 405 | 413 | 415 | 501) => {
                tracing::debug!(
                    "{}: single-request upload refused ({status}); opening sessions from now on",
                    self.host.name
                );
                self.no_single_post();
                Ok(UploadStart::Session(self.start_upload(what).await?))
            }
            _ => Err(self.fail(resp, what).await),
        }
    }

    /// Uploads a blob from `store`: in monolithic mode a small blob in one request where the
    /// registry takes that ([`Repository::begin_upload`]); otherwise `POST` for a session (or the
    /// one a failed mount opened), then one streamed `PUT` with `Content-Length` and
    /// `Content-Type: application/octet-stream`; chunked `PATCH`es when configured or when the
    /// registry refuses the single `PUT`. A failure restarts the whole upload with a new session.
    pub async fn upload_blob(
        &self,
        desc: &Descriptor,
        store: &Store,
        session: Option<UploadSession>,
    ) -> Result<()> {
        let digest = desc.digest;
        let path = store.blob_path(&digest);
        let size = store.blob_size(&digest).ok_or_else(|| {
            Error::Invalid(format!(
                "cannot upload {digest}: it is not in the content store {}",
                store.root().display()
            ))
        })?;
        let what = format!("uploading blob {digest} to {}", self.name());
        let session = std::sync::Mutex::new(session);
        let mode = std::sync::Mutex::new(self.client.options().upload);
        self.client
            .retried(&what, |attempt| {
                let path = path.clone();
                let what = &what;
                let session = &session;
                let mode = &mode;
                async move {
                    self.client.progress(if attempt == 1 {
                        ProgressEvent::BlobStarted {
                            digest,
                            size,
                            upload: true,
                        }
                    } else {
                        ProgressEvent::BlobRestarted { digest, from: 0 }
                    });
                    loop {
                        let opened = session.lock().expect("session").take();
                        let m = *mode.lock().expect("mode");
                        let s = match (opened, m) {
                            (Some(s), _) => s,
                            (None, crate::client::UploadMode::Monolithic { .. }) => {
                                match self.begin_upload_once(desc, store, what).await? {
                                    UploadStart::Done => break,
                                    UploadStart::Session(s) => s,
                                }
                            }
                            (None, _) => self.start_upload(what).await?,
                        };
                        match m {
                            crate::client::UploadMode::Monolithic { fallback_chunk } => {
                                match self.put_whole(s, &digest, &path, size, what).await {
                                    Err(Error::Status { status, .. })
                                        if matches!(status, 405 | 413 | 501) =>
                                    {
                                        tracing::info!(
                                            "{what}: the registry refused a single PUT ({status}); uploading in chunks"
                                        );
                                        *mode.lock().expect("mode") =
                                            crate::client::UploadMode::Chunked {
                                                chunk: fallback_chunk,
                                            };
                                        continue;
                                    }
                                    other => other?,
                                }
                            }
                            crate::client::UploadMode::Chunked { chunk } => {
                                self.put_chunked(s, &digest, &path, size, chunk.max(1), what)
                                    .await?
                            }
                        }
                        break;
                    }
                    self.client.progress(ProgressEvent::BlobFinished {
                        digest,
                        upload: true,
                    });
                    Ok(())
                }
            })
            .await
    }

    fn with_digest(session: &UploadSession, digest: &Digest) -> Url {
        let mut url = session.0.clone();
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        url
    }

    async fn put_whole(
        &self,
        session: UploadSession,
        digest: &Digest,
        path: &std::path::Path,
        size: u64,
        what: &str,
    ) -> Result<()> {
        let req = Req {
            method: Method::PUT,
            url: Self::with_digest(&session, digest),
            headers: vec![("content-type", "application/octet-stream".into())],
            body: Body::File {
                path: path.to_path_buf(),
                offset: 0,
                len: size,
                progress: Some(*digest),
            },
        };
        let resp = self.send(&req, what).await?;
        match resp.status().as_u16() {
            201 => self.check_digest_header(&resp, digest, what),
            _ => Err(self.fail(resp, what).await),
        }
    }

    async fn put_chunked(
        &self,
        session: UploadSession,
        digest: &Digest,
        path: &std::path::Path,
        size: u64,
        chunk: u64,
        what: &str,
    ) -> Result<()> {
        let mut session = session;
        let mut offset = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            let req = Req {
                method: Method::PATCH,
                url: session.0.clone(),
                headers: vec![
                    ("content-type", "application/octet-stream".into()),
                    ("content-range", format!("{offset}-{}", offset + len - 1)),
                ],
                body: Body::File {
                    path: path.to_path_buf(),
                    offset,
                    len,
                    progress: Some(*digest),
                },
            };
            let resp = self.send(&req, what).await?;
            if resp.status().as_u16() != 202 {
                return Err(self.fail(resp, what).await);
            }
            session = self.location(&resp, what).await?;
            offset += len;
        }
        let req = Req {
            method: Method::PUT,
            url: Self::with_digest(&session, digest),
            headers: vec![("content-type", "application/octet-stream".into())],
            body: Body::Bytes(Bytes::new()),
        };
        let resp = self.send(&req, what).await?;
        match resp.status().as_u16() {
            201 => self.check_digest_header(&resp, digest, what),
            _ => Err(self.fail(resp, what).await),
        }
    }

    fn check_digest_header(
        &self,
        resp: &reqwest::Response,
        digest: &Digest,
        what: &str,
    ) -> Result<()> {
        match docker_content_digest(resp) {
            Some(d) if d != *digest => Err(Error::Protocol {
                what: what.to_string(),
                host: self.host.name.clone(),
                reason: format!("the registry stored it as {d}"),
            }),
            _ => Ok(()),
        }
    }

    /// Pushes a manifest or index with its exact bytes and media type, at `tag` or (without one)
    /// at its digest. Retried.
    pub async fn push_manifest(&self, manifest: &RawManifest, tag: Option<&str>) -> Result<()> {
        let shown = match tag {
            Some(t) => format!("{}:{t}", self.name()),
            None => format!("{}@{}", self.name(), manifest.digest),
        };
        let what = format!("pushing manifest {shown}");
        let bytes = Bytes::from(manifest.bytes.clone());
        // What this client remembers of the tag is void from the first attempt on (a failed or
        // timed-out PUT may still have moved it), and the new digest once the registry took it.
        if let Some(t) = tag {
            self.client
                .forget_tag(self.reference.registry(), self.reference.repository(), t);
        }
        self.client
            .retried(&what, |_| async {
                let req = Req {
                    method: Method::PUT,
                    url: self.url(&Self::manifest_path(manifest, tag)).await?,
                    headers: vec![("content-type", manifest.media_type.to_string())],
                    body: Body::Bytes(bytes.clone()),
                };
                let resp = self.send(&req, &what).await?;
                match resp.status().as_u16() {
                    200..=202 => self.check_digest_header(&resp, &manifest.digest, &what),
                    _ => Err(self.fail(resp, &what).await),
                }
            })
            .await?;
        self.manifest_pushed(manifest, tag);
        Ok(())
    }

    /// Where a manifest is pushed: at `tag`, else at its digest (`manifests/...`).
    fn manifest_path(manifest: &RawManifest, tag: Option<&str>) -> String {
        match tag {
            Some(t) => format!("manifests/{t}"),
            None => format!("manifests/{}", manifest.digest),
        }
    }

    /// What follows a manifest the registry took: this client remembers what `tag` names now,
    /// and the progress reporter hears of it.
    fn manifest_pushed(&self, manifest: &RawManifest, tag: Option<&str>) {
        let shown = match tag {
            Some(t) => format!("{}:{t}", self.name()),
            None => format!("{}@{}", self.name(), manifest.digest),
        };
        if let Some(t) = tag {
            self.client.remember_tag(
                self.reference.registry(),
                self.reference.repository(),
                t,
                manifest.digest,
            );
        }
        self.client.progress(ProgressEvent::ManifestPushed {
            digest: manifest.digest,
            reference: shown,
        });
    }

    /// Whether `session` is on the registry's own origin (the only one its credentials go to);
    /// false while the registry's base URL is not known.
    pub(crate) fn session_on_own_origin(&self, session: &UploadSession) -> bool {
        self.client
            .base_known(&self.host)
            .is_some_and(|b| origin(&b) == origin(&session.0))
    }

    /// A connection to this repository's registry to pipeline requests on
    /// ([`Client::pipeline`]), with the headers every request on it carries (`User-Agent`, the
    /// credentials for this repository's scopes); `None` when there is none.
    pub(crate) async fn pipeline(&self) -> Option<Piped<'_>> {
        let auth = self
            .client
            .authorization(&self.host, &self.scopes)
            .await
            .ok()?;
        let pipeline = self.client.pipeline(&self.host).await?;
        let mut headers = vec![(
            "User-Agent".to_string(),
            self.client.options().user_agent.clone(),
        )];
        headers.extend(auth.map(|a| ("Authorization".to_string(), a)));
        Some(Piped {
            repo: self,
            pipeline,
            headers,
        })
    }
}

/// A pipelined connection to a repository's registry ([`Repository::pipeline`]): the
/// manifest and blob `PUT`s of a push, sent without waiting for each other's answers. Each
/// answer is checked as the one-request [`Repository::push_manifest`] and
/// [`Repository::upload_blob`] check theirs; a request whose answer is missing or wrong is not
/// done, and the caller sends it again the usual way.
pub(crate) struct Piped<'a> {
    repo: &'a Repository,
    pipeline: Arc<rbuild_http::pipeline::Pipeline>,
    headers: Vec<(String, String)>,
}

impl Piped<'_> {
    fn request(
        &self,
        method: &'static str,
        url: &Url,
        content_type: &str,
        body: rbuild_http::pipeline::Body,
    ) -> rbuild_http::pipeline::Request {
        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        tracing::debug!("{method} {} (pipelined)", crate::client::redact(url));
        let mut headers = self.headers.clone();
        headers.push(("Content-Type".to_string(), content_type.to_string()));
        rbuild_http::pipeline::Request {
            method,
            target,
            headers,
            body,
        }
    }

    /// Sends `manifest` at `tag` (else at its digest) behind what was sent before; resolves to
    /// whether the registry took it. What this client remembers of `tag` is forgotten now and
    /// replaced once the registry took it.
    pub(crate) fn push_manifest(
        &self,
        manifest: &RawManifest,
        tag: Option<&str>,
    ) -> impl Future<Output = bool> + use<'_> {
        // The pipeline exists: the registry's base URL is known.
        let url = self.repo.client.base_known(&self.repo.host).and_then(|b| {
            self.repo
                .url_on(&b, &Repository::manifest_path(manifest, tag))
                .ok()
        });
        if let Some(t) = tag {
            self.repo.client.forget_tag(
                self.repo.reference.registry(),
                self.repo.reference.repository(),
                t,
            );
        }
        let answer = url.as_ref().map(|url| {
            self.pipeline.send(self.request(
                "PUT",
                url,
                &manifest.media_type.to_string(),
                rbuild_http::pipeline::Body::Bytes(Bytes::from(manifest.bytes.clone())),
            ))
        });
        let (manifest, tag) = (manifest.clone(), tag.map(str::to_string));
        async move {
            let Some(answer) = answer else {
                return false;
            };
            let what = format!("pushing manifest {} (pipelined)", manifest.digest);
            let taken = self.check(answer.await, 200..=202, &manifest.digest, &what);
            if taken {
                self.repo.manifest_pushed(&manifest, tag.as_deref());
            }
            taken
        }
    }

    /// Sends blob `desc` from `store` into `session` (one `PUT` with the whole blob) behind what
    /// was sent before; resolves to whether the registry took it. `None`: not sent (the session
    /// is on another origin, or the blob is not in the store); the session is handed back.
    pub(crate) fn upload_blob(
        &self,
        desc: &Descriptor,
        store: &Store,
        session: UploadSession,
    ) -> std::result::Result<impl Future<Output = bool> + use<'_>, UploadSession> {
        let size = store.blob_size(&desc.digest).filter(|s| *s == desc.size);
        let url = Repository::with_digest(&session, &desc.digest);
        let (Some(size), true) = (size, self.repo.session_on_own_origin(&session)) else {
            return Err(session);
        };
        let digest = desc.digest;
        let client = &self.repo.client;
        client.progress(ProgressEvent::BlobStarted {
            digest,
            size,
            upload: true,
        });
        let answer = self.pipeline.send(self.request(
            "PUT",
            &url,
            "application/octet-stream",
            rbuild_http::pipeline::Body::File {
                path: store.blob_path(&digest),
                len: size,
            },
        ));
        Ok(async move {
            let what = format!("uploading blob {digest} (pipelined)");
            let taken = self.check(answer.await, 201..=201, &digest, &what);
            if taken {
                client.progress(ProgressEvent::BlobAdvanced {
                    digest,
                    bytes: size,
                });
                client.progress(ProgressEvent::BlobFinished {
                    digest,
                    upload: true,
                });
            }
            taken
        })
    }

    /// Whether `answer` has a status in `ok` and, when it names a digest, `digest`.
    fn check(
        &self,
        answer: std::io::Result<rbuild_http::pipeline::Response>,
        ok: std::ops::RangeInclusive<u16>,
        digest: &Digest,
        what: &str,
    ) -> bool {
        let host = &self.repo.host.name;
        match answer {
            Ok(r) if ok.contains(&r.status) => {
                match named_digest(r.header("docker-content-digest")) {
                    Some(d) if d != *digest => {
                        tracing::debug!("{host}: {what}: the registry stored it as {d}");
                        false
                    }
                    _ => {
                        tracing::debug!("{host}: {what} -> {}", r.status);
                        true
                    }
                }
            }
            Ok(r) => {
                tracing::debug!(
                    "{host}: {what} -> {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
                );
                false
            }
            Err(e) => {
                tracing::debug!("{host}: {what}: {e}");
                false
            }
        }
    }
}

/// Blob progress events for one transfer attempt.
struct BlobWatch<'a> {
    client: &'a Client,
    digest: Digest,
    attempt: u32,
}

impl rbuild_http::Watch for BlobWatch<'_> {
    fn started(&self, from: u64, _size: Option<u64>) {
        if self.attempt > 1 {
            self.client.progress(ProgressEvent::BlobRestarted {
                digest: self.digest,
                from,
            });
        }
    }

    fn advanced(&self, bytes: u64) {
        self.client.progress(ProgressEvent::BlobAdvanced {
            digest: self.digest,
            bytes,
        });
    }
}
