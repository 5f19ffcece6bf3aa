//! nftables rendering of the device-layer table: `table netdev T` with base chains on
//! the `ingress` and `egress` hooks of the devices that carry traffic off the machine.
//!
//! Packet sockets (AF_PACKET) and workloads attached below the host's IP stack
//! (macvlan/ipvlan children, bridged guests) never pass the inet hooks; the device layer
//! sees every frame a device receives or transmits. It has no connection tracking, so its
//! rules are the stateless form of the inet table's (see [`super::nft`]): toward allowed
//! peers on egress, from them on ingress (TCP only when not a SYN), DHCP (to and from the
//! known servers only) and ICMPv6 ND as in the inet table, plus ARP. Everything else is
//! dropped.

use std::fmt::Write;

use super::nft::{
    net_set, pair_set, CHAIN_PRIORITY, SET_NET4, SET_NET6, SET_TCP4, SET_TCP6, SET_UDP4, SET_UDP6, TCP_NOT_SYN,
};
use super::{ICMP4_ERROR_TYPES, ICMP6_ERROR_TYPES, ICMPV6_ND_TYPES};
use crate::model::Family;
use crate::{Policy, TableName};

/// Name of the chain on the ingress hook.
pub const CHAIN_INGRESS: &str = "ingress";
/// Name of the chain on the egress hook (kernel ≥ 5.16).
pub const CHAIN_EGRESS: &str = "egress";

/// The device-layer table for `policy` on `devices` (interface names), with an egress
/// chain when `egress`. `devices` must not be empty (a netdev base chain needs a device).
pub fn render_table(table: &TableName, policy: &Policy, devices: &[String], egress: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "table netdev {} {{", table.as_str());
    let _ = writeln!(o, "\tcomment \"{}\"", super::table_comment(policy));
    pair_set(&mut o, SET_TCP4, "ipv4_addr", &policy.tcp_destinations(Family::V4));
    pair_set(&mut o, SET_TCP6, "ipv6_addr", &policy.tcp_destinations(Family::V6));
    pair_set(&mut o, SET_UDP4, "ipv4_addr", &policy.udp_destinations(Family::V4));
    pair_set(&mut o, SET_UDP6, "ipv6_addr", &policy.udp_destinations(Family::V6));
    net_set(&mut o, SET_NET4, "ipv4_addr", &policy.open_networks(Family::V4));
    net_set(&mut o, SET_NET6, "ipv6_addr", &policy.open_networks(Family::V6));
    let devs: Vec<String> = devices.iter().map(|d| format!("\"{d}\"")).collect();
    let devs = devs.join(", ");
    let mut chains = vec![(CHAIN_INGRESS, "saddr", "sport", true)];
    if egress {
        chains.push((CHAIN_EGRESS, "daddr", "dport", false));
    }
    for (chain, addr, port, inbound) in chains {
        let _ = writeln!(o, "\tchain {chain} {{");
        let _ = writeln!(
            o,
            "\t\ttype filter hook {chain} devices = {{ {devs} }} priority {CHAIN_PRIORITY}; policy drop;"
        );
        o.push_str("\t\tmeta protocol arp accept\n");
        for (l3, tcp, udp, net) in [
            ("ip", SET_TCP4, SET_UDP4, SET_NET4),
            ("ip6", SET_TCP6, SET_UDP6, SET_NET6),
        ] {
            if inbound {
                let _ = writeln!(o, "\t\t{l3} {addr} . tcp {port} @{tcp} {TCP_NOT_SYN} accept");
                let _ = writeln!(o, "\t\t{l3} {addr} . udp {port} @{udp} accept");
                let _ = writeln!(o, "\t\t{l3} {addr} @{net} {TCP_NOT_SYN} accept");
                let _ = writeln!(o, "\t\t{l3} {addr} @{net} meta l4proto != tcp accept");
            } else {
                let _ = writeln!(o, "\t\t{l3} {addr} . tcp {port} @{tcp} accept");
                let _ = writeln!(o, "\t\t{l3} {addr} . udp {port} @{udp} accept");
                let _ = writeln!(o, "\t\t{l3} {addr} @{net} accept");
            }
        }
        if policy.dhcp {
            // Exactly as in the inet table: only to/from broadcast, multicast and the known
            // servers (packet sockets are DHCP clients' tool, and only this layer sees them).
            let families = ["meta protocol ip", "meta protocol ip6"];
            if inbound {
                // DHCPv4 replies from any server (a rebind takes whichever server answers:
                // refusing unknown ones would strand the host when its DHCP server changes);
                // requests out stay limited.
                super::nft::dhcp_in(&mut o, policy, families, true);
            } else {
                super::nft::dhcp_out(&mut o, policy, families);
            }
        }
        let types: Vec<String> = ICMPV6_ND_TYPES.iter().map(|t| t.to_string()).collect();
        let _ = writeln!(o, "\t\ticmpv6 type {{ {} }} accept", types.join(", "));
        if inbound {
            // No conntrack here: ICMP errors go up to the inet table, which accepts only
            // those related to an allowed connection (path MTU discovery).
            for (l4, errors) in [("icmp", &ICMP4_ERROR_TYPES[..]), ("icmpv6", &ICMP6_ERROR_TYPES[..])] {
                let types: Vec<String> = errors.iter().map(|(t, _)| t.to_string()).collect();
                let _ = writeln!(o, "\t\t{l4} type {{ {} }} accept", types.join(", "));
            }
        }
        o.push_str("\t}\n");
    }
    o.push_str("}\n");
    o
}

