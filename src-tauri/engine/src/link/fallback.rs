//! Platforms without interface events: the link is watched by the probe timer alone.

use tokio::sync::mpsc;

use super::hint::{Hint, HintError};

/// The name of the event source, for the log.
pub const SOURCE: &str = "none";

/// Always fails: there is no event source on this platform.
pub fn spawn_hints(tx: mpsc::Sender<Hint>) -> Result<(), HintError> {
    drop(tx);
    Err(HintError(
        "this platform reports no network changes to Postern".into(),
    ))
}
