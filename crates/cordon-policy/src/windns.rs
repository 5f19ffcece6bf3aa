//! Choosing DNS resolvers from Windows adapter data (what `GetAdaptersAddresses` returns:
//! each adapter's operational status and DNS server list). The FFI call lives in the
//! Windows backend; the choice is made here so it can be tested anywhere.

use std::net::{IpAddr, Ipv6Addr};

/// The part of one `IP_ADAPTER_ADDRESSES` entry that resolver discovery needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterDns {
    /// `FriendlyName`, for messages.
    pub name: String,
    /// `OperStatus == IfOperStatusUp`.
    pub up: bool,
    /// `IfType == IF_TYPE_SOFTWARE_LOOPBACK`.
    pub loopback: bool,
    /// `FirstDnsServerAddress` list, in order.
    pub dns_servers: Vec<IpAddr>,
}

/// The deprecated site-local placeholders `fec0:0:0:ffff::1..3` that Windows lists on
/// adapters which have no IPv6 DNS server configured; they are never real resolvers.
pub fn is_placeholder(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => (1..=3).any(|n| *v6 == Ipv6Addr::new(0xfec0, 0, 0, 0xffff, 0, 0, 0, n)),
        IpAddr::V4(_) => false,
    }
}

/// DNS servers of every adapter that is up and not loopback, without placeholders,
/// unspecified or loopback addresses, de-duplicated in adapter order.
pub fn resolvers(adapters: &[AdapterDns]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for a in adapters.iter().filter(|a| a.up && !a.loopback) {
        for ip in &a.dns_servers {
            if is_placeholder(ip) || ip.is_unspecified() || ip.is_loopback() || out.contains(ip) {
                continue;
            }
            out.push(*ip);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn skips_down_adapters_and_placeholders() {
        let adapters = vec![
            AdapterDns {
                name: "Ethernet".into(),
                up: true,
                loopback: false,
                dns_servers: ips(&["192.0.2.53", "fec0:0:0:ffff::1", "fec0:0:0:ffff::2", "fec0:0:0:ffff::3"]),
            },
            AdapterDns {
                name: "Wi-Fi".into(),
                up: false,
                loopback: false,
                dns_servers: ips(&["203.0.113.53"]),
            },
            AdapterDns {
                name: "VPN".into(),
                up: true,
                loopback: false,
                dns_servers: ips(&["2001:db8:c0::53", "192.0.2.53", "0.0.0.0"]),
            },
            AdapterDns {
                name: "Loopback".into(),
                up: true,
                loopback: true,
                dns_servers: ips(&["127.0.0.1"]),
            },
        ];
        assert_eq!(resolvers(&adapters), ips(&["192.0.2.53", "2001:db8:c0::53"]));
    }
}
