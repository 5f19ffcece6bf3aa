//! Invariants every Windows and macOS rendering of any valid policy keeps (issue 5):
//! the server path is permitted, there is a final block-all, and nothing permits "any"
//! destination unless a /0 CIDR exception was explicitly given.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use cordon_policy::model::Family;
use cordon_policy::render::wfp::{self, Action, Condition, Layer, PROTO_ICMPV6, PROTO_UDP};
use cordon_policy::render::{netsh, pf, DHCP4_PORTS, DHCP6_PORTS, ICMPV6_ND_TYPES};
use cordon_policy::{Policy, TableName};
use ipnet::IpNet;
use proptest::prelude::*;

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
    ]
}

fn sock() -> impl Strategy<Value = SocketAddr> {
    (ip(), 1u16..).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

fn net() -> impl Strategy<Value = IpNet> {
    (ip(), any::<u8>()).prop_map(|(ip, len)| {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        // `% (max + 1)` keeps the prefix valid, so construction cannot fail.
        IpNet::new(ip, len % (max + 1)).unwrap().trunc()
    })
}

prop_compose! {
    fn policy()(
        servers in prop::collection::vec(sock(), 1..4),
        resolvers in prop::collection::vec(ip(), 0..3),
        dhcp in any::<bool>(),
        nets in prop::collection::vec(net(), 0..3),
        tcp in prop::collection::vec(sock(), 0..3),
        udp in prop::collection::vec(sock(), 0..3),
    ) -> Policy {
        let mut b = Policy::builder().dhcp(dhcp);
        for s in servers { b = b.server(s); }
        for r in resolvers { b = b.resolver(r); }
        for n in nets { b = b.allow_net(n); }
        for t in tcp { b = b.allow_tcp(t); }
        for u in udp { b = b.allow_udp(u); }
        b.build()
    }
}

fn has_zero_net(p: &Policy, family: Family) -> bool {
    p.open_networks(family).iter().any(|n| n.prefix_len() == 0)
}

fn is_dhcp_ports(local: u16, remote: u16) -> bool {
    [DHCP4_PORTS, DHCP6_PORTS].contains(&(local, remote))
}

fn check_pf(p: &Policy) -> Result<(), TestCaseError> {
    let text = pf::render_anchor(&TableName::default(), p);
    for s in &p.servers {
        prop_assert!(pf::permits_tcp(&text, s), "server {} not permitted:\n{}", s, text);
    }
    let rules: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    prop_assert_eq!(rules.last().copied(), Some("block drop quick all"));
    for line in &rules[..rules.len() - 1] {
        prop_assert!(line.starts_with("pass "), "non-pass rule before the end: {}", line);
        prop_assert!(line.contains(" quick "), "pass rule without quick: {}", line);
        let restricted_to_any = line.contains("on lo0")
            || line.contains("icmp6-type { 133, 134, 135, 136 }")
            || (line.contains("proto udp")
                && ["port 67 ", "port 68 ", "port 546 ", "port 547 "]
                    .iter()
                    .any(|w| line.contains(w)));
        // The remote side is the destination of `pass out` rules and the source of
        // `pass in` rules (whose destination is this host).
        let remote_is_any = if line.starts_with("pass in ") {
            line.contains(" from any")
        } else {
            line.contains(" to any")
        };
        if remote_is_any && !restricted_to_any {
            prop_assert!(false, "rule permits any remote peer: {}", line);
        }
        if line.contains("0.0.0.0/0") {
            prop_assert!(has_zero_net(p, Family::V4), "unrequested 0/0: {}", line);
        }
        if line.contains("::/0") {
            prop_assert!(has_zero_net(p, Family::V6), "unrequested ::/0: {}", line);
        }
    }
    Ok(())
}

fn word<'a>(cmd: &'a [String], key: &str) -> Option<&'a str> {
    cmd.iter()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn check_netsh(p: &Policy) -> Result<(), TestCaseError> {
    let table = TableName::default();
    let names = netsh::Names::new(&table);
    let cmds = netsh::render_apply(&table, p);
    let filters: Vec<&Vec<String>> = cmds
        .iter()
        .filter(|c| c.get(3).map(String::as_str) == Some("add") && c.get(4).map(String::as_str) == Some("filter"))
        .collect();
    let permits: Vec<&&Vec<String>> = filters
        .iter()
        .filter(|c| word(c, "filterlist") == Some(names.permit_list.as_str()))
        .collect();
    for s in &p.servers {
        let ok = permits.iter().any(|c| {
            netsh::dst_addr(c) == Some(s.ip())
                && word(c, "protocol") == Some("TCP")
                && word(c, "dstport") == Some(s.port().to_string().as_str())
        });
        prop_assert!(ok, "server {} not permitted", s);
    }
    // The block list holds exactly the block-all filter, linked to the block action,
    // and the policy is assigned last.
    let blocks: Vec<&&Vec<String>> = filters
        .iter()
        .filter(|c| word(c, "filterlist") == Some(names.block_list.as_str()))
        .collect();
    prop_assert_eq!(blocks.len(), 1);
    prop_assert_eq!(word(blocks[0], "dstaddr"), Some("any"));
    prop_assert_eq!(word(blocks[0], "protocol"), Some("ANY"));
    prop_assert!(cmds.iter().any(|c| c.get(4).map(String::as_str) == Some("rule")
        && word(c, "filterlist") == Some(names.block_list.as_str())
        && word(c, "filteraction") == Some(names.block_action.as_str())));
    prop_assert_eq!(
        cmds.last().map(|c| netsh::command_line(c)),
        Some(format!(
            "netsh ipsec static set policy name=\"{}\" assign=y",
            names.policy
        ))
    );
    for c in permits {
        if word(c, "dstaddr") == Some("any") {
            match word(c, "protocol") {
                Some("UDP") => {
                    let port = |k| word(c, k).and_then(|v| v.parse::<u16>().ok()).unwrap_or(0);
                    prop_assert!(is_dhcp_ports(port("srcport"), port("dstport")), "udp to any: {:?}", c);
                }
                _ => prop_assert!(
                    has_zero_net(p, Family::V4) || has_zero_net(p, Family::V6),
                    "permits any: {:?}",
                    c
                ),
            }
        }
    }
    Ok(())
}

