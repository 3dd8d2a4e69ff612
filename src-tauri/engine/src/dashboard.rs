//! The dashboard, the first window once a config exists: what the admin asks at a glance ("did
//! the mail come in this morning? is something stuck?"), as plain data built from the engine's
//! [`Status`], the journal's [`Stats`] and its recent problem entries. Pure, like [`crate::view`]:
//! the window process asks the control endpoint for the three and renders this.

use serde::{Deserialize, Serialize};

use crate::backup::server::HeldStatus;
use crate::journal::{Entry, Stats};
use crate::link::LinkState;
use crate::outcome::Outcome;
use crate::supervisor::Status;
use crate::view::{StatusView, TrayIcon};

/// How many of the journal's recent warnings the dashboard lists.
const RECENT_WARNINGS: usize = 5;

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashboardView {
    pub icon: TrayIcon,
    /// The tray's line ("Online · last fetch 10:42 · 12 messages").
    pub status_line: String,
    pub link: LinkState,
    /// When the link state last changed (RFC 3339).
    pub link_since: Option<String>,
    pub paused: bool,
    pub fetching: bool,
    /// Messages received since the engine started.
    pub received_since_start: u64,
    pub servers: Vec<ServerView>,
    /// From the journal; `None` when it could not be read (`stats_error` says why).
    pub stats: Option<Stats>,
    pub stats_error: Option<String>,
    /// What needs the admin, each with its fix; empty when all is well.
    pub attention: Vec<Attention>,
    /// The backup MX: per neighbour's domain, what is held and when the neighbour last fetched
    /// it; empty without `[[backup_for]]`.
    #[serde(default)]
    pub backup: Vec<HeldStatus>,
}

/// One queuing server: its last dequeue and the next one.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerView {
    /// `host:port`.
    pub server: String,
    pub fetching: bool,
    /// When the last dequeue finished (RFC 3339); `None` before the first.
    pub last_at: Option<String>,
    /// Its reply for each domain (code, text, meaning).
    pub last_outcomes: Vec<Outcome>,
    /// The next attempt (RFC 3339): a retry after a failure, else the next scheduled dequeue.
    pub next_attempt: Option<String>,
    /// The next attempt is a retry (`attempt` failures in a row so far).
    pub retrying: bool,
    pub attempt: u32,
    /// An ETRN was accepted and the server has not connected back yet.
    pub awaiting_connect_back: bool,
}

/// Something that needs the admin.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attention {
    pub subject: String,
    pub fix: Option<String>,
    /// When it was reported (Unix milliseconds), for the journal's warnings.
    pub at: Option<i64>,
}

impl DashboardView {
    /// `recent_problems`: the journal's problem entries of the last day, newest first.
    pub fn build(
        status: &Status,
        stats: Result<Stats, String>,
        recent_problems: &[Entry],
    ) -> DashboardView {
        let header = StatusView::from_status(status);
        let servers = status
            .servers
            .iter()
            .map(|s| {
                let retrying = s.next_retry_at.is_some();
                let scheduled = (!status.paused && status.link == LinkState::Up)
                    .then(|| status.next_fetch_at.clone())
                    .flatten();
                ServerView {
                    server: s.server.clone(),
                    fetching: s.fetching,
                    last_at: s.last_at.clone(),
                    last_outcomes: s.last_outcomes.clone(),
                    next_attempt: s.next_retry_at.clone().or(scheduled),
                    retrying,
                    attempt: s.attempt,
                    awaiting_connect_back: s.awaiting_connect_back,
                }
            })
            .collect();
        let mut attention: Vec<Attention> = header
            .problems
            .iter()
            .map(|p| Attention {
                subject: format!("{} for {}: {}", p.server, p.domain, p.meaning),
                fix: p.fix.clone(),
                at: None,
            })
            .collect();
        if status.paused {
            attention.push(Attention {
                subject: "Automatic fetching is paused".into(),
                fix: Some("choose \"Resume automatic fetching\" in the tray menu".into()),
                at: None,
            });
        }
        attention.extend(status.backup.iter().filter_map(held_attention));
        if let Err(e) = &stats {
            attention.push(Attention {
                subject: format!("The journal cannot be read: {e}"),
                fix: None,
                at: None,
            });
        }
        // A stuck message reported earlier may have gone since; with the queue empty, none is left.
        let queue_empty = status.outbound_queued == Some(0);
        attention.extend(
            recent_problems
                .iter()
                .filter(|e| !(queue_empty && event_type(e) == Some("outbound_stuck")))
                .filter_map(warning)
                .take(RECENT_WARNINGS),
        );
        let (stats, stats_error) = match stats {
            Ok(mut stats) => {
                // The spool's own count when the relay runs: the journal misses mail that is in
                // the spool without a journal entry (older than the journal or its retention).
                if let Some(queued) = status.outbound_queued {
                    stats.outbound_queued = queued;
                }
                (Some(stats), None)
            }
            Err(e) => (None, Some(e)),
        };
        DashboardView {
            icon: header.icon,
            status_line: header.status_line,
            link: status.link,
            link_since: status.link_since.clone(),
            paused: status.paused,
            fetching: status.fetching,
            received_since_start: status.messages_received,
            servers,
            stats,
            stats_error,
            attention,
            backup: status.backup.clone(),
        }
    }
}

