//! Agent status reports: move the host's reported state and audit transitions.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use cordon_proto::{AgentState, ClaimInfo, ClaimSource, Host, HostState, StatusReport};
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::audit::{append_many, NewAudit};
use super::hosts::{load_many_tx, marks, IDS_PER_STATEMENT};
use super::outbox::NoticeFacts;
use super::{get_i64, get_opt_i64, get_opt_str, get_str, to_json_list, Store, StoreError, Tx};
use crate::limits::{agent_audit, AgentAuditWindow, AGENT_AUDIT_PER_WINDOW, AGENT_AUDIT_WINDOW_MS};
use crate::timefmt::{now_ms, to_rfc3339};

/// What one agent report means for the host: a pure function of the host as stored and
/// the report (design §2, effect not dispatch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assessment {
    pub state: HostState,
    pub reason: Option<String>,
    /// Exceptions of the desired quarantine not in force (only while `Quarantined`).
    pub degraded: Vec<String>,
    /// The last revision confirmed in force after this report.
    pub applied: i64,
    /// The report confirms the desired revision in force (or, for `NotEnforcing`, that
    /// the agent took it but enforces nothing): announce it once per revision.
    pub confirms: bool,
}

/// The claims other than the agent's own on host `host_id`, as `wazuh since T, local
/// since T`; a previous enrollment's `agent` claim (trial20 HIGH-C) as `agent of a
/// previous enrollment (host id X) since T`.
fn other_claims(host_id: &str, r: &StatusReport) -> Vec<String> {
    r.claims
        .iter()
        .filter(|c| !c.is_own_agent_claim(host_id))
        .map(|c| {
            let who = if c.is_previous_enrollment(host_id) {
                format!(
                    "agent of a previous enrollment (host id {})",
                    c.owner.as_deref().unwrap_or("unknown")
                )
            } else {
                c.source.to_string()
            };
            match &c.since {
                Some(t) => format!("{who} since {t}"),
                None => who,
            }
        })
        .collect()
}

/// How the servers the agent's own claim keeps allowed changed between the claims
/// stored and the ones reported (`added tcp://…; removed tcp://…`), or `None` when they
/// did not (or either side has no agent claim). Whoever answers the server name on the
/// endpoint may try to widen this set (trial17 MED-3); every change is audited
/// (`servers_changed`). Pure.
pub(crate) fn servers_change(stored: &[ClaimInfo], reported: &[ClaimInfo]) -> Option<String> {
    let of = |c: &[ClaimInfo]| -> Option<BTreeSet<String>> {
        c.iter()
            .find(|c| c.source == ClaimSource::Agent)
            .map(|c| c.servers.iter().cloned().collect())
    };
    let (old, new) = (of(stored)?, of(reported)?);
    if old == new {
        return None;
    }
    let added: Vec<&str> = new.difference(&old).map(String::as_str).collect();
    let removed: Vec<&str> = old.difference(&new).map(String::as_str).collect();
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!("added {}", added.join(", ")));
    }
    if !removed.is_empty() {
        parts.push(format!("removed {}", removed.join(", ")));
    }
    Some(format!(
        "the servers the agent's quarantine allows changed: {}",
        parts.join("; ")
    ))
}

/// The hint for a host isolated by claims its own release did not lift: a previous
/// enrollment's `agent` claim is lifted by a release of this host that names it (one
/// ordered while this server does not want that enrollment quarantined:
/// `store::actions::liftable_previous_tx`), or on the host.
fn release_hint(host_id: &str, r: &StatusReport) -> &'static str {
    if r.claims.iter().any(|c| c.is_previous_enrollment(host_id)) {
        " — a previous enrollment's claim is lifted by a release of this host through the Cordon server (`cordon release` this host; a previous enrollment this server still wants quarantined is released first, as that host), or on the host (stop the agent, then `cordon release --source agent`)"
    } else {
        ""
    }
}

