//! The SQL of wake-ups across replicas ([`crate::wake`]): PostgreSQL's `NOTIFY` inside a
//! change's transaction, and the `LISTEN`ing connection. Nothing here on SQLite, where
//! the in-process hub alone suffices.

use sqlx::postgres::PgListener;

use super::{StoreError, Tx};

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

/// What the listening connection received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// A change of this host (its id, the notification's payload) committed.
    Host(String),
    /// The connection was lost and re-established: notifications sent meanwhile are
    /// gone, so every waiter must re-read its host.
    Everyone,
}

/// A connection subscribed to [`CHANNEL`] on PostgreSQL.
pub struct WakeListener(PgListener);

impl WakeListener {
    /// Connects to PostgreSQL at `url` and subscribes to [`CHANNEL`]; returns once the
    /// subscription is in place.
    ///
    /// # Errors
    /// [`StoreError::Db`] when the connection or the `LISTEN` fails.
    pub async fn connect(url: &str) -> Result<WakeListener, StoreError> {
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        Ok(WakeListener(listener))
    }

    /// The next notification, or [`Wake::Everyone`] after the connection was re-made
    /// (the listener re-subscribes by itself).
    ///
    /// # Errors
    /// [`StoreError::Db`] when the connection failed and could not be re-made.
    pub async fn next(&mut self) -> Result<Wake, StoreError> {
        Ok(match self.0.try_recv().await? {
            Some(n) => Wake::Host(n.payload().to_string()),
            None => Wake::Everyone,
        })
    }
}
