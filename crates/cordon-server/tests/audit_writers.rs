//! Who may write the audit log (issue 17, trial7): a row in the database's writer table
//! claims a live server only with a signature by the CA key, and a record that no server
//! wrote — added straight to the database while a server runs — is named tampered.
//! Runs on SQLite, and again on PostgreSQL with `CORDON_TEST_POSTGRES` (scripts/test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cordon_proto::audit_chain::{render, SignedCheckpoint};
use cordon_proto::Role;
use cordon_server::Store;
use runs::{append_forged, export_jsonl, mark_as_written_by, run_cfg, write_a_record, Runs};

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
/// read OK; and with the anchor deleted as well the start did not sign `no_anchor`. The
/// forged record is named tampered (it carries no valid mark).
#[tokio::test]
async fn audit_writers_fake_row_after_a_crash_does_not_hide_a_forged_record_and_signs_no_anchor() {
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
    // The forged record carries no mark of a server of the deployment: tampered, crash
    // or not (trial10: authorship by proof, not by timing).
    assert_eq!(r.problem.as_ref().and_then(|p| p.id), Some(forged), "{text}");
    assert!(text.contains("written by no server"), "{text}");
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

/// The fault kind (trial10 H-A): a record added straight to the database while the only
/// server runs was vouched for by the next start when the server then ended without its
/// shutdown checkpoint (a crash, a locked database, a trigger): the head watcher kept it
/// in the anchor file without checking who wrote it, and the `foreign` verdict lived only
/// in memory. The watcher now checks every record's mark before its head moves over it
/// and keeps the ones without a valid mark in the anchor file at once.
#[tokio::test]
async fn audit_writers_forged_record_while_running_then_a_crash_is_tampered_after_restart() {
    let runs = Runs::new().await;
    let first = runs.start().await;
    let store = first.state.store.clone();
    write_a_record(&first).await;
    let forged = append_forged(&runs.store().await, "admin", "forged").await;
    runs.wait_anchor_head(&store).await;
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(runs.data.join("audit-anchor.json")).unwrap()).unwrap();
    assert_eq!(
        kept["foreign"],
        serde_json::json!([forged]),
        "kept outside the database at once: {kept}"
    );
    first.stop(); // a crash: no shutdown checkpoint
    drop(store);
    let second = runs.start().await;
    let r = runs.verify(&second).await;
    let text = render(&r);
    println!("{text}");
    assert_eq!(r.problem.as_ref().and_then(|p| p.id), Some(forged), "{text}");
    assert!(text.contains("written by no server"), "{text}");
    let start = checkpoints_of(&second.state.store).await.pop().unwrap();
    assert_eq!(
        start.foreign.as_ref().map(|f| (f.first, f.last)),
        Some((forged, forged)),
        "the start checkpoint signs it as foreign: {start:?}"
    );
    // And at every later start.
    second.stop();
    let third = runs.start().await;
    let r = runs.verify(&third).await;
    assert_eq!(r.problem.as_ref().and_then(|p| p.id), Some(forged), "{}", render(&r));
    third.shutdown().await;
}

/// The fault kinds (trial10 H-B, MED 1): a record written by another server of the
/// deployment (a replica) was judged by whether that server looked live when the record
/// was checked — a replica that crashed, or one that had just joined, had its records
/// called forged. Now a record is authentic when its mark verifies under the key every
/// server derives from the CA key, whoever wrote it; a mark under another key is not.
#[tokio::test]
async fn audit_writers_a_replicas_record_is_authentic_by_its_mark_not_by_its_liveness() {
    let runs = Runs::new().await;
    let a = runs.start().await;
    write_a_record(&a).await;
    let store = runs.store().await;
    // Written by replica B (another process with the CA key), which is gone now.
    let by_b = append_forged(&store, "alice", "via replica b").await;
    mark_as_written_by(&store, &runs.data, by_b, &"b".repeat(32)).await;
    let r = runs.verify(&a).await;
    assert!(r.ok, "a replica's record is not tampering: {}", render(&r));
    // An interval checkpoint does not sign it foreign either.
    cordon_server_core::service::audit::checkpoint(&a.state, "interval")
        .await
        .unwrap();
    let cp = checkpoints_of(&a.state.store).await.pop().unwrap();
    assert!(cp.foreign.is_none(), "{cp:?}");
    // A mark made with another deployment's key is no mark.
    let other = Runs::new().await;
    let forged = append_forged(&store, "alice", "other key").await;
    mark_as_written_by(&store, &other.data, forged, &"b".repeat(32)).await;
    let r = runs.verify(&a).await;
    let text = render(&r);
    assert_eq!(r.problem.as_ref().and_then(|p| p.id), Some(forged), "{text}");
    a.shutdown().await;
    let a = runs.start().await;
    let r = runs.verify(&a).await;
    assert_eq!(r.problem.as_ref().and_then(|p| p.id), Some(forged), "{}", render(&r));
    a.shutdown().await;
}

