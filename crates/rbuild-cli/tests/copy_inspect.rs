//! Acceptance tests for `rbuild copy` and `rbuild inspect` (issue #2) against the real registry
//! (distribution 2.8), with skopeo as the oracle and the fault proxy for transient and persistent
//! failures.

mod common;

use common::*;
use rbuild_testing::{Fault, FaultProxy, Mode, Registry, Times};

#[test]
fn copy_index_within_one_registry_mounts_every_blob() {
    let reg = Registry::start(Mode::Plain).unwrap();
    let fixture = push_fixture(&reg);
    let (index_bytes, blobs) = two_platform_index(&reg, &fixture);
    let cache = tempfile::tempdir().unwrap();
    let host = reg.host();
    let (mounts0, uploads0) = (reg.blob_mounts(), reg.blob_uploads());

    let src = format!("{host}/library/python:multi");
    let dst = format!("{host}/copies/python:multi");
    let out = rbuild(&["copy", &src, &dst], cache.path());
    let stdout = ok(&out);
    assert!(stdout.contains("mounted"), "{stdout}");

    assert_eq!(
        skopeo_raw(&dst).expect("the destination exists"),
        index_bytes,
        "the index was copied byte for byte"
    );
    assert_eq!(
        reg.blob_mounts() - mounts0,
        blobs.len(),
        "every blob mounted"
    );
    assert_eq!(reg.blob_uploads(), uploads0, "no blob uploaded");
    // Nothing went through the content store.
    for d in &blobs {
        assert!(
            !cache
                .path()
                .join("blobs/sha256")
                .join(d.digest.hex())
                .exists()
        );
    }
}

