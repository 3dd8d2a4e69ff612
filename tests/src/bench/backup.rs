//! Row 10, Postern as a neighbour's backup MX (issue 16): 1,000 held messages released on one
//! ETRN into smtp-sink, against a private Postfix as the queuing server (held with
//! `defer_transports = smtp`, released by its flush service) into another smtp-sink.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use postern_tests::harness::{
    PosternConfig, Posternd, PostfixQueue, Result, TestMessage, Transcript, free_addr, send_all,
};

use super::outbound::until_received;
use super::rows::{MIB, mixed_messages_to, other};
use super::scratch_fs::Place;
use super::sinks::BareSink;
use super::{Goal, Row};

const HELD: usize = 1000;
const NEIGHBOUR: &str = "neighbour.test";

/// Sends `ETRN domain` on a fresh session and returns the reply's code and the moment it came.
fn etrn(addr: SocketAddr, domain: &str) -> Result<(u16, Instant)> {
    let mut t = Transcript::connect(addr)?;
    t.cmd("EHLO neighbour-gw.test")?;
    let reply = t.cmd(&format!("ETRN {domain}"))?;
    let at = Instant::now();
    let _ = t.cmd("QUIT");
    Ok((reply.code, at))
}

fn postern_release(place: &Place, messages: &[TestMessage]) -> Result<Duration> {
    let work = tempfile::Builder::new()
        .prefix("postern-bench-backup-")
        .tempdir_in(&place.dir)
        .map_err(|e| {
            other(format!(
                "create a directory in {}: {e}",
                place.dir.display()
            ))
        })?;
    let sink = BareSink::start(true)?;
    let listen = free_addr();
    let config = PosternConfig::etrn(free_addr(), listen, &work.path().join("Maildir"))
        .state_dir(&work.path().join("state"))
        .hostname("backup.office.test")
        .backup_for(
            NEIGHBOUR,
            &format!("smtp://{}", sink.addr()),
            &["etrn"],
            &[],
        )
        .render();
    let postern = Posternd::builder(&config)
        .without_events()
        .wait_for(listen)
        .start()?;
    for reply in send_all(listen, messages)? {
        if reply.code != 250 {
            return Err(other(format!("Postern did not hold a message: {reply}")));
        }
    }
    let started = Instant::now();
    let (code, _) = etrn(listen, NEIGHBOUR)?;
    if code != 253 {
        return Err(other(format!(
            "ETRN got {code}, not 253\n{}",
            postern.log_text()
        )));
    }
    until_received(&sink, HELD as u64, started)
}

fn postfix_release(place: &Place, messages: &[TestMessage]) -> Result<Duration> {
    let sink = BareSink::start(true)?;
    let postfix = PostfixQueue::builder()
        .parent_dir(&place.dir)
        .relay_domains(&[NEIGHBOUR])
        .deliver_to(sink.addr())
        .start()?;
    postfix.queue_messages(messages)?;
    let started = Instant::now();
    let (code, _) = etrn(postfix.addr(), NEIGHBOUR)?;
    if code != 250 {
        return Err(other(format!("Postfix answered ETRN with {code}")));
    }
    until_received(&sink, HELD as u64, started)
}

/// Row 10: A B A B ... of the two releases, each from a fresh queuing server.
pub fn release(reps: usize) -> Result<Row> {
    let place = Place::new(2048);
    let messages = mixed_messages_to(HELD, &format!("bob@{NEIGHBOUR}"));
    let total: usize = messages.iter().map(|m| m.data.len()).sum();
    let (mut p, mut f) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        p.push(postern_release(&place, &messages)?.as_secs_f64());
        f.push(postfix_release(&place, &messages)?.as_secs_f64());
    }
    let mut row = Row::new(
        "10",
        "Release 1,000 held messages on ETRN (Postern as the queuing server)",
        "s",
        "Postfix as the queuing server, same ETRN, smtp-sink",
        Goal::RatioAtMost(1.0),
    )
    .with_samples(&p, &f);
    row.note(format!(
        "{HELD} messages, 1–100 KiB log-uniform, {:.1} MiB in all, held for {NEIGHBOUR} \
         ([[backup_for]] deliver_to = smtp://the sink; Postfix: relay_domains with \
         defer_transports = smtp and its flush service); from sending ETRN to the last message \
         counted by smtp-sink -c; spool and queue on {}",
        total as f64 / MIB,
        place.text
    ));
    Ok(row)
}
