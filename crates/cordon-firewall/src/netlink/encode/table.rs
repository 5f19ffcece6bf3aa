//! Cordon's `inet` table, built clause by clause.
//!
//! [`TableBatch`] is modelled on Mullvad's `PolicyBatch`: its `add_*` methods, called in
//! order by [`build_batch`], read as the policy. They carry the names of the functions
//! of the nft renderer ([`cordon_policy::render::nft`]) that write the same lines, and the
//! numbers of README's "policy in plain words":
//!
//! | method | nft renderer | README |
//! |---|---|---|
//! | [`TableBatch::add_table`] | `render_apply` / `render_create` | – |
//! | [`TableBatch::add_base_chains`] | `base_chain` | input, output, forward: policy drop |
//! | [`TableBatch::add_peer_sets`] | `pair_set`, `net_set` | 2, 3, 6 (the destinations) |
//! | [`TableBatch::add_loopback_rule`] | `iif "lo" accept` | 1. loopback |
//! | [`TableBatch::add_peer_rules`] | `peer_rules` | 2. servers, 3. resolvers, 6. exceptions |
//! | [`TableBatch::add_dhcp_rules`] | the `udp sport … dport …` lines | 4. DHCP |
//! | [`TableBatch::add_icmpv6_nd_rule`] | `icmpv6_nd` | 5. ICMPv6 ND |
//!
//! The forward chain gets no rules: its drop policy is the whole point.

use cordon_policy::render::nft::{CHAIN_PRIORITY, SET_NET4, SET_NET6, SET_TCP4, SET_TCP6, SET_UDP4, SET_UDP6};
use cordon_policy::render::{DHCP4_PORTS, DHCP6_PORTS, ICMPV6_ND_TYPES};
use cordon_policy::{Policy, TableName};

use super::super::consts::*;
use super::expr::{accept, lookup, Expr};
use super::matches::{
    ct_established, icmpv6_type, l4proto, loopback, nfproto, peer_addr, peer_port, tcp_not_syn, udp_ports, Dir,
};
use super::sets::{icmpv6_type_set, peer_sets, PeerSetIds};
use super::wire::{Batch, EncodedBatch};

/// How the batch treats an existing table of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableMode {
    /// `add table; delete table; add table`: replaces ours, whether or not it exists.
    Replace,
    /// `create table`: refused with EEXIST when ours exists.
    CreateOnly,
}

/// The part of a batch that installs Cordon's inet table for one policy.
pub(super) struct TableBatch<'a, 'b> {
    batch: &'b mut Batch,
    table: &'a str,
    policy: &'a Policy,
    /// Set by [`TableBatch::add_peer_sets`]; the peer rules look these sets up.
    sets: Option<PeerSetIds>,
}

impl<'a, 'b> TableBatch<'a, 'b> {
    pub fn new(batch: &'b mut Batch, table: &'a TableName, policy: &'a Policy) -> Self {
        batch.family(NFPROTO_INET);
        TableBatch {
            batch,
            table: table.as_str(),
            policy,
            sets: None,
        }
    }

    /// `add table inet T; delete table inet T; add table inet T`, or `create table inet T`;
    /// `flags` are the new table's `NFT_TABLE_F_*` flags (0 unless the table is owned),
    /// `existing` those of the table being replaced (0 when there is none).
    pub fn add_table(&mut self, mode: TableMode, existing: u32, flags: u32) {
        match mode {
            TableMode::CreateOnly => self.batch.create_table_flags(self.table, flags),
            TableMode::Replace => {
                self.batch.new_table_flags(self.table, existing);
                self.batch.del_table(self.table);
                self.batch.new_table_flags(self.table, flags);
            }
        }
    }

    /// `chain input|output|forward { type filter hook … priority -10; policy drop; }`.
    pub fn add_base_chains(&mut self) {
        let t = self.table;
        self.batch.new_base_chain(t, "input", NF_INET_LOCAL_IN, CHAIN_PRIORITY);
        self.batch
            .new_base_chain(t, "output", NF_INET_LOCAL_OUT, CHAIN_PRIORITY);
        self.batch.new_base_chain(t, "forward", NF_INET_FORWARD, CHAIN_PRIORITY);
    }

    /// The six named sets with every allowed destination: servers, resolvers and
    /// exceptions (`tcp4 … net6`).
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

    /// README 1, the host may talk to itself: `iif "lo" accept` / `oif "lo" accept`.
    pub fn add_loopback_rule(&mut self, dir: Dir) {
        let mut r = loopback(dir).to_vec();
        r.push(accept());
        self.rule(dir, &r);
    }

