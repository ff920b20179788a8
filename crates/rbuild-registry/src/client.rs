//! The HTTP layer: one reqwest client per registry host (each with its own TLS trust), scheme
//! selection, authentication, manual redirects, and error mapping.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use hyper_util::client::proxy::matcher::Matcher;
use rbuild_oci::Digest;
use reqwest::header::{AUTHORIZATION, HeaderValue, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response};
use url::Url;

use crate::auth::{Anonymous, AuthState, AuthStep, CredentialProvider, Scopes, parse_challenge};
use crate::error::{Error, Result};
use crate::progress::{NoProgress, Progress, ProgressEvent};
use crate::tls::{self, ClientCert, TlsOptions};
use rbuild_http::{Meter, RetryPolicy, Timeouts};

/// How blobs are uploaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadMode {
    /// One streamed `PUT` per blob; when the registry refuses it (405, 413, 501), chunked `PATCH`es
    /// with chunks of the given size.
    Monolithic {
        /// Chunk size for the fallback.
        fallback_chunk: u64,
    },
    /// Always chunked `PATCH`es of this size, then a closing `PUT`.
    Chunked {
        /// Chunk size in bytes.
        chunk: u64,
    },
}

impl Default for UploadMode {
    fn default() -> Self {
        UploadMode::Monolithic {
            fallback_chunk: 16 * 1024 * 1024,
        }
    }
}

/// Everything a [`Client`] is configured with.
#[derive(Clone)]
pub struct ClientOptions {
    /// Hosts (`host` or `host:port`) reached over plain HTTP when they do not speak TLS, and whose
    /// TLS certificates are not verified (`--insecure-registry`).
    pub insecure_registries: Vec<String>,
    /// Extra CAs and a client certificate for every host.
    pub tls: TlsOptions,
    /// Directories with per-host TLS material (`DIR/HOST[:PORT]/*.crt` CAs, `*.cert` + `*.key`
    /// client certificates), e.g. `/etc/containers/certs.d` and `/etc/docker/certs.d`.
    pub certs_dirs: Vec<PathBuf>,
    /// Retry budget per operation.
    pub retry: RetryPolicy,
    /// How many blobs are transferred at once.
    pub concurrency: usize,
    /// How blobs are uploaded.
    pub upload: UploadMode,
    /// Where credentials come from.
    pub credentials: Arc<dyn CredentialProvider>,
    /// The `User-Agent`.
    pub user_agent: String,
    /// Time bounds of every request (connect, idle, response head, overall deadline); the default
    /// honours `RBUILD_HTTP_TIMEOUT` ([`Timeouts::from_env`]).
    pub timeouts: Timeouts,
    /// Where to keep what this client learns about loopback and `--insecure-registry` hosts
    /// (plain HTTP, no single-request uploads) for the next process, which then skips the HTTPS
    /// probe and the refused upload (`None`: learn again every time).
    pub host_memory: Option<rbuild_oci::Store>,
    /// A warm push pipelines its chain of requests (blobs, manifests, referrers tags) on
    /// HTTP/1.1 connections (see [`crate::RegistrySink`]) when the registry's quickest answer so
    /// far took at least this long; `None`: never (every request waits for the answers it
    /// depends on). Default [`PIPELINE_MIN_ROUND_TRIP`].
    pub pipeline_min_round_trip: Option<std::time::Duration>,
}

/// The round trip from which a push pipelines by default: on a registry nearer than this (the
/// same machine, the same network), saving a round trip gains less than the registry loses by
/// handling the chain's requests one after another on one connection.
pub const PIPELINE_MIN_ROUND_TRIP: std::time::Duration = std::time::Duration::from_millis(15);

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            tls: TlsOptions::default(),
            certs_dirs: Vec::new(),
            retry: RetryPolicy::default(),
            concurrency: 4,
            upload: UploadMode::default(),
            credentials: Arc::new(Anonymous),
            user_agent: concat!("rbuild/", env!("CARGO_PKG_VERSION")).to_string(),
            timeouts: Timeouts::from_env(),
            host_memory: None,
            pipeline_min_round_trip: Some(PIPELINE_MIN_ROUND_TRIP),
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("insecure_registries", &self.insecure_registries)
            .field("tls", &self.tls)
            .field("certs_dirs", &self.certs_dirs)
            .field("retry", &self.retry)
            .field("concurrency", &self.concurrency)
            .field("upload", &self.upload)
            .field("timeouts", &self.timeouts)
            .field("pipeline_min_round_trip", &self.pipeline_min_round_trip)
            .finish_non_exhaustive()
    }
}

