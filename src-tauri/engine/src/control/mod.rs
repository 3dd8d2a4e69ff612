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
use crate::config::Config;
use crate::dequeue::reply::Outcome;
use crate::events::Event;
use crate::view::Window;

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
    /// Dequeue now without waiting for the outcomes (the windows' and the tray's button).
    FetchNow,
    /// The status now and after every change, one [`Response::Status`] each, until either
    /// side closes (the window process's status line).
    WatchStatus,
    // The tray app's own requests, for its window process (`posternd` answers them with an
    // error): the windows reach the engine only through these.
    /// Open a window (a second `postern` asks this of the running one).
    OpenWindow {
        page: Window,
    },
    /// The config file as Settings sees it: [`Response::Config`].
    LoadConfig,
    /// Check, apply (reload, or start the engine after the wizard) and save a configuration;
    /// answers the status after it.
    ApplyConfig {
        config: Box<Config>,
    },
    /// Store a password in the tray's secret store (the OS keyring).
    SetSecret {
        name: String,
        password: String,
    },
    /// The events the tray kept for the Activity window: [`Response::Activity`].
    Activity,
    /// Start at login: read it (`enable: None`) or change it; [`Response::Autostart`].
    Autostart {
        enable: Option<bool>,
    },
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
    Config {
        state: Box<ConfigState>,
    },
    Activity {
        events: Vec<Event>,
    },
    Autostart {
        enabled: bool,
    },
}

/// The config file as the Settings pane sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigState {
    pub path: String,
    pub exists: bool,
    pub config: Option<Config>,
    /// Why the existing file does not load (line:column and fix).
    pub error: Option<String>,
}

impl ConfigState {
    /// Reads the file at `path`.
    pub fn load(path: &std::path::Path) -> ConfigState {
        let exists = path.exists();
        let (config, error) = match exists.then(|| Config::load(path)) {
            Some(Ok(c)) => (Some(c), None),
            Some(Err(e)) => (None, Some(e.to_string())),
            None => (None, None),
        };
        ConfigState {
            path: path.display().to_string(),
            exists,
            config,
            error,
        }
    }
}

/// The server's first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    /// The process that runs the engine.
    pub pid: u32,
}
