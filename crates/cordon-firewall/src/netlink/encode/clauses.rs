//! The clauses both of Cordon's tables carry — the peer sets, the peer rules (README 2, 3
//! and 6) and DHCP (README 4) — written once for both layers:
//!
//! * the `inet` table ([`super::table`]) matches the family with `meta nfproto` and lets
//!   replies in by conntrack (`ct state established`);
//! * the device-layer table ([`super::netdev`]) matches the ethertype with `meta protocol`
//!   and has no conntrack, so replies are told from new connections by the TCP flags alone.
//!
//! Each function returns the rules as expression lists in the order the nft renderers
//! (`cordon_policy::render::nft`, `…::netdev`) write the lines; the callers add them to
//! their chains.

use cordon_policy::model::Family;
use cordon_policy::render::netdev::{
    DHCP4_FRAME_MAX, DHCP4_REPLY_BURST, DHCP4_REPLY_MAX, DHCP4_REPLY_RATE, DHCP6_FRAME_MAX,
};
use cordon_policy::render::nft::{SET_NET4, SET_NET6, SET_TCP4, SET_TCP6, SET_UDP4, SET_UDP6};
use cordon_policy::render::{DHCP4_BROADCAST, DHCP4_PORTS, DHCP6_MULTICAST, DHCP6_PORTS, LINK_LOCAL6};
use cordon_policy::Policy;

use super::super::consts::*;
use super::expr::{accept, cmp_eq, cmp_neq, length_at_most, lookup, payload, Expr};
use super::matches::{
    ct_established, ether_type, l4proto, nfproto, peer_addr, peer_in_net, peer_is, peer_port, tcp_not_syn, udp_ports,
    Dir,
};
use super::sets::{peer_sets, PeerSetIds};
use super::wire::Batch;

/// Ethertypes (linux/if_ether.h, from libc).
pub(super) const ETH_P_IP: u16 = libc::ETH_P_IP as u16;
pub(super) const ETH_P_IPV6: u16 = libc::ETH_P_IPV6 as u16;
pub(super) const ETH_P_ARP: u16 = libc::ETH_P_ARP as u16;

/// Which table a clause is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layer {
    /// `table inet`: stateful (conntrack).
    Inet,
    /// `table netdev`: stateless, on the ingress/egress hooks of devices.
    Device,
}

/// One rule: its expressions.
pub(super) type Rule = Vec<Expr<'static>>;

impl Layer {
    /// `meta nfproto ipv4|ipv6` (inet) or `meta protocol ip|ip6` (device layer) for
    /// `l3` (`NFPROTO_IPV4`/`NFPROTO_IPV6`).
    pub fn family_match(self, l3: u8) -> Rule {
        match self {
            Layer::Inet => nfproto(l3).to_vec(),
            Layer::Device => ether_type(if l3 == NFPROTO_IPV4 { ETH_P_IP } else { ETH_P_IPV6 }).to_vec(),
        }
    }
}

/// The six named sets with every allowed destination (servers, resolvers, exceptions:
/// `tcp4 … net6`), added to `batch`; their batch-local ids for the rules that look them
/// up. Sets belong to one table, so each table gets its own.
pub(super) fn add_peer_sets(batch: &mut Batch, table: &str, policy: &Policy) -> PeerSetIds {
    let mut ids = [0u32; 6];
    for (id, (spec, elems)) in ids.iter_mut().zip(peer_sets(policy).iter()) {
        *id = batch.new_set(table, spec);
        batch.new_elements(table, spec.name, *id, elems);
    }
    let [tcp4, tcp6, udp4, udp6, net4, net6] = ids;
    PeerSetIds {
        tcp4,
        tcp6,
        udp4,
        udp6,
        net4,
        net6,
    }
}

/// README 2, 3 and 6: toward the peers on output/egress (`ip daddr . tcp dport @tcp4
/// accept`, UDP, the network sets); from them on input/ingress only replies. Inet: TCP
/// any segment but a SYN (see `cordon_policy::render::nft::TCP_NOT_SYN`), UDP and the
/// networks `ct state established`, plus TCP-not-SYN from the networks. Device layer: TCP
/// not a SYN, UDP as is, and from the networks TCP not a SYN or any other protocol.
pub(super) fn peer_rules(layer: Layer, ids: &PeerSetIds, dir: Dir) -> Vec<Rule> {
    let families = [
        (
            NFPROTO_IPV4,
            (SET_TCP4, ids.tcp4),
            (SET_UDP4, ids.udp4),
            (SET_NET4, ids.net4),
        ),
        (
            NFPROTO_IPV6,
            (SET_TCP6, ids.tcp6),
            (SET_UDP6, ids.udp6),
            (SET_NET6, ids.net6),
        ),
    ];
    let inbound = dir == Dir::In;
    let mut rules = Vec::new();
    for (l3, tcp, udp, (net, net_id)) in families {
        for (l4, (set, id)) in [(IPPROTO_TCP, tcp), (IPPROTO_UDP, udp)] {
            let mut r = layer.family_match(l3);
            r.extend(l4proto(l4));
            r.extend([peer_addr(l3, dir), peer_port(l3, dir), lookup(set, id)]);
            match (inbound, l4, layer) {
                (true, IPPROTO_TCP, _) => r.extend(tcp_not_syn()),
                (true, _, Layer::Inet) => r.extend(ct_established()),
                _ => {}
            }
            r.push(accept());
            rules.push(r);
        }
        let from_net = || {
            let mut r = layer.family_match(l3);
            r.extend([peer_addr(l3, dir), lookup(net, net_id)]);
            r
        };
        match (inbound, layer) {
            (false, _) => {
                let mut r = from_net();
                r.push(accept());
                rules.push(r);
            }
            (true, Layer::Inet) => {
                // `ip saddr @net4 ct state established accept`, then the TCP variant.
                let mut r = from_net();
                r.extend(ct_established());
                r.push(accept());
                rules.push(r);
                let mut r = from_net();
                r.extend(l4proto(IPPROTO_TCP));
                r.extend(tcp_not_syn());
                r.push(accept());
                rules.push(r);
            }
            (true, Layer::Device) => {
                // No new inbound TCP (like the inet table), any other protocol as is.
                let mut r = from_net();
                r.extend(l4proto(IPPROTO_TCP));
                r.extend(tcp_not_syn());
                r.push(accept());
                rules.push(r);
                let mut r = from_net();
                r.extend(l4proto_not(IPPROTO_TCP));
                r.push(accept());
                rules.push(r);
            }
        }
    }
    rules
}

