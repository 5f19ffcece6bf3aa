//! Windows static IPsec policy through `netsh ipsec static` (the `--backend netsh-ipsec`
//! fallback, as in Velociraptor's Windows quarantine): one policy with a permit and a
//! block filter list, a permit and a block filter action, two rules linking them, then
//! `assign=y`. A re-apply builds the new policy under the table's second name and
//! assigns it before deleting the old one ([`render_reapply`]), so there is no gap.
//!
//! IPsec policy filters are stateless and "most specific wins": the block list holds one
//! filter `me <-> any` (all protocols, mirrored), the permit list one mirrored filter per
//! allowed destination, which is more specific and so wins for that traffic. Loopback is
//! never subject to IPsec, so it needs no filter. Forwarded traffic is not governed by
//! IPsec policy at all; the WFP backend (the default) blocks it.
//!
//! Commands are rendered as argument vectors with logical `key=value` words (no quotes);
//! [`command_line`] gives the quoted form netsh expects on its command line.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{DHCP4_BROADCAST, DHCP4_PORTS, DHCP6_MULTICAST, DHCP6_PORTS, LINK_LOCAL6};
use crate::model::Family;
use crate::{Policy, TableName};

/// Name of the IPsec policy for the default table (primary slot); the break-glass
/// commands are `netsh ipsec static delete policy name="Cordon Quarantine"` and the same
/// with `"Cordon Quarantine (alternate)"` (see [`Slot`]).
pub const DEFAULT_POLICY_NAME: &str = "Cordon Quarantine";

/// Networks that ICMPv6 neighbour discovery uses (link-local and link-scope multicast).
/// netsh filters cannot match ICMP types, so ND is permitted by destination instead.
pub const ND_NETWORKS: [&str; 2] = ["fe80::/10", "ff02::/16"];

/// IANA protocol number of ICMPv6.
const PROTO_ICMPV6: u8 = 58;

/// Names of every object Cordon creates for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The IPsec policy: `Cordon Quarantine[ TABLE][ (alternate)]`; the other names
    /// append to it.
    pub policy: String,
    /// The filter list of permitted traffic: `POLICY permit list`.
    pub permit_list: String,
    /// The filter list that matches everything else: `POLICY block list`.
    pub block_list: String,
    /// The filter action `permit`: `POLICY permit`.
    pub permit_action: String,
    /// The filter action `block`: `POLICY block`.
    pub block_action: String,
    /// The rule joining the permit list to the permit action: `POLICY permit rule`.
    pub permit_rule: String,
    /// The rule joining the block list to the block action: `POLICY block rule`.
    pub block_rule: String,
}

/// The two names a table's policy alternates between, so that re-applying never leaves
/// a gap: the new policy is built under the other name while the old one is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// `Cordon Quarantine` (the name a first apply uses).
    Primary,
    /// `Cordon Quarantine (alternate)`.
    Alternate,
}

impl Slot {
    /// Both slots, primary first (release deletes the objects of both).
    pub const BOTH: [Slot; 2] = [Slot::Primary, Slot::Alternate];

    /// The slot a re-apply builds into when `self` is the one in force.
    pub fn other(self) -> Slot {
        match self {
            Slot::Primary => Slot::Alternate,
            Slot::Alternate => Slot::Primary,
        }
    }
}

impl Names {
    /// The names of the primary slot (see [`Names::for_slot`]).
    pub fn new(table: &TableName) -> Self {
        Names::for_slot(table, Slot::Primary)
    }

    /// The names of every object of `table`'s policy in `slot`; all derive from the
    /// policy name, so the two slots share no object.
    pub fn for_slot(table: &TableName, slot: Slot) -> Self {
        let base = if table.as_str() == TableName::DEFAULT {
            DEFAULT_POLICY_NAME.to_string()
        } else {
            format!("{DEFAULT_POLICY_NAME} {table}")
        };
        let policy = match slot {
            Slot::Primary => base,
            Slot::Alternate => format!("{base} (alternate)"),
        };
        Names {
            permit_list: format!("{policy} permit list"),
            block_list: format!("{policy} block list"),
            permit_action: format!("{policy} permit"),
            block_action: format!("{policy} block"),
            permit_rule: format!("{policy} permit rule"),
            block_rule: format!("{policy} block rule"),
            policy,
        }
    }
}

/// One `netsh` invocation: `argv[0]` is `netsh`.
pub type Command = Vec<String>;

