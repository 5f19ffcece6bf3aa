//! Changes of desired state (quarantine, release), labels and revocation. Each host's
//! change and its audit record are written in the same transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use cordon_proto::{ActionChange, ActionResult, DesiredState, Host, HostState, QUARANTINE_LABEL};

use super::audit::{append, append_many, Actor, AutoCause, NewAudit};
use super::hosts::{ids_with_label_tx, load_many_tx, load_tx, marks, resolve_refs_tx, IDS_PER_STATEMENT};
use super::{get_i64, get_str, to_json_list, Store, StoreError, Tx};
use crate::timefmt::{now_ms, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// What an action does to the desired state.
pub enum Action {
    /// Desire the host quarantined.
    Quarantine,
    /// Desire the host released.
    Release,
}

impl From<Action> for cordon_proto::HostAction {
    fn from(a: Action) -> Self {
        match a {
            Action::Quarantine => cordon_proto::HostAction::Quarantine,
            Action::Release => cordon_proto::HostAction::Release,
        }
    }
}

impl Action {
    /// The audit action name (`quarantine`, `release`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Quarantine => "quarantine",
            Action::Release => "release",
        }
    }
}

/// Already validated parameters of an action.
#[derive(Debug, Clone, Default)]
pub struct ActionParams {
    /// Why (audited).
    pub comment: String,
    /// Exceptions (`--allow` specs), validated.
    pub allow: Vec<String>,
    /// Message shown on the host.
    pub message: Option<String>,
    /// Unix ms.
    pub expires_at: Option<i64>,
    /// Host id → desired-state revision the caller saw; a host that moved on fails the
    /// whole action with [`StoreError::Conflict`] (nothing is written).
    pub if_revisions: std::collections::BTreeMap<String, i64>,
    /// With a label target: the caller sent a reviewed set (`if_revisions` present, even
    /// empty), so the label's hosts must be exactly its keys — an empty review acts on
    /// none.
    pub reviewed_set: bool,
    /// For a host already desired quarantined: replace its exceptions, message and
    /// expiry with these (otherwise it keeps its own).
    pub replace: bool,
    /// Work out the results and write nothing.
    pub preview: bool,
}

/// What `action` with `p` does to a host whose desired state is `d`, and which of the
/// quarantine parameters (`allow`, `message`, `expires_at`) are concerned (pure).
///
/// Re-quarantine semantics (docs/server.md): a host already desired quarantined keeps
/// its exceptions, message and expiry unless the request says `replace`; the same for
/// one host, a selection and a label, and for the `Quarantine` label. The exceptions
/// are compared as sets.
pub fn plan_change(action: Action, d: &DesiredState, p: &ActionParams) -> (ActionChange, Vec<String>) {
    match action {
        Action::Release if d.quarantined => (ActionChange::Released, vec![]),
        Action::Release => (ActionChange::AlreadyReleased, vec![]),
        Action::Quarantine if !d.quarantined => (ActionChange::New, vec![]),
        Action::Quarantine => {
            let set = |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<String>>();
            let expires = d.expires_at.map(Timestamp::unix_ms);
            let mut fields = Vec::new();
            if set(&d.allow) != set(&p.allow) {
                fields.push("allow".to_string());
            }
            if d.message != p.message {
                fields.push("message".to_string());
            }
            if expires != p.expires_at {
                fields.push("expires_at".to_string());
            }
            match (fields.is_empty(), p.replace) {
                (true, _) => (ActionChange::Unchanged, vec![]),
                (false, true) => (ActionChange::Replaced, fields),
                (false, false) => (ActionChange::AlreadyQuarantined, fields),
            }
        }
    }
}

/// Already validated parameters of a retry.
#[derive(Debug, Clone, Default)]
pub struct RetryParams {
    /// Why (audited).
    pub comment: String,
    /// Host id → desired-state revision the caller saw ([`ActionParams::if_revisions`]).
    pub if_revisions: std::collections::BTreeMap<String, i64>,
    /// Work out the results and write nothing.
    pub preview: bool,
}

/// The hostname of host `id` for a message (the id itself when it is gone).
async fn hostname_tx(tx: &mut Tx, id: &str) -> Result<String, StoreError> {
    Ok(load_tx(tx, id)
        .await?
        .map(|h| h.hostname)
        .unwrap_or_else(|| id.to_string()))
}

/// Which hosts an action targets.
#[derive(Debug, Clone)]
pub enum Targets {
    /// Hosts by id or unique hostname.
    Hosts(Vec<String>),
    /// Every non-revoked host carrying the label.
    Label(String),
}

