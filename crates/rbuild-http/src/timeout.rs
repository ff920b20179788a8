//! Time bounds for every request: nothing waits forever, and nothing slow but steady is abandoned.
//!
//! [`Timeouts`] holds the bounds; a [`Meter`] applies them to one request (one attempt of an
//! operation), from the first byte sent to the last byte received:
//!
//! - **connect**: the TCP connection and the TLS handshake (given to reqwest);
//! - **idle**: while the request body is sent and while the response body arrives, at least
//!   [`Timeouts::min_bytes`] must move in every [`Timeouts::idle`] window: the window starts again
//!   on progress, so a slow but steady transfer goes on for as long as it takes, while a stalled
//!   one, or one trickling a few bytes a second, fails after `idle` (the low-speed limit of curl's
//!   `--speed-limit`/`--speed-time`);
//! - **headers**: once the request is sent, the response head must arrive within
//!   [`Timeouts::headers`] (the size of the head is bounded by hyper);
//! - **deadline**: the whole request must finish within
//!   `deadline_base + max(expected size, bytes moved) / deadline_rate`, an overall bound scaled by
//!   size that catches a transfer kept just above the low-speed limit.
//!
//! A request that breaks a bound fails with [`Stalled`], which says which bound and how long it
//! waited; the clients turn it into a transient error, so it is retried within their retry budget
//! like a reset connection. A wait longer than [`Timeouts::notice_after`] is told to the
//! [`Meter`]'s observer once (progress output shows it at default verbosity).
//!
//! The idle bound is `--timeout SECS` on the command line, or `RBUILD_HTTP_TIMEOUT` ([`ENV`]);
//! the other bounds follow from it ([`Timeouts::with_idle`]).
//!
//! ```
//! use std::time::Duration;
//! use rbuild_http::Timeouts;
//! let t = Timeouts::with_idle(Duration::from_secs(10));
//! assert_eq!(t.headers, Duration::from_secs(10));
//! assert!(t.connect <= Duration::from_secs(10));
//! // A 20 MB upload gets far longer than the idle bound, as long as it moves.
//! assert!(t.deadline(20_000_000) > Duration::from_secs(100));
//! assert_eq!(Timeouts::parse_env_value("2.5").unwrap().idle, Duration::from_millis(2500));
//! assert!(Timeouts::parse_env_value("soon").is_err());
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The environment variable that sets the idle bound in seconds (`--timeout` wins over it).
pub const ENV: &str = "RBUILD_HTTP_TIMEOUT";

/// The default idle bound.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(30);

/// The time bounds of every request (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting (TCP and TLS).
    pub connect: Duration,
    /// The longest time without progress (fewer than `min_bytes` moved) while a body is sent or
    /// received.
    pub idle: Duration,
    /// The longest wait for the response head once the request is sent.
    pub headers: Duration,
    /// How many bytes count as progress within one `idle` window.
    pub min_bytes: u64,
    /// The deadline of a request of unknown or zero size.
    pub deadline_base: Duration,
    /// The slowest average rate (bytes per second) the deadline allows on top of `deadline_base`.
    pub deadline_rate: u64,
    /// A wait this long is reported once (to the [`Meter`]'s observer).
    pub notice_after: Duration,
}

impl Default for Timeouts {
    /// The bounds for [`DEFAULT_IDLE`].
    fn default() -> Self {
        Timeouts::with_idle(DEFAULT_IDLE)
    }
}

/// A value of [`ENV`] or `--timeout` that is not a positive number of seconds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid HTTP timeout {value:?}: give a positive number of seconds (e.g. 30 or 2.5), via --timeout SECS or {ENV}"
)]
pub struct InvalidTimeout {
    /// The value given.
    pub value: String,
}

