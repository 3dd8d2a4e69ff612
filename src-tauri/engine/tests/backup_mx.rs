#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The backup MX over real sockets: mail for a neighbour's domain is held in the spool, ETRN
//! answers with real counts and releases it to the neighbour's own server (here a second
//! Postern listener writing a Maildir), and a message leaves the hold only after that
//! server's 250.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use postern_engine::backup::server::BackupServer;
use postern_engine::config::Config;
use postern_engine::deliver::Delivery;
use postern_engine::deliver::maildir::Maildir;
use postern_engine::events::{self, Event};
use postern_engine::smtp_server::{Inbound, ServerSettings, SessionContext};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A listener taking `domain` into a Maildir at `dir` (the neighbour's primary MX).
async fn primary(dir: &Path, domain: &str) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
    let (events, _) = events::channel();
    let ctx = SessionContext {
        settings: ServerSettings {
            hostname: "mx.neighbour.test".into(),
            domains: vec![domain.into()],
            ..ServerSettings::default()
        },
        delivery: Delivery::Maildir(Maildir::open(dir, "mx.neighbour.test").unwrap()),
        events,
        arrivals: None,
        tls: None,
    };
    start(ctx).await
}

async fn start(ctx: SessionContext) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
    let (inbound, sessions) = Inbound::bind(&["127.0.0.1:0".parse().unwrap()], Arc::new(ctx))
        .await
        .unwrap();
    let addr = inbound.local_addrs()[0];
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _keep = inbound;
        sessions.run(rx).await.finish().await;
    });
    (addr, tx)
}

struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut c = Client {
            reader: BufReader::new(r),
            writer: w,
        };
        c.expect("220").await;
        c
    }

    async fn expect(&mut self, code: &str) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
                .await
                .expect("a reply within 10 s")
                .unwrap();
            assert!(!line.is_empty(), "closed while waiting for {code}: {all}");
            all.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') {
                assert!(all.starts_with(code), "expected {code}, got {all:?}");
                return all;
            }
        }
    }

    async fn cmd(&mut self, line: &str, code: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.expect(code).await
    }

    async fn send_mail(&mut self, to: &str, body: &str) {
        self.cmd("MAIL FROM:<a@example.net>", "250").await;
        self.cmd(&format!("RCPT TO:<{to}>"), "250").await;
        self.cmd("DATA", "354").await;
        self.cmd(&format!("{body}\r\n."), "250").await;
    }
}

fn config(state: &Path, deliver: &Path, primary: SocketAddr) -> Config {
    let text = format!(
        r#"
domains = ["office.test"]
state_dir = "{state}"

[[queue_servers]]
host = "isp.test"

[inbound]
deliver = "maildir:{deliver}"
hostname = "backup.office.test"

[[backup_for]]
domain = "neighbour.test"
deliver_to = "smtp://{primary}"
release = ["etrn"]
"#,
        state = state.display(),
        deliver = deliver.display(),
    );
    Config::parse(&text, Path::new("postern.toml")).unwrap()
}

fn maildir_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("new")).map_or(0, |d| d.count())
}

#[tokio::test]
async fn held_mail_is_released_on_etrn_with_real_counts_to_the_neighbour_only() {
    // Arrange
    let state = tempfile::tempdir().unwrap();
    let office_mail = tempfile::tempdir().unwrap();
    let neighbour_mail = tempfile::tempdir().unwrap();
    let (primary_addr, _stop_primary) = primary(neighbour_mail.path(), "neighbour.test").await;
    let config = config(state.path(), office_mail.path(), primary_addr);
    let (events, mut rx) = events::channel();
    let backup = Arc::new(BackupServer::from_config(&config, events.clone()).unwrap());
    backup.open_spool().unwrap();
    let ctx = SessionContext::from_config(&config, events)
        .unwrap()
        .with_backup(Some(backup.clone()));
    let (addr, _stop) = start(ctx).await;
    let mut c = Client::connect(addr).await;
    let ehlo = c.cmd("EHLO neighbour-gw.test", "250").await;

    // Act: two messages held, one office message, one refused mix
    c.send_mail("bob@neighbour.test", "Subject: one\r\n\r\nfirst")
        .await;
    c.send_mail("carol@neighbour.test", "Subject: two\r\n\r\nsecond")
        .await;
    c.cmd("MAIL FROM:<a@example.net>", "250").await;
    c.cmd("RCPT TO:<bob@neighbour.test>", "250").await;
    let mixed = c.cmd("RCPT TO:<boss@office.test>", "452").await;
    c.cmd("RSET", "250").await;
    c.cmd("MAIL FROM:<a@example.net>", "250").await;
    c.cmd("RCPT TO:<x@elsewhere.test>", "550").await;
    c.cmd("RSET", "250").await;
    let held_before = backup.held("neighbour.test").unwrap().len();
    let unknown = c.cmd("ETRN other.test", "459").await;
    let syntax = c.cmd("ETRN", "501").await;
    let started = c.cmd("ETRN @neighbour.test", "253").await;
    let finished = loop {
        match rx.recv().await.unwrap() {
            Event::BackupReleaseFinished {
                delivered,
                deferred,
                problem,
                ..
            } => break (delivered, deferred, problem),
            _ => continue,
        }
    };
    let again = c.cmd("ETRN #neighbour.test", "251").await;

    // Assert
    assert!(
        ehlo.contains("250-ETRN") || ehlo.contains("250 ETRN"),
        "{ehlo}"
    );
    assert!(mixed.contains("separate message"), "{mixed}");
    assert_eq!(held_before, 2);
    assert!(unknown.contains("not backed up here"), "{unknown}");
    assert!(syntax.starts_with("501"), "{syntax}");
    assert_eq!(
        started,
        "253 2.0.0 2 messages pending, message queue started\r\n"
    );
    assert_eq!(finished, (2, 0, None));
    assert!(again.contains("no messages waiting"), "{again}");
    assert_eq!(maildir_count(neighbour_mail.path()), 2);
    assert_eq!(maildir_count(office_mail.path()), 0);
    assert!(backup.held("neighbour.test").unwrap().is_empty());
    let leftovers = std::fs::read_dir(state.path().join("outbound"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0);
}

#[tokio::test]
async fn an_unreachable_neighbour_keeps_the_mail_held() {
    // Arrange: the primary is a port nobody listens on
    let state = tempfile::tempdir().unwrap();
    let office_mail = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let config = config(state.path(), office_mail.path(), dead);
    let (events, mut rx) = events::channel();
    let backup = Arc::new(BackupServer::from_config(&config, events.clone()).unwrap());
    backup.open_spool().unwrap();
    let ctx = SessionContext::from_config(&config, events)
        .unwrap()
        .with_backup(Some(backup.clone()));
    let (addr, _stop) = start(ctx).await;
    let mut c = Client::connect(addr).await;
    c.cmd("EHLO neighbour-gw.test", "250").await;
    c.send_mail("bob@neighbour.test", "Subject: one\r\n\r\nfirst")
        .await;

    // Act
    c.cmd("ETRN neighbour.test", "253").await;
    let finished = loop {
        if let Event::BackupReleaseFinished {
            deferred, problem, ..
        } = rx.recv().await.unwrap()
        {
            break (deferred, problem);
        }
    };

    // Assert
    assert_eq!(finished.0, 1);
    assert!(finished.1.is_some());
    assert_eq!(backup.held("neighbour.test").unwrap().len(), 1);
}
