//! Engine → tray: every status change re-renders the tray (on the event loop's thread); every
//! engine event is kept for the Activity window and may become a desktop notification.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_engine::events::Event;
use postern_engine::notify::notification;
use postern_engine::view::TrayView;
use tao::event_loop::EventLoopProxy;
use tokio::sync::broadcast;

use crate::UserEvent;
use crate::shell::Shell;

/// At most one notification of a kind per this interval.
const NOTIFY_EVERY: Duration = Duration::from_secs(60);

/// How often the tray view is built again (only sent when it differs), so that the backed-up
/// domains' "fetched 2 h ago" and their held mail stay current.
const BACKUP_REFRESH: Duration = Duration::from_secs(60);

/// Events after which the backup MX's held mail may look different.
fn changes_held_mail(event: &Event) -> bool {
    matches!(
        event,
        Event::MessageReceived { .. }
            | Event::BackupAsked { .. }
            | Event::BackupReleaseFinished { .. }
            | Event::BackupBounced { .. }
    )
}

/// Sends the tray a new view whenever the status, or the mail held for neighbours, changes
/// what it shows.
pub fn watch_status(shell: Arc<Shell>, proxy: EventLoopProxy<UserEvent>) {
    let mut status = shell.watch_status();
    let mut events = shell.events.subscribe();
    tokio::spawn(async move {
        let mut last: Option<TrayView> = None;
        let mut tick = tokio::time::interval(BACKUP_REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                changed = status.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                event = events.recv() => match event {
                    // Until an engine's status came, the tray shows the not-set-up menu.
                    Ok(e) if changes_held_mail(&e) && last.is_some() => {}
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => {
                    if last.is_none() {
                        continue;
                    }
                }
            }
            let mut now = status.borrow_and_update().clone();
            now.backup = shell.backup_status().await;
            let tray = TrayView::from_status(&now);
            if last.as_ref() != Some(&tray) {
                if proxy.send_event(UserEvent::View(tray.clone())).is_err() {
                    break;
                }
                last = Some(tray);
            }
        }
    });
}

/// Keeps every event for Activity and shows the notifications.
pub fn forward_events(shell: Arc<Shell>) {
    let mut events = shell.events.subscribe();
    tokio::spawn(async move {
        let mut last: HashMap<&'static str, Instant> = HashMap::new();
        loop {
            match events.recv().await {
                Ok(event) => {
                    shell.record(&event);
                    if let Some((kind, body)) = notification(&event, shell.status().fetching)
                        && shell.notifications_enabled()
                    {
                        let now = Instant::now();
                        if last
                            .get(kind)
                            .is_some_and(|t| now.duration_since(*t) < NOTIFY_EVERY)
                        {
                            continue;
                        }
                        last.insert(kind, now);
                        show(body);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

fn show(body: String) {
    // notify-rust blocks on D-Bus.
    tokio::task::spawn_blocking(move || {
        if let Err(e) = notify_rust::Notification::new()
            .appname("Postern")
            .summary("Postern")
            .body(&body)
            .show()
        {
            tracing::warn!("cannot show a notification: {e}");
        }
    });
}
