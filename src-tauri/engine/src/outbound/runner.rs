//! The queue task: decides when each spooled message is tried and carries the attempts out.
//!
//! - The link state is the supervisor's (its `Status`): while the link is down, nothing goes to
//!   the smarthost and no attempt is counted; on the edge to up, every message is due at once
//!   (the flush). Recipients in the office's own domains go to `[inbound] deliver` whatever the
//!   link does.
//! - The due messages are dealt over up to [`CONNECTIONS`] passes at once, each over its own
//!   smarthost connection (reused for the whole burst); no new pass starts before they all
//!   end. Each recipient gets its own result: 2xx delivered, 5xx bounced, anything else
//!   stays queued for the next attempt ([`super::retry`]).
//! - Every state change is saved to the spool before the next message, and a message whose
//!   recipients are all final leaves the spool, after its DSN (to the sender, never to `<>`)
//!   is itself durable.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::dsn::{self, Action as DsnAction};
use super::lanes::lanes;
use super::queue::QueueAction;
use super::retry::Schedule;
use super::smarthost::{Connection, Failure, RcptResult, Smarthost, all_failed};
use super::spool::{RcptState, Record, Spool, unix_now};
use crate::deliver::Delivery;
use crate::events::{Event, EventSender};
use crate::link::LinkState;
use crate::supervisor::Status;

/// Smarthost connections at once in a burst: Postfix's initial per-destination concurrency.
/// One connection leaves the link idle during each message's round trips and fsyncs.
pub const CONNECTIONS: usize = 5;

/// What the queue task works with.
pub struct QueueContext {
    pub spool: Spool,
    pub smarthost: Smarthost,
    /// `[inbound] deliver`: for recipients (and DSNs to senders) in the office's domains.
    pub local: Delivery,
    pub domains: Vec<String>,
    pub hostname: String,
    pub schedule: Schedule,
    pub events: EventSender,
    /// Where the queue's length goes for the front ends ([`Status::outbound_queued`]).
    pub status: Option<watch::Sender<Status>>,
    /// Messages already reported as stuck ([`Event::OutboundStuck`]) in this run.
    pub stuck_reported: std::sync::Mutex<HashSet<String>>,
}

/// A message still waiting this long after arrival, though tried while the link was up, is
/// reported as stuck (a desktop notification).
pub const STUCK_AFTER: Duration = Duration::from_secs(3600);

impl QueueContext {
    fn is_local(&self, address: &str) -> bool {
        address
            .rsplit_once('@')
            .is_some_and(|(_, d)| self.domains.iter().any(|x| x.eq_ignore_ascii_case(d)))
    }
}

