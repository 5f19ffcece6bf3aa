//! iptables rendering for hosts without nftables: `iptables-restore --noflush` input
//! (one per family) that fills our own chains `<PREFIX>-IN/-OUT/-FWD` and makes them the
//! first rule of INPUT/OUTPUT/FORWARD. Each restore is one atomic table commit; the user's
//! own rules and chains are never flushed.

use std::fmt::Write;
use std::net::SocketAddr;

use ipnet::IpNet;

use super::{
    DHCP4_BROADCAST, DHCP4_PORTS, DHCP6_MULTICAST, DHCP6_PORTS, ICMP4_ERROR_TYPES, ICMP6_ERROR_TYPES, ICMPV6_ND_TYPES,
    LINK_LOCAL6,
};
use crate::model::Family;
use crate::{Policy, TableName};

/// The three built-in chains we hook, paired with our chain suffix.
pub const HOOKS: [(&str, &str); 3] = [("INPUT", "IN"), ("OUTPUT", "OUT"), ("FORWARD", "FWD")];

/// How many jumps to our chains each built-in chain holds now, and whether our chains
/// exist, as read from `iptables-save` (see the firewall crate). Rendering needs it
/// because `iptables-restore` has no "delete if present".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Present {
    /// Unmarked jumps from INPUT, OUTPUT, FORWARD to our chain (same order as [`HOOKS`]):
    /// `-A INPUT -j CORDON-IN`, as versions before the ownership mark wrote them.
    pub jumps: [usize; 3],
    /// Marked jumps ([`jump_comment`]), by the comment each carries (same order as
    /// [`HOOKS`]); deleting one needs its exact comment.
    pub marked_jumps: [Vec<String>; 3],
    /// Whether each of our chains exists.
    pub chains: [bool; 3],
    /// Cordon created this family's `filter` table (iptables-nft makes `table ip filter`
    /// on first use): our input chain then carries the [`CREATED_TABLE_MARK`] rule, so
    /// the kernel itself remembers it and release deletes the table again (when nothing
    /// else was added to it), leaving the ruleset exactly as before.
    pub created_table: bool,
}

/// The comment on every jump Cordon inserts into INPUT/OUTPUT/FORWARD: its ownership mark
/// ([`super::table_comment`]: `cordon quarantine; recorded in DIR`), set in the same
/// `iptables-restore` commit as the jump (trial15 MED-5: chains `X-IN/X-OUT/X-FWD` of a
/// site's own firewall were taken for Cordon's by their names alone, and `release --force`
/// deleted them). Only jumps carrying it make a chain triple Cordon's when no record names
/// the table. iptables keeps at most 255 bytes of comment (`XT_MAX_COMMENT_LEN` 256 with
/// the NUL, `include/uapi/linux/netfilter/xt_comment.h`); the marker and a state directory
/// of at most [`super::MAX_RECORD_DIR`] bytes stay within it.
pub fn jump_comment(policy: &Policy) -> String {
    super::table_comment(policy)
}

/// Whether a jump's comment is Cordon's ownership mark ([`jump_comment`]).
pub fn is_cordon_mark(comment: &str) -> bool {
    comment.starts_with(super::TABLE_COMMENT)
}

/// Comment of the no-op rule (no target: it only counts) that marks a `filter` table
/// Cordon created; see [`Present::created_table`].
pub const CREATED_TABLE_MARK: &str = "cordon-created-table";

/// The name of one of Cordon's chains: the table's [`TableName::chain_prefix`], a dash
/// and `suffix` (`IN`, `OUT`, `FWD`), e.g. `CORDON-IN`. At most 24 + 1 + 3 characters,
/// within iptables' 28-character chain name limit (`XT_EXTENSION_MAXNAMELEN` 29 with NUL,
/// `include/uapi/linux/netfilter/x_tables.h`).
pub fn chain_name(table: &TableName, suffix: &str) -> String {
    format!("{}-{suffix}", table.chain_prefix())
}

/// Restore input that installs `policy` for one family, replacing any previous version:
/// old jumps are deleted and one jump is inserted at position 1 in the same commit.
pub fn render_apply(table: &TableName, policy: &Policy, family: Family, present: &Present) -> String {
    let mut o = String::from("*filter\n");
    let [cin, cout, cfwd] = HOOKS.map(|(_, s)| chain_name(table, s));
    // In --noflush mode a ":CHAIN" line creates the chain or empties the existing one.
    for c in [&cin, &cout, &cfwd] {
        let _ = writeln!(o, ":{c} - [0:0]");
    }
    delete_jumps(&mut o, table, present);

    let (client, server) = match family {
        Family::V4 => DHCP4_PORTS,
        Family::V6 => DHCP6_PORTS,
    };
    if present.created_table {
        let _ = writeln!(o, "-A {cin} -m comment --comment {CREATED_TABLE_MARK}");
    }
    let _ = writeln!(o, "-A {cin} -i lo -j ACCEPT");
    peer_rules(&mut o, &cin, policy, family, true);
    if policy.dhcp {
        // Replies only from the known servers (and, for v6, from link-local addresses).
        let mut from: Vec<IpNet> = policy.dhcp_servers_of(family).into_iter().map(IpNet::from).collect();
        if family == Family::V6 {
            if let Ok(ll) = LINK_LOCAL6.parse() {
                from.insert(0, ll);
            }
        }
        for src in from {
            let _ = writeln!(
                o,
                "-A {cin} -s {src} -p udp -m udp --sport {server} --dport {client} -j ACCEPT"
            );
        }
    }
    icmp_errors(&mut o, &cin, policy, family);
    icmp_nd(&mut o, &cin, family);
    let _ = writeln!(o, "-A {cin} -j DROP");

    let _ = writeln!(o, "-A {cout} -o lo -j ACCEPT");
    peer_rules(&mut o, &cout, policy, family, false);
    if policy.dhcp {
        // Requests only to the broadcast / DHCPv6 multicast address and the known servers.
        let first: std::net::IpAddr = match family {
            Family::V4 => DHCP4_BROADCAST.into(),
            Family::V6 => DHCP6_MULTICAST.into(),
        };
        for to in std::iter::once(first).chain(policy.dhcp_servers_of(family)) {
            let _ = writeln!(
                o,
                "-A {cout} -d {} -p udp -m udp --sport {client} --dport {server} -j ACCEPT",
                IpNet::from(to)
            );
        }
    }
    icmp_nd(&mut o, &cout, family);
    let _ = writeln!(o, "-A {cout} -j DROP");
    let _ = writeln!(o, "-A {cfwd} -j DROP");
    let mark = jump_comment(policy);
    for (builtin, suffix) in HOOKS {
        let _ = writeln!(
            o,
            "-I {builtin} 1 -m comment --comment \"{mark}\" -j {}",
            chain_name(table, suffix)
        );
    }
    o.push_str("COMMIT\n");
    o
}

