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
    let mut smarthost =
        Smarthost::from_config(outbound, helo_name, Arc::new(MemoryStore::default()));
    smarthost.timeout = timeout;
    for finding in probe(&smarthost).await {
        r.push(finding);
    }
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
