//! The append-only audit log, hash-chained (issue 17, see [`cordon_proto::audit_chain`]).

#![deny(missing_docs)]

use cordon_proto::audit_chain::{
    chain_hash, ChainReport, Checkpoint, RecordRange, RetentionCut, SignatureCheck, SignedCheckpoint, Verifier,
    CHECKPOINT_ACTION, GENESIS, RETENTION_ACTION,
};
use cordon_proto::AuditRecord;
use sqlx::any::AnyRow;

use std::collections::BTreeMap;

use super::{get_i64, get_opt_str, get_str, Store, StoreError, Tx};

/// Action of the audit record written when retention refused to run because the log
/// does not verify (see [`Store::note_retention_refused`]); its comment says why.
pub const RETENTION_REFUSED_ACTION: &str = "audit_retention_refused";
use crate::timefmt::{now_ms, to_rfc3339, Timestamp};

/// Who did something, as the audit log records it: a display name and, for API tokens
/// (and console sessions opened with one), the token's id — the identity, since a name
/// is only a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor<'a> {
    /// The display name recorded as `actor` (a token's name, `system`, `agent:HOST`,
    /// `rule:NAME`, `enrollment`, `cordon server …`).
    pub name: &'a str,
    /// The API token behind it, recorded as `actor_token_id`.
    pub token_id: Option<i64>,
}

impl<'a> From<&'a str> for Actor<'a> {
    /// The server itself, an agent, a rule, enrollment: a name without a token.
    fn from(name: &'a str) -> Self {
        Actor { name, token_id: None }
    }
}

impl<'a> From<&'a String> for Actor<'a> {
    fn from(name: &'a String) -> Self {
        Actor { name, token_id: None }
    }
}

impl<'a> From<&'a super::Caller> for Actor<'a> {
    /// An API token (or a console session opened with it): its name and id.
    fn from(c: &'a super::Caller) -> Self {
        Actor {
            name: &c.name,
            token_id: Some(c.token_id),
        }
    }
}

impl std::fmt::Display for Actor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// One record to append, always inside the transaction of the change it describes.
#[derive(Debug, Clone, Default)]
pub struct NewAudit<'a> {
    /// Who acted (display name, see [`Actor`]).
    pub actor: &'a str,
    /// The API token behind `actor` (people and scripts, console sessions).
    pub actor_token_id: Option<i64>,
    /// What was done (`quarantine`, `release`, `enroll`, `audit_checkpoint`, …).
    pub action: &'a str,
    /// The host concerned, if any (its id).
    pub host_id: Option<&'a str>,
    /// The reason the actor gave.
    pub comment: Option<&'a str>,
    /// `ok`, `pending`, `error`, …
    pub result: &'a str,
    /// More detail (what changed, an error, a signed checkpoint as JSON).
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
    /// The automation event's id.
    pub event_id: &'a str,
    /// The rule's name (actor `rule:NAME`).
    pub rule: &'a str,
    /// The rule's id (`auto_rules.id`): names the rule even after it was deleted and
    /// another one created under the same name. `None` when the rule no longer exists.
    pub rule_id: Option<i64>,
    /// More detail appended to the detail text.
    pub extra: Option<&'a str>,
}

impl AutoCause<'_> {
    /// The detail text: `event=<id>; rule=<name>[; rule_id=<id>][; extra]`.
    pub fn detail(&self) -> String {
        let mut d = format!("event={}; rule={}", self.event_id, self.rule);
        if let Some(id) = self.rule_id {
            d.push_str(&format!("; rule_id={id}"));
        }
        if let Some(x) = self.extra {
            d.push_str("; ");
            d.push_str(x);
        }
        d
    }
}

/// Appends `rec` inside `tx` ([`append_many`] with one record). Returns the record's id.
pub(crate) async fn append(tx: &mut Tx, rec: &NewAudit<'_>) -> Result<i64, StoreError> {
    let ids = append_many(tx, std::slice::from_ref(rec), &BTreeMap::new()).await?;
    ids.first().copied().ok_or_else(|| StoreError::Corrupt {
        what: "audit id allocation (no id for the record)".into(),
        source: None,
    })
}

/// Audit rows per `INSERT` statement (14 bind parameters each). Kept small: binding a
/// statement's parameters costs SQLite time in the square of their number (sqlx looks
/// each `$N` up by name, and SQLite finds a name by scanning the statement's list of
/// them), so 200 rows (2,800 parameters) took about 6 ms per statement to bind — a
/// quarter of the server's CPU time in a 10,000-host bulk quarantine (issue 15,
/// profiled with `perf`); 32 rows (448 parameters) bind in about a fiftieth of that per
/// row, and a statement's own cost is small beside it.
const ROWS_PER_INSERT: usize = 32;

/// Appends `recs`, in order, inside `tx`, with a fixed number of statements per
/// [`ROWS_PER_INSERT`] records instead of several per record: a bulk action on 10,000
/// hosts, or a batch of agent acknowledgements, would otherwise make tens of thousands
/// of database round trips while holding the writer lock (issue 15). Each record is
/// still chained to the one before it (`prev_hash`, `hash`) and marked, exactly as if
/// appended one by one. A record that notification targets can subscribe to is also
/// queued in `notify_pending` in the same transaction (with `facts[i]`, the JSON
/// [`super::outbox::NoticeFacts`] of record `i`, when given), so it is delivered even
/// when another writer's smaller id commits after it. Returns the records' ids, in
/// order.
///
/// Lock, then ids: the chain head row is updated first (a row lock on PostgreSQL held
/// to commit, the write lock on SQLite), so concurrent writers on any replica append
/// one after the other; only this function inserts audit rows, so the ids it then
/// allocates are above every committed record's and chain order is id order.
///
/// # Errors
/// Database errors; [`StoreError::AuditTampered`] when, inside this transaction, a
/// record just written was changed or deleted, the chain head moved away from the last
/// one, or the database holds objects (triggers, rules, policies) Cordon did not create.
pub(crate) async fn append_many(
    tx: &mut Tx,
    recs: &[NewAudit<'_>],
    facts: &BTreeMap<usize, String>,
) -> Result<Vec<i64>, StoreError> {
    append_records(tx, recs, facts, None).await
}

/// [`append`] right after retention deleted the records through `cut` (id and hash,
/// when it had one) in `tx`: the chain head may name the deleted record `cut.0` itself.
async fn append_after_cut(tx: &mut Tx, rec: &NewAudit<'_>, cut: (i64, Option<&str>)) -> Result<i64, StoreError> {
    let ids = append_records(tx, std::slice::from_ref(rec), &BTreeMap::new(), Some(cut)).await?;
    ids.first().copied().ok_or_else(|| StoreError::Corrupt {
        what: "audit id allocation (no id for the record)".into(),
        source: None,
    })
}

/// [`append_many`]; `cut`: see [`append_after_cut`].
async fn append_records(
    tx: &mut Tx,
    recs: &[NewAudit<'_>],
    facts: &BTreeMap<usize, String>,
    cut: Option<(i64, Option<&str>)>,
) -> Result<Vec<i64>, StoreError> {
    if recs.is_empty() {
        return Ok(Vec::new());
    }
    let n = i64::try_from(recs.len()).map_err(|_| StoreError::Invalid("too many audit records at once".into()))?;
    // Lock the chain head before the ids are allocated (migration 0017).
    let locked = sqlx::query("UPDATE audit_chain SET chained = chained + $1 WHERE id = 1")
        .bind(n)
        .execute(&mut **tx)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(StoreError::AuditTampered(HEAD_ROW_MISSING.into()));
    }
    let mut prev = head_to_extend(tx, cut).await?;
    known_records_present(tx, cut).await?;
    let ids = allocate_ids(tx, n).await?;
    let at = now_ms();
    let marker = tx.marker().cloned();
    // (record, prev_hash, hash, mark)
    let mut rows: Vec<(AuditRecord, String, String, String)> = Vec::with_capacity(recs.len());
    for (rec, id) in recs.iter().zip(&ids) {
        let full = AuditRecord {
            id: *id,
            at: to_rfc3339(at),
            actor: rec.actor.to_string(),
            action: rec.action.to_string(),
            host_id: rec.host_id.map(str::to_string),
            comment: rec.comment.map(str::to_string),
            result: rec.result.to_string(),
            detail: rec.detail.map(str::to_string),
            event_id: rec.event_id.map(str::to_string),
            rule: rec.rule.map(str::to_string),
            actor_token_id: rec.actor_token_id,
            prev_hash: None,
            hash: None,
        };
        let hash = chain_hash(&prev, &full);
        let mark = match &marker {
            Some(m) => m.mark(&hash),
            None => writer_mac(&hash),
        };
        let before = std::mem::replace(&mut prev, hash.clone());
        rows.push((full, before, hash, mark));
    }
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut sql = String::from(
            "INSERT INTO audit (id, at, actor, action, host_id, comment, result, detail, event_id, rule_name, \
             actor_token_id, prev_hash, hash, writer_mac) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            sql.push_str(&placeholders(i * 14 + 1, 14));
            sql.push(')');
        }
        let mut q = sqlx::query(&sql);
        for (r, prev_hash, hash, mark) in chunk {
            q = q
                .bind(r.id)
                .bind(at)
                .bind(r.actor.clone())
                .bind(r.action.clone())
                .bind(r.host_id.clone())
                .bind(r.comment.clone())
                .bind(r.result.clone())
                .bind(r.detail.clone())
                .bind(r.event_id.clone())
                .bind(r.rule.clone())
                .bind(r.actor_token_id)
                .bind(prev_hash.clone())
                .bind(hash.clone())
                .bind(mark.clone());
        }
        q.execute(&mut **tx).await?;
    }
    let Some((last, _, last_hash, _)) = rows.last() else {
        return Ok(ids);
    };
    tx.appended = Some(Checkpoint {
        last_id: last.id,
        hash: last_hash.clone(),
    });
    sqlx::query("UPDATE audit_chain SET head_id = $1, head_hash = $2 WHERE id = 1")
        .bind(last.id)
        .bind(last_hash.clone())
        .execute(&mut **tx)
        .await?;
    let pending: Vec<(i64, Option<String>)> = rows
        .iter()
        .enumerate()
        .filter(|(_, (r, ..))| super::outbox::kind_of(&r.action).is_some())
        .map(|(i, (r, ..))| (r.id, facts.get(&i).cloned()))
        .collect();
    for chunk in pending.chunks(ROWS_PER_INSERT) {
        let values = (0..chunk.len())
            .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO notify_pending (audit_id, facts) VALUES {values}");
        let mut q = sqlx::query(&sql);
        for (id, f) in chunk {
            q = q.bind(*id).bind(f.clone());
        }
        q.execute(&mut **tx).await?;
    }
    let written: Vec<(i64, &str)> = rows.iter().map(|(r, _, h, _)| (r.id, h.as_str())).collect();
    own_records_are_head(tx, &written).await?;
    if let Some(found) = foreign_objects(tx).await?.first() {
        return Err(StoreError::AuditTampered(format!(
            "the database holds {found}, which Cordon did not create: it can change or delete audit records \
             inside the server's own writes; remove it (and find who created it)"
        )));
    }
    Ok(ids)
}

/// Why nothing can be appended when the chain head row is gone (trial28 MED-4).
pub const HEAD_ROW_MISSING: &str = "the audit chain head row (table audit_chain, id 1) is missing from the database: \
     it was deleted there (no server deletes it); nothing can be appended to the audit log until it is restored \
     (see docs/server.md, \"Recovering the audit chain head\")";

