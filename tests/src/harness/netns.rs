//! A network namespace joined to the host (or to another such namespace) by a veth pair, so a
//! test can take a "link" down and up for real. Addresses are 10.200.X.Y/30 inside namespaces
//! this guard creates, nothing else.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::error::{HarnessError, Result};
use super::preconditions::require_root;
use super::process::run;

const IP_TIMEOUT: Duration = Duration::from_secs(10);

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// `ip netns add`, a veth pair (host side `host_if`, namespace side `ns_if`), host
/// 10.200.X.(4k+1)/30 and namespace 10.200.X.(4k+2)/30, loopback up inside. Deleted on drop.
pub struct NetNs {
    name: String,
    /// The namespace the "host" end lives in; `None` = the host itself.
    outer: Option<String>,
    host_if: String,
    ns_if: String,
    subnet_base: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<()> {
    run(Command::new("ip").args(args), IP_TIMEOUT).map(|_| ())
}

/// `ip ARGS`, inside `netns` when given.
fn ip_in(netns: Option<&str>, args: &[&str]) -> Result<()> {
    match netns {
        Some(ns) => ip(&[&["netns", "exec", ns, "ip"], args].concat()),
        None => ip(args),
    }
}

fn assigned_addresses() -> String {
    Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

impl NetNs {
    /// Creates the namespace and the veth pair, both ends up. Root only.
    pub fn create() -> Result<Self> {
        Self::create_in(None)
    }

    /// A namespace reachable only through `outer`: the veth's "host" end (and
    /// [`host_addr`](Self::host_addr)) lives inside `outer`, not on the host. Root only.
    pub fn create_behind(outer: &NetNs) -> Result<Self> {
        Self::create_in(Some(outer))
    }

    fn create_in(outer: Option<&NetNs>) -> Result<Self> {
        require_root().map_err(HarnessError::Other)?;
        let pid = std::process::id();
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{}", pid % 100_000, seq);
        let in_use = assigned_addresses();
        // 16384 /30 subnets in 10.200.0.0/16; start where this process and sequence point, skip
        // any subnet already on the host (another test process).
        let start = (pid.wrapping_mul(64).wrapping_add(seq * 7)) % 16_384;
        let subnet_base = (0..16_384u32)
            .map(|k| {
                let index = (start + k) % 16_384;
                Ipv4Addr::new(10, 200, (index / 64) as u8, ((index % 64) * 4) as u8)
            })
            .find(|base| {
                let host = Ipv4Addr::from(u32::from(*base) + 1);
                !in_use.contains(&format!(" {host}/"))
                    && outer.is_none_or(|o| o.subnet_base != *base)
            })
            .ok_or_else(|| HarnessError::Other("no free 10.200.0.0/16 subnet left".into()))?;
        let ns = Self {
            name: format!("postern-{tag}"),
            outer: outer.map(|o| o.name.clone()),
            host_if: format!("pth{tag}"),
            ns_if: format!("ptn{tag}"),
            subnet_base,
        };
        if ns.host_if.len() > 15 {
            return Err(HarnessError::Other(format!(
                "interface name {} too long",
                ns.host_if
            )));
        }
        ip(&["netns", "add", &ns.name])?;
        ns.set_up().inspect_err(|_| ns.cleanup())?;
        Ok(ns)
    }

    fn set_up(&self) -> Result<()> {
        let host = format!("{}/30", self.host_addr());
        let inner = format!("{}/30", self.ns_addr());
        ip(&[
            "link",
            "add",
            &self.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &self.ns_if,
        ])?;
        ip(&["link", "set", &self.ns_if, "netns", &self.name])?;
        let outer = self.outer.as_deref();
        if let Some(outer) = outer {
            ip(&["link", "set", &self.host_if, "netns", outer])?;
        }
        ip_in(outer, &["addr", "add", &host, "dev", &self.host_if])?;
        // While the link is down, the connected route is gone: this keeps packets for the
        // namespace from following the host's default route off the machine. (An outer
        // namespace has no default route.)
        if outer.is_none() {
            ip(&[
                "route",
                "add",
                "unreachable",
                &self.subnet(),
                "metric",
                "4000",
            ])?;
        }
        ip_in(outer, &["link", "set", &self.host_if, "up"])?;
        let netns = ["netns", "exec", self.name.as_str(), "ip"];
        ip(&[&netns[..], &["addr", "add", &inner, "dev", &self.ns_if]].concat())?;
        ip(&[&netns[..], &["link", "set", &self.ns_if, "up"]].concat())?;
        ip(&[&netns[..], &["link", "set", "lo", "up"]].concat())?;
        Ok(())
    }

    /// The namespace name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host-side veth interface (the one `link_down` takes down).
    pub fn host_interface(&self) -> &str {
        &self.host_if
    }

    /// The host end's address, reachable from inside the namespace.
    pub fn host_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet_base) + 1)
    }

    /// The namespace end's address, reachable from the host while the link is up.
    pub fn ns_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet_base) + 2)
    }

    /// `10.200.X.Y/30`.
    pub fn subnet(&self) -> String {
        format!("{}/30", self.subnet_base)
    }

    /// Brings the host side of the veth up again.
    pub fn link_up(&self) -> Result<()> {
        ip_in(self.outer.as_deref(), &["link", "set", &self.host_if, "up"])
    }

    /// Takes the host side of the veth down: the namespace becomes unreachable at once.
    pub fn link_down(&self) -> Result<()> {
        ip_in(
            self.outer.as_deref(),
            &["link", "set", &self.host_if, "down"],
        )
    }

    /// `ip link set <inner end> up` inside the namespace: what a machine whose own cable or
    /// Wi-Fi comes back sees.
    pub fn inner_link_up(&self) -> Result<()> {
        ip_in(Some(&self.name), &["link", "set", &self.ns_if, "up"])
    }

    /// `ip link set <inner end> down` inside the namespace.
    pub fn inner_link_down(&self) -> Result<()> {
        ip_in(Some(&self.name), &["link", "set", &self.ns_if, "down"])
    }

    /// Runs `f` on a thread that has joined the namespace: sockets it opens are inside (e.g. an
    /// SMTP client talking to a daemon that only the namespace can reach).
    pub fn run_inside<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let path = format!("/var/run/netns/{}", self.name);
        let handle = std::thread::spawn(move || -> Result<T> {
            let file = std::fs::File::open(&path)
                .map_err(|e| HarnessError::Other(format!("open {path}: {e}")))?;
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| HarnessError::Other(format!("setns {path}: {e}")))?;
            Ok(f())
        });
        handle
            .join()
            .map_err(|_| HarnessError::Other("the thread inside the namespace panicked".into()))?
    }

    /// A command that runs `program` inside the namespace.
    pub fn exec(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    fn cleanup(&self) {
        let outer = self.outer.as_deref();
        if outer.is_none() {
            let _ = ip(&[
                "route",
                "del",
                "unreachable",
                &self.subnet(),
                "metric",
                "4000",
            ]);
        }
        let _ = ip_in(outer, &["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        self.cleanup();
    }
}
