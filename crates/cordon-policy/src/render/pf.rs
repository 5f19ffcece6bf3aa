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

use super::{DHCP4_PORTS, DHCP6_PORTS, ICMPV6_ND_TYPES};
use crate::model::Family;
use crate::{Policy, TableName};

/// The loopback interface on macOS.
pub const LOOPBACK_IF: &str = "lo0";

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
            let (client, server) = dhcp_ports(family);
            let _ = writeln!(
                o,
                "pass out quick {af} proto udp from any port {client} to any port {server} keep state"
            );
            let _ = writeln!(
                o,
                "pass in quick {af} proto udp from any port {server} to any port {client} keep state"
            );
        }
    }
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
