//! Wire types shared by the Cordon agent, server and API clients (design §5).
//!
//! Everything here is plain serde data (and the CA fingerprint format) with no I/O. Fields only ever get added (with
//! `#[serde(default)]`), so an older agent keeps working against a newer server;
//! [`PROTO_VERSION`] is bumped when a change is not compatible.

#[macro_use]
mod wire_enum;

pub mod addr;
pub mod agent;
pub mod api;
pub mod audit_chain;
pub mod automation;
pub mod enroll;
pub mod fingerprint;
pub mod hostname;
pub mod shown;
pub mod timefmt;

pub use agent::{
    AgentState, Backend, ClaimInfo, ClaimSource, DesiredState, StatusReport, DEFAULT_HEARTBEAT_MS, MAX_HEARTBEAT_MS,
    OFFLINE_AFTER_HEARTBEATS,
};
pub use api::*;
pub use enroll::{EnrollRequest, EnrollResponse};

/// Version of this protocol; sent by agents in every report.
pub const PROTO_VERSION: u32 = 1;

/// Most addresses an agent or an enrolling host may report (`StatusReport::addresses`,
/// `EnrollRequest::addresses`); the server refuses a longer list with 400, so agents cap
/// their own list to this many.
pub const MAX_ADDRESSES: usize = 64;

/// The label the server keeps on exactly the hosts desired quarantined.
pub const QUARANTINE_LABEL: &str = "Quarantine";

/// Longest user message accepted (design §4), in characters: the one definition,
/// cordon-policy's, which also cuts what the endpoint shows to it.
pub use cordon_policy::message::MAX_MESSAGE_CHARS;
