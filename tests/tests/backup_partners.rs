//! Issue 16, "two Postern instances backing each other up": Postern A is the office of a.test
//! and the backup MX (queuing server) of b.test; Postern B is the office of b.test, its dequeue
//! client pointed at A. Each runs in its own network namespace: A's is joined to the host (the
//! test submits mail there, as the Internet would), B's only to A's. B's link goes down for real
//! (`ip link set down` on the veth inside B's namespace); mail for b.test sent meanwhile is held
//! at A; when B's link comes up, B's engine notices and asks with ETRN (A then delivers to
//! b.test's MX, found in dnsmasq: B's listener on port 25 of its namespace) or with ATRN (the
//! mail comes back over B's own connection). Every message arrives once and byte-identical. A
//! third test runs both directions at once.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use postern_tests::harness::odmr::TestCert;
use postern_tests::harness::{
    Dnsmasq, NetNs, PosternConfig, Posternd, PrivateKeyring, TestMessage, digest_without_received,
    maildir_count, poll_until, send_all, wait_for_maildir,
};
use postern_tests::skip_unless_root;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const ODMR_PORT: u16 = 366;
const PASSWORD: &str = "partner-secret";

/// A's namespace (joined to the host), B's (joined to A's only), b.test's DNS, the cert A's
/// listeners present, and the two Maildirs.
struct Partners {
    dns: Dnsmasq,
    cert_pem: PathBuf,
    dir: tempfile::TempDir,
    b_ns: NetNs,
    a_ns: NetNs,
}

impl Partners {
    fn new() -> Partners {
        let a_ns = NetNs::create().unwrap();
        let b_ns = NetNs::create_behind(&a_ns).unwrap();
        // b.test: its own server first, A as the backup; A's DNS server is on the host end of
        // A's veth.
        let dns = Dnsmasq::builder()
            .listen_on(a_ns.host_addr())
            .mx("b.test", "mx.b.test", 10)
            .mx("b.test", "backup.a.test", 20)
            .host("mx.b.test", &b_ns.ns_addr().to_string())
            .host("backup.a.test", &b_ns.host_addr().to_string())
            .start()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert = TestCert::generate(&[b_ns.host_addr().to_string()]);
        let cert_pem = dir.path().join("a-cert.pem");
        cert.write_cert_pem(&cert_pem).unwrap();
        cert.write_key_pem(&dir.path().join("a-key.pem")).unwrap();
        Partners {
            dns,
            cert_pem,
            dir,
            b_ns,
            a_ns,
        }
    }

    fn maildir(&self, office: &str) -> PathBuf {
        self.dir.path().join(office).join("Maildir")
    }

