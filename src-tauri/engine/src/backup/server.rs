//! What the backup MX shares between the inbound sessions, the ETRN/ATRN servers and the runs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{BackupFor, Config};
use crate::deliver::Transaction;
use crate::events::EventSender;
use crate::outbound::spool::{Record, Spool, SpoolError};

/// One backed-up domain in the status snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeldStatus {
    pub domain: String,
    /// Messages held for it now.
    pub held: u32,
    /// When the neighbour last asked for it (ETRN or ATRN; RFC 3339), since the start.
    pub last_fetch: Option<String>,
    /// False for mail left from a `[[backup_for]]` that was removed (it goes back to senders).
    pub configured: bool,
}

/// The backup MX of a running engine.
#[derive(Debug)]
pub struct BackupServer {
    pub entries: Vec<BackupFor>,
    pub spool: Spool,
    pub hostname: String,
    /// Port of the neighbour's MX hosts (`[backup] mx_port`).
    pub mx_port: u16,
    /// `[dns] nameservers`, for the MX lookups.
    pub nameservers: Vec<SocketAddr>,
    pub events: EventSender,
    /// Each wait towards the neighbour's server.
    pub timeout: Duration,
    etrn_per_minute: u32,
    running: Mutex<HashSet<String>>,
    etrn_seen: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
    last_fetch: Mutex<HashMap<String, u64>>,
    /// The outbound relay's spool handle (it feeds the queue task), for DSNs.
    outbound: std::sync::OnceLock<Spool>,
}

/// While it lives, the domain has a delivery run going (the next asker gets 458).
#[derive(Debug)]
pub struct RunGuard {
    server: Arc<BackupServer>,
    pub domain: String,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        lock(&self.server.running).remove(&self.domain);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl BackupServer {
    /// `None` without `[[backup_for]]` and without held mail left from an earlier
    /// configuration (which must still go back to its senders). The spool is the outbound
    /// spool's folder.
    pub fn from_config(config: &Config, events: EventSender) -> Option<BackupServer> {
        let dir = match &config.outbound {
            Some(o) => o.spool_dir(&config.state_dir),
            None => config.state_dir.join("outbound"),
        };
        let spool = Spool::at(&dir, &config.inbound.hostname);
        if config.backup_for.is_empty()
            && !spool
                .list()
                .is_ok_and(|l| l.iter().any(|r| r.held_for.is_some()))
        {
            return None;
        }
        Some(BackupServer {
            entries: config.backup_for.clone(),
            spool,
            hostname: config.inbound.hostname.clone(),
            mx_port: config.backup.mx_port,
            nameservers: config.dns.nameservers.clone(),
            events,
            timeout: crate::outbound::smarthost::DEFAULT_TIMEOUT,
            etrn_per_minute: config.backup.etrn_per_minute,
            running: Mutex::new(HashSet::new()),
            etrn_seen: Mutex::new(HashMap::new()),
            last_fetch: Mutex::new(HashMap::new()),
            outbound: std::sync::OnceLock::new(),
        })
    }

    /// Opens (creates) the spool folder and recovers it; call once before any session runs.
    pub fn open_spool(&self) -> Result<usize, SpoolError> {
        let (_, recovered) = Spool::open(self.spool.dir(), &self.hostname)?;
        Ok(recovered
            .records
            .iter()
            .filter(|r| r.held_for.is_some())
            .count())
    }

    /// The entry for `domain` (lower-case), if this office backs it up.
    pub fn entry(&self, domain: &str) -> Option<&BackupFor> {
        self.entries.iter().find(|e| e.domain == domain)
    }

    /// A spool transaction for a message held for `domain`.
    pub fn transaction(&self, domain: &str, mail_from: &str) -> Transaction {
        Transaction::Spool {
            spool: self.spool.clone(),
            mail_from: mail_from.to_string(),
            rcpts: Vec::new(),
            held_for: Some(domain.to_string()),
        }
    }

    /// Every message held for `domain` with a recipient still to deliver, oldest first.
    pub fn held(&self, domain: &str) -> Result<Vec<Record>, SpoolError> {
        Ok(self
            .held_all()?
            .into_iter()
            .filter(|r| r.held_for.as_deref() == Some(domain))
            .collect())
    }

    /// Every held message, whatever its domain.
    pub fn held_all(&self) -> Result<Vec<Record>, SpoolError> {
        Ok(self
            .spool
            .list()?
            .into_iter()
            .filter(|r| r.held_for.is_some() && !r.is_done())
            .collect())
    }

    /// Marks `domain` as having a run going; `None` if one already is.
    pub fn try_start(self: &Arc<Self>, domain: &str) -> Option<RunGuard> {
        if !lock(&self.running).insert(domain.to_string()) {
            return None;
        }
        Some(RunGuard {
            server: self.clone(),
            domain: domain.to_string(),
        })
    }

    /// Counts an ETRN from `client`; false when it is over `[backup] etrn_per_minute`.
    pub fn etrn_allowed(&self, client: Option<IpAddr>) -> bool {
        let (Some(ip), n) = (client, self.etrn_per_minute) else {
            return true;
        };
        if n == 0 {
            return true;
        }
        let now = Instant::now();
        let mut seen = lock(&self.etrn_seen);
        let times = seen.entry(ip).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            times.pop_front();
        }
        if times.len() >= n as usize {
            return false;
        }
        times.push_back(now);
        true
    }

    /// Gives the outbound relay's spool, through which DSNs go out.
    pub fn set_outbound(&self, spool: Spool) {
        let _ = self.outbound.set(spool);
    }

    pub fn outbound_spool(&self) -> Option<&Spool> {
        self.outbound.get()
    }

    /// Records that the neighbour asked for `domain` now (for the status).
    pub fn note_fetch(&self, domain: &str) {
        lock(&self.last_fetch).insert(domain.to_string(), crate::outbound::spool::unix_now());
    }

    /// Per domain: what is held and when the neighbour last asked (reads the spool folder).
    pub fn status(&self) -> Vec<HeldStatus> {
        let held = self.held_all().unwrap_or_default();
        let count = |d: &str| {
            held.iter()
                .filter(|r| r.held_for.as_deref() == Some(d))
                .count() as u32
        };
        let mut out: Vec<HeldStatus> = self
            .entries
            .iter()
            .map(|e| HeldStatus {
                domain: e.domain.clone(),
                held: count(&e.domain),
                last_fetch: self
                    .last_fetch(&e.domain)
                    .and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0))
                    .map(|t| t.to_rfc3339()),
                configured: true,
            })
            .collect();
        for r in &held {
            let Some(d) = r.held_for.as_deref() else {
                continue;
            };
            if !out.iter().any(|s| s.domain == d) {
                out.push(HeldStatus {
                    domain: d.to_string(),
                    held: count(d),
                    last_fetch: None,
                    configured: false,
                });
            }
        }
        out
    }

    /// When the neighbour last asked for `domain` (seconds since the epoch).
    pub fn last_fetch(&self, domain: &str) -> Option<u64> {
        lock(&self.last_fetch).get(domain).copied()
    }
}
