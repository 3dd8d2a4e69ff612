//! Forwarding to the office mail server (`deliver = "smtp://host:port"`), as a proxy.
//!
//! The transaction is opened on the office server while the client's transaction runs: at the
//! first RCPT we connect and send MAIL FROM, and every RCPT is asked of the office server there
//! and then, so the client gets the office server's own answer for each recipient and one
//! refused address never sinks the message for the others. The message is streamed on as it
//! arrives (dot-stuffed, CRLF line ends, never held whole), and the session answers 250 only
//! after the office server's reply to the final dot. If the office server is down or answers
//! 4xx, the client gets a 4xx and keeps the message.
//!
//! Every wait — connect, each whole reply, each write — is bounded by the forwarding timeout.

use std::time::Duration;

use super::outcome::{DeliverError, Delivered};
use crate::smtp::client::{ClientError, ClientOptions, SmtpClient};
use crate::smtp::data::DotStuffer;
use crate::smtp::reply::Reply;

/// Bytes gathered before a write to the office server.
const SEND_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Forwarder {
    host: String,
    port: u16,
    helo: String,
    timeout: Duration,
}

/// The office server's answer to one recipient, passed on to the client as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptRefused {
    pub code: u16,
    pub lines: Vec<String>,
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

    /// A transaction for `mail_from`; nothing is sent before its first recipient.
    pub fn transaction(&self, mail_from: &str) -> Proxy {
        Proxy {
            forwarder: self.clone(),
            mail_from: mail_from.to_string(),
            client: None,
            accepted: 0,
            failed: None,
        }
    }

    fn options(&self) -> ClientOptions {
        ClientOptions {
            host: self.host.clone(),
            port: self.port,
            timeout: self.timeout,
            helo_name: self.helo.clone(),
            // LAN delivery to the office server: plain SMTP, like any MTA-to-MTA hop without
            // a published TLS policy.
            trust: Default::default(),
            connect_addr: None,
        }
    }

    fn unreachable(&self, e: &ClientError) -> DeliverError {
        DeliverError::Temporary(format!(
            "the office mail server {} could not be reached ({e})",
            self.describe()
        ))
    }
}

/// One transaction, open on the office server from its first recipient on.
#[derive(Debug)]
pub struct Proxy {
    forwarder: Forwarder,
    mail_from: String,
    client: Option<SmtpClient>,
    accepted: usize,
    /// Why the office server cannot take this transaction (unreachable, connection lost, MAIL
    /// refused): the answer for every later recipient, without trying again for each.
    failed: Option<RcptRefused>,
}

impl Proxy {
    /// Asks the office server about `rcpt`. `Ok` when it said 250/251; otherwise its reply,
    /// or a 451 when it cannot be reached (the client tries again later).
    pub async fn rcpt(&mut self, rcpt: &str) -> Result<(), RcptRefused> {
        if let Some(failed) = &self.failed {
            return Err(failed.clone());
        }
        if self.client.is_none() {
            match self.open().await {
                Ok(client) => self.client = Some(client),
                Err(refused) => {
                    self.failed = Some(refused.clone());
                    return Err(refused);
                }
            }
        }
        let Some(client) = self.client.as_mut() else {
            return Err(temporary("the office mail server connection is gone"));
        };
        match client.command(&format!("RCPT TO:<{rcpt}>")).await {
            Ok(reply) if reply.is_positive() => {
                self.accepted += 1;
                Ok(())
            }
            Ok(reply) => Err(refused(reply)),
            Err(e) => {
                self.client = None;
                let refused = temporary(&self.forwarder.unreachable(&e).to_string());
                self.failed = Some(refused.clone());
                Err(refused)
            }
        }
    }

    async fn open(&self) -> Result<SmtpClient, RcptRefused> {
        let f = &self.forwarder;
        let fail = |e: ClientError| temporary(&f.unreachable(&e).to_string());
        let mut client = SmtpClient::connect(&f.options()).await.map_err(fail)?;
        client.hello().await.map_err(fail)?;
        let reply = client
            .command(&format!("MAIL FROM:<{}>", self.mail_from))
            .await
            .map_err(fail)?;
        if !reply.is_positive() {
            client.quit().await;
            return Err(refused(reply));
        }
        Ok(client)
    }