    /// A's listener as the host reaches it.
    fn a_public(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.a_ns.ns_addr()), 25)
    }

    /// A as B reaches it (the A end of B's link).
    fn a_for_b(&self, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.b_ns.host_addr()), port)
    }

    /// Postern A: office of a.test (its own queue server is a closed port: nothing to fetch),
    /// backup MX of b.test, listening on port 25 (and 366 for ODMR) of every address of its
    /// namespace.
    fn start_a(&self, release: &[&str], keyring: Option<&PrivateKeyring>) -> Posternd {
        let nobody = SocketAddr::from(([127, 0, 0, 1], 9));
        let any = SocketAddr::from(([0, 0, 0, 0], 25));
        let login: &[(&str, &str)] = if release.contains(&"atrn") {
            &[("username", "\"b\"")]
        } else {
            &[]
        };
        let mut cfg = PosternConfig::etrn(nobody, any, &self.maildir("a"))
            .domains(&["a.test"])
            // `queue list` from the host reads this spool.
            .state_dir(&self.dir.path().join("a-state"))
            .hostname("backup.a.test")
            .nameserver(self.dns.addr())
            .inbound_option("tls_cert", &toml_path(&self.cert_pem))
            .inbound_option("tls_key", &toml_path(&self.dir.path().join("a-key.pem")))
            .backup_for("b.test", "mx", release, login);
        if release.contains(&"atrn") {
            cfg = cfg.append(&format!(
                "[backup]\nodmr_listen = [\"0.0.0.0:{ODMR_PORT}\"]\n"
            ));
        }
        let mut builder = Posternd::builder(&cfg.render())
            .in_netns(&self.a_ns)
            .wait_for(self.a_public());
        if let Some(k) = keyring {
            builder = builder.env("DBUS_SESSION_BUS_ADDRESS", k.address());
        }
        builder.start().unwrap()
    }

    /// Postern B: office of b.test, listening on port 25 of its address (b.test's MX), asking A
    /// with `protocol`; started with its link up, returned once its first dequeue is done.
    fn start_b(&self, protocol: &str, keyring: Option<&PrivateKeyring>) -> Posternd {
        let listen = SocketAddr::new(IpAddr::V4(self.b_ns.ns_addr()), 25);
        let queue = match protocol {
            "atrn" => self.a_for_b(ODMR_PORT),
            _ => self.a_for_b(25),
        };
        let mut cfg = PosternConfig::etrn(queue, listen, &self.maildir("b"))
            .domains(&["b.test"])
            .hostname("mx.b.test")
            .protocol(protocol)
            .queue_option("timeout", "\"10s\"");
        cfg = match protocol {
            "atrn" => cfg
                .tls("required")
                .queue_option("username", "\"b\"")
                .queue_option("tls_ca", &toml_path(&self.cert_pem)),
            _ => cfg.tls("off"),
        };
        let mut builder = Posternd::builder(&cfg.render())
            .in_netns(&self.b_ns)
            .env("RUST_LOG", "postern_engine=debug,info");
        if let Some(k) = keyring {
            builder = builder.env("DBUS_SESSION_BUS_ADDRESS", k.address());
        }
        let b = builder.start().unwrap();
        b.wait_for_event(|e| e["type"] == "listening", WAIT)
            .unwrap();
        b.wait_for_event(|e| e["type"] == "fetch_finished", WAIT)
            .unwrap();
        b
    }
}

fn toml_path(p: &Path) -> String {
    serde_json::Value::String(p.display().to_string()).to_string()
}

fn count(daemon: &Posternd, matches: &impl Fn(&Value) -> bool) -> usize {
    daemon.events().iter().filter(|e| matches(e)).count()
}

/// Waits for an event that satisfies `matches` after the `seen` ones there already were.
fn wait_for_next(daemon: &Posternd, seen: usize, matches: impl Fn(&Value) -> bool) -> Value {
    poll_until(format!("event #{}", seen + 1), WAIT, || {
        daemon.events().into_iter().filter(|e| matches(e)).nth(seen)
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n--- events ---\n{}\n--- stderr ---\n{}",
            daemon.stdout_lines().join("\n"),
            daemon.log_text()
        )
    })
}

fn link_event(up: bool) -> impl Fn(&Value) -> bool {
    move |e| e["type"] == "link_changed" && e["up"] == up
}

fn held_at(a: &Posternd) -> u64 {
    let status: Value =
        serde_json::from_str(&a.cli_stdout(&["status", "--json"]).unwrap()).unwrap();
    status["backup"][0]["held"].as_u64().unwrap()
}

fn for_b(n: usize, first: usize) -> Vec<TestMessage> {
    (first..first + n)
        .map(|i| TestMessage::sized(i, 1500 + i * 900, &["bob@b.test"]))
        .collect()
}

fn sorted_digests<'a>(messages: impl Iterator<Item = &'a [u8]>) -> Vec<[u8; 32]> {
    let mut d: Vec<_> = messages.map(digest_without_received).collect();
    d.sort();
    d
}

