//! Issue 12 §4–§7: TLS as users have it (an openssl self-signed certificate, STARTTLS on the
//! inbound listener), forwarding to the office server recipient by recipient, the limits of the
//! inbound session, and the smaller defects, each against real peers or a scripted one.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use postern_tests::harness::messages::header_value;
use postern_tests::harness::smtp_client::Transcript;
use postern_tests::harness::{
    OpensslSelfSigned, PosternConfig, Posternd, PostfixQueue, ScriptedServer, SmtpSink,
    TestMessage, TestPki, digest_without_received, free_addr, poll_until, posternd, read_maildir,
    wait_for_maildir,
};
use postern_tests::skip_unless_root;

const WAIT: Duration = Duration::from_secs(60);

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Its own state folder, one ETRN queue server at `queue` (a 5 s timeout, then `queue_options`:
/// key and TOML value), inbound on `listen` into the Maildir `maildir`.
fn config(
    state: &Path,
    queue: SocketAddr,
    queue_options: &[(&str, &str)],
    listen: SocketAddr,
    maildir: &Path,
) -> PosternConfig {
    let mut config = PosternConfig::etrn(queue, listen, maildir)
        .state_dir(state)
        .hostname("office-gw.test")
        .tls("")
        .queue_option("timeout", "\"5s\"");
    for (key, value) in queue_options {
        config = config.queue_option(key, value);
    }
    config
}

/// A path as a TOML string.
fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

fn maildir_run(
    inbound: &[(&str, &str)],
) -> (Posternd, SocketAddr, tempfile::TempDir, tempfile::TempDir) {
    let maildir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let mut cfg = config(state.path(), free_addr(), &[], listen, maildir.path());
    for (key, value) in inbound {
        cfg = cfg.inbound_option(key, value);
    }
    (
        Posternd::run(&cfg.render(), listen).unwrap(),
        listen,
        maildir,
        state,
    )
}

/// `AB:CD:…` or `sha256:AB:CD:…` in any case -> `abcd…`.
fn hex_only(fingerprint: &str) -> String {
    fingerprint
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The value of the `tls_fingerprint = "…"` line in `out`, if any.
fn fingerprint_line(out: &str) -> Option<String> {
    let start = out.find("tls_fingerprint = \"")? + "tls_fingerprint = \"".len();
    let end = out[start..].find('"')?;
    Some(out[start..start + end].to_string())
}

// ---------------------------------------------------------------------------------------------
// §4 self-signed certificates that users actually have

#[test]
fn an_openssl_self_signed_ca_true_certificate_in_tls_ca_is_trusted_and_failures_print_the_fingerprint()
 {
    skip_unless_root!();
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("real");
    let other_dir = dir.path().join("other");
    std::fs::create_dir_all(&real_dir).unwrap();
    std::fs::create_dir_all(&other_dir).unwrap();
    let real = OpensslSelfSigned::create(&real_dir, "127.0.0.1").unwrap();
    let other = OpensslSelfSigned::create(&other_dir, "127.0.0.1").unwrap();
    let real_fp = real.sha256_fingerprint().unwrap();
    let isp = PostfixQueue::builder()
        .deliver_to(free_addr())
        .with_starttls(&real.cert_pem, &real.key_pem)
        .start()
        .unwrap();
    let fetch = |trust: Option<(&str, String)>| {
        let state = tempfile::tempdir().unwrap();
        let maildir = tempfile::tempdir().unwrap();
        let mut options = vec![("tls", "\"required\"".to_string())];
        options.extend(trust);
        let options: Vec<(&str, &str)> = options.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let cfg = config(
            state.path(),
            isp.addr(),
            &options,
            free_addr(),
            maildir.path(),
        );
        let out = posternd(&["fetch"], &cfg.render()).unwrap();
        (out.status.success(), text(&out))
    };

    let (ok, out) = fetch(Some(("tls_ca", quoted(&real.cert_path))));
    assert!(
        ok,
        "the server's own certificate as tls_ca is a pin:\n{out}"
    );
    assert!(out.contains("office.test: 250"), "{out}");

    let mut printed = String::new();
    for (case, lines) in [
        (
            "another certificate as tls_ca",
            Some(("tls_ca", quoted(&other.cert_path))),
        ),
        ("no trust anchor at all", None),
    ] {
        let (ok, out) = fetch(lines);
        eprintln!("{case}:\n{out}");
        assert!(!ok, "{case}: must fail\n{out}");
        let line = fingerprint_line(&out)
            .unwrap_or_else(|| panic!("{case}: no tls_fingerprint = \"…\" line:\n{out}"));
        assert!(line.starts_with("sha256:"), "{case}: {line}");
        assert_eq!(hex_only(&line), hex_only(&real_fp), "{case}: {out}");
        printed = line;
    }

    // And the printed line, pasted as it is, works.
    let (ok, out) = fetch(Some(("tls_fingerprint", format!("\"{printed}\""))));
    assert!(ok, "{out}");
}

// ---------------------------------------------------------------------------------------------
// §5 STARTTLS on the inbound listener

#[test]
fn a_real_postfix_releases_mail_to_postern_over_starttls_with_a_generated_certificate() {
    skip_unless_root!();
    let listen = free_addr();
    let isp = PostfixQueue::builder()
        .deliver_to(listen)
        .main_cf("smtp_tls_security_level", "may")
        .main_cf("smtp_tls_loglevel", "1")
        .start()
        .unwrap();
    let messages: Vec<_> = (0..3)
        .map(|i| TestMessage::sized(i, 3_000 + i * 4_000, &["user@office.test"]))
        .collect();
    isp.queue_messages(&messages).unwrap();
    let maildir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let cfg = config(
        state.path(),
        isp.addr(),
        &[("tls", "\"off\"")],
        listen,
        maildir.path(),
    )
    .render();

    // `run` asks for the mail once at start.
    let _postern = Posternd::run(&cfg, listen).unwrap();
    let stored = wait_for_maildir(maildir.path(), 3, WAIT).unwrap();
    isp.wait_for_log("TLS connection established to", WAIT)
        .unwrap();

    let log = isp.log_text();
    let tls_line = log
        .lines()
        .find(|l| l.contains("TLS connection established to"))
        .unwrap();
    eprintln!("Postfix: {tls_line}");
    assert!(log.contains("status=sent"), "{log}");
    let mut got: Vec<_> = stored.iter().map(|m| digest_without_received(m)).collect();
    let mut want: Vec<_> = messages.iter().map(TestMessage::digest).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // docs/configuration.md: key and certificate in one file, tls/inbound.pem, 0600.
    let pair = state.path().join("tls/inbound.pem");
    let pem = std::fs::read_to_string(&pair).expect("the generated tls/inbound.pem");
    assert!(
        pem.contains("-----BEGIN CERTIFICATE-----") && pem.contains("PRIVATE KEY-----"),
        "{pem}"
    );
    let mode = std::fs::metadata(&pair).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "generated key file mode {mode:o}");

    let mut s = Transcript::connect(listen).unwrap();
    let ehlo = s.ehlo("client.test").unwrap();
    assert!(ehlo.has_keyword("STARTTLS"), "{ehlo}");
    s.quit();
}

#[test]
fn plaintext_pipelined_behind_starttls_is_discarded_never_answered() {
    let pki = TestPki::new(&["127.0.0.1"]).unwrap();
    let certs = tempfile::tempdir().unwrap();
    pki.write_to(certs.path()).unwrap();
    let (cert, key) = (
        quoted(&certs.path().join("cert.pem")),
        quoted(&certs.path().join("key.pem")),
    );
    let (_postern, listen, maildir, _state) =
        maildir_run(&[("tls_cert", cert.as_str()), ("tls_key", key.as_str())]);

    let mut s = Transcript::connect(listen).unwrap();
    let ehlo = s.ehlo("client.test").unwrap();
    assert!(ehlo.has_keyword("STARTTLS"), "{ehlo}");
    // CVE-2011-0411: the injected RSET travels in the same packet as STARTTLS.
    s.send_raw(b"STARTTLS\r\nRSET\r\n").unwrap();
    s.expect_reply(220).unwrap();
    s.handshake("127.0.0.1", &pki.ca_pem).unwrap();
    // The first reply over TLS must be the EHLO's (several lines), not one for the RSET.
    let ehlo = s.cmd("EHLO client.test").unwrap();
    assert!(
        ehlo.code == 250 && ehlo.lines.len() > 1 && ehlo.lines[0].contains("office-gw.test"),
        "a reply to the injected RSET arrived first: {ehlo}\n{}",
        s.transcript()
    );
    assert!(
        !ehlo.has_keyword("STARTTLS"),
        "STARTTLS offered again after TLS: {ehlo}"
    );
    // And the session over TLS carries mail.
    let message = TestMessage::sized(1, 5_000, &["user@office.test"]);
    s.expect("MAIL FROM:<sender@example.net>", 250).unwrap();
    s.expect("RCPT TO:<user@office.test>", 250).unwrap();
    let reply = s.data(&message.data).unwrap();
    assert_eq!(reply.code, 250, "{}", s.transcript());
    s.expect("QUIT", 221).unwrap();
    assert!(s.is_closed_within(Duration::from_secs(10)));
    assert!(
        s.transcript()
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("S: 221")),
        "nothing is answered after QUIT: {}",
        s.transcript()
    );
    let stored = read_maildir(maildir.path());
    assert_eq!(stored.len(), 1);
    assert_eq!(digest_without_received(&stored[0]), message.digest());
}

