//! SQL for the automation tables (same queries on SQLite and PostgreSQL via `Any`).

use sqlx::any::AnyRow;
use sqlx::AnyPool;

use super::model::{Approval, EventRecord, RuleOutcome, RuleRecord, RuleSpec, Settings, SettingsPatch, Severity};
use crate::store::{get_i64, get_opt_i64, get_opt_str, get_str, json_list, to_json_list, StoreError, Tx};
use crate::timefmt::to_rfc3339;

const SETTINGS_COLS: &str =
    "enabled, cap_count, cap_window_secs, cooldown_secs, protected_labels, event_retention_days, \
     event_retention_max, console_url";

fn settings_row(r: &AnyRow) -> Result<Settings, StoreError> {
    Ok(Settings {
        enabled: get_i64(r, "enabled")? != 0,
        cap_count: get_i64(r, "cap_count")?,
        cap_window_secs: get_i64(r, "cap_window_secs")?,
        cooldown_secs: get_i64(r, "cooldown_secs")?,
        protected_labels: json_list(&get_str(r, "protected_labels")?),
        event_retention_days: get_i64(r, "event_retention_days")?,
        event_retention_max: get_i64(r, "event_retention_max")?,
        console_url: get_opt_str(r, "console_url")?,
    })
}

pub async fn settings(pool: &AnyPool) -> Result<Settings, StoreError> {
    let row = sqlx::query(&format!("SELECT {SETTINGS_COLS} FROM auto_settings WHERE id = 1"))
        .fetch_one(pool)
        .await?;
    settings_row(&row)
}

/// Reads the settings row after touching it, which takes the row lock on PostgreSQL (and
/// the write lock on SQLite): concurrent evaluations serialize here, so the fleet cap
/// cannot be overrun by replicas racing each other.
pub async fn lock_settings_tx(tx: &mut Tx) -> Result<Settings, StoreError> {
    sqlx::query("UPDATE auto_settings SET updated_at = updated_at WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query(&format!("SELECT {SETTINGS_COLS} FROM auto_settings WHERE id = 1"))
        .fetch_one(&mut **tx)
        .await?;
    settings_row(&row)
}

pub fn apply_patch(mut s: Settings, p: &SettingsPatch) -> Result<Settings, String> {
    if let Some(v) = p.enabled {
        s.enabled = v;
    }
    if let Some(v) = p.cap_count {
        s.cap_count = v;
    }
    if let Some(v) = p.cap_window_secs {
        s.cap_window_secs = v;
    }
    if let Some(v) = p.cooldown_secs {
        s.cooldown_secs = v;
    }
    if let Some(v) = &p.protected_labels {
        s.protected_labels = v
            .iter()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
    }
    if let Some(v) = p.event_retention_days {
        s.event_retention_days = v;
    }
    if let Some(v) = p.event_retention_max {
        s.event_retention_max = v;
    }
    if let Some(v) = &p.console_url {
        let v = v.trim().trim_end_matches('/');
        s.console_url = (!v.is_empty()).then(|| v.to_string());
    }
    if s.cap_count < 0 || s.cap_window_secs <= 0 || s.cooldown_secs < 0 {
        return Err("cap_count must be >= 0, cap_window_secs > 0, cooldown_secs >= 0".into());
    }
    if s.event_retention_days <= 0 || s.event_retention_max <= 0 {
        return Err("event retention (days, max) must be positive".into());
    }
    Ok(s)
}

pub async fn save_settings_tx(tx: &mut Tx, s: &Settings, actor: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE auto_settings SET enabled = $1, cap_count = $2, cap_window_secs = $3, cooldown_secs = $4, protected_labels = $5, \
         event_retention_days = $6, event_retention_max = $7, console_url = $8, updated_at = $9, updated_by = $10 WHERE id = 1",
    )
    .bind(s.enabled as i64)
    .bind(s.cap_count)
    .bind(s.cap_window_secs)
    .bind(s.cooldown_secs)
    .bind(to_json_list(&s.protected_labels))
    .bind(s.event_retention_days)
    .bind(s.event_retention_max)
    .bind(s.console_url.clone())
    .bind(now)
    .bind(actor.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

// ---- rules ----

fn rule_row(r: &AnyRow) -> Result<RuleRecord, StoreError> {
    let spec: RuleSpec = serde_json::from_str(&get_str(r, "spec")?)
        .map_err(|e| StoreError::Other(format!("stored rule is unreadable: {e}")))?;
    Ok(RuleRecord {
        id: get_i64(r, "id")?,
        spec,
        active: get_i64(r, "enabled")? != 0,
        disabled_reason: get_opt_str(r, "disabled_reason")?,
        updated_at: to_rfc3339(get_i64(r, "updated_at")?),
        updated_by: get_str(r, "updated_by")?,
    })
}

const RULE_COLS: &str = "id, name, spec, enabled, disabled_reason, updated_at, updated_by";

pub async fn rules(pool: &AnyPool) -> Result<Vec<RuleRecord>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {RULE_COLS} FROM auto_rules ORDER BY id"))
        .fetch_all(pool)
        .await?;
    rows.iter().map(rule_row).collect()
}

pub async fn rules_tx(tx: &mut Tx) -> Result<Vec<RuleRecord>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {RULE_COLS} FROM auto_rules ORDER BY id"))
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(rule_row).collect()
}