/// True for `localhost`, 127.0.0.0/8 and ::1 (with or without a port).
pub fn is_loopback(host: &str) -> bool {
    let h = strip_port(host);
    h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

/// How long a tag read from a registry is trusted to still name what it named: pushing the same
/// manifest to it within this time sends nothing (the tag already points at it), as
/// go-containerregistry's `remote.Write` skips a manifest that exists. A build reads its
/// destination tag (the previous image) at its start, so a no-change build pushes no manifest.
///
/// What is remembered is exact: the registry, repository and tag (never a digest reference,
/// never another tag or repository), forgotten when this client pushes the tag itself (and
/// replaced by what it pushed once the registry took it). Should another writer move the tag
/// between the read and this push, the other writer's manifest stays, as if this (unchanged)
/// push had happened when the tag was read.
pub const TAG_MEMORY: std::time::Duration = std::time::Duration::from_secs(300);

/// One registry (or redirect target) host.
pub(crate) struct Host {
    pub(crate) name: String,
    http: reqwest::Client,
    /// The TLS configuration `http` uses (for [`Client::pipeline`]'s own connections).
    tls: Arc<rustls::ClientConfig>,
    insecure: bool,
    loopback: bool,
    base: tokio::sync::OnceCell<Url>,
    pub(crate) auth: AuthState,
    /// False once the registry answered a single-request upload (`POST ...?digest=` with the
    /// body) with anything but `201`: later uploads to it open a session first.
    pub(crate) single_post: std::sync::atomic::AtomicBool,
    /// Plain HTTP was taken from an earlier run's memory ([`ClientOptions::host_memory`]), not
    /// probed: a failed request forgets it.
    remembered_plain: std::sync::atomic::AtomicBool,
    /// The quickest answer of this host so far (µs from sending a request without a streamed
    /// body to its response head: the round trip and the registry's own time); `u64::MAX`
    /// before the first.
    quickest_answer: std::sync::atomic::AtomicU64,
}

impl Host {
    /// Whether this host is reached over plain HTTP (known once its first request was sent).
    pub(crate) fn is_plain(&self) -> bool {
        self.base.get().is_some_and(|b| b.scheme() == "http")
    }
}

/// The HTTP request a retryable operation sends; rebuilt for every attempt.
pub(crate) struct Req {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

/// A request body that can be produced again for a new attempt.
pub(crate) enum Body {
    Empty,
    Bytes(Bytes),
    /// A range of a file (from the content store), streamed.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
        progress: Option<Digest>,
    },
}

/// A tag on a registry: (registry, repository, tag).
type TagKey = (String, String, String);

/// A subject manifest on a registry: (registry, repository, digest).
type SubjectKey = (String, String, Digest);

/// An upload session opened ahead of a push ([`Client::open_upload_sessions`]): the session, or
/// `None` when opening it failed (the push opens its own).
pub(crate) type EarlySession = futures::future::Shared<
    futures::future::BoxFuture<'static, Option<crate::repository::UploadSession>>,
>;

/// A repository on a registry: (registry, repository).
type RepoKey = (String, String);

/// A referrers tag read started ahead of a push: its index (`None`: no tag), or `None` when the
/// read failed (the push reads again).
pub(crate) type PrefetchedReferrers =
    futures::future::Shared<futures::future::BoxFuture<'static, Option<Option<rbuild_oci::Index>>>>;

struct Inner {
    opts: ClientOptions,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    /// What tags named when this client read them (`registry`, `repository`, `tag`) → (the
    /// manifest's digest, when it was read): a push of the same digest to the same tag soon after
    /// is skipped ([`TAG_MEMORY`]).
    tags: Mutex<HashMap<TagKey, (Digest, Instant)>>,
    /// Referrers tags read ahead ([`Client::prefetch_referrers`]): (registry, repository,
    /// subject) → the read (None when it failed), taken by the push that needs it.
    referrers: Mutex<HashMap<SubjectKey, (Instant, PrefetchedReferrers)>>,
    /// Upload sessions opened ahead ([`Client::open_upload_sessions`]), taken by the push.
    sessions: Mutex<HashMap<RepoKey, Vec<EarlySession>>>,
    /// Pipelined connections opened ahead ([`Client::open_upload_sessions`]), by host name, with
    /// when: taken by the push.
    pipelines: Mutex<HashMap<String, Vec<(Instant, EarlyPipeline)>>>,
    progress: Arc<dyn Progress>,
}

/// A pipelined connection being opened ahead of a push (`None` when it could not be).
type EarlyPipeline = futures::future::Shared<
    futures::future::BoxFuture<'static, Option<Arc<rbuild_http::pipeline::Pipeline>>>,
>;

/// How long a connection opened ahead is used: an older one may have been closed by the
/// registry for being idle (the push then opens one).
const PIPELINE_AHEAD_FRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// A registry client. Cheap to clone; share one per process so connections and tokens are reused.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

fn find_in_chain<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<T>() {
            return Some(t);
        }
        // io::Error::source() skips the error it wraps; look inside it.
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(t) = find_in_chain::<T>(inner)
        {
            return Some(t);
        }
        cur = err.source();
    }
    None
}

