//! Pushes to several destinations: blobs go to every destination before any manifest, so a
//! destination that is down fails the push before any tag moves; a failure while the tags are
//! pushed says which references were updated and which were not.

use std::time::Duration;

use rbuild_oci::Store;
use rbuild_registry::{Access, Error, Reference, RegistryBlobs, RegistrySink};
use rbuild_testing::{Fault, FaultProxy, Registry, Times};

mod net;
use net::{client, image, retry, short};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_is_down_moves_no_tag() {
    let a_reg = Registry::plain().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // A port nothing listens on.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (c, _) = client(short(3.0), retry(2), &[]);
    let a: Reference = format!("{}/multi/app:1", a_reg.host()).parse().unwrap();
    let b: Reference = format!("{down}/multi/app:1").parse().unwrap();
    let artifact = image(&store, 21, 200_000);
    let err = RegistrySink::new(c.clone(), store.clone(), vec![a.clone(), b.clone()])
        .push(&artifact, &RegistryBlobs::new(c.clone(), store.clone()))
        .await
        .unwrap_err();
    let Error::Partial {
        updated,
        not_updated,
        ..
    } = &err
    else {
        panic!("a partial-push error: {err}")
    };
    assert!(updated.is_empty(), "{err}");
    assert_eq!(not_updated, &[a.to_string(), b.to_string()]);
    let msg = err.to_string();
    assert!(
        msg.contains(&down.to_string())
            && msg.contains("updated: none")
            && msg.contains(&format!("not updated: {a}, {b}")),
        "{msg}"
    );
    // A got the blobs (they go everywhere first) but its tag was not created.
    let repo = c.repository(&a, Access::Pull).unwrap();
    assert!(repo.get_manifest("1").await.unwrap_err().is_not_found());
    for d in artifact.blobs() {
        assert!(repo.blob_exists(&d.digest).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_that_cannot_be_pushed_is_reported_with_the_ones_that_were() {
    let a_reg = Registry::plain().unwrap();
    let b_reg = Registry::plain().unwrap();
    let b_proxy = FaultProxy::in_front_of(&b_reg).unwrap();
    b_proxy.inject("PUT", r"/manifests/", Fault::Status(503), Times::Always);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (c, _) = client(short(3.0), retry(2), &[]);
    let a: Reference = format!("{}/multi/app:2", a_reg.host()).parse().unwrap();
    let b: Reference = format!("{}/multi/app:2", b_proxy.host()).parse().unwrap();
    let artifact = image(&store, 22, 200_000);
    let started = std::time::Instant::now();
    let err = RegistrySink::new(c.clone(), store.clone(), vec![a.clone(), b.clone()])
        .push(&artifact, &RegistryBlobs::new(c.clone(), store.clone()))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(20));
    let msg = err.to_string();
    assert!(
        msg.contains("503")
            && msg.contains(&format!("updated: {a}\n"))
            && msg.contains(&format!("not updated: {b}")),
        "{msg}"
    );
    // B's blobs were all uploaded before A's tag was pushed: B has them, A's tag moved.
    assert_eq!(b_proxy.blob_upload_finishes(), 2);
    let got = c
        .repository(&a, Access::Pull)
        .unwrap()
        .get_manifest("2")
        .await
        .unwrap();
    assert_eq!(got.digest, artifact.digest());
}
