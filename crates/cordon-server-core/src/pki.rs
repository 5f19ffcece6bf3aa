//! The server's certificate authority (rcgen): created by `cordon server init`, signs the
//! server certificate and, at enrollment, one client certificate per host whose common
//! name is the host id.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use cordon_proto::audit_chain::SignedCheckpoint;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use thiserror::Error;
use time::{Duration, OffsetDateTime};

/// File name (in the server directory) of the CA certificate, PEM; agents and analysts pin it.
pub const CA_CERT: &str = "ca.pem";
/// File name of the CA private key, PEM (0600): signs client certificates and audit checkpoints.
pub const CA_KEY: &str = "ca.key";
/// File name of the server's TLS certificate, PEM, signed by the CA.
pub const SERVER_CERT: &str = "server.pem";
/// File name of the server's TLS private key, PEM (0600).
pub const SERVER_KEY: &str = "server.key";

const CA_CN: &str = "Cordon CA";
/// Client certificates are valid this long; revocation is by host id, checked per request.
const CLIENT_CERT_DAYS: i64 = 5 * 365;

#[derive(Debug, Error)]
/// Why a PKI operation failed. Each variant keeps its cause as `#[source]`: print the
/// chain (`{:#}` of anyhow, [`crate::error::chain`]) to show it.
pub enum PkiError {
    /// Reading or writing a key or certificate file (or the data directory) failed.
    #[error("cannot {what} {}", path.display())]
    Io {
        /// The operation: `read`, `write`, `create`, `chmod`, `sync`.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// rcgen could not parse, generate or sign a key or certificate.
    #[error("certificate")]
    Rcgen(#[source] rcgen::Error),
    /// An agent's certificate signing request does not parse.
    #[error("certificate: bad certificate signing request")]
    Csr(#[source] rcgen::Error),
    /// A PEM file (`path`) does not parse as certificates or a private key.
    #[error("certificate: {}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// The PEM parser's error.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// rustls refused the certificates or key for the server's TLS configuration.
    #[error("certificate")]
    Tls(#[source] rustls::Error),
    /// rustls could not build the client-certificate verifier from the CA.
    #[error("certificate")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    /// ring refused the CA key for signing audit checkpoints (ring's `KeyRejected` is
    /// no `std::error::Error` without ring's `std` feature, so it is shown, not chained).
    #[error("certificate: CA key unusable for signing: {0}")]
    SigningKey(ring::error::KeyRejected),
    /// A key or certificate is unusable for a reason without a further cause (the
    /// message says which).
    #[error("certificate: {0}")]
    Cert(String),
    #[error("{0}")]
    /// `init` would overwrite existing files (named in the message).
    Exists(String),
}

impl PkiError {
    /// The [`PkiError::Io`] of `what` on `path`, for `map_err`.
    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PkiError {
        let path = path.to_path_buf();
        move |source| PkiError::Io { what, path, source }
    }
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Rcgen(e)
    }
}

/// A loaded CA able to sign client certificates.
pub struct Ca {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    /// The same certificate, DER.
    pub cert_der: Vec<u8>,
    /// Re-created from the stored PEM with the stored key, so signatures chain to it.
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("fingerprint", &self.fingerprint()).finish()
    }
}

/// What `init` created.
#[derive(Debug, Clone)]
pub struct InitOutcome {
    /// The new CA certificate's SHA-256 fingerprint (see [`fingerprint_der`]).
    pub ca_fingerprint: String,
    /// Every file written.
    pub files: Vec<PathBuf>,
}

pub use cordon_proto::fingerprint::{fingerprint_der, normalize_fingerprint};

/// Creates the server's data directory (CA key, database) 0700, and tightens an existing
/// one to 0700: only the server's user may enter it.
pub fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        b.mode(0o700);
        b.create(dir).map_err(PkiError::io("create", dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(PkiError::io("chmod", dir))?;
    }
    #[cfg(not(unix))]
    b.create(dir).map_err(PkiError::io("create", dir))?;
    Ok(())
}

/// Writes `content` to `path` readable by the owner only.
pub fn write_private(path: &Path, content: &str) -> Result<(), PkiError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(PkiError::io("write", path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The file may have existed with wider permissions.
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(PkiError::io("chmod", path))?;
    }
    f.write_all(content.as_bytes()).map_err(PkiError::io("write", path))?;
    f.sync_all().map_err(PkiError::io("sync", path))
}

fn write_public(path: &Path, content: &str) -> Result<(), PkiError> {
    fs::write(path, content).map_err(PkiError::io("write", path))
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(PkiError::io("read", path))
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

/// Creates the CA and the server certificate in `dir` (SANs: `names` and `ips`). Refuses
/// to overwrite an existing CA key.
pub fn init(dir: &Path, names: &[String], ips: &[IpAddr]) -> Result<InitOutcome, PkiError> {
    create_private_dir(dir)?;
    let ca_key_path = dir.join(CA_KEY);
    if ca_key_path.exists() {
        return Err(PkiError::Exists(format!(
            "{} already exists: this data directory is initialised (remove it to start over)",
            ca_key_path.display()
        )));
    }
    if names.is_empty() && ips.is_empty() {
        return Err(PkiError::Cert("give the server's --name and/or --ip".into()));
    }

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_CN);
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca_params, 20 * 365);
    let ca_cert = ca_params.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut sp = CertificateParams::new(names.to_vec())?;
    for ip in ips {
        sp.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    let mut sdn = DistinguishedName::new();
    sdn.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_else(|| "cordon-server".into()),
    );
    sp.distinguished_name = sdn;
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    sp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut sp, 5 * 365);
    let server_cert = sp.signed_by(&server_key, &ca_cert, &ca_key)?;

