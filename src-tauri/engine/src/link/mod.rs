//! The link watcher: is the office's internet link up?
//!
//! The operating system's network events (interfaces, carrier, addresses, routes) are only
//! hints: a new address says nothing about the ISP being reachable, and a router's uplink can go
//! down without any local event at all. So after a hint (debounced, except for the first hint
//! while down, which is probed at once) a reachability probe — a TCP
//! connect to `[link].probe`, by default the first queue server — decides Up or Down. The probe
//! also runs on a slow timer (every 30 s while down, every 60 s while up), because events can be
//! missed (sleep and resume) or never come (a router between us and the ISP).
//!
//! Each platform has one file with the same signature (`spawn_hints`); a platform without
//! events falls back to the timer and says so in the log. [`LinkMonitor::manual`] gives tests a
//! monitor they drive by hand.

#[cfg_attr(target_os = "linux", path = "linux.rs")]
#[cfg_attr(target_os = "macos", path = "macos.rs")]
#[cfg_attr(target_os = "windows", path = "windows.rs")]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos", target_os = "windows")),
    path = "fallback.rs"
)]
mod platform;

mod hint;

#[cfg(any(target_os = "macos", target_os = "windows", test))]
mod netwatcher_hints;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{Config, split_host_port};
pub use hint::{Hint, HintError};

/// What the engine believes about the link.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Not probed yet.
    #[default]
    Unknown,
    Up,
    Down,
}

/// An edge decided by the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkChange {
    pub up: bool,
    /// What triggered the probe and what it found.
    pub reason: String,
}

/// Where and how often to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorSettings {
    pub host: String,
    pub port: u16,
    /// Quiet time after the last hint before probing (bounded by `max_debounce`).
    pub debounce: Duration,
    pub max_debounce: Duration,
    /// Least time between the starts of two hint-triggered probes; the first hint after twice
    /// this much quiet while down is probed at once.
    pub min_probe_gap: Duration,
    pub probe_timeout: Duration,
    /// Probe interval while down (and while the state is unknown).
    pub down_every: Duration,
    /// Probe interval while up, to notice a silent outage.
    pub up_every: Duration,
    /// Extra probes after a hint whose probe still found the link down (DHCP, routes and
    /// tunnels settle within seconds of the first event).
    pub follow_ups: Vec<Duration>,
}

impl MonitorSettings {
    pub fn new(host: String, port: u16) -> MonitorSettings {
        MonitorSettings {
            host,
            port,
            debounce: Duration::from_millis(300),
            max_debounce: Duration::from_millis(500),
            min_probe_gap: Duration::from_secs(1),
            probe_timeout: Duration::from_secs(5),
            down_every: Duration::from_secs(30),
            up_every: Duration::from_secs(60),
            follow_ups: vec![
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(4),
            ],
        }
    }

    /// `[link].probe`: `auto` = the first queue server; else `host:port` (port default 25).
    /// `None` when there is nothing to probe (no queue server).
    pub fn from_config(config: &Config) -> Option<MonitorSettings> {
        let probe = config.link.probe.trim();
        if probe.is_empty() || probe.eq_ignore_ascii_case("auto") {
            let first = config.queue_servers.first()?;
            return Some(MonitorSettings::new(first.host.clone(), first.port));
        }
        match split_host_port(probe, 25) {
            Ok((host, port)) => Some(MonitorSettings::new(host, port)),
            Err(e) => {
                tracing::warn!("[link] probe: {e}; probing the first queue server instead");
                let first = config.queue_servers.first()?;
                Some(MonitorSettings::new(first.host.clone(), first.port))
            }
        }
    }

