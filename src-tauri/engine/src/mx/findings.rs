//! What a check is given and what it finds: [`CheckInput`], [`Report`], [`Finding`] and its
//! [`Severity`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Outbound, Protocol, QueueServer};

/// How bad a finding is. Ordered: `Ok < Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One thing the checker found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable, kebab-case with a dotted prefix, e.g. `mx.cname-target` (see docs/mx-findings.md).
    pub id: String,
    pub severity: Severity,
    /// What the finding is about: the domain, an MX host, a queuing server, an address.
    pub subject: String,
    /// What was seen, in plain words.
    pub evidence: String,
    /// What to do about it (absent for findings that need nothing done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub(crate) fn new(
        id: &str,
        severity: Severity,
        subject: impl Into<String>,
        evidence: impl Into<String>,
    ) -> Finding {
        Finding {
            id: id.to_string(),
            severity,
            subject: subject.into(),
            evidence: evidence.into(),
            fix: None,
        }
    }

    pub(crate) fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

/// One MX record as seen, with the addresses its host resolved to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MxRecordView {
    pub preference: u16,
    pub host: String,
    pub addresses: Vec<IpAddr>,
}

/// The whole result of a check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub domain: String,
    /// False when the domain's own MX lookup failed: the findings then cannot say anything
    /// about the setup (`posternd check-mx` exits with 2).
    pub complete: bool,
    /// The MX host taken to be the office's own server, if one could be identified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_host: Option<String>,
    /// Reports of a `[[backup_for]]` domain only: this office's host as that domain's backup MX.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_host: Option<String>,
    pub mx: Vec<MxRecordView>,
    /// The dequeue protocol that fits this setup, when the checker can tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_protocol: Option<Protocol>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub(crate) fn new(domain: &str) -> Report {
        Report {
            domain: domain.to_string(),
            complete: true,
            office_host: None,
            backup_host: None,
            mx: Vec::new(),
            recommended_protocol: None,
            findings: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, f: Finding) {
        self.findings.push(f);
    }

    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }

    /// The findings with this id.
    pub fn find<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings.iter().filter(move |f| f.id == id)
    }

    /// The process exit code of `posternd check-mx` for this report: 0 = no errors, 1 = errors
    /// found, 2 = the check could not run.
    pub fn exit_code(&self) -> u8 {
        if !self.complete {
            2
        } else if self.has_errors() {
            1
        } else {
            0
        }
    }
}

/// What to check. Build it from a [`Config`] with [`CheckInput::from_config`], or directly.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckInput {
    pub domain: String,
    /// The office's own MX host; `None` = the lowest-preference MX that is not a configured
    /// queuing server.
    pub office_host: Option<String>,
    /// A softer hint (`[inbound] hostname`): used as the office's server when it is one of the
    /// MX hosts, ignored otherwise.
    pub office_hint: Option<String>,
    pub queue_servers: Vec<QueueServer>,
    /// Empty = the system resolver.
    pub nameservers: Vec<SocketAddr>,
    /// Where this machine's inbound listener listens (`[inbound] listen`); empty = unknown.
    pub inbound_listen: Vec<SocketAddr>,
    /// Send ETRN to each ETRN queuing server (this releases mail, so never the default).
    pub dry_run_etrn: bool,
    /// The port senders connect to on an MX host: 25 everywhere but in tests.
    pub mx_port: u16,
    /// Per DNS server and attempt.
    pub dns_timeout: Duration,
    /// Every SMTP connect, read and write.
    pub smtp_timeout: Duration,
    /// Probe the servers over SMTP (check 4). Off = DNS and local checks only.
    pub probe_smtp: bool,
    /// `[outbound]`: its smarthost is probed too (check 8; with `probe_smtp`).
    pub smarthost: Option<Outbound>,
}

