//! Windows Filtering Platform: the list of filters Cordon adds, as plain data. The
//! Windows-only FFI layer in `cordon-firewall` turns each [`FilterSpec`] into one
//! `FwpmFilterAdd0` inside a single transaction; everything that decides *what* is
//! filtered lives here, where it can be tested on any OS.
//!
//! All filters go into Cordon's own sublayer. Within a sublayer the matching filter with
//! the highest weight decides, so permits carry [`PERMIT_WEIGHT`] and the unconditional
//! block of each layer [`BLOCK_WEIGHT`]. Across sublayers a block wins over a *soft*
//! permit, but a *hard* permit (one that clears the action right) from another provider's
//! sublayer of higher or equal weight would win over a soft block. So every block filter
//! is a hard block itself: it carries [`FilterFlags::clear_action_right`]
//! (`FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT`), and a later sublayer's permit cannot undo it.
//!
//! ALE layers authorize flows, not packets: replies on an allowed connection need no
//! filter, and when filters change, Windows re-authorizes existing flows, which cuts
//! established connections to anyone not allowed (design §3 point 7).
//!
//! ICMP errors (path MTU discovery, design §3 point 5) are classified at the
//! `INBOUND_ICMP_ERROR` layers, with the quoted packet's protocol, remote address and port
//! as `EMBEDDED_*` fields: Cordon permits the error types of
//! [`super::ICMP4_ERROR_TYPES`] / [`super::ICMP6_ERROR_TYPES`] when the quoted packet
//! went to an allowed destination, and blocks every other ICMP error there — the WFP
//! equivalent of nftables' `ct state related ct original daddr …`.

use std::fmt::{self, Write};

use ipnet::IpNet;

use super::{
    DHCP4_BROADCAST, DHCP4_PORTS, DHCP6_MULTICAST, DHCP6_PORTS, ICMP4_ERROR_TYPES, ICMP6_ERROR_TYPES, ICMPV6_ND_TYPES,
    LINK_LOCAL6,
};
use crate::model::Family;
use crate::Policy;

/// Weight of permit filters inside our sublayer.
pub const PERMIT_WEIGHT: u8 = 10;
/// Weight of the final block-all filter of each layer (lowest: evaluated last).
pub const BLOCK_WEIGHT: u8 = 0;

/// IANA protocol number of TCP, the value of `FWPM_CONDITION_IP_PROTOCOL`.
pub const PROTO_TCP: u8 = 6;
/// IANA protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// IANA protocol number of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;

/// The WFP layers Cordon filters at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Outbound connections and first outbound UDP packet (`FWPM_LAYER_ALE_AUTH_CONNECT_V4/6`).
    AleAuthConnect(Family),
    /// Inbound connections and first inbound UDP packet (`FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4/6`).
    AleAuthRecvAccept(Family),
    /// Packets routed through the host (`FWPM_LAYER_IPFORWARD_V4/6`).
    IpForward(Family),
    /// Received ICMP error messages, with the packet they quote
    /// (`FWPM_LAYER_INBOUND_ICMP_ERROR_V4/6`).
    InboundIcmpError(Family),
}

impl Layer {
    /// Every layer Cordon uses, IPv4 first; release deletes Cordon's filters from each.
    pub const ALL: [Layer; 8] = [
        Layer::AleAuthConnect(Family::V4),
        Layer::AleAuthRecvAccept(Family::V4),
        Layer::IpForward(Family::V4),
        Layer::InboundIcmpError(Family::V4),
        Layer::AleAuthConnect(Family::V6),
        Layer::AleAuthRecvAccept(Family::V6),
        Layer::IpForward(Family::V6),
        Layer::InboundIcmpError(Family::V6),
    ];

    /// The IP family of the layer (each `FWPM_LAYER_*` exists once per family).
    pub fn family(self) -> Family {
        match self {
            Layer::AleAuthConnect(f)
            | Layer::AleAuthRecvAccept(f)
            | Layer::IpForward(f)
            | Layer::InboundIcmpError(f) => f,
        }
    }

