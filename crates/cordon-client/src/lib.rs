//! Typed client for Cordon's REST API (`/v1/…`, design §5) over the wire types of
//! `cordon-proto`, and the client-side TLS configurations (server-auth-only, mutual TLS,
//! enrollment) shared by the CLI, the agent and the lab.
//!
//! URLs are built with [`reqwest::Url`]: the server URL is parsed once, path segments are
//! percent-encoded by `path_segments_mut`, query values by `query_pairs_mut`.

pub mod automation;
pub mod tls;

use std::time::Duration;

use cordon_proto::{
    ActionRequest, ActionResponse, AuditList, Host, HostList, LabelsRequest, RetryRequest, RevokeRequest,
};
use reqwest::{Method, StatusCode, Url};
use rustls::ClientConfig;
use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

pub use reqwest;
pub use tls::TlsError;

/// Why an API call failed. [`ClientError::Refused`] carries the server's status and
/// `{error, detail}` body; every other variant keeps the underlying cause as its source.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The server URL is not an absolute `https://HOST[:PORT][/PREFIX]` URL.
    #[error("bad server URL {url:?}")]
    BadUrl {
        /// The URL as given.
        url: String,
        #[source]
        /// Why it does not parse.
        source: url::ParseError,
    },
    /// The server URL cannot take path segments (e.g. `mailto:` or `data:` URLs).
    #[error("server URL {0:?} cannot be a base URL")]
    NotABase(String),
    /// The TLS configuration could not be built (bad CA PEM, …).
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// reqwest could not build the HTTP client.
    #[error("cannot build HTTP client")]
    Build(#[source] reqwest::Error),
    /// No answer: connection refused, TLS handshake failed, timeout.
    #[error("cannot reach {base}")]
    Transport {
        /// The server URL, without a trailing `/`.
        base: String,
        #[source]
        /// reqwest's error (connect, TLS, timeout).
        source: reqwest::Error,
    },
    /// The answer's body could not be read.
    #[error("cannot read the answer from {base}")]
    Body {
        /// The server URL, without a trailing `/`.
        base: String,
        #[source]
        /// reqwest's error.
        source: reqwest::Error,
    },
    /// The answer is not the JSON the call expects.
    #[error("unexpected answer from the server")]
    Decode(#[source] serde_json::Error),
    /// A request body could not be serialised.
    #[error("cannot encode the request body")]
    Encode(#[source] serde_json::Error),
    /// The server answered with a non-2xx status; `error`/`detail` come from its
    /// `{error, detail}` body when it sent one, otherwise `text` is the raw body.
    #[error("{}", refusal_message(*.status, .error.as_deref(), .detail.as_deref(), .text))]
    Refused {
        /// The HTTP status (not 2xx).
        status: StatusCode,
        /// `error` of the `{error, detail}` body (a stable code such as `not_found`).
        error: Option<String>,
        /// `detail` of the body, when `error` was present.
        detail: Option<String>,
        /// The raw body.
        text: String,
    },
}

fn refusal_message(status: StatusCode, error: Option<&str>, detail: Option<&str>, text: &str) -> String {
    match error {
        Some(e) => format!("{e} ({}): {}", status.as_u16(), detail.unwrap_or("")),
        None => format!("server answered {status}: {text}"),
    }
}

impl ClientError {
    /// The HTTP status of a refusal, `None` for every other failure.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A reqwest client on `tls`: 5 s connect timeout, `timeout` for the whole request (none
/// when `None`; long-polls set their own), TCP_NODELAY, at most 2 idle connections per host
/// kept 90 s.
///
/// # Errors
/// [`ClientError::Build`] when reqwest refuses the configuration.
pub fn http_client(tls: ClientConfig, timeout: Option<Duration>) -> Result<reqwest::Client, ClientError> {
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(2);
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    b.build().map_err(ClientError::Build)
}

/// Parses the server URL a user gave (`https://HOST[:PORT][/PREFIX]`).
///
/// # Errors
/// [`ClientError::BadUrl`] / [`ClientError::NotABase`].
pub fn parse_base(server: &str) -> Result<Url, ClientError> {
    let url = Url::parse(server).map_err(|source| ClientError::BadUrl {
        url: server.to_string(),
        source,
    })?;
    if url.cannot_be_a_base() {
        return Err(ClientError::NotABase(server.to_string()));
    }
    Ok(url)
}

/// `base` + path `segments` (each percent-encoded) + `query` pairs (pairs whose value is
/// `None` are left out). A trailing `/` on the base is not doubled.
pub fn build_url(base: &Url, segments: &[&str], query: &[(&str, Option<&str>)]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    let present: Vec<(&str, &str)> = query.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect();
    if !present.is_empty() {
        url.query_pairs_mut().extend_pairs(present);
    }
    url
}

/// Where a quarantine or release goes: one host (by id or hostname, `/v1/hosts/{host}/…`),
/// or the hosts and/or label of a body sent to `/v1/{action}` (the server resolves them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One host id or hostname.
    Host(String),
    /// Host ids or hostnames, and every host with `label`.
    Selection {
        /// Host ids or hostnames.
        hosts: Vec<String>,
        /// A label; every host carrying it.
        label: Option<String>,
    },
}

/// The two host actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `quarantine`.
    Quarantine,
    /// `release`.
    Release,
}

impl Action {
    /// The path segment (`quarantine`, `release`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Quarantine => "quarantine",
            Action::Release => "release",
        }
    }
}