/// Restore input that removes our jumps and chains and nothing else.
pub fn render_remove(table: &TableName, present: &Present) -> String {
    let mut o = String::from("*filter\n");
    delete_jumps(&mut o, table, present);
    for (i, (_, suffix)) in HOOKS.iter().enumerate() {
        if present.chains[i] {
            let c = chain_name(table, suffix);
            let _ = writeln!(o, "-F {c}");
            let _ = writeln!(o, "-X {c}");
        }
    }
    o.push_str("COMMIT\n");
    o
}

fn delete_jumps(o: &mut String, table: &TableName, present: &Present) {
    for (i, (builtin, suffix)) in HOOKS.iter().enumerate() {
        for _ in 0..present.jumps[i] {
            let _ = writeln!(o, "-D {builtin} -j {}", chain_name(table, suffix));
        }
        for comment in &present.marked_jumps[i] {
            let _ = writeln!(
                o,
                "-D {builtin} -m comment --comment \"{comment}\" -j {}",
                chain_name(table, suffix)
            );
        }
    }
}

/// Inbound TCP from allowed peers is matched with `! --syn` (anything but a connection-
/// opening SYN) instead of conntrack state, so sessions opened before the quarantine,
/// which conntrack may not know, survive even when the peer speaks first (see
/// `render::nft::TCP_NOT_SYN`).
fn peer_rules(o: &mut String, chain: &str, policy: &Policy, family: Family, inbound: bool) {
    let (addr, port, state) = if inbound {
        ("-s", "--sport", " -m conntrack --ctstate ESTABLISHED")
    } else {
        ("-d", "--dport", "")
    };
    let pair = |o: &mut String, proto: &str, d: &SocketAddr, state: &str| {
        let _ = writeln!(
            o,
            "-A {chain} {addr} {} -p {proto} -m {proto} {port} {}{state} -j ACCEPT",
            IpNet::from(d.ip()),
            d.port()
        );
    };
    let tcp_state = if inbound { " ! --syn" } else { "" };
    for d in policy.tcp_destinations(family) {
        pair(o, "tcp", &d, tcp_state);
    }
    for d in policy.udp_destinations(family) {
        pair(o, "udp", &d, state);
    }
    for n in policy.open_networks(family) {
        let _ = writeln!(o, "-A {chain} {addr} {n}{state} -j ACCEPT");
        if inbound {
            let _ = writeln!(o, "-A {chain} {addr} {n} -p tcp -m tcp ! --syn -j ACCEPT");
        }
    }
}

/// ICMP errors from any source that conntrack relates to a connection whose original
/// destination is allowed (path MTU discovery through routers that are not allowed
/// peers; see `render::nft` for the reasoning). iptables' icmp match takes one type per
/// rule, hence one rule per error type and destination.
fn icmp_errors(o: &mut String, chain: &str, policy: &Policy, family: Family) {
    let (proto, types): (&str, &[(u8, &str)]) = match family {
        Family::V4 => ("-p icmp -m icmp --icmp-type", &ICMP4_ERROR_TYPES),
        Family::V6 => ("-p ipv6-icmp -m icmp6 --icmpv6-type", &ICMP6_ERROR_TYPES),
    };
    let related = "-m conntrack --ctstate RELATED";
    for (ty, _) in types {
        for d in policy.tcp_destinations(family) {
            let _ = writeln!(
                o,
                "-A {chain} {proto} {ty} {related} --ctproto tcp --ctorigdst {} --ctorigdstport {} -j ACCEPT",
                IpNet::from(d.ip()),
                d.port()
            );
        }
        for d in policy.udp_destinations(family) {
            let _ = writeln!(
                o,
                "-A {chain} {proto} {ty} {related} --ctproto udp --ctorigdst {} --ctorigdstport {} -j ACCEPT",
                IpNet::from(d.ip()),
                d.port()
            );
        }
        for n in policy.open_networks(family) {
            let _ = writeln!(o, "-A {chain} {proto} {ty} {related} --ctorigdst {n} -j ACCEPT");
        }
    }
}

fn icmp_nd(o: &mut String, chain: &str, family: Family) {
    if family == Family::V6 {
        for t in ICMPV6_ND_TYPES {
            let _ = writeln!(o, "-A {chain} -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j ACCEPT");
        }
    }
}
