//! Where a neighbour's held mail goes: its configured server, or its own MX hosts with a lower
//! preference value (more preferred) than this office's MX host. Never the asking client.

use std::net::IpAddr;
use std::time::Duration;

use crate::config::BackupTarget;
use crate::mx::dns::{Answer, Dns};

/// One server to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub host: String,
    /// Found with the engine's DNS (`None`: `host` is resolved when connecting).
    pub addr: Option<IpAddr>,
    pub port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "cannot look up the MX records of {domain}: {why}. Check [dns] nameservers, or set deliver_to = \"smtp://host:port\" in its [[backup_for]]"
    )]
    Lookup { domain: String, why: String },
    #[error(
        "{domain} has no MX host preferred over this office's ({ours}): Postern would only deliver to itself. Give the neighbour's primary MX a lower preference value than ours, or set deliver_to = \"smtp://host:port\" in its [[backup_for]]"
    )]
    NoPrimary { domain: String, ours: String },
    #[error("the MX hosts of {domain} ({hosts}) have no address. Check their A/AAAA records")]
    NoAddress { domain: String, hosts: String },
}

/// The servers to try for `domain`, best first.
pub async fn resolve(
    domain: &str,
    target: &BackupTarget,
    our_host: &str,
    mx_port: u16,
    nameservers: &[std::net::SocketAddr],
) -> Result<Vec<Hop>, TargetError> {
    let BackupTarget::Mx = target else {
        let BackupTarget::Smtp { host, port } = target else {
            return Ok(Vec::new());
        };
        return Ok(vec![Hop {
            host: host.clone(),
            addr: host.parse().ok(),
            port: *port,
        }]);
    };
    let lookup_err = |why: String| TargetError::Lookup {
        domain: domain.to_string(),
        why,
    };
    let dns =
        Dns::new(nameservers, Duration::from_secs(5)).map_err(|e| lookup_err(e.to_string()))?;
    let records = match dns.mx(domain).await {
        Answer::Found(r) => r,
        Answer::NoData | Answer::NxDomain => {
            return Err(lookup_err("it has no MX records".into()));
        }
        Answer::Failed(why) => return Err(lookup_err(why)),
    };
    let primaries = preferred_over(&records, our_host);
    if primaries.is_empty() {
        return Err(TargetError::NoPrimary {
            domain: domain.to_string(),
            ours: our_host.to_string(),
        });
    }
    let mut hops = Vec::new();
    for (_, host) in &primaries {
        let (v4, v6) = dns.addresses(host).await;
        for ip in v4.found().iter().chain(v6.found()) {
            hops.push(Hop {
                host: host.clone(),
                addr: Some(*ip),
                port: mx_port,
            });
        }
    }
    if hops.is_empty() {
        let hosts: Vec<&str> = primaries.iter().map(|(_, h)| h.as_str()).collect();
        return Err(TargetError::NoAddress {
            domain: domain.to_string(),
            hosts: hosts.join(", "),
        });
    }
    Ok(hops)
}

/// The MX hosts more preferred than `our_host`, best first. When our host is not among them,
/// every host but ours (a null MX "." never).
pub fn preferred_over(records: &[(u16, String)], our_host: &str) -> Vec<(u16, String)> {
    let ours = records
        .iter()
        .filter(|(_, h)| h.eq_ignore_ascii_case(our_host))
        .map(|(p, _)| *p)
        .min();
    let mut out: Vec<(u16, String)> = records
        .iter()
        .filter(|(p, h)| {
            h != "." && !h.eq_ignore_ascii_case(our_host) && ours.is_none_or(|o| *p < o)
        })
        .cloned()
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(list: &[(u16, &str)]) -> Vec<(u16, String)> {
        list.iter().map(|(p, h)| (*p, h.to_string())).collect()
    }

    #[test]
    fn only_hosts_preferred_over_ours_are_targets() {
        let records = mx(&[
            (20, "backup.office.test"),
            (10, "mx.n.test"),
            (30, "late.n.test"),
        ]);

        let hops = preferred_over(&records, "backup.office.test");

        assert_eq!(hops, mx(&[(10, "mx.n.test")]));
    }

    #[test]
    fn equal_preference_is_not_preferred_and_we_are_never_a_target() {
        let records = mx(&[(10, "BACKUP.office.test"), (10, "mx.n.test")]);

        assert!(preferred_over(&records, "backup.office.test").is_empty());
    }

    #[test]
    fn without_our_host_every_other_host_counts_but_not_a_null_mx() {
        let records = mx(&[(20, "b.n.test"), (10, "a.n.test"), (0, ".")]);

        let hops = preferred_over(&records, "gw.office.test");

        assert_eq!(hops, mx(&[(10, "a.n.test"), (20, "b.n.test")]));
    }
}
