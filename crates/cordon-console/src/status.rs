//! What the console says about a host, derived from the server's state and the agent's
//! own report — never more than is confirmed (issue 16, section 1):
//!
//! - a host whose agent enforces nothing (`enforce = false`: it reports backend
//!   `memory`) is "Not enforcing", never "Quarantined / In force";
//! - "Policy in force" only when the agent confirmed the quarantine it was asked for;
//! - hosts that need a person's attention (failed, tampered, not enforcing, pending for
//!   more than [`LONG_PENDING_MS`], quarantined but offline) are counted for the banner.
//!
//! Pure functions of a [`Host`] and the current time (Unix ms).

use cordon_proto::{Host, HostState};

use cordon_server_core::timefmt::parse_rfc3339;

/// Why a host needs attention; each is a filter of the hosts page (`?attention=`). The
/// store defines each as SQL for the list and its counts, and for one host
/// ([`HostAttention::holds`]).
pub use cordon_server_core::store::HostAttention as Attention;
pub use cordon_server_core::store::{LONG_PENDING_MS, NON_ENFORCING_BACKEND, OFFLINE_AFTER_MS};

/// Banner text after the count ("3 failed").
pub fn attention_text(a: Attention) -> &'static str {
    match a {
        Attention::Failed => "failed",
        Attention::Tampered => "tampered",
        Attention::NotEnforcing => "not enforcing",
        Attention::LongPending => "pending for more than 5 min",
        Attention::Offline => "offline while quarantined",
        Attention::Degraded => "degraded (exceptions not in force)",
    }
}

fn ms(t: Option<&str>) -> Option<i64> {
    t.and_then(|t| parse_rfc3339(t).ok())
}

/// The agent runs without enforcement: nothing it reports is in force on the host.
pub fn not_enforcing(h: &Host) -> bool {
    h.state == HostState::NotEnforcing || !h.enforcing || h.backend.as_deref() == Some(NON_ENFORCING_BACKEND)
}

/// The agent has not been heard from for [`OFFLINE_AFTER_MS`] (or never).
pub fn offline(h: &Host, now: i64) -> bool {
    match ms(h.last_seen.as_deref()) {
        Some(seen) => now - seen > OFFLINE_AFTER_MS,
        None => true,
    }
}

/// Every reason `h` needs attention at `now`.
pub fn attention(h: &Host, now: i64) -> Vec<Attention> {
    Attention::ALL.into_iter().filter(|a| a.holds(h, now)).collect()
}

/// What of an in-force quarantine is *not* in force: the agent's `degraded` lines (an
/// exception that does not resolve or could not be applied). Empty unless the host is
/// quarantined (confirmed) with something missing.
pub fn degraded(h: &Host) -> Vec<String> {
    if h.state != HostState::Quarantined {
        return Vec::new();
    }
    h.state_reason
        .as_deref()
        .and_then(|r| r.strip_prefix(cordon_server_core::store::DEGRADED_PREFIX))
        .map(|r| r.split("; ").map(str::to_string).collect())
        .unwrap_or_default()
}

/// The state the console shows: the server's, except that a quarantine the agent does
/// not enforce is never shown as quarantined, and one in force without some of its
/// exceptions is shown degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    State(HostState),
    NotEnforcing,
    /// Quarantine confirmed in force, some exceptions missing ([`degraded`]).
    Degraded,
}

impl Shown {
    pub fn of(h: &Host) -> Shown {
        if h.state == HostState::NotEnforcing
            || (h.desired.quarantined && not_enforcing(h) && matches!(h.state, HostState::Quarantined))
        {
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

/// Whether the quarantine policy is confirmed in force on the host: the agent applied
/// the current revision, reported it isolated, and enforces.
pub fn policy_in_force(h: &Host) -> bool {
    h.desired.quarantined
        && h.state == HostState::Quarantined
        && h.applied_revision >= h.desired.revision
        && !not_enforcing(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cordon_proto::DesiredState;
    use cordon_server_core::timefmt::to_rfc3339;

    fn host(state: HostState, quarantined: bool, backend: &str, seen_ago_ms: i64, since_ago_ms: i64) -> Host {
        let now = 10_000_000_000;
        Host {
            id: "h".into(),
            hostname: "web".into(),
            os: None,
            addresses: vec![],
            labels: vec![],
            agent_version: None,
            last_seen: Some(to_rfc3339(now - seen_ago_ms)),
            enrolled_at: to_rfc3339(0),
            desired: DesiredState {
                revision: 2,
                quarantined,
                allow: vec![],
                message: None,
                comment: None,
                actor: None,
                expires_at: None,
            },
            state,
            state_reason: None,
            state_since: to_rfc3339(now - since_ago_ms),
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
        let h = host(HostState::Quarantined, true, "memory", 1000, 1000);
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
            OFFLINE_AFTER_MS + 1,
            LONG_PENDING_MS + 1,
        );
        assert_eq!(attention(&h, NOW), vec![Attention::LongPending, Attention::Offline]);
        let h = host(
            HostState::QuarantinePending,
            true,
            "nftables",
            1000,
            LONG_PENDING_MS - 1,
        );
        assert!(attention(&h, NOW).is_empty());
        // Offline but not quarantined: nothing to worry about here.
        let h = host(HostState::Normal, false, "nftables", OFFLINE_AFTER_MS * 10, 0);
        assert!(attention(&h, NOW).is_empty());
        let h = host(HostState::Tampered, true, "nftables", 1000, 1000);
        assert_eq!(attention(&h, NOW), vec![Attention::Tampered]);
        for a in Attention::ALL {
            assert_eq!(Attention::parse(a.as_str()), Some(a));
        }
    }
}
