//! Storage on sqlx's `Any` driver: the same queries run on SQLite (the embedded default)
//! and PostgreSQL. Every state change is written in one transaction together with its
//! audit record.

mod actions;
mod audit;
mod enroll;
mod hosts;
mod reports;
mod sessions;
mod tokens;

use std::borrow::Cow;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Transaction};
use thiserror::Error;
use tokio::sync::Mutex;

/// For the automation module: the one quarantine path and the audit append.
pub(crate) use actions::apply_tx;
pub use actions::Targets;
pub use actions::{Action, ActionParams};
pub(crate) use audit::append as append_audit;
pub use audit::{AuditFilter, AuditOrder, NewAudit, CHECKPOINT_SOURCE};
pub use enroll::NewHost;
pub use hosts::{HostCursor, HostFilter, MAX_PAGE};
pub use sessions::{SessionInfo, SessionLimits};

/// Re-exported for the auth module.
pub mod tokens_caller {
    pub use super::tokens::Caller;
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Other(String),
}

pub type Tx = Transaction<'static, Any>;

/// The database and a writer lock: SQLite allows one writer at a time, and taking the
/// lock in-process avoids `database is locked` errors from read-then-write upgrades.
pub struct Store {
    pool: AnyPool,
    write: std::sync::Arc<Mutex<()>>,
    /// Group commit of agent status reports (started on first use).
    reports: std::sync::OnceLock<reports::ReportQueue>,
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

fn migrator(url: &str) -> Migrator {
    let (sql, desc): (&'static str, &'static str) = if url.starts_with("sqlite:") {
        (include_str!("../../migrations/sqlite/0001_init.sql"), "init")
    } else {
        (include_str!("../../migrations/postgres/0001_init.sql"), "init")
    };
    Migrator {
        migrations: Cow::Owned(
            [
                vec![Migration::new(
                    1,
                    Cow::Borrowed(desc),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )],
                crate::automation::schema::migrations(url.starts_with("sqlite:")),
                vec![scale_out_migration(url.starts_with("sqlite:"))],
                vec![console_sessions_migration()],
                vec![audit_chain_migration()],
            ]
            .concat(),
        ),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

/// Version of the scale-out migration (numbered after issue 15).
const SCALE_OUT_VERSION: i64 = 15;

fn scale_out_migration(sqlite: bool) -> Migration {
    let sql: &'static str = if sqlite {
        include_str!("../../migrations/sqlite/0015_scale_out.sql")
    } else {
        include_str!("../../migrations/postgres/0015_scale_out.sql")
    };
    Migration::new(
        SCALE_OUT_VERSION,
        Cow::Borrowed("scale_out"),
        MigrationType::Simple,
        Cow::Borrowed(sql),
        false,
    )
}

/// Version of the console sessions migration (numbered after issue 16).
const CONSOLE_SESSIONS_VERSION: i64 = 16;

/// The console sessions table: plain SQL that SQLite and PostgreSQL both accept, so one
/// file serves both.
fn console_sessions_migration() -> Migration {
    Migration::new(
        CONSOLE_SESSIONS_VERSION,
        Cow::Borrowed("console sessions"),
        MigrationType::Simple,
        Cow::Borrowed(include_str!("../../migrations/0016_console_sessions.sql")),
        false,
    )
}

/// Version of the audit chain migration (numbered after issue 17).
const AUDIT_CHAIN_VERSION: i64 = 17;

/// Hash chain columns and the chain head row: plain SQL for SQLite and PostgreSQL alike.
fn audit_chain_migration() -> Migration {
    Migration::new(
        AUDIT_CHAIN_VERSION,
        Cow::Borrowed("audit chain"),
        MigrationType::Simple,
        Cow::Borrowed(include_str!("../../migrations/0017_audit_chain.sql")),
        false,
    )
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

impl Store {
    /// Connects and runs pending migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = normalize_url(url)?;
        let max = if url.starts_with("sqlite:") { 8 } else { 16 };
        let pool = AnyPoolOptions::new().max_connections(max).connect(&url).await?;
        if url.starts_with("sqlite:") {
            // Foreign keys are per connection in SQLite; the schema does not rely on
            // them for correctness (deletes are explicit), so no pool hook is needed.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        migrator(&url).run(&pool).await?;
        Ok(Store {
            pool,
            write: std::sync::Arc::new(Mutex::new(())),
            reports: std::sync::OnceLock::new(),
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a write transaction while holding the writer lock.
    pub(crate) async fn write_tx(&self) -> Result<(tokio::sync::MutexGuard<'_, ()>, Tx), StoreError> {
        let guard = self.write.lock().await;
        let tx = self.pool.begin().await?;
        Ok((guard, tx))
    }
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

pub(crate) fn to_json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}
