//! Agent sync over mutual TLS: long-poll for desired state, report status.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use cordon_proto::{DesiredState, HostState, StatusReport};
use serde::{Deserialize, Serialize};

use super::extract::{ApiJson, ApiQuery};
use crate::auth::AgentAuth;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DesiredQuery {
    /// Return as soon as the revision is greater than this (otherwise after `wait`).
    pub since: Option<i64>,
    /// Seconds to hold the request open (capped by the server, default 25).
    pub wait: Option<u64>,
}

/// Long-poll: answers at once when the host's revision is newer than `since`, else
/// when it changes, else after `wait` seconds with the current state.
#[utoipa::path(get, path = "/v1/agent/desired", params(DesiredQuery),
    responses((status = 200, body = DesiredState), (status = 401, body = cordon_proto::ErrorBody), (status = 403, body = cordon_proto::ErrorBody)))]
pub async fn desired(
    State(st): State<AppState>,
    agent: AgentAuth,
    ApiQuery(q): ApiQuery<DesiredQuery>,
) -> Result<Json<DesiredState>, ApiError> {
    let wait = q.wait.map(Duration::from_secs).unwrap_or(st.max_wait).min(st.max_wait);
    let deadline = tokio::time::Instant::now() + wait;
    let mut rx = st.hub.subscribe(&agent.host_id);
    tracing::debug!(host = %agent.host_id, since = ?q.since, "agent long-poll");
    loop {
        let (desired, revoked) = st
            .store
            .desired(&agent.host_id)
            .await?
            .ok_or_else(|| ApiError::forbidden("host no longer exists"))?;
        let newer = q.since.is_none_or(|s| desired.revision > s);
        // A revoked host only gets here while a release ordered before the revocation is
        // unconfirmed (see `Store::host_active`): it is answered that release once, and
        // refused otherwise, also when the revocation lands during its long-poll (on any
        // replica).
        if revoked && (desired.quarantined || !newer) {
            return Err(ApiError::forbidden(format!("host {} is revoked", agent.host_id)));
        }
        if newer || tokio::time::Instant::now() >= deadline {
            tracing::debug!(host = %agent.host_id, revision = desired.revision, "agent long-poll answered");
            return Ok(Json(desired));
        }
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return Ok(Json(desired));
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(Json(desired)),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusAck {
    pub state: HostState,
}

#[utoipa::path(post, path = "/v1/agent/status", request_body = StatusReport,
    responses((status = 200, body = StatusAck), (status = 401, body = cordon_proto::ErrorBody), (status = 403, body = cordon_proto::ErrorBody)))]
pub async fn status(
    State(st): State<AppState>,
    agent: AgentAuth,
    ApiJson(report): ApiJson<StatusReport>,
) -> Result<Json<StatusAck>, ApiError> {
    let state = st.store.record_report(&agent.host_id, &report).await?;
    tracing::debug!(host = %agent.host_id, state = state.as_str(), rev = report.applied_revision, "agent status");
    Ok(Json(StatusAck { state }))
}
