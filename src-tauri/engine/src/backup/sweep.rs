//! The backup MX's clock: mail held longer than its domain's `max_hold`, or held for a domain
//! no longer in `[[backup_for]]`, goes back to its sender with a DSN (never silently lost);
//! domains with `hold = false` are also tried on the retry schedule.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::backup::bounce;
use crate::backup::release;
use crate::backup::server::BackupServer;
use crate::outbound::dsn;
use crate::outbound::spool::{RcptState, unix_now};

/// How often the held mail is looked at.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Runs until `shutdown`: a sweep at once, then every `every`; `hold = false` domains are
/// released every `retry`.
pub async fn run(
    server: Arc<BackupServer>,
    every: Duration,
    retry: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_retry: Option<tokio::time::Instant> = None;
    loop {
        expire(&server).await;
        let now = tokio::time::Instant::now();
        if last_retry.is_none_or(|t| now.duration_since(t) >= retry) {
            last_retry = Some(now);
            retry_unheld(&server);
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

/// Returns what has been held too long, or for a domain no longer configured.
pub async fn expire(server: &BackupServer) -> u32 {
    let records = match server.held_all() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e}");
            return 0;
        }
    };
    let now = unix_now();
    let mut returned = 0;
    for mut record in records {
        let domain = record.held_for.clone().unwrap_or_default();
        let age = Duration::from_secs(now.saturating_sub(record.arrived));
        let why = match server.entry(&domain) {
            None => format!(
                "this office no longer backs up {domain} ([[backup_for]] removed); the message was held for {} h",
                age.as_secs() / 3600
            ),
            Some(e) if age > e.max_hold => format!(
                "held for {domain} longer than max_hold ({}): the neighbour never asked for it",
                crate::config::humantime_serde_compat::text(e.max_hold)
            ),
            Some(_) => continue,
        };
        let mut lines = Vec::new();
        for r in record.recipients.iter_mut().filter(|r| !r.state.is_final()) {
            r.state = RcptState::Expired;
            let text = format!("4.4.7 {why}");
            r.reply = Some(text.clone());
            lines.push(dsn::Line {
                recipient: r.address.clone(),
                diagnostic: text,
                remote_mta: None,
                expired: true,
            });
        }
        bounce::send(server, &record, &lines).await;
        release::save(server, &record).await;
        returned += 1;
    }
    returned
}

fn retry_unheld(server: &Arc<BackupServer>) {
    for entry in server.entries.iter().filter(|e| !e.hold) {
        let has_mail = server.held(&entry.domain).is_ok_and(|h| !h.is_empty());
        if !has_mail {
            continue;
        }
        if let Some(guard) = server.try_start(&entry.domain) {
            release::spawn(
                server.clone(),
                guard,
                "retry schedule (hold = false)".into(),
            );
        }
    }
}
