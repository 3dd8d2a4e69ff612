//! Waiting for a condition, never for a guessed delay.

use std::time::Duration;

use super::error::{HarnessError, Result};

/// Polls `probe` until it returns `Some`, or fails after `timeout`. The interval grows from 5 ms
/// to 100 ms: this waits for a condition, it does not guess a delay.
pub fn poll_until<T>(
    what: impl Into<String>,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = std::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if std::time::Instant::now() >= deadline {
            return Err(HarnessError::Timeout {
                what: what.into(),
                after: timeout,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
