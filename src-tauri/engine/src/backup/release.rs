//! One delivery run: every message held for one domain, over up to [`CONNECTIONS`]
//! connections to that domain's own server at once, recipient by recipient.
//!
//! A recipient leaves the hold only on the server's 2xx for it; 5xx returns it to the sender
//! (DSN); anything else keeps it held for the next run. Each record is saved (or removed, once
//! every recipient is final) before the next message, so a connection lost mid-way keeps
//! exactly the rest held. Every wait is bounded by the client's own deadlines.

use std::sync::Arc;

use crate::backup::bounce;
use crate::backup::server::{BackupServer, RunGuard};
use crate::backup::target::{self, Hop};
use crate::events::Event;
use crate::outbound::dsn;
use crate::outbound::smarthost::{Connection, RcptResult, Smarthost};
use crate::outbound::spool::{RcptState, Record};
use crate::secrets::MemoryStore;

/// Connections to the neighbour's server at once in a run: Postfix's initial
/// per-destination concurrency, as the outbound queue uses.
const CONNECTIONS: usize = 5;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub delivered: u32,
    pub deferred: u32,
    pub bounced: u32,
    /// Why the run stopped before the end (target unknown, connection lost).
    pub problem: Option<String>,
}

/// Starts a run for `guard`'s domain in the background; it reports through events.
pub fn spawn(server: Arc<BackupServer>, guard: RunGuard, trigger: String) {
    tokio::spawn(async move {
        run(server, guard, trigger).await;
    });
}

/// Delivers what is held for `guard.domain` to its own target.
pub async fn run(server: Arc<BackupServer>, guard: RunGuard, trigger: String) -> Summary {
    let domain = guard.domain.clone();
    let mut summary = Summary::default();
    let Some(entry) = server.entry(&domain).cloned() else {
        return summary;
    };
    let records = match server.held(&domain) {
        Ok(r) => r,
        Err(e) => {
            summary.problem = Some(e.to_string());
            finish(&server, &domain, &summary);
            return summary;
        }
    };
    let _ = server.events.send(Event::BackupReleaseStarted {
        domain: domain.clone(),
        trigger,
        held: records.len() as u32,
        target: entry.deliver_to.to_string(),
    });
    if records.is_empty() {
        finish(&server, &domain, &summary);
        return summary;
    }
    let hops = target::resolve(
        &domain,
        &entry.deliver_to,
        &server.hostname,
        server.mx_port,
        &server.nameservers,
    )
    .await;
    match hops {
        Err(e) => {
            summary.deferred = records.len() as u32;
            summary.problem = Some(e.to_string());
        }
        Ok(hops) => {
            let lanes = crate::outbound::lanes::lanes(records, CONNECTIONS);
            let runs = lanes.into_iter().map(|lane| {
                let (server, hops) = (&server, &hops);
                async move {
                    match connect_first(server, hops).await {
                        Err(why) => Summary {
                            deferred: lane.len() as u32,
                            problem: Some(why),
                            ..Summary::default()
                        },
                        Ok(mut conn) => {
                            let s = deliver_all(server, &mut conn, lane).await;
                            conn.quit().await;
                            s
                        }
                    }
                }
            });
            for s in futures_util::future::join_all(runs).await {
                summary.delivered += s.delivered;
                summary.deferred += s.deferred;
                summary.bounced += s.bounced;
                summary.problem = summary.problem.or(s.problem);
            }
        }
    }
    finish(&server, &domain, &summary);
    drop(guard);
    summary
}

/// Delivers what is held for `guard.domain` over a connection the neighbour opened (ATRN).
pub async fn run_over(
    server: &BackupServer,
    guard: &RunGuard,
    trigger: String,
    conn: &mut Connection,
) -> Summary {
    let domain = guard.domain.clone();
    let records = match server.held(&domain) {
        Ok(r) => r,
        Err(e) => {
            let summary = Summary {
                problem: Some(e.to_string()),
                ..Summary::default()
            };
            finish(server, &domain, &summary);
            return summary;
        }
    };
    let _ = server.events.send(Event::BackupReleaseStarted {
        domain: domain.clone(),
        trigger,
        held: records.len() as u32,
        target: conn.server().to_string(),
    });
    let summary = deliver_all(server, conn, records).await;
    finish(server, &domain, &summary);
    summary
}

