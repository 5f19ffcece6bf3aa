//! HTTP handlers of the automation API.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use cordon_proto::Role;
use serde::Deserialize;

use cordon_proto::automation::*;
use cordon_server_core::auth::Auth;
use cordon_server_core::store::automation::EventFilter;
use cordon_server_core::{ApiError, ApiJson, AppState};

use crate::{adapters, service};

fn limit(l: Option<i64>) -> i64 {
    l.unwrap_or(100).clamp(1, 1000)
}

fn query<T: serde::de::DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, ApiError> {
    serde_urlencoded_like(uri.query().unwrap_or(""))
}

/// Parses a query string through axum's own extractor logic (serde via `Query`).
fn serde_urlencoded_like<T: serde::de::DeserializeOwned>(q: &str) -> Result<T, ApiError> {
    let uri: axum::http::Uri = format!("/?{q}")
        .parse()
        .map_err(|_| ApiError::invalid("malformed query string"))?;
    axum::extract::Query::<T>::try_from_uri(&uri)
        .map(|x| x.0)
        .map_err(|e| ApiError::invalid(e.body_text()))
}

// ---- intake ----

/// Takes one event in the generic format (responder): qualifies it against the rules and acts (quarantine, approval or dry run).
#[utoipa::path(post, path = "/v1/events", request_body = EventIn, security(("bearer" = [])), tag = "automation",
    responses((status = 200, body = IntakeResponse), (status = 400, body = cordon_proto::ErrorBody), (status = 403, body = cordon_proto::ErrorBody)))]
pub async fn post_event(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(ev): ApiJson<EventIn>,
) -> Result<Json<IntakeResponse>, ApiError> {
    let rec = service::ingest(&st, &auth.0, &ev, &[]).await?;
    Ok(Json(IntakeResponse {
        events: vec![rec],
        rejected: vec![],
    }))
}

/// Query of `POST /v1/events/wazuh`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct WazuhQuery {
    /// Rule level at or above which the alert is `critical` (default 12).
    pub critical_level: Option<i64>,
}

/// Takes a Wazuh alert as a custom integration posts it (responder); the rule level maps to a severity.
#[utoipa::path(post, path = "/v1/events/wazuh", params(WazuhQuery), request_body(content = Object, description = "Wazuh alert JSON as passed to a custom integration"),
    security(("bearer" = [])), tag = "automation",
    responses((status = 200, body = IntakeResponse), (status = 400, body = cordon_proto::ErrorBody)))]
pub async fn post_wazuh(
    State(st): State<AppState>,
    auth: Auth,
    uri: axum::http::Uri,
    body: Bytes,
) -> Result<Json<IntakeResponse>, ApiError> {
    auth.require(Role::Responder)?;
    let q: WazuhQuery = query(&uri)?;
    let alert: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("not a Wazuh alert: {e}"),
        )
    })?;
    let ev = adapters::wazuh(&alert, q.critical_level.unwrap_or(adapters::WAZUH_CRITICAL_LEVEL))
        .map_err(ApiError::invalid)?;
    let rec = service::ingest(&st, &auth.0, &ev, &adapters::wazuh_host_fallbacks(&alert)).await?;
    Ok(Json(IntakeResponse {
        events: vec![rec],
        rejected: vec![],
    }))
}

/// Takes Velociraptor artifact rows (JSON array or JSON lines, responder), one event per row; rows that do not convert are refused with the reason.
#[utoipa::path(post, path = "/v1/events/velociraptor", request_body(content = String, description = "Velociraptor client event rows, one JSON object per line"),
    security(("bearer" = [])), tag = "automation",
    responses((status = 200, body = IntakeResponse, description = "at least one event accepted; `rejected` lists the lines that were not, with why"),
        (status = 400, body = cordon_proto::ErrorBody, description = "no event accepted: the reason for every line")))]
pub async fn post_velociraptor(
    State(st): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> Result<Json<IntakeResponse>, ApiError> {
    auth.require(Role::Responder)?;
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::invalid("body is not UTF-8"))?;
    let items = adapters::velociraptor_lines(text);
    if items.is_empty() {
        return Err(ApiError::invalid("no events in the body"));
    }
    if items.len() > 1000 {
        return Err(ApiError::invalid("at most 1000 events per request"));
    }
    let mut out = IntakeResponse {
        events: vec![],
        rejected: vec![],
    };
    for item in items {
        match item {
            Ok(ev) => match service::ingest(
                &st,
                &auth.0,
                &ev,
                &ev.raw
                    .as_ref()
                    .map(adapters::velociraptor_host_fallbacks)
                    .unwrap_or_default(),
            )
            .await
            {
                Ok(rec) => out.events.push(rec),
                Err(e) if e.status == StatusCode::BAD_REQUEST => out.rejected.push(e.detail),
                Err(e) => return Err(e),
            },
            Err(why) => out.rejected.push(why),
        }
    }
    if out.events.is_empty() {
        // Nothing was accepted: the sender must learn it (a 200 here lost every event).
        let mut detail = format!("no event accepted: {}", out.rejected.join("; "));
        if detail.len() > 4000 {
            let mut cut = 4000;
            while !detail.is_char_boundary(cut) {
                cut -= 1;
            }
            detail.truncate(cut);
            detail.push_str(" …");
        }
        return Err(ApiError::invalid(detail));
    }
    Ok(Json(out))
}

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventQuery {
    /// Only events with this status (`quarantined`, `approval_required`, `unknown_host`, ...).
    pub status: Option<String>,
    /// Only events about this host id.
    pub host: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// Events received, newest first (viewer), filtered by status and host.
#[utoipa::path(get, path = "/v1/events", params(EventQuery), security(("bearer" = [])), tag = "automation",
    responses((status = 200, body = EventList)))]