/// Runs the queue until `shutdown` turns true.
pub async fn run(
    ctx: Arc<QueueContext>,
    records: Vec<Record>,
    mut feed: mpsc::UnboundedReceiver<Record>,
    mut status: watch::Receiver<Status>,
    mut actions: mpsc::UnboundedReceiver<QueueAction>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut queue: BTreeMap<String, Record> =
        records.into_iter().map(|r| (r.id.clone(), r)).collect();
    let mut busy: HashSet<String> = HashSet::new();
    let mut passes: JoinSet<Vec<Record>> = JoinSet::new();
    let mut link_up = status.borrow().link == LinkState::Up;
    let mut published = None;
    // A full look over the queue is needed only after something that can change many records
    // (the link, a finished pass, a command, the timer); a newly spooled record is looked at on
    // its own, so a burst of submissions costs O(1) each, not a walk over the whole queue.
    let mut rescan = true;
    let mut wake: Option<u64> = None;
    loop {
        let queued = Some(queue.len() as u64);
        if queued != published
            && let Some(tx) = &ctx.status
        {
            tx.send_modify(|s| s.outbound_queued = queued);
            published = queued;
        }
        if passes.is_empty() && rescan {
            rescan = false;
            let now = unix_now();
            let due: Vec<Record> = queue
                .values()
                .filter(|r| is_due(&ctx, r, now, link_up))
                .cloned()
                .collect();
            if due.is_empty() {
                wake = next_wake(&ctx, &queue, link_up);
            } else {
                busy = due.iter().map(|r| r.id.clone()).collect();
                for lane in lanes(due, CONNECTIONS) {
                    passes.spawn(pass(ctx.clone(), lane, status.clone()));
                }
            }
        }
        let timer = if passes.is_empty() { wake } else { None };
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            Some(record) = feed.recv() => {
                let _ = ctx.events.send(Event::OutboundQueued {
                    id: record.id.clone(),
                    from: record.sender.clone(),
                    to: record.recipients.iter().map(|r| r.address.clone()).collect(),
                    size: record.size,
                });
                if passes.is_empty() {
                    if is_due(&ctx, &record, unix_now(), link_up) {
                        busy = HashSet::from([record.id.clone()]);
                        passes.spawn(pass(ctx.clone(), vec![record.clone()], status.clone()));
                    } else if let Some(at) = wakes_at(&ctx, &record, link_up) {
                        wake = Some(wake.map_or(at, |w| w.min(at)));
                    }
                }
                queue.insert(record.id.clone(), record);
                continue;
            }
            changed = status.changed() => {
                if changed.is_err() {
                    // The supervisor is gone: the engine is stopping.
                    break;
                }
                let up = status.borrow().link == LinkState::Up;
                if up == link_up {
                    // Most changes are not the link's (this task's own queue length among
                    // them): nothing to look at again.
                    continue;
                }
                if up {
                    flush(&mut queue);
                }
                link_up = up;
            }
            Some(action) = actions.recv() => {
                let message = act(&ctx, &mut queue, &busy, action).await;
                let _ = ctx.events.send(Event::OutboundCommandDone { message });
            }
            Some(done) = passes.join_next(), if !passes.is_empty() => {
                match done {
                    Ok(records) => {
                        for record in records {
                            busy.remove(&record.id);
                            if record.is_done() {
                                queue.remove(&record.id);
                            } else if queue.contains_key(&record.id) {
                                queue.insert(record.id.clone(), record);
                            }
                        }
                    }
                    Err(e) => tracing::error!("an outbound delivery pass ended unexpectedly: {e}"),
                }
            }
            _ = sleep_until_unix(timer), if timer.is_some() => {}
        }
        rescan = true;
    }
    passes.abort_all();
}

fn flush(queue: &mut BTreeMap<String, Record>) {
    for r in queue.values_mut() {
        r.next_attempt = None;
    }
}

async fn act(
    ctx: &QueueContext,
    queue: &mut BTreeMap<String, Record>,
    busy: &HashSet<String>,
    action: QueueAction,
) -> String {
    match action {
        QueueAction::Flush => {
            flush(queue);
            format!("{} message(s) will be attempted now", queue.len())
        }
        QueueAction::Retry { id } => match queue.get_mut(&id) {
            Some(r) => {
                r.next_attempt = None;
                format!("{id} will be attempted now")
            }
            None => format!("no message {id} in the outbound queue"),
        },
        QueueAction::Drop { id } => {
            if busy.contains(&id) {
                return format!("{id} is being delivered right now; try again in a moment");
            }
            if queue.remove(&id).is_none() {
                return format!("no message {id} in the outbound queue");
            }
            match ctx.spool.remove_async(&id).await {
                Ok(()) => {
                    tracing::warn!(%id, "dropped from the outbound queue by request (no DSN)");
                    let _ = ctx.events.send(Event::OutboundDropped { id: id.clone() });
                    format!("{id} dropped (no DSN sent)")
                }
                Err(e) => format!("cannot drop {id}: {e}"),
            }
        }
    }
}

/// Whether anything of `r` can be tried now.
fn is_due(ctx: &QueueContext, r: &Record, now: u64, link_up: bool) -> bool {
    if r.next_attempt.is_some_and(|at| at > now) {
        return false;
    }
    r.pending().any(|p| link_up || ctx.is_local(&p.address))
}

