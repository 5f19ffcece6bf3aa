//! iptables fallback: `iptables-restore --noflush` / `ip6tables-restore --noflush` into our
//! own chains, jumped to from position 1 of INPUT, OUTPUT and FORWARD. Each family is one
//! atomic commit; if the IPv6 commit fails the IPv4 one is undone, so the host is never
//! left half quarantined.

use cordon_policy::model::Family;
use cordon_policy::render::iptables::{
    chain_name, is_cordon_mark, render_apply, render_remove, Present, CREATED_TABLE_MARK, HOOKS,
};
use cordon_policy::{Policy, TableName};

use crate::{cmd, digest, BackendKind, Firewall, FirewallError, Inspection};

/// The iptables backend for one table name: chains `PREFIX-IN`, `PREFIX-OUT`,
/// `PREFIX-FWD` (see [`cordon_policy::render::iptables::chain_name`]) in the `filter`
/// table of both families.
pub struct Iptables {
    table: TableName,
}

struct Tools {
    save: &'static str,
    restore: &'static str,
    label: &'static str,
}

fn tools(family: Family) -> Tools {
    match family {
        Family::V4 => Tools {
            save: "iptables-save",
            restore: "iptables-restore",
            label: "ipv4",
        },
        Family::V6 => Tools {
            save: "ip6tables-save",
            restore: "ip6tables-restore",
            label: "ipv6",
        },
    }
}

impl Iptables {
    /// Succeeds when `iptables-save`, `iptables-restore`, `ip6tables-save` and
    /// `ip6tables-restore` are all on `PATH`; changes nothing.
    ///
    /// # Errors
    /// [`FirewallError::Unsupported`] naming the first missing program.
    pub fn probe(table: TableName) -> Result<Self, FirewallError> {
        for family in Family::BOTH {
            let t = tools(family);
            for program in [t.save, t.restore] {
                if !cmd::exists(program) {
                    return Err(FirewallError::Unsupported(
                        format!("`{program}` is not installed (apt-get install iptables)").into(),
                    ));
                }
            }
        }
        Ok(Iptables { table })
    }

    fn save(&self, family: Family) -> Result<String, FirewallError> {
        cmd::run(tools(family).save, &["-t", "filter"], None)
    }

    fn restore(&self, family: Family, input: &str) -> Result<(), FirewallError> {
        cmd::run(tools(family).restore, &["--noflush"], Some(input)).map(drop)
    }

    fn remove_family(&self, family: Family) -> Result<(), FirewallError> {
        let present = parse_present(&self.save(family)?, &self.table);
        if present == Present::default() {
            return Ok(());
        }
        self.restore(family, &render_remove(&self.table, &present))?;
        if present.created_table && is_pristine(&self.save(family)?) {
            // We made the table (iptables-nft) and nothing else lives in it: take it away
            // too, so the ruleset is exactly as before the quarantine.
            filter_table::delete(family)?;
        }
        Ok(())
    }

    /// What is present for `family`, and whether applying now creates its filter table
    /// (iptables-nft, table absent): then the marker rule goes in with our chains.
    fn present_for_apply(&self, family: Family, save: &str) -> Present {
        let mut present = parse_present(save, &self.table);
        if !present.created_table && present.chains == [false; 3] && is_nft_variant(save) {
            present.created_table = !filter_table::exists(family);
        }
        present
    }
}

/// The `iptables-save` header names the nf_tables variant (`iptables-nft`), which keeps
/// the rules in nftables tables (`table ip filter`) it creates on first use.
fn is_nft_variant(save: &str) -> bool {
    save.lines().next().is_some_and(|l| l.contains("(nf_tables)"))
}

/// A filter table holding only empty built-in chains with policy ACCEPT: what
/// iptables-nft leaves after our chains are gone.
fn is_pristine(save: &str) -> bool {
    save.lines().map(str::trim_end).all(|l| {
        l.is_empty()
            || l.starts_with('#')
            || l == "*filter"
            || l == "COMMIT"
            || [":INPUT ACCEPT", ":FORWARD ACCEPT", ":OUTPUT ACCEPT"]
                .iter()
                .any(|c| l.starts_with(c))
    })
}

