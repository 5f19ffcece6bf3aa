//! nftables rendering: one `nft -f` batch that atomically replaces Cordon's table.
//!
//! Layout (design §3): six named sets hold every allowed destination, so changing the
//! allow-list changes only set elements; three base chains with policy drop hook input,
//! output and forward. Established traffic is accepted only from allowed peers, so an
//! existing connection to anyone else (a reverse shell) is cut the moment the table loads.

use std::fmt::Write;
use std::net::SocketAddr;

use ipnet::IpNet;

use super::{
    DHCP4_BROADCAST, DHCP4_PORTS, DHCP6_MULTICAST, DHCP6_PORTS, ICMP4_ERROR_TYPES, ICMP6_ERROR_TYPES, ICMPV6_ND_TYPES,
    LINK_LOCAL6,
};
use crate::model::Family;
use crate::{Policy, TableName};

/// Chain priority: ahead of the usual filter chains (0) so our verdicts come first.
pub const CHAIN_PRIORITY: i32 = -10;

// Names of the sets, shared with the netlink encoder so both build the same table.
/// Set of allowed IPv4 TCP destinations, elements `ipv4_addr . inet_service`.
pub const SET_TCP4: &str = "tcp4";
/// Set of allowed IPv6 TCP destinations, elements `ipv6_addr . inet_service`.
pub const SET_TCP6: &str = "tcp6";
/// Set of allowed IPv4 UDP destinations, elements `ipv4_addr . inet_service`.
pub const SET_UDP4: &str = "udp4";
/// Set of allowed IPv6 UDP destinations, elements `ipv6_addr . inet_service`.
pub const SET_UDP6: &str = "udp6";
/// Interval set of IPv4 networks open to every protocol (`flags interval`).
pub const SET_NET4: &str = "net4";
/// Interval set of IPv6 networks open to every protocol (`flags interval`).
pub const SET_NET6: &str = "net6";

/// The batch that installs `policy`, replacing any previous version of our table in the
/// same transaction: `add` makes the `delete` valid even on first apply.
pub fn render_apply(table: &TableName, policy: &Policy) -> String {
    let mut out = String::new();
    let t = table.as_str();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(out, "add table inet {t}");
    let _ = writeln!(out, "delete table inet {t}");
    out.push_str(&render_table(table, policy));
    out
}

/// The batch for a first apply: `create` fails if our table already exists, in which
/// case the caller falls back to [`render_apply`]. Worth it because deleting a table, even
/// an empty one, makes the kernel wait for an RCU grace period (about 10 ms).
pub fn render_create(table: &TableName, policy: &Policy) -> String {
    // The comment (the ownership mark) goes on the `create`: the kernel sets a table's
    // user data only when it creates the table, so the block's own `comment` line that
    // follows in the same batch would be dropped.
    format!(
        "create table inet {} {{ comment \"{}\"; }}\n{}",
        table.as_str(),
        super::table_comment(policy),
        render_table(table, policy)
    )
}

/// The batch that removes our table and nothing else.
pub fn render_remove(table: &TableName) -> String {
    format!("delete table inet {}\n", table.as_str())
}

/// The table definition alone.
pub fn render_table(table: &TableName, policy: &Policy) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "table inet {} {{", table.as_str());
    let _ = writeln!(o, "\tcomment \"{}\"", super::table_comment(policy));
    pair_set(&mut o, SET_TCP4, "ipv4_addr", &policy.tcp_destinations(Family::V4));
    pair_set(&mut o, SET_TCP6, "ipv6_addr", &policy.tcp_destinations(Family::V6));
    pair_set(&mut o, SET_UDP4, "ipv4_addr", &policy.udp_destinations(Family::V4));
    pair_set(&mut o, SET_UDP6, "ipv6_addr", &policy.udp_destinations(Family::V6));
    net_set(&mut o, SET_NET4, "ipv4_addr", &policy.open_networks(Family::V4));
    net_set(&mut o, SET_NET6, "ipv6_addr", &policy.open_networks(Family::V6));

    base_chain(&mut o, "input", "input");
    o.push_str("\t\tiif \"lo\" accept\n");
    peer_rules(&mut o, "saddr", "sport", " ct state established");
    if policy.dhcp {
        dhcp_in(&mut o, policy, INET_FAMILIES);
    }
    icmp_errors(&mut o);
    icmpv6_nd(&mut o);
    o.push_str("\t}\n");

    base_chain(&mut o, "output", "output");
    o.push_str("\t\toif \"lo\" accept\n");
    peer_rules(&mut o, "daddr", "dport", "");
    if policy.dhcp {
        dhcp_out(&mut o, policy, INET_FAMILIES);
    }
    icmpv6_nd(&mut o);
    o.push_str("\t}\n");

    // Forwarding: nothing passes through a quarantined host.
    base_chain(&mut o, "forward", "forward");
    o.push_str("\t}\n");
    o.push_str("}\n");
    o
}

