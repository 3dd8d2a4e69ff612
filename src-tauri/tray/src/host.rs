//! The tray's control endpoint: the engine's requests (as `posternd run` serves them), and the
//! window process's: open a window, the config file, Apply, passwords, Activity, autostart.
//! It is served for the tray's whole life, with or without an engine (the wizard runs first).

use std::sync::Arc;

use postern_engine::api::{Command, Status};
use postern_engine::config::Config;
use postern_engine::config_store;
use postern_engine::control::server::{BoxFuture, Host};
use postern_engine::control::{ConfigState, Request, Response};
use postern_engine::events::EventSender;
use postern_engine::view::Window;
use tokio::sync::{mpsc, watch};

use crate::shell::Shell;

pub struct TrayHost {
    pub shell: Arc<Shell>,
}

impl Host for TrayHost {
    fn commands(&self) -> Option<mpsc::Sender<Command>> {
        self.shell.commands()
    }

    fn status(&self) -> watch::Receiver<Status> {
        self.shell.watch_status()
    }

    fn events(&self) -> EventSender {
        self.shell.events.clone()
    }

    fn reload(&self) -> BoxFuture<Result<String, String>> {
        let shell = self.shell.clone();
        Box::pin(async move {
            let config = Config::load(&shell.config_path).map_err(|e| e.to_string())?;
            shell.apply(config).await.map_err(|e| e.to_string())
        })
    }

    fn journal(&self) -> Option<std::path::PathBuf> {
        self.shell.journal()
    }

    fn backup(&self) -> BoxFuture<Vec<postern_engine::backup::server::HeldStatus>> {
        let shell = self.shell.clone();
        Box::pin(async move { shell.backup_status().await })
    }

    fn extra(&self, request: Request) -> BoxFuture<Option<Response>> {
        let shell = self.shell.clone();
        Box::pin(async move {
            let reply = match request {
                Request::OpenWindow { page } => open_window(&shell, page),
                Request::LoadConfig => Ok(Response::Config {
                    state: Box::new(ConfigState::load(&shell.config_path)),
                }),
                Request::ApplyConfig { config } => apply(&shell, *config).await,
                Request::SetSecret { name, password } => {
                    let secrets = shell.secrets.clone();
                    tokio::task::spawn_blocking(move || secrets.set(&name, &password))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()))
                        .map(|()| Response::Done {
                            message: "saved".into(),
                        })
                }
                Request::Activity => Ok(Response::Activity {
                    events: shell.activity(),
                }),
                Request::Autostart { enable } => {
                    tokio::task::spawn_blocking(move || crate::autostart::set(enable))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r)
                        .map(|enabled| Response::Autostart { enabled })
                }
                _ => return None,
            };
            Some(reply.unwrap_or_else(|message| Response::Error { message }))
        })
    }
}

/// Opens `page`; the dashboard or Settings before there is a config file is the wizard (a
/// second start of `postern` asks for the dashboard).
pub fn open_window(shell: &Shell, page: Window) -> Result<Response, String> {
    let page = match page {
        Window::Dashboard | Window::Settings if !shell.config_path.exists() => Window::Wizard,
        other => other,
    };
    crate::windows::open(page, &shell.config_path, &shell.endpoint)?;
    Ok(Response::Done {
        message: format!("opened {}", crate::windows::page(page)),
    })
}

/// Apply (Settings) and "Save and start" (wizard): only a configuration the engine took is
/// written, atomically, so one it refuses never replaces the working file.
async fn apply(shell: &Shell, mut config: Config) -> Result<Response, String> {
    if config.inbound.hostname.trim().is_empty() {
        config.inbound.hostname = gethostname::gethostname().to_string_lossy().into_owned();
    }
    let checked = config_store::check(&config, &shell.config_path).map_err(|e| e.to_string())?;
    shell
        .apply(checked.config.clone())
        .await
        .map_err(|e| e.to_string())?;
    checked.write(&shell.config_path).map_err(|e| {
        format!("{e}. The new settings are in force until Postern quits, but were not saved")
    })?;
    Ok(Response::Status {
        status: Box::new(shell.status()),
    })
}
