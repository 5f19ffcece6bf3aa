//! Enrollment: an agent trades a one-time token and a CSR for a client certificate.

use serde::{Deserialize, Serialize};

/// `POST /v1/enroll` body (server-authenticated TLS, no client certificate yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrollRequest {
    /// One-time enrollment token (`cordon server token create` / `POST /v1/enrollment-tokens`).
    pub token: String,
    /// PKCS#10 request, PEM. Its subject is ignored: the server names the host.
    pub csr_pem: String,
    /// The host's name (shown in the console; may be duplicated, then flagged).
    pub hostname: String,
    #[serde(default)]
    /// Operating system and version (free text).
    pub os: Option<String>,
    /// The host's IP addresses (at most [`crate::MAX_ADDRESSES`]); read as
    /// [`crate::addr::parse_host_address`] reads them, written as canonical text.
    #[serde(default, with = "crate::addr::reported")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub addresses: Vec<std::net::IpAddr>,
    #[serde(default)]
    /// Version of the enrolling agent binary.
    pub agent_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
/// `POST /v1/enroll` answer: the host's identity and its client certificate.
pub struct EnrollResponse {
    /// The id the server gave the host (the common name of `cert_pem`); stable for the life of the enrollment.
    pub host_id: String,
    /// Client certificate (PEM) whose common name is `host_id`.
    pub cert_pem: String,
    /// The CA that signs server and client certificates (PEM).
    pub ca_pem: String,
    /// What the server flagged on the new host (a hostname or address another host has
    /// too): the agent warns, since such a name cannot address the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<crate::HostFlag>,
}