fn base_chain(o: &mut String, name: &str, hook: &str) {
    let _ = writeln!(o, "\tchain {name} {{");
    let _ = writeln!(o, "\t\ttype filter hook {hook} priority {CHAIN_PRIORITY}; policy drop;");
}

/// Any TCP segment except a connection-opening SYN (the flags `iptables --syn` matches).
/// Inbound replies from allowed TCP peers are matched on this rather than on conntrack
/// state: a session opened before the quarantine may be unknown to conntrack (it tracks a
/// namespace only once some rule uses `ct`), and if the peer speaks first its packet would
/// look `new` and be dropped, stalling the very session the quarantine must keep.
/// (With loose TCP tracking, the kernel's default, such a mid-stream segment starts a
/// `new` entry, so `ct state established,related` would drop it.) The price, accepted
/// for that reason (trial27 LOW-2): a host that spoofs an allowed server's address and
/// port can put non-SYN segments into the host's IP stack, where a raw socket reads them
/// (the stack answers them with RST to the real server); no reply reaches the spoofer,
/// and the device layer's own residual (an ETH_P_ALL packet socket sees every inbound
/// frame before any hook) is the wider inbound path anyway.
pub const TCP_NOT_SYN: &str = "tcp flags & (fin | syn | rst | ack) != syn";

/// Accept rules toward (output) or from (input) allowed peers. `dir` is `saddr`/`daddr`.
fn peer_rules(o: &mut String, dir: &str, port: &str, state: &str) {
    let inbound = !state.is_empty();
    for (l3, tcp, udp, net) in [
        ("ip", SET_TCP4, SET_UDP4, SET_NET4),
        ("ip6", SET_TCP6, SET_UDP6, SET_NET6),
    ] {
        if inbound {
            let _ = writeln!(o, "\t\t{l3} {dir} . tcp {port} @{tcp} {TCP_NOT_SYN} accept");
        } else {
            let _ = writeln!(o, "\t\t{l3} {dir} . tcp {port} @{tcp} accept");
        }
        let _ = writeln!(o, "\t\t{l3} {dir} . udp {port} @{udp}{state} accept");
        let _ = writeln!(o, "\t\t{l3} {dir} @{net}{state} accept");
        if inbound {
            let _ = writeln!(o, "\t\t{l3} {dir} @{net} {TCP_NOT_SYN} accept");
        }
    }
}

/// How the inet table names the families in the DHCP rules (`meta nfproto …`).
const INET_FAMILIES: [&str; 2] = ["meta nfproto ipv4", "meta nfproto ipv6"];

/// DHCP replies in: v4 from each known server, v6 from link-local addresses and each
/// known server. `families` spell the family match of the table (`meta nfproto ipv4`).
/// The device layer has its own (`super::netdev`).
pub(crate) fn dhcp_in(o: &mut String, policy: &Policy, [ip4, ip6]: [&str; 2]) {
    let (c4, s4) = DHCP4_PORTS;
    let (c6, s6) = DHCP6_PORTS;
    for server in policy.dhcp_servers_of(Family::V4) {
        let _ = writeln!(o, "\t\t{ip4} udp sport {s4} udp dport {c4} ip saddr {server} accept");
    }
    let _ = writeln!(
        o,
        "\t\t{ip6} udp sport {s6} udp dport {c6} ip6 saddr {LINK_LOCAL6} accept"
    );
    for server in policy.dhcp_servers_of(Family::V6) {
        let _ = writeln!(o, "\t\t{ip6} udp sport {s6} udp dport {c6} ip6 saddr {server} accept");
    }
}

