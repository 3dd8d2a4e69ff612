//! Per-server scheduling and the link: when a dequeue starts, joins, waits or is retried.
//!
//! [`Machine`] has no I/O: it takes [`Input`]s with the [`Now`] they happened at and answers
//! with [`Action`]s. Reconfiguration ([`super::reconfigure`]) and the status projection
//! ([`super::status`]) are further `impl Machine` blocks beside this file.

use tokio::time::Instant;

use super::arrivals::Arrivals;
use super::settings::{Now, ServerId, Settings};
use crate::config::{Config, Protocol, QueueServer};
use crate::dequeue;
use crate::events::{Arrival, Event};
use crate::link::{LinkChange, LinkState};
use crate::outcome::{Disposition, Outcome};

/// Something that happened, fed to [`Machine::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Link(LinkChange),
    FetchNow,
    Pause,
    Resume,
    /// A dequeue that [`Action::Dequeue`] started ended. `label` names the server even when a
    /// reload removed it meanwhile.
    Finished {
        server: ServerId,
        label: String,
        outcomes: Vec<Outcome>,
    },
    Arrival(Arrival),
    /// Time passed: whatever was due is done.
    Tick,
}

/// What the machine wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Dequeue `domains` from `entry`; report the end as [`Input::Finished`] with `server` and
    /// `label`.
    Dequeue {
        server: ServerId,
        label: String,
        entry: QueueServer,
        domains: Vec<String>,
    },
    Emit(Event),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trigger {
    /// Link edge, refetch timer, Resume: subject to flap protection.
    Auto,
    /// FetchNow: the user asked.
    Manual,
    /// A backoff timer for the domains that failed.
    Retry,
}

#[derive(Debug, Clone)]
pub(super) struct ServerState {
    pub(super) id: ServerId,
    pub(super) entry: QueueServer,
    /// `host:port`.
    pub(super) label: String,
    pub(super) in_flight: bool,
    pub(super) last_started: Option<Instant>,
    pub(super) deferred_at: Option<Instant>,
    pub(super) retry_at: Option<Instant>,
    pub(super) retry_domains: Vec<String>,
    pub(super) attempt: u32,
    pub(super) last_outcomes: Vec<Outcome>,
    /// When the last dequeue finished (RFC 3339).
    pub(super) last_at: Option<String>,
}

impl ServerState {
    pub(super) fn new(id: ServerId, entry: &QueueServer) -> ServerState {
        ServerState {
            id,
            entry: entry.clone(),
            label: dequeue::server_label(entry),
            in_flight: false,
            last_started: None,
            deferred_at: None,
            retry_at: None,
            retry_domains: Vec::new(),
            attempt: 0,
            last_outcomes: Vec::new(),
            last_at: None,
        }
    }
}

/// The supervisor's state; see the module documentation of [`crate::supervisor`] for the rules.
pub struct Machine {
    pub(super) domains: Vec<String>,
    pub(super) settings: Settings,
    pub(super) link: LinkState,
    pub(super) link_since: Option<String>,
    pub(super) paused: bool,
    /// One per queue server, in configuration order.
    pub(super) per: Vec<ServerState>,
    pub(super) next_refetch: Option<Instant>,
    pub(super) arrivals: Arrivals,
    pub(super) next_id: u64,
}

impl Machine {
    pub fn new(config: &Config, settings: Settings) -> Machine {
        let mut machine = Machine {
            domains: config.domains.clone(),
            settings,
            link: LinkState::Unknown,
            link_since: None,
            paused: false,
            per: Vec::new(),
            next_refetch: None,
            arrivals: Arrivals::default(),
            next_id: 0,
        };
        for entry in &config.queue_servers {
            let id = machine.fresh_id();
            machine.per.push(ServerState::new(id, entry));
        }
        machine.sync_arrivals();
        machine
    }

    pub(super) fn fresh_id(&mut self) -> ServerId {
        self.next_id += 1;
        ServerId(self.next_id)
    }

    /// Tells the arrival tracker which servers there are now.
    pub(super) fn sync_arrivals(&mut self) {
        self.arrivals
            .set_servers(self.per.iter().map(|s| (s.id, s.label.clone())));
    }

