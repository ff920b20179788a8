//! How many requests, and how many one after another, a warm push makes (issue #21): a push
//! whose only new blobs are an app layer and a config, after the previous image's manifest was
//! read, and a push of an unchanged image. Counted at the fault proxy in front of the real
//! registry; a regression (an extra check, a lost overlap) fails here.

use std::time::{Duration, Instant};

use rbuild_oci::{Artifact, Descriptor, Image, MediaType, RawManifest, Store, Top};
use rbuild_registry::{Access, Client, ClientOptions, Reference, RegistryBlobs, RegistrySink};
use rbuild_testing::{Fault, FaultProxy, LatencyRelay, Registry, Times};

mod net;
use net::layer;

/// A registry behind a fault proxy, a content store, and `rt/NAME:latest` through the proxy.
struct Setup {
    _reg: Registry,
    proxy: FaultProxy,
    _dir: tempfile::TempDir,
    store: Store,
    dst: Reference,
}

fn setup(name: &str) -> Setup {
    let reg = Registry::plain().unwrap();
    let proxy = FaultProxy::in_front_of(&reg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let dst = format!("{}/rt/{name}:latest", proxy.host())
        .parse()
        .unwrap();
    Setup {
        _reg: reg,
        proxy,
        _dir: dir,
        store,
        dst,
    }
}

/// An image of `layers` (all in `store`), its config in the store too.
fn image_of(store: &Store, layers: &[Descriptor]) -> Artifact {
    let diff_ids: Vec<String> = layers.iter().map(|l| format!("\"{}\"", l.digest)).collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let config_digest = store.put_bytes(config.as_bytes()).unwrap();
    let layer_json: Vec<String> = layers
        .iter()
        .map(|l| {
            format!(
                r#"{{"mediaType":"{}","digest":"{}","size":{}}}"#,
                MediaType::OCI_LAYER_GZIP,
                l.digest,
                l.size
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]}}"#,
        MediaType::OCI_MANIFEST,
        config_digest,
        config.len(),
        layer_json.join(",")
    );
    let raw = RawManifest::new(manifest.into_bytes(), Some(MediaType::OCI_MANIFEST));
    Artifact::new(Top::Image(Image::new(raw, config.into_bytes()).unwrap()))
}

/// What a build does against its destination: reads the previous manifest by tag (a new client,
/// as in a new process) and pushes `artifact`, the previous manifest's blobs known to be there.
async fn warm_push(dst: &Reference, store: &Store, artifact: &Artifact) {
    warm_push_with_sessions(dst, store, artifact, 0, false).await
}

/// [`warm_push`], with `ahead` upload sessions opened before the previous manifest is read (as a
/// build whose context changed opens them). `pipelining`: whether the push may pipeline its
/// requests; the fault proxy takes one request per connection, so through it a pipelined push
/// gets its first request answered and sends the rest the usual way.
async fn warm_push_with_sessions(
    dst: &Reference,
    store: &Store,
    artifact: &Artifact,
    ahead: usize,
    pipelining: bool,
) {
    let client = Client::new(ClientOptions {
        pipeline_min_round_trip: pipelining.then_some(Duration::ZERO),
        ..ClientOptions::default()
    })
    .unwrap();
    if ahead > 0 {
        client.open_upload_sessions(dst, ahead);
    }
    let previous = client
        .repository(dst, Access::Pull)
        .unwrap()
        .get_manifest("latest")
        .await
        .unwrap();
    let rbuild_oci::ManifestKind::Image(m) = previous.parse().unwrap() else {
        panic!("an image manifest")
    };
    // As the build does: the previous image's referrers tag is read in the background.
    client.prefetch_referrers(dst, previous.digest);
    let known = m.layers.iter().map(|l| l.digest).chain([m.config.digest]);
    RegistrySink::new(client.clone(), store.clone(), vec![dst.clone()])
        .with_known_blobs(dst, known)
        .push(artifact, &RegistryBlobs::new(client, store.clone()))
        .await
        .unwrap();
}

/// How many round trips one after another the requests the proxy saw took: with every request
/// held `delay` at the proxy, a request sent after another's answer arrives at least `delay`
/// later, and requests sent together arrive within a few milliseconds of each other.
fn waves(proxy: &FaultProxy, delay: Duration) -> usize {
    let mut at: Vec<_> = proxy.requests().iter().map(|r| r.at).collect();
    at.sort();
    at.windows(2)
        .filter(|w| w[1].duration_since(w[0]) > delay / 2)
        .count()
        + usize::from(!at.is_empty())
}

