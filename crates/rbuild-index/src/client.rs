//! The index client: options, credentials, HTTP with retries, project pages and file lookup.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rbuild_python::{normalize_name, validate_name};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use url::Url;

use crate::error::{Error, Result};
use crate::find_links::FindLinks;
use crate::netrc::{Credentials, Netrc};
use crate::progress::Progress;
use crate::redact::{redact, redact_raw, redact_url};
use crate::simple::{IndexFile, parse_html, parse_json, safe_filename};

/// PyPI's simple index, the default `--index-url`.
pub const PYPI_SIMPLE: &str = "https://pypi.org/simple/";

/// What to ask an index for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PageFormat {
    /// PEP 691 JSON preferred, PEP 503 HTML accepted (what pip and uv send).
    #[default]
    Json,
    /// PEP 503 HTML only (`Accept: text/html`), for indexes that mishandle content negotiation.
    Html,
}

/// Where netrc credentials come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NetrcSource {
    /// `$NETRC`, else `~/.netrc` (a missing file is fine).
    #[default]
    Default,
    /// This file (a missing file is fine).
    File(PathBuf),
    /// No netrc.
    Disabled,
}

/// How often a request is retried.
///
/// Connection failures, timeouts, interrupted bodies, HTTP 408, 429 and 5xx are retried
/// ([`rbuild_http::is_transient_status`]): at most `max_attempts` attempts in all, waiting
/// `initial_delay × 2ⁿ` (capped at `max_delay`, ±50 % jitter) or what `Retry-After` asks (seconds or
/// an HTTP date, capped at `max_delay`) between them. A download cut off part way resumes where it
/// stopped. The schedule is [`rbuild_http::RetryPolicy`]'s, with no time budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// The first pause.
    pub initial_delay: Duration,
    /// The longest pause.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_delay: Duration::from_millis(300),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        }
    }

    /// The shared policy this one is: no time budget, `Retry-After` capped at `max_delay`.
    fn shared(&self) -> rbuild_http::RetryPolicy {
        rbuild_http::RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            initial_delay: self.initial_delay,
            max_delay: self.max_delay,
            max_elapsed: Duration::MAX,
            max_retry_after: self.max_delay,
        }
    }
}

/// Everything that configures an [`IndexClient`]. The CLI maps its flags one to one.
#[derive(Clone, Debug)]
pub struct IndexOptions {
    /// `--index-url`: replaces PyPI (`None` = [`PYPI_SIMPLE`]). May carry `user:password@`.
    pub index_url: Option<String>,
    /// `--extra-index-url`: searched after `index_url`, in order.
    pub extra_index_urls: Vec<String>,
    /// `--find-links DIR`: directories of wheels, searched before any index (and usable offline).
    pub find_links: Vec<PathBuf>,
    /// `--offline`: use only the store, find-links directories and local files; never the network.
    pub offline: bool,
    /// `--require-hashes`: a wheel without a sha256 from the lock is an error (instead of taking the
    /// hash from the index with a warning).
    pub require_hashes: bool,
    /// `--trusted-host`: hosts (`host` or `host:port`) that may be reached over plain http. Loopback
    /// addresses always may.
    pub trusted_hosts: Vec<String>,
    /// Extra CA certificates (PEM files) trusted besides the system store.
    pub extra_ca_files: Vec<PathBuf>,
    /// Where netrc credentials come from.
    pub netrc: NetrcSource,
    /// How many downloads run at once (at least 1).
    pub concurrency: usize,
    /// Retries.
    pub retry: RetryPolicy,
    /// What to ask indexes for.
    pub format: PageFormat,
    /// Time bounds of every request (connect, idle, response head, overall deadline); the default
    /// honours `RBUILD_HTTP_TIMEOUT` ([`rbuild_http::Timeouts::from_env`]).
    pub timeouts: rbuild_http::Timeouts,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            index_url: None,
            extra_index_urls: Vec::new(),
            find_links: Vec::new(),
            offline: false,
            require_hashes: false,
            trusted_hosts: Vec::new(),
            extra_ca_files: Vec::new(),
            netrc: NetrcSource::Default,
            concurrency: 8,
            retry: RetryPolicy::default(),
            format: PageFormat::Json,
            timeouts: rbuild_http::Timeouts::from_env(),
        }
    }
}

