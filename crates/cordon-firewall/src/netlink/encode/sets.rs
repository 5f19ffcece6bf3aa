//! Cordon's named sets (`tcp4/tcp6/udp4/udp6`: address . port; `net4/net6`: intervals)
//! and the anonymous ICMPv6 type set: their NEWSET descriptions as nft spells them, and
//! the element keys for a policy's destinations.

use std::net::{IpAddr, SocketAddr};

use cordon_policy::model::Family;
use cordon_policy::render::nft::{SET_NET4, SET_NET6, SET_TCP4, SET_TCP6, SET_UDP4, SET_UDP6};
use cordon_policy::Policy;
use ipnet::IpNet;

use super::super::consts::*;
use super::objects::{Element, SetSpec};

/// nft's set user data, captured from nft 1.0.x: key byte order (0 for concatenations,
/// 2 = big endian for addresses) and, for concatenations and the ICMPv6 type set, the
/// `typeof` description nft uses to print the key.
const UDATA_CONCAT: &[u8] = &[
    0x00, 0x04, 0, 0, 0, 0, 0x03, 0x08, 0x00, 0x04, 0x0d, 0, 0, 0, 0x01, 0x00,
];
const UDATA_ADDR: &[u8] = &[0x00, 0x04, 0x02, 0, 0, 0];
pub(super) const UDATA_ICMPV6_TYPE: &[u8] = &[
    0x00, 0x04, 0x02, 0, 0, 0, 0x03, 0x14, 0x00, 0x04, 0x07, 0, 0, 0, 0x01, 0x0c, 0x00, 0x04, 0x0e, 0, 0, 0, 0x01,
    0x04, 0x01, 0, 0, 0,
];
/// The same for `icmp type { … }`: nft's protocol description id of ICMP is 4 where
/// ICMPv6's is 14 (0x0e).
pub(super) const UDATA_ICMP_TYPE: &[u8] = &[
    0x00, 0x04, 0x02, 0, 0, 0, 0x03, 0x14, 0x00, 0x04, 0x07, 0, 0, 0, 0x01, 0x0c, 0x00, 0x04, 0x04, 0, 0, 0, 0x01,
    0x04, 0x01, 0, 0, 0,
];

/// Concatenated data types: nft packs each component's type in 6 bits.
const KEY_IPV4_SERVICE: u32 = (TYPE_IPADDR << 6) | TYPE_INET_SERVICE;
const KEY_IPV6_SERVICE: u32 = (TYPE_IP6ADDR << 6) | TYPE_INET_SERVICE;

/// `set NAME { type ipvX_addr . inet_service }` (`key_len`: address bytes + 4).
fn pair_set(name: &str, key_type: u32, key_len: u32) -> SetSpec<'_> {
    SetSpec {
        name,
        flags: 0,
        key_type,
        key_len,
        size: None,
        userdata: UDATA_CONCAT,
    }
}

/// `set NAME { type ipvX_addr; flags interval }` (`key_len`: address bytes).
fn net_set(name: &str, key_type: u32, key_len: u32) -> SetSpec<'_> {
    SetSpec {
        name,
        flags: NFT_SET_INTERVAL,
        key_type,
        key_len,
        size: None,
        userdata: UDATA_ADDR,
    }
}

