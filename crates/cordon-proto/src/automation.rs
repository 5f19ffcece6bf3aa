//! Wire types of the automation API (`/v1/events`, `/v1/rules`, `/v1/approvals`,
//! `/v1/automation/settings`, `/v1/notifications/...`), shared by the server and the CLI.

use serde::{Deserialize, Serialize};

use crate::timefmt::Timestamp;

/// Event severity, ordered. Written as its snake_case name; read case-insensitively with
/// the aliases of [`Severity::parse`] (`informational`, `moderate`), anything else is
/// refused naming the accepted values (a 400 at `POST /v1/events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational.
    Info,
    /// Low.
    Low,
    /// Medium (also parsed from `moderate`).
    Medium,
    /// High.
    High,
    /// Critical: the only severity `only_critical` rules act on.
    Critical,
}

impl Severity {
    /// The wire name (`info` … `critical`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses a severity case-insensitively (`informational`, `moderate` accepted); `None` otherwise.
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

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Severity::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("severity {s:?} must be info, low, medium, high or critical"))
        })
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule does to a host it acts on. Only `quarantine` exists; any other value is
/// refused where the rule comes in (a 400 naming the field at `POST /v1/rules`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Quarantine the host (or, for a `notify_only` rule, say it would).
    #[default]
    Quarantine,
}

impl RuleAction {
    /// The wire name (`quarantine`).
    pub fn as_str(self) -> &'static str {
        match self {
            RuleAction::Quarantine => "quarantine",
        }
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// `info`, `low`, `medium`, `high` or `critical` (case-insensitive; `informational` and
    /// `moderate` accepted); anything else is refused.
    pub severity: Severity,
    /// Where it came from (`wazuh`, `velociraptor`, a SIEM name...).
    #[serde(default)]
    pub source: Option<String>,
    /// When it happened (RFC 3339); blank is none.
    #[serde(default, with = "crate::timefmt::opt_empty_as_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Timestamp>))]
    pub occurred_at: Option<Timestamp>,
    /// The original event, stored as is.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub raw: Option<serde_json::Value>,
}

/// What one rule concluded about one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleOutcome {
    /// The rule's name.
    pub rule: String,
    /// `quarantine`, `notify_only`, `approval_required`, `no_match`, `blocked`,
    /// `rule_error`, … ([`OutcomeKind`]).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub outcome: OutcomeKind,
    /// Why, in words (e.g. `host carries protected label dc`).
    pub reason: String,
}

/// A stored event and what automation did with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventRecord {
    /// Event id (`evt-<uuid>`).
    pub id: String,
    /// When the server received it.
    pub received_at: Timestamp,
    /// When it happened, as the source said.
    pub occurred_at: Option<Timestamp>,
    /// Where it came from (`wazuh`, `velociraptor`, …; `api` when not given).
    pub source: String,
    #[serde(rename = "type")]
    /// Event type, as sent.
    pub event_type: String,
    /// More names the event answers to, as sent.
    pub tags: Vec<String>,
    /// Severity, as parsed.
    pub severity: Severity,
    /// The host reference as sent.
    pub host_ref: String,
    /// The host it resolved to; `None` for an unknown host (recorded, not dropped).
    pub host_id: Option<String>,
    /// `unknown_host`, `ambiguous_host`, `no_match`, `suppressed`, `quarantined`,
    /// `notified`, `approval_required`, `denied`, `failed` ([`EventStatus`]).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: EventStatus,
    /// The rule that acted, if any.
    pub rule: Option<String>,
    /// What every rule concluded about it.
    pub outcomes: Vec<RuleOutcome>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    /// The original event, as sent.
    pub raw: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// `GET /v1/events` answer, newest first.
pub struct EventList {
    /// The events.
    pub events: Vec<EventRecord>,
}

