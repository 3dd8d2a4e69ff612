//! Passwords through the real OS keyring (Secret Service of gnome-keyring in the private D-Bus
//! session `make test` starts), and `posternd fetch` with ATRN end to end.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use postern_tests::harness::odmr::{HeldMessage, OdmrConfig, OdmrProvider, TestCert, User};
use postern_tests::harness::{
    PosternConfig, TestMessage, digest_without_received, posternd_with, read_maildir,
};

fn secret(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> (bool, String) {
    let out = posternd_with(args, None, stdin, env, Duration::from_secs(30)).unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn without_a_secret_service_the_error_says_what_to_do() {
    let env = [(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/postern-test-bus",
    )];
    let (ok, out) = secret(&["secret", "set", "office@isp.test"], b"pw", &env);
    assert!(!ok, "{out}");
    assert!(out.contains("keyring is not available"), "{out}");
    assert!(out.contains("gnome-keyring"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
}

#[test]
fn a_secret_name_must_be_user_at_host() {
    let (ok, out) = secret(&["secret", "set", "justaname"], b"pw", &[]);
    assert!(!ok);
    assert!(out.contains("USERNAME@HOST"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atrn_with_the_password_from_the_keyring_delivers_200_messages() {
    if !postern_tests::harness::require_session_bus() {
        return;
    }
    let cert = TestCert::generate(&["127.0.0.1"]);
    let messages: Vec<TestMessage> = (0..200)
        .map(|i| TestMessage::sized(i, 1024 + (i * 997) % 20_000, &["user@office.test"]))
        .collect();
    let held = messages
        .iter()
        .map(|m| HeldMessage {
            from: m.from.clone(),
            rcpts: m.to.clone(),
            data: m.data.clone(),
        })
        .collect();
    let password = format!("pw-{}", std::process::id());
    let isp = OdmrProvider::start(
        OdmrConfig {
            users: vec![User {
                name: "office".into(),
                password: password.clone(),
                domains: vec!["office.test".into()],
            }],
            tls: Some(cert.clone()),
            held,
            ..OdmrConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("isp.pem");
    cert.write_cert_pem(&ca).unwrap();
    let maildir = dir.path().join("Maildir");
    let queue = SocketAddr::from(([127, 0, 0, 1], isp.addr().port()));
    let config = PosternConfig::etrn(queue, queue, &maildir)
        .protocol("atrn")
        .tls("")
        .queue_option("username", "\"office\"")
        .queue_option("tls_ca", &format!("\"{}\"", ca.display()))
        .listen(&[])
        .render();

    let name = "office@127.0.0.1".to_string();
    let pw = password.clone();
    let (ok, out) =
        tokio::task::spawn_blocking(move || secret(&["secret", "set", &name], pw.as_bytes(), &[]))
            .await
            .unwrap();
    assert!(ok, "{out}");

    let started = Instant::now();
    let fetch = tokio::task::spawn_blocking(move || {
        posternd_with(
            &["fetch"],
            Some(&config),
            b"",
            &[],
            Duration::from_secs(120),
        )
        .unwrap()
    })
    .await
    .unwrap();
    let elapsed = started.elapsed();
    let out = String::from_utf8_lossy(&fetch.stdout).into_owned();
    eprintln!("MEASURED: ATRN session of 200 messages: {elapsed:?}");

    assert!(
        fetch.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&fetch.stderr)
    );
    assert!(out.contains("(200 messages received)"), "{out}");
    let stored = read_maildir(&maildir);
    let mut got: Vec<_> = stored.iter().map(|m| digest_without_received(m)).collect();
    let mut sent: Vec<_> = messages
        .iter()
        .map(|m| digest_without_received(&m.data))
        .collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent);
    assert_eq!(isp.held("office.test"), 0);

    let (ok, out) =
        tokio::task::spawn_blocking(|| secret(&["secret", "delete", "office@127.0.0.1"], b"", &[]))
            .await
            .unwrap();
    assert!(ok, "{out}");
}
