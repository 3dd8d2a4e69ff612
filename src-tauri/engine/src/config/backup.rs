//! `[[backup_for]]` and `[backup]`: this office as the backup MX (queuing server) of a
//! neighbour's domain (design.md §10).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::text::{humantime_serde_compat, join_host_port, split_host_port};

/// One neighbour's domain whose mail this office holds until the neighbour asks for it.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupFor {
    /// Lower-case ASCII (IDNs as A-labels), never one of the office's own `domains`.
    pub domain: String,
    #[cfg_attr(test, ts(as = "String"))]
    pub deliver_to: BackupTarget,
    /// How the neighbour may ask for its mail.
    pub release: Vec<Release>,
    /// The ATRN login; its password is in the keyring as `USERNAME@backup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub username: Option<String>,
    /// Keep the mail until asked (default); false: also try delivering on the retry schedule.
    pub hold: bool,
    /// Then the mail goes back to its sender with a DSN.
    #[serde(with = "humantime_serde_compat")]
    #[cfg_attr(test, ts(as = "String"))]
    pub max_hold: Duration,
}

impl BackupFor {
    pub fn allows(&self, release: Release) -> bool {
        self.release.contains(&release)
    }

    /// Keyring entry name of the ATRN password: `USERNAME@backup`.
    pub fn secret_name(&self) -> Option<String> {
        self.username.as_ref().map(|u| format!("{u}@backup"))
    }
}

pub const DEFAULT_MAX_HOLD: Duration = Duration::from_secs(7 * 24 * 3600);

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Release {
    Etrn,
    Atrn,
}

/// Where held mail goes when it is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupTarget {
    /// The domain's MX hosts with a lower preference value than this office's own MX host.
    Mx,
    /// One fixed server (the neighbour's gateway).
    Smtp { host: String, port: u16 },
}

impl std::fmt::Display for BackupTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackupTarget::Mx => f.write_str("mx"),
            BackupTarget::Smtp { host, port } => {
                write!(f, "smtp://{}", join_host_port(host, *port))
            }
        }
    }
}

impl Serialize for BackupTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}
impl<'de> Deserialize<'de> for BackupTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_backup_target(&s).map_err(serde::de::Error::custom)
    }
}

/// `mx` or `smtp://host:port` (port 25 when left out).
pub fn parse_backup_target(s: &str) -> Result<BackupTarget, String> {
    if s == "mx" {
        return Ok(BackupTarget::Mx);
    }
    if let Some(rest) = s.strip_prefix("smtp://") {
        let (host, port) = split_host_port(rest.trim_end_matches('/'), 25)?;
        return Ok(BackupTarget::Smtp { host, port });
    }
    Err(format!(
        "\"{s}\" is neither \"mx\" nor \"smtp://host:port\""
    ))
}

/// `[backup]`: the servers of the queuing-server side.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Backup {
    /// The ODMR/ATRN server (RFC 2645); empty when no `[[backup_for]]` allows atrn.
    #[cfg_attr(test, ts(as = "Vec<String>"))]
    pub odmr_listen: Vec<SocketAddr>,
    /// Extension: the port of the neighbour's MX hosts for `deliver_to = "mx"` (25; tests).
    pub mx_port: u16,
    /// Extension: ETRN commands one client address may give per minute (0 = no limit).
    pub etrn_per_minute: u32,
}

pub const DEFAULT_ETRN_PER_MINUTE: u32 = 10;

impl Default for Backup {
    fn default() -> Backup {
        Backup {
            odmr_listen: Vec::new(),
            mx_port: 25,
            etrn_per_minute: DEFAULT_ETRN_PER_MINUTE,
        }
    }
}

impl Backup {
    pub(super) fn is_default(&self) -> bool {
        *self == Backup::default()
    }
}
