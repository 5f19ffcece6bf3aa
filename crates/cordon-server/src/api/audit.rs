//! Audit log: filtered pages, streamed exports as JSON lines or CSV, chain verification.
//! The logic is the service layer's ([`cordon_server_core::service::audit`]).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cordon_proto::audit_chain::ChainReport;
use cordon_proto::AuditList;
use serde::Deserialize;

use cordon_server_core::auth::Auth;
use cordon_server_core::service::audit;
use cordon_server_core::store::AuditFilter;
use cordon_server_core::timefmt::parse_rfc3339;
use cordon_server_core::{ApiError, ApiQuery, AppState};

/// Query of `GET /v1/audit`. A parameter it does not know is refused with 400 naming
/// it (trial25 F13: `actor_token_id` before it existed, or a typo, returned every record
/// with 200, as if filtered).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Host id (any case), a hostname only one host (revoked ones included) has, or an
    /// address one host reports: 404 when no host has it, 409 listing the hosts' ids
    /// when several do; 400 when empty.
    pub host: Option<String>,
    /// Only records by this actor (token name, `rule:<name>`, `system`, `agent:<id>`).
    pub actor: Option<String>,
    /// Only records by the API token with this id (the identity a name change keeps):
    /// 400 below 1, 404 when no token has it.
    pub actor_token_id: Option<i64>,
    /// Only records of this action (`quarantine`, `release`, `revoke`, ...).
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

/// The audit log (viewer): one page as JSON with `next_cursor`, or the whole selection
/// streamed as JSON lines or CSV.
#[utoipa::path(get, path = "/v1/audit", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = AuditList), (status = 400, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn list(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    auth.require(cordon_proto::Role::Viewer)?;
    let time = |t: &Option<String>| -> Result<Option<i64>, ApiError> {
        t.as_deref()
            .filter(|s| !s.is_empty())
            .map(parse_rfc3339)
            .transpose()
            .map_err(|e| ApiError::invalid(e.to_string()))
    };
    // An empty filter is refused, not dropped (trial28 LOW-2: `?host=` from a script's
    // empty variable answered with the whole log).
    for (name, v) in [("host", &q.host), ("actor", &q.actor), ("action", &q.action)] {
        if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(ApiError::invalid(format!(
                "{name} is empty: give a value, or leave {name} out for records of every {name}"
            )));
        }
    }
    let filter = AuditFilter {
        host_id: q.host.clone().filter(|s| !s.is_empty()),
        actor: q.actor.clone().filter(|s| !s.is_empty()),
        action: q.action.clone().filter(|s| !s.is_empty()),
        actor_token_id: q.actor_token_id,
        since: time(&q.since)?,
        until: time(&q.until)?,
        limit: None,
        ..Default::default()
    };
    let after = audit::cursor(q.cursor.as_deref())?;
    let order = audit::order(q.order.as_deref())?;
    let csv = match q.format.as_deref().unwrap_or("json") {
        "json" => {
            let (records, next_cursor) = audit::page(&st, &auth.0, filter, after, order, q.limit).await?;
            return Ok(Json(AuditList {
                records,
                next_cursor,
                chain_alert: audit::chain_alert(&st, &auth.0)?,
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
    let export = audit::export(&st, &auth.0, filter, after, order, q.limit, csv).await?;
    let stream = futures_util::stream::unfold(Some(export), |e| async move {
        let mut e = e?;
        match e.next_chunk().await {
            Ok(None) => None,
            Ok(Some(text)) => Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(text)), Some(e))),
            Err(err) => {
                // The status line is already sent: end the body early and log why.
                tracing::error!(error = %err, "audit export failed");
                Some((Err(std::io::Error::other(err.to_string())), None))
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

/// Query of `GET /v1/audit/verify` (an unknown parameter is refused with 400).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// A checkpoint recorded earlier (`ID:HASH`, from the server log's `audit checkpoint`
    /// line): the log must still contain that record with that hash.
    pub checkpoint: Option<String>,
}

/// Checks the audit log's hash chain (admin): names the first bad record.
#[utoipa::path(get, path = "/v1/audit/verify", params(VerifyQuery), security(("bearer" = [])),
    responses((status = 200, body = cordon_proto::audit_chain::ChainReport), (status = 400, body = cordon_proto::ErrorBody)))]
///
/// # Errors
/// The service's `ApiError` as the answer: 401 without a
/// valid credential, 403 below the role, 400/404/409 as the service says, 503 when the
/// server cannot take changes; internal failures are logged and answered with a generic
/// 500.
pub async fn verify(
    State(st): State<AppState>,
    auth: Auth,
    ApiQuery(q): ApiQuery<VerifyQuery>,
) -> Result<Json<ChainReport>, ApiError> {
    Ok(Json(audit::verify(&st, &auth.0, q.checkpoint.as_deref()).await?))
}
