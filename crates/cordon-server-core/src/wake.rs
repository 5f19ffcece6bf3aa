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

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;

use crate::hub::Hub;
use crate::store::{StoreError, Tx};

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "cordon_wake";

/// Queues a wake-up of `host_id`'s waiters on every replica, delivered when `tx`
/// commits. Does nothing on SQLite.
pub(crate) async fn notify_tx(tx: &mut Tx, host_id: &str) -> Result<(), StoreError> {
    if tx.backend_name() != "PostgreSQL" {
        return Ok(());
    }
    // NOTIFY takes no bind parameters: the payload is a quoted literal (standard
    // conforming strings, so doubling quotes is the whole escaping).
    let sql = format!("NOTIFY {CHANNEL}, '{}'", host_id.replace('\'', "''"));
    sqlx::query(&sql).execute(&mut **tx).await?;
    Ok(())
}

/// Connects to PostgreSQL at `url`, subscribes to [`CHANNEL`] and returns once the
/// subscription is in place; the returned task then wakes `hub`'s waiters for every
/// notification until it is aborted.
///
/// # Errors
/// The first connection or `LISTEN` failing; later failures are retried every second.
pub async fn start(url: &str, hub: Arc<Hub>) -> Result<JoinHandle<()>, StoreError> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    let url = url.to_string();
    Ok(tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => hub.notify(n.payload()),
                Ok(None) => {
                    // Reconnected (PgListener re-subscribes): what was sent meanwhile is lost.
                    tracing::warn!("wake-up listener reconnected: waking every waiter");
                    hub.notify_everyone();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "wake-up listener failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    match PgListener::connect(&url).await {
                        Ok(mut l) => {
                            if let Err(e) = l.listen(CHANNEL).await {
                                tracing::warn!(error = %e, "wake-up listener cannot subscribe");
                                continue;
                            }
                            listener = l;
                            hub.notify_everyone();
                        }
                        Err(e) => tracing::warn!(error = %e, "wake-up listener cannot connect"),
                    }
                }
            }
        }
    }))
}
