//! Rules and Approvals pages over the automation module: read-only rule listing with the
//! fleet guardrails, and pending approvals that admins approve or deny (through the
//! automation service, as the REST API does).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::pages::host_names;
use super::session::{same_origin, ConsoleReject, PageSession};
use super::view::{labels, layout, short_time, Nav};
use super::ConsoleError;
use cordon_automation::service;
use cordon_proto::automation::DecisionRequest;
use cordon_server_core::{ApiError, AppState};

/// Whether the automation pages are served (the automation module is part of the build).
pub fn available() -> bool {
    true
}

fn secs_text(s: i64) -> String {
    super::view::duration_text(s.saturating_mul(1000))
}

pub async fn rules(State(st): State<AppState>, PageSession(s): PageSession) -> Result<Html<String>, ConsoleError> {
    let rules = service::rules(&st, &s.caller).await?;
    let set = service::settings(&st, &s.caller).await?;
    let body = html! {
        div class="page-head" { h1 { "Automation rules" } p class="summary" { strong { (rules.len()) } " rules" } }
        section class="card" aria-labelledby="h-guard" {
            h2 id="h-guard" { "Guardrails" }
            dl id="guardrails" {
                dt { "Automatic actions" } dd { @if set.enabled { span class="state state-normal" { "on" } } @else { span class="state state-failed" { "off (kill switch)" } } }
                dt { "Fleet cap" } dd { "at most " (set.cap_count) " automatic quarantines per " (secs_text(set.cap_window_secs)) "; beyond that, approval" }
                dt { "Per-host cooldown" } dd { (secs_text(set.cooldown_secs)) }
                dt { "Protected labels" } dd { @if set.protected_labels.is_empty() { span class="muted" { "none" } } (labels(&set.protected_labels)) }
            }
        }
        div class="table-wrap spaced" {
            table class="audit" id="rules-table" {
                caption class="sr-only" { "Automation rules" }
                thead { tr {
                    th scope="col" { "Rule" } th scope="col" { "In force" } th scope="col" { "Mode" } th scope="col" { "Events" }
                    th scope="col" { "Host labels" } th scope="col" { "Exceptions / message" } th scope="col" { "Expiry" } th scope="col" { "Updated" }
                } }
                tbody {
                    @for r in &rules {
                        tr {
                            td data-label="Rule" { strong { (r.spec.name) } }
                            td data-label="In force" {
                                @if r.active { span class="state state-normal" { "✓ active" } }
                                @else { span class="state state-failed" title=[r.disabled_reason.as_deref()] { "✕ inactive" } }
                                @if let Some(why) = &r.disabled_reason { div class="detail muted" { (why) } }
                            }
                            td data-label="Mode" { (r.spec.mode) @if r.spec.only_critical { br; span class="muted" { "critical only" } } }
                            td data-label="Events" { @for t in &r.spec.trigger_event_types { code { (t) } " " } }
                            td data-label="Host labels" { (labels(&r.spec.trigger_labels)) }
                            td data-label="Exceptions" {
                                @for a in &r.spec.allow { code { (a) } br; }
                                @if let Some(m) = &r.spec.message { span class="muted" { "“" (m) "”" } }
                            }
                            td data-label="Expiry" { (r.spec.expires_after.as_deref().unwrap_or("—")) }
                            td data-label="Updated" { (short_time(&r.updated_at)) br; span class="muted" { (r.updated_by) } }
                        }
                    }
                    @if rules.is_empty() { tr { td colspan="8" class="empty" { "No rules. Create them with " code { "POST /v1/rules" } "." } } }
                }
            }
        }
    };
    Ok(Html(layout("Rules", Some(&s), Nav::Rules, body).into_string()))
}

#[derive(Debug, Default, Deserialize)]
pub struct ApprovalsQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

