//! Break glass (`cordon release --force`): every table Cordon holds anything under on
//! this host is removed from every backend and its claims dropped, whoever made it.
//! Moved here from the binary (issue 13: the binary is argument parsing and printing);
//! the rule for what counts as released is [`stood`], a pure function.

use std::path::Path;

use cordon_firewall::BackendKind;
use cordon_policy::TableName;

use crate::{discover_tables, sort_tables, state, Claim, ClaimSource, Engine, EngineError, StatusReport};

/// What [`release_all`] did.
#[derive(Debug)]
pub struct ForcedRelease {
    /// The tables something of which stood before the release (rules in the kernel, a
    /// record or a claim; see [`stood`]) and was removed. Sorted as [`sort_tables`].
    pub released: Vec<TableName>,
    /// The backends removals were made in, each once, in the order first cleaned.
    pub cleaned: Vec<BackendKind>,
    /// Every table looked at: the name given, those recorded and those marked in the
    /// kernel. Sorted as [`sort_tables`].
    pub checked: Vec<TableName>,
    /// A claim of the enrolled agent was among those dropped (the server may still order
    /// the host quarantined, and a running agent puts its quarantine back).
    pub agent_claim: bool,
    /// Why the kernel could not be searched for tables under other names, when it could
    /// not: then only the recorded tables and the name given were released.
    pub search_failed: Option<EngineError>,
}

/// Whether something of a table stood before a forced release (pure): it was found in
/// the kernel, it has claims, or its status shows a recorded policy or rules in force. A
/// status that cannot be read counts as something (the release is said, not hidden).
pub fn stood(in_kernel: bool, claims: &[Claim], status: Result<&StatusReport, &EngineError>) -> bool {
    in_kernel || !claims.is_empty() || status.map_or(true, |r| r.policy.is_some() || !r.backends_in_force.is_empty())
}

/// Releases every table Cordon holds anything under here ([`discover_tables`]: recorded
/// in `state_dir`, or marked in the kernel) plus `named` (`--table` or the default
/// name): each is removed from every backend ([`Engine::release_everywhere`]) and its
/// claims cleared. `engine_for` builds the engine of one table (state directory,
/// backend, lock wait). If the kernel cannot be searched for marked tables, the recorded
/// tables and `named` are still released and [`ForcedRelease::search_failed`] says why.
///
/// # Errors
/// The first table's error when any table's release or claim clearing fails (the other
/// tables are still released).
pub fn release_all(
    state_dir: &Path,
    named: TableName,
    engine_for: impl Fn(TableName) -> Engine,
) -> Result<ForcedRelease, EngineError> {
    let mut tables = vec![named];
    // Tables found in the kernel are in force by definition.
    let mut in_kernel: Vec<TableName> = Vec::new();
    let mut search_failed = None;
    match discover_tables(state_dir) {
        Ok(found) => {
            in_kernel.clone_from(&found);
            tables.extend(found);
        }
        Err(e) => {
            search_failed = Some(e);
            tables.extend(state::recorded_tables(state_dir).unwrap_or_default());
        }
    }
    sort_tables(&mut tables);
    let mut cleaned: Vec<BackendKind> = Vec::new();
    let mut released: Vec<TableName> = Vec::new();
    let mut first_error = None;
    let mut agent_claim = false;
    for t in &tables {
        let eng = engine_for(t.clone());
        let claims = eng.claims().unwrap_or_default();
        agent_claim |= claims.iter().any(|x| x.source == ClaimSource::Agent);
        let stood = stood(in_kernel.contains(t), &claims, eng.status().as_ref());
        match eng.release_everywhere().and_then(|k| eng.clear_claims().map(|()| k)) {
            Ok(kinds) => {
                if stood {
                    released.push(t.clone());
                }
                for k in kinds {
                    if !cleaned.contains(&k) {
                        cleaned.push(k);
                    }
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(ForcedRelease {
        released,
        cleaned,
        checked: tables,
        agent_claim,
        search_failed,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn report(backends_in_force: Vec<BackendKind>) -> StatusReport {
        StatusReport {
            state: crate::QuarantineState::Released,
            backend: None,
            table: "cordon".into(),
            policy: None,
            verification: None,
            applied_at: None,
            expected_digest: None,
            actual_digest: None,
            digest_matches: false,
            reason: None,
            records_lost: false,
            backends_in_force,
            notes: vec![],
            coverage: Default::default(),
            unrecognised_tables: vec![],
            not_isolated: vec![],
            agent_paths_missing: vec![],
            record_problems: vec![],
            around_seen: vec![],
            acknowledged: vec![],
        }
    }

    /// The fault kind: a forced release naming a table as released when nothing of it
    /// stood (issue 14 LOW), or hiding one whose status could not be read.
    #[test]
    fn a_table_stood_only_when_something_of_it_was_there() {
        let nothing = report(vec![]);
        assert!(!stood(false, &[], Ok(&nothing)));
        assert!(stood(true, &[], Ok(&nothing)), "found in the kernel");
        let in_force = report(vec![BackendKind::Nftables]);
        assert!(stood(false, &[], Ok(&in_force)));
        let unreadable = EngineError::Invalid("cannot read".into());
        assert!(stood(false, &[], Err(&unreadable)), "an unreadable status counts");
    }
}