/// The nftables `filter` table of iptables-nft, read and deleted over netlink.
mod filter_table {
    use cordon_policy::model::Family;

    use crate::FirewallError;

    #[cfg(target_os = "linux")]
    const NAME: &str = "filter";

    #[cfg(target_os = "linux")]
    fn nfproto(family: Family) -> u8 {
        match family {
            Family::V4 => crate::netlink::consts::NFPROTO_IPV4,
            Family::V6 => crate::netlink::consts::NFPROTO_IPV6,
        }
    }

    /// Whether `table ip filter` (`ip6 filter`) exists; true when that cannot be read
    /// (then nothing is marked, and nothing of the user's is ever deleted).
    #[cfg(target_os = "linux")]
    pub fn exists(family: Family) -> bool {
        crate::netlink::table_exists(nfproto(family), NAME).unwrap_or(true)
    }

    #[cfg(target_os = "linux")]
    pub fn delete(family: Family) -> Result<(), FirewallError> {
        crate::netlink::delete_table(nfproto(family), NAME)
    }

    /// Whether iptables-nft's `filter` table of either family holds one of our chains.
    #[cfg(target_os = "linux")]
    pub fn has_chains(table: &cordon_policy::TableName) -> Result<bool, FirewallError> {
        use cordon_policy::render::iptables::{chain_name, HOOKS};
        let chains: Vec<String> = HOOKS.iter().map(|(_, suffix)| chain_name(table, suffix)).collect();
        let families = Family::BOTH.map(nfproto);
        crate::netlink::any_chain_exists(&families, NAME, &chains)
    }

    #[cfg(not(target_os = "linux"))]
    pub fn has_chains(_table: &cordon_policy::TableName) -> Result<bool, FirewallError> {
        Ok(true)
    }

    /// Only Linux has iptables-nft.
    #[cfg(not(target_os = "linux"))]
    pub fn exists(_family: Family) -> bool {
        true
    }

    #[cfg(not(target_os = "linux"))]
    pub fn delete(_family: Family) -> Result<(), FirewallError> {
        Ok(())
    }
}

impl Firewall for Iptables {
    fn kind(&self) -> BackendKind {
        BackendKind::Iptables
    }

    fn render(&self, policy: &Policy) -> Result<String, FirewallError> {
        let mut out = String::new();
        for family in Family::BOTH {
            let present = self
                .save(family)
                .map(|s| parse_present(&s, &self.table))
                .unwrap_or_default();
            out.push_str(&format!(
                "# {} | {} --noflush\n",
                tools(family).label,
                tools(family).restore
            ));
            out.push_str(&render_apply(&self.table, policy, family, &present));
        }
        Ok(out)
    }

    fn apply(&self, policy: &Policy) -> Result<(), FirewallError> {
        let v4_before = self.save(Family::V4)?;
        let present4 = self.present_for_apply(Family::V4, &v4_before);
        let present6 = self.present_for_apply(Family::V6, &self.save(Family::V6)?);
        self.restore(Family::V4, &render_apply(&self.table, policy, Family::V4, &present4))?;
        if let Err(e) = self.restore(Family::V6, &render_apply(&self.table, policy, Family::V6, &present6)) {
            // Undo IPv4 so both families stay in the state they had before.
            let undo = if present4 == Present::default() {
                self.remove_family(Family::V4)
            } else {
                self.restore(Family::V4, &restore_previous(&v4_before, &self.table))
            };
            if let Err(undo_err) = undo {
                tracing::error!("rolling back IPv4 rules after IPv6 failure also failed: {undo_err}");
            }
            return Err(e);
        }
        Ok(())
    }

