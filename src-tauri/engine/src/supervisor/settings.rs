//! What every part of the supervisor shares: its timing rules, the moment an input is handled
//! and the stable id of a queue server.

use std::time::Duration;

use chrono::{DateTime, Local};
use tokio::time::Instant;

use crate::config::Config;

/// Timing rules of the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub refetch_every: Duration,
    pub connect_back_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// ±fraction applied to each backoff delay.
    pub jitter: f64,
    pub flap_holdoff: Duration,
    pub quiet_period: Duration,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            refetch_every: config.link.refetch_every,
            connect_back_timeout: config.link.connect_back_timeout,
            backoff_initial: Duration::from_secs(30),
            backoff_max: Duration::from_secs(15 * 60),
            jitter: 0.2,
            flap_holdoff: Duration::from_secs(10),
            quiet_period: Duration::from_secs(5),
        }
    }

    /// The delay before retry number `attempt` (1-based), before jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }

    /// [`Settings::backoff`] with the jitter applied; `random` is in [0, 1), 0.5 means none.
    pub fn jittered_backoff(&self, attempt: u32, random: f64) -> Duration {
        let factor = 1.0 + self.jitter * (random * 2.0 - 1.0);
        self.backoff(attempt).mul_f64(factor.max(0.0))
    }
}

/// A queue server's identity for the supervisor, stable across reloads (its position is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerId(pub u64);

/// The moment the machine handles an input: the clocks and the dice come in from outside, so
/// the machine itself stays pure and its tests exact.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// For deadlines.
    pub at: Instant,
    /// For the times users read (RFC 3339 in the status).
    pub wall: DateTime<Local>,
    /// In [0, 1): the jitter of a backoff scheduled now.
    pub random: f64,
}

impl Now {
    /// The real clocks and a fresh random number.
    pub fn real() -> Now {
        Now {
            at: Instant::now(),
            wall: Local::now(),
            random: fastrand::f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::transcript::config;

    #[test]
    fn backoff_doubles_from_30_seconds_to_15_minutes() {
        let s = Settings::from_config(&config(&["a.test"]));

        let delays: Vec<u64> = (1..=8).map(|a| s.backoff(a).as_secs()).collect();

        assert_eq!(delays, vec![30, 60, 120, 240, 480, 900, 900, 900]);
    }

    #[test]
    fn jitter_stays_within_a_fifth_either_way() {
        let s = Settings::from_config(&config(&["a.test"]));

        let low = s.jittered_backoff(1, 0.0);
        let none = s.jittered_backoff(1, 0.5);
        let high = s.jittered_backoff(1, 0.999_999);

        assert_eq!(low, Duration::from_secs(24));
        assert_eq!(none, Duration::from_secs(30));
        assert!(high > Duration::from_secs(35) && high <= Duration::from_secs(36));
    }
}
