//! The agent's HTTP calls to the server.

use std::time::Duration;

use cordon_proto::{DesiredState, StatusReport};
use rustls::ClientConfig;

use crate::AgentError;

/// How long a long-poll may be held by the server, and our margin on top.
pub const POLL_WAIT_SECS: u64 = 25;
const POLL_MARGIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct ServerClient {
    base: String,
    http: reqwest::Client,
}

/// A failed call; `fatal` when the server refused us (revoked, unknown host).
#[derive(Debug)]
pub struct CallError {
    pub detail: String,
    pub status: Option<u16>,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

async fn error_of(resp: reqwest::Response) -> CallError {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let detail = match serde_json::from_str::<cordon_proto::ErrorBody>(&text) {
        Ok(b) => format!("server answered {status}: {}: {}", b.error, b.detail),
        Err(_) => format!("server answered {status}: {text}"),
    };
    CallError {
        detail,
        status: Some(status),
    }
}

fn transport(e: reqwest::Error) -> CallError {
    CallError {
        detail: format!("cannot reach server: {e}"),
        status: None,
    }
}

impl ServerClient {
    pub fn new(base: &str, tls: ClientConfig) -> Result<Self, AgentError> {
        Ok(ServerClient {
            base: base.trim_end_matches('/').to_string(),
            http: cordon_client::http_client(tls, None)?,
        })
    }

    /// Long-poll for a revision newer than `since`.
    pub async fn desired(&self, since: Option<i64>, wait_secs: u64) -> Result<DesiredState, CallError> {
        let mut url = format!("{}/v1/agent/desired?wait={wait_secs}", self.base);
        if let Some(s) = since {
            url.push_str(&format!("&since={s}"));
        }
        let resp = self
            .http
            .get(url)
            .timeout(Duration::from_secs(wait_secs) + POLL_MARGIN)
            .send()
            .await
            .map_err(transport)?;
        if !resp.status().is_success() {
            return Err(error_of(resp).await);
        }
        resp.json().await.map_err(|e| CallError {
            detail: format!("bad desired state: {e}"),
            status: None,
        })
    }

    pub async fn report(&self, r: &StatusReport) -> Result<(), CallError> {
        let resp = self
            .http
            .post(format!("{}/v1/agent/status", self.base))
            .timeout(Duration::from_secs(15))
            .json(r)
            .send()
            .await
            .map_err(transport)?;
        if !resp.status().is_success() {
            return Err(error_of(resp).await);
        }
        Ok(())
    }
}
