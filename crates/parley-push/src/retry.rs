//! Retry policy for transient send failures (push-behaviours.md §4.4 item 6).
//!
//! Only [`SendOutcome::Retry`] is retried (429, 5xx, network). The delay before attempt `n+1`
//! is *full jitter*: uniform in `[0, min(max_delay, base · 2^(n-1))]`. A provider `Retry-After`
//! is a floor: the delay is at least that. A push is given up after `max_attempts` sends or
//! once the next attempt would start later than `max_age` after the first one — a chat push
//! hours late is worse than none (Sygnal #144: shed stale work).

use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::notification::Notification;
use crate::sender::{PushSender, SendOutcome, Target};

/// When to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Ceiling of the first retry's delay.
    pub base: Duration,
    /// Largest delay ceiling.
    pub max_delay: Duration,
    /// Most sends of one push, the first included.
    pub max_attempts: u32,
    /// Give up when the next attempt would start later than this after the first.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts within 60 s, delays up to 1 s then 2 s (or the provider's `Retry-After`).
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_attempts: 3,
            max_age: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the jittered delay after `attempts` sends (`attempts >= 1`).
    pub fn ceiling(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        self.base
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// The delay before the next attempt, or `None` to give up.
    ///
    /// `attempts` is how many sends were made so far (≥ 1), `age` how long ago the first one
    /// started, `retry_after` the provider's hint, `rng` the jitter source.
    pub fn next_delay(
        &self,
        attempts: u32,
        age: Duration,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        if attempts >= self.max_attempts {
            return None;
        }
        let ceiling = self.ceiling(attempts);
        let jittered = if ceiling.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_nanos(
                rng.gen_range(0..=u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX)),
            )
        };
        let delay = retry_after.map_or(jittered, |ra| ra.max(jittered));
        (age + delay <= self.max_age).then_some(delay)
    }
}

/// Parse an HTTP `Retry-After` value: delta-seconds or an HTTP-date (relative to `now`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Send with in-process retries per `policy` (sleeping between attempts). Returns the last
/// outcome and the number of sends made. For callers without a durable queue, and for tests;
/// the outbox worker instead re-schedules rows with [`RetryPolicy::next_delay`].
pub async fn send_with_retry(
    sender: &dyn PushSender,
    target: &Target,
    notification: &Notification,
    policy: &RetryPolicy,
) -> (SendOutcome, u32) {
    let start = tokio::time::Instant::now();
    let mut attempts = 0;
    loop {
        let outcome = sender.send(target, notification).await;
        attempts += 1;
        let SendOutcome::Retry { after, .. } = &outcome else {
            return (outcome, attempts);
        };
        let delay = {
            let mut rng = rand::thread_rng();
            policy.next_delay(attempts, start.elapsed(), *after, &mut rng)
        };
        match delay {
            Some(d) => tokio::time::sleep(d).await,
            None => return (outcome, attempts),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_attempts: 6,
            max_age: Duration::from_secs(60),
        }
    }

    #[test]
    fn ceiling_doubles_and_caps() {
        let p = policy();
        let c: Vec<u128> = (1..=6).map(|n| p.ceiling(n).as_millis()).collect();
        assert_eq!(c, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.ceiling(u32::MAX), p.max_delay);
        assert_eq!(p.ceiling(0), p.base);
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling_and_spreads() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(7);
        for attempts in 1..6 {
            let ceiling = p.ceiling(attempts);
            let ds: Vec<Duration> = (0..200)
                .map(|_| {
                    p.next_delay(attempts, Duration::ZERO, None, &mut rng)
                        .unwrap()
                })
                .collect();
            assert!(ds.iter().all(|d| *d <= ceiling));
            let min = ds.iter().min().unwrap();
            let max = ds.iter().max().unwrap();
            assert!(*min < ceiling / 4, "{min:?} {ceiling:?}");
            assert!(*max > ceiling * 3 / 4, "{max:?} {ceiling:?}");
        }
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            let d = p
                .next_delay(1, Duration::ZERO, Some(Duration::from_secs(7)), &mut rng)
                .unwrap();
            assert_eq!(d, Duration::from_secs(7));
        }
        let d = p
            .next_delay(5, Duration::ZERO, Some(Duration::ZERO), &mut rng)
            .unwrap();
        assert!(d <= p.max_delay);
    }

    #[test]
    fn bounded_attempts() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(2);
        assert!(p.next_delay(5, Duration::ZERO, None, &mut rng).is_some());
        assert!(p.next_delay(6, Duration::ZERO, None, &mut rng).is_none());
        assert!(p.next_delay(60, Duration::ZERO, None, &mut rng).is_none());
    }

    #[test]
    fn bounded_age() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(3);
        assert!(p
            .next_delay(1, Duration::from_secs(61), None, &mut rng)
            .is_none());
        // A Retry-After that would land past max_age gives up now.
        assert!(p
            .next_delay(
                1,
                Duration::from_secs(30),
                Some(Duration::from_secs(31)),
                &mut rng
            )
            .is_none());
        assert!(p
            .next_delay(
                1,
                Duration::from_secs(30),
                Some(Duration::from_secs(30)),
                &mut rng
            )
            .is_some());
    }

    #[test]
    fn default_policy_is_three_attempts_in_a_minute() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.max_age, Duration::from_secs(60));
    }

    #[test]
    fn parses_retry_after() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
