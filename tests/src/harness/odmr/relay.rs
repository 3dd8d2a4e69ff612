//! The provider after the turnaround: an SMTP client on the same stream (RFC 2645 §4.3,
//! RFC 821 TURN). Held mail is removed only after 250 to the final dot.

use super::io::{Conn, IoError};
use super::model::{DeliveryAttempt, Fault, domain_of};

#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn last(&self) -> String {
        let text = self.lines.last().map(String::as_str).unwrap_or("");
        format!("{} {}", self.code, text)
    }

    fn positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("malformed reply from the customer: {0:?}")]
    Malformed(String),
    #[error("the customer answered {0}; giving up")]
    Refused(String),
    #[error("fault StopMidData: connection dropped in the middle of DATA")]
    StoppedMidData,
}

async fn read_reply(conn: &mut Conn<'_>) -> Result<Reply, RelayError> {
    let mut lines = Vec::new();
    let mut code = None;
    loop {
        let line = conn.read_line().await?;
        let bytes = line.as_bytes();
        let digits_ok = bytes.len() >= 3 && bytes[..3].iter().all(u8::is_ascii_digit);
        let separator = bytes.get(3).copied();
        if !digits_ok || !matches!(separator, None | Some(b' ') | Some(b'-')) {
            return Err(RelayError::Malformed(line));
        }
        let this: u16 = line[..3]
            .parse()
            .map_err(|_| RelayError::Malformed(line.clone()))?;
        if code.is_some_and(|c| c != this) {
            return Err(RelayError::Malformed(line));
        }
        code = Some(this);
        lines.push(line.get(4..).unwrap_or("").to_string());
        if separator != Some(b'-') {
            return Ok(Reply { code: this, lines });
        }
    }
}

#[derive(Default)]
struct Extensions {
    pipelining: bool,
    eight_bit: bool,
    size: bool,
}

struct Outgoing {
    id: u64,
    from: String,
    rcpts: Vec<String>,
    data: Vec<u8>,
}

/// Runs the reversed session to its end; the caller closes nothing afterwards.
pub(super) async fn deliver(conn: &mut Conn<'_>, domains: &[String]) {
    let fault = conn.shared.config.fault;
    if fault == Some(Fault::SilentAfter250) {
        conn.log_provider("[fault SilentAfter250: not speaking again]");
        conn.drain_silently().await;
        return;
    }
    match reversed_session(conn, domains, fault).await {
        Ok(()) => conn.close().await,
        Err(RelayError::StoppedMidData) => {
            conn.log_provider("[fault StopMidData: dropping the TCP connection]");
            conn.abort();
        }
        Err(e) => {
            conn.log_provider(&format!("[{e}]"));
            conn.close().await;
        }
    }
}

async fn reversed_session(
    conn: &mut Conn<'_>,
    domains: &[String],
    fault: Option<Fault>,
) -> Result<(), RelayError> {
    let hostname = conn.shared.config.hostname.clone();
    let greeting = read_reply(conn).await?;
    if greeting.code != 220 {
        let _ = quit(conn).await;
        return Err(RelayError::Refused(greeting.last()));
    }
    conn.send_line(&format!("EHLO {hostname}")).await?;
    let mut ehlo = read_reply(conn).await?;
    let mut extensions = Extensions::default();
    if ehlo.positive() {
        for keyword in ehlo.lines.iter().skip(1) {
            let word = keyword
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match word.as_str() {
                "PIPELINING" => extensions.pipelining = true,
                "8BITMIME" => extensions.eight_bit = true,
                "SIZE" => extensions.size = true,
                _ => {}
            }
        }
    } else if (500..600).contains(&ehlo.code) {
        conn.send_line(&format!("HELO {hostname}")).await?;
        ehlo = read_reply(conn).await?;
    }
    if !ehlo.positive() {
        let _ = quit(conn).await;
        return Err(RelayError::Refused(ehlo.last()));
    }

    let outgoing: Vec<Outgoing> = conn
        .shared
        .state()
        .held
        .iter()
        .filter_map(|e| {
            let rcpts: Vec<String> = e
                .message
                .rcpts
                .iter()
                .filter(|r| domains.contains(&domain_of(r)))
                .cloned()
                .collect();
            (!rcpts.is_empty()).then(|| Outgoing {
                id: e.id,
                from: e.message.from.clone(),
                rcpts,
                data: e.message.data.clone(),
            })
        })
        .collect();

    for message in &outgoing {
        let attempt = send_one(conn, message, &extensions, fault).await;
        let (record, result) = match attempt {
            Ok(record) => (record, Ok(())),
            Err((record, e)) => (record, Err(e)),
        };
        if record.delivered {
            let mut state = conn.shared.state();
            if let Some(pos) = state.held.iter().position(|e| e.id == message.id) {
                state.held[pos]
                    .message
                    .rcpts
                    .retain(|r| !record.accepted.contains(r));
                if state.held[pos].message.rcpts.is_empty() {
                    state.held.remove(pos);
                }
            }
        }
        conn.shared.state().attempts.push(record);
        result?;
    }
    quit(conn).await
}

async fn quit(conn: &mut Conn<'_>) -> Result<(), RelayError> {
    conn.send_line("QUIT").await?;
    read_reply(conn).await?;
    Ok(())
}