    /// README 2, 3 and 6: servers, resolvers and exceptions, through the peer sets: toward them on
    /// output; from them on input, only replies (`ct state established`, or for TCP any
    /// segment but a SYN, see `cordon_policy::render::nft::TCP_NOT_SYN`).
    ///
    /// Call [`TableBatch::add_peer_sets`] first; without the sets there is nothing to look
    /// up and no rule is added (the chains then drop everything but the other clauses).
    pub fn add_peer_rules(&mut self, dir: Dir) {
        let Some(ids) = self.sets else {
            return;
        };
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
        for (l3, tcp, udp, net) in families {
            // `ip saddr . tcp sport @tcp4 …`, then the same for UDP.
            for (l4, (set, id)) in [(IPPROTO_TCP, tcp), (IPPROTO_UDP, udp)] {
                let mut r = nfproto(l3).to_vec();
                r.extend(l4proto(l4));
                r.extend([peer_addr(l3, dir), peer_port(l3, dir), lookup(set, id)]);
                if dir == Dir::In && l4 == IPPROTO_TCP {
                    r.extend(tcp_not_syn());
                } else if dir == Dir::In {
                    r.extend(ct_established());
                }
                r.push(accept());
                self.rule(dir, &r);
            }
            // `ip saddr @net4 ct state established accept`, and on input the TCP variant.
            let (set, id) = net;
            let mut r = nfproto(l3).to_vec();
            r.extend([peer_addr(l3, dir), lookup(set, id)]);
            if dir == Dir::In {
                r.extend(ct_established());
            }
            r.push(accept());
            self.rule(dir, &r);
            if dir == Dir::In {
                let mut r = nfproto(l3).to_vec();
                r.extend([peer_addr(l3, dir), lookup(set, id)]);
                r.extend(l4proto(IPPROTO_TCP));
                r.extend(tcp_not_syn());
                r.push(accept());
                self.rule(dir, &r);
            }
        }
    }

    /// README 4, DHCP lease renewal, when the policy keeps it: `meta nfproto ipv4 udp sport 68
    /// udp dport 67 accept` (output; reversed on input) and the same for DHCPv6.
    pub fn add_dhcp_rules(&mut self, dir: Dir) {
        if !self.policy.dhcp {
            return;
        }
        for (l3, (client, server)) in [(NFPROTO_IPV4, DHCP4_PORTS), (NFPROTO_IPV6, DHCP6_PORTS)] {
            let (sport, dport) = match dir {
                Dir::In => (server, client),
                Dir::Out => (client, server),
            };
            let mut r = nfproto(l3).to_vec();
            r.extend(l4proto(IPPROTO_UDP));
            r.extend(udp_ports(sport, dport));
            r.push(accept());
            self.rule(dir, &r);
        }
    }

    /// README 5, IPv6 neighbour discovery and router solicitation/advertisement:
    /// `icmpv6 type { 133, 134, 135, 136 } accept`, with its anonymous set created right
    /// before the rule, as nft does.
    pub fn add_icmpv6_nd_rule(&mut self, dir: Dir) {
        let (spec, elems) = icmpv6_type_set(&ICMPV6_ND_TYPES);
        let id = self.batch.new_set(self.table, &spec);
        self.batch.new_elements(self.table, ANON_SET_NAME, id, &elems);
        let mut r = nfproto(NFPROTO_IPV6).to_vec();
        r.extend(l4proto(IPPROTO_ICMPV6));
        r.extend([icmpv6_type(), lookup(ANON_SET_NAME, id)]);
        r.push(accept());
        self.rule(dir, &r);
    }

    fn rule(&mut self, dir: Dir, exprs: &[Expr<'_>]) {
        self.batch.new_rule(self.table, dir.chain(), exprs);
    }
}

/// The whole inet table for `policy` appended to `batch`, in the order `nft -f` sends the
/// renderer's text.
pub(super) fn add_inet_table(
    batch: &mut Batch,
    table: &TableName,
    policy: &Policy,
    mode: TableMode,
    existing: u32,
    flags: u32,
) {
    let mut b = TableBatch::new(batch, table, policy);
    b.add_table(mode, existing, flags);
    b.add_base_chains();
    b.add_peer_sets();
    for dir in [Dir::In, Dir::Out] {
        b.add_loopback_rule(dir);
        b.add_peer_rules(dir);
        b.add_dhcp_rules(dir);
        b.add_icmpv6_nd_rule(dir);
    }
}

/// The inet table alone, as one batch (what the goldens pin), `extra` appended before
/// the commit.
pub(super) fn build_batch(
    table: &TableName,
    policy: &Policy,
    seq: u32,
    ack: bool,
    mode: TableMode,
    extra: impl FnOnce(&mut Batch),
) -> EncodedBatch {
    let mut batch = Batch::new(seq, ack);
    add_inet_table(&mut batch, table, policy, mode, 0, 0);
    extra(&mut batch);
    batch.finish()
}

/// The batch that removes our table and nothing else; the `add` makes it succeed when the
/// table is absent.
pub(super) fn remove_batch(table: &TableName, seq: u32, ack: bool) -> EncodedBatch {
    let mut b = Batch::new(seq, ack);
    b.new_table(table.as_str());
    b.del_table(table.as_str());
    b.finish()
}
