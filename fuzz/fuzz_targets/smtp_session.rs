//! The inbound SMTP session (the listener's) fed arbitrary client bytes, before and inside DATA.
//!
//! Header: [limits] [read size] [prefix], then the client's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern_engine::smtp_server::session::SessionInfo;
use postern_fuzz::{Input, Scripted, chunk_size, context, prefix, run_session, settings};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let ctx = context(settings(input.byte()));
    let chunk = chunk_size(input.byte());
    let mut bytes = prefix(input.byte()).to_vec();
    bytes.extend_from_slice(input.rest());
    let (stream, written) = Scripted::new(bytes, chunk);
    let info = SessionInfo {
        peer: Some("192.0.2.7:40000".parse().expect("an address")),
        tls: false,
        via: "inbound",
    };
    run_session(stream, &written, Vec::new(), info, &ctx);
});