/// The host state a report implies, given the desired state it answers. Only a report
/// about the current desired revision that says its rules are in force confirms
/// anything; `applied_revision` never names a revision whose rules are not in force.
pub(crate) fn assess(host: &Host, r: &StatusReport) -> Assessment {
    let (desired_q, desired_rev) = (host.desired.quarantined, host.desired.revision);
    let keep = Assessment {
        state: host.state,
        reason: host.state_reason.clone(),
        degraded: host.degraded.clone(),
        applied: host.applied_revision,
        confirms: false,
    };
    let detail = || {
        Some(
            r.detail
                .clone()
                .or_else(|| r.error.clone())
                .unwrap_or_else(|| r.state.as_str().to_string()),
        )
    };
    // Exactly the desired revision: a higher one is another enrollment's or from before a
    // database restore, and confirms nothing (trial6 HIGH 1).
    let current = r.applied_revision == desired_rev;
    // The agent's own claim in force (its report lists every claim; tables present only
    // because of other sources' claims confirm no server quarantine). Reports without
    // claims (agents before claims existed) are taken at their word.
    let own_claim = r.claims.is_empty() || r.claims.iter().any(|c| c.is_own_agent_claim(&host.id));
    match r.state {
        // Tampering is reported whatever revision it concerns; nothing is confirmed.
        AgentState::Tampered => Assessment {
            state: HostState::Tampered,
            reason: detail(),
            degraded: vec![],
            ..keep
        },
        AgentState::Failed if current => Assessment {
            state: HostState::Failed,
            reason: detail(),
            degraded: vec![],
            ..keep
        },
        AgentState::Failed => keep,
        // An older revision in force: the agent has not taken the current one yet. It
        // says which revision's rules are in force, unless it enforces nothing, and what
        // it is waiting for while it applies the current one (a lock another process
        // holds: issue 14 MED-1, a pending state without a reason for up to 60 s).
        AgentState::Isolated | AgentState::Released if !current => Assessment {
            applied: if r.enforces() && r.applied_revision < desired_rev {
                r.applied_revision.max(0)
            } else {
                host.applied_revision
            },
            reason: match &r.waiting {
                Some(w) if w.revision == desired_rev => Some(w.sentence()),
                _ => keep.reason.clone(),
            },
            ..keep
        },
        // Never less than is true: other sources' claims may hold the host isolated.
        AgentState::Isolated if desired_q && !r.enforces() => Assessment {
            state: HostState::NotEnforcing,
            reason: Some(match other_claims(&host.id, r).as_slice() {
                [] => "the agent runs with enforce = false: no rules are in force on the host".into(),
                others => format!(
                    "the agent runs with enforce = false: the server's quarantine is not in force; \
                     the host is isolated by other claims: {}",
                    others.join(", ")
                ),
            }),
            degraded: vec![],
            applied: host.applied_revision,
            confirms: true,
        },
        AgentState::Isolated if desired_q && !own_claim => Assessment {
            state: HostState::QuarantinePending,
            reason: Some(format!(
                "the agent has not applied the quarantine yet; the host is isolated by other claims: {}",
                other_claims(&host.id, r).join(", ")
            )),
            degraded: vec![],
            ..keep
        },
        AgentState::Isolated if desired_q => Assessment {
            state: HostState::Quarantined,
            // What the agent had to say besides (e.g. that the server's desired state
            // went back: a restored database, issue 14), then what is missing.
            reason: match (r.detail.as_deref(), r.degraded.is_empty()) {
                (None, true) => None,
                (None, false) => Some(format!("degraded: {}", r.degraded.join("; "))),
                (Some(d), true) => Some(d.to_string()),
                (Some(d), false) => Some(format!("{d}; degraded: {}", r.degraded.join("; "))),
            },
            degraded: r.degraded.clone(),
            applied: desired_rev,
            confirms: true,
        },
        AgentState::Released if !desired_q => Assessment {
            state: HostState::Normal,
            // What the agent had to do besides (e.g. `stopped unresponsive holder pid N`):
            // shown with the state and in the audit record.
            reason: r.detail.clone(),
            degraded: vec![],
            applied: desired_rev,
            confirms: true,
        },
        // The server's release is in force (the agent's claim is gone), but other
        // sources' claims keep the host isolated: the agent never undoes those.
        // A previous enrollment's `agent` claim is such a claim too (trial20 LOW: the
        // new enrollment was shown `release_pending` though nothing was ordered).
        AgentState::Isolated if !r.claims.is_empty() && r.claims.iter().all(|c| !c.is_own_agent_claim(&host.id)) => {
            Assessment {
                state: HostState::Normal,
                reason: Some(format!(
                    "no quarantine of the server in force; still isolated by other claims: {}{}",
                    other_claims(&host.id, r).join(", "),
                    release_hint(&host.id, r)
                )),
                degraded: vec![],
                applied: desired_rev,
                confirms: true,
            }
        }
        AgentState::Isolated => Assessment {
            state: HostState::ReleasePending,
            reason: r.detail.clone(),
            degraded: vec![],
            ..keep
        },
        // The agent says nothing is in force for a quarantine revision: not confirmed.
        AgentState::Released => Assessment {
            state: HostState::QuarantinePending,
            reason: None,
            degraded: vec![],
            ..keep
        },
    }
}

/// One queued report and where its result goes.
pub(crate) struct Job {
    host_id: String,
    report: StatusReport,
    done: oneshot::Sender<Result<HostState, StoreError>>,
}

pub(crate) type ReportQueue = mpsc::UnboundedSender<Job>;

/// Most reports committed in one transaction.
const MAX_BATCH: usize = 512;

/// Commits reports in batches: with thousands of agents acknowledging one bulk action,
/// one transaction (one fsync) per batch instead of per report. Each report still gets
/// its own result, and a state change and its audit record are in the same transaction.
async fn batch_loop(pool: AnyPool, write: Arc<Mutex<()>>, mark: super::Marks, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        match commit_batch(&pool, &write, &mark, &batch).await {
            Ok(results) => {
                for (job, r) in batch.into_iter().zip(results) {
                    let _ = job.done.send(r);
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), reports = batch.len(), "status batch failed");
                let e = std::sync::Arc::new(e);
                for job in batch {
                    let _ = job.done.send(Err(StoreError::Report(e.clone())));
                }
            }
        }
    }
}

