//! Time bounds against the real registry behind the fault proxy: a registry that accepts and then
//! never answers (manifest GET, blob HEAD, manifest PUT) or trickles a byte a second fails within
//! the configured bound, with a message naming the operation, the registry and the wait, and the
//! tag is left where it was; a transfer that stalls part way is retried and resumes; a slow but
//! steady upload of 20 MB (20 s at the proxy's pace) goes through with a 5 s idle bound.

use std::time::{Duration, Instant};

use rbuild_oci::Store;
use rbuild_registry::{Access, ProgressEvent, Reference, RegistryBlobs, RegistrySink};
use rbuild_testing::{Fault, FaultProxy, Registry, Times};

mod net;
use net::{client, image, layer, retry, short};

/// Asserts `r` failed after at least `min` and well within `attempts` × bound, and returns the
/// message.
fn failed_in_time<T: std::fmt::Debug>(
    r: Result<T, rbuild_registry::Error>,
    started: Instant,
    min: Duration,
    max: Duration,
) -> String {
    let took = started.elapsed();
    let e = r.expect_err("a stalled request fails");
    let msg = e.to_string();
    assert!(
        took >= min && took <= max,
        "took {took:?}, expected {min:?}..{max:?}: {msg}"
    );
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_requests_fail_within_the_bound_and_leave_the_tag() {
    let reg = Registry::plain().unwrap();
    let proxy = FaultProxy::in_front_of(&reg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();

    // The tag `t` points at image A (pushed directly, without the proxy).
    let a = image(&store, 1, 50_000);
    let direct: Reference = format!("{}/stall/app:t", reg.host()).parse().unwrap();
    let (plain, _) = client(short(10.0), retry(3), &[]);
    RegistrySink::new(plain.clone(), store.clone(), vec![direct.clone()])
        .push(&a, &RegistryBlobs::new(plain.clone(), store.clone()))
        .await
        .unwrap();
    let tag_of = || async {
        plain
            .repository(&direct, Access::Pull)
            .unwrap()
            .get_manifest("t")
            .await
            .unwrap()
            .digest
    };
    assert_eq!(tag_of().await, a.digest());

    // Through the proxy, with a 2 s bound and 2 attempts.
    let (c, events) = client(short(2.0), retry(2), &[]);
    let via: Reference = format!("{}/stall/app:t", proxy.host()).parse().unwrap();
    let repo = c.repository(&via, Access::Push).unwrap();
    let (min, max) = (Duration::from_secs(4), Duration::from_secs(9));

    // Manifest GET: accepted, never answered.
    proxy.inject(
        "GET",
        r"/manifests/",
        Fault::Stall(Duration::from_secs(60)),
        Times::Always,
    );
    let started = Instant::now();
    let msg = failed_in_time(repo.get_manifest("t").await, started, min, max);
    assert!(
        msg.contains("fetching manifest")
            && msg.contains(&proxy.host())
            && msg.contains("no answer after waiting 2 s")
            && msg.contains("gave up after 2 attempts"),
        "{msg}"
    );
    assert_eq!(proxy.count("GET", r"/manifests/"), 2, "retried once");
    let noted = events.waits_and_retries();
    assert!(
        noted.iter().any(|l| l.contains("still waiting for"))
            && noted.iter().any(|l| l.contains("attempt 1 of 2 failed")),
        "{noted:?}"
    );

    // Blob HEAD.
    proxy.clear_faults();
    proxy.inject(
        "HEAD",
        r"/blobs/sha256:",
        Fault::Stall(Duration::from_secs(60)),
        Times::Always,
    );
    let d = layer(&store, 1, 50_000);
    let started = Instant::now();
    let msg = failed_in_time(repo.blob_exists(&d.digest).await, started, min, max);
    assert!(
        msg.contains("checking blob") && msg.contains("no answer after waiting 2 s"),
        "{msg}"
    );

    // Manifest PUT of image B to the tag: stalled, and the tag still points at A.
    proxy.clear_faults();
    proxy.inject(
        "PUT",
        r"/manifests/",
        Fault::Stall(Duration::from_secs(60)),
        Times::Always,
    );
    let b = image(&store, 2, 50_000);
    let started = Instant::now();
    let r = RegistrySink::new(c.clone(), store.clone(), vec![via.clone()])
        .push(&b, &RegistryBlobs::new(c.clone(), store.clone()))
        .await;
    let msg = failed_in_time(r, started, min, max + Duration::from_secs(2));
    assert!(
        msg.contains("pushing manifest") && msg.contains("no answer after waiting 2 s"),
        "{msg}"
    );
    assert_eq!(tag_of().await, a.digest(), "the tag did not move");

    // A manifest GET trickling one byte a second.
    proxy.clear_faults();
    proxy.inject(
        "GET",
        r"/manifests/",
        Fault::Trickle { bytes_per_sec: 1 },
        Times::Always,
    );
    let started = Instant::now();
    let msg = failed_in_time(repo.get_manifest("t").await, started, min, max);
    assert!(
        msg.contains("fetching manifest") && msg.contains("the transfer stalled"),
        "{msg}"
    );
    assert_eq!(tag_of().await, a.digest());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_that_stalls_part_way_is_retried_and_resumes() {
    let reg = Registry::plain().unwrap();
    let proxy = FaultProxy::in_front_of(&reg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("a")).unwrap();
    let fresh = Store::open(dir.path().join("b")).unwrap();
    let (c, events) = client(short(2.0), retry(3), &[]);
    let r: Reference = format!("{}/resume/app:t", proxy.host()).parse().unwrap();
    let repo = c.repository(&r, Access::Push).unwrap();
    let d = layer(&store, 7, 3_000_000);
    repo.upload_blob(&d, &store, None).await.unwrap();
    proxy.inject(
        "GET",
        r"/blobs/sha256:",
        Fault::StallAfter {
            bytes: 1_000_000,
            duration: Duration::from_secs(60),
        },
        Times::First(1),
    );
    let started = Instant::now();
    repo.fetch_blob(&d, &fresh).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(fresh.contains(&d.digest));
    let restarts: Vec<u64> = events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::BlobRestarted { from, .. } => Some(*from),
            _ => None,
        })
        .collect();
    assert_eq!(restarts.len(), 1, "{restarts:?}");
    assert!(restarts[0] >= 500_000, "resumed part way: {restarts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_slow_upload_of_20_mb_succeeds_with_a_5_s_idle_bound() {
    let reg = Registry::plain().unwrap();
    let proxy = FaultProxy::in_front_of(&reg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // No retries: the one attempt must go through. The upload takes four times the idle bound; the
    // bound leaves the registry time to hash and move 20 MB after the last byte on a loaded machine
    // (2 s was once too short under the whole suite).
    let (c, _) = client(short(5.0), retry(1), &[]);
    let r: Reference = format!("{}/slow/app:t", proxy.host()).parse().unwrap();
    let repo = c.repository(&r, Access::Push).unwrap();
    let d = layer(&store, 9, 20_000_000);
    proxy.inject(
        "PUT",
        r"/blobs/uploads/",
        Fault::Throttle {
            bytes_per_sec: 1_000_000,
        },
        Times::Always,
    );
    let started = Instant::now();
    repo.upload_blob(&d, &store, None).await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(15),
        "the proxy paced the upload: {took:?}"
    );
    assert!(repo.blob_exists(&d.digest).await.unwrap());
    assert_eq!(proxy.blob_upload_finishes(), 1);
}