fn check_wfp(p: &Policy) -> Result<(), TestCaseError> {
    let fs = wfp::filters(p);
    for s in &p.servers {
        let ok = fs.iter().any(|f| {
            f.action == Action::Permit
                && f.layer == Layer::AleAuthConnect(Family::of(&s.ip()))
                && f.remote_net().is_some_and(|n| n.contains(&s.ip()))
                && f.conditions.contains(&Condition::RemotePort(s.port()))
        });
        prop_assert!(ok, "server {} not permitted", s);
    }
    for layer in Layer::ALL {
        let in_layer: Vec<&wfp::FilterSpec> = fs.iter().filter(|f| f.layer == layer).collect();
        let block = in_layer
            .iter()
            .find(|f| f.action == Action::Block && f.conditions.is_empty());
        prop_assert!(block.is_some(), "no block-all at {}", layer.name());
        let bw = block.map(|b| b.weight).unwrap_or(u8::MAX);
        prop_assert!(in_layer
            .iter()
            .filter(|f| f.action == Action::Permit)
            .all(|f| f.weight > bw));
    }
    for f in fs.iter().filter(|f| f.action == Action::Permit) {
        match f.remote_net() {
            Some(n) if n.prefix_len() == 0 => {
                prop_assert!(has_zero_net(p, f.layer.family()), "unrequested /0: {:?}", f)
            }
            Some(_) => {}
            None => {
                let c = &f.conditions;
                let loopback = c == &vec![Condition::Loopback];
                let nd = c.contains(&Condition::Protocol(PROTO_ICMPV6))
                    && c.iter()
                        .any(|x| matches!(x, Condition::IcmpType(t) if ICMPV6_ND_TYPES.contains(t)));
                let dhcp = c.contains(&Condition::Protocol(PROTO_UDP))
                    && c.iter().any(|x| matches!(x, Condition::LocalPort(l) if c.iter().any(|y| matches!(y, Condition::RemotePort(r) if is_dhcp_ports(*l, *r)))));
                prop_assert!(loopback || nd || dhcp, "permit without a destination: {:?}", f);
            }
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn pf_keeps_invariants(p in policy()) { check_pf(&p)?; }

    #[test]
    fn netsh_keeps_invariants(p in policy()) { check_netsh(&p)?; }

    #[test]
    fn wfp_keeps_invariants(p in policy()) { check_wfp(&p)?; }
}