/// Retries of a request that has run at least this long are shown at default verbosity.
const RETRY_NOTICE_AFTER: Duration = Duration::from_secs(3);

/// The longest project page rbuild reads (numpy's JSON page is a few MB).
const MAX_PAGE_BYTES: usize = 64 << 20;

const ACCEPT_JSON: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";
const ACCEPT_HTML: &str = "application/vnd.pypi.simple.v1+html, text/html;q=0.9";

/// A page-cache cell: `None` inside means the index does not know the project (404).
type PageCell = Arc<tokio::sync::OnceCell<Option<Arc<Vec<IndexFile>>>>>;

/// A client for PEP 691/503 indexes and find-links directories. Cheap to clone.
///
/// Nothing touches the network until a lookup or download needs it, and in offline mode nothing
/// ever does. Project pages are fetched once per client and shared by every lookup.
#[derive(Clone)]
pub struct IndexClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) opts: IndexOptions,
    /// `index_url` then `extra_index_urls`: credential-free, ending in `/`.
    indexes: Vec<Url>,
    /// Credentials from index URLs, by `host:port`.
    url_creds: HashMap<String, Credentials>,
    netrc: Option<Netrc>,
    http: Mutex<Option<reqwest::Client>>,
    pages: tokio::sync::Mutex<HashMap<String, PageCell>>,
    pub(crate) find_links: FindLinks,
}

impl std::fmt::Debug for IndexClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexClient")
            .field("indexes", &self.indexes())
            .field("find_links", &self.inner.opts.find_links)
            .field("offline", &self.inner.opts.offline)
            .finish_non_exhaustive()
    }
}

/// A URL's origin (`scheme://host:port`): credentials from an index URL go to that origin only.
pub(crate) fn host_key(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or("").to_ascii_lowercase(),
        url.port_or_known_default().unwrap_or(0)
    )
}

fn percent_decoded(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Parses an index URL: strips and returns its credentials, ensures a trailing `/`.
fn parse_index_url(raw: &str) -> Result<(Url, Option<Credentials>)> {
    let mut url = Url::parse(raw.trim()).map_err(|e| Error::InvalidUrl {
        url: redact_raw(raw),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(Error::InvalidUrl {
            url: redact_url(&url),
            reason: "an index URL must be https:// (or http:// for loopback and trusted hosts)"
                .to_string(),
        });
    }
    if url.host_str().is_none() {
        return Err(Error::InvalidUrl {
            url: redact_url(&url),
            reason: "it has no host".to_string(),
        });
    }
    let creds = if !url.username().is_empty() || url.password().is_some() {
        let c = Credentials {
            username: percent_decoded(url.username()),
            password: url.password().map(percent_decoded),
        };
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Some(c)
    } else {
        None
    };
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok((url, creds))
}

/// A failed attempt: retried or not.
pub(crate) enum Failure {
    Retry(Error, Option<Duration>),
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Fatal(e)
    }
}

impl rbuild_http::Transient for Failure {
    fn is_transient(&self) -> bool {
        matches!(self, Failure::Retry(..))
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Retry(_, after) => *after,
            Failure::Fatal(_) => None,
        }
    }

    /// A network error that persisted says how many attempts were made.
    fn gave_up(self, attempts: u32) -> Self {
        match self {
            Failure::Retry(mut e, after) => {
                if let Error::Network { attempts: a, .. } = &mut e {
                    *a = attempts;
                }
                Failure::Retry(e, after)
            }
            fatal => fatal,
        }
    }
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::Retry(e, _) | Failure::Fatal(e) => e,
        }
    }
}

/// Describes a reqwest error without its URL (which we print ourselves, redacted), with its causes.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    if let Some(stalled) = rbuild_http::find_stalled(e) {
        return stalled.to_string();
    }
    let mut parts: Vec<String> = Vec::new();
    let top = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else if e.is_body() || e.is_decode() {
        "the response body was cut off".to_string()
    } else {
        "request failed".to_string()
    };
    parts.push(top);
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let text = s.to_string();
        if !parts.iter().any(|p| p == &text) {
            parts.push(text);
        }
        src = s.source();
    }
    redact(&parts.join(": "))
}

pub(crate) fn network_failure(url: &Url, e: &reqwest::Error) -> Failure {
    Failure::Retry(
        Error::Network {
            url: redact_url(url),
            attempts: 1,
            reason: describe(e),
        },
        None,
    )
}

