//! Issue 16 end to end: Postern as the backup MX (queuing server) of a neighbour. Real peers
//! ask for the held mail: fetchmail `--protocol ETRN`, the reference client, and plain SMTP
//! clients from other addresses; the mail goes to the neighbour's own server (a private
//! Postfix, or smtp-sink via the neighbour's MX records in dnsmasq), never to the asker.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use postern_tests::harness::{
    Dnsmasq, PosternConfig, Posternd, PostfixQueue, SmtpSink, TestMessage, Transcript,
    digest_without_received, free_addr, free_port, posternd_with, require_session_bus, send_all,
};
use postern_tests::skip_unless_root;

const WAIT: Duration = Duration::from_secs(30);
const NEIGHBOUR: &str = "neighbour.test";

/// The office `office.test` (its own queue server is a closed port: nothing to fetch),
/// listening on `listen`, named backup.office.test.
fn office(listen: SocketAddr, state: &Path) -> PosternConfig {
    let nobody = SocketAddr::from(([127, 0, 0, 1], free_port()));
    PosternConfig::etrn(nobody, listen, &state.join("Maildir"))
        .state_dir(state)
        .hostname("backup.office.test")
}

fn held_messages(n: usize) -> Vec<TestMessage> {
    (0..n)
        .map(|i| TestMessage::sized(i, 2048 + i * 1500, &["bob@neighbour.test"]))
        .collect()
}

fn sorted_digests<'a>(messages: impl Iterator<Item = &'a [u8]>) -> Vec<[u8; 32]> {
    let mut d: Vec<_> = messages.map(digest_without_received).collect();
    d.sort();
    d
}

