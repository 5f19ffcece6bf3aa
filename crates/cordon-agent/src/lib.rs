//! The Cordon agent (design §5): enrolls with a one-time token, then keeps a long-poll
//! open to the server over mutual TLS, converges the host's firewall to the desired state,
//! persists that state so it re-applies at boot and stays quarantined while the server is
//! unreachable, checks for tampering every second and repairs it, and reports status.

pub mod addrs;
pub mod backoff;
pub mod client;
pub mod config;
pub mod enforcer;
pub mod enroll;
pub mod persist;
pub mod reconcile;
pub mod report;

pub use config::AgentConfig;
pub use enforcer::{Enforcer, EngineEnforcer, MemoryEnforcer};
pub use reconcile::Agent;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AgentError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Http(String),
    #[error("{0}")]
    Enroll(String),
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    TlsConfig(#[from] cordon_client::TlsError),
    #[error(transparent)]
    Client(#[from] cordon_client::ClientError),
}

/// This agent's version, reported to the server.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
