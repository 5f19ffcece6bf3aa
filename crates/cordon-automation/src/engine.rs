//! Event evaluation (pure): what the rules and guardrails say about one event, given what
//! the store read in the evaluation's transaction ([`EvalContext`]). The store carries
//! out the returned [`Verdict`] in that same transaction, so the event row, the host's
//! desired state and the audit record (actor `rule:<name>`, the event and rule in their
//! own columns) commit together.

use cordon_proto::automation::{EventIn, EventRecord, EventStatus, OutcomeKind, RuleOutcome, Severity};
use cordon_server_core::store::automation::{EvalContext, PlannedAction, Verdict};
use cordon_server_core::timefmt::Timestamp;
use cordon_server_core::ApiError;

use crate::qualify::{qualify, Decision, EventFacts, Fleet, HostFacts};
use crate::validate::{self, Rule};

pub use cordon_server_core::store::automation::rule_actor;

/// The quarantine `rule` wants for `ev`.
pub fn plan(rule: &Rule, ev: &EventRecord) -> PlannedAction {
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

/// Checks an incoming event; returns its severity and when it occurred (Unix ms).
///
/// # Errors
/// 400 naming the field that is missing, too long or malformed.
pub fn check_event(ev: &EventIn) -> Result<(Severity, Option<i64>), ApiError> {
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
    // Unknown severities never get here: `Severity`'s deserializer refuses them (400).
    let severity = ev.severity;
    let occurred = ev.occurred_at.map(Timestamp::unix_ms);
    Ok((severity, occurred))
}

/// A new event id, `evt-<uuid>`.
pub fn new_event_id() -> String {
    format!("evt-{}", uuid::Uuid::new_v4().simple())
}

/// Runs every rule over the event in order (the first that acts wins; later ones are
/// `not_evaluated`), recording each rule's outcome in `rec.outcomes` and setting
/// `rec.status` and `rec.rule` for the outcome; the store sets the final status of an
/// action it carries out.
pub fn evaluate(ctx: &EvalContext, rec: &mut EventRecord, now: i64) -> Verdict {
    let facts = EventFacts {
        event_type: &rec.event_type,
        tags: &rec.tags,
        severity: rec.severity,
    };
    let hf = HostFacts {
        labels: &ctx.host.labels,
        quarantined: ctx.host.quarantined,
        approval_pending: ctx.approval_pending,
        last_auto_action_ms: ctx.last_auto_action_ms,
    };
    let fleet = Fleet {
        labels: &ctx.fleet_labels,
        enabled: ctx.settings.enabled,
        protected_labels: &ctx.settings.protected_labels,
        cooldown_secs: ctx.settings.cooldown_secs,
        cap_count: ctx.settings.cap_count,
        recent_quarantines: ctx.recent_quarantines,
        now_ms: now,
    };
    let mut outcomes = Vec::new();
    let mut chosen: Option<(Rule, Decision)> = None;
    for r in &ctx.rules {
        let name = r.spec.name.clone();
        if chosen.is_some() {
            outcomes.push(RuleOutcome {
                rule: name,
                outcome: OutcomeKind::NotEvaluated,
                reason: "an earlier rule acted".into(),
            });
            continue;
        }
        let rule = match (r.active, validate::rule(&r.spec)) {
            (false, _) => {
                let why = r.disabled_reason.clone().unwrap_or_else(|| "disabled".into());
                outcomes.push(RuleOutcome {
                    rule: name,
                    outcome: OutcomeKind::Disabled,
                    reason: why,
                });
                continue;
            }
            (true, Err(why)) => {
                outcomes.push(RuleOutcome {
                    rule: name,
                    outcome: OutcomeKind::RuleError,
                    reason: why,
                });
                continue;
            }
            (true, Ok(rule)) => rule,
        };
        let d = qualify(&rule, true, &facts, &hf, &fleet);
        outcomes.push(RuleOutcome {
            rule: name,
            outcome: d.kind(),
            reason: d.reason(),
        });
        if d.acts() {
            chosen = Some((rule, d));
        }
    }
    rec.outcomes.extend(outcomes);
    let Some((rule, decision)) = chosen else {
        rec.status = if rec.outcomes.iter().any(|o| o.outcome == OutcomeKind::Blocked) {
            EventStatus::Suppressed
        } else {
            EventStatus::NoMatch
        };
        return Verdict::Nothing;
    };
    rec.rule = Some(rule.name.clone());
    let plan = plan(&rule, rec);
    let name = rule.name.clone();
    match decision {
        Decision::Quarantine => Verdict::Quarantine { rule: name, plan },
        Decision::NotifyOnly => Verdict::NotifyOnly { rule: name, plan },
        Decision::ApprovalRequired(reason) => Verdict::ApprovalRequired {
            rule: name,
            plan,
            reason,
        },
        // Not acting decisions never get here.
        Decision::NoMatch(_) | Decision::Blocked(_) | Decision::RuleError(_) => {
            rec.status = EventStatus::NoMatch;
            Verdict::Nothing
        }
    }
}
