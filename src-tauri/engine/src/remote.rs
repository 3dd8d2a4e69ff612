//! `posternd` against a running engine, through the control API ([`postern_engine::control`]):
//! `status`, `pause`, `resume`, `reload`, `events`, and `fetch` when an engine runs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use postern_engine::api::{EngineHandle, Status};
use postern_engine::config;
use postern_engine::control::client::{self, ControlError};
use postern_engine::control::server::{self, ControlServer, EngineLink};
use postern_engine::control::{Request, Response, endpoint_path};

use crate::local::{ConfigArg, fail, report_outcomes};

/// The endpoint of the config that `arg` names.
fn endpoint(arg: &ConfigArg) -> Result<PathBuf, String> {
    config::config_path(arg.config.as_deref())
        .map(|p| endpoint_path(&p))
        .ok_or_else(|| "no config file: pass --config FILE or set POSTERN_CONFIG".to_string())
}

/// Opens the control endpoint of `posternd run`.
pub(crate) async fn serve(arg: &ConfigArg, handle: &EngineHandle) -> Result<ControlServer, String> {
    let path = endpoint(arg)?;
    let (arg, reloader, events) = (arg.clone(), handle.reloader(), handle.events.clone());
    let reload: server::ReloadFn = Arc::new(move || {
        let (arg, reloader, events) = (arg.clone(), reloader.clone(), events.clone());
        Box::pin(async move { crate::local::reload_from_file(&arg, &reloader, &events).await })
    });
    let link = EngineLink {
        commands: handle.commands.clone(),
        status: handle.status.clone(),
        events: handle.events.clone(),
        reload,
        journal: handle.journal_path().to_path_buf(),
        backup: handle.backup(),
    };
    let control = server::serve(path, link).await.map_err(|e| e.to_string())?;
    tracing::info!("control endpoint {}", control.path().display());
    Ok(control)
}

pub(crate) async fn send(
    arg: &ConfigArg,
    request: Request,
) -> Result<client::Connection, ControlError> {
    let path = endpoint(arg).map_err(ControlError::Refused)?;
    client::request(&path, request).await
}

pub(crate) async fn status(arg: &ConfigArg, json: bool) -> ExitCode {
    let reply = match send(arg, Request::Status).await {
        Ok(conn) => conn.reply().await,
        Err(e) => Err(e),
    };
    let status = match reply {
        Ok(Response::Status { status }) => status,
        Ok(other) => return fail(&format!("unexpected answer {other:?}")),
        Err(e) => return fail(&e.to_string()),
    };
    if json {
        match serde_json::to_string_pretty(&status) {
            Ok(s) => print_out(&format!("{s}\n")),
            Err(e) => return fail(&e.to_string()),
        }
    } else {
        print_out(&describe(&status));
    }
    ExitCode::SUCCESS
}

/// The status as a few lines of text.
fn describe(status: &Status) -> String {
    let mut out = format!("link: {:?}", status.link).to_lowercase();
    if let Some(since) = &status.link_since {
        out.push_str(&format!(" since {since}"));
    }
    out.push('\n');
    out.push_str(if status.paused {
        "automatic fetching: paused\n"
    } else {
        "automatic fetching: on\n"
    });
    out.push_str(&format!(
        "messages received since start: {}\n",
        status.messages_received
    ));
    for server in &status.servers {
        out.push_str(&format!("{}:", server.server));
        if server.fetching {
            out.push_str(" fetching now");
        }
        if server.awaiting_connect_back {
            out.push_str(" waiting for it to connect back");
        }
        if let Some(at) = &server.last_at {
            out.push_str(&format!(" last fetch {at}"));
        }
        if let Some(next) = &server.next_retry_at {
            out.push_str(&format!(
                ", next attempt {next} (attempt {})",
                server.attempt
            ));
        }
        out.push('\n');
        for o in &server.last_outcomes {
            out.push_str(&format!("  {}\n", o.summary()));
        }
    }
    // The backup MX, worded as the tray words it.
    let now = chrono::Local::now().fixed_offset();
    for line in postern_engine::view::backup_lines(status, now) {
        out.push_str(&format!("backup MX for {line}\n"));
    }
    out
}

/// pause, resume, reload: one answer.
/// One request, one answer.
pub(crate) async fn request(arg: &ConfigArg, request: Request) -> Result<Response, ControlError> {
    send(arg, request).await?.reply().await
}

pub(crate) async fn simple(arg: &ConfigArg, request: Request) -> ExitCode {
    let reply = match send(arg, request).await {
        Ok(conn) => conn.reply().await,
        Err(e) => Err(e),
    };
    match reply {
        Ok(Response::Done { message }) => {
            print_out(&format!("{message}\n"));
            ExitCode::SUCCESS
        }
        Ok(other) => fail(&format!("unexpected answer {other:?}")),
        Err(e) => fail(&e.to_string()),
    }
}

/// The running engine's fetch when one runs; otherwise this process's own, as before.
pub(crate) async fn fetch(arg: &ConfigArg, json: bool) -> ExitCode {
    let conn = match send(arg, Request::Fetch).await {
        Ok(conn) => conn,
        Err(ControlError::NotRunning(_)) => return crate::local::fetch(arg, json).await,
        Err(e) => return fail(&e.to_string()),
    };
    // The engine bounds the fetch itself (15 min); this is only a backstop.
    let mut conn = conn;
    match conn.next(Some(Duration::from_secs(16 * 60))).await {
        Ok(Some(Response::Fetched { outcomes })) => report_outcomes(&outcomes, json),
        Ok(other) => fail(&format!("unexpected answer {other:?}")),
        Err(e) => fail(&e.to_string()),
    }
}

pub(crate) async fn events(arg: &ConfigArg, json: bool) -> ExitCode {
    let mut conn = match send(arg, Request::Events).await {
        Ok(conn) => conn,
        Err(e) => return fail(&e.to_string()),
    };
    loop {
        let line = match conn.next(None).await {
            Ok(Some(Response::Event { event })) => {
                if json {
                    serde_json::to_string(&event).unwrap_or_default()
                } else {
                    format!(
                        "{} {}",
                        chrono::Local::now().format("%H:%M:%S"),
                        one_line(&event)
                    )
                }
            }
            Ok(Some(Response::Lagged { missed })) => format!("({missed} events missed)"),
            Ok(Some(Response::Following)) => {
                eprintln!("Following the running engine's events; Ctrl-C stops.");
                continue;
            }
            Ok(Some(other)) => format!("{other:?}"),
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => return fail(&e.to_string()),
        };
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return ExitCode::SUCCESS;
        }
    }
}

/// `message_received from=a@b to=["u@office"] ...`: the event's type, then its fields.
fn one_line(event: &postern_engine::events::Event) -> String {
    let value = serde_json::to_value(event).unwrap_or_default();
    let Some(map) = value.as_object() else {
        return value.to_string();
    };
    let mut out = map
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("event")
        .replace('_', " ");
    for (key, value) in map.iter().filter(|(k, _)| *k != "type") {
        match value {
            serde_json::Value::String(s) => out.push_str(&format!(" {key}={s}")),
            other => out.push_str(&format!(" {key}={other}")),
        }
    }
    out
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
pub(crate) fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
