//! Hosts: list, get, quarantine/release (one, many, by label), labels, revoke.

use std::collections::BTreeMap;

use crate::store::automation::LabelsReplaced;
use cordon_proto::{ActionRequest, ActionResponse, Host, LabelsRequest, RetryRequest, Role, QUARANTINE_LABEL};

use super::{validate, Caller};
use crate::store::{Action, HostCursor, HostFilter, RetryParams, Targets, MAX_PAGE};
use crate::{ApiError, AppState};

/// Hosts matching `filter` (viewer).
pub async fn list(st: &AppState, caller: &Caller, filter: &HostFilter) -> Result<Vec<Host>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(st.store.hosts(filter).await?)
}

/// One page of the hosts matching `filter` (viewer), ordered by hostname then id, after
/// the page whose `next_cursor` was `cursor` (`None` or empty: the first page), at most
/// `limit` (default and maximum [`MAX_PAGE`]). Returns the hosts and the cursor of the
/// next page (`None` on the last).
///
/// # Errors
/// 400 for a limit below 1 or a cursor this server did not hand out.
pub async fn list_page(
    st: &AppState,
    caller: &Caller,
    filter: &HostFilter,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<(Vec<Host>, Option<String>), ApiError> {
    caller.require(Role::Viewer)?;
    if limit.is_some_and(|l| l < 1) {
        return Err(ApiError::invalid("limit must be at least 1"));
    }
    let after = cursor.filter(|c| !c.is_empty()).map(HostCursor::decode).transpose()?;
    let (hosts, next) = st
        .store
        .hosts_page(filter, after.as_ref(), limit.unwrap_or(MAX_PAGE))
        .await?;
    Ok((hosts, next.map(|c| c.encode())))
}

/// One host by id, the start of an id of 8 characters or more (the short id), or
/// hostname (viewer).
///
/// # Errors
/// 404 when no host matches; 409 listing the hosts when a hostname or id start names
/// several.
pub async fn get(st: &AppState, caller: &Caller, reference: &str) -> Result<Host, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(st.store.host(reference).await?)
}

/// Quarantine or release of `targets` (responder): validates the parameters, writes each
/// host's desired state and audit record in one transaction, wakes the agents. A host
/// already desired quarantined keeps its exceptions, message and expiry unless the
/// request says `replace`; each result says what changed ([`crate::store::plan_change`]).
/// With `preview` nothing is written and nobody is woken.
pub async fn act(
    st: &AppState,
    caller: &Caller,
    action: Action,
    targets: Targets,
    req: &ActionRequest,
) -> Result<ActionResponse, ApiError> {
    caller.require(Role::Responder)?;
    let params = match action {
        Action::Quarantine => validate::quarantine_params(req)?,
        Action::Release => validate::release_params(req)?,
    };
    let (results, before) = st.store.act(caller, action, &targets, &params).await?;
    if !params.preview {
        st.hub
            .notify_all(results.iter().filter(|r| r.change.changed()).map(|r| &r.host_id));
        tracing::info!(
            actor = %caller.name,
            action = action.as_str(),
            hosts = results.len(),
            changed = results.iter().filter(|r| r.change.changed()).count(),
            "desired state changed"
        );
    }
    Ok(ActionResponse {
        action: action.into(),
        results,
        preview: params.preview,
        if_revisions: before,
    })
}

/// Releases every quarantine whose `expires_at` passed (audited as `system`) and wakes
/// the agents concerned; returns their host ids. Run by the server's expiry task
/// ([`crate::expiry::run`]) and by tests.
///
/// # Errors
/// The store's (nothing is released then).
pub async fn release_expired(st: &AppState) -> Result<Vec<String>, crate::StoreError> {
    crate::expiry::sweep(&st.store, &st.hub).await
}

/// Retry (responder): re-sends the current desired state of each host `refs` names to
/// its agent as a new revision — nothing of that state changes — audited as `retry` with
/// the caller and `comment`, and wakes the agents ([`crate::store::Store::retry`]). The
/// answer's `action` is `retry`, each result's `change` is `retried`. `if_revisions`
/// (host id → revision the caller saw) refuses a stale view; with `preview` nothing is
/// written and nobody is woken.
///
/// # Errors
/// 403 below responder; 400 without a comment or without hosts; 404 for an unknown
/// host; 409 (nothing written) for a host that moved on since `if_revisions`, or that
/// has nothing to retry ([`cordon_proto::Host::retry_refusal`]: only failed, tampered,
/// degraded and pending hosts do).
pub async fn retry(
    st: &AppState,
    caller: &Caller,
    refs: &[String],
    comment: Option<&str>,
    if_revisions: &BTreeMap<String, i64>,
    preview: bool,
) -> Result<ActionResponse, ApiError> {
    caller.require(Role::Responder)?;
    let comment = validate::comment(comment)?;
    if refs.is_empty() {
        return Err(ApiError::invalid("no host to retry"));
    }
    let p = RetryParams {
        comment,
        if_revisions: if_revisions.clone(),
        preview,
    };
    let results = st.store.retry(caller, refs, &p).await?;
    if !preview {
        st.hub.notify_all(results.iter().map(|r| &r.host_id));
        tracing::info!(actor = %caller.name, hosts = results.len(), "desired state re-sent (retry)");
    }
    Ok(ActionResponse {
        action: cordon_proto::HostAction::Retry,
        results,
        preview,
        if_revisions: BTreeMap::new(),
    })
}

