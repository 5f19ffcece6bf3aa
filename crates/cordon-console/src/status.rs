//! What the console says about a host, from the fields the server derives (issue 14's
//! truth: `state`, `enforcing`, `degraded`, `offline`, `claims`) — never re-derived here
//! from `state_reason` text, the backend name or `last_seen`, and never more than is
//! confirmed (issue 16, section 1):
//!
//! - a host whose agent enforces nothing (`enforce = false`) is "Not enforcing", never
//!   "Quarantined / In force";
//! - "Policy in force" only when the agent confirmed the quarantine it was asked for;
//! - hosts that need a person's attention (failed, tampered, degraded, not enforcing,
//!   pending for more than [`LONG_PENDING_MS`], quarantined but offline) are counted for
//!   the banner, by the store's own definition ([`Attention`]).
//!
//! Pure functions of a [`Host`] (and, for attention, the current time in Unix ms).

use cordon_proto::{Host, HostState};

/// Why a host needs attention; each is a filter of the hosts page (`?attention=`). The
/// store defines each as SQL for the list and its counts, and for one host
/// ([`HostAttention::holds`](cordon_server_core::store::HostAttention::holds)).
pub use cordon_server_core::store::HostAttention as Attention;
pub use cordon_server_core::store::LONG_PENDING_MS;

/// Banner text after the count `n` ("3 failed"). Agents that enforce nothing are
/// counted in their own words ("3 agents enforce nothing"): the summary line above the
/// list counts the *state* not enforcing (a quarantine asked of such an agent), a smaller
/// number, and one phrase with two numbers read as a contradiction (trial30 LOW-2).
pub fn attention_text(a: Attention, n: i64) -> &'static str {
    match a {
        Attention::Failed => "failed",
        Attention::Tampered => "tampered",
        Attention::NotEnforcing if n == 1 => "agent enforces nothing (enforce = false)",
        Attention::NotEnforcing => "agents enforce nothing (enforce = false)",
        Attention::LongPending => "pending for more than 5 min",
        Attention::Offline => "offline while quarantined",
        Attention::Degraded => "degraded (exceptions not in force)",
        Attention::RevokedQuarantined => "revoked while quarantined (release only on the host)",
    }
}

/// The agent runs without enforcement (the server's `not_enforcing` state, or its last
/// report said `enforcing: false`): nothing it reports is in force on the host.
pub fn not_enforcing(h: &Host) -> bool {
    h.state == HostState::NotEnforcing || !h.enforcing
}

/// The server's `offline` (no report for three of the agent's heartbeats, or never seen).
pub fn offline(h: &Host) -> bool {
    h.offline
}

/// Every reason `h` needs attention at `now`.
pub fn attention(h: &Host, now: i64) -> Vec<Attention> {
    Attention::ALL.into_iter().filter(|a| a.holds(h, now)).collect()
}

/// What of an in-force quarantine is *not* in force: the server's `degraded` list (one
/// line per exception that does not resolve or could not be applied). Empty unless the
/// host is quarantined (confirmed) and enforcing.
pub fn degraded(h: &Host) -> &[String] {
    if h.state == HostState::Quarantined && h.enforcing {
        &h.degraded
    } else {
        &[]
    }
}

/// The state the console shows: the server's, except that a quarantine confirmed before
/// the agent said it enforces nothing is not shown as quarantined, and one in force
/// without some of its exceptions is shown degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// The server's state as it is.
    State(HostState),
    /// Desired quarantined, but the agent enforces nothing.
    NotEnforcing,
    /// Quarantine confirmed in force, some exceptions missing ([`degraded`]).
    Degraded,
}

impl Shown {
    /// What to show for `h`.
    pub fn of(h: &Host) -> Shown {
        if h.state == HostState::NotEnforcing || (h.state == HostState::Quarantined && !h.enforcing) {
            Shown::NotEnforcing
        } else if !degraded(h).is_empty() {
            Shown::Degraded
        } else {
            Shown::State(h.state)
        }
    }

    /// CSS class suffix and `data-state` value.
    pub fn key(self) -> &'static str {
        match self {
            Shown::State(s) => s.as_str(),
            Shown::NotEnforcing => "not_enforcing",
            Shown::Degraded => "degraded",
        }
    }
}

/// The agent has sent no status report since it enrolled (trial13 LOW: such a host
/// read "Normal", a state nobody confirmed): the server has no backend and no applied
/// revision for it — both come only from a report.
/// The one definition ([`Host::never_reported`]), which the store's state counts and
/// the State filter use as SQL.
pub fn never_reported(h: &Host) -> bool {
    h.never_reported()
}

/// Whether the quarantine policy is confirmed in force on the host: the agent applied
/// the current revision, reported it isolated, and enforces.
pub fn policy_in_force(h: &Host) -> bool {
    h.desired.quarantined
        && h.state == HostState::Quarantined
        && h.applied_revision >= h.desired.revision
        && !not_enforcing(h)
}

/// Other managers' claims on the host's quarantine (every claim but the Cordon server's
/// own, `agent`): they keep the host isolated whatever the server asks.
pub fn other_claims(h: &Host) -> Vec<&cordon_proto::ClaimInfo> {
    h.claims.iter().filter(|c| c.source != SERVER_CLAIM).collect()
}

/// The claim source of the Cordon server's own quarantine.
pub const SERVER_CLAIM: cordon_proto::ClaimSource = cordon_proto::ClaimSource::Agent;

#[cfg(test)]
mod tests {
    use super::*;
    use cordon_proto::DesiredState;
    use cordon_server_core::timefmt::Timestamp;

