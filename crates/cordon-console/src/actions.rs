//! The quarantine / release dialog: its markup, a check step that validates the request
//! and says, host by host, what will change ([`impact`]: new or replaced exceptions,
//! message and expiry, hosts already in that state, offline hosts, protected labels),
//! and the run step, which calls the same service as the REST API (same validation,
//! transaction, audit and agent wake-up) for exactly the hosts that change, refused with
//! 409 if any of them moved on since the analyst's view of it.

use std::collections::{BTreeMap, BTreeSet};

use cordon_proto::Host;

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
use cordon_server_core::store::{Action, HostFilter, HostQuery, PageAt, MAX_PAGE};
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
                    ul id="dlg-warnings" class="warnings" {}
                    ul id="dlg-confirm-hosts" class="confirm-hosts impact" {}
                    div class="field" id="dlg-typed-field" hidden {
                        label for="dlg-typed" id="dlg-typed-label" { "Type the label or the number of hosts to confirm" }
                        input id="dlg-typed" name="confirm" autocomplete="off" aria-describedby="err-confirm";
                        p class="field-error" id="err-confirm" role="alert" {}
                    }
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

/// Hosts with this label are protected whatever the automation settings say.
pub const PROTECTED_LABEL: &str = "cordon-protected";

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
    /// Host id → desired-state revision the page showed (or the check step returned).
    #[serde(default)]
    pub revisions: BTreeMap<String, i64>,
    /// Label-wide actions: the label or the number of hosts, typed by the analyst.
    #[serde(default)]
    pub confirm: String,
}

/// What an action does to one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostImpact {
    pub id: String,
    pub hostname: String,
    /// The desired-state revision this impact was computed against.
    pub revision: i64,
    /// `quarantine` (new), `update` (already quarantined: settings replaced), `retry`
    /// (failed or tampered: asked again), `release`, or `none` (already in that state).
    pub change: &'static str,
    /// What changes, in words ("exceptions: 2 new, replacing 1").
    pub details: Vec<String>,
    pub offline: bool,
    pub not_enforcing: bool,
    /// The protected labels the host carries.
    pub protected: Vec<String>,
    pub state: String,
}