    fn target(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A source of link edges. The supervisor only reads [`LinkMonitor::next`].
pub struct LinkMonitor {
    rx: mpsc::Receiver<LinkChange>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// Made by [`LinkMonitor::spawn`] (not driven by hand), so a reload may retarget it.
    spawned: bool,
}

impl Drop for LinkMonitor {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl LinkMonitor {
    /// The real watcher: OS hints, debounce, probe. `None` settings (nothing to probe) report
    /// the link up once, so a dequeue still happens at start.
    pub fn spawn(settings: Option<MonitorSettings>) -> LinkMonitor {
        let (tx, rx) = mpsc::channel(16);
        let Some(settings) = settings else {
            let _ = tx.try_send(LinkChange {
                up: true,
                reason: "no queue server to probe".into(),
            });
            return LinkMonitor {
                rx,
                task: None,
                spawned: true,
            };
        };
        let (hint_tx, hint_rx) = mpsc::channel(1);
        let hints = match platform::spawn_hints(hint_tx) {
            Ok(()) => {
                tracing::info!(
                    "watching the link: {} events, then a probe of {}",
                    platform::SOURCE,
                    settings.target()
                );
                Some(hint_rx)
            }
            Err(e) => {
                tracing::warn!(
                    "no network change events ({e}): the link is checked by probing {} every {} s only, so mail may take that long to flow after the link comes up",
                    settings.target(),
                    settings.down_every.as_secs()
                );
                None
            }
        };
        let probe_settings = settings.clone();
        let probe = move || -> ProbeFuture {
            let s = probe_settings.clone();
            Box::pin(async move { probe_tcp(&s.host, s.port, s.probe_timeout).await })
        };
        let task = tokio::spawn(watch(settings, hints, probe, tx));
        LinkMonitor {
            rx,
            task: Some(task),
            spawned: true,
        }
    }

    /// A monitor driven by hand (tests, or a front end that knows better).
    pub fn manual() -> (ManualLink, LinkMonitor) {
        let (tx, rx) = mpsc::channel(64);
        (
            ManualLink { tx },
            LinkMonitor {
                rx,
                task: None,
                spawned: false,
            },
        )
    }

    /// Follows a new `[link] probe`: a spawned monitor starts over with the new target (its first
    /// probe reports the state again; an unchanged state is no edge for the supervisor). A
    /// manual monitor stays as it is.
    pub fn retarget(&mut self, settings: Option<MonitorSettings>) {
        if self.spawned {
            *self = LinkMonitor::spawn(settings);
        }
    }

    /// The next edge; `None` once the source has gone (the link then stays as last reported).
    pub async fn next(&mut self) -> Option<LinkChange> {
        self.rx.recv().await
    }
}

/// The sending side of [`LinkMonitor::manual`].
#[derive(Clone)]
pub struct ManualLink {
    tx: mpsc::Sender<LinkChange>,
}

impl ManualLink {
    pub async fn set(&self, up: bool, reason: &str) {
        let _ = self
            .tx
            .send(LinkChange {
                up,
                reason: reason.to_string(),
            })
            .await;
    }
    pub async fn up(&self) {
        self.set(true, "manual").await;
    }
    pub async fn down(&self) {
        self.set(false, "manual").await;
    }
}

type ProbeFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// One reachability probe: a TCP connect. A refused connection still proves the path works.
pub async fn probe_tcp(host: &str, port: u16, timeout: Duration) -> Result<String, String> {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_stream)) => Ok("answers".into()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Ok("answers (but refuses connections on that port)".into())
        }
        Ok(Err(e)) => Err(format!("is not reachable ({e})")),
        Err(_) => Err(format!("did not answer within {} s", timeout.as_secs())),
    }
}

