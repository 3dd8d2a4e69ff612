//! The driver: feeds the [`Machine`] from the link monitor, the commands, the reloads, the
//! inbound sessions' arrivals, the finished dequeues and a timer, and carries out its actions.
//! The one part of the supervisor that does I/O.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::machine::{Action, Input, Machine};
use super::settings::{Now, Settings};
use super::status::{Command, Status};
use crate::config::Config;
use crate::dequeue::Dequeuer;
use crate::events::{ArrivalReceiver, Event, EventSender};
use crate::link::{LinkMonitor, MonitorSettings};
use crate::reload::{self, Reconfigurer, ReloadError, ReloadRequest, Reloaded};
use crate::secrets::SecretStore;

/// What the supervisor needs besides the configuration.
#[derive(Clone)]
pub struct SupervisorDeps {
    pub dequeuer: Arc<dyn Dequeuer>,
    /// The inbound listener and dequeuer context a reload changes; `None` when the supervisor
    /// runs alone (tests), and a reload then changes only the supervisor.
    pub reconfigurer: Option<Arc<Reconfigurer>>,
    /// The outbound queue task, which carries out [`Command::Outbound`] (`None`: no
    /// `[outbound]`).
    pub outbound: Option<mpsc::UnboundedSender<crate::outbound::queue::QueueAction>>,
}

impl SupervisorDeps {
    pub fn new(dequeuer: Arc<dyn Dequeuer>) -> SupervisorDeps {
        SupervisorDeps {
            dequeuer,
            reconfigurer: None,
            outbound: None,
        }
    }
}

/// Where the supervisor's inputs come from.
pub struct Inputs {
    pub link: LinkMonitor,
    pub commands: mpsc::Receiver<Command>,
    pub reloads: mpsc::Receiver<ReloadRequest>,
    /// From the inbound sessions ([`crate::smtp_server::SessionContext::arrivals`]).
    pub arrivals: ArrivalReceiver,
}

/// Where its results go.
pub struct Outputs {
    pub status: watch::Sender<Status>,
    pub events: EventSender,
    /// Turned true when the supervisor stops, so the listeners stop too.
    pub shutdown: watch::Sender<bool>,
}

/// One thing for the run loop to do.
enum Step {
    Input(Input),
    Reload(ReloadRequest),
}

/// Drives a [`Machine`] until Shutdown (or until every command sender is gone); then turns
/// `shutdown` true.
pub async fn run(mut config: Config, deps: SupervisorDeps, inputs: Inputs, outputs: Outputs) {
    let Inputs {
        mut link,
        mut commands,
        mut reloads,
        mut arrivals,
    } = inputs;
    let Outputs {
        status,
        events,
        shutdown,
    } = outputs;
    let mut machine = Machine::new(&config, Settings::from_config(&config));
    // Each job answers with its own Input::Finished, so nothing maps tasks to servers.
    let mut jobs: JoinSet<Input> = JoinSet::new();
    let mut link_open = true;
    let mut reloads_open = true;
    let mut arrivals_open = true;
    super::status::publish(&status, machine.status(Now::real()));
    loop {
        let deadline = machine.next_deadline();
        let step = tokio::select! {
            change = link.next(), if link_open => match change {
                Some(change) => Step::Input(Input::Link(change)),
                None => {
                    link_open = false;
                    continue;
                }
            },
            command = commands.recv() => match command {
                Some(Command::FetchNow) => Step::Input(Input::FetchNow),
                Some(Command::Pause) => Step::Input(Input::Pause),
                Some(Command::Resume) => Step::Input(Input::Resume),
                Some(Command::Reload(config)) => Step::Reload(ReloadRequest {
                    config,
                    secrets: None,
                    reply: None,
                }),
                Some(Command::Outbound(action)) => {
                    let message = match &deps.outbound {
                        Some(queue) if queue.send(action).is_ok() => None,
                        Some(_) => Some("the outbound queue has stopped"),
                        None => Some("there is no [outbound] section, so there is no outbound queue"),
                    };
                    if let Some(message) = message {
                        let _ = events.send(Event::OutboundCommandDone { message: message.into() });
                    }
                    continue;
                }
                Some(Command::Shutdown) | None => break,
            },
            request = reloads.recv(), if reloads_open => match request {
                Some(request) => Step::Reload(request),
                None => {
                    reloads_open = false;
                    continue;
                }
            },
            arrival = arrivals.recv(), if arrivals_open => match arrival {
                Some(arrival) => Step::Input(Input::Arrival(arrival)),
                None => {
                    arrivals_open = false;
                    continue;
                }
            },
            Some(done) = jobs.join_next(), if !jobs.is_empty() => match done {
                Ok(finished) => Step::Input(finished),
                // Only an abort ends a job without its Input, and only the shutdown aborts.
                Err(e) => {
                    tracing::error!("a dequeue task ended unexpectedly: {e}");
                    continue;
                }
            },
            _ = sleep_until_opt(deadline) => Step::Input(Input::Tick),
        };
        let mut reply = None;
        let actions = match step {
            Step::Input(input) => machine.handle(input, Now::real()),
            Step::Reload(request) => {
                let (result, actions) = apply_reload(
                    &mut config,
                    *request.config,
                    request.secrets,
                    &mut machine,
                    &mut link,
                    &deps,
                    &events,
                )
                .await;
                if result.is_ok() {
                    link_open = true;
                }
                reply = Some((request.reply, result));
                actions
            }
        };
        for action in actions {
            match action {
                Action::Dequeue {
                    server,
                    label,
                    entry,
                    domains,
                } => {
                    let job = AssertUnwindSafe(deps.dequeuer.dequeue(entry, domains));
                    jobs.spawn(async move {
                        let outcomes = job.catch_unwind().await.unwrap_or_else(|_| {
                            tracing::error!("the dequeue from {label} failed (a bug: it panicked)");
                            Vec::new()
                        });
                        Input::Finished {
                            server,
                            label,
                            outcomes,
                        }
                    });
                }
                Action::Emit(event) => {
                    let _ = events.send(event);
                }
            }
        }
        super::status::publish(&status, machine.status(Now::real()));
        // After the status, so whoever waited for the reload sees the new state.
        if let Some((Some(tx), result)) = reply {
            let _ = tx.send(result);
        }
    }
    jobs.abort_all();
    let _ = shutdown.send(true);
}

