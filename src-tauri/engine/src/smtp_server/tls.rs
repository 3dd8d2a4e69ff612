//! The inbound listener's STARTTLS certificate: the admin's (`[inbound] tls_cert` / `tls_key`),
//! or a self-signed pair that Postern makes at first start and keeps in the state folder.
//!
//! A queuing server delivering with opportunistic TLS (Postfix's `smtp_tls_security_level =
//! may`) does not verify the certificate, so a self-signed one encrypts the mail on its way
//! across the internet without any set-up; a real certificate is only needed for peers that
//! verify (DANE, MTA-STS).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum InboundTlsError {
    #[error(
        "cannot read the inbound TLS {what} {path}: {detail}. Fix [inbound] tls_cert / tls_key \
         (PEM files), or remove both lines for a self-signed certificate"
    )]
    Read {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "the inbound TLS certificate {cert} and key {key} do not go together: {detail}. Fix \
         [inbound] tls_cert / tls_key"
    )]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
    #[error(
        "cannot create the self-signed inbound certificate in {dir}: {detail}. Check that the \
         state folder is writable, or set state_dir in postern.toml"
    )]
    Create { dir: PathBuf, detail: String },
}

/// The certificate and key files for the inbound listener: configured, or made now.
pub fn certificate_files(config: &Config) -> Result<(PathBuf, PathBuf), InboundTlsError> {
    if let (Some(cert), Some(key)) = (&config.inbound.tls_cert, &config.inbound.tls_key) {
        return Ok((cert.clone(), key.clone()));
    }
    let dir = config.state_dir.join("tls");
    let pair = dir.join(SELF_SIGNED);
    if !pair.is_file() {
        make_self_signed(&dir, &config.inbound.hostname).map_err(|detail| {
            InboundTlsError::Create {
                dir: dir.clone(),
                detail,
            }
        })?;
    }
    Ok((pair.clone(), pair))
}

/// The made pair: key and certificate in one PEM file, so that it appears whole, with one
/// rename, even when two processes start at once.
const SELF_SIGNED: &str = "inbound.pem";

fn make_self_signed(dir: &Path, hostname: &str) -> Result<(), String> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let made = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
        .map_err(|e| e.to_string())?;
    let pem = format!("{}{}", made.signing_key.serialize_pem(), made.cert.pem());
    let tmp = dir.join(format!(
        ".{SELF_SIGNED}.{}.{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(pem.as_bytes())?;
        file.sync_all()
    });
    let placed = written.and_then(|()| std::fs::rename(&tmp, dir.join(SELF_SIGNED)));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.to_string());
    }
    tracing::info!(
        "made a self-signed certificate for {hostname} in {}",
        dir.join(SELF_SIGNED).display()
    );
    Ok(())
}

/// The rustls server configuration for STARTTLS on the inbound listener.
pub fn server_config(config: &Config) -> Result<Arc<ServerConfig>, InboundTlsError> {
    let (cert_path, key_path) = certificate_files(config)?;
    let read_err = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |e: rustls_pki_types::pem::Error| InboundTlsError::Read {
            what,
            path,
            detail: e.to_string(),
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(read_err("certificate", &cert_path))?
        .collect::<Result<_, _>>()
        .map_err(read_err("certificate", &cert_path))?;
    if certs.is_empty() {
        return Err(InboundTlsError::Read {
            what: "certificate",
            path: cert_path,
            detail: "the file holds no PEM certificate".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(read_err("key", &key_path))?;
    let server = ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| InboundTlsError::Mismatch {
            cert: cert_path.clone(),
            key: key_path.clone(),
            detail: e.to_string(),
        })?;
    Ok(Arc::new(server))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_self_signed_pair_is_one_private_file_that_rustls_takes() {
        let dir = tempfile::tempdir().unwrap();
        make_self_signed(dir.path(), "gw.office.test").unwrap();
        let path = dir.path().join(SELF_SIGNED);
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.contains("BEGIN CERTIFICATE") && pem.contains("PRIVATE KEY"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let certs: Vec<_> = CertificateDer::pem_file_iter(&path).unwrap().collect();
        assert_eq!(certs.len(), 1);
        PrivateKeyDer::from_pem_file(&path).unwrap();
    }
}