/// The requests the proxy saw, each with when it arrived (ms after the first).
fn summary(proxy: &FaultProxy) -> Vec<String> {
    let seen = proxy.requests();
    let Some(t0) = seen.iter().map(|r| r.at).min() else {
        return Vec::new();
    };
    seen.iter()
        .map(|r| {
            let target: String = r.target.chars().take(100).collect();
            format!(
                "{} {target} -> {} (+{} ms)",
                r.method,
                r.status,
                r.at.duration_since(t0).as_millis()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_app_only_push_makes_few_requests_in_few_round_trips() {
    let Setup {
        _reg,
        proxy,
        _dir,
        store,
        dst,
    } = setup("app");
    let deps = layer(&store, 1, 2_000_000);
    let first = image_of(&store, &[deps.clone(), layer(&store, 2, 4_000)]);
    let client = Client::new(ClientOptions::default()).unwrap();
    RegistrySink::new(client.clone(), store.clone(), vec![dst.clone()])
        .push(&first, &RegistryBlobs::new(client, store.clone()))
        .await
        .unwrap();

    // One app file changed: a new app layer and config; the dependency layer is unchanged. Every
    // request waits 300 ms at the proxy, so the requests arrive in waves, one
    // per round trip.
    let second = image_of(&store, &[deps.clone(), layer(&store, 3, 4_000)]);
    proxy.reset_counters();
    let delay = Duration::from_millis(300);
    proxy.inject("*", ".", Fault::Delay(delay), Times::Always);
    let t0 = Instant::now();
    warm_push(&dst, &store, &second).await;
    let took = t0.elapsed();
    let seen = summary(&proxy);
    // The previous manifest; for the app layer and the config each a POST (distribution 2.8
    // answers the single-request upload with a session; no HEAD, as both are small and new),
    // then the PUT; the manifest. Nothing for the dependency layer.
    assert_eq!(proxy.count("GET", "/manifests/latest"), 1, "{seen:#?}");
    // The previous image's referrers tag, read in the background (for attachments; none here).
    assert_eq!(proxy.count("GET", "/manifests/sha256-"), 1, "{seen:#?}");
    assert_eq!(proxy.count("HEAD", "/blobs/"), 0, "{seen:#?}");
    assert_eq!(proxy.blob_upload_starts(), 2, "{seen:#?}");
    assert_eq!(proxy.blob_upload_finishes(), 2, "{seen:#?}");
    assert_eq!(proxy.manifest_puts(), 1, "{seen:#?}");
    assert_eq!(seen.len(), 7, "{seen:#?}");
    assert!(
        !seen.iter().any(|s| s.contains(&deps.digest.to_string())),
        "the unchanged layer is not touched: {seen:#?}"
    );
    // One after another: the manifest GET, POST, PUT, the manifest PUT: 4 (5 before the HEADs
    // and POSTs overlapped, and 9 requests before small new blobs went up without a HEAD).
    assert_eq!(waves(&proxy, delay), 4, "{seen:#?}");
    assert!(took >= delay * 4, "{took:?}");
    assert_pushed(&dst, &second).await;

    // Nothing changed: the manifest read is the only request it waits for (the tag already
    // names it)
    proxy.clear_faults();
    proxy.reset_counters();
    warm_push(&dst, &store, &second).await;
    let seen = summary(&proxy);
    // (and, in the background, the previous image's referrers tag)
    assert_eq!(
        seen.iter().filter(|s| !s.starts_with("GET ")).count(),
        0,
        "{seen:#?}"
    );
    assert_eq!(proxy.count("GET", "/manifests/latest"), 1, "{seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_blob_that_exists_after_all_is_not_uploaded_and_the_tag_moves() {
    // The speculative upload start is dropped when the HEAD finds the blob; a tag read that no
    // longer matches what is pushed is pushed.
    let Setup {
        _reg,
        proxy,
        _dir,
        store,
        dst,
    } = setup("again");
    // Layers above the size uploaded without a HEAD; the configs are below it.
    let a = image_of(&store, &[layer(&store, 7, 300_000)]);
    let b = image_of(&store, &[layer(&store, 8, 300_000)]);
    let client = Client::new(ClientOptions::default()).unwrap();
    for img in [&a, &b] {
        RegistrySink::new(client.clone(), store.clone(), vec![dst.clone()])
            .push(img, &RegistryBlobs::new(client.clone(), store.clone()))
            .await
            .unwrap();
    }
    // Back to `a`, whose blobs the registry still has but the tag's manifest (b) does not name.
    proxy.reset_counters();
    warm_push(&dst, &store, &a).await;
    // The new-looking layer had an upload session opened alongside its HEAD; the HEAD found it,
    // so the session stays unused and the layer is not uploaded. The config, small, is sent
    // again without a HEAD (cheaper than asking).
    assert_eq!(proxy.count("HEAD", "/blobs/"), 1, "{:#?}", summary(&proxy));
    assert_eq!(proxy.blob_upload_starts(), 2, "{:#?}", summary(&proxy));
    assert_eq!(proxy.blob_upload_finishes(), 1, "{:#?}", summary(&proxy));
    assert_eq!(proxy.manifest_puts(), 1);
    let repo = client.repository(&dst, Access::Pull).unwrap();
    assert_eq!(
        repo.get_manifest("latest").await.unwrap().digest,
        a.digest()
    );
}

/// `dst`'s `latest` names `artifact`, and the registry has every blob of it (read with a client
/// of its own, not through the proxy's faults).
async fn assert_pushed(dst: &Reference, artifact: &Artifact) {
    let repo = Client::new(ClientOptions::default())
        .unwrap()
        .repository(dst, Access::Pull)
        .unwrap();
    assert_eq!(
        repo.get_manifest("latest").await.unwrap().digest,
        artifact.digest()
    );
    for d in artifact.blobs() {
        assert!(repo.blob_exists(&d.digest).await.unwrap(), "{}", d.digest);
    }
}

/// Reads `tag` of `dst`'s repository with `client` (as a build reads its destination).
async fn read_tag(client: &Client, dst: &Reference, tag: &str) -> rbuild_oci::Digest {
    client
        .repository(dst, Access::Pull)
        .unwrap()
        .get_manifest(tag)
        .await
        .unwrap()
        .digest
}

async fn push_with(client: &Client, store: &Store, dst: &Reference, artifact: &Artifact) {
    RegistrySink::new(client.clone(), store.clone(), vec![dst.clone()])
        .push(artifact, &RegistryBlobs::new(client.clone(), store.clone()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_tag_skips_only_the_push_of_that_very_tag_and_manifest() {
    // The manifest push is skipped only when this client read this tag of this repository on
    // this registry moments ago and it named this manifest; every other push goes out.
    let reg = Registry::plain().unwrap();
    let proxy = FaultProxy::in_front_of(&reg).unwrap();
    let other_reg = Registry::plain().unwrap();
    let other_proxy = FaultProxy::in_front_of(&other_reg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let x = image_of(&store, &[layer(&store, 21, 3_000)]);
    let y = image_of(&store, &[layer(&store, 22, 3_000)]);
    let at =
        |p: &FaultProxy, r: &str| -> Reference { format!("{}/{r}", p.host()).parse().unwrap() };
    let setup = Client::new(ClientOptions::default()).unwrap();
    for r in ["tm/app:latest", "tm/other:latest"] {
        push_with(&setup, &store, &at(&proxy, r), &x).await;
        push_with(&setup, &store, &at(&other_proxy, r), &y).await;
    }
    push_with(&setup, &store, &at(&proxy, "tm/app:stable"), &y).await;

    let client = Client::new(ClientOptions::default()).unwrap();
    let dst = at(&proxy, "tm/app:latest");
    assert_eq!(read_tag(&client, &dst, "latest").await, x.digest());

    // The same tag, the same manifest: skipped.
    proxy.reset_counters();
    push_with(&client, &store, &dst, &x).await;
    assert_eq!(proxy.manifest_puts(), 0, "{:#?}", summary(&proxy));

    // Another tag of the same repository (it names y): pushed.
    proxy.reset_counters();
    let stable = at(&proxy, "tm/app:stable");
    push_with(&client, &store, &stable, &x).await;
    assert_eq!(proxy.manifest_puts(), 1, "{:#?}", summary(&proxy));
    assert_eq!(read_tag(&setup, &stable, "stable").await, x.digest());

    // A digest reference: the manifest is pushed by digest (the tag was not asked for).
    proxy.reset_counters();
    let by_digest: Reference = format!("{}/tm/app@{}", proxy.host(), y.digest())
        .parse()
        .unwrap();
    push_with(&client, &store, &by_digest, &y).await;
    assert_eq!(
        proxy.count("PUT", &format!("/manifests/{}", y.digest())),
        1,
        "{:#?}",
        summary(&proxy)
    );

    // Another repository with the same tag, never read by this client: pushed.
    proxy.reset_counters();
    let other_repo = at(&proxy, "tm/other:latest");
    push_with(&client, &store, &other_repo, &x).await;
    assert_eq!(proxy.manifest_puts(), 1, "{:#?}", summary(&proxy));

    // Another registry with the same repository and tag (there the tag names y): pushed.
    other_proxy.reset_counters();
    let elsewhere = at(&other_proxy, "tm/app:latest");
    push_with(&client, &store, &elsewhere, &x).await;
    assert_eq!(
        other_proxy.manifest_puts(),
        1,
        "{:#?}",
        summary(&other_proxy)
    );
    assert_eq!(read_tag(&setup, &elsewhere, "latest").await, x.digest());

    // This client moves the tag to y and back to x: both pushes go out, and the tag names x.
    proxy.reset_counters();
    push_with(&client, &store, &dst, &y).await;
    push_with(&client, &store, &dst, &x).await;
    assert_eq!(proxy.manifest_puts(), 2, "{:#?}", summary(&proxy));
    assert_eq!(read_tag(&setup, &dst, "latest").await, x.digest());
}

/// `artifact` with an SBOM-like attachment about its manifest (blob and config in `store`), as a
/// build attaches one by default.
/// A destination (through the fault proxy) that holds a first build, a dependency layer
/// (`seed`, 200 kB) and an app layer (`seed + 1`), and the next build to push: the same
/// dependency layer, another app layer (`next`). The proxy's counters start after the push.
async fn pushed_then_next(name: &str, seed: u64, next: u64) -> (Setup, Artifact) {
    let setup = setup(name);
    let store = &setup.store;
    let deps = layer(store, seed, 200_000);
    let first = image_of(store, &[deps.clone(), layer(store, seed + 1, 4_000)]);
    let client = Client::new(ClientOptions::default()).unwrap();
    push_with(&client, store, &setup.dst, &first).await;
    let next = image_of(store, &[deps, layer(store, next, 4_000)]);
    setup.proxy.reset_counters();
    (setup, next)
}

/// Two builds of an app with an attachment each: `deps` and an app layer (seeded `first`, then
/// `second`).
fn attached_builds(
    store: &Store,
    deps: &Descriptor,
    first: u64,
    second: u64,
) -> (Artifact, Artifact) {
    let build = |app| {
        with_attachment(
            store,
            image_of(store, &[deps.clone(), layer(store, app, 4_000)]),
        )
    };
    (build(first), build(second))
}

fn with_attachment(store: &Store, mut artifact: Artifact) -> Artifact {
    let top = artifact.top.manifest();
    let subject = Descriptor::new(top.media_type.clone(), top.digest, top.bytes.len() as u64);
    let doc = format!(r#"{{"sbom-of":"{}"}}"#, top.digest).into_bytes();
    let a = rbuild_attest::ArtifactManifest::new(
        "application/spdx+json",
        "application/spdx+json",
        doc,
        subject,
        Default::default(),
    )
    .unwrap();
    store.put_bytes(&a.blob).unwrap();
    store.put_bytes(&a.config).unwrap();
    artifact.attachments.push(a.image);
    artifact
}

/// A warm push whose new blobs are all small and have sessions open goes pipelined: behind the
/// previous manifest's read (and the sessions' `POST`s), the blobs, the image manifest under
/// its tag and the attachment leave together on two connections, and the referrers tag right
/// behind them once its read is back: 3 round trips through a far-away registry (a relay that
/// keeps connections open), where sending each request after those it depends on takes 4. The
/// registry holds the same: the tag names the image, every blob is there, the referrers tag
/// lists the attachment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_push_pipelines_its_blobs_manifests_and_referrers_tag() {
    let reg = Registry::plain().unwrap();
    let relay = LatencyRelay::in_front_of(&reg, Duration::from_millis(150)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let deps = layer(&store, 51, 500_000);
    for (pipelining, app, waves) in [(false, 52, 4), (true, 53, 3)] {
        let dst: Reference = format!("{}/rt/pipelined-{pipelining}:latest", relay.host())
            .parse()
            .unwrap();
        let (first, second) = attached_builds(&store, &deps, 50, app);
        let client = Client::new(ClientOptions::default()).unwrap();
        push_with(&client, &store, &dst, &first).await;
        relay.reset();
        // The app layer, the config, the attachment's document and its config.
        warm_push_with_sessions(&dst, &store, &second, 4, pipelining).await;
        let seen: Vec<String> = relay
            .requests()
            .iter()
            .map(|r| format!("{} {} (connection {})", r.method, r.target, r.connection))
            .collect();
        assert_eq!(relay.waves(), waves, "pipelining {pipelining}: {seen:#?}");
        let count = |m: &str, p: &str| {
            seen.iter()
                .filter(|s| s.starts_with(&format!("{m} ")) && s.contains(p))
                .count()
        };
        assert_eq!(count("HEAD", "/"), 0, "{seen:#?}");
        assert_eq!(count("PUT", "/blobs/uploads/"), 4, "{seen:#?}");
        assert_eq!(count("PUT", "/manifests/"), 3, "{seen:#?}");
        assert_pushed(&dst, &second).await;
        let repo = client.repository(&dst, Access::Pull).unwrap();
        let listed = repo.referrers(&second.digest()).await.unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].digest, second.attachments[0].digest());
    }
}

/// Upload sessions on another origin (object storage: the registry's `Location` points
/// elsewhere) take no credentials, so a push never pipelines into them: it sends each blob the
/// usual way, in the same round trips as without pipelining, and nothing goes to the registry's
/// own origin in a pipeline that could only fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_on_another_origin_are_not_pipelined() {
    let (
        Setup {
            _reg,
            proxy,
            _dir,
            store,
            dst,
        },
        second,
    ) = pushed_then_next("elsewhere", 71, 73).await;
    let delay = Duration::from_millis(300);
    proxy.inject(
        "POST",
        r"/blobs/uploads/",
        Fault::UploadElsewhere,
        Times::Always,
    );
    proxy.inject("*", ".", Fault::Delay(delay), Times::Always);
    warm_push_with_sessions(&dst, &store, &second, 2, true).await;
    let seen = summary(&proxy);
    assert_eq!(proxy.count("PUT", "/blobs/uploads/"), 0, "{seen:#?}");
    let cdn: Vec<String> = proxy
        .cdn_requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.target))
        .collect();
    assert_eq!(
        cdn.iter().filter(|r| r.starts_with("PUT ")).count(),
        2,
        "{cdn:#?}"
    );
    // The manifest GET ∥ the POSTs; (the blob PUTs on the other origin); the manifest PUT.
    assert_eq!(waves(&proxy, delay), 2, "{seen:#?}");
    assert_pushed(&dst, &second).await;
}

/// Over TLS the pipelined connection speaks HTTP/1.1 (its ALPN offers nothing else) where the
/// client's other requests speak HTTP/2: the registry's access log shows the blobs, the
/// manifests and the referrers tag arriving over HTTP/1.1, and the push is complete. A registry
/// whose answers come quicker than `pipeline_min_round_trip` (here an hour) gets them one
/// request at a time, over HTTP/2. (Where the default, 15 ms, puts this loopback registry depends
/// on the machine's load: `bench/run.sh` measures that it costs nothing there.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_push_over_tls_speaks_http_1_1_and_below_its_threshold_none() {
    let reg = Registry::start(rbuild_testing::Mode::Tls).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let deps = layer(&store, 61, 100_000);
    let options = |min| ClientOptions {
        tls: rbuild_registry::tls::TlsOptions {
            extra_ca_files: vec![reg.ca_pem_path().unwrap().to_path_buf()],
            ..Default::default()
        },
        pipeline_min_round_trip: min,
        ..Default::default()
    };
    for (min, app, proto) in [
        (Some(Duration::from_secs(3600)), 62, "HTTP/2.0"),
        (Some(Duration::ZERO), 63, "HTTP/1.1"),
    ] {
        let dst: Reference = format!("{}/rt/tls-{app}:latest", reg.host())
            .parse()
            .unwrap();
        let (first, second) = attached_builds(&store, &deps, 60, app);
        let client = Client::new(options(min)).unwrap();
        push_with(&client, &store, &dst, &first).await;
        let before = reg.access_log().len();

        let client = Client::new(options(min)).unwrap();
        client.open_upload_sessions(&dst, 4);
        let previous = client
            .repository(&dst, Access::Pull)
            .unwrap()
            .get_manifest("latest")
            .await
            .unwrap();
        assert_eq!(previous.digest, first.digest());
        let known: Vec<_> = first.top.images()[0].blobs().map(|d| d.digest).collect();
        RegistrySink::new(client.clone(), store.clone(), vec![dst.clone()])
            .with_known_blobs(&dst, known)
            .push(&second, &RegistryBlobs::new(client.clone(), store.clone()))
            .await
            .unwrap();
        let log = reg.access_log();
        let pushed: Vec<String> = log[before..]
            .iter()
            .filter(|e| e.method == "PUT")
            .map(|e| format!("{} {} {}", e.proto, e.status, e.uri))
            .collect();
        assert_eq!(pushed.len(), 4 + 3, "{pushed:#?}");
        assert!(
            pushed
                .iter()
                .all(|p| p.starts_with(&format!("{proto} 201 "))),
            "{pushed:#?}"
        );
        assert!(
            log[before..].iter().any(|e| e.proto == "HTTP/2.0"),
            "the other requests speak HTTP/2: {log:#?}"
        );
        let repo = client.repository(&dst, Access::Pull).unwrap();
        assert_eq!(
            repo.get_manifest("latest").await.unwrap().digest,
            second.digest()
        );
        let listed = repo.referrers(&second.digest()).await.unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_and_their_referrers_tag_add_one_round_trip_and_none_when_nothing_changed() {
    // A warm push of an image with an attachment: the previous manifest; the blobs' HEADs, their
    // upload starts and the referrers tag's read at once; the uploads; the image manifest and
    // the attachment at once; the referrers tag: 5 one after another. Nothing changed: the
    // previous manifest, then its referrers tag (read ahead, which lists the attachment): 2, and
    // nothing written.
    let Setup {
        _reg,
        proxy,
        _dir,
        store,
        dst,
    } = setup("attached");
    let deps = layer(&store, 31, 1_000_000);
    let (first, second) = attached_builds(&store, &deps, 32, 34);
    let client = Client::new(ClientOptions::default()).unwrap();
    push_with(&client, &store, &dst, &first).await;
    proxy.reset_counters();
    let delay = Duration::from_millis(300);
    proxy.inject("*", ".", Fault::Delay(delay), Times::Always);
    let t0 = Instant::now();
    warm_push(&dst, &store, &second).await;
    let took = t0.elapsed();
    let seen = summary(&proxy);
    // New: the app layer, the config, the attachment's document; its config (`{}`, 2 bytes) is
    // sent again rather than asked about. No HEAD: all are small and not in the previous image.
    assert_eq!(proxy.blob_upload_finishes(), 4, "{seen:#?}");
    assert_eq!(proxy.count("HEAD", "."), 0, "{seen:#?}");
    assert_eq!(
        proxy.manifest_puts(),
        3,
        "image, attachment, referrers tag: {seen:#?}"
    );
    assert_eq!(waves(&proxy, delay), 5, "{seen:#?}");
    assert!(took >= delay * 5, "{took:?}");
    let repo = client.repository(&dst, Access::Pull).unwrap();
    assert_eq!(
        repo.get_manifest("latest").await.unwrap().digest,
        second.digest()
    );
    let listed = repo.referrers(&second.digest()).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].digest, second.attachments[0].digest());

    // Nothing changed: the referrers tag read ahead lists the attachment, so neither it nor its
    // blobs are checked.
    proxy.reset_counters();
    let t0 = Instant::now();
    warm_push(&dst, &store, &second).await;
    let took = t0.elapsed();
    let seen = summary(&proxy);
    assert_eq!(proxy.count("POST", "."), 0, "{seen:#?}");
    assert_eq!(proxy.count("PUT", "."), 0, "{seen:#?}");
    assert_eq!(proxy.count("DELETE", "."), 0, "{seen:#?}");
    assert_eq!(proxy.count("HEAD", "."), 0, "{seen:#?}");
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(waves(&proxy, delay), 2, "{seen:#?}");
    assert!(took >= delay * 2, "{took:?}");
    assert_eq!(repo.referrers(&second.digest()).await.unwrap().len(), 1);
}

/// A loopback registry in plain HTTP is probed for HTTPS once per content store, not once per
/// process: a second client with the same host memory (the next build) sends its first request
/// in plain HTTP at once, saving the probe's round trips (issue #21).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_registry_is_probed_once_per_store_not_once_per_process() {
    let Setup {
        _reg,
        proxy,
        _dir,
        store,
        dst,
    } = setup("probe");
    let absent = rbuild_oci::Digest::of(b"absent");
    let ask = |memory: Option<Store>| {
        let dst = dst.clone();
        async move {
            let client = Client::new(ClientOptions {
                host_memory: memory,
                ..Default::default()
            })
            .unwrap();
            let repo = client.repository(&dst, Access::Pull).unwrap();
            assert!(!repo.blob_exists(&absent).await.unwrap());
        }
    };
    ask(Some(store.clone())).await;
    assert_eq!(
        proxy.unreadable_connections(),
        1,
        "the first process probes"
    );
    for round in 0..2 {
        proxy.reset_counters();
        ask(Some(store.clone())).await;
        assert_eq!(proxy.unreadable_connections(), 0, "round {round}: no probe");
        assert_eq!(proxy.count("HEAD", "/blobs/"), 1, "{:#?}", summary(&proxy));
    }
    // Without the memory every process probes.
    proxy.reset_counters();
    ask(None).await;
    assert_eq!(proxy.unreadable_connections(), 1);
}

/// A remembered answer that no longer holds (the host speaks TLS now) costs one failed request
/// and is forgotten: the next process probes again and reaches the registry over HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_plain_http_host_that_now_speaks_tls_is_probed_again() {
    let reg = Registry::start(rbuild_testing::Mode::Tls).unwrap();
    let host = reg.host();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // What an earlier run against a plain-HTTP registry on this host and port left behind.
    let key = rbuild_oci::Digest::of(host.as_bytes()).hex().to_string();
    store
        .put_key(
            "registry-hosts",
            &key,
            format!("{host}\nplain-http\n").as_bytes(),
        )
        .unwrap();
    let dst: Reference = format!("{host}/rt/tls:latest").parse().unwrap();
    let absent = rbuild_oci::Digest::of(b"absent");
    let ask = || async {
        let client = Client::new(ClientOptions {
            host_memory: Some(store.clone()),
            insecure_registries: vec![host.clone()],
            ..Default::default()
        })
        .unwrap();
        client
            .repository(&dst, Access::Pull)
            .unwrap()
            .blob_exists(&absent)
            .await
    };
    assert!(ask().await.is_err(), "plain HTTP to a TLS server fails");
    assert!(
        store.get_key("registry-hosts", &key).unwrap().is_none(),
        "and the memory is forgotten"
    );
    assert!(
        !ask().await.unwrap(),
        "the next process probes and speaks HTTPS"
    );
}

/// Upload sessions opened ahead (while the build still runs) take the upload starts off the
/// critical path: the blobs go straight into them, and a session no blob used is cancelled while
/// the manifest goes up. Three round trips for a warm app-only push instead of four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_opened_ahead_save_the_upload_start_round_trip() {
    // Three opened, two used (the app layer and the config). Without pipelining: the manifest
    // GET ∥ the POSTs; the blob PUTs; the manifest PUT ∥ the DELETE. With it, through this proxy,
    // which takes one request per connection (it answers the first with `Connection: close`):
    // one round trip more (the pipeline's first request), and no request more, the rest sent
    // the usual way into the same sessions.
    for (pipelining, app, expected) in [(false, 42, 3), (true, 43, 4)] {
        let (
            Setup {
                _reg,
                proxy,
                _dir,
                store,
                dst,
            },
            second,
        ) = pushed_then_next(&format!("ahead-{pipelining}"), 40, app).await;
        let delay = Duration::from_millis(300);
        proxy.inject("*", ".", Fault::Delay(delay), Times::Always);
        warm_push_with_sessions(&dst, &store, &second, 3, pipelining).await;
        let seen = summary(&proxy);
        assert_eq!(proxy.count("POST", "/blobs/uploads/"), 3, "{seen:#?}");
        assert_eq!(proxy.blob_upload_finishes(), 2, "{seen:#?}");
        assert_eq!(proxy.count("DELETE", "/blobs/uploads/"), 1, "{seen:#?}");
        assert_eq!(proxy.count("HEAD", "."), 0, "{seen:#?}");
        assert_eq!(proxy.count("PUT", "/manifests/latest"), 1, "{seen:#?}");
        assert_eq!(
            waves(&proxy, delay),
            expected,
            "pipelining {pipelining}: {seen:#?}"
        );
        assert_pushed(&dst, &second).await;
    }
}
