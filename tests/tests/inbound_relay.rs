//! The inbound listener of `posternd run`, probed from outside with swaks and raw SMTP: it is
//! never an open relay, refuses what it cannot take, stores nothing it refused, and goes on
//! serving.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use postern_tests::harness::smtp_client::Transcript;
use postern_tests::harness::{
    PosternConfig, Posternd, TestMessage, free_addr, posternd, read_maildir,
};

fn start(maildir: &Path) -> (Posternd, SocketAddr) {
    let listen = free_addr();
    // No queuing server answers at this port: `run` reports that and goes on serving.
    let nowhere = SocketAddr::from(([127, 0, 0, 1], postern_tests::harness::free_port()));
    let cfg = PosternConfig::etrn(nowhere, listen, maildir)
        .tls("")
        .queue_option("timeout", "\"2s\"")
        .inbound_option("max_message_size", "\"64K\"")
        .render();
    (Posternd::run(&cfg, listen).unwrap(), listen)
}

fn swaks(server: SocketAddr, args: &[&str]) -> (i32, String) {
    let output = Command::new("swaks")
        .args([
            "--server",
            &server.ip().to_string(),
            "--port",
            &server.port().to_string(),
        ])
        .args(["--from", "sender@example.net", "--timeout", "10"])
        .args(args)
        .output()
        .expect("swaks runs (make test installs it)");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn foreign_recipients_source_routes_and_percent_hacks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_postern, addr) = start(dir.path());

    for rcpt in [
        "victim@elsewhere.test",
        "@office.test:victim@elsewhere.test",
        "victim%elsewhere.test@office.test",
        "elsewhere.test!victim@office.test",
    ] {
        let (code, out) = swaks(addr, &["--to", rcpt, "--quit-after", "RCPT"]);
        // swaks exit 24: no recipient was accepted.
        assert_eq!(code, 24, "{rcpt} was not refused:\n{out}");
        assert!(out.contains("<** 5"), "{rcpt}: expected a 5xx:\n{out}");
    }

    let (code, out) = swaks(addr, &["--to", "user@office.test"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        read_maildir(&dir.path().join("new")).len() + read_maildir(dir.path()).len(),
        1
    );
}

#[test]
fn over_long_lines_oversized_messages_and_garbage_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (mut postern, addr) = start(dir.path());

    let mut s = Transcript::connect(addr).unwrap();
    s.ehlo("isp-queue.test").unwrap();
    let reply = s
        .cmd(&format!("MAIL FROM:<{}@example.net>", "a".repeat(5000)))
        .unwrap();
    assert_eq!(reply.code, 500, "{}", s.transcript());
    s.send_raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n")
        .unwrap();
    assert_eq!(s.read_reply().unwrap().code, 500);
    s.expect("MAIL FROM:<sender@example.net>", 250).unwrap();
    s.expect("RCPT TO:<user@office.test>", 250).unwrap();
    let big = TestMessage::sized(1, 200 * 1024, &["user@office.test"]);
    let reply = s.data(&big.data).unwrap();
    assert_eq!(reply.code, 552, "{}", s.transcript());
    s.quit();

    let (code, out) = swaks(addr, &["--to", "user@office.test"]);
    assert_eq!(code, 0, "still serving after the refusals:\n{out}");
    assert!(postern.is_running());
    assert_eq!(read_maildir(dir.path()).len(), 1);
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn a_bad_config_file_is_reported_with_line_column_and_fix() {
    let output = posternd(
        &["config", "check"],
        "domains = [\"office.test\"]\n\n[[queue_servers]]\nhost = \"isp.test\"\nport = 99999\n\n[inbound]\ndeliver = \"maildir:/tmp/x\"\n",
    )
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("postern.toml:5:8"), "{stderr}");
    assert!(stderr.contains("Fix:"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
}

#[test]
fn sigterm_stops_run_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (postern, _) = start(dir.path());
    let status = postern.stop().unwrap();
    assert!(status.success(), "{status}");
}
