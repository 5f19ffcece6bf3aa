//! API errors: every failure is a JSON `{error, detail}` body with a fitting status.
//!
//! Internal failures (database, corrupt rows, ...) are logged here with their whole cause
//! chain and reach the client only as [`INTERNAL_DETAIL`]: no database text leaves the
//! server (realworld-axum-sqlx's rule). Unique-constraint violations are 409.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cordon_proto::ErrorBody;

use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
/// An error answer of the API: status code and the [`ErrorBody`] `{error, detail}` it sends.
pub struct ApiError {
    /// HTTP status sent.
    pub status: StatusCode,
    /// Stable machine-readable code (`invalid_input`, `unauthorized`, `forbidden`, `not_found`, `conflict`, …).
    pub error: &'static str,
    /// Human-readable detail naming the cause (sent as is, except for 500s).
    pub detail: String,
}

impl ApiError {
    /// An error with this status, code and detail.
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            error,
            detail: detail.into(),
        }
    }
    /// 400 `invalid_input`: the request is malformed or names something impossible.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", detail)
    }
    /// 401 `unauthorized`: no valid token, session or client certificate.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
    /// 403 `forbidden`: authenticated, but the role does not allow it.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    /// 404 `not_found`: no such host, token, rule, ….
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }
    /// A 500 whose `detail` is logged, not sent: the client gets [`INTERNAL_DETAIL`].
    pub fn internal(detail: impl Into<String>) -> Self {
        tracing::error!(error = %detail.into(), "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", INTERNAL_DETAIL)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.error, self.status.as_u16(), self.detail)
    }
}

impl std::error::Error for ApiError {}

/// The whole `detail` of every 500 response.
pub const INTERNAL_DETAIL: &str = "internal error; the server log has the cause";

/// The whole `detail` of a `503 storage_full` answer: a write refused because the
/// server's disk is full ([`StoreError::is_storage_full`]; trial29 H2).
pub const STORAGE_FULL_DETAIL: &str = "nothing was changed: the server cannot write its database because its disk is \
     full; free space on the server's data directory, then try again (the server recovers by itself)";

/// `error: cause: cause ...`, for logs.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(d) => ApiError::not_found(d),
            StoreError::Invalid(d) => ApiError::invalid(d),
            StoreError::Conflict(d) => ApiError::new(StatusCode::CONFLICT, "conflict", d),
            dup @ StoreError::Duplicate { .. } => {
                tracing::debug!(error = %chain(&dup), "unique constraint");
                ApiError::new(StatusCode::CONFLICT, "conflict", dup.to_string())
            }
            StoreError::AuditTampered(d) => {
                tracing::error!(reason = %d, "audit log TAMPERED: change refused");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "audit_tampered",
                    format!("nothing was changed: the audit log cannot be written: {d}"),
                )
            }
            full if full.is_storage_full() => {
                tracing::error!(error = %chain(&full), "storage full: change refused");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_full", STORAGE_FULL_DETAIL)
            }
            other => {
                tracing::error!(error = %chain(&other), "storage failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", INTERNAL_DETAIL)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.error.to_string(),
            detail: self.detail,
        };
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_store_errors_are_500_with_a_generic_body() {
        let e = StoreError::Db(sqlx::Error::Protocol("SELECT secret FROM tokens failed".into()));
        let api = ApiError::from(e);
        assert_eq!(api.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(api.error, "internal");
        assert_eq!(api.detail, INTERNAL_DETAIL);
        assert_eq!(ApiError::internal("row 7 is garbage").detail, INTERNAL_DETAIL);
    }

    /// trial29 H2: a write refused for a full disk said 500 "internal". It is 503
    /// `storage_full`, saying nothing was changed and what to do; the cause stays in
    /// the log. (A full database, `StoreError::StorageFull`, is checked with a real
    /// SQLite refusal in the store's tests.)
    #[test]
    fn a_full_disk_is_503_storage_full() {
        let enospc = || StoreError::Io {
            what: "write /var/lib/cordon/audit-archive.partial".into(),
            source: std::io::Error::from_raw_os_error(28),
        };
        for e in [enospc(), StoreError::Report(std::sync::Arc::new(enospc()))] {
            assert!(e.is_storage_full(), "{e}");
            let api = ApiError::from(e);
            assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!((api.error, api.detail.as_str()), ("storage_full", STORAGE_FULL_DETAIL));
        }
        let other = StoreError::Io {
            what: "write x".into(),
            source: std::io::Error::from_raw_os_error(13),
        };
        assert!(!other.is_storage_full());
        assert_eq!(ApiError::from(other).status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn caller_errors_keep_their_status_and_message() {
        let api = ApiError::from(StoreError::NotFound("no host \"x\"".into()));
        assert_eq!(
            (api.status, api.detail.as_str()),
            (StatusCode::NOT_FOUND, "no host \"x\"")
        );
        let api = ApiError::from(StoreError::Conflict("busy".into()));
        assert_eq!(api.status, StatusCode::CONFLICT);
        let dup = StoreError::Duplicate {
            what: "a target named \"soc\"".into(),
            source: sqlx::Error::Protocol("UNIQUE constraint failed: notify_targets.name".into()),
        };
        let api = ApiError::from(dup);
        assert_eq!(api.status, StatusCode::CONFLICT);
        assert_eq!(api.detail, "a target named \"soc\" already exists");
    }

    /// Error kind: a cause flattened into a string. A checkpoint the CA key cannot sign
    /// keeps the PKI error (and its OS error) as its chain, and is a 500 with a generic
    /// body (it was a 400 carrying the key file's path).
    #[test]
    fn checkpoint_sign_failure_keeps_its_cause_and_is_internal() {
        use std::error::Error as _;
        let e = StoreError::Sign(crate::pki::PkiError::Io {
            what: "read",
            path: "/var/lib/cordon/ca.key".into(),
            source: std::io::Error::other("EIO"),
        });
        let pki = e.source().expect("the PKI error is the source");
        assert!(pki.source().is_some(), "{pki:?}");
        assert_eq!(
            chain(&e),
            "cannot sign the audit checkpoint: cannot read /var/lib/cordon/ca.key: EIO"
        );
        let api = ApiError::from(e);
        assert_eq!(api.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(api.detail, INTERNAL_DETAIL);
    }

    #[test]
    fn chain_lists_every_cause() {
        let e = StoreError::Report(std::sync::Arc::new(StoreError::ReportWriterStopped));
        assert_eq!(
            chain(&e),
            "status report not recorded: the status report writer stopped"
        );
    }
}
