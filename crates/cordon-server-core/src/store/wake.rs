//! The SQL of wake-ups across replicas ([`crate::wake`]): PostgreSQL's `NOTIFY` inside a
//! change's transaction, and the `LISTEN`ing connection. Nothing here on SQLite, where
//! the in-process hub alone suffices.

use sqlx::postgres::PgListener;

use super::{StoreError, Tx};

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "cordon_wake";

/// Longest payload of one notification, in bytes (PostgreSQL's limit is 8,000).
const MAX_PAYLOAD: usize = 7_000;

/// Queues a wake-up of `host_id`'s waiters on every replica, delivered when `tx`
/// commits. Does nothing on SQLite.
pub(crate) async fn notify_tx(tx: &mut Tx, host_id: &str) -> Result<(), StoreError> {
    notify_many_tx(tx, &[host_id.to_string()]).await
}

/// [`notify_tx`] for many hosts: their ids go space-separated into as few
/// notifications as fit [`MAX_PAYLOAD`] (one statement per ~190 hosts, not one per
/// host: issue 15). Host ids never contain a space (the server makes them: UUIDs).
pub(crate) async fn notify_many_tx(tx: &mut Tx, host_ids: &[String]) -> Result<(), StoreError> {
    if tx.backend_name() != "PostgreSQL" {
        return Ok(());
    }
    for payload in payloads(host_ids) {
        // NOTIFY takes no bind parameters: the payload is a quoted literal (standard
        // conforming strings, so doubling quotes is the whole escaping).
        let sql = format!("NOTIFY {CHANNEL}, '{}'", payload.replace('\'', "''"));
        sqlx::query(&sql).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Space-separated host ids, each payload at most [`MAX_PAYLOAD`] bytes (an id longer
/// than that goes alone). Pure.
fn payloads(host_ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for id in host_ids.iter().filter(|id| !id.is_empty()) {
        if !cur.is_empty() && cur.len() + 1 + id.len() > MAX_PAYLOAD {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(id);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The host ids of one notification's payload. Pure.
fn host_ids(payload: &str) -> Vec<String> {
    payload
        .split(' ')
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect()
}

/// What the listening connection received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// A change of these hosts (their ids, the notification's space-separated
    /// payload) committed.
    Hosts(Vec<String>),
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
            Some(n) => Wake::Hosts(host_ids(n.payload())),
            None => Wake::Everyone,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15, the fault kind "one database round trip per host of a bulk action": a
    /// wake-up of thousands of hosts takes a few notifications, and every id comes out
    /// of them again, in order.
    #[test]
    fn many_wake_ups_share_notifications_and_lose_no_host() {
        let ids: Vec<String> = (0..10_000).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        let p = payloads(&ids);
        assert!(p.len() <= 60, "{} notifications for 10,000 hosts", p.len());
        assert!(p.iter().all(|x| x.len() <= MAX_PAYLOAD));
        let back: Vec<String> = p.iter().flat_map(|x| host_ids(x)).collect();
        assert_eq!(back, ids);
        assert!(payloads(&[]).is_empty());
        assert_eq!(payloads(&["a".into()]), vec!["a".to_string()]);
        assert_eq!(
            host_ids("a"),
            vec!["a".to_string()],
            "a one-host payload is the id itself"
        );
    }
}
