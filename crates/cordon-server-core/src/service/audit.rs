//! The audit log, filtered, and its CSV export.

use cordon_proto::{AuditRecord, Role};

use super::Caller;
use crate::store::AuditFilter;
use crate::{ApiError, AppState};

/// Records matching `filter`, oldest first (viewer). A `host_id` that names a hostname
/// is resolved to the host's id first.
pub async fn list(st: &AppState, caller: &Caller, mut filter: AuditFilter) -> Result<Vec<AuditRecord>, ApiError> {
    caller.require(Role::Viewer)?;
    if let Some(h) = &filter.host_id {
        if let Ok(host) = st.store.host(h).await {
            filter.host_id = Some(host.id);
        }
    }
    Ok(st.store.audit(&filter).await?)
}

/// The records as CSV ([`crate::audit_csv`]: formula-safe, with each host's name), for a
/// viewer.
pub async fn csv(st: &AppState, caller: &Caller, records: &[AuditRecord]) -> Result<String, ApiError> {
    caller.require(Role::Viewer)?;
    let names = st.store.hostnames().await?;
    Ok(crate::audit_csv::to_csv(records, &names))
}
