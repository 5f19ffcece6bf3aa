//! Rules, Approvals and Events pages over the automation module: read-only rule listing
//! with the fleet guardrails; pending approvals that admins review (the event behind
//! each, its age) and approve or deny one by one or in bulk, through the automation
//! service as the REST API does; and the events the automation received.
//!
//! Approving quarantines a host, so nothing on the Approvals page submits on Enter: the
//! decision buttons are plain buttons that open a review dialog, and the decision is sent
//! from there (JSON, CSRF header). Errors come back as the server's own message in the
//! reply, never through the URL.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use maud::html;
use serde::{Deserialize, Serialize};

use super::pages::host_names;
use super::session::{ApiSession, PageSession, CSRF_HEADER};
use super::view::{ago_text, flag_badges, flag_texts, labels, layout, short_id, short_id_tag, time_at, Nav};
use super::ConsoleError;
use cordon_automation::service;
use cordon_proto::automation::{ApprovalStatus, DecisionRequest, DecisionStatus, EventRecord, EventStatus};
use cordon_server_core::store::automation::EventFilter;
use cordon_server_core::{ApiError, AppState};

/// Whether the automation pages are served (the automation module is part of the build).
pub fn available() -> bool {
    true
}

/// A guardrail's span in words (`10 minutes`, `1 hour`; issue 13: the one printer,
/// [`Span::words`](cordon_server_core::timefmt::Span::words)); `none` for zero.
fn secs_text(s: i64) -> String {
    u64::try_from(s)
        .ok()
        .and_then(cordon_server_core::timefmt::Span::from_secs)
        .map_or_else(|| "none".to_string(), |span| span.words())
}

/// `GET /console/rules`: the automation rules and settings.
///
/// # Errors
/// `ConsoleError`: the service's refusal with its status (403
/// below the role, 400/404/409 as the service says, 503 when the server cannot take
/// changes); an internal failure is logged and shown as a generic 500 page.
pub async fn rules(State(st): State<AppState>, PageSession(s): PageSession) -> Result<Html<String>, ConsoleError> {
    let rules = service::rules(&st, &s.caller).await?;
    let set = service::settings(&st, &s.caller).await?;
    // Labels saved before the label checks (look-alikes, spaces, bidi): flagged, since a
    // rule on one of them may not fire and a look-alike may pass for a protected label.
    let poisoned = service::poisoned_labels(&st, &s.caller).await?;
    let body = html! {
        div class="page-head" id="rules-head" data-live="" { h1 { "Automation rules" } p class="summary" { strong { (rules.len()) } " rules" } }
        @if !poisoned.is_empty() {
            section class="attention" role="alert" id="poisoned-labels" aria-labelledby="h-poisoned" {
                strong id="h-poisoned" { "⚠ Labels stored before the label checks:" }
                ul { @for p in &poisoned { li { (p) } } }
                p { "Rules on such labels may not fire. Remove or rename them (" code { "cordon hosts label HOST --remove LABEL" } " removes a label as it is stored)." }
            }
        }
        section class="card" id="guard-card" aria-labelledby="h-guard" data-live="" {
            h2 id="h-guard" { "Guardrails" }
            @if s.is_admin() {
                div class="toolbar" {
                    @if set.enabled {
                        button type="button" class="settings-open danger-outline" id="kill-switch" data-patch=r#"{"enabled":false}"#
                            data-summary="Stop every automatic action (kill switch)? Rules keep recording events; nothing is quarantined automatically until resumed." {
                            "Stop automatic actions (kill switch)…"
                        }
                    } @else {
                        button type="button" class="settings-open" id="kill-switch" data-patch=r#"{"enabled":true}"#
                            data-summary="Resume automatic actions? Rules in force quarantine hosts again (within the fleet cap)." {
                            "Resume automatic actions…"
                        }
                    }
                    button type="button" class="settings-open" id="edit-guardrails" data-edit="" { "Change guardrails…" }
                }
            }
            dl id="guardrails" {
                dt { "Automatic actions" } dd { @if set.enabled { span class="state state-normal" { "on" } } @else { span class="state state-failed" { "off (kill switch)" } } }
                dt { "Fleet cap" } dd { "at most " (set.cap_count) " automatic quarantines per " (secs_text(set.cap_window_secs)) "; beyond that, approval" }
                dt { "Per-host cooldown" } dd { (secs_text(set.cooldown_secs)) }
                dt { "Protected labels" } dd { @if set.protected_labels.is_empty() { span class="muted" { "none" } } (labels(&set.protected_labels)) }
            }
        }
        div class="table-wrap spaced" id="rules-live" data-live="" {
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
                                // `cannot_fire` is computed by the code that evaluates events
                                // (trial11 HIGH 1): never "active" for a rule that cannot fire.
                                @if !r.active { span class="state state-failed" { "✕ inactive" } }
                                @else if r.cannot_fire.is_empty() { span class="state state-normal" { "✓ active" } }
                                @else { span class="state state-degraded" { "⚠ cannot fire" } }
                                @if !r.cannot_fire.is_empty() {
                                    ul class="detail why-not" { @for why in &r.cannot_fire { li { (why) } } }
                                } @else if let Some(why) = &r.disabled_reason { div class="detail muted" { (why) } }
                            }
                            td data-label="Mode" { (r.spec.mode.as_str()) @if r.spec.only_critical { br; span class="muted" { "critical only" } } }
                            td data-label="Events" { @for t in &r.spec.trigger_event_types { code { (t) } " " } }
                            td data-label="Host labels" { (labels(&r.spec.trigger_labels)) }
                            td data-label="Exceptions" {
                                @for a in &r.spec.allow { code { (a) } br; }
                                @if let Some(m) = &r.spec.message { span class="muted" { "“" (m) "”" } }
                            }
                            td data-label="Expiry" { (r.spec.expires_after.as_deref().unwrap_or("—")) }
                            td data-label="Updated" { (time_at(&r.updated_at)) br; span class="muted" { (r.updated_by) } }
                        }
                    }
                    @if rules.is_empty() { tr { td colspan="8" class="empty" { "No rules. Create them with " code { "POST /v1/rules" } "." } } }
                }
            }
        }
    };
    let body = html! {
        (body)
        @if s.is_admin() { (settings_dialog(&set)) }
        (super::pages::live_note())
    };
    Ok(Html(layout("Rules", Some(&s), Nav::Rules, body).into_string()))
}

