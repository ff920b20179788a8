//! Helpers shared by this crate's integration tests: a reqwest client and a few raw registry
//! protocol calls (the harness's own tests must not depend on rbuild's client).
#![allow(dead_code)]

use std::sync::Arc;

use rbuild_testing::Registry;
use sha2::{Digest, Sha256};

/// A reqwest client that trusts the registry's CA in the TLS modes (and nothing else).
pub fn client_for(registry: &Registry) -> reqwest::Client {
    client(registry.ca_pem_path(), reqwest::redirect::Policy::default())
}

pub fn client(
    ca_pem: Option<&std::path::Path>,
    redirect: reqwest::redirect::Policy,
) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = match ca_pem {
        Some(ca) => rbuild_testing::tls_client_config(ca).expect("client config"),
        None => Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        ),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .redirect(redirect)
        .build()
        .expect("reqwest client")
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Resolves a `Location` header against `base` (`http://127.0.0.1:PORT`).
pub fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else {
        format!("{base}{location}")
    }
}

/// Monolithic upload: POST then one PUT with the bytes. Returns the digest.
pub async fn push_blob(
    client: &reqwest::Client,
    base: &str,
    repo: &str,
    auth: Option<(&str, &str)>,
    bytes: &[u8],
) -> String {
    let digest = sha256(bytes);
    let with_auth = |rb: reqwest::RequestBuilder| match auth {
        Some((u, p)) => rb.basic_auth(u, Some(p)),
        None => rb,
    };
    let resp = with_auth(client.post(format!("{base}/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "POST upload: {:?}", resp.text().await);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let url = absolute(base, &location);
    let sep = if url.contains('?') { '&' } else { '?' };
    let resp = with_auth(client.put(format!("{url}{sep}digest={digest}")))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "PUT upload: {:?}", resp.text().await);
    digest
}

/// An OCI manifest for one config and one layer.
pub fn manifest(config: &[u8], layer: &[u8]) -> Vec<u8> {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(layer), "size": layer.len()}],
    })
    .to_string()
    .into_bytes()
}

pub const CONFIG: &[u8] =
    br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;

/// A deterministic pseudo-random blob.
pub fn blob(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// `application/x-www-form-urlencoded` (also fine for query strings).
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}
