//! The outbound spool: one file per message plus its envelope and state record.
//!
//! The durability contract lives here. A message is streamed into `ID.msg` and fsynced; its
//! record is written to `ID.rec.tmp`, fsynced, and renamed to `ID.rec`; then the folder is
//! fsynced (one fsync shared by the commits running at the same time, [`crate::dir_sync`]).
//! **The rename of the record is the commit marker**: only after all of that does
//! [`SpoolWriter::commit`] return, and only then does the submission session answer 250.
//!
//! At start ([`Spool::open`]) every `ID.rec` is a committed message; an `ID.msg` without its
//! record and every `*.tmp` are leftovers of a crash before the commit (never acknowledged) and
//! are removed. A record is updated the same way (temporary file, fsync, rename over, fsync the
//! folder), and a finished message loses its record first, so a crash in between leaves only a
//! leftover, never a record without its message.
//!
//! Files are created 0600 in a 0700 folder: mail is private.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::headers::HeaderFix;
use crate::dir_sync::{DirSync, sync_dir};

/// Bytes gathered before a write to the message file.
const WRITE_CHUNK: usize = 256 * 1024;

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, thiserror::Error)]
#[error("the outbound spool {}: cannot {what}: {source}. Check that the folder exists, is writable and the disk is not full ([outbound] spool in postern.toml)", dir.display())]
pub struct SpoolError {
    pub dir: PathBuf,
    pub what: String,
    #[source]
    pub source: std::io::Error,
}

/// Where one recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RcptState {
    /// Not tried yet, or waiting for its next attempt after a temporary failure.
    Queued,
    Delivered,
    /// Refused for good (5xx): the sender got a DSN.
    Bounced,
    /// Undelivered after `max_queue_lifetime` (and at least 3 real attempts): bounced.
    Expired,
}

impl RcptState {
    pub fn is_final(self) -> bool {
        self != RcptState::Queued
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    pub state: RcptState,
    /// The last reply for this recipient (`450 4.2.0 try later`, or a network error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

/// The envelope and state of one spooled message (`ID.rec`, JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Empty for the null sender `<>`.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    /// Seconds since the Unix epoch.
    pub arrived: u64,
    pub size: u64,
    /// Real attempts (the link was up and the smarthost was tried).
    pub attempts: u32,
    /// Seconds since the Unix epoch; `None`: at the next chance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reply: Option<String>,
    /// The submitting client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default)]
    pub delay_warned: bool,
}

impl Record {
    pub fn pending(&self) -> impl Iterator<Item = &Recipient> {
        self.recipients.iter().filter(|r| !r.state.is_final())
    }
    pub fn is_done(&self) -> bool {
        self.recipients.iter().all(|r| r.state.is_final())
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What [`Spool::open`] found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Committed messages, oldest first.
    pub records: Vec<Record>,
    /// Uncommitted leftovers removed.
    pub removed: usize,
    /// Records that could not be read (renamed to `ID.rec.bad`, their message kept).
    pub unreadable: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    hostname: String,
    /// Gets each newly committed record, so the queue runner sees new mail at once.
    feed: Option<mpsc::UnboundedSender<Record>>,
    /// The folder's fsync, shared by the commits running at the same time.
    folder_sync: Arc<DirSync>,
}

impl Spool {
    /// Opens (creates) the spool folder and recovers it (see the module documentation).
    pub fn open(dir: &Path, hostname: &str) -> Result<(Spool, Recovered), SpoolError> {
        let spool = Spool::at(dir, hostname);
        fs::create_dir_all(dir).map_err(|e| spool.err("create the folder", e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| spool.err("make the folder private", e))?;
        }
        let recovered = spool.recover()?;
        Ok((spool, recovered))
    }

    /// Opens an existing spool without recovering it (the queue commands while an engine may
    /// be starting: nothing is removed).
    pub fn at(dir: &Path, hostname: &str) -> Spool {
        Spool {
            dir: dir.to_path_buf(),
            hostname: hostname.to_string(),
            feed: None,
            folder_sync: Arc::default(),
        }
    }

