//! What the check of one `[[backup_for]]` domain is given: the neighbour's domain, this office's
//! host and the ports and timeouts to probe with.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{BackupFor, BackupTarget, Config, Release};

/// What to check for one neighbour's domain.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupCheckInput {
    /// The neighbour's domain.
    pub domain: String,
    /// This office's host as it should appear in the neighbour's MX records (`[inbound] hostname`).
    pub our_host: String,
    pub deliver_to: BackupTarget,
    pub release: Vec<Release>,
    /// Empty = the system resolver.
    pub nameservers: Vec<SocketAddr>,
    /// The port senders connect to on our MX host: 25 everywhere but in tests.
    pub mx_port: u16,
    /// `[backup] odmr_listen`: the ports the neighbour's ATRN client is expected at.
    pub odmr_listen: Vec<SocketAddr>,
    pub dns_timeout: Duration,
    pub smtp_timeout: Duration,
    /// Connect to our host's listener and ODMR server. Off = DNS only.
    pub probe_smtp: bool,
}

impl BackupCheckInput {
    /// Defaults: ETRN release to the domain's MX, system DNS, port 25, 3 s DNS and 15 s SMTP
    /// timeouts, probes on.
    pub fn new(domain: &str, our_host: &str) -> BackupCheckInput {
        BackupCheckInput {
            domain: domain.to_string(),
            our_host: our_host.to_string(),
            deliver_to: BackupTarget::Mx,
            release: vec![Release::Etrn],
            nameservers: Vec::new(),
            mx_port: 25,
            odmr_listen: Vec::new(),
            dns_timeout: Duration::from_secs(3),
            smtp_timeout: Duration::from_secs(15),
            probe_smtp: true,
        }
    }

    /// The check of `entry` for the setup in `config`.
    pub fn from_config(config: &Config, entry: &BackupFor) -> BackupCheckInput {
        BackupCheckInput {
            deliver_to: entry.deliver_to.clone(),
            release: entry.release.clone(),
            nameservers: config.dns.nameservers.clone(),
            odmr_listen: config.backup.odmr_listen.clone(),
            ..BackupCheckInput::new(&entry.domain, &config.inbound.hostname)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_input_follows_the_config() {
        let text = r#"
domains = ["a.test"]
[[queue_servers]]
host = "isp.test"
[inbound]
listen = ["0.0.0.0:25"]
deliver = "maildir:/srv/mail/Maildir"
hostname = "Backup.A.test"
[[backup_for]]
domain = "b.test"
deliver_to = "smtp://10.0.0.2:25"
release = ["etrn", "atrn"]
username = "b"
[backup]
odmr_listen = ["0.0.0.0:366"]
[dns]
nameservers = ["127.0.0.1:5353"]
"#;
        let config = Config::parse(text, std::path::Path::new("postern.toml")).unwrap();

        let input = BackupCheckInput::from_config(&config, &config.backup_for[0]);

        assert_eq!(input.domain, "b.test");
        assert!(input.our_host.eq_ignore_ascii_case("Backup.A.test"));
        assert_eq!(input.release, vec![Release::Etrn, Release::Atrn]);
        assert_eq!(input.odmr_listen, vec!["0.0.0.0:366".parse().unwrap()]);
        assert_eq!(input.nameservers, vec!["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(input.mx_port, 25);
    }
}
