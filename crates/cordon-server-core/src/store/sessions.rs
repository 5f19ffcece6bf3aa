//! Console sign-in sessions (issue 16): server-side, so signing out, revoking the API
//! token, the idle timeout and the absolute timeout each end a session at once, whatever
//! the browser keeps.
//!
//! The cookie carries a random session id (`sess_` + 256 random bits, hex). Only its
//! SHA-256 hash is stored, next to the id of the API token the session was opened with.
//! A session id is never an API token: bearer authentication looks in `api_tokens` only.

use super::audit::{append, NewAudit};
use super::tokens::{Caller, TokenRow};
use super::{get_i64, get_str, Store, StoreError};
use crate::secret::{hash_token, new_token};
use cordon_proto::Role;

/// How long sessions live (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session unused for this long ends.
    pub idle_ms: i64,
    /// A session ends this long after sign-in, used or not.
    pub absolute_ms: i64,
}

impl Default for SessionLimits {
    /// 30 minutes idle, 12 hours in all.
    fn default() -> Self {
        SessionLimits {
            idle_ms: 30 * 60_000,
            absolute_ms: 12 * 3_600_000,
        }
    }
}

/// Last-use times are written at most this often (a busy page does not write on every request).
const TOUCH_EVERY_MS: i64 = 30_000;

/// A valid session: who it belongs to, and when it ends at the latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The API token the session was opened with.
    pub caller: Caller,
    /// Unix ms: the absolute end.
    pub expires_at: i64,
}

impl Store {
    /// Opens a session for API token `token_id`; returns the session id (shown only here).
    /// The row carries the server's mark (`session_mark`) and the sign-in is audited
    /// (`console_sign_in`, actor the token, detail `console session HASH12`: the first 12
    /// hex digits of the session id's SHA-256), in one transaction.
    ///
    /// # Errors
    /// `NotFound` for an unknown token id; database errors; no randomness.
    pub async fn create_session(&self, token_id: i64, now: i64, limits: SessionLimits) -> Result<String, StoreError> {
        let id = new_token("sess").map_err(StoreError::Random)?;
        let id_hash = hash_token(&id);
        let expires_at = now + limits.absolute_ms;
        let (_guard, mut tx) = self.write_tx().await?;
        let name = sqlx::query("SELECT name FROM api_tokens WHERE id = $1")
            .bind(token_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| get_str(&r, "name"))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("no API token {token_id}")))?;
        // Sessions that ended are swept whenever one starts.
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen <= $2")
            .bind(now)
            .bind(now - limits.idle_ms)
            .execute(&mut *tx)
            .await?;
        let mark = self
            .keys
            .get()
            .map(|k| session_mark(&k.mark, &id_hash, token_id, now, expires_at));
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, token_id, created_at, last_seen, expires_at, mac) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id_hash.clone())
        .bind(token_id)
        .bind(now)
        .bind(now)
        .bind(expires_at)
        .bind(mark)
        .execute(&mut *tx)
        .await?;
        audit_session(&mut tx, &name, token_id, SIGN_IN_ACTION, &id_hash).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The caller of session `id` if it is still valid at `now`: not signed out, token not
    /// revoked, used within `idle_ms`, younger than its absolute end. With `touch`, the
    /// use counts against the idle timeout (a page or an action; the live stream does not).
    ///
    /// With the CA key, the session row must carry the server's mark (`session_mark`,
    /// trial35 HIGH-1: a row inserted in the database acted as any token) and its token's
    /// row must be as the server made it (`Store::check_token_identity`). A row without
    /// a mark (opened before marks) ends like an expired one.
    ///
    /// # Errors
    /// [`StoreError::AuditTampered`] for a session row or token row edited or added in
    /// the database (nothing done); database errors.
    pub async fn session(
        &self,
        id: &str,
        now: i64,
        limits: SessionLimits,
        touch: bool,
    ) -> Result<Option<SessionInfo>, StoreError> {
        let id_hash = hash_token(id);
        let row = sqlx::query(
            "SELECT s.last_seen AS last_seen, s.created_at AS created_at, s.expires_at AS expires_at, s.mac AS mac, \
             t.id AS t_id, t.name AS t_name, t.role AS t_role, t.hash AS t_hash, t.revoked AS t_revoked, \
             t.identity_mac AS t_identity_mac FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id \
             WHERE s.id_hash = $1 AND t.revoked = 0",
        )
        .bind(id_hash.clone())
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let last_seen = get_i64(&r, "last_seen")?;
        let expires_at = get_i64(&r, "expires_at")?;
        let token = TokenRow::read(&r, "t_")?;
        if let Some(keys) = self.keys.get() {
            let created_at = get_i64(&r, "created_at")?;
            match super::get_opt_str(&r, "mac")? {
                None => {
                    tracing::info!(
                        token = token.id,
                        "console session without the server's mark (opened before marks) ended"
                    );
                    self.end_session(id).await?;
                    return Ok(None);
                }
                Some(m) => {
                    let message = session_message(&id_hash, token.id, created_at, expires_at);
                    if !hex::decode(&m).is_ok_and(|tag| ring::hmac::verify(&keys.mark, &message, &tag).is_ok()) {
                        return Err(StoreError::AuditTampered(format!(
                            "console session {} of API token {} ({:?}) does not carry the server's mark for its \
                             token, start and end: its row (table console_sessions) was added or edited in the \
                             database, and the server does not act under a session it did not open (delete the \
                             row; sign in again)",
                            session_detail_id(&id_hash),
                            token.id,
                            token.name
                        )));
                    }
                }
            }
        }
        if now >= expires_at || now - last_seen >= limits.idle_ms {
            self.end_session(id).await?;
            return Ok(None);
        }
        let Some(role) = Role::parse(&token.role) else {
            return Ok(None);
        };
        // The token's row as the server made it (trial33 MED-B, trial35 HIGH-1).
        self.check_token_identity(&token).await?;
        if touch && now - last_seen >= TOUCH_EVERY_MS {
            let (_guard, mut tx) = self.write_tx().await?;
            sqlx::query("UPDATE console_sessions SET last_seen = $1 WHERE id_hash = $2")
                .bind(now)
                .bind(id_hash)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        let caller = Caller {
            token_id: token.id,
            name: token.name,
            role,
        };
        Ok(Some(SessionInfo { caller, expires_at }))
    }

    /// Ends session `id` without a record (it expired). Ending an unknown session is not an error.
    ///
    /// # Errors
    /// Database errors.
    pub async fn end_session(&self, id: &str) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write_tx().await?;
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(hash_token(id))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Signs session `id` out: ends it and, when it was open, audits the sign-out
    /// (`console_sign_out`, actor its token, detail as at sign-in), in one transaction.
    /// Signing out an unknown or ended session is not an error and writes nothing.
    ///
    /// # Errors
    /// Database errors.
    pub async fn sign_out_session(&self, id: &str) -> Result<(), StoreError> {
        let id_hash = hash_token(id);
        let (_guard, mut tx) = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT t.id AS id, t.name AS name FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id \
             WHERE s.id_hash = $1",
        )
        .bind(id_hash.clone())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(r) = row else {
            tx.rollback().await?;
            return Ok(());
        };
        let (token_id, name) = (get_i64(&r, "id")?, get_str(&r, "name")?);
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash.clone())
            .execute(&mut *tx)
            .await?;
        audit_session(&mut tx, &name, token_id, SIGN_OUT_ACTION, &id_hash).await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many sessions are open for API token `token_id` (tests, diagnostics).
    pub async fn session_count(&self, token_id: i64) -> Result<i64, StoreError> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM console_sessions WHERE token_id = $1")
            .bind(token_id)
            .fetch_one(&self.pool)
            .await?;
        get_i64(&r, "n")
    }
}