/// The hash a new record chains to: the chain head's `head_hash`, once it is checked to
/// be the hash of the record the head names (trial28 MED-3: an append that took an
/// edited head row's hash made a genuine record read as moved, for good). An empty
/// chain (no head record) chains to [`GENESIS`] only when no chained record exists.
/// Call only while holding the chain head's lock.
///
/// # Errors
/// [`StoreError::AuditTampered`] (503, nothing changed) naming the mismatch: the head
/// row is missing, names a record that is not in the log, holds a hash other than
/// that record's, or names a record before the log's last chained one; database errors.
///
/// `cut`: retention just deleted the records through `cut.0` in this transaction, so
/// the head may name that record (holding `cut.1`, its hash, when given).
async fn head_to_extend(tx: &mut Tx, cut: Option<(i64, Option<&str>)>) -> Result<String, StoreError> {
    let Some(row) = sqlx::query(
        "SELECT c.head_id AS head_id, c.head_hash AS head_hash, a.id AS id, a.hash AS hash, \
         (SELECT MAX(id) FROM audit WHERE hash IS NOT NULL) AS last_chained \
         FROM audit_chain c LEFT JOIN audit a ON a.id = c.head_id WHERE c.id = 1",
    )
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Err(StoreError::AuditTampered(HEAD_ROW_MISSING.into()));
    };
    let head_hash = get_str(&row, "head_hash")?;
    let recover = "nothing is appended to a chain whose head was edited (see docs/server.md, \
                   \"Recovering the audit chain head\")";
    match super::get_opt_i64(&row, "head_id")? {
        None => match super::get_opt_i64(&row, "last_chained")? {
            Some(last) => Err(StoreError::AuditTampered(format!(
                "audit chain head names no record, but the log holds chained records up to {last}: the head row \
                 was edited in the database; {recover}"
            ))),
            None if head_hash != GENESIS => Err(StoreError::AuditTampered(format!(
                "audit chain head names no record but holds hash {head_hash}, not the genesis value: the head row \
                 was edited in the database; {recover}"
            ))),
            None => Ok(head_hash),
        },
        Some(head) => match (super::get_opt_i64(&row, "id")?, get_opt_str(&row, "hash")?) {
            (None, _) if cut.is_some_and(|(id, hash)| head == id && hash.is_none_or(|h| h == head_hash)) => {
                Ok(head_hash)
            }
            (None, _) => Err(StoreError::AuditTampered(format!(
                "audit chain head names record {head}, which is not in the log: the record was deleted or the head \
                 row edited in the database; {recover}"
            ))),
            (Some(_), hash) if hash.as_deref() != Some(head_hash.as_str()) => Err(StoreError::AuditTampered(format!(
                "audit chain head does not match record {head}: the head row holds hash {head_hash}, the record \
                 {}: one of them was edited in the database; {recover}",
                hash.as_deref().unwrap_or("no hash")
            ))),
            // trial33 MED-A: a head rewound to an earlier record (id and hash consistent)
            // would fork the chain: the next record would chain to it beside the later
            // ones, and verification would blame that genuine record for good.
            (Some(_), _) => match super::get_opt_i64(&row, "last_chained")? {
                Some(last) if last > head => Err(StoreError::AuditTampered(format!(
                    "audit chain head names record {head}, but the log holds chained records up to {last}: the head \
                     row was set back in the database; {recover}"
                ))),
                _ => Ok(head_hash),
            },
        },
    }
}

/// Checks, while holding the chain head's lock, that the records this process knows
/// from outside the database — the newest chain head it saw and the newest record it
/// appended itself ([`super::TxShared`]) — are still in the log with their hashes
/// (trial35 MED-1: after a tail cut the running server had seen, with the head row
/// rewound to match, the next record was chained over the cut, and verification then
/// blamed that genuine record). A known record missing while the log holds a chained
/// record before it was removed from the middle or the end (retention removes a prefix
/// only, and the record it cuts through in this transaction, `cut`, is excused); one
/// missing with nothing before it is left to verification, which knows the signed
/// retention cuts.
///
/// # Errors
/// [`StoreError::AuditTampered`] (503, nothing changed) naming the record; database errors.
async fn known_records_present(tx: &mut Tx, cut: Option<(i64, Option<&str>)>) -> Result<(), StoreError> {
    let seen = tx.mark.seen.lock().ok().and_then(|g| g.clone());
    let own = tx.mark.own.lock().ok().and_then(|g| g.clone());
    let mut known: Vec<(Checkpoint, &str)> = Vec::new();
    known.extend(seen.map(|k| (k, "the newest chain head this server saw")));
    known.extend(own.map(|k| (k, "the last record this server wrote")));
    known.sort_by_key(|(k, _)| k.last_id);
    known.dedup_by_key(|(k, _)| k.last_id);
    let recover = "nothing is appended over a cut (a genuine record would then be blamed for it): restore the \
                   database from a backup (see docs/server.md, \"Recovering the audit chain head\")";
    for (k, what) in known {
        if cut.is_some_and(|(c, _)| k.last_id <= c) {
            continue;
        }
        let row = sqlx::query(
            "SELECT (SELECT hash FROM audit WHERE id = $1) AS hash, (SELECT COUNT(*) FROM audit WHERE id = $1) AS here, \
             (SELECT MAX(id) FROM audit WHERE id < $1 AND hash IS NOT NULL) AS before",
        )
        .bind(k.last_id)
        .fetch_one(&mut **tx)
        .await?;
        if get_i64(&row, "here")? > 0 {
            let hash = get_opt_str(&row, "hash")?;
            if hash.as_deref() != Some(k.hash.as_str()) {
                return Err(StoreError::AuditTampered(format!(
                    "record {} ({what}, hash {}) was rewritten in the database: it now has hash {}; {recover}",
                    k.last_id,
                    k.hash,
                    hash.as_deref().unwrap_or("(none)")
                )));
            }
        } else if let Some(before) = super::get_opt_i64(&row, "before")? {
            return Err(StoreError::AuditTampered(format!(
                "record {} ({what}, hash {}) was removed from the database: the log goes on from record {before}, \
                 which it followed; {recover}",
                k.last_id, k.hash
            )));
        }
    }
    Ok(())
}

/// `$from, $from+1, …` (`n` placeholders).
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|k| format!("${k}")).collect::<Vec<_>>().join(", ")
}

/// `n` new audit ids, ascending, above every record written so far. Call only while
/// holding the chain head (see [`append_many`]).
async fn allocate_ids(tx: &mut Tx, n: i64) -> Result<Vec<i64>, StoreError> {
    let mut ids = if tx.backend_name() == "PostgreSQL" {
        let rows = sqlx::query(
            "SELECT nextval(pg_get_serial_sequence('audit', 'id')) AS id FROM generate_series(1, $1::bigint)",
        )
        .bind(n)
        .fetch_all(&mut **tx)
        .await?;
        rows.iter().map(|r| get_i64(r, "id")).collect::<Result<Vec<_>, _>>()?
    } else {
        // AUTOINCREMENT: a new id is above both the counter (ids of deleted records are
        // never reused) and the largest id; inserting an explicit id moves the counter.
        let row = sqlx::query(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0), \
             COALESCE((SELECT MAX(id) FROM audit), 0)) AS last",
        )
        .fetch_one(&mut **tx)
        .await?;
        let last = get_i64(&row, "last")?;
        (1..=n).map(|k| last + k).collect()
    };
    ids.sort_unstable();
    Ok(ids)
}

/// Checks, inside the appending transaction, that the records just written (`(id,
/// hash)`, in chain order) are in the log with the hashes the server computed and the
/// last is the chain's head (trial18 HIGH-2): a trigger that deleted or changed one or
/// rewound the head in the same transaction makes the append fail, so the change it
/// records is rolled back instead of happening unrecorded. One statement per call.
async fn own_records_are_head(tx: &mut Tx, written: &[(i64, &str)]) -> Result<(), StoreError> {
    let (Some((first, _)), Some((last, last_hash))) = (written.first(), written.last()) else {
        return Ok(());
    };
    let rows = sqlx::query(
        "SELECT c.head_id AS head_id, c.head_hash AS head_hash, a.id AS id, a.hash AS hash \
         FROM audit_chain c LEFT JOIN audit a ON a.id >= $1 AND a.id <= $2 WHERE c.id = 1",
    )
    .bind(*first)
    .bind(*last)
    .fetch_all(&mut **tx)
    .await?;
    let Some(row) = rows.first() else {
        return Err(StoreError::AuditTampered(format!(
            "the chain head row (audit_chain) vanished while the server appended record {last}"
        )));
    };
    let head_id = super::get_opt_i64(row, "head_id")?;
    let head_hash = get_opt_str(row, "head_hash")?;
    let mut stored = std::collections::HashMap::with_capacity(rows.len());
    for r in &rows {
        if let Some(id) = super::get_opt_i64(r, "id")? {
            stored.insert(id, get_opt_str(r, "hash")?);
        }
    }
    let mut problem = None;
    for (id, hash) in written {
        problem = match stored.get(id) {
            None => Some(format!(
                "record {id} was deleted inside the server's own transaction right after it was written"
            )),
            Some(h) if h.as_deref() != Some(*hash) => Some(format!(
                "record {id} was changed inside the server's own transaction right after it was written"
            )),
            Some(_) => None,
        };
        if problem.is_some() {
            break;
        }
    }
    if problem.is_none() && (head_id != Some(*last) || head_hash.as_deref() != Some(*last_hash)) {
        problem = Some(format!(
            "the chain head was moved away from record {last} inside the server's own transaction right after it was written"
        ));
    }
    match problem {
        Some(p) => Err(StoreError::AuditTampered(format!(
            "{p} (a trigger or rule in the database works against the audit log)"
        ))),
        None => Ok(()),
    }
}

/// Objects in the database that run code, or hide rows, behind the server's statements
/// and that Cordon's migrations never create (trial18 HIGH-2): on SQLite every trigger
/// (the migrations create none); on PostgreSQL every user trigger and rule on a table
/// of the schemas on the search path, every row-level security policy there, and any of
/// the audit tables (`audit`, `audit_chain`, `audit_writers`, `notify_outbox`,
/// `notify_pending`) that resolves to something other than a plain table (a view put in
/// front of it). Each is described as `trigger NAME on TABLE` (sorted); empty when there
/// are none.
///
/// # Errors
/// Database errors.
pub(crate) async fn foreign_objects(conn: &mut sqlx::AnyConnection) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    if conn.backend_name() == "PostgreSQL" {
        let rows = sqlx::query(
            "SELECT 'trigger ' || t.tgname || ' on ' || c.relname AS what FROM pg_trigger t \
             JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT t.tgisinternal AND n.nspname = ANY(current_schemas(false)) \
             UNION ALL SELECT 'rule ' || rulename || ' on ' || tablename FROM pg_rules \
             WHERE schemaname = ANY(current_schemas(false)) \
             UNION ALL SELECT 'row-level security policy ' || policyname || ' on ' || tablename FROM pg_policies \
             WHERE schemaname = ANY(current_schemas(false)) \
             UNION ALL SELECT 'a ' || CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' \
             ELSE 'relation of kind ' || c.relkind::text END || ' named ' || c.relname || ' in front of the table' \
             FROM unnest(ARRAY['audit','audit_chain','audit_writers','notify_outbox','notify_pending']) AS t(name) \
             JOIN pg_class c ON c.oid = to_regclass(t.name) WHERE c.relkind NOT IN ('r', 'p') \
             UNION ALL SELECT 'row-level security on ' || c.relname FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relrowsecurity AND n.nspname = ANY(current_schemas(false))",
        )
        .fetch_all(&mut *conn)
        .await?;
        for r in &rows {
            out.push(get_str(r, "what")?);
        }
    } else {
        let rows = sqlx::query(
            "SELECT 'trigger ' || name || ' on ' || tbl_name AS what FROM sqlite_master WHERE type = 'trigger' \
             UNION ALL SELECT 'trigger ' || name || ' on ' || tbl_name FROM sqlite_temp_master WHERE type = 'trigger'",
        )
        .fetch_all(&mut *conn)
        .await?;
        for r in &rows {
            out.push(get_str(r, "what")?);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Signs a checkpoint with the CA key (`Err`: why it failed, with its cause).
pub type Signer = Box<dyn Fn(SignedCheckpoint) -> Result<SignedCheckpoint, crate::pki::PkiError> + Send + Sync>;

/// The CA key's signer and the CA certificate's checker, given to the store by a server
/// that has the CA key ([`Store::set_audit_keys`]): writer rows are signed with it
/// (a row without a valid signature counts for nothing) and other servers' checkpoint
/// records are checked with it.
pub struct AuditKeys {
    /// Signs this process's writer row (see [`WRITER_PROOF_OCCASION`]).
    pub sign: Signer,
    /// Checks a signature by the CA key.
    pub check: SignatureCheck,
    /// The deployment's record-mark key, derived from the CA private key
    /// ([`crate::pki::Ca::audit_mark_key`]): every server of the deployment has it, a
    /// database-only attacker does not.
    pub mark: ring::hmac::Key,
}

/// Prefix of a record's `writer_mac` made with the deployment's mark key ([`Marker`]):
/// `m1:WRITER:HEX`. A mark without it is a legacy per-process mark (before trial10).
pub const MARK_PREFIX: &str = "m1:";

/// The mark a server of the deployment gives every audit record it appends
/// (`audit.writer_mac`): `m1:WRITER:HMAC` — HMAC-SHA256, under the key every server of
/// the deployment derives from the CA private key ([`AuditKeys::mark`]), of a version
/// tag, the writer id (`audit_writers`) and the record's chain hash. Any server can
/// check any record's mark at any time, whoever wrote it and whether or not that writer
/// still runs; someone with database access only cannot make one (and a mark copied to
/// another record does not fit its hash).
#[derive(Clone)]
pub struct Marker {
    key: ring::hmac::Key,
    writer: String,
}

impl Marker {
    /// The marker of writer `writer` (an `audit_writers` id) under the deployment's key
    /// `key` ([`crate::pki::Ca::audit_mark_key`]).
    pub fn new(key: ring::hmac::Key, writer: &str) -> Self {
        Marker {
            key,
            writer: writer.to_string(),
        }
    }

    /// The mark of the record with chain hash `hash` written by this writer.
    pub fn mark(&self, hash: &str) -> String {
        let tag = ring::hmac::sign(&self.key, &mark_message(&self.writer, hash));
        format!("{MARK_PREFIX}{}:{}", self.writer, hex::encode(tag.as_ref()))
    }
}

fn mark_message(writer: &str, hash: &str) -> Vec<u8> {
    format!("cordon-audit-record-mark-v1\n{writer}\n{hash}\n").into_bytes()
}

/// Whether `mark` (a record's `writer_mac`) is a valid deployment mark of chain hash
/// `hash` under `key` (see [`Marker`]).
pub fn mark_valid(key: &ring::hmac::Key, hash: &str, mark: Option<&str>) -> bool {
    let Some((writer, tag)) = mark
        .and_then(|m| m.strip_prefix(MARK_PREFIX))
        .and_then(|m| m.rsplit_once(':'))
    else {
        return false;
    };
    hex::decode(tag).is_ok_and(|t| ring::hmac::verify(key, &mark_message(writer, hash), &t).is_ok())
}

/// Occasion of the signed proof an `audit_writers` row carries: a [`SignedCheckpoint`]
/// whose `hash` is the writer id and `last_id` the row's `seen_at` (Unix ms).
pub const WRITER_PROOF_OCCASION: &str = "writer-live";

/// How far (ms) a writer row's `seen_at` may lie ahead of this server's clock before it
/// is said: a row stamped further in the future counts only with a valid signature by
/// the CA key (a replica whose clock is ahead, logged as a warning); without keys it is
/// refused.
pub const WRITER_SKEW_MS: i64 = 5_000;

/// How long a start or an orderly stop watches another writer's row for a refresh
/// before taking that writer for stopped (running servers refresh every two seconds).
pub const WRITER_SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// This process's secret for marking the records it appends (`audit.writer_mac`): an
/// HMAC-SHA256 key made at first use from the operating system's random source (via
/// UUID v4, so no `expect` on a fallible generator), never stored anywhere. All stores
/// in one process share it (they are one writer as far as anyone outside can tell).
fn process_key() -> &'static ring::hmac::Key {
    static KEY: std::sync::OnceLock<ring::hmac::Key> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut bytes = Vec::with_capacity(32);
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes)
    })
}

