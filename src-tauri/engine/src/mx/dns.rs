//! DNS lookups for the checker, each classified so that a transient failure (timeout, SERVFAIL,
//! REFUSED) is never mistaken for "no such record".

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use super::findings::CheckError;

/// The outcome of one lookup.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer<T> {
    Found(Vec<T>),
    /// The name exists but has no record of this type (NOERROR, empty answer).
    NoData,
    /// The name does not exist.
    NxDomain,
    /// The lookup could not be completed; the text says why.
    Failed(String),
}

impl<T> Answer<T> {
    pub(crate) fn found(&self) -> &[T] {
        match self {
            Answer::Found(v) => v,
            _ => &[],
        }
    }
}

#[derive(Clone)]
pub(crate) struct Dns {
    resolver: TokioResolver,
    timeout: Duration,
    server: String,
}

impl Dns {
    /// `nameservers` empty = the system's resolver configuration.
    pub(crate) fn new(nameservers: &[SocketAddr], timeout: Duration) -> Result<Dns, CheckError> {
        let mut builder = if nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| CheckError::Resolver(e.to_string()))?
        } else {
            let servers = nameservers
                .iter()
                .map(|sa| {
                    let mut ns = NameServerConfig::udp_and_tcp(sa.ip());
                    for c in &mut ns.connections {
                        c.port = sa.port();
                    }
                    ns
                })
                .collect();
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        let opts = builder.options_mut();
        opts.timeout = timeout;
        opts.attempts = 1;
        // A check must see the DNS as it is now, not as it was a minute ago.
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        let resolver = builder
            .build()
            .map_err(|e| CheckError::Resolver(e.to_string()))?;
        let server = if nameservers.is_empty() {
            "the system's DNS resolver".to_string()
        } else {
            let list: Vec<String> = nameservers.iter().map(|s| s.to_string()).collect();
            format!("the DNS server {}", list.join(", "))
        };
        Ok(Dns {
            resolver,
            timeout,
            server,
        })
    }

    /// Who answered (for evidence texts).
    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    async fn query(&self, name: &str, rtype: RecordType) -> Answer<RData> {
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let Ok(qname) = Name::from_ascii(&fqdn) else {
            return Answer::Failed(format!("\"{name}\" is not a valid DNS name"));
        };
        // The resolver has its own per-server timeout; this outer bound also covers retries.
        let limit = self.timeout * 3 + Duration::from_secs(1);
        let result = tokio::time::timeout(limit, self.resolver.lookup(qname, rtype)).await;
        match result {
            Err(_) => Answer::Failed(format!(
                "no answer from {} within {} s",
                self.server,
                limit.as_secs()
            )),
            Ok(Ok(lookup)) => {
                let data: Vec<RData> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.data.record_type() == rtype)
                    .map(|r| r.data.clone())
                    .collect();
                if data.is_empty() {
                    Answer::NoData
                } else {
                    Answer::Found(data)
                }
            }
            Ok(Err(e)) => self.classify(&e),
        }
    }

    fn classify<T>(&self, e: &NetError) -> Answer<T> {
        if e.is_nx_domain() {
            return Answer::NxDomain;
        }
        if e.is_no_records_found() {
            return Answer::NoData;
        }
        let why = match e {
            NetError::Timeout => format!(
                "no answer from {} within {} s",
                self.server,
                self.timeout.as_secs()
            ),
            NetError::Dns(DnsError::ResponseCode(code)) => {
                format!("{} answered {code}", self.server)
            }
            other => format!("{} could not be asked: {other}", self.server),
        };
        Answer::Failed(why)
    }

    /// MX records as (preference, exchange without the trailing dot; "." for a null MX).
    pub(crate) async fn mx(&self, domain: &str) -> Answer<(u16, String)> {
        map(self.query(domain, RecordType::MX).await, |d| match d {
            RData::MX(mx) => Some((mx.preference, name_text(&mx.exchange))),
            _ => None,
        })
    }

    pub(crate) async fn addresses(&self, host: &str) -> (Answer<IpAddr>, Answer<IpAddr>) {
        let (v4, v6) = tokio::join!(
            self.query(host, RecordType::A),
            self.query(host, RecordType::AAAA)
        );
        let v4 = map(v4, |d| match d {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        });
        let v6 = map(v6, |d| match d {
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        });
        (v4, v6)
    }

    /// The CNAME target of `host`, asked for directly so that an alias is seen even though the
    /// resolver would follow it for an address lookup.
    pub(crate) async fn cname(&self, host: &str) -> Answer<String> {
        map(self.query(host, RecordType::CNAME).await, |d| match d {
            RData::CNAME(c) => Some(name_text(&c.0)),
            _ => None,
        })
    }

    pub(crate) async fn ptr(&self, ip: IpAddr) -> Answer<String> {
        let name = Name::from(ip).to_ascii();
        map(self.query(&name, RecordType::PTR).await, |d| match d {
            RData::PTR(p) => Some(name_text(&p.0)),
            _ => None,
        })
    }
}

fn map<T>(a: Answer<RData>, f: impl Fn(&RData) -> Option<T>) -> Answer<T> {
    match a {
        Answer::Found(v) => {
            let out: Vec<T> = v.iter().filter_map(f).collect();
            if out.is_empty() {
                Answer::NoData
            } else {
                Answer::Found(out)
            }
        }
        Answer::NoData => Answer::NoData,
        Answer::NxDomain => Answer::NxDomain,
        Answer::Failed(s) => Answer::Failed(s),
    }
}

/// A name as text without the trailing dot; the root is ".".
fn name_text(n: &Name) -> String {
    if n.is_root() {
        return ".".to_string();
    }
    n.to_ascii().trim_end_matches('.').to_string()
}

/// An MX target (or the domain itself for an implicit MX) with what DNS said about it.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub preference: u16,
    /// Lower-case, without the trailing dot.
    pub host: String,
    pub ip_literal: Option<IpAddr>,
    pub cname: Answer<String>,
    pub v4: Answer<IpAddr>,
    pub v6: Answer<IpAddr>,
}

impl Target {
    /// The record as the report shows it.
    pub(crate) fn view(&self) -> super::findings::MxRecordView {
        super::findings::MxRecordView {
            preference: self.preference,
            host: self.host.clone(),
            addresses: self.addresses(),
        }
    }

    pub(crate) fn addresses(&self) -> Vec<IpAddr> {
        if let Some(ip) = self.ip_literal {
            return vec![ip];
        }
        self.v4
            .found()
            .iter()
            .chain(self.v6.found())
            .copied()
            .collect()
    }
}
