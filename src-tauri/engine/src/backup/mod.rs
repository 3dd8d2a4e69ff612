//! The queuing-server side (design.md §10): this office as the backup MX of a neighbour.
//!
//! Mail for a `[[backup_for]]` domain is accepted by the inbound listener like the office's own,
//! but goes into the outbound spool marked as held for that domain ([`crate::outbound::spool::
//! Record::held_for`]); the outbound queue never touches it. It leaves only towards that
//! domain's own target ([`target`]): the neighbour's MX hosts preferred over ours, or its
//! configured server, never the address of whoever asked.
//!
//! One job per file: [`server`] is the shared state (the entries, the spool, which domains
//! have a run going, the ETRN rate limit), [`last_fetch`] keeps when each neighbour last asked
//! across restarts, [`etrn`] answers `ETRN` on the inbound listener, [`release`] is one
//! delivery run for one domain, [`bounce`] returns mail to its sender, [`target`] finds where a
//! domain's mail goes, [`sweep`] returns mail held longer than `max_hold` and releases `hold = false` domains on
//! the retry schedule.

pub mod bounce;
pub mod etrn;
pub mod last_fetch;
mod mx_connect;
pub mod odmr;
pub mod release;
pub mod server;
pub mod sweep;
pub mod target;