/// Quarantines or releases one host inside `tx` ([`apply_many_tx`] with one id).
pub(crate) async fn apply_tx(
    tx: &mut Tx,
    host_id: &str,
    actor: Actor<'_>,
    action: Action,
    p: &ActionParams,
    detail: Option<&str>,
    cause: Option<&AutoCause<'_>>,
) -> Result<ActionResult, StoreError> {
    apply_many_tx(tx, &[host_id.to_string()], actor, action, p, detail, cause)
        .await?
        .pop()
        .ok_or_else(|| StoreError::NotFound(format!("no host {host_id:?}")))
}

/// [`apply_loaded_tx`] after loading the hosts (set-based, [`load_many_tx`]).
pub(crate) async fn apply_many_tx(
    tx: &mut Tx,
    host_ids: &[String],
    actor: Actor<'_>,
    action: Action,
    p: &ActionParams,
    detail: Option<&str>,
    cause: Option<&AutoCause<'_>>,
) -> Result<Vec<ActionResult>, StoreError> {
    let hosts = load_many_tx(tx, host_ids).await?;
    apply_loaded_tx(tx, host_ids, &hosts, actor, action, p, detail, cause).await
}

/// The one quarantine/release path. For each of `host_ids` (duplicates count once;
/// `before` holds each host as read in this transaction) it works out the change
/// ([`plan_change`]); hosts whose desired state changes get the new desired state (one
/// more revision), the `Quarantine` label set or removed and a cross-replica wake-up;
/// every host gets one audit record (`quarantine`/`release`, or
/// `quarantine_unchanged`/`release_unchanged` saying why nothing changed), in the
/// order of `host_ids`, all inside `tx`. Results are in that order too.
///
/// Set-based (issue 15): a fixed number of statements per [`IDS_PER_STATEMENT`] hosts,
/// so a bulk action on 10,000 hosts makes a few dozen database round trips while it
/// holds the writer lock, not a dozen per host.
///
/// # Errors
/// [`StoreError::NotFound`] naming a host id that does not exist (the caller drops
/// `tx`, so nothing is written); database errors.
#[allow(clippy::too_many_arguments)] // the one path's inputs, all needed
pub(crate) async fn apply_loaded_tx(
    tx: &mut Tx,
    host_ids: &[String],
    before: &HashMap<String, Host>,
    actor: Actor<'_>,
    action: Action,
    p: &ActionParams,
    detail: Option<&str>,
    cause: Option<&AutoCause<'_>>,
) -> Result<Vec<ActionResult>, StoreError> {
    let mut seen = HashSet::with_capacity(host_ids.len());
    let mut planned: Vec<(&Host, ActionChange, Vec<String>)> = Vec::with_capacity(host_ids.len());
    let mut lifts: HashMap<String, Vec<String>> = HashMap::new();
    for id in host_ids {
        if !seen.insert(id.as_str()) {
            continue;
        }
        let host = before
            .get(id)
            .ok_or_else(|| StoreError::NotFound(format!("no host {id:?}")))?;
        let (mut change, fields) = plan_change(action, &host.desired, p);
        // A release of a host whose agent reports `agent` claims of previous enrollments
        // of the same machine (re-enrolled after its server's database was restored from
        // before the enrollment, trial32 HIGH-2) is a new revision naming them, even when
        // the host itself is not desired quarantined: the agent lifts exactly those.
        if action == Action::Release {
            let lifted = liftable_previous_tx(tx, host).await?;
            if !lifted.is_empty() {
                if change == ActionChange::AlreadyReleased {
                    change = ActionChange::Released;
                }
                lifts.insert(host.id.clone(), lifted);
            }
        }
        planned.push((host, change, fields));
    }
    let lifted_of = |id: &str| lifts.get(id).cloned().unwrap_or_default();
    let changed: Vec<String> = planned
        .iter()
        .filter(|(_, c, _)| c.changed())
        .map(|(h, _, _)| h.id.clone())
        .collect();
    let revisions = set_desired_tx(tx, &changed, actor, action, p).await?;
    let protected = protected_labels_tx(tx).await?;
    if action == Action::Release {
        for (host, change, _) in &planned {
            let lifted = lifted_of(&host.id);
            if change.changed() && !lifted.is_empty() {
                sqlx::query("UPDATE hosts SET release_previous = $1 WHERE id = $2")
                    .bind(to_json_list(&lifted))
                    .bind(host.id.clone())
                    .execute(&mut **tx)
                    .await?;
            }
        }
    }
    let mut details = Vec::with_capacity(planned.len());
    let mut results = Vec::with_capacity(planned.len());
    for (host, change, fields) in planned {
        let (text, revision, state) = if change.changed() {
            let revision = *revisions
                .get(&host.id)
                .ok_or_else(|| StoreError::NotFound(format!("no host {:?}", host.id)))?;
            let mut d = format!("revision {revision}");
            let state = match action {
                Action::Quarantine => {
                    if change == ActionChange::Replaced {
                        d.push_str(&format!("; replaced {}", fields.join(", ")));
                    }
                    if !p.allow.is_empty() {
                        d.push_str(&format!("; allow {}", p.allow.join(", ")));
                    }
                    if let Some(e) = p.expires_at {
                        d.push_str(&format!("; expires {}", Timestamp::from_unix_ms_clamped(e)));
                    }
                    HostState::QuarantinePending
                }
                Action::Release => {
                    let lifted = lifted_of(&host.id);
                    if !lifted.is_empty() {
                        d.push_str(&format!(
                            "; also lifts the `agent` claims of previous enrollments of this machine (host id {})",
                            lifted.join(", ")
                        ));
                    }
                    HostState::ReleasePending
                }
            };
            (d, revision, state)
        } else {
            // Nothing changes; the request is still on record, saying why it changed nothing.
            let mut d = format!("{}; revision {} kept", change.as_str(), host.desired.revision);
            if !fields.is_empty() {
                d.push_str(&format!(
                    "; the request asked for other {} (kept as they were; `replace` replaces them)",
                    fields.join(", ")
                ));
            }
            (d, host.desired.revision, host.state)
        };
        let mut text = text;
        if let Some(extra) = detail {
            text.push_str("; ");
            text.push_str(extra);
        }
        if let Some(c) = cause {
            text.push_str("; ");
            text.push_str(&c.detail());
        }
        details.push(text);
        let others = match action {
            Action::Release if change.changed() => other_claims_kept(host, &lifted_of(&host.id)),
            _ => other_claims(host),
        };
        results.push(ActionResult {
            other_claims: others,
            not_enforcing: not_enforcing(host),
            protected: protected_of(host, &protected),
            host_id: host.id.clone(),
            hostname: host.hostname.clone(),
            state,
            revision,
            change,
            fields,
        });
    }
    let records: Vec<NewAudit<'_>> = results
        .iter()
        .zip(&details)
        .map(|(r, d)| NewAudit {
            actor: actor.name,
            actor_token_id: actor.token_id,
            action: match (action, r.change.changed()) {
                (_, true) => action.as_str(),
                (Action::Quarantine, false) => "quarantine_unchanged",
                (Action::Release, false) => "release_unchanged",
            },
            host_id: Some(r.host_id.as_str()),
            comment: Some(p.comment.as_str()),
            result: if r.change.changed() {
                "pending"
            } else {
                r.change.as_str()
            },
            detail: Some(d.as_str()),
            event_id: cause.map(|c| c.event_id),
            rule: cause.map(|c| c.rule),
        })
        .collect();
    append_many(tx, &records, &BTreeMap::new()).await?;
    Ok(results)
}