/// RFC 5321 §4.5.2 transparency, and the terminating dot.
fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    let mut at_line_start = true;
    for (i, &b) in data.iter().enumerate() {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n' && i > 0 && data[i - 1] == b'\r';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

type AttemptResult = Result<DeliveryAttempt, (DeliveryAttempt, RelayError)>;

async fn send_one(
    conn: &mut Conn<'_>,
    message: &Outgoing,
    extensions: &Extensions,
    fault: Option<Fault>,
) -> AttemptResult {
    let mut record = DeliveryAttempt {
        session: conn.session,
        from: message.from.clone(),
        rcpts: message.rcpts.clone(),
        accepted: Vec::new(),
        data: message.data.clone(),
        reply: None,
        delivered: false,
    };
    match transaction(conn, message, extensions, fault, &mut record).await {
        Ok(()) => Ok(record),
        Err(e) => Err((record, e)),
    }
}

async fn transaction(
    conn: &mut Conn<'_>,
    message: &Outgoing,
    extensions: &Extensions,
    fault: Option<Fault>,
    record: &mut DeliveryAttempt,
) -> Result<(), RelayError> {
    let mut mail = format!("MAIL FROM:<{}>", message.from);
    if extensions.size {
        mail.push_str(&format!(" SIZE={}", message.data.len()));
    }
    if extensions.eight_bit && message.data.iter().any(|b| *b >= 0x80) {
        mail.push_str(" BODY=8BITMIME");
    }
    let rcpts: Vec<String> = message
        .rcpts
        .iter()
        .map(|r| format!("RCPT TO:<{r}>"))
        .collect();

    let (mail_reply, rcpt_replies, data_reply) = if extensions.pipelining {
        // RFC 2920: MAIL, every RCPT and DATA go in one write; replies are read afterwards.
        let mut group = vec![mail];
        group.extend(rcpts);
        group.push("DATA".to_string());
        conn.send_lines(&group).await?;
        let mail_reply = read_reply(conn).await?;
        let mut rcpt_replies = Vec::new();
        for _ in &message.rcpts {
            rcpt_replies.push(read_reply(conn).await?);
        }
        let data_reply = read_reply(conn).await?;
        (mail_reply, rcpt_replies, Some(data_reply))
    } else {
        conn.send_line(&mail).await?;
        let mail_reply = read_reply(conn).await?;
        let mut rcpt_replies = Vec::new();
        if mail_reply.positive() {
            for line in &rcpts {
                conn.send_line(line).await?;
                rcpt_replies.push(read_reply(conn).await?);
            }
        }
        let any_accepted = rcpt_replies.iter().any(Reply::positive);
        let data_reply = if any_accepted {
            conn.send_line("DATA").await?;
            Some(read_reply(conn).await?)
        } else {
            None
        };
        (mail_reply, rcpt_replies, data_reply)
    };

    for reply in std::iter::once(&mail_reply)
        .chain(&rcpt_replies)
        .chain(data_reply.as_ref())
    {
        if reply.code == 421 {
            record.reply = Some(reply.last());
            return Err(RelayError::Refused(reply.last()));
        }
    }
    record.accepted = message
        .rcpts
        .iter()
        .zip(&rcpt_replies)
        .filter(|(_, r)| r.positive())
        .map(|(a, _)| a.clone())
        .collect();

    let decisive = if !mail_reply.positive() {
        Some(&mail_reply)
    } else if record.accepted.is_empty() {
        rcpt_replies.last()
    } else {
        None
    };
    if let Some(refusal) = decisive {
        record.reply = Some(refusal.last());
        if data_reply.as_ref().is_some_and(|r| r.code == 354) {
            // A customer that accepts DATA without recipients gets an empty message body ended
            // at once, so the stream stays in sync.
            conn.write_raw(b".\r\n").await?;
            conn.log_provider(".");
            read_reply(conn).await?;
        }
        return rset(conn).await;
    }
    let Some(data_reply) = data_reply else {
        return rset(conn).await;
    };
    if data_reply.code != 354 {
        record.reply = Some(data_reply.last());
        return rset(conn).await;
    }

    let stuffed = dot_stuff(&message.data);
    if fault == Some(Fault::StopMidData) {
        let half = stuffed.len() / 2;
        conn.log_provider(&format!(
            "[message content: {half} of {} octets]",
            stuffed.len()
        ));
        conn.write_raw(&stuffed[..half]).await?;
        return Err(RelayError::StoppedMidData);
    }
    let mut content = stuffed;
    content.extend_from_slice(b".\r\n");
    conn.log_provider(&format!("[message content: {} octets]", content.len() - 3));
    conn.log_provider(".");
    conn.write_raw(&content).await?;
    let final_reply = read_reply(conn).await?;
    record.reply = Some(final_reply.last());
    record.delivered = final_reply.code == 250;
    if final_reply.code == 421 {
        return Err(RelayError::Refused(final_reply.last()));
    }
    Ok(())
}

async fn rset(conn: &mut Conn<'_>) -> Result<(), RelayError> {
    conn.send_line("RSET").await?;
    let reply = read_reply(conn).await?;
    if !reply.positive() {
        return Err(RelayError::Refused(reply.last()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::dot_stuff;

    #[test]
    fn dot_stuffing_doubles_leading_dots_only_at_line_starts() {
        let data = b".first\r\nmid.dle\r\n.\r\n..two\r\n";

        let stuffed = dot_stuff(data);

        assert_eq!(stuffed, b"..first\r\nmid.dle\r\n..\r\n...two\r\n");
    }

    #[test]
    fn missing_final_crlf_is_added() {
        assert_eq!(dot_stuff(b"body"), b"body\r\n");
    }
}
