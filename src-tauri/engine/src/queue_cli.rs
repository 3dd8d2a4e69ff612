//! `posternd queue list [--json] | flush | retry ID | drop ID`: through the running engine when
//! one runs, else on the spool directly ([`postern_engine::outbound::queue`]).

use std::process::ExitCode;

use postern_engine::control::client::ControlError;
use postern_engine::control::{Request, Response};
use postern_engine::outbound::queue::{self, QueueAction};
use postern_engine::outbound::spool::Spool;

use crate::local::{ConfigArg, fail, load_config};
use crate::remote::{print_out, send};

/// `posternd queue list` (`action` None) or flush/retry/drop.
pub(crate) async fn run(arg: ConfigArg, action: Option<QueueAction>, json: bool) -> ExitCode {
    let Some(action) = action else {
        return list(&arg, json);
    };
    let reply = match send(
        &arg,
        Request::Queue {
            action: action.clone(),
        },
    )
    .await
    {
        Ok(conn) => conn.reply().await,
        Err(ControlError::NotRunning(_)) => return on_spool(&arg, &action).await,
        Err(e) => Err(e),
    };
    match reply {
        Ok(Response::Done { message }) => {
            print_out(&format!("{message}\n"));
            if message.starts_with("no message") || message.starts_with("cannot") {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Ok(Response::Error { message }) => fail(&message),
        Ok(other) => fail(&format!("unexpected answer {other:?}")),
        Err(e) => fail(&e.to_string()),
    }
}

fn spool_of(arg: &ConfigArg) -> Result<Spool, String> {
    let config = load_config(arg)?;
    let dir = match &config.outbound {
        Some(outbound) => outbound.spool_dir(&config.state_dir),
        // The backup MX holds its mail in the same folder.
        None if !config.backup_for.is_empty() => config.state_dir.join("outbound"),
        None => {
            return Err(
                "there is no [outbound] section in the config, so there is no outbound queue"
                    .into(),
            );
        }
    };
    Ok(Spool::at(&dir, &config.inbound.hostname))
}

fn list(arg: &ConfigArg, json: bool) -> ExitCode {
    let spool = match spool_of(arg) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    if !spool.dir().exists() {
        print_out(if json {
            "[]\n"
        } else {
            "The outbound queue is empty.\n"
        });
        return ExitCode::SUCCESS;
    }
    let entries = match queue::list(&spool) {
        Ok(e) => e,
        Err(e) => return fail(&e.to_string()),
    };
    if json {
        match serde_json::to_string_pretty(&entries) {
            Ok(s) => print_out(&format!("{s}\n")),
            Err(e) => return fail(&e.to_string()),
        }
    } else {
        print_out(&queue::render(&entries));
    }
    ExitCode::SUCCESS
}

async fn on_spool(arg: &ConfigArg, action: &QueueAction) -> ExitCode {
    let spool = match spool_of(arg) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let action = action.clone();
    let done = tokio::task::spawn_blocking(move || queue::act_on_spool(&spool, &action)).await;
    match done {
        Ok(Ok(message)) => {
            print_out(&format!("{message}\n"));
            ExitCode::SUCCESS
        }
        Ok(Err(message)) => fail(&message),
        Err(e) => fail(&e.to_string()),
    }
}
