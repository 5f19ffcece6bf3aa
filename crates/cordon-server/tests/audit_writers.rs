//! Who may write the audit log (issue 17, trial7): a row in the database's writer table
//! claims a live server only with a signature by the CA key, and a record that no server
//! wrote — added straight to the database while a server runs — is named tampered.
//! Runs on SQLite, and again on PostgreSQL with `CORDON_TEST_POSTGRES` (scripts/test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cordon_proto::audit_chain::{render, SignedCheckpoint};
use cordon_proto::Role;
use cordon_server::Store;
use runs::{append_forged, write_a_record, Runs};

#[path = "common/runs.rs"]
mod runs;

/// Inserts a writer row claiming a live server seen at `seen_ms`, as trial7 did.
async fn fake_writer(store: &Store, seen_ms: i64) {
    sqlx::query("INSERT INTO audit_writers (writer, started_at, seen_at) VALUES ($1, $2, $2)")
        .bind("f".repeat(32))
        .bind(seen_ms)
        .execute(store.pool())
        .await
        .unwrap();
}

async fn checkpoints_of(store: &Store) -> Vec<SignedCheckpoint> {
    store
        .audit(&Default::default())
        .await
        .unwrap()
        .iter()
        .filter(|r| r.action == "audit_checkpoint")
        .map(|r| serde_json::from_str(r.detail.as_deref().unwrap()).unwrap())
        .collect()
}

fn now() -> i64 {
    cordon_server_core::timefmt::now_ms()
}

/// The stop → fake row → forged append → start scenario of trial7 H1 (a)/(b): the
/// fake row must count for nothing, so the forged record is TAMPERED.
async fn fake_row_then_forged_append_after_orderly_stop(seen_ms: impl Fn() -> i64) {
    let runs = Runs::new().await;
    let first = runs.start().await;
    write_a_record(&first).await;
    fake_writer(&first.state.store, seen_ms()).await;
    first.shutdown().await;
    let store = runs.store().await;
    let stop = checkpoints_of(&store).await.pop().unwrap();
    assert_eq!(
        stop.last_writer,
        Some(true),
        "an unsigned writer row is no live server: {stop:?}"
    );
    assert!(
        stop.ignored_writers
            .as_deref()
            .is_some_and(|w| w.contains(&"f".repeat(32))),
        "the fake row is signed as what it is: {stop:?}"
    );
    let forged = append_forged(&store, "admin", "forged").await;
    drop(store);
    let second = runs.start().await;
    let r = runs.verify(&second).await;
    let text = render(&r);
    println!("{text}");
    let p = r.problem.clone().unwrap_or_else(|| panic!("not tampered: {text}"));
    assert_eq!(p.id, Some(forged), "{text}");
    assert!(text.contains(&format!("TAMPERED: record {forged}")), "{text}");
    assert!(
        !text.contains("a crash"),
        "no crash after a signed orderly stop: {text}"
    );
    second.stop();
}

/// The fault kind (trial7 H1 a): a writer row stamped a year in the future made the
/// stop sign `last_writer: false`, and a forged append after it read OK.
#[tokio::test]
async fn audit_writers_future_stamped_fake_row_does_not_hide_a_forged_append() {
    fake_row_then_forged_append_after_orderly_stop(|| now() + 365 * 86_400_000).await;
}

/// The fault kind (trial7 H1 b): a writer row stamped "now" made the start take an
/// orderly stop for a crash (UNPROVEN, wrong text) instead of TAMPERED.
#[tokio::test]
async fn audit_writers_fake_row_stamped_now_does_not_turn_tampering_into_a_crash() {
    fake_row_then_forged_append_after_orderly_stop(now).await;
}

/// The fault kind (trial7 H1 c): after a crash, a forged append plus a fake writer row
/// read OK; and with the anchor deleted as well the start did not sign `no_anchor`.
#[tokio::test]
async fn audit_writers_fake_row_after_a_crash_leaves_the_records_unproven_and_signs_no_anchor() {
    let runs = Runs::new().await;
    let first = runs.start().await;
    let store = first.state.store.clone();
    write_a_record(&first).await;
    runs.wait_anchor_head(&store).await;
    first.stop(); // a crash: no shutdown checkpoint
    let forged = append_forged(&store, "admin", "forged").await;
    fake_writer(&store, now()).await;
    drop(store);
    std::fs::remove_file(runs.data.join("audit-anchor.json")).unwrap();
    let second = runs.start().await;
    let start = checkpoints_of(&second.state.store).await.pop().unwrap();
    assert!(
        start
            .no_anchor
            .as_deref()
            .is_some_and(|w| w.contains("no anchor found")),
        "the deleted anchor is signed: {start:?}"
    );
    assert!(start.ignored_writers.is_some(), "{start:?}");
    let r = runs.verify(&second).await;
    let text = render(&r);
    println!("{text}");
    assert!(!r.ok, "never OK: {text}");
    assert!(r.problem.is_none(), "{text}");
    assert!(
        r.warnings.iter().any(|w| w.id.is_some_and(|id| id <= forged)),
        "the crash window holds the forged record: {text}"
    );
    assert!(text.contains("UNPROVEN"), "{text}");
    second.stop();
}

