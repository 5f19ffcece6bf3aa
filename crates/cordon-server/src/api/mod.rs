//! The REST API under `/v1`: thin handlers that parse the request, call the service layer
//! (`cordon_server_core::service`) and shape the answer. [`router`] merges in the
//! automation and console front ends.

pub mod agent;
pub mod audit;
pub mod enroll;
pub mod hosts;
pub mod tokens;

use axum::routing::{delete, get, post};
use axum::Router;

pub use cordon_server_core::{ApiJson, ApiQuery, AppState};

/// The whole HTTP surface of the server.
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
        .route("/v1/hosts/{id}/retry", post(hosts::retry_one))
        .route("/v1/hosts/{id}/labels", post(hosts::labels))
        .route("/v1/hosts/{id}/revoke", post(hosts::revoke))
        .route("/v1/unknown-agents", get(hosts::unknown_agents))
        .route("/v1/quarantine", post(hosts::quarantine_many))
        .route("/v1/release", post(hosts::release_many))
        .route("/v1/audit", get(audit::list))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/tokens/{id}", delete(tokens::revoke))
        .route("/v1/enrollment-tokens", post(tokens::create_enroll))
        .merge(cordon_console::routes())
        .merge(cordon_automation::routes())
        .fallback(|| async { cordon_server_core::ApiError::not_found("no such endpoint") })
        .layer(axum::extract::DefaultBodyLimit::max(
            cordon_server_core::limits::MAX_BODY_BYTES,
        ))
        .with_state(state)
}
