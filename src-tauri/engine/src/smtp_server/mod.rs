//! The inbound SMTP server: the listener on `[inbound].listen` and the one session
//! implementation ([`session`]) that both the listener and the ATRN/TURN turnaround use.

pub(crate) mod channel;
mod context;
mod outcome;
pub mod session;
mod syntax;
pub mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

pub use context::{ServerSettings, SessionContext};
pub use session::{SessionEnd, SessionInfo, SessionSummary};

/// Sessions per client address, for `max_connections_per_client`.
#[derive(Debug, Default, Clone)]
struct PerClient(Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>);

/// One client's place, given back on drop.
struct ClientSlot {
    table: PerClient,
    ip: IpAddr,
}

impl PerClient {
    fn try_take(&self, ip: IpAddr, limit: usize) -> Option<ClientSlot> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut map = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}. {}", listen_fix(*addr, source))]
pub struct ListenError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

fn listen_fix(addr: SocketAddr, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            "Ports below 1024 need privileges: run posternd as a service with CAP_NET_BIND_SERVICE, \
             or listen on a high port (e.g. \"0.0.0.0:2525\") and forward port 25 to it on your router; \
             [inbound] listen = [\"{addr}\"] in postern.toml"
        ),
        std::io::ErrorKind::AddrInUse => format!(
            "Another program (perhaps a mail server) already listens on {addr}: stop it or choose another port in [inbound] listen"
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "{} is not an address of this machine: fix [inbound] listen",
            addr.ip()
        ),
        _ => "Check [inbound] listen in postern.toml".into(),
    }
}

/// Binds every address (before anything else starts, so errors show at once).
pub async fn bind(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, ListenError> {
    let mut out = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        out.push(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ListenError { addr, source })?,
        );
    }
    Ok(out)
}

