//! The measurements, one function per row of issue 6.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use postern_tests::harness::process::{output_within, terminate, wait_timeout};
use postern_tests::harness::{
    HarnessError, PosternConfig, Posternd, PostfixQueue, Result, TestMessage, free_addr,
    posternd_bin,
};

use super::procfs;
use super::scratch_fs::Place;
use super::sinks::BareSink;
use super::{Goal, Row};

/// The standard load of row 1: 10 parallel sessions, 2000 messages of 4 KiB, one per connection.
pub(super) const LOAD: [&str; 6] = ["-s", "10", "-m", "2000", "-l", "4096"];
pub(super) const LOAD_MESSAGES: usize = 2000;
const SOURCE_TIMEOUT: Duration = Duration::from_secs(300);
const DEQUEUE_MESSAGES: usize = 1000;
const DEQUEUE_TIMEOUT: Duration = Duration::from_secs(300);
pub(super) const LARGE_MESSAGE: usize = 50 * 1024 * 1024;
pub(super) const MIB: f64 = 1024.0 * 1024.0;

pub(super) fn other(text: impl Into<String>) -> HarnessError {
    HarnessError::Other(text.into())
}

/// Runs `smtp-source ARGS -f ... -t user@office.test ADDR` and returns how long it took. Any
/// complaint on its stderr (a refused message, a dropped connection) fails the run.
fn smtp_source(addr: SocketAddr, args: &[&str]) -> Result<Duration> {
    smtp_source_to(addr, args, "user@office.test")
}

/// [`smtp_source`] with another recipient.
pub(super) fn smtp_source_to(addr: SocketAddr, args: &[&str], to: &str) -> Result<Duration> {
    let mut cmd = Command::new("smtp-source");
    cmd.args(args)
        .args(["-f", "sender@example.net", "-t", to])
        .args(["-M", "client.test"])
        .arg(addr.to_string());
    let start = Instant::now();
    let out = output_within(&mut cmd, None, SOURCE_TIMEOUT)?;
    let took = start.elapsed();
    if !out.status.success() || !out.stderr.is_empty() {
        return Err(other(format!(
            "smtp-source {} {addr} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(took)
}

/// Messages in `maildir/new` (a directory listing: for a single look, not for polling while
/// messages arrive, where it would contend with the renames for the directory's lock).
fn new_count(maildir: &Path) -> usize {
    std::fs::read_dir(maildir.join("new")).map_or(0, |d| d.count())
}

/// Counts the messages renamed into a Maildir's new/ as they arrive, from inotify events: watching
/// costs the receiver nothing, where listing the directory every few milliseconds would take
/// its lock against Postern's renames and its CPU from both sides of the measurement.
struct Arrivals {
    inotify: Inotify,
    seen: usize,
}

impl Arrivals {
    fn watch(new: &Path) -> Result<Arrivals> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| other(format!("inotify: {e}")))?;
        inotify
            .add_watch(new, AddWatchFlags::IN_MOVED_TO)
            .map_err(|e| other(format!("watch {}: {e}", new.display())))?;
        Ok(Arrivals { inotify, seen: 0 })
    }

    /// Messages arrived so far (an event queue overflow would undercount, and the wait would
    /// end in its timeout rather than early).
    fn count(&mut self) -> usize {
        while let Ok(events) = self.inotify.read_events() {
            self.seen += events
                .iter()
                .filter(|e| e.mask.contains(AddWatchFlags::IN_MOVED_TO))
                .count();
        }
        self.seen
    }
}

/// Moves new/ aside and puts an empty one in its place, so that every repetition starts from
/// the same state: deleting the files instead leaves a large directory and journal work behind.
fn fresh_new(maildir: &Path) -> Result<()> {
    let new = maildir.join("new");
    if !new.exists() {
        return Ok(());
    }
    for n in 0.. {
        let aside = maildir.join(format!("done{n}"));
        if !aside.exists() {
            std::fs::rename(&new, &aside)
                .map_err(|e| other(format!("move {} aside: {e}", new.display())))?;
            break;
        }
    }
    std::fs::create_dir(&new).map_err(|e| other(format!("create {}: {e}", new.display())))
}

/// A Postern config for `office.test` receiving on `listen` into `maildir`, dequeuing from
/// `queue` only at start; `inbound_extra` goes into `[inbound]` (e.g. `max_message_size`).
fn postern_config(
    queue: SocketAddr,
    listen: SocketAddr,
    maildir: &Path,
    inbound_extra: &str,
) -> String {
    PosternConfig::etrn(queue, listen, maildir)
        .render()
        .replacen("[inbound]\n", &format!("[inbound]\n{inbound_extra}"), 1)
}

/// `posternd run` (release build, no `--events`), once it listens.
fn start_postern(config: &str, listen: SocketAddr) -> Result<Posternd> {
    Posternd::builder(config)
        .without_events()
        .wait_for(listen)
        .start()
}

fn tempdir(prefix: &str) -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|e| other(format!("create a temporary directory: {e}")))
}

