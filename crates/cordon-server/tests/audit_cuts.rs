//! Records missing from the audit log, and links of its checkpoint chain, are excused only
//! by what a server signed (issue 17, trial14): the database's own note of a retention cut
//! (`audit_chain.cut_id`/`cut_hash`) is anyone's to write, and a retention record is
//! anyone's to insert, so neither may excuse a missing or forged record. An undelivered
//! shutdown checkpoint stays queued for the next start. Runs on SQLite, and again on
//! PostgreSQL with `CORDON_TEST_POSTGRES` (scripts/test).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cordon_proto::audit_chain::{parse_export, render, verify_export, ChainReport, SignedCheckpoint};
use cordon_proto::Role;
use cordon_server::Store;
use runs::{append_forged, export_jsonl, rechain_and_set_head, write_a_record, Runs};

#[path = "common/runs.rs"]
mod runs;

async fn exec(store: &Store, sql: &str) {
    sqlx::query(sql).execute(store.pool()).await.unwrap();
}

async fn ids(store: &Store) -> Vec<i64> {
    store
        .audit(&Default::default())
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect()
}

/// Removes every record from `from` on and rewinds the head row to the record before,
/// then writes the database's retention note as trial14 did (a cut far beyond the log).
async fn cut_tail_with_a_forged_cut_note(store: &Store, from: i64) {
    exec(store, &format!("DELETE FROM audit WHERE id >= {from}")).await;
    let (id, hash): (i64, String) = sqlx::query_as(&format!(
        "SELECT id, hash FROM audit WHERE id < {from} ORDER BY id DESC LIMIT 1"
    ))
    .fetch_one(store.pool())
    .await
    .unwrap();
    exec(
        store,
        &format!(
            "UPDATE audit_chain SET head_id = {id}, head_hash = '{hash}', cut_id = 1000000, cut_hash = 'x' WHERE id = 1"
        ),
    )
    .await;
}

/// Appends a record with `action` and `detail` (actor `system`) the way someone with
/// database access would: hashes chained, head row moved, no mark. Returns its id.
async fn append_raw(store: &Store, action: &str, detail: &str) -> i64 {
    let id = append_forged(store, "system", "x").await;
    // Rewrite it into the wanted record and hash it again.
    sqlx::query("UPDATE audit SET action = $1, detail = $2, comment = NULL WHERE id = $3")
        .bind(action.to_string())
        .bind(detail.to_string())
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
    rechain_and_set_head(store, id).await;
    id
}

/// trial14's `retwrap`: a retention record wrapping the newest checkpoint record's
/// signed detail (any viewer can read it). Returns its id.
async fn append_wrapped_checkpoint(store: &Store) -> i64 {
    let d: String =
        sqlx::query_scalar("SELECT detail FROM audit WHERE action = 'audit_checkpoint' ORDER BY id DESC LIMIT 1")
            .fetch_one(store.pool())
            .await
            .unwrap();
    let cut: SignedCheckpoint = serde_json::from_str(&d).unwrap();
    let detail = serde_json::json!({"cut": cut, "records": 0, "archive": "x"}).to_string();
    append_raw(store, "audit_retention", &detail).await
}

/// trial14's `retcopy`: a copy of the newest real retention record. Returns its id.
async fn append_copied_retention(store: &Store) -> i64 {
    let d: String =
        sqlx::query_scalar("SELECT detail FROM audit WHERE action = 'audit_retention' ORDER BY id DESC LIMIT 1")
            .fetch_one(store.pool())
            .await
            .unwrap();
    append_raw(store, "audit_retention", &d).await
}

/// The server's verification and the offline verification of its full export: both
/// TAMPERED, naming the same record (server and export must never disagree). Returns
/// the server's report.
async fn verify_both(runs: &Runs, server: &cordon_server::run::Running) -> ChainReport {
    let r = runs.verify(server).await;
    let text = render(&r);
    println!("server: {text}");
    let export = export_jsonl(server).await.unwrap();
    let (records, trailer) = parse_export(&export).unwrap();
    let offline = verify_export(&records, trailer.as_ref(), vec![], Some(runs.ca()));
    let out = render(&offline);
    println!("export: {out}");
    assert!(r.problem.is_some(), "server verification must not be OK: {text}");
    assert_eq!(
        r.problem.as_ref().and_then(|p| p.id),
        offline.problem.as_ref().and_then(|p| p.id),
        "server and export name the same record:\nserver: {text}\nexport: {out}"
    );
    r
}