    pub fn handle(&mut self, input: Input, now: Now) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Link(change) => self.on_link(change, now, &mut out),
            Input::FetchNow => self.trigger_all(Trigger::Manual, now.at, &mut out),
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
                        self.trigger_all(Trigger::Auto, now.at, &mut out);
                    }
                }
            }
            Input::Finished {
                server,
                label,
                outcomes,
            } => self.on_finished(server, label, outcomes, now, &mut out),
            Input::Arrival(arrival) => {
                self.arrivals
                    .handle(arrival, now.at, self.settings.quiet_period)
            }
            Input::Tick => {}
        }
        self.on_tick(now.at, &mut out);
        out
    }

    /// The earliest moment something is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.per
            .iter()
            .flat_map(|s| [s.deferred_at, s.retry_at])
            .chain([self.next_refetch, self.arrivals.next_deadline()])
            .flatten()
            .min()
    }

    fn on_link(&mut self, change: LinkChange, now: Now, out: &mut Vec<Action>) {
        let new = if change.up {
            LinkState::Up
        } else {
            LinkState::Down
        };
        if new == self.link {
            return;
        }
        self.link = new;
        self.link_since = Some(now.wall.to_rfc3339());
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
            if !self.paused {
                self.trigger_all(Trigger::Auto, now.at, out);
            }
            self.next_refetch = self.refetch_after(now.at);
        } else {
            // Nothing can come back or be fetched while down; the next Up edge fetches all.
            self.next_refetch = None;
            for s in &mut self.per {
                s.deferred_at = None;
                s.retry_at = None;
            }
            self.arrivals.link_down();
        }
    }

    pub(super) fn refetch_after(&self, now: Instant) -> Option<Instant> {
        (!self.settings.refetch_every.is_zero()).then(|| now + self.settings.refetch_every)
    }

    fn trigger_all(&mut self, why: Trigger, now: Instant, out: &mut Vec<Action>) {
        for i in 0..self.per.len() {
            self.trigger(i, None, why, now, out);
        }
    }

    /// Starts a dequeue of `domains` (all when `None`) from server `i` unless one runs (join)
    /// or, for automatic triggers, one started within the flap hold-off (defer).
    pub(super) fn trigger(
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
            protocol: s.entry.protocol,
            domains: domains.clone(),
        }));
        out.push(Action::Dequeue {
            server: s.id,
            label: s.label.clone(),
            entry: s.entry.clone(),
            domains,
        });
    }

    fn on_finished(
        &mut self,
        id: ServerId,
        label: String,
        outcomes: Vec<Outcome>,
        now: Now,
        out: &mut Vec<Action>,
    ) {
        let settings = &self.settings;
        let link_up = self.link != LinkState::Down;
        out.push(Action::Emit(Event::FetchFinished {
            server: label,
            outcomes: outcomes.clone(),
        }));
        // A server that a reload removed: its dequeue is reported, and that is all.
        let Some(s) = self.per.iter_mut().find(|s| s.id == id) else {
            return;
        };
        s.in_flight = false;
        s.last_at = Some(now.wall.to_rfc3339());
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
            let delay = settings.jittered_backoff(s.attempt, now.random);
            s.retry_at = Some(now.at + delay);
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
        let wait = settings.connect_back_timeout;
        if released && needs_connect_back(s.entry.protocol) && !wait.is_zero() && link_up {
            self.arrivals.expect_connect_back(id, now.at + wait);
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
        }
        let mut events = Vec::new();
        self.arrivals
            .tick(now, self.settings.connect_back_timeout, &mut events);
        out.extend(events.into_iter().map(Action::Emit));
    }
}

