//! Check 4 (and 7): SMTP probes of every MX and queuing server.

use super::dns::Dns;
use super::rules::DequeueSupport;
use super::{CheckInput, Report, Target};

pub(crate) async fn probe_all(
    _r: &mut Report,
    _dns: &Dns,
    _targets: &[Target],
    _office: Option<usize>,
    _input: &CheckInput,
) -> Vec<DequeueSupport> {
    Vec::new()
}
