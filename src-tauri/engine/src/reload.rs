//! Applying a new configuration to a running engine (`Command::Reload`, see docs/architecture.md).
//!
//! A reload is all or nothing. The supervisor checks the new configuration, then asks the
//! [`Reconfigurer`] to prepare the parts that can fail — the delivery target, and the sockets
//! of `[inbound] listen` addresses that are new (bound before the old ones close) — and only
//! when they are ready does anything switch: new inbound sessions and ATRN turnarounds get the
//! new context, the supervisor takes the new servers, domains and timers, the link monitor the
//! new probe. Whatever is in flight (a dequeue, an inbound session) finishes as it started.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};

use futures_util::future::BoxFuture;
use tokio::sync::{Mutex, oneshot};

use crate::config::{Config, ConfigError, QueueServer};
use crate::deliver::DeliverError;
use crate::dequeue::{self, DequeueContext, Dequeuer};
use crate::events::{ArrivalSender, Event, EventSender};
use crate::outcome::Outcome;
use crate::secrets::SecretStore;
use crate::smtp_server::{Inbound, RebindError, SessionContext};

/// Why a reload did not happen. In every case nothing changed: the old configuration stays in
/// force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the new configuration is not valid, so nothing changed: {0}")]
    Invalid(#[source] ConfigError),
    #[error("{0}. Nothing changed: the old configuration stays in force")]
    Listen(#[from] RebindError),
    #[error(
        "{}; nothing changed: the old configuration stays in force",
        cannot_prepare(.0)
    )]
    Delivery(#[from] DeliverError),
    #[error("{0}; nothing changed: the old configuration stays in force")]
    InboundTls(#[from] crate::smtp_server::tls::InboundTlsError),
    #[error("the engine has stopped, so there is nothing to reload: start it again")]
    EngineGone,
}

/// The start of every message about a delivery target that cannot be used.
pub fn cannot_prepare(error: &DeliverError) -> String {
    format!("cannot prepare the delivery target: {error}. Fix [inbound] deliver")
}

/// A reload that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// What changed, in words (empty: the configuration was the same).
    pub changes: Vec<String>,
    /// The inbound listener's addresses now (port 0 resolved).
    pub listening: Vec<SocketAddr>,
}

/// A reload on its way to the supervisor; `reply` is `None` for [`crate::supervisor::Command::Reload`],
/// whose result is only reported as an event.
pub struct ReloadRequest {
    pub(crate) config: Box<Config>,
    pub(crate) secrets: Option<Arc<dyn SecretStore>>,
    pub(crate) reply: Option<oneshot::Sender<Result<Reloaded, ReloadError>>>,
}

/// Logs where the inbound listener is and where its mail goes (at start and after every
/// reload); `announce`: also sends the `Listening` event (at start, and when the addresses moved).
pub(crate) fn report_listening(
    events: &EventSender,
    addresses: &[SocketAddr],
    ctx: &SessionContext,
    announce: bool,
) {
    let addresses: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
    tracing::info!(
        "listening on {} and delivering to {}",
        addresses.join(", "),
        ctx.delivery.describe()
    );
    if announce {
        let _ = events.send(Event::Listening { addresses });
    }
}

/// The warning (log line and event) when a new configuration did not take.
pub fn not_reloaded(error: &dyn std::fmt::Display) -> String {
    format!("the configuration was not reloaded: {error}")
}

/// Checks `config` exactly as a load of the file would (it may have been built in code).
pub fn validate(config: &Config) -> Result<Config, ReloadError> {
    Config::parse(&config.to_toml(), Path::new("the new configuration"))
        .map_err(ReloadError::Invalid)
}

