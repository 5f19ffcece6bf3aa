//! Enrollment (server-authenticated TLS, no client certificate yet) and the CA
//! certificate for agents pinning it by fingerprint.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use cordon_proto::{EnrollRequest, EnrollResponse};

use cordon_server_core::service::enroll as service;
use cordon_server_core::{ApiError, ApiJson, AppState};

/// The CA certificate (PEM) agents pin by fingerprint; 404 without a CA.
#[utoipa::path(get, path = "/v1/ca", responses((status = 200, description = "CA certificate, PEM", content_type = "application/x-pem-file")))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn ca_pem(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(([(CONTENT_TYPE, "application/x-pem-file")], service::ca_pem(&st)?))
}

/// Enrolls a host with a one-time token: signs its CSR, records the host.
#[utoipa::path(post, path = "/v1/enroll", request_body = EnrollRequest,
    responses((status = 200, body = EnrollResponse), (status = 401, body = cordon_proto::ErrorBody), (status = 400, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn enroll(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> Result<Json<EnrollResponse>, ApiError> {
    Ok(Json(service::enroll(&st, &req).await?))
}
