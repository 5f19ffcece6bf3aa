//! Background release of quarantines whose `expires_at` passed, audited as `system`.

use std::time::Duration;

use crate::hub::Hub;
use crate::store::Store;
use crate::timefmt::now_ms;
use crate::SYSTEM_ACTOR;

/// One sweep: releases every expired quarantine and wakes the agents concerned.
pub async fn sweep(store: &Store, hub: &Hub) -> Result<Vec<String>, crate::StoreError> {
    let released = store.release_expired(SYSTEM_ACTOR, now_ms()).await?;
    for id in &released {
        tracing::info!(host = %id, "quarantine expired: released");
    }
    hub.notify_all(&released);
    Ok(released)
}

/// Runs [`crate::service::hosts::release_expired`] every `every` until the task is
/// dropped.
pub async fn run(st: crate::AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = crate::service::hosts::release_expired(&st).await {
            tracing::warn!(error = %crate::error::chain(&e), "expiry sweep failed; retrying");
        }
    }
}
