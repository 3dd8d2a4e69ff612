//! Engine → windows and tray: every status change re-renders the tray and is emitted as
//! `status` (a [`StatusView`]); every engine event is kept for the Activity window, emitted as
//! `engine-event`, and may become a desktop notification.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use postern_engine::api::Status;
use postern_engine::notify::notification;
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
