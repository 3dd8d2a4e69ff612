//! The ODMR test provider tested on its own, as a peer: a small scripted customer written here
//! (independent of the provider's code) drives it, and fetchmail `--protocol ODMR` cross-checks
//! that it speaks RFC 2645 the way an existing client expects.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use postern_tests::harness::odmr::{
    AuthOutcome, Fault, HeldMessage, Mechanism, OdmrConfig, OdmrProvider, TestCert, User,
};
use postern_tests::harness::sink::SmtpSink;
use postern_tests::skip_unless_root;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);
const DOMAIN: &str = "office.test";
const USER: &str = "office";
const PASSWORD: &str = "s3cret pass";

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

enum Link {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Gone,
}

/// The customer side, scripted line by line.
struct Customer {
    link: Link,
    buf: Vec<u8>,
}

impl Customer {
    async fn connect(addr: SocketAddr) -> Customer {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut c = Customer {
            link: Link::Plain(tcp),
            buf: Vec::new(),
        };
        let (code, lines) = c.reply().await;
        assert_eq!(code, 220);
        assert!(lines[0].ends_with("ESMTP ODMR test provider"), "{lines:?}");
        c
    }

    fn io(&mut self) -> &mut dyn Io {
        match &mut self.link {
            Link::Plain(s) => s,
            Link::Tls(s) => s.as_mut(),
            Link::Gone => panic!("no connection"),
        }
    }

