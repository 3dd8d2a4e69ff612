//! `posternd log`: the mail-flow journal, oldest of the page first, through the running engine
//! or, when none runs, read-only from the journal file of the config's state folder.

use std::io::Write;
use std::process::ExitCode;

use postern_engine::control::Response;
use postern_engine::control::client::ControlError;
use postern_engine::journal::{self, Entry, Kind, Page, Query};

use crate::local::{ConfigArg, fail};

/// What `posternd log` was asked.
pub(crate) struct LogArgs {
    pub since: Option<String>,
    pub kind: Option<String>,
    pub grep: Option<String>,
    pub limit: u32,
    pub json: bool,
}

pub(crate) async fn log(arg: &ConfigArg, args: LogArgs) -> ExitCode {
    let query = match query(&args) {
        Ok(q) => q,
        Err(e) => return fail(&e.to_string()),
    };
    let page = match crate::remote::request(
        arg,
        postern_engine::control::Request::Log {
            query: query.clone(),
        },
    )
    .await
    {
        Ok(Response::Log { page }) => page,
        Ok(other) => return fail(&format!("unexpected answer {other:?}")),
        Err(ControlError::NotRunning(_)) => match from_file(arg, query).await {
            Ok(page) => page,
            Err(e) => return fail(&e),
        },
        Err(e) => return fail(&e.to_string()),
    };
    print_page(&page, args.json)
}

fn query(args: &LogArgs) -> Result<Query, journal::JournalError> {
    Ok(Query {
        since: args
            .since
            .as_deref()
            .map(|s| journal::query::parse_since(s, chrono::Local::now()))
            .transpose()?,
        kind: args.kind.as_deref().map(str::parse::<Kind>).transpose()?,
        grep: args.grep.clone(),
        before_id: None,
        limit: Some(args.limit),
    })
}

async fn from_file(arg: &ConfigArg, query: Query) -> Result<Page, String> {
    let config = crate::local::load_config(arg)?;
    let path = journal::path(&config.state_dir);
    tokio::task::spawn_blocking(move || journal::query::run(&path, &query))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

fn print_page(page: &Page, json: bool) -> ExitCode {
    let mut out = std::io::stdout().lock();
    for entry in page.entries.iter().rev() {
        let line = if json {
            serde_json::to_string(entry).unwrap_or_default()
        } else {
            text_line(entry)
        };
        if writeln!(out, "{line}").is_err() {
            return ExitCode::SUCCESS;
        }
    }
    let _ = out.flush();
    if page.more {
        eprintln!(
            "(older entries match too: narrow with --since, --kind or --grep, or raise --limit)"
        );
    }
    ExitCode::SUCCESS
}

/// `2026-12-01 08:15:02  message  received from <a@b> ...`
fn text_line(entry: &Entry) -> String {
    format!(
        "{}  {:<7}  {}",
        entry.local_time(),
        entry.kind.as_str(),
        entry.text
    )
}
