//! One ODMR session (RFC 2645) on `[backup] odmr_listen`: EHLO, STARTTLS, AUTH (required), then
//! `ATRN d1,d2`: `250` and the roles swap on the same connection (TLS kept), Postern becoming
//! the SMTP client that delivers every message held for those domains; `453` nothing held,
//! `450` none of them is this login's, `451` a run for one is already going, `530` without
//! AUTH. A login releases only the domains whose `[[backup_for]] username` it is.
//!
//! Every wait is bounded: each command line within the idle timeout, the command phase as a
//! whole within the session limit; after the turnaround the client's own deadlines bound each
//! step and the whole delivery is bounded too. A message leaves the hold only after the
//! neighbour's 250 for it; a connection lost mid-way keeps the rest held.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::backup::odmr::sasl::{Exchange, Mechanism, Verdict};
use crate::backup::release;
use crate::backup::server::{BackupServer, RunGuard};
use crate::config::Release;
use crate::outbound::smarthost::Connection;
use crate::secrets::SecretStore;
use crate::smtp::client::{ClientOptions, SmtpClient};
use crate::smtp_server::channel::Channel;

const MAX_LINE: usize = 4096;

/// What every ODMR session is given.
pub struct OdmrContext {
    pub backup: Arc<BackupServer>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub secrets: Arc<dyn SecretStore>,
    /// Each command line, and each step towards the neighbour after the turnaround.
    pub idle_timeout: Duration,
    /// The command phase as a whole, and (separately) the delivery after the turnaround.
    pub session_limit: Duration,
}

/// Why a session stopped reading.
#[derive(Debug)]
enum Stop {
    Closed,
    Timeout,
    TooLong,
}

struct Session<'a> {
    io: Channel<TcpStream>,
    buf: Vec<u8>,
    ctx: &'a OdmrContext,
    peer: SocketAddr,
    tls: bool,
    helo: bool,
    user: Option<String>,
    deadline: Instant,
    errors: u32,
}

