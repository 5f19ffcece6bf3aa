//! The audit log, filtered, and its CSV form.

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

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The records as CSV (RFC 4180 quoting), header
/// `id,at,actor,action,host_id,comment,result,detail`.
pub fn to_csv(records: &[AuditRecord]) -> String {
    let mut out = String::from("id,at,actor,action,host_id,comment,result,detail\n");
    for r in records {
        let fields = [
            r.id.to_string(),
            r.at.clone(),
            r.actor.clone(),
            r.action.clone(),
            r.host_id.clone().unwrap_or_default(),
            r.comment.clone().unwrap_or_default(),
            r.result.clone(),
            r.detail.clone().unwrap_or_default(),
        ];
        out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}
