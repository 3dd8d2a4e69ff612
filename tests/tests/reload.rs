//! `posternd run` reloads its config file on SIGHUP: the next message lands where the new file
//! says, and a broken file is reported and changes nothing.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use postern_tests::harness::{
    PosternConfig, Posternd, TestMessage, free_addr, free_port, read_maildir, send,
};

const WAIT: Duration = Duration::from_secs(20);

fn config(listen: SocketAddr, maildir: &Path, queue_port: u16) -> String {
    // No queuing server answers at `queue_port`: `run` says so and goes on serving.
    let queue = SocketAddr::from(([127, 0, 0, 1], queue_port));
    PosternConfig::etrn(queue, listen, maildir)
        .tls("")
        .protocol("")
        .queue_option("timeout", "\"2s\"")
        .render()
}

fn hangup(daemon: &Posternd) {
    kill(Pid::from_raw(daemon.pid() as i32), Signal::SIGHUP).unwrap();
}

fn deliver(addr: SocketAddr, i: usize) {
    let reply = send(addr, &TestMessage::sized(i, 1_000, &["user@office.test"])).unwrap();
    assert_eq!(reply.code, 250, "{reply:?}");
}

#[test]
fn sighup_reloads_the_config_file_and_a_broken_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    let (listen, queue_port) = (free_addr(), free_port());
    let mut daemon = Posternd::run(&config(listen, &first, queue_port), listen).unwrap();
    deliver(listen, 1);

    std::fs::write(daemon.config_path(), config(listen, &second, queue_port)).unwrap();
    hangup(&daemon);
    let reloaded = daemon
        .wait_for_event_field("type", "config_reloaded", WAIT)
        .unwrap();
    deliver(listen, 2);
    let broken = config(listen, &first, queue_port).replace("port = ", "port = \"");
    std::fs::write(daemon.config_path(), &broken).unwrap();
    hangup(&daemon);
    let refused = daemon
        .wait_for_event(
            |e| {
                e["type"] == "warning"
                    && e["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("not reloaded"))
            },
            WAIT,
        )
        .unwrap();
    deliver(listen, 3);

    assert_eq!(read_maildir(&first).len(), 1);
    assert_eq!(read_maildir(&second).len(), 2);
    let changes = reloaded["changes"].to_string();
    assert!(changes.contains("delivering to maildir:"), "{changes}");
    let message = refused["message"].as_str().unwrap();
    // The loader's own report: file, line:column, and the fix.
    let path = daemon.config_path().display().to_string();
    let line = broken.lines().position(|l| l.starts_with("port")).unwrap() + 1;
    assert!(message.contains(&format!("{path}:{line}:")), "{message}");
    assert!(message.contains("Fix:"), "{message}");
    assert!(daemon.is_running());
    assert!(
        daemon
            .log_text()
            .contains("the configuration was not reloaded"),
        "{}",
        daemon.log_text()
    );
}
