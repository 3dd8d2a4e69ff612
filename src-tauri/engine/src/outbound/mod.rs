//! The outbound relay: mail from the office's computers to the world, through the ISP's
//! smarthost, with a durable queue that waits out a link that is down.
//!
//! One job per file: [`spool`] keeps messages durably (the rename of the record is the commit
//! marker), [`headers`] adds a missing Date:/Message-ID: on submission, [`listener`] is the
//! submission listener (the inbound session with the relay policy of `allow`), [`smarthost`]
//! delivers one message recipient by recipient over the project's SMTP client, [`retry`]
//! decides when to try again and when to give up, [`dsn`] writes the RFC 3464 bounces, [`runner`]
//! is the queue task driven by the supervisor's link state, and [`queue`] carries out the
//! `posternd queue` commands, through the running engine or on the spool directly.

pub mod dsn;
pub mod headers;
pub mod lanes;
pub mod listener;
pub mod queue;
pub mod retry;
pub mod runner;
pub mod smarthost;
pub mod spool;
