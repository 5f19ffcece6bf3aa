//! REST API logic, in-process (no network): roles, validation, audit, states, expiry.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use axum::http::StatusCode;
use common::Ctx;
use cordon_proto::{AgentState, StatusReport};
use serde_json::json;

const Q: &str = r#"{"comment":"IR-1 beaconing"}"#;

fn report(rev: i64, state: AgentState) -> StatusReport {
    common::status_report(rev, state, "d1", "nftables")
}

#[tokio::test]
async fn refused_requests_change_nothing() {
    let c = Ctx::new().await;
    let h = c.enroll("web1", &[]).await;
    let path = format!("/v1/hosts/{h}/quarantine");
    let before = c.snapshot().await;

    let (st, v) = c.call("POST", &path, None, Some(Q)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"], "unauthorized");
    let (st, _) = c.call("POST", &path, Some("cordon_bogus"), Some(Q)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, v) = c.call("POST", &path, Some(&c.viewer), Some(Q)).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"], "forbidden");
    let (st, v) = c
        .call("POST", &path, Some(&c.responder), Some(r#"{"comment":"  "}"#))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(v["detail"].as_str().unwrap().contains("comment"));
    let (st, _) = c.call("POST", &path, Some(&c.responder), Some("{}")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, v) = c
        .call("POST", &path, Some(&c.responder), Some(r#"{"comment": "x""#))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "invalid_json");
    let (st, v) = c
        .call("POST", "/v1/hosts/nope/quarantine", Some(&c.responder), Some(Q))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "not_found");
    // Bulk with one unknown host: nothing at all happens.
    let body = json!({"hosts": [h, "nope"], "comment": "x"}).to_string();
    let (st, _) = c.call("POST", "/v1/quarantine", Some(&c.responder), Some(&body)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let long = "m".repeat(257);
    let body = json!({"comment": "x", "message": long}).to_string();
    let (st, _) = c.call("POST", &path, Some(&c.responder), Some(&body)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let body = json!({"comment": "x", "allow": ["tcp://bad"]}).to_string();
    let (st, _) = c.call("POST", &path, Some(&c.responder), Some(&body)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let body = json!({"comment": "x", "expires_at": "2001-01-01T00:00:00Z"}).to_string();
    let (st, _) = c.call("POST", &path, Some(&c.responder), Some(&body)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Responders cannot create tokens or revoke hosts.
    let (st, _) = c
        .call(
            "POST",
            "/v1/tokens",
            Some(&c.responder),
            Some(r#"{"name":"x","role":"admin"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = c
        .call("POST", &format!("/v1/hosts/{h}/revoke"), Some(&c.responder), None)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Viewer cannot label.
    let (st, _) = c
        .call(
            "POST",
            &format!("/v1/hosts/{h}/labels"),
            Some(&c.viewer),
            Some(r#"{"add":["x"]}"#),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    assert_eq!(before, c.snapshot().await, "a refused request changed the database");
}

#[tokio::test]
async fn quarantine_is_pending_until_the_agent_confirms_then_release() {
    let c = Ctx::new().await;
    let h = c.enroll("web1", &["prod"]).await;
    let n0 = c.audit_for(&h).await.len();
    let body = json!({"comment": "IR-1", "allow": ["tcp://192.0.2.99:443"], "message": "isolated by SOC"}).to_string();
    let (st, v) = c
        .call(
            "POST",
            &format!("/v1/hosts/{h}/quarantine"),
            Some(&c.responder),
            Some(&body),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["results"][0]["state"], "quarantine_pending");
    let rev = v["results"][0]["revision"].as_i64().unwrap();

    // Offline agent: stays pending.
    let (_, host) = c.call("GET", &format!("/v1/hosts/{h}"), Some(&c.viewer), None).await;
    assert_eq!(host["state"], "quarantine_pending");
    assert_eq!(host["labels"], json!(["Quarantine", "prod"]));
    assert_eq!(host["desired"]["allow"], json!(["tcp://192.0.2.99:443"]));
    let audit = c.audit_for(&h).await;
    assert_eq!(audit.len(), n0 + 1, "exactly one record per action");
    let rec = audit.last().unwrap();
    assert_eq!(
        (rec.actor.as_str(), rec.action.as_str(), rec.result.as_str()),
        ("rita-responder", "quarantine", "pending")
    );
    assert_eq!(rec.comment.as_deref(), Some("IR-1"));

    // Agent picks it up (long-poll answers at once for an older revision).
    let (st, d) = c
        .call_as("GET", "/v1/agent/desired?since=0", None, None, Some(&h))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(d["quarantined"], true);
    assert_eq!(d["revision"], rev);
    let (st, v) = c.agent_status(&h, &report(rev, AgentState::Isolated)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "quarantined");
    // A repeated identical report adds no audit record.
    c.agent_status(&h, &report(rev, AgentState::Isolated)).await;
    let audit = c.audit_for(&h).await;
    assert_eq!(audit.len(), n0 + 2);
    assert_eq!(audit.last().unwrap().action, "quarantine_confirmed");

    // Tampering is reported and audited.
    c.agent_status(&h, &report(rev, AgentState::Tampered)).await;
    let (_, host) = c.call("GET", &format!("/v1/hosts/{h}"), Some(&c.viewer), None).await;
    assert_eq!(host["state"], "tampered");
    c.agent_status(&h, &report(rev, AgentState::Isolated)).await;

    let (st, v) = c
        .call(
            "POST",
            "/v1/release",
            Some(&c.responder),
            Some(&json!({"hosts": ["web1"], "comment": "clean"}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["results"][0]["state"], "release_pending");
    let (_, host) = c.call("GET", "/v1/hosts/web1", Some(&c.viewer), None).await;
    assert_eq!(host["labels"], json!(["prod"]));
    let rev2 = v["results"][0]["revision"].as_i64().unwrap();
    let (_, v) = c.agent_status(&h, &report(rev2, AgentState::Released)).await;
    assert_eq!(v["state"], "normal");
    let actions: Vec<String> = c.audit_for(&h).await.iter().map(|r| r.action.clone()).collect();
    assert_eq!(
        actions,
        [
            "enroll",
            "quarantine",
            "quarantine_confirmed",
            "tampered",
            // The same revision again after the repair: audited, not announced again.
            "quarantine_reconfirmed",
            "release",
            "release_confirmed"
        ]
    );
}

#[tokio::test]
async fn quarantine_label_and_bulk_by_label() {
    let c = Ctx::new().await;
    let a = c.enroll("a", &["dmz"]).await;
    let b = c.enroll("b", &["dmz"]).await;
    let other = c.enroll("c", &[]).await;
    // Adding the Quarantine label needs a comment, and quarantines.
    let (st, _) = c
        .call(
            "POST",
            &format!("/v1/hosts/{a}/labels"),
            Some(&c.responder),
            Some(r#"{"add":["Quarantine"]}"#),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, v) = c
        .call(
            "POST",
            &format!("/v1/hosts/{a}/labels"),
            Some(&c.responder),
            Some(r#"{"add":["Quarantine"],"comment":"velociraptor"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "quarantine_pending");
    assert_eq!(v["desired"]["quarantined"], true);
    let (_, v) = c
        .call(
            "POST",
            &format!("/v1/hosts/{a}/labels"),
            Some(&c.responder),
            Some(r#"{"remove":["Quarantine"],"comment":"done"}"#),
        )
        .await;
    assert_eq!(v["desired"]["quarantined"], false);
    assert_eq!(v["state"], "release_pending");

    let (st, v) = c
        .call(
            "POST",
            "/v1/quarantine",
            Some(&c.responder),
            Some(r#"{"label":"dmz","comment":"worm"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), 2);
    let (_, list) = c.call("GET", "/v1/hosts?label=Quarantine", Some(&c.viewer), None).await;
    let mut ids: Vec<String> = list["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(ids, want);
    // `other`'s agent never reported: it is listed as never reported, not normal (trial30
    // LOW-1; this expectation changed deliberately, it was `state=normal`).
    let (_, list) = c
        .call("GET", "/v1/hosts?state=never_reported", Some(&c.viewer), None)
        .await;
    assert_eq!(list["hosts"][0]["id"], other);
    let (_, list) = c.call("GET", "/v1/hosts?state=normal", Some(&c.viewer), None).await;
    assert_eq!(list["hosts"].as_array().unwrap().len(), 0, "{list}");
    let (st, _) = c.call("GET", "/v1/hosts?state=bogus", Some(&c.viewer), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn expiry_releases_as_system() {
    let c = Ctx::new().await;
    let h = c.enroll("web1", &[]).await;
    let soon = cordon_server::timefmt::to_rfc3339(cordon_server::timefmt::now_ms() + 400);
    let body = json!({"comment": "short", "expires_at": soon}).to_string();
    let (st, v) = c
        .call(
            "POST",
            &format!("/v1/hosts/{h}/quarantine"),
            Some(&c.responder),
            Some(&body),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(cordon_server::expiry::sweep(c.store(), &c.state.hub)
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        cordon_server::expiry::sweep(c.store(), &c.state.hub).await.unwrap(),
        vec![h.clone()]
    );
    let (_, host) = c.call("GET", &format!("/v1/hosts/{h}"), Some(&c.viewer), None).await;
    assert_eq!(host["desired"]["quarantined"], false);
    assert_eq!(host["desired"]["actor"], "system");
    let last = c.audit_for(&h).await.pop().unwrap();
    assert_eq!((last.actor.as_str(), last.action.as_str()), ("system", "release"));
    // Nothing more to do.
    assert!(cordon_server::expiry::sweep(c.store(), &c.state.hub)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn long_poll_wakes_on_change_and_revocation_is_immediate() {
    let c = Ctx::new().await;
    let h = c.enroll("web1", &[]).await;
    let (_, d) = c.call_as("GET", "/v1/agent/desired", None, None, Some(&h)).await;
    let rev = d["revision"].as_i64().unwrap();
    let app = c.app.clone();
    let h2 = h.clone();
    let waiter = tokio::spawn(async move {
        use tower::ServiceExt;
        let mut req = axum::http::Request::get(format!("/v1/agent/desired?since={rev}&wait=10"))
            .body(axum::body::Body::empty())
            .unwrap();
        req.extensions_mut().insert(cordon_server::auth::PeerIdentity(h2));
        let started = std::time::Instant::now();
        let resp = app.oneshot(req).await.unwrap();
        (resp.status(), started.elapsed())
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (st, _) = c
        .call(
            "POST",
            &format!("/v1/hosts/{h}/quarantine"),
            Some(&c.responder),
            Some(Q),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (status, took) = waiter.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(took < std::time::Duration::from_secs(2), "long-poll took {took:?}");

    // No client certificate: 401. Unknown host id: 403.
    let (st, _) = c.call("GET", "/v1/agent/desired", None, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = c
        .call_as("GET", "/v1/agent/desired", None, None, Some("not-a-host"))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Revoke (forced: the host is quarantined): refused at once, audited once.
    let (st, v) = c
        .call(
            "POST",
            &format!("/v1/hosts/{h}/revoke"),
            Some(&c.admin),
            Some(r#"{"comment":"stolen laptop","force":true}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = c.call_as("GET", "/v1/agent/desired", None, None, Some(&h)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = c.agent_status(&h, &report(1, AgentState::Released)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(c.audit_for(&h).await.iter().filter(|r| r.action == "revoke").count(), 1);
}

#[tokio::test]
async fn audit_export_tokens_and_openapi() {
    let c = Ctx::new().await;
    // CSV quoting is exercised by the comment (a hostname with a comma is refused at
    // enrollment: the hostname rule, cordon_proto::hostname).
    let h = c.enroll("web1", &[]).await;
    c.call(
        "POST",
        &format!("/v1/hosts/{h}/quarantine"),
        Some(&c.responder),
        Some(r#"{"comment":"has, comma \"quoted\""}"#),
    )
    .await;
    let (st, csv) = c
        .raw(
            "GET",
            &format!("/v1/audit?host={h}&format=csv"),
            Some(&c.viewer),
            None,
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    // trial33 MED-C: the identity columns follow the nine first ones.
    assert!(csv.starts_with("id,at,actor,action,host_id,hostname,comment,result,detail,actor_token_id,rule,event_id\n"));
    assert!(csv.contains("\"has, comma \"\"quoted\"\"\""), "{csv}");
    let (_, jsonl) = c
        .raw(
            "GET",
            "/v1/audit?actor=rita-responder&format=jsonl",
            Some(&c.viewer),
            None,
            None,
        )
        .await;
    assert_eq!(jsonl.lines().count(), 1);
    let (st, _) = c.call("GET", "/v1/audit?since=yesterday", Some(&c.viewer), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (_, v) = c
        .call("GET", "/v1/audit?since=2100-01-01T00:00:00Z", Some(&c.viewer), None)
        .await;
    assert_eq!(v["records"].as_array().unwrap().len(), 0);

    let (st, v) = c
        .call(
            "POST",
            "/v1/tokens",
            Some(&c.admin),
            Some(r#"{"name":"ci","role":"viewer"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let tok = v["token"].as_str().unwrap().to_string();
    let (st, _) = c.call("GET", "/v1/hosts", Some(&tok), None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = c
        .call("DELETE", &format!("/v1/tokens/{}", v["id"]), Some(&c.admin), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = c.call("GET", "/v1/hosts", Some(&tok), None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, v) = c
        .call(
            "POST",
            "/v1/enrollment-tokens",
            Some(&c.admin),
            Some(r#"{"labels":["x"],"ttl_secs":60}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");

    let (st, doc) = c.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(doc["paths"]["/v1/hosts/{id}/quarantine"]["post"].is_object(), "{doc}");
    assert!(doc["components"]["schemas"]["ActionRequest"].is_object());
    assert!(
        doc["paths"]["/v1/hosts/{id}/retry"]["post"].is_object(),
        "retry is documented"
    );
    assert!(doc["components"]["schemas"]["RetryRequest"].is_object());
}

#[tokio::test]
async fn enrollment_tokens_are_one_time() {
    let c = Ctx::new().await;
    let tok = c.store().create_enroll_token("t", &[], 3600).await.unwrap().token;
    let (_key, csr) = common::csr();
    let body = json!({"token": tok, "csr_pem": csr, "hostname": "h"}).to_string();
    let (st, v) = c.call("POST", "/v1/enroll", None, Some(&body)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let before = c.snapshot().await;
    let (st, v) = c.call("POST", "/v1/enroll", None, Some(&body)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"], "invalid_token");
    let bad = json!({"token": "enroll_nope", "csr_pem": csr, "hostname": "h"}).to_string();
    let (st, _) = c.call("POST", "/v1/enroll", None, Some(&bad)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(before, c.snapshot().await);
    // The certificate names the new host.
    let cert = v.clone();
    let _ = cert;
}

/// Revoking a quarantined host would leave it quarantined for good: refused unless
/// forced; a release ordered before a (forced) revocation still reaches the agent.
#[tokio::test]
async fn revoking_a_quarantined_host_needs_release_or_force() {
    let c = Ctx::new().await;
    let h = c.enroll("web1", &[]).await;
    let (st, v) = c
        .call("POST", &format!("/v1/hosts/{h}/quarantine"), Some(&c.admin), Some(Q))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let rev = v["results"][0]["revision"].as_i64().unwrap();
    c.agent_status(&h, &report(rev, AgentState::Isolated)).await;

    let (st, v) = c
        .call("POST", &format!("/v1/hosts/{h}/revoke"), Some(&c.admin), Some("{}"))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("--force"), "{v}");

    // Release ordered, then a forced revocation before the agent confirmed it.
    let (st, v) = c
        .call("POST", &format!("/v1/hosts/{h}/release"), Some(&c.admin), Some(Q))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let release_rev = v["results"][0]["revision"].as_i64().unwrap();
    let (st, v) = c
        .call("POST", &format!("/v1/hosts/{h}/revoke"), Some(&c.admin), Some("{}"))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "release not confirmed yet: {v}");
    let (st, v) = c
        .call(
            "POST",
            &format!("/v1/hosts/{h}/revoke"),
            Some(&c.admin),
            Some(r#"{"force": true}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["revoked"], true);
    // The revoked agent still confirms the release…
    let (st, v) = c.agent_status(&h, &report(release_rev, AgentState::Released)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, v) = c.call("GET", &format!("/v1/hosts/{h}"), Some(&c.admin), None).await;
    assert_eq!(v["state"], "normal", "{v}");
    // …and is refused from then on.
    let (st, _) = c.agent_status(&h, &report(release_rev, AgentState::Released)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
}

/// A failure report about revision N does not make N "applied".
#[tokio::test]
async fn a_failed_revision_is_never_reported_applied() {
    let c = Ctx::new().await;
    let h = c.enroll("web2", &[]).await;
    let (_, v) = c
        .call("POST", &format!("/v1/hosts/{h}/quarantine"), Some(&c.admin), Some(Q))
        .await;
    let rev = v["results"][0]["revision"].as_i64().unwrap();
    c.agent_status(&h, &report(rev, AgentState::Failed)).await;
    let (_, v) = c.call("GET", &format!("/v1/hosts/{h}"), Some(&c.admin), None).await;
    assert_eq!(v["state"], "failed", "{v}");
    assert!(v["applied_revision"].as_i64().unwrap() < rev, "{v}");
    let mut degraded = report(rev, AgentState::Isolated);
    degraded.degraded = vec!["exception https://edr.example.net unresolved: no such name".into()];
    c.agent_status(&h, &degraded).await;
    let (_, v) = c.call("GET", &format!("/v1/hosts/{h}"), Some(&c.admin), None).await;
    assert_eq!(v["state"], "quarantined", "{v}");
    assert_eq!(v["applied_revision"].as_i64().unwrap(), rev, "{v}");
    assert!(
        v["state_reason"]
            .as_str()
            .unwrap()
            .starts_with("degraded: exception https://edr.example.net"),
        "{v}"
    );
}

/// trial8 HIGH 1 for the API path: `POST /v1/quarantine` (and release) by label acts on
/// a reviewed set when the request carries one — a preview's `if_revisions` — or on
/// none (409 naming `+added`/`-removed` hosts, or the host that changed; nothing
/// written). Without a reviewed set it acts on the label's hosts at request time
/// (documented), and its answer names each host's revision before the action.
#[tokio::test]
async fn label_actions_act_only_on_the_reviewed_set_when_given_one() {
    let c = Ctx::new().await;
    let a = c.enroll("db-a", &["db"]).await;
    let b = c.enroll("db-b", &["db"]).await;
    let other = c.enroll("ws-1", &[]).await;
    let preview = json!({"label": "db", "comment": "IR-5", "preview": true}).to_string();
    let (st, v) = c
        .call("POST", "/v1/quarantine", Some(&c.responder), Some(&preview))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let reviewed = v["if_revisions"].clone();
    assert_eq!(reviewed.as_object().unwrap().len(), 2, "{v}");
    assert_eq!(reviewed[&a], 1, "{v}");
    let run = |revs: &serde_json::Value| json!({"label": "db", "comment": "IR-5", "if_revisions": revs}).to_string();
    // ws-1 gains the label after the review: refused, naming it; nothing written.
    let (st, v) = c
        .call(
            "POST",
            &format!("/v1/hosts/{other}/labels"),
            Some(&c.responder),
            Some(r#"{"add":["db"]}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let before = c.snapshot().await;
    let (st, v) = c
        .call("POST", "/v1/quarantine", Some(&c.responder), Some(&run(&reviewed)))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("label db changed since your review: +ws-1"), "{detail}");
    assert_eq!(c.snapshot().await, before, "a refused label action wrote something");
    // db-b loses it: named with a minus.
    for (h, body) in [(&other, r#"{"remove":["db"]}"#), (&b, r#"{"remove":["db"]}"#)] {
        let (st, _) = c
            .call("POST", &format!("/v1/hosts/{h}/labels"), Some(&c.responder), Some(body))
            .await;
        assert_eq!(st, StatusCode::OK);
    }
    let (st, v) = c
        .call("POST", "/v1/release", Some(&c.responder), Some(&run(&reviewed)))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("-db-b"), "{v}");
    // Same set, but db-a moved on (quarantined by hand): refused, naming it.
    let (st, _) = c
        .call(
            "POST",
            &format!("/v1/hosts/{a}/quarantine"),
            Some(&c.responder),
            Some(Q),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let only_a = json!({ a.clone(): 1 });
    let (st, v) = c
        .call("POST", "/v1/release", Some(&c.responder), Some(&run(&only_a)))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("host db-a changed since your view"),
        "{v}"
    );
    // The reviewed set as it is: acted on.
    let now = json!({ a.clone(): 2 });
    let (st, v) = c
        .call("POST", "/v1/release", Some(&c.responder), Some(&run(&now)))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["results"][0]["change"], "released", "{v}");
    // Without a reviewed set: the label's hosts when the request is handled.
    let (st, _) = c
        .call(
            "POST",
            &format!("/v1/hosts/{other}/labels"),
            Some(&c.responder),
            Some(r#"{"add":["db"]}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = c
        .call(
            "POST",
            "/v1/quarantine",
            Some(&c.responder),
            Some(r#"{"label":"db","comment":"IR-6"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let names: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{v}");
    assert!(names.contains(&"db-a") && names.contains(&"ws-1"), "{v}");
    assert_eq!(v["if_revisions"][&other], 1, "revisions before the action: {v}");
}

/// trial13 MED 2: a review that found no host is a reviewed set too. The preview of a
/// label nobody carries answers `if_revisions: {}`; sent back after a host gained the
/// label it acts on none (409 naming `+host`, nothing written) — before, `{}` was read
/// as "no reviewed set" and the host nobody reviewed was quarantined.
#[tokio::test]
async fn an_empty_reviewed_set_acts_on_no_host() {
    let c = Ctx::new().await;
    let h = c.enroll("stg-1", &[]).await;
    let preview = json!({"label": "staging", "comment": "IR-7", "preview": true}).to_string();
    let (st, v) = c
        .call("POST", "/v1/quarantine", Some(&c.responder), Some(&preview))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        v["if_revisions"],
        json!({}),
        "a preview always names its reviewed set: {v}"
    );
    let (st, _) = c
        .call(
            "POST",
            &format!("/v1/hosts/{h}/labels"),
            Some(&c.responder),
            Some(r#"{"add":["staging"]}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let before = c.snapshot().await;
    for path in ["/v1/quarantine", "/v1/release"] {
        let body = json!({"label": "staging", "comment": "IR-7", "if_revisions": {}}).to_string();
        let (st, v) = c.call("POST", path, Some(&c.responder), Some(&body)).await;
        assert_eq!(st, StatusCode::CONFLICT, "{path}: {v}");
        assert!(v["detail"].as_str().unwrap().contains("+stg-1"), "{path}: {v}");
    }
    assert_eq!(c.snapshot().await, before, "an empty review acted on a host");
}

/// Issue 14: a label nobody carries matched no host, and the action answered 200 with no
/// results (the CLI said "no matching hosts", exit 0: a SOAR step with a mistyped label
/// reported success). Now 404 naming the label, nothing written; a preview still answers
/// its empty reviewed set (`if_revisions: {}`), which sent back acts on none (404 too).
#[tokio::test]
async fn a_label_no_host_carries_is_refused_naming_it() {
    let c = Ctx::new().await;
    let _h = c.enroll("web-1", &["web"]).await;
    let before = c.snapshot().await;
    for path in ["/v1/quarantine", "/v1/release"] {
        let body = json!({"label": "wbe", "comment": "IR-8"}).to_string();
        let (st, v) = c.call("POST", path, Some(&c.responder), Some(&body)).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {v}");
        assert!(
            v["detail"].as_str().unwrap().contains("no host carries label \"wbe\""),
            "{path}: {v}"
        );
        let body = json!({"label": "wbe", "comment": "IR-8", "if_revisions": {}}).to_string();
        let (st, v) = c.call("POST", path, Some(&c.responder), Some(&body)).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path} with an empty review: {v}");
        let body = json!({"label": "wbe", "comment": "IR-8", "preview": true}).to_string();
        let (st, v) = c.call("POST", path, Some(&c.responder), Some(&body)).await;
        assert_eq!(st, StatusCode::OK, "{path} preview: {v}");
        assert_eq!(v["if_revisions"], json!({}), "{v}");
    }
    assert_eq!(c.snapshot().await, before, "a label nobody carries changed something");
}

/// Issue 14: `expires_at` far ahead (`--expires 999999999d`) was cut to 9999-12-31 without
/// a word. Now beyond `MAX_EXPIRY_SECS` (366 days, an hour's leeway for the caller's
/// clock) it is refused naming the limit, nothing written; within it is accepted.
#[tokio::test]
async fn an_expiry_beyond_the_limit_is_refused_naming_it() {
    let c = Ctx::new().await;
    let h = c.enroll("web-2", &[]).await;
    let path = format!("/v1/hosts/{h}/quarantine");
    let before = c.snapshot().await;
    let now = cordon_proto::timefmt::now_ms();
    let day = 86_400_000_i64;
    for ahead in [367 * day, 400 * day] {
        let t = cordon_proto::timefmt::to_rfc3339(now + ahead);
        let body = json!({"comment": "x", "expires_at": t}).to_string();
        let (st, v) = c.call("POST", &path, Some(&c.responder), Some(&body)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{t}: {v}");
        assert!(
            v["detail"].as_str().unwrap().contains("more than 366 days ahead"),
            "{v}"
        );
    }
    let body = json!({"hosts": [h], "comment": "x", "expires_at": "9999-12-31T23:59:59Z"}).to_string();
    let (st, v) = c.call("POST", "/v1/quarantine", Some(&c.responder), Some(&body)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "bulk, the clamped date itself: {v}");
    assert_eq!(c.snapshot().await, before, "a refused expiry changed something");
    let t = cordon_proto::timefmt::to_rfc3339(now + 366 * day);
    let body = json!({"comment": "x", "expires_at": t}).to_string();
    let (st, v) = c.call("POST", &path, Some(&c.responder), Some(&body)).await;
    assert_eq!(st, StatusCode::OK, "366 days is within the limit: {v}");
}
