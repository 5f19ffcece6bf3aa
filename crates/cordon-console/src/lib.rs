//! The web console for analysts (design §5, issue 8): server-rendered HTML at `/`,
//! embedded in the binary, on the same axum server as the REST API.
//!
//! - Sign-in with an API token, kept in an HttpOnly, SameSite=Strict, Secure cookie and
//!   re-checked on every request; CSRF tokens on every state-changing request
//!   ([`session`]).
//! - Hosts, one host, audit (with export) ([`pages`]); the quarantine / release dialog
//!   ([`actions`]) and the approval decisions ([`automation`]) call the same service layer
//!   as the REST API (`cordon_server_core::service`, `cordon_automation::service`), so
//!   roles, validation, transactions and audit are exactly the API's.
//! - Live updates over server-sent events ([`live`]).
//! - A strict Content-Security-Policy: scripts and styles are files served from here,
//!   nothing inline.

// Issue 13: every public fallible function says how it fails.
#![warn(clippy::missing_errors_doc)]

pub mod actions;
pub mod automation;
pub mod live;
pub mod pages;
pub mod session;
pub mod status;
pub mod view;
pub mod visible;

use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::html;

use cordon_server_core::error::INTERNAL_DETAIL;
use cordon_server_core::{ApiError, AppState, StoreError};

/// Sent with every console response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The console's routes, merged into the server's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::root))
        .route("/console", get(pages::root))
        .route("/console/", get(pages::root))
        .route("/console/login", get(pages::login_form).post(pages::login))
        .route("/console/logout", post(pages::logout))
        .route("/console/hosts", get(pages::hosts))
        .route("/console/hosts/{id}", get(pages::host))
        .route("/console/audit", get(pages::audit))
        .route("/console/audit/export", get(pages::audit_export))
        .route("/console/rules", get(automation::rules))
        .route("/console/approvals", get(automation::approvals))
        .route("/console/approvals/review", post(automation::review))
        .route("/console/approvals/decide", post(automation::decide))
        .route("/console/events-log", get(automation::events))
        .route("/console/settings", post(automation::settings))
        .route("/console/actions/check", post(actions::check))
        .route("/console/actions/run", post(actions::run))
        .route("/console/events", get(live::events))
        .route(
            "/console/assets/console.css",
            get(|| asset(CSS, "text/css; charset=utf-8")),
        )
        .route(
            "/console/assets/console.js",
            get(|| asset(JS, "text/javascript; charset=utf-8")),
        )
        .layer(axum::middleware::from_fn(visible::layer))
        .layer(axum::middleware::from_fn(security_headers))
}