/// A rule as submitted. Well-typed but semantically invalid rules are stored disabled,
/// with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleSpec {
    /// Unique rule name (audited as `rule:NAME`).
    pub name: String,
    #[serde(default = "yes")]
    /// Requested enabled (default true); an invalid rule is stored disabled anyway.
    pub enabled: bool,
    /// Event types (or tags) the rule acts on.
    pub trigger_event_types: Vec<String>,
    #[serde(default)]
    /// Act only on events of severity `critical`.
    pub only_critical: bool,
    /// The host must carry one of these labels; each must name exactly one existing label.
    pub trigger_labels: Vec<String>,
    /// Only `quarantine` (the default); anything else is refused.
    #[serde(default)]
    pub action: RuleAction,
    /// Extra allowed destinations while quarantined.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Shown to logged-in users.
    #[serde(default)]
    pub message: Option<String>,
    /// Release automatically after this long (`30m`, `4h`, `2d`).
    #[serde(default)]
    pub expires_after: Option<String>,
    /// `enforce` or `notify_only` (dry run). An open enum ([`RuleMode`]): a rule with
    /// an unknown mode is read as [`RuleMode::Other`] and stored disabled with the reason,
    /// like every other invalid rule (the JSON reader does not refuse it).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub mode: RuleMode,
    /// Per-host cooldown of this rule (default: the fleet setting).
    #[serde(default)]
    pub cooldown: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// A stored rule and whether it is in force.
