//! Serving the router over rustls. Client certificates are optional at the TLS layer
//! (enrollment and the API use none) but, when presented, must chain to our CA; the
//! host id from a verified certificate is attached to every request on that connection.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::PeerIdentity;
use crate::pki::{common_name, PkiError, CA_CERT, SERVER_CERT, SERVER_KEY};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(path: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, PkiError> {
    let pem = std::fs::read(path).map_err(|e| PkiError::Io(format!("cannot read {}: {e}", path.display())))?;
    rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Cert(format!("{}: {e}", path.display())))
}

fn load_key(path: &Path) -> Result<rustls_pki_types::PrivateKeyDer<'static>, PkiError> {
    let pem = std::fs::read(path).map_err(|e| PkiError::Io(format!("cannot read {}: {e}", path.display())))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| PkiError::Cert(format!("{}: {e}", path.display())))?
        .ok_or_else(|| PkiError::Cert(format!("{} holds no private key", path.display())))
}

/// TLS configuration from the files `cordon server init` wrote into `data_dir`.
pub fn server_config(data_dir: &Path) -> Result<Arc<ServerConfig>, PkiError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(&data_dir.join(CA_CERT))? {
        roots.add(c).map_err(|e| PkiError::Cert(e.to_string()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| PkiError::Cert(e.to_string()))?;
    let chain = load_certs(&data_dir.join(SERVER_CERT))?;
    let key = load_key(&data_dir.join(SERVER_KEY))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Cert(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| PkiError::Cert(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Accepts connections on `listener` until `shutdown` turns true (or the task is
/// dropped); open connections are closed at shutdown too.
pub async fn serve(listener: TcpListener, tls: Arc<ServerConfig>, app: Router, shutdown: watch::Receiver<bool>) {
    let acceptor = TlsAcceptor::from(tls);
    let mut stop = shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|v| *v) => return,
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
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = connection(acceptor, tcp, peer, app) => {}
                _ = stop.wait_for(|v| *v) => {}
            }
        });
    }
}

async fn connection(acceptor: TlsAcceptor, tcp: tokio::net::TcpStream, peer: SocketAddr, app: Router) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
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
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // Always set by us: a client cannot inject an identity through HTTP.
        req.extensions_mut().remove::<PeerIdentity>();
        if let Some(id) = &identity {
            req.extensions_mut().insert(id.clone());
        }
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