/// Held mail that goes back to its senders soon, or whose domain is no longer backed up.
fn held_attention(b: &HeldStatus) -> Option<Attention> {
    if !b.needs_attention || b.held == 0 {
        return None;
    }
    let (subject, fix) = if b.configured {
        let when = b
            .returns_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| format!(" from {}", t.format("%-d %b %H:%M")))
            .unwrap_or_default();
        (
            format!(
                "{} held for {} for a long time: it goes back to the senders{when} (max_hold)",
                count(b.held),
                b.domain
            ),
            "ask the neighbour to fetch its mail (ETRN or ATRN) or to check its link; \
             or raise max_hold in its [[backup_for]] entry",
        )
    } else {
        (
            format!(
                "{} held for {}, which is no longer backed up here: it goes back to the senders",
                count(b.held),
                b.domain
            ),
            "add its [[backup_for]] entry again if removing it was a mistake",
        )
    };
    Some(Attention {
        subject,
        fix: Some(fix.to_string()),
        at: None,
    })
}

fn count(n: u32) -> String {
    if n == 1 {
        "1 message".into()
    } else {
        format!("{n} messages")
    }
}

/// A journal warning the dashboard lists: the engine's `warning` and `connect_back_missing`
/// events (failed dequeues are in the servers' own lines already).
fn event_type(entry: &Entry) -> Option<&str> {
    entry.event.get("type")?.as_str()
}

