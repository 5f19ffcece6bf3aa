//! Database round trips per host (issue 15, 10,000 agents): a bulk action and a batch of
//! agent reports must not cost a dozen statements per host while holding the writer
//! lock — at 10,000 hosts that was tens of thousands of round trips (5.5 s for 1,000
//! hosts on PostgreSQL) before the first agent was even woken. Counted, not timed:
//! every statement sqlx runs emits one `sqlx::query` event, which this test binary
//! counts. Runs on SQLite, and on PostgreSQL in the `CORDON_TEST_POSTGRES` pass.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use common::{status_report, Ctx};
use cordon_proto::{AgentState, HostState};
use cordon_server::store::{Action, ActionParams, NewHost, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

static STATEMENTS: AtomicU64 = AtomicU64::new(0);

struct CountStatements;

impl<S: tracing::Subscriber> Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() == "sqlx::query" {
            STATEMENTS.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Installs the counter (once per test binary) and serialises the tests that read it.
async fn counting() -> tokio::sync::MutexGuard<'static, ()> {
    static ONCE: OnceLock<()> = OnceLock::new();
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONCE.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(CountStatements)).unwrap();
    });
    SERIAL.lock().await
}

/// Statements `f` ran.
async fn statements<T>(f: impl std::future::Future<Output = T>) -> (T, u64) {
    let before = STATEMENTS.load(Ordering::SeqCst);
    let out = f.await;
    (out, STATEMENTS.load(Ordering::SeqCst) - before)
}

