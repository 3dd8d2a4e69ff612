//! `postern.toml`: the contract documented in docs/configuration.md.
//!
//! Parsing happens in two steps. [`raw`] mirrors the file with `Spanned` values and
//! `deny_unknown_fields`, so every problem can be reported at its line and column; then
//! [`Config`] is the validated, defaulted form the rest of the engine uses. `Config` serializes
//! back to TOML for `posternd config check` (it holds no secrets: passwords live in the keyring).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod backup;
mod keys;
mod load;
mod raw;
mod report;
mod text;
mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_backup;

pub(crate) use text::join_host_port;
pub use text::{humantime_serde_compat, split_host_port};

pub use backup::{
    Backup, BackupFor, BackupTarget, DEFAULT_ETRN_PER_MINUTE, DEFAULT_MAX_HOLD, Release,
    parse_backup_target,
};

/// The validated configuration.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Lower-case ASCII domain names (IDNs as A-labels).
    pub domains: Vec<String>,
    pub queue_servers: Vec<QueueServer>,
    pub inbound: Inbound,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub outbound: Option<Outbound>,
    pub link: Link,
    pub dns: Dns,
    /// Read by the tray app only; absent in older files and front ends.
    #[serde(default)]
    #[cfg_attr(test, ts(optional = nullable))]
    pub desktop: Desktop,
    /// Where Postern keeps its own files (the inbound certificate, later the spool and the
    /// journal). Extension; default [`default_state_dir`].
    #[serde(
        default = "default_state_dir",
        skip_serializing_if = "is_default_state_dir"
    )]
    pub state_dir: PathBuf,
    /// The mail-flow journal in the state folder.
    #[serde(default, skip_serializing_if = "Journal::is_default")]
    pub journal: Journal,
    /// The neighbours' domains this office is the backup MX for (§10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(test, ts(optional = nullable))]
    pub backup_for: Vec<BackupFor>,
    #[serde(default, skip_serializing_if = "Backup::is_default")]
    #[cfg_attr(test, ts(optional = nullable))]
    pub backup: Backup,
}

fn is_empty_path(path: &Path) -> bool {
    path.as_os_str().is_empty()
}

fn is_default_state_dir(path: &Path) -> bool {
    path == default_state_dir()
}

/// The OS's per-user state folder for Postern (`~/.local/state/org.postern.Postern` on Linux).
pub fn default_state_dir() -> PathBuf {
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .unwrap_or_else(std::env::temp_dir)
        .join(crate::BUNDLE_ID)
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueServer {
    pub host: String,
    /// Default 25 for etrn/turn, 366 for atrn.
    pub port: u16,
    pub protocol: Protocol,
    /// Default `opportunistic` for etrn/turn, `required` for atrn.
    pub tls: TlsMode,
    /// ETRN argument override, used verbatim (e.g. `#office` for Exim).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub node: Option<String>,
    /// The password is in the OS keyring under `username@host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub tls_ca: Option<PathBuf>,
    /// SHA-256 of the server's DER certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(as = "Option<String>", optional))]
    pub tls_fingerprint: Option<Fingerprint>,
    pub allow_plaintext_auth: bool,
    pub allow_insecure_turn: bool,
    /// Every connect, read and write towards this server (extension; default 30 s).
    #[serde(with = "humantime_serde_compat")]
    #[cfg_attr(test, ts(as = "String"))]
    pub timeout: Duration,
}

/// `timeout` of a queue server when the file names none.
pub(crate) const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

impl QueueServer {
    /// The server a config file describes with only `host` and `protocol`: that protocol's
    /// port and TLS mode, no login, no overrides, the default timeout.
    pub fn new(host: impl Into<String>, protocol: Protocol) -> QueueServer {
        QueueServer {
            host: host.into(),
            port: protocol.default_port(),
            protocol,
            tls: protocol.default_tls(),
            node: None,
            username: None,
            tls_ca: None,
            tls_fingerprint: None,
            allow_plaintext_auth: false,
            allow_insecure_turn: false,
            timeout: DEFAULT_QUEUE_TIMEOUT,
        }
    }

    /// Keyring entry name of this server's password: `username@host`.
    pub fn secret_name(&self) -> Option<String> {
        self.username.as_ref().map(|u| format!("{u}@{}", self.host))
    }

    /// The ETRN argument for `domain`: the `node` override verbatim, else the domain.
    pub fn etrn_argument<'a>(&'a self, domain: &'a str) -> &'a str {
        self.node.as_deref().unwrap_or(domain)
    }
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Etrn,
    Atrn,
    Turn,
}

impl Protocol {
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Etrn | Protocol::Turn => 25,
            Protocol::Atrn => 366,
        }
    }
    pub fn default_tls(self) -> TlsMode {
        match self {
            Protocol::Etrn | Protocol::Turn => TlsMode::Opportunistic,
            Protocol::Atrn => TlsMode::Required,
        }
    }
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    Required,
    Opportunistic,
    Off,
}

