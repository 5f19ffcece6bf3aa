//! Static IPsec policy through `netsh ipsec static` (`--backend netsh-ipsec`), as
//! Velociraptor's Windows quarantine does it, with two differences: the whole command
//! list is rendered up front from the policy (see `cordon_policy::render::netsh`), and
//! if any command fails the policy is deleted again, so no half-built policy remains.
//!
//! Re-applying while our policy is assigned leaves no gap: the new policy is built under
//! the table's other name ([`render::Slot`]) and assigned, which unassigns the old one in
//! the same step, and only then is the old one deleted. Remove and inspection know both
//! names.
//!
//! Only one static IPsec policy can be in force, and a policy assigned by the domain
//! (Group Policy) overrides a local one. In that case we refuse with
//! [`FirewallError::Unsupported`] instead of assigning a policy that would never apply.

use std::process::Command;

use cordon_policy::render::netsh::{self as render, Names, Slot};
use cordon_policy::{Policy, TableName};

use crate::{cmd, digest, BackendKind, Firewall, FirewallError, Inspection};

/// The `netsh ipsec static` backend for one table name: a local static IPsec policy
/// built only of filter actions `permit` / `block` (no IPsec negotiation), named by
/// [`cordon_policy::render::netsh::Names`].
pub struct NetshIpsec {
    table: TableName,
}

impl NetshIpsec {
    /// Succeeds on Windows when `netsh.exe` is on `PATH`; changes nothing.
    ///
    /// # Errors
    /// [`FirewallError::Unsupported`] on any other OS or without `netsh.exe`.
    pub fn probe(table: TableName) -> Result<Self, FirewallError> {
        if !cfg!(windows) || !cmd::exists("netsh.exe") {
            return Err(FirewallError::Unsupported(
                "`netsh.exe` is not available (Windows only)".into(),
            ));
        }
        Ok(NetshIpsec { table })
    }

    fn check_no_domain_policy(&self) -> Result<(), FirewallError> {
        let out = run(&netsh_words(&["show", "gpoassignedpolicy"]))?;
        match domain_policy(&out.stdout) {
            Some(name) => Err(FirewallError::Unsupported(
                format!(
                    "a domain IPsec policy ({name}) is assigned by Group Policy and overrides any local \
                 policy; use the WFP backend (--backend wfp) instead"
                )
                .into(),
            )),
            None => Ok(()),
        }
    }

    /// Runs every removal command of both slots; objects that do not exist are not an error.
    fn remove_all(&self) -> Result<(), FirewallError> {
        run_tolerant(&render::render_remove(&self.table))
    }

    /// Our policies that exist, each with its `show policy level=verbose` text.
    fn present(&self) -> Result<Vec<(Slot, String)>, FirewallError> {
        let mut found = Vec::new();
        for slot in Slot::BOTH {
            let n = Names::for_slot(&self.table, slot);
            let out = run(&netsh_words(&[
                "show",
                "policy",
                &format!("name={}", n.policy),
                "level=verbose",
            ]))?;
            if !failed(&out) && !not_found(&out.stdout) {
                found.push((slot, out.stdout));
            }
        }
        Ok(found)
    }

    /// Replaces the policy in force in slot `assigned` without a gap (see the module
    /// comment). If building or assigning the new one fails, the new one is deleted and
    /// the old one assigned again, so the previous quarantine stays in force.
    fn reapply(&self, policy: &Policy, assigned: Slot) -> Result<(), FirewallError> {
        let plan = render::render_reapply(&self.table, policy, assigned);
        run_tolerant(&plan.clear)?;
        for c in &plan.build {
            let out = run(c)?;
            if failed(&out) {
                let msg = describe(c, &out);
                if let Err(e) = run_tolerant(&render::render_remove_slot(&self.table, plan.slot)) {
                    tracing::error!("cleaning up after a failed netsh command also failed: {e}");
                }
                let old = Names::for_slot(&self.table, assigned);
                let reassign = netsh_words(&["set", "policy", &format!("name={}", old.policy), "assign=y"]);
                match run(&reassign) {
                    Ok(out) if !failed(&out) => {}
                    Ok(out) => {
                        tracing::error!("re-assigning the previous policy failed: {}", describe(&reassign, &out))
                    }
                    Err(e) => tracing::error!("re-assigning the previous policy failed: {e}"),
                }
                return Err(FirewallError::Rejected(msg.into()));
            }
        }
        // The new policy is in force; a leftover of the old one enforces nothing and is
        // cleared by the next re-apply or by remove.
        if let Err(e) = run_tolerant(&plan.retire) {
            tracing::warn!("the new policy is assigned, but deleting the previous one failed: {e}");
        }
        Ok(())
    }
}

