//! The quarantine / release dialog: its markup, a check step that validates and counts
//! the target hosts (for the confirmation), and the run step, which calls the same
//! service as the REST API (same validation, transaction, audit and agent wake-up).

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cordon_policy::AllowSpec;
use cordon_proto::{ActionRequest, HostState, MAX_MESSAGE_CHARS};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::session::{ApiSession, Session, CSRF_HEADER};
use cordon_server_core::service::{hosts, validate};
use cordon_server_core::store::{Action, HostFilter};
use cordon_server_core::timefmt::{now_ms, parse_duration_secs, to_rfc3339};
use cordon_server_core::{ApiError, AppState};

/// Hidden until a script opens it with the chosen targets.
pub fn dialog(labels: &BTreeSet<String>) -> Markup {
    html! {
        dialog id="action-dialog" aria-labelledby="dlg-title" {
            form id="action-form" method="dialog" novalidate {
                h2 id="dlg-title" { "Quarantine" }
                p id="dlg-targets" class="targets" {}
                input type="hidden" name="action" id="dlg-action" value="quarantine";
                input type="hidden" name="hosts" id="dlg-hosts" value="";
                div class="step" id="dlg-step-edit" {
                    div class="field" id="dlg-label-field" hidden {
                        label for="dlg-label" { "Every host with label" }
                        input id="dlg-label" name="label" list="dlg-label-list" autocomplete="off" aria-describedby="err-label";
                        datalist id="dlg-label-list" { @for l in labels { option value=(l) {} } }
                        p class="field-error" id="err-label" role="alert" {}
                    }
                    div class="field" {
                        label for="dlg-comment" { "Comment " span class="req" { "(required)" } }
                        textarea id="dlg-comment" name="comment" rows="2" aria-describedby="err-comment" aria-required="true"
                            placeholder="Why? e.g. ticket number, alert" {}
                        p class="field-error" id="err-comment" role="alert" {}
                    }
                    div class="quarantine-only" {
                        div class="field" {
                            label for="dlg-allow" { "Extra exceptions " span class="muted" { "(one per line)" } }
                            textarea id="dlg-allow" name="allow" rows="2" aria-describedby="hint-allow err-allow"
                                placeholder="https://edr.example.com\n10.0.5.0/24\nudp://10.0.0.53:53" {}
                            p class="hint" id="hint-allow" { "Allowed destinations besides the Cordon server, DNS and DHCP." }
                            p class="field-error" id="err-allow" role="alert" {}
                        }
                        div class="field" {
                            label for="dlg-message" { "Message to users" }
                            input id="dlg-message" name="message" maxlength=(MAX_MESSAGE_CHARS) autocomplete="off"
                                aria-describedby="dlg-message-count err-message";
                            p class="hint counter" { span id="dlg-message-count" aria-live="polite" { "0 / " (MAX_MESSAGE_CHARS) } }
                            p class="field-error" id="err-message" role="alert" {}
                        }
                        div class="field" {
                            label for="dlg-expires" { "Release automatically after " span class="muted" { "(optional: 30m, 8h, 7d)" } }
                            input id="dlg-expires" name="expires_in" autocomplete="off" aria-describedby="err-expires_in";
                            p class="field-error" id="err-expires_in" role="alert" {}
                        }
                    }
                    p class="field-error" id="err-form" role="alert" {}
                    div class="buttons" {
                        button type="button" class="cancel" id="dlg-cancel" { "Cancel" }
                        button type="submit" class="primary" id="dlg-review" { "Review" }
                    }
                }
                div class="step" id="dlg-step-confirm" hidden {
                    p id="dlg-confirm-text" class="confirm" role="alert" {}
                    ul id="dlg-confirm-hosts" class="confirm-hosts" {}
                    p class="field-error" id="err-run" role="alert" {}
                    div class="buttons" {
                        button type="button" id="dlg-back" { "Back" }
                        button type="button" class="primary danger" id="dlg-confirm" { "Confirm" }
                    }
                }
            }
        }
    }
}

/// What the dialog sends (JSON).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ActionForm {
    pub action: String,
    /// Host ids (one host or the selection); empty when `label` is used.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub comment: String,
    /// Extra exceptions, one per line.
    #[serde(default)]
    pub allow: String,
    #[serde(default)]
    pub message: String,
    /// `30m`, `8h`, `7d`; empty for no expiry.
    #[serde(default)]
    pub expires_in: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReply {
    pub ok: bool,
    /// Field name → message (`form` for the whole request).
    pub errors: BTreeMap<String, String>,
    pub count: usize,
    pub hostnames: Vec<String>,
    /// The confirmation sentence ("Quarantine 3 hosts?").
    pub summary: String,
}

fn reply_err(status: StatusCode, field: &str, msg: impl Into<String>) -> Response {
    let mut errors = BTreeMap::new();
    errors.insert(field.to_string(), msg.into());
    (
        status,
        Json(CheckReply {
            errors,
            ..Default::default()
        }),
    )
        .into_response()
}

struct Prepared {
    action: Action,
    req: ActionRequest,
    hostnames: Vec<String>,
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "host"
    } else {
        "hosts"
    }
}

