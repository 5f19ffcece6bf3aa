//! The automation service: plain async functions over the server state and the caller
//! (roles checked here first), called by the automation REST handlers ([`crate::api`]) and
//! the console alike. The logic that decides is pure ([`crate::engine`],
//! [`crate::qualify`], [`crate::validate`]); the store owns every transaction.

use cordon_proto::automation::{
    Approval, ApprovalStatus, DecisionRequest, DecisionResult, Delivery, DeliveryStatus, EventIn, EventRecord,
    EventStatus, OutcomeKind, RuleMode, RuleOutcome, RuleRecord, RuleSpec, Settings, SettingsPatch, Target, TargetSpec,
};
use cordon_proto::Role;
use cordon_server_core::service::Caller;
use cordon_server_core::store::automation::{approval_effect, Decide, EventFilter, LabelsReplaced, PlannedAction};
use cordon_server_core::timefmt::{now_ms, Timestamp};
use cordon_server_core::{ApiError, AppState};

use crate::{engine, qualify, validate};

/// Evaluates and acts on one event (responder). `fallbacks` are other references to the
/// same host (an adapter's agent IP), tried when `ev.host` is unknown. An event whose
/// evaluation fails is still recorded, with status `failed` and the reason.
///
/// # Errors
/// 400 for an event that fails [`engine::check_event`]; 500 when even the failed event
/// cannot be stored.
pub async fn ingest(
    st: &AppState,
    caller: &Caller,
    ev: &EventIn,
    fallbacks: &[String],
) -> Result<EventRecord, ApiError> {
    caller.require(Role::Responder)?;
    let (severity, occurred) = engine::check_event(ev)?;
    let now = now_ms();
    let mut rec = EventRecord {
        id: engine::new_event_id(),
        received_at: Timestamp::from_unix_ms_clamped(now),
        occurred_at: occurred.map(Timestamp::from_unix_ms_clamped),
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
        status: EventStatus::NoMatch,
        rule: None,
        outcomes: vec![],
        raw: ev.raw.clone(),
    };
    match st
        .store
        .ingest_event(&mut rec, occurred, fallbacks, now, |ctx, r| {
            engine::evaluate(ctx, r, now)
        })
        .await
    {
        Ok(()) => {
            if rec.status == EventStatus::Quarantined {
                if let Some(h) = &rec.host_id {
                    st.hub.notify(h);
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %cordon_server_core::error::chain(&e), event = %rec.id, "automation failed on event");
            rec.status = EventStatus::Failed;
            rec.outcomes.push(RuleOutcome {
                rule: "-".into(),
                outcome: OutcomeKind::Error,
                reason: e.to_string(),
            });
            st.store.insert_event(&rec, now, occurred).await?;
        }
    }
    tracing::info!(event = %rec.id, host = ?rec.host_id, status = %rec.status, rule = ?rec.rule, "event evaluated");
    Ok(rec)
}

/// Stored events, newest first (viewer).
pub async fn events(st: &AppState, caller: &Caller, filter: &EventFilter) -> Result<Vec<EventRecord>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(st.store.events(filter).await?)
}

