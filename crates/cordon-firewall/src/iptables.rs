//! iptables fallback: `iptables-restore --noflush` / `ip6tables-restore --noflush` into our
//! own chains, jumped to from position 1 of INPUT, OUTPUT and FORWARD. Each family is one
//! atomic commit; if the IPv6 commit fails the IPv4 one is undone, so the host is never
//! left half quarantined.

use cordon_policy::model::Family;
use cordon_policy::render::iptables::{chain_name, render_apply, render_remove, Present, HOOKS};
use cordon_policy::{Policy, TableName};

use crate::{cmd, digest, BackendKind, Firewall, FirewallError, Inspection};

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
    pub fn probe(table: TableName) -> Result<Self, FirewallError> {
        for family in Family::BOTH {
            let t = tools(family);
            for program in [t.save, t.restore] {
                if !cmd::exists(program) {
                    return Err(FirewallError::Unsupported(format!(
                        "`{program}` is not installed (apt-get install iptables)"
                    )));
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
        self.restore(family, &render_remove(&self.table, &present))
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
        let present4 = parse_present(&v4_before, &self.table);
        let present6 = parse_present(&self.save(Family::V6)?, &self.table);
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

/// Which of our chains and jumps exist in `iptables-save` output.
pub fn parse_present(save: &str, table: &TableName) -> Present {
    let mut present = Present::default();
    for (i, (builtin, suffix)) in HOOKS.iter().enumerate() {
        let chain = chain_name(table, suffix);
        let jump = format!("-A {builtin} -j {chain}");
        present.jumps[i] = save.lines().filter(|l| l.trim_end() == jump).count();
        present.chains[i] = save.lines().any(|l| l.starts_with(&format!(":{chain} ")));
    }
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
        assert_eq!(parse_present("", &TableName::default()), Present::default());
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
