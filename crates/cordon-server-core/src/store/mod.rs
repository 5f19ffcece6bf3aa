//! Storage on sqlx's `Any` driver: the same queries run on SQLite (the embedded default)
//! and PostgreSQL. Every state change is written in one transaction together with its
//! audit record.

mod actions;
mod agent_reads;
mod audit;
pub mod automation;
mod enroll;
mod host_views;
mod hosts;
pub mod outbox;
mod reports;
mod schema;
mod sessions;
mod tokens;
mod unknown;
pub mod wake;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Transaction};
use thiserror::Error;
use tokio::sync::Mutex;

/// For the automation module: the one quarantine path and the audit append.
pub use actions::Targets;
pub use actions::{plan_change, Action, ActionParams, RetryParams};
pub use agent_reads::AgentHost;
pub use audit::{
    mark_valid, Actor, AuditFilter, AuditKeys, AuditOrder, AutoCause, Marker, NewAudit, Signer, StartFacts,
    CHECKPOINT_SOURCE, ISSUED_SOURCE, MARK_PREFIX, RETENTION_REFUSED_ACTION, SEEN_SOURCE, WRITER_LIVE_MS,
    WRITER_PROOF_OCCASION, WRITER_SKEW_MS,
};
pub use enroll::NewHost;
pub use host_views::{
    ChangeFingerprint, HostAttention, HostQuery, HostSort, PageAt, SortCursor, SortedPage, LONG_PENDING_MS,
};
pub use hosts::{offline, HostCursor, HostFilter, MAX_PAGE};
pub use sessions::{SessionInfo, SessionLimits};
pub use tokens::Caller;
pub use unknown::{unknown_agent_detail, UnknownSighting, UNKNOWN_AGENT_ACTION};

