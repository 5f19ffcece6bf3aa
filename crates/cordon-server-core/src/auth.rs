//! Who is calling: API bearer tokens (people and scripts) and client certificates
//! (agents). Agent identity is re-checked against the database on every request, so a
//! revoked host is refused at once.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use cordon_proto::Role;

pub use crate::store::Caller;
use crate::{ApiError, AppState};

/// A caller authenticated by `Authorization: Bearer TOKEN`.
#[derive(Debug, Clone)]
pub struct Auth(pub Caller);

impl Auth {
    /// Fails with 403 unless the caller's role includes `role` (see [`Caller::require`]).
    pub fn require(&self, role: Role) -> Result<&Caller, ApiError> {
        self.0.require(role)
    }

    /// The caller's display name, as audit records show it (its token id is `self.0.token_id`).
    pub fn actor(&self) -> &str {
        &self.0.name
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer TOKEN"))?;
        let text = header
            .to_str()
            .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::unauthorized("Authorization must be Bearer TOKEN"))?;
        match state.store.authenticate(token.trim()).await? {
            Some(caller) => Ok(Auth(caller)),
            None => Err(ApiError::unauthorized("unknown or revoked API token")),
        }
    }
}

/// A caller whose token has at least the responder role, checked from the headers
/// alone: a handler taking it never reads (or parses) the body of a caller below it.
#[derive(Debug, Clone)]
pub struct Responder(pub Auth);

/// Like [`Responder`] for the admin role.
#[derive(Debug, Clone)]
pub struct Admin(pub Auth);

impl FromRequestParts<AppState> for Responder {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_request_parts(parts, state).await?;
        auth.require(Role::Responder)?;
        Ok(Responder(auth))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_request_parts(parts, state).await?;
        auth.require(Role::Admin)?;
        Ok(Admin(auth))
    }
}

/// The host id from the client certificate of this connection, inserted into each
/// request's extensions by the TLS layer (never taken from anything the client sends
/// in HTTP). Absent when the client presented no certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity(pub String);

/// The peer address of this connection (`IP:port`), inserted into each request's
/// extensions by the TLS layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// An agent authenticated by its client certificate, enrolled and not revoked.
#[derive(Debug, Clone)]
pub struct AgentAuth {
    /// The host id from the client certificate's common name.
    pub host_id: String,
}

impl FromRequestParts<AppState> for AgentAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(PeerIdentity(host_id)) = parts.extensions.get::<PeerIdentity>().cloned() else {
            return Err(ApiError::unauthorized(
                "agent endpoints need a client certificate (mutual TLS)",
            ));
        };
        match state.store.host_active(&host_id).await? {
            Some(true) => Ok(AgentAuth { host_id }),
            Some(false) => Err(ApiError::forbidden(format!("host {host_id} is revoked"))),
            None => {
                // Signed by this CA (the TLS layer verified it) but no host has the id: the
                // database was restored from before the enrollment (trial32 HIGH-2). Logged,
                // audited and listed, so the SOC sees the agent it can no longer reach.
                let addr = parts.extensions.get::<PeerAddr>().map(|a| a.0.to_string());
                crate::service::agent::unknown_agent(state, &host_id, addr.as_deref()).await;
                Err(ApiError::forbidden(format!(
                    "certificate names unknown host {host_id:?}: this server's database does not know it (restored \
                     from a backup older than the host's enrollment, or the host was deleted); the server lists it \
                     among its unknown agents"
                )))
            }
        }
    }
}
