//! The ODMR/ATRN server (RFC 2645) of the backup MX: [`listener`] accepts on
//! `[backup] odmr_listen`, [`session`] runs one session up to the turnaround and then delivers
//! over the same connection, [`sasl`] is the server side of AUTH.

pub mod listener;
pub mod sasl;
pub mod session;
