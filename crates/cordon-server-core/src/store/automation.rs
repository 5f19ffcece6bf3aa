//! The automation tables (events, rules, guardrail settings, approvals, the record of
//! automatic actions): same queries on SQLite and PostgreSQL via `Any`. Reads are plain
//! methods; every change is one transaction under the writer lock, with its audit record.

use cordon_proto::automation::{
    Approval, ApprovalStatus, DecisionResult, DecisionStatus, EventRecord, EventStatus, OutcomeKind, RuleOutcome,
    RuleRecord, RuleSpec, Settings, Severity,
};
use cordon_proto::MAX_MESSAGE_CHARS;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use super::actions::apply_tx;
use super::audit::{append, Actor, AutoCause, NewAudit};
use super::hosts::load_tx;
use super::{
    get_i64, get_opt_i64, get_opt_str, get_str, json_list, to_json_list, Action, ActionParams, Store, StoreError, Tx,
};
use crate::timefmt::Timestamp;

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

impl Store {
    /// The fleet's automation settings (one row, created by the migration).
    pub async fn automation_settings(&self) -> Result<Settings, StoreError> {
        let pool = &self.pool;
        let row = sqlx::query(&format!("SELECT {SETTINGS_COLS} FROM auto_settings WHERE id = 1"))
            .fetch_one(pool)
            .await?;
        settings_row(&row)
    }
}

/// Reads the settings row after touching it, which takes the row lock on PostgreSQL (and
/// the write lock on SQLite): concurrent evaluations serialize here, so the fleet cap
/// cannot be overrun by replicas racing each other.
async fn lock_settings_tx(tx: &mut Tx) -> Result<Settings, StoreError> {
    sqlx::query("UPDATE auto_settings SET updated_at = updated_at WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query(&format!("SELECT {SETTINGS_COLS} FROM auto_settings WHERE id = 1"))
        .fetch_one(&mut **tx)
        .await?;
    settings_row(&row)
}

async fn save_settings_tx(tx: &mut Tx, s: &Settings, actor: &str, now: i64) -> Result<(), StoreError> {
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
    let spec: RuleSpec = serde_json::from_str(&get_str(r, "spec")?).map_err(|e| StoreError::Corrupt {
        what: "rule".into(),
        source: Some(e),
    })?;
    Ok(RuleRecord {
        id: get_i64(r, "id")?,
        spec,
        active: get_i64(r, "enabled")? != 0,
        disabled_reason: get_opt_str(r, "disabled_reason")?,
        // Filled in by the automation service from the fleet as it is when read.
        cannot_fire: Vec::new(),
        updated_at: Timestamp::from_unix_ms_clamped(get_i64(r, "updated_at")?),
        updated_by: get_str(r, "updated_by")?,
    })
}

const RULE_COLS: &str = "id, name, spec, enabled, disabled_reason, updated_at, updated_by";

impl Store {
    /// Every rule, in evaluation order (by id).
    pub async fn rules(&self) -> Result<Vec<RuleRecord>, StoreError> {
        let pool = &self.pool;
        let rows = sqlx::query(&format!("SELECT {RULE_COLS} FROM auto_rules ORDER BY id"))
            .fetch_all(pool)
            .await?;
        rows.iter().map(rule_row).collect()
    }
}

async fn rules_tx(tx: &mut Tx) -> Result<Vec<RuleRecord>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {RULE_COLS} FROM auto_rules ORDER BY id"))
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(rule_row).collect()
}

impl Store {
    /// The rule named `name`, if any.
    pub async fn rule(&self, name: &str) -> Result<Option<RuleRecord>, StoreError> {
        let pool = &self.pool;
        let row = sqlx::query(&format!("SELECT {RULE_COLS} FROM auto_rules WHERE name = $1"))
            .bind(name.to_string())
            .fetch_optional(pool)
            .await?;
        row.as_ref().map(rule_row).transpose()
    }
}

/// Inserts or replaces the rule named `spec.name`. Returns whether it existed.
async fn put_rule_tx(
    tx: &mut Tx,
    spec: &RuleSpec,
    active: bool,
    reason: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let text = serde_json::to_string(spec).map_err(|source| StoreError::Encode { what: "rule", source })?;
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
    // A new rule's name may not read as an existing rule's (trial33 LOW-E: `Wazuh-Critical`
    // and `wazuh-critica1` beside `wazuh-critical` were audited as three `rule:` actors a
    // reader takes for one): compared on the identity key, as token names are.
    let key = crate::service::validate::identity_key(&spec.name);
    for row in sqlx::query("SELECT name FROM auto_rules").fetch_all(&mut **tx).await? {
        let other = get_str(&row, "name")?;
        if crate::service::validate::identity_key(&other) == key {
            return Err(StoreError::Conflict(format!(
                "rule name {:?} reads as the existing rule {other:?} (rule names are compared case-insensitively \
                 and by look-alike characters — 1 and l, 0 and o —, as token names are): its actions would be \
                 audited as one automation actor; change that rule under its own name ({other:?}), or choose \
                 another name",
                spec.name
            )));
        }
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

/// The id of the rule named `name`, if it exists.
async fn rule_id_tx(tx: &mut Tx, name: &str) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query("SELECT id FROM auto_rules WHERE name = $1")
        .bind(name.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| get_i64(&r, "id")).transpose()
}

async fn delete_rule_tx(tx: &mut Tx, name: &str) -> Result<bool, StoreError> {
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
    /// Host id.
    pub id: String,
    /// Hostname.
    pub hostname: String,
    /// Desired quarantined now.
    pub quarantined: bool,
    /// Its labels, sorted.
    pub labels: Vec<String>,
}

/// id, hostname, addresses (JSON), quarantined.
type HostTuple = (String, String, String, bool);
type Pass<'a> = dyn Fn(&HostTuple) -> bool + Sync + 'a;

fn strip_prefix_len(addr: &str) -> &str {
    addr.split('/').next().unwrap_or(addr).trim()
}

/// Why an event's host reference named no single host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// No enrolled host matches.
    Unknown(String),
    /// Several hosts match (a duplicate hostname, or an address claimed by two hosts):
    /// automation does not guess, and audits that it refused.
    Ambiguous(String),
}

