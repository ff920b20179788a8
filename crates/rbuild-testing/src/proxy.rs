//! A fault-injecting HTTP/1.1 proxy in front of a plain-HTTP registry.
//!
//! The proxy listens on `127.0.0.1:PORT` ([`FaultProxy::host`]); point the client at it instead
//! of the registry. Every connection carries one request: the proxy reads it (head and body),
//! forwards it to the registry with `Connection: close`, and streams the answer back with
//! `Connection: close` (a chunked or close-delimited body is re-sent chunked, so a cut-off body is
//! always detectable). The `Host` header is forwarded unchanged, so the registry's `Location`
//! headers (upload URLs) point back at the proxy.
//!
//! # Faults
//!
//! A rule is a method (`"*"` for any), a regex searched in the request target (path and query,
//! e.g. `r"/blobs/sha256:"` or `r"\?.*mount="`), a [`Fault`] and how often it fires ([`Times`]).
//! The first rule that matches and has not run out applies; other requests pass through.
//!
//! ```no_run
//! use rbuild_testing::{Fault, FaultProxy, Registry, Times};
//! use std::time::Duration;
//!
//! let registry = Registry::plain()?;
//! let proxy = FaultProxy::in_front_of(&registry)?;
//! // The first two blob GETs fail with 500, then the next one is cut after 1000 bytes.
//! proxy.inject("GET", r"/blobs/sha256:", Fault::Status(500), Times::First(2));
//! proxy.inject("GET", r"/blobs/sha256:", Fault::ResetAfter { bytes: 1000 }, Times::First(1));
//! // Every manifest PUT is slow.
//! proxy.inject("PUT", r"/manifests/", Fault::Delay(Duration::from_secs(2)), Times::Always);
//! let image = format!("{}/library/python:3.11-slim", proxy.host());
//! # let _ = image;
//! # Ok::<(), rbuild_testing::Error>(())
//! ```
//!
//! # The CDN listener
//!
//! [`Fault::RedirectToCdn`] answers `307 Temporary Redirect` with
//! `Location: http://127.0.0.1:CDN_PORT/cdn/ID/<original path>`, a second listener of the proxy
//! ([`FaultProxy::cdn_host`]) — a different origin. Like a signed CDN or S3 URL, the ID carries
//! the original request's `Authorization`: the CDN fetches the same bytes from the registry with
//! it, so the client must NOT send its own. A request to the CDN that has an `Authorization`
//! header is refused with 400 (as S3 does: "only one auth mechanism allowed") and recorded, so
//! tests can check [`FaultProxy::cdn_requests`] as well.
//!
//! [`Fault::UploadElsewhere`] does the same for uploads: the `Location` of an upload session the
//! registry opens is rewritten to `http://127.0.0.1:CDN_PORT/cdn/ID/<original path and query>`,
//! and the CDN passes the session's `PATCH`es and `PUT` on to the registry with the `POST`'s
//! credentials (rewriting the `Location`s it answers with again).
//!
//! # Time faults
//!
//! [`Fault::Stall`] accepts and then never answers; [`Fault::Trickle`] sends a body at a few bytes
//! a second; [`Fault::StallAfter`] stops part way; [`Fault::Throttle`] moves both bodies at a
//! steady rate (a slow but honest link, for uploads as well as downloads).
//!
//! # Counting
//!
//! [`FaultProxy::requests`] lists every request each listener saw, with its headers and the status
//! sent back (faulted ones included); [`FaultProxy::count`] and the named counters
//! ([`FaultProxy::blob_upload_starts`], [`FaultProxy::mounts`], ...) are built on it.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use regex::Regex;

use crate::error::{Error, Result};
use crate::http::{BodyReader, BodyWriter, Framing, Head, read_head, respond};
use crate::registry::Registry;