    /// The next line without CRLF, or None when the provider closed the connection.
    async fn read_line(&mut self) -> Option<String> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                return Some(String::from_utf8_lossy(&line[..pos]).into_owned());
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, self.io().read(&mut chunk))
                .await
                .expect("the provider answers within 10 s");
            match n {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn line(&mut self) -> String {
        self.read_line()
            .await
            .expect("the provider closed the connection")
    }

    async fn reply(&mut self) -> (u16, Vec<String>) {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            let code: u16 = line[..3].parse().unwrap();
            lines.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return (code, lines);
            }
        }
    }

    async fn send(&mut self, line: &str) {
        let bytes = format!("{line}\r\n");
        self.io().write_all(bytes.as_bytes()).await.unwrap();
        self.io().flush().await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> (u16, Vec<String>) {
        self.send(line).await;
        self.reply().await
    }

    async fn code(&mut self, line: &str) -> u16 {
        self.cmd(line).await.0
    }

    /// EHLO; returns the keyword lines.
    async fn ehlo(&mut self) -> Vec<String> {
        let (code, lines) = self.cmd("EHLO customer.office.test").await;
        assert_eq!(code, 250);
        lines[1..].to_vec()
    }

    async fn starttls(&mut self, cert: &TestCert) {
        assert_eq!(self.code("STARTTLS").await, 220);
        assert!(self.buf.is_empty());
        let Link::Plain(tcp) = std::mem::replace(&mut self.link, Link::Gone) else {
            panic!("already TLS")
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cert.client_config().unwrap()));
        let name = rustls_pki_types::ServerName::try_from("odmr-provider.test").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        self.link = Link::Tls(Box::new(tls));
    }

    /// Waits for the provider to close the connection; true if it did within WAIT.
    async fn wait_closed(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match tokio::time::timeout(WAIT, self.io().read(&mut chunk)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn auth_plain(&mut self, user: &str, password: &str) -> u16 {
        let token = B64.encode(format!("\0{user}\0{password}"));
        self.code(&format!("AUTH PLAIN {token}")).await
    }

    async fn auth_login(&mut self, user: &str, password: &str) -> u16 {
        assert_eq!(
            self.cmd("AUTH LOGIN").await,
            (334, vec!["VXNlcm5hbWU6".to_string()])
        );
        assert_eq!(
            self.cmd(&B64.encode(user)).await,
            (334, vec!["UGFzc3dvcmQ6".to_string()])
        );
        self.code(&B64.encode(password)).await
    }

    async fn auth_cram_md5(&mut self, user: &str, password: &str) -> u16 {
        let (code, lines) = self.cmd("AUTH CRAM-MD5").await;
        assert_eq!(code, 334);
        let challenge = B64.decode(&lines[0]).unwrap();
        assert!(challenge.starts_with(b"<") && challenge.ends_with(b">"));
        let mut mac = hmac::Hmac::<md5::Md5>::new_from_slice(password.as_bytes()).unwrap();
        mac.update(&challenge);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.code(&B64.encode(format!("{user} {hex}"))).await
    }

    /// SCRAM-SHA-256 client (RFC 5802/7677). Checks the server signature when the server
    /// accepts the proof.
    async fn auth_scram(&mut self, user: &str, password: &str) -> u16 {
        let client_nonce = B64.encode(fastrand::u64(..).to_be_bytes());
        let client_first_bare = format!("n={user},r={client_nonce}");
        let (code, lines) = self
            .cmd(&format!(
                "AUTH SCRAM-SHA-256 {}",
                B64.encode(format!("n,,{client_first_bare}"))
            ))
            .await;
        assert_eq!(code, 334);
        let server_first = String::from_utf8(B64.decode(&lines[0]).unwrap()).unwrap();
        let attr = |key: &str| {
            server_first
                .split(',')
                .find_map(|a| a.strip_prefix(key))
                .unwrap()
                .to_string()
        };
        let nonce = attr("r=");
        assert!(nonce.starts_with(&client_nonce) && nonce.len() > client_nonce.len());
        let salt = B64.decode(attr("s=")).unwrap();
        let iterations: u32 = attr("i=").parse().unwrap();
        let mut salted = [0u8; 32];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(iterations).unwrap(),
            &salt,
            password.as_bytes(),
            &mut salted,
        );
        let hmac = |key: &[u8], data: &[u8]| {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
            ring::hmac::sign(&key, data).as_ref().to_vec()
        };
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = ring::digest::digest(&ring::digest::SHA256, &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = hmac(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let (code, lines) = self
            .cmd(&B64.encode(format!("{without_proof},p={}", B64.encode(proof))))
            .await;
        if code != 334 {
            return code;
        }
        let server_final = String::from_utf8(B64.decode(&lines[0]).unwrap()).unwrap();
        let server_key = hmac(&salted, b"Server Key");
        let expected = B64.encode(hmac(&server_key, auth_message.as_bytes()));
        assert_eq!(server_final, format!("v={expected}"), "server signature");
        self.code("").await
    }

    async fn auth(&mut self, mechanism: Mechanism, user: &str, password: &str) -> u16 {
        match mechanism {
            Mechanism::Plain => self.auth_plain(user, password).await,
            Mechanism::Login => self.auth_login(user, password).await,
            Mechanism::CramMd5 => self.auth_cram_md5(user, password).await,
            Mechanism::ScramSha256 => self.auth_scram(user, password).await,
        }
    }

    /// After 250 to ATRN/TURN: greet as a server and answer the provider's EHLO.
    async fn turn_around(&mut self, pipelining: bool) -> String {
        self.send("220 customer.office.test ESMTP scripted customer")
            .await;
        let ehlo = self.line().await;
        assert!(ehlo.starts_with("EHLO "), "{ehlo}");
        let mut lines = vec!["250-customer.office.test".to_string()];
        if pipelining {
            lines.push("250-PIPELINING".to_string());
        }
        lines.push("250 8BITMIME".to_string());
        let text: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
        self.io().write_all(text.as_bytes()).await.unwrap();
        ehlo
    }

    /// Reads MAIL, RCPTs and DATA before answering any of them (which only a pipelining
    /// sender lets happen), answers 250/250.../354, and returns the envelope and the
    /// un-stuffed content. The final reply is left to the caller.
    async fn receive_pipelined(&mut self) -> (String, Vec<String>, Vec<u8>) {
        let mail = self.line().await;
        assert!(mail.starts_with("MAIL FROM:<"), "{mail}");
        let mut rcpts = Vec::new();
        loop {
            let line = self.line().await;
            if line == "DATA" {
                break;
            }
            assert!(line.starts_with("RCPT TO:<"), "{line}");
            rcpts.push(line);
        }
        let mut answers = String::from("250 2.1.0 Ok\r\n");
        for _ in &rcpts {
            answers.push_str("250 2.1.5 Ok\r\n");
        }
        answers.push_str("354 End data with <CR><LF>.<CR><LF>\r\n");
        self.io().write_all(answers.as_bytes()).await.unwrap();
        let data = self.read_data().await;
        (mail, rcpts, data)
    }

    async fn read_data(&mut self) -> Vec<u8> {
        let mut data = Vec::new();
        loop {
            let line = self.line().await;
            if line == "." {
                return data;
            }
            let line = line.strip_prefix('.').unwrap_or(&line);
            data.extend_from_slice(line.as_bytes());
            data.extend_from_slice(b"\r\n");
        }
    }
}

fn office_user() -> User {
    User {
        name: USER.to_string(),
        password: PASSWORD.to_string(),
        domains: vec![DOMAIN.to_string(), "branch.test".to_string()],
    }
}

fn message(n: usize) -> HeldMessage {
    HeldMessage {
        from: format!("sender{n}@example.net"),
        rcpts: vec![format!("user{n}@{DOMAIN}")],
        data: format!(
            "From: sender{n}@example.net\r\nTo: user{n}@{DOMAIN}\r\nSubject: held {n}\r\n\r\n\
             Body of message {n}.\r\n.a line that starts with a dot\r\n..and two\r\n.\r\nend\r\n"
        )
        .into_bytes(),
    }
}

fn tls_config(held: Vec<HeldMessage>) -> (OdmrConfig, TestCert) {
    let cert = TestCert::generate(&["odmr-provider.test"]);
    let config = OdmrConfig {
        users: vec![office_user()],
        tls: Some(cert.clone()),
        held,
        ..OdmrConfig::default()
    };
    (config, cert)
}

async fn start(config: OdmrConfig) -> OdmrProvider {
    OdmrProvider::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Connects, STARTTLS, EHLO, AUTH PLAIN: ready for ATRN.
async fn authenticated(provider: &OdmrProvider, cert: &TestCert) -> Customer {
    let mut c = Customer::connect(provider.addr()).await;
    c.ehlo().await;
    c.starttls(cert).await;
    c.ehlo().await;
    assert_eq!(c.auth_plain(USER, PASSWORD).await, 235);
    c
}

#[tokio::test]
async fn ehlo_lists_the_right_extensions_before_and_after_starttls() {
    let (config, cert) = tls_config(vec![]);
    let provider = start(config).await;
    let mut c = Customer::connect(provider.addr()).await;

    let before = c.ehlo().await;
    let plain_before_tls = c.auth_plain(USER, PASSWORD).await;
    c.starttls(&cert).await;
    let after = c.ehlo().await;

    assert_eq!(
        before,
        [
            "ATRN",
            "AUTH CRAM-MD5 SCRAM-SHA-256",
            "STARTTLS",
            "PIPELINING",
            "8BITMIME",
            "ENHANCEDSTATUSCODES"
        ]
    );
    assert_eq!(plain_before_tls, 538);
    assert_eq!(
        after,
        [
            "ATRN",
            "AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256",
            "PIPELINING",
            "8BITMIME",
            "ENHANCEDSTATUSCODES"
        ]
    );
}

#[tokio::test]
async fn commands_out_of_place_get_the_rfc_codes() {
    let (config, cert) = tls_config(vec![message(1)]);
    let provider = start(config).await;
    let mut c = Customer::connect(provider.addr()).await;

    let atrn_before_ehlo = c.code("ATRN").await;
    let auth_before_ehlo = c.code("AUTH PLAIN").await;
    let helo_without_name = c.code("HELO").await;
    c.ehlo().await;
    let atrn_before_auth = c.code(&format!("ATRN {DOMAIN}")).await;
    let mail = c.code("MAIL FROM:<a@example.net>").await;
    let unknown = c.code("FROB").await;
    let turn_disabled = c.code("TURN").await;
    c.starttls(&cert).await;
    c.ehlo().await;
    let unknown_mechanism = c.code("AUTH DIGEST-MD5").await;
    let cancelled = c.cmd("AUTH LOGIN").await.0;
    let after_cancel = c.code("*").await;
    let bad_base64 = c.code("AUTH PLAIN !!!").await;
    let atrn_still_refused = c.code("ATRN").await;

    assert_eq!(atrn_before_ehlo, 503);
    assert_eq!(auth_before_ehlo, 503);
    assert_eq!(helo_without_name, 501);
    assert_eq!(atrn_before_auth, 530);
    assert_eq!(mail, 502);
    assert_eq!(unknown, 500);
    assert_eq!(turn_disabled, 502);
    assert_eq!(unknown_mechanism, 504);
    assert_eq!((cancelled, after_cancel), (334, 501));
    assert_eq!(bad_base64, 501);
    assert_eq!(atrn_still_refused, 530);
    assert_eq!(provider.held(DOMAIN), 1);
}

#[tokio::test]
async fn every_mechanism_accepts_the_right_password_and_refuses_a_wrong_one() {
    for mechanism in Mechanism::ALL {
        let (config, cert) = tls_config(vec![]);
        let provider = start(config).await;

        let mut right = Customer::connect(provider.addr()).await;
        right.ehlo().await;
        right.starttls(&cert).await;
        right.ehlo().await;
        let accepted = right.auth(mechanism, USER, PASSWORD).await;
        let mut wrong = Customer::connect(provider.addr()).await;
        wrong.ehlo().await;
        wrong.starttls(&cert).await;
        wrong.ehlo().await;
        let refused = wrong.auth(mechanism, USER, "wrong password").await;
        let unknown_user = wrong.auth(mechanism, "nobody", PASSWORD).await;

        assert_eq!(accepted, 235, "{mechanism:?} with the right password");
        assert_eq!(refused, 535, "{mechanism:?} with a wrong password");
        assert_eq!(unknown_user, 535, "{mechanism:?} with an unknown user");
        let attempts = provider.auth_attempts();
        let outcomes: Vec<(String, AuthOutcome)> = attempts
            .iter()
            .map(|a| (a.mechanism.clone(), a.outcome))
            .collect();
        let name = mechanism.name().to_string();
        assert_eq!(
            outcomes,
            [
                (name.clone(), AuthOutcome::Success),
                (name.clone(), AuthOutcome::BadCredentials),
                (name, AuthOutcome::BadCredentials)
            ]
        );
        assert_eq!(attempts[0].user.as_deref(), Some(USER));
    }
}

#[tokio::test]
async fn cram_md5_and_scram_work_without_tls_and_plain_only_when_allowed() {
    let config = OdmrConfig {
        users: vec![office_user()],
        allow_plain_without_tls: true,
        mechanisms: vec![Mechanism::Plain, Mechanism::ScramSha256],
        ..OdmrConfig::default()
    };
    let provider = start(config).await;
    let mut c = Customer::connect(provider.addr()).await;

    let keywords = c.ehlo().await;
    let cram = c.code("AUTH CRAM-MD5").await;
    let scram = c.auth_scram(USER, PASSWORD).await;

    assert!(keywords.contains(&"AUTH PLAIN SCRAM-SHA-256".to_string()));
    assert!(!keywords.contains(&"STARTTLS".to_string()));
    assert_eq!(cram, 504, "CRAM-MD5 is not configured");
    assert_eq!(scram, 235);
}

#[tokio::test]
async fn atrn_answers_453_when_nothing_is_held_and_450_for_a_foreign_domain() {
    let held = vec![HeldMessage {
        rcpts: vec!["someone@elsewhere.test".to_string()],
        ..message(1)
    }];
    let (config, cert) = tls_config(held);
    let provider = start(config).await;
    let mut c = authenticated(&provider, &cert).await;

    let nothing_held = c.cmd(&format!("ATRN {DOMAIN}")).await;
    let nothing_for_any = c.code("ATRN").await;
    let foreign = c.code(&format!("ATRN {DOMAIN},elsewhere.test")).await;
    let syntax = c.code("ATRN office.test,,x").await;

    assert_eq!(
        nothing_held,
        (453, vec!["4.3.0 You have no mail".to_string()])
    );
    assert_eq!(nothing_for_any, 453);
    assert_eq!(foreign, 450);
    assert_eq!(syntax, 501);
    assert_eq!(provider.held("elsewhere.test"), 1);
}

#[tokio::test]
async fn atrn_delivers_three_held_messages_pipelined_and_byte_identical() {
    let held: Vec<HeldMessage> = (1..=3).map(message).collect();
    let (config, cert) = tls_config(held.clone());
    let provider = start(config).await;
    let mut c = authenticated(&provider, &cert).await;

    let atrn = c.cmd(&format!("ATRN {DOMAIN}")).await;
    let ehlo = c.turn_around(true).await;
    let mut received = Vec::new();
    for _ in 0..3 {
        received.push(c.receive_pipelined().await);
        c.send("250 2.0.0 Ok: queued").await;
    }
    let quit = c.line().await;
    c.send("221 2.0.0 Bye").await;
    let closed = c.wait_closed().await;
    assert!(provider.wait_sessions_finished(1, WAIT).await);

    assert_eq!(atrn.0, 250);
    assert_eq!(ehlo, "EHLO odmr-provider.test");
    for (i, (mail, rcpts, data)) in received.iter().enumerate() {
        assert_eq!(mail, &format!("MAIL FROM:<{}>", held[i].from));
        assert_eq!(rcpts, &[format!("RCPT TO:<{}>", held[i].rcpts[0])]);
        assert_eq!(data, &held[i].data, "message {i} arrives byte-identical");
    }
    assert_eq!(quit, "QUIT");
    assert!(closed);
    assert_eq!(provider.held(DOMAIN), 0);
    let delivered = provider.delivered();
    assert_eq!(delivered.len(), 3);
    assert!(delivered.iter().all(|d| d.reply == "250 2.0.0 Ok: queued"));
    assert_eq!(delivered[2].data, held[2].data);
}

#[tokio::test]
async fn without_pipelining_the_provider_waits_for_each_reply() {
    let (config, cert) = tls_config(vec![message(1)]);
    let provider = start(config).await;
    let mut c = authenticated(&provider, &cert).await;

    c.cmd("ATRN").await;
    c.turn_around(false).await;
    let mail = c.line().await;
    c.send("250 2.1.0 Ok").await;
    let rcpt = c.line().await;
    c.send("250 2.1.5 Ok").await;
    let data_cmd = c.line().await;
    c.send("354 go ahead").await;
    let data = c.read_data().await;
    c.send("250 2.0.0 Ok").await;
    let quit = c.line().await;
    c.send("221 2.0.0 Bye").await;

    assert!(mail.starts_with("MAIL FROM:<sender1@example.net>"));
    assert_eq!(rcpt, format!("RCPT TO:<user1@{DOMAIN}>"));
    assert_eq!(data_cmd, "DATA");
    assert_eq!(data, message(1).data);
    assert_eq!(quit, "QUIT");
    assert!(provider.wait_sessions_finished(1, WAIT).await);
    assert_eq!(provider.held(DOMAIN), 0);
}

#[tokio::test]
async fn a_451_after_the_dot_keeps_the_message_held() {
    let (config, cert) = tls_config(vec![message(1), message(2)]);
    let provider = start(config).await;
    let mut c = authenticated(&provider, &cert).await;

    c.cmd(&format!("ATRN {DOMAIN}")).await;
    c.turn_around(true).await;
    c.receive_pipelined().await;
    c.send("451 4.3.0 Local problem, try later").await;
    c.receive_pipelined().await;
    c.send("250 2.0.0 Ok").await;
    assert_eq!(c.line().await, "QUIT");
    c.send("221 2.0.0 Bye").await;
    assert!(provider.wait_sessions_finished(1, WAIT).await);

    assert_eq!(provider.held(DOMAIN), 1);
    assert_eq!(provider.held_messages(), vec![message(1)]);
    let attempts = provider.attempts();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        attempts[0].reply.as_deref(),
        Some("451 4.3.0 Local problem, try later")
    );
    assert!(!attempts[0].delivered);
    assert_eq!(provider.delivered().len(), 1);
    assert_eq!(provider.delivered()[0].from, "sender2@example.net");
}

#[tokio::test]
async fn a_refused_recipient_is_not_delivered_and_stays_held() {
    let held = vec![HeldMessage {
        rcpts: vec![format!("a@{DOMAIN}"), format!("b@{DOMAIN}")],
        ..message(1)
    }];
    let (config, cert) = tls_config(held);
    let provider = start(config).await;
    let mut c = authenticated(&provider, &cert).await;

    c.cmd("ATRN").await;
    c.turn_around(true).await;
    assert!(c.line().await.starts_with("MAIL FROM:"));
    assert_eq!(c.line().await, format!("RCPT TO:<a@{DOMAIN}>"));
    assert_eq!(c.line().await, format!("RCPT TO:<b@{DOMAIN}>"));
    assert_eq!(c.line().await, "DATA");
    c.send("250 2.1.0 Ok").await;
    c.send("250 2.1.5 Ok").await;
    c.send("450 4.2.0 b: mailbox busy").await;
    c.send("354 go ahead").await;
    c.read_data().await;
    c.send("250 2.0.0 Ok").await;
    assert_eq!(c.line().await, "QUIT");
    c.send("221 2.0.0 Bye").await;
    assert!(provider.wait_sessions_finished(1, WAIT).await);

    let still_held = provider.held_messages();
    assert_eq!(still_held.len(), 1);
    assert_eq!(still_held[0].rcpts, vec![format!("b@{DOMAIN}")]);
    assert_eq!(provider.delivered()[0].rcpts, vec![format!("a@{DOMAIN}")]);
}

#[tokio::test]
async fn stop_mid_data_drops_the_connection_and_keeps_the_message() {
    let (mut config, cert) = tls_config(vec![message(1)]);
    config.fault = Some(Fault::StopMidData);
    let provider = start(config).await;
    let mut c = authenticated(&provider, &cert).await;

    c.cmd("ATRN").await;
    c.turn_around(true).await;
    c.line().await;
    c.line().await;
    c.line().await;
    c.send("250 2.1.0 Ok").await;
    c.send("250 2.1.5 Ok").await;
    c.send("354 go ahead").await;
    let mut lines = Vec::new();
    while let Some(line) = c.read_line().await {
        lines.push(line);
    }
    assert!(provider.wait_sessions_finished(1, WAIT).await);

    assert!(!lines.is_empty(), "part of the message arrived");
    assert!(
        !lines.contains(&".".to_string()),
        "no end of data: {lines:?}"
    );
    assert_eq!(provider.held(DOMAIN), 1);
    assert!(provider.delivered().is_empty());
    assert_eq!(provider.attempts()[0].reply, None);
}

#[tokio::test]
async fn silent_after_250_keeps_the_socket_open_without_a_word_until_shutdown() {
    let (mut config, cert) = tls_config(vec![message(1)]);
    config.fault = Some(Fault::SilentAfter250);
    let provider = start(config).await;
    let mut c = authenticated(&provider, &cert).await;

    let atrn = c.code("ATRN").await;
    c.send("220 customer.office.test ESMTP").await;
    let mut chunk = [0u8; 64];
    let silence = tokio::time::timeout(Duration::from_secs(2), c.io().read(&mut chunk)).await;
    provider.shutdown().await;
    let closed = c.wait_closed().await;

    assert_eq!(atrn, 250);
    assert!(silence.is_err(), "the provider said something: {silence:?}");
    assert!(closed, "shutdown closes the silent session");
}

#[tokio::test]
async fn atrn_faults_reply_with_the_configured_codes() {
    for (fault, code) in [
        (Fault::Reply451, 451),
        (Fault::Reply450, 450),
        (Fault::NotImplemented502, 502),
    ] {
        let (mut config, cert) = tls_config(vec![message(1)]);
        config.fault = Some(fault);
        let provider = start(config).await;
        let mut c = authenticated(&provider, &cert).await;

        let reply = c.code(&format!("ATRN {DOMAIN}")).await;
        let quit = c.code("QUIT").await;

        assert_eq!(reply, code, "{fault:?}");
        assert_eq!(quit, 221);
        assert_eq!(provider.held(DOMAIN), 1);
    }
}

#[tokio::test]
async fn a_second_session_for_a_domain_being_released_gets_451() {
    let (config, cert) = tls_config(vec![message(1)]);
    let provider = start(config).await;
    let mut first = authenticated(&provider, &cert).await;
    let mut second = authenticated(&provider, &cert).await;

    let first_atrn = first.code("ATRN").await;
    first.turn_around(true).await;
    let second_atrn = second.code(&format!("ATRN {DOMAIN}")).await;
    first.receive_pipelined().await;
    first.send("250 2.0.0 Ok").await;
    assert_eq!(first.line().await, "QUIT");
    first.send("221 2.0.0 Bye").await;

    assert_eq!(first_atrn, 250);
    assert_eq!(second_atrn, 451);
}

#[tokio::test]
async fn turn_needs_configuration_and_auth_then_reverses_the_connection() {
    let (mut config, cert) = tls_config(vec![message(1)]);
    config.turn_enabled = true;
    let provider = start(config).await;
    let mut c = Customer::connect(provider.addr()).await;
    c.ehlo().await;

    let before_auth = c.code("TURN").await;
    c.starttls(&cert).await;
    c.ehlo().await;
    assert_eq!(c.auth_cram_md5(USER, PASSWORD).await, 235);
    let with_argument = c.code("TURN office.test").await;
    let turn = c.cmd("TURN").await;
    c.turn_around(true).await;
    let (_, _, data) = c.receive_pipelined().await;
    c.send("250 2.0.0 Ok").await;
    assert_eq!(c.line().await, "QUIT");
    c.send("221 2.0.0 Bye").await;
    assert!(provider.wait_sessions_finished(1, WAIT).await);

    assert_eq!(before_auth, 530);
    assert_eq!(with_argument, 501);
    assert_eq!(turn, (250, vec!["2.0.0 OK".to_string()]));
    assert_eq!(data, message(1).data);
    assert_eq!(provider.held(DOMAIN), 0);
}

#[tokio::test]
async fn starttls_discards_pipelined_commands_and_resets_auth() {
    let (config, cert) = tls_config(vec![]);
    let provider = start(config).await;
    let mut c = Customer::connect(provider.addr()).await;
    c.ehlo().await;

    c.io().write_all(b"STARTTLS\r\nNOOP\r\n").await.unwrap();
    let (code, _) = c.reply().await;
    assert_eq!(code, 220);
    let Link::Plain(tcp) = std::mem::replace(&mut c.link, Link::Gone) else {
        panic!()
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cert.client_config().unwrap()));
    let name = rustls_pki_types::ServerName::try_from("odmr-provider.test").unwrap();
    c.link = Link::Tls(Box::new(connector.connect(name, tcp).await.unwrap()));
    let auth_without_ehlo = c.code("AUTH PLAIN AG9mZmljZQBz").await;

    assert_eq!(auth_without_ehlo, 503);
    assert!(
        provider
            .transcript()
            .iter()
            .any(|l| l.contains("pipelined after STARTTLS discarded"))
    );
}

#[tokio::test]
async fn bare_lf_lines_are_refused_and_crlf_lines_work() {
    let provider = start(OdmrConfig::default()).await;
    let mut c = Customer::connect(provider.addr()).await;

    c.io().write_all(b"NOOP\n").await.unwrap();
    let bare = c.reply().await.0;
    let crlf = c.code("NOOP").await;

    assert_eq!(bare, 500);
    assert_eq!(crlf, 250);
}

#[tokio::test]
async fn anything_pipelined_after_atrn_is_refused() {
    let (config, cert) = tls_config(vec![message(1)]);
    let provider = start(config).await;
    let mut c = authenticated(&provider, &cert).await;

    c.io()
        .write_all(b"ATRN\r\n220 too early\r\n")
        .await
        .unwrap();
    let (code, _) = c.reply().await;
    let closed = c.wait_closed().await;

    assert_eq!(code, 554);
    assert!(closed);
    assert_eq!(provider.held(DOMAIN), 1);
}

#[tokio::test]
async fn the_idle_timeout_ends_silent_sessions_in_both_roles() {
    let (mut config, cert) = tls_config(vec![message(1)]);
    config.idle_timeout = Duration::from_secs(1);
    let provider = start(config).await;
    let mut silent_client = Customer::connect(provider.addr()).await;
    let mut silent_after_atrn = authenticated(&provider, &cert).await;

    let goodbye = silent_client.line().await;
    let first_closed = silent_client.wait_closed().await;
    let atrn = silent_after_atrn.code("ATRN").await;
    let second_closed = silent_after_atrn.wait_closed().await;

    assert!(goodbye.starts_with("421 4.4.2"), "{goodbye}");
    assert!(first_closed);
    assert_eq!(atrn, 250);
    assert!(
        second_closed,
        "the provider gave up waiting for the customer's 220"
    );
    assert!(provider.wait_sessions_finished(2, WAIT).await);
    assert_eq!(provider.held(DOMAIN), 1);
}

#[tokio::test]
async fn eight_bit_content_is_declared_when_the_customer_offers_8bitmime() {
    let held = vec![HeldMessage {
        data: "Subject: caf\u{e9}\r\n\r\nna\u{ef}ve r\u{e9}sum\u{e9}\r\n"
            .as_bytes()
            .to_vec(),
        ..message(1)
    }];
    let (config, cert) = tls_config(held.clone());
    let provider = start(config).await;
    let mut c = authenticated(&provider, &cert).await;

    c.cmd("ATRN").await;
    c.turn_around(true).await;
    let (mail, _, data) = c.receive_pipelined().await;
    c.send("250 2.0.0 Ok").await;
    assert_eq!(c.line().await, "QUIT");
    c.send("221 2.0.0 Bye").await;

    assert_eq!(mail, "MAIL FROM:<sender1@example.net> BODY=8BITMIME");
    assert_eq!(data, held[0].data);
}

#[tokio::test]
async fn a_certificate_for_an_ip_address_verifies_when_connecting_by_ip() {
    let cert = TestCert::generate(&["127.0.0.1"]);
    let config = OdmrConfig {
        tls: Some(cert.clone()),
        ..OdmrConfig::default()
    };
    let provider = start(config).await;
    let mut c = Customer::connect(provider.addr()).await;
    c.ehlo().await;
    assert_eq!(c.code("STARTTLS").await, 220);
    let Link::Plain(tcp) = std::mem::replace(&mut c.link, Link::Gone) else {
        panic!()
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cert.client_config().unwrap()));
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();

    let tls = connector.connect(name, tcp).await;

    assert!(tls.is_ok(), "{:?}", tls.err());
}