/// Filters of `GET /v1/hosts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFilter {
    /// Only hosts with this label.
    pub label: Option<String>,
    /// Only hosts in this state (`normal`, `quarantined`, …).
    pub state: Option<String>,
    /// Substring of id, hostname or address.
    pub q: Option<String>,
    /// Only hosts that are (`true`) or are not (`false`) offline.
    pub offline: Option<bool>,
    /// Revoked hosts: `None` for the server's default (those that may still be isolated,
    /// marked `revoked`), `all` or `only` (the API's `revoked` parameter).
    pub revoked: Option<String>,
}

/// Filters of `GET /v1/audit`; `since`/`until` are RFC 3339 times.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Host id or hostname.
    pub host: Option<String>,
    /// Actor (`admin`, a token name, `rule:<name>`, …).
    pub actor: Option<String>,
    /// Action (`quarantine`, `release`, …).
    pub action: Option<String>,
    /// The API token id behind the records (`actor_token_id`).
    pub actor_token_id: Option<i64>,
    /// RFC 3339; records at or after.
    pub since: Option<String>,
    /// RFC 3339; records before.
    pub until: Option<String>,
}

/// Wire formats of `GET /v1/audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditFormat {
    /// One JSON document `{records: [...]}`.
    Json,
    /// JSON lines, one record per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
}

impl AuditFormat {
    fn as_str(self) -> &'static str {
        match self {
            AuditFormat::Json => "json",
            AuditFormat::Jsonl => "jsonl",
            AuditFormat::Csv => "csv",
        }
    }
}

/// A status and body as the server sent them.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Body as text.
    pub text: String,
}

