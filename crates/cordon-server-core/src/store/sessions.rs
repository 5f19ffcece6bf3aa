//! Console sign-in sessions (issue 16): server-side, so signing out, revoking the API
//! token, the idle timeout and the absolute timeout each end a session at once, whatever
//! the browser keeps.
//!
//! The cookie carries a random session id (`sess_` + 256 random bits, hex). Only its
//! SHA-256 hash is stored, next to the id of the API token the session was opened with.
//! A session id is never an API token: bearer authentication looks in `api_tokens` only.

use super::tokens::Caller;
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
    pub async fn create_session(&self, token_id: i64, now: i64, limits: SessionLimits) -> Result<String, StoreError> {
        let id = new_token("sess").map_err(StoreError::Random)?;
        let (_guard, mut tx) = self.write_tx().await?;
        // Sessions that ended are swept whenever one starts.
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen <= $2")
            .bind(now)
            .bind(now - limits.idle_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, token_id, created_at, last_seen, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_token(&id))
        .bind(token_id)
        .bind(now)
        .bind(now)
        .bind(now + limits.absolute_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The caller of session `id` if it is still valid at `now`: not signed out, token not
    /// revoked, used within `idle_ms`, younger than its absolute end. With `touch`, the
    /// use counts against the idle timeout (a page or an action; the live stream does not).
    pub async fn session(
        &self,
        id: &str,
        now: i64,
        limits: SessionLimits,
        touch: bool,
    ) -> Result<Option<SessionInfo>, StoreError> {
        let row = sqlx::query(
            "SELECT s.last_seen AS last_seen, s.expires_at AS expires_at, t.id AS token_id, t.name AS name, t.role AS role, \
             t.identity_mac AS identity_mac FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id \
             WHERE s.id_hash = $1 AND t.revoked = 0",
        )
        .bind(hash_token(id))
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let last_seen = get_i64(&r, "last_seen")?;
        let expires_at = get_i64(&r, "expires_at")?;
        if now >= expires_at || now - last_seen >= limits.idle_ms {
            self.end_session(id).await?;
            return Ok(None);
        }
        let role_text = get_str(&r, "role")?;
        let Some(role) = Role::parse(&role_text) else {
            return Ok(None);
        };
        if touch && now - last_seen >= TOUCH_EVERY_MS {
            let (_guard, mut tx) = self.write_tx().await?;
            sqlx::query("UPDATE console_sessions SET last_seen = $1 WHERE id_hash = $2")
                .bind(now)
                .bind(hash_token(id))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        let caller = Caller {
            token_id: get_i64(&r, "token_id")?,
            name: get_str(&r, "name")?,
            role,
        };
        // The token's name and role as the server bound them (trial33 MED-B).
        self.check_token_identity(&caller, super::get_opt_str(&r, "identity_mac")?.as_deref())
            .await?;
        Ok(Some(SessionInfo { caller, expires_at }))
    }

    /// Ends session `id` (sign-out). Ending an unknown session is not an error.
    pub async fn end_session(&self, id: &str) -> Result<(), StoreError> {
        let (_guard, mut tx) = self.write_tx().await?;
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(hash_token(id))
            .execute(&mut *tx)
            .await?;
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
