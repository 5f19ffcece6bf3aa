//! Hosts: list, get, quarantine/release (one, many, by label), labels, revoke.

use axum::extract::{Path, State};
use axum::Json;
use cordon_proto::{
    ActionRequest, ActionResponse, Host, HostList, HostState, LabelsRequest, RevokeRequest, Role, QUARANTINE_LABEL,
};
use serde::Deserialize;

use super::extract::{ApiJson, ApiQuery};
use super::validate;
use crate::auth::{Admin, Auth, Responder};
use crate::store::{Action, HostCursor, HostFilter, Targets, MAX_PAGE};
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct HostQuery {
    /// Only hosts with this label.
    pub label: Option<String>,
    /// Only hosts in this state.
    pub state: Option<String>,
    /// Substring of id, hostname or address.
    pub q: Option<String>,
    /// Include revoked hosts.
    #[serde(default)]
    pub revoked: bool,
    /// Hosts per page (default and maximum 1000).
    pub limit: Option<i64>,
    /// Continue after the previous page (its `next_cursor`).
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/hosts", params(HostQuery), security(("bearer" = [])),
    responses((status = 200, body = HostList), (status = 401, body = cordon_proto::ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<HostQuery>,
) -> Result<Json<HostList>, ApiError> {
    auth.require(Role::Viewer)?;
    let state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(HostState::parse(s).ok_or_else(|| ApiError::invalid(format!("unknown state {s:?}")))?),
    };
    let filter = HostFilter {
        label: q.label,
        state,
        text: q.q,
        include_revoked: q.revoked,
    };
    if q.limit.is_some_and(|l| l < 1) {
        return Err(ApiError::invalid("limit must be at least 1"));
    }
    let after = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(HostCursor::decode)
        .transpose()?;
    let (hosts, next) = st
        .store
        .hosts_page(&filter, after.as_ref(), q.limit.unwrap_or(MAX_PAGE))
        .await?;
    Ok(Json(HostList {
        hosts,
        next_cursor: next.map(|c| c.encode()),
    }))
}

#[utoipa::path(get, path = "/v1/hosts/{id}", params(("id" = String, Path, description = "host id or hostname")),
    security(("bearer" = [])), responses((status = 200, body = Host), (status = 404, body = cordon_proto::ErrorBody)))]
pub async fn get_host(State(st): State<AppState>, auth: Auth, Path(id): Path<String>) -> Result<Json<Host>, ApiError> {
    auth.require(Role::Viewer)?;
    Ok(Json(st.store.host(&id).await?))
}

async fn act(
    st: &AppState,
    auth: &Auth,
    action: Action,
    targets: Targets,
    req: &ActionRequest,
) -> Result<Json<ActionResponse>, ApiError> {
    auth.require(Role::Responder)?;
    let params = match action {
        Action::Quarantine => validate::quarantine_params(req)?,
        Action::Release => validate::release_params(req)?,
    };
    let results = st.store.act(auth.actor(), action, &targets, &params).await?;
    st.hub.notify_all(results.iter().map(|r| &r.host_id));
    tracing::info!(
        actor = auth.actor(),
        action = action.as_str(),
        hosts = results.len(),
        "desired state changed"
    );
    Ok(Json(ActionResponse {
        action: action.as_str().to_string(),
        results,
    }))
}

/// Quarantine or release of the hosts or label named in the body. The role is checked
/// before the body, so a viewer gets 403 whatever it sent.
pub(crate) async fn act_many(
    st: &AppState,
    auth: &Auth,
    action: Action,
    req: &ActionRequest,
) -> Result<Json<ActionResponse>, ApiError> {
    auth.require(Role::Responder)?;
    let targets = validate::targets(req)?;
    act(st, auth, action, targets, req).await
}

#[utoipa::path(post, path = "/v1/hosts/{id}/quarantine", params(("id" = String, Path, description = "host id or hostname")),
    request_body = ActionRequest, security(("bearer" = [])),
    responses((status = 200, body = ActionResponse), (status = 400, body = cordon_proto::ErrorBody), (status = 404, body = cordon_proto::ErrorBody)))]
