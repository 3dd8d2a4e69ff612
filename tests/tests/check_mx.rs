//! `posternd check-mx` against a real DNS server (dnsmasq) and real SMTP servers (Postfix, the
//! ODMR provider) on 127.0.0.1. Every test asserts finding ids and severities, and that the
//! report's JSON round-trips.
#![allow(clippy::unwrap_used)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use postern_engine::config::{Protocol, QueueServer, TlsMode};
use postern_engine::mx::{self, CheckInput, Report, Severity};
use postern_tests::harness::odmr::{OdmrConfig, OdmrProvider};
use postern_tests::harness::{Dnsmasq, PostfixQueue, SmtpSink, TestPki, free_port};

/// dnsmasq with `records`; `.test` and `.com` are answered locally only (unknown names there are
/// NXDOMAIN), anything else is REFUSED.
fn dnsmasq(records: &[&str]) -> Dnsmasq {
    let mut b = Dnsmasq::builder().arg("--local=/com/");
    for r in records {
        b = b.arg(r);
    }
    b.start().expect("dnsmasq starts")
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn queue(host: &str, port: u16, protocol: Protocol) -> QueueServer {
    QueueServer {
        port,
        tls: TlsMode::Opportunistic,
        timeout: Duration::from_secs(10),
        ..QueueServer::new(host, protocol)
    }
}

/// A DNS-only check of `domain` against `dns`.
fn input(domain: &str, dns: &Dnsmasq) -> CheckInput {
    let mut i = CheckInput::new(domain);
    i.nameservers = vec![dns.addr()];
    i.dns_timeout = Duration::from_secs(1);
    i.probe_smtp = false;
    i.mx_port = 2525;
    i.inbound_listen = vec![SocketAddr::from(([127, 0, 0, 1], 2525))];
    i
}

async fn run(input: &CheckInput) -> Report {
    let report = mx::check(input).await.unwrap();
    let json = serde_json::to_string_pretty(&report).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report, "the JSON report round-trips");
    report
}

#[track_caller]
fn assert_finding(report: &Report, id: &str, severity: Severity) {
    assert!(
        report.find(id).any(|f| f.severity == severity),
        "expected {id} ({severity:?}) in:\n{}",
        report.render_human(false)
    );
}

#[track_caller]
fn assert_no_finding(report: &Report, id: &str) {
    assert!(
        report.find(id).next().is_none(),
        "unexpected {id} in:\n{}",
        report.render_human(false)
    );
}

#[track_caller]
fn assert_no_errors(report: &Report) {
    assert!(
        !report.has_errors(),
        "expected no errors in:\n{}",
        report.render_human(false)
    );
}

const OFFICE_HOST: &str = "--host-record=mx1.office.test,127.0.0.1";
const ISP_HOST: &str = "--host-record=isp.test,127.0.0.1";

// ---------------------------------------------------------------------------------------------
// DNS-side checks

#[tokio::test]
async fn correct_setup_has_no_errors() {
    let dns = dnsmasq(&[
        "--mx-host=office.test,mx1.office.test,10",
        "--mx-host=office.test,isp.test,20",
        OFFICE_HOST,
        ISP_HOST,
    ]);
    let mut i = input("office.test", &dns);
    i.queue_servers = vec![queue("isp.test", 25, Protocol::Etrn)];

    let report = run(&i).await;

    assert_no_errors(&report);
    assert_finding(&report, "mx.found", Severity::Ok);
    assert_finding(&report, "pref.order-ok", Severity::Ok);
    assert_finding(&report, "etrn.reachable", Severity::Ok);
    assert_eq!(report.office_host.as_deref(), Some("mx1.office.test"));
    assert_eq!(report.mx.len(), 2);
    assert_eq!(report.exit_code(), 0);
}

#[tokio::test]
async fn backup_with_lower_preference_than_office_is_an_error() {
    let dns = dnsmasq(&[
        "--mx-host=office.test,mx1.office.test,20",
        "--mx-host=office.test,isp.test,10",
        OFFICE_HOST,
        ISP_HOST,
    ]);
    let mut i = input("office.test", &dns);
    i.queue_servers = vec![queue("ISP.test.", 25, Protocol::Etrn)];

    let report = run(&i).await;

    assert_finding(&report, "pref.backup-preferred", Severity::Error);
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test]
async fn equal_preferences_are_round_robin() {
    let dns = dnsmasq(&[
        "--mx-host=office.test,mx1.office.test,10",
        "--mx-host=office.test,isp.test,10",
        OFFICE_HOST,
        ISP_HOST,
    ]);
    let mut i = input("office.test", &dns);
    i.queue_servers = vec![queue("isp.test", 25, Protocol::Etrn)];

    let report = run(&i).await;

    assert_finding(&report, "pref.equal", Severity::Error);
}