/// A URL for logs and errors: no query string (upload state, signed CDN parameters).
pub(crate) fn redact(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

pub(crate) fn origin(url: &Url) -> (String, Option<String>, Option<u16>) {
    (
        url.scheme().to_string(),
        url.host_str().map(str::to_ascii_lowercase),
        url.port_or_known_default(),
    )
}

/// Whether requests to `base` go through a proxy under `proxies`. reqwest decides with
/// hyper-util's matcher (`ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`, as curl reads
/// them); asking the same matcher keeps a connection rbuild opens itself on the same road.
fn through_proxy(proxies: &Matcher, base: &Url) -> bool {
    match base.as_str().parse::<http::Uri>() {
        Ok(uri) => proxies.intercept(&uri).is_some(),
        Err(_) => true,
    }
}

fn host_port(url: &Url) -> String {
    let h = url.host_str().unwrap_or("");
    let h = if h.contains(':') && !h.starts_with('[') {
        format!("[{h}]")
    } else {
        h.to_string()
    };
    match url.port() {
        Some(p) => format!("{h}:{p}"),
        None => h,
    }
}

/// The start of the reason of an [`Error::Protocol`] for a server that does not speak TLS.
pub(crate) const NOT_TLS: &str = "the registry does not speak TLS here (a plain-HTTP registry?)";

pub(crate) fn transport_error(what: &str, host: &str, e: reqwest::Error) -> Error {
    let e = e.without_url();
    if let Some(stalled) = rbuild_http::find_stalled(&e) {
        return stalled_error(what, host, stalled);
    }
    match find_in_chain::<rustls::Error>(&e) {
        Some(rustls::Error::InvalidCertificate(c)) => {
            return Error::Certificate {
                host: host.to_string(),
                reason: format!("{c:?}"),
            };
        }
        // The server answered something that is not TLS (a plain-HTTP registry): trying again
        // cannot help, so this is not a (retried) transport error.
        Some(rustls::Error::InvalidMessage(_)) => {
            return Error::Protocol {
                what: what.to_string(),
                host: host.to_string(),
                reason: format!("{NOT_TLS} ({})", error_chain(&e)),
            };
        }
        _ => {}
    }
    Error::Transport {
        what: what.to_string(),
        host: host.to_string(),
        reason: error_chain(&e),
    }
}

/// The (retried) error for a request that broke a time bound: what, where, how long it waited.
pub(crate) fn stalled_error(what: &str, host: &str, stalled: &rbuild_http::Stalled) -> Error {
    Error::Stalled {
        what: what.to_string(),
        host: host.to_string(),
        reason: stalled.to_string(),
    }
}

#[derive(serde::Deserialize)]
struct RegistryErrors {
    errors: Vec<RegistryError>,
}

#[derive(serde::Deserialize)]
struct RegistryError {
    code: Option<String>,
    message: Option<String>,
}

/// Turns a response with an unexpected status into an [`Error::Status`], with the registry's
/// `errors[].code: message` list.
pub(crate) async fn status_error(resp: Response, what: &str, host: &str) -> Error {
    let status = resp.status().as_u16();
    let retry_after = rbuild_http::retry::retry_after(resp.headers());
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 * 1024 {
            break;
        }
    }
    let detail = match serde_json::from_slice::<RegistryErrors>(&body) {
        Ok(errs) if !errs.errors.is_empty() => {
            let list: Vec<String> = errs
                .errors
                .iter()
                .map(|e| match (&e.code, &e.message) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c.clone(),
                    (None, Some(m)) => m.clone(),
                    (None, None) => "error".to_string(),
                })
                .collect();
            format!(": {}", list.join("; "))
        }
        _ => {
            let text = String::from_utf8_lossy(&body);
            let line = text.lines().next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with('<') {
                String::new()
            } else {
                format!(": {}", line.chars().take(200).collect::<String>())
            }
        }
    };
    Error::Status {
        what: what.to_string(),
        host: host.to_string(),
        status,
        detail,
        retry_after,
    }
}

impl Client {
    /// A client with `opts`.
    pub fn new(opts: ClientOptions) -> Result<Self> {
        // A bad --ca-file or client certificate is reported now; the system store is read when a
        // host first needs TLS verification (never, for a build against an insecure registry).
        tls::check_files(&opts.tls)?;
        Ok(Client {
            inner: Arc::new(Inner {
                opts,
                hosts: Mutex::new(HashMap::new()),
                tags: Mutex::new(HashMap::new()),
                referrers: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
                pipelines: Mutex::new(HashMap::new()),
                progress: Arc::new(NoProgress),
            }),
        })
    }

