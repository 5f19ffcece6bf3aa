//! Rendering a [`crate::Policy`] into each firewall's own language. Every function here is
//! pure: same policy in, same bytes out, so golden files can pin them down.

pub mod iptables;
pub mod netdev;
pub mod netsh;
pub mod nft;
pub mod pf;
pub mod wfp;

/// The comment on every nftables table Cordon creates (`inet` and `netdev`): its
/// ownership marker. `cordon status`, `cordon release --force` and the package's removal
/// check find Cordon's tables under any `--table` name by it, even when the state file is
/// lost. Kept in the kernel as the table's user data (`NFTA_TABLE_USERDATA`, the TLV
/// `nft` writes for `comment`).
pub const TABLE_COMMENT: &str = "cordon quarantine";

/// What follows [`TABLE_COMMENT`] in the comment when the table names the state directory
/// that records it ([`crate::Policy::record_dir`]).
pub const RECORDED_IN: &str = "; recorded in ";

/// The longest state directory path a table comment carries, in bytes: nft keeps a table's
/// user data in one TLV of at most 255 bytes (marker, [`RECORDED_IN`] and the NUL included).
pub const MAX_RECORD_DIR: usize = 200;

/// Whether `dir` can be carried in a table comment: absolute, at most [`MAX_RECORD_DIR`]
/// bytes, and free of the characters nft's comment syntax cannot hold (`"`, `\`, control
/// characters).
pub fn record_dir_fits(dir: &str) -> bool {
    dir.starts_with('/') && dir.len() <= MAX_RECORD_DIR && !dir.chars().any(|c| c == '"' || c == '\\' || c.is_control())
}

/// The comment on Cordon's nftables tables for `policy`: [`TABLE_COMMENT`], followed by
/// [`RECORDED_IN`] and the state directory when the policy names one that fits
/// ([`record_dir_fits`]).
pub fn table_comment(policy: &crate::Policy) -> String {
    match policy.record_dir.as_deref().filter(|d| record_dir_fits(d)) {
        Some(dir) => format!("{TABLE_COMMENT}{RECORDED_IN}{dir}"),
        None => TABLE_COMMENT.to_string(),
    }
}

/// The state directory a table comment names (see [`table_comment`]); `None` for the bare
/// marker or any other comment.
pub fn record_dir_of_comment(comment: &str) -> Option<&str> {
    comment
        .strip_prefix(TABLE_COMMENT)?
        .strip_prefix(RECORDED_IN)
        .filter(|d| record_dir_fits(d))
}

/// ICMPv6 types kept open so IPv6 keeps working on the link (design §3 point 5):
/// router solicitation/advertisement (133, 134) and neighbour solicitation/advertisement
/// (135, 136), RFC 4861 §4.
pub const ICMPV6_ND_TYPES: [u8; 4] = [133, 134, 135, 136];

/// DHCPv4 ports as (client, server): 68 and 67 (RFC 2131 §4.1).
pub const DHCP4_PORTS: (u16, u16) = (68, 67);
/// DHCPv6 ports as (client, server): 546 and 547 (RFC 8415 §7.2).
pub const DHCP6_PORTS: (u16, u16) = (546, 547);

/// ICMP error messages accepted when they quote a connection the policy allows (design §3
/// point 5: path MTU discovery needs "fragmentation needed" from whichever router has the
/// small MTU): type number and nftables name. Redirect and source quench, which conntrack
/// also calls related, are not among them.
pub const ICMP4_ERROR_TYPES: [(u8, &str); 3] = [
    (3, "destination-unreachable"),
    (11, "time-exceeded"),
    (12, "parameter-problem"),
];

/// ICMPv6 error messages (RFC 4443 §3) accepted under the same rule; "packet too big" is
/// what IPv6 path MTU discovery depends on.
pub const ICMP6_ERROR_TYPES: [(u8, &str); 4] = [
    (1, "destination-unreachable"),
    (2, "packet-too-big"),
    (3, "time-exceeded"),
    (4, "parameter-problem"),
];

/// Where a DHCPv4 client may send without knowing its server (RFC 2131 §4.1).
pub const DHCP4_BROADCAST: std::net::Ipv4Addr = std::net::Ipv4Addr::BROADCAST;

/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1): where a DHCPv6 client sends.
pub const DHCP6_MULTICAST: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// DHCPv6 servers and relays on the link answer from their link-local address (RFC 8415
/// §18.3): replies from `fe80::/10` are accepted as well as from the known servers.
/// Link-local sources cannot be routed, so this is no channel beyond the link.
pub const LINK_LOCAL6: &str = "fe80::/10";

#[cfg(test)]
mod comment_tests {
    use super::*;

    /// The state directory carried in the table comment reads back as itself; what cannot
    /// be carried (relative, too long, a quote) leaves the bare marker.
    #[test]
    fn the_table_comment_names_the_record_dir_and_reads_back() {
        let mut p = crate::Policy::default();
        assert_eq!(table_comment(&p), TABLE_COMMENT);
        p.record_dir = Some("/var/lib/cordon".into());
        let c = table_comment(&p);
        assert_eq!(c, "cordon quarantine; recorded in /var/lib/cordon");
        assert_eq!(record_dir_of_comment(&c), Some("/var/lib/cordon"));
        assert_eq!(record_dir_of_comment(TABLE_COMMENT), None);
        assert_eq!(record_dir_of_comment("someone else; recorded in /x"), None);
        for bad in ["relative/dir", "/a\"b", &format!("/{}", "d".repeat(MAX_RECORD_DIR))] {
            p.record_dir = Some(bad.to_string());
            assert_eq!(table_comment(&p), TABLE_COMMENT, "{bad:?}");
        }
        assert!(
            table_comment(&crate::Policy {
                record_dir: Some(format!("/{}", "d".repeat(MAX_RECORD_DIR - 1))),
                ..Default::default()
            })
            .len()
                < 254
        );
    }
}