    fn host(state: HostState, quarantined: bool, backend: &str, seen_ago_ms: i64, since_ago_ms: i64) -> Host {
        let now = 10_000_000_000;
        Host {
            id: "h".into(),
            hostname: "web".into(),
            os: None,
            addresses: vec![],
            labels: vec![],
            agent_version: None,
            last_seen: Some(Timestamp::from_unix_ms_clamped(now - seen_ago_ms)),
            enrolled_at: Timestamp::from_unix_ms_clamped(0),
            desired: DesiredState {
                revision: 2,
                quarantined,
                allow: vec![],
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
            state_since: Timestamp::from_unix_ms_clamped(now - since_ago_ms),
            applied_revision: 2,
            digest: None,
            backend: Some(backend.into()),
            revoked: false,
            degraded: vec![],
            enforcing: true,
            heartbeat_ms: None,
            offline: false,
            claims: vec![],
            flags: Vec::new(),
        }
    }
    const NOW: i64 = 10_000_000_000;

    #[test]
    fn non_enforcing_agents_are_never_shown_quarantined() {
        let mut h = host(HostState::NotEnforcing, true, "memory", 1000, 1000);
        h.enforcing = false;
        assert_eq!(Shown::of(&h), Shown::NotEnforcing);
        assert!(!policy_in_force(&h));
        assert_eq!(attention(&h, NOW), vec![Attention::NotEnforcing]);
        // Confirmed before the agent said it enforces nothing: still not quarantined.
        let mut h = host(HostState::Quarantined, true, "nftables", 1000, 1000);
        h.enforcing = false;
        assert_eq!(Shown::of(&h), Shown::NotEnforcing);
        assert!(!policy_in_force(&h));
        assert_eq!(attention(&h, NOW), vec![Attention::NotEnforcing]);
        let h = host(HostState::Quarantined, true, "nftables", 1000, 1000);
        assert_eq!(Shown::of(&h), Shown::State(HostState::Quarantined));
        assert!(policy_in_force(&h));
        assert!(attention(&h, NOW).is_empty());
    }

    #[test]
    fn failed_and_never_applied_hosts_have_no_policy_in_force() {
        let h = host(HostState::Failed, true, "nftables", 1000, 1000);
        assert!(!policy_in_force(&h));
        assert_eq!(attention(&h, NOW), vec![Attention::Failed]);
        let mut h = host(HostState::QuarantinePending, true, "nftables", 1000, 1000);
        h.applied_revision = 1;
        assert!(!policy_in_force(&h));
        let mut h = host(HostState::Quarantined, true, "nftables", 1000, 1000);
        h.applied_revision = 1;
        assert!(!policy_in_force(&h), "an older revision is not what was asked for");
    }

    #[test]
    fn attention_flags_long_pending_and_offline_quarantined_hosts() {
        let h = host(
            HostState::QuarantinePending,
            true,
            "nftables",
            3 * cordon_proto::DEFAULT_HEARTBEAT_MS as i64 + 1,
            LONG_PENDING_MS + 1,
        );
        // Only requested (trial8): long pending, not "offline while quarantined".
        assert_eq!(attention(&h, NOW), vec![Attention::LongPending]);
        let h = host(
            HostState::Quarantined,
            true,
            "nftables",
            3 * cordon_proto::DEFAULT_HEARTBEAT_MS as i64 + 1,
            LONG_PENDING_MS + 1,
        );
        assert_eq!(attention(&h, NOW), vec![Attention::Offline]);
        let h = host(
            HostState::QuarantinePending,
            true,
            "nftables",
            1000,
            LONG_PENDING_MS - 1,
        );
        assert!(attention(&h, NOW).is_empty());
        // Offline but not quarantined: nothing to worry about here.
        let h = host(HostState::Normal, false, "nftables", 3_600_000, 0);
        assert!(attention(&h, NOW).is_empty());
        let h = host(HostState::Tampered, true, "nftables", 1000, 1000);
        assert_eq!(attention(&h, NOW), vec![Attention::Tampered]);
        for a in Attention::ALL {
            assert_eq!(Attention::parse(a.as_str()), Some(a));
        }
    }

    /// The console shows the server's truth fields, never a re-derivation from text: a
    /// `state_reason` that merely reads "degraded: …" is not a degraded quarantine, a
    /// backend named `memory` alone is not "not enforcing", an old `last_seen` alone is
    /// not offline (the server derives `offline` with the agent's own heartbeat).
    #[test]
    fn shown_state_follows_the_servers_truth_fields_not_reason_text() {
        let mut h = host(HostState::Quarantined, true, "memory", 1000, 1000);
        h.state_reason = Some("degraded: exception https://edr.example.net unresolved".into());
        assert_eq!(Shown::of(&h), Shown::State(HostState::Quarantined));
        assert!(degraded(&h).is_empty());
        assert!(!not_enforcing(&h));
        h.degraded = vec!["exception https://edr.example.net unresolved".into()];
        assert_eq!(Shown::of(&h), Shown::Degraded);
        assert_eq!(
            degraded(&h),
            ["exception https://edr.example.net unresolved".to_string()]
        );
        assert_eq!(attention(&h, NOW), vec![Attention::Degraded]);
        h.offline = true;
        assert!(offline(&h));
        let mut h = host(HostState::Normal, false, "nftables", 3_600_000, 0);
        assert!(!offline(&h), "offline is the server's field");
        h.offline = true;
        assert!(offline(&h));
    }
}
