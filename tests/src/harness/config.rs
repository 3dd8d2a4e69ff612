//! `postern.toml` text for tests, using only the keys of the config contract (docs/configuration.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// One `[[queue_servers]]` entry.
#[derive(Clone, Debug)]
pub struct QueueServerToml {
    pub addr: SocketAddr,
    /// "etrn" | "atrn" | "turn"; empty: the key is left out (the default, etrn).
    pub protocol: String,
    /// "required" | "opportunistic" | "off"; empty: the key is left out (the protocol's default).
    pub tls: String,
    /// Extra `key = value` lines (values already in TOML syntax), e.g. `("node", "\"#office\"")`.
    pub extra: Vec<(String, String)>,
}

/// A whole config; `render()` gives the TOML text for [`super::Posternd::run`].
#[derive(Clone, Debug)]
pub struct PosternConfig {
    pub domains: Vec<String>,
    pub queue_servers: Vec<QueueServerToml>,
    pub listen: Vec<SocketAddr>,
    /// "maildir:/path" or "smtp://host:port".
    pub deliver: String,
    pub refetch_every: String,
    pub probe: String,
    pub nameservers: Vec<SocketAddr>,
    /// `state_dir`, when not the default.
    pub state_dir: Option<PathBuf>,
    /// Extra `[inbound]` lines `key = value` (values in TOML syntax), e.g. `hostname`.
    pub inbound_extra: Vec<(String, String)>,
    /// Extra `[link]` lines, likewise.
    pub link_extra: Vec<(String, String)>,
    /// Raw TOML appended at the end (e.g. an `[outbound]` section).
    pub extra: String,
}

fn quoted(s: &str) -> String {
    // A JSON string is a valid TOML basic string for everything tests put here.
    serde_json::Value::String(s.to_string()).to_string()
}

fn list<T: ToString>(items: &[T]) -> String {
    let inner: Vec<String> = items.iter().map(|i| quoted(&i.to_string())).collect();
    format!("[{}]", inner.join(", "))
}

impl PosternConfig {
    /// `office.test`, one ETRN queue server at `queue` (TLS off), inbound on `listen` delivering
    /// into the Maildir `maildir`, dequeue only on link-up (`refetch_every = "0"`).
    pub fn etrn(queue: SocketAddr, listen: SocketAddr, maildir: &Path) -> Self {
        Self {
            domains: vec!["office.test".into()],
            queue_servers: vec![QueueServerToml {
                addr: queue,
                protocol: "etrn".into(),
                tls: "off".into(),
                extra: Vec::new(),
            }],
            listen: vec![listen],
            deliver: format!("maildir:{}", maildir.display()),
            refetch_every: "0".into(),
            probe: "auto".into(),
            nameservers: Vec::new(),
            state_dir: None,
            inbound_extra: Vec::new(),
            link_extra: Vec::new(),
            extra: String::new(),
        }
    }

    /// `state_dir = "…"`.
    pub fn state_dir(mut self, dir: &Path) -> Self {
        self.state_dir = Some(dir.to_path_buf());
        self
    }

    /// Adds `key = value` (value in TOML syntax) to `[inbound]`.
    pub fn inbound_option(mut self, key: &str, toml_value: &str) -> Self {
        self.inbound_extra.push((key.into(), toml_value.into()));
        self
    }

    /// `hostname = "…"` in `[inbound]`.
    pub fn hostname(self, name: &str) -> Self {
        let value = quoted(name);
        self.inbound_option("hostname", &value)
    }

    /// Adds `key = value` (value in TOML syntax) to `[link]`.
    pub fn link_option(mut self, key: &str, toml_value: &str) -> Self {
        self.link_extra.push((key.into(), toml_value.into()));
        self
    }

    pub fn domains(mut self, domains: &[&str]) -> Self {
        self.domains = domains.iter().map(|d| (*d).to_string()).collect();
        self
    }

    /// Sets `tls` of every queue server.
    pub fn tls(mut self, mode: &str) -> Self {
        for server in &mut self.queue_servers {
            server.tls = mode.into();
        }
        self
    }

    /// Sets `protocol` of every queue server ("" leaves the key out).
    pub fn protocol(mut self, protocol: &str) -> Self {
        for server in &mut self.queue_servers {
            server.protocol = protocol.into();
        }
        self
    }

    /// Sets `[inbound] listen` (empty: no listener, e.g. for ATRN's one-shot fetch).
    pub fn listen(mut self, listen: &[SocketAddr]) -> Self {
        self.listen = listen.to_vec();
        self
    }

    /// Adds `key = value` (value in TOML syntax) to the first queue server.
    pub fn queue_option(mut self, key: &str, toml_value: &str) -> Self {
        if let Some(server) = self.queue_servers.first_mut() {
            server.extra.push((key.into(), toml_value.into()));
        }
        self
    }