/// What to do to a matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (and a registry-style JSON error body) without forwarding.
    Status(u16),
    /// Answer `429 Too Many Requests` with `Retry-After: SECS` without forwarding.
    TooManyRequests {
        /// The `Retry-After` value in seconds.
        retry_after_secs: u64,
    },
    /// Forward, send the response head and the first `bytes` bytes of the body, then reset the
    /// connection (TCP RST). Choose `bytes` smaller than the body.
    ResetAfter {
        /// Body bytes sent before the reset.
        bytes: u64,
    },
    /// Forward, send the response head and the first `bytes` bytes of the body, then close the
    /// connection cleanly (FIN): the client reads exactly `bytes` bytes of a body announced
    /// longer. Choose `bytes` smaller than the body.
    CloseAfter {
        /// Body bytes sent before the close.
        bytes: u64,
    },
    /// Wait this long before forwarding (a slow response).
    Delay(Duration),
    /// Forward, send `bytes` bytes of the body, then stop sending for `duration`, then go on
    /// (tests read timeouts).
    StallAfter {
        /// Body bytes sent before the stall.
        bytes: u64,
        /// How long to stall.
        duration: Duration,
    },
    /// Forward, but invert the body byte at `offset` (the length is unchanged).
    CorruptByte {
        /// Offset in the response body.
        offset: u64,
    },
    /// Answer `307` redirecting to the CDN listener, which serves the same bytes (see the module
    /// docs). Meant for blob GETs.
    RedirectToCdn,
    /// Accept the connection and read the request head, then neither read the body nor answer
    /// for this long (then close): a registry that hangs.
    Stall(Duration),
    /// Forward, send the response head at once, then the body at this many bytes per second
    /// (`1`: one byte a second).
    Trickle {
        /// Body bytes per second.
        bytes_per_sec: u64,
    },
    /// Forward at a steady rate: the request body is read from the client and the response body
    /// sent to it at this many bytes per second (a slow but honest link).
    Throttle {
        /// Bytes per second, each way.
        bytes_per_sec: u64,
    },
    /// Forward, and point the upload `Location` of the answer (`202` to a `POST
    /// .../blobs/uploads/`) at the CDN listener, which passes the session's `PATCH`/`PUT`s on to
    /// the registry with the credentials of the `POST` (like object storage with a signed URL)
    /// and refuses any request that brings its own `Authorization` (see the module docs).
    UploadElsewhere,
}

/// How many matching requests a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times {
    /// The first N matching requests, then the rule is spent.
    First(usize),
    /// Every matching request.
    Always,
}

/// Which listener of the proxy saw a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// The proxy's main address ([`FaultProxy::host`]).
    Main,
    /// The CDN listener that redirected blob GETs go to ([`FaultProxy::cdn_host`]).
    Cdn,
}

/// One request a listener saw.
#[derive(Clone)]
pub struct SeenRequest {
    /// Which listener.
    pub listener: Listener,
    /// The method.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// The request headers as received (including `Authorization`, which `Debug` redacts).
    pub headers: Vec<(String, String)>,
    /// The status sent back (injected or the registry's); 0 if the request failed before any.
    pub status: u16,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
    /// When the proxy had read the request head (before any injected delay): requests of one
    /// round trip arrive together.
    pub at: std::time::Instant,
}

impl SeenRequest {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `Authorization` values are shown as `<redacted>`.
impl std::fmt::Debug for SeenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                if n.eq_ignore_ascii_case("authorization") {
                    (n.clone(), "<redacted>".into())
                } else {
                    (n.clone(), v.clone())
                }
            })
            .collect();
        f.debug_struct("SeenRequest")
            .field("listener", &self.listener)
            .field("method", &self.method)
            .field("target", &self.target)
            .field("headers", &headers)
            .field("status", &self.status)
            .field("fault", &self.fault)
            .finish()
    }
}

struct Rule {
    listener: Listener,
    method: String,
    target: Regex,
    fault: Fault,
    times: Times,
    hits: AtomicUsize,
}

struct CdnEntry {
    target: String,
    authorization: Option<String>,
    /// An upload session: the upstream target is the CDN path after `/cdn/ID`.
    passthrough: bool,
}

