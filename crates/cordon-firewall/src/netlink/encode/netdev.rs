//! Cordon's device-layer table: `table netdev T` with base chains on the `ingress` and
//! `egress` hooks of every device that can carry traffic off the machine, so packet
//! sockets (AF_PACKET) and workloads below the host's IP stack (macvlan/ipvlan children,
//! bridged guests) meet the same policy as the host's own traffic.
//!
//! The device layer has no connection tracking, so the rules are the stateless form of the
//! inet table's: toward allowed peers on egress, from them on ingress (TCP from them only
//! when not a SYN, as in the inet table), DHCP and ICMPv6 ND as in the inet table, ICMP
//! errors on ingress (passed up to the inet table, which keeps only those related to an
//! allowed connection: path MTU discovery), plus
//! ARP, which IPv4 needs to reach any peer on or beyond the link. Everything else is
//! dropped. The inet table stays the stateful filter for the host itself.
//!
//! The clauses mirror [`super::table::TableBatch`] and the renderer in
//! `cordon_policy::render::netdev`, which spells the same table as nft text.

use cordon_policy::render::netdev::{CHAIN_EGRESS, CHAIN_INGRESS};
use cordon_policy::render::nft::{CHAIN_PRIORITY, SET_NET4, SET_NET6, SET_TCP4, SET_TCP6, SET_UDP4, SET_UDP6};
use cordon_policy::render::{DHCP4_PORTS, DHCP6_PORTS, ICMP4_ERROR_TYPES, ICMP6_ERROR_TYPES, ICMPV6_ND_TYPES};
use cordon_policy::{Policy, TableName};

use super::super::consts::*;
use super::expr::{accept, lookup, Expr};
use super::matches::{ether_type, icmpv6_type, l4proto, peer_addr, peer_port, tcp_not_syn, udp_ports, Dir};
use super::sets::{icmp_type_set, peer_sets, PeerSetIds};
use super::table::TableMode;
use super::wire::Batch;

/// Ethertypes (linux/if_ether.h, from libc).
const ETH_P_IP: u16 = libc::ETH_P_IP as u16;
const ETH_P_IPV6: u16 = libc::ETH_P_IPV6 as u16;
const ETH_P_ARP: u16 = libc::ETH_P_ARP as u16;

/// Which devices and hooks the device-layer table covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceLayer {
    /// Interface names whose hooks get the chains; empty means no device-layer table.
    pub devices: Vec<String>,
    /// Hook egress as well as ingress (kernel ≥ 5.16).
    pub egress: bool,
}

/// The part of a batch that installs the device-layer table for one policy.
pub(super) struct DeviceTableBatch<'a, 'b> {
    batch: &'b mut Batch,
    table: &'a str,
    policy: &'a Policy,
    sets: Option<PeerSetIds>,
}

impl<'a, 'b> DeviceTableBatch<'a, 'b> {
    pub fn new(batch: &'b mut Batch, table: &'a TableName, policy: &'a Policy) -> Self {
        batch.family(NFPROTO_NETDEV);
        DeviceTableBatch {
            batch,
            table: table.as_str(),
            policy,
            sets: None,
        }
    }

    /// `create table netdev T`, or in replace mode `add table netdev T; delete table
    /// netdev T` (so an old one goes whether or not a new one follows) and, when
    /// `install`, `add table netdev T`.
    pub fn add_table(&mut self, mode: TableMode, existing: u32, flags: u32, install: bool) {
        match mode {
            TableMode::CreateOnly => {
                if install {
                    self.batch.create_table_flags(self.table, flags)
                }
            }
            TableMode::Replace => {
                self.batch.new_table_flags(self.table, existing);
                self.batch.del_table(self.table);
                if install {
                    self.batch.new_table_flags(self.table, flags);
                }
            }
        }
    }

