//! How values are written in the file: durations, `host:port`. A leaf: the config types and
//! their validators both use it.

/// `host[:port]`, `[v6]:port`. The port defaults to `default_port`.
pub fn split_host_port(s: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("\"{s}\": missing ']' after an IPv6 address"))?;
        match after.strip_prefix(':') {
            Some(p) => (h.to_string(), Some(p)),
            None if after.is_empty() => (h.to_string(), None),
            None => return Err(format!("\"{s}\": expected ':port' after ']'")),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (s.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(format!("\"{s}\" has no host name"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("\"{p}\" is not a port (1-65535)")),
            Ok(n) => n,
        },
    };
    Ok((host, port))
}

/// `host:port` with IPv6 hosts in brackets.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Durations as human strings ("15m", "30s", "0").
pub mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if d.is_zero() {
            return s.serialize_str("0");
        }
        s.serialize_str(&text(*d))
    }
    /// The shortest exact way to write `d`: `90d`, `36h`, `15m`, `45s`, else humantime's form.
    pub fn text(d: Duration) -> String {
        let secs = d.as_secs();
        if d.subsec_nanos() != 0 || secs == 0 {
            return humantime::format_duration(d).to_string();
        }
        match secs {
            s if s % 86_400 == 0 => format!("{}d", s / 86_400),
            s if s % 3_600 == 0 => format!("{}h", s / 3_600),
            s if s % 60 == 0 => format!("{}m", s / 60),
            s => format!("{s}s"),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
    pub fn parse(s: &str) -> Result<Duration, String> {
        if s.trim() == "0" {
            return Ok(Duration::ZERO);
        }
        humantime::parse_duration(s.trim()).map_err(|e| {
            format!("\"{s}\" is not a duration ({e}); write e.g. \"30s\", \"15m\", \"1h\"")
        })
    }
}
