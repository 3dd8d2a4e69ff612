#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The inbound session driven over an in-memory stream: pipelining, recipient checks, limits and
//! the Maildir contract, as transcripts. (The listener over TCP with swaks is tested in the
//! tests package.)

use std::sync::Arc;
use std::time::Duration;

use postern_engine::deliver::Delivery;
use postern_engine::deliver::maildir::Maildir;
use postern_engine::events;
use postern_engine::smtp_server::session::{self, SessionEnd, SessionInfo, SessionSummary};
use postern_engine::smtp_server::{ServerSettings, SessionContext};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

fn settings() -> ServerSettings {
    ServerSettings {
        hostname: "office-gw.test".into(),
        domains: vec!["office.test".into()],
        max_message_size: 64 * 1024,
        max_recipients: 3,
        max_errors: 8,
        idle_timeout: Duration::from_secs(5),
        max_connections: 4,
        session_timeout: None,
        ..ServerSettings::default()
    }
}

struct Harness {
    client: DuplexStream,
    session: tokio::task::JoinHandle<SessionSummary>,
    dir: tempfile::TempDir,
    pending: Vec<u8>,
}

impl Harness {
    async fn start() -> Harness {
        Harness::start_with(settings(), Vec::new()).await
    }

    async fn start_with(settings: ServerSettings, initial: Vec<u8>) -> Harness {
        Harness::start_full(settings, initial, None).await
    }

    async fn start_full(
        settings: ServerSettings,
        initial: Vec<u8>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(dir.path(), "office-gw.test").unwrap();
        let (events, _) = events::channel();
        let ctx = Arc::new(SessionContext {
            settings,
            delivery: Delivery::Maildir(maildir),
            events,
            arrivals: None,
            tls,
        });
        let (client, server) = tokio::io::duplex(1 << 20);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let session = tokio::spawn(async move {
            let info = SessionInfo {
                peer: Some("127.0.0.1:40000".parse().unwrap()),
                tls: false,
                via: "inbound",
            };
            let summary = session::run(server, initial, info, &ctx, rx).await;
            drop(_tx);
            summary
        });
        let mut h = Harness {
            client,
            session,
            dir,
            pending: Vec::new(),
        };
        h.expect("220").await;
        h
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.client.write_all(bytes).await.unwrap();
    }

    /// Reads one complete reply and checks that it starts with `code`.
    async fn expect(&mut self, code: &str) -> String {
        let mut reply = String::new();
        loop {
            while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                let line = String::from_utf8(line).unwrap();
                reply.push_str(&line);
                if line.as_bytes().get(3) == Some(&b' ') {
                    assert!(reply.starts_with(code), "expected {code}, got {reply:?}");
                    return reply;
                }
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), self.client.read(&mut buf))
                .await
                .expect("reply within 10 s")
                .unwrap();
            assert!(
                n > 0,
                "connection closed while waiting for {code}; got {reply:?}"
            );
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    async fn cmd(&mut self, line: &str, code: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.expect(code).await
    }

    fn stored(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.dir.path().join("new")).unwrap() {
            out.push(std::fs::read(entry.unwrap().path()).unwrap());
        }
        out
    }

    fn tmp_files(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("tmp"))
            .unwrap()
            .count()
    }

    async fn quit(mut self) -> (SessionSummary, Vec<Vec<u8>>) {
        self.cmd("QUIT", "221").await;
        let stored = self.stored();
        let summary = self.session.await.unwrap();
        (summary, stored)
    }
}

