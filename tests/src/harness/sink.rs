//! Receivers for Postern's deliveries: Postfix's `smtp-sink` (fast, keeps each message for
//! reading back) and a `SilentServer` that accepts and never speaks (timeout tests).

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::error::{HarnessError, IoContext, Result};
use super::ports;
use super::preconditions::require_root;
use super::process::terminate;
use super::wait::poll_until;

/// One mail transaction as `smtp-sink` dumped it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkMessage {
    /// The MAIL FROM argument, e.g. `<a@example.net>` (with any parameters).
    pub mail_from: String,
    /// The RCPT TO arguments, e.g. `<user@office.test> ORCPT=...`.
    pub rcpt_to: Vec<String>,
    /// The EHLO/HELO argument.
    pub helo: Option<String>,
    /// The message content as received (LF line endings, dots unstuffed).
    pub data: Vec<u8>,
}

impl SinkMessage {
    /// The recipient addresses without angle brackets and parameters.
    pub fn recipients(&self) -> Vec<String> {
        self.rcpt_to.iter().map(|r| bare_address(r)).collect()
    }

    /// The sender address without angle brackets and parameters.
    pub fn sender(&self) -> String {
        bare_address(&self.mail_from)
    }
}

fn bare_address(arg: &str) -> String {
    arg.split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// `smtp-sink` on 127.0.0.1 (free port), dumping every transaction into its own directory.
/// Killed (by PID) on drop.
pub struct SmtpSink {
    child: Child,
    addr: SocketAddr,
    dump: tempfile::TempDir,
}

impl SmtpSink {
    /// Accepts every message with 250.
    pub fn start() -> Result<Self> {
        Self::spawn(&[])
    }

    /// Answers the end of DATA with a temporary (`code_class` 4: 450) or permanent (5: 550)
    /// error, after reading the whole message; everything before it is accepted. The content is
    /// still dumped, so [`Self::messages`] shows every attempt.
    pub fn rejecting_data(code_class: u8) -> Result<Self> {
        match code_class {
            4 => Self::spawn(&["-r", "."]),
            5 => Self::spawn(&["-f", "."]),
            other => Err(HarnessError::Other(format!(
                "rejecting_data takes 4 or 5, not {other}"
            ))),
        }
    }

    /// smtp-sink with extra options (see `man smtp-sink`), e.g. `["-Q", "RCPT"]`.
    pub fn with_args(args: &[&str]) -> Result<Self> {
        Self::spawn(args)
    }

    /// Accepts every message with 250, listening on `addr` (any loopback address, e.g. a
    /// client's own address in the abuse tests).
    pub fn start_at(addr: SocketAddr) -> Result<Self> {
        Self::spawn_at(&[], addr)
    }

    fn spawn(extra: &[&str]) -> Result<Self> {
        Self::spawn_at(extra, ports::free_addr())
    }

    fn spawn_at(extra: &[&str], addr: SocketAddr) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        // As root smtp-sink must drop privileges (`-u`), and then writes its dumps as that user.
        require_root().map_err(HarnessError::Other)?;
        let dump = tempfile::Builder::new()
            .prefix("postern-sink-")
            .tempdir()
            .context(|| "create smtp-sink dump directory".into())?;
        std::fs::set_permissions(dump.path(), std::fs::Permissions::from_mode(0o777))
            .context(|| "chmod dump directory".into())?;
        let template = format!("{}/%Y%m%d%H%M%S.", dump.path().display());
        let child = Command::new("smtp-sink")
            .args(["-u", "nobody", "-d", &template])
            .args(extra)
            .arg(addr.to_string())
            .arg("64")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(|| {
                "start smtp-sink (package postfix; run scripts/install-test-deps.sh)".into()
            })?;
        let mut sink = Self { child, addr, dump };
        if let Err(e) = ports::wait_for_port(addr, Duration::from_secs(10)) {
            let status = sink.child.try_wait().ok().flatten();
            return Err(HarnessError::Other(format!(
                "smtp-sink did not start ({status:?}): {e}"
            )));
        }
        Ok(sink)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn dump_dir(&self) -> &Path {
        self.dump.path()
    }

    fn complete_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(self.dump.path())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        files.sort();
        files.into_iter().map(|(_, p)| p).collect()
    }

    /// Every transaction that reached the end of DATA, oldest first. A dump still being written
    /// (not yet ending in smtp-sink's closing empty line) is left out.
    pub fn messages(&self) -> Vec<SinkMessage> {
        self.complete_files()
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .filter_map(|bytes| parse_dump(&bytes))
            .collect()
    }

    /// Waits until at least `n` messages arrived; returns all of them.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Result<Vec<SinkMessage>> {
        poll_until(
            format!("{n} message(s) at smtp-sink {}", self.addr),
            timeout,
            || {
                let messages = self.messages();
                (messages.len() >= n).then_some(messages)
            },
        )
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(2));
    }
}