// ---------------------------------------------------------------------------------------------
// §7 forwarding to the office server: one bad recipient must not sink the message

#[test]
fn a_recipient_refused_by_a_real_postfix_office_server_is_refused_at_rcpt_and_the_other_gets_the_message()
 {
    skip_unless_root!();
    let mailboxes = SmtpSink::start().unwrap();
    let office = PostfixQueue::office(mailboxes.addr())
        .main_cf(
            "smtpd_recipient_restrictions",
            "check_recipient_access inline:{ { bad@office.test = 550 5.1.1 no such user } }, \
             permit_mynetworks, reject",
        )
        .start()
        .unwrap();
    // What the office server itself says to each recipient.
    let mut direct = Transcript::connect(office.addr()).unwrap();
    direct.ehlo("probe.test").unwrap();
    direct.expect("MAIL FROM:<alice@example.net>", 250).unwrap();
    let direct_good = direct.cmd("RCPT TO:<good@office.test>").unwrap();
    let direct_bad = direct.cmd("RCPT TO:<bad@office.test>").unwrap();
    direct.quit();
    assert_eq!((direct_good.code, direct_bad.code), (250, 550));

    let state = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let cfg = config(
        state.path(),
        free_addr(),
        &[],
        listen,
        Path::new("/nonexistent"),
    )
    .deliver_smtp(office.addr())
    .render();
    let postern = Posternd::run(&cfg, listen).unwrap();
    let message = TestMessage::sized(1, 4_000, &["good@office.test", "bad@office.test"]);
    let mut s = Transcript::connect(listen).unwrap();
    s.ehlo("isp-queue.test").unwrap();
    s.expect("MAIL FROM:<alice@example.net>", 250).unwrap();
    let good = s.cmd("RCPT TO:<good@office.test>").unwrap();
    let bad = s.cmd("RCPT TO:<bad@office.test>").unwrap();
    let trailing_dot = s.cmd("RCPT TO:<dot@office.test.>").unwrap();
    let reply = s.data(&message.data).unwrap();
    eprintln!(
        "office server: good {direct_good} / bad {direct_bad}\nPostern: good {good} / bad {bad} / \
         dot@office.test. {trailing_dot} / end of data {reply}"
    );
    let transcript = s.transcript();
    s.quit();

    assert_eq!(good.code, 250, "{}", transcript);
    assert_eq!(bad.code, 550, "{}", transcript);
    assert!(
        bad.text().contains("no such user"),
        "the office server's own reply: {bad}"
    );
    assert_eq!(reply.code, 250, "{}", transcript);
    let delivered = mailboxes.wait_for_messages(1, WAIT).unwrap();
    drop(postern);
    office.wait_until_idle(WAIT).unwrap();
    let delivered_now = mailboxes.messages();
    assert_eq!(delivered_now.len(), delivered.len());
    // Postfix may or may not keep the trailing dot of dot@office.test. when it relays.
    let mut recipients: Vec<String> = delivered_now
        .iter()
        .flat_map(|m| m.recipients())
        .map(|r| r.trim_end_matches('.').to_string())
        .collect();
    recipients.sort();
    let mut expected = vec!["good@office.test".to_string()];
    if trailing_dot.code == 250 {
        // Accepted at RCPT: then it must be delivered too (Postfix drops the trailing dot).
        expected.push("dot@office.test".into());
    }
    expected.sort();
    assert_eq!(recipients, expected, "{}", office.log_text());
    assert_eq!(
        digest_without_received(&delivered_now[0].data),
        message.digest()
    );
}

