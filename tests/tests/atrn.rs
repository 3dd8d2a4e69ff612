//! Issue 7: ATRN (RFC 2645) and TURN against the strict ODMR provider of the harness — the engine
//! in-process for the protocol paths, and `posternd fetch` with the OS keyring end to end.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::{Duration, Instant};

use postern_engine::config::{Protocol, QueueServer, TlsMode};
use postern_engine::deliver::Delivery;
use postern_engine::deliver::maildir::Maildir;
use postern_engine::dequeue::reply::{Disposition, Outcome};
use postern_engine::dequeue::{self, DequeueContext};
use postern_engine::events;
use postern_engine::secrets::MemoryStore;
use postern_engine::smtp_server::{ServerSettings, SessionContext};
use postern_tests::harness::odmr::{
    AuthOutcome, Fault, HeldMessage, Mechanism, OdmrConfig, OdmrProvider, TestCert, User,
};
use postern_tests::harness::{TestMessage, digest_without_received, read_maildir};

const PASSWORD: &str = "correct horse battery staple";

fn held(n: usize, domain: &str) -> Vec<HeldMessage> {
    (0..n)
        .map(|i| {
            let to = format!("user{i}@{domain}");
            let m = TestMessage::sized(i, 1500 + (i % 7) * 3000, &[to.as_str()]);
            HeldMessage {
                from: m.from,
                rcpts: m.to,
                data: m.data,
            }
        })
        .collect()
}

struct Office {
    dir: tempfile::TempDir,
    cert_dir: tempfile::TempDir,
    ctx: DequeueContext,
}

impl Office {
    fn new(password: &str) -> Office {
        let dir = tempfile::tempdir().unwrap();
        let (events, _) = events::channel();
        let inbound = SessionContext {
            settings: ServerSettings {
                hostname: "office-gw.test".into(),
                domains: vec!["office.test".into()],
                max_message_size: 10 * 1024 * 1024,
                max_recipients: 100,
                max_errors: 20,
                idle_timeout: Duration::from_secs(30),
                max_connections: 4,
                session_timeout: None,
                ..ServerSettings::default()
            },
            delivery: Delivery::Maildir(Maildir::open(dir.path(), "office-gw.test").unwrap()),
            events,
            arrivals: None,
            tls: None,
        };
        Office {
            dir,
            cert_dir: tempfile::tempdir().unwrap(),
            ctx: DequeueContext {
                helo_name: "office-gw.test".into(),
                secrets: Arc::new(MemoryStore::with("office@127.0.0.1", password)),
                inbound: Some(Arc::new(inbound)),
            },
        }
    }

    fn server(&self, provider: &OdmrProvider, cert: Option<&TestCert>) -> QueueServer {
        let tls_ca = cert.map(|c| {
            let path = self.cert_dir.path().join("provider.pem");
            c.write_cert_pem(&path).unwrap();
            path
        });
        QueueServer {
            host: "127.0.0.1".into(),
            port: provider.addr().port(),
            protocol: Protocol::Atrn,
            tls: if cert.is_some() {
                TlsMode::Required
            } else {
                TlsMode::Off
            },
            node: None,
            username: Some("office".into()),
            tls_ca,
            tls_fingerprint: None,
            allow_plaintext_auth: cert.is_none(),
            allow_insecure_turn: false,
            timeout: Duration::from_secs(5),
        }
    }

    async fn fetch(&self, server: &QueueServer) -> Outcome {
        let mut outcomes = dequeue::dequeue(server, &["office.test".to_string()], &self.ctx).await;
        assert_eq!(outcomes.len(), 1, "{outcomes:?}");
        outcomes.remove(0)
    }

    fn stored(&self) -> Vec<Vec<u8>> {
        read_maildir(self.dir.path())
    }

    fn tmp_files(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("tmp"))
            .unwrap()
            .count()
    }
}

fn provider_config(held: Vec<HeldMessage>, cert: Option<&TestCert>) -> OdmrConfig {
    OdmrConfig {
        users: vec![User {
            name: "office".into(),
            password: PASSWORD.into(),
            domains: vec!["office.test".into()],
        }],
        tls: cert.cloned(),
        held,
        ..OdmrConfig::default()
    }
}

