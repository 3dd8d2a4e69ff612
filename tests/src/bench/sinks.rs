//! `smtp-sink` as an anchor: no dump files (the harness's [`postern_tests::harness::SmtpSink`] dumps
//! every message for reading back, which is not the ceiling we want here), optionally with its
//! running counter (`-c`) so the time of the last message can be seen.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use postern_tests::harness::process::terminate;
use postern_tests::harness::{HarnessError, Result, ports, require_root};

/// `smtp-sink -u nobody ADDR 256` (plus `-c` when counting); killed by PID on drop.
pub struct BareSink {
    child: Child,
    addr: SocketAddr,
    received: Arc<AtomicU64>,
    reader: Option<JoinHandle<()>>,
}

impl BareSink {
    /// Starts it and waits until it listens.
    pub fn start(counting: bool) -> Result<BareSink> {
        let sink = Self::spawn(ports::free_addr(), counting)?;
        ports::wait_for_port(sink.addr, Duration::from_secs(10))?;
        Ok(sink)
    }

    /// Starts it without waiting (for start-up timing).
    pub fn spawn(addr: SocketAddr, counting: bool) -> Result<BareSink> {
        require_root().map_err(HarnessError::Other)?;
        let mut cmd = Command::new("smtp-sink");
        if counting {
            cmd.arg("-c");
        }
        let mut child = cmd
            .args(["-u", "nobody"])
            .arg(addr.to_string())
            .arg("256")
            .stdin(Stdio::null())
            .stdout(if counting {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                HarnessError::Other(format!(
                    "start smtp-sink: {e} (package postfix; run scripts/install-test-deps.sh)"
                ))
            })?;
        let received = Arc::new(AtomicU64::new(0));
        let reader = child.stdout.take().map(|mut out| {
            let received = received.clone();
            std::thread::spawn(move || {
                // Lines like "sess=2 quit=2 mesg=4\r", rewritten in place.
                let mut buf = [0u8; 4096];
                let mut line = Vec::new();
                while let Ok(n) = out.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    for &b in &buf[..n] {
                        if b == b'\r' || b == b'\n' {
                            if let Some(count) = mesg_count(&line) {
                                received.store(count, Ordering::Relaxed);
                            }
                            line.clear();
                        } else {
                            line.push(b);
                        }
                    }
                }
            })
        });
        Ok(BareSink {
            child,
            addr,
            received,
            reader,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Messages received so far (counting sinks only).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

fn mesg_count(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    text.split_whitespace()
        .find_map(|word| word.strip_prefix("mesg="))
        .and_then(|n| n.parse().ok())
}

impl Drop for BareSink {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(2));
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_counter_line() {
        assert_eq!(mesg_count(b"sess=2 quit=2 mesg=4"), Some(4));
        assert_eq!(mesg_count(b"sess=2"), None);
    }
}
