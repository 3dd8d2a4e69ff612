//! Tray → windows: the status (`status`, a [`StatusView`], now and on every change) and every
//! engine event (`engine-event`), followed over the control endpoint. When the tray goes
//! (Quit), the streams end and so does this process.

use postern_engine::control::{Request, Response};
use postern_engine::events::Event;
use postern_engine::journal::{self, Kind};
use postern_engine::view::StatusView;
use tauri::{AppHandle, Emitter, Runtime};

use crate::remote::Remote;

pub const STATUS_EVENT: &str = "status";
pub const ENGINE_EVENT: &str = "engine-event";
/// Each event as the journal words it (its rows, with the time it arrived), so Activity adds
/// live rows that read like the ones it pages from the journal.
pub const JOURNAL_EVENT: &str = "journal-entry";

pub fn follow<R: Runtime>(app: AppHandle<R>, remote: Remote) {
    let (status_app, status_remote) = (app.clone(), remote.clone());
    tauri::async_runtime::spawn(async move {
        let result = stream(status_remote, Request::WatchStatus, |response| {
            if let Response::Status { status } = response {
                let _ = status_app.emit(STATUS_EVENT, StatusView::from_status(&status));
            }
        })
        .await;
        gone(&status_app, result);
    });
    tauri::async_runtime::spawn(async move {
        let result = stream(remote, Request::Events, |response| {
            if let Response::Event { event } = response {
                let _ = app.emit(ENGINE_EVENT, &event);
                let at = crate::bridge::unix_millis();
                for (kind, text) in journal::entries_for(&event) {
                    let row = LiveEntry {
                        at,
                        kind,
                        text,
                        event: &event,
                    };
                    let _ = app.emit(JOURNAL_EVENT, &row);
                }
            }
        })
        .await;
        gone(&app, result);
    });
}

/// A journal row as it happens: a [`journal::Entry`] without an id (it has none yet).
#[derive(serde::Serialize)]
struct LiveEntry<'a> {
    at: i64,
    kind: Kind,
    text: String,
    event: &'a Event,
}

/// Now, in Unix milliseconds (the journal's time).
pub fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Hands each reply to `each` until the tray closes the connection.
async fn stream(
    remote: Remote,
    request: Request,
    mut each: impl FnMut(Response),
) -> Result<(), String> {
    let mut conn = remote.open(request).await?;
    while let Some(response) = conn.next(None).await.map_err(|e| e.to_string())? {
        each(response);
    }
    Ok(())
}

fn gone<R: Runtime>(app: &AppHandle<R>, result: Result<(), String>) {
    match result {
        Ok(()) => tracing::info!("the tray app quit; closing its windows"),
        Err(e) => tracing::error!("lost the tray app: {e}"),
    }
    app.exit(0);
}
