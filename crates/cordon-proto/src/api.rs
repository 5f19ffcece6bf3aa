//! REST API bodies (`/v1/...`).

use serde::{Deserialize, Serialize};

use crate::timefmt::Timestamp;
use crate::{ClaimInfo, DesiredState};

/// Every error response: `{error, detail}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable machine-readable code (`unauthorized`, `forbidden`, `not_found`, `invalid_input`, ...).
    pub error: String,
    /// Human-readable explanation naming the cause (shown to the user as is).
    pub detail: String,
}

/// The server's view of a host — effect, not dispatch (design §2): `quarantined` only
/// once the agent confirmed the rules of the desired revision in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    /// Not desired quarantined, and the agent confirmed no Cordon quarantine of the
    /// server's in force (other sources' claims may still isolate it: see `claims`).
    Normal,
    /// Quarantine requested, not yet confirmed in force by the agent.
    QuarantinePending,
    /// The agent confirmed the quarantine of the desired revision in force (some
    /// exceptions may be missing: see `degraded`).
    Quarantined,
    /// Release requested, not yet confirmed by the agent.
    ReleasePending,
    /// The agent could not apply the desired state (`state_reason` says why).
    Failed,
    /// The agent found the rules deleted or altered and is repairing them.
    Tampered,
    /// Desired quarantined, but the agent runs with `enforce = false` (backend
    /// `memory`): nothing is in force on the host. Never shown as quarantined.
    NotEnforcing,
}

impl HostState {
    /// The wire name (`normal`, `quarantine_pending`, `quarantined`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Normal => "normal",
            HostState::QuarantinePending => "quarantine_pending",
            HostState::Quarantined => "quarantined",
            HostState::ReleasePending => "release_pending",
            HostState::Failed => "failed",
            HostState::Tampered => "tampered",
            HostState::NotEnforcing => "not_enforcing",
        }
    }

    /// Every state, in the order lists and filters name them.
    pub const ALL: [HostState; 7] = [
        HostState::Normal,
        HostState::QuarantinePending,
        HostState::Quarantined,
        HostState::ReleasePending,
        HostState::Failed,
        HostState::Tampered,
        HostState::NotEnforcing,
    ];

    /// Parses a wire name; `None` for anything else.
    pub fn parse(s: &str) -> Option<HostState> {
        Some(match s {
            "normal" => HostState::Normal,
            "quarantine_pending" => HostState::QuarantinePending,
            "quarantined" => HostState::Quarantined,
            "release_pending" => HostState::ReleasePending,
            "failed" => HostState::Failed,
            "tampered" => HostState::Tampered,
            "not_enforcing" => HostState::NotEnforcing,
            _ => return None,
        })
    }
}

/// The state filter's word for hosts whose agent never sent a status report
/// ([`Host::never_reported`]): not a [`HostState`] (the server's state of such a host is
/// the enrollment default `normal`), but what lists show and filter them as.
pub const NEVER_REPORTED: &str = "never_reported";

