//! Retry delays: pure arithmetic, so every rule is testable without a clock.

/// How long to wait before retrying a failed job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// Base of the exponent; at least 1.
    pub base: f64,
    /// Upper bound of any delay, in seconds.
    pub max_s: f64,
}

impl Default for BackoffPolicy {
    /// The defaults of config `backoff-base` and `backoff-max`.
    fn default() -> Self {
        BackoffPolicy { base: crate::config::BACKOFF_BASE.default, max_s: crate::config::BACKOFF_MAX.default }
    }
}

impl BackoffPolicy {
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
        let p = BackoffPolicy { base: 10.0, max_s: 60.0 };
        assert_eq!(p.delay_ms(1), 10_000);
        assert_eq!(p.delay_ms(2), 60_000);
        assert_eq!(p.delay_ms(500), 60_000);
    }

    #[test]
    fn huge_exponent_saturates() {
        let p = BackoffPolicy { base: 2.0, max_s: f64::INFINITY };
        assert!(p.delay_ms(u32::MAX) > 0);
    }

    #[test]
    fn base_one_is_one_second_and_fractions_round() {
        assert_eq!(BackoffPolicy { base: 1.0, max_s: 10.0 }.delay_ms(7), 1_000);
        assert_eq!(BackoffPolicy { base: 1.5, max_s: 10.0 }.delay_ms(2), 2_250);
    }

    #[test]
    fn invalid_policy_is_clamped() {
        assert_eq!(BackoffPolicy { base: 0.5, max_s: 10.0 }.delay_ms(3), 1_000);
        assert_eq!(BackoffPolicy { base: f64::NAN, max_s: -1.0 }.delay_ms(3), 0);
    }
}
