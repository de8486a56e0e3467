//! How long to wait before retrying the same target.

use http::HeaderMap;
use std::time::{Duration, SystemTime};

/// `providers.NAME.retries`, resolved.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = none).
    pub max: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// The wait before retry number `n` (0 = the first retry), or `None` when the same target
    /// should not be tried again.
    ///
    /// Without a `Retry-After`, the wait is drawn uniformly between `backoff` and
    /// `backoff × 2^(n+1)` (capped at `max_backoff`): exponential growth, and jitter so that
    /// many clients failing together do not come back together.
    ///
    /// With a `Retry-After` the upstream's wait is honoured exactly. One longer than
    /// `max_backoff` means no retry on this target: the operator's cap says how long a
    /// request may wait, and retrying sooner than asked would only be refused again, so
    /// the request moves on to its fallbacks at once.
    pub fn delay(&self, n: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if n >= self.max {
            return None;
        }
        if let Some(wait) = retry_after {
            return (wait <= self.max_backoff).then_some(wait);
        }
        let floor = self.backoff.min(self.max_backoff);
        let ceiling = self
            .backoff
            .saturating_mul(1u32.checked_shl(n + 1).unwrap_or(u32::MAX))
            .min(self.max_backoff)
            .max(floor);
        let span = ceiling - floor;
        Some(floor + span.mul_f64(fastrand::f64()))
    }
}

/// Longest wait an upstream's `Retry-After` is read as. Anything longer means the same thing
/// to the pipeline (past every sane `max_backoff`: fall back now), and capping it keeps every
/// later computation with the duration (`Instant + d`, `as_secs`) far from overflow.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The wait an upstream asked for: `retry-after-ms` (OpenAI's), else `retry-after` as
/// seconds or as an HTTP date. A date in the past means "now". Every form is range-checked:
/// an upstream controls these numbers, so NaN, infinities and negatives are ignored and huge
/// values are capped at [`MAX_RETRY_AFTER`] (e.g. `retry-after-ms: 1e300` used to panic the
/// request task in `Duration::from_secs_f64`).
pub fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && let Some(wait) = bounded_secs(ms / 1000.0)
    {
        return Some(wait);
    }
    let value = text("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return bounded_secs(secs);
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

/// Seconds from an upstream as a duration: `None` unless finite and not negative; capped.
fn bounded_secs(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs).map_or(MAX_RETRY_AFTER, |d| d.min(MAX_RETRY_AFTER)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn policy(max: u32) -> RetryPolicy {
        RetryPolicy {
            max,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_stays_within_bounds() {
        let p = policy(10);
        for n in 0..10 {
            let ceiling = Duration::from_millis((100u64 << (n + 1)).min(1000));
            for _ in 0..200 {
                let d = p.delay(n, None).expect("a retry is allowed");
                assert!(d >= Duration::from_millis(100) && d <= ceiling, "retry {n}: {d:?}");
            }
        }
        // Jitter: not every draw is the same.
        let draws: std::collections::HashSet<_> = (0..50).map(|_| p.delay(1, None)).collect();
        assert!(draws.len() > 1);
    }

    #[test]
    fn no_retry_past_max() {
        assert_eq!(policy(0).delay(0, None), None);
        assert!(policy(2).delay(1, None).is_some());
        assert_eq!(policy(2).delay(2, None), None);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = policy(3);
        assert_eq!(
            p.delay(0, Some(Duration::from_millis(700))),
            Some(Duration::from_millis(700))
        );
        assert_eq!(p.delay(0, Some(Duration::from_secs(30))), None);
        assert_eq!(p.delay(0, Some(Duration::ZERO)), Some(Duration::ZERO));
    }

    #[test]
    fn parses_every_retry_after_form() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(parse_retry_after(&h, now), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(2)));
        h.insert("retry-after", HeaderValue::from_static("0.5"));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_millis(500)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(3));
        h.insert("retry-after", HeaderValue::from_str(&date).expect("header"));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(3)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(3));
        h.insert("retry-after", HeaderValue::from_str(&past).expect("header"));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h, now), None);
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_millis(250)));
    }

    #[test]
    fn hostile_retry_after_values_are_capped_or_ignored() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let parse = |name: &'static str, value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(value));
            parse_retry_after(&h, now)
        };
        for huge in ["1e300", "1e20", "18446744073709551616", "inf"] {
            let d = parse("retry-after-ms", huge);
            assert!(
                d.is_none() || d == Some(MAX_RETRY_AFTER),
                "retry-after-ms {huge}: {d:?}"
            );
            let d = parse("retry-after", huge);
            assert!(d.is_none() || d == Some(MAX_RETRY_AFTER), "retry-after {huge}: {d:?}");
        }
        assert_eq!(parse("retry-after-ms", "1e300"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse("retry-after", "1e300"), Some(MAX_RETRY_AFTER));
        for bad in ["NaN", "-5", "-inf", "-0.5"] {
            assert_eq!(parse("retry-after-ms", bad), None, "{bad}");
            assert_eq!(parse("retry-after", bad), None, "{bad}");
        }
        assert_eq!(
            parse("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(MAX_RETRY_AFTER)
        );
        // A capped wait is longer than any max_backoff: the pipeline falls back at once.
        assert_eq!(policy(3).delay(0, Some(MAX_RETRY_AFTER)), None);
    }
}
