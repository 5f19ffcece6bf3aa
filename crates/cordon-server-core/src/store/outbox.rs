//! The notification outbox: targets, one row per (target, audit record) so nothing is
//! lost across a restart and nothing is queued twice, the tail cursor over the audit log,
//! delivery leases (so replicas do not send a row twice) and retention.
//!
//! What a notification says is decided by the caller (`cordon-automation`): this module
//! only stores and hands out rows.

use cordon_proto::automation::{Delivery, DeliveryStatus, NotifyKind, Target, TargetKind, TargetSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;

use super::audit::{append, Actor, NewAudit};
use super::{get_i64, get_opt_i64, get_opt_str, get_str, json_list, to_json_list, OnDuplicate, Store, StoreError};
use crate::timefmt::{now_ms, Timestamp};

/// One new audit record as notifications see it.
#[derive(Debug, Clone)]
pub struct TailRecord {
    /// The audit record's id.
    pub audit_id: i64,
    /// Unix ms.
    pub at: i64,
    /// Who acted (display name).
    pub actor: String,
    /// The API token that acted (audit column `actor_token_id`): the identity behind
    /// `actor`, which is only a name. `None` for the server, agents, rules.
    pub actor_token_id: Option<i64>,
    /// The audit action (`quarantine`, `applied`, …).
    pub action: String,
    /// The host concerned.
    pub host_id: Option<String>,
    /// Its hostname when the record was read.
    pub hostname: Option<String>,
    /// Another enrolled (not revoked) host has the same hostname (compared as the
    /// server's `hostname_key`: the `duplicate hostname` flag), so a notification names
    /// this one with its short id too; also true when the hostname breaks the hostname
    /// rule (`crate::service::validate::hostname_rule`, a host enrolled before it).
    pub hostname_shared: bool,
    /// The reason given.
    pub comment: Option<String>,
    /// More detail (error, what changed).
    pub detail: Option<String>,
    /// The automation event behind an automatic action (audit column `event_id`).
    pub event_id: Option<String>,
    /// The automation rule behind an automatic action (audit column `rule_name`).
    pub rule: Option<String>,
    /// What the record's writer stated for its notification beyond the audit columns
    /// (agent confirmations: the revision, who asked, exceptions not in force).
    pub facts: NoticeFacts,
}

/// Structured facts a notification states beyond the audit record's columns, queued with
/// the record (`notify_pending.facts`, same transaction) so nothing is parsed back out of
/// the detail text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeFacts {
    /// The desired-state revision the record is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Who asked for the state that is now confirmed (token name, `rule:…`, `system`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_by: Option<String>,
    /// The API token id behind `asked_by` (`None` for the server and rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_by_token_id: Option<i64>,
    /// Exceptions of a confirmed quarantine that are not in force (one line each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<String>,
    /// A confirmed release that leaves the host isolated: the other managers' claims
    /// still standing (`wazuh since 2026-…`, `local`), one per claim.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub still_isolated_by: Vec<String>,
}

/// An outbox row due for sending, leased to this worker.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// Outbox id.
    pub id: i64,
    /// Attempts so far (this one not counted).
    pub attempts: i64,
    /// The target's URL; `None` when the target was removed meanwhile.
    pub url: Option<String>,
    /// The JSON body to POST.
    pub payload: String,
}

