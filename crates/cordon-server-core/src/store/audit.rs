//! The append-only audit log, hash-chained (issue 17, see [`cordon_proto::audit_chain`]).

use cordon_proto::audit_chain::{chain_hash, ChainReport, Checkpoint, Verifier};
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

/// Appends `rec` inside `tx`. A record that notification targets can subscribe to is
/// also queued in `notify_pending` in the same transaction, so it is delivered even when
/// another writer's smaller id commits after it. Returns the record's id.
pub(crate) async fn append(tx: &mut Tx, rec: &NewAudit<'_>) -> Result<i64, StoreError> {
    // Lock the chain head before the record's id is allocated (migration 0017): a row
    // lock on PostgreSQL held to commit, so concurrent writers on any replica append
    // one after the other and chain order is id order.
    sqlx::query("UPDATE audit_chain SET chained = chained + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    let head = sqlx::query("SELECT head_hash FROM audit_chain WHERE id = 1")
        .fetch_one(&mut **tx)
        .await?;
    let prev = get_str(&head, "head_hash")?;
    let at = now_ms();
    let row = sqlx::query(
        "INSERT INTO audit (at, actor, action, host_id, comment, result, detail, event_id, rule_name) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(at)
    .bind(rec.actor.to_string())
    .bind(rec.action.to_string())
    .bind(rec.host_id.map(str::to_string))
    .bind(rec.comment.map(str::to_string))
    .bind(rec.result.to_string())
    .bind(rec.detail.map(str::to_string))
    .bind(rec.event_id.map(str::to_string))
    .bind(rec.rule.map(str::to_string))
    .fetch_one(&mut **tx)
    .await?;
    let id = get_i64(&row, "id")?;
    let full = AuditRecord {
        id,
        at: to_rfc3339(at),
        actor: rec.actor.to_string(),
        action: rec.action.to_string(),
        host_id: rec.host_id.map(str::to_string),
        comment: rec.comment.map(str::to_string),
        result: rec.result.to_string(),
        detail: rec.detail.map(str::to_string),
        event_id: rec.event_id.map(str::to_string),
        rule: rec.rule.map(str::to_string),
        prev_hash: None,
        hash: None,
    };
    let hash = chain_hash(&prev, &full);
    sqlx::query("UPDATE audit SET prev_hash = $1, hash = $2 WHERE id = $3")
        .bind(prev)
        .bind(hash.clone())
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE audit_chain SET head_id = $1, head_hash = $2 WHERE id = 1")
        .bind(id)
        .bind(hash)
        .execute(&mut **tx)
        .await?;
    if super::outbox::kind_of(rec.action).is_some() {
        sqlx::query("INSERT INTO notify_pending (audit_id) VALUES ($1)")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(id)
}

/// Label of the chain head kept in the database, as named in verification reports.
pub const CHECKPOINT_SOURCE: &str = "database chain-head";

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub host_id: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Case-insensitive part of the actor's name.
    pub actor_contains: Option<String>,
    /// Case-insensitive part of the host's id or hostname (records without a host never
    /// match).
    pub host_contains: Option<String>,
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
        prev_hash: get_opt_str(row, "prev_hash")?,
        hash: get_opt_str(row, "hash")?,
    })
}

/// Which end of the log a page starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuditOrder {
    /// Oldest first (ascending id).
    #[default]
    Oldest,
    /// Newest first (descending id).
    Newest,
}