    /// The `FWPM_LAYER_*` constant name, as used in the golden text.
    pub fn name(self) -> &'static str {
        match self {
            Layer::AleAuthConnect(Family::V4) => "ALE_AUTH_CONNECT_V4",
            Layer::AleAuthConnect(Family::V6) => "ALE_AUTH_CONNECT_V6",
            Layer::AleAuthRecvAccept(Family::V4) => "ALE_AUTH_RECV_ACCEPT_V4",
            Layer::AleAuthRecvAccept(Family::V6) => "ALE_AUTH_RECV_ACCEPT_V6",
            Layer::IpForward(Family::V4) => "IPFORWARD_V4",
            Layer::IpForward(Family::V6) => "IPFORWARD_V6",
            Layer::InboundIcmpError(Family::V4) => "INBOUND_ICMP_ERROR_V4",
            Layer::InboundIcmpError(Family::V6) => "INBOUND_ICMP_ERROR_V6",
        }
    }
}

/// What a filter does with matching traffic (`FWPM_ACTION0.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `FWP_ACTION_PERMIT`.
    Permit,
    /// `FWP_ACTION_BLOCK`.
    Block,
}

/// One match condition; all conditions of a filter must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// `FWPM_CONDITION_IP_REMOTE_ADDRESS` within this network (a /32 or /128 for a host).
    RemoteAddr(IpNet),
    /// `FWPM_CONDITION_IP_REMOTE_PORT`.
    RemotePort(u16),
    /// `FWPM_CONDITION_IP_LOCAL_PORT`.
    LocalPort(u16),
    /// `FWPM_CONDITION_IP_PROTOCOL`.
    Protocol(u8),
    /// `FWPM_CONDITION_FLAGS` has `FWP_CONDITION_FLAG_IS_LOOPBACK`.
    Loopback,
    /// `FWPM_CONDITION_ICMP_TYPE` (at ALE layers an alias of the local port field).
    /// Several in one filter are alternatives (WFP ORs conditions on the same field).
    IcmpType(u8),
    /// `FWPM_CONDITION_EMBEDDED_REMOTE_ADDRESS`: where the packet an ICMP error quotes went.
    EmbeddedRemoteAddr(IpNet),
    /// `FWPM_CONDITION_EMBEDDED_PROTOCOL` of the quoted packet.
    EmbeddedProtocol(u8),
    /// `FWPM_CONDITION_EMBEDDED_REMOTE_PORT` of the quoted packet.
    EmbeddedRemotePort(u16),
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::RemoteAddr(n) => write!(f, "remote_addr={n}"),
            Condition::RemotePort(p) => write!(f, "remote_port={p}"),
            Condition::LocalPort(p) => write!(f, "local_port={p}"),
            Condition::Protocol(p) => write!(f, "protocol={}", proto_name(*p)),
            Condition::Loopback => f.write_str("flags=loopback"),
            Condition::IcmpType(t) => write!(f, "icmp_type={t}"),
            Condition::EmbeddedRemoteAddr(n) => write!(f, "embedded_remote_addr={n}"),
            Condition::EmbeddedProtocol(p) => write!(f, "embedded_protocol={}", proto_name(*p)),
            Condition::EmbeddedRemotePort(p) => write!(f, "embedded_remote_port={p}"),
        }
    }
}

fn proto_name(p: u8) -> String {
    match p {
        PROTO_TCP => "tcp".into(),
        PROTO_UDP => "udp".into(),
        PROTO_ICMPV6 => "icmpv6".into(),
        other => other.to_string(),
    }
}

/// The `FWPM_FILTER0.flags` that depend on the filter (the FFI layer adds
/// `FWPM_FILTER_FLAG_PERSISTENT` to every filter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FilterFlags {
    /// `FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT`: the action is final (a hard block), no
    /// lower-priority sublayer can override it, not even with a hard permit.
    pub clear_action_right: bool,
}

