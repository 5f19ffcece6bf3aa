//! The audit log: filtered pages, streamed exports (JSON lines or CSV), and verification
//! of its hash chain.

use cordon_proto::audit_chain::{ChainReport, Checkpoint};
use cordon_proto::{AuditRecord, Role};

use super::Caller;
use crate::store::{AuditFilter, AuditOrder, Store, MAX_PAGE};
use crate::{ApiError, AppState};

/// Records per database round trip of a streamed export.
pub const EXPORT_CHUNK: i64 = 1000;

/// A `host_id` that names a hostname is resolved to the host's id.
async fn resolve_host(st: &AppState, filter: &mut AuditFilter) {
    if let Some(h) = &filter.host_id {
        if let Ok(host) = st.store.host(h).await {
            filter.host_id = Some(host.id);
        }
    }
}

/// Records matching `filter`, oldest first, at most `filter.limit` (viewer). A `host_id`
/// that names a hostname is resolved to the host's id first.
pub async fn list(st: &AppState, caller: &Caller, mut filter: AuditFilter) -> Result<Vec<AuditRecord>, ApiError> {
    caller.require(Role::Viewer)?;
    resolve_host(st, &mut filter).await;
    Ok(st.store.audit(&filter).await?)
}

/// Parses the `order` parameter: `oldest` (default, also empty) or `newest`.
///
/// # Errors
/// 400 for anything else.
pub fn order(text: Option<&str>) -> Result<AuditOrder, ApiError> {
    match text.unwrap_or("oldest") {
        "oldest" | "" => Ok(AuditOrder::Oldest),
        "newest" => Ok(AuditOrder::Newest),
        other => Err(ApiError::invalid(format!("unknown order {other:?} (oldest or newest)"))),
    }
}

/// Parses a cursor this server handed out (`next_cursor`: the id of the last record of
/// the previous page); `None` or empty: from the start.
///
/// # Errors
/// 400 for text that is not one.
pub fn cursor(text: Option<&str>) -> Result<Option<i64>, ApiError> {
    match text.filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(c) => c
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::invalid(format!("cursor {c:?} is not one this server handed out"))),
    }
}

fn check_limit(limit: Option<i64>) -> Result<(), ApiError> {
    if limit.is_some_and(|l| l < 1) {
        return Err(ApiError::invalid("limit must be at least 1"));
    }
    Ok(())
}

/// One page of the records matching `filter` (viewer; `filter.limit` is ignored) in
/// `order`, after record `after`, at most `limit` (default and maximum [`MAX_PAGE`]).
/// Returns the records and the cursor of the next page (`None` on the last).
///
/// # Errors
/// 400 for a limit below 1.
pub async fn page(
    st: &AppState,
    caller: &Caller,
    mut filter: AuditFilter,
    after: Option<i64>,
    order: AuditOrder,
    limit: Option<i64>,
) -> Result<(Vec<AuditRecord>, Option<String>), ApiError> {
    caller.require(Role::Viewer)?;
    check_limit(limit)?;
    resolve_host(st, &mut filter).await;
    let (records, next) = st
        .store
        .audit_page(&filter, after, order, limit.unwrap_or(MAX_PAGE))
        .await?;
    Ok((records, next.map(|n| n.to_string())))
}

/// How many records match `filter` and come after record `after` in `order` (all
/// matching records without `after`), for a viewer: a filtered list's total, and how
/// many records come before a page.
pub async fn matching_count(
    st: &AppState,
    caller: &Caller,
    mut filter: AuditFilter,
    after: Option<i64>,
    order: AuditOrder,
) -> Result<i64, ApiError> {
    caller.require(Role::Viewer)?;
    resolve_host(st, &mut filter).await;
    Ok(st.store.audit_matching_count(&filter, after, order).await?)
}

