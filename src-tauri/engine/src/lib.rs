//! # Postern's engine
//!
//! Postern gets an office's mail out of its ISP's queuing server (a backup MX) when the office's
//! link comes up. Everything a front end shows — the tray app `postern` or the headless
//! `posternd` — comes from this library. The layers, the picture of the data flow and the rules
//! (who may import whom, where I/O happens, the durability contract) are in
//! `docs/architecture.md`; here is every module, in layer order, lowest first.
//!
//! **The vocabulary** (imports nothing above it):
//!
//! - [`config`] reads `postern.toml` into a validated [`config::Config`]; [`config_store`]
//!   checks one from a front end and writes it atomically.
//! - [`outcome`]: the result of asking one server for one domain, an [`outcome::Outcome`]
//!   with a [`outcome::Disposition`] that says whether to retry. A leaf.
//! - [`secrets`] hands out passwords from the OS keyring; nothing else stores them.
//! - [`events`] is the engine's outward voice, one serde [`events::Event`] for everything a
//!   front end renders, and its one inward signal, the lossless [`events::Arrival`] channel
//!   from the inbound sessions to the supervisor.
//!
//! **The protocols and the world** (every socket, file and OS event):
//!
//! - [`tls`]: the rustls set-up, with a CA file or a certificate fingerprint.
//! - [`smtp`] is the protocol itself, below everything that speaks it: the one SMTP client
//!   ([`smtp::client`]: EHLO, STARTTLS, AUTH with [`smtp::sasl`]), what a reply is
//!   ([`smtp::reply`]) and the DATA phase's byte rules ([`smtp::data`]).
//! - [`link`] watches the OS for network changes and probes whether the internet link is up.
//! - [`journal`] keeps every event an admin may ask about later in SQLite in the state folder,
//!   written off the mail path; `posternd log` and the Activity window read it.
//! - [`deliver`] is where an accepted message goes: a Maildir (written, fsynced, renamed,
//!   directory fsynced — and only then do we answer 250) or the office mail server (250 only once
//!   it has accepted the message).
//! - [`smtp_server`] is the one inbound SMTP session, fed from any byte stream: the listener on
//!   `[inbound].listen` uses it, and so does the ATRN turnaround on the dequeue connection.
//! - [`dequeue`] is the client side: it connects to a queuing server with the SMTP client
//!   ([`dequeue::session`]), then asks for the office's mail with ETRN (the server connects
//!   back) or ATRN/TURN (the connection turns around). Every reply is read by
//!   [`dequeue::reply`] into a plain-language meaning and fix.
//! - [`mx`] checks the office's whole backup-MX set-up and says in plain words what is wrong.
//! - [`outbound`] is the other half of the mail flow: the submission listener on
//!   `[outbound].listen`, the durable spool (250 only once message and record are fsynced),
//!   delivery through the smarthost recipient by recipient, retries, DSNs, and the queue
//!   commands.
//!
//! **The decisions:**
//!
//! - [`supervisor`] decides when to dequeue: a pure state machine (single flight, flap
//!   hold-off, backoff, the connect-back watchdog) and the loop that feeds it.
//! - [`reload`] applies a new configuration to a running engine, all or nothing.
//!
//! **The front ends' side:**
//!
//! - [`api`]: the one entry point, [`api::start`] → [`api::EngineHandle`] (commands in, status
//!   and events out).
//! - [`control`]: the same commands, status and events over a local endpoint (socket or named
//!   pipe), so `posternd status|pause|resume|reload|events|fetch` reach the running engine.
//! - [`view`] and [`notify`]: what the tray, the windows and the notifications show, as pure
//!   functions of the status and the events; [`dashboard`], the dashboard window's view of the
//!   status and the journal's counts.
//! - [`setup`]: the wizard's checks (what a queuing server supports, whether a delivery target
//!   works, whether ETRN can reach this computer).
//!
//! The contract that matters most is written where it is enforced ([`deliver::maildir`]): a
//! message is acknowledged only after it is durable. A queuing server that gets no 250 keeps the
//! message and tries again later, so a crash or a full disk can delay mail but never lose it.

/// The application identifier; also the name of the config folder.
pub const BUNDLE_ID: &str = "org.postern.Postern";

pub mod config;
pub mod config_store;
pub mod dir_sync;
pub mod events;
pub mod journal;
pub mod outcome;
pub mod secrets;

pub mod deliver;
pub mod dequeue;
pub mod link;
pub mod mx;
pub mod outbound;
pub mod smtp;
pub mod smtp_server;
pub mod tls;

pub mod reload;
pub mod supervisor;

pub mod api;
pub mod control;
pub mod dashboard;
pub mod notify;
pub mod setup;
pub mod view;

#[cfg(test)]
mod bindings;
