//! What front ends send to the supervisor and see of it: [`Command`], and [`Status`] projected
//! from the [`Machine`].

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::machine::Machine;
use super::settings::Now;
use crate::config::Config;
use crate::link::LinkState;
use crate::outcome::Outcome;

/// What a front end can ask for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    FetchNow,
    Pause,
    Resume,
    /// Apply this configuration without a restart. The outcome is an event:
    /// `ConfigReloaded`, or a `Warning` when nothing changed because it could not be applied.
    /// [`crate::api::EngineHandle::reload`] returns it instead.
    Reload(Box<Config>),
    /// `posternd queue flush|retry|drop`, for the outbound queue; answered with an
    /// `OutboundCommandDone` event.
    Outbound(crate::outbound::queue::QueueAction),
    Shutdown,
}

/// The engine's state as front ends show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub paused: bool,
    pub fetching: bool,
    /// Messages received since start.
    pub messages_received: u64,
    /// The outcomes of the last dequeue of each server.
    pub last_fetch: Vec<Outcome>,
    /// When the last dequeue finished (RFC 3339).
    pub last_fetch_at: Option<String>,
    pub link: LinkState,
    /// When the link state last changed (RFC 3339).
    pub link_since: Option<String>,
    /// One entry per queue server, in configuration order.
    pub servers: Vec<ServerStatus>,
    /// The backup MX: per neighbour's domain, how much is held and when it was last fetched.
    /// Filled in by the control API's `Status` answer (the supervisor leaves it empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup: Vec<crate::backup::server::HeldStatus>,
    /// The next scheduled dequeue of every server while the link is up (`refetch_every`;
    /// RFC 3339); `None` while offline or with `refetch_every = "0"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_fetch_at: Option<String>,
    /// Messages waiting in the outbound queue (`None` without `[outbound]`). Kept up to date by
    /// the queue task ([`crate::outbound::runner`]), not by the supervisor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_queued: Option<u64>,
}

/// Publishes the supervisor's `next` status, keeping what the queue task contributes.
pub fn publish(tx: &tokio::sync::watch::Sender<Status>, next: Status) {
    tx.send_modify(|current| {
        let outbound_queued = current.outbound_queued;
        *current = next;
        current.outbound_queued = outbound_queued;
    });
}

/// What the supervisor knows about one queue server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// `host:port`.
    pub server: String,
    pub fetching: bool,
    /// One outcome per domain of the last dequeue (or retry) of this server.
    pub last_outcomes: Vec<Outcome>,
    /// When it finished (RFC 3339).
    pub last_at: Option<String>,
    /// Consecutive temporary failures; 0 after a success.
    pub attempt: u32,
    /// When the failed domains are asked again (RFC 3339).
    pub next_retry_at: Option<String>,
    /// An ETRN was accepted and the server has not connected back yet.
    pub awaiting_connect_back: bool,
}

impl Machine {
    pub fn status(&self, now: Now) -> Status {
        let wall = |at: Instant| {
            let ahead = chrono::Duration::from_std(at.saturating_duration_since(now.at))
                .unwrap_or_default();
            (now.wall + ahead).to_rfc3339()
        };
        Status {
            paused: self.paused,
            fetching: self.per.iter().any(|s| s.in_flight),
            messages_received: self.arrivals.messages_received(),
            last_fetch: self
                .per
                .iter()
                .flat_map(|s| s.last_outcomes.iter().cloned())
                .collect(),
            last_fetch_at: self.per.iter().filter_map(|s| s.last_at.clone()).max(),
            link: self.link,
            link_since: self.link_since.clone(),
            servers: self
                .per
                .iter()
                .map(|s| ServerStatus {
                    server: s.label.clone(),
                    fetching: s.in_flight,
                    last_outcomes: s.last_outcomes.clone(),
                    last_at: s.last_at.clone(),
                    attempt: s.attempt,
                    next_retry_at: s.retry_at.map(wall),
                    awaiting_connect_back: self.arrivals.awaiting(s.id),
                })
                .collect(),
            backup: Vec::new(),
            next_fetch_at: self.next_refetch.map(wall),
            outbound_queued: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::supervisor::transcript::{Sim, secs};

    #[test]
    fn the_status_shows_each_server_with_its_retry_in_wall_clock_time() {
        let mut sim = Sim::new(&["a.test", "b.test"]);
        sim.up();
        sim.retry("a.test");
        sim.skip(secs(10));

        let status = sim.status();

        assert!(status.fetching, "b.test still runs");
        assert_eq!(status.servers[0].attempt, 1);
        let retry_at = status.servers[0].next_retry_at.clone().expect("a retry");
        let expected = (sim.clock().wall + chrono::Duration::seconds(20)).to_rfc3339();
        assert_eq!(retry_at, expected);
        assert_eq!(status.last_fetch.len(), 2);
        assert!(status.link_since.is_some() && status.last_fetch_at.is_some());
    }

    #[test]
    fn a_command_is_json_tagged_by_name() {
        let json = serde_json::to_string(&super::Command::FetchNow).expect("serializes");

        assert_eq!(json, r#"{"command":"fetch_now"}"#);
    }
}
