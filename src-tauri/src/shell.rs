//! The shell's state: where the config lives, the running engine, and the last events for the
//! Activity window. Everything here is plain Rust (no window types), shared by the commands,
//! the tray and the bridge.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use postern_engine::api::{self, Command, Deps, EngineHandle, ReloadError, Status};
use postern_engine::config::Config;
use postern_engine::control::{
    self,
    server::{ControlServer, EngineLink, ReloadFn},
};
use postern_engine::events::{Event, EventSender};
use postern_engine::secrets::SecretStore;
use tokio::sync::{mpsc, watch};

/// How many events the Activity window can show from before it was opened.
const ACTIVITY_LEN: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("Postern is not set up yet: finish the setup wizard first")]
    NotRunning,
    #[error("the engine stopped; quit Postern and start it again")]
    EngineGone,
    #[error("cannot start the engine: {0}")]
    Start(String),
    #[error("{0}")]
    Reload(String),
}

/// The current engine's controls (replaced when an engine starts; a reload keeps them).
struct Control {
    commands: Option<mpsc::Sender<Command>>,
    status: watch::Receiver<Status>,
}

pub struct Shell {
    pub config_path: PathBuf,
    pub events: EventSender,
    pub secrets: Arc<dyn SecretStore>,
    control: Mutex<Control>,
    engine: tokio::sync::Mutex<Option<EngineHandle>>,
    /// The control endpoint of the running engine (`posternd status` and friends).
    control_endpoint: Mutex<Option<ControlServer>>,
    activity: Mutex<VecDeque<Event>>,
    /// The configuration the engine was last (re)started with: set at start and on every save.
    config: Mutex<Option<Config>>,
    /// `POSTERN_NOTIFICATIONS`, read once at start.
    notifications_env: Option<String>,
}

impl Shell {
    pub fn new(config_path: PathBuf, secrets: Arc<dyn SecretStore>) -> Shell {
        let (events, _) = postern_engine::events::channel();
        let (_, status) = watch::channel(Status::default());
        Shell {
            config_path,
            events,
            secrets,
            control: Mutex::new(Control {
                commands: None,
                status,
            }),
            engine: tokio::sync::Mutex::new(None),
            control_endpoint: Mutex::new(None),
            activity: Mutex::new(VecDeque::new()),
            config: Mutex::new(None),
            notifications_env: std::env::var("POSTERN_NOTIFICATIONS").ok(),
        }
    }

    /// A shell driven by the given channels instead of a real engine (tests).
    pub fn with_channels(
        config_path: PathBuf,
        secrets: Arc<dyn SecretStore>,
        commands: mpsc::Sender<Command>,
        status: watch::Receiver<Status>,
    ) -> Shell {
        let shell = Shell::new(config_path, secrets);
        if let Ok(mut c) = shell.control.lock() {
            *c = Control {
                commands: Some(commands),
                status,
            };
        }
        shell
    }

    pub fn status(&self) -> Status {
        self.control
            .lock()
            .map(|c| c.status.borrow().clone())
            .unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.control
            .lock()
            .map(|c| c.commands.is_some())
            .unwrap_or(false)
    }

    pub async fn send(&self, command: Command) -> Result<(), ShellError> {
        let sender = self
            .control
            .lock()
            .ok()
            .and_then(|c| c.commands.clone())
            .ok_or(ShellError::NotRunning)?;
        sender
            .send(command)
            .await
            .map_err(|_| ShellError::EngineGone)
    }

    /// Stops the running engine (if any) and starts one with `config`. Returns the new status
    /// receiver so the caller can watch it.
    pub async fn restart(&self, config: Config) -> Result<watch::Receiver<Status>, ShellError> {
        // Recorded before the start, so a config that fails to start still rules notifications.
        self.remember(&config);
        let mut engine = self.engine.lock().await;
        if let Some(old) = engine.take() {
            self.close_endpoint();
            old.shutdown().await;
        }
        self.start_into(&mut engine, config).await
    }

