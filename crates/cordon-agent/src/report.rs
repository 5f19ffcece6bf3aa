//! Sends status reports in order, retrying while the server is unreachable, plus a
//! periodic heartbeat so the server sees the host again after an outage.

use std::collections::VecDeque;
use std::time::Duration;

use cordon_proto::StatusReport;
use tokio::sync::mpsc;

use crate::backoff::{Outcome, Retry};
use crate::client::ServerClient;

/// Reports kept while offline; older ones are dropped first.
const MAX_QUEUED: usize = 64;

/// Sends the reports from `rx` (and the last one again every `heartbeat`). Failures back
/// off ([`Retry`]); a refusal (401/403, revoked) waits `refused_every` and is logged once
/// (the long-poll explains it).
pub async fn run(
    client: ServerClient,
    mut rx: mpsc::UnboundedReceiver<StatusReport>,
    heartbeat: Duration,
    refused_every: Duration,
) {
    let mut queue: VecDeque<StatusReport> = VecDeque::new();
    let mut last: Option<StatusReport> = None;
    let mut retry = Retry::new(Duration::from_millis(250), Duration::from_secs(15), refused_every);
    loop {
        if queue.is_empty() {
            match tokio::time::timeout(heartbeat, rx.recv()).await {
                Ok(Some(r)) => queue.push_back(r),
                Ok(None) => return,
                Err(_) => match &last {
                    Some(r) => queue.push_back(r.clone()),
                    None => continue,
                },
            }
        }
        while let Ok(r) = rx.try_recv() {
            queue.push_back(r);
        }
        while queue.len() > MAX_QUEUED {
            queue.pop_front();
        }
        let Some(next) = queue.front().cloned() else { continue };
        match client.report(&next).await {
            Ok(()) => {
                retry.after(Outcome::Ok, std::time::Instant::now());
                queue.pop_front();
                last = Some(next);
            }
            Err(e) => {
                let outcome = Outcome::of_status(e.status);
                let (delay, announce) = retry.after(outcome, std::time::Instant::now());
                match (outcome, announce) {
                    (Outcome::Refused, Some(_)) => {
                        tracing::warn!(error = %e, retry_every = ?delay, "status reports refused by the server (revoked, deleted, or unknown to its database: the desired-state poll says what that means for this host)")
                    }
                    (Outcome::Refused, None) => tracing::debug!(error = %e, "status report still refused"),
                    _ => tracing::warn!(error = %e, retry_in = ?delay, "status report failed"),
                }
                // Keep collecting new reports while waiting.
                // Or less: the long-poll got through (the server is back).
                let sleep = tokio::time::sleep(delay);
                tokio::pin!(sleep);
                let mut check = tokio::time::interval(Duration::from_secs(1));
                check.tick().await;
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        _ = check.tick() => {
                            if retry.peer_ok_since(client.last_ok()) {
                                break;
                            }
                        }
                        r = rx.recv() => match r {
                            Some(r) => queue.push_back(r),
                            None => return,
                        },
                    }
                }
            }
        }
    }
}
