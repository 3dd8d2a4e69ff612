//! What comes back in: after an accepted ETRN, a watchdog waits for the server to connect back;
//! a burst of inbound sessions that goes quiet becomes one `DequeueComplete`.
//!
//! Fed by the inbound sessions over the lossless [`Arrival`] channel (never by the event
//! broadcast, which drops events for a slow reader). Pure: time comes in as an argument.

use std::time::Duration;

use tokio::time::Instant;

use super::settings::ServerId;
use crate::events::{Arrival, Event};

/// The connect-back watchdogs of the queue servers, and the burst of inbound mail under way.
#[derive(Debug, Default)]
pub struct Arrivals {
    /// One per queue server, in configuration order.
    watches: Vec<Watch>,
    inbound_active: u32,
    burst: Option<Burst>,
    messages_received: u64,
}

#[derive(Debug)]
struct Watch {
    server: ServerId,
    label: String,
    due: Option<Instant>,
    /// A ConnectBackMissing was raised and no message came since: do not repeat it.
    warned: bool,
}

#[derive(Debug)]
struct Burst {
    /// The server whose accepted ETRN preceded the burst, when there was one.
    server: Option<String>,
    messages: u64,
    quiet_at: Option<Instant>,
}

impl Arrivals {
    /// Takes the queue servers (at start, and after a reload): the ones that stay keep their
    /// watchdog, a removed one's disappears.
    pub fn set_servers(&mut self, servers: impl IntoIterator<Item = (ServerId, String)>) {
        let mut old = std::mem::take(&mut self.watches);
        for (server, label) in servers {
            let watch = match old.iter().position(|w| w.server == server) {
                Some(i) => old.swap_remove(i),
                None => Watch {
                    server,
                    label,
                    due: None,
                    warned: false,
                },
            };
            self.watches.push(watch);
        }
    }

    /// An ETRN was accepted: `server` should connect back by `due` (an earlier wait stands).
    pub fn expect_connect_back(&mut self, server: ServerId, due: Instant) {
        if let Some(w) = self.watches.iter_mut().find(|w| w.server == server) {
            w.due.get_or_insert(due);
        }
    }

    /// Nothing can come back while the link is down.
    pub fn link_down(&mut self) {
        for w in &mut self.watches {
            w.due = None;
        }
    }

    pub fn awaiting(&self, server: ServerId) -> bool {
        self.watches
            .iter()
            .any(|w| w.server == server && w.due.is_some())
    }

    pub fn messages_received(&self) -> u64 {
        self.messages_received
    }

