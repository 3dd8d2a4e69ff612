//! What posternd does in its own process, for the subcommands and for the control endpoint
//! alike: find and load the config (with the keyring when a server logs in), reload it, fetch
//! once, print the outcomes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use postern_engine::api::{self, Deps};
use postern_engine::config::{self, Config, Protocol};
use postern_engine::dequeue::{self, DequeueContext};
use postern_engine::events;
use postern_engine::secrets::{MemoryStore, OsKeyring, SecretStore};
use postern_engine::smtp_server::SessionContext;

#[derive(clap::Args, Clone)]
pub(crate) struct ConfigArg {
    /// The config file (default: $POSTERN_CONFIG, then the OS config folder).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

pub(crate) fn fail(message: &str) -> ExitCode {
    eprintln!("posternd: {message}");
    ExitCode::FAILURE
}

pub(crate) fn load_config(arg: &ConfigArg) -> Result<Config, String> {
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
pub(crate) async fn load_with_secrets(
    arg: &ConfigArg,
) -> Result<(Config, Arc<dyn SecretStore>), String> {
    let config = load_config(arg)?;
    let secrets = secret_store(&config).await?;
    Ok((config, secrets))
}

/// The keyring when any server (a queue server or the smarthost) needs a password; otherwise an empty store, so a set-up
/// without logins runs on machines without a keyring.
pub(crate) async fn secret_store(config: &Config) -> Result<Arc<dyn SecretStore>, String> {
    let smarthost_login = config
        .outbound
        .as_ref()
        .is_some_and(|o| o.smarthost_username.is_some());
    if config.queue_servers.iter().all(|s| s.username.is_none()) && !smarthost_login {
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
pub(crate) fn turnaround_context(config: &Config) -> Result<Option<Arc<SessionContext>>, String> {
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