    /// The same spool, sending every newly committed record to `feed`.
    pub fn with_feed(self, feed: mpsc::UnboundedSender<Record>) -> Spool {
        Spool {
            feed: Some(feed),
            ..self
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn err(&self, what: impl Into<String>, source: std::io::Error) -> SpoolError {
        SpoolError {
            dir: self.dir.clone(),
            what: what.into(),
            source,
        }
    }

    fn recover(&self) -> Result<Recovered, SpoolError> {
        let mut out = Recovered::default();
        let entries = fs::read_dir(&self.dir).map_err(|e| self.err("read the folder", e))?;
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in &names {
            if let Some(id) = name.strip_suffix(".rec") {
                match self.load(id) {
                    Ok(record) => out.records.push(record),
                    Err(e) => {
                        tracing::error!("unreadable spool record {name}: {e}");
                        let _ =
                            fs::rename(self.dir.join(name), self.dir.join(format!("{name}.bad")));
                        out.unreadable.push(id.to_string());
                    }
                }
            }
        }
        for name in &names {
            let leftover = name.ends_with(".tmp")
                || name.strip_suffix(".msg").is_some_and(|id| {
                    !names.iter().any(|n| n == &format!("{id}.rec"))
                        && !out.unreadable.iter().any(|u| u == id)
                });
            if leftover && fs::remove_file(self.dir.join(name)).is_ok() {
                out.removed += 1;
            }
        }
        if out.removed > 0 {
            sync_dir(&self.dir).map_err(|e| self.err("fsync the folder", e))?;
            tracing::info!(removed = out.removed, "removed uncommitted spool leftovers");
        }
        out.records
            .sort_by(|a, b| (a.arrived, &a.id).cmp(&(b.arrived, &b.id)));
        Ok(out)
    }

    pub fn message_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.msg"))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.rec"))
    }

    /// Reads one committed record.
    pub fn load(&self, id: &str) -> Result<Record, SpoolError> {
        let path = self.record_path(id);
        let text = fs::read(&path).map_err(|e| self.err(format!("read {id}.rec"), e))?;
        serde_json::from_slice(&text).map_err(|e| {
            self.err(
                format!("parse {id}.rec"),
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// Every committed record, oldest first (nothing is removed).
    pub fn list(&self) -> Result<Vec<Record>, SpoolError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| self.err("read the folder", e))?;
        let mut records: Vec<Record> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".rec").map(str::to_string))
            .filter_map(|id| self.load(&id).ok())
            .collect();
        records.sort_by(|a, b| (a.arrived, &a.id).cmp(&(b.arrived, &b.id)));
        Ok(records)
    }