impl fmt::Display for FilterFlags {
    /// The flag names, space-separated; empty when no flag is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.clear_action_right {
            f.write_str("clear_action_right")?;
        }
        Ok(())
    }
}

/// One filter to add: everything `FwpmFilterAdd0` needs except the fixed provider and
/// sublayer keys and the persistent flag, which the FFI layer supplies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FilterSpec {
    /// Display name (`FWPM_DISPLAY_DATA0.name`), also shown by `netsh wfp show filters`.
    pub name: String,
    /// The layer the filter is added at.
    pub layer: Layer,
    /// Permit or block.
    pub action: Action,
    /// Weight inside Cordon's sublayer (`FWP_UINT8`): [`PERMIT_WEIGHT`] or [`BLOCK_WEIGHT`].
    pub weight: u8,
    /// Match conditions, all of which must hold; empty matches everything.
    pub conditions: Vec<Condition>,
    /// Set on every block filter: blocks are hard blocks (see the module comment).
    pub flags: FilterFlags,
}

impl FilterSpec {
    fn permit(layer: Layer, name: String, conditions: Vec<Condition>) -> Self {
        FilterSpec {
            name,
            layer,
            action: Action::Permit,
            weight: PERMIT_WEIGHT,
            conditions,
            flags: FilterFlags::default(),
        }
    }

    /// The remote network this filter is limited to, if any: the peer, or for ICMP error
    /// filters the destination of the packet the error quotes.
    pub fn remote_net(&self) -> Option<IpNet> {
        self.conditions.iter().find_map(|c| match c {
            Condition::RemoteAddr(n) | Condition::EmbeddedRemoteAddr(n) => Some(*n),
            _ => None,
        })
    }
}