/// Commits `batch` in one transaction, set-based (issue 15): the batch's hosts are read
/// with a fixed number of statements per [`IDS_PER_STATEMENT`] hosts, the first
/// confirmations claimed with one conditional update per revision and chunk, the
/// requests' causes looked up per chunk, then **one** `UPDATE` per report and the
/// audit records of the whole batch appended together ([`append_many`]) — not a dozen
/// round trips per report, which made 10,000 acknowledgements queue for many seconds
/// behind the writer lock. Reports are applied in order: a host reporting twice in one
/// batch sees its first report's effect, as if committed one by one.
async fn commit_batch(
    pool: &AnyPool,
    write: &Mutex<()>,
    mark: &super::Marks,
    batch: &[Job],
) -> Result<Vec<Result<HostState, StoreError>>, StoreError> {
    let _guard = write.lock().await;
    let mut tx = super::begin_write(pool, mark).await?;
    let mut ids: Vec<String> = batch.iter().map(|j| j.host_id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut hosts = load_many_tx(&mut tx, &ids).await?;
    let mut extras = load_extras_tx(&mut tx, &ids).await?;
    // First confirmation of a revision? Claimed by one transaction only (the
    // conditional update), whichever replica records it. Only a report that its rules
    // are in force claims the revision: an agent that enforces nothing (`enforce =
    // false`) claims its entry into `not_enforcing` instead, so when the agent later
    // enforces the same revision, that report is still its first confirmation, audited
    // `quarantine_confirmed` and announced (trial36 MED-B: it was
    // `quarantine_reconfirmed`, and the channel told "NOT quarantined" heard nothing more).
    // A host back in force after a not-enforcing spell within one revision (trial42
    // MED-3: the channel was last told "NOT quarantined") is announced again: it claims
    // its way out of `not_enforcing` the same way.
    let mut by_revision: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    let mut not_enforcing: BTreeSet<String> = BTreeSet::new();
    let mut back_in_force: BTreeSet<String> = BTreeSet::new();
    for job in batch {
        if let Some(host) = hosts.get(&job.host_id) {
            let a = assess(host, &job.report);
            if a.confirms && a.state == HostState::NotEnforcing {
                not_enforcing.insert(host.id.clone());
            } else if a.confirms {
                by_revision
                    .entry(host.desired.revision)
                    .or_default()
                    .insert(host.id.clone());
                if host.state == HostState::NotEnforcing && a.state == HostState::Quarantined {
                    back_in_force.insert(host.id.clone());
                }
            }
        }
    }
    let mut claimed_back: HashSet<String> = HashSet::new();
    let back: Vec<String> = back_in_force.into_iter().collect();
    for chunk in back.chunks(IDS_PER_STATEMENT) {
        // The write below sets the same state; this claims the change, once.
        let sql = format!(
            "UPDATE hosts SET state = $1 WHERE state = $2 AND id IN ({}) RETURNING id",
            marks(3, chunk.len())
        );
        let mut q = sqlx::query(&sql)
            .bind(HostState::Quarantined.as_str())
            .bind(HostState::NotEnforcing.as_str());
        for id in chunk {
            q = q.bind(id.clone());
        }
        for row in q.fetch_all(&mut *tx).await? {
            claimed_back.insert(get_str(&row, "id")?);
        }
    }
    let mut claimed_dry: HashSet<String> = HashSet::new();
    let dry: Vec<String> = not_enforcing.into_iter().collect();
    for chunk in dry.chunks(IDS_PER_STATEMENT) {
        // The write below sets the same state; this claims the change, once.
        let sql = format!(
            "UPDATE hosts SET state = $1 WHERE state <> $1 AND id IN ({}) RETURNING id",
            marks(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(HostState::NotEnforcing.as_str());
        for id in chunk {
            q = q.bind(id.clone());
        }
        for row in q.fetch_all(&mut *tx).await? {
            claimed_dry.insert(get_str(&row, "id")?);
        }
    }
    let mut claimed: HashSet<String> = HashSet::new();
    for (revision, set) in &by_revision {
        let set: Vec<String> = set.iter().cloned().collect();
        for chunk in set.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE hosts SET confirmed_revision = $1 WHERE confirmed_revision < $1 AND id IN ({}) RETURNING id",
                marks(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(*revision);
            for id in chunk {
                q = q.bind(id.clone());
            }
            for row in q.fetch_all(&mut *tx).await? {
                claimed.insert(get_str(&row, "id")?);
            }
        }
    }
    let firsts: HashSet<String> = claimed
        .iter()
        .chain(claimed_dry.iter())
        .chain(claimed_back.iter())
        .cloned()
        .collect();
    let causes = request_causes_tx(&mut tx, &firsts).await?;
    let now = now_ms();
    let mut results = Vec::with_capacity(batch.len());
    let mut planned: Vec<PlannedAudit> = Vec::new();
    for job in batch {
        let (Some(host), Some(extra)) = (hosts.get_mut(&job.host_id), extras.get_mut(&job.host_id)) else {
            // Nothing is written for this report; the others go on.
            results.push(Err(StoreError::NotFound(format!("no host {:?}", job.host_id))));
            continue;
        };
        // Claimed once per host: a second report of it in this batch is not the first.
        let a = assess(host, &job.report);
        let first = a.confirms
            && if a.state == HostState::NotEnforcing {
                claimed_dry.remove(&host.id)
            } else {
                // Both claims are used up by the one report (`|`, not `||`).
                claimed.remove(&host.id) | claimed_back.remove(&host.id)
            };
        let plan = plan_report(host, extra, &job.report, now, first, causes.get(&host.id));
        write_report_tx(&mut tx, host, &job.report, &plan, now).await?;
        results.push(Ok(plan.assessment.state));
        planned.extend(plan.audit);
    }
    let mut facts = BTreeMap::new();
    for (i, a) in planned.iter().enumerate() {
        if let Some(f) = &a.facts {
            facts.insert(
                i,
                serde_json::to_string(f).map_err(|e| StoreError::Encode {
                    what: "notification facts",
                    source: e,
                })?,
            );
        }
    }
    let records: Vec<NewAudit<'_>> = planned
        .iter()
        .map(|a| NewAudit {
            actor: &a.actor,
            action: a.action,
            host_id: Some(a.host_id.as_str()),
            comment: a.comment.as_deref(),
            result: a.result,
            detail: Some(a.detail.as_str()),
            event_id: a.event_id.as_deref(),
            rule: a.rule.as_deref(),
            actor_token_id: None,
        })
        .collect();
    append_many(&mut tx, &records, &facts).await?;
    tx.commit().await?;
    Ok(results)
}

/// What a report reads of its host besides [`Host`]: the audit rate-limit window and
/// the token behind the desired state's actor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ReportExtra {
    window: AgentAuditWindow,
    asked_by_token_id: Option<i64>,
}

/// [`ReportExtra`] of each of `ids`, one statement per [`IDS_PER_STATEMENT`] ids.
async fn load_extras_tx(tx: &mut Tx, ids: &[String]) -> Result<HashMap<String, ReportExtra>, StoreError> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let sql = format!(
            "SELECT id, agent_audit_window, agent_audit_count, agent_audit_suppressed, actor_token_id \
             FROM hosts WHERE id IN ({})",
            marks(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.clone());
        }
        for row in q.fetch_all(&mut **tx).await? {
            out.insert(
                get_str(&row, "id")?,
                ReportExtra {
                    window: AgentAuditWindow {
                        start: get_i64(&row, "agent_audit_window")?,
                        written: get_i64(&row, "agent_audit_count")?,
                        collapsed: get_i64(&row, "agent_audit_suppressed")?,
                    },
                    asked_by_token_id: get_opt_i64(&row, "actor_token_id")?,
                },
            );
        }
    }
    Ok(out)
}

