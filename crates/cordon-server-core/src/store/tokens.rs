//! API bearer tokens (stored hashed).

#![deny(missing_docs)]

use cordon_proto::{Role, TokenCreated, TokenInfo};

use super::audit::{append, Actor, NewAudit};
use super::{get_i64, get_str, OnDuplicate, Store, StoreError};
use crate::secret::{hash_token, new_token};
use crate::timefmt::{now_ms, Timestamp};

/// Who a valid bearer token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's id (`api_tokens.id`): the identity audit records name.
    pub token_id: i64,
    /// The token's display name (normalised, see `service::validate::token_name`).
    pub name: String,
    /// What the token may do.
    pub role: Role,
}

impl Store {
    /// Brings the comparison keys of tokens made before names were Unicode-normalised
    /// up to date (at start): a token whose key under [`token_name_key`] differs is
    /// re-keyed; one that now collides with another token's name is kept but flagged
    /// `duplicate name` (its key made distinct with its id; the token keeping the name
    /// is flagged too, so both are marked), one that now reads as a reserved name
    /// (look-alikes included, `reserved_token_prefix`) is flagged `reserved name`, and
    /// one the name rules now refuse otherwise (characters outside letters, digits and
    /// ` -_.@:`, mixed scripts) `invalid name` (the server warns about flagged tokens at
    /// start; the tokens keep working and audit records name them by id).
    ///
    /// [`token_name_key`]: crate::service::validate::token_name_key
    pub(crate) async fn renormalise_token_names(&self) -> Result<(), StoreError> {
        use crate::service::validate::{reserved_token_prefix, token_name, token_name_key};
        let rows = sqlx::query("SELECT id, name, name_key, name_flag FROM api_tokens ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let mut changes = Vec::new();
        for r in &rows {
            let (id, name) = (get_i64(r, "id")?, get_str(r, "name")?);
            let stored = super::get_opt_str(r, "name_key")?.unwrap_or_default();
            let flag = super::get_opt_str(r, "name_flag")?;
            let key = token_name_key(&name);
            // A name that reads as a reserved actor, or that today's rules refuse
            // (look-alike characters, mixed scripts), is flagged; the token keeps working.
            let bad = match flag {
                Some(_) => None,
                None if reserved_token_prefix(&name).is_some() => Some("reserved name"),
                None if token_name(&name).is_err() => Some("invalid name"),
                None => None,
            };
            if (stored != key && flag.is_none()) || bad.is_some() {
                changes.push((id, key, bad));
            }
        }
        let (_guard, mut tx) = self.write_tx().await?;
        for (id, key, bad) in changes {
            let other = sqlx::query("SELECT id FROM api_tokens WHERE name_key = $1 AND id <> $2")
                .bind(key.clone())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| get_i64(&r, "id"))
                .transpose()?;
            // The older token keeps the name (its key); both are flagged.
            let taken = match other {
                Some(o) if o < id => {
                    sqlx::query(
                        "UPDATE api_tokens SET name_flag = 'duplicate name' WHERE id = $1 AND name_flag IS NULL",
                    )
                    .bind(o)
                    .execute(&mut *tx)
                    .await?;
                    true
                }
                Some(o) => {
                    sqlx::query(
                        "UPDATE api_tokens SET name_key = name_key || '#' || CAST(id AS TEXT), \
                         name_flag = 'duplicate name' WHERE id = $1",
                    )
                    .bind(o)
                    .execute(&mut *tx)
                    .await?;
                    false
                }
                None => false,
            };
            let (key, flag) = match (taken, bad) {
                (true, _) => (format!("{key}#{id}"), Some("duplicate name")),
                (false, bad) => (key, bad),
            };
            sqlx::query("UPDATE api_tokens SET name_key = $1, name_flag = COALESCE($2, name_flag) WHERE id = $3")
                .bind(key)
                .bind(flag.map(str::to_string))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        // Duplicates flagged by an earlier release marked only the newer token: the one
        // keeping the name is flagged too (a name two tokens share identifies neither).
        sqlx::query(
            "UPDATE api_tokens SET name_flag = 'duplicate name' WHERE name_flag IS NULL AND EXISTS \
             (SELECT 1 FROM api_tokens o WHERE o.id <> api_tokens.id AND o.name_flag = 'duplicate name' \
              AND o.name_key = api_tokens.name_key || '#' || CAST(o.id AS TEXT))",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Re-keys and flags token names as the server does at start (see `Store::connect`), on demand for tests.
    ///
    /// # Errors
    /// Database errors.
    pub async fn renormalise_token_names_for_test(&self) -> Result<(), StoreError> {
        self.renormalise_token_names().await
    }

    /// Creates a token; the clear text is returned once and never stored.
    pub async fn create_api_token<'a>(
        &self,
        who: impl Into<Actor<'a>>,
        name: &str,
        role: Role,
    ) -> Result<TokenCreated, StoreError> {
        let who = who.into();
        let token = new_token("cordon").map_err(StoreError::Random)?;
        let key = crate::service::validate::token_name_key(name);
        let (_guard, mut tx) = self.write_tx().await?;
        // Token names are unique trimmed and case-insensitively (`name_key`, unique index):
        // checked first for a clear message, the index catches a concurrent replica. Both
        // are 409 with one text (trial25 F11: the index path said 409 "already exists",
        // the check 400 "is taken"): a unique conflict, as everywhere in the API.
        let taken_by = |who: String| {
            StoreError::Conflict(format!(
                "token name {name:?} is taken: {who} (names are compared trimmed, case-insensitively and by \
                 look-alike characters — their Unicode confusable skeleton, so `a1ice` reads as `alice` and Greek \
                 `ΤΟΜ` as `TOM` —, revoked tokens included); choose another name"
            ))
        };
        let taken = sqlx::query("SELECT id, name FROM api_tokens WHERE name_key = $1")
            .bind(key.clone())
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = taken {
            return Err(taken_by(format!(
                "token {} is named {:?}",
                get_i64(&row, "id")?,
                get_str(&row, "name")?
            )));
        }
        sqlx::query(
            "INSERT INTO api_tokens (name, name_key, role, hash, created_at, revoked) VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(name.to_string())
        .bind(key)
        .bind(role.as_str().to_string())
        .bind(hash_token(&token))
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .on_duplicate(|| format!("a token named {name:?}"))
        .map_err(|e| match e {
            StoreError::Duplicate { source, .. } => {
                // The database's words stay in the log; the caller gets the check's text.
                tracing::info!(error = %source, "token name taken by a concurrent create");
                taken_by("another request created a token under it at the same time".into())
            }
            other => other,
        })?;
        let row = sqlx::query("SELECT id FROM api_tokens WHERE hash = $1")
            .bind(hash_token(&token))
            .fetch_one(&mut *tx)
            .await?;
        let id = get_i64(&row, "id")?;
        if let Some(keys) = self.keys.get() {
            sqlx::query("UPDATE api_tokens SET identity_mac = $1 WHERE id = $2")
                .bind(identity_mac(&keys.mark, id, name, role.as_str()))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let detail = creation_detail(id, name, role.as_str());
        append(
            &mut tx,
            &NewAudit {
                actor: who.name,
                actor_token_id: who.token_id,
                action: "token_create",
                result: "ok",
                detail: Some(&detail),
                event_id: None,
                rule: None,
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(TokenCreated {
            id,
            name: name.to_string(),
            role,
            token,
        })
    }

    /// Whether an API token (revoked ones included: tokens are never deleted) has id `id`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn api_token_exists(&self, id: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT id FROM api_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Every API token, oldest first (revoked ones too), with its `name_flag`.
    ///
    /// # Errors
    /// Database errors; `Corrupt` for a stored role this version does not know.
    pub async fn api_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let rows = sqlx::query("SELECT id, name, name_flag, role, created_at, revoked FROM api_tokens ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let role_text = get_str(r, "role")?;
                Ok(TokenInfo {
                    id: get_i64(r, "id")?,
                    name: get_str(r, "name")?,
                    role: Role::parse(&role_text).ok_or_else(|| StoreError::Corrupt {
                        what: format!("token role {role_text:?}"),
                        source: None,
                    })?,
                    created_at: Timestamp::from_unix_ms_clamped(get_i64(r, "created_at")?),
                    revoked: get_i64(r, "revoked")? != 0,
                    name_flag: super::get_opt_str(r, "name_flag")?,
                })
            })
            .collect()
    }

    /// Revokes token `id`, audited (`token_revoke`) as done by `who`, in one
    /// transaction.
    ///
    /// # Errors
    /// `NotFound` for an unknown id; database errors.
    pub async fn revoke_api_token<'a>(&self, who: impl Into<Actor<'a>>, id: i64) -> Result<(), StoreError> {
        let who = who.into();
        let (_guard, mut tx) = self.write_tx().await?;
        let n = sqlx::query("UPDATE api_tokens SET revoked = 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if n.rows_affected() != 1 {
            return Err(StoreError::NotFound(format!("no API token {id}")));
        }
        // Console sessions opened with this token end with it.
        sqlx::query("DELETE FROM console_sessions WHERE token_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let detail = format!("token {id}");
        append(
            &mut tx,
            &NewAudit {
                actor: who.name,
                actor_token_id: who.token_id,
                action: "token_revoke",
                result: "ok",
                detail: Some(&detail),
                event_id: None,
                rule: None,
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The caller a bearer token belongs to, if it is valid and not revoked, its name
    /// and role checked as the server bound them (`Store::check_token_identity`: a name or role edited in the database is refused).
    ///
    /// # Errors
    /// [`StoreError::AuditTampered`] for a token whose name or role was edited in the
    /// database; database errors.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Caller>, StoreError> {
        let row = sqlx::query("SELECT id, name, role, identity_mac FROM api_tokens WHERE hash = $1 AND revoked = 0")
            .bind(hash_token(token))
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let role_text = get_str(&r, "role")?;
        let Some(role) = Role::parse(&role_text) else {
            return Ok(None);
        };
        let caller = Caller {
            token_id: get_i64(&r, "id")?,
            name: get_str(&r, "name")?,
            role,
        };
        self.check_token_identity(&caller, super::get_opt_str(&r, "identity_mac")?.as_deref())
            .await?;
        Ok(Some(caller))
    }

    /// Checks that `caller` — an API token's id, name and role as the database holds
    /// them — is what the server bound (trial33 MED-B: a name edited in the database,
    /// `rule:wazuh-critical`, `system` or another person's, made the server write
    /// genuine, marked records under it; api_tokens is neither chained nor marked).
    /// `mac` is the row's `identity_mac`, the HMAC of id, role and name under the
    /// deployment's audit mark key, written when the token is created. A row without
    /// one (made before this check, or while the server had no CA key) is bound at its
    /// first use when its creation record in the audit log (`token_create`, detail
    /// `token ID "NAME" role ROLE`) says the same — or is no longer in the log and a
    /// retention record says records were archived (logged) — and refused when the
    /// creation record says otherwise or is missing from a log never cut.
    /// Without the CA key (no mark key) nothing is checked.
    ///
    /// # Errors
    /// [`StoreError::AuditTampered`] (503, nothing done) naming the token, what the row
    /// says and that it was edited in the database; database errors.
    pub(crate) async fn check_token_identity(&self, caller: &Caller, mac: Option<&str>) -> Result<(), StoreError> {
        let Some(keys) = self.keys.get() else {
            return Ok(());
        };
        let (id, name, role) = (caller.token_id, caller.name.as_str(), caller.role.as_str());
        let edited = |what: String| {
            StoreError::AuditTampered(format!(
                "API token {id} is named {name:?} with role {role} in the database, but {what}: its row \
                 (table api_tokens) was edited in the database, and the server does not act or write audit \
                 records under an identity it did not give (put the name and role back as its token_create \
                 record in the audit log says, or revoke it and create a new token)"
            ))
        };
        let want = identity_mac(&keys.mark, id, name, role);
        match mac {
            Some(m)
                if hex::decode(m).is_ok_and(|tag| {
                    ring::hmac::verify(&keys.mark, &identity_message(id, name, role), &tag).is_ok()
                }) =>
            {
                Ok(())
            }
            Some(_) => Err(edited("the server's mark on the row does not fit them".into())),
            None => {
                let pattern = format!("token {id} %");
                let records = sqlx::query("SELECT detail FROM audit WHERE action = 'token_create' AND detail LIKE $1")
                    .bind(pattern)
                    .fetch_all(&self.pool)
                    .await?;
                let expected = creation_detail(id, name, role);
                let details = records
                    .iter()
                    .map(|r| super::get_opt_str(r, "detail"))
                    .collect::<Result<Vec<_>, _>>()?;
                if !details.is_empty() && !details.iter().any(|d| d.as_deref() == Some(expected.as_str())) {
                    let said = details.into_iter().flatten().collect::<Vec<_>>().join("; ");
                    return Err(edited(format!("its creation record in the audit log says {said:?}")));
                }
                if details.is_empty() {
                    // Only retention removes a creation record from the log; without a
                    // retention record the row was added in the database.
                    let cut = sqlx::query("SELECT id FROM audit WHERE action = $1 LIMIT 1")
                        .bind(cordon_proto::audit_chain::RETENTION_ACTION)
                        .fetch_optional(&self.pool)
                        .await?;
                    if cut.is_none() {
                        return Err(edited(
                            "no token_create record in the audit log names it, and no retention removed any record"
                                .into(),
                        ));
                    }
                    tracing::warn!(token = id, name, role,
                        "API token bound to its name and role as the database holds them: its creation record is no longer in the audit log (archived by retention)");
                }
                let (_guard, mut tx) = self.write_tx().await?;
                sqlx::query("UPDATE api_tokens SET identity_mac = $1 WHERE id = $2 AND identity_mac IS NULL")
                    .bind(want)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    }
}

/// The detail of a token's `token_create` audit record: `token ID "NAME" role ROLE`.
fn creation_detail(id: i64, name: &str, role: &str) -> String {
    format!("token {id} {name:?} role {role}")
}

/// The server's mark on an API token's identity: HMAC-SHA256 under the deployment's
/// audit mark key (see [`super::audit::Marker`]) of its id, role and name, lower-case hex.
fn identity_mac(key: &ring::hmac::Key, id: i64, name: &str, role: &str) -> String {
    hex::encode(ring::hmac::sign(key, &identity_message(id, name, role)).as_ref())
}

/// What [`identity_mac`] signs.
fn identity_message(id: i64, name: &str, role: &str) -> Vec<u8> {
    format!("cordon-api-token-identity-v1\n{id}\n{role}\n{name}\n").into_bytes()
}
