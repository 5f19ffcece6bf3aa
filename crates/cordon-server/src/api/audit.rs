//! Audit log: filter, export as JSON, JSON lines or CSV.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cordon_proto::{AuditList, Role};
use serde::Deserialize;

use super::extract::ApiQuery;
use crate::auth::Auth;
use crate::store::{AuditFilter, AuditOrder, MAX_PAGE};
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
    /// Most records: for `json` one page (default and maximum 1000); for the `jsonl`
    /// and `csv` exports the whole export (default: everything, streamed).
    pub limit: Option<i64>,
    /// `json` (default), `jsonl` or `csv`.
    pub format: Option<String>,
    /// Continue after this record (the `next_cursor` of the previous page).
    pub cursor: Option<String>,
    /// `oldest` first (default) or `newest` first.
    pub order: Option<String>,
}

/// Records per database round trip of a streamed export.
const EXPORT_CHUNK: i64 = 1000;

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
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid(format!("cursor {c:?} is not one this server handed out")))?,
        ),
    };
    let order = match q.order.as_deref().unwrap_or("oldest") {
        "oldest" | "" => AuditOrder::Oldest,
        "newest" => AuditOrder::Newest,
        other => return Err(ApiError::invalid(format!("unknown order {other:?} (oldest or newest)"))),
    };
    if q.limit.is_some_and(|l| l < 1) {
        return Err(ApiError::invalid("limit must be at least 1"));
    }
    let format = q.format.as_deref().unwrap_or("json");
    let csv = match format {
        "json" => {
            let (records, next) = st
                .store
                .audit_page(&filter, after, order, q.limit.unwrap_or(MAX_PAGE))
                .await?;
            return Ok(Json(AuditList {
                records,
                next_cursor: next.map(|n| n.to_string()),
            })
            .into_response());
        }
        "jsonl" => false,
        "csv" => true,
        other => {
            return Err(ApiError::invalid(format!(
                "unknown format {other:?} (json, jsonl or csv)"
            )))
        }
    };
    // Exports are streamed page by page: memory stays one page whatever the log's size.
    let hostnames = if csv {
        st.store.hostnames().await?
    } else {
        Default::default()
    };
    let export = Export {
        store: st.store.clone(),
        hostnames,
        filter,
        order,
        after,
        left: q.limit,
        csv,
        header: csv,
    };
    let stream = futures_util::stream::unfold(export, |mut e| async move {
        let chunk = e.next_chunk().await;
        match chunk {
            Ok(None) => None,
            Ok(Some(bytes)) => Some((Ok::<_, std::io::Error>(bytes), e)),
            Err(err) => {
                // The status line is already sent: end the body early and log why.
                tracing::error!(error = %err, "audit export failed");
                e.left = Some(0);
                Some((Err(std::io::Error::other(err.to_string())), e))
            }
        }
    });
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    Ok(([(CONTENT_TYPE, content_type)], axum::body::Body::from_stream(stream)).into_response())
}

/// State of one streamed export.
struct Export {
    store: std::sync::Arc<crate::Store>,
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

impl Export {
    async fn next_chunk(&mut self) -> Result<Option<axum::body::Bytes>, ApiError> {
        let mut out = String::new();
        if self.header {
            self.header = false;
            out.push_str(crate::audit_csv::HEADER);
            out.push('\n');
        }
        let want = self.left.map_or(EXPORT_CHUNK, |l| l.min(EXPORT_CHUNK));
        if want > 0 {
            let (records, next) = self
                .store
                .audit_page(&self.filter, self.after, self.order, want)
                .await?;
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
        Ok((!out.is_empty()).then(|| out.into()))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct VerifyQuery {
    /// A checkpoint recorded earlier (`ID:HASH`, from the server log's `audit checkpoint`
    /// line): the log must still contain that record with that hash.
    pub checkpoint: Option<String>,
}

/// Checks the audit log's hash chain (admin): names the first bad record.
#[utoipa::path(get, path = "/v1/audit/verify", params(VerifyQuery), security(("bearer" = [])),
    responses((status = 200, body = cordon_proto::audit_chain::ChainReport), (status = 400, body = cordon_proto::ErrorBody)))]
pub async fn verify(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<VerifyQuery>,
) -> Result<Json<cordon_proto::audit_chain::ChainReport>, ApiError> {
    auth.require(Role::Admin)?;
    let extra = match q.checkpoint.as_deref().filter(|c| !c.is_empty()) {
        None => Vec::new(),
        Some(c) => vec![(
            "given".to_string(),
            c.parse::<cordon_proto::audit_chain::Checkpoint>()
                .map_err(ApiError::invalid)?,
        )],
    };
    Ok(Json(st.store.audit_verify(extra).await?))
}