async fn asset(body: &'static str, ctype: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// Failures of console pages, shown as a small HTML page.
#[derive(Debug)]
pub enum ConsoleError {
    /// Refused by the session layer (sign-in needed, CSRF, cross-site).
    Reject(session::ConsoleReject),
    /// 404: no such host or page (the message says which).
    NotFound(String),
    /// 400: a malformed form or query (the message names it).
    BadRequest(String),
    /// 403: the session's role does not allow it.
    Forbidden(String),
    /// 409: the request conflicts with what is stored (a duplicate, a stale revision).
    Conflict(String),
    /// 503: the server cannot take changes now (its disk is full, `storage_full`; its
    /// audit log cannot be written, `audit_tampered`). The message is the API's own, safe
    /// to show, and says what to do.
    Unavailable(String),
    /// Logged; the page shows only a generic message.
    Internal(String),
}

impl From<session::ConsoleReject> for ConsoleError {
    fn from(r: session::ConsoleReject) -> Self {
        ConsoleError::Reject(r)
    }
}

impl From<StoreError> for ConsoleError {
    /// Through the API's one mapping ([`ApiError`]'s `From<StoreError>`: a duplicate or a
    /// conflict is 409, an internal failure is logged and generic), then its status.
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<ApiError> for ConsoleError {
    /// The service's errors; a 500's detail is already generic (the cause was logged).
    fn from(e: ApiError) -> Self {
        match e.status {
            StatusCode::NOT_FOUND => ConsoleError::NotFound(e.detail),
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => ConsoleError::Forbidden(e.detail),
            StatusCode::CONFLICT => ConsoleError::Conflict(e.detail),
            StatusCode::SERVICE_UNAVAILABLE => ConsoleError::Unavailable(e.detail),
            s if s.is_server_error() => ConsoleError::Internal(e.detail),
            _ => ConsoleError::BadRequest(e.detail),
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, msg) = match self {
            ConsoleError::Reject(r) => return r.into_response(),
            ConsoleError::NotFound(d) => (StatusCode::NOT_FOUND, d),
            ConsoleError::BadRequest(d) => (StatusCode::BAD_REQUEST, d),
            ConsoleError::Forbidden(d) => (StatusCode::FORBIDDEN, d),
            ConsoleError::Conflict(d) => (StatusCode::CONFLICT, d),
            ConsoleError::Unavailable(d) => (StatusCode::SERVICE_UNAVAILABLE, d),
            ConsoleError::Internal(d) => {
                if d != INTERNAL_DETAIL {
                    tracing::error!(error = %d, "console: internal error");
                }
                (StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_DETAIL.to_string())
            }
        };
        let page = view::layout(
            "Error",
            None,
            view::Nav::None,
            html! {
                section class="card" {
                    h1 { (status.canonical_reason().unwrap_or("Error")) }
                    p class="error" role="alert" { (msg) }
                    p { a href="/console/hosts" { "Back to hosts" } }
                }
            },
        );
        (status, Html(page.into_string())).into_response()
    }
}

/// The store-error → status tests (a file of their own: they build database errors, which
/// the service-layer check below bans from the console's sources).
#[cfg(test)]
mod error_status_tests;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;

    /// The store reads in `code` (Rust source) as `FILE:LINE: text`
    /// ([`cordon_server_core::layering::store_uses`]).
    fn store_reads(file: &str, code: &str) -> Vec<String> {
        cordon_server_core::layering::store_uses(code)
            .into_iter()
            .map(|u| format!("{file}:{}: {}", u.line, u.text))
            .collect()
    }

    /// Issue 13: the console reads and writes only through the service layer
    /// (`cordon_server_core::service`, `cordon_automation::service`): no store handle, no
    /// SQL, no REST handler (neither the server's nor automation's). The fault kind is a
    /// page reaching past the service (sessions, the live summary, host lookups, the rules
    /// page's stored labels did), which skips its role checks and error mapping. Every
    /// source file under `src/` is read (a list by hand once left one out), except the
    /// test-only file that builds database errors on purpose.
    #[test]
    fn the_console_reaches_data_only_through_the_service_layer() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut sources = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.extension().is_some_and(|e| e == "rs") && name != "error_status_tests.rs" {
                sources.push((name, std::fs::read_to_string(&path).unwrap()));
            }
        }
        assert!(
            sources.iter().any(|(n, _)| n == "visible.rs") && sources.len() >= 9,
            "the check reads every source file: {:?}",
            sources.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        // Built so that this test's own text does not match.
        let banned = [
            ["sq", "lx"].concat(),
            ["cordon_server", "::api"].concat(),
            ["cordon_automation", "::api"].concat(),
            ["SELECT", " "].concat(),
        ];
        let mut found = Vec::new();
        for (file, text) in &sources {
            for b in &banned {
                if text.contains(b.as_str()) {
                    found.push(format!("{file} uses {b:?}"));
                }
            }
            // Test modules may build a store; this file's own test holds the examples below.
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
            found.extend(store_reads(file, code));
        }
        assert!(found.is_empty(), "call a service function instead: {found:#?}");
        // The check itself finds what it is for (the rules page's read, before issue 13's fix).
        let old = "    let poisoned = poisoned_labels(\n        &st.store\n            .known_labels(Nothing)\n";
        assert_eq!(store_reads("automation.rs", old).len(), 1);
        assert_eq!(store_reads("x.rs", "let s = st\n    .store;").len(), 1);
        assert_eq!(store_reads("x.rs", "store\n    .rules().await").len(), 1);
        assert!(store_reads(
            "x.rs",
            "use cordon_server_core::store::Caller;\n    // st.store.x\n\"no-store\""
        )
        .is_empty());
    }
}
