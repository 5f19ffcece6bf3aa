//! Errors as clients see them (issue 13): a unique-constraint violation is 409 naming the
//! record, never the database's text; an internal failure is 500 with a generic body, the
//! cause only in the server log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::Ctx;
use cordon_proto::Role;
use cordon_server::error::INTERNAL_DETAIL;
use cordon_server::{router, AppState, Store};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const DATABASE_WORDS: [&str; 6] = [
    "UNIQUE",
    "unique",
    "constraint",
    "duplicate key",
    "notify_targets",
    "SQL",
];

#[tokio::test]
async fn unique_constraint_violations_are_409_without_database_text() {
    let c = Ctx::new().await;
    let target = json!({"name": "soc", "kind": "webhook", "url": "https://hooks.example/cordon"}).to_string();
    let (st, v) = c
        .call("POST", "/v1/notifications/targets", Some(&c.admin), Some(&target))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = c
        .call("POST", "/v1/notifications/targets", Some(&c.admin), Some(&target))
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"], "conflict", "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.contains("\"soc\""), "the 409 names the record: {detail}");
    for word in DATABASE_WORDS {
        assert!(
            !detail.contains(word),
            "database text {word:?} reached the client: {detail}"
        );
    }
    let (_, v) = c.call("GET", "/v1/notifications/targets", Some(&c.admin), None).await;
    assert_eq!(v["targets"].as_array().unwrap().len(), 1, "{v}");
}

#[tokio::test]
async fn internal_errors_are_500_with_a_generic_body() {
    // SQLite on purpose: the test breaks its own database file underneath the server.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = Arc::new(Store::connect(&url).await.unwrap());
    let admin = common::api_token(&store, "alice-admin", Role::Admin).await;
    let app = router(AppState::new(store, None));
    {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&format!("{url}?mode=rw")).await.unwrap();
        sqlx::query("DROP TABLE auto_rules").execute(&mut conn).await.unwrap();
    }
    let req = Request::builder()
        .uri("/v1/rules")
        .header("authorization", format!("Bearer {admin}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v, json!({"error": "internal", "detail": INTERNAL_DETAIL}), "{text}");
    for word in ["auto_rules", "no such table", "database"] {
        assert!(
            !text.contains(word),
            "database text {word:?} reached the client: {text}"
        );
    }
}
