//! Asking a queuing server for the office's mail.
//!
//! [`session::negotiate`] opens a session the way every protocol needs it (greeting, EHLO, STARTTLS per
//! `tls`, AUTH when a username is configured); [`etrn`] then asks for each domain. [atrn] reuses the same
//! negotiation for ATRN and TURN and turns the connection around. Whatever happens,
//! the caller gets one [`Outcome`] per domain.

pub mod atrn;
pub mod etrn;
pub mod reply;
pub mod session;

use futures_util::future::BoxFuture;

use crate::config::{Protocol, QueueServer};
use crate::outcome::Outcome;
pub use session::{DequeueContext, client_options, failure_outcome, negotiate, server_label};

/// Runs a dequeue; the real one is [`DequeueContext`], tests script their own.
pub trait Dequeuer: Send + Sync + 'static {
    fn dequeue(
        &self,
        server: QueueServer,
        domains: Vec<String>,
    ) -> BoxFuture<'static, Vec<Outcome>>;
}

impl Dequeuer for DequeueContext {
    fn dequeue(
        &self,
        server: QueueServer,
        domains: Vec<String>,
    ) -> BoxFuture<'static, Vec<Outcome>> {
        let ctx = self.clone();
        Box::pin(async move { dequeue(&server, &domains, &ctx).await })
    }
}

/// Dequeues `domains` from `server` with its configured protocol: one outcome per domain.
pub async fn dequeue(
    server: &QueueServer,
    domains: &[String],
    ctx: &DequeueContext,
) -> Vec<Outcome> {
    match server.protocol {
        Protocol::Etrn => etrn::run(server, domains, ctx).await,
        Protocol::Atrn => atrn::run(server, domains, ctx, atrn::Turnaround::Atrn).await,
        Protocol::Turn => atrn::run(server, domains, ctx, atrn::Turnaround::Turn).await,
    }
}