    let files = vec![
        dir.join(CA_CERT),
        ca_key_path.clone(),
        dir.join(SERVER_CERT),
        dir.join(SERVER_KEY),
    ];
    write_public(&files[0], &ca_cert.pem())?;
    write_private(&files[1], &ca_key.serialize_pem())?;
    write_public(&files[2], &server_cert.pem())?;
    write_private(&files[3], &server_key.serialize_pem())?;
    Ok(InitOutcome {
        ca_fingerprint: fingerprint_der(ca_cert.der()),
        files,
    })
}

impl Ca {
    /// Signs the audit chain head `(last_id, hash)` with the CA key, now (issue 17): a
    /// version-1 checkpoint (retention cuts); see [`Ca::sign`] for checkpoint records
    /// and export trailers (which carry an occasion: version 2 and 3).
    ///
    /// # Errors
    /// As [`Ca::sign`].
    pub fn sign_checkpoint(&self, last_id: i64, hash: &str) -> Result<SignedCheckpoint, PkiError> {
        self.sign(SignedCheckpoint {
            last_id,
            hash: hash.to_string(),
            ..Default::default()
        })
    }

    /// Signs `cp` (its `last_id`, `hash` and version-2 fields as given; `at`, `key` and
    /// `signature` are set here) with the CA key, now: the signature covers
    /// [`SignedCheckpoint::signed_message`] and is checked with the CA certificate
    /// ([`cordon_proto::audit_chain::signature::CaCert`]).
    ///
    /// # Errors
    /// `Cert` for a CA key type other than ECDSA P-256/P-384 (what `init` makes), or a
    /// failed signature.
    pub fn sign(&self, mut cp: SignedCheckpoint) -> Result<SignedCheckpoint, PkiError> {
        use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING};
        let alg = if self.key.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256 {
            &ECDSA_P256_SHA256_ASN1_SIGNING
        } else if self.key.algorithm() == &rcgen::PKCS_ECDSA_P384_SHA384 {
            &ECDSA_P384_SHA384_ASN1_SIGNING
        } else {
            return Err(PkiError::Cert(
                "the CA key is not ECDSA P-256 or P-384: audit checkpoints cannot be signed".into(),
            ));
        };
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(alg, &self.key.serialize_der(), &rng).map_err(PkiError::SigningKey)?;
        cp.key = self.fingerprint();
        cp.at = crate::timefmt::to_rfc3339(crate::timefmt::now_ms());
        let sig = pair
            .sign(&rng, &cp.signed_message())
            .map_err(|_| PkiError::Cert("signing the audit checkpoint failed".into()))?;
        cp.signature = hex::encode(sig.as_ref());
        Ok(cp)
    }

    /// The deployment's audit record-mark key (see `store::Marker`): HKDF-SHA256 of the
    /// CA private key (PKCS#8 DER) with a fixed salt and info string, as an HMAC-SHA256
    /// key. Every server of the deployment has the CA key and derives the same key; a
    /// database-only attacker cannot.
    ///
    /// # Errors
    /// `Cert` when the derivation fails (it cannot for a 32-byte output).
    pub fn audit_mark_key(&self) -> Result<ring::hmac::Key, PkiError> {
        let der = self.key.serialize_der();
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"cordon-audit-mark-salt-v1").extract(&der);
        let okm = prk
            .expand(&[b"cordon audit record mark v1"], ring::hmac::HMAC_SHA256)
            .map_err(|_| PkiError::Cert("cannot derive the audit mark key from the CA key".into()))?;
        Ok(ring::hmac::Key::from(okm))
    }

    /// The CA certificate as a checker of checkpoint signatures.
    pub fn checkpoint_checker(&self) -> cordon_proto::audit_chain::SignatureCheck {
        cordon_proto::audit_chain::signature::CaCert::from_der(&self.cert_der).checker()
    }

    /// Loads the CA from `dir` ([`CA_CERT`], [`CA_KEY`]); fails naming the file that is missing or unreadable.
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let cert_pem = read(&dir.join(CA_CERT))?;
        let key = KeyPair::from_pem(&read(&dir.join(CA_KEY))?)?;
        let der =
            <rustls_pki_types::CertificateDer as rustls_pki_types::pem::PemObject>::pem_slice_iter(cert_pem.as_bytes())
                .next()
                .ok_or_else(|| PkiError::Cert(format!("{} holds no certificate", dir.join(CA_CERT).display())))?
                .map_err(|source| PkiError::Pem {
                    path: dir.join(CA_CERT),
                    source,
                })?;
        let params = CertificateParams::from_ca_cert_pem(&cert_pem)?;
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem,
            cert_der: der.to_vec(),
            cert,
            key,
        })
    }

    /// The CA certificate's SHA-256 fingerprint (see [`fingerprint_der`]).
    pub fn fingerprint(&self) -> String {
        fingerprint_der(&self.cert_der)
    }

    /// Signs `csr_pem` as the client certificate of `host_id` (its common name). The
    /// subject and extensions asked for in the CSR are ignored.
    pub fn sign_client(&self, csr_pem: &str, host_id: &str) -> Result<String, PkiError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(PkiError::Csr)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host_id);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        validity(&mut params, CLIENT_CERT_DAYS);
        csr.params = params;
        let cert = csr.signed_by(&self.cert, &self.key)?;
        Ok(cert.pem())
    }
}

