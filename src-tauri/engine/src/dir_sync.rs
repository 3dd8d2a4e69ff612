//! Group commit of a folder's fsync: many writers rename their files into one folder, and one
//! fsync of the folder makes all the renames before it durable. The Maildir's `new/` and the
//! outbound spool use it, so that under load (ten sessions at once) there is one folder fsync
//! per batch instead of one per message, with the same promise: [`DirSync::after_rename`]
//! returns only after an fsync of the folder that began after the caller's rename.
//!
//! It runs on the blocking pool, right after the rename in the same trip there: the commits
//! waiting for an fsync are blocking threads, so a plain mutex is the queue and no task has to
//! be woken in between.

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct DirSync {
    /// Renames into the folder so far; a commit takes the next number once its rename is done.
    pub(crate) renamed: AtomicU64,
    /// Every rename numbered up to this is covered by a completed fsync of the folder.
    pub(crate) synced: AtomicU64,
    /// Held while one fsync runs; the other commits queue here.
    pub(crate) leader: Mutex<()>,
    /// fsyncs done (for the batching tests and for curiosity).
    pub(crate) fsyncs: AtomicU64,
}

impl DirSync {
    /// Returns once an fsync of `dir` that started after the caller's (finished) rename or
    /// removal has succeeded: the caller's own, or one that a commit queued ahead of it ran.
    /// Blocks.
    pub fn after_rename(&self, dir: &Path) -> std::io::Result<()> {
        let ticket = self.renamed.fetch_add(1, Ordering::SeqCst) + 1;
        // A panic while holding the lock leaves nothing half done: the counters only grow.
        let _leader = self
            .leader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.synced.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        // Every rename numbered up to `covers` finished before this load, so before the fsync.
        let covers = self.renamed.load(Ordering::SeqCst);
        sync_dir(dir)?;
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.synced.fetch_max(covers, Ordering::SeqCst);
        Ok(())
    }
}

/// Makes the renames in `dir` durable.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// Windows cannot open a directory as a file, so there is no fsync of a folder: NTFS records
/// the rename in its metadata journal. (MoveFileEx with MOVEFILE_WRITE_THROUGH would wait for
/// it, but needs an unsafe FFI call, which this project forbids.)
#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}
