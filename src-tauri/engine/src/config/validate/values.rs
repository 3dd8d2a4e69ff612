//! The checks every section shares: ports, durations, counts, listen addresses, readable files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::config::report::{Problem, Src};
use crate::config::{ConfigError, humantime_serde_compat};

pub(super) type R<T> = Result<T, ConfigError>;

pub(super) fn port(raw: &Spanned<i64>, src: Src<'_>, default: u16) -> R<u16> {
    match u16::try_from(*raw.get_ref()) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(src.at(
            raw.span(),
            Problem::new(
                format!("port {} is out of range: a port is from 1 to 65535", raw.get_ref()),
                format!("write the server's port, e.g. port = {default} (or remove the line for the default {default})"),
            ),
        )),
    }
}

/// A full path to a file that can be opened now.
pub(super) fn readable_file(
    raw: &Spanned<String>,
    key: &str,
    fix: &str,
    src: Src<'_>,
) -> R<PathBuf> {
    let path = Path::new(raw.get_ref());
    let fail = |why: String| {
        src.at(
            raw.span(),
            Problem::new(format!("`{key}` \"{}\": {why}", path.display()), fix),
        )
    };
    if !path.is_absolute() {
        return Err(fail("the path is not a full path".into()));
    }
    match std::fs::File::open(path).and_then(|f| f.metadata()) {
        Ok(m) if m.is_file() => Ok(path.to_path_buf()),
        Ok(_) => Err(fail("this is not a file".into())),
        Err(e) => Err(fail(format!("cannot read it ({e})"))),
    }
}

pub(super) struct Bounds {
    zero_ok: bool,
    max: Option<Duration>,
}

impl Bounds {
    pub(super) fn positive() -> Bounds {
        Bounds {
            zero_ok: false,
            max: None,
        }
    }
    pub(super) fn positive_up_to(max: Duration) -> Bounds {
        Bounds {
            zero_ok: false,
            max: Some(max),
        }
    }
    pub(super) fn zero_ok() -> Bounds {
        Bounds {
            zero_ok: true,
            max: None,
        }
    }
}

pub(super) fn duration(
    raw: Option<&Spanned<String>>,
    key: &str,
    default: Duration,
    bounds: Bounds,
    src: Src<'_>,
) -> R<Duration> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let default_text = humantime_serde_compat::text(default);
    let d = humantime_serde_compat::parse(raw.get_ref()).map_err(|_| {
        src.at(
            raw.span(),
            Problem::new(
                format!("`{key}` \"{}\" is not a duration", raw.get_ref()),
                format!(
                    "write a number followed by a unit: s, m, h or d, e.g. {key} = \"{default_text}\""
                ),
            ),
        )
    })?;
    if d.is_zero() && !bounds.zero_ok {
        return Err(src.at(
            raw.span(),
            Problem::new(
                format!("`{key}` cannot be zero"),
                format!("write a duration longer than zero, e.g. {key} = \"{default_text}\""),
            ),
        ));
    }
    if let Some(max) = bounds.max.filter(|max| d > *max) {
        let max_text = humantime::format_duration(max);
        return Err(src.at(
            raw.span(),
            Problem::new(
                format!(
                    "`{key}` \"{}\" is longer than the maximum {max_text}",
                    raw.get_ref()
                ),
                format!("write at most \"{max_text}\", e.g. {key} = \"{default_text}\""),
            ),
        ));
    }
    Ok(d)
}

pub(super) fn socket_addrs(
    raw: &Spanned<Vec<Spanned<String>>>,
    key: &str,
    src: Src<'_>,
) -> R<Vec<SocketAddr>> {
    raw.get_ref()
        .iter()
        .map(|a| {
            let text = a.get_ref();
            text.trim().parse::<SocketAddr>().map_err(|_| {
                src.at(
                    a.span(),
                    Problem::new(
                        format!("`{key}`: \"{text}\" is not an IP address with a port"),
                        listen_fix(text.trim()),
                    ),
                )
            })
        })
        .collect()
}

/// The fix for a listen address that does not parse, shaped by what was written.
pub(super) fn listen_fix(text: &str) -> String {
    if let Ok(port) = text.trim_start_matches(':').parse::<u16>() {
        return format!(
            "write an IP address and the port: \"0.0.0.0:{port}\" (every IPv4 address) or \
             \"[::]:{port}\" (every IPv6 address)"
        );
    }
    if let Some((name, port)) = text.split_once(':')
        && !name.is_empty()
        && port.parse::<u16>().is_ok()
    {
        return format!(
            "write an IP address, not a name, before the port: \"0.0.0.0:{port}\" (every IPv4 \
             address) or \"127.0.0.1:{port}\" (this computer only)"
        );
    }
    "write an IP address and a port, e.g. \"0.0.0.0:2525\" (every IPv4 address, port 2525); \
     IPv6 addresses go in brackets: \"[::]:2525\""
        .into()
}

/// A whole number of at least 1.
pub(super) fn count(
    raw: Option<&Spanned<i64>>,
    key: &str,
    default: usize,
    src: Src<'_>,
) -> R<usize> {
    let Some(n) = raw else {
        return Ok(default);
    };
    match usize::try_from(*n.get_ref()) {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(src.at(
            n.span(),
            Problem::new(
                format!(
                    "`{key}` {} is not allowed: it must be at least 1",
                    n.get_ref()
                ),
                format!("write e.g. {key} = {default}"),
            ),
        )),
    }
}
