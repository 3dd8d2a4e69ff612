//! The mail-flow journal: every engine event that an admin may ask about later ("did the mail
//! come in this morning?"), kept in SQLite in the state folder, across restarts.
//!
//! The engine never waits for it. [`start`] subscribes to the event broadcast and hands the
//! events to one writer thread, which writes them in batches ([`writer`]). A journal that cannot
//! be opened or written (a full disk, a broken file) is reported as a `Warning` event and mail
//! goes on; a file that is not a database is moved aside and a fresh one started ([`store`]).
//! Old entries are pruned in the background after the retention time. Reading ([`query`]) opens
//! its own read-only connection, so `posternd log` works with or without a running engine.

mod entry_text;
pub mod query;
mod store;
mod writer;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use entry_text::entries_for;
pub use query::{Entry, Page, Query};
pub use writer::{JournalHandle, start};

/// The journal's file in the state folder.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("journal.sqlite")
}

/// What an entry is about; `posternd log --kind` and the Activity filters use these names.
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
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Fetch,
        Kind::Message,
        Kind::Problem,
        Kind::Link,
        Kind::Config,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Fetch => "fetch",
            Kind::Message => "message",
            Kind::Problem => "problem",
            Kind::Link => "link",
            Kind::Config => "config",
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
    #[error("unknown kind {0:?}: use fetch, message, problem, link or config")]
    UnknownKind(String),
    #[error(
        "cannot read {0:?} as a time: use a duration such as 2h or 3d, a date such as \
         2026-12-01, or a time such as 2026-12-01T08:00"
    )]
    BadSince(String),
}
