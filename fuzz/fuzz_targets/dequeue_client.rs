//! The dequeue client against an arbitrary server: greeting, EHLO (multi-line, keywords),
//! optionally STARTTLS and AUTH (the SASL challenges come from the server), then ETRN or ATRN —
//! the steps of `dequeue::negotiate`, `dequeue::etrn` and `dequeue::atrn` — and every outcome
//! rendered as the user sees it.
//!
//! After `250` to ATRN the connection is turned around into the inbound session, as
//! `dequeue::atrn::run` does (the other target, atrn_turnaround, drives that session directly).
//!
//! Header: [steps] [read size], then the server's bytes.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use postern_engine::smtp::client::{ClientError, ClientOptions, SmtpClient};
use postern_engine::dequeue::failure_outcome;
use postern_engine::dequeue::reply::{atrn_meaning, etrn_meaning};
use postern_engine::smtp_server::session::{self, SessionInfo};
use postern_engine::tls::TrustPolicy;
use postern_fuzz::{Input, Scripted, check_commands, chunk_size, runtime};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let steps = input.byte();
    let chunk = chunk_size(input.byte());
    let (stream, written) = Scripted::new(input.rest().to_vec(), chunk);
    let opts = ClientOptions {
        host: "mail.isp.example".into(),
        port: 25,
        timeout: Duration::from_secs(30),
        helo_name: "gw.office.example".into(),
        trust: TrustPolicy::default(),
        connect_addr: None,
    };
    let label = opts.server();
    runtime().block_on(async {
        if let Err(e) = session(stream, &opts, steps).await {
            let outcome = failure_outcome(&label, "office.example", &e);
            let _ = outcome.summary();
        }
    });
    check_commands(&written.lock().expect("not poisoned"));
});

async fn session(stream: Scripted, opts: &ClientOptions, steps: u8) -> Result<(), ClientError> {
    let mut client = SmtpClient::over_stream(stream, opts).await?;
    let caps = client.hello().await?.clone();
    let _ = (caps.size(), caps.params("ETRN"), caps.has("ATRN"));
    if steps & 1 != 0 && caps.has("STARTTLS") {
        client.start_tls().await?;
    }
    if steps & 2 != 0 {
        client
            .authenticate("office", "secret password", steps & 4 != 0)
            .await?;
    }
    if steps & 8 != 0 {
        let reply = client.command("ATRN office.example,branch.example").await?;
        let _ = atrn_meaning(&reply, "office.example,branch.example", "ATRN");
        if reply.code == 250 {
            turnaround(client, steps >> 4).await;
        }
        return Ok(());
    }
    for domain in ["office.example", "#branch.example"] {
        let reply = client.command(&format!("ETRN {domain}")).await?;
        let m = etrn_meaning(&reply, domain);
        let _ = (m.meaning, m.fix, reply.text(), reply.text_without_status());
        if steps & 16 == 0 {
            break;
        }
    }
    client.quit().await;
    Ok(())
}

/// What `dequeue::atrn::run` does after `250`: the connection, with the bytes the client had
/// already read, becomes an inbound session.
async fn turnaround(client: SmtpClient, limits: u8) {
    let tls = client.is_tls();
    let peer = client.peer_addr();
    let (conn, already_read) = client.into_parts();
    let mut settings = postern_fuzz::settings(limits);
    settings.idle_timeout = Duration::from_secs(30);
    settings.session_timeout = Some(Duration::from_secs(2 * 3600));
    let ctx = postern_fuzz::context(settings);
    let (_keep_open, never) = tokio::sync::watch::channel(false);
    let info = SessionInfo {
        peer,
        tls,
        via: "atrn",
    };
    let summary = session::run(conn, already_read, info, &ctx, never).await;
    postern_fuzz::check_store(summary.accepted);
}
