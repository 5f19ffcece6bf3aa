//! API client commands for automation: `cordon rules …`, `cordon events …`,
//! `cordon approvals …`, `cordon notify …` (server side in the `cordon-automation`
//! crate). Tables for people, `--json` for scripts.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use cordon_client::reqwest::Method;
use cordon_client::ApiClient;

use crate::exit::{Code, Failure};
use crate::remote::{client_failure, connect, table, Conn};

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
    /// Release after this long (30m, 4h, 2d).
    #[arg(long)]
    pub expires_after: Option<String>,
    /// enforce or notify_only (dry run).
    #[arg(long, default_value = "enforce")]
    pub mode: String,
    /// Per-host cooldown of this rule (default: the fleet setting).
    #[arg(long)]
    pub cooldown: Option<String>,
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
    /// Cap window in seconds.
    #[arg(long)]
    pub window_secs: Option<i64>,
    /// Per-host cooldown in seconds.
    #[arg(long)]
    pub cooldown_secs: Option<i64>,
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
        #[arg(long, default_value = "high")]
        severity: String,
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

/// One call whose answer is any JSON (`null` for an empty one); a refusal fails with its
/// exit code.
async fn call(
    api: &ApiClient,
    method: Method,
    segments: &[&str],
    query: &[(&str, Option<&str>)],
    body: Option<Value>,
) -> Result<Value, Failure> {
    api.value(method, segments, query, body.as_ref())
        .await
        .map_err(|e| client_failure(e, AUTOMATION_USAGE))
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

/// A value from the server as terminal-safe text ([`crate::term::safe`]).
fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(t) => crate::term::s(t),
        Value::Array(a) => a.iter().map(s).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn show(v: &Value, json: bool, header: &[&str], list_key: &str, cols: &[&str]) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return;
    }
    let items = v[list_key].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = items.iter().map(|i| cols.iter().map(|c| s(&i[*c])).collect()).collect();
    table(header, &rows);
}

