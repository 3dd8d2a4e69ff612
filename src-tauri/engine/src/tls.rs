//! TLS client settings for every outgoing connection (queuing servers, the office server,
//! the smarthost): rustls with the ring provider only.
//!
//! A server certificate is trusted through the OS store (rustls-platform-verifier), plus an
//! extra trust anchor from `tls_ca`, or — replacing chain validation — a pinned SHA-256
//! fingerprint of the server's certificate, so an ISP with a self-signed certificate works
//! without turning verification off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::config::Fingerprint;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error(
        "cannot read the CA file {path}: {detail}. Fix tls_ca: it must be a PEM file with the ISP's CA or server certificate"
    )]
    CaFile { path: PathBuf, detail: String },
    #[error(
        "the CA file {path} holds no PEM certificate. Fix tls_ca: export the certificate in PEM form (-----BEGIN CERTIFICATE-----)"
    )]
    CaEmpty { path: PathBuf },
    #[error("cannot set up certificate verification: {0}")]
    Verifier(String),
}

/// Which certificates a connection trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustPolicy {
    pub ca_file: Option<PathBuf>,
    pub fingerprint: Option<Fingerprint>,
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate a server showed in the last handshake, kept so that a verification failure
/// can name its fingerprint (and the `tls_fingerprint` line that would pin it).
#[derive(Debug, Clone, Default)]
pub struct SeenCertificate(Arc<std::sync::Mutex<Option<Fingerprint>>>);

impl SeenCertificate {
    pub fn get(&self) -> Option<Fingerprint> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn set(&self, fp: Fingerprint) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(fp);
    }
}

/// Builds the client configuration for `policy`; `seen` records the server's certificate.
pub fn client_config(
    policy: &TrustPolicy,
    seen: &SeenCertificate,
) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = provider();
    let check: Check = match (&policy.fingerprint, &policy.ca_file) {
        (Some(pin), _) => Check::Pins(vec![*pin]),
        (None, Some(path)) => {
            let extra = load_pem_certificates(path)?;
            // A certificate in tls_ca that is the server's own is a pin: self-signed
            // certificates made with `openssl req -x509` are marked CA:TRUE, and webpki
            // refuses a CA certificate as the end entity (CaUsedAsEndEntity).
            let pins = extra.iter().map(|c| fingerprint_of(c.as_ref())).collect();
            let chain =
                rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
                    .map_err(|e| TlsSetupError::Verifier(e.to_string()))?;
            Check::PinsOrChain(pins, Arc::new(chain))
        }
        (None, None) => Check::Chain(Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| TlsSetupError::Verifier(e.to_string()))?,
        )),
    };
    let verifier = Arc::new(Verifier {
        check,
        provider: provider.clone(),
        seen: seen.clone(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Verifier(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// What "trusted" means for one connection.
#[derive(Debug)]
enum Check {
    /// Exactly these certificates, whatever their chain, names or dates: the admin pinned them.
    Pins(Vec<Fingerprint>),
    /// A pinned certificate, or else a valid chain to the OS store or an extra root.
    PinsOrChain(Vec<Fingerprint>, Arc<dyn ServerCertVerifier>),
    /// A valid chain to the OS store.
    Chain(Arc<dyn ServerCertVerifier>),
}

fn load_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsSetupError::CaFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsSetupError::CaFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::CaEmpty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// SHA-256 of a DER certificate, as shown to users and accepted by `tls_fingerprint`.
pub fn fingerprint_of(der: &[u8]) -> Fingerprint {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    Fingerprint(out)
}

/// Records the server's certificate, then applies the [`Check`]. Handshake signatures are
/// always verified, so the peer must hold the certificate's key.
#[derive(Debug)]
struct Verifier {
    check: Check,
    provider: Arc<CryptoProvider>,
    seen: SeenCertificate,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = fingerprint_of(end_entity.as_ref());
        self.seen.set(seen);
        let chain = match &self.check {
            Check::Pins(pins) => {
                return if pins.contains(&seen) {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(
                        "the server's certificate does not match the pinned tls_fingerprint".into(),
                    ))
                };
            }
            Check::PinsOrChain(pins, _) if pins.contains(&seen) => {
                return Ok(ServerCertVerified::assertion());
            }
            Check::PinsOrChain(_, chain) | Check::Chain(chain) => chain,
        };
        chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
