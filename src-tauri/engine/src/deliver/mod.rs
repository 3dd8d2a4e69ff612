//! Where an accepted message goes: a Maildir, or the office mail server.
//!
//! A delivery is a [`Writer`] that receives the message in chunks while the DATA phase runs and
//! is then committed. `commit` returns only once the message is durable (Maildir: file and
//! directory fsynced) or accepted by the office server; the SMTP session answers 250 only after
//! that. On any error the session answers 4xx/5xx and the sender keeps the message.

pub mod maildir;
mod outcome;
pub mod smtp;

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::DeliverTarget;
pub use outcome::{DeliverError, Delivered};

use crate::outbound::spool::{Spool, SpoolError, SpoolWriter};

/// The SMTP envelope of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Empty for the null reverse-path `<>` (bounces).
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub peer: Option<SocketAddr>,
}

/// A configured delivery target, ready to take messages.
#[derive(Debug, Clone)]
pub enum Delivery {
    Maildir(maildir::Maildir),
    Smtp(smtp::Forwarder),
    /// The outbound spool (the submission listener): Date:/Message-ID: added when missing.
    Spool(Spool),
}

impl Delivery {
    /// Prepares the target (creates the Maildir folders when missing).
    pub fn open(
        target: &DeliverTarget,
        hostname: &str,
        timeout: Duration,
    ) -> Result<Delivery, DeliverError> {
        Ok(match target {
            DeliverTarget::Maildir(path) => {
                Delivery::Maildir(maildir::Maildir::open(path, hostname)?)
            }
            DeliverTarget::Smtp { host, port } => {
                Delivery::Smtp(smtp::Forwarder::new(host, *port, hostname, timeout))
            }
        })
    }

    /// Starts a mail transaction from `mail_from` (empty for `<>`).
    pub fn transaction(&self, mail_from: &str) -> Transaction {
        match self {
            Delivery::Maildir(m) => Transaction::Maildir(m.clone()),
            Delivery::Smtp(f) => Transaction::Smtp(Box::new(f.transaction(mail_from))),
            Delivery::Spool(s) => Transaction::Spool {
                spool: s.clone(),
                mail_from: mail_from.to_string(),
                rcpts: Vec::new(),
                held_for: None,
            },
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Delivery::Maildir(m) => format!("maildir:{}", m.path().display()),
            Delivery::Smtp(f) => f.describe(),
            Delivery::Spool(s) => format!("the outbound spool {}", s.dir().display()),
        }
    }
}

/// One mail transaction on the delivery target, from MAIL to the end of DATA.
#[derive(Debug)]
pub enum Transaction {
    Maildir(maildir::Maildir),
    Smtp(Box<smtp::Proxy>),
    Spool {
        spool: Spool,
        mail_from: String,
        rcpts: Vec<String>,
        /// Held for a neighbour's domain (the backup MX): kept as it came, no header added.
        held_for: Option<String>,
    },
}

impl Transaction {
    /// Asks the target about one recipient: a Maildir takes every address of the office's
    /// domains; the office server answers for itself.
    pub async fn rcpt(&mut self, rcpt: &str) -> Result<(), smtp::RcptRefused> {
        match self {
            Transaction::Maildir(_) => Ok(()),
            Transaction::Smtp(p) => p.rcpt(rcpt).await,
            Transaction::Spool { rcpts, .. } => {
                rcpts.push(rcpt.to_string());
                Ok(())
            }
        }
    }

    /// Starts writing the message (after at least one recipient was accepted).
    pub async fn data(self) -> Result<Writer, DeliverError> {
        Ok(match self {
            Transaction::Maildir(m) => Writer::Maildir(m.begin().await?),
            Transaction::Smtp(p) => Writer::Smtp(Box::new(p.data().await?)),
            Transaction::Spool {
                spool,
                mail_from,
                rcpts,
                held_for,
            } => {
                let mut writer = spool
                    .begin(&mail_from, &rcpts, None, held_for.is_none())
                    .await
                    .map_err(spool_error)?;
                if let Some(domain) = &held_for {
                    writer.hold_for(domain);
                }
                Writer::Spool(Box::new(writer))
            }
        })
    }

    /// Ends the transaction without a message.
    pub async fn close(self) {
        if let Transaction::Smtp(p) = self {
            p.close().await;
        }
    }
}

/// One message being written.
#[derive(Debug)]
pub enum Writer {
    Maildir(maildir::MaildirWriter),
    Smtp(Box<smtp::SmtpWriter>),
    Spool(Box<SpoolWriter>),
}

fn spool_error(e: SpoolError) -> DeliverError {
    DeliverError::Io {
        what: format!("{} in the outbound spool {}", e.what, e.dir.display()),
        source: e.source,
    }
}

impl Writer {
    /// Appends message bytes (already dot-unstuffed, CRLF line ends).
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), DeliverError> {
        match self {
            Writer::Maildir(w) => w.write(chunk).await,
            Writer::Smtp(w) => w.write(chunk).await,
            Writer::Spool(w) => w.write(chunk).await.map_err(spool_error),
        }
    }

    /// Makes the message durable or delivered; only then may the session say 250.
    pub async fn commit(self) -> Result<Delivered, DeliverError> {
        match self {
            Writer::Maildir(w) => w.commit().await,
            Writer::Smtp(w) => w.commit().await,
            Writer::Spool(w) => {
                let record = w.commit().await.map_err(spool_error)?;
                let location = match &record.held_for {
                    Some(domain) => format!("held for {domain}, queue id {}", record.id),
                    None => format!("outbound queue id {}", record.id),
                };
                Ok(Delivered {
                    location,
                    size: record.size,
                })
            }
        }
    }

    /// Throws the partial message away (refused, too big, connection lost).
    pub async fn abort(self) {
        match self {
            Writer::Maildir(w) => w.abort().await,
            Writer::Smtp(w) => w.abort(),
            Writer::Spool(w) => w.abort().await,
        }
    }
}
