//! The `posternd` binary under test: built once per test process (so a plain `cargo test` never
//! runs a stale binary), run in the foreground with `--events`, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::error::{HarnessError, IoContext, Result};
use super::ports;
use super::process::{output_within, terminate};

/// Time allowed for one-shot commands (`fetch`, `config check`, ...).
pub const ONE_SHOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed for `posternd run` to open its inbound listener.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Grace period between SIGTERM and SIGKILL on drop.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// The path of a freshly built `posternd` (same profile as the tests). `POSTERND_BIN` overrides
/// it (a prebuilt binary). Building happens once per process.
///
/// # Panics
/// If the build fails: every test that needs the binary fails the same way, with cargo's error.
/// How long one `posternd` command against a running engine may take.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);

pub fn posternd_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("POSTERND_BIN") {
            return PathBuf::from(path);
        }
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        // No `current_target()`: an explicit --target builds into target/<triple>/, a second full
        // build of everything next to the one `cargo build` already made.
        match escargot::CargoBuild::new()
            .manifest_path(&manifest)
            .package("postern-engine")
            .bin("posternd")
            .current_release()
            .run()
        {
            Ok(run) => run.path().to_path_buf(),
            Err(e) => panic!("building posternd failed: {e}"),
        }
    })
}

/// Options for [`Posternd`]; see [`Posternd::builder`].
#[derive(Clone, Debug)]
pub struct PosterndBuilder {
    config: String,
    wait_for: Option<SocketAddr>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    events: bool,
    netns: Option<String>,
}

impl PosterndBuilder {
    /// Waits until this address accepts connections (the inbound listener) before returning.
    pub fn wait_for(mut self, addr: SocketAddr) -> Self {
        self.wait_for = Some(addr);
        self
    }

    /// An environment variable for the daemon (e.g. `RUST_LOG`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Extra arguments after `run --config F [--events]`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Leaves out `--events` (stdout is still captured as lines).
    pub fn without_events(mut self) -> Self {
        self.events = false;
        self
    }

    /// Runs the daemon inside a namespace (`ip netns exec NAME posternd ...`).
    pub fn in_netns(mut self, ns: &super::netns::NetNs) -> Self {
        self.netns = Some(ns.name().to_string());
        self
    }

    /// Writes the config, spawns `posternd run`, and waits for the listener if one was given.
    pub fn start(self) -> Result<Posternd> {
        let dir = tempfile::Builder::new()
            .prefix("postern-run-")
            .tempdir()
            .context(|| "create posternd directory".into())?;
        let config_path = dir.path().join("postern.toml");
        std::fs::write(&config_path, &self.config).context(|| "write postern.toml".into())?;
        let log_path = dir.path().join("posternd.stderr.log");
        let stderr = std::fs::File::create(&log_path).context(|| "create posternd log".into())?;

        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(posternd_bin());
                c
            }
            None => Command::new(posternd_bin()),
        };
        cmd.arg("run").arg("--config").arg(&config_path);
        if self.events {
            cmd.arg("--events");
        }
        // Its own state folder (journal, spool, certificate) unless the config names one, so
        // parallel tests never share a journal.
        cmd.args(&self.args)
            .env_remove("POSTERN_CONFIG")
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = cmd
            .spawn()
            .context(|| format!("start {}", posternd_bin().display()))?;

        let events = Arc::new(EventLog::default());
        let reader = child.stdout.take().map(|stdout| {
            let events = events.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    events.push(line);
                }
                events.close();
            })
        });
        let mut daemon = Posternd {
            child,
            dir,
            config_path,
            log_path,
            events,
            reader,
            status: None,
        };
        if let Some(addr) = self.wait_for {
            daemon.wait_until_listening(addr)?;
        }
        Ok(daemon)
    }
}

#[derive(Default)]
struct EventLog {
    state: Mutex<EventState>,
    changed: Condvar,
}

#[derive(Default)]
struct EventState {
    lines: Vec<String>,
    events: Vec<serde_json::Value>,
    closed: bool,
}

impl EventLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, EventState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, line: String) {
        let mut state = self.lock();
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
            state.events.push(value);
        }
        state.lines.push(line);
        self.changed.notify_all();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

