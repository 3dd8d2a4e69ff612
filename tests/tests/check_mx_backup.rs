//! `check-mx` for a `[[backup_for]]` domain (issue 16, "Visibility"): the neighbour's MX records
//! in a real DNS server (dnsmasq), this office a real `posternd` (its listener and its ODMR
//! server) on 127.0.0.1. Each test asserts finding ids and severities.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use postern_engine::config::Release;
use postern_engine::mx::{self, BackupCheckInput, Report, Severity};
use postern_tests::harness::{
    Dnsmasq, PosternConfig, Posternd, PrivateKeyring, free_addr, free_port, posternd_with,
};

const OURS: &str = "backup.a.test";

/// b.test's MX records: `records` as (host, preference); every host is 127.0.0.1.
fn neighbour_dns(records: &[(&str, u16)]) -> Dnsmasq {
    let mut b = Dnsmasq::builder();
    for (host, preference) in records {
        b = b.mx("b.test", host, *preference).host(host, "127.0.0.1");
    }
    b.start().unwrap()
}

/// This office: a.test's posternd, backup MX of b.test (ETRN and ATRN), named backup.a.test.
struct Office {
    listen: SocketAddr,
    odmr: SocketAddr,
    config: String,
    keyring: PrivateKeyring,
    _daemon: Posternd,
    _state: tempfile::TempDir,
}

fn office() -> Office {
    let state = tempfile::tempdir().unwrap();
    let (listen, odmr) = (free_addr(), free_addr());
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = PosternConfig::etrn(closed, listen, &state.path().join("Maildir"))
        .domains(&["a.test"])
        .state_dir(state.path())
        .hostname(OURS)
        .backup_for("b.test", "mx", &["etrn", "atrn"], &[("username", "\"b\"")])
        .append(&format!("[backup]\nodmr_listen = [\"{odmr}\"]\n"))
        .render();
    // The ATRN login's password is only needed at login time, but the keyring must open.
    let keyring = PrivateKeyring::start().unwrap();
    let daemon = Posternd::builder(&config)
        .env("DBUS_SESSION_BUS_ADDRESS", keyring.address())
        .wait_for(odmr)
        .start()
        .unwrap();
    postern_tests::harness::wait_for_port(listen, Duration::from_secs(20)).unwrap();
    Office {
        listen,
        odmr,
        config,
        keyring,
        _daemon: daemon,
        _state: state,
    }
}

fn input(dns: &Dnsmasq, office: &Office) -> BackupCheckInput {
    let mut i = BackupCheckInput::new("b.test", OURS);
    i.release = vec![Release::Etrn, Release::Atrn];
    i.nameservers = vec![dns.addr()];
    i.dns_timeout = Duration::from_secs(1);
    i.smtp_timeout = Duration::from_secs(10);
    i.mx_port = office.listen.port();
    i.odmr_listen = vec![office.odmr];
    i
}

