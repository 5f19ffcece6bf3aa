//! API client commands for automation: `cordon rules …`, `cordon events …`,
//! `cordon approvals …`, `cordon notify …` (server side in the `cordon-automation`
//! crate). Tables for people, `--json` for scripts.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use cordon_client::automation::Decision as Verdict;
use cordon_client::{ApiClient, ClientError};
use cordon_proto::automation::{
    DecisionRequest, DecisionResult, DecisionStatus, EventIn, NotifyKind, RuleAction, RuleMode, RuleRecord, RuleSpec,
    SettingsPatch, Severity, TargetKind, TargetSpec,
};
use cordon_proto::timefmt::Span;

use crate::exit::{Code, Failure};
use crate::remote::{client_failure, connect, host_cell, hostnames, named_host_cell, table, Conn};

#[derive(Args, Debug)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub what: RulesWhat,
    #[command(flatten)]
    pub conn: Conn,
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum RulesWhat {
    /// List rules with whether each is active and why not.
    List,
    /// One rule.
    Show { name: String },
    /// Create or replace a rule (from flags, or --file with the JSON body).
    Put(RuleFlags),
    /// Delete a rule.
    Delete { name: String },
    /// Enable a rule (it stays disabled, with the reason, if it is invalid).
    Enable { name: String },
    /// Disable a rule.
    Disable { name: String },
    /// Show or change guardrails; `--kill-switch on` stops all automatic actions.
    Settings(SettingsFlags),
}

#[derive(Args, Debug)]
pub struct RuleFlags {
    /// Rule name (used in the audit actor `rule:<name>`).
    pub name: String,
    /// JSON rule body instead of flags.
    #[arg(long, conflicts_with_all = ["types", "labels"])]
    pub file: Option<PathBuf>,
    /// Trigger event type (repeat), e.g. wazuh.alert, wazuh.rule.100200, malware.
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only critical events.
    #[arg(long)]
    pub only_critical: bool,
    /// Trigger label (repeat): the host must carry one.
    #[arg(long = "label", value_name = "LABEL")]
    pub labels: Vec<String>,
    /// Extra allowed destination while quarantined (repeat).
    #[arg(long = "allow", value_name = "SPEC")]
    pub allow: Vec<String>,
    // Message shown to the quarantined host's users, at most MAX_MESSAGE_CHARS.
    #[arg(long, help = crate::message_help("at most"))]
    pub message: Option<String>,
    /// Release after this long (30m, 4h, 2d: the one duration form, `Span`).
    #[arg(long, value_name = "SPAN")]
    pub expires_after: Option<Span>,
    /// enforce or notify_only (dry run).
    #[arg(long, default_value = "enforce")]
    pub mode: String,
    /// Per-host cooldown of this rule (30m, 4h; default: the fleet setting).
    #[arg(long, value_name = "SPAN")]
    pub cooldown: Option<Span>,
    /// Store it disabled.
    #[arg(long)]
    pub disabled: bool,
}

