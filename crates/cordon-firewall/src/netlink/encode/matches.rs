//! The matches Cordon's rules are made of, one function per phrase of the nft text
//! (`meta nfproto ipv4`, `ip saddr`, `tcp flags & (fin | syn | rst | ack) != syn`,
//! `ct state established`, …), each as the expressions nft compiles it to.

use super::super::consts::*;
use super::expr::{cmp_eq, cmp_neq, meta, payload, Expr};

/// Direction of a rule: the input chain matches the peer as source, output as
/// destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    In,
    Out,
}

impl Dir {
    /// The inet base chain of this direction.
    pub fn chain(self) -> &'static str {
        match self {
            Dir::In => "input",
            Dir::Out => "output",
        }
    }
}

/// `meta nfproto ipv4|ipv6` (`nfproto` is `NFPROTO_IPV4` or `NFPROTO_IPV6`).
pub(super) fn nfproto(nfproto: u8) -> [Expr<'static>; 2] {
    [meta(NFT_META_NFPROTO), cmp_eq(vec![nfproto])]
}

/// `meta l4proto tcp|udp|…` (an `IPPROTO_*`).
pub(super) fn l4proto(proto: u8) -> [Expr<'static>; 2] {
    [meta(NFT_META_L4PROTO), cmp_eq(vec![proto])]
}

/// `iif "lo"` / `oif "lo"`: the loopback device is ifindex 1 in every network namespace;
/// nft resolves the name to that index too.
pub(super) fn loopback(dir: Dir) -> [Expr<'static>; 2] {
    let key = if dir == Dir::In { NFT_META_IIF } else { NFT_META_OIF };
    [meta(key), cmp_eq(1u32.to_ne_bytes().to_vec())]
}

/// `ip saddr` / `ip daddr` / `ip6 saddr` / `ip6 daddr` loaded into register 1: the peer's
/// address (source on input, destination on output).
pub(super) fn peer_addr(nfproto: u8, dir: Dir) -> Expr<'static> {
    // IPv4 saddr/daddr at 12/16 (4 bytes), IPv6 at 8/24 (16 bytes).
    let (offset, len) = match (nfproto == NFPROTO_IPV4, dir) {
        (true, Dir::In) => (12, 4),
        (true, Dir::Out) => (16, 4),
        (false, Dir::In) => (8, 16),
        (false, Dir::Out) => (24, 16),
    };
    payload(NFT_PAYLOAD_NETWORK_HEADER, offset, len)
}

/// `… . tcp sport` / `… . udp dport`: the peer's port into the 32-bit register right after
/// the address of a concatenation (reg 9 after a 4-byte address in reg 1, reg 2 after 16
/// bytes).
pub(super) fn peer_port(nfproto: u8, dir: Dir) -> Expr<'static> {
    let dreg = if nfproto == NFPROTO_IPV4 {
        NFT_REG32_01
    } else {
        NFT_REG_2
    };
    Expr::Payload {
        dreg,
        base: NFT_PAYLOAD_TRANSPORT_HEADER,
        offset: if dir == Dir::In { 0 } else { 2 },
        len: 2,
    }
}

/// `udp sport S udp dport D`: nft merges the two into one 4-byte load and compare.
pub(super) fn udp_ports(sport: u16, dport: u16) -> [Expr<'static>; 2] {
    let mut ports = sport.to_be_bytes().to_vec();
    ports.extend_from_slice(&dport.to_be_bytes());
    [payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 4), cmp_eq(ports)]
}

/// TCP flags bits (RFC 9293): FIN, SYN, RST, ACK.
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// `tcp flags & (fin | syn | rst | ack) != syn`: the flags byte, masked, compared. Why not
/// conntrack: see `cordon_policy::render::nft::TCP_NOT_SYN`.
pub(super) fn tcp_not_syn() -> [Expr<'static>; 3] {
    [
        payload(NFT_PAYLOAD_TRANSPORT_HEADER, 13, 1),
        Expr::Bitwise {
            sreg: NFT_REG_1,
            dreg: NFT_REG_1,
            op: Some(NFT_BITWISE_BOOL),
            len: 1,
            mask: vec![TCP_FIN | TCP_SYN | TCP_RST | TCP_ACK],
            xor: vec![0],
        },
        cmp_neq(vec![TCP_SYN]),
    ]
}

/// `ct state established`.
pub(super) fn ct_established() -> [Expr<'static>; 3] {
    ct_state(NF_CT_STATE_BIT_ESTABLISHED)
}

