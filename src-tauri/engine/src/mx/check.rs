//! Runs the whole check: gathers the facts, hands them to the rules.

use super::dns::{Answer, Dns, Target};
use super::findings::{CheckError, CheckInput, Report, ip_literal, normalize_host};
use super::{net, rules, smarthost, smtp};

/// Runs every check for `input.domain`.
pub async fn check(input: &CheckInput) -> Result<Report, CheckError> {
    let domain = normalize_host(&input.domain);
    if domain.is_empty() || domain.contains(char::is_whitespace) || ip_literal(&domain).is_some() {
        return Err(CheckError::InvalidDomain(input.domain.clone()));
    }
    if hickory_resolver::proto::rr::Name::from_ascii(format!("{domain}.")).is_err() {
        return Err(CheckError::InvalidDomain(input.domain.clone()));
    }
    let dns = Dns::new(&input.nameservers, input.dns_timeout)?;
    let mut report = Report::new(&domain);

    let Some((records, implicit)) = rules::domain_mx(&mut report, &dns, &domain).await else {
        return Ok(report);
    };
    let targets = resolve_targets(&dns, records).await;
    report.mx = targets
        .iter()
        .filter(|_| !implicit)
        .map(Target::view)
        .collect();

    rules::targets(&mut report, &targets, dns.server(), implicit);
    let office = rules::preferences(&mut report, &targets, input, implicit);
    report.office_host = office.map(|i| targets[i].host.clone());
    let office_target = office.map(|i| &targets[i]);
    if let Some(t) = office_target {
        rules::reverse_dns(&mut report, &dns, t).await;
    }
    let etrn_possible =
        rules::etrn_reachability(&mut report, office_target, input, &net::local_addresses());
    let capabilities = if input.probe_smtp {
        smtp::probe_all(&mut report, &dns, &targets, office, input).await
    } else {
        Vec::new()
    };
    rules::recommend(&mut report, input, etrn_possible, &capabilities);
    rules::insecure_turn(&mut report, input);
    if input.probe_smtp
        && let Some(outbound) = &input.smarthost
    {
        let helo = input.office_hint.as_deref().unwrap_or("postern.invalid");
        smarthost::check(&mut report, outbound, helo, input.smtp_timeout).await;
    }
    Ok(report)
}

pub(crate) async fn resolve_targets(dns: &Dns, records: Vec<(u16, String)>) -> Vec<Target> {
    let mut set = tokio::task::JoinSet::new();
    for (i, (preference, host)) in records.into_iter().enumerate() {
        let dns = dns.clone();
        set.spawn(async move {
            let literal = ip_literal(&host);
            let target = if literal.is_some() {
                Target {
                    preference,
                    host,
                    ip_literal: literal,
                    cname: Answer::NoData,
                    v4: Answer::NoData,
                    v6: Answer::NoData,
                }
            } else {
                let (cname, (v4, v6)) = tokio::join!(dns.cname(&host), dns.addresses(&host));
                Target {
                    preference,
                    host,
                    ip_literal: None,
                    cname,
                    v4,
                    v6,
                }
            };
            (i, target)
        });
    }
    let mut out: Vec<(usize, Target)> = set.join_all().await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, t)| t).collect()
}