pub async fn list_events(
    State(st): State<AppState>,
    auth: Auth,
    uri: axum::http::Uri,
) -> Result<Json<EventList>, ApiError> {
    auth.require(Role::Viewer)?;
    let q: EventQuery = query(&uri)?;
    let f = EventFilter {
        status: q
            .status
            .as_deref()
            .map(cordon_proto::automation::EventStatus::from_wire),
        host_id: q.host,
        limit: limit(q.limit),
    };
    Ok(Json(EventList {
        events: service::events(&st, &auth.0, &f).await?,
    }))
}

/// One event with each rule's outcome (viewer); 404 when unknown.
#[utoipa::path(get, path = "/v1/events/{id}", params(("id" = String, Path, description = "event id")), security(("bearer" = [])), tag = "automation",
    responses((status = 200, body = EventRecord), (status = 404, body = cordon_proto::ErrorBody)))]
pub async fn get_event(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<EventRecord>, ApiError> {
    Ok(Json(service::event(&st, &auth.0, &id).await?))
}

// ---- rules ----

/// Every automation rule, with whether it is active and why not (viewer).
#[utoipa::path(get, path = "/v1/rules", security(("bearer" = [])), tag = "automation", responses((status = 200, body = RuleList)))]
pub async fn list_rules(State(st): State<AppState>, auth: Auth) -> Result<Json<RuleList>, ApiError> {
    Ok(Json(RuleList {
        rules: service::rules(&st, &auth.0).await?,
    }))
}

/// One rule by name (viewer); 404 when unknown.
#[utoipa::path(get, path = "/v1/rules/{name}", params(("name" = String, Path, description = "rule name")), security(("bearer" = [])), tag = "automation",
    responses((status = 200, body = RuleRecord), (status = 404, body = cordon_proto::ErrorBody)))]
pub async fn get_rule(
    State(st): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Json<RuleRecord>, ApiError> {
    Ok(Json(service::rule(&st, &auth.0, &name).await?))
}

/// Creates or replaces a rule. A rule that fails validation is stored disabled with the
/// reason (`active: false`, `disabled_reason`).
#[utoipa::path(post, path = "/v1/rules", request_body = RuleSpec, security(("bearer" = [])), tag = "automation",
    responses((status = 200, body = RuleRecord), (status = 400, body = cordon_proto::ErrorBody), (status = 403, body = cordon_proto::ErrorBody)))]
pub async fn post_rule(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(spec): ApiJson<RuleSpec>,
) -> Result<Json<RuleRecord>, ApiError> {
    Ok(Json(service::save_rule(&st, &auth.0, spec).await?))
}

/// Creates or replaces the rule `name` (admin), stored disabled with the reason when invalid.
#[utoipa::path(put, path = "/v1/rules/{name}", params(("name" = String, Path, description = "rule name")), request_body = RuleSpec,
    security(("bearer" = [])), tag = "automation",
    responses((status = 200, body = RuleRecord), (status = 400, body = cordon_proto::ErrorBody)))]
pub async fn put_rule(
    State(st): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
    ApiJson(mut spec): ApiJson<RuleSpec>,
) -> Result<Json<RuleRecord>, ApiError> {
    if spec.name.trim().is_empty() {
        spec.name = name.clone();
    }
    if spec.name.trim() != name {
        return Err(ApiError::invalid("the name in the body differs from the URL"));
    }
    Ok(Json(service::save_rule(&st, &auth.0, spec).await?))
}

/// Deletes a rule (admin); 404 when unknown.
#[utoipa::path(delete, path = "/v1/rules/{name}", params(("name" = String, Path, description = "rule name")), security(("bearer" = [])), tag = "automation",
    responses((status = 204), (status = 404, body = cordon_proto::ErrorBody)))]
pub async fn delete_rule(
    State(st): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    service::delete_rule(&st, &auth.0, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- settings (guardrails, kill switch) ----

/// The fleet guardrails: kill switch, cap, cooldown, protected labels, retention (viewer).
#[utoipa::path(get, path = "/v1/automation/settings", security(("bearer" = [])), tag = "automation", responses((status = 200, body = Settings)))]
pub async fn get_settings(State(st): State<AppState>, auth: Auth) -> Result<Json<Settings>, ApiError> {
    Ok(Json(service::settings(&st, &auth.0).await?))
}

/// Changes guardrails; `{"enabled": false}` is the kill switch.
#[utoipa::path(put, path = "/v1/automation/settings", request_body = SettingsPatch, security(("bearer" = [])), tag = "automation",
    responses((status = 200, body = Settings), (status = 400, body = cordon_proto::ErrorBody)))]
