//! Maildir delivery (the format of qmail, Dovecot, Courier, mutt).
//!
//! The durability contract lives here: a message is written under tmp/, the file is fsynced,
//! renamed into new/, and new/ itself is fsynced — and only when all of that succeeded does
//! [`MaildirWriter::commit`] return, so the SMTP session's 250 means "on disk". A crash before
//! the rename leaves at most a stray file in tmp/ (cleaned by mail readers after 36 hours), never
//! a half message in new/.
//!
//! Lines are stored with LF endings, as Postfix's local and virtual agents store them.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{DeliverError, Delivered};

/// Bytes gathered in memory before they go to the file: large messages are streamed to disk in
/// pieces of this size, never held whole.
const WRITE_CHUNK: usize = 256 * 1024;

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
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// Starts a new message file in tmp/.
    pub async fn begin(&self) -> Result<MaildirWriter, DeliverError> {
        let name = unique_name(&self.inner.hostname);
        let tmp_path = self.inner.tmp.join(&name);
        let open_path = tmp_path.clone();
        let file = tokio::task::spawn_blocking(move || {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&open_path)
        })
        .await
        .map_err(|e| DeliverError::io("start a message file", std::io::Error::other(e)))?
        .map_err(|e| DeliverError::io(format!("create {}", tmp_path.display()), e))?;
        Ok(MaildirWriter {
            paths: self.inner.clone(),
            name,
            tmp_path,
            file: Some(file),
            pending: Vec::with_capacity(8 * 1024),
            size: 0,
            held_cr: false,
        })
    }
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
        for &b in chunk {
            if self.held_cr {
                self.held_cr = false;
                if b != b'\n' {
                    self.pending.push(b'\r');
                }
            }
            if b == b'\r' {
                self.held_cr = true;
            } else {
                self.pending.push(b);
            }
        }
        self.size += (self.pending.len() - start) as u64;
        if self.pending.len() >= WRITE_CHUNK {
            self.flush_pending().await?;
        }
        Ok(())
    }

    async fn flush_pending(&mut self) -> Result<(), DeliverError> {
        let Some(mut file) = self.file.take() else {
            return Err(DeliverError::io(
                "write the message",
                std::io::Error::other("file closed"),
            ));
        };
        let data = std::mem::take(&mut self.pending);
        let (file, data, result) = tokio::task::spawn_blocking(move || {
            let r = file.write_all(&data);
            (file, data, r)
        })
        .await
        .map_err(|e| DeliverError::io("write the message", std::io::Error::other(e)))?;
        self.file = Some(file);
        self.pending = data;
        self.pending.clear();
        result.map_err(|e| DeliverError::io(format!("write {}", self.tmp_path.display()), e))
    }

    /// Writes the rest, fsyncs, moves the file into new/ and fsyncs new/.
    pub async fn commit(mut self) -> Result<Delivered, DeliverError> {
        if self.held_cr {
            self.pending.push(b'\r');
            self.size += 1;
            self.held_cr = false;
        }
        let Some(mut file) = self.file.take() else {
            return Err(DeliverError::io(
                "write the message",
                std::io::Error::other("file closed"),
            ));
        };
        let pending = std::mem::take(&mut self.pending);
        let final_name = format!("{},S={}", self.name, self.size);
        let new_path = self.paths.new.join(&final_name);
        let tmp_path = self.tmp_path.clone();
        let new_dir = self.paths.new.clone();
        let result = tokio::task::spawn_blocking(move || -> Result<(), DeliverError> {
            file.write_all(&pending)
                .map_err(|e| DeliverError::io(format!("write {}", tmp_path.display()), e))?;
            file.sync_all()
                .map_err(|e| DeliverError::io(format!("fsync {}", tmp_path.display()), e))?;
            drop(file);
            fs::rename(&tmp_path, &new_path).map_err(|e| {
                DeliverError::io(format!("move the message into {}", new_dir.display()), e)
            })?;
            File::open(&new_dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| DeliverError::io(format!("fsync the folder {}", new_dir.display()), e))
        })
        .await
        .map_err(|e| DeliverError::io("store the message", std::io::Error::other(e)))?;
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
        self.file.take();
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