/// Row 1: `smtp-source -s 10 -m 2000 -l 4096` into Postern (Maildir, fsynced), a private
/// Postfix (queue on disk, `discard:` transport) and smtp-sink (no durability), A B C A B C.
pub fn inbound(reps: usize) -> Result<Vec<Row>> {
    let place = Place::new(2048);
    let work = tempfile::Builder::new()
        .prefix("postern-bench-inbound-")
        .tempdir_in(&place.dir)
        .map_err(|e| {
            other(format!(
                "create a directory in {}: {e}",
                place.dir.display()
            ))
        })?;
    let maildir = work.path().join("Maildir");
    let listen = free_addr();
    let postern = start_postern(&postern_config(free_addr(), listen, &maildir, ""), listen)?;
    // The same Postern without its journal, for row 1c: what the journal costs on the hot path.
    let bare_maildir = work.path().join("Maildir-no-journal");
    let bare_listen = free_addr();
    let bare_config = postern_config(free_addr(), bare_listen, &bare_maildir, "")
        + "\n[journal]\nenabled = false\n";
    let bare = start_postern(&bare_config, bare_listen)?;
    let postfix = PostfixQueue::builder()
        .parent_dir(&place.dir)
        .main_cf("transport_maps", "inline:{ office.test=discard: }")
        .main_cf("defer_transports", "")
        .start()?;
    let sink = BareSink::start(false)?;
    let warm_up = ["-s", "10", "-m", "200", "-l", "4096"];
    for addr in [listen, bare_listen, postfix.addr(), sink.addr()] {
        smtp_source(addr, &warm_up)?;
    }
    postfix.wait_for_queue_len(0, Duration::from_secs(60))?;
    fresh_new(&maildir)?;
    fresh_new(&bare_maildir)?;

    let rate = |took: Duration| LOAD_MESSAGES as f64 / took.as_secs_f64();
    let (mut p, mut f, mut s, mut b) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        for (samples, addr, dir, daemon) in [
            (&mut p, listen, &maildir, &postern),
            (&mut b, bare_listen, &bare_maildir, &bare),
        ] {
            samples.push(rate(smtp_source(addr, &LOAD)?));
            let stored = new_count(dir);
            if stored != LOAD_MESSAGES {
                return Err(other(format!(
                    "Postern acknowledged {LOAD_MESSAGES} messages but {stored} are in its \
                     Maildir\n{}",
                    daemon.log_text()
                )));
            }
            fresh_new(dir)?;
        }
        f.push(rate(smtp_source(postfix.addr(), &LOAD)?));
        // Its queue manager is still discarding: let it finish before the next run starts.
        postfix.wait_for_queue_len(0, Duration::from_secs(120))?;
        s.push(rate(smtp_source(sink.addr(), &LOAD)?));
    }
    let mut vs_postfix = Row::new(
        "1a",
        "Inbound accept throughput, durable, vs Postfix",
        "msg/s",
        "Postfix smtpd, queue on disk, discard:",
        Goal::RatioAtLeast(2.0),
    )
    .with_samples(&p, &f);
    vs_postfix.note(format!(
        "load: smtp-source {} (one connection per message); Postern delivers to a Maildir, 250 only \
         after file and new/ are fsynced; both Posterns' Maildirs and Postfix's queue on {}",
        LOAD.join(" "),
        place.text
    ));
    let vs_sink = Row::new(
        "1b",
        "Inbound accept throughput, durable, vs smtp-sink",
        "msg/s",
        "smtp-sink, no durability",
        Goal::RatioAtLeast(0.4),
    )
    .with_samples(&p, &s);
    let mut journal_cost = Row::new(
        "1c",
        "Inbound accept throughput, journal on vs off",
        "msg/s",
        "the same Postern with [journal] enabled = false",
        Goal::RatioAtLeast(0.95),
    )
    .with_samples(&p, &b);
    journal_cost.note(
        "the same load, the two Posterns one after the other in each repetition; with the journal \
         on every message is also an entry in journal.sqlite",
    );
    Ok(vec![vs_postfix, vs_sink, journal_cost])
}

