//! Credentials stay with their origin: when the registry's upload `Location` and its blob
//! redirects point at another origin (the fault proxy's CDN listener, another port, as object
//! storage would be), no `Authorization` header is sent there, with Basic and with token auth,
//! and the push and pull still succeed.

use rbuild_oci::Store;
use rbuild_registry::{Access, Reference, RegistryBlobs, RegistrySink, UploadMode};
use rbuild_testing::{Fault, FaultProxy, Mode, Registry, Times};

mod net;
use net::{image, retry, short};

async fn push_and_pull_through_another_origin(mode: Mode) {
    let reg = Registry::start(mode).unwrap();
    let (user, password) = reg.credentials().unwrap();
    let proxy = FaultProxy::in_front_of(&reg).unwrap();
    proxy.inject(
        "POST",
        r"/blobs/uploads/",
        Fault::UploadElsewhere,
        Times::Always,
    );
    proxy.inject(
        "GET",
        r"/blobs/sha256:",
        Fault::RedirectToCdn,
        Times::Always,
    );
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("a")).unwrap();
    let fresh = Store::open(dir.path().join("b")).unwrap();
    let host = proxy.host();
    let mut creds = rbuild_registry::StaticCredentials::new();
    creds.insert(&host, rbuild_registry::Credential::basic(user, password));
    // Monolithic uploads for one image, chunked ones (PATCHes to the other origin) for another.
    for (i, upload) in [
        UploadMode::default(),
        UploadMode::Chunked { chunk: 400_000 },
    ]
    .into_iter()
    .enumerate()
    {
        let client = rbuild_registry::Client::new(rbuild_registry::ClientOptions {
            timeouts: short(10.0),
            retry: retry(2),
            upload,
            credentials: std::sync::Arc::new(creds.clone()),
            ..Default::default()
        })
        .unwrap();
        let artifact = image(&store, 10 + i as u64, 1_000_000);
        let r: Reference = format!("{host}/origin/app:v{i}").parse().unwrap();
        RegistrySink::new(client.clone(), store.clone(), vec![r.clone()])
            .push(
                &artifact,
                &RegistryBlobs::new(client.clone(), store.clone()),
            )
            .await
            .unwrap();
        // Pull it back through the blob redirect.
        let repo = client.repository(&r, Access::Pull).unwrap();
        let m = repo.get_manifest(&format!("v{i}")).await.unwrap();
        assert_eq!(m.digest, artifact.digest());
        for d in artifact.blobs() {
            repo.fetch_blob(&d, &fresh).await.unwrap();
            assert!(fresh.contains(&d.digest));
        }
    }
    let cdn = proxy.cdn_requests();
    let uploads = cdn
        .iter()
        .filter(|r| r.method == "PUT" || r.method == "PATCH")
        .count();
    let gets = cdn.iter().filter(|r| r.method == "GET").count();
    assert!(
        uploads >= 4 && gets >= 2,
        "the other origin saw the uploads and downloads: {cdn:?}"
    );
    for r in &cdn {
        assert!(
            r.header("authorization").is_none(),
            "credentials were sent to another origin: {r:?}"
        );
        assert!(
            (200..300).contains(&r.status),
            "the other origin served it: {r:?}"
        );
    }
    // The registry's own origin did get them.
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.header("authorization").is_some())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_stay_with_the_registry() {
    push_and_pull_through_another_origin(Mode::htpasswd("alice", "s3cret-basic")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_stay_with_the_registry() {
    push_and_pull_through_another_origin(Mode::token("bob", "s3cret-token")).await;
}
