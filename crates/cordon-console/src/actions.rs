//! The quarantine / release dialog: its markup, a check step that validates the request
//! and says, host by host, what will change ([`impact`]), and the run step. What changes
//! is never worked out here: the check step asks the service for a `preview` of exactly
//! the request the run step sends (the store's `plan_change`: a host already quarantined
//! keeps its exceptions, message and expiry unless the analyst ticks **Replace**), and
//! the dialog words the server's per-host answer (new, kept, replaced, no change), with
//! what else the analyst must know (offline hosts, protected labels, other managers'
//! claims, agents that enforce nothing),
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
use cordon_proto::{ActionChange, ActionRequest, ActionResponse, ActionResult, HostState, MAX_MESSAGE_CHARS};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::session::{ApiSession, Session, CSRF_HEADER};
use super::status::Shown;
use cordon_server_core::service::{host_views, hosts, validate};
use cordon_server_core::store::Caller;
use cordon_server_core::store::{Action, HostFilter, HostQuery, MAX_PAGE};
use cordon_server_core::timefmt::{now_ms, Span, Timestamp};
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
                        div class="field check" {
                            input type="checkbox" id="dlg-replace" name="replace" aria-describedby="hint-replace";
                            " "
                            label for="dlg-replace" { "Replace the settings of hosts already quarantined" }
                            p class="hint" id="hint-replace" {
                                "Without it, a host that is already quarantined keeps its own exceptions, message and expiry."
                            }
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

/// The dialog's `action` for a retry (besides `quarantine` and `release`).
pub const RETRY: &str = "retry";

/// Hosts with this label are protected whatever the automation settings say.
pub const PROTECTED_LABEL: &str = cordon_proto::review::PROTECTED_LABEL;

/// What the dialog sends (JSON).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ActionForm {
    /// `quarantine`, `release` or `retry`.
    pub action: String,
    /// Host ids (one host or the selection); empty when `label` is used.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    /// Act on every host with this label instead of `hosts`.
    pub label: Option<String>,
    #[serde(default)]
    /// Why (required; audited).
    pub comment: String,
    /// Extra exceptions, one per line.
    #[serde(default)]
    pub allow: String,
    #[serde(default)]
    /// Message shown on the host (quarantine only; at most 256 characters).
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
    /// Quarantine: replace the exceptions, message and expiry of hosts already
    /// quarantined (the request's `replace`); otherwise each keeps its own.
    #[serde(default)]
    pub replace: bool,
}

/// What an action does to one host: the server's answer to the preview, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostImpact {
    /// Host id.
    pub id: String,
    /// Hostname.
    pub hostname: String,
    /// The desired-state revision this impact was computed against.
    pub revision: i64,
    /// The server's per-host change (`ActionChange`): `new`, `replaced`, `unchanged`,
    /// `already_quarantined` (kept as it is), `released`, `already_released`.
    pub change: &'static str,
    /// Whether the server changes this host.
    pub changes: bool,
    /// What changes or is kept, in words ("exceptions kept: 10.0.0.5 (asked: none)").
    pub details: Vec<String>,
    /// The agent is offline: the change stays pending until it returns.
    pub offline: bool,
    /// The agent has sent no report since it enrolled ([`Host::never_reported`]).
    pub never_reported: bool,
    /// The agent runs with `enforce = false`: nothing it takes is in force.
    pub not_enforcing: bool,
    /// The protected labels the host carries.
    pub protected: Vec<String>,
    /// Other managers' claims (`wazuh`, `velociraptor`, `local`) that keep the host
    /// isolated whatever Cordon does.
    pub other_claims: Vec<String>,
    /// The host's state now (wire name).
    pub state: String,
    /// Why the host is in that state, as its agent reported (a failure's error), if any.
    pub reason: Option<String>,
    /// The per-host line the review shows after the name ([`change_text`]): what the
    /// action does to this host, in the words of its state now.
    pub change_text: String,
    /// The first characters of the host id ([`super::view::short_id`]), shown next to
    /// the name: two hosts of one name stay apart in the review.
    pub short_id: String,
    /// The host's duplicate flags in words ([`super::view::flag_texts`]).
    pub flags: Vec<String>,
}

impl HostImpact {
    /// The host as sentences name it: the hostname, with the short id when the host
    /// carries any flag — another host shares the name or an address, or the name breaks
    /// the hostname rule (`db1 (1c2d3e4f)`) — so "Quarantine db1, db1?" never happens and
    /// a flagged twin is never a bare name, whether or not the other one is selected.
    pub fn name(&self) -> String {
        if !self.flags.is_empty() {
            format!("{} ({})", self.hostname, self.short_id)
        } else {
            self.hostname.clone()
        }
    }
}

