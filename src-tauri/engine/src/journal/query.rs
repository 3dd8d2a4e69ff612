//! Reading the journal: newest first, filtered by time, kind and text, paged by id.

use std::path::Path;

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone};
use rusqlite::types::Value;
use serde::{Deserialize, Serialize};

use super::store;
use super::types::{JournalError, Kind};

const DEFAULT_LIMIT: u32 = 200;
const MAX_LIMIT: u32 = 10_000;

/// What to read. The default is the newest 200 entries of every kind.
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "JournalQuery"))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// Only entries at or after this time (Unix milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// Only entries whose text contains this (case-insensitive for ASCII).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grep: Option<String>,
    /// The next page: entries older than this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_id: Option<i64>,
    /// At most this many (default 200, at most 10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl Query {
    pub fn limit(mut self, n: u32) -> Query {
        self.limit = Some(n);
        self
    }
}

/// One journal entry.
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "JournalEntry"))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub kind: Kind,
    pub text: String,
    /// The engine event the entry came from.
    #[cfg_attr(test, ts(type = "unknown"))]
    pub event: serde_json::Value,
}

impl Entry {
    /// `2026-12-01 08:15:02`, local time.
    pub fn local_time(&self) -> String {
        Local
            .timestamp_millis_opt(self.at)
            .single()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| self.at.to_string())
    }
}

/// A page of entries, newest first; `more` when older ones match too.
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "JournalPage"))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub entries: Vec<Entry>,
    pub more: bool,
}

/// Runs `query` on the journal at `path` over its own read-only connection.
pub fn run(path: &Path, query: &Query) -> Result<Page, JournalError> {
    let conn = store::open_for_reading(path)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let mut sql = String::from("SELECT id, at, kind, text, event FROM entries WHERE 1 = 1");
    let mut params: Vec<Value> = Vec::new();
    if let Some(since) = query.since {
        sql.push_str(" AND at >= ?");
        params.push(Value::Integer(since));
    }
    if let Some(kind) = query.kind {
        sql.push_str(" AND kind = ?");
        params.push(Value::Text(kind.as_str().into()));
    }
    if let Some(grep) = query.grep.as_deref().filter(|g| !g.is_empty()) {
        sql.push_str(" AND instr(lower(text), lower(?)) > 0");
        params.push(Value::Text(grep.into()));
    }
    if let Some(before) = query.before_id {
        sql.push_str(" AND id < ?");
        params.push(Value::Integer(before));
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    params.push(Value::Integer(i64::from(limit) + 1));
    let mut statement = conn.prepare(&sql).map_err(JournalError::Read)?;
    let rows = statement
        .query_map(rusqlite::params_from_iter(params), |row| {
            let kind: String = row.get(2)?;
            let event: String = row.get(4)?;
            Ok((row.get(0)?, row.get(1)?, kind, row.get(3)?, event))
        })
        .map_err(JournalError::Read)?;
    let mut entries = Vec::new();
    for row in rows {
        let (id, at, kind, text, event): (i64, i64, String, String, String) =
            row.map_err(JournalError::Read)?;
        entries.push(Entry {
            id,
            at,
            // A kind this version does not know (a newer Postern wrote it) reads as a problem.
            kind: kind.parse().unwrap_or(Kind::Problem),
            text,
            event: serde_json::from_str(&event).unwrap_or(serde_json::Value::Null),
        });
    }
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    Ok(Page { entries, more })
}

/// `--since`: a duration back from `now` (`2h`, `3d`), a date (`2026-12-01`, local midnight) or
/// a local time (`2026-12-01T08:00`, `2026-12-01 08:00:00`), or RFC 3339 with an offset.
pub fn parse_since(text: &str, now: DateTime<Local>) -> Result<i64, JournalError> {
    let text = text.trim();
    let bad = || JournalError::BadSince(text.to_string());
    if let Ok(back) = humantime::parse_duration(text) {
        let back = chrono::Duration::from_std(back).map_err(|_| bad())?;
        return Ok((now - back).timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    let local = |naive: NaiveDateTime| {
        Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.timestamp_millis())
            .ok_or_else(bad)
    };
    for format in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return local(naive);
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return local(date.and_hms_opt(0, 0, 0).ok_or_else(bad)?);
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::store::{Row, insert, open_for_writing};

    fn journal(rows: &[(i64, Kind, &str)]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let (mut conn, _) = open_for_writing(&path).unwrap();
        let rows: Vec<Row> = rows
            .iter()
            .map(|(at, kind, text)| Row {
                at: *at,
                kind: kind.as_str(),
                event_type: "warning".into(),
                text: text.to_string(),
                event: "{\"type\":\"warning\"}".into(),
            })
            .collect();
        insert(&mut conn, &rows).unwrap();
        (dir, path)
    }

    #[test]
    fn filters_by_time_kind_and_text_and_pages_newest_first() {
        let (_dir, path) = journal(&[
            (100, Kind::Fetch, "asked mx2 for office.test"),
            (200, Kind::Message, "received from <a@x.test>"),
            (300, Kind::Message, "received from <B@Y.test>"),
            (400, Kind::Link, "link up"),
        ]);

        let messages = run(
            &path,
            &Query {
                kind: Some(Kind::Message),
                ..Query::default()
            },
        )
        .unwrap();
        let recent = run(
            &path,
            &Query {
                since: Some(300),
                ..Query::default()
            },
        )
        .unwrap();
        let grep = run(
            &path,
            &Query {
                grep: Some("b@y".into()),
                ..Query::default()
            },
        )
        .unwrap();
        let first = run(&path, &Query::default().limit(2)).unwrap();
        let second = run(
            &path,
            &Query {
                before_id: first.entries.last().map(|e| e.id),
                ..Query::default().limit(2)
            },
        )
        .unwrap();

        let texts = |p: &Page| p.entries.iter().map(|e| e.text.clone()).collect::<Vec<_>>();
        assert_eq!(
            texts(&messages),
            ["received from <B@Y.test>", "received from <a@x.test>"]
        );
        assert_eq!(texts(&recent), ["link up", "received from <B@Y.test>"]);
        assert_eq!(texts(&grep), ["received from <B@Y.test>"]);
        assert!(first.more);
        assert_eq!(texts(&first), ["link up", "received from <B@Y.test>"]);
        assert!(!second.more);
        assert_eq!(
            texts(&second),
            ["received from <a@x.test>", "asked mx2 for office.test"]
        );
    }

    #[test]
    fn since_reads_durations_dates_and_local_times() {
        let now = Local.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let ms = |y, m, d, h, min| {
            Local
                .with_ymd_and_hms(y, m, d, h, min, 0)
                .unwrap()
                .timestamp_millis()
        };

        assert_eq!(parse_since("2h", now).unwrap(), ms(2026, 12, 1, 10, 0));
        assert_eq!(
            parse_since("2026-11-30", now).unwrap(),
            ms(2026, 11, 30, 0, 0)
        );
        assert_eq!(
            parse_since("2026-12-01T08:30", now).unwrap(),
            ms(2026, 12, 1, 8, 30)
        );
        let err = parse_since("yesterday-ish", now).unwrap_err();
        assert!(err.to_string().contains("2026-12-01"), "{err}");
    }
}
