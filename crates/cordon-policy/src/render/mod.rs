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
