//! What a session is told about its connection, and how it ended; the 421 for connections
//! over a limit.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub peer: Option<SocketAddr>,
    /// The stream is already encrypted (ATRN over STARTTLS).
    pub tls: bool,
    /// "inbound", "atrn" or "turn": where the session came from, for events.
    pub via: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    Quit,
    /// The peer closed the connection without QUIT.
    Closed,
    IdleTimeout,
    SessionTimeout,
    TooManyErrors,
    TooManyJunkCommands,
    Shutdown,
    IoError,
    /// The TLS handshake after STARTTLS failed.
    TlsFailed,
}

impl SessionEnd {
    pub fn describe(self) -> &'static str {
        match self {
            SessionEnd::Quit => "quit",
            SessionEnd::Closed => "closed by the peer",
            SessionEnd::IdleTimeout => "idle timeout",
            SessionEnd::SessionTimeout => "session time limit",
            SessionEnd::TooManyErrors => "too many errors",
            SessionEnd::TooManyJunkCommands => "too many NOOP/RSET/VRFY/EXPN/HELP commands",
            SessionEnd::TlsFailed => "TLS handshake failed",
            SessionEnd::Shutdown => "shutdown",
            SessionEnd::IoError => "connection error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub accepted: u32,
    pub refused: u32,
    pub end: SessionEnd,
}

/// Answers a connection over the limit with 421 and closes it.
pub async fn refuse_busy<S: AsyncWrite + Unpin>(mut stream: S, hostname: &str) {
    let line = format!("421 4.3.2 {hostname} Too many connections, try again later\r\n");
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(line.as_bytes())).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.shutdown()).await;
}

/// Answers a connection over the per-client limit with 421 and closes it.
pub async fn refuse_client_busy<S: AsyncWrite + Unpin>(mut stream: S, hostname: &str) {
    let line =
        format!("421 4.7.0 {hostname} Too many connections from your address, try again later\r\n");
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(line.as_bytes())).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.shutdown()).await;
}
