//! The fault proxy against the real registry: pass-through, every fault, the CDN redirect and the
//! counters.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rbuild_testing::{Fault, FaultProxy, Listener, Mode, Registry, Times};

const BLOB_LEN: usize = 300_000;

struct Setup {
    _registry: Registry,
    proxy: FaultProxy,
    client: reqwest::Client,
    layer: Vec<u8>,
    digest: String,
}

/// A plain registry with one blob in `lib/app`, and a proxy in front of it.
async fn setup() -> Setup {
    let registry = Registry::plain().unwrap();
    let proxy = FaultProxy::in_front_of(&registry).unwrap();
    let client = client(None, reqwest::redirect::Policy::default());
    let layer = blob(BLOB_LEN, 42);
    let digest = push_blob(&client, &registry.url(), "lib/app", None, &layer).await;
    Setup {
        _registry: registry,
        proxy,
        client,
        layer,
        digest,
    }
}

impl Setup {
    fn blob_url(&self) -> String {
        format!("{}/v2/lib/app/blobs/{}", self.proxy.url(), self.digest)
    }

    async fn get_blob(&self) -> reqwest::Result<(u16, Vec<u8>)> {
        let resp = self.client.get(self.blob_url()).send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.bytes().await?.to_vec()))
    }
}

#[tokio::test]
async fn passes_requests_through_and_counts_them() {
    let s = setup().await;
    let base = s.proxy.url();
    // Upload through the proxy (Location headers point back at the proxy), then mount, then a
    // manifest, then pull.
    let config_digest = push_blob(&s.client, &base, "lib/app", None, CONFIG).await;
    let resp = s
        .client
        .post(format!(
            "{base}/v2/other/app/blobs/uploads/?mount={}&from=lib/app",
            s.digest
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = s
        .client
        .post(format!(
            "{base}/v2/other/app/blobs/uploads/?mount={config_digest}&from=lib/app"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let manifest = manifest(CONFIG, &s.layer);
    let resp = s
        .client
        .put(format!("{base}/v2/other/app/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = s
        .client
        .get(format!("{base}/v2/other/app/manifests/v1"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), manifest);
    let resp = s.client.head(s.blob_url()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-length"],
        BLOB_LEN.to_string().as_str()
    );
    let (status, body) = s.get_blob().await.unwrap();
    assert_eq!((status, body == s.layer), (200, true));

    assert_eq!(s.proxy.blob_upload_starts(), 1);
    assert_eq!(s.proxy.blob_upload_finishes(), 1);
    assert_eq!(s.proxy.mount_attempts(), 2);
    assert_eq!(s.proxy.mounts(), 2);
    assert_eq!(s.proxy.manifest_puts(), 1);
    assert_eq!(s.proxy.blob_gets(), 1);
    assert_eq!(s.proxy.count("HEAD", "/blobs/"), 1);
    assert_eq!(s.proxy.requests().len(), 8);
    assert!(s.proxy.cdn_requests().is_empty());
}

#[tokio::test]
async fn chunked_uploads_pass_through() {
    let s = setup().await;
    let base = s.proxy.url();
    let data = blob(200_000, 9);
    let digest = sha256(&data);
    let resp = s
        .client
        .post(format!("{base}/v2/up/load/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let loc = absolute(&base, resp.headers()["location"].to_str().unwrap());
    assert!(
        loc.starts_with(&base),
        "the upload URL points back at the proxy: {loc}"
    );
    // A streamed body without a length goes out chunked.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(30_000).map(|c| Ok(c.to_vec())).collect();
    let resp = s
        .client
        .patch(&loc)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let loc = absolute(&base, resp.headers()["location"].to_str().unwrap());
    let req = s
        .proxy
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(req.header("transfer-encoding"), Some("chunked"));
    let resp = s
        .client
        .put(format!("{loc}&digest={digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = s
        .client
        .get(format!("{base}/v2/up/load/blobs/{digest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap(), data);
}

#[tokio::test]
async fn status_faults_apply_to_the_first_n_matches_only() {
    let s = setup().await;
    let id = s.proxy.inject(
        "GET",
        r"/blobs/sha256:",
        Fault::Status(500),
        Times::First(2),
    );
    assert_eq!(s.get_blob().await.unwrap().0, 500);
    // HEAD does not match the GET rule.
    assert_eq!(
        s.client.head(s.blob_url()).send().await.unwrap().status(),
        200
    );
    assert_eq!(s.get_blob().await.unwrap().0, 500);
    let (status, body) = s.get_blob().await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, s.layer);
    assert_eq!(s.proxy.hits(id), 2);
    let statuses: Vec<u16> = s.proxy.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 200, 500, 200]);
    assert_eq!(s.proxy.requests()[0].fault, Some(Fault::Status(500)));
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let s = setup().await;
    s.proxy.inject(
        "*",
        "/blobs/",
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        Times::Always,
    );
    let resp = s.client.get(s.blob_url()).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    // A faulted PUT with a body still gets its answer (the body is drained first).
    let resp = s
        .client
        .put(format!(
            "{}/v2/lib/app/blobs/uploads/x?digest={}",
            s.proxy.url(),
            s.digest
        ))
        .body(vec![0u8; 1 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    s.proxy.clear_faults();
    assert_eq!(s.get_blob().await.unwrap().0, 200);
}

/// A blob GET through the proxy on a raw TCP connection (to see resets and short bodies as they
/// are).
fn raw_blob_get(s: &Setup) -> std::net::TcpStream {
    use std::io::Write;
    let mut tcp = std::net::TcpStream::connect(s.proxy.host()).unwrap();
    write!(
        tcp,
        "GET /v2/lib/app/blobs/{} HTTP/1.1\r\nHost: {}\r\n\r\n",
        s.digest,
        s.proxy.host()
    )
    .unwrap();
    tcp
}

#[tokio::test]
async fn close_cuts_the_body_after_exactly_k_bytes_with_a_clean_eof() {
    let s = setup().await;
    s.proxy.inject(
        "GET",
        r"/blobs/sha256:",
        Fault::CloseAfter { bytes: 1000 },
        Times::First(1),
    );
    use std::io::Read;
    let mut tcp = raw_blob_get(&s);
    let mut got = Vec::new();
    tcp.read_to_end(&mut got).expect("a clean EOF, not a reset");
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..split]).to_ascii_lowercase();
    assert!(
        head.contains(&format!("content-length: {}", s.layer.len())),
        "the head announces the whole body: {head}"
    );
    assert_eq!(&got[split..], &s.layer[..1000]);
    // Then it passes.
    let (status, body) = s.get_blob().await.unwrap();
    assert_eq!((status, body == s.layer), (200, true));
}

#[tokio::test]
async fn reset_cuts_the_body_after_k_bytes() {
    let s = setup().await;
    s.proxy.inject(
        "GET",
        r"/blobs/sha256:",
        Fault::ResetAfter { bytes: 1000 },
        Times::First(1),
    );
    let resp = s.client.get(s.blob_url()).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the head arrives");
    let err = resp.bytes().await.expect_err("the body must fail");
    assert!(
        err.is_body() || err.is_decode() || err.is_request(),
        "{err:?}"
    );
    // Raw view: exactly 1000 body bytes, then a reset (not a clean EOF).
    s.proxy.inject(
        "GET",
        r"/blobs/sha256:",
        Fault::ResetAfter { bytes: 1000 },
        Times::First(1),
    );
    use std::io::Read;
    let mut tcp = raw_blob_get(&s);
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let err = loop {
        match tcp.read(&mut buf) {
            Ok(0) => panic!("clean EOF instead of a reset"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    let split = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(got.len() - split, 1000);
    assert_eq!(&got[split..], &s.layer[..1000]);
    // Then it passes.
    let (status, body) = s.get_blob().await.unwrap();
    assert_eq!((status, body == s.layer), (200, true));
}

#[tokio::test]
async fn corrupt_byte_flips_exactly_one_byte() {
    let s = setup().await;
    s.proxy.inject(
        "GET",
        r"/blobs/sha256:",
        Fault::CorruptByte { offset: 123_456 },
        Times::First(1),
    );
    let (status, body) = s.get_blob().await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body.len(), s.layer.len());
    let diffs: Vec<usize> = (0..body.len()).filter(|&i| body[i] != s.layer[i]).collect();
    assert_eq!(diffs, [123_456]);
    assert_ne!(sha256(&body), s.digest);
}

#[tokio::test]
async fn delay_and_stall_slow_the_response() {
    let s = setup().await;
    s.proxy.inject(
        "GET",
        r"/blobs/sha256:",
        Fault::Delay(Duration::from_millis(700)),
        Times::First(1),
    );
    let t = Instant::now();
    let (status, _) = s.get_blob().await.unwrap();
    assert_eq!(status, 200);
    assert!(t.elapsed() >= Duration::from_millis(700));
    s.proxy.inject(
        "GET",
        r"/blobs/sha256:",
        Fault::StallAfter {
            bytes: 5000,
            duration: Duration::from_millis(700),
        },
        Times::First(1),
    );
    let t = Instant::now();
    let resp = s.client.get(s.blob_url()).send().await.unwrap();
    let head_after = t.elapsed();
    let body = resp.bytes().await.unwrap();
    assert!(
        head_after < Duration::from_millis(500),
        "the head is not delayed: {head_after:?}"
    );
    assert!(t.elapsed() >= Duration::from_millis(700));
    assert_eq!(body, s.layer);
}

#[tokio::test]
async fn redirect_goes_to_a_cdn_that_refuses_authorization() {
    let registry = Registry::start(Mode::htpasswd("u", "p4ss")).unwrap();
    let proxy = FaultProxy::in_front_of(&registry).unwrap();
    let direct = client(None, reqwest::redirect::Policy::default());
    let layer = blob(50_000, 3);
    let digest = push_blob(
        &direct,
        &registry.url(),
        "lib/app",
        Some(("u", "p4ss")),
        &layer,
    )
    .await;
    proxy.inject(
        "GET",
        r"/blobs/sha256:",
        Fault::RedirectToCdn,
        Times::Always,
    );
    let url = format!("{}/v2/lib/app/blobs/{digest}", proxy.url());

    // A client that follows redirects and drops Authorization on a new origin (reqwest does).
    let resp = direct
        .get(&url)
        .basic_auth("u", Some("p4ss"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.url()
            .as_str()
            .starts_with(&format!("http://{}/cdn/", proxy.cdn_host()))
    );
    assert_eq!(resp.bytes().await.unwrap(), layer);
    assert_eq!(proxy.requests()[0].status, 307);
    assert!(proxy.requests()[0].header("authorization").is_some());
    let cdn = proxy.cdn_requests();
    assert_eq!(cdn.len(), 1);
    assert_eq!(cdn[0].header("authorization"), None);
    assert_eq!(cdn[0].status, 200);

    // A client that (wrongly) sends Authorization to the CDN is refused, and it is recorded.
    let manual = client(None, reqwest::redirect::Policy::none());
    let resp = manual
        .get(&url)
        .basic_auth("u", Some("p4ss"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 307);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&format!("http://{}/cdn/", proxy.cdn_host())));
    let resp = manual
        .get(&location)
        .basic_auth("u", Some("p4ss"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let cdn = proxy.cdn_requests();
    assert!(cdn[1].header("authorization").is_some());
    assert!(
        !format!("{cdn:?}").contains("dTpwNHNz"),
        "Debug must redact Authorization"
    );

    // Faults can target the CDN too.
    proxy.inject_at(
        Listener::Cdn,
        "GET",
        "/blobs/",
        Fault::CorruptByte { offset: 0 },
        Times::First(1),
    );
    let body = direct
        .get(&url)
        .basic_auth("u", Some("p4ss"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_ne!(body[0], layer[0]);
}

#[tokio::test]
async fn works_in_front_of_a_token_registry() {
    let registry = Registry::start(Mode::token("t", "pw")).unwrap();
    let proxy = FaultProxy::in_front_of(&registry).unwrap();
    let c = client(None, reqwest::redirect::Policy::none());
    let resp = c.get(format!("{}/v2/", proxy.url())).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains(&registry.token_server().unwrap().realm()));
    assert!(FaultProxy::in_front_of(&Registry::start(Mode::Tls).unwrap()).is_err());
}

/// skopeo (an independent client) through the proxy: chunked uploads pass, the counters see the
/// push, and a corrupted blob is caught by skopeo's digest check.
#[test]
fn skopeo_pushes_and_pulls_the_fixture_through_the_proxy() {
    use rbuild_testing::{BaseFixture, Platform};
    let fixture = BaseFixture::ensure().expect("base fixture");
    let registry = Registry::plain().unwrap();
    let proxy = FaultProxy::in_front_of(&registry).unwrap();
    let src = fixture.platform_oci_ref(Platform::Amd64).unwrap();
    let dest = format!("docker://{}/library/python:3.11-slim", proxy.host());
    let skopeo = |args: &[&str]| {
        std::process::Command::new("skopeo")
            .args(args)
            .output()
            .expect("running skopeo")
    };
    let out = skopeo(&["copy", "--quiet", "--dest-tls-verify=false", &src, &dest]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(proxy.blob_upload_finishes(), 3);
    assert_eq!(proxy.manifest_puts(), 1);
    assert_eq!(registry.blob_uploads(), 3);

    let tmp = tempfile::tempdir().unwrap();
    let pulled = format!("oci:{}:x", tmp.path().display());
    let out = skopeo(&["copy", "--quiet", "--src-tls-verify=false", &dest, &pulled]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    proxy.inject(
        "GET",
        r"/blobs/sha256:",
        Fault::CorruptByte { offset: 1000 },
        Times::Always,
    );
    let tmp2 = tempfile::tempdir().unwrap();
    let pulled = format!("oci:{}:x", tmp2.path().display());
    let out = skopeo(&["copy", "--quiet", "--src-tls-verify=false", &dest, &pulled]);
    assert!(!out.status.success(), "a corrupted blob must not verify");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("digest"), "{err}");
}
