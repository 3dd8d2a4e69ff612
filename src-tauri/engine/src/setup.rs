//! The checks behind the setup wizard and the Settings pane: what a queuing server supports and
//! which protocol to use ([`probe_queue_server`]), whether a delivery target works
//! ([`test_delivery`]), and whether mail released by ETRN can reach this computer
//! ([`check_reachability`]). The shell forwards to these; every error is one sentence that says
//! what is wrong and what to do.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::config::{self, DeliverTarget, Protocol, QueueServer};
use crate::mx;
use crate::smtp::client::{ClientOptions, SmtpClient};
use crate::tls::TrustPolicy;

/// How long a probe waits for a server.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// What a queuing server says it supports, and the protocol to use with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerReport {
    pub server: String,
    pub greeting: String,
    pub etrn: bool,
    pub atrn: bool,
    pub starttls: bool,
    pub auth: Vec<String>,
    /// `etrn`, `atrn`, or `None` when the server offers neither.
    pub recommended: Option<Protocol>,
    pub advice: String,
}

/// The protocol to use with a server that offers `etrn` and `atrn`, and why, in words. ATRN
/// first: it needs nothing from the office's router.
pub fn protocol_advice(etrn: bool, atrn: bool) -> (Option<Protocol>, &'static str) {
    match (atrn, etrn) {
        (true, _) => (
            Some(Protocol::Atrn),
            "ATRN: the mail comes back over this connection, so port 25 need not reach this computer",
        ),
        (false, true) => (
            Some(Protocol::Etrn),
            "ETRN: the server delivers to this computer's port 25, which must be reachable from the internet",
        ),
        (false, false) => (
            None,
            "this server offers neither ETRN nor ATRN here: ask your ISP which server and port hold your mail",
        ),
    }
}

/// Connects to `host:port`, reads the greeting and the EHLO capabilities, and advises.
pub async fn probe_queue_server(
    host: String,
    port: u16,
    helo_name: String,
) -> Result<ServerReport, String> {
    let opts = ClientOptions {
        host,
        port,
        timeout: PROBE_TIMEOUT,
        helo_name,
        trust: TrustPolicy {
            ca_file: None,
            fingerprint: None,
        },
        connect_addr: None,
    };
    let mut client = SmtpClient::connect(&opts).await.map_err(|e| {
        format!(
            "{e}. Check the server name and port with your ISP, and that this computer is online"
        )
    })?;
    let caps = client.hello().await.map_err(|e| e.to_string())?.clone();
    client.quit().await;
    let (etrn, atrn) = (caps.has("ETRN"), caps.has("ATRN"));
    let (recommended, advice) = protocol_advice(etrn, atrn);
    Ok(ServerReport {
        server: opts.server(),
        greeting: caps.greeting.clone(),
        etrn,
        atrn,
        starttls: caps.has("STARTTLS"),
        auth: caps.auth_mechanisms(),
        recommended,
        advice: advice.into(),
    })
}

/// Checks a delivery target: a Maildir folder can be created/written, an office server answers
/// with a 220 greeting. Returns what was found, in words.
pub async fn test_delivery(target: &str) -> Result<String, String> {
    match config::parse_deliver_target(target)? {
        DeliverTarget::Maildir(path) => {
            if !path.is_absolute() {
                return Err(
                    "the Maildir folder must be a full path, e.g. /srv/mail/Maildir".into(),
                );
            }
            let new = path.join("new");
            tokio::fs::create_dir_all(&new).await.map_err(|e| {
                format!(
                    "cannot create {}: {e}. Pick a folder you can write to",
                    new.display()
                )
            })?;
            Ok(format!("{} is ready for mail", path.display()))
        }
        DeliverTarget::Smtp { host, port } => {
            let greeting = tokio::time::timeout(PROBE_TIMEOUT, async {
                let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                let mut line = String::new();
                BufReader::new(stream).read_line(&mut line).await?;
                Ok::<_, std::io::Error>(line.trim_end().to_string())
            })
            .await
            .map_err(|_| {
                format!(
                    "{host}:{port} did not answer within {} s: is the office mail server on?",
                    PROBE_TIMEOUT.as_secs()
                )
            })?
            .map_err(|e| {
                format!(
                    "cannot reach {host}:{port}: {e}. Check the address and that the server runs"
                )
            })?;
            if greeting.starts_with("220") {
                Ok(format!("{host}:{port} answered: {greeting}"))
            } else {
                Err(format!(
                    "{host}:{port} is not ready for mail: it said \"{greeting}\""
                ))
            }
        }
    }
}