#[derive(Args, Debug)]
pub struct SettingsFlags {
    /// on = stop every automatic action; off = resume.
    #[arg(long, value_parser = ["on", "off"])]
    pub kill_switch: Option<String>,
    /// Automatic quarantines allowed per window before approval is required.
    #[arg(long)]
    pub cap: Option<i64>,
    /// Cap window (10m, 1h, 1d: the one duration form, `Span`). `--window-secs N`, its
    /// old name, still works (a bare number is seconds), hidden from help.
    #[arg(long, alias = "window-secs", value_name = "SPAN")]
    pub window: Option<Span>,
    /// Per-host cooldown (30m, 4h). `--cooldown-secs N`, its old name, still works.
    #[arg(long, alias = "cooldown-secs", value_name = "SPAN")]
    pub cooldown: Option<Span>,
    /// Protected label (repeat; replaces the list).
    #[arg(long = "protect", value_name = "LABEL")]
    pub protect: Vec<String>,
    #[arg(long)]
    pub retention_days: Option<i64>,
    #[arg(long)]
    pub retention_max: Option<i64>,
    /// Console base URL for links in notifications.
    #[arg(long)]
    pub console_url: Option<String>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub what: EventsWhat,
    #[command(flatten)]
    pub conn: Conn,
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum EventsWhat {
    /// Recent events, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        /// Host id.
        #[arg(long)]
        host: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One event with every rule's outcome.
    Show { id: String },
    /// Post an event (what a SIEM would send).
    Send {
        /// Host id, hostname or IP.
        #[arg(long)]
        host: String,
        #[arg(long = "type")]
        event_type: String,
        /// info, low, medium, high or critical (case-insensitive).
        #[arg(long, default_value = "high", value_parser = parse_severity)]
        severity: Severity,
        #[arg(long, default_value = "cli")]
        source: String,
        /// Extra type names (repeat).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Raw JSON to store with it.
        #[arg(long)]
        raw: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    pub what: ApprovalsWhat,
    #[command(flatten)]
    pub conn: Conn,
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ApprovalsWhat {
    /// Approvals (default: pending).
    List {
        /// pending, approved, denied, superseded or all.
        #[arg(long, default_value = "pending")]
        status: String,
    },
    /// Approve (quarantine) pending approvals: ids, or --all.
    Approve(Decision),
    /// Deny pending approvals: ids, or --all.
    Deny(Decision),
}

#[derive(Args, Debug)]
pub struct Decision {
    pub ids: Vec<i64>,
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// Why (required).
    #[arg(long)]
    pub comment: String,
}

#[derive(Args, Debug)]
pub struct NotifyArgs {
    #[command(subcommand)]
    pub what: NotifyWhat,
    #[command(flatten)]
    pub conn: Conn,
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum NotifyWhat {
    /// Notification targets.
    Targets,
    /// Add a target: --kind slack|webhook, --url, --event filter (repeat; default all).
    Add {
        name: String,
        #[arg(long, default_value = "slack")]
        kind: String,
        #[arg(long)]
        url: String,
        /// Notification kinds (repeat; default all): quarantined, released,
        /// quarantine_requested, release_requested, not_enforcing, failed, tampered,
        /// approval_required; opt-in only: audit_checkpoint.
        #[arg(long = "event")]
        events: Vec<String>,
    },
    /// Remove a target by id.
    Remove { id: i64 },
    /// Delivery status of recent notifications.
    Deliveries {
        /// pending, delivered or dead.
        #[arg(long)]
        status: Option<String>,
    },
}

/// The statuses that mean "your request was wrong" for the automation commands.
const AUTOMATION_USAGE: &[u16] = &[400, 404, 409];

/// A refusal of the server as the command's failure (400/404/409: exit code 2).
fn refused(e: ClientError) -> Failure {
    client_failure(e, AUTOMATION_USAGE)
}

/// Connects (a CA file that makes no TLS configuration is a usage error here) and runs
/// the command.
fn block_on<F, Fut>(conn: &Conn, f: F) -> u8
where
    F: FnOnce(ApiClient) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    crate::exit::block_on(async move { f(connect(conn, Code::Usage)?).await })
}

/// An event's HOST cell: the host it resolved to as `web01 (820cb233)` (its hostname when
/// the server answered for it), else the reference as sent.
fn event_host(names: &std::collections::HashMap<String, String>, e: &cordon_proto::automation::EventRecord) -> String {
    match &e.host_id {
        Some(id) => host_cell(names.get(id).map_or(e.host_ref.as_str(), String::as_str), Some(id)),
        None => e.host_ref.clone(),
    }
}

/// One row of `events list`: ID, RECEIVED, SOURCE, TYPE, SEVERITY, HOST, STATUS, RULE.
/// STATUS is what automation did, in the console's words: `quarantined` is a request,
/// never a confirmed quarantine (trial24 LOW-5), so it reads `quarantine requested`. Pure.
fn event_row(
    names: &std::collections::HashMap<String, String>,
    e: &cordon_proto::automation::EventRecord,
) -> Vec<String> {
    vec![
        t(&e.id),
        e.received_at.to_string(),
        t(&e.source),
        t(&e.event_type),
        e.severity.as_str().to_string(),
        t(&event_host(names, e)),
        t(e.status.outcome_text()),
        opt(&e.rule),
    ]
}

/// Text from the server, terminal-safe ([`crate::term::safe`]).
fn t(text: &str) -> String {
    crate::term::s(text)
}

/// An optional value; `-` when absent.
fn opt(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "-".into(), t)
}

/// A list, comma-separated.
fn list(v: &[String]) -> String {
    v.iter().map(|x| t(x)).collect::<Vec<_>>().join(",")
}

/// A wire value as pretty JSON (what `--json` prints).
fn pretty<T: serde::Serialize>(v: &T) {
    match crate::term::json(v) {
        Ok(t) => println!("{t}"),
        Err(e) => eprintln!("cordon: cannot encode output: {e}"),
    }
}

/// Whether a rule can fire now (the ACTIVE column): in force *and* no reason it cannot
/// fire (trial16 LOW-3: a rule whose trigger label is ambiguous, whose hosts are all
/// protected or that the kill switch stops read `ACTIVE true`). The reasons are the
/// server's `cannot_fire`, the words the console's "⚠ cannot fire" shows.
fn fires(r: &RuleRecord) -> bool {
    r.active && r.cannot_fire.is_empty()
}

/// What `rules put`/`enable`/`disable` say about the rule they saved: "… and active" only
/// when it [`fires`], else why not.
fn standing(what: &str, r: &RuleRecord) -> String {
    if fires(r) {
        format!("{what} and active")
    } else if !r.active {
        format!("{what} but NOT active: {}", opt(&r.disabled_reason))
    } else {
        format!("{what} but it CANNOT FIRE now: {}", why_not(r))
    }
}

/// Why a rule cannot fire now (the WHY NOT column): the server's `cannot_fire` reasons
/// (they include a disabled rule's reason), else the `disabled_reason` of a server that
/// does not send them; `-` when it can fire.
fn why_not(r: &RuleRecord) -> String {
    if !r.cannot_fire.is_empty() {
        t(&r.cannot_fire.join("; "))
    } else {
        opt(&r.disabled_reason)
    }
}

/// `--severity`: a usage error (exit 2) naming the accepted values otherwise.
fn parse_severity(s: &str) -> Result<Severity, String> {
    Severity::parse(s).ok_or_else(|| format!("{s:?} must be info, low, medium, high or critical"))
}

/// A rule file's JSON object as written (the server validates it and names what is
/// wrong), with `name` set to the command's.
///
/// # Errors
/// Exit 2 naming the file when it cannot be read or is not one JSON object.
fn rule_file(path: &std::path::Path, name: &str) -> Result<serde_json::Map<String, serde_json::Value>, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    let mut spec: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    spec.insert("name".into(), name.into());
    Ok(spec)
}

pub fn rules(a: RulesArgs) -> u8 {
    let json = a.json;
    block_on(&a.conn, |api: ApiClient| async move {
        match a.what {
            RulesWhat::List => {
                let v = api.rules().await.map_err(refused)?;
                if json {
                    pretty(&v);
                } else {
                    let rows: Vec<Vec<String>> = v
                        .rules
                        .iter()
                        .map(|r| {
                            vec![
                                t(&r.spec.name),
                                fires(r).to_string(),
                                t(r.spec.mode.as_str()),
                                list(&r.spec.trigger_event_types),
                                list(&r.spec.trigger_labels),
                                why_not(r),
                            ]
                        })
                        .collect();
                    table(&["NAME", "ACTIVE", "MODE", "TYPES", "LABELS", "WHY NOT"], &rows);
                }
            }
            RulesWhat::Show { name } => pretty(&api.rule(&name).await.map_err(refused)?),
            RulesWhat::Put(f) => {
                let v = match &f.file {
                    Some(p) => api.put_rule(&f.name, &rule_file(p, &f.name)?).await,
                    None => {
                        api.put_rule_spec(&RuleSpec {
                            name: f.name.clone(),
                            enabled: !f.disabled,
                            trigger_event_types: f.types.clone(),
                            only_critical: f.only_critical,
                            trigger_labels: f.labels.clone(),
                            action: RuleAction::Quarantine,
                            allow: f.allow.clone(),
                            message: f.message.clone(),
                            expires_after: f.expires_after.map(|s| s.to_string()),
                            mode: RuleMode::from(f.mode.as_str()),
                            cooldown: f.cooldown.map(|s| s.to_string()),
                        })
                        .await
                    }
                }
                .map_err(refused)?;
                if json {
                    pretty(&v);
                } else {
                    println!("{}", standing(&format!("rule {} saved", f.name), &v));
                }
            }
            RulesWhat::Delete { name } => {
                api.delete_rule(&name).await.map_err(refused)?;
                println!("rule {name} deleted");
            }
            RulesWhat::Enable { name } => toggle(&api, &name, true, json).await?,
            RulesWhat::Disable { name } => toggle(&api, &name, false, json).await?,
            RulesWhat::Settings(f) => {
                let patch = SettingsPatch {
                    enabled: f.kill_switch.map(|k| k == "off"),
                    cap_count: f.cap,
                    cap_window_secs: f.window.map(Span::secs),
                    cooldown_secs: f.cooldown.map(Span::secs),
                    protected_labels: (!f.protect.is_empty()).then_some(f.protect),
                    event_retention_days: f.retention_days,
                    event_retention_max: f.retention_max,
                    console_url: f.console_url,
                };
                let v = if patch == SettingsPatch::default() {
                    api.automation_settings().await
                } else {
                    api.put_automation_settings(&patch).await
                }
                .map_err(refused)?;
                pretty(&v);
            }
        }
        Ok(())
    })
}

async fn toggle(api: &ApiClient, name: &str, enabled: bool, json: bool) -> Result<(), Failure> {
    let mut spec = api.rule(name).await.map_err(refused)?.spec;
    spec.enabled = enabled;
    let v = api.put_rule(name, &spec).await.map_err(refused)?;
    if json {
        pretty(&v);
    } else {
        let did = if enabled { "enabled" } else { "disabled" };
        println!("{}", standing(&format!("rule {name} {did}"), &v));
    }
    Ok(())
}

pub fn events(a: EventsArgs) -> u8 {
    let json = a.json;
    block_on(&a.conn, |api: ApiClient| async move {
        match a.what {
            EventsWhat::List { status, host, limit } => {
                let v = api
                    .events(limit, status.as_deref(), host.as_deref())
                    .await
                    .map_err(refused)?;
                if json {
                    pretty(&v);
                } else {
                    let names = hostnames(&api, v.events.iter().filter_map(|e| e.host_id.as_deref())).await;
                    let rows: Vec<Vec<String>> = v.events.iter().map(|e| event_row(&names, e)).collect();
                    table(
                        &["ID", "RECEIVED", "SOURCE", "TYPE", "SEVERITY", "HOST", "STATUS", "RULE"],
                        &rows,
                    );
                }
            }
            EventsWhat::Show { id } => pretty(&api.event(&id).await.map_err(refused)?),
            EventsWhat::Send {
                host,
                event_type,
                severity,
                source,
                tags,
                raw,
            } => {
                let raw = raw
                    .map(|r| serde_json::from_str(&r))
                    .transpose()
                    .map_err(|e| Failure::usage(format!("--raw: {e}")))?;
                let event = EventIn {
                    host,
                    event_type,
                    tags,
                    severity,
                    source: Some(source),
                    occurred_at: None,
                    raw,
                };
                let v = api.send_event(&event).await.map_err(refused)?;
                if json {
                    pretty(&v);
                } else {
                    for e in &v.events {
                        println!("{} {} (rule {})", t(&e.id), t(e.status.outcome_text()), opt(&e.rule));
                        for o in &e.outcomes {
                            println!("  {}: {} - {}", t(&o.rule), t(o.outcome.as_str()), t(&o.reason));
                        }
                    }
                }
            }
        }
        Ok(())
    })
}

/// The RESULT cell of one decision: the status, and for an approval whose host's agent
/// runs with `enforce = false` what that means (trial36 LOW-B: it read only `approved`,
/// where `quarantine` and the console's approvals flash say NOT ENFORCING).
fn decision_words(r: &DecisionResult, not_enforcing: bool) -> String {
    if r.status == DecisionStatus::Approved && not_enforcing {
        "approved — NOT ENFORCING (enforce = false): nothing blocked".to_string()
    } else {
        r.status.as_str().to_string()
    }
}

/// The exit of `approvals approve|deny IDS`: exit 1 when none of the approvals named was
/// decided as asked (each was decided before, or superseded: nothing was done; trial30
/// LOW-6 exited 0 printing only `not_pending`), naming why for each. `--all` with
/// nothing pending is no failure (it names no approval).
fn decided_any(verdict: Verdict, results: &[DecisionResult], all: bool) -> Result<(), Failure> {
    let want = match verdict {
        Verdict::Approve => DecisionStatus::Approved,
        Verdict::Deny => DecisionStatus::Denied,
    };
    if all || results.is_empty() || results.iter().any(|r| r.status == want) {
        return Ok(());
    }
    let why: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "approval {}: {}",
                r.id,
                t(r.reason.as_deref().unwrap_or(r.status.as_str()))
            )
        })
        .collect();
    Err(Failure::msg(
        Code::Failed,
        format!(
            "nothing was {}: {}",
            if want == DecisionStatus::Approved {
                "approved"
            } else {
                "denied"
            },
            why.join("; ")
        ),
    ))
}