/// One event (viewer).
///
/// # Errors
/// 404 when there is no such event.
pub async fn event(st: &AppState, caller: &Caller, id: &str) -> Result<EventRecord, ApiError> {
    caller.require(Role::Viewer)?;
    st.store
        .event(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event {id:?}")))
}

/// Fills in each rule's [`RuleRecord::cannot_fire`] from the fleet as it is now (labels
/// of the non-revoked hosts, kill switch, protected labels), with the evaluation's own
/// functions ([`qualify::cannot_fire`]).
async fn with_standing(st: &AppState, mut rules: Vec<RuleRecord>) -> Result<Vec<RuleRecord>, ApiError> {
    let settings = st.store.automation_settings().await?;
    let host_labels = st.store.fleet_host_labels().await?;
    let mut labels: Vec<String> = host_labels.iter().flatten().cloned().collect();
    labels.sort();
    labels.dedup();
    let fleet = qualify::FleetNow {
        labels: &labels,
        host_labels: &host_labels,
        enabled: settings.enabled,
        protected_labels: &settings.protected_labels,
    };
    for r in &mut rules {
        let checked = validate::rule(&r.spec);
        r.cannot_fire = qualify::cannot_fire(
            checked.as_ref().map_err(String::as_str),
            r.active,
            r.disabled_reason.as_deref(),
            &fleet,
        );
    }
    Ok(rules)
}

/// Every rule (viewer), each with why it cannot fire now ([`RuleRecord::cannot_fire`]).
pub async fn rules(st: &AppState, caller: &Caller) -> Result<Vec<RuleRecord>, ApiError> {
    caller.require(Role::Viewer)?;
    with_standing(st, st.store.rules().await?).await
}

/// Labels stored before the label checks that the checks would refuse now (viewer): one
/// sentence each, sorted, empty for a clean database
/// ([`cordon_server_core::service::validate::poisoned_labels`] over every label known
/// anywhere). The rules page flags them, since a rule on one of them may not fire.
///
/// # Errors
/// 403 below viewer; the store's error when the labels cannot be read.
pub async fn poisoned_labels(st: &AppState, caller: &Caller) -> Result<Vec<String>, ApiError> {
    caller.require(Role::Viewer)?;
    let known = st.store.known_labels(LabelsReplaced::Nothing).await?;
    Ok(cordon_server_core::service::validate::poisoned_labels(&known))
}

/// One rule (viewer), with why it cannot fire now.
///
/// # Errors
/// 404 when there is no such rule.
pub async fn rule(st: &AppState, caller: &Caller, name: &str) -> Result<RuleRecord, ApiError> {
    caller.require(Role::Viewer)?;
    let r = st
        .store
        .rule(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no rule {name:?}")))?;
    let mut v = with_standing(st, vec![r]).await?;
    v.pop().ok_or_else(|| ApiError::not_found(format!("no rule {name:?}")))
}

/// Creates or replaces a rule (admin). A rule that fails validation is stored disabled
/// with the reason (`active: false`, `disabled_reason`).
///
/// # Errors
/// 400 for a bad name or a trigger label [`cordon_server_core::service::validate::label`]
/// refuses; 409 for a trigger label that looks like a label known elsewhere (nothing stored).
pub async fn save_rule(st: &AppState, caller: &Caller, mut spec: RuleSpec) -> Result<RuleRecord, ApiError> {
    caller.require(Role::Admin)?;
    spec.name = validate::rule_name(&spec.name).map_err(ApiError::invalid)?;
    // Trigger labels pass the one label check (trial13 MED 1): a look-alike of a label
    // known anywhere (`wеb` next to `web`, `quarantine` next to `Quarantine`) is refused
    // naming it, before anything is stored.
    let known = st.store.known_labels(LabelsReplaced::RuleTriggers(&spec.name)).await?;
    cordon_server_core::service::validate::new_labels(&spec.trigger_labels, &known)?;
    let (active, reason) = match validate::rule(&spec) {
        Ok(_) if spec.enabled => (true, None),
        Ok(_) => (false, Some("disabled by request".to_string())),
        Err(why) => (false, Some(format!("invalid: {why}"))),
    };
    let saved = st
        .store
        .save_rule(caller, &spec, active, reason.as_deref(), now_ms())
        .await?;
    let mut v = with_standing(st, vec![saved]).await?;
    v.pop().ok_or_else(|| ApiError::internal("saved rule vanished"))
}

/// Deletes a rule (admin).
///
/// # Errors
/// 404 when there is no such rule.
pub async fn delete_rule(st: &AppState, caller: &Caller, name: &str) -> Result<(), ApiError> {
    caller.require(Role::Admin)?;
    Ok(st.store.delete_rule(caller, name).await?)
}

/// The guardrails and retention settings (viewer).
pub async fn settings(st: &AppState, caller: &Caller) -> Result<Settings, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(st.store.automation_settings().await?)
}

/// Changes guardrails (admin); `{"enabled": false}` is the kill switch.
///
/// # Errors
/// 400 when the result is out of range (nothing changes).
pub async fn update_settings(st: &AppState, caller: &Caller, patch: &SettingsPatch) -> Result<Settings, ApiError> {
    caller.require(Role::Admin)?;
    // Protected labels pass the one label check (trial11 MED 3, trial13 MED 1): no bidi,
    // invisible or space characters, no look-alike of a label known anywhere else.
    let mut patch = patch.clone();
    if let Some(list) = &patch.protected_labels {
        let list: Vec<String> = list.iter().filter(|l| !l.trim().is_empty()).cloned().collect();
        let known = st.store.known_labels(LabelsReplaced::ProtectedLabels).await?;
        patch.protected_labels = Some(cordon_server_core::service::validate::new_labels(&list, &known)?);
    }
    let patch = &patch;
    // The audit record's detail is the change itself: never written empty (review14
    // LOW-13: an encoding failure was dropped silently).
    let detail = serde_json::to_string(patch).map_err(|source| {
        ApiError::from(cordon_server_core::service::error::ServiceError::Encode {
            what: "the settings change for the audit record",
            source,
        })
    })?;
    Ok(st
        .store
        .update_automation_settings(caller, &detail, |s| validate::apply_patch(s, patch), now_ms())
        .await?)
}

/// How many approvals are pending (viewer): the console's navigation badge.
///
/// # Errors
/// 403 below viewer; 500 (logged) when the store fails.
pub async fn pending_approval_count(st: &AppState, caller: &Caller) -> Result<i64, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(st.store.pending_approval_count().await?)
}

