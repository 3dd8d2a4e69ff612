//! What the journal's files share: the kinds of entry and the errors.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What an entry is about; `posternd log --kind` and the Activity filters use these names.
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "JournalKind"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A dequeue: started, each domain's reply, retries.
    Fetch,
    /// A message received, refused, queued, sent, deferred or bounced.
    Message,
    /// A warning, or something that needs the admin.
    Problem,
    /// The link went up or down; the listener started.
    Link,
    /// A configuration reload, pause and resume.
    Config,
    /// The backup MX: the neighbour asking for its mail (ETRN/ATRN), the runs that release it,
    /// each held message delivered or returned.
    Backup,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Fetch,
        Kind::Message,
        Kind::Problem,
        Kind::Link,
        Kind::Config,
        Kind::Backup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Fetch => "fetch",
            Kind::Message => "message",
            Kind::Problem => "problem",
            Kind::Link => "link",
            Kind::Config => "config",
            Kind::Backup => "backup",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = JournalError;

    fn from_str(s: &str) -> Result<Kind, JournalError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| JournalError::UnknownKind(s.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "no journal at {0} yet: it is written by a running engine (posternd run or the tray app)"
    )]
    Missing(PathBuf),
    #[error("cannot open the journal {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "cannot prepare the journal's folder {path}: {source} (check the state_dir setting and \
         that the folder is writable)"
    )]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the journal: {0}")]
    Read(#[source] rusqlite::Error),
    #[error("cannot write the journal: {0}")]
    Write(#[source] rusqlite::Error),
    #[error("unknown kind {0:?}: use fetch, message, problem, link, backup or config")]
    UnknownKind(String),
    #[error(
        "cannot read {0:?} as a time: use a duration such as 2h or 3d, a date such as \
         2026-12-01, or a time such as 2026-12-01T08:00"
    )]
    BadSince(String),
}
