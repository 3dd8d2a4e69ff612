//! Issue 15: the outbound relay against real peers. The submission listener's relay policy,
//! the durable spool under kill -9, the queue commands without an engine, and delivery through
//! a private Postfix smarthost that relays one recipient, refuses one (550) and defers one
//! (450), with smtp-sink as the far end and the DSN landing in the office Maildir.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use postern_tests::harness::load::{Envelope, Ledger};
use postern_tests::harness::messages::header_value;
use postern_tests::harness::process::kill_pid;
use postern_tests::harness::smtp_client::Transcript;
use postern_tests::harness::{
    NetNs, Posternd, PostfixQueue, SmtpSink, TestMessage, TestPki, digest_without_received,
    free_addr, free_port, poll_until, posternd, posternd_with, read_maildir, wait_for_port,
};
use postern_tests::skip_unless_root;

const WAIT: Duration = Duration::from_secs(60);

/// A config whose outbound relay listens on `submit`, relays through `smarthost` and takes the
/// link to be up exactly when `probe` answers.
fn config(
    state: &Path,
    listen: SocketAddr,
    submit: SocketAddr,
    maildir: &Path,
    smarthost: SocketAddr,
    probe: SocketAddr,
) -> String {
    format!(
        r#"domains = ["office.test"]
state_dir = "{state}"

[[queue_servers]]
host = "127.0.0.1"
port = {nobody}
protocol = "etrn"
timeout = "2s"

[inbound]
listen = ["{listen}"]
deliver = "maildir:{maildir}"
hostname = "office-gw.test"

[outbound]
listen = ["{submit}"]
allow = ["127.0.0.1/32"]
smarthost = "smtp://{smarthost}"
smarthost_tls = "off"
retry_min = "2s"
retry_max = "4s"

[link]
refetch_every = "0"
probe = "{probe}"
"#,
        state = state.display(),
        maildir = maildir.display(),
        nobody = free_port(),
    )
}

