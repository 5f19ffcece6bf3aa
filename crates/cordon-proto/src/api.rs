//! REST API bodies (`/v1/...`).

use serde::{Deserialize, Serialize};

use crate::DesiredState;

/// Every error response: `{error, detail}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable machine-readable code (`unauthorized`, `forbidden`, `not_found`, `invalid_input`, ...).
    pub error: String,
    pub detail: String,
}

/// The server's view of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HostState {
    Normal,
    QuarantinePending,
    Quarantined,
    ReleasePending,
    Failed,
    Tampered,
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Normal => "normal",
            HostState::QuarantinePending => "quarantine_pending",
            HostState::Quarantined => "quarantined",
            HostState::ReleasePending => "release_pending",
            HostState::Failed => "failed",
            HostState::Tampered => "tampered",
        }
    }

    pub fn parse(s: &str) -> Option<HostState> {
        Some(match s {
            "normal" => HostState::Normal,
            "quarantine_pending" => HostState::QuarantinePending,
            "quarantined" => HostState::Quarantined,
            "release_pending" => HostState::ReleasePending,
            "failed" => HostState::Failed,
            "tampered" => HostState::Tampered,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Host {
    pub id: String,
    pub hostname: String,
    pub os: Option<String>,
    pub addresses: Vec<String>,
    pub labels: Vec<String>,
    pub agent_version: Option<String>,
    /// RFC 3339, last request from the agent.
    pub last_seen: Option<String>,
    pub enrolled_at: String,
    pub desired: DesiredState,
    pub state: HostState,
    /// Why the state is `failed` or `tampered`.
    pub state_reason: Option<String>,
    /// Since when the current state holds (for "pending for 3 h").
    pub state_since: String,
    pub applied_revision: i64,
    pub digest: Option<String>,
    pub backend: Option<String>,
    pub revoked: bool,
    /// What makes this host hard to address by name or address (issue 17): its hostname
    /// or one of its addresses is shared with other enrolled hosts. Automation refuses to
    /// act on such a name or address; the host id always works. Computed when read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<HostFlag>,
}

/// Something another host shares with this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostFlag {
    /// `duplicate_hostname` (compared case-insensitively) or `duplicate_address`.
    pub kind: String,
    /// The hostname or address shared.
    pub value: String,
    /// Ids of the other (not revoked) hosts that have it.
    pub other_hosts: Vec<String>,
}

impl HostFlag {
    /// `duplicate_hostname`
    pub const DUPLICATE_HOSTNAME: &'static str = "duplicate_hostname";
    /// `duplicate_address`
    pub const DUPLICATE_ADDRESS: &'static str = "duplicate_address";

    /// One line for people: `duplicate hostname "web1" (also host 1c2d…)`.
    pub fn text(&self) -> String {
        let what = match self.kind.as_str() {
            Self::DUPLICATE_HOSTNAME => "duplicate hostname",
            Self::DUPLICATE_ADDRESS => "address also claimed by another host",
            other => other,
        };
        format!("{what} {:?} (also host {})", self.value, self.other_hosts.join(", "))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostList {
    pub hosts: Vec<Host>,
    /// More hosts follow: pass this as `cursor` to get the next page. Absent on the
    /// last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Body of quarantine / release. Targets: `hosts` (ids or hostnames), or `label`, or a
/// single host from the URL path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionRequest {
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
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
    /// RFC 3339 time at which the server releases (quarantine only).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Optimistic concurrency: host id → the desired-state revision the caller last saw.
    /// If any of these hosts has moved on since, nothing changes and the answer is 409
    /// (the console sends what its page showed, so an action on a stale view is refused).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub if_revisions: std::collections::BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionResult {
    pub host_id: String,
    pub hostname: String,
    pub state: HostState,
    pub revision: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionResponse {
    pub action: String,
    pub results: Vec<ActionResult>,
}

/// Adds/removes labels; adding or removing `Quarantine` quarantines/releases and then
/// needs `comment`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LabelsRequest {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokeRequest {
    #[serde(default)]
    pub comment: Option<String>,
    /// Revoke even though the host is quarantined or its release is unconfirmed (409
    /// otherwise): a quarantined host then stays quarantined with no remote release.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
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
    pub host_id: Option<String>,
    pub comment: Option<String>,
    /// `ok`, `pending`, `error`, ...
    pub result: String,
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
pub struct AuditList {
    pub records: Vec<AuditRecord>,
    /// More records follow: pass this as `cursor` to get the next page. Absent on the
    /// last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
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
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Responder => "responder",
            Role::Admin => "admin",
        }
    }
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
pub struct TokenCreateRequest {
    pub name: String,
    pub role: Role,
}

/// A created API token; `token` is shown only here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenCreated {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub revoked: bool,
    /// Set on tokens created before names were checked whose name is not unique
    /// (`duplicate name`: another, older token has it, compared trimmed and
    /// case-insensitively) or is under a reserved prefix (`reserved name`). Audit
    /// records carry the token id, which tells them apart; revoke and re-create such
    /// tokens under a distinct name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_flag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollTokenRequest {
    #[serde(default)]
    pub labels: Vec<String>,
    /// Lifetime in seconds (default 24 h).
    #[serde(default)]
    pub ttl_secs: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollTokenCreated {
    pub token: String,
    pub labels: Vec<String>,
    pub expires_at: String,
}
