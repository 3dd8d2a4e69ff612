//! Tray → windows: the status (`status`, a [`StatusView`], now and on every change) and every
//! engine event (`engine-event`), followed over the control endpoint. When the tray goes
//! (Quit), the streams end and so does this process.

use postern_engine::control::{Request, Response};
use postern_engine::view::StatusView;
use tauri::{AppHandle, Emitter, Runtime};

use crate::remote::Remote;

pub const STATUS_EVENT: &str = "status";
pub const ENGINE_EVENT: &str = "engine-event";

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
            }
        })
        .await;
        gone(&app, result);
    });
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