#[test]
fn copy_to_a_second_registry_verifies_with_skopeo_and_inspect_matches() {
    let reg = Registry::start(Mode::Plain).unwrap();
    let reg2 = Registry::start(Mode::Plain).unwrap();
    let fixture = push_fixture(&reg);
    let (index_bytes, blobs) = two_platform_index(&reg, &fixture);
    let cache = tempfile::tempdir().unwrap();
    let src = format!("{}/library/python:multi", reg.host());
    let dst = format!("{}/mirror/python:multi", reg2.host());

    let out = rbuild(&["copy", "--json", &src, &dst], cache.path());
    let summary: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(summary["blobs"]["uploaded"], blobs.len());
    assert_eq!(reg2.blob_uploads(), blobs.len());

    let oci = tempfile::tempdir().unwrap();
    skopeo_copy_verifies(&dst, &oci.path().join("layout"));

    let raw = rbuild(&["inspect", "--raw", &dst], cache.path());
    ok(&raw);
    assert_eq!(raw.stdout, skopeo_raw(&dst).unwrap());
    assert_eq!(raw.stdout, index_bytes);

    // One platform's manifest, raw, equals what skopeo sees for that digest.
    let arm = rbuild(
        &["inspect", "--raw", "--platform", "linux/arm64", &dst],
        cache.path(),
    );
    ok(&arm);
    let arm_digest = rbuild_oci::Digest::of(&arm.stdout);
    let by_digest = format!("{}/mirror/python@{arm_digest}", reg2.host());
    assert_eq!(skopeo_raw(&by_digest).unwrap(), arm.stdout);

    // The human summary lists both platforms; --json has them too.
    let human = ok(&rbuild(&["inspect", &dst], cache.path()));
    assert!(
        human.contains("linux/amd64") && human.contains("linux/arm64/v8"),
        "{human}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&rbuild(&["inspect", "--json", &dst], cache.path()))).unwrap();
    assert_eq!(
        json["digest"],
        rbuild_oci::Digest::of(&index_bytes).to_string()
    );
    assert_eq!(json["manifests"].as_array().unwrap().len(), 2);

    // --config prints the exact config blob of the chosen platform.
    let config = rbuild(
        &["inspect", "--config", "--platform", "linux/arm64", &dst],
        cache.path(),
    );
    ok(&config);
    let v: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    assert_eq!(v["architecture"], "arm64");

    // --platform copies that platform's manifest alone; its digest is the child's.
    let single = format!("{}/mirror/python:amd64", reg2.host());
    let out = rbuild(
        &["copy", "--json", "--platform", "linux/amd64", &src, &single],
        cache.path(),
    );
    let summary: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let amd = skopeo_raw(&single).unwrap();
    assert_eq!(summary["digest"], rbuild_oci::Digest::of(&amd).to_string());
    assert_eq!(
        summary["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        summary["blobs"]["skipped"], 3,
        "the destination had them all"
    );
}

#[test]
fn a_corrupt_blob_is_refused_named_and_never_stored() {
    let reg = Registry::start(Mode::Plain).unwrap();
    let reg2 = Registry::start(Mode::Plain).unwrap();
    let fixture = push_fixture(&reg);
    let (_, blobs) = two_platform_index(&reg, &fixture);
    let proxy = FaultProxy::in_front_of(&reg).unwrap();
    let victim = blobs[0].digest;
    let rule = proxy.inject(
        "GET",
        &format!("/blobs/{victim}"),
        Fault::CorruptByte { offset: 10 },
        Times::Always,
    );
    let cache = tempfile::tempdir().unwrap();
    let src = format!("{}/library/python:multi", proxy.host());
    let dst = format!("{}/mirror/python:multi", reg2.host());

    let out = rbuild(&["copy", &src, &dst], cache.path());
    assert_eq!(out.status.code(), Some(1));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "one error line: {errors:?}");
    assert!(errors[0].contains(&victim.to_string()), "{}", errors[0]);
    assert!(
        errors[0].contains("does not match its digest"),
        "{}",
        errors[0]
    );
    assert!(proxy.hits(rule) > 1, "a mismatch is retried");
    assert!(
        !cache
            .path()
            .join("blobs/sha256")
            .join(victim.hex())
            .exists()
    );
    assert_eq!(
        std::fs::read_dir(cache.path().join("tmp")).unwrap().count(),
        0,
        "no temp file left"
    );
    assert!(skopeo_raw(&dst).is_none(), "no tag was written");
}

#[test]
fn transient_faults_are_retried_and_the_copy_verifies() {
    let reg = Registry::start(Mode::Plain).unwrap();
    let reg2 = Registry::start(Mode::Plain).unwrap();
    let fixture = push_fixture(&reg);
    let (index_bytes, blobs) = two_platform_index(&reg, &fixture);
    let src_proxy = FaultProxy::in_front_of(&reg).unwrap();
    let dst_proxy = FaultProxy::in_front_of(&reg2).unwrap();
    // The largest blob gets the reset in the middle; the others the other faults.
    let mut by_size = blobs.clone();
    by_size.sort_by_key(|d| std::cmp::Reverse(d.size));
    assert!(by_size.len() >= 4 && by_size[0].size > 100_000);
    let blob = |i: usize| format!("/blobs/{}", by_size[i].digest);
    let rules_src = [
        src_proxy.inject(
            "GET",
            "/manifests/multi",
            Fault::Status(500),
            Times::First(1),
        ),
        // The big layer is cut off after 100 kB once, then answered 429 once.
        src_proxy.inject(
            "GET",
            &blob(0),
            Fault::ResetAfter { bytes: 100_000 },
            Times::First(1),
        ),
        src_proxy.inject(
            "GET",
            &blob(0),
            Fault::TooManyRequests {
                retry_after_secs: 1,
            },
            Times::First(1),
        ),
        src_proxy.inject("GET", &blob(1), Fault::RedirectToCdn, Times::Always),
        src_proxy.inject("GET", &blob(2), Fault::Status(503), Times::First(2)),
        src_proxy.inject(
            "GET",
            &blob(3),
            Fault::Delay(std::time::Duration::from_millis(300)),
            Times::First(1),
        ),
    ];
    let rules_dst = [
        dst_proxy.inject(
            "PUT",
            r"/blobs/uploads/",
            Fault::Status(500),
            Times::First(1),
        ),
        dst_proxy.inject("PUT", r"/manifests/", Fault::Status(502), Times::First(1)),
        dst_proxy.inject("HEAD", r"/blobs/", Fault::Status(500), Times::First(1)),
    ];
    let cache = tempfile::tempdir().unwrap();
    let src = format!("{}/library/python:multi", src_proxy.host());
    let dst = format!("{}/mirror/python:multi", dst_proxy.host());

    let out = rbuild(&["-v", "copy", &src, &dst], cache.path());
    ok(&out);
    for r in rules_src {
        assert!(src_proxy.hits(r) >= 1, "source fault {r} fired");
    }
    for r in rules_dst {
        assert!(dst_proxy.hits(r) >= 1, "destination fault {r} fired");
    }
    assert!(
        !src_proxy.cdn_requests().is_empty(),
        "the redirected blob was fetched from the CDN listener"
    );
    assert!(src_proxy.cdn_requests().iter().all(|r| r.status == 200));
    let dst_direct = format!("{}/mirror/python:multi", reg2.host());
    assert_eq!(skopeo_raw(&dst_direct).unwrap(), index_bytes);
    let oci = tempfile::tempdir().unwrap();
    skopeo_copy_verifies(&dst_direct, &oci.path().join("layout"));
}

#[test]
fn persistent_faults_fail_cleanly_and_leave_the_tag_alone() {
    let reg = Registry::start(Mode::Plain).unwrap();
    let reg2 = Registry::start(Mode::Plain).unwrap();
    let fixture = push_fixture(&reg);
    let _ = two_platform_index(&reg, &fixture);
    let dst_proxy = FaultProxy::in_front_of(&reg2).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let src = format!("{}/library/python:multi", reg.host());
    let dst = format!("{}/mirror/python:multi", dst_proxy.host());
    let dst_direct = format!("{}/mirror/python:multi", reg2.host());

    // The tag exists and points at the amd64 image.
    ok(&rbuild(
        &["copy", "--platform", "linux/amd64", &src, &dst],
        cache.path(),
    ));
    let old = skopeo_raw(&dst_direct).unwrap();

    // Child manifests can never be pushed: the copy fails, the tag is untouched.
    dst_proxy.inject(
        "PUT",
        r"/manifests/sha256:",
        Fault::Status(500),
        Times::Always,
    );
    let out = rbuild(&["copy", &src, &dst], cache.path());
    assert_eq!(out.status.code(), Some(1));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("500"), "{}", errors[0]);
    assert!(errors[0].contains("gave up after"), "{}", errors[0]);
    assert_eq!(
        skopeo_raw(&dst_direct).unwrap(),
        old,
        "the tag still points at the old image"
    );
    assert_eq!(
        dst_proxy.count("PUT", r"/manifests/multi"),
        1,
        "only the first (successful) copy wrote the tag"
    );

    // Blob uploads always fail: a new tag never appears.
    dst_proxy.clear_faults();
    dst_proxy.inject(
        "POST",
        r"/blobs/uploads/",
        Fault::Status(503),
        Times::Always,
    );
    let fresh = format!("{}/other/python:new", dst_proxy.host());
    let out = rbuild(&["copy", &src, &fresh], cache.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(error_lines(&out).len(), 1);
    assert!(skopeo_raw(&format!("{}/other/python:new", reg2.host())).is_none());
}

#[test]
fn usage_and_reference_errors() {
    let cache = tempfile::tempdir().unwrap();
    let out = rbuild(&["copy", "only-one-arg"], cache.path());
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    let out = rbuild(&["inspect", "--platform", "linux", "x"], cache.path());
    assert_eq!(out.status.code(), Some(2));
    let out = rbuild(&["inspect", "UPPER:tag"], cache.path());
    assert_eq!(out.status.code(), Some(1));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains("must be lowercase"), "{}", errors[0]);
}
