//! What the backup MX shares between the inbound sessions, the ETRN/ATRN servers and the runs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::last_fetch::{self, LastFetch};
use crate::config::{BackupFor, Config};
use crate::deliver::Transaction;
use crate::events::EventSender;
use crate::outbound::spool::{Record, Spool, SpoolError};

/// Held mail older than this share of `max_hold` needs the admin: it goes back to its senders
/// soon unless the neighbour fetches it.
const NEAR_MAX_HOLD: (u64, u64) = (3, 4);

/// One backed-up domain in the status snapshot.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeldStatus {
    pub domain: String,
    /// Messages held for it now.
    pub held: u32,
    /// When the neighbour last asked for it (ETRN or ATRN; RFC 3339), kept across restarts.
    pub last_fetch: Option<String>,
    /// False for mail left from a `[[backup_for]]` that was removed (it goes back to senders).
    pub configured: bool,
    /// The held messages' size together (bytes).
    #[serde(default)]
    pub bytes: u64,
    /// When the oldest held message arrived (RFC 3339).
    #[serde(default)]
    pub oldest: Option<String>,
    /// How the neighbour last asked: `ETRN from 192.0.2.7`, `ATRN by neighbour`.
    #[serde(default)]
    pub last_fetch_by: Option<String>,
    /// When the oldest held message goes back to its sender (arrival + `max_hold`; RFC 3339).
    #[serde(default)]
    pub returns_at: Option<String>,
    /// The oldest held message is past three quarters of `max_hold`, or its domain is no
    /// longer backed up here.
    #[serde(default)]
    pub needs_attention: bool,
}

fn rfc3339(unix: u64) -> Option<String> {
    chrono::DateTime::from_timestamp(i64::try_from(unix).ok()?, 0)
        .map(|t| t.with_timezone(&chrono::Local).to_rfc3339())
}

