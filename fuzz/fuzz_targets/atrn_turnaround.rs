//! The ATRN turnaround: the inbound session run on the dequeue connection, TLS kept, with the
//! bytes the client had already read handed over (`initial`), the provider's idle timeout and a
//! session time limit — as `dequeue::atrn::run` starts it after `250` to ATRN.
//!
//! Header: [limits] [read size] [prefix] [how many bytes were already read] [time limit], then
//! the provider's bytes.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use postern_engine::smtp_server::session::SessionInfo;
use postern_fuzz::{Input, Scripted, chunk_size, context, prefix, run_session, settings};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mut settings = settings(input.byte());
    let chunk = chunk_size(input.byte());
    let mut bytes = prefix(input.byte()).to_vec();
    let already_read = input.byte() as usize + 1;
    settings.idle_timeout = Duration::from_secs(60);
    // Zero: the limit is over before the first read.
    settings.session_timeout = Some(if input.byte() & 1 == 0 {
        Duration::from_secs(2 * 3600)
    } else {
        Duration::ZERO
    });
    bytes.extend_from_slice(input.rest());
    let split = already_read.min(bytes.len());
    let rest = bytes.split_off(split);
    let (stream, written) = Scripted::new(rest, chunk);
    let info = SessionInfo {
        peer: Some("198.51.100.25:25".parse().expect("an address")),
        tls: true,
        via: "atrn",
    };
    let ctx = context(settings);
    run_session(stream, &written, bytes, info, &ctx);
});
