//! `[inbound]` and `state_dir`: where the mail goes and the listener's limits.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::names::{dns_name, host};
use super::values::{Bounds, R, count, duration, readable_file, socket_addrs};
use crate::config::raw::{RawInbound, RawSize};
use crate::config::report::{Problem, Src};
use crate::config::{
    DeliverTarget, Inbound, Protocol, QueueServer, defaults, parse_deliver_target,
};

const DEFAULT_INBOUND_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 25));
const DEFAULT_MAX_MESSAGE_SIZE: u64 = 50 * 1024 * 1024;
const MIN_MESSAGE_SIZE: u64 = 64 * 1024;
const DEFAULT_MAX_CONNECTIONS: usize = 50;
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

pub(super) fn inbound(
    raw: Spanned<RawInbound>,
    servers: &[QueueServer],
    src: Src<'_>,
) -> R<Inbound> {
    let table = raw.span();
    let raw = raw.into_inner();
    let listen = match &raw.listen {
        None => vec![DEFAULT_INBOUND_LISTEN],
        Some(l) => {
            let addrs = socket_addrs(l, "listen", src)?;
            let needs_listener = servers.iter().any(|s| s.protocol == Protocol::Etrn);
            if addrs.is_empty() && needs_listener {
                return Err(src.at(
                    l.span(),
                    Problem::new(
                        "[inbound] `listen` is empty, but mail released by ETRN arrives on this listener",
                        "write the address to receive on, e.g. listen = [\"0.0.0.0:25\"], or remove the line for that default",
                    ),
                ));
            }
            addrs
        }
    };
    let Some(deliver_raw) = raw.deliver else {
        return Err(src.at(
            table,
            Problem::new(
                "[inbound] has no `deliver`: Postern needs to know where to put the mail it receives",
                "add deliver = \"maildir:/srv/mail/Maildir\" (a Maildir folder) or deliver = \"smtp://192.168.1.10:25\" (the office mail server)",
            ),
        ));
    };
    let deliver = deliver(&deliver_raw, src)?;
    let hostname = match &raw.hostname {
        Some(h) => dns_name(h.get_ref(), 1).map_err(|why| {
            src.at(
                h.span(),
                Problem::new(
                    format!("`hostname` \"{}\" is not a valid host name: {why}", h.get_ref()),
                    "write this machine's name as the world may see it, e.g. hostname = \"gateway.office.example\"",
                ),
            )
        })?,
        None => {
            let own = gethostname::gethostname().to_string_lossy().into_owned();
            dns_name(&own, 1).map_err(|why| {
                src.at(
                    table.clone(),
                    Problem::new(
                        format!("this computer's name \"{own}\" cannot be used in the SMTP greeting: {why}"),
                        "add hostname = \"gateway.office.example\" (this machine's name as the world may see it) to [inbound]",
                    ),
                )
            })?
        }
    };
    let max_message_size = match &raw.max_message_size {
        None => DEFAULT_MAX_MESSAGE_SIZE,
        Some(s) => message_size(s, src)?,
    };
    let max_connections = count(
        raw.max_connections.as_ref(),
        "max_connections",
        DEFAULT_MAX_CONNECTIONS,
        src,
    )?;
    let max_connections_per_client = count(
        raw.max_connections_per_client.as_ref(),
        "max_connections_per_client",
        // Well below the total however it is set, so one address can never take every slot.
        defaults::MAX_CONNECTIONS_PER_CLIENT.min((max_connections / 2).max(1)),
        src,
    )?;
    let max_junk_commands = count(
        raw.max_junk_commands.as_ref(),
        "max_junk_commands",
        defaults::MAX_JUNK_COMMANDS as usize,
        src,
    )?;
    let max_session_time = duration(
        raw.max_session_time.as_ref(),
        "max_session_time",
        defaults::MAX_SESSION_TIME,
        Bounds::positive(),
        src,
    )?;
    let pem = |raw: &Option<Spanned<String>>, key: &str| {
        raw.as_ref()
            .map(|p| {
                readable_file(
                    p,
                    key,
                    &format!(
                        "write the full path of a readable PEM file, e.g. {key} = \
                         \"/etc/postern/{key}.pem\", or remove tls_cert and tls_key for a \
                         self-signed certificate made by Postern"
                    ),
                    src,
                )
            })
            .transpose()
    };
    let tls_cert = pem(&raw.tls_cert, "tls_cert")?;
    let tls_key = pem(&raw.tls_key, "tls_key")?;
    if tls_cert.is_some() != tls_key.is_some() {
        return Err(src.at(
            table,
            Problem::new(
                "[inbound] has only one of `tls_cert` and `tls_key`: STARTTLS needs both",
                "add the missing one (the certificate chain and its private key, both PEM), \
                 or remove both for a self-signed certificate made by Postern",
            ),
        ));
    }
    let idle_timeout = duration(
        raw.idle_timeout.as_ref(),
        "idle_timeout",
        DEFAULT_IDLE_TIMEOUT,
        Bounds::positive(),
        src,
    )?;
    Ok(Inbound {
        listen,
        deliver,
        hostname,
        max_message_size,
        max_connections,
        idle_timeout,
        max_connections_per_client,
        max_junk_commands: u32::try_from(max_junk_commands).unwrap_or(u32::MAX),
        max_session_time,
        tls_cert,
        tls_key,
    })
}

