//! Enrollment of a new host with a one-time token: the CA signs its certificate.

use axum::http::StatusCode;
use cordon_proto::{EnrollRequest, EnrollResponse};

use crate::limits::{check_addresses, truncate, MAX_SHORT_CHARS};
use crate::pki::PkiError;
use crate::store::{NewHost, StoreError};
use crate::{ApiError, AppState};

/// The CA certificate (PEM) agents pin by fingerprint.
///
/// # Errors
/// 404 when the server has no CA loaded.
pub fn ca_pem(st: &AppState) -> Result<String, ApiError> {
    let ca = st
        .ca
        .as_ref()
        .ok_or_else(|| ApiError::not_found("this server has no CA loaded"))?;
    Ok(ca.cert_pem.clone())
}

/// Checks the token, signs the host's CSR, records the host.
///
/// # Errors
/// 404 when enrollment is disabled (no CA), 401 `invalid_token` for an unknown, used or
/// expired token, 400 for a bad hostname or CSR; a store that cannot answer or write
/// (audit log tampered, disk full, database down) is 503/500 as everywhere else
/// ([`ApiError`]'s `From<StoreError>`, which logs the cause), never "invalid token".
pub async fn enroll(st: &AppState, req: &EnrollRequest) -> Result<EnrollResponse, ApiError> {
    let ca = st
        .ca
        .as_ref()
        .ok_or_else(|| ApiError::not_found("enrollment is disabled on this server"))?;
    st.store.check_enroll_token(&req.token).await.map_err(token_refused)?;
    let hostname = super::validate::hostname(&req.hostname)?;
    let hostname = hostname.as_str();
    let addresses = check_addresses(&req.addresses)
        .map_err(ApiError::invalid)?
        .iter()
        .map(ToString::to_string)
        .collect();
    let host_id = uuid::Uuid::new_v4().to_string();
    let cert_pem = ca.sign_client(&req.csr_pem, &host_id).map_err(|e| match e {
        PkiError::Csr(_) => ApiError::invalid(crate::error::chain(&e)),
        other => ApiError::internal(format!(
            "cannot sign an agent's certificate: {}",
            crate::error::chain(&other)
        )),
    })?;
    let host = NewHost {
        id: host_id.clone(),
        hostname: hostname.to_string(),
        os: req.os.as_deref().map(|o| truncate(o, MAX_SHORT_CHARS)),
        addresses,
        agent_version: req.agent_version.as_deref().map(|v| truncate(v, MAX_SHORT_CHARS)),
    };
    st.store.enroll(&req.token, &host).await.map_err(token_refused)?;
    tracing::info!(host = %host_id, hostname, "enrolled");
    // A duplicate hostname or address is accepted but flagged: tell the agent, so the
    // person enrolling learns the name cannot address this host.
    let flags = match st.store.host(&host_id).await {
        Ok(h) => h.flags,
        Err(e) => {
            tracing::warn!(host = %host_id, error = %e, "cannot read the new host's flags");
            Vec::new()
        }
    };
    Ok(EnrollResponse {
        host_id,
        cert_pem,
        ca_pem: ca.cert_pem.clone(),
        flags,
    })
}

/// A token the store refuses (unknown, used, expired: [`StoreError::Invalid`]) is 401
/// `invalid_token`; any other store failure keeps its own answer and log line (review14
/// MED-A: a tampered audit log or a full disk read as "invalid token" to the agent).
fn token_refused(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid(d) => ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", d),
        other => ApiError::from(other),
    }
}
