//! The one place that decides when to dequeue.
//!
//! This version dequeues once at start, then every `[link].refetch_every`, and on FetchNow; the
//! link watcher (a later issue) adds link edges, retries with backoff and single-flight joins.

use futures_util::future::join_all;
use tokio::sync::{mpsc, watch};

use crate::api::{Command, Status};
use crate::config::Config;
use crate::dequeue::{self, DequeueContext};
use crate::events::{Event, EventSender};

pub async fn run(
    config: Config,
    ctx: DequeueContext,
    mut commands: mpsc::Receiver<Command>,
    status: watch::Sender<Status>,
    events: EventSender,
    shutdown: watch::Sender<bool>,
) {
    let mut received = events.subscribe();
    let every = config.link.refetch_every;
    let mut next = Some(tokio::time::Instant::now());
    loop {
        let timer = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = timer => {
                if !status.borrow().paused {
                    fetch_all(&config, &ctx, &status, &events).await;
                }
                next = (!every.is_zero()).then(|| tokio::time::Instant::now() + every);
            }
            command = commands.recv() => match command {
                Some(Command::FetchNow) => fetch_all(&config, &ctx, &status, &events).await,
                Some(Command::Pause) => status.send_modify(|s| s.paused = true),
                Some(Command::Resume) => status.send_modify(|s| s.paused = false),
                Some(Command::Shutdown) | None => break,
            },
            event = received.recv() => {
                if let Ok(Event::MessageReceived { .. }) = event {
                    status.send_modify(|s| s.messages_received += 1);
                }
            }
        }
    }
    let _ = shutdown.send(true);
}

/// Dequeues from every server in parallel (domains in order within a server).
pub async fn fetch_all(
    config: &Config,
    ctx: &DequeueContext,
    status: &watch::Sender<Status>,
    events: &EventSender,
) {
    status.send_modify(|s| s.fetching = true);
    let jobs = config.queue_servers.iter().map(|server| {
        let label = dequeue::server_label(server);
        let _ = events.send(Event::FetchStarted {
            server: label.clone(),
            protocol: server.protocol,
            domains: config.domains.clone(),
        });
        async move {
            let outcomes = dequeue::dequeue(server, &config.domains, ctx).await;
            let _ = events.send(Event::FetchFinished {
                server: label,
                outcomes: outcomes.clone(),
            });
            outcomes
        }
    });
    let all: Vec<_> = join_all(jobs).await.into_iter().flatten().collect();
    status.send_modify(|s| {
        s.fetching = false;
        s.last_fetch = all;
        s.last_fetch_at = Some(chrono::Local::now().to_rfc3339());
    });
}
