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
pub mod stats;
mod store;
mod types;
mod writer;

use std::path::{Path, PathBuf};

pub use entry_text::entries_for;
pub use query::{Entry, Page, Query};
pub use stats::Stats;
pub use types::{JournalError, Kind};
pub use writer::{JournalHandle, start};

/// The journal's file in the state folder.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("journal.sqlite")
}
