#![allow(clippy::unwrap_used)] // test code: a panic is the failure report
//! Reloading a running engine over real sockets on 127.0.0.1: the listener keeps or moves its
//! sockets, the delivery target switches for new sessions, and a reload that cannot bind changes
//! nothing.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use postern_engine::api::{self, Deps, EngineHandle, ReloadError};
use postern_engine::config::Config;
use postern_engine::events::{self, Event};
use postern_engine::link::LinkMonitor;
use postern_engine::secrets::MemoryStore;
use postern_engine::smtp_server::RebindError;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A config whose queue server never answers (the link stays unknown, so nothing dequeues).
fn config(listen: &str, maildir: &Path) -> Config {
    let text = format!(
        r#"domains = ["office.test"]
state_dir = "{state}"

[[queue_servers]]
host = "127.0.0.1"
port = 9

[inbound]
listen = ["{listen}"]
deliver = "maildir:{}"
hostname = "office-gw.test"

[link]
refetch_every = "0"
"#,
        maildir.display(),
        state = maildir.with_extension("state").display(),
    );
    Config::parse(&text, Path::new("test.toml")).unwrap()
}

/// A port nobody listens on now (bound and released).
fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn start(config: Config) -> (EngineHandle, tokio::sync::broadcast::Receiver<Event>) {
    let (events, rx) = events::channel();
    // A manual link that never reports: no dequeue interferes.
    let (_, monitor) = LinkMonitor::manual();
    let deps = Deps {
        secrets: std::sync::Arc::new(MemoryStore::new()),
    };
    let handle = api::start_with_link(config, deps, events, monitor)
        .await
        .unwrap();
    (handle, rx)
}

/// A minimal SMTP client: one reply per command.
struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .unwrap()
            .unwrap();
        let (r, w) = stream.into_split();
        let mut c = Client {
            reader: BufReader::new(r),
            writer: w,
        };
        c.expect("220").await;
        c
    }

    async fn expect(&mut self, code: &str) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(TIMEOUT, self.reader.read_line(&mut line))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed while waiting for {code}; got {reply:?}");
            reply.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') {
                assert!(reply.starts_with(code), "expected {code}, got {reply:?}");
                return reply;
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

    /// EHLO .. DATA .. QUIT for one message to user@office.test.
    async fn send_message(mut self, subject: &str) {
        self.cmd("EHLO isp-queue.test", "250").await;
        self.cmd("MAIL FROM:<sender@example.net>", "250").await;
        self.cmd("RCPT TO:<user@office.test>", "250").await;
        self.cmd("DATA", "354").await;
        let body = format!("Subject: {subject}\r\n\r\nHello.\r\n.");
        self.cmd(&body, "250").await;
        self.cmd("QUIT", "221").await;
    }
}

