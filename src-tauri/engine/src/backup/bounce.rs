//! Returning held mail to its sender: an RFC 3464 DSN (the outbound queue's builder) written
//! into the outbound queue as ordinary outgoing mail, so the relay delivers it.

use crate::backup::server::BackupServer;
use crate::events::Event;
use crate::outbound::dsn::{self, Action};
use crate::outbound::spool::Record;

/// Sends the DSN for `lines` of `record` and reports each; false when none was or could be
/// sent (never one to `<>`).
pub async fn send(server: &BackupServer, record: &Record, lines: &[dsn::Line]) -> bool {
    let sent = write(server, record, lines).await;
    for line in lines {
        let _ = server.events.send(Event::BackupBounced {
            id: record.id.clone(),
            domain: record.held_for.clone().unwrap_or_default(),
            to: line.recipient.clone(),
            reply: line.diagnostic.clone(),
            dsn_sent: sent,
        });
    }
    sent
}

async fn write(server: &BackupServer, record: &Record, lines: &[dsn::Line]) -> bool {
    if record.sender.is_empty() {
        return false;
    }
    let Some(spool) = server.outbound_spool() else {
        tracing::error!(
            id = %record.id,
            "cannot return held mail to {}: there is no [outbound] relay to send the DSN through; add an [outbound] section",
            record.sender
        );
        return false;
    };
    let head = dsn::original_head(&server.spool.message_path(&record.id)).await;
    let message = dsn::build(&server.hostname, record, Action::Failed, lines, &head);
    let mut w = match spool
        .begin("", std::slice::from_ref(&record.sender), None, false)
        .await
    {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("cannot write the DSN for {}: {e}", record.id);
            return false;
        }
    };
    if let Err(e) = w.write(&message).await {
        tracing::error!("cannot write the DSN for {}: {e}", record.id);
        w.abort().await;
        return false;
    }
    match w.commit().await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!("cannot write the DSN for {}: {e}", record.id);
            false
        }
    }
}
