//! The harness's own peers behave as the real-peer tests rely on.

use std::net::SocketAddr;
use std::time::Duration;

use postern_tests::harness::{
    Dnsmasq, NetNs, PostfixQueue, ScriptedServer, SilentServer, SmtpSink, TestMessage, TestPki,
    Transcript, digest_without_received, free_addr, posternd_with, send, wait_for_port,
};
use postern_tests::skip_unless_root;

const WAIT: Duration = Duration::from_secs(20);

fn etrn_reply(server: SocketAddr, domain: &str) -> (u16, String) {
    let mut s = Transcript::connect(server).expect("connects");
    s.ehlo("office.test").expect("EHLO");
    let reply = s.cmd(&format!("ETRN {domain}")).expect("ETRN answered");
    s.quit();
    (reply.code, reply.text())
}

#[test]
fn postfix_holds_mail_until_etrn_then_releases_it_to_the_office() {
    skip_unless_root!();
    let office = SmtpSink::start().expect("sink starts");
    let isp = PostfixQueue::start(office.addr()).expect("postfix starts");
    let sent = TestMessage::sized(1, 3_000, &["user@office.test"]);
    isp.queue_messages(std::slice::from_ref(&sent))
        .expect("queued");
    assert_eq!(isp.queue_len().expect("queue listed"), 1);
    assert!(office.messages().is_empty(), "held until ETRN");

    let mut s = Transcript::connect(isp.addr()).expect("connects");
    let ehlo = s.ehlo("office.test").expect("EHLO");
    let reply = s.cmd("ETRN office.test").expect("ETRN answered");
    s.quit();

    assert!(ehlo.has_keyword("ETRN"));
    assert_eq!(
        (reply.code, reply.text()),
        (250, "Queuing started".to_string())
    );
    let received = office.wait_for_messages(1, WAIT).expect("released");
    assert_eq!(received[0].recipients(), vec!["user@office.test"]);
    assert_eq!(digest_without_received(&received[0].data), sent.digest());
    isp.wait_for_queue_len(0, WAIT).expect("queue empty");
    isp.wait_for_log("etrn=1", WAIT).expect("session logged");
    assert_eq!(isp.etrn_count(), 1);
}

#[test]
fn postfix_refuses_etrn_for_an_unknown_domain() {
    skip_unless_root!();
    let isp = PostfixQueue::builder().start().expect("postfix starts");

    let (code, text) = etrn_reply(isp.addr(), "unknown.test");

    assert_eq!(
        (code, text.as_str()),
        (459, "<unknown.test>: service unavailable")
    );
}

#[test]
fn postfix_keeps_mail_released_to_an_office_that_is_down() {
    skip_unless_root!();
    let nobody_listens = free_addr();
    let isp = PostfixQueue::start(nobody_listens).expect("postfix starts");
    isp.queue_messages(&[TestMessage::sized(2, 500, &["user@office.test"])])
        .expect("queued");

    let (code, _) = etrn_reply(isp.addr(), "office.test");
    isp.wait_for_log("Connection refused", WAIT)
        .expect("delivery tried");

    assert_eq!(code, 250);
    assert_eq!(isp.queue_len().expect("queue listed"), 1);
}

#[test]
fn postfix_variants_answer_etrn_with_their_error_codes() {
    skip_unless_root!();
    let rejected = PostfixQueue::builder()
        .etrn_rejected()
        .start()
        .expect("starts");
    let flush_down = PostfixQueue::builder()
        .flush_down()
        .start()
        .expect("starts");
    let without = PostfixQueue::builder()
        .without_etrn()
        .start()
        .expect("starts");

    let (rejected_code, rejected_text) = etrn_reply(rejected.addr(), "office.test");
    let (flush_code, flush_text) = etrn_reply(flush_down.addr(), "office.test");
    let mut s = Transcript::connect(without.addr()).expect("connects");
    let ehlo = s.ehlo("office.test").expect("EHLO");
    let absent = s.cmd("ETRN office.test").expect("answered");

    assert_eq!(rejected_code, 554, "{rejected_text}");
    assert!(rejected_text.contains("Access denied"), "{rejected_text}");
    assert_eq!(
        (flush_code, flush_text.as_str()),
        (458, "Unable to queue messages")
    );
    assert!(!ehlo.has_keyword("ETRN"), "{ehlo}");
    assert_eq!(absent.code, 500, "{absent}");
}

#[test]
fn postfix_offers_starttls_with_the_given_certificate() {
    skip_unless_root!();
    let pki = TestPki::new(&["isp-queue.test"]).expect("certificates");
    let isp = PostfixQueue::builder()
        .with_starttls(&pki.cert_pem, &pki.key_pem)
        .start()
        .expect("postfix starts");

    let mut s = Transcript::connect(isp.addr()).expect("connects");
    let before = s.ehlo("office.test").expect("EHLO");
    s.starttls("isp-queue.test", &pki.ca_pem)
        .expect("TLS handshake");
    let after = s.ehlo("office.test").expect("EHLO over TLS");
    let etrn = s.cmd("ETRN office.test").expect("ETRN over TLS");

    assert!(before.has_keyword("STARTTLS"));
    assert!(!after.has_keyword("STARTTLS"));
    assert_eq!(etrn.code, 250);
}

