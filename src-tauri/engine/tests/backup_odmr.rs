#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! The backup MX's ODMR server (RFC 2645) with Postern's own ATRN client as the neighbour: the
//! held mail comes over the same connection after `250`, a login gets only its own domains,
//! and a second ATRN finds nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use postern_engine::backup::odmr::listener;
use postern_engine::backup::odmr::session::OdmrContext;
use postern_engine::backup::server::BackupServer;
use postern_engine::config::{Config, Protocol, QueueServer, TlsMode};
use postern_engine::deliver::Delivery;
use postern_engine::deliver::maildir::Maildir;
use postern_engine::dequeue::{self, DequeueContext};
use postern_engine::events;
use postern_engine::secrets::{MemoryStore, SecretStore};
use postern_engine::smtp_server::{ServerSettings, SessionContext};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const PASSWORD: &str = "neighbour's secret";

fn config(state: &Path) -> Config {
    let text = format!(
        r#"
domains = ["office.test"]
state_dir = "{state}"

[[queue_servers]]
host = "isp.test"

[inbound]
deliver = "maildir:{state}/Maildir"
hostname = "backup.office.test"

[[backup_for]]
domain = "neighbour.test"
release = ["atrn"]
username = "neighbour"

[[backup_for]]
domain = "other.test"
release = ["atrn", "etrn"]
username = "other"
"#,
        state = state.display(),
    );
    Config::parse(&text, Path::new("postern.toml")).unwrap()
}

/// Holds one message per recipient in `to` by way of an SMTP session on the inbound side.
async fn hold(backup: &Arc<BackupServer>, config: &Config, to: &[&str]) {
    let (events, _) = events::channel();
    let ctx = SessionContext::from_config(config, events)
        .unwrap()
        .with_backup(Some(backup.clone()));
    let (client, server) = tokio::io::duplex(1 << 20);
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let session = tokio::spawn(async move {
        let info = postern_engine::smtp_server::SessionInfo {
            peer: Some("127.0.0.1:40000".parse().unwrap()),
            tls: false,
            via: "inbound",
        };
        postern_engine::smtp_server::session::run(server, Vec::new(), info, &ctx, rx).await
    });
    let (r, mut w) = tokio::io::split(client);
    let mut r = BufReader::new(r);
    let mut script = String::from("EHLO sender.test\r\n");
    for (i, rcpt) in to.iter().enumerate() {
        script.push_str(&format!(
            "MAIL FROM:<s{i}@example.net>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n"
        ));
        script.push_str(&format!(
            "Subject: held {i}\r\n\r\nbody {i}\r\n..a dot line\r\n.\r\n"
        ));
    }
    script.push_str("QUIT\r\n");
    w.write_all(script.as_bytes()).await.unwrap();
    let mut all = String::new();
    while r.read_line(&mut all).await.unwrap() > 0 {}
    session.await.unwrap();
    assert_eq!(all.matches("250 2.0.0 OK id=").count(), to.len(), "{all}");
}

struct Neighbour {
    maildir: tempfile::TempDir,
    ctx: DequeueContext,
}

impl Neighbour {
    fn new(login: &str) -> Neighbour {
        let maildir = tempfile::tempdir().unwrap();
        let (events, _) = events::channel();
        let inbound = SessionContext {
            settings: ServerSettings {
                hostname: "gw.neighbour.test".into(),
                domains: vec!["neighbour.test".into(), "other.test".into()],
                idle_timeout: Duration::from_secs(10),
                ..ServerSettings::default()
            },
            delivery: Delivery::Maildir(
                Maildir::open(maildir.path(), "gw.neighbour.test").unwrap(),
            ),
            events,
            arrivals: None,
            tls: None,
        };
        Neighbour {
            maildir,
            ctx: DequeueContext {
                helo_name: "gw.neighbour.test".into(),
                secrets: Arc::new(MemoryStore::with(&format!("{login}@127.0.0.1"), PASSWORD)),
                inbound: Some(Arc::new(inbound)),
            },
        }
    }

    fn received(&self) -> Vec<Vec<u8>> {
        std::fs::read_dir(self.maildir.path().join("new"))
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect()
    }
}

fn server(port: u16, login: &str) -> QueueServer {
    QueueServer {
        username: Some(login.into()),
        port,
        tls: TlsMode::Off,
        allow_plaintext_auth: true,
        timeout: Duration::from_secs(10),
        ..QueueServer::new("127.0.0.1", Protocol::Atrn)
    }
}

async fn odmr(backup: Arc<BackupServer>) -> u16 {
    let secrets = MemoryStore::new();
    secrets.set("neighbour@backup", PASSWORD).unwrap();
    secrets.set("other@backup", PASSWORD).unwrap();
    let ctx = Arc::new(OdmrContext {
        backup,
        tls: None,
        secrets: Arc::new(secrets),
        idle_timeout: Duration::from_secs(10),
        session_limit: Duration::from_secs(60),
    });
    let (_tx, rx) = tokio::sync::watch::channel(false);
    std::mem::forget(_tx);
    let (addrs, _tasks) = listener::start(&["127.0.0.1:0".parse().unwrap()], ctx, rx)
        .await
        .unwrap();
    addrs[0].port()
}