/// The earliest time something becomes due.
fn next_wake(ctx: &QueueContext, queue: &BTreeMap<String, Record>, link_up: bool) -> Option<u64> {
    queue
        .values()
        .filter_map(|r| wakes_at(ctx, r, link_up))
        .min()
}

/// When `r` becomes due by the clock, if it can be tried at all with the link as it is.
fn wakes_at(ctx: &QueueContext, r: &Record, link_up: bool) -> Option<u64> {
    r.next_attempt
        .filter(|_| r.pending().any(|p| link_up || ctx.is_local(&p.address)))
}

async fn sleep_until_unix(at: Option<u64>) {
    let Some(at) = at else {
        return std::future::pending().await;
    };
    let wait = at.saturating_sub(unix_now());
    tokio::time::sleep(Duration::from_secs(wait.max(1))).await;
}

/// One walk over `records`, sharing one smarthost connection.
async fn pass(
    ctx: Arc<QueueContext>,
    records: Vec<Record>,
    status: watch::Receiver<Status>,
) -> Vec<Record> {
    let mut conn: Option<Connection> = None;
    let mut refused: Option<Failure> = None;
    let mut out = Vec::with_capacity(records.len());
    for mut record in records {
        let link_up = status.borrow().link == LinkState::Up;
        let before: Vec<RcptState> = record.recipients.iter().map(|r| r.state).collect();
        deliver_local(&ctx, &mut record).await;
        let remote: Vec<usize> = (0..record.recipients.len())
            .filter(|&i| {
                !record.recipients[i].state.is_final()
                    && !ctx.is_local(&record.recipients[i].address)
            })
            .collect();
        let mut attempted = false;
        if !remote.is_empty() && link_up {
            attempted = true;
            record.attempts += 1;
            let addresses: Vec<String> = remote
                .iter()
                .map(|&i| record.recipients[i].address.clone())
                .collect();
            let results = match &refused {
                Some(f) => all_failed(f, addresses.len()),
                None => send(&ctx, &mut conn, &mut refused, &record, &addresses).await,
            };
            for (&i, result) in remote.iter().zip(&results) {
                apply(&mut record, i, result);
            }
        }
        schedule(&ctx, &mut record, attempted);
        finish(&ctx, &mut record, &before).await;
        announce_deferred(&ctx, &record);
        out.push(record);
    }
    if let Some(c) = conn {
        c.quit().await;
    }
    out
}

async fn send(
    ctx: &QueueContext,
    conn: &mut Option<Connection>,
    refused: &mut Option<Failure>,
    record: &Record,
    addresses: &[String],
) -> Vec<RcptResult> {
    if conn.is_none() {
        match ctx.smarthost.connect().await {
            Ok(c) => *conn = Some(c),
            Err(f) => {
                tracing::warn!("smarthost {}: {}", ctx.smarthost.describe(), f.text);
                let results = all_failed(&f, addresses.len());
                *refused = Some(f);
                return results;
            }
        }
    }
    let Some(c) = conn.as_mut() else {
        return Vec::new();
    };
    let path = ctx.spool.message_path(&record.id);
    match c.send(&record.sender, addresses, record.size, &path).await {
        Ok(results) => results,
        Err(f) => {
            // The connection is broken: the next message gets a new one.
            *conn = None;
            all_failed(&f, addresses.len())
        }
    }
}

fn apply(record: &mut Record, i: usize, result: &RcptResult) {
    let rcpt = &mut record.recipients[i];
    let (state, text) = match result {
        RcptResult::Delivered(t) => (RcptState::Delivered, t),
        RcptResult::Permanent(t) => (RcptState::Bounced, t),
        RcptResult::Temporary(t) => (RcptState::Queued, t),
    };
    rcpt.state = state;
    rcpt.reply = Some(text.clone());
    record.last_reply = Some(text.clone());
}