fn list_text(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// Every host carrying `label`, read through the service a page at a time with the
/// label filter in SQL: the non-revoked ones (the action's targets), and the revoked
/// ones still desired quarantined (left out: no action reaches them; the review names
/// them, trial36 LOW-C).
async fn labelled(st: &AppState, caller: &Caller, label: &str) -> Result<(Vec<Host>, Vec<Host>), ApiError> {
    let q = HostQuery {
        filter: HostFilter {
            label: Some(label.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut revoked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, next) = host_views::sorted(st, caller, &q, after.as_deref(), MAX_PAGE).await?;
        // Revoked hosts still isolated are listed by default; an action cannot reach them.
        for h in page {
            if !h.revoked {
                out.push(h);
            } else if h.desired.quarantined {
                revoked.push(h);
            }
        }
        match next {
            Some(n) => after = Some(n),
            None => return Ok((out, revoked)),
        }
    }
}

/// Host by host, in words, what the server said it does (`result`, from a preview of
/// the very request the run sends) with the request `req` (pure).
pub fn impact(h: &Host, result: &ActionResult, req: &ActionRequest, protected_labels: &[String]) -> HostImpact {
    let d = &h.desired;
    let asked_expiry = req.expires_at.as_ref().map(super::view::short_time);
    let had_expiry = d.expires_at.as_ref().map(super::view::short_time);
    let expiry = |e: &Option<String>| e.clone().unwrap_or_else(|| "none".into());
    let message = |m: Option<&str>| m.map(|m| format!("“{m}”")).unwrap_or_else(|| "none".into());
    let mut details = Vec::new();
    match result.change {
        ActionChange::New => {
            details.push(format!("exceptions: {}", list_text(&req.allow)));
            if let Some(m) = &req.message {
                details.push(format!("message to users: “{m}”"));
            }
            if let Some(e) = &asked_expiry {
                details.push(format!("automatic release at {e}"));
            }
        }
        ActionChange::Replaced => {
            for f in &result.fields {
                details.push(match f.as_str() {
                    "allow" => format!(
                        "exceptions replaced: {} → {}",
                        list_text(&d.allow),
                        list_text(&req.allow)
                    ),
                    "message" => format!(
                        "message to users replaced: {} → {}",
                        message(d.message.as_deref()),
                        message(req.message.as_deref())
                    ),
                    "expires_at" => format!(
                        "automatic release replaced: {} → {}",
                        expiry(&had_expiry),
                        expiry(&asked_expiry)
                    ),
                    other => format!("{other} replaced"),
                });
            }
        }
        // Confirmed or only requested: the dialog's row says which (from `state`).
        ActionChange::AlreadyQuarantined => {
            for f in &result.fields {
                details.push(match f.as_str() {
                    "allow" => format!(
                        "exceptions kept: {} (asked: {})",
                        list_text(&d.allow),
                        list_text(&req.allow)
                    ),
                    "message" => format!(
                        "message to users kept: {} (asked: {})",
                        message(d.message.as_deref()),
                        message(req.message.as_deref())
                    ),
                    "expires_at" => format!(
                        "automatic release kept: {} (asked: {})",
                        expiry(&had_expiry),
                        expiry(&asked_expiry)
                    ),
                    other => format!("{other} kept"),
                });
            }
            details.push("tick “Replace” to replace them".into());
        }
        ActionChange::Unchanged if h.state == HostState::Quarantined => {
            details.push("already quarantined (confirmed) with these settings".into())
        }
        // Failed or tampered: the per-host line says so (`change_text`); nothing more here.
        ActionChange::Unchanged if matches!(h.state, HostState::Failed | HostState::Tampered) => {}
        ActionChange::Unchanged => details.push(format!(
            "already requested with these settings, not yet confirmed (now: {})",
            state_words(h)
        )),
        ActionChange::Released => {
            if !d.allow.is_empty() || d.message.is_some() || d.expires_at.is_some() {
                details.push("the quarantine's exceptions, message and expiry end with it".into());
            }
        }
        ActionChange::AlreadyReleased if h.state == HostState::Normal => {
            details.push("already released (confirmed)".into())
        }
        ActionChange::AlreadyReleased if h.state == HostState::Failed => {}
        ActionChange::AlreadyReleased => details.push(format!(
            "release already requested, not yet confirmed (now: {})",
            state_words(h)
        )),
        ActionChange::Retried => details.push("the desired state is re-sent to the agent as a new revision".into()),
    }
    let mut i = impact_base(h, protected_labels);
    if result.change == ActionChange::Released && !i.other_claims.is_empty() {
        details.push(format!(
            "only Cordon's claim ends: the host stays isolated by {}",
            i.other_claims.join(", ")
        ));
    }
    i.change = result.change.as_str();
    i.changes = result.change.changed();
    i.details = details;
    i.change_text = change_text(&i);
    i
}

/// Where the host stands before the action, for [`change_text`]: "already quarantined"
/// only when its agent confirmed it; a failure or a tamper by name (trial36 MED-A: both
/// were "already requested, not yet confirmed"). Pure.
fn standing(i: &HostImpact) -> String {
    let failed = |what: &str| match i.reason.as_deref() {
        Some(r) => format!("FAILED: its agent could not apply the {what}: {}", r.trim()),
        None => format!("FAILED: its agent could not apply the {what}"),
    };
    let release = matches!(i.change, "released" | "already_released");
    match HostState::parse(&i.state) {
        _ if i.not_enforcing => "already requested — NOT ENFORCING (enforce = false)".into(),
        Some(HostState::Quarantined) => "already quarantined".into(),
        Some(HostState::Normal) => "already released".into(),
        Some(HostState::Failed) if release => failed("release"),
        Some(HostState::Failed) => failed("quarantine"),
        Some(HostState::Tampered) => {
            "TAMPERED: its agent found the quarantine's rules altered or deleted and is repairing them".into()
        }
        Some(HostState::ReleasePending) => "release already requested, not yet confirmed".into(),
        _ if release => "release already requested, not yet confirmed".into(),
        _ => "already requested, not yet confirmed".into(),
    }
}

/// The review's line for one host after its name: what the action does to it, in the
/// words of its state now — "will be quarantined", "kept (already quarantined: …)", "no
/// change (same settings; FAILED: its agent could not apply the quarantine: REASON):
/// nothing new is sent — use Retry to re-send it", "no change (same settings; TAMPERED: …
/// is repairing them): nothing new is sent". Pure; the page shows it as text.
pub fn change_text(i: &HostImpact) -> String {
    let tail = match HostState::parse(&i.state) {
        _ if i.not_enforcing => "",
        Some(HostState::Failed) => ": nothing new is sent — use Retry to re-send it",
        Some(HostState::Tampered) => ": nothing new is sent",
        _ => "",
    };
    let at = standing(i);
    match i.change {
        "new" => "will be quarantined".into(),
        "released" => "will be released".into(),
        "replaced" => format!("replaced ({at}: exceptions, message and expiry replaced)"),
        "already_quarantined" => format!("kept ({at}: exceptions, message and expiry kept){tail}"),
        "unchanged" => format!("no change (same settings; {at}){tail}"),
        "already_released" => format!("no change ({at}){tail}"),
        "retried" => "will be re-sent to the agent (new revision; exceptions, message and expiry as they are)".into(),
        "nothing_to_retry" => "no change (nothing to retry)".into(),
        other => other.into(),
    }
}

/// "degraded: why" without the doubled word when the reason already starts with the
/// state ("degraded: degraded: …", trial8) (pure).
fn now_words(state: &str, reason: Option<&str>) -> String {
    match reason {
        Some(r) if r.starts_with(state) => r.to_string(),
        Some(r) => format!("{state}: {r}"),
        None => state.to_string(),
    }
}

/// The host's state in words for the review ("quarantine requested", "agent offline").
fn state_words(h: &Host) -> String {
    let mut w = super::view::state_text(h.state).to_lowercase();
    if super::status::offline(h) {
        w.push_str(", agent offline");
    }
    w
}

/// Whether an unchanged host's state is confirmed by its agent: quarantined for a
/// quarantine, normal for a release (pure; from the impact's wire state).
fn confirmed(action: Action, i: &HostImpact) -> bool {
    match action {
        Action::Quarantine => i.state == HostState::Quarantined.as_str(),
        Action::Release => i.state == HostState::Normal.as_str(),
    }
}

/// What the dialog says about `h` whatever the action: offline, not enforcing, its
/// protected labels and other managers' claims; no change yet (pure).
pub fn impact_base(h: &Host, protected_labels: &[String]) -> HostImpact {
    let others: Vec<String> = super::status::other_claims(h)
        .into_iter()
        .map(|c| c.source.to_string())
        .collect();
    let mut protected: Vec<String> = h
        .labels
        .iter()
        .filter(|l| {
            // What the label reads as: a look-alike of a protected label protects too.
            let all: Vec<String> = protected_labels
                .iter()
                .cloned()
                .chain([PROTECTED_LABEL.into()])
                .collect();
            cordon_server_core::service::validate::protected_label(std::slice::from_ref(*l), &all).is_some()
        })
        .cloned()
        .collect();
    protected.dedup();
    HostImpact {
        id: h.id.clone(),
        hostname: h.hostname.clone(),
        revision: h.desired.revision,
        change: "none",
        changes: false,
        details: Vec::new(),
        offline: super::status::offline(h),
        never_reported: h.never_reported(),
        not_enforcing: super::status::not_enforcing(h),
        protected,
        other_claims: others,
        state: h.state.as_str().to_string(),
        reason: h.state_reason.clone(),
        change_text: String::new(),
        short_id: super::view::short_id(&h.id).to_string(),
        flags: super::view::flag_texts(h),
    }
}

#[derive(Debug, Clone, Default, Serialize)]
/// Answer of the review step: what the action would do, per host, or why it cannot run.
pub struct CheckReply {
    /// The action can run as reviewed.
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
    /// Hosts with the action's label that are revoked and still quarantined, named
    /// (`web-02 (a488c581)`): left out of the action.
    revoked: Vec<String>,
    /// Selected hosts that are revoked, named the same way: left out of the action.
    selected_revoked: Vec<String>,
}

/// A revoked host as the review names it: hostname and short id (pure).
fn revoked_name(h: &Host) -> String {
    format!("{} ({})", h.hostname, super::view::short_id(&h.id))
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
async fn prepare(
    st: &AppState,
    caller: &Caller,
    f: &ActionForm,
    run: bool,
) -> Result<Prepared, (StatusCode, BTreeMap<String, String>)> {
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
            match Span::parse(e) {
                Ok(span) => expires_at = Some(Timestamp::from_unix_ms_clamped(now_ms().saturating_add(span.millis()))),
                Err(msg) => {
                    errors.insert("expires_in".into(), msg.to_string());
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
    let mut revoked: Vec<String> = Vec::new();
    let mut selected_revoked: Vec<String> = Vec::new();
    match (&label, refs.is_empty()) {
        (Some(l), true) => match validate::label(l) {
            Err(e) => {
                errors.insert("label".into(), e.detail);
            }
            Ok(l) => match labelled(st, caller, &l).await {
                Ok((list, held)) if list.is_empty() && !held.is_empty() => {
                    let names: Vec<String> = held.iter().map(revoked_name).collect();
                    errors.insert(
                        "label".into(),
                        format!(
                            "every host with the label {l:?} is revoked: {}",
                            cordon_proto::review::revoked_left_out(&f.action, &names)
                        ),
                    );
                }
                Ok((list, _)) if list.is_empty() => {
                    errors.insert("label".into(), format!("no host has the label {l:?}"));
                }
                Ok((list, held)) => {
                    targets = list;
                    revoked = held.iter().map(revoked_name).collect();
                }
                Err(e) => {
                    errors.insert("form".into(), e.detail);
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
            let (list, held) = resolve(st, caller, &refs, &mut errors).await;
            targets = list;
            selected_revoked = held;
        }
    }
    if !errors.is_empty() {
        return Err((invalid, errors));
    }
    if run {
        reviewed_set(st, caller, &targets, label.as_deref(), &f.revisions).await?;
    }
    stale(&targets, &f.revisions)?;
    let protected_labels = match cordon_automation::service::settings(st, caller).await {
        Ok(s) => s.protected_labels,
        Err(e) => {
            // The service's own status (403, 503 storage_full, …), not always 500.
            errors.insert("form".into(), format!("cannot read the protected labels: {}", e.detail));
            return Err((e.status, errors));
        }
    };
    // What the server will do, host by host: a preview of the request the run sends
    // (same validation and `plan_change`; nothing is written).
    let mut preview = ActionRequest {
        hosts: targets.iter().map(|h| h.id.clone()).collect(),
        label: None,
        comment: Some(f.comment.trim().to_string()),
        allow,
        message,
        expires_at,
        if_revisions: Some(
            targets
                .iter()
                .map(|h| {
                    (
                        h.id.clone(),
                        f.revisions.get(&h.id).copied().unwrap_or(h.desired.revision),
                    )
                })
                .collect(),
        ),
        replace: f.replace && action == Action::Quarantine,
        preview: true,
    };
    let answer = match hosts::act_many(st, caller, action, &preview).await {
        Ok(a) => a,
        Err(e) => {
            let field = if e.status == StatusCode::CONFLICT {
                "stale"
            } else {
                "form"
            };
            errors.insert(field.into(), e.detail);
            return Err((e.status, errors));
        }
    };
    let by_id: BTreeMap<&str, &ActionResult> = answer.results.iter().map(|r| (r.host_id.as_str(), r)).collect();
    let mut impacts = Vec::with_capacity(targets.len());
    for h in &targets {
        let Some(r) = by_id.get(h.id.as_str()) else {
            errors.insert(
                "form".into(),
                format!("the server's preview left out host {}", h.hostname),
            );
            return Err((StatusCode::INTERNAL_SERVER_ERROR, errors));
        };
        impacts.push(impact(h, r, &preview, &protected_labels));
    }
    // The run: exactly the hosts that change, each at the revision the analyst saw.
    let changing: BTreeSet<&str> = impacts.iter().filter(|i| i.changes).map(|i| i.id.as_str()).collect();
    preview.hosts.retain(|id| changing.contains(id.as_str()));
    if let Some(revs) = preview.if_revisions.as_mut() {
        revs.retain(|id, _| changing.contains(id.as_str()));
    }
    preview.preview = false;
    let req = preview;
    Ok(Prepared {
        action,
        req,
        impacts,
        revoked,
        selected_revoked,
    })
}

/// The run acts on exactly the hosts the review showed (trial8): every targeted host
/// carries the revision the review returned (400 when the run names none, or not for
/// every host, or for hosts it does not target), and a label's hosts now are the ones
/// reviewed (409 naming the hosts that gained or lost the label, whatever the analyst
/// typed). Hosts that left are named by hostname when they still exist.
async fn reviewed_set(
    st: &AppState,
    caller: &Caller,
    targets: &[Host],
    label: Option<&str>,
    revisions: &BTreeMap<String, i64>,
) -> Result<(), (StatusCode, BTreeMap<String, String>)> {
    let now: BTreeSet<&str> = targets.iter().map(|h| h.id.as_str()).collect();
    let seen: BTreeSet<&str> = revisions.keys().map(String::as_str).collect();
    if now == seen {
        return Ok(());
    }
    let err = |status: StatusCode, field: &str, msg: String| {
        let mut errors = BTreeMap::new();
        errors.insert(field.to_string(), msg);
        Err((status, errors))
    };
    if seen.is_empty() {
        return err(
            StatusCode::BAD_REQUEST,
            "form",
            "the run carries no reviewed revisions: review the action first (the run must name each host's revision the review showed); nothing was done".into(),
        );
    }
    let mut gone = Vec::new();
    for id in seen.difference(&now) {
        gone.push(match hosts::get(st, caller, id).await {
            Ok(h) => h.hostname,
            Err(_) => (*id).to_string(),
        });
    }
    let added: Vec<&str> = targets
        .iter()
        .filter(|h| !seen.contains(h.id.as_str()))
        .map(|h| h.hostname.as_str())
        .collect();
    match label {
        Some(l) => {
            let diff: Vec<String> = added
                .iter()
                .map(|n| format!("+{n}"))
                .chain(gone.iter().map(|n| format!("-{n}")))
                .collect();
            err(
                StatusCode::CONFLICT,
                "stale",
                format!(
                    "the hosts with label {l} changed since the review: {}; nothing was done. Review again.",
                    diff.join(", ")
                ),
            )
        }
        None if !added.is_empty() => err(
            StatusCode::BAD_REQUEST,
            "form",
            format!(
                "the run names no reviewed revision for {}: review the action first; nothing was done",
                added.join(", ")
            ),
        ),
        None => err(
            StatusCode::BAD_REQUEST,
            "form",
            format!(
                "the run names revisions of hosts it does not act on ({}); nothing was done",
                gone.join(", ")
            ),
        ),
    }
}

/// A view that is out of date is refused (409), naming what changed.
fn stale(targets: &[Host], revisions: &BTreeMap<String, i64>) -> Result<(), (StatusCode, BTreeMap<String, String>)> {
    for h in targets {
        if let Some(seen) = revisions.get(&h.id) {
            if *seen != h.desired.revision {
                let mut errors = BTreeMap::new();
                errors.insert(
                    "stale".into(),
                    format!(
                        "{} changed since this page showed it (now: {}{}): nothing was done. Look at its current state and try again.",
                        h.hostname,
                        super::view::state_text(h.state).to_lowercase(),
                        h.desired.actor_label().map(|a| format!(", asked by {a}")).unwrap_or_default()
                    ),
                );
                return Err((StatusCode::CONFLICT, errors));
            }
        }
    }
    Ok(())
}

/// The hosts `refs` names (ids or hostnames), each once, through the service (viewer),
/// and the revoked ones among them, named (`web-02 (a488c581)`): no action reaches a
/// revoked host, so they are left out of the targets and the review says so; only a
/// selection of nothing but revoked hosts is a form error (trial42 MED-2: "Select all"
/// ticks revoked rows, and the review refused one of them per attempt). An unknown host
/// is a form error.
async fn resolve(
    st: &AppState,
    caller: &Caller,
    refs: &[String],
    errors: &mut BTreeMap<String, String>,
) -> (Vec<Host>, Vec<String>) {
    let mut seen = BTreeSet::new();
    let mut targets = Vec::new();
    let mut revoked = Vec::new();
    for r in refs {
        match hosts::get(st, caller, r).await {
            Ok(h) => {
                if seen.insert(h.id.clone()) {
                    if h.revoked {
                        revoked.push(revoked_name(&h));
                    } else {
                        targets.push(h);
                    }
                }
            }
            Err(e) => {
                errors.insert("form".into(), e.detail);
            }
        }
    }
    if targets.is_empty() && !revoked.is_empty() && errors.is_empty() {
        errors.insert(
            "form".into(),
            format!(
                "every selected host is revoked: {} (no action reaches a revoked host; one still quarantined is released on the host: cordon release --force)",
                revoked.join(", ")
            ),
        );
    }
    (targets, revoked)
}

/// The review's line for selected hosts left out because they are revoked (pure).
fn revoked_selected(names: &[String]) -> String {
    format!(
        "Revoked: {} selected {} left out: {} — no action reaches a revoked host; one still quarantined is released on the host (cordon release --force).",
        names.len(),
        if names.len() == 1 { "host is" } else { "hosts are" },
        names.join(", ")
    )
}

/// A retry checked: per host whether it is retried ([`Host::retry_refusal`]: failed, tampered,
/// degraded and pending hosts are) and the service's preview of the run.
struct PreparedRetry {
    /// The hosts that are retried, at the revisions the analyst saw.
    ids: Vec<String>,
    revisions: BTreeMap<String, i64>,
    comment: String,
    impacts: Vec<HostImpact>,
    /// Selected hosts that are revoked (`web-02 (a488c581)`): left out, the review says so.
    revoked: Vec<String>,
}

/// The Retry dialog's check: the comment, the hosts (never a label), a stale view
/// refused, and a preview of the very retry the run sends (nothing is written).
async fn prepare_retry(
    st: &AppState,
    caller: &Caller,
    f: &ActionForm,
    run: bool,
) -> Result<PreparedRetry, (StatusCode, BTreeMap<String, String>)> {
    let mut errors = BTreeMap::new();
    let invalid = StatusCode::UNPROCESSABLE_ENTITY;
    let comment = match validate::comment(Some(&f.comment)) {
        Ok(c) => c,
        Err(e) => {
            errors.insert("comment".into(), e.detail);
            String::new()
        }
    };
    if label_of(f).is_some() {
        errors.insert("form".into(), "retry works on hosts, not on a label".into());
        return Err((invalid, errors));
    }
    let refs: Vec<String> = f
        .hosts
        .iter()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .collect();
    if refs.is_empty() {
        errors.insert("form".into(), "select at least one host".into());
    }
    let (targets, revoked) = resolve(st, caller, &refs, &mut errors).await;
    if !errors.is_empty() {
        return Err((invalid, errors));
    }
    if run {
        reviewed_set(st, caller, &targets, None, &f.revisions).await?;
    }
    stale(&targets, &f.revisions)?;
    let retried: Vec<&Host> = targets.iter().filter(|h| h.retry_refusal().is_none()).collect();
    let ids: Vec<String> = retried.iter().map(|h| h.id.clone()).collect();
    let revisions: BTreeMap<String, i64> = retried
        .iter()
        .map(|h| {
            (
                h.id.clone(),
                f.revisions.get(&h.id).copied().unwrap_or(h.desired.revision),
            )
        })
        .collect();
    let mut answered: BTreeMap<String, ActionResult> = BTreeMap::new();
    if !ids.is_empty() {
        match hosts::retry(st, caller, &ids, Some(&comment), &revisions, true).await {
            Ok(a) => answered.extend(a.results.into_iter().map(|r| (r.host_id.clone(), r))),
            Err(e) => {
                let field = if e.status == StatusCode::CONFLICT {
                    "stale"
                } else {
                    "form"
                };
                errors.insert(field.into(), e.detail);
                return Err((e.status, errors));
            }
        }
    }
    let impacts = targets
        .iter()
        .map(|h| {
            let mut i = impact_base(h, &[]);
            match (answered.get(&h.id), h.retry_refusal()) {
                (Some(r), _) => {
                    i.change = r.change.as_str();
                    i.changes = true;
                    i.details.push(format!(
                        "re-sends the {} to the agent as revision {} (now {})",
                        if h.desired.quarantined { "quarantine" } else { "release" },
                        r.revision,
                        now_words(&Shown::of(h).key().replace('_', " "), h.state_reason.as_deref())
                    ));
                    if let Some(w) = others_stay(&i.other_claims, h.desired.quarantined) {
                        i.details.push(w);
                    }
                }
                (None, why) => {
                    i.change = "nothing_to_retry";
                    i.details.push(why.unwrap_or_else(|| "nothing to retry".into()));
                }
            }
            i.change_text = change_text(&i);
            i
        })
        .collect();
    Ok(PreparedRetry {
        ids,
        revisions,
        comment,
        impacts,
        revoked,
    })
}

/// What a retry leaves alone on a host other managers also hold (trial13 LOW): their
/// claims stay whatever Cordon re-sends; after a release, they keep the host isolated
/// (pure). `None` without other claims.
fn others_stay(other_claims: &[String], quarantined: bool) -> Option<String> {
    if other_claims.is_empty() {
        return None;
    }
    let who = other_claims.join(", ");
    Some(if quarantined {
        format!(
            "Retry re-sends Cordon's own quarantine only; the claim of {who} stays as it is (Retry never changes another manager's claim)"
        )
    } else {
        format!(
            "Retry re-sends Cordon's release only: Cordon's rules go, the host stays isolated by {who} (Retry never changes another manager's claim)"
        )
    })
}

/// The Retry confirmation: "Retry 2 hosts?", the hosts with nothing to retry, the
/// offline ones, the ones other managers also hold (pure).
/// Which review [`cautions`] speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    /// The quarantine dialog (hosts or a label).
    Quarantine,
    /// The release dialog.
    Release,
    /// Retry: Cordon's desired state sent again as a new revision.
    Retry,
    /// Approving automatic quarantines (the approvals review).
    Approve,
}

/// The cautions every review shows about the hosts it changes (`changing`), whatever
/// asked for the change: hosts whose agent enforces nothing (`enforce = false`), offline
/// hosts (their change stays pending), hosts other managers also hold. One function for
/// the action dialog (quarantine, release, retry) and the approvals review, so no review
/// can promise an effect another one warns about (trial16 MED-1: approving promised "will
/// quarantine" on a host whose agent blocks nothing). Pure; hosts are named as
/// [`HostImpact::name`] does (short id when a name is shared).
pub fn cautions(review: Review, changing: &[&HostImpact]) -> Vec<String> {
    let names = |f: &dyn Fn(&HostImpact) -> bool| -> Vec<String> {
        changing.iter().filter(|i| f(i)).map(|i| i.name()).collect()
    };
    let mut out = Vec::new();
    let claimed: Vec<&&HostImpact> = changing.iter().filter(|i| !i.other_claims.is_empty()).collect();
    if !claimed.is_empty() {
        let mut all: Vec<String> = claimed.iter().flat_map(|i| i.other_claims.clone()).collect();
        all.sort();
        all.dedup();
        match review {
            Review::Release => out.push(format!(
                "Other claims: {} stay{} isolated after this release; it removes only Cordon's claim, not other managers' ({}).",
                claimed.iter().map(|i| i.name()).collect::<Vec<_>>().join(", "),
                if claimed.len() == 1 { "s" } else { "" },
                all.join(", ")
            )),
            Review::Retry => out.push(format!(
                "Also held by other managers: {}. Retry re-sends only Cordon's desired state as a new revision; \
                 the other managers' claims stay in force until they release them.",
                claimed
                    .iter()
                    .map(|i| format!("{} by {}", i.name(), i.other_claims.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            Review::Quarantine | Review::Approve => {}
        }
    }
    // An agent that never reported is not "offline … until it returns" (trial36 LOW-D):
    // it has not started yet, and enrolled hosts seen at enrollment were not named at all.
    let never = names(&|i| i.never_reported);
    if !never.is_empty() {
        out.push(format!(
            "Never reported: {} ({}): {} not reported since enrolling; the change stays pending until {} first reports.",
            never.len(),
            never.join(", "),
            if never.len() == 1 { "its agent has" } else { "their agents have" },
            if never.len() == 1 { "it" } else { "each" }
        ));
    }
    let offline = names(&|i| i.offline && !i.never_reported);
    if !offline.is_empty() {
        out.push(format!(
            "Offline: {} ({}) will stay pending until {} agent returns.",
            offline.len(),
            offline.join(", "),
            if offline.len() == 1 { "its" } else { "each" }
        ));
    }
    let dry = names(&|i| i.not_enforcing);
    if !dry.is_empty() {
        use cordon_proto::review as r;
        let what = match review {
            Review::Quarantine | Review::Approve => r::QUARANTINE_BLOCKS_NOTHING,
            Review::Release => r::RELEASE_CHANGES_NOTHING,
            Review::Retry => r::RETRY_CHANGES_NOTHING,
        };
        out.push(r::not_enforcing(&dry, what));
    }
    out
}

fn retry_confirmation(impacts: &[HostImpact]) -> CheckReply {
    let total = impacts.len();
    let changing: Vec<&HostImpact> = impacts.iter().filter(|i| i.changes).collect();
    let n = changing.len();
    let summary = if n == 0 {
        "Nothing to retry: no selected host is failed, tampered, degraded or pending.".to_string()
    } else {
        format!("Retry {n} {}?", plural(n))
    };
    let mut warnings = Vec::new();
    if n > 0 && total > n {
        warnings.push(format!(
            "{} of the {total} {} nothing to retry: no change for {}.",
            total - n,
            if total - n == 1 { "host has" } else { "hosts have" },
            if total - n == 1 { "it" } else { "them" }
        ));
    }
    warnings.extend(cautions(Review::Retry, &changing));
    CheckReply {
        ok: true,
        errors: BTreeMap::new(),
        count: n,
        total,
        hostnames: changing.iter().map(|i| i.name()).collect(),
        summary,
        hosts: impacts.to_vec(),
        warnings,
        confirm_word: None,
        revisions: impacts.iter().map(|i| (i.id.clone(), i.revision)).collect(),
    }
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
                "token {:?} has role {}: quarantine, release and retry need responder",
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
    let changing: Vec<&HostImpact> = impacts.iter().filter(|i| i.changes).collect();
    let n = changing.len();
    let verb = verb(action);
    let scope = match label {
        Some(l) => format!(" (every host with label {l:?})"),
        None => String::new(),
    };
    let kept = impacts.iter().filter(|i| i.change == "already_quarantined").count();
    // Unchanged hosts whose state the agent has not confirmed: "requested", never "done";
    // those whose agent enforces nothing, failed to apply it or found it altered are
    // named as such, never as "pending until its agent confirms" (trial24 LOW-1, trial36
    // MED-A).
    let unconfirmed_hosts: Vec<&HostImpact> = impacts.iter().filter(|i| !i.changes && !confirmed(action, i)).collect();
    let unconfirmed = unconfirmed_hosts.len();
    let is = |i: &HostImpact, s: HostState| !i.not_enforcing && i.state == s.as_str();
    let dry: Vec<&HostImpact> = unconfirmed_hosts.iter().copied().filter(|i| i.not_enforcing).collect();
    let failed: Vec<&HostImpact> = unconfirmed_hosts
        .iter()
        .copied()
        .filter(|i| is(i, HostState::Failed))
        .collect();
    let tampered: Vec<&HostImpact> = unconfirmed_hosts
        .iter()
        .copied()
        .filter(|i| is(i, HostState::Tampered))
        .collect();
    let pending: Vec<&HostImpact> = unconfirmed_hosts
        .iter()
        .copied()
        .filter(|i| !i.not_enforcing && !is(i, HostState::Failed) && !is(i, HostState::Tampered))
        .collect();
    let requested: Vec<String> = pending.iter().chain(dry.iter()).map(|i| i.name()).collect();
    let summary = if n == 0 && (!failed.is_empty() || !tampered.is_empty()) {
        let mut parts = Vec::new();
        if !failed.is_empty() {
            parts.push(format!(
                "FAILED on {} (use Retry to re-send it)",
                failed.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
            ));
        }
        if !tampered.is_empty() {
            parts.push(format!(
                "TAMPERED on {} (its agent is repairing the rules)",
                tampered.iter().map(|i| i.name()).collect::<Vec<_>>().join(", ")
            ));
        }
        if !requested.is_empty() {
            parts.push(format!("not yet confirmed for {}", requested.join(", ")));
        }
        format!(
            "Nothing new is sent: the {} already requested; {}.",
            if action == Action::Quarantine {
                "quarantine is"
            } else {
                "release is"
            },
            parts.join("; ")
        )
    } else if n == 0 && !requested.is_empty() {
        format!(
            "Nothing to do: the {} of {} already requested; not yet confirmed for {}.",
            if action == Action::Quarantine {
                "quarantine"
            } else {
                "release"
            },
            if total == 1 { "the host is" } else { "these hosts is" },
            requested.join(", ")
        )
    } else if n == 0 {
        format!(
            "Nothing to do: {} already {}.",
            if total == 1 {
                "the host is"
            } else {
                "all these hosts are"
            },
            match action {
                Action::Quarantine if kept > 0 =>
                    "quarantined and keep their own settings (tick “Replace” to replace them)",
                Action::Quarantine => "quarantined with these settings",
                Action::Release => "released",
            }
        )
    } else {
        format!("{verb} {n} {}{scope}?", plural(n))
    };
    let mut warnings = Vec::new();
    let unchanged = total - n - unconfirmed;
    if unchanged > 0 && n > 0 {
        warnings.push(format!(
            "{unchanged} of the {total} {} already {}: no change for {}.",
            plural(total),
            match action {
                Action::Quarantine if kept > 0 => "quarantined (each keeps its own exceptions, message and expiry)",
                Action::Quarantine => "quarantined with these settings",
                Action::Release => "released",
            },
            if unchanged == 1 { "it" } else { "them" }
        ));
    }
    let what = if action == Action::Quarantine {
        "quarantine"
    } else {
        "release"
    };
    if !failed.is_empty() {
        let names: Vec<String> = failed
            .iter()
            .map(|i| match i.reason.as_deref() {
                Some(r) => format!("{}: {}", i.name(), r.trim()),
                None => i.name(),
            })
            .collect();
        warnings.push(cordon_proto::review::failed_already_requested(what, &names));
    }
    if !tampered.is_empty() {
        let names: Vec<String> = tampered.iter().map(|i| i.name()).collect();
        warnings.push(cordon_proto::review::tampered_already_requested(what, &names));
    }
    if !pending.is_empty() && n > 0 {
        warnings.push(format!(
            "{} of the {total} {}: {what} already requested, not yet confirmed ({}): nothing new is sent; {} pending until {} agent confirms.",
            pending.len(),
            plural(total),
            pending.iter().map(|i| i.name()).collect::<Vec<_>>().join(", "),
            if pending.len() == 1 { "it stays" } else { "they stay" },
            if pending.len() == 1 { "its" } else { "each" }
        ));
    }
    if !dry.is_empty() {
        let names: Vec<String> = dry.iter().map(|i| i.name()).collect();
        warnings.push(cordon_proto::review::not_enforcing_already_requested(what, &names));
    }
    let names = |f: &dyn Fn(&HostImpact) -> bool| -> Vec<String> {
        changing.iter().filter(|i| f(i)).map(|i| i.name()).collect()
    };
    let protected = names(&|i| !i.protected.is_empty());
    if !protected.is_empty() {
        let mut labels: Vec<String> = changing.iter().flat_map(|i| i.protected.clone()).collect();
        labels.sort();
        labels.dedup();
        warnings.push(cordon_proto::review::protected(&protected, &labels));
    }
    warnings.extend(cautions(
        match action {
            Action::Quarantine => Review::Quarantine,
            Action::Release => Review::Release,
        },
        &changing,
    ));
    CheckReply {
        ok: true,
        errors: BTreeMap::new(),
        count: n,
        total,
        hostnames: changing.iter().map(|i| i.name()).collect(),
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
    if f.action == RETRY {
        return match prepare_retry(&st, &s.caller, &f, false).await {
            Err((status, errors)) => invalid_form(status, errors),
            Ok(p) => {
                let mut c = retry_confirmation(&p.impacts);
                if !p.revoked.is_empty() {
                    c.warnings.push(revoked_selected(&p.revoked));
                }
                Json(c).into_response()
            }
        };
    }
    match prepare(&st, &s.caller, &f, false).await {
        Err((status, errors)) => invalid_form(status, errors),
        Ok(p) => {
            let mut c = confirmation(p.action, label_of(&f).as_deref(), &p.impacts);
            if !p.revoked.is_empty() {
                c.summary = c
                    .summary
                    .replace("(every host with label", "(every non-revoked host with label");
                c.warnings
                    .push(cordon_proto::review::revoked_left_out(&f.action, &p.revoked));
            }
            if !p.selected_revoked.is_empty() {
                c.warnings.push(revoked_selected(&p.selected_revoked));
            }
            Json(c).into_response()
        }
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
/// Answer of running an action.
pub struct RunReply {
    /// The action ran.
    pub ok: bool,
    /// How many hosts changed.
    pub count: usize,
    /// What happened, in words, for the page.
    pub summary: String,
    /// Host id → its state after the action.
    pub states: Vec<(String, HostState)>,
    /// Host id → the server's change for it (`new`, `replaced`, `released`), to compare
    /// with what the review step said.
    pub changes: BTreeMap<String, &'static str>,
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
    if f.action == RETRY {
        return run_retry(&st, &s.caller, &f).await;
    }
    let p = match prepare(&st, &s.caller, &f, true).await {
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
    let verb = verb(p.action);
    let dry: Vec<String> = p
        .impacts
        .iter()
        .filter(|i| i.changes && i.not_enforcing)
        .map(HostImpact::name)
        .collect();
    run_reply(hosts::act_many(&st, &s.caller, p.action, &p.req).await, |n| {
        run_summary(verb, n, &dry)
    })
}

/// What a run says it did: `verb` requested for `n` hosts, waiting for their agents —
/// except the hosts in `dry`, whose agent runs with `enforce = false` and never confirms
/// (trial24 LOW-9: the flash said "waiting for the agents to confirm" for them; the
/// approvals' result already said "NOT ENFORCING"). Pure.
fn run_summary(verb: &str, n: usize, dry: &[String]) -> String {
    let mut out = format!("{verb} requested for {n} {}", plural(n));
    if dry.len() < n {
        out.push_str("; waiting for the agents to confirm");
    }
    if !dry.is_empty() {
        out.push_str(&format!(
            "; NOT ENFORCING, nothing blocked: {} (enforce = false: {} never confirms)",
            dry.join(", "),
            if dry.len() == 1 { "its agent" } else { "their agents" }
        ));
    }
    out.push('.');
    out
}

/// The answer to a run: per host the server's change and state, and `summary(n)` for the
/// `n` hosts changed; a 409 (a host moved on since the review) is `stale`.
fn run_reply(result: Result<ActionResponse, ApiError>, summary: impl Fn(usize) -> String) -> Response {
    match result {
        Ok(resp) => {
            let n = resp.results.len();
            Json(RunReply {
                ok: true,
                count: n,
                summary: summary(n),
                changes: resp
                    .results
                    .iter()
                    .map(|r| (r.host_id.clone(), r.change.as_str()))
                    .collect(),
                states: resp.results.into_iter().map(|r| (r.hostname, r.state)).collect(),
            })
            .into_response()
        }
        Err(ApiError { status, detail, .. }) if status == StatusCode::CONFLICT => reply_err(status, "stale", detail),
        Err(ApiError { status, detail, .. }) => reply_err(status, "run", detail),
    }
}

/// The Retry run: the service's retry of exactly the hosts the review said are
/// retried, each at the revision the analyst saw (409 if any moved on).
async fn run_retry(st: &AppState, caller: &Caller, f: &ActionForm) -> Response {
    let p = match prepare_retry(st, caller, f, true).await {
        Ok(p) => p,
        Err((status, errors)) => return invalid_form(status, errors),
    };
    if p.ids.is_empty() {
        return reply_err(
            StatusCode::CONFLICT,
            "run",
            "nothing to retry: no selected host is failed, tampered, degraded or pending",
        );
    }
    let result = hosts::retry(st, caller, &p.ids, Some(&p.comment), &p.revisions, false).await;
    run_reply(result, |n| {
        format!(
            "Retry sent for {n} {}: the agent{} get{} the desired state again as a new revision; waiting for {} to confirm.",
            plural(n),
            if n == 1 { "" } else { "s" },
            if n == 1 { "s" } else { "" },
            if n == 1 { "it" } else { "them" }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cordon_proto::DesiredState;
    use cordon_server_core::timefmt::Timestamp;

    fn host(name: &str, quarantined: bool, state: HostState, labels: &[&str]) -> Host {
        Host {
            id: format!("h-{name}"),
            hostname: name.into(),
            os: None,
            addresses: vec![],
            labels: labels.iter().map(|s| s.to_string()).collect(),
            agent_version: None,
            last_seen: Some(Timestamp::from_unix_ms_clamped(now_ms())),
            enrolled_at: Timestamp::from_unix_ms_clamped(0),
            desired: DesiredState {
                revision: 3,
                quarantined,
                allow: if quarantined { vec!["10.0.0.5".into()] } else { vec![] },
                message: None,
                comment: None,
                actor: None,
                actor_token_id: None,
                actor_token_name: None,
                expires_at: None,
                release_previous: vec![],
            },
            state,
            state_reason: None,
            state_since: Timestamp::from_unix_ms_clamped(now_ms()),
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

    fn result(h: &Host, change: ActionChange, fields: &[&str]) -> ActionResult {
        ActionResult {
            host_id: h.id.clone(),
            hostname: h.hostname.clone(),
            state: h.state,
            revision: h.desired.revision,
            change,
            fields: fields.iter().map(|f| f.to_string()).collect(),
            other_claims: vec![],
            not_enforcing: false,
            protected: vec![],
        }
    }

    #[test]
    fn confirmation_counts_only_hosts_that_change() {
        let hosts = [
            host("a", true, HostState::Quarantined, &[]),
            host("b", true, HostState::Quarantined, &[]),
            host("c", true, HostState::Quarantined, &[]),
            host("d", false, HostState::Normal, &[]),
            host("e", false, HostState::Normal, &[]),
        ];
        let req = ActionRequest::default();
        let imp: Vec<HostImpact> = hosts
            .iter()
            .map(|h| {
                let c = if h.desired.quarantined {
                    ActionChange::Released
                } else {
                    ActionChange::AlreadyReleased
                };
                impact(h, &result(h, c, &[]), &req, &[])
            })
            .collect();
        let c = confirmation(Action::Release, None, &imp);
        assert_eq!(c.summary, "Release 3 hosts?");
        assert_eq!((c.count, c.total), (3, 5));
        assert!(
            c.warnings[0].starts_with("2 of the 5 hosts already released"),
            "{:?}",
            c.warnings
        );
        let c = confirmation(Action::Quarantine, Some("web"), &imp);
        assert_eq!(c.confirm_word.as_deref(), Some("web"));
    }

    /// trial13 LOW: a retry of a host Wazuh also holds said only "will be re-sent": the
    /// review now says what Retry re-sends and that the other managers' claims stay.
    #[test]
    fn retry_says_what_it_resends_and_that_other_managers_claims_stay() {
        let mut held = impact_base(&host("endpoint", true, HostState::Failed, &[]), &[]);
        held.other_claims = vec!["wazuh".into()];
        held.changes = true;
        let plain = HostImpact {
            changes: true,
            ..impact_base(&host("web", true, HostState::Failed, &[]), &[])
        };
        let c = retry_confirmation(&[held, plain]);
        let w = c.warnings.join(" | ");
        assert!(
            w.contains("endpoint by wazuh")
                && w.contains("only Cordon's desired state")
                && w.contains("claims stay in force"),
            "{w}"
        );
        assert!(!w.contains("web by"), "{w}");
        let q = others_stay(&["wazuh".into()], true).unwrap_or_default();
        assert!(
            q.contains("Cordon's own quarantine only") && q.contains("wazuh stays"),
            "{q}"
        );
        let r = others_stay(&["wazuh".into(), "local".into()], false).unwrap_or_default();
        assert!(r.contains("stays isolated by wazuh, local"), "{r}");
        assert_eq!(others_stay(&[], true), None);
    }

    #[test]
    fn retry_state_words_never_double_the_state() {
        assert_eq!(
            now_words("degraded", Some("degraded: x unresolved")),
            "degraded: x unresolved"
        );
        assert_eq!(now_words("failed", Some("netlink")), "failed: netlink");
        assert_eq!(now_words("pending", None), "pending");
    }

    /// Re-quarantine: the dialog words what the server said — kept (its own settings
    /// stay) without Replace, replaced with it — never "replaced" for a kept host.
    #[test]
    fn requarantine_impact_says_kept_or_replaced_as_the_server_does() {
        let h = host("a", true, HostState::Quarantined, &[]);
        let req = ActionRequest {
            allow: vec!["tcp://192.0.2.9:22".into()],
            ..Default::default()
        };
        let kept = impact(&h, &result(&h, ActionChange::AlreadyQuarantined, &["allow"]), &req, &[]);
        assert_eq!(kept.change, "already_quarantined");
        assert!(!kept.changes);
        assert_eq!(
            kept.details[0], "exceptions kept: 10.0.0.5 (asked: tcp://192.0.2.9:22)",
            "{:?}",
            kept.details
        );
        let c = confirmation(Action::Quarantine, None, std::slice::from_ref(&kept));
        assert!(c.summary.starts_with("Nothing to do"), "{}", c.summary);
        assert!(c.summary.contains("keep their own settings"), "{}", c.summary);
        let replaced = impact(&h, &result(&h, ActionChange::Replaced, &["allow"]), &req, &[]);
        assert!(replaced.changes);
        assert_eq!(
            replaced.details[0],
            "exceptions replaced: 10.0.0.5 → tcp://192.0.2.9:22"
        );
        assert_eq!(
            confirmation(Action::Quarantine, None, &[replaced]).summary,
            "Quarantine 1 host?"
        );
    }

    #[test]
    fn impact_flags_protected_offline_and_other_claims() {
        let mut dc = host("dc1", false, HostState::Normal, &["domain-controller"]);
        dc.offline = true;
        let req = ActionRequest::default();
        let i = impact(
            &dc,
            &result(&dc, ActionChange::New, &[]),
            &req,
            &["domain-controller".into()],
        );
        assert_eq!(i.protected, vec!["domain-controller".to_string()]);
        assert!(i.offline);
        let p = host("x", false, HostState::Normal, &[PROTECTED_LABEL]);
        let i2 = impact(&p, &result(&p, ActionChange::New, &[]), &req, &[]);
        assert_eq!(i2.protected, vec![PROTECTED_LABEL.to_string()]);
        let c = confirmation(Action::Quarantine, None, &[i, i2]);
        assert!(
            c.warnings.iter().any(|w| w.starts_with("Protected: 2 hosts")),
            "{:?}",
            c.warnings
        );
        assert!(
            c.warnings
                .iter()
                .any(|w| w == "Offline: 1 (dc1) will stay pending until its agent returns."),
            "{:?}",
            c.warnings
        );
        let mut w = host("w", true, HostState::Quarantined, &[]);
        w.claims = vec![
            cordon_proto::ClaimInfo {
                source: "agent".into(),
                since: None,
                allow: vec![],
                servers: vec![],
                owner: None,
            },
            cordon_proto::ClaimInfo {
                source: "wazuh".into(),
                since: None,
                allow: vec![],
                servers: vec![],
                owner: None,
            },
        ];
        let i = impact(&w, &result(&w, ActionChange::Released, &[]), &req, &[]);
        assert_eq!(i.other_claims, vec!["wazuh".to_string()]);
        assert!(
            i.details.iter().any(|d| d.contains("stays isolated by wazuh")),
            "{:?}",
            i.details
        );
        let c = confirmation(Action::Release, None, &[i]);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.starts_with("Other claims: w stays isolated")),
            "{:?}",
            c.warnings
        );
    }
}