/// Editing the guardrails: fields, then a review of what changes, then apply. Enter never
/// applies (the form only ever leads to the review).
fn settings_dialog(set: &cordon_proto::automation::Settings) -> maud::Markup {
    html! {
        dialog id="settings-dialog" aria-labelledby="sd-title" {
            form id="settings-form" method="dialog" novalidate
                data-current=(serde_json::json!({"cap_count": set.cap_count, "cap_window_secs": set.cap_window_secs,
                    "cooldown_secs": set.cooldown_secs, "protected_labels": set.protected_labels}).to_string()) {
                h2 id="sd-title" { "Change guardrails" }
                div id="sd-fields" {
                    div class="field" { label for="sd-cap" { "Fleet cap (automatic quarantines per window)" } input id="sd-cap" name="cap_count" type="number" min="0" value=(set.cap_count); }
                    div class="field" { label for="sd-window" { "Cap window (seconds)" } input id="sd-window" name="cap_window_secs" type="number" min="1" value=(set.cap_window_secs); }
                    div class="field" { label for="sd-cool" { "Per-host cooldown (seconds)" } input id="sd-cool" name="cooldown_secs" type="number" min="0" value=(set.cooldown_secs); }
                    div class="field" { label for="sd-prot" { "Protected labels (comma-separated)" } input id="sd-prot" name="protected_labels" value=(set.protected_labels.join(", ")); }
                }
                p id="sd-summary" class="confirm" role="alert" {}
                ul id="sd-changes" class="warnings" {}
                p class="field-error" id="err-sd" role="alert" {}
                div class="buttons" {
                    button type="button" id="sd-cancel" { "Cancel" }
                    button type="submit" id="sd-review" { "Review" }
                    button type="button" class="primary danger" id="sd-apply" hidden { "Apply" }
                }
            }
        }
    }
}

/// Applies a guardrail change through the automation service, as the REST API does (admin only,
/// validated, audited as `automation_settings` / `automation_stop` / `automation_start`).
pub async fn settings(
    State(st): State<AppState>,
    ApiSession(s): ApiSession,
    headers: HeaderMap,
    Json(patch): Json<cordon_proto::automation::SettingsPatch>,
) -> Response {
    if let Err(r) = s.check_csrf(headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())) {
        return r.into_response();
    }
    match service::update_settings(&st, &s.caller, &patch).await {
        Ok(set) => Json(DecideReply {
            ok: true,
            error: None,
            summary: if set.enabled {
                "Guardrails saved; automatic actions are on.".into()
            } else {
                "Saved: automatic actions are OFF (kill switch).".into()
            },
        })
        .into_response(),
        Err(ApiError { status, detail, .. }) => decide_reply(status, detail),
    }
}

