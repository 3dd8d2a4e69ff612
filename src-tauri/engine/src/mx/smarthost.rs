//! The smarthost of `[outbound]` (check 8): it answers, offers STARTTLS (or is `smtps://`) with a
//! certificate valid for its name, and offers an AUTH mechanism Postern can log in with.
//! Nothing is sent and no password is used: the probe ends after EHLO.

use std::sync::Arc;
use std::time::Duration;

use super::findings::{Finding, Report, Severity};
use crate::config::{Outbound, TlsMode};
use crate::outbound::smarthost::Smarthost;
use crate::secrets::MemoryStore;
use crate::smtp::client::ClientError;
use crate::smtp::sasl;

/// Probes the smarthost and adds its findings to `r`.
pub(crate) async fn check(r: &mut Report, outbound: &Outbound, helo_name: &str, timeout: Duration) {
    for finding in check_smarthost(outbound, helo_name, timeout).await {
        r.push(finding);
    }
}

/// What the smarthost of `outbound` offers, as findings (also the wizard's live test).
pub async fn check_smarthost(
    outbound: &Outbound,
    helo_name: &str,
    timeout: Duration,
) -> Vec<Finding> {
    let mut smarthost =
        Smarthost::from_config(outbound, helo_name, Arc::new(MemoryStore::default()));
    smarthost.timeout = timeout;
    probe(&smarthost).await
}

