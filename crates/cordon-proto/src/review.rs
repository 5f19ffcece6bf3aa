//! What an action's review says about the hosts it reaches beyond the change itself —
//! agents that enforce nothing, protected labels — in one wording for the console's
//! review dialog and the CLI's `quarantine` / `release` output (`--preview` and the
//! action alike), so the CLI never calls "already quarantined" a host the console says
//! blocks nothing, and neither leaves out a protected label the other names (trial30
//! MED-2). Pure: sentences from names the caller has already made safe to show.

use crate::{ActionChange, ActionResult, HostState};

/// The label that protects a host whatever the automation settings say: the console's
/// reviews and the server's action results always count it as protected (the settings'
/// `protected_labels` add others; the migration puts this one there too).
pub const PROTECTED_LABEL: &str = "cordon-protected";

fn hosts(n: usize) -> &'static str {
    if n == 1 {
        "host"
    } else {
        "hosts"
    }
}

/// For hosts the action does not change because the same was already asked, whose agent
/// runs with `enforce = false` (`what`: `quarantine` or `release`): `Not enforcing:
/// quarantine already requested for 2 hosts (ws-05, ws-06); each agent runs with
/// enforce = false and never confirms it: nothing is blocked there, and nothing new is
/// sent.`
pub fn not_enforcing_already_requested(what: &str, names: &[String]) -> String {
    format!(
        "Not enforcing: {what} already requested for {} {} ({}); {} runs with enforce = false and never confirms it: \
         nothing is blocked there, and nothing new is sent.",
        names.len(),
        hosts(names.len()),
        names.join(", "),
        if names.len() == 1 { "its agent" } else { "each agent" }
    )
}

/// For hosts the action does not change because the same was already asked, whose agent
/// reported that it could not apply it (`what`: `quarantine` or `release`; `names` may
/// carry each host's reason): `Failed: quarantine already requested for 1 host (app-07:
/// nft: Operation not permitted), but its agent could not apply it: nothing new is sent,
/// so it stays failed; Retry re-sends it as a new revision.` (trial36 MED-A: such hosts
/// were "already requested, not yet confirmed … stay pending".)
pub fn failed_already_requested(what: &str, names: &[String]) -> String {
    let one = names.len() == 1;
    format!(
        "Failed: {what} already requested for {} {} ({}), but {} could not apply it: nothing new is sent, \
         so {} failed; Retry re-sends it as a new revision.",
        names.len(),
        hosts(names.len()),
        names.join(", "),
        if one { "its agent" } else { "each agent" },
        if one { "it stays" } else { "they stay" }
    )
}

/// For hosts the action does not change whose agent found the quarantine's rules altered
/// or deleted and is repairing them: `Tampered: quarantine already requested for 1 host
/// (db-03); its agent found the rules altered or deleted and is repairing them: nothing
/// new is sent.` (trial36 MED-A: "not yet confirmed" for a confirmed, then altered
/// quarantine.)
pub fn tampered_already_requested(what: &str, names: &[String]) -> String {
    format!(
        "Tampered: {what} already requested for {} {} ({}); {} found the rules altered or deleted and is \
         repairing them: nothing new is sent.",
        names.len(),
        hosts(names.len()),
        names.join(", "),
        if names.len() == 1 { "its agent" } else { "each agent" }
    )
}

/// For hosts carrying the action's label that are revoked while still desired
/// quarantined (`what`: `quarantine` or `release`): the server acts on no revoked host,
/// and no release reaches their agent any more. `Revoked: 1 host with this label is
/// revoked and stays quarantined: web-02 (a488c581) — no release reaches its agent;
/// release it on the host (cordon release --force).` (trial36 LOW-C: a label release left
/// it out without a word.)
pub fn revoked_left_out(what: &str, names: &[String]) -> String {
    let one = names.len() == 1;
    let (verb, after) = if what == "release" {
        (
            "stays quarantined",
            if one {
                "no release reaches its agent; release it on the host (cordon release --force)"
            } else {
                "no release reaches their agents; release each on the host (cordon release --force)"
            },
        )
    } else {
        (
            "is left out",
            "it is still quarantined, and no change reaches its agent",
        )
    };
    let verb = if one {
        verb.to_string()
    } else {
        verb.replace("stays", "stay").replace("is left", "are left")
    };
    let after = if one || what == "release" {
        after.to_string()
    } else {
        "they are still quarantined, and no change reaches their agents".to_string()
    };
    format!(
        "Revoked: {} {} with this label {} revoked and {verb}: {} — {after}.",
        names.len(),
        hosts(names.len()),
        if one { "is" } else { "are" },
        names.join(", ")
    )
}