#[tokio::test]
async fn mx_pointing_to_a_cname_is_an_error() {
    let dns = dnsmasq(&[
        "--mx-host=office.test,alias.office.test,10",
        "--cname=alias.office.test,mx1.office.test",
        OFFICE_HOST,
    ]);

    let report = run(&input("office.test", &dns)).await;

    assert_finding(&report, "mx.cname-target", Severity::Error);
    let f = report.find("mx.cname-target").next().unwrap();
    assert_eq!(f.subject, "alias.office.test");
    assert!(f.evidence.contains("mx1.office.test"), "{}", f.evidence);
}

#[tokio::test]
async fn mx_pointing_to_an_ip_literal_is_an_error() {
    let dns = dnsmasq(&["--mx-host=office.test,192.0.2.25,10"]);

    let report = run(&input("office.test", &dns)).await;

    assert_finding(&report, "mx.ip-literal", Severity::Error);
}

#[tokio::test]
async fn mx_target_without_addresses_is_an_error() {
    let dns = dnsmasq(&[
        "--mx-host=office.test,mx1.office.test,10",
        "--mx-host=office.test,gone.office.test,20",
        OFFICE_HOST,
    ]);

    let report = run(&input("office.test", &dns)).await;

    assert_finding(&report, "mx.no-address", Severity::Error);
    assert_eq!(
        report.find("mx.no-address").next().unwrap().subject,
        "gone.office.test"
    );
}

#[tokio::test]
async fn nxdomain_is_an_error() {
    let dns = dnsmasq(&[OFFICE_HOST]);

    let report = run(&input("nosuch.test", &dns)).await;

    assert_finding(&report, "domain.nxdomain", Severity::Error);
    assert!(report.complete);
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test]
async fn null_mx_means_no_mail() {
    let dns = dnsmasq(&["--mx-host=null.test,.,0"]);

    let report = run(&input("null.test", &dns)).await;

    assert_finding(&report, "mx.null", Severity::Error);
    assert!(report.mx.is_empty());
}

#[tokio::test]
async fn no_mx_is_implicit_mx_and_no_backup() {
    let dns = dnsmasq(&["--host-record=office.test,127.0.0.1"]);
    let mut i = input("office.test", &dns);
    i.queue_servers = vec![queue("isp.test", 25, Protocol::Etrn)];

    let report = run(&i).await;

    assert_finding(&report, "mx.none", Severity::Warning);
    assert_finding(&report, "pref.queue-not-in-mx", Severity::Warning);
    assert_no_finding(&report, "dns.lookup-failed");
}

#[tokio::test]
async fn unanswering_dns_server_is_transient_not_no_mx() {
    // A bound UDP socket that nobody reads: queries go unanswered.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut i = CheckInput::new("office.test");
    i.nameservers = vec![silent.local_addr().unwrap()];
    i.dns_timeout = Duration::from_secs(1);
    i.probe_smtp = false;

    let report = run(&i).await;

    assert_finding(&report, "dns.lookup-failed", Severity::Error);
    assert_no_finding(&report, "mx.none");
    assert_no_finding(&report, "domain.nxdomain");
    assert!(!report.complete);
    assert_eq!(report.exit_code(), 2);
}

#[tokio::test]
async fn refusing_dns_server_is_transient_not_no_mx() {
    // dnsmasq has no upstream and nothing local for .example: it answers REFUSED.
    let dns = dnsmasq(&[OFFICE_HOST]);

    let report = run(&input("office.example", &dns)).await;

    assert_finding(&report, "dns.lookup-failed", Severity::Error);
    let f = report.find("dns.lookup-failed").next().unwrap();
    assert!(f.evidence.contains("Refused"), "{}", f.evidence);
    assert_no_finding(&report, "mx.none");
    assert_eq!(report.exit_code(), 2);
}