fn pretty(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Sets each rule's `why_not` (table column only) to why it cannot fire now: the server's
/// `cannot_fire` reasons (they include a disabled rule's reason), else the
/// `disabled_reason` of a server that does not send them; `-` when it can fire.
fn why_not(v: &mut Value) {
    let Some(rules) = v["rules"].as_array_mut() else { return };
    for r in rules {
        let reasons: Vec<String> = r["cannot_fire"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let text = if !reasons.is_empty() {
            reasons.join("; ")
        } else {
            r["disabled_reason"].as_str().unwrap_or("-").to_string()
        };
        r["why_not"] = json!(text);
    }
}

pub fn rules(a: RulesArgs) -> u8 {
    let json = a.json;
    block_on(&a.conn, |api: ApiClient| async move {
        match a.what {
            RulesWhat::List => {
                let mut v = call(&api, Method::GET, &["v1", "rules"], &[], None).await?;
                if !json {
                    why_not(&mut v);
                }
                show(
                    &v,
                    json,
                    &["NAME", "ACTIVE", "MODE", "TYPES", "LABELS", "WHY NOT"],
                    "rules",
                    &[
                        "name",
                        "active",
                        "mode",
                        "trigger_event_types",
                        "trigger_labels",
                        "why_not",
                    ],
                );
            }
            RulesWhat::Show { name } => pretty(&call(&api, Method::GET, &["v1", "rules", &name], &[], None).await?),
            RulesWhat::Put(f) => {
                let body = match &f.file {
                    Some(p) => {
                        let text =
                            std::fs::read_to_string(p).map_err(|e| Failure::usage(format!("{}: {e}", p.display())))?;
                        let mut v: Value =
                            serde_json::from_str(&text).map_err(|e| Failure::usage(format!("{}: {e}", p.display())))?;
                        v["name"] = json!(f.name);
                        v
                    }
                    None => {
                        json!({"name": f.name, "enabled": !f.disabled, "trigger_event_types": f.types, "only_critical": f.only_critical,
                        "trigger_labels": f.labels, "action": "quarantine", "allow": f.allow, "message": f.message,
                        "expires_after": f.expires_after, "mode": f.mode, "cooldown": f.cooldown})
                    }
                };
                let v = call(&api, Method::PUT, &["v1", "rules", &f.name], &[], Some(body)).await?;
                if json {
                    pretty(&v);
                } else if v["active"] == true {
                    println!("rule {} saved and active", f.name);
                } else {
                    println!("rule {} saved but NOT active: {}", f.name, s(&v["disabled_reason"]));
                }
            }
            RulesWhat::Delete { name } => {
                call(&api, Method::DELETE, &["v1", "rules", &name], &[], None).await?;
                println!("rule {name} deleted");
            }
            RulesWhat::Enable { name } => toggle(&api, &name, true, json).await?,
            RulesWhat::Disable { name } => toggle(&api, &name, false, json).await?,
            RulesWhat::Settings(f) => {
                let mut patch = serde_json::Map::new();
                if let Some(k) = f.kill_switch {
                    patch.insert("enabled".into(), json!(k == "off"));
                }
                for (key, val) in [
                    ("cap_count", f.cap),
                    ("cap_window_secs", f.window_secs),
                    ("cooldown_secs", f.cooldown_secs),
                    ("event_retention_days", f.retention_days),
                    ("event_retention_max", f.retention_max),
                ] {
                    if let Some(v) = val {
                        patch.insert(key.into(), json!(v));
                    }
                }
                if !f.protect.is_empty() {
                    patch.insert("protected_labels".into(), json!(f.protect));
                }
                if let Some(u) = f.console_url {
                    patch.insert("console_url".into(), json!(u));
                }
                let v = if patch.is_empty() {
                    call(&api, Method::GET, &["v1", "automation", "settings"], &[], None).await?
                } else {
                    call(
                        &api,
                        Method::PUT,
                        &["v1", "automation", "settings"],
                        &[],
                        Some(Value::Object(patch)),
                    )
                    .await?
                };
                pretty(&v);
            }
        }
        Ok(())
    })
}

async fn toggle(api: &ApiClient, name: &str, enabled: bool, json: bool) -> Result<(), Failure> {
    let mut spec = call(api, Method::GET, &["v1", "rules", name], &[], None).await?;
    spec["enabled"] = json!(enabled);
    let v = call(api, Method::PUT, &["v1", "rules", name], &[], Some(spec)).await?;
    if json {
        pretty(&v);
    } else if v["active"] == true {
        println!("rule {name} active");
    } else {
        println!("rule {name} not active: {}", s(&v["disabled_reason"]));
    }
    Ok(())
}

pub fn events(a: EventsArgs) -> u8 {
    let json = a.json;
    block_on(&a.conn, |api: ApiClient| async move {
        match a.what {
            EventsWhat::List { status, host, limit } => {
                let limit = limit.to_string();
                let q = [
                    ("limit", Some(limit.as_str())),
                    ("status", status.as_deref()),
                    ("host", host.as_deref()),
                ];
                let v = call(&api, Method::GET, &["v1", "events"], &q, None).await?;
                show(
                    &v,
                    json,
                    &["ID", "RECEIVED", "SOURCE", "TYPE", "SEVERITY", "HOST", "STATUS", "RULE"],
                    "events",
                    &[
                        "id",
                        "received_at",
                        "source",
                        "type",
                        "severity",
                        "host_ref",
                        "status",
                        "rule",
                    ],
                );
            }
            EventsWhat::Show { id } => pretty(&call(&api, Method::GET, &["v1", "events", &id], &[], None).await?),
            EventsWhat::Send {
                host,
                event_type,
                severity,
                source,
                tags,
                raw,
            } => {
                let raw: Option<Value> = raw
                    .map(|r| serde_json::from_str(&r))
                    .transpose()
                    .map_err(|e| Failure::usage(format!("--raw: {e}")))?;
                let body = json!({"host": host, "type": event_type, "severity": severity, "source": source, "tags": tags, "raw": raw});
                let v = call(&api, Method::POST, &["v1", "events"], &[], Some(body)).await?;
                if json {
                    pretty(&v);
                } else {
                    for e in v["events"].as_array().cloned().unwrap_or_default() {
                        println!("{} {} (rule {})", s(&e["id"]), s(&e["status"]), s(&e["rule"]));
                        for o in e["outcomes"].as_array().cloned().unwrap_or_default() {
                            println!("  {}: {} - {}", s(&o["rule"]), s(&o["outcome"]), s(&o["reason"]));
                        }
                    }
                }
            }
        }
        Ok(())
    })
}

pub fn approvals(a: ApprovalsArgs) -> u8 {
    let json = a.json;
    block_on(&a.conn, |api: ApiClient| async move {
        let (path, d) = match a.what {
            ApprovalsWhat::List { status } => {
                let v = call(
                    &api,
                    Method::GET,
                    &["v1", "approvals"],
                    &[("status", Some(&status))],
                    None,
                )
                .await?;
                show(
                    &v,
                    json,
                    &["ID", "CREATED", "HOST", "RULE", "EVENT", "STATUS", "REASON"],
                    "approvals",
                    &["id", "created_at", "host_id", "rule", "event_id", "status", "reason"],
                );
                return Ok(());
            }
            ApprovalsWhat::Approve(d) => (&["v1", "approvals", "approve"][..], d),
            ApprovalsWhat::Deny(d) => (&["v1", "approvals", "deny"][..], d),
        };
        if !d.all && d.ids.is_empty() {
            return Err(Failure::usage("give approval ids or --all"));
        }
        let body = json!({"ids": d.ids, "all": d.all, "comment": d.comment});
        let v = call(&api, Method::POST, path, &[], Some(body)).await?;
        show(
            &v,
            json,
            &["ID", "HOST", "RESULT"],
            "results",
            &["id", "host_id", "status"],
        );
        Ok(())
    })
}

pub fn notify(a: NotifyArgs) -> u8 {
    let json = a.json;
    block_on(&a.conn, |api: ApiClient| async move {
        match a.what {
            NotifyWhat::Targets => {
                let v = call(&api, Method::GET, &["v1", "notifications", "targets"], &[], None).await?;
                show(
                    &v,
                    json,
                    &["ID", "NAME", "KIND", "EVENTS", "ENABLED"],
                    "targets",
                    &["id", "name", "kind", "events", "enabled"],
                );
            }
            NotifyWhat::Add {
                name,
                kind,
                url,
                events,
            } => {
                let v = call(
                    &api,
                    Method::POST,
                    &["v1", "notifications", "targets"],
                    &[],
                    Some(json!({"name": name, "kind": kind, "url": url, "events": events})),
                )
                .await?;
                if json {
                    pretty(&v);
                } else {
                    println!("target {} added (id {})", name, s(&v["id"]));
                    // Links in notifications are only absolute once the console's URL is known.
                    let settings = call(&api, Method::GET, &["v1", "automation", "settings"], &[], None).await;
                    if settings.is_ok_and(|v| v["console_url"].as_str().is_none_or(str::is_empty)) {
                        println!(
                            "note: host links in notifications are relative (/console/hosts/ID) until the console's \
                             address is set: cordon rules settings --console-url https://SERVER:8443"
                        );
                    }
                }
            }
            NotifyWhat::Remove { id } => {
                call(
                    &api,
                    Method::DELETE,
                    &["v1", "notifications", "targets", &id.to_string()],
                    &[],
                    None,
                )
                .await?;
                println!("target {id} removed");
            }
            NotifyWhat::Deliveries { status } => {
                let q = [("status", status.as_deref())];
                let v = call(&api, Method::GET, &["v1", "notifications", "deliveries"], &q, None).await?;
                show(
                    &v,
                    json,
                    &["ID", "TARGET", "KIND", "STATUS", "ATTEMPTS", "NEXT", "LAST ERROR"],
                    "deliveries",
                    &[
                        "id",
                        "target_id",
                        "kind",
                        "status",
                        "attempts",
                        "next_attempt_at",
                        "last_error",
                    ],
                );
            }
        }
        Ok(())
    })
}
