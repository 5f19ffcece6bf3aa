//! API tokens and enrollment tokens (admin only).

use axum::extract::{Path, State};
use axum::Json;
use cordon_proto::{EnrollTokenCreated, EnrollTokenRequest, Role, TokenCreateRequest, TokenCreated, TokenList};

use super::extract::ApiJson;
use super::validate;
use crate::auth::{Admin, Auth};
use crate::{ApiError, AppState};

pub const DEFAULT_ENROLL_TTL_SECS: i64 = 24 * 3600;

#[utoipa::path(get, path = "/v1/tokens", security(("bearer" = [])), responses((status = 200, body = TokenList)))]
pub async fn list(State(st): State<AppState>, auth: Auth) -> Result<Json<TokenList>, ApiError> {
    auth.require(Role::Admin)?;
    Ok(Json(TokenList {
        tokens: st.store.api_tokens().await?,
    }))
}

#[utoipa::path(post, path = "/v1/tokens", request_body = TokenCreateRequest, security(("bearer" = [])),
    responses((status = 200, body = TokenCreated), (status = 403, body = cordon_proto::ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    Admin(auth): Admin,
    ApiJson(req): ApiJson<TokenCreateRequest>,
) -> Result<Json<TokenCreated>, ApiError> {
    auth.require(Role::Admin)?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > 128 || name == crate::SYSTEM_ACTOR || name.starts_with("agent:") {
        return Err(ApiError::invalid(
            "token name must be 1-128 characters and not `system` or `agent:...`",
        ));
    }
    Ok(Json(st.store.create_api_token(auth.actor(), name, req.role).await?))
}

#[utoipa::path(delete, path = "/v1/tokens/{id}", params(("id" = i64, Path, description = "token id")), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = cordon_proto::ErrorBody)))]
pub async fn revoke(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::invalid(format!("{id:?} is not a token id")))?;
    st.store.revoke_api_token(auth.actor(), id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/enrollment-tokens", request_body = EnrollTokenRequest, security(("bearer" = [])),
    responses((status = 200, body = EnrollTokenCreated), (status = 403, body = cordon_proto::ErrorBody)))]
pub async fn create_enroll(
    State(st): State<AppState>,
    Admin(auth): Admin,
    ApiJson(req): ApiJson<EnrollTokenRequest>,
) -> Result<Json<EnrollTokenCreated>, ApiError> {
    auth.require(Role::Admin)?;
    let labels = req
        .labels
        .iter()
        .map(|l| validate::label(l))
        .collect::<Result<Vec<_>, _>>()?;
    if labels.iter().any(|l| l == cordon_proto::QUARANTINE_LABEL) {
        return Err(ApiError::invalid("the Quarantine label is managed by the server"));
    }
    let ttl = req.ttl_secs.unwrap_or(DEFAULT_ENROLL_TTL_SECS);
    if ttl <= 0 || ttl > 365 * 86_400 {
        return Err(ApiError::invalid("ttl_secs must be between 1 and one year"));
    }
    Ok(Json(st.store.create_enroll_token(auth.actor(), &labels, ttl).await?))
}
