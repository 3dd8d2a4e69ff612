//! The report for a `[[backup_for]]` domain: this office as a neighbour's backup MX. Its MX
//! records must name this office's host with a higher preference value than the neighbour's
//! own server, and this office must answer there (SMTP, and ODMR when `release` has atrn).

use super::backup_input::BackupCheckInput;
use super::check::resolve_targets;
use super::dns::{Dns, Target};
use super::findings::{CheckError, Finding, Report, Severity, normalize_host};
use super::{backup_probe, rules};
use crate::config::{BackupTarget, Release};

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
