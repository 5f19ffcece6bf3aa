//! The web console in-process (no browser): sign-in and cookies, CSRF, security
//! headers, escaping, roles, actions through the API path, export.

#[path = "../../cordon-server/tests/common/mod.rs"]
mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::Ctx;
use cordon_proto::HostState;
use cordon_server::console::session::csrf_for;
use http_body_util::BodyExt;
use tower::ServiceExt;

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn req(
    ctx: &Ctx,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    extra: &[(&str, &str)],
    body: Option<(&str, String)>,
) -> Resp {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        b = b.header("cookie", c);
    }
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let body = match body {
        Some((ctype, text)) => {
            b = b.header("content-type", ctype);
            Body::from(text)
        }
        None => Body::empty(),
    };
    let r = ctx.app.clone().oneshot(b.body(body).unwrap()).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).to_string(),
    }
}

/// POSTs the sign-in form with the login CSRF cookie `login_csrf`.
async fn post_login(ctx: &Ctx, login_csrf: &str, extra: &[(&str, &str)], form: String) -> Resp {
    req(
        ctx,
        "POST",
        "/console/login",
        Some(&format!("cordon_login_csrf={login_csrf}")),
        extra,
        Some(("application/x-www-form-urlencoded", form)),
    )
    .await
}

fn session(token: &str) -> String {
    format!("cordon_session={token}")
}

