//! Test messages with real headers, and digests to compare what was stored with what was sent.

use std::sync::atomic::{AtomicU64, Ordering};

/// One message to submit: envelope sender, envelope recipients and the content (CRLF lines,
/// not dot-stuffed; the SMTP clients here stuff it on the wire).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestMessage {
    pub from: String,
    pub to: Vec<String>,
    pub data: Vec<u8>,
}

const LINE_CHARS: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,;:-_+=!?()";

/// Body lines every generated message contains, for the dot-stuffing tests: a lone "." would end
/// the DATA phase if a client did not stuff it.
const DOT_LINES: [&str; 3] = [".", "..", ".a line that starts with a dot"];

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl TestMessage {
    /// A message with the given envelope and content, taken as is.
    pub fn new(from: impl Into<String>, to: &[&str], data: impl Into<Vec<u8>>) -> Self {
        Self {
            from: from.into(),
            to: to.iter().map(|r| (*r).to_string()).collect(),
            data: data.into(),
        }
    }

    /// Message number `i`, `size_bytes` long (or the few hundred bytes its headers need, if more),
    /// from `sender-<i>@example.net` to `to`. Headers: Date, From, To, Subject (with `i`) and a
    /// Message-ID unique across processes; the body is printable ASCII lines of at most 78
    /// characters including the dot-stuffing cases ".", ".." and ".text". Deterministic in `i`
    /// apart from Date and Message-ID.
    pub fn sized(i: usize, size_bytes: usize, to: &[&str]) -> Self {
        Self::generate(i, size_bytes, to, false)
    }

    /// Like [`TestMessage::sized`], with `Content-Transfer-Encoding: 8bit` and some UTF-8 (8-bit)
    /// bytes in the body.
    pub fn sized_8bit(i: usize, size_bytes: usize, to: &[&str]) -> Self {
        Self::generate(i, size_bytes, to, true)
    }

    fn generate(i: usize, size_bytes: usize, to: &[&str], eight_bit: bool) -> Self {
        let from = format!("sender-{i}@example.net");
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mut data = format!(
            "Date: {date}\r\nFrom: Sender {i} <{from}>\r\nTo: {to}\r\nSubject: test message {i}\r\n\
             Message-ID: <{i}.{pid}.{seq}.{nanos}@harness.postern.test>\r\nMIME-Version: 1.0\r\n",
            date = chrono::Utc::now().to_rfc2822(),
            to = to.join(", "),
            pid = std::process::id(),
        )
        .into_bytes();
        if eight_bit {
            data.extend_from_slice(
                b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
            );
        } else {
            data.extend_from_slice(b"Content-Type: text/plain; charset=us-ascii\r\n");
        }
        data.extend_from_slice(b"\r\n");
        data.extend_from_slice(format!("Message {i}.\r\n").as_bytes());
        for line in DOT_LINES {
            data.extend_from_slice(line.as_bytes());
            data.extend_from_slice(b"\r\n");
        }
        if eight_bit {
            data.extend_from_slice("Grüße aus dem Büro, 8-bit: äöü ß é €\r\n".as_bytes());
        }
        let mut rng = fastrand::Rng::with_seed(i as u64);
        while data.len() + 2 < size_bytes {
            let room = size_bytes - data.len() - 2;
            let len = rng.usize(20..=76).min(room);
            let start = data.len();
            data.extend((0..len).map(|_| LINE_CHARS[rng.usize(..LINE_CHARS.len())]));
            // A line must not end in a space (some servers strip it) nor start with "." here (the
            // dot lines above cover that on purpose).
            if let Some(first) = data.get_mut(start)
                && (*first == b' ' || *first == b'.')
            {
                *first = b'x';
            }
            if let Some(last) = data.last_mut()
                && *last == b' '
            {
                *last = b'y';
            }
            data.extend_from_slice(b"\r\n");
        }
        Self {
            from,
            to: to.iter().map(|r| (*r).to_string()).collect(),
            data,
        }
    }

    /// The value of the Message-ID header, without angle brackets.
    pub fn message_id(&self) -> Option<String> {
        header_value(&self.data, "message-id").map(|v| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    }

    /// [`digest_without_received`] of this message's content.
    pub fn digest(&self) -> [u8; 32] {
        digest_without_received(&self.data)
    }
}

/// The first header named `name` (case-insensitive), unfolded.
pub fn header_value(message: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(message).replace("\r\n", "\n");
    let mut lines = text.lines();
    let mut value: Option<String> = None;
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        if let Some(v) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((field, rest)) = line.split_once(':')
            && field.trim().eq_ignore_ascii_case(name)
        {
            value = Some(rest.trim().to_string());
        }
    }
    value
}

