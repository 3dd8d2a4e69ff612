use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A self-signed certificate for the provider; clients trust `cert_pem` / `der` as their CA.
#[derive(Clone, Debug)]
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    key_der: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("no PEM certificate in {0}; expected a -----BEGIN CERTIFICATE----- block")]
    NoCert(String),
    #[error("no PKCS#8 PEM key in {0}; expected a -----BEGIN PRIVATE KEY----- block")]
    NoKey(String),
}

impl TestCert {
    /// A fresh self-signed certificate for `names` (DNS names or IP addresses).
    pub fn generate<S: AsRef<str>>(names: &[S]) -> TestCert {
        let names: Vec<String> = names.iter().map(|n| n.as_ref().to_string()).collect();
        let certified = rcgen::generate_simple_self_signed(names)
            .expect("rcgen generates a self-signed certificate for valid names");
        TestCert {
            cert_pem: certified.cert.pem(),
            key_pem: certified.signing_key.serialize_pem(),
            der: certified.cert.der().to_vec(),
            key_der: certified.signing_key.serialize_der(),
        }
    }

    /// Loads a certificate and its PKCS#8 key from PEM files.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TestCert, CertError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| CertError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let cert_pem = read(cert)?;
        let key_pem = read(key)?;
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|_| CertError::NoCert(cert.display().to_string()))?
            .to_vec();
        let key_der = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|_| CertError::NoKey(key.display().to_string()))?
            .secret_pkcs8_der()
            .to_vec();
        Ok(TestCert {
            cert_pem,
            key_pem,
            der,
            key_der,
        })
    }

    /// Writes the certificate as PEM (what a client's `tls_ca` points at).
    pub fn write_cert_pem(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, &self.cert_pem)
    }

    /// Writes the private key as PEM.
    pub fn write_key_pem(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, &self.key_pem)
    }

    pub fn cert_der(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.der.clone())
    }

    /// A root store that trusts only this certificate, for test clients.
    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        // A certificate rcgen just produced always parses.
        let _ = roots.add(self.cert_der());
        roots
    }

    /// A client config (ring provider) that trusts only this certificate.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, rustls::Error> {
        Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(self.root_store())
        .with_no_client_auth())
    }

    pub(super) fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, rustls::Error> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![self.cert_der()], key)?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}
