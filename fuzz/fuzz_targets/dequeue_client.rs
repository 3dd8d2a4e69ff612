//! The dequeue client against an arbitrary server: greeting, EHLO (multi-line, keywords),
//! optionally STARTTLS and AUTH (the SASL challenges come from the server), then ETRN — the steps
//! of `dequeue::negotiate` and `dequeue::etrn` — and every outcome rendered as the user sees it.
//!
//! Header: [steps] [read size], then the server's bytes.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use postern_engine::dequeue::client::{ClientError, ClientOptions, SmtpClient};
use postern_engine::dequeue::failure_outcome;
use postern_engine::dequeue::reply::{atrn_meaning, etrn_meaning};
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
