//! The schema's migrations, one SQL file per dialect and version under `migrations/`.
//! Versions are numbered after the issue that added them (`0007` automation, `0015`
//! scale-out, `0016` console sessions, `0017` audit chain, `0019` audit identities, `0020` what agents report: degraded, enforcing,
//! heartbeat, claims), except `0018` (structured audit
//! fields, issue 13), which had to come after every version a deployed database may
//! already carry; a new migration is one more entry in [`MIGRATIONS`] with a version
//! larger than all before it, and its files (one file serves both when its SQL is plain
//! enough).

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

/// (version, description, SQLite SQL, PostgreSQL SQL).
type Entry = (i64, &'static str, &'static str, &'static str);

const MIGRATIONS: &[Entry] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        7,
        "automation",
        include_str!("../../migrations/sqlite/0007_automation.sql"),
        include_str!("../../migrations/postgres/0007_automation.sql"),
    ),
    (
        15,
        "scale_out",
        include_str!("../../migrations/sqlite/0015_scale_out.sql"),
        include_str!("../../migrations/postgres/0015_scale_out.sql"),
    ),
    (
        16,
        "console sessions",
        include_str!("../../migrations/0016_console_sessions.sql"),
        include_str!("../../migrations/0016_console_sessions.sql"),
    ),
    (
        17,
        "audit chain",
        include_str!("../../migrations/0017_audit_chain.sql"),
        include_str!("../../migrations/0017_audit_chain.sql"),
    ),
    (
        18,
        "audit fields",
        include_str!("../../migrations/sqlite/0018_audit_fields.sql"),
        include_str!("../../migrations/postgres/0018_audit_fields.sql"),
    ),
    (
        19,
        "audit identities",
        include_str!("../../migrations/0019_audit_identities.sql"),
        include_str!("../../migrations/0019_audit_identities.sql"),
    ),
    (
        20,
        "host truth",
        include_str!("../../migrations/0020_host_truth.sql"),
        include_str!("../../migrations/0020_host_truth.sql"),
    ),
    (
        21,
        "audit writers",
        include_str!("../../migrations/0021_audit_writers.sql"),
        include_str!("../../migrations/0021_audit_writers.sql"),
    ),
    (
        22,
        "hostname key",
        include_str!("../../migrations/0022_hostname_key.sql"),
        include_str!("../../migrations/0022_hostname_key.sql"),
    ),
    (
        23,
        "audit writer proofs",
        include_str!("../../migrations/0023_audit_writer_proofs.sql"),
        include_str!("../../migrations/0023_audit_writer_proofs.sql"),
    ),
    (
        24,
        "desired actor token",
        include_str!("../../migrations/0024_desired_actor_token.sql"),
        include_str!("../../migrations/0024_desired_actor_token.sql"),
    ),
    (
        25,
        "audit action index",
        include_str!("../../migrations/0025_audit_action_index.sql"),
        include_str!("../../migrations/0025_audit_action_index.sql"),
    ),
    (
        26,
        "approval decider token",
        include_str!("../../migrations/0026_approval_decider_token.sql"),
        include_str!("../../migrations/0026_approval_decider_token.sql"),
    ),
    (
        27,
        "outbox marks",
        include_str!("../../migrations/0027_outbox_marks.sql"),
        include_str!("../../migrations/0027_outbox_marks.sql"),
    ),
    (
        28,
        "report revision",
        include_str!("../../migrations/0028_report_revision.sql"),
        include_str!("../../migrations/0028_report_revision.sql"),
    ),
    (
        29,
        "deployment ca",
        include_str!("../../migrations/0029_deployment_ca.sql"),
        include_str!("../../migrations/0029_deployment_ca.sql"),
    ),
    (
        30,
        "unknown agents",
        include_str!("../../migrations/0030_unknown_agents.sql"),
        include_str!("../../migrations/0030_unknown_agents.sql"),
    ),
    (
        31,
        "token identity",
        include_str!("../../migrations/0031_token_identity.sql"),
        include_str!("../../migrations/0031_token_identity.sql"),
    ),
    (
        32,
        "console session marks",
        include_str!("../../migrations/0032_console_session_marks.sql"),
        include_str!("../../migrations/0032_console_session_marks.sql"),
    ),
];

/// Every migration for the database at `url` (`sqlite:` or PostgreSQL).
pub fn migrator(url: &str) -> Migrator {
    let sqlite = url.starts_with("sqlite:");
    Migrator {
        migrations: Cow::Owned(
            MIGRATIONS
                .iter()
                .map(|&(version, desc, lite, pg)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(desc),
                        MigrationType::Simple,
                        Cow::Borrowed(if sqlite { lite } else { pg }),
                        false,
                    )
                })
                .collect(),
        ),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_versions_are_unique_and_increasing() {
        for pair in MIGRATIONS.windows(2) {
            assert!(
                pair[0].0 < pair[1].0,
                "migration {} ({}) must come before {} ({})",
                pair[0].0,
                pair[0].1,
                pair[1].0,
                pair[1].1
            );
        }
    }

    /// A database migrated by an earlier release (every version but the newest) takes
    /// the rest: the fault kind is a new migration numbered below one already applied,
    /// or one that fails on a database written by the previous schema.
    #[tokio::test]
    async fn database_of_the_previous_release_migrates() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let mut old = migrator(&url);
        let newest = old.migrations.to_mut().pop().unwrap();
        old.run(&pool).await.unwrap();
        sqlx::query("INSERT INTO audit (at, actor, action, result) VALUES (1, 'alice', 'quarantine', 'ok')")
            .execute(&pool)
            .await
            .unwrap();
        migrator(&url).run(&pool).await.unwrap();
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(applied, MIGRATIONS.iter().map(|m| m.0).collect::<Vec<_>>());
        assert!(applied.contains(&newest.version));
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit WHERE event_id IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 1);
    }

    /// Tokens that shared a name (trimmed, any case) or used a reserved prefix before
    /// migration 19 are kept and flagged, and the unique index holds for new ones.
    #[tokio::test]
    async fn existing_duplicate_token_names_are_kept_and_flagged() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let mut old = migrator(&url);
        old.migrations.to_mut().retain(|m| m.version < 19);
        old.run(&pool).await.unwrap();
        for (name, hash) in [
            ("ops", "h1"),
            ("OPS ", "h2"),
            ("alice", "h3"),
            ("system", "h4"),
            (" ops", "h5"),
        ] {
            sqlx::query(
                "INSERT INTO api_tokens (name, role, hash, created_at, revoked) VALUES ($1, 'admin', $2, 1, 0)",
            )
            .bind(name)
            .bind(hash)
            .execute(&pool)
            .await
            .unwrap();
        }
        migrator(&url).run(&pool).await.unwrap();
        let rows: Vec<(String, Option<String>)> = sqlx::query_as("SELECT name, name_flag FROM api_tokens ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        let flags: Vec<Option<&str>> = rows.iter().map(|r| r.1.as_deref()).collect();
        assert_eq!(
            flags,
            vec![
                None,
                Some("duplicate name"),
                None,
                Some("reserved name"),
                Some("duplicate name")
            ],
            "{rows:?}"
        );
        let dup = sqlx::query("INSERT INTO api_tokens (name, name_key, role, hash, created_at, revoked) VALUES ('Alice', 'alice', 'admin', 'h6', 1, 0)")
            .execute(&pool)
            .await;
        assert!(dup.is_err(), "the unique index refuses a second key");
    }
}
