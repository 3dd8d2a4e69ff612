//! The client side of an SMTP session (a queuing server, the office mail server, the MX
//! checker's probes): connect, greeting, EHLO (HELO fallback), STARTTLS, AUTH, commands. Every
//! connect, read and write runs under the server's timeout, and no reply may grow without bound,
//! so a hostile or dead server costs at most one timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use super::conn::{Conn, Stream, TlsInfo};
use super::reply::Reply;
use super::sasl::{self, Mechanism};
use crate::config::Fingerprint;
use crate::tls::{TlsSetupError, TrustPolicy};

/// RFC 5321 allows 512 octets per reply line; real servers send longer texts.
const MAX_REPLY_LINE: usize = 4096;
const MAX_REPLY_LINES: usize = 200;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub host: String,
    pub port: u16,
    /// Bounds the connect, each whole reply (however slowly it drips in) and each write.
    pub timeout: Duration,
    /// Our name in EHLO.
    pub helo_name: String,
    pub trust: TrustPolicy,
    /// Connect to this address instead of resolving `host` with the system resolver (the MX
    /// checker uses its own DNS); `host` stays the name the certificate must match.
    pub connect_addr: Option<std::net::IpAddr>,
}

impl ClientOptions {
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {server}: {detail}")]
    Connect { server: String, detail: String },
    #[error("{server} did not answer within {} s ({step})", after.as_secs())]
    Timeout {
        server: String,
        step: String,
        after: Duration,
    },
    #[error("{server} closed the connection ({step})")]
    Closed { server: String, step: String },
    #[error("{server} broke the SMTP protocol ({step}): {detail}")]
    Protocol {
        server: String,
        step: String,
        detail: String,
    },
    #[error("{server} refused the session: {reply}")]
    Greeting { server: String, reply: Reply },
    #[error("{server} does not offer STARTTLS, and tls = \"required\" forbids going on without it")]
    StartTlsMissing { server: String },
    #[error("{server} refused STARTTLS: {reply}")]
    StartTlsRefused { server: String, reply: Reply },
    #[error("TLS with {server} failed: {detail}")]
    Tls { server: String, detail: String },
    #[error(transparent)]
    TlsSetup(#[from] TlsSetupError),
    #[error("{server} offers no authentication method Postern supports (it offers: {offered})")]
    AuthUnavailable { server: String, offered: String },
    #[error("{server} refused the login: {reply}")]
    AuthRefused { server: String, reply: Reply },
    #[error("refusing to send the password to {server} without TLS")]
    PlaintextAuth { server: String },
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error("{server}: {detail} ({step})")]
    Io {
        server: String,
        step: String,
        detail: String,
    },
}

/// The EHLO keywords of a server, upper-cased, with their parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capabilities {
    /// The EHLO greeting line (the server's name and text).
    pub greeting: String,
    pub keywords: Vec<(String, Vec<String>)>,
    /// False when the server only understood HELO.
    pub extended: bool,
}

impl Capabilities {
    fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut lines = reply.lines.iter();
        let greeting = lines.next().cloned().unwrap_or_default();
        let keywords = lines
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let keyword = words.next()?.to_ascii_uppercase();
                Some((keyword, words.map(str::to_string).collect()))
            })
            .collect();
        Capabilities {
            greeting,
            keywords,
            extended: true,
        }
    }

    pub fn has(&self, keyword: &str) -> bool {
        self.keywords
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(keyword))
    }

    pub fn params(&self, keyword: &str) -> Option<&[String]> {
        self.keywords
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(keyword))
            .map(|(_, p)| p.as_slice())
    }

    /// SASL mechanisms from `AUTH` (and the pre-RFC `AUTH=` form), upper-cased.
    pub fn auth_mechanisms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (k, params) in &self.keywords {
            let extra = k.strip_prefix("AUTH=").map(|m| vec![m.to_string()]);
            let mechs = if k == "AUTH" {
                params.clone()
            } else {
                extra.unwrap_or_default()
            };
            for m in mechs {
                let m = m.to_ascii_uppercase();
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
        out
    }

    /// The `SIZE` limit, when announced with a value.
    pub fn size(&self) -> Option<u64> {
        self.params("SIZE")?.first()?.parse().ok()
    }
}

/// An SMTP client session.
#[derive(Debug)]
pub struct SmtpClient {
    conn: Conn,
    /// Bytes read from the server but not yet consumed.
    buf: Vec<u8>,
    opts: ClientOptions,
    greeting: Reply,
    capabilities: Capabilities,
    tls: Option<TlsInfo>,
    connect_time: Duration,
}