/// Sets the desired state `action` with `p` asks for on `ids` (one more revision each;
/// state pending, reason and degraded cleared), gives or takes the `Quarantine` label
/// and queues their cross-replica wake-up, a fixed number of statements per
/// [`IDS_PER_STATEMENT`] hosts. Returns each host's new revision, as the update wrote it.
///
/// # Errors
/// [`StoreError::NotFound`] naming an id that names no host; database errors.
async fn set_desired_tx(
    tx: &mut Tx,
    ids: &[String],
    actor: Actor<'_>,
    action: Action,
    p: &ActionParams,
) -> Result<HashMap<String, i64>, StoreError> {
    let now = now_ms();
    let (quarantined, state) = match action {
        Action::Quarantine => (1i64, HostState::QuarantinePending),
        Action::Release => (0i64, HostState::ReleasePending),
    };
    let (allow, message, expires) = match action {
        Action::Quarantine => (to_json_list(&p.allow), p.message.clone(), p.expires_at),
        Action::Release => ("[]".to_string(), None, None),
    };
    let mut revisions = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE hosts SET revision = revision + 1, quarantined = $1, allow_json = $2, message = $3, comment = $4, \
             actor = $5, expires_at = $6, state = $7, state_reason = NULL, state_since = $8, degraded = '[]', \
             actor_token_id = $9, release_previous = '[]' WHERE id IN ({}) RETURNING id, revision",
            marks(10, chunk.len())
        );
        let mut q = sqlx::query(&sql)
            .bind(quarantined)
            .bind(allow.clone())
            .bind(message.clone())
            .bind(p.comment.clone())
            .bind(actor.name.to_string())
            .bind(expires)
            .bind(state.as_str().to_string())
            .bind(now)
            .bind(actor.token_id);
        for id in chunk {
            q = q.bind(id.clone());
        }
        for row in q.fetch_all(&mut **tx).await? {
            revisions.insert(get_str(&row, "id")?, get_i64(&row, "revision")?);
        }
        if let Some(missing) = chunk.iter().find(|id| !revisions.contains_key(*id)) {
            return Err(StoreError::NotFound(format!("no host {missing:?}")));
        }
        super::wake::notify_many_tx(tx, chunk).await?;
        let sql = format!(
            "DELETE FROM host_labels WHERE label = $1 AND host_id IN ({})",
            marks(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(QUARANTINE_LABEL.to_string());
        for id in chunk {
            q = q.bind(id.clone());
        }
        q.execute(&mut **tx).await?;
        if action == Action::Quarantine {
            let values = (0..chunk.len())
                .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("INSERT INTO host_labels (host_id, label) VALUES {values}");
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.clone()).bind(QUARANTINE_LABEL.to_string());
            }
            q.execute(&mut **tx).await?;
        }
    }
    Ok(revisions)
}

