//! Console sign-in sessions (issue 16): opened with an API token, looked up on every
//! console request, ended on sign-out ([`crate::store::Store::create_session`] and
//! friends hold the storage: only the SHA-256 of a session id is kept, bound to the
//! token; revoking the token ends its sessions).
//!
//! These are the only ways a front end reaches sessions; a session id is never an API
//! token (bearer authentication looks at API tokens only).

use super::Caller;
use crate::store::{SessionInfo, SessionLimits};
use crate::{ApiError, AppState};

/// Opens a session for the API token `token` at `now` (Unix ms) with `limits`: the
/// token's caller and the new session id (its only copy: it goes into the cookie), or
/// `None` for an unknown or revoked token. The sign-in is audited (`console_sign_in`,
/// actor the token).
///
/// # Errors
/// 500 (logged) when the store fails or no randomness is available.
pub async fn sign_in(
    st: &AppState,
    token: &str,
    now: i64,
    limits: SessionLimits,
) -> Result<Option<(Caller, String)>, ApiError> {
    let Some(caller) = st.store.authenticate(token).await? else {
        return Ok(None);
    };
    let id = st.store.create_session(caller.token_id, now, limits).await?;
    tracing::info!(token = %caller.name, role = caller.role.as_str(), "console sign-in");
    Ok(Some((caller, id)))
}

/// The session `id` if it is still valid at `now` (Unix ms): not signed out, its token
/// not revoked, used within `limits.idle_ms`, younger than `limits.absolute_ms`. With
/// `touch` the lookup counts as use (a page or an action; background refreshes and the
/// live stream do not). An ended session is deleted and answers `None`.
///
/// # Errors
/// 500 (logged) when the store fails.
pub async fn session(
    st: &AppState,
    id: &str,
    now: i64,
    limits: SessionLimits,
    touch: bool,
) -> Result<Option<SessionInfo>, ApiError> {
    Ok(st.store.session(id, now, limits, touch).await?)
}

/// Ends session `id` (sign-out, audited as `console_sign_out` by its token): the old
/// cookie opens nothing afterwards. Ending an unknown session is not an error.
///
/// # Errors
/// 500 (logged) when the store fails.
pub async fn sign_out(st: &AppState, id: &str) -> Result<(), ApiError> {
    Ok(st.store.sign_out_session(id).await?)
}