/// DHCP requests out: v4 to the broadcast address and each known server, v6 to
/// `ff02::1:2` and each known server.
pub(crate) fn dhcp_out(o: &mut String, policy: &Policy, [ip4, ip6]: [&str; 2]) {
    let (c4, s4) = DHCP4_PORTS;
    let (c6, s6) = DHCP6_PORTS;
    let v4 = std::iter::once(std::net::IpAddr::from(DHCP4_BROADCAST)).chain(policy.dhcp_servers_of(Family::V4));
    for to in v4 {
        let _ = writeln!(o, "\t\t{ip4} udp sport {c4} udp dport {s4} ip daddr {to} accept");
    }
    let v6 = std::iter::once(std::net::IpAddr::from(DHCP6_MULTICAST)).chain(policy.dhcp_servers_of(Family::V6));
    for to in v6 {
        let _ = writeln!(o, "\t\t{ip6} udp sport {c6} udp dport {s6} ip6 daddr {to} accept");
    }
}

/// ICMP errors (unreachable incl. fragmentation needed, packet too big, time exceeded,
/// parameter problem) from any source, but only when conntrack relates them to a
/// connection whose original destination is an allowed peer: `ct original` of a related
/// packet is the tuple of the connection the error quotes. This keeps path MTU discovery
/// working through routers that are not allowed peers (design §3 point 5), without
/// opening ICMP to anyone.
fn icmp_errors(o: &mut String) {
    for (l3, icmp, types, tcp, udp, net) in [
        ("ip", "icmp", &ICMP4_ERROR_TYPES[..], SET_TCP4, SET_UDP4, SET_NET4),
        ("ip6", "icmpv6", &ICMP6_ERROR_TYPES[..], SET_TCP6, SET_UDP6, SET_NET6),
    ] {
        let names: Vec<&str> = types.iter().map(|(_, n)| *n).collect();
        let m = format!("{icmp} type {{ {} }} ct state related", names.join(", "));
        let _ = writeln!(
            o,
            "\t\t{m} ct protocol tcp ct original {l3} daddr . ct original proto-dst @{tcp} accept"
        );
        let _ = writeln!(
            o,
            "\t\t{m} ct protocol udp ct original {l3} daddr . ct original proto-dst @{udp} accept"
        );
        let _ = writeln!(o, "\t\t{m} ct original {l3} daddr @{net} accept");
    }
}

fn icmpv6_nd(o: &mut String) {
    let types: Vec<String> = ICMPV6_ND_TYPES.iter().map(|t| t.to_string()).collect();
    let _ = writeln!(o, "\t\ticmpv6 type {{ {} }} accept", types.join(", "));
}

pub(crate) fn pair_set(o: &mut String, name: &str, addr_type: &str, members: &[SocketAddr]) {
    let _ = writeln!(o, "\tset {name} {{");
    let _ = writeln!(o, "\t\ttype {addr_type} . inet_service");
    if !members.is_empty() {
        let elems: Vec<String> = members.iter().map(|m| format!("{} . {}", m.ip(), m.port())).collect();
        let _ = writeln!(o, "\t\telements = {{ {} }}", elems.join(", "));
    }
    o.push_str("\t}\n");
}

pub(crate) fn net_set(o: &mut String, name: &str, addr_type: &str, members: &[IpNet]) {
    let _ = writeln!(o, "\tset {name} {{");
    let _ = writeln!(o, "\t\ttype {addr_type}");
    o.push_str("\t\tflags interval\n");
    if !members.is_empty() {
        let elems: Vec<String> = members.iter().map(|n| n.to_string()).collect();
        let _ = writeln!(o, "\t\telements = {{ {} }}", elems.join(", "));
    }
    o.push_str("\t}\n");
}