pub async fn quarantine_one(
    State(st): State<AppState>,
    Responder(auth): Responder,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ActionRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    act(&st, &auth, Action::Quarantine, Targets::Hosts(vec![id]), &req).await
}

#[utoipa::path(post, path = "/v1/hosts/{id}/release", params(("id" = String, Path, description = "host id or hostname")),
    request_body = ActionRequest, security(("bearer" = [])),
    responses((status = 200, body = ActionResponse), (status = 400, body = cordon_proto::ErrorBody), (status = 404, body = cordon_proto::ErrorBody)))]
pub async fn release_one(
    State(st): State<AppState>,
    Responder(auth): Responder,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ActionRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    act(&st, &auth, Action::Release, Targets::Hosts(vec![id]), &req).await
}

#[utoipa::path(post, path = "/v1/quarantine", request_body = ActionRequest, security(("bearer" = [])),
    responses((status = 200, body = ActionResponse), (status = 400, body = cordon_proto::ErrorBody), (status = 404, body = cordon_proto::ErrorBody)))]
pub async fn quarantine_many(
    State(st): State<AppState>,
    Responder(auth): Responder,
    ApiJson(req): ApiJson<ActionRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    act_many(&st, &auth, Action::Quarantine, &req).await
}

#[utoipa::path(post, path = "/v1/release", request_body = ActionRequest, security(("bearer" = [])),
    responses((status = 200, body = ActionResponse), (status = 400, body = cordon_proto::ErrorBody), (status = 404, body = cordon_proto::ErrorBody)))]
pub async fn release_many(
    State(st): State<AppState>,
    Responder(auth): Responder,
    ApiJson(req): ApiJson<ActionRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    act_many(&st, &auth, Action::Release, &req).await
}

#[utoipa::path(post, path = "/v1/hosts/{id}/labels", params(("id" = String, Path, description = "host id or hostname")),
    request_body = LabelsRequest, security(("bearer" = [])),
    responses((status = 200, body = Host), (status = 400, body = cordon_proto::ErrorBody), (status = 404, body = cordon_proto::ErrorBody)))]
pub async fn labels(
    State(st): State<AppState>,
    Responder(auth): Responder,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<LabelsRequest>,
) -> Result<Json<Host>, ApiError> {
    auth.require(Role::Responder)?;
    let valid = |labels: &[String]| labels.iter().map(|l| validate::label(l)).collect::<Result<Vec<_>, _>>();
    let add = valid(&req.add)?;
    let remove = valid(&req.remove)?;
    if add.is_empty() && remove.is_empty() {
        return Err(ApiError::invalid("nothing to add or remove"));
    }
    if add.iter().any(|l| remove.contains(l)) {
        return Err(ApiError::invalid("a label cannot be both added and removed"));
    }
    let touches_quarantine = add.iter().chain(remove.iter()).any(|l| l == QUARANTINE_LABEL);
    let comment = if touches_quarantine {
        Some(validate::comment(req.comment.as_deref())?)
    } else {
        req.comment
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
    };
    let (host_id, changed) = st
        .store
        .change_labels(auth.actor(), &id, &add, &remove, comment.as_deref())
        .await?;
    if changed {
        st.hub.notify(&host_id);
    }
    Ok(Json(st.store.host(&host_id).await?))
}

#[utoipa::path(post, path = "/v1/hosts/{id}/revoke", params(("id" = String, Path, description = "host id or hostname")),
    request_body = RevokeRequest, security(("bearer" = [])),
    responses((status = 200, body = Host), (status = 403, body = cordon_proto::ErrorBody), (status = 404, body = cordon_proto::ErrorBody)))]
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
    let host_id = st
        .store
        .revoke(auth.actor(), &id, req.comment.as_deref(), req.force)
        .await?;
    // Wake a waiting long-poll so it notices the revocation and closes now.
    st.hub.notify(&host_id);
    Ok(Json(st.store.host(&host_id).await?))
}