    /// Writes `record` durably (temporary file, fsync, rename over, fsync the folder). Blocks.
    pub fn save(&self, record: &Record) -> Result<(), SpoolError> {
        let tmp = self.dir.join(format!("{}.rec.tmp", record.id));
        let json = serde_json::to_vec_pretty(record).map_err(|e| {
            self.err(
                "encode a record",
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        let write = || -> std::io::Result<()> {
            let mut file = create_private(&tmp, false)?;
            file.write_all(&json)?;
            file.sync_all()?;
            fs::rename(&tmp, self.record_path(&record.id))?;
            self.folder_sync.after_rename(&self.dir)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            self.err(format!("write {}.rec", record.id), e)
        })
    }

    /// [`Spool::save`] on the blocking pool.
    pub async fn save_async(&self, record: &Record) -> Result<(), SpoolError> {
        let spool = self.clone();
        let record = record.clone();
        tokio::task::spawn_blocking(move || spool.save(&record))
            .await
            .map_err(|e| self.err("write a record", std::io::Error::other(e)))?
    }

    /// Takes a message out of the spool: the record (the commit marker) first. Blocks.
    pub fn remove(&self, id: &str) -> Result<(), SpoolError> {
        fs::remove_file(self.record_path(id))
            .map_err(|e| self.err(format!("remove {id}.rec"), e))?;
        let _ = fs::remove_file(self.message_path(id));
        self.folder_sync
            .after_rename(&self.dir)
            .map_err(|e| self.err("fsync the folder", e))
    }

    /// Starts a new message. `fix_headers`: add a missing Date:/Message-ID: (submission).
    pub async fn begin(
        &self,
        sender: &str,
        recipients: &[String],
        client: Option<String>,
        fix_headers: bool,
    ) -> Result<SpoolWriter, SpoolError> {
        let id = new_id();
        let path = self.message_path(&id);
        let std_file = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || create_private(&path, true))
                .await
                .map_err(|e| self.err("create a message file", std::io::Error::other(e)))?
                .map_err(|e| self.err(format!("create {id}.msg"), e))?
        };
        let message_id = format!("<{id}@{}>", self.hostname);
        Ok(SpoolWriter {
            spool: self.clone(),
            file: Some(tokio::fs::File::from_std(std_file)),
            path,
            record: Record {
                id,
                sender: sender.to_string(),
                recipients: recipients
                    .iter()
                    .map(|r| Recipient {
                        address: r.clone(),
                        state: RcptState::Queued,
                        reply: None,
                    })
                    .collect(),
                arrived: unix_now(),
                size: 0,
                attempts: 0,
                next_attempt: None,
                last_reply: None,
                client,
                delay_warned: false,
            },
            fix: fix_headers.then(|| HeaderFix::new(message_id)),
            pending: Vec::with_capacity(16 * 1024),
        })
    }
}

/// One message being written into the spool.
#[derive(Debug)]
pub struct SpoolWriter {
    spool: Spool,
    file: Option<tokio::fs::File>,
    path: PathBuf,
    record: Record,
    fix: Option<HeaderFix>,
    pending: Vec<u8>,
}

impl SpoolWriter {
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// Appends message bytes (unstuffed, CRLF line ends).
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), SpoolError> {
        match self.fix.as_mut() {
            Some(fix) => fix.feed(chunk, &mut self.pending),
            None => self.pending.extend_from_slice(chunk),
        }
        if self.pending.len() >= WRITE_CHUNK {
            self.flush_pending().await?;
        }
        Ok(())
    }

    async fn flush_pending(&mut self) -> Result<(), SpoolError> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.write_all(&self.pending)
            .await
            .map_err(|e| self.spool.err(format!("write {}.msg", self.record.id), e))?;
        self.record.size += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Makes the message durable (see the module documentation); returns its record. Only
    /// then may the session say 250.
    pub async fn commit(mut self) -> Result<Record, SpoolError> {
        if let Some(fix) = self.fix.as_mut() {
            fix.finish(&mut self.pending);
        }
        let result = self.finish_file().await;
        if let Err(e) = result {
            self.abort().await;
            return Err(e);
        }
        let spool = self.spool.clone();
        let record = self.record.clone();
        let saved = tokio::task::spawn_blocking(move || spool.save(&record))
            .await
            .map_err(|e| self.spool.err("commit a message", std::io::Error::other(e)))
            .and_then(|r| r);
        match saved {
            Ok(()) => {
                self.file = None;
                if let Some(feed) = &self.spool.feed {
                    let _ = feed.send(self.record.clone());
                }
                Ok(self.record.clone())
            }
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn finish_file(&mut self) -> Result<(), SpoolError> {
        self.flush_pending().await?;
        let id = self.record.id.clone();
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.flush()
            .await
            .map_err(|e| self.spool.err(format!("write {id}.msg"), e))?;
        file.sync_all()
            .await
            .map_err(|e| self.spool.err(format!("fsync {id}.msg"), e))
    }

    /// Throws the partial message away.
    pub async fn abort(mut self) {
        self.file = None;
        let path = self.path.clone();
        let _ = tokio::task::spawn_blocking(move || fs::remove_file(path)).await;
    }
}

fn create_private(path: &Path, new: bool) -> std::io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.write(true);
    if new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// A sortable, unique message id: time in microseconds, then a process-wide sequence.
fn new_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:x}{:05x}-{:x}{:x}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id() & 0xffff,
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn spool_one(spool: &Spool, body: &[u8]) -> Record {
        let mut w = spool
            .begin(
                "a@office.test",
                &["x@example.net".into(), "y@example.net".into()],
                None,
                false,
            )
            .await
            .unwrap();
        w.write(body).await.unwrap();
        w.commit().await.unwrap()
    }

