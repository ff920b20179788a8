//! Retries: exponential backoff with jitter, `Retry-After`, bounded in count and time.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result};

/// How often and how long an operation is retried.
///
/// An operation (a manifest GET, a whole blob download, a whole upload session, a mount, a manifest
/// PUT) is started again from the beginning when it fails with a retryable error
/// ([`Error::is_retryable`]): at most `max_attempts` times in all, and not once `max_elapsed` has
/// passed. Between attempts it waits `initial_delay × 2^n` (capped at `max_delay`) with ±50 % jitter,
/// or what the registry asked for with `Retry-After` (capped at `max_retry_after`).
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

    /// Runs `op` until it succeeds, fails with a non-retryable error, or the budget is spent.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let start = Instant::now();
        let mut attempt = 1;
        loop {
            match op(attempt).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() => {
                    let delay = self.delay(attempt, e.retry_after());
                    if attempt >= self.max_attempts || start.elapsed() + delay > self.max_elapsed {
                        return Err(if attempt > 1 {
                            Error::GaveUp {
                                attempts: attempt,
                                last: Box::new(e),
                            }
                        } else {
                            e
                        });
                    }
                    tracing::info!(
                        "{what}: attempt {attempt} failed, retrying in {:.1}s: {e}",
                        delay.as_secs_f64()
                    );
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

    #[tokio::test]
    async fn retries_only_retryable_errors_and_gives_up() {
        let p = RetryPolicy {
            initial_delay: Duration::from_millis(1),
            ..Default::default()
        };
        let status = |s| Error::Status {
            what: "x".into(),
            host: "h".into(),
            status: s,
            detail: String::new(),
            retry_after: None,
        };
        let mut calls = 0;
        let r: Result<()> = p
            .run("op", |_| {
                calls += 1;
                let e = status(503);
                async move { Err(e) }
            })
            .await;
        assert_eq!(calls, 5);
        assert!(matches!(r, Err(Error::GaveUp { attempts: 5, .. })));
        let mut calls = 0;
        let r: Result<()> = p
            .run("op", |_| {
                calls += 1;
                let e = status(404);
                async move { Err(e) }
            })
            .await;
        assert_eq!(calls, 1);
        assert!(r.unwrap_err().is_not_found());
        let r = p
            .run("op", |n| async move {
                if n < 3 { Err(status(429)) } else { Ok(n) }
            })
            .await;
        assert_eq!(r.unwrap(), 3);
    }
}
