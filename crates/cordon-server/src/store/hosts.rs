//! Reading hosts.

use std::collections::HashMap;

use cordon_proto::{DesiredState, Host, HostState};
use sqlx::any::AnyRow;

use super::{get_i64, get_opt_i64, get_opt_str, get_str, json_list, Store, StoreError, Tx};
use crate::timefmt::to_rfc3339;

pub(crate) const HOST_COLUMNS: &str = "id, hostname, os, addresses, agent_version, enrolled_at, last_seen, revoked, \
     revision, quarantined, allow_json, message, comment, actor, expires_at, state, state_reason, state_since, \
     applied_revision, digest, backend";

#[derive(Debug, Clone, Default)]
pub struct HostFilter {
    pub label: Option<String>,
    pub state: Option<HostState>,
    /// Case-insensitive substring of id, hostname or an address.
    pub text: Option<String>,
    pub include_revoked: bool,
}

pub(crate) fn host_from_row(row: &AnyRow, labels: Vec<String>) -> Result<Host, StoreError> {
    let state_text = get_str(row, "state")?;
    let state = HostState::parse(&state_text)
        .ok_or_else(|| StoreError::Other(format!("unknown host state {state_text:?} in database")))?;
    Ok(Host {
        id: get_str(row, "id")?,
        hostname: get_str(row, "hostname")?,
        os: get_opt_str(row, "os")?,
        addresses: json_list(&get_str(row, "addresses")?),
        labels,
        agent_version: get_opt_str(row, "agent_version")?,
        last_seen: get_opt_i64(row, "last_seen")?.map(to_rfc3339),
        enrolled_at: to_rfc3339(get_i64(row, "enrolled_at")?),
        desired: DesiredState {
            revision: get_i64(row, "revision")?,
            quarantined: get_i64(row, "quarantined")? != 0,
            allow: json_list(&get_str(row, "allow_json")?),
            message: get_opt_str(row, "message")?,
            comment: get_opt_str(row, "comment")?,
            actor: get_opt_str(row, "actor")?,
            expires_at: get_opt_i64(row, "expires_at")?.map(to_rfc3339),
        },
        state,
        state_reason: get_opt_str(row, "state_reason")?,
        state_since: to_rfc3339(get_i64(row, "state_since")?),
        applied_revision: get_i64(row, "applied_revision")?,
        digest: get_opt_str(row, "digest")?,
        backend: get_opt_str(row, "backend")?,
        revoked: get_i64(row, "revoked")? != 0,
    })
}

async fn labels_of_tx(tx: &mut Tx, id: &str) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("SELECT label FROM host_labels WHERE host_id = $1 ORDER BY label")
        .bind(id.to_string())
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(|r| get_str(r, "label")).collect()
}

/// Loads one host by id inside a transaction.
pub(crate) async fn load_tx(tx: &mut Tx, id: &str) -> Result<Option<Host>, StoreError> {
    let sql = format!("SELECT {HOST_COLUMNS} FROM hosts WHERE id = $1");
    let Some(row) = sqlx::query(&sql).bind(id.to_string()).fetch_optional(&mut **tx).await? else {
        return Ok(None);
    };
    let labels = labels_of_tx(tx, id).await?;
    Ok(Some(host_from_row(&row, labels)?))
}

/// Resolves references (id, or a hostname that names exactly one host) to host ids,
/// failing on the first unknown or ambiguous one. Revoked hosts are not targets.
pub(crate) async fn resolve_refs_tx(tx: &mut Tx, refs: &[String]) -> Result<Vec<String>, StoreError> {
    let mut ids: Vec<String> = Vec::with_capacity(refs.len());
    for r in refs {
        let r = r.trim();
        let rows = sqlx::query("SELECT id, revoked FROM hosts WHERE id = $1 OR hostname = $2")
            .bind(r.to_string())
            .bind(r.to_string())
            .fetch_all(&mut **tx)
            .await?;
        let exact: Vec<&AnyRow> = rows
            .iter()
            .filter(|row| get_str(row, "id").ok().as_deref() == Some(r))
            .collect();
        let row = match (exact.first(), rows.len()) {
            (Some(row), _) => *row,
            (None, 1) => &rows[0],
            (None, 0) => return Err(StoreError::NotFound(format!("no host {r:?}"))),
            (None, n) => {
                return Err(StoreError::Conflict(format!(
                    "{n} hosts are named {r:?}; use the host id"
                )))
            }
        };
        if get_i64(row, "revoked")? != 0 {
            return Err(StoreError::Conflict(format!("host {r:?} is revoked")));
        }
        let id = get_str(row, "id")?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

pub(crate) async fn ids_with_label_tx(tx: &mut Tx, label: &str) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "SELECT h.id AS id FROM hosts h JOIN host_labels l ON l.host_id = h.id WHERE l.label = $1 AND h.revoked = 0 ORDER BY h.id",
    )
    .bind(label.to_string())
    .fetch_all(&mut **tx)
    .await?;
    rows.iter().map(|r| get_str(r, "id")).collect()
}