fn json(v: serde_json::Value) -> Option<(&'static str, String)> {
    Some(("application/json", v.to_string()))
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_needs_the_login_csrf() {
    let ctx = Ctx::new().await;
    let r = req(&ctx, "GET", "/", None, &[], None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = req(&ctx, "GET", "/console/hosts", None, &[], None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/console/login");

    let r = req(&ctx, "GET", "/console/login", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(r.headers["x-frame-options"], "DENY");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert!(
        !r.body.contains("<script>") && !r.body.contains(" style="),
        "no inline script or style"
    );
    let set = r.headers["set-cookie"].to_str().unwrap().to_string();
    let login_csrf = set.split(';').next().unwrap().split_once('=').unwrap().1.to_string();
    assert!(r.body.contains(&login_csrf));

    // Wrong or missing double-submit token: refused before the token is even looked at.
    let form = format!("token={}&csrf=nope", ctx.responder);
    let r = post_login(&ctx, &login_csrf, &[], form).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Wrong token.
    let form = format!("token=cordon_nope&csrf={login_csrf}");
    let r = post_login(&ctx, &login_csrf, &[], form).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("Unknown or revoked"));
    // Cross-site POST.
    let form = format!("token={}&csrf={login_csrf}", ctx.responder);
    let r = post_login(&ctx, &login_csrf, &[("sec-fetch-site", "cross-site")], form.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Right.
    let r = post_login(&ctx, &login_csrf, &[], form).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let cookies: Vec<String> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let sess = cookies
        .iter()
        .find(|c| c.starts_with("cordon_session="))
        .expect("session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(sess.contains(attr), "{sess} lacks {attr}");
    }
    // Revoking the token ends the session at once.
    let r = req(&ctx, "GET", "/console/hosts", Some(&session(&ctx.responder)), &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    let id = ctx
        .store()
        .authenticate(&ctx.responder)
        .await
        .unwrap()
        .unwrap()
        .token_id;
    ctx.store().revoke_api_token("test", id).await.unwrap();
    let r = req(&ctx, "GET", "/console/hosts", Some(&session(&ctx.responder)), &[], None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn pages_escape_what_hosts_report() {
    let ctx = Ctx::new().await;
    let evil = "<img src=x onerror=alert(1)>";
    let id = ctx.enroll(evil, &["<b>lab</b>"]).await;
    for path in [
        "/console/hosts".to_string(),
        format!("/console/hosts/{id}"),
        "/console/audit".to_string(),
    ] {
        let r = req(&ctx, "GET", &path, Some(&session(&ctx.viewer)), &[], None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(
            !r.body.contains("<img src=x") && !r.body.contains("<b>lab</b>"),
            "{path} is not escaped"
        );
        assert!(r.body.contains("&lt;img src=x onerror=alert(1)&gt;"), "{path}");
    }
}

#[tokio::test]
async fn viewers_get_no_buttons_and_actions_need_role_csrf_and_comment() {
    let ctx = Ctx::new().await;
    let id = ctx.enroll("web-01", &["web"]).await;
    ctx.enroll("web-02", &["web"]).await;

    let viewer = req(&ctx, "GET", "/console/hosts", Some(&session(&ctx.viewer)), &[], None).await;
    assert!(viewer.body.contains("web-01"));
    assert!(
        !viewer.body.contains("class=\"act")
            && !viewer.body.contains("action-dialog")
            && !viewer.body.contains("host-select")
    );
    let resp = req(&ctx, "GET", "/console/hosts", Some(&session(&ctx.responder)), &[], None).await;
    assert!(resp.body.contains("class=\"act quarantine\"") && resp.body.contains("action-dialog"));

    let body = serde_json::json!({"action": "quarantine", "hosts": [id], "comment": "INC-1"});
    let viewer_csrf = csrf_for(&ctx.viewer);
    let r = req(
        &ctx,
        "POST",
        "/console/actions/run",
        Some(&session(&ctx.viewer)),
        &[("x-csrf-token", &viewer_csrf)],
        json(body.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    let csrf = csrf_for(&ctx.responder);
    let r = req(
        &ctx,
        "POST",
        "/console/actions/run",
        Some(&session(&ctx.responder)),
        &[],
        json(body.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no CSRF token");
    let r = req(
        &ctx,
        "POST",
        "/console/actions/run",
        Some(&session(&ctx.responder)),
        &[("x-csrf-token", &viewer_csrf)],
        json(body.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "another session's CSRF token");
    let before = ctx.store().audit_count().await.unwrap();
    let no_comment = serde_json::json!({"action": "quarantine", "hosts": [id], "comment": " ", "allow": "bogus spec", "message": "x".repeat(257), "expires_in": "2w"});
    let r = req(
        &ctx,
        "POST",
        "/console/actions/run",
        Some(&session(&ctx.responder)),
        &[("x-csrf-token", &csrf)],
        json(no_comment),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    for field in ["comment", "allow", "message", "expires_in"] {
        assert!(v["errors"][field].is_string(), "{field} error missing: {v}");
    }
    assert_eq!(
        ctx.store().audit_count().await.unwrap(),
        before,
        "a refused request wrote nothing"
    );

    // The check step counts a label's hosts for the confirmation.
    let by_label = serde_json::json!({"action": "quarantine", "label": "web", "comment": "tier"});
    let r = req(
        &ctx,
        "POST",
        "/console/actions/check",
        Some(&session(&ctx.responder)),
        &[("x-csrf-token", &csrf)],
        json(by_label),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["count"], 2, "{v}");
    assert_eq!(v["summary"], "Quarantine 2 hosts (every host with label \"web\")?");

    let ok = serde_json::json!({"action": "quarantine", "hosts": [id], "comment": "INC-1", "allow": "https://edr.example.com\n203.0.113.0/24", "message": "hi", "expires_in": "2h"});
    let r = req(
        &ctx,
        "POST",
        "/console/actions/run",
        Some(&session(&ctx.responder)),
        &[("x-csrf-token", &csrf)],
        json(ok),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let h = ctx.store().host(&id).await.unwrap();
    assert_eq!(h.state, HostState::QuarantinePending);
    assert_eq!(h.desired.allow.len(), 2);
    assert!(h.desired.expires_at.is_some());
    let audit = ctx.audit_for(&id).await;
    let last = audit.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.actor.as_str(), last.comment.as_deref()),
        ("quarantine", "rita-responder", Some("INC-1"))
    );

    // Export through the session.
    let r = req(
        &ctx,
        "GET",
        "/console/audit/export?format=csv&action=quarantine",
        Some(&session(&ctx.viewer)),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(r.headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    assert!(
        r.body.starts_with("id,at,actor,action") && r.body.contains("INC-1"),
        "{}",
        r.body
    );
    let r = req(
        &ctx,
        "GET",
        "/console/audit/export?format=jsonl",
        Some(&session(&ctx.viewer)),
        &[],
        None,
    )
    .await;
    assert!(r
        .body
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));

    // Rules and approvals pages render for everyone signed in; deciding needs admin.
    for p in ["/console/rules", "/console/approvals", "/console/approvals?status=all"] {
        let r = req(&ctx, "GET", p, Some(&session(&ctx.viewer)), &[], None).await;
        assert_eq!(r.status, StatusCode::OK, "{p}: {}", r.body);
    }
    let form = format!("csrf={viewer_csrf}&id=1&decision=approve&comment=x");
    let r = req(
        &ctx,
        "POST",
        "/console/approvals/decide",
        Some(&session(&ctx.viewer)),
        &[],
        Some(("application/x-www-form-urlencoded", form)),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.headers["location"].to_str().unwrap().contains("error="),
        "a viewer's decision is refused"
    );
}

#[tokio::test]
async fn assets_and_event_stream() {
    let ctx = Ctx::new().await;
    let r = req(&ctx, "GET", "/console/assets/console.js", None, &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let r = req(&ctx, "GET", "/console/assets/console.css", None, &[], None).await;
    assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/css"));
    let r = req(&ctx, "GET", "/console/events", None, &[], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The API keeps answering JSON 404 for unknown paths.
    let r = req(&ctx, "GET", "/v1/nope", None, &[], None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("not_found"));
}