// ---------------------------------------------------------------------------------------------
// The standalone binary.

#[tokio::test]
async fn the_binary_serves_a_config_file_and_writes_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let cert = TestCert::generate(&["odmr-provider.test"]);
    cert.write_cert_pem(&dir.path().join("cert.pem")).unwrap();
    cert.write_key_pem(&dir.path().join("key.pem")).unwrap();
    let config = serde_json::json!({
        "users": [{"name": USER, "password": PASSWORD, "domains": [DOMAIN]}],
        "mechanisms": ["PLAIN", "SCRAM-SHA-256"],
        "tls": {"cert_pem_file": dir.path().join("cert.pem"), "key_pem_file": dir.path().join("key.pem")},
        "held": [{"from": "a@example.net", "rcpts": [format!("u@{DOMAIN}")], "data": "Subject: x\r\n\r\nhi\r\n"}],
    });
    std::fs::write(dir.path().join("c.json"), config.to_string()).unwrap();
    let state_path = dir.path().join("state.json");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_odmr-provider"))
        .arg("--config")
        .arg(dir.path().join("c.json"))
        .args(["--listen", "127.0.0.1:0", "--state"])
        .arg(&state_path)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    tokio::time::timeout(
        WAIT,
        tokio::io::AsyncBufReadExt::read_line(&mut stdout, &mut first),
    )
    .await
    .unwrap()
    .unwrap();
    let addr: SocketAddr = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();

    let mut c = Customer::connect(addr).await;
    c.ehlo().await;
    c.starttls(&cert).await;
    c.ehlo().await;
    assert_eq!(c.auth_scram(USER, PASSWORD).await, 235);
    assert_eq!(c.code("ATRN").await, 250);
    c.turn_around(true).await;
    let (_, _, data) = c.receive_pipelined().await;
    c.send("250 2.0.0 Ok").await;
    assert_eq!(c.line().await, "QUIT");
    c.send("221 2.0.0 Bye").await;
    assert!(c.wait_closed().await);
    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();

    assert_eq!(data, b"Subject: x\r\n\r\nhi\r\n");
    assert!(status.success(), "{status}");
    assert_eq!(state["held"].as_array().unwrap().len(), 0);
    assert_eq!(state["delivered"][0]["data"], "Subject: x\r\n\r\nhi\r\n");
    assert_eq!(state["delivered"][0]["reply"], "250 2.0.0 Ok");
    assert_eq!(state["sessions_finished"], 1);
}

