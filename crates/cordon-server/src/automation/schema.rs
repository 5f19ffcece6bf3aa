//! The automation tables' migrations, appended to the store's migrator.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType};

/// Version of the automation migration (numbered after the issue, later than `0001`).
pub const VERSION: i64 = 7;

pub fn migrations(sqlite: bool) -> Vec<Migration> {
    let sql: &'static str = if sqlite {
        include_str!("../../migrations/sqlite/0007_automation.sql")
    } else {
        include_str!("../../migrations/postgres/0007_automation.sql")
    };
    vec![Migration::new(
        VERSION,
        Cow::Borrowed("automation"),
        MigrationType::Simple,
        Cow::Borrowed(sql),
        false,
    )]
}
