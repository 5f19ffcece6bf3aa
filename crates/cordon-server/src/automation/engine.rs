//! Event evaluation and the actions it takes, each in one transaction: the event row,
//! the host's desired state (through the store's one quarantine path) and the audit
//! record (actor `rule:<name>`, detail naming the event) commit together.

use cordon_proto::MAX_MESSAGE_CHARS;
use serde::{Deserialize, Serialize};

use super::db;
use super::model::{DecisionRequest, DecisionResult, EventIn, EventRecord, RuleOutcome, Severity};
use super::qualify::{qualify, Decision, EventFacts, Fleet, HostFacts};
use super::validate::{self, Rule};
use crate::store::{append_audit, apply_tx, Action, ActionParams, NewAudit, StoreError, Tx};
use crate::timefmt::{now_ms, parse_rfc3339, to_rfc3339};
use crate::{ApiError, AppState};

/// Parameters of a quarantine a rule wants, kept with an approval until it is decided.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PlannedAction {
    comment: String,
    allow: Vec<String>,
    message: Option<String>,
    expires_after_secs: Option<i64>,
}

impl PlannedAction {
    fn of(rule: &Rule, ev: &EventRecord) -> Self {
        let comment = format!(
            "automatic: rule {} on event {} ({} {} from {})",
            rule.name,
            ev.id,
            ev.severity.as_str(),
            ev.event_type,
            ev.source
        );
        PlannedAction {
            comment,
            allow: rule.allow.clone(),
            message: rule.message.clone(),
            expires_after_secs: rule.expires_after_secs,
        }
    }

    fn params(&self, now: i64) -> ActionParams {
        ActionParams {
            comment: self.comment.clone(),
            allow: self.allow.clone(),
            message: self.message.clone(),
            expires_at: self
                .expires_after_secs
                .map(|s| now.saturating_add(s.saturating_mul(1000))),
            if_revisions: Default::default(),
        }
    }
}

/// Audit detail of an automatic action: machine-readable `event=` and `rule=` fields.
pub fn audit_detail(event_id: &str, rule: &str, extra: Option<&str>) -> String {
    match extra {
        Some(x) => format!("event={event_id}; rule={rule}; {x}"),
        None => format!("event={event_id}; rule={rule}"),
    }
}

pub fn rule_actor(rule: &str) -> String {
    format!("rule:{rule}")
}

fn check_event(ev: &EventIn) -> Result<(Severity, Option<i64>), ApiError> {
    let host = ev.host.trim();
    if host.is_empty() || host.len() > 255 {
        return Err(ApiError::invalid("host must be 1-255 characters (id, hostname or IP)"));
    }
    let t = ev.event_type.trim();
    if t.is_empty() || t.len() > 200 {
        return Err(ApiError::invalid("type must be 1-200 characters"));
    }
    if ev.tags.len() > 64 || ev.tags.iter().any(|g| g.len() > 200) {
        return Err(ApiError::invalid("at most 64 tags of at most 200 characters"));
    }
    if ev.source.as_deref().is_some_and(|s| s.len() > 100) {
        return Err(ApiError::invalid("source must be at most 100 characters"));
    }
    let severity = Severity::parse(&ev.severity).ok_or_else(|| {
        ApiError::invalid(format!(
            "severity {:?} must be info, low, medium, high or critical",
            ev.severity
        ))
    })?;
    let occurred = match ev.occurred_at.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(parse_rfc3339(t).map_err(ApiError::invalid)?),
    };
    Ok((severity, occurred))
}

fn new_event_id() -> String {
    format!("evt-{}", uuid::Uuid::new_v4().simple())
}

/// Evaluates and acts on one event. `fallbacks` are other references to the same host
/// (an adapter's agent IP), tried when `ev.host` is unknown.
pub async fn ingest(st: &AppState, ev: &EventIn, fallbacks: &[String]) -> Result<EventRecord, ApiError> {
    let (severity, occurred) = check_event(ev)?;
    let now = now_ms();
    let mut rec = EventRecord {
        id: new_event_id(),
        received_at: to_rfc3339(now),
        occurred_at: occurred.map(to_rfc3339),
        source: ev
            .source
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "api".into()),
        event_type: ev.event_type.trim().to_string(),
        tags: ev.tags.clone(),
        severity,
        host_ref: ev.host.trim().to_string(),
        host_id: None,
        status: "no_match".into(),
        rule: None,
        outcomes: vec![],
        raw: ev.raw.clone(),
    };
    let (guard, mut tx) = st.store.write_tx().await?;
    match evaluate_tx(&mut tx, &mut rec, fallbacks, now).await {
        Ok(()) => {
            db::insert_event_tx(&mut tx, &rec, now, occurred).await?;
            tx.commit().await.map_err(crate::StoreError::from)?;
            drop(guard);
            if rec.status == "quarantined" {
                if let Some(h) = &rec.host_id {
                    st.hub.notify(h);
                }
            }
        }
        Err(e) => {
            drop(tx);
            drop(guard);
            tracing::error!(error = %e, event = %rec.id, "automation failed on event");
            rec.status = "failed".into();
            rec.outcomes.push(RuleOutcome {
                rule: "-".into(),
                outcome: "error".into(),
                reason: e.to_string(),
            });
            let (_g, mut tx) = st.store.write_tx().await?;
            db::insert_event_tx(&mut tx, &rec, now, occurred).await?;
            tx.commit().await.map_err(crate::StoreError::from)?;
        }
    }
    tracing::info!(event = %rec.id, host = ?rec.host_id, status = %rec.status, rule = ?rec.rule, "event evaluated");
    Ok(rec)
}

