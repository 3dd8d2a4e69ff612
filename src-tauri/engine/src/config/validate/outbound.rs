//! `[outbound]`: the relay for the office's outgoing mail.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::names::host;
use super::servers::username;
use super::values::{Bounds, R, duration, readable_file, socket_addrs};
use crate::config::raw::RawOutbound;
use crate::config::report::{Problem, Src};
use crate::config::{Outbound, TlsMode, join_host_port, split_host_port};

pub(super) fn outbound(raw: Spanned<RawOutbound>, state_dir: &Path, src: Src<'_>) -> R<Outbound> {
    let table = raw.span();
    let raw = raw.into_inner();
    let listen = match &raw.listen {
        Some(l) if !l.get_ref().is_empty() => socket_addrs(l, "listen", src)?,
        other => {
            return Err(src.at(
                other.as_ref().map_or(table.clone(), |l| l.span()),
                Problem::new(
                    "[outbound] has no `listen` address: the office's computers need one to send mail through Postern",
                    "add listen = [\"0.0.0.0:587\"], or remove the whole [outbound] section if you do not relay outgoing mail",
                ),
            ));
        }
    };
    let allow = match &raw.allow {
        // This computer only.
        None => vec![
            ipnet::IpNet::from(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ipnet::IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ],
        Some(list) => list
            .get_ref()
            .iter()
            .map(|n| network(n, src))
            .collect::<R<Vec<_>>>()?,
    };
    let Some(smarthost_raw) = raw.smarthost else {
        return Err(src.at(
            table,
            Problem::new(
                "[outbound] has no `smarthost`: outgoing mail needs a server to go through",
                "add your ISP's outgoing mail server, e.g. smarthost = \"smtp://smtp.isp.example:587\"",
            ),
        ));
    };
    let smarthost = smarthost(&smarthost_raw, src)?;
    let smarthost_tls = raw
        .smarthost_tls
        .as_ref()
        .map_or(TlsMode::Required, |t| *t.get_ref());
    let smarthost_username = raw
        .smarthost_username
        .as_ref()
        .map(|u| username(u, "smarthost_username", src))
        .transpose()?;
    let smarthost_tls_ca = raw
        .smarthost_tls_ca
        .as_ref()
        .map(|p| {
            readable_file(
                p,
                "smarthost_tls_ca",
                "write the full path of the CA certificate (PEM) of your ISP's outgoing server, \
                 e.g. smarthost_tls_ca = \"/etc/postern/isp-ca.pem\", and check that the file is readable",
                src,
            )
        })
        .transpose()?;
    if smarthost_tls == TlsMode::Off {
        let tls_span = raw
            .smarthost_tls
            .as_ref()
            .map_or(table.clone(), |t| t.span());
        if let Some(u) = &raw.smarthost_username {
            return Err(src.at(
                u.span(),
                Problem::new(
                    "a `smarthost_username` with smarthost_tls = \"off\" would send the password unencrypted",
                    "set smarthost_tls = \"required\" (the default) or \"opportunistic\"",
                ),
            ));
        }
        if let Some(ca) = &raw.smarthost_tls_ca {
            return Err(src.at(
                ca.span(),
                Problem::new(
                    "smarthost_tls = \"off\" contradicts smarthost_tls_ca, which only applies to TLS",
                    "set smarthost_tls = \"required\" (the default), or remove smarthost_tls_ca",
                ),
            ));
        }
        if smarthost.starts_with("smtps://") {
            return Err(src.at(
                tls_span,
                Problem::new(
                    "smarthost_tls = \"off\" contradicts a smtps:// smarthost, which is always TLS",
                    "remove smarthost_tls, or use a smtp:// smarthost",
                ),
            ));
        }
    }
    let spool = match &raw.spool {
        None => state_dir.join("outbound"),
        Some(p) if Path::new(p.get_ref()).is_absolute() => PathBuf::from(p.get_ref()),
        Some(p) => {
            return Err(src.at(
                p.span(),
                Problem::new(
                    format!("`spool` \"{}\" is not a full path", p.get_ref()),
                    "write a full path, e.g. spool = \"/var/lib/postern/outbound\", or remove the \
                     line for the default (the folder outbound in the state folder)",
                ),
            ));
        }
    };
    let max_queue_lifetime = duration(
        raw.max_queue_lifetime.as_ref(),
        "max_queue_lifetime",
        crate::config::outbound_defaults::MAX_QUEUE_LIFETIME,
        Bounds::positive(),
        src,
    )?;
    let retry_min = duration(
        raw.retry_min.as_ref(),
        "retry_min",
        crate::config::outbound_defaults::RETRY_MIN,
        Bounds::positive(),
        src,
    )?;
    let retry_max = duration(
        raw.retry_max.as_ref(),
        "retry_max",
        crate::config::outbound_defaults::RETRY_MAX,
        Bounds::positive(),
        src,
    )?;
    if retry_max < retry_min
        && let Some(r) = raw.retry_max.as_ref().or(raw.retry_min.as_ref())
    {
        return Err(src.at(
            r.span(),
            Problem::new(
                "`retry_max` is shorter than `retry_min`",
                "make retry_max at least as long as retry_min, e.g. retry_min = \"5m\" and retry_max = \"1h\"",
            ),
        ));
    }
    let delay_warning = duration(
        raw.delay_warning.as_ref(),
        "delay_warning",
        Duration::ZERO,
        Bounds::zero_ok(),
        src,
    )?;
    Ok(Outbound {
        listen,
        allow,
        smarthost,
        smarthost_tls,
        smarthost_username,
        smarthost_tls_ca,
        spool,
        max_queue_lifetime,
        retry_min,
        retry_max,
        delay_warning,
    })
}

pub(super) fn network(raw: &Spanned<String>, src: Src<'_>) -> R<ipnet::IpNet> {
    let text = raw.get_ref().trim();
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net.trunc());
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(ipnet::IpNet::from(ip));
    }
    Err(src.at(
        raw.span(),
        Problem::new(
            format!("`allow`: \"{text}\" is not a network"),
            "write a network with its prefix length, e.g. \"192.168.1.0/24\" (the whole LAN) or \"192.168.1.20/32\" (one machine)",
        ),
    ))
}

pub(super) fn smarthost(raw: &Spanned<String>, src: Src<'_>) -> R<String> {
    let text = raw.get_ref();
    let fail = |message: String| {
        src.at(
            raw.span(),
            Problem::new(
                message,
                "write smarthost = \"smtp://smtp.isp.example:587\" (STARTTLS) or \
                 smarthost = \"smtps://smtp.isp.example:465\" (TLS from the start)",
            ),
        )
    };
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(fail(format!(
            "`smarthost` \"{text}\" does not start with smtp:// or smtps://"
        )));
    };
    let default_port = match scheme {
        "smtp" => 587,
        "smtps" => 465,
        _ => {
            return Err(fail(format!(
                "`smarthost` uses \"{scheme}://\": only smtp:// and smtps:// are possible"
            )));
        }
    };
    let (host, port) = split_host_port(rest.trim_end_matches('/'), default_port)
        .map_err(|why| fail(format!("`smarthost` is not valid: {why}")))?;
    let host = self::host(&host).map_err(|why| {
        fail(format!(
            "`smarthost`: the host \"{host}\" is not valid: {why}"
        ))
    })?;
    Ok(format!("{scheme}://{}", join_host_port(&host, port)))
}
