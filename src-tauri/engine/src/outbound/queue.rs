//! `posternd queue list | flush | retry ID | drop ID`.
//!
//! `list` reads the spool itself, engine or not: every state change is saved there durably
//! (atomic rename), so the files are the truth. `flush`, `retry` and `drop` go to the running
//! engine's queue task when one runs (so a drop never races a delivery), else they act on the
//! spool directly: the next engine start attempts every message anyway.

use serde::{Deserialize, Serialize};

use super::spool::{RcptState, Record, Spool, SpoolError, unix_now};

/// What a front end asks of the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum QueueAction {
    /// Attempt every message now.
    Flush,
    Retry {
        id: String,
    },
    /// Take the message out of the queue, logged, without a DSN.
    Drop {
        id: String,
    },
}

/// One message as `posternd queue list --json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub id: String,
    /// `<>` for the null sender.
    pub sender: String,
    pub recipients: Vec<EntryRecipient>,
    pub size: u64,
    pub age_seconds: u64,
    pub attempts: u32,
    pub last_reply: Option<String>,
    /// What the last reply means, in plain words.
    pub meaning: Option<String>,
    /// RFC 3339; `None`: at the next chance (when the link is up).
    pub next_attempt: Option<String>,
    /// Held for this neighbour's domain (backup MX), until the neighbour asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_for: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecipient {
    pub address: String,
    pub state: RcptState,
    pub reply: Option<String>,
}

/// What a reply (or a network error) means for the message.
pub fn meaning(reply: &str) -> String {
    let code = reply.get(..3).and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(200..=299) => "accepted".into(),
        Some(421) => "the smarthost is busy or closing; it will be tried again".into(),
        Some(450..=452) => {
            "the smarthost cannot take it right now (mailbox busy, rate limit or full); it will be tried again".into()
        }
        Some(400..=499) => "a temporary refusal; it will be tried again".into(),
        Some(530 | 535) => "the smarthost wants a login or refused it: check smarthost_username and the password (posternd secret set)".into(),
        Some(550..=553) => "the address was refused for good (no such user, or relaying denied); the sender gets a bounce".into(),
        Some(500..=599) => "refused for good; the sender gets a bounce".into(),
        _ => "the smarthost could not be reached or did not answer; it will be tried again".into(),
    }
}

impl QueueEntry {
    pub fn of(record: &Record, now: u64) -> QueueEntry {
        QueueEntry {
            id: record.id.clone(),
            sender: if record.sender.is_empty() {
                "<>".into()
            } else {
                record.sender.clone()
            },
            recipients: record
                .recipients
                .iter()
                .map(|r| EntryRecipient {
                    address: r.address.clone(),
                    state: r.state,
                    reply: r.reply.clone(),
                })
                .collect(),
            size: record.size,
            age_seconds: now.saturating_sub(record.arrived),
            attempts: record.attempts,
            last_reply: record.last_reply.clone(),
            meaning: record.last_reply.as_deref().map(meaning),
            next_attempt: record
                .next_attempt
                .and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0))
                .map(|t| t.to_rfc3339()),
            held_for: record.held_for.clone(),
        }
    }
}

/// Every message in the spool.
pub fn list(spool: &Spool) -> Result<Vec<QueueEntry>, SpoolError> {
    let now = unix_now();
    Ok(spool
        .list()?
        .iter()
        .map(|r| QueueEntry::of(r, now))
        .collect())
}

/// The list for a person: the outbound queue, then the mail held for neighbours, one block
/// per message.
pub fn render(entries: &[QueueEntry]) -> String {
    let (held, own): (Vec<&QueueEntry>, Vec<&QueueEntry>) =
        entries.iter().partition(|e| e.held_for.is_some());
    let mut out = if own.is_empty() {
        "The outbound queue is empty.\n".to_string()
    } else {
        let mut text = render_blocks(&own);
        text.push_str(&format!("{} message(s)\n", own.len()));
        text
    };
    if !held.is_empty() {
        let mut domains: Vec<&str> = held.iter().filter_map(|e| e.held_for.as_deref()).collect();
        domains.sort_unstable();
        domains.dedup();
        out.push_str("\nHeld for neighbours (backup MX), released when they ask (ETRN/ATRN):\n");
        for d in domains {
            let of_d: Vec<&QueueEntry> = held
                .iter()
                .copied()
                .filter(|e| e.held_for.as_deref() == Some(d))
                .collect();
            out.push_str(&format!("{d}: {} message(s)\n", of_d.len()));
            out.push_str(&render_blocks(&of_d));
        }
    }
    out
}