/// Recipients in the office's own domains, through `[inbound] deliver`.
async fn deliver_local(ctx: &QueueContext, record: &mut Record) {
    let local: Vec<usize> = (0..record.recipients.len())
        .filter(|&i| {
            !record.recipients[i].state.is_final() && ctx.is_local(&record.recipients[i].address)
        })
        .collect();
    if local.is_empty() {
        return;
    }
    let mut transaction = ctx.local.transaction(&record.sender);
    let mut accepted = Vec::new();
    for &i in &local {
        match transaction.rcpt(&record.recipients[i].address).await {
            Ok(()) => accepted.push(i),
            Err(refused) => {
                let text = format!("{} {}", refused.code, refused.lines.join(" / "));
                let result = if refused.code >= 500 {
                    RcptResult::Permanent(text)
                } else {
                    RcptResult::Temporary(text)
                };
                apply(record, i, &result);
            }
        }
    }
    if accepted.is_empty() {
        transaction.close().await;
        return;
    }
    let path = ctx.spool.message_path(&record.id);
    let result = match copy_to(transaction, &path).await {
        Ok(location) => RcptResult::Delivered(location),
        Err(e) => {
            let (code, text) = e.reply();
            let text = format!("{code} {text}");
            if code >= 500 {
                RcptResult::Permanent(text)
            } else {
                RcptResult::Temporary(text)
            }
        }
    };
    for i in accepted {
        apply(record, i, &result);
    }
}

async fn copy_to(
    transaction: crate::deliver::Transaction,
    path: &std::path::Path,
) -> Result<String, crate::deliver::DeliverError> {
    let mut writer = transaction.data().await?;
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => {
            writer.abort().await;
            return Err(crate::deliver::DeliverError::io(
                "read the spooled message",
                e,
            ));
        }
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                writer.abort().await;
                return Err(crate::deliver::DeliverError::io(
                    "read the spooled message",
                    e,
                ));
            }
        };
        if n == 0 {
            break;
        }
        if let Err(e) = writer.write(&buf[..n]).await {
            writer.abort().await;
            return Err(e);
        }
    }
    Ok(writer.commit().await?.location)
}

/// The next attempt, expiry and the delay warning.
fn schedule(ctx: &QueueContext, record: &mut Record, attempted: bool) {
    if record.is_done() {
        return;
    }
    let now = unix_now();
    let age = Duration::from_secs(now.saturating_sub(record.arrived));
    if ctx.schedule.expired(age, record.attempts) {
        for r in record.recipients.iter_mut().filter(|r| !r.state.is_final()) {
            r.state = RcptState::Expired;
        }
        return;
    }
    let wait = if attempted {
        ctx.schedule.wait(record.attempts.max(1), fastrand::f64())
    } else {
        // Only local recipients were tried (the link is down): their own retry rhythm.
        ctx.schedule.retry_min
    };
    record.next_attempt = Some(now + wait.as_secs());
    if attempted && age >= STUCK_AFTER {
        report_stuck(ctx, record, age);
    }
}

/// The recipients still waiting, once their record is saved: a front end that reads the queue
/// on this event (the Queue window) sees the new attempt, reply and next try.
fn announce_deferred(ctx: &QueueContext, record: &Record) {
    let next = record
        .next_attempt
        .and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0))
        .map(|t| t.to_rfc3339());
    for r in record.pending() {
        let _ = ctx.events.send(Event::OutboundDeferred {
            id: record.id.clone(),
            to: r.address.clone(),
            reply: r.reply.clone().unwrap_or_default(),
            attempts: record.attempts,
            next_attempt: next.clone(),
        });
    }
}

fn report_stuck(ctx: &QueueContext, record: &Record, age: Duration) {
    let first = match ctx.stuck_reported.lock() {
        Ok(mut seen) => seen.insert(record.id.clone()),
        Err(_) => false,
    };
    if first {
        let _ = ctx.events.send(Event::OutboundStuck {
            id: record.id.clone(),
            to: record.pending().map(|r| r.address.clone()).collect(),
            waiting_minutes: age.as_secs() / 60,
            reply: record.last_reply.clone().unwrap_or_default(),
        });
    }
}

