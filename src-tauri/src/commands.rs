//! The UI's commands. Each forwards to the engine or the shell in a few lines; errors reach the
//! UI as one sentence that says what is wrong and what to do.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use postern_engine::api::Command;
use postern_engine::config::{self, Config, DeliverTarget};
use postern_engine::config_store;
use postern_engine::dequeue::client::{ClientOptions, SmtpClient};
use postern_engine::events::Event;
use postern_engine::mx;
use postern_engine::tls::TrustPolicy;
use postern_engine::view::{StatusView, Window};
use serde::Serialize;
use tauri::{AppHandle, Runtime, State};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::shell::Shell;

const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

#[tauri::command]
pub fn get_status(shell: State<'_, Shell>) -> StatusView {
    StatusView::from_status(&shell.status())
}

#[tauri::command]
pub async fn fetch_now(shell: State<'_, Shell>) -> Result<(), String> {
    shell
        .send(Command::FetchNow)
        .await
        .map_err(|e| e.to_string())
}

#[tauri::command]
pub async fn pause(shell: State<'_, Shell>) -> Result<(), String> {
    shell.send(Command::Pause).await.map_err(|e| e.to_string())
}

#[tauri::command]
pub async fn resume(shell: State<'_, Shell>) -> Result<(), String> {
    shell.send(Command::Resume).await.map_err(|e| e.to_string())
}

/// The config file as the Settings pane sees it.
#[derive(Debug, Serialize)]
pub struct ConfigState {
    pub path: String,
    pub exists: bool,
    pub config: Option<Config>,
    /// Why the existing file does not load (line:column and fix).
    pub error: Option<String>,
}

#[tauri::command]
pub fn load_config(shell: State<'_, Shell>) -> ConfigState {
    let path = &shell.config_path;
    let exists = path.exists();
    let (config, error) = match exists.then(|| Config::load(path)) {
        Some(Ok(c)) => (Some(c), None),
        Some(Err(e)) => (None, Some(e.to_string())),
        None => (None, None),
    };
    ConfigState {
        path: path.display().to_string(),
        exists,
        config,
        error,
    }
}

/// Validates, saves atomically, and applies the new configuration (Apply): a reload of the
/// running engine, or a start when none runs (after the wizard).
#[tauri::command]
pub async fn save_config<R: Runtime>(
    app: AppHandle<R>,
    shell: State<'_, Shell>,
    mut config: Config,
) -> Result<StatusView, String> {
    if config.inbound.hostname.trim().is_empty() {
        config.inbound.hostname = gethostname();
    }
    let saved = config_store::save(&config, &shell.config_path).map_err(|e| e.to_string())?;
    if let Some(status) = shell.apply(saved).await.map_err(|e| e.to_string())? {
        crate::bridge::watch_status(app, status);
    }
    Ok(StatusView::from_status(&shell.status()))
}