impl Store {
    /// One host by id or unique hostname.
    pub async fn host(&self, reference: &str) -> Result<Host, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ids = resolve_any_tx(&mut tx, reference).await?;
        let host = load_tx(&mut tx, &ids)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no host {reference:?}")))?;
        tx.commit().await?;
        Ok(host)
    }

    /// Host id → hostname of every host, revoked ones included (for naming hosts in
    /// audit exports and lists).
    pub async fn hostnames(&self) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let rows = sqlx::query("SELECT id, hostname FROM hosts")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((super::get_str(r, "id")?, super::get_str(r, "hostname")?)))
            .collect()
    }

    /// Hosts matching `f`, ordered by hostname.
    pub async fn hosts(&self, f: &HostFilter) -> Result<Vec<Host>, StoreError> {
        let sql = format!("SELECT {HOST_COLUMNS} FROM hosts ORDER BY hostname, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        let label_rows = sqlx::query("SELECT host_id, label FROM host_labels ORDER BY label")
            .fetch_all(&self.pool)
            .await?;
        let mut labels: HashMap<String, Vec<String>> = HashMap::new();
        for r in &label_rows {
            labels
                .entry(get_str(r, "host_id")?)
                .or_default()
                .push(get_str(r, "label")?);
        }
        let text = f.text.as_ref().map(|t| t.to_lowercase());
        let mut out = Vec::new();
        for row in &rows {
            let id = get_str(row, "id")?;
            let host = host_from_row(row, labels.remove(&id).unwrap_or_default())?;
            if host.revoked && !f.include_revoked {
                continue;
            }
            if let Some(l) = &f.label {
                if !host.labels.iter().any(|x| x == l) {
                    continue;
                }
            }
            if let Some(s) = f.state {
                if host.state != s {
                    continue;
                }
            }
            if let Some(t) = &text {
                let hit = host.id.to_lowercase().contains(t)
                    || host.hostname.to_lowercase().contains(t)
                    || host.addresses.iter().any(|a| a.to_lowercase().contains(t));
                if !hit {
                    continue;
                }
            }
            out.push(host);
        }
        Ok(out)
    }

    /// Whether `id` is enrolled and not revoked (checked on every agent request).
    pub async fn host_active(&self, id: &str) -> Result<Option<bool>, StoreError> {
        let row = sqlx::query("SELECT revoked, quarantined, revision, applied_revision FROM hosts WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let revoked = get_i64(&r, "revoked")? != 0;
                // A release ordered before the revocation still reaches the agent: until it
                // confirmed that release, the revoked host may fetch it and report.
                let release_unconfirmed =
                    get_i64(&r, "quarantined")? == 0 && get_i64(&r, "applied_revision")? < get_i64(&r, "revision")?;
                Ok(Some(!revoked || release_unconfirmed))
            }
        }
    }

    /// The desired state of host `id` (agent sync), `None` if unknown.
    pub async fn desired(&self, id: &str) -> Result<Option<(DesiredState, bool)>, StoreError> {
        let sql = format!("SELECT {HOST_COLUMNS} FROM hosts WHERE id = $1");
        let Some(row) = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let host = host_from_row(&row, vec![])?;
        Ok(Some((host.desired, host.revoked)))
    }
}

/// Like [`resolve_refs_tx`] for a single reference, but also finds revoked hosts.
async fn resolve_any_tx(tx: &mut Tx, r: &str) -> Result<String, StoreError> {
    let rows = sqlx::query("SELECT id FROM hosts WHERE id = $1 OR hostname = $2")
        .bind(r.to_string())
        .bind(r.to_string())
        .fetch_all(&mut **tx)
        .await?;
    let ids: Vec<String> = rows.iter().map(|row| get_str(row, "id")).collect::<Result<_, _>>()?;
    if ids.iter().any(|i| i == r) {
        return Ok(r.to_string());
    }
    match ids.len() {
        0 => Err(StoreError::NotFound(format!("no host {r:?}"))),
        1 => Ok(ids[0].clone()),
        n => Err(StoreError::Conflict(format!(
            "{n} hosts are named {r:?}; use the host id"
        ))),
    }
}
