//! Wire types of the automation API (`/v1/events`, `/v1/rules`, `/v1/approvals`,
//! `/v1/automation/settings`, `/v1/notifications/...`), shared by the server and the CLI.

use serde::{Deserialize, Serialize};

/// Event severity, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "info" | "informational" => Severity::Info,
            "low" => Severity::Low,
            "medium" | "moderate" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// How a notification target is spoken to: `slack` (incoming webhook, `{"text": ...}`)
/// or `webhook` (generic JSON). On the wire and in the database the snake_case names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Slack incoming webhook.
    Slack,
    /// Generic JSON webhook.
    Webhook,
}

impl TargetKind {
    /// The wire (and stored) name.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Slack => "slack",
            TargetKind::Webhook => "webhook",
        }
    }

    /// Parses a wire (or stored) name; `None` for anything else.
    pub fn parse(s: &str) -> Option<TargetKind> {
        match s {
            "slack" => Some(TargetKind::Slack),
            "webhook" => Some(TargetKind::Webhook),
            _ => None,
        }
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `POST /v1/events`: one security event about a host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventIn {
    /// Host id, hostname, or one of its IP addresses.
    pub host: String,
    /// Event type, matched against rules' `trigger_event_types`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// More names the event also answers to (e.g. `wazuh.rule.5712`, `wazuh.group.sshd`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// info, low, medium, high or critical.
    pub severity: String,
    /// Where it came from (`wazuh`, `velociraptor`, a SIEM name...).
    #[serde(default)]
    pub source: Option<String>,
    /// RFC 3339.
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// The original event, stored as is.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub raw: Option<serde_json::Value>,
}

/// What one rule concluded about one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleOutcome {
    pub rule: String,
    /// `quarantine`, `notify_only`, `approval_required`, `no_match`, `blocked`, `rule_error`.
    pub outcome: String,
    pub reason: String,
}

/// A stored event and what automation did with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventRecord {
    pub id: String,
    pub received_at: String,
    pub occurred_at: Option<String>,
    pub source: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub tags: Vec<String>,
    pub severity: Severity,
    /// The host reference as sent.
    pub host_ref: String,
    /// The host it resolved to; `None` for an unknown host (recorded, not dropped).
    pub host_id: Option<String>,
    /// `unknown_host`, `no_match`, `quarantined`, `notified`, `approval_required`,
    /// `suppressed`, `failed`.
    pub status: String,
    /// The rule that acted, if any.
    pub rule: Option<String>,
    pub outcomes: Vec<RuleOutcome>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub raw: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventList {
    pub events: Vec<EventRecord>,
}

/// A rule as submitted. Well-typed but semantically invalid rules are stored disabled,
/// with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleSpec {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub trigger_event_types: Vec<String>,
    #[serde(default)]
    pub only_critical: bool,
    /// The host must carry one of these labels; each must name exactly one existing label.
    pub trigger_labels: Vec<String>,
    /// Only `quarantine`.
    #[serde(default = "quarantine")]
    pub action: String,
    /// Extra allowed destinations while quarantined.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Shown to logged-in users.
    #[serde(default)]
    pub message: Option<String>,
    /// Release automatically after this long (`30m`, `4h`, `2d`).
    #[serde(default)]
    pub expires_after: Option<String>,
    /// `enforce` or `notify_only` (dry run). A string, not an enum: a rule with an
    /// unknown mode is stored disabled with the reason, like every other invalid rule.
    #[serde(default = "enforce")]
    pub mode: String,
    /// Per-host cooldown of this rule (default: the fleet setting).
    #[serde(default)]
    pub cooldown: Option<String>,
}

