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

/// Files where local DNS stubs publish the upstream servers they forward to, in the order
/// they are consulted: systemd-resolved (127.0.0.53/54), NetworkManager (its own
/// resolv.conf without the stub, also when it runs dnsmasq on 127.0.1.1), Debian's
/// dnsmasq (resolvconf hands it the upstream list there). dnsmasq's own `server=` lines are
/// read from [`DNSMASQ_CONF`].
pub const STUB_UPSTREAM_FILES: [&str; 5] = [
    "/run/systemd/resolve/resolv.conf",
    "/run/NetworkManager/no-stub-resolv.conf",
    "/run/NetworkManager/resolv.conf",
    "/run/dnsmasq/resolv.conf",
    "/var/run/dnsmasq/resolv.conf",
];

/// dnsmasq's main configuration file; its `server=IP` lines name upstream servers.
pub const DNSMASQ_CONF: &str = "/etc/dnsmasq.conf";

/// Upstream servers named by dnsmasq `server=` lines (`server=192.0.2.53`,
/// `server=/example.org/192.0.2.53`, `server=192.0.2.53#5353`); the port is ignored.
pub fn dnsmasq_servers(text: &str) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for line in text.lines() {
        let Some(value) = line.trim().strip_prefix("server=") else {
            continue;
        };
        let addr = value.rsplit('/').next().unwrap_or(value);
        let addr = addr.split(['#', '@']).next().unwrap_or(addr);
        if let Ok(ip) = addr.trim().parse::<IpAddr>() {
            if !found.contains(&ip) {
                found.push(ip);
            }
        }
    }
    found
}

/// The result of resolver discovery: the resolvers to keep open, and a warning when the
/// host only names a local stub whose upstream could not be found (then DNS will not
/// work while quarantined unless `--resolver` is given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// Non-loopback resolvers to allow, in file order, without duplicates.
    pub resolvers: Vec<IpAddr>,
    /// Set when only a loopback stub was found and none of its upstreams: a sentence
    /// for the operator suggesting `--resolver`.
    pub warning: Option<String>,
}

/// Decides the resolvers from resolv.conf's nameservers and the texts of the stub upstream
/// files that exist (`(path, text)`, [`STUB_UPSTREAM_FILES`] order, plus the dnsmasq
/// configuration as `(DNSMASQ_CONF, text)`). Loopback nameservers are stubs: their
/// upstream servers are taken from the first file that names any non-loopback server.
pub fn discover(nameservers_in_main: &[IpAddr], stub_files: &[(String, String)]) -> Discovery {
    let mut resolvers: Vec<IpAddr> = nameservers_in_main
        .iter()
        .filter(|a| !a.is_loopback())
        .copied()
        .collect();
    let stubs: Vec<IpAddr> = nameservers_in_main
        .iter()
        .filter(|a| a.is_loopback())
        .copied()
        .collect();
    if stubs.is_empty() {
        return Discovery {
            resolvers,
            warning: None,
        };
    }
    for (path, text) in stub_files {
        let upstream: Vec<IpAddr> = if path == DNSMASQ_CONF {
            dnsmasq_servers(text)
        } else {
            nameservers(text)
        };
        let upstream: Vec<IpAddr> = upstream.into_iter().filter(|a| !a.is_loopback()).collect();
        if !upstream.is_empty() {
            for a in upstream {
                if !resolvers.contains(&a) {
                    resolvers.push(a);
                }
            }
            return Discovery {
                resolvers,
                warning: None,
            };
        }
    }
    let stubs: Vec<String> = stubs.iter().map(|a| a.to_string()).collect();
    let warning = resolvers.is_empty().then(|| {
        format!(
            "DNS will not work while isolated: the only resolver ({}) is a local stub whose upstream servers could not be found; give them with --resolver IP",
            stubs.join(", ")
        )
    });
    Discovery { resolvers, warning }
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
    fn local_stubs_are_followed_to_their_upstream_or_warned_about() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let file = |p: &str, t: &str| (p.to_string(), t.to_string());
        // NetworkManager's dnsmasq on 127.0.1.1, upstream in NM's no-stub file.
        let d = discover(
            &[ip("127.0.1.1")],
            &[file(
                STUB_UPSTREAM_FILES[1],
                "nameserver 192.0.2.53\nnameserver 127.0.0.1\n",
            )],
        );
        assert_eq!(
            d,
            Discovery {
                resolvers: vec![ip("192.0.2.53")],
                warning: None
            }
        );
        // dnsmasq on 127.0.0.1 with server= lines only.
        let d = discover(
            &[ip("127.0.0.1")],
            &[file(
                DNSMASQ_CONF,
                "no-resolv\nserver=/corp.example/198.51.100.53\nserver=2001:db8::53#5353\n",
            )],
        );
        assert_eq!(d.resolvers, vec![ip("198.51.100.53"), ip("2001:db8::53")]);
        assert!(d.warning.is_none());
        // A stub with nothing to follow: no resolver, and a warning naming --resolver.
        let d = discover(&[ip("127.0.0.53")], &[file(STUB_UPSTREAM_FILES[0], "# empty\n")]);
        assert!(d.resolvers.is_empty());
        let w = d.warning.unwrap();
        assert!(w.contains("127.0.0.53") && w.contains("--resolver"), "{w}");
        // A real resolver next to the stub: kept, no warning.
        let d = discover(&[ip("127.0.0.1"), ip("192.0.2.53")], &[]);
        assert_eq!(
            d,
            Discovery {
                resolvers: vec![ip("192.0.2.53")],
                warning: None
            }
        );
    }

    #[test]
    fn detects_systemd_stub() {
        assert!(uses_systemd_stub(&nameservers("nameserver 127.0.0.53\n")));
        assert!(!uses_systemd_stub(&nameservers("nameserver 192.0.2.53\n")));
        assert!(!uses_systemd_stub(&[]));
    }
}