    /// The same client reporting to `progress`. (Connections and tokens are not shared with `self`.)
    pub fn with_progress(self, progress: Arc<dyn Progress>) -> Self {
        Client {
            inner: Arc::new(Inner {
                opts: self.inner.opts.clone(),
                hosts: Mutex::new(HashMap::new()),
                tags: Mutex::new(HashMap::new()),
                referrers: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
                pipelines: Mutex::new(HashMap::new()),
                progress,
            }),
        }
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// Records that `tag` of `repository` on `registry` named the manifest `digest` just now (it
    /// was read from the registry).
    pub(crate) fn remember_tag(&self, registry: &str, repository: &str, tag: &str, digest: Digest) {
        self.inner.tags.lock().expect("tags lock").insert(
            (
                registry.to_string(),
                repository.to_string(),
                tag.to_string(),
            ),
            (digest, Instant::now()),
        );
    }

    /// Forgets what `tag` of `repository` on `registry` named: this client is about to change
    /// it (a manifest push under the tag whose outcome is not known until it answers).
    pub(crate) fn forget_tag(&self, registry: &str, repository: &str, tag: &str) {
        self.inner.tags.lock().expect("tags lock").remove(&(
            registry.to_string(),
            repository.to_string(),
            tag.to_string(),
        ));
    }

    /// Starts reading the referrers tag of `subject` (a manifest of `reference`'s repository,
    /// such as the previous image a build read) in the background: a push of attachments about
    /// the same subject (a build with nothing changed) then finds it read, and knows which
    /// attachments are there, without waiting for it. Must run inside a tokio runtime.
    pub fn prefetch_referrers(&self, reference: &crate::Reference, subject: Digest) {
        let Ok(repo) = self.repository(reference, crate::Access::Pull) else {
            return;
        };
        let key = (
            reference.registry().to_string(),
            reference.repository().to_string(),
            subject,
        );
        let read: futures::future::BoxFuture<'static, _> =
            Box::pin(async move { repo.read_referrers_tag(&subject).await.ok() });
        let read = futures::FutureExt::shared(read);
        tokio::spawn(read.clone());
        self.inner
            .referrers
            .lock()
            .expect("referrers lock")
            .insert(key, (Instant::now(), read));
    }

    /// Opens `n` blob upload sessions in `reference`'s repository in the background (`POST`s
    /// sent now, not awaited), for a push about to upload that many small new blobs: it then
    /// sends each blob into a session that is already open, one round trip sooner. The push
    /// cancels the sessions it did not use; sessions of a repository never pushed to are left to
    /// the registry, which drops stale ones. Must run inside a tokio runtime.
    pub fn open_upload_sessions(&self, reference: &crate::Reference, n: usize) {
        let Ok(repo) = self.repository(reference, crate::Access::Push) else {
            return;
        };
        let key = (
            reference.registry().to_string(),
            reference.repository().to_string(),
        );
        // The two connections a pipelined push uses, connected (TCP, TLS) while the build runs.
        if self.inner.opts.pipeline_min_round_trip.is_some() {
            let host = repo.host_arc();
            let mut ahead = Vec::new();
            for _ in 0..2 {
                let (client, host) = (self.clone(), host.clone());
                let connect: futures::future::BoxFuture<'static, _> =
                    Box::pin(async move { client.connect_pipeline(&host).await.map(Arc::new) });
                let connect = futures::FutureExt::shared(connect);
                tokio::spawn(connect.clone());
                ahead.push((Instant::now(), connect));
            }
            self.inner
                .pipelines
                .lock()
                .expect("pipelines lock")
                .insert(host.name.clone(), ahead);
        }
        let mut opened = Vec::with_capacity(n);
        for _ in 0..n {
            let repo = repo.clone();
            let open: futures::future::BoxFuture<'static, _> =
                Box::pin(async move { repo.open_session_ahead().await });
            let open = futures::FutureExt::shared(open);
            tokio::spawn(open.clone());
            opened.push(open);
        }
        self.inner
            .sessions
            .lock()
            .expect("sessions lock")
            .entry(key)
            .or_default()
            .extend(opened);
    }

    /// How many upload sessions opened ahead in `registry`/`repository` are left (some may still
    /// be opening, or fail to).
    pub(crate) fn sessions_ahead(&self, registry: &str, repository: &str) -> usize {
        self.inner
            .sessions
            .lock()
            .expect("sessions lock")
            .get(&(registry.to_string(), repository.to_string()))
            .map_or(0, Vec::len)
    }

    /// Hands back an upload session taken with [`Client::take_session`] and not used.
    pub(crate) fn return_session(
        &self,
        registry: &str,
        repository: &str,
        session: crate::repository::UploadSession,
    ) {
        let ready: futures::future::BoxFuture<'static, _> =
            Box::pin(futures::future::ready(Some(session)));
        self.inner
            .sessions
            .lock()
            .expect("sessions lock")
            .entry((registry.to_string(), repository.to_string()))
            .or_default()
            .push(futures::FutureExt::shared(ready));
    }

    /// One upload session opened ahead in `registry`/`repository`, if any is left.
    pub(crate) fn take_session(&self, registry: &str, repository: &str) -> Option<EarlySession> {
        self.inner
            .sessions
            .lock()
            .expect("sessions lock")
            .get_mut(&(registry.to_string(), repository.to_string()))
            .and_then(Vec::pop)
    }

    /// Takes the read of `subject`'s referrers tag started by [`Client::prefetch_referrers`], if
    /// there is one from less than [`TAG_MEMORY`] ago. `peek`: look without taking.
    pub(crate) fn prefetched_referrers(
        &self,
        registry: &str,
        repository: &str,
        subject: &Digest,
        peek: bool,
    ) -> Option<PrefetchedReferrers> {
        let key = (registry.to_string(), repository.to_string(), *subject);
        let mut map = self.inner.referrers.lock().expect("referrers lock");
        let fresh = map
            .get(&key)
            .is_some_and(|(at, _)| at.elapsed() < TAG_MEMORY);
        match (fresh, peek) {
            (false, _) => {
                map.remove(&key);
                None
            }
            (true, true) => map.get(&key).map(|(_, r)| r.clone()),
            (true, false) => map.remove(&key).map(|(_, r)| r),
        }
    }

    /// The digest `tag` named when this client read it, if that was less than [`TAG_MEMORY`] ago.
    pub(crate) fn known_tag(&self, registry: &str, repository: &str, tag: &str) -> Option<Digest> {
        let tags = self.inner.tags.lock().expect("tags lock");
        tags.get(&(
            registry.to_string(),
            repository.to_string(),
            tag.to_string(),
        ))
        .filter(|(_, at)| at.elapsed() < TAG_MEMORY)
        .map(|(d, _)| *d)
    }

    pub(crate) fn progress(&self, e: ProgressEvent) {
        self.inner.progress.event(e);
    }

    fn is_insecure(&self, host: &str) -> bool {
        self.inner.opts.insecure_registries.iter().any(|i| {
            let i = i.trim().trim_end_matches('/');
            let i = i
                .strip_prefix("https://")
                .or_else(|| i.strip_prefix("http://"))
                .unwrap_or(i);
            i.eq_ignore_ascii_case(host) || i.eq_ignore_ascii_case(strip_port(host))
        })
    }

    /// TLS options for `host`: the global ones plus `certs.d/HOST/` material.
    fn tls_for(&self, host: &str, insecure: bool) -> TlsOptions {
        let mut opts = self.inner.opts.tls.clone();
        opts.insecure = insecure;
        for dir in &self.inner.opts.certs_dirs {
            let d = dir.join(host);
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in &files {
                let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.ends_with(".crt") {
                    opts.extra_ca_files.push(f.clone());
                } else if let Some(stem) = name.strip_suffix(".cert") {
                    let key = d.join(format!("{stem}.key"));
                    if key.is_file() && opts.client_cert.is_none() {
                        opts.client_cert = Some(ClientCert {
                            cert: f.clone(),
                            key,
                        });
                    }
                }
            }
        }
        opts
    }

    /// The state for `name` (`host[:port]`), created on first use. `registry` is the name used to
    /// look up credentials.
    pub(crate) fn host(&self, name: &str, registry: &str) -> Result<Arc<Host>> {
        let mut hosts = self.inner.hosts.lock().expect("hosts lock");
        if let Some(h) = hosts.get(name) {
            return Ok(h.clone());
        }
        let insecure = self.is_insecure(name) || self.is_insecure(registry);
        let tls = tls::rustls_config(&self.tls_for(name, insecure))?;
        let o = &self.inner.opts;
        let tls = Arc::new(tls);
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(o.timeouts.connect)
            .user_agent(o.user_agent.clone())
            .build()
            .map_err(|e| Error::Invalid(format!("cannot build an HTTP client: {e}")))?;
        let loopback = is_loopback(name);
        // Only hosts that may use plain HTTP anyway have a memory.
        let memo = match &o.host_memory {
            Some(store) if loopback || insecure => crate::host_memory::recall(store, name),
            _ => crate::host_memory::Memo::default(),
        };
        let host = Arc::new(Host {
            name: name.to_string(),
            http,
            tls,
            insecure,
            loopback,
            base: tokio::sync::OnceCell::new(),
            auth: AuthState::new(registry),
            single_post: std::sync::atomic::AtomicBool::new(!memo.sessions),
            remembered_plain: std::sync::atomic::AtomicBool::new(memo.plain_http),
            quickest_answer: std::sync::atomic::AtomicU64::new(u64::MAX),
        });
        hosts.insert(name.to_string(), host.clone());
        Ok(host)
    }

    fn host_for_url(&self, url: &Url) -> Result<Arc<Host>> {
        let hp = host_port(url);
        let host = self.host(&hp, &hp)?;
        if url.scheme() == "http" && !(host.loopback || host.insecure) {
            return Err(Error::Invalid(format!(
                "refusing to use plain HTTP to {hp} ({}); only loopback hosts and --insecure-registry hosts may use HTTP",
                redact(url)
            )));
        }
        Ok(host)
    }

    /// `https://host` or, for loopback and insecure hosts that do not speak TLS, `http://host`.
    pub(crate) async fn base(&self, host: &Host) -> Result<Url> {
        let url = host
            .base
            .get_or_try_init(|| async {
                let https = Url::parse(&format!("https://{}/", host.name)).map_err(|e| {
                    Error::Invalid(format!("invalid registry host {}: {e}", host.name))
                })?;
                if !(host.loopback || host.insecure) {
                    return Ok(https);
                }
                let plain = || {
                    Url::parse(&format!("http://{}/", host.name)).map_err(|e| {
                        Error::Invalid(format!("invalid registry host {}: {e}", host.name))
                    })
                };
                if host.remembered_plain.load(Ordering::Relaxed) {
                    tracing::debug!("{}: plain HTTP (remembered; not probed)", host.name);
                    return plain();
                }
                let probe = https.join("v2/").expect("valid");
                let t = &self.inner.opts.timeouts;
                let limit = t.connect.saturating_add(t.headers);
                match host.http.get(probe).timeout(limit).send().await {
                    Ok(_) => {
                        tracing::debug!("{}: speaks HTTPS", host.name);
                        self.learned(host, false);
                        Ok(https)
                    }
                    Err(e) => {
                        let e = e.without_url();
                        if let Some(rustls::Error::InvalidCertificate(c)) =
                            find_in_chain::<rustls::Error>(&e)
                        {
                            return Err(Error::Certificate {
                                host: host.name.clone(),
                                reason: format!("{c:?}"),
                            });
                        }
                        if let Some(io) = find_in_chain::<std::io::Error>(&e)
                            && matches!(
                                io.kind(),
                                std::io::ErrorKind::ConnectionRefused
                                    | std::io::ErrorKind::TimedOut
                            )
                        {
                            return Err(Error::Transport {
                                what: "connecting".into(),
                                host: host.name.clone(),
                                reason: error_chain(&e),
                            });
                        }
                        if e.is_timeout() {
                            return Err(Error::Transport {
                                what: "connecting".into(),
                                host: host.name.clone(),
                                reason: format!(
                                    "no answer after waiting {} (the time limit; raise it with --timeout SECS or {})",
                                    rbuild_http::timeout::format_secs(limit),
                                    rbuild_http::timeout::ENV
                                ),
                            });
                        }
                        tracing::debug!(
                            "{}: no TLS ({}), using plain HTTP",
                            host.name,
                            error_chain(&e)
                        );
                        self.learned(host, true);
                        plain()
                    }
                }
            })
            .await?;
        Ok(url.clone())
    }

    /// `host`'s base URL when a request has found it ([`Client::base`]).
    pub(crate) fn base_known(&self, host: &Host) -> Option<Url> {
        host.base.get().cloned()
    }

    /// Keeps what is known of `host` (plain HTTP or not, single-request uploads refused) for the
    /// next process ([`ClientOptions::host_memory`]).
    pub(crate) fn learned(&self, host: &Host, plain_http: bool) {
        if let Some(store) = &self.inner.opts.host_memory
            && (host.loopback || host.insecure)
        {
            let memo = crate::host_memory::Memo {
                plain_http,
                sessions: !host.single_post.load(Ordering::Relaxed),
            };
            crate::host_memory::remember(store, &host.name, memo);
        }
    }

    /// A request to a host whose plain HTTP came from memory failed: forget it, so the next
    /// run probes again (the host may speak TLS now).
    fn doubt_memory(&self, host: &Host) {
        if host.remembered_plain.swap(false, Ordering::Relaxed) {
            tracing::debug!("{}: forgetting that it speaks plain HTTP", host.name);
            self.learned(host, false);
        }
    }

    /// A connection to `host`'s registry that requests are pipelined on, for a chain of
    /// requests that depend on each other, when the registry is far enough
    /// ([`ClientOptions::pipeline_min_round_trip`]): one opened ahead
    /// ([`Client::open_upload_sessions`]), else one opened now ([`Client::connect_pipeline`]).
    /// `None` otherwise: the caller then sends one request at a time, as always.
    pub(crate) async fn pipeline(
        &self,
        host: &Host,
    ) -> Option<Arc<rbuild_http::pipeline::Pipeline>> {
        let quickest = host.quickest_answer.load(Ordering::Relaxed);
        match self.inner.opts.pipeline_min_round_trip {
            Some(min) if u128::from(quickest) >= min.as_micros() => {}
            _ => return None,
        }
        loop {
            let ahead = self
                .inner
                .pipelines
                .lock()
                .expect("pipelines lock")
                .get_mut(&host.name)
                .and_then(Vec::pop);
            match ahead {
                Some((at, connecting)) if at.elapsed() < PIPELINE_AHEAD_FRESH => {
                    if let Some(p) = connecting.await {
                        return Some(p);
                    }
                }
                Some(_) => {}
                None => return self.connect_pipeline(host).await.map(Arc::new),
            }
        }
    }

    /// Opens a pipelined connection to `host`: HTTP/1.1, TLS unless the host speaks plain HTTP;
    /// `None` when the client's requests to it go through a proxy (the pipeline connects
    /// directly) or the connection fails.
    async fn connect_pipeline(&self, host: &Host) -> Option<rbuild_http::pipeline::Pipeline> {
        use rbuild_http::pipeline::{Endpoint, Pipeline};
        let base = self.base(host).await.ok()?;
        if through_proxy(&Matcher::from_system(), &base) {
            return None;
        }
        let name = match base.host()? {
            url::Host::Domain(d) => d.to_string(),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        let tls = match base.scheme() {
            "https" => Some((
                host.tls.clone(),
                rustls::pki_types::ServerName::try_from(name.clone()).ok()?,
            )),
            _ => None,
        };
        let endpoint = Endpoint {
            authority: host_port(&base),
            host: name,
            port: base.port_or_known_default()?,
            tls,
        };
        let t = &self.inner.opts.timeouts;
        match Pipeline::connect(&endpoint, t.connect, t.headers.max(t.idle)).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!("{}: no pipelined connection: {e}", host.name);
                None
            }
        }
    }

