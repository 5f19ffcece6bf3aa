//! Wakes long-polling agents when their desired state changes (or their host is revoked),
//! so an analyst's action reaches an online agent at once rather than at the next poll.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

/// One watch channel per host that has (or had) a waiting agent. The value is a change
/// counter; waiters only care that it moved.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl Hub {
    /// An empty hub (no waiters).
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribe before reading the database, so a change committed in between is seen.
    pub fn subscribe(&self, host_id: &str) -> watch::Receiver<u64> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(host_id.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Call after the transaction that changed `host_id` committed.
    pub fn notify(&self, host_id: &str) {
        let map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(host_id) {
            tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// [`Hub::notify`] for each host, taking the lock once (bulk actions).
    pub fn notify_all<'a>(&self, host_ids: impl IntoIterator<Item = &'a String>) {
        let map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        for id in host_ids {
            if let Some(tx) = map.get(id.as_str()) {
                tx.send_modify(|v| *v = v.wrapping_add(1));
            }
        }
    }

    /// Wakes every waiter (after a lost cross-replica notification stream).
    pub fn notify_everyone(&self) {
        let map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        for tx in map.values() {
            tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }
}
