//! The HTTP surface under `/v1`.

pub(crate) mod agent;
pub(crate) mod audit;
pub(crate) mod enroll;
mod extract;
pub(crate) mod hosts;
pub(crate) mod tokens;
pub(crate) mod validate;

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{delete, get, post};
use axum::Router;

pub use extract::ApiJson;

use crate::hub::Hub;
use crate::pki::Ca;
use crate::store::Store;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub hub: Arc<Hub>,
    /// Signs client certificates at enrollment; `None` disables enrollment.
    pub ca: Option<Arc<Ca>>,
    /// Longest time a long-poll for desired state is held open.
    pub max_wait: Duration,
}

impl AppState {
    pub fn new(store: Arc<Store>, ca: Option<Arc<Ca>>) -> Self {
        AppState {
            store,
            hub: Arc::new(Hub::new()),
            ca,
            max_wait: Duration::from_secs(25),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/health", get(|| async { "ok" }))
        .route("/v1/openapi.json", get(crate::openapi::serve))
        .route("/v1/ca", get(enroll::ca_pem))
        .route("/v1/enroll", post(enroll::enroll))
        .route("/v1/agent/desired", get(agent::desired))
        .route("/v1/agent/status", post(agent::status))
        .route("/v1/hosts", get(hosts::list))
        .route("/v1/hosts/{id}", get(hosts::get_host))
        .route("/v1/hosts/{id}/quarantine", post(hosts::quarantine_one))
        .route("/v1/hosts/{id}/release", post(hosts::release_one))
        .route("/v1/hosts/{id}/labels", post(hosts::labels))
        .route("/v1/hosts/{id}/revoke", post(hosts::revoke))
        .route("/v1/quarantine", post(hosts::quarantine_many))
        .route("/v1/release", post(hosts::release_many))
        .route("/v1/audit", get(audit::list))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/tokens/{id}", delete(tokens::revoke))
        .route("/v1/enrollment-tokens", post(tokens::create_enroll))
        .merge(crate::console::routes())
        .merge(crate::automation::routes())
        .fallback(|| async { crate::ApiError::not_found("no such endpoint") })
        .layer(axum::extract::DefaultBodyLimit::max(crate::limits::MAX_BODY_BYTES))
        .with_state(state)
}
