//! Agent status reports: move the host's reported state and audit transitions.

use std::sync::Arc;

use cordon_proto::{AgentState, HostState, StatusReport};
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::audit::{append, NewAudit};
use super::hosts::load_tx;
use super::{get_i64, to_json_list, Store, StoreError, Tx};
use crate::limits::{agent_audit, AgentAuditWindow, AGENT_AUDIT_PER_WINDOW, AGENT_AUDIT_WINDOW_MS};
use crate::timefmt::{now_ms, to_rfc3339};

/// The host state a report implies, given the desired state it answers.
fn next_state(desired_quarantined: bool, desired_rev: i64, r: &StatusReport, current: HostState) -> HostState {
    match r.state {
        // Tampering and failures are reported whatever revision they concern.
        AgentState::Tampered => HostState::Tampered,
        AgentState::Failed if r.applied_revision >= desired_rev => HostState::Failed,
        _ if r.applied_revision < desired_rev => current,
        AgentState::Isolated if desired_quarantined => HostState::Quarantined,
        AgentState::Released if !desired_quarantined => HostState::Normal,
        AgentState::Isolated => HostState::ReleasePending,
        AgentState::Released => HostState::QuarantinePending,
        AgentState::Failed => current,
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
async fn batch_loop(pool: AnyPool, write: Arc<Mutex<()>>, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        match commit_batch(&pool, &write, &batch).await {
            Ok(results) => {
                for (job, r) in batch.into_iter().zip(results) {
                    let _ = job.done.send(r);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, reports = batch.len(), "status batch failed");
                let e = std::sync::Arc::new(e);
                for job in batch {
                    let _ = job.done.send(Err(StoreError::Report(e.clone())));
                }
            }
        }
    }
}

async fn commit_batch(
    pool: &AnyPool,
    write: &Mutex<()>,
    batch: &[Job],
) -> Result<Vec<Result<HostState, StoreError>>, StoreError> {
    let _guard = write.lock().await;
    let mut tx = pool.begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        match record_tx(&mut tx, &job.host_id, &job.report).await {
            Ok(state) => results.push(Ok(state)),
            // Nothing was written for this report; the others go on.
            Err(StoreError::NotFound(d)) => results.push(Err(StoreError::NotFound(d))),
            Err(e) => return Err(e),
        }
    }
    tx.commit().await?;
    Ok(results)
}

