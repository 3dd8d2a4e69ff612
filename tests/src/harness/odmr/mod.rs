//! A strict On-Demand Mail Relay provider (RFC 2645), used as a test peer for Postern's
//! ATRN/TURN client.
//!
//! The provider is an ESMTP server (EHLO/HELO, STARTTLS, AUTH PLAIN/LOGIN/CRAM-MD5/SCRAM-SHA-256,
//! PIPELINING) that holds messages for customer domains. After a successful `ATRN` (or `TURN`,
//! RFC 821, when enabled) the roles swap on the same stream: the customer greets with 220 and the
//! provider delivers the held mail as an SMTP client, pipelining when the customer offers it.
//! A message leaves the held store only when the customer answered 250 after the final dot.
//!
//! Faults can be injected ([`Fault`]) and everything the tests need is observable: held counts,
//! delivery attempts with the customer's replies, AUTH attempts, and a transcript of both
//! directions. `tests/src/bin/odmr-provider.rs` runs the same provider as a standalone process.

mod cert;
mod io;
mod model;
mod relay;
mod sasl;
mod server;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use cert::TestCert;
pub use model::{
    AuthAttempt, AuthOutcome, DeliveredMessage, DeliveryAttempt, Fault, HeldMessage, Mechanism,
    OdmrConfig, User,
};
use model::{HeldEntry, Shared, State, in_domain};

/// The running provider; dropping it stops the accept loop and every session.
pub struct OdmrProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}; pick a free port (0 lets the OS choose)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the TLS certificate was not accepted: {0}; generate it with TestCert::generate")]
    Tls(#[from] rustls::Error),
}

impl OdmrProvider {
    /// Binds `bind` (port 0 allowed) and serves until dropped or [`OdmrProvider::shutdown`].
    pub async fn start(config: OdmrConfig, bind: SocketAddr) -> Result<OdmrProvider, StartError> {
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| StartError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr: bind, source })?;
        let tls = match &config.tls {
            Some(cert) => Some(cert.acceptor()?),
            None => None,
        };
        let mut state = State::default();
        for message in &config.held {
            state.held.push(HeldEntry {
                id: state.next_id,
                message: message.clone(),
            });
            state.next_id += 1;
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (sessions_done, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            config,
            tls,
            state: Mutex::new(state),
            sessions_done,
            shutdown: shutdown_rx,
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(OdmrProvider {
            addr,
            shared,
            shutdown,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Messages still held with at least one recipient in `domain` (case-insensitive).
    pub fn held(&self, domain: &str) -> usize {
        self.shared
            .state()
            .held
            .iter()
            .filter(|e| e.message.rcpts.iter().any(|r| in_domain(r, domain)))
            .count()
    }

    /// Every held message, with the recipients not yet delivered.
    pub fn held_messages(&self) -> Vec<HeldMessage> {
        self.shared
            .state()
            .held
            .iter()
            .map(|e| e.message.clone())
            .collect()
    }

    /// Messages the customer answered 250 after the final dot, in order.
    pub fn delivered(&self) -> Vec<DeliveredMessage> {
        self.shared
            .state()
            .attempts
            .iter()
            .filter(|a| a.delivered)
            .map(|a| DeliveredMessage {
                session: a.session,
                from: a.from.clone(),
                rcpts: a.accepted.clone(),
                data: a.data.clone(),
                reply: a.reply.clone().unwrap_or_default(),
            })
            .collect()
    }

    /// Every delivery attempt, including refused and interrupted ones.
    pub fn attempts(&self) -> Vec<DeliveryAttempt> {
        self.shared.state().attempts.clone()
    }

    /// Every AUTH command seen, in order.
    pub fn auth_attempts(&self) -> Vec<AuthAttempt> {
        self.shared.state().auth.clone()
    }

    /// Lines `#<session> P: ...` (provider wrote) and `#<session> C: ...` (customer wrote).
    pub fn transcript(&self) -> Vec<String> {
        self.shared.state().transcript.clone()
    }

    /// Sessions that have ended so far.
    pub fn sessions_finished(&self) -> u64 {
        *self.shared.sessions_done.borrow()
    }

    /// Waits until at least `n` sessions have ended, or `limit` passes (then false).
    pub async fn wait_sessions_finished(&self, n: u64, limit: Duration) -> bool {
        let mut rx = self.shared.sessions_done.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|done| *done >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops accepting and ends every session (a `SilentAfter250` socket is closed here).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for OdmrProvider {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut sessions = JoinSet::new();
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let id = {
                    let mut state = shared.state();
                    state.next_session += 1;
                    state.next_session
                };
                let shared = shared.clone();
                sessions.spawn(async move {
                    shared.log(id, false, &format!("[connected from {peer}]"));
                    server::run(stream, id, &shared).await;
                    shared.log(id, true, "[session ended]");
                    shared.sessions_done.send_modify(|n| *n += 1);
                });
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    sessions.shutdown().await;
}
