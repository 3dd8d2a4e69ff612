//! The ETRN server (RFC 1985) on the inbound listener.
//!
//! The replies carry real counts: 251 nothing held, `253 <n> messages pending, message queue
//! started`, 458 a run for the domain is already going (or the client asks too often), 459 the
//! domain is not backed up here, 501 syntax. The delivery goes to the domain's own target,
//! never to the asking client: that is what makes ETRN safe without a login.

use std::net::IpAddr;
use std::sync::Arc;

use crate::backup::release;
use crate::backup::server::BackupServer;
use crate::config::Release;

/// The domain an ETRN argument names: `d`, `@d` (the domain and its subdomains in RFC 1985;
/// here the domain itself) or `#d` (a queue name, as Exim's clients send it).
pub fn parse_argument(arg: &str) -> Result<String, &'static str> {
    let arg = arg.trim();
    let name = arg
        .strip_prefix('@')
        .or_else(|| arg.strip_prefix('#'))
        .unwrap_or(arg)
        .trim_end_matches('.');
    if name.is_empty() {
        return Err("5.5.4 Syntax: ETRN domain");
    }
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        && !name.starts_with('.')
        && !name.contains("..");
    if !valid {
        return Err("5.5.4 Syntax: ETRN domain (a domain name, @domain or #domain)");
    }
    Ok(name.to_ascii_lowercase())
}

/// Answers `ETRN arg` from `client`, starting the run when mail is held.
pub fn answer(server: &Arc<BackupServer>, arg: &str, client: Option<IpAddr>) -> (u16, String) {
    let domain = match parse_argument(arg) {
        Ok(d) => d,
        Err(text) => return (501, text.to_string()),
    };
    if !server
        .entry(&domain)
        .is_some_and(|e| e.allows(Release::Etrn))
    {
        return (459, format!("4.7.1 <{domain}>: not backed up here"));
    }
    if !server.etrn_allowed(client) {
        return (
            458,
            format!(
                "4.7.0 <{domain}>: too many ETRN requests from your address, try again in a minute"
            ),
        );
    }
    let Some(guard) = server.try_start(&domain) else {
        return (
            458,
            format!("4.4.0 <{domain}>: a delivery run is already going"),
        );
    };
    let who = client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    let by = format!("ETRN from {who}");
    server.note_fetch(&domain, &by);
    let held = match server.held(&domain) {
        Ok(h) => h.len(),
        Err(e) => {
            tracing::error!("{e}");
            return (
                458,
                format!("4.3.0 <{domain}>: cannot read the queue, try again later"),
            );
        }
    };
    let _ = server.events.send(crate::events::Event::BackupAsked {
        domain: domain.clone(),
        by: by.clone(),
        held: held as u32,
    });
    if held == 0 {
        return (251, format!("2.0.0 <{domain}>: no messages waiting"));
    }
    release::spawn(server.clone(), guard, by);
    (
        253,
        format!("2.0.0 {held} messages pending, message queue started"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_argument_forms_name_the_same_domain() {
        for arg in [
            "neighbour.example",
            "@neighbour.example",
            "#Neighbour.Example.",
        ] {
            assert_eq!(parse_argument(arg), Ok("neighbour.example".into()), "{arg}");
        }
    }

    #[test]
    fn a_missing_or_odd_argument_is_a_syntax_error() {
        for arg in ["", "@", "a b", "x;y", ".x", "a..b"] {
            assert!(parse_argument(arg).is_err(), "{arg}");
        }
    }
}
