//! Library tests of blob downloads against the real registry (distribution 2.8) behind the fault
//! proxy: a transfer cut off part way resumes with `Range` where it stopped, and a resumed blob
//! that turns out corrupt is fetched again from the start.

use std::sync::{Arc, Mutex};

use rbuild_oci::Store;
use rbuild_registry::{Access, Client, ClientOptions, Progress, ProgressEvent};
use rbuild_testing::{Fault, FaultProxy, Mode, Registry, SeenRequest, Times};

mod common;
use common::{blob, fast_retry, reference};

/// Where each retry of a blob transfer starts (`ProgressEvent::BlobRestarted`), and the bytes
/// reported received in all.
#[derive(Default)]
struct Restarts(Mutex<(Vec<u64>, u64)>);

impl Progress for Restarts {
    fn event(&self, event: ProgressEvent) {
        let mut s = self.0.lock().unwrap();
        match event {
            ProgressEvent::BlobRestarted { from, .. } => s.0.push(from),
            ProgressEvent::BlobAdvanced { bytes, .. } => s.1 += bytes,
            _ => {}
        }
    }
}

/// The `N` of each GET of `path`'s `Range: bytes=N-` (`None`: no Range header), in order.
fn range_starts(requests: &[SeenRequest], path: &str) -> Vec<(Option<u64>, u16)> {
    requests
        .iter()
        .filter(|r| r.method == "GET" && r.target.ends_with(path))
        .map(|r| {
            let start = r.header("range").map(|v| {
                v.strip_prefix("bytes=")
                    .and_then(|v| v.strip_suffix('-'))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected Range header {v:?}"))
            });
            (start, r.status)
        })
        .collect()
}

/// The first GET of `path` is cut off after 1 MB (a clean close, so exactly 1 MB arrives); the next
/// one gets `then`.
fn cut_then(proxy: &FaultProxy, path: &str, then: Fault) {
    proxy.inject(
        "GET",
        path,
        Fault::CloseAfter { bytes: 1_000_000 },
        Times::First(1),
    );
    proxy.inject("GET", path, then, Times::First(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_download_resumes_where_it_stopped() {
    let reg = Registry::start(Mode::Plain).unwrap();
    let proxy = FaultProxy::in_front_of(&reg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = Store::open(dir.path().join("source")).unwrap();
    let client = Client::new(ClientOptions {
        retry: fast_retry(),
        ..Default::default()
    })
    .unwrap();
    let repo = client
        .repository(&reference(&reg.host(), "resume/x"), Access::Push)
        .unwrap();
    let d = blob(&source, 7);
    let bytes = source.read_blob(&d.digest).unwrap();
    repo.upload_blob(&d, &source, None).await.unwrap();
    let path = format!("/blobs/{}", d.digest);

    // Cut twice: after 1 MB of the whole blob, then (a reset this time) after 600 kB of the rest.
    cut_then(&proxy, &path, Fault::ResetAfter { bytes: 600_000 });
    let restarts = Arc::new(Restarts::default());
    let through_proxy = client
        .clone()
        .with_progress(restarts.clone())
        .repository(&reference(&proxy.host(), "resume/x"), Access::Pull)
        .unwrap();
    let store = Store::open(dir.path().join("a")).unwrap();
    through_proxy.fetch_blob(&d, &store).await.unwrap();
    assert_eq!(store.read_blob(&d.digest).unwrap(), bytes);

    let gets = range_starts(&proxy.requests(), &path);
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert_eq!(gets[0].0, None, "the first request asks for the whole blob");
    assert_eq!(
        gets[1].0,
        Some(1_000_000),
        "the second request starts where the first stopped"
    );
    // After a reset the client may have lost what the kernel still held: at most 600 kB more.
    let second = gets[2].0.expect("the third request asks for a range");
    assert!(
        (1_000_000..=1_600_000).contains(&second),
        "the third starts where the second stopped: {gets:?}"
    );
    assert_eq!((gets[1].1, gets[2].1), (206, 206), "{gets:?}");
    {
        let (from, advanced) = &*restarts.0.lock().unwrap();
        assert_eq!(
            from,
            &[1_000_000, second],
            "progress says where each retry starts"
        );
        assert_eq!(*advanced, d.size, "progress counts each byte once");
    }

    // A resumed blob that does not match its digest (a byte flipped in the second part) is not
    // kept: the next attempt fetches the whole blob again.
    proxy.clear_faults();
    proxy.reset_counters();
    cut_then(&proxy, &path, Fault::CorruptByte { offset: 1_500_000 });
    let store = Store::open(dir.path().join("b")).unwrap();
    through_proxy.fetch_blob(&d, &store).await.unwrap();
    assert_eq!(store.read_blob(&d.digest).unwrap(), bytes);
    let gets = range_starts(&proxy.requests(), &path);
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert_eq!(gets[1].0, Some(1_000_000), "resumed once: {gets:?}");
    assert_eq!(gets[2].0, None, "then from the start: {gets:?}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("b/tmp")).unwrap().count(),
        0,
        "no temporary file is left behind"
    );
}
