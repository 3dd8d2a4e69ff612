//! The DATA phase's byte rules: where a message ends, and what its line ends become.
//!
//! SMTP smuggling (2023) hides a second transaction behind a non-standard end of data such as
//! `<LF>.<CR><LF>`: a server that reads it as the end answers the hidden commands, one that does
//! not stores them as text — and if that text is forwarded with its bare line ends, the next
//! server may read them as commands after all. So both rules hold here:
//!
//! - the end of data is `<CR><LF>.<CR><LF>` and nothing else (the first `<CR><LF>` may be the
//!   one that ended the DATA command);
//! - every line end in the message becomes `<CR><LF>`: a bare LF, and a bare CR, are each
//!   normalised to one (what Postfix 3.9 calls `smtpd_forbid_bare_newline = normalize`). A line
//!   that follows a bare line end is content from its first byte: a leading dot there is neither
//!   removed nor an end marker, and any forwarding dot-stuffs it again.
//!
//! Dot-unstuffing (RFC 5321 §4.5.2) applies to lines that follow a real `<CR><LF>`.

/// Where the reader is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line that follows `<CR><LF>` (or the start of the data).
    LineStart,
    /// At the start of a line that follows a bare CR or LF.
    BareLineStart,
    /// `LineStart` and then a dot.
    Dot,
    /// `LineStart`, a dot and a CR: an LF now ends the data.
    DotCr,
    /// Inside a line.
    Text,
    /// A CR inside a line (or at the start of one): an LF now makes it a real line end.
    Cr,
    /// The end of data has been read.
    Done,
}

/// Turns the bytes after `DATA` into the message, chunk by chunk.
#[derive(Debug, Clone)]
pub struct DataReader {
    state: State,
    bare_line_ends: u64,
}

impl Default for DataReader {
    fn default() -> Self {
        DataReader::new()
    }
}

impl DataReader {
    pub fn new() -> DataReader {
        DataReader {
            state: State::LineStart,
            bare_line_ends: 0,
        }
    }

    /// Reads from `input` into `out` (the message with CRLF line ends, unstuffed) and returns
    /// how many bytes of `input` it consumed: all of them, or up to and including the end of
    /// data. Then [`is_done`](Self::is_done) tells which.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Done => return i,
                State::Text => {
                    // The common case: copy the run up to the next CR or LF in one go.
                    let run = memchr::memchr2(b'\r', b'\n', &input[i..]).unwrap_or(input.len() - i);
                    out.extend_from_slice(&input[i..i + run]);
                    i += run;
                    if let Some(&end) = input.get(i) {
                        self.line_end_byte(end, out);
                        i += 1;
                    }
                    continue;
                }
                State::LineStart => match b {
                    b'.' => self.state = State::Dot,
                    b'\r' | b'\n' => self.line_end_byte(b, out),
                    _ => {
                        out.push(b);
                        self.state = State::Text;
                    }
                },
                State::BareLineStart => match b {
                    b'\r' | b'\n' => self.line_end_byte(b, out),
                    _ => {
                        out.push(b);
                        self.state = State::Text;
                    }
                },
                State::Dot => match b {
                    b'\r' => self.state = State::DotCr,
                    b'\n' => {
                        // ".<LF>": a line holding one dot, ended by a bare LF. Content.
                        out.extend_from_slice(b".\r\n");
                        self.bare_line_ends += 1;
                        self.state = State::BareLineStart;
                    }
                    _ => {
                        // A stuffed dot: the first is removed, the byte after it is text.
                        self.state = State::Text;
                        continue;
                    }
                },
                State::DotCr => {
                    if b == b'\n' {
                        self.state = State::Done;
                        return i + 1;
                    }
                    // ".<CR>" and something else: a one-dot line ended by a bare CR. Content;
                    // the byte is looked at again at the start of the next line.
                    out.extend_from_slice(b".\r\n");
                    self.bare_line_ends += 1;
                    self.state = State::BareLineStart;
                    continue;
                }
                State::Cr => {
                    out.extend_from_slice(b"\r\n");
                    if b == b'\n' {
                        self.state = State::LineStart;
                    } else {
                        self.bare_line_ends += 1;
                        self.state = State::BareLineStart;
                        continue;
                    }
                }
            }
            i += 1;
        }
        i
    }

    /// A CR or an LF where a line may end.
    fn line_end_byte(&mut self, b: u8, out: &mut Vec<u8>) {
        if b == b'\r' {
            self.state = State::Cr;
        } else {
            out.extend_from_slice(b"\r\n");
            self.bare_line_ends += 1;
            self.state = State::BareLineStart;
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// How many bare CRs and LFs were made into CRLF so far.
    pub fn bare_line_ends(&self) -> u64 {
        self.bare_line_ends
    }
}

/// Dot-stuffs a message with CRLF line ends for sending (RFC 5321 §4.5.2), chunk by chunk.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    at_line_start: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer::new()
    }
}

impl DotStuffer {
    pub fn new() -> DotStuffer {
        DotStuffer {
            at_line_start: true,
        }
    }