/// The fault kind (trial10 MED 3): a replica that crashed shortly before the other's
/// orderly stop still counted as live, so the stop did not close the log and a record
/// forged afterwards read UNPROVEN instead of TAMPERED. Liveness no longer decides: the
/// forged record has no mark.
#[tokio::test]
async fn audit_writers_forged_record_after_a_replica_crash_and_the_others_stop_is_tampered() {
    let runs = Runs::new().await;
    let data_b = runs.replica_dir();
    let a = runs.start().await;
    let b = cordon_server::run::start(&runs::run_cfg(&data_b, &runs.db))
        .await
        .unwrap();
    // Both refresh their writer rows every two seconds: let each see the other refresh.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    b.stop(); // a crash
    a.shutdown().await;
    let store = runs.store().await;
    let forged = append_forged(&store, "admin", "forged").await;
    let a = runs.start().await;
    let r = runs.verify(&a).await;
    let text = render(&r);
    println!("{text}");
    assert_eq!(r.problem.as_ref().and_then(|p| p.id), Some(forged), "{text}");
    assert!(!text.contains("UNPROVEN"), "{text}");
    a.shutdown().await;
}

/// The fault kind (trial10 H-C): a full export's signed trailer vouched for a record the
/// server itself called forged, so the file verified OK offline. The trailer now signs
/// the records without a valid mark as `foreign`: offline verification names the first.
#[tokio::test]
async fn audit_writers_export_trailer_signs_forged_records_as_foreign() {
    let runs = Runs::new().await;
    let a = runs.start().await;
    write_a_record(&a).await;
    let forged = append_forged(&runs.store().await, "admin", "forged").await;
    let text = export_jsonl(&a).await.unwrap();
    let (records, trailer) = cordon_proto::audit_chain::parse_export(&text).unwrap();
    let r = cordon_proto::audit_chain::verify_export(&records, trailer.as_ref(), vec![], Some(runs.ca()));
    let out = render(&r);
    println!("{out}");
    assert_eq!(r.problem.as_ref().and_then(|p| p.id), Some(forged), "{out}");
    assert!(out.contains(&format!("TAMPERED: record {forged}")), "{out}");
    // The verdict is signed: removing it from the trailer breaks the signature.
    let mut t = trailer.unwrap();
    assert!(t.foreign.is_some(), "{t:?}");
    t.foreign = None;
    let r = cordon_proto::audit_chain::verify_export(&records, Some(&t), vec![], Some(runs.ca()));
    assert!(r.problem.is_some(), "{}", render(&r));
    a.shutdown().await;
}

/// The fault kind (trial10 H-D): records with an id of 0 or below, without hashes, were
/// taken for records predating the chain on a log whose signed chain start is 0 — in
/// the database too. No database gives such an id: they are named tampered.
#[tokio::test]
async fn audit_writers_records_with_ids_below_one_do_not_predate_the_chain() {
    let runs = Runs::new().await;
    let a = runs.start().await;
    write_a_record(&a).await;
    let store = runs.store().await;
    for id in [0_i64, -5] {
        sqlx::query("INSERT INTO audit (id, at, actor, action, result) VALUES ($1, $2, 'alice', 'release', 'ok')")
            .bind(id)
            .bind(now())
            .execute(store.pool())
            .await
            .unwrap();
    }
    let r = runs.verify(&a).await;
    let text = render(&r);
    println!("{text}");
    assert_eq!(r.problem.as_ref().and_then(|p| p.id), Some(-5), "{text}");
    assert!(!text.contains("predate"), "{text}");
    a.shutdown().await;
    let a = runs.start().await;
    let r = runs.verify(&a).await;
    assert_eq!(r.problem.as_ref().and_then(|p| p.id), Some(-5), "{}", render(&r));
    a.shutdown().await;
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
    assert_eq!(row.status, cordon_proto::automation::DeliveryStatus::Pending, "{row:?}");
    assert!(row.attempts >= 1 && row.last_error.is_some(), "{row:?}");
}

