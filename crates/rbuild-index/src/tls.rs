//! TLS trust for index requests: the system store (via `rustls-native-certs`, so `SSL_CERT_FILE` and
//! `SSL_CERT_DIR` are honoured) plus extra CA files, with the `ring` provider.
//!
//! This mirrors `rbuild_registry::tls::rustls_config` without the insecure and client-certificate
//! modes, so this crate does not depend on the registry client.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::Error;

fn system_certs() -> &'static (Vec<CertificateDer<'static>>, Vec<String>) {
    static CERTS: LazyLock<(Vec<CertificateDer<'static>>, Vec<String>)> = LazyLock::new(|| {
        let result = rustls_native_certs::load_native_certs();
        (
            result.certs,
            result.errors.iter().map(|e| e.to_string()).collect(),
        )
    });
    &CERTS
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let err = |reason: String| {
        Error::Tls(format!(
            "cannot use CA certificate file {}: {reason}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("it holds no PEM certificate".to_string()));
    }
    Ok(certs)
}

/// Builds the rustls configuration: system roots + `extra_ca_files`, ALPN h2 and http/1.1.
pub(crate) fn client_config(extra_ca_files: &[PathBuf]) -> Result<rustls::ClientConfig, Error> {
    let mut roots = RootCertStore::empty();
    let (system, errors) = system_certs();
    roots.add_parsable_certificates(system.iter().cloned());
    for path in extra_ca_files {
        for cert in read_pem_certs(path)? {
            roots.add(cert).map_err(|e| {
                Error::Tls(format!(
                    "cannot use CA certificate file {}: {e}",
                    path.display()
                ))
            })?;
        }
    }
    if roots.is_empty() {
        return Err(Error::Tls(format!(
            "no trusted CA certificates: the system store is empty or unreadable ({}); set \
             SSL_CERT_FILE or pass a CA file",
            if errors.is_empty() {
                "no certificates found".to_string()
            } else {
                errors.join("; ")
            }
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_store_loads_and_bad_ca_files_are_named() {
        let config = client_config(&[]).unwrap();
        assert_eq!(config.alpn_protocols.len(), 2);
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("ca.crt");
        std::fs::write(&bad, "not a certificate").unwrap();
        let err = client_config(std::slice::from_ref(&bad))
            .unwrap_err()
            .to_string();
        assert!(err.contains(&bad.display().to_string()), "{err}");
    }
}
