//! Load for the kill -9 tests: senders that keep submitting over fresh connections until the
//! server goes away, a ledger of what was sent and acknowledged, and the exactly-once account.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::messages::TestMessage;
use super::smtp_client::Transcript;

/// Message numbers unique across every sender of the process.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// What the senders did: every message sent (by Message-ID, with its digest) and those that got
/// 250 after DATA.
#[derive(Default)]
pub struct Ledger {
    sent: Mutex<HashMap<String, [u8; 32]>>,
    acked: Mutex<HashSet<String>>,
    acked_count: AtomicUsize,
}

/// Who the senders say they are and whom they write to.
#[derive(Clone, Copy)]
pub struct Envelope {
    pub ehlo: &'static str,
    pub from: &'static str,
    pub to: &'static str,
}

/// Stored copies (digests) by Message-ID, checked against the ledger.
pub struct Account {
    pub sent: usize,
    pub acked: usize,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub altered: Vec<String>,
    pub stored_unacked: usize,
}

impl Ledger {
    pub fn acked_count(&self) -> usize {
        self.acked_count.load(Ordering::Relaxed)
    }

    /// Sends messages over fresh connections (5 per connection) until the server goes away.
    pub fn send_until_gone(&self, addr: SocketAddr, envelope: Envelope) {
        loop {
            let Ok(mut s) = Transcript::connect_timeout(addr, Duration::from_secs(10)) else {
                return;
            };
            if s.greeting().code != 220 || s.ehlo(envelope.ehlo).is_err() {
                return;
            }
            for _ in 0..5 {
                let i = NEXT.fetch_add(1, Ordering::Relaxed);
                let message = TestMessage::sized(i, 500 + (i * 7919) % 40_000, &[envelope.to]);
                let Some(id) = message.message_id() else {
                    return;
                };
                let accepted = s
                    .cmd(&format!("MAIL FROM:<{}>", envelope.from))
                    .is_ok_and(|r| r.code == 250)
                    && s.cmd(&format!("RCPT TO:<{}>", envelope.to))
                        .is_ok_and(|r| r.code == 250);
                if !accepted {
                    return;
                }
                lock(&self.sent).insert(id.clone(), message.digest());
                match s.data(&message.data) {
                    Ok(reply) if reply.code == 250 => {
                        lock(&self.acked).insert(id);
                        self.acked_count.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => return,
                }
            }
            s.quit();
        }
    }

    /// What `stored` (digests by Message-ID) holds against what was sent and acknowledged.
    pub fn account(&self, stored: &HashMap<String, Vec<[u8; 32]>>) -> Account {
        let sent = lock(&self.sent).clone();
        let acked = lock(&self.acked).clone();
        let mut lost: Vec<String> = acked
            .iter()
            .filter(|id| !stored.contains_key(*id))
            .cloned()
            .collect();
        let mut duplicated: Vec<String> = stored
            .iter()
            .filter(|(_, copies)| copies.len() > 1)
            .map(|(id, _)| id.clone())
            .collect();
        let mut altered: Vec<String> = stored
            .iter()
            .filter(|(id, copies)| copies.iter().any(|d| sent.get(*id) != Some(d)))
            .map(|(id, _)| id.clone())
            .collect();
        lost.sort();
        duplicated.sort();
        altered.sort();
        Account {
            sent: sent.len(),
            acked: acked.len(),
            lost,
            duplicated,
            altered,
            stored_unacked: stored.keys().filter(|id| !acked.contains(*id)).count(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
