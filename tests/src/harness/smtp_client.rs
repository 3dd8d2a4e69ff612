//! A small synchronous SMTP client for tests: `send` submits a message, `Transcript` talks to a
//! server line by line and keeps the whole conversation for assertion messages.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::error::{HarnessError, IoContext, Result};
use super::messages::TestMessage;
pub use super::reply::Reply;

/// Default time allowed for connecting and for each read/write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A line-by-line SMTP conversation. Every command and reply is recorded; errors carry the
/// transcript so far.
pub struct Transcript {
    reader: BufReader<Box<dyn Stream>>,
    tcp: TcpStream,
    greeting: Reply,
    log: Vec<String>,
}

impl Transcript {
    /// Connects (30 s timeouts) and reads the greeting.
    pub fn connect(addr: SocketAddr) -> Result<Self> {
        Self::connect_timeout(addr, IO_TIMEOUT)
    }

    /// Connects with `timeout` for the connect and for every later read and write, and reads the
    /// greeting.
    pub fn connect_timeout(addr: SocketAddr, timeout: Duration) -> Result<Self> {
        let tcp =
            TcpStream::connect_timeout(&addr, timeout).context(|| format!("connect to {addr}"))?;
        Self::over(tcp, timeout)
    }

    /// Connects from the local address `source` (e.g. 127.0.0.2, port 0 = any), so that a
    /// server sees another client address, and reads the greeting.
    pub fn connect_from(source: SocketAddr, addr: SocketAddr, timeout: Duration) -> Result<Self> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
            .context(|| "create socket".into())?;
        socket
            .bind(&source.into())
            .context(|| format!("bind {source}"))?;
        socket
            .connect_timeout(&addr.into(), timeout)
            .context(|| format!("connect to {addr} from {source}"))?;
        Self::over(socket.into(), timeout)
    }

    fn over(tcp: TcpStream, timeout: Duration) -> Result<Self> {
        tcp.set_read_timeout(Some(timeout))
            .context(|| "set read timeout".into())?;
        tcp.set_write_timeout(Some(timeout))
            .context(|| "set write timeout".into())?;
        let clone = tcp.try_clone().context(|| "clone socket".into())?;
        let mut t = Self {
            reader: BufReader::new(Box::new(clone)),
            tcp,
            greeting: Reply {
                code: 0,
                lines: Vec::new(),
            },
            log: Vec::new(),
        };
        t.greeting = t.read_reply()?;
        Ok(t)
    }

    /// The server's greeting (220 normally).
    pub fn greeting(&self) -> &Reply {
        &self.greeting
    }

    /// Sends one command line (CRLF is added) and reads the reply, whatever its code.
    pub fn cmd(&mut self, line: &str) -> Result<Reply> {
        self.write_line(line)?;
        self.read_reply()
    }

    /// Sends raw bytes plus CRLF as one command (garbage, 8-bit, NUL) and reads the reply.
    pub fn cmd_bytes(&mut self, line: &[u8]) -> Result<Reply> {
        self.log
            .push(format!("C: {}", String::from_utf8_lossy(line)));
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\r\n");
        self.write_bytes(&bytes)?;
        self.read_reply()
    }

    /// Sends one command line and fails (with the transcript) unless the reply has `code`.
    pub fn expect(&mut self, line: &str, code: u16) -> Result<Reply> {
        let reply = self.cmd(line)?;
        self.check(line, code, reply)
    }

    /// Reads the next reply and fails unless it has `code` (for replies that follow raw bytes).
    pub fn expect_reply(&mut self, code: u16) -> Result<Reply> {
        let reply = self.read_reply()?;
        self.check("(reply)", code, reply)
    }

    fn check(&self, line: &str, code: u16, reply: Reply) -> Result<Reply> {
        if reply.code == code {
            Ok(reply)
        } else {
            Err(HarnessError::Other(format!(
                "expected {code} to {line:?}, got {reply}\n--- transcript ---\n{}",
                self.transcript()
            )))
        }
    }

    /// Writes a line plus CRLF as is (no checks: over-long lines, source routes, garbage).
    pub fn write_line(&mut self, line: &str) -> Result<()> {
        self.log.push(format!("C: {line}"));
        let mut bytes = line.as_bytes().to_vec();
        bytes.extend_from_slice(b"\r\n");
        self.write_bytes(&bytes)
    }

    /// Writes raw bytes (no CRLF added, nothing recorded but their length).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.log.push(format!("C: <{} raw bytes>", bytes.len()));
        self.write_bytes(bytes)
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let stream = self.reader.get_mut();
        stream
            .write_all(bytes)
            .and_then(|()| stream.flush())
            .context(|| {
                format!(
                    "write to server\n--- transcript ---\n{}",
                    self.log.join("\n")
                )
            })
    }

    /// Reads one (possibly multi-line) reply.
    pub fn read_reply(&mut self) -> Result<Reply> {
        let mut lines = Vec::new();
        loop {
            let mut raw = Vec::new();
            let n = self
                .reader
                .by_ref()
                .take(64 * 1024)
                .read_until(b'\n', &mut raw)
                .context(|| format!("read reply\n--- transcript ---\n{}", self.log.join("\n")))?;
            if n == 0 {
                return Err(HarnessError::Other(format!(
                    "server closed the connection\n--- transcript ---\n{}",
                    self.transcript()
                )));
            }
            let line = String::from_utf8_lossy(&raw)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            self.log.push(format!("S: {line}"));
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code else {
                return Err(HarnessError::Other(format!(
                    "not an SMTP reply line: {line:?}\n--- transcript ---\n{}",
                    self.transcript()
                )));
            };
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or_default().to_string());
            if !more {
                return Ok(Reply { code, lines });
            }
        }
    }

    /// `EHLO name`, expecting 250.
    pub fn ehlo(&mut self, name: &str) -> Result<Reply> {
        self.expect(&format!("EHLO {name}"), 250)
    }

    /// Sends `DATA` (expects 354), the dot-stuffed content and the final ".", and returns the reply
    /// to the end of data whatever its code.
    pub fn data(&mut self, content: &[u8]) -> Result<Reply> {
        self.expect("DATA", 354)?;
        self.log
            .push(format!("C: <{} bytes of content>", content.len()));
        let wire = dot_stuff(content);
        self.write_bytes(&wire)?;
        self.log.push("C: .".into());
        self.read_reply()
    }

    /// `STARTTLS` (expects 220), then a TLS handshake trusting only `ca_pem` for `server_name`.
    /// Later commands go over TLS.
    pub fn starttls(&mut self, server_name: &str, ca_pem: &str) -> Result<()> {
        self.expect("STARTTLS", 220)?;
        self.handshake(server_name, ca_pem)
    }

    /// The TLS handshake (trusting only `ca_pem` for `server_name`) right after a 220 to a
    /// STARTTLS the caller sent itself (e.g. with bytes pipelined behind it). Fails if the server
    /// sent anything after the 220 in plaintext. Later commands go over TLS.
    pub fn handshake(&mut self, server_name: &str, ca_pem: &str) -> Result<()> {
        if !self.reader.buffer().is_empty() {
            return Err(HarnessError::Other(format!(
                "server sent bytes after 220 to STARTTLS (response injection): {:?}\n--- transcript ---\n{}",
                String::from_utf8_lossy(self.reader.buffer()),
                self.transcript()
            )));
        }
        let config = super::tls::client_config(ca_pem)?;
        let name =
            rustls_pki_types::ServerName::try_from(server_name.to_string()).map_err(|e| {
                HarnessError::Other(format!("bad TLS server name {server_name:?}: {e}"))
            })?;
        let conn = rustls::ClientConnection::new(Arc::new(config), name)
            .map_err(|e| HarnessError::Other(format!("TLS setup: {e}")))?;
        let tcp = self.tcp.try_clone().context(|| "clone socket".into())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .context(|| format!("TLS handshake with {server_name}"))?;
        }
        self.log.push("-- TLS established --".into());
        self.reader = BufReader::new(Box::new(tls));
        Ok(())
    }

    /// `QUIT` and the 221 (errors ignored: the server may already have closed).
    pub fn quit(mut self) {
        let _ = self.cmd("QUIT");
    }

    /// Whether the server has closed the connection (reads until EOF or `timeout`; bytes read are
    /// recorded in the transcript).
    pub fn is_closed_within(&mut self, timeout: Duration) -> bool {
        let _ = self.tcp.set_read_timeout(Some(timeout));
        let mut rest = Vec::new();
        let closed = self.reader.read_to_end(&mut rest).is_ok();
        if !rest.is_empty() {
            self.log
                .push(format!("S: {}", String::from_utf8_lossy(&rest).trim_end()));
        }
        closed
    }

    /// The conversation so far, one "C: ..." / "S: ..." line each.
    pub fn transcript(&self) -> String {
        self.log.join("\n")
    }
}