/// The notification kind an audit action makes (one of
/// [`cordon_proto::automation::NOTIFY_KINDS`]), `None` for actions that notify nobody.
/// The audit append queues exactly these records in `notify_pending`.
///
/// Effect, not dispatch: `quarantined`/`released` come from the agent's first
/// confirmation of a revision (`quarantine_confirmed`/`release_confirmed`, written once
/// per revision); the request itself is `quarantine_requested`/`release_requested`. A
/// rule's dry run stays `quarantined` with `dry_run` set ("would be quarantined").
pub fn kind_of(action: &str) -> Option<NotifyKind> {
    Some(match action {
        "quarantine_confirmed" | "quarantine_dry_run" => NotifyKind::Quarantined,
        "release_confirmed" => NotifyKind::Released,
        "quarantine" => NotifyKind::QuarantineRequested,
        "release" => NotifyKind::ReleaseRequested,
        "not_enforcing" => NotifyKind::NotEnforcing,
        "failed" => NotifyKind::Failed,
        "tampered" => NotifyKind::Tampered,
        "approval_required" => NotifyKind::ApprovalRequired,
        // Opt-in (not in a target's default events): a copy of each signed checkpoint,
        // and of each refusal of retention over a log that does not verify (the copies
        // outside the database are where an auditor learns the log was found tampered).
        cordon_proto::audit_chain::CHECKPOINT_ACTION | super::audit::RETENTION_REFUSED_ACTION => {
            NotifyKind::AuditCheckpoint
        }
        _ => return None,
    })
}

fn target_row(r: &AnyRow) -> Result<Target, StoreError> {
    let kind = get_str(r, "kind")?;
    Ok(Target {
        id: get_i64(r, "id")?,
        spec: TargetSpec {
            name: get_str(r, "name")?,
            kind: TargetKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
                what: format!("notification target kind {kind:?}"),
                source: None,
            })?,
            url: get_str(r, "url")?,
            events: json_list(&get_str(r, "events")?)
                .into_iter()
                .map(NotifyKind::from)
                .collect(),
            enabled: get_i64(r, "enabled")? != 0,
        },
        created_at: Timestamp::from_unix_ms_clamped(get_i64(r, "created_at")?),
    })
}

fn delivery_row(r: &AnyRow) -> Result<Delivery, StoreError> {
    let text = get_str(r, "status")?;
    let status = DeliveryStatus::parse(&text).ok_or_else(|| StoreError::Corrupt {
        what: format!("notification delivery status {text:?}"),
        source: None,
    })?;
    Ok(Delivery {
        id: get_i64(r, "id")?,
        target_id: get_i64(r, "target_id")?,
        audit_id: get_i64(r, "audit_id")?,
        // Kept as stored: a replica of a newer version may queue a kind this one does
        // not know (`NotifyKind::Other`).
        kind: get_str(r, "kind")?.into(),
        next_attempt_at: (status == DeliveryStatus::Pending)
            .then(|| get_i64(r, "next_attempt_at").map(Timestamp::from_unix_ms_clamped))
            .transpose()?,
        status,
        attempts: get_i64(r, "attempts")?,
        last_error: get_opt_str(r, "last_error")?,
        delivered_at: get_opt_i64(r, "delivered_at")?.map(Timestamp::from_unix_ms_clamped),
        created_at: Timestamp::from_unix_ms_clamped(get_i64(r, "created_at")?),
        payload: serde_json::from_str(&get_str(r, "payload")?).unwrap_or(Value::Null),
    })
}

impl Store {
    /// Every notification target, by id.
    pub async fn notify_targets(&self) -> Result<Vec<Target>, StoreError> {
        let rows =
            sqlx::query("SELECT id, name, kind, url, events, enabled, created_at FROM notify_targets ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(target_row).collect()
    }

    /// Adds a notification target, audited as `who` (`notify_target_add`: name, kind,
    /// the URL's scheme and host — never the whole URL, which for Slack is a secret — and
    /// the kinds it gets), since a target is where copies of the audit checkpoints go.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] (409) when a target of that name exists: the unique
    /// constraint decides, so two replicas racing cannot both add it.
    pub async fn add_notify_target<'a>(
        &self,
        who: impl Into<Actor<'a>>,
        spec: &TargetSpec,
    ) -> Result<Target, StoreError> {
        let who = who.into();
        let (_g, mut tx) = self.write_tx().await?;
        let row = sqlx::query(
            "INSERT INTO notify_targets (name, kind, url, events, enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING id, name, kind, url, events, enabled, created_at",
        )
        .bind(spec.name.clone())
        .bind(spec.kind.as_str().to_string())
        .bind(spec.url.clone())
        .bind(to_json_list(&spec.events))
        .bind(spec.enabled as i64)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .on_duplicate(|| format!("a target named {:?}", spec.name))?;
        let t = target_row(&row)?;
        audit_target_change(&mut tx, who, "notify_target_add", &t).await?;
        tx.commit().await?;
        Ok(t)
    }

