//! From [`raw`](super::raw) to [`Config`]: defaults filled in, every value checked, every problem
//! placed at the value (or the table) it comes from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::raw::{
    RawConfig, RawDesktop, RawDns, RawInbound, RawJournal, RawLink, RawOutbound, RawQueueServer,
    RawSize,
};
use super::report::{Problem, Src};
use super::{
    Config, ConfigError, DEFAULT_QUEUE_TIMEOUT, DeliverTarget, Desktop, Dns, Fingerprint, Inbound,
    Journal, Link, Outbound, Protocol, QueueServer, TlsMode, humantime_serde_compat,
    parse_deliver_target, split_host_port,
};
use crate::config::defaults;

const MAX_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const DEFAULT_INBOUND_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 25));
const DEFAULT_MAX_MESSAGE_SIZE: u64 = 50 * 1024 * 1024;
const MIN_MESSAGE_SIZE: u64 = 64 * 1024;
const DEFAULT_MAX_CONNECTIONS: usize = 50;
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const DEFAULT_REFETCH_EVERY: Duration = Duration::from_secs(15 * 60);
const DEFAULT_CONNECT_BACK_TIMEOUT: Duration = Duration::from_secs(2 * 60);
const DNS_PORT: u16 = 53;

type R<T> = Result<T, ConfigError>;

pub(super) fn convert(raw: RawConfig, src: Src<'_>) -> R<Config> {
    let domains = domains(raw.domains, src)?;
    let queue_servers = queue_servers(raw.queue_servers, src)?;
    let Some(inbound) = raw.inbound else {
        return Err(src.whole(Problem::new(
            "there is no [inbound] section: Postern needs to know where to put the mail it receives",
            "add an [inbound] section at the end of the file: a line [inbound] followed by \
             deliver = \"maildir:/srv/mail/Maildir\" (or deliver = \"smtp://192.168.1.10:25\")",
        )));
    };
    let inbound = self::inbound(inbound, &queue_servers, src)?;
    let state_dir = state_dir(raw.state_dir, src)?;
    let outbound = raw
        .outbound
        .map(|o| outbound(o, &state_dir, src))
        .transpose()?;
    let link = link(raw.link, src)?;
    let dns = dns(raw.dns, src)?;
    let desktop = desktop(raw.desktop);
    let journal = journal(raw.journal, src)?;
    Ok(Config {
        domains,
        queue_servers,
        inbound,
        outbound,
        link,
        dns,
        desktop,
        state_dir,
        journal,
    })
}

fn journal(raw: Option<Spanned<RawJournal>>, src: Src<'_>) -> R<Journal> {
    let Some(raw) = raw.map(Spanned::into_inner) else {
        return Ok(Journal::default());
    };
    let retention = duration(
        raw.retention.as_ref(),
        "retention",
        Journal::default().retention,
        Bounds::positive(),
        src,
    )?;
    Ok(Journal { retention })
}

