//! RFC 6409 §8: a submission server may add the `Date:` and `Message-ID:` a client left out.
//!
//! The message streams through [`HeaderFix`] on its way into the spool: bytes are held only
//! until the end of the header block (at most [`MAX_HEADER_BLOCK`]), then the missing fields are
//! added just before the blank line and everything after it passes straight through. Input has
//! CRLF line ends (the DATA reader normalised them).

/// A header block longer than this is passed on as it is (nothing added): holding more would
/// let one client make the engine buffer without bound.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;

#[derive(Debug)]
pub struct HeaderFix {
    /// Bytes of the header block so far; `None` once it was passed on.
    held: Option<Vec<u8>>,
    /// `<...@host>` for an added Message-ID.
    message_id: String,
}

impl HeaderFix {
    /// `message_id` is used when the message has none (with its angle brackets).
    pub fn new(message_id: String) -> HeaderFix {
        HeaderFix {
            held: Some(Vec::with_capacity(4096)),
            message_id,
        }
    }

    /// Takes the next chunk of the message and appends what may be written now to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let Some(held) = self.held.as_mut() else {
            out.extend_from_slice(chunk);
            return;
        };
        let searched_from = held.len().saturating_sub(3);
        held.extend_from_slice(chunk);
        let end = if held.starts_with(b"\r\n") {
            Some(0)
        } else {
            memchr::memmem::find(&held[searched_from..], b"\r\n\r\n").map(|i| searched_from + i + 2)
        };
        match end {
            Some(end) => self.release(end, out),
            None if held.len() > MAX_HEADER_BLOCK => {
                out.extend_from_slice(held);
                self.held = None;
            }
            None => {}
        }
    }

    /// The end of the message: a message that is all header gets its fields at its end.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let Some(held) = self.held.as_mut() else {
            return;
        };
        if !held.is_empty() && !held.ends_with(b"\r\n") {
            held.extend_from_slice(b"\r\n");
        }
        let end = held.len();
        self.release(end, out);
    }

    /// Writes the header block `held[..end]` with the missing fields, then the rest.
    fn release(&mut self, end: usize, out: &mut Vec<u8>) {
        let Some(held) = self.held.take() else {
            return;
        };
        let (head, rest) = held.split_at(end);
        out.extend_from_slice(head);
        if !has_field(head, b"date") {
            out.extend_from_slice(b"Date: ");
            out.extend_from_slice(chrono::Local::now().to_rfc2822().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !has_field(head, b"message-id") {
            out.extend_from_slice(b"Message-ID: ");
            out.extend_from_slice(self.message_id.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(rest);
    }
}

/// Whether a line of `head` starts with `name:` (any case, spaces before the colon allowed).
pub fn has_field(head: &[u8], name: &[u8]) -> bool {
    head.split(|b| *b == b'\n').any(|line| {
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name)
            && line[name.len()..]
                .iter()
                .find(|b| **b != b' ' && **b != b'\t')
                == Some(&b':')
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn run(input: &[u8], chunk: usize) -> String {
        let mut fix = HeaderFix::new("<id@gw.test>".into());
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            fix.feed(piece, &mut out);
        }
        fix.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn missing_date_and_message_id_are_added_before_the_blank_line() {
        for chunk in [1, 2, 3, 7, 1000] {
            let out = run(b"Received: x\r\nSubject: hi\r\n\r\nbody\r\n", chunk);

            let (head, body) = out.split_once("\r\n\r\n").unwrap();
            assert!(
                head.starts_with("Received: x\r\nSubject: hi\r\nDate: "),
                "{out}"
            );
            assert!(head.ends_with("\r\nMessage-ID: <id@gw.test>"), "{out}");
            assert_eq!(body, "body\r\n");
        }
    }

    #[test]
    fn present_fields_are_kept_in_any_case_and_nothing_is_added() {
        let input =
            b"DATE : Mon, 1 Jan 2024 00:00:00 +0000\r\nmessage-id:<a@b>\r\n\r\nDate: body\r\n";

        let out = run(input, 5);

        assert_eq!(out.as_bytes(), input);
    }

    #[test]
    fn a_field_only_in_the_body_does_not_count() {
        let out = run(b"Subject: s\r\n\r\nMessage-ID: <x@y>\r\n", 4);

        assert!(out.starts_with("Subject: s\r\nDate: "), "{out}");
        assert!(out.contains("Message-ID: <id@gw.test>\r\n\r\nMessage-ID: <x@y>"));
    }

    #[test]
    fn a_message_of_headers_only_gets_them_at_its_end() {
        let out = run(b"Subject: s", 3);

        assert!(out.starts_with("Subject: s\r\nDate: "), "{out}");
        assert!(out.ends_with("Message-ID: <id@gw.test>\r\n"), "{out}");
    }

    #[test]
    fn a_message_without_headers_gets_them_in_front() {
        let out = run(b"\r\nbody\r\n", 1);

        assert!(out.starts_with("Date: "), "{out}");
        assert!(
            out.ends_with("Message-ID: <id@gw.test>\r\n\r\nbody\r\n"),
            "{out}"
        );
    }

    #[test]
    fn an_endless_header_block_is_passed_on_unchanged() {
        let mut input = Vec::new();
        while input.len() <= MAX_HEADER_BLOCK + 16 * 1024 {
            input.extend_from_slice(b"X-Filler: 0123456789012345678901234567890123456789\r\n");
        }
        input.extend_from_slice(b"\r\nbody\r\n");

        let out = run(&input, 4096);

        assert!(out.as_bytes() == &input[..], "the message changed");
    }
}
