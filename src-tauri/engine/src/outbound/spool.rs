//! The outbound spool: one file per message plus its envelope and state record.
//!
//! The durability contract lives here. A message is streamed into `ID.msg`; its record,
//! which carries the message's size and CRC-32, is written to `ID.rec.tmp` and renamed to
//! `ID.rec`; then the message, the record and the folder are fsynced side by side (the folder's
//! fsync shared by the commits running at the same time, [`crate::dir_sync`]).
//! **The rename of the record is the commit marker**: only after all three fsyncs does
//! [`SpoolWriter::commit`] return, and only then does the submission session answer 250.
//!
//! One round of fsyncs, not two (data, then the rename), is what makes the commit cheap, and the
//! CRC is what makes it safe: a crash before the fsyncs end (so before any 250) may leave a
//! record on disk whose own bytes or whose message's bytes never got there. At start
//! ([`Spool::open`]) such a commit is recognised and removed: a record that is empty or only
//! zeros, or whose message is missing or shorter than the record says. A message of the right
//! size whose CRC differs is not a torn commit but damage: it is set aside with its record
//! (`ID.rec.bad`) and reported, never removed. Records from before the CRC are taken as they
//! are.
//!
//! Every other `ID.msg` without its record and every `*.tmp` are leftovers of a crash before
//! the commit (never acknowledged) and are removed. A record is updated the classic way
//! (temporary file, fsync, rename over, fsync the folder), since an update replaces a record
//! that was acknowledged, and a finished message loses its record first, so a crash in between
//! leaves only a leftover, never a record without its message.
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
    /// Mail this office holds as a backup MX for the neighbour's domain (`[[backup_for]]`):
    /// it goes only to that domain's own target, when the neighbour asks. Absent in records
    /// written before the backup MX existed: they are the office's own outgoing mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_for: Option<String>,
    /// The CRC-32 of `ID.msg` as committed: [`Spool::open`] checks it (see the module
    /// documentation). Absent in records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<u32>,
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
        let mut torn: Vec<String> = Vec::new();
        for name in &names {
            let Some(id) = name.strip_suffix(".rec") else {
                continue;
            };
            match self.check(id) {
                Checked::Committed(record) => out.records.push(*record),
                Checked::Torn(why) => {
                    tracing::warn!(
                        "removed {id}: its commit was cut short by a crash ({why}); it was never \
                         acknowledged, so its sender still has it"
                    );
                    let _ = fs::remove_file(self.dir.join(name));
                    out.removed += 1;
                    torn.push(id.to_string());
                }
                Checked::Damaged(why) => {
                    tracing::error!("unreadable spool record {name}: {why}");
                    let _ = fs::rename(self.dir.join(name), self.dir.join(format!("{name}.bad")));
                    out.unreadable.push(id.to_string());
                }
            }
        }
        for name in &names {
            let leftover = name.ends_with(".tmp")
                || name.strip_suffix(".msg").is_some_and(|id| {
                    torn.iter().any(|t| t == id)
                        || (!names.iter().any(|n| n == &format!("{id}.rec"))
                            && !out.unreadable.iter().any(|u| u == id))
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

    /// What recovery makes of `ID.rec` (see the module documentation).
    fn check(&self, id: &str) -> Checked {
        let bytes = match fs::read(self.record_path(id)) {
            Ok(bytes) => bytes,
            Err(e) => return Checked::Damaged(format!("cannot read it: {e}")),
        };
        if bytes.iter().all(|&b| b == 0) {
            return Checked::Torn("the record is empty");
        }
        let record: Record = match serde_json::from_slice(&bytes) {
            Ok(record) => record,
            Err(e) => return Checked::Damaged(format!("it is not a record: {e}")),
        };
        let Some(crc) = record.crc32 else {
            return Checked::Committed(Box::new(record));
        };
        match crc_of(&self.message_path(id)) {
            Ok((size, _)) if size < record.size => Checked::Torn("the message is incomplete"),
            Ok((size, actual)) if size == record.size && actual == crc => {
                Checked::Committed(Box::new(record))
            }
            Ok(_) => Checked::Damaged(format!(
                "{id}.msg does not match its record (size or CRC-32); it is kept for you to look at"
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Checked::Torn("the message is missing")
            }
            Err(e) => Checked::Damaged(format!("cannot read {id}.msg: {e}")),
        }
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
        self.write_record_tmp(record)?;
        self.publish_record(&record.id)
    }

    fn record_tmp_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.rec.tmp"))
    }

    fn encode(&self, record: &Record) -> Result<Vec<u8>, SpoolError> {
        serde_json::to_vec_pretty(record).map_err(|e| {
            self.err(
                "encode a record",
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// The first half of [`Spool::save`]: the record in `ID.rec.tmp`, fsynced. Blocks.
    fn write_record_tmp(&self, record: &Record) -> Result<(), SpoolError> {
        let tmp = self.record_tmp_path(&record.id);
        let json = self.encode(record)?;
        let write = || -> std::io::Result<()> {
            let mut file = create_private(&tmp, false)?;
            file.write_all(&json)?;
            file.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            self.err(format!("write {}.rec", record.id), e)
        })
    }

    /// A new message's record, written and renamed into place at once, without an fsync: the
    /// caller fsyncs the returned file, the message and the folder. Blocks.
    fn place_record(&self, record: &Record) -> Result<File, SpoolError> {
        let tmp = self.record_tmp_path(&record.id);
        let json = self.encode(record)?;
        let place = || -> std::io::Result<File> {
            let mut file = create_private(&tmp, false)?;
            file.write_all(&json)?;
            fs::rename(&tmp, self.record_path(&record.id))?;
            Ok(file)
        };
        place().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            self.err(format!("write {}.rec", record.id), e)
        })
    }

    /// The second half: `ID.rec.tmp` renamed over `ID.rec` (for a new message, its commit),
    /// then the folder fsynced. Blocks.
    fn publish_record(&self, id: &str) -> Result<(), SpoolError> {
        let tmp = self.record_tmp_path(id);
        let publish = || -> std::io::Result<()> {
            fs::rename(&tmp, self.record_path(id))?;
            self.folder_sync.after_rename(&self.dir)
        };
        publish().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            self.err(format!("write {id}.rec"), e)
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

    /// [`Spool::remove`] on the blocking pool.
    pub async fn remove_async(&self, id: &str) -> Result<(), SpoolError> {
        let (spool, owned) = (self.clone(), id.to_string());
        tokio::task::spawn_blocking(move || spool.remove(&owned))
            .await
            .map_err(|e| self.err("remove a message", std::io::Error::other(e)))?
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
                held_for: None,
                crc32: None,
            },
            fix: fix_headers.then(|| HeaderFix::new(message_id)),
            pending: Vec::with_capacity(16 * 1024),
            crc: crc32fast::Hasher::new(),
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
    /// Of every byte written so far.
    crc: crc32fast::Hasher,
}

impl SpoolWriter {
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// Marks the message as held for the neighbour's `domain` (see [`Record::held_for`]).
    pub fn hold_for(&mut self, domain: &str) {
        self.record.held_for = Some(domain.to_string());
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
        self.crc.update(&self.pending);
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
        if let Err(e) = self.flush_pending().await {
            self.abort().await;
            return Err(e);
        }
        self.record.crc32 = Some(self.crc.clone().finalize());
        let published = self.place_and_sync().await;
        match published {
            Ok(()) => {
                self.file = None;
                if let Some(feed) = &self.spool.feed {
                    let _ = feed.send(self.record.clone());
                }
                Ok(self.record.clone())
            }
            Err(e) => {
                // Not acknowledged, so nothing of it may stay: a record already renamed (its
                // folder fsync failed) goes first, as at every removal.
                let (record, tmp) = (
                    self.spool.record_path(&self.record.id),
                    self.spool.record_tmp_path(&self.record.id),
                );
                let _ = tokio::task::spawn_blocking(move || {
                    let _ = fs::remove_file(record);
                    let _ = fs::remove_file(tmp);
                })
                .await;
                self.abort().await;
                Err(e)
            }
        }
    }

    /// The record renamed into place, then the message, the record and the folder fsynced side
    /// by side (see the module documentation).
    async fn place_and_sync(&mut self) -> Result<(), SpoolError> {
        let this = self.spool.clone();
        let failed =
            |e: tokio::task::JoinError| this.err("commit a message", std::io::Error::other(e));
        let (spool, record) = (self.spool.clone(), self.record.clone());
        let placed = tokio::task::spawn_blocking(move || spool.place_record(&record))
            .await
            .map_err(failed)??;
        let id = self.record.id.clone();
        let record_synced = {
            let spool = self.spool.clone();
            tokio::task::spawn_blocking(move || {
                placed
                    .sync_all()
                    .map_err(|e| spool.err(format!("fsync {id}.rec"), e))
            })
        };
        let folder_synced = {
            let spool = self.spool.clone();
            tokio::task::spawn_blocking(move || {
                spool
                    .folder_sync
                    .after_rename(&spool.dir)
                    .map_err(|e| spool.err("fsync the folder", e))
            })
        };
        let message_synced = self.sync_file().await;
        let record_synced = record_synced.await.map_err(failed)?;
        let folder_synced = folder_synced.await.map_err(failed)?;
        message_synced.and(record_synced).and(folder_synced)
    }

    async fn sync_file(&mut self) -> Result<(), SpoolError> {
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

/// What recovery found for one record.
enum Checked {
    Committed(Box<Record>),
    /// A commit a crash cut short, before its 250: removed with its message.
    Torn(&'static str),
    /// Kept aside for a person to look at.
    Damaged(String),
}

/// The size and CRC-32 of a file.
fn crc_of(path: &Path) -> std::io::Result<(u64, u32)> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut crc = crc32fast::Hasher::new();
    let mut buf = vec![0; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((size, crc.finalize()));
        }
        crc.update(&buf[..n]);
        size += n as u64;
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

    #[test]
    fn a_record_from_before_the_backup_mx_is_read_as_outgoing_mail() {
        let old = r#"{"id":"a","sender":"s@office.test","recipients":[{"address":"x@example.net","state":"queued"}],"arrived":1,"size":3,"attempts":0,"delay_warned":false}"#;

        let record: Record = serde_json::from_str(old).unwrap();

        assert_eq!(record.held_for, None);
        assert!(!serde_json::to_string(&record).unwrap().contains("held_for"));
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

    #[tokio::test]
    async fn a_commit_cut_short_by_a_crash_is_removed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), "gw.test").unwrap();
        let kept = spool_one(&spool, b"\r\nkept\r\n").await;
        assert!(kept.crc32.is_some());
        // What a power cut before the fsyncs ended can leave (the rename reached the disk, the
        // bytes did not): an empty record, a record of zeros, a message shorter than its record
        // says, no message at all.
        let empty = spool_one(&spool, b"\r\n1\r\n").await;
        fs::write(spool.record_path(&empty.id), b"").unwrap();
        let zeros = spool_one(&spool, b"\r\n2\r\n").await;
        fs::write(spool.record_path(&zeros.id), [0u8; 300]).unwrap();
        let short = spool_one(&spool, b"\r\nthree\r\n").await;
        fs::write(spool.message_path(&short.id), b"\r\nth").unwrap();
        let missing = spool_one(&spool, b"\r\n4\r\n").await;
        fs::remove_file(spool.message_path(&missing.id)).unwrap();

        let (_, found) = Spool::open(dir.path(), "gw.test").unwrap();

        assert_eq!(found.records, vec![kept.clone()]);
        assert!(found.unreadable.is_empty());
        assert_eq!(found.removed, 7, "four records and three messages");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[tokio::test]
    async fn a_message_damaged_after_its_commit_is_set_aside_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), "gw.test").unwrap();
        let record = spool_one(&spool, b"\r\nbody\r\n").await;
        fs::write(spool.message_path(&record.id), b"\r\nBODY\r\n").unwrap();

        let (_, found) = Spool::open(dir.path(), "gw.test").unwrap();

        assert!(found.records.is_empty());
        assert_eq!(found.unreadable, vec![record.id.clone()]);
        assert!(spool.message_path(&record.id).exists());
        assert!(dir.path().join(format!("{}.rec.bad", record.id)).exists());
    }

    #[test]
    fn a_record_from_before_the_crc_is_taken_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let old = r#"{"id":"a","sender":"s@office.test","recipients":[{"address":"x@example.net","state":"queued"}],"arrived":1,"size":99,"attempts":0,"delay_warned":false}"#;
        fs::write(dir.path().join("a.rec"), old).unwrap();
        fs::write(dir.path().join("a.msg"), b"shorter than 99").unwrap();

        let (_, found) = Spool::open(dir.path(), "gw.test").unwrap();

        assert_eq!(found.records.len(), 1);
        assert_eq!(found.records[0].crc32, None);
    }

    #[tokio::test]
    async fn an_updated_record_keeps_the_crc_of_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), "gw.test").unwrap();
        let mut record = spool_one(&spool, b"\r\nx\r\n").await;
        record.attempts = 2;

        spool.save(&record).unwrap();

        let (_, found) = Spool::open(dir.path(), "gw.test").unwrap();
        assert_eq!(found.records, vec![record]);
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
