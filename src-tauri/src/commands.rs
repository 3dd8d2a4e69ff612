//! The UI's commands. What concerns the running engine or the tray (status, fetch, pause,
//! resume, the config file and Apply, passwords, Activity, start at login) is a request to the
//! tray's control endpoint; the setup checks (probe, test delivery, MX and reachability) need
//! no running engine and run here, with the engine's library. Errors reach the UI as one
//! sentence that says what is wrong and what to do.

use postern_engine::config::{Config, Outbound};
use postern_engine::control::{ConfigState, Request, Response};
use postern_engine::dashboard::DashboardView;
use postern_engine::events::Event;
use postern_engine::journal;
use postern_engine::mx;
use postern_engine::outbound::queue::{self, QueueAction, QueueEntry};
use postern_engine::outbound::spool::Spool;
use postern_engine::setup::{self, ReachabilityQuestion, ReachabilityReport, ServerReport};
use postern_engine::view::{StatusView, Window};
use tauri::{AppHandle, Runtime, State};

use crate::remote::Remote;

fn unexpected(response: Response) -> String {
    format!("the tray app answered something unexpected ({response:?}); restart Postern")
}

async fn done(remote: &Remote, request: Request) -> Result<(), String> {
    match remote.call(request).await? {
        Response::Done { .. } => Ok(()),
        other => Err(unexpected(other)),
    }
}

#[tauri::command]
pub async fn get_status(remote: State<'_, Remote>) -> Result<StatusView, String> {
    match remote.call(Request::Status).await? {
        Response::Status { status } => Ok(StatusView::from_status(&status)),
        other => Err(unexpected(other)),
    }
}

#[tauri::command]
pub async fn fetch_now(remote: State<'_, Remote>) -> Result<(), String> {
    done(&remote, Request::FetchNow).await
}

#[tauri::command]
pub async fn pause(remote: State<'_, Remote>) -> Result<(), String> {
    done(&remote, Request::Pause).await
}

#[tauri::command]
pub async fn resume(remote: State<'_, Remote>) -> Result<(), String> {
    done(&remote, Request::Resume).await
}

/// The config file as the Settings pane sees it (read by the tray).
#[tauri::command]
pub async fn load_config(remote: State<'_, Remote>) -> Result<ConfigState, String> {
    match remote.call(Request::LoadConfig).await? {
        Response::Config { state } => Ok(*state),
        other => Err(unexpected(other)),
    }
}

/// Apply: the tray checks the configuration, reloads its engine (or starts it, after the
/// wizard) and writes the file only once the engine took it.
#[tauri::command]
pub async fn save_config(remote: State<'_, Remote>, config: Config) -> Result<StatusView, String> {
    let request = Request::ApplyConfig {
        config: Box::new(config),
    };
    match remote.call(request).await? {
        Response::Status { status } => Ok(StatusView::from_status(&status)),
        other => Err(unexpected(other)),
    }
}

/// Stores a password in the tray's secret store (the OS keyring) under `USERNAME@HOST`.
#[tauri::command]
pub async fn set_secret(
    remote: State<'_, Remote>,
    name: String,
    password: String,
) -> Result<(), String> {
    done(&remote, Request::SetSecret { name, password }).await
}

#[tauri::command]
pub async fn probe_queue_server(host: String, port: u16) -> Result<ServerReport, String> {
    setup::probe_queue_server(host, port, gethostname()).await
}

#[tauri::command]
pub async fn test_delivery(target: String) -> Result<String, String> {
    setup::test_delivery(&target).await
}

/// The MX checker's report for `domain`, with the saved setup's queuing servers when there is one.
#[tauri::command]
pub async fn check_mx(remote: State<'_, Remote>, domain: String) -> Result<mx::Report, String> {
    let mut input = match Config::load(&remote.config_path) {
        Ok(config) => mx::CheckInput::from_config(&config, &domain),
        Err(_) => mx::CheckInput::new(&domain),
    };
    if input.nameservers.is_empty() {
        input.nameservers = nameservers_from_env()?;
    }
    mx::check(&input).await.map_err(|e| e.to_string())
}

/// Before the wizard has written a config there is no `[dns] nameservers`; the variable
/// `POSTERN_NAMESERVERS` ("IP:PORT,IP:PORT") stands in for it (split DNS, tests).
fn nameservers_from_env() -> Result<Vec<std::net::SocketAddr>, String> {
    let Ok(list) = std::env::var("POSTERN_NAMESERVERS") else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse().map_err(|_| {
                format!(
                    "POSTERN_NAMESERVERS has {s:?}, which is not IP:PORT; fix or unset the variable"
                )
            })
        })
        .collect()
}

