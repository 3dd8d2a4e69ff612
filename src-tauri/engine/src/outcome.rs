//! The result of one dequeue for one domain, shared by the dequeue code that makes it, the
//! supervisor that acts on it and the events and status that show it. A leaf: it imports no
//! other module of the engine.

use serde::{Deserialize, Serialize};

/// What the supervisor should do about an outcome.
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// The server is releasing mail (or has none): done.
    Released,
    /// Nothing waits for this domain.
    NothingWaiting,
    /// A temporary problem: try again later with backoff.
    Retry,
    /// A configuration problem on either side: retrying will not help; show the fix.
    Permanent,
}

/// The result of asking one server for one domain's mail (or of failing before the ask).
#[cfg_attr(test, derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// `host:port` of the queuing server.
    pub server: String,
    pub domain: String,
    /// The command that got this reply (`ETRN office.test`), or the failed step (`connect`).
    pub step: String,
    /// The reply code; `None` when no reply came (connection refused, timeout, TLS failure).
    pub code: Option<u16>,
    /// The server's own words (or the local error).
    pub text: String,
    pub disposition: Disposition,
    /// What happened, in plain language.
    pub meaning: String,
    /// What to do about it, when anything is to be done.
    pub fix: Option<String>,
    /// The `253 <n>` count of waiting messages, when the server reported it.
    pub pending: Option<u64>,
    /// ATRN/TURN: messages received over the turned-around connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<u32>,
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(
            self.disposition,
            Disposition::Released | Disposition::NothingWaiting
        )
    }

    /// One human line: `mail.isp.example:25 office.test: 250 Queuing started — meaning. Fix: …`
    pub fn summary(&self) -> String {
        let code = self.code.map(|c| format!("{c} ")).unwrap_or_default();
        let mut line = format!(
            "{} {}: {}{} — {}",
            self.server, self.domain, code, self.text, self.meaning
        );
        if let Some(n) = self.pending {
            line.push_str(&format!(" ({n} messages waiting)"));
        }
        if let Some(n) = self.received {
            line.push_str(&format!(" ({n} messages received)"));
        }
        if let Some(fix) = &self.fix {
            line.push_str(". Fix: ");
            line.push_str(fix);
        }
        line
    }
}