/// SHA-256 of a message after normalising CRLF to LF and removing every `Received:` header
/// (with its continuation lines): equal for the message as sent and as stored after relaying.
pub fn digest_without_received(message: &[u8]) -> [u8; 32] {
    digest_without_headers(message, &["received"])
}

/// SHA-256 of a message after normalising CRLF to LF and removing every header whose name is in
/// `names` (case-insensitive; e.g. `["received", "return-path", "delivered-to"]`).
pub fn digest_without_headers(message: &[u8], names: &[&str]) -> [u8; 32] {
    let cleaned = strip_headers(message, names);
    let digest = ring::digest::digest(&ring::digest::SHA256, &cleaned);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The message with CRLF normalised to LF and the named headers removed.
pub fn strip_headers(message: &[u8], names: &[&str]) -> Vec<u8> {
    let normalised = normalise_newlines(message);
    let mut out = Vec::with_capacity(normalised.len());
    let mut in_headers = true;
    let mut dropping = false;
    for line in normalised.split_inclusive(|b| *b == b'\n') {
        if in_headers {
            if line == b"\n" {
                in_headers = false;
            } else if line.starts_with(b" ") || line.starts_with(b"\t") {
                if dropping {
                    continue;
                }
            } else {
                dropping = header_name(line).is_some_and(|field| {
                    names
                        .iter()
                        .any(|n| field.eq_ignore_ascii_case(n.as_bytes()))
                });
                if dropping {
                    continue;
                }
            }
        }
        out.extend_from_slice(line);
    }
    out
}

fn header_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|b| *b == b':')?;
    Some(line[..colon].trim_ascii())
}

fn normalise_newlines(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut i = 0;
    while i < message.len() {
        if message[i] == b'\r' && message.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(message[i]);
        i += 1;
    }
    out
}

/// Lowercase hex of a digest, for assertion messages.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_message_has_requested_size_headers_and_dot_lines() {
        let m = TestMessage::sized(7, 5_000, &["user@office.test"]);

        assert_eq!(m.data.len(), 5_000);
        assert!(m.data.ends_with(b"\r\n"));
        assert_eq!(m.from, "sender-7@example.net");
        assert!(m.message_id().is_some_and(|id| id.starts_with("7.")));
        assert!(m.data.windows(5).any(|w| w == b"\r\n.\r\n"));
        assert!(m.data.is_ascii());
    }

    #[test]
    fn message_ids_are_unique() {
        let a = TestMessage::sized(1, 100, &["a@office.test"]);
        let b = TestMessage::sized(1, 100, &["a@office.test"]);

        assert_ne!(a.message_id(), b.message_id());
    }

    #[test]
    fn eight_bit_message_has_eight_bit_bytes() {
        let m = TestMessage::sized_8bit(2, 1_000, &["a@office.test"]);

        assert!(!m.data.is_ascii());
    }

    #[test]
    fn digest_ignores_received_headers_and_line_endings() {
        let sent = b"From: a@b\r\nSubject: x\r\n\r\nbody\r\n.\r\n";
        let stored = b"Received: from x\n\tby y; Sat, 1 Jan 2000\nFrom: a@b\nRECEIVED: z\nSubject: x\n\nbody\n.\n";

        assert_eq!(
            digest_without_received(sent),
            digest_without_received(stored)
        );
    }

    #[test]
    fn digest_sees_body_changes_and_received_in_body() {
        let sent = b"From: a@b\r\n\r\nReceived: in the body\r\n";
        let changed = b"From: a@b\r\n\r\n";

        assert_ne!(
            digest_without_received(sent),
            digest_without_received(changed)
        );
    }
}