/// A pinned SHA-256 certificate fingerprint, written `sha256:AB:CD:...` (64 hex digits; colons
/// optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}
impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sha256:")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}
impl std::str::FromStr for Fingerprint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| "a fingerprint starts with \"sha256:\"".to_string())?;
        let digits: String = hex.chars().filter(|c| *c != ':').collect();
        if digits.len() != 64 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err("a SHA-256 fingerprint has 64 hex digits (colons optional)".into());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(Fingerprint(out))
    }
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    pub listen: Vec<SocketAddr>,
    #[cfg_attr(test, ts(as = "String"))]
    pub deliver: DeliverTarget,
    /// Name in our 220 banner, EHLO and Received: headers (extension; default: this host's name).
    pub hostname: String,
    /// Extension; default 50 MiB. Written in the file as bytes or with a K/M/G suffix.
    pub max_message_size: u64,
    /// Extension; default 50 concurrent sessions.
    pub max_connections: usize,
    /// Extension; default 5 min (RFC 5321 4.5.3.2 server timeout). Bounds each command line
    /// as a whole and each wait inside DATA.
    #[serde(with = "humantime_serde_compat")]
    #[cfg_attr(test, ts(as = "String"))]
    pub idle_timeout: Duration,
    /// Extension; default 20 sessions at a time from one client address.
    #[serde(default = "defaults::max_connections_per_client")]
    #[cfg_attr(test, ts(optional = nullable))]
    pub max_connections_per_client: usize,
    /// Extension; default 100 NOOP, RSET, VRFY, EXPN or HELP per session (counted from the last
    /// message accepted); then the session is closed.
    #[serde(default = "defaults::max_junk_commands")]
    #[cfg_attr(test, ts(optional = nullable))]
    pub max_junk_commands: u32,
    /// Extension; default 1 h: a session is closed at the next command after this long.
    #[serde(
        default = "defaults::max_session_time",
        with = "humantime_serde_compat"
    )]
    #[cfg_attr(test, ts(as = "String", optional = nullable))]
    pub max_session_time: Duration,
    /// The certificate (PEM chain) and key for STARTTLS; without them a self-signed pair is
    /// made in the state folder at first start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

/// Defaults of the `[inbound]` extensions, shared by the validator and serde.
pub mod defaults {
    use std::time::Duration;

    /// Postfix's default parallel deliveries to one destination: a queuing server never
    /// needs more, and the rest of `max_connections` stays free for everyone else.
    pub const MAX_CONNECTIONS_PER_CLIENT: usize = 20;
    pub const MAX_JUNK_COMMANDS: u32 = 100;
    pub const MAX_SESSION_TIME: Duration = Duration::from_secs(3600);

    pub fn max_connections_per_client() -> usize {
        MAX_CONNECTIONS_PER_CLIENT
    }
    pub fn max_junk_commands() -> u32 {
        MAX_JUNK_COMMANDS
    }
    pub fn max_session_time() -> Duration {
        MAX_SESSION_TIME
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliverTarget {
    /// `maildir:/path` (created with tmp/, new/, cur/ if missing).
    Maildir(PathBuf),
    /// `smtp://host:port`: forward to the office mail server.
    Smtp { host: String, port: u16 },
}

impl std::fmt::Display for DeliverTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeliverTarget::Maildir(p) => write!(f, "maildir:{}", p.display()),
            DeliverTarget::Smtp { host, port } => {
                write!(f, "smtp://{}", join_host_port(host, *port))
            }
        }
    }
}
impl Serialize for DeliverTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}
impl<'de> Deserialize<'de> for DeliverTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_deliver_target(&s).map_err(serde::de::Error::custom)
    }
}