/// The event and rule of the newest `quarantine` and `release` request of each of
/// `ids` (host id → action → (event id, rule name)), one statement per
/// [`IDS_PER_STATEMENT`] ids: what a first confirmation names.
async fn request_causes_tx(tx: &mut Tx, ids: &HashSet<String>) -> Result<HashMap<String, Causes>, StoreError> {
    let ids: Vec<String> = ids.iter().cloned().collect();
    let mut out: HashMap<String, Causes> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let sql = format!(
            "SELECT host_id, action, event_id, rule_name FROM audit WHERE id IN (SELECT MAX(id) FROM audit \
             WHERE action IN ('quarantine', 'release') AND host_id IN ({}) GROUP BY host_id, action)",
            marks(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.clone());
        }
        for row in q.fetch_all(&mut **tx).await? {
            let cause = (get_opt_str(&row, "event_id")?, get_opt_str(&row, "rule_name")?);
            let entry = out.entry(get_str(&row, "host_id")?).or_default();
            match get_str(&row, "action")?.as_str() {
                "quarantine" => entry.quarantine = cause,
                _ => entry.release = cause,
            }
        }
    }
    Ok(out)
}

/// The (event id, rule name) of a host's newest quarantine and release request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Causes {
    quarantine: (Option<String>, Option<String>),
    release: (Option<String>, Option<String>),
}

/// An audit record a report causes.
#[derive(Debug, Clone, PartialEq)]
struct PlannedAudit {
    host_id: String,
    actor: String,
    action: &'static str,
    comment: Option<String>,
    result: &'static str,
    detail: String,
    event_id: Option<String>,
    rule: Option<String>,
    facts: Option<NoticeFacts>,
}

/// What one report does: the assessment, the rate-limit window after it, and its
/// audit records.
#[derive(Debug, Clone, PartialEq)]
struct ReportPlan {
    assessment: Assessment,
    window: AgentAuditWindow,
    audit: Vec<PlannedAudit>,
}