fn netsh(words: &[&str]) -> Command {
    let mut argv = vec!["netsh".to_string(), "ipsec".to_string(), "static".to_string()];
    argv.extend(words.iter().map(|w| w.to_string()));
    argv
}

fn kv(key: &str, value: &str) -> String {
    format!("{key}={value}")
}

/// The commands that create and assign the policy under the primary name, in order (the
/// first apply, when no policy of ours is assigned). The caller deletes the policy (see
/// [`render_remove`]) if any of them fails, so no half state remains.
pub fn render_apply(table: &TableName, policy: &Policy) -> Vec<Command> {
    render_build(&Names::new(table), policy)
}

/// Re-applying while the policy in slot `assigned` is in force, in three phases that
/// [`Reapply::commands`] lists in order:
/// - `clear`: delete leftovers under the other slot's names (an earlier re-apply that was
///   interrupted); each may fail with "does not exist";
/// - `build`: create the new policy under the other slot's names and assign it. Only one
///   static IPsec policy can be assigned, so assigning it unassigns the old one in the
///   same step: there is no moment without a policy in force;
/// - `retire`: delete the old, now unassigned, policy and its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reapply {
    /// The slot the new policy goes into (the one not in force before).
    pub slot: Slot,
    /// Deletions of leftovers under the new slot's names; "does not exist" is expected.
    pub clear: Vec<Command>,
    /// Creation and assignment of the new policy under the new slot's names.
    pub build: Vec<Command>,
    /// Deletion of the old slot's policy and objects once the new one is assigned.
    pub retire: Vec<Command>,
}

impl Reapply {
    /// All three phases, in the order they run.
    pub fn commands(&self) -> Vec<Command> {
        self.clear
            .iter()
            .chain(&self.build)
            .chain(&self.retire)
            .cloned()
            .collect()
    }
}

/// The command sequence that replaces the policy in slot `assigned` by `policy` without a
/// gap (see [`Reapply`]).
pub fn render_reapply(table: &TableName, policy: &Policy, assigned: Slot) -> Reapply {
    let slot = assigned.other();
    Reapply {
        slot,
        clear: render_remove_slot(table, slot),
        build: render_build(&Names::for_slot(table, slot), policy),
        retire: render_remove_slot(table, assigned),
    }
}

/// Creates and assigns the policy named by `n`.
fn render_build(n: &Names, policy: &Policy) -> Vec<Command> {
    let mut cmds = vec![
        netsh(&[
            "add",
            "policy",
            &kv("name", &n.policy),
            "description=Network quarantine by Cordon; remove with: cordon release",
            "assign=no",
        ]),
        netsh(&["add", "filterlist", &kv("name", &n.permit_list)]),
        netsh(&["add", "filterlist", &kv("name", &n.block_list)]),
        netsh(&["add", "filteraction", &kv("name", &n.permit_action), "action=permit"]),
        netsh(&["add", "filteraction", &kv("name", &n.block_action), "action=block"]),
    ];
    let permit = |dst: Vec<String>, proto: &str, src_port: u16, dst_port: u16, what: &str| {
        let mut argv = netsh(&["add", "filter", &kv("filterlist", &n.permit_list), "srcaddr=me"]);
        argv.extend(dst);
        argv.push(kv("protocol", proto));
        if proto == "TCP" || proto == "UDP" {
            argv.push(kv("srcport", &src_port.to_string()));
            argv.push(kv("dstport", &dst_port.to_string()));
        }
        argv.push("mirrored=yes".to_string());
        argv.push(kv("description", what));
        argv
    };
    for family in Family::BOTH {
        for d in policy.tcp_destinations(family) {
            cmds.push(permit(
                dst_words(&IpNet::from(d.ip())),
                "TCP",
                0,
                d.port(),
                "allowed tcp destination",
            ));
        }
        for d in policy.udp_destinations(family) {
            cmds.push(permit(
                dst_words(&IpNet::from(d.ip())),
                "UDP",
                0,
                d.port(),
                "allowed udp destination",
            ));
        }
        for net in policy.open_networks(family) {
            cmds.push(permit(dst_words(&net), "ANY", 0, 0, "allowed network"));
        }
    }
    if policy.dhcp {
        // Mirrored filters to the broadcast / DHCPv6 multicast address, link-local
        // (DHCPv6 servers answer from there) and each known server: never to any host.
        for (family, (client, server), what) in [
            (Family::V4, DHCP4_PORTS, "dhcp v4"),
            (Family::V6, DHCP6_PORTS, "dhcp v6"),
        ] {
            let mut peers: Vec<IpNet> = match family {
                Family::V4 => vec![IpNet::from(std::net::IpAddr::from(DHCP4_BROADCAST))],
                Family::V6 => {
                    let mut v = vec![IpNet::from(std::net::IpAddr::from(DHCP6_MULTICAST))];
                    v.extend(LINK_LOCAL6.parse::<IpNet>().ok());
                    v
                }
            };
            peers.extend(policy.dhcp_servers_of(family).into_iter().map(IpNet::from));
            for peer in peers {
                cmds.push(permit(dst_words(&peer), "UDP", client, server, what));
            }
        }
    }
    for nd in ND_NETWORKS {
        // The constants are valid networks; a parse failure would only drop this filter.
        if let Ok(net) = nd.parse::<IpNet>() {
            cmds.push(permit(
                dst_words(&net),
                &PROTO_ICMPV6.to_string(),
                0,
                0,
                "icmpv6 neighbour discovery",
            ));
        }
    }
    cmds.push(netsh(&[
        "add",
        "filter",
        &kv("filterlist", &n.block_list),
        "srcaddr=me",
        "dstaddr=any",
        "protocol=ANY",
        "mirrored=yes",
        "description=block everything else",
    ]));
    cmds.push(netsh(&[
        "add",
        "rule",
        &kv("name", &n.permit_rule),
        &kv("policy", &n.policy),
        &kv("filterlist", &n.permit_list),
        &kv("filteraction", &n.permit_action),
    ]));
    cmds.push(netsh(&[
        "add",
        "rule",
        &kv("name", &n.block_rule),
        &kv("policy", &n.policy),
        &kv("filterlist", &n.block_list),
        &kv("filteraction", &n.block_action),
    ]));
    cmds.push(netsh(&["set", "policy", &kv("name", &n.policy), "assign=y"]));
    cmds
}