/// The six named sets in the order the renderer declares them, each with the elements
/// `policy` puts in it.
pub(super) fn peer_sets(policy: &Policy) -> [(SetSpec<'static>, Vec<Element>); 6] {
    [
        (
            pair_set(SET_TCP4, KEY_IPV4_SERVICE, 8),
            pair_elements(&policy.tcp_destinations(Family::V4)),
        ),
        (
            pair_set(SET_TCP6, KEY_IPV6_SERVICE, 20),
            pair_elements(&policy.tcp_destinations(Family::V6)),
        ),
        (
            pair_set(SET_UDP4, KEY_IPV4_SERVICE, 8),
            pair_elements(&policy.udp_destinations(Family::V4)),
        ),
        (
            pair_set(SET_UDP6, KEY_IPV6_SERVICE, 20),
            pair_elements(&policy.udp_destinations(Family::V6)),
        ),
        (
            net_set(SET_NET4, TYPE_IPADDR, 4),
            interval_elements(&policy.open_networks(Family::V4), 4),
        ),
        (
            net_set(SET_NET6, TYPE_IP6ADDR, 16),
            interval_elements(&policy.open_networks(Family::V6), 16),
        ),
    ]
}

/// The batch-local ids of the six named sets, for the rules that look them up.
#[derive(Debug, Clone, Copy)]
pub(super) struct PeerSetIds {
    pub tcp4: u32,
    pub tcp6: u32,
    pub udp4: u32,
    pub udp6: u32,
    pub net4: u32,
    pub net6: u32,
}

/// `icmpv6 type { … }`: an anonymous constant set of `types`.
pub(super) fn icmpv6_type_set(types: &[u8]) -> (SetSpec<'static>, Vec<Element>) {
    icmp_type_set(NFPROTO_IPV6, types)
}

/// `icmp type { … }` (`nfproto` IPv4) or `icmpv6 type { … }` (IPv6): an anonymous
/// constant set of `types`.
pub(super) fn icmp_type_set(nfproto: u8, types: &[u8]) -> (SetSpec<'static>, Vec<Element>) {
    let (key_type, userdata) = if nfproto == NFPROTO_IPV4 {
        (TYPE_ICMP_TYPE, UDATA_ICMP_TYPE)
    } else {
        (TYPE_ICMP6_TYPE, UDATA_ICMPV6_TYPE)
    };
    let spec = SetSpec {
        name: ANON_SET_NAME,
        flags: NFT_SET_ANONYMOUS | NFT_SET_CONSTANT,
        key_type,
        key_len: 1,
        size: Some(types.len() as u32),
        userdata,
    };
    (spec, types.iter().map(|ty| Element::key(vec![*ty])).collect())
}

/// `addr . port` keys: the address, then the port in network order padded to the 4-byte
/// register width that concatenations use.
fn pair_elements(members: &[SocketAddr]) -> Vec<Element> {
    members
        .iter()
        .map(|m| {
            let mut key = ip_bytes(&m.ip());
            key.extend_from_slice(&m.port().to_be_bytes());
            key.extend_from_slice(&[0, 0]);
            Element::key(key)
        })
        .collect()
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Interval set elements the way nft emits them: sorted ranges, each a start element and
/// an end element holding the first address *after* the range (flagged INTERVAL_END); an
/// end element at 0 first when the first range does not start at 0; a range that runs to
/// the top of the address space has no end element and is marked "open" in user data.
/// `width` is the address length in bytes (4 or 16); networks of the other family are
/// left out.
pub fn interval_elements(nets: &[IpNet], width: usize) -> Vec<Element> {
    let mut ranges: Vec<(u128, u128)> = nets
        .iter()
        .filter(|n| ip_bytes(&n.addr()).len() == width)
        .map(|n| (ip_to_u128(&n.network()), ip_to_u128(&n.broadcast())))
        .collect();
    ranges.sort();
    let max: u128 = if width == 4 { u128::from(u32::MAX) } else { u128::MAX };
    let to_key = |v: u128| -> Vec<u8> {
        let b = v.to_be_bytes();
        b[16 - width..].to_vec()
    };
    let mut out = Vec::new();
    if let Some((first, _)) = ranges.first() {
        if *first != 0 {
            out.push(Element {
                key: to_key(0),
                interval_end: true,
                open_end: false,
            });
        }
    }
    for (start, end) in ranges {
        let open = end == max;
        out.push(Element {
            key: to_key(start),
            interval_end: false,
            open_end: open,
        });
        if !open {
            out.push(Element {
                key: to_key(end + 1),
                interval_end: true,
                open_end: false,
            });
        }
    }
    out
}

fn ip_to_u128(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}