#[tokio::test]
async fn a_message_is_stored_with_a_received_header_and_unstuffed_dots() {
    let mut s = Harness::start().await;
    let ehlo = s.cmd("EHLO isp-queue.test", "250").await;
    assert!(ehlo.contains("PIPELINING") && ehlo.contains("8BITMIME"));
    assert!(ehlo.contains("SIZE 65536") && ehlo.contains("ENHANCEDSTATUSCODES"));
    s.cmd("MAIL FROM:<a@example.net>", "250").await;
    s.cmd("RCPT TO:<user@office.test>", "250").await;
    s.cmd("DATA", "354").await;
    s.send(b"Subject: hi\r\n\r\n..leading dot\r\nline\r\n.\r\n")
        .await;
    s.expect("250 2.0.0").await;

    let (summary, stored) = s.quit().await;
    assert_eq!(summary.accepted, 1);
    assert_eq!(summary.end, SessionEnd::Quit);
    assert_eq!(stored.len(), 1);
    let text = String::from_utf8(stored[0].clone()).unwrap();
    assert!(text.starts_with(
        "Received: from isp-queue.test ([127.0.0.1])\n\tby office-gw.test (Postern) with ESMTP id "
    ));
    assert!(text.contains("\n\tfor <user@office.test>;\n"));
    assert!(text.ends_with("Subject: hi\n\n.leading dot\nline\n"));
}

#[tokio::test]
async fn pipelined_commands_get_their_replies_in_order() {
    let mut s = Harness::start().await;
    s.cmd("EHLO q", "250").await;
    s.send(
        b"MAIL FROM:<>\r\nRCPT TO:<a@office.test>\r\nRCPT TO:<b@elsewhere.test>\r\nRCPT TO:<c@OFFICE.TEST>\r\nDATA\r\n",
    )
    .await;
    s.expect("250 2.1.0").await;
    s.expect("250 2.1.5").await;
    let refused = s.expect("550 5.7.1").await;
    assert!(refused.contains("elsewhere.test is not a domain of this office"));
    s.expect("250 2.1.5").await;
    s.expect("354").await;
    s.send(b"x\r\n.\r\n").await;
    s.expect("250").await;
    let (summary, stored) = s.quit().await;
    assert_eq!(summary.accepted, 1);
    assert!(stored[0].ends_with(b";\n\tfor <a@office.test>") || stored[0].ends_with(b"\nx\n"));
}

#[tokio::test]
async fn relay_tricks_are_refused() {
    let mut s = Harness::start().await;
    s.cmd("EHLO q", "250").await;
    s.cmd("MAIL FROM:<a@example.net>", "250").await;
    s.cmd("RCPT TO:<@office.test:victim@elsewhere.test>", "550")
        .await;
    s.cmd("RCPT TO:<victim%elsewhere.test@office.test>", "550 5.7.1")
        .await;
    s.cmd("RCPT TO:<elsewhere.test!victim@office.test>", "550 5.7.1")
        .await;
    s.cmd("RCPT TO:<>", "5").await;
    s.cmd("DATA", "554").await;
    let (summary, stored) = s.quit().await;
    assert_eq!(summary.accepted, 0);
    assert!(stored.is_empty());
}

#[tokio::test]
async fn oversized_messages_are_refused_and_leave_nothing() {
    let mut s = Harness::start().await;
    s.cmd("EHLO q", "250").await;
    s.cmd("MAIL FROM:<a@example.net> SIZE=100000", "552").await;
    s.cmd("MAIL FROM:<a@example.net>", "250").await;
    s.cmd("RCPT TO:<u@office.test>", "250").await;
    s.cmd("DATA", "354").await;
    let line = [b'y'; 998];
    for _ in 0..100 {
        s.send(&line).await;
        s.send(b"\r\n").await;
    }
    s.send(b".\r\n").await;
    s.expect("552 5.3.4").await;
    assert_eq!(s.tmp_files(), 0);
    // The session goes on serving.
    s.cmd("MAIL FROM:<a@example.net>", "250").await;
    let (summary, stored) = s.quit().await;
    assert_eq!((summary.accepted, summary.refused), (0, 1));
    assert!(stored.is_empty());
}

#[tokio::test]
async fn long_lines_and_garbage_are_errors_and_too_many_end_the_session() {
    let mut s = Harness::start().await;
    let long = format!("EHLO {}\r\n", "x".repeat(5000));
    s.send(long.as_bytes()).await;
    s.expect("500 5.5.2").await;
    s.cmd("EHLO ok", "250").await;
    s.send(b"\x00\xff\xfe garbage\r\n").await;
    s.expect("500").await;
    s.cmd("FOO", "500").await;
    s.cmd("MAIL FROM:<broken", "501").await;
    for _ in 0..3 {
        s.cmd("BAR", "500").await;
    }
    s.send(b"BAR\r\n").await;
    s.expect("500").await;
    s.expect("421 4.7.0").await;
    let summary = s.session.await.unwrap();
    assert_eq!(summary.end, SessionEnd::TooManyErrors);
}

