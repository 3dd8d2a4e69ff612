//! The one place that decides when to dequeue.
//!
//! [`Machine`] is a state machine without I/O: inputs are link edges, commands, finished
//! dequeues, inbound sessions and the passing of time; outputs are [`Action`]s (start a dequeue,
//! send an event, run the link-up hook). [`run`] feeds it from the link monitor, the command
//! channel, the engine's own event stream and a timer, and carries out its actions. The rules:
//!
//! - An Up edge runs the link-up hook, then dequeues every server (servers in parallel, the
//!   domains of one server in order). `refetch_every` repeats that while up.
//! - Single flight: a trigger for a server whose dequeue runs joins it; never two at once.
//! - Flap protection: automatic triggers (edges, timers) within `flap_holdoff` of the last start
//!   are deferred to the end of the hold-off, so a bouncing link costs a few dequeues.
//! - Temporary failures (4xx, 458, timeouts, connection errors) are retried for the failed
//!   domains only, with exponential backoff and jitter, reset on success. Permanent ones (5xx,
//!   459, TLS, login) are not retried: a `FetchFailed` event carries the fix.
//! - After an ETRN is accepted, a watchdog waits `connect_back_timeout` for the server to
//!   connect back; when inbound sessions stop for `quiet_period`, `DequeueComplete` reports the
//!   number of messages.
//! - Pause stops the automatic triggers (FetchNow still works); Resume catches up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::api::{Command, ServerStatus, Status};
use crate::config::{Config, Protocol, QueueServer};
use crate::dequeue::reply::{Disposition, Outcome};
use crate::dequeue::{self, DequeueContext};
use crate::events::{Event, EventSender};
use crate::link::{LinkChange, LinkMonitor, LinkState};

/// Timing rules of the supervisor.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub refetch_every: Duration,
    pub connect_back_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// ±fraction applied to each backoff delay.
    pub jitter: f64,
    pub flap_holdoff: Duration,
    pub quiet_period: Duration,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            refetch_every: config.link.refetch_every,
            connect_back_timeout: config.link.connect_back_timeout,
            backoff_initial: Duration::from_secs(30),
            backoff_max: Duration::from_secs(15 * 60),
            jitter: 0.2,
            flap_holdoff: Duration::from_secs(10),
            quiet_period: Duration::from_secs(5),
        }
    }

    /// The delay before retry number `attempt` (1-based), before jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.backoff_initial
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// Runs a dequeue; the real one is [`DequeueContext`], tests script their own.
pub trait Dequeuer: Send + Sync + 'static {
    fn dequeue(
        &self,
        server: QueueServer,
        domains: Vec<String>,
    ) -> BoxFuture<'static, Vec<Outcome>>;
}

impl Dequeuer for DequeueContext {
    fn dequeue(
        &self,
        server: QueueServer,
        domains: Vec<String>,
    ) -> BoxFuture<'static, Vec<Outcome>> {
        let ctx = self.clone();
        Box::pin(async move { dequeue::dequeue(&server, &domains, &ctx).await })
    }
}

/// What the supervisor needs besides the configuration.
#[derive(Clone)]
pub struct SupervisorDeps {
    pub dequeuer: Arc<dyn Dequeuer>,
    /// Runs on every Up edge before the dequeues start. The place to rebuild the DNS resolver
    /// (and flush the outbound spool) once those exist as shared services.
    pub on_link_up: Arc<dyn Fn() + Send + Sync>,
}

impl SupervisorDeps {
    pub fn new(dequeuer: Arc<dyn Dequeuer>) -> SupervisorDeps {
        SupervisorDeps {
            dequeuer,
            on_link_up: Arc::new(|| {}),
        }
    }
}

/// Something that happened, fed to [`Machine::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Link(LinkChange),
    FetchNow,
    Pause,
    Resume,
    /// The dequeue of server number `server` ended.
    Finished {
        server: usize,
        outcomes: Vec<Outcome>,
    },
    InboundStarted,
    MessageReceived,
    InboundEnded,
    /// Time passed: whatever was due at `now` is done.
    Tick,
}

