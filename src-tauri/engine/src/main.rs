//! `posternd`: the headless Postern — the same engine as the tray app, driven from the command
//! line. See README "Command line" for the contract.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use postern_engine::api::{self, Deps};
use postern_engine::config::{self, Config, Protocol};
use postern_engine::control::Request;
use postern_engine::dequeue::{self, DequeueContext};
use postern_engine::events;
use postern_engine::secrets::{self, MemoryStore, OsKeyring, SecretStore};
use postern_engine::smtp_server::SessionContext;

mod log_command;
mod queue_cli;
mod remote;

#[derive(Parser)]
#[command(
    name = "posternd",
    version,
    about = "Postern, headless: release the office's mail from the ISP's queuing server"
)]
struct Cli {
    /// Also write the log to this file.
    #[arg(long, global = true, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Commands,
}

#[derive(clap::Args, Clone)]
pub(crate) struct ConfigArg {
    /// The config file (default: $POSTERN_CONFIG, then the OS config folder).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the engine in the foreground: inbound listener, link watcher, dequeue on link-up,
    /// on schedule and with retries.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Print every engine event as one JSON line on stdout.
        #[arg(long)]
        events: bool,
    },
    /// Dequeue once now from every queue server and print each domain's reply. When an engine
    /// runs with this config, it carries the fetch out (one dequeue at a time per server).
    Fetch {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the outcomes as JSON.
        #[arg(long)]
        json: bool,
        /// Connect to the queuing servers from this process even when an engine runs.
        #[arg(long)]
        standalone: bool,
    },
    /// The running engine's state: link, pause, each server's last result and next attempt.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        json: bool,
    },
    /// Pause the running engine's automatic dequeues (fetch still works).
    Pause {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Resume the running engine's automatic dequeues.
    Resume {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Make the running engine read its config file again (like SIGHUP).
    Reload {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Follow the running engine's events until interrupted.
    Events {
        #[command(flatten)]
        config: ConfigArg,
        /// One JSON object a line.
        #[arg(long)]
        json: bool,
    },
    /// The mail-flow journal: fetches, messages, problems and link changes, with their times
    /// (through the running engine, or from the journal file when none runs).
    Log {
        #[command(flatten)]
        config: ConfigArg,
        /// Only entries since then: a duration back (2h, 3d), a date (2026-12-01) or a local
        /// time (2026-12-01T08:00).
        #[arg(long, value_name = "2h|DATE")]
        since: Option<String>,
        /// Only this kind of entry.
        #[arg(long, value_parser = ["fetch", "message", "problem", "link", "config"])]
        kind: Option<String>,
        /// Only entries whose text contains TEXT (case-insensitive).
        #[arg(long, value_name = "TEXT")]
        grep: Option<String>,
        /// At most this many entries, the newest.
        #[arg(long, default_value_t = 200)]
        limit: u32,
        /// One JSON object a line.
        #[arg(long)]
        json: bool,
    },
    /// Check the domain's MX records and the whole backup-MX/ETRN set-up, in plain language.
    /// Exit 0 = no errors, 1 = errors found, 2 = the check could not run.
    CheckMx {
        /// The domain to check (default: every domain of the config).
        domain: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
        /// Ask this DNS server (IP:PORT) instead of the configured or system resolver.
        #[arg(long, value_name = "IP:PORT")]
        nameserver: Option<std::net::SocketAddr>,
        /// Print the report as JSON (schema: docs/mx-findings.md).
        #[arg(long)]
        json: bool,
        /// Also send ETRN to each queuing server and report the reply (this starts delivery).
        #[arg(long)]
        dry_run_etrn: bool,
    },
    /// The outbound queue: list, flush, retry or drop messages (through the running engine, or on
    /// the spool directly when none runs).
    Queue {
        #[command(subcommand)]
        action: queue_cli::QueueCommand,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Store or delete a password in the OS keyring.
    Secret {
        #[command(subcommand)]
        action: SecretAction,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Validate the config and print the effective configuration (no secrets).
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the effective configuration as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SecretAction {
    /// Read a password from stdin and store it as NAME (USERNAME@HOST of the server entry).
    Set { name: String },
    /// Delete the password stored as NAME.
    Delete { name: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _guard = init_logging(cli.verbose, cli.log_file.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(async move {
        match cli.command {
            Commands::Run { config, events } => run(&config, events).await,
            Commands::Fetch {
                config,
                json,
                standalone,
            } => {
                if standalone {
                    fetch(&config, json).await
                } else {
                    remote::fetch(&config, json).await
                }
            }
            Commands::Status { config, json } => remote::status(&config, json).await,
            Commands::Pause { config } => remote::simple(&config, Request::Pause).await,
            Commands::Resume { config } => remote::simple(&config, Request::Resume).await,
            Commands::Reload { config } => remote::simple(&config, Request::Reload).await,
            Commands::Events { config, json } => remote::events(&config, json).await,
            Commands::Log {
                config,
                since,
                kind,
                grep,
                limit,
                json,
            } => {
                let args = log_command::LogArgs {
                    since,
                    kind,
                    grep,
                    limit,
                    json,
                };
                log_command::log(&config, args).await
            }
            Commands::CheckMx {
                domain,
                config,
                nameserver,
                json,
                dry_run_etrn,
            } => ExitCode::from(
                postern_engine::mx::cli::run_command(
                    domain,
                    config.config.as_deref(),
                    nameserver,
                    json,
                    dry_run_etrn,
                )
                .await,
            ),
            Commands::Config {
                action: ConfigAction::Check { config, json },
            } => config_check(&config, json),
            Commands::Secret { action } => secret(action).await,
            Commands::Queue { action } => queue_cli::run(action).await,
        }
    })
}

pub(crate) fn fail(message: &str) -> ExitCode {
    eprintln!("posternd: {message}");
    ExitCode::FAILURE
}

fn init_logging(
    verbose: u8,
    file: Option<&Path>,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let (file_layer, guard) = match file {
        Some(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(f) => {
                let (writer, guard) = tracing_appender::non_blocking(f);
                (
                    Some(
                        tracing_subscriber::fmt::layer()
                            .with_writer(writer)
                            .with_ansi(false),
                    ),
                    Some(guard),
                )
            }
            Err(e) => {
                eprintln!(
                    "posternd: cannot open the log file {}: {e}; logging to stderr only",
                    path.display()
                );
                (None, None)
            }
        },
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(stderr)
        .with(file_layer)
        .init();
    guard
}

fn load_config(arg: &ConfigArg) -> Result<Config, String> {
    let Some(path) = config::config_path(arg.config.as_deref()) else {
        return Err("no config file: pass --config FILE or set POSTERN_CONFIG".into());
    };
    if !path.exists() {
        return Err(format!(
            "no config file at {}: create one (copy examples/postern.toml and edit it) or pass --config FILE",
            path.display()
        ));
    }
    Config::load(&path).map_err(|e| e.to_string())
}

/// The config and, when any server logs in, the keyring (opened now, so an unavailable keyring
/// is reported before anything starts).
async fn load_with_secrets(arg: &ConfigArg) -> Result<(Config, Arc<dyn SecretStore>), String> {
    let config = load_config(arg)?;
    let secrets = secret_store(&config).await?;
    Ok((config, secrets))
}

/// The keyring when any server needs a password; otherwise an empty store, so a set-up
/// without logins runs on machines without a keyring.
async fn secret_store(config: &Config) -> Result<Arc<dyn SecretStore>, String> {
    if config.queue_servers.iter().all(|s| s.username.is_none()) {
        return Ok(Arc::new(MemoryStore::new()));
    }
    let opened = tokio::task::spawn_blocking(OsKeyring::open)
        .await
        .map_err(|e| e.to_string())?;
    match opened {
        Ok(store) => Ok(Arc::new(store)),
        Err(e) => Err(e.to_string()),
    }
}

async fn run(arg: &ConfigArg, print_events: bool) -> ExitCode {
    let (config, secrets) = match load_with_secrets(arg).await {
        Ok(loaded) => loaded,
        Err(e) => return fail(&e),
    };
    let (events_tx, mut events_rx) = events::channel();
    let printer = print_events.then(|| {
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events_rx.recv().await {
                    Ok(event) => {
                        let mut value = serde_json::to_value(&event).unwrap_or_default();
                        if let Some(map) = value.as_object_mut() {
                            map.insert("at".into(), chrono::Local::now().to_rfc3339().into());
                        }
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "{value}");
                        let _ = out.flush();
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!("{n} events were not printed (output too slow)")
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        })
    });
    // Installed before the engine starts: SIGHUP's default action would end the process.
    #[cfg(unix)]
    let hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(
                "cannot watch for SIGHUP ({e}): restart posternd to apply config changes"
            );
            None
        }
    };
    let stop = stop_signal();
    let handle = match api::start(config, Deps { secrets }, events_tx).await {
        Ok(h) => h,
        Err(e) => return fail(&e.to_string()),
    };
    let control = match remote::serve(arg, &handle).await {
        Ok(c) => c,
        Err(e) => {
            let _ = handle.commands.send(api::Command::Shutdown).await;
            handle.join().await;
            return fail(&e);
        }
    };
    #[cfg(unix)]
    if let Some(mut hangups) = hangups {
        let (arg, reloader, events) = (arg.clone(), handle.reloader(), handle.events.clone());
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let _ = reload_from_file(&arg, &reloader, &events).await;
            }
        });
    }
    let commands = handle.commands.clone();
    tokio::spawn(async move {
        stop.await;
        tracing::info!("stopping");
        let _ = commands.send(api::Command::Shutdown).await;
    });
    handle.join().await;
    drop(control);
    if let Some(p) = printer {
        p.abort();
    }
    ExitCode::SUCCESS
}

/// SIGHUP and `posternd reload`: reads the config file again (the same file, with the keyring
/// when needed) and reloads the engine. A file that does not load changes nothing; the error
/// (line:column and fix) goes to the log and out as a Warning event.
pub(crate) async fn reload_from_file(
    arg: &ConfigArg,
    reloader: &api::Reloader,
    events: &events::EventSender,
) -> Result<String, String> {
    tracing::info!("reading the configuration again");
    let (config, secrets) = match load_with_secrets(arg).await {
        Ok(loaded) => loaded,
        Err(e) => {
            let message = postern_engine::reload::not_reloaded(&e);
            tracing::error!("{message}");
            let _ = events.send(events::Event::Warning {
                message,
                fix: Some(
                    "correct the file and reload again (posternd reload, or SIGHUP); until then \
                     the old configuration stays in force"
                        .into(),
                ),
            });
            return Err(format!("the configuration was not reloaded: {e}"));
        }
    };
    // The engine also logs the outcome and reports it as an event.
    match reloader.reload_with(config, Deps { secrets }).await {
        Ok(r) if r.changes.is_empty() => Ok("reloaded: nothing changed".into()),
        Ok(r) => Ok(format!("reloaded: {}", r.changes.join("; "))),
        Err(e) => Err(e.to_string()),
    }
}

/// Installs the SIGTERM/SIGINT handlers now, before the engine listens (a stop sent as soon as
/// it does must not meet the default action), and returns the wait for either.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let streams = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match streams {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(crate) async fn fetch(arg: &ConfigArg, json: bool) -> ExitCode {
    let (config, secrets) = match load_with_secrets(arg).await {
        Ok(loaded) => loaded,
        Err(e) => return fail(&e),
    };
    let inbound = match turnaround_context(&config) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let ctx = DequeueContext {
        helo_name: config.inbound.hostname.clone(),
        secrets,
        inbound,
    };
    let jobs = config
        .queue_servers
        .iter()
        .map(|server| dequeue::dequeue(server, &config.domains, &ctx));
    let outcomes: Vec<_> = futures_util::future::join_all(jobs)
        .await
        .into_iter()
        .flatten()
        .collect();
    report_outcomes(&outcomes, json)
}

/// Prints the outcomes of a fetch; exit 0 when there is nothing more to get.
pub(crate) fn report_outcomes(outcomes: &[dequeue::reply::Outcome], json: bool) -> ExitCode {
    if json {
        match serde_json::to_string_pretty(outcomes) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(&e.to_string()),
        }
    } else {
        for o in outcomes {
            println!("{}", o.summary());
        }
    }
    // 2xx everywhere, or ATRN's 453 "no mail waiting": both mean there is nothing more to get.
    if outcomes.iter().all(|o| o.is_success()) {
        ExitCode::SUCCESS
    } else {
        let failed = outcomes.iter().filter(|o| !o.is_success()).count();
        eprintln!(
            "posternd: {failed} of {} requests failed (see above)",
            outcomes.len()
        );
        ExitCode::FAILURE
    }
}

