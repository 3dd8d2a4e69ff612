//! The engine's one entry point: [`start`] a configuration, get an [`EngineHandle`].
//!
//! Front ends send [`Command`]s, watch the [`Status`] and subscribe to [`Event`]s. Inside, the
//! inbound listener runs on its own and the supervisor decides when to dequeue.
//! [`EngineHandle::reload`] applies a new configuration without a restart ([`crate::reload`]).

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::backup::odmr::session::OdmrContext;
use crate::backup::server::BackupServer;
use crate::config::Config;
use crate::deliver::DeliverError;
use crate::dequeue::DequeueContext;
use crate::events::{Event, EventSender};
use crate::journal::JournalHandle;
use crate::link::{LinkMonitor, MonitorSettings};
use crate::reload::{Reconfigurer, ReloadRequest, SwappableDequeuer};
pub use crate::reload::{ReloadError, Reloaded};
use crate::secrets::SecretStore;
use crate::smtp_server::{Inbound, ListenError, SessionContext};
pub use crate::supervisor::{Command, ServerStatus, Status};
use crate::supervisor::{Inputs, Outputs, SupervisorDeps};

/// What the engine needs from its host besides the configuration.
#[derive(Clone)]
pub struct Deps {
    pub secrets: Arc<dyn SecretStore>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("{} in postern.toml", crate::reload::cannot_prepare(.0))]
    Delivery(#[from] DeliverError),
    #[error(transparent)]
    InboundTls(#[from] crate::smtp_server::tls::InboundTlsError),
    #[error(transparent)]
    Outbound(#[from] crate::outbound::listener::OutboundError),
    #[error("the backup MX ([[backup_for]]): {0}")]
    Backup(#[from] crate::outbound::spool::SpoolError),
}

pub struct EngineHandle {
    pub commands: mpsc::Sender<Command>,
    pub status: watch::Receiver<Status>,
    pub events: EventSender,
    /// The inbound listener's addresses at start ([`Reloaded::listening`] after a reload).
    pub local_addrs: Vec<std::net::SocketAddr>,
    /// The submission listener's addresses (`[outbound] listen`; empty without it).
    pub outbound_addrs: Vec<std::net::SocketAddr>,
    reloader: Reloader,
    tasks: Vec<JoinHandle<()>>,
    journal_path: std::path::PathBuf,
    /// `None` with `[journal] enabled = false`.
    journal: Option<JournalHandle>,
    backup: Option<Arc<BackupServer>>,
}

/// Reloads a running engine; cheap to clone (e.g. into a signal handler).
#[derive(Clone)]
pub struct Reloader {
    tx: mpsc::Sender<ReloadRequest>,
}

impl Reloader {
    /// Applies `config` without a restart and says how it went; on error nothing changed.
    pub async fn reload(&self, config: Config) -> Result<Reloaded, ReloadError> {
        self.send(config, None).await
    }

    /// [`Reloader::reload`] with new dependencies (a keyring opened for a config that now logs in).
    pub async fn reload_with(&self, config: Config, deps: Deps) -> Result<Reloaded, ReloadError> {
        self.send(config, Some(deps.secrets)).await
    }

    async fn send(
        &self,
        config: Config,
        secrets: Option<Arc<dyn SecretStore>>,
    ) -> Result<Reloaded, ReloadError> {
        let (reply, answer) = oneshot::channel();
        let request = ReloadRequest {
            config: Box::new(config),
            secrets,
            reply: Some(reply),
        };
        self.tx
            .send(request)
            .await
            .map_err(|_| ReloadError::EngineGone)?;
        answer.await.map_err(|_| ReloadError::EngineGone)?
    }
}

impl EngineHandle {
    /// Applies `config` without a restart: see [`crate::reload`]. On error nothing changed.
    pub async fn reload(&self, config: Config) -> Result<Reloaded, ReloadError> {
        self.reloader.reload(config).await
    }

    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The backup MX (`[[backup_for]]`), when there is one.
    pub fn backup(&self) -> Option<Arc<BackupServer>> {
        self.backup.clone()
    }

    /// The mail-flow journal this engine writes ([`crate::journal::query::run`] reads it).
    pub fn journal_path(&self) -> &std::path::Path {
        &self.journal_path
    }

    /// Asks the engine to stop and waits for it.
    pub async fn shutdown(self) {
        let _ = self.commands.send(Command::Shutdown).await;
        self.join().await;
    }

    /// Waits until the engine stopped by itself (after a Shutdown command), then writes the
    /// journal's last entries.
    pub async fn join(self) {
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(journal) = self.journal {
            journal.close().await;
        }
    }
}

/// Binds the inbound listener, prepares the delivery target and starts the supervisor with
/// the OS link watcher. `events` lets the caller subscribe before the first event is sent.
pub async fn start(
    config: Config,
    deps: Deps,
    events: EventSender,
) -> Result<EngineHandle, StartError> {
    let link = LinkMonitor::spawn(MonitorSettings::from_config(&config));
    start_with_link(config, deps, events, link).await
}

/// [`start`] with a given link monitor (e.g. [`LinkMonitor::manual`]).
pub async fn start_with_link(
    config: Config,
    deps: Deps,
    events: EventSender,
    link: LinkMonitor,
) -> Result<EngineHandle, StartError> {
    // First, so that it sees every event from the listener's on.
    let journal_path = crate::journal::path(&config.state_dir);
    let journal = config
        .journal
        .enabled
        .then(|| crate::journal::start(journal_path.clone(), config.journal.retention, &events));
    let (arrivals_tx, arrivals) = mpsc::unbounded_channel();
    let backup = match BackupServer::from_config(&config, events.clone()) {
        Some(b) => {
            let held = b.open_spool()?;
            tracing::info!(held, "backup MX for {} domain(s)", b.entries.len());
            Some(Arc::new(b))
        }
        None => None,
    };
    let ctx = Arc::new(
        SessionContext::from_config(&config, events.clone())?
            .with_tls(&config)?
            .with_arrivals(Some(arrivals_tx.clone()))
            .with_backup(backup.clone()),
    );
    let (inbound, sessions) = Inbound::bind(&config.inbound.listen, ctx.clone()).await?;
    let local_addrs = inbound.local_addrs();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let sweep_shutdown = shutdown_rx.clone();
    let odmr_tasks = match &backup {
        Some(b) if !config.backup.odmr_listen.is_empty() => {
            let ctx = Arc::new(OdmrContext {
                backup: b.clone(),
                tls: Some(crate::smtp_server::tls::server_config(&config)?),
                secrets: deps.secrets.clone(),
                idle_timeout: config.inbound.idle_timeout,
                session_limit: config.inbound.max_session_time,
            });
            crate::backup::odmr::listener::start(
                &config.backup.odmr_listen,
                ctx,
                shutdown_rx.clone(),
            )
            .await?
            .1
        }
        _ => Vec::new(),
    };
    let (command_tx, command_rx) = mpsc::channel(32);
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let (status_tx, status_rx) = watch::channel(Status::default());

    crate::reload::report_listening(&events, &local_addrs, &ctx, true);
    let outbound = crate::outbound::listener::start(
        &config,
        deps.secrets.clone(),
        events.clone(),
        status_tx.clone(),
        shutdown_rx.clone(),
    )
    .await?;
    let dequeuer = Arc::new(SwappableDequeuer::new(DequeueContext {
        helo_name: config.inbound.hostname.clone(),
        secrets: deps.secrets,
        inbound: Some(ctx),
    }));
    let reconfigurer = Arc::new(Reconfigurer {
        inbound: tokio::sync::Mutex::new(inbound),
        dequeuer: dequeuer.clone(),
        events: events.clone(),
        arrivals: Some(arrivals_tx),
        backup: backup.clone(),
    });
    let mut supervisor_deps = SupervisorDeps::new(dequeuer);
    supervisor_deps.reconfigurer = Some(reconfigurer.clone());
    supervisor_deps.outbound = outbound.as_ref().map(|o| o.actions.clone());
    let server = tokio::spawn(async move {
        let draining = sessions.run(shutdown_rx).await;
        reconfigurer.close().await;
        draining.finish().await;
    });
    let config_retry = config
        .outbound
        .as_ref()
        .map_or(crate::config::outbound_defaults::RETRY_MIN, |o| o.retry_min);
    let supervisor = tokio::spawn(crate::supervisor::run(
        config,
        supervisor_deps,
        Inputs {
            link,
            commands: command_rx,
            reloads: reload_rx,
            arrivals,
        },
        Outputs {
            status: status_tx,
            events: events.clone(),
            shutdown: shutdown_tx,
        },
    ));
    let mut tasks = vec![supervisor, server];
    tasks.extend(odmr_tasks);
    let mut outbound_addrs = Vec::new();
    if let (Some(b), Some(relay)) = (&backup, &outbound) {
        b.set_outbound(relay.spool.clone());
    }
    if let Some(relay) = outbound {
        outbound_addrs = relay.local_addrs;
        tasks.extend(relay.tasks);
    }
    if let Some(b) = backup.clone() {
        let retry = config_retry;
        tasks.push(tokio::spawn(crate::backup::sweep::run(
            b,
            crate::backup::sweep::SWEEP_EVERY,
            retry,
            sweep_shutdown,
        )));
    }
    Ok(EngineHandle {
        commands: command_tx,
        status: status_rx,
        events,
        local_addrs,
        outbound_addrs,
        reloader: Reloader { tx: reload_tx },
        tasks,
        journal_path,
        journal,
        backup,
    })
}