pub async fn put_settings(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(patch): ApiJson<SettingsPatch>,
) -> Result<Json<Settings>, ApiError> {
    Ok(Json(service::update_settings(&st, &auth.0, &patch).await?))
}

// ---- approvals ----

/// Query of `GET /v1/approvals`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ApprovalQuery {
    /// `pending` (default), `approved`, `denied`, `superseded` or `all`.
    pub status: Option<String>,
    /// At most this many, newest first.
    pub limit: Option<i64>,
}

/// Approval requests (viewer), pending by default.
#[utoipa::path(get, path = "/v1/approvals", params(ApprovalQuery), security(("bearer" = [])), tag = "automation",
    responses((status = 200, body = ApprovalList)))]
pub async fn list_approvals(
    State(st): State<AppState>,
    auth: Auth,
    uri: axum::http::Uri,
) -> Result<Json<ApprovalList>, ApiError> {
    auth.require(Role::Viewer)?;
    let q: ApprovalQuery = query(&uri)?;
    let status = match q.status.as_deref() {
        None => Some("pending"),
        Some("all") => None,
        Some(s) => Some(s),
    };
    Ok(Json(ApprovalList {
        approvals: service::approvals(&st, &auth.0, status, limit(q.limit)).await?,
    }))
}

/// Approves a pending request (responder): the quarantine it describes is carried out now, audited under the approver.
#[utoipa::path(post, path = "/v1/approvals/approve", request_body = DecisionRequest, security(("bearer" = [])), tag = "automation",
    responses((status = 200, body = DecisionResponse), (status = 400, body = cordon_proto::ErrorBody), (status = 403, body = cordon_proto::ErrorBody)))]
pub async fn approve(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<DecisionRequest>,
) -> Result<Json<DecisionResponse>, ApiError> {
    Ok(Json(DecisionResponse {
        results: service::approve(&st, &auth.0, &req).await?,
    }))
}

/// Denies a pending request (responder); nothing is enforced. Audited.
#[utoipa::path(post, path = "/v1/approvals/deny", request_body = DecisionRequest, security(("bearer" = [])), tag = "automation",
    responses((status = 200, body = DecisionResponse), (status = 400, body = cordon_proto::ErrorBody), (status = 403, body = cordon_proto::ErrorBody)))]
pub async fn deny(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(req): ApiJson<DecisionRequest>,
) -> Result<Json<DecisionResponse>, ApiError> {
    Ok(Json(DecisionResponse {
        results: service::deny(&st, &auth.0, &req).await?,
    }))
}

// ---- notification targets and delivery status ----

/// Notification targets (viewer).
#[utoipa::path(get, path = "/v1/notifications/targets", security(("bearer" = [])), tag = "automation", responses((status = 200, body = TargetList)))]
pub async fn list_targets(State(st): State<AppState>, auth: Auth) -> Result<Json<TargetList>, ApiError> {
    Ok(Json(TargetList {
        targets: service::targets(&st, &auth.0).await?,
    }))
}

/// Adds a notification target (admin); 400 for an incomplete one, 409 when the name exists.
#[utoipa::path(post, path = "/v1/notifications/targets", request_body = TargetSpec, security(("bearer" = [])), tag = "automation",
    responses((status = 200, body = Target), (status = 400, body = cordon_proto::ErrorBody), (status = 409, body = cordon_proto::ErrorBody)))]
pub async fn post_target(
    State(st): State<AppState>,
    auth: Auth,
    ApiJson(spec): ApiJson<TargetSpec>,
) -> Result<Json<Target>, ApiError> {
    Ok(Json(service::add_target(&st, &auth.0, &spec).await?))
}

/// Removes a notification target (admin); its pending deliveries are dropped.
#[utoipa::path(delete, path = "/v1/notifications/targets/{id}", params(("id" = i64, Path, description = "target id")), security(("bearer" = [])), tag = "automation",
    responses((status = 204), (status = 404, body = cordon_proto::ErrorBody)))]
pub async fn delete_target(
    State(st): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Role::Admin)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::invalid(format!("{id:?} is not a target id")))?;
    service::delete_target(&st, &auth.0, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /v1/notifications/deliveries`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DeliveryQuery {
    /// `pending`, `delivered` or `dead`.
    pub status: Option<String>,
    /// At most this many, newest first.
    pub limit: Option<i64>,
}

/// Notification deliveries in the outbox and their status (viewer).
#[utoipa::path(get, path = "/v1/notifications/deliveries", params(DeliveryQuery), security(("bearer" = [])), tag = "automation",
    responses((status = 200, body = DeliveryList)))]
pub async fn list_deliveries(
    State(st): State<AppState>,
    auth: Auth,
    uri: axum::http::Uri,
) -> Result<Json<DeliveryList>, ApiError> {
    auth.require(Role::Viewer)?;
    let q: DeliveryQuery = query(&uri)?;
    Ok(Json(DeliveryList {
        deliveries: service::deliveries(&st, &auth.0, q.status.as_deref(), limit(q.limit)).await?,
    }))
}