fn finish(server: &BackupServer, domain: &str, s: &Summary) {
    if let Some(p) = &s.problem {
        tracing::warn!(%domain, "backup MX run stopped: {p}");
    }
    let _ = server.events.send(Event::BackupReleaseFinished {
        domain: domain.to_string(),
        delivered: s.delivered,
        deferred: s.deferred,
        bounced: s.bounced,
        problem: s.problem.clone(),
    });
}

/// The first hop that answers, greets and (when offered) starts TLS.
async fn connect_first(server: &BackupServer, hops: &[Hop]) -> Result<Connection, String> {
    let mut why = Vec::new();
    for hop in hops {
        let host = Smarthost {
            host: hop.host.clone(),
            port: hop.port,
            implicit_tls: false,
            tls: crate::config::TlsMode::Opportunistic,
            username: None,
            secret_name: None,
            helo_name: server.hostname.clone(),
            timeout: server.timeout,
            trust: crate::tls::TrustPolicy::default(),
            secrets: Arc::new(MemoryStore::new()),
            connect_addr: hop.addr,
        };
        match super::mx_connect::connect(&host).await {
            Ok(c) => return Ok(c),
            Err(text) => why.push(text),
        }
    }
    Err(why.join("; "))
}

/// Sends every record over `conn`, saving each before the next; stops when the connection
/// breaks (the rest stays held).
pub async fn deliver_all(
    server: &BackupServer,
    conn: &mut Connection,
    records: Vec<Record>,
) -> Summary {
    let mut summary = Summary::default();
    let total = records.len();
    for (n, mut record) in records.into_iter().enumerate() {
        let pending: Vec<usize> = (0..record.recipients.len())
            .filter(|&i| !record.recipients[i].state.is_final())
            .collect();
        let addresses: Vec<String> = pending
            .iter()
            .map(|&i| record.recipients[i].address.clone())
            .collect();
        let path = server.spool.message_path(&record.id);
        record.attempts += 1;
        let results = match conn
            .send(&record.sender, &addresses, record.size, &path)
            .await
        {
            Ok(r) => r,
            Err(f) => {
                summary.deferred += (total - n) as u32;
                summary.problem = Some(format!("{}: {}", conn.server(), f.text));
                record.last_reply = Some(f.text);
                save(server, &record).await;
                return summary;
            }
        };
        let mut failed = Vec::new();
        for (&i, result) in pending.iter().zip(&results) {
            let rcpt = &mut record.recipients[i];
            let (state, text) = match result {
                RcptResult::Delivered(t) => (RcptState::Delivered, t),
                RcptResult::Permanent(t) => (RcptState::Bounced, t),
                RcptResult::Temporary(t) => (RcptState::Queued, t),
            };
            rcpt.state = state;
            rcpt.reply = Some(text.clone());
            record.last_reply = Some(text.clone());
            match state {
                RcptState::Delivered => {
                    let _ = server.events.send(Event::BackupDelivered {
                        id: record.id.clone(),
                        domain: record.held_for.clone().unwrap_or_default(),
                        to: rcpt.address.clone(),
                        via: conn.server().to_string(),
                        reply: text.clone(),
                    });
                }
                RcptState::Bounced => failed.push(dsn::Line {
                    recipient: rcpt.address.clone(),
                    diagnostic: text.clone(),
                    remote_mta: Some(conn.server().to_string()),
                    expired: false,
                }),
                _ => {}
            }
        }
        if !failed.is_empty() {
            bounce::send(server, &record, &failed).await;
        }
        if record.is_done() {
            if record
                .recipients
                .iter()
                .any(|r| r.state == RcptState::Delivered)
            {
                summary.delivered += 1;
            } else {
                summary.bounced += 1;
            }
        } else {
            summary.deferred += 1;
        }
        save(server, &record).await;
    }
    summary
}

/// Saves the record, or removes it once every recipient is final.
pub async fn save(server: &BackupServer, record: &Record) {
    let result = if record.is_done() {
        let spool = server.spool.clone();
        let id = record.id.clone();
        tokio::task::spawn_blocking(move || spool.remove(&id))
            .await
            .unwrap_or_else(|e| {
                Err(crate::outbound::spool::SpoolError {
                    dir: server.spool.dir().to_path_buf(),
                    what: "remove a record".into(),
                    source: std::io::Error::other(e),
                })
            })
    } else {
        server.spool.save_async(record).await
    };
    if let Err(e) = result {
        tracing::error!("{e}");
    }
}
