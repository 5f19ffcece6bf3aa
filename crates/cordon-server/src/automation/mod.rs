//! Event-driven automation (design §6, issue 7): event intake with Wazuh and
//! Velociraptor adapters, Halo-style rules, guardrails (per-host cooldown, fleet-wide cap
//! with bulk approval, protected labels, kill switch), and notifications through a
//! database outbox.
//!
//! Everything here builds on the store's single quarantine path
//! ([`crate::store::apply_tx`]): an automatic quarantine is the same desired-state change
//! and audit record as an analyst's, with actor `rule:<name>` and the triggering event
//! named in the audit detail (`event=<id>; rule=<name>`).

pub mod adapters;
pub mod api;
pub mod db;
pub mod engine;
/// The automation API's wire types, shared with the CLI (issue 13).
pub use cordon_proto::automation as model;
pub mod notify;
pub mod qualify;
pub mod schema;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{delete, get, post};
use axum::Router;
use tokio::task::JoinHandle;
use utoipa::OpenApi;

use crate::store::Store;
use crate::timefmt::now_ms;
use crate::AppState;

/// The automation routes, merged into [`crate::api::router`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/events", post(api::post_event).get(api::list_events))
        .route("/v1/events/wazuh", post(api::post_wazuh))
        .route("/v1/events/velociraptor", post(api::post_velociraptor))
        .route("/v1/events/{id}", get(api::get_event))
        .route("/v1/rules", get(api::list_rules).post(api::post_rule))
        .route(
            "/v1/rules/{name}",
            get(api::get_rule).put(api::put_rule).delete(api::delete_rule),
        )
        .route("/v1/automation/settings", get(api::get_settings).put(api::put_settings))
        .route("/v1/approvals", get(api::list_approvals))
        .route("/v1/approvals/approve", post(api::approve))
        .route("/v1/approvals/deny", post(api::deny))
        .route(
            "/v1/notifications/targets",
            get(api::list_targets).post(api::post_target),
        )
        .route("/v1/notifications/targets/{id}", delete(api::delete_target))
        .route("/v1/notifications/deliveries", get(api::list_deliveries))
}

/// The automation part of the OpenAPI document (merged into `/v1/openapi.json`).
#[derive(OpenApi)]
#[openapi(
    paths(
        api::post_event, api::post_wazuh, api::post_velociraptor, api::list_events, api::get_event,
        api::list_rules, api::get_rule, api::post_rule, api::put_rule, api::delete_rule,
        api::get_settings, api::put_settings, api::list_approvals, api::approve, api::deny,
        api::list_targets, api::post_target, api::delete_target, api::list_deliveries
    ),
    components(schemas(
        model::Severity, model::EventIn, model::EventRecord, model::RuleOutcome, model::EventList, model::RuleSpec,
        model::RuleRecord, model::RuleList, model::Settings, model::SettingsPatch, model::Approval, model::ApprovalList,
        model::DecisionRequest, model::DecisionResult, model::DecisionResponse, model::TargetSpec, model::Target,
        model::TargetList, model::Delivery, model::DeliveryList, model::IntakeResponse
    )),
    tags((name = "automation", description = "Events, rules, guardrails, approvals, notifications"))
)]
pub struct AutomationDoc;

/// Background work: outbox fill and delivery, retention.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub tick: Duration,
    pub prune_every: Duration,
    pub delivery: notify::DeliveryConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            tick: Duration::from_secs(1),
            prune_every: Duration::from_secs(60),
            delivery: Default::default(),
        }
    }
}

/// One pass: queue notifications for new audit records, deliver what is due, and (when
/// `prune`) apply event and outbox retention.
pub async fn work_once(
    store: &Store,
    client: &reqwest::Client,
    cfg: &WorkerConfig,
    prune: bool,
) -> Result<(), crate::StoreError> {
    notify::enqueue(store).await?;
    notify::deliver_due(store, client, &cfg.delivery).await?;
    if prune {
        let s = db::settings(store.pool()).await?;
        let before = now_ms() - s.event_retention_days.saturating_mul(86_400_000);
        let n = db::prune_events(store.pool(), before, s.event_retention_max).await?;
        if n > 0 {
            tracing::info!(deleted = n, "event retention");
        }
        notify::prune_outbox(store, now_ms()).await?;
    }
    Ok(())
}

/// Starts the automation worker; the server's `run::start` keeps the handle.
pub fn spawn(store: Arc<Store>, cfg: WorkerConfig) -> Vec<JoinHandle<()>> {
    let task = tokio::spawn(async move {
        let client = match notify::http_client(&cfg.delivery) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "notifications disabled: cannot build HTTP client");
                return;
            }
        };
        let mut tick = tokio::time::interval(cfg.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_prune = tokio::time::Instant::now();
        loop {
            tick.tick().await;
            let prune = last_prune.elapsed() >= cfg.prune_every;
            if prune {
                last_prune = tokio::time::Instant::now();
            }
            if let Err(e) = work_once(&store, &client, &cfg, prune).await {
                tracing::warn!(error = %e, "automation worker pass failed; retrying");
            }
        }
    });
    vec![task]
}