fn domains(raw: Option<Spanned<Vec<Spanned<String>>>>, src: Src<'_>) -> R<Vec<String>> {
    const FIX: &str = "list the office's mail domains at the top of the file, before any [section]: \
                       domains = [\"office.example\"]";
    let Some(raw) = raw else {
        return Err(src.whole(Problem::new(
            "there is no `domains` list: Postern needs to know which mail domains to fetch",
            FIX,
        )));
    };
    if raw.get_ref().is_empty() {
        return Err(src.at(
            raw.span(),
            Problem::new("`domains` is empty: there is no mail domain to fetch", FIX),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for d in raw.into_inner() {
        let name = dns_name(d.get_ref(), 2)
            .map_err(|why| src.at(d.span(), domain_problem(d.get_ref(), &why)))?;
        if out.contains(&name) {
            return Err(src.at(
                d.span(),
                Problem::new(
                    format!("the domain \"{name}\" is listed twice in `domains`"),
                    "remove the second one",
                ),
            ));
        }
        out.push(name);
    }
    Ok(out)
}

fn domain_problem(input: &str, why: &str) -> Problem {
    Problem::new(
        format!("\"{input}\" is not a valid domain name: {why}"),
        "write the domain as it appears in e-mail addresses after the @, e.g. \"office.example\"",
    )
}

/// A DNS name in lower-case ASCII: trailing dot stripped, IDNs converted to their A-label form.
/// The reason for a refusal is returned in plain words.
pub(super) fn dns_name(input: &str, min_labels: usize) -> Result<String, String> {
    let trimmed = input.strip_suffix('.').unwrap_or(input);
    if trimmed.is_empty() {
        return Err("it is empty".into());
    }
    if trimmed.chars().any(char::is_whitespace) {
        return Err("it contains a space".into());
    }
    let ascii = if trimmed.is_ascii() {
        trimmed.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(trimmed).map_err(|_| {
            "it is not a valid international domain name; write it in its ASCII form \
             (\"xn--...\", as your registrar shows it)"
                .to_string()
        })?
    };
    if ascii.len() > 253 {
        return Err("it is longer than 253 characters".into());
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err("it has an empty part between two dots".into());
        }
        if label.len() > 63 {
            return Err(format!("the part \"{label}\" is longer than 63 characters"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!(
                "'{c}' is not allowed (only letters, digits, '-' and dots)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the part \"{label}\" starts or ends with '-'"));
        }
    }
    if labels.len() < min_labels {
        return Err("a domain has at least two parts, like \"office.example\"".into());
    }
    if labels.len() > 1
        && labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("its last part is a number, so it looks like an IP address".into());
    }
    Ok(ascii)
}

/// A host name (one label is enough, e.g. `localhost`) or an IP literal (brackets optional).
pub(super) fn host(input: &str) -> Result<String, String> {
    let bare = input
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(input);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if bare.contains(':') {
        return Err("it is neither a host name nor an IP address".into());
    }
    dns_name(bare, 1)
}

/// `host:port` with IPv6 hosts in brackets.
pub(super) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn queue_servers(
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

fn queue_server(raw: Spanned<RawQueueServer>, src: Src<'_>) -> R<QueueServer> {
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

fn port(raw: &Spanned<i64>, src: Src<'_>, default: u16) -> R<u16> {
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

fn node(raw: Spanned<String>, src: Src<'_>) -> R<String> {
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

fn username(raw: &Spanned<String>, key: &str, src: Src<'_>) -> R<String> {
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

fn tls_ca(raw: &Spanned<String>, src: Src<'_>) -> R<PathBuf> {
    readable_file(
        raw,
        "tls_ca",
        "write the full path of the CA certificate (PEM) your ISP gave you, e.g. \
         tls_ca = \"/etc/postern/isp-ca.pem\", and check that the file is readable",
        src,
    )
}

/// A full path to a file that can be opened now.
fn readable_file(raw: &Spanned<String>, key: &str, fix: &str, src: Src<'_>) -> R<PathBuf> {
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

struct Bounds {
    zero_ok: bool,
    max: Option<Duration>,
}

impl Bounds {
    fn positive() -> Bounds {
        Bounds {
            zero_ok: false,
            max: None,
        }
    }
    fn positive_up_to(max: Duration) -> Bounds {
        Bounds {
            zero_ok: false,
            max: Some(max),
        }
    }
    fn zero_ok() -> Bounds {
        Bounds {
            zero_ok: true,
            max: None,
        }
    }
}

fn duration(
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

fn socket_addrs(
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
fn listen_fix(text: &str) -> String {
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

fn inbound(raw: Spanned<RawInbound>, servers: &[QueueServer], src: Src<'_>) -> R<Inbound> {
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

/// A whole number of at least 1.
fn count(raw: Option<&Spanned<i64>>, key: &str, default: usize, src: Src<'_>) -> R<usize> {
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

fn state_dir(raw: Option<Spanned<String>>, src: Src<'_>) -> R<PathBuf> {
    let Some(raw) = raw else {
        return Ok(super::default_state_dir());
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

fn deliver(raw: &Spanned<String>, src: Src<'_>) -> R<DeliverTarget> {
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

fn message_size(raw: &Spanned<RawSize>, src: Src<'_>) -> R<u64> {
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
pub(super) fn parse_size(text: &str) -> Option<u64> {
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

fn outbound(raw: Spanned<RawOutbound>, state_dir: &Path, src: Src<'_>) -> R<Outbound> {
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
        spool,
        max_queue_lifetime,
        retry_min,
        retry_max,
        delay_warning,
    })
}

fn network(raw: &Spanned<String>, src: Src<'_>) -> R<ipnet::IpNet> {
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

fn smarthost(raw: &Spanned<String>, src: Src<'_>) -> R<String> {
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

fn link(raw: Option<Spanned<RawLink>>, src: Src<'_>) -> R<Link> {
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

fn probe(raw: &Spanned<String>, src: Src<'_>) -> R<String> {
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

fn dns(raw: Option<Spanned<RawDns>>, src: Src<'_>) -> R<Dns> {
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

fn desktop(raw: Option<Spanned<RawDesktop>>) -> Desktop {
    let defaults = Desktop::default();
    let Some(raw) = raw.map(Spanned::into_inner) else {
        return defaults;
    };
    Desktop {
        notifications: raw
            .notifications
            .map_or(defaults.notifications, Spanned::into_inner),
    }
}
