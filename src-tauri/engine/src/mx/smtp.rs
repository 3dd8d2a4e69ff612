//! Check 4 (and 7): SMTP probes of every MX host and every configured queuing server, through
//! the engine's own SMTP client, connecting to the addresses the checker's DNS found.

use std::net::IpAddr;
use std::time::Duration;

use super::dns::Dns;
use super::dns::Target;
use super::findings::{CheckInput, Finding, Report, Severity, normalize_host};
use super::rules::DequeueSupport;
use crate::config::{Protocol, QueueServer, TlsMode};
use crate::dequeue::reply::{Disposition, etrn_meaning};
use crate::smtp::client::{Capabilities, ClientError, ClientOptions, SmtpClient};
use crate::tls::TrustPolicy;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Office,
    Queue,
    OtherMx,
}

#[derive(Debug, Clone)]
struct Probe {
    host: String,
    ip: Option<IpAddr>,
    port: u16,
    role: Role,
    queue: Option<QueueServer>,
}

impl Probe {
    fn subject(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Probes every server; returns what the queuing servers offer for dequeueing.
pub(crate) async fn probe_all(
    r: &mut Report,
    dns: &Dns,
    targets: &[Target],
    office: Option<usize>,
    input: &CheckInput,
) -> Vec<DequeueSupport> {
    let mut probes: Vec<Probe> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        if t.ip_literal.is_some() || probes.iter().any(|p| p.host == t.host) {
            continue;
        }
        let queue = input
            .queue_servers
            .iter()
            .find(|q| normalize_host(&q.host) == t.host)
            .cloned();
        let role = match (&queue, office == Some(i)) {
            (Some(_), _) => Role::Queue,
            (None, true) => Role::Office,
            (None, false) => Role::OtherMx,
        };
        probes.push(Probe {
            host: t.host.clone(),
            ip: t.addresses().first().copied(),
            port: queue.as_ref().map(|q| q.port).unwrap_or(input.mx_port),
            role,
            queue,
        });
    }
    for q in &input.queue_servers {
        let host = normalize_host(&q.host);
        if probes.iter().any(|p| p.host == host) {
            continue;
        }
        let ip = match host.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                let (v4, v6) = dns.addresses(&host).await;
                v4.found().iter().chain(v6.found()).next().copied()
            }
        };
        probes.push(Probe {
            host,
            ip,
            port: q.port,
            role: Role::Queue,
            queue: Some(q.clone()),
        });
    }

    let helo_name = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_string();
    let helo_name = if helo_name.is_empty() {
        "postern.invalid".to_string()
    } else {
        helo_name
    };
    let mut set = tokio::task::JoinSet::new();
    for (i, p) in probes.into_iter().enumerate() {
        let helo_name = helo_name.clone();
        let domain = r.domain.clone();
        let timeout = input.smtp_timeout;
        let dry_run = input.dry_run_etrn;
        set.spawn(async move { (i, probe(p, &helo_name, &domain, timeout, dry_run).await) });
    }
    let mut results = set.join_all().await;
    results.sort_by_key(|(i, _)| *i);
    let mut support = Vec::new();
    for (_, (findings, s)) in results {
        r.findings.extend(findings);
        support.extend(s);
    }
    support
}

fn caps_summary(c: &Capabilities) -> String {
    if !c.extended {
        return "no ESMTP (HELO only)".to_string();
    }
    let mut parts: Vec<String> = Vec::new();
    for (k, params) in &c.keywords {
        if params.is_empty() {
            parts.push(k.clone());
        } else {
            parts.push(format!("{k} {}", params.join(" ")));
        }
    }
    parts.join(", ")
}

