//! TLS trust for index requests: rbuild-http's configuration (the system store, so
//! `SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured, plus extra CA files), without the registry's
//! insecure and client-certificate modes.

use std::path::PathBuf;

use rbuild_http::tls::{TlsOptions, rustls_config};

use crate::Error;

/// Builds the rustls configuration: system roots + `extra_ca_files`, ALPN h2 and http/1.1.
pub(crate) fn client_config(extra_ca_files: &[PathBuf]) -> Result<rustls::ClientConfig, Error> {
    rustls_config(&TlsOptions {
        extra_ca_files: extra_ca_files.to_vec(),
        ..TlsOptions::default()
    })
    .map_err(|e| Error::Tls(e.to_string()))
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
