//! Hosts: list, get, quarantine/release (one, many, by label), labels, revoke.

use axum::extract::{Path, State};
use axum::Json;
use cordon_proto::{ActionRequest, ActionResponse, Host, HostList, LabelsRequest, RetryRequest, RevokeRequest, Role};
use serde::Deserialize;

use cordon_server_core::auth::{Admin, Auth, Responder};
use cordon_server_core::service::{host_views, hosts};
use cordon_server_core::store::{Action, HostFilter, Targets, MAX_PAGE};
use cordon_server_core::{ApiError, ApiJson, ApiQuery, AppState};

/// Query of `GET /v1/hosts`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct HostQuery {
    /// Only hosts with this label.
    pub label: Option<String>,
    /// Only hosts in this state, as lists show it: `normal` (confirmed by the agent),
    /// `quarantine_pending`, `quarantined`, `release_pending`, `failed`, `tampered`,
    /// `not_enforcing`, or `never_reported` (no status report since enrollment; never
    /// under `normal`). Anything else: 400 listing these.
    pub state: Option<String>,
    /// Substring of id, hostname or address.
    pub q: Option<String>,
    /// Revoked hosts: absent or `false` lists those that may still be isolated (not
    /// `normal`, or other sources' claims standing; each carries `revoked: true`) beside
    /// every non-revoked host; `true` or `all` lists every revoked host too; `only` lists
    /// revoked hosts only. Anything else: 400 naming it.
    pub revoked: Option<String>,
    /// Only hosts that are (`true`) or are not (`false`) offline: no report for three
    /// heartbeat intervals, or never seen.
    pub offline: Option<bool>,
    /// Hosts per page (default and maximum 1000).
    pub limit: Option<i64>,
    /// Continue after the previous page (its `next_cursor`, handed out for the same
    /// `sort` and `dir`).
    pub cursor: Option<String>,
    /// Sort by `host` (hostname; the default), `state` (most urgent first: failed,
    /// tampered, not enforcing, degraded, quarantine requested, release requested,
    /// quarantined, normal), `since` (since when the state holds), `by` (who asked for
    /// the desired state), `last_seen` or `backend`; ties by hostname, then id. The
    /// console's sortable columns use the same orders. Anything else: 400 naming it.
    pub sort: Option<String>,
    /// `asc` (default) or `desc`. Anything else: 400 naming it.
    pub dir: Option<String>,
}

/// One page of hosts (viewer), ordered by hostname (or `sort`, `dir`), with
/// `next_cursor`.
#[utoipa::path(get, path = "/v1/hosts", params(HostQuery), security(("bearer" = [])),
    responses((status = 200, body = HostList), (status = 400, body = cordon_proto::ErrorBody),
        (status = 401, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn list(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<HostQuery>,
) -> Result<Json<HostList>, ApiError> {
    auth.require(Role::Viewer)?;
    // The state lists show (trial30 LOW-1): `normal` is a state an agent confirmed;
    // `never_reported` lists the hosts whose agent never reported.
    let (state, reported) = match q.state.as_deref() {
        None | Some("") => (None, None),
        Some(s) => {
            let (st, reported) = cordon_proto::parse_state_filter(s).map_err(ApiError::invalid)?;
            (Some(st), reported)
        }
    };
    let (include_revoked, only_revoked) = match q.revoked.as_deref() {
        None | Some("") | Some("false") => (false, false),
        Some("true") | Some("all") => (true, false),
        Some("only") => (true, true),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "unknown revoked filter {other:?}: use false, true (or all) or only"
            )))
        }
    };
    let filter = HostFilter {
        label: q.label,
        state,
        text: q.q,
        include_revoked,
        only_revoked,
        offline: q.offline,
    };
    let (hosts, next) = if q.sort.is_some() || q.dir.is_some() || reported.is_some() {
        let (sort, descending) = host_views::parse_sort(q.sort.as_deref(), q.dir.as_deref())?;
        let hq = cordon_server_core::store::HostQuery {
            filter,
            attention: None,
            sort,
            descending,
            now_ms: cordon_server_core::timefmt::now_ms(),
            reported,
        };
        let limit = q.limit.unwrap_or(MAX_PAGE);
        host_views::sorted(&st, &auth.0, &hq, q.cursor.as_deref(), limit).await?
    } else {
        hosts::list_page(&st, &auth.0, &filter, q.cursor.as_deref(), q.limit).await?
    };
    Ok(Json(HostList {
        hosts,
        next_cursor: next,
    }))
}

