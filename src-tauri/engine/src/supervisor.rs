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
//! - A reload ([`crate::reload`]) swaps the servers, domains and timers in place: a server that
//!   stays keeps its state (a running dequeue, retries), a removed one disappears (its running
//!   dequeue still finishes and is reported), a new one is dequeued at once while the link is up.

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
use crate::link::{LinkChange, LinkMonitor, LinkState, MonitorSettings};
use crate::reload::{self, Reconfigurer, ReloadError, ReloadRequest, Reloaded};

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
    /// The inbound listener and dequeuer context a reload changes; `None` when the supervisor
    /// runs alone (tests), and a reload then changes only the supervisor.
    pub reconfigurer: Option<Arc<Reconfigurer>>,
}

impl SupervisorDeps {
    pub fn new(dequeuer: Arc<dyn Dequeuer>) -> SupervisorDeps {
        SupervisorDeps {
            dequeuer,
            on_link_up: Arc::new(|| {}),
            reconfigurer: None,
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
    /// The dequeue of a server that a reload removed ended (`server`: its label).
    FinishedRemoved {
        server: String,
        outcomes: Vec<Outcome>,
    },
    InboundStarted,
    MessageReceived,
    /// A message was refused after DATA: the sender did connect back.
    MessageRefused,
    InboundEnded,
    /// A message arrived over an ATRN/TURN turnaround: it counts, but proves nothing about an
    /// ETRN server connecting back.
    TurnaroundMessage,
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
    /// Stable across reloads (the index is not).
    id: u64,
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
    next_id: u64,
}

impl Machine {
    pub fn new(config: &Config, settings: Settings) -> Machine {
        Machine {
            per: config
                .queue_servers
                .iter()
                .zip(0..)
                .map(|(s, id)| ServerState {
                    id,
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
            next_id: config.queue_servers.len() as u64,
        }
    }

    /// Takes a reloaded configuration (already validated). Servers are matched by `host:port`:
    /// one that stays keeps its state, a removed one disappears, a new one starts fresh and,
    /// while the link is up and not paused, is dequeued at once; so are domains added to the
    /// servers that stay. A changed `refetch_every` restarts the refetch schedule from now.
    pub fn reconfigure(
        &mut self,
        config: &Config,
        settings: Settings,
        now: Instant,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let old_domains = std::mem::replace(&mut self.domains, config.domains.clone());
        let added_domains: Vec<String> = self
            .domains
            .iter()
            .filter(|d| !old_domains.contains(d))
            .cloned()
            .collect();
        let mut old: Vec<Option<ServerState>> = std::mem::take(&mut self.per)
            .into_iter()
            .map(Some)
            .collect();
        let mut fresh = Vec::new();
        for (i, server) in config.queue_servers.iter().enumerate() {
            let label = dequeue::server_label(server);
            let kept = old
                .iter_mut()
                .find(|s| s.as_ref().is_some_and(|s| s.label == label))
                .and_then(Option::take);
            let state = match kept {
                Some(mut s) => {
                    s.protocol = Some(server.protocol);
                    s.retry_domains.retain(|d| self.domains.contains(d));
                    if s.retry_domains.is_empty() {
                        s.retry_at = None;
                    }
                    s
                }
                None => {
                    fresh.push(i);
                    self.next_id += 1;
                    ServerState {
                        id: self.next_id,
                        label,
                        protocol: Some(server.protocol),
                        ..ServerState::default()
                    }
                }
            };
            self.per.push(state);
        }
        self.servers = config.queue_servers.clone();
        let refetch_changed = self.settings.refetch_every != settings.refetch_every;
        self.settings = settings;
        if refetch_changed && self.link == LinkState::Up {
            self.next_refetch = self.refetch_after(now);
        }
        if self.link == LinkState::Up && !self.paused {
            for i in 0..self.per.len() {
                if fresh.contains(&i) {
                    self.trigger(i, None, Trigger::Auto, now, &mut out);
                } else if !added_domains.is_empty() {
                    self.trigger(i, Some(added_domains.clone()), Trigger::Auto, now, &mut out);
                }
            }
        }
        out
    }

    /// The entry of server number `i` and its stable id.
    pub fn server(&self, i: usize) -> Option<(&QueueServer, u64)> {
        Some((self.servers.get(i)?, self.per.get(i)?.id))
    }

    /// The current number of the server with stable id `id` (`None`: a reload removed it).
    pub fn server_index(&self, id: u64) -> Option<usize> {
        self.per.iter().position(|s| s.id == id)
    }

    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let input_is_received = input == Input::MessageReceived;
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
            Input::FinishedRemoved { server, outcomes } => {
                out.push(Action::Emit(Event::FetchFinished { server, outcomes }));
            }
            Input::InboundStarted => {
                self.inbound_active += 1;
                if let Some(burst) = &mut self.burst {
                    burst.quiet_at = None;
                }
            }
            Input::MessageReceived | Input::MessageRefused => {
                // A message (even a refused one) proves the server connected back; a bare
                // connection does not (port scanners, health checks).
                let waiting = self
                    .per
                    .iter()
                    .find(|s| s.connect_back_at.is_some())
                    .map(|s| s.label.clone());
                for s in &mut self.per {
                    s.connect_back_at = None;
                    s.warned = false;
                }
                let quiet = (self.inbound_active == 0).then(|| now + self.settings.quiet_period);
                let burst = self.burst.get_or_insert(Burst {
                    server: waiting,
                    messages: 0,
                    quiet_at: quiet,
                });
                if input_is_received {
                    self.messages_received += 1;
                    burst.messages += 1;
                }
            }
            Input::TurnaroundMessage => self.messages_received += 1,
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
        // After any RetryScheduled, so a reader that sees the failure has seen the retry too.
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

/// One thing for the run loop to do.
enum Step {
    Input(Input),
    Reload(ReloadRequest),
}

/// Drives a [`Machine`] until Shutdown (or until every command sender is gone); then turns
/// `shutdown` true so the listeners stop.
#[allow(clippy::too_many_arguments)] // the engine's wiring, in one place
pub async fn run(
    mut config: Config,
    deps: SupervisorDeps,
    mut link: LinkMonitor,
    mut commands: mpsc::Receiver<Command>,
    mut reloads: mpsc::Receiver<ReloadRequest>,
    status: watch::Sender<Status>,
    events: EventSender,
    shutdown: watch::Sender<bool>,
) {
    let mut machine = Machine::new(&config, Settings::from_config(&config));
    let mut received = events.subscribe();
    let mut jobs: JoinSet<Vec<Outcome>> = JoinSet::new();
    // Task -> the server's stable id and label (a reload may renumber or remove it meanwhile).
    let mut job_server: HashMap<tokio::task::Id, (u64, String)> = HashMap::new();
    let mut link_open = true;
    let mut reloads_open = true;
    let finished = |machine: &Machine, job: Option<(u64, String)>, outcomes| match job {
        Some((id, label)) => match machine.server_index(id) {
            Some(server) => Input::Finished { server, outcomes },
            None => Input::FinishedRemoved {
                server: label,
                outcomes,
            },
        },
        None => Input::Finished {
            server: usize::MAX,
            outcomes,
        },
    };
    status.send_replace(machine.status(Instant::now()));
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
                Some(Command::Shutdown) | None => break,
            },
            request = reloads.recv(), if reloads_open => match request {
                Some(request) => Step::Reload(request),
                None => {
                    reloads_open = false;
                    continue;
                }
            },
            event = received.recv() => match event {
                // Only the listener's sessions can be an ETRN server connecting back; ATRN/TURN
                // deliver on the dequeue connection itself.
                Ok(Event::InboundSessionStarted { via, .. }) if via == "inbound" => Step::Input(Input::InboundStarted),
                Ok(Event::MessageReceived { via, .. }) if via == "inbound" => Step::Input(Input::MessageReceived),
                Ok(Event::MessageReceived { .. }) => Step::Input(Input::TurnaroundMessage),
                Ok(Event::MessageRefused { via, .. }) if via == "inbound" => Step::Input(Input::MessageRefused),
                Ok(Event::InboundSessionEnded { via, .. }) if via == "inbound" => Step::Input(Input::InboundEnded),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("the supervisor missed {n} events");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => continue,
            },
            Some(done) = jobs.join_next_with_id(), if !jobs.is_empty() => match done {
                Ok((id, outcomes)) => Step::Input(finished(&machine, job_server.remove(&id), outcomes)),
                Err(e) => {
                    tracing::error!("a dequeue task failed: {e}");
                    Step::Input(finished(&machine, job_server.remove(&e.id()), Vec::new()))
                }
            },
            _ = sleep_until_opt(deadline) => Step::Input(Input::Tick),
        };
        let mut reply = None;
        let actions = match step {
            Step::Input(input) => machine.handle(input, Instant::now()),
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
                Action::Dequeue { server, domains } => {
                    let Some((entry, id)) = machine.server(server) else {
                        continue;
                    };
                    let label = dequeue::server_label(entry);
                    let job = deps.dequeuer.dequeue(entry.clone(), domains);
                    let handle = jobs.spawn(job);
                    job_server.insert(handle.id(), (id, label));
                }
                Action::Emit(event) => {
                    let _ = events.send(event);
                }
                Action::LinkUp => (deps.on_link_up)(),
            }
        }
        status.send_replace(machine.status(Instant::now()));
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
    secrets: Option<Arc<dyn crate::secrets::SecretStore>>,
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
            tracing::error!("the configuration was not reloaded: {e}");
            let _ = events.send(Event::Warning {
                message: format!("the configuration was not reloaded: {e}"),
                fix: None,
            });
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
    use std::path::PathBuf;
    use std::sync::Mutex;

    use super::*;
    use crate::config::{DeliverTarget, Dns, Inbound, Link, TlsMode};

    fn server(host: &str) -> QueueServer {
        QueueServer {
            tls: TlsMode::Off,
            ..QueueServer::new(host, Protocol::Etrn)
        }
    }

    fn config(hosts: &[&str]) -> Config {
        Config {
            domains: vec!["office.test".into(), "branch.test".into()],
            queue_servers: hosts.iter().map(|h| server(h)).collect(),
            inbound: Inbound {
                listen: vec!["127.0.0.1:0".parse().expect("address")],
                deliver: DeliverTarget::Maildir(PathBuf::from("/nonexistent/Maildir")),
                hostname: "office.test".into(),
                max_message_size: 1 << 20,
                max_connections: 4,
                idle_timeout: Duration::from_secs(60),
                max_connections_per_client: 4,
                max_junk_commands: 100,
                max_session_time: Duration::from_secs(3600),
                tls_cert: None,
                tls_key: None,
            },
            outbound: None,
            link: Link {
                probe: "auto".into(),
                refetch_every: Duration::from_secs(15 * 60),
                connect_back_timeout: Duration::from_secs(120),
            },
            dns: Dns::default(),
            desktop: Default::default(),
            state_dir: PathBuf::from("/nonexistent/state"),
        }
    }

    fn outcome(server: &str, domain: &str, code: u16, disposition: Disposition) -> Outcome {
        Outcome {
            server: format!("{server}:25"),
            domain: domain.into(),
            step: format!("ETRN {domain}"),
            code: Some(code),
            text: format!("{code} reply"),
            disposition,
            meaning: "meaning".into(),
            fix: (disposition == Disposition::Permanent).then(|| "the fix".to_string()),
            pending: None,
            received: None,
        }
    }

    fn both(server: &str, code: u16, disposition: Disposition) -> Vec<Outcome> {
        ["office.test", "branch.test"]
            .iter()
            .map(|d| outcome(server, d, code, disposition))
            .collect()
    }

    fn up() -> Input {
        Input::Link(LinkChange {
            up: true,
            reason: "test".into(),
        })
    }

    fn down() -> Input {
        Input::Link(LinkChange {
            up: false,
            reason: "test".into(),
        })
    }

    fn dequeues(actions: &[Action]) -> Vec<(usize, Vec<String>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Dequeue { server, domains } => Some((*server, domains.clone())),
                _ => None,
            })
            .collect()
    }

