//! The engine's outward voice. Every front end (the tray app, `posternd run --events`, the tests)
//! renders the same events; all of them are serde, one JSON object each.

use serde::{Deserialize, Serialize};

use crate::config::Protocol;
use crate::dequeue::reply::Outcome;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The inbound listener is ready.
    Listening { addresses: Vec<String> },
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
    InboundSessionStarted { peer: String, via: String },
    /// A message is durable in the Maildir or accepted by the office server.
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
}

pub type EventSender = tokio::sync::broadcast::Sender<Event>;

/// A sender whose events nobody may read (one-shot commands).
pub fn channel() -> (EventSender, tokio::sync::broadcast::Receiver<Event>) {
    tokio::sync::broadcast::channel(1024)
}