async fn probe(s: &Smarthost) -> Vec<Finding> {
    let subject = s.describe();
    let mut out = Vec::new();
    let mut client = match s.greet().await {
        Ok(c) => c,
        Err(f) => {
            out.push(
                Finding::new(
                    "smarthost.unreachable",
                    Severity::Error,
                    &subject,
                    format!("Cannot talk SMTP to the smarthost: {}", f.text),
                )
                .fix("Check `smarthost` in [outbound] against what the ISP gave you (host, port; smtps:// for port 465), and that this network may connect there."),
            );
            return out;
        }
    };
    let mut caps = client.capabilities().clone();
    out.push(Finding::new(
        "smarthost.answers",
        Severity::Ok,
        &subject,
        format!("The smarthost answered: \"{}\"", client.greeting().text()),
    ));
    let login = s.username.is_some();
    let must_tls = s.tls == TlsMode::Required || login;
    let mut secured = s.implicit_tls;
    if s.implicit_tls {
        out.push(Finding::new(
            "smarthost.tls-ok",
            Severity::Ok,
            &subject,
            format!(
                "TLS from the first byte works and the certificate is valid for {}.",
                s.host
            ),
        ));
    } else if s.tls == TlsMode::Off {
        // Nothing to judge: the user chose an unencrypted session (never with a login).
    } else if caps.has("STARTTLS") {
        match client.start_tls().await {
            Ok(after) => {
                caps = after.clone();
                secured = true;
                out.push(Finding::new(
                    "smarthost.tls-ok",
                    Severity::Ok,
                    &subject,
                    format!(
                        "STARTTLS works and the certificate is valid for {}.",
                        s.host
                    ),
                ));
            }
            Err(e) => {
                out.push(
                    Finding::new(
                        "smarthost.tls-invalid",
                        if must_tls { Severity::Error } else { Severity::Warning },
                        &subject,
                        format!("The smarthost offers STARTTLS, but TLS failed: {e}"),
                    )
                    .fix(if matches!(e, ClientError::Tls { .. }) {
                        "If the ISP uses its own CA or a self-signed certificate, set smarthost_tls_ca = \"/path/to/isp-ca.pem\" in [outbound]; otherwise ask the ISP to fix the certificate."
                    } else {
                        "Ask the ISP why STARTTLS fails, or try its implicit-TLS port (smarthost = \"smtps://HOST:465\")."
                    }),
                );
                client.quit().await;
                return out;
            }
        }
    } else {
        out.push(
            Finding::new(
                "smarthost.no-starttls",
                if must_tls { Severity::Error } else { Severity::Warning },
                &subject,
                if must_tls {
                    "The smarthost does not offer STARTTLS, so Postern sends nothing there (smarthost_tls = \"required\", or a login)."
                } else {
                    "The smarthost does not offer STARTTLS: outgoing mail travels unencrypted."
                },
            )
            .fix("Use the ISP's submission port with STARTTLS (587) or implicit TLS (smarthost = \"smtps://HOST:465\")."),
        );
    }
    if login {
        let offered = caps.auth_mechanisms();
        let user = s.username.clone().unwrap_or_default();
        if offered.is_empty() {
            out.push(
                Finding::new(
                    "smarthost.no-auth",
                    Severity::Error,
                    &subject,
                    format!("smarthost_username = \"{user}\" is set, but the smarthost offers no AUTH{}.", if secured { " after TLS" } else { "" }),
                )
                .fix("Check the port (logins are usually on 587 or 465), or remove smarthost_username if the ISP relays for your address without a login."),
            );
        } else if let Some(m) = sasl::choose(&offered, secured) {
            out.push(Finding::new(
                "smarthost.auth-ok",
                Severity::Ok,
                &subject,
                format!(
                    "The smarthost offers {}; Postern logs in as {user} with {}.",
                    offered.join(" "),
                    m.name()
                ),
            ));
        } else {
            out.push(
                Finding::new(
                    "smarthost.auth-unsupported",
                    Severity::Error,
                    &subject,
                    format!("The smarthost offers AUTH {}, none of which Postern can use here (it speaks SCRAM-SHA-256, CRAM-MD5, and PLAIN/LOGIN over TLS).", offered.join(" ")),
                )
                .fix(if secured {
                    "Ask the ISP for one of these mechanisms."
                } else {
                    "Enable TLS (the default smarthost_tls = \"required\"): PLAIN and LOGIN are only used over TLS."
                }),
            );
        }
    }
    client.quit().await;
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::Config;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A one-connection server that greets, answers EHLO with `ehlo` (lines joined by "\n")
    /// and everything else with 250.
    async fn server(ehlo: &'static str) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            let (read, mut write) = conn.into_split();
            write
                .write_all(b"220 smtp.isp.test ESMTP\r\n")
                .await
                .unwrap();
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = if line.starts_with("EHLO") {
                    let mut out: Vec<String> = ehlo.lines().map(str::to_string).collect();
                    let last = out.len() - 1;
                    for (i, l) in out.iter_mut().enumerate() {
                        *l = format!("250{}{l}\r\n", if i == last { ' ' } else { '-' });
                    }
                    out.concat()
                } else if line == "QUIT" {
                    "221 bye\r\n".to_string()
                } else {
                    "250 ok\r\n".to_string()
                };
                if write.write_all(reply.as_bytes()).await.is_err() || line == "QUIT" {
                    break;
                }
            }
        });
        port
    }

    fn outbound(port: u16, extra: &str) -> Outbound {
        let text = format!(
            "domains = [\"office.test\"]\n[[queue_servers]]\nhost = \"isp.test\"\n\
             [inbound]\ndeliver = \"maildir:/tmp/m\"\n[outbound]\nlisten = [\"127.0.0.1:2587\"]\n\
             smarthost = \"smtp://127.0.0.1:{port}\"\n{extra}"
        );
        Config::parse(&text, std::path::Path::new("t.toml"))
            .unwrap()
            .outbound
            .unwrap()
    }

    async fn findings(port: u16, extra: &str) -> Vec<(String, Severity)> {
        let mut report = Report::new("office.test");
        check(
            &mut report,
            &outbound(port, extra),
            "gw.office.test",
            Duration::from_secs(5),
        )
        .await;
        report
            .findings
            .iter()
            .map(|f| (f.id.clone(), f.severity))
            .collect()
    }

    fn ids(found: &[(String, Severity)]) -> Vec<&str> {
        found.iter().map(|(id, _)| id.as_str()).collect()
    }

    #[tokio::test]
    async fn required_tls_without_starttls_is_an_error() {
        let port = server("smtp.isp.test\nAUTH PLAIN LOGIN").await;

        let found = findings(port, "").await;

        assert_eq!(ids(&found), ["smarthost.answers", "smarthost.no-starttls"]);
        assert_eq!(found[1].1, Severity::Error);
    }

    #[tokio::test]
    async fn opportunistic_without_starttls_is_a_warning() {
        let port = server("smtp.isp.test\nSIZE 1000").await;

        let found = findings(port, "smarthost_tls = \"opportunistic\"").await;

        assert_eq!(
            found[1],
            ("smarthost.no-starttls".into(), Severity::Warning)
        );
    }

    #[tokio::test]
    async fn a_login_needs_a_mechanism_postern_may_use() {
        let plain_only = server("smtp.isp.test\nAUTH PLAIN LOGIN").await;
        let cram = server("smtp.isp.test\nAUTH CRAM-MD5 PLAIN").await;
        let none = server("smtp.isp.test\nSIZE 1000").await;
        let login = "smarthost_tls = \"opportunistic\"\nsmarthost_username = \"office\"";

        let plain_only = findings(plain_only, login).await;
        let cram = findings(cram, login).await;
        let none = findings(none, login).await;

        // Without STARTTLS the password may not go in the clear (PLAIN, LOGIN).
        assert_eq!(
            plain_only[1],
            ("smarthost.no-starttls".into(), Severity::Error)
        );
        assert_eq!(
            plain_only[2],
            ("smarthost.auth-unsupported".into(), Severity::Error)
        );
        assert_eq!(cram[2], ("smarthost.auth-ok".into(), Severity::Ok));
        assert_eq!(none[2], ("smarthost.no-auth".into(), Severity::Error));
    }

    #[tokio::test]
    async fn a_smarthost_that_does_not_answer_is_an_error_with_a_fix() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let mut report = Report::new("office.test");

        check(
            &mut report,
            &outbound(port, ""),
            "gw.office.test",
            Duration::from_secs(5),
        )
        .await;

        let f = &report.findings[0];
        assert_eq!(f.id, "smarthost.unreachable");
        assert_eq!(f.severity, Severity::Error);
        assert!(f.fix.as_deref().unwrap().contains("smtps://"), "{f:?}");
    }
}
