//! Delivery status notifications (RFC 3464): `multipart/report; report-type=delivery-status`
//! with a human-readable part, the `message/delivery-status` part and the original's headers
//! as `text/rfc822-headers` (RFC 6522). Built with mail-builder; the original's headers are
//! read with mail-parser.
//!
//! Who gets one is decided by the caller ([`super::runner`]): the envelope sender, never `<>`.

use std::path::Path;

use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::mime::MimePart;
use tokio::io::AsyncReadExt;

use super::spool::Record;

/// At most this much of the original is read for its headers.
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Given up (5xx, or expired).
    Failed,
    /// Still trying (the delay warning).
    Delayed,
}

/// One recipient in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub recipient: String,
    /// The server's reply (`550 5.1.1 no such user`) or what went wrong.
    pub diagnostic: String,
    /// The server that answered (the smarthost), when one did.
    pub remote_mta: Option<String>,
    pub expired: bool,
}

/// The header block of the spooled message at `path` (up to the blank line, at most 64 KiB).
pub async fn original_head(path: &Path) -> Vec<u8> {
    let mut head = Vec::with_capacity(8 * 1024);
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return head;
    };
    let mut buf = vec![0u8; 8 * 1024];
    while head.len() < MAX_HEAD {
        match file.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if memchr::memmem::find(&head, b"\r\n\r\n").is_some() {
            break;
        }
    }
    let end = memchr::memmem::find(&head, b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(head.len().min(MAX_HEAD));
    head.truncate(end);
    // The part ends with the header block's blank line; keep exactly one.
    while head.ends_with(b"\r\n\r\n") {
        head.truncate(head.len() - 2);
    }
    head
}

/// The RFC 3463 status of a reply: its enhanced code when it has one, else the class.
pub fn status_of(line: &Line) -> String {
    if line.expired {
        return "4.4.7".into();
    }
    let mut words = line.diagnostic.split_whitespace();
    let code = words.next().unwrap_or("");
    if let Some(enhanced) = words.next().filter(|w| is_enhanced(w)) {
        return enhanced.to_string();
    }
    match code.as_bytes().first() {
        Some(b'5') => "5.0.0".into(),
        Some(b'2') => "2.0.0".into(),
        _ => "4.0.0".into(),
    }
}

