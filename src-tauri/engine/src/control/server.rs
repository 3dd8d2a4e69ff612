//! Serves the control endpoint for a running engine.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::ListenerOptions;
use interprocess::local_socket::tokio::{Listener, Stream, prelude::*};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use super::endpoint::{prepare_folder, socket_name};
use super::{Envelope, Hello, PROTOCOL_VERSION, Request, Response};
use crate::api::{Command, Status};
use crate::events::{Event, EventSender};

/// A request line longer than this is refused (requests are a few dozen bytes).
const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client may take to send its request, and each reply to be written.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// A fetch through the API waits at most this long for every server's outcome.
const FETCH_LIMIT: Duration = Duration::from_secs(15 * 60);

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Reads the config file again and applies it; says what happened.
pub type ReloadFn = Arc<dyn Fn() -> BoxFuture<Result<String, String>> + Send + Sync>;

/// What the control API needs of whoever runs the engine: `posternd run` ([`EngineLink`], one
/// engine for the endpoint's life) or the tray app, whose engine starts after the wizard and
/// is replaced by Apply, and which serves its window process too.
pub trait Host: Send + Sync + 'static {
    /// The running engine's commands; `None` while no engine runs.
    fn commands(&self) -> Option<mpsc::Sender<Command>>;
    fn status(&self) -> watch::Receiver<Status>;
    fn events(&self) -> EventSender;
    fn reload(&self) -> BoxFuture<Result<String, String>>;
    /// The journal file the running engine writes; `None` while no engine runs.
    fn journal(&self) -> Option<PathBuf>;
    /// The backup MX's held mail per domain, for the status snapshot (empty: none).
    fn backup(&self) -> BoxFuture<Vec<crate::backup::server::HeldStatus>> {
        Box::pin(async { Vec::new() })
    }
    /// The requests beyond the engine's own ([`Request::OpenWindow`] and the rest); `None`:
    /// not served here.
    fn extra(&self, _request: Request) -> BoxFuture<Option<Response>> {
        Box::pin(async { None })
    }
}

/// What the control API needs of the engine.
#[derive(Clone)]
pub struct EngineLink {
    pub commands: mpsc::Sender<Command>,
    pub status: watch::Receiver<Status>,
    pub events: EventSender,
    pub reload: ReloadFn,
    /// The journal file the engine writes.
    pub journal: PathBuf,
    /// The backup MX, when `[[backup_for]]` (or held mail) exists.
    pub backup: Option<Arc<crate::backup::server::BackupServer>>,
}

impl Host for EngineLink {
    fn commands(&self) -> Option<mpsc::Sender<Command>> {
        Some(self.commands.clone())
    }
    fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }
    fn events(&self) -> EventSender {
        self.events.clone()
    }
    fn reload(&self) -> BoxFuture<Result<String, String>> {
        (self.reload)()
    }
    fn backup(&self) -> BoxFuture<Vec<crate::backup::server::HeldStatus>> {
        let backup = self.backup.clone();
        Box::pin(async move {
            let Some(b) = backup else {
                return Vec::new();
            };
            tokio::task::spawn_blocking(move || b.status())
                .await
                .unwrap_or_default()
        })
    }
    fn journal(&self) -> Option<PathBuf> {
        Some(self.journal.clone())
    }
}

const NOT_RUNNING: &str = "Postern is not set up yet: finish the setup wizard first";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "another Postern already runs with this configuration (its control endpoint {0} answers): \
         stop it first, or use `posternd status` to talk to it"
    )]
    AlreadyRunning(PathBuf),
    #[error("cannot open the control endpoint {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The running endpoint; dropping it stops accepting and removes the socket file.
