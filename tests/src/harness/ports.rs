//! Free loopback ports and waiting for a listener to answer.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::error::Result;
use super::wait::poll_until;

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(Default::default)
}

/// A port on 127.0.0.1 that is free for both TCP and UDP right now and was not handed out before
/// in this process (so parallel tests in one binary never get the same one).
///
/// # Panics
/// When the kernel hands out no free port at all (the machine is broken for networking tests).
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) else {
            continue;
        };
        let Ok(port) = tcp.local_addr().map(|a| a.port()) else {
            continue;
        };
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
            continue;
        }
        let mut seen = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if seen.insert(port) {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 after 200 tries");
}

/// `127.0.0.1:<free_port()>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()))
}

/// Waits until a TCP connect to `addr` succeeds (the connection is closed again at once).
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<()> {
    poll_until(format!("{addr} to accept connections"), timeout, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(250))
            .ok()
            .map(|_| ())
    })
}