/// The commands that remove everything of ours, both slots. Each may fail because its
/// object is already gone; callers run them all and ignore "does not exist".
pub fn render_remove(table: &TableName) -> Vec<Command> {
    Slot::BOTH
        .iter()
        .flat_map(|slot| render_remove_slot(table, *slot))
        .collect()
}

/// The commands that remove the policy of one slot and its objects.
pub fn render_remove_slot(table: &TableName, slot: Slot) -> Vec<Command> {
    let n = Names::for_slot(table, slot);
    vec![
        // Deleting the policy removes its rules and unassigns it.
        netsh(&["delete", "policy", &kv("name", &n.policy)]),
        netsh(&["delete", "filterlist", &kv("name", &n.permit_list)]),
        netsh(&["delete", "filterlist", &kv("name", &n.block_list)]),
        netsh(&["delete", "filteraction", &kv("name", &n.permit_action)]),
        netsh(&["delete", "filteraction", &kv("name", &n.block_action)]),
    ]
}

/// `dstaddr=` (and `dstmask=`) words for a destination network: a single address as is,
/// an IPv4 network with a prefix mask, an IPv6 network as an address range (netsh masks
/// are IPv4 only), the whole family as `any`.
fn dst_words(net: &IpNet) -> Vec<String> {
    if net.prefix_len() == 0 {
        return vec!["dstaddr=any".to_string()];
    }
    if net.prefix_len() == net.max_prefix_len() {
        return vec![kv("dstaddr", &net.addr().to_string())];
    }
    match net {
        IpNet::V4(n) => vec![
            kv("dstaddr", &n.network().to_string()),
            kv("dstmask", &n.prefix_len().to_string()),
        ],
        IpNet::V6(n) => vec![kv("dstaddr", &format!("{}-{}", n.network(), n.broadcast()))],
    }
}

/// Quotes one `key=value` word the way netsh reads it: `key="value with spaces"`.
pub fn quote_word(word: &str) -> String {
    match word.split_once('=') {
        Some((k, v)) if v.contains(|c: char| c.is_whitespace() || c == ';' || c == '"') || v.is_empty() => {
            format!("{k}=\"{}\"", v.replace('"', ""))
        }
        _ => word.to_string(),
    }
}

/// The command line for one command, as a person would type it.
pub fn command_line(cmd: &[String]) -> String {
    cmd.iter().map(|w| quote_word(w)).collect::<Vec<_>>().join(" ")
}

/// Every command as one command line per line, for `--dry-run` and golden files.
pub fn render_text(cmds: &[Command]) -> String {
    cmds.iter().map(|c| command_line(c) + "\n").collect()
}

