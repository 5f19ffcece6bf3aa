//! Stop-edit-restart scenarios of the audit log: an initialised server data directory and
//! database ([`Runs`]), and a real server run over them. Shared by audit_chain.rs and
//! audit_writers.rs (`#[path = "common/runs.rs"] mod runs;`); each uses a part of it.
#![allow(dead_code)]

use cordon_proto::audit_chain::signature::CaCert;
use cordon_proto::audit_chain::ChainReport;
use cordon_server::Store;

/// A database URL for a server run: SQLite in `dir`, or a fresh PostgreSQL database with
/// `CORDON_TEST_POSTGRES`.
pub async fn run_db(dir: &std::path::Path) -> String {
    match std::env::var("CORDON_TEST_POSTGRES") {
        Ok(base) if !base.is_empty() => {
            let name = format!("cordon_test_{}", uuid::Uuid::new_v4().simple());
            cordon_server::store::create_postgres_database(&base, &name)
                .await
                .unwrap()
        }
        _ => format!("sqlite://{}", dir.join("cordon.db").display()),
    }
}

/// The configuration of a server run over `data` and `db` on a loopback port.
pub fn run_cfg(data: &std::path::Path, db: &str) -> cordon_server::run::RunConfig {
    cordon_server::run::RunConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        db: db.to_string(),
        data_dir: data.to_path_buf(),
        expiry_every: std::time::Duration::from_secs(60),
        max_wait: std::time::Duration::from_secs(5),
    }
}

/// A server's data directory and database, initialised (`cordon server init`), for the
/// stop-edit-restart scenarios: one setup instead of a copy per test.
pub struct Runs {
    /// The temporary directory holding everything (deleted on drop).
    pub dir: tempfile::TempDir,
    /// The server's data directory (`DIR/server`).
    pub data: std::path::PathBuf,
    /// The database URL.
    pub db: String,
}

impl Runs {
    pub async fn new() -> Runs {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("server");
        let db = run_db(dir.path()).await;
        cordon_server::run::init(&data, &db, &["localhost".into()], &["127.0.0.1".parse().unwrap()])
            .await
            .unwrap();
        Runs { dir, data, db }
    }

    pub async fn start(&self) -> cordon_server::run::Running {
        cordon_server::run::start(&run_cfg(&self.data, &self.db)).await.unwrap()
    }

    /// A second data directory with the same CA and server certificate (a replica's),
    /// without the first one's anchor, lock and database files.
    pub fn replica_dir(&self) -> std::path::PathBuf {
        let data_b = self.dir.path().join("server-b");
        std::fs::create_dir_all(&data_b).unwrap();
        for f in std::fs::read_dir(&self.data).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().to_string_lossy().into_owned();
            if f.file_type().unwrap().is_file() && !name.starts_with("audit-") && !name.starts_with("cordon.db") {
                std::fs::copy(f.path(), data_b.join(&name)).unwrap();
            }
        }
        data_b
    }

    pub fn ca(&self) -> cordon_proto::audit_chain::SignatureCheck {
        CaCert::from_pem(&std::fs::read(self.data.join("ca.pem")).unwrap())
            .unwrap()
            .checker()
    }

    /// The database's log verified by `server` with the CA certificate.
    pub async fn verify(&self, server: &cordon_server::run::Running) -> ChainReport {
        server.state.store.audit_verify(vec![], Some(self.ca())).await.unwrap()
    }

    /// The store, opened anew (as someone with database access while no server runs).
    pub async fn store(&self) -> Store {
        Store::connect(&self.db).await.unwrap()
    }

    /// Waits (bounded) until the running server has kept the database's head in its
    /// anchor file (its head watcher does every two seconds).
    pub async fn wait_anchor_head(&self, store: &Store) {
        let (head, _) = store.audit_head().await.unwrap();
        let anchor = self.data.join("audit-anchor.json");
        let start = std::time::Instant::now();
        loop {
            let kept: Option<cordon_server_core::service::audit::AnchorFile> = std::fs::read_to_string(&anchor)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            if kept.and_then(|k| k.seen) == head {
                return;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "the head was not kept"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Appends a record the way someone with database access would (the database allocates
/// its id), hashes recomputed so the chain stays self-consistent and the head row moved
/// to it. Returns its id.
pub async fn append_forged(store: &Store, actor: &str, comment: &str) -> i64 {
    let (head, _) = store.audit_head().await.unwrap();
    let head = head.unwrap();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit (at, actor, action, comment, result, prev_hash, hash) \
         VALUES ($1, $2, 'release', $3, 'ok', $4, '') RETURNING id",
    )
    .bind(cordon_server_core::timefmt::now_ms())
    .bind(actor.to_string())
    .bind(comment.to_string())
    .bind(head.hash.clone())
    .fetch_one(store.pool())
    .await
    .unwrap();
    rechain_and_set_head(store, id).await;
    id
}

/// Hashes record `id` again as it reads back (over its own `prev_hash`, as the chain
/// does) and moves the head row to it: what someone with database access does after
/// adding or rewriting the newest record so the chain stays self-consistent. Returns the
/// new hash.
pub async fn rechain_and_set_head(store: &Store, id: i64) -> String {
    let stored = store
        .audit(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .find(|x| x.id == id)
        .unwrap();
    let h = cordon_proto::audit_chain::chain_hash(stored.prev_hash.as_deref().unwrap(), &stored);
    sqlx::query("UPDATE audit SET hash = $1 WHERE id = $2")
        .bind(h.clone())
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE audit_chain SET head_id = $1, head_hash = $2 WHERE id = 1")
        .bind(id)
        .bind(h.clone())
        .execute(store.pool())
        .await
        .unwrap();
    h
}

/// Gives the log a record `server` wrote itself (an API token "alice"), the usual first
/// step before a scenario edits the database.
pub async fn write_a_record(server: &cordon_server::run::Running) {
    server
        .state
        .store
        .create_api_token("alice", "ops-1", cordon_proto::Role::Viewer)
        .await
        .unwrap();
}

/// Gives record `id` the mark a server of the deployment with writer id `writer` would
/// have given it (the key derived from the CA key in `data`): a record written by another
/// server process of the deployment (a replica), whether or not it still runs.
pub async fn mark_as_written_by(store: &Store, data: &std::path::Path, id: i64, writer: &str) {
    let ca = cordon_server_core::pki::Ca::load(data).unwrap();
    let marker = cordon_server_core::store::Marker::new(ca.audit_mark_key().unwrap(), writer);
    let hash: String = sqlx::query_scalar("SELECT hash FROM audit WHERE id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE audit SET writer_mac = $1 WHERE id = $2")
        .bind(marker.mark(&hash))
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
}

/// The full JSON-lines export `server` serves (ending with its signed trailer), or the
/// error that ended it.
pub async fn export_jsonl(server: &cordon_server::run::Running) -> Result<String, String> {
    let caller = cordon_server_core::store::Caller {
        token_id: 1,
        name: "admin".into(),
        role: cordon_proto::Role::Admin,
    };
    let mut e = cordon_server_core::service::audit::export(
        &server.state,
        &caller,
        Default::default(),
        None,
        Default::default(),
        None,
        false,
    )
    .await
    .map_err(|e| format!("{e:?}"))?;
    let mut out = String::new();
    while let Some(chunk) = e.next_chunk().await.map_err(|e| format!("{e:?}"))? {
        out.push_str(&chunk);
    }
    Ok(out)
}