/// Failures of the store. The first three carry a message meant for the caller; the others
/// are internal and keep their cause (`#[source]`) for the log, never for the client.
#[derive(Debug, Error)]
pub enum StoreError {
    /// No such host, token, rule, ... (404).
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be carried out as asked (400).
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with what is stored (409).
    #[error("{0}")]
    Conflict(String),
    /// A unique constraint refused a write: the record exists (409). The database's own
    /// message stays in the log.
    #[error("{what} already exists")]
    Duplicate {
        /// What exists (`a target named "soc"`).
        what: String,
        #[source]
        /// The database's refusal.
        source: sqlx::Error,
    },
    /// The database cannot be written because its storage is full: SQLite's
    /// `SQLITE_FULL` (the disk or filesystem of the database file, its `-wal` journal
    /// included), PostgreSQL's `53100 disk_full`. The transaction was rolled back, so
    /// nothing was changed (503; trial29 H2).
    #[error("the database cannot be written: its disk is full")]
    StorageFull(#[source] sqlx::Error),
    #[error("database query failed")]
    /// Any other database failure (500).
    Db(#[source] sqlx::Error),
    /// A file the store reads or writes failed: the database file or its directory, an
    /// audit archive (500; the path and the OS error stay in the log).
    #[error("cannot {what}")]
    Io {
        /// What was done, with the path (`create /var/lib/cordon/cordon.db`).
        what: String,
        #[source]
        /// The operating system's error.
        source: std::io::Error,
    },
    #[error("database migration failed")]
    /// Applying the schema migrations failed at start.
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value this version cannot read (a bad enum text, unreadable JSON).
    #[error("stored {what} is unreadable")]
    Corrupt {
        /// What was read (`host state`, `rule spec`, …).
        what: String,
        #[source]
        /// The JSON error, when the value was JSON.
        source: Option<serde_json::Error>,
    },
    #[error("cannot encode {what} for storage")]
    /// A value could not be turned into JSON for storage.
    Encode {
        /// What was being stored.
        what: &'static str,
        #[source]
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The database belongs to a deployment with another CA than the server's (trial28
    /// MED-2): its audit log is signed by CA `database`, the server holds CA `here`
    /// (SHA-256 fingerprints). Nothing was written.
    #[error(
        "this database belongs to another deployment: its audit log is signed by CA {database}, but this \
         data directory holds CA {here}; a server of this deployment needs its CA (copy ca.pem, ca.key, \
         server.pem and server.key from the data directory of the server that was initialised with this \
         database); nothing was written"
    )]
    OtherCa {
        /// The CA fingerprint the database names (or its last checkpoint's signer).
        database: String,
        /// The CA fingerprint of this server's data directory.
        here: String,
    },
    /// The CA key could not sign an audit checkpoint (500; the PKI error stays in the log).
    #[error("cannot sign the audit checkpoint")]
    Sign(#[source] crate::pki::PkiError),
    #[error("no randomness for a new token")]
    /// The operating system gave no randomness for a new token.
    Random(#[source] getrandom::Error),
    /// The group commit of status reports failed; the shared cause is the source.
    #[error("status report not recorded")]
    Report(#[source] std::sync::Arc<StoreError>),
    #[error("the status report writer stopped")]
    /// The background task that group-commits agents' reports is gone (server shutting down).
    ReportWriterStopped,
    /// The batched read of agents' hosts failed; the shared cause is the source.
    #[error("reading the agent's host failed")]
    HostRead(#[source] std::sync::Arc<StoreError>),
    #[error("the agents' host reader stopped")]
    /// The background task that batches agents' host reads is gone (server shutting down).
    HostReaderStopped,
    /// The database works against the audit log behind the server's statements (a
    /// trigger, rule or policy Cordon did not create; a record the server appended gone
    /// or no longer the head inside its own transaction): the change is not made, since
    /// its record could not be kept (503; trial18 HIGH-2). The text names what was found.
    #[error("the audit log cannot be written: {0}")]
    AuditTampered(String),
}

impl From<sqlx::Error> for StoreError {
    /// Unique-constraint violations become [`StoreError::Duplicate`] (409), a full
    /// database [`StoreError::StorageFull`] (503); everything else is an internal
    /// [`StoreError::Db`].
    fn from(e: sqlx::Error) -> Self {
        if e.as_database_error().is_some_and(|d| d.is_unique_violation()) {
            StoreError::Duplicate {
                what: "a record with these values".into(),
                source: e,
            }
        } else if database_full(&e) {
            StoreError::StorageFull(e)
        } else {
            StoreError::Db(e)
        }
    }
}

/// SQLite's primary result code for a full database or disk (`SQLITE_FULL`; sqlx gives
/// the extended code, which for this one is the primary code).
const SQLITE_FULL: &str = "13";
/// PostgreSQL's SQLSTATE `disk_full` (class 53, insufficient resources).
const PG_DISK_FULL: &str = "53100";

/// Whether the database refused a statement because its storage is full
/// ([`SQLITE_FULL`], [`PG_DISK_FULL`]).
fn database_full(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == SQLITE_FULL || code == PG_DISK_FULL)
}

impl StoreError {
    /// Whether this failure is a full disk: the database's ([`StoreError::StorageFull`]),
    /// a file the store writes that the OS refused for want of space (`ENOSPC`), or a
    /// status batch that failed for either. Such a failure changed nothing and passes
    /// once space is freed (503, not 500).
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::StorageFull(_) => true,
            StoreError::Io { source, .. } => source.kind() == std::io::ErrorKind::StorageFull,
            StoreError::Report(inner) | StoreError::HostRead(inner) => inner.is_storage_full(),
            _ => false,
        }
    }
}

/// Names the record a unique constraint protects, for a 409 the caller understands
/// (realworld-axum-sqlx's `on_constraint`): `insert(...).await.on_duplicate(|| format!("a
/// target named {name:?}"))`.
pub(crate) trait OnDuplicate<T> {
    fn on_duplicate(self, what: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T, E: Into<StoreError>> OnDuplicate<T> for Result<T, E> {
    fn on_duplicate(self, what: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|e| match e.into() {
            StoreError::Duplicate { source, .. } => StoreError::Duplicate { what: what(), source },
            other => other,
        })
    }
}

/// A transaction on the store's pool (SQLite or PostgreSQL through sqlx `Any`), carrying
/// the deployment's record mark ([`audit::Marker`], set once the store has the CA key)
/// so every audit record appended in it is marked as written by a server of the
/// deployment. Dereferences to the connection, like sqlx's `Transaction`.
pub struct Tx {
    inner: Transaction<'static, Any>,
    mark: Marks,
    /// The last record appended in this transaction (id and hash): once committed, this
    /// process's own newest record ([`TxShared::own`]).
    pub(crate) appended: Option<cordon_proto::audit_chain::Checkpoint>,
}

/// What the store shares with its transactions: the record mark and what this process
/// knows of the log from outside the database.
#[derive(Default)]
pub(crate) struct TxShared {
    /// The deployment's record mark (empty until [`Store::set_audit_keys`]).
    pub(crate) mark: std::sync::OnceLock<audit::Marker>,
    /// The newest chain head this process saw in the database (id and hash; see
    /// [`Store::note_audit_head`]): a later verification requires it still in the log, so
    /// a tail cut while the server runs is seen even when the head row was rewound too.
    pub(crate) seen: std::sync::Mutex<Option<cordon_proto::audit_chain::Checkpoint>>,
    /// The newest record this process appended itself (id and hash), known from its
    /// commit: required in the log like `seen`, without waiting for the next read of the
    /// head (trial35 LOW-4: a record cut within two seconds left no trace).
    pub(crate) own: std::sync::Mutex<Option<cordon_proto::audit_chain::Checkpoint>>,
    /// The newest head this server's previous run saw (its data directory's anchor, see
    /// [`Store::note_seen_outside`]): verification requires it, appends do not (the start
    /// checkpoint signs it).
    pub(crate) outside: std::sync::Mutex<Option<cordon_proto::audit_chain::Checkpoint>>,
}

/// The store's [`TxShared`], shared with its transactions.
pub(crate) type Marks = std::sync::Arc<TxShared>;

impl Tx {
    /// Commits the transaction; records appended in it become this process's own newest.
    ///
    /// # Errors
    /// The database's.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.inner.commit().await?;
        if let Some(cp) = self.appended {
            if let Ok(mut g) = self.mark.own.lock() {
                if g.as_ref().is_none_or(|o| o.last_id < cp.last_id) {
                    *g = Some(cp);
                }
            }
        }
        Ok(())
    }

    /// Rolls the transaction back.
    ///
    /// # Errors
    /// The database's.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }

    /// The mark audit records appended in this transaction get (`None`: the legacy
    /// per-process mark, for a store without the CA key).
    pub(crate) fn marker(&self) -> Option<&audit::Marker> {
        self.mark.mark.get()
    }
}

impl std::ops::Deref for Tx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.inner
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.inner
    }
}

