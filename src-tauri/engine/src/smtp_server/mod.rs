//! The inbound SMTP server: the listener on `[inbound].listen` and the one session
//! implementation ([`session`]) that both the listener and the ATRN/TURN turnaround use.

pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::deliver::Delivery;
use crate::events::EventSender;
pub use session::{SessionEnd, SessionInfo, SessionSummary};

/// Limits and names of the inbound sessions.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub hostname: String,
    /// Lower-case domains we accept mail for.
    pub domains: Vec<String>,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_errors: u32,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Ends a session that goes on longer than this, whatever it does (ATRN turnarounds).
    pub session_timeout: Option<Duration>,
}

impl ServerSettings {
    pub fn from_config(config: &Config) -> ServerSettings {
        ServerSettings {
            hostname: config.inbound.hostname.clone(),
            domains: config
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            max_message_size: config.inbound.max_message_size,
            max_recipients: 100,
            max_errors: 20,
            idle_timeout: config.inbound.idle_timeout,
            max_connections: config.inbound.max_connections,
            session_timeout: None,
        }
    }
}

/// What every session needs.
#[derive(Debug)]
pub struct SessionContext {
    pub settings: ServerSettings,
    pub delivery: Delivery,
    pub events: EventSender,
}

impl SessionContext {
    /// The inbound sessions of `config`: its limits and its delivery target (prepared now, so a
    /// Maildir that cannot be created is reported at start).
    pub fn from_config(
        config: &Config,
        events: EventSender,
    ) -> Result<SessionContext, crate::deliver::DeliverError> {
        // The office server gets as long as a queuing server would give us, within reason.
        let forward_timeout = config.inbound.idle_timeout.min(Duration::from_secs(120));
        Ok(SessionContext {
            settings: ServerSettings::from_config(config),
            delivery: Delivery::open(
                &config.inbound.deliver,
                &config.inbound.hostname,
                forward_timeout,
            )?,
            events,
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}. {}", listen_fix(*addr, source))]
pub struct ListenError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

fn listen_fix(addr: SocketAddr, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            "Ports below 1024 need privileges: run posternd as a service with CAP_NET_BIND_SERVICE, \
             or listen on a high port (e.g. \"0.0.0.0:2525\") and forward port 25 to it on your router; \
             [inbound] listen = [\"{addr}\"] in postern.toml"
        ),
        std::io::ErrorKind::AddrInUse => format!(
            "Another program (perhaps a mail server) already listens on {addr}: stop it or choose another port in [inbound] listen"
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "{} is not an address of this machine: fix [inbound] listen",
            addr.ip()
        ),
        _ => "Check [inbound] listen in postern.toml".into(),
    }
}

/// Binds every address (before anything else starts, so errors show at once).
pub async fn bind(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, ListenError> {
    let mut out = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        out.push(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ListenError { addr, source })?,
        );
    }
    Ok(out)
}

/// Accepts sessions on `listeners` until `shutdown` turns true; then waits (up to 10 s) for the
/// running sessions, which end at their next command with 421.
pub async fn serve(
    listeners: Vec<TcpListener>,
    ctx: Arc<SessionContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(ctx.settings.max_connections.max(1)));
    let (accepted_tx, mut accepted_rx) = tokio::sync::mpsc::channel(64);
    let mut acceptors = JoinSet::new();
    for listener in listeners {
        let tx = accepted_tx.clone();
        acceptors.spawn(async move {
            loop {
                match listener.accept().await {
                    Ok(conn) => {
                        if tx.send(conn).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    drop(accepted_tx);
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            Some((stream, peer)) = accepted_rx.recv() => {
                let ctx = ctx.clone();
                let shutdown = shutdown.clone();
                let permit = limit.clone().try_acquire_owned();
                sessions.spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let info = SessionInfo { peer: Some(peer), tls: false, via: "inbound" };
                    match permit {
                        Ok(_permit) => {
                            session::run(stream, Vec::new(), info, &ctx, shutdown).await;
                        }
                        Err(_) => session::refuse_busy(stream, &ctx.settings.hostname).await,
                    }
                });
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    acceptors.abort_all();
    let drain = async { while sessions.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        sessions.abort_all();
    }
}