/// A host list's `state` filter (`GET /v1/hosts?state=`, `cordon hosts list --state`,
/// the console's State filter), following the state lists show (trial30 LOW-1): a
/// [`HostState`] wire name, where `normal` means an agent confirmed it (`Some(true)`:
/// reported), or [`NEVER_REPORTED`] (`normal`, `Some(false)`). Pure.
///
/// # Errors
/// For anything else, a sentence naming the value and listing the valid ones.
pub fn parse_state_filter(s: &str) -> Result<(HostState, Option<bool>), String> {
    if s == NEVER_REPORTED {
        return Ok((HostState::Normal, Some(false)));
    }
    match HostState::parse(s) {
        Some(HostState::Normal) => Ok((HostState::Normal, Some(true))),
        Some(st) => Ok((st, None)),
        None => {
            let ok: Vec<&str> = HostState::ALL.iter().map(|s| s.as_str()).collect();
            Err(format!(
                "unknown state {s:?}: use one of {}, {NEVER_REPORTED}",
                ok.join(", ")
            ))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// One enrolled host as the server sees it (`GET /v1/hosts/{id}`, list rows).
pub struct Host {
    /// Server-assigned host id (the common name of its client certificate).
    pub id: String,
    /// Name the agent reported (not unique: see `flags`).
    pub hostname: String,
    /// Operating system and version the agent reported (free text).
    pub os: Option<String>,
    /// IP addresses the agent last reported (at most [`crate::MAX_ADDRESSES`], canonical
    /// text on the wire).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub addresses: Vec<std::net::IpAddr>,
    /// Labels on the host (sorted); `Quarantine` ([`crate::QUARANTINE_LABEL`]) exactly while desired quarantined.
    pub labels: Vec<String>,
    /// Version of the agent binary, as last reported.
    pub agent_version: Option<String>,
    /// Last request from the agent.
    pub last_seen: Option<Timestamp>,
    /// When the host enrolled.
    pub enrolled_at: Timestamp,
    /// What the server wants in force (the latest revision).
    pub desired: DesiredState,
    /// What is in force as far as the agent confirmed (effect, not dispatch). For a
    /// revoked host its last report only ([`Host::revoked_note`]).
    pub state: HostState,
    /// Why the state is `failed` or `tampered`.
    pub state_reason: Option<String>,
    /// Since when the current state holds (for "pending for 3 h").
    pub state_since: Timestamp,
    /// Last desired revision the agent reported on (0 before any report).
    pub applied_revision: i64,
    /// SHA-256 (hex) of the ruleset the agent last reported in force.
    pub digest: Option<String>,
    /// Firewall backend the agent last reported (`netlink`, `nftables`, `memory`, …).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub backend: Option<crate::Backend>,
    /// The host's certificate is revoked: its agent can no longer reach the server.
    pub revoked: bool,
    /// What of the desired quarantine is not in force although the host is quarantined:
    /// one line per exception that did not resolve or could not be applied (from the
    /// agent's report, e.g. `exception https://edr.example.net unresolved: …`). Empty when
    /// everything asked for is in force, and when the host is not quarantined.
    #[serde(default)]
    pub degraded: Vec<String>,
    /// False when the agent's last report said it runs with `enforce = false` (nothing
    /// it reports is in force on the host). True before any report.
    #[serde(default = "crate::agent::default_true")]
    pub enforcing: bool,
    /// The agent's heartbeat interval in milliseconds, as it last reported it (`None`
    /// for an agent that never said: [`crate::DEFAULT_HEARTBEAT_MS`] is assumed).
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
    /// Derived by the server when it answers: no report or request from the agent for
    /// [`crate::OFFLINE_AFTER_HEARTBEATS`] heartbeat intervals, or never seen.
    #[serde(default)]
    pub offline: bool,
    /// Every claim standing on the host's quarantine, as the agent last reported them
    /// (`agent` is the server's own; `wazuh`, `velociraptor`, `local` are other
    /// managers', which the server's release leaves in force).
    #[serde(default)]
    pub claims: Vec<ClaimInfo>,
    /// What makes this host hard to address by name or address (issue 17): its hostname
    /// or one of its addresses is shared with other enrolled hosts. Automation refuses to
    /// act on such a name or address; the host id always works. Computed when read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<HostFlag>,
}

/// Characters of a host id shown next to its name wherever hosts are listed for people
/// (the console, Slack and webhook texts, `cordon hosts`/`approvals`/`events`): enough to
/// tell two hosts of one name apart, and a prefix the server's host search and every
/// command that takes a host accept.
pub const SHORT_ID_CHARS: usize = 8;

/// The first [`SHORT_ID_CHARS`] characters of a host id (the whole id if shorter): the one
/// definition of the short id the console, notifications, the server's name readings and
/// the CLI use. Pure.
pub fn short_id(id: &str) -> &str {
    id.char_indices().nth(SHORT_ID_CHARS).map_or(id, |(i, _)| &id[..i])
}

impl Host {
    /// For a revoked host, what the server can still say about its state: revocation
    /// cut its agent off, so `state` is only its last report, never what is in force now:
    /// `last reported 2026-11-30T18:00:00.000Z, revoked: no longer reporting` (`last
    /// reported never, …` for an agent that never reported). `None` for a host that is
    /// not revoked. The one wording of the CLI (`quarantined (last reported …)`) and the
    /// console.
    pub fn revoked_note(&self) -> Option<String> {
        self.revoked_note_with(&|t| t.to_string())
    }

    /// [`Host::revoked_note`] with the time written by `time` (the console writes times
    /// as `2026-11-30 18:00:00Z`, never raw RFC 3339 among them: trial30 LOW-5). A host
    /// whose agent never reported ([`Host::never_reported`]) has no last report to name:
    /// `revoked before its agent ever reported` (its `last_seen` is only the enrollment's;
    /// "never reported … last reported T" contradicted itself).
    pub fn revoked_note_with(&self, time: &dyn Fn(&Timestamp) -> String) -> Option<String> {
        if !self.revoked {
            return None;
        }
        if self.never_reported() {
            return Some("revoked before its agent ever reported".into());
        }
        Some(format!(
            "last reported {}, revoked: no longer reporting",
            self.last_seen.as_ref().map_or_else(|| "never".to_string(), time)
        ))
    }

    /// Whether the host's agent has sent no status report since it enrolled: no backend,
    /// no applied revision, no digest. Such a host is "never reported", never `normal`
    /// (nothing says what is in force on it) — the one definition the server's filters,
    /// the console and the CLI use. Pure.
    pub fn never_reported(&self) -> bool {
        self.backend.is_none() && self.applied_revision == 0 && self.digest.is_none()
    }

    /// Why a retry of this host would do nothing, in words fit for the caller (`None`: there is
    /// something to retry). Pure; the one rule the REST route, the CLI and the console's
    /// Retry button share.
    ///
    /// Something to retry: the agent reported `failed` or `tampered`, the quarantine is in
    /// force without some of its exceptions (`degraded`), or a quarantine or release is
    /// still waiting for the agent. Nothing to retry: a confirmed `quarantined` or `normal`
    /// (the agent did what was asked), `not_enforcing` (the agent runs with `enforce =
    /// false`: re-sending changes nothing until its configuration does), a revoked host.
    pub fn retry_refusal(&self) -> Option<String> {
        let h = self;
        if h.revoked {
            return Some(format!("host {} is revoked: nothing to retry", h.hostname));
        }
        match h.state {
            HostState::Failed | HostState::Tampered | HostState::QuarantinePending | HostState::ReleasePending => None,
            HostState::Quarantined if !h.degraded.is_empty() => None,
            HostState::Quarantined => Some(format!(
                "{} is quarantined and the agent confirmed revision {} in force: nothing to retry",
                h.hostname, h.applied_revision
            )),
            HostState::Normal => Some(format!(
                "{} is not quarantined and the agent confirmed it: nothing to retry",
                h.hostname
            )),
            HostState::NotEnforcing => Some(format!(
                "{}'s agent runs with enforce = false: re-sending the quarantine changes nothing until its \
                 configuration does (nothing to retry)",
                h.hostname
            )),
        }
    }
}

/// Something another host shares with this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostFlag {
    /// `duplicate_hostname` (compared normalised: NFKC, invisible characters dropped,
    /// case-folded with `ß` as `ss`, trailing dots dropped) or `duplicate_address`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: HostFlagKind,
    /// The hostname or address shared.
    pub value: String,
    /// Ids of the other (not revoked) hosts that have it.
    pub other_hosts: Vec<String>,
}

open_wire_enum! {
    /// What another host shares with this one ([`HostFlag::kind`]). Open: a newer server
    /// can flag more kinds of look-alike, and an older CLI or console shows them by name.
    pub enum HostFlagKind {
        /// The hostname, compared normalised.
        DuplicateHostname = "duplicate_hostname",
        /// One of the addresses.
        DuplicateAddress = "duplicate_address",
        /// The hostname breaks the hostname rule ([`crate::hostname::check`]): an
        /// address, a host id or short id, spaces or punctuation (`web1 (820cb233)`).
        /// Only hosts enrolled before the rule have one; they keep working by id.
        /// `other_hosts`: the hosts whose address or id the name reads as.
        InvalidHostname = "invalid_hostname",
        /// Another host's hostname is this host's address, id or short id (that host
        /// carries `invalid_hostname`). `value` is that hostname.
        NamedAfter = "named_after",
    }
}

/// How many other hosts a flag's text names before "and N more" (trial36 LOW-D: 40 hosts
/// behind one address made every row's badge list the 39 others).
pub const FLAG_HOSTS_SHOWN: usize = 5;

/// `names` joined with ", ", the first [`FLAG_HOSTS_SHOWN`] only, then `and N more`
/// (pure): `a, b, c, d, e and 34 more`.
pub fn capped_list<S: AsRef<str>>(names: &[S]) -> String {
    let shown: Vec<&str> = names.iter().take(FLAG_HOSTS_SHOWN).map(AsRef::as_ref).collect();
    match names.len().saturating_sub(FLAG_HOSTS_SHOWN) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

impl HostFlag {
    /// One line for people: `duplicate hostname "web1" (also host 1c2d…)`,
    /// `duplicate address "192.0.2.5" (also claimed by host 1c2d…)`; at most
    /// [`FLAG_HOSTS_SHOWN`] other hosts, then `and N more`.
    pub fn text(&self) -> String {
        let others = capped_list(&self.other_hosts);
        match &self.kind {
            HostFlagKind::DuplicateHostname => format!("duplicate hostname {:?} (also host {others})", self.value),
            HostFlagKind::DuplicateAddress => {
                format!("duplicate address {:?} (also claimed by host {others})", self.value)
            }
            HostFlagKind::InvalidHostname => {
                let why = crate::hostname::check(&self.value).err().map_or_else(
                    || "it reads as an address or a host id through look-alike letters".to_string(),
                    |p| p.to_string(),
                );
                let reads = if others.is_empty() {
                    String::new()
                } else {
                    format!(" (reads as host {others})")
                };
                format!(
                    "invalid hostname {:?}{reads}: {why}; address this host by its id",
                    self.value
                )
            }
            HostFlagKind::NamedAfter => format!(
                "host {others} is named {:?}, this host's address or id: that name never addresses this host",
                self.value
            ),
            HostFlagKind::Other(other) => format!("{other} {:?} (also host {others})", self.value),
        }
    }

    /// A table cell naming the other host(s) by short id ([`short_id`], as the hosts
    /// table's ID column shows them): `duplicate hostname (also 1c2d3e4f)`, or
    /// `duplicate address 192.0.2.10 (also claimed by 1c2d3e4f)` (which address, since a
    /// host has several).
    pub fn short(&self) -> String {
        let others = capped_list(&self.other_hosts.iter().map(|id| short_id(id)).collect::<Vec<_>>());
        match &self.kind {
            HostFlagKind::DuplicateHostname => format!("duplicate hostname (also {others})"),
            HostFlagKind::DuplicateAddress => format!("duplicate address {} (also claimed by {others})", self.value),
            HostFlagKind::InvalidHostname if others.is_empty() => "invalid hostname (use the id)".to_string(),
            HostFlagKind::InvalidHostname => format!("invalid hostname: reads as {others} (use the id)"),
            HostFlagKind::NamedAfter => format!("named after: host {others} is named {:?}", self.value),
            HostFlagKind::Other(other) => format!("{other} {} (also {others})", self.value),
        }
    }
}

/// An agent the server's database does not know (issue 14, trial32 HIGH-2): it presented
/// a client certificate signed by this deployment's CA naming host id `host_id`, and no
/// host has that id — the database was restored from a backup older than the host's
/// enrollment, or the host's row was deleted. It is refused (403) and keeps any quarantine
/// in force on its host (fail closed) until released on the host or, after the host is
/// enrolled again, through the server (docs/server.md, "Restoring the database").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnknownAgent {
    /// The host id its certificate names (the enrollment's, as `agent.toml` holds it).
    pub host_id: String,
    /// Its first refused request (RFC 3339 on the wire).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub first_seen: Timestamp,
    /// Its last refused request.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub last_seen: Timestamp,
    /// How many of its requests were refused.
    pub attempts: i64,
    /// The peer address (`IP:port`) of its last refused request, as the server saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// `GET /v1/unknown-agents` answer, most recently seen first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnknownAgentList {
    /// Every agent refused as unknown, most recently seen first.
    pub agents: Vec<UnknownAgent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// `GET /v1/hosts` answer: one page of hosts.
pub struct HostList {
    /// The hosts of this page, in the requested order.
    pub hosts: Vec<Host>,
    /// More hosts follow: pass this as `cursor` to get the next page. Absent on the
    /// last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// What the server's last verification of the audit chain found wrong (issue 17).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainAlert {
    /// The first bad record, when one can be named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<i64>,
    /// Why (the verifier's reason).
    pub reason: String,
    /// When that verification ran.
    pub checked_at: Timestamp,
}

impl ChainAlert {
    /// The banner `cordon audit` prints above a listing:
    /// `AUDIT CHAIN TAMPERED since record N — run cordon audit verify`.
    pub fn banner(&self) -> String {
        match self.record {
            Some(id) => format!("AUDIT CHAIN TAMPERED since record {id} — run cordon audit verify"),
            None => "AUDIT CHAIN TAMPERED — run cordon audit verify".to_string(),
        }
    }
}

/// Body of quarantine / release. Targets: `hosts` (ids or hostnames), or `label`, or a
/// single host from the URL path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionRequest {
    #[serde(default)]
    /// Target hosts by id, the start of an id of 8 characters or more, or hostname (an
    /// ambiguous hostname or id start is refused: use the id).
    pub hosts: Vec<String>,
    #[serde(default)]
    /// Target every host carrying this label (instead of `hosts`). Without
    /// `if_revisions` the action acts on the hosts that carry the label when the server
    /// handles the request (one transaction); with `if_revisions` (the reviewed set: a
    /// preview's `if_revisions`) it acts on exactly those hosts, or on none (409 naming
    /// the hosts that gained or lost the label, or changed, since).
    pub label: Option<String>,
    /// Required: why.
    #[serde(default)]
    pub comment: Option<String>,
    /// Extra allowed destinations (quarantine only).
    #[serde(default)]
    pub allow: Vec<String>,
    /// At most [`crate::MAX_MESSAGE_CHARS`] characters (quarantine only).
    #[serde(default)]
    pub message: Option<String>,
    /// RFC 3339 time at which the server releases (quarantine only); blank is none.
    #[serde(default, with = "crate::timefmt::opt_empty_as_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Timestamp>))]
    pub expires_at: Option<Timestamp>,
    /// Optimistic concurrency: host id → the desired-state revision the caller last saw.
    /// If any of these hosts has moved on since, nothing changes and the answer is 409
    /// (the console sends what its page showed, so an action on a stale view is refused).
    /// With `label`, the keys are also the reviewed set: the label's hosts must be exactly
    /// these (409 naming `+added` / `-removed` hosts otherwise) — an empty map included:
    /// a review that found no host acts on none (absent and `{}` are different requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_revisions: Option<std::collections::BTreeMap<String, i64>>,
    /// Quarantine only: for a host already desired quarantined, replace its exceptions,
    /// message and expiry with this request's. Without it such a host keeps them
    /// (`already_quarantined` in the answer, naming what the request asked differently).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
    /// Work out and answer what the action would change per host, and change nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preview: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// Per host, the outcome of a quarantine or release.
pub struct ActionResult {
    /// The host's id.
    pub host_id: String,
    /// The host's name (for display).
    pub hostname: String,
    /// The host's state after the action (usually pending until its agent confirms).
    pub state: HostState,
    /// The host's desired-state revision after the action.
    pub revision: i64,
    /// What this action did to this host.
    pub change: ActionChange,
    /// The quarantine parameters (`allow`, `message`, `expires_at`) concerned: for
    /// `replaced` the ones that changed; for `already_quarantined` the ones the request
    /// asked differently and that were kept as they were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Other managers' claims (`wazuh`, `velociraptor`, `local`) standing on the host as
    /// its agent last reported them: after a release they keep the host isolated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub other_claims: Vec<crate::ClaimSource>,
    /// The host's agent last reported that it runs with `enforce = false` (or enforces
    /// nothing, e.g. backend `memory`): nothing this action asks is enforced there, and
    /// the agent never confirms a quarantine.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_enforcing: bool,
    /// The protected labels the host carries (the automation settings'
    /// `protected_labels` and [`crate::review::PROTECTED_LABEL`], look-alikes included):
    /// automation never acts on such a host; a person may, and is told.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protected: Vec<String>,
}

/// Per host, what a quarantine or release did (or, with `preview`, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActionChange {
    /// Quarantine requested for a host that was not desired quarantined.
    New,
    /// Already desired quarantined; `replace` was given and the exceptions, message or
    /// expiry changed (new revision).
    Replaced,
    /// Already desired quarantined with exactly the parameters asked for: nothing changed.
    Unchanged,
    /// Already desired quarantined; the request asked for other parameters but did not
    /// say `replace`, so the host keeps its own (nothing changed; `fields` names them).
    AlreadyQuarantined,
    /// Release requested for a host that was desired quarantined.
    Released,
    /// Not desired quarantined: nothing changed.
    AlreadyReleased,
    /// `retry`: the host's desired state (quarantine or release, with its exceptions,
    /// message and expiry as they were) re-sent to the agent as a new revision.
    Retried,
}

impl ActionChange {
    /// The wire name (`new`, `replaced`, `unchanged`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ActionChange::New => "new",
            ActionChange::Replaced => "replaced",
            ActionChange::Unchanged => "unchanged",
            ActionChange::AlreadyQuarantined => "already_quarantined",
            ActionChange::Released => "released",
            ActionChange::AlreadyReleased => "already_released",
            ActionChange::Retried => "retried",
        }
    }

    /// Whether the host's desired state changed (a new revision was written).
    pub fn changed(self) -> bool {
        matches!(
            self,
            ActionChange::New | ActionChange::Replaced | ActionChange::Released | ActionChange::Retried
        )
    }
}