pub fn approvals(a: ApprovalsArgs) -> u8 {
    let json = a.json;
    block_on(&a.conn, |api: ApiClient| async move {
        let (verdict, d) = match a.what {
            ApprovalsWhat::List { status } => {
                let v = api.approvals(&status).await.map_err(refused)?;
                if json {
                    pretty(&v);
                } else {
                    let names = hostnames(&api, v.approvals.iter().map(|p| p.host_id.as_str())).await;
                    let rows: Vec<Vec<String>> = v
                        .approvals
                        .iter()
                        .map(|p| {
                            vec![
                                p.id.to_string(),
                                p.created_at.to_string(),
                                t(&named_host_cell(&names, &p.host_id)),
                                t(&p.rule),
                                t(&p.event_id),
                                p.status.as_str().to_string(),
                                // Who decided, with the token id (issue 17): a name is only a label.
                                t(&p.decided_by_label().unwrap_or_else(|| "-".into())),
                                t(&p.reason),
                            ]
                        })
                        .collect();
                    table(
                        &[
                            "ID",
                            "CREATED",
                            "HOST",
                            "RULE",
                            "EVENT",
                            "STATUS",
                            "DECIDED BY",
                            "REASON",
                        ],
                        &rows,
                    );
                }
                return Ok(());
            }
            ApprovalsWhat::Approve(d) => (Verdict::Approve, d),
            ApprovalsWhat::Deny(d) => (Verdict::Deny, d),
        };
        if !d.all && d.ids.is_empty() {
            return Err(Failure::usage("give approval ids or --all"));
        }
        let req = DecisionRequest {
            ids: d.ids,
            all: d.all,
            comment: Some(d.comment),
            ..Default::default()
        };
        let v = api.decide(verdict, &req).await.map_err(refused)?;
        if json {
            pretty(&v);
        } else {
            let names = hostnames(&api, v.results.iter().map(|r| r.host_id.as_str())).await;
            // Approved hosts whose agent enforces nothing: said as the console says it.
            let mut dry = std::collections::HashSet::new();
            for r in v.results.iter().filter(|r| r.status == DecisionStatus::Approved) {
                if let Ok(h) = api.host(&r.host_id).await {
                    if h.state == cordon_proto::HostState::NotEnforcing || !h.enforcing {
                        dry.insert(r.host_id.clone());
                    }
                }
            }
            let rows: Vec<Vec<String>> = v
                .results
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        t(&named_host_cell(&names, &r.host_id)),
                        decision_words(r, dry.contains(&r.host_id)),
                        t(r.reason.as_deref().unwrap_or("")),
                    ]
                })
                .collect();
            table(&["ID", "HOST", "RESULT", "REASON"], &rows);
        }
        decided_any(verdict, &v.results, req.all)
    })
}

