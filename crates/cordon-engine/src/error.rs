use std::net::SocketAddr;

use cordon_firewall::FirewallError;
use cordon_policy::PolicyError;
use thiserror::Error;

/// Engine failures, each mapped to the exit code of design §4.
#[derive(Debug, Error)]
pub enum EngineError {
    /// Bad input or a host Cordon cannot work on; nothing was changed.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    NotPermitted(String),
    #[error("verification failed: could not reach {} ({reason}); {}", fmt_targets(.targets), match .rollback_error { None => "rolled back".to_string(), Some(e) => format!("ROLLBACK FAILED: {e}") })]
    VerificationFailed {
        targets: Vec<SocketAddr>,
        reason: String,
        rollback_error: Option<String>,
    },
    #[error("firewall rejected the change (nothing applied): {0}")]
    Rejected(String),
    #[error("{0}")]
    Other(String),
}

fn fmt_targets(targets: &[SocketAddr]) -> String {
    targets.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
}

impl EngineError {
    /// Process exit code (design §4): 2 invalid/unsupported, 3 verification failed,
    /// 4 not permitted, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            EngineError::Invalid(_) | EngineError::Unsupported(_) => 2,
            EngineError::VerificationFailed { .. } => 3,
            EngineError::NotPermitted(_) => 4,
            EngineError::Rejected(_) | EngineError::Other(_) => 1,
        }
    }

    /// Short machine-readable name for `--json` output and agent reports.
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::Invalid(_) => "invalid_input",
            EngineError::Unsupported(_) => "unsupported",
            EngineError::NotPermitted(_) => "not_permitted",
            EngineError::VerificationFailed { .. } => "verification_failed",
            EngineError::Rejected(_) => "rejected",
            EngineError::Other(_) => "error",
        }
    }
}

impl From<FirewallError> for EngineError {
    fn from(e: FirewallError) -> Self {
        match e {
            FirewallError::Unsupported(m) => EngineError::Unsupported(m),
            FirewallError::NotPermitted(m) => EngineError::NotPermitted(m),
            FirewallError::Rejected(m) => EngineError::Rejected(m),
            other => EngineError::Other(other.to_string()),
        }
    }
}

impl From<PolicyError> for EngineError {
    fn from(e: PolicyError) -> Self {
        EngineError::Invalid(e.to_string())
    }
}
