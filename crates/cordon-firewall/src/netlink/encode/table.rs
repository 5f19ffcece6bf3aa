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
//! | [`TableBatch::add_dhcp_rules`] | `dhcp_in`, `dhcp_out` | 4. DHCP |
//! | [`TableBatch::add_icmp_error_rules`] | `icmp_errors` | 5. ICMP errors of allowed connections |
//! | [`TableBatch::add_icmpv6_nd_rule`] | `icmpv6_nd` | 5. ICMPv6 ND |
//!
//! The forward chain gets no rules: its drop policy is the whole point.

use cordon_policy::render::nft::{CHAIN_PRIORITY, SET_NET4, SET_NET6, SET_TCP4, SET_TCP6, SET_UDP4, SET_UDP6};
use cordon_policy::render::{ICMP4_ERROR_TYPES, ICMP6_ERROR_TYPES, ICMPV6_ND_TYPES};
use cordon_policy::{Policy, TableName};

use super::super::consts::*;
use super::clauses::{self, Layer};
use super::expr::{accept, lookup, Expr};
use super::matches::{
    ct_original_daddr, ct_original_port, ct_protocol, ct_related, icmpv6_type, l4proto, loopback, nfproto, Dir,
};
use super::sets::{icmp_type_set, icmpv6_type_set, PeerSetIds};
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
            TableMode::CreateOnly => {
                self.batch
                    .create_marked_table(self.table, flags, &cordon_policy::render::table_comment(self.policy))
            }
            TableMode::Replace => {
                self.batch.new_table_flags(self.table, existing);
                self.batch.del_table(self.table);
                self.batch
                    .new_marked_table(self.table, flags, &cordon_policy::render::table_comment(self.policy));
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
    /// exceptions (`tcp4 … net6`); see [`clauses::add_peer_sets`].
    pub fn add_peer_sets(&mut self) {
        self.sets = Some(clauses::add_peer_sets(self.batch, self.table, self.policy));
    }

    /// README 1, the host may talk to itself: `iif "lo" accept` / `oif "lo" accept`.
    pub fn add_loopback_rule(&mut self, dir: Dir) {
        let mut r = loopback(dir).to_vec();
        r.push(accept());
        self.rule(dir, &r);
    }

    /// README 2, 3 and 6: servers, resolvers and exceptions, through the peer sets: toward them on
    /// output; from them on input, only replies ([`clauses::peer_rules`]).
    ///
    /// Call [`TableBatch::add_peer_sets`] first; without the sets there is nothing to look
    /// up and no rule is added (the chains then drop everything but the other clauses).
    pub fn add_peer_rules(&mut self, dir: Dir) {
        let Some(ids) = self.sets else {
            return;
        };
        for r in clauses::peer_rules(Layer::Inet, &ids, dir) {
            self.rule(dir, &r);
        }
    }

    /// README 4, DHCP, when the policy keeps it: `meta nfproto ipv4 udp sport 68 udp dport
    /// 67 ip daddr A accept` on output for the broadcast address and each known server,
    /// and on input `… udp sport 67 udp dport 68 ip saddr S accept` for each known server;
    /// for DHCPv6 `ff02::1:2` out and `fe80::/10` in, plus the known servers
    /// ([`clauses::dhcp_rules`]).
    pub fn add_dhcp_rules(&mut self, dir: Dir) {
        for r in clauses::dhcp_rules(Layer::Inet, self.policy, dir) {
            self.rule(dir, &r);
        }
    }

    /// README 5, path MTU discovery: ICMP errors from anyone, when conntrack relates them
    /// to a connection to an allowed peer: `icmp type { destination-unreachable,
    /// time-exceeded, parameter-problem } ct state related ct protocol tcp ct original ip
    /// daddr . ct original proto-dst @tcp4 accept`, the same for UDP and (without port)
    /// the open networks, then ICMPv6 with packet-too-big. Input only.
    pub fn add_icmp_error_rules(&mut self) {
        let Some(ids) = self.sets else {
            return;
        };
        let families = [
            (
                NFPROTO_IPV4,
                IPPROTO_ICMP,
                &ICMP4_ERROR_TYPES[..],
                (SET_TCP4, ids.tcp4),
                (SET_UDP4, ids.udp4),
                (SET_NET4, ids.net4),
            ),
            (
                NFPROTO_IPV6,
                IPPROTO_ICMPV6,
                &ICMP6_ERROR_TYPES[..],
                (SET_TCP6, ids.tcp6),
                (SET_UDP6, ids.udp6),
                (SET_NET6, ids.net6),
            ),
        ];
        for (l3, icmp, types, tcp, udp, net) in families {
            let types: Vec<u8> = types.iter().map(|(t, _)| *t).collect();
            for (proto, (set, id)) in [(Some(IPPROTO_TCP), tcp), (Some(IPPROTO_UDP), udp), (None, net)] {
                // Each rule's anonymous type set is created right before it, as nft does.
                let (spec, elems) = icmp_type_set(l3, &types);
                let anon = self.batch.new_set(self.table, &spec);
                self.batch.new_elements(self.table, ANON_SET_NAME, anon, &elems);
                let mut r = nfproto(l3).to_vec();
                r.extend(l4proto(icmp));
                r.extend([icmpv6_type(), lookup(ANON_SET_NAME, anon)]);
                r.extend(ct_related());
                if let Some(p) = proto {
                    r.extend(ct_protocol(p));
                    r.extend([ct_original_daddr(l3), ct_original_port(l3)]);
                } else {
                    r.push(ct_original_daddr(l3));
                }
                r.extend([lookup(set, id), accept()]);
                self.rule(Dir::In, &r);
            }
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
        if dir == Dir::In {
            b.add_icmp_error_rules();
        }
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