/// The committed messages in the spool folder: Message-ID -> digests of each copy.
fn spooled(spool: &Path) -> (HashMap<String, Vec<[u8; 32]>>, Vec<String>) {
    let mut by_id: HashMap<String, Vec<[u8; 32]>> = HashMap::new();
    let mut stray = Vec::new();
    let names: HashSet<String> = std::fs::read_dir(spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for name in &names {
        if let Some(id) = name.strip_suffix(".msg") {
            if !names.contains(&format!("{id}.rec")) {
                stray.push(name.clone());
                continue;
            }
            let bytes = std::fs::read(spool.join(name)).unwrap();
            let mid = header_value(&bytes, "message-id").unwrap_or_default();
            by_id
                .entry(mid.trim_matches(['<', '>', ' ']).to_string())
                .or_default()
                .push(digest_without_received(&bytes));
        } else if !name.ends_with(".rec") {
            stray.push(name.clone());
        }
    }
    (by_id, stray)
}

#[test]
fn submission_is_for_allowed_clients_only_and_adds_date_and_message_id() {
    let (state, maildir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (listen, submit, down) = (free_addr(), free_addr(), free_addr());
    let cfg = config(state.path(), listen, submit, maildir.path(), down, down);
    let postern = Posternd::run(&cfg, listen).unwrap();
    wait_for_port(submit, WAIT).unwrap();

    // 127.0.0.2 is not in allow.
    let stranger = SocketAddr::from(([127, 0, 0, 2], 0));
    let mut s = Transcript::connect_from(stranger, submit, WAIT).unwrap();
    s.expect("EHLO pc.office.test", 250).unwrap();
    s.expect("MAIL FROM:<boss@office.test>", 250).unwrap();
    let denied = s.cmd("RCPT TO:<friend@example.net>").unwrap();
    s.quit();
    let mut s = Transcript::connect(submit).unwrap();
    let ehlo = s.ehlo("pc.office.test").unwrap();
    s.expect("MAIL FROM:<boss@office.test>", 250).unwrap();
    s.expect("RCPT TO:<friend@example.net>", 250).unwrap();
    let accepted = s
        .data(b"From: boss@office.test\r\nSubject: no date, no id\r\n\r\n.hidden dot\r\nbody\r\n")
        .unwrap();
    s.quit();

    assert_eq!(denied.code, 550, "{}", denied.text());
    assert!(denied.text().contains("5.7.1"), "{}", denied.text());
    assert!(
        ehlo.has_keyword("STARTTLS"),
        "the inbound certificate is offered"
    );
    assert_eq!(accepted.code, 250, "{}", accepted.text());
    let received = postern
        .wait_for_event(|e| e["type"] == "message_received", WAIT)
        .unwrap();
    assert_eq!(received["via"], "submission", "{received}");
    let list = posternd(&["queue", "list", "--json"], &cfg).unwrap();
    let entries: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(entries.as_array().unwrap().len(), 1, "{entries}");
    assert_eq!(entries[0]["recipients"][0]["address"], "friend@example.net");
    assert_eq!(entries[0]["recipients"][0]["state"], "queued");
    let spool = state.path().join("outbound");
    let id = entries[0]["id"].as_str().unwrap();
    let stored = std::fs::read(spool.join(format!("{id}.msg"))).unwrap();
    let text = String::from_utf8_lossy(&stored);
    assert!(text.starts_with("Received: from pc.office.test"), "{text}");
    assert!(header_value(&stored, "date").is_some(), "{text}");
    assert!(
        header_value(&stored, "message-id")
            .unwrap()
            .ends_with("@office-gw.test>"),
        "{text}"
    );
    assert!(text.contains("\r\n\r\n.hidden dot\r\nbody\r\n"), "{text}");
    postern.stop().unwrap();
}

const SUBMISSIONS: Envelope = Envelope {
    ehlo: "pc.office.test",
    from: "boss@office.test",
    to: "friend@example.net",
};

#[test]
fn kill_9_under_submission_load_loses_and_duplicates_no_acknowledged_message() {
    let (state, maildir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (listen, submit, down) = (free_addr(), free_addr(), free_addr());
    let cfg = config(state.path(), listen, submit, maildir.path(), down, down);
    let ledger = Arc::new(Ledger::default());

    for round in 1..=3 {
        let postern = Posternd::run(&cfg, listen).unwrap();
        wait_for_port(submit, WAIT).unwrap();
        let before = ledger.acked_count();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let ledger = ledger.clone();
                std::thread::spawn(move || ledger.send_until_gone(submit, SUBMISSIONS))
            })
            .collect();
        let target = before + 20 + 7 * round;
        poll_until(format!("{target} acknowledged"), WAIT, || {
            (ledger.acked_count() >= target).then_some(())
        })
        .unwrap();
        kill_pid(i32::try_from(postern.pid()).unwrap());
        for t in threads {
            t.join().unwrap();
        }
        drop(postern);
        let acked = ledger.acked_count() - before;
        eprintln!("MEASURED: outbound kill -9 round {round}: {acked} submissions acknowledged");
    }
    // Once more, so the start-up recovery has run; then a clean stop.
    let postern = Posternd::run(&cfg, listen).unwrap();
    wait_for_port(submit, WAIT).unwrap();
    postern.stop().unwrap();

    let (stored, stray) = spooled(&state.path().join("outbound"));
    let account = ledger.account(&stored);
    eprintln!(
        "MEASURED: outbound kill -9 x3: {} sent, {} acknowledged, {} lost, {} duplicated, {} altered, \
         {} spooled but never acknowledged, {} uncommitted leftovers after restart",
        account.sent,
        account.acked,
        account.lost.len(),
        account.duplicated.len(),
        account.altered.len(),
        account.stored_unacked,
        stray.len()
    );
    assert!(
        account.lost.is_empty(),
        "acknowledged but not spooled: {:?}",
        account.lost
    );
    assert!(
        account.duplicated.is_empty(),
        "spooled twice: {:?}",
        account.duplicated
    );
    assert!(
        account.altered.is_empty(),
        "spooled altered: {:?}",
        account.altered
    );
    assert!(
        stray.is_empty(),
        "leftovers not removed at start: {stray:?}"
    );
}

#[test]
fn queue_commands_work_on_the_spool_without_an_engine() {
    let (state, maildir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (listen, submit, down) = (free_addr(), free_addr(), free_addr());
    let cfg = config(state.path(), listen, submit, maildir.path(), down, down);
    let postern = Posternd::run(&cfg, listen).unwrap();
    wait_for_port(submit, WAIT).unwrap();
    for i in 0..2 {
        let m = TestMessage::sized(i, 800, &["friend@example.net"]);
        let mut s = Transcript::connect(submit).unwrap();
        s.ehlo("pc.office.test").unwrap();
        s.expect("MAIL FROM:<boss@office.test>", 250).unwrap();
        s.expect("RCPT TO:<friend@example.net>", 250).unwrap();
        assert_eq!(s.data(&m.data).unwrap().code, 250);
        s.quit();
    }
    let engine_config = postern.config_path().to_str().unwrap().to_string();
    let through_engine = posternd_with(
        &["queue", "flush", "--config", &engine_config],
        None,
        b"",
        &[],
        WAIT,
    )
    .unwrap();
    postern.stop().unwrap();

    let list = posternd(&["queue", "list", "--json"], &cfg).unwrap();
    let entries: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let ids: Vec<String> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let dropped = posternd(&["queue", "drop", &ids[0]], &cfg).unwrap();
    let retried = posternd(&["queue", "retry", &ids[1]], &cfg).unwrap();
    let missing = posternd(&["queue", "drop", "nosuchid"], &cfg).unwrap();
    let after = posternd(&["queue", "list"], &cfg).unwrap();

    assert!(through_engine.status.success(), "{through_engine:?}");
    assert!(
        String::from_utf8_lossy(&through_engine.stdout).contains("attempted now"),
        "{through_engine:?}"
    );
    assert_eq!(ids.len(), 2);
    assert!(dropped.status.success(), "{dropped:?}");
    assert!(retried.status.success(), "{retried:?}");
    assert!(!missing.status.success());
    let text = String::from_utf8_lossy(&after.stdout);
    assert!(text.contains(&ids[1]) && !text.contains(&ids[0]), "{text}");
    assert!(text.contains("1 message(s)"), "{text}");
}

#[test]
fn a_postfix_smarthost_relays_one_refuses_one_defers_one_and_the_dsn_lands_in_the_maildir() {
    skip_unless_root!();
    let sink = SmtpSink::start().unwrap();
    let smarthost = PostfixQueue::builder()
        .relay_domains(&[])
        .deliver_at_once()
        .hostname("smarthost.test")
        .route("example.net", sink.addr())
        .main_cf(
            "smtpd_recipient_restrictions",
            "check_recipient_access inline:{ {bad@example.net=550 5.1.1 no such user}, \
             {slow@example.net=450 4.2.0 try later} }, permit_mynetworks, reject",
        )
        .start()
        .unwrap();
    let (state, maildir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (listen, submit) = (free_addr(), free_addr());
    let cfg = config(
        state.path(),
        listen,
        submit,
        maildir.path(),
        smarthost.addr(),
        smarthost.addr(),
    );
    let postern = Posternd::run(&cfg, listen).unwrap();
    wait_for_port(submit, WAIT).unwrap();
    postern
        .wait_for_event(|e| e["type"] == "link_changed" && e["up"] == true, WAIT)
        .unwrap();

    let mut s = Transcript::connect(submit).unwrap();
    s.ehlo("pc.office.test").unwrap();
    s.expect("MAIL FROM:<boss@office.test>", 250).unwrap();
    for rcpt in [
        "good@example.net",
        "bad@example.net",
        "slow@example.net",
        "user@office.test",
    ] {
        s.expect(&format!("RCPT TO:<{rcpt}>"), 250).unwrap();
    }
    let reply = s
        .data(
            b"From: boss@office.test\r\nSubject: quarterly figures\r\nMessage-ID: <q1@office.test>\r\n\r\n\
              .a line that starts with a dot\r\n..two dots\r\nend\r\n",
        )
        .unwrap();
    s.quit();
    assert_eq!(reply.code, 250);

    let at_sink = poll_until("the message at the sink", WAIT, || {
        sink.messages()
            .into_iter()
            .find(|m| m.recipients() == ["good@example.net"])
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n--- events ---\n{}\n--- posternd ---\n{}\n--- smarthost ---\n{}",
            postern.stdout_lines().join("\n"),
            postern.log_text(),
            smarthost.log_text()
        )
    });
    let dsn = poll_until("the DSN in the office Maildir", WAIT, || {
        read_maildir(maildir.path())
            .into_iter()
            .find(|m| String::from_utf8_lossy(m).contains("multipart/report"))
    })
    .unwrap();
    let local = read_maildir(maildir.path())
        .into_iter()
        .find(|m| header_value(m, "message-id").as_deref() == Some("<q1@office.test>"));
    let deferred = postern
        .wait_for_event(
            |e| e["type"] == "outbound_deferred" && e["to"] == "slow@example.net",
            WAIT,
        )
        .unwrap();
    let list = posternd(&["queue", "list", "--json"], &cfg).unwrap();
    let entries: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();

    let body = String::from_utf8_lossy(&at_sink.data);
    assert!(
        body.contains("\n.a line that starts with a dot\n..two dots\nend"),
        "{body}"
    );
    let dsn_text = String::from_utf8_lossy(&dsn);
    assert!(dsn_text.contains("report-type"), "{dsn_text}");
    assert!(
        dsn_text.contains("Final-Recipient: rfc822; bad@example.net"),
        "{dsn_text}"
    );
    assert!(dsn_text.contains("Action: failed"), "{dsn_text}");
    assert!(dsn_text.contains("Status: 5.1.1"), "{dsn_text}");
    assert!(
        dsn_text.contains("Diagnostic-Code: smtp; 550 5.1.1"),
        "{dsn_text}"
    );
    assert!(dsn_text.contains("text/rfc822-headers"), "{dsn_text}");
    assert!(
        dsn_text.contains("Subject: quarterly figures"),
        "{dsn_text}"
    );
    assert!(
        !dsn_text.contains("slow@example.net\nAction"),
        "no DSN for the deferred one"
    );
    assert!(
        local.is_some(),
        "the office recipient got it through [inbound] deliver"
    );
    assert!(
        deferred["reply"].as_str().unwrap().starts_with("450 4.2.0"),
        "{deferred}"
    );
    let entry = &entries[0];
    assert_eq!(entries.as_array().unwrap().len(), 1, "{entries}");
    let states: HashMap<&str, &str> = entry["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["address"].as_str().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states["good@example.net"], "delivered");
    assert_eq!(states["bad@example.net"], "bounced");
    assert_eq!(states["slow@example.net"], "queued");
    assert_eq!(states["user@office.test"], "delivered");
    postern.stop().unwrap();
}

/// Peak resident memory of a process (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_50_mb_message_goes_through_the_spool_to_the_sink_within_32_mb_of_memory() {
    skip_unless_root!();
    let sink = SmtpSink::start().unwrap();
    let (state, maildir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (listen, submit) = (free_addr(), free_addr());
    let cfg = config(
        state.path(),
        listen,
        submit,
        maildir.path(),
        sink.addr(),
        sink.addr(),
    )
    .replace(
        "hostname = \"office-gw.test\"",
        "hostname = \"office-gw.test\"\nmax_message_size = \"60M\"",
    );
    let postern = Posternd::run(&cfg, listen).unwrap();
    wait_for_port(submit, WAIT).unwrap();
    let message = TestMessage::sized(1, 50 * 1024 * 1024, &["far@example.net"]);

    let mut s = Transcript::connect(submit).unwrap();
    s.ehlo("pc.office.test").unwrap();
    s.expect("MAIL FROM:<boss@office.test>", 250).unwrap();
    s.expect("RCPT TO:<far@example.net>", 250).unwrap();
    let reply = s.data(&message.data).unwrap();
    s.quit();
    postern
        .wait_for_event(
            |e| e["type"] == "outbound_delivered",
            Duration::from_secs(300),
        )
        .unwrap();
    let peak = peak_rss_kib(postern.pid());
    let at_sink = poll_until("the message at the sink", WAIT, || {
        sink.messages()
            .into_iter()
            .find(|m| m.recipients() == ["far@example.net"])
    })
    .unwrap();
    eprintln!(
        "MEASURED: posternd peak RSS relaying a 50 MiB message: {} KiB",
        peak
    );

    assert_eq!(reply.code, 250, "{}", reply.text());
    assert_eq!(
        digest_without_received(&at_sink.data),
        message.digest(),
        "arrived unaltered"
    );
    assert!(peak <= 32 * 1024, "peak RSS {peak} KiB is over 32 MiB");
    postern.stop().unwrap();
}

/// Submits one message from boss@office.test to `rcpts` on its own connection.
fn submit(addr: SocketAddr, rcpts: &[&str], message_id: &str) {
    let mut s = Transcript::connect(addr).unwrap();
    s.ehlo("pc.office.test").unwrap();
    s.expect("MAIL FROM:<boss@office.test>", 250).unwrap();
    for rcpt in rcpts {
        s.expect(&format!("RCPT TO:<{rcpt}>"), 250).unwrap();
    }
    let data = format!(
        "From: boss@office.test\r\nSubject: {message_id}\r\nMessage-ID: <{message_id}>\r\n\r\nhello\r\n"
    );
    let reply = s.data(data.as_bytes()).unwrap();
    s.quit();
    assert_eq!(reply.code, 250, "{}", reply.text());
}

/// A smarthost that relays to `sink` and defers slow@example.net with 450.
fn smarthost_for(sink: &SmtpSink) -> postern_tests::harness::PostfixQueueBuilder {
    PostfixQueue::builder()
        .relay_domains(&[])
        .deliver_at_once()
        .hostname("smarthost.test")
        .route("example.net", sink.addr())
        .main_cf(
            "smtpd_recipient_restrictions",
            "check_recipient_access inline:{ {slow@example.net=450 4.2.0 try later} }, \
             permit_mynetworks, permit_sasl_authenticated, reject",
        )
}

fn secret(args: &[&str], stdin: &[u8]) {
    let out = posternd_with(args, None, stdin, &[], WAIT).unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn starttls_and_smtps_smarthosts_log_in_with_the_password_from_the_keyring() {
    skip_unless_root!();
    if !postern_tests::harness::require_session_bus() {
        return;
    }
    let pki = TestPki::new(&["127.0.0.1"]).unwrap();
    let sink = SmtpSink::start().unwrap();
    let smtps = free_addr();
    let password = format!("pw-{}", std::process::id());
    let smarthost = smarthost_for(&sink)
        .with_starttls(&pki.cert_pem, &pki.key_pem)
        .with_sasl("office", &password)
        .with_smtps(smtps)
        .start()
        .unwrap();
    let pki_dir = tempfile::tempdir().unwrap();
    pki.write_to(pki_dir.path()).unwrap();
    let ca = pki_dir.path().join("ca.pem");
    secret(&["secret", "set", "office@127.0.0.1"], password.as_bytes());
    secret(&["secret", "set", "intruder@127.0.0.1"], b"wrong password");

    let mut outcomes = Vec::new();
    for (round, url, user) in [
        (1, format!("smtp://{}", smarthost.addr()), "office"),
        (2, format!("smtps://{smtps}"), "office"),
        (3, format!("smtp://{}", smarthost.addr()), "intruder"),
    ] {
        let (state, maildir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (listen, submit_addr) = (free_addr(), free_addr());
        let cfg = config(
            state.path(),
            listen,
            submit_addr,
            maildir.path(),
            smarthost.addr(),
            smarthost.addr(),
        )
        .replace("smtp://", "")
        .replace(
            &format!("smarthost = \"{}\"", smarthost.addr()),
            &format!("smarthost = \"{url}\""),
        )
        .replace(
            "smarthost_tls = \"off\"",
            &format!(
                "smarthost_tls = \"required\"\nsmarthost_username = \"{user}\"\nsmarthost_tls_ca = \"{}\"",
                ca.display()
            ),
        );
        let postern = Posternd::run(&cfg, listen).unwrap();
        wait_for_port(submit_addr, WAIT).unwrap();
        submit(
            submit_addr,
            &["far@example.net"],
            &format!("tls{round}@office.test"),
        );
        let outcome = postern
            .wait_for_event(
                |e| e["type"] == "outbound_delivered" || e["type"] == "outbound_deferred",
                WAIT,
            )
            .unwrap();
        outcomes.push(outcome);
        postern.stop().unwrap();
    }
    let at_sink = sink.wait_for_messages(2, WAIT).unwrap_or_else(|e| {
        panic!(
            "{e}\n{outcomes:#?}\n--- smarthost ---\n{}",
            smarthost.log_text()
        )
    });
    let log = smarthost.log_text();
    secret(&["secret", "delete", "office@127.0.0.1"], b"");
    secret(&["secret", "delete", "intruder@127.0.0.1"], b"");

    eprintln!("outcomes: {outcomes:?}");
    assert_eq!(outcomes[0]["type"], "outbound_delivered", "{}", outcomes[0]);
    assert_eq!(outcomes[1]["type"], "outbound_delivered", "{}", outcomes[1]);
    assert_eq!(at_sink.len(), 2);
    let logins = log
        .lines()
        .filter(|l| l.contains("sasl_username=office"))
        .count();
    assert_eq!(logins, 2, "one login per delivery:\n{log}");
    assert!(
        log.contains("postfix/smtps/smtpd") && log.contains("TLS connection established from"),
        "{log}"
    );
    let refused = &outcomes[2];
    assert_eq!(
        refused["type"], "outbound_deferred",
        "a refused login keeps the mail queued: {refused}"
    );
    let reply = refused["reply"].as_str().unwrap();
    assert!(reply.contains("535"), "{reply}");
    assert!(
        reply.contains("posternd secret set intruder@127.0.0.1"),
        "{reply}"
    );
}

#[test]
fn smarthost_tls_required_refuses_a_smarthost_without_starttls_with_a_clear_error() {
    skip_unless_root!();
    let sink = SmtpSink::start().unwrap();
    let smarthost = smarthost_for(&sink).start().unwrap();
    let (state, maildir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (listen, submit_addr) = (free_addr(), free_addr());
    let cfg = config(
        state.path(),
        listen,
        submit_addr,
        maildir.path(),
        smarthost.addr(),
        smarthost.addr(),
    )
    .replace("smarthost_tls = \"off\"", "smarthost_tls = \"required\"");
    let postern = Posternd::run(&cfg, listen).unwrap();
    wait_for_port(submit_addr, WAIT).unwrap();

    submit(submit_addr, &["far@example.net"], "plain@office.test");
    let deferred = postern
        .wait_for_event(|e| e["type"] == "outbound_deferred", WAIT)
        .unwrap();
    postern.stop().unwrap();

    let reply = deferred["reply"].as_str().unwrap();
    assert!(reply.contains("does not offer STARTTLS"), "{reply}");
    assert!(reply.contains("smarthost_tls = \"required\""), "{reply}");
    assert!(
        reply.contains("smarthost_tls = \"opportunistic\""),
        "{reply}"
    );
    assert!(sink.messages().is_empty(), "nothing went out unencrypted");
    assert!(
        !smarthost.log_text().contains("mail="),
        "no MAIL FROM was sent"
    );
}

#[test]
fn a_delay_warning_at_most_once_and_expiry_only_after_three_real_attempts() {
    skip_unless_root!();
    let sink = SmtpSink::start().unwrap();
    let smarthost = smarthost_for(&sink).start().unwrap();
    let (state, maildir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (listen, submit_addr) = (free_addr(), free_addr());
    let cfg = config(
        state.path(),
        listen,
        submit_addr,
        maildir.path(),
        smarthost.addr(),
        smarthost.addr(),
    )
    .replace(
        "retry_min = \"2s\"\nretry_max = \"4s\"",
        "retry_min = \"1s\"\nretry_max = \"1s\"\nmax_queue_lifetime = \"1s\"\ndelay_warning = \"1s\"",
    );
    let postern = Posternd::run(&cfg, listen).unwrap();
    wait_for_port(submit_addr, WAIT).unwrap();
    postern
        .wait_for_event(|e| e["type"] == "link_changed" && e["up"] == true, WAIT)
        .unwrap();

    submit(submit_addr, &["slow@example.net"], "late@office.test");
    let bounced = postern
        .wait_for_event(|e| e["type"] == "outbound_bounced", WAIT)
        .unwrap();
    let dsns = poll_until("the expiry DSN in the office Maildir", WAIT, || {
        let all = read_maildir(maildir.path());
        all.iter()
            .any(|m| String::from_utf8_lossy(m).contains("Action: failed"))
            .then_some(all)
    })
    .unwrap();
    let deferrals: Vec<u64> = postern
        .events()
        .iter()
        .filter(|e| e["type"] == "outbound_deferred")
        .map(|e| e["attempts"].as_u64().unwrap())
        .collect();
    postern.stop().unwrap();
    let tries = smarthost
        .log_text()
        .lines()
        .filter(|l| l.contains("450 4.2.0 <slow@example.net>"))
        .count();

    let text: Vec<String> = dsns
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let warnings = text
        .iter()
        .filter(|t| t.contains("Action: delayed"))
        .count();
    let failures = text.iter().filter(|t| t.contains("Action: failed")).count();
    eprintln!(
        "MEASURED: outbound expiry: {tries} attempts at the smarthost, deferrals {deferrals:?}, \
         {warnings} delay warning(s), {failures} failure DSN(s)"
    );
    assert_eq!(tries, 3, "bounced after exactly 3 real attempts");
    assert_eq!(deferrals, vec![1, 2], "{deferrals:?}");
    assert_eq!(warnings, 1, "one delay warning:\n{text:#?}");
    assert_eq!(failures, 1, "{text:#?}");
    assert_eq!(bounced["to"], "slow@example.net");
    assert!(
        bounced["reply"].as_str().unwrap().contains("450 4.2.0"),
        "{bounced}"
    );
}

/// Runs swaks inside the namespace: one message to the submission listener there.
fn submit_in(ns: &NetNs, port: u16, n: usize) {
    let out = ns
        .exec("swaks")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(["--from", "boss@office.test", "--to", "friend@example.net"])
        .args(["--header", &format!("Message-ID: <burst{n}@office.test>")])
        .args(["--helo", "pc.office.test", "--silent", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "swaks: {out:?}");
}

#[test]
fn no_attempts_while_the_link_is_down_and_the_burst_reuses_its_connections_after_link_up() {
    skip_unless_root!();
    let ns = NetNs::create().unwrap();
    let sink = SmtpSink::start().unwrap();
    let smarthost = smarthost_for(&sink)
        .listen(SocketAddr::new(ns.host_addr().into(), free_port()))
        .inet_interfaces("all")
        .allow_network(&ns.subnet())
        .start()
        .unwrap();
    let (state, maildir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let submit_port = free_port();
    let submit_addr = SocketAddr::from(([127, 0, 0, 1], submit_port));
    // A lifetime far shorter than the outage: nothing may expire while the link is down.
    let cfg = config(
        state.path(),
        listen,
        submit_addr,
        maildir.path(),
        smarthost.addr(),
        smarthost.addr(),
    )
    .replace(
        "retry_min = \"2s\"",
        "max_queue_lifetime = \"1s\"\nretry_min = \"2s\"",
    );
    let postern = Posternd::builder(&cfg).in_netns(&ns).start().unwrap();
    postern
        .wait_for_event(|e| e["type"] == "link_changed" && e["up"] == true, WAIT)
        .unwrap();
    ns.link_down().unwrap();
    postern
        .wait_for_event(|e| e["type"] == "link_changed" && e["up"] == false, WAIT)
        .unwrap();

    for n in 0..BURST {
        submit_in(&ns, submit_port, n);
    }
    let engine_config = postern.config_path().to_str().unwrap().to_string();
    let queue_list = || {
        let out = posternd_with(
            &["queue", "list", "--json", "--config", &engine_config],
            None,
            b"",
            &[],
            WAIT,
        )
        .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    // Long enough for two retry rounds (retry_min = 2s) and the 1 s lifetime to pass.
    let watch_until = std::time::Instant::now() + Duration::from_secs(5);
    let mut attempts_while_down = 0;
    let mut queued_while_down = 0;
    while std::time::Instant::now() < watch_until {
        let entries = queue_list();
        queued_while_down = entries.as_array().unwrap().len();
        attempts_while_down += entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["attempts"].as_u64().unwrap())
            .sum::<u64>();
        std::thread::sleep(Duration::from_millis(500));
    }
    let sessions_while_down = smarthost
        .log_text()
        .lines()
        .filter(|l| l.contains("disconnect from") && l.contains("mail="))
        .count();
    ns.link_up().unwrap();
    let delivered = sink.wait_for_messages(BURST, WAIT).unwrap_or_else(|e| {
        panic!(
            "{e}\n--- events ---\n{}\n--- smarthost ---\n{}",
            postern.stdout_lines().join("\n"),
            smarthost.log_text()
        )
    });
    poll_until("the relay sessions to end", WAIT, || {
        (mails_per_session(&smarthost.log_text())
            .iter()
            .sum::<usize>()
            >= BURST)
            .then_some(())
    })
    .unwrap();
    let bounces = postern
        .events()
        .iter()
        .filter(|e| e["type"] == "outbound_bounced")
        .count();
    postern.stop().unwrap();
    let log = smarthost.log_text();
    let sessions = mails_per_session(&log);

    eprintln!(
        "MEASURED: burst of {BURST} after link-up: messages per smarthost connection {sessions:?}"
    );
    assert_eq!(queued_while_down, BURST);
    assert_eq!(attempts_while_down, 0, "no attempt counted while down");
    assert_eq!(
        sessions_while_down, 0,
        "nothing reached the smarthost while down"
    );
    assert_eq!(bounces, 0, "nothing expired while the link was down");
    assert_eq!(delivered.len(), BURST);
    assert_eq!(sessions.iter().sum::<usize>(), BURST);
    assert!(
        sessions.len() <= postern_engine::outbound::runner::CONNECTIONS,
        "at most {} connections at once for the burst:\n{log}",
        postern_engine::outbound::runner::CONNECTIONS
    );
    assert!(
        sessions.iter().all(|&n| n >= 2),
        "each connection carries several messages (reused with RSET): {sessions:?}"
    );
}

/// Messages in the burst: more than the connections of one burst, so each one is reused.
const BURST: usize = 12;

/// MAIL commands per smarthost session, from Postfix's `disconnect from ... mail=N` lines.
fn mails_per_session(log: &str) -> Vec<usize> {
    log.lines()
        .filter(|l| l.contains("disconnect from"))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|w| w.strip_prefix("mail="))
        .filter_map(|n| n.split('/').next_back()?.parse().ok())
        .collect()
}
