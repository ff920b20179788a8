//! Library tests of the push protocol against the real registry (distribution 2.8) behind the
//! fault proxy: chunked uploads, the fallback from a refused single PUT, reuse of the session a
//! failed mount opens, and the retry budget.

use rbuild_oci::Store;
use rbuild_registry::{Access, Client, ClientOptions, Error, MountOutcome, UploadMode};
use rbuild_testing::{Fault, FaultProxy, Mode, Registry, Times};

mod common;
use common::{blob, fast_retry, reference};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_uploads_and_fallback_from_a_refused_put() {
    let reg = Registry::start(Mode::Plain).unwrap();
    let proxy = FaultProxy::in_front_of(&reg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("a")).unwrap();
    let fresh = Store::open(dir.path().join("b")).unwrap();

    // Always chunked: 1 MB chunks → 3 PATCHes and one closing PUT.
    let client = Client::new(ClientOptions {
        upload: UploadMode::Chunked { chunk: 1_000_000 },
        retry: fast_retry(),
        ..Default::default()
    })
    .unwrap();
    let d = blob(&store, 1);
    let repo = client
        .repository(&reference(&proxy.host(), "chunked/x"), Access::Push)
        .unwrap();
    repo.upload_blob(&d, &store, None).await.unwrap();
    assert_eq!(proxy.count("PATCH", r"/blobs/uploads/"), 3);
    assert!(repo.blob_exists(&d.digest).await.unwrap());
    repo.fetch_blob(&d, &fresh).await.unwrap();
    assert!(
        fresh.contains(&d.digest),
        "the registry has exactly these bytes"
    );

    // Monolithic, but the registry refuses the single PUT (413): chunks instead.
    proxy.reset_counters();
    proxy.inject(
        "PUT",
        r"/blobs/uploads/.*digest=",
        Fault::Status(413),
        Times::First(1),
    );
    let client = Client::new(ClientOptions {
        upload: UploadMode::Monolithic {
            fallback_chunk: 2_000_000,
        },
        retry: fast_retry(),
        ..Default::default()
    })
    .unwrap();
    let d = blob(&store, 2);
    let repo = client
        .repository(&reference(&proxy.host(), "fallback/x"), Access::Push)
        .unwrap();
    repo.upload_blob(&d, &store, None).await.unwrap();
    assert_eq!(proxy.count("PATCH", r"/blobs/uploads/"), 2);
    assert_eq!(
        proxy.blob_upload_starts(),
        2,
        "a new session after the refusal"
    );
    assert!(repo.blob_exists(&d.digest).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_mount_hands_its_session_to_the_upload() {
    let reg = Registry::start(Mode::Plain).unwrap();
    let proxy = FaultProxy::in_front_of(&reg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let client = Client::new(ClientOptions::default()).unwrap();
    let d = blob(&store, 3);
    let a = client
        .repository(&reference(&proxy.host(), "repo/a"), Access::Push)
        .unwrap();
    a.upload_blob(&d, &store, None).await.unwrap();

    let b = client
        .repository(
            &reference(&proxy.host(), "repo/b"),
            Access::PushMountingFrom("repo/a".into()),
        )
        .unwrap();
    assert!(matches!(
        b.mount_blob(&d.digest, "repo/a").await.unwrap(),
        MountOutcome::Mounted
    ));
    assert!(b.blob_exists(&d.digest).await.unwrap());

    // From a repository that does not have it: 202 and a session, which the upload uses.
    proxy.reset_counters();
    let c = client
        .repository(&reference(&proxy.host(), "repo/c"), Access::Push)
        .unwrap();
    let MountOutcome::Session(session) = c.mount_blob(&d.digest, "repo/none").await.unwrap() else {
        panic!("the registry cannot mount from a repository without the blob")
    };
    c.upload_blob(&d, &store, Some(session)).await.unwrap();
    assert_eq!(
        proxy.blob_upload_starts(),
        0,
        "no second session was opened"
    );
    assert_eq!(proxy.blob_upload_finishes(), 1);
    assert!(c.blob_exists(&d.digest).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded_and_4xx_fail_at_once() {
    let reg = Registry::start(Mode::Plain).unwrap();
    let proxy = FaultProxy::in_front_of(&reg).unwrap();
    let client = Client::new(ClientOptions {
        retry: fast_retry(),
        ..Default::default()
    })
    .unwrap();
    let repo = client
        .repository(&reference(&proxy.host(), "r/x"), Access::Pull)
        .unwrap();
    let rule = proxy.inject("GET", r"/manifests/", Fault::Status(503), Times::Always);
    let err = repo.get_manifest("t").await.unwrap_err();
    assert!(matches!(err, Error::GaveUp { attempts: 5, .. }), "{err}");
    assert_eq!(proxy.hits(rule), 5);
    assert!(err.to_string().contains("503"), "{err}");

    proxy.clear_faults();
    proxy.reset_counters();
    let err = repo.get_manifest("t").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("MANIFEST_UNKNOWN"), "{err}");
    assert_eq!(
        proxy.count("GET", r"/manifests/"),
        1,
        "a 404 is not retried"
    );
}