pub struct RuleRecord {
    /// Rule id.
    pub id: i64,
    #[serde(flatten)]
    /// The rule as submitted.
    pub spec: RuleSpec,
    /// Whether the rule is in force: requested enabled and valid.
    pub active: bool,
    /// Why it is not in force (validation error, or disabled by request).
    pub disabled_reason: Option<String>,
    /// Why the rule cannot quarantine (or, `notify_only`, notify about) any host right
    /// now, whatever event arrives; empty when it can. Computed when the rule is read,
    /// from the fleet as it is then, by the code that evaluates events
    /// (`cordon_automation::qualify::cannot_fire`): disabled or invalid, a trigger label
    /// that is missing or ambiguous (near-duplicate labels), the kill switch, every host
    /// with a trigger label protected.
    #[serde(default)]
    pub cannot_fire: Vec<String>,
    /// Last change.
    pub updated_at: Timestamp,
    /// Who changed it last (token name).
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// `GET /v1/rules` answer.
pub struct RuleList {
    /// Every rule.
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
    /// Window of `cap_count`, in seconds.
    pub cap_window_secs: i64,
    /// A host acted on automatically is not acted on again for this long.
    pub cooldown_secs: i64,
    /// Hosts carrying any of these are never quarantined automatically.
    pub protected_labels: Vec<String>,
    /// Events older than this many days are deleted.
    pub event_retention_days: i64,
    /// At most this many events are kept (oldest deleted first).
    pub event_retention_max: i64,
    /// Base URL of the console for links in notifications (`https://cordon.example`).
    pub console_url: Option<String>,
}

/// `PUT /v1/automation/settings`: fields left out are unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettingsPatch {
    /// See [`Settings::enabled`].
    pub enabled: Option<bool>,
    /// See [`Settings::cap_count`].
    pub cap_count: Option<i64>,
    /// See [`Settings::cap_window_secs`].
    pub cap_window_secs: Option<i64>,
    /// See [`Settings::cooldown_secs`].
    pub cooldown_secs: Option<i64>,
    /// See [`Settings::protected_labels`] (replaces the whole list).
    pub protected_labels: Option<Vec<String>>,
    /// See [`Settings::event_retention_days`].
    pub event_retention_days: Option<i64>,
    /// See [`Settings::event_retention_max`].
    pub event_retention_max: Option<i64>,
    /// See [`Settings::console_url`].
    pub console_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// An automatic quarantine waiting for (or given) a human decision.
pub struct Approval {
    /// Approval id.
    pub id: i64,
    /// The event that asked for the quarantine.
    pub event_id: String,
    /// The host to quarantine.
    pub host_id: String,
    /// The rule that asked.
    pub rule: String,
    /// Why approval is needed (guardrail cap, approval-mode rule, …).
    pub reason: String,
    /// When it was asked.
    pub created_at: Timestamp,
    /// `pending`, `approved`, `denied`, `superseded`.
    pub status: ApprovalStatus,
    /// Who decided: the deciding API token's name (a display name only; the identity is
    /// `decided_by_token_id`).
    pub decided_by: Option<String>,
    /// The API token that decided (also the `actor_token_id` of the decision's audit
    /// record). `None` for approvals decided before the server recorded it (migration
    /// 0026) and for superseded ones nobody decided.
    #[serde(default)]
    pub decided_by_token_id: Option<i64>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// The reason given with the decision.
    pub decision_comment: Option<String>,
}

impl Approval {
    /// Who decided, for people: `alice (token 3)`, or the bare name when no token id
    /// was recorded; `None` while undecided. Pure.
    pub fn decided_by_label(&self) -> Option<String> {
        let name = self.decided_by.as_deref()?;
        Some(match self.decided_by_token_id {
            Some(id) => format!("{name} (token {id})"),
            None => name.to_string(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// `GET /v1/approvals` answer.
pub struct ApprovalList {
    /// The approvals.
    pub approvals: Vec<Approval>,
}

/// Approve or deny pending approvals in bulk: `ids`, or `all: true`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecisionRequest {
    #[serde(default)]
    /// Approval ids to decide.
    pub ids: Vec<i64>,
    #[serde(default)]
    /// Decide every pending approval instead.
    pub all: bool,
    /// Why (required; audited).
    pub comment: Option<String>,
    /// Optimistic concurrency, as for host actions: host id → the desired-state revision
    /// the caller's review showed (`GET /v1/approvals` does not carry it; the console's
    /// review does). If the host of any decided approval has moved on since, nothing is
    /// decided and the answer is 409. Hosts not named here are not checked.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub if_revisions: std::collections::BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// Per approval, what the decision did.
pub struct DecisionResult {
    /// Approval id.
    pub id: i64,
    /// The host concerned.
    pub host_id: String,
    /// `approved` (quarantine requested), `denied`, `superseded` (nothing done to the
    /// host: it is already desired quarantined, revoked, or now carries a protected
    /// label — `reason` says which), `not_pending` (decided before: `reason` says how,
    /// by whom and when; nothing was done).
    pub status: DecisionStatus,
    /// Why an approval was superseded, or how one no longer pending was decided, in
    /// words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// Answer of approve / deny.
pub struct DecisionResponse {
    /// One result per approval decided.
    pub results: Vec<DecisionResult>,
}

/// Notification kinds a target can subscribe to. Effect, not dispatch (design §2):
/// `quarantined` and `released` are sent when the agent confirmed the change in force
/// (once per revision); `quarantine_requested` and `release_requested` when someone (or a
/// rule, or the expiry) asked for it; `not_enforcing` when an agent that runs with
/// `enforce = false` took a quarantine it does not enforce. A target with no `events`
/// gets all of these.
pub const NOTIFY_KINDS: [NotifyKind; 8] = [
    NotifyKind::Quarantined,
    NotifyKind::Released,
    NotifyKind::QuarantineRequested,
    NotifyKind::ReleaseRequested,
    NotifyKind::NotEnforcing,
    NotifyKind::Failed,
    NotifyKind::Tampered,
    NotifyKind::ApprovalRequired,
];

/// Notification kinds a target gets only when its `events` name them: `audit_checkpoint`
/// (each signed audit checkpoint, so a copy lives outside the server; issue 17).
pub const OPT_IN_NOTIFY_KINDS: [NotifyKind; 1] = [NotifyKind::AuditCheckpoint];

open_wire_enum! {
    /// A notification kind ([`NOTIFY_KINDS`], [`OPT_IN_NOTIFY_KINDS`]): what a target
    /// subscribes to and what an outbox row announces. Open: the outbox lives in the
    /// database that replicas of different versions share, and a newer server adds
    /// kinds (`audit_checkpoint` was one); a target's `events` naming an unknown kind is
    /// refused by validation with a message, not by the JSON reader.
    pub enum NotifyKind {
        /// The agent confirmed the quarantine in force.
        Quarantined = "quarantined",
        /// The agent confirmed the release.
        Released = "released",
        /// Someone (or a rule) asked for a quarantine.
        QuarantineRequested = "quarantine_requested",
        /// Someone (or the expiry) asked for a release.
        ReleaseRequested = "release_requested",
        /// An agent with `enforce = false` took a quarantine it does not enforce.
        NotEnforcing = "not_enforcing",
        /// An agent could not apply the desired state.
        Failed = "failed",
        /// An agent found its rules altered.
        Tampered = "tampered",
        /// An automatic quarantine waits for approval.
        ApprovalRequired = "approval_required",
        /// A signed audit checkpoint (opt-in).
        AuditCheckpoint = "audit_checkpoint",
    }
}

open_wire_enum! {
    /// What automation did with an event ([`EventRecord::status`]). Open: stored in the
    /// database that replicas of different versions share, and the set has grown
    /// (`ambiguous_host`, `denied`); a CLI older than its server shows new ones by name.
    pub enum EventStatus {
        /// The host reference matches no enrolled host (recorded, not dropped).
        UnknownHost = "unknown_host",
        /// The host reference matches more than one host.
        AmbiguousHost = "ambiguous_host",
        /// No rule applies.
        NoMatch = "no_match",
        /// A rule applies but a guardrail stopped it.
        Suppressed = "suppressed",
        /// The host was (or, after approval, is being) quarantined.
        Quarantined = "quarantined",
        /// A `notify_only` rule matched: notified, nothing changed.
        Notified = "notified",
        /// Waiting for an approval.
        ApprovalRequired = "approval_required",
        /// Its approval was denied.
        Denied = "denied",
        /// Its approval was decided as superseded: when it was approved there was nothing
        /// left to do (the host already quarantined, now protected, or revoked). No
        /// approval is waiting any more (trial19 LOW-i: such events kept
        /// `approval_required`).
        Superseded = "superseded",
        /// Acting on it failed.
        Failed = "failed",
    }
}

impl EventStatus {
    /// The status in words for people (console Events page, `cordon events`): automation's
    /// `quarantined` means it *asked* for the quarantine — whether it is in force is the
    /// host's state, confirmed by its agent — so it reads "quarantine requested" (trial24
    /// LOW-5: the CLI said `quarantined` for requests no agent ever confirmed). Pure.
    pub fn outcome_text(&self) -> &str {
        match self {
            EventStatus::Quarantined => "quarantine requested",
            EventStatus::ApprovalRequired => "approval required",
            EventStatus::NoMatch => "no rule matched",
            EventStatus::UnknownHost => "unknown host",
            EventStatus::AmbiguousHost => "ambiguous host",
            EventStatus::Superseded => "approval superseded (nothing left to do)",
            other => other.as_str(),
        }
    }
}

open_wire_enum! {
    /// How a rule acts when it qualifies ([`RuleSpec::mode`]). Open: an unknown mode
    /// makes the rule invalid (stored disabled with the reason), not the request.
    pub enum RuleMode {
        /// Quarantine the host.
        Enforce = "enforce",
        /// Dry run: notify that it would, change nothing.
        NotifyOnly = "notify_only",
    }
}

impl Default for RuleMode {
    /// `enforce`.
    fn default() -> RuleMode {
        RuleMode::Enforce
    }
}

open_wire_enum! {
    /// What one rule concluded about one event ([`RuleOutcome::outcome`]). Open for the
    /// reasons of [`EventStatus`] (stored as JSON in the event's row; grew with
    /// `not_evaluated`, `ambiguous_host`).
    pub enum OutcomeKind {
        /// The rule qualifies: quarantine.
        Quarantine = "quarantine",
        /// A dry-run rule qualifies: notify only.
        NotifyOnly = "notify_only",
        /// The rule qualifies; a cap or the rule's mode asks for approval.
        ApprovalRequired = "approval_required",
        /// The rule does not apply to this event.
        NoMatch = "no_match",
        /// The rule applies, a guardrail stops it.
        Blocked = "blocked",
        /// The rule cannot be evaluated (a label does not resolve).
        RuleError = "rule_error",
        /// An earlier rule claimed the event.
        NotEvaluated = "not_evaluated",
        /// The rule is disabled.
        Disabled = "disabled",
        /// Acting on the rule's decision failed.
        Error = "error",
        /// The host reference matches no enrolled host.
        UnknownHost = "unknown_host",
        /// The host reference matches more than one host.
        AmbiguousHost = "ambiguous_host",
    }
}

wire_enum! {
    /// Where an approval stands ([`Approval::status`]). Closed: the approval lifecycle
    /// is the server's own.
    pub enum ApprovalStatus {
        /// Waiting for a decision.
        Pending = "pending",
        /// Approved: quarantine requested.
        Approved = "approved",
        /// Denied: nothing done.
        Denied = "denied",
        /// Nothing done: the host was already desired quarantined, revoked, or protected.
        Superseded = "superseded",
    }
}

wire_enum! {
    /// What deciding one approval did ([`DecisionResult::status`]). Closed, as
    /// [`ApprovalStatus`].
    pub enum DecisionStatus {
        /// Quarantine requested.
        Approved = "approved",
        /// Denied.
        Denied = "denied",
        /// Nothing done to the host (`reason` says why).
        Superseded = "superseded",
        /// It had been decided already.
        NotPending = "not_pending",
    }
}

wire_enum! {
    /// Where a notification stands ([`Delivery::status`]). Closed: the outbox lifecycle.
    pub enum DeliveryStatus {
        /// Not delivered yet; retried at `next_attempt_at`.
        Pending = "pending",
        /// Delivered.
        Delivered = "delivered",
        /// Gave up.
        Dead = "dead",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// A notification target as submitted.
pub struct TargetSpec {
    /// Unique name.
    pub name: String,
    /// `slack` (incoming webhook, `{"text": ...}`) or `webhook` (generic JSON).
    pub kind: TargetKind,
    /// Where to POST (`https://…`; the Slack incoming-webhook URL for `slack`).
    pub url: String,
    /// Subset of [`NOTIFY_KINDS`] (default: all of them), plus the opt-in kinds of
    /// [`OPT_IN_NOTIFY_KINDS`] (`audit_checkpoint`). Read as [`NotifyKind`]s, unknown
    /// names included: the server refuses those with its own message naming the kinds.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub events: Vec<NotifyKind>,
    #[serde(default = "yes")]
    /// Deliver to it (default true).
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// A stored notification target.
pub struct Target {
    /// Target id.
    pub id: i64,
    #[serde(flatten)]
    /// The target as submitted.
    pub spec: TargetSpec,
    /// When it was created.
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// `GET /v1/notifications/targets` answer.
pub struct TargetList {
    /// Every target.
    pub targets: Vec<Target>,
}

/// One notification in the outbox and its delivery status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// Outbox id.
    pub id: i64,
    /// The target it goes to.
    pub target_id: i64,
    /// The audit record it announces.
    pub audit_id: i64,
    /// Notification kind (one of [`NOTIFY_KINDS`] or [`OPT_IN_NOTIFY_KINDS`]).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: NotifyKind,
    /// `pending`, `delivered`, `dead` (gave up).
    pub status: DeliveryStatus,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<Timestamp>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub delivered_at: Option<Timestamp>,
    /// When it was queued.
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    /// The body sent (or to be sent).
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// `GET /v1/notifications/deliveries` answer.
pub struct DeliveryList {
    /// The deliveries, newest first.
    pub deliveries: Vec<Delivery>,
}

/// Answer of the intake endpoints: each event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IntakeResponse {
    /// Every event taken in, as stored.
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

#[cfg(test)]
mod outcome_text_tests {
    use super::EventStatus;

    /// trial24 LOW-5: `cordon events list/send` printed `quarantined` for a quarantine
    /// automation only requested; the console said "quarantine requested". One wording.
    #[test]
    fn a_quarantined_event_reads_as_requested() {
        assert_eq!(EventStatus::Quarantined.outcome_text(), "quarantine requested");
        assert_eq!(EventStatus::Denied.outcome_text(), "denied");
    }
}