/// Approvals in `status` (`None`: all), newest first (viewer).
///
/// # Errors
/// 400 for a status not in [`ApprovalStatus`] (the message does not repeat the
/// value: it comes from a URL anyone can craft, trial8).
pub async fn approvals(
    st: &AppState,
    caller: &Caller,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<Approval>, ApiError> {
    caller.require(Role::Viewer)?;
    let status = match status {
        None => None,
        Some(s) => Some(ApprovalStatus::parse(s).ok_or_else(|| {
            ApiError::invalid("unknown approval status: use pending, approved, denied, superseded or all")
        })?),
    };
    Ok(st.store.approvals(status, limit).await?)
}

/// One approval as a review of a decision shows it: what approving (or denying) it
/// does now, computed from the host and the fleet's protected labels with the rule the
/// decision itself follows ([`approval_effect`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApprovalReview {
    /// Approval id.
    pub id: i64,
    /// The host concerned.
    pub host_id: String,
    /// Its hostname (the id when the host is gone).
    pub hostname: String,
    /// The host's desired-state revision the review saw (`None`: the host is gone); sent
    /// back with the decision as `if_revisions` (409 if it moved on).
    pub revision: Option<i64>,
    /// The approval's status now (`pending`, or already decided).
    pub status: ApprovalStatus,
    /// `will_quarantine`, `already_quarantined`, `protected`, `revoked`; for a deny
    /// `will_deny`; `not_pending` for an approval already decided.
    pub effect: String,
    /// Whether the decision changes something for this approval: approving quarantines
    /// the host; denying closes a pending approval.
    pub changes: bool,
    /// In words ("already quarantined (no change)", "host now protected by label dc —
    /// will be refused").
    pub words: String,
    /// The host carries a flag (a duplicate or invalid hostname, a shared address):
    /// sentences name it with its short id.
    pub flagged: bool,
    /// For an approval that quarantines: what the quarantine carries, one line each
    /// (exceptions, message to users, automatic release) — the plan the rule made when
    /// the event arrived, which approving applies as it is. Empty otherwise.
    pub applies: Vec<String>,
    /// For an approval that quarantines: the rule was changed or deleted since the event
    /// (e.g. switched to `notify_only`), in words; approving still applies the plan above
    /// (trial19 LOW-j: the review said nothing).
    pub rule_changed: Option<String>,
}

