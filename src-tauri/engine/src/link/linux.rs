//! Linux: rtnetlink multicast groups for links (carrier, admin state), addresses and routes.
//!
//! netwatcher diffs interface snapshots (names and addresses), so it stays silent when only the
//! carrier changes — a cable pulled, a modem's or a veth peer's link going down. Every rtnetlink
//! message is only a hint here, so reading the raw groups needs no parsing beyond the type.

use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols::NETLINK_ROUTE};
use tokio::sync::mpsc;

use super::hint::{Hint, HintError};

const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;

/// The name of the event source, for the log.
pub const SOURCE: &str = "rtnetlink";

/// Starts sending a [`Hint`] into `tx` for every interface, address or route change; the
/// task ends when `tx` is closed.
pub fn spawn_hints(tx: mpsc::Sender<Hint>) -> Result<(), HintError> {
    let mut socket = TokioSocket::new(NETLINK_ROUTE).map_err(HintError::io)?;
    let groups = RTMGRP_LINK
        | RTMGRP_IPV4_IFADDR
        | RTMGRP_IPV4_ROUTE
        | RTMGRP_IPV6_IFADDR
        | RTMGRP_IPV6_ROUTE;
    socket
        .socket_mut()
        .bind(&SocketAddr::new(0, groups))
        .map_err(HintError::io)?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                received = socket.recv_from_full() => match received {
                    Ok((bytes, _)) => {
                        // A full channel already holds a hint; more would say nothing new.
                        let _ = tx.try_send(Hint { what: describe(&bytes) });
                    }
                    Err(e) if e.raw_os_error() == Some(ENOBUFS) => {
                        // The kernel dropped messages: something changed.
                        let _ = tx.try_send(Hint { what: "network change (events overflowed)" });
                    }
                    Err(e) => {
                        tracing::warn!("{SOURCE} events stopped ({e}); watching the link by timer only");
                        return;
                    }
                },
            }
        }
    });
    Ok(())
}

const ENOBUFS: i32 = 105;

/// What the first message of a datagram is about (nlmsghdr: len u32, type u16).
fn describe(bytes: &[u8]) -> &'static str {
    let kind = bytes
        .get(4..6)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        .unwrap_or(0);
    match kind {
        16 | 17 => "interface change",
        20 | 21 => "address change",
        24 | 25 => "route change",
        _ => "network change",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_types_are_named() {
        let mut newlink = vec![0u8; 16];
        newlink[4..6].copy_from_slice(&16u16.to_ne_bytes());
        let mut deladdr = vec![0u8; 16];
        deladdr[4..6].copy_from_slice(&21u16.to_ne_bytes());

        assert_eq!(describe(&newlink), "interface change");
        assert_eq!(describe(&deladdr), "address change");
        assert_eq!(describe(&[]), "network change");
    }
}