/// An API client authenticated by a bearer token, trusting only the server's CA.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: Url,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client for `server` (`https://HOST:PORT`) with bearer `token`, trusting only
    /// `ca_pem`; `timeout` bounds every request (60 s in the CLI).
    ///
    /// # Errors
    /// [`ClientError::BadUrl`]/[`ClientError::NotABase`] for the URL, [`ClientError::Tls`]
    /// when `ca_pem` holds no usable certificate, [`ClientError::Build`].
    pub fn new(server: &str, token: &str, ca_pem: &[u8], timeout: Option<Duration>) -> Result<ApiClient, ClientError> {
        let base = parse_base(server)?;
        let http = http_client(tls::server_auth_only(ca_pem)?, timeout)?;
        Ok(ApiClient {
            base,
            token: token.to_string(),
            http,
        })
    }

    /// The server URL this client talks to.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// One request with the bearer token; the answer's status and body, whatever the status.
    ///
    /// # Errors
    /// [`ClientError::Transport`] when there is no answer, [`ClientError::Body`] when it
    /// cannot be read, [`ClientError::Encode`] for an unserialisable body.
    pub async fn raw<B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, Option<&str>)],
        body: Option<&B>,
    ) -> Result<RawResponse, ClientError> {
        let url = build_url(&self.base, segments, query);
        let mut req = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&serde_json::to_value(b).map_err(ClientError::Encode)?);
        }
        let base = self.base.as_str().trim_end_matches('/').to_string();
        let resp = req.send().await.map_err(|source| ClientError::Transport {
            base: base.clone(),
            source,
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|source| ClientError::Body { base, source })?;
        Ok(RawResponse { status, text })
    }

    /// Like [`ApiClient::raw`], but a non-2xx answer is [`ClientError::Refused`]; the body
    /// of a success as text.
    ///
    /// # Errors
    /// As [`ApiClient::raw`], plus [`ClientError::Refused`].
    pub async fn text<B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, Option<&str>)],
        body: Option<&B>,
    ) -> Result<String, ClientError> {
        let RawResponse { status, text } = self.raw(method, segments, query, body).await?;
        if status.is_success() {
            return Ok(text);
        }
        let parsed: Option<serde_json::Value> = serde_json::from_str(&text).ok();
        let field = |k: &str| {
            parsed
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let error = field("error");
        let detail = if error.is_some() { field("detail") } else { None };
        Err(ClientError::Refused {
            status,
            error,
            detail,
            text,
        })
    }

    /// A call whose success answer is JSON of type `T`.
    ///
    /// # Errors
    /// As [`ApiClient::text`], plus [`ClientError::Decode`].
    pub async fn json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, Option<&str>)],
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let text = self.text(method, segments, query, body).await?;
        serde_json::from_str(&text).map_err(ClientError::Decode)
    }

    /// A call whose answer is any JSON (`null` for an empty body).
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    pub async fn value<B: Serialize + ?Sized>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, Option<&str>)],
        body: Option<&B>,
    ) -> Result<serde_json::Value, ClientError> {
        let text = self.text(method, segments, query, body).await?;
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(&text).map_err(ClientError::Decode)
    }

    /// `GET /v1/hosts` with filters.
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    /// Follows `next_cursor` until the last page: the result holds every match.
    pub async fn hosts(&self, f: &HostFilter) -> Result<HostList, ClientError> {
        let mut all = HostList {
            hosts: Vec::new(),
            next_cursor: None,
        };
        let mut cursor: Option<String> = None;
        let offline = f.offline.map(|o| o.to_string());
        loop {
            let q = [
                ("label", f.label.as_deref()),
                ("state", f.state.as_deref()),
                ("q", f.q.as_deref()),
                ("offline", offline.as_deref()),
                ("revoked", f.revoked.as_deref()),
                ("cursor", cursor.as_deref()),
            ];
            let page: HostList = self.json(Method::GET, &["v1", "hosts"], &q, None::<&()>).await?;
            all.hosts.extend(page.hosts);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(all),
            }
        }
    }

    /// `GET /v1/hosts/{host}` (id or hostname).
    ///
    /// # Errors
    /// As [`ApiClient::json`]; an unknown host is [`ClientError::Refused`] with 404.
    pub async fn host(&self, host: &str) -> Result<Host, ClientError> {
        self.json(Method::GET, &["v1", "hosts", host], &[], None::<&()>).await
    }

    /// `GET /v1/unknown-agents`: agents refused because their certificate names a host id
    /// the server's database does not know (restored from before their enrollment).
    ///
    /// # Errors
    /// As [`ApiClient::json`]; a server older than this call answers 404.
    pub async fn unknown_agents(&self) -> Result<cordon_proto::UnknownAgentList, ClientError> {
        self.json(Method::GET, &["v1", "unknown-agents"], &[], None::<&()>)
            .await
    }

    /// `POST /v1/hosts/{host}/labels`.
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    pub async fn labels(&self, host: &str, req: &LabelsRequest) -> Result<Host, ClientError> {
        self.json(Method::POST, &["v1", "hosts", host, "labels"], &[], Some(req))
            .await
    }

    /// `POST /v1/hosts/{host}/revoke`.
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    pub async fn revoke(&self, host: &str, req: &RevokeRequest) -> Result<Host, ClientError> {
        self.json(Method::POST, &["v1", "hosts", host, "revoke"], &[], Some(req))
            .await
    }

    /// `POST /v1/hosts/{host}/retry`: re-send the host's desired state to its agent.
    ///
    /// # Errors
    /// As [`ApiClient::json`]; nothing to retry (or a stale `if_revision`) is
    /// [`ClientError::Refused`] with 409.
    pub async fn retry(&self, host: &str, req: &RetryRequest) -> Result<ActionResponse, ClientError> {
        self.json(Method::POST, &["v1", "hosts", host, "retry"], &[], Some(req))
            .await
    }

    /// Quarantine or release `target`; `req` carries the comment and (quarantine) the
    /// exceptions, message and expiry. Its `hosts`/`label` are set from `target`.
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    pub async fn act(&self, action: Action, target: Target, req: ActionRequest) -> Result<ActionResponse, ClientError> {
        match target {
            Target::Host(h) => {
                self.json(Method::POST, &["v1", "hosts", &h, action.as_str()], &[], Some(&req))
                    .await
            }
            Target::Selection { hosts, label } => {
                let req = ActionRequest { hosts, label, ..req };
                self.json(Method::POST, &["v1", action.as_str()], &[], Some(&req)).await
            }
        }
    }

    fn audit_query(f: &AuditFilter, format: AuditFormat) -> Vec<(&'static str, Option<String>)> {
        vec![
            ("format", Some(format.as_str().to_string())),
            ("host", f.host.clone()),
            ("actor", f.actor.clone()),
            ("actor_token_id", f.actor_token_id.map(|t| t.to_string())),
            ("action", f.action.clone()),
            ("since", f.since.clone()),
            ("until", f.until.clone()),
        ]
    }

    /// `GET /v1/audit?format=json` with filters.
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    /// Follows `next_cursor` until the last page: the result holds every match.
    pub async fn audit(&self, f: &AuditFilter) -> Result<AuditList, ClientError> {
        let mut all = AuditList {
            records: Vec::new(),
            next_cursor: None,
            chain_alert: None,
        };
        let mut cursor: Option<String> = None;
        loop {
            let base = Self::audit_query(f, AuditFormat::Json);
            let mut q: Vec<(&str, Option<&str>)> = base.iter().map(|(k, v)| (*k, v.as_deref())).collect();
            q.push(("cursor", cursor.as_deref()));
            let page: AuditList = self.json(Method::GET, &["v1", "audit"], &q, None::<&()>).await?;
            all.records.extend(page.records);
            if page.chain_alert.is_some() {
                all.chain_alert = page.chain_alert;
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(all),
            }
        }
    }

    /// What the server's last verification of the audit chain found wrong, if anything
    /// (`chain_alert` of one `GET /v1/audit?limit=1` page).
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    pub async fn audit_alert(&self) -> Result<Option<cordon_proto::ChainAlert>, ClientError> {
        let page: AuditList = self
            .json(Method::GET, &["v1", "audit"], &[("limit", Some("1"))], None::<&()>)
            .await?;
        Ok(page.chain_alert)
    }

    /// `GET /v1/audit/verify` (admin): the server checks its audit chain, against
    /// `checkpoint` (`ID:HASH`) too when given.
    ///
    /// # Errors
    /// As [`ApiClient::json`].
    pub async fn audit_verify(
        &self,
        checkpoint: Option<&str>,
    ) -> Result<cordon_proto::audit_chain::ChainReport, ClientError> {
        self.json(
            Method::GET,
            &["v1", "audit", "verify"],
            &[("checkpoint", checkpoint)],
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/audit` in `format`, the body as the server sent it.
    ///
    /// # Errors
    /// As [`ApiClient::text`].
    pub async fn audit_text(&self, f: &AuditFilter, format: AuditFormat) -> Result<String, ClientError> {
        let base = Self::audit_query(f, format);
        let q: Vec<(&str, Option<&str>)> = base.iter().map(|(k, v)| (*k, v.as_deref())).collect();
        self.text(Method::GET, &["v1", "audit"], &q, None::<&()>).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_segments_are_percent_encoded_not_spliced() {
        let base = parse_base("https://192.0.2.1:8443").unwrap();
        let u = build_url(
            &base,
            &["v1", "hosts", "a/b?c d"],
            &[("q", Some("x&y=z")), ("label", None)],
        );
        assert_eq!(u.as_str(), "https://192.0.2.1:8443/v1/hosts/a%2Fb%3Fc%20d?q=x%26y%3Dz");
    }

    #[test]
    fn url_base_trailing_slash_and_prefix_kept() {
        let base = parse_base("https://h.example:8443/").unwrap();
        assert_eq!(
            build_url(&base, &["v1", "audit"], &[]).as_str(),
            "https://h.example:8443/v1/audit"
        );
        let base = parse_base("https://h.example/cordon/").unwrap();
        assert_eq!(
            build_url(&base, &["v1", "hosts"], &[]).as_str(),
            "https://h.example/cordon/v1/hosts"
        );
    }

    #[test]
    fn url_bad_server_is_an_error() {
        assert!(matches!(parse_base("not a url"), Err(ClientError::BadUrl { .. })));
        assert!(matches!(
            parse_base("mailto:x@example.org"),
            Err(ClientError::NotABase(_))
        ));
    }

    #[test]
    fn refusal_message_uses_error_body_or_raw_text() {
        let e = ClientError::Refused {
            status: StatusCode::NOT_FOUND,
            error: Some("not_found".into()),
            detail: Some("no host x".into()),
            text: String::new(),
        };
        assert_eq!(e.to_string(), "not_found (404): no host x");
        let e = ClientError::Refused {
            status: StatusCode::BAD_GATEWAY,
            error: None,
            detail: None,
            text: "oops".into(),
        };
        assert_eq!(e.to_string(), "server answered 502 Bad Gateway: oops");
    }
}
