//! Serving the router over rustls. Client certificates are optional at the TLS layer
//! (enrollment and the API use none) but, when presented, must chain to our CA; the
//! host id from a verified certificate is attached to every request on that connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_rustls::LazyConfigAcceptor;
use tower::ServiceExt;

use crate::auth::PeerIdentity;
use crate::pki::{common_name, PkiError, CA_CERT, SERVER_CERT, SERVER_KEY};

/// The rustls crypto provider every server TLS config uses (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(path: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, PkiError> {
    let pem = std::fs::read(path).map_err(|source| PkiError::Io {
        what: "read",
        path: path.to_path_buf(),
        source,
    })?;
    <rustls_pki_types::CertificateDer as rustls_pki_types::pem::PemObject>::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PkiError::Pem {
            path: path.to_path_buf(),
            source,
        })
}

fn load_key(path: &Path) -> Result<rustls_pki_types::PrivateKeyDer<'static>, PkiError> {
    let pem = std::fs::read(path).map_err(|source| PkiError::Io {
        what: "read",
        path: path.to_path_buf(),
        source,
    })?;
    <rustls_pki_types::PrivateKeyDer as rustls_pki_types::pem::PemObject>::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            PkiError::Cert(format!("{} holds no private key", path.display()))
        }
        source => PkiError::Pem {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// TLS configuration from the files `cordon server init` wrote into `data_dir`.
pub fn server_config(data_dir: &Path) -> Result<Arc<ServerConfig>, PkiError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(&data_dir.join(CA_CERT))? {
        roots.add(c).map_err(PkiError::Tls)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(PkiError::Verifier)?;
    let chain = load_certs(&data_dir.join(SERVER_CERT))?;
    let key = load_key(&data_dir.join(SERVER_KEY))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(PkiError::Tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(PkiError::Tls)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Connection limits: what keeps slow, idle or half-open clients from holding the
/// server's sockets (and file descriptors) forever.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest wait for a complete request header on a connection without a client
    /// certificate, counted from when the server starts reading it: it bounds a
    /// half-sent header and an idle keep-alive connection alike.
    pub header_read_timeout: Duration,
    /// The same for agents (client certificate): long enough that an agent's idle
    /// reporting connection survives between heartbeats.
    pub agent_header_read_timeout: Duration,
    /// Most connections without a client certificate at once (handshaking ones
    /// included). A new one beyond it evicts the oldest that is not serving a request
    /// and not protected (see `handshake_protect`), so slow clients cannot lock out a
    /// legitimate caller; agents are not counted, so the rest of the descriptor limit
    /// stays theirs. With none to evict, the new connection is closed at once (its
    /// client retries).
    pub max_unauthenticated: usize,
    /// How long a connection whose TLS handshake is under way (its ClientHello arrived)
    /// cannot be evicted. Without it, a reconnect storm of more agents than
    /// `max_unauthenticated` (every agent after a server restart) evicted handshakes
    /// before they could finish, over and over, and almost no agent got through
    /// (issue 15: 1 of 10,000 in 120 s). A client that sends nothing is never protected.
    pub handshake_protect: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            agent_header_read_timeout: Duration::from_secs(120),
            max_unauthenticated: 1024,
            handshake_protect: Duration::from_secs(3),
        }
    }
}

/// The connections without a client certificate, oldest first.
struct Unauthenticated {
    next: AtomicU64,
    live: Mutex<BTreeMap<u64, Slot>>,
    /// Origin of the [`Slot::hello`] times.
    epoch: Instant,
}

impl Default for Unauthenticated {
    fn default() -> Self {
        Unauthenticated {
            next: AtomicU64::new(0),
            live: Mutex::new(BTreeMap::new()),
            epoch: Instant::now(),
        }
    }
}

