//! Auto-dequeue on connect, against real link events and a real Postfix.
//!
//! Postern runs inside a network namespace (the office); Postfix, the ISP's queuing server,
//! runs on the host and is reachable only over the namespace's veth pair. Taking the host end
//! of the veth down takes the office's link down for real: the office side loses its carrier,
//! the kernel says so over rtnetlink, and Postern's probe decides.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use postern_tests::harness::{
    NetNs, PosternConfig, Posternd, PostfixQueue, SilentServer, TestMessage, free_addr, free_port,
    maildir_count, poll_until, wait_for_maildir,
};
use postern_tests::skip_unless_root;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const INBOUND_PORT: u16 = 2525;

fn is(event: &Value, kind: &str) -> bool {
    event["type"] == kind
}

fn link_event(up: bool) -> impl Fn(&Value) -> bool {
    move |e| is(e, "link_changed") && e["up"] == up
}

fn config(server: SocketAddr, listen: SocketAddr, maildir: &Path) -> PosternConfig {
    PosternConfig::etrn(server, listen, maildir).queue_option("timeout", "\"5s\"")
}

/// The office namespace, the ISP's Postfix on the host end of its link, and the Maildir.
struct Office {
    isp: PostfixQueue,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
    ns: NetNs,
}

impl Office {
    fn new() -> Office {
        let ns = NetNs::create().expect("namespace");
        let dir = tempfile::tempdir().expect("temp dir");
        let isp = PostfixQueue::builder()
            .listen(SocketAddr::new(IpAddr::V4(ns.host_addr()), free_port()))
            .deliver_to(SocketAddr::new(IpAddr::V4(ns.ns_addr()), INBOUND_PORT))
            .allow_network(&ns.subnet())
            // An smtpd starting while the link is down would not find the veth address among
            // the up interfaces and exit ("no local interface found"); the listener binds it.
            .inet_interfaces("all")
            .start()
            .expect("postfix starts");
        Office {
            isp,
            maildir: dir.path().join("Maildir"),
            _dir: dir,
            ns,
        }
    }

    fn inbound(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.ns.ns_addr()), INBOUND_PORT)
    }

    /// Queues `n` messages for office.test (the link must be up: the host reaches Postfix on
    /// the veth address).
    fn queue(&self, first: usize, n: usize) {
        let messages: Vec<_> = (first..first + n)
            .map(|i| TestMessage::sized(i, 1_000, &["user@office.test"]))
            .collect();
        if let Err(e) = self.isp.queue_messages(&messages) {
            panic!(
                "queueing at the ISP failed: {e}\n--- Postfix log ---\n{}",
                self.isp.log_text()
            );
        }
    }

    /// `posternd run --events` inside the namespace, once its listener is up.
    fn start_postern(&self) -> Posternd {
        let toml = config(self.isp.addr(), self.inbound(), &self.maildir).render();
        let daemon = Posternd::builder(&toml)
            .in_netns(&self.ns)
            .env("RUST_LOG", "postern_engine=debug,info")
            .start()
            .expect("posternd starts");
        daemon
            .wait_for_event(|e| is(e, "listening"), WAIT)
            .expect("listening");
        daemon
    }
}

fn count(daemon: &Posternd, kind: &str) -> usize {
    daemon.events().iter().filter(|e| is(e, kind)).count()
}

/// Seconds since the Unix epoch of an RFC 3339 time as posternd prints it
/// (`2026-11-28T20:57:55.123456789+01:00`).
fn rfc3339_epoch_seconds(at: &str) -> Option<f64> {
    let (date, time) = at.split_once('T')?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let split = time.find(['+', '-', 'Z']).unwrap_or(time.len());
    let (clock, zone) = time.split_at(split);
    let mut parts = clock.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let min: f64 = parts.next()?.parse().ok()?;
    let sec: f64 = parts.next()?.parse().ok()?;
    let offset = match zone.get(..1) {
        Some(sign @ ("+" | "-")) => {
            let (oh, om) = zone[1..].split_once(':')?;
            let o = oh.parse::<f64>().ok()? * 3600.0 + om.parse::<f64>().ok()? * 60.0;
            if sign == "+" { o } else { -o }
        }
        _ => 0.0,
    };
    // Days since 1970-01-01 of a proleptic Gregorian date.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + sec - offset)
}

