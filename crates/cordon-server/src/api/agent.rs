//! Agent sync over mutual TLS: long-poll for desired state, report status.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use cordon_proto::{DesiredState, HostState, StatusReport};
use serde::{Deserialize, Serialize};

use cordon_server_core::auth::AgentAuth;
use cordon_server_core::service::agent;
use cordon_server_core::{ApiError, ApiJson, ApiQuery, AppState};

/// Query of `GET /v1/agent/desired`.
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
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn desired(
    State(st): State<AppState>,
    caller: AgentAuth,
    ApiQuery(q): ApiQuery<DesiredQuery>,
) -> Result<Json<DesiredState>, ApiError> {
    Ok(Json(
        agent::desired(&st, &caller.host_id, q.since, q.wait.map(Duration::from_secs)).await?,
    ))
}

/// Answer to a status report: the host's state as the server now sees it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusAck {
    /// The host's state after the report.
    pub state: HostState,
}

/// An agent's status report (client certificate): records what it applied and
/// answers the host's state; revoked hosts get 403.
#[utoipa::path(post, path = "/v1/agent/status", request_body = StatusReport,
    responses((status = 200, body = StatusAck), (status = 401, body = cordon_proto::ErrorBody), (status = 403, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn status(
    State(st): State<AppState>,
    caller: AgentAuth,
    ApiJson(report): ApiJson<StatusReport>,
) -> Result<Json<StatusAck>, ApiError> {
    let state = agent::status(&st, &caller.host_id, &report).await?;
    Ok(Json(StatusAck { state }))
}
