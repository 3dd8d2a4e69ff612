//! Rows 9a–c, the outbound relay (issue 15): the submission listener's durable accept rate
//! against Postfix's smtpd as a submission relay, the flush of a queue after the link comes up
//! against Postfix's `postqueue -f`, and the memory of sending one 50 MiB message.
//!
//! The link is real: Postern's probe is an address inside a network namespace of the bench's
//! own ([`NetNs`]), and taking the host side of its veth down makes that address unreachable at
//! once, so Postern holds its queue exactly as on a dial-up line. Postfix holds its queue the
//! way its own dial-up set-up does (`defer_transports = smtp`) until `postqueue -f`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use postern_tests::harness::{
    NetNs, PosternConfig, Posternd, PostfixQueue, Result, free_addr, poll_until, smtp_client,
};

use super::procfs;
use super::rows::{
    LARGE_MESSAGE, LOAD, LOAD_MESSAGES, MIB, mixed_messages_to, other, smtp_source_to,
};
use super::scratch_fs::Place;
use super::sinks::BareSink;
use super::{Goal, Row};

const FLUSH_MESSAGES: usize = 1000;
const FLUSH_TIMEOUT: Duration = Duration::from_secs(300);
const RECIPIENT: &str = "user@outside.example";

/// A running Postern whose outbound relay listens on `submit` and sends through `smarthost`,
/// with its link probe inside `ns`.
struct Relay {
    daemon: Posternd,
    submit: SocketAddr,
    spool: std::path::PathBuf,
    _work: tempfile::TempDir,
}

impl Relay {
    fn start(ns: &NetNs, smarthost: SocketAddr, parent: &Path) -> Result<Relay> {
        Self::start_with(ns, smarthost, parent, false)
    }

    /// With `events`, `posternd run --events` (the flush row waits for the link-up event).
    fn start_with(ns: &NetNs, smarthost: SocketAddr, parent: &Path, events: bool) -> Result<Relay> {
        let work = tempfile::Builder::new()
            .prefix("postern-bench-outbound-")
            .tempdir_in(parent)
            .map_err(|e| other(format!("create a directory in {}: {e}", parent.display())))?;
        let listen = free_addr();
        let submit = free_addr();
        let state = work.path().join("state");
        let config = PosternConfig::etrn(free_addr(), listen, &work.path().join("Maildir"))
            .state_dir(&state)
            .inbound_option("max_message_size", "\"64M\"")
            .probe(&format!("{}:25", ns.ns_addr()))
            .append(&format!(
                "\n[outbound]\nlisten = [\"{submit}\"]\nallow = [\"127.0.0.1/32\"]\n\
                 smarthost = \"smtp://{smarthost}\"\nsmarthost_tls = \"off\"\n"
            ))
            .render();
        let builder = Posternd::builder(&config).wait_for(submit);
        let daemon = if events {
            builder
        } else {
            builder.without_events()
        }
        .start()?;
        Ok(Relay {
            daemon,
            submit,
            spool: state.join("outbound"),
            _work: work,
        })
    }

    /// Committed messages in the spool (each has its record, `ID.rec`).
    fn spooled(&self) -> usize {
        std::fs::read_dir(&self.spool).map_or(0, |d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".rec"))
                .count()
        })
    }

    fn wait_spooled(&self, n: usize) -> Result<()> {
        poll_until(
            format!("{n} message(s) in the spool"),
            FLUSH_TIMEOUT,
            || (self.spooled() == n).then_some(()),
        )
        .map_err(|e| other(format!("{e}\n{}", self.daemon.log_text())))
    }
}

/// A Postfix that holds mail for `outside.example` until `postqueue -f`, then relays it to
/// `smarthost`.
fn postfix_relay(smarthost: SocketAddr, parent: &Path) -> Result<PostfixQueue> {
    PostfixQueue::builder()
        .parent_dir(parent)
        .relay_domains(&["outside.example"])
        .deliver_to(smarthost)
        .hostname("office-relay.test")
        .start()
}

pub(super) fn until_received(sink: &BareSink, n: u64, started: Instant) -> Result<Duration> {
    poll_until(
        format!("{n} message(s) at smtp-sink"),
        FLUSH_TIMEOUT,
        || (sink.received() >= n).then_some(()),
    )?;
    Ok(started.elapsed())
}

/// Row 9a: `smtp-source` (row 1's load) into Postern's submission listener with the link down,
/// and into Postfix's smtpd holding for `postqueue -f`; A B A B.
pub fn submission(reps: usize) -> Result<Row> {
    let place = Place::new(2048);
    let ns = NetNs::create()?;
    ns.link_down()?;
    let nowhere = free_addr();
    let postfix = postfix_relay(nowhere, &place.dir)?;
    let rate = |took: Duration| LOAD_MESSAGES as f64 / took.as_secs_f64();
    let (mut p, mut f) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let relay = Relay::start(&ns, nowhere, &place.dir)?;
        let took = smtp_source_to(relay.submit, &LOAD, RECIPIENT)?;
        if relay.spooled() != LOAD_MESSAGES {
            return Err(other(format!(
                "Postern acknowledged {LOAD_MESSAGES} messages but {} are in its spool\n{}",
                relay.spooled(),
                relay.daemon.log_text()
            )));
        }
        p.push(rate(took));
        drop(relay);
        f.push(rate(smtp_source_to(postfix.addr(), &LOAD, RECIPIENT)?));
        postfix.wait_for_queue_len(LOAD_MESSAGES, FLUSH_TIMEOUT)?;
        postfix.delete_queue()?;
    }
    let mut row = Row::new(
        "9a",
        "Submission accept throughput, durable, vs Postfix",
        "msg/s",
        "Postfix smtpd as a submission relay, queue on disk, holding",
        Goal::RatioAtLeast(2.0),
    )
    .with_samples(&p, &f);
    row.note(format!(
        "load: smtp-source {} to {RECIPIENT}; Postern's link is down (its probe's address is \
         unreachable), so it only spools, 250 after message, record and folder are fsynced; \
         Postfix holds with defer_transports = smtp; each repetition starts from an empty spool \
         and an empty Postfix queue; spools and queue on {}",
        LOAD.join(" "),
        place.text
    ));
    Ok(row)
}

