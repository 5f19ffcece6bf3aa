//! rustls client configurations (design §5): mutual TLS pinned to the server's CA, server
//! authentication only (API clients, enrollment), and the one-off unverified fetch of the
//! CA at enrollment (accepted only if its fingerprint matches the one the operator gave).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use thiserror::Error;

/// Why a TLS client configuration could not be built.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        #[source]
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The certificate PEM is malformed.
    #[error("bad certificate PEM")]
    CertPem(#[source] rustls::pki_types::pem::Error),
    /// The PEM holds no certificate.
    #[error("no certificate in PEM")]
    NoCertificate,
    /// The key PEM is malformed.
    #[error("bad key PEM")]
    KeyPem(#[source] rustls::pki_types::pem::Error),
    /// The PEM holds no private key.
    #[error("no private key in PEM")]
    NoKey,
    /// rustls refused the CA certificate, the protocol versions or the client certificate;
    /// `what` names the step.
    #[error("{what}")]
    Rustls {
        /// The step that failed.
        what: &'static str,
        #[source]
        /// rustls's error.
        source: rustls::Error,
    },
}

/// The crypto provider every Cordon TLS configuration uses (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in `pem` (at least one).
///
/// # Errors
/// [`TlsError::CertPem`] for malformed PEM, [`TlsError::NoCertificate`] when there is none.
pub fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::CertPem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

/// The first private key in `pem` (PKCS#8, PKCS#1 or SEC1).
///
/// # Errors
/// [`TlsError::KeyPem`] for malformed PEM, [`TlsError::NoKey`] when there is none.
pub fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey,
        e => TlsError::KeyPem(e),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn base(ca_pem: &[u8]) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in parse_certs(ca_pem)? {
        roots.add(c).map_err(|source| TlsError::Rustls {
            what: "the CA certificate is not usable as a trust anchor",
            source,
        })?;
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "no safe TLS protocol version",
            source,
        })?
        .with_root_certificates(roots))
}

/// Trusts only `ca_pem` (PEM, one or more certificates); presents no client certificate
/// (enrollment, API clients).
///
/// # Errors
/// A [`TlsError`] when the PEM holds no usable certificate.
pub fn server_auth_only(ca_pem: &[u8]) -> Result<ClientConfig, TlsError> {
    Ok(base(ca_pem)?.with_no_client_auth())
}

/// Mutual TLS from PEM bytes: trusts only `ca_pem`, presents `cert_pem` with `key_pem`.
/// Offers HTTP/2 first (ALPN `h2`, then `http/1.1`): an agent's long-poll and its status
/// reports then share one connection to a server that speaks HTTP/2, and a server that
/// does not answers on HTTP/1.1 as before.
///
/// # Errors
/// A [`TlsError`] for unusable PEM or a key that does not fit the certificate.
pub fn mutual(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<ClientConfig, TlsError> {
    let mut cfg = base(ca_pem)?
        .with_client_auth_cert(parse_certs(cert_pem)?, parse_key(key_pem)?)
        .map_err(|source| TlsError::Rustls {
            what: "client certificate",
            source,
        })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Mutual TLS from PEM files (see [`mutual`]).
///
/// # Errors
/// [`TlsError::Read`] when a file cannot be read, otherwise as [`mutual`].
pub fn mutual_from_files(ca: &Path, cert: &Path, key: &Path) -> Result<ClientConfig, TlsError> {
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

/// A configuration that accepts any server certificate: only for fetching the CA at
/// enrollment, whose fingerprint the caller must then compare with the operator's.
///
/// # Errors
/// [`TlsError::Rustls`] if the provider offers no safe protocol version.
pub fn unverified() -> Result<ClientConfig, TlsError> {
    let p = provider();
    Ok(ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            what: "no safe TLS protocol version",
            source,
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(p)))
        .with_no_client_auth())
}

/// SHA-256 of a DER certificate, lowercase hex (same as the server prints), and the
/// normalisation of a fingerprint the operator gives.
pub use cordon_proto::fingerprint::{fingerprint_der as fingerprint, normalize_fingerprint};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // A syntactically valid PEM block whose content is not a certificate or key: what a
    // wrong file (or a truncated copy) looks like.
    const NOT_A_KEY: &str = "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n";

    #[test]
    fn pem_errors_name_what_is_missing_or_malformed() {
        assert!(matches!(parse_certs(b"no pem here\n"), Err(TlsError::NoCertificate)));
        assert!(matches!(parse_key(b"no pem here\n"), Err(TlsError::NoKey)));
        assert!(matches!(parse_key(NOT_A_KEY.as_bytes()), Err(TlsError::KeyPem(_))));
        let cert_only = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(parse_key(cert_only.as_bytes()), Err(TlsError::NoKey)));
        assert_eq!(parse_certs(cert_only.as_bytes()).unwrap().len(), 1);
    }
}
