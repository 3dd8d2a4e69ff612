//! Real peers for black-box tests, each owned by a guard that stops it (by PID) in `Drop`.
//!
//! A test starts what it needs on 127.0.0.1 (free ports) or inside a network namespace it
//! created, and reads like a transcript:
//!
//! ```no_run
//! use postern_tests::harness::{PostfixQueue, TestMessage, Transcript};
//! let isp = PostfixQueue::builder().start().expect("postfix starts");
//! isp.queue_messages(&[TestMessage::sized(1, 2_000, &["user@office.test"])]).expect("queued");
//! let mut s = Transcript::connect(isp.addr()).expect("connects");
//! s.expect("EHLO office.test", 250).expect("EHLO");
//! s.expect("ETRN office.test", 250).expect("ETRN");
//! ```
//!
//! Everything here is synchronous (std threads, blocking sockets with timeouts) so it can be
//! used from plain `#[test]`s and from inside a tokio test alike.

pub mod config;
pub mod dnsmasq;
pub mod maildir;
pub mod messages;
pub mod netns;
pub mod odmr;
pub mod ports;
pub mod posternd;
pub mod postfix;
pub mod process;
pub mod scripted;
pub mod sink;
pub mod smallfs;
pub mod smtp_client;
pub mod tls;

pub use config::PosternConfig;
pub use dnsmasq::{DnsAnswer, Dnsmasq, DnsmasqBuilder};
pub use maildir::{count as maildir_count, read_maildir, wait_for_maildir};
pub use messages::{TestMessage, digest_without_headers, digest_without_received};
pub use netns::NetNs;
pub use ports::{free_addr, free_port, wait_for_port};
pub use posternd::{Posternd, PosterndBuilder, posternd, posternd_bin, posternd_with};
pub use postfix::{PostfixQueue, PostfixQueueBuilder};
pub use scripted::{DripServer, ScriptedServer};
pub use sink::{SilentServer, SinkMessage, SmtpSink};
pub use smallfs::SmallFs;
pub use smtp_client::{Reply, Transcript, send, send_all};
pub use tls::{OpensslSelfSigned, TestPki};

use std::time::Duration;

/// What can go wrong while driving a peer. The message says what failed and, where it helps,
/// what the peer said (its log or transcript).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("`{command}` failed ({status}): {output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
    #[error("SMTP {command:?} answered {reply}")]
    Rejected { command: String, reply: Reply },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = HarnessError> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| HarnessError::Io {
            what: what(),
            source,
        })
    }
}

/// `Ok(())` when this process may start root-only peers (a private Postfix, network
/// namespaces, smtp-sink), else the reason to skip.
///
/// CI runs as root and must never skip: when the environment variable `CI` is set and we are not
/// root, this panics instead of returning the reason.
pub fn require_root() -> Result<(), String> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let why = "this test needs root (a private Postfix, smtp-sink or network namespaces); \
               run it as root, e.g. `sudo make test`"
        .to_string();
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    if ci {
        panic!("{why} (CI is set, so it must not be skipped)");
    }
    Err(why)
}

/// Returns from the calling test (after saying why on stderr) unless we are root; panics under CI.
#[macro_export]
macro_rules! skip_unless_root {
    () => {
        if let Err(why) = $crate::harness::require_root() {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
}

/// Polls `probe` until it returns `Some`, or fails after `timeout`. The interval grows from 5 ms
/// to 100 ms: this waits for a condition, it does not guess a delay.
pub fn poll_until<T>(
    what: impl Into<String>,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = std::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if std::time::Instant::now() >= deadline {
            return Err(HarnessError::Timeout {
                what: what.into(),
                after: timeout,
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// `true` when a D-Bus session bus is there for keyring tests (`make test` starts one with an
/// unlocked gnome-keyring). Without one the test should return; under CI that is a failure.
pub fn require_session_bus() -> bool {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the keyring tests: run them through `make test` (dbus-run-session + gnome-keyring)"
    );
    eprintln!("SKIPPED: no D-Bus session bus; run `make test`");
    false
}