/// Stores a password in the OS keyring under `USERNAME@HOST`.
#[tauri::command]
pub async fn set_secret(
    shell: State<'_, Shell>,
    name: String,
    password: String,
) -> Result<(), String> {
    let secrets = shell.secrets.clone();
    tauri::async_runtime::spawn_blocking(move || secrets.set(&name, &password))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// What a queuing server says it supports, and the protocol to use with it.
#[derive(Debug, Serialize)]
pub struct ServerReport {
    pub server: String,
    pub greeting: String,
    pub etrn: bool,
    pub atrn: bool,
    pub starttls: bool,
    pub auth: Vec<String>,
    /// `etrn`, `atrn`, or `None` when the server offers neither.
    pub recommended: Option<config::Protocol>,
    pub advice: String,
}

#[tauri::command]
pub async fn probe_queue_server(host: String, port: u16) -> Result<ServerReport, String> {
    let opts = ClientOptions {
        host,
        port,
        timeout: PROBE_TIMEOUT,
        helo_name: gethostname(),
        trust: TrustPolicy {
            ca_file: None,
            fingerprint: None,
        },
        connect_addr: None,
    };
    let mut client = SmtpClient::connect(&opts).await.map_err(|e| {
        format!(
            "{e}. Check the server name and port with your ISP, and that this computer is online"
        )
    })?;
    let caps = client.hello().await.map_err(|e| e.to_string())?.clone();
    client.quit().await;
    let (etrn, atrn) = (caps.has("ETRN"), caps.has("ATRN"));
    let (recommended, advice) = match (atrn, etrn) {
        (true, _) => (
            Some(config::Protocol::Atrn),
            "ATRN: the mail comes back over this connection, so port 25 need not reach this computer".into(),
        ),
        (false, true) => (
            Some(config::Protocol::Etrn),
            "ETRN: the server delivers to this computer's port 25, which must be reachable from the internet".into(),
        ),
        (false, false) => (
            None,
            "this server offers neither ETRN nor ATRN here: ask your ISP which server and port hold your mail".into(),
        ),
    };
    Ok(ServerReport {
        server: opts.server(),
        greeting: caps.greeting.clone(),
        etrn,
        atrn,
        starttls: caps.has("STARTTLS"),
        auth: caps.auth_mechanisms(),
        recommended,
        advice,
    })
}

/// Checks a delivery target: a Maildir folder can be created/written, an office server answers
/// with a 220 greeting. Returns what was found, in words.
#[tauri::command]
pub async fn test_delivery(target: String) -> Result<String, String> {
    match config::parse_deliver_target(&target)? {
        DeliverTarget::Maildir(path) => {
            if !path.is_absolute() {
                return Err(
                    "the Maildir folder must be a full path, e.g. /srv/mail/Maildir".into(),
                );
            }
            let new = path.join("new");
            std::fs::create_dir_all(&new).map_err(|e| {
                format!(
                    "cannot create {}: {e}. Pick a folder you can write to",
                    new.display()
                )
            })?;
            Ok(format!("{} is ready for mail", path.display()))
        }
        DeliverTarget::Smtp { host, port } => {
            let greeting = tokio::time::timeout(PROBE_TIMEOUT, async {
                let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                let mut line = String::new();
                BufReader::new(stream).read_line(&mut line).await?;
                Ok::<_, std::io::Error>(line.trim_end().to_string())
            })
            .await
            .map_err(|_| {
                format!("{host}:{port} did not answer within 15 s: is the office mail server on?")
            })?
            .map_err(|e| {
                format!(
                    "cannot reach {host}:{port}: {e}. Check the address and that the server runs"
                )
            })?;
            if greeting.starts_with("220") {
                Ok(format!("{host}:{port} answered: {greeting}"))
            } else {
                Err(format!(
                    "{host}:{port} is not ready for mail: it said \"{greeting}\""
                ))
            }
        }
    }
}

/// The MX checker's report for `domain`, with the saved setup's queuing servers when there is one.
#[tauri::command]
pub async fn check_mx(shell: State<'_, Shell>, domain: String) -> Result<mx::Report, String> {
    let mut input = match Config::load(&shell.config_path) {
        Ok(config) => mx::CheckInput::from_config(&config, &domain),
        Err(_) => mx::CheckInput::new(&domain),
    };
    if input.nameservers.is_empty() {
        input.nameservers = nameservers_from_env()?;
    }
    mx::check(&input).await.map_err(|e| e.to_string())
}

/// Before the wizard has written a config there is no `[dns] nameservers`; the variable
/// `POSTERN_NAMESERVERS` ("IP:PORT,IP:PORT") stands in for it (split DNS, tests).
fn nameservers_from_env() -> Result<Vec<std::net::SocketAddr>, String> {
    let Ok(list) = std::env::var("POSTERN_NAMESERVERS") else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse().map_err(|_| {
                format!(
                    "POSTERN_NAMESERVERS has {s:?}, which is not IP:PORT; fix or unset the variable"
                )
            })
        })
        .collect()
}

/// Whether mail released by ETRN can reach this computer, as far as the MX checker can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reachability {
    /// The office's MX address is this computer's and the listener is on it, on port 25.
    Reachable,
    /// Possible only with port forwarding (router, or port 25 to the listening port).
    NeedsForwarding,
    /// ETRN cannot deliver here as set up: ATRN is the way.
    Unreachable,
    /// The check could not tell (DNS failed, no office MX address, ...).
    Unknown,
}

