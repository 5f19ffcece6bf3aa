//! What the server wants an agent to enforce, and what the agent reports back.

use serde::{Deserialize, Serialize};

use crate::timefmt::Timestamp;

/// The desired quarantine state of one host. `revision` grows with every change the
/// server makes for that host; agents remember the last one they applied.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DesiredState {
    /// Desired-state revision: grows by one with every change the server makes for this host.
    pub revision: i64,
    /// Whether the host is to be quarantined (`false`: released).
    pub quarantined: bool,
    /// Extra allowed destinations (`--allow` specs) while quarantined.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Message shown to logged-in users when the quarantine starts.
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    /// The analyst's (or rule's) reason for this state, as given with the action.
    pub comment: Option<String>,
    /// Who asked for this state: a display name only (an API token's name, `system`, or
    /// `rule:NAME` for automation). The identity is `actor_token_id`.
    #[serde(default)]
    pub actor: Option<String>,
    /// The API token that asked for this state (the audit record's `actor_token_id`):
    /// the identity behind `actor`, which any admin could have given another token.
    /// `None` for the server itself, automation rules and states set before the server
    /// recorded it (migration 0024).
    #[serde(default)]
    pub actor_token_id: Option<i64>,
    /// The current name of token `actor_token_id`, read from the token table when the
    /// server answers (never stored with the state, never sent to agents). Differs from
    /// `actor` when the token was renamed since it acted (only possible by editing the
    /// database); `None` when no token acted or the token no longer exists. See
    /// [`DesiredState::actor_label`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_token_name: Option<String>,
    /// When passed the server releases the host (RFC 3339 on the wire).
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// With a release (`quarantined: false`): the host ids of previous enrollments of this
    /// machine whose `agent` claims the agent lifts with this release, besides its own
    /// (issue 14, trial32 HIGH-2: a host enrolled again after its server's database was
    /// restored from before its enrollment). The server names exactly the ones the host's
    /// agent reported when the release was ordered; an agent never lifts another
    /// enrollment's claim without it. Empty for every other state; omitted from JSON when
    /// empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release_previous: Vec<String>,
}

impl DesiredState {
    /// Who asked for this state, for people: the name with the token id next to it
    /// (`ops1 (token 94)`), `ops1 (token 94, now named "ops2")` when the token's current
    /// name differs from the recorded one, `ops1 (token 94, no such token now)` when the
    /// server found no token with that id, and the bare name when no token acted
    /// (`system`, `rule:NAME`). `None` when no actor is recorded. Pure.
    pub fn actor_label(&self) -> Option<String> {
        let name = self.actor.as_deref();
        match (name, self.actor_token_id) {
            (None, None) => None,
            (Some(n), None) => Some(n.to_string()),
            (n, Some(id)) => {
                let n = n.unwrap_or("(no name)");
                Some(match self.actor_token_name.as_deref() {
                    Some(now) if now == n => format!("{n} (token {id})"),
                    Some(now) => format!("{n} (token {id}, now named {now:?})"),
                    None => format!("{n} (token {id}, no such token now)"),
                })
            }
        }
    }
}

/// What the agent found on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Quarantine rules in force and matching what was applied.
    Isolated,
    /// No Cordon rules in force.
    Released,
    /// Rules were found missing or altered (the report says what); the agent repairs.
    Tampered,
    /// The desired state could not be applied (`error` says why).
    Failed,
}

impl AgentState {
    /// The wire name (`isolated`, `released`, `tampered`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Isolated => "isolated",
            AgentState::Released => "released",
            AgentState::Tampered => "tampered",
            AgentState::Failed => "failed",
        }
    }
}