impl SmtpClient {
    /// Connects and reads the 220 greeting.
    pub async fn connect(opts: &ClientOptions) -> Result<SmtpClient, ClientError> {
        let server = opts.server();
        let started = Instant::now();
        let connecting = async {
            match opts.connect_addr {
                Some(ip) => TcpStream::connect((ip, opts.port)).await,
                None => TcpStream::connect((opts.host.as_str(), opts.port)).await,
            }
        };
        let tcp = tokio::time::timeout(opts.timeout, connecting)
            .await
            .map_err(|_| ClientError::Timeout {
                server: server.clone(),
                step: "connecting".into(),
                after: opts.timeout,
            })?
            .map_err(|e| ClientError::Connect {
                server: server.clone(),
                detail: connect_detail(&e),
            })?;
        let _ = tcp.set_nodelay(true);
        SmtpClient::greet(Conn::Plain(tcp), opts, started).await
    }

    /// Runs a client over `stream` (already connected): reads the 220 greeting like
    /// [`connect`](Self::connect).
    pub async fn over_stream(
        stream: impl Stream,
        opts: &ClientOptions,
    ) -> Result<SmtpClient, ClientError> {
        SmtpClient::greet(Conn::Other(Box::new(stream)), opts, Instant::now()).await
    }

    async fn greet(
        conn: Conn,
        opts: &ClientOptions,
        started: Instant,
    ) -> Result<SmtpClient, ClientError> {
        let server = opts.server();
        let mut client = SmtpClient {
            conn,
            buf: Vec::with_capacity(1024),
            opts: opts.clone(),
            greeting: Reply {
                code: 0,
                lines: Vec::new(),
            },
            capabilities: Capabilities::default(),
            tls: None,
            connect_time: Duration::ZERO,
        };
        let greeting = client.read_reply("waiting for the greeting").await?;
        client.connect_time = started.elapsed();
        if greeting.code != 220 {
            let reply = greeting.clone();
            let _ = client.send_line("QUIT", "QUIT").await;
            return Err(ClientError::Greeting { server, reply });
        }
        client.greeting = greeting;
        Ok(client)
    }

    /// EHLO, falling back to HELO when the server does not know EHLO (5xx).
    pub async fn hello(&mut self) -> Result<&Capabilities, ClientError> {
        let ehlo = format!("EHLO {}", self.opts.helo_name);
        let reply = self.command(&ehlo).await?;
        if reply.code == 250 {
            self.capabilities = Capabilities::from_ehlo(&reply);
            return Ok(&self.capabilities);
        }
        if (500..600).contains(&reply.code) {
            let helo = format!("HELO {}", self.opts.helo_name);
            let reply = self.command(&helo).await?;
            if reply.code == 250 {
                self.capabilities = Capabilities {
                    greeting: reply.lines.first().cloned().unwrap_or_default(),
                    keywords: Vec::new(),
                    extended: false,
                };
                return Ok(&self.capabilities);
            }
            return Err(ClientError::Greeting {
                server: self.opts.server(),
                reply,
            });
        }
        Err(ClientError::Greeting {
            server: self.opts.server(),
            reply,
        })
    }