/// B's link goes down, `sent` is submitted to A and held there; B's link comes up. Returns A's
/// `queue list` while the mail was held and B's dequeue whose reply was `code` after the link
/// came back.
fn hold_while_down_then_release(
    net: &Partners,
    a: &Posternd,
    b: &Posternd,
    sent: &[TestMessage],
    code: u16,
) -> (String, Value) {
    let downs = count(b, &link_event(false));
    let ups = count(b, &link_event(true));
    net.b_ns.inner_link_down().unwrap();
    wait_for_next(b, downs, link_event(false));
    for reply in send_all(net.a_public(), sent).unwrap() {
        assert_eq!(reply.code, 250, "{reply:?}");
    }
    poll_until("A to hold every message", WAIT, || {
        (held_at(a) == sent.len() as u64).then_some(())
    })
    .unwrap();
    let listed = a.cli_stdout(&["queue", "list"]).unwrap();
    assert_eq!(
        maildir_count(&net.maildir("b")),
        0,
        "nothing reached B early"
    );

    net.b_ns.inner_link_up().unwrap();
    wait_for_next(b, ups, link_event(true));
    let fetched = wait_for_next(b, 0, |e| {
        e["type"] == "fetch_finished" && e["outcomes"][0]["code"] == code
    });
    (listed, fetched)
}

fn assert_arrived_once(net: &Partners, a: &Posternd, sent: &[TestMessage]) {
    let got = wait_for_maildir(&net.maildir("b"), sent.len(), WAIT).unwrap();
    poll_until("A's held count to reach 0", WAIT, || {
        (held_at(a) == 0).then_some(())
    })
    .unwrap();
    assert_eq!(got.len(), sent.len(), "exactly once");
    assert_eq!(maildir_count(&net.maildir("b")), sent.len(), "exactly once");
    assert_eq!(
        sorted_digests(got.iter().map(Vec::as_slice)),
        sorted_digests(sent.iter().map(|m| m.data.as_slice())),
        "byte-identical"
    );
    assert_eq!(
        maildir_count(&net.maildir("a")),
        0,
        "A kept nothing for itself"
    );
}

#[test]
fn b_s_link_comes_up_and_its_etrn_brings_the_mail_a_held_via_b_s_mx() {
    skip_unless_root!();
    let net = Partners::new();
    let a = net.start_a(&["etrn"], None);
    let b = net.start_b("etrn", None);
    let sent = for_b(8, 0);

    let (listed, fetched) = hold_while_down_then_release(&net, &a, &b, &sent, 253);
    let finished = wait_for_next(&a, 0, |e| {
        e["type"] == "backup_release_finished" && e["delivered"] != 0
    });

    assert!(listed.contains("b.test: 8 message(s)"), "{listed}");
    assert_eq!(fetched["outcomes"][0]["pending"], 8, "{fetched}");
    assert_eq!(finished["delivered"], 8, "{finished}");
    assert_eq!(finished["deferred"], 0, "{finished}");
    assert_arrived_once(&net, &a, &sent);
    b.stop().unwrap();
    a.stop().unwrap();
}

#[test]
fn b_s_link_comes_up_and_its_atrn_login_takes_the_mail_a_held_over_its_own_connection() {
    skip_unless_root!();
    // A keyring both namespaces can reach: A checks B's login with it, B logs in with it.
    let keyring = PrivateKeyring::start().unwrap();
    let net = Partners::new();
    keyring.set_secret("b@backup", PASSWORD).unwrap();
    keyring
        .set_secret(&format!("b@{}", net.b_ns.host_addr()), PASSWORD)
        .unwrap();
    let a = net.start_a(&["atrn"], Some(&keyring));
    let b = net.start_b("atrn", Some(&keyring));
    let sent = for_b(10, 100);

    let (listed, fetched) = hold_while_down_then_release(&net, &a, &b, &sent, 250);
    let finished = wait_for_next(&a, 0, |e| {
        e["type"] == "backup_release_finished" && e["delivered"] != 0
    });

    assert!(listed.contains("b.test: 10 message(s)"), "{listed}");
    assert_eq!(fetched["outcomes"][0]["received"], 10, "{fetched}");
    assert_eq!(finished["delivered"], 10, "{finished}");
    assert!(
        b.events()
            .iter()
            .any(|e| e["type"] == "inbound_session_started" && e["via"] == "atrn"),
        "the mail came over B's own connection"
    );
    assert_arrived_once(&net, &a, &sent);
    b.stop().unwrap();
    a.stop().unwrap();
}

