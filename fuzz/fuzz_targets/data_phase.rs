//! The DATA phase's byte rules (`smtp::data`): where a message ends and what its line
//! ends become, the part of the inbound session that SMTP smuggling attacks.
//!
//! Checks: reading in any split gives the same message and stops at the same byte as reading
//! at once; the message has CRLF line ends only (no bare CR or LF is passed on); and what
//! `DotStuffer` sends of a message reads back as that message.
//!
//! Header: [read size], then the bytes after DATA.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern_engine::smtp::data::{DataReader, DotStuffer};
use postern_fuzz::{Input, chunk_size};

fn read_all(input: &[u8], chunk: usize) -> (Vec<u8>, usize, bool) {
    let mut reader = DataReader::new();
    let mut out = Vec::new();
    let mut used = 0;
    for piece in input.chunks(chunk) {
        let n = reader.feed(piece, &mut out);
        assert!(n <= piece.len());
        used += n;
        if reader.is_done() {
            break;
        }
        assert_eq!(n, piece.len(), "stopped early without the end of data");
    }
    (out, used, reader.is_done())
}

fn assert_crlf_only(message: &[u8]) {
    for (i, &b) in message.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(message.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
            b'\n' => assert!(i > 0 && message[i - 1] == b'\r', "bare LF at {i}"),
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let chunk = chunk_size(input.byte());
    let bytes = input.rest();

    let (whole, used, done) = read_all(bytes, bytes.len().max(1));
    let (split, used_split, done_split) = read_all(bytes, chunk.min(bytes.len().max(1)));
    assert_eq!(
        whole, split,
        "the message depends on how it was split into reads"
    );
    assert_eq!((used, done), (used_split, done_split));
    if !done {
        assert_eq!(used, bytes.len());
    }
    assert_crlf_only(&whole);
    if !done {
        return;
    }

    // Send it on (as the SMTP forwarder does) and read it back.
    let mut stuffer = DotStuffer::new();
    let mut wire = Vec::new();
    for piece in whole.chunks(chunk.min(whole.len().max(1))) {
        stuffer.stuff(piece, &mut wire);
    }
    wire.extend_from_slice(stuffer.finish());
    let (again, used_again, done_again) = read_all(&wire, wire.len().max(1));
    assert!(done_again, "the stuffed message has no end of data");
    assert_eq!(
        used_again,
        wire.len(),
        "bytes after the stuffed end of data"
    );
    let mut expected = whole.clone();
    if !expected.is_empty() && !expected.ends_with(b"\r\n") {
        expected.extend_from_slice(b"\r\n");
    }
    assert_eq!(
        again, expected,
        "the message changed on the way through DotStuffer"
    );
});