    fn remove(&self) -> Result<(), FirewallError> {
        let v4 = self.remove_family(Family::V4);
        let v6 = self.remove_family(Family::V6);
        v4.and(v6)
    }

    fn inspect(&self) -> Result<Option<Inspection>, FirewallError> {
        let mut listing = String::new();
        let mut any = false;
        for family in Family::BOTH {
            let ours = our_lines(&self.save(family)?, &self.table);
            any |= !ours.is_empty();
            listing.push_str(&format!("# {}\n", tools(family).label));
            for line in ours {
                listing.push_str(&line);
                listing.push('\n');
            }
        }
        Ok(any.then(|| digest::inspection(listing)))
    }
}

/// A plain jump rule of `iptables-save` output from `builtin`: `-A INPUT -j X` (no mark)
/// or `-A INPUT -m comment --comment "C" -j X` (comment `C`). Returns the comment (`None`
/// for none) and the target chain; `None` for any other rule.
fn jump_of<'a>(line: &'a str, builtin: &str) -> Option<(Option<&'a str>, &'a str)> {
    let rest = line
        .trim_end()
        .strip_prefix("-A ")?
        .strip_prefix(builtin)?
        .strip_prefix(' ')?;
    if let Some(target) = rest.strip_prefix("-j ") {
        return (!target.contains(' ')).then_some((None, target));
    }
    let rest = rest.strip_prefix("-m comment --comment ")?;
    let (comment, target) = rest.rsplit_once(" -j ")?;
    if target.contains(' ') {
        return None;
    }
    let comment = comment
        .strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .unwrap_or(comment);
    Some((Some(comment), target))
}

/// Chain triples `P-IN`, `P-OUT`, `P-FWD` in `iptables-save` output that are declared and
/// each jumped to from its built-in chain, with whether every one of those jumps carries
/// Cordon's ownership mark ([`cordon_policy::render::iptables::jump_comment`]) and the
/// state directory the mark names.
fn chain_triples(save: &str) -> Vec<(TableName, bool, Option<std::path::PathBuf>)> {
    let mut out: Vec<(TableName, bool, Option<std::path::PathBuf>)> = Vec::new();
    for line in save.lines() {
        let Some(decl) = line.strip_prefix(':') else { continue };
        let chain = decl.split_whitespace().next().unwrap_or("");
        let Some(prefix) = chain.strip_suffix("-IN") else {
            continue;
        };
        let Ok(table) = TableName::new(&prefix.to_ascii_lowercase()) else {
            continue;
        };
        if out.iter().any(|(t, _, _)| *t == table) {
            continue;
        }
        let mut marked = true;
        let mut dir = None;
        let complete = HOOKS.iter().all(|(builtin, suffix)| {
            let name = chain_name(&table, suffix);
            let jumps: Vec<Option<&str>> = save
                .lines()
                .filter_map(|l| jump_of(l, builtin))
                .filter(|(_, target)| *target == name)
                .map(|(c, _)| c)
                .collect();
            for c in &jumps {
                match c {
                    Some(c) if is_cordon_mark(c) => {
                        if dir.is_none() {
                            dir = cordon_policy::render::record_dir_of_comment(c).map(std::path::PathBuf::from);
                        }
                    }
                    _ => marked = false,
                }
            }
            save.lines().any(|l| l.starts_with(&format!(":{name} "))) && !jumps.is_empty()
        });
        if complete {
            out.push((table, marked, dir));
        }
    }
    out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    out
}

/// Cordon's chains in `iptables-save` output under any table name: a prefix `P` (an
/// uppercased table name) whose three chains `P-IN`, `P-OUT` and `P-FWD` are all declared
/// and each jumped to from its built-in chain with Cordon's ownership mark
/// (`-A INPUT -m comment --comment "cordon quarantine…" -j P-IN`, …). Triples with
/// unmarked jumps are look-alikes ([`lookalike_chain_tables`]): a site's own chains, or
/// Cordon's from before the mark, which only a record of the table makes Cordon's (trial15
/// MED-5). Returns the table names (lowercase), sorted.
pub fn chain_tables(save: &str) -> Vec<TableName> {
    chain_triples(save)
        .into_iter()
        .filter(|(_, m, _)| *m)
        .map(|(t, _, _)| t)
        .collect()
}

