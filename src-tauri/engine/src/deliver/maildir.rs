//! Maildir delivery (the format of qmail, Dovecot, Courier, mutt).
//!
//! The durability contract lives here: a message is written under tmp/, the file is fsynced,
//! renamed into new/, and new/ itself is fsynced — and only when all of that succeeded does
//! [`MaildirWriter::commit`] return, so the SMTP session's 250 means "on disk". A crash before
//! the rename leaves at most a stray file in tmp/ (cleaned by mail readers after 36 hours), never
//! a half message in new/.
//!
//! Group commit: the fsync of new/ is shared. Each commit fsyncs its own file (in parallel, on
//! the blocking pool), renames it, and then waits, in the same trip to the blocking pool, in
//! [`DirSync`] (`crate::dir_sync`): one waiter at a time fsyncs new/, covering every rename finished before it
//! started; the waiters queued behind it find their rename covered and return without a second
//! fsync. Under load (ten sessions at once) that is one directory fsync per batch instead of one
//! per message, and the promise is the same: `commit` returns only after an fsync of new/ that
//! began after this message's rename.
//!
//! Lines are stored with LF endings, as Postfix's local and virtual agents store them; every one
//! of them was a CRLF on the wire (the session normalises bare line ends first). Files are
//! created 0600: mail is private. Files that a crash left in tmp/ are removed at start once they
//! are 36 hours old (the Maildir convention).
//!
//! Once a message is renamed into new/ it is never answered with a 4xx: a queuing server that
//! retried would deliver it twice. If the fsync of new/ fails after the rename, the file is
//! taken out of new/ again, and only then is the failure reported.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::outcome::{DeliverError, Delivered};
use crate::dir_sync::DirSync;

/// Bytes gathered in memory before they go to the file: large messages are streamed to disk in
/// pieces of this size, never held whole.
const WRITE_CHUNK: usize = 256 * 1024;

/// Files in tmp/ older than this are leftovers of a crash (qmail's and Dovecot's rule).
const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(36 * 3600);

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone)]
pub struct Maildir {
    inner: Arc<Paths>,
}

#[derive(Debug)]
struct Paths {
    root: PathBuf,
    tmp: PathBuf,
    new: PathBuf,
    hostname: String,
    new_sync: DirSync,
}

/// Removes files in `tmp` older than [`STALE_TMP`]; returns how many.
fn remove_stale_tmp(tmp: &Path) -> usize {
    let Ok(entries) = fs::read_dir(tmp) else {
        return 0;
    };
    let now = std::time::SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_TMP);
        if old && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