fn is_enhanced(w: &str) -> bool {
    let parts: Vec<&str> = w.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_smtp_reply(text: &str) -> bool {
    let code = text.get(..3).unwrap_or("");
    code.bytes().all(|b| b.is_ascii_digit()) && matches!(text.as_bytes().get(3), Some(b' ') | None)
}

/// The whole DSN message (CRLF line ends), to be sent from `<>` to `record.sender`.
pub fn build(
    hostname: &str,
    record: &Record,
    action: Action,
    lines: &[Line],
    original_head: &[u8],
) -> Vec<u8> {
    let arrival = mail_builder::headers::date::Date::new(record.arrived as i64).to_rfc822();
    let (subject, intro) = match action {
        Action::Failed => (
            "Undelivered Mail Returned to Sender",
            "Your message could not be delivered to the recipients below. Postern, the mail \
             relay of your office, has given up on them.",
        ),
        Action::Delayed => (
            "Delayed Mail (still being retried)",
            "Your message has not been delivered to the recipients below yet. Postern, the mail \
             relay of your office, keeps trying; you do not need to send it again.",
        ),
    };
    let mut human = format!("This is the mail system at host {hostname}.\r\n\r\n{intro}\r\n\r\n");
    if let Some(subject) = mail_parser::MessageParser::default()
        .parse_headers(original_head)
        .and_then(|m| m.subject().map(str::to_string))
    {
        human.push_str(&format!("Subject of your message: {subject}\r\n\r\n"));
    }
    for l in lines {
        let why = if l.expired {
            format!("{} (it stayed undelivered too long)", l.diagnostic)
        } else {
            l.diagnostic.clone()
        };
        human.push_str(&format!("<{}>: {}\r\n", l.recipient, why));
    }
    let mut status = format!(
        "Reporting-MTA: dns; {hostname}\r\nX-Postern-Queue-ID: {}\r\nArrival-Date: {arrival}\r\n",
        record.id
    );
    let action_word = match action {
        Action::Failed => "failed",
        Action::Delayed => "delayed",
    };
    for l in lines {
        status.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {}\r\nAction: {action_word}\r\nStatus: {}\r\n",
            l.recipient,
            status_of(l)
        ));
        if let Some(mta) = &l.remote_mta {
            status.push_str(&format!("Remote-MTA: dns; {mta}\r\n"));
        }
        if is_smtp_reply(&l.diagnostic) {
            status.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", l.diagnostic));
        }
    }
    let head = String::from_utf8_lossy(original_head).into_owned();
    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new("text/plain", human),
            MimePart::new(
                ContentType::new("message/delivery-status"),
                mail_builder::mime::BodyPart::Binary(status.into_bytes().into()),
            )
            .transfer_encoding("7bit"),
            MimePart::new(
                ContentType::new("text/rfc822-headers"),
                mail_builder::mime::BodyPart::Binary(head.into_bytes().into()),
            ),
        ],
    );
    MessageBuilder::new()
        .from((
            "Mail Delivery System",
            format!("MAILER-DAEMON@{hostname}").as_str(),
        ))
        .to(record.sender.as_str())
        .subject(subject)
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-replied"),
        )
        .message_id(format!("{}.dsn@{hostname}", record.id))
        .body(report)
        .write_to_vec()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::outbound::spool::{RcptState, Recipient};

    fn record() -> Record {
        Record {
            id: "abc-1".into(),
            sender: "boss@office.test".into(),
            recipients: vec![Recipient {
                address: "bad@example.net".into(),
                state: RcptState::Bounced,
                reply: None,
            }],
            arrived: 1_700_000_000,
            size: 10,
            attempts: 1,
            next_attempt: None,
            last_reply: None,
            client: None,
            delay_warned: false,
            held_for: None,
            crc32: None,
        }
    }

    #[test]
    fn a_bounce_is_a_delivery_status_report_with_the_original_headers() {
        let lines = [Line {
            recipient: "bad@example.net".into(),
            diagnostic: "550 5.1.1 no such user".into(),
            remote_mta: Some("smarthost.test".into()),
            expired: false,
        }];

        let dsn = build(
            "gw.office.test",
            &record(),
            Action::Failed,
            &lines,
            b"Subject: hello\r\nMessage-ID: <m1@office.test>\r\n",
        );

        let parsed = mail_parser::MessageParser::default().parse(&dsn).unwrap();
        let text = String::from_utf8_lossy(&dsn);
        assert!(text.contains("multipart/report"), "{text}");
        assert!(
            text.contains("report-type=\"delivery-status\"")
                || text.contains("report-type=delivery-status"),
            "{text}"
        );
        assert_eq!(
            parsed.subject(),
            Some("Undelivered Mail Returned to Sender")
        );
        assert_eq!(parsed.parts.len(), 4, "the report and its three parts");
        let status = String::from_utf8_lossy(parsed.parts[2].contents());
        assert!(
            status.contains("Final-Recipient: rfc822; bad@example.net"),
            "{status}"
        );
        assert!(status.contains("Action: failed"));
        assert!(status.contains("Status: 5.1.1"));
        assert!(status.contains("Remote-MTA: dns; smarthost.test"));
        assert!(status.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user"));
        assert!(
            text.contains("Content-Type: message/delivery-status"),
            "{text}"
        );
        assert!(text.contains("Content-Type: text/rfc822-headers"), "{text}");
        let head = String::from_utf8_lossy(parsed.parts[3].contents());
        assert!(head.contains("Message-ID: <m1@office.test>"), "{head}");
        assert!(text.contains("Auto-Submitted: auto-replied"));
    }

    #[test]
    fn statuses_come_from_the_reply_or_its_class_and_expiry_is_4_4_7() {
        let line = |d: &str, expired| Line {
            recipient: "x@y".into(),
            diagnostic: d.into(),
            remote_mta: None,
            expired,
        };

        assert_eq!(status_of(&line("550 5.7.1 relay denied", false)), "5.7.1");
        assert_eq!(status_of(&line("554 no", false)), "5.0.0");
        assert_eq!(status_of(&line("451 4.3.0 later", true)), "4.4.7");
        assert_eq!(
            status_of(&line("cannot connect to smtp://x:587", false)),
            "4.0.0"
        );
    }

    #[tokio::test]
    async fn the_original_head_stops_at_the_blank_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.msg");
        std::fs::write(&path, b"Subject: s\r\nX-A: b\r\n\r\nsecret body\r\n").unwrap();

        let head = original_head(&path).await;

        assert_eq!(head, b"Subject: s\r\nX-A: b\r\n");
    }
}
