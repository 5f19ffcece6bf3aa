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
pub use audit::{AuditFilter, NewAudit};
pub use enroll::NewHost;
pub use hosts::HostFilter;
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
                vec![console_sessions_migration()],
            ]
            .concat(),
        ),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
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
