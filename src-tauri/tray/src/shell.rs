//! The tray's state: where the config lives, the running engine, the status of whichever
//! engine runs (one channel for the tray's life: Apply replaces the engine, not the channel),
//! and the last events for the Activity window. Plain Rust: no tray or window types.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use postern_engine::api::{self, Command, Deps, EngineHandle, ReloadError, Status};
use postern_engine::backup::server::{BackupServer, HeldStatus};
use postern_engine::config::Config;
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

pub struct Shell {
    pub config_path: PathBuf,
    /// The control endpoint, named once at start (before the wizard writes the file, whose
    /// path names it); the window process is told it.
    pub endpoint: PathBuf,
    pub events: EventSender,
    pub secrets: Arc<dyn SecretStore>,
    /// The running engine's commands (replaced when an engine starts; a reload keeps them).
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    /// The running engine's status, relayed (see [`Shell::follow`]).
    status: watch::Sender<Status>,
    engine: tokio::sync::Mutex<Option<EngineHandle>>,
    /// The running engine's journal file (`posternd log`, the dashboard).
    journal: Mutex<Option<PathBuf>>,
    activity: Mutex<VecDeque<Event>>,
    /// The configuration the engine was last (re)started with: set at start and on every save.
    config: Mutex<Option<Config>>,
    /// `POSTERN_NOTIFICATIONS`, read once at start.
    notifications_env: Option<String>,
    /// The running engine's backup MX (`[[backup_for]]`), for the tray's lines and the status.
    backup: Mutex<Option<Arc<BackupServer>>>,
}

impl Shell {
    pub fn new(config_path: PathBuf, secrets: Arc<dyn SecretStore>) -> Shell {
        let (events, _) = postern_engine::events::channel();
        Shell {
            endpoint: postern_engine::control::endpoint_path(&config_path),
            config_path,
            events,
            secrets,
            commands: Mutex::new(None),
            status: watch::Sender::new(Status::default()),
            engine: tokio::sync::Mutex::new(None),
            journal: Mutex::new(None),
            activity: Mutex::new(VecDeque::new()),
            config: Mutex::new(None),
            notifications_env: std::env::var("POSTERN_NOTIFICATIONS").ok(),
            backup: Mutex::new(None),
        }
    }

    /// A shell driven by the given channels instead of a real engine (tests); needs a tokio
    /// runtime.
    pub fn with_channels(
        config_path: PathBuf,
        secrets: Arc<dyn SecretStore>,
        commands: mpsc::Sender<Command>,
        status: watch::Receiver<Status>,
    ) -> Shell {
        let shell = Shell::new(config_path, secrets);
        if let Ok(mut c) = shell.commands.lock() {
            *c = Some(commands);
        }
        shell.follow(status);
        shell
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// The status of whichever engine runs, for the tray's life.
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    pub fn journal(&self) -> Option<PathBuf> {
        self.journal.lock().ok().and_then(|j| j.clone())
    }

    pub fn commands(&self) -> Option<mpsc::Sender<Command>> {
        self.commands.lock().ok().and_then(|c| c.clone())
    }

    pub async fn send(&self, command: Command) -> Result<(), ShellError> {
        let sender = self.commands().ok_or(ShellError::NotRunning)?;
        sender
            .send(command)
            .await
            .map_err(|_| ShellError::EngineGone)
    }

    /// Starts the engine with `config` (at start: none runs yet).
    pub async fn start(&self, config: Config) -> Result<(), ShellError> {
        // Recorded before the start, so a config that fails to start still rules notifications.
        self.remember(&config);
        let mut engine = self.engine.lock().await;
        if let Some(old) = engine.take() {
            old.shutdown().await;
        }
        self.start_into(&mut engine, config).await
    }

    /// Apply: reloads the running engine with `config` (if that fails, nothing changed), or
    /// starts one when none runs (after the wizard, or when the last start failed). Says what
    /// changed.
    pub async fn apply(&self, config: Config) -> Result<String, ShellError> {
        let mut engine = self.engine.lock().await;
        if let Some(running) = engine.as_ref() {
            match running.reload(config.clone()).await {
                Ok(done) => {
                    self.remember(&config);
                    return Ok(if done.changes.is_empty() {
                        "reloaded: nothing changed".to_string()
                    } else {
                        format!("reloaded: {}", done.changes.join("; "))
                    });
                }
                Err(ReloadError::EngineGone) => *engine = None,
                Err(e) => return Err(ShellError::Reload(e.to_string())),
            }
        }
        self.remember(&config);
        self.start_into(&mut engine, config).await?;
        Ok("started".into())
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
    ) -> Result<(), ShellError> {
        let deps = Deps {
            secrets: self.secrets.clone(),
        };
        let handle = api::start(config, deps, self.events.clone())
            .await
            .map_err(|e| ShellError::Start(e.to_string()))?;
        if let Ok(mut c) = self.commands.lock() {
            *c = Some(handle.commands.clone());
        }
        if let Ok(mut j) = self.journal.lock() {
            *j = Some(handle.journal_path().to_path_buf());
        }
        if let Ok(mut b) = self.backup.lock() {
            *b = handle.backup();
        }
        self.follow(handle.status.clone());
        *engine = Some(handle);
        Ok(())
    }

    /// Relays one engine's status until that engine stops.
    fn follow(&self, mut engine: watch::Receiver<Status>) {
        let relay = self.status.clone();
        tokio::spawn(async move {
            loop {
                relay.send_replace(engine.borrow_and_update().clone());
                if engine.changed().await.is_err() {
                    break;
                }
            }
        });
    }

    pub async fn shutdown(&self) {
        if let Some(old) = self.engine.lock().await.take() {
            if let Ok(mut c) = self.commands.lock() {
                *c = None;
            }
            if let Ok(mut b) = self.backup.lock() {
                *b = None;
            }
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

    /// The backup MX's held mail per domain (reads its spool folder); empty without one.
    pub async fn backup_status(&self) -> Vec<HeldStatus> {
        let Some(backup) = self.backup.lock().ok().and_then(|b| b.clone()) else {
            return Vec::new();
        };
        tokio::task::spawn_blocking(move || backup.status())
            .await
            .unwrap_or_default()
    }

    pub fn activity(&self) -> Vec<Event> {
        self.activity
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}
