//! Forwarding to the office mail server (`deliver = "smtp://host:port"`).
//!
//! The session answers 250 only after the office server accepted the message; if it is down or
//! answers 4xx, the session answers 451 and the queuing server keeps the message. lettre's own
//! timeout covers the connect only, so the whole transaction runs under our timeout too.

use std::time::Duration;

use lettre::address::{Address, Envelope as LettreEnvelope};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{DeliverError, Delivered, Envelope};

#[derive(Debug, Clone)]
pub struct Forwarder {
    host: String,
    port: u16,
    helo: String,
    timeout: Duration,
}

impl Forwarder {
    pub fn new(host: &str, port: u16, helo: &str, timeout: Duration) -> Forwarder {
        Forwarder {
            host: host.to_string(),
            port,
            helo: helo.to_string(),
            timeout,
        }
    }

    pub fn describe(&self) -> String {
        format!("smtp://{}:{}", self.host, self.port)
    }

    pub fn begin(&self, envelope: &Envelope) -> SmtpWriter {
        SmtpWriter {
            forwarder: self.clone(),
            envelope: envelope.clone(),
            data: Vec::with_capacity(16 * 1024),
        }
    }
}

/// Holds the message in memory (bounded by the session's size limit): lettre sends from a slice.
#[derive(Debug)]
pub struct SmtpWriter {
    forwarder: Forwarder,
    envelope: Envelope,
    data: Vec<u8>,
}

impl SmtpWriter {
    pub fn write(&mut self, chunk: &[u8]) {
        self.data.extend_from_slice(chunk);
    }

    pub async fn commit(self) -> Result<Delivered, DeliverError> {
        let f = &self.forwarder;
        let envelope = lettre_envelope(&self.envelope)?;
        // LAN delivery to the office server: plain SMTP, like any MTA-to-MTA hop without a
        // published TLS policy.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(f.host.as_str())
            .port(f.port)
            .hello_name(lettre::transport::smtp::extension::ClientId::Domain(
                f.helo.clone(),
            ))
            .timeout(Some(f.timeout))
            .build();
        // lettre ends DATA with "\r\n.\r\n" itself: hand it the content without the CRLF of the
        // last line, or every forwarded message would grow a blank line.
        let content = self.data.strip_suffix(b"\r\n").unwrap_or(&self.data);
        let sent =
            tokio::time::timeout(f.timeout * 2, transport.send_raw(&envelope, content)).await;
        match sent {
            Err(_) => Err(DeliverError::Temporary(format!(
                "the office mail server {} did not finish within {} s",
                f.describe(),
                (f.timeout * 2).as_secs()
            ))),
            Ok(Ok(response)) => Ok(Delivered {
                location: format!(
                    "{}: {} {}",
                    f.describe(),
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                ),
                size: self.data.len() as u64,
            }),
            Ok(Err(e)) if e.is_permanent() => Err(DeliverError::Permanent {
                code: 550,
                detail: format!("the office mail server refused the message: {e}"),
            }),
            Ok(Err(e)) => Err(DeliverError::Temporary(format!(
                "the office mail server {} did not take the message ({e})",
                f.describe()
            ))),
        }
    }
}

fn lettre_envelope(env: &Envelope) -> Result<LettreEnvelope, DeliverError> {
    let bad = |a: &str| DeliverError::Permanent {
        code: 553,
        detail: format!("the address <{a}> cannot be forwarded"),
    };
    let from = if env.mail_from.is_empty() {
        None
    } else {
        Some(
            env.mail_from
                .parse::<Address>()
                .map_err(|_| bad(&env.mail_from))?,
        )
    };
    let to = env
        .rcpt_to
        .iter()
        .map(|r| r.parse::<Address>().map_err(|_| bad(r)))
        .collect::<Result<Vec<_>, _>>()?;
    LettreEnvelope::new(from, to).map_err(|e| DeliverError::Permanent {
        code: 554,
        detail: format!("the envelope cannot be forwarded: {e}"),
    })
}