/// The mark this process gives a record it appends: HMAC of its chain hash (hex).
fn writer_mac(hash: &str) -> String {
    hex::encode(ring::hmac::sign(process_key(), hash.as_bytes()).as_ref())
}

/// How long (ms) a writer's `audit_writers` row counts as live after its last refresh:
/// a running server refreshes it every two seconds ([`Store::writer_heartbeat`]), so a
/// row older than this is a server that crashed (replicas' clocks must agree within it).
pub const WRITER_LIVE_MS: i64 = 30_000;

/// What a server knew from outside the database when it starts (its data directory's
/// anchor file), for the start checkpoint ([`Store::append_start_checkpoint`]).
#[derive(Debug, Clone, Default)]
pub struct StartFacts {
    /// The newest record the previous run knew (its last checkpoint record or the newest
    /// head it saw, whichever is newer), read before this start looked at the database.
    pub outside: Option<Checkpoint>,
    /// The previous run's writer id, when that run is known to be over (nothing else
    /// holds the data directory): its `audit_writers` row is dropped, so a crashed run
    /// is not taken for a live replica.
    pub previous_writer: Option<String>,
    /// Why there was no anchor (file missing or unreadable); signed into the start
    /// checkpoint when the log already had checkpoints and no other writer is live.
    pub no_anchor: Option<String>,
}

/// What kind of checkpoint [`Store::checkpoint_in_tx`] writes besides the head.
enum Mode {
    /// Interval, retention, or any other: the head and its links.
    Plain,
    /// A server's start: registers the writer and signs how the log moved while no
    /// server watched it.
    Start(StartFacts),
    /// An orderly stop: unregisters the writer and signs whether it was the last.
    Shutdown,
}

/// Label of the chain head kept in the database, as named in verification reports.
pub const CHECKPOINT_SOURCE: &str = "database chain-head";

/// Label of the last checkpoint record this server process wrote, as named in reports.
pub const ISSUED_SOURCE: &str = "server's own last signed";

/// Label of the newest chain head this server process saw, as named in reports.
pub const SEEN_SOURCE: &str = "running server's last-seen";

/// The three values [`AuditFilter::host_contains`] binds (pure): the id exactly
/// (lower-cased), an id prefix pattern (`text%` from [`MIN_ID_PREFIX`] characters on;
/// for shorter text a pattern without wildcards, i.e. the id exactly), and a pattern for
/// part of the `hostname_key`.
fn host_search(text: &str) -> (String, String, String) {
    let text = text.trim();
    let exact = text.to_lowercase();
    let escaped = super::hosts::like_pattern(text);
    // like_pattern wraps the escaped text in one `%` each side.
    let bare = escaped
        .get(1..escaped.len().saturating_sub(1))
        .unwrap_or_default()
        .to_string();
    let prefix = if text.chars().count() >= MIN_ID_PREFIX {
        format!("{bare}%")
    } else {
        bare
    };
    let name = super::hosts::like_pattern(&crate::service::validate::hostname_key(text));
    (exact, prefix, name)
}

/// Shortest id prefix [`AuditFilter::host_contains`] matches ids by (shorter text
/// matches an id only exactly).
pub const MIN_ID_PREFIX: usize = 8;

