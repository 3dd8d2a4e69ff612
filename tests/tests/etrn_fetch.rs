//! Issue 2 end to end: `posternd fetch` makes a real Postfix queuing server release held mail
//! into Postern's inbound listener, which stores it in a Maildir (or forwards it), and every
//! error path explains itself.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use postern_tests::harness::sink::{SilentServer, SmtpSink};
use postern_tests::harness::tls::TestPki;
use postern_tests::harness::{
    PosternConfig, Posternd, PostfixQueue, TestMessage, digest_without_received, free_addr,
    free_port, posternd, read_maildir, wait_for_maildir,
};
use postern_tests::skip_unless_root;

const WAIT: Duration = Duration::from_secs(60);

/// `office.test` from one ETRN queuing server at `queue` (TLS as the default, a 5 s timeout),
/// inbound on `listen` into `maildir`.
fn config(queue: SocketAddr, listen: SocketAddr, maildir: &Path) -> PosternConfig {
    PosternConfig::etrn(queue, listen, maildir)
        .tls("")
        .hostname("office-gw.test")
        .queue_option("timeout", "\"5s\"")
}

fn sorted_digests<'a>(messages: impl Iterator<Item = &'a [u8]>) -> Vec<[u8; 32]> {
    let mut d: Vec<_> = messages.map(digest_without_received).collect();
    d.sort();
    d
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Sizes from 1 KB to 1 MB, spread geometrically.
fn sizes(n: usize) -> Vec<usize> {
    (0..n)
        .map(|i| (1024.0 * 1024f64.powf(i as f64 / (n - 1) as f64)) as usize)
        .collect()
}

#[test]
fn fifty_held_messages_land_in_the_maildir_exactly_once_and_byte_identical() {
    skip_unless_root!();
    let listen = free_addr();
    let isp = PostfixQueue::start(listen).unwrap();
    let maildir = tempfile::tempdir().unwrap();
    let md = maildir.path().join("Maildir");
    let cfg = config(isp.addr(), listen, &md).render();
    let postern = Posternd::run(&cfg, listen).unwrap();
    // `run` asks once at start; nothing is held yet.
    postern
        .wait_for_event_field("type", "fetch_finished", WAIT)
        .unwrap();

    let messages: Vec<TestMessage> = sizes(50)
        .into_iter()
        .enumerate()
        .map(|(i, size)| TestMessage::sized(i, size, &["user@office.test"]))
        .collect();
    isp.queue_messages(&messages).unwrap();

    let started = Instant::now();
    let fetch = posternd(&["fetch"], &cfg).unwrap();
    let stored = wait_for_maildir(&md, 50, WAIT).unwrap();
    let elapsed = started.elapsed();
    eprintln!("MEASURED: posternd fetch -> 50th message on disk: {elapsed:?}");

    assert!(fetch.status.success(), "{}", text(&fetch));
    assert!(
        text(&fetch).contains("office.test: 250"),
        "{}",
        text(&fetch)
    );
    isp.wait_for_queue_len(0, WAIT).unwrap();
    // Exactly once: nothing more arrives, and the digests are those sent.
    let stored_again = read_maildir(&md);
    assert_eq!(stored_again.len(), 50);
    assert_eq!(
        sorted_digests(stored.iter().map(Vec::as_slice)),
        sorted_digests(messages.iter().map(|m| m.data.as_slice()))
    );
    assert!(stored.iter().all(|m| m.starts_with(b"Received: from ")));
    assert!(read_dir_len(&md.join("tmp")) == 0);
}

fn read_dir_len(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn forwarding_to_the_office_server_says_250_only_after_it_accepted() {
    skip_unless_root!();
    let office = SmtpSink::start().unwrap();
    let listen = free_addr();
    let isp = PostfixQueue::start(listen).unwrap();
    let cfg = config(isp.addr(), listen, Path::new("/nonexistent"))
        .deliver_smtp(office.addr())
        .render();
    let messages: Vec<TestMessage> = (0..5)
        .map(|i| TestMessage::sized(i, 3000 + i * 5000, &["user@office.test"]))
        .collect();
    isp.queue_messages(&messages).unwrap();

    let _postern = Posternd::run(&cfg, listen).unwrap();
    let received = office.wait_for_messages(5, WAIT).unwrap();
    isp.wait_for_queue_len(0, WAIT).unwrap();

    assert_eq!(
        sorted_digests(received.iter().map(|m| m.data.as_slice())),
        sorted_digests(messages.iter().map(|m| m.data.as_slice()))
    );
}

#[test]
fn an_office_server_that_answers_4xx_makes_postern_answer_451_and_postfix_keeps_the_mail() {
    skip_unless_root!();
    let office = SmtpSink::rejecting_data(4).unwrap();
    let listen = free_addr();
    let isp = PostfixQueue::start(listen).unwrap();
    let cfg = config(isp.addr(), listen, Path::new("/nonexistent"))
        .deliver_smtp(office.addr())
        .render();
    isp.queue_messages(&[TestMessage::sized(1, 2000, &["user@office.test"])])
        .unwrap();

    let postern = Posternd::run(&cfg, listen).unwrap();
    let refused = postern
        .wait_for_event_field("type", "message_refused", WAIT)
        .unwrap();

    assert_eq!(refused["code"], 451, "{refused}");
    isp.wait_for_log("said: 451 4.4.1", WAIT).unwrap();
    assert_eq!(isp.queue_len().unwrap(), 1);
}

/// `posternd fetch` for `domains` from `isp_addr`, with `options` (`key`, TOML value) on the
/// queue server entry.
fn fetch_against(
    isp_addr: SocketAddr,
    domains: &[&str],
    options: &[(&str, &str)],
) -> (bool, String) {
    let maildir = tempfile::tempdir().unwrap();
    let mut cfg = PosternConfig::etrn(isp_addr, free_addr(), maildir.path())
        .tls("")
        .hostname("office-gw.test")
        .domains(domains);
    if !options.iter().any(|(key, _)| *key == "timeout") {
        cfg = cfg.queue_option("timeout", "\"5s\"");
    }
    for (key, value) in options {
        cfg = cfg.queue_option(key, value);
    }
    let output = posternd(&["fetch"], &cfg.render()).unwrap();
    (output.status.success(), text(&output))
}

#[test]
fn a_domain_the_queuing_server_does_not_hold_gets_459_and_the_fix() {
    skip_unless_root!();
    let isp = PostfixQueue::start(free_addr()).unwrap();
    let (ok, out) = fetch_against(isp.addr(), &["office.test", "unknown.test"], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("office.test: 250"), "{out}");
    assert!(out.contains("unknown.test: 459"), "{out}");
    assert!(out.contains("fast_flush_domains"), "{out}");
}

#[test]
fn etrn_refused_by_policy_gets_554_and_the_fix() {
    skip_unless_root!();
    let isp = PostfixQueue::builder()
        .deliver_to(free_addr())
        .etrn_rejected()
        .start()
        .unwrap();
    let (ok, out) = fetch_against(isp.addr(), &["office.test"], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("office.test: 554"), "{out}");
    assert!(out.contains("smtpd_etrn_restrictions"), "{out}");
}

#[test]
fn flush_service_down_gets_458_and_a_retry_note() {
    skip_unless_root!();
    let isp = PostfixQueue::builder()
        .deliver_to(free_addr())
        .flush_down()
        .start()
        .unwrap();
    let (ok, out) = fetch_against(isp.addr(), &["office.test"], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("office.test: 458"), "{out}");
    assert!(out.contains("tries again later"), "{out}");
}

#[test]
fn connection_refused_is_explained() {
    let nothing: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (ok, out) = fetch_against(nothing, &["office.test"], &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("connection refused"), "{out}");
    assert!(out.contains("could not be reached"), "{out}");
}

#[test]
fn a_server_that_never_speaks_fails_after_the_configured_timeout() {
    let silent = SilentServer::start().unwrap();
    let started = Instant::now();
    let (ok, out) = fetch_against(silent.addr(), &["office.test"], &[("timeout", "\"2s\"")]);
    eprintln!(
        "MEASURED: silent server gave up after {:?}",
        started.elapsed()
    );
    assert!(!ok, "{out}");
    assert!(out.contains("did not answer within 2 s"), "{out}");
}

#[test]
fn tls_required_against_a_server_without_starttls_sends_no_etrn() {
    skip_unless_root!();
    let isp = PostfixQueue::start(free_addr()).unwrap();
    let (ok, out) = fetch_against(isp.addr(), &["office.test"], &[("tls", "\"required\"")]);
    assert!(!ok, "{out}");
    assert!(out.contains("does not offer STARTTLS"), "{out}");
    isp.wait_for_log("disconnect from", WAIT).unwrap();
    assert!(!isp.log_text().contains("etrn="), "{}", isp.log_text());
}

#[test]
fn a_self_signed_queuing_server_is_trusted_through_tls_ca_or_a_pinned_fingerprint() {
    skip_unless_root!();
    let pki = TestPki::new(&["127.0.0.1"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path()).unwrap();
    let isp = PostfixQueue::builder()
        .deliver_to(free_addr())
        .with_starttls(&pki.cert_pem, &pki.key_pem)
        .start()
        .unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();

    let (ok, out) = fetch_against(
        isp.addr(),
        &["office.test"],
        &[
            ("tls", "\"required\""),
            ("tls_ca", &format!("{:?}", ca.display().to_string())),
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("office.test: 250"), "{out}");

    let der = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(pki.cert_pem.as_bytes()).unwrap()
    };
    let fingerprint = postern_engine::tls::fingerprint_of(der.as_ref());
    let (ok, out) = fetch_against(
        isp.addr(),
        &["office.test"],
        &[
            ("tls", "\"required\""),
            ("tls_fingerprint", &format!("\"{fingerprint}\"")),
        ],
    );
    assert!(ok, "{out}");

    // Without a trust anchor the certificate is refused and nothing is sent.
    let (ok, out) = fetch_against(isp.addr(), &["office.test"], &[("tls", "\"required\"")]);
    assert!(!ok, "{out}");
    // The error names the certificate and the line that would pin it.
    assert!(
        out.contains(&format!("tls_fingerprint = \"{fingerprint}\"")),
        "{out}"
    );
}