async fn run(input: &BackupCheckInput) -> Report {
    let report = mx::check_backup(input).await.unwrap();
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
fn assert_fix_mentions(report: &Report, id: &str, text: &str) {
    let fix = report
        .find(id)
        .find_map(|f| f.fix.clone())
        .unwrap_or_default();
    assert!(
        fix.contains(text),
        "{id}'s fix {fix:?} should mention {text:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_correct_backup_setup_is_all_fine() {
    let dns = neighbour_dns(&[("mx.b.test", 10), (OURS, 20)]);
    let office = office();

    let report = run(&input(&dns, &office)).await;

    assert!(
        !report.has_errors(),
        "expected no errors in:\n{}",
        report.render_human(false)
    );
    assert_finding(&report, "backup.in-mx", Severity::Ok);
    assert_finding(&report, "backup.listener-reachable", Severity::Ok);
    assert_finding(&report, "backup.odmr-reachable", Severity::Ok);
    assert_eq!(report.backup_host.as_deref(), Some(OURS));
    assert!(
        report
            .render_human(false)
            .starts_with("Backup MX check for b.test")
    );
    assert_eq!(report.exit_code(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn our_host_missing_from_the_neighbour_s_mx_set_is_an_error() {
    let dns = neighbour_dns(&[("mx.b.test", 10), ("other.b.test", 20)]);
    let office = office();

    let report = run(&input(&dns, &office)).await;

    assert_finding(&report, "backup.not-in-mx", Severity::Error);
    assert_fix_mentions(&report, "backup.not-in-mx", "MX 30 backup.a.test.");
    assert!(report.find("backup.listener-reachable").next().is_none());
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn our_host_preferred_over_the_primary_is_an_error() {
    let dns = neighbour_dns(&[("mx.b.test", 20), (OURS, 10)]);
    let office = office();

    let report = run(&input(&dns, &office)).await;

    assert_finding(&report, "backup.preferred", Severity::Error);
    assert_fix_mentions(&report, "backup.preferred", "MX 20 backup.a.test.");
}

#[tokio::test(flavor = "multi_thread")]
async fn our_host_with_the_primary_s_preference_is_an_error() {
    let dns = neighbour_dns(&[("mx.b.test", 10), (OURS, 10)]);
    let office = office();

    let report = run(&input(&dns, &office)).await;

    assert_finding(&report, "backup.equal-preference", Severity::Error);
    assert!(report.find("backup.in-mx").next().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn being_the_only_mx_is_an_error() {
    let dns = neighbour_dns(&[(OURS, 20)]);
    let office = office();

    let report = run(&input(&dns, &office)).await;

    assert_finding(&report, "backup.no-primary", Severity::Error);
    assert!(report.find("mx.single").next().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_not_reachable_as_our_host_is_an_error() {
    let dns = neighbour_dns(&[("mx.b.test", 10), (OURS, 20)]);
    let office = office();
    let mut i = input(&dns, &office);
    i.mx_port = free_port();

    let report = run(&i).await;

    assert_finding(&report, "backup.in-mx", Severity::Ok);
    assert_finding(&report, "backup.listener-unreachable", Severity::Error);
    assert_fix_mentions(&report, "backup.listener-unreachable", "[inbound] listen");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_server_on_our_host_s_address_is_a_warning() {
    let dns = neighbour_dns(&[("mx.b.test", 10), (OURS, 20)]);
    let office = office();
    let stranger = postern_tests::harness::SmtpSink::start().unwrap();
    let mut i = input(&dns, &office);
    i.mx_port = stranger.port();

    let report = run(&i).await;

    assert_finding(&report, "backup.listener-other-server", Severity::Warning);
}

#[tokio::test(flavor = "multi_thread")]
async fn odmr_not_reachable_when_atrn_is_offered_is_an_error() {
    let dns = neighbour_dns(&[("mx.b.test", 10), (OURS, 20)]);
    let office = office();
    let mut i = input(&dns, &office);
    i.odmr_listen = vec![free_addr()];

    let report = run(&i).await;

    assert_finding(&report, "backup.listener-reachable", Severity::Ok);
    assert_finding(&report, "backup.odmr-unreachable", Severity::Error);
    assert_fix_mentions(&report, "backup.odmr-unreachable", "odmr_listen");
}

#[tokio::test(flavor = "multi_thread")]
async fn odmr_port_answered_by_a_plain_smtp_server_is_an_error() {
    let dns = neighbour_dns(&[("mx.b.test", 10), (OURS, 20)]);
    let office = office();
    let mut i = input(&dns, &office);
    i.odmr_listen = vec![office.listen];

    let report = run(&i).await;

    assert_finding(&report, "backup.odmr-no-atrn", Severity::Error);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_atrn_the_odmr_server_is_not_checked() {
    let dns = neighbour_dns(&[("mx.b.test", 10), (OURS, 20)]);
    let office = office();
    let mut i = input(&dns, &office);
    i.release = vec![Release::Etrn];
    i.odmr_listen = Vec::new();

    let report = run(&i).await;

    assert!(!report.has_errors(), "{}", report.render_human(false));
    assert!(
        report
            .findings
            .iter()
            .all(|f| !f.id.starts_with("backup.odmr"))
    );
}

#[test]
fn the_cli_adds_a_report_for_each_backup_for_domain() {
    let dns = neighbour_dns(&[("mx.b.test", 10), (OURS, 20)]);
    let office = office();

    let out = posternd_with(
        &[
            "check-mx",
            "--json",
            "--nameserver",
            &dns.addr().to_string(),
        ],
        Some(&office.config),
        b"",
        &[("DBUS_SESSION_BUS_ADDRESS", office.keyring.address())],
        Duration::from_secs(60),
    )
    .unwrap();

    let text = String::from_utf8_lossy(&out.stdout);
    let reports: Vec<Report> = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    let backup = reports
        .iter()
        .find(|r| r.domain == "b.test")
        .unwrap_or_else(|| panic!("no b.test report in {text}"));
    assert_eq!(backup.backup_host.as_deref(), Some(OURS));
    assert!(backup.find("backup.in-mx").next().is_some(), "{text}");
    assert!(reports.iter().any(|r| r.domain == "a.test"), "{text}");
}