/// The audit action of a console sign-in.
pub const SIGN_IN_ACTION: &str = "console_sign_in";
/// The audit action of a console sign-out.
pub const SIGN_OUT_ACTION: &str = "console_sign_out";

/// A session as audit records name it: the first 12 hex digits of its id's SHA-256.
fn session_detail_id(id_hash: &str) -> &str {
    id_hash.get(..12).unwrap_or(id_hash)
}

/// Appends the sign-in or sign-out record (`action`) of session `id_hash` for token
/// `token_id` named `name`, detail `console session HASH12`, in `tx`.
async fn audit_session(
    tx: &mut super::Tx,
    name: &str,
    token_id: i64,
    action: &str,
    id_hash: &str,
) -> Result<(), StoreError> {
    let detail = format!("console session {}", session_detail_id(id_hash));
    append(
        tx,
        &NewAudit {
            actor: name,
            actor_token_id: Some(token_id),
            action,
            result: "ok",
            detail: Some(&detail),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// The server's mark on a console session row: HMAC-SHA256 under the deployment's audit
/// mark key of [`session_message`], lower-case hex. `last_seen` is not covered (it moves
/// on use; moving it in the database extends idle time, never beyond `expires_at`).
fn session_mark(key: &ring::hmac::Key, id_hash: &str, token_id: i64, created_at: i64, expires_at: i64) -> String {
    hex::encode(ring::hmac::sign(key, &session_message(id_hash, token_id, created_at, expires_at)).as_ref())
}

/// What [`session_mark`] signs: the session id's hash, its token, start and absolute end (Unix ms).
fn session_message(id_hash: &str, token_id: i64, created_at: i64, expires_at: i64) -> Vec<u8> {
    format!("cordon-console-session-v1\n{id_hash}\n{token_id}\n{created_at}\n{expires_at}\n").into_bytes()
}
