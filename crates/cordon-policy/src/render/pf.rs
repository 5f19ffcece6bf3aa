//! macOS pf rendering: the rule text of Cordon's own anchor, loaded with
//! `pfctl -a <anchor> -f -` (one atomic ruleset swap of that anchor only).
//!
//! Every rule is `quick`, so the first match inside our anchor is final and no rule the
//! user has after the anchor in the main ruleset can reopen the host. The anchor ends with
//! `block drop quick all`, which covers inbound, outbound and forwarded packets of both
//! families. Pass rules keep state, so replies come back; there are no inbound pass rules
//! except DHCP replies (often broadcast, so they match no state) and ICMPv6 ND.

use std::fmt::Write;
use std::net::SocketAddr;

use super::{DHCP4_BROADCAST, DHCP4_PORTS, DHCP6_MULTICAST, DHCP6_PORTS, ICMPV6_ND_TYPES, LINK_LOCAL6};
use crate::model::Family;
use crate::{Policy, TableName};

/// The loopback interface on macOS.
pub const LOOPBACK_IF: &str = "lo0";

/// The line that states how pf treats ICMP errors about allowed connections (pf matches
/// them to the state of the connection they quote, before any rule; `man pf.conf`,
/// "STATEFUL TRACKING OPTIONS"). Rendered into every anchor so the rule set says it.
pub const ICMP_ERRORS_NOTE: &str =
    "# ICMP/ICMPv6 errors about an allowed connection (need-frag, packet too big) pass through its state; no other ICMP\n";

/// The anchor text for `pfctl -a <table> -f -`.
pub fn render_anchor(table: &TableName, policy: &Policy) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Cordon quarantine, anchor \"{table}\" (generated; edits are reported as tampering)"
    );
    // Writing to a String cannot fail; results are ignored for that reason throughout.
    let _ = writeln!(o, "pass quick on {LOOPBACK_IF} all no state");
    for family in Family::BOTH {
        let af = af(family);
        for d in policy.tcp_destinations(family) {
            // `flags any` lets pf pick up a connection to an allowed peer that was open
            // before the anchor loaded (its state may have been created by another rule).
            let _ = writeln!(
                o,
                "pass out quick {af} proto tcp from any to {} port {} flags any keep state",
                d.ip(),
                d.port()
            );
            // A session open before the anchor loaded may have no pf state; if the peer
            // speaks first, its segment would hit the block. Accept segments from the
            // peer that are not connection-opening SYNs (ACK set, SYN clear).
            let _ = writeln!(
                o,
                "pass in quick {af} proto tcp from {} port {} to any flags A/SA keep state",
                d.ip(),
                d.port()
            );
        }
        for d in policy.udp_destinations(family) {
            let _ = writeln!(
                o,
                "pass out quick {af} proto udp from any to {} port {} keep state",
                d.ip(),
                d.port()
            );
        }
        for n in policy.open_networks(family) {
            let _ = writeln!(o, "pass out quick {af} from any to {n} keep state");
            let _ = writeln!(o, "pass in quick {af} proto tcp from {n} to any flags A/SA keep state");
        }
        if policy.dhcp {
            // Requests to the broadcast / DHCPv6 multicast address and the known servers;
            // replies from the known servers (v6: and link-local addresses) only.
            let (client, server) = dhcp_ports(family);
            let servers: Vec<String> = policy.dhcp_servers_of(family).iter().map(|a| a.to_string()).collect();
            let (mut to, mut from) = match family {
                Family::V4 => (vec![DHCP4_BROADCAST.to_string()], vec![]),
                Family::V6 => (vec![DHCP6_MULTICAST.to_string()], vec![LINK_LOCAL6.to_string()]),
            };
            to.extend(servers.iter().cloned());
            from.extend(servers);
            for t in to {
                let _ = writeln!(
                    o,
                    "pass out quick {af} proto udp from any port {client} to {t} port {server} keep state"
                );
            }
            for f in from {
                let _ = writeln!(
                    o,
                    "pass in quick {af} proto udp from {f} port {server} to any port {client} keep state"
                );
            }
        }
    }
    // Path MTU discovery (design §3 point 5): pf passes an ICMP error (unreachable incl.
    // need-frag, packet too big, time exceeded, parameter problem) from any router when it
    // quotes a connection that has a state, i.e. one of the allowed connections above,
    // which all keep state; no rule passes any other ICMP.
    o.push_str(ICMP_ERRORS_NOTE);
    let types: Vec<String> = ICMPV6_ND_TYPES.iter().map(|t| t.to_string()).collect();
    let _ = writeln!(
        o,
        "pass quick inet6 proto icmp6 from any to any icmp6-type {{ {} }} no state",
        types.join(", ")
    );
    o.push_str("block drop quick all\n");
    o
}