/// Every filter for `policy`, in a stable order: per family, the connect-layer permits,
/// the recv-accept permits, then one unconditional block per layer.
pub fn filters(policy: &Policy) -> Vec<FilterSpec> {
    let mut out = Vec::new();
    for family in Family::BOTH {
        let connect = Layer::AleAuthConnect(family);
        let accept = Layer::AleAuthRecvAccept(family);
        let fam = match family {
            Family::V4 => "v4",
            Family::V6 => "v6",
        };
        for layer in [connect, accept] {
            out.push(FilterSpec::permit(
                layer,
                format!("Cordon: loopback {fam}"),
                vec![Condition::Loopback],
            ));
        }
        for d in policy.tcp_destinations(family) {
            out.push(FilterSpec::permit(
                connect,
                format!("Cordon: tcp to {d}"),
                vec![
                    Condition::Protocol(PROTO_TCP),
                    Condition::RemoteAddr(IpNet::from(d.ip())),
                    Condition::RemotePort(d.port()),
                ],
            ));
        }
        for d in policy.udp_destinations(family) {
            out.push(FilterSpec::permit(
                connect,
                format!("Cordon: udp to {d}"),
                vec![
                    Condition::Protocol(PROTO_UDP),
                    Condition::RemoteAddr(IpNet::from(d.ip())),
                    Condition::RemotePort(d.port()),
                ],
            ));
        }
        for n in policy.open_networks(family) {
            out.push(FilterSpec::permit(
                connect,
                format!("Cordon: any to {n}"),
                vec![Condition::RemoteAddr(n)],
            ));
        }
        if policy.dhcp {
            // Requests to the broadcast / DHCPv6 multicast address and the known servers;
            // replies (often broadcast, matching no outbound flow) from the known servers
            // and, for v6, link-local addresses. Never to or from anyone else.
            let (client, server) = match family {
                Family::V4 => DHCP4_PORTS,
                Family::V6 => DHCP6_PORTS,
            };
            let servers: Vec<IpNet> = policy.dhcp_servers_of(family).into_iter().map(IpNet::from).collect();
            let (first_out, first_in): (IpNet, Option<IpNet>) = match family {
                Family::V4 => (IpNet::from(std::net::IpAddr::from(DHCP4_BROADCAST)), None),
                Family::V6 => (
                    IpNet::from(std::net::IpAddr::from(DHCP6_MULTICAST)),
                    LINK_LOCAL6.parse().ok(),
                ),
            };
            let conds = |peer: IpNet| {
                vec![
                    Condition::Protocol(PROTO_UDP),
                    Condition::RemoteAddr(peer),
                    Condition::LocalPort(client),
                    Condition::RemotePort(server),
                ]
            };
            for to in std::iter::once(first_out).chain(servers.iter().copied()) {
                out.push(FilterSpec::permit(
                    connect,
                    format!("Cordon: dhcp {fam} out to {to}"),
                    conds(to),
                ));
            }
            for from in first_in.into_iter().chain(servers.iter().copied()) {
                out.push(FilterSpec::permit(
                    accept,
                    format!("Cordon: dhcp {fam} in from {from}"),
                    conds(from),
                ));
            }
        }
        if family == Family::V6 {
            for layer in [connect, accept] {
                for t in ICMPV6_ND_TYPES {
                    out.push(FilterSpec::permit(
                        layer,
                        format!("Cordon: icmpv6 type {t}"),
                        vec![Condition::Protocol(PROTO_ICMPV6), Condition::IcmpType(t)],
                    ));
                }
            }
        }
        // ICMP errors about allowed connections (path MTU discovery), from any router.
        let icmp_err = Layer::InboundIcmpError(family);
        let types: Vec<Condition> = match family {
            Family::V4 => &ICMP4_ERROR_TYPES[..],
            Family::V6 => &ICMP6_ERROR_TYPES[..],
        }
        .iter()
        .map(|(t, _)| Condition::IcmpType(*t))
        .collect();
        for (proto, dests) in [
            (PROTO_TCP, policy.tcp_destinations(family)),
            (PROTO_UDP, policy.udp_destinations(family)),
        ] {
            for d in dests {
                let mut conds = types.clone();
                conds.extend([
                    Condition::EmbeddedProtocol(proto),
                    Condition::EmbeddedRemoteAddr(IpNet::from(d.ip())),
                    Condition::EmbeddedRemotePort(d.port()),
                ]);
                out.push(FilterSpec::permit(
                    icmp_err,
                    format!("Cordon: icmp errors about {} to {d}", proto_name(proto)),
                    conds,
                ));
            }
        }
        for n in policy.open_networks(family) {
            let mut conds = types.clone();
            conds.push(Condition::EmbeddedRemoteAddr(n));
            out.push(FilterSpec::permit(
                icmp_err,
                format!("Cordon: icmp errors about {n}"),
                conds,
            ));
        }
        for layer in [connect, accept, Layer::IpForward(family), icmp_err] {
            out.push(FilterSpec {
                name: format!("Cordon: block all ({})", layer.name()),
                layer,
                action: Action::Block,
                weight: BLOCK_WEIGHT,
                conditions: Vec::new(),
                flags: FilterFlags {
                    clear_action_right: true,
                },
            });
        }
    }
    out
}

