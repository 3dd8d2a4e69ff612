//! The one place that decides when to dequeue.
//!
//! A pure state machine ([`Machine`]) and its driver ([`run`]): inputs are link edges,
//! commands, finished dequeues, arrivals from the inbound sessions and the passing of time;
//! outputs are [`Action`]s (start a dequeue, send an event). The rules:
//!
//! - An Up edge dequeues every server (servers in parallel, the domains of one server in
//!   order). `refetch_every` repeats that while up.
//! - Single flight: a trigger for a server whose dequeue runs joins it; never two at once.
//! - Flap protection: automatic triggers (edges, timers) within `flap_holdoff` of the last start
//!   are deferred to the end of the hold-off, so a bouncing link costs a few dequeues.
//! - Temporary failures (4xx, 458, timeouts, connection errors) are retried for the failed
//!   domains only, with exponential backoff and jitter, reset on success. Permanent ones (5xx,
//!   459, TLS, login) are not retried: a `FetchFailed` event carries the fix.
//! - After an ETRN is accepted, a watchdog waits `connect_back_timeout` for the server to
//!   connect back; when inbound sessions stop for `quiet_period`, `DequeueComplete` reports the
//!   number of messages.
//! - Pause stops the automatic triggers (FetchNow still works); Resume catches up.
//! - A reload ([`crate::reload`]) swaps the servers, domains and timers in place: a server that
//!   stays keeps its state (a running dequeue, retries), a removed one disappears (its running
//!   dequeue still finishes and is reported), a new one is dequeued at once while the link is up.
//!
//! One job per file: [`machine`] schedules each server and follows the link, [`arrivals`]
//! watches what comes back in, [`reconfigure`] takes a reloaded configuration, [`status`]
//! projects the state for front ends, [`run`](mod@run) does the I/O. [`settings`] holds what they
//! share. Only `run` touches clocks, channels and tasks.

pub mod arrivals;
pub mod machine;
pub mod reconfigure;
pub mod run;
pub mod settings;
pub mod status;
#[cfg(test)]
mod transcript;

pub use machine::{Action, Input, Machine};
pub use run::{Inputs, Outputs, SupervisorDeps, run};
pub use settings::{Now, ServerId, Settings};
pub use status::{Command, ServerStatus, Status};
