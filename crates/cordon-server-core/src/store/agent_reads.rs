//! Batched reads of the host behind an agent's request (issue 15).
//!
//! Every agent request reads its host's row: the client certificate's host must be
//! enrolled and not revoked ([`Store::host_active`], on each request), and a long-poll
//! reads the desired state it answers with ([`Store::desired`]) when it starts and each
//! time it is woken. One bulk action over 10,000 hosts wakes 10,000 long-polls at once,
//! and the agents' reports and new long-polls follow: about 40,000 single-row queries
//! queued for the pool's few connections, each paying a pool acquire and a round trip to
//! the database's thread or server.
//!
//! Here the reads that arrive while others are under way are answered together: one
//! `SELECT … WHERE id IN (…)` per batch of at most [`MAX_IDS`] hosts, at most
//! [`IN_FLIGHT`] batches at once. Nothing is cached: each caller gets the row as a
//! statement that started after its request read it — as it would have read it alone —
//! so a change committed before the request (on any replica) is seen exactly as before.
//! A lone read is a batch of one (no added wait).

use std::collections::HashMap;
use std::sync::Arc;

use cordon_proto::DesiredState;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::hosts::{desired_from_row, marks};
use super::{get_i64, get_str, StoreError};

/// What an agent's request reads of its host.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentHost {
    /// The desired state a long-poll answers with (`actor_token_name` unset, as the
    /// agent gets it).
    pub desired: DesiredState,
    /// The host was revoked.
    pub revoked: bool,
    /// The last revision the agent confirmed in force.
    pub applied_revision: i64,
}

impl AgentHost {
    /// Whether the host's client certificate is accepted: not revoked, or revoked while a
    /// release ordered before the revocation is unconfirmed — that release still reaches
    /// the agent, which may fetch it and report.
    pub fn active(&self) -> bool {
        let release_unconfirmed = !self.desired.quarantined && self.applied_revision < self.desired.revision;
        !self.revoked || release_unconfirmed
    }
}

/// Most hosts read by one statement. Batches are padded to a power of two (repeating an
/// id) so that at most 8 distinct statements are prepared per connection; kept at 128
/// because binding costs SQLite time in the square of a statement's parameters (see
/// `ROWS_PER_INSERT` in the audit module).
pub(crate) const MAX_IDS: usize = 128;

/// Batches read at once (each holds one pool connection while it runs).
const IN_FLIGHT: usize = 2;

/// One queued read and where its answer goes.
pub(crate) struct Read {
    id: String,
    done: oneshot::Sender<Result<Option<AgentHost>, Arc<StoreError>>>,
}

pub(crate) type ReadQueue = mpsc::UnboundedSender<Read>;

/// Starts the reader task on `pool`; returns its queue.
pub(crate) fn start(pool: AnyPool) -> ReadQueue {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(read_loop(pool, rx));
    tx
}

/// Queues a read of host `id` on `queue` and waits for its answer (`None`: no such host).
///
/// # Errors
/// [`StoreError::HostRead`] with the batch's cause when its statement failed;
/// [`StoreError::HostReaderStopped`] when the reader task is gone (shutting down).
pub(crate) async fn read(queue: &ReadQueue, id: &str) -> Result<Option<AgentHost>, StoreError> {
    let (done, answer) = oneshot::channel();
    queue
        .send(Read {
            id: id.to_string(),
            done,
        })
        .map_err(|_| StoreError::HostReaderStopped)?;
    answer
        .await
        .map_err(|_| StoreError::HostReaderStopped)?
        .map_err(StoreError::HostRead)
}

async fn read_loop(pool: AnyPool, mut rx: mpsc::UnboundedReceiver<Read>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // Wait for a free slot first: reads arriving meanwhile join the next batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_IDS {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut ids: Vec<String> = batch.iter().map(|r| r.id.clone()).collect();
            ids.sort_unstable();
            ids.dedup();
            match load(&pool, &ids).await {
                Ok(found) => {
                    for r in batch {
                        let _ = r.done.send(Ok(found.get(&r.id).cloned()));
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for r in batch {
                        let _ = r.done.send(Err(e.clone()));
                    }
                }
            }
            drop(slot);
        });
    }
}

/// The number of bind parameters a statement for `n` ids gets: the next power of two.
fn padded(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

/// Reads the hosts `ids` (at most [`MAX_IDS`], distinct) with one statement.
async fn load(pool: &AnyPool, ids: &[String]) -> Result<HashMap<String, AgentHost>, StoreError> {
    let n = padded(ids.len());
    let sql = format!(
        "SELECT id, revoked, applied_revision, revision, quarantined, allow_json, message, comment, actor, \
         actor_token_id, expires_at, release_previous FROM hosts WHERE id IN ({})",
        marks(1, n)
    );
    let mut q = sqlx::query(&sql);
    for i in 0..n {
        // Padding repeats the last id: the same row, matched once.
        q = q.bind(ids[i.min(ids.len().saturating_sub(1))].clone());
    }
    let mut out = HashMap::with_capacity(ids.len());
    for row in q.fetch_all(pool).await? {
        out.insert(
            get_str(&row, "id")?,
            AgentHost {
                desired: desired_from_row(&row)?,
                revoked: get_i64(&row, "revoked")? != 0,
                applied_revision: get_i64(&row, "applied_revision")?,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_padded_to_powers_of_two() {
        assert_eq!([1, 2, 3, 5, 100, 128].map(padded), [1, 2, 4, 8, 128, 128]);
    }

    /// The acceptance rule of [`AgentHost::active`] (the one `host_active` had).
    #[test]
    fn a_revoked_host_is_active_only_while_a_release_is_unconfirmed() {
        let host = |revoked, quarantined, revision, applied_revision| AgentHost {
            desired: DesiredState {
                revision,
                quarantined,
                ..Default::default()
            },
            revoked,
            applied_revision,
        };
        assert!(host(false, true, 3, 2).active());
        assert!(!host(true, true, 3, 2).active());
        assert!(!host(true, false, 3, 3).active());
        assert!(host(true, false, 3, 2).active());
    }
}