struct State {
    upstream: SocketAddr,
    main: SocketAddr,
    cdn: SocketAddr,
    rules: Mutex<Vec<Arc<Rule>>>,
    seen: Mutex<Vec<SeenRequest>>,
    cdn_entries: Mutex<Vec<CdnEntry>>,
    /// Connections that closed before sending an HTTP request head (a TLS hello, a probe).
    unreadable: std::sync::atomic::AtomicUsize,
}

/// The proxy. Both listeners stop when it is dropped. `Send + Sync`.
pub struct FaultProxy {
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("main", &self.state.main)
            .field("cdn", &self.state.cdn)
            .field("upstream", &self.state.upstream)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FaultProxy {
    /// Starts a proxy for the plain-HTTP server at `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: SocketAddr) -> Result<FaultProxy> {
        let bind = || {
            TcpListener::bind(("127.0.0.1", 0))
                .map_err(|e| Error::io("binding the fault proxy to 127.0.0.1:0", e))
        };
        let (main_l, cdn_l) = (bind()?, bind()?);
        let addr = |l: &TcpListener| {
            l.local_addr()
                .map_err(|e| Error::io("reading the fault proxy's address", e))
        };
        let state = Arc::new(State {
            upstream,
            main: addr(&main_l)?,
            cdn: addr(&cdn_l)?,
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            cdn_entries: Mutex::new(Vec::new()),
            unreadable: std::sync::atomic::AtomicUsize::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (listener, which) in [(main_l, Listener::Main), (cdn_l, Listener::Cdn)] {
            let (state, stop) = (state.clone(), stop.clone());
            let t = std::thread::Builder::new()
                .name(format!("rbuild-testing-proxy-{which:?}"))
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let state = state.clone();
                        std::thread::spawn(move || handle(&state, which, conn));
                    }
                })
                .map_err(|e| Error::io("spawning a fault proxy thread", e))?;
            threads.push(t);
        }
        Ok(FaultProxy {
            state,
            stop,
            threads,
        })
    }

    /// Starts a proxy in front of `registry`, which must be plain HTTP (not a TLS mode).
    pub fn in_front_of(registry: &Registry) -> Result<FaultProxy> {
        if registry.is_tls() {
            return Err(Error::Tls(
                "the fault proxy speaks plain HTTP only; start the registry in Plain, Htpasswd or Token mode"
                    .into(),
            ));
        }
        FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], registry.port())))
    }

    /// `127.0.0.1:PORT` of the main listener: use it as the registry host in image references.
    pub fn host(&self) -> String {
        self.state.main.to_string()
    }

    /// `http://127.0.0.1:PORT` of the main listener.
    pub fn url(&self) -> String {
        format!("http://{}", self.state.main)
    }

    /// `127.0.0.1:PORT` of the CDN listener.
    pub fn cdn_host(&self) -> String {
        self.state.cdn.to_string()
    }

    /// Adds a rule on the main listener (see the module docs) and returns its id for
    /// [`FaultProxy::hits`].
    ///
    /// # Panics
    /// If `target_regex` is not a valid regex.
    pub fn inject(&self, method: &str, target_regex: &str, fault: Fault, times: Times) -> usize {
        self.inject_at(Listener::Main, method, target_regex, fault, times)
    }

    /// Adds a rule on a given listener ([`Fault::RedirectToCdn`] is ignored on the CDN itself).
    ///
    /// # Panics
    /// If `target_regex` is not a valid regex.
    pub fn inject_at(
        &self,
        listener: Listener,
        method: &str,
        target_regex: &str,
        fault: Fault,
        times: Times,
    ) -> usize {
        let target = Regex::new(target_regex).expect("FaultProxy::inject: invalid regex");
        let mut rules = lock(&self.state.rules);
        rules.push(Arc::new(Rule {
            listener,
            method: method.to_string(),
            target,
            fault,
            times,
            hits: AtomicUsize::new(0),
        }));
        rules.len() - 1
    }

    /// How many requests rule `id` has applied to.
    pub fn hits(&self, id: usize) -> usize {
        lock(&self.state.rules)
            .get(id)
            .map_or(0, |r| r.hits.load(Ordering::SeqCst))
    }

    /// Removes every rule: from now on requests pass through (rule ids stay valid for
    /// [`FaultProxy::hits`] only until the next `inject`).
    pub fn clear_faults(&self) {
        lock(&self.state.rules).clear();
    }

    /// Forgets the recorded requests.
    pub fn reset_counters(&self) {
        lock(&self.state.seen).clear();
        self.state.unreadable.store(0, Ordering::SeqCst);
    }

    /// Connections (to either listener) that ended without an HTTP request head, such as a
    /// client's HTTPS probe (a TLS hello), since the last [`FaultProxy::reset_counters`].
    pub fn unreadable_connections(&self) -> usize {
        self.state.unreadable.load(Ordering::SeqCst)
    }

    /// Every request the main listener saw, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen(Listener::Main)
    }

    /// Every request the CDN listener saw, oldest first.
    pub fn cdn_requests(&self) -> Vec<SeenRequest> {
        self.seen(Listener::Cdn)
    }

    fn seen(&self, listener: Listener) -> Vec<SeenRequest> {
        lock(&self.state.seen)
            .iter()
            .filter(|r| r.listener == listener)
            .cloned()
            .collect()
    }

    /// Requests on the main listener with this method (`"*"` for any) whose target matches
    /// `target_regex`.
    ///
    /// # Panics
    /// If `target_regex` is not a valid regex.
    pub fn count(&self, method: &str, target_regex: &str) -> usize {
        let re = Regex::new(target_regex).expect("FaultProxy::count: invalid regex");
        self.requests()
            .iter()
            .filter(|r| (method == "*" || r.method == method) && re.is_match(&r.target))
            .count()
    }

    /// Upload sessions opened without a mount: `POST /v2/NAME/blobs/uploads/` without `mount=`.
    pub fn blob_upload_starts(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && UPLOADS.with(|re| re.is_match(&r.target))
                    && !r.target.contains("mount=")
            })
            .count()
    }

    /// Finished uploads: `PUT /v2/NAME/blobs/uploads/UUID?...digest=...` (one per uploaded blob).
    pub fn blob_upload_finishes(&self) -> usize {
        self.count("PUT", r"^/v2/.+/blobs/uploads/[^?/]+")
    }

    /// Mount attempts: `POST /v2/NAME/blobs/uploads/?mount=...` (any answer).
    pub fn mount_attempts(&self) -> usize {
        self.count("POST", r"^/v2/.+/blobs/uploads/?\?.*\bmount=")
    }

    /// Successful mounts: mount attempts the registry answered with 201 (it answers 202 and
    /// opens an upload session when it cannot mount).
    pub fn mounts(&self) -> usize {
        let re = Regex::new(r"^/v2/.+/blobs/uploads/?\?.*\bmount=").expect("valid regex");
        self.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.status == 201 && re.is_match(&r.target))
            .count()
    }

    /// Manifest and index PUTs: `PUT /v2/NAME/manifests/REF`.
    pub fn manifest_puts(&self) -> usize {
        self.count("PUT", r"^/v2/.+/manifests/")
    }

    /// Blob GETs on the main listener: `GET /v2/NAME/blobs/sha256:...`.
    pub fn blob_gets(&self) -> usize {
        self.count("GET", r"^/v2/.+/blobs/sha256:")
    }
}