#[tokio::test]
async fn json_schema_has_the_documented_fields() {
    let dns = dnsmasq(&["--mx-host=office.test,mx1.office.test,10", OFFICE_HOST]);

    let report = run(&input("office.test", &dns)).await;
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();

    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["complete", "domain", "findings", "mx", "office_host"]
    );
    assert_eq!(
        json["mx"][0],
        serde_json::json!({"preference": 10, "host": "mx1.office.test", "addresses": ["127.0.0.1"]})
    );
    for f in json["findings"].as_array().unwrap() {
        let obj = f.as_object().unwrap();
        for k in ["id", "severity", "subject", "evidence"] {
            assert!(obj.contains_key(k), "{k} missing in {f}");
        }
        assert!(
            obj.keys()
                .all(|k| ["id", "severity", "subject", "evidence", "fix"].contains(&k.as_str()))
        );
        assert!(["ok", "info", "warning", "error"].contains(&f["severity"].as_str().unwrap()));
    }
}

#[tokio::test]
async fn queue_server_missing_from_mx_set_is_a_warning() {
    let dns = dnsmasq(&["--mx-host=office.test,mx1.office.test,10", OFFICE_HOST]);
    let mut i = input("office.test", &dns);
    i.queue_servers = vec![queue("isp.test", 25, Protocol::Etrn)];

    let report = run(&i).await;

    assert_finding(&report, "pref.queue-not-in-mx", Severity::Warning);
    assert_finding(&report, "mx.single", Severity::Info);
}

#[tokio::test]
async fn configured_office_host_missing_from_mx_set_is_an_error() {
    let dns = dnsmasq(&["--mx-host=office.test,isp.test,10", ISP_HOST]);
    let mut i = input("office.test", &dns);
    i.queue_servers = vec![queue("isp.test", 25, Protocol::Etrn)];

    let report = run(&i).await;

    assert_finding(&report, "pref.office-missing", Severity::Error);
}

#[tokio::test]
async fn private_address_on_a_public_domain_cannot_receive_etrn() {
    let dns = dnsmasq(&[
        "--mx-host=office-example.com,mail.office-example.com,10",
        "--mx-host=office-example.com,backup.isp-example.com,20",
        "--host-record=mail.office-example.com,192.168.77.10",
        "--host-record=backup.isp-example.com,192.0.2.20",
    ]);
    let mut i = input("office-example.com", &dns);
    i.queue_servers = vec![queue("backup.isp-example.com", 25, Protocol::Etrn)];

    let report = run(&i).await;

    assert_finding(&report, "mx.private-address", Severity::Error);
    assert_finding(&report, "etrn.unreachable-address", Severity::Error);
    assert_finding(&report, "etrn.cannot-deliver", Severity::Error);
    assert_eq!(report.recommended_protocol, Some(Protocol::Atrn));
}

#[tokio::test]
async fn duplicate_targets_and_reverse_dns() {
    let dns = dnsmasq(&[
        "--mx-host=office.test,mx1.office.test,10",
        "--mx-host=office.test,MX1.office.test,20",
        // dnsmasq answers "localhost" for all of 127/8; a documentation address gets the PTR
        // of our choosing (nothing connects to it: this test makes no SMTP probes).
        "--host-record=mx1.office.test,192.0.2.10",
    ]);

    let report = run(&input("office.test", &dns)).await;

    assert_finding(&report, "mx.duplicate-target", Severity::Warning);
    assert_finding(&report, "rdns.match", Severity::Ok);
    assert_finding(&report, "etrn.needs-forwarding", Severity::Info);
}

#[tokio::test]
async fn listener_on_another_port_needs_forwarding() {
    let dns = dnsmasq(&["--mx-host=office.test,mx1.office.test,10", OFFICE_HOST]);
    let mut i = input("office.test", &dns);
    i.inbound_listen = vec![SocketAddr::from(([0, 0, 0, 0], 2526))];

    let report = run(&i).await;

    assert_finding(&report, "etrn.listener-port", Severity::Warning);
    assert_finding(&report, "rdns.mismatch", Severity::Info);
}

// ---------------------------------------------------------------------------------------------
// SMTP probes against real servers: Postfix as the ISP's queue, smtp-sink as the office's server
// (both on 127.0.0.1, told apart by port), the ODMR provider as an ATRN-only ISP.

/// DNS for a two-MX setup: mx1.office.test (10) is the office, isp.test (20) the ISP's queue.
fn two_mx_dns() -> Dnsmasq {
    dnsmasq(&[
        "--mx-host=office.test,mx1.office.test,10",
        "--mx-host=office.test,isp.test,20",
        OFFICE_HOST,
        ISP_HOST,
        "--host-record=isp2.test,127.0.0.1",
    ])
}