impl Timeouts {
    /// The bounds derived from an idle bound: `headers` the same, `connect` the same up to 30 s,
    /// at least 1 KiB per window, a deadline of 5 × idle plus 32 KiB/s for the size, and a notice
    /// after 5 s (or half the idle bound, when that is shorter).
    pub fn with_idle(idle: Duration) -> Self {
        let idle = idle.max(Duration::from_millis(100));
        Timeouts {
            connect: idle.min(Duration::from_secs(30)),
            idle,
            headers: idle,
            min_bytes: 1024,
            deadline_base: idle.saturating_mul(5),
            deadline_rate: 32 * 1024,
            notice_after: (idle / 2).min(Duration::from_secs(5)),
        }
    }

    /// Parses a number of seconds (`30`, `2.5`) into the bounds for that idle bound.
    pub fn parse_env_value(value: &str) -> Result<Self, InvalidTimeout> {
        let secs: f64 = value.trim().parse().map_err(|_| InvalidTimeout {
            value: value.to_string(),
        })?;
        if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
            return Err(InvalidTimeout {
                value: value.to_string(),
            });
        }
        Ok(Timeouts::with_idle(Duration::from_secs_f64(secs)))
    }

    /// The bounds `RBUILD_HTTP_TIMEOUT` asks for; the defaults when it is unset, empty or invalid
    /// (the CLI checks it with [`Timeouts::parse_env_value`] and refuses an invalid value).
    pub fn from_env() -> Self {
        std::env::var(ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .and_then(|v| Timeouts::parse_env_value(&v).ok())
            .unwrap_or_default()
    }

    /// The overall deadline of a request that moves `size` bytes.
    pub fn deadline(&self, size: u64) -> Duration {
        let rate = self.deadline_rate.max(1);
        self.deadline_base
            .saturating_add(Duration::from_secs_f64(size as f64 / rate as f64))
    }
}

/// `2 s`, `2.5 s`, `90 s`.
pub fn format_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if (s - s.round()).abs() < 0.05 {
        format!("{} s", s.round() as u64)
    } else {
        format!("{s:.1} s")
    }
}

/// A request that broke one of its time bounds. Its message says which and how long it waited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stalled {
    /// No response head within the `headers` bound after the request was sent.
    #[error(
        "no answer after waiting {} (the time limit; raise it with --timeout SECS or {ENV})",
        format_secs(*waited)
    )]
    Headers {
        /// How long it waited.
        waited: Duration,
    },
    /// The body stalled (or trickled below the low-speed limit).
    #[error(
        "the transfer stalled: {} received or sent in the last {} after {bytes} bytes (the idle time limit; raise it with --timeout SECS or {ENV})",
        plural(*window_bytes),
        format_secs(*waited)
    )]
    Idle {
        /// How long it waited since the last real progress.
        waited: Duration,
        /// Bytes moved in that time (fewer than the minimum).
        window_bytes: u64,
        /// Bytes moved in all.
        bytes: u64,
    },
    /// The request as a whole took longer than its deadline.
    #[error(
        "the request did not finish within {} ({bytes} bytes moved; raise the limit with --timeout SECS or {ENV})",
        format_secs(*waited)
    )]
    Deadline {
        /// The deadline.
        waited: Duration,
        /// Bytes moved in all.
        bytes: u64,
    },
}

fn plural(n: u64) -> String {
    if n == 1 {
        "1 byte".to_string()
    } else {
        format!("{n} bytes")
    }
}

impl Stalled {
    /// How long the request waited before it was given up.
    pub fn waited(&self) -> Duration {
        match self {
            Stalled::Headers { waited }
            | Stalled::Idle { waited, .. }
            | Stalled::Deadline { waited, .. } => *waited,
        }
    }
}

/// The first [`Stalled`] in an error's chain (looking inside `io::Error`s too).
pub fn find_stalled<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a Stalled> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(s) = err.downcast_ref::<Stalled>() {
            return Some(s);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(s) = find_stalled(inner)
        {
            return Some(s);
        }
        cur = err.source();
    }
    None
}

