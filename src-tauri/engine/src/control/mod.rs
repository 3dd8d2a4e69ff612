//! The local control API: one endpoint per user and config file, served by whichever process
//! runs the engine (`posternd run`, the tray app), so that `posternd status|pause|resume|reload|
//! events|fetch` reach the running engine instead of starting their own.
//!
//! Transport: a Unix domain socket in a 0700 folder of the user's runtime folder (socket 0600),
//! or a named pipe on Windows, through `interprocess`. Protocol: JSON lines, one [`Request`]
//! per connection from the client, then [`Response`]s from the server; the first line of each
//! side carries [`PROTOCOL_VERSION`]. The payloads are the engine's own serde types.

pub mod client;
mod endpoint;
pub mod server;

use serde::{Deserialize, Serialize};

use crate::api::Status;
use crate::dequeue::reply::Outcome;
use crate::events::Event;

pub use endpoint::endpoint_path;

/// Bumped when a request or response changes shape.
pub const PROTOCOL_VERSION: u32 = 1;

/// What a client asks, one per connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// The status snapshot.
    Status,
    Pause,
    Resume,
    /// Read the config file again and apply it (like SIGHUP).
    Reload,
    /// Dequeue now (single flight with the engine's own dequeues); answers with the outcomes.
    Fetch,
    /// Every engine event from now on, one [`Response::Event`] each, until either side closes.
    Events,
    /// `posternd queue flush|retry|drop`: answered with [`Response::Done`] (or `Error`).
    Queue {
        #[serde(flatten)]
        action: crate::outbound::queue::QueueAction,
    },
    /// A page of the mail-flow journal.
    Log {
        query: crate::journal::Query,
    },
    /// The dashboard's counts from the journal.
    Stats,
}

/// The client's one line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    #[serde(flatten)]
    pub request: Request,
}

/// What the server answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    Status {
        status: Box<Status>,
    },
    /// Done (pause, resume, reload): `message` says what happened.
    Done {
        message: String,
    },
    Fetched {
        outcomes: Vec<Outcome>,
    },
    Event {
        event: Box<Event>,
    },
    /// The request was refused or failed; `message` says why and what to do.
    Error {
        message: String,
    },
    Log {
        page: crate::journal::Page,
    },
    Stats {
        stats: Box<crate::journal::Stats>,
    },
    /// The event subscription is live: every event from here on follows.
    Following,
    /// Events were dropped because the client read too slowly.
    Lagged {
        missed: u64,
    },
}

/// The server's first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    /// The process that runs the engine.
    pub pid: u32,
}