async fn provider(config: OdmrConfig) -> OdmrProvider {
    OdmrProvider::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn sorted_digests<'a>(messages: impl Iterator<Item = &'a [u8]>) -> Vec<[u8; 32]> {
    let mut d: Vec<_> = messages.map(digest_without_received).collect();
    d.sort();
    d
}

#[tokio::test]
async fn atrn_over_tls_delivers_every_message_byte_identical_exactly_once() {
    let cert = TestCert::generate(&["127.0.0.1"]);
    let messages = held(20, "office.test");
    let mut config = provider_config(messages.clone(), Some(&cert));
    config.held.extend(held(2, "other.test"));
    let isp = provider(config).await;
    let office = Office::new(PASSWORD);

    let outcome = office.fetch(&office.server(&isp, Some(&cert))).await;

    assert_eq!(outcome.code, Some(250), "{outcome:?}");
    assert_eq!(outcome.disposition, Disposition::Released, "{outcome:?}");
    assert_eq!(outcome.received, Some(20), "{outcome:?}");
    let stored = office.stored();
    assert_eq!(
        sorted_digests(stored.iter().map(Vec::as_slice)),
        sorted_digests(messages.iter().map(|m| m.data.as_slice()))
    );
    assert!(
        stored
            .iter()
            .all(|m| m.starts_with(b"Received: from odmr-provider.test"))
    );
    assert!(String::from_utf8_lossy(&stored[0]).contains("with ESMTPS via ODMR"));
    assert_eq!(isp.held("office.test"), 0);
    assert_eq!(isp.held("other.test"), 2, "another customer's mail stays");
    assert_eq!(isp.delivered().len(), 20);
    let auth = isp.auth_attempts();
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0].mechanism, "SCRAM-SHA-256", "the strongest offered");
    assert_eq!(auth[0].outcome, AuthOutcome::Success);
}