    /// Appends `chunk` to `out`, doubling every dot that starts a line.
    pub fn stuff(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.at_line_start && rest[0] == b'.' {
                out.push(b'.');
            }
            match memchr::memchr(b'\n', rest) {
                Some(at) => {
                    out.extend_from_slice(&rest[..=at]);
                    rest = &rest[at + 1..];
                    self.at_line_start = true;
                }
                None => {
                    out.extend_from_slice(rest);
                    self.at_line_start = false;
                    rest = &[];
                }
            }
        }
    }

    /// The end-of-data sequence to send after the last chunk: the message's own last line end
    /// is kept, and one is added when the message did not end with one.
    pub fn finish(&self) -> &'static [u8] {
        if self.at_line_start {
            b".\r\n"
        } else {
            b"\r\n.\r\n"
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The message and what is left after the end of data, fed in one piece and byte by byte.
    fn read(input: &[u8]) -> (Vec<u8>, Vec<u8>, bool) {
        let mut whole = DataReader::new();
        let mut out = Vec::new();
        let used = whole.feed(input, &mut out);
        let mut bytewise = DataReader::new();
        let mut out2 = Vec::new();
        let mut used2 = 0;
        for b in input {
            if bytewise.is_done() {
                break;
            }
            used2 += bytewise.feed(std::slice::from_ref(b), &mut out2);
        }
        assert_eq!(out, out2, "chunking must not change the result");
        assert_eq!(used, used2);
        (out, input[used..].to_vec(), whole.is_done())
    }

    #[test]
    fn a_plain_message_ends_at_crlf_dot_crlf() {
        let (msg, rest, done) = read(b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n");
        assert_eq!(msg, b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(rest, b"QUIT\r\n");
        assert!(done);
    }

    #[test]
    fn an_empty_message_is_a_dot_right_after_data() {
        let (msg, rest, done) = read(b".\r\nNOOP\r\n");
        assert!(msg.is_empty());
        assert_eq!(rest, b"NOOP\r\n");
        assert!(done);
    }

    #[test]
    fn stuffed_dots_are_removed() {
        let (msg, _, done) = read(b"..leading\r\n...\r\n.\r\n");
        assert_eq!(msg, b".leading\r\n..\r\n");
        assert!(done);
    }

    #[test]
    fn no_smuggling_shape_ends_the_data_and_every_line_end_becomes_crlf() {
        let hidden = b"MAIL FROM:<ceo@office.test>\r\nRCPT TO:<victim@outside.example>\r\nDATA\r\n";
        for shape in [
            &b"\n.\r\n"[..],
            b"\r.\r\n",
            b"\n.\n",
            b"\r\n.\n",
            b"\r\n.\r",
            b"\n.\r",
            b"\r.\n",
            b"\r.\r",
            b"\r\n.\r\r\n",
            b"\n\n.\n\n",
        ] {
            let mut input = b"body".to_vec();
            input.extend_from_slice(shape);
            input.extend_from_slice(hidden);
            let (msg, rest, done) = read(&input);
            assert!(!done, "{shape:?} must not end the data");
            assert!(rest.is_empty());
            assert_no_bare_line_ends(&msg);
            // The hidden commands are text of the message, on lines of their own.
            assert!(
                msg.windows(11).any(|w| w == b"\r\nMAIL FROM"),
                "{shape:?}: {:?}",
                String::from_utf8_lossy(&msg)
            );
        }
    }

    #[test]
    fn bare_line_ends_are_normalised_and_counted() {
        let mut r = DataReader::new();
        let mut out = Vec::new();
        r.feed(b"a\nb\rc\r\r\nd\r\n.\r\n", &mut out);
        assert_eq!(out, b"a\r\nb\r\nc\r\n\r\nd\r\n");
        assert_eq!(r.bare_line_ends(), 3);
        assert!(r.is_done());
    }

    #[test]
    fn a_dot_after_a_bare_line_end_is_kept_as_text() {
        let (msg, _, _) = read(b"a\n..b\r\n.\r\n");
        assert_eq!(msg, b"a\r\n..b\r\n");
    }

    #[test]
    fn stuffing_doubles_leading_dots_across_chunks() {
        let mut s = DotStuffer::new();
        let mut out = Vec::new();
        s.stuff(b".a\r\nb\r", &mut out);
        s.stuff(b"\n.", &mut out);
        s.stuff(b"\r\n", &mut out);
        assert_eq!(out, b"..a\r\nb\r\n..\r\n");
        assert_eq!(s.finish(), b".\r\n");
    }

    #[test]
    fn read_then_stuff_is_the_identity_on_standard_input() {
        let wire = b"..x\r\nplain\r\n..\r\n";
        let (msg, _, _) = read(&[&wire[..], b".\r\n"].concat());
        let mut s = DotStuffer::new();
        let mut out = Vec::new();
        s.stuff(&msg, &mut out);
        assert_eq!(out, wire);
    }

    pub(crate) fn assert_no_bare_line_ends(msg: &[u8]) {
        for (i, &b) in msg.iter().enumerate() {
            if b == b'\r' {
                assert_eq!(msg.get(i + 1), Some(&b'\n'), "bare CR at {i}");
            }
            if b == b'\n' {
                assert!(i > 0 && msg[i - 1] == b'\r', "bare LF at {i}");
            }
        }
    }
}