/// The fault kind (trial18 HIGH-1): a live replica the stopping server did not count —
/// paused longer than the liveness window (here: its tasks stopped, its row no longer
/// refreshed), its clock skewed, or its writer row deleted from the database — kept
/// writing after the other's orderly stop signed `last_writer: true`, and its genuine,
/// validly marked records read "written after the orderly stop … while no server ran",
/// TAMPERED for good. A record's valid mark proves a server of the deployment wrote it;
/// a record without one after that stop is still tampered.
#[tokio::test]
async fn audit_writers_marked_records_of_an_uncounted_replica_after_the_others_stop_are_authentic() {
    let runs = Runs::new().await;
    let data_b = runs.replica_dir();
    let a = runs.start().await;
    let b = cordon_server::run::start(&runs::run_cfg(&data_b, &runs.db))
        .await
        .unwrap();
    write_a_record(&a).await;
    // B pauses (no heartbeat) and its row is gone: A is the last writer it can see.
    let b_state = b.state.clone();
    b.stop();
    sqlx::query("DELETE FROM audit_writers WHERE writer = $1")
        .bind(b_state.store.writer_id().to_string())
        .execute(b_state.store.pool())
        .await
        .unwrap();
    a.shutdown().await;
    let store = runs.store().await;
    let stop = checkpoints_of(&store).await.pop().unwrap();
    assert_eq!(stop.last_writer, Some(true), "{stop:?}");
    // B resumes and writes, with its valid mark.
    b_state
        .store
        .create_api_token("bob", "ops-after-stop", Role::Viewer)
        .await
        .unwrap();
    let r = b_state.store.audit_verify(vec![], Some(runs.ca())).await.unwrap();
    assert!(r.problem.is_none(), "B's genuine record: {}", render(&r));
    // A later start (A again) signs nothing against it either.
    let a = runs.start().await;
    let r = runs.verify(&a).await;
    assert!(r.problem.is_none(), "after a restart: {}", render(&r));
    let export = export_jsonl(&a).await.unwrap();
    let (records, trailer) = cordon_proto::audit_chain::parse_export(&export).unwrap();
    let offline = cordon_proto::audit_chain::verify_export(&records, trailer.as_ref(), vec![], Some(runs.ca()));
    assert!(offline.problem.is_none(), "offline: {}", render(&offline));
    // A record without a mark after the stop is still named.
    a.shutdown().await;
    let forged = append_forged(&store, "admin", "forged after the stops").await;
    let a = runs.start().await;
    let r = runs.verify(&a).await;
    assert_eq!(r.problem.as_ref().and_then(|p| p.id), Some(forged), "{}", render(&r));
    a.stop();
}