/// `maildir:/abs/path` or `smtp://host:port`.
pub fn parse_deliver_target(s: &str) -> Result<DeliverTarget, String> {
    if let Some(path) = s.strip_prefix("maildir:") {
        if path.is_empty() {
            return Err("maildir: needs a folder, e.g. \"maildir:/srv/mail/Maildir\"".into());
        }
        return Ok(DeliverTarget::Maildir(PathBuf::from(path)));
    }
    if let Some(rest) = s.strip_prefix("smtp://") {
        let (host, port) = split_host_port(rest.trim_end_matches('/'), 25)?;
        return Ok(DeliverTarget::Smtp { host, port });
    }
    Err(format!(
        "\"{s}\" is neither \"maildir:/path/to/Maildir\" nor \"smtp://host:port\""
    ))
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outbound {
    pub listen: Vec<SocketAddr>,
    #[cfg_attr(test, ts(as = "Vec<String>"))]
    pub allow: Vec<ipnet::IpNet>,
    /// `smtp://host:port` (STARTTLS per `smarthost_tls`) or `smtps://host:port` (implicit TLS).
    pub smarthost: String,
    pub smarthost_tls: TlsMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub smarthost_username: Option<String>,
    /// An extra trust anchor for the smarthost's certificate (an ISP's own CA, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(as = "Option<String>", optional))]
    pub smarthost_tls_ca: Option<PathBuf>,
    /// The outbound spool folder (default: `outbound` in the state folder; empty in a config
    /// from a front end that left it out: see [`Outbound::spool_dir`]). Empty is not written
    /// out: the file then has no `spool` line, which means the default.
    #[serde(default, skip_serializing_if = "is_empty_path")]
    #[cfg_attr(test, ts(as = "Option<String>", optional))]
    pub spool: PathBuf,
    /// Wall-clock time after which undelivered recipients bounce (never before 3 real attempts).
    #[serde(
        with = "humantime_serde_compat",
        default = "outbound_defaults::max_queue_lifetime"
    )]
    #[cfg_attr(test, ts(as = "Option<String>", optional))]
    pub max_queue_lifetime: Duration,
    /// The first retry wait after a temporary failure; doubled each time up to `retry_max`.
    #[serde(
        with = "humantime_serde_compat",
        default = "outbound_defaults::retry_min"
    )]
    #[cfg_attr(test, ts(as = "Option<String>", optional))]
    pub retry_min: Duration,
    #[serde(
        with = "humantime_serde_compat",
        default = "outbound_defaults::retry_max"
    )]
    #[cfg_attr(test, ts(as = "Option<String>", optional))]
    pub retry_max: Duration,
    /// One warning to the sender after this long undelivered; zero = off.
    #[serde(
        with = "humantime_serde_compat",
        default = "outbound_defaults::delay_warning"
    )]
    #[cfg_attr(test, ts(as = "Option<String>", optional))]
    pub delay_warning: Duration,
}

/// Defaults of the `[outbound]` queue keys.
pub mod outbound_defaults {
    use std::time::Duration;

    pub const MAX_QUEUE_LIFETIME: Duration = Duration::from_secs(5 * 24 * 3600);
    pub const RETRY_MIN: Duration = Duration::from_secs(5 * 60);
    pub const RETRY_MAX: Duration = Duration::from_secs(3600);

    pub fn max_queue_lifetime() -> Duration {
        MAX_QUEUE_LIFETIME
    }
    pub fn retry_min() -> Duration {
        RETRY_MIN
    }
    pub fn retry_max() -> Duration {
        RETRY_MAX
    }
    pub fn delay_warning() -> Duration {
        Duration::ZERO
    }
}

impl Outbound {
    /// True for `smtps://` (TLS from the first byte), false for `smtp://` (STARTTLS per
    /// `smarthost_tls`).
    pub fn smarthost_implicit_tls(&self) -> bool {
        self.smarthost.starts_with("smtps://")
    }

    /// The spool folder: `spool`, or `outbound` in `state_dir` when it is empty.
    pub fn spool_dir(&self, state_dir: &Path) -> PathBuf {
        if self.spool.as_os_str().is_empty() {
            state_dir.join("outbound")
        } else {
            self.spool.clone()
        }
    }

    /// Keyring entry name of the smarthost password: `username@host`.
    pub fn secret_name(&self) -> Option<String> {
        let (host, _) = self.smarthost_host_port();
        self.smarthost_username
            .as_ref()
            .map(|u| format!("{u}@{host}"))
    }

