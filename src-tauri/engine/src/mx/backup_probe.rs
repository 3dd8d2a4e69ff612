//! The backup report's SMTP probes: this office's listener as the neighbour's senders reach it
//! (our MX host's addresses, the MX port), and the ODMR server as the neighbour's ATRN client
//! reaches it. Connections go to the addresses the checker's DNS found.

use std::net::{IpAddr, SocketAddr};

use super::backup_input::BackupCheckInput;
use super::dns::Target;
use super::findings::{Finding, Report, Severity};
use crate::config::Release;
use crate::smtp::client::{ClientOptions, SmtpClient};
use crate::tls::TrustPolicy;

fn subject(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

/// Greeting and EHLO keywords of `host` at `ip:port`, or why there are none.
async fn hello(
    host: &str,
    ip: IpAddr,
    port: u16,
    input: &BackupCheckInput,
) -> Result<(String, Vec<String>), String> {
    let opts = ClientOptions {
        host: host.to_string(),
        port,
        timeout: input.smtp_timeout,
        helo_name: host.to_string(),
        trust: TrustPolicy::default(),
        connect_addr: Some(ip),
    };
    let mut client = SmtpClient::connect(&opts)
        .await
        .map_err(|e| e.to_string())?;
    let greeting = client.greeting().text();
    let keywords = match client.hello().await {
        Ok(caps) => caps.keywords.iter().map(|(k, _)| k.clone()).collect(),
        Err(e) => return Err(format!("greeted with \"{greeting}\" but EHLO failed: {e}")),
    };
    client.quit().await;
    Ok((greeting, keywords))
}

fn no_address(mine: &Target, port: u16, id: &str) -> Option<Finding> {
    if !mine.addresses().is_empty() {
        return None;
    }
    Some(
        Finding::new(
            id,
            Severity::Error,
            subject(&mine.host, port),
            format!(
                "{} has no address in DNS, so nobody can connect to it.",
                mine.host
            ),
        )
        .fix(format!(
            "Publish an A/AAAA record for {} with this office's public address.",
            mine.host
        )),
    )
}

/// "This listener is reachable as that host": SMTP to our MX host on the MX port answers with
/// this office's name (and offers ETRN when the neighbour may use it).
pub(crate) async fn listener(r: &mut Report, mine: &Target, input: &BackupCheckInput) {
    let port = input.mx_port;
    let at = subject(&mine.host, port);
    if let Some(f) = no_address(mine, port, "backup.listener-unreachable") {
        r.push(f);
        return;
    }
    for ip in mine.addresses() {
        let (greeting, keywords) = match hello(&mine.host, ip, port, input).await {
            Ok(found) => found,
            Err(why) => {
                r.push(
                    Finding::new(
                        "backup.listener-unreachable",
                        Severity::Error,
                        &at,
                        format!("No SMTP session with {at} ({ip}): {why}. The neighbour's senders fail here too, so its mail is not held while it is offline."),
                    )
                    .fix(format!(
                        "Make sure [inbound] listen includes {} (or 0.0.0.0:{port}) and that the router forwards TCP port {port} to this machine. From inside the network, a router without NAT loopback also fails this test: check from outside.",
                        SocketAddr::new(ip, port)
                    )),
                );
                continue;
            }
        };
        let ours = greeting
            .to_ascii_lowercase()
            .split_whitespace()
            .next()
            .is_some_and(|name| name.trim_end_matches('.') == mine.host);
        if !ours {
            r.push(
                Finding::new(
                    "backup.listener-other-server",
                    Severity::Warning,
                    &at,
                    format!("{at} ({ip}) answers, but greets with \"{greeting}\", not as this office ({}): the neighbour's mail may be going to another server.", mine.host),
                )
                .fix(format!("Point {}'s address (and port {port} on the router) at this machine; if this is this office behind a proxy, set [inbound] hostname to {}.", mine.host, mine.host)),
            );
            continue;
        }
        let etrn = keywords.iter().any(|k| k.eq_ignore_ascii_case("ETRN"));
        if input.release.contains(&Release::Etrn) && !etrn {
            r.push(
                Finding::new(
                    "backup.no-etrn",
                    Severity::Error,
                    &at,
                    format!("{at} ({ip}) does not offer ETRN, so the neighbour cannot ask for {}'s mail there.", r.domain),
                )
                .fix("Restart posternd (or reload) so the listener knows this [[backup_for]] entry; check that its release includes \"etrn\"."),
            );
            continue;
        }
        r.push(Finding::new(
            "backup.listener-reachable",
            Severity::Ok,
            &at,
            format!(
                "{at} ({ip}) answers as this office: \"{greeting}\"{}",
                if etrn { "; it offers ETRN" } else { "" }
            ),
        ));
    }
}

/// "ODMR is reachable when offered": the ODMR server answers at our MX host on each
/// `odmr_listen` port and offers ATRN.
pub(crate) async fn odmr(r: &mut Report, mine: &Target, input: &BackupCheckInput) {
    let mut ports: Vec<u16> = input.odmr_listen.iter().map(SocketAddr::port).collect();
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() {
        r.push(
            Finding::new(
                "backup.odmr-not-configured",
                Severity::Error,
                &mine.host,
                format!(
                    "The neighbour may ask for {} with ATRN, but no ODMR server is configured.",
                    r.domain
                ),
            )
            .fix("Add `[backup]` with `odmr_listen = [\"0.0.0.0:366\"]`."),
        );
        return;
    }
    for port in ports {
        let at = subject(&mine.host, port);
        if let Some(f) = no_address(mine, port, "backup.odmr-unreachable") {
            r.push(f);
            return;
        }
        for ip in mine.addresses() {
            match hello(&mine.host, ip, port, input).await {
                Err(why) => r.push(
                    Finding::new(
                        "backup.odmr-unreachable",
                        Severity::Error,
                        &at,
                        format!("No ODMR session with {at} ({ip}): {why}. The neighbour's ATRN client connects there."),
                    )
                    .fix(format!(
                        "Make sure [backup] odmr_listen includes {} (or 0.0.0.0:{port}) and that the router and firewall let TCP port {port} through to this machine.",
                        SocketAddr::new(ip, port)
                    )),
                ),
                Ok((greeting, keywords)) if !keywords.iter().any(|k| k.eq_ignore_ascii_case("ATRN")) => r.push(
                    Finding::new(
                        "backup.odmr-no-atrn",
                        Severity::Error,
                        &at,
                        format!("{at} ({ip}) answers (\"{greeting}\") but does not offer ATRN: another server has the port."),
                    )
                    .fix(format!("Give the ODMR server its own port in [backup] odmr_listen (366 is the standard one), or point port {port} on the router at it.")),
                ),
                Ok((greeting, _)) => r.push(Finding::new(
                    "backup.odmr-reachable",
                    Severity::Ok,
                    &at,
                    format!("{at} ({ip}) answers as an ODMR server (\"{greeting}\") and offers ATRN."),
                )),
            }
        }
    }
}