pub(super) fn state_dir(raw: Option<Spanned<String>>, src: Src<'_>) -> R<PathBuf> {
    let Some(raw) = raw else {
        return Ok(crate::config::default_state_dir());
    };
    let path = PathBuf::from(raw.get_ref());
    if !path.is_absolute() {
        return Err(src.at(
            raw.span(),
            Problem::new(
                format!("`state_dir` \"{}\" is not a full path", path.display()),
                "write a full path, e.g. state_dir = \"/var/lib/postern\", or remove the line \
                 for the default",
            ),
        ));
    }
    Ok(path)
}

pub(super) fn deliver(raw: &Spanned<String>, src: Src<'_>) -> R<DeliverTarget> {
    let text = raw.get_ref();
    let fail = |message: String| {
        src.at(
            raw.span(),
            Problem::new(
                message,
                "Postern delivers to a Maildir folder, deliver = \"maildir:/srv/mail/Maildir\", \
                 or to the office mail server, deliver = \"smtp://192.168.1.10:25\"",
            ),
        )
    };
    if let Some((scheme, _)) = text.split_once("://")
        && scheme != "smtp"
    {
        return Err(fail(format!(
            "`deliver` \"{text}\" uses \"{scheme}://\", which Postern cannot deliver to (only \"maildir:\" and \"smtp://\" exist)"
        )));
    }
    match parse_deliver_target(text) {
        Err(why) => Err(fail(format!("`deliver` is not valid: {why}"))),
        Ok(DeliverTarget::Maildir(path)) => {
            if !path.is_absolute() {
                return Err(src.at(
                    raw.span(),
                    Problem::new(
                        format!(
                            "the Maildir folder \"{}\" is not a full path",
                            path.display()
                        ),
                        "write the full path, e.g. deliver = \"maildir:/srv/mail/Maildir\"",
                    ),
                ));
            }
            Ok(DeliverTarget::Maildir(path))
        }
        Ok(DeliverTarget::Smtp { host, port }) => {
            let host = self::host(&host).map_err(|why| {
                fail(format!(
                    "`deliver`: the host \"{host}\" is not valid: {why}"
                ))
            })?;
            Ok(DeliverTarget::Smtp { host, port })
        }
    }
}

pub(super) fn message_size(raw: &Spanned<RawSize>, src: Src<'_>) -> R<u64> {
    let fail = |message: String| {
        src.at(
            raw.span(),
            Problem::new(
                message,
                "write a size of at least 64K, e.g. max_message_size = \"50M\" (K, M and G are \
                 1024, 1024² and 1024³ bytes) or a number of bytes without quotes",
            ),
        )
    };
    let bytes = match raw.get_ref() {
        RawSize::Bytes(n) => {
            u64::try_from(*n).map_err(|_| fail(format!("`max_message_size` {n} is negative")))?
        }
        RawSize::Text(t) => parse_size(t)
            .ok_or_else(|| fail(format!("`max_message_size` \"{t}\" is not a size")))?,
    };
    if bytes < MIN_MESSAGE_SIZE {
        return Err(fail(format!(
            "`max_message_size` {bytes} bytes is too small: the minimum is 64K (65536 bytes)"
        )));
    }
    Ok(bytes)
}

/// `"52428800"`, `"50M"`, `"50 MiB"`, `"2g"`: K/M/G are binary multiples.
pub(in crate::config) fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let number: u64 = t[..digits_end].parse().ok()?;
    let unit = t[digits_end..].trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    number
        .checked_mul(factor)
        .filter(|n| i64::try_from(*n).is_ok())
}