/// Runs one session; the connection is closed at the end.
pub async fn run(stream: TcpStream, peer: SocketAddr, ctx: &OdmrContext) {
    let mut s = Session {
        io: Channel::Plain(stream),
        buf: Vec::new(),
        ctx,
        peer,
        tls: false,
        helo: false,
        user: None,
        deadline: Instant::now() + ctx.session_limit,
        errors: 0,
    };
    let host = ctx.backup.hostname.clone();
    if s.send(&format!("220 {host} ESMTP Postern ODMR\r\n"))
        .await
        .is_err()
    {
        return;
    }
    match s.commands().await {
        Ok(Some(guards)) => return s.turnaround(guards).await,
        Ok(None) => {}
        Err(stop) => {
            tracing::info!(%peer, "ODMR session ended: {stop:?}");
            if matches!(stop, Stop::Timeout) {
                let _ = s
                    .send("421 4.4.2 Timeout, closing the connection\r\n")
                    .await;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), s.io.shutdown()).await;
}

impl Session<'_> {
    async fn send(&mut self, text: &str) -> Result<(), Stop> {
        let write = async {
            self.io.write_all(text.as_bytes()).await?;
            self.io.flush().await
        };
        match tokio::time::timeout(self.ctx.idle_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Closed),
            Err(_) => Err(Stop::Timeout),
        }
    }

    async fn reply(&mut self, code: u16, text: &str) -> Result<(), Stop> {
        self.send(&format!("{code} {text}\r\n")).await
    }

    /// The next line without CRLF, whole within the idle timeout and the session limit.
    async fn line(&mut self) -> Result<String, Stop> {
        let until = (Instant::now() + self.ctx.idle_timeout).min(self.deadline);
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.buf.drain(..=i).collect();
                let text = String::from_utf8_lossy(&raw);
                return Ok(text.trim_end_matches(['\r', '\n']).to_string());
            }
            if self.buf.len() > MAX_LINE {
                return Err(Stop::TooLong);
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(until, self.io.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Stop::Closed),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return Err(Stop::Timeout),
            }
        }
    }

    /// The command phase; `Some(guards)` after a `250` to ATRN.
    async fn commands(&mut self) -> Result<Option<Vec<RunGuard>>, Stop> {
        loop {
            let line = self.line().await?;
            let (verb, arg) = match line.split_once(' ') {
                Some((v, a)) => (v.to_ascii_uppercase(), a.trim().to_string()),
                None => (line.trim().to_ascii_uppercase(), String::new()),
            };
            match verb.as_str() {
                "EHLO" | "HELO" => self.hello(verb == "EHLO").await?,
                "STARTTLS" => self.start_tls().await?,
                "AUTH" => self.auth(&arg).await?,
                "ATRN" => {
                    if let Some(guards) = self.atrn(&arg).await? {
                        return Ok(Some(guards));
                    }
                }
                "NOOP" | "RSET" => self.reply(250, "2.0.0 OK").await?,
                "QUIT" => {
                    self.reply(221, "2.0.0 Bye").await?;
                    return Ok(None);
                }
                _ => {
                    self.errors += 1;
                    self.reply(
                        502,
                        "5.5.1 This is an ODMR server: EHLO, STARTTLS, AUTH, ATRN, QUIT",
                    )
                    .await?;
                    if self.errors >= 10 {
                        self.reply(421, "4.7.0 Too many errors, closing the connection")
                            .await?;
                        return Ok(None);
                    }
                }
            }
        }
    }

    async fn hello(&mut self, extended: bool) -> Result<(), Stop> {
        self.helo = true;
        let host = self.ctx.backup.hostname.clone();
        if !extended {
            return self.reply(250, &host).await;
        }
        let mut lines = vec![host, format!("AUTH {}", Mechanism::offered(self.tls))];
        if self.ctx.tls.is_some() && !self.tls {
            lines.push("STARTTLS".into());
        }
        lines.push("ATRN".into());
        lines.push("ENHANCEDSTATUSCODES".into());
        let mut text = String::new();
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            text.push_str(&format!("250{sep}{l}\r\n"));
        }
        self.send(&text).await
    }

    async fn start_tls(&mut self) -> Result<(), Stop> {
        let Some(server) = self.ctx.tls.clone().filter(|_| !self.tls) else {
            return self
                .reply(503, "5.5.1 TLS is not available or already active")
                .await;
        };
        // Anything pipelined after STARTTLS was not protected by TLS: dropped unanswered.
        self.buf.clear();
        self.reply(220, "2.0.0 Ready to start TLS").await?;
        let Channel::Plain(plain) = std::mem::replace(&mut self.io, Channel::Gone) else {
            return Err(Stop::Closed);
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        match tokio::time::timeout(self.ctx.idle_timeout, acceptor.accept(plain)).await {
            Ok(Ok(tls)) => self.io = Channel::Tls(Box::new(tls)),
            _ => return Err(Stop::Closed),
        }
        self.tls = true;
        self.helo = false;
        self.user = None;
        Ok(())
    }

    /// The passwords of the logins configured in `[[backup_for]]`.
    async fn passwords(&self) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for entry in &self.ctx.backup.entries {
            let (Some(user), Some(name)) = (&entry.username, entry.secret_name()) else {
                continue;
            };
            if out.contains_key(user) {
                continue;
            }
            match crate::secrets::get_password(self.ctx.secrets.clone(), name.clone()).await {
                Ok(p) => {
                    out.insert(user.clone(), p);
                }
                Err(e) => tracing::warn!("ODMR login {user}: {e}"),
            }
        }
        out
    }

    async fn auth(&mut self, arg: &str) -> Result<(), Stop> {
        if !self.helo {
            return self.reply(503, "5.5.1 Say EHLO first").await;
        }
        if self.user.is_some() {
            return self.reply(503, "5.5.1 Already authenticated").await;
        }
        let mut words = arg.split_whitespace();
        let Some(mechanism) = words.next().and_then(Mechanism::parse) else {
            return self
                .reply(
                    504,
                    &format!(
                        "5.5.4 Unknown mechanism; offered: {}",
                        Mechanism::offered(self.tls)
                    ),
                )
                .await;
        };
        if mechanism.needs_tls() && !self.tls {
            return self
                .reply(
                    538,
                    "5.7.11 Encryption required for this mechanism: STARTTLS first",
                )
                .await;
        }
        let passwords = self.passwords().await;
        let lookup = |u: &str| passwords.get(u).cloned();
        let mut exchange = Exchange::new(mechanism, &self.ctx.backup.hostname);
        let mut message = match words.next() {
            Some("=") => Some(Vec::new()),
            Some(initial) => match BASE64.decode(initial) {
                Ok(m) => Some(m),
                Err(_) => return self.reply(501, "5.5.2 Not valid base64").await,
            },
            None => None,
        };
        if message.is_none() && mechanism == Mechanism::CramMd5 {
            let Some(challenge) = exchange.opening() else {
                return self
                    .reply(454, "4.7.0 Temporary authentication failure")
                    .await;
            };
            message = Some(self.challenge(&challenge).await?);
        } else if message.is_none() {
            let opening = exchange.opening().unwrap_or_default();
            message = Some(self.challenge(&opening).await?);
        }
        let mut rounds = 0;
        let verdict = loop {
            rounds += 1;
            let m = message.take().unwrap_or_default();
            match exchange.step(&m, &lookup) {
                Ok(Some(next)) if rounds < 5 => message = Some(self.challenge(&next).await?),
                Ok(_) => break Verdict::Failure,
                Err(v) => break v,
            }
        };
        match verdict {
            Verdict::Success { user } => {
                tracing::info!(peer = %self.peer, %user, "ODMR login");
                self.user = Some(user);
                self.reply(235, "2.7.0 Authentication successful").await
            }
            Verdict::Failure => {
                tracing::warn!(peer = %self.peer, "ODMR login failed");
                self.errors += 1;
                self.reply(535, "5.7.8 Authentication credentials invalid")
                    .await
            }
        }
    }

    /// Sends `334 <challenge>` and returns the client's decoded answer (`*` cancels).
    async fn challenge(&mut self, challenge: &[u8]) -> Result<Vec<u8>, Stop> {
        self.send(&format!("334 {}\r\n", BASE64.encode(challenge)))
            .await?;
        let answer = self.line().await?;
        if answer.trim() == "*" {
            return Ok(b"\0cancelled\0".to_vec());
        }
        Ok(BASE64.decode(answer.trim()).unwrap_or_default())
    }

    async fn atrn(&mut self, arg: &str) -> Result<Option<Vec<RunGuard>>, Stop> {
        let Some(user) = self.user.clone() else {
            self.reply(530, "5.7.0 Authentication required").await?;
            return Ok(None);
        };
        let backup = &self.ctx.backup;
        let own: Vec<String> = backup
            .entries
            .iter()
            .filter(|e| e.allows(Release::Atrn) && e.username.as_deref() == Some(user.as_str()))
            .map(|e| e.domain.clone())
            .collect();
        let asked: Vec<String> = arg
            .split(',')
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        // Without arguments: every domain of this login (RFC 2645 §4.2).
        let wanted: Vec<String> = if asked.is_empty() {
            own.clone()
        } else {
            asked.iter().filter(|d| own.contains(d)).cloned().collect()
        };
        if wanted.is_empty() {
            tracing::warn!(peer = %self.peer, %user, "ATRN {arg}: none of these domains is this login's");
            self.reply(450, "4.7.1 None of these domains is released to this login")
                .await?;
            return Ok(None);
        }
        let mut guards = Vec::new();
        for d in &wanted {
            match backup.try_start(d) {
                Some(g) => guards.push(g),
                None => {
                    self.reply(
                        451,
                        &format!("4.4.0 <{d}>: a delivery run is already going, try again later"),
                    )
                    .await?;
                    return Ok(None);
                }
            }
        }
        let mut held = 0;
        let by = format!("ATRN by {user}");
        for d in &wanted {
            backup.note_fetch(d, &by);
            let here = backup.held(d).map_or(0, |h| h.len());
            let _ = backup.events.send(crate::events::Event::BackupAsked {
                domain: d.clone(),
                by: by.clone(),
                held: here as u32,
            });
            held += here;
        }
        if held == 0 {
            self.reply(453, "4.7.0 No mail available for you").await?;
            return Ok(None);
        }
        self.reply(
            250,
            &format!("2.0.0 OK, {held} messages; now reversing the connection"),
        )
        .await?;
        Ok(Some(guards))
    }

    /// After the 250: this side is the SMTP client now, on the same connection.
    async fn turnaround(self, guards: Vec<RunGuard>) {
        let Session {
            io, buf, ctx, peer, ..
        } = self;
        if !buf.is_empty() {
            tracing::warn!(%peer, "ODMR: bytes before the turnaround greeting were dropped");
        }
        let backup = ctx.backup.clone();
        let label = format!("{} (ATRN)", peer.ip());
        let opts = ClientOptions {
            host: peer.ip().to_string(),
            port: peer.port(),
            timeout: ctx.idle_timeout,
            helo_name: backup.hostname.clone(),
            trust: crate::tls::TrustPolicy::default(),
            connect_addr: None,
        };
        let deliver = async {
            let mut client = match SmtpClient::over_stream(io, &opts).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(%peer, "ODMR turnaround: {e}");
                    return;
                }
            };
            if let Err(e) = client.hello().await {
                tracing::warn!(%peer, "ODMR turnaround: {e}");
                return;
            }
            let mut conn = Connection::over(client, label.clone());
            for guard in &guards {
                release::run_over(
                    &backup,
                    guard,
                    format!("ATRN from {}", peer.ip()),
                    &mut conn,
                )
                .await;
            }
            conn.quit().await;
        };
        if tokio::time::timeout(ctx.session_limit, deliver)
            .await
            .is_err()
        {
            tracing::warn!(%peer, "ODMR turnaround took longer than the session limit; the rest stays held");
        }
        drop(guards);
    }
}
