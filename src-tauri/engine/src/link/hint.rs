//! What a platform watcher sends: a hint that the network changed, or why it cannot watch.

/// An OS network event: a reason to probe soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hint {
    pub what: &'static str,
}

/// The OS event source could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HintError(pub String);

impl HintError {
    #[cfg(target_os = "linux")]
    pub(super) fn io(e: std::io::Error) -> HintError {
        HintError(e.to_string())
    }
}
