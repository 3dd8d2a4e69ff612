//! The client side of the control API, for `posternd status|pause|resume|reload|events|fetch`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use interprocess::local_socket::tokio::{Stream, prelude::*};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::endpoint::socket_name;
use super::{Envelope, Hello, PROTOCOL_VERSION, Request, Response};

/// Replies other than events come within this (a fetch is waited for separately).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_LINE: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no Postern engine runs with this configuration (nothing answers at {0})")]
    NotRunning(PathBuf),
    #[error("the control endpoint {path} refuses this user ({source}): it belongs to another user")]
    Forbidden {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the control connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the engine answered something this posternd does not understand: {0}")]
    Protocol(String),
    #[error("the engine did not answer within {} s", REPLY_TIMEOUT.as_secs())]
    Timeout,
    #[error("{0}")]
    Refused(String),
}

/// One request's connection.
pub struct Connection {
    /// Reads are buffered; writes go to the stream itself (`get_mut`).
    stream: BufReader<Stream>,
    pub hello: Hello,
}

pub(super) async fn connect(path: &Path) -> Result<Stream, ControlError> {
    let name = socket_name(path)?;
    Stream::connect(name).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => ControlError::Forbidden {
            path: path.to_path_buf(),
            source: e,
        },
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ControlError::NotRunning(path.to_path_buf())
        }
        _ => ControlError::Io(e),
    })
}

/// Connects to the engine at `path` and sends `request`.
pub async fn request(path: &Path, request: Request) -> Result<Connection, ControlError> {
    let stream = connect(path).await?;
    let mut conn = Connection {
        stream: BufReader::new(stream),
        hello: Hello { version: 0, pid: 0 },
    };
    let line = conn.line(Some(REPLY_TIMEOUT)).await?;
    conn.hello = serde_json::from_str(&line).map_err(|e| ControlError::Protocol(e.to_string()))?;
    let mut out = serde_json::to_vec(&Envelope {
        version: PROTOCOL_VERSION,
        request,
    })
    .map_err(|e| ControlError::Protocol(e.to_string()))?;
    out.push(b'\n');
    let send = conn.stream.get_mut();
    send.write_all(&out).await?;
    send.flush().await?;
    Ok(conn)
}

impl Connection {
    /// The next response; `None` when the engine closed the connection. `timeout: None` waits
    /// as long as it takes (events, a fetch under its own limit on the engine's side).
    pub async fn next(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Option<Response>, ControlError> {
        let line = match self.line(timeout).await {
            Ok(line) => line,
            Err(ControlError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let response: Response =
            serde_json::from_str(&line).map_err(|e| ControlError::Protocol(e.to_string()))?;
        if let Response::Error { message } = response {
            return Err(ControlError::Refused(message));
        }
        Ok(Some(response))
    }

    /// The one response of a request that has one.
    pub async fn reply(mut self) -> Result<Response, ControlError> {
        self.next(Some(REPLY_TIMEOUT)).await?.ok_or_else(|| {
            ControlError::Protocol("the engine closed the connection without an answer".into())
        })
    }

    async fn line(&mut self, timeout: Option<Duration>) -> Result<String, ControlError> {
        let mut line = String::new();
        let read = self.stream.read_line(&mut line);
        let n = match timeout {
            Some(t) => tokio::time::timeout(t, read)
                .await
                .map_err(|_| ControlError::Timeout)??,
            None => read.await?,
        };
        if n == 0 {
            return Err(ControlError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        if line.len() > MAX_LINE {
            return Err(ControlError::Protocol("a line too long".into()));
        }
        Ok(line)
    }
}