thread_local! {
    static UPLOADS: Regex = Regex::new(r"^/v2/.+/blobs/uploads/?(\?.*)?$").expect("valid regex");
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.state.main);
        let _ = TcpStream::connect(self.state.cdn);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn pick_fault(state: &State, listener: Listener, method: &str, target: &str) -> Option<Fault> {
    let rules = lock(&state.rules);
    for rule in rules.iter() {
        if rule.listener != listener
            || !(rule.method == "*" || rule.method.eq_ignore_ascii_case(method))
            || !rule.target.is_match(target)
            || (listener == Listener::Cdn && rule.fault == Fault::RedirectToCdn)
        {
            continue;
        }
        let hits = rule.hits.fetch_add(1, Ordering::SeqCst);
        match rule.times {
            Times::Always => return Some(rule.fault.clone()),
            Times::First(n) if hits < n => return Some(rule.fault.clone()),
            Times::First(_) => {
                rule.hits.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
    None
}

fn handle(state: &State, listener: Listener, client: TcpStream) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(120)));
    let Ok(read_half) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let Ok(Some(head)) = read_head(&mut reader) else {
        state.unreadable.fetch_add(1, Ordering::SeqCst);
        return;
    };
    let method = head.start[0].clone();
    let target = head.start[1].clone();
    let mut seen = SeenRequest {
        listener,
        method: method.clone(),
        target: target.clone(),
        headers: head.headers.clone(),
        status: 0,
        fault: None,
        at: std::time::Instant::now(),
    };
    let fault = pick_fault(state, listener, &method, &target);
    seen.fault = fault.clone();
    // Recorded before anything is answered, and its status set before the client can see the
    // response head, so a client that got its answer always finds the complete record.
    let index = {
        let mut all = lock(&state.seen);
        all.push(seen);
        all.len() - 1
    };
    let set_status = |status: u16| {
        if let Some(r) = lock(&state.seen).get_mut(index) {
            r.status = status;
        }
    };
    let outcome = serve(
        state,
        listener,
        head,
        &mut reader,
        &client,
        fault,
        &set_status,
    );
    set_status(outcome.status);
    if outcome.reset {
        // SO_LINGER 0 makes the close below send RST instead of FIN.
        let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
    }
    drop(reader);
    drop(client);
}