const SENDING: u8 = 0;
const AWAITING_HEAD: u8 = 1;
const RECEIVING: u8 = 2;

/// Told once when a request has waited [`Timeouts::notice_after`] without progress: how long it
/// has waited, and the bound it will fail at.
pub type Observer = Arc<dyn Fn(Duration, Duration) + Send + Sync>;

struct Window {
    start: Instant,
    bytes: u64,
    /// The rate of the last window that made progress (bytes per second), when known.
    rate: Option<f64>,
    /// Extra time allowed for the response head: what the network may still hold of a streamed
    /// body when the last byte was handed over, at the rate it moved.
    in_flight: Duration,
}

/// At most this much of a request body is assumed to sit in socket buffers on the way when the
/// client has handed over its last byte (the server answers only once it has read it all).
const MAX_IN_FLIGHT: u64 = 16 << 20;

struct MeterState {
    t: Timeouts,
    start: Instant,
    window: Mutex<Window>,
    total: AtomicU64,
    expected: AtomicU64,
    body: u64,
    phase: AtomicU8,
    noticed: AtomicBool,
    observer: Option<Observer>,
}

/// The time bounds of one request in progress (see the module docs). Cheap to clone: the request
/// body, the response wait and the response body share it.
#[derive(Clone)]
pub struct Meter(Arc<MeterState>);

