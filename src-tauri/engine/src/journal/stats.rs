//! The numbers behind the dashboard and its charts, counted from the journal: messages received
//! and sent per day and per hour (local time), and for each dequeue how long it took until the
//! first message it released arrived.

use std::path::Path;

use chrono::{DateTime, Duration as Span, Local, NaiveTime, TimeZone, Timelike};
use serde::{Deserialize, Serialize};

use super::store;
use super::types::JournalError;

/// The event types counted as received and as sent (the outbound relay's, one per recipient
/// the smarthost or the local target took).
const RECEIVED: &str = "message_received";
const SENT: &str = "outbound_delivered";
const DAYS: usize = 30;
const HOURS: usize = 48;
/// A first message later than this after a dequeue is not counted as that dequeue's.
const FIRST_MESSAGE_WITHIN: Span = Span::hours(1);

/// One bar of a chart: the bucket's start (Unix milliseconds) and its counts.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    pub start: i64,
    pub received: u64,
    pub sent: u64,
}

/// One dequeue (an ETRN, ATRN or TURN run asked of a queuing server) and how long it took until
/// the first message it released arrived.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DequeueWait {
    /// When Postern asked (its `fetch_started`; Unix milliseconds).
    pub at: i64,
    /// `host:port` of the queuing server.
    pub server: String,
    /// `etrn`, `atrn` or `turn`.
    pub protocol: String,
    /// Seconds from the request to the first message; `None`: the dequeue brought no mail
    /// (none arrived before the server's next dequeue, nor within an hour).
    pub seconds: Option<f64>,
    /// For the server's first dequeue after a link-up: seconds from that link-up to the first
    /// message (the request's own wait plus the link check before it).
    pub from_link_up: Option<f64>,
    /// Messages that arrived over that way in the same window.
    pub messages: u64,
}

#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "JournalStats"))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub received_today: u64,
    pub received_this_week: u64,
    /// Messages of the outbound relay still waiting for a recipient, as the journal tells it
    /// (queued, and neither every recipient delivered or bounced nor dropped).
    pub outbound_queued: u64,
    /// The last 30 days, oldest first, today last.
    pub per_day: Vec<Bucket>,
    /// The last 48 hours, oldest first, this hour last.
    pub per_hour: Vec<Bucket>,
    /// Every dequeue of the last 30 days, oldest first, with the wait for its first message.
    pub per_dequeue: Vec<DequeueWait>,
}