/// What a quarantine from `plan` carries, one line each (pure).
pub fn plan_lines(plan: &PlannedAction) -> Vec<String> {
    let mut out = vec![if plan.allow.is_empty() {
        "exceptions: none (all traffic but Cordon's own is blocked)".to_string()
    } else {
        format!("exceptions: {}", plan.allow.join(", "))
    }];
    out.push(match &plan.message {
        Some(m) => format!("message to users: “{m}”"),
        None => "message to users: none".into(),
    });
    out.push(match plan.expires_after_secs {
        // Said as a span reads back (issue 13: one printer): `90m`, not `1h 30m`.
        Some(s) => match u64::try_from(s).ok().and_then(cordon_proto::timefmt::Span::from_secs) {
            Some(span) => format!("automatic release {span} after approval"),
            None => format!("automatic release {s}s after approval"),
        },
        None => "automatic release: none (stays until released)".into(),
    });
    out
}

/// Whether the rule behind approval `a` changed since its event (pure): `None` when it
/// is as it was; else the sentence the review shows.
pub fn rule_change(a: &Approval, rule: Option<&RuleRecord>) -> Option<String> {
    let keep =
        "approving applies the quarantine as the rule asked when the event arrived (below), not the rule as it is now";
    match rule {
        None => Some(format!("rule {} was deleted since the event; {keep}", a.rule)),
        Some(r) if r.updated_at > a.created_at => {
            let mut now = vec![format!("mode {}", r.spec.mode)];
            if r.spec.mode == RuleMode::NotifyOnly {
                now.push("a dry run that quarantines nothing".into());
            }
            if !r.active {
                now.push(format!(
                    "not active: {}",
                    r.disabled_reason.as_deref().unwrap_or("disabled")
                ));
            }
            Some(format!(
                "rule {} changed since the event (now: {}); {keep}",
                a.rule,
                now.join(", ")
            ))
        }
        Some(_) => None,
    }
}

