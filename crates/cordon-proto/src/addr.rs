//! Host addresses on the wire (`StatusReport::addresses`, `EnrollRequest::addresses`,
//! `Host::addresses`): typed `IpAddr`s, written as their canonical text (`2001:db8::1`,
//! `192.0.2.2`) — what the server has always answered.
//!
//! Hosts have always been allowed to report an address with surrounding spaces or a
//! `/prefix` length (dropped), and an IPv4-mapped or IPv4-compatible IPv6 address
//! (`::ffff:192.0.2.2`, `::192.0.2.2`) is the IPv4 address; [`parse_host_address`] reads all of these, so
//! what older agents send still reads, and the same address from two hosts compares equal.

use std::net::IpAddr;

/// Longest address text quoted back in an error, in characters.
const QUOTED_CHARS: usize = 64;

/// The address `ip` stands for: an IPv4-mapped IPv6 address (`::ffff:192.0.2.2`, RFC
/// 4291 §2.5.5.2) or an IPv4-compatible one (`::192.0.2.2`, §2.5.5.1, deprecated) is
/// the IPv4 address — stored, flagged and looked up as such, so a dual-stack log naming
/// either form finds the host that reports the plain one (trial7, trial10). `::` and
/// `::1` (unspecified and loopback) are not IPv4-compatible addresses and stay IPv6.
pub fn ipv4_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.into();
            }
            let s = v6.segments();
            if s[..6].iter().all(|x| *x == 0) && !v6.is_unspecified() && !v6.is_loopback() {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return std::net::Ipv4Addr::new(a, b, c, d).into();
            }
            ip
        }
        v4 => v4,
    }
}

/// Reads one reported address: trimmed, a `/prefix` length dropped, an IPv4-mapped or
/// IPv4-compatible IPv6 address as the IPv4 address ([`ipv4_of`]).
///
/// # Errors
/// `address "…" is not an IPv4 or IPv6 address`, quoting at most 64 characters of it.
pub fn parse_host_address(text: &str) -> Result<IpAddr, String> {
    let t = text.trim();
    let bare = t.split_once('/').map_or(t, |(ip, _)| ip);
    bare.parse::<IpAddr>().map(ipv4_of).map_err(|_| {
        let quoted: String = text.chars().take(QUOTED_CHARS).collect();
        let cut = if quoted.len() < text.len() { "…" } else { "" };
        format!("address {:?} is not an IPv4 or IPv6 address", format!("{quoted}{cut}"))
    })
}

/// Whether `ip` can name one host among others, so a host's report may claim it: not
/// the unspecified address (`0.0.0.0`, `::`), a loopback one (`127.0.0.0/8`, `::1`),
/// multicast (`224.0.0.0/4`, `ff00::/8`), the IPv4 broadcast `255.255.255.255`, or
/// link-local (`169.254.0.0/16`, `fe80::/10`) — every host has or may have those, so two
/// hosts reporting one would flag each other as claiming it and an event naming it
/// would be ambiguous or pick one at random (trial25 F12). The agent never reports
/// them; the server drops them from what a host reports (older or other agents). Takes
/// the canonical form ([`ipv4_of`]).
pub fn names_a_host(ip: IpAddr) -> bool {
    match ipv4_of(ip) {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_loopback() || v4.is_multicast() || v4.is_broadcast() || v4.is_link_local())
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified() || v6.is_loopback() || v6.is_multicast() || (v6.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// The address a reference (an event's `host`, a search) spells, in canonical form
/// ([`ipv4_of`]): what [`parse_host_address`] reads, and every other spelling an IP
/// parser takes — inet_aton(3) forms (`0xc0.0.2.2`, `3221225986`), brackets, a zone —
/// as [`crate::hostname::as_address`] reads them: the one reading the hostname rule
/// refuses names by, so a name refused as an address is looked up as that address
/// (trial25 F12: `0xc0.0.2.2` was `unknown_host`, not `192.0.2.2`). `None` for text
/// that is no address.
pub fn parse_reference_address(text: &str) -> Option<IpAddr> {
    parse_host_address(text)
        .ok()
        .or_else(|| crate::hostname::as_address(text.trim()).map(ipv4_of))
}

/// `#[serde(with = "crate::addr::reported")]` for a list of addresses a host reports:
/// each read by [`parse_host_address`] (a bad one refuses the body, naming it); written
/// as canonical text.
pub mod reported {
    use std::net::IpAddr;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// See the [module](self).
    ///
    /// # Errors
    /// The serializer's error.
    pub fn serialize<S: Serializer>(v: &[IpAddr], s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }

    /// See the [module](self).
    ///
    /// # Errors
    /// Not a list of strings, or an element that is not an address.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| super::parse_host_address(t).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fault kind: a typed address list that refuses what hosts have always been
    /// allowed to report, or keeps two spellings of one address apart.
    #[test]
    fn reported_addresses_read_as_before_and_compare_canonically() {
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        struct R {
            #[serde(with = "super::reported")]
            a: Vec<IpAddr>,
        }
        let r: R = serde_json::from_str(
            r#"{"a": [" 192.0.2.2 ", "198.51.100.7/24", "::ffff:192.0.2.2", "2001:0db8:0:0::1"]}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"a":["192.0.2.2","198.51.100.7","192.0.2.2","2001:db8::1"]}"#
        );
        let err = serde_json::from_str::<R>(r#"{"a": ["192.0.2.2", "web1"]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(r#"address "web1" is not an IPv4 or IPv6 address"#),
            "{err}"
        );
        let long = format!(r#"{{"a": ["{}"]}}"#, "x".repeat(10_000));
        let err = serde_json::from_str::<R>(&long).unwrap_err().to_string();
        assert!(err.len() < 300, "the error quotes a bounded part: {err}");
    }

    /// trial25 F12: addresses every host has (unspecified, loopback, multicast,
    /// broadcast, link-local) were accepted as a host's own; an event naming
    /// `0xc0.0.2.2` was not looked up as `192.0.2.2`.
    #[test]
    fn only_addresses_that_can_name_one_host_are_a_hosts_and_every_spelling_reads() {
        for shared in [
            "0.0.0.0",
            "127.0.0.1",
            "127.8.9.1",
            "224.0.0.1",
            "239.1.1.1",
            "255.255.255.255",
            "169.254.10.1",
            "::",
            "::1",
            "ff02::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!names_a_host(shared.parse().unwrap()), "{shared}");
        }
        for own in ["192.0.2.2", "10.1.1.1", "2001:db8::1", "::ffff:198.51.100.7", "fd00::1"] {
            assert!(names_a_host(own.parse().unwrap()), "{own}");
        }
        let v4 = |s: &str| Some(IpAddr::V4(s.parse().unwrap()));
        assert_eq!(parse_reference_address("0xc0.0.2.2"), v4("192.0.2.2"));
        assert_eq!(parse_reference_address("3221225986"), v4("192.0.2.2"));
        assert_eq!(parse_reference_address(" 192.0.2.2/32 "), v4("192.0.2.2"));
        assert_eq!(parse_reference_address("::ffff:c000:202"), v4("192.0.2.2"));
        assert_eq!(
            parse_reference_address("[2001:db8::5]"),
            Some("2001:db8::5".parse().unwrap())
        );
        assert_eq!(parse_reference_address("web1"), None);
    }
}