wire_enum! {
    /// What a quarantine, release or retry request asked for
    /// ([`ActionResponse::action`]). Closed: these are what the API does to a host's
    /// desired state.
    pub enum HostAction {
        /// Quarantine the hosts.
        Quarantine = "quarantine",
        /// Release the hosts.
        Release = "release",
        /// Re-send the hosts' desired state as a new revision.
        Retry = "retry",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// Answer of quarantine / release: one result per target host.
pub struct ActionResponse {
    /// `quarantine`, `release` or `retry`.
    pub action: HostAction,
    /// One entry per target host, in request order.
    pub results: Vec<ActionResult>,
    /// True when the request was a `preview`: nothing was changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preview: bool,
    /// Host id → the desired-state revision each target host had when the request was
    /// handled (before this action). After a `preview`, send it back as the request's
    /// `if_revisions` to act on exactly the previewed hosts as they were previewed (409,
    /// nothing changed, if any moved on or, for a label, the label's hosts changed).
    /// Always present, `{}` when no host was targeted.
    #[serde(default)]
    pub if_revisions: std::collections::BTreeMap<String, i64>,
}

/// Adds/removes labels; adding or removing `Quarantine` quarantines/releases and then
/// needs `comment`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LabelsRequest {
    #[serde(default)]
    /// Labels to add (adding `Quarantine` quarantines).
    pub add: Vec<String>,
    #[serde(default)]
    /// Labels to remove (removing `Quarantine` releases).
    pub remove: Vec<String>,
    #[serde(default)]
    /// Why; required when `Quarantine` is added or removed.
    pub comment: Option<String>,
}

/// Body of `POST /v1/hosts/{id}/retry`: re-send the host's current desired state to its
/// agent as a new revision (nothing of it changes). Only for a host with something to
/// retry: `failed`, `tampered`, a degraded quarantine, or a quarantine or release still
/// pending; otherwise 409.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetryRequest {
    /// Required: why (audited with the caller's name).
    #[serde(default)]
    pub comment: Option<String>,
    /// Optimistic concurrency: the desired-state revision the caller last saw; if the
    /// host has moved on since, nothing changes and the answer is 409.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_revision: Option<i64>,
    /// Answer what the retry would do, and change nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preview: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// `POST /v1/hosts/{id}/revoke` body.
pub struct RevokeRequest {
    #[serde(default)]
    /// Why the host is revoked (audited).
    pub comment: Option<String>,
    /// Revoke even though the host is quarantined or its release is unconfirmed (409
    /// otherwise): a quarantined host then stays quarantined with no remote release.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// One audit record (`GET /v1/audit`, exports): who did what to which host, when and why.
pub struct AuditRecord {
    /// Record id: grows with every record; the chain follows it.
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    /// Display name of who acted: an API token's name (see `actor_token_id`), `system`,
    /// `agent:HOSTNAME`, `rule:NAME`, `enrollment`.
    pub actor: String,
    /// Id of the API token that acted (also for a console session opened with it): the
    /// identity behind `actor`, which is only a name. Absent for the server itself,
    /// agents, rules, and records written before token ids were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_token_id: Option<i64>,
    /// `quarantine`, `release`, `applied`, `tampered`, `failed`, `enroll`, `revoke`, `label`, `token_create`, ...
    pub action: String,
    /// The host concerned, if any.
    pub host_id: Option<String>,
    /// The reason the actor gave.
    pub comment: Option<String>,
    /// `ok`, `pending`, `error`, ...
    pub result: String,
    /// More detail (an error, what changed, a signed checkpoint as JSON).
    pub detail: Option<String>,
    /// The automation event that triggered this change (automatic actions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The automation rule that took this action (automatic actions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Hash of the chained record before this one (64 zeros for the first); absent on
    /// records written before the chain existed. See [`crate::audit_chain`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_hash: Option<String>,
    /// SHA-256 (hex) over `prev_hash` and the canonical encoding of every other field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

impl AuditRecord {
    /// Who acted, for tables: the actor's name and, for an API token, its id next to it
    /// (`alice (token 3)`), since names are only labels; the bare name otherwise.
    pub fn actor_label(&self) -> String {
        match self.actor_token_id {
            Some(id) => format!("{} (token {id})", self.actor),
            None => self.actor.clone(),
        }
    }
}

#[cfg(test)]
mod audit_record_tests {
    use super::AuditRecord;

    #[test]
    fn flag_cells_name_the_shared_address() {
        let f = super::HostFlag {
            kind: super::HostFlagKind::DuplicateAddress,
            value: "192.0.2.10".into(),
            other_hosts: vec!["h2".into()],
        };
        assert_eq!(f.short(), "duplicate address 192.0.2.10 (also claimed by h2)");
        assert_eq!(f.text(), "duplicate address \"192.0.2.10\" (also claimed by host h2)");
        let f = super::HostFlag {
            kind: super::HostFlagKind::DuplicateHostname,
            value: "web1".into(),
            other_hosts: vec!["h2".into()],
        };
        assert_eq!(f.short(), "duplicate hostname (also h2)");
        // The table cell names other hosts by short id, as the ID column shows them.
        let f = super::HostFlag {
            kind: super::HostFlagKind::DuplicateHostname,
            value: "web1".into(),
            other_hosts: vec!["820cb233-1c2d-4e5f-8a9b-0c1d2e3f4a5b".into()],
        };
        assert_eq!(f.short(), "duplicate hostname (also 820cb233)");
        assert!(
            f.text().contains("820cb233-1c2d-4e5f-8a9b-0c1d2e3f4a5b"),
            "{}",
            f.text()
        );
    }

    #[test]
    fn actor_label_names_the_token_id() {
        let mut r: AuditRecord = serde_json::from_str(
            r#"{"id":1,"at":"2030-01-01T00:00:00.000Z","actor":"alice","action":"quarantine",
                "host_id":null,"comment":null,"result":"ok","detail":null,"actor_token_id":3}"#,
        )
        .unwrap();
        assert_eq!(r.actor_label(), "alice (token 3)");
        r.actor_token_id = None;
        assert_eq!(r.actor_label(), "alice");
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// `GET /v1/audit` answer: one page of records, oldest first.
pub struct AuditList {
    /// The records of this page.
    pub records: Vec<AuditRecord>,
    /// More records follow: pass this as `cursor` to get the next page. Absent on the
    /// last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Set when this server's last verification of the audit chain (at its start, or
    /// `GET /v1/audit/verify`) found it tampered: a list of records must not read as
    /// genuine without saying so. Absent when it found none (or has not verified yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_alert: Option<ChainAlert>,
}

/// Roles of API tokens, each including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read hosts and audit.
    Viewer,
    /// Also quarantine, release, label.
    Responder,
    /// Also tokens, enrollment, revocation.
    Admin,
}

impl Role {
    /// The wire name (`viewer`, `responder`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Responder => "responder",
            Role::Admin => "admin",
        }
    }
    /// Parses a wire name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "viewer" => Role::Viewer,
            "responder" => Role::Responder,
            "admin" => Role::Admin,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// `POST /v1/tokens` body.
pub struct TokenCreateRequest {
    /// Display name: unique (trimmed, case-insensitive, NFKC), no reserved prefix (`system`, `agent:`, `rule:`, `enrollment`, `cordon server`).
    pub name: String,
    /// What the token may do.
    pub role: Role,
}

/// A created API token; `token` is shown only here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenCreated {
    /// Token id (recorded in audit records as `actor_token_id`).
    pub id: i64,
    /// Display name, as stored (trimmed).
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// The bearer secret (`cordon_…`); the server keeps only its hash.
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// An API token without its secret (`GET /v1/tokens`).
pub struct TokenInfo {
    /// Token id.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// What the token may do.
    pub role: Role,
    /// When it was created.
    pub created_at: Timestamp,
    /// Revoked tokens (and their console sessions) are refused.
    pub revoked: bool,
    /// Set on tokens created before names were checked whose name is not unique
    /// (`duplicate name`: another, older token has it, compared trimmed and
    /// case-insensitively, look-alikes included) or reads as a reserved prefix
    /// (`reserved name`), or that today's name rules refuse otherwise (`invalid name`:
    /// punctuation outside ` -_.@:`, mixed scripts). Such tokens keep working. Audit
    /// records carry the token id, which tells them apart; revoke and re-create such
    /// tokens under a distinct name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_flag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// `GET /v1/tokens` answer.
pub struct TokenList {
    /// Every token, revoked ones included.
    pub tokens: Vec<TokenInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// `POST /v1/enrollment-tokens` body.
pub struct EnrollTokenRequest {
    #[serde(default)]
    /// Labels given to the host that enrolls with the token.
    pub labels: Vec<String>,
    /// Lifetime in seconds (default 24 h).
    #[serde(default)]
    pub ttl_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// A created one-time enrollment token.
pub struct EnrollTokenCreated {
    /// The secret to pass to `cordon agent enroll` (shown only here).
    pub token: String,
    /// Labels the enrolling host gets.
    pub labels: Vec<String>,
    /// After which the token is refused.
    pub expires_at: Timestamp,
}
