//! Pure helpers of the session: recognising command shapes, wording parse errors, and making
//! client-supplied text safe for a trace header.

use smtp_proto::Error as ProtoError;

/// Helo names and addresses longer than this are cut in the Received: header.
const MAX_TRACE_FIELD: usize = 255;

/// `RCPT TO:<Postmaster>`, in any case.
pub(super) fn is_bare_postmaster(line: &[u8]) -> bool {
    line.windows(12)
        .any(|w| w.eq_ignore_ascii_case(b"<postmaster>"))
}

/// `<@relay1,@relay2:user@domain>` (RFC 5321 §4.1.2 source route).
pub(super) fn has_source_route(line: &[u8]) -> bool {
    line.iter()
        .position(|&b| b == b'<')
        .and_then(|i| line.get(i + 1))
        == Some(&b'@')
}

pub(super) fn parse_error_reply(e: &ProtoError) -> (u16, String) {
    match e {
        ProtoError::UnknownCommand => (500, "5.5.1 Command not recognized".into()),
        ProtoError::SyntaxError { syntax } => (501, format!("5.5.4 Syntax: {syntax}")),
        ProtoError::InvalidSenderAddress => (501, "5.1.7 Bad sender address syntax".into()),
        ProtoError::InvalidRecipientAddress => (501, "5.1.3 Bad recipient address syntax".into()),
        ProtoError::InvalidParameter { param } => (501, format!("5.5.4 Invalid parameter {param}")),
        ProtoError::UnsupportedParameter { param } => {
            (555, format!("5.5.4 Unsupported parameter {param}"))
        }
        ProtoError::ResponseTooLong => (500, "5.5.2 Line too long".into()),
        ProtoError::NeedsMoreData { .. } | ProtoError::InvalidResponse { .. } => {
            (500, "5.5.2 Syntax error".into())
        }
    }
}

/// A client-supplied name or address as it may stand in a trace header: printable, one line,
/// not too long (RFC 5322 §3.6.7).
pub(super) fn trace_field(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_TRACE_FIELD)
        .collect()
}

/// A short unique message id for logs and the Received: header.
pub(super) fn new_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:x}{:05x}{:04x}",
        now.as_secs(),
        now.subsec_micros(),
        fastrand::u16(..)
    )
}