/// `n` hosts labelled `label`, written straight to the store (no certificates needed).
async fn hosts(ctx: &Ctx, label: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let token = ctx
            .store()
            .create_enroll_token("test", &[label.to_string()], 3600)
            .await
            .unwrap()
            .token;
        let id = uuid::Uuid::new_v4().to_string();
        ctx.store()
            .enroll(
                &token,
                &NewHost {
                    id: id.clone(),
                    hostname: format!("{label}-host-{i:04}"),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

async fn quarantine(ctx: &Ctx, label: &str) -> usize {
    let p = ActionParams {
        comment: "IR-15".into(),
        ..Default::default()
    };
    ctx.store()
        .act("rita", Action::Quarantine, &Targets::Label(label.into()), &p)
        .await
        .unwrap()
        .0
        .len()
}

async fn chain_verifies(ctx: &Ctx) {
    let r = ctx.store().audit_verify(vec![], None).await.unwrap();
    assert!(r.problem.is_none(), "{r:?}");
}

/// The fault kind: database round trips that grow with the number of hosts a bulk
/// action touches (the old path ran about a dozen statements per host).
#[tokio::test]
async fn a_bulk_action_costs_statements_per_chunk_not_per_host() {
    let _serial = counting().await;
    let ctx = Ctx::new().await;
    let small = hosts(&ctx, "small", 20).await;
    let large = hosts(&ctx, "large", 220).await;
    let (n_small, s_small) = statements(quarantine(&ctx, "small")).await;
    let (n_large, s_large) = statements(quarantine(&ctx, "large")).await;
    assert_eq!((n_small, n_large), (20, 220));
    // 200 more hosts: a few more statements (another wake-up notification, another
    // audit INSERT and notification-queue INSERT per 32 records: `ROWS_PER_INSERT`, was
    // 200), not ~12 per host as before (2,400 more).
    let per_records = 2 * 200 / 32;
    assert!(
        s_large <= s_small + 10 + per_records,
        "20 hosts took {s_small} statements, 220 took {s_large}: round trips grow with the host count"
    );
    // And the set-based path did all of it: one audit record per host, chained, the
    // Quarantine label, one revision each.
    for id in small.iter().chain(&large) {
        let h = ctx.store().host(id).await.unwrap();
        assert!(h.desired.quarantined && h.desired.revision == 2, "{id}: {h:?}");
        assert_eq!(h.state, HostState::QuarantinePending);
        assert!(h.labels.iter().any(|l| l == "Quarantine"), "{id}: {:?}", h.labels);
        let audit = ctx.audit_for(id).await;
        let q: Vec<_> = audit.iter().filter(|a| a.action == "quarantine").collect();
        assert_eq!(q.len(), 1, "{id}: {audit:?}");
        assert_eq!(q[0].detail.as_deref(), Some("revision 2"));
        assert_eq!(q[0].comment.as_deref(), Some("IR-15"));
    }
    // Again: nothing changes, and each host still gets its record saying so.
    let (n_again, s_again) = statements(quarantine(&ctx, "large")).await;
    assert_eq!(n_again, 220);
    assert!(
        s_again <= s_small + 10 + per_records,
        "unchanged re-quarantine of 220 took {s_again}"
    );
    let audit = ctx.audit_for(&large[7]).await;
    assert_eq!(
        audit.iter().filter(|a| a.action == "quarantine_unchanged").count(),
        1,
        "{audit:?}"
    );
    chain_verifies(&ctx).await;
}

/// The fault kind: round trips per acknowledgement that grow beyond the report's own
/// update (the old path ran about sixteen statements per first confirmation).
#[tokio::test]
async fn a_batch_of_reports_costs_one_statement_per_report() {
    let _serial = counting().await;
    let ctx = Ctx::new().await;
    let ids = hosts(&ctx, "fleet", 200).await;
    quarantine(&ctx, "fleet").await;
    let report = status_report(2, AgentState::Isolated, "d1", "nftables");
    // Sent together, they are committed in groups (one transaction per group).
    let (states, n) = statements(futures_util::future::join_all(
        ids.iter().map(|id| ctx.store().record_report(id, &report)),
    ))
    .await;
    for s in &states {
        assert_eq!(s.as_ref().unwrap(), &HostState::Quarantined);
    }
    assert!(
        n <= ids.len() as u64 + 40,
        "{} reports took {n} statements: round trips grow per report",
        ids.len()
    );
    // Each first confirmation is written once, names who asked, and is queued for
    // notification; a second report of the same revision confirms nothing again.
    let (_, again) = statements(futures_util::future::join_all(
        ids.iter().map(|id| ctx.store().record_report(id, &report)),
    ))
    .await;
    assert!(again <= ids.len() as u64 + 40, "repeated reports took {again}");
    for id in &ids {
        let audit = ctx.audit_for(id).await;
        let confirmed: Vec<_> = audit.iter().filter(|a| a.action == "quarantine_confirmed").collect();
        assert_eq!(confirmed.len(), 1, "{id}: {audit:?}");
        assert!(
            confirmed[0]
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("asked by rita")),
            "{confirmed:?}"
        );
        assert_eq!(confirmed[0].comment.as_deref(), Some("IR-15"));
        assert_eq!(ctx.store().host(id).await.unwrap().applied_revision, 2);
    }
    chain_verifies(&ctx).await;
}

/// The fault kind: one statement per agent request reading its host. A bulk action over
/// 10,000 hosts wakes 10,000 long-polls at once, each re-reading its host's desired
/// state, and each agent's report and next long-poll check its certificate's host again:
/// about 40,000 single-row queries queued for the pool's few connections. Reads under
/// way together are answered by one statement per batch, each with the row as stored
/// when its call was made.
#[tokio::test]
async fn concurrent_agent_reads_cost_statements_per_batch_not_per_host() {
    let _serial = counting().await;
    let ctx = Ctx::new().await;
    let ids = hosts(&ctx, "fleet", 200).await;
    quarantine(&ctx, "fleet").await;
    ctx.store().revoke("rita", &ids[3], Some("IR-15"), true).await.unwrap();
    let (read, n) = statements(async {
        let desired = futures_util::future::join_all(ids.iter().map(|id| ctx.store().desired(id)));
        let active = futures_util::future::join_all(ids.iter().map(|id| ctx.store().host_active(id)));
        futures_util::future::join(desired, active).await
    })
    .await;
    let (desired, active) = read;
    assert!(
        n <= 20,
        "{} concurrent reads took {n} statements: one round trip per read",
        2 * ids.len()
    );
    for (i, (d, a)) in desired.into_iter().zip(active).enumerate() {
        let (d, revoked) = d.unwrap().unwrap();
        assert!(d.quarantined && d.revision == 2, "{}: {d:?}", ids[i]);
        assert_eq!(revoked, i == 3, "{}", ids[i]);
        assert_eq!(a.unwrap(), Some(i != 3), "{}", ids[i]);
    }
    // An unknown host reads as none, in a batch or alone.
    assert_eq!(ctx.store().host_active("no-such-host").await.unwrap(), None);
    assert!(ctx.store().desired("no-such-host").await.unwrap().is_none());
    // Each read sees what was committed before it was asked for.
    let p = ActionParams {
        comment: "IR-15".into(),
        ..Default::default()
    };
    ctx.store()
        .act("rita", Action::Release, &Targets::Hosts(vec![ids[0].clone()]), &p)
        .await
        .unwrap();
    let (d, _) = ctx.store().desired(&ids[0]).await.unwrap().unwrap();
    assert!(!d.quarantined && d.revision == 3, "{d:?}");
}