pub async fn approvals(
    State(st): State<AppState>,
    PageSession(s): PageSession,
    Query(q): Query<ApprovalsQuery>,
) -> Result<Html<String>, ConsoleError> {
    let status = q.status.clone().unwrap_or_else(|| "pending".into());
    let filter = if status == "all" { None } else { Some(status.as_str()) };
    let list = service::approvals(&st, &s.caller, filter, 500).await?;
    let names = host_names(&st).await?;
    let admin = s.is_admin();
    let body = html! {
        div class="page-head" { h1 { "Approvals" } p class="summary" { strong { (list.len()) } " " (status) } }
        form method="get" action="/console/approvals" class="filters" aria-label="Filter approvals" {
            div class="field" {
                label for="ap-status" { "Status" }
                select id="ap-status" name="status" {
                    @for st in ["pending", "approved", "denied", "superseded", "all"] { option value=(st) selected[st == status] { (st) } }
                }
            }
            div class="field buttons" { button type="submit" { "Apply" } }
        }
        @if let Some(e) = &q.error { p class="error" role="alert" { (e) } }
        @if !admin { p class="muted" { "Only admins approve or deny." } }
        div class="table-wrap" {
            table class="audit" id="approvals-table" {
                caption class="sr-only" { "Automatic quarantines waiting for a decision" }
                thead { tr {
                    th scope="col" { "Asked" } th scope="col" { "Host" } th scope="col" { "Rule" } th scope="col" { "Why" } th scope="col" { "Status" }
                    @if admin { th scope="col" { "Decision" } }
                } }
                tbody {
                    @for a in &list {
                        tr {
                            td data-label="Asked" { (short_time(&a.created_at)) }
                            td data-label="Host" { a href={"/console/hosts/" (a.host_id)} { (names.get(&a.host_id).map(String::as_str).unwrap_or(&a.host_id)) } }
                            td data-label="Rule" { (a.rule) }
                            td data-label="Why" class="detail" { (a.reason) }
                            td data-label="Status" {
                                (a.status)
                                @if let Some(by) = &a.decided_by { br; span class="muted" { "by " (by) } }
                                @if let Some(c) = &a.decision_comment { br; span class="muted" { "“" (c) "”" } }
                            }
                            @if admin {
                                td data-label="Decision" {
                                    @if a.status == "pending" {
                                        form method="post" action="/console/approvals/decide" class="decide" {
                                            input type="hidden" name="csrf" value=(s.csrf);
                                            input type="hidden" name="id" value=(a.id);
                                            label for={"ap-c-" (a.id)} class="sr-only" { "Comment for approval " (a.id) }
                                            input id={"ap-c-" (a.id)} name="comment" required placeholder="comment (required)";
                                            " "
                                            button type="submit" name="decision" value="approve" class="act-approve" { "Approve" }
                                            " "
                                            button type="submit" name="decision" value="deny" { "Deny" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if list.is_empty() { tr { td colspan="6" class="empty" { "Nothing here." } } }
                }
            }
        }
    };
    Ok(Html(layout("Approvals", Some(&s), Nav::Approvals, body).into_string()))
}

fn back_to_approvals(error: Option<&str>) -> Response {
    let to = match error {
        None => "/console/approvals".to_string(),
        Some(e) => format!(
            "/console/approvals?{}",
            serde_urlencoded::to_string([("error", e)]).unwrap_or_default()
        ),
    };
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

pub async fn decide(
    State(st): State<AppState>,
    PageSession(s): PageSession,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    if !same_origin(&headers) {
        return Err(ConsoleReject::CrossSite.into());
    }
    let form: HashMap<String, String> =
        serde_urlencoded::from_bytes(&body).map_err(|e| ConsoleError::BadRequest(e.to_string()))?;
    s.check_csrf(form.get("csrf").map(String::as_str))?;
    let id: i64 = form
        .get("id")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ConsoleError::BadRequest("missing approval id".into()))?;
    let req = DecisionRequest {
        ids: vec![id],
        all: false,
        comment: form.get("comment").cloned(),
    };
    let approve = match form.get("decision").map(String::as_str) {
        Some("approve") => true,
        Some("deny") => false,
        _ => return Err(ConsoleError::BadRequest("decision must be approve or deny".into())),
    };
    let result = if approve {
        service::approve(&st, &s.caller, &req).await
    } else {
        service::deny(&st, &s.caller, &req).await
    };
    match result {
        Ok(_) => Ok(back_to_approvals(None)),
        Err(ApiError { detail, .. }) => Ok(back_to_approvals(Some(&detail))),
    }
}
