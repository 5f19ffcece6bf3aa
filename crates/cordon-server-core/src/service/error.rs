//! The service layer's own error (issue 13): what failed, typed, its cause kept as
//! `#[source]`, and mapped to an HTTP answer only at the edge ([`ApiError`]'s
//! `From<ServiceError>`, the realworld-axum-sqlx model): internal failures are logged
//! with their whole chain and answered with a generic 500, a full disk is 503
//! `storage_full` (trial29 H2: never 500), a tampered audit log 503 `audit_tampered`.
//! Offline commands (`cordon server token create`) print the chain itself, with no
//! HTTP status in it.
//!
//! The audit service's writers (checkpoints, the anchor file, retention, exports) fail
//! with it; request validation and role checks still answer [`ApiError`] directly.

use axum::http::StatusCode;

use crate::error::{chain, ApiError, INTERNAL_DETAIL, STORAGE_FULL_DETAIL};
use crate::pki::PkiError;
use crate::store::StoreError;

/// A failure of a service operation.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store refused or failed (its own mapping: 404, 400, 409, 503
    /// `storage_full`/`audit_tampered`, 500).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file the service writes (the audit anchor, an audit archive) could not be
    /// written: 503 `storage_full` when the disk is full, else 500.
    #[error("cannot {what}")]
    Io {
        /// What was being done, naming the file or directory.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The CA key could not sign (500).
    #[error("cannot sign {what}")]
    Sign {
        /// What was to be signed (`the retention cut`, `the export trailer`).
        what: &'static str,
        /// The PKI error.
        #[source]
        source: PkiError,
    },
    /// A value could not be encoded as JSON (500).
    #[error("cannot encode {what}")]
    Encode {
        /// What was to be encoded.
        what: &'static str,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// The operation needs something this server was not given (500), e.g. audit
    /// retention without the CA key to sign the cut.
    #[error("{0}")]
    Unconfigured(&'static str),
    /// The audit log does not verify, so the operation (retention) was refused and
    /// nothing changed: 409 `chain_tampered`; the text names the record and what to run.
    #[error("{0}")]
    ChainTampered(String),
}

impl ServiceError {
    /// The failure of an I/O step `what` (naming the file).
    pub fn io(what: impl Into<String>, source: std::io::Error) -> ServiceError {
        ServiceError::Io {
            what: what.into(),
            source,
        }
    }

    /// Whether the audit log cannot be written because it was found tampered
    /// ([`StoreError::AuditTampered`]): the server then serves reads and refuses changes.
    pub fn is_audit_tampered(&self) -> bool {
        matches!(self, ServiceError::Store(StoreError::AuditTampered(_)))
    }

    /// Whether this failed for a full disk or database (ENOSPC, SQLite's "database or
    /// disk is full"), anywhere in its chain.
    pub fn is_storage_full(&self) -> bool {
        match self {
            ServiceError::Store(e) => e.is_storage_full(),
            ServiceError::Io { source, .. } => is_enospc(source),
            _ => false,
        }
    }
}

/// ENOSPC, the OS's "no space left on device", as the store tells it
/// ([`StoreError::is_storage_full`]).
fn is_enospc(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
}

impl From<ServiceError> for ApiError {
    /// The HTTP edge: the store's own mapping; a full disk 503 `storage_full`; 409
    /// `chain_tampered` with its text; every other failure logged with its whole cause
    /// chain and answered 500 with [`INTERNAL_DETAIL`] (no file or database text leaves
    /// the server).
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Store(s) => ApiError::from(s),
            ServiceError::ChainTampered(text) => ApiError::new(StatusCode::CONFLICT, "chain_tampered", text),
            full if full.is_storage_full() => {
                tracing::error!(error = %chain(&full), "storage full: change refused");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_full", STORAGE_FULL_DETAIL)
            }
            other => {
                tracing::error!(error = %chain(&other), "internal error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", INTERNAL_DETAIL)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// MED-2 (review13): an audit archive or anchor write that fails for a full disk was
    /// `ApiError::internal(text)`, a 500 "internal"; it is 503 `storage_full`, and the
    /// cause stays a source, not text.
    #[test]
    fn a_full_disk_under_the_service_is_503_storage_full() {
        let e = ServiceError::io(
            "write the audit archive in /var/lib/cordon/archive",
            std::io::Error::from_raw_os_error(28),
        );
        assert!(std::error::Error::source(&e).is_some(), "the OS error is the source");
        assert!(e.is_storage_full());
        let api = ApiError::from(e);
        assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!((api.error, api.detail.as_str()), ("storage_full", STORAGE_FULL_DETAIL));
        let denied = ServiceError::io("write x", std::io::Error::from_raw_os_error(13));
        assert_eq!(ApiError::from(denied).status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// The chain is the cause, without any HTTP status (an offline command prints it).
    #[test]
    fn a_service_error_prints_its_cause_not_a_status() {
        let e = ServiceError::io(
            "write the audit anchor /srv/c/audit-anchor.json",
            std::io::Error::from_raw_os_error(13),
        );
        let text = chain(&e);
        assert!(
            text.starts_with("cannot write the audit anchor /srv/c/audit-anchor.json: "),
            "{text}"
        );
        assert!(!text.contains("500") && !text.contains("internal"), "{text}");
        let tampered = ServiceError::Store(StoreError::AuditTampered("record 7".into()));
        assert!(tampered.is_audit_tampered());
        assert_eq!(ApiError::from(tampered).error, "audit_tampered");
        let refused = ApiError::from(ServiceError::ChainTampered("record 3: hash".into()));
        assert_eq!(
            (refused.status, refused.error),
            (StatusCode::CONFLICT, "chain_tampered")
        );
    }
}