/// Retry of one host by id or hostname (the REST route's shape): `req.if_revision` is
/// the revision the caller saw ([`retry`]).
pub async fn retry_one(
    st: &AppState,
    caller: &Caller,
    reference: &str,
    req: &RetryRequest,
) -> Result<ActionResponse, ApiError> {
    caller.require(Role::Responder)?;
    let mut seen = BTreeMap::new();
    if let Some(rev) = req.if_revision {
        // The store compares by host id; resolve the reference the same way it will.
        let h = st.store.host(reference).await?;
        seen.insert(h.id, rev);
    }
    retry(
        st,
        caller,
        &[reference.to_string()],
        req.comment.as_deref(),
        &seen,
        req.preview,
    )
    .await
}

/// Quarantine or release of the hosts or label named in the body. The role is checked
/// before the body, so a viewer gets 403 whatever it sent.
pub async fn act_many(
    st: &AppState,
    caller: &Caller,
    action: Action,
    req: &ActionRequest,
) -> Result<ActionResponse, ApiError> {
    caller.require(Role::Responder)?;
    let targets = validate::targets(req)?;
    act(st, caller, action, targets, req).await
}

/// Adds and removes labels of one host (responder); touching the Quarantine label needs a
/// comment. Returns the host as it is now.
pub async fn labels(st: &AppState, caller: &Caller, reference: &str, req: &LabelsRequest) -> Result<Host, ApiError> {
    caller.require(Role::Responder)?;
    // An added label may not look like an existing one (trial11 MED 2).
    let add = validate::new_labels(&req.add, &st.store.known_labels(LabelsReplaced::Nothing).await?)?;
    // A label is removed as it is stored: one saved before today's checks (a legacy
    // `ir hold` with a space, a look-alike) must stay removable, so a label some host
    // carries exactly is accepted for removal even where the check would refuse it now
    // (trial16: a legacy spaced label could not be removed).
    let stored = if req.remove.iter().any(|l| validate::label(l).is_err()) {
        st.store.host_labels().await?
    } else {
        Vec::new()
    };
    let remove = req
        .remove
        .iter()
        .map(|l| match validate::label(l) {
            Err(_) if stored.contains(l) => Ok(l.clone()),
            checked => checked,
        })
        .collect::<Result<Vec<_>, _>>()?;
    if add.is_empty() && remove.is_empty() {
        return Err(ApiError::invalid("nothing to add or remove"));
    }
    if add.iter().any(|l| remove.contains(l)) {
        return Err(ApiError::invalid("a label cannot be both added and removed"));
    }
    let touches_quarantine = add.iter().chain(remove.iter()).any(|l| l == QUARANTINE_LABEL);
    let comment = if touches_quarantine {
        Some(validate::comment(req.comment.as_deref())?)
    } else {
        req.comment
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
    };
    let (host_id, changed) = st
        .store
        .change_labels(caller, reference, &add, &remove, comment.as_deref())
        .await?;
    if changed {
        st.hub.notify(&host_id);
    }
    Ok(st.store.host(&host_id).await?)
}

/// Revokes a host (admin): its certificate is refused from now on (except to fetch and
/// confirm a release ordered before the revocation) and a waiting long-poll is woken so
/// it closes at once (on other replicas through the store's wake-up). Returns the host
/// as it is now.
///
/// # Errors
/// 409 when the host is desired quarantined or a release is not yet confirmed and
/// `force` is false ([`crate::store::Store::revoke`]).
pub async fn revoke(
    st: &AppState,
    caller: &Caller,
    reference: &str,
    comment: Option<&str>,
    force: bool,
) -> Result<Host, ApiError> {
    caller.require(Role::Admin)?;
    let host_id = st.store.revoke(caller, reference, comment, force).await?;
    st.hub.notify(&host_id);
    Ok(st.store.host(&host_id).await?)
}