struct Slot {
    /// A request is being served on this connection.
    busy: Arc<AtomicBool>,
    /// Milliseconds after [`Unauthenticated::epoch`] (plus one) at which the client's
    /// TLS ClientHello arrived; 0 while none has, and again once the handshake is over.
    hello: Arc<AtomicU64>,
    evict: Option<oneshot::Sender<()>>,
}

/// A connection admitted to [`Unauthenticated`]: its id, its busy flag, its
/// ClientHello time and the eviction signal.
type Admission = (u64, Arc<AtomicBool>, Arc<AtomicU64>, oneshot::Receiver<()>);

impl Unauthenticated {
    /// Now, as a [`Slot::hello`] value (never 0).
    fn stamp(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    /// Registers a new connection; when `max` are registered, evicts the oldest one
    /// first that is neither serving a request nor in a TLS handshake that began less
    /// than `protect` ago. `None` when there is no such one (the new one is refused:
    /// handshakes under way finish instead of being cut, and their clients' retries
    /// find room).
    fn admit(&self, max: usize, protect: Duration) -> Option<Admission> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= max {
            let now = self.stamp();
            let protect = u64::try_from(protect.as_millis()).unwrap_or(u64::MAX);
            let victim = live
                .iter()
                .find(|(_, s)| {
                    let hello = s.hello.load(Ordering::Relaxed);
                    let handshaking = hello != 0 && now.saturating_sub(hello) < protect;
                    !s.busy.load(Ordering::Relaxed) && !handshaking
                })
                .map(|(id, _)| *id)?;
            if let Some(mut slot) = live.remove(&victim) {
                if let Some(tx) = slot.evict.take() {
                    let _ = tx.send(());
                }
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let busy = Arc::new(AtomicBool::new(false));
        let hello = Arc::new(AtomicU64::new(0));
        let (tx, rx) = oneshot::channel();
        live.insert(
            id,
            Slot {
                busy: busy.clone(),
                hello: hello.clone(),
                evict: Some(tx),
            },
        );
        Some((id, busy, hello, rx))
    }

    fn leave(&self, id: u64) {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }
}

/// Removes the connection from [`Unauthenticated`] however its task ends.
struct Admitted {
    id: u64,
    registry: Arc<Unauthenticated>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.registry.leave(self.id);
    }
}

/// Accepts connections on `listener` until `shutdown` turns true (or the task is
/// dropped); open connections are closed at shutdown too, and it returns once they are. Default [`ConnLimits`].
pub async fn serve(listener: TcpListener, tls: Arc<ServerConfig>, app: Router, shutdown: watch::Receiver<bool>) {
    serve_with(listener, tls, app, shutdown, ConnLimits::default()).await
}

/// [`serve`] with explicit limits.
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    shutdown: watch::Receiver<bool>,
    limits: ConnLimits,
) {
    let limits = Arc::new(limits);
    let unauthenticated = Arc::new(Unauthenticated::default());
    let mut stop = shutdown.clone();
    // The connections' tasks: at shutdown each ends (the watch) and this returns only
    // once all have, so whoever awaits this task knows no request is still running.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|v| *v) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some((id, busy, hello, evicted)) =
            unauthenticated.admit(limits.max_unauthenticated, limits.handshake_protect)
        else {
            tracing::debug!(%peer, "refused: every unauthenticated slot is serving a request or handshaking");
            continue;
        };
        let admitted = Admitted {
            id,
            registry: unauthenticated.clone(),
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let app = app.clone();
        let limits = limits.clone();
        let mut stop = shutdown.clone();
        conns.spawn(async move {
            tokio::select! {
                _ = connection(tls, tcp, peer, app, &limits, admitted, busy, hello) => {}
                _ = stop.wait_for(|v| *v) => {}
                // A dropped sender means the connection left the registry (an agent, or
                // closed): only a sent value is an eviction.
                _ = async {
                    if evicted.await.is_err() {
                        std::future::pending::<()>().await;
                    }
                } => tracing::debug!(%peer, "evicted: too many unauthenticated connections"),
            }
        });
    }
    while conns.join_next().await.is_some() {}
}