/// The fault kind (trial18 HIGH-1, clock skew): a replica whose clock ran 10 s ahead had
/// its writer row — signed by the CA key for exactly that time — taken for a fake
/// ("seen at … is in the future"), so the other's orderly stop signed `last_writer:
/// true` under a live writer. A signed row is a server of the deployment whatever its
/// clock says: counted as live (a warning names the skew).
#[tokio::test]
async fn audit_writers_a_signed_writer_row_with_a_clock_ahead_is_a_live_writer() {
    let runs = Runs::new().await;
    let a = runs.start().await;
    write_a_record(&a).await;
    let ca = cordon_server_core::pki::Ca::load(&runs.data).unwrap();
    let writer = "b".repeat(32);
    let pool = a.state.store.pool().clone();
    // A replica 10 s ahead, refreshing its signed row every 500 ms.
    let skewed = tokio::spawn(async move {
        loop {
            let seen = now() + 10_000;
            let proof = ca
                .sign(SignedCheckpoint {
                    last_id: seen,
                    hash: writer.clone(),
                    occasion: Some(cordon_server_core::store::WRITER_PROOF_OCCASION.into()),
                    ..Default::default()
                })
                .unwrap();
            sqlx::query(
                "INSERT INTO audit_writers (writer, started_at, seen_at, proof) VALUES ($1, $2, $2, $3) \
                 ON CONFLICT (writer) DO UPDATE SET seen_at = $2, proof = $3",
            )
            .bind(writer.clone())
            .bind(seen)
            .bind(serde_json::to_string(&proof).unwrap())
            .execute(&pool)
            .await
            .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    a.shutdown().await;
    skewed.abort();
    let _ = skewed.await;
    let store = runs.store().await;
    let stop = checkpoints_of(&store).await.pop().unwrap();
    assert_eq!(stop.last_writer, Some(false), "the skewed replica is live: {stop:?}");
    assert!(stop.ignored_writers.is_none(), "and not called a fake: {stop:?}");
}

/// The fault kind behind the flaky stop-edit-restart tests (brief audit9 item 4):
/// `Running::shutdown` aborted the server's tasks and slept 200 ms, so under load a task
/// could still run — a heartbeat putting the writer row back after the shutdown
/// checkpoint removed it. When the orderly stop returns, every task has ended (none holds
/// the store any more), the writer row stays gone and the shutdown checkpoint is the
/// last record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_writers_orderly_stop_returns_only_after_every_task_ended() {
    let runs = Runs::new().await;
    let server = runs.start().await;
    write_a_record(&server).await;
    let store = server.state.store.clone();
    let writer = store.writer_id().to_string();
    // Busy: a heartbeat and head read every two seconds; stop in the middle of it.
    tokio::time::sleep(std::time::Duration::from_millis(2010)).await;
    server.shutdown().await;
    assert_eq!(
        std::sync::Arc::strong_count(&store),
        1,
        "a task of the stopped server still holds its store"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_writers WHERE writer = $1")
        .bind(writer)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 0, "the writer row came back after the shutdown checkpoint");
    let last = store.audit(&Default::default()).await.unwrap().pop().unwrap();
    let cp: SignedCheckpoint = serde_json::from_str(last.detail.as_deref().unwrap()).unwrap();
    assert_eq!(cp.occasion.as_deref(), Some("shutdown"));
}

/// The fault kind (trial14 LOW): `cordon server init` opened the store without the CA it
/// had just made, so the bootstrap admin token's record carried the legacy per-process
/// mark, which no server can check. Every record init writes carries the deployment's
/// mark (`m1:`), valid under the key derived from the new CA.
#[tokio::test]
async fn audit_writers_server_init_marks_its_records_with_the_deployment_key() {
    let runs = Runs::new().await;
    let store = runs.store().await;
    let key = cordon_server::pki::Ca::load(&runs.data)
        .unwrap()
        .audit_mark_key()
        .unwrap();
    let rows = store.audit(&Default::default()).await.unwrap();
    assert!(!rows.is_empty(), "init writes the admin token's record");
    for r in rows {
        let mark: Option<String> = sqlx::query_scalar("SELECT writer_mac FROM audit WHERE id = $1")
            .bind(r.id)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert!(
            mark.as_deref()
                .is_some_and(|m| m.starts_with(cordon_server::store::MARK_PREFIX)),
            "record {} ({}) carries {mark:?}",
            r.id,
            r.action
        );
        assert!(
            cordon_server::store::mark_valid(&key, r.hash.as_deref().unwrap(), mark.as_deref()),
            "record {} ({}): its mark is not valid under the deployment's key",
            r.id,
            r.action
        );
    }
}

/// The fault kind (trial25 F5): two replicas started together on a fresh database — the
/// second one's watch for other writers ran before the first had committed its writer
/// row and start checkpoint, so it signed `no anchor found` for good (UNPROVEN, exit 6,
/// in 3 of 10 tries) although "a replica joining with a new data directory while another
/// runs" is not flagged. A start without its anchor now watches a signed writer row that
/// appeared meanwhile before it signs. Several pairs, each started at once.
#[tokio::test]
async fn audit_writers_servers_started_together_leave_no_warning() {
    for _ in 0..4 {
        let runs = Runs::new().await;
        let data_b = runs.replica_dir();
        let (cfg_a, cfg_b) = (runs::run_cfg(&runs.data, &runs.db), runs::run_cfg(&data_b, &runs.db));
        let (a, b) = tokio::join!(cordon_server::run::start(&cfg_a), cordon_server::run::start(&cfg_b));
        let (a, b) = (a.unwrap(), b.unwrap());
        let r = runs.verify(&a).await;
        assert!(r.problem.is_none() && r.warnings.is_empty(), "{}", render(&r));
        b.shutdown().await;
        a.shutdown().await;
    }
}

/// trial33 LOW-D: a second start on a port in use wrote its start checkpoint record, then
/// exited "cannot listen" without a shutdown checkpoint: the log read as the crash of a
/// server that never served. The port is bound first: the failed start writes nothing.
#[tokio::test]
async fn a_start_that_cannot_listen_writes_nothing() {
    let runs = Runs::new().await;
    let first = runs.start().await;
    let store = runs.store().await;
    let before = store.audit_count().await.unwrap();
    let mut cfg = run_cfg(&runs.replica_dir(), &runs.db);
    cfg.listen = first.addr;
    let e = match cordon_server::run::start(&cfg).await {
        Ok(_) => panic!("a second server listened on {}", first.addr),
        Err(e) => e,
    };
    assert!(e.to_string().contains("cannot listen"), "{e}");
    assert_eq!(
        store.audit_count().await.unwrap(),
        before,
        "the failed start wrote a record"
    );
    first.shutdown().await;
}
