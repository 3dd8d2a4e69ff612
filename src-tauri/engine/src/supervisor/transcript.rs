//! Test helpers that make the machine's tests read like transcripts: `sim.up()`,
//! `sim.released("a.test")`, `sim.advance(secs(120))`. The clock is the simulation's own, and
//! its dice always say "no jitter".

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Local, TimeZone};
use tokio::time::Instant;

use super::machine::{Action, Input, Machine};
use super::settings::{Now, Settings};
use super::status::Status;
use crate::config::{Config, DeliverTarget, Dns, Inbound, Link, Protocol, QueueServer, TlsMode};
use crate::events::{Arrival, Event};
use crate::link::LinkChange;
use crate::outcome::{Disposition, Outcome};

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn server(host: &str) -> QueueServer {
    QueueServer {
        tls: TlsMode::Off,
        ..QueueServer::new(host, Protocol::Etrn)
    }
}

/// Two domains, ETRN servers on port 25 without TLS, refetch every 15 minutes, connect-back
/// timeout 2 minutes.
pub fn config(hosts: &[&str]) -> Config {
    Config {
        domains: all(),
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
        journal: Default::default(),
        backup_for: Vec::new(),
        backup: Default::default(),
    }
}

/// The domains of [`config`].
pub fn all() -> Vec<String> {
    vec!["office.test".to_string(), "branch.test".to_string()]
}

pub fn outcome(host: &str, domain: &str, code: u16, disposition: Disposition) -> Outcome {
    Outcome {
        server: format!("{host}:25"),
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

/// The dequeues among `actions`: the server's host and the domains.
pub fn dequeues(actions: &[Action]) -> Vec<(String, Vec<String>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Dequeue { entry, domains, .. } => Some((entry.host.clone(), domains.clone())),
            _ => None,
        })
        .collect()
}

pub fn events(actions: &[Action]) -> Vec<Event> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// A machine and its clock.
pub struct Sim {
    pub m: Machine,
    pub now: Instant,
    t0: Instant,
    wall0: DateTime<Local>,
}

impl Sim {
    pub fn new(hosts: &[&str]) -> Sim {
        Sim::with(config(hosts))
    }

    pub fn with(config: Config) -> Sim {
        let now = Instant::now();
        Sim {
            m: Machine::new(&config, Settings::from_config(&config)),
            now,
            t0: now,
            wall0: Local
                .with_ymd_and_hms(2026, 3, 2, 8, 0, 0)
                .single()
                .expect("a plain date"),
        }
    }

    pub fn clock(&self) -> Now {
        let since = chrono::Duration::from_std(self.now - self.t0).expect("a short test");
        Now {
            at: self.now,
            wall: self.wall0 + since,
            random: 0.5,
        }
    }

    pub fn input(&mut self, input: Input) -> Vec<Action> {
        let now = self.clock();
        self.m.handle(input, now)
    }

    pub fn status(&self) -> Status {
        self.m.status(self.clock())
    }

    pub fn up(&mut self) -> Vec<Action> {
        self.input(Input::Link(LinkChange {
            up: true,
            reason: "test".into(),
        }))
    }

    pub fn down(&mut self) -> Vec<Action> {
        self.input(Input::Link(LinkChange {
            up: false,
            reason: "test".into(),
        }))
    }

    pub fn fetch_now(&mut self) -> Vec<Action> {
        self.input(Input::FetchNow)
    }

    pub fn arrive(&mut self, arrival: Arrival) -> Vec<Action> {
        self.input(Input::Arrival(arrival))
    }

    /// One inbound session delivering `messages`; the actions of its end.
    pub fn session(&mut self, messages: usize) -> Vec<Action> {
        self.arrive(Arrival::SessionStarted);
        for _ in 0..messages {
            self.arrive(Arrival::MessageReceived);
        }
        self.arrive(Arrival::SessionEnded)
    }

    /// The running dequeue of `host` ends with `outcomes`.
    pub fn finished_with(&mut self, host: &str, outcomes: Vec<Outcome>) -> Vec<Action> {
        let s = self
            .m
            .per
            .iter()
            .find(|s| s.entry.host == host)
            .expect("a configured server");
        let (server, label) = (s.id, s.label.clone());
        self.input(Input::Finished {
            server,
            label,
            outcomes,
        })
    }

    /// The running dequeue of `host` ends with the same reply for every domain.
    pub fn finished(&mut self, host: &str, code: u16, disposition: Disposition) -> Vec<Action> {
        let outcomes = all()
            .iter()
            .map(|d| outcome(host, d, code, disposition))
            .collect();
        self.finished_with(host, outcomes)
    }

    pub fn released(&mut self, host: &str) -> Vec<Action> {
        self.finished(host, 250, Disposition::Released)
    }

    pub fn nothing_waiting(&mut self, host: &str) -> Vec<Action> {
        self.finished(host, 251, Disposition::NothingWaiting)
    }

    pub fn retry(&mut self, host: &str) -> Vec<Action> {
        self.finished(host, 458, Disposition::Retry)
    }

    pub fn reload(&mut self, config: &Config) -> Vec<Action> {
        self.m
            .reconfigure(config, Settings::from_config(config), self.now)
    }

    /// Moves the clock without handling what falls due (the next input handles it).
    pub fn skip(&mut self, by: Duration) {
        self.now += by;
    }

    /// Runs the clock forward to `until`, handling every deadline on the way.
    pub fn advance_to(&mut self, until: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(at) = self.m.next_deadline().filter(|at| *at <= until) {
            self.now = at.max(self.now);
            out.extend(self.input(Input::Tick));
        }
        self.now = until.max(self.now);
        out
    }

    pub fn advance(&mut self, by: Duration) -> Vec<Action> {
        self.advance_to(self.now + by)
    }
}