#[allow(clippy::too_many_arguments)] // one connection's parts, all needed
async fn connection(
    config: Arc<ServerConfig>,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: &ConnLimits,
    admitted: Admitted,
    busy: Arc<AtomicBool>,
    hello: Arc<AtomicU64>,
) {
    // The ClientHello first: from then on the handshake is under way and protected
    // from eviction for a while (ConnLimits::handshake_protect).
    let handshake = async {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
        hello.store(admitted.registry.stamp(), Ordering::Relaxed);
        start.into_stream(config).await
    };
    let outcome = tokio::time::timeout(limits.handshake_timeout, handshake).await;
    hello.store(0, Ordering::Relaxed);
    let tls = match outcome {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let identity = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .and_then(|c| common_name(c.as_ref()))
        .map(PeerIdentity);
    let header_timeout = if identity.is_some() {
        // An agent: verified by its certificate, no longer counted as unauthenticated.
        drop(admitted);
        limits.agent_header_read_timeout
    } else {
        limits.header_read_timeout
    };
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // Always set by us: a client cannot inject an identity through HTTP.
        req.extensions_mut().remove::<PeerIdentity>();
        if let Some(id) = &identity {
            req.extensions_mut().insert(id.clone());
        }
        let serving = Busy::new(busy.clone());
        let response = app.clone().oneshot(req.map(axum::body::Body::new));
        async move {
            let r = response.await;
            drop(serving);
            r
        }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Marks a connection busy while one of its requests is being answered.
struct Busy(Arc<AtomicBool>);

impl Busy {
    fn new(flag: Arc<AtomicBool>) -> Self {
        flag.store(true, Ordering::Relaxed);
        Busy(flag)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod storm_tests {
    use super::*;

    /// Issue 15, the fault kind "a reconnect storm evicts handshakes under way": with
    /// the unauthenticated cap full of connections whose TLS handshake has begun, a new
    /// connection is refused instead of cutting one of them (before, the oldest was
    /// evicted, so with 10,000 agents reconnecting at once almost none finished); a
    /// connection that sent nothing yet, or whose handshake began longer ago than the
    /// protection, is still evicted first (the slow-client defence).
    #[test]
    fn a_reconnect_storm_never_cuts_a_handshake_under_way() {
        let reg = Unauthenticated::default();
        let protect = Duration::from_secs(60);
        let mut handshaking = Vec::new();
        for _ in 0..3 {
            let (_, _, hello, rx) = reg.admit(3, protect).unwrap();
            hello.store(reg.stamp(), Ordering::Relaxed);
            handshaking.push(rx);
        }
        assert!(
            reg.admit(3, protect).is_none(),
            "a newcomer must not cut a handshake under way"
        );
        for rx in &mut handshaking {
            assert!(rx.try_recv().is_err(), "a handshake under way was evicted");
        }
        // One handshake over (an API client idle on HTTP now): that one makes room.
        let first = reg.live.lock().unwrap().values().next().unwrap().hello.clone();
        first.store(0, Ordering::Relaxed);
        let (_, _, _, mut silent) = reg.admit(3, protect).unwrap();
        assert!(handshaking[0].try_recv().is_ok(), "the idle one is evicted");
        assert!(handshaking[1].try_recv().is_err() && handshaking[2].try_recv().is_err());
        // A silent connection (no ClientHello) is evicted before protected handshakes.
        let _ = reg.admit(3, protect).unwrap();
        assert!(silent.try_recv().is_ok(), "a client that sent nothing is not protected");
        // Protection ends: a handshake older than it counts as stalled.
        assert!(reg.admit(3, Duration::ZERO).is_some());
        assert!(
            handshaking[1].try_recv().is_ok(),
            "a stalled handshake is evicted after the protection"
        );
    }
}
