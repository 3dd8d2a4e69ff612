//! The UI's commands. Each forwards to the engine or the shell in a few lines; errors reach the
//! UI as one sentence that says what is wrong and what to do.

use postern_engine::api::Command;
use postern_engine::config::Config;
use postern_engine::config_store;
use postern_engine::events::Event;
use postern_engine::mx;
use postern_engine::setup::{self, ReachabilityQuestion, ReachabilityReport, ServerReport};
use postern_engine::view::{StatusView, Window};
use serde::Serialize;
use tauri::{AppHandle, Runtime, State};

use crate::shell::Shell;

#[tauri::command]
pub fn get_status(shell: State<'_, Shell>) -> StatusView {
    StatusView::from_status(&shell.status())
}

#[tauri::command]
pub async fn fetch_now(shell: State<'_, Shell>) -> Result<(), String> {
    shell
        .send(Command::FetchNow)
        .await
        .map_err(|e| e.to_string())
}

#[tauri::command]
pub async fn pause(shell: State<'_, Shell>) -> Result<(), String> {
    shell.send(Command::Pause).await.map_err(|e| e.to_string())
}

#[tauri::command]
pub async fn resume(shell: State<'_, Shell>) -> Result<(), String> {
    shell.send(Command::Resume).await.map_err(|e| e.to_string())
}

/// The config file as the Settings pane sees it.
#[derive(Debug, Serialize)]
pub struct ConfigState {
    pub path: String,
    pub exists: bool,
    pub config: Option<Config>,
    /// Why the existing file does not load (line:column and fix).
    pub error: Option<String>,
}

#[tauri::command]
pub fn load_config(shell: State<'_, Shell>) -> ConfigState {
    let path = &shell.config_path;
    let exists = path.exists();
    let (config, error) = match exists.then(|| Config::load(path)) {
        Some(Ok(c)) => (Some(c), None),
        Some(Err(e)) => (None, Some(e.to_string())),
        None => (None, None),
    };
    ConfigState {
        path: path.display().to_string(),
        exists,
        config,
        error,
    }
}

/// Validates and applies the new configuration (Apply): a reload of the running engine, or a
/// start when none runs (after the wizard). Only a configuration the engine took is written,
/// atomically, so one it refuses never replaces the working file.
#[tauri::command]
pub async fn save_config<R: Runtime>(
    app: AppHandle<R>,
    shell: State<'_, Shell>,
    mut config: Config,
) -> Result<StatusView, String> {
    if config.inbound.hostname.trim().is_empty() {
        config.inbound.hostname = gethostname();
    }
    let checked = config_store::check(&config, &shell.config_path).map_err(|e| e.to_string())?;
    if let Some(status) = shell
        .apply(checked.config.clone())
        .await
        .map_err(|e| e.to_string())?
    {
        crate::bridge::watch_status(app, status);
    }
    checked.write(&shell.config_path).map_err(|e| {
        format!("{e}. The new settings are in force until Postern quits, but were not saved")
    })?;
    Ok(StatusView::from_status(&shell.status()))
}

/// Stores a password in the OS keyring under `USERNAME@HOST`.
#[tauri::command]
pub async fn set_secret(
    shell: State<'_, Shell>,
    name: String,
    password: String,
) -> Result<(), String> {
    let secrets = shell.secrets.clone();
    tauri::async_runtime::spawn_blocking(move || secrets.set(&name, &password))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
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
pub async fn check_mx(shell: State<'_, Shell>, domain: String) -> Result<mx::Report, String> {
    let mut input = match Config::load(&shell.config_path) {
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
    shell: State<'_, Shell>,
    domains: Vec<String>,
    queue_host: Option<String>,
    listen_address: String,
    listen_port: u16,
) -> Result<ReachabilityReport, String> {
    let mut nameservers = Config::load(&shell.config_path)
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

#[tauri::command]
pub fn recent_activity(shell: State<'_, Shell>) -> Vec<Event> {
    shell.activity()
}

#[tauri::command]
pub fn open_window<R: Runtime>(app: AppHandle<R>, window: Window) -> Result<(), String> {
    crate::windows::open(&app, window).map_err(|e| e.to_string())
}

fn gethostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}