pub async fn rule(pool: &AnyPool, name: &str) -> Result<Option<RuleRecord>, StoreError> {
    let row = sqlx::query(&format!("SELECT {RULE_COLS} FROM auto_rules WHERE name = $1"))
        .bind(name.to_string())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(rule_row).transpose()
}

/// Inserts or replaces the rule named `spec.name`. Returns whether it existed.
pub async fn put_rule_tx(
    tx: &mut Tx,
    spec: &RuleSpec,
    active: bool,
    reason: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let text = serde_json::to_string(spec).map_err(|e| StoreError::Other(e.to_string()))?;
    let n = sqlx::query("UPDATE auto_rules SET spec = $1, enabled = $2, disabled_reason = $3, updated_at = $4, updated_by = $5 WHERE name = $6")
        .bind(text.clone())
        .bind(active as i64)
        .bind(reason.map(str::to_string))
        .bind(now)
        .bind(actor.to_string())
        .bind(spec.name.clone())
        .execute(&mut **tx)
        .await?;
    if n.rows_affected() == 1 {
        return Ok(true);
    }
    sqlx::query(
        "INSERT INTO auto_rules (name, spec, enabled, disabled_reason, created_at, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(spec.name.clone())
    .bind(text)
    .bind(active as i64)
    .bind(reason.map(str::to_string))
    .bind(now)
    .bind(now)
    .bind(actor.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(false)
}

pub async fn delete_rule_tx(tx: &mut Tx, name: &str) -> Result<bool, StoreError> {
    let n = sqlx::query("DELETE FROM auto_rules WHERE name = $1")
        .bind(name.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(n.rows_affected() == 1)
}

// ---- hosts, as automation sees them ----

/// A host an event resolved to.
#[derive(Debug, Clone)]
pub struct HostRow {
    pub id: String,
    pub hostname: String,
    pub quarantined: bool,
    pub labels: Vec<String>,
}

/// id, hostname, addresses (JSON), quarantined.
type HostTuple = (String, String, String, bool);
type Pass<'a> = dyn Fn(&HostTuple) -> bool + Sync + 'a;

fn strip_prefix_len(addr: &str) -> &str {
    addr.split('/').next().unwrap_or(addr).trim()
}

/// Resolves an event's host reference: id, hostname (exact, then case-insensitive, then
/// short name), then IP address. Ambiguous names resolve to nothing (with the reason).
pub async fn resolve_host_tx(tx: &mut Tx, reference: &str) -> Result<Result<HostRow, String>, StoreError> {
    let r = reference.trim();
    let rows = sqlx::query("SELECT id, hostname, addresses, quarantined FROM hosts WHERE revoked = 0")
        .fetch_all(&mut **tx)
        .await?;
    let mut all = Vec::with_capacity(rows.len());
    for row in &rows {
        all.push((
            get_str(row, "id")?,
            get_str(row, "hostname")?,
            get_str(row, "addresses")?,
            get_i64(row, "quarantined")? != 0,
        ));
    }
    let rl = r.to_lowercase();
    let short = |h: &str| h.split('.').next().unwrap_or(h).to_lowercase();
    let passes: [&Pass<'_>; 5] = [
        &|h| h.0 == r,
        &|h| h.1 == r,
        &|h| h.1.to_lowercase() == rl,
        &|h| (!r.contains('.') || !h.1.contains('.')) && short(&h.1) == short(r),
        &|h| json_list(&h.2).iter().any(|a| strip_prefix_len(a) == r),
    ];
    for pass in passes {
        let hits: Vec<&HostTuple> = all.iter().filter(|h| pass(h)).collect();
        match hits.len() {
            0 => continue,
            1 => {
                let h = hits[0];
                let labels = sqlx::query("SELECT label FROM host_labels WHERE host_id = $1 ORDER BY label")
                    .bind(h.0.clone())
                    .fetch_all(&mut **tx)
                    .await?
                    .iter()
                    .map(|row| get_str(row, "label"))
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(Ok(HostRow {
                    id: h.0.clone(),
                    hostname: h.1.clone(),
                    quarantined: h.3,
                    labels,
                }));
            }
            n => return Ok(Err(format!("{n} hosts match {r:?}; send the host id"))),
        }
    }
    Ok(Err(format!("no enrolled host matches {r:?}")))
}

/// Every distinct label on a non-revoked host (the "groups" rules resolve against).
pub async fn fleet_labels_tx(tx: &mut Tx) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT DISTINCT l.label AS label FROM host_labels l JOIN hosts h ON h.id = l.host_id WHERE h.revoked = 0 ORDER BY l.label",
    )
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(|r| get_str(r, "label")).collect()
}

pub async fn last_auto_action_tx(tx: &mut Tx, host_id: &str) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query("SELECT at FROM auto_actions WHERE host_id = $1 ORDER BY at DESC LIMIT 1")
        .bind(host_id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| get_i64(&r, "at")).transpose()
}

