//! `make bench`: measures Postern beside Postfix, smtp-sink and the physical limits on this
//! machine, prints one table with the raw samples and writes BENCHMARKS.md. Root only (a private
//! Postfix, smtp-sink). Never part of `make test`.
//!
//! ```text
//! postern-bench [--out FILE] [--reps N] [--only 1,2,4,...] [--idle SECONDS] [--link-test PATH]
//!               [--app PATH]
//! ```

#[path = "../bench/mod.rs"]
mod bench;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bench::{Row, report, rows};
use postern_tests::harness::{posternd_bin, require_root};

struct Args {
    out: PathBuf,
    reps: usize,
    only: Option<Vec<String>>,
    idle: Duration,
    link_test: Option<PathBuf>,
    /// The desktop app (rows 6 and 7b); default: `postern` beside posternd.
    app: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: PathBuf::from("BENCHMARKS.md"),
        reps: 5,
        only: None,
        idle: Duration::from_secs(60),
        link_test: None,
        app: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--out" => args.out = PathBuf::from(value()?),
            "--reps" => {
                args.reps = value()?
                    .parse()
                    .map_err(|_| "--reps takes a number (at least 3 for the report)".to_string())?
            }
            "--only" => {
                args.only = Some(value()?.split(',').map(|s| s.trim().to_string()).collect())
            }
            "--link-test" => args.link_test = Some(PathBuf::from(value()?)),
            "--app" => args.app = Some(PathBuf::from(value()?)),
            "--idle" => {
                args.idle = Duration::from_secs(
                    value()?
                        .parse()
                        .map_err(|_| "--idle takes seconds".to_string())?,
                )
            }
            "-h" | "--help" => {
                return Err(
                    "usage: postern-bench [--out FILE] [--reps N] [--only 1,2,...] [--idle SECONDS] [--link-test PATH] [--app PATH]\n  --only takes row numbers (1-10); 6 and 7 also cover the desktop app (6a-c, 7b)"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other} (try --help)")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("postern-bench: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(why) = require_root() {
        eprintln!("postern-bench: {why} (e.g. `sudo make bench`)");
        return ExitCode::FAILURE;
    }
    let wanted = |id: &str| args.only.as_ref().is_none_or(|o| o.iter().any(|w| w == id));
    let started = Instant::now();
    let bin = posternd_bin().to_path_buf();
    let mut table: Vec<Row> = Vec::new();
    let failed = |id: &str, metric: &str, e: postern_tests::harness::HarnessError| {
        Row::new(id, metric, "", "", bench::Goal::None).not_measured(format!("error: {e}"))
    };
    if wanted("1") {
        eprintln!(
            "postern-bench: 1 inbound throughput (Postern, Postfix, smtp-sink) x{}",
            args.reps
        );
        match rows::inbound(args.reps) {
            Ok(r) => table.extend(r),
            Err(e) => table.push(failed("1", "Inbound accept throughput", e)),
        }
    }
    if wanted("2") {
        eprintln!(
            "postern-bench: 2 dequeue of 1,000 held messages x{}",
            2 * args.reps
        );
        table.push(
            rows::dequeue(args.reps).unwrap_or_else(|e| failed("2", "Dequeue after an outage", e)),
        );
    }
    if wanted("3") {
        eprintln!("postern-bench: 3 link-up to ETRN, 10 rounds (about 3 minutes)");
        table.push(rows::link_up(args.link_test.as_deref()));
    }
    if wanted("4") {
        eprintln!(
            "postern-bench: 4 idle footprint ({} s)",
            args.idle.as_secs()
        );
        match rows::idle(args.reps, args.idle) {
            Ok(r) => table.extend(r),
            Err(e) => table.push(failed("4", "posternd run idle", e)),
        }
    }
    if wanted("5") {
        eprintln!("postern-bench: 5 one 50 MiB message x{}", args.reps);
        table.push(
            rows::large_message(args.reps)
                .unwrap_or_else(|e| failed("5", "Peak RSS, 50 MiB message", e)),
        );
    }
    let app_rows = if wanted("6") || wanted("7") {
        let app = args
            .app
            .clone()
            .unwrap_or_else(|| bin.with_file_name("postern"));
        eprintln!(
            "postern-bench: 6 and 7b desktop app footprint and start-up x{}",
            args.reps
        );
        rows::desktop_app(args.reps, &app)
    } else {
        Vec::new()
    };
    let (footprint, app_start): (Vec<Row>, Vec<Row>) =
        app_rows.into_iter().partition(|r| r.id.starts_with('6'));
    if wanted("6") {
        table.extend(footprint);
    }
    if wanted("7") {
        eprintln!("postern-bench: 7a start-up x10");
        table
            .push(rows::startup(10.max(args.reps)).unwrap_or_else(|e| failed("7a", "Start-up", e)));
        table.extend(app_start);
    }
    if wanted("8") {
        eprintln!(
            "postern-bench: 8 posternd status round trip x{}",
            args.reps * 10
        );
        table.push(
            bench::control::status_latency(args.reps)
                .unwrap_or_else(|e| failed("8", "`posternd status` against the running engine", e)),
        );
    }
    if wanted("9") {
        eprintln!(
            "postern-bench: 9 outbound relay (submission, flush, 50 MiB) x{}",
            args.reps
        );
        table.push(
            bench::outbound::submission(args.reps)
                .unwrap_or_else(|e| failed("9a", "Submission accept throughput", e)),
        );
        table.push(
            bench::outbound::flush(args.reps)
                .unwrap_or_else(|e| failed("9b", "Flush 1,000 queued messages after link-up", e)),
        );
        table.push(
            bench::outbound::large_send(args.reps)
                .unwrap_or_else(|e| failed("9c", "Peak RSS sending one 50 MiB message", e)),
        );
    }
    if wanted("10") {
        eprintln!(
            "postern-bench: 10 release of 1,000 held messages on ETRN x{}",
            args.reps
        );
        table.push(
            bench::backup::release(args.reps)
                .unwrap_or_else(|e| failed("10", "Release of held mail on ETRN", e)),
        );
    }
    let runtime = started.elapsed().as_secs_f64();
    let machine = bench::machine::describe(&bin);
    println!("{}", report::table(&table));
    println!("Missed goals:\n{}", report::misses(&table));
    println!("Raw samples:\n{}", report::samples(&table));
    let previous = std::fs::read_to_string(&args.out).ok();
    let document = report::document(&table, &machine, runtime, previous.as_deref());
    if let Err(e) = std::fs::write(&args.out, document) {
        eprintln!("postern-bench: cannot write {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    eprintln!(
        "postern-bench: wrote {} ({runtime:.0} s)",
        args.out.display()
    );
    ExitCode::SUCCESS
}