fn list_text(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Every (non-revoked) host carrying `label`, read from the database a page at a time
/// with the label filter in SQL.
async fn labelled(st: &AppState, label: &str) -> Result<Vec<Host>, cordon_server_core::StoreError> {
    let q = HostQuery {
        filter: HostFilter {
            label: Some(label.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut at = PageAt::First;
    loop {
        let page = st.store.hosts_sorted_page(&q, &at, MAX_PAGE).await?;
        out.extend(page.hosts);
        match page.next {
            Some(n) => at = PageAt::After(n),
            None => return Ok(out),
        }
    }
}

/// Host by host: what `action` with these parameters changes (pure; `now` in Unix ms).
pub fn impact(
    action: Action,
    h: &Host,
    allow: &[String],
    message: Option<&str>,
    expires_at: Option<&str>,
    protected_labels: &[String],
    now: i64,
) -> HostImpact {
    let d = &h.desired;
    let mut details = Vec::new();
    let failed = matches!(h.state, HostState::Failed | HostState::Tampered);
    let change = match action {
        Action::Quarantine if !d.quarantined => {
            details.push(format!("exceptions: {}", list_text(allow)));
            if let Some(m) = message {
                details.push(format!("message to users: “{m}”"));
            }
            if let Some(e) = expires_at {
                details.push(format!("automatic release at {}", super::view::short_time(e)));
            }
            "quarantine"
        }
        Action::Quarantine => {
            let same_allow = d.allow == allow;
            let same_message = d.message.as_deref() == message;
            let same_expiry = d.expires_at.is_none() && expires_at.is_none();
            if !same_allow {
                details.push(format!(
                    "exceptions replaced: {} → {}",
                    list_text(&d.allow),
                    list_text(allow)
                ));
            }
            if !same_message {
                details.push(match (d.message.as_deref(), message) {
                    (Some(_), None) => "message to users removed".to_string(),
                    (None, Some(m)) => format!("message to users added: “{m}”"),
                    (_, m) => format!("message to users replaced by “{}”", m.unwrap_or_default()),
                });
            }
            if !same_expiry {
                details.push(match (d.expires_at.as_deref(), expires_at) {
                    (Some(_), None) => "automatic release removed (stays quarantined)".to_string(),
                    (_, Some(e)) => format!("automatic release at {}", super::view::short_time(e)),
                    (None, None) => String::new(),
                });
            }
            if failed {
                details.push(format!("the agent reported {}: it is asked again", h.state.as_str()));
                "retry"
            } else if same_allow && same_message && same_expiry {
                details.push("already quarantined with these settings".into());
                "none"
            } else {
                "update"
            }
        }
        Action::Release if d.quarantined => {
            if !d.allow.is_empty() || d.message.is_some() || d.expires_at.is_some() {
                details.push("the quarantine's exceptions, message and expiry end with it".into());
            }
            "release"
        }
        Action::Release if failed => {
            details.push(format!("the agent reported {}: it is asked again", h.state.as_str()));
            "retry"
        }
        Action::Release => {
            details.push("already released".into());
            "none"
        }
    };
    let mut protected: Vec<String> = h
        .labels
        .iter()
        .filter(|l| *l == PROTECTED_LABEL || protected_labels.contains(l))
        .cloned()
        .collect();
    protected.dedup();
    HostImpact {
        id: h.id.clone(),
        hostname: h.hostname.clone(),
        revision: d.revision,
        change,
        details,
        offline: super::status::offline(h, now),
        not_enforcing: super::status::not_enforcing(h),
        protected,
        state: h.state.as_str().to_string(),
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReply {
    pub ok: bool,
    /// Field name → message (`form` for the whole request).
    pub errors: BTreeMap<String, String>,
    /// Hosts that will change.
    pub count: usize,
    /// Hosts targeted (changing or not).
    pub total: usize,
    /// Hostnames of the hosts that will change.
    pub hostnames: Vec<String>,
    /// The confirmation sentence ("Release 3 hosts?").
    pub summary: String,
    /// Each targeted host and what happens to it.
    pub hosts: Vec<HostImpact>,
    /// Things to look at before confirming (protected labels, offline hosts, no change).
    pub warnings: Vec<String>,
    /// Label-wide: what to type to confirm (the label; the number of hosts works too).
    pub confirm_word: Option<String>,
    /// Host id → revision the impact was computed against (sent back with the run).
    pub revisions: BTreeMap<String, i64>,
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
    impacts: Vec<HostImpact>,
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "host"
    } else {
        "hosts"
    }
}

/// Validates every field (all errors at once, per field), resolves the targets and says
/// what happens to each.
async fn prepare(st: &AppState, f: &ActionForm) -> Result<Prepared, (StatusCode, BTreeMap<String, String>)> {
    let mut errors = BTreeMap::new();
    let invalid = StatusCode::UNPROCESSABLE_ENTITY;
    let action = match f.action.as_str() {
        "quarantine" => Action::Quarantine,
        "release" => Action::Release,
        other => {
            errors.insert("form".into(), format!("unknown action {other:?}"));
            return Err((invalid, errors));
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
    // Targets.
    let label = f
        .label
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string);
    let refs: Vec<String> = f
        .hosts
        .iter()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect();
    let mut targets: Vec<Host> = Vec::new();
    match (&label, refs.is_empty()) {
        (Some(l), true) => match validate::label(l) {
            Err(e) => {
                errors.insert("label".into(), e.detail);
            }
            Ok(l) => match labelled(st, &l).await {
                Ok(list) if list.is_empty() => {
                    errors.insert("label".into(), format!("no host has the label {l:?}"));
                }
                Ok(list) => targets = list,
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
            for r in &refs {
                match st.store.host(r).await {
                    Ok(h) if h.revoked => {
                        errors.insert("form".into(), format!("host {} is revoked", h.hostname));
                    }
                    Ok(h) => {
                        if seen.insert(h.id.clone()) {
                            targets.push(h);
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
        return Err((invalid, errors));
    }
    // A view that is out of date is refused, with what changed.
    for h in &targets {
        if let Some(seen) = f.revisions.get(&h.id) {
            if *seen != h.desired.revision {
                errors.insert(
                    "stale".into(),
                    format!(
                        "{} changed since this page showed it (now: {}{}): nothing was done. Look at its current state and try again.",
                        h.hostname,
                        super::view::state_text(h.state).to_lowercase(),
                        h.desired.actor.as_deref().map(|a| format!(", asked by {a}")).unwrap_or_default()
                    ),
                );
            }
        }
    }
    if !errors.is_empty() {
        return Err((StatusCode::CONFLICT, errors));
    }
    let protected_labels = match st.store.automation_settings().await {
        Ok(s) => s.protected_labels,
        Err(e) => {
            errors.insert("form".into(), format!("cannot read the protected labels: {e}"));
            return Err((StatusCode::INTERNAL_SERVER_ERROR, errors));
        }
    };
    let now = now_ms();
    let impacts: Vec<HostImpact> = targets
        .iter()
        .map(|h| {
            impact(
                action,
                h,
                &allow,
                message.as_deref(),
                expires_at.as_deref(),
                &protected_labels,
                now,
            )
        })
        .collect();
    let changing: Vec<String> = impacts
        .iter()
        .filter(|i| i.change != "none")
        .map(|i| i.id.clone())
        .collect();
    let if_revisions = impacts
        .iter()
        .filter(|i| i.change != "none")
        .map(|i| (i.id.clone(), f.revisions.get(&i.id).copied().unwrap_or(i.revision)))
        .collect();
    let req = ActionRequest {
        hosts: changing,
        label: None,
        comment: Some(f.comment.trim().to_string()),
        allow,
        message,
        expires_at,
        if_revisions,
        // The analyst confirmed, host by host, the replacements the impact step listed.
        replace: true,
        ..Default::default()
    };
    Ok(Prepared { action, req, impacts })
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

/// The form's field errors.
fn invalid_form(status: StatusCode, errors: BTreeMap<String, String>) -> Response {
    (
        status,
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

/// The confirmation: the sentence, the warnings and what to type (pure).
fn confirmation(action: Action, label: Option<&str>, impacts: &[HostImpact]) -> CheckReply {
    let total = impacts.len();
    let changing: Vec<&HostImpact> = impacts.iter().filter(|i| i.change != "none").collect();
    let n = changing.len();
    let verb = verb(action);
    let scope = match label {
        Some(l) => format!(" (every host with label {l:?})"),
        None => String::new(),
    };
    let summary = if n == 0 {
        format!(
            "Nothing to do: {} already {}.",
            if total == 1 {
                "the host is"
            } else {
                "all these hosts are"
            },
            if action == Action::Quarantine {
                "quarantined with these settings"
            } else {
                "released"
            }
        )
    } else {
        format!("{verb} {n} {}{scope}?", plural(n))
    };
    let mut warnings = Vec::new();
    let unchanged = total - n;
    if unchanged > 0 && n > 0 {
        warnings.push(format!(
            "{unchanged} of the {total} {} already {}: no change for {}.",
            plural(total),
            if action == Action::Quarantine {
                "quarantined with these settings"
            } else {
                "released"
            },
            if unchanged == 1 { "it" } else { "them" }
        ));
    }
    let names = |f: &dyn Fn(&HostImpact) -> bool| -> Vec<String> {
        changing.iter().filter(|i| f(i)).map(|i| i.hostname.clone()).collect()
    };
    let protected = names(&|i| !i.protected.is_empty());
    if !protected.is_empty() {
        let mut labels: Vec<String> = changing.iter().flat_map(|i| i.protected.clone()).collect();
        labels.sort();
        labels.dedup();
        warnings.push(format!(
            "Protected: {} {} a protected label ({}): {}.",
            protected.len(),
            if protected.len() == 1 {
                "host carries"
            } else {
                "hosts carry"
            },
            labels.join(", "),
            protected.join(", ")
        ));
    }
    let offline = names(&|i| i.offline);
    if !offline.is_empty() {
        warnings.push(format!(
            "Offline: {} ({}) will stay pending until {} agent reconnects.",
            offline.len(),
            offline.join(", "),
            if offline.len() == 1 { "its" } else { "each" }
        ));
    }
    let dry = names(&|i| i.not_enforcing);
    if !dry.is_empty() && action == Action::Quarantine {
        warnings.push(format!(
            "Not enforcing: the agent of {} runs with enforce = false; a quarantine blocks nothing there.",
            dry.join(", ")
        ));
    }
    CheckReply {
        ok: true,
        errors: BTreeMap::new(),
        count: n,
        total,
        hostnames: changing.iter().map(|i| i.hostname.clone()).collect(),
        summary,
        hosts: impacts.to_vec(),
        warnings,
        confirm_word: label.map(str::to_string),
        revisions: impacts.iter().map(|i| (i.id.clone(), i.revision)).collect(),
    }
}

/// Step 1: validate and say what will change.
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
        Err((status, errors)) => invalid_form(status, errors),
        Ok(p) => Json(confirmation(p.action, label_of(&f).as_deref(), &p.impacts)).into_response(),
    }
}

fn label_of(f: &ActionForm) -> Option<String> {
    f.label
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
}

#[derive(Debug, Serialize)]
pub struct RunReply {
    pub ok: bool,
    pub count: usize,
    pub summary: String,
    pub states: Vec<(String, HostState)>,
}

/// Step 2: do it, through the same service as the REST API's quarantine/release, for the hosts that
/// change; refused (409) if any moved on since the view the analyst confirmed.
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
        Err((status, errors)) => return invalid_form(status, errors),
    };
    if let Some(l) = label_of(&f) {
        let typed = f.confirm.trim();
        let n = p.req.hosts.len();
        if typed != l && typed != n.to_string() {
            return reply_err(
                StatusCode::UNPROCESSABLE_ENTITY,
                "confirm",
                format!("type the label {l:?} or the number of hosts ({n}) to confirm"),
            );
        }
    }
    if p.req.hosts.is_empty() {
        return reply_err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "run",
            "nothing to do: every host is already in that state",
        );
    }
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
        Err(ApiError { status, detail, .. }) if status == StatusCode::CONFLICT => reply_err(status, "stale", detail),
        Err(ApiError { status, detail, .. }) => reply_err(status, "run", detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cordon_proto::DesiredState;
    use cordon_server_core::timefmt::to_rfc3339;

    fn host(name: &str, quarantined: bool, state: HostState, labels: &[&str]) -> Host {
        Host {
            id: format!("h-{name}"),
            hostname: name.into(),
            os: None,
            addresses: vec![],
            labels: labels.iter().map(|s| s.to_string()).collect(),
            agent_version: None,
            last_seen: Some(to_rfc3339(now_ms())),
            enrolled_at: to_rfc3339(0),
            desired: DesiredState {
                revision: 3,
                quarantined,
                allow: if quarantined { vec!["10.0.0.5".into()] } else { vec![] },
                message: None,
                comment: None,
                actor: None,
                expires_at: None,
            },
            state,
            state_reason: None,
            state_since: to_rfc3339(now_ms()),
            applied_revision: 3,
            digest: None,
            backend: Some("nftables".into()),
            revoked: false,
            degraded: vec![],
            enforcing: true,
            heartbeat_ms: None,
            offline: false,
            claims: vec![],
            flags: Vec::new(),
        }
    }

    #[test]
    fn confirmation_counts_only_hosts_that_change() {
        let now = now_ms();
        let hosts = [
            host("a", true, HostState::Quarantined, &[]),
            host("b", true, HostState::Quarantined, &[]),
            host("c", true, HostState::Quarantined, &[]),
            host("d", false, HostState::Normal, &[]),
            host("e", false, HostState::Normal, &[]),
        ];
        let imp: Vec<HostImpact> = hosts
            .iter()
            .map(|h| impact(Action::Release, h, &[], None, None, &[], now))
            .collect();
        let c = confirmation(Action::Release, None, &imp);
        assert_eq!(c.summary, "Release 3 hosts?");
        assert_eq!((c.count, c.total), (3, 5));
        assert!(
            c.warnings[0].starts_with("2 of the 5 hosts already released"),
            "{:?}",
            c.warnings
        );
        // Quarantine with the same exception: the quarantined ones do not change.
        let allow = vec!["10.0.0.5".to_string()];
        let imp: Vec<HostImpact> = hosts
            .iter()
            .map(|h| impact(Action::Quarantine, h, &allow, None, None, &[], now))
            .collect();
        let c = confirmation(Action::Quarantine, Some("web"), &imp);
        assert_eq!(c.summary, "Quarantine 2 hosts (every host with label \"web\")?");
        assert_eq!(c.confirm_word.as_deref(), Some("web"));
        // Different exceptions: replaced, and said so.
        let i = impact(
            Action::Quarantine,
            &hosts[0],
            &["tcp://192.0.2.9:22".to_string()],
            None,
            None,
            &[],
            now,
        );
        assert_eq!(i.change, "update");
        assert!(
            i.details[0].contains("10.0.0.5 → tcp://192.0.2.9:22"),
            "{:?}",
            i.details
        );
    }

    #[test]
    fn impact_flags_protected_offline_and_failed_hosts() {
        let now = now_ms();
        let mut dc = host("dc1", false, HostState::Normal, &["domain-controller"]);
        dc.last_seen = Some(to_rfc3339(now - 3_600_000));
        let i = impact(
            Action::Quarantine,
            &dc,
            &[],
            None,
            None,
            &["domain-controller".into()],
            now,
        );
        assert_eq!(i.protected, vec!["domain-controller".to_string()]);
        assert!(i.offline);
        let p = host("x", false, HostState::Normal, &[PROTECTED_LABEL]);
        let i2 = impact(Action::Quarantine, &p, &[], None, None, &[], now);
        assert_eq!(i2.protected, vec![PROTECTED_LABEL.to_string()]);
        let c = confirmation(Action::Quarantine, None, &[i, i2]);
        assert!(
            c.warnings.iter().any(|w| w.starts_with("Protected: 2 hosts")),
            "{:?}",
            c.warnings
        );
        assert!(
            c.warnings.iter().any(|w| w.starts_with("Offline: 1 (dc1)")),
            "{:?}",
            c.warnings
        );
        let f = host("f", true, HostState::Failed, &[]);
        assert_eq!(
            impact(Action::Quarantine, &f, &["10.0.0.5".into()], None, None, &[], now).change,
            "retry"
        );
    }
}
