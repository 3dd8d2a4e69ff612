//! One inbound SMTP session (RFC 5321 server side), generic over its byte stream.
//!
//! The listener hands it a fresh TCP connection; the ATRN/TURN turnaround hands it the dequeue
//! connection (TLS kept) together with any bytes already read from it. The session reads into
//! its own buffer and answers every complete command in it before it writes, so pipelined
//! commands (RFC 2920) get their replies in one batch.
//!
//! Contract: a 250 after DATA is written only after [`crate::deliver::Writer::commit`] returned, i.e. after the
//! message is fsynced in the Maildir or accepted by the office server. The message's bytes go
//! through [`DataReader`]: the end of data is `<CR><LF>.<CR><LF>` only, and no bare CR or LF
//! reaches the delivery target.
//!
//! Every wait has a deadline: each command line must arrive whole within `idle_timeout`, each
//! read inside DATA too, and the whole session ends at `session_timeout`.

use std::borrow::Cow;
use std::time::Duration;

use smtp_proto::Request;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::channel::Channel;
use super::context::SessionContext;
pub use super::outcome::{
    SessionEnd, SessionInfo, SessionSummary, refuse_busy, refuse_client_busy,
};
use super::syntax::{has_source_route, is_bare_postmaster, new_id, parse_error_reply, trace_field};
use crate::deliver::{DeliverError, Envelope, Transaction};
use crate::events::{Arrival, Event};
use crate::smtp::data::DataReader;

/// RFC 5321 §4.5.3.1.4: a command line is at most 512 octets; we allow some slack for long
/// parameters and refuse anything longer.
pub const MAX_COMMAND_LINE: usize = 2048;
const READ_CHUNK: usize = 64 * 1024;

/// Runs a whole session on `stream`; `initial` holds bytes already read from it.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    initial: Vec<u8>,
    info: SessionInfo,
    ctx: &SessionContext,
    shutdown: watch::Receiver<bool>,
) -> SessionSummary {
    let peer = info
        .peer
        .map(|p| p.to_string())
        .unwrap_or_else(|| "unknown".into());
    ctx.report(info.via, Arrival::SessionStarted);
    let _ = ctx.events.send(Event::InboundSessionStarted {
        peer: peer.clone(),
        via: info.via.into(),
    });
    let deadline = ctx.settings.session_timeout.map(|t| Instant::now() + t);
    let mut session = Session {
        stream: Channel::Plain(stream),
        input: initial,
        pos: 0,
        out: Vec::with_capacity(1024),
        ctx,
        info,
        peer_label: peer.clone(),
        shutdown,
        deadline,
        helo: None,
        esmtp: false,
        mail_from: None,
        rcpts: Vec::new(),
        held_for: None,
        transaction: None,
        errors: 0,
        junk: 0,
        accepted: 0,
        refused: 0,
    };
    let end = session.run().await;
    let summary = SessionSummary {
        accepted: session.accepted,
        refused: session.refused,
        end,
    };
    tracing::info!(peer = %peer, via = session.info.via, messages = summary.accepted, "session ended: {}", end.describe());
    ctx.report(session.info.via, Arrival::SessionEnded);
    let _ = ctx.events.send(Event::InboundSessionEnded {
        peer,
        via: session.info.via.into(),
        messages: summary.accepted,
        end: end.describe().into(),
    });
    summary
}

struct Session<'a, S> {
    stream: Channel<S>,
    /// Bytes read; `input[pos..]` is not yet consumed.
    input: Vec<u8>,
    pos: usize,
    /// Replies not yet written.
    out: Vec<u8>,
    ctx: &'a SessionContext,
    info: SessionInfo,
    peer_label: String,
    shutdown: watch::Receiver<bool>,
    deadline: Option<Instant>,
    helo: Option<String>,
    esmtp: bool,
    mail_from: Option<String>,
    rcpts: Vec<String>,
    /// The neighbour's domain this transaction's mail is held for (backup MX), once the
    /// first recipient decided it; `Some(None)`: the office's own mail.
    held_for: Option<Option<String>>,
    /// Open on the delivery target from the first recipient on (the office server is asked
    /// about each recipient at RCPT time).
    transaction: Option<Transaction>,
    errors: u32,
    /// NOOP/RSET/VRFY/EXPN/HELP since the last message accepted.
    junk: u32,
    accepted: u32,
    refused: u32,
}

/// Why reading stopped.
enum ReadStop {
    Closed,
    Idle,
    SessionTime,
    Shutdown,
    Io,
    Tls,
    Junk,
}

