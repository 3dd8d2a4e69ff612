//! The engine's one entry point: [`start`] a configuration, get an [`EngineHandle`].
//!
//! Front ends send [`Command`]s, watch the [`Status`] and subscribe to [`Event`]s. Inside, the
//! inbound listener runs on its own and the supervisor decides when to dequeue.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::deliver::DeliverError;
use crate::dequeue::DequeueContext;
use crate::dequeue::reply::Outcome;
use crate::events::{Event, EventSender};
use crate::secrets::SecretStore;
use crate::smtp_server::{self, ListenError, SessionContext};

/// What a front end can ask for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    FetchNow,
    Pause,
    Resume,
    Shutdown,
}

/// The engine's state as front ends show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub paused: bool,
    pub fetching: bool,
    /// Messages received since start.
    pub messages_received: u64,
    /// The outcomes of the last dequeue of each server.
    pub last_fetch: Vec<Outcome>,
    /// When the last dequeue finished (RFC 3339).
    pub last_fetch_at: Option<String>,
}

/// What the engine needs from its host besides the configuration.
#[derive(Clone)]
pub struct Deps {
    pub secrets: Arc<dyn SecretStore>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot prepare the delivery target: {0}. Fix [inbound] deliver in postern.toml")]
    Delivery(#[from] DeliverError),
}

pub struct EngineHandle {
    pub commands: mpsc::Sender<Command>,
    pub status: watch::Receiver<Status>,
    pub events: EventSender,
    pub local_addrs: Vec<std::net::SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl EngineHandle {
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Asks the engine to stop and waits for it.
    pub async fn shutdown(self) {
        let _ = self.commands.send(Command::Shutdown).await;
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Waits until the engine stopped by itself (after a Shutdown command).
    pub async fn join(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Binds the inbound listener, prepares the delivery target and starts the supervisor.
/// `events` lets the caller subscribe before the first event is sent.
pub async fn start(
    config: Config,
    deps: Deps,
    events: EventSender,
) -> Result<EngineHandle, StartError> {
    let ctx = Arc::new(SessionContext::from_config(&config, events.clone())?);
    let listeners = smtp_server::bind(&config.inbound.listen).await?;
    let local_addrs: Vec<_> = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (command_tx, command_rx) = mpsc::channel(32);
    let (status_tx, status_rx) = watch::channel(Status::default());

    tracing::info!(
        "listening on {} and delivering to {}",
        local_addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        ctx.delivery.describe()
    );
    let _ = events.send(Event::Listening {
        addresses: local_addrs.iter().map(|a| a.to_string()).collect(),
    });
    let dequeue_ctx = DequeueContext {
        helo_name: config.inbound.hostname.clone(),
        secrets: deps.secrets,
        inbound: Some(ctx.clone()),
    };
    let server = tokio::spawn(smtp_server::serve(listeners, ctx, shutdown_rx));
    let supervisor = tokio::spawn(crate::supervisor::run(
        config,
        dequeue_ctx,
        command_rx,
        status_tx,
        events.clone(),
        shutdown_tx,
    ));
    Ok(EngineHandle {
        commands: command_tx,
        status: status_rx,
        events,
        local_addrs,
        tasks: vec![supervisor, server],
    })
}