// ---------------------------------------------------------------------------------------------
// §3 the limits of one session

#[test]
fn junk_commands_beyond_the_limit_get_421_and_the_session_ends() {
    let (_postern, listen, _maildir, _state) = maildir_run(&[("max_junk_commands", "3")]);
    let mut s = Transcript::connect(listen).unwrap();
    s.ehlo("client.test").unwrap();
    for command in ["NOOP", "RSET", "NOOP"] {
        s.expect(command, 250).unwrap();
    }
    let reply = s.cmd("NOOP").unwrap();
    assert_eq!(reply.code, 421, "{}", s.transcript());
    assert!(reply.text().starts_with("4.7.0"), "{reply}");
    assert!(
        s.is_closed_within(Duration::from_secs(10)),
        "{}",
        s.transcript()
    );
}

#[test]
fn a_session_ends_after_max_session_time_however_busy() {
    let (_postern, listen, _maildir, _state) = maildir_run(&[
        ("max_session_time", "\"2s\""),
        ("max_junk_commands", "1000"),
    ]);
    // Reads wait at most 15 s: the outer deadline, not a timing assertion.
    let mut s = Transcript::connect_timeout(listen, Duration::from_secs(15)).unwrap();
    s.ehlo("client.test").unwrap();
    let started = std::time::Instant::now();
    let mut replies = 0;
    let end = loop {
        // The outer deadline only keeps a broken build from looping for ever.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still open after {replies} NOOPs in 30 s"
        );
        match s.cmd("NOOP") {
            Ok(reply) if reply.code == 250 => replies += 1,
            Ok(reply) => break format!("{reply}"),
            Err(e) if e.to_string().contains("server closed the connection") => {
                break "closed without a reply".to_string();
            }
            Err(e) => panic!("{e}"),
        }
        // A busy client, a few commands a second: the pace, not synchronisation.
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("MEASURED: max_session_time = 2s ended the session after {replies} NOOPs: {end}");
    assert!(
        end.starts_with("421") || end == "closed without a reply",
        "{end}\n{}",
        s.transcript()
    );
}