/// The database and a writer lock: SQLite allows one writer at a time, and taking the
/// lock in-process avoids `database is locked` errors from read-then-write upgrades.
pub struct Store {
    pool: AnyPool,
    write: std::sync::Arc<Mutex<()>>,
    /// Group commit of agent status reports (started on first use).
    reports: std::sync::OnceLock<reports::ReportQueue>,
    /// Batched reads of the hosts behind agents' requests (started on first use).
    host_reads: std::sync::OnceLock<agent_reads::ReadQueue>,
    /// The last audit checkpoint record this process wrote (id and hash): every later
    /// verification compares the log with it, so a tail cut while the server runs is seen.
    issued: std::sync::Mutex<Option<cordon_proto::audit_chain::Checkpoint>>,
    /// This process's id among the audit log's writers (`audit_writers`, a random UUID
    /// per process; see [`Store::writer_id`]).
    writer: String,
    /// The CA key's signer and checker for writer rows and foreign checkpoints (see
    /// [`Store::set_audit_keys`]); unset without a CA key.
    keys: std::sync::OnceLock<audit::AuditKeys>,
    /// The deployment's mark for the audit records this process appends (see
    /// [`audit::Marker`], set with the keys), and the newest heads this process saw and
    /// wrote ([`TxShared`]).
    mark: Marks,
    /// Records found in the database without a valid mark (see [`Store::note_audit_head`]):
    /// kept until a checkpoint signs them as `foreign`, and in the anchor file.
    foreign: std::sync::Mutex<std::collections::BTreeSet<i64>>,
    /// The id of the first record carrying a valid mark: records before it were written
    /// before marks existed (covered by the checkpoints signed then).
    marked_from: std::sync::Mutex<Option<i64>>,
    /// The last record whose mark this process checked (id and hash) and the records up
    /// to it found without a valid mark (see `Store::foreign_in`): only what follows is
    /// read again while that record is unchanged.
    mark_scan: std::sync::Mutex<Option<(cordon_proto::audit_chain::Checkpoint, std::collections::BTreeSet<i64>)>>,
    /// Other writers' validly signed rows as this process watched them: writer id to
    /// (first `seen_at` seen, whether it moved since). Only a writer seen refreshing its
    /// row counts as live, so a crashed server's last row is not taken for one.
    observed: std::sync::Mutex<std::collections::HashMap<String, (i64, bool)>>,
    /// What this process's last verification of the audit chain found wrong (see
    /// [`Store::chain_alert`]).
    alert: std::sync::Mutex<Option<cordon_proto::ChainAlert>>,
    /// Why retention last refused to run (see `Store::note_retention_refused`): the
    /// same reason is recorded once.
    retention_refused: std::sync::Mutex<Option<String>>,
}

