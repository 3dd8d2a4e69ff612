//! Issue 7's scenario: an office behind NAT. The ISP lives in a network namespace the test
//! creates; the office (Postern, in the host namespace) can reach it, but the ISP cannot reach
//! the office: nothing answers at the office address it would connect back to. ETRN to a real
//! Postfix is accepted and nothing arrives — the connect-back watchdog says so — while ATRN,
//! over the office's own connection, delivers every message, byte-identical, exactly once.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use postern_tests::harness::odmr::TestCert;
use postern_tests::harness::{
    NetNs, PosternConfig, Posternd, PostfixQueue, TestMessage, digest_without_received, free_addr,
    posternd_with, require_session_bus, wait_for_maildir, wait_for_port,
};
use postern_tests::skip_unless_root;

const WAIT: Duration = Duration::from_secs(60);
const PASSWORD: &str = "odmr-secret";

/// The provider binary, run inside the ISP namespace; killed on drop.
struct Provider {
    child: std::process::Child,
    state: std::path::PathBuf,
}

impl Provider {
    fn held(&self) -> usize {
        let text = std::fs::read_to_string(&self.state).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        v["held"].as_array().map(Vec::len).unwrap_or(usize::MAX)
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_provider(
    ns: &NetNs,
    dir: &std::path::Path,
    cert: &TestCert,
    held: &[TestMessage],
) -> (Provider, SocketAddr) {
    let addr = SocketAddr::new(IpAddr::V4(ns.ns_addr()), 366);
    cert.write_cert_pem(&dir.join("cert.pem")).unwrap();
    cert.write_key_pem(&dir.join("key.pem")).unwrap();
    let config = serde_json::json!({
        "hostname": "isp-odmr.test",
        "users": [{"name": "office", "password": PASSWORD, "domains": ["office.test"]}],
        "tls": {"cert_pem_file": dir.join("cert.pem"), "key_pem_file": dir.join("key.pem")},
        "held": held.iter().map(|m| serde_json::json!({
            "from": m.from, "rcpts": m.to, "data": String::from_utf8(m.data.clone()).unwrap()
        })).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("odmr.json"), config.to_string()).unwrap();
    let state = dir.join("state.json");
    let child = ns
        .exec(env!("CARGO_BIN_EXE_odmr-provider"))
        .arg("--config")
        .arg(dir.join("odmr.json"))
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--state")
        .arg(&state)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let provider = Provider { child, state };
    wait_for_port(addr, Duration::from_secs(20)).unwrap();
    (provider, addr)
}

#[test]
fn behind_nat_etrn_is_accepted_but_nothing_arrives_while_atrn_delivers_everything() {
    skip_unless_root!();
    if !require_session_bus() {
        return;
    }
    let ns = NetNs::create().unwrap();
    let office_public = SocketAddr::new(IpAddr::V4(ns.host_addr()), 25);
    let postfix = PostfixQueue::builder()
        .in_netns(&ns)
        // postqueue runs in the host namespace and checks inet_interfaces against its addresses.
        .inet_interfaces("all")
        .deliver_to(office_public)
        .start()
        .unwrap();
    let via_etrn: Vec<TestMessage> = (0..3)
        .map(|i| TestMessage::sized(i, 2000, &["user@office.test"]))
        .collect();
    postfix.queue_messages(&via_etrn).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(&[ns.ns_addr().to_string()]);
    let via_atrn: Vec<TestMessage> = (0..25)
        .map(|i| TestMessage::sized(100 + i, 1000 + i * 700, &["user@office.test"]))
        .collect();
    let (provider, provider_addr) = start_provider(&ns, dir.path(), &cert, &via_atrn);

    let maildir = dir.path().join("Maildir");
    let listen = free_addr();
    let etrn = SocketAddr::new(ns.ns_addr().into(), postfix.addr().port());
    let atrn = SocketAddr::new(ns.ns_addr().into(), provider_addr.port());
    let config = PosternConfig::etrn(etrn, listen, &maildir)
        .tls("")
        .queue_server(atrn, "atrn", "")
        .last_server_option("username", "\"office\"")
        .last_server_option(
            "tls_ca",
            &format!("{:?}", dir.path().join("cert.pem").display().to_string()),
        )
        .link_option("connect_back_timeout", "\"5s\"")
        .render();
    let name = format!("office@{}", ns.ns_addr());
    let stored = posternd_with(
        &["secret", "set", &name],
        None,
        PASSWORD.as_bytes(),
        &[],
        WAIT,
    )
    .unwrap();
    assert!(
        stored.status.success(),
        "{}",
        String::from_utf8_lossy(&stored.stderr)
    );

    let postern = Posternd::run(&config, listen).unwrap();

    let warning = postern
        .wait_for_event_field("type", "connect_back_missing", WAIT)
        .unwrap();
    let got = wait_for_maildir(&maildir, via_atrn.len(), WAIT).unwrap();

    assert_eq!(warning["server"], postfix.addr().to_string(), "{warning}");
    assert!(
        warning["hint"]
            .as_str()
            .unwrap()
            .contains("protocol = \"atrn\""),
        "{warning}"
    );
    let mut stored: Vec<_> = got.iter().map(|m| digest_without_received(m)).collect();
    let mut sent: Vec<_> = via_atrn
        .iter()
        .map(|m| digest_without_received(&m.data))
        .collect();
    stored.sort();
    sent.sort();
    assert_eq!(
        stored, sent,
        "every ATRN message, byte-identical, exactly once"
    );
    assert_eq!(provider.held(), 0);
    assert_eq!(
        postfix.queue_len().unwrap(),
        via_etrn.len(),
        "ETRN mail is still at the ISP"
    );
    let etrn = postfix.log_text();
    assert!(etrn.contains("etrn=1"), "{etrn}");

    let _ = posternd_with(&["secret", "delete", &name], None, b"", &[], WAIT);
}