/// Parses one `smtp-sink -d` file: X-* records, its own three-line Received header, the message,
/// then one empty line.
fn parse_dump(bytes: &[u8]) -> Option<SinkMessage> {
    let body = bytes.strip_suffix(b"\n\n")?;
    let mut rest = bytes;
    let mut message = SinkMessage {
        mail_from: String::new(),
        rcpt_to: Vec::new(),
        helo: None,
        data: Vec::new(),
    };
    loop {
        let end = rest.iter().position(|b| *b == b'\n')?;
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end + 1..];
        if let Some(v) = line.strip_prefix("X-Mail-Args: ") {
            message.mail_from = v.to_string();
        } else if let Some(v) = line.strip_prefix("X-Rcpt-Args: ") {
            message.rcpt_to.push(v.to_string());
        } else if let Some(v) = line.strip_prefix("X-Helo-Args: ") {
            message.helo = Some(v.to_string());
        } else if line.starts_with("Received: ") {
            for _ in 0..2 {
                let end = rest.iter().position(|b| *b == b'\n')?;
                rest = &rest[end + 1..];
            }
            break;
        }
    }
    let start = bytes.len() - rest.len();
    // The dump ends with the message's last line break plus one empty line of its own.
    message.data = bytes.get(start..body.len() + 1)?.to_vec();
    Some(message)
}

/// A TCP listener on 127.0.0.1 that accepts connections and never answers (optionally after a
/// greeting line), holding them open until dropped.
pub struct SilentServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl SilentServer {
    /// Never sends a byte.
    pub fn start() -> Result<Self> {
        Self::spawn(None)
    }

    /// Sends `greeting` plus CRLF on connect (e.g. "220 slow.test ESMTP"), then nothing more.
    pub fn with_greeting(greeting: &str) -> Result<Self> {
        Self::spawn(Some(format!("{greeting}\r\n")))
    }

    fn spawn(greeting: Option<String>) -> Result<Self> {
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).context(|| "bind silent server".into())?;
        let addr = listener
            .local_addr()
            .context(|| "silent server address".into())?;
        listener
            .set_nonblocking(true)
            .context(|| "non-blocking listener".into())?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let thread = {
            let (stop, accepted) = (stop.clone(), accepted.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            if let Some(g) = &greeting {
                                let _ = stream.write_all(g.as_bytes());
                            }
                            accepted.fetch_add(1, Ordering::Relaxed);
                            held.lock().unwrap_or_else(|e| e.into_inner()).push(stream);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Ok(Self {
            addr,
            stop,
            accepted,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_dump_file() {
        let dump = b"X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: isp.test\n\
X-Mail-Args: <a@example.net>\nX-Rcpt-Args: <u@office.test> ORCPT=rfc822;u@office.test\n\
Received: from isp.test ([127.0.0.1])\n\tby smtp-sink (smtp-sink) with ESMTP id 1;\n\tSat, 28 Nov 2026\n\
Subject: x\n\nbody\n.\n\n";

        let m = parse_dump(dump).expect("parses");

        assert_eq!(m.sender(), "a@example.net");
        assert_eq!(m.recipients(), vec!["u@office.test"]);
        assert_eq!(m.helo.as_deref(), Some("isp.test"));
        assert_eq!(m.data, b"Subject: x\n\nbody\n.\n");
    }

    #[test]
    fn incomplete_dump_is_not_a_message() {
        assert_eq!(parse_dump(b"X-Mail-Args: <a@b>\nReceived: from"), None);
    }
}