    fn events(actions: &[Action]) -> Vec<Event> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Emit(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    /// Runs the machine's clock forward to `until`, handling every deadline on the way.
    fn advance(m: &mut Machine, now: &mut Instant, until: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(at) = m.next_deadline().filter(|at| *at <= until) {
            *now = at.max(*now);
            out.extend(m.handle(Input::Tick, *now));
        }
        *now = until;
        out
    }

    fn advance_by(m: &mut Machine, now: &mut Instant, by: Duration) -> Vec<Action> {
        let until = *now + by;
        advance(m, now, until)
    }

    fn machine(hosts: &[&str]) -> (Machine, Instant) {
        let c = config(hosts);
        (Machine::new(&c, Settings::from_config(&c)), Instant::now())
    }

    #[test]
    fn an_up_edge_runs_the_hook_and_dequeues_every_server_for_all_domains() {
        let (mut m, t0) = machine(&["a.test", "b.test"]);

        let actions = m.handle(up(), t0);

        assert_eq!(
            events(&actions)[0],
            Event::LinkChanged {
                up: true,
                reason: "test".into()
            }
        );
        assert!(actions.contains(&Action::LinkUp));
        let all = vec!["office.test".to_string(), "branch.test".to_string()];
        assert_eq!(dequeues(&actions), vec![(0, all.clone()), (1, all)]);
        assert!(m.status(t0).fetching);
    }

    #[test]
    fn a_down_first_state_dequeues_nothing() {
        let (mut m, t0) = machine(&["a.test"]);

        let actions = m.handle(down(), t0);

        assert!(dequeues(&actions).is_empty());
        assert_eq!(m.status(t0).link, LinkState::Down);
    }

    #[test]
    fn fetch_now_or_a_new_edge_joins_a_running_dequeue() {
        let (mut m, t0) = machine(&["a.test"]);
        m.handle(up(), t0);

        let joined_fetch = m.handle(Input::FetchNow, t0 + Duration::from_secs(1));
        m.handle(down(), t0 + Duration::from_secs(2));
        let joined_edge = m.handle(up(), t0 + Duration::from_secs(30));

        assert!(dequeues(&joined_fetch).is_empty());
        assert!(dequeues(&joined_edge).is_empty());
    }

    #[test]
    fn a_flapping_link_causes_few_dequeues_and_never_two_at_once() {
        let (mut m, t0) = machine(&["a.test"]);
        let mut now = t0;
        let mut started = 0;
        let mut running = false;
        let mut actions = Vec::new();

        // 20 bounces in 10 s; each dequeue takes 300 ms.
        for i in 0..40u32 {
            let at = t0 + Duration::from_millis(250) * i;
            actions.extend(advance(&mut m, &mut now, at));
            if running && now >= t0 + Duration::from_millis(300) {
                actions.extend(m.handle(
                    Input::Finished {
                        server: 0,
                        outcomes: both("a.test", 250, Disposition::Released),
                    },
                    now,
                ));
                running = false;
            }
            actions.extend(m.handle(if i % 2 == 0 { up() } else { down() }, now));
            for _ in dequeues(&actions) {
                assert!(!running, "two dequeues at once");
                running = true;
                started += 1;
            }
            actions.clear();
        }
        // The link stays up afterwards.
        actions.extend(m.handle(up(), now));
        actions.extend(advance(&mut m, &mut now, t0 + Duration::from_secs(60)));
        started += dequeues(&actions).len();

        assert!((1..=3).contains(&started), "{started} dequeues");
    }

    #[test]
    fn an_edge_right_after_a_dequeue_is_deferred_not_dropped() {
        let (mut m, t0) = machine(&["a.test"]);
        let mut now = t0;
        m.handle(up(), now);
        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 250, Disposition::Released),
            },
            t0 + Duration::from_secs(1),
        );
        m.handle(down(), t0 + Duration::from_secs(2));

        let at_edge = m.handle(up(), t0 + Duration::from_secs(3));
        now = t0 + Duration::from_secs(3);
        let later = advance(&mut m, &mut now, t0 + Duration::from_secs(11));

        assert!(dequeues(&at_edge).is_empty());
        assert_eq!(dequeues(&later).len(), 1);
    }

    #[test]
    fn temporary_failures_retry_the_failed_domains_with_growing_delays() {
        let mut c = config(&["a.test"]);
        c.link.refetch_every = Duration::ZERO;
        let mut m = Machine::new(&c, Settings::from_config(&c));
        let t0 = Instant::now();
        let mut now = t0;
        m.handle(up(), now);
        let mut delays = Vec::new();

        for _ in 0..5 {
            let mut outcomes = vec![outcome("a.test", "office.test", 250, Disposition::Released)];
            outcomes.push(outcome("a.test", "branch.test", 458, Disposition::Retry));
            if !delays.is_empty() {
                outcomes.remove(0);
            }
            let finished = m.handle(
                Input::Finished {
                    server: 0,
                    outcomes,
                },
                now,
            );
            let Some(Event::RetryScheduled {
                attempt,
                in_seconds,
                domains,
                ..
            }) = events(&finished)
                .into_iter()
                .find(|e| matches!(e, Event::RetryScheduled { .. }))
            else {
                panic!("no retry scheduled: {finished:?}");
            };
            assert_eq!(attempt as usize, delays.len() + 1);
            assert_eq!(domains, vec!["branch.test".to_string()]);
            delays.push(in_seconds);
            let retry = advance_by(&mut m, &mut now, Duration::from_secs(in_seconds + 1));
            assert_eq!(dequeues(&retry), vec![(0, vec!["branch.test".to_string()])]);
        }

        for (i, d) in delays.iter().enumerate() {
            let base = 30u64 << i;
            assert!(
                (base * 8 / 10..=base * 12 / 10 + 1).contains(d),
                "attempt {}: {d} s",
                i + 1
            );
        }
    }

    #[test]
    fn backoff_doubles_from_30_seconds_to_15_minutes() {
        let c = config(&["a.test"]);
        let s = Settings::from_config(&c);

        let delays: Vec<u64> = (1..=8).map(|a| s.backoff(a).as_secs()).collect();

        assert_eq!(delays, vec![30, 60, 120, 240, 480, 900, 900, 900]);
    }

    #[test]
    fn a_success_resets_the_backoff() {
        let (mut m, t0) = machine(&["a.test"]);
        let mut now = t0;
        m.handle(up(), now);
        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 458, Disposition::Retry),
            },
            now,
        );
        advance(&mut m, &mut now, t0 + Duration::from_secs(40));

        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 250, Disposition::Released),
            },
            now,
        );

        let status = m.status(now);
        assert_eq!(status.servers[0].attempt, 0);
        assert_eq!(status.servers[0].next_retry_at, None);
    }

    #[test]
    fn permanent_failures_are_reported_with_the_fix_and_not_retried() {
        let (mut m, t0) = machine(&["a.test"]);
        let mut now = t0;
        m.handle(up(), now);

        let finished = m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 459, Disposition::Permanent),
            },
            now,
        );
        let later = advance(&mut m, &mut now, t0 + Duration::from_secs(14 * 60));

        let failed: Vec<_> = events(&finished)
            .into_iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::FetchFailed {
                        code: Some(459),
                        fix: Some(_),
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(failed.len(), 2);
        assert!(
            !events(&finished)
                .iter()
                .any(|e| matches!(e, Event::RetryScheduled { .. }))
        );
        assert!(dequeues(&later).is_empty());
    }

    #[test]
    fn refetch_every_repeats_the_dequeue_while_up_only() {
        let (mut m, t0) = machine(&["a.test"]);
        let mut now = t0;
        m.handle(up(), now);
        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 251, Disposition::NothingWaiting),
            },
            now,
        );

        let while_up = advance(&mut m, &mut now, t0 + Duration::from_secs(15 * 60 + 1));
        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 251, Disposition::NothingWaiting),
            },
            now,
        );
        m.handle(down(), now);
        let while_down = advance(&mut m, &mut now, t0 + Duration::from_secs(60 * 60));

        assert_eq!(dequeues(&while_up).len(), 1);
        assert!(dequeues(&while_down).is_empty());
    }

    #[test]
    fn no_connect_back_after_an_accepted_etrn_raises_the_warning_once() {
        let (mut m, t0) = machine(&["a.test"]);
        let mut now = t0;
        m.handle(up(), now);
        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 250, Disposition::Released),
            },
            now,
        );

        let first = advance(&mut m, &mut now, t0 + Duration::from_secs(121));
        m.handle(Input::FetchNow, now);
        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 250, Disposition::Released),
            },
            now,
        );
        let second = advance_by(&mut m, &mut now, Duration::from_secs(121));

        let warnings: Vec<_> = events(&first)
            .into_iter()
            .filter_map(|e| match e {
                Event::ConnectBackMissing {
                    server,
                    waited_seconds,
                    causes,
                    hint,
                } => Some((server, waited_seconds, causes.len(), hint)),
                _ => None,
            })
            .collect();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].0, "a.test:25");
        assert_eq!(warnings[0].1, 120);
        assert!(warnings[0].2 >= 3);
        assert!(warnings[0].3.contains("atrn"));
        assert!(events(&second).is_empty(), "{second:?}");
    }

    #[test]
    fn mail_over_an_atrn_turnaround_does_not_silence_the_etrn_watchdog() {
        let (mut m, t0) = machine(&["a.test"]);
        let mut now = t0;
        m.handle(up(), now);
        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 250, Disposition::Released),
            },
            now,
        );

        m.handle(Input::TurnaroundMessage, now + Duration::from_secs(1));
        let later = advance(&mut m, &mut now, t0 + Duration::from_secs(121));

        assert!(
            events(&later)
                .iter()
                .any(|e| matches!(e, Event::ConnectBackMissing { .. })),
            "{later:?}"
        );
        assert_eq!(m.messages_received, 1);
    }

    #[test]
    fn a_connect_back_cancels_the_watchdog_and_completion_counts_the_messages() {
        let (mut m, t0) = machine(&["a.test"]);
        let mut now = t0;
        m.handle(up(), now);
        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 250, Disposition::Released),
            },
            now,
        );

        now += Duration::from_millis(300);
        m.handle(Input::InboundStarted, now);
        m.handle(Input::MessageReceived, now);
        m.handle(Input::MessageReceived, now);
        m.handle(Input::InboundEnded, now);
        m.handle(Input::InboundStarted, now + Duration::from_secs(1));
        m.handle(Input::MessageReceived, now + Duration::from_secs(1));
        let mid = m.handle(Input::InboundEnded, now + Duration::from_secs(1));
        now += Duration::from_secs(1);
        let later = advance(&mut m, &mut now, t0 + Duration::from_secs(300));

        assert!(events(&mid).is_empty());
        assert_eq!(
            events(&later),
            vec![Event::DequeueComplete {
                server: Some("a.test:25".into()),
                messages: 3
            }]
        );
        assert_eq!(m.status(now).messages_received, 3);
    }

    #[test]
    fn a_connection_without_mail_is_not_a_connect_back() {
        let (mut m, t0) = machine(&["a.test"]);
        let mut now = t0;
        m.handle(up(), now);
        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 250, Disposition::Released),
            },
            now,
        );

        m.handle(Input::InboundStarted, now + Duration::from_secs(1));
        m.handle(Input::InboundEnded, now + Duration::from_secs(1));
        let later = advance_by(&mut m, &mut now, Duration::from_secs(300));

        let kinds: Vec<_> = events(&later)
            .into_iter()
            .map(|e| matches!(e, Event::ConnectBackMissing { .. }))
            .collect();
        assert_eq!(kinds, vec![true]);
    }

    #[test]
    fn atrn_servers_need_no_connect_back_watchdog() {
        let mut c = config(&["a.test"]);
        c.queue_servers[0].protocol = Protocol::Atrn;
        let mut m = Machine::new(&c, Settings::from_config(&c));
        let mut now = Instant::now();
        m.handle(up(), now);
        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 250, Disposition::Released),
            },
            now,
        );

        let later = advance_by(&mut m, &mut now, Duration::from_secs(300));

        assert!(
            !events(&later)
                .iter()
                .any(|e| matches!(e, Event::ConnectBackMissing { .. }))
        );
    }

    #[test]
    fn paused_ignores_edges_and_resume_catches_up() {
        let (mut m, t0) = machine(&["a.test"]);

        let paused = m.handle(Input::Pause, t0);
        let edge = m.handle(up(), t0);
        let manual = m.handle(Input::FetchNow, t0);
        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 251, Disposition::NothingWaiting),
            },
            t0,
        );
        let resumed = m.handle(Input::Resume, t0 + Duration::from_secs(60));

        assert_eq!(events(&paused), vec![Event::Paused]);
        assert!(dequeues(&edge).is_empty());
        assert_eq!(dequeues(&manual).len(), 1);
        assert_eq!(events(&resumed)[0], Event::Resumed);
        assert_eq!(dequeues(&resumed).len(), 1);
    }

    #[test]
    fn a_down_edge_cancels_pending_retries() {
        let (mut m, t0) = machine(&["a.test"]);
        let mut now = t0;
        m.handle(up(), now);
        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 458, Disposition::Retry),
            },
            now,
        );

        m.handle(down(), now);
        let later = advance(&mut m, &mut now, t0 + Duration::from_secs(3600));

        assert!(dequeues(&later).is_empty());
        assert_eq!(m.next_deadline(), None);
    }

    #[test]
    fn a_reload_keeps_the_servers_that_stay_drops_the_removed_and_dequeues_the_new() {
        let (mut m, t0) = machine(&["a.test", "b.test"]);
        m.handle(up(), t0);
        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 458, Disposition::Retry),
            },
            t0,
        );
        let c = config(&["a.test", "c.test"]);

        let actions = m.reconfigure(&c, Settings::from_config(&c), t0 + Duration::from_secs(1));

        let all = vec!["office.test".to_string(), "branch.test".to_string()];
        assert_eq!(dequeues(&actions), vec![(1, all)]);
        let status = m.status(t0);
        let labels: Vec<_> = status.servers.iter().map(|s| s.server.as_str()).collect();
        assert_eq!(labels, vec!["a.test:25", "c.test:25"]);
        assert_eq!(status.servers[0].attempt, 1);
        assert!(status.servers[0].next_retry_at.is_some());
        assert!(status.servers[1].fetching);
    }

    #[test]
    fn a_reload_while_paused_or_down_starts_nothing_and_added_domains_are_asked_for() {
        let (mut m, t0) = machine(&["a.test"]);
        let mut c = config(&["a.test", "b.test"]);
        c.domains.push("new.test".into());

        let while_down = m.reconfigure(&c, Settings::from_config(&c), t0);
        m.handle(up(), t0);
        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 250, Disposition::Released),
            },
            t0,
        );
        m.handle(
            Input::Finished {
                server: 1,
                outcomes: both("b.test", 250, Disposition::Released),
            },
            t0,
        );
        c.domains.push("newer.test".into());
        let while_up = m.reconfigure(&c, Settings::from_config(&c), t0 + Duration::from_secs(60));

        assert!(dequeues(&while_down).is_empty());
        let newer = vec!["newer.test".to_string()];
        assert_eq!(dequeues(&while_up), vec![(0, newer.clone()), (1, newer)]);
    }

    #[test]
    fn a_reload_with_a_new_refetch_interval_restarts_the_schedule() {
        let (mut m, t0) = machine(&["a.test"]);
        m.handle(up(), t0);
        m.handle(
            Input::Finished {
                server: 0,
                outcomes: both("a.test", 251, Disposition::NothingWaiting),
            },
            t0,
        );
        let mut c = config(&["a.test"]);
        c.link.refetch_every = Duration::from_secs(60);
        let at = t0 + Duration::from_secs(10);

        m.reconfigure(&c, Settings::from_config(&c), at);

        assert_eq!(m.next_deadline(), Some(at + Duration::from_secs(60)));
    }

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
        let (status_tx, status) = watch::channel(Status::default());
        let (events_tx, events) = crate::events::channel();
        let (shutdown, _) = watch::channel(false);
        let task = tokio::spawn(run(
            config(&["a.test"]),
            SupervisorDeps::new(Arc::new(fake.clone())),
            monitor,
            command_rx,
            reload_rx,
            status_tx,
            events_tx,
            shutdown,
        ));
        Engine {
            link,
            commands,
            reloads,
            status,
            events,
            fake,
            task,
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

        assert_eq!(e.fake.calls.lock().expect("not poisoned").len(), 1);
        e.commands.send(Command::Shutdown).await.expect("running");
        e.task.await.expect("clean stop");
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
        assert_eq!(e.fake.calls.lock().expect("not poisoned").len(), 3);
        assert_eq!(e.status.borrow().servers[0].attempt, 3);
        e.commands.send(Command::Shutdown).await.expect("running");
        e.task.await.expect("clean stop");
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
        let calls: Vec<_> = e
            .fake
            .calls
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(host, _)| host.clone())
            .collect();
        assert_eq!(calls, vec!["a.test", "b.test"]);
        e.commands.send(Command::Shutdown).await.expect("running");
        e.task.await.expect("clean stop");
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
        e.commands.send(Command::Shutdown).await.expect("running");
        e.task.await.expect("clean stop");
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
        assert!(e.fake.calls.lock().expect("not poisoned").is_empty());
        assert!(e.status.borrow().paused);
        e.commands.send(Command::Shutdown).await.expect("running");
        e.task.await.expect("clean stop");
    }
}