/// Counts from the journal at `path`, as of `now`.
pub fn stats(path: &Path, now: DateTime<Local>) -> Result<Stats, JournalError> {
    let conn = store::open_for_reading(path)?;
    let today = local_midnight(now);
    let day_starts: Vec<DateTime<Local>> = (0..DAYS)
        .rev()
        .map(|back| local_midnight(today - Span::days(back as i64) + Span::hours(12)))
        .collect();
    let this_hour = local_hour(now);
    let hour_starts: Vec<i64> = (0..HOURS)
        .rev()
        .map(|back| (this_hour - Span::hours(back as i64)).timestamp_millis())
        .collect();
    let since = day_starts[0].timestamp_millis().min(hour_starts[0]);
    let bucket = |starts: &[i64]| -> Vec<Bucket> {
        starts
            .iter()
            .map(|&start| Bucket {
                start,
                received: 0,
                sent: 0,
            })
            .collect()
    };
    let day_millis: Vec<i64> = day_starts.iter().map(|d| d.timestamp_millis()).collect();
    let (mut per_day, mut per_hour) = (bucket(&day_millis), bucket(&hour_starts));
    let mut received_at = Vec::new();
    let mut arrivals = Vec::new();
    let mut statement = conn
        .prepare(
            "SELECT at, event_type, json_extract(event, '$.via') FROM entries \
             WHERE at >= ?1 AND event_type IN (?2, ?3)",
        )
        .map_err(JournalError::Read)?;
    let rows = statement
        .query_map(rusqlite::params![since, RECEIVED, SENT], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .map_err(JournalError::Read)?;
    for row in rows {
        let (at, event_type, via) = row.map_err(JournalError::Read)?;
        if event_type == RECEIVED
            && let Some(via) = via
        {
            arrivals.push((at, via));
        }
        let received = event_type == RECEIVED;
        for buckets in [&mut per_day, &mut per_hour] {
            if let Some(b) = buckets.iter_mut().rev().find(|b| b.start <= at) {
                if received {
                    b.received += 1;
                } else {
                    b.sent += 1;
                }
            }
        }
        if received {
            received_at.push(at);
        }
    }
    received_at.sort_unstable();
    arrivals.sort_unstable();
    let link_ups = link_ups(&conn, since)?;
    let dequeues = dequeues(&conn, since)?;
    let week_start = (today - Span::days(6)).timestamp_millis();
    Ok(Stats {
        received_today: per_day.last().map_or(0, |b| b.received),
        received_this_week: received_at.iter().filter(|&&at| at >= week_start).count() as u64,
        outbound_queued: outbound_queued(&conn)?,
        per_day,
        per_hour,
        per_dequeue: per_dequeue(&dequeues, &link_ups, &arrivals),
    })
}

/// Spooled messages with a recipient still open: per id, the recipients queued minus those
/// delivered or bounced; a dropped message is done.
fn outbound_queued(conn: &rusqlite::Connection) -> Result<u64, JournalError> {
    let mut statement = conn
        .prepare(
            "SELECT json_extract(event, '$.id'), event_type, \
                    coalesce(json_array_length(event, '$.to'), 0) \
             FROM entries WHERE event_type IN \
               ('outbound_queued', 'outbound_delivered', 'outbound_bounced', 'outbound_dropped')",
        )
        .map_err(JournalError::Read)?;
    let rows = statement
        .query_map([], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(JournalError::Read)?;
    // Per id: (queued, recipients still open); dropped = done.
    let mut open: std::collections::HashMap<String, (bool, i64)> = Default::default();
    for row in rows {
        let (id, event_type, recipients) = row.map_err(JournalError::Read)?;
        let Some(id) = id else { continue };
        let entry = open.entry(id).or_default();
        match event_type.as_str() {
            "outbound_queued" => *entry = (true, entry.1 + recipients),
            "outbound_dropped" => entry.1 = i64::MIN / 2,
            _ => entry.1 -= 1,
        }
    }
    Ok(open
        .values()
        .filter(|(queued, left)| *queued && *left > 0)
        .count() as u64)
}

/// The times of the link-ups since `since`.
fn link_ups(conn: &rusqlite::Connection, since: i64) -> Result<Vec<i64>, JournalError> {
    let mut statement = conn
        .prepare(
            "SELECT at FROM entries WHERE at >= ?1 AND event_type = 'link_changed' \
             AND json_extract(event, '$.up') = 1 ORDER BY at",
        )
        .map_err(JournalError::Read)?;
    let rows = statement
        .query_map([since], |r| r.get::<_, i64>(0))
        .map_err(JournalError::Read)?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(JournalError::Read)
}

/// A dequeue as the journal has it: when, which server, which protocol.
struct Dequeue {
    at: i64,
    server: String,
    protocol: String,
}

/// The dequeues (`fetch_started`) since `since`, oldest first.
fn dequeues(conn: &rusqlite::Connection, since: i64) -> Result<Vec<Dequeue>, JournalError> {
    let mut statement = conn
        .prepare(
            "SELECT at, json_extract(event, '$.server'), json_extract(event, '$.protocol') \
             FROM entries WHERE at >= ?1 AND event_type = 'fetch_started' ORDER BY at, id",
        )
        .map_err(JournalError::Read)?;
    let rows = statement
        .query_map([since], |r| {
            Ok(Dequeue {
                at: r.get(0)?,
                server: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                protocol: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            })
        })
        .map_err(JournalError::Read)?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(JournalError::Read)
}

/// The `via` of the messages a dequeue of `protocol` brings: ETRN's come to the inbound
/// listener, ATRN's and TURN's over the dequeue's own connection.
fn via_of(protocol: &str) -> &str {
    match protocol {
        "atrn" => "atrn",
        "turn" => "turn",
        _ => crate::smtp_server::VIA_INBOUND,
    }
}

/// For each dequeue, the first message that came its way after it: before the same server's
/// next dequeue and within [`FIRST_MESSAGE_WITHIN`]. `arrivals`: `(at, via)`, sorted.
fn per_dequeue(
    dequeues: &[Dequeue],
    link_ups: &[i64],
    arrivals: &[(i64, String)],
) -> Vec<DequeueWait> {
    let within = FIRST_MESSAGE_WITHIN.num_milliseconds();
    dequeues
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let later = dequeues[i + 1..].iter().find(|n| n.server == d.server);
            let end = later.map_or(i64::MAX, |n| n.at).min(d.at + within);
            let via = via_of(&d.protocol);
            let from = arrivals.partition_point(|(at, _)| *at < d.at);
            let mine: Vec<i64> = arrivals[from..]
                .iter()
                .take_while(|(at, _)| *at <= end)
                .filter(|(_, v)| v == via)
                .map(|(at, _)| *at)
                .collect();
            let first = mine.first().copied();
            let previous = dequeues[..i].iter().rev().find(|p| p.server == d.server);
            // The server's first dequeue since the last link-up.
            let link_up = link_ups
                .iter()
                .rev()
                .find(|&&up| up <= d.at)
                .filter(|&&up| previous.is_none_or(|p| p.at < up));
            let secs = |from: i64, to: i64| (to - from) as f64 / 1000.0;
            DequeueWait {
                at: d.at,
                server: d.server.clone(),
                protocol: d.protocol.clone(),
                seconds: first.map(|f| secs(d.at, f)),
                from_link_up: first.zip(link_up).map(|(f, &up)| secs(up, f)),
                messages: mine.len() as u64,
            }
        })
        .collect()
}

