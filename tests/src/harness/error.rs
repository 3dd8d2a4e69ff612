//! What the harness's calls return when something goes wrong.

use std::time::Duration;

use super::reply::Reply;

/// What can go wrong while driving a peer. The message says what failed and, where it helps,
/// what the peer said (its log or transcript).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("SMTP {command:?} answered {reply}")]
    Rejected { command: String, reply: Reply },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| HarnessError::Io {
            what: what(),
            source,
        })
    }
}