/// Accepts `sqlite://path`, `sqlite:path`, `postgres://...`; SQLite files are created.
pub fn normalize_url(url: &str) -> Result<String, StoreError> {
    if url.starts_with("sqlite:") {
        if url.contains(":memory:") || url.contains("mode=") {
            Ok(url.to_string())
        } else if url.contains('?') {
            Ok(format!("{url}&mode=rwc"))
        } else {
            Ok(format!("{url}?mode=rwc"))
        }
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(url.to_string())
    } else {
        Err(StoreError::Invalid(format!(
            "database URL {url:?} is neither sqlite://FILE nor postgres://..."
        )))
    }
}

/// Creates an empty database named `name` on the PostgreSQL server of `base`
/// (`postgres://user@host:port/db`) and returns its URL (benchmarks and tests).
///
/// # Errors
/// `Invalid` for a name other than `[a-z0-9_]`, or the server refusing.
pub async fn create_postgres_database(base: &str, name: &str) -> Result<String, StoreError> {
    use sqlx::Connection;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(StoreError::Invalid(format!("database name {name:?} must be [a-z0-9_]")));
    }
    let (prefix, _) = base
        .rsplit_once('/')
        .ok_or_else(|| StoreError::Invalid(format!("{base:?} is not postgres://…/DB")))?;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(base).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    Ok(format!("{prefix}/{name}"))
}

/// Drops database `name` (made by [`create_postgres_database`]) on the server of `base`.
///
/// # Errors
/// As [`create_postgres_database`].
pub async fn drop_postgres_database(base: &str, name: &str) -> Result<(), StoreError> {
    use sqlx::Connection;
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(StoreError::Invalid(format!("database name {name:?} must be [a-z0-9_]")));
    }
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(base).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// The file of a `sqlite:` URL (`None` for an in-memory database or another scheme).
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    (!path.is_empty() && !path.contains(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// The server's SQLite database holds analysts' comments, hosts and token hashes: it is
/// created 0600, and so are its `-wal` and `-shm` files (SQLite gives them the mode of
/// the database file; existing ones are tightened). A missing directory is created
/// 0700; an existing one is left as it is (it may be shared, e.g. `/tmp`), with a
/// warning when others can enter it.
///
/// # Errors
/// [`StoreError::Io`] naming the path when the directory or file cannot be created or
/// chmodded.
#[cfg(unix)]
fn secure_sqlite_file(path: &std::path::Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let fail = |what: &str, p: &std::path::Path, source: std::io::Error| StoreError::Io {
        what: format!("{what} {}", p.display()),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| fail("create", dir, e))?;
        } else if std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
            tracing::warn!(dir = %dir.display(), "the database's directory is open to other users; make it 0700");
        }
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| fail("create", path, e))?;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_os_string();
        name.push(suffix);
        let p = std::path::PathBuf::from(name);
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).map_err(|e| fail("chmod", &p, e))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn secure_sqlite_file(_path: &std::path::Path) -> Result<(), StoreError> {
    Ok(())
}