    /// The smarthost's host (IPv6 without brackets) and port. A validated config always has the
    /// port written out; otherwise 465 for `smtps://` and 587 for `smtp://` are assumed.
    pub fn smarthost_host_port(&self) -> (String, u16) {
        let default_port = if self.smarthost_implicit_tls() {
            465
        } else {
            587
        };
        let rest = self
            .smarthost
            .split_once("://")
            .map_or(self.smarthost.as_str(), |(_, rest)| rest);
        split_host_port(rest.trim_end_matches('/'), default_port)
            .unwrap_or_else(|_| (rest.to_string(), default_port))
    }
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// `auto` (the first queue server) or `host:port`.
    pub probe: String,
    /// Zero = dequeue only on link-up.
    #[serde(with = "humantime_serde_compat")]
    #[cfg_attr(test, ts(as = "String"))]
    pub refetch_every: Duration,
    /// Extension: how long to wait for the queuing server to connect back after an accepted
    /// ETRN (default 2 min).
    #[serde(with = "humantime_serde_compat")]
    #[cfg_attr(test, ts(as = "String"))]
    pub connect_back_timeout: Duration,
}

#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Dns {
    pub nameservers: Vec<SocketAddr>,
}

/// `[journal]`: whether the mail-flow journal is kept, and for how long.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Journal {
    /// Off: nothing is recorded (the addresses of senders and recipients stay out of it).
    pub enabled: bool,
    #[serde(with = "humantime_serde_compat")]
    #[cfg_attr(test, ts(as = "String"))]
    pub retention: Duration,
}

impl Default for Journal {
    fn default() -> Journal {
        Journal {
            enabled: true,
            retention: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

impl Journal {
    fn is_default(&self) -> bool {
        *self == Journal::default()
    }
}

/// Settings of the tray app `postern`; `posternd` ignores them.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Desktop {
    /// Desktop notifications (mail released, refusals, nothing arrived, link lost).
    pub notifications: bool,
}

impl Default for Desktop {
    fn default() -> Desktop {
        Desktop {
            notifications: true,
        }
    }
}

/// A configuration problem, located in its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "{path}: cannot read the file: {source}. Create it (copy examples/postern.toml; every key is in docs/configuration.md) or pass --config FILE"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `line`/`column` are 1-based.
    #[error("{path}:{line}:{column}: {message}{}", fix.as_ref().map(|f| format!(". Fix: {f}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        fix: Option<String>,
    },
}

impl Config {
    /// Plain-language remarks `posternd config check` prints after the TOML: parts of the
    /// configuration that are accepted but not acted on yet, and risky choices.
    pub fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = NOT_YET_ACTIVE
            .iter()
            .filter(|n| (n.applies)(self))
            .map(|n| n.note.to_string())
            .collect();
        for s in &self.queue_servers {
            if s.protocol == Protocol::Turn {
                notes.push(format!(
                    "queue server {}: TURN lets anyone who can log in take the mail; prefer ATRN",
                    s.host
                ));
            }
            if s.tls == TlsMode::Off {
                notes.push(format!(
                    "queue server {}: tls = \"off\": the conversation with it is not encrypted",
                    s.host
                ));
            }
            if s.allow_plaintext_auth && s.username.is_some() && s.tls != TlsMode::Required {
                notes.push(format!(
                    "queue server {}: allow_plaintext_auth = true: the password may cross the network unencrypted",
                    s.host
                ));
            }
        }
        notes
    }

    /// The effective configuration as TOML (defaults filled in; no secrets exist in it).
    pub fn to_toml(&self) -> String {
        match toml::to_string_pretty(self) {
            // A blank line before each table header, as a person would write it.
            Ok(text) => text.replace("\n[", "\n\n["),
            Err(e) => format!("# cannot render: {e}\n"),
        }
    }
}

/// A part of the contract that is validated but whose feature comes in a later release.
struct Inactive {
    applies: fn(&Config) -> bool,
    note: &'static str,
}

/// Remove an entry when its feature lands.
const NOT_YET_ACTIVE: &[Inactive] = &[];

/// Where the config file is: `--config`, else `$POSTERN_CONFIG`, else the OS config dir.
pub fn config_path(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("POSTERN_CONFIG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    dirs::config_dir().map(|d| d.join(crate::BUNDLE_ID).join("postern.toml"))
}