    /// Appends another queue server (tried after the others).
    pub fn queue_server(mut self, addr: SocketAddr, protocol: &str, tls: &str) -> Self {
        self.queue_servers.push(QueueServerToml {
            addr,
            protocol: protocol.into(),
            tls: tls.into(),
            extra: Vec::new(),
        });
        self
    }

    /// Adds `key = value` (value in TOML syntax) to the last queue server.
    pub fn last_server_option(mut self, key: &str, toml_value: &str) -> Self {
        if let Some(server) = self.queue_servers.last_mut() {
            server.extra.push((key.into(), toml_value.into()));
        }
        self
    }

    /// Delivers to an SMTP server instead of a Maildir.
    pub fn deliver_smtp(mut self, addr: SocketAddr) -> Self {
        self.deliver = format!("smtp://{addr}");
        self
    }

    pub fn nameserver(mut self, addr: SocketAddr) -> Self {
        self.nameservers.push(addr);
        self
    }

    pub fn refetch_every(mut self, every: &str) -> Self {
        self.refetch_every = every.into();
        self
    }

    pub fn probe(mut self, probe: &str) -> Self {
        self.probe = probe.into();
        self
    }

    /// A `[[backup_for]]` entry: this office is the backup MX of `domain`, releasing its mail
    /// to `deliver_to` (`"mx"` or `"smtp://host:port"`) when asked by one of `release`; `extra`
    /// are more `key = value` lines (values in TOML syntax), e.g. `("username", "\"n\"")`.
    pub fn backup_for(
        self,
        domain: &str,
        deliver_to: &str,
        release: &[&str],
        extra: &[(&str, &str)],
    ) -> Self {
        let mut toml = format!(
            "[[backup_for]]\ndomain = {}\ndeliver_to = {}\nrelease = {}\n",
            quoted(domain),
            quoted(deliver_to),
            list(release)
        );
        for (key, value) in extra {
            toml.push_str(&format!("{key} = {value}\n"));
        }
        self.append(&toml)
    }

    /// Raw TOML appended at the end.
    pub fn append(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        let mut out = format!("domains = {}\n", list(&self.domains));
        if let Some(dir) = &self.state_dir {
            out.push_str(&format!(
                "state_dir = {}\n",
                quoted(&dir.display().to_string())
            ));
        }
        for server in &self.queue_servers {
            out.push_str(&format!(
                "\n[[queue_servers]]\nhost = {}\nport = {}\n",
                quoted(&server.addr.ip().to_string()),
                server.addr.port(),
            ));
            if !server.protocol.is_empty() {
                out.push_str(&format!("protocol = {}\n", quoted(&server.protocol)));
            }
            if !server.tls.is_empty() {
                out.push_str(&format!("tls = {}\n", quoted(&server.tls)));
            }
            for (key, value) in &server.extra {
                out.push_str(&format!("{key} = {value}\n"));
            }
        }
        out.push_str(&format!(
            "\n[inbound]\nlisten = {}\ndeliver = {}\n",
            list(&self.listen),
            quoted(&self.deliver)
        ));
        for (key, value) in &self.inbound_extra {
            out.push_str(&format!("{key} = {value}\n"));
        }
        out.push_str(&format!(
            "\n[link]\nprobe = {}\nrefetch_every = {}\n",
            quoted(&self.probe),
            quoted(&self.refetch_every)
        ));
        for (key, value) in &self.link_extra {
            out.push_str(&format!("{key} = {value}\n"));
        }
        out.push_str(&format!(
            "\n[dns]\nnameservers = {}\n",
            list(&self.nameservers)
        ));
        if !self.extra.is_empty() {
            out.push('\n');
            out.push_str(&self.extra);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_contract_keys() {
        let queue: SocketAddr = "127.0.0.1:2525".parse().expect("addr");
        let listen: SocketAddr = "127.0.0.1:2526".parse().expect("addr");

        let text = PosternConfig::etrn(queue, listen, Path::new("/tmp/m"))
            .queue_option("node", "\"#office\"")
            .render();

        assert_eq!(
            text,
            "domains = [\"office.test\"]\n\n[[queue_servers]]\nhost = \"127.0.0.1\"\nport = 2525\n\
             protocol = \"etrn\"\ntls = \"off\"\nnode = \"#office\"\n\n[inbound]\n\
             listen = [\"127.0.0.1:2526\"]\ndeliver = \"maildir:/tmp/m\"\n\n[link]\nprobe = \"auto\"\n\
             refetch_every = \"0\"\n\n[dns]\nnameservers = []\n"
        );
    }
}