/// The effect of report `r` on `host` at `now` (Unix ms), `first` when it is the first
/// confirmation of the desired revision (claimed by this transaction), `causes` the
/// requests' event and rule: pure, so the rules are tested without a database.
///
/// The first report that confirms a revision in force writes `quarantine_confirmed` /
/// `release_confirmed` (the notification kinds `quarantined`, `released`): exactly once
/// per revision, also when two replicas record reports of the same host at once (see
/// [`commit_batch`]), whatever not-enforcing or failed reports came before it. A report
/// of an agent that enforces nothing writes `not_enforcing` (kind `not_enforcing`) once
/// each time the host enters that state. Later changes within the same revision
/// (tampering repaired, an exception resolved) are `*_reconfirmed`.
fn plan_report(
    host: &Host,
    extra: &ReportExtra,
    r: &StatusReport,
    now: i64,
    first: bool,
    causes: Option<&Causes>,
) -> ReportPlan {
    let a = assess(host, r);
    let state = a.state;
    let servers_changed = servers_change(&host.claims, &r.claims);
    let changed = state != host.state || a.reason != host.state_reason || servers_changed.is_some();
    let mut plan = ReportPlan {
        assessment: a.clone(),
        window: extra.window,
        audit: Vec::new(),
    };
    if !changed && !first {
        return plan;
    }
    let actor = format!("agent:{}", host.hostname);
    let confirmed = |again: &'static str, once: &'static str| if first { once } else { again };
    let (action, result) = match state {
        HostState::Quarantined if !a.degraded.is_empty() => {
            (confirmed("quarantine_reconfirmed", "quarantine_confirmed"), "degraded")
        }
        HostState::Quarantined => (confirmed("quarantine_reconfirmed", "quarantine_confirmed"), "ok"),
        HostState::NotEnforcing => (confirmed("not_enforcing_reconfirmed", "not_enforcing"), "not_enforcing"),
        // The enrollment's own revision (nobody asked for it): the agent's first report,
        // not a release to announce.
        HostState::Normal if host.desired.actor.is_none() => ("baseline_confirmed", "ok"),
        HostState::Normal => (confirmed("release_reconfirmed", "release_confirmed"), "ok"),
        HostState::Tampered => ("tampered", "repairing"),
        HostState::Failed => ("failed", "error"),
        HostState::QuarantinePending | HostState::ReleasePending => ("state", "pending"),
    };
    // Only the allowed servers changed: its own record.
    let (action, result) =
        if state == host.state && a.reason == host.state_reason && !first && servers_changed.is_some() {
            ("servers_changed", "ok")
        } else {
            (action, result)
        };
    let mut detail = match (&a.reason, &r.error) {
        // The reason is the error itself when the agent sent no detail: said once
        // (trial30 LOW-4: "revision 2: nft: … not permitted: nft: … not permitted").
        (Some(reason), Some(kind)) if !reason.contains(kind.as_str()) => {
            format!("revision {}: {kind}: {reason}", r.applied_revision)
        }
        (Some(reason), _) => format!("revision {}: {reason}", r.applied_revision),
        _ => format!(
            "revision {}; digest {}",
            r.applied_revision,
            r.digest.as_deref().unwrap_or("-")
        ),
    };
    if let Some(change) = &servers_changed {
        detail.push_str(&format!("; {change}"));
    }
    // A confirmation carries who asked and why, for the notification it makes.
    let (comment, facts) = if first {
        if let Some(by) = &host.desired.actor {
            detail.push_str(&format!("; asked by {by}"));
        }
        let facts = NoticeFacts {
            revision: Some(host.desired.revision),
            asked_by: host.desired.actor.clone(),
            // The token behind the name that asked (set with the desired state).
            asked_by_token_id: extra.asked_by_token_id,
            degraded: a.degraded.clone(),
            still_isolated_by: if state == HostState::Normal {
                other_claims(&host.id, r)
            } else {
                vec![]
            },
        };
        (host.desired.comment.clone(), Some(facts))
    } else {
        (None, None)
    };
    // A confirmation names the rule and event that asked for it (the request that set
    // this revision), so "quarantined" says which detection it answers.
    let cause = match (first, state, causes) {
        (true, HostState::Normal, Some(c)) => c.release.clone(),
        (true, HostState::Quarantined | HostState::NotEnforcing, Some(c)) => c.quarantine.clone(),
        _ => (None, None),
    };
    // A first confirmation is written whatever the rate limit (there is one per
    // revision, and it is what notifications announce); the rest is rate limited: a
    // flapping or compromised agent cannot fill the audit log; what is not written
    // individually is counted and written as one record later.
    let decision = agent_audit(extra.window, now);
    let write = decision.write || first;
    plan.window = AgentAuditWindow {
        collapsed: decision.next.collapsed - i64::from(first && !decision.write),
        ..decision.next
    };
    if let Some((count, since)) = decision.flush_collapsed {
        plan.audit.push(PlannedAudit {
            host_id: host.id.clone(),
            actor: actor.clone(),
            action: "reports_collapsed",
            comment: None,
            result: "ok",
            detail: format!(
                "{count} state changes reported by the agent since {} were not recorded one by one \
                 (more than {AGENT_AUDIT_PER_WINDOW} per {} s)",
                to_rfc3339(since),
                AGENT_AUDIT_WINDOW_MS / 1000
            ),
            event_id: None,
            rule: None,
            facts: None,
        });
    }
    if write {
        plan.audit.push(PlannedAudit {
            host_id: host.id.clone(),
            actor,
            action,
            comment,
            result,
            detail,
            event_id: cause.0,
            rule: cause.1,
            facts,
        });
    }
    plan
}

/// Whether report `r`, assessed as `a`, changes anything a page shows of `host` (as
/// stored, `offline` derived at load): its state, reason, exceptions, applied revision,
/// enforcing, claims, addresses, os, agent version, backend, digest or heartbeat — or
/// the host was offline and is heard again. Such a report bumps the host's `report_rev`,
/// which the console's live stream watches (trial24 MED-2: a change of claims or
/// addresses writes no audit record and reached open pages only at the next 30 s
/// last-seen step). Pure.
pub(crate) fn shown_change(host: &Host, r: &StatusReport, a: &Assessment) -> bool {
    host.offline
        || a.state != host.state
        || a.reason != host.state_reason
        || a.degraded != host.degraded
        || a.applied != host.applied_revision
        || r.enforces() != host.enforcing
        || r.claims != host.claims
        || (!r.addresses.is_empty() && r.addresses != host.addresses)
        || (r.os.is_some() && r.os != host.os)
        || (r.agent_version.is_some() && r.agent_version != host.agent_version)
        || r.backend != host.backend
        || r.digest != host.digest
        || (r.heartbeat_ms.is_some() && r.heartbeat_ms != host.heartbeat_ms)
}

/// Whether `plan` brings `host` back from `tampered` to `quarantined` at the revision it
/// had already confirmed (the watcher repaired the rules): not a new quarantine. Pure.
fn repaired_in_force(host: &Host, plan: &ReportPlan) -> bool {
    host.state == HostState::Tampered
        && plan.assessment.state == HostState::Quarantined
        && plan.assessment.applied == host.applied_revision
        && host.applied_revision == host.desired.revision
        && !plan.audit.iter().any(|a| a.action == "quarantine_confirmed")
}

