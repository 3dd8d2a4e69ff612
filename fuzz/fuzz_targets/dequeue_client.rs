//! The dequeue client against an arbitrary server: greeting, EHLO (multi-line, keywords),
//! optionally STARTTLS and AUTH (the SASL challenges come from the server), then ETRN or ATRN —
//! the steps of `dequeue::negotiate`, `dequeue::etrn` and `dequeue::atrn` — and every outcome
//! rendered as the user sees it.
//!
//! After `250` to ATRN the connection is turned around into the inbound session, as
//! `dequeue::atrn::run` does (the other target, atrn_turnaround, drives that session directly).
//!
//! The server is a loopback TCP socket (one listener per process) that writes the script and
//! collects the client's commands.
//!
//! Header: [steps] [write size], then the server's bytes.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use postern_engine::dequeue::client::{ClientError, ClientOptions, SmtpClient};
use postern_engine::dequeue::failure_outcome;
use postern_engine::dequeue::reply::{atrn_meaning, etrn_meaning};
use postern_engine::smtp_server::session::{self, SessionInfo};
use postern_engine::tls::TrustPolicy;
use postern_fuzz::{Input, check_commands, chunk_size, runtime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn listener() -> &'static (TcpListener, SocketAddr) {
    static LISTENER: OnceLock<(TcpListener, SocketAddr)> = OnceLock::new();
    LISTENER.get_or_init(|| {
        runtime().block_on(async {
            let l = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a loopback port");
            let addr = l.local_addr().expect("its address");
            (l, addr)
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let steps = input.byte();
    let chunk = chunk_size(input.byte());
    let script = input.rest();
    let (listener, addr) = listener();
    let opts = ClientOptions {
        host: "mail.isp.example".into(),
        port: addr.port(),
        timeout: Duration::from_secs(30),
        helo_name: "gw.office.example".into(),
        trust: TrustPolicy::default(),
        connect_addr: Some(addr.ip()),
    };
    let label = opts.server();
    let server = async {
        let (mut sock, _) = listener.accept().await.expect("the client's connection");
        let _ = sock.set_nodelay(true);
        for piece in script.chunks(chunk.min(script.len().max(1))) {
            if sock.write_all(piece).await.is_err() {
                break;
            }
        }
        let _ = sock.shutdown().await;
        let mut commands = Vec::new();
        let _ = sock.read_to_end(&mut commands).await;
        commands
    };
    let client = async {
        if let Err(e) = session(&opts, steps).await {
            let outcome = failure_outcome(&label, "office.example", &e);
            let _ = outcome.summary();
        }
    };
    let (commands, ()) = runtime().block_on(async { tokio::join!(server, client) });
    check_commands(&commands);
});

async fn session(opts: &ClientOptions, steps: u8) -> Result<(), ClientError> {
    let mut client = SmtpClient::connect(opts).await?;
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
