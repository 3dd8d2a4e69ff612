//! `posternd`: the headless Postern — the same engine as the tray app, driven from the command
//! line. See README "Command line" for the contract.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use postern_engine::api::{self, Deps};
use postern_engine::control::Request;
use postern_engine::events;
use postern_engine::secrets::{self, OsKeyring, SecretStore};

mod local;
mod log_command;
mod queue_cli;
mod remote;

#[cfg(unix)]
use local::reload_from_file;
use local::{ConfigArg, fail, load_config, load_with_secrets};

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
        #[arg(long, value_parser = ["fetch", "message", "problem", "link", "config", "backup"])]
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
        action: QueueCommand,
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
enum QueueCommand {
    /// Every queued message: id, sender, recipients with their state, size, age, attempts, the
    /// last reply with its meaning, and the next attempt.
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        json: bool,
    },
    /// Attempt every message now.
    Flush {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Attempt one message now.
    Retry {
        id: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Take a message out of the queue (logged; no DSN is sent).
    Drop {
        id: String,
        #[command(flatten)]
        config: ConfigArg,
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
                    local::fetch(&config, json).await
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
            Commands::Queue { action } => {
                use postern_engine::outbound::queue::QueueAction;
                let (config, action, json) = match action {
                    QueueCommand::List { config, json } => (config, None, json),
                    QueueCommand::Flush { config } => (config, Some(QueueAction::Flush), false),
                    QueueCommand::Retry { id, config } => {
                        (config, Some(QueueAction::Retry { id }), false)
                    }
                    QueueCommand::Drop { id, config } => {
                        (config, Some(QueueAction::Drop { id }), false)
                    }
                };
                queue_cli::run(config, action, json).await
            }
        }
    })
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