    pub(crate) async fn authorization(
        &self,
        host: &Host,
        scopes: &Scopes,
    ) -> Result<Option<String>> {
        let provider = &*self.inner.opts.credentials;
        if let AuthStep::Header(h) = host.auth.authorization(scopes, provider)? {
            return Ok(h);
        }
        // One token request at a time per host; another task may have fetched it meanwhile.
        let _guard = host.auth.fetch_lock.lock().await;
        match host.auth.authorization(scopes, provider)? {
            AuthStep::Header(h) => Ok(h),
            AuthStep::Fetch(tr) => {
                let realm = Url::parse(&tr.realm).map_err(|e| Error::Auth {
                    host: host.auth.registry().to_string(),
                    reason: format!(
                        "the registry's token realm {:?} is not a URL: {e}",
                        tr.realm
                    ),
                    origin: None,
                })?;
                let realm_host = self.host_for_url(&realm)?;
                let mut url = realm.clone();
                let mut req = Req {
                    method: Method::GET,
                    url: realm.clone(),
                    headers: Vec::new(),
                    body: Body::Empty,
                };
                if tr.method_post {
                    let form = url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(tr.params.iter())
                        .finish();
                    req.method = Method::POST;
                    req.headers.push((
                        "content-type",
                        "application/x-www-form-urlencoded".to_string(),
                    ));
                    req.body = Body::Bytes(Bytes::from(form));
                } else {
                    url.query_pairs_mut().extend_pairs(tr.params.iter());
                    req.url = url;
                }
                tracing::debug!("{}: requesting a token for {}", host.name, tr.key);
                let started = Instant::now();
                let what = format!("getting a token for {}", host.auth.registry());
                let resp = self
                    .send_raw(&realm_host, &req, tr.basic.clone(), &what)
                    .await?;
                let status = resp.status().as_u16();
                if status != 200 {
                    let err = status_error(resp, &what, &realm_host.name).await;
                    return Err(match status {
                        401 | 403 => Error::Auth {
                            host: host.auth.registry().to_string(),
                            reason: format!("the token server refused the credentials ({err})"),
                            // A credential was sent (Basic, or a refresh token in the form).
                            origin: (tr.basic.is_some() || tr.method_post)
                                .then(|| host.auth.source())
                                .flatten(),
                        },
                        _ => err,
                    });
                }
                let body = read_limited(resp, 1024 * 1024, &what, &realm_host.name).await?;
                Ok(Some(host.auth.store_token(&tr.key, &body, started)?))
            }
        }
    }

