//! Engine → tray: every status change re-renders the tray (on the event loop's thread); every
//! engine event is kept for the Activity window and may become a desktop notification.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_engine::notify::notification;
use postern_engine::view::TrayView;
use tao::event_loop::EventLoopProxy;
use tokio::sync::broadcast;

use crate::UserEvent;
use crate::shell::Shell;

/// At most one notification of a kind per this interval.
const NOTIFY_EVERY: Duration = Duration::from_secs(60);

/// Sends the tray a new view whenever the status changes what it shows.
pub fn watch_status(shell: Arc<Shell>, proxy: EventLoopProxy<UserEvent>) {
    let mut status = shell.watch_status();
    tokio::spawn(async move {
        let mut last: Option<TrayView> = None;
        while status.changed().await.is_ok() {
            let tray = TrayView::from_status(&status.borrow_and_update());
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
