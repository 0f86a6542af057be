//! The retry delay: exponential backoff with full jitter, honouring the
//! platform's hint and widening while the destination is failing a lot.
//!
//! A pure function so it can be tested exhaustively; the caller supplies the
//! random draw.

use std::time::Duration;

use crate::channels::RetryPolicy;

/// Longest hint honoured (a `Retry-After` of a day is a misconfigured proxy, not
/// a plan).
pub const MAX_HINT: Duration = Duration::from_secs(3600);

/// The ceiling of the delay before retry number `attempt` (1 = the first retry):
/// `base * 2^(attempt-1)`, widened by up to 4x while `error_rate` (0..=1, the
/// destination's recent share of failed requests) is high, capped at `cap`.
pub fn ceiling(attempt: u32, policy: &RetryPolicy, error_rate: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(32);
    let base = policy.base.as_secs_f64() * 2f64.powi(exp as i32);
    let widen = 1.0 + 3.0 * error_rate.clamp(0.0, 1.0);
    Duration::from_secs_f64((base * widen).min(policy.cap.as_secs_f64()).max(0.0))
}

/// The delay before retry number `attempt`: uniformly random in
/// `[0, ceiling]` ("full jitter", so retries of many messages spread out instead
/// of arriving together), never shorter than the platform's hint.
///
/// `unit` is a uniform draw in `[0, 1)`.
pub fn delay(
    attempt: u32,
    policy: &RetryPolicy,
    hint: Option<Duration>,
    error_rate: f64,
    unit: f64,
) -> Duration {
    let jittered = ceiling(attempt, policy, error_rate).mul_f64(unit.clamp(0.0, 1.0));
    match hint {
        Some(h) => jittered.max(h.min(MAX_HINT)),
        None => jittered,
    }
}

/// [`delay`] with a fresh random draw.
pub fn delay_random(
    attempt: u32,
    policy: &RetryPolicy,
    hint: Option<Duration>,
    error_rate: f64,
) -> Duration {
    delay(attempt, policy, hint, error_rate, rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            max_attempts: 10,
            max_age: Duration::from_secs(3600),
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = policy();
        let c: Vec<u64> = (1..=8).map(|a| ceiling(a, &p, 0.0).as_secs()).collect();
        assert_eq!(c, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(ceiling(u32::MAX, &p, 0.0), Duration::from_secs(60));
    }

    #[test]
    fn full_jitter_spans_zero_to_ceiling() {
        let p = policy();
        assert_eq!(delay(4, &p, None, 0.0, 0.0), Duration::ZERO);
        assert_eq!(delay(4, &p, None, 0.0, 0.5), Duration::from_secs(4));
        assert_eq!(delay(4, &p, None, 0.0, 0.999_999).as_secs(), 7);
        for _ in 0..1000 {
            let d = delay_random(3, &p, None, 0.0);
            assert!(d <= Duration::from_secs(4));
        }
    }

    #[test]
    fn hint_is_a_floor_and_is_bounded() {
        let p = policy();
        assert_eq!(
            delay(1, &p, Some(Duration::from_secs(30)), 0.0, 0.5),
            Duration::from_secs(30)
        );
        assert_eq!(
            delay(6, &p, Some(Duration::from_secs(1)), 0.0, 0.5),
            Duration::from_secs(16)
        );
        assert_eq!(
            delay(1, &p, Some(Duration::from_secs(86_400)), 0.0, 0.0),
            MAX_HINT
        );
    }

    #[test]
    fn high_error_rate_widens_up_to_the_cap() {
        let p = policy();
        assert_eq!(ceiling(2, &p, 1.0), Duration::from_secs(8));
        assert_eq!(ceiling(2, &p, 0.5), Duration::from_secs(5));
        assert_eq!(ceiling(6, &p, 1.0), Duration::from_secs(60));
        assert!(ceiling(3, &p, 0.9) > ceiling(3, &p, 0.1));
    }

    #[test]
    fn mean_delay_grows_with_attempts() {
        let p = policy();
        let mean = |a: u32| {
            (0..2000)
                .map(|_| delay_random(a, &p, None, 0.0).as_secs_f64())
                .sum::<f64>()
                / 2000.0
        };
        let (m1, m3, m5) = (mean(1), mean(3), mean(5));
        assert!(m1 < m3 && m3 < m5, "{m1} {m3} {m5}");
    }
}