/// Turns a non-success status into a failure (retried for 5xx and 429).
pub(crate) fn status_failure(url: &Url, resp: &reqwest::Response) -> Failure {
    let status = resp.status().as_u16();
    let hint = match status {
        401 | 403 => "; the index wants credentials: put them in the index URL \
                      (https://user:token@host/simple/) or in ~/.netrc (or the file NETRC names)"
            .to_string(),
        404 | 410 => "; the file is not (or no longer) there: regenerate the lock".to_string(),
        407 => "; the proxy wants credentials: put them in HTTPS_PROXY".to_string(),
        _ => String::new(),
    };
    let err = Error::Status {
        url: redact_url(url),
        status,
        hint,
    };
    if rbuild_http::is_transient_status(status) {
        Failure::Retry(err, rbuild_http::retry::retry_after(resp.headers()))
    } else {
        Failure::Fatal(err)
    }
}

impl IndexClient {
    /// Builds a client. Validates every index URL and reads the netrc file; makes no request.
    ///
    /// Search order for a file: find-links directories, then the lock's own index (when the request
    /// names one), then `index_url` (PyPI by default), then each `extra_index_urls` in order. The first
    /// place that lists the file wins; an index that fails is skipped when a later one lists the file
    /// (the sha256 pins the content either way), and its error is reported when none does.
    pub fn new(opts: IndexOptions) -> Result<Self> {
        let mut url_creds = HashMap::new();
        let mut indexes: Vec<Url> = Vec::new();
        let primary = opts.index_url.as_deref().unwrap_or(PYPI_SIMPLE);
        for raw in std::iter::once(primary).chain(opts.extra_index_urls.iter().map(String::as_str))
        {
            let (url, creds) = parse_index_url(raw)?;
            if let Some(c) = creds {
                url_creds.entry(host_key(&url)).or_insert(c);
            }
            if !indexes.contains(&url) {
                indexes.push(url);
            }
        }
        let netrc = match &opts.netrc {
            NetrcSource::Disabled => None,
            NetrcSource::File(p) => Netrc::load(p)?,
            NetrcSource::Default => match Netrc::default_path() {
                Some(p) => Netrc::load(&p)?,
                None => None,
            },
        };
        let client = IndexClient {
            inner: Arc::new(Inner {
                find_links: FindLinks::new(opts.find_links.clone()),
                opts,
                indexes,
                url_creds,
                netrc,
                http: Mutex::new(None),
                pages: tokio::sync::Mutex::new(HashMap::new()),
            }),
        };
        for url in client.inner.indexes.clone() {
            client.check_transport(&url)?;
        }
        Ok(client)
    }

    /// The options this client was built with.
    pub fn options(&self) -> &IndexOptions {
        &self.inner.opts
    }

    /// The configured indexes in search order (credentials redacted; they are stripped anyway).
    pub fn indexes(&self) -> Vec<String> {
        self.inner.indexes.iter().map(redact_url).collect()
    }

    /// The indexes to search for a package whose lock names `lock_index`: that one first, then the
    /// configured ones. Credentials in `lock_index` are used for its host.
    fn search_order(&self, lock_index: Option<&str>) -> Result<Vec<(Url, Option<Credentials>)>> {
        let mut out: Vec<(Url, Option<Credentials>)> = Vec::new();
        if let Some(raw) = lock_index {
            let (url, creds) = parse_index_url(raw)?;
            self.check_transport(&url)?;
            out.push((url, creds));
        }
        for url in &self.inner.indexes {
            if !out.iter().any(|(u, _)| u == url) {
                out.push((url.clone(), None));
            }
        }
        Ok(out)
    }

    /// Refuses plain http except for loopback and trusted hosts, and any scheme but http(s).
    pub(crate) fn check_transport(&self, url: &Url) -> Result<()> {
        match url.scheme() {
            "https" => Ok(()),
            "http" => {
                let host = url.host_str().unwrap_or("");
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                let loopback = host.eq_ignore_ascii_case("localhost")
                    || bare
                        .parse::<IpAddr>()
                        .map(|ip| ip.is_loopback())
                        .unwrap_or(false);
                let with_port = format!("{host}:{}", url.port_or_known_default().unwrap_or(80));
                let trusted =
                    self.inner.opts.trusted_hosts.iter().any(|t| {
                        t.eq_ignore_ascii_case(host) || t.eq_ignore_ascii_case(&with_port)
                    });
                if loopback || trusted {
                    Ok(())
                } else {
                    Err(Error::InsecureUrl {
                        url: redact_url(url),
                        host: host.to_string(),
                    })
                }
            }
            other => Err(Error::InvalidUrl {
                url: redact_url(url),
                reason: format!("the `{other}` scheme is not supported here (https or http only)"),
            }),
        }
    }