fn warning(entry: &Entry) -> Option<Attention> {
    let event = &entry.event;
    let fix = match event_type(entry)? {
        "warning" => event.get("fix").and_then(|f| f.as_str()),
        "connect_back_missing" => event.get("hint").and_then(|f| f.as_str()),
        "outbound_stuck" => Some(
            "the reply says why; open the Queue window to retry or drop it, and check the \
             smarthost settings with \"Check MX records…\" in the tray menu",
        ),
        _ => return None,
    };
    Some(Attention {
        subject: entry.text.clone(),
        fix: fix.map(str::to_string),
        at: Some(entry.at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Kind;
    use crate::outcome::Disposition;
    use crate::supervisor::ServerStatus;

    fn outcome(code: u16, disposition: Disposition, meaning: &str) -> Outcome {
        Outcome {
            server: "mail.isp.example:25".into(),
            domain: "office.example".into(),
            step: "ETRN office.example".into(),
            code: Some(code),
            text: "text".into(),
            disposition,
            meaning: meaning.into(),
            fix: Some("ask the ISP".into()),
            pending: None,
            received: None,
        }
    }

    fn status(outcome: Outcome, retry: Option<&str>) -> Status {
        Status {
            link: LinkState::Up,
            link_since: Some("2026-12-01T08:00:00+01:00".into()),
            messages_received: 3,
            last_fetch: vec![outcome.clone()],
            last_fetch_at: Some("2026-12-01T08:00:05+01:00".into()),
            next_fetch_at: Some("2026-12-01T08:15:05+01:00".into()),
            servers: vec![ServerStatus {
                server: "mail.isp.example:25".into(),
                last_outcomes: vec![outcome],
                last_at: Some("2026-12-01T08:00:05+01:00".into()),
                attempt: u32::from(retry.is_some()),
                next_retry_at: retry.map(str::to_string),
                ..ServerStatus::default()
            }],
            ..Status::default()
        }
    }

    fn entry(event: serde_json::Value, text: &str) -> Entry {
        Entry {
            id: 1,
            at: 1_000,
            kind: Kind::Problem,
            text: text.into(),
            event,
        }
    }

    #[test]
    fn all_well_shows_the_next_scheduled_dequeue_and_nothing_to_do() {
        let status = status(outcome(250, Disposition::Released, "released"), None);

        let view = DashboardView::build(&status, Err("no journal yet".into()), &[]);

        assert_eq!(view.link, LinkState::Up);
        assert_eq!(view.received_since_start, 3);
        let server = &view.servers[0];
        assert_eq!(
            server.next_attempt.as_deref(),
            Some("2026-12-01T08:15:05+01:00")
        );
        assert!(!server.retrying);
        assert_eq!(server.last_outcomes[0].code, Some(250));
        assert_eq!(view.stats_error.as_deref(), Some("no journal yet"));
        assert_eq!(
            view.attention,
            vec![Attention {
                subject: "The journal cannot be read: no journal yet".into(),
                fix: None,
                at: None
            }]
        );
    }

    #[test]
    fn the_outgoing_tile_counts_the_spool_when_the_relay_runs() {
        let mut status = status(outcome(250, Disposition::Released, "released"), None);
        let journal = Stats {
            received_today: 0,
            received_this_week: 0,
            outbound_queued: 0,
            per_day: Vec::new(),
            per_hour: Vec::new(),
            per_dequeue: Vec::new(),
        };

        let without_relay = DashboardView::build(&status, Ok(journal.clone()), &[]);
        status.outbound_queued = Some(2);
        let with_relay = DashboardView::build(&status, Ok(journal), &[]);

        assert_eq!(without_relay.stats.unwrap().outbound_queued, 0);
        assert_eq!(with_relay.stats.unwrap().outbound_queued, 2);
    }

    #[test]
    fn a_failed_dequeue_its_retry_and_the_journals_warnings_need_attention() {
        let retry_at = "2026-12-01T08:05:05+01:00";
        let mut status = status(
            outcome(458, Disposition::Retry, "try later"),
            Some(retry_at),
        );
        status.paused = true;
        let problems = [
            entry(
                serde_json::json!({"type": "warning", "message": "m", "fix": "free some space"}),
                "the journal is full",
            ),
            entry(
                serde_json::json!({"type": "fetch_failed", "server": "s"}),
                "already listed",
            ),
            entry(
                serde_json::json!({"type": "connect_back_missing", "hint": "forward port 25"}),
                "nothing came back",
            ),
            entry(
                serde_json::json!({"type": "outbound_stuck", "id": "q1"}),
                "outbound q1 still undelivered",
            ),
        ];

        let view = DashboardView::build(&status, Err("x".into()), &problems);
        status.outbound_queued = Some(0);
        let queue_empty = DashboardView::build(&status, Err("x".into()), &problems);

        let server = &view.servers[0];
        assert_eq!(server.next_attempt.as_deref(), Some(retry_at));
        assert!(server.retrying);
        let subjects: Vec<(&str, Option<&str>)> = view
            .attention
            .iter()
            .map(|a| (a.subject.as_str(), a.fix.as_deref()))
            .collect();
        assert_eq!(
            subjects,
            vec![
                (
                    "mail.isp.example:25 for office.example: try later",
                    Some("ask the ISP")
                ),
                (
                    "Automatic fetching is paused",
                    Some("choose \"Resume automatic fetching\" in the tray menu")
                ),
                ("The journal cannot be read: x", None),
                ("the journal is full", Some("free some space")),
                ("nothing came back", Some("forward port 25")),
                (
                    "outbound q1 still undelivered",
                    view.attention.last().and_then(|a| a.fix.as_deref())
                ),
            ]
        );
        assert!(
            view.attention
                .last()
                .unwrap()
                .fix
                .as_deref()
                .unwrap()
                .contains("Queue window")
        );
        assert_eq!(queue_empty.attention.len(), view.attention.len() - 1);
    }

    #[test]
    fn each_backed_up_domain_is_shown_and_mail_near_max_hold_needs_attention() {
        let mut status = status(outcome(250, Disposition::Released, "released"), None);
        let fine = HeldStatus {
            domain: "neighbour.example".into(),
            held: 12,
            bytes: 48_000,
            last_fetch: Some("2026-12-01T07:00:00+01:00".into()),
            last_fetch_by: Some("ATRN by neighbour".into()),
            configured: true,
            ..HeldStatus::default()
        };
        let old = HeldStatus {
            domain: "slow.example".into(),
            held: 3,
            configured: true,
            returns_at: Some("2026-12-02T09:30:00+01:00".into()),
            needs_attention: true,
            ..HeldStatus::default()
        };
        let gone = HeldStatus {
            domain: "gone.example".into(),
            held: 1,
            configured: false,
            needs_attention: true,
            ..HeldStatus::default()
        };
        status.backup = vec![fine.clone(), old, gone];

        let view = DashboardView::build(&status, Err("x".into()), &[]);

        assert_eq!(view.backup.len(), 3);
        assert_eq!(view.backup[0], fine);
        let subjects: Vec<&str> = view.attention.iter().map(|a| a.subject.as_str()).collect();
        assert_eq!(
            subjects,
            vec![
                "3 messages held for slow.example for a long time: it goes back to the senders \
                 from 2 Dec 09:30 (max_hold)",
                "1 message held for gone.example, which is no longer backed up here: it goes back \
                 to the senders",
                "The journal cannot be read: x",
            ]
        );
        assert!(
            view.attention[0]
                .fix
                .as_deref()
                .unwrap()
                .contains("ETRN or ATRN")
        );
    }

    #[test]
    fn offline_there_is_no_scheduled_dequeue() {
        let mut status = status(outcome(250, Disposition::Released, "released"), None);
        status.link = LinkState::Down;

        let view = DashboardView::build(&status, Err("x".into()), &[]);

        assert_eq!(view.servers[0].next_attempt, None);
    }
}