/// `POST /v1/agent/status` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusReport {
    #[serde(default = "crate::agent::default_version")]
    /// Protocol version of the reporting agent ([`crate::PROTO_VERSION`]).
    pub version: u32,
    /// Revision of the desired state this report describes.
    pub applied_revision: i64,
    /// What the agent found in force on the host after applying.
    pub state: AgentState,
    #[serde(default)]
    /// SHA-256 (hex) of the ruleset the agent applied and verified in the kernel; compared at every check to see tampering.
    pub digest: Option<String>,
    #[serde(default)]
    /// Firewall backend in use ([`Backend`]: `netlink`, `nftables`, `iptables`, `pf`,
    /// `wfp`, `netsh-ipsec`, or `memory` when not enforcing).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub backend: Option<Backend>,
    /// Machine-readable error kind (`verification_failed`, `not_permitted`, ...).
    #[serde(default)]
    pub error: Option<String>,
    /// Human-readable detail: the error message, or what tampering was found.
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    /// The host's name as the agent sees it (informational: the server keeps the enrolled hostname).
    pub hostname: Option<String>,
    #[serde(default)]
    /// Operating system and version as the agent sees it (free text, e.g. `linux 6.8.0`).
    pub os: Option<String>,
    /// The host's IP addresses (at most [`crate::MAX_ADDRESSES`]); read as
    /// [`crate::addr::parse_host_address`] reads them, written as canonical text.
    #[serde(default, with = "crate::addr::reported")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub addresses: Vec<std::net::IpAddr>,
    #[serde(default)]
    /// Version of the Cordon agent binary (`CARGO_PKG_VERSION`).
    pub agent_version: Option<String>,
    /// False when the agent runs with `enforce = false` (it keeps the desired state in
    /// memory and never touches the firewall): the server then never calls the host
    /// quarantined. Older agents do not send it and are taken as enforcing — unless
    /// their `backend` is `memory`: read it through [`StatusReport::enforces`].
    #[serde(default = "crate::agent::default_true")]
    pub enforcing: bool,
    /// What of the desired state is *not* in force although `state` is `isolated`: one
    /// human-readable line per exception that did not resolve or could not be applied
    /// (`exception https://edr.example.net: does not resolve: …`). The quarantine itself
    /// is in force (fail closed); the agent keeps retrying these.
    #[serde(default)]
    pub degraded: Vec<String>,
    /// The agent's heartbeat interval in milliseconds: it reports at least this often, so
    /// the server calls it offline after three intervals without a report.
    #[serde(default)]
    pub heartbeat_ms: Option<u64>,
    /// Every claim standing on the host's quarantine as the agent found it (issue 19
    /// item 9): its own (`agent`) and other managers' (`wazuh`, `velociraptor`, `local`).
    /// The host stays isolated while any claim stands; the agent never undoes another
    /// source's claim. Older agents do not send it.
    #[serde(default)]
    pub claims: Vec<ClaimInfo>,
    /// Why the agent has not applied the desired revision yet although it is applying
    /// it: it waits for a lock another process holds (issue 14 MED-1: behind another
    /// Cordon run the wait lasts up to the lock timeout, 60 s, and the server showed a
    /// `quarantine_pending` without a reason). Sent while it waits, with `state` and
    /// `applied_revision` of what is in force meanwhile; `None` otherwise (omitted from
    /// JSON) and from older agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<AgentWait>,
}

open_wire_enum! {
    /// What an agent waits for before it can apply ([`AgentWait::kind`]). Open: a newer
    /// agent may wait for other things; a server keeps the name as sent.
    pub enum WaitKind {
        /// A lock of Cordon's state (the state directory's `.lock`, a claims lock) held
        /// by another process.
        Lock = "lock",
    }
}

/// A wait that keeps the agent from applying the desired revision now
/// ([`StatusReport::waiting`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentWait {
    /// What it waits for: `lock` ([`WaitKind`]).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: WaitKind,
    /// The desired revision it waits to apply.
    pub revision: i64,
    /// The holder's pid, when the host tells (Linux `/proc/locks`, or the pid the holder
    /// recorded).
    #[serde(default)]
    pub holder_pid: Option<u32>,
    /// The holder as the agent's log names it: `pid N (COMM, EXE: another cordon run or
    /// the agent)`, `pid N (COMM, EXE: not a Cordon process)`, or `another process`.
    pub holder: String,
    /// Whether the holder runs Cordon itself (the same executable as the agent): then
    /// the agent waits up to its lock timeout; a holder that is not Cordon only a grace
    /// of seconds, then the quarantine goes on without the lock.
    #[serde(default)]
    pub holder_is_cordon: bool,
    /// The longest the wait lasts, in seconds (rounded up).
    pub up_to_secs: u64,
}

impl AgentWait {
    /// The sentence the server shows as the host's state reason: `waiting for pid N
    /// (cordon, …) (lock) to apply revision R, at most S s`. Pure.
    pub fn sentence(&self) -> String {
        format!(
            "waiting for {} ({}) to apply revision {}, at most {} s",
            self.holder, self.kind, self.revision, self.up_to_secs
        )
    }
}

open_wire_enum! {
    /// The firewall backend an agent reports it enforces with (`StatusReport::backend`,
    /// `Host::backend`): `cordon_firewall::BackendKind`'s names, plus `memory` for an
    /// agent with `enforce = false`. Open: a newer agent can bring a backend this server
    /// does not know; it is stored and shown as sent.
    pub enum Backend {
        /// nftables over a netlink socket.
        Netlink = "netlink",
        /// nftables through the `nft` command.
        Nftables = "nftables",
        /// `iptables-restore` into Cordon's own chains.
        Iptables = "iptables",
        /// macOS packet filter anchor.
        Pf = "pf",
        /// Windows Filtering Platform.
        Wfp = "wfp",
        /// Windows static IPsec policy (`netsh ipsec static`).
        NetshIpsec = "netsh-ipsec",
        /// Nothing enforced: the agent runs with `enforce = false`.
        Memory = "memory",
    }
}