pub fn notify(a: NotifyArgs) -> u8 {
    let json = a.json;
    block_on(&a.conn, |api: ApiClient| async move {
        match a.what {
            NotifyWhat::Targets => {
                let v = api.notify_targets().await.map_err(refused)?;
                if json {
                    pretty(&v);
                } else {
                    let rows: Vec<Vec<String>> = v
                        .targets
                        .iter()
                        .map(|x| {
                            vec![
                                x.id.to_string(),
                                t(&x.spec.name),
                                x.spec.kind.as_str().to_string(),
                                list(&x.spec.events.iter().map(ToString::to_string).collect::<Vec<_>>()),
                                x.spec.enabled.to_string(),
                            ]
                        })
                        .collect();
                    table(&["ID", "NAME", "KIND", "EVENTS", "ENABLED"], &rows);
                }
            }
            NotifyWhat::Add {
                name,
                kind,
                url,
                events,
            } => {
                let kind = TargetKind::parse(&kind)
                    .ok_or_else(|| Failure::usage(format!("unknown target kind {kind:?} (slack or webhook)")))?;
                let spec = TargetSpec {
                    name: name.clone(),
                    kind,
                    url,
                    events: events.into_iter().map(NotifyKind::from).collect(),
                    enabled: true,
                };
                let v = api.add_notify_target(&spec).await.map_err(refused)?;
                if json {
                    pretty(&v);
                } else {
                    println!("target {} added (id {})", name, v.id);
                    // Links in notifications are only absolute once the console's URL is known.
                    let settings = api.automation_settings().await;
                    if settings.is_ok_and(|v| v.console_url.as_deref().is_none_or(str::is_empty)) {
                        println!(
                            "note: host links in notifications are relative (/console/hosts/ID) until the console's \
                             address is set: cordon rules settings --console-url https://SERVER:8443"
                        );
                    }
                }
            }
            NotifyWhat::Remove { id } => {
                api.remove_notify_target(id).await.map_err(refused)?;
                println!("target {id} removed");
            }
            NotifyWhat::Deliveries { status } => {
                let v = api.notify_deliveries(status.as_deref()).await.map_err(refused)?;
                if json {
                    pretty(&v);
                } else {
                    let rows: Vec<Vec<String>> = v
                        .deliveries
                        .iter()
                        .map(|d| {
                            vec![
                                d.id.to_string(),
                                d.target_id.to_string(),
                                t(d.kind.as_str()),
                                d.status.as_str().to_string(),
                                d.attempts.to_string(),
                                d.next_attempt_at.map_or_else(|| "-".into(), |t| t.to_string()),
                                opt(&d.last_error),
                            ]
                        })
                        .collect();
                    table(
                        &["ID", "TARGET", "KIND", "STATUS", "ATTEMPTS", "NEXT", "LAST ERROR"],
                        &rows,
                    );
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// trial30 LOW-6: `cordon approvals approve 1` of an approval superseded by a
    /// revocation exited 0 printing `not_pending`: nothing was approved. Exit 1 naming why.
    #[test]
    fn approving_nothing_pending_fails_and_says_why() {
        let r = |status: DecisionStatus, reason: Option<&str>| DecisionResult {
            id: 1,
            host_id: "h".into(),
            status,
            reason: reason.map(str::to_string),
        };
        let gone = r(
            DecisionStatus::NotPending,
            Some("already superseded by admin (token 1) at 2030-01-01T00:00:00.000Z: host revoked: nothing was done"),
        );
        let e = decided_any(Verdict::Approve, std::slice::from_ref(&gone), false).unwrap_err();
        assert_eq!(e.code, Code::Failed);
        let text = format!("{:#}", e.error);
        assert!(
            text.starts_with("nothing was approved: approval 1: already superseded by admin (token 1)"),
            "{text}"
        );
        assert!(decided_any(
            Verdict::Approve,
            &[gone.clone(), r(DecisionStatus::Approved, None)],
            false
        )
        .is_ok());
        assert!(decided_any(
            Verdict::Deny,
            &[r(DecisionStatus::Superseded, Some("host revoked"))],
            false
        )
        .is_err());
        // `--all` names no approval: nothing pending is not a failure.
        assert!(decided_any(Verdict::Approve, &[], true).is_ok());
        // trial36 LOW-B: an approval on a host whose agent enforces nothing says so.
        let ok = r(DecisionStatus::Approved, None);
        assert_eq!(
            decision_words(&ok, true),
            "approved — NOT ENFORCING (enforce = false): nothing blocked"
        );
        assert_eq!(decision_words(&ok, false), "approved");
        assert_eq!(decision_words(&gone, true), "not_pending");
    }

    fn record(active: bool, cannot_fire: &[&str]) -> RuleRecord {
        serde_json::from_value(serde_json::json!({
            "id": 1, "name": "r-web", "enabled": true, "trigger_event_types": ["malware"],
            "trigger_labels": ["web"], "action": "quarantine", "active": active,
            "disabled_reason": if active { None } else { Some("disabled by request") },
            "cannot_fire": cannot_fire, "updated_at": "2030-01-01T00:00:00.000Z", "updated_by": "admin"
        }))
        .unwrap()
    }

    /// trial24 LOW-5: `events list` said `quarantined` for a quarantine automation only
    /// requested (the agent of ws-06 never confirmed it); and the HOST cell carries the
    /// short id of the host the event resolved to.
    #[test]
    fn events_say_quarantine_requested_and_name_the_host_by_short_id() {
        let e: cordon_proto::automation::EventRecord = serde_json::from_value(serde_json::json!({
            "id": "evt-1", "received_at": "2030-01-01T00:00:00.000Z", "occurred_at": null,
            "source": "edr", "type": "malware", "tags": [], "severity": "critical",
            "host_ref": "192.0.2.6", "host_id": "820cb233-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
            "status": "quarantined", "rule": "edr", "outcomes": [], "raw": null
        }))
        .unwrap();
        let names = std::collections::HashMap::from([(
            "820cb233-1c2d-4e5f-8a9b-0c1d2e3f4a5b".to_string(),
            "ws-06".to_string(),
        )]);
        let row = event_row(&names, &e);
        assert_eq!(row[5], "ws-06 (820cb233)");
        assert_eq!(row[6], "quarantine requested");
        // Unresolved: the reference as sent.
        let mut lost = e.clone();
        lost.host_id = None;
        lost.status = cordon_proto::automation::EventStatus::UnknownHost;
        let row = event_row(&names, &lost);
        assert_eq!((row[5].as_str(), row[6].as_str()), ("192.0.2.6", "unknown host"));
    }

    /// trial16 LOW-3: `rules list` printed ACTIVE true and `rules put` "saved and active"
    /// for a rule the server says cannot fire (ambiguous trigger label).
    #[test]
    fn a_rule_that_cannot_fire_is_never_called_active() {
        let why = "trigger label \"web\" is ambiguous: near-duplicates [\"WEB\"] \u{202e}; rule does not fire";
        let stuck = record(true, &[why]);
        assert!(!fires(&stuck));
        let said = standing("rule r-web saved", &stuck);
        assert!(!said.contains("and active"), "{said}");
        assert!(
            said.contains("CANNOT FIRE") && said.contains("ambiguous") && said.contains("\\u{202e}"),
            "{said}"
        );
        assert!(fires(&record(true, &[])));
        assert_eq!(
            standing("rule r-web saved", &record(true, &[])),
            "rule r-web saved and active"
        );
        let off = standing("rule r-web disabled", &record(false, &["disabled by request"]));
        assert_eq!(off, "rule r-web disabled but NOT active: disabled by request");
    }

    /// Issue 13: one duration form. The fault kind: the same concept, a cooldown, was
    /// `30m` on a rule and bare seconds in the guardrails (`--cooldown-secs 1800`). Both
    /// now take a `Span`; the old flags still parse (a bare number is seconds).
    #[test]
    fn guardrail_durations_take_the_one_span_form_and_the_old_flags_still_parse() {
        let settings = |args: &[&str]| {
            let argv = ["cordon", "rules", "settings"].iter().chain(args).copied();
            match crate::parse_cli(argv).map(|c| c.command) {
                Ok(crate::Command::Rules(RulesArgs {
                    what: RulesWhat::Settings(f),
                    ..
                })) => Ok((f.window.map(Span::secs), f.cooldown.map(Span::secs))),
                Ok(_) => panic!("not rules settings"),
                Err(e) => Err(e.to_string()),
            }
        };
        assert_eq!(
            settings(&["--window", "10m", "--cooldown", "1h"]),
            Ok((Some(600), Some(3600)))
        );
        assert_eq!(
            settings(&["--window-secs", "600", "--cooldown-secs", "3600"]),
            Ok((Some(600), Some(3600)))
        );
        let e = settings(&["--cooldown", "2w"]).unwrap_err();
        assert!(e.contains("\"2w\" is not a duration"), "{e}");
        let rule = |args: &[&str]| {
            let argv = ["cordon", "rules", "put", "r1"].iter().chain(args).copied();
            crate::parse_cli(argv).map(|_| ()).map_err(|e| e.to_string())
        };
        assert!(rule(&["--expires-after", "4h", "--cooldown", "30m"]).is_ok());
        assert!(rule(&["--expires-after", "1h 30m"]).is_err());
    }
}
