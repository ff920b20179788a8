//! `--timeout` and `RBUILD_HTTP_TIMEOUT` against a registry (behind the fault proxy) that accepts
//! and then never answers: the build fails within the bound times the retry budget, says which
//! operation, which registry and how long it waited, shows `note:` lines while it waits and
//! retries, and the tag stays where it was.
//!
//! The builds use a `scratch` base with the target given and no lockfile: no base fixture, no
//! index.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use rbuild_testing::{Fault, FaultProxy, Registry, Times};

const TARGET: &[&str] = &[
    "--base",
    "scratch",
    "--python-version",
    "3.11",
    "--libc",
    "glibc-2.36",
    "--platform",
    "linux/amd64",
];

fn build(
    dir: &Path,
    to: &str,
    extra: &[&str],
    cache: &Path,
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut args = vec!["build", dir.to_str().unwrap(), "--to", to];
    args.extend_from_slice(TARGET);
    args.extend_from_slice(extra);
    rbuild_env(&args, cache, env)
}

#[test]
fn a_stalled_registry_fails_within_the_bound_and_leaves_the_tag() {
    let registry = Registry::plain().expect("registry");
    let proxy = FaultProxy::in_front_of(&registry).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.py"), "print('one')\n").unwrap();
    let to = format!("{}/team/app:v1", proxy.host());
    let first = ok(&build(&dir, &to, &[], &cache, &[]));
    let first_digest = first.trim().split_once('@').unwrap().1.to_string();

    // A changed app, pushed while the registry hangs on manifest PUTs (bound from the env).
    std::fs::write(dir.join("main.py"), "print('two')\n").unwrap();
    proxy.inject(
        "PUT",
        r"/manifests/",
        Fault::Stall(Duration::from_secs(120)),
        Times::Always,
    );
    let started = Instant::now();
    let out = build(&dir, &to, &[], &cache, &[("RBUILD_HTTP_TIMEOUT", "2")]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // A stall is retried once: 2 attempts of 2 s, plus the pause between them (the bound is
    // generous for a loaded machine; without the one-retry rule this took about 26 s).
    assert!(took < Duration::from_secs(15), "took {took:?}: {stderr}");
    assert!(
        stderr.contains("pushing manifest")
            && stderr.contains(&proxy.host())
            && stderr.contains("no answer after waiting 2 s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("note:") && stderr.contains("still waiting for"),
        "waits are shown at default verbosity: {stderr}"
    );
    assert!(stderr.contains("gave up after 2 attempts"), "{stderr}");
    let raw = skopeo_raw(&format!("{}/team/app:v1", registry.host())).unwrap();
    assert_eq!(
        rbuild_oci::Digest::of(&raw).to_string(),
        first_digest,
        "the tag did not move"
    );

    // Blob upload starts hang (bound from the flag); -q shows no notes.
    proxy.clear_faults();
    proxy.inject(
        "POST",
        r"/blobs/uploads/",
        Fault::Stall(Duration::from_secs(120)),
        Times::Always,
    );
    let started = Instant::now();
    let out = build(&dir, &to, &["--timeout", "1.5", "-q"], &cache, &[]);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(25), "took {took:?}: {stderr}");
    assert!(
        stderr.contains("uploading blob") && stderr.contains("no answer after waiting 1.5 s"),
        "{stderr}"
    );
    assert!(!stderr.contains("note:"), "{stderr}");

    // An invalid value is a usage error.
    let out = build(&dir, &to, &["--timeout", "never"], &cache, &[]);
    assert_eq!(out.status.code(), Some(2));
}
