//! Cursor pagination of `/v1/hosts` and `/v1/audit` (issue 15): bounded pages, filters
//! and order in SQL, every item exactly once across pages, streamed exports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use axum::http::StatusCode;
use common::Ctx;
use cordon_server::store::{Action, ActionParams, Targets};

#[tokio::test]
async fn hosts_pages_cover_every_host_once_in_order() {
    let c = Ctx::new().await;
    for i in 0..25 {
        let label = if i % 2 == 0 { "even" } else { "odd" };
        c.enroll(&format!("web{:02}", 24 - i), &[label]).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/v1/hosts?limit=10".to_string(),
            Some(c) => format!("/v1/hosts?limit=10&cursor={c}"),
        };
        let (st, v) = c.call("GET", &path, Some(&c.viewer), None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        pages += 1;
        let hosts = v["hosts"].as_array().unwrap();
        assert!(hosts.len() <= 10);
        seen.extend(hosts.iter().map(|h| h["hostname"].as_str().unwrap().to_string()));
        match v["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "ordered by hostname across pages");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25, "each host once");
    // Filter in SQL, with pagination.
    let (_, v) = c
        .call("GET", "/v1/hosts?label=even&limit=5", Some(&c.viewer), None)
        .await;
    assert_eq!(v["hosts"].as_array().unwrap().len(), 5);
    assert!(v["next_cursor"].is_string());
    let (_, v) = c.call("GET", "/v1/hosts?q=WEB0", Some(&c.viewer), None).await;
    assert_eq!(v["hosts"].as_array().unwrap().len(), 10);
    // LIKE wildcards in the search text are literal.
    let (_, v) = c.call("GET", "/v1/hosts?q=%25", Some(&c.viewer), None).await;
    assert_eq!(v["hosts"].as_array().unwrap().len(), 0, "{v}");
    // The page size is capped, a bad cursor is 400.
    let (st, _) = c.call("GET", "/v1/hosts?limit=0", Some(&c.viewer), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = c.call("GET", "/v1/hosts?cursor=zz", Some(&c.viewer), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn audit_pages_and_streamed_exports() {
    let c = Ctx::new().await;
    for i in 0..25 {
        c.enroll(&format!("web{i:02}"), &["web"]).await;
    }
    // 25 enrolments + 44 * 25 actions: more than one export chunk (1,000 records).
    for round in 0..44 {
        let action = if round % 2 == 0 {
            Action::Quarantine
        } else {
            Action::Release
        };
        c.store()
            .act(
                "rita",
                action,
                &Targets::Label("web".into()),
                &ActionParams {
                    comment: format!("round {round}"),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let total = c.store().audit_count().await.unwrap();
    assert!(total > 1100, "{total}");
    // JSON pages, newest first, each record once.
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/v1/audit?order=newest&limit=400".to_string(),
            Some(c) => format!("/v1/audit?order=newest&limit=400&cursor={c}"),
        };
        let (st, v) = c.call("GET", &path, Some(&c.viewer), None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let recs = v["records"].as_array().unwrap();
        assert!(recs.len() <= 400);
        ids.extend(recs.iter().map(|r| r["id"].as_i64().unwrap()));
        match v["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(ids.len() as i64, total);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    // Without a limit a JSON page stops at the maximum page size.
    let (_, v) = c.call("GET", "/v1/audit", Some(&c.viewer), None).await;
    assert_eq!(v["records"].as_array().unwrap().len(), 1000);
    assert!(v["next_cursor"].is_string());
    // Exports stream everything.
    let (st, csv) = c.raw("GET", "/v1/audit?format=csv", Some(&c.viewer), None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(csv.lines().count() as i64, total + 1, "header plus every record");
    let (_, jsonl) = c
        .raw("GET", "/v1/audit?format=jsonl", Some(&c.viewer), None, None)
        .await;
    assert_eq!(
        jsonl.lines().count() as i64,
        total + 1,
        "every record plus the signed trailer"
    );
    assert!(jsonl.lines().last().unwrap().starts_with("{\"checkpoint\""));
    let (_, jsonl) = c
        .raw("GET", "/v1/audit?format=jsonl&limit=1001", Some(&c.viewer), None, None)
        .await;
    assert_eq!(jsonl.lines().count(), 1001, "an export limit spans chunks");
    let (_, jsonl) = c
        .raw(
            "GET",
            "/v1/audit?format=jsonl&action=release",
            Some(&c.viewer),
            None,
            None,
        )
        .await;
    assert_eq!(jsonl.lines().count(), 22 * 25, "filtered in SQL");
}

/// `GET /v1/hosts?sort=&dir=`: the console's sortable columns as REST orders. Pages of a
/// sorted list cover every host once in that order (cursors are per order), and a bad
/// `sort`, `dir` or a cursor of another order is 400 naming it.
#[tokio::test]
async fn hosts_sort_orders_page_in_order_and_bad_values_are_400() {
    let c = Ctx::new().await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(c.enroll(&format!("node{i:02}"), &["sortme"]).await);
    }
    // Four hosts quarantine requested: state order puts them before the normal ones.
    c.store()
        .act(
            "rita",
            Action::Quarantine,
            &Targets::Hosts(ids[8..].to_vec()),
            &ActionParams {
                comment: "IR-7".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let walk = |order: &'static str| {
        let c = &c;
        async move {
            let mut seen: Vec<(String, String)> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    None => format!("/v1/hosts?{order}&limit=5"),
                    Some(n) => format!("/v1/hosts?{order}&limit=5&cursor={n}"),
                };
                let (st, v) = c.call("GET", &path, Some(&c.viewer), None).await;
                assert_eq!(st, StatusCode::OK, "{path}: {v}");
                for h in v["hosts"].as_array().unwrap() {
                    seen.push((
                        h["hostname"].as_str().unwrap().to_string(),
                        h["state"].as_str().unwrap().to_string(),
                    ));
                }
                match v["next_cursor"].as_str() {
                    Some(n) => cursor = Some(n.to_string()),
                    None => return seen,
                }
            }
        }
    };
    let by_state = walk("sort=state").await;
    assert_eq!(by_state.len(), 12, "{by_state:?}");
    let states: Vec<&str> = by_state.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(&states[..4], ["quarantine_pending"; 4], "{by_state:?}");
    assert!(states[4..].iter().all(|s| *s == "normal"), "{by_state:?}");
    let names: Vec<&str> = by_state.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[..4],
        ["node08", "node09", "node10", "node11"],
        "ties by hostname"
    );
    let desc = walk("sort=host&dir=desc").await;
    let mut want: Vec<String> = (0..12).map(|i| format!("node{i:02}")).collect();
    want.reverse();
    assert_eq!(desc.into_iter().map(|(n, _)| n).collect::<Vec<_>>(), want);
    let state_desc = walk("sort=state&dir=desc").await;
    assert_eq!(state_desc[0].1, "normal");
    assert_eq!(state_desc[11].1, "quarantine_pending");
    for order in ["sort=since", "sort=by", "sort=last_seen", "sort=backend", "dir=asc"] {
        let all = walk(order).await;
        let set: HashSet<_> = all.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!((all.len(), set.len()), (12, 12), "{order}: each host once");
    }
    // Bad values are named.
    let (st, v) = c.call("GET", "/v1/hosts?sort=hostnme", Some(&c.viewer), None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v.to_string().contains("hostnme") && v.to_string().contains("last_seen"),
        "{v}"
    );
    let (st, v) = c
        .call("GET", "/v1/hosts?sort=state&dir=up", Some(&c.viewer), None)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(v.to_string().contains("\\\"up\\\""), "{v}");
    // A cursor of another order would skip or repeat hosts: refused.
    let (_, v) = c
        .call("GET", "/v1/hosts?sort=host&limit=5", Some(&c.viewer), None)
        .await;
    let n = v["next_cursor"].as_str().unwrap().to_string();
    let (st, v) = c
        .call(
            "GET",
            &format!("/v1/hosts?sort=state&limit=5&cursor={n}"),
            Some(&c.viewer),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    // The orders are documented in the OpenAPI description.
    let (_, doc) = c.call("GET", "/v1/openapi.json", None, None).await;
    let params = doc["paths"]["/v1/hosts"]["get"]["parameters"].as_array().unwrap();
    let sort = params.iter().find(|p| p["name"] == "sort").expect("sort documented");
    let text = sort["description"].as_str().unwrap_or_default();
    assert!(
        text.contains("last_seen") && text.contains("most urgent first"),
        "{sort}"
    );
    assert!(params.iter().any(|p| p["name"] == "dir"), "dir documented");
}