/// Whether two hostnames in [`crate::service::validate::hostname_key`] form name the
/// same host by short name: one of them has no domain and their first labels are equal
/// (`web1` and `web1.corp.example`). Decided on the keys only — the form the duplicate
/// flag compares — so `web1.` (key `web1`) matches `web1.corp.example` exactly like
/// `web1` does, and a full-width `ｗｅｂ１` too (trial7: the raw names were tested for
/// a dot, leaving `web1.` out while it is flagged a duplicate of `web1`).
fn short_hostname_match(a_key: &str, b_key: &str) -> bool {
    let first = |k: &str| k.split('.').next().unwrap_or_default().to_string();
    (!a_key.contains('.') || !b_key.contains('.')) && first(a_key) == first(b_key)
}

/// Resolves an event's host reference: id, hostname (case-insensitive, then short
/// name), then IP address. A reference that matches several hosts at a step is ambiguous
/// and resolves to nothing, with the reason: hostnames are compared as
/// [`crate::service::validate::hostname_key`], so `WEB1`, `ｗｅｂ１` and `web1.` are the
/// same name as `web1` (such hosts are all flagged `duplicate_hostname`).
/// Returns the host and whether it matched by id.
/// Whether a host reference reads as an IP address (any spelling,
/// [`cordon_proto::hostname::as_address`]) or a host id or its start
/// ([`cordon_proto::hostname::looks_like_host_id`]): such a reference names a host by
/// address or id only, never by hostname.
pub(crate) fn reads_as_address_or_id(reference: &str) -> bool {
    let r = reference.trim();
    cordon_proto::hostname::as_address(r).is_some()
        || cordon_proto::hostname::looks_like_host_id(r)
        || cordon_proto::addr::parse_host_address(r).is_ok()
}

async fn resolve_host_tx(tx: &mut Tx, reference: &str) -> Result<Result<(HostRow, bool), Unresolved>, StoreError> {
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
    let key = crate::service::validate::hostname_key;
    let rl = key(r);
    // An address compares in canonical form (`2001:db8::1`), like the stored ones.
    // Every spelling an IP parser takes (`0xc0.0.2.2` is `192.0.2.2`: the reading the
    // hostname rule refuses such names by, trial25 F12).
    let ip = cordon_proto::addr::parse_reference_address(r).map(|ip| ip.to_string());
    // A reference that reads as an address or a host id never matches a hostname
    // (trial18 MED-1): a host enrolled before the hostname rule under another host's
    // address (`10.9.9.9`) or id would otherwise take that host's events.
    let by_name = !reads_as_address_or_id(r);
    let passes: [(&str, &Pass<'_>); 4] = [
        // Ids in any case (trial35 LOW-2: Windows tools and SIEMs write GUIDs upper-case).
        ("id", &|h| h.0.eq_ignore_ascii_case(r)),
        ("hostname", &|h| by_name && key(&h.1) == rl),
        ("short hostname", &|h| by_name && short_hostname_match(&rl, &key(&h.1))),
        ("address", &|h| {
            ip.as_deref()
                .is_some_and(|ip| json_list(&h.2).iter().any(|a| strip_prefix_len(a) == ip))
        }),
    ];
    for (what, pass) in passes {
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
                return Ok(Ok((
                    HostRow {
                        id: h.0.clone(),
                        hostname: h.1.clone(),
                        quarantined: h.3,
                        labels,
                    },
                    what == "id",
                )));
            }
            n => {
                let ids: Vec<&str> = hits.iter().map(|h| h.0.as_str()).collect();
                return Ok(Err(Unresolved::Ambiguous(format!(
                    "{n} hosts match {r:?} by {what} ({}): automation does not act on an ambiguous {what}; \
                     send the host id",
                    ids.join(", ")
                ))));
            }
        }
    }
    // The start of an id (a short id the tables print) is no exact reference: automation
    // never acts on it, but says whose id it starts, so the sender can send that id
    // (trial36 LOW-A: "no enrolled host matches" read as if the host did not exist).
    if let Some(p) = super::hosts::id_prefix(r) {
        let starts: Vec<&str> = all
            .iter()
            .filter(|h| h.0.starts_with(&p))
            .map(|h| h.0.as_str())
            .collect();
        if !starts.is_empty() {
            return Ok(Err(Unresolved::Unknown(format!(
                "{r:?} is the start of the id of {}: automation acts only on an exact reference (the full id, \
                 hostname or address); send the full id",
                starts.join(", ")
            ))));
        }
    }
    Ok(Err(Unresolved::Unknown(format!("no enrolled host matches {r:?}"))))
}

impl Store {
    /// The labels of every non-revoked host, one entry per host (hosts without labels
    /// give an empty entry): what a rule's standing state is computed from.
    pub async fn fleet_host_labels(&self) -> Result<Vec<Vec<String>>, StoreError> {
        let rows = sqlx::query(
            "SELECT h.id AS id, l.label AS label FROM hosts h LEFT JOIN host_labels l ON l.host_id = h.id \
             WHERE h.revoked = 0 ORDER BY h.id, l.label",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<Vec<String>> = Vec::new();
        let mut last: Option<String> = None;
        for r in &rows {
            let id = get_str(r, "id")?;
            if last.as_deref() != Some(id.as_str()) {
                out.push(Vec::new());
                last = Some(id);
            }
            if let Some(l) = get_opt_str(r, "label")? {
                if let Some(h) = out.last_mut() {
                    h.push(l);
                }
            }
        }
        Ok(out)
    }
}

/// Which saved list of labels a change replaces: its own old labels are not what a new
/// label must differ from ([`Store::known_labels`]). Everything else is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelsReplaced<'a> {
    /// Nothing is replaced (host labels added, an enrollment token created).
    Nothing,
    /// The automation settings' protected labels are replaced.
    ProtectedLabels,
    /// The trigger labels of the rule of this name are replaced.
    RuleTriggers(&'a str),
}

impl Store {
    /// Every label known anywhere (trial13 MED 1), what a new label must not look like
    /// ([`crate::service::validate::new_labels`]): labels on non-revoked hosts, every
    /// rule's trigger labels, the protected labels, the labels of enrollment tokens not
    /// used yet, and the server's own [`cordon_proto::QUARANTINE_LABEL`]. The list
    /// `replacing` names is left out (a rule may change the case of its own label).
    /// Sorted, without duplicates.
    ///
    /// # Errors
    /// When the store cannot be read or a stored rule or list is corrupt.
    pub async fn known_labels(&self, replacing: LabelsReplaced<'_>) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = self.fleet_host_labels().await?.into_iter().flatten().collect();
        if replacing != LabelsReplaced::ProtectedLabels {
            out.extend(self.automation_settings().await?.protected_labels);
        }
        for r in self.rules().await? {
            if replacing != LabelsReplaced::RuleTriggers(r.spec.name.as_str()) {
                out.extend(r.spec.trigger_labels);
            }
        }
        let rows = sqlx::query("SELECT labels FROM enroll_tokens WHERE used_at IS NULL")
            .fetch_all(&self.pool)
            .await?;
        for r in &rows {
            out.extend(json_list(&get_str(r, "labels")?));
        }
        out.push(cordon_proto::QUARANTINE_LABEL.to_string());
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// Every distinct label on a non-revoked host (the "groups" rules resolve against).
async fn fleet_labels_tx(tx: &mut Tx) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT DISTINCT l.label AS label FROM host_labels l JOIN hosts h ON h.id = l.host_id WHERE h.revoked = 0 ORDER BY l.label",
    )
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(|r| get_str(r, "label")).collect()
}

async fn last_auto_action_tx(tx: &mut Tx, host_id: &str) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query("SELECT at FROM auto_actions WHERE host_id = $1 ORDER BY at DESC LIMIT 1")
        .bind(host_id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| get_i64(&r, "at")).transpose()
}