/// One line per filter, for `--dry-run` and golden files: layer, action, weight, the
/// conditions (`(all)` when none), the flags in brackets when any, and the name.
pub fn render_text(filters: &[FilterSpec]) -> String {
    let mut o = String::new();
    for f in filters {
        let action = match f.action {
            Action::Permit => "permit",
            Action::Block => "block ",
        };
        let conds: Vec<String> = f.conditions.iter().map(|c| c.to_string()).collect();
        let conds = if conds.is_empty() {
            "(all)".to_string()
        } else {
            conds.join(" ")
        };
        let flags = f.flags.to_string();
        let flags = if flags.is_empty() { flags } else { format!(" [{flags}]") };
        // Writing to a String cannot fail.
        let _ = writeln!(
            o,
            "{:<24} {action} w={:<2} {conds}{flags}  # {}",
            f.layer.name(),
            f.weight,
            f.name
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layer_ends_with_a_lower_weight_block() {
        let p = Policy::builder()
            .server("192.0.2.1:8443".parse().unwrap())
            .dhcp(true)
            .build();
        let fs = filters(&p);
        for layer in Layer::ALL {
            let block = fs
                .iter()
                .find(|f| f.layer == layer && f.action == Action::Block)
                .unwrap();
            assert!(block.conditions.is_empty());
            assert!(fs
                .iter()
                .filter(|f| f.layer == layer && f.action == Action::Permit)
                .all(|f| f.weight > block.weight));
        }
    }

    /// Fault kind: a block that a hard permit elsewhere can undo (a soft block).
    #[test]
    fn every_block_filter_is_a_hard_block() {
        let policies = [
            Policy::builder()
                .server("192.0.2.1:8443".parse().unwrap())
                .dhcp(true)
                .build(),
            Policy::builder()
                .server("[2001:db8:c0::1]:8443".parse().unwrap())
                .build(),
        ];
        for p in &policies {
            let fs = filters(p);
            let blocks: Vec<_> = fs.iter().filter(|f| f.action == Action::Block).collect();
            assert_eq!(blocks.len(), Layer::ALL.len());
            for b in blocks {
                assert!(b.flags.clear_action_right, "soft block: {b:?}");
            }
            // Permits stay soft: a hard permit would override other providers' blocks.
            for f in fs.iter().filter(|f| f.action == Action::Permit) {
                assert!(!f.flags.clear_action_right, "hard permit: {f:?}");
            }
            let text = render_text(&fs);
            assert_eq!(
                text.lines().filter(|l| l.contains("[clear_action_right]")).count(),
                Layer::ALL.len()
            );
        }
    }

    #[test]
    fn icmp_errors_pass_only_about_allowed_destinations() {
        let p = Policy::builder()
            .server("192.0.2.1:8443".parse().unwrap())
            .server("[2001:db8:c0::1]:8443".parse().unwrap())
            .build();
        let fs = filters(&p);
        let v6 = fs
            .iter()
            .find(|f| f.layer == Layer::InboundIcmpError(Family::V6) && f.action == Action::Permit)
            .unwrap();
        // Packet too big is among the error types; the quoted packet must be ours to the server.
        assert!(v6.conditions.contains(&Condition::IcmpType(2)));
        assert!(v6
            .conditions
            .contains(&Condition::EmbeddedRemoteAddr("2001:db8:c0::1/128".parse().unwrap())));
        assert!(v6.conditions.contains(&Condition::EmbeddedRemotePort(8443)));
        assert!(v6.conditions.contains(&Condition::EmbeddedProtocol(PROTO_TCP)));
        // Redirects (5) never pass; every other ICMP error is blocked at that layer.
        assert!(!fs.iter().any(|f| f.conditions.contains(&Condition::IcmpType(5))));
        for fam in Family::BOTH {
            assert!(fs
                .iter()
                .any(|f| f.layer == Layer::InboundIcmpError(fam) && f.action == Action::Block));
        }
    }

    #[test]
    fn server_is_permitted_at_connect() {
        let p = Policy::builder()
            .server("[2001:db8:c0::1]:8443".parse().unwrap())
            .build();
        let fs = filters(&p);
        assert!(fs.iter().any(|f| f.layer == Layer::AleAuthConnect(Family::V6)
            && f.action == Action::Permit
            && f.conditions.contains(&Condition::RemotePort(8443))
            && f.remote_net() == Some("2001:db8:c0::1/128".parse().unwrap())));
        // No DHCP without the flag.
        assert!(!render_text(&fs).contains("dhcp"));
    }
}
