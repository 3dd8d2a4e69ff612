//! The checks themselves: facts in, findings out.

use std::net::IpAddr;

use super::dns::Target;
use super::dns::{Answer, Dns};
use super::findings::{CheckInput, Finding, Report, Severity, normalize_host};
use super::net::{is_global, is_public_domain};
use crate::config::{Protocol, QueueServer};

/// `s` with its first letter upper-cased, to start a sentence.
fn sentence(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn list<T: ToString>(items: &[T]) -> String {
    let v: Vec<String> = items.iter().map(|i| i.to_string()).collect();
    v.join(", ")
}

/// Check 1: the domain exists and has usable MX records. Returns the records to look at and
/// whether they are the implicit MX (the domain's own address), or `None` when there is nothing
/// more to check.
pub(crate) async fn domain_mx(
    r: &mut Report,
    dns: &Dns,
    domain: &str,
) -> Option<(Vec<(u16, String)>, bool)> {
    match dns.mx(domain).await {
        Answer::NxDomain => {
            r.push(
                Finding::new(
                    "domain.nxdomain",
                    Severity::Error,
                    domain,
                    format!("{} says the domain {domain} does not exist (NXDOMAIN).", sentence(dns.server())),
                )
                .fix("Check the spelling. If the domain is new or was just moved, make sure it is registered and its name servers are set at the registrar, then wait for the change to spread."),
            );
            None
        }
        Answer::Failed(why) => {
            r.complete = false;
            r.push(
                Finding::new(
                    "dns.lookup-failed",
                    Severity::Error,
                    domain,
                    format!("The MX lookup for {domain} failed: {why}. This is a temporary failure, not an answer: nothing is known about the MX records."),
                )
                .fix("Check this machine's network and DNS server (or the one given with --nameserver / [dns] nameservers), then run the check again."),
            );
            None
        }
        Answer::NoData => {
            r.push(
                Finding::new(
                    "mx.none",
                    Severity::Warning,
                    domain,
                    format!("{domain} has no MX records, so senders deliver to the domain's own address (implicit MX). A backup MX is impossible without MX records."),
                )
                .fix(format!("Publish MX records: the office's server with the lowest preference (e.g. `{domain}. MX 10 mail.{domain}.`) and the ISP's queuing server with a higher one (e.g. `MX 20`).")),
            );
            Some((vec![(0, domain.to_string())], true))
        }
        Answer::Found(records) => {
            let (null, real): (Vec<_>, Vec<_>) = records.into_iter().partition(|(_, h)| h == ".");
            if !null.is_empty() && real.is_empty() {
                r.push(
                    Finding::new(
                        "mx.null",
                        Severity::Error,
                        domain,
                        format!("{domain} publishes a null MX (`0 .`, RFC 7505): it declares that the domain accepts no mail at all."),
                    )
                    .fix("Replace the null MX with real MX records: the office's server with the lowest preference and the ISP's queuing server with a higher one."),
                );
                return None;
            }
            if !null.is_empty() {
                r.push(
                    Finding::new(
                        "mx.null-mixed",
                        Severity::Error,
                        domain,
                        format!("{domain} has a null MX (`0 .`) next to real MX records; RFC 7505 says a null MX must be the only one, and senders may refuse to deliver."),
                    )
                    .fix("Delete the `MX 0 .` record."),
                );
            }
            let mut sorted = real;
            sorted.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            let shown: Vec<String> = sorted.iter().map(|(p, h)| format!("{p} {h}")).collect();
            r.push(Finding::new(
                "mx.found",
                Severity::Ok,
                domain,
                format!("MX records: {}", shown.join("; ")),
            ));
            if sorted.len() == 1 {
                r.push(
                    Finding::new(
                        "mx.single",
                        Severity::Info,
                        domain,
                        format!("{domain} has a single MX ({}), so there is no backup MX: while the office is offline, senders keep retrying for a few days and then bounce the mail.", sorted[0].1),
                    )
                    .fix("Add the ISP's queuing server as a second MX with a higher preference value."),
                );
            }
            Some((sorted, false))
        }
    }
}

/// Check 2: every MX target is a host name, not an alias, with addresses.
pub(crate) fn targets(r: &mut Report, targets: &[Target], server: &str, implicit: bool) {
    let public = is_public_domain(&r.domain);
    let mut seen: Vec<&str> = Vec::new();
    for t in targets {
        let h = t.host.as_str();
        if seen.contains(&h) {
            r.push(
                Finding::new(
                    "mx.duplicate-target",
                    Severity::Warning,
                    h,
                    format!("{h} appears in more than one MX record."),
                )
                .fix("Keep one MX record per host; give it the preference it should have."),
            );
            continue;
        }
        seen.push(h);
        if let Some(ip) = t.ip_literal {
            r.push(
                Finding::new(
                    "mx.ip-literal",
                    Severity::Error,
                    h,
                    format!("The MX record points to the address {ip}. An MX must name a host; senders treat {h} as a host name that does not exist, and may not deliver at all."),
                )
                .fix(format!("Create a host name with an A record for {ip} (e.g. `mail.{}. A {ip}`) and point the MX at that name.", r.domain)),
            );
            continue;
        }
        if let Answer::Found(c) = &t.cname {
            let to = c.first().map(String::as_str).unwrap_or("another name");
            r.push(
                Finding::new(
                    "mx.cname-target",
                    Severity::Error,
                    h,
                    format!("The MX target {h} is an alias (CNAME) for {to}. RFC 2181 §10.3 forbids an MX pointing to an alias; some senders refuse or mis-handle it."),
                )
                .fix(format!("Point the MX record at {to} directly, or replace the CNAME {h} with A/AAAA records.")),
            );
        }
        let addrs = t.addresses();
        if addrs.is_empty() {
            let failed: Vec<&str> = [&t.v4, &t.v6]
                .into_iter()
                .filter_map(|a| match a {
                    Answer::Failed(w) => Some(w.as_str()),
                    _ => None,
                })
                .collect();
            if let Some(why) = failed.first() {
                r.push(
                    Finding::new(
                        "mx.target-lookup-failed",
                        Severity::Warning,
                        h,
                        format!("The address lookup for {h} failed: {why}. This is a temporary failure; whether {h} has addresses is unknown."),
                    )
                    .fix("Run the check again; if it keeps failing, check the DNS server."),
                );
            } else {
                let what = if t.v4 == Answer::NxDomain && t.v6 == Answer::NxDomain {
                    format!("{} says {h} does not exist (NXDOMAIN)", sentence(server))
                } else {
                    format!("{h} exists but has neither A nor AAAA records")
                };
                r.push(
                    Finding::new(
                        "mx.no-address",
                        Severity::Error,
                        h,
                        if implicit {
                            format!("{what}: with no MX and no address, nobody can deliver mail to {}.", r.domain)
                        } else {
                            format!("{what}: senders cannot deliver to this MX.")
                        },
                    )
                    .fix(format!("Add an A (and/or AAAA) record for {h} with the server's public address, or remove the MX record.")),
                );
            }
            continue;
        }
        let non_global: Vec<IpAddr> = addrs.iter().copied().filter(|ip| !is_global(*ip)).collect();
        if public && !non_global.is_empty() {
            let all = non_global.len() == addrs.len();
            r.push(
                Finding::new(
                    "mx.private-address",
                    if all { Severity::Error } else { Severity::Warning },
                    h,
                    format!("{h} resolves to {} — private, loopback or otherwise unroutable, so servers on the Internet cannot connect there{}.", list(&non_global), if all { "" } else { " (it has other addresses too)" }),
                )
                .fix(format!("Publish {h}'s public address (the router's WAN address, with port 25 forwarded) in its A/AAAA record; keep private addresses in internal DNS only.")),
            );
        } else {
            r.push(Finding::new(
                "mx.target-resolves",
                Severity::Ok,
                h,
                format!("{h} resolves to {}", list(&addrs)),
            ));
        }
    }
}

fn queue_index(targets: &[Target], qs: &QueueServer) -> Option<usize> {
    let want = normalize_host(&qs.host);
    targets.iter().position(|t| t.host == want)
}

/// Check 3: preference order. Returns the index of the office's target, if identified.
pub(crate) fn preferences(
    r: &mut Report,
    targets: &[Target],
    input: &CheckInput,
    implicit: bool,
) -> Option<usize> {
    let queue_targets: Vec<Option<usize>> = input
        .queue_servers
        .iter()
        .map(|qs| queue_index(targets, qs))
        .collect();
    for (qs, idx) in input.queue_servers.iter().zip(&queue_targets) {
        if idx.is_none() {
            r.push(
                Finding::new(
                    "pref.queue-not-in-mx",
                    Severity::Warning,
                    &qs.host,
                    if implicit {
                        format!("{} has no MX records, so the queuing server {} is not a backup MX: mail will not queue there.", r.domain, qs.host)
                    } else {
                        format!("The queuing server {} is not among {}'s MX records, so senders never deliver there: mail will not queue there.", qs.host, r.domain)
                    },
                )
                .fix(format!("Add `{}. MX <higher than the office's> {}.` — or, if the ISP uses another name for its backup MX, use that name as `host` in [[queue_servers]].", r.domain, qs.host)),
            );
        }
    }
    if implicit {
        return Some(0);
    }

    let office = match &input.office_host {
        Some(name) => {
            let want = normalize_host(name);
            let found = targets.iter().position(|t| t.host == want);
            if found.is_none() {
                r.push(
                    Finding::new(
                        "pref.office-missing",
                        Severity::Error,
                        &want,
                        format!("The office's server {want} is not among {}'s MX records, so no sender delivers to the office directly.", r.domain),
                    )
                    .fix(format!("Add `{}. MX 10 {want}.` and give the queuing servers higher preference values (e.g. 20).", r.domain)),
                );
            }
            found
        }
        None => {
            let candidates = || {
                targets
                    .iter()
                    .enumerate()
                    .filter(|(i, t)| !queue_targets.contains(&Some(*i)) && t.ip_literal.is_none())
            };
            let hint = input.office_hint.as_deref().map(normalize_host);
            let candidate = candidates()
                .find(|(_, t)| Some(&t.host) == hint.as_ref())
                .or_else(|| candidates().min_by_key(|(_, t)| t.preference))
                .map(|(i, _)| i);
            if candidate.is_none() {
                r.push(
                    Finding::new(
                        "pref.office-missing",
                        Severity::Error,
                        &r.domain,
                        format!("Every MX of {} is a configured queuing server: no MX points at the office, so mail always waits at the ISP.", r.domain),
                    )
                    .fix(format!("Add an MX for the office's own server with a lower preference value than the queuing servers (e.g. `{}. MX 10 mail.{}.`).", r.domain, r.domain)),
                );
            }
            candidate
        }
    };
    let oi = office?;
    let o = &targets[oi];
    if input.queue_servers.is_empty() {
        r.push(Finding::new(
            "pref.no-queue-servers",
            Severity::Info,
            &r.domain,
            format!("No queuing servers are configured, so only the MX records were checked; {} (preference {}) is taken as the office's server.", o.host, o.preference),
        ).fix("Add the ISP's queuing server as a [[queue_servers]] entry in postern.toml."));
    }
    for (qs, idx) in input.queue_servers.iter().zip(&queue_targets) {
        let Some(qi) = *idx else { continue };
        if qi == oi {
            r.push(
                Finding::new(
                    "pref.queue-is-office",
                    Severity::Error,
                    &qs.host,
                    format!("{} is configured both as the office's server and as a queuing server.", qs.host),
                )
                .fix("Name the ISP's queuing server in [[queue_servers]] and the office's own server as the office host."),
            );
            continue;
        }
        let q = &targets[qi];
        if q.preference < o.preference {
            r.push(
                Finding::new(
                    "pref.backup-preferred",
                    Severity::Error,
                    &q.host,
                    format!("The queuing server {} has preference {}, lower (= preferred) than the office's {} with {}: senders deliver to the queue first, so mail always waits there.", q.host, q.preference, o.host, o.preference),
                )
                .fix(format!("Give the office's server the lowest value: e.g. `MX 10 {}.` and `MX 20 {}.`", o.host, q.host)),
            );
        } else if q.preference == o.preference {
            r.push(
                Finding::new(
                    "pref.equal",
                    Severity::Error,
                    &q.host,
                    format!("The queuing server {} and the office's {} both have preference {}: senders pick one at random (round robin), so about half the mail waits at the queue even while the office is online.", q.host, o.host, q.preference),
                )
                .fix(format!("Give the queuing server a strictly higher value, e.g. `MX {} {}.`", o.preference.saturating_add(10), q.host)),
            );
        } else {
            r.push(Finding::new(
                "pref.order-ok",
                Severity::Ok,
                &q.host,
                format!("The queuing server {} (preference {}) is a backup of the office's {} (preference {}).", q.host, q.preference, o.host, o.preference),
            ));
        }
    }
    for (i, t) in targets.iter().enumerate() {
        if i == oi || queue_targets.contains(&Some(i)) || t.ip_literal.is_some() {
            continue;
        }
        if targets[..i].iter().any(|p| p.host == t.host) {
            continue;
        }
        let (id, severity, evidence) = if t.preference == o.preference {
            (
                "pref.equal",
                Severity::Error,
                format!(
                    "{} and the office's {} both have preference {}: senders pick one at random, so part of the mail does not go to the office.",
                    t.host, o.host, t.preference
                ),
            )
        } else if t.preference < o.preference {
            (
                "pref.unknown-mx",
                Severity::Error,
                format!(
                    "{} (preference {}) is neither the office's server nor a configured queuing server, and senders prefer it to the office's {} (preference {}): mail goes there first and is not fetched by Postern.",
                    t.host, t.preference, o.host, o.preference
                ),
            )
        } else {
            (
                "pref.unknown-mx",
                Severity::Warning,
                format!(
                    "{} (preference {}) is neither the office's server nor a configured queuing server: mail that lands there is not fetched by Postern.",
                    t.host, t.preference
                ),
            )
        };
        r.push(
            Finding::new(id, severity, &t.host, evidence)
            .fix(format!("If {} is the ISP's queuing server, add it as a [[queue_servers]] entry; otherwise remove the MX record.", t.host)),
        );
    }
    Some(oi)
}

/// Check 5: the office address's reverse DNS.
pub(crate) async fn reverse_dns(r: &mut Report, dns: &Dns, office: &Target) {
    let public = is_public_domain(&r.domain);
    for ip in office.addresses() {
        if public && !is_global(ip) {
            continue;
        }
        match dns.ptr(ip).await {
            Answer::Found(names) => {
                if names.iter().any(|n| normalize_host(n) == office.host) {
                    r.push(Finding::new(
                        "rdns.match",
                        Severity::Ok,
                        ip.to_string(),
                        format!("The reverse DNS (PTR) of {ip} is {}, the office's MX name.", office.host),
                    ));
                } else {
                    r.push(
                        Finding::new(
                            "rdns.mismatch",
                            Severity::Info,
                            ip.to_string(),
                            format!("The reverse DNS (PTR) of {ip} is {}, not the office's MX name {}. Receiving servers compare these for mail sent from this address.", list(&names), office.host),
                        )
                        .fix(format!("Ask whoever owns {ip} (usually the ISP) to set its PTR record to {}.", office.host)),
                    );
                }
            }
            Answer::NoData | Answer::NxDomain => r.push(
                Finding::new(
                    "rdns.missing",
                    Severity::Warning,
                    ip.to_string(),
                    format!("{ip} has no reverse DNS (PTR) record. Many receivers reject or distrust mail from addresses without one."),
                )
                .fix(format!("Ask whoever owns {ip} (usually the ISP) to set its PTR record to {}.", office.host)),
            ),
            Answer::Failed(why) => r.push(Finding::new(
                "rdns.lookup-failed",
                Severity::Info,
                ip.to_string(),
                format!("The reverse lookup of {ip} failed: {why}."),
            )),
        }
    }
}

/// Check 6: can a queuing server's ETRN-triggered delivery reach this machine? Returns
/// `Some(false)` when it cannot, `Some(true)` when it can as far as this machine can tell,
/// `None` when unknown.
pub(crate) fn etrn_reachability(
    r: &mut Report,
    office: Option<&Target>,
    input: &CheckInput,
    local: &[IpAddr],
) -> Option<bool> {
    let office = office?;
    let addrs = office.addresses();
    if addrs.is_empty() {
        // mx.no-address already says what is wrong; ATRN would not be the fix.
        return None;
    }
    let port = input.mx_port;
    let public = is_public_domain(&r.domain);
    let mut verdict: Option<bool> = None;
    for ip in addrs {
        let subject = format!("{ip} ({})", office.host);
        let is_local = local.contains(&ip) || ip.is_loopback();
        if is_local {
            if input.inbound_listen.is_empty() {
                r.push(Finding::new(
                    "etrn.listener-unknown",
                    Severity::Info,
                    subject,
                    format!("{ip} is an address of this machine, but no [inbound] listen address is configured, so whether Postern receives mail there is unknown."),
                ).fix(format!("Set [inbound] listen = [\"0.0.0.0:{port}\"] in postern.toml.")));
                continue;
            }
            let on_addr: Vec<_> = input
                .inbound_listen
                .iter()
                .filter(|l| {
                    l.ip() == ip || (l.ip().is_unspecified() && l.ip().is_ipv4() == ip.is_ipv4())
                })
                .collect();
            if on_addr.iter().any(|l| l.port() == port) {
                verdict = Some(verdict.unwrap_or(true));
                r.push(Finding::new(
                    "etrn.reachable",
                    Severity::Ok,
                    subject,
                    format!("The office's MX address {ip} is this machine's, and the inbound listener accepts connections there on port {port}: mail released by ETRN can be delivered."),
                ));
            } else if let Some(l) = on_addr.first() {
                verdict = Some(verdict.unwrap_or(true));
                r.push(Finding::new(
                    "etrn.listener-port",
                    Severity::Warning,
                    subject,
                    format!("The queuing server delivers to port {port} of {ip}, but the inbound listener is on port {}.", l.port()),
                ).fix(format!("Forward TCP port {port} to port {} on this machine (router port forwarding, or a firewall redirect rule), or listen on port {port}.", l.port())));
            } else {
                verdict = Some(false);
                r.push(Finding::new(
                    "etrn.listener-not-on-address",
                    Severity::Error,
                    subject,
                    format!("{ip} is this machine's, but the inbound listener only listens on {}: mail released by ETRN cannot be delivered.", list(&input.inbound_listen)),
                ).fix(format!("Add \"{}\" (or \"0.0.0.0:{port}\") to [inbound] listen.", std::net::SocketAddr::new(ip, port))));
            }
        } else if public && !is_global(ip) {
            verdict = Some(false);
            r.push(Finding::new(
                "etrn.unreachable-address",
                Severity::Error,
                subject,
                format!("The office's MX address {ip} is a private address, and not this machine's: the ISP's queuing server can never connect to it, so ETRN can never deliver."),
            ).fix("Publish the office's public address in the MX host's A record and forward port 25 to this machine — or use ATRN (`protocol = \"atrn\"`), which needs no inbound connection."));
        } else {
            r.push(Finding::new(
                "etrn.needs-forwarding",
                Severity::Info,
                subject,
                format!("{ip} is not an address of this machine ({}). If it is the office router's public address, the router must forward TCP port {port} to this machine for ETRN to deliver; that cannot be tested from inside the office.", if local.is_empty() { "its addresses could not be read".to_string() } else { list(local) }),
            ).fix(format!("Forward TCP port {port} on the router to this machine's inbound listener ({}). If the ISP blocks inbound port 25, use ATRN instead.", if input.inbound_listen.is_empty() { "see [inbound] listen".to_string() } else { list(&input.inbound_listen) })));
        }
    }
    verdict
}

/// What a probe learnt about a queuing server's dequeue commands.
#[derive(Debug, Clone)]
pub(crate) struct DequeueSupport {
    pub etrn: bool,
    pub atrn: bool,
}

/// The protocol that fits: ATRN when ETRN cannot deliver or only ATRN is offered, ETRN when it
/// can deliver and is offered.
/// TURN releases the mail to whoever logs in: say so wherever it is configured.
pub(crate) fn insecure_turn(r: &mut Report, input: &CheckInput) {
    for qs in input
        .queue_servers
        .iter()
        .filter(|q| q.protocol == Protocol::Turn)
    {
        r.push(
            Finding::new(
                "queue.turn-insecure",
                Severity::Warning,
                &qs.host,
                format!(
                    "{} is used with TURN: anyone who can log in there can take the office's mail, and TURN cannot say which domains to release.",
                    qs.host
                ),
            )
            .fix("Use protocol = \"atrn\" if the ISP offers On-Demand Mail Relay (port 366), or \"etrn\" if the office can be reached on port 25."),
        );
    }
}

pub(crate) fn recommend(
    r: &mut Report,
    input: &CheckInput,
    etrn_possible: Option<bool>,
    support: &[DequeueSupport],
) {
    let only_atrn = !support.is_empty() && support.iter().all(|s| s.atrn && !s.etrn);
    let uses_etrn = input
        .queue_servers
        .iter()
        .any(|q| q.protocol != Protocol::Atrn);
    r.recommended_protocol = if etrn_possible == Some(false) || only_atrn {
        Some(Protocol::Atrn)
    } else if support.iter().any(|s| s.etrn) && etrn_possible == Some(true) {
        Some(Protocol::Etrn)
    } else {
        None
    };
    if etrn_possible == Some(false) && uses_etrn {
        r.push(
            Finding::new(
                "etrn.cannot-deliver",
                Severity::Error,
                &r.domain,
                "ETRN only asks the queuing server to deliver to the office's MX address; as set up, that delivery cannot reach this machine.".to_string(),
            )
            .fix("Use ATRN (`protocol = \"atrn\"`, port 366, with a username): the mail then comes back over Postern's own connection, so nothing inbound is needed. Ask the ISP whether it offers ATRN (On-Demand Mail Relay)."),
        );
    }
}
