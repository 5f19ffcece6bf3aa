//! Automation, in-process (tower oneshot, temp SQLite): intake, rules, guardrails,
//! approvals, audit, notification outbox against a loopback receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

#[path = "../../cordon-server/tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::Ctx;
use cordon_server::automation::{self, notify::DeliveryConfig, WorkerConfig};
use cordon_server::store::AuditFilter;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

fn rule(name: &str, labels: &[&str]) -> String {
    json!({"name": name, "trigger_event_types": ["wazuh.alert", "malware"], "only_critical": true,
        "trigger_labels": labels, "allow": ["tcp://192.0.2.7:1514"], "message": "Isolated by security", "expires_after": "4h"})
    .to_string()
}

fn event(host: &str) -> String {
    json!({"host": host, "type": "malware", "severity": "critical", "source": "edr", "raw": {"sig": "x"}}).to_string()
}

async fn post(c: &Ctx, path: &str, token: &str, body: &str) -> Value {
    let (st, v) = c.call("POST", path, Some(token), Some(body)).await;
    assert_eq!(st, StatusCode::OK, "{path}: {v}");
    v
}

#[tokio::test]
async fn qualifying_event_quarantines_and_audits_rule_and_event() {
    let c = Ctx::new().await;
    let web = c.enroll("web1", &["servers"]).await;
    let lap = c.enroll("lap1", &["laptops"]).await;
    let dc = c.enroll("dc1", &["servers", "cordon-protected"]).await;
    let r = post(&c, "/v1/rules", &c.admin, &rule("edr-critical", &["servers"])).await;
    assert_eq!(r["active"], true, "{r}");

    // Responder may post events, viewer may not.
    let (st, _) = c
        .call("POST", "/v1/events", Some(&c.viewer), Some(&event("web1")))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let v = post(&c, "/v1/events", &c.responder, &event("web1")).await;
    let ev = &v["events"][0];
    assert_eq!(ev["status"], "quarantined", "{v}");
    assert_eq!(ev["host_id"], web.as_str());
    let event_id = ev["id"].as_str().unwrap().to_string();
    let host = c.store().host(&web).await.unwrap();
    assert!(host.desired.quarantined);
    assert_eq!(host.desired.actor.as_deref(), Some("rule:edr-critical"));
    assert_eq!(host.desired.allow, vec!["tcp://192.0.2.7:1514"]);
    assert!(host.desired.expires_at.is_some());
    let audit = c.audit_for(&web).await;
    let q = audit.iter().find(|a| a.action == "quarantine").unwrap();
    assert_eq!(q.actor, "rule:edr-critical");
    assert!(
        q.detail.as_deref().unwrap().contains(&format!("event={event_id}")),
        "{q:?}"
    );
    assert!(q.comment.as_deref().unwrap().contains(&event_id));

    // Not in a trigger label; protected; unknown host (recorded, not dropped); by IP.
    let v = post(&c, "/v1/events", &c.responder, &event("lap1")).await;
    assert_eq!(v["events"][0]["status"], "no_match");
    let v = post(&c, "/v1/events", &c.responder, &event("dc1")).await;
    assert_eq!(v["events"][0]["status"], "suppressed");
    assert!(v["events"][0]["outcomes"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("protected"));
    assert!(!c.store().host(&dc).await.unwrap().desired.quarantined);
    let v = post(&c, "/v1/events", &c.responder, &event("ghost")).await;
    assert_eq!(v["events"][0]["status"], "unknown_host");
    assert!(v["events"][0]["host_id"].is_null());
    // Again for web1: already quarantined, no second action.
    let v = post(&c, "/v1/events", &c.responder, &event("WEB1")).await;
    assert_eq!(v["events"][0]["status"], "suppressed", "{v}");
    assert!(!c.store().host(&lap).await.unwrap().desired.quarantined);
    assert_eq!(
        c.audit_for(&web)
            .await
            .iter()
            .filter(|a| a.action == "quarantine")
            .count(),
        1
    );

    // Events are listed, newest first, filterable.
    let (_, v) = c
        .call("GET", "/v1/events?status=unknown_host", Some(&c.viewer), None)
        .await;
    assert_eq!(v["events"].as_array().unwrap().len(), 1);
    assert_eq!(v["events"][0]["host_ref"], "ghost");
    let (_, v) = c
        .call("GET", &format!("/v1/events/{event_id}"), Some(&c.viewer), None)
        .await;
    assert_eq!(v["raw"]["sig"], "x");
}

#[tokio::test]
async fn invalid_rules_are_stored_disabled_and_labels_must_resolve() {
    let c = Ctx::new().await;
    c.enroll("web1", &["servers"]).await;
    c.enroll("web2", &["Servers"]).await;
    // Invalid: stored, not active, with the reason; never fires.
    let bad =
        json!({"name": "bad", "trigger_event_types": ["malware"], "trigger_labels": ["servers"], "mode": "maybe"})
            .to_string();
    let r = post(&c, "/v1/rules", &c.admin, &bad).await;
    assert_eq!(r["active"], false);
    assert!(r["disabled_reason"].as_str().unwrap().contains("mode"), "{r}");
    // Responders cannot write rules; malformed JSON is refused.
    let (st, _) = c
        .call("POST", "/v1/rules", Some(&c.responder), Some(&rule("x", &["servers"])))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = c.call("POST", "/v1/rules", Some(&c.admin), Some("{\"name\": 1}")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Typed fields: an unknown rule action or event severity is refused at the edge,
    // naming the field; nothing is stored (shape17; an unknown action was stored disabled).
    let delete =
        json!({"name": "del", "trigger_event_types": ["malware"], "trigger_labels": ["servers"], "action": "delete"});
    let (st, v) = c
        .call("POST", "/v1/rules", Some(&c.admin), Some(&delete.to_string()))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "invalid_input", "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("action: unknown variant `delete`"),
        "{v}"
    );
    let (st, _) = c.call("GET", "/v1/rules/del", Some(&c.admin), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let sev = json!({"host": "web1", "type": "malware", "severity": "urgent"});
    let (st, v) = c
        .call("POST", "/v1/events", Some(&c.responder), Some(&sev.to_string()))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains("severity: severity \"urgent\" must be info, low, medium, high or critical"),
        "{v}"
    );
    // Case and the aliases still read.
    let sev = json!({"host": "ghost", "type": "malware", "severity": "Moderate"});
    let v = post(&c, "/v1/events", &c.responder, &sev.to_string()).await;
    assert_eq!(v["events"][0]["severity"], "medium", "{v}");
    // `servers` has a near-duplicate `Servers`: the rule does not fire and says why.
    post(&c, "/v1/rules", &c.admin, &rule("edr", &["servers"])).await;
    let v = post(&c, "/v1/events", &c.responder, &event("web1")).await;
    let ev = &v["events"][0];
    assert_eq!(ev["status"], "no_match", "{v}");
    let outcomes = ev["outcomes"].as_array().unwrap();
    assert_eq!(outcomes[0]["outcome"], "disabled");
    assert_eq!(outcomes[1]["outcome"], "rule_error");
    assert!(outcomes[1]["reason"].as_str().unwrap().contains("ambiguous"), "{v}");
    // Fix the rule (PUT replaces); listing shows both.
    let (st, r) = c
        .call("PUT", "/v1/rules/bad", Some(&c.admin), Some(&rule("bad", &["Servers"])))
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["active"], true);
    let (_, v) = c.call("GET", "/v1/rules", Some(&c.viewer), None).await;
    assert_eq!(v["rules"].as_array().unwrap().len(), 2);
    let (st, _) = c.call("DELETE", "/v1/rules/bad", Some(&c.admin), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}

/// trial13 MED 1, the kind: a new label was checked for look-alikes only against the
/// labels hosts carry now, so a rule's trigger label `wеb` (Cyrillic е) next to `web`,
/// a host's `WS` next to a rule's `ws` and `quarantine` next to the server's own
/// `Quarantine` were all saved. Every place a label is saved (host labels, rule trigger
/// labels, protected labels, enrollment-token labels) checks against every label known
/// anywhere: a look-alike is a 409 naming the existing label and stores nothing; exact
/// re-use is fine; a space inside a label is a 400.
#[tokio::test]
async fn every_place_a_label_is_saved_refuses_look_alikes_of_labels_known_anywhere() {
    let c = Ctx::new().await;
    let h = c.enroll("web1", &["web"]).await;
    post(&c, "/v1/rules", &c.admin, &rule("edr", &["ws"])).await;
    post(
        &c,
        "/v1/enrollment-tokens",
        &c.admin,
        r#"{"labels":["laptops"],"ttl_secs":600}"#,
    )
    .await;
    let (st, v) = c
        .call(
            "PUT",
            "/v1/automation/settings",
            Some(&c.admin),
            Some(r#"{"protected_labels":["dc"]}"#),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // Where a label is saved, and the request body saving `l` there.
    type Place = (&'static str, &'static str, fn(&str, &str) -> String);
    let places: Vec<Place> = vec![
        ("PUT", "/v1/rules/other", |_, l| rule("other", &[l])),
        ("POST", "HOST", |_, l| json!({"add": [l]}).to_string()),
        ("POST", "/v1/enrollment-tokens", |_, l| {
            json!({"labels": [l], "ttl_secs": 60}).to_string()
        }),
        // Replaces the protected list: its own old `dc` may be renamed `DC` (not below).
        ("PUT", "/v1/automation/settings", |_, l| {
            json!({"protected_labels": [l]}).to_string()
        }),
    ];
    let host_path = format!("/v1/hosts/{h}/labels");
    let before = c.call("GET", "/v1/audit", Some(&c.admin), None).await.1["records"]
        .as_array()
        .map(Vec::len);
    for (method, path, body) in &places {
        let path = if *path == "HOST" { host_path.as_str() } else { path };
        for (new, existing) in [
            ("Web", "web"),
            ("w\u{0435}b", "web"),
            ("WS", "ws"),
            ("Laptops", "laptops"),
            ("DC", "dc"),
            ("quarantine", "Quarantine"),
        ] {
            if path == "/v1/automation/settings" && existing == "dc" {
                continue;
            }
            let (st, v) = c.call(method, path, Some(&c.admin), Some(&body(path, new))).await;
            assert_eq!(st, StatusCode::CONFLICT, "{method} {path} {new:?}: {v}");
            let detail = v["detail"].as_str().unwrap_or_default();
            assert!(
                detail.contains(&format!("existing label {existing:?}")),
                "{method} {path} {new:?}: {detail}"
            );
        }
        let (st, v) = c.call(method, path, Some(&c.admin), Some(&body(path, "w eb"))).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{method} {path}: {v}");
        assert!(v["detail"].as_str().unwrap_or_default().contains("space"), "{v}");
    }
    // Nothing was stored by any refusal.
    let after = c.call("GET", "/v1/audit", Some(&c.admin), None).await.1["records"]
        .as_array()
        .map(Vec::len);
    assert!(before.is_some_and(|n| n > 0), "audit records readable");
    assert_eq!(before, after, "a refused label left a trace");
    let (st, _) = c.call("GET", "/v1/rules/other", Some(&c.viewer), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Exact re-use of a known label is fine everywhere.
    for (method, path, body) in &places {
        let path = if *path == "HOST" { host_path.as_str() } else { path };
        for l in ["web", "ws", "laptops"] {
            let (st, v) = c.call(method, path, Some(&c.admin), Some(&body(path, l))).await;
            assert_eq!(st, StatusCode::OK, "{method} {path} {l:?}: {v}");
        }
    }
}

#[tokio::test]
async fn kill_switch_cooldown_and_notify_only() {
    let c = Ctx::new().await;
    let web = c.enroll("web1", &["servers"]).await;
    post(&c, "/v1/rules", &c.admin, &rule("edr", &["servers"])).await;
    let (st, s) = c
        .call(
            "PUT",
            "/v1/automation/settings",
            Some(&c.admin),
            Some(r#"{"enabled": false}"#),
        )
        .await;
    assert_eq!((st, s["enabled"].clone()), (StatusCode::OK, json!(false)));
    let (st, _) = c
        .call(
            "PUT",
            "/v1/automation/settings",
            Some(&c.responder),
            Some(r#"{"enabled": true}"#),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let v = post(&c, "/v1/events", &c.responder, &event("web1")).await;
    assert_eq!(v["events"][0]["status"], "suppressed");
    assert!(v["events"][0]["outcomes"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("kill switch"));
    c.call(
        "PUT",
        "/v1/automation/settings",
        Some(&c.admin),
        Some(r#"{"enabled": true}"#),
    )
    .await;

    // notify_only: audited as a dry run, nothing changes, then cooldown holds.
    let dry = json!({"name": "edr", "trigger_event_types": ["malware"], "trigger_labels": ["servers"], "mode": "notify_only"}).to_string();
    post(&c, "/v1/rules", &c.admin, &dry).await;
    let v = post(&c, "/v1/events", &c.responder, &event("web1")).await;
    assert_eq!(v["events"][0]["status"], "notified", "{v}");
    assert!(!c.store().host(&web).await.unwrap().desired.quarantined);
    let a = c.audit_for(&web).await;
    assert!(a
        .iter()
        .any(|r| r.action == "quarantine_dry_run" && r.actor == "rule:edr"));
    let v = post(&c, "/v1/events", &c.responder, &event("web1")).await;
    assert!(
        v["events"][0]["outcomes"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("cooldown"),
        "{v}"
    );
}

#[tokio::test]
async fn burst_of_50_hosts_is_capped_and_the_rest_wait_for_approval() {
    let c = Ctx::new().await;
    let mut hosts = Vec::new();
    for i in 0..50 {
        hosts.push(c.enroll(&format!("srv{i:02}"), &["servers"]).await);
    }
    post(&c, "/v1/rules", &c.admin, &rule("edr", &["servers"])).await;
    // All 50 at once (and each twice), concurrently.
    let mut tasks = Vec::new();
    for i in 0..100 {
        let app = c.app.clone();
        let token = c.responder.clone();
        let body = event(&format!("srv{:02}", i % 50));
        tasks.push(tokio::spawn(async move {
            let req = Request::builder()
                .method("POST")
                .uri("/v1/events")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let v: Value = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
            v["events"][0]["status"].as_str().unwrap().to_string()
        }));
    }
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        *statuses.entry(t.await.unwrap()).or_default() += 1;
    }
    assert_eq!(statuses.get("quarantined"), Some(&5), "{statuses:?}");
    assert_eq!(statuses.get("approval_required"), Some(&45), "{statuses:?}");
    assert_eq!(statuses.get("suppressed"), Some(&50), "{statuses:?}");
    let quarantined: Vec<_> = c
        .store()
        .hosts(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|h| h.desired.quarantined)
        .collect();
    assert_eq!(quarantined.len(), 5);
    let audit = c
        .store()
        .audit(&AuditFilter {
            action: Some("quarantine".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 5, "no duplicates");
    let (_, v) = c.call("GET", "/v1/approvals", Some(&c.viewer), None).await;
    let pending = v["approvals"].as_array().unwrap();
    assert_eq!(pending.len(), 45);
    let mut pending_hosts: Vec<&str> = pending.iter().map(|a| a["host_id"].as_str().unwrap()).collect();
    pending_hosts.sort();
    pending_hosts.dedup();
    assert_eq!(pending_hosts.len(), 45, "one approval per host");

    // Bulk decisions are admin-only and need a comment.
    let ids: Vec<i64> = pending.iter().take(5).map(|a| a["id"].as_i64().unwrap()).collect();
    let (st, _) = c
        .call(
            "POST",
            "/v1/approvals/deny",
            Some(&c.responder),
            Some(&json!({"ids": ids, "comment": "x"}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = c
        .call(
            "POST",
            "/v1/approvals/deny",
            Some(&c.admin),
            Some(&json!({"ids": ids}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let v = post(
        &c,
        "/v1/approvals/deny",
        &c.admin,
        &json!({"ids": ids, "comment": "false positive"}).to_string(),
    )
    .await;
    assert!(v["results"].as_array().unwrap().iter().all(|r| r["status"] == "denied"));
    let v = post(
        &c,
        "/v1/approvals/approve",
        &c.admin,
        &json!({"all": true, "comment": "confirmed outbreak"}).to_string(),
    )
    .await;
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 40);
    assert!(results.iter().all(|r| r["status"] == "approved"), "{v}");
    let audit = c
        .store()
        .audit(&AuditFilter {
            action: Some("quarantine".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 45);
    assert!(audit.iter().all(|a| a.actor == "rule:edr"));
    assert!(audit
        .iter()
        .skip(5)
        .all(|a| a.detail.as_deref().unwrap().contains("approved by alice-admin")));
    let n = c
        .store()
        .hosts(&Default::default())
        .await
        .unwrap()
        .iter()
        .filter(|h| h.desired.quarantined)
        .count();
    assert_eq!(n, 45);
    // Approving again finds nothing pending.
    let v = post(
        &c,
        "/v1/approvals/approve",
        &c.admin,
        &json!({"ids": [ids[0]], "comment": "again"}).to_string(),
    )
    .await;
    assert_eq!(v["results"][0]["status"], "not_pending");
}

#[tokio::test]
async fn wazuh_and_velociraptor_adapters() {
    let c = Ctx::new().await;
    let web = c.enroll("web1", &["servers"]).await;
    let web2 = c.enroll("web2", &["servers"]).await;
    let r = json!({"name": "wazuh-12", "trigger_event_types": ["wazuh.alert"], "only_critical": true, "trigger_labels": ["servers"]});
    post(&c, "/v1/rules", &c.admin, &r.to_string()).await;
    let alert = |level: i64| {
        json!({"timestamp": "2024-05-01T10:00:00.000+0000", "id": "1714557600.1",
        "rule": {"level": level, "id": "100200", "description": "Rootkit", "groups": ["rootcheck"]},
        "agent": {"id": "003", "name": "web1.example.org", "ip": "192.0.2.10"}})
        .to_string()
    };
    let v = post(&c, "/v1/events/wazuh", &c.responder, &alert(11)).await;
    assert_eq!(
        (v["events"][0]["severity"].clone(), v["events"][0]["status"].clone()),
        (json!("high"), json!("no_match"))
    );
    let v = post(&c, "/v1/events/wazuh", &c.responder, &alert(12)).await;
    assert_eq!(v["events"][0]["status"], "quarantined", "{v}");
    assert_eq!(v["events"][0]["host_id"], web.as_str());
    assert!(v["events"][0]["tags"]
        .as_array()
        .unwrap()
        .contains(&json!("wazuh.rule.100200")));
    let v = post(&c, "/v1/events/wazuh?critical_level=15", &c.responder, &alert(12)).await;
    assert_eq!(v["events"][0]["severity"], "high");
    let (st, _) = c
        .call("POST", "/v1/events/wazuh", Some(&c.responder), Some("{\"agent\":{}}"))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    let lines = "{\"ClientId\":\"C.2\",\"Fqdn\":\"web2\",\"Artifact\":\"Custom.Detect\",\"EventType\":\"malware\",\"Severity\":\"critical\"}\nnot json\n";
    post(&c, "/v1/rules", &c.admin, &rule("velo", &["servers"])).await;
    let (st, text) = c
        .raw("POST", "/v1/events/velociraptor", Some(&c.responder), Some(lines), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["events"][0]["status"], "quarantined", "{v}");
    assert_eq!(v["events"][0]["source"], "velociraptor");
    assert_eq!(v["rejected"].as_array().unwrap().len(), 1);

    // Fqdn is often not the enrolled name (`localhost.localdomain`): Hostname, then
    // ClientId, are tried next (trial finding: unknown_host although Hostname matched).
    let row = "{\"ClientId\":\"C.2\",\"Fqdn\":\"localhost.localdomain\",\"Hostname\":\"web2\",\"EventType\":\"malware\",\"Severity\":\"critical\"}\n";
    let (st, text) = c
        .raw("POST", "/v1/events/velociraptor", Some(&c.responder), Some(row), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_ne!(v["events"][0]["status"], "unknown_host", "{v}");
    assert_eq!(v["events"][0]["host_id"], web2.as_str(), "{v}");

    // Nothing accepted is a 400 naming every line, not a 200 that loses the events.
    let (st, text) = c
        .raw(
            "POST",
            "/v1/events/velociraptor",
            Some(&c.responder),
            Some("not json\n{\"x\":1}\n"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("line 1") && text.contains("line 2"), "{text}");

    // The forwarder's exact output (recorded from Velociraptor's VQL engine).
    let forwarded = include_str!("../../../integrations/velociraptor/testdata/forward.ndjson");
    let (st, text) = c
        .raw(
            "POST",
            "/v1/events/velociraptor",
            Some(&c.responder),
            Some(forwarded),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["events"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["rejected"].as_array().unwrap().is_empty(), "{v}");
    assert_eq!(v["events"][0]["severity"], "critical");
}

#[tokio::test]
async fn openapi_documents_automation() {
    let c = Ctx::new().await;
    let (st, v) = c.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    for p in [
        "/v1/events",
        "/v1/events/wazuh",
        "/v1/events/velociraptor",
        "/v1/rules",
        "/v1/approvals/approve",
        "/v1/notifications/deliveries",
    ] {
        assert!(v["paths"][p].is_object(), "{p} missing");
    }
    assert!(v["paths"]["/v1/hosts"].is_object(), "existing paths kept");
    // Typed fields show their values: an event's severity and a rule's action are enums.
    let schemas = &v["components"]["schemas"];
    assert_eq!(
        schemas["EventIn"]["properties"]["severity"]["$ref"], "#/components/schemas/Severity",
        "{}",
        schemas["EventIn"]
    );
    assert_eq!(
        schemas["Severity"]["enum"],
        json!(["info", "low", "medium", "high", "critical"]),
        "{}",
        schemas["Severity"]
    );
    assert_eq!(
        schemas["RuleAction"]["enum"],
        json!(["quarantine"]),
        "{}",
        schemas["RuleAction"]
    );
}

/// A loopback webhook receiver that counts deliveries by their `x-cordon-delivery` id.
async fn receiver(listener: tokio::net::TcpListener, seen: Arc<Mutex<Vec<(String, Value)>>>) {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let id = headers
                    .get("x-cordon-delivery")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                seen.lock()
                    .unwrap()
                    .push((id, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                "ok"
            }
        }),
    );
    axum::serve(listener, app).await.unwrap();
}

#[tokio::test]
async fn webhook_down_then_up_delivers_each_notification_exactly_once() {
    let c = Ctx::new().await;
    let web = c.enroll("web1", &["servers"]).await;
    let web2 = c.enroll("web2", &["servers"]).await;
    // A port with nobody listening (yet).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/hook");
    post(
        &c,
        "/v1/notifications/targets",
        &c.admin,
        &json!({"name": "slack", "kind": "slack", "url": url}).to_string(),
    )
    .await;
    post(
        &c,
        "/v1/notifications/targets",
        &c.admin,
        &json!({"name": "soar", "kind": "webhook", "url": url, "events": ["quarantine_requested", "approval_required"]})
            .to_string(),
    )
    .await;
    let (st, _) = c
        .call(
            "POST",
            "/v1/notifications/targets",
            Some(&c.admin),
            Some(&json!({"name": "x", "kind": "irc", "url": url}).to_string()),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Adding and removing targets is audited (trial7: an admin could silently stop the
    // outside copies of the audit checkpoints), with the URL's origin only.
    let (_, v) = c
        .call(
            "POST",
            "/v1/notifications/targets",
            Some(&c.admin),
            Some(&json!({"name": "tmp", "kind": "webhook", "url": "https://u:pw@soc.example/secret/path"}).to_string()),
        )
        .await;
    let tmp = v["id"].as_i64().unwrap();
    let (st, _) = c
        .call(
            "DELETE",
            &format!("/v1/notifications/targets/{tmp}"),
            Some(&c.admin),
            None,
        )
        .await;
    assert!(st.is_success(), "{st}");
    let changes = |action: &'static str| {
        let store = c.store();
        async move {
            store
                .audit(&AuditFilter {
                    action: Some(action.into()),
                    ..Default::default()
                })
                .await
                .unwrap()
        }
    };
    let added = changes("notify_target_add").await;
    assert_eq!(added.len(), 3, "slack, soar, tmp: {added:?}");
    let removed = changes("notify_target_remove").await;
    assert_eq!(removed.len(), 1, "{removed:?}");
    let d = removed[0].detail.as_deref().unwrap();
    assert!(d.contains("target tmp") && d.contains("https://soc.example"), "{d}");
    assert!(
        !d.contains("secret") && !d.contains("pw"),
        "the URL's secret parts stay out: {d}"
    );
    assert!(removed[0].actor_token_id.is_some(), "{:?}", removed[0]);
    c.call(
        "PUT",
        "/v1/automation/settings",
        Some(&c.admin),
        Some(r#"{"console_url": "https://cordon.example/"}"#),
    )
    .await;
    post(&c, "/v1/rules", &c.admin, &rule("edr", &["servers"])).await;
    post(&c, "/v1/events", &c.responder, &event("web1")).await;
    // An analyst's release, too (not automation's): notified to slack only.
    post(
        &c,
        &format!("/v1/hosts/{web2}/quarantine"),
        &c.responder,
        r#"{"comment":"IR-7"}"#,
    )
    .await;
    post(
        &c,
        &format!("/v1/hosts/{web2}/release"),
        &c.responder,
        r#"{"comment":"clean"}"#,
    )
    .await;

    let cfg = WorkerConfig {
        tick: Duration::from_millis(20),
        prune_every: Duration::from_secs(3600),
        delivery: DeliveryConfig {
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_millis(200),
            timeout: Duration::from_secs(2),
            ..Default::default()
        },
    };
    let client = automation::notify::http_client(&cfg.delivery).unwrap();
    for _ in 0..3 {
        automation::work_once(c.store(), &client, &cfg, false).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let (_, v) = c
        .call("GET", "/v1/notifications/deliveries", Some(&c.viewer), None)
        .await;
    let d = v["deliveries"].as_array().unwrap();
    // slack: 2 quarantines + 1 release; soar: 2 quarantines.
    assert_eq!(d.len(), 5, "{v}");
    assert!(
        d.iter()
            .all(|x| x["status"] == "pending" && x["attempts"].as_i64().unwrap() >= 1 && x["last_error"].is_string()),
        "{v}"
    );

    // "Restart": a second store on the same database file finds the outbox intact (with
    // PostgreSQL the test database's URL is not known here; the same store is used).
    let url_db = format!("sqlite://{}", c.dir.path().join("t.db").display());
    let reopened = match std::env::var("CORDON_TEST_POSTGRES") {
        Ok(pg) if !pg.is_empty() => None,
        _ => Some(cordon_server::Store::connect(&url_db).await.unwrap()),
    };
    let store2 = reopened.as_ref().unwrap_or(c.store());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let server = tokio::spawn(receiver(listener, seen.clone()));
    for _ in 0..100 {
        automation::work_once(store2, &client, &cfg, false).await.unwrap();
        if seen.lock().unwrap().len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..5 {
        automation::work_once(store2, &client, &cfg, true).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    server.abort();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5, "{seen:?}");
    let mut ids: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "each notification exactly once");
    let slack: Vec<&Value> = seen
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v.get("kind").is_none())
        .collect();
    assert_eq!(slack.len(), 3);
    let auto = slack
        .iter()
        .find(|v| v["text"].as_str().unwrap().contains("rule:edr"))
        .unwrap();
    let text = auto["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("<https://cordon.example/console/hosts/{web}|web1>")),
        "{text}"
    );
    assert!(
        text.contains("Rule: edr") && text.contains("Event: evt-") && text.contains("Reason: automatic"),
        "{text}"
    );
    let soar: Vec<&Value> = seen
        .iter()
        .map(|(_, v)| v)
        .filter(|v| v.get("kind").is_some())
        .collect();
    assert_eq!(soar.len(), 2);
    // Automatic quarantines are requests until an agent confirms them.
    assert!(soar.iter().all(|v| v["kind"] == "quarantine_requested"), "{soar:?}");
    assert!(soar.iter().any(|v| v["rule"] == "edr"
        && v["event_id"].as_str().unwrap().starts_with("evt-")
        && v["actor"] == "rule:edr"));
    let (_, v) = c
        .call(
            "GET",
            "/v1/notifications/deliveries?status=delivered",
            Some(&c.viewer),
            None,
        )
        .await;
    assert_eq!(v["deliveries"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn event_retention_is_bounded() {
    let c = Ctx::new().await;
    c.call(
        "PUT",
        "/v1/automation/settings",
        Some(&c.admin),
        Some(r#"{"event_retention_max": 3}"#),
    )
    .await;
    for i in 0..6 {
        post(&c, "/v1/events", &c.responder, &event(&format!("ghost{i}"))).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let client = automation::notify::http_client(&Default::default()).unwrap();
    automation::work_once(c.store(), &client, &WorkerConfig::default(), true)
        .await
        .unwrap();
    let (_, v) = c.call("GET", "/v1/events", Some(&c.viewer), None).await;
    let refs: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["host_ref"].as_str().unwrap())
        .collect();
    assert_eq!(refs, vec!["ghost5", "ghost4", "ghost3"]);
}

/// trial16 LOW-1: two enrolled hosts share a hostname (`web1` and `WEB1` are one name to
/// the server). Slack and webhook texts named both only `web1`; each now carries its
/// short id next to the name ("web1 (1c2d3e4f)"), as the console does, and a host whose
/// name nobody shares is named as before. The webhook JSON gains `short_id`.
#[tokio::test]
async fn notifications_name_hosts_that_share_a_hostname_with_their_short_id() {
    let c = Ctx::new().await;
    let a = c.enroll("web1", &["servers"]).await;
    let b = c.enroll("WEB1", &["servers"]).await;
    let solo = c.enroll("db1", &["servers"]).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let server = tokio::spawn(receiver(listener, seen.clone()));
    for (name, kind) in [("slack", "slack"), ("soar", "webhook")] {
        post(
            &c,
            "/v1/notifications/targets",
            &c.admin,
            &json!({"name": name, "kind": kind, "url": url, "events": ["quarantine_requested"]}).to_string(),
        )
        .await;
    }
    for id in [&a, &b, &solo] {
        post(
            &c,
            &format!("/v1/hosts/{id}/quarantine"),
            &c.responder,
            r#"{"comment":"IR-16"}"#,
        )
        .await;
    }
    let cfg = WorkerConfig {
        tick: Duration::from_millis(20),
        prune_every: Duration::from_secs(3600),
        delivery: DeliveryConfig {
            timeout: Duration::from_secs(2),
            ..Default::default()
        },
    };
    let client = automation::notify::http_client(&cfg.delivery).unwrap();
    for _ in 0..100 {
        automation::work_once(c.store(), &client, &cfg, false).await.unwrap();
        if seen.lock().unwrap().len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.abort();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6, "{seen:?}");
    let texts: Vec<String> = seen
        .iter()
        .map(|(_, v)| v["text"].as_str().unwrap().to_string())
        .collect();
    for (id, name) in [(&a, "web1"), (&b, "WEB1")] {
        let named = format!("{name} ({})", &id[..8]);
        let n = texts.iter().filter(|t| t.contains(&named)).count();
        assert_eq!(n, 2, "Slack and webhook texts name {named}: {texts:#?}");
        let hook = seen
            .iter()
            .find(|(_, v)| v["host_id"] == id.as_str())
            .map(|(_, v)| v)
            .unwrap();
        assert_eq!(hook["short_id"], &id[..8], "{hook}");
    }
    let db: Vec<&String> = texts.iter().filter(|t| t.contains("db1")).collect();
    assert_eq!(db.len(), 2, "{texts:#?}");
    assert!(
        db.iter()
            .all(|t| !t.contains(&solo[..8]) || t.contains("/console/hosts/")),
        "{db:?}"
    );
    assert!(
        db.iter().all(|t| !t.contains(&format!("db1 ({})", &solo[..8]))),
        "a name nobody shares stays bare: {db:?}"
    );
}

/// trial33 LOW-E: rule names were compared case-sensitively and without look-alikes, so
/// `Wazuh-Critical` and `wazuh-critica1` were saved beside `wazuh-critical`, their actions
/// audited as three `rule:` actors a reader takes for one. A new rule whose name reads as
/// an existing rule's is refused (409 naming it), nothing written; the rule itself is
/// still changed under its own name.
#[tokio::test]
async fn rule_names_that_read_as_an_existing_rule_are_refused() {
    let c = Ctx::new().await;
    c.enroll("web1", &["servers"]).await;
    post(&c, "/v1/rules", &c.admin, &rule("wazuh-critical", &["servers"])).await;
    let before = c.store().audit_count().await.unwrap();
    for name in [
        "Wazuh-Critical",
        "WAZUH-CRITICAL",
        "wazuh-critica1",
        "wazuh-crit1cal",
        "wazuh_critical",
    ] {
        let (st, v) = c
            .call("POST", "/v1/rules", Some(&c.admin), Some(&rule(name, &["servers"])))
            .await;
        if name == "wazuh_critical" {
            // `_` and `-` are different characters a reader tells apart.
            assert_eq!(st, StatusCode::OK, "{name}: {v}");
            continue;
        }
        assert_eq!(st, StatusCode::CONFLICT, "{name}: {v}");
        let detail = v["detail"].as_str().unwrap();
        assert!(
            detail.contains("reads as the existing rule \"wazuh-critical\""),
            "{name}: {detail}"
        );
    }
    assert_eq!(
        c.store().audit_count().await.unwrap(),
        before + 1,
        "only wazuh_critical written"
    );
    // The rule itself is updated under its own name.
    post(&c, "/v1/rules", &c.admin, &rule("wazuh-critical", &["servers"])).await;
}
