//! Issue 12 §8: Postern under attack and under faults, against real peers. Smuggling through the
//! relay into a real Postfix office server, a greeting that drips one byte a second, junk
//! connections from one address, kill -9 under load, and a full disk.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use postern_tests::harness::load::{Envelope, Ledger};
use postern_tests::harness::messages::header_value;
use postern_tests::harness::process::kill_pid;
use postern_tests::harness::smtp_client::Transcript;
use postern_tests::harness::{
    DripServer, PosternConfig, Posternd, PostfixQueue, SmallFs, SmtpSink, TestMessage,
    digest_without_received, free_addr, poll_until, posternd_with, read_maildir,
};
use postern_tests::skip_unless_root;

const WAIT: Duration = Duration::from_secs(60);

/// A config with its own state folder and a queuing server nobody answers at (so `run` only
/// listens), receiving on `listen` into the Maildir `maildir`.
fn config(state: &Path, listen: SocketAddr, maildir: &Path) -> PosternConfig {
    PosternConfig::etrn(free_addr(), listen, maildir)
        .state_dir(state)
        .hostname("office-gw.test")
        .tls("")
        .queue_option("timeout", "\"2s\"")
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

// ---------------------------------------------------------------------------------------------
// §1 SMTP smuggling

/// Every bare CR/LF shape around the hidden dot: (name, before the dot, after the dot). The one
/// real end of data, CRLF "." CRLF, is left out.
const SHAPES: [(&str, &str, &str); 8] = [
    ("LF.CRLF", "\n", "\r\n"),
    ("LF.LF", "\n", "\n"),
    ("LF.CR", "\n", "\r"),
    ("CR.CRLF", "\r", "\r\n"),
    ("CR.LF", "\r", "\n"),
    ("CR.CR", "\r", "\r"),
    ("CRLF.LF", "\r\n", "\n"),
    ("CRLF.CR", "\r\n", "\r"),
];

fn postconf(args: &[&str]) -> (bool, String) {
    let out = Command::new("postconf").args(args).output().unwrap();
    (out.status.success(), text(&out).trim().to_string())
}

#[test]
fn no_smuggled_transaction_reaches_a_real_postfix_office_server_and_the_message_still_arrives() {
    skip_unless_root!();
    let mailboxes = SmtpSink::start().unwrap();
    let outside = SmtpSink::start().unwrap();
    let office = PostfixQueue::office(mailboxes.addr())
        .route("outside.example", outside.addr())
        .start()
        .unwrap();
    // The server being protected takes a bare LF as a line end (Postfix 3.7's default).
    let (known, default) = postconf(&["-d", "smtpd_forbid_bare_newline"]);
    eprintln!("postconf -d: {default} (parameter known: {known})");
    if known {
        let config_dir = office.dir().join("etc");
        let (_, effective) = postconf(&[
            "-c",
            &config_dir.display().to_string(),
            "-h",
            "smtpd_forbid_bare_newline",
        ]);
        assert_eq!(effective, "no", "the office server must accept bare LF");
    }
    let state = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let cfg = config(state.path(), listen, Path::new("/nonexistent"))
        .deliver_smtp(office.addr())
        .render();
    let postern = Posternd::run(&cfg, listen).unwrap();

    let mut replies = Vec::new();
    for (i, (name, before, after)) in SHAPES.iter().enumerate() {
        let content = format!(
            "From: Alice <alice@example.net>\r\nTo: user@office.test\r\nSubject: shape {i} {name}\r\n\
             Message-ID: <shape-{i}.{pid}@harness.postern.test>\r\n\r\nHello{before}.{after}\
             MAIL FROM:<ceo@office.test>\r\nRCPT TO:<victim@outside.example>\r\nDATA\r\n\
             From: CEO <ceo@office.test>\r\nTo: victim@outside.example\r\nSubject: smuggled {i}\r\n\r\n\
             Pay the invoice {i}.\r\n",
            pid = std::process::id()
        );
        let mut s = Transcript::connect(listen).unwrap();
        s.ehlo("attacker.example").unwrap();
        s.expect("MAIL FROM:<alice@example.net>", 250).unwrap();
        s.expect("RCPT TO:<user@office.test>", 250).unwrap();
        s.expect("DATA", 354).unwrap();
        // Raw, not dot-stuffed by the client: the bytes are the attack.
        let mut wire = content.into_bytes();
        wire.extend_from_slice(b".\r\n");
        s.send_raw(&wire).unwrap();
        let reply = s.read_reply().unwrap();
        eprintln!("shape {name}: Postern answered {reply}");
        replies.push((*name, reply.code, s.transcript()));
        s.quit();
    }
    // Closes any connection Postern keeps to the office server; then every session there has
    // ended and whatever it accepted has left its queue.
    postern.stop().unwrap();
    office.wait_until_idle(WAIT).unwrap();

    let smuggled = outside.messages();
    assert!(
        smuggled.is_empty(),
        "{} smuggled message(s) reached the outside: {:?}\n--- office log ---\n{}",
        smuggled.len(),
        smuggled
            .iter()
            .map(|m| (m.sender(), m.recipients()))
            .collect::<Vec<_>>(),
        office.log_text()
    );
    // Neither accepted (qmgr's from=, delivery's to=) nor even refused (smtpd's NOQUEUE to=).
    let log = office.log_text();
    assert!(
        !log.contains("to=<victim@outside.example>") && !log.contains("from=<ceo@office.test>"),
        "the office server saw the hidden transaction:\n{log}"
    );
    for (name, code, transcript) in &replies {
        assert_eq!(
            *code, 250,
            "shape {name}: normalised and accepted\n{transcript}"
        );
    }
    let delivered = mailboxes.messages();
    for (i, (name, _, _)) in SHAPES.iter().enumerate() {
        let subject = format!("Subject: shape {i} {name}");
        let copies: Vec<_> = delivered
            .iter()
            .filter(|m| {
                String::from_utf8_lossy(&m.data).contains(&subject)
                    && m.recipients() == ["user@office.test"]
            })
            .collect();
        assert_eq!(
            copies.len(),
            1,
            "shape {name}: the legitimate message arrives once\n--- office log ---\n{}",
            office.log_text()
        );
        let data = &copies[0].data;
        let body = String::from_utf8_lossy(data);
        // The hidden transaction is content of the one message, line ends made CRLF (the dump
        // shows LF), so no bare CR was passed on.
        assert!(
            body.contains(&format!("Pay the invoice {i}.")),
            "shape {name}: {body}"
        );
        assert!(
            !data.contains(&b'\r'),
            "shape {name}: a bare CR got through: {body:?}"
        );
    }
    assert!(
        delivered.iter().all(|m| m.sender() == "alice@example.net"),
        "{:?}",
        delivered.iter().map(|m| m.sender()).collect::<Vec<_>>()
    );
}

/// One line-end convention throughout: every CR followed by LF and every LF preceded by CR
/// (the wire form), or no CR at all (the Maildir convention, LF line ends). Never a bare CR.
fn one_line_end_convention(bytes: &[u8]) -> bool {
    let crlf = bytes.iter().enumerate().all(|(i, b)| match b {
        b'\r' => bytes.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && bytes[i - 1] == b'\r',
        _ => true,
    });
    crlf || !bytes.contains(&b'\r')
}

fn lines(message: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(message)
        .split('\n')
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect()
}

#[test]
fn what_postern_stores_has_no_bare_cr_or_lf_and_a_hidden_dot_is_content() {
    let maildir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let cfg = config(state.path(), listen, maildir.path()).render();
    let _postern = Posternd::run(&cfg, listen).unwrap();

    for (i, (name, before, after)) in SHAPES.iter().enumerate() {
        let content = format!(
            "Subject: stored shape {i}\r\n\r\nbare LF\nbare CR\rHello{before}.{after}\
             MAIL FROM:<ceo@office.test>\r\nRCPT TO:<victim@outside.example>\r\nDATA\r\n\
             hidden {i}\r\n"
        );
        let mut s = Transcript::connect(listen).unwrap();
        s.ehlo("attacker.example").unwrap();
        s.expect("MAIL FROM:<alice@example.net>", 250).unwrap();
        s.expect("RCPT TO:<user@office.test>", 250).unwrap();
        s.expect("DATA", 354).unwrap();
        let mut wire = content.into_bytes();
        wire.extend_from_slice(b".\r\n");
        s.send_raw(&wire).unwrap();
        let reply = s.read_reply().unwrap();
        // Nothing after the real end of data was taken as commands: the session is in step.
        let after_data = s.cmd("NOOP").unwrap();
        assert_eq!(reply.code, 250, "shape {name}: {}", s.transcript());
        assert_eq!(after_data.code, 250, "shape {name}: {}", s.transcript());
        s.quit();
    }

    let stored = read_maildir(maildir.path());
    assert_eq!(
        stored.len(),
        SHAPES.len(),
        "one message per shape, none smuggled"
    );
    for (i, (name, _, _)) in SHAPES.iter().enumerate() {
        let subject = format!("Subject: stored shape {i}");
        let message = stored
            .iter()
            .find(|m| lines(m).contains(&subject))
            .unwrap_or_else(|| {
                let all: Vec<_> = stored.iter().map(|m| String::from_utf8_lossy(m)).collect();
                panic!("shape {name}: not stored; the Maildir holds {all:#?}")
            });
        let text = String::from_utf8_lossy(message);
        assert!(
            one_line_end_convention(message),
            "shape {name}: a bare CR or LF stored: {text:?}"
        );
        let body = lines(message);
        let hidden = [
            ".",
            "MAIL FROM:<ceo@office.test>",
            "RCPT TO:<victim@outside.example>",
            "DATA",
            &format!("hidden {i}"),
        ];
        assert!(
            body.windows(hidden.len()).any(|w| w == hidden),
            "shape {name}: the hidden part is content, line by line: {text:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// §2 every wait bounded as a whole

#[test]
fn a_greeting_dripping_one_byte_a_second_ends_with_a_timeout_error() {
    let drip = DripServer::start(
        "220 drip.test ESMTP a very slow server",
        Duration::from_secs(1),
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let maildir = tempfile::tempdir().unwrap();
    let cfg = PosternConfig::etrn(drip.addr(), free_addr(), maildir.path())
        .state_dir(state.path())
        .queue_option("timeout", "\"3s\"")
        .render();

    let started = Instant::now();
    // The outer deadline only keeps a broken build from hanging the suite.
    let out = posternd_with(&["fetch"], Some(&cfg), b"", &[], Duration::from_secs(15))
        .expect("posternd fetch ends within the 15 s outer deadline");
    let elapsed = started.elapsed();
    eprintln!(
        "MEASURED: slow drip (1 byte/s), timeout = 3s: fetch ended after {elapsed:?}, {} greeting \
         bytes had been sent",
        drip.bytes_sent()
    );

    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("did not answer within 3 s"),
        "{}",
        text(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// §3 a few connections must not lock everyone out

/// 20 connections from 127.0.0.2 that send NOOP once a second, then one sender from 127.0.0.1.
/// Returns how many junk connections were admitted (greeting 220), the other junk outcomes, and
/// the sender's reply to the end of data; the message must then be stored, complete.
fn junk_then_deliver(inbound_extra: &[(&str, &str)]) -> (usize, Vec<String>, u16) {
    let maildir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let mut cfg = config(state.path(), listen, maildir.path());
    for (key, value) in inbound_extra {
        cfg = cfg.inbound_option(key, value);
    }
    let cfg = cfg.render();
    let _postern = Posternd::run(&cfg, listen).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<String>();
    let junk: Vec<_> = (0..20)
        .map(|_| {
            let (stop, tx) = (stop.clone(), tx.clone());
            std::thread::spawn(move || {
                let source: SocketAddr = "127.0.0.2:0".parse().unwrap();
                let mut s = match Transcript::connect_from(source, listen, Duration::from_secs(10))
                {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(format!("refused: {e}"));
                        return;
                    }
                };
                let greeting = s.greeting().clone();
                let _ = tx.send(format!("greeting {greeting}"));
                if greeting.code != 220 {
                    return;
                }
                while !stop.load(Ordering::Relaxed) {
                    if s.cmd("NOOP").map(|r| r.code != 250).unwrap_or(true) {
                        return;
                    }
                    // The pace of the attack (NOOP once a second), not synchronisation.
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        })
        .collect();
    let outcomes: Vec<String> = (0..20)
        .map(|_| {
            rx.recv_timeout(WAIT)
                .expect("every junk connection got an answer")
        })
        .collect();
    let admitted = outcomes
        .iter()
        .filter(|o| o.starts_with("greeting 220"))
        .count();
    let others: Vec<String> = outcomes
        .into_iter()
        .filter(|o| !o.starts_with("greeting 220"))
        .collect();
    eprintln!(
        "MEASURED: junk connections from 127.0.0.2 ({inbound_extra:?}): {admitted} of 20 \
         admitted; others: {others:?}"
    );

    let message = TestMessage::sized(1, 2_000, &["user@office.test"]);
    let source: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut s = Transcript::connect_from(source, listen, Duration::from_secs(30)).unwrap();
    let greeting = s.greeting().clone();
    let reply = if greeting.code == 220 {
        s.ehlo("isp-queue.test").unwrap();
        s.expect("MAIL FROM:<sender@example.net>", 250).unwrap();
        s.expect("RCPT TO:<user@office.test>", 250).unwrap();
        s.data(&message.data).unwrap()
    } else {
        greeting
    };
    eprintln!("sender from 127.0.0.1: {reply}");
    s.quit();
    stop.store(true, Ordering::Relaxed);
    for thread in junk {
        let _ = thread.join();
    }
    if reply.code == 250 {
        let stored = read_maildir(maildir.path());
        assert_eq!(stored.len(), 1);
        assert_eq!(digest_without_received(&stored[0]), message.digest());
    }
    (admitted, others, reply.code)
}

#[test]
fn twenty_junk_connections_from_one_address_do_not_lock_out_another_sender() {
    let (_, _, code) = junk_then_deliver(&[]);
    assert_eq!(code, 250, "the sender from 127.0.0.1 delivers (defaults)");
}

#[test]
fn max_connections_per_client_admits_that_many_and_refuses_the_rest_with_421() {
    let (admitted, others, code) = junk_then_deliver(&[("max_connections_per_client", "5")]);
    assert_eq!(code, 250, "the sender from 127.0.0.1 delivers");
    assert_eq!(admitted, 5, "{others:?}");
    assert!(
        others.iter().all(|o| o.starts_with("greeting 421 4.7.0")),
        "{others:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// §8 kill -9 under load

const LOAD: Envelope = Envelope {
    ehlo: "load.test",
    from: "load@example.net",
    to: "user@office.test",
};

#[test]
fn kill_9_under_load_loses_and_duplicates_no_acknowledged_message() {
    let maildir = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let cfg = config(state.path(), listen, maildir.path()).render();
    let ledger = Arc::new(Ledger::default());

    for round in 1..=3 {
        let postern = Posternd::run(&cfg, listen).unwrap();
        let before = ledger.acked_count();
        let senders: Vec<_> = (0..4)
            .map(|_| {
                let ledger = ledger.clone();
                std::thread::spawn(move || ledger.send_until_gone(listen, LOAD))
            })
            .collect();
        let target = before + 20 + 7 * round;
        poll_until(format!("{target} acknowledged messages"), WAIT, || {
            (ledger.acked_count() >= target).then_some(())
        })
        .unwrap();
        kill_pid(i32::try_from(postern.pid()).unwrap());
        for thread in senders {
            thread.join().unwrap();
        }
        drop(postern);
        let acked = ledger.acked_count() - before;
        eprintln!("MEASURED: kill -9 round {round}: {acked} messages acknowledged in the round");
    }
    // Start once more so that whatever start-up recovery there is has run, then stop cleanly.
    Posternd::run(&cfg, listen).unwrap().stop().unwrap();

    let mut stored: HashMap<String, Vec<[u8; 32]>> = HashMap::new();
    let mut unknown = 0;
    for message in read_maildir(maildir.path()) {
        match header_value(&message, "message-id") {
            Some(id) => stored
                .entry(id.trim_matches(['<', '>', ' ']).to_string())
                .or_default()
                .push(digest_without_received(&message)),
            None => unknown += 1,
        }
    }
    let account = ledger.account(&stored);
    let tmp_left = std::fs::read_dir(maildir.path().join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    eprintln!(
        "MEASURED: kill -9 x3: {} sent, {} acknowledged, {} lost, {} duplicated, {} incomplete, \
         {} stored but never acknowledged, {tmp_left} left in tmp/",
        account.sent,
        account.acked,
        account.lost.len(),
        account.duplicated.len(),
        account.altered.len(),
        account.stored_unacked
    );

    assert_eq!(unknown, 0, "messages without a Message-ID in the Maildir");
    assert!(
        account.lost.is_empty(),
        "acknowledged but not stored: {:?}",
        account.lost
    );
    assert!(
        account.duplicated.is_empty(),
        "stored twice: {:?}",
        account.duplicated
    );
    assert!(
        account.altered.is_empty(),
        "stored incomplete or altered: {:?}",
        account.altered
    );
}

// ---------------------------------------------------------------------------------------------
// §8 disk full

#[test]
fn a_full_disk_answers_452_loses_nothing_acknowledged_and_leaves_tmp_clean() {
    skip_unless_root!();
    // Declared first: dropped (unmounted) after Postern has stopped.
    let fs = SmallFs::tmpfs(4 * 1024 * 1024).unwrap();
    let maildir = fs.path().join("Maildir");
    let state = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let cfg = config(state.path(), listen, &maildir).render();
    let postern = Posternd::run(&cfg, listen).unwrap();
    let filler = fs.path().join("filler");
    let filled = fs.fill(&filler, 700 * 1024).unwrap();
    eprintln!(
        "filled {filled} bytes, {} left on the 4 MiB tmpfs",
        fs.available().unwrap()
    );

    let mut acked = Vec::new();
    let mut refusal = None;
    let mut s = Transcript::connect(listen).unwrap();
    s.ehlo("isp-queue.test").unwrap();
    for i in 0..200 {
        let message = TestMessage::sized(i, 48 * 1024, &["user@office.test"]);
        let mail = s.cmd("MAIL FROM:<sender@example.net>").unwrap();
        let rcpt = if mail.code == 250 {
            s.cmd("RCPT TO:<user@office.test>").unwrap()
        } else {
            mail
        };
        let reply = if rcpt.code == 250 {
            s.data(&message.data).unwrap()
        } else {
            rcpt
        };
        if reply.code == 250 {
            acked.push(message);
            continue;
        }
        refusal = Some(reply);
        let _ = s.cmd("RSET");
        break;
    }
    let tmp_entries: Vec<_> = std::fs::read_dir(maildir.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    eprintln!(
        "MEASURED: disk full after {} acknowledged messages of 48 KiB; answer {:?}; tmp/ holds {}",
        acked.len(),
        refusal.as_ref().map(ToString::to_string),
        tmp_entries.len()
    );

    let refusal = refusal.expect("the file system filled up within 200 messages");
    assert_eq!(refusal.code, 452, "{refusal}\n{}", s.transcript());
    assert!(tmp_entries.is_empty(), "left in tmp/: {tmp_entries:?}");
    let mut stored: Vec<_> = read_maildir(&maildir)
        .iter()
        .map(|m| digest_without_received(m))
        .collect();
    stored.sort();
    let mut expected: Vec<_> = acked.iter().map(TestMessage::digest).collect();
    expected.sort();
    assert_eq!(
        stored, expected,
        "every acknowledged message, complete, once"
    );

    // Space again: the same session goes on and the next message is stored.
    std::fs::remove_file(&filler).unwrap();
    let message = TestMessage::sized(999, 48 * 1024, &["user@office.test"]);
    s.expect("MAIL FROM:<sender@example.net>", 250).unwrap();
    s.expect("RCPT TO:<user@office.test>", 250).unwrap();
    let reply = s.data(&message.data).unwrap();
    assert_eq!(reply.code, 250, "{reply}");
    s.quit();
    postern.stop().unwrap();
    assert_eq!(read_maildir(&maildir).len(), acked.len() + 1);
}