/// The wizard's "Listening port" step: runs the MX checker for `domains` as if the inbound
/// listener were on `listen_address:listen_port` and the queuing server `queue_host` used ETRN.
/// DNS servers come from the saved config, if there is one; no SMTP probes are made.
#[tauri::command]
pub async fn check_reachability(
    remote: State<'_, Remote>,
    domains: Vec<String>,
    queue_host: Option<String>,
    listen_address: String,
    listen_port: u16,
) -> Result<ReachabilityReport, String> {
    let mut nameservers = Config::load(&remote.config_path)
        .map(|c| c.dns.nameservers)
        .unwrap_or_default();
    if nameservers.is_empty() {
        nameservers = nameservers_from_env()?;
    }
    setup::check_reachability(&ReachabilityQuestion {
        domains,
        queue_host,
        listen_address,
        listen_port,
        nameservers,
    })
    .await
}

/// A page of the mail-flow journal (Activity: filters, search, "older").
#[tauri::command]
pub async fn read_journal(
    remote: State<'_, Remote>,
    query: journal::Query,
) -> Result<journal::Page, String> {
    match remote.call(Request::Log { query }).await? {
        Response::Log { page } => Ok(page),
        other => Err(unexpected(other)),
    }
}

/// The dashboard: the engine's status, the journal's counts and its problems of the last day.
#[tauri::command]
pub async fn dashboard(remote: State<'_, Remote>) -> Result<DashboardView, String> {
    let status = match remote.call(Request::Status).await? {
        Response::Status { status } => status,
        other => return Err(unexpected(other)),
    };
    let stats = match remote.call(Request::Stats).await {
        Ok(Response::Stats { stats }) => Ok(*stats),
        Ok(other) => Err(unexpected(other)),
        Err(e) => Err(e),
    };
    let day_ago = crate::bridge::unix_millis() - 24 * 3600 * 1000;
    let problems = Request::Log {
        query: journal::Query {
            since: Some(day_ago),
            kind: Some(journal::Kind::Problem),
            limit: Some(50),
            ..journal::Query::default()
        },
    };
    // The counts still show when the warnings cannot be read; the stats error says why.
    let recent = match remote.call(problems).await {
        Ok(Response::Log { page }) => page.entries,
        _ => Vec::new(),
    };
    Ok(DashboardView::build(&status, stats, &recent))
}

/// The events the tray kept, oldest first.
#[tauri::command]
pub async fn recent_activity(remote: State<'_, Remote>) -> Result<Vec<Event>, String> {
    match remote.call(Request::Activity).await? {
        Response::Activity { events } => Ok(events),
        other => Err(unexpected(other)),
    }
}

/// The wizard's live test of a smarthost: what it offers (STARTTLS and its certificate, the
/// AUTH mechanisms the login needs), as MX-checker findings. Sends no mail and no password.
#[tauri::command]
pub async fn probe_smarthost(outbound: Outbound) -> Vec<mx::Finding> {
    mx::check_smarthost(
        &outbound,
        "postern.invalid",
        std::time::Duration::from_secs(15),
    )
    .await
}

/// The outbound queue, read from the spool of the tray's configuration (the spool files are the
/// truth, engine or not); empty without an `[outbound]` section.
#[tauri::command]
pub async fn queue_list(remote: State<'_, Remote>) -> Result<Vec<QueueEntry>, String> {
    let state = match remote.call(Request::LoadConfig).await? {
        Response::Config { state } => *state,
        other => return Err(unexpected(other)),
    };
    let Some(config) = state.config else {
        return Ok(Vec::new());
    };
    let Some(outbound) = &config.outbound else {
        return Ok(Vec::new());
    };
    let spool = Spool::at(
        &outbound.spool_dir(&config.state_dir),
        &config.inbound.hostname,
    );
    queue::list(&spool).map_err(|e| e.to_string())
}

/// Retry, Drop or Flush, carried out by the running engine's queue task; its answer.
#[tauri::command]
pub async fn queue_action(
    remote: State<'_, Remote>,
    action: QueueAction,
) -> Result<String, String> {
    match remote.call(Request::Queue { action }).await? {
        Response::Done { message } => Ok(message),
        Response::Error { message } => Err(message),
        other => Err(unexpected(other)),
    }
}

#[tauri::command]
pub fn open_window<R: Runtime>(app: AppHandle<R>, window: Window) -> Result<(), String> {
    crate::windows::open(&app, window).map_err(|e| e.to_string())
}

/// Start at login: the tray registers itself (`postern --autostart`), not this process.
#[tauri::command]
pub async fn starts_at_login(remote: State<'_, Remote>) -> Result<bool, String> {
    autostart(&remote, None).await
}

#[tauri::command]
pub async fn set_start_at_login(remote: State<'_, Remote>, on: bool) -> Result<bool, String> {
    autostart(&remote, Some(on)).await
}

async fn autostart(remote: &Remote, enable: Option<bool>) -> Result<bool, String> {
    match remote.call(Request::Autostart { enable }).await? {
        Response::Autostart { enabled } => Ok(enabled),
        other => Err(unexpected(other)),
    }
}

fn gethostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}
