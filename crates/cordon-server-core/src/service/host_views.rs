//! Host lists for people (the console's hosts page): sorted, filtered, cursor-paged in
//! the database, with the counts such a page shows. Viewer role.

use cordon_proto::Role;

use super::Caller;
use crate::store::{ChangeFingerprint, HostAttention, HostQuery, HostSort, PageAt, SortCursor, SortedPage};
use crate::{ApiError, AppState};

/// One page of the list `q` describes and its counts.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// The hosts of this page and where the next one starts.
    pub page: SortedPage,
    /// Hosts the whole list has.
    pub total: i64,
    /// Hosts of the list before this page.
    pub before: i64,
}

/// Parses the cursors of a page request: `after` (the next page's) or `before` (the
/// previous page's); neither: the first page.
///
/// # Errors
/// 400 for a cursor this server did not hand out for `q`'s order, or both given.
pub fn page_at(q: &HostQuery, after: Option<&str>, before: Option<&str>) -> Result<PageAt, ApiError> {
    let dec = |c: &str| SortCursor::decode(c, q.sort, q.descending);
    match (after.filter(|c| !c.is_empty()), before.filter(|c| !c.is_empty())) {
        (None, None) => Ok(PageAt::First),
        (Some(a), None) => Ok(PageAt::After(dec(a)?)),
        (None, Some(b)) => Ok(PageAt::Before(dec(b)?)),
        (Some(_), Some(_)) => Err(ApiError::invalid("give either after or before, not both")),
    }
}

/// The sort order of a host list from `sort` (a column: `host`, `state`, `since`, `by`,
/// `last_seen`, `backend`; default `host`) and `dir` (`asc`, default, or `desc`). The
/// same orders as the console's sortable columns ([`HostSort`]).
///
/// # Errors
/// 400 naming the bad value and the accepted ones.
pub fn parse_sort(sort: Option<&str>, dir: Option<&str>) -> Result<(HostSort, bool), ApiError> {
    let sort = match sort.map(str::trim).filter(|s| !s.is_empty()) {
        None => HostSort::default(),
        Some(s) => HostSort::parse(s).ok_or_else(|| {
            let ok: Vec<&str> = HostSort::ALL.iter().map(|c| c.as_str()).collect();
            ApiError::invalid(format!("unknown sort {s:?}: use one of {}", ok.join(", ")))
        })?,
    };
    let descending = match dir.map(str::trim).filter(|s| !s.is_empty()) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(d) => return Err(ApiError::invalid(format!("unknown dir {d:?}: use asc or desc"))),
    };
    Ok((sort, descending))
}

/// One page of at most `limit` hosts of `q`, after the cursor `after` (a `next` cursor
/// this server handed out for the same order), and the next page's cursor (viewer).
/// Without counts: the REST list's sorted pages.
///
/// # Errors
/// 403 below viewer; 400 for a limit below 1 or a cursor of another order.
pub async fn sorted(
    st: &AppState,
    caller: &Caller,
    q: &HostQuery,
    after: Option<&str>,
    limit: i64,
) -> Result<(Vec<cordon_proto::Host>, Option<String>), ApiError> {
    caller.require(Role::Viewer)?;
    if limit < 1 {
        return Err(ApiError::invalid("limit must be at least 1"));
    }
    let at = page_at(q, after, None)?;
    let page = st.store.hosts_sorted_page(q, &at, limit).await?;
    Ok((page.hosts, page.next.map(|c| c.encode())))
}

/// One page of at most `limit` hosts of `q` at `at`, with the list's total and the
/// page's position (viewer).
///
/// # Errors
/// 403 below viewer; 400 for a limit below 1.
pub async fn page(
    st: &AppState,
    caller: &Caller,
    q: &HostQuery,
    at: &PageAt,
    limit: i64,
) -> Result<ListPage, ApiError> {
    caller.require(Role::Viewer)?;
    if limit < 1 {
        return Err(ApiError::invalid("limit must be at least 1"));
    }
    let page = st.store.hosts_sorted_page(q, at, limit).await?;
    // A page's `prev` cursor names its first host (the page before ends just before it);
    // without one the page starts the list.
    let (total, before) = st.store.hosts_sorted_count(q, page.prev.as_ref()).await?;
    Ok(ListPage { page, total, before })
}

/// Hosts needing attention at `now`, per reason (viewer).
pub async fn attention(st: &AppState, caller: &Caller, now: i64) -> Result<Vec<(HostAttention, i64)>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(st.store.attention_counts(now).await?)
}

/// Hosts of `q` per shown state (viewer).
pub async fn state_counts(st: &AppState, caller: &Caller, q: &HostQuery) -> Result<Vec<(String, i64)>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(st.store.hosts_state_counts(q).await?)
}

/// Every label non-revoked hosts carry (viewer).
pub async fn labels(st: &AppState, caller: &Caller) -> Result<Vec<String>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(st.store.host_labels().await?)
}

/// A cheap summary that changes whenever a host's state, labels or desired state do, an
/// agent report changes what a page shows, or a host goes offline (viewer): see
/// [`ChangeFingerprint`]. The console's live stream compares it every half second.
///
/// # Errors
/// 403 below viewer; 500 (logged) when the store fails.
pub async fn change_fingerprint(
    st: &AppState,
    caller: &Caller,
    seen_step_ms: i64,
) -> Result<ChangeFingerprint, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(st.store.change_fingerprint(seen_step_ms).await?)
}

/// Host id → hostname of every host, revoked ones included (viewer): for naming hosts
/// in lists of events, approvals and audit records.
///
/// # Errors
/// 403 below viewer; 500 (logged) when the store fails.
pub async fn names(st: &AppState, caller: &Caller) -> Result<std::collections::HashMap<String, String>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(st.store.hostnames().await?)
}