/// For hosts the action changes whose agent runs with `enforce = false`, with what that
/// means for this action (`consequence`, e.g. [`QUARANTINE_BLOCKS_NOTHING`]): `Not
/// enforcing: the agent of ws-05 runs with enforce = false; a quarantine blocks nothing
/// there.`
pub fn not_enforcing(names: &[String], consequence: &str) -> String {
    // trial36 LOW-D: "the agent of app-07, dc-01, db-03, ws-06 runs" for four hosts.
    let (who, runs) = if names.len() == 1 {
        ("the agent of", "runs")
    } else {
        ("the agents of", "run")
    };
    format!(
        "Not enforcing: {who} {} {runs} with enforce = false; {consequence}.",
        names.join(", ")
    )
}

/// [`not_enforcing`]'s consequence for a quarantine (or an approval, which quarantines).
pub const QUARANTINE_BLOCKS_NOTHING: &str = "a quarantine blocks nothing there";

/// [`not_enforcing`]'s consequence for a release.
pub const RELEASE_CHANGES_NOTHING: &str = "nothing was blocked there, and a release changes nothing on the host";

/// [`not_enforcing`]'s consequence for a retry.
pub const RETRY_CHANGES_NOTHING: &str = "re-sending changes nothing on the host: it blocks nothing";

/// For hosts the action changes that carry a protected label (`labels`: every such label
/// among them, once each): `Protected: 1 host carries a protected label
/// (cordon-protected): ws-10.` Protected labels stop automation only; a person may act,
/// and is told.
pub fn protected(names: &[String], labels: &[String]) -> String {
    format!(
        "Protected: {} {} a protected label ({}): {}.",
        names.len(),
        if names.len() == 1 {
            "host carries"
        } else {
            "hosts carry"
        },
        labels.join(", "),
        names.join(", ")
    )
}

/// [`change_words`] for a host whose agent reported that it could not apply the desired
/// state the action leaves unchanged.
pub const FAILED_WORDS: &str = "FAILED: its agent could not apply it; nothing new is sent (retry re-sends it)";

/// [`change_words`] for a host whose agent reported the quarantine's rules altered or
/// deleted (it repairs them).
pub const TAMPERED_WORDS: &str = "TAMPERED: its agent is repairing the altered rules; nothing new is sent";

/// One host's change in words, for a table's CHANGE column: `new`, `replaced allow,
/// expires_at`, `already quarantined (kept message)` only when its agent confirmed the
/// quarantine, `already requested, not yet confirmed (kept message)` while it has not,
/// `already requested — FAILED: its agent could not apply it; nothing new is sent (retry
/// re-sends it)` when the agent reported a failure, `already requested — TAMPERED: its agent
/// is repairing the altered rules; nothing new is sent` when it reported the rules altered,
/// `already requested — NOT ENFORCING (enforce = false); kept message` for an agent that
/// enforces nothing (a change: ` — NOT ENFORCING (enforce = false)` after it), then
/// `; protected: LABEL` for a protected label. Labels are shown as given: escape them
/// for a terminal (`shown`) before printing.
pub fn change_words(r: &ActionResult) -> String {
    let (kept, also_kept) = if r.fields.is_empty() {
        (String::new(), String::new())
    } else {
        (
            format!(" (kept {})", r.fields.join(", ")),
            format!("; kept {}", r.fields.join(", ")),
        )
    };
    let mut out = match r.change {
        ActionChange::Replaced => format!("replaced {}", r.fields.join(", ")),
        ActionChange::AlreadyQuarantined | ActionChange::Unchanged if r.not_enforcing => {
            format!("already requested — NOT ENFORCING (enforce = false){also_kept}")
        }
        ActionChange::AlreadyQuarantined | ActionChange::Unchanged if r.state == HostState::Failed => {
            format!("already requested — {FAILED_WORDS}{also_kept}")
        }
        ActionChange::AlreadyQuarantined | ActionChange::Unchanged if r.state == HostState::Tampered => {
            format!("already requested — {TAMPERED_WORDS}{also_kept}")
        }
        ActionChange::AlreadyQuarantined | ActionChange::Unchanged if r.state == HostState::Quarantined => {
            format!("already quarantined{kept}")
        }
        ActionChange::AlreadyQuarantined | ActionChange::Unchanged => {
            format!("already requested, not yet confirmed{kept}")
        }
        ActionChange::AlreadyReleased if r.not_enforcing => {
            "release already requested — NOT ENFORCING (enforce = false)".to_string()
        }
        ActionChange::AlreadyReleased if r.state == HostState::Failed => {
            format!("release already requested — {FAILED_WORDS}")
        }
        ActionChange::AlreadyReleased if r.state == HostState::Normal => "already released".into(),
        ActionChange::AlreadyReleased => "release already requested, not yet confirmed".into(),
        c => c.as_str().to_string(),
    };
    if r.not_enforcing && r.change.changed() {
        out.push_str(" — NOT ENFORCING (enforce = false)");
    }
    if !r.protected.is_empty() {
        out.push_str(&format!("; protected: {}", r.protected.join(", ")));
    }
    out
}