/// The sources of the claims other than the agent's own on `host`, as last reported.
/// The protected labels of the fleet as an action's results name them: the automation
/// settings' `protected_labels` and [`cordon_proto::review::PROTECTED_LABEL`].
async fn protected_labels_tx(tx: &mut Tx) -> Result<Vec<String>, StoreError> {
    let row = sqlx::query("SELECT protected_labels FROM auto_settings WHERE id = 1")
        .fetch_optional(&mut **tx)
        .await?;
    let mut labels = match row {
        Some(r) => super::json_list(&super::get_str(&r, "protected_labels")?),
        None => Vec::new(),
    };
    labels.push(cordon_proto::review::PROTECTED_LABEL.to_string());
    Ok(labels)
}

/// The labels of `host` that protect it ([`crate::service::validate::protected_label`]:
/// look-alikes of a protected label count).
fn protected_of(host: &cordon_proto::Host, protected: &[String]) -> Vec<String> {
    host.labels
        .iter()
        .filter(|l| crate::service::validate::protected_label(std::slice::from_ref(*l), protected).is_some())
        .cloned()
        .collect()
}

/// Whether `host`'s agent enforces nothing (it reported `enforce = false` or a backend
/// that blocks nothing): what the action results' `not_enforcing` says.
fn not_enforcing(host: &cordon_proto::Host) -> bool {
    host.state == HostState::NotEnforcing || !host.enforcing
}

fn other_claims(host: &cordon_proto::Host) -> Vec<cordon_proto::ClaimSource> {
    other_claims_kept(host, &[])
}

/// As [`other_claims`], leaving out the previous enrollments' `agent` claims a release
/// lifts (`lifted`: their host ids).
fn other_claims_kept(host: &cordon_proto::Host, lifted: &[String]) -> Vec<cordon_proto::ClaimSource> {
    host.claims
        .iter()
        .filter(|c| !c.is_own_agent_claim(&host.id))
        .filter(|c| {
            !(c.is_previous_enrollment(&host.id)
                && c.owner
                    .as_ref()
                    .is_some_and(|o| lifted.iter().any(|l| l.eq_ignore_ascii_case(o))))
        })
        .map(|c| c.source.clone())
        .collect()
}

/// What a release of `host` lifts besides its own claim
/// ([`cordon_proto::DesiredState::release_previous`]): the host ids of previous
/// enrollments of the same machine whose `agent` claims its agent last reported
/// ([`previous_owners`]), each only while this server does not want that enrollment
/// quarantined — no host has that id (the database was restored from before it, trial32
/// HIGH-2) or that host is not desired quarantined. A previous enrollment still desired
/// quarantined here (a host enrolled again without a restore) keeps its claim: released
/// first as that host, it is lifted by the next release of this one (trial20 HIGH-C).
async fn liftable_previous_tx(tx: &mut Tx, host: &Host) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for owner in previous_owners(host) {
        let row = sqlx::query("SELECT quarantined FROM hosts WHERE LOWER(id) = LOWER($1)")
            .bind(owner.clone())
            .fetch_optional(&mut **tx)
            .await?;
        let wanted = match row {
            Some(r) => get_i64(&r, "quarantined")? != 0,
            None => false,
        };
        if !wanted {
            out.push(owner);
        }
    }
    Ok(out)
}

