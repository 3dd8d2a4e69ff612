//! The engine's outward voice. Every front end (the tray app, `posternd run --events`, the tests)
//! renders the same events; all of them are serde, one JSON object each.
//!
//! Also the one inward signal: [`Arrival`], what the inbound sessions tell the supervisor. The
//! broadcast may drop events for a slow reader; the arrival channel does not, because the
//! connect-back watchdog and the burst count depend on every one.

use serde::{Deserialize, Serialize};

use crate::config::Protocol;
use crate::outcome::Outcome;

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The inbound listener is ready.
    Listening {
        addresses: Vec<String>,
    },
    /// A dequeue from one queuing server starts.
    FetchStarted {
        server: String,
        protocol: Protocol,
        domains: Vec<String>,
    },
    /// A dequeue from one queuing server ended: one outcome per domain.
    FetchFinished {
        server: String,
        outcomes: Vec<Outcome>,
    },
    /// Someone connected to deliver mail (the queuing server after ETRN), or an ATRN/TURN
    /// turnaround began (`via` = "atrn"/"turn").
    InboundSessionStarted {
        peer: String,
        via: String,
    },
    /// A message is durable in the Maildir or accepted by the office server (`via` "inbound",
    /// "atrn"/"turn"), or in the outbound spool (`via` "submission": from the office's own
    /// computers, on its way out).
    MessageReceived {
        id: String,
        from: String,
        to: Vec<String>,
        size: u64,
        peer: String,
        via: String,
        location: String,
    },
    /// A message was refused after DATA (too big, storage error, office server refused).
    MessageRefused {
        peer: String,
        via: String,
        code: u16,
        reason: String,
    },
    InboundSessionEnded {
        peer: String,
        via: String,
        messages: u32,
        end: String,
    },
    /// Something the user should know about, with what to do.
    Warning {
        message: String,
        fix: Option<String>,
    },
    /// The link watcher decided the link went up or down (`reason`: what triggered the probe
    /// and what it found).
    LinkChanged {
        up: bool,
        reason: String,
    },
    /// A dequeue from `server` failed temporarily; the domains are asked again in `in_seconds`.
    RetryScheduled {
        server: String,
        attempt: u32,
        in_seconds: u64,
        domains: Vec<String>,
    },
    /// A dequeue failed in a way retrying cannot fix (a 5xx, 459, TLS or login problem): no
    /// automatic retry; `fix` says what to change.
    FetchFailed {
        server: String,
        domain: String,
        code: Option<u16>,
        text: String,
        meaning: String,
        fix: Option<String>,
    },
    /// Inbound deliveries stopped for a quiet period: `messages` arrived in that burst.
    /// `server` is the queuing server whose accepted ETRN preceded them, when there was one.
    DequeueComplete {
        server: Option<String>,
        messages: u64,
    },
    /// A queuing server accepted ETRN, but nothing connected back within `waited_seconds`.
    ConnectBackMissing {
        server: String,
        waited_seconds: u64,
        causes: Vec<String>,
        hint: String,
    },
    /// A new configuration is in force without a restart; `changes` says what changed (empty:
    /// nothing). A reload that fails is a `Warning`, and the old configuration stays.
    ConfigReloaded {
        changes: Vec<String>,
    },
    /// The outbound relay: a message from the office is in the spool (`id`).
    OutboundQueued {
        id: String,
        from: String,
        to: Vec<String>,
        size: u64,
    },
    /// A recipient of a spooled message was delivered (`via`: the smarthost or the local
    /// delivery target) with that server's `reply`.
    OutboundDelivered {
        id: String,
        to: String,
        via: String,
        reply: String,
    },
    /// A recipient failed temporarily and is tried again at `next_attempt` (RFC 3339).
    OutboundDeferred {
        id: String,
        to: String,
        reply: String,
        attempts: u32,
        next_attempt: Option<String>,
    },
    /// A recipient failed for good (5xx, or expired): the sender gets a DSN (unless `<>`).
    OutboundBounced {
        id: String,
        to: String,
        reply: String,
        dsn_sent: bool,
    },
    /// A message has waited over an hour although the link was up when it was last tried
    /// (reported once per message while the engine runs): the smarthost keeps deferring it.
    OutboundStuck {
        id: String,
        to: Vec<String>,
        waiting_minutes: u64,
        reply: String,
    },
    /// A message was taken out of the outbound queue by `posternd queue drop` (no DSN).
    OutboundDropped {
        id: String,
    },
    /// A `posternd queue flush|retry|drop` was carried out: `message` says how it went.
    OutboundCommandDone {
        message: String,
    },
    /// The backup MX: the neighbour asked for its `domain` (`by`: `ETRN from 192.0.2.7`,
    /// `ATRN by neighbour`) while `held` messages waited for it; a run follows when any do.
    BackupAsked {
        domain: String,
        by: String,
        held: u32,
    },
    /// The backup MX: a delivery run of the mail held for the neighbour's `domain` began,
    /// asked for by `trigger` (`ETRN from 192.0.2.7`, `ATRN by neighbour`, `retry schedule`);
    /// `held` messages wait, `target` is where they go.
    BackupReleaseStarted {
        domain: String,
        trigger: String,
        held: u32,
        target: String,
    },
    /// A held message reached a recipient at the neighbour's server `via`.
    BackupDelivered {
        id: String,
        domain: String,
        to: String,
        via: String,
        reply: String,
    },
    /// The run ended; what is not delivered stays held (`problem`: why the run stopped early).
    BackupReleaseFinished {
        domain: String,
        delivered: u32,
        deferred: u32,
        bounced: u32,
        problem: Option<String>,
    },
    /// A held recipient was returned to the sender: refused for good, held longer than
    /// `max_hold`, or its domain is no longer backed up here.
    BackupBounced {
        id: String,
        domain: String,
        to: String,
        reply: String,
        dsn_sent: bool,
    },
    /// Automatic dequeues are paused (FetchNow still works).
    Paused,
    Resumed,
}

pub type EventSender = tokio::sync::broadcast::Sender<Event>;

/// A sender whose events nobody may read (one-shot commands).
pub fn channel() -> (EventSender, tokio::sync::broadcast::Receiver<Event>) {
    tokio::sync::broadcast::channel(1024)
}

/// What an inbound session reports to the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// A connection to the inbound listener began.
    SessionStarted,
    /// A message is durable (or accepted by the office server).
    MessageReceived,
    /// A message was refused after DATA: the sender did connect back.
    MessageRefused,
    SessionEnded,
    /// A message arrived over an ATRN/TURN turnaround: it counts, but proves nothing about an
    /// ETRN server connecting back.
    TurnaroundMessage,
}

/// Lossless and unbounded: a session never waits for the supervisor.
pub type ArrivalSender = tokio::sync::mpsc::UnboundedSender<Arrival>;
pub type ArrivalReceiver = tokio::sync::mpsc::UnboundedReceiver<Arrival>;
