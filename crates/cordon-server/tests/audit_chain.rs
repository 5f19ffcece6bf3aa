//! The audit log proves itself (issue 17): every record is hash-chained; editing a field,
//! deleting, reordering or cutting the tail in the database is detected by
//! `GET /v1/audit/verify`, naming the record; an export verifies offline with the same
//! code. Runs on SQLite, and again on PostgreSQL with `CORDON_TEST_POSTGRES` (scripts/test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::Ctx;
use cordon_proto::audit_chain::{parse_jsonl, verify, ChainReport, Checkpoint};
use cordon_proto::Role;
use cordon_server::Store;

/// A context with a few records besides the token creations of `Ctx::new`.
async fn ctx_with_log() -> Ctx {
    let ctx = Ctx::new().await;
    let h = ctx.enroll("web-1", &["prod"]).await;
    for path in ["quarantine", "release", "quarantine"] {
        let (st, v) = ctx
            .call(
                "POST",
                &format!("/v1/hosts/{h}/{path}"),
                Some(&ctx.responder),
                Some(r#"{"comment":"ir-1"}"#),
            )
            .await;
        assert!(st.is_success(), "{st} {v}");
    }
    ctx
}

async fn server_verify(ctx: &Ctx, query: &str) -> ChainReport {
    let (st, v) = ctx
        .call("GET", &format!("/v1/audit/verify{query}"), Some(&ctx.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    serde_json::from_value(v).unwrap()
}

async fn ids(ctx: &Ctx) -> Vec<i64> {
    ctx.store()
        .audit(&Default::default())
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect()
}

async fn exec(ctx: &Ctx, sql: &str) {
    sqlx::query(sql).execute(ctx.store().pool()).await.unwrap();
}

#[tokio::test]
async fn audit_chain_untouched_log_verifies_and_is_admin_only() {
    let ctx = ctx_with_log().await;
    let r = server_verify(&ctx, "").await;
    assert!(r.ok, "{r:?}");
    let all = ids(&ctx).await;
    assert_eq!(r.chained as usize, all.len());
    assert_eq!(r.unchained, 0);
    assert_eq!(r.first_chained_id, all.first().copied());
    assert_eq!(r.head.as_ref().unwrap().last_id, *all.last().unwrap());
    assert_eq!(r.checkpoints, vec!["database chain-head".to_string()]);
    let (st, _) = ctx.call("GET", "/v1/audit/verify", Some(&ctx.responder), None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = ctx
        .call("GET", "/v1/audit/verify?checkpoint=nonsense", Some(&ctx.admin), None)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn audit_chain_edited_field_in_database_is_named() {
    let ctx = ctx_with_log().await;
    let victim = ids(&ctx).await[3];
    exec(&ctx, &format!("UPDATE audit SET actor = 'system' WHERE id = {victim}")).await;
    let p = server_verify(&ctx, "").await.problem.unwrap();
    assert_eq!(p.id, victim);
    assert!(p.reason.contains("field"), "{}", p.reason);
}

#[tokio::test]
async fn audit_chain_deleted_record_in_database_is_named() {
    let ctx = ctx_with_log().await;
    let all = ids(&ctx).await;
    exec(&ctx, &format!("DELETE FROM audit WHERE id = {}", all[2])).await;
    let p = server_verify(&ctx, "").await.problem.unwrap();
    assert_eq!(p.id, all[3], "{p:?}");
    assert!(p.reason.contains("removed"), "{}", p.reason);
}

#[tokio::test]
async fn audit_chain_reordered_records_in_database_are_named() {
    let ctx = ctx_with_log().await;
    let all = ids(&ctx).await;
    let (a, b) = (all[2], all[3]);
    // Swap the two records' positions (their ids).
    exec(&ctx, &format!("UPDATE audit SET id = -1 WHERE id = {a}")).await;
    exec(&ctx, &format!("UPDATE audit SET id = {a} WHERE id = {b}")).await;
    exec(&ctx, &format!("UPDATE audit SET id = {b} WHERE id = -1")).await;
    let p = server_verify(&ctx, "").await.problem.unwrap();
    assert_eq!(p.id, a, "{p:?}");
}

#[tokio::test]
async fn audit_chain_truncated_tail_is_named_against_checkpoints() {
    let ctx = ctx_with_log().await;
    let before = server_verify(&ctx, "").await.head.unwrap();
    let all = ids(&ctx).await;
    let last = *all.last().unwrap();
    let kept = all[all.len() - 2];
    exec(&ctx, &format!("DELETE FROM audit WHERE id = {last}")).await;
    // The database's own chain head catches a plain cut …
    let p = server_verify(&ctx, "").await.problem.unwrap();
    assert_eq!(p.id, kept);
    assert!(p.reason.contains("removed from the end"), "{}", p.reason);
    assert!(p.reason.contains(&last.to_string()), "{}", p.reason);
    // … and a checkpoint kept outside the database catches a cut that also rewound the
    // head row.
    let prev: String = {
        let rows = ctx.store().audit(&Default::default()).await.unwrap();
        rows.last().unwrap().hash.clone().unwrap()
    };
    exec(
        &ctx,
        &format!("UPDATE audit_chain SET head_id = {kept}, head_hash = '{prev}' WHERE id = 1"),
    )
    .await;
    assert!(
        server_verify(&ctx, "").await.ok,
        "without an outside checkpoint the cut is invisible"
    );
    let q = format!("?checkpoint={}:{}", before.last_id, before.hash);
    let p = server_verify(&ctx, &q).await.problem.unwrap();
    assert_eq!(p.id, kept);
    assert!(p.reason.contains("given checkpoint"), "{}", p.reason);
}

#[tokio::test]
async fn audit_chain_export_verifies_offline_and_tampering_is_named() {
    let ctx = ctx_with_log().await;
    let (st, text) = ctx
        .raw("GET", "/v1/audit?format=jsonl", Some(&ctx.viewer), None, None)
        .await;
    assert_eq!(st, StatusCode::OK);
    let records = parse_jsonl(&text).unwrap();
    let head = server_verify(&ctx, "").await.head.unwrap();
    let r = verify(&records, vec![("given".into(), head.clone())]);
    assert!(r.ok, "{r:?}");
    // Edit one line of the export.
    let lines: Vec<&str> = text.lines().collect();
    let edited: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 2 {
                l.replace("\"actor\":\"", "\"actor\":\"x")
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect();
    let p = verify(&parse_jsonl(&edited).unwrap(), vec![]).problem.unwrap();
    assert_eq!((p.id, p.position), (records[2].id, 3));
}

/// Concurrent writers (two replicas on PostgreSQL, one store's writers on SQLite) never
/// fork the chain.
#[tokio::test]
async fn audit_chain_concurrent_writers_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = match std::env::var("CORDON_TEST_POSTGRES") {
        Ok(base) if !base.is_empty() => {
            let name = format!("cordon_test_{}", uuid::Uuid::new_v4().simple());
            let url = cordon_server::store::create_postgres_database(&base, &name)
                .await
                .unwrap();
            let a = Arc::new(Store::connect(&url).await.unwrap());
            let b = Arc::new(Store::connect(&url).await.unwrap());
            (a, b)
        }
        _ => {
            let url = format!("sqlite://{}", dir.path().join("t.db").display());
            let a = Arc::new(Store::connect(&url).await.unwrap());
            (a.clone(), a)
        }
    };
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.create_api_token("test", &format!("t{i}"), Role::Viewer)
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = a.audit_verify(vec![]).await.unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.chained, 40);
    let (head, _) = b.audit_head().await.unwrap();
    assert_eq!(head, r.head);
}

#[test]
fn audit_chain_checkpoint_parse_rejects_garbage() {
    assert!("12".parse::<Checkpoint>().is_err());
}