/// `ct state related`: an ICMP error (or helper flow) that conntrack ties to a connection.
pub(super) fn ct_related() -> [Expr<'static>; 3] {
    ct_state(NF_CT_STATE_BIT_RELATED)
}

fn ct_state(bit: u32) -> [Expr<'static>; 3] {
    [
        Expr::Ct {
            key: NFT_CT_STATE,
            dreg: NFT_REG_1,
            dir: None,
        },
        Expr::Bitwise {
            sreg: NFT_REG_1,
            dreg: NFT_REG_1,
            op: None,
            len: 4,
            mask: bit.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        },
        cmp_neq(vec![0; 4]),
    ]
}

/// `ct protocol tcp|udp`: the layer-4 protocol of the connection (for a related ICMP
/// error, of the connection it quotes).
pub(super) fn ct_protocol(proto: u8) -> [Expr<'static>; 2] {
    [
        Expr::Ct {
            key: NFT_CT_PROTOCOL,
            dreg: NFT_REG_1,
            dir: None,
        },
        cmp_eq(vec![proto]),
    ]
}

/// `ct original ip daddr` / `ct original ip6 daddr` into register 1: the destination the
/// connection was opened to.
pub(super) fn ct_original_daddr(nfproto: u8) -> Expr<'static> {
    let key = if nfproto == NFPROTO_IPV4 {
        NFT_CT_DST_IP
    } else {
        NFT_CT_DST_IP6
    };
    Expr::Ct {
        key,
        dreg: NFT_REG_1,
        dir: Some(IP_CT_DIR_ORIGINAL),
    }
}

/// `… . ct original proto-dst`: the connection's destination port into the register right
/// after the address (as [`peer_port`]).
pub(super) fn ct_original_port(nfproto: u8) -> Expr<'static> {
    let dreg = if nfproto == NFPROTO_IPV4 {
        NFT_REG32_01
    } else {
        NFT_REG_2
    };
    Expr::Ct {
        key: NFT_CT_PROTO_DST,
        dreg,
        dir: Some(IP_CT_DIR_ORIGINAL),
    }
}

/// `ip saddr A` / `ip6 daddr A` …: the peer address compared with one address.
pub(super) fn peer_is(nfproto: u8, dir: Dir, addr: &std::net::IpAddr) -> [Expr<'static>; 2] {
    let bytes = match addr {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    [peer_addr(nfproto, dir), cmp_eq(bytes)]
}

/// `ip6 saddr NET` for a network shorter than the address: nft loads the whole address,
/// masks it to the prefix and compares.
pub(super) fn peer_in_net(nfproto: u8, dir: Dir, net: &ipnet::IpNet) -> [Expr<'static>; 3] {
    let (addr, mask) = match net {
        ipnet::IpNet::V4(n) => (n.network().octets().to_vec(), n.netmask().octets().to_vec()),
        ipnet::IpNet::V6(n) => (n.network().octets().to_vec(), n.netmask().octets().to_vec()),
    };
    let len = addr.len() as u32;
    [
        peer_addr(nfproto, dir),
        Expr::Bitwise {
            sreg: NFT_REG_1,
            dreg: NFT_REG_1,
            op: None,
            len,
            mask,
            xor: vec![0; len as usize],
        },
        cmp_eq(addr),
    ]
}

/// `icmp type` / `icmpv6 type` loaded into register 1 (the first byte of either header).
pub(super) fn icmpv6_type() -> Expr<'static> {
    payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1)
}

/// `meta protocol ip|ip6|arp`: the frame's ethertype (`ETH_P_*`), which is what the
/// device layer (netdev family) matches on instead of `meta nfproto`.
pub(super) fn ether_type(ethertype: u16) -> [Expr<'static>; 2] {
    [meta(NFT_META_PROTOCOL), cmp_eq(ethertype.to_be_bytes().to_vec())]
}

/// `@ll,OFFSET*8,16`: two bytes of the frame as sent or received, from the start of the
/// link-layer header (for Ethernet, 12 is the type field; with an 802.1Q tag, 16 is the
/// type inside it). The kernel shows an out-of-band VLAN tag in place here, as on the
/// wire. No dependency: on a device without a link-layer header the load fails and the
/// rule does not match.
pub(super) fn link_u16(offset: u32) -> Expr<'static> {
    payload(NFT_PAYLOAD_LL_HEADER, offset, 2)
}

/// `ip6 hoplimit 255`: only on-link senders (routers decrement it), as RFC 4861 requires
/// of neighbour discovery.
pub(super) fn hoplimit_255() -> [Expr<'static>; 2] {
    [payload(NFT_PAYLOAD_NETWORK_HEADER, 7, 1), cmp_eq(vec![255])]
}
