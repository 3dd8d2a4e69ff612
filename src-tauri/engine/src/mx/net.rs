//! Address classification and this machine's own addresses.

use std::net::IpAddr;

/// Whether `ip` can be reached from the public Internet at all (not private, loopback,
/// link-local, CGNAT, unique-local, documentation or unspecified).
pub(crate) fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || o[0] == 0
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_global(IpAddr::V4(v4));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// Whether `domain` is meant to be seen from the Internet: names under the special-use and
/// commonly used private suffixes are not, so private addresses there are expected.
pub(crate) fn is_public_domain(domain: &str) -> bool {
    const PRIVATE: &[&str] = &[
        "test",
        "example",
        "invalid",
        "localhost",
        "local",
        "internal",
        "lan",
        "home",
        "corp",
        "intranet",
        "private",
        "home.arpa",
    ];
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    !PRIVATE
        .iter()
        .any(|s| d == *s || d.ends_with(&format!(".{s}")))
}

/// The addresses of this machine's interfaces (empty if they cannot be read).
pub(crate) fn local_addresses() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(ifs) => ifs.iter().map(|i| i.ip()).collect(),
        Err(e) => {
            tracing::warn!("cannot list this machine's addresses: {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        for (ip, global) in [
            ("8.8.8.8", true),
            ("192.168.1.10", false),
            ("10.0.0.1", false),
            ("127.0.0.1", false),
            ("100.64.0.1", false),
            ("2a00:1450::1", true),
            ("fd00::1", false),
            ("::1", false),
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(is_global(parsed), global, "{ip}");
        }
    }

    #[test]
    fn public_domains() {
        assert!(is_public_domain("office.example.com"));
        assert!(!is_public_domain("office.test"));
        assert!(!is_public_domain("mail.office.home.arpa."));
        assert!(!is_public_domain("localhost"));
    }
}