#[derive(Debug, Serialize)]
pub struct ReachabilityReport {
    pub verdict: Reachability,
    /// The checker's findings about the way in (`etrn.*`) and what kept it from telling.
    pub findings: Vec<mx::Finding>,
}

/// Findings other than `etrn.*` that explain why reachability cannot be judged.
const REACHABILITY_BLOCKERS: &[&str] = &[
    "dns.lookup-failed",
    "domain.nxdomain",
    "mx.null",
    "mx.no-address",
    "mx.private-address",
];

/// The verdict from the `etrn.*` findings (see engine/src/mx/rules.rs, `etrn_reachability`).
pub fn reachability(findings: &[mx::Finding]) -> Reachability {
    let etrn = || findings.iter().filter(|f| f.id.starts_with("etrn."));
    if etrn().any(|f| f.severity == mx::Severity::Error) {
        Reachability::Unreachable
    } else if etrn().any(|f| f.id == "etrn.listener-port" || f.id == "etrn.needs-forwarding") {
        Reachability::NeedsForwarding
    } else if etrn().any(|f| f.id == "etrn.reachable") {
        Reachability::Reachable
    } else {
        Reachability::Unknown
    }
}

/// The wizard's "Listening port" step: runs the MX checker for `domains` as if the inbound
/// listener were on `listen_address:listen_port` and the queuing server `queue_host` used ETRN.
/// DNS servers come from the saved config, if there is one; no SMTP probes are made.
#[tauri::command]
pub async fn check_reachability(
    shell: State<'_, Shell>,
    domains: Vec<String>,
    queue_host: Option<String>,
    listen_address: String,
    listen_port: u16,
) -> Result<ReachabilityReport, String> {
    let ip: IpAddr = listen_address.trim().parse().map_err(|_| {
        format!(
            "\"{listen_address}\" is not an IP address: write 0.0.0.0 (every network of this computer), 127.0.0.1 (this computer only) or one of this computer's addresses"
        )
    })?;
    if listen_port == 0 {
        return Err("the listening port is a number from 1 to 65535".into());
    }
    let domains: Vec<&str> = domains
        .iter()
        .map(|d| d.trim())
        .filter(|d| !d.is_empty())
        .collect();
    if domains.is_empty() {
        return Err("no mail domain to check: enter the office's domain in the first step".into());
    }
    let mut nameservers = Config::load(&shell.config_path)
        .map(|c| c.dns.nameservers)
        .unwrap_or_default();
    if nameservers.is_empty() {
        nameservers = nameservers_from_env()?;
    }
    let queue_servers: Vec<config::QueueServer> = queue_host
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .map(|host| config::QueueServer {
            timeout: PROBE_TIMEOUT,
            ..config::QueueServer::new(host, config::Protocol::Etrn)
        })
        .into_iter()
        .collect();
    let mut findings: Vec<mx::Finding> = Vec::new();
    for domain in domains {
        let input = mx::CheckInput {
            queue_servers: queue_servers.clone(),
            nameservers: nameservers.clone(),
            inbound_listen: vec![SocketAddr::new(ip, listen_port)],
            probe_smtp: false,
            ..mx::CheckInput::new(domain)
        };
        let report = mx::check(&input).await.map_err(|e| e.to_string())?;
        for f in report.findings {
            let relevant =
                f.id.starts_with("etrn.") || REACHABILITY_BLOCKERS.contains(&f.id.as_str());
            if relevant && !findings.contains(&f) {
                findings.push(f);
            }
        }
    }
    Ok(ReachabilityReport {
        verdict: reachability(&findings),
        findings,
    })
}

#[tauri::command]
pub fn recent_activity(shell: State<'_, Shell>) -> Vec<Event> {
    shell.activity()
}

#[tauri::command]
pub fn open_window<R: Runtime>(app: AppHandle<R>, window: Window) -> Result<(), String> {
    crate::windows::open(&app, window).map_err(|e| e.to_string())
}

fn gethostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}