/// Writes report `r`'s effect `plan` on `host` inside `tx` (one `UPDATE`, and the
/// address rows when the addresses changed), then moves `host` to what was written, so
/// a later report of the same host in the batch sees it.
async fn write_report_tx(
    tx: &mut Tx,
    host: &mut Host,
    r: &StatusReport,
    plan: &ReportPlan,
    now: i64,
) -> Result<(), StoreError> {
    let a = &plan.assessment;
    let claims = serde_json::to_string(&r.claims).map_err(|e| StoreError::Encode {
        what: "host claims",
        source: e,
    })?;
    let since = if a.state == host.state {
        host.state_since.unix_ms()
    } else if repaired_in_force(host, plan) {
        // The quarantine has been in force since the revision's first confirmation
        // (apart from the moments tampered, which the timeline shows): "quarantined
        // since" stays that time, not the repair's (trial24 LOW-6).
        let row = sqlx::query("SELECT MAX(at) AS at FROM audit WHERE host_id = $1 AND action = 'quarantine_confirmed'")
            .bind(host.id.clone())
            .fetch_one(&mut **tx)
            .await?;
        get_opt_i64(&row, "at")?.unwrap_or(now)
    } else {
        now
    };
    sqlx::query(
        "UPDATE hosts SET last_seen = $1, applied_revision = $2, digest = $3, backend = $4, \
         os = COALESCE($5, os), addresses = $6, agent_version = COALESCE($7, agent_version), \
         state = $8, state_reason = $9, state_since = $10, degraded = $11, enforcing = $12, \
         heartbeat_ms = COALESCE($13, heartbeat_ms), claims = $14, agent_audit_window = $15, \
         agent_audit_count = $16, agent_audit_suppressed = $17, report_rev = report_rev + $18 \
         WHERE id = $19",
    )
    .bind(now)
    .bind(a.applied)
    .bind(r.digest.clone())
    .bind(r.backend.as_ref().map(|b| b.as_str().to_string()))
    .bind(r.os.clone())
    .bind(if r.addresses.is_empty() {
        to_json_list(&host.addresses)
    } else {
        to_json_list(&r.addresses)
    })
    .bind(r.agent_version.clone())
    .bind(a.state.as_str().to_string())
    .bind(a.reason.clone())
    .bind(since)
    .bind(to_json_list(&a.degraded))
    .bind(r.enforces() as i64)
    .bind(r.heartbeat_ms.and_then(|b| i64::try_from(b).ok()))
    .bind(claims)
    .bind(plan.window.start)
    .bind(plan.window.written)
    .bind(plan.window.collapsed)
    .bind(i64::from(shown_change(host, r, a)))
    .bind(host.id.clone())
    .execute(&mut **tx)
    .await?;
    if !r.addresses.is_empty() && r.addresses != host.addresses {
        let texts: Vec<String> = r.addresses.iter().map(ToString::to_string).collect();
        super::hosts::set_addresses_tx(tx, &host.id, &texts).await?;
        host.addresses = r.addresses.clone();
    }
    host.state = a.state;
    host.state_reason = a.reason.clone();
    host.state_since = crate::timefmt::Timestamp::from_unix_ms_clamped(since);
    host.degraded = a.degraded.clone();
    host.applied_revision = a.applied;
    host.enforcing = r.enforces();
    host.claims = r.claims.clone();
    host.backend = r.backend.clone();
    host.digest = r.digest.clone();
    if r.os.is_some() {
        host.os = r.os.clone();
    }
    if r.agent_version.is_some() {
        host.agent_version = r.agent_version.clone();
    }
    if r.heartbeat_ms.is_some() {
        host.heartbeat_ms = r.heartbeat_ms;
    }
    host.offline = false;
    Ok(())
}

