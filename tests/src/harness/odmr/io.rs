//! The provider's end of one TCP connection: CRLF lines in, bytes out, every read and write
//! under the idle timeout, everything logged to the transcript.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::model::Shared;

/// Long enough for an AUTH response (RFC 4954 §4: 12288 octets).
pub(super) const MAX_LINE: usize = 12_288;

#[derive(Debug, thiserror::Error)]
pub(super) enum IoError {
    #[error("timed out after {0:?} waiting for the customer")]
    Timeout(Duration),
    #[error("the customer closed the connection")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("line longer than {MAX_LINE} octets")]
    TooLong,
    #[error("line ended with a bare LF (RFC 5321 requires CRLF)")]
    BareLf,
    #[error("TLS handshake failed: {0}")]
    Handshake(std::io::Error),
}

pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only between taking the plain stream for STARTTLS and storing the TLS one.
    Gone,
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

pub(super) struct Conn<'a> {
    stream: Stream,
    buf: Vec<u8>,
    pub(super) session: u64,
    pub(super) shared: &'a Shared,
    pub(super) timeout: Duration,
}

impl<'a> Conn<'a> {
    pub(super) fn new(stream: TcpStream, session: u64, shared: &'a Shared) -> Conn<'a> {
        Conn {
            stream: Stream::Plain(stream),
            buf: Vec::new(),
            session,
            shared,
            timeout: shared.config.idle_timeout,
        }
    }

    pub(super) fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    pub(super) fn log_customer(&self, text: &str) {
        self.shared.log(self.session, false, text);
    }

    pub(super) fn log_provider(&self, text: &str) {
        self.shared.log(self.session, true, text);
    }

    /// Octets received but not yet consumed as lines.
    pub(super) fn buffered_input(&self) -> usize {
        self.buf.len()
    }

    /// One CRLF-terminated line, without the CRLF. Logged.
    pub(super) async fn read_line(&mut self) -> Result<String, IoError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() != Some(&b'\r') {
                    self.log_customer(&format!(
                        "[bare LF after: {}]",
                        String::from_utf8_lossy(&line)
                    ));
                    return Err(IoError::BareLf);
                }
                line.pop();
                let text = String::from_utf8_lossy(&line).into_owned();
                self.log_customer(&text);
                return Ok(text);
            }
            if self.buf.len() > MAX_LINE {
                self.buf.clear();
                return Err(IoError::TooLong);
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<(), IoError> {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(self.timeout, self.stream.read(&mut chunk))
            .await
            .map_err(|_| IoError::Timeout(self.timeout))??;
        if n == 0 {
            return Err(IoError::Closed);
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// Reads and logs until the customer closes or the stream fails; no timeout, never writes.
    pub(super) async fn drain_silently(&mut self) {
        let mut chunk = [0u8; 8192];
        loop {
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    self.log_customer("[closed]");
                    return;
                }
                Ok(n) => self.log_customer(&format!(
                    "[ignored] {}",
                    String::from_utf8_lossy(&chunk[..n]).trim_end()
                )),
            }
        }
    }

    /// Writes `line` + CRLF and logs it.
    pub(super) async fn send_line(&mut self, line: &str) -> Result<(), IoError> {
        self.log_provider(line);
        self.write_raw(format!("{line}\r\n").as_bytes()).await
    }

    /// Writes several lines in one write (one TCP segment / TLS record where possible).
    pub(super) async fn send_lines(&mut self, lines: &[String]) -> Result<(), IoError> {
        let mut out = Vec::new();
        for line in lines {
            self.log_provider(line);
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.write_raw(&out).await
    }

    /// Writes bytes as they are (message content); the caller logs a summary.
    pub(super) async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), IoError> {
        let write = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        tokio::time::timeout(self.timeout, write)
            .await
            .map_err(|_| IoError::Timeout(self.timeout))??;
        Ok(())
    }

    /// RFC 3207 §4.2: input received before the handshake is discarded.
    pub(super) async fn start_tls(
        &mut self,
        acceptor: &tokio_rustls::TlsAcceptor,
    ) -> Result<(), IoError> {
        if !self.buf.is_empty() {
            self.log_customer(&format!(
                "[{} octets pipelined after STARTTLS discarded]",
                self.buf.len()
            ));
            self.buf.clear();
        }
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(IoError::Io(std::io::ErrorKind::InvalidInput.into()));
        };
        let tls = tokio::time::timeout(self.timeout, acceptor.accept(tcp))
            .await
            .map_err(|_| IoError::Timeout(self.timeout))?
            .map_err(IoError::Handshake)?;
        self.stream = Stream::Tls(Box::new(tls));
        self.log_provider("[TLS established]");
        Ok(())
    }

    /// Orderly close (TLS close_notify, then FIN), bounded by the timeout.
    pub(super) async fn close(&mut self) {
        let _ = tokio::time::timeout(self.timeout, self.stream.shutdown()).await;
    }

    /// Drops the TCP connection without any TLS close_notify.
    pub(super) fn abort(&mut self) {
        match std::mem::replace(&mut self.stream, Stream::Gone) {
            Stream::Plain(tcp) => drop(tcp),
            Stream::Tls(tls) => {
                let (tcp, _) = tls.into_inner();
                drop(tcp);
            }
            Stream::Gone => {}
        }
    }
}
