//! The journal's writer: a task that moves events off the broadcast as they come, and one thread
//! that writes them to SQLite in batches and prunes old entries. Nothing here can stop mail.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot};

use super::entry_text::entries_for;
use super::store::{self, Row};
use crate::events::{Event, EventSender};

/// A batch is sent to the writer once it holds this many events.
const BATCH: usize = 512;
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long the pump gathers events after the first of a batch.
const GATHER: Duration = Duration::from_millis(100);
/// How often the pump takes what has arrived while it gathers.
const TICK: Duration = Duration::from_millis(10);

/// Events for one transaction, with the time each was taken off the broadcast.
#[derive(Default)]
struct Batch {
    events: Vec<(i64, Event)>,
    /// The broadcast dropped this many events before the journal saw them.
    lost: u64,
}

impl Batch {
    /// Takes one received event; false once the broadcast is closed.
    fn take(&mut self, received: Result<Event, broadcast::error::RecvError>) -> bool {
        match received {
            Ok(event) if makes_no_entry(&event) => {}
            Ok(event) => self.events.push((now_ms(), event)),
            Err(broadcast::error::RecvError::Lagged(n)) => self.lost += n,
            Err(broadcast::error::RecvError::Closed) => return false,
        }
        true
    }

    /// Takes everything waiting on the broadcast; false once it is closed.
    fn drain(&mut self, events: &mut broadcast::Receiver<Event>) -> bool {
        loop {
            match events.try_recv() {
                Ok(event) => {
                    self.take(Ok(event));
                }
                Err(broadcast::error::TryRecvError::Empty) => return true,
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.lost += n,
                Err(broadcast::error::TryRecvError::Closed) => return false,
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.lost == 0
    }
}

/// The running journal. [`JournalHandle::close`] writes what is pending and stops it.
pub struct JournalHandle {
    path: PathBuf,
    drain: Option<oneshot::Sender<()>>,
    pump: tokio::task::JoinHandle<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl JournalHandle {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes every event sent so far, then stops.
    pub async fn close(mut self) {
        if let Some(drain) = self.drain.take() {
            let _ = drain.send(());
        }
        let _ = (&mut self.pump).await;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Starts journaling every event sent on `events` from now on into `path`, keeping entries for
/// `retention`. Problems are reported on `events` as warnings, never returned.
pub fn start(path: PathBuf, retention: Duration, events: &EventSender) -> JournalHandle {
    let receiver = events.subscribe();
    let (tx, rx) = std_mpsc::channel();
    let (drain, drained) = oneshot::channel();
    let pump = tokio::spawn(pump(receiver, tx, drained));
    let (thread_path, reporter) = (path.clone(), events.clone());
    let thread = std::thread::Builder::new()
        .name("postern-journal".into())
        .spawn(move || match store::open_for_writing(&thread_path) {
            Ok((conn, notice)) => {
                let mut writer = Writer::new(conn, retention, reporter);
                if let Some(notice) = notice {
                    writer.warn(notice, None);
                }
                writer.run(rx);
            }
            Err(e) => {
                let _ = reporter.send(Event::Warning {
                    message: format!("the mail-flow journal is off: {e}"),
                    fix: Some(
                        "mail goes on; fix the problem and restart Postern to keep history again"
                            .into(),
                    ),
                });
            }
        })
        .map_err(|e| tracing::warn!("cannot start the journal's thread: {e}"))
        .ok();
    JournalHandle {
        path,
        drain: Some(drain),
        pump,
        thread,
    }
}

/// Moves events off the broadcast and hands them to the writer's thread in batches. It waits
/// for the first event of a batch, then takes what has arrived every [`TICK`] until [`GATHER`]
/// has passed: under load that is a hundred wake-ups a second, not one per event (three per
/// message). The broadcast holds 1,024 events, so only a burst of more than that within one
/// tick (100,000 a second) could overflow it, and the loss would be reported.
async fn pump(
    mut events: broadcast::Receiver<Event>,
    tx: std_mpsc::Sender<Batch>,
    mut drained: oneshot::Receiver<()>,
) {
    loop {
        let mut batch = Batch::default();
        let mut open = tokio::select! {
            received = events.recv() => batch.take(received),
            _ = &mut drained => {
                batch.drain(&mut events);
                let _ = tx.send(batch);
                return;
            }
        };
        let until = tokio::time::Instant::now() + GATHER;
        while open && batch.events.len() < BATCH && tokio::time::Instant::now() < until {
            tokio::select! {
                _ = tokio::time::sleep(TICK) => open = batch.drain(&mut events),
                _ = &mut drained => {
                    batch.drain(&mut events);
                    let _ = tx.send(batch);
                    return;
                }
            }
        }
        let writer_gone = !batch.is_empty() && tx.send(batch).is_err();
        if writer_gone || !open {
            return;
        }
    }
}

/// A session's start and end: most of a busy listener's events, and not worth a row. (Only a
/// shortcut: [`entries_for`] decides what makes an entry.)
fn makes_no_entry(event: &Event) -> bool {
    matches!(
        event,
        Event::InboundSessionStarted { .. } | Event::InboundSessionEnded { .. }
    )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Writes batches; remembers whether the last write failed, so a full disk is reported once
/// and its recovery once, with the number of entries lost in between.
pub(super) struct Writer {
    conn: Connection,
    retention: Duration,
    events: EventSender,
    failing: bool,
    lost: u64,
    last_prune: Option<Instant>,
}

impl Writer {
    pub(super) fn new(conn: Connection, retention: Duration, events: EventSender) -> Writer {
        Writer {
            conn,
            retention,
            events,
            failing: false,
            lost: 0,
            last_prune: None,
        }
    }

    fn run(&mut self, rx: std_mpsc::Receiver<Batch>) {
        loop {
            self.prune_when_due();
            let batch = match rx.recv_timeout(PRUNE_EVERY) {
                Ok(batch) => batch,
                Err(std_mpsc::RecvTimeoutError::Timeout) => continue,
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            };
            self.lost += batch.lost;
            let rows: Vec<Row> = batch
                .events
                .iter()
                .flat_map(|(at, event)| rows_for(*at, event))
                .collect();
            self.write(&rows);
        }
    }

    pub(super) fn write(&mut self, rows: &[Row]) {
        if rows.is_empty() {
            return;
        }
        match store::insert(&mut self.conn, rows) {
            Ok(()) if self.failing || self.lost > 0 => {
                let lost = std::mem::take(&mut self.lost);
                self.failing = false;
                self.warn(
                    format!(
                        "the mail-flow journal writes again; {lost} entries before this one are \
                         missing from it"
                    ),
                    None,
                );
            }
            Ok(()) => {}
            Err(e) => {
                self.lost += rows.len() as u64;
                if !self.failing {
                    self.failing = true;
                    self.warn(
                        format!("the mail-flow journal cannot keep history right now: {e}"),
                        Some(
                            "mail goes on; free space in the state folder (a full disk is the \
                             usual cause) and the journal resumes by itself"
                                .into(),
                        ),
                    );
                }
            }
        }
    }

    fn warn(&self, message: String, fix: Option<String>) {
        tracing::warn!("{message}");
        let _ = self.events.send(Event::Warning { message, fix });
    }

    fn prune_when_due(&mut self) {
        if self.last_prune.is_some_and(|t| t.elapsed() < PRUNE_EVERY) {
            return;
        }
        self.last_prune = Some(Instant::now());
        let keep = i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        match store::prune(&self.conn, now_ms().saturating_sub(keep)) {
            Ok(0) => {}
            Ok(n) => tracing::info!("journal: pruned {n} entries older than the retention time"),
            Err(e) => tracing::warn!("journal: cannot prune old entries: {e}"),
        }
    }
}

fn rows_for(at: i64, event: &Event) -> Vec<Row> {
    // Most events of a busy listener (a session's start and end) make no entry: serialise
    // only the ones that do.
    let entries = entries_for(event);
    if entries.is_empty() {
        return Vec::new();
    }
    let event_json = serde_json::to_string(event).unwrap_or_default();
    let event_type = type_of(&event_json).to_string();
    entries
        .into_iter()
        .map(|(kind, text)| Row {
            at,
            kind: kind.as_str(),
            event_type: event_type.clone(),
            text,
            event: event_json.clone(),
        })
        .collect()
}

/// The event's `type` tag, which serde writes first (`{"type":"fetch_started",...}`), read
/// without parsing the JSON again.
fn type_of(event_json: &str) -> &str {
    event_json
        .strip_prefix("{\"type\":\"")
        .and_then(|rest| rest.split_once('"'))
        .map_or("event", |(tag, _)| tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Page, Query, query};

    fn listening(n: usize) -> Event {
        Event::Listening {
            addresses: vec![format!("127.0.0.1:{n}")],
        }
    }

    #[tokio::test]
    async fn every_event_sent_before_close_is_in_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let (events, _keep) = crate::events::channel();
        let journal = start(path.clone(), Duration::from_secs(3600), &events);

        for n in 0..300 {
            events.send(listening(n)).unwrap();
        }
        journal.close().await;

        let page: Page = query::run(&path, &Query::default().limit(1000)).unwrap();
        assert_eq!(page.entries.len(), 300);
        assert_eq!(page.entries[0].text, "listening on 127.0.0.1:299");
    }

    #[test]
    fn a_full_disk_is_reported_once_and_so_is_the_recovery_with_the_count_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let (conn, _) = store::open_for_writing(&path).unwrap();
        let (events, mut seen) = crate::events::channel();
        let mut writer = Writer::new(conn, Duration::from_secs(3600), events);
        let pages: i64 = writer
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        // SQLite answers SQLITE_FULL once the file may not grow, as on a full disk.
        writer
            .conn
            .pragma_update(None, "max_page_count", pages)
            .unwrap();
        let big = |n: i64| Row {
            at: n,
            kind: "message",
            event_type: "message_received".into(),
            text: "x".repeat(64 * 1024),
            event: "{}".into(),
        };

        writer.write(&[big(1)]);
        writer.write(&[big(2)]);
        writer
            .conn
            .pragma_update(None, "max_page_count", 1_000_000)
            .unwrap();
        writer.write(&[big(3)]);

        let warnings: Vec<String> = std::iter::from_fn(|| seen.try_recv().ok())
            .map(|e| match e {
                Event::Warning { message, .. } => message,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("cannot keep history"), "{warnings:?}");
        assert!(warnings[1].contains("2 entries"), "{warnings:?}");
        let page = query::run(&path, &Query::default()).unwrap();
        assert_eq!(page.entries.len(), 1);
    }

    #[test]
    fn what_the_pump_skips_makes_no_entry() {
        let started = Event::InboundSessionStarted {
            peer: "127.0.0.1:2000".into(),
            via: "inbound".into(),
        };
        let ended = Event::InboundSessionEnded {
            peer: "127.0.0.1:2000".into(),
            via: "inbound".into(),
            messages: 1,
            end: "quit".into(),
        };
        for event in [started, ended] {
            assert!(makes_no_entry(&event));
            assert!(entries_for(&event).is_empty(), "{event:?}");
        }
        assert!(!makes_no_entry(&listening(1)));
    }

    #[test]
    fn the_type_tag_is_read_from_the_serialised_event() {
        let json = serde_json::to_string(&listening(1)).unwrap();
        assert_eq!(type_of(&json), "listening");
        assert_eq!(type_of("[]"), "event");
    }

    #[test]
    fn entries_older_than_the_retention_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let (mut conn, _) = store::open_for_writing(&path).unwrap();
        let day = 24 * 3600 * 1000;
        let mut rows = rows_for(now_ms() - 10 * day, &listening(1));
        rows.extend(rows_for(now_ms() - day, &listening(2)));
        store::insert(&mut conn, &rows).unwrap();
        let (events, _keep) = crate::events::channel();
        let mut writer = Writer::new(conn, Duration::from_secs(7 * 24 * 3600), events);

        writer.prune_when_due();

        let page = query::run(&path, &Query::default()).unwrap();
        assert_eq!(page.entries.len(), 1);
        assert_eq!(page.entries[0].text, "listening on 127.0.0.1:2");
    }
}
