//! Every key of the contract, with what it expects: used to word type errors, and checked
//! against `docs/configuration.md` by a test so the reference cannot fall behind.

pub(crate) struct KeyDoc {
    /// `""` for the top level, else the table name (`queue_servers`, `inbound`, ...).
    pub section: &'static str,
    pub key: &'static str,
    /// What the value must be, in plain words.
    pub expects: &'static str,
    /// A correct line to copy (one line: errors are printed on one line).
    pub example: &'static str,
}

const fn k(
    section: &'static str,
    key: &'static str,
    expects: &'static str,
    example: &'static str,
) -> KeyDoc {
    KeyDoc {
        section,
        key,
        expects,
        example,
    }
}

pub(crate) const KEYS: &[KeyDoc] = &[
    k(
        "",
        "domains",
        "a list of domain names in quotes",
        r#"domains = ["office.example"]"#,
    ),
    k(
        "",
        "queue_servers",
        "one or more [[queue_servers]] tables",
        "a line [[queue_servers]] followed by host = \"mail.isp.example\"",
    ),
    k(
        "",
        "inbound",
        "an [inbound] table",
        "a line [inbound] followed by deliver = \"maildir:/srv/mail/Maildir\"",
    ),
    k(
        "",
        "outbound",
        "an [outbound] table",
        "a line [outbound] followed by listen = [\"0.0.0.0:587\"]",
    ),
    k(
        "",
        "link",
        "a [link] table",
        "a line [link] followed by refetch_every = \"15m\"",
    ),
    k(
        "",
        "dns",
        "a [dns] table",
        "a line [dns] followed by nameservers = []",
    ),
    k(
        "",
        "state_dir",
        "the full path of a folder, in quotes",
        r#"state_dir = "/var/lib/postern""#,
    ),
    k(
        "",
        "journal",
        "a [journal] table",
        "a line [journal] followed by retention = \"90d\"",
    ),
    k(
        "journal",
        "enabled",
        "true or false, without quotes",
        "enabled = true",
    ),
    k(
        "journal",
        "retention",
        "a duration in quotes, longer than zero",
        r#"retention = "90d""#,
    ),
    k(
        "",
        "desktop",
        "a [desktop] table",
        "a line [desktop] followed by notifications = true",
    ),
    k(
        "queue_servers",
        "host",
        "a host name or IP address in quotes",
        r#"host = "mail.isp.example""#,
    ),
    k(
        "queue_servers",
        "port",
        "a port number from 1 to 65535, without quotes",
        "port = 25",
    ),
    k(
        "queue_servers",
        "protocol",
        r#"one of "etrn", "atrn" or "turn""#,
        r#"protocol = "etrn""#,
    ),
    k(
        "queue_servers",
        "tls",
        r#"one of "required", "opportunistic" or "off""#,
        r#"tls = "opportunistic""#,
    ),
    k(
        "queue_servers",
        "node",
        "text in quotes, without spaces",
        r##"node = "#office""##,
    ),
    k(
        "queue_servers",
        "username",
        "a user name in quotes",
        r#"username = "office""#,
    ),
    k(
        "queue_servers",
        "tls_ca",
        "the full path of a PEM file, in quotes",
        r#"tls_ca = "/etc/postern/isp-ca.pem""#,
    ),
    k(
        "queue_servers",
        "tls_fingerprint",
        r#"a fingerprint in quotes starting with "sha256:""#,
        r#"tls_fingerprint = "sha256:AB:CD:...""#,
    ),
    k(
        "queue_servers",
        "allow_plaintext_auth",
        "true or false, without quotes",
        "allow_plaintext_auth = false",
    ),
    k(
        "queue_servers",
        "allow_insecure_turn",
        "true or false, without quotes",
        "allow_insecure_turn = false",
    ),
    k(
        "queue_servers",
        "timeout",
        "a duration in quotes",
        r#"timeout = "30s""#,
    ),
    k(
        "inbound",
        "listen",
        "a list of IP:port addresses in quotes",
        r#"listen = ["0.0.0.0:25"]"#,
    ),
    k(
        "inbound",
        "deliver",
        r#""maildir:/path" or "smtp://host:port", in quotes"#,
        r#"deliver = "maildir:/srv/mail/Maildir""#,
    ),
    k(
        "inbound",
        "hostname",
        "a host name in quotes",
        r#"hostname = "gateway.office.example""#,
    ),
    k(
        "inbound",
        "max_message_size",
        r#"a number of bytes, or a size in quotes such as "50M""#,
        r#"max_message_size = "50M""#,
    ),
    k(
        "inbound",
        "max_connections",
        "a whole number of at least 1, without quotes",
        "max_connections = 50",
    ),
    k(
        "inbound",
        "idle_timeout",
        "a duration in quotes",
        r#"idle_timeout = "5m""#,
    ),
    k(
        "inbound",
        "max_connections_per_client",
        "a whole number of at least 1, without quotes",
        "max_connections_per_client = 20",
    ),
    k(
        "inbound",
        "max_junk_commands",
        "a whole number of at least 1, without quotes",
        "max_junk_commands = 100",
    ),
    k(
        "inbound",
        "max_session_time",
        "a duration in quotes",
        r#"max_session_time = "1h""#,
    ),
    k(
        "inbound",
        "tls_cert",
        "the full path of a PEM file, in quotes",
        r#"tls_cert = "/etc/postern/cert.pem""#,
    ),
    k(
        "inbound",
        "tls_key",
        "the full path of a PEM file, in quotes",
        r#"tls_key = "/etc/postern/key.pem""#,
    ),
    k(
        "outbound",
        "listen",
        "a list of IP:port addresses in quotes",
        r#"listen = ["0.0.0.0:587"]"#,
    ),
    k(
        "outbound",
        "allow",
        "a list of networks in quotes",
        r#"allow = ["192.168.1.0/24"]"#,
    ),
    k(
        "outbound",
        "smarthost",
        r#""smtp://host:port" or "smtps://host:port", in quotes"#,
        r#"smarthost = "smtp://smtp.isp.example:587""#,
    ),
    k(
        "outbound",
        "smarthost_tls",
        r#"one of "required", "opportunistic" or "off""#,
        r#"smarthost_tls = "required""#,
    ),
    k(
        "outbound",
        "smarthost_username",
        "a user name in quotes",
        r#"smarthost_username = "office""#,
    ),
    k(
        "outbound",
        "smarthost_tls_ca",
        "the full path of a PEM file, in quotes",
        r#"smarthost_tls_ca = "/etc/postern/isp-ca.pem""#,
    ),
    k(
        "outbound",
        "spool",
        "the full path of a folder, in quotes",
        r#"spool = "/var/lib/postern/outbound""#,
    ),
    k(
        "outbound",
        "max_queue_lifetime",
        "a duration in quotes",
        r#"max_queue_lifetime = "5d""#,
    ),
    k(
        "outbound",
        "retry_min",
        "a duration in quotes",
        r#"retry_min = "5m""#,
    ),
    k(
        "outbound",
        "retry_max",
        "a duration in quotes",
        r#"retry_max = "1h""#,
    ),
    k(
        "outbound",
        "delay_warning",
        "a duration in quotes (\"0\" = off)",
        r#"delay_warning = "4h""#,
    ),
    k(
        "link",
        "probe",
        r#""auto" or "host:port", in quotes"#,
        r#"probe = "auto""#,
    ),
    k(
        "link",
        "refetch_every",
        r#"a duration in quotes, or "0""#,
        r#"refetch_every = "15m""#,
    ),
    k(
        "link",
        "connect_back_timeout",
        "a duration in quotes",
        r#"connect_back_timeout = "2m""#,
    ),
    k(
        "dns",
        "nameservers",
        "a list of IP or IP:port addresses in quotes",
        r#"nameservers = ["127.0.0.1:5353"]"#,
    ),
    k(
        "desktop",
        "notifications",
        "true or false, without quotes",
        "notifications = true",
    ),
    k(
        "",
        "backup_for",
        "one or more [[backup_for]] tables",
        "a line [[backup_for]] followed by domain = \"neighbour.example\"",
    ),
    k(
        "",
        "backup",
        "a [backup] table",
        "a line [backup] followed by odmr_listen = [\"0.0.0.0:366\"]",
    ),
    k(
        "backup_for",
        "domain",
        "a domain name in quotes",
        r#"domain = "neighbour.example""#,
    ),
    k(
        "backup_for",
        "deliver_to",
        r#""mx" or "smtp://host:port", in quotes"#,
        r#"deliver_to = "mx""#,
    ),
    k(
        "backup_for",
        "release",
        r#"a list of "etrn" and/or "atrn""#,
        r#"release = ["etrn", "atrn"]"#,
    ),
    k(
        "backup_for",
        "username",
        "a login name in quotes",
        r#"username = "neighbour""#,
    ),
    k(
        "backup_for",
        "hold",
        "true or false, without quotes",
        "hold = true",
    ),
    k(
        "backup_for",
        "max_hold",
        "a duration in quotes",
        r#"max_hold = "7d""#,
    ),
    k(
        "backup",
        "odmr_listen",
        "a list of IP:port addresses in quotes",
        r#"odmr_listen = ["0.0.0.0:366"]"#,
    ),
    k(
        "backup",
        "mx_port",
        "a port number without quotes",
        "mx_port = 25",
    ),
    k(
        "backup",
        "etrn_per_minute",
        "a whole number without quotes (0 = no limit)",
        "etrn_per_minute = 10",
    ),
];

pub(crate) fn lookup(section: &str, key: &str) -> Option<&'static KeyDoc> {
    KEYS.iter().find(|d| d.section == section && d.key == key)
}

/// The sections other than `section` that have `key` (for "this key belongs in [outbound]").
pub(crate) fn sections_with(key: &str, except: &str) -> Vec<&'static str> {
    KEYS.iter()
        .filter(|d| d.key == key && d.section != except && !d.section.is_empty())
        .map(|d| d.section)
        .collect()
}