#[tokio::test]
async fn a_client_that_disappears_mid_data_leaves_no_message() {
    let mut s = Harness::start().await;
    s.cmd("EHLO q", "250").await;
    s.cmd("MAIL FROM:<a@example.net>", "250").await;
    s.cmd("RCPT TO:<u@office.test>", "250").await;
    s.cmd("DATA", "354").await;
    s.send(b"Subject: half\r\n\r\nhalf a mess").await;
    let Harness {
        client,
        session,
        dir,
        ..
    } = s;
    drop(client);
    let summary = session.await.unwrap();
    assert_eq!(summary.end, SessionEnd::Closed);
    assert_eq!(
        std::fs::read_dir(dir.path().join("new")).unwrap().count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

#[tokio::test]
async fn bytes_read_before_the_session_started_are_served() {
    let mut s = Harness::start_with(settings(), b"EHLO early\r\nNOOP\r\n".to_vec()).await;
    s.expect("250").await;
    s.expect("250 2.0.0").await;
    let (summary, _) = s.quit().await;
    assert_eq!(summary.end, SessionEnd::Quit);
}

#[tokio::test]
async fn commands_out_of_order_are_refused() {
    let mut s = Harness::start().await;
    s.cmd("MAIL FROM:<a@example.net>", "503").await;
    s.cmd("HELO q", "250").await;
    s.cmd("RCPT TO:<u@office.test>", "503").await;
    s.cmd("DATA", "503").await;
    s.cmd("MAIL FROM:<a@example.net>", "250").await;
    s.cmd("MAIL FROM:<a@example.net>", "503").await;
    s.cmd("RSET", "250").await;
    s.cmd("STARTTLS", "502").await;
    s.quit().await;
}

#[tokio::test]
async fn postmaster_without_a_domain_is_the_first_domains_postmaster() {
    let mut s = Harness::start().await;
    s.cmd("EHLO q", "250").await;
    s.cmd("MAIL FROM:<a@example.net>", "250").await;
    s.cmd("RCPT TO:<PostMaster>", "250").await;
    s.cmd("DATA", "354").await;
    s.send(b"Subject: hello\r\n\r\nhi\r\n.\r\n").await;
    s.expect("250").await;
    let (_, stored) = s.quit().await;
    let text = String::from_utf8(stored[0].clone()).unwrap();
    assert!(text.contains("for <postmaster@office.test>"), "{text}");
}

#[tokio::test]
async fn smuggled_transactions_stay_text_of_one_message_with_crlf_line_ends() {
    for shape in ["\n.\r\n", "\r.\r\n", "\n.\n", "\r\n.\n", "\r\n.\r"] {
        let mut s = Harness::start().await;
        s.cmd("EHLO q", "250").await;
        s.cmd("MAIL FROM:<a@example.net>", "250").await;
        s.cmd("RCPT TO:<user@office.test>", "250").await;
        s.cmd("DATA", "354").await;
        let data = format!(
            "Subject: one\r\n\r\nbody{shape}MAIL FROM:<ceo@office.test>\r\n\
             RCPT TO:<victim@office.test>\r\nDATA\r\nSubject: two\r\n\r\nhidden\r\n.\r\n"
        );
        s.send(data.as_bytes()).await;
        s.expect("250 2.0.0").await;
        // One message, one 250: the next reply is QUIT's.
        let (summary, stored) = s.quit().await;
        assert_eq!(summary.accepted, 1, "{shape:?}");
        assert_eq!(stored.len(), 1, "{shape:?}");
        let text = &stored[0];
        // Maildir stores LF line ends; each was a CRLF, so no CR is left anywhere.
        assert!(!text.contains(&b'\r'), "{shape:?}: {text:?}");
        let text = String::from_utf8_lossy(text);
        assert!(
            text.contains("\nMAIL FROM:<ceo@office.test>\n"),
            "{shape:?}: {text}"
        );
        assert!(text.ends_with("hidden\n"), "{shape:?}: {text}");
    }
}

#[tokio::test]
async fn junk_commands_beyond_the_limit_close_the_session() {
    let settings = ServerSettings {
        max_junk_commands: 3,
        ..settings()
    };
    let mut s = Harness::start_with(settings, Vec::new()).await;
    s.cmd("EHLO q", "250").await;
    for _ in 0..3 {
        s.cmd("NOOP", "250").await;
    }
    s.cmd("RSET", "421 4.7.0").await;
    let summary = s.session.await.unwrap();
    assert_eq!(summary.end, SessionEnd::TooManyJunkCommands);
}

#[tokio::test(start_paused = true)]
async fn a_command_line_that_drips_in_is_bounded_as_a_whole() {
    let settings = ServerSettings {
        idle_timeout: Duration::from_secs(3),
        ..settings()
    };
    let mut s = Harness::start_with(settings, Vec::new()).await;
    // One byte a second: every read is quick, the line never completes in time.
    let drip = async {
        for b in b"EHLO slow.example.net\r\n" {
            if s.client.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    drip.await;
    s.expect("421 4.4.2").await;
    let summary = s.session.await.unwrap();
    assert_eq!(summary.end, SessionEnd::IdleTimeout);
}

fn tls_pair() -> (
    Arc<rustls::ServerConfig>,
    postern_engine::config::Fingerprint,
) {
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let made = rcgen::generate_simple_self_signed(vec!["office-gw.test".into()]).unwrap();
    let cert = CertificateDer::from(made.cert.der().to_vec());
    let fingerprint = postern_engine::tls::fingerprint_of(cert.as_ref());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(postern_engine::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    (Arc::new(config), fingerprint)
}

#[tokio::test]
async fn starttls_discards_plaintext_sent_behind_it() {
    let (server, fingerprint) = tls_pair();
    let mut s = Harness::start_full(settings(), Vec::new(), Some(server)).await;
    let ehlo = s.cmd("EHLO q", "250").await;
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    // CVE-2011-0411: a command injected into the same packet as STARTTLS.
    s.send(b"STARTTLS\r\nRSET\r\n").await;
    s.expect("220").await;
    assert!(s.pending.is_empty());

    let policy = postern_engine::tls::TrustPolicy {
        ca_file: None,
        fingerprint: Some(fingerprint),
    };
    let client = postern_engine::tls::client_config(&policy, &Default::default()).unwrap();
    let connector = tokio_rustls::TlsConnector::from(client);
    let name = rustls_pki_types::ServerName::try_from("office-gw.test").unwrap();
    let mut tls = connector.connect(name, s.client).await.unwrap();
    tls.write_all(b"EHLO q\r\n").await.unwrap();
    let mut reply = Vec::new();
    while !reply.windows(2).any(|w| w == b"\r\n") || !ends_reply(&reply) {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        reply.extend_from_slice(&buf[..n]);
    }
    let reply = String::from_utf8(reply).unwrap();
    // The first reply over TLS is EHLO's: the injected RSET was never answered.
    assert!(reply.starts_with("250-office-gw.test greets q"), "{reply}");
    assert!(!reply.contains("STARTTLS"), "{reply}");
}

/// The last line of the bytes read so far is a final reply line (`250 ...`).
fn ends_reply(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.ends_with("\r\n")
        && text
            .trim_end()
            .lines()
            .last()
            .is_some_and(|l| l.as_bytes().get(3) == Some(&b' '))
}

#[tokio::test]
async fn no_reply_echoes_a_bare_cr_of_the_client() {
    let mut s = Harness::start().await;
    s.cmd("EHLO q", "250").await;
    let reply = s.cmd("EX\rPN x", "502").await;
    assert_eq!(reply.matches('\r').count(), 1, "{reply:?}");
}
