//! `[[queue_servers]]`.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::names::host;
use super::values::{Bounds, R, duration, port, readable_file};
use crate::config::raw::RawQueueServer;
use crate::config::report::{Problem, Src};
use crate::config::{DEFAULT_QUEUE_TIMEOUT, Fingerprint, Protocol, QueueServer, TlsMode};

const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 60);

pub(super) fn queue_servers(
    raw: Option<Spanned<Vec<Spanned<RawQueueServer>>>>,
    src: Src<'_>,
) -> R<Vec<QueueServer>> {
    let problem = || {
        Problem::new(
            "no queue server: Postern needs at least one [[queue_servers]] to fetch mail from",
            "add the ISP's queuing server (backup MX): a line [[queue_servers]] followed by \
             host = \"mail.isp.example\" and protocol = \"etrn\"",
        )
    };
    let Some(raw) = raw else {
        return Err(src.whole(problem()));
    };
    if raw.get_ref().is_empty() {
        return Err(src.at(raw.span(), problem()));
    }
    raw.into_inner()
        .into_iter()
        .map(|q| queue_server(q, src))
        .collect()
}

pub(super) fn queue_server(raw: Spanned<RawQueueServer>, src: Src<'_>) -> R<QueueServer> {
    let table = raw.span();
    let raw = raw.into_inner();
    let Some(host_raw) = raw.host else {
        return Err(src.at(
            table,
            Problem::new(
                "this [[queue_servers]] has no `host`",
                "add the name of the ISP's queuing server, e.g. host = \"mail.isp.example\"",
            ),
        ));
    };
    let host = self::host(host_raw.get_ref()).map_err(|why| {
        src.at(
            host_raw.span(),
            Problem::new(
                format!("`host` \"{}\" is not valid: {why}", host_raw.get_ref()),
                "write the server's host name or IP address, e.g. host = \"mail.isp.example\"",
            ),
        )
    })?;
    let protocol = raw
        .protocol
        .as_ref()
        .map_or(Protocol::Etrn, |p| *p.get_ref());
    let port = match &raw.port {
        None => protocol.default_port(),
        Some(p) => port(p, src, protocol.default_port())?,
    };
    let tls = raw
        .tls
        .as_ref()
        .map_or(protocol.default_tls(), |t| *t.get_ref());
    let node = raw.node.map(|n| node(n, src)).transpose()?;
    let username = raw
        .username
        .as_ref()
        .map(|u| username(u, "username", src))
        .transpose()?;
    let tls_ca = raw.tls_ca.as_ref().map(|p| tls_ca(p, src)).transpose()?;
    let tls_fingerprint = raw
        .tls_fingerprint
        .as_ref()
        .map(|f| {
            f.get_ref().parse::<Fingerprint>().map_err(|why| {
                src.at(
                    f.span(),
                    Problem::new(
                        format!("`tls_fingerprint` is not valid: {why}"),
                        "copy the SHA-256 fingerprint of the server's certificate, e.g. from \
                         `openssl x509 -noout -fingerprint -sha256 -in cert.pem`, and prefix it \
                         with \"sha256:\"",
                    ),
                )
            })
        })
        .transpose()?;
    let allow_plaintext_auth = raw
        .allow_plaintext_auth
        .as_ref()
        .is_some_and(|b| *b.get_ref());
    let allow_insecure_turn = raw
        .allow_insecure_turn
        .as_ref()
        .is_some_and(|b| *b.get_ref());
    let timeout = duration(
        raw.timeout.as_ref(),
        "timeout",
        DEFAULT_QUEUE_TIMEOUT,
        Bounds::positive_up_to(MAX_TIMEOUT),
        src,
    )?;

    let protocol_span = raw.protocol.as_ref().map_or(table.clone(), |p| p.span());
    if protocol == Protocol::Turn && !allow_insecure_turn {
        return Err(src.at(
            protocol_span,
            Problem::new(
                "protocol = \"turn\" is refused unless allow_insecure_turn = true",
                "TURN lets anyone who can log in take the mail (the server does not check which \
                 domains are yours). Use protocol = \"atrn\" if the server offers it; if it only \
                 offers TURN and you accept the risk, add allow_insecure_turn = true to this \
                 [[queue_servers]]",
            ),
        ));
    }
    if matches!(protocol, Protocol::Turn | Protocol::Atrn) && username.is_none() {
        let name = if protocol == Protocol::Turn {
            "turn"
        } else {
            "atrn"
        };
        return Err(src.at(
            protocol_span,
            Problem::new(
                format!("protocol = \"{name}\" needs a `username`: the server only turns the connection around for a logged-in client"),
                format!("add username = \"office\" (the login your ISP gave you) and store its password with `posternd secret set office@{host}`"),
            ),
        ));
    }
    if tls == TlsMode::Off {
        let tls_span = raw.tls.as_ref().map_or(table.clone(), |t| t.span());
        if let (Some(u), false) = (&raw.username, allow_plaintext_auth) {
            return Err(src.at(
                u.span(),
                Problem::new(
                    "a `username` with tls = \"off\" would send the password unencrypted",
                    "set tls = \"required\" (or \"opportunistic\"); if the network to this server \
                     is trusted and you accept the risk, add allow_plaintext_auth = true",
                ),
            ));
        }
        if tls_ca.is_some() || tls_fingerprint.is_some() {
            return Err(src.at(
                tls_span,
                Problem::new(
                    "tls = \"off\" contradicts tls_ca / tls_fingerprint, which only apply to TLS",
                    "set tls = \"required\", or remove tls_ca and tls_fingerprint",
                ),
            ));
        }
    }
    Ok(QueueServer {
        host,
        port,
        protocol,
        tls,
        node,
        username,
        tls_ca,
        tls_fingerprint,
        allow_plaintext_auth,
        allow_insecure_turn,
        timeout,
    })
}

pub(super) fn node(raw: Spanned<String>, src: Src<'_>) -> R<String> {
    let value = raw.get_ref();
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(src.at(
            raw.span(),
            Problem::new(
                format!("`node` \"{value}\" is empty or contains spaces"),
                "write the ETRN argument your ISP gave you, e.g. node = \"#office\", or remove \
                 the line to send each domain",
            ),
        ));
    }
    Ok(raw.into_inner())
}

pub(super) fn username(raw: &Spanned<String>, key: &str, src: Src<'_>) -> R<String> {
    let value = raw.get_ref();
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(src.at(
            raw.span(),
            Problem::new(
                format!("`{key}` \"{value}\" is empty or contains spaces"),
                format!(
                    "write the login your ISP gave you, e.g. {key} = \"office\", or remove the line"
                ),
            ),
        ));
    }
    Ok(value.clone())
}

pub(super) fn tls_ca(raw: &Spanned<String>, src: Src<'_>) -> R<PathBuf> {
    readable_file(
        raw,
        "tls_ca",
        "write the full path of the CA certificate (PEM) your ISP gave you, e.g. \
         tls_ca = \"/etc/postern/isp-ca.pem\", and check that the file is readable",
        src,
    )
}
