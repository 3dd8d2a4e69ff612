//! `posternd check-mx` against a real DNS server (dnsmasq) and real SMTP servers (Postfix) on
//! 127.0.0.1. Every test asserts finding ids and severities, and that the report's JSON
//! round-trips.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use postern_engine::config::{Protocol, QueueServer, TlsMode};
use postern_engine::mx::{self, CheckInput, Report, Severity};

// ---------------------------------------------------------------------------------------------
// Private peers (until the shared harness lands): dnsmasq and a Postfix instance.

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// dnsmasq serving the given records for `.test` and `.com` (no upstream: unknown names there
/// are NXDOMAIN).
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
}

impl Dnsmasq {
    fn start(records: &[&str]) -> Dnsmasq {
        let port = free_udp_port();
        let mut child = Command::new("dnsmasq")
            .args([
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--log-facility=-",
                "--local=/test/",
                "--local=/com/",
                "--local=/127.in-addr.arpa/",
                "--cache-size=0",
            ])
            .arg(format!("--port={port}"))
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dnsmasq is installed (apt-get install dnsmasq-base)");
        // dnsmasq logs "started" once its sockets are bound.
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let mut log = String::new();
        loop {
            match lines.next() {
                Some(Ok(l)) => {
                    log.push_str(&l);
                    log.push('\n');
                    if l.contains("started, version") {
                        break;
                    }
                }
                _ => panic!("dnsmasq did not start:\n{log}"),
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Dnsmasq {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private Postfix with one smtpd listener per entry of `listeners` (extra `-o` options each).
struct Postfix {
    dir: tempfile::TempDir,
    ports: Vec<u16>,
}

impl Postfix {
    fn start(listeners: &[&[&str]]) -> Postfix {
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path();
        std::fs::set_permissions(b, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        for d in ["etc", "queue", "data"] {
            std::fs::create_dir(b.join(d)).unwrap();
        }
        let status = Command::new("chown")
            .args(["postfix:postfix"])
            .arg(b.join("data"))
            .status()
            .unwrap();
        assert!(status.success());
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {b}/queue
data_directory = {b}/data
maillog_file = {b}/maillog
maillog_file_prefixes = {b}
myhostname = isp-queue.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
relay_domains = office.test
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
fast_flush_domains = $relay_domains
smtpd_etrn_restrictions = permit_mynetworks, reject
defer_transports = smtp
",
            b = b.display()
        );
        std::fs::write(b.join("etc/main.cf"), main_cf).unwrap();
        let mut ports = Vec::new();
        let mut master = String::new();
        for opts in listeners {
            let port = free_tcp_port();
            ports.push(port);
            master.push_str(&format!("127.0.0.1:{port} inet n - n - - smtpd\n"));
            for o in *opts {
                master.push_str(&format!("  -o {o}\n"));
            }
        }
        master.push_str(MASTER_SERVICES);
        std::fs::write(b.join("etc/master.cf"), master).unwrap();
        let etc = b.join("etc");
        for verb in ["check", "start"] {
            let out = Command::new("postfix")
                .arg("-c")
                .arg(&etc)
                .arg(verb)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "postfix {verb}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let pf = Postfix { dir, ports };
        for p in &pf.ports {
            wait_for_port(*p, pf.dir.path());
        }
        pf
    }
}

fn wait_for_port(port: u16, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "Postfix did not listen on {port}; log: {}",
            std::fs::read_to_string(dir.join("maillog")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(self.dir.path().join("etc"))
            .arg("stop")
            .output();
    }
}

const MASTER_SERVICES: &str = "pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
";

/// A CA and a certificate for `isp.test` signed by it, as files in `dir`: (ca.pem, cert.pem,
/// key.pem).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Postern test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["isp.test".to_string()]).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (ca, crt, k) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (ca, crt, k)
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn queue(host: &str, port: u16, protocol: Protocol) -> QueueServer {
    QueueServer {
        host: host.to_string(),
        port,
        protocol,
        tls: TlsMode::Opportunistic,
        node: None,
        username: None,
        tls_ca: None,
        tls_fingerprint: None,
        allow_plaintext_auth: false,
        allow_insecure_turn: false,
        timeout: Duration::from_secs(10),
    }
}

/// A DNS-only check of `domain` against `dns`.
fn input(domain: &str, dns: &Dnsmasq) -> CheckInput {
    let mut i = CheckInput::new(domain);
    i.nameservers = vec![dns.addr];
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
    let dns = Dnsmasq::start(&[
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
    let dns = Dnsmasq::start(&[
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
    let dns = Dnsmasq::start(&[
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
    let dns = Dnsmasq::start(&[
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
    let dns = Dnsmasq::start(&["--mx-host=office.test,192.0.2.25,10"]);

    let report = run(&input("office.test", &dns)).await;

    assert_finding(&report, "mx.ip-literal", Severity::Error);
}

#[tokio::test]
async fn mx_target_without_addresses_is_an_error() {
    let dns = Dnsmasq::start(&[
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
    let dns = Dnsmasq::start(&[OFFICE_HOST]);

    let report = run(&input("nosuch.test", &dns)).await;

    assert_finding(&report, "domain.nxdomain", Severity::Error);
    assert!(report.complete);
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test]
async fn null_mx_means_no_mail() {
    let dns = Dnsmasq::start(&["--mx-host=null.test,.,0"]);

    let report = run(&input("null.test", &dns)).await;

    assert_finding(&report, "mx.null", Severity::Error);
    assert!(report.mx.is_empty());
}

#[tokio::test]
async fn no_mx_is_implicit_mx_and_no_backup() {
    let dns = Dnsmasq::start(&["--host-record=office.test,127.0.0.1"]);
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
    let dns = Dnsmasq::start(&[OFFICE_HOST]);

    let report = run(&input("office.example", &dns)).await;

    assert_finding(&report, "dns.lookup-failed", Severity::Error);
    let f = report.find("dns.lookup-failed").next().unwrap();
    assert!(f.evidence.contains("Refused"), "{}", f.evidence);
    assert_no_finding(&report, "mx.none");
    assert_eq!(report.exit_code(), 2);
}

#[tokio::test]
async fn json_schema_has_the_documented_fields() {
    let dns = Dnsmasq::start(&["--mx-host=office.test,mx1.office.test,10", OFFICE_HOST]);

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
    let dns = Dnsmasq::start(&["--mx-host=office.test,mx1.office.test,10", OFFICE_HOST]);
    let mut i = input("office.test", &dns);
    i.queue_servers = vec![queue("isp.test", 25, Protocol::Etrn)];

    let report = run(&i).await;

    assert_finding(&report, "pref.queue-not-in-mx", Severity::Warning);
    assert_finding(&report, "mx.single", Severity::Info);
}

#[tokio::test]
async fn configured_office_host_missing_from_mx_set_is_an_error() {
    let dns = Dnsmasq::start(&["--mx-host=office.test,isp.test,10", ISP_HOST]);
    let mut i = input("office.test", &dns);
    i.queue_servers = vec![queue("isp.test", 25, Protocol::Etrn)];

    let report = run(&i).await;

    assert_finding(&report, "pref.office-missing", Severity::Error);
}

#[tokio::test]
async fn private_address_on_a_public_domain_cannot_receive_etrn() {
    let dns = Dnsmasq::start(&[
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
    let dns = Dnsmasq::start(&[
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
    let dns = Dnsmasq::start(&["--mx-host=office.test,mx1.office.test,10", OFFICE_HOST]);
    let mut i = input("office.test", &dns);
    i.inbound_listen = vec![SocketAddr::from(([0, 0, 0, 0], 2526))];

    let report = run(&i).await;

    assert_finding(&report, "etrn.listener-port", Severity::Warning);
    assert_finding(&report, "rdns.mismatch", Severity::Info);
}

// ---------------------------------------------------------------------------------------------
// SMTP probes against real Postfix servers

/// DNS for a two-MX setup on 127.0.0.1, the office's server and the ISP's queue told apart by
/// port.
fn two_mx_dns() -> Dnsmasq {
    Dnsmasq::start(&[
        "--mx-host=office.test,mx1.office.test,10",
        "--mx-host=office.test,isp.test,20",
        OFFICE_HOST,
        ISP_HOST,
        "--host-record=isp2.test,127.0.0.1",
    ])
}

fn smtp_input(dns: &Dnsmasq, office_port: u16) -> CheckInput {
    let mut i = input("office.test", dns);
    i.probe_smtp = true;
    i.smtp_timeout = Duration::from_secs(10);
    i.mx_port = office_port;
    i.inbound_listen = vec![SocketAddr::from(([127, 0, 0, 1], office_port))];
    i
}

#[tokio::test]
async fn correct_setup_with_real_servers_has_no_errors() {
    let dns = two_mx_dns();
    let postfix = Postfix::start(&[&[], &[]]);
    let (office, isp) = (postfix.ports[0], postfix.ports[1]);
    let mut i = smtp_input(&dns, office);
    i.queue_servers = vec![queue("isp.test", isp, Protocol::Etrn)];

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
    assert_eq!(report.recommended_protocol, Some(Protocol::Etrn));
    assert_eq!(report.exit_code(), 0);
}

#[tokio::test]
async fn queue_server_not_advertising_etrn_is_an_error() {
    let dns = two_mx_dns();
    let postfix = Postfix::start(&[&[], &["smtpd_discard_ehlo_keywords=etrn"]]);
    let (office, isp) = (postfix.ports[0], postfix.ports[1]);
    let mut i = smtp_input(&dns, office);
    i.queue_servers = vec![queue("isp.test", isp, Protocol::Etrn)];

    let report = run(&i).await;

    assert_finding(&report, "smtp.no-etrn", Severity::Error);
    assert_eq!(
        report.find("smtp.no-etrn").next().unwrap().subject,
        format!("isp.test:{isp}")
    );
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test]
async fn unreachable_queue_server_is_an_error() {
    let dns = two_mx_dns();
    let closed = free_tcp_port();
    let mut i = input("office.test", &dns);
    i.probe_smtp = true;
    i.smtp_timeout = Duration::from_secs(5);
    i.mx_port = free_tcp_port();
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
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(certs.path());
    let cert_opt = format!("smtpd_tls_cert_file={}", cert.display());
    let key_opt = format!("smtpd_tls_key_file={}", key.display());
    let tls: &[&str] = &["smtpd_tls_security_level=may", &cert_opt, &key_opt];
    let postfix = Postfix::start(&[&[], tls]);
    let (office, isp) = (postfix.ports[0], postfix.ports[1]);
    let mut trusted = queue("isp.test", isp, Protocol::Etrn);
    trusted.tls_ca = Some(ca);
    let mut i = smtp_input(&dns, office);
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
    let postfix = Postfix::start(&[&[], &[], &["smtpd_etrn_restrictions=reject"]]);
    let (office, isp, isp2) = (postfix.ports[0], postfix.ports[1], postfix.ports[2]);
    let mut i = smtp_input(&dns, office);
    i.queue_servers = vec![
        queue("isp.test", isp, Protocol::Etrn),
        queue("isp2.test", isp2, Protocol::Etrn),
    ];
    i.dry_run_etrn = true;

    let report = run(&i).await;

    let accepted = report
        .find("etrn.dry-run")
        .find(|f| f.subject == format!("isp.test:{isp}"))
        .unwrap();
    assert_eq!(accepted.severity, Severity::Ok);
    assert!(accepted.evidence.contains("250"), "{}", accepted.evidence);
    let refused = report
        .find("etrn.dry-run")
        .find(|f| f.subject == format!("isp2.test:{isp2}"))
        .unwrap();
    assert_eq!(refused.severity, Severity::Error);
    assert!(refused.evidence.contains("554"), "{}", refused.evidence);
}

/// Not a check: prints the human report of a broken setup (for the README and the closing note:
/// `cargo test -p postern-tests --test check_mx broken_setup -- --nocapture`).
#[tokio::test]
async fn broken_setup_report() {
    let dns = Dnsmasq::start(&[
        "--mx-host=office.test,mail.office.test,20",
        "--mx-host=office.test,isp.test,10",
        "--mx-host=office.test,alias.office.test,30",
        "--cname=alias.office.test,mail.office.test",
        "--host-record=mail.office.test,127.0.0.1",
        ISP_HOST,
    ]);
    let postfix = Postfix::start(&[&[], &["smtpd_discard_ehlo_keywords=etrn"]]);
    let (office, isp) = (postfix.ports[0], postfix.ports[1]);
    let mut i = smtp_input(&dns, office);
    i.office_host = Some("mail.office.test".into());
    i.queue_servers = vec![queue("isp.test", isp, Protocol::Etrn)];
    i.inbound_listen = vec![SocketAddr::from(([127, 0, 0, 1], 2525))];

    let report = run(&i).await;
    println!("{}", report.render_human(false));

    assert_finding(&report, "pref.backup-preferred", Severity::Error);
    assert_finding(&report, "mx.cname-target", Severity::Error);
    assert_finding(&report, "smtp.no-etrn", Severity::Error);
    assert_eq!(report.exit_code(), 1);
}