    /// Sends `req` to the registry `host` with authentication: a 401 teaches the challenge and the
    /// request is sent once more with credentials or a fresh token.
    pub(crate) async fn send(
        &self,
        host: &Host,
        scopes: &Scopes,
        req: &Req,
        what: &str,
    ) -> Result<Response> {
        // Credentials stay with their origin: a URL the registry handed out (an upload Location)
        // on another scheme, host or port is sent to that host without them.
        let base = self.base(host).await?;
        if origin(&req.url) != origin(&base) {
            let other = self.host_for_url(&req.url)?;
            tracing::debug!(
                "{}: {} is another origin; sending no credentials there",
                host.name,
                redact(&req.url)
            );
            return self.send_raw(&other, req, None, what).await;
        }
        let mut scopes = scopes.clone();
        for round in 0..2 {
            let auth = self.authorization(host, &scopes).await?;
            let had_auth = auth.is_some();
            let resp = match self.send_raw(host, req, auth, what).await {
                Ok(r) if r.status().as_u16() == 400 => {
                    // What a TLS server answers to plain HTTP.
                    self.doubt_memory(host);
                    r
                }
                Ok(r) => r,
                Err(e) => {
                    self.doubt_memory(host);
                    return Err(e);
                }
            };
            if resp.status().as_u16() == 401 {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_challenge);
                match challenge {
                    Some(ch) if round == 0 => {
                        tracing::debug!(
                            "{}: 401, authenticating{}",
                            host.name,
                            if had_auth { " again" } else { "" }
                        );
                        if let Some(extra) = host.auth.learn(ch, &scopes) {
                            scopes = scopes.and_raw(&extra);
                        }
                        continue;
                    }
                    ch if had_auth => {
                        return Err(auth_rejected(host.auth.registry(), ch, host.auth.source()));
                    }
                    _ => {}
                }
            }
            return Ok(resp);
        }
        unreachable!("the loop returns")
    }

    /// Sends `req`, following redirects for GET and HEAD. `Authorization` is sent only to the
    /// origin of the first URL, never after a redirect to another origin.
    pub(crate) async fn send_raw(
        &self,
        host: &Host,
        req: &Req,
        auth: Option<String>,
        what: &str,
    ) -> Result<Response> {
        let mut url = req.url.clone();
        let first_origin = origin(&url);
        let mut auth = auth;
        let follow = req.method == Method::GET || req.method == Method::HEAD;
        for hop in 0..=10 {
            let hop_host;
            let h: &Host = if hop == 0 {
                host
            } else {
                hop_host = self.host_for_url(&url)?;
                &hop_host
            };
            if origin(&url) != first_origin {
                auth = None;
            }
            let streamed = match &req.body {
                Body::File { len, .. } => *len,
                Body::Empty | Body::Bytes(_) => 0,
            };
            let meter = Meter::new(
                &self.inner.opts.timeouts,
                streamed,
                Some(self.waiting_observer(what, &h.name)),
            );
            let mut rb = h.http.request(req.method.clone(), url.clone());
            for (k, v) in &req.headers {
                rb = rb.header(*k, v);
            }
            if let Some(a) = &auth {
                let mut v = HeaderValue::from_str(a)
                    .map_err(|_| Error::Invalid("invalid credential characters".into()))?;
                v.set_sensitive(true);
                rb = rb.header(AUTHORIZATION, v);
            }
            rb = match &req.body {
                Body::Empty => rb,
                Body::Bytes(b) => rb
                    .header("content-length", b.len().to_string())
                    .body(b.clone()),
                Body::File {
                    path,
                    offset,
                    len,
                    progress,
                } => rb.header("content-length", len.to_string()).body(
                    self.file_body(path, *offset, *len, *progress, &meter)
                        .await?,
                ),
            };
            tracing::debug!("{} {}", req.method, redact(&url));
            let sent_at = Instant::now();
            let resp = match meter.guard(rb.send()).await {
                Ok(sent) => sent.map_err(|e| transport_error(what, &h.name, e))?,
                Err(stalled) => return Err(stalled_error(what, &h.name, &stalled)),
            };
            if streamed == 0 {
                let took = u64::try_from(sent_at.elapsed().as_micros()).unwrap_or(u64::MAX);
                h.quickest_answer.fetch_min(took, Ordering::Relaxed);
            }
            // The body (read by the caller) stays under the same bounds.
            let resp = if req.method == Method::HEAD {
                resp
            } else {
                meter.response(resp)
            };
            tracing::debug!(
                "{} {} -> {}",
                req.method,
                redact(&url),
                resp.status().as_u16()
            );
            if follow
                && resp.status().is_redirection()
                && let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok())
            {
                let next = url.join(loc).map_err(|e| Error::Protocol {
                    what: what.to_string(),
                    host: h.name.clone(),
                    reason: format!("redirect to an invalid location: {e}"),
                })?;
                tracing::debug!("redirected to {}", redact(&next));
                url = next;
                continue;
            }
            return Ok(resp);
        }
        Err(Error::Protocol {
            what: what.to_string(),
            host: host.name.clone(),
            reason: "more than 10 redirects".into(),
        })
    }

    /// Tells the progress reporter once when a request of `what` to `host` has waited a while.
    fn waiting_observer(&self, what: &str, host: &str) -> rbuild_http::timeout::Observer {
        let (what, host) = (what.to_string(), host.to_string());
        let sink = self.inner.progress.clone();
        Arc::new(move |waited, limit| {
            sink.event(ProgressEvent::Waiting {
                what: what.clone(),
                host: host.clone(),
                waited,
                limit,
            })
        })
    }

    /// Runs `op` with the retry policy, telling the progress reporter about every retry.
    pub(crate) async fn retried<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let started = Instant::now();
        let policy = &self.inner.opts.retry;
        policy
            .run_observed(op, |attempt, e: &Error, delay| {
                tracing::info!(
                    "{what}: attempt {attempt} failed, retrying in {:.1}s: {e}",
                    delay.as_secs_f64()
                );
                self.progress(ProgressEvent::Retrying {
                    what: what.to_string(),
                    attempt,
                    max_attempts: policy.max_attempts,
                    delay,
                    elapsed: started.elapsed(),
                    reason: e.to_string(),
                });
            })
            .await
    }

    async fn file_body(
        &self,
        path: &std::path::Path,
        offset: u64,
        len: u64,
        progress: Option<Digest>,
        meter: &Meter,
    ) -> Result<reqwest::Body> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let io = |e: std::io::Error| {
            Error::Store(rbuild_oci::StoreError::Io {
                action: "read",
                path: path.to_path_buf(),
                source: e,
            })
        };
        let mut f = tokio::fs::File::open(path).await.map_err(io)?;
        f.seek(std::io::SeekFrom::Start(offset)).await.map_err(io)?;
        let stream = tokio_util::io::ReaderStream::with_capacity(f.take(len), 256 * 1024);
        let sink = self.inner.progress.clone();
        let stream = stream.inspect(move |chunk| {
            if let (Some(d), Ok(c)) = (progress, chunk) {
                sink.event(ProgressEvent::BlobAdvanced {
                    digest: d,
                    bytes: c.len() as u64,
                });
            }
        });
        Ok(reqwest::Body::wrap_stream(meter.sending(stream)))
    }
}

