//! When to try a message again, and when to give up. Pure: time and randomness are arguments.
//!
//! - The wait after the n-th failed attempt is `retry_min · 2^(n-1)`, at most `retry_max`, plus
//!   up to 10 % jitter (so a queue that failed together does not retry in lockstep).
//! - Expiry: a recipient still undelivered `max_queue_lifetime` after arrival (wall clock) is
//!   bounced, but only once the message has had at least [`MIN_ATTEMPTS_BEFORE_EXPIRY`] real
//!   attempts, i.e. attempts made while the link was up. Attempts are never counted while the
//!   link is down, so an office offline for a week keeps its whole queue. (Postfix, dma,
//!   nullmailer, OpenSMTPD and Stalwart all expire by wall-clock time alone.)

use std::time::Duration;

pub const MIN_ATTEMPTS_BEFORE_EXPIRY: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub max_queue_lifetime: Duration,
    /// Zero: no delay warnings.
    pub delay_warning: Duration,
}

impl Schedule {
    /// The wait after `attempts` failed attempts (at least 1). `jitter` in `0.0..1.0`.
    pub fn wait(&self, attempts: u32, jitter: f64) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        let base = self
            .retry_min
            .saturating_mul(1u32 << doublings)
            .min(self.retry_max);
        base + base.mul_f64(0.1 * jitter.clamp(0.0, 1.0))
    }

    /// Whether a message that arrived `age` ago after `attempts` real attempts has expired.
    pub fn expired(&self, age: Duration, attempts: u32) -> bool {
        age >= self.max_queue_lifetime && attempts >= MIN_ATTEMPTS_BEFORE_EXPIRY
    }

    /// Whether the sender should now get the (one) delay warning.
    pub fn warn_now(&self, age: Duration, already_warned: bool) -> bool {
        !self.delay_warning.is_zero() && !already_warned && age >= self.delay_warning
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn defaults() -> Schedule {
        Schedule {
            retry_min: Duration::from_secs(300),
            retry_max: Duration::from_secs(3600),
            max_queue_lifetime: Duration::from_secs(5 * 24 * 3600),
            delay_warning: Duration::ZERO,
        }
    }

    #[test]
    fn the_wait_starts_at_five_minutes_and_doubles_up_to_an_hour() {
        let s = defaults();

        let waits: Vec<u64> = (1..=7).map(|n| s.wait(n, 0.0).as_secs() / 60).collect();

        assert_eq!(waits, vec![5, 10, 20, 40, 60, 60, 60]);
        assert_eq!(s.wait(1000, 0.0), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_adds_at_most_a_tenth() {
        let s = defaults();

        assert_eq!(s.wait(1, 1.0), 5 * MIN + 30 * Duration::from_secs(1));
        assert_eq!(s.wait(5, 0.5), 60 * MIN + 3 * MIN);
    }

    #[test]
    fn a_week_offline_does_not_expire_a_message_without_three_real_attempts() {
        let s = defaults();
        let week = Duration::from_secs(7 * 24 * 3600);

        assert!(!s.expired(week, 0));
        assert!(!s.expired(week, 2));
        assert!(s.expired(week, 3));
        assert!(
            !s.expired(Duration::from_secs(24 * 3600), 50),
            "young messages never expire"
        );
    }

    #[test]
    fn the_delay_warning_is_off_by_default_and_comes_once() {
        let mut s = defaults();
        let five_hours = Duration::from_secs(5 * 3600);
        assert!(!s.warn_now(five_hours, false));

        s.delay_warning = Duration::from_secs(4 * 3600);

        assert!(s.warn_now(five_hours, false));
        assert!(!s.warn_now(five_hours, true));
        assert!(!s.warn_now(Duration::from_secs(3600), false));
    }
}