    /// The reqwest client, built on first use (so offline runs never load TLS roots).
    pub(crate) fn http(&self) -> Result<reqwest::Client> {
        if self.inner.opts.offline {
            // Not reached: offline paths never ask for the client. Kept as a guard.
            return Err(Error::Offline {
                missing: vec!["(a request to an index was needed)".to_string()],
            });
        }
        let mut guard = self.inner.http.lock().expect("http client lock");
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let tls = crate::tls::client_config(&self.inner.opts.extra_ca_files)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!("rbuild/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(self.inner.opts.timeouts.connect)
            .build()
            .map_err(|e| Error::Tls(describe(&e)))?;
        *guard = Some(client.clone());
        Ok(client)
    }

    /// A GET request for `url` with the credentials for its host: those from `extra` (the lock's own
    /// index), else from a configured index URL, else from netrc.
    pub(crate) fn get(
        &self,
        http: &reqwest::Client,
        url: &Url,
        extra: Option<&(Url, Credentials)>,
    ) -> reqwest::RequestBuilder {
        let key = host_key(url);
        let creds = extra
            .filter(|(u, _)| host_key(u) == key)
            .map(|(_, c)| c)
            .or_else(|| self.inner.url_creds.get(&key))
            .or_else(|| {
                self.inner
                    .netrc
                    .as_ref()
                    .and_then(|n| n.get(url.host_str().unwrap_or("")))
            });
        let req = http.get(url.clone());
        match creds {
            Some(c) => req.basic_auth(&c.username, c.password.as_deref()),
            None => req,
        }
    }

    /// Sends `req` (for `url`) under the time bounds: a server that does not answer, or whose
    /// body stalls, fails the attempt with a retried error that says how long it waited.
    /// Redirects are followed by reqwest, which drops `Authorization` when the origin changes.
    pub(crate) async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<reqwest::Response, Failure> {
        let meter = rbuild_http::Meter::new(&self.inner.opts.timeouts, 0, None);
        match meter.guard(req.send()).await {
            Ok(Ok(resp)) => Ok(meter.response(resp)),
            Ok(Err(e)) => Err(network_failure(url, &e)),
            Err(stalled) => Err(Failure::Retry(
                Error::Network {
                    url: redact_url(url),
                    attempts: 1,
                    reason: stalled.to_string(),
                },
                None,
            )),
        }
    }

    /// Runs `op` with the retry policy. `op` gets the attempt number (from 1).
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        url: &Url,
        progress: Option<&dyn Progress>,
        op: F,
    ) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let started = std::time::Instant::now();
        self.inner
            .opts
            .retry
            .shared()
            .run_observed(op, |attempt, failure, delay| {
                if let (Some(p), Failure::Retry(e, _)) = (progress, failure) {
                    if started.elapsed().saturating_add(delay) >= RETRY_NOTICE_AFTER {
                        // Slow enough to be shown at default verbosity.
                        p.event(&rbuild_oci::progress::Event::Notice {
                            message: format!(
                                "{}: attempt {attempt} failed ({e}); retrying in {}",
                                redact_url(url),
                                rbuild_http::timeout::format_secs(delay)
                            ),
                        });
                    } else {
                        p.retrying(&redact_url(url), attempt, &e.to_string());
                    }
                }
            })
            .await
            .map_err(Failure::into_error)
    }

    /// Fetches a project page (no cache). `Ok(None)`: the index does not know the project.
    async fn fetch_page(
        &self,
        page: &Url,
        creds: Option<&(Url, Credentials)>,
    ) -> Result<Option<Vec<IndexFile>>> {
        let http = self.http()?;
        let accept = match self.inner.opts.format {
            PageFormat::Json => ACCEPT_JSON,
            PageFormat::Html => ACCEPT_HTML,
        };
        self.with_retries(page, None, |_| {
            let http = http.clone();
            async move {
                let resp = self
                    .send(
                        self.get(&http, page, creds)
                            .header(ACCEPT, HeaderValue::from_static(accept)),
                        page,
                    )
                    .await?;
                if resp.status().as_u16() == 404 {
                    return Ok(None);
                }
                if !resp.status().is_success() {
                    return Err(status_failure(page, &resp));
                }
                let final_url = resp.url().clone();
                let content_type = resp
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let mut body = Vec::new();
                let mut stream = resp.bytes_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| network_failure(page, &e))?;
                    if body.len() + chunk.len() > MAX_PAGE_BYTES {
                        return Err(Failure::Fatal(Error::InvalidPage {
                            url: redact_url(page),
                            reason: format!("it is larger than {MAX_PAGE_BYTES} bytes"),
                        }));
                    }
                    body.extend_from_slice(&chunk);
                }
                let is_json = content_type.contains("json")
                    || (content_type.is_empty() && body.first() == Some(&b'{'));
                let parsed = if is_json {
                    parse_json(&body, &final_url)
                } else {
                    parse_html(&String::from_utf8_lossy(&body), &final_url)
                };
                parsed.map(Some).map_err(|reason| {
                    Failure::Fatal(Error::InvalidPage {
                        url: redact_url(page),
                        reason,
                    })
                })
            }
        })
        .await
    }

    /// A project page, fetched once per client.
    async fn project_page(
        &self,
        index: &Url,
        creds: Option<&(Url, Credentials)>,
        name: &str,
    ) -> Result<Option<Arc<Vec<IndexFile>>>> {
        // `name` is validated and normalized: letters, digits and `-` only.
        let page = index
            .join(&format!("{name}/"))
            .map_err(|e| Error::InvalidUrl {
                url: redact_url(index),
                reason: e.to_string(),
            })?;
        let cell = {
            let mut pages = self.inner.pages.lock().await;
            pages.entry(page.to_string()).or_default().clone()
        };
        cell.get_or_try_init(|| async { Ok(self.fetch_page(&page, creds).await?.map(Arc::new)) })
            .await
            .cloned()
    }

    /// The wheels of project `name` in the `--find-links` directories only (no index is asked),
    /// in directory order then file name; hashes are not computed here.
    pub fn find_links_files(&self, name: &str) -> Result<Vec<IndexFile>> {
        validate_name(name)?;
        self.inner.find_links.files(&normalize_name(name))
    }

    /// Every file the find-links directories and the indexes list for `name`, in search order (find
    /// links, then the indexes). A name that is not valid is refused before any request.
    pub async fn list_files(&self, name: &str) -> Result<Vec<IndexFile>> {
        self.list_files_in(name, None).await
    }

    /// Like [`IndexClient::list_files`], searching `lock_index` (the index a lock names for the
    /// package) first.
    ///
    /// Fails if any index fails (the list would be incomplete) or if no place knows the project.
    pub async fn list_files_in(
        &self,
        name: &str,
        lock_index: Option<&str>,
    ) -> Result<Vec<IndexFile>> {
        validate_name(name)?;
        let norm = normalize_name(name);
        let mut out = self.inner.find_links.files(&norm)?;
        let mut known = !out.is_empty();
        let mut searched = self.inner.find_links.describe();
        if !self.inner.opts.offline {
            for (index, creds) in self.search_order(lock_index)? {
                searched.push(redact_url(&index));
                let pair = creds.map(|c| (index.clone(), c));
                if let Some(files) = self.project_page(&index, pair.as_ref(), &norm).await? {
                    known = true;
                    out.extend(files.iter().cloned());
                }
            }
        }
        if !known {
            if self.inner.opts.offline {
                searched.push("(offline: no index was asked)".to_string());
            }
            return Err(Error::ProjectNotFound {
                name: norm,
                searched,
            });
        }
        Ok(out)
    }

    /// Finds `filename` of package `name` in the configured places (see [`IndexClient::new`] for the
    /// order). A find-links file is hashed on first use, so its `sha256` is always known.
    pub async fn find_wheel_url(&self, name: &str, filename: &str) -> Result<IndexFile> {
        self.find_file(name, filename, None).await
    }

    /// Like [`IndexClient::find_wheel_url`], searching `lock_index` first.
    pub async fn find_file(
        &self,
        name: &str,
        filename: &str,
        lock_index: Option<&str>,
    ) -> Result<IndexFile> {
        validate_name(name)?;
        if !safe_filename(filename) {
            return Err(Error::InvalidFilename {
                name: name.to_string(),
                filename: filename.to_string(),
                reason: "it contains a path separator or a control character".to_string(),
            });
        }
        let norm = normalize_name(name);
        if let Some(found) = self.inner.find_links.find(filename).await? {
            return Ok(found);
        }
        self.find_on_indexes(&norm, filename, lock_index).await
    }

    /// Looks `filename` up on the indexes only (no find-links).
    pub(crate) async fn find_on_indexes(
        &self,
        norm: &str,
        filename: &str,
        lock_index: Option<&str>,
    ) -> Result<IndexFile> {
        let mut searched = self.inner.find_links.describe();
        let mut errors = Vec::new();
        let mut known = false;
        let mut available: Vec<String> = Vec::new();
        if self.inner.opts.offline {
            return Err(Error::Offline {
                missing: vec![filename.to_string()],
            });
        }
        for (index, creds) in self.search_order(lock_index)? {
            searched.push(redact_url(&index));
            let pair = creds.map(|c| (index.clone(), c));
            match self.project_page(&index, pair.as_ref(), norm).await {
                Ok(Some(files)) => {
                    known = true;
                    if let Some(f) = files.iter().find(|f| f.filename == filename) {
                        return Ok(f.clone());
                    }
                    available.extend(files.iter().map(|f| f.filename.clone()));
                }
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        if errors.len() == 1 {
            return Err(errors.pop().expect("one error"));
        }
        if !errors.is_empty() {
            return Err(Error::IndexesFailed {
                name: norm.to_string(),
                errors,
            });
        }
        if !known {
            return Err(Error::ProjectNotFound {
                name: norm.to_string(),
                searched,
            });
        }
        Err(Error::FileNotFound {
            name: norm.to_string(),
            filename: filename.to_string(),
            searched,
            available: closest(&available, filename, 8),
        })
    }
}

/// Up to `n` file names most like `filename` (longest common prefix first), for error messages.
fn closest(files: &[String], filename: &str, n: usize) -> Vec<String> {
    let mut scored: Vec<(usize, &String)> = files
        .iter()
        .map(|f| {
            let common = f
                .bytes()
                .zip(filename.bytes())
                .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
                .count();
            (common, f)
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(n).map(|(_, f)| f.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_urls_are_normalized_and_credentials_split() {
        let (u, c) = parse_index_url("https://us%40er:p%3Ass@idx.example/simple").unwrap();
        assert_eq!(u.as_str(), "https://idx.example/simple/");
        let c = c.unwrap();
        assert_eq!(c.username, "us@er");
        assert_eq!(c.password.as_deref(), Some("p:ss"));
        assert!(parse_index_url("ftp://x/").is_err());
        let e = parse_index_url("not a url user:pw@")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("pw"), "{e}");
    }

    #[test]
    fn plain_http_only_for_loopback_and_trusted_hosts() {
        let client = IndexClient::new(IndexOptions {
            index_url: Some("http://127.0.0.1:3141/simple".into()),
            trusted_hosts: vec!["mirror.lan:8080".into()],
            netrc: NetrcSource::Disabled,
            ..Default::default()
        })
        .unwrap();
        for ok in [
            "http://localhost/x",
            "http://[::1]:9/x",
            "http://mirror.lan:8080/x",
            "https://anything/x",
        ] {
            assert!(
                client.check_transport(&Url::parse(ok).unwrap()).is_ok(),
                "{ok}"
            );
        }
        let err = client
            .check_transport(&Url::parse("http://u:pw@mirror.lan/x").unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("--trusted-host mirror.lan"), "{err}");
        assert!(!err.contains("pw"), "{err}");
        assert!(
            client
                .check_transport(&Url::parse("file:///etc/passwd").unwrap())
                .is_err()
        );
        let err = IndexClient::new(IndexOptions {
            index_url: Some("http://pypi.example/simple".into()),
            netrc: NetrcSource::Disabled,
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, Error::InsecureUrl { .. }), "{err}");
    }

    #[test]
    fn closest_names_first() {
        let files: Vec<String> = [
            "a-1.0.tar.gz",
            "six-1.16.0-py3-none-any.whl",
            "six-1.17.0.tar.gz",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            closest(&files, "six-1.17.0-py2.py3-none-any.whl", 2),
            ["six-1.17.0.tar.gz", "six-1.16.0-py3-none-any.whl"]
        );
    }
}