async fn probe(
    p: Probe,
    helo_name: &str,
    domain: &str,
    timeout: Duration,
    dry_run: bool,
) -> (Vec<Finding>, Option<DequeueSupport>) {
    let mut out = Vec::new();
    let subject = p.subject();
    let Some(ip) = p.ip else {
        if p.role == Role::Queue {
            out.push(
                Finding::new(
                    "smtp.no-address",
                    Severity::Error,
                    &subject,
                    format!(
                        "The queuing server {} has no address in DNS, so Postern cannot reach it.",
                        p.host
                    ),
                )
                .fix("Check the host name in [[queue_servers]] against what the ISP gave you."),
            );
        }
        return (out, None);
    };
    let timeout = p
        .queue
        .as_ref()
        .map(|q| q.timeout.min(timeout))
        .unwrap_or(timeout);
    let opts = ClientOptions {
        host: p.host.clone(),
        port: p.port,
        timeout,
        helo_name: helo_name.to_string(),
        trust: TrustPolicy {
            ca_file: p.queue.as_ref().and_then(|q| q.tls_ca.clone()),
            fingerprint: p.queue.as_ref().and_then(|q| q.tls_fingerprint),
        },
        connect_addr: Some(ip),
    };
    let mut client = match SmtpClient::connect(&opts).await {
        Ok(c) => c,
        Err(e) => {
            out.push(unreachable(&p, &subject, ip, &e));
            return (out, None);
        }
    };
    let greeting = client.greeting().text();
    let connect_ms = client.connect_time().as_millis();
    if let Err(e) = client.hello().await {
        out.push(
            Finding::new(
                "smtp.ehlo-failed",
                if p.role == Role::Queue {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                &subject,
                format!("{subject} greeted with \"{greeting}\" but EHLO/HELO failed: {e}"),
            )
            .fix("Ask the server's operator why it refuses EHLO from this address."),
        );
        return (out, None);
    }
    let mut caps = client.capabilities().clone();
    out.push(Finding::new(
        "smtp.answers",
        Severity::Ok,
        &subject,
        format!(
            "{subject} ({ip}) answered in {connect_ms} ms: \"{greeting}\"; EHLO offers: {}",
            caps_summary(&caps)
        ),
    ));
    let tls_mode = p.queue.as_ref().map(|q| q.tls);
    let mut connection_usable = true;
    if caps.has("STARTTLS") {
        match client.start_tls().await {
            Ok(after) => {
                caps = after.clone();
                let (version, cipher) = client
                    .tls()
                    .map(|t| (t.version.clone(), t.cipher.clone()))
                    .unwrap_or_default();
                out.push(Finding::new(
                    "smtp.tls-ok",
                    Severity::Ok,
                    &subject,
                    format!(
                        "STARTTLS works and the certificate is valid for {} ({version}, {cipher}); after TLS, EHLO offers: {}",
                        p.host,
                        caps_summary(&caps)
                    ),
                ));
            }
            Err(e) => {
                connection_usable = false;
                let verification = matches!(e, ClientError::Tls { .. });
                let severity = match (p.role, tls_mode) {
                    (Role::Queue, Some(TlsMode::Required)) => Severity::Error,
                    (Role::Queue, Some(TlsMode::Opportunistic)) => Severity::Warning,
                    _ => Severity::Info,
                };
                let fix = if p.role == Role::Queue {
                    format!(
                        "If the ISP uses its own CA or a self-signed certificate, set tls_ca = \"/path/to/isp-ca.pem\" or pin it with tls_fingerprint in this server's [[queue_servers]] entry; otherwise ask the ISP to fix the certificate for {}.",
                        p.host
                    )
                } else {
                    format!(
                        "Install a certificate valid for {} on that server (e.g. from Let's Encrypt).",
                        p.host
                    )
                };
                out.push(
                    Finding::new(
                        if verification {
                            "smtp.tls-invalid"
                        } else {
                            "smtp.tls-failed"
                        },
                        severity,
                        &subject,
                        format!("{subject} offers STARTTLS, but TLS failed: {e}"),
                    )
                    .fix(fix),
                );
            }
        }
    } else if p.role == Role::Queue && tls_mode != Some(TlsMode::Off) {
        let required = tls_mode == Some(TlsMode::Required);
        out.push(
            Finding::new(
                "smtp.no-starttls",
                if required { Severity::Error } else { Severity::Info },
                &subject,
                format!("{subject} does not offer STARTTLS: commands{} travel unencrypted.", if p.queue.as_ref().is_some_and(|q| q.username.is_some()) { " and the login" } else { "" }),
            )
            .fix(if required {
                "Ask the ISP to enable STARTTLS, or set tls = \"opportunistic\" for this server if you accept an unencrypted session."
            } else {
                "Ask the ISP to enable STARTTLS."
            }),
        );
    }

    let mut support = None;
    if let (Role::Queue, Some(q)) = (p.role, &p.queue) {
        let etrn = caps.has("ETRN");
        let atrn = caps.has("ATRN");
        support = Some(DequeueSupport { etrn, atrn });
        judge_dequeue(&mut out, &subject, q, &caps, etrn, atrn);
        if dry_run && q.protocol == Protocol::Etrn && etrn {
            if connection_usable {
                let arg = q.etrn_argument(domain).to_string();
                match client.command(&format!("ETRN {arg}")).await {
                    Ok(reply) => {
                        let m = etrn_meaning(&reply, domain);
                        let severity = match m.disposition {
                            Disposition::Released | Disposition::NothingWaiting => Severity::Ok,
                            Disposition::Retry => Severity::Warning,
                            Disposition::Permanent => Severity::Error,
                        };
                        let mut f = Finding::new(
                            "etrn.dry-run",
                            severity,
                            &subject,
                            format!("ETRN {arg} → {reply}: {}", m.meaning),
                        );
                        f.fix = m.fix;
                        out.push(f);
                    }
                    Err(e) => out.push(Finding::new(
                        "etrn.dry-run",
                        Severity::Error,
                        &subject,
                        format!("ETRN {arg} got no reply: {e}"),
                    )),
                }
            } else {
                out.push(Finding::new(
                    "etrn.dry-run",
                    Severity::Info,
                    &subject,
                    "ETRN was not sent: the TLS failure above closed the connection.",
                ));
            }
        }
    }
    if connection_usable {
        client.quit().await;
    }
    (out, support)
}

fn unreachable(p: &Probe, subject: &str, ip: IpAddr, e: &ClientError) -> Finding {
    match p.role {
        Role::Queue => Finding::new(
            "smtp.unreachable",
            Severity::Error,
            subject,
            format!("Cannot talk SMTP to the queuing server at {ip}: {e}"),
        )
        .fix("Check the host and port in [[queue_servers]], and that this network may connect there (some ISPs only accept ETRN from their own customers' addresses)."),
        Role::Office => Finding::new(
            "smtp.unreachable",
            Severity::Warning,
            subject,
            format!("Cannot talk SMTP to the office's MX at {ip} from this machine: {e}"),
        )
        .fix("Make sure Postern (or the office mail server) listens there; from inside the office, a router without NAT loopback can also cause this — test from outside."),
        Role::OtherMx => Finding::new(
            "smtp.unreachable",
            Severity::Warning,
            subject,
            format!("Cannot talk SMTP to the MX at {ip}: {e}"),
        )
        .fix("Senders will fail over to the other MX hosts; remove MX records of servers that no longer receive mail."),
    }
}

fn judge_dequeue(
    out: &mut Vec<Finding>,
    subject: &str,
    q: &QueueServer,
    caps: &Capabilities,
    etrn: bool,
    atrn: bool,
) {
    match q.protocol {
        Protocol::Etrn if !etrn => {
            let fix = if atrn {
                "The server offers ATRN instead: set protocol = \"atrn\" (port 366, with a username) for this server.".to_string()
            } else {
                "Ask the ISP to enable ETRN for your domain (Postfix: the domain in fast_flush_domains and your address allowed by smtpd_etrn_restrictions), or ask whether it offers ATRN.".to_string()
            };
            out.push(
                Finding::new(
                    "smtp.no-etrn",
                    Severity::Error,
                    subject,
                    format!(
                        "{subject} does not advertise ETRN{}, so it cannot be asked to release the office's mail.",
                        if atrn { " (it advertises ATRN)" } else { "" }
                    ),
                )
                .fix(fix),
            );
        }
        Protocol::Etrn => out.push(Finding::new(
            "smtp.etrn-offered",
            Severity::Ok,
            subject,
            format!("{subject} advertises ETRN."),
        )),
        Protocol::Atrn if !atrn => out.push(
            Finding::new(
                "smtp.no-atrn",
                Severity::Error,
                subject,
                format!(
                    "{subject} does not advertise ATRN{}.",
                    if etrn { " (it advertises ETRN)" } else { "" }
                ),
            )
            .fix(if etrn {
                "Use protocol = \"etrn\" with this server (the office must then be reachable on port 25), or check the port: ATRN servers usually listen on 366."
            } else {
                "Check the port (ATRN/ODMR servers listen on 366) and ask the ISP whether it offers On-Demand Mail Relay."
            }),
        ),
        Protocol::Atrn => out.push(Finding::new(
            "smtp.atrn-offered",
            Severity::Ok,
            subject,
            format!("{subject} advertises ATRN."),
        )),
        Protocol::Turn => {}
    }
    if q.username.is_some() && caps.auth_mechanisms().is_empty() {
        out.push(
            Finding::new(
                "smtp.no-auth",
                Severity::Warning,
                subject,
                format!(
                    "A username is configured for {subject}, but it offers no AUTH mechanism{}.",
                    if caps.has("STARTTLS") {
                        " even after STARTTLS"
                    } else {
                        ""
                    }
                ),
            )
            .fix("Check the port (submission and ODMR ports usually offer AUTH) or remove the username."),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mx::rules::recommend;

    fn server(protocol: Protocol) -> QueueServer {
        QueueServer {
            timeout: Duration::from_secs(5),
            ..QueueServer::new("isp.test", protocol)
        }
    }

    fn caps(keywords: &[&str]) -> Capabilities {
        Capabilities {
            greeting: "isp.test".into(),
            keywords: keywords
                .iter()
                .map(|k| (k.to_string(), Vec::new()))
                .collect(),
            extended: true,
        }
    }

    #[test]
    fn atrn_without_etrn_recommends_atrn() {
        let q = server(Protocol::Etrn);
        let mut out = Vec::new();
        let mut input = CheckInput::new("office.test");
        input.queue_servers = vec![q.clone()];
        let mut report = Report::new("office.test");

        judge_dequeue(&mut out, "isp.test:25", &q, &caps(&["ATRN"]), false, true);
        recommend(
            &mut report,
            &input,
            Some(true),
            &[DequeueSupport {
                etrn: false,
                atrn: true,
            }],
        );

        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, "smtp.no-etrn");
        assert_eq!(out[0].severity, Severity::Error);
        assert!(
            out[0]
                .fix
                .as_deref()
                .unwrap_or("")
                .contains("protocol = \"atrn\"")
        );
        assert_eq!(report.recommended_protocol, Some(Protocol::Atrn));
    }

    #[test]
    fn atrn_server_without_atrn_is_an_error() {
        let q = server(Protocol::Atrn);
        let mut out = Vec::new();

        judge_dequeue(&mut out, "isp.test:366", &q, &caps(&["ETRN"]), true, false);

        assert_eq!(out[0].id, "smtp.no-atrn");
        assert_eq!(out[0].severity, Severity::Error);
    }

    #[test]
    fn username_without_auth_is_a_warning() {
        let mut q = server(Protocol::Atrn);
        q.username = Some("office".into());
        let mut out = Vec::new();

        judge_dequeue(&mut out, "isp.test:366", &q, &caps(&["ATRN"]), false, true);

        assert_eq!(out[0].id, "smtp.atrn-offered");
        assert_eq!(out[1].id, "smtp.no-auth");
        assert_eq!(out[1].severity, Severity::Warning);
    }
}
