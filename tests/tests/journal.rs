//! Issue 17, the mail-flow journal: what the engine did survives a restart, and `posternd log`
//! reads it through the running engine and, when none runs, from the journal file.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use postern_tests::harness::{
    PosternConfig, Posternd, TestMessage, free_addr, posternd_bin, send, wait_for_maildir,
};

const WAIT: Duration = Duration::from_secs(60);

fn log(config: &Path, args: &[&str]) -> Output {
    Command::new(posternd_bin())
        .arg("log")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("POSTERN_CONFIG")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "posternd log failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_history_survives_a_restart_and_posternd_log_reads_it_with_or_without_an_engine() {
    // Arrange: an engine whose queuing server does not answer, and one message received.
    let dir = tempfile::tempdir().unwrap();
    let (listen, nowhere) = (free_addr(), free_addr());
    let maildir = dir.path().join("Maildir");
    // `state_dir` is a top-level key, so it goes before the first table.
    let toml = format!(
        "state_dir = {:?}\n{}",
        dir.path().join("state").display().to_string(),
        PosternConfig::etrn(nowhere, listen, &maildir).render()
    );
    let first = Posternd::run(&toml, listen).unwrap();
    first
        .wait_for_event_field("type", "fetch_finished", WAIT)
        .unwrap();
    let message = TestMessage::new(
        "alice@outside.test",
        &["bob@office.test"],
        "Subject: journal\r\n\r\nhello\r\n",
    );
    send(listen, &message).unwrap();
    wait_for_maildir(&maildir, 1, WAIT).unwrap();
    first
        .wait_for_event_field("type", "message_received", WAIT)
        .unwrap();
    let config_path = dir.path().join("postern.toml");
    std::fs::write(&config_path, &toml).unwrap();
    first.stop().unwrap();

    // Act: a second engine on the same state folder, asked through the control API.
    let second = Posternd::run(&toml, listen).unwrap();
    second
        .wait_for_event_field("type", "listening", WAIT)
        .unwrap();
    let through_engine = stdout(&log(second.config_path(), &["--kind", "message"]));
    let json = stdout(&log(second.config_path(), &["--json", "--grep", "ALICE@"]));
    second.stop().unwrap();
    let from_file = stdout(&log(&config_path, &[]));

    // Assert: the first run's message and failed fetch are there, with times and kinds.
    assert!(
        through_engine.contains("message  received from <alice@outside.test> to <bob@office.test>"),
        "{through_engine}"
    );
    assert_eq!(through_engine.lines().count(), 1, "{through_engine}");
    let entry: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(entry["kind"], "message", "{json}");
    assert_eq!(entry["event"]["from"], "alice@outside.test", "{json}");
    assert!(
        from_file.contains("problem") && from_file.contains(&nowhere.to_string()),
        "the failed fetch of the first run: {from_file}"
    );
    assert!(
        from_file.matches("listening on").count() >= 2,
        "both runs: {from_file}"
    );
}
