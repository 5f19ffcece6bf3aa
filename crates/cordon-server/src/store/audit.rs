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
}

pub(crate) async fn append(tx: &mut Tx, rec: &NewAudit<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit (at, actor, action, host_id, comment, result, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(now_ms())
    .bind(rec.actor.to_string())
    .bind(rec.action.to_string())
    .bind(rec.host_id.map(str::to_string))
    .bind(rec.comment.map(str::to_string))
    .bind(rec.result.to_string())
    .bind(rec.detail.map(str::to_string))
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
    })
}

impl Store {
    /// Records matching `f`, oldest first.
    pub async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql =
            String::from("SELECT id, at, actor, action, host_id, comment, result, detail FROM audit WHERE 1=1");
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

    /// Number of audit records (tests use it to prove a refused request wrote nothing).
    pub async fn audit_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM audit")
            .fetch_one(&self.pool)
            .await?;
        get_i64(&row, "n")
    }
}
