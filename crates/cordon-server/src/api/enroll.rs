//! Enrollment (server-authenticated TLS, no client certificate yet) and the CA
//! certificate for agents pinning it by fingerprint.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use cordon_proto::{EnrollRequest, EnrollResponse};

use super::extract::ApiJson;
use crate::limits::{bound_addresses, truncate, MAX_SHORT_CHARS};
use crate::store::NewHost;
use crate::{ApiError, AppState};

#[utoipa::path(get, path = "/v1/ca", responses((status = 200, description = "CA certificate, PEM", content_type = "application/x-pem-file")))]
pub async fn ca_pem(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let ca = st
        .ca
        .as_ref()
        .ok_or_else(|| ApiError::not_found("this server has no CA loaded"))?;
    Ok(([(CONTENT_TYPE, "application/x-pem-file")], ca.cert_pem.clone()))
}

#[utoipa::path(post, path = "/v1/enroll", request_body = EnrollRequest,
    responses((status = 200, body = EnrollResponse), (status = 401, body = cordon_proto::ErrorBody), (status = 400, body = cordon_proto::ErrorBody)))]
pub async fn enroll(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let ca = st
        .ca
        .as_ref()
        .ok_or_else(|| ApiError::not_found("enrollment is disabled on this server"))?;
    st.store
        .check_enroll_token(&req.token)
        .await
        .map_err(|e| ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "invalid_token", e.to_string()))?;
    let hostname = req.hostname.trim();
    if hostname.is_empty() || hostname.len() > 255 || hostname.chars().any(char::is_control) {
        return Err(ApiError::invalid("hostname must be 1-255 printable characters"));
    }
    let host_id = uuid::Uuid::new_v4().to_string();
    let cert_pem = ca
        .sign_client(&req.csr_pem, &host_id)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let host = NewHost {
        id: host_id.clone(),
        hostname: hostname.to_string(),
        os: req.os.as_deref().map(|o| truncate(o, MAX_SHORT_CHARS)),
        addresses: {
            let mut a = req.addresses.clone();
            bound_addresses(&mut a);
            a
        },
        agent_version: req.agent_version.as_deref().map(|v| truncate(v, MAX_SHORT_CHARS)),
    };
    st.store
        .enroll(&req.token, &host)
        .await
        .map_err(|e| ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "invalid_token", e.to_string()))?;
    tracing::info!(host = %host_id, hostname, "enrolled");
    Ok(Json(EnrollResponse {
        host_id,
        cert_pem,
        ca_pem: ca.cert_pem.clone(),
    }))
}
