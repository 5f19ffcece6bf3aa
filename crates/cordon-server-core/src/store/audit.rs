//! The append-only audit log.

use cordon_proto::AuditRecord;
use sqlx::any::AnyRow;

use super::{get_i64, get_opt_str, get_str, Store, StoreError, Tx};
use crate::timefmt::{now_ms, to_rfc3339};

/// One record to append, always inside the transaction of the change it describes.
#[derive(Debug, Clone, Default)]
pub struct NewAudit<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub host_id: Option<&'a str>,
    pub comment: Option<&'a str>,
    pub result: &'a str,
    pub detail: Option<&'a str>,
    /// The automation event behind an automatic action.
    pub event_id: Option<&'a str>,
    /// The automation rule behind an automatic action.
    pub rule: Option<&'a str>,
}

/// Why an automatic action happened: the event and the rule, stored in their own audit
/// columns (`event_id`, `rule_name`) and, for people reading the log, in the detail text
/// as `event=<id>; rule=<name>[; extra]`.
#[derive(Debug, Clone, Copy)]
pub struct AutoCause<'a> {
    pub event_id: &'a str,
    pub rule: &'a str,
    pub extra: Option<&'a str>,
}

impl AutoCause<'_> {
    /// The detail text: `event=<id>; rule=<name>[; extra]`.
    pub fn detail(&self) -> String {
        match self.extra {
            Some(x) => format!("event={}; rule={}; {x}", self.event_id, self.rule),
            None => format!("event={}; rule={}", self.event_id, self.rule),
        }
    }
}

pub(crate) async fn append(tx: &mut Tx, rec: &NewAudit<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit (at, actor, action, host_id, comment, result, detail, event_id, rule_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(now_ms())
    .bind(rec.actor.to_string())
    .bind(rec.action.to_string())
    .bind(rec.host_id.map(str::to_string))
    .bind(rec.comment.map(str::to_string))
    .bind(rec.result.to_string())
    .bind(rec.detail.map(str::to_string))
    .bind(rec.event_id.map(str::to_string))
    .bind(rec.rule.map(str::to_string))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub host_id: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
    /// Unix ms, exclusive.
    pub until: Option<i64>,
    pub limit: Option<i64>,
}

fn record(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        id: get_i64(row, "id")?,
        at: to_rfc3339(get_i64(row, "at")?),
        actor: get_str(row, "actor")?,
        action: get_str(row, "action")?,
        host_id: get_opt_str(row, "host_id")?,
        comment: get_opt_str(row, "comment")?,
        result: get_str(row, "result")?,
        detail: get_opt_str(row, "detail")?,
        event_id: get_opt_str(row, "event_id")?,
        rule: get_opt_str(row, "rule_name")?,
    })
}

impl Store {
    /// Records matching `f`, oldest first.
    pub async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql = String::from(
            "SELECT id, at, actor, action, host_id, comment, result, detail, event_id, rule_name FROM audit WHERE 1=1",
        );
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if f.host_id.is_some() {
            sql.push_str(&format!(" AND host_id = ${}", next()));
        }
        if f.actor.is_some() {
            sql.push_str(&format!(" AND actor = ${}", next()));
        }
        if f.action.is_some() {
            sql.push_str(&format!(" AND action = ${}", next()));
        }
        if f.since.is_some() {
            sql.push_str(&format!(" AND at >= ${}", next()));
        }
        if f.until.is_some() {
            sql.push_str(&format!(" AND at < ${}", next()));
        }
        sql.push_str(" ORDER BY id");
        if f.limit.is_some() {
            sql.push_str(&format!(" LIMIT ${}", next()));
        }
        let mut q = sqlx::query(&sql);
        for s in [&f.host_id, &f.actor, &f.action].into_iter().flatten() {
            q = q.bind(s.clone());
        }
        for v in [f.since, f.until, f.limit].into_iter().flatten() {
            q = q.bind(v);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(record).collect()
    }

    /// A cheap summary that changes whenever a host's state, labels or desired state do:
    /// (newest audit id, number of hosts, newest last-seen time in steps of `seen_step_ms`).
    pub async fn change_fingerprint(&self, seen_step_ms: i64) -> Result<(i64, i64, i64), StoreError> {
        let a = sqlx::query("SELECT COALESCE(MAX(id), 0) AS n FROM audit")
            .fetch_one(&self.pool)
            .await?;
        let h = sqlx::query("SELECT COUNT(*) AS n, COALESCE(MAX(last_seen), 0) AS s FROM hosts")
            .fetch_one(&self.pool)
            .await?;
        Ok((
            get_i64(&a, "n")?,
            get_i64(&h, "n")?,
            get_i64(&h, "s")? / seen_step_ms.max(1),
        ))
    }

    /// Number of audit records (tests use it to prove a refused request wrote nothing).
    pub async fn audit_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM audit")
            .fetch_one(&self.pool)
            .await?;
        get_i64(&row, "n")
    }
}
