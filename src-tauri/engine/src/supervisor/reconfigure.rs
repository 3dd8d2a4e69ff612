//! A reloaded configuration, taken in place: servers keep their state by stable id.

use tokio::time::Instant;

use super::machine::{Action, Machine, ServerState, Trigger};
use super::settings::Settings;
use crate::config::Config;
use crate::dequeue;
use crate::link::LinkState;

impl Machine {
    /// Takes a reloaded configuration (already validated). Servers are matched by `host:port`:
    /// one that stays keeps its state and id, a removed one disappears (its running dequeue is
    /// still reported when it ends), a new one starts fresh and, while the link is up and not
    /// paused, is dequeued at once; so are domains added to the servers that stay. A changed
    /// `refetch_every` restarts the refetch schedule from now.
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
        let mut old = std::mem::take(&mut self.per);
        let mut fresh = Vec::new();
        for (i, entry) in config.queue_servers.iter().enumerate() {
            let label = dequeue::server_label(entry);
            let state = match old.iter().position(|s| s.label == label) {
                Some(at) => {
                    let mut s = old.remove(at);
                    s.entry = entry.clone();
                    s.retry_domains.retain(|d| self.domains.contains(d));
                    if s.retry_domains.is_empty() {
                        s.retry_at = None;
                    }
                    s
                }
                None => {
                    fresh.push(i);
                    let id = self.fresh_id();
                    ServerState::new(id, entry)
                }
            };
            self.per.push(state);
        }
        self.sync_arrivals();
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::supervisor::transcript::{Sim, all, config, dequeues, secs};

    #[test]
    fn a_reload_keeps_the_servers_that_stay_drops_the_removed_and_dequeues_the_new() {
        let mut sim = Sim::new(&["a.test", "b.test"]);
        sim.up();
        sim.retry("a.test");
        sim.skip(secs(1));

        let actions = sim.reload(&config(&["a.test", "c.test"]));

        assert_eq!(dequeues(&actions), vec![("c.test".into(), all())]);
        let status = sim.status();
        let labels: Vec<_> = status.servers.iter().map(|s| s.server.as_str()).collect();
        assert_eq!(labels, vec!["a.test:25", "c.test:25"]);
        assert_eq!(status.servers[0].attempt, 1);
        assert!(status.servers[0].next_retry_at.is_some());
        assert!(status.servers[1].fetching);
    }

    #[test]
    fn a_reload_while_paused_or_down_starts_nothing_and_added_domains_are_asked_for() {
        let mut sim = Sim::new(&["a.test"]);
        let mut c = config(&["a.test", "b.test"]);
        c.domains.push("new.test".into());

        let while_down = sim.reload(&c);
        sim.up();
        sim.released("a.test");
        sim.released("b.test");
        sim.skip(secs(60));
        c.domains.push("newer.test".into());
        let while_up = sim.reload(&c);

        assert!(dequeues(&while_down).is_empty());
        let newer = vec!["newer.test".to_string()];
        assert_eq!(
            dequeues(&while_up),
            vec![("a.test".into(), newer.clone()), ("b.test".into(), newer)]
        );
    }

    #[test]
    fn a_reload_with_a_new_refetch_interval_restarts_the_schedule() {
        let mut sim = Sim::new(&["a.test"]);
        sim.up();
        sim.nothing_waiting("a.test");
        let mut c = config(&["a.test"]);
        c.link.refetch_every = Duration::from_secs(60);
        sim.skip(secs(10));

        sim.reload(&c);

        assert_eq!(sim.m.next_deadline(), Some(sim.now + secs(60)));
    }

    #[test]
    fn a_server_that_stays_keeps_its_connect_back_watchdog_a_removed_one_loses_it() {
        let mut sim = Sim::new(&["a.test", "b.test"]);
        sim.up();
        sim.released("a.test");
        sim.released("b.test");

        sim.reload(&config(&["b.test"]));

        let status = sim.status();
        assert_eq!(status.servers.len(), 1);
        assert!(status.servers[0].awaiting_connect_back);
    }
}
