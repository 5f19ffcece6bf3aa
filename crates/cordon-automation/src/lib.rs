//! Event-driven automation (design §6, issue 7): event intake with Wazuh and
//! Velociraptor adapters, Halo-style rules, guardrails (per-host cooldown, fleet-wide cap
//! with bulk approval, protected labels, kill switch), and notifications through a
//! database outbox.
//!
//! A front end of the server, built on `cordon-server-core`: the REST handlers ([`api`])
//! and the console call [`service`]; the deciding logic is pure ([`engine`], [`qualify`],
//! [`validate`], [`adapters`]); every transaction is the store's. An automatic quarantine
//! goes through the store's single quarantine path: the same desired-state change and
//! audit record as an analyst's, with actor `rule:<name>` and the triggering event and
//! rule in the audit record's own `event_id` and `rule_name` columns (and, for people, in
//! its detail text `event=<id>; rule=<name>`).

pub mod adapters;
pub mod api;
pub mod engine;
/// The automation API's wire types, shared with the CLI (issue 13).
pub use cordon_proto::automation as model;
pub mod notify;
pub mod qualify;
pub mod service;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{delete, get, post};
use axum::Router;
use tokio::task::JoinHandle;
use utoipa::OpenApi;

use cordon_server_core::store::Store;
use cordon_server_core::timefmt::now_ms;
use cordon_server_core::AppState;

/// The automation routes, merged into the server's router.
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
/// The automation API's OpenAPI document, merged into the server's (`/v1/openapi.json`).
pub struct AutomationDoc;

/// Background work: outbox fill and delivery, retention.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Pause between two passes of filling and draining the outbox (default 1 s).
    pub tick: Duration,
    /// Pause between two retention passes over events and the outbox (default 60 s).
    pub prune_every: Duration,
    /// Retries, backoff, timeout and lease of deliveries.
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
) -> Result<(), cordon_server_core::StoreError> {
    notify::enqueue(store).await?;
    notify::deliver_due(store, client, &cfg.delivery).await?;
    if prune {
        let s = store.automation_settings().await?;
        let before = now_ms() - s.event_retention_days.saturating_mul(86_400_000);
        let n = store.prune_events(before, s.event_retention_max).await?;
        if n > 0 {
            tracing::info!(deleted = n, "event retention");
        }
        notify::prune_outbox(store, now_ms()).await?;
    }
    Ok(())
}

/// Starts the automation worker; the server's `run::start` keeps the handle.
pub fn spawn(st: &cordon_server_core::AppState, cfg: WorkerConfig) -> Vec<JoinHandle<()>> {
    let store: Arc<Store> = st.store.clone();
    let task = tokio::spawn(async move {
        let client = match notify::http_client(&cfg.delivery) {
            Ok(c) => c,
            Err(e) => {
                let error = cordon_server_core::error::chain(&e);
                tracing::error!(%error, "notifications disabled: cannot build HTTP client");
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
                tracing::warn!(error = %cordon_server_core::error::chain(&e), "automation worker pass failed; retrying");
            }
        }
    });
    vec![task]
}