#[test]
fn idle_timeout_bounds_each_wait_inside_data() {
    let (_postern, listen, maildir, _state) = maildir_run(&[("idle_timeout", "\"2s\"")]);
    let mut s = Transcript::connect_timeout(listen, Duration::from_secs(15)).unwrap();
    s.ehlo("client.test").unwrap();
    s.expect("MAIL FROM:<sender@example.net>", 250).unwrap();
    s.expect("RCPT TO:<user@office.test>", 250).unwrap();
    s.expect("DATA", 354).unwrap();
    s.send_raw(b"Subject: half a message\r\n\r\nand then nothing more")
        .unwrap();
    // The server must give up by itself; the 15 s read timeout is only the outer deadline.
    let reply = s.read_reply();
    eprintln!("inside DATA, silent client: {reply:?}");
    match reply {
        Ok(reply) => assert_eq!(reply.code, 421, "{}", s.transcript()),
        Err(e) => assert!(
            e.to_string().contains("server closed the connection"),
            "Postern did not end the stalled DATA within 15 s: {e}"
        ),
    }
    assert!(read_maildir(maildir.path()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// §6 smaller defects

#[test]
fn postmaster_without_a_domain_is_accepted_and_stored() {
    let (_postern, listen, maildir, _state) = maildir_run(&[]);
    let message = TestMessage::sized(1, 1_500, &["postmaster"]);
    let mut s = Transcript::connect(listen).unwrap();
    s.ehlo("client.test").unwrap();
    s.expect("MAIL FROM:<sender@example.net>", 250).unwrap();
    s.expect("RCPT TO:<postmaster>", 250).unwrap();
    assert_eq!(
        s.data(&message.data).unwrap().code,
        250,
        "{}",
        s.transcript()
    );
    s.quit();
    let stored = read_maildir(maildir.path());
    assert_eq!(stored.len(), 1);
    assert_eq!(digest_without_received(&stored[0]), message.digest());
}

#[test]
fn maildir_files_are_private_and_received_carries_no_control_characters() {
    let (_postern, listen, maildir, _state) = maildir_run(&[]);
    let message = TestMessage::sized(1, 1_500, &["user@office.test"]);
    let mut s = Transcript::connect(listen).unwrap();
    let ehlo = s.cmd_bytes(b"EHLO evil\x1b[2J\x07\x08.example").unwrap();
    eprintln!("EHLO with control characters: {ehlo}");
    if ehlo.code != 250 {
        // Refusing such a name is fine too; then a plain one, and a control character in the
        // address instead.
        s.ehlo("client.test").unwrap();
    }
    let mail = s.cmd_bytes(b"MAIL FROM:<a\x1bb@example.net>").unwrap();
    if mail.code != 250 {
        s.expect("MAIL FROM:<sender@example.net>", 250).unwrap();
    }
    s.expect("RCPT TO:<user@office.test>", 250).unwrap();
    assert_eq!(
        s.data(&message.data).unwrap().code,
        250,
        "{}",
        s.transcript()
    );
    s.quit();

    let new = maildir.path().join("new");
    let files: Vec<_> = std::fs::read_dir(&new)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "message file mode {mode:o}");
    let stored = std::fs::read(&files[0]).unwrap();
    let received = header_value(&stored, "received").unwrap();
    eprintln!("Received: {received:?}");
    assert!(
        !received.chars().any(|c| c.is_control()),
        "control characters in Received: {received:?}"
    );
    // The raw header lines too (header_value unfolds): only CR LF TAB are allowed there. The
    // Maildir file may have LF or CRLF line ends.
    let head_end = stored
        .windows(2)
        .position(|w| w == b"\n\n")
        .or_else(|| stored.windows(4).position(|w| w == b"\r\n\r\n"))
        .unwrap();
    let received_raw = &stored[..head_end];
    assert!(
        received_raw
            .iter()
            .all(|b| !b.is_ascii_control() || matches!(b, b'\r' | b'\n' | b'\t')),
        "{:?}",
        String::from_utf8_lossy(received_raw)
    );
}

#[test]
fn tmp_entries_older_than_36_hours_are_removed_at_start_and_younger_ones_kept() {
    let maildir = tempfile::tempdir().unwrap();
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.path().join(sub)).unwrap();
    }
    let old = maildir.path().join("tmp/1700000000.crashed.office-gw");
    let young = maildir.path().join("tmp/1700000001.in-flight.office-gw");
    for (path, age_hours) in [(&old, 40), (&young, 1)] {
        std::fs::write(path, b"partial").unwrap();
        let when = SystemTime::now() - Duration::from_secs(age_hours * 3600);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let cfg = config(state.path(), free_addr(), &[], listen, maildir.path()).render();
    let _postern = Posternd::run(&cfg, listen).unwrap();

    poll_until(
        "the 40 h old tmp/ entry removed",
        Duration::from_secs(20),
        || (!old.exists()).then_some(()),
    )
    .unwrap();
    assert!(young.exists(), "a 1 h old tmp/ entry is kept");
}

#[test]
fn exim_458_already_processing_makes_fetch_exit_0() {
    let exim = ScriptedServer::start("220 exim.test ESMTP Exim 4.96", |c| {
        Some(
            match c
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase()
                .as_str()
            {
                "EHLO" => "250-exim.test Hello\n250-ETRN\n250 HELP".into(),
                "ETRN" => "458 Already processing #office".into(),
                "QUIT" => "221 exim.test closing connection".into(),
                _ => "500 unrecognized command".into(),
            },
        )
    })
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let maildir = tempfile::tempdir().unwrap();
    let cfg = config(
        state.path(),
        exim.addr(),
        &[("tls", "\"off\""), ("node", "\"#office\"")],
        free_addr(),
        maildir.path(),
    )
    .render();
    let out = posternd(&["fetch"], &cfg).unwrap();
    eprintln!("{}", text(&out));
    assert!(
        exim.commands().iter().any(|c| c == "ETRN #office"),
        "{:?}",
        exim.commands()
    );
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        text(&out)
    );
    assert!(text(&out).contains("458"), "{}", text(&out));
}