impl Store {
    /// Connects and runs pending migrations. A SQLite file is created 0600 (its
    /// directory 0700 when missing) before SQLite opens it.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = normalize_url(url)?;
        if let Some(file) = sqlite_file(&url) {
            secure_sqlite_file(&file)?;
        }
        let max = if url.starts_with("sqlite:") { 8 } else { 16 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .before_acquire(|conn, _| Box::pin(async move { Ok(outside_transaction(conn)) }))
            .connect(&url)
            .await?;
        if url.starts_with("sqlite:") {
            // Foreign keys are per connection in SQLite; the schema does not rely on
            // them for correctness (deletes are explicit), so no pool hook is needed.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        schema::migrator(&url).run(&pool).await?;
        let store = Store {
            pool,
            write: std::sync::Arc::new(Mutex::new(())),
            reports: std::sync::OnceLock::new(),
            host_reads: std::sync::OnceLock::new(),
            issued: std::sync::Mutex::new(None),
            writer: uuid::Uuid::new_v4().simple().to_string(),
            keys: std::sync::OnceLock::new(),
            mark: Default::default(),
            foreign: Default::default(),
            marked_from: std::sync::Mutex::new(None),
            mark_scan: std::sync::Mutex::new(None),
            observed: std::sync::Mutex::new(std::collections::HashMap::new()),
            alert: std::sync::Mutex::new(None),
            retention_refused: std::sync::Mutex::new(None),
        };
        store.backfill_host_addresses().await?;
        store.backfill_hostname_keys().await?;
        store.renormalise_token_names().await?;
        Ok(store)
    }

    /// The pool, for test fixtures that need a state no operation produces. Production
    /// code goes through the store's methods: the front-end crates do not even depend on
    /// sqlx.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a write transaction while holding the writer lock ([`begin_write`]).
    pub(crate) async fn write_tx(&self) -> Result<(tokio::sync::MutexGuard<'_, ()>, Tx), StoreError> {
        let guard = self.write.lock().await;
        let tx = begin_write(&self.pool, &self.mark).await?;
        Ok((guard, tx))
    }

    /// Begins a transaction (not taking the writer lock) whose appended records get this
    /// store's mark.
    pub(crate) async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(Tx {
            inner: self.pool.begin().await?,
            mark: self.mark.clone(),
            appended: None,
        })
    }
}

/// sqlx's pool hook before an idle connection is handed out (`before_acquire`): `false`
/// — the pool closes the connection and opens another — when the connection still
/// counts itself inside a transaction. A dropped transaction is rolled back before its
/// connection goes back to the pool, but when that ROLLBACK fails the count stays, and
/// every later `BEGIN` on the connection was refused ("attempted to call begin_with at
/// non-zero transaction depth") until the server restarted (trial29 H2). SQLite does
/// this after `SQLITE_FULL`: it rolls the whole transaction back itself, so the
/// ROLLBACK that follows finds none. PostgreSQL's sqlx connection lowers its count when
/// it queues the ROLLBACK; the same check covers it should a failure leave one counted.
fn outside_transaction(conn: &sqlx::AnyConnection) -> bool {
    use sqlx::Connection;
    let inside = conn.is_in_transaction();
    if inside {
        tracing::warn!(
            "a pooled database connection was left inside a failed transaction (its rollback failed, e.g. after a \
             full disk): closed, a new one is opened"
        );
    }
    !inside
}

/// Begins a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`: it takes the
/// database's write lock at once, waiting for it (sqlx's `busy_timeout`, 5 s) while
/// another connection writes. A plain (deferred) `BEGIN` reads under a snapshot and
/// upgrades to a writer at its first write; when another writer committed since — a
/// second pool on the same file (a restarted server in the same process, a second
/// server or CLI process on one database) whose writes this store's writer lock does
/// not see — SQLite refuses the upgrade at once with "database is locked"
/// (`SQLITE_BUSY_SNAPSHOT`; waiting cannot help, so the busy timeout is not used).
/// PostgreSQL: a plain `BEGIN` (row locks wait).
pub(crate) async fn begin_write(pool: &AnyPool, mark: &Marks) -> Result<Tx, StoreError> {
    let inner = if pool.connect_options().database_url.scheme() == "sqlite" {
        pool.begin_with("BEGIN IMMEDIATE").await?
    } else {
        pool.begin().await?
    };
    Ok(Tx {
        inner,
        mark: mark.clone(),
        appended: None,
    })
}