/// LF line ends (as smtp-sink dumps) back to CRLF, to compare with what was sent.
fn crlf(lf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lf.len() + lf.len() / 40);
    for &b in lf {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn fetchmail_etrn(port: u16, domain: &str) -> (i32, String) {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("fetchmail")
        .args([
            "-f",
            "/dev/null",
            "--protocol",
            "ETRN",
            "--fetchdomains",
            domain,
        ])
        .args([
            "-v",
            "--nosyslog",
            "--service",
            &port.to_string(),
            "--pidfile",
        ])
        .arg(home.path().join("fetchmail.pid"))
        .arg("127.0.0.1")
        .env("HOME", home.path())
        .env("FETCHMAILHOME", home.path())
        .output()
        .expect("fetchmail runs (apt-get install fetchmail)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn held_status(postern: &Posternd) -> serde_json::Value {
    let status: serde_json::Value =
        serde_json::from_str(&postern.cli_stdout(&["status", "--json"]).unwrap()).unwrap();
    status["backup"][0].clone()
}

fn release_finished(postern: &Posternd) -> serde_json::Value {
    postern
        .wait_for_event_field("type", "backup_release_finished", WAIT)
        .unwrap()
}

#[test]
fn fetchmail_etrn_releases_every_held_message_to_the_postfix_primary_once_and_byte_identical() {
    skip_unless_root!();
    // Arrange: the neighbour's primary MX is a Postfix that passes neighbour.test on to its
    // mailboxes (smtp-sink).
    let mailboxes = SmtpSink::start().unwrap();
    let primary = PostfixQueue::office(mailboxes.addr())
        .relay_domains(&[NEIGHBOUR])
        .start()
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let cfg = office(listen, state.path())
        .backup_for(
            NEIGHBOUR,
            &format!("smtp://{}", primary.addr()),
            &["etrn"],
            &[],
        )
        .render();
    let postern = Posternd::run(&cfg, listen).unwrap();
    let sent = held_messages(12);
    for reply in send_all(listen, &sent).unwrap() {
        assert_eq!(reply.code, 250, "{reply:?}");
    }
    assert!(mailboxes.messages().is_empty(), "held mail left early");
    let before = held_status(&postern);
    let listed = postern.cli_stdout(&["queue", "list"]).unwrap();

    // Act
    let (code, output) = fetchmail_etrn(listen.port(), NEIGHBOUR);
    let finished = release_finished(&postern);
    let arrived = mailboxes.wait_for_messages(sent.len(), WAIT).unwrap();
    let (again_code, again) = fetchmail_etrn(listen.port(), NEIGHBOUR);
    let after = held_status(&postern);
    let text = postern.cli_stdout(&["status"]).unwrap();

    // Assert
    assert!(
        output.contains("253 2.0.0 12 messages pending"),
        "fetchmail {code}:\n{output}"
    );
    assert_eq!(finished["delivered"], 12, "{finished}");
    assert_eq!(finished["deferred"], 0, "{finished}");
    assert_eq!(arrived.len(), 12);
    let got: Vec<Vec<u8>> = arrived.iter().map(|m| crlf(&m.data)).collect();
    assert_eq!(
        sorted_digests(got.iter().map(Vec::as_slice)),
        sorted_digests(sent.iter().map(|m| m.data.as_slice()))
    );
    assert!(again.contains("251"), "fetchmail {again_code}:\n{again}");
    assert_eq!(before["domain"], NEIGHBOUR, "{before}");
    assert_eq!(before["held"], 12, "{before}");
    assert!(before["last_fetch"].is_null(), "{before}");
    assert!(before["bytes"].as_u64().is_some_and(|b| b > 0), "{before}");
    assert!(
        before["oldest"].is_string() && before["returns_at"].is_string(),
        "{before}"
    );
    assert_eq!(before["needs_attention"], false, "{before}");
    assert_eq!(after["held"], 0, "{after}");
    assert!(after["last_fetch"].is_string(), "{after}");
    assert!(
        after["last_fetch_by"]
            .as_str()
            .is_some_and(|by| by.starts_with("ETRN from 127.")),
        "{after}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("backup MX for neighbour.test: "));
    assert!(
        line.is_some_and(|l| l.contains(": nothing held, fetched ") && l.ends_with("(ETRN)")),
        "{text}"
    );
    assert!(listed.contains("The outbound queue is empty."), "{listed}");
    assert!(
        listed.contains("Held for neighbours") && listed.contains("neighbour.test: 12 message(s)"),
        "{listed}"
    );
    postern.stop().unwrap();
}

#[test]
fn etrn_from_any_client_delivers_only_to_the_neighbour_s_mx_never_to_the_asker() {
    skip_unless_root!();
    // Arrange: neighbour.test's MX records put mx1 (127.0.0.1, preference 10) before us
    // (backup.office.test, 20); the asking client listens on the same port at its own address.
    let port = free_port();
    let primary = SmtpSink::start_at(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    let asker_ip = [127, 0, 0, 77];
    let asker_sink = SmtpSink::start_at(SocketAddr::from((asker_ip, port))).unwrap();
    let dns = Dnsmasq::builder()
        .mx(NEIGHBOUR, "mx1.neighbour.test", 10)
        .mx(NEIGHBOUR, "backup.office.test", 20)
        .host("mx1.neighbour.test", "127.0.0.1")
        .host("backup.office.test", "127.0.0.2")
        .start()
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let cfg = office(listen, state.path())
        .nameserver(dns.addr())
        .backup_for(NEIGHBOUR, "mx", &["etrn"], &[])
        .append(&format!("[backup]\nmx_port = {port}\n"))
        .render();
    let postern = Posternd::run(&cfg, listen).unwrap();
    let sent = held_messages(3);
    send_all(listen, &sent).unwrap();

    // Act
    let mut asker = Transcript::connect_from(
        SocketAddr::from((asker_ip, 0)),
        listen,
        Duration::from_secs(10),
    )
    .unwrap();
    asker.ehlo("asker.test").unwrap();
    let not_here = asker.cmd("ETRN office.test").unwrap();
    let started = asker.cmd("ETRN neighbour.test").unwrap();
    let finished = release_finished(&postern);
    let arrived = primary.wait_for_messages(3, WAIT).unwrap();

    // Assert
    assert_eq!(not_here.code, 459, "{not_here:?}");
    assert_eq!(started.code, 253, "{started:?}");
    assert_eq!(finished["delivered"], 3, "{finished}");
    assert_eq!(arrived.len(), 3);
    assert!(asker_sink.messages().is_empty());
    postern.stop().unwrap();
}

#[test]
fn held_mail_for_a_domain_no_longer_backed_up_goes_back_to_the_sender_not_lost() {
    skip_unless_root!();
    // Arrange: mail held for neighbour.test, then the office drops the [[backup_for]] and
    // restarts with an outbound relay whose smarthost is smtp-sink.
    let smarthost = SmtpSink::start().unwrap();
    let state = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let base = office(listen, state.path());
    let with_backup = base
        .clone()
        .backup_for(NEIGHBOUR, "smtp://127.0.0.1:9", &["etrn"], &[])
        .render();
    let postern = Posternd::run(&with_backup, listen).unwrap();
    let sent = held_messages(2);
    send_all(listen, &sent).unwrap();
    postern.stop().unwrap();
    let without = base
        .probe(&smarthost.addr().to_string())
        .append(&format!(
            "[outbound]\nlisten = [\"{}\"]\nsmarthost = \"smtp://{}\"\nsmarthost_tls = \"off\"\n",
            free_addr(),
            smarthost.addr()
        ))
        .render();

    // Act
    let postern = Posternd::run(&without, listen).unwrap();
    let bounced = postern
        .wait_for_event_field("type", "backup_bounced", WAIT)
        .unwrap();
    let dsns = smarthost.wait_for_messages(2, WAIT).unwrap();

    // Assert
    assert_eq!(bounced["dsn_sent"], true, "{bounced}");
    for dsn in &dsns {
        let text = String::from_utf8_lossy(&dsn.data);
        assert!(text.contains("multipart/report"), "{text}");
        assert!(text.contains("no longer backs up neighbour.test"), "{text}");
    }
    let mut to: Vec<String> = dsns.iter().flat_map(|d| d.recipients()).collect();
    to.sort();
    let mut senders: Vec<String> = sent.iter().map(|m| m.from.clone()).collect();
    senders.sort();
    assert_eq!(to, senders);
    postern.stop().unwrap();
}

/// `fetchmail --protocol ODMR` once (CRAM-MD5, no STARTTLS: fetchmail has neither more), the
/// turned-around session piped into `smtphost`.
fn fetchmail_odmr(
    odmr: SocketAddr,
    smtphost: SocketAddr,
    user: &str,
    password: &str,
) -> (i32, String) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let home = tempfile::tempdir().unwrap();
    let rc = home.path().join("fetchmailrc");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&rc)
        .unwrap();
    writeln!(
        file,
        "poll 127.0.0.1 protocol ODMR service {} user \"{user}\" password \"{password}\" \
         fetchdomains {NEIGHBOUR} smtphost \"127.0.0.1/{}\"",
        odmr.port(),
        smtphost.port()
    )
    .unwrap();
    drop(file);
    let out = std::process::Command::new("timeout")
        .arg("60")
        .arg("fetchmail")
        .arg("-f")
        .arg(&rc)
        .args(["-v", "--nosyslog", "--timeout", "20", "--pidfile"])
        .arg(home.path().join("fetchmail.pid"))
        .env("HOME", home.path())
        .env("FETCHMAILHOME", home.path())
        .output()
        .expect("fetchmail runs (apt-get install fetchmail)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn fetchmail_odmr_gets_every_held_message_into_smtp_sink_and_another_login_gets_nothing() {
    skip_unless_root!();
    if !require_session_bus() {
        return;
    }
    // Arrange: neighbour.test is released by ATRN to the login "neighbour"; other.test to
    // "other", whose valid login must not get neighbour.test's mail.
    let sink = SmtpSink::start().unwrap();
    let state = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let odmr = free_addr();
    let cfg = office(listen, state.path())
        .backup_for(NEIGHBOUR, "mx", &["atrn"], &[("username", "\"neighbour\"")])
        .backup_for("other.test", "mx", &["atrn"], &[("username", "\"other\"")])
        .append(&format!("[backup]\nodmr_listen = [\"{odmr}\"]\n"))
        .render();
    for (name, password) in [
        ("neighbour@backup", "pw-neighbour"),
        ("other@backup", "pw-other"),
    ] {
        let stored = posternd_with(
            &["secret", "set", name],
            None,
            password.as_bytes(),
            &[],
            WAIT,
        )
        .unwrap();
        assert!(
            stored.status.success(),
            "{}",
            String::from_utf8_lossy(&stored.stderr)
        );
    }
    let postern = Posternd::builder(&cfg).wait_for(odmr).start().unwrap();
    let sent = held_messages(10);
    send_all(listen, &sent).unwrap();

    // Act
    let (intruder_code, intruder) = fetchmail_odmr(odmr, sink.addr(), "other", "pw-other");
    let intruder_got = sink.messages().len();
    let (code, output) = fetchmail_odmr(odmr, sink.addr(), "neighbour", "pw-neighbour");
    let arrived = sink
        .wait_for_messages(sent.len(), WAIT)
        .unwrap_or_else(|e| panic!("{e}\nfetchmail {code}:\n{output}\n{}", postern.log_text()));
    let finished = release_finished(&postern);
    let (_, again) = fetchmail_odmr(odmr, sink.addr(), "neighbour", "pw-neighbour");
    let fetched = held_status(&postern);

    // Assert
    assert!(
        intruder.contains("450"),
        "fetchmail {intruder_code}:\n{intruder}"
    );
    assert_eq!(intruder_got, 0);
    assert!(
        output.contains("250 2.0.0 OK, 10 messages"),
        "fetchmail {code}:\n{output}"
    );
    assert_eq!(finished["delivered"], 10, "{finished}");
    assert_eq!(arrived.len(), 10);
    let got: Vec<Vec<u8>> = arrived.iter().map(|m| crlf(&m.data)).collect();
    assert_eq!(
        sorted_digests(got.iter().map(Vec::as_slice)),
        sorted_digests(sent.iter().map(|m| m.data.as_slice()))
    );
    assert!(again.contains("453"), "{again}");
    assert_eq!(fetched["domain"], NEIGHBOUR, "{fetched}");
    assert_eq!(fetched["last_fetch_by"], "ATRN by neighbour", "{fetched}");
    postern.stop().unwrap();
}
