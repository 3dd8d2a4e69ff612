//! The provider's vocabulary and its shared state: accounts, mechanisms, faults, what it holds
//! and what it observed. Every part of the provider (`server`, `relay`, `io`) uses these.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::cert::TestCert;

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
    pub(crate) fn is_plaintext(self) -> bool {
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
pub(crate) struct HeldEntry {
    pub(crate) id: u64,
    pub(crate) message: HeldMessage,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) held: Vec<HeldEntry>,
    pub(crate) next_id: u64,
    pub(crate) attempts: Vec<DeliveryAttempt>,
    pub(crate) auth: Vec<AuthAttempt>,
    pub(crate) transcript: Vec<String>,
    pub(crate) busy_domains: HashSet<String>,
    pub(crate) next_session: u64,
}

pub(crate) struct Shared {
    pub(crate) config: OdmrConfig,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) state: Mutex<State>,
    pub(crate) sessions_done: watch::Sender<u64>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic in a session must not hide the state from the test that inspects it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn log(&self, session: u64, from_provider: bool, text: &str) {
        let who = if from_provider { "P" } else { "C" };
        self.state()
            .transcript
            .push(format!("#{session} {who}: {text}"));
    }
}

/// The domain of an address (`user@d`, `<user@d>`), lower-cased.
pub(crate) fn domain_of(address: &str) -> String {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    address
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

pub(crate) fn in_domain(address: &str, domain: &str) -> bool {
    domain_of(address) == domain.to_ascii_lowercase()
}