/// The report's problem is about record `id`: it names it, or says what it was.
fn names(r: &ChainReport, id: i64) -> bool {
    let said = |text: &str| {
        let needle = format!("record {id}");
        text.match_indices(&needle)
            .any(|(at, _)| !text[at + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
    };
    r.problem.as_ref().is_some_and(|p| p.id == Some(id) || said(&p.reason))
}

/// Waits (bounded) until `server` has seen the database's current head (its head
/// watcher reads it every two seconds).
async fn wait_seen(server: &cordon_server::run::Running) {
    let store = &server.state.store;
    let start = std::time::Instant::now();
    loop {
        let (head, _) = store.audit_head().await.unwrap();
        if store.seen_audit_head() == head {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the head was not seen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The fault kind (trial14 HIGH-1): the tail cut while the server is stopped — its
/// shutdown checkpoint included — read OK when the database's retention note also said
/// "cut through a million": the start checkpoint dropped the anchor from the data
/// directory on the note's word. Only a signed retention record excuses a missing record.
#[tokio::test]
async fn audit_cuts_tail_cut_while_stopped_with_a_forged_cut_note_is_tampered() {
    let runs = Runs::new().await;
    let first = runs.start().await;
    for name in ["ops-1", "ops-2", "ops-3"] {
        first
            .state
            .store
            .create_api_token("alice", name, Role::Viewer)
            .await
            .unwrap();
    }
    first.shutdown().await;
    let store = runs.store().await;
    let all = ids(&store).await;
    let stop = *all.last().unwrap();
    let from = all[all.len() - 3];
    cut_tail_with_a_forged_cut_note(&store, from).await;
    drop(store);
    let second = runs.start().await;
    let r = runs.verify(&second).await;
    let text = render(&r);
    println!("{text}");
    let p = r.problem.clone().unwrap_or_else(|| panic!("not tampered: {text}"));
    assert!(
        p.reason.contains(&format!("record {stop}")),
        "names the shutdown checkpoint record that is gone: {text}"
    );
    // Signed into the start checkpoint: every later start says it too.
    second.shutdown().await;
    let third = runs.start().await;
    let r = runs.verify(&third).await;
    assert!(names(&r, stop), "{}", render(&r));
    third.shutdown().await;
}

/// The fault kind (trial14 HIGH-1b), on two replicas: records cut from the tail while the
/// servers run, the head rewound and the retention note forged. Once a server's next
/// genuine record moved the head past the one it had seen, the note excused the missing
/// record and verification read OK on both replicas, and after a restart. Each replica
/// names what it saw; a genuine retention cut still excuses what it removed.
#[tokio::test]
async fn audit_cuts_tail_cut_while_running_with_a_forged_cut_note_is_tampered_on_two_replicas() {
    let runs = Runs::new().await;
    let data_b = runs.replica_dir();
    let a = runs.start().await;
    let b = cordon_server::run::start(&runs::run_cfg(&data_b, &runs.db))
        .await
        .unwrap();
    for name in ["tka", "tkb", "tkc"] {
        a.state
            .store
            .create_api_token("alice", name, Role::Viewer)
            .await
            .unwrap();
    }
    wait_seen(&a).await;
    wait_seen(&b).await;
    let store = runs.store().await;
    let all = ids(&store).await;
    let gone = *all.last().unwrap();
    cut_tail_with_a_forged_cut_note(&store, all[all.len() - 2]).await;
    // The servers look at the head (every two seconds); they wrote on over the cut
    // before trial35 MED-1 (this test's expectation changed deliberately with that fix):
    // now both refuse, naming the record cut.
    a.state.store.note_audit_head().await.unwrap();
    b.state.store.note_audit_head().await.unwrap();
    for (server, name) in [(&b, "tkd"), (&a, "tke")] {
        match server.state.store.create_api_token("alice", name, Role::Viewer).await {
            Err(cordon_server::StoreError::AuditTampered(why)) => {
                assert!(why.contains(&format!("record {gone}")), "{why}")
            }
            other => panic!("a write over the cut: {other:?}"),
        }
    }
    a.state.store.note_audit_head().await.unwrap();
    b.state.store.note_audit_head().await.unwrap();
    for (name, server) in [("a", &a), ("b", &b)] {
        let r = runs.verify(server).await;
        let text = render(&r);
        println!("{name}: {text}");
        assert!(names(&r, gone), "replica {name} names the record cut: {text}");
    }
    b.shutdown().await;
    a.shutdown().await;
    let a = runs.start().await;
    let r = runs.verify(&a).await;
    assert!(names(&r, gone), "after a restart too: {}", render(&r));
    a.shutdown().await;
}

/// No false alarm: a replica that saw the head before another replica's genuine
/// retention cut removed it takes the signed cut as the excuse (what the database's note
/// was meant for).
#[tokio::test]
async fn audit_cuts_a_genuine_retention_cut_excuses_what_another_replica_saw() {
    let runs = Runs::new().await;
    let data_b = runs.replica_dir();
    let a = runs.start().await;
    let b = cordon_server::run::start(&runs::run_cfg(&data_b, &runs.db))
        .await
        .unwrap();
    write_a_record(&a).await;
    wait_seen(&b).await;
    let seen = b.state.store.seen_audit_head().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let done = cordon_server_core::service::audit::retain(&a.state, 0, &runs.dir.path().join("archive"))
        .await
        .unwrap()
        .expect("records old enough");
    assert!(
        done.cut >= seen.last_id,
        "the cut removed what b saw: {done:?} {seen:?}"
    );
    b.state.store.note_audit_head().await.unwrap();
    for (name, server) in [("a", &a), ("b", &b)] {
        let r = runs.verify(server).await;
        assert!(r.ok, "replica {name}: {}", render(&r));
    }
    b.shutdown().await;
    a.shutdown().await;
    let a = runs.start().await;
    let r = runs.verify(&a).await;
    assert!(r.ok, "after a restart: {}", render(&r));
    a.shutdown().await;
}

/// The fault kind (trial14 HIGH-2 a): after a crash, a forged record followed by a forged
/// retention record wrapping a real signed checkpoint read OK — the retention record was
/// taken for a link of the checkpoint chain and the mark check started after it — while
/// the full export said TAMPERED. Both now name the forged record, after restarts too.
#[tokio::test]
async fn audit_cuts_forged_retention_record_after_a_crash_hides_nothing() {
    let runs = Runs::new().await;
    let first = runs.start().await;
    write_a_record(&first).await;
    runs.wait_anchor_head(&first.state.store).await;
    first.stop(); // a crash: no shutdown checkpoint
    let store = runs.store().await;
    let forged = append_forged(&store, "admin", "forged, no retention ever").await;
    let wrapped = append_wrapped_checkpoint(&store).await;
    assert_eq!(wrapped, forged + 1);
    drop(store);
    let second = runs.start().await;
    let r = verify_both(&runs, &second).await;
    let text = render(&r);
    assert_eq!(r.problem.as_ref().and_then(|p| p.id), Some(forged), "{text}");
    assert!(text.contains("written by no server"), "{text}");
    second.shutdown().await;
    let third = runs.start().await;
    let r = verify_both(&runs, &third).await;
    assert_eq!(r.problem.as_ref().and_then(|p| p.id), Some(forged), "{}", render(&r));
    third.shutdown().await;
}

/// The fault kind (trial14 HIGH-2 b): after an orderly stop, the shutdown checkpoint cut
/// (with the forged retention note of HIGH-1), then a forged record and a forged
/// retention record: read OK on the server, TAMPERED in the export. Also with a copy of
/// a real retention record (trial14 `retcopy`).
#[tokio::test]
async fn audit_cuts_forged_retention_record_after_an_orderly_stop_hides_nothing() {
    for copy_a_real_one in [false, true] {
        let runs = Runs::new().await;
        let first = runs.start().await;
        write_a_record(&first).await;
        if copy_a_real_one {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            cordon_server_core::service::audit::retain(&first.state, 0, &runs.dir.path().join("archive"))
                .await
                .unwrap()
                .expect("records old enough");
            write_a_record_named(&first, "ops-after-retention").await;
        }
        first.shutdown().await;
        let store = runs.store().await;
        let stop = *ids(&store).await.last().unwrap();
        cut_tail_with_a_forged_cut_note(&store, stop).await;
        let forged = append_forged(&store, "admin", "forged while stopped (orderly)").await;
        if copy_a_real_one {
            append_copied_retention(&store).await;
        } else {
            append_wrapped_checkpoint(&store).await;
        }
        drop(store);
        let second = runs.start().await;
        let r = verify_both(&runs, &second).await;
        let text = render(&r);
        assert_eq!(
            r.problem.as_ref().and_then(|p| p.id),
            Some(forged),
            "copy {copy_a_real_one}: {text}"
        );
        second.shutdown().await;
        let third = runs.start().await;
        let r = verify_both(&runs, &third).await;
        assert_eq!(
            r.problem.as_ref().and_then(|p| p.id),
            Some(forged),
            "copy {copy_a_real_one}: {}",
            render(&r)
        );
        third.shutdown().await;
    }
}

async fn write_a_record_named(server: &cordon_server::run::Running, name: &str) {
    server
        .state
        .store
        .create_api_token("alice", name, Role::Viewer)
        .await
        .unwrap();
}

/// A webhook receiver on 127.0.0.1 that answers 503 while `up` is false: every body it
/// accepted.
async fn switchable_receiver() -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let up = Arc::new(AtomicBool::new(false));
    let (keep, on) = (got.clone(), up.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let (keep, on) = (keep.clone(), on.clone());
            async move {
                if !on.load(Ordering::SeqCst) {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                keep.lock().unwrap().push(body);
                axum::http::StatusCode::OK
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, up, got)
}

/// The fault kind (trial14 MED-1): the shutdown checkpoint a target could not take during
/// the stop was retried every 250 ms for 5 s, each try counted against the delivery's
/// budget of 20, so the next start marked it `dead` unsent — though the warning says it
/// is sent at the next start. The stop's tries count as one attempt: it is delivered
/// after the next start.
#[tokio::test]
async fn audit_cuts_shutdown_checkpoint_undelivered_at_stop_is_delivered_after_the_next_start() {
    use cordon_proto::automation::{TargetKind, TargetSpec};
    let runs = Runs::new().await;
    let (url, up, got) = switchable_receiver().await;
    let first = runs.start().await;
    let spec = TargetSpec {
        name: "outside-copy".into(),
        kind: TargetKind::Webhook,
        url,
        events: vec!["audit_checkpoint".into()],
        enabled: true,
    };
    let target = first.state.store.add_notify_target("alice", &spec).await.unwrap().id;
    write_a_record(&first).await;
    let store = first.state.store.clone();
    first.shutdown().await; // the target answers 503 all through the stop
    let last = store.audit(&Default::default()).await.unwrap().pop().unwrap();
    let stop: SignedCheckpoint = serde_json::from_str(last.detail.as_deref().unwrap()).unwrap();
    assert_eq!(stop.occasion.as_deref(), Some("shutdown"), "{stop:?}");
    let stop_hash = stop.hash;
    let row = store
        .deliveries(None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.target_id == target)
        .max_by_key(|d| d.id)
        .expect("a delivery row");
    assert_eq!(row.status, cordon_proto::automation::DeliveryStatus::Pending, "{row:?}");
    assert_eq!(row.attempts, 1, "the stop's tries are one attempt: {row:?}");
    drop(store);
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    let second = runs.start().await;
    let start = std::time::Instant::now();
    loop {
        let delivered = got.lock().unwrap().iter().any(|b| b.contains(&stop_hash));
        if delivered {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "the shutdown checkpoint was not delivered after the next start: {:?}",
            second.state.store.deliveries(None, 100).await.unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    second.shutdown().await;
}

/// `GET /v1/audit?format=jsonl` through the server's router with admin token `admin`:
/// the status and the body.
async fn http_export(server: &cordon_server::run::Running, admin: &str) -> (axum::http::StatusCode, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let req = axum::http::Request::builder()
        .method("GET")
        .uri("/v1/audit?format=jsonl")
        .header("authorization", format!("Bearer {admin}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = cordon_server::router(server.state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let body = match resp.into_body().collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(e) => format!("<the body ended with an error: {e}>"),
    };
    (status, body)
}

/// The fault kind (trial14 HIGH-3): records cut from the tail while the server runs —
/// after it saw them — and the head row rewound: the full export still signed a trailer
/// over the shorter log and the offline verification read OK. Nothing is signed over a
/// log shorter than what the server saw: the export is refused with 409 `chain_tampered`
/// naming the missing record, as a status (trial14 LOW-1: not a body cut off after 200).
#[tokio::test]
async fn audit_cuts_export_is_never_signed_over_a_tail_cut_the_server_saw() {
    let runs = Runs::new().await;
    let server = runs.start().await;
    // The admin token of the HTTP export is made before the cut: after it, the server
    // writes nothing (trial35 MED-1; this test made it after the cut before).
    let admin = server
        .state
        .store
        .create_api_token("export-admin", "ops-export", Role::Admin)
        .await
        .unwrap()
        .token;
    for name in ["exa", "exb", "exc"] {
        server
            .state
            .store
            .create_api_token("alice", name, Role::Viewer)
            .await
            .unwrap();
    }
    wait_seen(&server).await;
    let store = runs.store().await;
    let all = ids(&store).await;
    let gone = *all.last().unwrap();
    let from = all[all.len() - 2];
    exec(&store, &format!("DELETE FROM audit WHERE id >= {from}")).await;
    let (id, hash): (i64, String) = sqlx::query_as(&format!(
        "SELECT id, hash FROM audit WHERE id < {from} ORDER BY id DESC LIMIT 1"
    ))
    .fetch_one(store.pool())
    .await
    .unwrap();
    exec(
        &store,
        &format!("UPDATE audit_chain SET head_id = {id}, head_hash = '{hash}' WHERE id = 1"),
    )
    .await;
    match export_jsonl(&server).await {
        Ok(text) => {
            let (records, trailer) = parse_export(&text).unwrap();
            let offline = verify_export(&records, trailer.as_ref(), vec![], Some(runs.ca()));
            panic!("an export was signed over the cut log; offline: {}", render(&offline));
        }
        Err(e) => {
            assert!(e.contains("chain_tampered"), "{e}");
            assert!(e.contains(&format!("record {gone}")), "names the missing record: {e}");
        }
    }
    let (status, body) = http_export(&server, &admin).await;
    assert_eq!(status, axum::http::StatusCode::CONFLICT, "{body}");
    assert!(
        body.contains("chain_tampered") && body.contains(&format!("record {gone}")),
        "{body}"
    );
    server.stop();
}

/// Record ids and the `audit_retention*` records of the log.
async fn retention_records(store: &Store, action: &str) -> Vec<cordon_proto::AuditRecord> {
    store
        .audit(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == action)
        .collect()
}

/// The fault kind (trial14 MED-3): retention archived and deleted a stretch the server's
/// own verification found tampered, and the database verified OK afterwards. Retention
/// never runs over a log that does not verify: refused (409 `chain_tampered`), nothing
/// archived or deleted, the refusal recorded in the log, and verification still names the
/// edited record.
#[tokio::test]
async fn audit_cuts_retention_refuses_over_a_chain_that_does_not_verify() {
    let runs = Runs::new().await;
    let server = runs.start().await;
    write_a_record(&server).await;
    write_a_record_named(&server, "ops-2").await;
    let store = runs.store().await;
    let before = ids(&store).await;
    let edited = before[before.len() - 2];
    exec(
        &store,
        &format!("UPDATE audit SET comment = 'edited by attacker' WHERE id = {edited}"),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let dir = runs.dir.path().join("archive");
    let out = cordon_server_core::service::audit::retain(&server.state, 0, &dir).await;
    let e = out.expect_err("retention over a tampered log must be refused");
    // Typed since issue 13 MED-2: the answer at the HTTP edge.
    let text = format!("{:?}", cordon_server_core::ApiError::from(e));
    assert!(text.contains("chain_tampered"), "{text}");
    assert!(text.contains(&format!("record {edited}")), "{text}");
    let after = ids(&store).await;
    assert!(
        before.iter().all(|id| after.contains(id)),
        "nothing deleted: {before:?} -> {after:?}"
    );
    assert!(
        std::fs::read_dir(&dir).map_or(true, |d| d.count() == 0),
        "no archive written"
    );
    assert!(retention_records(&store, "audit_retention").await.is_empty());
    let refused = retention_records(&store, "audit_retention_refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    // Refused again (the next hour): recorded once.
    assert!(cordon_server_core::service::audit::retain(&server.state, 0, &dir)
        .await
        .is_err());
    assert_eq!(retention_records(&store, "audit_retention_refused").await.len(), 1);
    let r = runs.verify(&server).await;
    assert!(names(&r, edited), "{}", render(&r));
    server.stop();
}

/// The fault kind (trial14 MED-3, `at` trusted): the cut was the newest record stamped
/// before the retention age, so one record at the tail stamped in the past (here with a
/// valid mark: a server whose clock stepped back) made retention archive and delete every
/// newer record before it. The cut is the leading run of old records, in the log's order.
#[tokio::test]
async fn audit_cuts_retention_cut_follows_the_log_order_not_a_stamped_time() {
    let runs = Runs::new().await;
    let first = runs.start().await;
    write_a_record(&first).await;
    let old_last = *ids(&first.state.store).await.last().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let t0 = cordon_server_core::timefmt::now_ms();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    write_a_record_named(&first, "ops-new").await;
    runs.wait_anchor_head(&first.state.store).await;
    let writer = first.state.store.writer_id().to_string();
    first.stop(); // a crash
    let store = runs.store().await;
    let stamped = append_forged(&store, "admin", "stamped in the past").await;
    exec(&store, &format!("UPDATE audit SET at = 0 WHERE id = {stamped}")).await;
    rechain_and_set_head(&store, stamped).await;
    runs::mark_as_written_by(&store, &runs.data, stamped, &writer).await;
    drop(store);
    let second = runs.start().await;
    let age = cordon_server_core::timefmt::now_ms() - t0;
    let done = cordon_server_core::service::audit::retain(&second.state, age, &runs.dir.path().join("archive"))
        .await
        .unwrap()
        .expect("records old enough");
    assert_eq!(
        done.cut, old_last,
        "the cut ends where the first newer record stands, not at the tail record stamped in the past"
    );
    let left = ids(&second.state.store).await;
    assert!(left.contains(&stamped), "{left:?}");
    second.stop();
}

/// The fault kind (trial14 LOW-4): two replicas running retention at the same time both
/// cut the same records — two `audit_retention` records each claiming them, two
/// archives. The cut is made once: the other replica deletes nothing, records nothing
/// and keeps no archive.
#[tokio::test]
async fn audit_cuts_two_replicas_make_one_retention_cut_once() {
    let runs = Runs::new().await;
    let data_b = runs.replica_dir();
    let a = runs.start().await;
    let b = cordon_server::run::start(&runs::run_cfg(&data_b, &runs.db))
        .await
        .unwrap();
    write_a_record(&a).await;
    write_a_record_named(&b, "ops-b").await;
    wait_seen(&a).await;
    wait_seen(&b).await;
    let t0 = cordon_server_core::timefmt::now_ms();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let age = cordon_server_core::timefmt::now_ms() - t0;
    let (dir_a, dir_b) = (runs.dir.path().join("arch-a"), runs.dir.path().join("arch-b"));
    let (ra, rb) = tokio::join!(
        cordon_server_core::service::audit::retain(&a.state, age, &dir_a),
        cordon_server_core::service::audit::retain(&b.state, age, &dir_b),
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(
        usize::from(ra.is_some()) + usize::from(rb.is_some()),
        1,
        "exactly one replica cuts: {ra:?} {rb:?}"
    );
    let store = runs.store().await;
    assert_eq!(
        retention_records(&store, "audit_retention").await.len(),
        1,
        "one retention record"
    );
    let archives = [&dir_a, &dir_b]
        .iter()
        .map(|d| std::fs::read_dir(d).map_or(0, |d| d.count()))
        .sum::<usize>();
    assert_eq!(archives, 1, "one archive");
    for (name, server) in [("a", &a), ("b", &b)] {
        server.state.store.note_audit_head().await.unwrap();
        let r = runs.verify(server).await;
        assert!(r.ok, "replica {name}: {}", render(&r));
    }
    b.stop();
    a.stop();
}

/// The fault kind (issue 17, session 10): a retention refusal (the log does not verify,
/// so nothing is archived or deleted) was only logged and recorded in the database — the
/// very place that was found tampered. It also reaches the notification targets that keep
/// the audit log's copies outside the database (those subscribed to `audit_checkpoint`),
/// by the same outbox path as the checkpoint copies, naming the edited record.
#[tokio::test]
async fn audit_cuts_retention_refusal_reaches_the_notification_targets() {
    use cordon_proto::automation::{TargetKind, TargetSpec};
    let runs = Runs::new().await;
    let (url, up, got) = switchable_receiver().await;
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    let server = runs.start().await;
    let spec = TargetSpec {
        name: "outside-copy".into(),
        kind: TargetKind::Webhook,
        url,
        events: vec!["audit_checkpoint".into()],
        enabled: true,
    };
    server.state.store.add_notify_target("alice", &spec).await.unwrap();
    write_a_record(&server).await;
    write_a_record_named(&server, "ops-2").await;
    let store = runs.store().await;
    let before = ids(&store).await;
    let edited = before[before.len() - 2];
    exec(
        &store,
        &format!("UPDATE audit SET comment = 'edited by attacker' WHERE id = {edited}"),
    )
    .await;
    let dir = runs.dir.path().join("archive");
    assert!(cordon_server_core::service::audit::retain(&server.state, 0, &dir)
        .await
        .is_err());
    let refused = retention_records(&store, "audit_retention_refused").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    let start = std::time::Instant::now();
    let body = loop {
        let found = got
            .lock()
            .unwrap()
            .iter()
            .find(|b| b.contains("audit_retention_refused"))
            .cloned();
        if let Some(b) = found {
            break b;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "the refusal did not reach the target: {:?}",
            store.deliveries(None, 100).await.unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["action"], "audit_retention_refused", "{v}");
    assert_eq!(v["audit_id"], refused[0].id, "{v}");
    let text = v["text"].as_str().unwrap();
    assert!(text.contains("AUDIT RETENTION REFUSED"), "{text}");
    assert!(
        text.contains(&format!("record {edited}")),
        "names the edited record: {text}"
    );
    server.stop();
}

/// The fault kind (trial25 F8): retention archived a stretch verification could not
/// vouch for (here: a start without its anchor file, signed `no_anchor`) and the live log
/// then verified plain OK — the warning survived only inside the archive. The retention
/// record carries the warnings of what it cut, and verification keeps saying them.
#[tokio::test]
async fn audit_cuts_retention_keeps_saying_what_the_archived_part_left_unproven() {
    let runs = Runs::new().await;
    let first = runs.start().await;
    write_a_record(&first).await;
    first.shutdown().await;
    std::fs::remove_file(runs.data.join("audit-anchor.json")).unwrap();
    let second = runs.start().await;
    let r = runs.verify(&second).await;
    assert!(r.problem.is_none() && !r.warnings.is_empty(), "{}", render(&r));
    let dir = runs.dir.path().join("archive");
    cordon_server_core::service::audit::retain(&second.state, 0, &dir)
        .await
        .unwrap()
        .expect("a cut");
    let r = runs.verify(&second).await;
    assert!(r.problem.is_none(), "{}", render(&r));
    assert!(!r.ok, "{}", render(&r));
    assert!(
        r.warnings
            .iter()
            .any(|w| w.reason.contains("were not all vouched for when they were cut") && w.reason.contains("anchor")),
        "{}",
        render(&r)
    );
    second.shutdown().await;
}