    /// Apply: reloads the running engine with `config` (if that fails, nothing changed), or
    /// starts one when none runs (after the wizard, or when the last start failed). Returns the
    /// status receiver of a newly started engine, for the caller to watch.
    pub async fn apply(
        &self,
        config: Config,
    ) -> Result<Option<watch::Receiver<Status>>, ShellError> {
        let mut engine = self.engine.lock().await;
        if let Some(running) = engine.as_ref() {
            match running.reload(config.clone()).await {
                Ok(_) => {
                    self.remember(&config);
                    return Ok(None);
                }
                Err(ReloadError::EngineGone) => *engine = None,
                Err(e) => return Err(ShellError::Reload(e.to_string())),
            }
        }
        self.remember(&config);
        self.start_into(&mut engine, config).await.map(Some)
    }

    /// The config in force (what notifications follow).
    fn remember(&self, config: &Config) {
        if let Ok(mut current) = self.config.lock() {
            *current = Some(config.clone());
        }
    }

    async fn start_into(
        &self,
        engine: &mut Option<EngineHandle>,
        config: Config,
    ) -> Result<watch::Receiver<Status>, ShellError> {
        let deps = Deps {
            secrets: self.secrets.clone(),
        };
        let handle = api::start(config, deps, self.events.clone())
            .await
            .map_err(|e| ShellError::Start(e.to_string()))?;
        let status = handle.status.clone();
        if let Ok(mut c) = self.control.lock() {
            *c = Control {
                commands: Some(handle.commands.clone()),
                status: status.clone(),
            };
        }
        self.open_endpoint(&handle).await;
        *engine = Some(handle);
        Ok(status)
    }

    /// Serves the control API for `handle`; without it the app still works, so a failure is
    /// a warning (e.g. `posternd run` already runs with this config).
    async fn open_endpoint(&self, handle: &EngineHandle) {
        // The endpoint of an engine that is gone would still answer.
        self.close_endpoint();
        let path = control::endpoint_path(&self.config_path);
        let (config_path, reloader) = (self.config_path.clone(), handle.reloader());
        let reload: ReloadFn = Arc::new(move || {
            let (config_path, reloader) = (config_path.clone(), reloader.clone());
            Box::pin(async move {
                let config = Config::load(&config_path).map_err(|e| e.to_string())?;
                let done = reloader.reload(config).await.map_err(|e| e.to_string())?;
                Ok(if done.changes.is_empty() {
                    "reloaded: nothing changed".to_string()
                } else {
                    format!("reloaded: {}", done.changes.join("; "))
                })
            })
        });
        let link = EngineLink {
            commands: handle.commands.clone(),
            status: handle.status.clone(),
            events: handle.events.clone(),
            reload,
            journal: handle.journal_path().to_path_buf(),
        };
        match control::server::serve(path, link).await {
            Ok(server) => {
                if let Ok(mut slot) = self.control_endpoint.lock() {
                    *slot = Some(server);
                }
            }
            Err(e) => {
                tracing::warn!("{e}");
                let _ = self.events.send(Event::Warning {
                    message: format!("the command line cannot reach this Postern: {e}"),
                    fix: None,
                });
            }
        }
    }

    fn close_endpoint(&self) {
        if let Ok(mut slot) = self.control_endpoint.lock() {
            slot.take();
        }
    }

    pub async fn shutdown(&self) {
        if let Some(old) = self.engine.lock().await.take() {
            self.close_endpoint();
            old.shutdown().await;
        }
    }

    /// The configuration in use, if the engine was started with one.
    pub fn config(&self) -> Option<Config> {
        self.config.lock().ok().and_then(|c| c.clone())
    }

    /// `[desktop] notifications` of the configuration in use; `POSTERN_NOTIFICATIONS=off`
    /// overrides it.
    pub fn notifications_enabled(&self) -> bool {
        postern_engine::notify::notifications_wanted(
            self.notifications_env.as_deref(),
            self.config().as_ref(),
        )
    }

    pub fn record(&self, event: &Event) {
        if let Ok(mut log) = self.activity.lock() {
            if log.len() == ACTIVITY_LEN {
                log.pop_front();
            }
            log.push_back(event.clone());
        }
    }

    pub fn activity(&self) -> Vec<Event> {
        self.activity
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}