/// Whether mail released by ETRN can reach this computer, as far as the MX checker can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reachability {
    /// The office's MX address is this computer's and the listener is on it, on port 25.
    Reachable,
    /// Possible only with port forwarding (router, or port 25 to the listening port).
    NeedsForwarding,
    /// ETRN cannot deliver here as set up: ATRN is the way.
    Unreachable,
    /// The check could not tell (DNS failed, no office MX address, ...).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReachabilityReport {
    pub verdict: Reachability,
    /// The checker's findings about the way in (`etrn.*`) and what kept it from telling.
    pub findings: Vec<mx::Finding>,
}

/// Findings other than `etrn.*` that explain why reachability cannot be judged.
const REACHABILITY_BLOCKERS: &[&str] = &[
    "dns.lookup-failed",
    "domain.nxdomain",
    "mx.null",
    "mx.no-address",
    "mx.private-address",
];

/// The verdict from the `etrn.*` findings (see mx/rules.rs, `etrn_reachability`).
pub fn reachability(findings: &[mx::Finding]) -> Reachability {
    let etrn = || findings.iter().filter(|f| f.id.starts_with("etrn."));
    if etrn().any(|f| f.severity == mx::Severity::Error) {
        Reachability::Unreachable
    } else if etrn().any(|f| f.id == "etrn.listener-port" || f.id == "etrn.needs-forwarding") {
        Reachability::NeedsForwarding
    } else if etrn().any(|f| f.id == "etrn.reachable") {
        Reachability::Reachable
    } else {
        Reachability::Unknown
    }
}

/// What the wizard's "Listening port" step asks about.
#[derive(Debug, Clone, Default)]
pub struct ReachabilityQuestion {
    pub domains: Vec<String>,
    pub queue_host: Option<String>,
    pub listen_address: String,
    pub listen_port: u16,
    /// DNS servers to ask (empty: the system's).
    pub nameservers: Vec<SocketAddr>,
}

/// The MX checker's inputs for each domain of `q`, as if the inbound listener were on
/// `listen_address:listen_port` and the queuing server used ETRN; no SMTP probes.
pub fn reachability_inputs(q: &ReachabilityQuestion) -> Result<Vec<mx::CheckInput>, String> {
    let ip: IpAddr = q.listen_address.trim().parse().map_err(|_| {
        format!(
            "\"{}\" is not an IP address: write 0.0.0.0 (every network of this computer), 127.0.0.1 (this computer only) or one of this computer's addresses",
            q.listen_address
        )
    })?;
    if q.listen_port == 0 {
        return Err("the listening port is a number from 1 to 65535".into());
    }
    let domains: Vec<&str> = q
        .domains
        .iter()
        .map(|d| d.trim())
        .filter(|d| !d.is_empty())
        .collect();
    if domains.is_empty() {
        return Err("no mail domain to check: enter the office's domain in the first step".into());
    }
    let queue_servers: Vec<QueueServer> = q
        .queue_host
        .as_deref()
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|host| QueueServer {
            timeout: PROBE_TIMEOUT,
            ..QueueServer::new(host, Protocol::Etrn)
        })
        .into_iter()
        .collect();
    Ok(domains
        .into_iter()
        .map(|domain| mx::CheckInput {
            queue_servers: queue_servers.clone(),
            nameservers: q.nameservers.clone(),
            inbound_listen: vec![SocketAddr::new(ip, q.listen_port)],
            probe_smtp: false,
            ..mx::CheckInput::new(domain)
        })
        .collect())
}