pub async fn recent_quarantines_tx(tx: &mut Tx, since: i64) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM auto_actions WHERE kind = 'quarantine' AND at >= $1")
        .bind(since)
        .fetch_one(&mut **tx)
        .await?;
    get_i64(&row, "n")
}

pub async fn record_action_tx(
    tx: &mut Tx,
    at: i64,
    host_id: &str,
    rule: &str,
    event_id: &str,
    kind: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO auto_actions (at, host_id, rule_name, event_id, kind) VALUES ($1, $2, $3, $4, $5)")
        .bind(at)
        .bind(host_id.to_string())
        .bind(rule.to_string())
        .bind(event_id.to_string())
        .bind(kind.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

// ---- events ----

pub async fn insert_event_tx(
    tx: &mut Tx,
    e: &EventRecord,
    received_at: i64,
    occurred_at: Option<i64>,
) -> Result<(), StoreError> {
    let outcomes = serde_json::to_string(&e.outcomes).map_err(|x| StoreError::Other(x.to_string()))?;
    sqlx::query(
        "INSERT INTO auto_events (id, received_at, occurred_at, source, type, tags, severity, host_ref, host_id, status, rule_name, outcomes, raw) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(e.id.clone())
    .bind(received_at)
    .bind(occurred_at)
    .bind(e.source.clone())
    .bind(e.event_type.clone())
    .bind(to_json_list(&e.tags))
    .bind(e.severity.as_str().to_string())
    .bind(e.host_ref.clone())
    .bind(e.host_id.clone())
    .bind(e.status.clone())
    .bind(e.rule.clone())
    .bind(outcomes)
    .bind(e.raw.as_ref().map(|v| v.to_string()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn event_row(r: &AnyRow) -> Result<EventRecord, StoreError> {
    let sev = get_str(r, "severity")?;
    Ok(EventRecord {
        id: get_str(r, "id")?,
        received_at: to_rfc3339(get_i64(r, "received_at")?),
        occurred_at: get_opt_i64(r, "occurred_at")?.map(to_rfc3339),
        source: get_str(r, "source")?,
        event_type: get_str(r, "type")?,
        tags: json_list(&get_str(r, "tags")?),
        severity: Severity::parse(&sev).unwrap_or(Severity::Info),
        host_ref: get_str(r, "host_ref")?,
        host_id: get_opt_str(r, "host_id")?,
        status: get_str(r, "status")?,
        rule: get_opt_str(r, "rule_name")?,
        outcomes: serde_json::from_str::<Vec<RuleOutcome>>(&get_str(r, "outcomes")?).unwrap_or_default(),
        raw: get_opt_str(r, "raw")?.and_then(|t| serde_json::from_str(&t).ok()),
    })
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub status: Option<String>,
    pub host_id: Option<String>,
    pub limit: i64,
}

/// Newest first.
pub async fn events(pool: &AnyPool, f: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
    let mut sql = String::from(
        "SELECT id, received_at, occurred_at, source, type, tags, severity, host_ref, host_id, status, rule_name, outcomes, raw FROM auto_events WHERE 1=1",
    );
    let mut n = 0;
    if f.status.is_some() {
        n += 1;
        sql.push_str(&format!(" AND status = ${n}"));
    }
    if f.host_id.is_some() {
        n += 1;
        sql.push_str(&format!(" AND host_id = ${n}"));
    }
    sql.push_str(&format!(" ORDER BY received_at DESC, id DESC LIMIT ${}", n + 1));
    let mut q = sqlx::query(&sql);
    for s in [&f.status, &f.host_id].into_iter().flatten() {
        q = q.bind(s.clone());
    }
    let rows = q.bind(f.limit).fetch_all(pool).await?;
    rows.iter().map(event_row).collect()
}

pub async fn event(pool: &AnyPool, id: &str) -> Result<Option<EventRecord>, StoreError> {
    let row = sqlx::query(
        "SELECT id, received_at, occurred_at, source, type, tags, severity, host_ref, host_id, status, rule_name, outcomes, raw FROM auto_events WHERE id = $1",
    )
    .bind(id.to_string())
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(event_row).transpose()
}

pub async fn set_event_status_tx(tx: &mut Tx, id: &str, status: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE auto_events SET status = $1 WHERE id = $2")
        .bind(status.to_string())
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Deletes events older than `before` and beyond the newest `max`. Returns how many.
pub async fn prune_events(pool: &AnyPool, before: i64, max: i64) -> Result<u64, StoreError> {
    let mut n = sqlx::query("DELETE FROM auto_events WHERE received_at < $1")
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected();
    let edge = sqlx::query("SELECT received_at FROM auto_events ORDER BY received_at DESC, id DESC LIMIT 1 OFFSET $1")
        .bind(max)
        .fetch_optional(pool)
        .await?;
    if let Some(row) = edge {
        let at = get_i64(&row, "received_at")?;
        n += sqlx::query("DELETE FROM auto_events WHERE received_at <= $1")
            .bind(at)
            .execute(pool)
            .await?
            .rows_affected();
    }
    Ok(n)
}

// ---- approvals ----

pub async fn approval_pending_tx(tx: &mut Tx, host_id: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT id FROM auto_approvals WHERE host_id = $1 AND status = 'pending'")
        .bind(host_id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.is_some())
}

pub async fn insert_approval_tx(
    tx: &mut Tx,
    event_id: &str,
    host_id: &str,
    rule: &str,
    params: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO auto_approvals (event_id, host_id, rule_name, params, reason, created_at, status) VALUES ($1, $2, $3, $4, $5, $6, 'pending')",
    )
    .bind(event_id.to_string())
    .bind(host_id.to_string())
    .bind(rule.to_string())
    .bind(params.to_string())
    .bind(reason.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const APPROVAL_COLS: &str =
    "id, event_id, host_id, rule_name, params, reason, created_at, status, decided_by, decided_at, decision_comment";

fn approval_row(r: &AnyRow) -> Result<(Approval, String), StoreError> {
    Ok((
        Approval {
            id: get_i64(r, "id")?,
            event_id: get_str(r, "event_id")?,
            host_id: get_str(r, "host_id")?,
            rule: get_str(r, "rule_name")?,
            reason: get_str(r, "reason")?,
            created_at: to_rfc3339(get_i64(r, "created_at")?),
            status: get_str(r, "status")?,
            decided_by: get_opt_str(r, "decided_by")?,
            decided_at: get_opt_i64(r, "decided_at")?.map(to_rfc3339),
            decision_comment: get_opt_str(r, "decision_comment")?,
        },
        get_str(r, "params")?,
    ))
}

pub async fn approvals(pool: &AnyPool, status: Option<&str>, limit: i64) -> Result<Vec<Approval>, StoreError> {
    let rows = match status {
        Some(s) => {
            sqlx::query(&format!(
                "SELECT {APPROVAL_COLS} FROM auto_approvals WHERE status = $1 ORDER BY id DESC LIMIT $2"
            ))
            .bind(s.to_string())
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {APPROVAL_COLS} FROM auto_approvals ORDER BY id DESC LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
    };
    rows.iter().map(|r| approval_row(r).map(|x| x.0)).collect()
}

/// Pending approvals (all, or those in `ids`) with their stored action parameters.
pub async fn pending_approvals_tx(tx: &mut Tx) -> Result<Vec<(Approval, String)>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {APPROVAL_COLS} FROM auto_approvals WHERE status = 'pending' ORDER BY id"
    ))
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(approval_row).collect()
}

pub async fn approval_status_tx(tx: &mut Tx, id: i64) -> Result<Option<(String, String)>, StoreError> {
    let row = sqlx::query("SELECT status, host_id FROM auto_approvals WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| Ok((get_str(&r, "status")?, get_str(&r, "host_id")?)))
        .transpose()
}

pub async fn decide_approval_tx(
    tx: &mut Tx,
    id: i64,
    status: &str,
    actor: &str,
    comment: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE auto_approvals SET status = $1, decided_by = $2, decided_at = $3, decision_comment = $4 WHERE id = $5 AND status = 'pending'")
        .bind(status.to_string())
        .bind(actor.to_string())
        .bind(now)
        .bind(comment.map(str::to_string))
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