    /// `chain ingress { type filter hook ingress devices = { … } priority -10; policy drop; }`
    /// and the same for egress when `layer.egress`.
    pub fn add_device_chains(&mut self, layer: &DeviceLayer) {
        let t = self.table;
        self.batch
            .new_device_chain(t, CHAIN_INGRESS, NF_NETDEV_INGRESS, CHAIN_PRIORITY, &layer.devices);
        if layer.egress {
            self.batch
                .new_device_chain(t, CHAIN_EGRESS, NF_NETDEV_EGRESS, CHAIN_PRIORITY, &layer.devices);
        }
    }

    /// The same six named sets as the inet table (sets belong to one table).
    pub fn add_peer_sets(&mut self) {
        let mut ids = [0u32; 6];
        for (id, (spec, elems)) in ids.iter_mut().zip(peer_sets(self.policy).iter()) {
            *id = self.batch.new_set(self.table, spec);
            self.batch.new_elements(self.table, spec.name, *id, elems);
        }
        let [tcp4, tcp6, udp4, udp6, net4, net6] = ids;
        self.sets = Some(PeerSetIds {
            tcp4,
            tcp6,
            udp4,
            udp6,
            net4,
            net6,
        });
    }

    /// `meta protocol arp accept`: address resolution for every IPv4 peer and gateway.
    pub fn add_arp_rule(&mut self, dir: Dir) {
        let mut r = ether_type(ETH_P_ARP).to_vec();
        r.push(accept());
        self.rule(dir, &r);
    }

    /// README 2, 3 and 6, stateless: `ip daddr . tcp dport @tcp4 accept` on egress, `ip
    /// saddr . tcp sport @tcp4 tcp flags … != syn accept` on ingress, and the same for UDP
    /// and the network sets.
    pub fn add_peer_rules(&mut self, dir: Dir) {
        let Some(ids) = self.sets else {
            return;
        };
        let families = [
            (
                ETH_P_IP,
                NFPROTO_IPV4,
                (SET_TCP4, ids.tcp4),
                (SET_UDP4, ids.udp4),
                (SET_NET4, ids.net4),
            ),
            (
                ETH_P_IPV6,
                NFPROTO_IPV6,
                (SET_TCP6, ids.tcp6),
                (SET_UDP6, ids.udp6),
                (SET_NET6, ids.net6),
            ),
        ];
        for (ethertype, l3, tcp, udp, (net, net_id)) in families {
            for (l4, (set, id)) in [(IPPROTO_TCP, tcp), (IPPROTO_UDP, udp)] {
                let mut r = ether_type(ethertype).to_vec();
                r.extend(l4proto(l4));
                r.extend([peer_addr(l3, dir), peer_port(l3, dir), lookup(set, id)]);
                if dir == Dir::In && l4 == IPPROTO_TCP {
                    r.extend(tcp_not_syn());
                }
                r.push(accept());
                self.rule(dir, &r);
            }
            // `ip saddr @net4`: on ingress (like the inet table) no new inbound TCP, so
            // TCP only when not a SYN, any other protocol as is.
            let from_net = || {
                let mut r = ether_type(ethertype).to_vec();
                r.extend([peer_addr(l3, dir), lookup(net, net_id)]);
                r
            };
            if dir == Dir::In {
                let mut r = from_net();
                r.extend(l4proto(IPPROTO_TCP));
                r.extend(tcp_not_syn());
                r.push(accept());
                self.rule(dir, &r);
                let mut r = from_net();
                r.extend(l4proto_not(IPPROTO_TCP));
                r.push(accept());
                self.rule(dir, &r);
            } else {
                let mut r = from_net();
                r.push(accept());
                self.rule(dir, &r);
            }
        }
    }

    /// README 4, as in the inet table: `meta protocol ip udp sport 68 udp dport 67 accept`
    /// on egress (reversed on ingress), and DHCPv6. DHCP clients send and receive with
    /// packet sockets, which only this layer sees.
    pub fn add_dhcp_rules(&mut self, dir: Dir) {
        if !self.policy.dhcp {
            return;
        }
        for (ethertype, (client, server)) in [(ETH_P_IP, DHCP4_PORTS), (ETH_P_IPV6, DHCP6_PORTS)] {
            let (sport, dport) = match dir {
                Dir::In => (server, client),
                Dir::Out => (client, server),
            };
            let mut r = ether_type(ethertype).to_vec();
            r.extend(l4proto(IPPROTO_UDP));
            r.extend(udp_ports(sport, dport));
            r.push(accept());
            self.rule(dir, &r);
        }
    }