/// Runs every command; an object that does not exist is not an error. Reports the first
/// failure after trying them all.
fn run_tolerant(cmds: &[Vec<String>]) -> Result<(), FirewallError> {
    let mut first_error = None;
    for c in cmds {
        match run(c) {
            Ok(out) if !failed(&out) || not_found(&out.stdout) => {}
            Ok(out) => {
                first_error.get_or_insert_with(|| describe(c, &out));
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    match first_error {
        Some(msg) => Err(FirewallError::Rejected(msg.into())),
        None => Ok(()),
    }
}

impl Firewall for NetshIpsec {
    fn kind(&self) -> BackendKind {
        BackendKind::NetshIpsec
    }

    fn render(&self, policy: &Policy) -> Result<String, FirewallError> {
        Ok(render::render_text(&render::render_apply(&self.table, policy)))
    }

    fn apply(&self, policy: &Policy) -> Result<(), FirewallError> {
        self.check_no_domain_policy()?;
        let present = self.present()?;
        if let Some((slot, _)) = present.iter().find(|(_, text)| is_assigned(text)) {
            return self.reapply(policy, *slot);
        }
        // None of ours is in force: clear unassigned leftovers and build under the
        // primary name.
        self.remove_all()?;
        for c in render::render_apply(&self.table, policy) {
            let out = run(&c)?;
            if failed(&out) {
                let msg = describe(&c, &out);
                if let Err(e) = self.remove_all() {
                    tracing::error!("cleaning up after a failed netsh command also failed: {e}");
                }
                return Err(FirewallError::Rejected(msg.into()));
            }
        }
        Ok(())
    }

    fn remove(&self) -> Result<(), FirewallError> {
        self.remove_all()
    }

    fn inspect(&self) -> Result<Option<Inspection>, FirewallError> {
        let present = self.present()?;
        // The assigned one is what is in force; an unassigned leftover only if none is.
        let Some((slot, shown)) = present
            .iter()
            .find(|(_, text)| is_assigned(text))
            .or_else(|| present.first())
        else {
            return Ok(None);
        };
        let n = Names::for_slot(&self.table, *slot);
        let mut text = normalize(shown);
        for list in [&n.permit_list, &n.block_list] {
            let out = run(&netsh_words(&[
                "show",
                "filterlist",
                &format!("name={list}"),
                "level=verbose",
            ]))?;
            text.push_str(&normalize(&out.stdout));
        }
        Ok(Some(digest::inspection(text)))
    }
}

/// True when `netsh ipsec static show policy level=verbose` output says the policy is
/// assigned (`Assigned : YES`).
pub fn is_assigned(text: &str) -> bool {
    text.lines().any(|line| {
        line.split_once(':')
            .is_some_and(|(k, v)| k.trim().eq_ignore_ascii_case("assigned") && v.trim().eq_ignore_ascii_case("yes"))
    })
}

fn netsh_words(words: &[&str]) -> Vec<String> {
    ["netsh", "ipsec", "static"]
        .iter()
        .chain(words)
        .map(|w| w.to_string())
        .collect()
}

/// What one netsh run printed.
pub struct Output {
    /// The exit status was 0 (netsh also exits 0 after some errors: see [`failed`]).
    pub success: bool,
    /// Everything netsh printed (stdout, then stderr), decoded lossily as UTF-8.
    pub stdout: String,
}

/// Runs one rendered command. On Windows the words are passed verbatim in netsh's own
/// quoting (`name="Cordon Quarantine"`), which Rust's argument quoting would mangle.
fn run(argv: &[String]) -> Result<Output, FirewallError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(FirewallError::Rejected("empty command".into()));
    };
    let mut command = Command::new(program);
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        for a in args {
            command.raw_arg(render::quote_word(a));
        }
    }
    #[cfg(not(windows))]
    command.args(args);
    let (success, stdout) = crate::cmd::run_combined(&mut command, program)?;
    Ok(Output { success, stdout })
}

