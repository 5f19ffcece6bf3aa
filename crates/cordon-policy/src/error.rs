//! The one error type of the policy crate: user input that cannot become a policy.

use thiserror::Error;

/// Everything that can be wrong with user input to the policy. Each message names the
/// offending value so the CLI can print it as-is.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// An `--allow` spec that [`crate::spec::AllowSpec::parse`] cannot read (unknown
    /// scheme, missing or zero port, bad host, bad CIDR, ...).
    #[error("invalid spec {spec:?}: {reason}")]
    InvalidSpec {
        /// The spec exactly as given.
        spec: String,
        /// What is wrong with it, in words fit for the user.
        reason: String,
    },
    /// A `--server` URL that [`crate::spec::AllowSpec::parse_server`] refuses: unreadable,
    /// a network instead of one host, or no single TCP port.
    #[error("invalid server {spec:?}: {reason}")]
    InvalidServer {
        /// The URL exactly as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--table` name that [`crate::TableName::new`] refuses (length, first character
    /// or character set).
    #[error("invalid table name {name:?}: {reason}")]
    InvalidTableName {
        /// The name exactly as given.
        name: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A resolver that is not an IP address literal. (The CLI currently parses
    /// `--resolver` with its own IP parser, so nothing in the workspace builds this one.)
    #[error("invalid resolver {value:?}: not an IP address")]
    InvalidResolver {
        /// The value as given.
        value: String,
    },
    /// `--message` longer than [`crate::message::MAX_MESSAGE_CHARS`] characters: the API
    /// refuses it (400), so the CLI refuses it too instead of cutting it silently.
    #[error("--message is {chars} characters long; at most {max} are allowed (nothing was changed)")]
    MessageTooLong {
        /// Length of the given message in Unicode scalar values (`str::chars`), not bytes.
        chars: usize,
        /// The limit, [`crate::message::MAX_MESSAGE_CHARS`].
        max: usize,
    },
}
