//! Retry delays: pure arithmetic, so every rule is testable without a clock.

/// How long to wait before retrying a failed job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// Base of the exponent; at least 1.
    pub base: f64,
    /// Upper bound of any delay, in seconds.
    pub max_s: f64,
    /// Each delay is multiplied by a random factor in [1 - jitter, 1 + jitter] (0 to 1).
    pub jitter: f64,
}

impl Default for BackoffPolicy {
    /// The defaults of config `backoff-base`, `backoff-max` and `backoff-jitter`.
    fn default() -> Self {
        BackoffPolicy {
            base: crate::config::BACKOFF_BASE.default,
            max_s: crate::config::BACKOFF_MAX.default,
            jitter: crate::config::BACKOFF_JITTER.default,
        }
    }
}

/// A random number in [0, 1): from the standard library's randomly seeded hasher, which
/// is plenty for spreading retries.
pub fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

impl BackoffPolicy {
    /// The delay before the retry that follows the `failed_attempts`-th failed attempt:
    /// the job's own list when it has one (entry k, the last one repeating), else
    /// [`Self::delay_ms`]; then spread by the jitter with `draw` (in [0, 1): 0.5 leaves
    /// it as it is).
    pub fn retry_delay_ms(&self, failed_attempts: u32, delays_ms: Option<&[u64]>, draw: f64) -> i64 {
        let plain = match delays_ms {
            Some(list) if !list.is_empty() => {
                let k = usize::try_from(failed_attempts.max(1) - 1).unwrap_or(usize::MAX).min(list.len() - 1);
                i64::try_from(list[k]).unwrap_or(i64::MAX)
            }
            _ => self.delay_ms(failed_attempts),
        };
        let j = if self.jitter.is_finite() { self.jitter.clamp(0.0, 1.0) } else { 0.0 };
        if j == 0.0 {
            return plain;
        }
        let factor = 1.0 - j + 2.0 * j * draw.clamp(0.0, 1.0);
        (plain as f64 * factor).round() as i64
    }

    /// Delay after the `failed_attempts`-th failed attempt: `min(base ^ k, max)` seconds,
    /// in whole milliseconds. Never negative, never NaN, saturates instead of overflowing.
    pub fn delay_ms(&self, failed_attempts: u32) -> i64 {
        let base = if self.base.is_finite() && self.base >= 1.0 { self.base } else { 1.0 };
        let max_s = if self.max_s >= 0.0 { self.max_s } else { 0.0 };
        let exp = i32::try_from(failed_attempts).unwrap_or(i32::MAX);
        let secs = base.powi(exp).min(max_s);
        (secs * 1000.0).round() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_give_two_four_eight() {
        let p = BackoffPolicy::default();
        assert_eq!(p.delay_ms(1), 2_000);
        assert_eq!(p.delay_ms(2), 4_000);
        assert_eq!(p.delay_ms(3), 8_000);
    }

    #[test]
    fn capped_by_max() {
        let p = BackoffPolicy { base: 10.0, max_s: 60.0, jitter: 0.0 };
        assert_eq!(p.delay_ms(1), 10_000);
        assert_eq!(p.delay_ms(2), 60_000);
        assert_eq!(p.delay_ms(500), 60_000);
    }

    #[test]
    fn huge_exponent_saturates() {
        let p = BackoffPolicy { base: 2.0, max_s: f64::INFINITY, jitter: 0.0 };
        assert!(p.delay_ms(u32::MAX) > 0);
    }

    #[test]
    fn base_one_is_one_second_and_fractions_round() {
        assert_eq!(BackoffPolicy { base: 1.0, max_s: 10.0, jitter: 0.0 }.delay_ms(7), 1_000);
        assert_eq!(BackoffPolicy { base: 1.5, max_s: 10.0, jitter: 0.0 }.delay_ms(2), 2_250);
    }

    #[test]
    fn invalid_policy_is_clamped() {
        assert_eq!(BackoffPolicy { base: 0.5, max_s: 10.0, jitter: 0.0 }.delay_ms(3), 1_000);
        assert_eq!(BackoffPolicy { base: f64::NAN, max_s: -1.0, jitter: 0.0 }.delay_ms(3), 0);
    }

    #[test]
    fn a_list_of_delays_takes_entry_k_and_repeats_its_last() {
        let p = BackoffPolicy::default();
        let list = [10_000, 60_000, 300_000];
        let delays: Vec<i64> = (1..=5).map(|k| p.retry_delay_ms(k, Some(&list), 0.5)).collect();
        assert_eq!(delays, [10_000, 60_000, 300_000, 300_000, 300_000]);
        assert_eq!(p.retry_delay_ms(2, None, 0.5), 4_000, "no list: base ^ attempts");
    }

    #[test]
    fn jitter_spreads_within_its_bounds() {
        let p = BackoffPolicy { jitter: 0.25, ..BackoffPolicy::default() };
        assert_eq!(p.retry_delay_ms(1, Some(&[10_000]), 0.0), 7_500);
        assert_eq!(p.retry_delay_ms(1, Some(&[10_000]), 1.0), 12_500);
        let draws: Vec<i64> = (0..200).map(|_| p.retry_delay_ms(1, Some(&[10_000]), random_unit())).collect();
        assert!(draws.iter().all(|d| (7_500..=12_500).contains(d)), "{draws:?}");
        let (lo, hi) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
        assert!(hi - lo > 2_500, "200 draws spread over most of the range: {lo}..{hi}");
        let below = draws.iter().filter(|d| **d < 10_000).count();
        assert!((50..150).contains(&below), "about half below the plain delay: {below}");
        let none = BackoffPolicy::default();
        assert!((0..50).all(|_| none.retry_delay_ms(1, Some(&[10_000]), random_unit()) == 10_000));
    }
}
