//! Automatic actions carry their event and rule as audit fields (issue 13), on SQLite and
//! (with `CORDON_TEST_POSTGRES`) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "../../cordon-server/tests/common/mod.rs"]
mod common;

use axum::http::StatusCode;
use common::Ctx;
use serde_json::json;

#[tokio::test]
async fn automatic_actions_record_event_and_rule_as_audit_fields() {
    let c = Ctx::new().await;
    let web = c.enroll("web1", &["servers"]).await;
    let rule = json!({"name": "edr-critical", "trigger_event_types": ["malware"], "trigger_labels": ["servers"]});
    let (st, v) = c
        .call("POST", "/v1/rules", Some(&c.admin), Some(&rule.to_string()))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let event = json!({"host": "web1", "type": "malware", "severity": "critical"});
    let (st, v) = c
        .call("POST", "/v1/events", Some(&c.responder), Some(&event.to_string()))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["events"][0]["status"], "quarantined", "{v}");
    let event_id = v["events"][0]["id"].as_str().unwrap().to_string();

    let audit = c.audit_for(&web).await;
    let q = audit.iter().find(|a| a.action == "quarantine").unwrap();
    assert_eq!(q.event_id.as_deref(), Some(event_id.as_str()), "{q:?}");
    assert_eq!(q.rule.as_deref(), Some("edr-critical"), "{q:?}");
    // The rule change itself names the rule; an analyst's action names neither.
    let (_, v) = c
        .call("GET", "/v1/audit?action=rule_create", Some(&c.admin), None)
        .await;
    assert_eq!(v["records"][0]["rule"], "edr-critical", "{v}");
    assert!(v["records"][0].get("event_id").is_none(), "{v}");
    let (st, v) = c
        .call(
            "POST",
            &format!("/v1/hosts/{web}/release"),
            Some(&c.responder),
            Some(r#"{"comment": "false positive"}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let audit = c.audit_for(&web).await;
    let r = audit.iter().find(|a| a.action == "release").unwrap();
    assert_eq!((r.event_id.as_deref(), r.rule.as_deref()), (None, None), "{r:?}");
}