/// [`chain_tables`] with the state directory each one's mark names (`None` for the bare
/// marker).
pub fn chain_tables_with_records(save: &str) -> Vec<(TableName, Option<std::path::PathBuf>)> {
    chain_triples(save)
        .into_iter()
        .filter(|(_, m, _)| *m)
        .map(|(t, _, d)| (t, d))
        .collect()
}

/// Chain triples named like Cordon's whose jumps carry no Cordon mark: never taken for
/// Cordon's, never removed on their own; status names them. Sorted.
pub fn lookalike_chain_tables(save: &str) -> Vec<TableName> {
    chain_triples(save)
        .into_iter()
        .filter(|(_, m, _)| !*m)
        .map(|(t, _, _)| t)
        .collect()
}

/// [`lookalike_chain_tables`] of both families now; empty when the iptables tools are not
/// installed. Spawns `iptables-save` / `ip6tables-save`.
///
/// # Errors
/// When a save program fails.
pub fn discover_lookalike_chain_tables() -> Result<Vec<TableName>, FirewallError> {
    discover_in_filter(lookalike_chain_tables)
}

/// Tables whose iptables chains ([`chain_tables`]) exist in either family now; empty
/// when the iptables tools are not installed. Spawns `iptables-save` / `ip6tables-save`.
///
/// # Errors
/// When a save program fails.
pub fn discover_chain_tables() -> Result<Vec<TableName>, FirewallError> {
    discover_in_filter(chain_tables)
}