fn office_server() -> SmtpSink {
    SmtpSink::start().expect("smtp-sink starts")
}

fn smtp_input(dns: &Dnsmasq, office: &SmtpSink) -> CheckInput {
    let mut i = input("office.test", dns);
    i.probe_smtp = true;
    i.smtp_timeout = Duration::from_secs(10);
    i.mx_port = office.port();
    i.inbound_listen = vec![office.addr()];
    i
}

#[tokio::test]
async fn correct_setup_with_real_servers_has_no_errors() {
    let dns = two_mx_dns();
    let isp = PostfixQueue::builder().start().expect("postfix starts");
    let office = office_server();
    let mut i = smtp_input(&dns, &office);
    i.queue_servers = vec![queue("isp.test", isp.port(), Protocol::Etrn)];

    let report = run(&i).await;

    assert_no_errors(&report);
    assert_eq!(
        report
            .find("smtp.answers")
            .filter(|f| f.severity == Severity::Ok)
            .count(),
        2,
        "{}",
        report.render_human(false)
    );
    assert_finding(&report, "smtp.etrn-offered", Severity::Ok);
    assert_finding(&report, "smtp.no-starttls", Severity::Info);
    assert_finding(&report, "etrn.reachable", Severity::Ok);
    assert_eq!(report.recommended_protocol, Some(Protocol::Etrn));
    assert_eq!(report.exit_code(), 0);
}

