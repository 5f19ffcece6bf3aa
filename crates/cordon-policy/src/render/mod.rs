//! Rendering a [`crate::Policy`] into each firewall's own language. Every function here is
//! pure: same policy in, same bytes out, so golden files can pin them down.

pub mod iptables;
pub mod netdev;
pub mod netsh;
pub mod nft;
pub mod pf;
pub mod wfp;

/// ICMPv6 types kept open so IPv6 keeps working on the link (design §3 point 5):
/// router solicitation/advertisement and neighbour solicitation/advertisement.
pub const ICMPV6_ND_TYPES: [u8; 4] = [133, 134, 135, 136];

/// DHCP ports: (client, server) for v4 and v6.
pub const DHCP4_PORTS: (u16, u16) = (68, 67);
pub const DHCP6_PORTS: (u16, u16) = (546, 547);
