//! Issue 14, the control API: `posternd status|pause|resume|reload|events|fetch` reach the
//! running engine over its local endpoint, `fetch` is carried out by the engine (single flight),
//! nothing answers when no engine runs, and another user cannot connect.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use postern_engine::control::{Envelope, Hello, PROTOCOL_VERSION, Request, Response};
use postern_tests::harness::{
    PosternConfig, Posternd, PostfixQueue, TestMessage, free_addr, posternd_bin, wait_for_maildir,
};
use postern_tests::skip_unless_root;

const WAIT: Duration = Duration::from_secs(60);

fn config(listen: SocketAddr, queue: SocketAddr, dir: &std::path::Path) -> String {
    PosternConfig::etrn(queue, listen, &dir.join("Maildir"))
        .state_dir(&dir.join("state"))
        .queue_option("timeout", "\"5s\"")
        .hostname("office-gw.test")
        .render()
}

/// One request over the control socket as any client would send it: the server's hello, then
/// the reply.
fn raw_request(socket: &std::path::Path, request: &Request) -> Response {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let envelope = Envelope {
        version: PROTOCOL_VERSION,
        request: request.clone(),
    };
    let mut line = serde_json::to_string(&envelope).unwrap();
    line.push('\n');
    stream.write_all(line.as_bytes()).unwrap();
    let mut lines = std::io::BufReader::new(stream).lines();
    let hello: Hello = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(hello.version, PROTOCOL_VERSION);
    serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_command_line_steers_the_running_engine_and_another_user_cannot_connect() {
    // Arrange: an engine whose queue server does not answer (nothing listens there).
    let listen = free_addr();
    let nowhere = free_addr();
    let dir = tempfile::tempdir().unwrap();
    let engine = Posternd::run(&config(listen, nowhere, dir.path()), listen).unwrap();
    engine
        .wait_for_event_field("type", "fetch_finished", WAIT)
        .unwrap();

    // Act and assert: status, as text and JSON.
    let status = engine.cli(&["status"]).unwrap();
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        text(&status).contains("automatic fetching: on"),
        "{}",
        text(&status)
    );
    assert!(
        text(&status).contains(&nowhere.to_string()),
        "{}",
        text(&status)
    );

    let paused = engine.cli(&["pause"]).unwrap();
    assert!(paused.status.success(), "{}", text(&paused));
    engine.wait_for_event_field("type", "paused", WAIT).unwrap();
    let json = engine.cli(&["status", "--json"]).unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["paused"], true, "{value}");

    // events: the stream carries what the engine does next.
    let mut follower = Command::new(posternd_bin())
        .args(["events", "--json", "--config"])
        .arg(engine.config_path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Resume only once the subscription is live, or its event may come before it.
    let stderr = follower.stderr.take().unwrap();
    let said = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .next()
        .unwrap()
        .unwrap();
    assert!(said.contains("Following"), "{said}");
    let resumed = engine.cli(&["resume"]).unwrap();
    assert!(resumed.status.success(), "{}", text(&resumed));
    let stdout = follower.stdout.take().unwrap();
    let first = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .next()
        .unwrap()
        .unwrap();
    follower.kill().unwrap();
    let _ = follower.wait();
    let event: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(event["type"], "resumed", "{first}");

    // Another user cannot even connect to the socket (folder 0700, socket 0600).
    if nix::unistd::getuid().is_root() {
        let socket = postern_engine::control::endpoint_path(engine.config_path());
        let probe = format!(
            "import socket; s = socket.socket(socket.AF_UNIX); s.connect({:?})",
            socket.display().to_string()
        );
        let out = Command::new("su")
            .args(["-s", "/bin/sh", "nobody", "-c"])
            .arg(format!("/usr/bin/python3 -c '{probe}'"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "nobody connected: {}", text(&out));
        assert!(text(&out).contains("Permission denied"), "{}", text(&out));
    }

    // The tray app's own requests (windows, config, secrets, autostart) get a clear refusal
    // from posternd, in the engine's own serde types, and the engine goes on.
    let socket = postern_engine::control::endpoint_path(engine.config_path());
    for request in [
        Request::OpenWindow {
            page: postern_engine::view::Window::Settings,
        },
        Request::LoadConfig,
        Request::SetSecret {
            name: "u@h".into(),
            password: "not-stored".into(),
        },
        Request::Activity,
        Request::Autostart { enable: Some(true) },
    ] {
        let reply = raw_request(&socket, &request);
        let Response::Error { message } = reply else {
            panic!("{request:?} was answered: {reply:?}");
        };
        assert!(message.contains("only the tray app"), "{message}");
        assert!(!message.contains("not-stored"), "{message}");
    }
    let status = engine.cli(&["status"]).unwrap();
    assert!(status.status.success(), "{}", text(&status));

    // When the engine is gone, each command says so in one line.
    let config_path = engine.config_path().to_path_buf();
    engine.stop().unwrap();
    let out = Command::new(posternd_bin())
        .args(["status", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no Postern engine runs"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn fetch_is_carried_out_by_the_running_engine() {
    skip_unless_root!();
    // Arrange: a Postfix queuing server holding mail, an engine that has not asked yet.
    let listen = free_addr();
    let isp = PostfixQueue::start(listen).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Posternd::run(&config(listen, isp.addr(), dir.path()), listen).unwrap();
    engine
        .wait_for_event_field("type", "fetch_finished", WAIT)
        .unwrap();
    let before = engine.events().len();
    isp.queue_messages(&[TestMessage::sized(1, 2_000, &["user@office.test"])])
        .unwrap();

    // Act
    let out = engine.cli(&["fetch"]).unwrap();

    // Assert: the outcome line as before, and the engine did the dequeue (its events show it).
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("office.test: 250"), "{}", text(&out));
    let started_by_engine = engine.events()[before..]
        .iter()
        .any(|e| e["type"] == "fetch_started");
    assert!(started_by_engine, "{:?}", &engine.events()[before..]);
    wait_for_maildir(&dir.path().join("Maildir"), 1, WAIT).unwrap();

    // --standalone connects by itself: the engine sees no new dequeue.
    let before = engine.events().len();
    let own = engine.cli(&["fetch", "--standalone"]).unwrap();
    assert!(own.status.success(), "{}", text(&own));
    assert!(
        !engine.events()[before..]
            .iter()
            .any(|e| e["type"] == "fetch_started")
    );
}