/// `add table netdev T; delete table netdev T` and, when `devices` is not empty, the
/// table: replaces (or just removes) the device-layer table in one batch.
pub fn render_apply(table: &TableName, policy: &Policy, devices: &[String], egress: bool) -> String {
    let t = table.as_str();
    let mut out = format!("add table netdev {t}\ndelete table netdev {t}\n");
    if !devices.is_empty() {
        out.push_str(&render_table(table, policy, devices, egress));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_table_names_devices_and_hooks() {
        let p = Policy::builder()
            .server("192.0.2.1:8443".parse().unwrap())
            .dhcp(true)
            .build();
        let text = render_table(&TableName::default(), &p, &["eth0".into(), "mv0".into()], true);
        assert!(text.starts_with("table netdev cordon {\n"), "{text}");
        assert!(text.contains("type filter hook ingress devices = { \"eth0\", \"mv0\" } priority -10; policy drop;"));
        assert!(text.contains("type filter hook egress devices = { \"eth0\", \"mv0\" } priority -10; policy drop;"));
        assert!(text.contains("\t\tip daddr . tcp dport @tcp4 accept\n"));
        assert!(
            text.contains("\t\tmeta protocol ip udp sport 68 udp dport 67 ip daddr 255.255.255.255 accept\n"),
            "{text}"
        );
        let ingress = text.split("chain egress").next().unwrap_or_default();
        assert!(ingress.contains("\t\ticmp type { 3, 11, 12 } accept\n"), "{text}");
        assert!(ingress.contains("\t\ticmpv6 type { 1, 2, 3, 4 } accept\n"), "{text}");
        let egress = text.split("chain egress").nth(1).unwrap_or_default();
        assert!(
            !egress.contains("icmp type"),
            "ICMP errors pass up on ingress only: {text}"
        );
        let ingress_only = render_table(&TableName::default(), &p, &["eth0".into()], false);
        assert!(!ingress_only.contains("egress"), "{ingress_only}");
    }

    /// DHCP on the device layer is what packet sockets meet: requests only to
    /// broadcast/multicast and the known servers (never to any host); DHCPv4 replies from
    /// any server, so a rebind answered by a server the host did not know (RFC 2131 §4.4.5)
    /// keeps the lease instead of stranding the host; DHCPv6 replies from link-local and the
    /// known servers.
    #[test]
    fn device_layer_dhcp_is_limited_to_the_known_servers() {
        let p = Policy::builder()
            .dhcp(true)
            .dhcp_server("192.0.2.67".parse().unwrap())
            .dhcp_server("2001:db8:c0::67".parse().unwrap())
            .build();
        let text = render_table(&TableName::default(), &p, &["eth0".into()], true);
        let dhcp: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("udp sport 6") || l.contains("udp sport 54"))
            .collect();
        assert_eq!(
            dhcp,
            [
                "\t\tmeta protocol ip udp sport 67 udp dport 68 accept",
                "\t\tmeta protocol ip6 udp sport 547 udp dport 546 ip6 saddr fe80::/10 accept",
                "\t\tmeta protocol ip6 udp sport 547 udp dport 546 ip6 saddr 2001:db8:c0::67 accept",
                "\t\tmeta protocol ip udp sport 68 udp dport 67 ip daddr 255.255.255.255 accept",
                "\t\tmeta protocol ip udp sport 68 udp dport 67 ip daddr 192.0.2.67 accept",
                "\t\tmeta protocol ip6 udp sport 546 udp dport 547 ip6 daddr ff02::1:2 accept",
                "\t\tmeta protocol ip6 udp sport 546 udp dport 547 ip6 daddr 2001:db8:c0::67 accept",
            ],
            "{text}"
        );
    }

    #[test]
    fn no_devices_renders_only_the_removal() {
        let p = Policy::builder().build();
        assert_eq!(
            render_apply(&TableName::default(), &p, &[], true),
            "add table netdev cordon\ndelete table netdev cordon\n"
        );
    }
}
