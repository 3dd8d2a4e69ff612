//! `[link]` and `[dns]`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use toml::Spanned;

use super::names::host;
use super::values::{Bounds, R, duration};
use crate::config::raw::{RawDns, RawLink};
use crate::config::report::{Problem, Src};
use crate::config::{Dns, Link, join_host_port, split_host_port};

const DEFAULT_REFETCH_EVERY: Duration = Duration::from_secs(15 * 60);
const DEFAULT_CONNECT_BACK_TIMEOUT: Duration = Duration::from_secs(2 * 60);
const DNS_PORT: u16 = 53;

pub(super) fn link(raw: Option<Spanned<RawLink>>, src: Src<'_>) -> R<Link> {
    let raw = raw.map(Spanned::into_inner);
    let probe = match raw.as_ref().and_then(|l| l.probe.as_ref()) {
        None => "auto".to_string(),
        Some(p) if p.get_ref().eq_ignore_ascii_case("auto") => "auto".to_string(),
        Some(p) => probe(p, src)?,
    };
    let refetch_every = duration(
        raw.as_ref().and_then(|l| l.refetch_every.as_ref()),
        "refetch_every",
        DEFAULT_REFETCH_EVERY,
        Bounds::zero_ok(),
        src,
    )?;
    let connect_back_timeout = duration(
        raw.as_ref().and_then(|l| l.connect_back_timeout.as_ref()),
        "connect_back_timeout",
        DEFAULT_CONNECT_BACK_TIMEOUT,
        Bounds::positive(),
        src,
    )?;
    Ok(Link {
        probe,
        refetch_every,
        connect_back_timeout,
    })
}

pub(super) fn probe(raw: &Spanned<String>, src: Src<'_>) -> R<String> {
    let text = raw.get_ref();
    let fail = |why: String| {
        src.at(
            raw.span(),
            Problem::new(
                format!("`probe` \"{text}\" is not valid: {why}"),
                "write probe = \"auto\" (the first queue server) or a host and port, e.g. \
                 probe = \"mail.isp.example:25\"",
            ),
        )
    };
    let (host, port) = split_host_port(text, 0).map_err(&fail)?;
    if port == 0 {
        return Err(fail("the port is missing".into()));
    }
    let host = self::host(&host).map_err(&fail)?;
    Ok(join_host_port(&host, port))
}

pub(super) fn dns(raw: Option<Spanned<RawDns>>, src: Src<'_>) -> R<Dns> {
    let Some(list) = raw.and_then(|d| d.into_inner().nameservers) else {
        return Ok(Dns::default());
    };
    let nameservers = list
        .get_ref()
        .iter()
        .map(|n| {
            let text = n.get_ref().trim();
            if let Ok(addr) = text.parse::<SocketAddr>() {
                return Ok(addr);
            }
            let bare = text
                .strip_prefix('[')
                .and_then(|s| s.strip_suffix(']'))
                .unwrap_or(text);
            bare.parse::<IpAddr>()
                .map(|ip| SocketAddr::new(ip, DNS_PORT))
                .map_err(|_| {
                    src.at(
                        n.span(),
                        Problem::new(
                            format!("`nameservers`: \"{text}\" is not an IP address"),
                            "write the DNS server's IP address, optionally with a port: \
                             \"192.168.1.1\" or \"127.0.0.1:5353\" (names are not allowed here)",
                        ),
                    )
                })
        })
        .collect::<R<Vec<_>>>()?;
    Ok(Dns { nameservers })
}