/// The watcher loop: probes at start, after hints (debounced) and on the slow timer, and
/// sends an edge whenever the probe's verdict changes. Ends when `out` is closed.
async fn watch<P>(
    settings: MonitorSettings,
    mut hints: Option<mpsc::Receiver<Hint>>,
    probe: P,
    out: mpsc::Sender<LinkChange>,
) where
    P: Fn() -> ProbeFuture,
{
    let target = settings.target();
    let mut state: Option<bool> = None;
    let mut next_probe = Instant::now();
    let mut trigger: &'static str = "start";
    let mut first_hint: Option<Instant> = None;
    let mut last_probe: Option<Instant> = None;
    let mut hinted_during_probe = false;
    let mut follow_up = settings.follow_ups.len();
    let mut probing: Option<ProbeFuture> = None;
    loop {
        tokio::select! {
            _ = out.closed() => return,
            hint = recv_hint(&mut hints) => {
                let Some(hint) = hint else {
                    tracing::warn!("network change events stopped: checking the link by timer only");
                    hints = None;
                    continue;
                };
                let now = Instant::now();
                // While down, the first hint of a burst is probed at once: a link coming up is
                // the moment mail should flow. The rest of the burst is debounced as usual.
                // Within a burst (a flapping link), at most one probe a second.
                let quiet_before = last_probe.is_none_or(|at| now >= at + settings.min_probe_gap * 2);
                let immediate = probing.is_none() && state != Some(true) && quiet_before;
                let first = *first_hint.get_or_insert(now);
                next_probe = if immediate {
                    now
                } else {
                    let debounced = (now + settings.debounce).min(first + settings.max_debounce);
                    last_probe.map_or(debounced, |at| debounced.max(at + settings.min_probe_gap))
                };
                trigger = hint.what;
                follow_up = 0;
                hinted_during_probe = probing.is_some();
            }
            _ = tokio::time::sleep_until(next_probe), if probing.is_none() => {
                first_hint = None;
                last_probe = Some(Instant::now());
                hinted_during_probe = false;
                probing = Some(probe());
            }
            result = poll_probe(&mut probing), if probing.is_some() => {
                probing = None;
                let now = Instant::now();
                let (up, found) = match result {
                    Ok(found) => (true, found),
                    Err(found) => (false, found),
                };
                tracing::debug!(%target, up, "probe after {trigger}: {found}");
                if state != Some(up) {
                    state = Some(up);
                    let change = LinkChange { up, reason: format!("{trigger}: {target} {found}") };
                    if out.send(change).await.is_err() {
                        return;
                    }
                }
                if !hinted_during_probe {
                    if let Some(after) = settings.follow_ups.get(follow_up).filter(|_| !up) {
                        follow_up += 1;
                        next_probe = now + *after;
                    } else {
                        next_probe = now + if up { settings.up_every } else { settings.down_every };
                        trigger = "timer";
                    }
                }
            }
        }
    }
}

async fn poll_probe(probing: &mut Option<ProbeFuture>) -> Result<String, String> {
    match probing.as_mut() {
        Some(p) => p.await,
        None => std::future::pending().await,
    }
}