impl fmt::Debug for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meter")
            .field("timeouts", &self.0.t)
            .field("bytes", &self.0.total.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Meter {
    /// A meter for a request that sends `body_size` bytes (0 for none), starting now.
    pub fn new(t: &Timeouts, body_size: u64, observer: Option<Observer>) -> Meter {
        let now = Instant::now();
        Meter(Arc::new(MeterState {
            t: t.clone(),
            start: now,
            window: Mutex::new(Window {
                start: now,
                bytes: 0,
                rate: None,
                in_flight: Duration::ZERO,
            }),
            total: AtomicU64::new(0),
            expected: AtomicU64::new(body_size),
            body: body_size,
            phase: AtomicU8::new(if body_size == 0 {
                AWAITING_HEAD
            } else {
                SENDING
            }),
            noticed: AtomicBool::new(false),
            observer,
        }))
    }

    /// `n` more bytes were sent or received. The last byte of the request body marks it sent
    /// ([`Meter::body_sent`]).
    pub fn progress(&self, n: u64) {
        let total = self.0.total.fetch_add(n, Ordering::Relaxed) + n;
        {
            let mut w = self.0.window.lock().expect("meter lock");
            w.bytes += n;
            if w.bytes >= self.0.t.min_bytes {
                let now = Instant::now();
                let secs = now.duration_since(w.start).as_secs_f64();
                if secs > 0.001 {
                    w.rate = Some(w.bytes as f64 / secs);
                }
                w.start = now;
                w.bytes = 0;
            }
        }
        if self.0.body > 0 && total >= self.0.body {
            self.body_sent();
        }
    }

    /// The request body was handed over completely: now the response head is awaited, for
    /// [`Timeouts::headers`] plus the time what the network may still hold of the body needs at
    /// the rate it moved.
    pub fn body_sent(&self) {
        if self.0.phase.swap(AWAITING_HEAD, Ordering::Relaxed) == AWAITING_HEAD {
            return;
        }
        let mut w = self.0.window.lock().expect("meter lock");
        w.in_flight = match w.rate {
            Some(rate) if rate > 0.0 => {
                Duration::from_secs_f64(self.0.body.min(MAX_IN_FLIGHT) as f64 / rate)
            }
            _ => Duration::ZERO,
        };
        w.start = Instant::now();
        w.bytes = 0;
    }

    /// The response head arrived, announcing `content_length` body bytes when known.
    pub fn head_received(&self, content_length: Option<u64>) {
        self.0.phase.store(RECEIVING, Ordering::Relaxed);
        if let Some(n) = content_length {
            self.0.expected.fetch_add(n, Ordering::Relaxed);
        }
        let mut w = self.0.window.lock().expect("meter lock");
        w.start = Instant::now();
        w.bytes = 0;
    }

    /// Checks the bounds at `now`: the instant of the next check, or the bound broken.
    pub fn check(&self, now: Instant) -> Result<Instant, Stalled> {
        let s = &*self.0;
        let total = s.total.load(Ordering::Relaxed);
        let size = s.expected.load(Ordering::Relaxed).max(total);
        let deadline = s.t.deadline(size);
        if now.duration_since(s.start) > deadline {
            return Err(Stalled::Deadline {
                waited: deadline,
                bytes: total,
            });
        }
        let (window_start, window_bytes, in_flight) = {
            let w = s.window.lock().expect("meter lock");
            (w.start, w.bytes, w.in_flight)
        };
        let phase = s.phase.load(Ordering::Relaxed);
        let limit = if phase == AWAITING_HEAD {
            s.t.headers.saturating_add(in_flight)
        } else {
            s.t.idle
        };
        let waited = now.duration_since(window_start);
        if waited > limit {
            return Err(if phase == AWAITING_HEAD {
                Stalled::Headers { waited: limit }
            } else {
                Stalled::Idle {
                    waited: limit,
                    window_bytes,
                    bytes: total,
                }
            });
        }
        let mut next = (window_start + limit).min(s.start + deadline);
        if !s.noticed.load(Ordering::Relaxed) {
            if waited >= s.t.notice_after {
                if !s.noticed.swap(true, Ordering::Relaxed)
                    && let Some(o) = &s.observer
                {
                    o(waited, limit);
                }
            } else {
                next = next.min(window_start + s.t.notice_after);
            }
        }
        // Wake a little after the bound, so the check above sees it broken.
        Ok(next + Duration::from_millis(5))
    }

    /// Runs `fut` (sending a request and waiting for its head) unless a bound breaks first.
    pub async fn guard<F: Future>(&self, fut: F) -> Result<F::Output, Stalled> {
        tokio::pin!(fut);
        let mut next = self.check(Instant::now())?;
        loop {
            tokio::select! {
                out = &mut fut => return Ok(out),
                _ = tokio::time::sleep_until(next) => {
                    next = self.check(Instant::now())?;
                }
            }
        }
    }

    /// A request body stream that counts what is sent and marks the body sent at its end.
    pub fn sending<S, E>(
        &self,
        stream: S,
    ) -> impl futures::Stream<Item = Result<bytes::Bytes, E>> + Send + 'static
    where
        S: futures::Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
        E: Send + 'static,
    {
        use futures::StreamExt;
        let meter = self.clone();
        let end = self.clone();
        stream
            .inspect(move |chunk| {
                if let Ok(c) = chunk {
                    meter.progress(c.len() as u64);
                }
            })
            .chain(futures::stream::poll_fn(move |_| {
                end.body_sent();
                Poll::Ready(None)
            }))
    }

    /// `resp` with its body under this meter's bounds: a body that stalls fails with [`Stalled`]
    /// (inside the reqwest error). Status, headers and URL are kept.
    pub fn response(&self, resp: reqwest::Response) -> reqwest::Response {
        use reqwest::ResponseBuilderExt;
        self.head_received(resp.content_length());
        let url = resp.url().clone();
        let resp: http::Response<reqwest::Body> = resp.into();
        let (parts, body) = resp.into_parts();
        let guarded = GuardedBody {
            inner: body,
            meter: self.clone(),
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
        };
        let mut builder = http::Response::builder()
            .status(parts.status)
            .version(parts.version)
            .url(url);
        if let Some(h) = builder.headers_mut() {
            *h = parts.headers;
        }
        match builder.body(reqwest::Body::wrap(guarded)) {
            Ok(r) => reqwest::Response::from(r),
            Err(_) => unreachable!("the parts of a valid response make a valid response"),
        }
    }
}

/// A response body under a [`Meter`].
struct GuardedBody<B> {
    inner: B,
    meter: Meter,
    sleep: Pin<Box<Sleep>>,
}

impl<B> HttpBody for GuardedBody<B>
where
    B: HttpBody + Unpin,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.meter.progress(d.remaining() as u64);
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        loop {
            match this.meter.check(Instant::now()) {
                Err(s) => return Poll::Ready(Some(Err(Box::new(s)))),
                Ok(next) => {
                    this.sleep.as_mut().reset(next);
                    if this.sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short() -> Timeouts {
        Timeouts {
            notice_after: Duration::from_millis(100),
            ..Timeouts::with_idle(Duration::from_millis(300))
        }
    }

    #[tokio::test]
    async fn a_wait_for_the_head_fails_after_the_headers_bound_and_is_noticed_once() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let m = Meter::new(
            &short(),
            0,
            Some(Arc::new(move |w, l| s2.lock().unwrap().push((w, l)))),
        );
        let start = Instant::now();
        let r = m.guard(futures::future::pending::<()>()).await;
        assert_eq!(
            r,
            Err(Stalled::Headers {
                waited: Duration::from_millis(300)
            })
        );
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(1000),
            "{took:?}"
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].0 >= Duration::from_millis(100));
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains("0.3 s") && msg.contains("--timeout"), "{msg}");
    }

    #[tokio::test]
    async fn steady_progress_keeps_a_request_alive_and_a_trickle_does_not() {
        let t = short();
        let m = Meter::new(&t, 10_000_000, None);
        // 64 KiB every 100 ms for 1.5 s: five times the idle bound, never idle.
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            m.progress(64 * 1024);
            assert!(m.check(Instant::now()).is_ok());
        }
        // A trickle: 1 byte every 100 ms is below 1 KiB per window.
        let m = Meter::new(&t, 0, None);
        m.head_received(Some(100));
        let mut failed = None;
        for i in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            m.progress(1);
            if let Err(e) = m.check(Instant::now()) {
                failed = Some((i, e));
                break;
            }
        }
        let (i, e) = failed.expect("the trickle fails");
        assert!((2..=5).contains(&i), "{i}");
        assert!(
            matches!(e, Stalled::Idle { bytes, .. } if bytes == i + 1),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn the_deadline_scales_with_size() {
        let t = Timeouts {
            min_bytes: 1,
            deadline_base: Duration::from_millis(200),
            deadline_rate: 10_000,
            ..short()
        };
        assert_eq!(t.deadline(2000), Duration::from_millis(400));
        let m = Meter::new(&t, 2000, None);
        let mut err = None;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            m.progress(1);
            if let Err(e) = m.check(Instant::now()) {
                err = Some(e);
                break;
            }
        }
        assert!(
            matches!(err, Some(Stalled::Deadline { waited, .. }) if waited == Duration::from_millis(400)),
            "{err:?}"
        );
    }

    #[test]
    fn env_values() {
        assert_eq!(
            Timeouts::parse_env_value(" 30 ").unwrap(),
            Timeouts::with_idle(Duration::from_secs(30))
        );
        for bad in ["0", "-1", "x", "", "inf", "NaN"] {
            assert!(Timeouts::parse_env_value(bad).is_err(), "{bad}");
        }
        let t = Timeouts::default();
        assert_eq!(t.idle, Duration::from_secs(30));
        assert_eq!(t.connect, Duration::from_secs(30));
        assert_eq!(format_secs(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(format_secs(Duration::from_secs(60)), "60 s");
    }

    #[test]
    fn stalled_is_found_in_an_error_chain() {
        let s = Stalled::Headers {
            waited: Duration::from_secs(2),
        };
        let io = std::io::Error::other(s.clone());
        assert_eq!(find_stalled(&io), Some(&s));
        let plain = std::io::Error::other("x");
        assert_eq!(find_stalled(&plain), None);
    }
}