struct Outcome {
    status: u16,
    reset: bool,
}

fn drain(reader: &mut BufReader<TcpStream>, head: &Head) {
    let _ = std::io::copy(
        &mut BodyReader::new(reader, head.request_framing()),
        &mut std::io::sink(),
    );
}

fn serve(
    state: &State,
    listener: Listener,
    head: Head,
    reader: &mut BufReader<TcpStream>,
    client: &TcpStream,
    fault: Option<Fault>,
    set_status: &dyn Fn(u16),
) -> Outcome {
    let mut out = client;
    let done = |status| Outcome {
        status,
        reset: false,
    };
    let mut upstream_target = head.start[1].clone();
    let mut extra_auth = None;
    let mut relocate = None;
    if listener == Listener::Cdn {
        let entry = head.start[1]
            .strip_prefix("/cdn/")
            .and_then(|rest| {
                let (id, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                Some((id.parse::<usize>().ok()?, tail.to_string()))
            })
            .and_then(|(id, tail)| {
                lock(&state.cdn_entries).get(id).map(|e| {
                    let target = if e.passthrough {
                        tail
                    } else {
                        e.target.clone()
                    };
                    (id, e.passthrough, target, e.authorization.clone())
                })
            });
        if !entry.as_ref().is_some_and(|e| e.1) || head.header("authorization").is_some() {
            drain(reader, &head);
        }
        let Some((id, passthrough, target, auth)) = entry else {
            set_status(404);
            let _ = respond(&mut out, 404, "Not Found", &[], b"no such CDN object\n");
            return done(404);
        };
        if head.header("authorization").is_some() {
            let body = b"<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed; \
                         the URL is already signed, do not send an Authorization header</Message></Error>\n";
            set_status(400);
            let _ = respond(
                &mut out,
                400,
                "Bad Request",
                &[("Content-Type", "application/xml".into())],
                body,
            );
            return done(400);
        }
        upstream_target = target;
        extra_auth = auth;
        if passthrough {
            relocate = Some(id);
        }
    }
    match &fault {
        Some(Fault::Status(code)) => {
            drain(reader, &head);
            let body = format!(
                r#"{{"errors":[{{"code":"UNKNOWN","message":"injected fault: status {code}"}}]}}"#
            );
            set_status(*code);
            let _ = respond(
                &mut out,
                *code,
                "Injected Fault",
                &[("Content-Type", "application/json".into())],
                body.as_bytes(),
            );
            return done(*code);
        }
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            drain(reader, &head);
            let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"injected fault: too many requests"}]}"#;
            set_status(429);
            let _ = respond(
                &mut out,
                429,
                "Too Many Requests",
                &[
                    ("Content-Type", "application/json".into()),
                    ("Retry-After", retry_after_secs.to_string()),
                ],
                body.as_bytes(),
            );
            return done(429);
        }
        Some(Fault::RedirectToCdn) if listener == Listener::Main => {
            drain(reader, &head);
            let id = {
                let mut entries = lock(&state.cdn_entries);
                entries.push(CdnEntry {
                    target: head.start[1].clone(),
                    authorization: head.header("authorization").map(str::to_string),
                    passthrough: false,
                });
                entries.len() - 1
            };
            let path = head.start[1].split('?').next().unwrap_or("");
            let location = format!("http://{}/cdn/{id}{path}", state.cdn);
            set_status(307);
            let _ = respond(
                &mut out,
                307,
                "Temporary Redirect",
                &[("Location", location)],
                b"",
            );
            return done(307);
        }
        Some(Fault::Delay(d)) => std::thread::sleep(*d),
        Some(Fault::Stall(d)) => {
            std::thread::sleep(*d);
            return done(0);
        }
        Some(Fault::UploadElsewhere) if listener == Listener::Main => {
            let mut entries = lock(&state.cdn_entries);
            entries.push(CdnEntry {
                target: String::new(),
                authorization: head.header("authorization").map(str::to_string),
                passthrough: true,
            });
            relocate = Some(entries.len() - 1);
        }
        _ => {}
    }
    let mut head = head;
    head.start[1] = upstream_target;
    if let Some(auth) = extra_auth {
        head.set("Authorization", auth);
    }
    match forward(
        state,
        head,
        reader,
        client,
        fault.as_ref(),
        relocate,
        set_status,
    ) {
        Ok(outcome) => outcome,
        Err((status, _err)) => {
            if status == 0 {
                set_status(502);
                let _ = respond(
                    &mut out,
                    502,
                    "Bad Gateway",
                    &[],
                    b"fault proxy: the upstream registry did not answer\n",
                );
                return done(502);
            }
            // The head was sent already: cut the connection so the client sees a broken body.
            Outcome {
                status,
                reset: true,
            }
        }
    }
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "transfer-encoding",
    "expect",
];