// ---------------------------------------------------------------------------------------------
// Cross-check with fetchmail, the reference ODMR client: it authenticates with CRAM-MD5 only,
// has no STARTTLS for ODMR, and after the 250 to ATRN it pipes the stream, byte for byte, to
// the SMTP listener given as smtphost (here Postfix's smtp-sink). So the provider's reversed
// session talks to smtp-sink through fetchmail.

/// Runs `fetchmail --protocol ODMR` once; returns its exit code and output.
async fn fetchmail(
    dir: &std::path::Path,
    provider: SocketAddr,
    sink: u16,
    password: &str,
) -> (i32, String) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let rc = dir.join("fetchmailrc");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&rc)
        .unwrap();
    writeln!(
        file,
        "poll 127.0.0.1 protocol ODMR service {} user \"{USER}\" password \"{password}\" \
         fetchdomains {DOMAIN} smtphost \"127.0.0.1/{sink}\"",
        provider.port()
    )
    .unwrap();
    drop(file);
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("fetchmail")
            .arg("-f")
            .arg(&rc)
            .args(["-v", "--nosyslog", "--timeout", "20", "--pidfile"])
            // As root, fetchmail otherwise locks /var/run/fetchmail.pid, shared by every test.
            .arg(dir.join("fetchmail.pid"))
            .env("FETCHMAILHOME", dir)
            .env("HOME", dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("fetchmail finishes within 60 s")
    .expect("fetchmail runs (apt-get install fetchmail)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

fn fetchmail_config(held: Vec<HeldMessage>) -> OdmrConfig {
    OdmrConfig {
        users: vec![office_user()],
        mechanisms: vec![Mechanism::CramMd5],
        allow_plain_without_tls: true,
        held,
        ..OdmrConfig::default()
    }
}

fn private_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // smtp-sink writes its dumps as `nobody`.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

#[tokio::test]
async fn fetchmail_releases_the_held_mail_into_smtp_sink() {
    skip_unless_root!();
    let other = HeldMessage {
        rcpts: vec![format!("v@{DOMAIN}"), "w@elsewhere.test".to_string()],
        ..message(2)
    };
    let provider = start(fetchmail_config(vec![message(1), other])).await;
    let dir = private_dir();
    let sink = SmtpSink::start().expect("smtp-sink starts");

    let (code, output) = fetchmail(dir.path(), provider.addr(), sink.port(), PASSWORD).await;
    let finished = provider.wait_sessions_finished(1, WAIT).await;

    assert_eq!(code, 0, "fetchmail failed:\n{output}");
    assert!(finished, "{:#?}", provider.transcript());
    assert!(output.contains("ATRN office.test"), "{output}");
    assert_eq!(provider.held(DOMAIN), 0);
    assert_eq!(
        provider.held("elsewhere.test"),
        1,
        "only the released domain's recipients"
    );
    let delivered = provider.delivered();
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[1].rcpts, vec![format!("v@{DOMAIN}")]);
    assert_eq!(provider.auth_attempts()[0].mechanism, "CRAM-MD5");
    let mut dumped = sink
        .wait_for_messages(2, WAIT)
        .expect("two messages relayed");
    dumped.sort_by_key(|m| m.sender());
    for (dump, n) in dumped.iter().zip([1, 2]) {
        // smtp-sink stores lines with LF endings.
        let content = String::from_utf8(message(n).data)
            .unwrap()
            .replace("\r\n", "\n");
        assert_eq!(dump.sender(), format!("sender{n}@example.net"));
        assert!(
            String::from_utf8_lossy(&dump.data).contains(&content),
            "message {n} content in {dump:?}"
        );
    }
}

#[tokio::test]
async fn fetchmail_with_a_wrong_password_gets_535_and_nothing_moves() {
    skip_unless_root!();
    let provider = start(fetchmail_config(vec![message(1)])).await;
    let dir = private_dir();
    let sink = SmtpSink::start().expect("smtp-sink starts");

    let (code, output) = fetchmail(dir.path(), provider.addr(), sink.port(), "wrong").await;

    assert_ne!(code, 0, "{output}");
    assert!(output.contains("535"), "{output}");
    assert_eq!(provider.held(DOMAIN), 1);
    assert_eq!(
        provider.auth_attempts()[0].outcome,
        AuthOutcome::BadCredentials
    );
}