/// ATRN and TURN receive the mail on the dequeue connection itself, so `fetch` needs the
/// delivery target then (and only then: ETRN leaves the Maildir untouched).
fn turnaround_context(config: &Config) -> Result<Option<Arc<SessionContext>>, String> {
    if config
        .queue_servers
        .iter()
        .all(|s| s.protocol == Protocol::Etrn)
    {
        return Ok(None);
    }
    let (events, _) = events::channel();
    SessionContext::from_config(config, events)
        .map(|c| Some(Arc::new(c)))
        .map_err(|e| api::StartError::Delivery(e).to_string())
}

fn config_check(arg: &ConfigArg, json: bool) -> ExitCode {
    let config = match load_config(arg) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    if json {
        match serde_json::to_string_pretty(&config) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(&e.to_string()),
        }
    } else {
        print!("{}", config.to_toml());
        for note in config.notes() {
            println!("# note: {note}");
        }
    }
    ExitCode::SUCCESS
}

async fn secret(action: SecretAction) -> ExitCode {
    let name = match &action {
        SecretAction::Set { name } | SecretAction::Delete { name } => name.clone(),
    };
    if let Err(e) = secrets::check_name(&name) {
        return fail(&e.to_string());
    }
    let password = match action {
        SecretAction::Set { .. } => {
            if std::io::stdin().is_terminal() {
                eprint!("Password for {name} (input is not hidden; end with Enter): ");
            }
            let mut input = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut input) {
                return fail(&format!("cannot read the password from stdin: {e}"));
            }
            let password = input.trim_end_matches(['\r', '\n']).to_string();
            if password.is_empty() {
                return fail(
                    "the password read from stdin is empty: pipe it in, e.g. `printf %s PASSWORD | posternd secret set NAME`",
                );
            }
            Some(password)
        }
        SecretAction::Delete { .. } => None,
    };
    let result = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let store = OsKeyring::open().map_err(|e| e.to_string())?;
        match password {
            Some(p) => store
                .set(&name, &p)
                .map(|()| format!("stored the password for {name} in the {}", store.describe()))
                .map_err(|e| e.to_string()),
            None => store
                .delete(&name)
                .map(|()| {
                    format!(
                        "deleted the password for {name} from the {}",
                        store.describe()
                    )
                })
                .map_err(|e| e.to_string()),
        }
    })
    .await;
    match result {
        Ok(Ok(message)) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => fail(&e),
        Err(e) => fail(&e.to_string()),
    }
}
