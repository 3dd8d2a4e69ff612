//! The submission listener on `[outbound] listen`, and the start of the whole relay.
//!
//! It is the inbound session machinery with another policy: the same limits, timeouts, bare
//! CR/LF rules and STARTTLS certificate as `[inbound]`, but any recipient is accepted from a
//! client in `allow` (everyone else gets `550 5.7.1 Relaying denied`), and an accepted message
//! goes into the outbound spool, with a `Received:` line and, when missing, `Date:` and
//! `Message-ID:` (RFC 6409 §8). 250 only once it is durable there.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::queue::QueueAction;
use super::retry::Schedule;
use super::runner::{self, QueueContext};
use super::smarthost::Smarthost;
use super::spool::{Spool, SpoolError};
use crate::config::{Config, Outbound};
use crate::deliver::{DeliverError, Delivery};
use crate::events::EventSender;
use crate::secrets::SecretStore;
use crate::smtp_server::{Inbound, ListenError, ServerSettings, SessionContext};
use crate::supervisor::Status;

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("the submission listener ([outbound] listen): {0}")]
    Listen(#[from] ListenError),
    #[error("the outbound relay: {0}")]
    Delivery(#[from] DeliverError),
    #[error("the submission listener's STARTTLS: {0}")]
    Tls(#[from] crate::smtp_server::tls::InboundTlsError),
}

/// The running relay.
pub struct OutboundRelay {
    /// The submission listener's addresses (port 0 resolved).
    pub local_addrs: Vec<SocketAddr>,
    /// Flush, retry and drop for the queue task.
    pub actions: mpsc::UnboundedSender<QueueAction>,
    pub tasks: Vec<JoinHandle<()>>,
    /// The spool as the submission listener writes it (each new message reaches the queue task).
    pub spool: Spool,
}

/// The submission sessions' settings: `[inbound]`'s limits with the relay policy of `allow`.
pub fn submission_settings(config: &Config, outbound: &Outbound) -> ServerSettings {
    ServerSettings {
        relay_from: Some(outbound.allow.clone()),
        ..ServerSettings::from_config(config)
    }
}

pub fn schedule(outbound: &Outbound) -> Schedule {
    Schedule {
        retry_min: outbound.retry_min,
        retry_max: outbound.retry_max,
        max_queue_lifetime: outbound.max_queue_lifetime,
        delay_warning: outbound.delay_warning,
    }
}

/// Opens and recovers the spool, binds the submission listener and starts the queue task.
/// `None` without an `[outbound]` section.
pub async fn start(
    config: &Config,
    secrets: Arc<dyn SecretStore>,
    events: EventSender,
    status_out: watch::Sender<Status>,
    shutdown: watch::Receiver<bool>,
) -> Result<Option<OutboundRelay>, OutboundError> {
    let status = status_out.subscribe();
    let Some(outbound) = &config.outbound else {
        return Ok(None);
    };
    let hostname = config.inbound.hostname.clone();
    let (feed_tx, feed_rx) = mpsc::unbounded_channel();
    let spool_dir = outbound.spool_dir(&config.state_dir);
    let (spool, recovered) = Spool::open(&spool_dir, &hostname)?;
    let spool = spool.with_feed(feed_tx);
    tracing::info!(
        queued = recovered.records.len(),
        removed = recovered.removed,
        "outbound spool {}",
        spool_dir.display()
    );
    let forward_timeout = config
        .inbound
        .idle_timeout
        .min(std::time::Duration::from_secs(120));
    let local = Delivery::open(&config.inbound.deliver, &hostname, forward_timeout)?;
    let ctx = SessionContext {
        settings: submission_settings(config, outbound),
        delivery: Delivery::Spool(spool.clone()),
        events: events.clone(),
        arrivals: None,
        tls: None,
    }
    .with_tls(config)?;
    let (mut inbound, sessions) = Inbound::bind(&outbound.listen, Arc::new(ctx)).await?;
    let local_addrs = inbound.local_addrs();
    tracing::info!("submission listener on {local_addrs:?}");
    let server_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        let draining = sessions
            .with_via(crate::smtp_server::VIA_SUBMISSION)
            .run(server_shutdown)
            .await;
        inbound.close().await;
        draining.finish().await;
    });
    let queue = Arc::new(QueueContext {
        spool: spool.clone(),
        smarthost: Smarthost::from_config(outbound, &hostname, secrets),
        local,
        domains: config.domains.clone(),
        hostname,
        schedule: schedule(outbound),
        events,
        status: Some(status_out),
        stuck_reported: Default::default(),
    });
    let (actions_tx, actions_rx) = mpsc::unbounded_channel();
    // Mail held for a neighbour (backup MX) shares the folder but is the backup server's.
    let own: Vec<_> = recovered
        .records
        .into_iter()
        .filter(|r| r.held_for.is_none())
        .collect();
    let runner = tokio::spawn(runner::run(
        queue, own, feed_rx, status, actions_rx, shutdown,
    ));
    Ok(Some(OutboundRelay {
        local_addrs,
        actions: actions_tx,
        tasks: vec![server, runner],
        spool,
    }))
}
