//! The host's own addresses, reported to the server so analysts can find a host by IP.

use std::net::IpAddr;

/// Addresses of this host's interfaces, without loopback and IPv6 link-local ones,
/// de-duplicated and sorted (so unchanged addresses give an unchanged report), at most
/// [`cordon_proto::MAX_ADDRESSES`] of them (the server refuses a longer list, which would
/// make every report of a host with many addresses fail and the host look offline).
pub fn local_addresses() -> Vec<IpAddr> {
    reportable(interface_addresses())
}

/// The reportable subset of `found`: see [`local_addresses`]. IPv4 first, then IPv6, each
/// in ascending order; what is beyond the limit is dropped (and logged once per call).
fn reportable(found: Vec<IpAddr>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = found
        .into_iter()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified() && !is_link_local_v6(ip))
        .collect();
    out.sort();
    out.dedup();
    if out.len() > cordon_proto::MAX_ADDRESSES {
        tracing::warn!(
            found = out.len(),
            reported = cordon_proto::MAX_ADDRESSES,
            "this host has more addresses than a report may carry; reporting the first ones"
        );
        out.truncate(cordon_proto::MAX_ADDRESSES);
    }
    out
}

fn is_link_local_v6(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

#[cfg(unix)]
fn interface_addresses() -> Vec<IpAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let mut found = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return found;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, valid until freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says which struct it is.
            let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if family == libc::AF_INET {
                // SAFETY: family AF_INET means the sockaddr is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                found.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))));
            } else if family == libc::AF_INET6 {
                // SAFETY: family AF_INET6 means the sockaddr is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                found.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    found
}

#[cfg(not(unix))]
fn interface_addresses() -> Vec<IpAddr> {
    // Windows: not collected yet; the server keeps what enrollment recorded.
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_with_many_addresses_reports_no_more_than_the_server_accepts() {
        let many: Vec<IpAddr> = (0..300u16)
            .map(|i| IpAddr::from([198, 51, (i / 250) as u8, (i % 250) as u8 + 1]))
            .chain(std::iter::once("127.0.0.1".parse().unwrap()))
            .collect();
        let out: Vec<String> = reportable(many).iter().map(ToString::to_string).collect();
        assert_eq!(out.len(), cordon_proto::MAX_ADDRESSES);
        assert_eq!(out[0], "198.51.0.1");
        assert!(!out.iter().any(|a| a == "127.0.0.1"));
    }

    #[test]
    fn filters_loopback_and_link_local() {
        assert!(is_link_local_v6(&"fe80::1".parse().unwrap()));
        assert!(!is_link_local_v6(&"2001:db8::1".parse().unwrap()));
        // Whatever this machine has, loopback is never reported and the list is sorted.
        let addrs: Vec<String> = local_addresses().iter().map(ToString::to_string).collect();
        assert!(addrs.iter().all(|a| a != "127.0.0.1" && a != "::1"), "{addrs:?}");
        let mut sorted: Vec<IpAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
        sorted.sort();
        assert_eq!(sorted.iter().map(|a| a.to_string()).collect::<Vec<_>>(), addrs);
    }
}