/// The common name of a DER certificate (the host id for client certificates).
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    Some(cn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fault kind: a PKI error that keeps only the text of its cause (the I/O error,
    /// the parser's error), so the cause cannot be told apart by code and the chain ends
    /// at a string. The printed chain stays `cannot read FILE: OS error`.
    #[test]
    fn pki_errors_keep_their_cause_as_source() {
        let dir = tempfile::tempdir().unwrap();
        let e = Ca::load(dir.path()).unwrap_err();
        let PkiError::Io { what, path, source } = &e else {
            panic!("{e:?}");
        };
        assert_eq!((*what, path.as_path()), ("read", dir.path().join(CA_CERT).as_path()));
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        let chain = crate::error::chain(&e);
        assert!(
            chain.starts_with(&format!("cannot read {}: ", dir.path().join(CA_CERT).display())),
            "{chain}"
        );

        let out = init(dir.path(), &["cordon.example".into()], &[]).unwrap();
        assert!(!out.ca_fingerprint.is_empty());
        let ca = Ca::load(dir.path()).unwrap();
        let e = ca.sign_client("not a CSR", "host-1").unwrap_err();
        assert!(matches!(e, PkiError::Csr(_)), "{e:?}");
        let chain = crate::error::chain(&e);
        assert!(
            chain.starts_with("certificate: bad certificate signing request: "),
            "{chain}"
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