/// What approving (`approve`) or denying the approvals `ids` would do now, per approval
/// (admin, as deciding is; nothing is written).
///
/// # Errors
/// 403 below admin; 404 for an id that names no approval.
pub async fn review_approvals(
    st: &AppState,
    caller: &Caller,
    ids: &[i64],
    approve: bool,
) -> Result<Vec<ApprovalReview>, ApiError> {
    caller.require(Role::Admin)?;
    let protected = st.store.automation_settings().await?.protected_labels;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let (a, plan) = st
            .store
            .approval_plan(*id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no approval {id}")))?;
        let host = match st.store.host(&a.host_id).await {
            Ok(h) => Some(h),
            Err(cordon_server_core::store::StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let effect = approval_effect(host.as_ref(), &protected);
        let state_now = host
            .as_ref()
            .map(|h| h.state.as_str().replace('_', " "))
            .unwrap_or_else(|| "not enrolled".into());
        let (effect_name, changes, words) = if a.status != ApprovalStatus::Pending {
            (
                "not_pending".to_string(),
                false,
                format!("already {} (no change)", a.status),
            )
        } else if approve {
            (effect.as_str().to_string(), effect.changes(), effect.words())
        } else {
            (
                "will_deny".to_string(),
                true,
                format!("will be denied; nothing happens to the host (now: {state_now})"),
            )
        };
        let quarantines = approve && effect_name == "will_quarantine";
        let (applies, rule_changed) = if quarantines {
            let rule = st.store.rule(&a.rule).await?;
            (plan_lines(&plan), rule_change(&a, rule.as_ref()))
        } else {
            (Vec::new(), None)
        };
        out.push(ApprovalReview {
            applies,
            rule_changed,
            id: a.id,
            hostname: host
                .as_ref()
                .map(|h| h.hostname.clone())
                .unwrap_or_else(|| a.host_id.clone()),
            revision: host.as_ref().map(|h| h.desired.revision),
            flagged: host.as_ref().is_some_and(|h| !h.flags.is_empty()),
            host_id: a.host_id,
            status: a.status,
            effect: effect_name,
            changes,
            words,
        });
    }
    Ok(out)
}

/// Approves pending approvals: each quarantines its host as the rule asked (admin).
pub async fn approve(st: &AppState, caller: &Caller, req: &DecisionRequest) -> Result<Vec<DecisionResult>, ApiError> {
    decide(st, caller, req, true).await
}

/// Denies pending approvals (admin).
pub async fn deny(st: &AppState, caller: &Caller, req: &DecisionRequest) -> Result<Vec<DecisionResult>, ApiError> {
    decide(st, caller, req, false).await
}

/// Approves or denies the requested approvals, all in one transaction; admin only, a
/// comment is required.
///
/// # Errors
/// 400 without a comment or with both/neither of `ids` and `all`; 404 for an unknown id
/// (nothing is decided then).
async fn decide(
    st: &AppState,
    caller: &Caller,
    req: &DecisionRequest,
    approve: bool,
) -> Result<Vec<DecisionResult>, ApiError> {
    caller.require(Role::Admin)?;
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
    let which = if req.all { Decide::All } else { Decide::Ids(&req.ids) };
    let (results, woken) = st
        .store
        .decide_approvals(caller, which, approve, comment, &req.if_revisions, now_ms())
        .await?;
    st.hub.notify_all(&woken);
    Ok(results)
}

/// Notification targets (admin: their URLs are secrets).
pub async fn targets(st: &AppState, caller: &Caller) -> Result<Vec<Target>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(st.store.notify_targets().await?)
}

/// Adds a notification target (admin).
///
/// # Errors
/// 400 for a bad spec; 409 when a target of that name exists.
pub async fn add_target(st: &AppState, caller: &Caller, spec: &TargetSpec) -> Result<Target, ApiError> {
    caller.require(Role::Admin)?;
    let spec = validate::target(spec).map_err(ApiError::invalid)?;
    Ok(st.store.add_notify_target(caller, &spec).await?)
}

/// Removes a notification target (admin).
pub async fn delete_target(st: &AppState, caller: &Caller, id: i64) -> Result<(), ApiError> {
    caller.require(Role::Admin)?;
    Ok(st.store.delete_notify_target(caller, id).await?)
}

/// Sends the notifications of audit record `record` now
/// ([`crate::notify::deliver_record_now`], at most `wait`): an orderly stop's shutdown
/// checkpoint reaches the targets subscribed to `audit_checkpoint` before the process
/// exits (trial7 MED 2). Logs a warning naming each target (id and URL origin) it could
/// not reach — the copy then stays queued and is sent at the next start.
pub async fn deliver_now(st: &AppState, record: i64, wait: std::time::Duration) {
    let client = match crate::notify::http_client(&Default::default()) {
        Ok(c) => c,
        Err(e) => {
            let error = cordon_server_core::error::chain(&e);
            tracing::warn!(%error, "cannot deliver the shutdown audit checkpoint: no HTTP client");
            return;
        }
    };
    match crate::notify::deliver_record_now(&st.store, &client, record, wait).await {
        Ok(missed) => {
            for m in missed {
                tracing::warn!(
                    target_id = m.target_id,
                    target = %m.origin,
                    error = %m.error,
                    record,
                    "shutdown audit checkpoint not delivered to notification target {} ({}) before stopping; it stays queued and is sent at the next start",
                    m.target_id,
                    m.origin
                );
            }
        }
        Err(e) => {
            tracing::warn!(error = %cordon_server_core::error::chain(&e), record, "cannot deliver the shutdown audit checkpoint")
        }
    }
}

/// Outbox rows and their delivery status, newest first (viewer).
pub async fn deliveries(
    st: &AppState,
    caller: &Caller,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<Delivery>, ApiError> {
    caller.require(Role::Viewer)?;
    let status = match status.map(|s| (s, DeliveryStatus::parse(s))) {
        None => None,
        Some((_, Some(s))) => Some(s),
        // No row has a status outside the set: the filter matches nothing (not refused,
        // as before the status was typed).
        Some((_, None)) => return Ok(Vec::new()),
    };
    Ok(st.store.deliveries(status, limit).await?)
}