/// netsh sometimes exits 0 after printing an error, so the text is checked too.
pub fn failed(out: &Output) -> bool {
    !out.success || has_error_line(&out.stdout)
}

/// True when netsh printed an error line (`ERR[05072] ...`, `Error ...`).
pub fn has_error_line(text: &str) -> bool {
    text.lines()
        .map(str::trim_start)
        .any(|l| l.starts_with("ERR") || l.starts_with("Error") || l.starts_with("The following command was not found"))
}

/// True when the error is only that the object does not exist.
pub fn not_found(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("does not exist") || lower.contains("not found") || lower.contains("no policies")
}

fn describe(c: &[String], out: &Output) -> String {
    format!("`{}` failed: {}", render::command_line(c), out.stdout.trim())
}

/// Drops the lines that change without a change of rules (modification times).
pub fn normalize(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.trim_start().starts_with("Last Modified"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The name of the IPsec policy assigned by Active Directory, from the output of
/// `netsh ipsec static show gpoassignedpolicy` (or `show all`, which has the same
/// fields), or `None` when only local policy applies.
pub fn domain_policy(text: &str) -> Option<String> {
    let mut name = None;
    let mut overriding = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase();
        let value = value.trim();
        if key == "ad ipsec policy name" || key == "ad policy name" {
            if !value.is_empty() && !value.eq_ignore_ascii_case("none") {
                name = Some(value.to_string());
            }
        } else if key.starts_with("local ipsec policy assigned")
            && value.to_ascii_lowercase().contains("ad policy is overriding")
        {
            overriding = true;
        }
    }
    match (name, overriding) {
        (Some(n), _) => Some(n),
        (None, true) => Some("unnamed domain policy".to_string()),
        (None, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `netsh ipsec static show gpoassignedpolicy` on a domain member with a GPO IPsec
    /// policy (captured shape, names replaced).
    const DOMAIN: &str = "
Source Machine          : Local Computer GPO for <WS01>
GPO Name                : Local Group Policy
Local IPsec Policy Name : NONE
AD IPsec Policy Name    : Corp Server Isolation
AD Policy DN            : LDAP://CN=ipsecPolicy{6a1f...},CN=IP Security,CN=System,DC=corp,DC=example
Local IPsec Policy Assigned: Yes, but AD Policy is Overriding
";

    /// The same command on a stand-alone machine.
    const LOCAL: &str = "
Source Machine          : Local Computer GPO for <WS02>
GPO Name                : Local Group Policy
Local IPsec Policy Name : NONE
AD IPsec Policy Name    : NONE
Local IPsec Policy Assigned: No
";

    #[test]
    fn detects_domain_policy() {
        assert_eq!(domain_policy(DOMAIN).as_deref(), Some("Corp Server Isolation"));
        assert_eq!(domain_policy(LOCAL), None);
        assert_eq!(domain_policy(""), None);
        let only_flag = "Local IPsec Policy Assigned: Yes, but AD Policy is Overriding\n";
        assert!(domain_policy(only_flag).is_some());
    }

    #[test]
    fn error_detection() {
        assert!(has_error_line(
            "ERR[05072] : Policy with name \"Cordon Quarantine\" does not exist.\n"
        ));
        assert!(not_found(
            "ERR[05072] : Policy with name \"Cordon Quarantine\" does not exist.\n"
        ));
        assert!(!has_error_line("Ok.\n"));
        assert!(failed(&Output {
            success: false,
            stdout: String::new()
        }));
        assert!(!failed(&Output {
            success: true,
            stdout: String::new()
        }));
    }

    #[test]
    fn assigned_is_read_from_show_policy() {
        let t = "Policy Name : Cordon Quarantine\nLast Modified : 5/1/2026 10:00:01 AM\nAssigned : YES\n";
        assert!(is_assigned(t));
        assert!(!is_assigned("Policy Name : Cordon Quarantine\nAssigned : NO\n"));
        assert!(!is_assigned("Policy Name : Assigned\n"));
    }

    #[test]
    fn normalize_drops_times() {
        let t = "Policy Name : Cordon Quarantine  \nLast Modified : 5/1/2026 10:00:01 AM\n\nAssigned : YES\n";
        assert_eq!(normalize(t), "Policy Name : Cordon Quarantine\nAssigned : YES\n");
    }
}