async fn recent_quarantines_tx(tx: &mut Tx, since: i64) -> Result<i64, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM auto_actions WHERE kind = 'quarantine' AND at >= $1")
        .bind(since)
        .fetch_one(&mut **tx)
        .await?;
    get_i64(&row, "n")
}

async fn record_action_tx(
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

async fn insert_event_tx(
    tx: &mut Tx,
    e: &EventRecord,
    received_at: i64,
    occurred_at: Option<i64>,
) -> Result<(), StoreError> {
    let outcomes = serde_json::to_string(&e.outcomes).map_err(|source| StoreError::Encode {
        what: "rule outcomes",
        source,
    })?;
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
    .bind(e.status.as_str().to_string())
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
        received_at: Timestamp::from_unix_ms_clamped(get_i64(r, "received_at")?),
        occurred_at: get_opt_i64(r, "occurred_at")?.map(Timestamp::from_unix_ms_clamped),
        source: get_str(r, "source")?,
        event_type: get_str(r, "type")?,
        tags: json_list(&get_str(r, "tags")?),
        severity: Severity::parse(&sev).unwrap_or(Severity::Info),
        host_ref: get_str(r, "host_ref")?,
        host_id: get_opt_str(r, "host_id")?,
        // Kept as stored: a replica of another version may write a status this one
        // does not know (`EventStatus::Other`).
        status: get_str(r, "status")?.into(),
        rule: get_opt_str(r, "rule_name")?,
        outcomes: serde_json::from_str::<Vec<RuleOutcome>>(&get_str(r, "outcomes")?).unwrap_or_default(),
        raw: get_opt_str(r, "raw")?.and_then(|t| serde_json::from_str(&t).ok()),
    })
}

#[derive(Debug, Clone, Default)]
/// Which events [`Store::events`] lists.
pub struct EventFilter {
    /// Only events with this status (`quarantined`, `no_match`, …).
    pub status: Option<EventStatus>,
    /// Only events about this host.
    pub host_id: Option<String>,
    /// At most this many.
    pub limit: i64,
}

impl Store {
    /// Newest first.
    pub async fn events(&self, f: &EventFilter) -> Result<Vec<EventRecord>, StoreError> {
        let pool = &self.pool;
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
        for s in [f.status.as_ref().map(EventStatus::as_str), f.host_id.as_deref()]
            .into_iter()
            .flatten()
        {
            q = q.bind(s.to_string());
        }
        let rows = q.bind(f.limit).fetch_all(pool).await?;
        rows.iter().map(event_row).collect()
    }
}