/// The tables `parse` finds in the `filter` table of both families' `*-save` output,
/// sorted, without repeats. Spawns nothing when no filter table exists in either
/// variant (no chains of ours or look-alikes can exist then; trial17 MED-6: status,
/// release and the agent ran the save tools for this) or the tools are not installed.
fn discover_in_filter(parse: fn(&str) -> Vec<TableName>) -> Result<Vec<TableName>, FirewallError> {
    let mut out: Vec<TableName> = Vec::new();
    if !may_hold_any_chains() {
        return Ok(out);
    }
    for family in Family::BOTH {
        let save = tools(family).save;
        if !cmd::exists(save) {
            return Ok(out);
        }
        for t in parse(&cmd::run(save, &["-t", "filter"], None)?) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(out)
}

/// Whether iptables rules of `table` can exist in this network namespace at all, asked
/// of the kernel without spawning anything (issue #18: the netlink apply path ran
/// `iptables-save` and `ip6tables-save` on every isolate to look for an old iptables
/// quarantine, two processes for an answer that is almost always "none"):
///
/// * iptables-legacy keeps its rules in the x_tables `filter` table, which exists only
///   once loaded: listed in `/proc/net/ip_tables_names` / `ip6_tables_names`;
/// * iptables-nft keeps them in the nftables tables `ip filter` / `ip6 filter`: our
///   chains `P-IN`, `P-OUT`, `P-FWD` are looked up there over netlink.
///
/// True when either could hold our chains, or when the kernel cannot be asked (then the
/// caller looks with `iptables-save`, as before); false only when neither holds them.
pub fn may_hold_chains(table: &TableName) -> bool {
    for names in ["/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"] {
        match std::fs::read_to_string(names) {
            Ok(text) if text.lines().any(|l| l.trim() == "filter") => return true,
            Ok(_) => {}
            // No x_tables in this kernel: no legacy rules can exist.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return true,
        }
    }
    filter_table::has_chains(table).unwrap_or(true)
}

/// Whether iptables rules of any table name can exist here: the legacy `filter` table is
/// loaded, or iptables-nft's `ip filter` / `ip6 filter` table exists. True when that
/// cannot be read.
fn may_hold_any_chains() -> bool {
    for names in ["/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"] {
        match std::fs::read_to_string(names) {
            Ok(text) if text.lines().any(|l| l.trim() == "filter") => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return true,
        }
    }
    Family::BOTH.into_iter().any(filter_table::exists)
}

/// Which of our chains and jumps exist in `iptables-save` output.
pub fn parse_present(save: &str, table: &TableName) -> Present {
    let mut present = Present::default();
    for (i, (builtin, suffix)) in HOOKS.iter().enumerate() {
        let chain = chain_name(table, suffix);
        for (comment, target) in save.lines().filter_map(|l| jump_of(l, builtin)) {
            if target != chain {
                continue;
            }
            match comment {
                None => present.jumps[i] += 1,
                Some(c) => present.marked_jumps[i].push(c.to_string()),
            }
        }
        present.chains[i] = save.lines().any(|l| l.starts_with(&format!(":{chain} ")));
    }
    let input = chain_name(table, HOOKS[0].1);
    present.created_table = save
        .lines()
        .any(|l| l.starts_with(&format!("-A {input} ")) && l.contains(CREATED_TABLE_MARK));
    present
}

/// Our chain declarations, our rules, and each jump with its position in the built-in
/// chain (a jump that is no longer first means another rule now decides before ours).
pub fn our_lines(save: &str, table: &TableName) -> Vec<String> {
    let names: Vec<String> = HOOKS.iter().map(|(_, s)| chain_name(table, s)).collect();
    let mut out = Vec::new();
    let mut position: std::collections::HashMap<&str, usize> = Default::default();
    for line in save.lines() {
        let line = line.trim_end();
        if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap_or("");
            if names.iter().any(|n| n == name) {
                out.push(format!(":{name}"));
            }
            continue;
        }
        let Some(rest) = line.strip_prefix("-A ") else { continue };
        let chain = rest.split_whitespace().next().unwrap_or("");
        let index = position.entry(chain).or_insert(0);
        *index += 1;
        if names.iter().any(|n| n == chain) {
            out.push(line.to_string());
        } else if names.iter().any(|n| rest.ends_with(&format!("-j {n}"))) {
            out.push(format!("{line} (rule {index} of {chain})"));
        }
    }
    out
}

