//! API tokens and enrollment tokens (admin only).

#![deny(missing_docs)]

use cordon_proto::{EnrollTokenCreated, EnrollTokenRequest, Role, TokenCreated, TokenInfo};

use super::{validate, Caller};
use crate::store::StoreError;
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

/// Binds the API token rows made before this version's marks (at start: see
/// [`crate::store::Store::bind_unmarked_tokens`]); a row that does not fit stays unbound
/// and is refused at use. A failure is logged: such rows are then bound at first use.
pub async fn bind_unmarked(st: &AppState) {
    if let Err(e) = st.store.bind_unmarked_tokens().await {
        tracing::warn!(error = %crate::error::chain(&e), "cannot bind the API tokens made before marks: they are bound at first use");
    }
}

/// The bootstrap admin token of `cordon server init`, named `name` and audited with
/// `actor` (no caller: the command, run on the server's host, is the authority).
///
/// # Errors
/// The store's (a duplicate name, the database).
pub async fn bootstrap_admin(st: &AppState, actor: &str, name: &str) -> Result<TokenCreated, StoreError> {
    st.store.create_api_token(actor, name, Role::Admin).await
}

/// Every label known anywhere (hosts, enrollment tokens, rules, settings), which new
/// labels are checked against ([`enroll_request`]); for the offline
/// `cordon server token create`, which has no caller.
///
/// # Errors
/// The store's.
pub async fn known_labels(st: &AppState) -> Result<Vec<String>, StoreError> {
    st.store
        .known_labels(crate::store::automation::LabelsReplaced::Nothing)
        .await
}

/// Creates an enrollment token for the offline `cordon server token create`, audited
/// with `actor`; `labels` and `ttl_secs` as [`enroll_request`] returned them.
///
/// # Errors
/// The store's.
pub async fn create_enroll_offline(
    st: &AppState,
    actor: &str,
    labels: &[String],
    ttl_secs: i64,
) -> Result<EnrollTokenCreated, StoreError> {
    st.store.create_enroll_token(actor, labels, ttl_secs).await
}

/// Logs a warning for every live API token whose name predates the name rules and is
/// flagged (`name_flag`, issue 17): kept working, said at each start. A failure to list
/// the tokens is logged too.
pub async fn warn_flagged_names(st: &AppState) {
    match st.store.api_tokens().await {
        Ok(tokens) => {
            for t in tokens.iter().filter(|t| !t.revoked) {
                if let Some(flag) = &t.name_flag {
                    tracing::warn!(token = t.id, name = %t.name, flag = %flag,
                        "API token name is not unique, is reserved or breaks the name rules; audit records name it by id; revoke and re-create it under a distinct name");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list API tokens"),
    }
}

/// Creates an enrollment token with the labels new hosts get (lifetime in seconds,
/// default [`DEFAULT_ENROLL_TTL_SECS`], at most a year).
pub async fn create_enroll(
    st: &AppState,
    caller: &Caller,
    req: &EnrollTokenRequest,
) -> Result<EnrollTokenCreated, ApiError> {
    caller.require(Role::Admin)?;
    let known = st
        .store
        .known_labels(crate::store::automation::LabelsReplaced::Nothing)
        .await?;
    let (labels, ttl) = enroll_request(&req.labels, &known, req.ttl_secs)?;
    Ok(st.store.create_enroll_token(caller, &labels, ttl).await?)
}

/// The one check of an enrollment token's labels and lifetime, for the API and for the
/// offline `cordon server token create` alike (trial16 HIGH-1: the offline path saved
/// look-alikes of `Quarantine` and of existing labels, which then passed every later
/// check as "the same label again"). `known` is every label known anywhere
/// ([`crate::Store::known_labels`]). Returns the labels as [`validate::new_labels`]
/// leaves them and the lifetime in seconds (default [`DEFAULT_ENROLL_TTL_SECS`]).
///
/// # Errors
/// 400 for a bad label, the `Quarantine` label or a lifetime outside 1 s – one year; 409
/// for a look-alike of a known label.
pub fn enroll_request(
    labels: &[String],
    known: &[String],
    ttl_secs: Option<i64>,
) -> Result<(Vec<String>, i64), ApiError> {
    let labels = validate::new_labels(labels, known)?;
    let quarantine = validate::label_key(cordon_proto::QUARANTINE_LABEL);
    if labels.iter().any(|l| validate::label_key(l) == quarantine) {
        return Err(ApiError::invalid("the Quarantine label is managed by the server"));
    }
    let ttl = ttl_secs.unwrap_or(DEFAULT_ENROLL_TTL_SECS);
    if ttl <= 0 || ttl > 365 * 86_400 {
        return Err(ApiError::invalid("ttl_secs must be between 1 and one year"));
    }
    Ok((labels, ttl))
}
