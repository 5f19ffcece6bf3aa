//! The schema's migrations, one SQL file per dialect and version under `migrations/`.
//! Versions are numbered after the issue that added them (`0007` automation, `0013`
//! structured audit fields, `0016` console sessions); a new migration is one more entry in
//! [`MIGRATIONS`] and its files (one file serves both when its SQL is plain enough).

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
        13,
        "audit fields",
        include_str!("../../migrations/sqlite/0013_audit_fields.sql"),
        include_str!("../../migrations/postgres/0013_audit_fields.sql"),
    ),
    (
        16,
        "console sessions",
        include_str!("../../migrations/0016_console_sessions.sql"),
        include_str!("../../migrations/0016_console_sessions.sql"),
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
