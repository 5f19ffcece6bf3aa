//! The service layer: plain async functions over the [`AppState`](crate::AppState) (store
//! and agent hub) and the authenticated [`Caller`] that hold the logic of every operation.
//! The REST handlers, the console and automation call these and never each other's
//! handlers, so roles, validation, transactions, audit and agent wake-ups are the same
//! whichever front end a request came through.
//!
//! Functions check the caller's role first (a viewer gets 403 whatever it sent), then
//! validate the input (nothing is written when that fails), then call the store. Errors
//! are [`crate::ApiError`]s: a status, a stable code and a message fit for the
//! caller; internal failures are logged and reach callers only as a generic message.
//! The audit writers (checkpoints, the anchor file, retention) and offline commands fail
//! with the typed [`ServiceError`], which keeps its cause and becomes an `ApiError` only
//! at the HTTP edge.

pub mod agent;
pub mod audit;
pub mod enroll;
pub mod error;
pub mod host_views;
pub mod hosts;
pub mod sessions;
pub mod tokens;
pub mod validate;

use cordon_proto::Role;

pub use crate::store::Caller;
use crate::ApiError;
pub use error::ServiceError;

impl Caller {
    /// Fails with 403 unless this caller's role includes `role`.
    ///
    /// # Errors
    /// [`ApiError`] `forbidden` naming the token, its role and the role needed.
    pub fn require(&self, role: Role) -> Result<&Caller, ApiError> {
        if self.role >= role {
            Ok(self)
        } else {
            Err(ApiError::forbidden(format!(
                "token {:?} has role {}, this needs {}",
                self.name,
                self.role.as_str(),
                role.as_str()
            )))
        }
    }
}