fn yes() -> bool {
    true
}
fn quarantine() -> String {
    "quarantine".into()
}
fn enforce() -> String {
    "enforce".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleRecord {
    pub id: i64,
    #[serde(flatten)]
    pub spec: RuleSpec,
    /// Whether the rule is in force: requested enabled and valid.
    pub active: bool,
    /// Why it is not in force (validation error, or disabled by request).
    pub disabled_reason: Option<String>,
    pub updated_at: String,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleList {
    pub rules: Vec<RuleRecord>,
}

/// Guardrails and retention, one row for the whole fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Settings {
    /// Global kill switch: `false` stops every automatic action (events are still recorded).
    pub enabled: bool,
    /// At most this many automatic quarantines per `cap_window_secs`; beyond, approval.
    pub cap_count: i64,
    pub cap_window_secs: i64,
    /// A host acted on automatically is not acted on again for this long.
    pub cooldown_secs: i64,
    /// Hosts carrying any of these are never quarantined automatically.
    pub protected_labels: Vec<String>,
    pub event_retention_days: i64,
    pub event_retention_max: i64,
    /// Base URL of the console for links in notifications (`https://cordon.example`).
    pub console_url: Option<String>,
}

/// `PUT /v1/automation/settings`: fields left out are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettingsPatch {
    pub enabled: Option<bool>,
    pub cap_count: Option<i64>,
    pub cap_window_secs: Option<i64>,
    pub cooldown_secs: Option<i64>,
    pub protected_labels: Option<Vec<String>>,
    pub event_retention_days: Option<i64>,
    pub event_retention_max: Option<i64>,
    pub console_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approval {
    pub id: i64,
    pub event_id: String,
    pub host_id: String,
    pub rule: String,
    pub reason: String,
    pub created_at: String,
    /// `pending`, `approved`, `denied`, `superseded`.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub decision_comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApprovalList {
    pub approvals: Vec<Approval>,
}

/// Approve or deny pending approvals in bulk: `ids`, or `all: true`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecisionRequest {
    #[serde(default)]
    pub ids: Vec<i64>,
    #[serde(default)]
    pub all: bool,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecisionResult {
    pub id: i64,
    pub host_id: String,
    /// `approved` (quarantined), `denied`, `superseded` (host already quarantined), `not_pending`.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecisionResponse {
    pub results: Vec<DecisionResult>,
}

/// Notification kinds a target can subscribe to. Effect, not dispatch (design §2):
/// `quarantined` and `released` are sent when the agent confirmed the change in force
/// (once per revision); `quarantine_requested` and `release_requested` when someone (or a
/// rule, or the expiry) asked for it; `not_enforcing` when an agent that runs with
/// `enforce = false` took a quarantine it does not enforce. A target with no `events`
/// gets all of these.
pub const NOTIFY_KINDS: [&str; 8] = [
    "quarantined",
    "released",
    "quarantine_requested",
    "release_requested",
    "not_enforcing",
    "failed",
    "tampered",
    "approval_required",
];

/// Notification kinds a target gets only when its `events` name them: `audit_checkpoint`
/// (each signed audit checkpoint, so a copy lives outside the server; issue 17).
pub const OPT_IN_NOTIFY_KINDS: [&str; 1] = ["audit_checkpoint"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetSpec {
    pub name: String,
    /// `slack` (incoming webhook, `{"text": ...}`) or `webhook` (generic JSON).
    pub kind: TargetKind,
    pub url: String,
    /// Subset of [`NOTIFY_KINDS`] (default: all of them), plus the opt-in kinds of
    /// [`OPT_IN_NOTIFY_KINDS`] (`audit_checkpoint`).
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Target {
    pub id: i64,
    #[serde(flatten)]
    pub spec: TargetSpec,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetList {
    pub targets: Vec<Target>,
}

/// One notification in the outbox and its delivery status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    pub id: i64,
    pub target_id: i64,
    pub audit_id: i64,
    pub kind: String,
    /// `pending`, `delivered`, `dead` (gave up).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    pub delivered_at: Option<String>,
    pub created_at: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
}

/// Answer of the intake endpoints: each event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntakeResponse {
    pub events: Vec<EventRecord>,
    /// Lines or items that could not be turned into an event, with why.
    #[serde(default)]
    pub rejected: Vec<String>,
}

#[cfg(test)]
mod target_kind_tests {
    use super::*;

    /// The fault kind: a typed field whose wire name, stored name and parser disagree
    /// (the JSON must stay `"kind": "slack"` / `"webhook"`, and a stored row must read back).
    #[test]
    fn target_kind_wire_and_stored_names_agree() {
        for k in [TargetKind::Slack, TargetKind::Webhook] {
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(k.as_str()));
            assert_eq!(TargetKind::parse(k.as_str()), Some(k));
        }
        let spec: TargetSpec =
            serde_json::from_value(serde_json::json!({"name": "soc", "kind": "webhook", "url": "https://x.example/h"}))
                .unwrap();
        assert_eq!(spec.kind, TargetKind::Webhook);
        let err =
            serde_json::from_value::<TargetSpec>(serde_json::json!({"name": "x", "kind": "irc", "url": "https://x"}))
                .unwrap_err()
                .to_string();
        assert!(err.contains("irc") && err.contains("slack"), "{err}");
        assert_eq!(TargetKind::parse("irc"), None);
    }
}
