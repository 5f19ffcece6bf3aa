//! One-time enrollment tokens and the enrollment of a new host.

use cordon_proto::{EnrollTokenCreated, HostState};

use super::audit::{append, Actor, NewAudit};
use super::{get_i64, get_str, json_list, to_json_list, Store, StoreError};
use crate::secret::{hash_token, new_token};
use crate::timefmt::{now_ms, to_rfc3339, Timestamp};

/// What an enrolling agent says about itself.
#[derive(Debug, Clone, Default)]
pub struct NewHost {
    /// Host id the server assigned.
    pub id: String,
    /// Hostname as the agent reported it.
    pub hostname: String,
    /// Operating system (free text).
    pub os: Option<String>,
    /// IP addresses, validated.
    pub addresses: Vec<String>,
    /// Agent binary version.
    pub agent_version: Option<String>,
}

impl Store {
    /// Creates a one-time enrollment token giving `labels`, valid `ttl_secs` seconds; audited as `who`.
    pub async fn create_enroll_token<'a>(
        &self,
        who: impl Into<Actor<'a>>,
        labels: &[String],
        ttl_secs: i64,
    ) -> Result<EnrollTokenCreated, StoreError> {
        let who = who.into();
        let token = new_token("enroll").map_err(StoreError::Random)?;
        let now = now_ms();
        let expires = now.saturating_add(ttl_secs.saturating_mul(1000));
        let (_guard, mut tx) = self.write_tx().await?;
        sqlx::query("INSERT INTO enroll_tokens (hash, labels, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(hash_token(&token))
            .bind(to_json_list(labels))
            .bind(now)
            .bind(expires)
            .execute(&mut *tx)
            .await?;
        let detail = format!("labels [{}], expires {}", labels.join(", "), to_rfc3339(expires));
        append(
            &mut tx,
            &NewAudit {
                actor: who.name,
                actor_token_id: who.token_id,
                action: "enroll_token_create",
                result: "ok",
                detail: Some(&detail),
                event_id: None,
                rule: None,
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(EnrollTokenCreated {
            token,
            labels: labels.to_vec(),
            expires_at: Timestamp::from_unix_ms_clamped(expires),
        })
    }

    /// Checks that `token` is valid and unused (without using it up).
    pub async fn check_enroll_token(&self, token: &str) -> Result<(), StoreError> {
        let row = sqlx::query("SELECT expires_at, used_at FROM enroll_tokens WHERE hash = $1")
            .bind(hash_token(token))
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Err(StoreError::Invalid("unknown enrollment token".into())),
            Some(r) if super::get_opt_i64(&r, "used_at")?.is_some() => {
                Err(StoreError::Invalid("enrollment token was already used".into()))
            }
            Some(r) if get_i64(&r, "expires_at")? <= now_ms() => {
                Err(StoreError::Invalid("enrollment token expired".into()))
            }
            Some(_) => Ok(()),
        }
    }

    /// Uses up `token` and creates the host, in one transaction.
    pub async fn enroll(&self, token: &str, host: &NewHost) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let (_guard, mut tx) = self.write_tx().await?;
        let used = sqlx::query(
            "UPDATE enroll_tokens SET used_at = $1, host_id = $2 WHERE hash = $3 AND used_at IS NULL AND expires_at > $4",
        )
        .bind(now)
        .bind(host.id.clone())
        .bind(hash_token(token))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if used.rows_affected() != 1 {
            return Err(StoreError::Invalid(
                "enrollment token is unknown, used or expired".into(),
            ));
        }
        let row = sqlx::query("SELECT labels FROM enroll_tokens WHERE hash = $1")
            .bind(hash_token(token))
            .fetch_one(&mut *tx)
            .await?;
        let labels = json_list(&get_str(&row, "labels")?);
        sqlx::query(
            "INSERT INTO hosts (id, hostname, os, addresses, agent_version, enrolled_at, last_seen, revoked, revision, \
             quarantined, allow_json, state, state_since, applied_revision, hostname_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 1, 0, '[]', $8, $9, 0, $10)",
        )
        .bind(host.id.clone())
        .bind(host.hostname.clone())
        .bind(host.os.clone())
        .bind(to_json_list(&host.addresses))
        .bind(host.agent_version.clone())
        .bind(now)
        .bind(now)
        .bind(HostState::Normal.as_str().to_string())
        .bind(now)
        .bind(crate::service::validate::hostname_key(&host.hostname))
        .execute(&mut *tx)
        .await?;
        for label in &labels {
            sqlx::query("INSERT INTO host_labels (host_id, label) VALUES ($1, $2)")
                .bind(host.id.clone())
                .bind(label.clone())
                .execute(&mut *tx)
                .await?;
        }
        super::hosts::set_addresses_tx(&mut tx, &host.id, &host.addresses).await?;
        // Accepted, but said: another host with this name or one of these addresses
        // (both are flagged when read; automation will not act on the shared name).
        let mut detail = format!("hostname {:?}, labels [{}]", host.hostname, labels.join(", "));
        let same_name = sqlx::query("SELECT id FROM hosts WHERE revoked = 0 AND id <> $1 AND hostname_key = $2")
            .bind(host.id.clone())
            .bind(crate::service::validate::hostname_key(&host.hostname))
            .fetch_all(&mut *tx)
            .await?;
        if !same_name.is_empty() {
            let ids = same_name
                .iter()
                .map(|r| get_str(r, "id"))
                .collect::<Result<Vec<_>, _>>()?;
            detail.push_str(&format!("; duplicate hostname: also host {}", ids.join(", ")));
        }
        let claimed = sqlx::query(
            "SELECT a.address AS address, a.host_id AS host_id FROM host_addresses a JOIN hosts h ON h.id = a.host_id \
             WHERE h.revoked = 0 AND a.host_id <> $1 AND a.address IN (SELECT address FROM host_addresses WHERE host_id = $2) \
             ORDER BY a.address",
        )
        .bind(host.id.clone())
        .bind(host.id.clone())
        .fetch_all(&mut *tx)
        .await?;
        for r in &claimed {
            detail.push_str(&format!(
                "; address {} also claimed by host {}",
                get_str(r, "address")?,
                get_str(r, "host_id")?
            ));
        }
        append(
            &mut tx,
            &NewAudit {
                actor: "enrollment",
                action: "enroll",
                host_id: Some(&host.id),
                result: "ok",
                detail: Some(&detail),
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(labels)
    }
}