/// The start of `t`'s local hour (offsets of half hours stay right).
fn local_hour(t: DateTime<Local>) -> DateTime<Local> {
    let naive = t.naive_local();
    let hour = naive
        .date()
        .and_hms_opt(naive.hour(), 0, 0)
        .unwrap_or(naive);
    Local.from_local_datetime(&hour).earliest().unwrap_or(t)
}

fn local_midnight(t: DateTime<Local>) -> DateTime<Local> {
    let naive = t.date_naive().and_time(NaiveTime::MIN);
    Local.from_local_datetime(&naive).earliest().unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::store::{Row, insert, open_for_writing};

    fn row(at: DateTime<Local>, event_type: &str, event: &str) -> Row {
        Row {
            at: at.timestamp_millis(),
            kind: "message",
            event_type: event_type.into(),
            text: String::new(),
            event: event.into(),
        }
    }

    #[test]
    fn counts_per_day_and_hour_and_the_wait_after_each_link_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let now = Local.with_ymd_and_hms(2026, 12, 1, 10, 30, 0).unwrap();
        let up = "{\"type\":\"link_changed\",\"up\":true,\"reason\":\"t\"}";
        let down = "{\"type\":\"link_changed\",\"up\":false,\"reason\":\"t\"}";
        let (mut conn, _) = open_for_writing(&path).unwrap();
        insert(
            &mut conn,
            &[
                row(now - Span::days(40), RECEIVED, "{}"),
                row(now - Span::days(3), "link_changed", up),
                row(now - Span::days(3) + Span::seconds(4), RECEIVED, "{}"),
                row(now - Span::days(1), SENT, "{}"),
                row(now - Span::hours(2), "link_changed", down),
                row(now - Span::minutes(20), "link_changed", up),
                row(now - Span::minutes(20) + Span::seconds(2), RECEIVED, "{}"),
                row(now - Span::minutes(19), RECEIVED, "{}"),
                row(
                    now,
                    "outbound_queued",
                    "{\"id\":\"a\",\"to\":[\"x\",\"y\"]}",
                ),
                row(now, SENT, "{\"id\":\"a\"}"),
                row(now, "outbound_queued", "{\"id\":\"b\",\"to\":[\"x\"]}"),
                row(now, "outbound_bounced", "{\"id\":\"b\"}"),
                row(now, "outbound_queued", "{\"id\":\"c\",\"to\":[\"x\"]}"),
                row(now, "outbound_dropped", "{\"id\":\"c\"}"),
            ],
        )
        .unwrap();

        let stats = stats(&path, now).unwrap();

        assert_eq!(stats.per_day.len(), 30);
        assert_eq!(stats.per_hour.len(), 48);
        assert_eq!(stats.received_today, 2);
        assert_eq!(stats.received_this_week, 3);
        assert_eq!(stats.per_day[26].received, 1, "three days ago");
        assert_eq!(stats.per_day[28].sent, 1, "yesterday");
        assert_eq!(stats.per_hour[47].received, 2, "this hour (10:00)");
        assert_eq!(
            stats.per_day[29].sent, 1,
            "one recipient of a delivered today"
        );
        assert_eq!(
            stats.outbound_queued, 1,
            "a: one of two recipients still open"
        );
        assert!(stats.per_dequeue.is_empty(), "no dequeue in this journal");
    }

    #[test]
    fn each_dequeue_gets_the_wait_for_its_first_message_and_one_without_mail_gets_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        let now = Local.with_ymd_and_hms(2026, 12, 1, 10, 30, 0).unwrap();
        let t0 = now - Span::hours(4);
        let at = |secs: i64| t0 + Span::milliseconds(secs * 1000);
        let up = "{\"type\":\"link_changed\",\"up\":true,\"reason\":\"t\"}";
        let down = "{\"type\":\"link_changed\",\"up\":false,\"reason\":\"t\"}";
        let fetch = |server: &str, protocol: &str| {
            format!(
                "{{\"type\":\"fetch_started\",\"server\":\"{server}\",\
                 \"protocol\":\"{protocol}\",\"domains\":[\"office.test\"]}}"
            )
        };
        let msg = |via: &str| format!("{{\"type\":\"message_received\",\"via\":\"{via}\"}}");
        let (a, b) = (fetch("a.test:25", "etrn"), fetch("b.test:366", "atrn"));
        let (mut conn, _) = open_for_writing(&path).unwrap();
        insert(
            &mut conn,
            &[
                row(at(0), "link_changed", up),
                row(at(1), "fetch_started", &a),
                row(at(1), "fetch_started", &b),
                row(at(3), RECEIVED, &msg("atrn")),
                row(at(4), RECEIVED, &msg("inbound")),
                row(at(5), RECEIVED, &msg("inbound")),
                // A refetch that brings nothing: the office's own submission is not its mail.
                row(at(900), "fetch_started", &a),
                row(at(901), RECEIVED, &msg("submission")),
                row(at(1800), "fetch_started", &a),
                row(at(1810), RECEIVED, &msg("inbound")),
                row(at(3000), "link_changed", down),
                row(at(7200), "link_changed", up),
                row(at(7201), "fetch_started", &a),
                row(at(7203), RECEIVED, &msg("inbound")),
            ],
        )
        .unwrap();

        let stats = stats(&path, now).unwrap();

        let waits: Vec<(&str, Option<f64>, Option<f64>, u64)> = stats
            .per_dequeue
            .iter()
            .map(|d| (d.server.as_str(), d.seconds, d.from_link_up, d.messages))
            .collect();
        assert_eq!(
            waits,
            vec![
                ("a.test:25", Some(3.0), Some(4.0), 2),
                ("b.test:366", Some(2.0), Some(3.0), 1),
                ("a.test:25", None, None, 0),
                ("a.test:25", Some(10.0), None, 1),
                ("a.test:25", Some(2.0), Some(3.0), 1),
            ]
        );
        assert_eq!(stats.per_dequeue[1].protocol, "atrn");
        assert_eq!(stats.per_dequeue[0].at, at(1).timestamp_millis());
    }
}
