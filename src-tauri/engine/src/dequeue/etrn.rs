//! ETRN (RFC 1985): ask the queuing server to start delivering each domain's mail to the office.
//! The mail itself arrives later, on the inbound listener.

use super::reply::{Outcome, etrn_meaning};
use super::session::{DequeueContext, failure_outcome, negotiate, server_label};
use crate::config::QueueServer;
use crate::smtp::client::SmtpClient;

/// `ETRN <node>` for every domain, in order; a 251 or a 4xx for one domain does not stop the
/// others (unlike fetchmail, which stops at the first 251).
pub async fn run(server: &QueueServer, domains: &[String], ctx: &DequeueContext) -> Vec<Outcome> {
    let label = server_label(server);
    let mut client = match negotiate(server, ctx).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(server = %label, "dequeue failed: {e}");
            return domains
                .iter()
                .map(|d| failure_outcome(&label, d, &e))
                .collect();
        }
    };
    let outcomes = ask_each(&mut client, server, domains, &label).await;
    client.quit().await;
    outcomes
}

async fn ask_each(
    client: &mut SmtpClient,
    server: &QueueServer,
    domains: &[String],
    label: &str,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(domains.len());
    for (i, domain) in domains.iter().enumerate() {
        let command = format!("ETRN {}", server.etrn_argument(domain));
        match client.command(&command).await {
            Ok(reply) => {
                let m = etrn_meaning(&reply, domain);
                tracing::info!(server = %label, %domain, code = reply.code, "{command}: {}", reply.text());
                outcomes.push(Outcome {
                    server: label.to_string(),
                    domain: domain.clone(),
                    step: command,
                    code: Some(reply.code),
                    text: reply.text(),
                    disposition: m.disposition,
                    meaning: m.meaning,
                    fix: m.fix,
                    pending: m.pending,
                    received: None,
                });
            }
            Err(e) => {
                // The session is gone: this and every later domain share the failure.
                outcomes.extend(domains[i..].iter().map(|d| failure_outcome(label, d, &e)));
                break;
            }
        }
    }
    outcomes
}