/// Validates every field (all errors at once, per field) and resolves the targets.
async fn prepare(st: &AppState, f: &ActionForm) -> Result<Prepared, BTreeMap<String, String>> {
    let mut errors = BTreeMap::new();
    let action = match f.action.as_str() {
        "quarantine" => Action::Quarantine,
        "release" => Action::Release,
        other => {
            errors.insert("form".into(), format!("unknown action {other:?}"));
            return Err(errors);
        }
    };
    if let Err(e) = validate::comment(Some(&f.comment)) {
        errors.insert("comment".into(), e.detail);
    }
    let mut allow = Vec::new();
    let mut expires_at = None;
    let mut message = None;
    if action == Action::Quarantine {
        for line in f.allow.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match AllowSpec::parse(line) {
                Ok(_) => allow.push(line.to_string()),
                Err(e) => {
                    errors.entry("allow".into()).or_insert_with(|| e.to_string());
                }
            }
        }
        let m = f.message.trim();
        if m.chars().count() > MAX_MESSAGE_CHARS {
            errors.insert(
                "message".into(),
                format!("the message is longer than {MAX_MESSAGE_CHARS} characters"),
            );
        } else if !m.is_empty() {
            message = Some(m.to_string());
        }
        let e = f.expires_in.trim();
        if !e.is_empty() {
            match parse_duration_secs(e) {
                Ok(secs) => expires_at = Some(to_rfc3339(now_ms().saturating_add(secs.saturating_mul(1000)))),
                Err(msg) => {
                    errors.insert("expires_in".into(), msg);
                }
            }
        }
    }
    // Targets and how many hosts they are.
    let label = f
        .label
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string);
    let hosts: Vec<String> = f
        .hosts
        .iter()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect();
    let mut hostnames = Vec::new();
    let mut target_hosts = hosts.clone();
    match (&label, hosts.is_empty()) {
        (Some(l), true) => match validate::label(l) {
            Err(e) => {
                errors.insert("label".into(), e.detail);
            }
            Ok(l) => match st
                .store
                .hosts(&HostFilter {
                    label: Some(l.clone()),
                    ..Default::default()
                })
                .await
            {
                Ok(list) if list.is_empty() => {
                    errors.insert("label".into(), format!("no host has the label {l:?}"));
                }
                Ok(list) => hostnames = list.into_iter().map(|h| h.hostname).collect(),
                Err(e) => {
                    errors.insert("form".into(), e.to_string());
                }
            },
        },
        (None, true) => {
            let field = if f.label.is_some() { "label" } else { "form" };
            errors.insert(
                field.into(),
                if f.label.is_some() {
                    "enter a label".into()
                } else {
                    "select at least one host".into()
                },
            );
        }
        (Some(_), false) => {
            errors.insert("form".into(), "give hosts or a label, not both".into());
        }
        (None, false) => {
            let mut seen = BTreeSet::new();
            target_hosts.clear();
            for r in &hosts {
                match st.store.host(r).await {
                    Ok(h) if h.revoked => {
                        errors.insert("form".into(), format!("host {} is revoked", h.hostname));
                    }
                    Ok(h) => {
                        if seen.insert(h.id.clone()) {
                            hostnames.push(h.hostname);
                            target_hosts.push(h.id);
                        }
                    }
                    Err(e) => {
                        errors.insert("form".into(), e.to_string());
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let req = ActionRequest {
        hosts: if label.is_some() { vec![] } else { target_hosts },
        label,
        comment: Some(f.comment.trim().to_string()),
        allow,
        message,
        expires_at,
    };
    Ok(Prepared { action, req, hostnames })
}

fn guard(s: &Session, headers: &HeaderMap) -> Option<Response> {
    if let Err(r) = s.check_csrf(headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())) {
        return Some(r.into_response());
    }
    if !s.can_act() {
        return Some(reply_err(
            StatusCode::FORBIDDEN,
            "form",
            format!(
                "token {:?} has role {}: quarantine and release need responder",
                s.caller.name,
                s.caller.role.as_str()
            ),
        ));
    }
    None
}

/// The form's field errors, as 422.
fn invalid_form(errors: BTreeMap<String, String>) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(CheckReply {
            errors,
            ..Default::default()
        }),
    )
        .into_response()
}

fn verb(action: Action) -> &'static str {
    if action == Action::Quarantine {
        "Quarantine"
    } else {
        "Release"
    }
}

/// Step 1: validate and count.
pub async fn check(
    State(st): State<AppState>,
    ApiSession(s): ApiSession,
    headers: HeaderMap,
    Json(f): Json<ActionForm>,
) -> Response {
    if let Some(r) = guard(&s, &headers) {
        return r;
    }
    match prepare(&st, &f).await {
        Err(errors) => invalid_form(errors),
        Ok(p) => {
            let n = p.hostnames.len();
            let verb = verb(p.action);
            let scope = match &p.req.label {
                Some(l) => format!(" (every host with label {l:?})"),
                None => String::new(),
            };
            let summary = format!("{verb} {n} {}{scope}?", plural(n));
            Json(CheckReply {
                ok: true,
                errors: BTreeMap::new(),
                count: n,
                hostnames: p.hostnames,
                summary,
            })
            .into_response()
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RunReply {
    pub ok: bool,
    pub count: usize,
    pub summary: String,
    pub states: Vec<(String, HostState)>,
}

/// Step 2: do it, through the same service as the REST API's quarantine/release.
pub async fn run(
    State(st): State<AppState>,
    ApiSession(s): ApiSession,
    headers: HeaderMap,
    Json(f): Json<ActionForm>,
) -> Response {
    if let Some(r) = guard(&s, &headers) {
        return r;
    }
    let p = match prepare(&st, &f).await {
        Ok(p) => p,
        Err(errors) => return invalid_form(errors),
    };
    let result = hosts::act_many(&st, &s.caller, p.action, &p.req).await;
    match result {
        Ok(resp) => {
            let n = resp.results.len();
            let verb = verb(p.action);
            Json(RunReply {
                ok: true,
                count: n,
                summary: format!(
                    "{verb} requested for {n} {}; waiting for the agents to confirm.",
                    plural(n)
                ),
                states: resp.results.into_iter().map(|r| (r.hostname, r.state)).collect(),
            })
            .into_response()
        }
        Err(ApiError { status, detail, .. }) => reply_err(status, "run", detail),
    }
}
