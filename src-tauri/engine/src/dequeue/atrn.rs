//! ATRN (RFC 2645, On-Demand Mail Relay) and its legacy ancestor TURN (RFC 821): after logging
//! in, the office asks for its mail and the two sides swap roles on the same connection, so the
//! mail reaches offices behind NAT or with a dynamic address.
//!
//! On `250` the dequeue connection — its TLS session kept, and every byte already read handed
//! over — becomes an inbound SMTP server session, the same one the listener runs: same domain
//! checks, size limits, durability and delivery. Idle and total timeouts end a stalled provider.

use std::sync::Arc;
use std::time::Duration;

use super::reply::{Disposition, Outcome, atrn_meaning};
use super::session::{DequeueContext, failure_outcome, negotiate, server_label};
use crate::config::QueueServer;
use crate::smtp_server::SessionContext;
use crate::smtp_server::session::{self, SessionEnd, SessionInfo};

/// A turned-around session may run this long at most, however busy.
const TURNAROUND_LIMIT: Duration = Duration::from_secs(2 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turnaround {
    Atrn,
    Turn,
}

impl Turnaround {
    fn command(self) -> &'static str {
        match self {
            Turnaround::Atrn => "ATRN",
            Turnaround::Turn => "TURN",
        }
    }
    fn via(self) -> &'static str {
        match self {
            Turnaround::Atrn => "atrn",
            Turnaround::Turn => "turn",
        }
    }
}

/// Asks for the mail of all `domains` in one command and receives it on the same connection.
/// One outcome, for the list of domains.
pub async fn run(
    server: &QueueServer,
    domains: &[String],
    ctx: &DequeueContext,
    kind: Turnaround,
) -> Vec<Outcome> {
    let label = server_label(server);
    let joined = domains.join(",");
    let outcome =
        |step: String, code: Option<u16>, text: String, m: super::reply::Meaning| Outcome {
            server: label.clone(),
            domain: joined.clone(),
            step,
            code,
            text,
            disposition: m.disposition,
            meaning: m.meaning,
            fix: m.fix,
            pending: m.pending,
            received: None,
        };
    let Some(inbound) = ctx.inbound.clone() else {
        return vec![config_outcome(
            &label,
            &joined,
            "Postern has no delivery target for the mail (configure [inbound] deliver)",
        )];
    };
    if server.username.is_none() {
        return vec![config_outcome(
            &label,
            &joined,
            &format!(
                "{} needs a login: set `username` for this queue server",
                kind.command()
            ),
        )];
    }
    if kind == Turnaround::Turn && !server.allow_insecure_turn {
        return vec![config_outcome(
            &label,
            &joined,
            "TURN lets anyone who can log in take the mail; it is used only with allow_insecure_turn = true",
        )];
    }

    let mut client = match negotiate(server, ctx).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(server = %label, "{} failed: {e}", kind.command());
            return vec![failure_outcome(&label, &joined, &e)];
        }
    };
    let command = match kind {
        Turnaround::Atrn => format!("ATRN {joined}"),
        Turnaround::Turn => "TURN".to_string(),
    };
    let reply = match client.command(&command).await {
        Ok(r) => r,
        Err(e) => return vec![failure_outcome(&label, &joined, &e)],
    };
    let meaning = atrn_meaning(&reply, &joined, kind.command());
    tracing::info!(server = %label, code = reply.code, "{command}: {}", reply.text());
    if reply.code != 250 {
        client.quit().await;
        return vec![outcome(command, Some(reply.code), reply.text(), meaning)];
    }

    let tls = client.is_tls();
    let peer = client.peer_addr();
    let (conn, already_read) = client.into_parts();
    let mut settings = inbound.settings.clone();
    settings.idle_timeout = server.timeout;
    settings.session_timeout = Some(TURNAROUND_LIMIT);
    // Mail that comes to us over a turnaround is the office's own.
    settings.backup = None;
    let session_ctx = Arc::new(SessionContext {
        settings,
        delivery: inbound.delivery.clone(),
        events: inbound.events.clone(),
        arrivals: inbound.arrivals.clone(),
        tls: None,
    });
    let (_keep_open, never) = tokio::sync::watch::channel(false);
    let info = SessionInfo {
        peer,
        tls,
        via: kind.via(),
    };
    let summary = session::run(conn, already_read, info, &session_ctx, never).await;

    let mut out = outcome(command, Some(reply.code), reply.text(), meaning);
    out.received = Some(summary.accepted);
    match summary.end {
        SessionEnd::Quit => {
            out.meaning = format!(
                "the queuing server delivered {} messages for {joined} over this connection",
                summary.accepted
            );
        }
        end => {
            // Whatever was not acknowledged stays with the provider: ask again later.
            out.disposition = Disposition::Retry;
            out.meaning = format!(
                "the connection ended before the queuing server said goodbye ({}); {} messages were received and the rest stays queued",
                end.describe(),
                summary.accepted
            );
            out.fix = Some("nothing to do if it happens once: Postern asks again later".into());
        }
    }
    vec![out]
}

fn config_outcome(server: &str, domains: &str, text: &str) -> Outcome {
    Outcome {
        server: server.to_string(),
        domain: domains.to_string(),
        step: "configuration".into(),
        code: None,
        text: text.to_string(),
        disposition: Disposition::Permanent,
        meaning: "nothing was sent: the configuration does not allow this request".into(),
        fix: Some(text.to_string()),
        pending: None,
        received: None,
    }
}