open_wire_enum! {
    /// Who holds a claim on a host's quarantine (`ClaimInfo::source`): the names of
    /// `cordon_engine::claims::ClaimSource`. Open: each new integration adds a source to
    /// the agent's claims file, and a server older than the agent keeps it as sent.
    pub enum ClaimSource {
        /// The enrolled Cordon agent, on the server's orders (the server's own claim).
        Agent = "agent",
        /// `cordon wazuh-ar` (Wazuh active response).
        Wazuh = "wazuh",
        /// The `Custom.Cordon.Quarantine` Velociraptor artifact.
        Velociraptor = "velociraptor",
        /// An operator on the host (`cordon isolate` without `--source`).
        Local = "local",
    }
}

impl Default for ClaimSource {
    /// The server's own claim ([`ClaimSource::Agent`]).
    fn default() -> Self {
        ClaimSource::Agent
    }
}

/// One source's standing claim on a host's quarantine, as reported by its agent.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimInfo {
    /// Who holds it: `wazuh`, `velociraptor`, `agent` or `local` ([`ClaimSource`]).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub source: ClaimSource,
    /// Since when that source has held its claim (from the host's claims file; kept
    /// while the source re-applies or re-isolates). RFC 3339 on the wire; a time the
    /// server cannot read is taken as not known (`timefmt::opt_lenient`).
    #[serde(default, with = "crate::timefmt::opt_lenient")]
    pub since: Option<Timestamp>,
    /// That source's own exceptions (`--allow` specs), as it gave them.
    #[serde(default)]
    pub allow: Vec<String>,
    /// That source's management servers (always allowed while its claim stands).
    #[serde(default)]
    pub servers: Vec<String>,
    /// For an `agent` claim: the host id of the enrollment whose agent made it (a claim
    /// belongs to one enrollment, trial20 HIGH-C). Another id than the reporting host's is
    /// a previous enrollment's claim: not the server's quarantine of this host, and never
    /// released by this host's agent. `None`: not known (other sources, older agents):
    /// taken as the reporting host's own. Omitted from JSON when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl ClaimInfo {
    /// Whether this is the server's own claim on host `host_id`: an `agent` claim made
    /// by that enrollment's agent (or by an agent that does not say which enrollment).
    pub fn is_own_agent_claim(&self, host_id: &str) -> bool {
        self.source == ClaimSource::Agent && self.owner.as_deref().is_none_or(|o| o.eq_ignore_ascii_case(host_id))
    }

    /// Whether this is an `agent` claim of another enrollment than `host_id`'s (a
    /// previous enrollment of the same machine).
    pub fn is_previous_enrollment(&self, host_id: &str) -> bool {
        self.source == ClaimSource::Agent && !self.is_own_agent_claim(host_id)
    }
}

/// How often an agent that does not say (an older agent) reports, in milliseconds: the
/// agent's default `heartbeat_secs`.
pub const DEFAULT_HEARTBEAT_MS: u64 = 15_000;

/// An agent is offline after this many heartbeat intervals without a report.
pub const OFFLINE_AFTER_HEARTBEATS: u64 = 3;

/// The longest heartbeat interval the server trusts, in milliseconds (10 minutes): a
/// reported `heartbeat_ms` above it is clamped to it when the server derives `offline`, so
/// one config line (or a typo) cannot stretch "silent for 3 heartbeats" into years. The
/// agent refuses a `heartbeat_secs` above it when it reads its config.
pub const MAX_HEARTBEAT_MS: u64 = 600_000;

impl StatusReport {
    /// Whether the reporting agent enforces anything: the one definition the server uses
    /// (store, API, console, CLI and notifications all read what it stored from this).
    /// False when the report says `enforcing: false`, and whenever the backend is
    /// [`Backend::Memory`], which blocks nothing by definition — agents older than the
    /// `enforcing` field send only the backend (trial24 MED-3: such a report was shown
    /// "Quarantined / In force"). Pure.
    pub fn enforces(&self) -> bool {
        self.enforcing && self.backend != Some(Backend::Memory)
    }
}

pub(crate) fn default_true() -> bool {
    true
}

pub(crate) fn default_version() -> u32 {
    crate::PROTO_VERSION
}

#[cfg(test)]
mod actor_label_tests {
    use super::DesiredState;

    fn d(actor: Option<&str>, id: Option<i64>, now: Option<&str>) -> DesiredState {
        DesiredState {
            actor: actor.map(str::to_string),
            actor_token_id: id,
            actor_token_name: now.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn who_acted_names_the_token_id_and_a_name_that_no_longer_matches_it() {
        assert_eq!(
            d(Some("ops1"), Some(94), Some("ops1")).actor_label().as_deref(),
            Some("ops1 (token 94)")
        );
        assert_eq!(
            d(Some("ops1"), Some(94), Some("ops2")).actor_label().as_deref(),
            Some("ops1 (token 94, now named \"ops2\")")
        );
        assert_eq!(
            d(Some("ops1"), Some(94), None).actor_label().as_deref(),
            Some("ops1 (token 94, no such token now)")
        );
        // Automation and the server act without a token: the name alone.
        assert_eq!(
            d(Some("rule:edr"), None, None).actor_label().as_deref(),
            Some("rule:edr")
        );
        assert_eq!(d(None, None, None).actor_label(), None);
    }
}
