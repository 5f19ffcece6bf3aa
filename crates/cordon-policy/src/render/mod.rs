//! Rendering a [`crate::Policy`] into each firewall's own language. Every function here is
//! pure: same policy in, same bytes out, so golden files can pin them down.

pub mod iptables;
pub mod netdev;
pub mod netsh;
pub mod nft;
pub mod pf;
pub mod wfp;

/// The comment on every nftables table Cordon creates (`inet` and `netdev`): its
/// ownership marker. `cordon status`, `cordon release --force` and the package's removal
/// check find Cordon's tables under any `--table` name by it, even when the state file is
/// lost. Kept in the kernel as the table's user data (`NFTA_TABLE_USERDATA`, the TLV
/// `nft` writes for `comment`).
pub const TABLE_COMMENT: &str = "cordon quarantine";

/// What follows [`TABLE_COMMENT`] in the comment when the table names the state directory
/// that records it ([`crate::Policy::record_dir`]).
pub const RECORDED_IN: &str = "; recorded in ";

/// The longest state directory path a table comment carries, in bytes: nft keeps a table's
/// user data in one TLV of at most 255 bytes (marker, [`RECORDED_IN`] and the NUL included).
pub const MAX_RECORD_DIR: usize = 200;

/// Whether `dir` can be carried in a table comment: absolute, at most [`MAX_RECORD_DIR`]
/// bytes, and free of the characters nft's comment syntax cannot hold (`"`, `\`, control
/// characters).
pub fn record_dir_fits(dir: &str) -> bool {
    dir.starts_with('/') && dir.len() <= MAX_RECORD_DIR && !dir.chars().any(|c| c == '"' || c == '\\' || c.is_control())
}

/// What follows [`TABLE_COMMENT`] in the comment when the table names who holds the
/// claims it serves ([`crate::Policy::claimed_by`]), before [`RECORDED_IN`]:
/// `cordon quarantine; claimed by agent:HOSTID,wazuh; recorded in DIR`.
pub const CLAIMED_BY: &str = "; claimed by ";

/// The longest comment Cordon writes, in bytes (nft's table user data TLV and iptables'
/// comment both hold 255 with the NUL; one byte spare).
pub const MAX_COMMENT: usize = 253;

/// Whether `token` can be carried as one claim holder in a comment: 1 to 80 bytes of
/// lowercase ASCII letters, digits, `-`, `_`, `.`, with at most one `:` (source:owner).
pub fn claim_token_fits(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 80
        && token.matches(':').count() <= 1
        && token
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.' | ':'))
}

/// The comment on Cordon's nftables tables (and iptables jumps) for `policy`:
/// [`TABLE_COMMENT`]; then [`CLAIMED_BY`] and the claim holders when the policy names any
/// ([`crate::Policy::claimed_by`]); then [`RECORDED_IN`] and the state directory when the
/// policy names one that fits ([`record_dir_fits`]). Within [`MAX_COMMENT`] bytes: the
/// state directory is kept first; holders that do not fit lose their owner (`agent:ID` →
/// `agent`), and the whole holders part goes when even that does not fit.
pub fn table_comment(policy: &crate::Policy) -> String {
    let dir = match policy.record_dir.as_deref().filter(|d| record_dir_fits(d)) {
        Some(dir) => format!("{RECORDED_IN}{dir}"),
        None => String::new(),
    };
    let tokens: Vec<&str> = policy
        .claimed_by
        .iter()
        .map(String::as_str)
        .filter(|t| claim_token_fits(t))
        .collect();
    let mut claimed = String::new();
    if !tokens.is_empty() {
        let full = format!("{CLAIMED_BY}{}", tokens.join(","));
        let mut bare: Vec<&str> = tokens.iter().map(|t| t.split(':').next().unwrap_or(t)).collect();
        bare.dedup();
        let short = format!("{CLAIMED_BY}{}", bare.join(","));
        for c in [full, short] {
            if TABLE_COMMENT.len() + c.len() + dir.len() <= MAX_COMMENT {
                claimed = c;
                break;
            }
        }
    }
    format!("{TABLE_COMMENT}{claimed}{dir}")
}

/// The part of a Cordon comment after the marker and the holders part, if any.
fn after_claimed(comment: &str) -> Option<&str> {
    let rest = comment.strip_prefix(TABLE_COMMENT)?;
    match rest.strip_prefix(CLAIMED_BY) {
        Some(r) => Some(r.find(';').map(|i| &r[i..]).unwrap_or("")),
        None => Some(rest),
    }
}

/// The state directory a table comment names (see [`table_comment`]); `None` for the bare
/// marker or any other comment.
pub fn record_dir_of_comment(comment: &str) -> Option<&str> {
    after_claimed(comment)?
        .strip_prefix(RECORDED_IN)
        .filter(|d| record_dir_fits(d))
}

/// The claim holders a table comment names (see [`table_comment`]: `agent:HOSTID`,
/// `wazuh`, …); `None` when the comment is not Cordon's or names none (the bare marker,
/// a table made before holders were recorded, or holders that did not fit).
pub fn claimants_of_comment(comment: &str) -> Option<Vec<String>> {
    let r = comment.strip_prefix(TABLE_COMMENT)?.strip_prefix(CLAIMED_BY)?;
    let list = r.split(';').next().unwrap_or("");
    let tokens: Vec<String> = list
        .split(',')
        .filter(|t| claim_token_fits(t))
        .map(str::to_string)
        .collect();
    (!tokens.is_empty()).then_some(tokens)
}

/// ICMPv6 types kept open so IPv6 keeps working on the link (design §3 point 5):
/// router solicitation/advertisement (133, 134) and neighbour solicitation/advertisement
/// (135, 136), RFC 4861 §4.
pub const ICMPV6_ND_TYPES: [u8; 4] = [133, 134, 135, 136];