/// Runs the MX checker for every domain of `q` and keeps what bears on the way in.
pub async fn check_reachability(q: &ReachabilityQuestion) -> Result<ReachabilityReport, String> {
    let mut findings: Vec<mx::Finding> = Vec::new();
    for input in reachability_inputs(q)? {
        let report = mx::check(&input).await.map_err(|e| e.to_string())?;
        for f in report.findings {
            let relevant =
                f.id.starts_with("etrn.") || REACHABILITY_BLOCKERS.contains(&f.id.as_str());
            if relevant && !findings.contains(&f) {
                findings.push(f);
            }
        }
    }
    Ok(ReachabilityReport {
        verdict: reachability(&findings),
        findings,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    fn finding(id: &str, severity: mx::Severity) -> mx::Finding {
        mx::Finding {
            id: id.into(),
            severity,
            subject: "office.test".into(),
            evidence: "evidence".into(),
            fix: None,
        }
    }

    #[test]
    fn atrn_is_advised_before_etrn_and_neither_says_whom_to_ask() {
        assert_eq!(protocol_advice(true, true).0, Some(Protocol::Atrn));
        assert_eq!(protocol_advice(true, false).0, Some(Protocol::Etrn));
        let (none, why) = protocol_advice(false, false);
        assert_eq!(none, None);
        assert!(why.contains("ask your ISP"), "{why}");
    }

    #[test]
    fn the_verdict_follows_the_etrn_findings() {
        use mx::Severity::*;
        let verdict = |fs: &[(&str, mx::Severity)]| {
            reachability(&fs.iter().map(|(id, s)| finding(id, *s)).collect::<Vec<_>>())
        };

        assert_eq!(verdict(&[("etrn.reachable", Ok)]), Reachability::Reachable);
        assert_eq!(
            verdict(&[("etrn.reachable", Ok), ("etrn.listener-port", Warning)]),
            Reachability::NeedsForwarding
        );
        assert_eq!(
            verdict(&[("etrn.needs-forwarding", Warning)]),
            Reachability::NeedsForwarding
        );
        assert_eq!(
            verdict(&[
                ("etrn.needs-forwarding", Warning),
                ("etrn.unreachable-address", Error)
            ]),
            Reachability::Unreachable
        );
        assert_eq!(
            verdict(&[("dns.lookup-failed", Error)]),
            Reachability::Unknown
        );
        assert_eq!(verdict(&[]), Reachability::Unknown);
    }

    #[test]
    fn a_reachability_question_becomes_one_probe_free_check_per_domain() {
        let q = ReachabilityQuestion {
            domains: vec![" office.test ".into(), "".into(), "branch.test".into()],
            queue_host: Some(" mx2.isp.test ".into()),
            listen_address: "0.0.0.0".into(),
            listen_port: 2525,
            nameservers: Vec::new(),
        };

        let inputs = reachability_inputs(&q).unwrap();

        let domains: Vec<_> = inputs.iter().map(|i| i.domain.as_str()).collect();
        assert_eq!(domains, vec!["office.test", "branch.test"]);
        assert!(inputs.iter().all(|i| !i.probe_smtp));
        assert_eq!(inputs[0].queue_servers[0].host, "mx2.isp.test");
        assert_eq!(
            inputs[0].inbound_listen,
            vec!["0.0.0.0:2525".parse().unwrap()]
        );
    }

    #[test]
    fn a_bad_reachability_question_says_what_to_write() {
        let q = |address: &str, port: u16, domain: &str| ReachabilityQuestion {
            domains: vec![domain.into()],
            listen_address: address.into(),
            listen_port: port,
            ..ReachabilityQuestion::default()
        };

        let address = reachability_inputs(&q("office", 25, "office.test")).unwrap_err();
        let port = reachability_inputs(&q("0.0.0.0", 0, "office.test")).unwrap_err();
        let domain = reachability_inputs(&q("0.0.0.0", 25, " ")).unwrap_err();

        assert!(address.contains("0.0.0.0"), "{address}");
        assert!(port.contains("1 to 65535"), "{port}");
        assert!(domain.contains("first step"), "{domain}");
    }

    #[tokio::test]
    async fn a_maildir_target_is_created_and_a_relative_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");

        let ready = test_delivery(&format!("maildir:{}", maildir.display())).await;
        let relative = test_delivery("maildir:Mail").await;

        assert!(ready.unwrap().contains("ready for mail"));
        assert!(maildir.join("new").is_dir());
        assert!(relative.unwrap_err().contains("full path"));
    }

    #[tokio::test]
    async fn an_smtp_target_must_greet_with_220() {
        let greet = |line: &'static [u8]| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = tokio::spawn(async move {
                let (mut conn, _) = listener.accept().await.unwrap();
                conn.write_all(line).await.unwrap();
            });
            let answer = test_delivery(&format!("smtp://127.0.0.1:{port}")).await;
            server.await.unwrap();
            answer
        };

        let ready = greet(b"220 office.test ESMTP\r\n").await;
        let busy = greet(b"421 busy\r\n").await;

        assert!(ready.unwrap().contains("answered: 220 office.test ESMTP"));
        assert!(busy.unwrap_err().contains("not ready for mail"));
    }
}