/// Whether the protocol delivers on a new inbound connection (ETRN). ATRN and TURN deliver on
/// the dequeue connection itself, so they need no watchdog.
fn needs_connect_back(protocol: Protocol) -> bool {
    matches!(protocol, Protocol::Etrn)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::supervisor::transcript::{Sim, all, config, dequeues, events, outcome, secs};

    #[test]
    fn an_up_edge_dequeues_every_server_for_all_domains() {
        let mut sim = Sim::new(&["a.test", "b.test"]);

        let actions = sim.up();

        assert_eq!(
            events(&actions)[0],
            Event::LinkChanged {
                up: true,
                reason: "test".into()
            }
        );
        assert_eq!(
            dequeues(&actions),
            vec![("a.test".into(), all()), ("b.test".into(), all())]
        );
        assert!(sim.status().fetching);
    }

    #[test]
    fn a_down_first_state_dequeues_nothing() {
        let mut sim = Sim::new(&["a.test"]);

        let actions = sim.down();

        assert!(dequeues(&actions).is_empty());
        assert_eq!(sim.status().link, LinkState::Down);
    }

    #[test]
    fn fetch_now_or_a_new_edge_joins_a_running_dequeue() {
        let mut sim = Sim::new(&["a.test"]);
        sim.up();

        sim.skip(secs(1));
        let joined_fetch = sim.fetch_now();
        sim.skip(secs(1));
        sim.down();
        sim.skip(secs(28));
        let joined_edge = sim.up();

        assert!(dequeues(&joined_fetch).is_empty());
        assert!(dequeues(&joined_edge).is_empty());
    }

    #[test]
    fn a_flapping_link_causes_few_dequeues_and_never_two_at_once() {
        let mut sim = Sim::new(&["a.test"]);
        let t0 = sim.now;
        let mut started = 0;
        let mut running = false;

        // 20 bounces in 10 s; each dequeue takes 300 ms.
        for i in 0..40u32 {
            let mut actions = sim.advance_to(t0 + Duration::from_millis(250) * i);
            if running && sim.now >= t0 + Duration::from_millis(300) {
                actions.extend(sim.released("a.test"));
                running = false;
            }
            actions.extend(if i % 2 == 0 { sim.up() } else { sim.down() });
            for _ in dequeues(&actions) {
                assert!(!running, "two dequeues at once");
                running = true;
                started += 1;
            }
        }
        // The link stays up afterwards.
        let mut actions = sim.up();
        actions.extend(sim.advance_to(t0 + secs(60)));
        started += dequeues(&actions).len();

        assert!((1..=3).contains(&started), "{started} dequeues");
    }

    #[test]
    fn an_edge_right_after_a_dequeue_is_deferred_not_dropped() {
        let mut sim = Sim::new(&["a.test"]);
        sim.up();
        sim.skip(secs(1));
        sim.released("a.test");
        sim.skip(secs(1));
        sim.down();
        sim.skip(secs(1));

        let at_edge = sim.up();
        let later = sim.advance(secs(8));

        assert!(dequeues(&at_edge).is_empty());
        assert_eq!(dequeues(&later).len(), 1);
    }

    #[test]
    fn temporary_failures_retry_the_failed_domains_with_growing_delays() {
        let mut c = config(&["a.test"]);
        c.link.refetch_every = Duration::ZERO;
        let mut sim = Sim::with(c);
        sim.up();
        let mut delays = Vec::new();

        for _ in 0..5 {
            let mut outcomes = vec![outcome("a.test", "branch.test", 458, Disposition::Retry)];
            if delays.is_empty() {
                outcomes.insert(
                    0,
                    outcome("a.test", "office.test", 250, Disposition::Released),
                );
            }
            let finished = sim.finished_with("a.test", outcomes);
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
            let retry = sim.advance(secs(in_seconds + 1));
            assert_eq!(
                dequeues(&retry),
                vec![("a.test".into(), vec!["branch.test".to_string()])]
            );
        }

        // The transcript's dice always say "no jitter".
        assert_eq!(delays, vec![30, 60, 120, 240, 480]);
    }

    #[test]
    fn a_success_resets_the_backoff() {
        let mut sim = Sim::new(&["a.test"]);
        sim.up();
        sim.retry("a.test");
        sim.advance(secs(40));

        sim.released("a.test");

        let status = sim.status();
        assert_eq!(status.servers[0].attempt, 0);
        assert_eq!(status.servers[0].next_retry_at, None);
    }

    #[test]
    fn permanent_failures_are_reported_with_the_fix_and_not_retried() {
        let mut sim = Sim::new(&["a.test"]);
        sim.up();

        let finished = sim.finished("a.test", 459, Disposition::Permanent);
        let later = sim.advance(secs(14 * 60));

        let failed = events(&finished)
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
            .count();
        assert_eq!(failed, 2);
        assert!(
            !events(&finished)
                .iter()
                .any(|e| matches!(e, Event::RetryScheduled { .. }))
        );
        assert!(dequeues(&later).is_empty());
    }

    #[test]
    fn refetch_every_repeats_the_dequeue_while_up_only() {
        let mut sim = Sim::new(&["a.test"]);
        sim.up();
        sim.nothing_waiting("a.test");

        let while_up = sim.advance(secs(15 * 60 + 1));
        sim.nothing_waiting("a.test");
        sim.down();
        let while_down = sim.advance(secs(45 * 60));

        assert_eq!(dequeues(&while_up).len(), 1);
        assert!(dequeues(&while_down).is_empty());
    }

    #[test]
    fn paused_ignores_edges_and_resume_catches_up() {
        let mut sim = Sim::new(&["a.test"]);

        let paused = sim.input(Input::Pause);
        let edge = sim.up();
        let manual = sim.fetch_now();
        sim.nothing_waiting("a.test");
        sim.skip(secs(60));
        let resumed = sim.input(Input::Resume);

        assert_eq!(events(&paused), vec![Event::Paused]);
        assert!(dequeues(&edge).is_empty());
        assert_eq!(dequeues(&manual).len(), 1);
        assert_eq!(events(&resumed)[0], Event::Resumed);
        assert_eq!(dequeues(&resumed).len(), 1);
    }

    #[test]
    fn a_down_edge_cancels_pending_retries() {
        let mut sim = Sim::new(&["a.test"]);
        sim.up();
        sim.retry("a.test");

        sim.down();
        let later = sim.advance(secs(3600));

        assert!(dequeues(&later).is_empty());
        assert_eq!(sim.m.next_deadline(), None);
    }

    #[test]
    fn the_end_of_a_server_a_reload_removed_is_reported_and_changes_nothing() {
        let mut sim = Sim::new(&["a.test"]);
        sim.up();

        let finished = sim.input(Input::Finished {
            server: ServerId(99),
            label: "gone.test:25".into(),
            outcomes: Vec::new(),
        });

        assert_eq!(
            events(&finished),
            vec![Event::FetchFinished {
                server: "gone.test:25".into(),
                outcomes: Vec::new()
            }]
        );
        assert!(sim.status().fetching);
    }
}