#[tokio::test]
async fn postern_s_atrn_client_gets_every_held_message_over_the_same_connection() {
    // Arrange
    let state = tempfile::tempdir().unwrap();
    let config = config(state.path());
    let (events, _) = events::channel();
    let backup = Arc::new(BackupServer::from_config(&config, events).unwrap());
    backup.open_spool().unwrap();
    hold(
        &backup,
        &config,
        &["a@neighbour.test", "b@neighbour.test", "c@other.test"],
    )
    .await;
    let port = odmr(backup.clone()).await;
    let neighbour = Neighbour::new("neighbour");

    // Act
    let outcomes = dequeue::dequeue(
        &server(port, "neighbour"),
        &["neighbour.test".to_string()],
        &neighbour.ctx,
    )
    .await;
    let again = dequeue::dequeue(
        &server(port, "neighbour"),
        &["neighbour.test".to_string()],
        &neighbour.ctx,
    )
    .await;

    // Assert
    assert_eq!(outcomes[0].code, Some(250), "{outcomes:?}");
    assert_eq!(outcomes[0].received, Some(2), "{outcomes:?}");
    let got = neighbour.received();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter()
            .all(|m| String::from_utf8_lossy(m).contains("\n.a dot line\n")),
        "dot-stuffing lost (the Maildir keeps LF line ends): {:?}",
        String::from_utf8_lossy(&got[0])
    );
    assert_eq!(again[0].code, Some(453), "{again:?}");
    assert!(backup.held("neighbour.test").unwrap().is_empty());
    assert_eq!(backup.held("other.test").unwrap().len(), 1);
}

#[tokio::test]
async fn a_valid_login_for_another_domain_gets_nothing() {
    // Arrange
    let state = tempfile::tempdir().unwrap();
    let config = config(state.path());
    let (events, _) = events::channel();
    let backup = Arc::new(BackupServer::from_config(&config, events).unwrap());
    backup.open_spool().unwrap();
    hold(&backup, &config, &["a@neighbour.test"]).await;
    let port = odmr(backup.clone()).await;
    let intruder = Neighbour::new("other");

    // Act
    let outcomes = dequeue::dequeue(
        &server(port, "other"),
        &["neighbour.test".to_string()],
        &intruder.ctx,
    )
    .await;

    // Assert
    assert_eq!(outcomes[0].code, Some(450), "{outcomes:?}");
    assert!(intruder.received().is_empty());
    assert_eq!(backup.held("neighbour.test").unwrap().len(), 1);
}

#[tokio::test]
async fn atrn_without_auth_is_530_and_plain_without_tls_is_refused() {
    // Arrange
    let state = tempfile::tempdir().unwrap();
    let config = config(state.path());
    let (events, _) = events::channel();
    let backup = Arc::new(BackupServer::from_config(&config, events).unwrap());
    backup.open_spool().unwrap();
    let port = odmr(backup).await;
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);

    // Act
    w.write_all(b"EHLO x.test\r\nATRN neighbour.test\r\nAUTH PLAIN AG5laWdoYm91cgBw\r\nQUIT\r\n")
        .await
        .unwrap();
    let mut all = String::new();
    while r.read_line(&mut all).await.unwrap() > 0 {}

    // Assert
    assert!(all.contains("250-AUTH SCRAM-SHA-256 CRAM-MD5\r\n"), "{all}");
    assert!(all.contains("250-ATRN"), "{all}");
    assert!(all.contains("\r\n530 5.7.0"), "{all}");
    assert!(all.contains("\r\n538 5.7.11"), "{all}");
    assert!(all.ends_with("221 2.0.0 Bye\r\n"), "{all}");
}

#[tokio::test]
async fn over_starttls_the_turnaround_keeps_tls_and_delivers() {
    use rustls_pki_types::pem::PemObject;
    // Arrange: the ODMR server offers STARTTLS with the inbound certificate (self-signed, made
    // in the state folder); the neighbour pins it and requires TLS.
    let state = tempfile::tempdir().unwrap();
    let config = config(state.path());
    let (events, _) = events::channel();
    let backup = Arc::new(BackupServer::from_config(&config, events).unwrap());
    backup.open_spool().unwrap();
    hold(&backup, &config, &["a@neighbour.test"]).await;
    let tls = postern_engine::smtp_server::tls::server_config(&config).unwrap();
    let cert =
        rustls_pki_types::CertificateDer::pem_file_iter(state.path().join("tls/inbound.pem"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let mut pin = [0u8; 32];
    pin.copy_from_slice(digest.as_ref());
    let secrets = MemoryStore::new();
    secrets.set("neighbour@backup", PASSWORD).unwrap();
    let ctx = Arc::new(OdmrContext {
        backup: backup.clone(),
        tls: Some(tls),
        secrets: Arc::new(secrets),
        idle_timeout: Duration::from_secs(10),
        session_limit: Duration::from_secs(60),
    });
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let (addrs, _tasks) = listener::start(&["127.0.0.1:0".parse().unwrap()], ctx, rx)
        .await
        .unwrap();
    let neighbour = Neighbour::new("neighbour");
    let server = QueueServer {
        tls: TlsMode::Required,
        allow_plaintext_auth: false,
        tls_fingerprint: Some(postern_engine::config::Fingerprint(pin)),
        ..server(addrs[0].port(), "neighbour")
    };

    // Act
    let outcomes = dequeue::dequeue(&server, &["neighbour.test".to_string()], &neighbour.ctx).await;

    // Assert
    assert_eq!(outcomes[0].code, Some(250), "{outcomes:?}");
    assert_eq!(outcomes[0].received, Some(1), "{outcomes:?}");
    let got = neighbour.received();
    assert_eq!(got.len(), 1);
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("with ESMTPS via ODMR"), "{text}");
    drop(_tx);
}