#[test]
fn smtp_sink_receives_and_can_reject_after_data() {
    skip_unless_root!();
    let sink = SmtpSink::start().expect("sink starts");
    let soft = SmtpSink::rejecting_data(4).expect("sink starts");
    let hard = SmtpSink::rejecting_data(5).expect("sink starts");
    let message = TestMessage::sized_8bit(3, 2_000, &["a@office.test", "b@office.test"]);

    let accepted = send(sink.addr(), &message).expect("sent");
    let soft_reply = send(soft.addr(), &message).expect("sent");
    let hard_reply = send(hard.addr(), &message).expect("sent");

    assert_eq!(accepted.code, 250);
    assert_eq!(soft_reply.code / 100, 4);
    assert_eq!(hard_reply.code / 100, 5);
    let got = sink.wait_for_messages(1, WAIT).expect("dumped");
    assert_eq!(got[0].sender(), "sender-3@example.net");
    assert_eq!(got[0].recipients(), vec!["a@office.test", "b@office.test"]);
    assert_eq!(digest_without_received(&got[0].data), message.digest());
}

#[test]
fn silent_server_accepts_and_never_speaks() {
    let silent = SilentServer::start().expect("listens");

    let result = Transcript::connect_timeout(silent.addr(), Duration::from_millis(300));

    assert!(result.is_err());
    assert_eq!(silent.accepted(), 1);
}

#[test]
fn dnsmasq_answers_test_records_and_nxdomain() {
    let dns = Dnsmasq::builder()
        .mx("office.test", "mx1.office.test", 10)
        .host("mx1.office.test", "127.0.0.1")
        .null_mx("null.test")
        .start()
        .expect("dnsmasq starts");

    let mx = dns.query("office.test", 15).expect("MX answer");
    let a = dns.query("mx1.office.test", 1).expect("A answer");
    let missing = dns.query("nothing.office.test", 1).expect("answer");

    assert_eq!((mx.rcode, mx.answers), (0, 1));
    assert_eq!((a.rcode, a.answers), (0, 1));
    assert_eq!(missing.rcode, 3);
}

#[test]
fn netns_link_goes_down_and_up() {
    skip_unless_root!();
    let ns = NetNs::create().expect("namespace");
    let inside = SocketAddr::from((ns.ns_addr(), 2525));
    let mut listener = ns
        .exec("smtp-sink")
        .args(["-u", "nobody", &inside.to_string(), "8"])
        .spawn()
        .expect("smtp-sink in the namespace");
    wait_for_port(inside, WAIT).expect("reachable while up");

    ns.link_down().expect("down");
    let while_down = std::net::TcpStream::connect_timeout(&inside, Duration::from_secs(2));
    ns.link_up().expect("up");
    let after = wait_for_port(inside, WAIT);

    let _ = listener.kill();
    let _ = listener.wait();
    assert!(while_down.is_err());
    assert!(after.is_ok());
}

#[test]
fn postfix_runs_inside_a_namespace() {
    skip_unless_root!();
    let ns = NetNs::create().expect("namespace");
    let isp = PostfixQueue::builder()
        .in_netns(&ns)
        .start()
        .expect("postfix starts in the namespace");
    wait_for_port(isp.addr(), WAIT).expect("reachable from the host");

    let (code, _) = etrn_reply(isp.addr(), "office.test");

    assert_eq!(code, 250);
}

#[test]
fn posternd_binary_is_built_and_runs() {
    let output = posternd_with(&["--help"], None, b"", &[], Duration::from_secs(120))
        .expect("posternd runs");

    assert!(output.status.code().is_some(), "{output:?}");
}

#[test]
fn posternd_run_reports_an_early_exit_with_its_log() {
    let listen = free_addr();

    let started = postern_tests::harness::Posternd::run("this is not toml [", listen);

    let Err(error) = started else {
        panic!("posternd listened on {listen} with a broken config");
    };
    assert!(error.to_string().contains("exited"), "{error}");
}

#[test]
fn scripted_server_answers_what_the_script_says_and_records_commands() {
    let server = ScriptedServer::start("220 isp.test ESMTP", |command| {
        Some(match command {
            c if c.starts_with("EHLO") => "250-isp.test\n250 ETRN".into(),
            c if c.starts_with("ETRN") => "253 3 messages pending, started".into(),
            "DATA" => "354 go ahead".into(),
            "." => "250 stored".into(),
            "QUIT" => "221 bye".into(),
            _ => "250 ok".into(),
        })
    })
    .expect("listens");
    let message = TestMessage::sized(4, 600, &["user@office.test"]);

    let mut s = Transcript::connect(server.addr()).expect("connects");
    let ehlo = s.ehlo("office.test").expect("EHLO");
    let etrn = s.cmd("ETRN office.test").expect("ETRN");
    s.quit();
    let stored = send(server.addr(), &message).expect("sent");

    assert!(ehlo.has_keyword("ETRN"));
    assert_eq!(
        (etrn.code, etrn.text()),
        (253, "3 messages pending, started".into())
    );
    assert_eq!(stored.code, 250);
    assert!(server.commands().contains(&"ETRN office.test".to_string()));
    assert_eq!(server.messages(), vec![message.data.clone()]);
}