/// Text that empties our anchor: loading it replaces the anchor's rules with nothing.
/// (`pfctl -a <table> -F all` does the same and also flushes the anchor's tables.)
pub fn render_empty() -> String {
    String::new()
}

fn af(family: Family) -> &'static str {
    match family {
        Family::V4 => "inet",
        Family::V6 => "inet6",
    }
}

fn dhcp_ports(family: Family) -> (u16, u16) {
    match family {
        Family::V4 => DHCP4_PORTS,
        Family::V6 => DHCP6_PORTS,
    }
}

/// The addresses a listed rule set permits to, for tests and inspection: every `to X`
/// of a `pass out` line, where X is not `any`.
pub fn pass_destinations(anchor_text: &str) -> Vec<String> {
    anchor_text
        .lines()
        .filter(|l| l.starts_with("pass out"))
        .filter_map(|l| {
            let mut words = l.split_whitespace().skip_while(|w| *w != "to");
            words.next()?;
            words.next().filter(|w| *w != "any").map(str::to_string)
        })
        .collect()
}

/// Whether `text` (as listed back by `pfctl -a <table> -sr`) still passes TCP to `server`.
/// pfctl lists rules in a canonical form that differs from ours in detail (it spells out
/// `flags any`, prints `inet6` addresses compressed), so this checks the essentials only.
pub fn permits_tcp(text: &str, server: &SocketAddr) -> bool {
    let ip = server.ip().to_string();
    let port = format!("port = {}", server.port());
    let port_ours = format!("port {}", server.port());
    text.lines().any(|l| {
        l.starts_with("pass out")
            && l.contains("proto tcp")
            && l.split_whitespace().any(|w| w == ip)
            && (l.contains(&port) || l.contains(&port_ours))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Policy {
        Policy::builder()
            .server("192.0.2.1:8443".parse().unwrap())
            .server("[2001:db8:c0::1]:8443".parse().unwrap())
            .resolver("192.0.2.53".parse().unwrap())
            .dhcp(true)
            .build()
    }

    #[test]
    fn ends_with_block_all_and_passes_the_server() {
        let text = render_anchor(&TableName::default(), &sample());
        assert_eq!(text.lines().last(), Some("block drop quick all"));
        assert!(permits_tcp(&text, &"192.0.2.1:8443".parse().unwrap()));
        assert!(permits_tcp(&text, &"[2001:db8:c0::1]:8443".parse().unwrap()));
        assert!(!permits_tcp(&text, &"192.0.2.1:22".parse().unwrap()));
        assert!(text.contains("pass out quick inet proto udp from any to 192.0.2.53 port 53 keep state"));
    }

    #[test]
    fn icmp_errors_pass_only_through_state() {
        let text = render_anchor(&TableName::default(), &sample());
        assert!(text.contains(ICMP_ERRORS_NOTE));
        // Every pass to or from a peer keeps state (so errors quoting it pass) ...
        for l in text
            .lines()
            .filter(|l| l.starts_with("pass") && !l.contains(LOOPBACK_IF))
        {
            assert!(l.ends_with("keep state") || l.contains("icmp6-type"), "{l}");
        }
        // ... and no rule passes ICMP by itself, except IPv6 neighbour discovery.
        assert!(!text.lines().any(|l| l.contains("proto icmp ")));
        assert_eq!(text.lines().filter(|l| l.contains("proto icmp6")).count(), 1);
    }

    #[test]
    fn dhcp_only_to_broadcast_and_known_servers() {
        let p = Policy::builder()
            .dhcp(true)
            .dhcp_server("192.0.2.67".parse().unwrap())
            .build();
        let text = render_anchor(&TableName::default(), &p);
        assert!(text.contains("pass out quick inet proto udp from any port 68 to 255.255.255.255 port 67 keep state"));
        assert!(text.contains("pass out quick inet proto udp from any port 68 to 192.0.2.67 port 67 keep state"));
        assert!(text.contains("pass in quick inet proto udp from 192.0.2.67 port 67 to any port 68 keep state"));
        assert!(text.contains("pass out quick inet6 proto udp from any port 546 to ff02::1:2 port 547 keep state"));
        assert!(!text.contains("from any port 67"));
        assert!(!text.contains("to any port 67"));
    }

    #[test]
    fn recognizes_pfctl_listing_form() {
        let listed = "pass out quick inet proto tcp from any to 192.0.2.1 port = 8443 flags any keep state\n";
        assert!(permits_tcp(listed, &"192.0.2.1:8443".parse().unwrap()));
    }

    #[test]
    fn destinations_exclude_any() {
        let text = render_anchor(&TableName::default(), &sample());
        let d = pass_destinations(&text);
        assert!(d.contains(&"192.0.2.1".to_string()));
        assert!(!d.iter().any(|x| x == "any"));
    }
}
