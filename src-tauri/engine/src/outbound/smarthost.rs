//! Delivery through the ISP's smarthost over the project's own SMTP client, recipient by
//! recipient: every RCPT gets its own answer, so one refused address never sinks the message for
//! the others (lettre's `send_raw` stops at the first refusal).
//!
//! TLS: `smtps://` is TLS from the first byte; `smtp://` upgrades with STARTTLS as
//! `smarthost_tls` says. With a login, TLS is never optional, whatever `smarthost_tls` says.
//!
//! Every wait is bounded as a whole: the connect, each whole reply (however slowly it drips in)
//! and each write run under [`Smarthost::timeout`]. The message is streamed from its spool file
//! in pieces, dot-stuffed on the way ([`DotStuffer`]), never held whole. One [`Connection`]
//! carries a whole burst (RSET between messages).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::config::{Outbound, TlsMode};
use crate::secrets::SecretStore;
use crate::smtp::client::{ClientError, ClientOptions, SmtpClient};
use crate::smtp::data::DotStuffer;
use crate::smtp::reply::Reply;
use crate::tls::TrustPolicy;

/// Read from the spool file and sent in pieces of this size.
const SEND_CHUNK: usize = 64 * 1024;

/// How long any one wait on the smarthost may take (RFC 5321 §4.5.3.2 allows longer for some
/// steps; a smarthost that takes more than two minutes to answer is treated as down).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The smarthost of `[outbound]`, ready to connect.
#[derive(Clone)]
pub struct Smarthost {
    pub host: String,
    pub port: u16,
    pub implicit_tls: bool,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub secret_name: Option<String>,
    pub helo_name: String,
    pub timeout: Duration,
    pub trust: TrustPolicy,
    pub secrets: Arc<dyn SecretStore>,
    /// Connect here instead of resolving `host` with the system resolver (a neighbour's MX
    /// host found with the engine's own DNS).
    pub connect_addr: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for Smarthost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Smarthost({})", self.describe())
    }
}

/// Why a whole connection or transaction failed (every recipient of it shares the result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// 5xx: retrying cannot help.
    pub permanent: bool,
    pub text: String,
}

/// One recipient's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptResult {
    Delivered(String),
    Temporary(String),
    Permanent(String),
}

impl RcptResult {
    fn from_reply(reply: &Reply) -> RcptResult {
        let text = format!("{} {}", reply.code, reply.text());
        match reply.code {
            200..=299 => RcptResult::Delivered(text),
            500..=599 => RcptResult::Permanent(text),
            _ => RcptResult::Temporary(text),
        }
    }
    fn from_failure(f: &Failure) -> RcptResult {
        if f.permanent {
            RcptResult::Permanent(f.text.clone())
        } else {
            RcptResult::Temporary(f.text.clone())
        }
    }
}

fn failure(e: &ClientError) -> Failure {
    // A refused login is the office's own configuration, not the message's fault: it stays
    // queued until the password is fixed (as Postfix's smtp_sasl_auth_soft_bounce does).
    let permanent = match e {
        ClientError::Greeting { reply, .. } => (500..600).contains(&reply.code),
        _ => false,
    };
    Failure {
        permanent,
        text: e.to_string(),
    }
}

impl Smarthost {
    pub fn from_config(
        outbound: &Outbound,
        helo_name: &str,
        secrets: Arc<dyn SecretStore>,
    ) -> Smarthost {
        let (host, port) = outbound.smarthost_host_port();
        Smarthost {
            host,
            port,
            implicit_tls: outbound.smarthost_implicit_tls(),
            tls: outbound.smarthost_tls,
            username: outbound.smarthost_username.clone(),
            secret_name: outbound.secret_name(),
            helo_name: helo_name.to_string(),
            timeout: DEFAULT_TIMEOUT,
            trust: TrustPolicy {
                ca_file: outbound.smarthost_tls_ca.clone(),
                fingerprint: None,
            },
            secrets,
            connect_addr: None,
        }
    }