/// Which audit records a listing or export selects (every given condition must hold).
#[derive(Debug, Clone, Default)]
/// Which audit records a listing returns (all given conditions hold).
pub struct AuditFilter {
    /// Records about this host (its id; the service resolves a hostname first).
    pub host_id: Option<String>,
    /// Records by this actor name, compared case-insensitively (the database's `LOWER`
    /// on both sides: ASCII letters on SQLite, all letters on PostgreSQL).
    pub actor: Option<String>,
    /// Records of exactly this action.
    pub action: Option<String>,
    /// Records by the API token with this id (`actor_token_id`, the identity of
    /// issue 17.2: it holds across renames, while `actor` is the name the record carries;
    /// trial25 F13).
    pub actor_token_id: Option<i64>,
    /// Case-insensitive part of the actor's name.
    pub actor_contains: Option<String>,
    /// The host searched for (records without a host never match): its exact id, a
    /// prefix of its id of at least `MIN_ID_PREFIX` (8) characters, or part of its
    /// hostname (compared as `hostname_key`: case-folded, NFKC). Never an arbitrary part
    /// of an id: `db1` must not find the host whose random id is `8adb1d37…` (trial8).
    pub host_contains: Option<String>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
    /// Unix ms, exclusive.
    pub until: Option<i64>,
    /// At most this many records ([`Store::audit`]; pages use their own limit).
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
        actor_token_id: super::get_opt_i64(row, "actor_token_id")?,
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

/// The distinct audit actions, sorted, by a loose index scan: each step asks the
/// `audit_action` index for the smallest action after the previous one.
pub const AUDIT_ACTIONS_SQL: &str = "WITH RECURSIVE acts(action) AS (\
     SELECT MIN(action) FROM audit \
     UNION ALL SELECT (SELECT MIN(a.action) FROM audit a WHERE a.action > acts.action) FROM acts \
     WHERE acts.action IS NOT NULL) \
     SELECT action FROM acts WHERE action IS NOT NULL ORDER BY action";

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
            "SELECT id, at, actor, action, host_id, comment, result, detail, event_id, rule_name, actor_token_id, prev_hash, hash \
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
            // Names are one identity case-insensitively (trial35 LOW-3: `--actor ALICE`
            // found nothing of alice's); both sides folded by the database's LOWER.
            sql.push_str(&format!(" AND LOWER(actor) = LOWER(${})", next()));
        }
        if f.action.is_some() {
            sql.push_str(&format!(" AND action = ${}", next()));
        }
        if f.actor_token_id.is_some() {
            sql.push_str(&format!(" AND actor_token_id = ${}", next()));
        }
        if f.actor_contains.is_some() {
            sql.push_str(&format!(" AND LOWER(actor) LIKE ${} ESCAPE '\\'", next()));
        }
        if f.host_contains.is_some() {
            let (exact, prefix, name) = (next(), next(), next());
            sql.push_str(&format!(
                " AND host_id IN (SELECT id FROM hosts WHERE LOWER(id) = ${exact} \
                 OR LOWER(id) LIKE ${prefix} ESCAPE '\\' OR hostname_key LIKE ${name} ESCAPE '\\')"
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
        if let Some(t) = f.actor_token_id {
            q = q.bind(t);
        }
        if let Some(s) = &f.actor_contains {
            q = q.bind(super::hosts::like_pattern(s));
        }
        if let Some(s) = &f.host_contains {
            let (exact, prefix, name) = host_search(s);
            q = q.bind(exact).bind(prefix).bind(name);
        }
        for v in [f.since, f.until, after, limit].into_iter().flatten() {
            q = q.bind(v);
        }
        Ok(q.fetch_all(&self.pool).await?)
    }

    /// The chain head kept in the database (`None` before the first chained record) and
    /// the id of the last record written before the chain existed.
    ///
    /// # Errors
    /// [`StoreError::AuditTampered`] when the chain head row is missing
    /// (deleted in the database); database errors.
    pub async fn audit_head(&self) -> Result<(Option<Checkpoint>, i64), StoreError> {
        self.audit_head_row()
            .await?
            .ok_or_else(|| StoreError::AuditTampered(HEAD_ROW_MISSING.into()))
    }

    /// [`Store::audit_head`], `None` when the chain head row is missing (deleted in the
    /// database, trial28 MED-4).
    async fn audit_head_row(&self) -> Result<Option<(Option<Checkpoint>, i64)>, StoreError> {
        let Some(row) = sqlx::query("SELECT head_id, head_hash, started_after FROM audit_chain WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let head = super::get_opt_i64(&row, "head_id")?
            .map(|id| get_str(&row, "head_hash").map(|hash| Checkpoint { last_id: id, hash }));
        Ok(Some((head.transpose()?, get_i64(&row, "started_after")?)))
    }

    /// The retention cut that excuses the records missing before the log's first chained
    /// record, from the log itself (trial14 HIGH-1: the database's own note of a cut,
    /// `audit_chain.cut_id`/`cut_hash`, is anyone's to write and never trusted): a
    /// [`RETENTION_ACTION`] record — carrying a valid deployment mark when it stands
    /// after the first marked checkpoint — whose cut is signed by the CA key for retention
    /// ([`SignedCheckpoint::is_retention_cut`]) and names exactly the record before the
    /// first kept one (an id below it, and the hash that record carries as `prev_hash`).
    /// Records up to the cut's id may be missing; nothing else may. `None` without keys,
    /// on a log that starts at the genesis value (nothing chained was ever cut), or when
    /// no record vouches for the cut.
    ///
    /// # Errors
    /// Database errors.
    async fn genuine_cut(&self, tx: &mut Tx) -> Result<Option<Checkpoint>, StoreError> {
        let Some(keys) = self.keys.get() else {
            return Ok(None);
        };
        let Some(first) = sqlx::query("SELECT id, prev_hash FROM audit WHERE hash IS NOT NULL ORDER BY id LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?
        else {
            return Ok(None);
        };
        let first_id = get_i64(&first, "id")?;
        let Some(resume) = get_opt_str(&first, "prev_hash")?.filter(|p| p != GENESIS) else {
            return Ok(None);
        };
        let marked_from = self.first_marked(tx, keys).await?;
        let rows = sqlx::query("SELECT id, hash, writer_mac, detail FROM audit WHERE action = $1 ORDER BY id DESC")
            .bind(RETENTION_ACTION)
            .fetch_all(&mut **tx)
            .await?;
        for r in &rows {
            let id = get_i64(r, "id")?;
            let hash = get_opt_str(r, "hash")?.unwrap_or_default();
            if marked_from.is_some_and(|m| id >= m)
                && !mark_valid(&keys.mark, &hash, get_opt_str(r, "writer_mac")?.as_deref())
            {
                continue;
            }
            let Some(cut) = get_opt_str(r, "detail")?.and_then(|d| serde_json::from_str::<RetentionCut>(&d).ok())
            else {
                continue;
            };
            if cut.cut.is_retention_cut()
                && cut.cut.last_id < first_id
                && cut.cut.hash == resume
                && (keys.check)(&cut.cut).is_ok()
            {
                return Ok(Some(cut.cut.head()));
            }
        }
        Ok(None)
    }

    /// Whether record `id` may be missing from the log: a genuine retention cut
    /// ([`Store::genuine_cut`]) removed it.
    async fn cut_by_retention(&self, tx: &mut Tx, id: i64) -> Result<bool, StoreError> {
        Ok(self.genuine_cut(tx).await?.is_some_and(|c| id <= c.last_id))
    }

    /// Writes the chain head to the server log (`audit checkpoint ID:HASH`), unsigned:
    /// for a server without a CA key (see [`Store::append_checkpoint`] otherwise).
    pub async fn log_audit_checkpoint(&self) -> Result<(), StoreError> {
        if let (Some(h), _) = self.audit_head().await? {
            tracing::info!(checkpoint = %format!("{}:{}", h.last_id, h.hash), "audit checkpoint");
        }
        Ok(())
    }

    /// Reads the chain head row and remembers the newest head this process has seen
    /// (the server calls it every few seconds, and before every checkpoint and
    /// verification). A head that went back, or a remembered record whose hash changed,
    /// is logged as an error and the remembered head is kept: verification then names
    /// the cut or rewrite.
    ///
    /// # Errors
    /// Database errors.
    pub async fn note_audit_head(&self) -> Result<(), StoreError> {
        // A missing head row is named by verification and refuses every write.
        let Some((Some(now), _)) = self.audit_head_row().await? else {
            return Ok(());
        };
        // What this process knows: the head it saw or its own newest record.
        let known = self.seen_audit_head();
        if known.as_ref() == Some(&now) {
            return Ok(());
        }
        // A head row whose hash is not its record's was edited (trial28 MED-3): never
        // remembered as seen (appends refuse it, verification names it).
        let record = sqlx::query("SELECT hash FROM audit WHERE id = $1")
            .bind(now.last_id)
            .fetch_optional(&self.pool)
            .await?;
        if record
            .map(|r| get_opt_str(&r, "hash"))
            .transpose()?
            .flatten()
            .as_deref()
            != Some(now.hash.as_str())
        {
            return Ok(());
        }
        let keep = match &known {
            None => false,
            Some(k) if now.last_id > k.last_id => {
                // Moved on: the record seen before must still be there, unchanged.
                let row = sqlx::query("SELECT hash FROM audit WHERE id = $1")
                    .bind(k.last_id)
                    .fetch_optional(&self.pool)
                    .await?;
                let still = match row {
                    Some(r) => get_opt_str(&r, "hash")?.as_deref() == Some(k.hash.as_str()),
                    // Gone: only a genuine retention cut excuses it (trial14 HIGH-1b).
                    None => {
                        let mut tx = self.begin().await?;
                        let cut = self.cut_by_retention(&mut tx, k.last_id).await?;
                        tx.rollback().await?;
                        cut
                    }
                };
                if still {
                    // The head advances only over records whose marks were checked: one
                    // without a valid mark is remembered as foreign (and kept in the
                    // anchor file with the head), so no later start can vouch for it.
                    let mut tx = self.begin().await?;
                    let bad = self.unmarked(&mut tx, k.last_id, Some(now.last_id)).await?;
                    tx.rollback().await?;
                    if let (Some(first), Some(last)) = (bad.first(), bad.last()) {
                        tracing::error!(first, last, count = bad.len(),
                            "audit log: records appeared in the database without a valid mark of a server of the deployment (added directly); the next checkpoint signs them as foreign and verification says tampered");
                        if let Ok(mut g) = self.foreign.lock() {
                            g.extend(bad.iter().copied());
                        }
                    }
                }
                !still
            }
            Some(_) => true,
        };
        if keep {
            if let Some(k) = &known {
                tracing::error!(seen = %format!("{}:{}", k.last_id, k.hash), head = %format!("{}:{}", now.last_id, now.hash),
                    "audit log changed behind this server's back: a record it saw was removed or rewritten in the database");
            }
        } else if let Ok(mut g) = self.mark.seen.lock() {
            *g = Some(now);
        }
        Ok(())
    }

    /// Remembers `cp` as a head this server saw before (kept in its data directory by the
    /// previous run), unless a newer one is known: [`Store::note_audit_head`] then
    /// requires it in the log unchanged, and the next checkpoint names it.
    /// Kept apart from what this process sees while it runs: an append refuses to go
    /// over a cut of a record this process saw or wrote itself, but the start checkpoint
    /// must still be written over a cut made while no server ran — it signs this head as
    /// its anchor, so verification names the cut for good.
    pub fn note_seen_outside(&self, cp: Checkpoint) {
        if let Ok(mut g) = self.mark.outside.lock() {
            if g.as_ref().is_none_or(|s| s.last_id < cp.last_id) {
                *g = Some(cp);
            }
        }
    }

    /// The newest chain head this process saw (see [`Store::note_audit_head`]), the
    /// newest record it appended itself (trial35 LOW-4: its own records count at once,
    /// not at the next read of the head) or the head its previous run saw
    /// ([`Store::note_seen_outside`]), whichever is newest.
    pub fn seen_audit_head(&self) -> Option<Checkpoint> {
        [&self.mark.seen, &self.mark.own, &self.mark.outside]
            .into_iter()
            .filter_map(|m| m.lock().ok().and_then(|g| g.clone()))
            .max_by_key(|c| c.last_id)
    }

    /// The first record this process knows from outside the database — the newest chain
    /// head it saw ([`Store::note_audit_head`], read anew first) and the last checkpoint
    /// record it wrote ([`Store::issued_checkpoint`], also as loaded from its anchor
    /// file) — that the log no longer holds unchanged, with why; `None` when both are
    /// there as known (or a genuine retention cut removed them, see
    /// `Store::genuine_cut`). Nothing may be signed over a log shorter than what the
    /// server already saw (trial14 HIGH-3: an export trailer vouched for a tail cut the
    /// running server had seen); what refuses on it says which record is missing.
    ///
    /// # Errors
    /// Database errors.
    pub async fn known_missing(&self) -> Result<Option<(i64, String)>, StoreError> {
        self.note_audit_head().await?;
        let mut known: Vec<(Checkpoint, &str)> = Vec::new();
        if let Some(s) = self.seen_audit_head() {
            known.push((s, "the newest chain head this server saw"));
        }
        if let Some(i) = self.issued_checkpoint() {
            known.push((i, "the last checkpoint record this server wrote"));
        }
        known.sort_by_key(|(k, _)| k.last_id);
        let mut tx = self.begin().await?;
        let mut out = None;
        for (k, what) in known {
            let row = sqlx::query("SELECT hash FROM audit WHERE id = $1")
                .bind(k.last_id)
                .fetch_optional(&mut *tx)
                .await?;
            let why = match row {
                Some(r) => {
                    let hash = get_opt_str(&r, "hash")?;
                    (hash.as_deref() != Some(k.hash.as_str())).then(|| {
                        format!(
                            "record {} ({what}, hash {}) was rewritten in the database: it now has hash {}",
                            k.last_id,
                            k.hash,
                            hash.as_deref().unwrap_or("(none)")
                        )
                    })
                }
                None if self.cut_by_retention(&mut tx, k.last_id).await? => None,
                None => Some(format!(
                    "record {} ({what}, hash {}) was removed from the database (no signed retention cut covers it)",
                    k.last_id, k.hash
                )),
            };
            if let Some(why) = why {
                out = Some((k.last_id, why));
                break;
            }
        }
        tx.rollback().await?;
        if let Some((id, why)) = &out {
            tracing::error!(record = id, reason = %why, "audit log: a record this server knew is missing or changed; nothing is signed over it");
        }
        Ok(out)
    }

    /// Remembers `cp` as the last checkpoint record this server wrote (at start: the one
    /// kept in its data directory by the previous run), so verification requires it and
    /// the next checkpoint names it as its anchor.
    pub fn note_issued_checkpoint(&self, cp: Checkpoint) {
        if let Ok(mut g) = self.issued.lock() {
            *g = Some(cp);
        }
    }

    /// Appends a checkpoint record ([`CHECKPOINT_ACTION`], actor `system`) whose detail
    /// is the current head signed by `sign` (given the unsigned checkpoint with its
    /// version-2 fields: the chain start, the checkpoint record before it, the anchor —
    /// the newest record this process knew from outside the database — and `occasion`).
    /// Unless `force`, nothing is written when the log's head already is a checkpoint
    /// record (an idle log gets no new ones); an empty log gets a checkpoint of the
    /// genesis value. Returns the signed checkpoint and the checkpoint record's own id
    /// and hash, which this process then remembers and compares every later
    /// verification with.
    ///
    /// # Errors
    /// [`StoreError::Sign`] (the signer's error as source) when signing fails; database
    /// errors.
    pub async fn append_checkpoint(
        &self,
        occasion: &str,
        force: bool,
        sign: impl FnOnce(SignedCheckpoint) -> Result<SignedCheckpoint, crate::pki::PkiError>,
    ) -> Result<Option<(SignedCheckpoint, Checkpoint)>, StoreError> {
        self.note_audit_head().await?;
        self.checkpoint_with(occasion, force, Mode::Plain, sign).await
    }

    /// The start checkpoint (occasion `start`, always written) of a server whose data
    /// directory told it `facts`: registers this process in `audit_writers`, and signs
    /// (version 3) how the log moved while no server watched it — records after the last
    /// server's orderly stop (`stopped_writes`: tampering), records after the last
    /// checkpoint and the newest head the previous run kept, with no orderly stop behind
    /// them and no other live writer (`unproven`: the crash window), and a missing anchor
    /// (`no_anchor`, when the log already has checkpoints). Each is logged too. The head
    /// the database shows is not taken as known before signing.
    ///
    /// # Errors
    /// As [`Store::append_checkpoint`].
    pub async fn append_start_checkpoint(
        &self,
        facts: StartFacts,
        sign: impl FnOnce(SignedCheckpoint) -> Result<SignedCheckpoint, crate::pki::PkiError>,
    ) -> Result<Option<(SignedCheckpoint, Checkpoint)>, StoreError> {
        if let Some(o) = &facts.outside {
            self.note_seen_outside(o.clone());
        }
        let out = self.checkpoint_with("start", true, Mode::Start(facts), sign).await;
        self.note_audit_head().await?;
        out
    }

    /// The checkpoint of an orderly stop (occasion `shutdown`, always written): removes
    /// this process from `audit_writers` in the same transaction and signs `last_writer`
    /// — whether any other writer is still live ([`WRITER_LIVE_MS`]).
    ///
    /// # Errors
    /// As [`Store::append_checkpoint`].
    pub async fn append_shutdown_checkpoint(
        &self,
        sign: impl FnOnce(SignedCheckpoint) -> Result<SignedCheckpoint, crate::pki::PkiError>,
    ) -> Result<Option<(SignedCheckpoint, Checkpoint)>, StoreError> {
        self.note_audit_head().await?;
        self.checkpoint_with("shutdown", true, Mode::Shutdown, sign).await
    }

    /// This process's id in `audit_writers` (a random UUID per process).
    pub fn writer_id(&self) -> &str {
        &self.writer
    }

    /// Refreshes this process's `audit_writers` row (`seen_at` now; inserted when
    /// missing): a running server calls it every few seconds, so other writers know it
    /// is live.
    ///
    /// # Errors
    /// Database errors.
    pub async fn writer_heartbeat(&self) -> Result<(), StoreError> {
        let (guard, mut tx) = self.write_tx().await?;
        upsert_writer(&mut *tx, &self.writer, self.writer_proof()).await?;
        tx.commit().await?;
        drop(guard);
        self.observe_writers().await?;
        Ok(())
    }

    async fn checkpoint_with(
        &self,
        occasion: &str,
        force: bool,
        mode: Mode,
        sign: impl FnOnce(SignedCheckpoint) -> Result<SignedCheckpoint, crate::pki::PkiError>,
    ) -> Result<Option<(SignedCheckpoint, Checkpoint)>, StoreError> {
        // One watch budget for the whole checkpoint: a crashed server's row (a database
        // restored from a backup holds one) was watched the full `WRITER_SETTLE` here and
        // then again below, so such a start took twice as long (10 s) before it served.
        let settle_until = std::time::Instant::now() + WRITER_SETTLE;
        if !matches!(mode, Mode::Plain) {
            self.settle_writers(settle_until).await?;
        }
        let (mut guard, mut tx) = self.write_tx().await?;
        // A start without its anchor is flagged `no_anchor` unless another server is
        // live. Replicas started together (trial25 F5): the other's signed writer row can
        // appear after the watch above found none — it commits with that server's start
        // checkpoint — and was then never seen refreshing, so the start signed `no_anchor`
        // for good. Such a row is watched (at most `WRITER_SETTLE`) before signing.
        // The chain head's lock first (PostgreSQL: a row lock, waiting for another start
        // in flight to commit), so its writer row is seen here and not only later.
        if matches!(&mode, Mode::Start(f) if f.no_anchor.is_some()) {
            sqlx::query("UPDATE audit_chain SET chained = chained WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            if self.unrefreshed_writers(&mut tx).await? > 0 {
                tx.rollback().await?;
                drop(guard);
                self.settle_writers(settle_until).await?;
                (guard, tx) = self.write_tx().await?;
            }
        }
        let _guard = guard;
        let out = self.checkpoint_in_tx(&mut tx, occasion, force, mode, sign).await?;
        tx.commit().await?;
        if let Some((cp, own)) = &out {
            // What the checkpoint signed as foreign no longer needs remembering.
            if let (Some(f), Ok(mut g)) = (&cp.foreign, self.foreign.lock()) {
                g.retain(|id| *id > f.last);
            }
            self.note_issued_checkpoint(own.clone());
            if let Ok(mut g) = self.mark.seen.lock() {
                *g = Some(own.clone());
            }
        }
        Ok(out)
    }

    /// [`Store::append_checkpoint`] inside `tx` (which holds the writer lock).
    async fn checkpoint_in_tx(
        &self,
        tx: &mut Tx,
        occasion: &str,
        force: bool,
        mode: Mode,
        sign: impl FnOnce(SignedCheckpoint) -> Result<SignedCheckpoint, crate::pki::PkiError>,
    ) -> Result<Option<(SignedCheckpoint, Checkpoint)>, StoreError> {
        // Take the chain head's row lock first (as every append does).
        sqlx::query("UPDATE audit_chain SET chained = chained WHERE id = 1")
            .execute(&mut **tx)
            .await?;
        let row = sqlx::query(
            "SELECT c.head_id AS head_id, c.head_hash AS head_hash, c.started_after AS started_after, \
             a.action AS action \
             FROM audit_chain c LEFT JOIN audit a ON a.id = c.head_id WHERE c.id = 1",
        )
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::AuditTampered(HEAD_ROW_MISSING.into()))?;
        let head_id = super::get_opt_i64(&row, "head_id")?;
        if !force && (head_id.is_none() || get_opt_str(&row, "action")?.as_deref() == Some(CHECKPOINT_ACTION)) {
            return Ok(None);
        }
        let hash = get_str(&row, "head_hash")?;
        // The chain start as signed before (a database edit moving it is not signed again).
        let mut chain_start = get_i64(&row, "started_after")?;
        let last_cp = sqlx::query("SELECT detail FROM audit WHERE action = $1 ORDER BY id DESC LIMIT 1")
            .bind(CHECKPOINT_ACTION)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(signed) = last_cp
            .map(|r| get_opt_str(&r, "detail"))
            .transpose()?
            .flatten()
            .and_then(|d| serde_json::from_str::<SignedCheckpoint>(&d).ok())
            .and_then(|c| c.chain_start)
        {
            if signed < chain_start {
                tracing::error!(
                    signed,
                    database = chain_start,
                    "audit log: the chain start in the database was moved since the last checkpoint signed it"
                );
            }
            chain_start = chain_start.min(signed);
        }
        let prev = self.previous_link(tx).await?;
        // The anchor: the newest record this process knew from outside the database.
        let issued = self.issued_checkpoint();
        let seen = self.seen_audit_head();
        let known = match (issued, seen) {
            (Some(a), Some(b)) => Some(if b.last_id > a.last_id { b } else { a }),
            (a, b) => a.or(b),
        };
        // Always compared with the log (trial14 HIGH-1: the database's own note of a
        // retention cut dropped it); only a genuine retention cut excuses its absence.
        let anchor = match known {
            None => None,
            Some(k) => {
                let row = sqlx::query("SELECT hash, action FROM audit WHERE id = $1")
                    .bind(k.last_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                match row {
                    Some(r) if get_opt_str(&r, "hash")?.as_deref() == Some(k.hash.as_str()) => {
                        let action = get_str(&r, "action")?;
                        let link = action == CHECKPOINT_ACTION || action == RETENTION_ACTION;
                        // An unchanged ordinary record older than the previous checkpoint
                        // is vouched for by that checkpoint already.
                        (link || prev.as_ref().is_none_or(|p| k.last_id >= p.last_id)).then_some(k)
                    }
                    // Archived and deleted by retention (the cut is signed in the log).
                    None if self.cut_by_retention(tx, k.last_id).await? => None,
                    _ => {
                        tracing::error!(record = k.last_id, hash = %k.hash,
                            "audit log: a record this server knew was removed or rewritten in the database; the checkpoint names it");
                        Some(k)
                    }
                }
            }
        };
        let mut unsigned = SignedCheckpoint {
            last_id: head_id.unwrap_or(0),
            hash,
            chain_start: Some(chain_start),
            prev,
            anchor,
            occasion: Some(occasion.to_string()),
            ..Default::default()
        };
        match mode {
            Mode::Plain => {
                self.live_writers(tx, &mut unsigned).await?;
            }
            Mode::Start(facts) => self.start_facts(tx, head_id, facts, &mut unsigned).await?,
            Mode::Shutdown => {
                sqlx::query("DELETE FROM audit_writers WHERE writer = $1")
                    .bind(self.writer.clone())
                    .execute(&mut **tx)
                    .await?;
                let others = self.live_writers(tx, &mut unsigned).await?;
                unsigned.last_writer = Some(others == 0);
                if others > 0 {
                    tracing::info!(
                        others,
                        "audit log: other servers are still writing; this stop does not close the log"
                    );
                }
            }
        }
        // Authorship by proof (trial10): every record from the first marked checkpoint on
        // must carry a valid deployment mark, whoever wrote it and whether or not that
        // server still runs; the ones that do not — and those this process found before —
        // are signed as foreign. Checked over the whole marked log, not from the previous
        // link on (trial14 HIGH-2: a forged link hid the records before it), with the same
        // function verification and exports use.
        unsigned.foreign = self.foreign_in(tx, None).await?;
        if let Some(f) = &unsigned.foreign {
            tracing::error!(records = %f,
                "audit log: records in the database carry no valid mark of a server of the deployment (added directly); the checkpoint signs them as foreign and verification says tampered");
        }
        // From this checkpoint on every record is marked (this process marks what it appends).
        unsigned.marked = tx.marker().is_some().then_some(true);
        let cp = sign(unsigned).map_err(StoreError::Sign)?;
        let detail = serde_json::to_string(&cp).map_err(|source| StoreError::Encode {
            what: "checkpoint",
            source,
        })?;
        let id = append(
            tx,
            &NewAudit {
                actor: crate::SYSTEM_ACTOR,
                action: CHECKPOINT_ACTION,
                result: "ok",
                detail: Some(&detail),
                ..Default::default()
            },
        )
        .await?;
        let row = sqlx::query("SELECT head_hash FROM audit_chain WHERE id = 1")
            .fetch_one(&mut **tx)
            .await?;
        let own = Checkpoint {
            last_id: id,
            hash: get_str(&row, "head_hash")?,
        };
        Ok(Some((cp, own)))
    }

    /// The version-3 facts of a start checkpoint (see
    /// [`Store::append_start_checkpoint`]), inside `tx` before the checkpoint record is
    /// appended: `head_id` is the head the checkpoint signs.
    async fn start_facts(
        &self,
        tx: &mut Tx,
        head_id: Option<i64>,
        facts: StartFacts,
        cp: &mut SignedCheckpoint,
    ) -> Result<(), StoreError> {
        if let Some(p) = facts.previous_writer.filter(|p| *p != self.writer) {
            sqlx::query("DELETE FROM audit_writers WHERE writer = $1")
                .bind(p)
                .execute(&mut **tx)
                .await?;
        }
        upsert_writer(&mut **tx, &self.writer, self.writer_proof()).await?;
        let others = self.live_writers(tx, cp).await?;
        let last = sqlx::query("SELECT id, detail FROM audit WHERE action = $1 ORDER BY id DESC LIMIT 1")
            .bind(CHECKPOINT_ACTION)
            .fetch_optional(&mut **tx)
            .await?;
        let Some(last) = last else {
            // The first start: nothing was vouched for before, nothing to compare.
            return Ok(());
        };
        let last_id = get_i64(&last, "id")?;
        let last_cp = get_opt_str(&last, "detail")?.and_then(|d| serde_json::from_str::<SignedCheckpoint>(&d).ok());
        // With other servers live (a replica joining with a new data directory) the
        // log was watched; alone, a start without the anchor cannot compare.
        if let Some(why) = facts.no_anchor.filter(|_| others == 0) {
            tracing::warn!(reason = %why,
                "audit log: no anchor found; this start cannot compare the log with what the server knew before (said in the start checkpoint)");
            cp.no_anchor = Some(why);
        }
        let Some(head) = head_id.filter(|h| *h > last_id) else {
            return Ok(());
        };
        // A stop that closed the log (no other writer was live): whatever follows it was
        // written while no server ran. A checkpoint's fields are trusted here only for
        // the decision: verification checks its signature anyway.
        let closed = last_cp
            .as_ref()
            .is_some_and(|c| c.occasion.as_deref() == Some("shutdown") && c.last_writer == Some(true));
        if closed {
            // After a stop signed `marked`, a record with a valid mark was written by a
            // server of the deployment (a replica the stop did not count as live: trial18
            // HIGH-1); only the unmarked ones appeared while no server ran.
            let marked_stop = last_cp.as_ref().is_some_and(|c| c.marked == Some(true));
            let r = if marked_stop {
                let ids = self.unmarked(tx, last_id, None).await?;
                match (ids.first(), ids.last()) {
                    (Some(&first), Some(&last)) => Some(RecordRange {
                        first,
                        last,
                        count: ids.len() as u64,
                    }),
                    _ => None,
                }
            } else {
                range_after(tx, last_id).await?
            };
            if let Some(r) = &r {
                tracing::error!(records = %r, shutdown_checkpoint = last_id,
                    "audit log: records appeared after the last server's orderly stop, while no server ran; the start checkpoint says so and verification names them");
            }
            cp.stopped_writes = r;
            return Ok(());
        }
        if others > 0 {
            // Other servers are writing: what follows the last checkpoint is theirs, live.
            return Ok(());
        }
        // A crash (or an older server's stop): what the previous run saw is proven by the
        // anchor file (when the record is still there unchanged), the rest is not.
        let mut proven = last_id;
        if let Some(o) = facts.outside.filter(|o| o.last_id > last_id && o.last_id <= head) {
            let row = sqlx::query("SELECT hash FROM audit WHERE id = $1")
                .bind(o.last_id)
                .fetch_optional(&mut **tx)
                .await?;
            if let Some(r) = row {
                if get_opt_str(&r, "hash")?.as_deref() == Some(o.hash.as_str()) {
                    proven = o.last_id;
                }
            }
        }
        // Records from the first marked checkpoint on are judged by their marks (a
        // valid one proves a server of the deployment wrote it, crash or not; the
        // others are signed as foreign): only older, unmarked records can be unproven.
        let upto = match self.keys.get() {
            Some(k) => self.first_marked(tx, k).await?.map_or(head, |f| head.min(f - 1)),
            None => head,
        };
        if upto > proven {
            let r = range_between(tx, proven, upto).await?;
            if let Some(r) = &r {
                tracing::warn!(records = %r, after = proven,
                    "audit log: records after the last checkpoint and the last head the server kept, with no orderly stop behind them (a crash): not vouched for (said in the start checkpoint)");
            }
            cp.unproven = r;
        }
        Ok(())
    }

    /// Gives the store the CA key's signer and checker (a server with a CA key does at
    /// start; the first given stays). Without them writer rows are unsigned and every
    /// live-looking row counts, as before issue 17's trial7.
    pub fn set_audit_keys(&self, keys: AuditKeys) {
        let _ = self.mark.mark.set(Marker {
            key: keys.mark.clone(),
            writer: self.writer.clone(),
        });
        if self.keys.set(keys).is_err() {
            tracing::debug!("audit keys were given already; the first stay");
        }
    }

    /// Now (Unix ms) and this process's writer row signed for it: a [`SignedCheckpoint`]
    /// of occasion [`WRITER_PROOF_OCCASION`] (JSON), `None` without keys or when signing
    /// fails (logged; the row then counts for nothing with other servers).
    fn writer_proof(&self) -> (i64, Option<String>) {
        let now = now_ms();
        let proof = self.keys.get().and_then(|k| {
            let cp = SignedCheckpoint {
                last_id: now,
                hash: self.writer.clone(),
                occasion: Some(WRITER_PROOF_OCCASION.to_string()),
                ..Default::default()
            };
            match (k.sign)(cp).map(|c| serde_json::to_string(&c)) {
                Ok(Ok(text)) => Some(text),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot encode this server's writer proof");
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot sign this server's writer proof");
                    None
                }
            }
        });
        (now, proof)
    }

    /// How many writers other than this process are live: their `audit_writers` row was
    /// refreshed within [`WRITER_LIVE_MS`], is not stamped more than [`WRITER_SKEW_MS`]
    /// in the future and (with keys, see [`Store::set_audit_keys`]) carries a proof
    /// signed by the CA key for exactly that writer and time. Rows failing that are
    /// logged as errors, counted for nothing and named in `cp.ignored_writers`.
    async fn live_writers(&self, tx: &mut Tx, cp: &mut SignedCheckpoint) -> Result<i64, StoreError> {
        let now = now_ms();
        let rows = sqlx::query("SELECT writer, seen_at, proof FROM audit_writers WHERE writer <> $1 AND seen_at > $2")
            .bind(self.writer.clone())
            .bind(now - WRITER_LIVE_MS)
            .fetch_all(&mut **tx)
            .await?;
        let mut live = 0;
        let mut ignored = Vec::new();
        for r in &rows {
            let writer = get_str(r, "writer")?;
            let seen = get_i64(r, "seen_at")?;
            let proof = get_opt_str(r, "proof")?;
            let why = if let Some(k) = self.keys.get() {
                let valid = proof
                    .as_deref()
                    .and_then(|p| serde_json::from_str::<SignedCheckpoint>(p).ok())
                    .filter(|p| {
                        p.occasion.as_deref() == Some(WRITER_PROOF_OCCASION) && p.hash == writer && p.last_id == seen
                    })
                    .is_some_and(|p| (k.check)(&p).is_ok());
                if valid && seen > now + WRITER_SKEW_MS {
                    // Signed by the CA key for exactly this time: a server of the
                    // deployment whose clock is ahead of this one's, not a fake (trial18
                    // HIGH-1: taking it for one closed the log under a live replica).
                    tracing::warn!(writer = %writer, ahead_ms = seen - now,
                        "audit log: another server's clock is ahead of this one's (its signed writer row is stamped in the future); counted as a live writer — keep the servers' clocks in sync (NTP)");
                }
                (!valid).then(|| "no valid signature by the CA key".to_string())
            } else if seen > now + WRITER_SKEW_MS {
                Some(format!("seen at {} is in the future", to_rfc3339(seen)))
            } else {
                None
            };
            match why {
                None if self.seen_refreshing(&writer, seen) => live += 1,
                None => {
                    tracing::info!(writer = %writer,
                        "audit log: a signed writer row was not seen refreshing (a stopped or crashed server); not counted as live");
                }
                Some(why) => {
                    tracing::error!(writer = %writer, reason = %why,
                        "audit log: a row in the writer table claims a live server but is not signed by one; ignored (the next checkpoint names it)");
                    let name: String = writer.chars().take(64).collect();
                    ignored.push(format!("{name}: {why}"));
                }
            }
        }
        if !ignored.is_empty() {
            cp.ignored_writers = Some(ignored.join("; "));
        }
        Ok(live)
    }

    /// Notes `writer`'s row at `seen` and says whether it was seen refreshing (its
    /// `seen_at` moved while this process watched).
    fn seen_refreshing(&self, writer: &str, seen: i64) -> bool {
        let Ok(mut g) = self.observed.lock() else {
            return false;
        };
        let e = g.entry(writer.to_string()).or_insert((seen, false));
        if seen > e.0 {
            e.1 = true;
        }
        e.1
    }

    /// Watches the other writers' validly signed rows (see [`Store::live_writers`]),
    /// read-only: returns how many look live but were not yet seen refreshing.
    async fn observe_writers(&self) -> Result<usize, StoreError> {
        let mut tx = self.begin().await?;
        let n = self.unrefreshed_writers(&mut tx).await?;
        tx.rollback().await?;
        Ok(n)
    }

    /// [`Store::observe_writers`] inside `tx` (nothing written).
    async fn unrefreshed_writers(&self, tx: &mut Tx) -> Result<usize, StoreError> {
        let mut scratch = SignedCheckpoint::default();
        let now = now_ms();
        let rows = sqlx::query("SELECT writer FROM audit_writers WHERE writer <> $1 AND seen_at > $2")
            .bind(self.writer.clone())
            .bind(now - WRITER_LIVE_MS)
            .fetch_all(&mut **tx)
            .await?;
        let live = self.live_writers(tx, &mut scratch).await?;
        let valid = rows.len() - scratch.ignored_writers.map_or(0, |w| w.split("; ").count());
        Ok(valid.saturating_sub(usize::try_from(live).unwrap_or(0)))
    }

    /// Before a start or stop decides whether other servers are live: while a validly
    /// signed row of another writer was not yet seen refreshing, watches (every 500 ms,
    /// until `until`, which callers set [`WRITER_SETTLE`] ahead) — a running server
    /// refreshes every two seconds, a crashed one never.
    async fn settle_writers(&self, until: std::time::Instant) -> Result<(), StoreError> {
        while self.observe_writers().await? > 0 && std::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Ok(())
    }

    /// The id of the first checkpoint record signed `marked` (version 5, its signature
    /// checked with the CA key): every record from it on must carry a valid deployment
    /// mark ([`Marker`]); records before it were written before marks existed. Cached
    /// once found (it cannot move later: removing it breaks the chain).
    async fn first_marked(&self, tx: &mut Tx, keys: &AuditKeys) -> Result<Option<i64>, StoreError> {
        if let Some(id) = self.marked_from.lock().ok().and_then(|g| *g) {
            return Ok(Some(id));
        }
        let mut after = i64::MIN;
        loop {
            let rows = sqlx::query(
                "SELECT id, detail FROM audit WHERE action = $1 AND id > $2 AND detail LIKE '%\"marked\":true%' \
                 ORDER BY id LIMIT 200",
            )
            .bind(CHECKPOINT_ACTION)
            .bind(after)
            .fetch_all(&mut **tx)
            .await?;
            if rows.is_empty() {
                return Ok(None);
            }
            for r in &rows {
                let id = get_i64(r, "id")?;
                after = id;
                let signed = get_opt_str(r, "detail")?
                    .and_then(|d| serde_json::from_str::<SignedCheckpoint>(&d).ok())
                    .is_some_and(|c| c.marked == Some(true) && c.last_id < id && (keys.check)(&c).is_ok());
                if signed {
                    if let Ok(mut g) = self.marked_from.lock() {
                        *g = Some(id);
                    }
                    return Ok(Some(id));
                }
            }
        }
    }

    /// The details of the records of `actions` whose detail matches `pattern` (SQL
    /// `LIKE`) that a server of the deployment wrote, oldest first: id above 0, the hash
    /// recomputing from the record and its `prev_hash`, and — from the first checkpoint
    /// signed `marked` on (see `Store::first_marked`) — a valid deployment mark; records
    /// from before the chain (no hashes, id up to its start) as they are. What an
    /// API token's identity is bound from (trial41 HIGH-A: any row was taken, even an
    /// unchained, unmarked one with id −7 deleted right afterwards). Empty without keys.
    ///
    /// # Errors
    /// Database errors.
    pub(crate) async fn genuine_details(&self, actions: &[&str], pattern: &str) -> Result<Vec<String>, StoreError> {
        let Some(keys) = self.keys.get() else {
            return Ok(Vec::new());
        };
        let mut tx = self.begin().await?;
        let marked_from = self.first_marked(&mut tx, keys).await?;
        let sql = format!(
            "SELECT id, at, actor, action, host_id, comment, result, detail, event_id, rule_name, actor_token_id, \
             prev_hash, hash, writer_mac FROM audit WHERE id > 0 AND action IN ({}) AND detail LIKE ${} ORDER BY id",
            placeholders(1, actions.len()),
            actions.len() + 1
        );
        let mut q = sqlx::query(&sql);
        for a in actions {
            q = q.bind(a.to_string());
        }
        let rows = q.bind(pattern.to_string()).fetch_all(&mut *tx).await?;
        tx.rollback().await?;
        // Records written before the chain existed (ids up to its start) carry no hashes:
        // taken as they are (a log that old has nothing better to offer).
        let started_after = self.audit_head_row().await?.map_or(0, |(_, s)| s);
        let mut out = Vec::new();
        for r in &rows {
            let rec = record(r)?;
            if rec.hash.is_none() && rec.id <= started_after {
                out.extend(rec.detail);
                continue;
            }
            let (Some(prev), Some(hash), Some(detail)) = (rec.prev_hash.clone(), rec.hash.clone(), rec.detail.clone())
            else {
                continue;
            };
            let plain = AuditRecord {
                prev_hash: None,
                hash: None,
                ..rec.clone()
            };
            if chain_hash(&prev, &plain) != hash {
                continue;
            }
            if marked_from.is_some_and(|m| rec.id >= m)
                && !mark_valid(&keys.mark, &hash, get_opt_str(r, "writer_mac")?.as_deref())
            {
                continue;
            }
            out.push(detail);
        }
        Ok(out)
    }

    /// The records with an id above `after` (up to `upto`) that carry no valid
    /// deployment mark ([`Marker`]) though they come after the first checkpoint signed
    /// `marked` (see [`Store::first_marked`]): written by no server of the deployment,
    /// whoever was running — added to the database directly. Read page by page; empty
    /// without keys or before marks exist.
    async fn unmarked(&self, tx: &mut Tx, after: i64, upto: Option<i64>) -> Result<Vec<i64>, StoreError> {
        let Some(keys) = self.keys.get() else {
            return Ok(Vec::new());
        };
        let Some(from) = self.first_marked(tx, keys).await? else {
            return Ok(Vec::new());
        };
        let mut after = after.max(from - 1);
        let mut out = Vec::new();
        loop {
            let rows =
                sqlx::query("SELECT id, hash, writer_mac FROM audit WHERE id > $1 AND id <= $2 ORDER BY id LIMIT 2000")
                    .bind(after)
                    .bind(upto.unwrap_or(i64::MAX))
                    .fetch_all(&mut **tx)
                    .await?;
            if rows.is_empty() {
                return Ok(out);
            }
            for r in &rows {
                let id = get_i64(r, "id")?;
                after = id;
                let hash = get_opt_str(r, "hash")?.unwrap_or_default();
                if !mark_valid(&keys.mark, &hash, get_opt_str(r, "writer_mac")?.as_deref()) {
                    out.push(id);
                }
            }
        }
    }

    /// Every record up to `upto` (all without) that no server of the deployment wrote:
    /// those from the first marked checkpoint on without a valid mark (see
    /// [`Store::unmarked`]) and those this process found before and has not yet seen
    /// signed ([`Store::foreign_ids`]). The one function behind the checkpoint writer's
    /// `foreign`, verification and an export's trailer, so they never disagree (trial14
    /// HIGH-2: the writer and verification started after the newest checkpoint or
    /// retention record, and a forged one hid the records before it).
    ///
    /// Marks are read once: the records up to the last one checked (id and hash) are
    /// remembered with the unmarked ones among them, and only what follows is read while
    /// that record still carries the hash it had — a rewrite of any record up to it that
    /// keeps the chain consistent changes it (and a rewrite that does not breaks the chain,
    /// which verification names). Records retention removed are dropped from the result.
    async fn foreign_in(&self, tx: &mut Tx, upto: Option<i64>) -> Result<Option<RecordRange>, StoreError> {
        let mut ids = self.unmarked_through(tx, upto).await?;
        if let Ok(g) = self.foreign.lock() {
            ids.extend(g.iter().filter(|id| upto.is_none_or(|u| **id <= u)));
        }
        Ok(match (ids.first(), ids.last()) {
            (Some(&first), Some(&last)) => Some(RecordRange {
                first,
                last,
                count: ids.len() as u64,
            }),
            _ => None,
        })
    }

    /// The records up to `upto` (all without) from the first marked checkpoint on that
    /// carry no valid mark (see [`Store::foreign_in`] for what is remembered between calls).
    async fn unmarked_through(
        &self,
        tx: &mut Tx,
        upto: Option<i64>,
    ) -> Result<std::collections::BTreeSet<i64>, StoreError> {
        let Some(keys) = self.keys.get() else {
            return Ok(Default::default());
        };
        let Some(from) = self.first_marked(tx, keys).await? else {
            return Ok(Default::default());
        };
        let cached = self.mark_scan.lock().ok().and_then(|g| g.clone());
        let mut start = None;
        if let Some((through, found)) = cached {
            let row = sqlx::query("SELECT hash FROM audit WHERE id = $1")
                .bind(through.last_id)
                .fetch_optional(&mut **tx)
                .await?;
            let same = match row {
                Some(r) => get_opt_str(&r, "hash")?.as_deref() == Some(through.hash.as_str()),
                None => false,
            };
            if same {
                start = Some((through, found));
            }
        }
        let (mut after, mut found, mut last) = match start {
            Some((through, found)) => (through.last_id, found, Some(through)),
            None => (from - 1, Default::default(), None),
        };
        let limit = upto.unwrap_or(i64::MAX);
        if limit > after {
            loop {
                let rows = sqlx::query(
                    "SELECT id, hash, writer_mac FROM audit WHERE id > $1 AND id <= $2 ORDER BY id LIMIT 2000",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&mut **tx)
                .await?;
                if rows.is_empty() {
                    break;
                }
                for r in &rows {
                    let id = get_i64(r, "id")?;
                    after = id;
                    let hash = get_opt_str(r, "hash")?.unwrap_or_default();
                    if !mark_valid(&keys.mark, &hash, get_opt_str(r, "writer_mac")?.as_deref()) {
                        found.insert(id);
                    }
                    last = Some(Checkpoint { last_id: id, hash });
                }
            }
        }
        // Records retention removed since (a genuine cut deletes from the start).
        let first = sqlx::query("SELECT MIN(id) AS n FROM audit")
            .fetch_one(&mut **tx)
            .await?;
        if let Some(first) = super::get_opt_i64(&first, "n")? {
            found.retain(|id| *id >= first);
        }
        if let (Some(last), Ok(mut g)) = (last, self.mark_scan.lock()) {
            if g.as_ref().is_none_or(|(t, _)| t.last_id <= last.last_id) {
                *g = Some((last, found.clone()));
            }
        }
        Ok(match upto {
            Some(u) => found.into_iter().filter(|id| *id <= u).collect(),
            None => found,
        })
    }

    /// The checkpoint chain's previous link for the next checkpoint record: the newest
    /// checkpoint or retention record — from the first marked checkpoint on, only one
    /// carrying a valid deployment mark (trial14 HIGH-2: a forged retention record was
    /// taken for one). Its id and hash.
    async fn previous_link(&self, tx: &mut Tx) -> Result<Option<Checkpoint>, StoreError> {
        let marks = match self.keys.get() {
            Some(k) => self.first_marked(tx, k).await?.map(|f| (k, f)),
            None => None,
        };
        let mut before = i64::MAX;
        loop {
            let rows = sqlx::query(
                "SELECT id, hash, writer_mac FROM audit WHERE (action = $1 OR action = $2) AND id < $3 \
                 ORDER BY id DESC LIMIT 50",
            )
            .bind(CHECKPOINT_ACTION)
            .bind(RETENTION_ACTION)
            .bind(before)
            .fetch_all(&mut **tx)
            .await?;
            if rows.is_empty() {
                return Ok(None);
            }
            for r in &rows {
                let id = get_i64(r, "id")?;
                before = id;
                let hash = get_opt_str(r, "hash")?.unwrap_or_default();
                let genuine = match marks {
                    Some((k, from)) if id >= from => {
                        mark_valid(&k.mark, &hash, get_opt_str(r, "writer_mac")?.as_deref())
                    }
                    _ => true,
                };
                if genuine {
                    return Ok(Some(Checkpoint { last_id: id, hash }));
                }
            }
        }
    }

    /// Records found without a valid mark and not yet signed by a checkpoint of this
    /// process (kept in the anchor file, see `service::audit::AnchorFile`).
    pub fn foreign_ids(&self) -> Vec<i64> {
        self.foreign
            .lock()
            .map(|g| g.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Remembers records a previous run found without a valid mark (its anchor file):
    /// the next checkpoint signs them as `foreign`.
    pub fn note_foreign_outside(&self, ids: &[i64]) {
        if let Ok(mut g) = self.foreign.lock() {
            g.extend(ids.iter().copied());
        }
    }

    /// The records in the log that no server wrote, found now (see
    /// [`Store::foreign_in`]), read-only: verification names the first.
    async fn foreign_now(&self) -> Result<Option<RecordRange>, StoreError> {
        let mut tx = self.begin().await?;
        let out = self.foreign_in(&mut tx, None).await?;
        tx.rollback().await?;
        if let Some(f) = &out {
            tracing::error!(records = %f,
                "audit log: records in the database carry no valid mark of a server of the deployment: added directly; verification says tampered");
        }
        Ok(out)
    }

    /// The records up to `upto` that no server wrote (every record from the first marked
    /// checkpoint on, see `Store::unmarked`, and those this process remembers): what an
    /// export's signed trailer must carry as `foreign` (trial10 H-C).
    ///
    /// # Errors
    /// Database errors.
    pub async fn foreign_through(&self, upto: i64) -> Result<Option<RecordRange>, StoreError> {
        let mut tx = self.begin().await?;
        let out = self.foreign_in(&mut tx, Some(upto)).await?;
        tx.rollback().await?;
        Ok(out)
    }

    /// The last checkpoint record this process wrote (its id and hash).
    pub fn issued_checkpoint(&self) -> Option<Checkpoint> {
        self.issued.lock().ok().and_then(|g| g.clone())
    }

    /// Checks the whole log, oldest first, page by page, against the chain, the
    /// database's chain head, the last checkpoint this process wrote (or loaded at
    /// start), the newest head it saw, `extra` checkpoints (source label, head) and,
    /// with `signature`, the signatures of the signed checkpoints in the log. Where the
    /// chain starts is taken from the last signed checkpoint when it says earlier than
    /// the database; a chain cut by retention must be vouched for by the signed
    /// retention record in the log (the database's own note of the cut is not trusted).
    /// Logs the head it found as a checkpoint.
    pub async fn audit_verify(
        &self,
        extra: Vec<(String, Checkpoint)>,
        signature: Option<SignatureCheck>,
    ) -> Result<ChainReport, StoreError> {
        self.note_audit_head().await?;
        let head_row = self.audit_head_row().await?;
        let head_row_missing = head_row.is_none();
        let (head, mut started_after) = head_row.unwrap_or((None, 0));
        let last_cp = sqlx::query("SELECT detail FROM audit WHERE action = $1 ORDER BY id DESC LIMIT 1")
            .bind(CHECKPOINT_ACTION)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(d) = last_cp.map(|r| get_opt_str(&r, "detail")).transpose()?.flatten() {
            if let Some(s) = serde_json::from_str::<SignedCheckpoint>(&d)
                .ok()
                .and_then(|c| c.chain_start)
            {
                started_after = started_after.min(s);
            }
        }
        let mut checkpoints = extra;
        if let Some(h) = head {
            checkpoints.push((CHECKPOINT_SOURCE.to_string(), h));
        }
        if let Some(own) = self.issued_checkpoint() {
            checkpoints.push((ISSUED_SOURCE.to_string(), own));
        }
        if let Some(seen) = self.seen_audit_head() {
            checkpoints.push((SEEN_SOURCE.to_string(), seen));
        }
        let mut v = Verifier::new(checkpoints).chain_starts_after(started_after);
        if let Some(s) = signature {
            v = v.with_signatures(s);
        }
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
        let mut report = v.finish();
        // The mark check names a record written by no server when the chain shows no
        // problem, or only a later one (a forged link after it, trial14 HIGH-2): as the
        // export's signed trailer does, so server and export name the same record.
        let earlier = |f: &RecordRange, p: &Option<cordon_proto::audit_chain::ChainProblem>| {
            p.as_ref().is_none_or(|p| p.id.is_some_and(|id| f.first < id))
        };
        if report.problem.is_none() || report.problem.as_ref().is_some_and(|p| p.id.is_some()) {
            if let Some(f) = self.foreign_now().await?.filter(|f| earlier(f, &report.problem)) {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM audit WHERE id <= $1")
                    .bind(f.first)
                    .fetch_one(&self.pool)
                    .await?;
                report.ok = false;
                report.problem = Some(cordon_proto::audit_chain::ChainProblem {
                    id: Some(f.first),
                    subject: None,
                    position: u64::try_from(get_i64(&row, "n")?).unwrap_or(0),
                    reason: format!(
                        "was written by no server: {f} carries no valid mark of a server of the deployment \
                         (every server marks what it appends with a key derived from the CA key, over the record's \
                         hash): added to the database directly, or rewritten there (the next checkpoint signs it)"
                    ),
                });
            }
        }
        // The chain head row deleted (trial28 MED-4): the records may still chain, but
        // nothing can be appended and the head checkpoint is gone.
        if head_row_missing {
            let upto = match &report.head {
                Some(h) => format!("the records up to {} chain as they should", h.last_id),
                None => "no chained record was checked".to_string(),
            };
            let what = format!(
                "misses its audit chain head row (table audit_chain, id 1): it was deleted in the database \
                 (no server deletes it), so the log's head is not compared with it and nothing can be appended \
                 until it is restored ({upto}; see docs/server.md, \"Recovering the audit chain head\")"
            );
            report.ok = false;
            match &mut report.problem {
                Some(p) => p.reason.push_str(&format!(" (also: the database {what})")),
                None => {
                    report.problem = Some(cordon_proto::audit_chain::ChainProblem {
                        id: None,
                        subject: Some("the database".into()),
                        position: 0,
                        reason: what,
                    })
                }
            }
        }
        // The head row set back to an earlier record, its id and hash consistent (trial33
        // MED-A): the head checkpoint matches the record it names, so only the records
        // after it show it. Read in one statement after the walk, so a record appended
        // meanwhile (the head moves with it) is never taken for one.
        if !head_row_missing {
            if let Some(what) = self.head_set_back().await? {
                report.ok = false;
                match &mut report.problem {
                    Some(p) => p.reason.push_str(&format!(" (also: the database {what})")),
                    None => {
                        report.problem = Some(cordon_proto::audit_chain::ChainProblem {
                            id: None,
                            subject: Some("the database".into()),
                            position: 0,
                            reason: what,
                        })
                    }
                }
            }
        }
        // Code in the database that acts behind the server's statements (trial18 HIGH-2):
        // a trigger can delete chosen records inside the server's own transaction, leaving
        // a chain that checks intact. Its presence is the finding.
        let found = {
            let mut conn = self.pool.acquire().await?;
            foreign_objects(&mut conn).await?
        };
        if !found.is_empty() {
            let what = format!(
                "holds {}, which Cordon did not create: database code that runs inside the server's own \
                 writes can change or delete audit records before they are committed, leaving a chain that \
                 checks intact; the server refuses to write while it exists (remove it, find who created it, \
                 and compare the log with a checkpoint copy kept outside the database)",
                found.join(", ")
            );
            report.ok = false;
            match &mut report.problem {
                Some(p) => p.reason.push_str(&format!(" (also: the database {what})")),
                None => {
                    report.problem = Some(cordon_proto::audit_chain::ChainProblem {
                        id: None,
                        subject: Some("the database".into()),
                        position: 0,
                        reason: what,
                    })
                }
            }
        }
        if let Some(h) = &report.head {
            tracing::info!(checkpoint = %format!("{}:{}", h.last_id, h.hash), ok = report.ok, "audit checkpoint");
        }
        // Remembered for listings: a log found tampered must not read as genuine.
        if let Ok(mut g) = self.alert.lock() {
            *g = report.problem.as_ref().map(|p| cordon_proto::ChainAlert {
                record: p.id,
                reason: p.reason.clone(),
                checked_at: Timestamp::from_unix_ms_clamped(now_ms()),
            });
        }
        if let Some(p) = &report.problem {
            tracing::error!(record = ?p.id, reason = %p.reason, "audit chain TAMPERED");
        }
        // A checkpoint the caller gave that the log does not match is the caller's result
        // (trial33 MED-D): not kept as this server's verdict above, not an ERROR.
        if let Some(g) = &report.given_mismatch {
            tracing::warn!(record = ?g.id, reason = %g.reason, "audit verification: the log does not match a checkpoint given by the caller");
        }
        Ok(report)
    }

    /// What is wrong with the chain head row when it names a record before the log's
    /// last chained record, or no record while chained records exist: it was set back in
    /// the database (no server moves it backwards), and the next append would fork the
    /// chain (see `head_to_extend`, which refuses it). `None` when it names the last one.
    ///
    /// # Errors
    /// Database errors.
    async fn head_set_back(&self) -> Result<Option<String>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT c.head_id AS head_id, (SELECT MAX(id) FROM audit WHERE hash IS NOT NULL) AS last_chained \
             FROM audit_chain c WHERE c.id = 1",
        )
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let last = super::get_opt_i64(&row, "last_chained")?;
        Ok(match (super::get_opt_i64(&row, "head_id")?, last) {
            (Some(head), Some(last)) if head < last => Some(format!(
                "has its audit chain head row (table audit_chain, id 1) naming record {head}, but the log holds \
                 chained records up to {last}: the head row was set back in the database (no server moves it \
                 backwards), so nothing can be appended until it names record {last} again (see docs/server.md, \
                 \"Recovering the audit chain head\")"
            )),
            (None, Some(last)) => Some(format!(
                "has its audit chain head row (table audit_chain, id 1) naming no record, but the log holds \
                 chained records up to {last}: the head row was set back in the database, so nothing can be \
                 appended until it names record {last} again (see docs/server.md, \"Recovering the audit chain \
                 head\")"
            )),
            _ => None,
        })
    }

    /// What this process's last verification of the audit chain
    /// ([`Store::audit_verify`]) found wrong; `None` when it found nothing or none ran.
    pub fn chain_alert(&self) -> Option<cordon_proto::ChainAlert> {
        self.alert.lock().ok().and_then(|g| g.clone())
    }

    /// Retention step 1: the cut — the last record of the log's leading run of records
    /// written before `before` (Unix ms), up to record `upto` (the head a verification
    /// just found intact) — as (id, hash); `None` when the log's first record is not that
    /// old. Chosen by the log's order, not by the newest old-looking time (trial14 MED-3:
    /// one record stamped in the past at the tail made the server cut everything before
    /// it): a record written at or after `before` ends the run, whatever follows it.
    ///
    /// # Errors
    /// Database errors.
    pub async fn retention_cut(&self, before: i64, upto: i64) -> Result<Option<(i64, Option<String>)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, hash FROM audit WHERE id <= $2 \
             AND id < COALESCE((SELECT MIN(id) FROM audit WHERE at >= $1), $2 + 1) \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(before)
        .bind(upto)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((get_i64(&r, "id")?, get_opt_str(&r, "hash")?)))
            .transpose()
    }

    /// Appends an `audit_retention_refused` record (actor `system`, result `refused`,
    /// comment `why`) — once per reason while this process runs (the retention task
    /// retries every hour) — so the log and its listings say that retention did not run
    /// and why (trial14 MED-3: it must never run over a log that does not verify).
    /// Returns whether a record was written.
    ///
    /// # Errors
    /// Database errors.
    pub async fn note_retention_refused(&self, why: &str) -> Result<bool, StoreError> {
        if let Ok(mut g) = self.retention_refused.lock() {
            if g.as_deref() == Some(why) {
                return Ok(false);
            }
            *g = Some(why.to_string());
        }
        let (_guard, mut tx) = self.write_tx().await?;
        append(
            &mut tx,
            &NewAudit {
                actor: crate::SYSTEM_ACTOR,
                action: RETENTION_REFUSED_ACTION,
                result: "refused",
                comment: Some(why),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Retention step 2: every record up to id `cut` (inclusive), oldest first, as JSON
    /// lines into `out`, page by page. Returns how many.
    ///
    /// # Errors
    /// Database errors; [`StoreError::Io`] on a write error.
    pub async fn archive_audit(&self, cut: i64, out: &mut impl std::io::Write) -> Result<u64, StoreError> {
        let filter = AuditFilter::default();
        let mut after = None;
        let mut n = 0u64;
        loop {
            let (records, next) = self
                .audit_page(&filter, after, AuditOrder::Oldest, super::hosts::MAX_PAGE)
                .await?;
            for r in records.iter().take_while(|r| r.id <= cut) {
                let line = serde_json::to_string(r).map_err(|source| StoreError::Encode {
                    what: "audit record",
                    source,
                })?;
                writeln!(out, "{line}").map_err(|source| StoreError::Io {
                    what: "write the archive".into(),
                    source,
                })?;
                n += 1;
            }
            match next {
                Some(id) if id < cut => after = Some(id),
                _ => break,
            }
        }
        Ok(n)
    }

    /// Retention step 3, after the archive is safely written: deletes every record up to
    /// `cut` in one transaction, notes where the chain was cut in `audit_chain` (for
    /// people reading the database only: nothing trusts that note, see
    /// `Store::genuine_cut`) and appends a [`RETENTION_ACTION`] record (actor `system`) carrying `detail`
    /// (the signed cut, count and archive), then a checkpoint record (occasion
    /// `retention`, signed by `sign`) of that retention record. Returns how many records
    /// were deleted and the signed checkpoint; `None` — nothing deleted, nothing
    /// appended — when the log no longer holds exactly the `detail.records` records up to
    /// `cut` that were archived (another server ran the same cut first, trial14 LOW-4:
    /// the cut is made once, under the chain head's lock).
    ///
    /// # Errors
    /// As [`Store::append_checkpoint`]; then nothing was deleted.
    pub async fn delete_audit_through(
        &self,
        cut: i64,
        cut_hash: Option<&str>,
        detail: &RetentionCut,
        sign: impl FnOnce(SignedCheckpoint) -> Result<SignedCheckpoint, crate::pki::PkiError>,
    ) -> Result<Option<(u64, Option<SignedCheckpoint>)>, StoreError> {
        let text = serde_json::to_string(detail).map_err(|source| StoreError::Encode {
            what: "retention cut",
            source,
        })?;
        let (_guard, mut tx) = self.write_tx().await?;
        sqlx::query("UPDATE audit_chain SET chained = chained WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM notify_pending WHERE audit_id <= $1")
            .bind(cut)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM audit WHERE id <= $1")
            .bind(cut)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n != detail.records {
            tx.rollback().await?;
            tracing::info!(cut, archived = detail.records, in_log = n,
                "audit retention: the log no longer holds the records archived (another server cut them first); nothing deleted");
            return Ok(None);
        }
        if let Some(h) = cut_hash {
            sqlx::query("UPDATE audit_chain SET cut_id = $1, cut_hash = $2 WHERE id = 1")
                .bind(cut)
                .bind(h.to_string())
                .execute(&mut *tx)
                .await?;
        }
        append_after_cut(
            &mut tx,
            &NewAudit {
                actor: crate::SYSTEM_ACTOR,
                action: RETENTION_ACTION,
                result: "ok",
                detail: Some(&text),
                ..Default::default()
            },
            (cut, cut_hash),
        )
        .await?;
        let cp = self
            .checkpoint_in_tx(&mut tx, "retention", true, Mode::Plain, sign)
            .await?;
        tx.commit().await?;
        Ok(Some(match cp {
            Some((signed, own)) => {
                self.note_issued_checkpoint(own.clone());
                if let Ok(mut g) = self.mark.seen.lock() {
                    *g = Some(own);
                }
                (n, Some(signed))
            }
            None => (n, None),
        }))
    }

    /// Every distinct `action` the audit log holds, sorted: what the console's Action
    /// filter offers (trial13 LOW: a hand list missed some). A loose index scan over the
    /// `audit_action` index (`AUDIT_ACTIONS_SQL`): one seek per distinct action, never a
    /// pass over the log (trial16 LOW), on SQLite and PostgreSQL alike.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn audit_actions(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(AUDIT_ACTIONS_SQL).fetch_all(&self.pool).await?;
        rows.iter().map(|r| get_str(r, "action")).collect()
    }

    /// Ties this database to the CA with SHA-256 fingerprint `here` (trial28 MED-2), before
    /// a server, `server init` or `server token create` writes anything: the signer of the
    /// log's last checkpoint must be `here` (always: the row alone is not marked), and the
    /// database's `deployment` row names the deployment's CA; without one (made by `server
    /// init` before version 29, or a new database) the row is written for `here`.
    ///
    /// # Errors
    /// [`StoreError::OtherCa`] naming both fingerprints when the database belongs to
    /// another CA (nothing written); database errors.
    pub async fn bind_deployment_ca(&self, here: &str) -> Result<(), StoreError> {
        let other = |database: String| StoreError::OtherCa {
            database,
            here: here.to_string(),
        };
        // The signer of the log's last checkpoint is compared even when the row exists
        // (trial41 LOW-1: the row, edited to another CA's fingerprint, let that CA's
        // server start and sign into this log).
        let last_cp = sqlx::query("SELECT detail FROM audit WHERE action = $1 ORDER BY id DESC LIMIT 1")
            .bind(CHECKPOINT_ACTION)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(cp) = last_cp
            .map(|r| get_opt_str(&r, "detail"))
            .transpose()?
            .flatten()
            .and_then(|d| serde_json::from_str::<SignedCheckpoint>(&d).ok())
        {
            if !cp.key.is_empty() && cp.key != here {
                return Err(other(cp.key));
            }
        }
        let stored = sqlx::query("SELECT ca_fingerprint FROM deployment WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        if let Some(r) = stored {
            let database = get_str(&r, "ca_fingerprint")?;
            return if database == here { Ok(()) } else { Err(other(database)) };
        }
        sqlx::query("INSERT INTO deployment (id, ca_fingerprint) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
            .bind(here.to_string())
            .execute(&self.pool)
            .await?;
        // Two starts at once: the row one of them wrote decides.
        let r = sqlx::query("SELECT ca_fingerprint FROM deployment WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let database = get_str(&r, "ca_fingerprint")?;
        if database == here {
            Ok(())
        } else {
            Err(other(database))
        }
    }

    /// What an initialised database already holds — (API tokens, last audit record id) —
    /// or `None` for a database no deployment uses yet (`cordon server init` refuses an
    /// initialised one, trial28 LOW-8).
    ///
    /// # Errors
    /// Database errors.
    pub async fn deployment_in_use(&self) -> Result<Option<(i64, i64)>, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM api_tokens) AS tokens, (SELECT COALESCE(MAX(id), 0) FROM audit) AS last, \
             (SELECT COUNT(*) FROM deployment) AS bound",
        )
        .fetch_one(&self.pool)
        .await?;
        let (tokens, last, bound) = (
            get_i64(&row, "tokens")?,
            get_i64(&row, "last")?,
            get_i64(&row, "bound")?,
        );
        Ok((tokens > 0 || last > 0 || bound > 0).then_some((tokens, last)))
    }

    /// Number of audit records (tests use it to prove a refused request wrote nothing).
    pub async fn audit_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM audit")
            .fetch_one(&self.pool)
            .await?;
        get_i64(&row, "n")
    }
}

