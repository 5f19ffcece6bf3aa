//! Serving the router over rustls. Client certificates are optional at the TLS layer
//! (enrollment and the API use none) but, when presented, must chain to our CA; the
//! host id from a verified certificate is attached to every request on that connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;
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
    /// included). A new one beyond it evicts the oldest that is not serving a request,
    /// so slow clients cannot lock out a legitimate caller; agents are not counted, so
    /// the rest of the descriptor limit stays theirs.
    pub max_unauthenticated: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            agent_header_read_timeout: Duration::from_secs(120),
            max_unauthenticated: 1024,
        }
    }
}

/// The connections without a client certificate, oldest first.
#[derive(Default)]
struct Unauthenticated {
    next: AtomicU64,
    live: Mutex<BTreeMap<u64, Slot>>,
}

struct Slot {
    /// A request is being served on this connection.
    busy: Arc<AtomicBool>,
    evict: Option<oneshot::Sender<()>>,
}

impl Unauthenticated {
    /// Registers a new connection; when `max` are registered, evicts the oldest idle
    /// one first. `None` when all `max` are serving requests (the new one is refused).
    fn admit(&self, max: usize) -> Option<(u64, Arc<AtomicBool>, oneshot::Receiver<()>)> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= max {
            let victim = live
                .iter()
                .find(|(_, s)| !s.busy.load(Ordering::Relaxed))
                .map(|(id, _)| *id)?;
            if let Some(mut slot) = live.remove(&victim) {
                if let Some(tx) = slot.evict.take() {
                    let _ = tx.send(());
                }
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let busy = Arc::new(AtomicBool::new(false));
        let (tx, rx) = oneshot::channel();
        live.insert(
            id,
            Slot {
                busy: busy.clone(),
                evict: Some(tx),
            },
        );
        Some((id, busy, rx))
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
    let acceptor = TlsAcceptor::from(tls);
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
        let Some((id, busy, evicted)) = unauthenticated.admit(limits.max_unauthenticated) else {
            tracing::debug!(%peer, "refused: every unauthenticated slot is serving a request");
            continue;
        };
        let admitted = Admitted {
            id,
            registry: unauthenticated.clone(),
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let limits = limits.clone();
        let mut stop = shutdown.clone();
        conns.spawn(async move {
            tokio::select! {
                _ = connection(acceptor, tcp, peer, app, &limits, admitted, busy) => {}
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

async fn connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: &ConnLimits,
    admitted: Admitted,
    busy: Arc<AtomicBool>,
) {
    let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
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
