//! Console sessions (issue 16): signing in with an API token opens a server-side session
//! ([`cordon_server_core::store::SessionInfo`]); the cookie carries only a random session id, never
//! the token. The server ends a session on sign-out, when its token is revoked, after
//! [`SessionLimits::idle_ms`] without use and at [`SessionLimits::absolute_ms`]. Cookies
//! are `__Host-` prefixed, HttpOnly, SameSite=Strict and Secure. A session id is not an
//! API token: the REST API's bearer authentication never looks at sessions.
//!
//! CSRF: every state-changing request carries a token derived from the session id
//! (`csrf_for`), which a page from another origin can neither read nor compute; the
//! sign-in form uses a double-submit cookie instead.

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cordon_proto::Role;
use sha2::{Digest, Sha256};

use cordon_server_core::service::{sessions, Caller};
use cordon_server_core::store::SessionLimits;
use cordon_server_core::timefmt::now_ms;
use cordon_server_core::AppState;

/// The session cookie. `__Host-`: the browser accepts it only with `Secure`, `Path=/` and
/// no `Domain`, so a sibling subdomain cannot plant or overwrite it.
pub const SESSION_COOKIE: &str = "__Host-cordon_session";
/// The sign-in form's CSRF cookie (double-submit; `__Host-` as above).
pub const LOGIN_CSRF_COOKIE: &str = "__Host-cordon_login_csrf";
/// Sent by the console's own background refreshes: they do not count as use for the idle
/// timeout (a page left open does not keep its session alive).
pub const BACKGROUND_HEADER: &str = "x-cordon-background";

/// Session lifetimes of the console.
pub fn limits() -> SessionLimits {
    SessionLimits::default()
}
/// Header the console's scripts send the CSRF token in (JSON requests).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The value of cookie `name` in the request, if any.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    for value in headers.get_all(COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k.trim() == name {
                    return Some(v.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    None
}

/// `Set-Cookie` value. `cordon server run` serves HTTPS only, so cookies are always
/// `Secure`; `HttpOnly` keeps them from scripts, `SameSite=Strict` from other sites.
pub fn set_cookie(name: &str, value: &str, max_age_secs: Option<i64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Secure");
    if let Some(age) = max_age_secs {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

/// A `Set-Cookie` value that deletes cookie `name` (empty, `Max-Age=0`).
pub fn clear_cookie(name: &str) -> String {
    set_cookie(name, "", Some(0))
}

/// The CSRF token of a session: a hash of the session secret, domain-separated.
pub fn csrf_for(session_secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"cordon console csrf v1\0");
    h.update(session_secret.as_bytes());
    hex::encode(h.finalize())
}

/// Equality that takes the same time wherever the strings differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses requests a browser marks as coming from another site (defence in depth on
/// top of SameSite cookies and CSRF tokens).
pub fn same_origin(headers: &HeaderMap) -> bool {
    !matches!(
        headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
        Some("cross-site") | Some("same-site")
    )
}

/// A signed-in console user.
#[derive(Debug, Clone)]
pub struct Session {
    /// The API token the session was opened with (id, name, role).
    pub caller: Caller,
    /// The session's CSRF token (derived from its id).
    pub csrf: String,
    /// The session id from the cookie (secret; for sign-out and the live stream's re-checks).
    pub id: String,
    /// Automatic quarantines waiting for a decision (the navigation's badge).
    pub pending_approvals: i64,
    /// The last audit verification found the chain tampered (pages only): every page
    /// shows it as `cordon audit` does, so a changed record never reads as genuine.
    pub chain_alert: Option<cordon_proto::ChainAlert>,
}

impl Session {
    /// Responder or admin: may quarantine, release, retry.
    pub fn can_act(&self) -> bool {
        self.caller.role >= Role::Responder
    }

    /// Admin: may also decide approvals and change settings.
    pub fn is_admin(&self) -> bool {
        self.caller.role >= Role::Admin
    }

    /// Whether `given` (form field or header) is this session's CSRF token.
    ///
    /// # Errors
    /// [`ConsoleReject::Csrf`] when `given` is missing or not this session's token.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), ConsoleReject> {
        match given {
            Some(g) if constant_time_eq(g.trim(), &self.csrf) => Ok(()),
            _ => Err(ConsoleReject::Csrf),
        }
    }

    /// The session's API-token identity as the REST API's caller.
    pub fn auth(&self) -> cordon_server_core::auth::Auth {
        cordon_server_core::auth::Auth(self.caller.clone())
    }
}

