//! The ODMR test provider as a process, for tests that run it elsewhere (e.g. `ip netns exec`).
//!
//! `odmr-provider --config F.json --listen ADDR [--state S.json]`
//!
//! Prints `listening on ADDR` once it accepts connections; after every session (and at start)
//! writes `{"held": [...], "delivered": [...], "attempts": [...], "auth_attempts": [...],
//! "sessions_finished": n}` to the state file (atomically, via a rename). SIGTERM or SIGINT
//! stops it. The config file:
//!
//! ```json
//! {"hostname": "isp.test",
//!  "users": [{"name": "office", "password": "pw", "domains": ["office.test"]}],
//!  "mechanisms": ["CRAM-MD5", "SCRAM-SHA-256"],
//!  "tls": {"cert_pem_file": "cert.pem", "key_pem_file": "key.pem"},
//!  "allow_plain_without_tls": false, "turn_enabled": false, "fault": null,
//!  "held": [{"from": "a@example.net", "rcpts": ["u@office.test"], "data": "Subject: x\r\n\r\nhi\r\n"}],
//!  "idle_timeout_secs": 30}
//! ```
//! A held message may give `data_base64` instead of `data`. Every field but `users` is optional.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use postern_tests::harness::odmr::{
    Fault, HeldMessage, Mechanism, OdmrConfig, OdmrProvider, TestCert, User,
};
use serde::{Deserialize, Serialize};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    hostname: Option<String>,
    users: Vec<User>,
    mechanisms: Option<Vec<Mechanism>>,
    tls: Option<FileTls>,
    #[serde(default)]
    allow_plain_without_tls: bool,
    #[serde(default)]
    turn_enabled: bool,
    fault: Option<Fault>,
    #[serde(default)]
    held: Vec<FileHeld>,
    idle_timeout_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert_pem_file: PathBuf,
    key_pem_file: PathBuf,
}

#[derive(Deserialize, Serialize)]
struct FileHeld {
    from: String,
    rcpts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_base64: Option<String>,
}

#[derive(Serialize)]
struct StateDelivered {
    session: u64,
    from: String,
    rcpts: Vec<String>,
    reply: String,
    data: String,
    data_base64: String,
}

fn usage() -> String {
    "usage: odmr-provider --config FILE.json --listen ADDR:PORT [--state FILE.json]".to_string()
}

struct Args {
    config: PathBuf,
    listen: SocketAddr,
    state: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut config = None;
    let mut listen = None;
    let mut state = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value; {}", usage()))
        };
        match flag.as_str() {
            "--config" => config = Some(PathBuf::from(value()?)),
            "--listen" => {
                let v = value()?;
                listen = Some(v.parse().map_err(|_| {
                    format!("--listen {v:?} is not an address like 127.0.0.1:2366")
                })?);
            }
            "--state" => state = Some(PathBuf::from(value()?)),
            "--help" | "-h" => return Err(usage()),
            other => return Err(format!("unknown argument {other:?}; {}", usage())),
        }
    }
    Ok(Args {
        config: config.ok_or_else(|| format!("--config is required; {}", usage()))?,
        listen: listen.ok_or_else(|| format!("--listen is required; {}", usage()))?,
        state,
    })
}

fn load_config(path: &Path) -> Result<OdmrConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the config {}: {e}", path.display()))?;
    let file: FileConfig = serde_json::from_str(&text)
        .map_err(|e| format!("the config {} is not valid: {e}", path.display()))?;
    let mut config = OdmrConfig {
        users: file.users,
        allow_plain_without_tls: file.allow_plain_without_tls,
        turn_enabled: file.turn_enabled,
        fault: file.fault,
        ..OdmrConfig::default()
    };
    if let Some(hostname) = file.hostname {
        config.hostname = hostname;
    }
    if let Some(mechanisms) = file.mechanisms {
        config.mechanisms = mechanisms;
    }
    if let Some(secs) = file.idle_timeout_secs {
        config.idle_timeout = Duration::from_secs(secs);
    }
    if let Some(tls) = file.tls {
        config.tls = Some(
            TestCert::from_pem_files(&tls.cert_pem_file, &tls.key_pem_file)
                .map_err(|e| e.to_string())?,
        );
    }
    for held in file.held {
        let data = match (held.data, held.data_base64) {
            (Some(text), None) => text.into_bytes(),
            (None, Some(b64)) => B64.decode(b64.trim()).map_err(|e| {
                format!("a held message's data_base64 is not base64 ({e}); fix the config")
            })?,
            _ => {
                return Err(
                    "each held message needs exactly one of \"data\" or \"data_base64\"".into(),
                );
            }
        };
        config.held.push(HeldMessage {
            from: held.from,
            rcpts: held.rcpts,
            data,
        });
    }
    Ok(config)
}

fn write_state(provider: &OdmrProvider, path: &Path) -> Result<(), String> {
    let held: Vec<FileHeld> = provider
        .held_messages()
        .into_iter()
        .map(|m| FileHeld {
            from: m.from,
            rcpts: m.rcpts,
            data: None,
            data_base64: Some(B64.encode(&m.data)),
        })
        .collect();
    let delivered: Vec<StateDelivered> = provider
        .delivered()
        .into_iter()
        .map(|d| StateDelivered {
            session: d.session,
            from: d.from,
            rcpts: d.rcpts,
            reply: d.reply,
            data: String::from_utf8_lossy(&d.data).into_owned(),
            data_base64: B64.encode(&d.data),
        })
        .collect();
    let state = serde_json::json!({
        "held": held,
        "delivered": delivered,
        "attempts": provider.attempts(),
        "auth_attempts": provider.auth_attempts(),
        "sessions_finished": provider.sessions_finished(),
    });
    let text = serde_json::to_string_pretty(&state).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write the state file {}: {e}", path.display()))
}

async fn run(args: Args) -> Result<(), String> {
    let config = load_config(&args.config)?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let provider = OdmrProvider::start(config, args.listen)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(path) = &args.state {
        write_state(&provider, path)?;
    }
    println!("listening on {}", provider.addr());
    loop {
        let next = provider.sessions_finished() + 1;
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            done = provider.wait_sessions_finished(next, Duration::from_secs(3600)) => {
                if done && let Some(path) = &args.state {
                    write_state(&provider, path)?;
                }
            }
        }
    }
    if let Some(path) = &args.state {
        write_state(&provider, path)?;
    }
    provider.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("odmr-provider: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("odmr-provider: {e}");
            ExitCode::FAILURE
        }
    }
}
