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
pub mod error;
pub mod keyring_bus;
pub mod load;
pub mod maildir;
pub mod messages;
pub mod netns;
pub mod odmr;
pub mod ports;
pub mod posternd;
pub mod postfix;
pub mod preconditions;
pub mod process;
pub mod reply;
pub mod scripted;
pub mod sink;
pub mod smallfs;
pub mod smtp_client;
pub mod tls;
pub mod wait;

pub use config::PosternConfig;
pub use dnsmasq::{DnsAnswer, Dnsmasq, DnsmasqBuilder};
pub use error::{HarnessError, Result};
pub use keyring_bus::PrivateKeyring;
pub use maildir::{count as maildir_count, read_maildir, wait_for_maildir};
pub use messages::{TestMessage, digest_without_headers, digest_without_received};
pub use netns::NetNs;
pub use ports::{free_addr, free_port, wait_for_port};
pub use posternd::{Posternd, PosterndBuilder, posternd, posternd_bin, posternd_with};
pub use postfix::{PostfixQueue, PostfixQueueBuilder};
pub use preconditions::{require_root, require_session_bus};
pub use scripted::{DripServer, ScriptedServer};
pub use sink::{SilentServer, SinkMessage, SmtpSink};
pub use smallfs::SmallFs;
pub use smtp_client::{Reply, Transcript, send, send_all};
pub use tls::{OpensslSelfSigned, TestPki};
pub use wait::poll_until;

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
