//! Wake-ups across replicas (design §2 "Replicas act as one"): with PostgreSQL, every
//! change of a host's desired state (and every revocation) sends `NOTIFY cordon_wake,
//! '<host id>'` inside the transaction that makes the change, so PostgreSQL delivers it to
//! every replica exactly when (and only if) the change commits. Each replica's listener
//! passes the host ids to its own [`Hub`], which wakes the agents long-polling there.
//!
//! If the listener's connection is lost, notifications sent meanwhile are gone; the
//! listener therefore wakes *every* waiter after reconnecting, and each re-reads its
//! host's state from the database (nothing is missed, some wake for nothing).
//!
//! SQLite has a single server process, where the in-process hub alone suffices.

//! The SQL (`NOTIFY`, `LISTEN`) lives behind the store ([`crate::store::wake`]); this
//! module is the listening task.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::hub::Hub;
use crate::store::wake::{Wake, WakeListener};
use crate::store::StoreError;

pub use crate::store::wake::CHANNEL;

/// Connects to PostgreSQL at `url`, subscribes to [`CHANNEL`] and returns once the
/// subscription is in place; the returned task then wakes `hub`'s waiters for every
/// notification until it is aborted.
///
/// # Errors
/// The first connection or `LISTEN` failing; later failures are retried every second.
pub async fn start(url: &str, hub: Arc<Hub>) -> Result<JoinHandle<()>, StoreError> {
    let mut listener = WakeListener::connect(url).await?;
    let url = url.to_string();
    Ok(tokio::spawn(async move {
        loop {
            match listener.next().await {
                Ok(Wake::Hosts(ids)) => hub.notify_all(&ids),
                Ok(Wake::Everyone) => {
                    // Reconnected (the listener re-subscribes): what was sent meanwhile is lost.
                    tracing::warn!("wake-up listener reconnected: waking every waiter");
                    hub.notify_everyone();
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error::chain(&e), "wake-up listener failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    match WakeListener::connect(&url).await {
                        Ok(l) => {
                            listener = l;
                            hub.notify_everyone();
                        }
                        Err(e) => {
                            tracing::warn!(error = %crate::error::chain(&e), "wake-up listener cannot connect or subscribe")
                        }
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// The database uses in `text` (Rust source) outside the store: any `sqlx` path in
    /// code (comments and the `#[cfg(test)]` part skipped: tests build `sqlx::Error`s), and
    /// a database pool or listener type anywhere.
    fn sql_uses(file: &str, text: &str) -> Vec<String> {
        // Built so that this test's own text does not match.
        let anywhere = [
            ["Pg", "Listener"].concat(),
            ["Pg", "Pool"].concat(),
            ["Any", "Pool"].concat(),
            ["Sqlite", "Pool"].concat(),
        ];
        let sqlx = ["sq", "lx"].concat();
        let code = text.split("#[cfg(test)]").next().unwrap_or(text);
        let mut found = Vec::new();
        for (n, line) in code.lines().enumerate() {
            let l = line.trim_start();
            if l.starts_with("//") {
                continue;
            }
            let word = l.match_indices(sqlx.as_str()).any(|(i, _)| {
                let before = l[..i].chars().next_back();
                let after = l[i + sqlx.len()..].chars().next();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
                    && !after.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
            });
            if word || anywhere.iter().any(|b| l.contains(b.as_str())) {
                found.push(format!("{file}:{}: {}", n + 1, line.trim()));
            }
        }
        found
    }

    /// Issue 13: all SQL lives behind the store. The fault kind: a module of the server
    /// (wake.rs did) running its own queries or holding a database connection, outside
    /// the store's transactions and writer lock. Any use of `sqlx` outside `src/store/` is
    /// refused (the check once banned only the text `sqlx::query`, which
    /// `use sqlx::{query, Executor}` or `sqlx::raw_sql` passed).
    #[test]
    fn sql_lives_only_behind_the_store() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in [
            "src",
            "../cordon-server/src",
            "../cordon-automation/src",
            "../cordon-console/src",
        ] {
            rust_files(&root.join(dir), &mut files);
        }
        let store = root.join("src").join("store");
        let mut seen = 0;
        let mut found = Vec::new();
        for f in files.iter().filter(|f| !f.starts_with(&store)) {
            // The console's store-error tests build database errors on purpose (a
            // test-only file).
            if f.ends_with("error_status_tests.rs") {
                continue;
            }
            let text = std::fs::read_to_string(f).unwrap();
            seen += 1;
            found.extend(sql_uses(&f.display().to_string(), &text));
        }
        assert!(seen > 20, "only {seen} files checked");
        assert!(found.is_empty(), "move these behind the store: {found:#?}");
        // The check itself finds what it is for, and not a word that merely contains it.
        let sq = ["sq", "lx"].concat();
        for bad in [
            format!("use {sq}::{{query, Executor}};"),
            format!("{sq}::raw_sql(\"DELETE FROM hosts\")"),
            ["let p: Any", "Pool = todo!();"].concat(),
        ] {
            assert_eq!(sql_uses("x.rs", &bad).len(), 1, "{bad}");
        }
        assert!(sql_uses(
            "x.rs",
            &format!("// {sq}::query\n//! on {sq}\nlet realworld_axum_{sq} = 1;")
        )
        .is_empty());
    }
}
