//! Retries: exponential backoff with jitter, `Retry-After`, bounded in count and time; and which
//! failures are transient.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How often and how long an operation is retried.
///
/// An operation (a manifest GET, a whole blob download, a whole upload session, a mount, a manifest
/// PUT, an index page) is started again from the beginning when it fails with a transient error
/// ([`Transient::is_transient`]): at most `max_attempts` times in all, and not once `max_elapsed` has
/// passed. Between attempts it waits `initial_delay × 2^n` (capped at `max_delay`) with ±50 % jitter,
/// or what the server asked for with `Retry-After` (capped at `max_retry_after`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// The first delay.
    pub initial_delay: Duration,
    /// The longest computed delay.
    pub max_delay: Duration,
    /// No new attempt starts after this much time since the first.
    pub max_elapsed: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

/// An error a [`RetryPolicy`] can classify: is it worth another attempt, after how long, and what
/// it becomes when the attempts run out.
pub trait Transient: Sized {
    /// True when the same operation may succeed if it is started again.
    fn is_transient(&self) -> bool;
    /// The delay the server asked for (`Retry-After`), if any.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
    /// True for a request that broke a time bound (a stall): those are retried once only, so a
    /// hung server costs at most about twice the bound, not the whole retry budget.
    fn is_stall(&self) -> bool {
        false
    }
    /// The error reported when a transient failure persisted through `attempts` attempts (the
    /// default: the last error as it is).
    fn gave_up(self, attempts: u32) -> Self {
        let _ = attempts;
        self
    }
}

/// True for the HTTP statuses that are worth another attempt: 408 (request timeout), 429 (too many
/// requests) and every 5xx.
///
/// ```
/// use rbuild_http::retry::is_transient_status;
/// assert!(is_transient_status(503) && is_transient_status(429) && is_transient_status(408));
/// assert!(!is_transient_status(404) && !is_transient_status(401));
/// ```
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// The `Retry-After` of a response (delay-seconds or an HTTP date), if it has a readable one.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            max_elapsed: Duration::from_secs(300),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        }
    }

    /// The delay before attempt `attempt + 1` (attempt counts from 1).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(self.max_retry_after);
        }
        let exp = self
            .initial_delay
            .saturating_mul(1u32 << (attempt.saturating_sub(1)).min(16));
        let capped = exp.min(self.max_delay);
        // ±50 % jitter.
        let factor = 0.5 + fastrand::f64();
        capped.mul_f64(factor)
    }

    /// Runs `op` until it succeeds, fails with an error that is not transient, or the budget is
    /// spent (then the last error's [`Transient::gave_up`]). Each retry is logged (`tracing`, info)
    /// with `what`.
    pub async fn run<T, E, F, Fut>(&self, what: &str, op: F) -> Result<T, E>
    where
        E: Transient + fmt::Display,
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_observed(op, |attempt, e: &E, delay| {
            tracing::info!(
                "{what}: attempt {attempt} failed, retrying in {:.1}s: {e}",
                delay.as_secs_f64()
            );
        })
        .await
    }

    /// Like [`RetryPolicy::run`], telling `before_retry` (attempt that failed, its error, the
    /// pause) instead of logging. `op` gets the attempt number, from 1.
    pub async fn run_observed<T, E, F, Fut>(
        &self,
        mut op: F,
        mut before_retry: impl FnMut(u32, &E, Duration),
    ) -> Result<T, E>
    where
        E: Transient,
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let start = Instant::now();
        let mut attempt = 1;
        let mut stalls = 0;
        loop {
            match op(attempt).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() => {
                    let delay = self.delay(attempt, e.retry_after());
                    stalls += u32::from(e.is_stall());
                    if attempt >= self.max_attempts
                        || stalls > 1
                        || start.elapsed().saturating_add(delay) > self.max_elapsed
                    {
                        return Err(e.gave_up(attempt));
                    }
                    before_retry(attempt, &e, delay);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (IMF-fixdate).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = parse_http_date(value)?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses `Sun, 06 Nov 1994 08:49:37 GMT`.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let rest = s.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u32 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u32
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *sec > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + (*h * 3600 + *m * 60 + *sec) as i64;
    if secs < 0 {
        return None;
    }
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:27 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn delays_grow_are_capped_and_honour_retry_after() {
        let p = RetryPolicy::default();
        for attempt in 1..10 {
            let d = p.delay(attempt, None);
            let base = p
                .initial_delay
                .saturating_mul(1 << (attempt - 1))
                .min(p.max_delay);
            assert!(d >= base / 2 && d <= base.mul_f64(1.5), "{attempt}: {d:?}");
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600))),
            p.max_retry_after
        );
    }

    #[derive(Debug, PartialEq)]
    enum E {
        Status(u16),
        GaveUp(u32),
    }

    impl Transient for E {
        fn is_transient(&self) -> bool {
            matches!(self, E::Status(s) if is_transient_status(*s))
        }
        fn gave_up(self, attempts: u32) -> Self {
            E::GaveUp(attempts)
        }
    }

    impl fmt::Display for E {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{self:?}")
        }
    }

    #[tokio::test]
    async fn retries_only_transient_errors_and_gives_up() {
        let p = RetryPolicy {
            initial_delay: Duration::from_millis(1),
            ..Default::default()
        };
        let mut calls = 0;
        let r: Result<(), E> = p
            .run("op", |_| {
                calls += 1;
                async { Err(E::Status(503)) }
            })
            .await;
        assert_eq!(calls, 5);
        assert_eq!(r, Err(E::GaveUp(5)));
        let mut calls = 0;
        let r: Result<(), E> = p
            .run("op", |_| {
                calls += 1;
                async { Err(E::Status(404)) }
            })
            .await;
        assert_eq!(calls, 1);
        assert_eq!(r, Err(E::Status(404)));
        let r = p
            .run("op", |n| async move {
                if n < 3 { Err(E::Status(429)) } else { Ok(n) }
            })
            .await;
        assert_eq!(r, Ok(3));
        // No time budget at all (the index client's policy) does not overflow.
        let p = RetryPolicy {
            max_elapsed: Duration::MAX,
            ..p
        };
        let mut seen = Vec::new();
        let r: Result<(), E> = p
            .run_observed(
                |_| async { Err(E::Status(408)) },
                |attempt, e, _| seen.push((attempt, format!("{e}"))),
            )
            .await;
        assert_eq!(r, Err(E::GaveUp(5)));
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn retry_after_header_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past");
    }
}
