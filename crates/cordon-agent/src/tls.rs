//! rustls client configurations: mutual TLS pinned to the server's CA, and the one-off
//! unverified fetch of the CA at enrollment (accepted only if its fingerprint matches).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::AgentError;

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, AgentError> {
    let certs = rustls_pemfile::certs(&mut &*pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AgentError::Tls(format!("bad certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(AgentError::Tls("no certificate in PEM".into()));
    }
    Ok(certs)
}

pub fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, AgentError> {
    rustls_pemfile::private_key(&mut &*pem)
        .map_err(|e| AgentError::Tls(format!("bad key PEM: {e}")))?
        .ok_or_else(|| AgentError::Tls("no private key in PEM".into()))
}

fn read(path: &Path) -> Result<Vec<u8>, AgentError> {
    std::fs::read(path).map_err(|e| AgentError::Io(format!("cannot read {}: {e}", path.display())))
}

fn base(ca_pem: &[u8]) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, AgentError> {
    let mut roots = RootCertStore::empty();
    for c in parse_certs(ca_pem)? {
        roots.add(c).map_err(|e| AgentError::Tls(e.to_string()))?;
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| AgentError::Tls(e.to_string()))?
        .with_root_certificates(roots))
}

/// Trusts only `ca_pem`; presents no client certificate (enrollment, API clients).
pub fn server_auth_only(ca_pem: &[u8]) -> Result<ClientConfig, AgentError> {
    Ok(base(ca_pem)?.with_no_client_auth())
}

/// Mutual TLS from PEM bytes.
pub fn mutual(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<ClientConfig, AgentError> {
    base(ca_pem)?
        .with_client_auth_cert(parse_certs(cert_pem)?, parse_key(key_pem)?)
        .map_err(|e| AgentError::Tls(format!("client certificate: {e}")))
}

/// Mutual TLS from files.
pub fn mutual_from_files(ca: &Path, cert: &Path, key: &Path) -> Result<ClientConfig, AgentError> {
    mutual(&read(ca)?, &read(cert)?, &read(key)?)
}

/// Accepts any server certificate. Used only to download the CA at enrollment, whose
/// fingerprint is then compared with the one the operator gave.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub fn unverified() -> Result<ClientConfig, AgentError> {
    let p = provider();
    Ok(ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| AgentError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(p)))
        .with_no_client_auth())
}

/// SHA-256 of a DER certificate, lowercase hex (same as the server prints), and the
/// normalisation of a fingerprint the operator gives.
pub use cordon_proto::fingerprint::{fingerprint_der as fingerprint, normalize_fingerprint};
