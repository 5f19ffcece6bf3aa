//! One mapping from store errors to statuses: the console's pages answer with the status
//! the REST API gives for the same failure.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use cordon_server_core::{ApiError, StoreError};

use crate::ConsoleError;

/// A case: its name, a maker of the error, the status both answer with.
type Case = (&'static str, Box<dyn Fn() -> StoreError>, StatusCode);

fn statuses(e: impl Fn() -> StoreError) -> (StatusCode, StatusCode) {
    let api = ApiError::from(e()).status;
    let console = ConsoleError::from(e()).into_response().status();
    (api, console)
}

/// The fault kind: two mappings of the same store error (the console answered a unique
/// constraint's refusal with 400 where REST says 409).
#[test]
fn console_and_rest_map_store_errors_to_the_same_status() {
    let cases: Vec<Case> = vec![
        (
            "duplicate",
            Box::new(|| StoreError::Duplicate {
                what: "a token named \"ci\"".into(),
                source: sqlx::Error::Protocol("UNIQUE constraint failed: api_tokens.name".into()),
            }),
            StatusCode::CONFLICT,
        ),
        (
            "conflict",
            Box::new(|| StoreError::Conflict("changed since your view".into())),
            StatusCode::CONFLICT,
        ),
        (
            "not found",
            Box::new(|| StoreError::NotFound("no host \"x\"".into())),
            StatusCode::NOT_FOUND,
        ),
        (
            "invalid",
            Box::new(|| StoreError::Invalid("bad cursor".into())),
            StatusCode::BAD_REQUEST,
        ),
        (
            "file i/o",
            Box::new(|| StoreError::Io {
                what: "create /nonexistent/cordon.db".into(),
                source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            }),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (
            "database",
            Box::new(|| StoreError::Db(sqlx::Error::PoolTimedOut)),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        // LOW-1 (review13): a full disk and an unwritable audit log are the API's 503 with
        // its explanation; the console said 500 "internal error".
        (
            "storage full",
            Box::new(|| StoreError::Io {
                what: "write /var/lib/cordon/cordon.db".into(),
                source: std::io::Error::from_raw_os_error(28),
            }),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            "audit tampered",
            Box::new(|| StoreError::AuditTampered("record 7: hash mismatch".into())),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ];
    for (what, e, want) in cases {
        assert_eq!(statuses(e), (want, want), "{what}: (REST, console)");
    }
}

/// LOW-1 (review13): the 503 page carries the API's explanation (what happened, that
/// nothing changed, what to do), not the generic internal-error text.
#[test]
fn an_unavailable_server_says_why_on_the_console() {
    let full = || StoreError::Io {
        what: "write /var/lib/cordon/cordon.db".into(),
        source: std::io::Error::from_raw_os_error(28),
    };
    let ConsoleError::Unavailable(detail) = ConsoleError::from(full()) else {
        panic!("a full disk is not Unavailable");
    };
    assert_eq!(detail, cordon_server_core::error::STORAGE_FULL_DETAIL);
}
