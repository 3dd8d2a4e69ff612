//! The report for a `[[backup_for]]` domain: this office as a neighbour's backup MX. Its MX
//! records must name this office's host with a higher preference value than the neighbour's
//! own server, and this office must answer there (SMTP, and ODMR when `release` has atrn).

use std::net::SocketAddr;
use std::time::Duration;

use super::check::resolve_targets;
use super::dns::{Dns, Target};
use super::findings::{CheckError, Finding, Report, Severity, normalize_host};
use super::{backup_probe, rules};
use crate::config::{BackupFor, BackupTarget, Config, Release};

/// What to check for one neighbour's domain.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupCheckInput {
    /// The neighbour's domain.
    pub domain: String,
    /// This office's host as it should appear in the neighbour's MX records (`[inbound] hostname`).
    pub our_host: String,
    pub deliver_to: BackupTarget,
    pub release: Vec<Release>,
    /// Empty = the system resolver.
    pub nameservers: Vec<SocketAddr>,
    /// The port senders connect to on our MX host: 25 everywhere but in tests.
    pub mx_port: u16,
    /// `[backup] odmr_listen`: the ports the neighbour's ATRN client is expected at.
    pub odmr_listen: Vec<SocketAddr>,
    pub dns_timeout: Duration,
    pub smtp_timeout: Duration,
    /// Connect to our host's listener and ODMR server. Off = DNS only.
    pub probe_smtp: bool,
}

impl BackupCheckInput {
    /// Defaults: ETRN release to the domain's MX, system DNS, port 25, 3 s DNS and 15 s SMTP
    /// timeouts, probes on.
    pub fn new(domain: &str, our_host: &str) -> BackupCheckInput {
        BackupCheckInput {
            domain: domain.to_string(),
            our_host: our_host.to_string(),
            deliver_to: BackupTarget::Mx,
            release: vec![Release::Etrn],
            nameservers: Vec::new(),
            mx_port: 25,
            odmr_listen: Vec::new(),
            dns_timeout: Duration::from_secs(3),
            smtp_timeout: Duration::from_secs(15),
            probe_smtp: true,
        }
    }

    /// The check of `entry` for the setup in `config`.
    pub fn from_config(config: &Config, entry: &BackupFor) -> BackupCheckInput {
        BackupCheckInput {
            deliver_to: entry.deliver_to.clone(),
            release: entry.release.clone(),
            nameservers: config.dns.nameservers.clone(),
            odmr_listen: config.backup.odmr_listen.clone(),
            ..BackupCheckInput::new(&entry.domain, &config.inbound.hostname)
        }
    }
}

/// Runs every check for the neighbour's domain `input.domain`.
pub async fn check_backup(input: &BackupCheckInput) -> Result<Report, CheckError> {
    let domain = normalize_host(&input.domain);
    if domain.is_empty() || hickory_resolver::proto::rr::Name::from_ascii(&domain).is_err() {
        return Err(CheckError::InvalidDomain(input.domain.clone()));
    }
    let ours = normalize_host(&input.our_host);
    let dns = Dns::new(&input.nameservers, input.dns_timeout)?;
    let mut report = Report::new(&domain);
    report.backup_host = Some(ours.clone());

    let Some((records, implicit)) = rules::domain_mx(&mut report, &dns, &domain).await else {
        return Ok(report);
    };
    // "Only one MX" is said more precisely below, from the backup's side.
    report.findings.retain(|f| f.id != "mx.single");
    let targets = if implicit {
        Vec::new()
    } else {
        resolve_targets(&dns, records).await
    };
    report.mx = targets.iter().map(Target::view).collect();
    rules::targets(&mut report, &targets, dns.server(), implicit);
    let Some(mine) = targets.iter().find(|t| t.host == ours) else {
        report.push(not_in_mx(&domain, &ours, &targets));
        return Ok(report);
    };
    preference(&mut report, &domain, mine, &targets, &input.deliver_to);
    if input.probe_smtp {
        backup_probe::listener(&mut report, mine, input).await;
        if input.release.contains(&Release::Atrn) {
            backup_probe::odmr(&mut report, mine, input).await;
        }
    }
    Ok(report)
}