/// The error for a request still refused after authenticating.
fn auth_rejected(
    registry: &str,
    challenge: Option<crate::auth::Challenge>,
    origin: Option<String>,
) -> Error {
    use crate::auth::Challenge;
    let reason = match challenge {
        Some(Challenge::Basic) => {
            "the registry rejected the user name and password (401)".to_string()
        }
        Some(Challenge::Bearer {
            error: Some(e),
            scope,
            ..
        }) if e == "insufficient_scope" => format!(
            "the token does not grant {} (insufficient_scope); the credentials are missing or not allowed to do this",
            scope.as_deref().unwrap_or("the access needed")
        ),
        Some(Challenge::Bearer { error: Some(e), .. }) => {
            format!("the registry rejected the token ({e}), even a freshly issued one")
        }
        _ => "the registry refused the request after authenticating (401)".to_string(),
    };
    Error::Auth {
        host: registry.to_string(),
        reason,
        origin,
    }
}

/// Reads a small response body, refusing more than `limit` bytes.
pub(crate) async fn read_limited(
    resp: Response,
    limit: usize,
    what: &str,
    host: &str,
) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| transport_error(what, host, e))?;
        if body.len() + chunk.len() > limit {
            return Err(Error::Protocol {
                what: what.to_string(),
                host: host.to_string(),
                reason: format!("the response is larger than {limit} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_named_in_no_proxy_is_reached_directly() {
        let direct = |m: &Matcher, u: &str| !through_proxy(m, &Url::parse(u).unwrap());
        let corp = || {
            Matcher::builder()
                .https("http://proxy.corp:3128")
                .http("http://proxy.corp:3128")
        };
        let m = corp().no("127.0.0.1,.internal.corp").build();
        assert!(direct(&m, "http://127.0.0.1:5000/v2/"));
        assert!(direct(&m, "https://registry.internal.corp/v2/"));
        assert!(!direct(&m, "https://registry.example/v2/"));
        assert!(!direct(&corp().build(), "http://127.0.0.1:5000/v2/"));
        // Only HTTP_PROXY: an https registry is reached directly, as reqwest reaches it.
        let http_only = Matcher::builder().http("http://proxy.corp:3128").build();
        assert!(direct(&http_only, "https://registry.example/v2/"));
        assert!(!direct(&http_only, "http://registry.example/v2/"));
        // No proxy variable at all.
        assert!(direct(
            &Matcher::builder().build(),
            "https://registry.example/v2/"
        ));
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.0.0.2:80",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1:5000",
            "[fc00::1]:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn redaction_drops_queries_and_userinfo() {
        let u = Url::parse("https://u:p@cdn.example/blob?X-Amz-Signature=secret#f").unwrap();
        assert_eq!(redact(&u), "https://cdn.example/blob");
    }

    #[test]
    fn certs_d_directories_give_per_host_cas_and_client_certs() {
        let dir = tempfile::tempdir().unwrap();
        let host_dir = dir.path().join("reg.example:5000");
        std::fs::create_dir_all(&host_dir).unwrap();
        for f in [
            "ca.crt",
            "extra.crt",
            "client.cert",
            "client.key",
            "notes.txt",
        ] {
            std::fs::write(host_dir.join(f), "x").unwrap();
        }
        let c = Client::new(ClientOptions {
            certs_dirs: vec![dir.path().join("missing"), dir.path().to_path_buf()],
            ..Default::default()
        })
        .unwrap();
        let t = c.tls_for("reg.example:5000", false);
        assert_eq!(
            t.extra_ca_files,
            [host_dir.join("ca.crt"), host_dir.join("extra.crt")]
        );
        assert_eq!(
            t.client_cert,
            Some(ClientCert {
                cert: host_dir.join("client.cert"),
                key: host_dir.join("client.key")
            })
        );
        assert!(c.tls_for("other.example", false).extra_ca_files.is_empty());
    }

    #[test]
    fn insecure_matching() {
        let c = Client::new(ClientOptions {
            insecure_registries: vec!["reg.example:5000".into(), "other.example".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(c.is_insecure("reg.example:5000"));
        assert!(!c.is_insecure("reg.example:5001"));
        assert!(c.is_insecure("other.example:443"));
        assert!(!c.is_insecure("example"));
    }
}
