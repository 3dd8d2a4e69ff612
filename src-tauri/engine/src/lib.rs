//! # Postern's engine
//!
//! Postern gets an office's mail out of its ISP's queuing server (a backup MX) when the office's
//! link comes up, and relays the office's own mail. Everything a front end shows — the tray app
//! `postern` or the headless `posternd` — comes from this library.
//!
//! How the pieces fit:
//!
//! - [`config`] reads `postern.toml` into a validated [`config::Config`].
//! - [`secrets`] hands out passwords from the OS keyring; nothing else stores them.
//! - [`dequeue`] is the client side: it connects to a queuing server, negotiates EHLO, STARTTLS
//!   and AUTH ([`dequeue::client`]), then asks for the office's mail with ETRN (the server
//!   connects back to our inbound listener). Every reply becomes an [`dequeue::reply::Outcome`]
//!   with a plain-language meaning and fix.
//! - [`smtp_server`] is the one inbound SMTP session, fed from any byte stream: the listener on
//!   `[inbound].listen` uses it, and so does the ATRN turnaround on the dequeue connection.
//! - [`deliver`] is where an accepted message goes: a Maildir (written, fsynced, renamed,
//!   directory fsynced — and only then do we answer 250) or the office mail server (250 only once
//!   it has accepted the message).
//! - [`events`] is the engine's outward voice: every front end renders the same events.
//!
//! The contract that matters most is written where it is enforced ([`deliver::maildir`]): a
//! message is acknowledged only after it is durable. A queuing server that gets no 250 keeps the
//! message and tries again later, so a crash or a full disk can delay mail but never lose it.

pub mod config;
pub mod config_store;
pub mod mx;
pub mod outcome;
pub mod secrets;
pub mod setup;

/// The application identifier; also the name of the config folder.
pub const BUNDLE_ID: &str = "org.postern.Postern";
pub mod api;
pub mod deliver;
pub mod dequeue;
pub mod events;
pub mod link;
pub mod notify;
pub mod reload;
pub mod smtp_server;
pub mod supervisor;
pub mod tls;
pub mod view;