/// Why a reload could not open the new `[inbound] listen` addresses. Nothing changed: the old
/// sockets are all still open.
#[derive(Debug, thiserror::Error)]
pub enum RebindError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error(
        "cannot listen on {addr} while {held_by} (the current [inbound] listen) holds port {port}: \
         a reload opens the new addresses before it closes the old ones. Restart Postern to move \
         between these two addresses, or choose another port in [inbound] listen",
        port = addr.port()
    )]
    PortHeld {
        addr: SocketAddr,
        held_by: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// New sockets bound by [`Inbound::prepare`], not accepting yet.
pub struct Rebind {
    addrs: Vec<SocketAddr>,
    opened: Vec<(SocketAddr, TcpListener)>,
}

/// What new sessions get; replaced as a whole on reload, so a session keeps the context (and
/// the connection limit) it started with.
#[derive(Clone)]
struct Generation {
    ctx: Arc<SessionContext>,
    limit: Arc<Semaphore>,
}

type Accepted = (TcpStream, SocketAddr);

/// One open listening socket, accepting in its own task.
struct Acceptor {
    /// As written in `[inbound] listen` (port 0 stays 0).
    configured: SocketAddr,
    local: SocketAddr,
    task: JoinHandle<()>,
}

/// The control half of the inbound listener: which sockets are open and what new sessions get.
/// [`Sessions::run`] is the other half, which runs the sessions.
pub struct Inbound {
    acceptors: Vec<Acceptor>,
    accepted: mpsc::Sender<Accepted>,
    generation: watch::Sender<Generation>,
}

/// The session loop of an [`Inbound`].
pub struct Sessions {
    accepted: mpsc::Receiver<Accepted>,
    generation: watch::Receiver<Generation>,
    via: &'static str,
}

impl Inbound {
    /// Binds every address of `addrs` (the first failure is the error) and starts accepting;
    /// the connections wait for [`Sessions::run`].
    pub async fn bind(
        addrs: &[SocketAddr],
        ctx: Arc<SessionContext>,
    ) -> Result<(Inbound, Sessions), ListenError> {
        let listeners = bind(addrs).await?;
        let (accepted_tx, accepted_rx) = mpsc::channel(64);
        let limit = Arc::new(Semaphore::new(ctx.settings.max_connections.max(1)));
        let (generation_tx, generation_rx) = watch::channel(Generation { ctx, limit });
        let mut inbound = Inbound {
            acceptors: Vec::with_capacity(addrs.len()),
            accepted: accepted_tx,
            generation: generation_tx,
        };
        for (&configured, listener) in addrs.iter().zip(listeners) {
            inbound.spawn_acceptor(configured, listener);
        }
        let sessions = Sessions {
            accepted: accepted_rx,
            generation: generation_rx,
            via: VIA_INBOUND,
        };
        Ok((inbound, sessions))
    }

    /// The addresses the sockets are bound to (port 0 resolved).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.acceptors.iter().map(|a| a.local).collect()
    }

    /// The addresses as configured.
    pub fn configured(&self) -> Vec<SocketAddr> {
        self.acceptors.iter().map(|a| a.configured).collect()
    }

    /// The first half of a move to `addrs`: binds the addresses that are new (those in both
    /// the old and the new list keep their sockets). On error nothing changed; dropping the
    /// result closes the new sockets again.
    pub async fn prepare(&self, addrs: &[SocketAddr]) -> Result<Rebind, RebindError> {
        let mut opened: Vec<(SocketAddr, TcpListener)> = Vec::new();
        for &addr in addrs {
            if self.acceptors.iter().any(|a| a.configured == addr)
                || opened.iter().any(|(a, _)| *a == addr)
            {
                continue;
            }
            match TcpListener::bind(addr).await {
                Ok(listener) => opened.push((addr, listener)),
                Err(source) => return Err(self.rebind_error(addr, addrs, source)),
            }
        }
        Ok(Rebind {
            addrs: addrs.to_vec(),
            opened,
        })
    }

    /// The second half: new sessions get `ctx` (sessions in flight finish with the context they
    /// started with), the new sockets accept, and the dropped ones are closed (when this
    /// returns, they refuse connections).
    pub async fn switch(&mut self, rebind: Rebind, ctx: Arc<SessionContext>) {
        let current = self.generation.borrow().clone();
        let limit = if current.ctx.settings.max_connections == ctx.settings.max_connections {
            current.limit
        } else {
            Arc::new(Semaphore::new(ctx.settings.max_connections.max(1)))
        };
        self.generation.send_replace(Generation { ctx, limit });
        for (addr, listener) in rebind.opened {
            self.spawn_acceptor(addr, listener);
        }
        let (kept, dropped): (Vec<_>, Vec<_>) = std::mem::take(&mut self.acceptors)
            .into_iter()
            .partition(|a| rebind.addrs.contains(&a.configured));
        for acceptor in dropped {
            acceptor.task.abort();
            // The task owns the socket: once it has ended, the port is closed.
            let _ = acceptor.task.await;
        }
        self.acceptors = kept;
        self.acceptors
            .sort_by_key(|a| rebind.addrs.iter().position(|x| *x == a.configured));
    }

    /// Closes every socket; returns once they refuse connections.
    pub async fn close(&mut self) {
        for acceptor in self.acceptors.drain(..) {
            acceptor.task.abort();
            let _ = acceptor.task.await;
        }
    }

    fn rebind_error(
        &self,
        addr: SocketAddr,
        addrs: &[SocketAddr],
        source: std::io::Error,
    ) -> RebindError {
        // A socket we are about to close can be what holds the port (0.0.0.0:25 -> 10.0.0.2:25).
        let held_by = self.acceptors.iter().find(|a| {
            !addrs.contains(&a.configured)
                && a.local.port() == addr.port()
                && (a.local.ip().is_unspecified()
                    || addr.ip().is_unspecified()
                    || a.local.ip() == addr.ip())
        });
        match held_by {
            Some(a) if source.kind() == std::io::ErrorKind::AddrInUse => RebindError::PortHeld {
                addr,
                held_by: a.configured,
                source,
            },
            _ => RebindError::Listen(ListenError { addr, source }),
        }
    }

    fn spawn_acceptor(&mut self, configured: SocketAddr, listener: TcpListener) {
        let local = listener.local_addr().unwrap_or(configured);
        let tx = self.accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok(conn) => {
                        if tx.send(conn).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        self.acceptors.push(Acceptor {
            configured,
            local,
            task,
        });
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        for acceptor in &self.acceptors {
            acceptor.task.abort();
        }
    }
}

pub use context::{VIA_INBOUND, VIA_SUBMISSION};

impl Sessions {
    /// Names where these sessions come from in their events and journal entries
    /// ([`VIA_INBOUND`] unless set).
    pub fn with_via(mut self, via: &'static str) -> Sessions {
        self.via = via;
        self
    }

    /// Runs a session for every accepted connection until `shutdown` turns true. Returns the
    /// sessions still running: close the sockets ([`Inbound::close`]), then
    /// [`Draining::finish`].
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Draining {
        let mut sessions = JoinSet::new();
        let per_client = PerClient::default();
        let via = self.via;
        loop {
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                Some((stream, peer)) = self.accepted.recv() => {
                    let Generation { ctx, limit } = self.generation.borrow().clone();
                    let shutdown = shutdown.clone();
                    let slot = per_client.try_take(peer.ip(), ctx.settings.max_connections_per_client);
                    let permit = slot.is_some().then(|| limit.try_acquire_owned());
                    sessions.spawn(async move {
                        let _ = stream.set_nodelay(true);
                        let info = SessionInfo { peer: Some(peer), tls: false, via };
                        match permit {
                            Some(Ok(_permit)) => {
                                session::run(stream, Vec::new(), info, &ctx, shutdown).await;
                            }
                            Some(Err(_)) => {
                                session::refuse_busy(stream, &ctx.settings.hostname).await;
                            }
                            None => {
                                tracing::info!(%peer, "refused: too many connections from this address");
                                session::refuse_client_busy(stream, &ctx.settings.hostname).await;
                            }
                        }
                        drop(slot);
                    });
                }
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            }
        }
        Draining(sessions)
    }
}

/// The sessions running when the listener stopped.
pub struct Draining(JoinSet<()>);

impl Draining {
    /// Waits (up to 10 s) for the sessions, which end at their next command with 421.
    pub async fn finish(mut self) {
        let drain = async { while self.0.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            self.0.abort_all();
        }
    }
}
