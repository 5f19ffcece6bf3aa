//! Parsing of macOS `scutil --dns` output, used to find the DNS resolvers a quarantined
//! Mac may still talk to (design §3 point 3; macOS has no authoritative resolv.conf).
//!
//! The output lists resolver blocks in two sections, the default configuration and the
//! one "for scoped queries". Each block has `nameserver[N] : ADDR` lines, and maybe a
//! `domain` (a split-DNS resolver, e.g. for a VPN) or `options : mdns` (multicast DNS,
//! no nameservers). Every unicast nameserver of every block is a resolver the host may
//! use, so all of them are kept.

use std::net::IpAddr;

/// One `resolver #N` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolver {
    /// `domain : X` for a supplemental (split-DNS) resolver; `None` for the default one.
    pub domain: Option<String>,
    /// The `nameserver[N] : ADDR` addresses, in index order; empty for mDNS blocks.
    pub nameservers: Vec<IpAddr>,
    /// The interface name from `if_index : 6 (en0)`.
    pub interface: Option<String>,
    /// True for blocks of the "for scoped queries" section.
    pub scoped: bool,
}

/// Every resolver block, in output order.
pub fn resolvers(text: &str) -> Vec<Resolver> {
    let mut out: Vec<Resolver> = Vec::new();
    let mut scoped = false;
    let mut current: Option<Resolver> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("DNS configuration") {
            out.extend(current.take());
            scoped = trimmed.contains("scoped");
            continue;
        }
        if trimmed.starts_with("resolver #") {
            out.extend(current.take());
            current = Some(Resolver {
                scoped,
                ..Resolver::default()
            });
            continue;
        }
        let (Some(r), Some((key, value))) = (current.as_mut(), trimmed.split_once(':')) else {
            continue;
        };
        // Split at the first ':' only works for keys; IPv6 values contain ':' too, which
        // is why the value is the whole remainder.
        let (key, value) = (key.trim(), value.trim());
        if key.starts_with("nameserver[") {
            // Drop a zone index (`fe80::1%en0`): rules match on the address alone.
            let addr = value.split('%').next().unwrap_or(value);
            if let Ok(ip) = addr.parse::<IpAddr>() {
                if !r.nameservers.contains(&ip) {
                    r.nameservers.push(ip);
                }
            }
        } else if key == "domain" {
            r.domain = Some(value.trim_end_matches('.').to_ascii_lowercase());
        } else if key == "if_index" {
            r.interface = value
                .split_once('(')
                .map(|(_, rest)| rest.trim_end_matches(')').trim().to_string())
                .filter(|s| !s.is_empty());
        }
    }
    out.extend(current);
    out
}

/// All unicast nameservers of all resolver blocks, without duplicates, in output order.
pub fn nameservers(text: &str) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for r in resolvers(text) {
        for ip in r.nameservers {
            if !found.contains(&ip) {
                found.push(ip);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured shape of `scutil --dns` on macOS 14 with Wi-Fi, a split-DNS VPN
    /// resolver and the usual mDNS and reverse-lookup blocks (addresses replaced with
    /// documentation ranges).
    const SAMPLE: &str = "\
DNS configuration

resolver #1
  search domain[0] : lab.example
  nameserver[0] : 192.0.2.53
  nameserver[1] : 2001:db8:c0::53
  if_index : 14 (en0)
  flags    : Request A records, Request AAAA records
  reach    : 0x00020002 (Reachable,Directly Reachable Address)

resolver #2
  domain   : corp.example.
  nameserver[0] : 198.51.100.53
  if_index : 22 (utun3)
  flags    : Supplemental, Request A records
  reach    : 0x00000003 (Reachable,Transient Connection)
  order    : 102400

resolver #3
  domain   : local
  options  : mdns
  timeout  : 5
  flags    : Request A records, Request AAAA records
  reach    : 0x00000000 (Not Reachable)
  order    : 300000

resolver #4
  domain   : 254.169.in-addr.arpa
  options  : mdns
  timeout  : 5
  flags    : Request A records, Request AAAA records
  reach    : 0x00000000 (Not Reachable)
  order    : 300200

DNS configuration (for scoped queries)

resolver #1
  search domain[0] : lab.example
  nameserver[0] : 192.0.2.53
  nameserver[1] : fe80::1%en0
  if_index : 14 (en0)
  flags    : Scoped, Request A records, Request AAAA records
  reach    : 0x00020002 (Reachable,Directly Reachable Address)
";

    #[test]
    fn parses_blocks_of_both_sections() {
        let rs = resolvers(SAMPLE);
        assert_eq!(rs.len(), 5);
        assert_eq!(rs[0].domain, None);
        assert_eq!(rs[0].interface.as_deref(), Some("en0"));
        assert!(!rs[0].scoped);
        assert_eq!(rs[1].domain.as_deref(), Some("corp.example"));
        assert_eq!(rs[1].interface.as_deref(), Some("utun3"));
        assert!(rs[2].nameservers.is_empty());
        assert!(rs[4].scoped);
    }

    #[test]
    fn collects_every_unicast_nameserver_once() {
        let got = nameservers(SAMPLE);
        let want: Vec<IpAddr> = ["192.0.2.53", "2001:db8:c0::53", "198.51.100.53", "fe80::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn no_dns_configuration() {
        assert!(nameservers("No DNS configuration available\n").is_empty());
        assert!(nameservers("").is_empty());
    }
}
