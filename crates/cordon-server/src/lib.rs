//! The Cordon management server (design §5), composed: the REST API ([`api`]) with the
//! automation (`cordon-automation`) and console (`cordon-console`) front ends on one axum
//! router, over the core (`cordon-server-core`: store, service layer, auth, PKI, TLS).
//!
//! [`router`] is the whole HTTP surface as an axum `Router`; it is served over rustls by
//! [`tls::serve`] and can be driven in-process by tests with `tower::ServiceExt::oneshot`.
//! [`run`] holds the operations behind `cordon server init|token create|run`.
//!
//! The core's modules are re-exported here, so `cordon_server::store::…`,
//! `cordon_server::pki::…` and friends name the same items as `cordon_server_core::…`.

// Issue 13: every public fallible function says how it fails.
#![warn(clippy::missing_errors_doc)]

pub mod api;
pub mod openapi;
pub mod run;

pub use cordon_automation as automation;
pub use cordon_console as console;
pub use cordon_server_core::{
    audit_csv, auth, error, expiry, extract, hub, limits, pki, secret, service, store, timefmt, tls, wake,
};
pub use cordon_server_core::{ApiError, AppState, Store, StoreError, SYSTEM_ACTOR};

pub use api::router;
