//! Row 8: `posternd status` against a running engine, as a user types it: process start, connect
//! to the control endpoint, hello, the status request and its answer, exit.

use std::process::{Command, Stdio};
use std::time::Instant;

use postern_tests::harness::{
    HarnessError, PosternConfig, Posternd, Result, free_addr, posternd_bin,
};

use super::{Goal, Row};

const SAMPLES_PER_REP: usize = 10;

fn other(text: impl Into<String>) -> HarnessError {
    HarnessError::Other(text.into())
}

/// Wall time of one command that must succeed, in milliseconds. A blocking wait, not the
/// harness's polling one, whose poll interval would be most of what is measured; `posternd status`
/// bounds its own wait for the engine.
fn timed(cmd: &mut Command) -> Result<f64> {
    cmd.stdin(Stdio::null()).env_remove("POSTERN_CONFIG");
    let start = Instant::now();
    let out = cmd
        .output()
        .map_err(|e| other(format!("start {cmd:?}: {e}")))?;
    let took = start.elapsed().as_secs_f64() * 1000.0;
    if !out.status.success() {
        return Err(other(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(took)
}

/// `posternd status` vs `posternd --version` (the same process start, no round trip), alternating.
pub fn status_latency(reps: usize) -> Result<Row> {
    let work = tempfile::Builder::new()
        .prefix("postern-bench-status-")
        .tempdir()
        .map_err(|e| other(format!("create a temporary directory: {e}")))?;
    let listen = free_addr();
    let config = PosternConfig::etrn(free_addr(), listen, &work.path().join("Maildir")).render();
    let engine = Posternd::builder(&config)
        .without_events()
        .wait_for(listen)
        .start()?;
    let (mut status, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..reps * SAMPLES_PER_REP {
        status.push(timed(
            Command::new(posternd_bin())
                .arg("status")
                .arg("--config")
                .arg(engine.config_path()),
        )?);
        bare.push(timed(Command::new(posternd_bin()).arg("--version"))?);
    }
    drop(engine);
    let mut row = Row::new(
        "8",
        "`posternd status` against the running engine",
        "ms",
        "`posternd --version`, process start alone",
        Goal::ValueAtMost(5.0),
    )
    .with_samples(&status, &bare);
    row.note(
        "from spawn to exit: connect to the control socket, hello, status request and answer; \
         the engine dequeues from an address where nothing listens, so it is busy retrying",
    );
    Ok(row)
}