/// What differs between `old` and `new`, one line per part, for the log and the Activity window.
pub fn changes(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if old.domains != new.domains {
        out.push(format!(
            "domains: {} (were {})",
            new.domains.join(", "),
            old.domains.join(", ")
        ));
    }
    let labels = |servers: &[QueueServer]| -> Vec<String> {
        servers.iter().map(dequeue::server_label).collect()
    };
    let (old_labels, new_labels) = (labels(&old.queue_servers), labels(&new.queue_servers));
    let added: Vec<_> = new_labels
        .iter()
        .filter(|l| !old_labels.contains(l))
        .cloned()
        .collect();
    let removed: Vec<_> = old_labels
        .iter()
        .filter(|l| !new_labels.contains(l))
        .cloned()
        .collect();
    if !added.is_empty() {
        out.push(format!("queue servers added: {}", added.join(", ")));
    }
    if !removed.is_empty() {
        out.push(format!("queue servers removed: {}", removed.join(", ")));
    }
    for server in &new.queue_servers {
        let label = dequeue::server_label(server);
        let before = old
            .queue_servers
            .iter()
            .find(|s| dequeue::server_label(s) == label);
        if before.is_some_and(|b| b != server) {
            out.push(format!("queue server {label}: settings changed"));
        }
    }
    if added.is_empty() && removed.is_empty() && old_labels != new_labels {
        out.push("queue servers: new order".into());
    }
    let (oi, ni) = (&old.inbound, &new.inbound);
    if oi.listen != ni.listen {
        let list = |a: &[SocketAddr]| {
            a.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!(
            "listening on {} (was {})",
            list(&ni.listen),
            list(&oi.listen)
        ));
    }
    if oi.deliver != ni.deliver {
        out.push(format!("delivering to {} (was {})", ni.deliver, oi.deliver));
    }
    if oi.hostname != ni.hostname {
        out.push(format!("hostname: {} (was {})", ni.hostname, oi.hostname));
    }
    if (oi.max_message_size, oi.max_connections, oi.idle_timeout)
        != (ni.max_message_size, ni.max_connections, ni.idle_timeout)
    {
        out.push("inbound limits changed (for new sessions)".into());
    }
    if old.link.probe != new.link.probe {
        out.push(format!(
            "link probe: {} (was {})",
            new.link.probe, old.link.probe
        ));
    }
    if old.link.refetch_every != new.link.refetch_every {
        let every = new.link.refetch_every;
        out.push(if every.is_zero() {
            "refetch: only on link-up".into()
        } else {
            format!("refetch every {}", humantime::format_duration(every))
        });
    }
    if old.link.connect_back_timeout != new.link.connect_back_timeout {
        out.push(format!(
            "connect-back timeout: {}",
            humantime::format_duration(new.link.connect_back_timeout)
        ));
    }
    if old.outbound != new.outbound {
        out.push("[outbound] changed: restart Postern to apply it (the outbound relay keeps its start configuration)".into());
    }
    if old.backup_for != new.backup_for || old.backup != new.backup {
        out.push("[[backup_for]] or [backup] changed: restart Postern to apply it (the backup MX keeps its start configuration)".into());
    }
    out
}

/// The dequeuer the engine runs: a [`DequeueContext`] that a reload replaces (new EHLO name,
/// new delivery target for ATRN turnarounds, new secrets). A running dequeue keeps its own copy.
pub struct SwappableDequeuer {
    current: RwLock<DequeueContext>,
}

impl SwappableDequeuer {
    pub fn new(ctx: DequeueContext) -> SwappableDequeuer {
        SwappableDequeuer {
            current: RwLock::new(ctx),
        }
    }

    fn get(&self) -> DequeueContext {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn replace(&self, ctx: DequeueContext) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = ctx;
    }
}

impl Dequeuer for SwappableDequeuer {
    fn dequeue(
        &self,
        server: QueueServer,
        domains: Vec<String>,
    ) -> BoxFuture<'static, Vec<Outcome>> {
        self.get().dequeue(server, domains)
    }
}

/// Everything outside the supervisor that a reload changes: the inbound listener and the
/// dequeuer's context.
pub struct Reconfigurer {
    pub(crate) inbound: Mutex<Inbound>,
    pub(crate) dequeuer: Arc<SwappableDequeuer>,
    pub(crate) events: EventSender,
    pub(crate) arrivals: Option<ArrivalSender>,
    /// The backup MX of the start configuration, kept across reloads.
    pub(crate) backup: Option<Arc<crate::backup::server::BackupServer>>,
}

impl Reconfigurer {
    /// Prepares the delivery target and the new sockets, then switches; on error nothing
    /// changed. Returns the listener's addresses.
    pub async fn apply(
        &self,
        config: &Config,
        secrets: Option<Arc<dyn SecretStore>>,
    ) -> Result<Vec<SocketAddr>, ReloadError> {
        let mut inbound = self.inbound.lock().await;
        // Sockets first: closing them again undoes them, a created Maildir folder stays.
        let rebind = inbound.prepare(&config.inbound.listen).await?;
        let ctx = Arc::new(
            SessionContext::from_config(config, self.events.clone())?
                .with_tls(config)?
                .with_arrivals(self.arrivals.clone())
                .with_backup(self.backup.clone()),
        );
        let moved = inbound.configured() != config.inbound.listen;
        inbound.switch(rebind, ctx.clone()).await;
        let old = self.dequeuer.get();
        self.dequeuer.replace(DequeueContext {
            helo_name: config.inbound.hostname.clone(),
            secrets: secrets.unwrap_or(old.secrets),
            inbound: Some(ctx.clone()),
        });
        let listening = inbound.local_addrs();
        report_listening(&self.events, &listening, &ctx, moved);
        Ok(listening)
    }

    /// Closes the listener for good (engine shutdown).
    pub async fn close(&self) {
        self.inbound.lock().await.close().await;
    }
}