    #[tokio::test]
    async fn a_committed_message_has_its_file_and_record_and_is_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, found) = Spool::open(dir.path(), "gw.test").unwrap();
        assert!(found.records.is_empty());

        let record = spool_one(&spool, b"Subject: s\r\n\r\nbody\r\n").await;

        assert_eq!(record.size, 20);
        assert_eq!(record.recipients.len(), 2);
        assert!(
            record
                .recipients
                .iter()
                .all(|r| r.state == RcptState::Queued)
        );
        let bytes = fs::read(spool.message_path(&record.id)).unwrap();
        assert_eq!(bytes, b"Subject: s\r\n\r\nbody\r\n");
        let (_, again) = Spool::open(dir.path(), "gw.test").unwrap();
        assert_eq!(again.records, vec![record]);
        assert_eq!(again.removed, 0);
    }

    #[tokio::test]
    async fn uncommitted_leftovers_are_removed_at_start_and_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), "gw.test").unwrap();
        let kept = spool_one(&spool, b"\r\nkept\r\n").await;
        // A crash after the message file, before the record: never acknowledged.
        let mut open = spool
            .begin("a@office.test", &["x@example.net".into()], None, false)
            .await
            .unwrap();
        open.write(b"half a message").await.unwrap();
        open.flush_pending().await.unwrap();
        std::mem::forget(open);
        fs::write(dir.path().join("zz.rec.tmp"), b"{").unwrap();

        let (_, found) = Spool::open(dir.path(), "gw.test").unwrap();

        assert_eq!(found.records, vec![kept.clone()]);
        assert_eq!(found.removed, 2);
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![format!("{}.msg", kept.id), format!("{}.rec", kept.id)]
        );
    }

    #[tokio::test]
    async fn an_aborted_message_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), "gw.test").unwrap();
        let mut w = spool
            .begin("", &["x@example.net".into()], None, false)
            .await
            .unwrap();
        w.write(b"abc").await.unwrap();

        w.abort().await;

        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_saved_state_survives_a_restart_and_remove_takes_record_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), "gw.test").unwrap();
        let mut record = spool_one(&spool, b"\r\nx\r\n").await;
        record.recipients[0].state = RcptState::Delivered;
        record.attempts = 1;
        record.last_reply = Some("250 2.0.0 Ok".into());

        spool.save(&record).unwrap();

        let (_, found) = Spool::open(dir.path(), "gw.test").unwrap();
        assert_eq!(found.records, vec![record.clone()]);
        spool.remove(&record.id).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn an_unreadable_record_is_set_aside_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), "gw.test").unwrap();
        let record = spool_one(&spool, b"\r\nx\r\n").await;
        fs::write(dir.path().join(format!("{}.rec", record.id)), b"not json").unwrap();

        let (_, found) = Spool::open(dir.path(), "gw.test").unwrap();

        assert!(found.records.is_empty());
        assert_eq!(found.unreadable, vec![record.id.clone()]);
        assert!(spool.message_path(&record.id).exists());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn spool_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("outbound");
        let (spool, _) = Spool::open(&root, "gw.test").unwrap();
        let record = spool_one(&spool, b"\r\nx\r\n").await;

        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;

        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&spool.message_path(&record.id)), 0o600);
        assert_eq!(mode(&spool.record_path(&record.id)), 0o600);
    }

    #[tokio::test]
    async fn submission_gets_date_and_message_id_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), "gw.test").unwrap();
        let mut w = spool
            .begin("a@office.test", &["x@example.net".into()], None, true)
            .await
            .unwrap();
        let id = w.id().to_string();
        w.write(b"Subject: s\r\n\r\nbody\r\n").await.unwrap();

        let record = w.commit().await.unwrap();

        let text = String::from_utf8(fs::read(spool.message_path(&id)).unwrap()).unwrap();
        assert!(
            text.contains(&format!("Message-ID: <{id}@gw.test>\r\n\r\nbody")),
            "{text}"
        );
        assert!(text.contains("\r\nDate: "), "{text}");
        assert_eq!(record.size, text.len() as u64);
    }
}
