//! The file as written: every key optional (so a missing one is reported by us, at the table that
//! lacks it), unknown keys rejected, every value we validate kept with its span.

use serde::Deserialize;
use toml::Spanned;

use super::{Protocol, TlsMode};

type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub domains: Option<S<Vec<S<String>>>>,
    pub queue_servers: Option<S<Vec<S<RawQueueServer>>>>,
    pub inbound: Option<S<RawInbound>>,
    pub outbound: Option<S<RawOutbound>>,
    pub link: Option<S<RawLink>>,
    pub dns: Option<S<RawDns>>,
    pub desktop: Option<S<RawDesktop>>,
    pub state_dir: Option<S<String>>,
    pub journal: Option<S<RawJournal>>,
    pub backup_for: Option<S<Vec<S<RawBackupFor>>>>,
    pub backup: Option<S<RawBackup>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQueueServer {
    pub host: Option<S<String>>,
    /// Wider than `u16` so that 0 and 70000 get our message rather than serde's.
    pub port: Option<S<i64>>,
    pub protocol: Option<S<Protocol>>,
    pub tls: Option<S<TlsMode>>,
    pub node: Option<S<String>>,
    pub username: Option<S<String>>,
    pub tls_ca: Option<S<String>>,
    pub tls_fingerprint: Option<S<String>>,
    pub allow_plaintext_auth: Option<S<bool>>,
    pub allow_insecure_turn: Option<S<bool>>,
    pub timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInbound {
    pub listen: Option<S<Vec<S<String>>>>,
    pub deliver: Option<S<String>>,
    pub hostname: Option<S<String>>,
    pub max_message_size: Option<S<RawSize>>,
    pub max_connections: Option<S<i64>>,
    pub idle_timeout: Option<S<String>>,
    pub max_connections_per_client: Option<S<i64>>,
    pub max_junk_commands: Option<S<i64>>,
    pub max_session_time: Option<S<String>>,
    pub tls_cert: Option<S<String>>,
    pub tls_key: Option<S<String>>,
}

/// `max_message_size = 52428800` or `max_message_size = "50M"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawSize {
    Bytes(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutbound {
    pub listen: Option<S<Vec<S<String>>>>,
    pub allow: Option<S<Vec<S<String>>>>,
    pub smarthost: Option<S<String>>,
    pub smarthost_tls: Option<S<TlsMode>>,
    pub smarthost_username: Option<S<String>>,
    pub smarthost_tls_ca: Option<S<String>>,
    pub spool: Option<S<String>>,
    pub max_queue_lifetime: Option<S<String>>,
    pub retry_min: Option<S<String>>,
    pub retry_max: Option<S<String>>,
    pub delay_warning: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLink {
    pub probe: Option<S<String>>,
    pub refetch_every: Option<S<String>>,
    pub connect_back_timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    pub nameservers: Option<S<Vec<S<String>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDesktop {
    pub notifications: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJournal {
    pub enabled: Option<S<bool>>,
    pub retention: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackupFor {
    pub domain: Option<S<String>>,
    pub deliver_to: Option<S<String>>,
    pub release: Option<S<Vec<S<String>>>>,
    pub username: Option<S<String>>,
    pub hold: Option<S<bool>>,
    pub max_hold: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackup {
    pub odmr_listen: Option<S<Vec<S<String>>>>,
    pub mx_port: Option<S<i64>>,
    pub etrn_per_minute: Option<S<i64>>,
}
