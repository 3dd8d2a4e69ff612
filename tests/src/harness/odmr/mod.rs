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
mod relay;
mod sasl;
mod server;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub use cert::TestCert;

/// A customer account of the provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub password: String,
    /// The domains this user may release with ATRN/TURN.
    pub domains: Vec<String>,
}

/// SASL mechanisms the provider can offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "LOGIN")]
    Login,
    #[serde(rename = "CRAM-MD5")]
    CramMd5,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
}

impl Mechanism {
    pub const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::CramMd5,
        Mechanism::ScramSha256,
    ];

    /// The IANA name used in EHLO and AUTH.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// Mechanisms that send the password in the clear.
    fn is_plaintext(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::Login)
    }
}

/// Misbehaviour to inject into ATRN/TURN handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// After the turnaround: MAIL/RCPT/DATA, half of the first message, then the TCP connection
    /// is dropped (no TLS close_notify). The message stays held.
    StopMidData,
    /// Answers 250 to ATRN/TURN, then never sends another byte; the socket stays open until the
    /// provider shuts down or the customer closes it.
    SilentAfter250,
    /// `451 Unable to process ATRN request now`.
    Reply451,
    /// `450 ATRN request refused`.
    Reply450,
    /// `502 Command not implemented`.
    NotImplemented502,
}

/// A message waiting at the provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldMessage {
    pub from: String,
    /// Plain addresses (`user@office.test`, no angle brackets).
    pub rcpts: Vec<String>,
    /// The message as it goes after DATA (CRLF line ends, ending with CRLF), before dot-stuffing.
    pub data: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct OdmrConfig {
    /// Used in the greeting, in EHLO after the turnaround and in CRAM-MD5 challenges.
    pub hostname: String,
    pub users: Vec<User>,
    pub mechanisms: Vec<Mechanism>,
    pub tls: Option<TestCert>,
    /// Offer and accept PLAIN and LOGIN before STARTTLS.
    pub allow_plain_without_tls: bool,
    pub turn_enabled: bool,
    pub fault: Option<Fault>,
    pub held: Vec<HeldMessage>,
    /// Applies to every read and write of the provider (both roles).
    pub idle_timeout: Duration,
}

impl Default for OdmrConfig {
    fn default() -> Self {
        OdmrConfig {
            hostname: "odmr-provider.test".to_string(),
            users: Vec::new(),
            mechanisms: Mechanism::ALL.to_vec(),
            tls: None,
            allow_plain_without_tls: false,
            turn_enabled: false,
            fault: None,
            held: Vec::new(),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// One delivery attempt in a reversed session, successful or not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeliveryAttempt {
    pub session: u64,
    pub from: String,
    /// The recipients offered in this session (only those in the released domains).
    pub rcpts: Vec<String>,
    /// The recipients the customer accepted with 2xx.
    pub accepted: Vec<String>,
    #[serde(skip)]
    pub data: Vec<u8>,
    /// The customer's reply that decided the attempt: after the final dot, or to MAIL, RCPT or
    /// DATA when the transaction stopped there. `None` when the connection ended first.
    pub reply: Option<String>,
    /// True when the customer answered 250 after the final dot.
    pub delivered: bool,
}

/// A message the customer took (250 after the final dot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeliveredMessage {
    pub session: u64,
    pub from: String,
    pub rcpts: Vec<String>,
    #[serde(skip)]
    pub data: Vec<u8>,
    /// The customer's complete final reply (last line), e.g. `250 2.0.0 Ok: queued as X`.
    pub reply: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum AuthOutcome {
    Success,
    /// 535: wrong user or password, or a bad proof.
    BadCredentials,
    /// The client sent `*`.
    Cancelled,
    /// 501: undecodable or malformed response.
    Malformed,
    /// 538: a plaintext mechanism before TLS.
    EncryptionRequired,
    /// 504: unknown or not offered.
    UnknownMechanism,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthAttempt {
    pub session: u64,
    /// As the client named it (upper-cased).
    pub mechanism: String,
    pub user: Option<String>,
    pub outcome: AuthOutcome,
}

#[derive(Clone, Debug)]
struct HeldEntry {
    id: u64,
    message: HeldMessage,
}

#[derive(Default)]
struct State {
    held: Vec<HeldEntry>,
    next_id: u64,
    attempts: Vec<DeliveryAttempt>,
    auth: Vec<AuthAttempt>,
    transcript: Vec<String>,
    busy_domains: HashSet<String>,
    next_session: u64,
}

pub(crate) struct Shared {
    config: OdmrConfig,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Mutex<State>,
    sessions_done: watch::Sender<u64>,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic in a session must not hide the state from the test that inspects it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn log(&self, session: u64, from_provider: bool, text: &str) {
        let who = if from_provider { "P" } else { "C" };
        self.state()
            .transcript
            .push(format!("#{session} {who}: {text}"));
    }
}

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

/// The domain of an address (`user@d`, `<user@d>`), lower-cased.
fn domain_of(address: &str) -> String {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

fn in_domain(address: &str, domain: &str) -> bool {
    domain_of(address) == domain.to_ascii_lowercase()
}