/// The review's sentences about `results` of one action (`what`: `quarantine`,
/// `release` or `retry`), naming each host with `name`: [`not_enforcing_already_requested`] for
/// unchanged hosts that enforce nothing, [`failed_already_requested`] and
/// [`tampered_already_requested`] for unchanged failed or tampered ones, [`not_enforcing`]
/// for changed ones, and [`protected`] for changed hosts with a protected label. Empty
/// when none applies.
pub fn notes(what: &str, results: &[ActionResult], name: &dyn Fn(&ActionResult) -> String) -> Vec<String> {
    let names =
        |f: &dyn Fn(&ActionResult) -> bool| -> Vec<String> { results.iter().filter(|r| f(r)).map(name).collect() };
    let mut out = Vec::new();
    let dry_kept = names(&|r| r.not_enforcing && !r.change.changed());
    if !dry_kept.is_empty() {
        out.push(not_enforcing_already_requested(what, &dry_kept));
    }
    let failed = names(&|r| !r.not_enforcing && !r.change.changed() && r.state == HostState::Failed);
    if !failed.is_empty() {
        out.push(failed_already_requested(what, &failed));
    }
    let tampered = names(&|r| !r.not_enforcing && !r.change.changed() && r.state == HostState::Tampered);
    if !tampered.is_empty() {
        out.push(tampered_already_requested(what, &tampered));
    }
    let dry = names(&|r| r.not_enforcing && r.change.changed());
    if !dry.is_empty() {
        let consequence = match what {
            "release" => RELEASE_CHANGES_NOTHING,
            "retry" => RETRY_CHANGES_NOTHING,
            _ => QUARANTINE_BLOCKS_NOTHING,
        };
        out.push(not_enforcing(&dry, consequence));
    }
    let prot = names(&|r| !r.protected.is_empty() && r.change.changed());
    if !prot.is_empty() {
        let mut labels: Vec<String> = results
            .iter()
            .filter(|r| r.change.changed())
            .flat_map(|r| r.protected.clone())
            .collect();
        labels.sort();
        labels.dedup();
        out.push(protected(&prot, &labels));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(
        name: &str,
        change: ActionChange,
        state: HostState,
        not_enforcing: bool,
        protected: &[&str],
    ) -> ActionResult {
        ActionResult {
            host_id: format!("{name}-id"),
            hostname: name.into(),
            state,
            revision: 2,
            change,
            fields: if change == ActionChange::AlreadyQuarantined {
                vec!["message".into(), "expires_at".into()]
            } else {
                vec![]
            },
            other_claims: vec![],
            not_enforcing,
            protected: protected.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// trial30 MED-2: hosts whose agent runs with enforce = false were "already
    /// quarantined (kept message, expires_at)" in the CLI, and a protected label was never
    /// named there.
    #[test]
    fn not_enforcing_hosts_are_never_already_quarantined_and_protected_labels_are_named() {
        let ws05 = result(
            "ws-05",
            ActionChange::AlreadyQuarantined,
            HostState::NotEnforcing,
            true,
            &[],
        );
        assert_eq!(
            change_words(&ws05),
            "already requested — NOT ENFORCING (enforce = false); kept message, expires_at"
        );
        let ws10 = result(
            "ws-10",
            ActionChange::New,
            HostState::QuarantinePending,
            false,
            &[PROTECTED_LABEL],
        );
        assert_eq!(change_words(&ws10), "new; protected: cordon-protected");
        let dc = result("dc-01", ActionChange::New, HostState::QuarantinePending, true, &[]);
        assert_eq!(change_words(&dc), "new — NOT ENFORCING (enforce = false)");
        let pending = result(
            "web-02",
            ActionChange::AlreadyQuarantined,
            HostState::QuarantinePending,
            false,
            &[],
        );
        assert_eq!(
            change_words(&pending),
            "already requested, not yet confirmed (kept message, expires_at)"
        );
        let done = result("web-01", ActionChange::Unchanged, HostState::Quarantined, false, &[]);
        assert_eq!(change_words(&done), "already quarantined");
        let all = [ws05.clone(), ws10, dc, pending, done];
        let notes = notes("quarantine", &all, &|r| r.hostname.clone());
        assert_eq!(
            notes,
            vec![
                "Not enforcing: quarantine already requested for 1 host (ws-05); its agent runs with enforce = false \
                 and never confirms it: nothing is blocked there, and nothing new is sent."
                    .to_string(),
                "Not enforcing: the agent of dc-01 runs with enforce = false; a quarantine blocks nothing there."
                    .to_string(),
                "Protected: 1 host carries a protected label (cordon-protected): ws-10.".to_string(),
            ]
        );
        assert!(super::notes("quarantine", &[], &|r| r.hostname.clone()).is_empty());
        let released = result("ws-05", ActionChange::AlreadyReleased, HostState::Normal, false, &[]);
        assert_eq!(change_words(&released), "already released");
        let asked = result(
            "ws-05",
            ActionChange::AlreadyReleased,
            HostState::ReleasePending,
            false,
            &[],
        );
        assert_eq!(change_words(&asked), "release already requested, not yet confirmed");
    }

    #[test]
    fn not_enforcing_agents_are_counted_in_the_plural() {
        assert_eq!(
            not_enforcing(&["a".into(), "b".into()], QUARANTINE_BLOCKS_NOTHING),
            "Not enforcing: the agents of a, b run with enforce = false; a quarantine blocks nothing there."
        );
        assert_eq!(
            crate::api::capped_list(&["1", "2", "3", "4", "5", "6", "7"]),
            "1, 2, 3, 4, 5 and 2 more"
        );
        assert_eq!(crate::api::capped_list(&["1", "2"]), "1, 2");
    }

    #[test]
    fn revoked_hosts_left_out_of_a_label_action_are_named() {
        assert_eq!(
            revoked_left_out("release", &["web-02 (a488c581)".into()]),
            "Revoked: 1 host with this label is revoked and stays quarantined: web-02 (a488c581) — no release \
             reaches its agent; release it on the host (cordon release --force)."
        );
        assert_eq!(
            revoked_left_out("quarantine", &["a".into(), "b".into()]),
            "Revoked: 2 hosts with this label are revoked and are left out: a, b — they are still quarantined, \
             and no change reaches their agents."
        );
    }

    /// trial36 MED-A: a failed or tampered host the action leaves unchanged was "already
    /// requested, not yet confirmed" (CLI) and "stays pending" (console): it says what is
    /// true now, and what the action does to it (nothing new is sent).
    #[test]
    fn failed_and_tampered_hosts_are_never_called_pending() {
        let app = result(
            "app-07",
            ActionChange::AlreadyQuarantined,
            HostState::Failed,
            false,
            &[],
        );
        assert_eq!(
            change_words(&app),
            "already requested — FAILED: its agent could not apply it; nothing new is sent (retry re-sends it); \
             kept message, expires_at"
        );
        let db = result("db-03", ActionChange::Unchanged, HostState::Tampered, false, &[]);
        assert_eq!(
            change_words(&db),
            "already requested — TAMPERED: its agent is repairing the altered rules; nothing new is sent"
        );
        let rel = result("web-02", ActionChange::AlreadyReleased, HostState::Failed, false, &[]);
        assert_eq!(
            change_words(&rel),
            "release already requested — FAILED: its agent could not apply it; nothing new is sent (retry re-sends it)"
        );
        for w in [change_words(&app), change_words(&db), change_words(&rel)] {
            assert!(!w.contains("not yet confirmed"), "{w}");
        }
        let notes = notes("quarantine", &[app, db], &|r| r.hostname.clone());
        assert_eq!(
            notes,
            vec![
                "Failed: quarantine already requested for 1 host (app-07), but its agent could not apply it: \
                 nothing new is sent, so it stays failed; Retry re-sends it as a new revision."
                    .to_string(),
                "Tampered: quarantine already requested for 1 host (db-03); its agent found the rules altered or \
                 deleted and is repairing them: nothing new is sent."
                    .to_string(),
            ]
        );
    }
}
