//! The SQLite file: opening it (WAL, a broken file moved aside), writing a batch, pruning.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, params};

use super::types::JournalError;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS entries (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        event_type TEXT NOT NULL,
        text TEXT NOT NULL,
        event TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS entries_at ON entries(at);
    CREATE INDEX IF NOT EXISTS entries_type_at ON entries(event_type, at);
";

/// Readers and the writer wait this long for each other's locks.
const BUSY: Duration = Duration::from_secs(5);

/// One row to write: the time in Unix milliseconds, the kind, the event's `type`, the line and
/// the event as JSON.
#[derive(Debug, Clone)]
pub struct Row {
    pub at: i64,
    pub kind: &'static str,
    pub event_type: String,
    pub text: String,
    pub event: String,
}

/// Opens (or creates) the journal for writing. A file that is not a database, or fails SQLite's
/// quick check, is renamed aside and a fresh one started; the returned notice says so.
pub fn open_for_writing(path: &Path) -> Result<(Connection, Option<String>), JournalError> {
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).map_err(|source| JournalError::Folder {
            path: folder.to_path_buf(),
            source,
        })?;
    }
    match try_open(path) {
        Ok(conn) => Ok((conn, None)),
        Err(e) if is_broken(&e) => {
            let aside = set_aside(path)?;
            let conn = try_open(path).map_err(|source| JournalError::Open {
                path: path.to_path_buf(),
                source,
            })?;
            Ok((
                conn,
                Some(format!(
                    "the journal {} was damaged ({e}); it was moved to {} and a new one started, \
                     so older history is only in that file",
                    path.display(),
                    aside.display()
                )),
            ))
        }
        Err(source) => Err(JournalError::Open {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn try_open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // A journal, not mail: losing the last second of entries to a power cut is acceptable.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some(check),
        ));
    }
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

fn is_broken(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

/// `journal.sqlite` → `journal.sqlite.broken-20261201T081500`; its WAL files go with it.
fn set_aside(path: &Path) -> Result<PathBuf, JournalError> {
    let stamp = chrono::Local::now().format("%Y%m%dT%H%M%S");
    let aside = PathBuf::from(format!("{}.broken-{stamp}", path.display()));
    std::fs::rename(path, &aside).map_err(|source| JournalError::Folder {
        path: path.to_path_buf(),
        source,
    })?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        let _ = std::fs::rename(&side, format!("{}{suffix}", aside.display()));
    }
    Ok(aside)
}

/// A read-only connection for queries; the journal must exist.
pub fn open_for_reading(path: &Path) -> Result<Connection, JournalError> {
    if !path.exists() {
        return Err(JournalError::Missing(path.to_path_buf()));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| JournalError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(BUSY).map_err(JournalError::Read)?;
    Ok(conn)
}

/// Writes `rows` in one transaction.
pub fn insert(conn: &mut Connection, rows: &[Row]) -> Result<(), JournalError> {
    let tx = conn.transaction().map_err(JournalError::Write)?;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO entries (at, kind, event_type, text, event) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(JournalError::Write)?;
        for row in rows {
            insert
                .execute(params![
                    row.at,
                    row.kind,
                    row.event_type,
                    row.text,
                    row.event
                ])
                .map_err(JournalError::Write)?;
        }
    }
    tx.commit().map_err(JournalError::Write)
}

/// Deletes entries older than `before` (Unix milliseconds); how many went.
pub fn prune(conn: &Connection, before: i64) -> Result<usize, JournalError> {
    conn.execute("DELETE FROM entries WHERE at < ?1", params![before])
        .map_err(JournalError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(at: i64) -> Row {
        Row {
            at,
            kind: "fetch",
            event_type: "fetch_started".into(),
            text: format!("entry at {at}"),
            event: "{}".into(),
        }
    }

    fn count(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_file_that_is_not_a_database_is_moved_aside_and_a_fresh_one_started() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();

        let (mut conn, notice) = open_for_writing(&path).unwrap();
        insert(&mut conn, &[row(1)]).unwrap();

        let notice = notice.expect("the damage is reported");
        assert!(notice.contains("moved to"), "{notice}");
        assert_eq!(count(&conn), 1);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".broken-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read(aside[0].path()).unwrap(), vec![0x5a; 8192]);
    }

    #[test]
    fn a_healthy_journal_keeps_its_entries_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        {
            let (mut conn, _) = open_for_writing(&path).unwrap();
            insert(&mut conn, &[row(1), row(2)]).unwrap();
        }

        let (conn, notice) = open_for_writing(&path).unwrap();

        assert!(notice.is_none());
        assert_eq!(count(&conn), 2);
        assert_eq!(count(&open_for_reading(&path).unwrap()), 2);
    }

    #[test]
    fn pruning_removes_only_older_entries() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, _) = open_for_writing(&dir.path().join("j.sqlite")).unwrap();
        insert(&mut conn, &[row(10), row(20), row(30)]).unwrap();

        let gone = prune(&conn, 20).unwrap();

        assert_eq!(gone, 1);
        assert_eq!(count(&conn), 2);
    }

    #[test]
    fn reading_a_journal_that_does_not_exist_says_who_writes_it() {
        let dir = tempfile::tempdir().unwrap();

        let err = open_for_reading(&dir.path().join("none.sqlite")).unwrap_err();

        assert!(err.to_string().contains("running engine"), "{err}");
    }
}
