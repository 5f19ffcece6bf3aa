//! Limits on what callers can make the server parse and store (issue 15): 413 for large
//! bodies, the role checked before the body, bounded agent-reported fields, per-host
//! label and exception limits, and repeated agent reports collapsed in the audit log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use common::{status_report, Ctx};
use cordon_proto::AgentState;
use cordon_server::limits::{AGENT_AUDIT_PER_WINDOW, MAX_DETAIL_CHARS, MAX_LABELS_PER_HOST};
use serde_json::json;

#[tokio::test]
async fn oversized_body_is_413_and_changes_nothing() {
    let c = Ctx::new().await;
    c.enroll("web1", &["web"]).await;
    let before = c.snapshot().await;
    let huge = json!({"label": "web", "comment": "x".repeat(2 * 1024 * 1024)}).to_string();
    let (st, v) = c.call("POST", "/v1/quarantine", Some(&c.responder), Some(&huge)).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"], "too_large");
    assert_eq!(c.snapshot().await, before);
}

#[tokio::test]
async fn role_is_checked_before_the_body_is_parsed() {
    let c = Ctx::new().await;
    let id = c.enroll("web1", &["web"]).await;
    let huge = "x".repeat(2 * 1024 * 1024);
    for (path, token) in [
        ("/v1/quarantine".to_string(), &c.viewer),
        (format!("/v1/hosts/{id}/quarantine"), &c.viewer),
        (format!("/v1/hosts/{id}/labels"), &c.viewer),
        (format!("/v1/hosts/{id}/revoke"), &c.responder),
        ("/v1/tokens".to_string(), &c.responder),
        ("/v1/enrollment-tokens".to_string(), &c.viewer),
    ] {
        // Malformed and oversized bodies alike: a caller below the role gets 403.
        for body in ["{not json", huge.as_str()] {
            let (st, v) = c.call("POST", &path, Some(token), Some(body)).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{path}: {v}");
        }
    }
}

#[tokio::test]
async fn labels_and_exceptions_per_host_are_limited() {
    let c = Ctx::new().await;
    let id = c.enroll("web1", &["web"]).await;
    let many: Vec<String> = (0..MAX_LABELS_PER_HOST).map(|i| format!("l{i}")).collect();
    let before = c.snapshot().await;
    let (st, v) = c
        .call(
            "POST",
            &format!("/v1/hosts/{id}/labels"),
            Some(&c.responder),
            Some(&json!({"add": many}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("labels"), "{v}");
    assert_eq!(c.snapshot().await, before, "a refused label change wrote nothing");
    let allow: Vec<String> = (0..65).map(|i| format!("192.0.2.{i}")).collect();
    let (st, v) = c
        .call(
            "POST",
            &format!("/v1/hosts/{id}/quarantine"),
            Some(&c.responder),
            Some(&json!({"comment": "IR-1", "allow": allow}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(c.snapshot().await, before);
}

#[tokio::test]
async fn agent_reported_fields_are_bounded() {
    let c = Ctx::new().await;
    let id = c.enroll("web1", &["web"]).await;
    let mut r = status_report(1, AgentState::Tampered, "d", "nftables");
    r.detail = Some("x".repeat(500_000));
    r.os = Some("o".repeat(50_000));
    r.addresses = vec!["192.0.2.1".parse().unwrap(); 10_000];
    let (st, v) = c.agent_status(&id, &r).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let h = c.store().host(&id).await.unwrap();
    assert_eq!(h.state.as_str(), "tampered");
    assert!(h.state_reason.unwrap().chars().count() <= MAX_DETAIL_CHARS);
    assert!(h.os.unwrap().len() <= 1024);
    assert!(h.addresses.len() <= 64);
    let audit = c.audit_for(&id).await;
    let last = audit.last().unwrap();
    assert!(
        last.detail.as_deref().unwrap().len() < 4 * 1024,
        "audit detail is bounded"
    );
}

#[tokio::test]
async fn flapping_agent_reports_are_collapsed_in_the_audit() {
    let c = Ctx::new().await;
    let id = c.enroll("web1", &["web"]).await;
    let (st, _) = c
        .call(
            "POST",
            &format!("/v1/hosts/{id}/quarantine"),
            Some(&c.responder),
            Some(r#"{"comment":"IR-1"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let before = c.audit_for(&id).await.len();
    // A compromised agent alternating tampered / isolated as fast as it can.
    for i in 0..200 {
        let state = if i % 2 == 0 {
            AgentState::Tampered
        } else {
            AgentState::Isolated
        };
        let (st, _) = c.agent_status(&id, &status_report(2, state, "d", "nftables")).await;
        assert_eq!(st, StatusCode::OK);
    }
    let written = c.audit_for(&id).await.len() - before;
    assert_eq!(
        written as i64, AGENT_AUDIT_PER_WINDOW,
        "repeats beyond the limit are counted, not written"
    );
    // The host's state is still exactly what the agent last said.
    assert_eq!(c.store().host(&id).await.unwrap().state.as_str(), "quarantined");
}
