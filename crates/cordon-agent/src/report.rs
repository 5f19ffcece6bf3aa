//! Sends status reports in order, retrying while the server is unreachable, plus a
//! periodic heartbeat so the server sees the host again after an outage.

use std::collections::VecDeque;
use std::time::Duration;

use cordon_proto::StatusReport;
use tokio::sync::mpsc;

use crate::backoff::Backoff;
use crate::client::ServerClient;

/// Reports kept while offline; older ones are dropped first.
const MAX_QUEUED: usize = 64;

pub async fn run(client: ServerClient, mut rx: mpsc::UnboundedReceiver<StatusReport>, heartbeat: Duration) {
    let mut queue: VecDeque<StatusReport> = VecDeque::new();
    let mut last: Option<StatusReport> = None;
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(15));
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
                backoff.reset();
                queue.pop_front();
                last = Some(next);
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "status report failed");
                // Keep collecting new reports while waiting.
                let sleep = tokio::time::sleep(delay);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
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