/// A running `posternd run`; SIGTERM, 5 s grace, then SIGKILL on drop.
pub struct Posternd {
    child: Child,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    log_path: PathBuf,
    events: Arc<EventLog>,
    reader: Option<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Posternd {
    /// Options: wait for a port, environment, extra args, network namespace.
    pub fn builder(config_toml: &str) -> PosterndBuilder {
        PosterndBuilder {
            config: config_toml.into(),
            wait_for: None,
            env: Vec::new(),
            args: Vec::new(),
            events: true,
            netns: None,
        }
    }

    /// `posternd run --config F --events` with `config_toml`, returning once `listen` (its inbound
    /// listener, as in the config) accepts connections.
    pub fn run(config_toml: &str, listen: SocketAddr) -> Result<Self> {
        Self::builder(config_toml).wait_for(listen).start()
    }

    fn wait_until_listening(&mut self, addr: SocketAddr) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.try_status() {
                return Err(HarnessError::Other(format!(
                    "posternd exited ({status}) before listening on {addr}\n--- stderr ---\n{}",
                    self.log_text()
                )));
            }
            if ports::wait_for_port(addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Other(format!(
                    "posternd did not listen on {addr} within {START_TIMEOUT:?}\n--- stderr ---\n{}",
                    self.log_text()
                )));
            }
        }
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its working directory (config, stderr log); put Maildirs and spools here too if you like.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// `posternd ARGS --config <its config>`, a front end talking to this engine; bounded by
    /// [`CLI_TIMEOUT`].
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new(posternd_bin());
        cmd.args(args)
            .arg("--config")
            .arg(&self.config_path)
            .env_remove("POSTERN_CONFIG");
        output_within(&mut cmd, None, CLI_TIMEOUT)
    }

    /// [`Posternd::cli`]'s standard output; an error, with its stderr, when it fails.
    pub fn cli_stdout(&self, args: &[&str]) -> Result<String> {
        let out = self.cli(args)?;
        if !out.status.success() {
            return Err(HarnessError::Other(format!(
                "posternd {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Everything it wrote to stderr so far (its log).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Every JSON event printed so far (stdout lines that parse as JSON).
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.events.lock().events.clone()
    }

    /// Every stdout line so far, JSON or not.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.events.lock().lines.clone()
    }

    /// Waits for the first event (past or future) that satisfies `matches`.
    pub fn wait_for_event(
        &self,
        matches: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> Result<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        let mut state = self.events.lock();
        loop {
            if let Some(found) = state.events.iter().find(|e| matches(e)) {
                return Ok(found.clone());
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                let why = if state.closed {
                    "posternd closed stdout (exited?)"
                } else {
                    "timed out"
                };
                let seen = state.lines.join("\n");
                drop(state);
                return Err(HarnessError::Other(format!(
                    "{why} after waiting up to {timeout:?} for an event\n--- events ---\n{seen}\n--- stderr ---\n{}",
                    self.log_text()
                )));
            }
            state = self
                .events
                .changed
                .wait_timeout(state, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Waits for an event whose `field` (top level, e.g. "type" or "event") equals `value`.
    pub fn wait_for_event_field(
        &self,
        field: &str,
        value: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value> {
        self.wait_for_event(
            |e| e.get(field).and_then(|v| v.as_str()) == Some(value),
            timeout,
        )
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Graceful stop: SIGTERM, and its exit status (SIGKILL after 5 s if it ignores SIGTERM).
    pub fn stop(mut self) -> Result<ExitStatus> {
        self.stop_inner()
            .ok_or_else(|| HarnessError::Other("posternd could not be reaped".into()))
    }

    fn stop_inner(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = terminate(&mut self.child, STOP_GRACE);
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.status
    }
}

impl Drop for Posternd {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// `posternd ARGS --config F` with `config_toml` written to a temporary file; 60 s at most.
/// Returns its output whatever the exit status.
pub fn posternd(args: &[&str], config_toml: &str) -> Result<Output> {
    posternd_with(args, Some(config_toml), b"", &[], ONE_SHOT_TIMEOUT)
}

/// The general form: config optional (without it no `--config` is passed), bytes on stdin
/// (`secret set NAME` reads the password there), extra environment, and a timeout.
pub fn posternd_with(
    args: &[&str],
    config_toml: Option<&str>,
    stdin: &[u8],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<Output> {
    let dir = tempfile::Builder::new()
        .prefix("postern-cmd-")
        .tempdir()
        .context(|| "create temporary directory".into())?;
    let mut cmd = Command::new(posternd_bin());
    cmd.args(args)
        .env_remove("POSTERN_CONFIG")
        .env("XDG_STATE_HOME", dir.path().join("state"));
    if let Some(config) = config_toml {
        let path = dir.path().join("postern.toml");
        std::fs::write(&path, config).context(|| "write postern.toml".into())?;
        cmd.arg("--config").arg(path);
    }
    cmd.envs(env.iter().copied());
    output_within(&mut cmd, Some(stdin), timeout)
}