impl From<ReadStop> for SessionEnd {
    fn from(r: ReadStop) -> SessionEnd {
        match r {
            ReadStop::Closed => SessionEnd::Closed,
            ReadStop::Idle => SessionEnd::IdleTimeout,
            ReadStop::SessionTime => SessionEnd::SessionTimeout,
            ReadStop::Shutdown => SessionEnd::Shutdown,
            ReadStop::Io => SessionEnd::IoError,
            ReadStop::Tls => SessionEnd::TlsFailed,
            ReadStop::Junk => SessionEnd::TooManyJunkCommands,
        }
    }
}

enum Line {
    Complete(Vec<u8>),
    TooLong,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<'_, S> {
    async fn run(&mut self) -> SessionEnd {
        let hostname = self.ctx.settings.hostname.clone();
        self.reply(220, &format!("{hostname} ESMTP Postern"));
        loop {
            let line = match self.next_line().await {
                Ok(line) => line,
                Err(stop) => {
                    let end = SessionEnd::from(stop);
                    match end {
                        SessionEnd::Shutdown => {
                            self.reply(421, "4.3.2 Service shutting down, try again later");
                        }
                        SessionEnd::IdleTimeout | SessionEnd::SessionTimeout => {
                            self.reply(421, "4.4.2 Timeout, closing the connection");
                        }
                        _ => {}
                    }
                    let _ = self.flush().await;
                    return end;
                }
            };
            let line = match line {
                Line::Complete(line) => line,
                Line::TooLong => {
                    self.reply(500, "5.5.2 Line too long");
                    if self.count_error() {
                        return self.close_after_errors().await;
                    }
                    continue;
                }
            };
            match self.command(&line).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Quit) => {
                    let _ = self.flush().await;
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), self.stream.shutdown()).await;
                    return SessionEnd::Quit;
                }
                Ok(Flow::Error) => {
                    if self.count_error() {
                        return self.close_after_errors().await;
                    }
                }
                Err(stop) => {
                    let _ = self.flush().await;
                    self.reset().await;
                    return stop.into();
                }
            }
        }
    }

    fn count_error(&mut self) -> bool {
        self.errors += 1;
        self.errors >= self.ctx.settings.max_errors
    }

    async fn close_after_errors(&mut self) -> SessionEnd {
        self.reply(421, "4.7.0 Too many errors, closing the connection");
        let _ = self.flush().await;
        SessionEnd::TooManyErrors
    }

    async fn command(&mut self, line: &[u8]) -> Result<Flow, ReadStop> {
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r,
            Err(e) => {
                let (code, text) = parse_error_reply(&e);
                self.reply(code, &text);
                return Ok(Flow::Error);
            }
        };
        if matches!(
            request,
            Request::Noop { .. }
                | Request::Rset
                | Request::Vrfy { .. }
                | Request::Expn { .. }
                | Request::Help { .. }
        ) {
            // Postfix's smtpd_junk_command_limit: a client that only keeps the line open
            // holds a connection slot that the queuing server may need.
            self.junk += 1;
            if self.junk > self.ctx.settings.max_junk_commands {
                self.reply(
                    421,
                    "4.7.0 Too many NOOP/RSET/VRFY/EXPN/HELP commands, closing the connection",
                );
                return Err(ReadStop::Junk);
            }
        }
        let flow = match request {
            Request::Ehlo { host } => self.hello(host, true).await,
            Request::Helo { host } => self.hello(host, false).await,
            Request::Lhlo { .. } => self.error(500, "5.5.1 LHLO is for LMTP, this is SMTP"),
            Request::Mail { from } => self.mail(line, from.address, from.size),
            Request::Rcpt { to } => self.rcpt(line, to.address).await,
            Request::Data => return self.data().await,
            Request::StartTls => return self.start_tls().await,
            Request::Rset => {
                self.reset().await;
                self.reply(250, "2.0.0 OK");
                Flow::Continue
            }
            Request::Noop { .. } => {
                self.reply(250, "2.0.0 OK");
                Flow::Continue
            }
            Request::Quit => {
                self.reply(221, "2.0.0 Bye");
                Flow::Quit
            }
            Request::Vrfy { .. } => {
                self.reply(
                    252,
                    "2.5.0 Cannot verify the user, but will accept mail for this office's domains",
                );
                Flow::Continue
            }
            Request::Help { .. } => {
                self.reply(
                    214,
                    "2.0.0 Postern accepts mail for this office's domains; see RFC 5321",
                );
                Flow::Continue
            }
            Request::Etrn { name } if self.etrn_offered() => self.etrn(&name),
            Request::Expn { .. }
            | Request::Auth { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Bdat { .. }
            | Request::Burl { .. } => {
                let name =
                    String::from_utf8_lossy(line.split(|b| *b == b' ').next().unwrap_or(b""))
                        .trim()
                        .to_ascii_uppercase();
                self.error(502, &format!("5.5.1 {name} is not implemented here"))
            }
        };
        Ok(flow)
    }

    fn error(&mut self, code: u16, text: &str) -> Flow {
        self.reply(code, text);
        Flow::Error
    }

    async fn hello(&mut self, host: Cow<'_, str>, extended: bool) -> Flow {
        self.reset().await;
        self.helo = Some(host.to_string());
        self.esmtp = extended;
        let name = &self.ctx.settings.hostname;
        if extended {
            let mut lines = vec![
                format!("{name} greets {}", trace_field(&host)),
                "PIPELINING".to_string(),
                "8BITMIME".to_string(),
                format!("SIZE {}", self.ctx.settings.max_message_size),
                "ENHANCEDSTATUSCODES".to_string(),
            ];
            if self.can_start_tls() {
                lines.push("STARTTLS".to_string());
            }
            if self.etrn_offered() {
                lines.push("ETRN".to_string());
            }
            self.reply_lines(250, &lines);
        } else {
            self.reply(250, &format!("{name} greets {}", trace_field(&host)));
        }
        Flow::Continue
    }

    fn mail(&mut self, line: &[u8], address: Cow<'_, str>, size: usize) -> Flow {
        if self.helo.is_none() {
            return self.error(503, "5.5.1 Say EHLO first");
        }
        if self.mail_from.is_some() {
            return self.error(503, "5.5.1 Nested MAIL command");
        }
        if has_source_route(line) {
            return self.error(
                553,
                "5.1.7 Source routes are not accepted; use the plain address",
            );
        }
        if size > 0 && size as u64 > self.ctx.settings.max_message_size {
            return self.error(
                552,
                &format!(
                    "5.3.4 Message size exceeds the limit of {} bytes",
                    self.ctx.settings.max_message_size
                ),
            );
        }
        self.mail_from = Some(address.into_owned());
        self.reply(250, "2.1.0 OK");
        Flow::Continue
    }

    async fn rcpt(&mut self, line: &[u8], address: Cow<'_, str>) -> Flow {
        let Some(mail_from) = self.mail_from.clone() else {
            return self.error(503, "5.5.1 Need MAIL before RCPT");
        };
        if has_source_route(line) {
            return self.error(550, "5.7.1 Source routes are not accepted; relaying denied");
        }
        if address.chars().any(|c| c.is_control()) {
            return self.error(501, "5.1.3 Control characters in the recipient address");
        }
        // RFC 5321 §4.5.1: "postmaster" without a domain must be accepted; it is the
        // postmaster of the office's first domain. (smtp-proto hands it over as an empty
        // address, like the invalid `<>`, so the line tells them apart.)
        let address: Cow<'_, str> = match self.ctx.settings.domains.first() {
            Some(first) if address.is_empty() && is_bare_postmaster(line) => {
                format!("postmaster@{first}").into()
            }
            _ => address,
        };
        let (local, domain) = match address.rsplit_once('@') {
            Some((l, d)) => (l, d.trim_end_matches('.').to_ascii_lowercase()),
            None => return self.error(550, "5.1.3 A recipient needs a domain; relaying denied"),
        };
        // `user%other@office` and `other!user@office` are the classic tricks to make a
        // backup MX relay onwards.
        if local.contains('%') || local.contains('!') || local.contains('@') {
            return self.error(
                550,
                "5.7.1 Relaying denied: %-hacks and bang paths are not accepted",
            );
        }
        if let Some(allowed) = &self.ctx.settings.relay_from {
            let client = self.info.peer.map(|p| p.ip().to_canonical());
            if !client.is_some_and(|ip| allowed.iter().any(|net| net.contains(&ip))) {
                return self.error(
                    550,
                    "5.7.1 Relaying denied: this client may not send through here",
                );
            }
        }
        let held = if self.ctx.settings.relay_from.is_some()
            || self.ctx.settings.domains.contains(&domain)
        {
            None
        } else if let Some(backup) = self
            .ctx
            .settings
            .backup
            .as_ref()
            .filter(|b| b.entry(&domain).is_some())
        {
            Some((backup.clone(), domain.clone()))
        } else {
            return self.error(
                550,
                &format!("5.7.1 Relaying denied: {domain} is not a domain of this office"),
            );
        };
        let bucket = held.as_ref().map(|(_, d)| d.clone());
        if self.held_for.as_ref().is_some_and(|b| *b != bucket) {
            // Held mail and the office's own (or two neighbours') never share a message: the
            // client sends the rest in a new transaction (RFC 5321 §4.5.3.1.10).
            self.reply(452, "4.5.3 Send mail for this domain in a separate message");
            return Flow::Continue;
        }
        if self.rcpts.len() >= self.ctx.settings.max_recipients {
            self.reply(452, "4.5.3 Too many recipients");
            return Flow::Continue;
        }
        self.held_for = Some(bucket);
        let transaction = self.transaction.get_or_insert_with(|| match &held {
            Some((backup, domain)) => backup.transaction(domain, &mail_from),
            None => self.ctx.delivery.transaction(&mail_from),
        });
        match transaction.rcpt(&address).await {
            Ok(()) => {
                self.rcpts.push(address.into_owned());
                self.reply(250, "2.1.5 OK");
                Flow::Continue
            }
            // The office server's own answer for this recipient, as it gave it.
            Err(refused) => {
                self.reply_lines(refused.code, &refused.lines);
                if refused.code >= 500 {
                    Flow::Error
                } else {
                    Flow::Continue
                }
            }
        }
    }

    /// ETRN is offered when this office is the backup MX of a domain that may use it.
    fn etrn_offered(&self) -> bool {
        self.ctx.settings.backup.as_ref().is_some_and(|b| {
            b.entries
                .iter()
                .any(|e| e.allows(crate::config::Release::Etrn))
        })
    }

    /// RFC 1985, answered by [`crate::backup::etrn`].
    fn etrn(&mut self, arg: &str) -> Flow {
        if self.helo.is_none() {
            return self.error(503, "5.5.1 Say EHLO first");
        }
        if self.mail_from.is_some() {
            return self.error(503, "5.5.1 ETRN is not allowed inside a mail transaction");
        }
        let Some(backup) = self.ctx.settings.backup.clone() else {
            return self.error(502, "5.5.1 ETRN is not implemented here");
        };
        let client = self.info.peer.map(|p| p.ip().to_canonical());
        let (code, text) = crate::backup::etrn::answer(&backup, arg, client);
        tracing::info!(peer = %self.peer_label, "ETRN {arg}: {code} {text}");
        self.reply(code, &text);
        if code >= 500 {
            Flow::Error
        } else {
            Flow::Continue
        }
    }

    fn can_start_tls(&self) -> bool {
        self.ctx.tls.is_some() && !self.info.tls
    }

    /// RFC 3207. Whatever the client sent after the command, before the handshake, is thrown
    /// away unanswered: it was not protected by TLS (the CVE-2011-0411 injection).
    async fn start_tls(&mut self) -> Result<Flow, ReadStop> {
        let Some(server) = self.ctx.tls.clone().filter(|_| self.can_start_tls()) else {
            return Ok(if self.info.tls {
                self.error(503, "5.5.1 TLS is already active")
            } else {
                self.error(502, "5.5.1 STARTTLS is not offered here")
            });
        };
        let injected = self.input.len() - self.pos;
        if injected > 0 {
            tracing::warn!(peer = %self.peer_label, bytes = injected, "discarded plaintext sent after STARTTLS");
        }
        self.input.clear();
        self.pos = 0;
        self.reply(220, "2.0.0 Ready to start TLS");
        self.flush().await?;
        let Channel::Plain(plain) = std::mem::replace(&mut self.stream, Channel::Gone) else {
            return Err(ReadStop::Io);
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let handshake =
            tokio::time::timeout(self.ctx.settings.idle_timeout, acceptor.accept(plain));
        match handshake.await {
            Ok(Ok(tls)) => self.stream = Channel::Tls(Box::new(tls)),
            Ok(Err(e)) => {
                tracing::info!(peer = %self.peer_label, "TLS handshake failed: {e}");
                return Err(ReadStop::Tls);
            }
            Err(_) => return Err(ReadStop::Tls),
        }
        self.info.tls = true;
        self.helo = None;
        self.esmtp = false;
        self.reset().await;
        Ok(Flow::Continue)
    }

    async fn data(&mut self) -> Result<Flow, ReadStop> {
        if self.mail_from.is_none() {
            return Ok(self.error(503, "5.5.1 Need MAIL before DATA"));
        }
        let (false, Some(transaction)) = (self.rcpts.is_empty(), self.transaction.take()) else {
            return Ok(self.error(554, "5.5.1 No valid recipients"));
        };
        let envelope = Envelope {
            mail_from: self.mail_from.clone().unwrap_or_default(),
            rcpt_to: self.rcpts.clone(),
            peer: self.info.peer,
        };
        let id = new_id();
        let mut failure: Option<DeliverError> = None;
        let mut writer = match transaction.data().await {
            Ok(mut w) => match w.write(self.received_header(&id).as_bytes()).await {
                Ok(()) => Some(w),
                Err(e) => {
                    w.abort().await;
                    failure = Some(e);
                    None
                }
            },
            Err(e) => {
                failure = Some(e);
                None
            }
        };
        self.reply(354, "End data with <CR><LF>.<CR><LF>");
        if let Err(stop) = self.flush().await {
            if let Some(w) = writer {
                w.abort().await;
            }
            return Err(stop);
        }

        let max = self.ctx.settings.max_message_size;
        let mut reader = DataReader::new();
        let mut chunk = Vec::with_capacity(READ_CHUNK + READ_CHUNK / 4);
        let mut size: u64 = 0;
        let mut too_big = false;
        loop {
            let used = reader.feed(&self.input[self.pos..], &mut chunk);
            self.pos += used;
            size += chunk.len() as u64;
            if size > max && !too_big {
                too_big = true;
                if let Some(w) = writer.take() {
                    w.abort().await;
                }
            }
            if let Some(w) = writer.as_mut()
                && let Err(e) = w.write(&chunk).await
            {
                failure = Some(e);
                if let Some(w) = writer.take() {
                    w.abort().await;
                }
            }
            chunk.clear();
            if reader.is_done() {
                break;
            }
            let deadline = Instant::now() + self.ctx.settings.idle_timeout;
            if let Err(stop) = self.fill(deadline, false).await {
                // The client is gone before the final dot: nothing was acknowledged, so the
                // partial message is thrown away and the sender still holds it.
                if let Some(w) = writer {
                    w.abort().await;
                }
                self.reset().await;
                return Err(stop);
            }
        }
        if reader.bare_line_ends() > 0 {
            tracing::info!(
                peer = %self.peer_label, %id, count = reader.bare_line_ends(),
                "bare CR or LF line ends made CRLF"
            );
        }

        let result = if too_big {
            Err((
                552,
                format!("5.3.4 Message exceeds the limit of {max} bytes"),
            ))
        } else if let Some(e) = failure {
            Err(e.reply())
        } else if let Some(w) = writer {
            w.commit().await.map_err(|e| e.reply())
        } else {
            Err((451, "4.3.0 Local error, try again later".into()))
        };
        match result {
            Ok(delivered) => {
                self.accepted += 1;
                self.junk = 0;
                tracing::info!(
                    peer = %self.peer_label, %id, size = delivered.size, rcpts = envelope.rcpt_to.len(),
                    "message stored: {}", delivered.location
                );
                self.ctx.report(self.info.via, Arrival::MessageReceived);
                let _ = self.ctx.events.send(Event::MessageReceived {
                    id: id.clone(),
                    from: envelope.mail_from.clone(),
                    to: envelope.rcpt_to.clone(),
                    size: delivered.size,
                    peer: self.peer_label.clone(),
                    via: self.info.via.into(),
                    location: delivered.location,
                });
                self.reply(250, &format!("2.0.0 OK id={id}"));
            }
            Err((code, text)) => {
                self.refused += 1;
                tracing::warn!(peer = %self.peer_label, %id, "message refused: {code} {text}");
                self.ctx.report(self.info.via, Arrival::MessageRefused);
                let _ = self.ctx.events.send(Event::MessageRefused {
                    peer: self.peer_label.clone(),
                    via: self.info.via.into(),
                    code,
                    reason: text.clone(),
                });
                self.reply(code, &text);
            }
        }
        self.reset().await;
        Ok(Flow::Continue)
    }

    fn received_header(&self, id: &str) -> String {
        let helo = trace_field(self.helo.as_deref().unwrap_or("unknown"));
        let addr = self
            .info
            .peer
            .map(|p| format!(" ([{}])", p.ip()))
            .unwrap_or_default();
        let with = match (self.esmtp, self.info.tls) {
            (true, true) => "ESMTPS",
            (true, false) => "ESMTP",
            (false, true) => "SMTPS",
            (false, false) => "SMTP",
        };
        let via = match self.info.via {
            "atrn" => " via ODMR",
            "turn" => " via TURN",
            _ => "",
        };
        let rcpt = match self.rcpts.as_slice() {
            [one] => format!("\r\n\tfor <{}>", trace_field(one)),
            _ => String::new(),
        };
        format!(
            "Received: from {helo}{addr}\r\n\tby {} (Postern) with {with}{via} id {id}{rcpt};\r\n\t{}\r\n",
            self.ctx.settings.hostname,
            chrono::Local::now().to_rfc2822()
        )
    }

    async fn reset(&mut self) {
        self.mail_from = None;
        self.rcpts.clear();
        self.held_for = None;
        if let Some(transaction) = self.transaction.take() {
            transaction.close().await;
        }
    }

    /// Every reply goes out as one clean line: texts may echo the client's words (a command
    /// name, a parameter) or the office server's, and no CR or LF of theirs is passed on.
    fn reply(&mut self, code: u16, text: &str) {
        self.reply_lines(code, &[text.to_string()]);
    }

    fn reply_lines(&mut self, code: u16, lines: &[String]) {
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            self.out
                .extend_from_slice(format!("{code}{sep}").as_bytes());
            let clean = line.chars().filter(|c| !c.is_control());
            self.out.extend(clean.collect::<String>().as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
    }

    async fn flush(&mut self) -> Result<(), ReadStop> {
        if self.out.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.ctx.settings.idle_timeout, write).await {
            Ok(Ok(())) => {
                self.out.clear();
                Ok(())
            }
            Ok(Err(_)) => Err(ReadStop::Io),
            Err(_) => Err(ReadStop::Idle),
        }
    }

    /// The next command line (with its LF). Replies pile up while complete lines are waiting
    /// (pipelining) and are written before the session blocks on a read.
    async fn next_line(&mut self) -> Result<Line, ReadStop> {
        let mut discarding = false;
        let mut deadline = None;
        loop {
            let pending = &self.input[self.pos..];
            if let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let line = pending[..=i].to_vec();
                self.pos += i + 1;
                if discarding || line.len() > MAX_COMMAND_LINE {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Complete(line));
            }
            if pending.len() > MAX_COMMAND_LINE {
                // Drop what we have of the over-long line and keep reading to its end.
                discarding = true;
                self.pos = self.input.len();
            }
            self.flush().await?;
            // The line must arrive whole in time, however slowly it drips in. The clock starts
            // once the replies are written (a slow reader is the flush's own timeout).
            let deadline =
                *deadline.get_or_insert_with(|| Instant::now() + self.ctx.settings.idle_timeout);
            self.fill(deadline, true).await?;
        }
    }

    /// Reads more input. `interruptible`: a shutdown request ends the wait (between commands
    /// only; a message in transfer is never cut off by us).
    async fn fill(&mut self, until: Instant, interruptible: bool) -> Result<(), ReadStop> {
        if self.pos > 0 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        let until = match self.deadline {
            Some(d) if d <= Instant::now() => return Err(ReadStop::SessionTime),
            Some(d) => until.min(d),
            None => until,
        };
        // Reads into spare capacity: zero-filling a 64 KiB buffer before every read was 69 % of
        // the CPU time of an inbound message (callgrind, BENCHMARKS.md).
        self.input.reserve(READ_CHUNK);
        let mut shutdown = self.shutdown.clone();
        let read = tokio::time::timeout_at(until, self.stream.read_buf(&mut self.input));
        let result = tokio::select! {
            r = read => r,
            _ = wait_for_shutdown(&mut shutdown), if interruptible => {
                return Err(ReadStop::Shutdown);
            }
        };
        // read_buf appends only what it read: nothing to undo on any outcome.
        match result {
            Ok(Ok(0)) => Err(ReadStop::Closed),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ReadStop::Io),
            Err(_) => match self.deadline {
                Some(d) if Instant::now() >= d => Err(ReadStop::SessionTime),
                _ => Err(ReadStop::Idle),
            },
        }
    }
}

enum Flow {
    Continue,
    Quit,
    /// The command was refused as an error (counts towards the error limit).
    Error,
}

async fn wait_for_shutdown(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow() {
            return;
        }
        if rx.changed().await.is_err() {
            // The sender is gone: nobody can ask for a shutdown any more.
            std::future::pending::<()>().await;
        }
    }
}