/// Restore input that puts back the previous version of our chains from a saved dump,
/// used only to undo IPv4 when the IPv6 half of an apply fails.
fn restore_previous(save_before: &str, table: &TableName) -> String {
    let lines = our_lines(save_before, table);
    let mut text = String::from("*filter\n");
    for (_, suffix) in HOOKS {
        text.push_str(&format!(":{} - [0:0]\n", chain_name(table, suffix)));
    }
    for line in lines.iter().filter(|l| l.starts_with("-A ") && !l.contains(" (rule ")) {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str("COMMIT\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVE: &str = "# Generated\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:CORDON-IN - [0:0]\n:CORDON-OUT - [0:0]\n:USER - [0:0]\n-A INPUT -s 198.51.100.9/32 -j ACCEPT\n-A INPUT -j CORDON-IN\n\
-A OUTPUT -j CORDON-OUT\n-A OUTPUT -j CORDON-OUT\n-A CORDON-IN -i lo -j ACCEPT\n-A CORDON-IN -j DROP\n-A USER -j RETURN\nCOMMIT\n";

    #[test]
    fn finds_our_chains_and_jumps() {
        let p = parse_present(SAVE, &TableName::default());
        assert_eq!(p.jumps, [1, 2, 0]);
        assert_eq!(p.chains, [true, true, false]);
        assert!(!p.created_table);
        assert_eq!(parse_present("", &TableName::default()), Present::default());
        let marked = SAVE.replace(
            "-A CORDON-IN -i lo",
            "-A CORDON-IN -m comment --comment \"cordon-created-table\"\n-A CORDON-IN -i lo",
        );
        assert!(parse_present(&marked, &TableName::default()).created_table);
    }

    /// Trial15 MED-5, the fault kind "chains taken for Cordon's by their names": a site's
    /// own `SITE-IN/-OUT/-FWD`, jumped to without Cordon's mark, are a look-alike, never
    /// Cordon's; marked jumps make a triple Cordon's and carry its state directory; both
    /// kinds of jump to our chains are deleted by their exact rule.
    #[test]
    fn only_chains_jumped_to_with_cordons_mark_are_cordons() {
        let site = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
:SITE-IN - [0:0]\n:SITE-OUT - [0:0]\n:SITE-FWD - [0:0]\n-A INPUT -j SITE-IN\n-A FORWARD -j SITE-FWD\n\
-A OUTPUT -j SITE-OUT\n-A SITE-IN -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n";
        assert!(chain_tables(site).is_empty(), "{:?}", chain_tables(site));
        assert_eq!(lookalike_chain_tables(site), vec![TableName::new("site").unwrap()]);

        let mark = "cordon quarantine; recorded in /var/lib/x";
        let ours = site
            .replace("SITE", "CORP")
            .replace(" -j CORP-", &format!(" -m comment --comment \"{mark}\" -j CORP-"));
        let both = format!("{site}{ours}");
        assert_eq!(chain_tables(&both), vec![TableName::new("corp").unwrap()]);
        assert_eq!(
            chain_tables_with_records(&both),
            vec![(
                TableName::new("corp").unwrap(),
                Some(std::path::PathBuf::from("/var/lib/x"))
            )]
        );
        assert_eq!(lookalike_chain_tables(&both), vec![TableName::new("site").unwrap()]);

        // An old unmarked jump and a marked one to the same chain: both are removed.
        let corp = TableName::new("corp").unwrap();
        let mixed = ours.replace("-A INPUT -m", "-A INPUT -j CORP-IN\n-A INPUT -m");
        let p = parse_present(&mixed, &corp);
        assert_eq!(p.jumps, [1, 0, 0]);
        assert_eq!(p.marked_jumps[0], vec![mark.to_string()]);
        let remove = render_remove(&corp, &p);
        assert!(remove.contains("-D INPUT -j CORP-IN\n"), "{remove}");
        assert!(
            remove.contains(&format!("-D INPUT -m comment --comment \"{mark}\" -j CORP-IN\n")),
            "{remove}"
        );
        // A rule with a comment that merely mentions a chain is no jump.
        assert!(jump_of("-A INPUT -s 192.0.2.1/32 -j CORP-IN", "INPUT").is_none());
    }

    #[test]
    fn only_an_empty_accepting_filter_table_is_pristine() {
        let empty = "# Generated by iptables-save v1.8.9 (nf_tables) on x\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n# Completed\n";
        assert!(is_nft_variant(empty));
        assert!(is_pristine(empty));
        assert!(!is_pristine(&empty.replace(":INPUT ACCEPT", ":INPUT DROP")));
        assert!(!is_pristine(&empty.replace("COMMIT", "-A INPUT -j ACCEPT\nCOMMIT")));
        assert!(!is_pristine(&empty.replace("COMMIT", ":USER - [0:0]\nCOMMIT")));
        assert!(!is_nft_variant("# Generated by iptables-save v1.8.9 (legacy)\n"));
    }

    #[test]
    fn lists_only_our_lines_with_jump_positions() {
        let lines = our_lines(SAVE, &TableName::default());
        assert_eq!(
            lines,
            vec![
                ":CORDON-IN",
                ":CORDON-OUT",
                "-A INPUT -j CORDON-IN (rule 2 of INPUT)",
                "-A OUTPUT -j CORDON-OUT (rule 1 of OUTPUT)",
                "-A OUTPUT -j CORDON-OUT (rule 2 of OUTPUT)",
                "-A CORDON-IN -i lo -j ACCEPT",
                "-A CORDON-IN -j DROP",
            ]
        );
    }
}