impl Store {
    /// The event with this id, if any.
    pub async fn event(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        let pool = &self.pool;
        let row = sqlx::query(
            "SELECT id, received_at, occurred_at, source, type, tags, severity, host_ref, host_id, status, rule_name, outcomes, raw FROM auto_events WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?;
        row.as_ref().map(event_row).transpose()
    }
}

async fn set_event_status_tx(tx: &mut Tx, id: &str, status: EventStatus) -> Result<(), StoreError> {
    sqlx::query("UPDATE auto_events SET status = $1 WHERE id = $2")
        .bind(status.as_str().to_string())
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// Deletes events older than `before` and beyond the newest `max`. Returns how many.
    pub async fn prune_events(&self, before: i64, max: i64) -> Result<u64, StoreError> {
        let (_guard, mut tx) = self.write_tx().await?;
        let mut n = sqlx::query("DELETE FROM auto_events WHERE received_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let edge =
            sqlx::query("SELECT received_at FROM auto_events ORDER BY received_at DESC, id DESC LIMIT 1 OFFSET $1")
                .bind(max)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(row) = edge {
            let at = get_i64(&row, "received_at")?;
            n += sqlx::query("DELETE FROM auto_events WHERE received_at <= $1")
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }
}

// ---- approvals ----

async fn approval_pending_tx(tx: &mut Tx, host_id: &str) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT id FROM auto_approvals WHERE host_id = $1 AND status = 'pending'")
        .bind(host_id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.is_some())
}

async fn insert_approval_tx(
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
    "id, event_id, host_id, rule_name, params, reason, created_at, status, decided_by, decided_by_token_id, decided_at, \
     decision_comment";

fn approval_row(r: &AnyRow) -> Result<(Approval, String), StoreError> {
    Ok((
        Approval {
            id: get_i64(r, "id")?,
            event_id: get_str(r, "event_id")?,
            host_id: get_str(r, "host_id")?,
            rule: get_str(r, "rule_name")?,
            reason: get_str(r, "reason")?,
            created_at: Timestamp::from_unix_ms_clamped(get_i64(r, "created_at")?),
            status: {
                let text = get_str(r, "status")?;
                ApprovalStatus::parse(&text).ok_or_else(|| StoreError::Corrupt {
                    what: format!("approval status {text:?}"),
                    source: None,
                })?
            },
            decided_by: get_opt_str(r, "decided_by")?,
            decided_by_token_id: get_opt_i64(r, "decided_by_token_id")?,
            decided_at: get_opt_i64(r, "decided_at")?.map(Timestamp::from_unix_ms_clamped),
            decision_comment: get_opt_str(r, "decision_comment")?,
        },
        get_str(r, "params")?,
    ))
}

impl Store {
    /// One approval by id (`None`: no such approval).
    pub async fn approval(&self, id: i64) -> Result<Option<Approval>, StoreError> {
        let row = sqlx::query(&format!("SELECT {APPROVAL_COLS} FROM auto_approvals WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| approval_row(r).map(|x| x.0)).transpose()
    }

    /// Approval `id` and the quarantine approving it applies (the plan the rule made
    /// when the event arrived: exceptions, message, expiry), `None` if there is none.
    ///
    /// # Errors
    /// `Corrupt` for a stored plan that does not read; database errors.
    pub async fn approval_plan(&self, id: i64) -> Result<Option<(Approval, PlannedAction)>, StoreError> {
        let row = sqlx::query(&format!("SELECT {APPROVAL_COLS} FROM auto_approvals WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let (a, params) = approval_row(&row)?;
        let plan: PlannedAction = serde_json::from_str(&params).map_err(|e| StoreError::Corrupt {
            what: format!("approval {id}"),
            source: Some(e),
        })?;
        Ok(Some((a, plan)))
    }

    /// How many approvals are pending.
    pub async fn pending_approval_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM auto_approvals WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await?;
        get_i64(&row, "n")
    }
}

impl Store {
    /// Approvals, newest first, at most `limit`, only those with `status` when given.
    pub async fn approvals(&self, status: Option<ApprovalStatus>, limit: i64) -> Result<Vec<Approval>, StoreError> {
        let pool = &self.pool;
        let rows = match status {
            Some(s) => {
                sqlx::query(&format!(
                    "SELECT {APPROVAL_COLS} FROM auto_approvals WHERE status = $1 ORDER BY id DESC LIMIT $2"
                ))
                .bind(s.as_str().to_string())
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
}

/// Pending approvals (all, or those in `ids`) with their stored action parameters.
async fn pending_approvals_tx(tx: &mut Tx) -> Result<Vec<(Approval, String)>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {APPROVAL_COLS} FROM auto_approvals WHERE status = 'pending' ORDER BY id"
    ))
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(approval_row).collect()
}

/// The host of approval `id`, if there is one.
/// The host of approval `id` and, for one no longer pending, how it was decided, in
/// words: `already superseded by admin (token 1) at 2026-11-30T23:30:00.000Z: host
/// revoked` (trial30 LOW-6: a second decision said only `not_pending`). `None` when no
/// approval has that id.
async fn approval_host_tx(tx: &mut Tx, id: i64) -> Result<Option<(String, String)>, StoreError> {
    let row = sqlx::query(
        "SELECT host_id, status, decided_by, decided_by_token_id, decided_at, decision_comment \
         FROM auto_approvals WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let mut why = format!("already {}", get_str(&r, "status")?);
    if let Some(by) = get_opt_str(&r, "decided_by")? {
        why.push_str(&format!(" by {by}"));
        if let Some(t) = get_opt_i64(&r, "decided_by_token_id")? {
            why.push_str(&format!(" (token {t})"));
        }
    }
    if let Some(at) = get_opt_i64(&r, "decided_at")? {
        why.push_str(&format!(" at {}", Timestamp::from_unix_ms_clamped(at)));
    }
    if let Some(c) = get_opt_str(&r, "decision_comment")?.filter(|c| !c.is_empty()) {
        why.push_str(&format!(": {c}"));
    }
    Ok(Some((get_str(&r, "host_id")?, why)))
}

async fn decide_approval_tx(
    tx: &mut Tx,
    id: i64,
    status: ApprovalStatus,
    who: Actor<'_>,
    comment: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE auto_approvals SET status = $1, decided_by = $2, decided_at = $3, decision_comment = $4, \
         decided_by_token_id = $6 WHERE id = $5 AND status = 'pending'",
    )
    .bind(status.as_str().to_string())
    .bind(who.name.to_string())
    .bind(now)
    .bind(comment.map(str::to_string))
    .bind(id)
    .bind(who.token_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Supersedes every pending approval of host `host_id` inside `tx`, because `why` (e.g.
/// `host revoked`): approving one could never act any more, so none stays pending (the
/// approvals list and the console's badge count it no longer). Each approval becomes
/// `superseded`, decided by `who` with `why` as its decision comment; its event's status
/// `superseded`; and `who` gets an `approval_superseded` audit record naming the event,
/// rule and approval (detail `event=…; rule=…[; rule_id=…]; approval N superseded: WHY`).
/// Returns the approval ids superseded, oldest first.
pub(crate) async fn supersede_host_approvals_tx(
    tx: &mut Tx,
    host_id: &str,
    who: Actor<'_>,
    why: &str,
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let pending: Vec<(Approval, String)> = pending_approvals_tx(tx)
        .await?
        .into_iter()
        .filter(|(a, _)| a.host_id == host_id)
        .collect();
    let mut ids = Vec::with_capacity(pending.len());
    for (a, _) in pending {
        let rule_id = rule_id_tx(tx, &a.rule).await?;
        let extra = format!("approval {} superseded: {why}", a.id);
        let detail = AutoCause {
            event_id: &a.event_id,
            rule: &a.rule,
            rule_id,
            extra: Some(&extra),
        }
        .detail();
        append(
            tx,
            &NewAudit {
                actor: who.name,
                actor_token_id: who.token_id,
                action: "approval_superseded",
                host_id: Some(host_id),
                comment: Some(why),
                result: "ok",
                detail: Some(&detail),
                event_id: Some(&a.event_id),
                rule: Some(&a.rule),
            },
        )
        .await?;
        set_event_status_tx(tx, &a.event_id, EventStatus::Superseded).await?;
        decide_approval_tx(tx, a.id, ApprovalStatus::Superseded, who, Some(why), now).await?;
        ids.push(a.id);
    }
    Ok(ids)
}

// ---- operations: each one transaction under the writer lock ----

/// Parameters of a quarantine a rule wants, kept (as JSON) with an approval until it is
/// decided.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedAction {
    /// Audit comment of the quarantine (names the rule and event).
    pub comment: String,
    /// The rule's exceptions (`--allow` specs).
    pub allow: Vec<String>,
    /// The rule's message to logged-in users.
    pub message: Option<String>,
    /// Release automatically this long (seconds) after the quarantine.
    pub expires_after_secs: Option<i64>,
}

impl PlannedAction {
    /// The action's parameters when it is carried out at `now` (Unix ms).
    pub fn params(&self, now: i64) -> ActionParams {
        ActionParams {
            comment: self.comment.clone(),
            allow: self.allow.clone(),
            message: self.message.clone(),
            expires_at: self
                .expires_after_secs
                .map(|s| now.saturating_add(s.saturating_mul(1000))),
            // A rule never replaces a quarantine someone else put in force.
            ..Default::default()
        }
    }
}

/// Audit actor of an automatic action: `rule:<name>`.
pub fn rule_actor(rule: &str) -> String {
    format!("rule:{rule}")
}

/// What is known when an event about a known host is evaluated, all read inside the
/// evaluation's transaction (the settings row locked, so replicas serialize on it).
#[derive(Debug, Clone)]
pub struct EvalContext {
    /// The fleet settings (row locked).
    pub settings: Settings,
    /// The host the event is about.
    pub host: HostRow,
    /// Every rule, in evaluation order.
    pub rules: Vec<RuleRecord>,
    /// Every distinct label on a non-revoked host.
    pub fleet_labels: Vec<String>,
    /// When automation last acted on this host (Unix ms).
    pub last_auto_action_ms: Option<i64>,
    /// An approval for this host is already pending.
    pub approval_pending: bool,
    /// Automatic quarantines within the fleet cap's window.
    pub recent_quarantines: i64,
}

/// What evaluating an event decided; the store carries it out in the same transaction.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Nothing to do (no rule acted).
    Nothing,
    /// Quarantine the host now.
    Quarantine {
        /// The rule that decided.
        rule: String,
        /// The quarantine it asks for.
        plan: PlannedAction,
    },
    /// Dry run: audit that the rule would have quarantined, change nothing.
    NotifyOnly {
        /// The rule that would have acted.
        rule: String,
        /// The quarantine it would have asked for.
        plan: PlannedAction,
    },
    /// Beyond a guardrail: ask an admin.
    ApprovalRequired {
        /// The rule that asked.
        rule: String,
        /// The quarantine it asks for, kept with the approval.
        plan: PlannedAction,
        /// Which guardrail (or approval-mode rule) asked for a human.
        reason: String,
    },
}

/// What approving a pending approval does to its host, as the review shows it and the
/// decision carries it out (pure; one rule for both, so the review cannot promise what
/// the decision does not do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalEffect {
    /// The host is quarantined as the rule asked (requested; its agent confirms).
    Quarantine,
    /// The host is already desired quarantined: no change (the approval is superseded).
    AlreadyQuarantined {
        /// The host's state now: `quarantined` when its agent confirmed the quarantine
        /// in force; `failed` / `tampered` / `not_enforcing` named as such in the words
        /// (trial36 MED-A: a tampered host was "not yet confirmed").
        state: cordon_proto::HostState,
    },
    /// The host now carries this protected label: approving is refused (superseded),
    /// as the rules refuse it ([`Settings::protected_labels`]).
    Protected(String),
    /// The host is revoked or no longer enrolled: nothing happens (superseded).
    Revoked,
}

impl ApprovalEffect {
    /// Whether approving changes the host.
    pub fn changes(&self) -> bool {
        *self == ApprovalEffect::Quarantine
    }

    /// Short wire name: `will_quarantine`, `already_quarantined`, `protected`, `revoked`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ApprovalEffect::Quarantine => "will_quarantine",
            ApprovalEffect::AlreadyQuarantined { .. } => "already_quarantined",
            ApprovalEffect::Protected(_) => "protected",
            ApprovalEffect::Revoked => "revoked",
        }
    }

    /// In words, for the review and the decision's result.
    pub fn words(&self) -> String {
        match self {
            ApprovalEffect::Quarantine => "will quarantine (requested; the agent confirms)".into(),
            ApprovalEffect::AlreadyQuarantined { state } => match state {
                cordon_proto::HostState::Quarantined => "already quarantined (no change)".into(),
                cordon_proto::HostState::Failed => {
                    format!("quarantine already requested — {}", cordon_proto::review::FAILED_WORDS)
                }
                cordon_proto::HostState::Tampered => {
                    format!(
                        "quarantine already requested — {}",
                        cordon_proto::review::TAMPERED_WORDS
                    )
                }
                cordon_proto::HostState::NotEnforcing => {
                    "quarantine already requested — NOT ENFORCING (enforce = false): nothing blocked (no change)".into()
                }
                _ => "quarantine already requested, not yet confirmed (no change)".into(),
            },
            ApprovalEffect::Protected(l) => format!("host now protected by label {l} — will be refused"),
            ApprovalEffect::Revoked => "host revoked — nothing will happen".into(),
        }
    }

    /// In words, once the decision is made (its result): what was done, never "will be"
    /// (trial36 LOW-D: the flash after approving said "— will be refused").
    pub fn decided_words(&self) -> String {
        match self {
            ApprovalEffect::Protected(l) => format!("host protected by label {l} — refused, not quarantined"),
            ApprovalEffect::Revoked => "host revoked — nothing was done".into(),
            other => other.words(),
        }
    }
}

/// What approving does to `host` (`None`: no longer enrolled) with the fleet's
/// `protected_labels` (pure). A revoked host first, then a host already desired
/// quarantined, then a protected label; otherwise the quarantine.
pub fn approval_effect(host: Option<&cordon_proto::Host>, protected_labels: &[String]) -> ApprovalEffect {
    let Some(h) = host else {
        return ApprovalEffect::Revoked;
    };
    if h.revoked {
        return ApprovalEffect::Revoked;
    }
    if h.desired.quarantined {
        return ApprovalEffect::AlreadyQuarantined { state: h.state };
    }
    if let Some(l) = crate::service::validate::protected_label(&h.labels, protected_labels) {
        return ApprovalEffect::Protected(l.clone());
    }
    ApprovalEffect::Quarantine
}

/// One approval decision asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decide<'a> {
    /// Every pending approval.
    All,
    /// These approvals.
    Ids(&'a [i64]),
}

impl Store {
    /// Evaluates and records one event in one transaction: resolves `rec.host_ref` (then
    /// `fallbacks`), lets `evaluate` (pure: rules and guardrails) fill in the outcomes and
    /// decide, carries out the [`Verdict`] (desired state, audit with the event and rule
    /// in their own columns, approval) and stores the event. An event about an unknown
    /// host is recorded with status `unknown_host`. On error nothing is written.
    pub async fn ingest_event(
        &self,
        rec: &mut EventRecord,
        occurred: Option<i64>,
        fallbacks: &[String],
        now: i64,
        evaluate: impl FnOnce(&EvalContext, &mut EventRecord) -> Verdict,
    ) -> Result<(), StoreError> {
        let (_guard, mut owned) = self.write_tx().await?;
        let tx = &mut owned;
        let settings = lock_settings_tx(tx).await?;
        // The reference, then the fallbacks, until one names a single host. When any of
        // them was ambiguous, only a match by host id is acted on.
        let mut resolved = resolve_host_tx(tx, &rec.host_ref).await?;
        let mut ambiguous = match &resolved {
            Err(Unresolved::Ambiguous(why)) => Some(why.clone()),
            _ => None,
        };
        for f in fallbacks {
            if resolved.is_ok() {
                break;
            }
            match resolve_host_tx(tx, f).await? {
                Ok(h) => resolved = Ok(h),
                Err(Unresolved::Ambiguous(why)) => {
                    ambiguous.get_or_insert(why);
                }
                Err(Unresolved::Unknown(_)) => {}
            }
        }
        let resolved = match (resolved, ambiguous) {
            (Ok((host, true)), _) | (Ok((host, false)), None) => Ok(host),
            (_, Some(why)) => Err(Unresolved::Ambiguous(why)),
            (Err(u), None) => Err(u),
        };
        match resolved {
            Err(Unresolved::Unknown(why)) => {
                rec.status = EventStatus::UnknownHost;
                rec.outcomes.push(RuleOutcome {
                    rule: "-".into(),
                    outcome: OutcomeKind::UnknownHost,
                    reason: why,
                });
            }
            Err(Unresolved::Ambiguous(why)) => {
                rec.status = EventStatus::AmbiguousHost;
                rec.outcomes.push(RuleOutcome {
                    rule: "-".into(),
                    outcome: OutcomeKind::AmbiguousHost,
                    reason: why.clone(),
                });
                append(
                    tx,
                    &NewAudit {
                        actor: crate::SYSTEM_ACTOR,
                        action: "automation_refused",
                        comment: Some(&format!("event {} about host {:?}", rec.id, rec.host_ref)),
                        result: "refused",
                        detail: Some(&why),
                        event_id: Some(&rec.id),
                        ..Default::default()
                    },
                )
                .await?;
            }
            Ok(host) => {
                rec.host_id = Some(host.id.clone());
                let ctx = EvalContext {
                    rules: rules_tx(tx).await?,
                    fleet_labels: fleet_labels_tx(tx).await?,
                    last_auto_action_ms: last_auto_action_tx(tx, &host.id).await?,
                    approval_pending: approval_pending_tx(tx, &host.id).await?,
                    recent_quarantines: recent_quarantines_tx(tx, now - settings.cap_window_secs.saturating_mul(1000))
                        .await?,
                    settings,
                    host,
                };
                let verdict = evaluate(&ctx, rec);
                carry_out_tx(tx, &ctx.host, rec, verdict, now, &ctx.rules).await?;
            }
        }
        insert_event_tx(tx, rec, now, occurred).await?;
        owned.commit().await?;
        Ok(())
    }

    /// Stores an event as it is (used for an event whose evaluation failed).
    pub async fn insert_event(&self, rec: &EventRecord, now: i64, occurred: Option<i64>) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write_tx().await?;
        insert_event_tx(&mut tx, rec, now, occurred).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Approves (quarantines, unless [`approval_effect`] says otherwise: `superseded`
    /// with the reason) or denies pending approvals, all in one transaction. Returns each
    /// result and the hosts whose desired state changed.
    ///
    /// `if_revisions` (host id → desired-state revision the caller's review showed) is
    /// the stale-view guard of host actions: when the host of a decided approval moved
    /// on since, nothing is decided.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an id that names no approval; [`StoreError::Conflict`]
    /// for a host that changed since the review (nothing is written either way).
    pub async fn decide_approvals<'a>(
        &self,
        who: impl Into<Actor<'a>>,
        which: Decide<'_>,
        approve: bool,
        comment: &str,
        if_revisions: &std::collections::BTreeMap<String, i64>,
        now: i64,
    ) -> Result<(Vec<DecisionResult>, Vec<String>), StoreError> {
        let who = who.into();
        let actor = who.name;
        let (_guard, mut tx) = self.write_tx().await?;
        let settings = lock_settings_tx(&mut tx).await?;
        let pending = pending_approvals_tx(&mut tx).await?;
        let mut results = Vec::new();
        let mut woken = Vec::new();
        if let Decide::Ids(ids) = which {
            for id in ids {
                if !pending.iter().any(|(a, _)| a.id == *id) {
                    match approval_host_tx(&mut tx, *id).await? {
                        Some((host_id, why)) => results.push(DecisionResult {
                            id: *id,
                            host_id,
                            status: DecisionStatus::NotPending,
                            reason: Some(format!("{why}: nothing was done")),
                        }),
                        None => return Err(StoreError::NotFound(format!("no approval {id}"))),
                    }
                }
            }
        }
        let chosen: Vec<&(Approval, String)> = pending
            .iter()
            .filter(|(a, _)| match which {
                Decide::All => true,
                Decide::Ids(ids) => ids.contains(&a.id),
            })
            .collect();
        // The stale-view guard first: nothing is decided when any host moved on.
        let mut hosts = std::collections::HashMap::new();
        for (a, _) in &chosen {
            let host = load_tx(&mut tx, &a.host_id).await?;
            if let (Some(h), Some(seen)) = (&host, if_revisions.get(&a.host_id)) {
                if h.desired.revision != *seen {
                    return Err(StoreError::Conflict(format!(
                        "host {} changed since your review of approval {} (revision {seen}, now {}: {}): nothing was \
                         decided; review again",
                        h.hostname,
                        a.id,
                        h.desired.revision,
                        if h.desired.quarantined {
                            "quarantine asked for"
                        } else {
                            "not quarantined"
                        }
                    )));
                }
            }
            hosts.insert(a.host_id.clone(), host);
        }
        for (a, params) in chosen {
            let rule_id = rule_id_tx(&mut tx, &a.rule).await?;
            let extra = format!("approval {}", a.id);
            let host = hosts.get(&a.host_id).and_then(Option::as_ref);
            let effect = approval_effect(host, &settings.protected_labels);
            // The decider's own record (`approval_denied` / `approval_granted`), named by
            // token id (trial18 MED-2).
            let decided = AutoCause {
                event_id: &a.event_id,
                rule: &a.rule,
                rule_id,
                extra: Some(&extra),
            }
            .detail();
            let decision = |action| NewAudit {
                actor,
                actor_token_id: who.token_id,
                action,
                host_id: Some(&a.host_id),
                comment: Some(comment),
                result: "ok",
                detail: Some(&decided),
                event_id: Some(&a.event_id),
                rule: Some(&a.rule),
            };
            let (status, reason) = if !approve {
                append(&mut tx, &decision("approval_denied")).await?;
                set_event_status_tx(&mut tx, &a.event_id, EventStatus::Denied).await?;
                (ApprovalStatus::Denied, None)
            } else if effect == ApprovalEffect::Quarantine {
                let plan: PlannedAction = serde_json::from_str(params).map_err(|e| StoreError::Corrupt {
                    what: format!("approval {}", a.id),
                    source: Some(e),
                })?;
                // The person who decided is named by token id too (issue 17, trial18 MED-2):
                // in the quarantine's comment and detail, and by their own record below.
                let approver = match who.token_id {
                    Some(t) => format!("{actor} (token {t})"),
                    None => actor.to_string(),
                };
                let mut p = plan.params(now);
                p.comment = format!("{}; approved by {approver}: {comment}", plan.comment);
                p.message = p.message.map(|m| m.chars().take(MAX_MESSAGE_CHARS).collect());
                append(&mut tx, &decision("approval_granted")).await?;
                let extra = format!("approval {} approved by {approver}", a.id);
                let cause = AutoCause {
                    event_id: &a.event_id,
                    rule: &a.rule,
                    rule_id,
                    extra: Some(&extra),
                };
                apply_tx(
                    &mut tx,
                    &a.host_id,
                    Actor::from(&rule_actor(&a.rule)),
                    Action::Quarantine,
                    &p,
                    None,
                    Some(&cause),
                )
                .await?;
                record_action_tx(&mut tx, now, &a.host_id, &a.rule, &a.event_id, "approved").await?;
                set_event_status_tx(&mut tx, &a.event_id, EventStatus::Quarantined).await?;
                woken.push(a.host_id.clone());
                (ApprovalStatus::Approved, None)
            } else {
                // No approval waits any more: the event says so (trial19 LOW-i).
                set_event_status_tx(&mut tx, &a.event_id, EventStatus::Superseded).await?;
                (ApprovalStatus::Superseded, Some(effect.decided_words()))
            };
            decide_approval_tx(&mut tx, a.id, status, who, Some(comment), now).await?;
            results.push(DecisionResult {
                id: a.id,
                host_id: a.host_id.clone(),
                status: match status {
                    ApprovalStatus::Approved => DecisionStatus::Approved,
                    ApprovalStatus::Denied => DecisionStatus::Denied,
                    // Only decided statuses are written above.
                    ApprovalStatus::Superseded | ApprovalStatus::Pending => DecisionStatus::Superseded,
                },
                reason,
            });
        }
        tx.commit().await?;
        Ok((results, woken))
    }

    /// Creates or replaces the rule named `spec.name` (stored in force when `active`,
    /// otherwise with `reason`), audited as `rule_create` or `rule_update` by `actor`.
    pub async fn save_rule<'a>(
        &self,
        who: impl Into<Actor<'a>>,
        spec: &RuleSpec,
        active: bool,
        reason: Option<&str>,
        now: i64,
    ) -> Result<RuleRecord, StoreError> {
        let who = who.into();
        let actor = who.name;
        {
            let (_guard, mut tx) = self.write_tx().await?;
            let existed = put_rule_tx(&mut tx, spec, active, reason, actor, now).await?;
            let detail = match reason {
                None => format!("rule {} saved, active", spec.name),
                Some(r) => format!("rule {} saved, not active: {r}", spec.name),
            };
            append(
                &mut tx,
                &NewAudit {
                    actor,
                    actor_token_id: who.token_id,
                    action: if existed { "rule_update" } else { "rule_create" },
                    result: if active { "ok" } else { "disabled" },
                    detail: Some(&detail),
                    rule: Some(&spec.name),
                    ..Default::default()
                },
            )
            .await?;
            tx.commit().await?;
        }
        self.rule(&spec.name).await?.ok_or_else(|| StoreError::Corrupt {
            what: format!("rule {:?} (gone right after it was saved)", spec.name),
            source: None,
        })
    }

    /// Deletes a rule, audited as `rule_delete` by `actor`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such rule.
    pub async fn delete_rule<'a>(&self, who: impl Into<Actor<'a>>, name: &str) -> Result<(), StoreError> {
        let who = who.into();
        let actor = who.name;
        let (_guard, mut tx) = self.write_tx().await?;
        if !delete_rule_tx(&mut tx, name).await? {
            return Err(StoreError::NotFound(format!("no rule {name:?}")));
        }
        append(
            &mut tx,
            &NewAudit {
                actor,
                actor_token_id: who.token_id,
                action: "rule_delete",
                result: "ok",
                detail: Some(&format!("rule {name} deleted")),
                rule: Some(name),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Changes the automation settings with `change` (pure: current settings in, new ones
    /// or the reason they are refused out), audited by `actor` with `detail` as
    /// `automation_stop`, `automation_start` or `automation_settings`. Returns the new
    /// settings.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] with `change`'s reason; nothing is written then.
    pub async fn update_automation_settings<'a>(
        &self,
        who: impl Into<Actor<'a>>,
        detail: &str,
        change: impl FnOnce(Settings) -> Result<Settings, String>,
        now: i64,
    ) -> Result<Settings, StoreError> {
        let who = who.into();
        let actor = who.name;
        let (_guard, mut tx) = self.write_tx().await?;
        let current = lock_settings_tx(&mut tx).await?;
        let was_enabled = current.enabled;
        let next = change(current).map_err(StoreError::Invalid)?;
        save_settings_tx(&mut tx, &next, actor, now).await?;
        let action = match (was_enabled, next.enabled) {
            (true, false) => "automation_stop",
            (false, true) => "automation_start",
            _ => "automation_settings",
        };
        append(
            &mut tx,
            &NewAudit {
                actor,
                actor_token_id: who.token_id,
                action,
                result: "ok",
                detail: Some(detail),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(next)
    }
}

/// Carries out what evaluation decided about `host`, setting `rec.status`.
async fn carry_out_tx(
    tx: &mut Tx,
    host: &HostRow,
    rec: &mut EventRecord,
    verdict: Verdict,
    now: i64,
    rules: &[RuleRecord],
) -> Result<(), StoreError> {
    let rule_id = |name: &str| rules.iter().find(|r| r.spec.name == name).map(|r| r.id);
    match verdict {
        Verdict::Nothing => {}
        Verdict::Quarantine { rule, plan } => {
            let cause = AutoCause {
                event_id: &rec.id,
                rule: &rule,
                rule_id: rule_id(&rule),
                extra: None,
            };
            apply_tx(
                tx,
                &host.id,
                Actor::from(&rule_actor(&rule)),
                Action::Quarantine,
                &plan.params(now),
                None,
                Some(&cause),
            )
            .await?;
            record_action_tx(tx, now, &host.id, &rule, &rec.id, "quarantine").await?;
            rec.status = EventStatus::Quarantined;
        }
        Verdict::NotifyOnly { rule, plan } => {
            let cause = AutoCause {
                event_id: &rec.id,
                rule: &rule,
                rule_id: rule_id(&rule),
                extra: Some("dry run (notify_only): would quarantine, nothing changed"),
            };
            append(
                tx,
                &NewAudit {
                    actor: &rule_actor(&rule),
                    action: "quarantine_dry_run",
                    host_id: Some(&host.id),
                    comment: Some(&plan.comment),
                    result: "ok",
                    detail: Some(&cause.detail()),
                    event_id: Some(&rec.id),
                    rule: Some(&rule),
                    actor_token_id: None,
                },
            )
            .await?;
            record_action_tx(tx, now, &host.id, &rule, &rec.id, "notify_only").await?;
            rec.status = EventStatus::Notified;
        }
        Verdict::ApprovalRequired { rule, plan, reason } => {
            let params = serde_json::to_string(&plan).map_err(|source| StoreError::Encode {
                what: "planned action",
                source,
            })?;
            insert_approval_tx(tx, &rec.id, &host.id, &rule, &params, &reason, now).await?;
            let cause = AutoCause {
                event_id: &rec.id,
                rule: &rule,
                rule_id: rule_id(&rule),
                extra: Some(&reason),
            };
            append(
                tx,
                &NewAudit {
                    actor: &rule_actor(&rule),
                    action: "approval_required",
                    host_id: Some(&host.id),
                    comment: Some(&plan.comment),
                    result: "pending",
                    detail: Some(&cause.detail()),
                    event_id: Some(&rec.id),
                    rule: Some(&rule),
                    actor_token_id: None,
                },
            )
            .await?;
            rec.status = EventStatus::ApprovalRequired;
        }
    }
    Ok(())
}

#[cfg(test)]
mod short_name_tests {
    use super::short_hostname_match;
    use crate::service::validate::hostname_key as key;

    /// trial7 LOW: short-name matching tested the raw names for a dot, so `web1.` and
    /// `web1..` (flagged duplicates of `web1`) were left out for `web1.corp.example`.
    /// Every spelling with one hostname key matches alike.
    #[test]
    fn short_names_match_on_the_hostname_key_like_the_duplicate_flag() {
        let event = key("web1.corp.example");
        for same in [
            "web1",
            "web1.",
            "web1..",
            "WEB1",
            "\u{FF57}\u{FF45}\u{FF42}\u{FF11}",
            " web1. ",
        ] {
            assert_eq!(key(same), key("web1"), "{same:?}");
            assert!(short_hostname_match(&event, &key(same)), "{same:?}");
        }
        for other in ["web10", "web1.other.example", "web", "db1"] {
            assert!(!short_hostname_match(&event, &key(other)), "{other:?}");
        }
        // And the other way round: a bare reference matches a qualified host.
        assert!(short_hostname_match(&key("WEB1."), &key("web1.corp.example")));
    }
}

#[cfg(test)]
mod approval_effect_tests {
    use super::ApprovalEffect;
    use cordon_proto::HostState;

    /// trial36 LOW-D (as MED-A): the approvals flash said "db-03: quarantine already
    /// requested, not yet confirmed" for a tampered host (confirmed, then altered), and the
    /// same for a failed one. Each state is named; only a pending one is "not yet confirmed".
    #[test]
    fn an_already_quarantined_host_is_named_by_its_state() {
        let words = |state| ApprovalEffect::AlreadyQuarantined { state }.words();
        assert_eq!(words(HostState::Quarantined), "already quarantined (no change)");
        assert_eq!(
            words(HostState::QuarantinePending),
            "quarantine already requested, not yet confirmed (no change)"
        );
        assert_eq!(
            words(HostState::Failed),
            "quarantine already requested — FAILED: its agent could not apply it; nothing new is sent (retry re-sends it)"
        );
        assert_eq!(
            words(HostState::Tampered),
            "quarantine already requested — TAMPERED: its agent is repairing the altered rules; nothing new is sent"
        );
        assert!(words(HostState::NotEnforcing).contains("NOT ENFORCING"));
        // Once decided: what was done.
        assert_eq!(
            ApprovalEffect::Protected("dc".into()).decided_words(),
            "host protected by label dc — refused, not quarantined"
        );
    }
}