/// Sends the DSNs the pass made necessary, then saves or removes the record.
async fn finish(ctx: &QueueContext, record: &mut Record, before: &[RcptState]) {
    let failed: Vec<dsn::Line> = record
        .recipients
        .iter()
        .zip(before)
        .filter(|(r, was)| {
            matches!(r.state, RcptState::Bounced | RcptState::Expired) && !was.is_final()
        })
        .map(|(r, _)| dsn::Line {
            recipient: r.address.clone(),
            diagnostic: r.reply.clone().unwrap_or_else(|| "no reply".into()),
            remote_mta: (!ctx.is_local(&r.address)).then(|| ctx.smarthost.host.clone()),
            expired: r.state == RcptState::Expired,
        })
        .collect();
    let dsn_sent = !failed.is_empty() && bounce(ctx, record, DsnAction::Failed, &failed).await;
    let age = Duration::from_secs(unix_now().saturating_sub(record.arrived));
    if !record.is_done() && ctx.schedule.warn_now(age, record.delay_warned) {
        let waiting: Vec<dsn::Line> = record
            .pending()
            .map(|r| dsn::Line {
                recipient: r.address.clone(),
                diagnostic: r.reply.clone().unwrap_or_else(|| "not tried yet".into()),
                remote_mta: None,
                expired: false,
            })
            .collect();
        bounce(ctx, record, DsnAction::Delayed, &waiting).await;
        record.delay_warned = true;
    }
    let saved = if record.is_done() {
        ctx.spool.remove_async(&record.id).await
    } else {
        ctx.spool.save_async(record).await
    };
    if let Err(e) = saved {
        tracing::error!("{e}");
    }
    // After the save (or removal), like the deferred recipients' events: a front end that reads
    // the queue on them sees the pass's outcome.
    for (r, was) in record.recipients.iter().zip(before) {
        if r.state == RcptState::Delivered && *was != RcptState::Delivered {
            let via = if ctx.is_local(&r.address) {
                ctx.local.describe()
            } else {
                ctx.smarthost.describe()
            };
            let _ = ctx.events.send(Event::OutboundDelivered {
                id: record.id.clone(),
                to: r.address.clone(),
                via,
                reply: r.reply.clone().unwrap_or_default(),
            });
        }
    }
    for line in &failed {
        let _ = ctx.events.send(Event::OutboundBounced {
            id: record.id.clone(),
            to: line.recipient.clone(),
            reply: line.diagnostic.clone(),
            dsn_sent,
        });
    }
}

/// Sends one DSN from `<>` to the sender; false when none may or could be sent.
async fn bounce(
    ctx: &QueueContext,
    record: &Record,
    action: DsnAction,
    lines: &[dsn::Line],
) -> bool {
    // Never a DSN to the null sender: that is how bounce loops start.
    if record.sender.is_empty() {
        return false;
    }
    let head = dsn::original_head(&ctx.spool.message_path(&record.id)).await;
    let message = dsn::build(&ctx.hostname, record, action, lines, &head);
    let result = if ctx.is_local(&record.sender) {
        deliver_bytes(&ctx.local, &record.sender, &message).await
    } else {
        spool_bytes(&ctx.spool, &record.sender, &message).await
    };
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(id = %record.id, "cannot send the DSN to {}: {e}", record.sender);
            false
        }
    }
}

async fn deliver_bytes(local: &Delivery, to: &str, message: &[u8]) -> Result<(), String> {
    let mut t = local.transaction("");
    t.rcpt(to)
        .await
        .map_err(|r| format!("{} {}", r.code, r.lines.join(" / ")))?;
    let mut w = t.data().await.map_err(|e| e.to_string())?;
    if let Err(e) = w.write(message).await {
        w.abort().await;
        return Err(e.to_string());
    }
    w.commit().await.map(|_| ()).map_err(|e| e.to_string())
}

