//! The ODMR listener: accepts on `[backup] odmr_listen`, a few sessions at a time.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::backup::odmr::session::{self, OdmrContext};
use crate::smtp_server::ListenError;

/// Sessions at a time: a neighbour needs one.
const MAX_SESSIONS: usize = 8;

/// Binds every address (the first failure is the error) and serves until `shutdown`.
pub async fn start(
    addrs: &[SocketAddr],
    ctx: Arc<OdmrContext>,
    shutdown: watch::Receiver<bool>,
) -> Result<(Vec<SocketAddr>, Vec<JoinHandle<()>>), ListenError> {
    let listeners = crate::smtp_server::bind(addrs).await?;
    let limit = Arc::new(Semaphore::new(MAX_SESSIONS));
    let mut local = Vec::new();
    let mut tasks = Vec::new();
    for listener in listeners {
        if let Ok(a) = listener.local_addr() {
            local.push(a);
        }
        let ctx = ctx.clone();
        let limit = limit.clone();
        let mut shutdown = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = shutdown.changed() => return,
                };
                let Ok((stream, peer)) = accepted else {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    let host = ctx.backup.hostname.clone();
                    tokio::spawn(async move {
                        crate::smtp_server::session::refuse_busy(stream, &host).await;
                    });
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    session::run(stream, peer, &ctx).await;
                    drop(permit);
                });
            }
        }));
    }
    tracing::info!("ODMR server on {local:?}");
    Ok((local, tasks))
}