/// The other direction, both at once: A also fetches a.test from B, and B is the backup MX of
/// a.test, releasing it to A's listener (`deliver_to = "smtp://…"`: B's namespace reaches no
/// DNS server). A's link (its end of the A–B veth) goes down; mail for a.test sent to B is
/// held there; when A's link comes up, A's ETRN brings it.
#[test]
fn each_backs_up_the_other_and_a_s_etrn_brings_what_b_held_while_a_was_offline() {
    skip_unless_root!();
    let net = Partners::new();
    let a_addr = net.a_for_b(25);
    let b_listen = SocketAddr::new(IpAddr::V4(net.b_ns.ns_addr()), 25);
    let a_cfg = PosternConfig::etrn(
        b_listen,
        SocketAddr::from(([0, 0, 0, 0], 25)),
        &net.maildir("a"),
    )
    .domains(&["a.test"])
    .hostname("backup.a.test")
    .nameserver(net.dns.addr())
    .queue_option("timeout", "\"10s\"")
    .backup_for("b.test", "mx", &["etrn"], &[])
    .render();
    let b_cfg = PosternConfig::etrn(a_addr, b_listen, &net.maildir("b"))
        .domains(&["b.test"])
        .state_dir(&net.dir.path().join("b-state"))
        .hostname("mx.b.test")
        .queue_option("timeout", "\"10s\"")
        .backup_for("a.test", &format!("smtp://{a_addr}"), &["etrn"], &[])
        .render();
    let a = Posternd::builder(&a_cfg)
        .in_netns(&net.a_ns)
        .wait_for(net.a_public())
        .start()
        .unwrap();
    let b = Posternd::builder(&b_cfg)
        .in_netns(&net.b_ns)
        .env("RUST_LOG", "postern_engine=debug,info")
        .start()
        .unwrap();
    for daemon in [&a, &b] {
        wait_for_next(daemon, 0, |e| e["type"] == "fetch_finished");
    }
    let sent: Vec<TestMessage> = (0..6)
        .map(|i| TestMessage::sized(200 + i, 1200 + i * 800, &["alice@a.test"]))
        .collect();

    // Act: A goes offline; the world (inside B's namespace) sends a.test's mail to B.
    let downs = count(&a, &link_event(false));
    let ups = count(&a, &link_event(true));
    net.b_ns.link_down().unwrap();
    wait_for_next(&a, downs, link_event(false));
    let to_b = sent.clone();
    let replies = net
        .b_ns
        .run_inside(move || send_all(b_listen, &to_b))
        .unwrap()
        .unwrap();
    poll_until("B to hold every message", WAIT, || {
        (held_at(&b) == sent.len() as u64).then_some(())
    })
    .unwrap();
    net.b_ns.link_up().unwrap();
    wait_for_next(&a, ups, link_event(true));
    let fetched = wait_for_next(&a, 0, |e| {
        e["type"] == "fetch_finished" && e["outcomes"][0]["code"] == 253
    });
    let finished = wait_for_next(&b, 0, |e| {
        e["type"] == "backup_release_finished" && e["delivered"] != 0
    });
    let got = wait_for_maildir(&net.maildir("a"), sent.len(), WAIT).unwrap();
    poll_until("B's held count to reach 0", WAIT, || {
        (held_at(&b) == 0).then_some(())
    })
    .unwrap();

    // Assert
    assert!(replies.iter().all(|r| r.code == 250), "{replies:?}");
    assert_eq!(fetched["outcomes"][0]["pending"], 6, "{fetched}");
    assert_eq!(finished["delivered"], 6, "{finished}");
    assert_eq!(maildir_count(&net.maildir("a")), sent.len(), "exactly once");
    assert_eq!(
        sorted_digests(got.iter().map(Vec::as_slice)),
        sorted_digests(sent.iter().map(|m| m.data.as_slice())),
        "byte-identical"
    );
    assert_eq!(maildir_count(&net.maildir("b")), 0);
    b.stop().unwrap();
    a.stop().unwrap();
}