    /// STARTTLS, the handshake with certificate verification, then EHLO again (RFC 3207: the
    /// capabilities learnt before TLS are forgotten).
    pub async fn start_tls(&mut self) -> Result<&Capabilities, ClientError> {
        let server = self.opts.server();
        let reply = self.command("STARTTLS").await?;
        if reply.code != 220 {
            return Err(ClientError::StartTlsRefused { server, reply });
        }
        // Anything the server sent after its 220 would be read as if it came through TLS
        // (the STARTTLS command-injection attack): refuse the session instead.
        if !self.buf.is_empty() {
            return Err(ClientError::Protocol {
                server,
                step: "STARTTLS".into(),
                detail: "the server sent data before the TLS handshake".into(),
            });
        }
        let Conn::Plain(tcp) = std::mem::replace(&mut self.conn, Conn::Gone) else {
            return Err(ClientError::Protocol {
                server,
                step: "STARTTLS".into(),
                detail: "TLS is already active".into(),
            });
        };
        let seen = crate::tls::SeenCertificate::default();
        let config = crate::tls::client_config(&self.opts.trust, &seen)?;
        let name = rustls_pki_types::ServerName::try_from(self.opts.host.clone()).map_err(|e| {
            ClientError::Tls {
                server: server.clone(),
                detail: format!("\"{}\" is not a valid TLS server name: {e}", self.opts.host),
            }
        })?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&config));
        let tls = tokio::time::timeout(self.opts.timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| ClientError::Timeout {
                server: server.clone(),
                step: "TLS handshake".into(),
                after: self.opts.timeout,
            })?
            .map_err(|e| ClientError::Tls {
                server: server.clone(),
                detail: tls_detail(&e, seen.get()),
            })?;
        let (_, session) = tls.get_ref();
        self.tls = Some(TlsInfo {
            version: session
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            cipher: session
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()))
                .unwrap_or_default(),
            peer_certificate: session
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| crate::tls::fingerprint_of(c.as_ref())),
        });
        self.conn = Conn::Tls(Box::new(tls));
        self.capabilities = Capabilities::default();
        self.hello().await
    }

    /// AUTH with the strongest mechanism both sides support (SCRAM-SHA-256, CRAM-MD5, then —
    /// only when `cleartext_ok` — PLAIN and LOGIN). Returns the mechanism used.
    pub async fn authenticate(
        &mut self,
        username: &str,
        password: &str,
        cleartext_ok: bool,
    ) -> Result<Mechanism, ClientError> {
        let server = self.opts.server();
        let offered = self.capabilities.auth_mechanisms();
        let Some(mechanism) = sasl::choose(&offered, cleartext_ok) else {
            return Err(ClientError::AuthUnavailable {
                server,
                offered: if offered.is_empty() {
                    "nothing".into()
                } else {
                    offered.join(" ")
                },
            });
        };
        let refused = |reply: Reply| ClientError::AuthRefused {
            server: server.clone(),
            reply,
        };
        let sasl_failed = |e: sasl::SaslError| ClientError::Protocol {
            server: server.clone(),
            step: format!("AUTH {}", mechanism.name()),
            detail: e.to_string(),
        };
        let step = format!("AUTH {}", mechanism.name());
        let reply = match mechanism {
            Mechanism::Plain => {
                let token = sasl::plain_initial(username, password);
                self.command_secret(&format!("AUTH PLAIN {token}"), &step)
                    .await?
            }
            Mechanism::Login => {
                let reply = self.command("AUTH LOGIN").await?;
                if reply.code != 334 {
                    return Err(refused(reply));
                }
                let reply = self
                    .command_secret(&sasl::encode(username.as_bytes()), &step)
                    .await?;
                if reply.code != 334 {
                    return Err(refused(reply));
                }
                self.command_secret(&sasl::encode(password.as_bytes()), &step)
                    .await?
            }
            Mechanism::CramMd5 => {
                let reply = self.command("AUTH CRAM-MD5").await?;
                if reply.code != 334 {
                    return Err(refused(reply));
                }
                let response = sasl::cram_md5_response(username, password, &reply.text())
                    .map_err(sasl_failed)?;
                self.command_secret(&response, &step).await?
            }
            Mechanism::ScramSha256 => {
                let mut scram = sasl::Scram::new(username, password).map_err(&sasl_failed)?;
                let first = format!("AUTH SCRAM-SHA-256 {}", scram.client_first());
                let reply = self.command_secret(&first, &step).await?;
                if reply.code != 334 {
                    return Err(refused(reply));
                }
                // PBKDF2 with the server's iteration count (up to a million rounds) is CPU
                // work: it runs on the blocking pool, not on a worker of the async runtime.
                let server_first = reply.text();
                let (back, last) = tokio::task::spawn_blocking(move || {
                    let last = scram.client_final(&server_first);
                    (scram, last)
                })
                .await
                .map_err(|e| sasl_failed(sasl::SaslError::BadScram(e.to_string())))?;
                scram = back;
                let last = last.map_err(&sasl_failed)?;
                let reply = self.command_secret(&last, &step).await?;
                if reply.code != 334 {
                    // A 235 without the server's proof would let an impostor accept any login.
                    return Err(if reply.code == 235 {
                        sasl_failed(sasl::SaslError::ServerSignature)
                    } else {
                        refused(reply)
                    });
                }
                scram
                    .verify_server_final(&reply.text())
                    .map_err(&sasl_failed)?;
                self.command_secret("", &step).await?
            }
        };
        match reply.code {
            235 => Ok(mechanism),
            _ => Err(refused(reply)),
        }
    }

    /// Sends one command line and reads the reply.
    pub async fn command(&mut self, line: &str) -> Result<Reply, ClientError> {
        let step = line.split_whitespace().next().unwrap_or(line).to_string();
        self.send_line(line, &step).await?;
        self.read_reply(&step).await
    }

    /// Like [`command`](Self::command), but `step` stands for the line in errors and logs: the
    /// line itself (a password, a SASL response) never appears there.
    async fn command_secret(&mut self, line: &str, step: &str) -> Result<Reply, ClientError> {
        self.send_line(line, step).await?;
        self.read_reply(step).await
    }

    /// Writes `bytes` as they are (message data), within the timeout.
    pub async fn send_raw(&mut self, bytes: &[u8], step: &str) -> Result<(), ClientError> {
        let server = self.opts.server();
        let write = async {
            self.conn.write_all(bytes).await?;
            self.conn.flush().await
        };
        tokio::time::timeout(self.opts.timeout, write)
            .await
            .map_err(|_| ClientError::Timeout {
                server: server.clone(),
                step: step.to_string(),
                after: self.opts.timeout,
            })?
            .map_err(|e| ClientError::Io {
                server,
                step: step.to_string(),
                detail: e.to_string(),
            })
    }

    /// QUIT, politely; errors do not matter any more.
    pub async fn quit(mut self) {
        let _ = self.command("QUIT").await;
        let _ = tokio::time::timeout(self.opts.timeout, self.conn.shutdown()).await;
    }

    pub fn greeting(&self) -> &Reply {
        &self.greeting
    }
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }
    /// The server's address, when the socket can tell.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        match &self.conn {
            Conn::Plain(s) => s.peer_addr().ok(),
            Conn::Tls(s) => s.get_ref().0.peer_addr().ok(),
            Conn::Other(_) | Conn::Gone => None,
        }
    }

    /// Time from the TCP connect to the greeting.
    pub fn connect_time(&self) -> Duration {
        self.connect_time
    }

    /// The connection and the bytes already read from it, for a role reversal (ATRN/TURN).
    pub fn into_parts(self) -> (Conn, Vec<u8>) {
        (self.conn, self.buf)
    }

    /// Sends one line; `step` names it in errors (never the line: it may be a secret).
    async fn send_line(&mut self, line: &str, step: &str) -> Result<(), ClientError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.send_raw(&bytes, &format!("sending {step}")).await
    }

    /// Reads one (possibly multi-line) reply; the whole reply must arrive within the timeout.
    pub async fn read_reply(&mut self, step: &str) -> Result<Reply, ClientError> {
        let deadline = tokio::time::Instant::now() + self.opts.timeout;
        let mut lines = Vec::new();
        let mut code = None;
        loop {
            let line = self.read_line(step, deadline).await?;
            let protocol = |detail: String| ClientError::Protocol {
                server: self.opts.server(),
                step: step.to_string(),
                detail,
            };
            let head = line.get(..3).unwrap_or("");
            let this_code: u16 = match head.parse() {
                Ok(c) if (200..600).contains(&c) && head.bytes().all(|b| b.is_ascii_digit()) => c,
                _ => {
                    return Err(protocol(format!(
                        "\"{}\" is not an SMTP reply",
                        printable(&line)
                    )));
                }
            };
            if *code.get_or_insert(this_code) != this_code {
                return Err(protocol(
                    "the lines of one reply carry different codes".into(),
                ));
            }
            let sep = line.as_bytes().get(3).copied();
            let text = line.get(4..).unwrap_or("").to_string();
            lines.push(text);
            if lines.len() > MAX_REPLY_LINES {
                return Err(protocol(format!(
                    "a reply of more than {MAX_REPLY_LINES} lines"
                )));
            }
            match sep {
                Some(b'-') => continue,
                Some(b' ') | None => {
                    return Ok(Reply {
                        code: this_code,
                        lines,
                    });
                }
                Some(_) => {
                    return Err(protocol(format!(
                        "\"{}\" is not an SMTP reply",
                        printable(&line)
                    )));
                }
            }
        }
    }

    async fn read_line(
        &mut self,
        step: &str,
        deadline: tokio::time::Instant,
    ) -> Result<String, ClientError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buf.len() > MAX_REPLY_LINE {
                return Err(ClientError::Protocol {
                    server: self.opts.server(),
                    step: step.to_string(),
                    detail: format!("a reply line longer than {MAX_REPLY_LINE} bytes"),
                });
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.conn.read(&mut chunk))
                .await
                .map_err(|_| ClientError::Timeout {
                    server: self.opts.server(),
                    step: step.to_string(),
                    after: self.opts.timeout,
                })?
                .map_err(|e| ClientError::Io {
                    server: self.opts.server(),
                    step: step.to_string(),
                    detail: e.to_string(),
                })?;
            if n == 0 {
                return Err(ClientError::Closed {
                    server: self.opts.server(),
                    step: step.to_string(),
                });
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn printable(s: &str) -> String {
    s.chars()
        .take(80)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn connect_detail(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            "connection refused (nothing listens on that port)".into()
        }
        std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
            format!("no route to the server ({e})")
        }
        _ => e.to_string(),
    }
}

fn tls_detail(e: &std::io::Error, seen: Option<Fingerprint>) -> String {
    let inner = e
        .get_ref()
        .map(|i| i.to_string())
        .unwrap_or_else(|| e.to_string());
    let Some(fingerprint) = seen.filter(|_| inner.contains("certificate")) else {
        return inner;
    };
    format!(
        "the server's certificate is not trusted ({inner}). Its SHA-256 fingerprint is \
         {fingerprint}: if you have checked with your ISP that this is their certificate, pin it \
         with the line tls_fingerprint = \"{fingerprint}\" in this [[queue_servers]] entry, or put \
         their CA (or this very certificate) in tls_ca"
    )
}