/// Per domain: what is held and when the neighbour last asked, as of `now` (Unix seconds).
/// Configured domains first, in configuration order, then held mail of removed ones.
pub fn held_status(
    entries: &[BackupFor],
    held: &[Record],
    last_fetch: &HashMap<String, LastFetch>,
    now: u64,
) -> Vec<HeldStatus> {
    let one = |domain: &str, entry: Option<&BackupFor>| {
        let mine: Vec<&Record> = held
            .iter()
            .filter(|r| r.held_for.as_deref() == Some(domain))
            .collect();
        let oldest = mine.iter().map(|r| r.arrived).min();
        let max_hold = entry.map(|e| e.max_hold.as_secs());
        let returns = oldest.zip(max_hold).map(|(o, m)| o.saturating_add(m));
        let near = oldest.zip(max_hold).is_some_and(|(o, m)| {
            now.saturating_sub(o).saturating_mul(NEAR_MAX_HOLD.1)
                >= m.saturating_mul(NEAR_MAX_HOLD.0)
        });
        let fetch = last_fetch.get(domain);
        HeldStatus {
            domain: domain.to_string(),
            held: mine.len() as u32,
            last_fetch: fetch.and_then(|f| rfc3339(f.at)),
            configured: entry.is_some(),
            bytes: mine.iter().map(|r| r.size).sum(),
            oldest: oldest.and_then(rfc3339),
            last_fetch_by: fetch.map(|f| f.by.clone()),
            returns_at: returns.and_then(rfc3339),
            needs_attention: near || (entry.is_none() && !mine.is_empty()),
        }
    };
    let mut out: Vec<HeldStatus> = entries.iter().map(|e| one(&e.domain, Some(e))).collect();
    for r in held {
        let Some(d) = r.held_for.as_deref() else {
            continue;
        };
        if !out.iter().any(|s| s.domain == d) {
            out.push(one(d, None));
        }
    }
    out
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
    last_fetch: Mutex<HashMap<String, LastFetch>>,
    /// Where `last_fetch` is kept across restarts (the state folder).
    last_fetch_file: std::path::PathBuf,
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
        let last_fetch_file = config.state_dir.join(last_fetch::FILE);
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
            last_fetch: Mutex::new(last_fetch::load(&last_fetch_file)),
            last_fetch_file,
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

    /// Records that the neighbour asked for `domain` now, and how (`ETRN from 192.0.2.7`).
    pub fn note_fetch(&self, domain: &str, by: &str) {
        let fetch = LastFetch {
            at: crate::outbound::spool::unix_now(),
            by: by.to_string(),
        };
        let all = {
            let mut map = lock(&self.last_fetch);
            map.insert(domain.to_string(), fetch);
            map.clone()
        };
        if let Err(e) = last_fetch::save(&self.last_fetch_file, &all) {
            tracing::warn!(
                "cannot save when {domain} was last fetched in {}: {e}",
                self.last_fetch_file.display()
            );
        }
    }

    /// Per domain: what is held and when the neighbour last asked (reads the spool folder).
    pub fn status(&self) -> Vec<HeldStatus> {
        let held = self.held_all().unwrap_or_default();
        let last_fetch = lock(&self.last_fetch).clone();
        held_status(
            &self.entries,
            &held,
            &last_fetch,
            crate::outbound::spool::unix_now(),
        )
    }

    /// When the neighbour last asked for `domain` (seconds since the epoch).
    pub fn last_fetch(&self, domain: &str) -> Option<u64> {
        lock(&self.last_fetch).get(domain).map(|f| f.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackupTarget, Release};

    const DAY: u64 = 86_400;

    fn entry(domain: &str, max_hold_days: u64) -> BackupFor {
        BackupFor {
            domain: domain.into(),
            deliver_to: BackupTarget::Mx,
            release: vec![Release::Etrn, Release::Atrn],
            username: None,
            hold: true,
            max_hold: Duration::from_secs(max_hold_days * DAY),
        }
    }

    fn record(domain: &str, arrived: u64, size: u64) -> Record {
        serde_json::from_value(serde_json::json!({
            "id": format!("m{arrived}"), "sender": "a@outside.test", "recipients": [],
            "arrived": arrived, "size": size, "attempts": 0, "held_for": domain,
        }))
        .expect("a record")
    }

    #[test]
    fn the_status_counts_sizes_and_dates_what_is_held_per_domain() {
        let now = 100 * DAY;
        let held = [
            record("neighbour.example", now - DAY, 1_000),
            record("neighbour.example", now - 2 * DAY, 500),
            record("slow.example", now - 6 * DAY, 10),
            record("gone.example", now - DAY, 7),
        ];
        let mut fetched = HashMap::new();
        fetched.insert(
            "neighbour.example".to_string(),
            LastFetch {
                at: now - 3600,
                by: "ETRN from 192.0.2.7".into(),
            },
        );
        let entries = [
            entry("neighbour.example", 7),
            entry("slow.example", 7),
            entry("idle.example", 7),
        ];

        let status = held_status(&entries, &held, &fetched, now);

        let summary: Vec<(&str, u32, u64, bool, bool, bool)> = status
            .iter()
            .map(|s| {
                (
                    s.domain.as_str(),
                    s.held,
                    s.bytes,
                    s.configured,
                    s.needs_attention,
                    s.last_fetch.is_some(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("neighbour.example", 2, 1_500, true, false, true),
                ("slow.example", 1, 10, true, true, false),
                ("idle.example", 0, 0, true, false, false),
                ("gone.example", 1, 7, false, true, false),
            ]
        );
        let neighbour = &status[0];
        assert_eq!(
            neighbour.last_fetch_by.as_deref(),
            Some("ETRN from 192.0.2.7")
        );
        assert_eq!(neighbour.oldest, rfc3339(now - 2 * DAY));
        assert_eq!(neighbour.returns_at, rfc3339(now + 5 * DAY));
        assert_eq!(status[2].oldest, None);
        assert_eq!(status[3].returns_at, None, "no max_hold without an entry");
    }

    #[test]
    fn the_last_fetch_survives_a_restart() {
        let state = tempfile::tempdir().expect("a folder");
        let text = format!(
            r#"
state_dir = "{}"
domains = ["a.test"]
[[queue_servers]]
host = "isp.test"
[inbound]
listen = ["127.0.0.1:2525"]
deliver = "maildir:/srv/mail/Maildir"
[[backup_for]]
domain = "b.test"
release = ["etrn"]
"#,
            state.path().display()
        );
        let config = Config::parse(&text, std::path::Path::new("postern.toml")).expect("a config");
        let (events, _seen) = crate::events::channel();
        let first = BackupServer::from_config(&config, events.clone()).expect("a backup MX");
        assert_eq!(first.status()[0].last_fetch, None);

        first.note_fetch("b.test", "ETRN from 192.0.2.7");
        drop(first);
        let again = BackupServer::from_config(&config, events).expect("a backup MX");

        let b = &again.status()[0];
        assert!(b.last_fetch.is_some());
        assert_eq!(b.last_fetch_by.as_deref(), Some("ETRN from 192.0.2.7"));
    }
}