impl Maildir {
    /// Opens `root`, creating it with tmp/, new/ and cur/ when missing.
    pub fn open(root: &Path, hostname: &str) -> Result<Maildir, DeliverError> {
        for sub in ["", "tmp", "new", "cur"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|e| {
                DeliverError::io(format!("create the Maildir folder {}", dir.display()), e)
            })?;
        }
        let stale = remove_stale_tmp(&root.join("tmp"));
        if stale > 0 {
            tracing::info!(
                "removed {stale} files older than 36 h from {}/tmp (left by a crash)",
                root.display()
            );
        }
        // The name goes into file names: keep it to characters Maildir allows.
        let hostname = hostname
            .chars()
            .map(|c| match c {
                '/' => '\\',
                ':' => '-',
                c => c,
            })
            .collect();
        Ok(Maildir {
            inner: Arc::new(Paths {
                root: root.to_path_buf(),
                tmp: root.join("tmp"),
                new: root.join("new"),
                hostname,
                new_sync: DirSync::default(),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// Starts a new message. Its file in tmp/ is created when the first piece is written out
    /// (a large message) or in `commit` (most messages: one trip to the blocking pool fewer).
    pub async fn begin(&self) -> Result<MaildirWriter, DeliverError> {
        let name = unique_name(&self.inner.hostname);
        let tmp_path = self.inner.tmp.join(&name);
        Ok(MaildirWriter {
            paths: self.inner.clone(),
            name,
            tmp_path,
            file: None,
            pending: Vec::with_capacity(8 * 1024),
            size: 0,
            held_cr: false,
        })
    }
}

/// Creates the message file in tmp/ (never over an existing one).
fn create_tmp(path: &Path) -> Result<File, DeliverError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map_err(|e| DeliverError::io(format!("create {}", path.display()), e))
}

fn unique_name(hostname: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed),
        hostname
    )
}

#[derive(Debug)]
pub struct MaildirWriter {
    paths: Arc<Paths>,
    name: String,
    tmp_path: PathBuf,
    /// The file in tmp/, once created.
    file: Option<File>,
    /// Converted bytes not yet written to the file.
    pending: Vec<u8>,
    /// Bytes of the stored message (LF line ends).
    size: u64,
    /// The last chunk ended in CR: its fate depends on the next byte.
    held_cr: bool,
}

impl MaildirWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), DeliverError> {
        let start = self.pending.len();
        let mut rest = chunk;
        if self.held_cr
            && let Some(&first) = rest.first()
        {
            self.held_cr = false;
            if first != b'\n' {
                self.pending.push(b'\r');
            }
        }
        // CRLF becomes LF, a bare CR stays; runs between CRs are copied whole.
        while let Some(at) = memchr::memchr(b'\r', rest) {
            self.pending.extend_from_slice(&rest[..at]);
            match rest.get(at + 1) {
                Some(b'\n') => {}
                Some(_) => self.pending.push(b'\r'),
                None => self.held_cr = true,
            }
            rest = &rest[at + 1..];
        }
        self.pending.extend_from_slice(rest);
        self.size += (self.pending.len() - start) as u64;
        if self.pending.len() >= WRITE_CHUNK {
            self.flush_pending().await?;
        }
        Ok(())
    }

    async fn flush_pending(&mut self) -> Result<(), DeliverError> {
        let file = self.file.take();
        let path = self.tmp_path.clone();
        let data = std::mem::take(&mut self.pending);
        let (file, data, result) = tokio::task::spawn_blocking(move || {
            let file = match file {
                Some(f) => f,
                None => match create_tmp(&path) {
                    Ok(f) => f,
                    Err(e) => return (None, data, Err(e)),
                },
            };
            let r = (&file)
                .write_all(&data)
                .map_err(|e| DeliverError::io(format!("write {}", path.display()), e));
            (Some(file), data, r)
        })
        .await
        .map_err(|e| DeliverError::io("write the message", std::io::Error::other(e)))?;
        self.file = file;
        self.pending = data;
        self.pending.clear();
        result
    }

    /// Writes the rest, fsyncs, moves the file into new/ and fsyncs new/ (shared with the
    /// commits running at the same time, see [`DirSync`]).
    pub async fn commit(mut self) -> Result<Delivered, DeliverError> {
        if self.held_cr {
            self.pending.push(b'\r');
            self.size += 1;
            self.held_cr = false;
        }
        let file = self.file.take();
        let pending = std::mem::take(&mut self.pending);
        let final_name = format!("{},S={}", self.name, self.size);
        let new_path = self.paths.new.join(&final_name);
        let tmp_path = self.tmp_path.clone();
        let paths = self.paths.clone();
        let result = tokio::task::spawn_blocking(move || -> Result<(), DeliverError> {
            let mut file = match file {
                Some(f) => f,
                None => create_tmp(&tmp_path)?,
            };
            file.write_all(&pending)
                .map_err(|e| DeliverError::io(format!("write {}", tmp_path.display()), e))?;
            file.sync_all()
                .map_err(|e| DeliverError::io(format!("fsync {}", tmp_path.display()), e))?;
            drop(file);
            fs::rename(&tmp_path, &new_path).map_err(|e| {
                DeliverError::io(format!("move the message into {}", paths.new.display()), e)
            })?;
            let Err(e) = paths.new_sync.after_rename(&paths.new) else {
                return Ok(());
            };
            // The message is visible in new/ but its name may not survive a crash. A 4xx now
            // would bring it again, so it leaves new/ first; if a mail reader already took it,
            // it is delivered after all.
            match fs::remove_file(&new_path) {
                Ok(()) => Err(DeliverError::io(
                    format!("fsync the folder {}", paths.new.display()),
                    e,
                )),
                Err(gone) if gone.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(stuck) => {
                    tracing::error!(
                        "the fsync of {} failed ({e}) and {} could not be taken back ({stuck}): \
                         the message stays delivered",
                        paths.new.display(),
                        new_path.display()
                    );
                    Ok(())
                }
            }
        })
        .await
        .map_err(|e| DeliverError::io("store the message", std::io::Error::other(e)))
        .and_then(|r| r);
        if let Err(e) = result {
            let tmp = self.tmp_path.clone();
            let _ = tokio::task::spawn_blocking(move || fs::remove_file(tmp)).await;
            return Err(e);
        }
        Ok(Delivered {
            location: final_name,
            size: self.size,
        })
    }

    pub async fn abort(mut self) {
        if self.file.take().is_none() {
            return; // nothing was written to tmp/ yet
        }
        let tmp = self.tmp_path.clone();
        let _ = tokio::task::spawn_blocking(move || fs::remove_file(tmp)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commit_moves_a_converted_message_into_new() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(&dir.path().join("Maildir"), "host").unwrap();
        let mut w = maildir.begin().await.unwrap();
        w.write(b"Subject: x\r").await.unwrap();
        w.write(b"\n\r\nbody\rbare cr\r\n").await.unwrap();
        let delivered = w.commit().await.unwrap();

        let stored = fs::read(dir.path().join("Maildir/new").join(&delivered.location)).unwrap();
        assert_eq!(stored, b"Subject: x\n\nbody\rbare cr\n");
        assert_eq!(delivered.size, stored.len() as u64);
        assert!(
            delivered
                .location
                .ends_with(&format!(",S={}", stored.len()))
        );
        assert_eq!(
            fs::read_dir(dir.path().join("Maildir/tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn line_ends_are_converted_across_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(dir.path(), "host").unwrap();
        let mut w = maildir.begin().await.unwrap();
        for chunk in [&b"a\r"[..], b"", b"\r\nb\r", b"c\r\r", b"\n", b"\r"] {
            w.write(chunk).await.unwrap();
        }

        let delivered = w.commit().await.unwrap();

        let stored = fs::read(dir.path().join("new").join(&delivered.location)).unwrap();
        assert_eq!(stored, b"a\r\nb\rc\r\n\r");
        assert_eq!(delivered.size, stored.len() as u64);
    }

    #[tokio::test]
    async fn sequential_commits_each_fsync_new() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(dir.path(), "host").unwrap();

        for i in 0..3 {
            let mut w = maildir.begin().await.unwrap();
            w.write(format!("Subject: {i}\r\n").as_bytes())
                .await
                .unwrap();
            w.commit().await.unwrap();
        }

        assert_eq!(maildir.inner.new_sync.fsyncs.load(Ordering::SeqCst), 3);
        assert_eq!(fs::read_dir(dir.path().join("new")).unwrap().count(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commits_share_one_fsync_of_new() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(dir.path(), "host").unwrap();
        let sync = &maildir.inner.new_sync;
        // Arrange: an fsync of new/ is "running" (its lock is held, by another thread) while
        // eight commits rename their files and queue up behind it.
        let (held_tx, held) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let running = {
            let maildir = maildir.clone();
            std::thread::spawn(move || {
                let _lock = maildir.inner.new_sync.leader.lock().unwrap();
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            })
        };
        held.recv().unwrap();
        let mut commits = tokio::task::JoinSet::new();
        for i in 0..8 {
            let mut w = maildir.begin().await.unwrap();
            w.write(format!("Subject: {i}\r\n").as_bytes())
                .await
                .unwrap();
            commits.spawn(w.commit());
        }
        while sync.renamed.load(Ordering::SeqCst) < 8 {
            tokio::task::yield_now().await;
        }

        // Act: the running fsync ends without covering them (it began before their renames).
        release.send(()).unwrap();
        running.join().unwrap();
        let mut done = 0;
        while let Some(result) = commits.join_next().await {
            result.unwrap().unwrap();
            done += 1;
        }

        // Assert: the first in line fsynced new/ once, for all eight.
        assert_eq!(done, 8);
        assert_eq!(sync.fsyncs.load(Ordering::SeqCst), 1);
        assert_eq!(sync.synced.load(Ordering::SeqCst), 8);
        assert_eq!(fs::read_dir(dir.path().join("new")).unwrap().count(), 8);
    }

    #[tokio::test]
    async fn abort_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(dir.path(), "host").unwrap();
        let mut w = maildir.begin().await.unwrap();
        w.write(b"partial").await.unwrap();
        w.abort().await;
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(dir.path().join("new")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn large_messages_are_written_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(dir.path(), "host").unwrap();
        let mut w = maildir.begin().await.unwrap();
        let line = vec![b'a'; 1000];
        for _ in 0..1000 {
            w.write(&line).await.unwrap();
            w.write(b"\r\n").await.unwrap();
            assert!(w.pending.len() < WRITE_CHUNK + 1002);
        }
        let delivered = w.commit().await.unwrap();
        assert_eq!(delivered.size, 1001 * 1000);
    }
}