/// One host by id or hostname (viewer); 404 when unknown.
#[utoipa::path(get, path = "/v1/hosts/{id}", params(("id" = String, Path, description = "host id or hostname")),
    security(("bearer" = [])), responses((status = 200, body = Host), (status = 404, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn get_host(State(st): State<AppState>, auth: Auth, Path(id): Path<String>) -> Result<Json<Host>, ApiError> {
    Ok(Json(hosts::get(&st, &auth.0, &id).await?))
}

/// Quarantines one host (responder); a comment is required.
#[utoipa::path(post, path = "/v1/hosts/{id}/quarantine", params(("id" = String, Path, description = "host id or hostname")),
    request_body = ActionRequest, security(("bearer" = [])),
    responses((status = 200, body = ActionResponse), (status = 400, body = cordon_proto::ErrorBody), (status = 404, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn quarantine_one(
    State(st): State<AppState>,
    Responder(auth): Responder,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ActionRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    Ok(Json(
        hosts::act(&st, &auth.0, Action::Quarantine, Targets::Hosts(vec![id]), &req).await?,
    ))
}

/// Releases one host (responder); a comment is required.
#[utoipa::path(post, path = "/v1/hosts/{id}/release", params(("id" = String, Path, description = "host id or hostname")),
    request_body = ActionRequest, security(("bearer" = [])),
    responses((status = 200, body = ActionResponse), (status = 400, body = cordon_proto::ErrorBody), (status = 404, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn release_one(
    State(st): State<AppState>,
    Responder(auth): Responder,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ActionRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    Ok(Json(
        hosts::act(&st, &auth.0, Action::Release, Targets::Hosts(vec![id]), &req).await?,
    ))
}

/// Re-sends the host's current desired state to its agent as a new revision
/// (responder): for a failed, tampered or degraded host, or one whose quarantine or
/// release is still pending. Nothing of the desired state changes; the retry is audited
/// (`retry`, with the caller and comment). 409 when there is nothing to retry or the
/// host moved past `if_revision`.
#[utoipa::path(post, path = "/v1/hosts/{id}/retry", params(("id" = String, Path, description = "host id or hostname")),
    request_body = RetryRequest, security(("bearer" = [])),
    responses((status = 200, body = ActionResponse), (status = 400, body = cordon_proto::ErrorBody),
        (status = 403, body = cordon_proto::ErrorBody), (status = 404, body = cordon_proto::ErrorBody),
        (status = 409, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn retry_one(
    State(st): State<AppState>,
    Responder(auth): Responder,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RetryRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    Ok(Json(hosts::retry_one(&st, &auth.0, &id, &req).await?))
}

/// Quarantines the hosts or the label named in the body (responder).
#[utoipa::path(post, path = "/v1/quarantine", request_body = ActionRequest, security(("bearer" = [])),
    responses((status = 200, body = ActionResponse), (status = 400, body = cordon_proto::ErrorBody), (status = 404, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn quarantine_many(
    State(st): State<AppState>,
    Responder(auth): Responder,
    ApiJson(req): ApiJson<ActionRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    Ok(Json(hosts::act_many(&st, &auth.0, Action::Quarantine, &req).await?))
}

/// Releases the hosts or the label named in the body (responder).
#[utoipa::path(post, path = "/v1/release", request_body = ActionRequest, security(("bearer" = [])),
    responses((status = 200, body = ActionResponse), (status = 400, body = cordon_proto::ErrorBody), (status = 404, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn release_many(
    State(st): State<AppState>,
    Responder(auth): Responder,
    ApiJson(req): ApiJson<ActionRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    Ok(Json(hosts::act_many(&st, &auth.0, Action::Release, &req).await?))
}

/// Adds and removes labels of one host (responder); the Quarantine label needs a comment.
#[utoipa::path(post, path = "/v1/hosts/{id}/labels", params(("id" = String, Path, description = "host id or hostname")),
    request_body = LabelsRequest, security(("bearer" = [])),
    responses((status = 200, body = Host), (status = 400, body = cordon_proto::ErrorBody), (status = 404, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn labels(
    State(st): State<AppState>,
    Responder(auth): Responder,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<LabelsRequest>,
) -> Result<Json<Host>, ApiError> {
    Ok(Json(hosts::labels(&st, &auth.0, &id, &req).await?))
}

/// Revokes a host (admin); 409 while it is quarantined or a release is unconfirmed,
/// unless `force`.
#[utoipa::path(post, path = "/v1/hosts/{id}/revoke", params(("id" = String, Path, description = "host id or hostname")),
    request_body = RevokeRequest, security(("bearer" = [])),
    responses((status = 200, body = Host), (status = 403, body = cordon_proto::ErrorBody), (status = 404, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn revoke(
    State(st): State<AppState>,
    Admin(auth): Admin,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Host>, ApiError> {
    auth.require(Role::Admin)?;
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        RevokeRequest::default()
    } else {
        serde_json::from_slice::<RevokeRequest>(&body)
            .map_err(|e| ApiError::new(axum::http::StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?
    };
    Ok(Json(
        hosts::revoke(&st, &auth.0, &id, req.comment.as_deref(), req.force).await?,
    ))
}

/// Agents refused because their client certificate (signed by this server's CA) names a
/// host id no host has — the database was restored from a backup older than their
/// enrollment, or the host was deleted (viewer; issue 14, trial32 HIGH-2). Each keeps any
/// quarantine in force on its host until released on the host or, after the host is
/// enrolled again, through the server. Most recently seen first.
#[utoipa::path(get, path = "/v1/unknown-agents", security(("bearer" = [])),
    responses((status = 200, body = cordon_proto::UnknownAgentList), (status = 401, body = cordon_proto::ErrorBody),
        (status = 403, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role; internal failures are logged and answered with a
/// generic 500.
pub async fn unknown_agents(
    State(st): State<AppState>,
    auth: Auth,
) -> Result<Json<cordon_proto::UnknownAgentList>, ApiError> {
    let agents = cordon_server_core::service::agent::unknown_agents(&st, &auth.0).await?;
    Ok(Json(cordon_proto::UnknownAgentList { agents }))
}
