//! Issue 15: STARTTLS on the submission listener, with real clients. swaks submits over
//! STARTTLS and gets the certificate Postern generated for `[inbound]`; the message is spooled
//! and goes out through a private Postfix smarthost to smtp-sink, its `Received:` line saying
//! `with ESMTPS` (RFC 3848). Plaintext pipelined behind STARTTLS (CVE-2011-0411) is discarded
//! on this listener as on the inbound one.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use postern_tests::harness::smtp_client::Transcript;
use postern_tests::harness::{
    PosternConfig, Posternd, PostfixQueue, SmtpSink, TestMessage, TestPki, free_addr, poll_until,
    wait_for_port,
};
use postern_tests::skip_unless_root;

const WAIT: Duration = Duration::from_secs(60);

/// Inbound on `listen` into `maildir`, submission on `submit` for 127.0.0.1 only, relaying
/// through `smarthost` (no TLS towards it: this file is about the listener's side); the link
/// is up exactly when `probe` answers.
fn config(
    state: &Path,
    listen: SocketAddr,
    submit: SocketAddr,
    maildir: &Path,
    smarthost: SocketAddr,
    probe: SocketAddr,
) -> PosternConfig {
    PosternConfig::etrn(free_addr(), listen, maildir)
        .state_dir(state)
        .hostname("office-gw.test")
        .queue_option("timeout", "\"2s\"")
        .probe(&probe.to_string())
        .append(&format!(
            "[outbound]\nlisten = [\"{submit}\"]\nallow = [\"127.0.0.1/32\"]\n\
             smarthost = \"smtp://{smarthost}\"\nsmarthost_tls = \"off\"\n"
        ))
}

/// The base64 body of the first PEM certificate in `pem`, without line breaks.
fn certificate_body(pem: &str) -> String {
    let start = pem.find("-----BEGIN CERTIFICATE-----").unwrap() + 27;
    let end = pem[start..].find("-----END CERTIFICATE-----").unwrap() + start;
    pem[start..end].split_whitespace().collect()
}