impl Store {
    /// Records a report from agent `host_id`. Returns the new host state. The hostname
    /// stays the one given at enrollment (operators address hosts by it).
    /// Free-text fields are bounded first ([`crate::limits::bound_report`]).
    ///
    /// # Errors
    /// `Invalid` (400, nothing recorded) for addresses that are not IP addresses or
    /// too many of them ([`crate::limits::check_addresses`]).
    pub async fn record_report(&self, host_id: &str, r: &StatusReport) -> Result<HostState, StoreError> {
        let mut r = r.clone();
        r.addresses = crate::limits::check_addresses(&r.addresses).map_err(StoreError::Invalid)?;
        crate::limits::bound_report(&mut r);
        // One definition of "enforces" from here on ([`StatusReport::enforces`]).
        r.enforcing = r.enforces();
        let queue = self.reports.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(batch_loop(self.pool.clone(), self.write.clone(), self.mark.clone(), rx));
            tx
        });
        let (done, result) = oneshot::channel();
        queue
            .send(Job {
                host_id: host_id.to_string(),
                report: r,
                done,
            })
            .map_err(|_| StoreError::ReportWriterStopped)?;
        result.await.map_err(|_| StoreError::ReportWriterStopped)?
    }

    /// Notes that the agent was heard from.
    pub async fn touch(&self, host_id: &str) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write_tx().await?;
        sqlx::query("UPDATE hosts SET last_seen = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(host_id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cordon_proto::{ClaimInfo, DesiredState};

    fn host(quarantined: bool, revision: i64, state: HostState, applied: i64) -> Host {
        Host {
            id: "h1".into(),
            hostname: "web1".into(),
            os: None,
            addresses: vec![],
            labels: vec![],
            agent_version: None,
            last_seen: None,
            enrolled_at: "2030-01-01T00:00:00.000Z".parse().unwrap(),
            desired: DesiredState {
                revision,
                quarantined,
                ..Default::default()
            },
            state,
            state_reason: None,
            state_since: "2030-01-01T00:00:00.000Z".parse().unwrap(),
            applied_revision: applied,
            digest: None,
            backend: None,
            revoked: false,
            degraded: vec![],
            enforcing: true,
            heartbeat_ms: None,
            offline: false,
            claims: vec![],
            flags: vec![],
        }
    }

    fn report(rev: i64, state: AgentState) -> StatusReport {
        StatusReport {
            version: 1,
            applied_revision: rev,
            state,
            digest: None,
            backend: None,
            error: None,
            detail: None,
            hostname: None,
            os: None,
            addresses: vec![],
            agent_version: None,
            enforcing: true,
            degraded: vec![],
            heartbeat_ms: None,
            claims: vec![],
            waiting: None,
        }
    }

    /// Issue 14 (trial15 MED-3): what the agent says besides a confirmation (that the
    /// server's desired state went back) is kept as the state reason of a quarantined
    /// host too, ahead of what is missing — it was dropped, so a restore was silent.
    #[test]
    fn what_the_agent_says_with_a_confirmation_is_kept() {
        let note = "the server's desired revision went back from 7 (no quarantine) to 3 (quarantine): …";
        let pending = host(true, 3, HostState::QuarantinePending, 2);
        let mut r = report(3, AgentState::Isolated);
        r.detail = Some(note.into());
        let a = assess(&pending, &r);
        assert_eq!((a.state, a.reason.as_deref()), (HostState::Quarantined, Some(note)));
        r.degraded = vec!["exception https://edr.example.net unresolved".into()];
        let a = assess(&pending, &r);
        assert_eq!(
            a.reason.as_deref(),
            Some(format!("{note}; degraded: exception https://edr.example.net unresolved").as_str())
        );
        r.detail = None;
        let a = assess(&pending, &r);
        assert_eq!(
            a.reason.as_deref(),
            Some("degraded: exception https://edr.example.net unresolved")
        );
        let releasing = host(false, 3, HostState::ReleasePending, 2);
        let mut r = report(3, AgentState::Released);
        r.detail = Some(note.into());
        let a = assess(&releasing, &r);
        assert_eq!((a.state, a.reason.as_deref()), (HostState::Normal, Some(note)));
    }

    /// Effect, not dispatch: only a report that the desired revision's rules are in
    /// force makes the host quarantined and the revision applied; the fault kind is a
    /// revision counted as applied (`hosts show`: "in force") while its rules are not.
    #[test]
    fn only_rules_in_force_confirm_a_revision() {
        let pending = host(true, 4, HostState::QuarantinePending, 3);
        let a = assess(&pending, &report(4, AgentState::Isolated));
        assert_eq!((a.state, a.applied, a.confirms), (HostState::Quarantined, 4, true));
        for r in [
            report(4, AgentState::Released),
            report(4, AgentState::Failed),
            report(4, AgentState::Tampered),
            report(3, AgentState::Failed),
        ] {
            let a = assess(&pending, &r);
            assert_eq!(a.applied, 3, "{:?} must not make revision 4 applied", r.state);
            assert!(!a.confirms);
            assert_ne!(a.state, HostState::Quarantined);
        }
        // A report about an older revision confirms that one, not the desired one.
        let a = assess(&pending, &report(3, AgentState::Isolated));
        assert_eq!(
            (a.state, a.applied, a.confirms),
            (HostState::QuarantinePending, 3, false)
        );
    }

    /// Trial6 HIGH 1, the fault kind "a quarantine confirmed that is not in force": a
    /// report naming a higher revision (another enrollment's, or from before the database
    /// was restored) confirms nothing and never becomes the applied revision; a report
    /// whose claims do not include the agent's own (tables there because of other
    /// sources) confirms no server quarantine.
    #[test]
    fn only_the_desired_revision_with_the_agents_own_claim_confirms() {
        let restored = host(true, 14, HostState::QuarantinePending, 13);
        let a = assess(&restored, &report(17, AgentState::Isolated));
        assert_eq!(
            (a.state, a.applied, a.confirms),
            (HostState::QuarantinePending, 13, false),
            "a stale higher revision"
        );
        let claim = |source: &str| ClaimInfo {
            source: source.into(),
            since: Some("2030-01-01T00:00:00Z".parse().unwrap()),
            allow: vec![],
            servers: vec![],
            owner: None,
        };
        let mut others = report(14, AgentState::Isolated);
        others.claims = vec![claim("velociraptor"), claim("local")];
        let a = assess(&restored, &others);
        assert_eq!((a.state, a.confirms), (HostState::QuarantinePending, false));
        assert!(a.reason.unwrap_or_default().contains("velociraptor"));
        let mut own = others.clone();
        own.claims.push(claim("agent"));
        let a = assess(&restored, &own);
        assert_eq!((a.state, a.applied, a.confirms), (HostState::Quarantined, 14, true));
    }

    /// `enforce = false` is `not_enforcing`, never quarantined, and applies nothing.
    #[test]
    fn non_enforcing_agent_is_never_quarantined() {
        let pending = host(true, 4, HostState::QuarantinePending, 3);
        let mut r = report(4, AgentState::Isolated);
        r.enforcing = false;
        let a = assess(&pending, &r);
        assert_eq!(a.state, HostState::NotEnforcing);
        assert_eq!(a.applied, 3);
        assert!(a.reason.is_some_and(|t| t.contains("enforce = false")));
        let mut old = report(3, AgentState::Isolated);
        old.enforcing = false;
        assert_eq!(assess(&pending, &old).applied, 3);
    }

    /// Trial24 MED-3: backend `memory` blocks nothing, so a report naming it is never
    /// enforcing — also from an agent older than the `enforcing` field (which defaults
    /// to true).
    #[test]
    fn a_memory_backend_never_enforces_whatever_the_report_says() {
        let pending = host(true, 4, HostState::QuarantinePending, 3);
        let mut r = report(4, AgentState::Isolated);
        r.backend = Some(cordon_proto::Backend::Memory);
        assert!(r.enforcing && !r.enforces());
        let a = assess(&pending, &r);
        assert_eq!((a.state, a.applied), (HostState::NotEnforcing, 3));
        r.backend = Some(cordon_proto::Backend::Nftables);
        assert!(r.enforces());
        assert_eq!(assess(&pending, &r).state, HostState::Quarantined);
    }

    /// Trial24 MED-2: what changes a page without an audit record (claims, addresses,
    /// an offline agent heard again) counts as shown; the same report again does not.
    #[test]
    fn shown_change_sees_claims_addresses_and_coming_back_online() {
        let mut h = host(false, 2, HostState::Normal, 2);
        h.backend = Some(cordon_proto::Backend::Nftables);
        h.digest = Some("sha256:0".into());
        let mut r = report(2, AgentState::Released);
        r.backend = h.backend.clone();
        r.digest = h.digest.clone();
        let a = assess(&h, &r);
        assert!(!shown_change(&h, &r, &a), "nothing shown changed");
        let mut c = r.clone();
        c.claims = vec![ClaimInfo {
            source: "wazuh".into(),
            ..Default::default()
        }];
        assert!(shown_change(&h, &c, &assess(&h, &c)), "a claim added");
        let mut ad = r.clone();
        ad.addresses = vec!["203.0.113.5".parse().unwrap()];
        assert!(shown_change(&h, &ad, &assess(&h, &ad)), "an address");
        let mut off = h.clone();
        off.offline = true;
        assert!(shown_change(&off, &r, &a), "heard again after going offline");
    }

    /// Fix14c item 8, the fault kind: a non-enforcing agent on a host where other
    /// sources' claims stand was shown "no rules are in force" — less than is true.
    #[test]
    fn non_enforcing_agent_names_the_other_claims_in_force() {
        let pending = host(true, 4, HostState::QuarantinePending, 3);
        let mut r = report(4, AgentState::Isolated);
        r.enforcing = false;
        r.claims = vec![cordon_proto::ClaimInfo {
            source: "wazuh".into(),
            since: Some("2030-01-01T00:00:00Z".parse().unwrap()),
            ..Default::default()
        }];
        let a = assess(&pending, &r);
        assert_eq!(a.state, HostState::NotEnforcing);
        let reason = a.reason.unwrap_or_default();
        assert!(
            reason.contains("isolated by other claims: wazuh since 2030-01-01T00:00:00.000Z")
                && !reason.contains("no rules are in force"),
            "{reason}"
        );
    }

    /// Issue 14 MED-1 (rest): an agent waiting behind another Cordon run's lock (up to
    /// 60 s) says so, and the pending host shows it as its reason instead of none; a
    /// wait for another revision (a report from before a newer order) says nothing, and
    /// the confirmation that follows replaces it.
    #[test]
    fn a_pending_host_shows_the_lock_its_agent_waits_for() {
        let pending = host(true, 2, HostState::QuarantinePending, 1);
        let mut r = report(1, AgentState::Released);
        r.waiting = Some(cordon_proto::AgentWait {
            kind: cordon_proto::WaitKind::Lock,
            revision: 2,
            holder_pid: Some(4242),
            holder: "pid 4242 (cordon, /usr/bin/cordon: another cordon run or the agent)".into(),
            holder_is_cordon: true,
            up_to_secs: 60,
        });
        let a = assess(&pending, &r);
        assert_eq!(a.state, HostState::QuarantinePending);
        assert_eq!(
            a.reason.as_deref(),
            Some(
                "waiting for pid 4242 (cordon, /usr/bin/cordon: another cordon run or the agent) (lock) \
                 to apply revision 2, at most 60 s"
            )
        );
        assert!(!a.confirms);
        let mut older = r.clone();
        older.waiting.as_mut().unwrap().revision = 1;
        assert_eq!(assess(&pending, &older).reason, None, "a wait for another revision");
        let waiting = Host {
            state_reason: a.reason.clone(),
            ..pending
        };
        let done = assess(&waiting, &report(2, AgentState::Isolated));
        assert_eq!((done.state, done.reason), (HostState::Quarantined, None));
    }

    /// Degraded is stored as a structured list and said in the reason.
    #[test]
    fn degraded_quarantine_keeps_its_missing_exceptions() {
        let pending = host(true, 2, HostState::QuarantinePending, 1);
        let mut r = report(2, AgentState::Isolated);
        r.degraded = vec!["exception https://edr.example.net unresolved: no such name".into()];
        let a = assess(&pending, &r);
        assert_eq!(a.state, HostState::Quarantined);
        assert_eq!(a.degraded, r.degraded);
        assert_eq!(
            a.reason.as_deref(),
            Some("degraded: exception https://edr.example.net unresolved: no such name")
        );
        // Released: nothing is degraded.
        let a = assess(
            &host(false, 3, HostState::ReleasePending, 2),
            &report(3, AgentState::Released),
        );
        assert!(a.degraded.is_empty());
    }

    /// A server release that leaves other sources' claims in force is confirmed (the
    /// agent's claim is gone) and says who still isolates the host; with the agent's own
    /// claim still there it stays release_pending.
    #[test]
    fn release_with_other_claims_standing() {
        let releasing = host(false, 5, HostState::ReleasePending, 4);
        let mut r = report(5, AgentState::Isolated);
        r.claims = vec![ClaimInfo {
            source: "wazuh".into(),
            since: Some("2030-01-01T00:00:00Z".parse().unwrap()),
            ..Default::default()
        }];
        let a = assess(&releasing, &r);
        assert_eq!((a.state, a.applied), (HostState::Normal, 5));
        assert!(a
            .reason
            .is_some_and(|t| t.contains("wazuh since 2030-01-01T00:00:00.000Z")));
        r.claims.push(ClaimInfo {
            source: "agent".into(),
            ..Default::default()
        });
        let a = assess(&releasing, &r);
        assert_eq!((a.state, a.applied), (HostState::ReleasePending, 4));
    }
}
