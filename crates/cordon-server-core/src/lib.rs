//! The core of the Cordon management server (design §5): storage ([`store`], sqlx on
//! SQLite or PostgreSQL, the only place SQL, transactions and the writer lock live), the
//! service layer ([`service`], plain async functions over the store and the caller that
//! hold the logic every front end shares), authentication ([`auth`]), the PKI ([`pki`])
//! and TLS serving ([`tls`]), size and rate limits ([`limits`]) and the wake-up of agents
//! across replicas ([`wake`]).
//!
//! The front ends build on this crate and never on each other's handlers: the REST API
//! and the composition of the whole server live in `cordon-server`, automation in
//! `cordon-automation`, the web console in `cordon-console`.

pub mod audit_csv;
pub mod auth;
pub mod error;
pub mod expiry;
pub mod extract;
pub mod hub;
#[cfg(any(test, feature = "test-util"))]
pub mod layering;
pub mod limits;
pub mod pki;
pub mod secret;
pub mod service;
pub mod store;
pub mod timefmt;
pub mod tls;
pub mod wake;

use std::sync::Arc;
use std::time::Duration;

pub use error::ApiError;
pub use extract::{ApiJson, ApiQuery};
pub use store::{Store, StoreError};

use crate::hub::Hub;
use crate::pki::Ca;

/// Actor name used for changes the server makes by itself (expiry).
pub const SYSTEM_ACTOR: &str = "system";

/// Shared state of every handler and of the service layer: the store, the hub that wakes
/// agents' long-polls, the CA.
#[derive(Clone)]
pub struct AppState {
    /// The database (all SQL goes through it).
    pub store: Arc<Store>,
    /// Wakes this replica's long-polling agents when their desired state changes.
    pub hub: Arc<Hub>,
    /// Signs client certificates at enrollment; `None` disables enrollment.
    pub ca: Option<Arc<Ca>>,
    /// Longest time a long-poll for desired state is held open.
    pub max_wait: Duration,
    /// Where the server keeps its last audit checkpoint outside the database
    /// (`DATA/audit-anchor.json`, see [`service::audit::ANCHOR_FILE`]); `None`: nowhere.
    pub audit_anchor: Option<std::path::PathBuf>,
}

impl AppState {
    /// State over `store` with a fresh hub, `ca` for enrollment, a 25 s long-poll and no anchor file.
    /// With `ca`, the store gets its signer and checker for the audit log's writer rows
    /// and other servers' checkpoints ([`Store::set_audit_keys`]).
    pub fn new(store: Arc<Store>, ca: Option<Arc<Ca>>) -> Self {
        if let Some(ca) = &ca {
            let signer = ca.clone();
            match ca.audit_mark_key() {
                Ok(mark) => store.set_audit_keys(store::AuditKeys {
                    sign: Box::new(move |cp| signer.sign(cp)),
                    check: ca.checkpoint_checker(),
                    mark,
                }),
                Err(e) => tracing::error!(error = %e,
                    "the audit log's keys are unusable: records are not marked, writer rows not signed"),
            }
        }
        AppState {
            store,
            hub: Arc::new(Hub::new()),
            ca,
            max_wait: Duration::from_secs(25),
            audit_anchor: None,
        }
    }
}