pub struct ControlServer {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl ControlServer {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        #[cfg(unix)]
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Opens the endpoint at `path` and serves `engine` on it.
pub async fn serve(path: PathBuf, engine: EngineLink) -> Result<ControlServer, ServeError> {
    serve_host(path, Arc::new(engine)).await
}

/// Opens the endpoint at `path` and serves `host` on it.
pub async fn serve_host(path: PathBuf, engine: Arc<dyn Host>) -> Result<ControlServer, ServeError> {
    let io = |source| ServeError::Io {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        prepare_folder(dir).map_err(io)?;
    }
    if super::client::connect(&path).await.is_ok() {
        return Err(ServeError::AlreadyRunning(path));
    }
    // Nothing answers: a file left by a process that was killed.
    #[cfg(unix)]
    let _ = std::fs::remove_file(&path);
    let listener = listen(&path).map_err(io)?;
    let task = tokio::spawn(accept_loop(listener, engine));
    Ok(ControlServer { path, task })
}

fn listen(path: &Path) -> std::io::Result<Listener> {
    let options = ListenerOptions::new().name(socket_name(path)?);
    #[cfg(unix)]
    let options = {
        use interprocess::os::unix::local_socket::ListenerOptionsExt;
        options.mode(0o600)
    };
    #[cfg(windows)]
    let options = {
        use interprocess::os::windows::local_socket::ListenerOptionsExt;
        options.security_descriptor(owner_only()?)
    };
    options.create_tokio()
}

/// The pipe's ACL on Windows: full access for its owner, the user who runs the engine, and
/// nobody else ("P": no inherited entries). Not built or tested here (Linux only, see README).
#[cfg(windows)]
fn owner_only()
-> std::io::Result<interprocess::os::windows::security_descriptor::SecurityDescriptor> {
    let sddl = widestring::U16CString::from_str("D:P(A;;GA;;;OW)")
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    interprocess::os::windows::security_descriptor::SecurityDescriptor::deserialize(&sddl)
}

async fn accept_loop(listener: Listener, engine: Arc<dyn Host>) {
    loop {
        match listener.accept().await {
            Ok(conn) => {
                let engine = engine.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(conn, engine).await {
                        tracing::debug!("control connection ended: {e}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("control endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(conn: Stream, engine: Arc<dyn Host>) -> std::io::Result<()> {
    let mut recv = BufReader::new(&conn);
    let mut send = &conn;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        pid: std::process::id(),
    };
    write_line(&mut send, &hello).await?;
    let request = match read_request(&mut recv).await {
        Ok(r) => r,
        Err(message) => {
            return write_line(&mut send, &Response::Error { message }).await;
        }
    };
    match request {
        Request::Status => {
            let mut status = engine.status().borrow().clone();
            status.backup = engine.backup().await;
            let reply = Response::Status {
                status: Box::new(status),
            };
            write_line(&mut send, &reply).await
        }
        Request::Pause => command(&mut send, &*engine, Command::Pause, "paused").await,
        Request::Resume => command(&mut send, &*engine, Command::Resume, "resumed").await,
        Request::FetchNow => command(&mut send, &*engine, Command::FetchNow, "fetching").await,
        Request::Reload => {
            let reply = match engine.reload().await {
                Ok(message) => Response::Done { message },
                Err(message) => Response::Error { message },
            };
            write_line(&mut send, &reply).await
        }
        Request::Fetch => {
            let reply = fetch(&*engine).await;
            write_line(&mut send, &reply).await
        }
        Request::Events => follow(recv, send, engine.events().subscribe()).await,
        Request::WatchStatus => watch_status(recv, send, engine.status()).await,
        Request::Queue { action } => {
            let reply = queue(&*engine, action).await;
            write_line(&mut send, &reply).await
        }
        Request::Log { query } => {
            let reply = read_journal(&*engine, move |path| {
                crate::journal::query::run(path, &query).map(|page| Response::Log { page })
            })
            .await;
            write_line(&mut send, &reply).await
        }
        Request::Stats => {
            let reply = read_journal(&*engine, |path| {
                crate::journal::stats::stats(path, chrono::Local::now()).map(|stats| {
                    Response::Stats {
                        stats: Box::new(stats),
                    }
                })
            })
            .await;
            write_line(&mut send, &reply).await
        }
        other => {
            let reply = engine
                .extra(other)
                .await
                .unwrap_or_else(|| Response::Error {
                    message: "only the tray app (postern) answers this request, not posternd"
                        .into(),
                });
            write_line(&mut send, &reply).await
        }
    }
}

/// Runs a read of the journal off the async threads.
async fn read_journal<F>(engine: &dyn Host, read: F) -> Response
where
    F: FnOnce(&Path) -> Result<Response, crate::journal::JournalError> + Send + 'static,
{
    let Some(path) = engine.journal() else {
        return Response::Error {
            message: NOT_RUNNING.into(),
        };
    };
    match tokio::task::spawn_blocking(move || read(&path)).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => Response::Error {
            message: e.to_string(),
        },
        Err(e) => Response::Error {
            message: format!("the journal read failed: {e}"),
        },
    }
}

/// Hands a queue command to the engine and waits for the queue task's answer.
async fn queue(engine: &dyn Host, action: crate::outbound::queue::QueueAction) -> Response {
    let Some(commands) = engine.commands() else {
        return Response::Error {
            message: NOT_RUNNING.into(),
        };
    };
    let mut events = engine.events().subscribe();
    if commands.send(Command::Outbound(action)).await.is_err() {
        return Response::Error {
            message: "the engine is stopping".into(),
        };
    }
    let answer = async {
        loop {
            match events.recv().await {
                Ok(Event::OutboundCommandDone { message }) => return Some(message),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    };
    match tokio::time::timeout(CLIENT_TIMEOUT, answer).await {
        Ok(Some(message)) => Response::Done { message },
        Ok(None) => Response::Error {
            message: "the engine stopped".into(),
        },
        Err(_) => Response::Error {
            message: "the outbound queue did not answer within 10 s".into(),
        },
    }
}

async fn read_request<R: AsyncRead + Unpin>(recv: &mut BufReader<R>) -> Result<Request, String> {
    let mut line = String::new();
    let mut limited = recv.take(MAX_REQUEST);
    match tokio::time::timeout(CLIENT_TIMEOUT, limited.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 && line.ends_with('\n') => {}
        Ok(Ok(_)) => return Err("the request must be one JSON line".into()),
        Ok(Err(e)) => return Err(format!("cannot read the request: {e}")),
        Err(_) => return Err("no request within 10 s".into()),
    }
    let envelope: Envelope =
        serde_json::from_str(&line).map_err(|e| format!("not a valid request: {e}"))?;
    if envelope.version != PROTOCOL_VERSION {
        return Err(format!(
            "this engine speaks control protocol {PROTOCOL_VERSION}, the client {}: use the \
             posternd of the same version",
            envelope.version
        ));
    }
    Ok(envelope.request)
}

async fn command<W: AsyncWrite + Unpin>(
    send: &mut W,
    engine: &dyn Host,
    command: Command,
    done: &str,
) -> std::io::Result<()> {
    let reply = match engine.commands() {
        None => Response::Error {
            message: NOT_RUNNING.into(),
        },
        Some(commands) => match commands.send(command).await {
            Ok(()) => Response::Done {
                message: done.into(),
            },
            Err(_) => Response::Error {
                message: "the engine is stopping".into(),
            },
        },
    };
    write_line(send, &reply).await
}

/// FetchNow, then the outcome of every queue server (a dequeue already running counts: the
/// engine never runs two at once for one server).
async fn fetch(engine: &dyn Host) -> Response {
    let Some(commands) = engine.commands() else {
        return Response::Error {
            message: NOT_RUNNING.into(),
        };
    };
    let mut events = engine.events().subscribe();
    let expected = engine.status().borrow().servers.len();
    if commands.send(Command::FetchNow).await.is_err() {
        return Response::Error {
            message: "the engine is stopping".into(),
        };
    }
    let mut outcomes = Vec::new();
    let mut finished = 0;
    let collect = async {
        while finished < expected {
            match events.recv().await {
                Ok(Event::FetchFinished { outcomes: o, .. }) => {
                    finished += 1;
                    outcomes.extend(o);
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return false,
            }
        }
        true
    };
    match tokio::time::timeout(FETCH_LIMIT, collect).await {
        Ok(true) => Response::Fetched { outcomes },
        Ok(false) => Response::Error {
            message: "the engine stopped during the fetch".into(),
        },
        Err(_) => Response::Error {
            message: "the fetch did not finish within 15 minutes".into(),
        },
    }
}

/// Streams events until the client goes away (or reads so slowly that a write times out).
async fn follow<R, W>(
    mut recv: R,
    mut send: W,
    mut events: broadcast::Receiver<Event>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Said only once subscribed, so a client can act knowing it will see what follows.
    write_line(&mut send, &Response::Following).await?;
    let mut scratch = [0u8; 64];
    loop {
        let reply = tokio::select! {
            read = recv.read(&mut scratch) => match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => continue,
            },
            event = events.recv() => match event {
                Ok(event) => Response::Event { event: Box::new(event) },
                Err(broadcast::error::RecvError::Lagged(missed)) => Response::Lagged { missed },
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        };
        write_line(&mut send, &reply).await?;
    }
}

/// Streams the status, now and after each change, until the client goes away.
async fn watch_status<R, W>(
    mut recv: R,
    mut send: W,
    mut status: watch::Receiver<Status>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut scratch = [0u8; 64];
    loop {
        let current = status.borrow_and_update().clone();
        let reply = Response::Status {
            status: Box::new(current),
        };
        write_line(&mut send, &reply).await?;
        tokio::select! {
            read = recv.read(&mut scratch) => match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => {}
            },
            changed = status.changed() => if changed.is_err() {
                return Ok(());
            },
        }
    }
}

async fn write_line<W: AsyncWrite + Unpin, T: serde::Serialize>(
    send: &mut W,
    value: &T,
) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let write = async {
        send.write_all(&line).await?;
        send.flush().await
    };
    tokio::time::timeout(CLIENT_TIMEOUT, write)
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "the client does not read")
        })?
}
