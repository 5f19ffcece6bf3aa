use thiserror::Error;

/// Everything that can be wrong with user input to the policy. Each message names the
/// offending value so the CLI can print it as-is.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    #[error("invalid spec {spec:?}: {reason}")]
    InvalidSpec { spec: String, reason: String },
    #[error("invalid server {spec:?}: {reason}")]
    InvalidServer { spec: String, reason: String },
    #[error("invalid table name {name:?}: {reason}")]
    InvalidTableName { name: String, reason: String },
    #[error("invalid resolver {value:?}: not an IP address")]
    InvalidResolver { value: String },
    /// `--message` longer than [`crate::message::MAX_MESSAGE_CHARS`] characters: the API
    /// refuses it (400), so the CLI refuses it too instead of cutting it silently.
    #[error("--message is {chars} characters long; at most {max} are allowed (nothing was changed)")]
    MessageTooLong { chars: usize, max: usize },
}