async fn recv_hint(hints: &mut Option<mpsc::Receiver<Hint>>) -> Option<Hint> {
    match hints {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A probe whose answers the test sets, counting its calls.
    #[derive(Clone, Default)]
    struct ScriptedProbe {
        up: Arc<Mutex<bool>>,
        calls: Arc<AtomicUsize>,
    }

    impl ScriptedProbe {
        fn set(&self, up: bool) {
            *self.up.lock().expect("not poisoned") = up;
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
        fn func(&self) -> impl Fn() -> ProbeFuture + use<> {
            let me = self.clone();
            move || {
                me.calls.fetch_add(1, Ordering::SeqCst);
                let up = *me.up.lock().expect("not poisoned");
                Box::pin(async move {
                    if up {
                        Ok("answers".to_string())
                    } else {
                        Err("is not reachable".to_string())
                    }
                })
            }
        }
    }

    fn settings() -> MonitorSettings {
        MonitorSettings::new("isp.test".into(), 25)
    }

    struct Running {
        hints: mpsc::Sender<Hint>,
        edges: mpsc::Receiver<LinkChange>,
        _task: tokio::task::JoinHandle<()>,
    }

    fn start(probe: &ScriptedProbe) -> Running {
        let (hints, hint_rx) = mpsc::channel(1);
        let (tx, edges) = mpsc::channel(16);
        let task = tokio::spawn(watch(settings(), Some(hint_rx), probe.func(), tx));
        Running {
            hints,
            edges,
            _task: task,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn first_probe_reports_the_initial_state() {
        let probe = ScriptedProbe::default();
        let mut running = start(&probe);

        let edge = running.edges.recv().await.expect("an edge");

        assert!(!edge.up);
        assert!(
            edge.reason.starts_with("start: isp.test:25"),
            "{}",
            edge.reason
        );
    }

    #[tokio::test(start_paused = true)]
    async fn while_down_a_hint_is_probed_at_once() {
        let probe = ScriptedProbe::default();
        let mut running = start(&probe);
        running.edges.recv().await.expect("initial edge");
        tokio::time::sleep(Duration::from_secs(5)).await;
        probe.set(true);
        let sent = Instant::now();

        running
            .hints
            .send(Hint {
                what: "interface change",
            })
            .await
            .expect("watcher alive");
        let edge = running.edges.recv().await.expect("an edge");

        assert!(edge.up);
        assert!(
            edge.reason.starts_with("interface change"),
            "{}",
            edge.reason
        );
        assert_eq!(Instant::now(), sent);
    }

    #[tokio::test(start_paused = true)]
    async fn while_up_a_hint_is_probed_after_the_debounce() {
        let probe = ScriptedProbe::default();
        probe.set(true);
        let mut running = start(&probe);
        running.edges.recv().await.expect("initial edge");
        tokio::time::sleep(Duration::from_secs(5)).await;
        probe.set(false);
        let sent = Instant::now();

        running
            .hints
            .send(Hint {
                what: "address change",
            })
            .await
            .expect("watcher alive");
        let edge = running.edges.recv().await.expect("an edge");

        assert!(!edge.up);
        assert!(edge.reason.starts_with("address change"), "{}", edge.reason);
        let waited = Instant::now() - sent;
        assert!(waited >= settings().debounce && waited <= settings().max_debounce);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_hints_costs_few_probes() {
        let probe = ScriptedProbe::default();
        let mut running = start(&probe);
        running.edges.recv().await.expect("initial edge");
        let before = probe.calls();

        for _ in 0..40 {
            let _ = running.hints.try_send(Hint { what: "flap" });
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        probe.set(true);
        let edge = running.edges.recv().await.expect("an edge");

        assert!(edge.up);
        // 4 s of hints: the capped debounce allows about one probe per 2 s, plus follow-ups.
        assert!(
            probe.calls() - before <= 6,
            "{} probes",
            probe.calls() - before
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_hints_the_slow_timer_notices_the_link() {
        let probe = ScriptedProbe::default();
        let (tx, mut edges) = mpsc::channel(16);
        let _task = tokio::spawn(watch(settings(), None, probe.func(), tx));
        edges.recv().await.expect("initial edge");
        let start = Instant::now();

        probe.set(true);
        let edge = edges.recv().await.expect("an edge");

        assert!(edge.up);
        assert!(edge.reason.starts_with("timer"), "{}", edge.reason);
        assert!(Instant::now() - start <= settings().down_every);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_outage_is_noticed_while_up() {
        let probe = ScriptedProbe::default();
        probe.set(true);
        let mut running = start(&probe);
        assert!(running.edges.recv().await.expect("initial edge").up);

        probe.set(false);
        let edge = running.edges.recv().await.expect("an edge");

        assert!(!edge.up);
    }

    #[tokio::test]
    async fn probe_of_a_closed_local_port_counts_as_reachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);

        let result = probe_tcp("127.0.0.1", port, Duration::from_secs(2)).await;

        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn the_platform_event_source_opens() {
        let (tx, _rx) = mpsc::channel(1);

        let result = platform::spawn_hints(tx);

        assert!(result.is_ok(), "{result:?}");
    }

    #[tokio::test]
    async fn the_netwatcher_event_source_opens() {
        let (tx, _rx) = mpsc::channel(1);

        let result = netwatcher_hints::spawn_hints(tx);

        assert!(result.is_ok(), "{result:?}");
    }
}