async fn evaluate_tx(tx: &mut Tx, rec: &mut EventRecord, fallbacks: &[String], now: i64) -> Result<(), StoreError> {
    let settings = db::lock_settings_tx(tx).await?;
    let mut resolved = db::resolve_host_tx(tx, &rec.host_ref).await?;
    for f in fallbacks {
        if resolved.is_ok() {
            break;
        }
        if let Ok(h) = db::resolve_host_tx(tx, f).await? {
            resolved = Ok(h);
        }
    }
    let host = match resolved {
        Ok(h) => h,
        Err(why) => {
            rec.status = "unknown_host".into();
            rec.outcomes.push(RuleOutcome {
                rule: "-".into(),
                outcome: "unknown_host".into(),
                reason: why,
            });
            return Ok(());
        }
    };
    rec.host_id = Some(host.id.clone());
    let rules = db::rules_tx(tx).await?;
    let fleet_labels = db::fleet_labels_tx(tx).await?;
    let last = db::last_auto_action_tx(tx, &host.id).await?;
    let pending = db::approval_pending_tx(tx, &host.id).await?;
    let recent = db::recent_quarantines_tx(tx, now - settings.cap_window_secs.saturating_mul(1000)).await?;
    let facts = EventFacts {
        event_type: &rec.event_type,
        tags: &rec.tags,
        severity: rec.severity,
    };
    let hf = HostFacts {
        labels: &host.labels,
        quarantined: host.quarantined,
        approval_pending: pending,
        last_auto_action_ms: last,
    };
    let fleet = Fleet {
        labels: &fleet_labels,
        enabled: settings.enabled,
        protected_labels: &settings.protected_labels,
        cooldown_secs: settings.cooldown_secs,
        cap_count: settings.cap_count,
        recent_quarantines: recent,
        now_ms: now,
    };
    let mut chosen: Option<(Rule, Decision)> = None;
    for r in &rules {
        let name = r.spec.name.clone();
        if chosen.is_some() {
            rec.outcomes.push(RuleOutcome {
                rule: name,
                outcome: "not_evaluated".into(),
                reason: "an earlier rule acted".into(),
            });
            continue;
        }
        let rule = match (r.active, validate::rule(&r.spec)) {
            (false, _) => {
                let why = r.disabled_reason.clone().unwrap_or_else(|| "disabled".into());
                rec.outcomes.push(RuleOutcome {
                    rule: name,
                    outcome: "disabled".into(),
                    reason: why,
                });
                continue;
            }
            (true, Err(why)) => {
                rec.outcomes.push(RuleOutcome {
                    rule: name,
                    outcome: "rule_error".into(),
                    reason: why,
                });
                continue;
            }
            (true, Ok(rule)) => rule,
        };
        let d = qualify(&rule, true, &facts, &hf, &fleet);
        rec.outcomes.push(RuleOutcome {
            rule: name,
            outcome: d.kind().into(),
            reason: d.reason(),
        });
        if d.acts() {
            chosen = Some((rule, d));
        }
    }
    let Some((rule, decision)) = chosen else {
        rec.status = if rec.outcomes.iter().any(|o| o.outcome == "blocked") {
            "suppressed".into()
        } else {
            "no_match".into()
        };
        return Ok(());
    };
    rec.rule = Some(rule.name.clone());
    let actor = rule_actor(&rule.name);
    let plan = PlannedAction::of(&rule, rec);
    match decision {
        Decision::Quarantine => {
            let detail = audit_detail(&rec.id, &rule.name, None);
            apply_tx(
                tx,
                &host.id,
                &actor,
                Action::Quarantine,
                &plan.params(now),
                Some(&detail),
            )
            .await?;
            db::record_action_tx(tx, now, &host.id, &rule.name, &rec.id, "quarantine").await?;
            rec.status = "quarantined".into();
        }
        Decision::NotifyOnly => {
            let detail = audit_detail(
                &rec.id,
                &rule.name,
                Some("dry run (notify_only): would quarantine, nothing changed"),
            );
            append_audit(
                tx,
                &NewAudit {
                    actor: &actor,
                    action: "quarantine_dry_run",
                    host_id: Some(&host.id),
                    comment: Some(&plan.comment),
                    result: "ok",
                    detail: Some(&detail),
                },
            )
            .await?;
            db::record_action_tx(tx, now, &host.id, &rule.name, &rec.id, "notify_only").await?;
            rec.status = "notified".into();
        }
        Decision::ApprovalRequired(reason) => {
            let params = serde_json::to_string(&plan).map_err(|e| StoreError::Other(e.to_string()))?;
            db::insert_approval_tx(tx, &rec.id, &host.id, &rule.name, &params, &reason, now).await?;
            let detail = audit_detail(&rec.id, &rule.name, Some(&reason));
            append_audit(
                tx,
                &NewAudit {
                    actor: &actor,
                    action: "approval_required",
                    host_id: Some(&host.id),
                    comment: Some(&plan.comment),
                    result: "pending",
                    detail: Some(&detail),
                },
            )
            .await?;
            rec.status = "approval_required".into();
        }
        // Not acting decisions never get here.
        Decision::NoMatch(_) | Decision::Blocked(_) | Decision::RuleError(_) => rec.status = "no_match".into(),
    }
    Ok(())
}

