//! TLS trust setup shared by every rbuild HTTP client (registries, the Python package index).
//!
//! [`rustls_config`] builds a rustls 0.23 `ClientConfig` with the `ring` provider that trusts:
//! - the system store, read with `rustls-native-certs` (so `SSL_CERT_FILE` and `SSL_CERT_DIR` are
//!   honoured: HTTPS through an intercepting proxy whose CA is only in the system store works, as it
//!   would behind a corporate proxy; bundled web roots would not);
//! - extra CA certificates (PEM files: `--ca-file`, `certs.d/HOST/*.crt`);
//!
//! and optionally presents a client certificate. With [`TlsOptions::insecure`] it accepts any server
//! certificate: this is what `--insecure-registry HOST` means, and rbuild builds such a config only
//! for the client of that host. ALPN offers HTTP/2 and HTTP/1.1.
//!
//! Pass the result to reqwest with `ClientBuilder::tls_backend_preconfigured(config)`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use rustls::RootCertStore;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A CA or certificate file could not be read or has no PEM certificate.
    #[error("TLS: cannot use certificate file {path}: {reason}")]
    CertFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A client key could not be read.
    #[error("TLS: cannot use private key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No trusted root at all.
    #[error(
        "TLS: no trusted CA certificates: the system store is empty or unreadable ({0}); set SSL_CERT_FILE or pass --ca-file"
    )]
    NoRoots(String),
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A client certificate and its key (PEM files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
}

/// What a TLS client trusts and presents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Extra CA certificates (PEM files), trusted in addition to the system store.
    pub extra_ca_files: Vec<PathBuf>,
    /// A client certificate to present.
    pub client_cert: Option<ClientCert>,
    /// Accept any server certificate (for `--insecure-registry`). Never set it for a public host.
    pub insecure: bool,
}

/// The `ring` crypto provider rbuild uses.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: LazyLock<Arc<CryptoProvider>> =
        LazyLock::new(|| Arc::new(rustls::crypto::ring::default_provider()));
    PROVIDER.clone()
}

/// The system trust store as loaded by `rustls-native-certs` (cached for the process).
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

/// Reads every PEM certificate in `path`.
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::CertFile {
        path: path.to_path_buf(),
        reason,
    };
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("it holds no PEM certificate".to_string()));
    }
    Ok(certs)
}

/// Builds a root store: the system store plus `extra_ca_files`.
pub fn root_store(extra_ca_files: &[PathBuf]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let (system, errors) = system_certs();
    roots.add_parsable_certificates(system.iter().cloned());
    for path in extra_ca_files {
        for cert in read_pem_certs(path)? {
            roots.add(cert).map_err(|e| TlsError::CertFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots(if errors.is_empty() {
            "no certificates found".to_string()
        } else {
            errors.join("; ")
        }));
    }
    Ok(roots)
}

/// Reads the files `opts` names (extra CA certificates, the client certificate and key) and
/// reports the first unusable one, without loading the system store: a bad `--ca-file` is named
/// when the client is created, while the system store is only read when a host needs it.
pub fn check_files(opts: &TlsOptions) -> Result<(), TlsError> {
    for path in &opts.extra_ca_files {
        read_pem_certs(path)?;
    }
    if let Some(cc) = &opts.client_cert {
        read_pem_certs(&cc.cert)?;
        read_key(&cc.key)?;
    }
    Ok(())
}

/// Reads the private key (PEM) at `path`.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::KeyFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Builds the rustls client configuration described in the module docs.
pub fn rustls_config(opts: &TlsOptions) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)?;
    let builder = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider())))
    } else {
        builder.with_root_certificates(root_store(&opts.extra_ca_files)?)
    };
    let mut config = match &opts.client_cert {
        None => builder.with_no_client_auth(),
        Some(cc) => {
            let chain = read_pem_certs(&cc.cert)?;
            builder.with_client_auth_cert(chain, read_key(&cc.key)?)?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A verifier for `--insecure-registry` hosts: any certificate is accepted, but handshake signatures
/// are still checked (so the connection is at least consistent with the presented key).
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_store_loads_and_bad_ca_files_are_named() {
        let config = rustls_config(&TlsOptions::default()).unwrap();
        assert_eq!(config.alpn_protocols.len(), 2);
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("ca.crt");
        std::fs::write(&bad, "not a certificate").unwrap();
        let err = rustls_config(&TlsOptions {
            extra_ca_files: vec![bad.clone()],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains(&bad.display().to_string()), "{err}");
        let missing = dir.path().join("missing.crt");
        let err = rustls_config(&TlsOptions {
            extra_ca_files: vec![missing.clone()],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("missing.crt"), "{err}");
        // The early check names the same files.
        let err = check_files(&TlsOptions {
            extra_ca_files: vec![bad.clone()],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains(&bad.display().to_string()), "{err}");
        let key = dir.path().join("client.key");
        std::fs::write(&key, "no key here").unwrap();
        let err = check_files(&TlsOptions {
            client_cert: Some(ClientCert {
                cert: bad.clone(),
                key: key.clone(),
            }),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("ca.crt"), "{err}");
        assert!(check_files(&TlsOptions::default()).is_ok());
        assert!(
            rustls_config(&TlsOptions {
                insecure: true,
                ..Default::default()
            })
            .is_ok()
        );
    }
}