fn not_in_mx(domain: &str, ours: &str, targets: &[Target]) -> Finding {
    let worst = targets.iter().map(|t| t.preference).max().unwrap_or(10);
    let seen = if targets.is_empty() {
        "it has no MX records".to_string()
    } else {
        let names: Vec<String> = targets
            .iter()
            .map(|t| format!("{} {}", t.preference, t.host))
            .collect();
        format!("its MX records are {}", names.join("; "))
    };
    Finding::new(
        "backup.not-in-mx",
        Severity::Error,
        ours,
        format!("This office ({ours}) is not an MX of {domain}: {seen}. Senders never deliver here, so nothing is held for the neighbour while it is offline."),
    )
    .fix(format!(
        "Ask the neighbour to add `{domain}. MX {} {ours}.` to its zone (a higher number than its own server's), or set [inbound] hostname to the MX name that points at this office.",
        worst.saturating_add(10)
    ))
}

/// Our MX record against the neighbour's primary (its most preferred host that is not ours).
fn preference(
    r: &mut Report,
    domain: &str,
    mine: &Target,
    targets: &[Target],
    deliver_to: &BackupTarget,
) {
    let ours = &mine.host;
    let Some(primary) = targets
        .iter()
        .filter(|t| t.host != *ours)
        .min_by_key(|t| t.preference)
    else {
        let delivery = match deliver_to {
            BackupTarget::Mx => {
                " With deliver_to = \"mx\" released mail has nowhere to go either.".to_string()
            }
            BackupTarget::Smtp { .. } => String::new(),
        };
        r.push(
            Finding::new(
                "backup.no-primary",
                Severity::Error,
                ours,
                format!("{ours} is the only MX of {domain}: every sender delivers here and the mail waits until the neighbour asks for it.{delivery}"),
            )
            .fix(format!(
                "Ask the neighbour to publish its own server with a lower number than ours, e.g. `{domain}. MX 10 mail.{domain}.` next to `MX {} {ours}.`",
                mine.preference.max(20)
            )),
        );
        return;
    };
    let (p, q) = (mine.preference, primary.preference);
    let example = format!(
        "e.g. `{domain}. MX 10 {}.` and `{domain}. MX 20 {ours}.`",
        primary.host
    );
    if p > q {
        r.push(Finding::new(
            "backup.in-mx",
            Severity::Ok,
            ours,
            format!("{ours} is an MX of {domain} with preference {p}, after the neighbour's own {} ({q}): senders come here only while it is unreachable.", primary.host),
        ));
    } else if p == q {
        r.push(
            Finding::new(
                "backup.equal-preference",
                Severity::Error,
                ours,
                format!("{ours} has the same preference ({p}) as the neighbour's own {}: senders pick one at random, so about half of {domain}'s mail waits here even while the neighbour is online.", primary.host),
            )
            .fix(format!("Ask the neighbour to give {ours} a higher number than {}: {example}", primary.host)),
        );
    } else {
        r.push(
            Finding::new(
                "backup.preferred",
                Severity::Error,
                ours,
                format!("{ours} has preference {p}, lower (= preferred) than the neighbour's own {} with {q}: senders deliver here first, so all of {domain}'s mail waits here until the neighbour asks for it.", primary.host),
            )
            .fix(format!("Ask the neighbour to swap the numbers: {example}")),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_input_follows_the_config() {
        let text = r#"
domains = ["a.test"]
[[queue_servers]]
host = "isp.test"
[inbound]
listen = ["0.0.0.0:25"]
deliver = "maildir:/srv/mail/Maildir"
hostname = "Backup.A.test"
[[backup_for]]
domain = "b.test"
deliver_to = "smtp://10.0.0.2:25"
release = ["etrn", "atrn"]
username = "b"
[backup]
odmr_listen = ["0.0.0.0:366"]
[dns]
nameservers = ["127.0.0.1:5353"]
"#;
        let config = Config::parse(text, std::path::Path::new("postern.toml")).unwrap();

        let input = BackupCheckInput::from_config(&config, &config.backup_for[0]);

        assert_eq!(input.domain, "b.test");
        assert!(input.our_host.eq_ignore_ascii_case("Backup.A.test"));
        assert_eq!(input.release, vec![Release::Etrn, Release::Atrn]);
        assert_eq!(input.odmr_listen, vec!["0.0.0.0:366".parse().unwrap()]);
        assert_eq!(input.nameservers, vec!["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(input.mx_port, 25);
    }
}