async fn spool_bytes(spool: &Spool, to: &str, message: &[u8]) -> Result<(), String> {
    let mut w = spool
        .begin("", &[to.to_string()], None, false)
        .await
        .map_err(|e| e.to_string())?;
    if let Err(e) = w.write(message).await {
        w.abort().await;
        return Err(e.to_string());
    }
    w.commit().await.map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| {
                serde_json::from_value(serde_json::json!({
                    "id": format!("id{i}"), "sender": "", "recipients": [],
                    "arrived": i, "size": 0, "attempts": 0,
                }))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn due_mail_is_dealt_over_at_most_n_lanes_in_turn() {
        let ids = |lane: &Vec<Record>| lane.iter().map(|r| r.id.clone()).collect::<Vec<_>>();

        let dealt = lanes(records(7), 3);
        let two = lanes(records(2), 5);
        let none = lanes(Vec::<Record>::new(), 5);

        assert_eq!(
            dealt.iter().map(ids).collect::<Vec<_>>(),
            vec![
                vec!["id0", "id3", "id6"],
                vec!["id1", "id4"],
                vec!["id2", "id5"],
            ]
        );
        assert_eq!(two.len(), 2);
        assert_eq!(none.len(), 1);
        assert!(none[0].is_empty());
    }

    fn context(dir: &std::path::Path, events: EventSender) -> QueueContext {
        let text = format!(
            "domains = [\"office.test\"]\n[[queue_servers]]\nhost = \"isp.test\"\n\
             [inbound]\ndeliver = \"maildir:{}/Maildir\"\n[outbound]\nlisten = [\"127.0.0.1:2587\"]\n\
             smarthost = \"smtp://smtp.isp.test:587\"\n",
            dir.display()
        );
        let config = crate::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
        let outbound = config.outbound.clone().unwrap();
        QueueContext {
            spool: Spool::at(&dir.join("outbound"), "gw.office.test"),
            smarthost: Smarthost::from_config(
                &outbound,
                "gw.office.test",
                Arc::new(crate::secrets::MemoryStore::new()),
            ),
            local: Delivery::open(
                &config.inbound.deliver,
                "gw.office.test",
                Duration::from_secs(5),
            )
            .unwrap(),
            domains: config.domains.clone(),
            hostname: "gw.office.test".into(),
            schedule: super::super::listener::schedule(&outbound),
            events,
            status: None,
            stuck_reported: Default::default(),
        }
    }

    #[test]
    fn mail_waiting_over_an_hour_though_tried_online_is_reported_stuck_once() {
        let dir = tempfile::tempdir().unwrap();
        let (events, mut seen) = crate::events::channel();
        let ctx = context(dir.path(), events);
        let queued = |age: u64| -> Record {
            serde_json::from_value(serde_json::json!({
                "id": format!("aged{age}"), "sender": "boss@office.test",
                "recipients": [{"address": "slow@example.net", "state": "queued",
                                "reply": "450 4.2.0 try later"}],
                "arrived": unix_now() - age, "size": 10, "attempts": 4,
                "last_reply": "450 4.2.0 try later",
            }))
            .unwrap()
        };
        let (mut old, mut young) = (queued(2 * 3600), queued(600));

        schedule(&ctx, &mut old, true);
        schedule(&ctx, &mut old, true);
        schedule(&ctx, &mut young, true);
        let mut offline = queued(3 * 3600);
        offline.id = "offline".into();
        schedule(&ctx, &mut offline, false);

        let stuck: Vec<Event> = std::iter::from_fn(|| seen.try_recv().ok())
            .filter(|e| matches!(e, Event::OutboundStuck { .. }))
            .collect();
        assert_eq!(
            stuck,
            vec![Event::OutboundStuck {
                id: "aged7200".into(),
                to: vec!["slow@example.net".into()],
                waiting_minutes: 120,
                reply: "450 4.2.0 try later".into(),
            }]
        );
    }
}
