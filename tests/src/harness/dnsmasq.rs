//! `dnsmasq` serving test zones on a loopback port, for the MX checker.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::error::{HarnessError, IoContext, Result};
use super::ports;
use super::process::terminate;
use super::wait::poll_until;

/// Records for [`Dnsmasq`]; everything under `.test` that is not given is NXDOMAIN.
#[derive(Clone, Debug, Default)]
pub struct DnsmasqBuilder {
    args: Vec<String>,
    listen: Option<Ipv4Addr>,
}

impl DnsmasqBuilder {
    /// `domain MX preference host`.
    pub fn mx(mut self, domain: &str, host: &str, preference: u16) -> Self {
        self.args
            .push(format!("--mx-host={domain},{host},{preference}"));
        self
    }

    /// A null MX (`MX 0 .`, RFC 7505): the domain accepts no mail.
    pub fn null_mx(mut self, domain: &str) -> Self {
        self.args.push(format!("--mx-host={domain},.,0"));
        self
    }

    /// An A (or AAAA) record, `--host-record=name,ip`.
    pub fn host(mut self, name: &str, ip: &str) -> Self {
        self.args.push(format!("--host-record={name},{ip}"));
        self
    }

    /// `alias CNAME target` (the target must be a name dnsmasq knows, e.g. given with `host`).
    pub fn cname(mut self, alias: &str, target: &str) -> Self {
        self.args.push(format!("--cname={alias},{target}"));
        self
    }

    /// A TXT record.
    pub fn txt(mut self, name: &str, text: &str) -> Self {
        self.args.push(format!("--txt-record={name},{text}"));
        self
    }

    /// Any other dnsmasq option, e.g. `--local=/example/`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Listens on `ip` instead of 127.0.0.1, e.g. the host end of a [`super::NetNs`] veth so
    /// that a daemon inside the namespace can ask it.
    pub fn listen_on(mut self, ip: Ipv4Addr) -> Self {
        self.listen = Some(ip);
        self
    }

    /// Starts it on a free port (of 127.0.0.1 unless [`listen_on`](Self::listen_on)) and waits
    /// until it answers.
    pub fn start(self) -> Result<Dnsmasq> {
        Dnsmasq::spawn(&self.args, self.listen.unwrap_or(Ipv4Addr::LOCALHOST))
    }
}

/// A running dnsmasq, killed (by PID) on drop.
pub struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    pub fn builder() -> DnsmasqBuilder {
        DnsmasqBuilder::default()
    }

    /// Starts dnsmasq with raw record options, e.g.
    /// `["--mx-host=office.test,mx1.office.test,10", "--host-record=mx1.office.test,127.0.0.1"]`.
    pub fn start(records: &[&str]) -> Result<Self> {
        let args: Vec<String> = records.iter().map(|r| (*r).to_string()).collect();
        Self::spawn(&args, Ipv4Addr::LOCALHOST)
    }

    fn spawn(records: &[String], ip: Ipv4Addr) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("postern-dnsmasq-")
            .tempdir()
            .context(|| "create dnsmasq directory".into())?;
        let addr = SocketAddr::new(ip.into(), ports::free_addr().port());
        let log = dir.path().join("dnsmasq.log");
        let stderr = std::fs::File::create(&log).context(|| "create dnsmasq log".into())?;
        let child = Command::new("dnsmasq")
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--local=/test/",
                "--log-queries",
                "--log-facility=-",
            ])
            .arg(format!("--listen-address={ip}"))
            .arg(format!("--port={}", addr.port()))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("dnsmasq.pid").display()
            ))
            .args(records)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .context(|| {
                "start dnsmasq (package dnsmasq-base; run scripts/install-test-deps.sh)".into()
            })?;
        let mut dns = Self {
            child,
            addr,
            _dir: dir,
        };
        let ready = poll_until(
            format!("dnsmasq on {addr} to answer"),
            Duration::from_secs(10),
            || {
                if let Ok(Some(_)) = dns.child.try_wait() {
                    return Some(false);
                }
                query(addr, "ready.invalid.test", 1).ok().map(|_| true)
            },
        );
        match ready {
            Ok(true) => Ok(dns),
            Ok(false) | Err(_) => {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                let _ = terminate(&mut dns.child, Duration::from_secs(1));
                Err(HarnessError::Other(format!(
                    "dnsmasq did not start:\n{log}"
                )))
            }
        }
    }

    /// Its address, for `[dns] nameservers = ["<addr>"]` or `--nameserver <addr>`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Asks it `name` of type `qtype` (1 = A, 15 = MX, 5 = CNAME, 28 = AAAA).
    pub fn query(&self, name: &str, qtype: u16) -> Result<DnsAnswer> {
        query(self.addr, name, qtype)
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        terminate(&mut self.child, Duration::from_secs(2));
    }
}

/// The parts of a DNS response the smoke tests look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsAnswer {
    /// 0 NOERROR, 3 NXDOMAIN, 5 REFUSED.
    pub rcode: u8,
    pub answers: u16,
}

/// One DNS query over UDP (1 s timeout).
pub fn query(server: SocketAddr, name: &str, qtype: u16) -> Result<DnsAnswer> {
    let local = if server.ip().is_loopback() {
        Ipv4Addr::LOCALHOST
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let socket = UdpSocket::bind((local, 0)).context(|| "bind UDP socket".into())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .context(|| "set UDP timeout".into())?;
    let id: u16 = fastrand::u16(..);
    let mut packet = Vec::with_capacity(64);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        let len = u8::try_from(label.len())
            .map_err(|_| HarnessError::Other(format!("DNS label too long in {name}")))?;
        packet.push(len);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    socket
        .send_to(&packet, server)
        .context(|| format!("send DNS query to {server}"))?;
    let mut buf = [0u8; 1500];
    loop {
        let (n, _) = socket
            .recv_from(&mut buf)
            .context(|| format!("DNS answer from {server}"))?;
        if n < 12 || buf[..2] != id.to_be_bytes() {
            continue;
        }
        return Ok(DnsAnswer {
            rcode: buf[3] & 0x0f,
            answers: u16::from_be_bytes([buf[6], buf[7]]),
        });
    }
}