/// The address a `dstaddr=` word names, when it is one address (tests and inspection).
pub fn dst_addr(cmd: &[String]) -> Option<IpAddr> {
    cmd.iter()
        .find_map(|w| w.strip_prefix("dstaddr="))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_for_default_and_other_tables() {
        assert_eq!(Names::new(&TableName::default()).policy, "Cordon Quarantine");
        assert_eq!(
            Names::new(&TableName::new("lab").unwrap()).policy,
            "Cordon Quarantine lab"
        );
    }

    /// Fault kind: a re-apply that leaves a moment with no policy in force (delete, then
    /// build) or that deletes the policy it just assigned.
    #[test]
    fn reapply_assigns_new_before_deleting_old() {
        let p = Policy::builder().server("192.0.2.1:8443".parse().unwrap()).build();
        let table = TableName::default();
        for assigned in Slot::BOTH {
            let old = Names::for_slot(&table, assigned);
            let new = Names::for_slot(&table, assigned.other());
            assert_ne!(old.policy, new.policy);
            let plan = render_reapply(&table, &p, assigned);
            assert_eq!(plan.slot, assigned.other());
            let cmds = plan.commands();
            let pos = |want: &[&str]| {
                cmds.iter()
                    .position(|c| want.iter().all(|w| c.contains(&w.to_string())))
                    .unwrap()
            };
            let assign_new = pos(&["set", &format!("name={}", new.policy), "assign=y"]);
            let delete_old = pos(&["delete", "policy", &format!("name={}", old.policy)]);
            assert!(assign_new < delete_old);
            // Nothing before the assignment names an object of the policy in force, and
            // nothing after it names an object of the new one.
            let values = |c: &Command| -> Vec<String> {
                c.iter()
                    .filter_map(|w| w.split_once('=').map(|(_, v)| v.to_string()))
                    .collect()
            };
            for c in &cmds[..assign_new] {
                assert!(
                    !values(c).iter().any(|v| objects(&old).contains(v)),
                    "touches the policy in force: {c:?}"
                );
            }
            for c in &cmds[assign_new + 1..] {
                assert!(
                    !values(c).iter().any(|v| objects(&new).contains(v)),
                    "undoes the new policy: {c:?}"
                );
            }
        }
    }

    fn objects(n: &Names) -> Vec<String> {
        vec![
            n.policy.clone(),
            n.permit_list.clone(),
            n.block_list.clone(),
            n.permit_action.clone(),
            n.block_action.clone(),
            n.permit_rule.clone(),
            n.block_rule.clone(),
        ]
    }

    #[test]
    fn remove_knows_both_names() {
        let text = render_text(&render_remove(&TableName::default()));
        assert!(text.contains("delete policy name=\"Cordon Quarantine\"\n"));
        assert!(text.contains("delete policy name=\"Cordon Quarantine (alternate)\"\n"));
    }

    #[test]
    fn quotes_values_with_spaces_only() {
        assert_eq!(quote_word("name=Cordon Quarantine"), "name=\"Cordon Quarantine\"");
        assert_eq!(quote_word("assign=y"), "assign=y");
        assert_eq!(quote_word("ipsec"), "ipsec");
    }

    #[test]
    fn destinations_per_shape() {
        assert_eq!(dst_words(&"192.0.2.1/32".parse().unwrap()), vec!["dstaddr=192.0.2.1"]);
        assert_eq!(
            dst_words(&"198.51.100.0/24".parse().unwrap()),
            vec!["dstaddr=198.51.100.0", "dstmask=24"]
        );
        assert_eq!(
            dst_words(&"2001:db8::/32".parse().unwrap()),
            vec!["dstaddr=2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"]
        );
        assert_eq!(dst_words(&"::/0".parse().unwrap()), vec!["dstaddr=any"]);
    }

    #[test]
    fn apply_ends_with_assign_and_blocks_all() {
        let p = Policy::builder().server("192.0.2.1:8443".parse().unwrap()).build();
        let cmds = render_apply(&TableName::default(), &p);
        let text = render_text(&cmds);
        assert!(text.ends_with("netsh ipsec static set policy name=\"Cordon Quarantine\" assign=y\n"));
        assert!(text.contains("srcaddr=me dstaddr=192.0.2.1 protocol=TCP srcport=0 dstport=8443 mirrored=yes"));
        assert!(text.contains("srcaddr=me dstaddr=any protocol=ANY mirrored=yes"));
    }
}
