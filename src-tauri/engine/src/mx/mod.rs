//! The MX and setup checker behind `posternd check-mx`, the setup wizard and the tray's
//! "Check MX": it looks at the office's whole backup-MX setup and says in plain words what is
//! wrong and what to do.
//!
//! [`check`] gathers facts (DNS through hickory-resolver, SMTP probes of every MX and queuing
//! server, this machine's addresses) and turns them into [`Finding`]s, each with a stable id, a
//! [`Severity`], the evidence and a fix. Every id is documented in `docs/mx-findings.md`.
//! A transient DNS failure (timeout, SERVFAIL, REFUSED) is reported as such, never as "no MX".
//! [`check_backup`] reports on a `[[backup_for]]` domain: this office as a neighbour's backup MX.

pub mod backup;
mod backup_input;
mod backup_probe;
pub mod check;
pub mod cli;
pub(crate) mod dns;
pub mod findings;
mod net;
mod render;
mod rules;
mod smarthost;
mod smtp;

pub use backup::check_backup;
pub use backup_input::BackupCheckInput;
pub use check::check;
pub use findings::{CheckError, CheckInput, Finding, MxRecordView, Report, Severity};
pub use smarthost::check_smarthost;