/// Checks `new`, lets the reconfigurer switch the listener and dequeuer (the part that can
/// fail), then switches the link monitor and the machine. On error nothing changed.
async fn apply_reload(
    config: &mut Config,
    new: Config,
    secrets: Option<Arc<dyn SecretStore>>,
    machine: &mut Machine,
    link: &mut LinkMonitor,
    deps: &SupervisorDeps,
    events: &EventSender,
) -> (Result<Reloaded, ReloadError>, Vec<Action>) {
    let prepared = async {
        let new = reload::validate(&new)?;
        let listening = match &deps.reconfigurer {
            Some(r) => r.apply(&new, secrets).await?,
            None => Vec::new(),
        };
        Ok::<_, ReloadError>((new, listening))
    };
    let (new, listening) = match prepared.await {
        Ok(ready) => ready,
        Err(e) => {
            let message = reload::not_reloaded(&e);
            tracing::error!("{message}");
            let _ = events.send(Event::Warning { message, fix: None });
            return (Err(e), Vec::new());
        }
    };
    let changes = reload::changes(config, &new);
    let probe = MonitorSettings::from_config(&new);
    if MonitorSettings::from_config(config) != probe {
        link.retarget(probe);
    }
    let actions = machine.reconfigure(&new, Settings::from_config(&new), Instant::now());
    *config = new;
    if changes.is_empty() {
        tracing::info!("configuration reloaded: nothing changed");
    } else {
        tracing::info!("configuration reloaded: {}", changes.join("; "));
    }
    let _ = events.send(Event::ConfigReloaded {
        changes: changes.clone(),
    });
    (Ok(Reloaded { changes, listening }), actions)
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures_util::future::BoxFuture;
    use tokio::sync::broadcast;

    use super::*;
    use crate::config::QueueServer;
    use crate::events::Arrival;
    use crate::link::LinkState;
    use crate::outcome::{Disposition, Outcome};
    use crate::supervisor::transcript::{config, outcome};

    /// A dequeuer that records its calls and answers what the test scripts; `gate` holds every
    /// dequeue until the test opens it.
    struct FakeDequeuer {
        calls: Mutex<Vec<(String, Vec<String>)>>,
        answer: Mutex<(u16, Disposition)>,
        gate: tokio::sync::Semaphore,
    }

    impl Dequeuer for Arc<FakeDequeuer> {
        fn dequeue(
            &self,
            server: QueueServer,
            domains: Vec<String>,
        ) -> BoxFuture<'static, Vec<Outcome>> {
            let me = self.clone();
            Box::pin(async move {
                me.calls
                    .lock()
                    .expect("not poisoned")
                    .push((server.host.clone(), domains.clone()));
                let _permit = me.gate.acquire().await.expect("gate open");
                let (code, disposition) = *me.answer.lock().expect("not poisoned");
                if code == 0 {
                    panic!("the script says: panic");
                }
                domains
                    .iter()
                    .map(|d| outcome(&server.host, d, code, disposition))
                    .collect()
            })
        }
    }

    struct Engine {
        link: crate::link::ManualLink,
        commands: mpsc::Sender<Command>,
        reloads: mpsc::Sender<ReloadRequest>,
        arrivals: crate::events::ArrivalSender,
        broadcast: EventSender,
        status: watch::Receiver<Status>,
        events: broadcast::Receiver<Event>,
        fake: Arc<FakeDequeuer>,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(answer: (u16, Disposition), open: bool) -> Engine {
        let fake = Arc::new(FakeDequeuer {
            calls: Mutex::new(Vec::new()),
            answer: Mutex::new(answer),
            gate: tokio::sync::Semaphore::new(if open { 1000 } else { 0 }),
        });
        let (link, monitor) = LinkMonitor::manual();
        let (commands, command_rx) = mpsc::channel(8);
        let (reloads, reload_rx) = mpsc::channel(2);
        let (arrivals, arrival_rx) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(Status::default());
        let (events_tx, events) = crate::events::channel();
        let (shutdown, _) = watch::channel(false);
        let task = tokio::spawn(run(
            config(&["a.test"]),
            SupervisorDeps::new(Arc::new(fake.clone())),
            Inputs {
                link: monitor,
                commands: command_rx,
                reloads: reload_rx,
                arrivals: arrival_rx,
            },
            Outputs {
                status: status_tx,
                events: events_tx.clone(),
                shutdown,
            },
        ));
        Engine {
            link,
            commands,
            reloads,
            arrivals,
            broadcast: events_tx,
            status,
            events,
            fake,
            task,
        }
    }

    impl Engine {
        async fn stop(self) {
            self.commands
                .send(Command::Shutdown)
                .await
                .expect("running");
            self.task.await.expect("clean stop");
        }

        fn calls(&self) -> Vec<String> {
            let calls = self.fake.calls.lock().expect("not poisoned");
            calls.iter().map(|(host, _)| host.clone()).collect()
        }
    }

    async fn next_matching(
        events: &mut broadcast::Receiver<Event>,
        want: impl Fn(&Event) -> bool,
    ) -> Event {
        loop {
            let event = events.recv().await.expect("event stream open");
            if want(&event) {
                return event;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runner_dequeues_on_link_up_and_joins_fetch_now() {
        let mut e = start((250, Disposition::Released), false);

        e.link.up().await;
        next_matching(&mut e.events, |ev| matches!(ev, Event::FetchStarted { .. })).await;
        e.commands.send(Command::FetchNow).await.expect("running");
        // Commands are handled in order: once Paused is out, FetchNow met the running dequeue.
        e.commands.send(Command::Pause).await.expect("running");
        next_matching(&mut e.events, |ev| matches!(ev, Event::Paused)).await;
        assert!(e.status.borrow().fetching);
        e.fake.gate.add_permits(1000);
        next_matching(&mut e.events, |ev| {
            matches!(ev, Event::FetchFinished { .. })
        })
        .await;

        assert_eq!(e.calls().len(), 1);
        e.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn runner_retries_with_growing_delays_on_the_paused_clock() {
        let mut e = start((458, Disposition::Retry), true);

        e.link.up().await;
        let mut seen = Vec::new();
        for _ in 0..3 {
            if let Event::RetryScheduled {
                attempt,
                in_seconds,
                ..
            } = next_matching(&mut e.events, |ev| {
                matches!(ev, Event::RetryScheduled { .. })
            })
            .await
            {
                seen.push((attempt, in_seconds));
            }
        }

        assert_eq!(
            seen.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(seen[0].1 < seen[1].1 && seen[1].1 < seen[2].1, "{seen:?}");
        assert_eq!(e.calls().len(), 3);
        assert_eq!(e.status.borrow().servers[0].attempt, 3);
        e.stop().await;
    }

    async fn reload(e: &Engine, config: Config) -> Result<Reloaded, ReloadError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        e.reloads
            .send(ReloadRequest {
                config: Box::new(config),
                secrets: None,
                reply: Some(reply),
            })
            .await
            .expect("running");
        answer.await.expect("a reply")
    }

    fn started(event: &Event) -> Option<String> {
        match event {
            Event::FetchStarted { server, .. } => Some(server.clone()),
            _ => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn runner_reload_picks_up_a_new_queue_server_and_a_removed_ones_dequeue_finishes() {
        let mut e = start((250, Disposition::Released), false);
        e.link.up().await;
        next_matching(&mut e.events, |ev| started(ev).is_some()).await;

        let reloaded = reload(&e, config(&["b.test"])).await.expect("reloaded");
        let after_reload = next_matching(&mut e.events, |ev| started(ev).is_some()).await;
        let servers: Vec<_> = e
            .status
            .borrow()
            .servers
            .iter()
            .map(|s| s.server.clone())
            .collect();
        e.fake.gate.add_permits(1000);
        let mut finished = Vec::new();
        while finished.len() < 2 {
            if let Event::FetchFinished { server, .. } = next_matching(&mut e.events, |ev| {
                matches!(ev, Event::FetchFinished { .. })
            })
            .await
            {
                finished.push(server);
            }
        }
        e.status.wait_for(|s| !s.fetching).await.expect("status");

        assert_eq!(
            reloaded.changes,
            vec![
                "queue servers added: b.test:25".to_string(),
                "queue servers removed: a.test:25".to_string()
            ]
        );
        assert_eq!(started(&after_reload).as_deref(), Some("b.test:25"));
        assert_eq!(servers, vec!["b.test:25".to_string()]);
        finished.sort();
        assert_eq!(finished, vec!["a.test:25", "b.test:25"]);
        assert_eq!(e.status.borrow().servers[0].last_outcomes.len(), 2);
        assert_eq!(e.calls(), vec!["a.test", "b.test"]);
        e.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn runner_refuses_an_invalid_reload_and_keeps_the_old_configuration() {
        let mut e = start((250, Disposition::Released), true);
        let mut bad = config(&["b.test"]);
        bad.domains.clear();

        let direct = reload(&e, bad.clone()).await;
        e.commands
            .send(Command::Reload(Box::new(bad)))
            .await
            .expect("running");
        let warning = next_matching(&mut e.events, |ev| matches!(ev, Event::Warning { .. })).await;
        e.commands.send(Command::FetchNow).await.expect("running");
        let fetched = next_matching(&mut e.events, |ev| started(ev).is_some()).await;

        let Err(ReloadError::Invalid(error)) = direct else {
            panic!("not refused as invalid: {direct:?}");
        };
        assert!(error.to_string().contains("domains"), "{error}");
        let Event::Warning { message, .. } = warning else {
            unreachable!()
        };
        assert!(message.contains("not reloaded"), "{message}");
        assert_eq!(started(&fetched).as_deref(), Some("a.test:25"));
        e.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn runner_ignores_link_edges_while_paused() {
        let mut e = start((250, Disposition::Released), true);
        e.commands.send(Command::Pause).await.expect("running");
        let paused = next_matching(&mut e.events, |ev| matches!(ev, Event::Paused)).await;
        e.link.up().await;
        e.status
            .wait_for(|s| s.link == LinkState::Up)
            .await
            .expect("status");

        assert_eq!(paused, Event::Paused);
        assert!(e.calls().is_empty());
        assert!(e.status.borrow().paused);
        e.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn runner_counts_every_arrival_even_when_the_event_broadcast_lags() {
        let mut e = start((250, Disposition::Released), true);
        e.link.up().await;
        next_matching(&mut e.events, |ev| {
            matches!(ev, Event::FetchFinished { .. })
        })
        .await;

        // Each message also goes out on the broadcast, far more than it holds, and nobody
        // reads it meanwhile: it lags, the arrival channel does not.
        let messages = 3000;
        e.arrivals.send(Arrival::SessionStarted).expect("running");
        for _ in 0..messages {
            e.arrivals.send(Arrival::MessageReceived).expect("running");
            let _ = e.broadcast.send(Event::Resumed);
        }
        e.arrivals.send(Arrival::SessionEnded).expect("running");
        e.status
            .wait_for(|s| s.messages_received == messages)
            .await
            .expect("status");
        let complete = loop {
            match e.events.recv().await {
                Ok(ev @ Event::DequeueComplete { .. }) => break ev,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("engine gone"),
            }
        };

        assert_eq!(
            complete,
            Event::DequeueComplete {
                server: Some("a.test:25".into()),
                messages
            }
        );
        e.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn runner_reports_a_panicking_dequeue_as_finished_and_keeps_running() {
        let mut e = start((0, Disposition::Released), true);

        e.link.up().await;
        let finished = next_matching(&mut e.events, |ev| {
            matches!(ev, Event::FetchFinished { .. })
        })
        .await;
        e.status.wait_for(|s| !s.fetching).await.expect("status");

        assert_eq!(
            finished,
            Event::FetchFinished {
                server: "a.test:25".into(),
                outcomes: Vec::new()
            }
        );
        e.stop().await;
    }
}
