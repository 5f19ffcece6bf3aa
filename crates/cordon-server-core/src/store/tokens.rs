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
        // The keys are computed from the names here, not read from `name_key` (trial41
        // MED-2: that column, edited in the database, let a second "ann" be created).
        let rows = sqlx::query("SELECT id, name, name_key FROM api_tokens ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
        for row in &rows {
            let other = get_str(row, "name")?;
            let stored = super::get_opt_str(row, "name_key")?;
            if crate::service::validate::token_name_key(&other) == key || stored.as_deref() == Some(key.as_str()) {
                return Err(taken_by(format!("token {} is named {other:?}", get_i64(row, "id")?)));
            }
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
        let hash = hash_token(&token);
        if let Some(keys) = self.keys.get() {
            sqlx::query("UPDATE api_tokens SET identity_mac = $1 WHERE id = $2")
                .bind(row_mark(&keys.mark, id, name, role.as_str(), &hash, false))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        let detail = creation_detail(id, name, role.as_str(), Some(&hash));
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
        // The mark covers the revocation: a row set back to `revoked = 0` in the
        // database no longer fits it (trial35 MED-3).
        if let Some(keys) = self.keys.get() {
            let r = sqlx::query("SELECT name, role, hash FROM api_tokens WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let mark = row_mark(
                &keys.mark,
                id,
                &get_str(&r, "name")?,
                &get_str(&r, "role")?,
                &get_str(&r, "hash")?,
                true,
            );
            sqlx::query("UPDATE api_tokens SET identity_mac = $1 WHERE id = $2")
                .bind(mark)
                .bind(id)
                .execute(&mut *tx)
                .await?;
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

    /// The caller a bearer token belongs to, if it is valid and not revoked, its row
    /// checked as the server made it (`Store::check_token_identity`: a name, role,
    /// credential hash or revocation edited in the database is refused).
    ///
    /// # Errors
    /// [`StoreError::AuditTampered`] for a token whose row was edited (or added) in the
    /// database; database errors.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Caller>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, role, hash, revoked, identity_mac FROM api_tokens WHERE hash = $1 AND revoked = 0",
        )
        .bind(hash_token(token))
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let row = TokenRow::read(&r, "")?;
        let Some(role) = Role::parse(&row.role) else {
            return Ok(None);
        };
        self.check_token_identity(&row).await?;
        Ok(Some(Caller {
            token_id: row.id,
            name: row.name,
            role,
        }))
    }

    /// Binds every API token row that carries no mark of this version (made before
    /// marks, without the CA key, or marked by 953cdff's name-and-role mark) whose
    /// creation record agrees, as `Store::check_token_identity` does at first use;
    /// rows that do not agree stay unbound and are refused at use (logged here). Run
    /// at start and before retention archives records, so a token's creation record is
    /// never archived while its row still depends on it (trial35 MED-4).
    ///
    /// # Errors
    /// Database errors (a refused row is not an error).
    pub async fn bind_unmarked_tokens(&self) -> Result<(), StoreError> {
        if self.keys.get().is_none() {
            return Ok(());
        }
        let rows = sqlx::query(
            "SELECT id, name, role, hash, revoked, identity_mac FROM api_tokens \
             WHERE identity_mac IS NULL OR identity_mac NOT LIKE 'v2:%' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            let row = TokenRow::read(r, "")?;
            match self.check_token_identity(&row).await {
                Ok(()) => {}
                Err(StoreError::AuditTampered(why)) => {
                    tracing::warn!(token = row.id, %why, "API token left unbound: it is refused at use");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Checks that `row` — an API token's row as the database holds it — is what the
    /// server made (trial33 MED-B, trial35 HIGH-1/MED-3: a name, role, credential hash or
    /// revocation edited in the database made the server act, and write genuine marked
    /// records, under an identity it never gave; api_tokens is neither chained nor
    /// marked otherwise). The row's `identity_mac` is `v2:` + the HMAC of its id, role,
    /// name, credential hash and revocation under the deployment's audit mark key
    /// ([`row_mark`]), written when the token is created and when it is revoked. An
    /// unrevoked row whose revocation (`token_revoke` record) is in the audit log is
    /// refused too (an old mark put back with `revoked = 0`).
    ///
    /// A row without such a mark — made before this version, or while the server had
    /// no CA key, or carrying 953cdff's mark of id, role and name only, which must fit —
    /// is bound at first use (or by [`Store::bind_unmarked_tokens`]) when its creation
    /// record in the audit log (`token_create`, detail `token ID "NAME" role ROLE
    /// credential HASH16`) names the same name, role and credential (the first 16 hex
    /// digits of its hash); a creation record written before credentials were recorded
    /// (`token ID "NAME" role ROLE`) binds the hash as found (logged). Refused: a
    /// creation record that says otherwise, or none (a row added in the database, or one
    /// whose record retention archived before the server bound it — retention binds
    /// first, see [`Store::bind_unmarked_tokens`]). Without the CA key (no mark key)
    /// nothing is checked.
    ///
    /// # Errors
    /// [`StoreError::AuditTampered`] (503, nothing done) naming the token, what the row
    /// says and that it was edited in the database; database errors.
    pub(crate) async fn check_token_identity(&self, row: &TokenRow) -> Result<(), StoreError> {
        let Some(keys) = self.keys.get() else {
            return Ok(());
        };
        let (id, name, role) = (row.id, row.name.as_str(), row.role.as_str());
        let edited = |what: String| {
            StoreError::AuditTampered(format!(
                "API token {id} is named {name:?} with role {role} in the database, but {what}: its row \
                 (table api_tokens) was edited in the database, and the server does not act or write audit \
                 records under an identity it did not give (put the row back as the server made it, or revoke \
                 the token and create a new one)"
            ))
        };
        let fits = |message: Vec<u8>, tag: &str| {
            hex::decode(tag).is_ok_and(|tag| ring::hmac::verify(&keys.mark, &message, &tag).is_ok())
        };
        let v1 = match row.mark.as_deref() {
            Some(m) => match m.strip_prefix(MARK_V2) {
                Some(tag) if fits(row_message(id, name, role, &row.hash, row.revoked), tag) => {
                    return self.check_not_revoked_in_log(row, &edited).await;
                }
                Some(_) => {
                    return Err(edited(
                        "the server's mark on the row does not fit what it holds (its name, role, credential hash \
                         or revocation)"
                            .into(),
                    ))
                }
                None if fits(identity_message(id, name, role), m) => true,
                None => return Err(edited("the server's mark on the row does not fit them".into())),
            },
            None => false,
        };
        // Not marked by this version: bound from the log — the token's creation record,
        // or the record of an earlier binding (`token_bind`), when one names its
        // credential (trial41 HIGH-1: a row whose mark was removed, or 953cdff's mark put
        // back, with the credential hash swapped, was bound again as found).
        // Only records a server of the deployment wrote count: chained, marked, id above
        // 0 (trial41 HIGH-A: a row inserted with id −7 and deleted afterwards was taken).
        let details = self
            .genuine_details(&["token_create", BIND_ACTION], &format!("token {id} %"))
            .await?;
        let with_credential = creation_detail(id, name, role, Some(&row.hash));
        if details.contains(&with_credential) {
            self.check_not_revoked_in_log(row, &edited).await?;
            return self.bind_token_row(&keys.mark, row, false).await;
        }
        let named: Vec<&String> = details.iter().filter(|d| names_a_credential(d)).collect();
        if !named.is_empty() {
            let said = named.iter().map(|d| d.as_str()).collect::<Vec<_>>().join("; ");
            return Err(edited(format!(
                "its creation record in the audit log says {said:?} (the credential it was made or bound with)"
            )));
        }
        // No record names its credential (made before credentials were recorded): bound
        // once, as found — vouched for by 953cdff's mark or a creation record of the same
        // name and role — with a `token_bind` record naming the credential, which every
        // later binding then requires.
        let legacy = creation_detail(id, name, role, None);
        if !v1 && !details.contains(&legacy) {
            if details.is_empty() {
                return Err(edited(
                    "no token_create record in the audit log names it (a row added in the database, or one whose \
                     creation record retention archived before the server had bound the row)"
                        .into(),
                ));
            }
            let said = details.join("; ");
            return Err(edited(format!("its creation record in the audit log says {said:?}")));
        }
        tracing::info!(
            token = id,
            name,
            role,
            marked_by_953cdff = v1,
            "API token bound with its credential hash as the database holds it (its creation record predates \
             recorded credentials): recorded as token_bind, which later bindings require"
        );
        self.check_not_revoked_in_log(row, &edited).await?;
        self.bind_token_row(&keys.mark, row, true).await
    }

    /// Writes this version's mark on `row` as it is, unless another server marked it
    /// first; with `record`, in the same transaction, a `token_bind` record (actor
    /// `system`) whose detail names the row as a creation record would, credential
    /// included.
    async fn bind_token_row(&self, key: &ring::hmac::Key, row: &TokenRow, record: bool) -> Result<(), StoreError> {
        let mark = row_mark(key, row.id, &row.name, &row.role, &row.hash, row.revoked);
        let (_guard, mut tx) = self.write_tx().await?;
        let n = sqlx::query(
            "UPDATE api_tokens SET identity_mac = $1 WHERE id = $2 AND (identity_mac IS NULL OR identity_mac NOT LIKE 'v2:%')",
        )
        .bind(mark)
        .bind(row.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if record && n == 1 {
            let detail = creation_detail(row.id, &row.name, &row.role, Some(&row.hash));
            append(
                &mut tx,
                &NewAudit {
                    actor: crate::SYSTEM_ACTOR,
                    action: BIND_ACTION,
                    result: "ok",
                    detail: Some(&detail),
                    ..Default::default()
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Refuses an unrevoked token row whose revocation (`token_revoke`, detail `token
    /// ID`) is in the audit log: a revoked row set back with an old mark (trial35 MED-3).
    async fn check_not_revoked_in_log(
        &self,
        row: &TokenRow,
        edited: &impl Fn(String) -> StoreError,
    ) -> Result<(), StoreError> {
        if row.revoked {
            return Ok(());
        }
        let revoked = sqlx::query("SELECT id FROM audit WHERE action = 'token_revoke' AND detail = $1 LIMIT 1")
            .bind(format!("token {}", row.id))
            .fetch_optional(&self.pool)
            .await?;
        match revoked {
            Some(r) => Err(edited(format!(
                "the audit log holds its revocation (record {}) while the row says it is not revoked",
                get_i64(&r, "id")?
            ))),
            None => Ok(()),
        }
    }
}

/// An API token's row as the database holds it: what [`Store::check_token_identity`] checks.
#[derive(Debug, Clone)]
pub(crate) struct TokenRow {
    /// `api_tokens.id`.
    pub(crate) id: i64,
    /// The display name.
    pub(crate) name: String,
    /// The role as stored (text).
    pub(crate) role: String,
    /// SHA-256 of the secret, lower-case hex (`hash_token`).
    pub(crate) hash: String,
    /// Whether the token is revoked.
    pub(crate) revoked: bool,
    /// `identity_mac`: the server's mark, if any.
    pub(crate) mark: Option<String>,
}

impl TokenRow {
    /// Reads the columns `id, name, role, hash, revoked, identity_mac` (each prefixed
    /// with `prefix`, e.g. `t_` in a join) from `r`.
    pub(crate) fn read(r: &sqlx::any::AnyRow, prefix: &str) -> Result<TokenRow, StoreError> {
        Ok(TokenRow {
            id: get_i64(r, &format!("{prefix}id"))?,
            name: get_str(r, &format!("{prefix}name"))?,
            role: get_str(r, &format!("{prefix}role"))?,
            hash: get_str(r, &format!("{prefix}hash"))?,
            revoked: get_i64(r, &format!("{prefix}revoked"))? != 0,
            mark: super::get_opt_str(r, &format!("{prefix}identity_mac"))?,
        })
    }
}

/// The detail of a token's `token_create` audit record: `token ID "NAME" role ROLE
/// credential HASH16` (the first 16 hex digits of the stored SHA-256 of its secret:
/// binds the credential in the chained log, and tells nothing about the secret); without
/// `hash`, the form written before credentials were recorded.
fn creation_detail(id: i64, name: &str, role: &str, hash: Option<&str>) -> String {
    match hash {
        Some(h) => format!(
            "token {id} {name:?} role {role} credential {}",
            h.get(..16).unwrap_or(h)
        ),
        None => format!("token {id} {name:?} role {role}"),
    }
}

/// The audit action recording that the server bound a token made before credentials
/// were recorded (detail as [`creation_detail`] with the credential).
pub const BIND_ACTION: &str = "token_bind";

/// Whether `detail` (a `token_create` or `token_bind` record's) names a credential: it
/// ends ` role ROLE credential H` with 16 lower-case hex digits.
fn names_a_credential(detail: &str) -> bool {
    detail.rsplit_once(" credential ").is_some_and(|(head, h)| {
        h.len() == 16
            && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && ["admin", "responder", "viewer"]
                .iter()
                .any(|r| head.ends_with(&format!(" role {r}")))
    })
}

/// Prefix of a row mark of this version ([`row_mark`]); 953cdff's marks are bare hex.
const MARK_V2: &str = "v2:";

/// The server's mark on an API token's row: `v2:` + HMAC-SHA256 under the deployment's
/// audit mark key (see [`super::audit::Marker`]) of [`row_message`], lower-case hex.
fn row_mark(key: &ring::hmac::Key, id: i64, name: &str, role: &str, hash: &str, revoked: bool) -> String {
    format!(
        "{MARK_V2}{}",
        hex::encode(ring::hmac::sign(key, &row_message(id, name, role, hash, revoked)).as_ref())
    )
}

/// What [`row_mark`] signs: every field of the row that grants power — id, role, name,
/// credential hash and revocation.
fn row_message(id: i64, name: &str, role: &str, hash: &str, revoked: bool) -> Vec<u8> {
    format!(
        "cordon-api-token-row-v2\n{id}\n{role}\n{name}\n{hash}\n{}\n",
        u8::from(revoked)
    )
    .into_bytes()
}

/// What 953cdff's mark signed (id, role and name only): still read, to bind such rows
/// once ([`Store::check_token_identity`]).
fn identity_message(id: i64, name: &str, role: &str) -> Vec<u8> {
    format!("cordon-api-token-identity-v1\n{id}\n{role}\n{name}\n").into_bytes()
}
