//! Parsing of `resolv.conf` text, used to find the DNS resolvers a quarantined host may
//! still talk to (design §3 point 3).

use std::net::IpAddr;

/// The nameserver addresses listed in `resolv.conf` text, in file order, without
/// duplicates. Zone indexes (`fe80::1%eth0`) are dropped because the rules match on the
/// address alone.
pub fn nameservers(text: &str) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(value) = words.next() else { continue };
        let value = value.split('%').next().unwrap_or(value);
        if let Ok(addr) = value.parse::<IpAddr>() {
            if !found.contains(&addr) {
                found.push(addr);
            }
        }
    }
    found
}

/// True when the only nameserver is systemd-resolved's local stub, in which case the
/// real upstream servers are in `/run/systemd/resolve/resolv.conf`.
pub fn uses_systemd_stub(servers: &[IpAddr]) -> bool {
    !servers.is_empty()
        && servers
            .iter()
            .all(|a| *a == IpAddr::from([127, 0, 0, 53]) || *a == IpAddr::from([127, 0, 0, 54]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nameservers_in_order_and_skips_junk() {
        let text = "# comment\nsearch lab\nnameserver 192.0.2.53\nnameserver   2001:db8:c0::53\n\
                    nameserver fe80::1%eth0\nnameserver bogus\nnameserver 192.0.2.53\noptions edns0\n";
        let got = nameservers(text);
        assert_eq!(
            got,
            vec![
                "192.0.2.53".parse::<IpAddr>().unwrap(),
                "2001:db8:c0::53".parse().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn detects_systemd_stub() {
        assert!(uses_systemd_stub(&nameservers("nameserver 127.0.0.53\n")));
        assert!(!uses_systemd_stub(&nameservers("nameserver 192.0.2.53\n")));
        assert!(!uses_systemd_stub(&[]));
    }
}