    /// Removes a target; its pending deliveries are marked dead.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when there is no such target.
    pub async fn delete_notify_target<'a>(&self, who: impl Into<Actor<'a>>, id: i64) -> Result<(), StoreError> {
        let who = who.into();
        let (_g, mut tx) = self.write_tx().await?;
        let row =
            sqlx::query("SELECT id, name, kind, url, events, enabled, created_at FROM notify_targets WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("no notification target {id}")))?;
        let target = target_row(&row)?;
        let n = sqlx::query("DELETE FROM notify_targets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if n.rows_affected() != 1 {
            return Err(StoreError::NotFound(format!("no notification target {id}")));
        }
        audit_target_change(&mut tx, who, "notify_target_remove", &target).await?;
        sqlx::query("UPDATE notify_outbox SET status = 'dead', last_error = 'target removed' WHERE target_id = $1 AND status = 'pending'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Turns up to `batch` queued audit records (`notify_pending`, written in the same
    /// transaction as each record) into outbox rows and removes them from the queue, in one
    /// transaction. `notice` (pure) says whether a record is a notification and of which
    /// kind (`console_url` is the settings' link base); `payload` renders it for a target
    /// of a given kind (`slack`, `webhook`). Every enabled target subscribed to the kind
    /// gets one row. Returns how many rows were queued.
    ///
    /// Complete with several writers: nothing depends on the order ids commit in. Exactly
    /// once with several notifiers: the outbox's `UNIQUE (target_id, audit_id)` drops a
    /// second copy, and the lock on `notify_cursor`'s row makes concurrent passes take turns.
    pub async fn enqueue_notifications<N>(
        &self,
        batch: i64,
        notice: impl Fn(&TailRecord, Option<&str>) -> Option<(NotifyKind, N)>,
        payload: impl Fn(&N, TargetKind) -> String,
    ) -> Result<usize, StoreError> {
        let (_g, mut tx) = self.write_tx().await?;
        // Serialises notifiers on every replica (a row lock on PostgreSQL).
        sqlx::query("UPDATE notify_cursor SET audit_id = audit_id WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(
            "SELECT a.id AS id, a.at AS at, a.actor AS actor, a.actor_token_id AS actor_token_id, a.action AS action, \
             a.host_id AS host_id, a.comment AS comment, \
             a.detail AS detail, a.event_id AS event_id, a.rule_name AS rule_name, h.hostname AS hostname, p.facts AS facts, \
             (SELECT COUNT(*) FROM hosts o WHERE o.hostname_key = h.hostname_key AND o.id <> h.id AND o.revoked = 0) AS shared \
             FROM notify_pending p JOIN audit a ON a.id = p.audit_id LEFT JOIN hosts h ON h.id = a.host_id \
             ORDER BY p.audit_id LIMIT $1",
        )
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let trows = sqlx::query(
            "SELECT id, name, kind, url, events, enabled, created_at FROM notify_targets WHERE enabled = 1 ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let targets = trows.iter().map(target_row).collect::<Result<Vec<_>, _>>()?;
        let console = get_opt_str(
            &sqlx::query("SELECT console_url FROM auto_settings WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?,
            "console_url",
        )?;
        let now = now_ms();
        let mut queued = 0;
        for r in &rows {
            sqlx::query("DELETE FROM notify_pending WHERE audit_id = $1")
                .bind(get_i64(r, "id")?)
                .execute(&mut *tx)
                .await?;
            let rec = TailRecord {
                audit_id: get_i64(r, "id")?,
                at: get_i64(r, "at")?,
                actor: get_str(r, "actor")?,
                actor_token_id: get_opt_i64(r, "actor_token_id")?,
                action: get_str(r, "action")?,
                host_id: get_opt_str(r, "host_id")?,
                hostname: get_opt_str(r, "hostname")?,
                // A shared name, or one breaking the hostname rule (a host enrolled before
                // it as `10.9.9.9` or `web1 (820cb233)`): named with its short id.
                hostname_shared: get_opt_i64(r, "shared")?.unwrap_or(0) > 0
                    || get_opt_str(r, "hostname")?
                        .is_some_and(|n| crate::service::validate::hostname_rule(&n).is_err()),
                comment: get_opt_str(r, "comment")?,
                detail: get_opt_str(r, "detail")?,
                event_id: get_opt_str(r, "event_id")?,
                rule: get_opt_str(r, "rule_name")?,
                facts: get_opt_str(r, "facts")?
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default(),
            };
            let Some((kind, n)) = notice(&rec, console.as_deref()) else {
                continue;
            };
            for t in targets.iter().filter(|t| t.spec.events.contains(&kind)) {
                let body = payload(&n, t.spec.kind);
                let mark = self
                    .keys
                    .get()
                    .map(|k| outbox_mark(&k.mark, t.id, rec.audit_id, kind.as_str(), &body));
                let done = sqlx::query(
                    "INSERT INTO notify_outbox (target_id, audit_id, kind, payload, created_at, status, attempts, next_attempt_at, mark) \
                     VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7) ON CONFLICT (target_id, audit_id) DO NOTHING",
                )
                .bind(t.id)
                .bind(rec.audit_id)
                .bind(kind.as_str().to_string())
                .bind(body)
                .bind(now)
                .bind(now)
                .bind(mark)
                .execute(&mut *tx)
                .await?;
                queued += done.rows_affected() as usize;
            }
        }
        tx.commit().await?;
        Ok(queued)
    }

    /// Up to `limit` pending rows due at `now` (Unix ms) and not leased by another worker.
    ///
    /// Only rows a server of the deployment queued: a row without a valid outbox mark
    /// ([`outbox_mark`]) is refused instead — marked `dead` and audited (see
    /// [`Store::refuse_unmarked_deliveries`]) — and never handed out.
    pub async fn due_deliveries(&self, now: i64, limit: i64) -> Result<Vec<DueDelivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id AS id, o.target_id AS target_id, o.audit_id AS audit_id, o.kind AS kind, o.mark AS mark, \
             o.payload AS payload, o.attempts AS attempts, t.url AS url FROM notify_outbox o \
             LEFT JOIN notify_targets t ON t.id = o.target_id \
             WHERE o.status = 'pending' AND o.next_attempt_at <= $1 AND (o.lease_until IS NULL OR o.lease_until < $2) \
             ORDER BY o.id LIMIT $3",
        )
        .bind(now)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(self.marked_only(&rows).await?.into_iter().map(|(_, d)| d).collect())
    }

    /// The rows of `rows` (outbox rows with `id`, `target_id`, `audit_id`, `kind`,
    /// `payload`, `mark`, `attempts`, `url`) carrying a valid outbox mark, each with its
    /// target id; the others are refused ([`Store::refuse_unmarked_deliveries`]). A store
    /// without the CA's keys cannot check marks and hands out every row (it also writes
    /// none).
    async fn marked_only(&self, rows: &[AnyRow]) -> Result<Vec<(i64, DueDelivery)>, StoreError> {
        let mut ok = Vec::with_capacity(rows.len());
        let mut refused = Vec::new();
        for r in rows {
            let target_id = get_i64(r, "target_id")?;
            let audit_id = get_i64(r, "audit_id")?;
            let d = DueDelivery {
                id: get_i64(r, "id")?,
                attempts: get_i64(r, "attempts")?,
                url: get_opt_str(r, "url")?,
                payload: get_str(r, "payload")?,
            };
            let genuine = match self.keys.get() {
                Some(k) => outbox_mark_valid(
                    &k.mark,
                    target_id,
                    audit_id,
                    &get_str(r, "kind")?,
                    &d.payload,
                    get_opt_str(r, "mark")?.as_deref(),
                ),
                None => true,
            };
            if genuine {
                ok.push((target_id, d));
            } else {
                refused.push((d.id, target_id, audit_id));
            }
        }
        if !refused.is_empty() {
            self.refuse_unmarked_deliveries(&refused).await?;
        }
        Ok(ok)
    }

    /// Refuses outbox rows `(id, target id, audit record id)` that carry no valid outbox
    /// mark: written into the database directly, not queued by a server of the
    /// deployment (issue 17 LOW-1: a planted row was delivered as a genuine checkpoint
    /// copy). Each row still pending becomes `dead` with the reason as its error, never
    /// sent; the server log gets an error and the audit log one `notify_outbox_refused`
    /// record (actor `system`, result `refused`) naming the rows, in the same transaction,
    /// so each row is refused and audited exactly once, also with replicas.
    ///
    /// # Errors
    /// Database errors (nothing is marked then; the rows are refused at the next pass).
    pub async fn refuse_unmarked_deliveries(&self, rows: &[(i64, i64, i64)]) -> Result<(), StoreError> {
        const WHY: &str = "refused: no valid outbox mark (not queued by a server of this deployment: \
                           written into the database directly); never delivered";
        let (_g, mut tx) = self.write_tx().await?;
        let mut done = Vec::new();
        for &(id, target, audit_id) in rows {
            let n = sqlx::query(
                "UPDATE notify_outbox SET status = 'dead', last_error = $1, lease_until = NULL \
                 WHERE id = $2 AND status = 'pending'",
            )
            .bind(WHY)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if n.rows_affected() == 1 {
                done.push(format!("row {id} (target {target}, audit record {audit_id})"));
            }
        }
        if done.is_empty() {
            return Ok(());
        }
        const SHOWN: usize = 20;
        let mut detail = format!(
            "{} notification outbox row(s) carry no valid outbox mark: not queued by a server of this deployment \
             (written into the database directly); refused, never delivered: {}",
            done.len(),
            done.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ")
        );
        if done.len() > SHOWN {
            detail.push_str(&format!(" and {} more", done.len() - SHOWN));
        }
        tracing::error!(rows = done.len(), "{detail}");
        append(
            &mut tx,
            &NewAudit {
                actor: "system",
                action: "notify_outbox_refused",
                result: "refused",
                detail: Some(&detail),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The outbox rows of audit record `audit_id` still pending, whatever their next
    /// attempt time and lease (an orderly stop sends its shutdown checkpoint at once, see
    /// `cordon_automation::notify::deliver_record_now`), oldest first, each with its
    /// target's id.
    ///
    /// # Errors
    /// Database errors.
    pub async fn pending_deliveries_of(&self, audit_id: i64) -> Result<Vec<(i64, DueDelivery)>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id AS id, o.target_id AS target_id, o.audit_id AS audit_id, o.kind AS kind, o.mark AS mark, \
             o.payload AS payload, o.attempts AS attempts, t.url AS url \
             FROM notify_outbox o LEFT JOIN notify_targets t ON t.id = o.target_id \
             WHERE o.status = 'pending' AND o.audit_id = $1 ORDER BY o.id",
        )
        .bind(audit_id)
        .fetch_all(&self.pool)
        .await?;
        self.marked_only(&rows).await
    }

    /// Leases a due row until `lease_until` (Unix ms); `false` when another worker
    /// (replica) claimed it first.
    pub async fn claim_delivery(&self, id: i64, lease_until: i64) -> Result<bool, StoreError> {
        let (_g, mut tx) = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE notify_outbox SET lease_until = $1 WHERE id = $2 AND status = 'pending' AND (lease_until IS NULL OR lease_until < $3)",
        )
        .bind(lease_until)
        .bind(id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(n.rows_affected() == 1)
    }

    /// Records the outcome of an attempt: `status` (`delivered`, `pending` for a retry at
    /// `next` Unix ms, `dead`), the attempt count and the error; ends the lease.
    pub async fn finish_delivery(
        &self,
        id: i64,
        status: DeliveryStatus,
        attempts: i64,
        error: Option<&str>,
        next: i64,
    ) -> Result<(), StoreError> {
        let (_g, mut tx) = self.write_tx().await?;
        let delivered = (status == DeliveryStatus::Delivered).then(now_ms);
        sqlx::query(
            "UPDATE notify_outbox SET status = $1, attempts = $2, last_error = $3, next_attempt_at = $4, delivered_at = $5, lease_until = NULL WHERE id = $6",
        )
        .bind(status.as_str().to_string())
        .bind(attempts)
        .bind(error.map(str::to_string))
        .bind(next)
        .bind(delivered)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Keeps the outbox bounded: finished rows older than a week (before `now`, Unix ms)
    /// go, and beyond `max` rows the oldest ones. Returns how many rows beyond `max` were
    /// dropped.
    pub async fn prune_outbox(&self, now: i64, max: i64) -> Result<u64, StoreError> {
        let (_g, mut tx) = self.write_tx().await?;
        sqlx::query("DELETE FROM notify_outbox WHERE status <> 'pending' AND created_at < $1")
            .bind(now - 7 * 86_400_000)
            .execute(&mut *tx)
            .await?;
        let total = get_i64(
            &sqlx::query("SELECT COUNT(*) AS n FROM notify_outbox")
                .fetch_one(&mut *tx)
                .await?,
            "n",
        )?;
        let mut dropped = 0;
        if total > max {
            let edge = sqlx::query("SELECT id FROM notify_outbox ORDER BY id DESC LIMIT 1 OFFSET $1")
                .bind(max)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = edge {
                let id = get_i64(&row, "id")?;
                dropped = sqlx::query("DELETE FROM notify_outbox WHERE id <= $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
        }
        tx.commit().await?;
        Ok(dropped)
    }

    /// Outbox rows, newest first, optionally only those in `status`.
    pub async fn deliveries(&self, status: Option<DeliveryStatus>, limit: i64) -> Result<Vec<Delivery>, StoreError> {
        let cols =
            "id, target_id, audit_id, kind, payload, created_at, status, attempts, next_attempt_at, last_error, delivered_at";
        let rows = match status {
            Some(s) => {
                sqlx::query(&format!(
                    "SELECT {cols} FROM notify_outbox WHERE status = $1 ORDER BY id DESC LIMIT $2"
                ))
                .bind(s.as_str().to_string())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("SELECT {cols} FROM notify_outbox ORDER BY id DESC LIMIT $1"))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(delivery_row).collect()
    }
}

/// The mark a server gives each notification outbox row it queues (`notify_outbox.mark`,
/// migration 27): HMAC-SHA256, hex, under the deployment's audit mark key
/// ([`crate::pki::Ca::audit_mark_key`], the key of the audit records' marks, which every
/// server of the deployment derives from the CA private key and a database-only attacker
/// does not have) over a version tag, the target id, the audit record id, the kind and
/// the exact payload. Any replica checks any replica's rows; a row inserted into the
/// database directly, or a genuine row whose payload, kind, record or target was changed,
/// does not fit.
pub fn outbox_mark(key: &ring::hmac::Key, target_id: i64, audit_id: i64, kind: &str, payload: &str) -> String {
    hex::encode(ring::hmac::sign(key, &outbox_mark_message(target_id, audit_id, kind, payload)).as_ref())
}

fn outbox_mark_message(target_id: i64, audit_id: i64, kind: &str, payload: &str) -> Vec<u8> {
    let mut m = format!(
        "cordon-notify-outbox-mark-v1\n{target_id}\n{audit_id}\n{}\n{kind}\n",
        kind.len()
    )
    .into_bytes();
    m.extend_from_slice(payload.as_bytes());
    m
}

/// Whether `mark` (an outbox row's `mark`) is [`outbox_mark`] of that row under `key`.
pub fn outbox_mark_valid(
    key: &ring::hmac::Key,
    target_id: i64,
    audit_id: i64,
    kind: &str,
    payload: &str,
    mark: Option<&str>,
) -> bool {
    mark.and_then(|m| hex::decode(m).ok()).is_some_and(|tag| {
        ring::hmac::verify(key, &outbox_mark_message(target_id, audit_id, kind, payload), &tag).is_ok()
    })
}

/// Audits a notification target's addition or removal: who, and what the target is
/// (name, kind, the URL's scheme and host only, the kinds it gets).
async fn audit_target_change(tx: &mut super::Tx, who: Actor<'_>, action: &str, t: &Target) -> Result<(), StoreError> {
    let detail = format!(
        "target {} (id {}): {} to {}, kinds [{}]{}",
        t.spec.name,
        t.id,
        t.spec.kind,
        url_origin(&t.spec.url),
        t.spec
            .events
            .iter()
            .map(NotifyKind::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        if t.spec.enabled { "" } else { ", disabled" }
    );
    append(
        tx,
        &NewAudit {
            actor: who.name,
            actor_token_id: who.token_id,
            action,
            result: "ok",
            detail: Some(&detail),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// `scheme://host[:port]` of `url` (path, query and credentials dropped: a Slack
/// webhook's path is its secret), parsed as an HTTP URI; `(not a URL)` otherwise.
pub fn url_origin(url: &str) -> String {
    let Ok(uri) = url.parse::<axum::http::Uri>() else {
        return "(not a URL)".into();
    };
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(a)) => match a.port_u16() {
            Some(port) => format!("{scheme}://{}:{port}", a.host()),
            None => format!("{scheme}://{}", a.host()),
        },
        _ => "(not a URL)".into(),
    }
}

#[cfg(test)]
mod mark_tests {
    #[test]
    fn an_outbox_mark_fits_only_its_own_row_and_key() {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"deployment key");
        let other = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"another key");
        let m = super::outbox_mark(&key, 1, 7, "audit_checkpoint", "{\"a\":1}");
        assert!(super::outbox_mark_valid(
            &key,
            1,
            7,
            "audit_checkpoint",
            "{\"a\":1}",
            Some(&m)
        ));
        assert!(!super::outbox_mark_valid(
            &other,
            1,
            7,
            "audit_checkpoint",
            "{\"a\":1}",
            Some(&m)
        ));
        assert!(!super::outbox_mark_valid(
            &key,
            2,
            7,
            "audit_checkpoint",
            "{\"a\":1}",
            Some(&m)
        ));
        assert!(!super::outbox_mark_valid(
            &key,
            1,
            8,
            "audit_checkpoint",
            "{\"a\":1}",
            Some(&m)
        ));
        assert!(!super::outbox_mark_valid(
            &key,
            1,
            7,
            "quarantined",
            "{\"a\":1}",
            Some(&m)
        ));
        assert!(!super::outbox_mark_valid(
            &key,
            1,
            7,
            "audit_checkpoint",
            "{\"a\":2}",
            Some(&m)
        ));
        assert!(!super::outbox_mark_valid(
            &key,
            1,
            7,
            "audit_checkpoint",
            "{\"a\":1}",
            None
        ));
        assert!(!super::outbox_mark_valid(
            &key,
            1,
            7,
            "audit_checkpoint",
            "{\"a\":1}",
            Some("zz")
        ));
    }
}

#[cfg(test)]
mod origin_tests {
    #[test]
    fn a_target_url_is_audited_without_its_secret_path_or_credentials() {
        assert_eq!(
            super::url_origin("https://hooks.slack.com/services/T000/B000/XXXX"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            super::url_origin("https://user:pw@soc.example:8443/h?k=v"),
            "https://soc.example:8443"
        );
        assert_eq!(
            super::url_origin("http://[2001:db8::1]:80/x"),
            "http://[2001:db8::1]:80"
        );
    }
}