#[test]
fn swaks_submits_over_starttls_with_the_generated_certificate_and_the_smarthost_relays_it() {
    skip_unless_root!();
    let sink = SmtpSink::start().unwrap();
    let smarthost = PostfixQueue::builder()
        .relay_domains(&[])
        .deliver_at_once()
        .hostname("smarthost.test")
        .route("example.net", sink.addr())
        .start()
        .unwrap();
    let (state, maildir, peer) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (listen, submit) = (free_addr(), free_addr());
    let cfg = config(
        state.path(),
        listen,
        submit,
        maildir.path(),
        smarthost.addr(),
        smarthost.addr(),
    )
    .render();
    let postern = Posternd::run(&cfg, listen).unwrap();
    wait_for_port(submit, WAIT).unwrap();
    let peer_cert = peer.path().join("peer.pem");

    let swaks = Command::new("swaks")
        .args([
            "--server",
            "127.0.0.1",
            "--port",
            &submit.port().to_string(),
        ])
        .args(["--ehlo", "pc.office.test", "--timeout", "20", "--tls"])
        .args(["--tls-get-peer-cert", peer_cert.to_str().unwrap()])
        .args(["--from", "boss@office.test", "--to", "far@example.net"])
        .args(["--header", "Subject: sent over STARTTLS"])
        .args([
            "--body",
            "Encrypted on the LAN.\n.a line with a leading dot\n",
        ])
        .output()
        .expect("swaks runs (make test installs it with libnet-ssleay-perl for --tls)");
    let transcript = String::from_utf8_lossy(&swaks.stdout).into_owned();
    let queued = postern
        .wait_for_event(|e| e["type"] == "outbound_queued", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n--- swaks ---\n{transcript}"));
    let delivered = postern
        .wait_for_event(|e| e["type"] == "outbound_delivered", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n--- posternd ---\n{}", postern.log_text()));
    let at_sink = sink.wait_for_messages(1, WAIT).unwrap();
    smarthost
        .wait_for_log("status=sent", WAIT)
        .unwrap_or_else(|e| panic!("{e}\n{}", smarthost.log_text()));
    let generated = std::fs::read_to_string(state.path().join("tls/inbound.pem")).unwrap();
    let shown = std::fs::read_to_string(&peer_cert).unwrap();
    let spool = state.path().join("outbound");
    let left = poll_until("the delivered message to leave the spool", WAIT, || {
        let names: Vec<_> = std::fs::read_dir(&spool)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.is_empty().then_some(names)
    });

    assert_eq!(swaks.status.code(), Some(0), "{transcript}");
    assert!(transcript.contains("TLS started"), "{transcript}");
    assert!(
        transcript.contains("<~  250"),
        "the 250 came over TLS: {transcript}"
    );
    assert_eq!(
        certificate_body(&shown),
        certificate_body(&generated),
        "swaks was shown the generated tls/inbound.pem"
    );
    assert_eq!(queued["from"], "boss@office.test", "{queued}");
    assert_eq!(queued["id"], delivered["id"], "{delivered}");
    assert_eq!(at_sink[0].recipients(), ["far@example.net"]);
    let text = String::from_utf8_lossy(&at_sink[0].data);
    let ours = text
        .split("\nReceived: ")
        .find(|r| r.contains("(Postern)"))
        .unwrap_or_else(|| panic!("no Received: line of Postern's: {text}"));
    assert!(
        ours.starts_with("from pc.office.test ([127.0.0.1])")
            && ours.contains("by office-gw.test (Postern) with ESMTPS id"),
        "RFC 3848: ESMTPS for a session under STARTTLS: {ours}"
    );
    // smtp-sink stores the message as it was meant: unstuffed, with LF line ends.
    assert!(text.contains("\n.a line with a leading dot\n"), "{text}");
    assert!(left.is_ok(), "the spool still holds {left:?}");
    postern.stop().unwrap();
}

#[test]
fn plaintext_pipelined_behind_starttls_on_the_submission_listener_is_discarded() {
    let pki = TestPki::new(&["127.0.0.1"]).unwrap();
    let (state, maildir, certs) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    pki.write_to(certs.path()).unwrap();
    let (listen, submit, down) = (free_addr(), free_addr(), free_addr());
    let quoted = |name: &str| format!("{:?}", certs.path().join(name).display().to_string());
    let cfg = config(state.path(), listen, submit, maildir.path(), down, down)
        .inbound_option("tls_cert", &quoted("cert.pem"))
        .inbound_option("tls_key", &quoted("key.pem"))
        .render();
    let postern = Posternd::run(&cfg, listen).unwrap();
    wait_for_port(submit, WAIT).unwrap();

    let mut s = Transcript::connect(submit).unwrap();
    let before = s.ehlo("pc.office.test").unwrap();
    // CVE-2011-0411: the injected RSET travels in the same packet as STARTTLS.
    s.send_raw(b"STARTTLS\r\nRSET\r\n").unwrap();
    s.expect_reply(220).unwrap();
    s.handshake("127.0.0.1", &pki.ca_pem).unwrap();
    let after = s.cmd("EHLO pc.office.test").unwrap();
    let message = TestMessage::sized(1, 4_000, &["far@example.net"]);
    s.expect("MAIL FROM:<boss@office.test>", 250).unwrap();
    s.expect("RCPT TO:<far@example.net>", 250).unwrap();
    let accepted = s.data(&message.data).unwrap();
    s.expect("QUIT", 221).unwrap();
    let queued = postern
        .wait_for_event(|e| e["type"] == "outbound_queued", WAIT)
        .unwrap();
    let id = queued["id"].as_str().unwrap();
    let stored = std::fs::read(state.path().join(format!("outbound/{id}.msg"))).unwrap();
    let stored = String::from_utf8_lossy(&stored);

    assert!(before.has_keyword("STARTTLS"), "{before}");
    // The first reply over TLS must be the EHLO's (several lines), not one for the RSET.
    assert!(
        after.code == 250 && after.lines.len() > 1 && after.lines[0].contains("office-gw.test"),
        "a reply to the injected RSET arrived first: {after}\n{}",
        s.transcript()
    );
    assert!(!after.has_keyword("STARTTLS"), "offered again: {after}");
    assert_eq!(accepted.code, 250, "{}", s.transcript());
    assert!(
        postern
            .log_text()
            .contains("discarded plaintext sent after STARTTLS"),
        "{}",
        postern.log_text()
    );
    assert!(
        stored.starts_with("Received: from pc.office.test ([127.0.0.1])")
            && stored.contains("(Postern) with ESMTPS id"),
        "{stored}"
    );
    postern.stop().unwrap();
}