fn render_blocks(entries: &[&QueueEntry]) -> String {
    let mut out = String::new();
    for e in entries {
        out.push_str(&format!(
            "{}  from {}  {} bytes  {} old  {} attempt(s)  next: {}\n",
            e.id,
            e.sender,
            e.size,
            humantime::format_duration(std::time::Duration::from_secs(e.age_seconds)),
            e.attempts,
            e.next_attempt.as_deref().unwrap_or("when the link is up")
        ));
        for r in &e.recipients {
            let state = serde_json::to_value(r.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            out.push_str(&format!(
                "    {:<9} {}{}\n",
                state,
                r.address,
                r.reply
                    .as_deref()
                    .map(|t| format!("  ({t})"))
                    .unwrap_or_default()
            ));
        }
        if let (Some(reply), Some(meaning)) = (&e.last_reply, &e.meaning) {
            out.push_str(&format!("    last reply: {reply}: {meaning}\n"));
        }
    }
    out
}

/// Carries `action` out on the spool itself (no engine runs). Blocks.
pub fn act_on_spool(spool: &Spool, action: &QueueAction) -> Result<String, String> {
    let mut records = spool.list().map_err(|e| e.to_string())?;
    match action {
        QueueAction::Flush => {
            let n = records.len();
            for r in &mut records {
                r.next_attempt = None;
                spool.save(r).map_err(|e| e.to_string())?;
            }
            Ok(format!(
                "{n} message(s) marked for an attempt; no engine runs, so they go out when `posternd run` (or the app) starts and the link is up"
            ))
        }
        QueueAction::Retry { id } => {
            let Some(r) = records.iter_mut().find(|r| &r.id == id) else {
                return Err(format!(
                    "no message {id} in the outbound queue (see `posternd queue list`)"
                ));
            };
            r.next_attempt = None;
            spool.save(r).map_err(|e| e.to_string())?;
            Ok(format!(
                "{id} marked for an attempt; it goes out when the engine runs and the link is up"
            ))
        }
        QueueAction::Drop { id } => {
            if !records.iter().any(|r| &r.id == id) {
                return Err(format!(
                    "no message {id} in the outbound queue (see `posternd queue list`)"
                ));
            }
            spool.remove(id).map_err(|e| e.to_string())?;
            tracing::warn!(%id, "dropped from the outbound queue by request (no DSN)");
            Ok(format!("{id} dropped (no DSN sent)"))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn one(spool: &Spool) -> String {
        let mut w = spool
            .begin("a@office.test", &["x@example.net".into()], None, false)
            .await
            .unwrap();
        w.write(b"Subject: s\r\n\r\nb\r\n").await.unwrap();
        w.commit().await.unwrap().id
    }

    #[tokio::test]
    async fn list_shows_each_message_and_drop_removes_it_without_an_engine() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(dir.path(), "gw.test").unwrap();
        let id = one(&spool).await;
        let mut record = spool.load(&id).unwrap();
        record.attempts = 2;
        record.last_reply = Some("450 4.2.0 try later".into());
        record.next_attempt = Some(unix_now() + 600);
        spool.save(&record).unwrap();

        let entries = list(&spool).unwrap();

        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].attempts, 2);
        assert!(
            entries[0]
                .meaning
                .as_deref()
                .unwrap()
                .contains("tried again")
        );
        let text = render(&entries);
        assert!(
            text.contains(&id) && text.contains("x@example.net"),
            "{text}"
        );
        let retried = act_on_spool(&spool, &QueueAction::Retry { id: id.clone() }).unwrap();
        assert!(retried.contains("marked"));
        assert_eq!(spool.load(&id).unwrap().next_attempt, None);
        act_on_spool(&spool, &QueueAction::Drop { id: id.clone() }).unwrap();
        assert!(list(&spool).unwrap().is_empty());
        assert!(act_on_spool(&spool, &QueueAction::Drop { id }).is_err());
    }

    #[test]
    fn actions_are_json_tagged() {
        let json = serde_json::to_string(&QueueAction::Retry { id: "x".into() }).unwrap();

        assert_eq!(json, r#"{"action":"retry","id":"x"}"#);
    }
}
