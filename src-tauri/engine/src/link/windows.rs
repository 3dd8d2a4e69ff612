//! Windows: the IP Helper change notifications, through netwatcher.

use tokio::sync::mpsc;

use super::hint::{Hint, HintError};

/// The name of the event source, for the log.
pub const SOURCE: &str = "IP Helper notifications (netwatcher)";

/// Starts sending a [`Hint`] into `tx` for every interface or address change.
pub fn spawn_hints(tx: mpsc::Sender<Hint>) -> Result<(), HintError> {
    super::netwatcher_hints::spawn_hints(tx)
}