pub(crate) fn get_str(row: &AnyRow, col: &str) -> Result<String, StoreError> {
    use sqlx::Row;
    Ok(row.try_get::<String, _>(col)?)
}

pub(crate) fn get_opt_str(row: &AnyRow, col: &str) -> Result<Option<String>, StoreError> {
    use sqlx::Row;
    Ok(row.try_get::<Option<String>, _>(col)?)
}

pub(crate) fn get_i64(row: &AnyRow, col: &str) -> Result<i64, StoreError> {
    use sqlx::Row;
    Ok(row.try_get::<i64, _>(col)?)
}

pub(crate) fn get_opt_i64(row: &AnyRow, col: &str) -> Result<Option<i64>, StoreError> {
    use sqlx::Row;
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

pub(crate) fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// A JSON array of `items` (strings, or values written as strings such as addresses).
pub(crate) fn to_json_list<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::time::Duration;

    use cordon_proto::automation::TargetSpec;

    use super::*;

    async fn temp_store(dir: &tempfile::TempDir) -> Store {
        Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap()
    }

    /// trial16 LOW: the audit Action filter's list read the whole log (`SELECT DISTINCT`
    /// without an index). It is a loose index scan now: SQLite's plan searches the
    /// `audit_action` index and never scans the audit table; and it lists every action.
    #[tokio::test]
    async fn audit_action_list_reads_an_index_not_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = temp_store(&dir).await;
        let plan = sqlx::query(&format!("EXPLAIN QUERY PLAN {}", audit::AUDIT_ACTIONS_SQL))
            .fetch_all(store.pool())
            .await
            .unwrap();
        let plan: Vec<String> = plan.iter().map(|r| get_str(r, "detail").unwrap()).collect();
        assert!(plan.iter().any(|d| d.contains("INDEX audit_action")), "{plan:?}");
        assert!(
            !plan.iter().any(|d| d.starts_with("SCAN audit") && !d.contains("INDEX")),
            "{plan:?}"
        );
        for name in ["a", "b"] {
            store
                .create_api_token("test", name, cordon_proto::Role::Viewer)
                .await
                .unwrap();
        }
        let got = store.audit_actions().await.unwrap();
        let mut want: Vec<String> = sqlx::query("SELECT DISTINCT action FROM audit ORDER BY action")
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| get_str(r, "action").unwrap())
            .collect();
        want.sort();
        assert_eq!(got, want);
        assert!(got.contains(&"token_create".to_string()), "{got:?}");
    }

    type Write<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

    fn mode(p: &std::path::Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    /// The database holds comments, hosts and token hashes: it and its `-wal`/`-shm`
    /// files are 0600, in a 0700 directory when the server creates it (the fault kind: a
    /// file created with the process umask, 0644 by default). An existing database with
    /// wider modes is tightened.
    #[tokio::test]
    async fn server_database_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let db = data.join("cordon.db");
        let store = Store::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        // Something written through the WAL, so -wal and -shm exist.
        store.touch("nobody").await.unwrap();
        assert_eq!(mode(&data), 0o700, "data directory");
        for suffix in ["", "-wal", "-shm"] {
            let p = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
            assert!(p.exists(), "{} missing", p.display());
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        drop(store);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _store = Store::connect(&format!("sqlite:{}", db.display())).await.unwrap();
        assert_eq!(mode(&db), 0o600, "an existing database is tightened");
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(
            sqlite_file("sqlite:///x/y.db?mode=rwc"),
            Some(std::path::PathBuf::from("/x/y.db"))
        );
    }

    /// The fault kind: a file error of the store (the database's directory cannot be
    /// made) reported as the caller's bad input (400) instead of an internal failure
    /// (500, logged with its cause, a generic body).
    #[tokio::test]
    async fn file_errors_of_the_store_are_internal_with_their_cause() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "").unwrap();
        let db = file.join("sub").join("cordon.db");
        let Err(e) = Store::connect(&format!("sqlite://{}", db.display())).await else {
            panic!("a database under a plain file opened");
        };
        assert!(matches!(e, StoreError::Io { .. }), "{e:?}");
        let chain = crate::error::chain(&e);
        assert!(
            chain.starts_with(&format!("cannot create {}: ", file.join("sub").display())),
            "{chain}"
        );
        let api = crate::ApiError::from(e);
        assert_eq!(api.status, axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(api.detail, crate::error::INTERNAL_DETAIL);
    }

    /// Every write of the automation tables and the outbox takes the writer lock (one used
    /// to delete events straight through the pool).
    #[tokio::test]
    async fn automation_and_outbox_writes_wait_for_the_writer_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = temp_store(&dir).await;
        let spec = TargetSpec {
            name: "soc".into(),
            kind: cordon_proto::automation::TargetKind::Webhook,
            url: "https://hooks.example/x".into(),
            events: vec!["quarantined".into()],
            enabled: true,
        };
        let writes: Vec<(&str, Write<'_>)> = vec![
            (
                "prune_events",
                Box::pin(async { store.prune_events(i64::MAX, 1).await.map(|_| ()) }),
            ),
            (
                "prune_outbox",
                Box::pin(async { store.prune_outbox(i64::MAX, 1).await.map(|_| ()) }),
            ),
            (
                "add_notify_target",
                Box::pin(async { store.add_notify_target("admin", &spec).await.map(|_| ()) }),
            ),
            (
                "update_automation_settings",
                Box::pin(async { store.update_automation_settings("t", "{}", Ok, 1).await.map(|_| ()) }),
            ),
            (
                "enqueue_notifications",
                Box::pin(async {
                    store
                        .enqueue_notifications(
                            10,
                            |_, _| None::<(cordon_proto::automation::NotifyKind, ())>,
                            |_, _| String::new(),
                        )
                        .await
                        .map(|_| ())
                }),
            ),
        ];
        for (name, mut write) in writes {
            let guard = store.write.lock().await;
            let early = tokio::time::timeout(Duration::from_millis(150), &mut write).await;
            assert!(early.is_err(), "{name} wrote without the writer lock");
            drop(guard);
            write.await.unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    /// "database is locked" (issue 16: the browser test restarts the server, whose new
    /// store writes the same file as the old one): a write transaction that read first
    /// and then writes, while another pool on the same SQLite file committed in between,
    /// was refused at once (a deferred `BEGIN` cannot upgrade a stale snapshot). Write
    /// transactions take the write lock when they begin, so the other pool waits instead.
    #[tokio::test]
    async fn write_transactions_of_two_pools_on_one_sqlite_file_wait_instead_of_locked() {
        let dir = tempfile::tempdir().unwrap();
        let a = temp_store(&dir).await;
        let b = std::sync::Arc::new(temp_store(&dir).await);
        sqlx::query("CREATE TABLE scratch (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
            .execute(&a.pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO scratch (id, n) VALUES (1, 0), (2, 0)")
            .execute(&a.pool)
            .await
            .unwrap();
        for round in 0..3 {
            // A reads first (as every read-modify-write of the store does)…
            let (guard, mut tx) = a.write_tx().await.unwrap();
            let row = sqlx::query("SELECT n FROM scratch WHERE id = 1")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            assert_eq!(get_i64(&row, "n").unwrap(), round);
            // …meanwhile the other pool writes (its own writer lock is another mutex)…
            let other = tokio::spawn({
                let b = b.clone();
                async move {
                    let (_g, mut tx) = b.write_tx().await?;
                    sqlx::query("UPDATE scratch SET n = n + 1 WHERE id = 2")
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok::<(), StoreError>(())
                }
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
            // …then A writes: refused with "database is locked" before.
            sqlx::query("UPDATE scratch SET n = n + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await
                .unwrap_or_else(|e| panic!("round {round}: the reading writer was refused: {e}"));
            tx.commit().await.unwrap();
            drop(guard);
            other
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: the other pool's write failed: {e}"));
        }
        let row = sqlx::query("SELECT n FROM scratch WHERE id = 2")
            .fetch_one(&b.pool)
            .await
            .unwrap();
        assert_eq!(get_i64(&row, "n").unwrap(), 3);
    }

    #[tokio::test]
    async fn unique_violations_are_duplicates_named_by_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let store = temp_store(&dir).await;
        let spec = TargetSpec {
            name: "soc".into(),
            kind: cordon_proto::automation::TargetKind::Webhook,
            url: "https://hooks.example/x".into(),
            events: vec![],
            enabled: true,
        };
        store.add_notify_target("admin", &spec).await.unwrap();
        match store.add_notify_target("admin", &spec).await {
            Err(e @ StoreError::Duplicate { .. }) => {
                assert_eq!(e.to_string(), "a target named \"soc\" already exists");
                assert!(
                    std::error::Error::source(&e).is_some(),
                    "the database error is kept as the source"
                );
            }
            other => panic!("expected a duplicate, got {other:?}"),
        }
    }

    /// Sets `PRAGMA max_page_count` on every connection the pool can hold (the pragma is
    /// per connection): `Some(n)` makes SQLite answer `SQLITE_FULL` to a write needing
    /// more than `n` pages, as on a full disk; `None` lifts the limit.
    async fn limit_pages(store: &Store, pages: Option<i64>) {
        let max = store.pool.options().get_max_connections();
        let mut held = Vec::new();
        for _ in 0..max {
            let mut conn = store.pool.acquire().await.unwrap();
            sqlx::query(&format!("PRAGMA max_page_count = {}", pages.unwrap_or(1_073_741_823)))
                .execute(&mut *conn)
                .await
                .unwrap();
            held.push(conn);
        }
        drop(held);
        // Let the pool take them back (returned by spawned tasks).
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// trial29 H2: after a few seconds of a full disk, every write on some pooled
    /// connections failed until the server restarted ("attempted to call begin_with at
    /// non-zero transaction depth"): SQLite rolls the whole transaction back itself on
    /// `SQLITE_FULL`, sqlx's ROLLBACK then fails and the connection went back to the pool
    /// still counted inside a transaction. Such a connection is closed now, not reused:
    /// once space is back, every write succeeds, on every pooled connection. While full,
    /// writes fail as `StorageFull` (503), not as an internal error.
    #[tokio::test]
    async fn writes_succeed_on_every_pooled_connection_once_a_full_database_has_space_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = temp_store(&dir).await;
        let row = sqlx::query("PRAGMA page_count").fetch_one(&store.pool).await.unwrap();
        let pages: i64 = sqlx::Row::try_get(&row, 0).unwrap();
        limit_pages(&store, Some(pages)).await;
        let filler = "x".repeat(300);
        let mut full = 0;
        for i in 0..5000 {
            match store
                .create_api_token("test", &format!("filler {i} {filler}"), cordon_proto::Role::Viewer)
                .await
            {
                Ok(_) => {}
                Err(e) => {
                    assert!(
                        matches!(e, StoreError::StorageFull(_)) && e.is_storage_full(),
                        "write {i}: {}",
                        crate::error::chain(&e)
                    );
                    let api = crate::error::ApiError::from(e);
                    assert_eq!(
                        (api.status.as_u16(), api.error, api.detail.as_str()),
                        (503, "storage_full", crate::error::STORAGE_FULL_DETAIL)
                    );
                    full += 1;
                    if full == 24 {
                        break;
                    }
                    // A connection closed by the pool is replaced by one without the
                    // limit: limit them all again.
                    limit_pages(&store, Some(pages)).await;
                }
            }
        }
        assert_eq!(full, 24, "the page limit never filled the database");
        // Space is back. Sequential writes take the pool's idle connections in turn, so
        // 40 of them go through each of the 8 several times.
        limit_pages(&store, None).await;
        for i in 0..40 {
            store
                .create_api_token("test", &format!("after {i}"), cordon_proto::Role::Viewer)
                .await
                .unwrap_or_else(|e| panic!("write {i} after space came back: {}", crate::error::chain(&e)));
        }
    }
}
