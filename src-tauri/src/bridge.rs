//! Engine → windows and tray: every status change re-renders the tray and is emitted as
//! `status` (a [`StatusView`]); every engine event is kept for the Activity window, emitted as
//! `engine-event`, and may become a desktop notification.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use postern_engine::api::Status;
use postern_engine::config::Config;
use postern_engine::events::Event;
use postern_engine::view::{StatusView, TrayView};
use tauri::{AppHandle, Emitter, Manager, Runtime};
use tauri_plugin_notification::NotificationExt;
use tokio::sync::{broadcast, watch};

use crate::shell::Shell;

pub const STATUS_EVENT: &str = "status";
pub const ENGINE_EVENT: &str = "engine-event";

/// At most one notification of a kind per this interval.
const NOTIFY_EVERY: Duration = Duration::from_secs(60);

/// Follows one engine's status until that engine stops (Apply starts a new one and a new watch).
pub fn watch_status<R: Runtime>(app: AppHandle<R>, mut status: watch::Receiver<Status>) {
    tauri::async_runtime::spawn(async move {
        let mut last: Option<TrayView> = None;
        loop {
            let current = status.borrow_and_update().clone();
            let tray = TrayView::from_status(&current);
            if last.as_ref() != Some(&tray) {
                crate::tray::update(&app, &tray);
                last = Some(tray);
            }
            let _ = app.emit(STATUS_EVENT, StatusView::from_status(&current));
            if status.changed().await.is_err() {
                break;
            }
        }
    });
}

/// Forwards the shell's event channel (shared by every engine the shell starts).
pub fn forward_events<R: Runtime>(app: AppHandle<R>) {
    let mut events = app.state::<Shell>().events.subscribe();
    tauri::async_runtime::spawn(async move {
        let notifier = Notifier::default();
        loop {
            match events.recv().await {
                Ok(event) => {
                    app.state::<Shell>().record(&event);
                    let _ = app.emit(ENGINE_EVENT, &event);
                    let fetching = app.state::<Shell>().status().fetching;
                    if let Some((kind, body)) = notification(&event, fetching) {
                        notifier.show(&app, kind, &body);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

/// Whether to show desktop notifications: `[desktop] notifications` of the configuration in
/// use (on when there is none yet), unless `POSTERN_NOTIFICATIONS=off` (tests) forces them off.
pub fn notifications_wanted(env: Option<&str>, config: Option<&Config>) -> bool {
    env != Some("off") && config.is_none_or(|c| c.desktop.notifications)
}

/// The events worth a desktop notification: (kind for rate limiting, text). `fetching`: whether
/// a dequeue was running when the event came.
pub fn notification(event: &Event, fetching: bool) -> Option<(&'static str, String)> {
    match event {
        Event::DequeueComplete { server, messages } if *messages > 0 => {
            let from = server.as_deref().unwrap_or("the queuing server");
            Some((
                "released",
                match messages {
                    1 => format!("1 new message released by {from}"),
                    n => format!("{n} new messages released by {from}"),
                },
            ))
        }
        Event::FetchFailed {
            server, meaning, ..
        } => Some((
            "refused",
            format!("Queuing server {server} refused ETRN: {meaning}"),
        )),
        Event::ConnectBackMissing { server, hint, .. } => Some((
            "nothing-arrived",
            format!("{server} accepted ETRN but nothing arrived. {hint}"),
        )),
        Event::LinkChanged { up: false, .. } if fetching => Some((
            "link-lost",
            "The link went down while Postern was fetching mail; it tries again when the link is back"
                .to_string(),
        )),
        Event::Warning { message, .. } => Some(("warning", message.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_say_what_happened() {
        let released = Event::DequeueComplete {
            server: Some("mail.isp.example:25".into()),
            messages: 3,
        };
        let lost = Event::LinkChanged {
            up: false,
            reason: "probe failed".into(),
        };

        assert_eq!(
            notification(&released, false),
            Some((
                "released",
                "3 new messages released by mail.isp.example:25".into()
            ))
        );
        assert_eq!(notification(&lost, false), None);
        assert_eq!(notification(&lost, true).map(|(k, _)| k), Some("link-lost"));
        assert_eq!(notification(&Event::Paused, false), None);
    }

    #[test]
    fn notifications_follow_the_config_unless_forced_off() {
        let text = "domains = [\"office.test\"]\n[[queue_servers]]\nhost = \"isp.test\"\n\
                    [inbound]\ndeliver = \"maildir:/tmp/m\"\n";
        let on = Config::parse(text, std::path::Path::new("t.toml")).unwrap();
        let mut off = on.clone();
        off.desktop.notifications = false;

        let cases = [
            (None, None, true),
            (None, Some(&on), true),
            (None, Some(&off), false),
            (Some("off"), Some(&on), false),
            (Some("off"), None, false),
            (Some("on"), Some(&on), true),
        ];

        for (env, config, want) in cases {
            assert_eq!(notifications_wanted(env, config), want, "{env:?}");
        }
    }
}

#[derive(Default)]
struct Notifier {
    last: Mutex<HashMap<&'static str, Instant>>,
}

impl Notifier {
    fn show<R: Runtime>(&self, app: &AppHandle<R>, kind: &'static str, body: &str) {
        if !app.state::<Shell>().notifications_enabled() {
            return;
        }
        let now = Instant::now();
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last
            .get(kind)
            .is_some_and(|t| now.duration_since(*t) < NOTIFY_EVERY)
        {
            return;
        }
        last.insert(kind, now);
        if let Err(e) = app
            .notification()
            .builder()
            .title("Postern")
            .body(body)
            .show()
        {
            tracing::warn!("cannot show a notification: {e}");
        }
    }
}