fn epoch_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Takes the link down, waits until Postern has seen it, brings it up and returns the time from
/// `ip link set up` to the ETRN as Postfix logged it (its `disconnect from ... etrn=` line).
fn measure_link_up_to_etrn(
    office: &Office,
    daemon: &Posternd,
    round: usize,
    last_up: &mut SystemTime,
) -> Duration {
    let downs = daemon
        .events()
        .iter()
        .filter(|e| link_event(false)(e))
        .count();
    let etrns_before = office.isp.etrn_count();
    let delivered_before = maildir_count(&office.maildir);
    office.queue(100 * round, 1);
    office.ns.link_down().expect("link down");
    poll_until("Postern to see the link down", WAIT, || {
        (daemon
            .events()
            .iter()
            .filter(|e| link_event(false)(e))
            .count()
            > downs)
            .then_some(())
    })
    .expect("link down noticed");
    // The flap hold-off (10 s after the last dequeue started) would defer the next dequeue.
    poll_until("the flap hold-off to pass", WAIT, || {
        (last_up.elapsed().unwrap_or_default() > Duration::from_secs(11)).then_some(())
    })
    .expect("hold-off passed");

    let t0 = SystemTime::now();
    *last_up = t0;
    office.ns.link_up().expect("link up");
    wait_for_maildir(&office.maildir, delivered_before + 1, WAIT).expect("mail delivered");
    poll_until("the ETRN session in the Postfix log", WAIT, || {
        (office.isp.etrn_count() > etrns_before).then_some(())
    })
    .expect("ETRN logged");
    // Postfix logs whole seconds only; Postern's fetch_finished event (the ETRN answered) has
    // nanoseconds.
    let answered = daemon
        .events()
        .iter()
        .filter(|e| is(e, "fetch_finished"))
        .filter_map(|e| e["at"].as_str().and_then(rfc3339_epoch_seconds))
        .find(|at| *at >= epoch_seconds(t0))
        .expect("a fetch_finished event after the link came up");
    let etrn_line = office
        .isp
        .log_text()
        .lines()
        .filter(|l| l.contains("disconnect from") && l.contains("etrn="))
        .nth(etrns_before)
        .map(str::to_string)
        .unwrap_or_default();
    let noticed = daemon
        .events()
        .iter()
        .filter(|e| link_event(true)(e))
        .filter_map(|e| e["at"].as_str().and_then(rfc3339_epoch_seconds))
        .find(|at| *at >= epoch_seconds(t0))
        .map_or(f64::NAN, |at| at - epoch_seconds(t0));
    let took = answered - epoch_seconds(t0);
    eprintln!(
        "round {round}: link up -> link_changed {noticed:.3} s -> ETRN answered {took:.3} s (Postfix: {etrn_line})"
    );
    Duration::from_secs_f64(took)
}