#[tokio::test]
async fn queue_server_not_advertising_etrn_is_an_error() {
    let dns = two_mx_dns();
    let isp = PostfixQueue::builder()
        .without_etrn()
        .start()
        .expect("postfix starts");
    let office = office_server();
    let mut i = smtp_input(&dns, &office);
    i.queue_servers = vec![queue("isp.test", isp.port(), Protocol::Etrn)];

    let report = run(&i).await;

    assert_finding(&report, "smtp.no-etrn", Severity::Error);
    assert_eq!(
        report.find("smtp.no-etrn").next().unwrap().subject,
        format!("isp.test:{}", isp.port())
    );
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test]
async fn atrn_only_server_gets_atrn_recommended() {
    let dns = two_mx_dns();
    let office = office_server();
    let provider = OdmrProvider::start(OdmrConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .expect("the ODMR provider starts");
    let mut i = smtp_input(&dns, &office);
    i.queue_servers = vec![queue("isp.test", provider.addr().port(), Protocol::Etrn)];

    let as_etrn = run(&i).await;
    i.queue_servers[0].protocol = Protocol::Atrn;
    let as_atrn = run(&i).await;

    assert_finding(&as_etrn, "smtp.no-etrn", Severity::Error);
    let fix = as_etrn.find("smtp.no-etrn").next().unwrap().fix.clone();
    assert!(fix.unwrap().contains("protocol = \"atrn\""));
    assert_eq!(as_etrn.recommended_protocol, Some(Protocol::Atrn));
    assert_finding(&as_atrn, "smtp.atrn-offered", Severity::Ok);
    assert_no_errors(&as_atrn);
}

#[tokio::test]
async fn unreachable_queue_server_is_an_error() {
    let dns = two_mx_dns();
    let closed = free_port();
    let mut i = input("office.test", &dns);
    i.probe_smtp = true;
    i.smtp_timeout = Duration::from_secs(5);
    i.mx_port = free_port();
    i.queue_servers = vec![queue("isp.test", closed, Protocol::Etrn)];

    let report = run(&i).await;

    assert!(
        report
            .find("smtp.unreachable")
            .any(|f| f.severity == Severity::Error && f.subject == format!("isp.test:{closed}")),
        "{}",
        report.render_human(false)
    );
    assert!(
        report
            .find("smtp.unreachable")
            .any(|f| f.severity == Severity::Warning && f.subject.starts_with("mx1.office.test:")),
        "{}",
        report.render_human(false)
    );
}

#[tokio::test]
async fn starttls_certificate_is_verified() {
    let dns = two_mx_dns();
    let pki = TestPki::new(&["isp.test"]).unwrap();
    let certs = tempfile::tempdir().unwrap();
    pki.write_to(certs.path()).unwrap();
    let isp = PostfixQueue::builder()
        .with_starttls(&pki.cert_pem, &pki.key_pem)
        .start()
        .expect("postfix starts");
    let office = office_server();
    let mut trusted = queue("isp.test", isp.port(), Protocol::Etrn);
    trusted.tls_ca = Some(certs.path().join("ca.pem"));
    let mut i = smtp_input(&dns, &office);
    i.queue_servers = vec![trusted];

    let with_ca = run(&i).await;
    i.queue_servers[0].tls_ca = None;
    let without_ca = run(&i).await;
    i.queue_servers[0].tls = TlsMode::Required;
    let required_without_ca = run(&i).await;

    assert_finding(&with_ca, "smtp.tls-ok", Severity::Ok);
    assert_finding(&with_ca, "smtp.etrn-offered", Severity::Ok);
    assert_no_errors(&with_ca);
    assert_finding(&without_ca, "smtp.tls-invalid", Severity::Warning);
    assert_finding(&required_without_ca, "smtp.tls-invalid", Severity::Error);
}

#[tokio::test]
async fn dry_run_etrn_reports_the_reply_and_its_meaning() {
    let dns = two_mx_dns();
    let isp = PostfixQueue::builder().start().expect("postfix starts");
    let isp2 = PostfixQueue::builder()
        .etrn_rejected()
        .start()
        .expect("postfix starts");
    let office = office_server();
    let mut i = smtp_input(&dns, &office);
    i.queue_servers = vec![
        queue("isp.test", isp.port(), Protocol::Etrn),
        queue("isp2.test", isp2.port(), Protocol::Etrn),
    ];
    i.dry_run_etrn = true;

    let report = run(&i).await;

    let accepted = report
        .find("etrn.dry-run")
        .find(|f| f.subject == format!("isp.test:{}", isp.port()))
        .unwrap();
    assert_eq!(accepted.severity, Severity::Ok);
    assert!(accepted.evidence.contains("250"), "{}", accepted.evidence);
    let refused = report
        .find("etrn.dry-run")
        .find(|f| f.subject == format!("isp2.test:{}", isp2.port()))
        .unwrap();
    assert_eq!(refused.severity, Severity::Error);
    assert!(refused.evidence.contains("554"), "{}", refused.evidence);
}

/// Also prints the human report of a broken setup (for the docs:
/// `cargo test -p postern-tests --test check_mx broken_setup -- --nocapture`).
#[tokio::test]
async fn broken_setup_report() {
    let dns = dnsmasq(&[
        "--mx-host=office.test,mail.office.test,20",
        "--mx-host=office.test,isp.test,10",
        "--mx-host=office.test,alias.office.test,30",
        "--cname=alias.office.test,mail.office.test",
        "--host-record=mail.office.test,127.0.0.1",
        ISP_HOST,
    ]);
    let isp = PostfixQueue::builder()
        .without_etrn()
        .start()
        .expect("postfix starts");
    let office = office_server();
    let mut i = smtp_input(&dns, &office);
    i.office_host = Some("mail.office.test".into());
    i.queue_servers = vec![queue("isp.test", isp.port(), Protocol::Etrn)];
    i.inbound_listen = vec![SocketAddr::from(([127, 0, 0, 1], 2525))];

    let report = run(&i).await;
    println!("{}", report.render_human(false));

    assert_finding(&report, "pref.backup-preferred", Severity::Error);
    assert_finding(&report, "mx.cname-target", Severity::Error);
    assert_finding(&report, "smtp.no-etrn", Severity::Error);
    assert_finding(&report, "etrn.listener-port", Severity::Warning);
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test]
async fn office_hint_picks_the_office_and_a_preferred_stranger_is_an_error() {
    let dns = dnsmasq(&[
        "--mx-host=office.test,old.office.test,5",
        "--mx-host=office.test,mx1.office.test,10",
        "--mx-host=office.test,isp.test,20",
        "--host-record=old.office.test,127.0.0.1",
        OFFICE_HOST,
        ISP_HOST,
    ]);
    let mut i = input("office.test", &dns);
    i.office_hint = Some("MX1.office.test".into());
    i.queue_servers = vec![queue("isp.test", 25, Protocol::Etrn)];

    let report = run(&i).await;

    assert_eq!(report.office_host.as_deref(), Some("mx1.office.test"));
    assert_finding(&report, "pref.unknown-mx", Severity::Error);
    assert_finding(&report, "pref.order-ok", Severity::Ok);
}

/// The CLI contract: `posternd check-mx DOMAIN --nameserver IP:PORT [--json]`, exit 0 = no
/// errors, 1 = errors found, 2 = the check could not run.
#[test]
fn the_cli_reports_as_json_and_exits_by_severity() {
    let dns = dnsmasq(&["--mx-host=null.test,.,0"]);
    let ns = dns.addr().to_string();

    let nx = postern_tests::harness::posternd_with(
        &["check-mx", "missing.test", "--nameserver", &ns, "--json"],
        None,
        b"",
        &[],
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(
        nx.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&nx.stderr)
    );
    let report: Report = serde_json::from_slice(&nx.stdout).unwrap();
    assert_finding(&report, "domain.nxdomain", Severity::Error);

    let bad = postern_tests::harness::posternd_with(
        &["check-mx", "not a domain", "--nameserver", &ns],
        None,
        b"",
        &[],
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test]
async fn a_turn_queue_server_is_warned_about() {
    let dns = dnsmasq(&[
        "--mx-host=office.test,mail.office.test,10",
        "--mx-host=office.test,isp.test,20",
        "--host-record=mail.office.test,127.0.0.1",
        "--host-record=isp.test,127.0.0.1",
    ]);
    let mut i = input("office.test", &dns);
    let mut turn = queue("isp.test", 25, Protocol::Turn);
    turn.allow_insecure_turn = true;
    i.queue_servers = vec![turn];

    let report = run(&i).await;

    assert_finding(&report, "queue.turn-insecure", Severity::Warning);
}

/// `[outbound]` of a config whose smarthost is `url`, with `extra` keys.
fn outbound(url: &str, extra: &str) -> postern_engine::config::Outbound {
    let text = format!(
        "domains = [\"office.test\"]\n[[queue_servers]]\nhost = \"isp.test\"\n\
         [inbound]\ndeliver = \"maildir:/tmp/m\"\n[outbound]\nlisten = [\"127.0.0.1:2587\"]\n\
         smarthost = \"{url}\"\n{extra}"
    );
    postern_engine::config::Config::parse(&text, std::path::Path::new("postern.toml"))
        .unwrap()
        .outbound
        .unwrap()
}

#[tokio::test]
async fn the_smarthost_is_checked_for_tls_and_the_login_mechanisms() {
    let dns = two_mx_dns();
    let pki = TestPki::new(&["127.0.0.1"]).unwrap();
    let certs = tempfile::tempdir().unwrap();
    pki.write_to(certs.path()).unwrap();
    let ca = certs.path().join("ca.pem");
    let secure = PostfixQueue::builder()
        .relay_domains(&[])
        .hostname("smarthost.test")
        .with_starttls(&pki.cert_pem, &pki.key_pem)
        .with_sasl("office", "secret")
        .start()
        .expect("postfix starts");
    let plain = PostfixQueue::builder()
        .relay_domains(&[])
        .start()
        .expect("postfix starts");
    let office = office_server();
    let mut i = smtp_input(&dns, &office);
    let login = format!(
        "smarthost_username = \"office\"\nsmarthost_tls_ca = \"{}\"",
        ca.display()
    );

    i.smarthost = Some(outbound(&format!("smtp://{}", secure.addr()), &login));
    let good = run(&i).await;
    i.smarthost = Some(outbound(
        &format!("smtp://{}", secure.addr()),
        "smarthost_username = \"office\"",
    ));
    let unknown_ca = run(&i).await;
    i.smarthost = Some(outbound(&format!("smtp://{}", plain.addr()), ""));
    let no_tls = run(&i).await;

    assert_finding(&good, "smarthost.answers", Severity::Ok);
    assert_finding(&good, "smarthost.tls-ok", Severity::Ok);
    assert_finding(&good, "smarthost.auth-ok", Severity::Ok);
    assert!(
        good.find("smarthost.auth-ok")
            .any(|f| f.evidence.contains("PLAIN")),
        "{}",
        good.render_human(false)
    );
    assert!(
        !good
            .findings
            .iter()
            .any(|f| f.id.starts_with("smarthost.") && f.severity > Severity::Ok),
        "{}",
        good.render_human(false)
    );
    assert_finding(&unknown_ca, "smarthost.tls-invalid", Severity::Error);
    assert!(
        unknown_ca.find("smarthost.tls-invalid").any(|f| f
            .fix
            .as_deref()
            .unwrap_or("")
            .contains("smarthost_tls_ca")),
        "{}",
        unknown_ca.render_human(false)
    );
    assert_finding(&no_tls, "smarthost.no-starttls", Severity::Error);
    assert_eq!(no_tls.exit_code(), 1);
}