/// The records as CSV ([`crate::audit_csv`]: formula-safe, with each host's name), for a
/// viewer.
pub async fn csv(st: &AppState, caller: &Caller, records: &[AuditRecord]) -> Result<String, ApiError> {
    caller.require(Role::Viewer)?;
    let names = st.store.hostnames().await?;
    Ok(crate::audit_csv::to_csv(records, &names))
}

/// State of one streamed export (JSON lines or CSV), read page by page: memory stays one
/// page whatever the log's size. Made by [`export`]; the front end sends each
/// [`Export::next_chunk`] until it returns `None`.
pub struct Export {
    store: std::sync::Arc<Store>,
    filter: AuditFilter,
    order: AuditOrder,
    after: Option<i64>,
    /// Records still to send (`None`: all).
    left: Option<i64>,
    csv: bool,
    /// Host id to hostname, for the CSV's hostname column.
    hostnames: std::collections::HashMap<String, String>,
    /// The CSV header is still to be sent.
    header: bool,
}

/// Starts an export of the records matching `filter` (viewer; `filter.limit` is
/// ignored) in `order` after record `after`, at most `limit` records in all (default:
/// everything), as CSV when `csv`, else JSON lines.
///
/// # Errors
/// 400 for a limit below 1.
pub async fn export(
    st: &AppState,
    caller: &Caller,
    mut filter: AuditFilter,
    after: Option<i64>,
    order: AuditOrder,
    limit: Option<i64>,
    csv: bool,
) -> Result<Export, ApiError> {
    caller.require(Role::Viewer)?;
    check_limit(limit)?;
    resolve_host(st, &mut filter).await;
    let hostnames = if csv {
        st.store.hostnames().await?
    } else {
        Default::default()
    };
    Ok(Export {
        store: st.store.clone(),
        hostnames,
        filter,
        order,
        after,
        left: limit,
        csv,
        header: csv,
    })
}

impl Export {
    /// The next piece of the export (`None` once everything was sent). After an error
    /// the export is over.
    pub async fn next_chunk(&mut self) -> Result<Option<String>, ApiError> {
        let mut out = String::new();
        if self.header {
            self.header = false;
            out.push_str(crate::audit_csv::HEADER);
            out.push('\n');
        }
        let want = self.left.map_or(EXPORT_CHUNK, |l| l.min(EXPORT_CHUNK));
        if want > 0 {
            let page = self.store.audit_page(&self.filter, self.after, self.order, want).await;
            let (records, next) = match page {
                Ok(p) => p,
                Err(e) => {
                    self.left = Some(0);
                    return Err(e.into());
                }
            };
            self.after = next;
            self.left = match (self.left, next) {
                (_, None) => Some(0),
                (Some(l), _) => Some(l - records.len() as i64),
                (None, _) => None,
            };
            if self.csv {
                let body = crate::audit_csv::to_csv(&records, &self.hostnames);
                // Without its header line: that went out once, first.
                out.push_str(body.split_once('\n').map_or("", |(_, rows)| rows));
            } else {
                for r in &records {
                    out.push_str(&serde_json::to_string(r).map_err(|e| ApiError::internal(e.to_string()))?);
                    out.push('\n');
                }
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

/// Checks the whole audit log's hash chain (admin) against the database's chain head
/// and, when given, a checkpoint `ID:HASH` recorded earlier (from the server log's
/// `audit checkpoint` line). The report names the first bad record.
///
/// # Errors
/// 400 for a checkpoint that is not `ID:HASH`.
pub async fn verify(st: &AppState, caller: &Caller, checkpoint: Option<&str>) -> Result<ChainReport, ApiError> {
    caller.require(Role::Admin)?;
    let extra = match checkpoint.filter(|c| !c.is_empty()) {
        None => Vec::new(),
        Some(c) => vec![("given".to_string(), c.parse::<Checkpoint>().map_err(ApiError::invalid)?)],
    };
    Ok(st.store.audit_verify(extra).await?)
}