/// What the machine wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Dequeue {
        server: usize,
        domains: Vec<String>,
    },
    Emit(Event),
    /// Run the link-up hook.
    LinkUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// Link edge, refetch timer, Resume: subject to flap protection.
    Auto,
    /// FetchNow: the user asked.
    Manual,
    /// A backoff timer for the domains that failed.
    Retry,
}

#[derive(Debug, Clone, Default)]
struct ServerState {
    label: String,
    protocol: Option<Protocol>,
    in_flight: bool,
    last_started: Option<Instant>,
    deferred_at: Option<Instant>,
    retry_at: Option<Instant>,
    retry_domains: Vec<String>,
    attempt: u32,
    connect_back_at: Option<Instant>,
    /// A ConnectBackMissing was raised and no inbound session came since: do not repeat it.
    warned: bool,
    last_outcomes: Vec<Outcome>,
    last_at: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Burst {
    server: Option<String>,
    messages: u64,
    quiet_at: Option<Instant>,
}

/// The supervisor's state; see the module documentation for the rules.
pub struct Machine {
    servers: Vec<QueueServer>,
    domains: Vec<String>,
    settings: Settings,
    link: LinkState,
    link_since: Option<String>,
    paused: bool,
    per: Vec<ServerState>,
    next_refetch: Option<Instant>,
    inbound_active: u32,
    burst: Option<Burst>,
    messages_received: u64,
}

impl Machine {
    pub fn new(config: &Config, settings: Settings) -> Machine {
        Machine {
            per: config
                .queue_servers
                .iter()
                .map(|s| ServerState {
                    label: dequeue::server_label(s),
                    protocol: Some(s.protocol),
                    ..ServerState::default()
                })
                .collect(),
            servers: config.queue_servers.clone(),
            domains: config.domains.clone(),
            settings,
            link: LinkState::Unknown,
            link_since: None,
            paused: false,
            next_refetch: None,
            inbound_active: 0,
            burst: None,
            messages_received: 0,
        }
    }

    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Link(change) => self.on_link(change, now, &mut out),
            Input::FetchNow => {
                for i in 0..self.per.len() {
                    self.trigger(i, None, Trigger::Manual, now, &mut out);
                }
            }
            Input::Pause => {
                if !self.paused {
                    self.paused = true;
                    out.push(Action::Emit(Event::Paused));
                }
            }
            Input::Resume => {
                if self.paused {
                    self.paused = false;
                    out.push(Action::Emit(Event::Resumed));
                    if self.link == LinkState::Up {
                        self.trigger_all(Trigger::Auto, now, &mut out);
                    }
                }
            }
            Input::Finished { server, outcomes } => {
                self.on_finished(server, outcomes, now, &mut out)
            }
            Input::InboundStarted => {
                self.inbound_active += 1;
                let waiting = self
                    .per
                    .iter()
                    .find(|s| s.connect_back_at.is_some())
                    .map(|s| s.label.clone());
                let burst = self.burst.get_or_insert_with(|| Burst {
                    server: waiting,
                    ..Burst::default()
                });
                burst.quiet_at = None;
                for s in &mut self.per {
                    s.connect_back_at = None;
                    s.warned = false;
                }
            }
            Input::MessageReceived => {
                self.messages_received += 1;
                self.burst.get_or_insert_with(Burst::default).messages += 1;
            }
            Input::InboundEnded => {
                self.inbound_active = self.inbound_active.saturating_sub(1);
                if self.inbound_active == 0
                    && let Some(burst) = &mut self.burst
                {
                    burst.quiet_at = Some(now + self.settings.quiet_period);
                }
            }
            Input::Tick => {}
        }
        self.on_tick(now, &mut out);
        out
    }

    /// The earliest moment something is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let per = self
            .per
            .iter()
            .flat_map(|s| [s.deferred_at, s.retry_at, s.connect_back_at]);
        per.chain([
            self.next_refetch,
            self.burst.as_ref().and_then(|b| b.quiet_at),
        ])
        .flatten()
        .min()
    }

    pub fn status(&self, now: Instant) -> Status {
        let wall = |at: Instant| {
            let ahead =
                chrono::Duration::from_std(at.saturating_duration_since(now)).unwrap_or_default();
            (chrono::Local::now() + ahead).to_rfc3339()
        };
        let last = self.per.iter().filter_map(|s| s.last_at.clone()).max();
        Status {
            paused: self.paused,
            fetching: self.per.iter().any(|s| s.in_flight),
            messages_received: self.messages_received,
            last_fetch: self
                .per
                .iter()
                .flat_map(|s| s.last_outcomes.iter().cloned())
                .collect(),
            last_fetch_at: last,
            link: self.link,
            link_since: self.link_since.clone(),
            servers: self
                .per
                .iter()
                .map(|s| ServerStatus {
                    server: s.label.clone(),
                    fetching: s.in_flight,
                    last_outcomes: s.last_outcomes.clone(),
                    last_at: s.last_at.clone(),
                    attempt: s.attempt,
                    next_retry_at: s.retry_at.map(wall),
                    awaiting_connect_back: s.connect_back_at.is_some(),
                })
                .collect(),
        }
    }

    fn on_link(&mut self, change: LinkChange, now: Instant, out: &mut Vec<Action>) {
        let new = if change.up {
            LinkState::Up
        } else {
            LinkState::Down
        };
        if new == self.link {
            return;
        }
        self.link = new;
        self.link_since = Some(chrono::Local::now().to_rfc3339());
        tracing::info!(
            "link {}: {}",
            if change.up { "up" } else { "down" },
            change.reason
        );
        out.push(Action::Emit(Event::LinkChanged {
            up: change.up,
            reason: change.reason,
        }));
        if change.up {
            out.push(Action::LinkUp);
            if !self.paused {
                self.trigger_all(Trigger::Auto, now, out);
            }
            self.next_refetch = self.refetch_after(now);
        } else {
            // Nothing can come back or be fetched while down; the next Up edge fetches all.
            self.next_refetch = None;
            for s in &mut self.per {
                s.deferred_at = None;
                s.retry_at = None;
                s.connect_back_at = None;
            }
        }
    }

    fn refetch_after(&self, now: Instant) -> Option<Instant> {
        (!self.settings.refetch_every.is_zero()).then(|| now + self.settings.refetch_every)
    }

    fn trigger_all(&mut self, why: Trigger, now: Instant, out: &mut Vec<Action>) {
        for i in 0..self.per.len() {
            self.trigger(i, None, why, now, out);
        }
    }

    /// Starts a dequeue of `domains` (all when `None`) from server `i` unless one runs (join)
    /// or, for automatic triggers, one started within the flap hold-off (defer).
    fn trigger(
        &mut self,
        i: usize,
        domains: Option<Vec<String>>,
        why: Trigger,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let holdoff = self.settings.flap_holdoff;
        let Some(s) = self.per.get_mut(i) else {
            return;
        };
        if s.in_flight {
            tracing::debug!(server = %s.label, "a dequeue is running: joining it");
            return;
        }
        if why == Trigger::Auto
            && let Some(started) = s.last_started
            && now < started + holdoff
        {
            s.deferred_at.get_or_insert(started + holdoff);
            tracing::debug!(server = %s.label, "dequeued moments ago: deferring");
            return;
        }
        let full = domains.is_none();
        let domains = domains.unwrap_or_else(|| self.domains.clone());
        s.in_flight = true;
        s.last_started = Some(now);
        s.deferred_at = None;
        if full || why == Trigger::Retry {
            s.retry_at = None;
        }
        out.push(Action::Emit(Event::FetchStarted {
            server: s.label.clone(),
            protocol: self.servers[i].protocol,
            domains: domains.clone(),
        }));
        out.push(Action::Dequeue { server: i, domains });
    }

    fn on_finished(
        &mut self,
        i: usize,
        outcomes: Vec<Outcome>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let backoff = |attempt| self.settings.backoff(attempt);
        let jitter = self.settings.jitter;
        let wait = self.settings.connect_back_timeout;
        let link_up = self.link != LinkState::Down;
        let Some(s) = self.per.get_mut(i) else {
            return;
        };
        s.in_flight = false;
        s.last_at = Some(chrono::Local::now().to_rfc3339());
        out.push(Action::Emit(Event::FetchFinished {
            server: s.label.clone(),
            outcomes: outcomes.clone(),
        }));
        for o in outcomes
            .iter()
            .filter(|o| o.disposition == Disposition::Permanent)
        {
            tracing::error!("{}", o.summary());
            out.push(Action::Emit(Event::FetchFailed {
                server: s.label.clone(),
                domain: o.domain.clone(),
                code: o.code,
                text: o.text.clone(),
                meaning: o.meaning.clone(),
                fix: o.fix.clone(),
            }));
        }
        let retry: Vec<String> = outcomes
            .iter()
            .filter(|o| o.disposition == Disposition::Retry)
            .map(|o| o.domain.clone())
            .collect();
        if retry.is_empty() {
            s.attempt = 0;
            s.retry_at = None;
            s.retry_domains.clear();
        } else if link_up {
            s.attempt += 1;
            let delay = jittered(backoff(s.attempt), jitter);
            s.retry_at = Some(now + delay);
            s.retry_domains = retry.clone();
            out.push(Action::Emit(Event::RetryScheduled {
                server: s.label.clone(),
                attempt: s.attempt,
                in_seconds: delay.as_secs_f64().round() as u64,
                domains: retry,
            }));
        }
        let released = outcomes
            .iter()
            .any(|o| o.disposition == Disposition::Released);
        if released && needs_connect_back(s.protocol) && !wait.is_zero() && link_up {
            s.connect_back_at.get_or_insert(now + wait);
        }
        s.last_outcomes = outcomes;
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        let up = self.link == LinkState::Up;
        let auto_ok = up && !self.paused;
        if self.next_refetch.is_some_and(|at| at <= now) {
            self.next_refetch = self.refetch_after(now);
            if auto_ok {
                self.trigger_all(Trigger::Auto, now, out);
            }
        }
        for i in 0..self.per.len() {
            if self.per[i].deferred_at.is_some_and(|at| at <= now) {
                self.per[i].deferred_at = None;
                if auto_ok {
                    self.trigger(i, None, Trigger::Auto, now, out);
                }
            }
            if self.per[i].retry_at.is_some_and(|at| at <= now) {
                self.per[i].retry_at = None;
                let domains = std::mem::take(&mut self.per[i].retry_domains);
                if !self.paused && self.link != LinkState::Down {
                    self.trigger(i, Some(domains), Trigger::Retry, now, out);
                }
            }
            let s = &mut self.per[i];
            if s.connect_back_at.is_some_and(|at| at <= now) {
                s.connect_back_at = None;
                if !s.warned {
                    s.warned = true;
                    out.push(Action::Emit(connect_back_missing(
                        &s.label,
                        self.settings.connect_back_timeout,
                    )));
                }
            }
        }
        if self.inbound_active == 0
            && self
                .burst
                .as_ref()
                .and_then(|b| b.quiet_at)
                .is_some_and(|at| at <= now)
            && let Some(burst) = self.burst.take()
        {
            tracing::info!("dequeue complete: {} messages", burst.messages);
            out.push(Action::Emit(Event::DequeueComplete {
                server: burst.server,
                messages: burst.messages,
            }));
        }
    }
}