/// Records one report inside `tx`: fails with `NotFound` before writing anything.
async fn record_tx(tx: &mut Tx, host_id: &str, r: &StatusReport) -> Result<HostState, StoreError> {
    let host = load_tx(tx, host_id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no host {host_id:?}")))?;
    let now = now_ms();
    let state = next_state(host.desired.quarantined, host.desired.revision, r, host.state);
    let reason = match state {
        // A quarantine in force without some exceptions: what is missing (the agent's
        // `degraded` lines), so API, CLI and console show the difference.
        HostState::Quarantined if !r.enforcing => {
            Some("not enforcing: the agent runs with enforce = false; no rules are in force".to_string())
        }
        HostState::Quarantined if !r.degraded.is_empty() => Some(format!("degraded: {}", r.degraded.join("; "))),
        HostState::Failed | HostState::Tampered => Some(
            r.detail
                .clone()
                .or_else(|| r.error.clone())
                .unwrap_or_else(|| state.as_str().to_string()),
        ),
        _ => None,
    };
    let changed = state != host.state || (reason != host.state_reason && state == HostState::Quarantined);
    // Only a revision whose rules are in force (or removed) counts as applied: a failure
    // or tampering report about revision N does not make N applied.
    let applied = match r.state {
        AgentState::Isolated | AgentState::Released => r.applied_revision.min(host.desired.revision),
        AgentState::Failed | AgentState::Tampered => host.applied_revision,
    };
    sqlx::query(
        "UPDATE hosts SET last_seen = $1, applied_revision = $2, digest = $3, backend = $4, \
         os = COALESCE($5, os), addresses = $6, agent_version = COALESCE($7, agent_version), \
         state = $8, state_reason = $9, state_since = $10 WHERE id = $11",
    )
    .bind(now)
    .bind(applied)
    .bind(r.digest.clone())
    .bind(r.backend.clone())
    .bind(r.os.clone())
    .bind(if r.addresses.is_empty() {
        to_json_list(&host.addresses)
    } else {
        to_json_list(&r.addresses)
    })
    .bind(r.agent_version.clone())
    .bind(state.as_str().to_string())
    .bind(reason.clone())
    .bind(if changed {
        now
    } else {
        super::super::timefmt::parse_rfc3339(&host.state_since).unwrap_or(now)
    })
    .bind(host_id.to_string())
    .execute(&mut **tx)
    .await?;
    if !r.addresses.is_empty() && r.addresses != host.addresses {
        super::hosts::set_addresses_tx(tx, host_id, &r.addresses).await?;
    }
    if changed {
        let actor = format!("agent:{}", host.hostname);
        let (action, result) = match state {
            HostState::Quarantined if reason.is_some() => ("quarantine_confirmed", "degraded"),
            HostState::Quarantined => ("quarantine_confirmed", "ok"),
            HostState::Normal => ("release_confirmed", "ok"),
            HostState::Tampered => ("tampered", "repairing"),
            HostState::Failed => ("failed", "error"),
            HostState::QuarantinePending | HostState::ReleasePending => ("state", "pending"),
        };
        let detail = match (&reason, &r.error) {
            (Some(reason), Some(kind)) => format!("revision {}: {kind}: {reason}", r.applied_revision),
            (Some(reason), None) => format!("revision {}: {reason}", r.applied_revision),
            _ => format!(
                "revision {}; digest {}",
                r.applied_revision,
                r.digest.as_deref().unwrap_or("-")
            ),
        };
        // Rate limit: a flapping or compromised agent cannot fill the audit log; what is
        // not written individually is counted and written as one record later.
        let row = sqlx::query(
            "SELECT agent_audit_window, agent_audit_count, agent_audit_suppressed FROM hosts WHERE id = $1",
        )
        .bind(host_id.to_string())
        .fetch_one(&mut **tx)
        .await?;
        let window = AgentAuditWindow {
            start: get_i64(&row, "agent_audit_window")?,
            written: get_i64(&row, "agent_audit_count")?,
            collapsed: get_i64(&row, "agent_audit_suppressed")?,
        };
        let decision = agent_audit(window, now);
        sqlx::query(
            "UPDATE hosts SET agent_audit_window = $1, agent_audit_count = $2, agent_audit_suppressed = $3 WHERE id = $4",
        )
        .bind(decision.next.start)
        .bind(decision.next.written)
        .bind(decision.next.collapsed)
        .bind(host_id.to_string())
        .execute(&mut **tx)
        .await?;
        if let Some((count, since)) = decision.flush_collapsed {
            let text = format!(
                "{count} state changes reported by the agent since {} were not recorded one by one \
                 (more than {AGENT_AUDIT_PER_WINDOW} per {} s)",
                to_rfc3339(since),
                AGENT_AUDIT_WINDOW_MS / 1000
            );
            append(
                tx,
                &NewAudit {
                    actor: &actor,
                    action: "reports_collapsed",
                    host_id: Some(host_id),
                    comment: None,
                    result: "ok",
                    detail: Some(&text),
                    event_id: None,
                    rule: None,
                    actor_token_id: None,
                },
            )
            .await?;
        }
        if decision.write {
            append(
                tx,
                &NewAudit {
                    actor: &actor,
                    action,
                    host_id: Some(host_id),
                    comment: None,
                    result,
                    detail: Some(&detail),
                    event_id: None,
                    rule: None,
                    actor_token_id: None,
                },
            )
            .await?;
        }
    }
    Ok(state)
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
        let queue = self.reports.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(batch_loop(self.pool.clone(), self.write.clone(), rx));
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