fn subjects(maildir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter_map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_reload_with_the_same_listen_keeps_the_socket_and_an_open_session_completes() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let (engine, _events) = start(config("127.0.0.1:0", &maildir)).await;
    let addr = engine.local_addrs[0];
    let mut open = Client::connect(addr).await;
    open.cmd("EHLO isp-queue.test", "250").await;
    let mut changed = config("127.0.0.1:0", &maildir);
    changed.link.refetch_every = Duration::from_secs(600);

    let reloaded = engine.reload(changed).await.unwrap();
    open.cmd("MAIL FROM:<sender@example.net>", "250").await;
    open.cmd("RCPT TO:<user@office.test>", "250").await;
    open.cmd("DATA", "354").await;
    open.cmd("Subject: during\r\n\r\nHello.\r\n.", "250").await;
    open.cmd("QUIT", "221").await;
    Client::connect(addr).await.send_message("after").await;

    assert_eq!(reloaded.listening, vec![addr]);
    assert_eq!(reloaded.changes, vec!["refetch every 10m".to_string()]);
    assert_eq!(subjects(&maildir), vec!["after", "during"]);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_reload_to_a_new_port_opens_it_and_closes_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let (engine, mut events) = start(config("127.0.0.1:0", &maildir)).await;
    let old = engine.local_addrs[0];
    let new = free_addr();

    let reloaded = engine
        .reload(config(&new.to_string(), &maildir))
        .await
        .unwrap();
    let refused = TcpStream::connect(old).await;
    Client::connect(new).await.send_message("moved").await;

    assert_eq!(reloaded.listening, vec![new]);
    assert_eq!(
        refused.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    assert_eq!(subjects(&maildir), vec!["moved"]);
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert!(
        seen.contains(&Event::Listening {
            addresses: vec![new.to_string()]
        }),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::ConfigReloaded { changes } if changes[0].starts_with("listening on"))),
        "{seen:?}"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn after_a_reload_to_a_new_maildir_the_next_message_lands_there() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let (engine, _events) = start(config("127.0.0.1:0", &first)).await;
    let addr = engine.local_addrs[0];
    Client::connect(addr).await.send_message("one").await;

    let reloaded = engine.reload(config("127.0.0.1:0", &second)).await.unwrap();
    Client::connect(addr).await.send_message("two").await;

    assert_eq!(
        reloaded.changes,
        vec![format!(
            "delivering to maildir:{} (was maildir:{})",
            second.display(),
            first.display()
        )]
    );
    assert_eq!(subjects(&first), vec!["one"]);
    assert_eq!(subjects(&second), vec!["two"]);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_reload_whose_address_cannot_be_bound_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let (engine, mut events) = start(config("127.0.0.1:0", &first)).await;
    let addr = engine.local_addrs[0];
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();

    let result = engine.reload(config(&busy.to_string(), &second)).await;
    Client::connect(addr).await.send_message("still here").await;

    let Err(ReloadError::Listen(RebindError::Listen(error))) = &result else {
        panic!("not a listen error: {result:?}");
    };
    assert_eq!(error.addr, busy);
    let message = result.as_ref().unwrap_err().to_string();
    assert!(
        message.contains(&format!("cannot listen on {busy}")),
        "{message}"
    );
    assert!(message.contains("choose another port"), "{message}");
    assert!(
        message.contains("old configuration stays in force"),
        "{message}"
    );
    assert_eq!(subjects(&first), vec!["still here"]);
    assert!(!second.exists());
    let mut warned = false;
    while let Ok(event) = events.try_recv() {
        assert!(!matches!(event, Event::ConfigReloaded { .. }), "{event:?}");
        warned |=
            matches!(event, Event::Warning { ref message, .. } if message.contains("not reloaded"));
    }
    assert!(warned);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_reload_whose_maildir_cannot_be_created_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "not a folder").unwrap();
    let (engine, _events) = start(config("127.0.0.1:0", &first)).await;
    let addr = engine.local_addrs[0];
    let new = free_addr();

    let result = engine
        .reload(config(&new.to_string(), &blocker.join("Maildir")))
        .await;
    Client::connect(addr).await.send_message("kept").await;

    assert!(
        matches!(result, Err(ReloadError::Delivery(_))),
        "{result:?}"
    );
    assert_eq!(
        TcpStream::connect(new).await.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    assert_eq!(subjects(&first), vec!["kept"]);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_reload_command_reports_through_events() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let (engine, mut events) = start(config("127.0.0.1:0", &maildir)).await;
    let mut changed = config("127.0.0.1:0", &maildir);
    changed.domains.push("branch.test".into());

    engine
        .commands
        .send(api::Command::Reload(Box::new(changed)))
        .await
        .unwrap();
    let reloaded = tokio::time::timeout(TIMEOUT, async {
        loop {
            if let Event::ConfigReloaded { changes } = events.recv().await.unwrap() {
                return changes;
            }
        }
    })
    .await
    .unwrap();

    assert_eq!(
        reloaded,
        vec!["domains: office.test, branch.test (were office.test)".to_string()]
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn new_limits_apply_to_new_sessions_and_open_ones_keep_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let (engine, _events) = start(config("127.0.0.1:0", &maildir)).await;
    let addr = engine.local_addrs[0];
    let mut open = Client::connect(addr).await;
    let mut smaller = config("127.0.0.1:0", &maildir);
    smaller.inbound.max_message_size = 100 * 1024;

    engine.reload(smaller).await.unwrap();
    let old_limit = open.cmd("EHLO isp-queue.test", "250").await;
    let mut new = Client::connect(addr).await;
    let new_limit = new.cmd("EHLO isp-queue.test", "250").await;

    assert!(old_limit.contains("SIZE 52428800"), "{old_limit}");
    assert!(new_limit.contains("SIZE 102400"), "{new_limit}");
    engine.shutdown().await;
}
