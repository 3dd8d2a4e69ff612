//! A throwaway PKI for TLS tests: one CA and one server certificate signed by it.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use super::error::{HarnessError, IoContext, Result};

/// A CA and a server certificate for `names` (PEM strings).
#[derive(Clone, Debug)]
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

fn tls_err(e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Other(format!("certificate generation: {e}"))
}

impl TestPki {
    /// A fresh CA and a server certificate valid for the DNS names / IP addresses in `names`.
    pub fn new(names: &[&str]) -> Result<Self> {
        let ca_key = KeyPair::generate().map_err(tls_err)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Postern test CA");
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().map_err(tls_err)?;
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_string()).collect::<Vec<_>>())
                .map_err(tls_err)?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        let cert = params.signed_by(&key, &issuer).map_err(tls_err)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes `ca.pem`, `cert.pem` and `key.pem` into `dir` (mode 0644, so that daemons that drop
    /// privileges can read them).
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for (name, text) in [
            ("ca.pem", &self.ca_pem),
            ("cert.pem", &self.cert_pem),
            ("key.pem", &self.key_pem),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).context(|| format!("write {}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                .context(|| format!("chmod {}", path.display()))?;
        }
        Ok(())
    }
}

/// A rustls client config (ring provider) that trusts only `ca_pem`.
pub fn client_config(ca_pem: &str) -> Result<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| HarnessError::Other(format!("CA PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| HarnessError::Other(format!("CA certificate: {e}")))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HarnessError::Other(format!("TLS versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A self-signed certificate made the way users make one: `openssl req -x509 -newkey …`, which
/// marks it `CA:TRUE` (Debian's openssl.cnf, v3_ca). Files `cert.pem` and `key.pem` in `dir`.
#[derive(Clone, Debug)]
pub struct OpensslSelfSigned {
    pub cert_path: std::path::PathBuf,
    pub key_path: std::path::PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

impl OpensslSelfSigned {
    /// `openssl req -x509` for the IP address `ip` (CN and subjectAltName), EC P-256, 30 days.
    pub fn create(dir: &Path, ip: &str) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        let mut cmd = std::process::Command::new("openssl");
        cmd.args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            &format!("/CN={ip}"),
            "-addext",
            &format!("subjectAltName=IP:{ip}"),
            "-keyout",
        ])
        .arg(&key_path)
        .arg("-out")
        .arg(&cert_path);
        super::process::run(&mut cmd, std::time::Duration::from_secs(30))?;
        // Readable by daemons that drop privileges (Postfix's smtpd reads it as root anyway).
        for path in [&cert_path, &key_path] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
                .context(|| format!("chmod {}", path.display()))?;
        }
        let text = openssl_text(&cert_path)?;
        if !text.contains("CA:TRUE") {
            return Err(HarnessError::Other(format!(
                "openssl req -x509 did not mark the certificate CA:TRUE here:\n{text}"
            )));
        }
        Ok(Self {
            cert_pem: std::fs::read_to_string(&cert_path)
                .context(|| format!("read {}", cert_path.display()))?,
            key_pem: std::fs::read_to_string(&key_path)
                .context(|| format!("read {}", key_path.display()))?,
            cert_path,
            key_path,
        })
    }

    /// The SHA-256 fingerprint as openssl prints it, e.g. `AB:CD:…` (uppercase, colons).
    pub fn sha256_fingerprint(&self) -> Result<String> {
        openssl_sha256_fingerprint(&self.cert_path)
    }
}

fn openssl_text(cert: &Path) -> Result<String> {
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["x509", "-noout", "-text", "-in"]).arg(cert);
    let out = super::process::run(&mut cmd, std::time::Duration::from_secs(30))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `openssl x509 -fingerprint -sha256` of a PEM file: `AB:CD:…` (uppercase, colons).
pub fn openssl_sha256_fingerprint(cert: &Path) -> Result<String> {
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert);
    let out = super::process::run(&mut cmd, std::time::Duration::from_secs(30))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .split_once('=')
        .map(|(_, fp)| fp.trim().to_ascii_uppercase())
        .ok_or_else(|| HarnessError::Other(format!("unexpected openssl output: {text}")))
}