/// Inserts or refreshes `writer`'s `audit_writers` row (`seen_at` `now`, with its
/// signed `proof`: see [`Store::writer_proof`]).
async fn upsert_writer<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    writer: &str,
    proof: (i64, Option<String>),
) -> Result<(), StoreError> {
    let (now, proof) = proof;
    sqlx::query(
        "INSERT INTO audit_writers (writer, started_at, seen_at, proof) VALUES ($1, $2, $2, $3) \
         ON CONFLICT (writer) DO UPDATE SET seen_at = $2, proof = $3",
    )
    .bind(writer.to_string())
    .bind(now)
    .bind(proof)
    .execute(ex)
    .await?;
    Ok(())
}

/// The records after id `after`: first, last and count (`None`: none).
async fn range_after(tx: &mut Tx, after: i64) -> Result<Option<cordon_proto::audit_chain::RecordRange>, StoreError> {
    range_between(tx, after, i64::MAX).await
}

/// The records after id `after` up to `upto` (inclusive): first, last and count
/// (`None`: none).
async fn range_between(
    tx: &mut Tx,
    after: i64,
    upto: i64,
) -> Result<Option<cordon_proto::audit_chain::RecordRange>, StoreError> {
    let row = sqlx::query("SELECT COUNT(*) AS n, MIN(id) AS lo, MAX(id) AS hi FROM audit WHERE id > $1 AND id <= $2")
        .bind(after)
        .bind(upto)
        .fetch_one(&mut **tx)
        .await?;
    let n = get_i64(&row, "n")?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(cordon_proto::audit_chain::RecordRange {
        first: super::get_opt_i64(&row, "lo")?.unwrap_or(after + 1),
        last: super::get_opt_i64(&row, "hi")?.unwrap_or(after + 1),
        count: u64::try_from(n).unwrap_or(0),
    }))
}