    pub fn describe(&self) -> String {
        let scheme = if self.implicit_tls { "smtps" } else { "smtp" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    pub(crate) fn options(&self) -> ClientOptions {
        ClientOptions {
            host: self.host.clone(),
            port: self.port,
            timeout: self.timeout,
            helo_name: self.helo_name.clone(),
            trust: self.trust.clone(),
            connect_addr: self.connect_addr,
        }
    }

    /// Connects, greets, secures and logs in.
    pub async fn connect(&self) -> Result<Connection, Failure> {
        let opts = self.options();
        let mut client = if self.implicit_tls {
            self.connect_implicit_tls(&opts).await?
        } else {
            SmtpClient::connect(&opts).await.map_err(|e| failure(&e))?
        };
        client.hello().await.map_err(|e| failure(&e))?;
        let mut secured = self.implicit_tls;
        let must_tls = self.tls == TlsMode::Required || self.username.is_some();
        if !secured && self.tls != TlsMode::Off {
            if client.capabilities().has("STARTTLS") {
                client.start_tls().await.map_err(|e| failure(&e))?;
                secured = true;
            } else if must_tls {
                client.quit().await;
                return Err(Failure {
                    permanent: false,
                    text: format!(
                        "{} does not offer STARTTLS, and {} forbids going on without it. The mail \
                         stays queued: use the ISP's port with STARTTLS (587) or implicit TLS \
                         (smtps://, 465){}",
                        self.describe(),
                        if self.username.is_some() {
                            "a login (smarthost_username)"
                        } else {
                            "smarthost_tls = \"required\""
                        },
                        if self.username.is_some() {
                            ""
                        } else {
                            ", or set smarthost_tls = \"opportunistic\" to send unencrypted"
                        }
                    ),
                });
            }
        }
        if let (Some(user), Some(name)) = (&self.username, &self.secret_name) {
            let password = crate::secrets::get_password(self.secrets.clone(), name.clone())
                .await
                .map_err(|e| Failure {
                    permanent: false,
                    text: e.to_string(),
                })?;
            client
                .authenticate(user, &password, secured)
                .await
                .map_err(|e| {
                    let mut f = failure(&e);
                    if matches!(e, ClientError::AuthRefused { .. }) {
                        f.text.push_str(&format!(
                            ". The mail stays queued: check smarthost_username and store the right \
                             password with `posternd secret set {name}`"
                        ));
                    }
                    f
                })?;
        }
        Ok(Connection {
            client,
            used: false,
            server: self.describe(),
        })
    }

    /// Connects and greets (TLS from the first byte for `smtps://`), nothing more: for the
    /// setup checks, which look at what the smarthost offers before STARTTLS and AUTH.
    pub async fn greet(&self) -> Result<SmtpClient, Failure> {
        let opts = self.options();
        let mut client = if self.implicit_tls {
            self.connect_implicit_tls(&opts).await?
        } else {
            SmtpClient::connect(&opts).await.map_err(|e| failure(&e))?
        };
        client.hello().await.map_err(|e| failure(&e))?;
        Ok(client)
    }

    async fn connect_implicit_tls(&self, opts: &ClientOptions) -> Result<SmtpClient, Failure> {
        let server = self.describe();
        let fail = |text: String| Failure {
            permanent: false,
            text,
        };
        let tcp = tokio::time::timeout(
            self.timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| {
            fail(format!(
                "{server}: no connection within {} s",
                self.timeout.as_secs()
            ))
        })?
        .map_err(|e| fail(format!("cannot connect to {server}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let seen = crate::tls::SeenCertificate::default();
        let config =
            crate::tls::client_config(&self.trust, &seen).map_err(|e| fail(e.to_string()))?;
        let name = rustls_pki_types::ServerName::try_from(self.host.clone()).map_err(|e| {
            fail(format!(
                "\"{}\" is not a valid TLS server name: {e}",
                self.host
            ))
        })?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls = tokio::time::timeout(self.timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| fail(format!("{server}: the TLS handshake timed out")))?
            .map_err(|e| fail(format!("TLS with {server} failed: {e}")))?;
        SmtpClient::over_stream(tls, opts)
            .await
            .map_err(|e| failure(&e))
    }
}

/// One logged-in connection to the smarthost.
#[derive(Debug)]
pub struct Connection {
    client: SmtpClient,
    used: bool,
    server: String,
}

impl Connection {
    /// A connection over a client that is already greeted and said EHLO (the ODMR
    /// turnaround: the neighbour's side of the same connection).
    pub fn over(client: SmtpClient, server: String) -> Connection {
        Connection {
            client,
            used: false,
            server,
        }
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    /// Sends the message in `path` from `sender` to `recipients`; one result per recipient, in
    /// order. `Err` means the connection is no longer usable (the results are then the
    /// error's, for every recipient).
    pub async fn send(
        &mut self,
        sender: &str,
        recipients: &[String],
        size: u64,
        path: &Path,
    ) -> Result<Vec<RcptResult>, Failure> {
        if self.used {
            let reply = self.command("RSET").await?;
            if !reply.is_positive() {
                return Err(Failure {
                    permanent: false,
                    text: format!("RSET: {} {}", reply.code, reply.text()),
                });
            }
        }
        self.used = true;
        let mut mail = format!("MAIL FROM:<{sender}>");
        if self.client.capabilities().has("SIZE") {
            mail.push_str(&format!(" SIZE={size}"));
        }
        if self.client.capabilities().has("8BITMIME") {
            mail.push_str(" BODY=8BITMIME");
        }
        let reply = self.command(&mail).await?;
        if !reply.is_positive() {
            let one = RcptResult::from_reply(&reply);
            return Ok(vec![one; recipients.len()]);
        }
        let mut results = Vec::with_capacity(recipients.len());
        for rcpt in recipients {
            let reply = self.command(&format!("RCPT TO:<{rcpt}>")).await?;
            results.push(if reply.is_positive() {
                None
            } else {
                Some(RcptResult::from_reply(&reply))
            });
        }
        if results.iter().all(Option::is_some) {
            return Ok(results.into_iter().flatten().collect());
        }
        let reply = self.command("DATA").await?;
        let verdict = if reply.code == 354 {
            self.stream_message(path).await?;
            self.client
                .read_reply("the end of the message")
                .await
                .map_err(|e| failure(&e))?
        } else {
            reply
        };
        let outcome = RcptResult::from_reply(&verdict);
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| outcome.clone()))
            .collect())
    }

    async fn command(&mut self, line: &str) -> Result<Reply, Failure> {
        self.client.command(line).await.map_err(|e| failure(&e))
    }

    /// The spool file, dot-stuffed, then the end of data.
    async fn stream_message(&mut self, path: &Path) -> Result<(), Failure> {
        let fail = |what: String| Failure {
            permanent: false,
            text: what,
        };
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
        let mut stuffer = DotStuffer::new();
        let mut buf = vec![0u8; SEND_CHUNK];
        let mut out = Vec::with_capacity(SEND_CHUNK + SEND_CHUNK / 8);
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
            if n == 0 {
                break;
            }
            stuffer.stuff(&buf[..n], &mut out);
            self.client
                .send_raw(&out, "sending the message")
                .await
                .map_err(|e| failure(&e))?;
            out.clear();
        }
        self.client
            .send_raw(stuffer.finish(), "sending the end of the message")
            .await
            .map_err(|e| failure(&e))
    }

    pub async fn quit(self) {
        self.client.quit().await;
    }
}

/// The results when the connection failed before or during the transaction.
pub fn all_failed(failure: &Failure, n: usize) -> Vec<RcptResult> {
    vec![RcptResult::from_failure(failure); n]
}