/// Approves (quarantines) or denies pending approvals, all in one transaction.
pub async fn decide(
    st: &AppState,
    actor: &str,
    req: &DecisionRequest,
    approve: bool,
) -> Result<Vec<DecisionResult>, ApiError> {
    if req.all != req.ids.is_empty() {
        return Err(ApiError::invalid("give ids [...] or all: true (not both)"));
    }
    let comment = req.comment.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let Some(comment) = comment else {
        return Err(ApiError::invalid("comment is required: say why"));
    };
    if comment.chars().count() > 2000 {
        return Err(ApiError::invalid("comment is longer than 2000 characters"));
    }
    let now = now_ms();
    let (guard, mut tx) = st.store.write_tx().await?;
    let pending = db::pending_approvals_tx(&mut tx).await?;
    let mut results = Vec::new();
    let mut woken = Vec::new();
    if !req.all {
        for id in &req.ids {
            if !pending.iter().any(|(a, _)| a.id == *id) {
                match db::approval_status_tx(&mut tx, *id).await? {
                    Some((_, host_id)) => results.push(DecisionResult {
                        id: *id,
                        host_id,
                        status: "not_pending".into(),
                    }),
                    None => return Err(ApiError::not_found(format!("no approval {id}"))),
                }
            }
        }
    }
    for (a, params) in pending.iter().filter(|(a, _)| req.all || req.ids.contains(&a.id)) {
        let status = if !approve {
            append_audit(
                &mut tx,
                &NewAudit {
                    actor,
                    action: "approval_denied",
                    host_id: Some(&a.host_id),
                    comment: Some(comment),
                    result: "ok",
                    detail: Some(&audit_detail(&a.event_id, &a.rule, Some(&format!("approval {}", a.id)))),
                },
            )
            .await?;
            "denied"
        } else {
            let host = sqlx::query("SELECT quarantined, revoked FROM hosts WHERE id = $1")
                .bind(a.host_id.clone())
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            let live = match &host {
                Some(r) => crate::store::get_i64(r, "quarantined")? == 0 && crate::store::get_i64(r, "revoked")? == 0,
                None => false,
            };
            if live {
                let plan: PlannedAction = serde_json::from_str(params)
                    .map_err(|e| ApiError::internal(format!("stored approval {}: {e}", a.id)))?;
                let mut p = plan.params(now);
                p.comment = format!("{}; approved by {actor}: {comment}", plan.comment);
                p.message = p.message.map(|m| m.chars().take(MAX_MESSAGE_CHARS).collect());
                let extra = format!("approval {} approved by {actor}", a.id);
                let detail = audit_detail(&a.event_id, &a.rule, Some(&extra));
                apply_tx(
                    &mut tx,
                    &a.host_id,
                    &rule_actor(&a.rule),
                    Action::Quarantine,
                    &p,
                    Some(&detail),
                )
                .await?;
                db::record_action_tx(&mut tx, now, &a.host_id, &a.rule, &a.event_id, "approved").await?;
                db::set_event_status_tx(&mut tx, &a.event_id, "quarantined").await?;
                woken.push(a.host_id.clone());
                "approved"
            } else {
                "superseded"
            }
        };
        if status == "denied" {
            db::set_event_status_tx(&mut tx, &a.event_id, "denied").await?;
        }
        db::decide_approval_tx(&mut tx, a.id, status, actor, Some(comment), now).await?;
        results.push(DecisionResult {
            id: a.id,
            host_id: a.host_id.clone(),
            status: status.into(),
        });
    }
    tx.commit().await.map_err(crate::StoreError::from)?;
    drop(guard);
    st.hub.notify_all(&woken);
    Ok(results)
}
