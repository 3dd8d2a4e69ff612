//! Interface and address changes through netwatcher (the IP Helper notifications on Windows, the
//! route socket on macOS). netwatcher reports a change only when the list of interfaces or
//! their addresses differs, which covers Wi-Fi joins, DHCP leases, VPNs and dial-up interfaces.

use tokio::sync::mpsc;

use super::hint::{Hint, HintError};

pub fn spawn_hints(tx: mpsc::Sender<Hint>) -> Result<(), HintError> {
    let mut watch = netwatcher::watch_interfaces_async::<netwatcher::async_adapter::Tokio>()
        .map_err(|e| HintError(e.to_string()))?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                update = watch.changed() => {
                    if update.is_initial {
                        continue;
                    }
                    let what = if update.diff.added.is_empty() && update.diff.removed.is_empty() {
                        "address change"
                    } else {
                        "interface change"
                    };
                    let _ = tx.try_send(Hint { what });
                }
            }
        }
    });
    Ok(())
}