    /// README 5: `meta protocol ip6 icmpv6 type { 133, 134, 135, 136 } accept`.
    pub fn add_icmpv6_nd_rule(&mut self, dir: Dir) {
        self.add_icmp_type_rule(dir, NFPROTO_IPV6, &ICMPV6_ND_TYPES);
    }

    /// `meta protocol ip icmp type { … } accept` (IPv4) or the ICMPv6 form, with its
    /// anonymous type set created right before the rule, as nft does.
    fn add_icmp_type_rule(&mut self, dir: Dir, nfproto: u8, types: &[u8]) {
        let (ethertype, icmp) = if nfproto == NFPROTO_IPV4 {
            (ETH_P_IP, IPPROTO_ICMP)
        } else {
            (ETH_P_IPV6, IPPROTO_ICMPV6)
        };
        let (spec, elems) = icmp_type_set(nfproto, types);
        let id = self.batch.new_set(self.table, &spec);
        self.batch.new_elements(self.table, ANON_SET_NAME, id, &elems);
        let mut r = ether_type(ethertype).to_vec();
        r.extend(l4proto(icmp));
        r.extend([icmpv6_type(), lookup(ANON_SET_NAME, id)]);
        r.push(accept());
        self.rule(dir, &r);
    }

    /// README 5, path MTU discovery, ingress only: `icmp type { 3, 11, 12 } accept` and
    /// `icmpv6 type { 1, 2, 3, 4 } accept`. The device layer has no conntrack, so it cannot
    /// tell which connection an error quotes: it passes ICMP errors up, and the inet table
    /// accepts only those related to a connection to an allowed peer (a router's
    /// "fragmentation needed" / "packet too big" arrives from an address that is not a peer).
    pub fn add_icmp_error_rules(&mut self) {
        for (nfproto, types) in [
            (NFPROTO_IPV4, &ICMP4_ERROR_TYPES[..]),
            (NFPROTO_IPV6, &ICMP6_ERROR_TYPES[..]),
        ] {
            let types: Vec<u8> = types.iter().map(|(t, _)| *t).collect();
            self.add_icmp_type_rule(Dir::In, nfproto, &types);
        }
    }

    fn rule(&mut self, dir: Dir, exprs: &[Expr<'_>]) {
        let chain = match dir {
            Dir::In => CHAIN_INGRESS,
            Dir::Out => CHAIN_EGRESS,
        };
        self.batch.new_rule(self.table, chain, exprs);
    }
}

/// `meta l4proto != PROTO`.
fn l4proto_not(proto: u8) -> [Expr<'static>; 2] {
    let [m, _] = l4proto(proto);
    [m, super::expr::cmp_neq(vec![proto])]
}

/// The device-layer table for `policy` appended to `batch`: in replace mode an old one is
/// removed first; nothing is installed when `layer.devices` is empty.
pub(super) fn add_device_table(
    batch: &mut Batch,
    table: &TableName,
    policy: &Policy,
    layer: &DeviceLayer,
    mode: TableMode,
    existing: u32,
    flags: u32,
) {
    let install = !layer.devices.is_empty();
    let mut b = DeviceTableBatch::new(batch, table, policy);
    b.add_table(mode, existing, flags, install);
    if !install {
        return;
    }
    b.add_device_chains(layer);
    b.add_peer_sets();
    let dirs: &[Dir] = if layer.egress { &[Dir::In, Dir::Out] } else { &[Dir::In] };
    for &dir in dirs {
        b.add_arp_rule(dir);
        b.add_peer_rules(dir);
        b.add_dhcp_rules(dir);
        b.add_icmpv6_nd_rule(dir);
        if dir == Dir::In {
            b.add_icmp_error_rules();
        }
    }
}