/// The path and query of a `Location` (absolute or not).
fn path_and_query(location: &str) -> &str {
    match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => location,
    }
}

/// Copies `from` to `to`, at most `rate` bytes per second when given (in pieces of a tenth of a
/// second's worth).
fn copy_paced(from: &mut dyn Read, to: &mut dyn Write, rate: Option<u64>) -> std::io::Result<u64> {
    let Some(rate) = rate else {
        return std::io::copy(from, to);
    };
    let piece = (rate / 10).clamp(1, 64 * 1024) as usize;
    let mut buf = vec![0u8; piece];
    let mut total = 0;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..n])?;
        to.flush()?;
        total += n as u64;
        std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
    }
}

/// Forwards the request (`head` already carries the upstream target and credentials) and streams
/// the answer back, applying body faults; with `relocate`, the answer's `Location` points at the
/// CDN entry of that id.
/// `Err((status, e))`: status 0 if nothing was sent to the client yet.
fn forward(
    state: &State,
    mut head: Head,
    reader: &mut BufReader<TcpStream>,
    client: &TcpStream,
    fault: Option<&Fault>,
    relocate: Option<usize>,
    set_status: &dyn Fn(u16),
) -> Result<Outcome, (u16, std::io::Error)> {
    let request_rate = match fault {
        Some(Fault::Throttle { bytes_per_sec }) => Some((*bytes_per_sec).max(1)),
        _ => None,
    };
    let method = head.start[0].clone();
    let req_framing = head.request_framing();
    let upstream = TcpStream::connect(state.upstream).map_err(|e| (0, e))?;
    upstream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| (0, e))?;
    for h in HOP_BY_HOP {
        head.remove(h);
    }
    head.set("Connection", "close");
    let chunked_req = req_framing == Framing::Chunked;
    if chunked_req {
        head.remove("content-length");
        head.set("Transfer-Encoding", "chunked");
    }
    let mut up_w = &upstream;
    up_w.write_all(&head.to_bytes()).map_err(|e| (0, e))?;
    {
        let mut body_out = BodyWriter::new(&upstream, chunked_req);
        copy_paced(
            &mut BodyReader::new(reader, req_framing),
            &mut body_out,
            request_rate,
        )
        .map_err(|e| (0, e))?;
        body_out.finish().map_err(|e| (0, e))?;
    }
    let mut up_r = BufReader::new(&upstream);
    let mut resp = read_head(&mut up_r).map_err(|e| (0, e))?.ok_or_else(|| {
        (
            0,
            std::io::Error::other("upstream closed without answering"),
        )
    })?;
    let status = resp.status();
    let framing = if method == "HEAD" || status < 200 || status == 204 || status == 304 {
        Framing::None
    } else {
        resp.framing()
    };
    for h in HOP_BY_HOP {
        resp.remove(h);
    }
    resp.set("Connection", "close");
    if let (Some(id), Some(loc)) = (relocate, resp.header("location").map(str::to_string)) {
        resp.set(
            "Location",
            format!("http://{}/cdn/{id}{}", state.cdn, path_and_query(&loc)),
        );
    }
    let chunked_resp = matches!(framing, Framing::Chunked | Framing::UntilClose);
    if chunked_resp {
        resp.remove("content-length");
        resp.set("Transfer-Encoding", "chunked");
    }
    set_status(status);
    let mut out = client;
    out.write_all(&resp.to_bytes()).map_err(|e| (0, e))?;
    let mut body_in = BodyReader::new(&mut up_r, framing);
    let mut body_out = BodyWriter::new(client, chunked_resp);
    let mut sent: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = body_in.read(&mut buf).map_err(|e| (status, e))?;
        if n == 0 {
            break;
        }
        let chunk = &mut buf[..n];
        let range = sent..sent + n as u64;
        match fault {
            Some(Fault::CorruptByte { offset }) if range.contains(offset) => {
                chunk[(offset - sent) as usize] = !chunk[(offset - sent) as usize];
            }
            Some(Fault::ResetAfter { bytes } | Fault::CloseAfter { bytes })
                if range.end > *bytes =>
            {
                let keep = (bytes - sent) as usize;
                body_out
                    .write_all(&chunk[..keep])
                    .map_err(|e| (status, e))?;
                body_out.flush().map_err(|e| (status, e))?;
                // Not finished: the body stays short of what the head announced, and the
                // connection is reset or (CloseAfter) closed cleanly.
                return Ok(Outcome {
                    status,
                    reset: matches!(fault, Some(Fault::ResetAfter { .. })),
                });
            }
            Some(Fault::Trickle { bytes_per_sec } | Fault::Throttle { bytes_per_sec }) => {
                let rate = (*bytes_per_sec).max(1);
                copy_paced(&mut &chunk[..], &mut body_out, Some(rate)).map_err(|e| (status, e))?;
                sent += n as u64;
                continue;
            }
            Some(Fault::StallAfter { bytes, duration }) if range.contains(bytes) => {
                let keep = (bytes - sent) as usize;
                body_out
                    .write_all(&chunk[..keep])
                    .map_err(|e| (status, e))?;
                body_out.flush().map_err(|e| (status, e))?;
                std::thread::sleep(*duration);
                body_out
                    .write_all(&chunk[keep..])
                    .map_err(|e| (status, e))?;
                sent += n as u64;
                continue;
            }
            _ => {}
        }
        body_out.write_all(chunk).map_err(|e| (status, e))?;
        sent += n as u64;
    }
    if let Some(Fault::ResetAfter { .. }) = fault {
        // The body was shorter than `bytes`: still never finish it cleanly.
        return Ok(Outcome {
            status,
            reset: true,
        });
    }
    body_out.finish().map_err(|e| (status, e))?;
    Ok(Outcome {
        status,
        reset: false,
    })
}
