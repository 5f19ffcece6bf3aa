//! The agent's HTTP calls to the server: mutual TLS, every configured server URL in
//! failover order, and an explicit proxy or none (environment proxies are ignored: an
//! agent that silently follows `HTTPS_PROXY` cuts itself off once its own quarantine
//! blocks the proxy, issue 14).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cordon_proto::{DesiredState, StatusReport};
use rustls::ClientConfig;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard, Notify};

use crate::AgentError;

/// How long a long-poll may be held by the server, and our margin on top.
pub const POLL_WAIT_SECS: u64 = 25;
const POLL_MARGIN: Duration = Duration::from_secs(10);

/// How the agent's HTTP client connects.
#[derive(Debug, Clone)]
pub struct Connect {
    /// `http://HOST:PORT` of an explicit proxy; `None` connects directly.
    pub proxy: Option<String>,
    /// TCP connect timeout.
    pub timeout: Duration,
}

impl Default for Connect {
    fn default() -> Self {
        Connect {
            proxy: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// The agent's HTTP client for the server API over mutual TLS: one connection pool,
/// failing over between the configured server URLs in order. Cheap to clone (shared
/// state behind `Arc`).
#[derive(Debug, Clone)]
pub struct ServerClient {
    bases: Arc<Vec<String>>,
    /// `bases`, parsed ([`cordon_client::parse_base`]): endpoints are built on them.
    urls: Arc<Vec<reqwest::Url>>,
    current: Arc<AtomicUsize>,
    http: reqwest::Client,
    /// Peer address of the last successful response (the server, or the proxy).
    last_peer: Arc<Mutex<Option<SocketAddr>>>,
    /// When the last successful response arrived.
    last_ok: Arc<Mutex<Option<Instant>>>,
    /// Fired on every transport failure (the agent re-resolves its server names).
    failed: Arc<Notify>,
    /// The mutual-TLS configuration and connection settings, for [`ServerClient::probe`].
    tls: Arc<ClientConfig>,
    connect: Connect,
    /// Whether the last call got an answer (any HTTP status): a connection to the server
    /// is open in the pool. False at start and after a transport failure.
    live: Arc<AtomicBool>,
    /// Held by a quick call (a report, a long-poll without `since`) made while not
    /// [`ServerClient::live`], so the long-poll and the reporter do not open a connection
    /// each at start or after an outage: the first call's connection (HTTP/2) carries
    /// both. Without it 10,000 agents opened 20,000 connections at once, a server's
    /// whole descriptor limit on the bench machine (issue 15).
    opening: Arc<AsyncMutex<()>>,
}

/// A failed call; `status` is the server's HTTP status when it answered.
#[derive(Debug)]
pub struct CallError {
    /// What went wrong, for the log: the server's error body when it answered, else the
    /// transport error.
    pub detail: String,
    /// The HTTP status code; `None` when no answer came (connect, TLS, timeout).
    pub status: Option<u16>,
}

/// Why a [`ServerClient::probe`] failed.
#[derive(Debug)]
pub struct ProbeError {
    /// What went wrong, for the log and the `degraded` line.
    pub detail: String,
    /// Nothing answered at all — the connection was refused, timed out, or the host or
    /// network is unreachable ([`is_no_answer`]): the server may just be down, which says
    /// nothing about whether the address is the server's (issue 14 item 3: a server outage
    /// made the agent refuse its server's genuine addresses). `false`: a peer answered and
    /// was not the Cordon server for this agent (TLS or certificate failure, a closed or
    /// reset connection, an HTTP error status).
    pub no_answer: bool,
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// Whether `e` (a transport error's cause chain) means no peer answered: a connect that
/// was refused, timed out or found no route (`ECONNREFUSED`, `ETIMEDOUT`, `EHOSTUNREACH`,
/// `ENETUNREACH`, `ENETDOWN`, `EADDRNOTAVAIL`), or a timeout before any answer. A TLS
/// failure, a reset or closed connection, or anything else is an answer.
pub fn is_no_answer(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind as K;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::TimedOut
                    | K::HostUnreachable
                    | K::NetworkUnreachable
                    | K::NetworkDown
                    | K::AddrNotAvailable
            );
        }
        if err
            .downcast_ref::<reqwest::Error>()
            .is_some_and(|r| r.is_timeout() && r.is_connect())
        {
            return true;
        }
        cur = err.source();
    }
    false
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

pub use cordon_engine::error_chain;

/// The agent's HTTP client on `tls`: never reads proxy settings from the environment,
/// uses `connect.proxy` when given, `connect.timeout` per connection attempt, `timeout`
/// for the whole request (none when `None`; long-polls set their own).
///
/// # Errors
/// [`AgentError::Client`] when the client cannot be built (a malformed proxy URL).
pub fn http_client_with(
    tls: ClientConfig,
    timeout: Option<Duration>,
    connect: &Connect,
) -> Result<reqwest::Client, AgentError> {
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        .connect_timeout(connect.timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(2);
    if let Some(p) = &connect.proxy {
        let proxy = reqwest::Proxy::all(p.as_str()).map_err(cordon_client::ClientError::Build)?;
        b = b.proxy(proxy);
    }
    if let Some(t) = timeout {
        b = b.timeout(t);
    }
    Ok(b.build().map_err(cordon_client::ClientError::Build)?)
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

impl ServerClient {
    /// A client for one server URL, connecting directly.
    ///
    /// # Errors
    /// See [`http_client_with`].
    pub fn new(base: &str, tls: ClientConfig) -> Result<Self, AgentError> {
        Self::with_servers(&[base.to_string()], tls, &Connect::default())
    }

    /// A client for `bases` (tried in order, moving on at each transport failure).
    ///
    /// # Errors
    /// See [`http_client_with`]; [`AgentError::Config`] for an empty list;
    /// [`AgentError::Client`] for a URL that does not parse ([`cordon_client::parse_base`]).
    pub fn with_servers(bases: &[String], tls: ClientConfig, connect: &Connect) -> Result<Self, AgentError> {
        if bases.is_empty() {
            return Err(AgentError::Config("no server URL".into()));
        }
        let bases: Vec<String> = bases.iter().map(|b| b.trim_end_matches('/').to_string()).collect();
        let urls = bases
            .iter()
            .map(|b| cordon_client::parse_base(b))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ServerClient {
            bases: Arc::new(bases),
            urls: Arc::new(urls),
            current: Arc::new(AtomicUsize::new(0)),
            http: http_client_with(tls.clone(), None, connect)?,
            last_peer: Arc::new(Mutex::new(None)),
            last_ok: Arc::new(Mutex::new(None)),
            failed: Arc::new(Notify::new()),
            tls: Arc::new(tls),
            connect: connect.clone(),
            live: Arc::new(AtomicBool::new(false)),
            opening: Arc::new(AsyncMutex::new(())),
        })
    }

    /// Whether the Cordon server of `base` (`https://NAME:PORT`) answers at `addr`: one
    /// authenticated request (`GET /v1/agent/desired?wait=0`) over mutual TLS — the
    /// server's certificate checked against the pinned CA for NAME, this agent's client
    /// certificate accepted — connecting to `addr` directly whatever NAME resolves to.
    /// This is how the agent proves an address a DNS answer gave for its server before
    /// keeping it allowed in a quarantine (trial17 MED-3). Nothing else changes: the
    /// answer is discarded, `last_peer`/`last_ok` are not touched.
    ///
    /// A 401 or 403 answer proves the address too: only a server whose certificate the
    /// pinned CA signed gets as far as an HTTP status, and refusing this agent (revoked,
    /// or unknown to its database) is that server's word about the agent, not about the
    /// address.
    ///
    /// # Errors
    /// [`ProbeError`]: the connection, TLS handshake or request failed, or the server
    /// answered another failing status; [`ProbeError::no_answer`] when nothing answered.
    pub async fn probe(&self, base: &str, addr: SocketAddr) -> Result<(), ProbeError> {
        let fail = |detail: String| ProbeError {
            detail,
            no_answer: false,
        };
        let url = reqwest::Url::parse(base).map_err(|e| fail(format!("bad server URL {base}: {e}")))?;
        let host = url
            .host_str()
            .ok_or_else(|| fail(format!("server URL {base} has no host")))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*self.tls).clone())
            .no_proxy()
            .connect_timeout(self.connect.timeout)
            .timeout(self.connect.timeout + Duration::from_secs(5))
            .resolve(host, addr)
            .build()
            .map_err(|e| fail(format!("cannot build a client: {}", error_chain(&e))))?;
        let resp = http
            .get(cordon_client::build_url(
                &url,
                &["v1", "agent", "desired"],
                &[("wait", Some("0"))],
            ))
            .send()
            .await
            .map_err(|e| ProbeError {
                detail: format!("cannot reach {base} at {addr}: {}", error_chain(&e)),
                no_answer: (e.is_timeout() && e.is_connect()) || is_no_answer(&e),
            })?;
        // 401/403: the server's certificate verified against the pinned CA, so this is the
        // Cordon server; it refuses this agent's identity (revoked, or unknown to a
        // database restored from before the enrollment). Its address is the server's:
        // a refused agent never took its own server out of its rules (trial32).
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED || resp.status() == reqwest::StatusCode::FORBIDDEN {
            return Ok(());
        }
        if !resp.status().is_success() {
            return Err(fail(error_of(resp).await.detail));
        }
        Ok(())
    }

    /// The URL the next call goes to.
    pub fn base(&self) -> String {
        let i = self.current.load(Ordering::Relaxed) % self.bases.len();
        self.bases[i].clone()
    }

    /// The server URL the next call goes to (as [`ServerClient::base`] names it) and the
    /// endpoint `segments` with `query` on it, built by [`cordon_client::build_url`].
    fn endpoint(&self, segments: &[&str], query: &[(&str, Option<&str>)]) -> (String, reqwest::Url) {
        let i = self.current.load(Ordering::Relaxed) % self.bases.len();
        (
            self.bases[i].clone(),
            cordon_client::build_url(&self.urls[i], segments, query),
        )
    }

    /// Peer address of the last successful response.
    pub fn last_peer(&self) -> Option<SocketAddr> {
        *self.last_peer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the last successful response arrived (any call).
    pub fn last_ok(&self) -> Option<Instant> {
        *self.last_ok.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notified at every transport failure.
    pub fn failures(&self) -> Arc<Notify> {
        self.failed.clone()
    }

    /// While no call has got an answer since the start or the last transport failure,
    /// one quick call at a time: the first opens the connection, the next ones wait for it
    /// and share it (HTTP/2). `None` (no waiting) once a connection works.
    async fn opening(&self) -> Option<AsyncMutexGuard<'_, ()>> {
        if self.live.load(Ordering::Relaxed) {
            return None;
        }
        let guard = self.opening.lock().await;
        if self.live.load(Ordering::Relaxed) {
            return None;
        }
        Some(guard)
    }

    fn transport_error(&self, base: &str, e: reqwest::Error) -> CallError {
        self.live.store(false, Ordering::Relaxed);
        // Fail over to the next server URL for the next call (unless a concurrent call
        // already moved on from this one).
        if let Some(i) = self.bases.iter().position(|b| b == base) {
            let next = (i + 1) % self.bases.len();
            let _ = self
                .current
                .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
        }
        self.failed.notify_one();
        CallError {
            detail: format!("cannot reach {base}: {}", error_chain(&e)),
            status: None,
        }
    }

    fn ok(&self, resp: &reqwest::Response) {
        if let Some(a) = resp.remote_addr() {
            *self.last_peer.lock().unwrap_or_else(|p| p.into_inner()) = Some(a);
        }
        *self.last_ok.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// Long-poll for a revision newer than `since`.
    ///
    /// # Errors
    /// [`CallError`] with the server's status, or without one for a transport failure.
    pub async fn desired(&self, since: Option<i64>, wait_secs: u64) -> Result<DesiredState, CallError> {
        let wait = wait_secs.to_string();
        let since = since.map(|s| s.to_string());
        let (base, url) = self.endpoint(
            &["v1", "agent", "desired"],
            &[("wait", Some(&wait)), ("since", since.as_deref())],
        );
        // Without `since` the server answers at once: a quick call, so it may open the
        // connection for the reporter too. A long-poll never holds the others up.
        let opening = match since {
            None => self.opening().await,
            Some(_) => None,
        };
        let resp = self
            .http
            .get(url)
            .timeout(Duration::from_secs(wait_secs) + POLL_MARGIN)
            .send()
            .await
            .map_err(|e| self.transport_error(&base, e))?;
        self.live.store(true, Ordering::Relaxed);
        drop(opening);
        if !resp.status().is_success() {
            return Err(error_of(resp).await);
        }
        self.ok(&resp);
        resp.json().await.map_err(|e| CallError {
            detail: format!("bad desired state: {}", error_chain(&e)),
            status: None,
        })
    }

    /// `POST /v1/agent/status`: an authenticated request over the agent's own connection
    /// (servers, proxy), which is also how the agent verifies a quarantine it applied.
    ///
    /// # Errors
    /// As [`ServerClient::desired`].
    pub async fn report(&self, r: &StatusReport) -> Result<(), CallError> {
        let (base, url) = self.endpoint(&["v1", "agent", "status"], &[]);
        let opening = self.opening().await;
        let resp = self
            .http
            .post(url)
            .timeout(Duration::from_secs(15))
            .json(r)
            .send()
            .await
            .map_err(|e| self.transport_error(&base, e))?;
        self.live.store(true, Ordering::Relaxed);
        drop(opening);
        if !resp.status().is_success() {
            return Err(error_of(resp).await);
        }
        self.ok(&resp);
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    /// Error kind: URLs spliced with `format!`. The agent's endpoints are built by
    /// cordon-client on the parsed server URL: a path prefix is kept, a trailing `/` not
    /// doubled, an absent `since` left out.
    #[test]
    fn agent_endpoints_are_built_on_the_parsed_server_url() {
        let tls = cordon_client::tls::unverified().unwrap();
        let c = ServerClient::new("https://192.0.2.1:8443/cordon/", tls).unwrap();
        let (base, url) = c.endpoint(&["v1", "agent", "desired"], &[("wait", Some("25")), ("since", None)]);
        assert_eq!(base, "https://192.0.2.1:8443/cordon");
        assert_eq!(url.as_str(), "https://192.0.2.1:8443/cordon/v1/agent/desired?wait=25");
        let (_, url) = c.endpoint(&["v1", "agent", "status"], &[]);
        assert_eq!(url.as_str(), "https://192.0.2.1:8443/cordon/v1/agent/status");
        let tls = cordon_client::tls::unverified().unwrap();
        assert!(ServerClient::new("not a url", tls).is_err());
    }
    use super::*;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn refused_timed_out_or_unroutable_is_no_answer_anything_else_is_an_answer() {
        use std::io::{Error, ErrorKind};
        /// A transport error wrapping `cause`, as reqwest and hyper wrap the socket's.
        #[derive(Debug)]
        struct Wrap(Option<Error>);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.0.as_ref().map(|e| e as _)
            }
        }
        for kind in [
            ErrorKind::ConnectionRefused,
            ErrorKind::TimedOut,
            ErrorKind::HostUnreachable,
        ] {
            assert!(is_no_answer(&Wrap(Some(Error::from(kind)))), "{kind:?}");
        }
        for kind in [
            ErrorKind::ConnectionReset,
            ErrorKind::InvalidData,
            ErrorKind::UnexpectedEof,
        ] {
            assert!(
                !is_no_answer(&Wrap(Some(Error::from(kind)))),
                "{kind:?} is an answer (a peer that is not the server)"
            );
        }
        assert!(!is_no_answer(&Wrap(None)), "no cause: an answer of unknown kind");
    }

    #[test]
    fn error_chain_keeps_every_cause_once() {
        let e = E(
            "error sending request for url (https://x/)",
            Some(Box::new(E(
                "client error (Connect)",
                Some(Box::new(E("Connection refused (os error 111)", None))),
            ))),
        );
        assert_eq!(
            error_chain(&e),
            "error sending request for url (https://x/): client error (Connect): Connection refused (os error 111)"
        );
    }
}