/// Runs `rounds` link-down/link-up cycles and returns the link-up -> ETRN times.
pub fn link_up_to_etrn_times(rounds: usize) -> Vec<Duration> {
    let office = Office::new();
    office.ns.link_down().expect("link down");
    let daemon = office.start_postern();
    daemon
        .wait_for_event(link_event(false), WAIT)
        .expect("starts with the link down");
    let mut last_up = SystemTime::now();
    office.ns.link_up().expect("link up");
    daemon
        .wait_for_event(link_event(true), WAIT)
        .expect("link up noticed");
    let times: Vec<_> = (1..=rounds)
        .map(|round| measure_link_up_to_etrn(&office, &daemon, round, &mut last_up))
        .collect();
    daemon.stop().expect("stops");
    times
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[test]
fn posternd_times_are_read_as_epoch_seconds() {
    let at = rfc3339_epoch_seconds("2026-11-28T21:30:00.250+01:00");

    assert_eq!(at, Some(1_795_897_800.25));
}

#[test]
fn held_mail_flows_in_when_the_link_comes_up() {
    skip_unless_root!();
    let office = Office::new();
    office.queue(1, 3);
    office.ns.link_down().expect("link down");
    let daemon = office.start_postern();
    daemon
        .wait_for_event(link_event(false), WAIT)
        .expect("Postern sees the link down at start");
    assert_eq!(office.isp.etrn_count(), 0);

    office.ns.link_up().expect("link up");
    let up = daemon
        .wait_for_event(link_event(true), WAIT)
        .expect("link up noticed");
    let delivered = wait_for_maildir(&office.maildir, 3, WAIT).expect("held mail delivered");
    office
        .isp
        .wait_for_queue_len(0, WAIT)
        .expect("queue drained");
    let complete = daemon
        .wait_for_event(|e| is(e, "dequeue_complete"), WAIT)
        .expect("dequeue complete reported");

    assert_eq!(delivered.len(), 3);
    assert_eq!(complete["messages"], 3);
    assert!(
        up["reason"]
            .as_str()
            .is_some_and(|r| !r.starts_with("timer")),
        "{up}"
    );
    eprintln!("link up noticed: {}", up["reason"]);
    daemon.stop().expect("stops");
}

#[test]
fn link_up_to_etrn_is_measured_over_three_rounds() {
    skip_unless_root!();

    let mut times = link_up_to_etrn_times(3);

    assert_eq!(times.len(), 3);
    eprintln!(
        "link up -> ETRN: median {:?} of {times:?}",
        median(&mut times)
    );
}

/// The benchmark's number: `cargo test -p postern-tests --test link_watch -- --ignored --nocapture`.
#[test]
#[ignore = "takes about three minutes; run by hand or from the benchmark"]
fn link_up_to_etrn_median_of_ten() {
    skip_unless_root!();

    let mut times = link_up_to_etrn_times(10);

    eprintln!(
        "link up -> ETRN: median {:?} of {times:?}",
        median(&mut times)
    );
}

#[test]
fn a_flapping_link_costs_few_etrns_and_the_mail_still_arrives() {
    skip_unless_root!();
    let office = Office::new();
    office.queue(1, 2);
    office.ns.link_down().expect("link down");
    let mut daemon = office.start_postern();
    daemon
        .wait_for_event(link_event(false), WAIT)
        .expect("starts with the link down");

    // 20 bounces in 10 s, then the link stays up.
    for _ in 0..20 {
        office.ns.link_up().expect("link up");
        std::thread::sleep(Duration::from_millis(250));
        office.ns.link_down().expect("link down");
        std::thread::sleep(Duration::from_millis(250));
    }
    office.ns.link_up().expect("link up");
    wait_for_maildir(&office.maildir, 2, Duration::from_secs(60)).expect("mail arrives");
    poll_until("every dequeue to finish", WAIT, || {
        (count(&daemon, "fetch_started") == count(&daemon, "fetch_finished")).then_some(())
    })
    .expect("dequeues finished");
    let accepted = daemon
        .events()
        .iter()
        .filter(|e| is(e, "fetch_finished"))
        .filter(|e| e["outcomes"][0]["code"] == 250)
        .count();
    poll_until("Postfix to log every ETRN session", WAIT, || {
        (office.isp.etrn_count() >= accepted).then_some(())
    })
    .expect("sessions logged");

    let started = count(&daemon, "fetch_started");
    let etrns = office.isp.etrn_count();
    eprintln!(
        "flap: {} link edges, {started} dequeues, {etrns} ETRNs at Postfix",
        count(&daemon, "link_changed")
    );
    assert!(daemon.is_running());
    assert!((1..=4).contains(&started), "{started} dequeues");
    assert!(etrns <= started, "{etrns} ETRNs for {started} dequeues");
    daemon.stop().expect("stops");
}

/// `link`: extra `[link]` keys with their values in TOML syntax.
fn loopback_daemon(
    server: SocketAddr,
    domains: &[&str],
    link: &[(&str, &str)],
) -> (Posternd, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen = free_addr();
    let toml = link
        .iter()
        .fold(
            config(server, listen, &dir.path().join("Maildir")).domains(domains),
            |c, (key, value)| c.link_option(key, value),
        )
        .render();
    let daemon = Posternd::run(&toml, listen).expect("posternd starts");
    (daemon, dir)
}

#[test]
fn a_458_is_retried_with_growing_intervals() {
    skip_unless_root!();
    let isp = PostfixQueue::builder()
        .flush_down()
        .start()
        .expect("postfix starts");
    let (daemon, _dir) = loopback_daemon(isp.addr(), &["office.test"], &[]);

    let first = daemon
        .wait_for_event(|e| is(e, "retry_scheduled") && e["attempt"] == 1, WAIT)
        .expect("first retry scheduled");
    let second = daemon
        .wait_for_event(
            |e| is(e, "retry_scheduled") && e["attempt"] == 2,
            Duration::from_secs(60),
        )
        .expect("second retry scheduled");

    let finished = daemon
        .wait_for_event(|e| is(e, "fetch_finished"), WAIT)
        .expect("fetch finished");
    assert_eq!(finished["outcomes"][0]["code"], 458);
    let (a, b) = (
        first["in_seconds"].as_u64().expect("seconds"),
        second["in_seconds"].as_u64().expect("seconds"),
    );
    assert!((24..=36).contains(&a), "first retry in {a} s");
    assert!((48..=72).contains(&b), "second retry in {b} s");
    assert_eq!(first["domains"][0], "office.test");
    daemon.stop().expect("stops");
}

#[test]
fn a_server_that_never_answers_is_retried() {
    skip_unless_root!();
    let silent = SilentServer::with_greeting("220 slow.test ESMTP").expect("silent server");
    let (daemon, _dir) = loopback_daemon(silent.addr(), &["office.test"], &[]);

    let retry = daemon
        .wait_for_event(|e| is(e, "retry_scheduled"), WAIT)
        .expect("retry scheduled");
    let finished = daemon
        .wait_for_event(|e| is(e, "fetch_finished"), WAIT)
        .expect("fetch finished");

    assert_eq!(retry["attempt"], 1);
    assert_eq!(finished["outcomes"][0]["step"], "timeout");
    daemon.stop().expect("stops");
}

#[test]
fn a_459_is_not_retried_and_says_what_to_fix() {
    skip_unless_root!();
    let isp = PostfixQueue::builder().start().expect("postfix starts");
    let (daemon, _dir) = loopback_daemon(isp.addr(), &["other.test"], &[]);

    let failed = daemon
        .wait_for_event(|e| is(e, "fetch_failed"), WAIT)
        .expect("failure reported");

    assert_eq!(failed["code"], 459);
    assert_eq!(failed["domain"], "other.test");
    assert!(
        failed["fix"]
            .as_str()
            .is_some_and(|f| f.contains("fast_flush_domains")),
        "{failed}"
    );
    // A retry would have been announced before the failure.
    assert_eq!(count(&daemon, "retry_scheduled"), 0);
    daemon.stop().expect("stops");
}

#[test]
fn an_accepted_etrn_without_a_connect_back_raises_the_warning() {
    skip_unless_root!();
    // The ISP delivers to an address where nothing listens: not to this office.
    let isp = PostfixQueue::start(free_addr()).expect("postfix starts");
    isp.queue_messages(&[TestMessage::sized(1, 500, &["user@office.test"])])
        .expect("queued");
    let (daemon, _dir) = loopback_daemon(
        isp.addr(),
        &["office.test"],
        &[("connect_back_timeout", "\"2s\"")],
    );

    let warning = daemon
        .wait_for_event(|e| is(e, "connect_back_missing"), WAIT)
        .expect("warning raised");

    assert_eq!(warning["server"], isp.addr().to_string());
    assert_eq!(warning["waited_seconds"], 2);
    let causes = warning["causes"].to_string();
    assert!(causes.contains("port 25"), "{causes}");
    assert!(causes.contains("MX"), "{causes}");
    assert!(
        warning["hint"].as_str().is_some_and(|h| h.contains("atrn")),
        "{warning}"
    );
    daemon.stop().expect("stops");
}