#[derive(Debug, Default, Deserialize)]
/// Query of the approvals page (`?status=pending|approved|denied|superseded`).
pub struct ApprovalsQuery {
    #[serde(default)]
    status: Option<String>,
}

/// The event an approval is about, as the review shows it.
fn event_summary(e: Option<&EventRecord>) -> maud::Markup {
    html! {
        @match e {
            Some(e) => {
                dl class="event-facts" {
                    dt { "Event" } dd { code { (e.event_type) } " · " span class={"sev sev-" (e.severity.as_str())} { (e.severity.as_str()) } }
                    dt { "Source" } dd { (e.source) }
                    dt { "Occurred" } dd { @if let Some(t) = &e.occurred_at { (time_at(t)) } @else { "—" } }
                    dt { "Received" } dd { (time_at(&e.received_at)) " (" (ago_text(&e.received_at)) " ago)" }
                    @if let Some(r) = &e.rule { dt { "Rule" } dd { (r) } }
                    dt { "Id" } dd { code { (e.id) } }
                }
            }
            None => { p class="muted" { "The event is no longer stored (retention)." } }
        }
    }
}

/// `GET /console/approvals`: automatic quarantines waiting for (or given) a decision.
///
/// # Errors
/// `ConsoleError`: the service's refusal with its status (403
/// below the role, 400/404/409 as the service says, 503 when the server cannot take
/// changes); an internal failure is logged and shown as a generic 500 page.
pub async fn approvals(
    State(st): State<AppState>,
    PageSession(s): PageSession,
    Query(q): Query<ApprovalsQuery>,
) -> Result<Html<String>, ConsoleError> {
    let status = q.status.clone().unwrap_or_else(|| "pending".into());
    let filter = if status == "all" { None } else { Some(status.as_str()) };
    let list = service::approvals(&st, &s.caller, filter, 500).await?;
    let names = host_names(&st, &s).await?;
    let flagged = hosts_by_id(&st, &s, list.iter().map(|a| &a.host_id)).await?;
    let mut events: HashMap<String, EventRecord> = HashMap::new();
    for a in &list {
        if !events.contains_key(&a.event_id) {
            // An event the retention removed is shown as such (404), not as an error.
            match service::event(&st, &s.caller, &a.event_id).await {
                Ok(e) => {
                    events.insert(a.event_id.clone(), e);
                }
                Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let admin = s.is_admin();
    let pending = list.iter().filter(|a| a.status == ApprovalStatus::Pending).count();
    let killed = !service::settings(&st, &s.caller).await?.enabled;
    let body = html! {
        // Live, as the table is: the count never lags the rows (trial8).
        div class="page-head" id="approvals-head" data-live="" { h1 { "Approvals" } p class="summary" { strong id="approvals-count" { (list.len()) } " " (status) } }
        form method="get" action="/console/approvals" class="filters" aria-label="Filter approvals" {
            div class="field" {
                label for="ap-status" { "Status" }
                select id="ap-status" name="status" {
                    @for st in ["pending", "approved", "denied", "superseded", "all"] { option value=(st) selected[st == status] { (st) } }
                }
            }
            div class="field buttons" { button type="submit" { "Apply" } }
        }
        @if killed { p class="alert alert-warn" id="ap-killswitch" role="status" { (KILL_SWITCH_APPROVE) } }
        @if !admin { p class="muted" { "Only admins approve or deny." } }
        @if admin && pending > 0 {
            div class="toolbar" role="toolbar" aria-label="Decide on selected approvals" {
                button type="button" class="decide-open" data-decision="approve" data-target="selection" id="approve-selected" { "Approve selected…" }
                button type="button" class="decide-open" data-decision="deny" data-target="selection" id="deny-selected" { "Deny selected…" }
                span id="ap-selection-count" class="muted" aria-live="polite" { "0 selected" }
            }
        }
        div class="table-wrap" id="approvals-live" data-live="" {
            table class="audit" id="approvals-table" {
                caption class="sr-only" { "Automatic quarantines waiting for a decision" }
                thead { tr {
                    @if admin && pending > 0 { th scope="col" class="sel" { input type="checkbox" id="ap-select-all" aria-label="Select all pending"; } }
                    th scope="col" { "Asked" } th scope="col" { "Host" } th scope="col" { "Event" } th scope="col" { "Rule" } th scope="col" { "Why" } th scope="col" { "Status" }
                    @if admin { th scope="col" { "Decision" } }
                } }
                tbody {
                    @for a in &list {
                        @let host = names.get(&a.host_id).map(String::as_str).unwrap_or(&a.host_id);
                        @let ev = events.get(&a.event_id);
                        tr id={"approval-" (a.id)} data-approval=(a.id) data-status=(a.status) data-host=(host) {
                            @if admin && pending > 0 {
                                td class="sel" { @if a.status == ApprovalStatus::Pending { input type="checkbox" class="ap-select" value=(a.id) aria-label={"Select approval for " (host)}; } }
                            }
                            td data-label="Asked" { (time_at(&a.created_at)) br; span class="muted" { (ago_text(&a.created_at)) " ago" } }
                            td data-label="Host" {
                                a href={"/console/hosts/" (a.host_id)} { (super::view::breakable_name(host)) } " " (short_id_tag(&a.host_id))
                                @if let Some(h) = flagged.get(&a.host_id) { (flag_badges(h)) }
                            }
                            td data-label="Event" {
                                @if let Some(e) = ev { code { (e.event_type) } " " span class={"sev sev-" (e.severity.as_str())} { (e.severity.as_str()) } br; span class="muted" { (e.source) } }
                                @else { span class="muted" { (a.event_id) } }
                            }
                            td data-label="Rule" { (a.rule) }
                            td data-label="Why" class="detail" { (a.reason) }
                            td data-label="Status" {
                                (a.status)
                                @if let Some(by) = a.decided_by_label() { br; span class="muted" { "by " (by) } }
                                @if let Some(c) = &a.decision_comment { br; span class="muted" { "“" (c) "”" } }
                            }
                            @if admin {
                                td data-label="Decision" {
                                    @if a.status == ApprovalStatus::Pending {
                                        button type="button" class="decide-open" data-decision="approve" data-ids=(a.id) { "Review & approve…" }
                                        " "
                                        button type="button" class="decide-open" data-decision="deny" data-ids=(a.id) { "Deny…" }
                                        template class="review-event" { (event_summary(ev)) }
                                    }
                                }
                            }
                        }
                    }
                    @if list.is_empty() { tr { td colspan="8" class="empty" { "Nothing here." } } }
                }
            }
        }
        @if admin { (decide_dialog()) }
        (super::pages::live_note())
    };
    Ok(Html(layout("Approvals", Some(&s), Nav::Approvals, body).into_string()))
}

/// What approving means while the kill switch is on (trial11 LOW 10): the kill switch
/// stops automatic actions only; an admin's approval is a decision and quarantines now.
pub const KILL_SWITCH_APPROVE: &str = "Automatic actions are stopped (kill switch). Approving is an admin decision, \
not an automatic action: it still quarantines each approved host now. Deny, or leave pending, to keep the hosts as they are.";

/// What approving does to a host whose agent runs with `enforce = false`: the quarantine
/// is requested (recorded, audited), but nothing is blocked there.
pub const NOT_ENFORCING_APPROVE: &str =
    "quarantine requested, but NOT ENFORCING: the agent runs with enforce = false and blocks nothing";

/// The review dialog. Its form never submits (Enter in the comment does nothing): the
/// decision is a plain button, and focus starts in the comment, not on a decision.
fn decide_dialog() -> maud::Markup {
    html! {
        dialog id="decide-dialog" aria-labelledby="dd-title" {
            form id="decide-form" method="dialog" novalidate {
                h2 id="dd-title" { "Review" }
                p id="dd-summary" class="confirm" {}
                ul id="dd-warnings" class="warnings" {}
                div id="dd-events" class="review-events" {}
                div class="field" {
                    label for="dd-comment" { "Comment " span class="req" { "(required)" } }
                    input id="dd-comment" name="comment" autocomplete="off" aria-describedby="err-dd";
                }
                p class="field-error" id="err-dd" role="alert" {}
                div class="buttons" {
                    button type="button" id="dd-cancel" { "Cancel" }
                    button type="button" class="primary danger" id="dd-go" { "Decide" }
                }
            }
        }
    }
}

/// What the review dialog sends to review (`ids`, `decision`) and then to decide (with
/// the `comment` and the `revisions` the review returned).
#[derive(Debug, Default, Deserialize)]
pub struct DecideForm {
    #[serde(default)]
    /// Approval ids decided.
    pub ids: Vec<i64>,
    #[serde(default)]
    /// `approve` or `deny`.
    pub decision: String,
    #[serde(default)]
    /// Why (required; audited).
    pub comment: String,
    #[serde(default)]
    /// Host id → desired-state revision the review showed (required to decide: the
    /// decision acts on what was reviewed; 409 if a host moved on since).
    pub revisions: BTreeMap<String, i64>,
}

#[derive(Debug, Default, Serialize)]
/// Answer of a decision.
pub struct DecideReply {
    /// The decision was recorded.
    pub ok: bool,
    /// Why it was refused.
    pub error: Option<String>,
    /// What happened, in words.
    pub summary: String,
}

fn decide_reply(status: StatusCode, error: impl Into<String>) -> Response {
    (
        status,
        Json(DecideReply {
            ok: false,
            error: Some(error.into()),
            summary: String::new(),
        }),
    )
        .into_response()
}

#[derive(Debug, Default, Serialize)]
/// Answer of the review step: per approval what the decision does now (the service's
/// [`service::review_approvals`]), and the header sentence counting what will change.
pub struct ReviewReply {
    /// The review is complete.
    pub ok: bool,
    /// Why it was refused.
    pub error: Option<String>,
    /// Approvals whose decision changes something (approve: hosts quarantined).
    pub count: usize,
    /// Approvals reviewed.
    pub total: usize,
    /// The header ("Approve 1 of 3 approvals: 1 host will be quarantined").
    pub summary: String,
    /// The decide button's text.
    pub button: String,
    /// Per approval.
    pub approvals: Vec<service::ApprovalReview>,
    /// Host id → revision the review saw (sent back with the decision).
    pub revisions: BTreeMap<String, i64>,
    /// Host id → its short id and duplicate flags, shown next to each hostname.
    pub hosts: BTreeMap<String, HostNote>,
    /// The cautions every review shows ([`super::actions::cautions`]): hosts whose agent
    /// enforces nothing, offline hosts.
    pub warnings: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
/// How a review tells a host apart from another of the same name.
pub struct HostNote {
    /// The first characters of the id ([`super::view::short_id`]).
    pub short_id: String,
    /// Its duplicate flags in words ([`super::view::flag_texts`]).
    pub flags: Vec<String>,
    /// Its agent enforces nothing (`enforce = false`): a quarantine blocks nothing.
    pub not_enforcing: bool,
    /// Its agent is offline: a quarantine stays pending until it returns.
    pub offline: bool,
}

/// The hosts `ids` names (each once), as the service reads them with their flags; a host
/// that is gone is left out (the list names it by id).
async fn hosts_by_id<'a>(
    st: &AppState,
    s: &super::session::Session,
    ids: impl Iterator<Item = &'a String>,
) -> Result<HashMap<String, cordon_proto::Host>, ApiError> {
    let mut out = HashMap::new();
    for id in ids {
        if out.contains_key(id) {
            continue;
        }
        match cordon_server_core::service::hosts::get(st, &s.caller, id).await {
            Ok(h) => {
                out.insert(id.clone(), h);
            }
            Err(e) if e.status == StatusCode::NOT_FOUND => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn decision_of(s: &str) -> Option<bool> {
    match s {
        "approve" => Some(true),
        "deny" => Some(false),
        _ => None,
    }
}

/// The review's header and button from the per-approval review (pure): the count is
/// the approvals whose decision changes something, never the number selected. Hosts in
/// `not_enforcing` (host ids whose agent runs with `enforce = false`) are never said to
/// "be quarantined": approving only requests a quarantine their agent does not apply.
pub fn review_summary(
    approve: bool,
    list: &[service::ApprovalReview],
    not_enforcing: &BTreeSet<String>,
) -> (usize, String, String) {
    let total = list.len();
    let n = list.iter().filter(|a| a.changes).count();
    let s = |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
    // Every name carries its host's short id (`db1 (1c2d3e4f)`): a name shared with a
    // host that is not in this review is still shared (trial19 LOW-h: "(web1)" while two
    // web1 exist).
    let name_of = |a: &service::ApprovalReview| format!("{} ({})", a.hostname, short_id(&a.host_id));
    let dry: Vec<String> = list
        .iter()
        .filter(|a| a.changes && approve && not_enforcing.contains(&a.host_id))
        .map(name_of)
        .collect();
    let names: Vec<String> = list
        .iter()
        .filter(|a| a.changes && !(approve && not_enforcing.contains(&a.host_id)))
        .map(name_of)
        .collect();
    let of = if n == total {
        String::new()
    } else {
        format!(" ({} of the {total} selected)", n)
    };
    let summary = match (approve, n) {
        (true, 0) => format!(
            "Nothing to approve: none of the {} would quarantine a host (see below).",
            s(total, "approval", "approvals")
        ),
        (true, _) if dry.is_empty() => format!(
            "Approve {}{of}: {} will be quarantined ({}).",
            s(n, "approval", "approvals"),
            s(n, "host", "hosts"),
            names.join(", ")
        ),
        (true, _) => {
            let blocked = if names.is_empty() {
                String::new()
            } else {
                format!(
                    "{} will be quarantined ({}); ",
                    s(names.len(), "host", "hosts"),
                    names.join(", ")
                )
            };
            format!(
                "Approve {}{of}: {blocked}{} not enforcing: quarantine requested, nothing blocked ({}).",
                s(n, "approval", "approvals"),
                s(dry.len(), "host", "hosts"),
                dry.join(", ")
            )
        }
        (false, 0) => format!(
            "Nothing to deny: none of the {} is pending.",
            s(total, "approval", "approvals")
        ),
        (false, _) => format!(
            "Deny {}{of}: nothing happens to {}.",
            s(n, "approval", "approvals"),
            names.join(", ")
        ),
    };
    let button = match (approve, n) {
        (true, 0) | (false, 0) => "Nothing to do".to_string(),
        (true, _) if dry.is_empty() => format!("Approve and quarantine {}", s(n, "host", "hosts")),
        (true, _) => format!("Approve {} (see not enforcing)", s(n, "approval", "approvals")),
        (false, _) => format!("Deny {n}"),
    };
    (n, summary, button)
}

/// Step 1 of a decision: what approving or denying the approvals `ids` does now, per
/// approval, from the server (JSON; admin; CSRF header).
pub async fn review(
    State(st): State<AppState>,
    ApiSession(s): ApiSession,
    headers: HeaderMap,
    Json(f): Json<DecideForm>,
) -> Response {
    if let Err(r) = s.check_csrf(headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())) {
        return r.into_response();
    }
    if f.ids.is_empty() {
        return decide_reply(StatusCode::UNPROCESSABLE_ENTITY, "select at least one approval");
    }
    let Some(approve) = decision_of(&f.decision) else {
        return decide_reply(StatusCode::UNPROCESSABLE_ENTITY, "decision must be approve or deny");
    };
    match service::review_approvals(&st, &s.caller, &f.ids, approve).await {
        Ok(mut list) => {
            let set = match service::settings(&st, &s.caller).await {
                Ok(set) => set,
                Err(ApiError { status, detail, .. }) => return decide_reply(status, detail),
            };
            let hosts = match hosts_by_id(&st, &s, list.iter().map(|a| &a.host_id)).await {
                Ok(h) => h,
                Err(ApiError { status, detail, .. }) => return decide_reply(status, detail),
            };
            // What every review says about the hosts that change (the shared cautions).
            let impacts: Vec<super::actions::HostImpact> = list
                .iter()
                .filter(|a| a.changes && approve)
                .filter_map(|a| hosts.get(&a.host_id))
                .map(|h| super::actions::impact_base(h, &set.protected_labels))
                .collect();
            let changing: Vec<&super::actions::HostImpact> = impacts.iter().collect();
            let mut warnings = super::actions::cautions(super::actions::Review::Approve, &changing);
            // A rule changed since its event (e.g. now a dry run): said at the top too.
            let mut seen = BTreeSet::new();
            for a in list.iter().filter(|a| a.changes && approve) {
                if let Some(w) = a.rule_changed.as_ref().filter(|w| seen.insert(w.to_string())) {
                    warnings.push(w.clone());
                }
            }
            let dry: BTreeSet<String> = impacts
                .iter()
                .filter(|i| i.not_enforcing)
                .map(|i| i.id.clone())
                .collect();
            for a in list
                .iter_mut()
                .filter(|a| a.changes && approve && dry.contains(&a.host_id))
            {
                a.words = NOT_ENFORCING_APPROVE.into();
            }
            let (count, mut summary, button) = review_summary(approve, &list, &dry);
            // The kill switch stops automatic actions only (trial11 LOW 10): say so.
            if approve && count > 0 && !set.enabled {
                summary.push(' ');
                summary.push_str(KILL_SWITCH_APPROVE);
            }
            Json(ReviewReply {
                hosts: hosts
                    .values()
                    .map(|h| {
                        let note = HostNote {
                            short_id: short_id(&h.id).to_string(),
                            flags: flag_texts(h),
                            not_enforcing: super::status::not_enforcing(h),
                            offline: super::status::offline(h),
                        };
                        (h.id.clone(), note)
                    })
                    .collect(),
                warnings,
                ok: true,
                error: None,
                count,
                total: list.len(),
                summary,
                button,
                revisions: list
                    .iter()
                    .filter_map(|a| a.revision.map(|r| (a.host_id.clone(), r)))
                    .collect(),
                approvals: list,
            })
            .into_response()
        }
        Err(ApiError { status, detail, .. }) => decide_reply(status, detail),
    }
}

/// Step 2: approve or deny exactly the reviewed approvals (JSON from the review dialog).
/// The form must carry the revisions the review returned for every approval's host
/// (400 otherwise: review first); a host that moved on since is refused (409, nothing
/// decided).
pub async fn decide(
    State(st): State<AppState>,
    ApiSession(s): ApiSession,
    headers: HeaderMap,
    Json(f): Json<DecideForm>,
) -> Response {
    if let Err(r) = s.check_csrf(headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())) {
        return r.into_response();
    }
    if f.ids.is_empty() {
        return decide_reply(StatusCode::UNPROCESSABLE_ENTITY, "select at least one approval");
    }
    if f.comment.trim().is_empty() {
        return decide_reply(StatusCode::UNPROCESSABLE_ENTITY, "a comment is required: say why");
    }
    let Some(approve) = decision_of(&f.decision) else {
        return decide_reply(StatusCode::UNPROCESSABLE_ENTITY, "decision must be approve or deny");
    };
    // The reviewed set: every approval's (enrolled) host carries the revision its review saw.
    let now = match service::review_approvals(&st, &s.caller, &f.ids, approve).await {
        Ok(list) => list,
        Err(ApiError { status, detail, .. }) => return decide_reply(status, detail),
    };
    let unreviewed: Vec<&str> = now
        .iter()
        .filter(|a| {
            a.status == ApprovalStatus::Pending && a.revision.is_some() && !f.revisions.contains_key(&a.host_id)
        })
        .map(|a| a.hostname.as_str())
        .collect();
    if !unreviewed.is_empty() {
        return decide_reply(
            StatusCode::BAD_REQUEST,
            format!(
                "the decision carries no reviewed revision for {}: review it first; nothing was decided",
                unreviewed.join(", ")
            ),
        );
    }
    let n = f.ids.len();
    let req = DecisionRequest {
        ids: f.ids,
        all: false,
        comment: Some(f.comment.trim().to_string()),
        if_revisions: f.revisions,
    };
    let result = if approve {
        service::approve(&st, &s.caller, &req).await
    } else {
        service::deny(&st, &s.caller, &req).await
    };
    match result {
        Ok(results) => {
            // The approved hosts whose agent enforces nothing: said, never "waiting to confirm".
            let approved: Vec<&String> = results
                .iter()
                .filter(|x| x.status == DecisionStatus::Approved)
                .filter_map(|x| now.iter().find(|a| a.id == x.id).map(|a| &a.host_id))
                .collect();
            let dry: BTreeSet<String> = match hosts_by_id(&st, &s, approved.into_iter()).await {
                Ok(h) => h
                    .values()
                    .filter(|h| super::status::not_enforcing(h))
                    .map(|h| h.id.clone())
                    .collect(),
                Err(_) => BTreeSet::new(),
            };
            Json(DecideReply {
                ok: true,
                error: None,
                summary: decision_summary(approve, n, &results, &now, &dry),
            })
            .into_response()
        }
        Err(ApiError { status, detail, .. }) => decide_reply(status, detail),
    }
}

/// What a decision did, in words (pure): how many were approved or denied, each
/// superseded approval with the reason, and the approved hosts in `not_enforcing` (host
/// ids whose agent runs with `enforce = false`), whose quarantine blocks nothing.
pub fn decision_summary(
    approve: bool,
    n: usize,
    results: &[cordon_proto::automation::DecisionResult],
    reviewed: &[service::ApprovalReview],
    not_enforcing: &BTreeSet<String>,
) -> String {
    let name = |id: i64| {
        reviewed
            .iter()
            .find(|a| a.id == id)
            .map(|a| a.hostname.clone())
            .unwrap_or_else(|| format!("approval {id}"))
    };
    let done = results
        .iter()
        .filter(|x| {
            x.status
                == if approve {
                    DecisionStatus::Approved
                } else {
                    DecisionStatus::Denied
                }
        })
        .count();
    let mut summary = format!(
        "{} {done} of {n} approval{}",
        if approve { "Approved" } else { "Denied" },
        if n == 1 { "" } else { "s" }
    );
    if approve && done > 0 {
        let dry: Vec<String> = results
            .iter()
            .filter(|x| x.status == DecisionStatus::Approved)
            .filter(|x| {
                reviewed
                    .iter()
                    .find(|a| a.id == x.id)
                    .map_or(not_enforcing.contains(&x.host_id), |a| {
                        not_enforcing.contains(&a.host_id)
                    })
            })
            .map(|x| {
                let name = reviewed
                    .iter()
                    .find(|a| a.id == x.id)
                    .map_or_else(|| x.host_id.clone(), |a| a.hostname.clone());
                format!("{name} ({})", short_id(&x.host_id))
            })
            .collect();
        // Only agents that enforce are waited for: an approval whose host's agent runs
        // with enforce = false is never confirmed (trial30 LOW-3: the flash said
        // "waiting for the agents to confirm" when every approved host was such a one).
        if dry.len() < done {
            summary.push_str(" (quarantine requested; waiting for the agents to confirm)");
        } else {
            summary.push_str(" (quarantine requested)");
        }
        if !dry.is_empty() {
            summary.push_str(&format!(
                "; NOT ENFORCING, nothing blocked: {} (enforce = false: {} never confirms)",
                dry.join(", "),
                if dry.len() == 1 { "its agent" } else { "their agents" }
            ));
        }
    }
    let superseded: Vec<String> = results
        .iter()
        .filter(|x| x.status == DecisionStatus::Superseded)
        .map(|x| format!("{}: {}", name(x.id), x.reason.as_deref().unwrap_or("superseded")))
        .collect();
    if !superseded.is_empty() {
        summary.push_str(&format!("; not quarantined: {}", superseded.join("; ")));
    }
    let gone = results
        .iter()
        .filter(|x| x.status == DecisionStatus::NotPending)
        .count();
    if gone > 0 {
        summary.push_str(&format!("; {gone} no longer pending"));
    }
    summary
}

#[derive(Debug, Default, Deserialize)]
/// Query of the events page (`?status=…`).
pub struct EventsQuery {
    #[serde(default)]
    status: Option<String>,
}

/// An event's outcome in words ([`EventStatus::outcome_text`], shared with the CLI).
pub fn outcome_text(status: &EventStatus) -> &str {
    status.outcome_text()
}

/// Events received by the automation (newest first, at most 500).
///
/// # Errors
/// `ConsoleError`: the service's refusal with its status (403
/// below the role, 400/404/409 as the service says, 503 when the server cannot take
/// changes); an internal failure is logged and shown as a generic 500 page.
pub async fn events(
    State(st): State<AppState>,
    PageSession(s): PageSession,
    Query(q): Query<EventsQuery>,
) -> Result<Html<String>, ConsoleError> {
    let status = q.status.clone().filter(|v| !v.is_empty());
    let list = service::events(
        &st,
        &s.caller,
        &EventFilter {
            status: status.as_deref().map(EventStatus::from_wire),
            host_id: None,
            limit: 500,
        },
    )
    .await?;
    let names = host_names(&st, &s).await?;
    let cur = status.unwrap_or_default();
    let body = html! {
        div class="page-head" { h1 { "Events" } p class="summary" { strong { (list.len()) } " events (newest first)" } }
        form method="get" action="/console/events-log" class="filters" aria-label="Filter events" {
            div class="field" {
                label for="ev-status" { "Outcome" }
                select id="ev-status" name="status" {
                    option value="" { "Any" }
                    // Every outcome the server knows (a hand list missed `denied`).
                    @for v in EventStatus::KNOWN {
                        option value=(v) selected[v.as_str() == cur] { (outcome_text(v)) }
                    }
                }
            }
            div class="field buttons" { button type="submit" { "Apply" } }
        }
        div class="table-wrap" id="events-live" data-live="" {
            table class="audit" id="events-table" {
                caption class="sr-only" { "Events received by the automation" }
                thead { tr {
                    th scope="col" { "Received" } th scope="col" { "Type" } th scope="col" { "Severity" } th scope="col" { "Source" }
                    th scope="col" { "Host" } th scope="col" { "Outcome" } th scope="col" { "Rule" }
                } }
                tbody {
                    @for e in &list {
                        tr data-event=(e.id) {
                            td data-label="Received" { (time_at(&e.received_at)) }
                            td data-label="Type" { code { (e.event_type) } }
                            td data-label="Severity" { span class={"sev sev-" (e.severity.as_str())} { (e.severity.as_str()) } }
                            td data-label="Source" { (e.source) }
                            td data-label="Host" {
                                @match &e.host_id {
                                    Some(id) => { a href={"/console/hosts/" (id)} { (super::view::breakable_name(names.get(id).map(String::as_str).unwrap_or(id))) } " " (short_id_tag(id)) }
                                    None => { span class="muted" { (e.host_ref) " (unknown)" } }
                                }
                            }
                            td data-label="Outcome" data-outcome=(e.status) { (outcome_text(&e.status)) }
                            td data-label="Rule" { (e.rule.as_deref().unwrap_or("—")) }
                        }
                    }
                    @if list.is_empty() { tr { td colspan="7" class="empty" { "No events." } } }
                }
            }
        }
        (super::pages::live_note())
    };
    Ok(Html(layout("Events", Some(&s), Nav::Events, body).into_string()))
}