    /// Starts the message: DATA on the office server. Call only after a recipient was accepted.
    pub async fn data(mut self) -> Result<SmtpWriter, DeliverError> {
        let f = self.forwarder.clone();
        let (Some(mut client), true) = (self.client.take(), self.accepted > 0) else {
            return Err(DeliverError::Temporary(
                "the office mail server accepted no recipient".into(),
            ));
        };
        let reply = client
            .command("DATA")
            .await
            .map_err(|e| f.unreachable(&e))?;
        if reply.code != 354 {
            client.quit().await;
            return Err(reply_error(&f, &reply));
        }
        Ok(SmtpWriter {
            forwarder: f,
            client,
            stuffer: DotStuffer::new(),
            pending: Vec::with_capacity(SEND_CHUNK + 1024),
            size: 0,
        })
    }

    /// Ends the transaction without a message (RSET, QUIT, a refused DATA).
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            client.quit().await;
        }
    }
}

fn temporary(text: &str) -> RcptRefused {
    RcptRefused {
        code: 451,
        lines: vec![format!("4.4.1 {text}; try again later")],
    }
}

fn refused(reply: Reply) -> RcptRefused {
    RcptRefused {
        code: reply.code,
        lines: reply.lines,
    }
}

fn reply_error(f: &Forwarder, reply: &Reply) -> DeliverError {
    let detail = format!(
        "the office mail server {} answered {} {}",
        f.describe(),
        reply.code,
        reply.text()
    );
    if (500..600).contains(&reply.code) {
        DeliverError::Permanent {
            code: reply.code,
            detail,
        }
    } else {
        DeliverError::Temporary(detail)
    }
}

/// Streams one message to the office server.
#[derive(Debug)]
pub struct SmtpWriter {
    forwarder: Forwarder,
    client: SmtpClient,
    stuffer: DotStuffer,
    pending: Vec<u8>,
    size: u64,
}

impl SmtpWriter {
    /// Appends message bytes (CRLF line ends, unstuffed).
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), DeliverError> {
        self.size += chunk.len() as u64;
        self.stuffer.stuff(chunk, &mut self.pending);
        if self.pending.len() >= SEND_CHUNK {
            self.send_pending().await?;
        }
        Ok(())
    }

    async fn send_pending(&mut self) -> Result<(), DeliverError> {
        let f = &self.forwarder;
        self.client
            .send_raw(&self.pending, "sending the message")
            .await
            .map_err(|e| f.unreachable(&e))?;
        self.pending.clear();
        Ok(())
    }

    /// Sends the end of data and waits for the office server's verdict.
    pub async fn commit(mut self) -> Result<Delivered, DeliverError> {
        let end = self.stuffer.finish();
        self.pending.extend_from_slice(end);
        self.send_pending().await?;
        let f = self.forwarder.clone();
        let reply = self
            .client
            .read_reply("the end of the message")
            .await
            .map_err(|e| f.unreachable(&e))?;
        self.client.quit().await;
        if !reply.is_positive() {
            return Err(reply_error(&f, &reply));
        }
        Ok(Delivered {
            location: format!("{}: {} {}", f.describe(), reply.code, reply.text()),
            size: self.size,
        })
    }

    /// Gives up on the message: the connection is dropped without the final dot, so the
    /// office server discards what it received.
    pub fn abort(self) {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn an_unreachable_office_server_is_tried_once_per_transaction() {
        // An office server that hangs up at once, counting the connections.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepts = tokio::spawn(async move {
            let mut n = 0;
            while let Ok(Ok((conn, _))) =
                tokio::time::timeout(Duration::from_secs(2), listener.accept()).await
            {
                drop(conn);
                n += 1;
            }
            n
        });
        let forwarder = Forwarder::new("127.0.0.1", port, "gw.test", Duration::from_secs(5));
        let mut proxy = forwarder.transaction("a@example.net");

        let first = proxy.rcpt("u1@office.test").await.unwrap_err();
        let second = proxy.rcpt("u2@office.test").await.unwrap_err();

        assert_eq!((first.code, second.code), (451, 451));
        assert_eq!(first, second);
        drop(proxy);
        assert_eq!(accepts.await.unwrap(), 1);
    }
}