impl Store {
    /// Records matching `f`, oldest first (at most `f.limit`, all without one).
    pub async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_query(f, None, AuditOrder::Oldest, f.limit).await
    }

    /// One page of the records matching `f` in `order`, after the record with id
    /// `after` (exclusive), at most `limit` (capped at [`super::hosts::MAX_PAGE`];
    /// `f.limit` is ignored). Filter, order and cut run in SQL on the indexed id.
    /// Returns the records and the id to continue after (`None` on the last page).
    pub async fn audit_page(
        &self,
        f: &AuditFilter,
        after: Option<i64>,
        order: AuditOrder,
        limit: i64,
    ) -> Result<(Vec<AuditRecord>, Option<i64>), StoreError> {
        let limit = limit.clamp(1, super::hosts::MAX_PAGE);
        let mut records = self.audit_query(f, after, order, Some(limit + 1)).await?;
        let more = records.len() as i64 > limit;
        records.truncate(limit as usize);
        let next = if more { records.last().map(|r| r.id) } else { None };
        Ok((records, next))
    }

    /// How many records match `f` and come after record `after` in `order` (all
    /// matching records without `after`): the total of a filtered list, and how many
    /// records come before a page.
    pub async fn audit_matching_count(
        &self,
        f: &AuditFilter,
        after: Option<i64>,
        order: AuditOrder,
    ) -> Result<i64, StoreError> {
        let rows = self.audit_rows(f, after, order, None, true).await?;
        rows.first().map_or(Ok(0), |r| get_i64(r, "n"))
    }

    async fn audit_query(
        &self,
        f: &AuditFilter,
        after: Option<i64>,
        order: AuditOrder,
        limit: Option<i64>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = self.audit_rows(f, after, order, limit, false).await?;
        rows.iter().map(record).collect()
    }

    /// The records (or with `count`, one row with their number `n`).
    async fn audit_rows(
        &self,
        f: &AuditFilter,
        after: Option<i64>,
        order: AuditOrder,
        limit: Option<i64>,
        count: bool,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let mut sql = String::from(if count {
            "SELECT COUNT(*) AS n FROM audit WHERE 1=1"
        } else {
            "SELECT id, at, actor, action, host_id, comment, result, detail, event_id, rule_name, prev_hash, hash \
             FROM audit WHERE 1=1"
        });
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
        if f.actor_contains.is_some() {
            sql.push_str(&format!(" AND LOWER(actor) LIKE ${} ESCAPE '\\'", next()));
        }
        if f.host_contains.is_some() {
            let n = next();
            sql.push_str(&format!(
                " AND host_id IN (SELECT id FROM hosts WHERE LOWER(id) LIKE ${n} ESCAPE '\\' \
                 OR LOWER(hostname) LIKE ${n} ESCAPE '\\')"
            ));
        }
        if f.since.is_some() {
            sql.push_str(&format!(" AND at >= ${}", next()));
        }
        if f.until.is_some() {
            sql.push_str(&format!(" AND at < ${}", next()));
        }
        if after.is_some() {
            let op = match order {
                AuditOrder::Oldest => ">",
                AuditOrder::Newest => "<",
            };
            sql.push_str(&format!(" AND id {op} ${}", next()));
        }
        if !count {
            sql.push_str(match order {
                AuditOrder::Oldest => " ORDER BY id",
                AuditOrder::Newest => " ORDER BY id DESC",
            });
        }
        if limit.is_some() {
            sql.push_str(&format!(" LIMIT ${}", next()));
        }
        let mut q = sqlx::query(&sql);
        for s in [&f.host_id, &f.actor, &f.action].into_iter().flatten() {
            q = q.bind(s.clone());
        }
        for s in [&f.actor_contains, &f.host_contains].into_iter().flatten() {
            q = q.bind(super::hosts::like_pattern(s));
        }
        for v in [f.since, f.until, after, limit].into_iter().flatten() {
            q = q.bind(v);
        }
        Ok(q.fetch_all(&self.pool).await?)
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

    /// The chain head kept in the database (`None` before the first chained record) and
    /// the id of the last record written before the chain existed.
    pub async fn audit_head(&self) -> Result<(Option<Checkpoint>, i64), StoreError> {
        let row = sqlx::query("SELECT head_id, head_hash, started_after FROM audit_chain WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let head = super::get_opt_i64(&row, "head_id")?
            .map(|id| get_str(&row, "head_hash").map(|hash| Checkpoint { last_id: id, hash }));
        Ok((head.transpose()?, get_i64(&row, "started_after")?))
    }

    /// Writes the chain head to the server log (`audit checkpoint ID:HASH`) so a copy
    /// lives outside the database; `cordon audit verify --checkpoint ID:HASH` checks a
    /// log or an export against it.
    pub async fn log_audit_checkpoint(&self) -> Result<(), StoreError> {
        if let (Some(h), _) = self.audit_head().await? {
            tracing::info!(checkpoint = %format!("{}:{}", h.last_id, h.hash), "audit checkpoint");
        }
        Ok(())
    }

    /// Checks the whole log, oldest first, page by page, against the chain, the
    /// database's chain head and `extra` checkpoints (source label, head). Logs the
    /// head it found as a checkpoint.
    pub async fn audit_verify(&self, extra: Vec<(String, Checkpoint)>) -> Result<ChainReport, StoreError> {
        let (head, started_after) = self.audit_head().await?;
        let mut checkpoints = extra;
        if let Some(h) = head {
            checkpoints.push((CHECKPOINT_SOURCE.to_string(), h));
        }
        let mut v = Verifier::new(checkpoints).chain_starts_after(started_after);
        let filter = AuditFilter::default();
        let mut after = None;
        loop {
            let (records, next) = self
                .audit_page(&filter, after, AuditOrder::Oldest, super::hosts::MAX_PAGE)
                .await?;
            for r in &records {
                v.push(r);
            }
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let report = v.finish();
        if let Some(h) = &report.head {
            tracing::info!(checkpoint = %format!("{}:{}", h.last_id, h.hash), ok = report.ok, "audit checkpoint");
        }
        Ok(report)
    }

    /// Number of audit records (tests use it to prove a refused request wrote nothing).
    pub async fn audit_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM audit")
            .fetch_one(&self.pool)
            .await?;
        get_i64(&row, "n")
    }
}
