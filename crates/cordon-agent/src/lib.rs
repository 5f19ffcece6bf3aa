//! The Cordon agent (design §5): enrolls with a one-time token, then keeps a long-poll
//! open to the server over mutual TLS, converges the host's firewall to the desired state,
//! persists that state so it re-applies at boot and stays quarantined while the server is
//! unreachable, checks for tampering every second and repairs it, and reports status.

pub mod addrs;
pub(crate) mod backoff;
pub mod client;
pub mod config;
pub mod enforcer;
pub mod enroll;
pub mod persist;
pub mod plan;
pub mod reconcile;
pub(crate) mod report;
pub mod singleton;

pub use config::AgentConfig;
pub use enforcer::{Enforcer, EngineEnforcer, MemoryEnforcer};
pub use reconcile::Agent;

use std::path::PathBuf;

use thiserror::Error;

/// Agent failures. Variants that wrap a library error keep it as `#[source]`; print the
/// whole chain (`{:#}` through anyhow, or [`cordon_engine::error_chain`]).
#[derive(Debug, Error)]
pub enum AgentError {
    /// The configuration is invalid (the message names the field and the problem).
    #[error("{0}")]
    Config(String),
    /// The configuration file is not valid TOML of the agent's shape.
    #[error("agent config {} is invalid", path.display())]
    ConfigParse {
        /// The configuration file.
        path: PathBuf,
        /// The TOML error, with line and column.
        #[source]
        source: toml::de::Error,
    },
    /// The configuration could not be encoded as TOML.
    #[error("cannot encode the agent config")]
    ConfigEncode(#[source] toml::ser::Error),
    /// The configured server URL is not a valid `https://HOST[:PORT]`.
    #[error("server {server:?} in the agent config")]
    ConfigServer {
        /// The URL as configured.
        server: String,
        /// Why it is not a server spec.
        #[source]
        source: cordon_policy::PolicyError,
    },
    /// A server URL or the proxy is not a usable destination for the agent's own transport.
    #[error(transparent)]
    OwnTransport(#[from] crate::plan::TransportError),
    /// The firewall settings of the configuration do not make an enforcer.
    #[error("firewall settings in the agent config")]
    Enforcer(#[source] crate::enforcer::EnforceError),
    /// A TLS configuration could not be built (bad PEM, unusable CA).
    #[error(transparent)]
    TlsConfig(#[from] cordon_client::TlsError),
    /// The HTTP client could not be built or an API call failed.
    #[error(transparent)]
    Client(#[from] cordon_client::ClientError),
    /// The key pair or the certificate signing request could not be generated.
    #[error("cannot {what}")]
    Key {
        /// The step, as a verb phrase (`generate the key pair`, ...).
        what: &'static str,
        /// The rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// The server's host name does not resolve; `how` says where this build looked it up
    /// ([`enroll::lookup_words`]).
    #[error("cannot resolve the server name {host:?} ({how})")]
    Resolve {
        /// The name, as in the server URL.
        host: String,
        /// Where it was looked up (hosts file, which nameservers, NSS or not).
        how: String,
        /// The resolver's error (`getaddrinfo`).
        #[source]
        source: std::io::Error,
    },
    /// No answer from the server at `url` (connect, TLS, timeout, unreadable body).
    #[error("cannot reach {url}")]
    Transport {
        /// The URL that was called.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The server's CA could not be fetched, or did not match the expected fingerprint.
    #[error("{0}")]
    Enroll(String),
    /// The server answered the enrollment with an error status: its `ErrorBody` (`error`
    /// code and `detail`), or the body as sent when it is not one.
    #[error("server refused enrollment ({status}): {said}")]
    EnrollRefused {
        /// The HTTP status (`401 Unauthorized` for a bad token, 5xx for the server's own failure).
        status: reqwest::StatusCode,
        /// The server's code (`invalid_token`, `storage_full`, …), when it sent one.
        error: Option<String>,
        /// `CODE: DETAIL` from the server's `ErrorBody`, or the body as sent.
        said: String,
    },
    /// The enrollment answer is not the expected JSON.
    #[error("bad enrollment answer")]
    EnrollAnswer(#[source] reqwest::Error),
    /// A file of the agent could not be read or written; `what` is the operation.
    #[error("cannot {what} {}", path.display())]
    Io {
        /// The operation, as a verb (`read`, `write`, ...).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The persisted desired state is not valid JSON of its shape.
    #[error("{} is corrupt", path.display())]
    Corrupt {
        /// The file ([`persist::FILE_NAME`] in the state directory).
        path: PathBuf,
        /// The parse error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The persisted desired state is not a file the agent could have written (a FIFO, a
    /// symbolic link, a device, a directory, a huge file: trial20 HIGH-A).
    #[error("{} is unusable", path.display())]
    Unusable {
        /// The file ([`persist::FILE_NAME`] in the state directory).
        path: PathBuf,
        /// What it is instead.
        #[source]
        source: cordon_engine::record::RecordError,
    },
    /// The desired state could not be encoded as JSON.
    #[error("cannot encode the desired state")]
    Encode(#[source] serde_json::Error),
    /// The long-poll task ended (it only ends when the runtime shuts down).
    #[error("desired-state poller stopped")]
    PollerStopped,
}

impl AgentError {
    /// An I/O failure on `path`.
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> AgentError {
        AgentError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// This agent's version, reported to the server.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