/// Row 9b: 1,000 messages (1–100 KiB) queued while the link is down; the time from bringing
/// the link up to the last one at smtp-sink, against Postfix from `postqueue -f`.
pub fn flush(reps: usize) -> Result<Row> {
    let place = Place::new(2048);
    let ns = NetNs::create()?;
    let messages = mixed_messages_to(FLUSH_MESSAGES, RECIPIENT);
    let total: usize = messages.iter().map(|m| m.data.len()).sum();
    let (mut p, mut f, mut noticed) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps {
        ns.link_down()?;
        let sink = BareSink::start(true)?;
        let relay = Relay::start_with(&ns, sink.addr(), &place.dir, true)?;
        submit_all(relay.submit, &messages)?;
        relay.wait_spooled(FLUSH_MESSAGES)?;
        let link_up = Instant::now();
        ns.link_up()?;
        relay.daemon.wait_for_event(
            |e| e["type"] == "link_changed" && e["up"] == true,
            FLUSH_TIMEOUT,
        )?;
        let started = Instant::now();
        noticed.push(started.duration_since(link_up).as_secs_f64());
        p.push(until_received(&sink, FLUSH_MESSAGES as u64, started)?.as_secs_f64());
        relay.wait_spooled(0)?;
        drop(relay);
        drop(sink);

        let sink = BareSink::start(true)?;
        let postfix = postfix_relay(sink.addr(), &place.dir)?;
        postfix.queue_messages(&messages)?;
        let started = Instant::now();
        postfix.flush_queue()?;
        f.push(until_received(&sink, FLUSH_MESSAGES as u64, started)?.as_secs_f64());
    }
    let mut row = Row::new(
        "9b",
        "Flush 1,000 queued messages after link-up",
        "s",
        "Postfix postqueue -f, same smarthost (smtp-sink)",
        Goal::RatioAtMost(1.0),
    )
    .with_samples(&p, &f);
    row.note(format!(
        "link up to Postern's link_changed event (not in the row; row 3 measures it): {} s",
        noticed
            .iter()
            .map(|v| super::fmt_num(*v))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    row.note(format!(
        "{FLUSH_MESSAGES} messages, 1–100 KiB log-uniform, {:.1} MiB in all, to smtp-sink -c as \
         the smarthost; Postern (posternd run --events) from its link_changed event (the link \
         brought up for real with `ip link set ... up`) to the last message counted at the sink; Postfix from `postqueue -f` \
         (defer_transports = smtp until then, its default concurrency); spools and queue on {}",
        total as f64 / MIB,
        place.text
    ));
    Ok(row)
}

/// One connection, every message, each answered 250 (the spool is not the thing measured).
fn submit_all(addr: SocketAddr, messages: &[postern_tests::harness::TestMessage]) -> Result<()> {
    for reply in smtp_client::send_all(addr, messages)? {
        if reply.code != 250 {
            return Err(other(format!("Postern did not queue a message: {reply}")));
        }
    }
    Ok(())
}

/// Row 9c: VmHWM of `posternd` while it sends one 50 MiB message to smtp-sink (the peak is
/// reset after the message was spooled, so receiving it does not count).
pub fn large_send(reps: usize) -> Result<Row> {
    let place = Place::new(2048);
    let ns = NetNs::create()?;
    let size = LARGE_MESSAGE.to_string();
    let (mut peaks, mut sizes) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        ns.link_down()?;
        let sink = BareSink::start(true)?;
        let relay = Relay::start(&ns, sink.addr(), &place.dir)?;
        smtp_source_to(
            relay.submit,
            &["-s", "1", "-m", "1", "-l", &size],
            RECIPIENT,
        )?;
        relay.wait_spooled(1)?;
        reset_peak(relay.daemon.pid())?;
        ns.link_up()?;
        until_received(&sink, 1, Instant::now())?;
        relay.wait_spooled(0)?;
        peaks.push(procfs::status_kb(relay.daemon.pid(), "VmHWM")? as f64 / 1024.0);
        sizes.push(LARGE_MESSAGE as f64 / MIB);
    }
    let mut row = Row::new(
        "9c",
        "Peak RSS sending one 50 MiB message",
        "MiB",
        "the message size",
        Goal::ValueAtMost(32.0),
    )
    .with_samples(&peaks, &sizes);
    row.note(
        "submitted while the link is down, VmHWM reset (/proc/PID/clear_refs 5), the link \
         brought up, VmHWM read once the message is delivered and out of the spool",
    );
    Ok(row)
}

/// Resets the process's peak RSS to its current RSS.
fn reset_peak(pid: u32) -> Result<()> {
    let path = Path::new("/proc").join(pid.to_string()).join("clear_refs");
    std::fs::write(&path, "5").map_err(|e| other(format!("write {}: {e}", path.display())))
}
