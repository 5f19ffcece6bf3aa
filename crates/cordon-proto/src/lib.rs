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
pub mod review;
pub mod shown;
pub mod timefmt;

pub use agent::{
    AgentState, AgentWait, Backend, ClaimInfo, ClaimSource, DesiredState, StatusReport, WaitKind, DEFAULT_HEARTBEAT_MS,
    MAX_HEARTBEAT_MS, OFFLINE_AFTER_HEARTBEATS,
};
pub use api::*;
pub use enroll::{EnrollRequest, EnrollResponse};

/// Version of this protocol; sent by agents in every report.
pub const PROTO_VERSION: u32 = 1;

/// Most addresses an agent or an enrolling host may report (`StatusReport::addresses`,
/// `EnrollRequest::addresses`); the server refuses a longer list with 400, so agents cap
/// their own list to this many.
pub const MAX_ADDRESSES: usize = 64;

/// Furthest ahead a quarantine may be set to expire, in seconds (366 days): `--expires`,
/// the API's `expires_at` and an automation rule's `expires_after` beyond it are refused
/// (400 / exit 2, naming the limit) rather than cut to a date nobody asked for. A
/// quarantine meant to last longer is given no expiry. The server allows
/// [`EXPIRY_CLOCK_LEEWAY_SECS`] more for the caller's clock.
pub const MAX_EXPIRY_SECS: i64 = 366 * 86_400;

/// How far past [`MAX_EXPIRY_SECS`] the server still accepts an `expires_at`, in seconds
/// (a client that computed `now + 366d` with a clock a little ahead of the server's).
pub const EXPIRY_CLOCK_LEEWAY_SECS: i64 = 3_600;

/// `Ok` for an expiry `secs` seconds ahead that is within [`MAX_EXPIRY_SECS`].
///
/// # Errors
/// The refusal, naming `what` (the option the caller gave, e.g. `--expires 999d`) and
/// the limit.
pub fn check_expiry_secs(what: &str, secs: i64) -> Result<(), String> {
    if secs > MAX_EXPIRY_SECS {
        return Err(format!(
            "{what} is more than {} days ahead: a quarantine expires at most {} days after it is asked for \
             (give no expiry for one meant to last longer); nothing was changed",
            MAX_EXPIRY_SECS / 86_400,
            MAX_EXPIRY_SECS / 86_400
        ));
    }
    Ok(())
}

/// The label the server keeps on exactly the hosts desired quarantined.
pub const QUARANTINE_LABEL: &str = "Quarantine";

/// Longest user message accepted (design §4), in characters: the one definition,
/// cordon-policy's, which also cuts what the endpoint shows to it.
pub use cordon_policy::message::MAX_MESSAGE_CHARS;