/// The host ids of previous enrollments of this machine whose `agent` claims host
/// `host`'s agent last reported (sorted, once each). A claim of no known owner is not
/// named (an agent that does not say is taken as the host's own). Pure.
pub fn previous_owners(host: &cordon_proto::Host) -> Vec<String> {
    let ids: BTreeSet<String> = host
        .claims
        .iter()
        .filter(|c| c.is_previous_enrollment(&host.id))
        .filter_map(|c| c.owner.clone())
        .collect();
    ids.into_iter().collect()
}

/// Removes `label` from the host (no-op if it does not carry it).
async fn unset_label_tx(tx: &mut Tx, host_id: &str, label: &str) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM host_labels WHERE host_id = $1 AND label = $2")
        .bind(host_id.to_string())
        .bind(label.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Gives the host `label` (once, even if it already carries it).
async fn set_label_tx(tx: &mut Tx, host_id: &str, label: &str) -> Result<(), StoreError> {
    unset_label_tx(tx, host_id, label).await?;
    sqlx::query("INSERT INTO host_labels (host_id, label) VALUES ($1, $2)")
        .bind(host_id.to_string())
        .bind(label.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The id of the one host `reference` (id or hostname) names.
async fn resolve_one_tx(tx: &mut Tx, reference: &str) -> Result<String, StoreError> {
    let ids = resolve_refs_tx(tx, &[reference.to_string()]).await?;
    ids.first()
        .cloned()
        .ok_or_else(|| StoreError::NotFound(format!("no host {reference:?}")))
}

/// Quarantine or release caused by adding or removing the `Quarantine` label.
async fn label_action_tx(
    tx: &mut Tx,
    host_id: &str,
    actor: Actor<'_>,
    action: Action,
    comment: Option<&str>,
    detail: &str,
) -> Result<bool, StoreError> {
    let p = ActionParams {
        comment: comment.unwrap_or_default().to_string(),
        ..Default::default()
    };
    Ok(apply_tx(tx, host_id, actor, action, &p, Some(detail), None)
        .await?
        .change
        .changed())
}

impl Store {
    /// Quarantines or releases `targets` in one transaction. Unknown hosts fail the whole
    /// request before anything is written. Each result says what changed for its host
    /// ([`plan_change`]); with `p.preview` nothing is written. Also returns each target
    /// host's revision before the action (host id → revision: what a caller sends back
    /// as `if_revisions` after a preview).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] (nothing written) when a host in `p.if_revisions` moved
    /// on (every such host named), or, for a label with `p.if_revisions`, when the
    /// label's hosts are not exactly the reviewed ones (`+added`, `-removed` named);
    /// [`StoreError::NotFound`] (nothing written) for an unknown host, or a label no host
    /// carries (unless `p.preview`: its answer is the empty reviewed set).
    pub async fn act<'a>(
        &self,
        actor: impl Into<Actor<'a>>,
        action: Action,
        targets: &Targets,
        p: &ActionParams,
    ) -> Result<(Vec<ActionResult>, BTreeMap<String, i64>), StoreError> {
        let actor = actor.into();
        let (_guard, mut tx) = self.write_tx().await?;
        let ids = match targets {
            Targets::Hosts(refs) => resolve_refs_tx(&mut tx, refs).await?,
            Targets::Label(label) => ids_with_label_tx(&mut tx, label).await?,
        };
        // A label with a reviewed set: the label's hosts now are exactly the reviewed ones.
        if let (Targets::Label(label), true) = (targets, p.reviewed_set) {
            let now: BTreeSet<&String> = ids.iter().collect();
            let seen: BTreeSet<&String> = p.if_revisions.keys().collect();
            if now != seen {
                let mut diff = Vec::new();
                for id in now.difference(&seen) {
                    diff.push(format!("+{}", hostname_tx(&mut tx, id).await?));
                }
                for id in seen.difference(&now) {
                    diff.push(format!("-{}", hostname_tx(&mut tx, id).await?));
                }
                return Err(StoreError::Conflict(format!(
                    "the hosts with label {label} changed since your review: {}; nothing was done; review again",
                    diff.join(", ")
                )));
            }
        }
        // A label nobody carries is a selection that matched nothing: refused naming
        // the label (a SOAR step with a mistyped label must not read as done). A preview
        // still answers its empty reviewed set (`if_revisions: {}`).
        if let (Targets::Label(label), true, false) = (targets, ids.is_empty(), p.preview) {
            return Err(StoreError::NotFound(format!(
                "no host carries label {label:?}; nothing was done"
            )));
        }
        // Every host concerned, read once (set-based, issue 15).
        let mut wanted = ids.clone();
        wanted.extend(p.if_revisions.keys().filter(|k| !ids.contains(k)).cloned());
        let hosts = load_many_tx(&mut tx, &wanted).await?;
        let mut moved = Vec::new();
        for (id, seen) in &p.if_revisions {
            let host = hosts
                .get(id)
                .ok_or_else(|| StoreError::NotFound(format!("no host {id:?}")))?;
            if host.desired.revision != *seen {
                moved.push(format!(
                    "host {} changed since your view of it (revision {seen}, now {}: {})",
                    host.hostname,
                    host.desired.revision,
                    if host.desired.quarantined {
                        "quarantine asked for"
                    } else {
                        "not quarantined"
                    }
                ));
            }
        }
        if !moved.is_empty() {
            return Err(StoreError::Conflict(format!(
                "{}: nothing was done; look at {} current state and try again",
                moved.join("; "),
                if moved.len() == 1 { "its" } else { "their" }
            )));
        }
        let before: BTreeMap<String, i64> = ids
            .iter()
            .filter_map(|id| hosts.get(id).map(|h| (h.id.clone(), h.desired.revision)))
            .collect();
        let results = apply_loaded_tx(&mut tx, &ids, &hosts, actor, action, p, None, None).await?;
        if p.preview {
            // Dropping the transaction rolls back every write (and, on PostgreSQL, the
            // wake-ups queued in it).
            drop(tx);
        } else {
            tx.commit().await?;
        }
        Ok((results, before))
    }

    /// Re-sends the desired state of each host `refs` names (id or hostname) to its agent
    /// as a new revision, in one transaction: the exceptions, message, expiry, comment and
    /// "asked by" stay as they are; the state goes back to `quarantine_pending` /
    /// `release_pending` until the agent confirms the new revision (never more than is
    /// confirmed), and the agent is woken. Audited per host as `retry` with the caller and
    /// `p.comment`, naming the state it retried. With `p.preview` nothing is written.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown host; [`StoreError::Conflict`] (nothing
    /// written) for a host that moved past the revision in `p.if_revisions`, or that has
    /// nothing to retry ([`Host::retry_refusal`]).
    pub async fn retry<'a>(
        &self,
        actor: impl Into<Actor<'a>>,
        refs: &[String],
        p: &RetryParams,
    ) -> Result<Vec<ActionResult>, StoreError> {
        let actor = actor.into();
        let (_guard, mut tx) = self.write_tx().await?;
        let ids = resolve_refs_tx(&mut tx, refs).await?;
        let protected = protected_labels_tx(&mut tx).await?;
        let mut results = Vec::with_capacity(ids.len());
        for id in &ids {
            let host = load_tx(&mut tx, id)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("no host {id:?}")))?;
            if let Some(seen) = p.if_revisions.get(id) {
                if *seen != host.desired.revision {
                    return Err(StoreError::Conflict(format!(
                        "host {} changed since your view of it (revision {seen}, now {}: {}): nothing was done; \
                         look at its current state and try again",
                        host.hostname,
                        host.desired.revision,
                        host.state.as_str()
                    )));
                }
            }
            if let Some(why) = host.retry_refusal() {
                return Err(StoreError::Conflict(why));
            }
            let pending = if host.desired.quarantined {
                HostState::QuarantinePending
            } else {
                HostState::ReleasePending
            };
            let was = match (&host.state_reason, host.degraded.is_empty()) {
                (_, false) => format!("degraded: {}", host.degraded.join("; ")),
                (Some(r), true) => format!("{}: {r}", host.state.as_str()),
                (None, true) => host.state.as_str().to_string(),
            };
            sqlx::query(
                "UPDATE hosts SET revision = revision + 1, state = $1, state_reason = NULL, state_since = $2, \
                 degraded = '[]' WHERE id = $3",
            )
            .bind(pending.as_str().to_string())
            .bind(now_ms())
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
            super::wake::notify_tx(&mut tx, id).await?;
            let revision = host.desired.revision + 1;
            let detail = format!(
                "revision {} -> {revision}: {} re-sent to the agent (was {was})",
                host.desired.revision,
                if host.desired.quarantined {
                    "quarantine"
                } else {
                    "release"
                },
            );
            append(
                &mut tx,
                &NewAudit {
                    actor: actor.name,
                    actor_token_id: actor.token_id,
                    action: "retry",
                    host_id: Some(id),
                    comment: Some(&p.comment),
                    result: "pending",
                    detail: Some(&detail),
                    event_id: None,
                    rule: None,
                },
            )
            .await?;
            results.push(ActionResult {
                other_claims: other_claims(&host),
                not_enforcing: not_enforcing(&host),
                protected: protected_of(&host, &protected),
                host_id: host.id,
                hostname: host.hostname,
                state: pending,
                revision,
                change: ActionChange::Retried,
                fields: vec![],
            });
        }
        if p.preview {
            drop(tx);
        } else {
            tx.commit().await?;
        }
        Ok(results)
    }

    /// Releases every host whose quarantine expired, one transaction per host, audited
    /// as `actor`. Returns the host ids this call released.
    ///
    /// Exactly once across replicas: the release starts with a conditional update that
    /// only matches while the host is still quarantined with that expiry passed. On
    /// PostgreSQL a second replica's identical update waits for the first to commit,
    /// re-checks the condition (`EvalPlanQual` under READ COMMITTED), matches nothing
    /// and writes nothing; on SQLite the writer lock serialises the two.
    pub async fn release_expired(&self, actor: &str, now: i64) -> Result<Vec<String>, StoreError> {
        let actor = Actor::from(actor);
        let rows =
            sqlx::query("SELECT id FROM hosts WHERE quarantined = 1 AND expires_at IS NOT NULL AND expires_at <= $1")
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
        let mut released = Vec::new();
        for row in &rows {
            let id = super::get_str(row, "id")?;
            let (_guard, mut tx) = self.write_tx().await?;
            // Claim the expiry: only one transaction anywhere can flip this row.
            let claimed = sqlx::query(
                "UPDATE hosts SET expires_at = NULL WHERE id = $1 AND quarantined = 1 AND expires_at IS NOT NULL AND expires_at <= $2",
            )
            .bind(id.clone())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() != 1 {
                // Released, re-quarantined or already expired by another replica.
                continue;
            }
            let p = ActionParams {
                comment: "quarantine expired".into(),
                ..Default::default()
            };
            apply_tx(
                &mut tx,
                &id,
                actor,
                Action::Release,
                &p,
                Some("expires_at passed"),
                None,
            )
            .await?;
            tx.commit().await?;
            released.push(id);
        }
        Ok(released)
    }

    /// Adds and removes labels of one host. Adding `Quarantine` quarantines and removing
    /// it releases (with `comment`); `quarantine` carries the remaining parameters.
    /// Returns the host id and whether desired state changed.
    pub async fn change_labels<'a>(
        &self,
        actor: impl Into<Actor<'a>>,
        reference: &str,
        add: &[String],
        remove: &[String],
        comment: Option<&str>,
    ) -> Result<(String, bool), StoreError> {
        let actor = actor.into();
        let (_guard, mut tx) = self.write_tx().await?;
        let id = resolve_one_tx(&mut tx, reference).await?;
        let mut changed_desired = false;
        let mut plain_added = Vec::new();
        let mut plain_removed = Vec::new();
        for label in add {
            if label == QUARANTINE_LABEL {
                changed_desired |= label_action_tx(
                    &mut tx,
                    &id,
                    actor,
                    Action::Quarantine,
                    comment,
                    "label Quarantine added",
                )
                .await?;
            } else {
                set_label_tx(&mut tx, &id, label).await?;
                plain_added.push(label.clone());
            }
        }
        for label in remove {
            if label == QUARANTINE_LABEL {
                changed_desired |= label_action_tx(
                    &mut tx,
                    &id,
                    actor,
                    Action::Release,
                    comment,
                    "label Quarantine removed",
                )
                .await?;
            } else {
                unset_label_tx(&mut tx, &id, label).await?;
                plain_removed.push(label.clone());
            }
        }
        let count = super::get_i64(
            &sqlx::query("SELECT COUNT(*) AS n FROM host_labels WHERE host_id = $1")
                .bind(id.clone())
                .fetch_one(&mut *tx)
                .await?,
            "n",
        )?;
        if count > crate::limits::MAX_LABELS_PER_HOST as i64 {
            // Dropping the transaction rolls everything back.
            return Err(StoreError::Invalid(format!(
                "host would carry {count} labels; at most {} per host",
                crate::limits::MAX_LABELS_PER_HOST
            )));
        }
        if !plain_added.is_empty() || !plain_removed.is_empty() {
            let detail = format!(
                "added [{}] removed [{}]",
                plain_added.join(", "),
                plain_removed.join(", ")
            );
            append(
                &mut tx,
                &NewAudit {
                    actor: actor.name,
                    actor_token_id: actor.token_id,
                    action: "label",
                    host_id: Some(&id),
                    comment,
                    result: "ok",
                    detail: Some(&detail),
                    event_id: None,
                    rule: None,
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok((id, changed_desired))
    }

    /// Revokes a host: its certificate is refused from now on (except to fetch and confirm
    /// a release ordered before the revocation).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the host is desired quarantined, or a release is not
    /// yet confirmed, and `force` is false: revoking it would leave it quarantined with no
    /// way to release it remotely.
    pub async fn revoke<'a>(
        &self,
        actor: impl Into<Actor<'a>>,
        reference: &str,
        comment: Option<&str>,
        force: bool,
    ) -> Result<String, StoreError> {
        let actor = actor.into();
        let (_guard, mut tx) = self.write_tx().await?;
        let id = resolve_one_tx(&mut tx, reference).await?;
        let host = super::hosts::load_tx(&mut tx, &id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no host {reference:?}")))?;
        let left_behind = if host.desired.quarantined {
            Some(format!(
                "{} is quarantined (state {}): release it first and wait for `normal`, or revoke with --force, \
                 which leaves its quarantine in force with no way to release it remotely \
                 (then only `cordon release --force` on the host itself)",
                host.hostname,
                host.state.as_str()
            ))
        } else if host.state != cordon_proto::HostState::Normal {
            Some(format!(
                "{} has a release that is not confirmed yet (state {}): wait for `normal`, or revoke with \
                 --force (the agent can still fetch and confirm that release, nothing else)",
                host.hostname,
                host.state.as_str()
            ))
        } else {
            None
        };
        if let (Some(why), false) = (&left_behind, force) {
            return Err(StoreError::Conflict(why.clone()));
        }
        sqlx::query("UPDATE hosts SET revoked = 1 WHERE id = $1")
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        // Closes the host's long-poll on every replica.
        super::wake::notify_tx(&mut tx, &id).await?;
        append(
            &mut tx,
            &NewAudit {
                actor: actor.name,
                actor_token_id: actor.token_id,
                action: "revoke",
                host_id: Some(&id),
                comment,
                result: "ok",
                detail: left_behind.as_deref().map(|w| format!("forced: {w}")).as_deref(),
                event_id: None,
                rule: None,
            },
        )
        .await?;
        // Its pending approvals can never quarantine it now: superseded (each audited), so
        // neither the approvals list nor the console's badge keeps asking for a decision.
        super::automation::supersede_host_approvals_tx(&mut tx, &id, actor, "host revoked", now_ms()).await?;
        tx.commit().await?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quarantined(allow: &[&str], message: Option<&str>, expires: Option<i64>) -> DesiredState {
        DesiredState {
            revision: 3,
            quarantined: true,
            allow: allow.iter().map(|s| s.to_string()).collect(),
            message: message.map(str::to_string),
            expires_at: expires.map(Timestamp::from_unix_ms_clamped),
            ..Default::default()
        }
    }

    fn params(allow: &[&str], message: Option<&str>, expires: Option<i64>, replace: bool) -> ActionParams {
        ActionParams {
            comment: "why".into(),
            allow: allow.iter().map(|s| s.to_string()).collect(),
            message: message.map(str::to_string),
            expires_at: expires,
            replace,
            ..Default::default()
        }
    }

    /// Re-quarantine never silently replaces: the fault kind is a second quarantine
    /// (one host, a selection, a label) overwriting the exceptions, message or expiry
    /// of one already in force without saying so.
    #[test]
    fn requarantine_keeps_unless_replace_and_says_what() {
        let t = 4_000_000_000_000;
        let d = quarantined(
            &["tcp://192.0.2.9:443", "udp://192.0.2.10:514"],
            Some("call 555"),
            Some(t),
        );
        // Same parameters (exceptions in another order): unchanged.
        let p = params(
            &["udp://192.0.2.10:514", "tcp://192.0.2.9:443"],
            Some("call 555"),
            Some(t),
            false,
        );
        assert_eq!(
            plan_change(Action::Quarantine, &d, &p),
            (ActionChange::Unchanged, vec![])
        );
        // Different exceptions and expiry, no replace: kept, naming what differed.
        let p = params(&[], Some("call 555"), Some(t + 1), false);
        assert_eq!(
            plan_change(Action::Quarantine, &d, &p),
            (
                ActionChange::AlreadyQuarantined,
                vec!["allow".to_string(), "expires_at".to_string()]
            )
        );
        let p = params(&[], None, Some(t), true);
        assert_eq!(
            plan_change(Action::Quarantine, &d, &p),
            (ActionChange::Replaced, vec!["allow".to_string(), "message".to_string()])
        );
        let normal = DesiredState::default();
        assert_eq!(plan_change(Action::Quarantine, &normal, &p).0, ActionChange::New);
        assert_eq!(
            plan_change(Action::Release, &normal, &p).0,
            ActionChange::AlreadyReleased
        );
        assert_eq!(plan_change(Action::Release, &d, &p).0, ActionChange::Released);
    }
}
