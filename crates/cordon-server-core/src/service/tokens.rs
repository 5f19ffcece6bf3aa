//! API tokens and enrollment tokens (admin only).

#![deny(missing_docs)]

use cordon_proto::{EnrollTokenCreated, EnrollTokenRequest, Role, TokenCreated, TokenInfo};

use super::{validate, Caller};
use crate::{ApiError, AppState};

/// Lifetime of an enrollment token when the request names none: one day, in seconds.
pub const DEFAULT_ENROLL_TTL_SECS: i64 = 24 * 3600;

/// Every API token (admin), oldest first, revoked ones included, with its `name_flag`
/// (`duplicate name`, `reserved name`) when its name is not a unique identity.
///
/// # Errors
/// 403 below admin; database errors.
pub async fn list(st: &AppState, caller: &Caller) -> Result<Vec<TokenInfo>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(st.store.api_tokens().await?)
}

/// Creates an API token; its clear text is in the answer and nowhere else.
///
/// # Errors
/// 400 for an empty, too long or reserved name ([`validate::token_name`]), and for a
/// name another token has (compared trimmed and case-insensitively, revoked tokens
/// included: audit records written under it must keep naming one identity).
pub async fn create(st: &AppState, caller: &Caller, name: &str, role: Role) -> Result<TokenCreated, ApiError> {
    caller.require(Role::Admin)?;
    let name = validate::token_name(name)?;
    Ok(st.store.create_api_token(caller, &name, role).await?)
}

/// Revokes API token `id` (admin; audited as `token_revoke`). A revoked token's name
/// stays taken.
///
/// # Errors
/// 403 below admin; 404 for an unknown id.
pub async fn revoke(st: &AppState, caller: &Caller, id: i64) -> Result<(), ApiError> {
    caller.require(Role::Admin)?;
    Ok(st.store.revoke_api_token(caller, id).await?)
}

/// Creates an enrollment token with the labels new hosts get (lifetime in seconds,
/// default [`DEFAULT_ENROLL_TTL_SECS`], at most a year).
pub async fn create_enroll(
    st: &AppState,
    caller: &Caller,
    req: &EnrollTokenRequest,
) -> Result<EnrollTokenCreated, ApiError> {
    caller.require(Role::Admin)?;
    let labels = validate::new_labels(
        &req.labels,
        &st.store
            .known_labels(crate::store::automation::LabelsReplaced::Nothing)
            .await?,
    )?;
    if labels.iter().any(|l| l == cordon_proto::QUARANTINE_LABEL) {
        return Err(ApiError::invalid("the Quarantine label is managed by the server"));
    }
    let ttl = req.ttl_secs.unwrap_or(DEFAULT_ENROLL_TTL_SECS);
    if ttl <= 0 || ttl > 365 * 86_400 {
        return Err(ApiError::invalid("ttl_secs must be between 1 and one year"));
    }
    Ok(st.store.create_enroll_token(caller, &labels, ttl).await?)
}