/// `meta l4proto != PROTO`.
fn l4proto_not(proto: u8) -> [Expr<'static>; 2] {
    let [m, _] = l4proto(proto);
    [m, cmp_neq(vec![proto])]
}

/// README 4, DHCP, when the policy keeps it, the same on both layers: out (`udp sport 68
/// udp dport 67`) only to 255.255.255.255 and each known server; in (`sport 67 dport 68`)
/// only from each known server; DHCPv6 out to ff02::1:2 and the known servers, in from
/// `fe80::/10` and the known servers. Not to or from anyone else: DHCP ports must not be a
/// channel to an arbitrary host, also for packet sockets, which only the device layer sees.
pub(super) fn dhcp_rules(layer: Layer, policy: &Policy, dir: Dir) -> Vec<Rule> {
    let mut rules = Vec::new();
    if !policy.dhcp {
        return rules;
    }
    for (family, l3, (client, server)) in [
        (Family::V4, NFPROTO_IPV4, DHCP4_PORTS),
        (Family::V6, NFPROTO_IPV6, DHCP6_PORTS),
    ] {
        let (sport, dport) = match dir {
            Dir::In => (server, client),
            Dir::Out => (client, server),
        };
        let head = || {
            let mut r = layer.family_match(l3);
            r.extend(l4proto(IPPROTO_UDP));
            r.extend(udp_ports(sport, dport));
            r
        };
        let servers = policy.dhcp_servers_of(family);
        match dir {
            Dir::Out => {
                let first: std::net::IpAddr = match family {
                    Family::V4 => DHCP4_BROADCAST.into(),
                    Family::V6 => DHCP6_MULTICAST.into(),
                };
                for (i, to) in std::iter::once(first).chain(servers).enumerate() {
                    let mut r = head();
                    r.extend(peer_is(l3, dir, &to));
                    if layer == Layer::Device {
                        // trial27 MED-1 (`cordon_policy::render::netdev`): broadcast and
                        // multicast only to the matching Ethernet address, each request at
                        // most a 576-byte datagram.
                        match (family, i) {
                            (Family::V4, 0) => r.extend([payload(NFT_PAYLOAD_LL_HEADER, 0, 6), cmp_eq(vec![0xff; 6])]),
                            (Family::V6, 0) => {
                                r.extend([payload(NFT_PAYLOAD_LL_HEADER, 0, 2), cmp_eq(vec![0x33, 0x33])])
                            }
                            _ => {}
                        }
                        r.extend(length_at_most(match family {
                            Family::V4 => DHCP4_FRAME_MAX,
                            // trial31 MED-C: DHCPv6 had no cap.
                            Family::V6 => DHCP6_FRAME_MAX,
                        }));
                    }
                    r.push(accept());
                    rules.push(r);
                }
            }
            Dir::In => {
                if family == Family::V6 {
                    if let Ok(ll) = LINK_LOCAL6.parse::<ipnet::IpNet>() {
                        let mut r = head();
                        r.extend(peer_in_net(l3, dir, &ll));
                        r.push(accept());
                        rules.push(r);
                    }
                }
                // Device layer, DHCPv4 replies (trial37 HIGH-4: they came in from any
                // address, any size, read by an ETH_P_IP packet socket): from each known
                // server, and from any other only to 255.255.255.255 and the Ethernet
                // broadcast address (a neighbour's; no router forwards one); from any
                // address only while no server is known (the host must get a lease).
                // Each capped and rate-limited (`cordon_policy::render::netdev::dhcp_in`).
                if layer == Layer::Device && family == Family::V4 {
                    let limits = || {
                        let mut l = length_at_most(DHCP4_REPLY_MAX).to_vec();
                        l.push(Expr::Limit {
                            rate: DHCP4_REPLY_RATE,
                            unit: 1,
                            burst: DHCP4_REPLY_BURST,
                        });
                        l.push(accept());
                        l
                    };
                    if servers.is_empty() {
                        let mut r = head();
                        r.extend(limits());
                        rules.push(r);
                        continue;
                    }
                    for from in &servers {
                        let mut r = head();
                        r.extend(peer_is(l3, dir, from));
                        r.extend(limits());
                        rules.push(r);
                    }
                    let mut r = head();
                    r.extend(peer_is(l3, Dir::Out, &DHCP4_BROADCAST.into()));
                    r.extend([payload(NFT_PAYLOAD_LL_HEADER, 0, 6), cmp_eq(vec![0xff; 6])]);
                    r.extend(limits());
                    rules.push(r);
                    continue;
                }
                for from in servers {
                    let mut r = head();
                    r.extend(peer_is(l3, dir, &from));
                    r.push(accept());
                    rules.push(r);
                }
            }
        }
    }
    rules
}
