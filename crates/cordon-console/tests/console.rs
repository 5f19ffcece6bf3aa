//! The web console in-process (no browser): sign-in and cookies, CSRF, security
//! headers, escaping, roles, actions through the API path, export.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

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
        Some(&format!("__Host-cordon_login_csrf={login_csrf}")),
        extra,
        Some(("application/x-www-form-urlencoded", form)),
    )
    .await
}

/// A signed-in console session: the `Cookie` header to send and its CSRF token.
struct Sess {
    cookie: String,
    id: String,
    csrf: String,
}

fn set_cookies(r: &Resp) -> Vec<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// Signs in through the form with API token `token`.
async fn sign_in(ctx: &Ctx, token: &str) -> Sess {
    let r = req(ctx, "GET", "/console/login", None, &[], None).await;
    let set = r.headers["set-cookie"].to_str().unwrap().to_string();
    let login_csrf = set.split(';').next().unwrap().split_once('=').unwrap().1.to_string();
    let r = post_login(ctx, &login_csrf, &[], format!("token={token}&csrf={login_csrf}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let sess = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("__Host-cordon_session="))
        .expect("session cookie");
    let pair = sess.split(';').next().unwrap().to_string();
    let id = pair.split_once('=').unwrap().1.to_string();
    Sess {
        csrf: csrf_for(&id),
        cookie: pair,
        id,
    }
}

fn json(v: serde_json::Value) -> Option<(&'static str, String)> {
    Some(("application/json", v.to_string()))
}

/// `GET path` as the signed-in session `s`.
async fn get(ctx: &Ctx, s: &Sess, path: &str) -> Resp {
    req(ctx, "GET", path, Some(&s.cookie), &[], None).await
}

/// The body of `GET path` as `s`.
async fn page_body(ctx: &Ctx, s: &Sess, path: &str) -> String {
    get(ctx, s, path).await.body
}

/// The host page of `id` as `s`.
async fn host_page(ctx: &Ctx, s: &Sess, id: &str) -> String {
    page_body(ctx, s, &format!("/console/hosts/{id}")).await
}

/// Quarantines host `id` through the REST API as the admin with the JSON `body`.
async fn quarantine(ctx: &Ctx, id: &str, body: &str) {
    let (st, v) = ctx
        .call(
            "POST",
            &format!("/v1/hosts/{id}/quarantine"),
            Some(&ctx.admin),
            Some(body),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

/// The desired-state revision of host `id`.
async fn revision(ctx: &Ctx, id: &str) -> i64 {
    ctx.store().host(id).await.unwrap().desired.revision
}

/// The agent of host `id` reports `state` for the current revision with backend
/// `backend`, after `edit` changed the report.
async fn report(
    ctx: &Ctx,
    id: &str,
    state: cordon_proto::AgentState,
    backend: &str,
    edit: impl FnOnce(&mut cordon_proto::StatusReport),
) {
    let mut r = common::status_report(revision(ctx, id).await, state, "sha256:0", backend);
    edit(&mut r);
    ctx.agent_status(id, &r).await;
}

/// trial16 MED-2: a hung server or a black-holed path keeps the stream's socket open, so
/// only silence tells it apart. The stream says how often it beats (`hello`), then sends a
/// `heartbeat` event at that interval while nothing changes (the page's bound for
/// silence is 2.5 of them). The old stream sent only comments every 15 s, which no page
/// script ever sees.
#[tokio::test]
async fn live_stream_beats_so_a_page_can_tell_silence_from_quiet() {
    let ctx = Ctx::new().await;
    let s = sign_in(&ctx, &ctx.viewer).await;
    let r = ctx
        .app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/console/events")
                .header("cookie", &s.cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut body = r.into_body();
    let mut text = String::new();
    let started = std::time::Instant::now();
    // The hello and two heartbeats within 2.5 heartbeats of 5 s (a little slack for load).
    while text.matches("event: heartbeat").count() < 2 {
        let left = std::time::Duration::from_secs(14).saturating_sub(started.elapsed());
        let frame = tokio::time::timeout(left, body.frame())
            .await
            .unwrap_or_else(|_| panic!("no two heartbeats within 14 s; the stream sent: {text:?}"))
            .expect("the stream ended")
            .unwrap();
        if let Ok(d) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&d));
        }
    }
    assert!(
        text.starts_with("event: hello\ndata: {\"heartbeat_ms\":5000}"),
        "the hello names the interval: {text:?}"
    );
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
        .find(|c| c.starts_with("__Host-cordon_session="))
        .expect("session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(sess.contains(attr), "{sess} lacks {attr}");
    }
    assert!(!sess.contains("Domain"), "__Host- cookies have no Domain: {sess}");
    let cookie = sess.split(';').next().unwrap().to_string();
    // Revoking the token ends the session at once.
    let r = req(&ctx, "GET", "/console/hosts", Some(&cookie), &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    let id = ctx
        .store()
        .authenticate(&ctx.responder)
        .await
        .unwrap()
        .unwrap()
        .token_id;
    ctx.store().revoke_api_token("test", id).await.unwrap();
    let r = req(&ctx, "GET", "/console/hosts", Some(&cookie), &[], None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        ctx.store().session_count(id).await.unwrap(),
        0,
        "revocation deletes its sessions"
    );
}

#[tokio::test]
async fn session_cookie_is_not_the_api_token_and_sessions_end_on_the_server() {
    let ctx = Ctx::new().await;
    let s = sign_in(&ctx, &ctx.responder).await;
    assert!(s.id.starts_with("sess_"), "{}", s.id);
    assert!(
        !s.cookie.contains(&ctx.responder),
        "the cookie carries the API token: {}",
        s.cookie
    );
    let r = req(&ctx, "GET", "/console/hosts", Some(&s.cookie), &[], None).await;
    assert_eq!(r.status, StatusCode::OK);
    // A session id is never accepted as an API bearer token.
    let (st, _) = ctx.call("GET", "/v1/hosts", Some(&s.id), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // The raw API token in a cookie (the old scheme) opens nothing.
    for c in [
        format!("cordon_session={}", ctx.responder),
        format!("__Host-cordon_session={}", ctx.responder),
    ] {
        let r = req(&ctx, "GET", "/console/hosts", Some(&c), &[], None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{c}");
    }
    // Sign out ends the session on the server: the old cookie no longer works.
    let r = req(
        &ctx,
        "POST",
        "/console/logout",
        Some(&s.cookie),
        &[],
        Some(("application/x-www-form-urlencoded", format!("csrf={}", s.csrf))),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(set_cookies(&r)
        .iter()
        .any(|c| c.starts_with("__Host-cordon_session=;") && c.contains("Max-Age=0")));
    let r = req(&ctx, "GET", "/console/hosts", Some(&s.cookie), &[], None).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "a signed-out session still opens the console"
    );
    let r = req(&ctx, "GET", "/console/events", Some(&s.cookie), &[], None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Idle and absolute timeouts are the server's (store clock given explicitly).
    let store = ctx.store();
    let tok = store.authenticate(&ctx.viewer).await.unwrap().unwrap().token_id;
    let limits = cordon_server::store::SessionLimits {
        idle_ms: 1_000,
        absolute_ms: 10_000,
    };
    let t0 = 1_000_000;
    let id = store.create_session(tok, t0, limits).await.unwrap();
    assert!(store.session(&id, t0 + 999, limits, false).await.unwrap().is_some());
    assert!(
        store.session(&id, t0 + 1_000, limits, false).await.unwrap().is_none(),
        "idle timeout"
    );
    // Use keeps a session alive (last use is recorded at most every 30 s), but never past
    // its absolute end.
    let big = cordon_server::store::SessionLimits {
        idle_ms: 60_000,
        absolute_ms: 100_000,
    };
    let id2 = store.create_session(tok, t0, big).await.unwrap();
    for step in 1..=3 {
        assert!(store
            .session(&id2, t0 + step * 31_000, big, true)
            .await
            .unwrap()
            .is_some());
    }
    assert!(
        store.session(&id2, t0 + 100_000, big, true).await.unwrap().is_none(),
        "absolute timeout even while in use"
    );
}

#[tokio::test]
async fn pages_escape_what_hosts_report() {
    let ctx = Ctx::new().await;
    let evil = "<img src=x onerror=alert(1)>";
    // Enrollment refuses such a hostname now (cordon_proto::hostname); a row written
    // before that rule still carries it, and an analyst's comment may carry anything.
    let id = ctx.enroll("lab1", &["<b>lab</b>"]).await;
    sqlx::query("UPDATE hosts SET hostname = $1 WHERE id = $2")
        .bind(evil)
        .bind(id.clone())
        .execute(ctx.store().pool())
        .await
        .unwrap();
    quarantine(&ctx, &id, &serde_json::json!({ "comment": evil }).to_string()).await;
    let vs = sign_in(&ctx, &ctx.viewer).await;
    for path in [
        "/console/hosts".to_string(),
        format!("/console/hosts/{id}"),
        "/console/audit".to_string(),
    ] {
        let r = req(&ctx, "GET", &path, Some(&vs.cookie), &[], None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(
            !r.body.contains("<img src=x") && !r.body.contains("<b>lab</b>"),
            "{path} is not escaped"
        );
        assert!(r.body.contains("&lt;img src=x onerror=alert(1)&gt;"), "{path}");
    }
}

/// trial8 MED 2: labels (host and enrollment-token) refuse bidi, zero-width and control
/// characters (400 naming the character and position), and text the console did not
/// write — comments, agent failure messages, legacy labels — is shown with its
/// invisible characters written out, on pages and in the review's JSON.
#[tokio::test]
async fn invisible_and_bidi_characters_are_refused_in_labels_and_shown_escaped() {
    use cordon_proto::AgentState;
    let ctx = Ctx::new().await;
    let id = ctx.enroll("db1", &[]).await;
    for (label, code, pos) in [
        (r"x\u202ey", "U+202E", 2),
        (r"z\u200bq", "U+200B", 2),
        (r"w\u0007", "U+0007", 2),
    ] {
        let before = ctx.snapshot().await;
        let (st, v) = ctx
            .call(
                "POST",
                &format!("/v1/hosts/{id}/labels"),
                Some(&ctx.admin),
                Some(&format!(r#"{{"add":["{label}"]}}"#)),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{label}: {v}");
        let msg = v.to_string();
        assert!(msg.contains(code) && msg.contains(&format!("character {pos}")), "{msg}");
        assert_eq!(ctx.snapshot().await, before);
        let (st, v) = ctx
            .call(
                "POST",
                "/v1/enrollment-tokens",
                Some(&ctx.admin),
                Some(&format!(r#"{{"labels":["{label}"],"ttl_secs":60}}"#)),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "enrollment token {label}: {v}");
        assert!(v.to_string().contains(code), "{v}");
    }
    // A comment and an agent's failure message with a right-to-left override.
    quarantine(&ctx, &id, r#"{"comment":"IR-1 \u202eSOC approved\u2066"}"#).await;
    report(&ctx, &id, AgentState::Failed, "nftables", |r| {
        r.error = Some("apply_failed".into());
        r.detail = Some("netlink\u{202e} ok: applied".into());
    })
    .await;
    let vs = sign_in(&ctx, &ctx.viewer).await;
    for path in [
        "/console/hosts".to_string(),
        format!("/console/hosts/{id}"),
        "/console/audit".to_string(),
    ] {
        let body = page_body(&ctx, &vs, &path).await;
        assert!(
            !body.contains('\u{202e}') && !body.contains('\u{2066}'),
            "{path} shows a raw bidi control"
        );
        assert!(body.contains("\\u{202e}"), "{path} hides that the text holds one");
    }
    let rs = sign_in(&ctx, &ctx.responder).await;
    let r = post_json(
        &ctx,
        &rs,
        "/console/actions/check",
        serde_json::json!({"action": "release", "hosts": [id], "comment": "x"}),
    )
    .await;
    assert!(!r.body.contains('\u{202e}'), "{}", r.body);
    assert!(j(&r)["hosts"][0]["state"].is_string(), "still JSON: {}", r.body);
}

#[tokio::test]
async fn viewers_get_no_buttons_and_actions_need_role_csrf_and_comment() {
    let ctx = Ctx::new().await;
    let id = ctx.enroll("web-01", &["web"]).await;
    ctx.enroll("web-02", &["web"]).await;
    let vs = sign_in(&ctx, &ctx.viewer).await;
    let rs = sign_in(&ctx, &ctx.responder).await;

    let viewer = req(&ctx, "GET", "/console/hosts", Some(&vs.cookie), &[], None).await;
    assert!(viewer.body.contains("web-01"));
    assert!(
        !viewer.body.contains("class=\"act")
            && !viewer.body.contains("action-dialog")
            && !viewer.body.contains("host-select")
    );
    let resp = req(&ctx, "GET", "/console/hosts", Some(&rs.cookie), &[], None).await;
    assert!(resp.body.contains("class=\"act quarantine\"") && resp.body.contains("action-dialog"));

    let body = serde_json::json!({"action": "quarantine", "hosts": [id], "comment": "INC-1"});
    let viewer_csrf = vs.csrf.clone();
    let r = req(
        &ctx,
        "POST",
        "/console/actions/run",
        Some(&vs.cookie),
        &[("x-csrf-token", &viewer_csrf)],
        json(body.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    let csrf = rs.csrf.clone();
    let r = req(
        &ctx,
        "POST",
        "/console/actions/run",
        Some(&rs.cookie),
        &[],
        json(body.clone()),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no CSRF token");
    let r = req(
        &ctx,
        "POST",
        "/console/actions/run",
        Some(&rs.cookie),
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
        Some(&rs.cookie),
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
        Some(&rs.cookie),
        &[("x-csrf-token", &csrf)],
        json(by_label),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["count"], 2, "{v}");
    assert_eq!(v["summary"], "Quarantine 2 hosts (every host with label \"web\")?");

    let rev = revision(&ctx, &id).await;
    let ok = serde_json::json!({"action": "quarantine", "hosts": [id], "comment": "INC-1", "allow": "https://edr.example.com\n203.0.113.0/24", "message": "hi", "expires_in": "2h", "revisions": {id.clone(): rev}});
    let r = req(
        &ctx,
        "POST",
        "/console/actions/run",
        Some(&rs.cookie),
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
        Some(&vs.cookie),
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
        Some(&vs.cookie),
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
        let r = req(&ctx, "GET", p, Some(&vs.cookie), &[], None).await;
        assert_eq!(r.status, StatusCode::OK, "{p}: {}", r.body);
    }
    let r = req(
        &ctx,
        "POST",
        "/console/approvals/decide",
        Some(&vs.cookie),
        &[("x-csrf-token", &viewer_csrf)],
        json(serde_json::json!({"ids": [1], "decision": "approve", "comment": "x"})),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a viewer's decision is refused: {}",
        r.body
    );
}

/// Reads a JSON reply.
fn j(r: &Resp) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("not JSON ({}): {}", r.status, r.body))
}

/// `body` with the revisions the review `v` returned: the run acts on what was reviewed.
fn reviewed(mut body: serde_json::Value, v: &serde_json::Value) -> serde_json::Value {
    body["revisions"] = v["revisions"].clone();
    body
}

async fn post_json(ctx: &Ctx, s: &Sess, path: &str, body: serde_json::Value) -> Resp {
    req(
        ctx,
        "POST",
        path,
        Some(&s.cookie),
        &[("x-csrf-token", &s.csrf)],
        json(body),
    )
    .await
}

#[tokio::test]
async fn stale_view_actions_are_refused_with_409_and_change_nothing() {
    let ctx = Ctx::new().await;
    let id = ctx.enroll("web-01", &["web"]).await;
    let rs = sign_in(&ctx, &ctx.responder).await;
    let page = req(
        &ctx,
        "GET",
        &format!("/console/hosts/{id}"),
        Some(&rs.cookie),
        &[],
        None,
    )
    .await;
    let rev = ctx.store().host(&id).await.unwrap().desired.revision;
    assert!(
        page.body.contains(&format!("data-revision=\"{rev}\"")),
        "the page carries its revision"
    );
    // Someone quarantines it from the CLI while the page is open…
    quarantine(
        &ctx,
        &id,
        r#"{"comment":"IR-1 from the CLI","allow":["192.0.2.5"],"message":"hi"}"#,
    )
    .await;
    let before = ctx.snapshot().await;
    // …and the stale page's "Quarantine" (with its revision) is refused, at check and at run.
    let body = serde_json::json!({"action": "quarantine", "hosts": [id], "comment": "stale click", "revisions": {id.clone(): rev}});
    for path in ["/console/actions/check", "/console/actions/run"] {
        let r = post_json(&ctx, &rs, path, body.clone()).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{path}: {}", r.body);
        let msg = j(&r)["errors"]["stale"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains("web-01") && msg.contains("changed"), "{msg}");
    }
    assert_eq!(ctx.snapshot().await, before, "a refused action changed nothing");
    let h = ctx.store().host(&id).await.unwrap();
    assert_eq!(h.desired.allow, vec!["192.0.2.5".to_string()], "exceptions kept");
    assert_eq!(h.desired.comment.as_deref(), Some("IR-1 from the CLI"));
    // The REST API offers the same check (if_revisions).
    let (st, v) = ctx
        .call(
            "POST",
            "/v1/release",
            Some(&ctx.admin),
            Some(&format!(
                r#"{{"hosts":["{id}"],"comment":"x","if_revisions":{{"{id}":{rev}}}}}"#
            )),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    // With the current revision it goes through.
    let now_rev = h.desired.revision;
    let ok = serde_json::json!({"action": "release", "hosts": [id], "comment": "fresh view", "revisions": {id.clone(): now_rev}});
    let r = post_json(&ctx, &rs, "/console/actions/run", ok).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// trial8 HIGH 1 / LOW 9: the run acts on exactly the reviewed set. A host that gained
/// the label after the review makes the run 409 whatever was typed; a run without
/// revisions (or missing one host's) is refused with 400; nothing is written.
#[tokio::test]
async fn runs_act_only_on_the_reviewed_hosts_and_need_their_revisions() {
    let ctx = Ctx::new().await;
    let db1 = ctx.enroll("db1", &["db"]).await;
    let db2 = ctx.enroll("db2", &["db"]).await;
    let ws = ctx.enroll("ws-wazuh", &[]).await;
    let rs = sign_in(&ctx, &ctx.responder).await;
    let by_label = serde_json::json!({"action": "quarantine", "label": "db", "comment": "IR-9"});
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", by_label.clone()).await);
    assert_eq!(v["count"], 2, "{v}");
    // Meanwhile the CLI gives ws-wazuh the label.
    let (st, body) = ctx
        .call(
            "POST",
            &format!("/v1/hosts/{ws}/labels"),
            Some(&ctx.admin),
            Some(r#"{"add":["db"]}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let before = ctx.snapshot().await;
    for typed in ["db", "2", "3"] {
        let mut run = reviewed(by_label.clone(), &v);
        run["confirm"] = serde_json::json!(typed);
        let r = post_json(&ctx, &rs, "/console/actions/run", run).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "typed {typed}: {}", r.body);
        let msg = j(&r)["errors"]["stale"].as_str().unwrap_or_default().to_string();
        assert!(
            msg.contains("the hosts with label db changed since the review: +ws-wazuh"),
            "{msg}"
        );
    }
    assert_eq!(ctx.snapshot().await, before, "the 409s changed nothing");
    // A host that lost the label is named too.
    let (st, body) = ctx
        .call(
            "POST",
            &format!("/v1/hosts/{db2}/labels"),
            Some(&ctx.admin),
            Some(r#"{"remove":["db"]}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let before = ctx.snapshot().await;
    let mut run = reviewed(by_label.clone(), &v);
    run["confirm"] = serde_json::json!("db");
    let r = post_json(&ctx, &rs, "/console/actions/run", run).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let msg = j(&r)["errors"]["stale"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("+ws-wazuh") && msg.contains("-db2"), "{msg}");
    // Runs without the reviewed revisions: none, empty, or one host missing.
    let r1 = revision(&ctx, &db1).await;
    for (body, missing) in [
        (
            serde_json::json!({"action": "quarantine", "label": "db", "comment": "IR-9", "confirm": "db"}),
            None,
        ),
        (
            serde_json::json!({"action": "quarantine", "hosts": [db1, ws], "comment": "IR-9", "revisions": {}}),
            None,
        ),
        (
            serde_json::json!({"action": "quarantine", "hosts": [db1, ws], "comment": "IR-9", "revisions": {db1.clone(): r1}}),
            Some("ws-wazuh"),
        ),
    ] {
        let r = post_json(&ctx, &rs, "/console/actions/run", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        let msg = j(&r)["errors"]["form"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains("review"), "{msg}");
        if let Some(name) = missing {
            assert!(msg.contains(name), "{msg}");
        }
    }
    assert_eq!(ctx.snapshot().await, before, "a refused run changed nothing");
    // Reviewed again, the run does exactly the reviewed set.
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", by_label.clone()).await);
    let mut run = reviewed(by_label, &v);
    run["confirm"] = serde_json::json!("db");
    let r = post_json(&ctx, &rs, "/console/actions/run", run).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let changed: Vec<String> = j(&r)["changes"].as_object().unwrap().keys().cloned().collect();
    let mut want = vec![db1, ws];
    want.sort();
    assert_eq!(changed, want);
    assert!(!ctx.store().host(&db2).await.unwrap().desired.quarantined);
}

#[tokio::test]
async fn confirmation_counts_hosts_that_change_and_label_actions_need_typing() {
    let ctx = Ctx::new().await;
    let mut ids = vec![];
    for i in 0..5 {
        ids.push(ctx.enroll(&format!("web-{i}"), &["web"]).await);
    }
    let dc = ctx.enroll("dc-01", &["web", "cordon-protected"]).await;
    let rs = sign_in(&ctx, &ctx.responder).await;
    let (st, _) = ctx
        .call(
            "POST",
            "/v1/quarantine",
            Some(&ctx.admin),
            Some(&format!(
                r#"{{"hosts":["{}","{}","{}"],"comment":"IR-7"}}"#,
                ids[0], ids[1], ids[2]
            )),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    // Release 5 selected hosts, 3 of them quarantined: "Release 3 hosts?".
    let body = serde_json::json!({"action": "release", "hosts": ids, "comment": "done"});
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", body.clone()).await);
    assert_eq!(v["summary"], "Release 3 hosts?", "{v}");
    assert_eq!((v["count"].as_u64(), v["total"].as_u64()), (Some(3), Some(5)));
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap()
            .contains("2 of the 5 hosts already released"),
        "{v}"
    );
    let r = post_json(&ctx, &rs, "/console/actions/run", reviewed(body, &v)).await;
    assert_eq!(j(&r)["count"], 3, "only the hosts that change are acted on: {}", r.body);
    // By label: the protected host is named, and the run needs the label or the count typed.
    let by_label = serde_json::json!({"action": "quarantine", "label": "web", "comment": "tier"});
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", by_label.clone()).await);
    assert_eq!(
        v["summary"], "Quarantine 6 hosts (every host with label \"web\")?",
        "{v}"
    );
    assert_eq!(v["confirm_word"], "web");
    let protected: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .filter(|w| w.starts_with("Protected"))
        .collect();
    assert!(
        protected.len() == 1 && protected[0].contains("dc-01") && protected[0].contains("cordon-protected"),
        "{v}"
    );
    let dc_impact = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["id"] == dc.as_str())
        .unwrap()
        .clone();
    assert_eq!(dc_impact["protected"], serde_json::json!(["cordon-protected"]));
    let before = ctx.snapshot().await;
    let r = post_json(&ctx, &rs, "/console/actions/run", reviewed(by_label.clone(), &v)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(j(&r)["errors"]["confirm"].is_string());
    assert_eq!(ctx.snapshot().await, before, "nothing without the typed confirmation");
    let mut typed = by_label.clone();
    typed["confirm"] = serde_json::json!("6");
    typed["revisions"] = v["revisions"].clone();
    let r = post_json(&ctx, &rs, "/console/actions/run", typed).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(j(&r)["count"], 6);
}

#[tokio::test]
async fn pages_never_claim_more_than_the_agent_confirmed() {
    use cordon_proto::AgentState;
    let ctx = Ctx::new().await;
    let failed = ctx.enroll("fail-01", &[]).await;
    let dry = ctx.enroll("dry-01", &[]).await;
    let good = ctx.enroll("good-01", &[]).await;
    for id in [&failed, &dry, &good] {
        quarantine(&ctx, id, r#"{"comment":"IR-9","allow":["192.0.2.7"]}"#).await;
    }
    report(&ctx, &failed, AgentState::Failed, "nftables", |r| {
        r.error = Some("apply_failed".into());
        r.detail = Some("netlink: operation not permitted".into());
    })
    .await;
    // An agent with enforce = false says so (`enforcing: false`, backend memory).
    report(&ctx, &dry, AgentState::Isolated, "memory", |r| r.enforcing = false).await;
    report(&ctx, &good, AgentState::Isolated, "nftables", |_| {}).await;
    let vs = sign_in(&ctx, &ctx.viewer).await;

    let page = host_page(&ctx, &vs, &failed).await;
    assert!(
        page.contains("class=\"digest bad\""),
        "a failed host is not shown in the ok colour"
    );
    assert!(
        !page.contains("Everything else, inbound and outbound, is blocked"),
        "a failed host claims a policy in force"
    );
    assert!(page.contains("not confirmed in force") && page.contains("operation not permitted"));
    assert!(page.contains("id=\"host-headline\" class=\"headline headline-failed\""));

    let page = host_page(&ctx, &vs, &dry).await;
    assert!(
        page.contains("Not enforcing") && !page.contains("<strong>In force</strong>"),
        "enforce = false shown as in force"
    );
    assert!(!page.contains("Everything else, inbound and outbound, is blocked"));

    let page = host_page(&ctx, &vs, &good).await;
    assert!(
        page.contains("<strong>In force</strong>")
            && page.contains("Everything else, inbound and outbound, is blocked")
    );
    assert!(
        page.contains("Quarantined</strong> since") && page.contains("“IR-9”"),
        "headline"
    );

    // The hosts page: a banner with clickable counts that filter the list.
    let list = page_body(&ctx, &vs, "/console/hosts").await;
    assert!(list.contains("id=\"attention-banner\""));
    assert_eq!(
        list.matches("class=\"sum state-not_enforcing\"").count(),
        1,
        "the summary counts not-enforcing hosts once"
    );
    assert!(
        list.contains("href=\"/console/hosts?attention=failed\""),
        "banner links the failed hosts"
    );
    assert!(list.contains("href=\"/console/hosts?attention=not_enforcing\""));
    assert!(
        list.contains("data-state=\"not_enforcing\""),
        "the row of a non-enforcing agent"
    );
    let only = page_body(&ctx, &vs, "/console/hosts?attention=failed").await;
    assert!(only.contains("fail-01") && !only.contains(">good-01<") && !only.contains(">dry-01<"));
}

#[tokio::test]
async fn server_messages_only_and_the_sign_in_hint_names_the_right_command() {
    let ctx = Ctx::new().await;
    let vs = sign_in(&ctx, &ctx.viewer).await;
    // Text in the URL is never shown as an alert.
    let r = req(
        &ctx,
        "GET",
        "/console/approvals?error=Your%20session%20expired.%20Sign%20in%20at%20evil.example",
        Some(&vs.cookie),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.body.contains("evil.example"), "?error= text is displayed");
    let login = req(&ctx, "GET", "/console/login", None, &[], None).await.body;
    assert!(login.contains("cordon server init") && login.contains("POST /v1/tokens"));
    assert!(
        !login.contains("(<code>cordon server token</code>"),
        "points to the enrollment-token command"
    );
    // The Events page and the approvals badge render.
    let r = req(&ctx, "GET", "/console/events-log", Some(&vs.cookie), &[], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("id=\"events-table\"") && r.body.contains("id=\"nav-approvals\""));
}

#[tokio::test]
async fn hosts_sort_server_side_audit_filters_contain_and_admins_edit_guardrails() {
    let ctx = Ctx::new().await;
    for n in ["charlie", "alpha", "bravo"] {
        ctx.enroll(n, &["lab"]).await;
    }
    let vs = sign_in(&ctx, &ctx.viewer).await;
    let order = |body: &str| -> Vec<usize> {
        ["alpha", "bravo", "charlie"]
            .iter()
            .map(|n| body.find(&format!(">{n}<")).unwrap())
            .collect()
    };
    let asc = page_body(&ctx, &vs, "/console/hosts?sort=host&dir=asc").await;
    let o = order(&asc);
    assert!(o[0] < o[1] && o[1] < o[2], "ascending");
    let desc = page_body(&ctx, &vs, "/console/hosts?sort=host&dir=desc").await;
    let o = order(&desc);
    assert!(o[0] > o[1] && o[1] > o[2], "descending");
    assert!(desc.contains("aria-sort=\"descending\""));
    // Audit: actor and host filters match what they contain, like a search.
    let (st, _) = ctx
        .call(
            "POST",
            "/v1/quarantine",
            Some(&ctx.responder),
            Some(r#"{"label":"lab","comment":"IR-5"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let r = page_body(&ctx, &vs, "/console/audit?actor=RITA&host=rav&action=quarantine").await;
    assert!(r.contains("<strong>1</strong> records"), "contains filters: {r}");
    let csv = page_body(&ctx, &vs, "/console/audit/export?format=csv&actor=rita&host=rav").await;
    assert_eq!(csv.lines().count(), 2, "{csv}");
    // Guardrails: admins only, audited.
    let body = serde_json::json!({"enabled": false});
    let r = post_json(&ctx, &vs, "/console/settings", body.clone()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let admin = sign_in(&ctx, &ctx.admin).await;
    let rules = page_body(&ctx, &admin, "/console/rules").await;
    assert!(rules.contains("id=\"kill-switch\"") && rules.contains("id=\"settings-dialog\""));
    let r = post_json(&ctx, &admin, "/console/settings", body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rules = page_body(&ctx, &vs, "/console/rules").await;
    assert!(rules.contains("off (kill switch)"));
    let audit = ctx.store().audit(&Default::default()).await.unwrap();
    assert!(audit
        .iter()
        .any(|a| a.action == "automation_stop" && a.actor == "alice-admin"));
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

/// Enrolls `n` hosts straight through the store (`host-0000` …), every tenth labelled
/// `tenth`; returns their ids in hostname order.
async fn seed_many(ctx: &Ctx, n: usize) -> Vec<String> {
    use cordon_server::store::NewHost;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let labels: Vec<String> = if i % 10 == 0 { vec!["tenth".into()] } else { vec![] };
        let t = ctx.store().create_enroll_token("test", &labels, 3600).await.unwrap();
        let id = format!("h{i:04}");
        let host = NewHost {
            id: id.clone(),
            hostname: format!("host-{i:04}"),
            os: Some("linux".into()),
            addresses: vec![format!("192.0.2.{}", i % 250)],
            agent_version: Some("test".into()),
        };
        ctx.store().enroll(&t.token, &host).await.unwrap();
        ids.push(id);
    }
    ids
}

/// The `href` of the link with `id="{id}"` (HTML entities of `&` undone), if present.
fn link(body: &str, id: &str) -> Option<String> {
    let at = body.find(&format!("id=\"{id}\""))?;
    let start = body[..at].rfind("<a ")?;
    let tag = &body[start..at];
    let h = tag.find("href=\"")? + 6;
    let end = tag[h..].find('"')? + h;
    Some(tag[h..end].replace("&amp;", "&"))
}

/// Host ids of the rows of a hosts page, in order.
fn row_ids(body: &str) -> Vec<String> {
    body.split("<tr id=\"host-")
        .skip(1)
        .map(|r| r[..r.find('"').unwrap()].to_string())
        .collect()
}

#[tokio::test]
async fn host_and_audit_lists_page_through_database_cursors_with_1000_hosts() {
    let ctx = Ctx::new().await;
    let ids = seed_many(&ctx, 1000).await;
    // A few hosts that need attention: 8 failed.
    for id in ids.iter().skip(3).step_by(137) {
        let rev = ctx.store().host(id).await.unwrap().desired.revision;
        let mut r = common::status_report(rev, cordon_proto::AgentState::Failed, "sha256:0", "nftables");
        r.error = Some("apply_failed".into());
        ctx.store().record_report(id, &r).await.unwrap();
    }
    let failed: Vec<&String> = ids.iter().skip(3).step_by(137).collect();
    assert_eq!(failed.len(), 8);
    let vs = sign_in(&ctx, &ctx.viewer).await;
    let get = |path: String| {
        let cookie = vs.cookie.clone();
        let ctx = &ctx;
        async move {
            let r = req(ctx, "GET", &path, Some(&cookie), &[], None).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
            r.body
        }
    };

    // Forward through every page: 100 rows each, every host once, in hostname order.
    let first = get("/console/hosts".into()).await;
    assert_eq!(row_ids(&first).len(), 100, "one page of 100 rows, not every host");
    assert!(first.contains("Hosts 1–100 of 1000"), "position and total");
    assert!(link(&first, "page-prev").is_none() && link(&first, "page-first").is_none());
    assert!(
        first.contains("<strong>1000</strong> hosts"),
        "summary counts the whole list"
    );
    assert!(first.contains("<strong>8</strong> failed"), "banner counts every host");
    let mut seen: Vec<String> = row_ids(&first);
    let mut page = first;
    let mut pages = 1;
    while let Some(next) = link(&page, "page-next") {
        assert!(next.contains("after="), "a cursor, not an offset: {next}");
        page = get(next).await;
        pages += 1;
        seen.extend(row_ids(&page));
        assert!(pages <= 10, "more pages than hosts");
    }
    assert_eq!(pages, 10);
    assert!(page.contains("Hosts 901–1000 of 1000"), "last page position");
    assert_eq!(seen, ids, "every host exactly once, in order");
    // And back: Previous from the last page is the ninth page.
    let prev = get(link(&page, "page-prev").unwrap()).await;
    assert_eq!(row_ids(&prev), ids[800..900].to_vec());
    assert!(prev.contains("Hosts 801–900 of 1000"));

    // Sorted by state, most urgent first, still every host once across pages.
    let mut page = get("/console/hosts?sort=state&dir=asc".into()).await;
    let mut by_state = row_ids(&page);
    assert_eq!(
        by_state[..8].iter().collect::<Vec<_>>(),
        failed,
        "failed hosts first when sorted by state"
    );
    while let Some(next) = link(&page, "page-next") {
        page = get(next).await;
        by_state.extend(row_ids(&page));
    }
    let mut sorted = by_state.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "sorting by state keeps every host once");
    // Descending by since: the failed hosts changed last, they come first.
    let page = get("/console/hosts?sort=since&dir=desc".into()).await;
    let rows = row_ids(&page);
    for f in &failed {
        assert!(rows[..8].contains(f), "{f} not among the newest states");
    }

    // Filters run in the database too: a label, a search, an attention reason.
    let page = get("/console/hosts?label=tenth".into()).await;
    assert_eq!(row_ids(&page).len(), 100);
    assert!(
        link(&page, "page-next").is_none(),
        "100 hosts carry the label: one page"
    );
    let page = get("/console/hosts?q=host-09".into()).await;
    assert_eq!(row_ids(&page).len(), 100);
    let page = get("/console/hosts?attention=failed".into()).await;
    let mut got = row_ids(&page);
    got.sort();
    assert_eq!(got.iter().collect::<Vec<_>>(), failed);
    // A cursor of another order is refused, not silently misread.
    let after = link(&get("/console/hosts".into()).await, "page-next").unwrap();
    let r = req(&ctx, "GET", &format!("{after}&sort=since"), Some(&vs.cookie), &[], None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // The attention counts in SQL agree with the per-host rule for every reason.
    let now = cordon_server::timefmt::now_ms();
    let all = ctx.store().hosts(&Default::default()).await.unwrap();
    for (a, n) in ctx.store().attention_counts(now).await.unwrap() {
        let pure = all.iter().filter(|h| a.holds(h, now)).count() as i64;
        assert_eq!(n, pure, "{}: SQL and per-host rule disagree", a.as_str());
    }

    // Audit: newest first, 100 a page, every record once.
    let total = ctx.store().audit_count().await.unwrap();
    let mut page = get("/console/audit".into()).await;
    assert!(page.contains(&format!("<strong>{total}</strong> records")));
    let rows = |b: &str| b.matches("<tr data-action=").count();
    assert_eq!(rows(&page), 100);
    let mut n = rows(&page);
    while let Some(next) = link(&page, "page-older") {
        page = get(next).await;
        n += rows(&page);
    }
    assert_eq!(n as i64, total, "every audit record once across pages");
    let newer = get(link(&page, "page-newer").unwrap()).await;
    assert_eq!(rows(&newer), 100);
    // Contains-filters in the database: the host part matches ids and hostnames.
    let page = get("/console/audit?host=host-000&action=enroll".into()).await;
    assert!(page.contains("<strong>10</strong> records"), "host-0000…host-0009");
}

#[tokio::test]
async fn quarantine_is_shown_only_when_confirmed_and_degraded_hosts_are_flagged() {
    use cordon_proto::AgentState;
    let ctx = Ctx::new().await;
    let asked = ctx.enroll("asked-01", &[]).await;
    let deg = ctx.enroll("deg-01", &[]).await;
    let fine = ctx.enroll("fine-01", &[]).await;
    for id in [&asked, &deg, &fine] {
        let (st, _) = ctx
            .call(
                "POST",
                &format!("/v1/hosts/{id}/quarantine"),
                Some(&ctx.responder),
                Some(r#"{"comment":"IR-12","allow":["https://edr.example.net","192.0.2.7"]}"#),
            )
            .await;
        assert_eq!(st, StatusCode::OK);
    }
    report(&ctx, &deg, AgentState::Isolated, "nftables", |r| {
        r.degraded = vec!["exception https://edr.example.net: does not resolve: no such host".into()];
    })
    .await;
    report(&ctx, &fine, AgentState::Isolated, "nftables", |_| {}).await;
    let vs = sign_in(&ctx, &ctx.viewer).await;

    // Asked for, not confirmed: "Quarantine requested", nothing in force.
    let p = host_page(&ctx, &vs, &asked).await;
    assert!(p.contains("Quarantine requested"), "requested state");
    assert!(
        !p.contains("<span class=\"state-text\">Quarantined</span>")
            && !p.contains("<strong>In force</strong>")
            && !p.contains("<strong>Quarantined</strong>"),
        "an unconfirmed quarantine is shown as quarantined or in force"
    );
    assert!(!p.contains("Everything else, inbound and outbound, is blocked"));
    assert!(p.contains("not confirmed in force"));

    // Degraded: in force, with what is missing, in the warning colour.
    let p = host_page(&ctx, &vs, &deg).await;
    assert!(p.contains("data-state=\"degraded\""), "degraded badge");
    assert!(p.contains("Quarantined — degraded"));
    assert!(
        p.contains("class=\"digest warn\""),
        "degraded is not shown in the ok colour"
    );
    assert!(p.contains("does not resolve: no such host"), "the reason");
    assert!(
        p.contains("class=\"extra not-in-force\""),
        "the missing exception is marked"
    );
    assert!(
        p.contains("Everything else, inbound and outbound, is blocked"),
        "fail closed: in force"
    );

    // Confirmed and complete.
    let p = host_page(&ctx, &vs, &fine).await;
    assert!(p.contains("<strong>In force</strong>") && !p.contains("data-state=\"degraded\""));

    // The banner counts and filters degraded hosts; the list shows them degraded.
    let list = page_body(&ctx, &vs, "/console/hosts").await;
    assert!(
        list.contains("href=\"/console/hosts?attention=degraded\""),
        "banner link"
    );
    assert!(list.contains("1</strong> degraded"), "degraded counted");
    let only = page_body(&ctx, &vs, "/console/hosts?attention=degraded").await;
    assert_eq!(row_ids(&only), vec![deg.clone()]);
    let now = cordon_server::timefmt::now_ms();
    let all = ctx.store().hosts(&Default::default()).await.unwrap();
    for (a, n) in ctx.store().attention_counts(now).await.unwrap() {
        let pure = all.iter().filter(|h| a.holds(h, now)).count() as i64;
        assert_eq!(n, pure, "{}: SQL and per-host rule disagree", a.as_str());
    }
}

/// Issue 16 item 3 with issue 14's re-quarantine semantics: the review step says per
/// host what the server will do — "kept" for an already quarantined host unless Replace
/// is ticked, "replaced" with it — because it is the service's own preview, and the run's
/// per-host result is exactly what the review said (nothing is written by the review).
#[tokio::test]
async fn requarantine_review_says_kept_or_replaced_and_the_server_does_exactly_that() {
    let ctx = Ctx::new().await;
    let old = ctx.enroll("old-01", &["tier"]).await;
    let fresh = ctx.enroll("fresh-01", &["tier"]).await;
    let same = ctx.enroll("same-01", &["tier"]).await;
    let rs = sign_in(&ctx, &ctx.responder).await;
    for (id, allow) in [(&old, "192.0.2.7"), (&same, "192.0.2.9")] {
        let (st, v) = ctx
            .call(
                "POST",
                &format!("/v1/hosts/{id}/quarantine"),
                Some(&ctx.admin),
                Some(&format!(
                    r#"{{"comment":"IR-1","allow":["{allow}"],"message":"call the SOC"}}"#
                )),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let change_of = |v: &serde_json::Value, id: &str| -> (String, String) {
        let h = v["hosts"].as_array().unwrap().iter().find(|h| h["id"] == id).unwrap();
        let details: Vec<&str> = h["details"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d.as_str())
            .collect();
        (h["change"].as_str().unwrap().to_string(), details.join(" | "))
    };
    let body = serde_json::json!({"action": "quarantine", "hosts": [old, fresh, same], "comment": "IR-2",
        "allow": "192.0.2.9", "message": "call the SOC"});
    // Without Replace: old-01 keeps its exception (said so), same-01 is unchanged.
    let before = ctx.snapshot().await;
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", body.clone()).await);
    assert_eq!(ctx.snapshot().await, before, "the review wrote something");
    let (c, d) = change_of(&v, &old);
    assert_eq!(c, "already_quarantined", "{v}");
    assert!(d.contains("exceptions kept: 192.0.2.7 (asked: 192.0.2.9)"), "{d}");
    assert_eq!(change_of(&v, &fresh).0, "new");
    assert_eq!(change_of(&v, &same).0, "unchanged");
    assert_eq!(v["summary"], "Quarantine 1 host?", "{v}");
    let r = post_json(&ctx, &rs, "/console/actions/run", reviewed(body.clone(), &v)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let done = j(&r);
    assert_eq!(done["changes"], serde_json::json!({fresh.clone(): "new"}), "{done}");
    let h = ctx.store().host(&old).await.unwrap();
    assert_eq!(h.desired.allow, vec!["192.0.2.7".to_string()], "kept means kept");
    // With Replace: old-01 is replaced, and the run does exactly that.
    let mut replace = body.clone();
    replace["replace"] = serde_json::json!(true);
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", replace.clone()).await);
    let (c, d) = change_of(&v, &old);
    assert_eq!(c, "replaced", "{v}");
    assert!(d.contains("exceptions replaced: 192.0.2.7 → 192.0.2.9"), "{d}");
    let said: serde_json::Map<String, serde_json::Value> = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["changes"] == true)
        .map(|h| (h["id"].as_str().unwrap().to_string(), h["change"].clone()))
        .collect();
    let r = post_json(&ctx, &rs, "/console/actions/run", reviewed(replace, &v)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        j(&r)["changes"],
        serde_json::Value::Object(said),
        "the run did what the review said"
    );
    let h = ctx.store().host(&old).await.unwrap();
    assert_eq!(h.desired.allow, vec!["192.0.2.9".to_string()]);
}

/// Issue 16 items 1 and 2 (truth fields): the host page lists every claim on the host's
/// quarantine and says plainly that a console release removes only Cordon's claim while
/// another manager's stands — before and after the release, matching the server; an
/// offline host says its actions stay pending until the agent returns.
#[tokio::test]
async fn host_page_shows_claims_and_a_release_leaves_other_managers_claims() {
    use cordon_proto::{AgentState, ClaimInfo};
    let ctx = Ctx::new().await;
    let id = ctx.enroll("ws-claims", &[]).await;
    quarantine(&ctx, &id, r#"{"comment":"IR-77"}"#).await;
    let claim = |source: &str, allow: &[&str]| ClaimInfo {
        source: source.into(),
        since: "2030-01-02T03:04:05Z".parse().ok(),
        allow: allow.iter().map(|s| s.to_string()).collect(),
        servers: vec![],
        owner: None,
    };
    report(&ctx, &id, AgentState::Isolated, "nftables", |r| {
        r.claims = vec![claim("agent", &[]), claim("wazuh", &["tcp://198.51.100.5:1514"])];
    })
    .await;
    let rs = sign_in(&ctx, &ctx.responder).await;
    let page = host_page(&ctx, &rs, &id).await;
    assert!(page.contains("id=\"claims\""), "no claims card");
    assert!(
        page.contains("Wazuh") && page.contains("tcp://198.51.100.5:1514"),
        "wazuh's claim"
    );
    assert!(page.contains("Cordon server (this console)"));
    assert!(
        page.contains("A release from this console removes only Cordon&#39;s claim")
            || page.contains("A release from this console removes only Cordon's claim"),
        "the release note"
    );
    // The release review says so too.
    let body = serde_json::json!({"action": "release", "hosts": [id], "comment": "cleaned"});
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", body.clone()).await);
    assert!(
        v["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .starts_with("Other claims: ws-claims stays isolated")),
        "{v}"
    );
    let r = post_json(&ctx, &rs, "/console/actions/run", reviewed(body, &v)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The agent drops Cordon's claim; wazuh's stands: the server says released, still
    // isolated by wazuh — and so does the page.
    report(&ctx, &id, AgentState::Isolated, "nftables", |r| {
        r.claims = vec![claim("wazuh", &["tcp://198.51.100.5:1514"])];
    })
    .await;
    let h = ctx.store().host(&id).await.unwrap();
    assert_eq!(h.state, cordon_proto::HostState::Normal);
    let page = host_page(&ctx, &rs, &id).await;
    assert!(
        page.contains("but the host stays isolated until that manager releases it"),
        "after the release the page says the host is still isolated by wazuh"
    );
    // trial8 LOW 6: the headline and the policy card say so too, never a bare "Not
    // quarantined" / "Cordon enforces no rules".
    assert!(
        page.contains("Released by Cordon — still isolated by wazuh"),
        "headline"
    );
    assert!(
        !page.contains("Not quarantined"),
        "a bare 'Not quarantined' for an isolated host"
    );
    assert!(
        !page.contains("Not quarantined: Cordon enforces no rules on this host."),
        "policy card"
    );
    assert!(!page.contains("id=\"offline-note\""), "a reporting host is not offline");
    // Offline (the server's field): the page says actions stay pending.
    sqlx::query("UPDATE hosts SET last_seen = 0 WHERE id = $1")
        .bind(id.clone())
        .execute(ctx.store().pool())
        .await
        .unwrap();
    let page = host_page(&ctx, &rs, &id).await;
    assert!(page.contains("id=\"offline-note\"") && page.contains("will stay pending until the agent returns"));
    assert!(page.contains("tag-offline"), "offline badge");
}

/// trial8 MED 4 / LOW 8: the review says "already requested, not yet confirmed" for a
/// host whose quarantine or release the agent has not confirmed (offline or pending),
/// "already quarantined (confirmed)" only for confirmed ones; an offline quarantined
/// host reads "agent offline since …" and "last confirmed in force", not "In force".
#[tokio::test]
async fn reviews_and_pages_say_requested_or_confirmed_truthfully() {
    use cordon_proto::AgentState;
    let ctx = Ctx::new().await;
    let conf = ctx.enroll("conf-1", &[]).await;
    let off = ctx.enroll("offline1", &[]).await;
    let new = ctx.enroll("new-1", &[]).await;
    for id in [&conf, &off] {
        quarantine(&ctx, id, r#"{"comment":"IR-3"}"#).await;
    }
    report(&ctx, &conf, AgentState::Isolated, "nftables", |_| {}).await;
    let offline = |id: String| async {
        sqlx::query("UPDATE hosts SET last_seen = 0 WHERE id = $1")
            .bind(id)
            .execute(ctx.store().pool())
            .await
            .unwrap();
    };
    offline(off.clone()).await;
    let rs = sign_in(&ctx, &ctx.responder).await;
    let body = serde_json::json!({"action": "quarantine", "hosts": [conf, off, new], "comment": "IR-3"});
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", body).await);
    assert_eq!(v["summary"], "Quarantine 1 host?", "{v}");
    let details = |id: &str| -> String {
        let h = v["hosts"].as_array().unwrap().iter().find(|h| h["id"] == id).unwrap();
        h["details"].to_string()
    };
    assert!(details(&conf).contains("already quarantined (confirmed)"), "{v}");
    assert!(
        details(&off).contains("already requested with these settings, not yet confirmed")
            && !details(&off).contains("already quarantined"),
        "{v}"
    );
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("1 of the 3 hosts already quarantined")
            && warnings.contains("quarantine already requested, not yet confirmed (offline1)"),
        "{warnings}"
    );
    // A release requested but not confirmed is not "already released".
    let (st, _) = ctx
        .call(
            "POST",
            &format!("/v1/hosts/{conf}/release"),
            Some(&ctx.admin),
            Some(r#"{"comment":"done"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let v = j(&post_json(
        &ctx,
        &rs,
        "/console/actions/check",
        serde_json::json!({"action": "release", "hosts": [conf], "comment": "x"}),
    )
    .await);
    assert!(
        v["summary"]
            .as_str()
            .unwrap()
            .contains("release of the host is already requested; not yet confirmed for conf-1"),
        "{v}"
    );
    assert!(
        v["hosts"][0]["details"]
            .to_string()
            .contains("release already requested, not yet confirmed"),
        "{v}"
    );
    // An offline host whose quarantine was confirmed: "last confirmed", offline since.
    let q = ctx.enroll("off-q", &[]).await;
    quarantine(&ctx, &q, r#"{"comment":"IR-4"}"#).await;
    report(&ctx, &q, AgentState::Isolated, "nftables", |_| {}).await;
    offline(q.clone()).await;
    let page = host_page(&ctx, &rs, &q).await;
    assert!(page.contains("agent offline</strong> since"), "headline: offline since");
    assert!(page.contains("Last confirmed in force"), "digest status");
    assert!(
        !page.contains("<strong>In force</strong>"),
        "present tense for an offline host"
    );
}

/// trial8 MED 5: an approvals status from the URL is checked by the server (REST 400;
/// the console shows the server's error, never the URL's text).
#[tokio::test]
async fn unknown_approval_status_is_refused_and_url_text_never_shown() {
    let ctx = Ctx::new().await;
    for (q, want) in [
        ("bogus", StatusCode::BAD_REQUEST),
        ("all", StatusCode::OK),
        ("superseded", StatusCode::OK),
    ] {
        let (st, v) = ctx
            .call("GET", &format!("/v1/approvals?status={q}"), Some(&ctx.admin), None)
            .await;
        assert_eq!(st, want, "{q}: {v}");
    }
    let vs = sign_in(&ctx, &ctx.viewer).await;
    let r = get(
        &ctx,
        &vs,
        "/console/approvals?status=Your%20session%20expired%20-%20call%20SOC%20at%20555-0100",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(!r.body.contains("555-0100"), "URL text shown");
    assert!(r.body.contains("unknown approval status"), "{}", r.body);
    let ok = page_body(&ctx, &vs, "/console/approvals?status=denied").await;
    assert!(ok.contains("Approvals"));
}

/// Issue 16 "a Retry for failed hosts": re-posting the same quarantine is `unchanged`
/// (no new revision), so the retry is the server's own: `POST /v1/hosts/{id}/retry`
/// re-sends the desired state as a new revision (exceptions, message, expiry, "asked
/// by" kept), audited with who and why, refused with 409 when there is nothing to retry
/// or the view is stale; the console's Retry (host page, failed banner filter) goes
/// through the same service with the page's revision.
#[tokio::test]
async fn retry_resends_the_desired_state_of_failed_hosts_and_refuses_when_nothing_to_retry() {
    use cordon_proto::AgentState;
    let ctx = Ctx::new().await;
    let failed = ctx.enroll("fail-r1", &[]).await;
    let fine = ctx.enroll("fine-r1", &[]).await;
    for id in [&failed, &fine] {
        quarantine(
            &ctx,
            id,
            r#"{"comment":"IR-40","allow":["192.0.2.7"],"message":"call the SOC"}"#,
        )
        .await;
    }
    report(&ctx, &failed, AgentState::Failed, "nftables", |r| {
        r.error = Some("apply_failed".into());
        r.detail = Some("netlink: operation not permitted".into());
    })
    .await;
    report(&ctx, &fine, AgentState::Isolated, "nftables", |_| {}).await;
    let before = ctx.store().host(&failed).await.unwrap();
    assert_eq!(before.state, HostState::Failed);
    let url = format!("/v1/hosts/{failed}/retry");

    // Refused without changing anything: no comment (400), a viewer (403), a stale
    // revision (409), a host with nothing to retry (409).
    let snap = ctx.snapshot().await;
    let (st, v) = ctx.call("POST", &url, Some(&ctx.responder), Some("{}")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, _) = ctx
        .call("POST", &url, Some(&ctx.viewer), Some(r#"{"comment":"x"}"#))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let stale = format!(r#"{{"comment":"x","if_revision":{}}}"#, before.desired.revision - 1);
    let (st, v) = ctx.call("POST", &url, Some(&ctx.responder), Some(&stale)).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("changed since your view"), "{v}");
    let (st, v) = ctx
        .call(
            "POST",
            &format!("/v1/hosts/{fine}/retry"),
            Some(&ctx.responder),
            Some(r#"{"comment":"x"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("nothing to retry"), "{v}");
    assert_eq!(ctx.snapshot().await, snap, "a refused retry changed something");

    // A preview changes nothing; the retry writes a new revision of the same state.
    let (st, v) = ctx
        .call(
            "POST",
            &url,
            Some(&ctx.responder),
            Some(r#"{"comment":"x","preview":true}"#),
        )
        .await;
    assert_eq!(
        (st, v["results"][0]["change"].as_str()),
        (StatusCode::OK, Some("retried"))
    );
    assert_eq!(ctx.snapshot().await, snap, "a preview wrote something");
    let body = format!(
        r#"{{"comment":"IR-40 netlink fixed","if_revision":{}}}"#,
        before.desired.revision
    );
    let (st, v) = ctx.call("POST", &url, Some(&ctx.responder), Some(&body)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["action"], "retry");
    assert_eq!(v["results"][0]["change"], "retried");
    let after = ctx.store().host(&failed).await.unwrap();
    assert_eq!(after.desired.revision, before.desired.revision + 1, "a new revision");
    assert_eq!(after.state, HostState::QuarantinePending, "not confirmed yet");
    assert_eq!(after.state_reason, None);
    for (what, a, b) in [
        (
            "allow",
            format!("{:?}", after.desired.allow),
            format!("{:?}", before.desired.allow),
        ),
        (
            "message",
            format!("{:?}", after.desired.message),
            format!("{:?}", before.desired.message),
        ),
        (
            "comment",
            format!("{:?}", after.desired.comment),
            format!("{:?}", before.desired.comment),
        ),
        (
            "asked by",
            format!("{:?}", after.desired.actor),
            format!("{:?}", before.desired.actor),
        ),
        ("quarantined", after.desired.quarantined.to_string(), "true".into()),
    ] {
        assert_eq!(a, b, "the retry changed the desired {what}");
    }
    let audit = ctx.audit_for(&failed).await;
    let rec = audit.iter().rev().find(|a| a.action == "retry").expect("retry audited");
    assert_eq!(rec.actor, "rita-responder");
    assert_eq!(rec.comment.as_deref(), Some("IR-40 netlink fixed"));
    assert!(
        rec.detail.as_deref().unwrap_or("").contains("operation not permitted"),
        "the audit names what was retried: {rec:?}"
    );
    // The agent confirms the new revision: quarantined, and nothing left to retry.
    report(&ctx, &failed, AgentState::Isolated, "nftables", |_| {}).await;
    assert_eq!(ctx.store().host(&failed).await.unwrap().state, HostState::Quarantined);
    let (st, _) = ctx
        .call("POST", &url, Some(&ctx.responder), Some(r#"{"comment":"again"}"#))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);

    // The console: a Retry button for a failed host (host page and the failed banner
    // filter), none for a confirmed quarantine; the dialog's review and run go through
    // the same service, with the page's revision.
    report(&ctx, &failed, AgentState::Failed, "nftables", |r| {
        r.error = Some("apply_failed".into());
    })
    .await;
    let rs = sign_in(&ctx, &ctx.responder).await;
    let page = host_page(&ctx, &rs, &failed).await;
    assert!(
        page.contains("data-action=\"retry\""),
        "no Retry on a failed host's page"
    );
    assert!(!host_page(&ctx, &rs, &fine).await.contains("data-action=\"retry\""));
    let list = page_body(&ctx, &rs, "/console/hosts?attention=failed").await;
    assert_eq!(row_ids(&list), vec![failed.clone()]);
    assert!(
        list.contains(&format!(
            "class=\"act retry\" data-action=\"retry\" data-hosts=\"{failed}\""
        )),
        "no Retry in the failed banner filter"
    );
    let rev = revision(&ctx, &failed).await;
    let form = serde_json::json!({"action": "retry", "hosts": [failed, fine], "comment": "IR-41",
        "revisions": {failed.clone(): rev, fine.clone(): revision(&ctx, &fine).await}});
    let snap = ctx.snapshot().await;
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", form.clone()).await);
    assert_eq!(ctx.snapshot().await, snap, "the review wrote something");
    assert_eq!(v["summary"], "Retry 1 host?", "{v}");
    let change = |id: &str| v["hosts"].as_array().unwrap().iter().find(|h| h["id"] == id).unwrap()["change"].clone();
    assert_eq!(
        (change(&failed), change(&fine)),
        ("retried".into(), "nothing_to_retry".into())
    );
    let r = post_json(&ctx, &rs, "/console/actions/run", form.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(j(&r)["changes"], serde_json::json!({failed.clone(): "retried"}));
    assert_eq!(revision(&ctx, &failed).await, rev + 1);
    // The same click again: the page's revision is stale now, so it is refused.
    let r = post_json(&ctx, &rs, "/console/actions/run", form).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(j(&r)["errors"]["stale"].as_str().unwrap().contains("fail-r1"));
}

/// Issue 16: a bad `?sort=` (or `dir`, `state`, `attention`) silently fell back to the
/// default list; the page shows the server's error instead.
#[tokio::test]
async fn bad_host_list_parameters_show_the_servers_error_not_another_list() {
    let ctx = Ctx::new().await;
    ctx.enroll("web-s1", &[]).await;
    let vs = sign_in(&ctx, &ctx.viewer).await;
    for (query, says) in [
        (
            "sort=hostnme",
            "unknown sort \"hostnme\": use one of host, state, since, by, last_seen, backend",
        ),
        ("sort=host&dir=down", "unknown dir \"down\": use asc or desc"),
        ("state=quarantine", "unknown state \"quarantine\""),
        ("attention=broken", "unknown attention \"broken\""),
    ] {
        let r = get(&ctx, &vs, &format!("/console/hosts?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
        let shown = r.body.replace("&quot;", "\"");
        assert!(shown.contains(says), "{query}: {shown}");
        assert!(!r.body.contains("web-s1"), "{query}: a list was shown anyway");
    }
    let r = get(&ctx, &vs, "/console/hosts?sort=state&dir=desc&state=normal").await;
    assert_eq!(r.status, StatusCode::OK);
}

/// Issue 16: the hosts list shows other managers' claims — "also: wazuh" next to a
/// quarantine, "Normal — still isolated by wazuh" after Cordon's release — never a
/// bare "Normal" while another claim isolates the host.
#[tokio::test]
async fn hosts_list_names_other_managers_claims_never_a_bare_normal() {
    use cordon_proto::{AgentState, ClaimInfo};
    let ctx = Ctx::new().await;
    let held = ctx.enroll("held-01", &[]).await;
    let released = ctx.enroll("released-01", &[]).await;
    let claim = |source: &str| ClaimInfo {
        source: source.into(),
        since: None,
        allow: vec![],
        servers: vec![],
        owner: None,
    };
    quarantine(&ctx, &held, r#"{"comment":"IR-50"}"#).await;
    report(&ctx, &held, AgentState::Isolated, "nftables", |r| {
        r.claims = vec![claim("agent"), claim("wazuh")];
    })
    .await;
    report(&ctx, &released, AgentState::Isolated, "nftables", |r| {
        r.claims = vec![claim("wazuh")];
    })
    .await;
    assert_eq!(ctx.store().host(&released).await.unwrap().state, HostState::Normal);
    let vs = sign_in(&ctx, &ctx.viewer).await;
    let list = page_body(&ctx, &vs, "/console/hosts").await;
    let row = |id: &str| {
        let at = list.find(&format!("<tr id=\"host-{id}\"")).unwrap();
        list[at..at + list[at..].find("</tr>").unwrap()].to_string()
    };
    let h = row(&held);
    assert!(h.contains(">Quarantined<") && h.contains("also: wazuh"), "{h}");
    let r = row(&released);
    assert!(r.contains("Normal — still isolated by wazuh"), "{r}");
    assert!(
        !r.contains("<span class=\"state-text\">Normal</span>"),
        "a bare Normal: {r}"
    );
}

/// trial11 HIGH 1 / LOW 10 / LOW 5: a rule that evaluation would not let fire (an
/// ambiguous trigger label, only protected targets, the kill switch) never reads "✓
/// active" on the Rules page or in the API, and says why in the evaluation's own words;
/// approving while the kill switch is on says that it still quarantines; a decision that
/// requested nothing never says "quarantine requested".
#[tokio::test]
async fn rules_that_cannot_fire_say_why_and_approving_under_the_kill_switch_says_what_happens() {
    let ctx = Ctx::new().await;
    let web1 = ctx.enroll("web1", &["web"]).await;
    // A near-duplicate label from before look-alikes were refused (the enrolment token
    // is created in the store directly).
    ctx.enroll("web2", &["Web"]).await;
    ctx.enroll("dc1", &["dc", "cordon-protected"]).await;
    let lab1 = ctx.enroll("lab1", &["lab"]).await;
    let rule = |name: &str, label: &str| {
        serde_json::json!({"name": name, "trigger_event_types": ["malware"], "trigger_labels": [label]}).to_string()
    };
    for (n, l) in [("malware", "web"), ("dcs", "dc"), ("lab", "lab")] {
        let (st, v) = ctx.call("POST", "/v1/rules", Some(&ctx.admin), Some(&rule(n, l))).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let ev = serde_json::json!({"host": web1, "type": "malware", "severity": "critical"}).to_string();
    let (st, v) = ctx.call("POST", "/v1/events", Some(&ctx.responder), Some(&ev)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let reason = v["events"][0]["outcomes"][0]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("ambiguous"), "{v}");
    let cannot = |v: &serde_json::Value, name: &str| -> Vec<String> {
        let r = v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap();
        serde_json::from_value(r["cannot_fire"].clone()).unwrap()
    };
    let (_, v) = ctx.call("GET", "/v1/rules", Some(&ctx.viewer), None).await;
    assert_eq!(
        cannot(&v, "malware"),
        vec![reason.clone()],
        "the API says what evaluation said: {v}"
    );
    assert!(cannot(&v, "dcs")[0].contains("protected"), "{v}");
    assert!(cannot(&v, "lab").is_empty(), "{v}");
    let (_, one) = ctx.call("GET", "/v1/rules/malware", Some(&ctx.viewer), None).await;
    assert_eq!(one["cannot_fire"][0].as_str(), Some(reason.as_str()), "{one}");
    let vs = sign_in(&ctx, &ctx.viewer).await;
    let page = page_body(&ctx, &vs, "/console/rules").await;
    assert_eq!(page.matches("✓ active").count(), 1, "only `lab` can fire: {page}");
    assert_eq!(page.matches("⚠ cannot fire").count(), 2, "{page}");
    assert!(
        page.contains("is ambiguous") && page.contains("carries a protected label"),
        "{page}"
    );

    // Kill switch: no rule can fire, every one says so.
    let (st, _) = ctx
        .call(
            "PUT",
            "/v1/automation/settings",
            Some(&ctx.admin),
            Some(r#"{"enabled": false, "cap_count": 0}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, v) = ctx.call("GET", "/v1/rules", Some(&ctx.viewer), None).await;
    assert_eq!(
        cannot(&v, "lab"),
        vec!["automation is stopped (kill switch)".to_string()],
        "{v}"
    );
    let page = page_body(&ctx, &vs, "/console/rules").await;
    assert!(!page.contains("✓ active"), "{page}");
    assert_eq!(page.matches("automation is stopped (kill switch)").count(), 3, "{page}");

    // An approval made before the kill switch: the review says approving still quarantines.
    let (st, _) = ctx
        .call(
            "PUT",
            "/v1/automation/settings",
            Some(&ctx.admin),
            Some(r#"{"enabled": true}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let ev = serde_json::json!({"host": lab1, "type": "malware", "severity": "critical"}).to_string();
    let (_, v) = ctx.call("POST", "/v1/events", Some(&ctx.responder), Some(&ev)).await;
    assert_eq!(v["events"][0]["status"], "approval_required", "{v}");
    let (_, _) = ctx
        .call(
            "PUT",
            "/v1/automation/settings",
            Some(&ctx.admin),
            Some(r#"{"enabled": false}"#),
        )
        .await;
    let admin = sign_in(&ctx, &ctx.admin).await;
    let page = page_body(&ctx, &admin, "/console/approvals").await;
    assert!(page.contains("id=\"ap-killswitch\""), "{page}");
    assert!(page.contains("it still quarantines each approved host now"), "{page}");
    let (_, v) = ctx.call("GET", "/v1/approvals", Some(&ctx.viewer), None).await;
    let id = v["approvals"][0]["id"].as_i64().unwrap();
    let r = post_json(
        &ctx,
        &admin,
        "/console/approvals/review",
        serde_json::json!({"ids": [id], "decision": "approve"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let review = j(&r);
    assert!(
        review["summary"].as_str().unwrap().contains("kill switch") && review["count"] == 1,
        "{review}"
    );
    let body =
        serde_json::json!({"ids": [id], "decision": "approve", "comment": "IR-9", "revisions": review["revisions"]});
    let r = post_json(&ctx, &admin, "/console/approvals/decide", body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        j(&r)["summary"].as_str().unwrap().contains("quarantine requested"),
        "{}",
        r.body
    );
    assert!(ctx.store().host(&lab1).await.unwrap().desired.quarantined);
    // The same approval again: nothing was requested, and the summary does not say it was.
    let r = post_json(&ctx, &admin, "/console/approvals/decide", body).await;
    if r.status == StatusCode::OK {
        let summary = j(&r)["summary"].as_str().unwrap().to_string();
        assert!(!summary.contains("quarantine requested"), "{summary}");
    }
}

/// Three pending approvals (cap 0: every automatic quarantine asks a human) for hosts
/// with label `ws`, protected label `dc`. Returns the approval ids by hostname.
async fn three_approvals(ctx: &Ctx, names: &[&str]) -> std::collections::BTreeMap<String, (String, i64)> {
    let (st, v) = ctx
        .call(
            "PUT",
            "/v1/automation/settings",
            Some(&ctx.admin),
            Some(r#"{"cap_count": 0, "protected_labels": ["dc"]}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let rule = r#"{"name":"edr","trigger_event_types":["malware"],"trigger_labels":["ws"]}"#;
    let (st, v) = ctx.call("POST", "/v1/rules", Some(&ctx.admin), Some(rule)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let mut out = std::collections::BTreeMap::new();
    for n in names {
        let id = ctx.enroll(n, &["ws"]).await;
        let ev = format!(r#"{{"host":"{n}","type":"malware","severity":"critical","source":"edr"}}"#);
        let (st, v) = ctx.call("POST", "/v1/events", Some(&ctx.responder), Some(&ev)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["events"][0]["status"], "approval_required", "{v}");
        out.insert(n.to_string(), (id, 0));
    }
    let (_, v) = ctx.call("GET", "/v1/approvals", Some(&ctx.admin), None).await;
    for a in v["approvals"].as_array().unwrap() {
        for (id, aid) in out.values_mut() {
            if a["host_id"] == id.as_str() {
                *aid = a["id"].as_i64().unwrap();
            }
        }
    }
    out
}

/// console10 leftover: a revoked host's pending approvals still counted in the nav badge
/// (and stayed pending: approving one could never act). Revocation supersedes them, each
/// audited (`approval_superseded` by the revoking token), their events `superseded`.
#[tokio::test]
async fn revoking_a_host_supersedes_its_pending_approvals() {
    let ctx = Ctx::new().await;
    let ap = three_approvals(&ctx, &["ws-gone", "ws-kept"]).await;
    let (gone, kept) = (&ap["ws-gone"], &ap["ws-kept"]);
    let adm = sign_in(&ctx, &ctx.admin).await;
    let badge = |body: &str| part(body, "id=\"nav-approvals\"", "</span>").to_string();
    assert!(
        badge(&page_body(&ctx, &adm, "/console/hosts").await).contains(">2"),
        "two pending first"
    );
    let (st, v) = ctx
        .call(
            "POST",
            &format!("/v1/hosts/{}/revoke", gone.0),
            Some(&ctx.admin),
            Some(r#"{"comment":"decommissioned"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let b = badge(&page_body(&ctx, &adm, "/console/hosts").await);
    assert!(
        b.contains(">1") && b.contains("1 pending"),
        "only ws-kept's approval counts: {b}"
    );
    let (_, v) = ctx
        .call("GET", "/v1/approvals?status=pending", Some(&ctx.admin), None)
        .await;
    let pending: Vec<i64> = v["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(pending, vec![kept.1], "{v}");
    let (_, v) = ctx
        .call("GET", "/v1/approvals?status=superseded", Some(&ctx.admin), None)
        .await;
    let a = &v["approvals"][0];
    assert_eq!(a["id"].as_i64(), Some(gone.1), "{v}");
    assert_eq!(a["decision_comment"], "host revoked", "{v}");
    assert!(a["decided_by_token_id"].is_i64(), "decided by the revoking token: {v}");
    let (_, ev) = ctx
        .call("GET", "/v1/events?status=superseded", Some(&ctx.admin), None)
        .await;
    let evs = ev["events"].as_array().unwrap();
    assert!(evs.len() == 1 && evs[0]["host_id"] == gone.0.as_str(), "{ev}");
    let (_, au) = ctx
        .call("GET", &format!("/v1/audit?host={}", gone.0), Some(&ctx.admin), None)
        .await;
    let rec = au["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "approval_superseded")
        .unwrap_or_else(|| panic!("no approval_superseded record: {au}"));
    assert!(rec["actor_token_id"].is_i64(), "{rec}");
    assert!(
        rec["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("approval {} superseded: host revoked", gone.1)),
        "{rec}"
    );
    // Approving it afterwards does nothing and says how it was decided, by whom and when
    // (trial30 LOW-6: only "not_pending", and the CLI exited 0).
    let body = serde_json::json!({"ids": [gone.1], "comment": "approve anyway"}).to_string();
    let (st, v) = ctx
        .call("POST", "/v1/approvals/approve", Some(&ctx.admin), Some(&body))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let r = &v["results"][0];
    assert_eq!(r["status"], "not_pending", "{v}");
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("already superseded by alice-admin (token ")
            && reason.contains(" at 20")
            && reason.ends_with(": host revoked: nothing was done"),
        "{v}"
    );
}

/// trial8 MED 3: the approvals review says per approval what approving does now — will
/// quarantine, already quarantined (no change), now protected (refused), revoked — from
/// the server, and its header counts what will change; the decision acts only on the
/// reviewed set (400 without the review's revisions, 409 when a host moved on) and does
/// what the review said (a host that became protected is not quarantined).
#[tokio::test]
async fn approvals_review_says_per_approval_what_changes_and_decides_only_the_reviewed_set() {
    let ctx = Ctx::new().await;
    let ap = three_approvals(&ctx, &["ws-new", "ws-done", "ws-dc"]).await;
    let (new, done, dc) = (&ap["ws-new"], &ap["ws-done"], &ap["ws-dc"]);
    // Since the events: an analyst quarantined ws-done; ws-dc became a domain controller.
    quarantine(&ctx, &done.0, r#"{"comment":"IR-7 by hand"}"#).await;
    let (st, v) = ctx
        .call(
            "POST",
            &format!("/v1/hosts/{}/labels", dc.0),
            Some(&ctx.admin),
            Some(r#"{"add":["dc"]}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let a = sign_in(&ctx, &ctx.admin).await;
    let ids = serde_json::json!([new.1, done.1, dc.1]);
    let r = post_json(
        &ctx,
        &a,
        "/console/approvals/review",
        serde_json::json!({"ids": ids, "decision": "approve"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = j(&r);
    assert_eq!(v["count"], 1, "{v}");
    assert_eq!(v["total"], 3, "{v}");
    let summary = v["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("1 host will be quarantined (ws-new ({}))", &new.0[..8]))
            && summary.contains("1 of the 3"),
        "{summary}"
    );
    assert_eq!(v["button"], "Approve and quarantine 1 host", "{v}");
    let effect = |name: &str| {
        v["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["hostname"] == name)
            .map(|x| {
                (
                    x["effect"].as_str().unwrap().to_string(),
                    x["words"].as_str().unwrap().to_string(),
                )
            })
            .unwrap()
    };
    assert_eq!(effect("ws-new").0, "will_quarantine");
    assert_eq!(
        effect("ws-done"),
        (
            "already_quarantined".into(),
            "quarantine already requested, not yet confirmed (no change)".into()
        )
    );
    assert_eq!(
        effect("ws-dc"),
        (
            "protected".into(),
            "host now protected by label dc — will be refused".into()
        )
    );
    // A deny review counts every pending approval and says nothing happens to the host.
    let d = j(&post_json(
        &ctx,
        &a,
        "/console/approvals/review",
        serde_json::json!({"ids": ids, "decision": "deny"}),
    )
    .await);
    assert_eq!(d["count"], 3, "{d}");
    // Without the review's revisions: refused, nothing decided.
    let go = |revisions: serde_json::Value| serde_json::json!({"ids": ids, "decision": "approve", "comment": "IR-9 confirmed", "revisions": revisions});
    let r = post_json(&ctx, &a, "/console/approvals/decide", go(serde_json::json!({}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("review it first"), "{}", r.body);
    // A host that moved on since the review (quarantined and released by hand): 409.
    quarantine(&ctx, &new.0, r#"{"comment":"x"}"#).await;
    let (st, _) = ctx
        .call(
            "POST",
            &format!("/v1/hosts/{}/release", new.0),
            Some(&ctx.admin),
            Some(r#"{"comment":"x"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let r = post_json(&ctx, &a, "/console/approvals/decide", go(v["revisions"].clone())).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("ws-new changed since your review"), "{}", r.body);
    assert_eq!(
        ctx.store().pending_approval_count().await.unwrap(),
        3,
        "a stale decision decided"
    );
    // The same through the REST API with if_revisions.
    let body = serde_json::json!({"ids": ids, "comment": "x", "if_revisions": v["revisions"]}).to_string();
    let (st, _) = ctx
        .call("POST", "/v1/approvals/approve", Some(&ctx.admin), Some(&body))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    // Reviewed again: the decision does what the review said.
    let v = j(&post_json(
        &ctx,
        &a,
        "/console/approvals/review",
        serde_json::json!({"ids": ids, "decision": "approve"}),
    )
    .await);
    let r = post_json(&ctx, &a, "/console/approvals/decide", go(v["revisions"].clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let s = j(&r)["summary"].as_str().unwrap().to_string();
    assert!(s.starts_with("Approved 1 of 3"), "{s}");
    assert!(
        // The decision's result says what was done (trial36 LOW-D: "will be refused"
        // after the fact; changed on purpose).
        s.contains("ws-dc: host protected by label dc — refused, not quarantined")
            && s.contains("ws-done: quarantine already"),
        "{s}"
    );
    let store = ctx.store();
    assert!(store.host(&new.0).await.unwrap().desired.quarantined);
    assert!(
        !store.host(&dc.0).await.unwrap().desired.quarantined,
        "a protected host was quarantined"
    );
    assert_eq!(
        store.host(&done.0).await.unwrap().desired.comment.as_deref(),
        Some("IR-7 by hand")
    );
    // The page's header count is live, as the rows are (it never lags them).
    let page = page_body(&ctx, &a, "/console/approvals").await;
    assert!(
        page.contains(r#"id="approvals-head" data-live"#) && page.contains(r#"id="approvals-count">0<"#),
        "{page}"
    );
}

/// trial8 LOW 10: the audit page's host search found `bulk20`'s records for `db1`
/// because its random id contains `db1`. It matches the exact id, an id prefix of at
/// least 8 characters, or part of the hostname — never an arbitrary part of an id.
#[tokio::test]
async fn audit_host_search_matches_ids_exactly_or_by_prefix_never_inside() {
    use cordon_server_core::store::AuditFilter;
    let ctx = Ctx::new().await;
    let bulk = ctx.enroll("bulk20", &[]).await;
    let db = ctx.enroll("db1", &[]).await;
    for id in [&bulk, &db] {
        quarantine(&ctx, id, r#"{"comment":"IR-10"}"#).await;
    }
    let hosts_found = |q: String| {
        let store = ctx.store();
        async move {
            let f = AuditFilter {
                host_contains: Some(q),
                ..Default::default()
            };
            let mut ids: Vec<String> = store
                .audit(&f)
                .await
                .unwrap()
                .into_iter()
                .filter_map(|r| r.host_id)
                .collect();
            ids.sort();
            ids.dedup();
            ids
        }
    };
    let inside: String = bulk.chars().skip(3).take(4).collect();
    assert_eq!(
        hosts_found(inside.clone()).await,
        Vec::<String>::new(),
        "{inside} in {bulk}"
    );
    let short: String = bulk.chars().take(7).collect();
    assert_eq!(hosts_found(short).await, Vec::<String>::new());
    let prefix: String = bulk.chars().take(8).collect();
    assert_eq!(hosts_found(prefix).await, vec![bulk.clone()]);
    assert_eq!(hosts_found(bulk.to_uppercase()).await, vec![bulk.clone()]);
    assert_eq!(hosts_found("ULK2".into()).await, vec![bulk.clone()]);
    assert_eq!(hosts_found("db1".into()).await, vec![db.clone()]);
    // The console's audit page searches the same way.
    let s = sign_in(&ctx, &ctx.viewer).await;
    let page = page_body(&ctx, &s, &format!("/console/audit?host={inside}")).await;
    assert!(!page.contains(&format!("/console/hosts/{bulk}")), "{page}");
    let page = page_body(&ctx, &s, "/console/audit?host=bulk").await;
    assert!(page.contains(&format!("/console/hosts/{bulk}")), "{page}");
}

/// trial25 F9: the audit page's Host column named two hosts called `web2` both plain
/// `web2`, so a search for it read as one host's records. Hosts sharing their hostname
/// (a revoked one included) are named `web2 (shortid)`; a unique name stays plain.
#[tokio::test]
async fn audit_page_names_hosts_that_share_a_hostname_with_their_short_id() {
    let ctx = Ctx::new().await;
    let a = ctx.enroll("web2", &[]).await;
    let b = ctx.enroll("WEB2", &[]).await;
    let c = ctx.enroll("db9", &[]).await;
    let s = sign_in(&ctx, &ctx.viewer).await;
    let page = page_body(&ctx, &s, "/console/audit?host=web2").await;
    for id in [&a, &b] {
        let short: String = id.chars().take(8).collect();
        assert!(
            page.contains(&format!(">{short}</code>)")),
            "{id} is named with its short id: {page}"
        );
    }
    let page = page_body(&ctx, &s, "/console/audit?host=db9").await;
    let short: String = c.chars().take(8).collect();
    assert!(page.contains(&format!("/console/hosts/{c}")), "{page}");
    assert!(
        !page.contains(&format!(">{short}</code>)")),
        "a unique name stays plain: {page}"
    );
}

/// trial11 MED 2 / MED 3: one label check for host labels and protected labels — no
/// bidi or invisible characters, and no look-alike (case, spaces, width, confusable
/// letters) of an existing label: 409 naming the existing one, nothing changed.
#[tokio::test]
async fn look_alike_and_bidi_labels_are_refused_for_hosts_and_protected_labels() {
    let ctx = Ctx::new().await;
    let web1 = ctx.enroll("web1", &["web"]).await;
    let dc1 = ctx.enroll("dc1", &["domain-controller"]).await;
    let add = |l: &str| serde_json::json!({"add": [l]}).to_string();
    for l in ["Web", "WEB", "w\u{0435}b", "ｗｅｂ"] {
        let (st, v) = ctx
            .call(
                "POST",
                &format!("/v1/hosts/{dc1}/labels"),
                Some(&ctx.responder),
                Some(&add(l)),
            )
            .await;
        assert_eq!(st, StatusCode::CONFLICT, "{l:?}: {v}");
        assert!(v.to_string().contains("existing label \\\"web\\\""), "{l:?}: {v}");
    }
    let (st, v) = ctx
        .call(
            "POST",
            &format!("/v1/hosts/{dc1}/labels"),
            Some(&ctx.responder),
            Some(&add("web")),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "the label itself is fine: {v}");
    let labels = ctx.store().host(&web1).await.unwrap().labels;
    assert_eq!(labels, vec!["web".to_string()]);
    let before = ctx.store().automation_settings().await.unwrap().protected_labels;
    for (list, want) in [
        (
            serde_json::json!(["cordon-protected", "domain-controller\u{202e}"]),
            StatusCode::BAD_REQUEST,
        ),
        (serde_json::json!(["Domain-Controller"]), StatusCode::CONFLICT),
        (serde_json::json!(["d\u{043e}main-controller"]), StatusCode::CONFLICT),
        (serde_json::json!(["x1", "X1"]), StatusCode::BAD_REQUEST),
    ] {
        let body = serde_json::json!({"protected_labels": list}).to_string();
        let (st, v) = ctx
            .call("PUT", "/v1/automation/settings", Some(&ctx.admin), Some(&body))
            .await;
        assert_eq!(st, want, "{list}: {v}");
        assert_eq!(
            ctx.store().automation_settings().await.unwrap().protected_labels,
            before
        );
    }
    // Through the console's guardrails dialog: the same refusal.
    let admin = sign_in(&ctx, &ctx.admin).await;
    let r = post_json(
        &ctx,
        &admin,
        "/console/settings",
        serde_json::json!({"protected_labels": ["domain-controller\u{202e}"]}),
    )
    .await;
    assert!(r.status.is_client_error(), "{}: {}", r.status, r.body);
    let body = serde_json::json!({"protected_labels": ["cordon-protected", "domain-controller"]}).to_string();
    let (st, v) = ctx
        .call("PUT", "/v1/automation/settings", Some(&ctx.admin), Some(&body))
        .await;
    assert_eq!(st, StatusCode::OK, "exact labels are fine: {v}");
}

/// trial13 HIGH 1: once a verification found the audit chain tampered, every console page
/// says so (as `cordon audit` does) — a changed record never reads as genuine.
#[tokio::test]
async fn a_tampered_audit_chain_is_shown_on_every_page() {
    let ctx = Ctx::new().await;
    let id = ctx.enroll("web1", &[]).await;
    quarantine(&ctx, &id, r#"{"comment":"IR-9"}"#).await;
    let s = sign_in(&ctx, &ctx.viewer).await;
    assert!(!page_body(&ctx, &s, "/console/hosts")
        .await
        .contains("AUDIT CHAIN TAMPERED"));
    sqlx::query("UPDATE audit SET comment = 'nothing to see' WHERE comment = 'IR-9'")
        .execute(ctx.store().pool())
        .await
        .unwrap();
    let (st, v) = ctx.call("GET", "/v1/audit/verify", Some(&ctx.admin), None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    for path in ["/console/hosts", "/console/audit", &format!("/console/hosts/{id}")] {
        let body = page_body(&ctx, &s, path).await;
        assert!(body.contains("AUDIT CHAIN TAMPERED since record"), "{path}: no banner");
    }
}

/// trial13 MED 1 through the console: the guardrails dialog's protected labels are checked
/// against every label known anywhere, not only host labels — `WS` next to a rule's
/// trigger label `ws` and `quarantine` next to the server's own `Quarantine` are refused
/// (409) naming the existing label, once-escaped plain text; `w eb` is a 400 about the
/// space; nothing is saved.
#[tokio::test]
async fn console_protected_labels_refuse_look_alikes_of_rule_and_server_labels() {
    let ctx = Ctx::new().await;
    let rule = serde_json::json!({"name": "edr", "trigger_event_types": ["malware"], "trigger_labels": ["ws"]});
    let (st, v) = ctx
        .call("POST", "/v1/rules", Some(&ctx.admin), Some(&rule.to_string()))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let admin = sign_in(&ctx, &ctx.admin).await;
    let before = ctx.store().automation_settings().await.unwrap().protected_labels;
    for (l, status, says) in [
        ("WS", 409, "existing label \"ws\""),
        ("quarantine", 409, "existing label \"Quarantine\""),
        ("w eb", 400, "contains a space"),
    ] {
        let r = post_json(
            &ctx,
            &admin,
            "/console/settings",
            serde_json::json!({"protected_labels": [l]}),
        )
        .await;
        assert_eq!(r.status.as_u16(), status, "{l:?}: {}", r.body);
        let reply: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{l:?}: {error}");
        assert!(
            !error.contains("&amp;") && !error.contains("&quot;"),
            "escaped once: {error}"
        );
        assert_eq!(
            ctx.store().automation_settings().await.unwrap().protected_labels,
            before
        );
    }
}

/// trial13 MED 2: duplicate hostname and address flags were computed by the server but
/// never shown, and two hosts of one name were indistinguishable in reviews. The hosts
/// table, the host page, the action review and the approvals (page and review) show each
/// flag as a badge with its reason ("duplicate hostname: also <short id>"), and every
/// review names its hosts with a short id next to the hostname.
#[tokio::test]
async fn duplicate_flags_and_short_ids_are_shown_wherever_hosts_are_listed() {
    let ctx = Ctx::new().await;
    let ap = three_approvals(&ctx, &["db1", "ws-other"]).await;
    let a = ap["db1"].0.clone();
    let b = ctx.enroll("DB1", &["ws"]).await;
    let ev = r#"{"host":"DB1","type":"malware","severity":"critical","source":"edr"}"#;
    let (st, v) = ctx.call("POST", "/v1/events", Some(&ctx.responder), Some(ev)).await;
    // The shared name is refused to automation; the id works.
    assert_eq!(st, StatusCode::OK, "{v}");
    let short = |id: &str| id.chars().take(8).collect::<String>();
    let (sa, sb) = (short(&a), short(&b));
    assert_ne!(sa, sb, "two hosts' short ids differ");
    let admin = sign_in(&ctx, &ctx.admin).await;
    // Hosts table: each row carries its short id and the flag naming the other.
    let page = page_body(&ctx, &admin, "/console/hosts").await;
    for (me, other) in [(&a, &sb), (&b, &sa)] {
        let row = page
            .split(&format!("<tr id=\"host-{me}\""))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_default()
            .to_string();
        assert!(row.contains(&format!(">{}</code>", short(me))), "{row}");
        assert!(
            row.contains("data-flag=\"duplicate_hostname\"")
                && row.contains(&format!("duplicate hostname: also {other}")),
            "{row}"
        );
    }
    // Host page.
    let host = host_page(&ctx, &admin, &a).await;
    assert!(
        host.contains("id=\"host-flags\"") && host.contains(&format!("duplicate hostname: also {sb}")),
        "{host}"
    );
    // Action review: per host the short id and the flags; the sentence tells them apart.
    let body = serde_json::json!({"action": "quarantine", "hosts": [a, b], "comment": "IR-9"});
    let v = j(&post_json(&ctx, &admin, "/console/actions/check", body).await);
    for (id, other) in [(&a, &sb), (&b, &sa)] {
        let h = v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["id"] == id.as_str())
            .unwrap();
        assert_eq!(h["short_id"], short(id), "{v}");
        assert_eq!(
            h["flags"],
            serde_json::json!([format!("duplicate hostname: also {other}")]),
            "{v}"
        );
    }
    let names = v["hostnames"].to_string();
    assert!(
        names.contains(&format!("db1 ({sa})")) && names.contains(&format!("DB1 ({sb})")),
        "{names}"
    );
    // Approvals page and review.
    let page = page_body(&ctx, &admin, "/console/approvals").await;
    assert!(
        page.contains(&format!(">{sa}</code>")) && page.contains(&format!("duplicate hostname: also {sb}")),
        "{page}"
    );
    let ids = serde_json::json!([ap["db1"].1, ap["ws-other"].1]);
    let r = post_json(
        &ctx,
        &admin,
        "/console/approvals/review",
        serde_json::json!({"ids": ids, "decision": "approve"}),
    )
    .await;
    let v = j(&r);
    assert_eq!(v["hosts"][&a]["short_id"], sa, "{v}");
    assert_eq!(
        v["hosts"][&a]["flags"],
        serde_json::json!([format!("duplicate hostname: also {sb}")]),
        "{v}"
    );
    assert_eq!(v["hosts"][&ap["ws-other"].0]["flags"], serde_json::json!([]), "{v}");
}

/// trial19 MED-B: a flagged twin was named bare ("web1") in the approval review's header
/// when its twin was not among the listed approvals, so "web1" read as either host; and
/// the hosts table gave the selection dialog no way to tell a flagged row. Every
/// sentence names a flagged host with its short id (approval review summary, action
/// review, the buttons' `data-names`), and flagged rows carry `data-flagged`.
#[tokio::test]
async fn a_flagged_host_is_named_with_its_short_id_even_without_its_twin() {
    let ctx = Ctx::new().await;
    let ap = three_approvals(&ctx, &["db1", "ws-other"]).await;
    let a = ap["db1"].0.clone();
    let b = ctx.enroll("DB1", &["ws"]).await;
    let sa: String = a.chars().take(8).collect();
    let admin = sign_in(&ctx, &ctx.admin).await;
    let r = post_json(
        &ctx,
        &admin,
        "/console/approvals/review",
        serde_json::json!({"ids": [ap["db1"].1], "decision": "approve"}),
    )
    .await;
    let v = j(&r);
    let summary = v["summary"].as_str().unwrap();
    assert!(summary.contains(&format!("db1 ({sa})")), "{summary}");
    let body = serde_json::json!({"action": "quarantine", "hosts": [a], "comment": "IR-9"});
    let v = j(&post_json(&ctx, &admin, "/console/actions/check", body).await);
    assert!(v["hostnames"].to_string().contains(&format!("db1 ({sa})")), "{v}");
    let page = page_body(&ctx, &admin, "/console/hosts").await;
    let row = |id: &str| {
        page.split(&format!("<tr id=\"host-{id}\""))
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_default()
            .to_string()
    };
    let (ra, rb, rother) = (row(&a), row(&b), row(&ap["ws-other"].0));
    assert!(ra.contains("data-flagged") && rb.contains("data-flagged"), "{ra}");
    assert!(!rother.contains("data-flagged"), "{rother}");
    assert!(ra.contains(&format!("data-names=\"db1 ({sa})\"")), "{ra}");
}

/// trial13 LOW: refusal texts were escaped twice (`&amp;lt;` on screen). Every refusal
/// the console's dialogs show is plain text (the script sets it as text), so no HTML
/// entity may appear in one, whatever characters the analyst typed.
#[tokio::test]
async fn refusal_texts_are_plain_text_escaped_once() {
    let ctx = Ctx::new().await;
    let id = ctx.enroll("web1", &["web"]).await;
    let rs = sign_in(&ctx, &ctx.admin).await;
    let evil = "<b>&\"x\"</b>";
    let bodies = [
        serde_json::json!({"action": "quarantine", "hosts": [id], "comment": "c", "allow": evil}),
        serde_json::json!({"action": "quarantine", "hosts": [id], "comment": "c", "expires_in": evil}),
        serde_json::json!({"action": "quarantine", "label": evil, "comment": "c"}),
        serde_json::json!({"action": "quarantine", "hosts": [evil], "comment": "c"}),
        serde_json::json!({"action": "quarantine", "hosts": [id], "comment": "c", "message": format!("{evil}\u{202e}")}),
    ];
    let mut seen = 0;
    for b in bodies {
        let r = post_json(&ctx, &rs, "/console/actions/check", b.clone()).await;
        let v = j(&r);
        for (field, msg) in v["errors"].as_object().cloned().unwrap_or_default() {
            let msg = msg.as_str().unwrap_or_default().to_string();
            seen += 1;
            assert!(
                !msg.contains("&lt;") && !msg.contains("&amp;") && !msg.contains("&quot;"),
                "{b} {field}: {msg}"
            );
            assert!(!msg.contains("\\\\"), "backslashes doubled: {b} {field}: {msg}");
        }
    }
    for l in [evil.to_string(), "w\u{0435}b".to_string()] {
        let r = post_json(
            &ctx,
            &rs,
            "/console/settings",
            serde_json::json!({"protected_labels": [l]}),
        )
        .await;
        let msg = j(&r)["error"].as_str().unwrap_or_default().to_string();
        seen += 1;
        assert!(
            !msg.contains("&lt;") && !msg.contains("&amp;") && !msg.contains("\\\\"),
            "{l:?}: {msg}"
        );
    }
    assert!(seen >= 6, "every body above is refused with a message");
}

/// trial13 LOW: a host whose agent never reported was shown "Normal" — a state nobody
/// confirmed. It is "Never reported" (list and host page) until the first report.
#[tokio::test]
async fn a_host_that_never_reported_is_not_shown_normal() {
    let ctx = Ctx::new().await;
    let id = ctx.enroll("fresh1", &[]).await;
    let v = sign_in(&ctx, &ctx.viewer).await;
    let page = page_body(&ctx, &v, "/console/hosts").await;
    let row = page
        .split(&format!("<tr id=\"host-{id}\""))
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_default()
        .to_string();
    assert!(
        row.contains("data-state=\"never_reported\"") && row.contains("Never reported"),
        "{row}"
    );
    assert!(!row.contains("Normal"), "{row}");
    let host = host_page(&ctx, &v, &id).await;
    assert!(
        host.contains("Never reported") && !host.contains("Not quarantined"),
        "{host}"
    );
    report(&ctx, &id, cordon_proto::AgentState::Released, "nftables", |_| {}).await;
    let host = host_page(&ctx, &v, &id).await;
    assert!(
        host.contains("Not quarantined") && !host.contains("Never reported"),
        "{host}"
    );
}

/// trial13 LOW: the audit page's Action filter was a hand list that missed actions the
/// server records (approvals, rules, settings, …). It offers every action the log holds,
/// from the server.
#[tokio::test]
async fn the_audit_action_filter_offers_every_action_the_server_records() {
    let ctx = Ctx::new().await;
    three_approvals(&ctx, &["ws-1"]).await;
    let v = sign_in(&ctx, &ctx.viewer).await;
    let page = page_body(&ctx, &v, "/console/audit").await;
    let select = page
        .split("id=\"a-action\"")
        .nth(1)
        .and_then(|r| r.split("</select>").next())
        .unwrap_or_default()
        .to_string();
    let offered: std::collections::BTreeSet<String> = select
        .split("<option value=\"")
        .skip(1)
        .filter_map(|o| o.split('"').next())
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    let recorded: std::collections::BTreeSet<String> = ctx.store().audit_actions().await.unwrap().into_iter().collect();
    assert_eq!(offered, recorded);
    assert!(
        recorded.contains("approval_required") && recorded.contains("enroll"),
        "{recorded:?}"
    );
}

/// trial13 MED 2 with the server's confusable skeleton (audit7's hostname_key): `dЬ1`
/// (Cyrillic Ь) next to `db1` carries the duplicate badge in the console too.
#[tokio::test]
async fn a_look_alike_hostname_carries_the_duplicate_badge() {
    let ctx = Ctx::new().await;
    let a = ctx.enroll("db1", &[]).await;
    let b = ctx.enroll("d\u{042c}1", &[]).await;
    let v = sign_in(&ctx, &ctx.viewer).await;
    let page = page_body(&ctx, &v, "/console/hosts").await;
    let short = |id: &str| id.chars().take(8).collect::<String>();
    assert!(
        page.contains(&format!("duplicate hostname: also {}", short(&b))),
        "{page}"
    );
    assert!(
        page.contains(&format!("duplicate hostname: also {}", short(&a))),
        "{page}"
    );
}

/// trial16 MED-1: every review says `not enforcing` for a host whose agent runs with
/// `enforce = false` — the approvals review too, which promised "will quarantine
/// (requested; the agent confirms)" with no warning while the quarantine and label
/// reviews warned. One function ([`cordon_server::console::actions::cautions`]) now writes
/// these cautions for the action dialog and the approvals review alike; the decision's
/// summary names such hosts as well.
#[tokio::test]
async fn every_review_says_not_enforcing_for_hosts_whose_agent_blocks_nothing() {
    let ctx = Ctx::new().await;
    let ap = three_approvals(&ctx, &["ws-dry", "ws-real"]).await;
    let (dry, real) = (&ap["ws-dry"], &ap["ws-real"]);
    report(&ctx, &dry.0, cordon_proto::AgentState::Released, "memory", |r| {
        r.enforcing = false
    })
    .await;
    report(&ctx, &real.0, cordon_proto::AgentState::Released, "nftables", |_| {}).await;
    let a = sign_in(&ctx, &ctx.admin).await;
    let body = serde_json::json!({"ids": [dry.1, real.1], "decision": "approve"});
    let r = post_json(&ctx, &a, "/console/approvals/review", body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = j(&r);
    let words = |name: &str| {
        v["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["hostname"] == name)
            .map(|x| x["words"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(
        words("ws-dry").contains("NOT ENFORCING") && !words("ws-dry").contains("will quarantine"),
        "{v}"
    );
    assert!(words("ws-real").contains("will quarantine"), "{v}");
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains(
            "Not enforcing: the agent of ws-dry runs with enforce = false; a quarantine blocks nothing there."
        ),
        "{v}"
    );
    assert!(!warnings.contains("ws-real"), "{v}");
    let summary = v["summary"].as_str().unwrap();
    assert!(
        summary.contains("1 host will be quarantined (ws-real (")
            && summary.contains("1 host not enforcing")
            && !summary.contains("will be quarantined (ws-dry"),
        "{summary}"
    );
    assert!(v["hosts"][&dry.0]["not_enforcing"] == true, "{v}");
    assert!(!v["button"].as_str().unwrap().contains("quarantine 2"), "{v}");

    // The quarantine review of the same host says the same words.
    let q = serde_json::json!({"action": "quarantine", "hosts": [dry.0], "comment": "IR-16"});
    let c = j(&post_json(&ctx, &a, "/console/actions/check", q).await);
    assert!(
        c["warnings"].to_string().contains(
            "Not enforcing: the agent of ws-dry runs with enforce = false; a quarantine blocks nothing there."
        ),
        "{c}"
    );

    // The decision's summary never leaves it at "waiting for the agents to confirm".
    let mut decide = body.clone();
    decide["comment"] = "IR-16 approve both".into();
    decide["revisions"] = v["revisions"].clone();
    let r = post_json(&ctx, &a, "/console/approvals/decide", decide).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let summary = j(&r)["summary"].as_str().unwrap().to_string();
    assert!(
        summary.contains("NOT ENFORCING, nothing blocked: ws-dry ("),
        "{summary}"
    );

    // The release review of a host that blocks nothing says so too.
    let rel = serde_json::json!({"action": "release", "hosts": [dry.0], "comment": "IR-16"});
    let c = j(&post_json(&ctx, &a, "/console/actions/check", rel).await);
    assert!(
        c["warnings"].to_string().contains("Not enforcing: the agent of ws-dry"),
        "{c}"
    );
}

/// trial30 LOW-3: approving only hosts whose agent runs with enforce = false flashed
/// "Approved 1 of 1 approval (quarantine requested; waiting for the agents to confirm)":
/// there is no agent to wait for. The flash waits only for agents that enforce.
#[tokio::test]
async fn approving_only_hosts_that_enforce_nothing_never_says_waiting() {
    let ctx = Ctx::new().await;
    let ap = three_approvals(&ctx, &["ws-dry"]).await;
    let dry = &ap["ws-dry"];
    report(&ctx, &dry.0, cordon_proto::AgentState::Released, "memory", |r| {
        r.enforcing = false
    })
    .await;
    let a = sign_in(&ctx, &ctx.admin).await;
    let body = serde_json::json!({"ids": [dry.1], "decision": "approve"});
    let v = j(&post_json(&ctx, &a, "/console/approvals/review", body.clone()).await);
    let mut decide = body;
    decide["comment"] = "IR-30 approve".into();
    decide["revisions"] = v["revisions"].clone();
    let r = post_json(&ctx, &a, "/console/approvals/decide", decide).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let summary = j(&r)["summary"].as_str().unwrap().to_string();
    assert!(
        summary.starts_with("Approved 1 of 1 approval (quarantine requested)")
            && summary.contains("NOT ENFORCING, nothing blocked: ws-dry (")
            && !summary.contains("waiting"),
        "{summary}"
    );
}

/// trial30 LOW-5: the host page of a revoked host whose agent never reported said "last
/// reported 2026-11-30T23:23:50.308Z, revoked: no longer reporting" (the enrollment's
/// time, the page's only raw RFC 3339 time) and its Claims card "No manager holds a
/// quarantine on this host (as the agent last reported)" for an agent that never did.
#[tokio::test]
async fn a_revoked_host_that_never_reported_is_said_so() {
    let ctx = Ctx::new().await;
    let never = ctx.enroll("never-08", &[]).await;
    let seen = ctx.enroll("seen-09", &[]).await;
    report(&ctx, &seen, cordon_proto::AgentState::Released, "nftables", |_| {}).await;
    for id in [&never, &seen] {
        let (st, v) = ctx
            .call(
                "POST",
                &format!("/v1/hosts/{id}/revoke"),
                Some(&ctx.admin),
                Some(r#"{"comment":"gone"}"#),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let s = sign_in(&ctx, &ctx.viewer).await;
    let page = host_page(&ctx, &s, &never).await;
    let head = part(&page, "id=\"host-head\"", "</h2>");
    assert!(head.contains("revoked before its agent ever reported"), "{head}");
    assert!(!head.contains("last reported"), "{head}");
    let claims = part(&page, "id=\"claims\"", "</section>");
    assert!(
        claims.contains("the agent has never reported") && !claims.contains("No manager holds"),
        "{claims}"
    );
    // A host that reported: its last report's time, written as the page writes every
    // absolute time (a <time data-local> the script shows in local time, UTC on hover;
    // trial36 LOW-D: it was a third format, "02:48:57Z" — this assertion changed on purpose).
    let page = host_page(&ctx, &s, &seen).await;
    let note = part(&page, "class=\"label revoked-note\">", "</span>");
    assert!(
        note.starts_with("last reported <time datetime=\"20")
            && note.contains("data-local")
            && note.contains(" UTC\"")
            && note.ends_with("</time>, revoked: no longer reporting"),
        "{note}"
    );
}

/// trial19 LOW-b: the documented alias `/` (and `/console`, `/console/`) kept no query, so
/// a bookmarked filtered view `/?attention=failed` showed every host. The redirect keeps
/// the query (the hosts page validates it), and only ever points at the hosts page.
#[tokio::test]
async fn the_root_alias_keeps_the_filters_of_a_bookmarked_view() {
    let ctx = Ctx::new().await;
    let s = sign_in(&ctx, &ctx.viewer).await;
    for from in ["/", "/console", "/console/"] {
        let r = get(&ctx, &s, &format!("{from}?attention=failed&state=normal")).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{from}");
        assert_eq!(
            r.headers["location"], "/console/hosts?attention=failed&state=normal",
            "{from}"
        );
        let r = get(&ctx, &s, from).await;
        assert_eq!(r.headers["location"], "/console/hosts", "{from}");
    }
    let r = get(&ctx, &s, "/?x=//evil.example").await;
    assert_eq!(r.headers["location"], "/console/hosts?x=//evil.example");
}

/// Trial18 MED-2: the host page named who asked by token name only; it names the token
/// id, and a token renamed since (a database edit) as such.
#[tokio::test]
async fn host_page_names_who_asked_by_token_id() {
    let ctx = Ctx::new().await;
    let id = ctx.enroll("web1", &[]).await;
    quarantine(&ctx, &id, r#"{"comment":"ir-7"}"#).await;
    let s = sign_in(&ctx, &ctx.viewer).await;
    let (_, v) = ctx.call("GET", "/v1/tokens", Some(&ctx.admin), None).await;
    let alice = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "alice-admin")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let page = host_page(&ctx, &s, &id).await;
    assert!(page.contains(&format!("alice-admin (token {alice})")), "{page}");
    sqlx::query("UPDATE api_tokens SET name = 'rule:x' WHERE id = $1")
        .bind(alice)
        .execute(ctx.store().pool())
        .await
        .unwrap();
    let page = host_page(&ctx, &s, &id).await;
    assert!(
        page.contains(&format!("alice-admin (token {alice}, now named &quot;rule:x&quot;)")),
        "{page}"
    );
}

/// The markup of `page` from `start` up to the next `end` (empty when absent).
fn part<'a>(page: &'a str, start: &str, end: &str) -> &'a str {
    page.split(start)
        .nth(1)
        .and_then(|r| r.split(end).next())
        .unwrap_or_default()
}

/// trial19 LOW-a: a host that never reported was counted "normal" (summary and
/// `?state=normal`), with no "never reported" count or filter. trial19 LOW-n: "N not
/// enforcing" counted only hosts asked to be quarantined; a "Normal" host whose agent runs
/// with enforce = false was not counted and its row did not say so.
#[tokio::test]
async fn counts_never_call_an_unreported_host_normal_and_count_every_agent_that_enforces_nothing() {
    let ctx = Ctx::new().await;
    let fresh = ctx.enroll("fresh1", &[]).await;
    let ok = ctx.enroll("ok1", &[]).await;
    report(&ctx, &ok, cordon_proto::AgentState::Released, "nftables", |_| {}).await;
    let dry = ctx.enroll("dry1", &[]).await;
    report(&ctx, &dry, cordon_proto::AgentState::Released, "memory", |r| {
        r.enforcing = false
    })
    .await;
    let v = sign_in(&ctx, &ctx.viewer).await;
    let page = page_body(&ctx, &v, "/console/hosts").await;
    let summary = part(&page, "id=\"host-summary\"", "</p>");
    assert!(
        summary.contains(">2 normal<") && summary.contains(">1 never reported<"),
        "{summary}"
    );
    let banner = part(&page, "id=\"attention-banner\"", "</section>");
    // The banner counts agents that enforce nothing in its own words (trial30 LOW-2: was
    // "1 not enforcing", the summary's phrase for the state, with another number);
    // changed deliberately.
    assert!(
        banner.contains("<strong>1</strong> agent enforces nothing (enforce = false)"),
        "{banner}"
    );
    let row = |page: &str, id: &str| part(page, &format!("<tr id=\"host-{id}\""), "</tr>").to_string();
    assert!(row(&page, &dry).contains("tag-not-enforcing"), "{}", row(&page, &dry));
    assert!(!row(&page, &ok).contains("tag-not-enforcing"), "{}", row(&page, &ok));
    assert!(
        page.contains("<option value=\"never_reported\""),
        "no Never reported option"
    );
    let listed = |page: &str, id: &str| page.contains(&format!("<tr id=\"host-{id}\""));
    let normal = page_body(&ctx, &v, "/console/hosts?state=normal").await;
    assert!(listed(&normal, &ok) && listed(&normal, &dry) && !listed(&normal, &fresh));
    assert!(part(&normal, "id=\"host-summary\"", "</p>").contains("<strong>2</strong> hosts"));
    let never = page_body(&ctx, &v, "/console/hosts?state=never_reported").await;
    assert!(listed(&never, &fresh) && !listed(&never, &ok) && !listed(&never, &dry));
    let ne = page_body(&ctx, &v, "/console/hosts?attention=not_enforcing").await;
    assert!(listed(&ne, &dry) && !listed(&ne, &ok) && !listed(&ne, &fresh));
}

/// trial19 LOW-j: approving after the rule became a dry run (`notify_only`) still
/// quarantines — the review now says so and what the quarantine carries (the rule's plan
/// at event time). trial19 LOW-h: the review names every host with its short id. trial19
/// LOW-i: an event whose approval was decided `superseded` kept "approval required".
#[tokio::test]
async fn approval_reviews_say_what_they_apply_and_superseded_approvals_leave_no_event_waiting() {
    let ctx = Ctx::new().await;
    let ap = three_approvals(&ctx, &["ws-a", "ws-b"]).await;
    let (a, b) = (&ap["ws-a"], &ap["ws-b"]);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let rule = r#"{"name":"edr","trigger_event_types":["malware"],"trigger_labels":["ws"],"mode":"notify_only",
        "allow":["https://edr.example.com"],"expires_after":"30m"}"#;
    let (st, v) = ctx.call("PUT", "/v1/rules/edr", Some(&ctx.admin), Some(rule)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let adm = sign_in(&ctx, &ctx.admin).await;
    let r = post_json(
        &ctx,
        &adm,
        "/console/approvals/review",
        serde_json::json!({"ids": [a.1], "decision": "approve"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = j(&r);
    let one = &v["approvals"][0];
    let changed = one["rule_changed"].as_str().unwrap_or_default();
    assert!(
        changed.contains("rule edr changed since the event")
            && changed.contains("notify_only")
            && changed.contains("dry run"),
        "{v}"
    );
    assert!(
        v["warnings"].to_string().contains("rule edr changed since the event"),
        "{v}"
    );
    let applies = one["applies"].to_string();
    assert!(
        applies.contains("exceptions: none") && applies.contains("automatic release: none"),
        "the event-time plan, not the new rule's: {applies}"
    );
    let short = &a.0[..8];
    assert!(
        v["summary"].as_str().unwrap().contains(&format!("ws-a ({short})")),
        "{}",
        v["summary"]
    );
    // ws-b was quarantined by hand meanwhile: approving it is superseded, and its event
    // no longer waits for an approval.
    quarantine(&ctx, &b.0, r#"{"comment":"IR-7 by hand"}"#).await;
    let body = serde_json::json!({"ids": [b.1], "comment": "late"}).to_string();
    let (st, v) = ctx
        .call("POST", "/v1/approvals/approve", Some(&ctx.admin), Some(&body))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v.to_string().contains("superseded"), "{v}");
    let (_, ev) = ctx
        .call("GET", "/v1/events?status=approval_required", Some(&ctx.admin), None)
        .await;
    let waiting: Vec<&serde_json::Value> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["host_id"] == b.0.as_str())
        .collect();
    assert!(waiting.is_empty(), "still approval_required: {ev}");
    let (_, ev) = ctx
        .call("GET", "/v1/events?status=superseded", Some(&ctx.admin), None)
        .await;
    assert_eq!(ev["events"].as_array().unwrap().len(), 1, "{ev}");
    let page = page_body(&ctx, &adm, "/console/events-log").await;
    assert!(page.contains("approval superseded"), "events page outcome");
    assert!(page.contains("<option value=\"superseded\""), "outcome filter");
    // LOW-h: every host on the Events page carries its short id.
    assert!(
        page.contains(&format!(">{short}</code>")),
        "short id on the events page"
    );
}

/// trial19 LOW-g: serde writes an agent's ESC as the JSON escape `\u001b`, which the
/// console's pass over the reply text missed, so the Retry review printed raw ESC.
#[tokio::test]
async fn review_replies_show_agent_control_characters_written_out() {
    let ctx = Ctx::new().await;
    let id = ctx.enroll("esc1", &[]).await;
    quarantine(&ctx, &id, r#"{"comment":"IR-1"}"#).await;
    report(&ctx, &id, cordon_proto::AgentState::Failed, "nftables", |r| {
        r.error = Some("\u{1b}[31mRED\u{1b}[0m \u{202e}evil".into());
        r.detail = Some("\u{1b}[2J\r".into());
    })
    .await;
    let adm = sign_in(&ctx, &ctx.admin).await;
    let rev = revision(&ctx, &id).await;
    let r = post_json(
        &ctx,
        &adm,
        "/console/actions/check",
        serde_json::json!({"action": "retry", "hosts": [id], "comment": "again", "revisions": {id.clone(): rev}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = j(&r);
    let text = v.to_string();
    assert!(!r.body.contains("\\u001b") && !r.body.contains('\u{1b}'), "{}", r.body);
    assert!(text.contains("\\\\u{1b}[2J\\\\u{d}"), "{text}");
    let decoded: Vec<String> = v["hosts"][0]["details"]
        .as_array()
        .map(|d| d.iter().map(|x| x.as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_default();
    for d in &decoded {
        assert!(!d.contains('\u{1b}') && !d.contains('\u{202e}'), "{d:?}");
    }
}

/// trial16: a label stored before the label checks (`ir hold`, with a space) could not be
/// removed — removal ran the check for new labels. And databases holding such labels or
/// look-alikes were not flagged: the Rules page lists them.
#[tokio::test]
async fn legacy_labels_can_be_removed_and_poisoned_labels_are_flagged() {
    let ctx = Ctx::new().await;
    let id = ctx.enroll("old1", &["web"]).await;
    for l in ["ir hold", "WEB"] {
        sqlx::query("INSERT INTO host_labels (host_id, label) VALUES ($1, $2)")
            .bind(id.clone())
            .bind(l)
            .execute(ctx.store().pool())
            .await
            .unwrap();
    }
    let adm = sign_in(&ctx, &ctx.admin).await;
    let rules = page_body(&ctx, &adm, "/console/rules").await;
    let flagged = part(&rules, "id=\"poisoned-labels\"", "</section>");
    assert!(
        flagged.contains("look-alike labels:") && flagged.contains("&quot;WEB&quot;") && flagged.contains("ir hold"),
        "{flagged}"
    );
    let (st, v) = ctx
        .call(
            "POST",
            &format!("/v1/hosts/{id}/labels"),
            Some(&ctx.admin),
            Some(r#"{"remove":["ir hold","WEB"]}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["labels"], serde_json::json!(["web"]), "{v}");
    // A spaced label nobody carries is still refused (nothing to remove, bad input).
    let (st, v) = ctx
        .call(
            "POST",
            &format!("/v1/hosts/{id}/labels"),
            Some(&ctx.admin),
            Some(r#"{"remove":["no such"]}"#),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let rules = page_body(&ctx, &adm, "/console/rules").await;
    assert!(!rules.contains("id=\"poisoned-labels\""), "clean again");
}

/// trial24 MED-3: an agent older than the `enforcing` field reports only its backend;
/// `memory` blocks nothing, yet such a report was taken as enforcing — "■ Quarantined",
/// "In force", "Policy in force", and no "not enforcing" in the banner. Backend `memory`
/// is never enforcing, whatever the report says.
#[tokio::test]
async fn a_memory_backend_without_the_enforcing_field_is_never_in_force() {
    let ctx = Ctx::new().await;
    let old = ctx.enroll("old-dry", &[]).await;
    quarantine(&ctx, &old, r#"{"comment":"IR-24"}"#).await;
    // Exactly what an older agent sends: no `enforcing`.
    let body = serde_json::json!({
        "version": 1,
        "applied_revision": revision(&ctx, &old).await,
        "state": "isolated",
        "digest": "sha256:00ab",
        "backend": "memory",
        "agent_version": "0.0.9",
    });
    let (st, v) = ctx.agent_status(&old, &body).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "not_enforcing", "{v}");
    let (_, h) = ctx
        .call("GET", &format!("/v1/hosts/{old}"), Some(&ctx.viewer), None)
        .await;
    assert_eq!(
        (h["state"].as_str(), h["enforcing"].as_bool()),
        (Some("not_enforcing"), Some(false)),
        "{h}"
    );
    let s = sign_in(&ctx, &ctx.viewer).await;
    let page = host_page(&ctx, &s, &old).await;
    assert!(
        !page.contains("In force") && !page.contains("Policy in force"),
        "{page}"
    );
    assert!(page.contains("Not enforcing"), "{page}");
    let list = page_body(&ctx, &s, "/console/hosts").await;
    let banner = part(&list, "id=\"attention-banner\"", "</section>");
    // The banner counts agents that enforce nothing in its own words (trial30 LOW-2: was
    // "1 not enforcing", the summary's phrase for the state, with another number);
    // changed deliberately.
    assert!(
        banner.contains("<strong>1</strong> agent enforces nothing (enforce = false)"),
        "{banner}"
    );
    let row = part(&list, &format!("<tr id=\"host-{old}\""), "</tr>");
    assert!(
        !row.contains(">Quarantined<") && row.contains(">Not enforcing<"),
        "{row}"
    );
}

/// Opens the console's live stream as `s`; the body to read events from.
async fn open_stream(ctx: &Ctx, s: &Sess) -> Body {
    let r = ctx
        .app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/console/events")
                .header("cookie", &s.cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.into_body()
}

/// Reads `body` until a `change` event arrives (true) or `within` passes (false); the
/// text read so far goes to `seen`.
async fn change_within(body: &mut Body, within: std::time::Duration, seen: &mut String) -> bool {
    let started = std::time::Instant::now();
    loop {
        if let Some(at) = seen.find("event: change") {
            seen.replace_range(..at + "event: change".len(), "");
            return true;
        }
        let left = within.saturating_sub(started.elapsed());
        if left.is_zero() {
            return false;
        }
        match tokio::time::timeout(left, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(d) = frame.into_data() {
                    seen.push_str(&String::from_utf8_lossy(&d));
                }
            }
            Ok(_) => panic!("the stream ended: {seen:?}"),
            Err(_) => return false,
        }
    }
}

/// Waits for the stream's `hello` (its baseline is taken then).
async fn hello(body: &mut Body, seen: &mut String) {
    let started = std::time::Instant::now();
    while !seen.contains("event: hello") {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no hello: {seen:?}"
        );
        if let Ok(d) = body.frame().await.expect("the stream ended").unwrap().into_data() {
            seen.push_str(&String::from_utf8_lossy(&d));
        }
    }
    seen.clear();
}

/// trial24 MED-1: the live stream fired only on audit records, the host count or a 30 s
/// step of the newest last-seen time, so agents going silent never reached an open page
/// (still online, banner without "offline while quarantined", "Live updates: on"). A host
/// crossing its offline deadline is a change now.
#[tokio::test]
async fn an_agent_going_silent_reaches_open_pages_when_it_crosses_the_offline_deadline() {
    let ctx = Ctx::new().await;
    let quiet = ctx.enroll("quiet-01", &[]).await;
    quarantine(&ctx, &quiet, r#"{"comment":"IR-24"}"#).await;
    // Heartbeat 1 s: offline after 3 s of silence.
    report(&ctx, &quiet, cordon_proto::AgentState::Isolated, "nftables", |r| {
        r.heartbeat_ms = Some(1_000)
    })
    .await;
    let s = sign_in(&ctx, &ctx.viewer).await;
    let mut body = open_stream(&ctx, &s).await;
    let mut seen = String::new();
    hello(&mut body, &mut seen).await;
    assert!(!ctx.store().host(&quiet).await.unwrap().offline, "online at the start");
    assert!(
        change_within(&mut body, std::time::Duration::from_secs(12), &mut seen).await,
        "no change event after the agent went silent: {seen:?}"
    );
    let list = page_body(&ctx, &s, "/console/hosts").await;
    let banner = part(&list, "id=\"attention-banner\"", "</section>");
    assert!(banner.contains("offline while quarantined"), "{banner}");
}

/// trial24 MED-2: a report that changes only what the host page shows from the agent —
/// other managers' claims, reported addresses — writes no audit record, and reached open
/// pages only at the next 30 s step of the newest last-seen time. Each such report is a
/// change now; a report that changes nothing shown is not.
#[tokio::test]
async fn claims_and_addresses_changes_reach_open_pages_at_once() {
    use cordon_proto::{AgentState, ClaimInfo};
    let ctx = Ctx::new().await;
    let id = ctx.enroll("kiosk-11", &[]).await;
    let wazuh = ClaimInfo {
        source: "wazuh".into(),
        since: None,
        allow: vec![],
        servers: vec![],
        owner: None,
    };
    report(&ctx, &id, AgentState::Released, "nftables", |_| {}).await;
    let s = sign_in(&ctx, &ctx.viewer).await;
    let mut body = open_stream(&ctx, &s).await;
    let mut seen = String::new();
    hello(&mut body, &mut seen).await;
    let audit = ctx.audit_for(&id).await.len();
    let step = cordon_server::console::live::SEEN_STEP_MS;
    let reports = || async { ctx.store().change_fingerprint(step).await.unwrap().reports };
    let before = reports().await;
    let w = wazuh.clone();
    report(&ctx, &id, AgentState::Released, "nftables", move |r| r.claims = vec![w]).await;
    assert!(
        change_within(&mut body, std::time::Duration::from_secs(5), &mut seen).await,
        "a wazuh claim added: no change event: {seen:?}"
    );
    // The event is the report's own (its report revision moved), not a last-seen step.
    assert_eq!(reports().await, before + 1, "a wazuh claim added: report revision");
    report(&ctx, &id, AgentState::Released, "nftables", |r| r.claims = vec![]).await;
    assert!(
        change_within(&mut body, std::time::Duration::from_secs(5), &mut seen).await,
        "the wazuh claim dropped: no change event: {seen:?}"
    );
    assert_eq!(reports().await, before + 2, "the wazuh claim dropped: report revision");
    let r = common::status_report(revision(&ctx, &id).await, AgentState::Released, "sha256:0", "nftables");
    ctx.agent_status(&id, &common::with_addresses(&r, &["203.0.113.5"]))
        .await;
    assert!(
        change_within(&mut body, std::time::Duration::from_secs(5), &mut seen).await,
        "a new address: no change event: {seen:?}"
    );
    assert_eq!(reports().await, before + 3, "a new address: report revision");
    assert_eq!(
        ctx.audit_for(&id).await.len(),
        audit,
        "none of these wrote an audit record"
    );
    let page = host_page(&ctx, &s, &id).await;
    assert!(page.contains("203.0.113.5"), "the page shows the new address");
    // The same report again changes nothing shown: no change event. One thing may still
    // move: the newest last-seen time, which the stream counts in 30 s steps aligned to
    // the epoch (live::SEEN_STEP_MS, so "last seen" moves on open pages). When the repeated
    // report is the first in a new step, its event is that step, not the report: told
    // apart by the store's fingerprint, and the report is sent once more (the next step
    // is 30 s away). Until this loop the test assumed no step could fall between the two
    // reports and failed about 1 run in 10 ("an unchanged report woke the pages").
    for attempt in 0..2 {
        let before = ctx.store().change_fingerprint(step).await.unwrap();
        ctx.agent_status(&id, &common::with_addresses(&r, &["203.0.113.5"]))
            .await;
        let woke = change_within(&mut body, std::time::Duration::from_secs(2), &mut seen).await;
        let after = ctx.store().change_fingerprint(step).await.unwrap();
        assert_eq!(
            cordon_server_core::store::ChangeFingerprint {
                seen_step: before.seen_step,
                ..after
            },
            before,
            "an unchanged report moved more than its last-seen time"
        );
        if after.seen_step == before.seen_step {
            assert!(!woke, "an unchanged report woke the pages: {seen:?}");
            return;
        }
        assert_eq!(
            attempt, 0,
            "two 30 s last-seen steps within seconds: {before:?} → {after:?}"
        );
        seen.clear();
    }
}

/// trial24 LOW-1 / LOW-9: a host whose agent runs with `enforce = false` never confirms a
/// quarantine: a review that leaves its (already requested) quarantine unchanged named it
/// only as "pending until its agent confirms", and the run's flash said "waiting for the
/// agents to confirm" for it. Both name it as not enforcing now.
#[tokio::test]
async fn not_enforcing_hosts_are_never_said_to_wait_for_their_agent() {
    use cordon_proto::AgentState;
    let ctx = Ctx::new().await;
    let dry = ctx.enroll("ws-05", &["lab"]).await;
    let real = ctx.enroll("web-01", &["lab"]).await;
    let dry2 = ctx.enroll("ws-06", &[]).await;
    for (id, backend) in [(&dry, "memory"), (&real, "nftables"), (&dry2, "memory")] {
        report(&ctx, id, AgentState::Released, backend, |r| {
            r.enforcing = backend != "memory"
        })
        .await;
    }
    quarantine(&ctx, &dry, r#"{"comment":"IR-24"}"#).await;
    report(&ctx, &dry, AgentState::Isolated, "memory", |r| r.enforcing = false).await;
    assert_eq!(ctx.store().host(&dry).await.unwrap().state, HostState::NotEnforcing);
    let rs = sign_in(&ctx, &ctx.responder).await;
    let by_label = serde_json::json!({"action": "quarantine", "label": "lab", "comment": "IR-24b"});
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", by_label).await);
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("Not enforcing: quarantine already requested for 1 host (ws-05)")
            && !warnings.contains("pending until its agent confirms"),
        "{v}"
    );
    // Run on the other not-enforcing host: the flash says so, never "waiting".
    let one = serde_json::json!({"action": "quarantine", "hosts": [dry2], "comment": "IR-24c"});
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", one.clone()).await);
    let r = post_json(&ctx, &rs, "/console/actions/run", reviewed(one, &v)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let summary = j(&r)["summary"].as_str().unwrap().to_string();
    assert!(
        summary.contains("NOT ENFORCING, nothing blocked: ws-06") && !summary.contains("waiting for the agents"),
        "{summary}"
    );
}

/// trial36 MED-A: the bulk quarantine review called a FAILED host and a TAMPERED one
/// "already requested, not yet confirmed … nothing new is sent; they stay pending until
/// each agent confirms" (per host: "kept (already requested, not yet confirmed …)" and
/// "no change (… not yet confirmed)"). It names the failure (with the agent's reason) and
/// the tamper, and says what the action does to them: nothing new is sent; Retry.
#[tokio::test]
async fn bulk_review_names_failed_and_tampered_hosts_never_pending() {
    use cordon_proto::AgentState;
    let ctx = Ctx::new().await;
    let app = ctx.enroll("app-07", &["lab"]).await;
    let db = ctx.enroll("db-03", &["lab"]).await;
    let asked = ctx.enroll("web-01", &["lab"]).await;
    let fresh = ctx.enroll("web-02", &["lab"]).await;
    for id in [&app, &db, &asked, &fresh] {
        report(&ctx, id, AgentState::Released, "nftables", |_| {}).await;
    }
    for id in [&app, &db, &asked] {
        quarantine(&ctx, id, r#"{"comment":"IR-36"}"#).await;
    }
    report(&ctx, &app, AgentState::Failed, "nftables", |r| {
        r.error = Some("apply_failed".into());
        r.detail = Some("nft: Operation not permitted".into());
    })
    .await;
    report(&ctx, &db, AgentState::Isolated, "nftables", |_| {}).await;
    report(&ctx, &db, AgentState::Tampered, "nftables", |r| {
        r.detail = Some("rules altered".into())
    })
    .await;
    assert_eq!(ctx.store().host(&app).await.unwrap().state, HostState::Failed);
    assert_eq!(ctx.store().host(&db).await.unwrap().state, HostState::Tampered);
    let rs = sign_in(&ctx, &ctx.responder).await;
    let bulk = serde_json::json!({"action": "quarantine", "hosts": [app, db, asked, fresh], "comment": "IR-36b"});
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", bulk).await);
    assert_eq!(v["summary"], "Quarantine 1 host?", "{v}");
    let warnings: Vec<String> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    let text = warnings.join(" | ");
    assert!(
        warnings.iter().any(
            |w| w.starts_with("Failed: quarantine already requested for 1 host (app-07: ")
                && w.contains("Operation not permitted")
                && w.contains("it stays failed; Retry re-sends it")
        ),
        "{text}"
    );
    assert!(
        warnings.iter().any(|w| w
            == "Tampered: quarantine already requested for 1 host (db-03); its agent found the rules altered or \
                deleted and is repairing them: nothing new is sent."),
        "{text}"
    );
    // Only web-01 is pending: the pending sentence names it alone.
    let pending = warnings
        .iter()
        .find(|w| w.contains("not yet confirmed"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        pending.contains("(web-01)") && !pending.contains("app-07") && !pending.contains("db-03"),
        "{pending}"
    );
    let line = |id: &str| -> String {
        v["hosts"].as_array().unwrap().iter().find(|h| h["id"] == id).unwrap()["change_text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let app_line = line(&app);
    assert!(
        app_line.starts_with("no change (same settings; FAILED: its agent could not apply the quarantine: ")
            && app_line.contains("Operation not permitted")
            && app_line.ends_with(": nothing new is sent — use Retry to re-send it"),
        "{app_line}"
    );
    assert_eq!(
        line(&db),
        "no change (same settings; TAMPERED: its agent found the quarantine's rules altered or deleted and is \
         repairing them): nothing new is sent"
    );
    assert_eq!(
        line(&asked),
        "no change (same settings; already requested, not yet confirmed)"
    );
    assert_eq!(line(&fresh), "will be quarantined");
    // A different message keeps each host's own: the failed host is still named as failed.
    let kept = serde_json::json!({"action": "quarantine", "hosts": [app, db], "comment": "IR-36c", "message": "other"});
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", kept).await);
    let summary = v["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("Nothing new is sent: the quarantine is already requested; FAILED on app-07")
            && summary.contains("TAMPERED on db-03")
            && !summary.contains("not yet confirmed"),
        "{summary}"
    );
    let app_line = v["hosts"][0]["change_text"].as_str().unwrap().to_string();
    assert!(
        app_line.starts_with("kept (FAILED: its agent could not apply the quarantine: "),
        "{app_line}"
    );
}

/// trial36 LOW-C: release by label left a revoked-but-quarantined host out without a
/// word ("Release 2 hosts (every host with label "lab")?"), and no "Needs attention"
/// item named it, though nothing but a release on the host lifts its quarantine. The
/// review names it with the way forward, and the banner counts it (a filter link).
#[tokio::test]
async fn a_label_release_names_revoked_quarantined_hosts_and_the_banner_counts_them() {
    use cordon_proto::AgentState;
    let ctx = Ctx::new().await;
    let a = ctx.enroll("web-01", &["lab"]).await;
    let gone = ctx.enroll("web-02", &["lab"]).await;
    for id in [&a, &gone] {
        quarantine(&ctx, id, r#"{"comment":"IR-36"}"#).await;
        report(&ctx, id, AgentState::Isolated, "nftables", |_| {}).await;
    }
    let (st, v) = ctx
        .call(
            "POST",
            &format!("/v1/hosts/{gone}/revoke"),
            Some(&ctx.admin),
            Some(r#"{"comment":"t36 revoke","force":true}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(ctx.store().host(&gone).await.unwrap().revoked);
    let rs = sign_in(&ctx, &ctx.responder).await;
    let by_label = serde_json::json!({"action": "release", "label": "lab", "comment": "IR-36 done"});
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", by_label).await);
    assert_eq!(
        v["summary"], "Release 1 host (every non-revoked host with label \"lab\")?",
        "{v}"
    );
    let short = &gone[..8];
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains(&format!(
            "Revoked: 1 host with this label is revoked and stays quarantined: web-02 ({short}) — no release reaches \
             its agent; release it on the host (cordon release --force)."
        )),
        "{warnings}"
    );
    let list = page_body(&ctx, &rs, "/console/hosts").await;
    let banner = part(&list, "id=\"attention-banner\"", "</section>");
    assert!(
        banner.contains("attention=revoked_quarantined") && banner.contains("revoked while quarantined"),
        "{banner}"
    );
    let filtered = page_body(&ctx, &rs, "/console/hosts?attention=revoked_quarantined").await;
    assert!(
        filtered.contains(&format!("data-host-id=\"{gone}\"")) && !filtered.contains(&format!("data-host-id=\"{a}\"")),
        "the filter lists the revoked host alone"
    );
}

/// trial36 LOW-D wording: "1 hosts"; a never-reported host in a review was "Offline: …
/// will stay pending until each agent returns" (and one enrolled moments ago not named at
/// all); 40 hosts behind one address made every row's badge list the 39 others.
#[tokio::test]
async fn small_wording_one_host_never_reported_and_capped_duplicate_lists() {
    use cordon_proto::AgentState;
    let ctx = Ctx::new().await;
    let mut nat = Vec::new();
    for i in 0..8 {
        nat.push(ctx.enroll_with(&format!("dg-{i}"), &[], &["192.0.2.200"]).await);
    }
    let lone = ctx.enroll("kiosk-77", &[]).await;
    report(&ctx, &nat[0], AgentState::Released, "nftables", |_| {}).await;
    let rs = sign_in(&ctx, &ctx.responder).await;
    let found = page_body(&ctx, &rs, "/console/hosts?q=kiosk-77").await;
    let summary = part(&found, "id=\"host-summary\"", "</p>");
    assert!(
        summary.contains("<strong>1</strong> host ·") || summary.contains("<strong>1</strong> host<"),
        "{summary}"
    );
    let list = page_body(&ctx, &rs, "/console/hosts").await;
    assert!(list.contains("and 2 more"), "a duplicate list is capped at 5 others");
    assert!(!list.contains(&format!(
        "{}, {}, {}, {}, {}, {}",
        &nat[1][..8],
        &nat[2][..8],
        &nat[3][..8],
        &nat[4][..8],
        &nat[5][..8],
        &nat[6][..8]
    )));
    let bulk = serde_json::json!({"action": "quarantine", "hosts": [lone, nat[0]], "comment": "IR-36"});
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", bulk).await);
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("Never reported: 1 (kiosk-77): its agent has not reported since enrolling")
            && !warnings.contains("Offline: 1 (kiosk-77)"),
        "{warnings}"
    );
}

/// trial24 LOW-8: docs/console.md says every page shows whether it is connected, yet the
/// Audit and Rules pages had no "Live updates" line (nor live parts). Every signed-in
/// page has both now.
#[tokio::test]
async fn every_page_says_whether_it_is_live() {
    let ctx = Ctx::new().await;
    let id = ctx.enroll("web-01", &[]).await;
    let s = sign_in(&ctx, &ctx.admin).await;
    for path in [
        "/console/hosts".to_string(),
        format!("/console/hosts/{id}"),
        "/console/audit".into(),
        "/console/events-log".into(),
        "/console/rules".into(),
        "/console/approvals".into(),
    ] {
        let page = page_body(&ctx, &s, &path).await;
        assert!(page.contains("id=\"live-status\""), "{path}: no live status line");
        assert!(page.contains("data-live=\"\""), "{path}: nothing on it updates live");
    }
}

/// trial24 LOW-6: after the watcher repaired tampered rules, the host page said
/// "Quarantined since <repair time>"; the quarantine has been in force since the
/// revision's first confirmation (the tamper is in the timeline), and stays dated so.
#[tokio::test]
async fn a_repaired_tamper_keeps_the_quarantines_since() {
    use cordon_proto::AgentState;
    let ctx = Ctx::new().await;
    let id = ctx.enroll("web-01", &[]).await;
    quarantine(&ctx, &id, r#"{"comment":"IR-24"}"#).await;
    report(&ctx, &id, AgentState::Isolated, "nftables", |_| {}).await;
    let confirmed = ctx.store().host(&id).await.unwrap();
    assert_eq!(confirmed.state, HostState::Quarantined);
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    report(&ctx, &id, AgentState::Tampered, "nftables", |r| {
        r.detail = Some("rules missing; repaired by the watcher in 1.8 ms".into())
    })
    .await;
    assert_eq!(ctx.store().host(&id).await.unwrap().state, HostState::Tampered);
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    report(&ctx, &id, AgentState::Isolated, "nftables", |_| {}).await;
    let repaired = ctx.store().host(&id).await.unwrap();
    assert_eq!(repaired.state, HostState::Quarantined);
    let first = ctx
        .audit_for(&id)
        .await
        .into_iter()
        .find(|a| a.action == "quarantine_confirmed")
        .unwrap();
    assert_eq!(
        repaired.state_since.to_string(),
        first.at.to_string(),
        "since the first confirmation (at {}), not the repair; first state_since was {}",
        first.at,
        confirmed.state_since
    );
}

/// trial42 MED-2: "Select all" ticks revoked rows too, and the review then refused the
/// whole selection naming one revoked host per attempt ("host web-02 is revoked"), with no
/// way forward. Revoked hosts are left out of a selection's review with a line that names
/// them all; a selection of nothing but revoked hosts is refused naming every one.
#[tokio::test]
async fn a_selection_with_revoked_hosts_is_reviewed_without_them() {
    use cordon_proto::AgentState;
    let ctx = Ctx::new().await;
    let a = ctx.enroll("web-01", &["lab"]).await;
    let gone = ctx.enroll("web-02", &["lab"]).await;
    let never = ctx.enroll("never-08", &["lab"]).await;
    for id in [&a, &gone] {
        quarantine(&ctx, id, r#"{"comment":"IR-42"}"#).await;
        report(&ctx, id, AgentState::Isolated, "nftables", |_| {}).await;
    }
    for (id, force) in [(&gone, true), (&never, false)] {
        let body = format!(r#"{{"comment":"t42 revoke","force":{force}}}"#);
        let (st, v) = ctx
            .call("POST", &format!("/v1/hosts/{id}/revoke"), Some(&ctx.admin), Some(&body))
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let rs = sign_in(&ctx, &ctx.responder).await;
    for action in ["release", "retry"] {
        let all = serde_json::json!({"action": action, "hosts": [&a, &gone, &never], "comment": "IR-42 done"});
        let v = j(&post_json(&ctx, &rs, "/console/actions/check", all).await);
        assert_eq!(v["ok"], true, "{action}: {v}");
        let warnings = v["warnings"].to_string();
        assert!(
            warnings.contains(&format!(
                "Revoked: 2 selected hosts are left out: web-02 ({}), never-08 ({})",
                &gone[..8],
                &never[..8]
            )),
            "{action}: {warnings}"
        );
        let ids: Vec<&str> = v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            vec![a.as_str()],
            "{action}: only the non-revoked host is reviewed: {v}"
        );
    }
    let only_revoked = serde_json::json!({"action": "release", "hosts": [&gone, &never], "comment": "IR-42 done"});
    let v = j(&post_json(&ctx, &rs, "/console/actions/check", only_revoked).await);
    assert_eq!(v["ok"], false, "{v}");
    let form = v["errors"]["form"].as_str().unwrap_or_default().to_string();
    assert!(
        form.starts_with("every selected host is revoked: web-02") && form.contains("never-08"),
        "{form}"
    );
}
