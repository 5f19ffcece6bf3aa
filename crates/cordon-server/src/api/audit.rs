//! Audit log: filter, export as JSON, JSON lines or CSV.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cordon_proto::{AuditList, Role};
use serde::Deserialize;

use super::extract::ApiQuery;
use crate::auth::Auth;
use crate::store::AuditFilter;
use crate::timefmt::parse_rfc3339;
use crate::{ApiError, AppState};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Host id.
    pub host: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// RFC 3339, inclusive.
    pub since: Option<String>,
    /// RFC 3339, exclusive.
    pub until: Option<String>,
    pub limit: Option<i64>,
    /// `json` (default), `jsonl` or `csv`.
    pub format: Option<String>,
}

#[utoipa::path(get, path = "/v1/audit", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = AuditList), (status = 400, body = cordon_proto::ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    auth.require(Role::Viewer)?;
    let time = |t: &Option<String>| -> Result<Option<i64>, ApiError> {
        t.as_deref()
            .filter(|s| !s.is_empty())
            .map(parse_rfc3339)
            .transpose()
            .map_err(ApiError::invalid)
    };
    let mut filter = AuditFilter {
        host_id: q.host.clone().filter(|s| !s.is_empty()),
        actor: q.actor.clone().filter(|s| !s.is_empty()),
        action: q.action.clone().filter(|s| !s.is_empty()),
        since: time(&q.since)?,
        until: time(&q.until)?,
        limit: q.limit,
    };
    if let Some(h) = &filter.host_id {
        // Accept a hostname too.
        if let Ok(host) = st.store.host(h).await {
            filter.host_id = Some(host.id);
        }
    }
    let records = st.store.audit(&filter).await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(AuditList { records }).into_response()),
        "jsonl" => {
            let mut out = String::new();
            for r in &records {
                out.push_str(&serde_json::to_string(r).map_err(|e| ApiError::internal(e.to_string()))?);
                out.push('\n');
            }
            Ok(([(CONTENT_TYPE, "application/x-ndjson")], out).into_response())
        }
        "csv" => {
            let names = st.store.hostnames().await?;
            let body = crate::audit_csv::to_csv(&records, &names);
            Ok(([(CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
        }
        other => Err(ApiError::invalid(format!(
            "unknown format {other:?} (json, jsonl or csv)"
        ))),
    }
}