#[tokio::test]
async fn every_sasl_mechanism_logs_in_with_real_credentials() {
    let cert = TestCert::generate(&["127.0.0.1"]);
    for mechanism in [
        Mechanism::ScramSha256,
        Mechanism::CramMd5,
        Mechanism::Plain,
        Mechanism::Login,
    ] {
        let mut config = provider_config(held(1, "office.test"), Some(&cert));
        config.mechanisms = vec![mechanism];
        let isp = provider(config).await;
        let office = Office::new(PASSWORD);

        let outcome = office.fetch(&office.server(&isp, Some(&cert))).await;

        assert_eq!(
            outcome.received,
            Some(1),
            "{}: {outcome:?}",
            mechanism.name()
        );
        assert_eq!(isp.auth_attempts()[0].mechanism, mechanism.name());
    }
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_nothing_moves() {
    let cert = TestCert::generate(&["127.0.0.1"]);
    let isp = provider(provider_config(held(2, "office.test"), Some(&cert))).await;
    let office = Office::new("wrong");

    let outcome = office.fetch(&office.server(&isp, Some(&cert))).await;

    assert_eq!(outcome.step, "AUTH");
    assert_eq!(outcome.code, Some(535), "{outcome:?}");
    assert_eq!(outcome.disposition, Disposition::Permanent);
    assert!(
        outcome
            .fix
            .as_deref()
            .unwrap()
            .contains("posternd secret set")
    );
    assert_eq!(isp.held("office.test"), 2);
    assert!(office.stored().is_empty());
}

#[tokio::test]
async fn no_common_sasl_mechanism_is_explained() {
    let cert = TestCert::generate(&["127.0.0.1"]);
    let mut config = provider_config(held(1, "office.test"), Some(&cert));
    config.mechanisms = vec![];
    let isp = provider(config).await;
    let office = Office::new(PASSWORD);

    let outcome = office.fetch(&office.server(&isp, Some(&cert))).await;

    assert_eq!(outcome.step, "AUTH", "{outcome:?}");
    assert!(
        outcome.text.contains("no authentication method"),
        "{outcome:?}"
    );
    assert_eq!(isp.held("office.test"), 1);
}

#[tokio::test]
async fn tls_required_without_starttls_sends_neither_password_nor_atrn() {
    let isp = provider(provider_config(held(1, "office.test"), None)).await;
    let office = Office::new(PASSWORD);
    let mut server = office.server(&isp, None);
    server.tls = TlsMode::Required;

    let outcome = office.fetch(&server).await;

    assert_eq!(outcome.step, "STARTTLS", "{outcome:?}");
    assert!(isp.auth_attempts().is_empty());
    assert!(
        !isp.transcript()
            .iter()
            .any(|l| l.contains("C: ATRN") || l.contains("C: AUTH"))
    );
}

#[tokio::test]
async fn a_provider_that_stops_mid_data_keeps_the_message_and_nothing_partial_is_stored() {
    let cert = TestCert::generate(&["127.0.0.1"]);
    let mut config = provider_config(held(2, "office.test"), Some(&cert));
    config.fault = Some(Fault::StopMidData);
    let isp = provider(config).await;
    let office = Office::new(PASSWORD);

    let outcome = office.fetch(&office.server(&isp, Some(&cert))).await;

    assert_eq!(outcome.disposition, Disposition::Retry, "{outcome:?}");
    assert_eq!(outcome.received, Some(0));
    assert!(office.stored().is_empty());
    assert_eq!(office.tmp_files(), 0);
    assert_eq!(isp.held("office.test"), 2);
}

#[tokio::test]
async fn a_provider_that_goes_silent_after_250_times_out_cleanly() {
    let cert = TestCert::generate(&["127.0.0.1"]);
    let mut config = provider_config(held(1, "office.test"), Some(&cert));
    config.fault = Some(Fault::SilentAfter250);
    let isp = provider(config).await;
    let office = Office::new(PASSWORD);
    let mut server = office.server(&isp, Some(&cert));
    server.timeout = Duration::from_secs(2);

    let started = Instant::now();
    let outcome = office.fetch(&server).await;
    eprintln!(
        "MEASURED: silent provider ended after {:?}",
        started.elapsed()
    );

    assert_eq!(outcome.disposition, Disposition::Retry, "{outcome:?}");
    assert!(outcome.meaning.contains("idle timeout"), "{outcome:?}");
    assert_eq!(isp.held("office.test"), 1);
}

#[tokio::test]
async fn nothing_waiting_is_453_and_busy_is_451() {
    let cert = TestCert::generate(&["127.0.0.1"]);
    let office = Office::new(PASSWORD);

    let empty = provider(provider_config(vec![], Some(&cert))).await;
    let outcome = office.fetch(&office.server(&empty, Some(&cert))).await;
    assert_eq!(outcome.code, Some(453), "{outcome:?}");
    assert_eq!(outcome.disposition, Disposition::NothingWaiting);
    assert!(outcome.is_success());

    let mut config = provider_config(held(1, "office.test"), Some(&cert));
    config.fault = Some(Fault::Reply451);
    let busy = provider(config).await;
    let outcome = office.fetch(&office.server(&busy, Some(&cert))).await;
    assert_eq!(outcome.code, Some(451), "{outcome:?}");
    assert_eq!(outcome.disposition, Disposition::Retry);
}

#[tokio::test]
async fn turn_is_refused_without_allow_insecure_turn_and_works_after_auth_with_it() {
    let cert = TestCert::generate(&["127.0.0.1"]);
    let mut config = provider_config(held(3, "office.test"), Some(&cert));
    config.turn_enabled = true;
    let isp = provider(config).await;
    let office = Office::new(PASSWORD);
    let mut server = office.server(&isp, Some(&cert));
    server.protocol = Protocol::Turn;

    let refused = office.fetch(&server).await;
    assert_eq!(refused.step, "configuration", "{refused:?}");
    assert!(refused.text.contains("allow_insecure_turn"));
    assert!(isp.transcript().is_empty(), "nothing was sent");

    server.allow_insecure_turn = true;
    let outcome = office.fetch(&server).await;
    assert_eq!(outcome.received, Some(3), "{outcome:?}");
    assert_eq!(isp.auth_attempts()[0].outcome, AuthOutcome::Success);
    assert!(String::from_utf8_lossy(&office.stored()[0]).contains("via TURN"));
}
