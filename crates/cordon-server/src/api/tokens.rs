//! API tokens and enrollment tokens (admin only).

use axum::extract::{Path, State};
use axum::Json;
use cordon_proto::{EnrollTokenCreated, EnrollTokenRequest, Role, TokenCreateRequest, TokenCreated, TokenList};

use cordon_server_core::auth::{Admin, Auth};
use cordon_server_core::service::tokens;
use cordon_server_core::{ApiError, ApiJson, AppState};

pub use cordon_server_core::service::tokens::DEFAULT_ENROLL_TTL_SECS;

/// The API tokens, never their secrets (admin).
#[utoipa::path(get, path = "/v1/tokens", security(("bearer" = [])), responses((status = 200, body = TokenList)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn list(State(st): State<AppState>, auth: Auth) -> Result<Json<TokenList>, ApiError> {
    Ok(Json(TokenList {
        tokens: tokens::list(&st, &auth.0).await?,
    }))
}

/// Creates an API token (admin); the secret is shown once.
#[utoipa::path(post, path = "/v1/tokens", request_body = TokenCreateRequest, security(("bearer" = [])),
    responses((status = 200, body = TokenCreated), (status = 403, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn create(
    State(st): State<AppState>,
    Admin(auth): Admin,
    ApiJson(req): ApiJson<TokenCreateRequest>,
) -> Result<Json<TokenCreated>, ApiError> {
    Ok(Json(tokens::create(&st, &auth.0, &req.name, req.role).await?))
}

/// Revokes an API token (admin).
#[utoipa::path(delete, path = "/v1/tokens/{id}", params(("id" = i64, Path, description = "token id")), security(("bearer" = [])),
    responses((status = 204), (status = 404, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn revoke(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::invalid(format!("{id:?} is not a token id")))?;
    tokens::revoke(&st, &auth.0, id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Creates a one-time enrollment token (admin), optionally with labels for the host.
#[utoipa::path(post, path = "/v1/enrollment-tokens", request_body = EnrollTokenRequest, security(("bearer" = [])),
    responses((status = 200, body = EnrollTokenCreated), (status = 403, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn create_enroll(
    State(st): State<AppState>,
    Admin(auth): Admin,
    ApiJson(req): ApiJson<EnrollTokenRequest>,
) -> Result<Json<EnrollTokenCreated>, ApiError> {
    Ok(Json(tokens::create_enroll(&st, &auth.0, &req).await?))
}