/// The content as sent on the wire after DATA: CRLF line endings, every line starting with "."
/// doubled, a final CRLF if missing, then ".\r\n".
pub fn dot_stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 64);
    let mut at_line_start = true;
    let mut previous = 0u8;
    for &b in content {
        if b == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
        previous = b;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Submits one message: EHLO, MAIL, RCPT for each recipient, DATA. Returns the reply to the end of
/// data (whatever its code); a rejected MAIL, RCPT or DATA is an error carrying that reply.
pub fn send(addr: SocketAddr, message: &TestMessage) -> Result<Reply> {
    let mut replies = send_all(addr, std::slice::from_ref(message))?;
    replies
        .pop()
        .ok_or_else(|| HarnessError::Other("no reply to the end of data".into()))
}

/// Submits several messages over one connection; returns each end-of-data reply.
pub fn send_all(addr: SocketAddr, messages: &[TestMessage]) -> Result<Vec<Reply>> {
    let mut t = Transcript::connect(addr)?;
    if t.greeting().code != 220 {
        return Err(HarnessError::Rejected {
            command: "(greeting)".into(),
            reply: t.greeting().clone(),
        });
    }
    t.ehlo("client.harness.test")?;
    let mut replies = Vec::with_capacity(messages.len());
    for message in messages {
        let mut step = |command: String| -> Result<()> {
            let reply = t.cmd(&command)?;
            if reply.is_positive() {
                Ok(())
            } else {
                Err(HarnessError::Rejected { command, reply })
            }
        };
        step(format!("MAIL FROM:<{}>", message.from))?;
        for rcpt in &message.to {
            step(format!("RCPT TO:<{rcpt}>"))?;
        }
        let reply = t.data(&message.data)?;
        replies.push(reply);
    }
    t.quit();
    Ok(replies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_terminates() {
        assert_eq!(dot_stuff(b"a\r\n.\r\n..x\r\n"), b"a\r\n..\r\n...x\r\n.\r\n");
        assert_eq!(dot_stuff(b".a\nb"), b"..a\r\nb\r\n.\r\n");
    }
}