/// Why a console request was refused.
#[derive(Debug)]
pub enum ConsoleReject {
    /// No or an invalid session: pages redirect to sign-in, other requests get 401.
    SignIn {
        /// A page (redirect to sign-in) rather than a script request (401).
        page: bool,
    },
    /// The CSRF token is missing or wrong.
    Csrf,
    /// The request came from another origin.
    CrossSite,
    /// The session could not be checked (logged).
    Internal(String),
}

impl IntoResponse for ConsoleReject {
    fn into_response(self) -> Response {
        match self {
            ConsoleReject::SignIn { page: true } => {
                let mut r = StatusCode::SEE_OTHER.into_response();
                r.headers_mut()
                    .insert(LOCATION, HeaderValue::from_static("/console/login"));
                r
            }
            ConsoleReject::SignIn { page: false } => {
                (StatusCode::UNAUTHORIZED, "sign in to the console first").into_response()
            }
            ConsoleReject::Csrf => (
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token: reload the page and try again",
            )
                .into_response(),
            ConsoleReject::CrossSite => (StatusCode::FORBIDDEN, "cross-site request refused").into_response(),
            ConsoleReject::Internal(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
        }
    }
}

/// Looks the session cookie up; `page` picks redirect vs 401 on failure. Every request
/// counts as use except the console's background refreshes ([`BACKGROUND_HEADER`]).
///
/// # Errors
/// [`ConsoleReject::SignIn`] without a live session cookie (or a revoked token);
/// [`ConsoleReject::Internal`] when the session cannot be read.
pub async fn session_from(headers: &HeaderMap, st: &AppState, page: bool) -> Result<Session, ConsoleReject> {
    let Some(id) = cookie(headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
        return Err(ConsoleReject::SignIn { page });
    };
    let touch = !headers.contains_key(BACKGROUND_HEADER);
    match sessions::session(st, &id, now_ms(), limits(), touch).await {
        Ok(Some(info)) => Ok(Session {
            csrf: csrf_for(&id),
            id,
            pending_approvals: if page {
                pending_approvals(st, &info.caller).await
            } else {
                0
            },
            chain_alert: if page {
                cordon_server_core::service::audit::chain_alert(st, &info.caller)
                    .ok()
                    .flatten()
            } else {
                None
            },
            caller: info.caller,
        }),
        Ok(None) => Err(ConsoleReject::SignIn { page }),
        Err(e) => {
            tracing::error!(error = %e, "console: session lookup failed");
            Err(ConsoleReject::Internal("session lookup failed".into()))
        }
    }
}

/// How many approvals are pending (0 if it cannot be read: the badge is a hint, the
/// Approvals page is the truth).
async fn pending_approvals(st: &AppState, caller: &Caller) -> i64 {
    match cordon_automation::service::pending_approval_count(st, caller).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e.detail, "console: cannot count pending approvals");
            0
        }
    }
}

/// Extractor for HTML pages: without a session, redirect to the sign-in page.
pub struct PageSession(pub Session);

impl FromRequestParts<AppState> for PageSession {
    type Rejection = ConsoleReject;
    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        Ok(PageSession(session_from(&parts.headers, st, true).await?))
    }
}

/// Extractor for fragments, JSON and event streams: without a session, 401.
pub struct ApiSession(pub Session);

impl FromRequestParts<AppState> for ApiSession {
    type Rejection = ConsoleReject;
    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        if parts.method != axum::http::Method::GET && !same_origin(&parts.headers) {
            return Err(ConsoleReject::CrossSite);
        }
        Ok(ApiSession(session_from(&parts.headers, st, false).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_parse_and_csrf_differs_per_session() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; __Host-cordon_session=cordon_abc ; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("cordon_abc"));
        assert_eq!(cookie(&h, "missing"), None);
        assert_ne!(csrf_for("cordon_abc"), csrf_for("cordon_abd"));
        assert_eq!(csrf_for("x").len(), 64);
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }

    #[test]
    fn cookie_attributes() {
        let c = set_cookie(SESSION_COOKIE, "t", None);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(clear_cookie(SESSION_COOKIE).contains("Max-Age=0"));
    }

    #[test]
    fn cross_site_is_refused() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
    }
}