/// The fault kind (trial7 H2): a record appended straight to the database while the
/// only server runs was signed at its next checkpoint and read OK forever. The server
/// knows what it wrote: verification says TAMPERED naming it while it runs, the next
/// checkpoint signs it as `foreign`, and after stop/start it is still TAMPERED.
#[tokio::test]
async fn audit_writers_record_appended_while_the_server_runs_is_tampered() {
    let runs = Runs::new().await;
    let first = runs.start().await;
    let store = first.state.store.clone();
    write_a_record(&first).await;
    let r = runs.verify(&first).await;
    assert!(r.ok, "{}", render(&r));
    let forged = append_forged(&runs.store().await, "admin", "forged").await;
    store.create_api_token("alice", "ops-2", Role::Viewer).await.unwrap();
    let r = runs.verify(&first).await;
    let text = render(&r);
    println!("{text}");
    assert_eq!(r.problem.as_ref().and_then(|p| p.id), Some(forged), "{text}");
    assert!(text.contains(&format!("TAMPERED: record {forged}")), "{text}");
    first.shutdown().await;
    let stop = checkpoints_of(&runs.store().await).await.pop().unwrap();
    assert_eq!(
        stop.foreign.as_ref().map(|f| (f.first, f.last, f.count)),
        Some((forged, forged, 1)),
        "the shutdown checkpoint signs the foreign record: {stop:?}"
    );
    let second = runs.start().await;
    let r = runs.verify(&second).await;
    let text = render(&r);
    println!("{text}");
    assert_eq!(r.problem.as_ref().and_then(|p| p.id), Some(forged), "{text}");
    assert!(text.contains("written by no server"), "{text}");
    second.shutdown().await;
}

/// The fault kind (trial7 LOW): the anchor file was written 0644 while the rest of the
/// data directory is 0600.
#[cfg(unix)]
#[tokio::test]
async fn audit_writers_anchor_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let runs = Runs::new().await;
    let first = runs.start().await;
    first.shutdown().await;
    let mode = std::fs::metadata(runs.data.join("audit-anchor.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

/// The fault kind (trial7 LOW): retention archives were written 0644.
#[cfg(unix)]
#[tokio::test]
async fn audit_writers_retention_archive_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let runs = Runs::new().await;
    let first = runs.start().await;
    write_a_record(&first).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let dir = runs.data.join("archive");
    let done = cordon_server_core::service::audit::retain(&first.state, 0, &dir)
        .await
        .unwrap()
        .expect("records old enough");
    let mode = std::fs::metadata(&done.archive).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    first.shutdown().await;
}

/// A webhook receiver on 127.0.0.1 (port chosen by the OS): every body POSTed to it.
async fn receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook/secret-path",
        axum::routing::post(move |body: String| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook/secret-path", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, got)
}

async fn checkpoint_target(store: &Store, name: &str, url: &str) -> i64 {
    use cordon_proto::automation::{TargetKind, TargetSpec};
    let spec = TargetSpec {
        name: name.into(),
        kind: TargetKind::Webhook,
        url: url.into(),
        events: vec!["audit_checkpoint".into()],
        enabled: true,
    };
    store.add_notify_target("alice", &spec).await.unwrap().id
}

/// trial7 MED 2: the shutdown checkpoint was queued at the orderly stop and left the
/// database only at the next start (anyone with database access could delete it in
/// between). An orderly stop now delivers it to the targets subscribed to
/// `audit_checkpoint` before `Running::shutdown` returns (what `cordon server run` does
/// before the process exits); a target it cannot reach delays the stop by at most
/// `SHUTDOWN_DELIVERY_WAIT` and its copy stays queued, the error recorded.
#[tokio::test]
async fn shutdown_checkpoint_reaches_notification_targets_before_the_process_exits() {
    let runs = Runs::new().await;
    let (url, got) = receiver().await;
    let first = runs.start().await;
    checkpoint_target(&first.state.store, "outside-copy", &url).await;
    // A second target nobody listens on (a port just closed).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/gone", l.local_addr().unwrap())
    };
    let dead = checkpoint_target(&first.state.store, "unreachable", &closed).await;
    write_a_record(&first).await;
    let store = first.state.store.clone();
    let started = std::time::Instant::now();
    first.shutdown().await;
    let took = started.elapsed();
    // Delivered by the time the stop returned: no waiting here.
    let bodies = got.lock().unwrap().clone();
    let stop = checkpoints_of(&store).await.pop().unwrap();
    assert_eq!(stop.occasion.as_deref(), Some("shutdown"), "{stop:?}");
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("audit_checkpoint") && b.contains("shutdown") && b.contains(&stop.hash)),
        "the shutdown checkpoint reached the receiver before the stop returned: {bodies:#?}"
    );
    assert!(
        took < cordon_server::run::SHUTDOWN_DELIVERY_WAIT + std::time::Duration::from_secs(5),
        "the stop waits a bounded time for an unreachable target: {took:?}"
    );
    // The unreachable target's copy stays queued, attempted, its error kept.
    let rows = store.deliveries(None, 100).await.unwrap();
    let row = rows
        .iter()
        .filter(|d| d.target_id == dead)
        .max_by_key(|d| d.id)
        .expect("a delivery row for the unreachable target");
    assert_eq!(row.status, "pending", "{row:?}");
    assert!(row.attempts >= 1 && row.last_error.is_some(), "{row:?}");
}