    pub fn handle(&mut self, arrival: Arrival, now: Instant, quiet_period: Duration) {
        match arrival {
            Arrival::SessionStarted => {
                self.inbound_active += 1;
                if let Some(burst) = &mut self.burst {
                    burst.quiet_at = None;
                }
            }
            Arrival::MessageReceived | Arrival::MessageRefused => {
                // A message (even a refused one) proves the server connected back; a bare
                // connection does not (port scanners, health checks).
                let waiting = self
                    .watches
                    .iter()
                    .find(|w| w.due.is_some())
                    .map(|w| w.label.clone());
                for w in &mut self.watches {
                    w.due = None;
                    w.warned = false;
                }
                let quiet = (self.inbound_active == 0).then(|| now + quiet_period);
                let burst = self.burst.get_or_insert(Burst {
                    server: waiting,
                    messages: 0,
                    quiet_at: quiet,
                });
                if arrival == Arrival::MessageReceived {
                    self.messages_received += 1;
                    burst.messages += 1;
                }
            }
            Arrival::TurnaroundMessage => self.messages_received += 1,
            Arrival::SessionEnded => {
                self.inbound_active = self.inbound_active.saturating_sub(1);
                if self.inbound_active == 0
                    && let Some(burst) = &mut self.burst
                {
                    burst.quiet_at = Some(now + quiet_period);
                }
            }
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.watches
            .iter()
            .filter_map(|w| w.due)
            .chain(self.burst.as_ref().and_then(|b| b.quiet_at))
            .min()
    }

    /// Whatever was due at `now`: a missing connect-back (`waited` is the timeout), a burst
    /// that went quiet.
    pub fn tick(&mut self, now: Instant, waited: Duration, out: &mut Vec<Event>) {
        for w in &mut self.watches {
            if w.due.is_some_and(|at| at <= now) {
                w.due = None;
                if !w.warned {
                    w.warned = true;
                    out.push(connect_back_missing(&w.label, waited));
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
            out.push(Event::DequeueComplete {
                server: burst.server,
                messages: burst.messages,
            });
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::transcript::{Sim, events, secs};

    fn connect_back_warnings(events: &[Event]) -> Vec<(String, u64, usize, String)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::ConnectBackMissing {
                    server,
                    waited_seconds,
                    causes,
                    hint,
                } => Some((server.clone(), *waited_seconds, causes.len(), hint.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn no_connect_back_after_an_accepted_etrn_raises_the_warning_once() {
        let mut sim = Sim::new(&["a.test"]);
        sim.up();
        sim.released("a.test");

        let first = sim.advance(secs(121));
        sim.fetch_now();
        sim.released("a.test");
        let second = sim.advance(secs(121));

        let warnings = connect_back_warnings(&events(&first));
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].0, "a.test:25");
        assert_eq!(warnings[0].1, 120);
        assert!(warnings[0].2 >= 3);
        assert!(warnings[0].3.contains("atrn"));
        assert!(events(&second).is_empty(), "{second:?}");
    }

    #[test]
    fn mail_over_an_atrn_turnaround_does_not_silence_the_etrn_watchdog() {
        let mut sim = Sim::new(&["a.test"]);
        sim.up();
        sim.released("a.test");

        sim.skip(secs(1));
        sim.arrive(Arrival::TurnaroundMessage);
        let later = sim.advance(secs(120));

        assert_eq!(connect_back_warnings(&events(&later)).len(), 1, "{later:?}");
        assert_eq!(sim.status().messages_received, 1);
    }

    #[test]
    fn a_connect_back_cancels_the_watchdog_and_completion_counts_the_messages() {
        let mut sim = Sim::new(&["a.test"]);
        sim.up();
        sim.released("a.test");

        sim.skip(Duration::from_millis(300));
        sim.session(2);
        sim.skip(secs(1));
        let mid = sim.session(1);
        let later = sim.advance(secs(300));

        assert!(events(&mid).is_empty());
        assert_eq!(
            events(&later),
            vec![Event::DequeueComplete {
                server: Some("a.test:25".into()),
                messages: 3
            }]
        );
        assert_eq!(sim.status().messages_received, 3);
    }

    #[test]
    fn a_connection_without_mail_is_not_a_connect_back() {
        let mut sim = Sim::new(&["a.test"]);
        sim.up();
        sim.released("a.test");

        sim.skip(secs(1));
        sim.session(0);
        let later = sim.advance(secs(300));

        assert_eq!(connect_back_warnings(&events(&later)).len(), 1);
        assert_eq!(events(&later).len(), 1, "{later:?}");
    }

    #[test]
    fn a_refused_message_proves_the_connect_back_but_is_not_counted() {
        let mut sim = Sim::new(&["a.test"]);
        sim.up();
        sim.released("a.test");

        sim.arrive(Arrival::SessionStarted);
        sim.arrive(Arrival::MessageRefused);
        sim.arrive(Arrival::SessionEnded);
        let later = sim.advance(secs(300));

        assert_eq!(
            events(&later),
            vec![Event::DequeueComplete {
                server: Some("a.test:25".into()),
                messages: 0
            }]
        );
        assert_eq!(sim.status().messages_received, 0);
    }

    #[test]
    fn atrn_servers_need_no_connect_back_watchdog() {
        let mut config = crate::supervisor::transcript::config(&["a.test"]);
        config.queue_servers[0].protocol = crate::config::Protocol::Atrn;
        let mut sim = Sim::with(config);
        sim.up();
        sim.released("a.test");

        let later = sim.advance(secs(300));

        assert!(connect_back_warnings(&events(&later)).is_empty());
        assert!(!sim.status().servers[0].awaiting_connect_back);
    }
}
