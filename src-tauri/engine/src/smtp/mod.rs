//! The SMTP protocol itself, below everything that speaks it: the one client ([`client`] over a
//! [`conn`], with [`sasl`] for AUTH), what a reply is ([`reply`]), and the DATA phase's byte
//! rules ([`data`]: where a message ends, dot-stuffing on the way out).
//!
//! A leaf of the protocol layer: it imports nothing of `smtp_server`, `deliver` or `dequeue`,
//! which all build on it (the inbound session reads DATA with [`data::DataReader`]; forwarding
//! to the office server and dequeuing both run an [`client::SmtpClient`]).

pub mod client;
pub mod conn;
pub mod data;
pub mod reply;
pub mod sasl;
