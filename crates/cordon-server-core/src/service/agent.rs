//! Agent sync: long-poll for desired state, status reports. The agent is identified by
//! its client certificate ([`crate::auth::AgentAuth`]), never by anything it sends.

use std::time::Duration;

use cordon_proto::{DesiredState, HostState, StatusReport};

use crate::{ApiError, AppState};

/// The host's desired state once its revision differs from `since` (at once when
/// `since` is `None`, or names another revision — also a higher one, after the database
/// was restored from a backup or the agent kept another enrollment's revision), or the
/// current one when `wait` (capped at the server's `max_wait`) runs out.
///
/// # Errors
/// 403 when the host was deleted, or revoked (also during the poll, on any replica) —
/// except that a revoked host is answered, once, a release ordered before its revocation.
pub async fn desired(
    st: &AppState,
    host_id: &str,
    since: Option<i64>,
    wait: Option<Duration>,
) -> Result<DesiredState, ApiError> {
    let wait = wait.unwrap_or(st.max_wait).min(st.max_wait);
    let deadline = tokio::time::Instant::now() + wait;
    let mut rx = st.hub.subscribe(host_id);
    tracing::debug!(host = %host_id, since = ?since, "agent long-poll");
    loop {
        let (desired, revoked) = st
            .store
            .desired(host_id)
            .await?
            .ok_or_else(|| ApiError::forbidden("host no longer exists"))?;
        let newer = since.is_none_or(|s| desired.revision != s);
        // A revoked host only gets here while a release ordered before the revocation is
        // unconfirmed (see `Store::host_active`): it is answered that release once, and
        // refused otherwise, also when the revocation lands during its long-poll (on any
        // replica).
        if revoked && (desired.quarantined || !newer) {
            return Err(ApiError::forbidden(format!("host {host_id} is revoked")));
        }
        if newer || tokio::time::Instant::now() >= deadline {
            tracing::debug!(host = %host_id, revision = desired.revision, "agent long-poll answered");
            return Ok(desired);
        }
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return Ok(desired);
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(desired),
        }
    }
}

/// Records an agent's status report; returns the host's state after it.
pub async fn status(st: &AppState, host_id: &str, report: &StatusReport) -> Result<HostState, ApiError> {
    let state = st.store.record_report(host_id, report).await?;
    tracing::debug!(host = %host_id, state = state.as_str(), rev = report.applied_revision, "agent status");
    Ok(state)
}

/// An agent whose client certificate (signed by this CA) names `host_id`, which no host
/// has, was refused (trial32 HIGH-2): recorded ([`crate::store::Store::note_unknown_agent`]:
/// audited the first time, listed by [`unknown_agents`]) and logged — the first time and
/// then at most hourly per host id. Never fails the request's answer (a 403 either way).
pub async fn unknown_agent(st: &AppState, host_id: &str, address: Option<&str>) {
    match st.store.note_unknown_agent(host_id, address).await {
        Ok(s) if s.log => tracing::warn!(
            host = %host_id,
            address = address.unwrap_or("unknown"),
            attempts = s.attempts,
            "refused an agent whose certificate names host {host_id}, which this database does not know (restored \
             from a backup older than its enrollment, or deleted): it keeps any quarantine in force on its host; \
             see `cordon hosts list --unknown` (logged at most hourly per host)"
        ),
        Ok(_) => tracing::debug!(host = %host_id, "unknown agent refused again"),
        Err(e) => tracing::warn!(host = %host_id, error = %e, "cannot record a refused unknown agent"),
    }
}

/// Every agent refused as unknown ([`unknown_agent`]) whose host id still names no host,
/// most recently seen first (viewer).
///
/// # Errors
/// 403 below viewer; database errors.
pub async fn unknown_agents(
    st: &AppState,
    caller: &crate::store::Caller,
) -> Result<Vec<cordon_proto::UnknownAgent>, ApiError> {
    caller.require(cordon_proto::Role::Viewer)?;
    Ok(st.store.unknown_agents().await?)
}