/// Whether the protocol delivers on a new inbound connection (ETRN). ATRN and TURN deliver on
/// the dequeue connection itself, so they need no watchdog.
fn needs_connect_back(protocol: Option<Protocol>) -> bool {
    matches!(protocol, Some(Protocol::Etrn))
}

fn connect_back_missing(server: &str, waited: Duration) -> Event {
    Event::ConnectBackMissing {
        server: server.to_string(),
        waited_seconds: waited.as_secs(),
        causes: vec![
            "no mail was waiting (some servers, e.g. Postfix, accept ETRN even when their queue is empty)".into(),
            "port 25 is not forwarded from the router to this machine (or a firewall blocks it)".into(),
            "the domain's MX record points elsewhere, so the queuing server delivers there".into(),
            "the server only queued the request and delivers later".into(),
        ],
        hint: "run `posternd check-mx` to see where the mail would go; if this office cannot \
               receive connections on port 25, use protocol = \"atrn\" (the mail comes back on \
               the same connection) if your ISP offers it"
            .into(),
    }
}

fn jittered(delay: Duration, jitter: f64) -> Duration {
    let factor = 1.0 + jitter * (fastrand::f64() * 2.0 - 1.0);
    delay.mul_f64(factor.max(0.0))
}

/// Drives a [`Machine`] until Shutdown (or until every command sender is gone); then turns
/// `shutdown` true so the listeners stop.
pub async fn run(
    config: Config,
    deps: SupervisorDeps,
    mut link: LinkMonitor,
    mut commands: mpsc::Receiver<Command>,
    status: watch::Sender<Status>,
    events: EventSender,
    shutdown: watch::Sender<bool>,
) {
    let mut machine = Machine::new(&config, Settings::from_config(&config));
    let mut received = events.subscribe();
    let mut jobs: JoinSet<Vec<Outcome>> = JoinSet::new();
    let mut job_server: HashMap<tokio::task::Id, usize> = HashMap::new();
    let mut link_open = true;
    status.send_replace(machine.status(Instant::now()));
    loop {
        let deadline = machine.next_deadline();
        let input = tokio::select! {
            change = link.next(), if link_open => match change {
                Some(change) => Input::Link(change),
                None => {
                    link_open = false;
                    continue;
                }
            },
            command = commands.recv() => match command {
                Some(Command::FetchNow) => Input::FetchNow,
                Some(Command::Pause) => Input::Pause,
                Some(Command::Resume) => Input::Resume,
                Some(Command::Shutdown) | None => break,
            },
            event = received.recv() => match event {
                Ok(Event::InboundSessionStarted { .. }) => Input::InboundStarted,
                Ok(Event::MessageReceived { .. }) => Input::MessageReceived,
                Ok(Event::InboundSessionEnded { .. }) => Input::InboundEnded,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("the supervisor missed {n} events");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => continue,
            },
            Some(done) = jobs.join_next_with_id(), if !jobs.is_empty() => match done {
                Ok((id, outcomes)) => Input::Finished {
                    server: job_server.remove(&id).unwrap_or(usize::MAX),
                    outcomes,
                },
                Err(e) => {
                    tracing::error!("a dequeue task failed: {e}");
                    Input::Finished {
                        server: job_server.remove(&e.id()).unwrap_or(usize::MAX),
                        outcomes: Vec::new(),
                    }
                }
            },
            _ = sleep_until_opt(deadline) => Input::Tick,
        };
        for action in machine.handle(input, Instant::now()) {
            match action {
                Action::Dequeue { server, domains } => {
                    let Some(entry) = config.queue_servers.get(server) else {
                        continue;
                    };
                    let job = deps.dequeuer.dequeue(entry.clone(), domains);
                    let handle = jobs.spawn(job);
                    job_server.insert(handle.id(), server);
                }
                Action::Emit(event) => {
                    let _ = events.send(event);
                }
                Action::LinkUp => (deps.on_link_up)(),
            }
        }
        status.send_replace(machine.status(Instant::now()));
    }
    jobs.abort_all();
    let _ = shutdown.send(true);
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