impl CheckInput {
    /// Defaults for `domain`: system DNS, port 25, 3 s DNS and 15 s SMTP timeouts, probes on.
    pub fn new(domain: &str) -> CheckInput {
        CheckInput {
            domain: domain.to_string(),
            office_host: None,
            office_hint: None,
            queue_servers: Vec::new(),
            nameservers: Vec::new(),
            inbound_listen: Vec::new(),
            dry_run_etrn: false,
            mx_port: 25,
            dns_timeout: Duration::from_secs(3),
            smtp_timeout: Duration::from_secs(15),
            probe_smtp: true,
            smarthost: None,
        }
    }

    /// The check of `domain` for the setup in `config`.
    pub fn from_config(config: &Config, domain: &str) -> CheckInput {
        CheckInput {
            office_hint: Some(config.inbound.hostname.clone()).filter(|h| !h.is_empty()),
            queue_servers: config.queue_servers.clone(),
            nameservers: config.dns.nameservers.clone(),
            inbound_listen: config.inbound.listen.clone(),
            smarthost: config.outbound.clone(),
            ..CheckInput::new(domain)
        }
    }
}

/// The check could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(
        "\"{0}\" is not a domain name. Give the office's mail domain, e.g. `posternd check-mx office.example`"
    )]
    InvalidDomain(String),
    #[error(
        "no domain to check. Name one (`posternd check-mx office.example`) or set `domains` in postern.toml"
    )]
    NoDomain,
    #[error("cannot set up DNS lookups: {0}. Check /etc/resolv.conf or pass --nameserver IP:PORT")]
    Resolver(String),
}

/// Host names compare case-insensitively and without the trailing dot.
pub(crate) fn normalize_host(h: &str) -> String {
    h.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// An MX exchange written as an address (`192.0.2.1`, `[192.0.2.1]`, `2001:db8::1`).
pub(crate) fn ip_literal(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn severity_orders_and_serializes_lowercase() {
        assert!(Severity::Error > Severity::Warning);
        assert!(Severity::Info > Severity::Ok);
        assert_eq!(
            serde_json::to_string(&Severity::Warning).unwrap(),
            "\"warning\""
        );
    }

    #[test]
    fn recognises_ip_literals() {
        assert_eq!(ip_literal("192.0.2.1"), "192.0.2.1".parse().ok());
        assert_eq!(ip_literal("[192.0.2.1]"), "192.0.2.1".parse().ok());
        assert_eq!(ip_literal("mx.example"), None);
    }

    /// Every finding id in the code is documented in docs/mx-findings.md, and every documented
    /// id exists in the code.
    #[test]
    fn every_finding_id_is_documented() {
        const PREFIXES: &[&str] = &[
            "domain.",
            "dns.",
            "mx.",
            "pref.",
            "rdns.",
            "etrn.",
            "smtp.",
            "smarthost.",
            "backup.",
        ];
        fn ids(text: &str, quote: char) -> std::collections::BTreeSet<String> {
            text.split(quote)
                .filter(|s| {
                    PREFIXES.iter().any(|p| s.starts_with(p))
                        && s.len() > 4
                        && s.chars()
                            .all(|c| c.is_ascii_lowercase() || c == '.' || c == '-')
                })
                .map(str::to_string)
                .collect()
        }
        let code: std::collections::BTreeSet<String> = [
            include_str!("rules.rs"),
            include_str!("smtp.rs"),
            include_str!("smarthost.rs"),
            include_str!("backup.rs"),
            include_str!("backup_probe.rs"),
        ]
        .iter()
        .flat_map(|t| ids(t, '"'))
        .collect();
        let doc = ids(include_str!("../../../../docs/mx-findings.md"), '`');

        assert!(code.len() > 30, "{code:?}");
        assert_eq!(code, doc);
    }

    #[test]
    fn exit_codes() {
        let mut r = Report::new("office.test");
        assert_eq!(r.exit_code(), 0);
        r.push(Finding::new("x", Severity::Error, "s", "e"));
        assert_eq!(r.exit_code(), 1);
        r.complete = false;
        assert_eq!(r.exit_code(), 2);
    }
}
