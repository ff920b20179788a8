//! Certificates made with the `openssl` command line: a CA plus a server certificate for the TLS
//! registry modes, and an RSA key with a self-signed certificate that signs the token server's JWTs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};

use crate::error::{Error, Result};
use crate::process::run;

/// Files of a generated CA and a server certificate for `127.0.0.1` and `localhost`.
#[derive(Debug, Clone)]
pub(crate) struct ServerPki {
    /// `DIR/ca/ca.crt`: the CA certificate (PEM), alone in its directory.
    pub ca_pem: PathBuf,
    /// `DIR/ca`: a directory holding only `ca.crt` (usable as skopeo's `--cert-dir` or a
    /// `certs.d/HOST` directory).
    pub ca_dir: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM, PKCS#8).
    pub key: PathBuf,
}

fn openssl(args: &[&str], cwd: &Path) -> Result<()> {
    let mut cmd = Command::new("openssl");
    cmd.args(args).current_dir(cwd);
    run(cmd, "openssl", &format!("openssl {}", args.join(" "))).map(|_| ())
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))
}

/// Generates an ECDSA P-256 CA and a server certificate signed by it (SAN `IP:127.0.0.1`,
/// `DNS:localhost`) under `dir`.
pub(crate) fn generate_server_pki(dir: &Path) -> Result<ServerPki> {
    let tls = dir.join("tls");
    let ca_dir = dir.join("ca");
    create_dir(&tls)?;
    create_dir(&ca_dir)?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "ca.key",
        "-out",
        "../ca/ca.crt",
        "-days",
        "3650",
        "-subj",
        "/CN=rbuild-testing CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&args, &tls)?;
    let mut args = vec!["req", "-new"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&args, &tls)?;
    let ext = tls.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| Error::io(format!("writing {}", ext.display()), e))?;
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "../ca/ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "3650",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
        &tls,
    )?;
    Ok(ServerPki {
        ca_pem: ca_dir.join("ca.crt"),
        ca_dir,
        cert: tls.join("server.crt"),
        key: tls.join("server.key"),
    })
}

/// An RSA-2048 key and its self-signed certificate: the token server signs with the key, the
/// registry trusts the certificate (`auth.token.rootcertbundle`).
pub(crate) struct TokenSigner {
    pub cert_pem: PathBuf,
    pub cert_der: Vec<u8>,
    pub key: ring::signature::RsaKeyPair,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

pub(crate) fn generate_token_signer(dir: &Path) -> Result<TokenSigner> {
    create_dir(dir)?;
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "token.key",
            "-out",
            "token.crt",
            "-days",
            "3650",
            "-subj",
            "/CN=rbuild-testing token signer",
        ],
        dir,
    )?;
    let cert_pem = dir.join("token.crt");
    let cert_der = CertificateDer::from_pem_file(&cert_pem)
        .map_err(|e| Error::Tls(format!("reading {}: {e}", cert_pem.display())))?
        .to_vec();
    let key_path = dir.join("token.key");
    let key_der = PrivatePkcs8KeyDer::from_pem_file(&key_path)
        .map_err(|e| Error::Tls(format!("reading {} as PKCS#8: {e}", key_path.display())))?;
    let key = ring::signature::RsaKeyPair::from_pkcs8(key_der.secret_pkcs8_der())
        .map_err(|e| Error::Tls(format!("loading the RSA key {}: {e}", key_path.display())))?;
    Ok(TokenSigner {
        cert_pem,
        cert_der,
        key,
    })
}

/// Sends `GET /v2/` to `127.0.0.1:port` (over TLS trusting only `ca_pem` when given) and returns
/// the HTTP status code.
pub(crate) fn probe_v2(port: u16, ca_pem: Option<&Path>) -> std::io::Result<u16> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
    let request = format!(
        "GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: {PROBE_USER_AGENT}\r\nConnection: close\r\n\r\n"
    );
    let mut response = Vec::new();
    match ca_pem {
        None => {
            tcp.write_all(request.as_bytes())?;
            let _ = tcp.read_to_end(&mut response);
        }
        Some(ca) => {
            let config = client_config(ca, false).map_err(std::io::Error::other)?;
            let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
            let conn =
                rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            tls.write_all(request.as_bytes())?;
            // A close without close_notify is fine here: we only need the status line.
            let _ = tls.read_to_end(&mut response);
        }
    }
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {:?}", tail(&text))))
}

fn tail(text: &str) -> &str {
    &text[..text.len().min(200)]
}

/// A rustls client configuration (ring provider, TLS 1.2 and 1.3) that trusts only the CA in
/// `ca_pem`, e.g. [`Registry::ca_pem_path`](crate::Registry::ca_pem_path); for reqwest:
/// `ClientBuilder::tls_backend_preconfigured((*config).clone())`. ALPN offers `h2` and
/// `http/1.1` (the registry speaks HTTP/2 over TLS).
pub fn tls_client_config(ca_pem: &Path) -> Result<Arc<rustls::ClientConfig>> {
    client_config(ca_pem, true)
}

/// The `User-Agent` of the harness's readiness probes; [`crate::Registry::access_log`] leaves
/// their entries out.
pub(crate) const PROBE_USER_AGENT: &str = "rbuild-testing-readiness-probe";

fn client_config(ca_pem: &Path, alpn: bool) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem)
        .map_err(|e| Error::Tls(format!("reading {}: {e}", ca_pem.display())))?
    {
        let cert = cert.map_err(|e| Error::Tls(format!("reading {}: {e}", ca_pem.display())))?;
        roots.add(cert).map_err(|e| {
            Error::Tls(format!("adding {} to a trust store: {e}", ca_pem.display()))
        })?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut config = config;
    if alpn {
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    Ok(Arc::new(config))
}