/// Log-uniform sizes from 1 KiB to 100 KiB (many small, some large), the same every run.
fn mixed_messages(n: usize) -> Vec<TestMessage> {
    mixed_messages_to(n, "user@office.test")
}

/// [`mixed_messages`] to another recipient.
pub(super) fn mixed_messages_to(n: usize, to: &str) -> Vec<TestMessage> {
    let mut rng = fastrand::Rng::with_seed(6);
    (0..n)
        .map(|i| {
            let size = (1024.0 * 100f64.powf(rng.f64())) as usize;
            TestMessage::sized(i, size, &[to])
        })
        .collect()
}

/// Starts `posternd fetch` with `config` and returns the time until `done()` holds.
fn timed_fetch(config: &str, mut done: impl FnMut() -> bool) -> Result<Duration> {
    let dir = tempdir("postern-bench-fetch-")?;
    let path = dir.path().join("postern.toml");
    std::fs::write(&path, config).map_err(|e| other(format!("write {}: {e}", path.display())))?;
    let mut cmd = Command::new(posternd_bin());
    cmd.arg("fetch")
        .arg("--config")
        .arg(&path)
        .env_remove("POSTERN_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| other(format!("start posternd fetch: {e}")))?;
    let result = loop {
        if done() {
            break Ok(start.elapsed());
        }
        if start.elapsed() > DEQUEUE_TIMEOUT {
            break Err(other(format!(
                "the released messages did not all arrive within {DEQUEUE_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    match wait_timeout(&mut child, Duration::from_secs(30))? {
        Some(status) if status.success() => result,
        status => {
            terminate(&mut child, Duration::from_secs(1));
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                use std::io::Read;
                let _ = pipe.read_to_string(&mut stderr);
            }
            Err(other(format!("posternd fetch ended {status:?}: {stderr}")))
        }
    }
}

/// Row 2: 1000 mixed messages held by a private Postfix; `posternd fetch` (ETRN) until the last
/// one is in Postern's Maildir, vs the same ETRN with smtp-sink as the receiver, with twice the
/// repetitions (the row's own spread is large). The Maildir is on a fresh filesystem of its own
/// ([`ScratchFs`]) when one can be made.
pub fn dequeue(reps: usize) -> Result<Row> {
    let place = Place::new(1024);
    let parent = place.dir.clone();
    let samples = dequeue_into(&parent, 2 * reps)?;
    let mut row = Row::new(
        "2",
        "Dequeue 1,000 held messages after an outage",
        "s",
        "same ETRN, smtp-sink receiving",
        Goal::RatioAtMost(1.25),
    )
    .with_samples(&samples.postern, &samples.sink);
    row.note(format!(
        "{DEQUEUE_MESSAGES} messages, 1–100 KiB log-uniform, {:.1} MiB in all, the Maildir on {}; time \
         from starting `posternd fetch` to the last message in new/ (seen by inotify; resp. \
         counted by smtp-sink -c); Postfix's queues are in the system's temporary directory and \
         it delivers with its default concurrency (initial 5, up to 20)",
        samples.total_bytes as f64 / MIB,
        place.text
    ));
    Ok(row)
}

/// Row 2's samples: Postern's and smtp-sink's times.
struct Dequeue {
    postern: Vec<f64>,
    sink: Vec<f64>,
    total_bytes: usize,
}

/// Row 2's pairs with the Maildir under `parent`.
fn dequeue_into(parent: &Path, reps: usize) -> Result<Dequeue> {
    let work = tempfile::Builder::new()
        .prefix("postern-bench-dequeue-")
        .tempdir_in(parent)
        .map_err(|e| other(format!("create a directory in {}: {e}", parent.display())))?;
    let maildir = work.path().join("Maildir");
    let listen = free_addr();
    let to_postern = PostfixQueue::builder().deliver_to(listen).start()?;
    let sink = BareSink::start(true)?;
    let to_sink = PostfixQueue::builder().deliver_to(sink.addr()).start()?;
    let config = postern_config(to_postern.addr(), listen, &maildir, "");
    let postern = start_postern(&config, listen)?;
    let sink_config = postern_config(to_sink.addr(), free_addr(), &work.path().join("unused"), "");
    let messages = mixed_messages(DEQUEUE_MESSAGES);
    let total: usize = messages.iter().map(|m| m.data.len()).sum();

    let (mut p, mut s) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        fresh_new(&maildir)?;
        let mut arrivals = Arrivals::watch(&maildir.join("new"))?;
        to_postern.queue_messages(&messages)?;
        let took = timed_fetch(&config, || arrivals.count() >= DEQUEUE_MESSAGES)
            .map_err(|e| other(format!("{e}\n--- posternd log ---\n{}", postern.log_text())))?;
        p.push(took.as_secs_f64());
        to_postern.wait_for_queue_len(0, Duration::from_secs(60))?;

        to_sink.queue_messages(&messages)?;
        let base = sink.received();
        let took = timed_fetch(&sink_config, || {
            sink.received() >= base + DEQUEUE_MESSAGES as u64
        })?;
        s.push(took.as_secs_f64());
        to_sink.wait_for_queue_len(0, Duration::from_secs(60))?;
    }
    // Stopped before the filesystem under the Maildir goes away.
    drop(postern);
    Ok(Dequeue {
        postern: p,
        sink: s,
        total_bytes: total,
    })
}

/// Row 3: the link watcher's own measurement, the ignored test
/// `link_up_to_etrn_median_of_ten` in tests/tests/link_watch.rs (a network namespace, Postfix on
/// the host end of a veth, `ip link set up` to Postern's answered ETRN), run from its built test
/// binary `link_test`; its `round N: link up -> ETRN answered X s` lines are the samples.
pub fn link_up(link_test: Option<&Path>) -> Row {
    let row = Row::new(
        "3",
        "Link-up to ETRN (10 link-ups)",
        "s",
        "",
        Goal::ValueAtMost(1.0),
    );
    let Some(bin) = link_test else {
        return row.not_measured(
            "no --link-test binary given (`make bench` builds tests/tests/link_watch.rs and passes it)",
        );
    };
    let mut cmd = Command::new(bin);
    cmd.args([
        "--ignored",
        "--exact",
        "link_up_to_etrn_median_of_ten",
        "--nocapture",
        "--test-threads=1",
    ]);
    let out = match output_within(&mut cmd, None, Duration::from_secs(600)) {
        Ok(out) => out,
        Err(e) => return row.not_measured(format!("the link test did not finish: {e}")),
    };
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let times = link_times(&text);
    if !out.status.success() || times.is_empty() {
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        return row.not_measured(format!(
            "the link test failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    let mut row = row.with_samples(&times, &[]);
    row.note(
        "from `ip link set up` on the host end of the veth to Postern's fetch_finished event (the \
         ETRN answered by Postfix); each round waits out Postern's 10 s flap hold-off first; the \
         test prints the times sorted",
    );
    row
}

/// The link test's times in seconds: its line `link up -> ETRN: median M of [T1, T2, ...]`
/// (Rust `Duration` debug format, sorted), or the older `round N: link up -> ETRN answered X s`.
fn link_times(text: &str) -> Vec<f64> {
    let duration = |t: &str| -> Option<f64> {
        let t = t.trim();
        let at = t.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = t[..at].parse().ok()?;
        let scale = match &t[at..] {
            "s" => 1.0,
            "ms" => 1e-3,
            "µs" | "us" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        Some(value * scale)
    };
    if let Some(list) = text
        .lines()
        .find_map(|line| line.split("link up -> ETRN: median ").nth(1))
        .and_then(|rest| rest.split(" of [").nth(1))
        .and_then(|rest| rest.split(']').next())
    {
        return list.split(',').filter_map(duration).collect();
    }
    text.lines()
        .filter_map(|line| line.split("link up -> ETRN answered ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Row 4: `posternd run` idle for 60 s (several at once, with as many idle smtp-sinks as the
/// anchor): RSS at the end and CPU time used over the 60 s.
pub fn idle(reps: usize, wait: Duration) -> Result<Vec<Row>> {
    let work = tempdir("postern-bench-idle-")?;
    let mut daemons = Vec::new();
    for i in 0..reps {
        let listen = free_addr();
        let maildir = work.path().join(format!("Maildir{i}"));
        daemons.push(start_postern(
            &postern_config(free_addr(), listen, &maildir, ""),
            listen,
        )?);
    }
    let sinks: Vec<BareSink> = (0..reps)
        .map(|_| BareSink::start(false))
        .collect::<Result<_>>()?;
    let pids: Vec<u32> = daemons.iter().map(Posternd::pid).collect();
    let sink_pids: Vec<u32> = sinks.iter().map(BareSink::pid).collect();
    let before: Vec<u64> = pids
        .iter()
        .chain(&sink_pids)
        .map(|pid| procfs::cpu_ticks(*pid))
        .collect::<Result<_>>()?;
    std::thread::sleep(wait);
    let after: Vec<u64> = pids
        .iter()
        .chain(&sink_pids)
        .map(|pid| procfs::cpu_ticks(*pid))
        .collect::<Result<_>>()?;
    let rss = |pid: &u32| procfs::status_kb(*pid, "VmRSS").map(|kb| kb as f64 / 1024.0);
    let p_rss: Vec<f64> = pids.iter().map(rss).collect::<Result<_>>()?;
    let s_rss: Vec<f64> = sink_pids.iter().map(rss).collect::<Result<_>>()?;
    let ticks = procfs::ticks_per_second() as f64;
    let cpu: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a - b) as f64 / ticks / wait.as_secs_f64() * 100.0)
        .collect();
    let (p_cpu, s_cpu) = cpu.split_at(reps);
    let mut rss_row = Row::new(
        "4a",
        "posternd run idle: RSS",
        "MiB",
        "smtp-sink idle",
        Goal::ValueAtMost(20.0),
    )
    .with_samples(&p_rss, &s_rss);
    rss_row.note(format!(
        "{reps} daemons and {reps} smtp-sinks side by side, VmRSS after {} s idle",
        wait.as_secs()
    ));
    let mut cpu_row = Row::new(
        "4b",
        "posternd run idle: CPU",
        "%",
        "smtp-sink idle",
        Goal::ValueAtMost(0.1),
    )
    .with_samples(p_cpu, s_cpu);
    cpu_row.note(format!(
        "utime+stime over {} s from /proc/PID/stat ({ticks} ticks/s, so one tick is {:.3} %)",
        wait.as_secs(),
        100.0 / ticks / wait.as_secs_f64()
    ));
    Ok(vec![rss_row, cpu_row])
}

/// Row 5: peak RSS (VmHWM) of a fresh `posternd run` that receives one 50 MiB message.
pub fn large_message(reps: usize) -> Result<Row> {
    let size = LARGE_MESSAGE.to_string();
    let (mut peaks, mut sizes, mut before) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        let work = tempdir("postern-bench-large-")?;
        let maildir = work.path().join("Maildir");
        let listen = free_addr();
        let config = postern_config(
            free_addr(),
            listen,
            &maildir,
            "max_message_size = \"64M\"\n",
        );
        let postern = start_postern(&config, listen)?;
        before.push(procfs::status_kb(postern.pid(), "VmHWM")? as f64 / 1024.0);
        smtp_source(listen, &["-s", "1", "-m", "1", "-l", &size])?;
        if new_count(&maildir) != 1 {
            return Err(other(format!(
                "the 50 MiB message is not in the Maildir\n{}",
                postern.log_text()
            )));
        }
        peaks.push(procfs::status_kb(postern.pid(), "VmHWM")? as f64 / 1024.0);
        sizes.push(LARGE_MESSAGE as f64 / MIB);
    }
    let mut row = Row::new(
        "5",
        "Peak RSS receiving one 50 MiB message",
        "MiB",
        "the message size",
        Goal::ValueAtMost(32.0),
    )
    .with_samples(&peaks, &sizes);
    row.note(format!(
        "VmHWM before the message: {} MiB",
        before
            .iter()
            .map(|v| super::fmt_num(*v))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(row)
}

/// The script that measures one repetition of rows 6 and 7b (see its docstring).
const DESKTOP_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/bench/desktop_app.py");

/// The app's process tree at one moment, as desktop_app.py reports it.
#[derive(serde::Deserialize)]
struct TreeMemory {
    pss_kib: f64,
    rss_kib: f64,
    uss_kib: f64,
    procs: Vec<(String, f64)>,
    /// Processes outside the tree that map libwebkit2gtk too (they lower the tree's PSS).
    sharers: u32,
}

/// One repetition of the desktop app script, as printed on its last line.
#[derive(serde::Deserialize)]
struct AppSample {
    start_to_tray_s: f64,
    idle: TreeMemory,
    open: TreeMemory,
    closed: TreeMemory,
}

impl AppSample {
    fn shared(&self) -> bool {
        [&self.idle, &self.open, &self.closed]
            .iter()
            .any(|m| m.sharers > 0)
    }
}

fn tree_text(m: &TreeMemory) -> String {
    let procs = m
        .procs
        .iter()
        .map(|(name, kib)| format!("{name} {}", super::fmt_num(kib / 1024.0)))
        .collect::<Vec<_>>()
        .join(" + ");
    let shared = if m.sharers > 0 {
        format!(
            "; {} other processes mapped WebKit at the time (PSS understated)",
            m.sharers
        )
    } else {
        String::new()
    };
    format!(
        "PSS {procs}; RSS {}, USS {} MiB{shared}",
        super::fmt_num(m.rss_kib / 1024.0),
        super::fmt_num(m.uss_kib / 1024.0)
    )
}

/// Runs tests/src/bench/desktop_app.py once on a private session bus and display.
fn desktop_sample(app: &Path) -> Result<AppSample> {
    let mut cmd = Command::new("dbus-run-session");
    cmd.args(["--", "xvfb-run", "-a", "-s", "-screen 0 1280x900x24"])
        .args(["/usr/bin/python3", DESKTOP_SCRIPT])
        .arg(app)
        .env_remove("POSTERN_CONFIG");
    let out = output_within(&mut cmd, None, Duration::from_secs(300))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(last).map_err(|e| {
        other(format!(
            "desktop_app.py printed no result ({e}; {}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" / ")
        ))
    })?;
    if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
        return Err(other(format!("desktop_app.py: {error}")));
    }
    serde_json::from_value(value).map_err(|e| other(format!("desktop_app.py result: {e}")))
}

/// Rows 6a-c and 7b: the desktop app `app` (release build), `reps` fresh starts, each on its own
/// private session bus (with a StatusNotifierWatcher owned by the script) and Xvfb display.
pub fn desktop_app(reps: usize, app: &Path) -> Vec<Row> {
    let footprint = |id: &str, metric: &str, goal: Goal| Row::new(id, metric, "MiB", "", goal);
    let mut rows = vec![
        // The tray process `postern` and, while a window is open, its `postern-window` child
        // with WebKit's processes (issue 14's goals).
        footprint(
            "6a",
            "Desktop app idle, no window: PSS of the process tree",
            Goal::ValueAtMost(30.0),
        ),
        footprint(
            "6b",
            "Desktop app, settings window open: PSS",
            Goal::ValueAtMost(220.0),
        ),
        footprint(
            "6c",
            "Desktop app, 5 s after closing the window: PSS",
            Goal::ValueAtMost(35.0),
        ),
        Row::new(
            "7b",
            "Start-up: app start to tray registered",
            "ms",
            "",
            Goal::ValueAtMost(400.0),
        ),
    ];
    if !app.exists() {
        let why = format!(
            "{} is not built (`make bench` builds it like `make build`)",
            app.display()
        );
        return rows
            .into_iter()
            .map(|r| r.not_measured(why.clone()))
            .collect();
    }
    let mut samples = Vec::new();
    let mut retried = 0;
    while samples.len() < reps {
        match desktop_sample(app) {
            // PSS divides shared library pages among every process that maps them: while other
            // WebKit processes run (other tests on this machine), the app's share looks smaller.
            // Measure again, a few times, rather than report a flattering number.
            Ok(s) if s.shared() && retried < SHARED_RETRIES => {
                retried += 1;
                std::thread::sleep(Duration::from_secs(10));
            }
            Ok(s) => samples.push(s),
            Err(e) => {
                let why = e.to_string();
                return rows
                    .into_iter()
                    .map(|r| r.not_measured(why.clone()))
                    .collect();
            }
        }
    }
    let mib =
        |f: fn(&AppSample) -> f64| -> Vec<f64> { samples.iter().map(|s| f(s) / 1024.0).collect() };
    let idle = mib(|s| s.idle.pss_kib);
    let open = mib(|s| s.open.pss_kib);
    let closed = mib(|s| s.closed.pss_kib);
    let start: Vec<f64> = samples.iter().map(|s| s.start_to_tray_s * 1000.0).collect();
    let [a, b, c, d] = std::array::from_fn(|_| rows.remove(0));
    let mut a = a.with_samples(&idle, &[]);
    let mut b = b.with_samples(&open, &[]);
    let mut c = c.with_samples(&closed, &[]);
    let mut d = d.with_samples(&start, &[]);
    for (i, s) in samples.iter().enumerate() {
        a.note(format!("repetition {}: {}", i + 1, tree_text(&s.idle)));
        b.note(format!("repetition {}: {}", i + 1, tree_text(&s.open)));
        c.note(format!("repetition {}: {}", i + 1, tree_text(&s.closed)));
    }
    if retried > 0 {
        a.note(format!(
            "{retried} repetitions measured again: other processes mapped WebKit at the time"
        ));
    }
    a.note(format!(
        "{} (release build with the built UI), config present so no window opens; PSS \
         (/proc/PID/smaps_rollup) summed over the app and its descendants {SETTLE_NOTE}; a \
         StatusNotifierWatcher is on the bus, so the tray is an appindicator item",
        app.display()
    ));
    b.note(format!(
        "opened with the tray menu's \"Settings…\" (dbusmenu Event over D-Bus) {SETTLE_NOTE}"
    ));
    c.note("closed with Ctrl+W (the UI closes its window; the app stays in the tray), 5 s later");
    d.note(
        "from spawning `postern` (existing config) to its RegisterStatusNotifierItem call at the \
         watcher the measurement owns on a fresh private session bus",
    );
    vec![a, b, c, d]
}

/// How many repetitions may be repeated because other WebKit processes ran at the time.
const SHARED_RETRIES: usize = 6;

const SETTLE_NOTE: &str = "5 s after the engine listens / the window appears";

/// Polls a TCP connect to `addr` until it succeeds; the time since `start`.
fn until_listening(addr: SocketAddr, start: Instant) -> Result<Duration> {
    loop {
        if TcpStream::connect(addr).is_ok() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(other(format!("nothing listened on {addr} within 10 s")));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Row 7: `posternd run` until its listener accepts a connection, vs smtp-sink (a process that
/// does nothing but bind), alternating.
pub fn startup(reps: usize) -> Result<Row> {
    let work = tempdir("postern-bench-start-")?;
    let (mut p, mut s) = (Vec::new(), Vec::new());
    for i in 0..reps {
        let listen = free_addr();
        let config = postern_config(
            free_addr(),
            listen,
            &work.path().join(format!("Maildir{i}")),
            "",
        );
        let path = work.path().join(format!("postern{i}.toml"));
        std::fs::write(&path, config).map_err(|e| other(format!("write config: {e}")))?;
        let mut cmd = Command::new(posternd_bin());
        cmd.arg("run")
            .arg("--config")
            .arg(&path)
            .env_remove("POSTERN_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let start = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| other(format!("start posternd run: {e}")))?;
        let took = until_listening(listen, start);
        terminate(&mut child, Duration::from_secs(5));
        p.push(took?.as_secs_f64() * 1000.0);

        let addr = free_addr();
        let start = Instant::now();
        let sink = BareSink::spawn(addr, false)?;
        let took = until_listening(addr, start);
        drop(sink);
        s.push(took?.as_secs_f64() * 1000.0);
    }
    let mut row = Row::new(
        "7a",
        "Start-up: `posternd run` to listening",
        "ms",
        "smtp-sink to listening",
        Goal::ValueAtMost(100.0),
    )
    .with_samples(&p, &s);
    row.note("from spawn to the first accepted TCP connect (polled every 0.2 ms)");
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::link_times;

    #[test]
    fn reads_the_link_tests_sorted_durations() {
        let out =
            "running 1 test\nlink up -> ETRN: median 305.1ms of [283.2ms, 1.25s, 950µs]\nok\n";

        assert_eq!(link_times(out), vec![0.2832, 1.25, 0.00095]);
    }

    #[test]
    fn reads_the_older_per_round_lines() {
        let out = "round 1: link up -> ETRN answered 0.751 s\nround 2: link up -> ETRN answered 0.283 s\n";

        assert_eq!(link_times(out), vec![0.751, 0.283]);
    }
}