/// DHCPv4 ports as (client, server): 68 and 67 (RFC 2131 §4.1).
pub const DHCP4_PORTS: (u16, u16) = (68, 67);
/// DHCPv6 ports as (client, server): 546 and 547 (RFC 8415 §7.2).
pub const DHCP6_PORTS: (u16, u16) = (546, 547);

/// ICMP error messages accepted when they quote a connection the policy allows (design §3
/// point 5: path MTU discovery needs "fragmentation needed" from whichever router has the
/// small MTU): type number and nftables name. Redirect and source quench, which conntrack
/// also calls related, are not among them.
pub const ICMP4_ERROR_TYPES: [(u8, &str); 3] = [
    (3, "destination-unreachable"),
    (11, "time-exceeded"),
    (12, "parameter-problem"),
];

/// ICMPv6 error messages (RFC 4443 §3) accepted under the same rule; "packet too big" is
/// what IPv6 path MTU discovery depends on.
pub const ICMP6_ERROR_TYPES: [(u8, &str); 4] = [
    (1, "destination-unreachable"),
    (2, "packet-too-big"),
    (3, "time-exceeded"),
    (4, "parameter-problem"),
];

/// Where a DHCPv4 client may send without knowing its server (RFC 2131 §4.1).
pub const DHCP4_BROADCAST: std::net::Ipv4Addr = std::net::Ipv4Addr::BROADCAST;

/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1): where a DHCPv6 client sends.
pub const DHCP6_MULTICAST: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// DHCPv6 servers and relays on the link answer from their link-local address (RFC 8415
/// §18.3): replies from `fe80::/10` are accepted as well as from the known servers.
/// Link-local sources cannot be routed, so this is no channel beyond the link.
pub const LINK_LOCAL6: &str = "fe80::/10";

#[cfg(test)]
mod comment_tests {
    use super::*;

    /// The state directory carried in the table comment reads back as itself; what cannot
    /// be carried (relative, too long, a quote) leaves the bare marker.
    #[test]
    fn the_table_comment_names_the_record_dir_and_reads_back() {
        let mut p = crate::Policy::default();
        assert_eq!(table_comment(&p), TABLE_COMMENT);
        p.record_dir = Some("/var/lib/cordon".into());
        let c = table_comment(&p);
        assert_eq!(c, "cordon quarantine; recorded in /var/lib/cordon");
        assert_eq!(record_dir_of_comment(&c), Some("/var/lib/cordon"));
        assert_eq!(record_dir_of_comment(TABLE_COMMENT), None);
        assert_eq!(record_dir_of_comment("someone else; recorded in /x"), None);
        for bad in ["relative/dir", "/a\"b", &format!("/{}", "d".repeat(MAX_RECORD_DIR))] {
            p.record_dir = Some(bad.to_string());
            assert_eq!(table_comment(&p), TABLE_COMMENT, "{bad:?}");
        }
        assert!(
            table_comment(&crate::Policy {
                record_dir: Some(format!("/{}", "d".repeat(MAX_RECORD_DIR - 1))),
                ..Default::default()
            })
            .len()
                < 254
        );
    }

    /// Trial20 HIGH-B: the claim holders ride in the comment before the state directory,
    /// read back as themselves, never hide the directory, and give way (owner first, then
    /// entirely) when the comment would be too long.
    #[test]
    fn the_table_comment_names_the_claim_holders_and_reads_back() {
        let mut p = crate::Policy {
            record_dir: Some("/var/lib/cordon".into()),
            claimed_by: vec!["agent:1f0e-ab".into(), "wazuh".into()],
            ..Default::default()
        };
        let c = table_comment(&p);
        assert_eq!(
            c,
            "cordon quarantine; claimed by agent:1f0e-ab,wazuh; recorded in /var/lib/cordon"
        );
        assert_eq!(record_dir_of_comment(&c), Some("/var/lib/cordon"));
        assert_eq!(
            claimants_of_comment(&c),
            Some(vec!["agent:1f0e-ab".to_string(), "wazuh".to_string()])
        );
        assert_eq!(claimants_of_comment("cordon quarantine; recorded in /x"), None);
        assert_eq!(claimants_of_comment(TABLE_COMMENT), None);
        p.record_dir = None;
        let c = table_comment(&p);
        assert_eq!(c, "cordon quarantine; claimed by agent:1f0e-ab,wazuh");
        assert_eq!(record_dir_of_comment(&c), None);
        assert_eq!(claimants_of_comment(&c).map(|v| v.len()), Some(2));
        // A long directory keeps its place; the owner goes first, then the holders.
        p.record_dir = Some(format!("/{}", "d".repeat(169)));
        p.claimed_by = vec![format!("agent:{}", "0".repeat(36)), "wazuh".into()];
        let c = table_comment(&p);
        assert!(c.len() <= MAX_COMMENT, "{}", c.len());
        assert_eq!(
            claimants_of_comment(&c),
            Some(vec!["agent".to_string(), "wazuh".to_string()])
        );
        assert!(record_dir_of_comment(&c).is_some());
        p.record_dir = Some(format!("/{}", "d".repeat(MAX_RECORD_DIR - 1)));
        p.claimed_by = vec!["wazuh".into(), "velociraptor".into(), "agent".into(), "local".into()];
        let c = table_comment(&p);
        assert!(c.len() <= MAX_COMMENT && claimants_of_comment(&c).is_none(), "{c}");
        assert!(record_dir_of_comment(&c).is_some());
        // Tokens a comment cannot hold are left out.
        p.record_dir = None;
        p.claimed_by = vec!["Agent\"x".into(), "local".into()];
        assert_eq!(table_comment(&p), "cordon quarantine; claimed by local");
    }
}
