//! Issue 19, the local part: a damaged content store heals (a flipped byte, a truncated base
//! blob, a directory in a blob's place, garbage in the records), a read-only store gives one
//! message, `cache prune --all` beside running builds breaks none of them, concurrent builds into
//! one OCI layout keep every tag, a killed layout write leaves `umoci gc` working, and a failing
//! `--json` build prints a JSON error.
//!
//! Real registry and base fixture from rbuild-testing; projects without a lockfile (no index).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use rbuild_testing::Registry;

/// A project with one file.
fn project(root: &Path) -> PathBuf {
    let dir = root.join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.py"), "print('hello')\n").unwrap();
    dir
}

/// `rbuild build DIR --base BASE --output oci:LAYOUT:TAG` with a fixed epoch.
fn build_into(dir: &Path, base: &str, layout: &Path, tag: &str, cache: &Path) -> Output {
    let out = format!("oci:{}:{tag}", layout.display());
    let mut args = vec![
        "build",
        dir.to_str().unwrap(),
        "--platform",
        "linux/amd64",
        "--output",
        &out,
    ];
    let scratch = [
        "--base",
        "scratch",
        "--python-version",
        "3.11",
        "--libc",
        "glibc-2.36",
    ];
    if base == "scratch" {
        args.extend_from_slice(&scratch);
    } else {
        args.extend_from_slice(&["--base", base]);
    }
    rbuild_env(&args, cache, &[("SOURCE_DATE_EPOCH", "1700000000")])
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The blobs of a store, largest first.
fn blobs_by_size(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(cache.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .filter_map(|e| Some((e.metadata().ok()?.len(), e.path())))
        .collect();
    v.sort();
    v.into_iter().rev().map(|(_, p)| p).collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn umoci(args: &[&str]) -> Output {
    Command::new("umoci")
        .args(args)
        .output()
        .expect("running umoci")
}

#[test]
fn a_damaged_store_heals_and_a_read_only_one_gives_one_message() {
    let registry = Registry::plain().expect("registry");
    push_fixture(&registry);
    let base = format!("{}/library/python:3.11-slim", registry.host());
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    let cache = tmp.path().join("cache");
    let first = build_into(&dir, &base, &tmp.path().join("l0"), "t", &cache);
    let digest = ok(&first).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");

    type Damage = Box<dyn Fn(&Path)>;
    let damages: Vec<(&str, Damage, bool)> = vec![
        (
            "a flipped byte in a layer blob",
            Box::new(|cache| {
                let p = &blobs_by_size(cache)[0];
                let mut b = std::fs::read(p).unwrap();
                let i = b.len() / 2;
                b[i] ^= 0x20;
                std::fs::write(p, b).unwrap();
            }),
            true,
        ),
        (
            "a truncated base blob",
            Box::new(|cache| {
                let p = &blobs_by_size(cache)[1];
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() / 3]).unwrap();
            }),
            true,
        ),
        (
            "a directory in place of every blob",
            Box::new(|cache| {
                for p in blobs_by_size(cache) {
                    std::fs::remove_file(&p).unwrap();
                    std::fs::create_dir_all(p.join("junk")).unwrap();
                }
            }),
            true,
        ),
        (
            "garbage in every record",
            Box::new(|cache| {
                for p in files_under(&cache.join("keys")) {
                    std::fs::write(&p, b"\x00garbage{[").unwrap();
                }
            }),
            false,
        ),
    ];
    for (i, (what, damage, says)) in damages.iter().enumerate() {
        damage(&cache);
        let out = build_into(
            &dir,
            &base,
            &tmp.path().join(format!("l{}", i + 1)),
            "t",
            &cache,
        );
        let got = ok(&out).trim().to_string();
        assert_eq!(got, digest, "{what}: the same image\n{}", stderr(&out));
        if *says {
            assert!(
                stderr(&out).contains("repaired the content store"),
                "{what}: the build says it repaired the store:\n{}",
                stderr(&out)
            );
        }
        // What was written is whole: umoci reads every blob of the layout.
        let layout = tmp.path().join(format!("l{}", i + 1));
        let ls = umoci(&["ls", "--layout", layout.to_str().unwrap()]);
        assert!(
            ls.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&ls.stderr)
        );
    }

    // A read-only store (a read-only bind mount: root ignores file modes).
    let ro = cache.to_str().unwrap();
    let mounted = Command::new("mount")
        .args(["--bind", ro, ro])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipping the read-only part: cannot bind-mount");
        return;
    }
    let remounted = Command::new("mount")
        .args(["-o", "remount,ro,bind", ro])
        .status()
        .is_ok_and(|s| s.success());
    let out = build_into(&dir, &base, &tmp.path().join("lro"), "t", &cache);
    let _ = Command::new("umount").arg(ro).status();
    if !remounted {
        eprintln!("skipping the read-only part: cannot remount read-only");
        return;
    }
    assert!(!out.status.success());
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one message:\n{err}");
    assert!(
        errors[0].contains(ro) && errors[0].contains("RBUILD_CACHE_DIR"),
        "names the store and the way out:\n{err}"
    );
}

#[test]
fn prune_all_in_a_loop_beside_five_builds_breaks_none() {
    let registry = Registry::plain().expect("registry");
    push_fixture(&registry);
    let base = format!("{}/library/python:3.11-slim", registry.host());
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    let reference = build_into(
        &dir,
        &base,
        &tmp.path().join("ref"),
        "t",
        &tmp.path().join("ref-cache"),
    );
    let digest = ok(&reference).trim().to_string();

    let cache = tmp.path().join("cache");
    let stop = Arc::new(AtomicBool::new(false));
    let prunes = Arc::new(AtomicUsize::new(0));
    let pruner = {
        let (stop, prunes, cache) = (stop.clone(), prunes.clone(), cache.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let out = rbuild(&["cache", "prune", "--all"], &cache);
                ok(&out);
                prunes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let builds: Vec<_> = (0..5)
        .map(|i| {
            let (dir, base, cache) = (dir.clone(), base.clone(), cache.clone());
            let layout = tmp.path().join(format!("out{i}"));
            std::thread::spawn(move || build_into(&dir, &base, &layout, "t", &cache))
        })
        .collect();
    let outs: Vec<Output> = builds.into_iter().map(|b| b.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    pruner.join().unwrap();
    assert!(prunes.load(Ordering::Relaxed) > 0);
    for (i, out) in outs.iter().enumerate() {
        assert_eq!(ok(out).trim(), digest, "build {i}:\n{}", stderr(out));
    }
    // Nothing is left running: a last prune empties the store, partial files included.
    ok(&rbuild(&["cache", "prune", "--all"], &cache));
    assert!(files_under(&cache.join("tmp")).is_empty());
    assert!(files_under(&cache.join("blobs")).is_empty());
}

#[test]
fn eight_concurrent_builds_into_one_layout_keep_every_tag() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    let cache = tmp.path().join("cache");
    let layout = tmp.path().join("layout");
    for round in 0..10 {
        let builds: Vec<_> = (0..8)
            .map(|i| {
                let (dir, cache, layout) = (dir.clone(), cache.clone(), layout.clone());
                std::thread::spawn(move || {
                    build_into(&dir, "scratch", &layout, &format!("r{round}-{i}"), &cache)
                })
            })
            .collect();
        for b in builds {
            ok(&b.join().unwrap());
        }
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut tags: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    tags.sort();
    let mut want: Vec<String> = (0..10)
        .flat_map(|r| (0..8).map(move |i| format!("r{r}-{i}")))
        .collect();
    want.sort();
    assert_eq!(tags, want, "every tag present");
}

#[test]
fn a_killed_layout_write_leaves_umoci_gc_working() {
    let registry = Registry::plain().expect("registry");
    push_fixture(&registry);
    let base = format!("{}/library/python:3.11-slim", registry.host());
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    let cache = tmp.path().join("cache");
    let layout = tmp.path().join("layout");
    ok(&build_into(&dir, &base, &layout, "first", &cache));
    for k in 1..=6u64 {
        let out = format!("oci:{}:k{k}", layout.display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
            .args([
                "build",
                dir.to_str().unwrap(),
                "--platform",
                "linux/amd64",
                "--base",
                &base,
                "--output",
                &out,
            ])
            .env("RBUILD_CACHE_DIR", &cache)
            .env("HOME", tmp.path())
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Into a fresh store every other time, so the kill falls while blobs are written.
        std::thread::sleep(std::time::Duration::from_millis(100 * k));
        let _ = child.kill();
        let _ = child.wait();
    }
    let leftovers: Vec<String> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temp file in blobs/: {leftovers:?}"
    );
    let l = layout.to_str().unwrap();
    let ls = umoci(&["ls", "--layout", l]);
    assert!(
        ls.status.success(),
        "{}",
        String::from_utf8_lossy(&ls.stderr)
    );
    let gc = umoci(&["gc", "--layout", l]);
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    // And the layout takes the next write.
    ok(&build_into(&dir, &base, &layout, "after", &cache));
}

#[test]
fn a_failing_json_build_prints_a_json_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let missing = tmp.path().join("no-such-project");
    let out = build_into(&missing, "scratch", &tmp.path().join("l"), "t", &cache);
    assert!(!out.status.success());
    let out = rbuild_env(
        &[
            "build",
            missing.to_str().unwrap(),
            "--json",
            "--base",
            "scratch",
            "--python-version",
            "3.11",
            "--libc",
            "glibc-2.36",
            "--platform",
            "linux/amd64",
            "--output",
            &format!("oci:{}", tmp.path().join("l").display()),
        ],
        &cache,
        &[],
    );
    assert!(!out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let message = doc["error"]["message"].as_str().unwrap();
    assert!(message.contains("no-such-project"), "{doc}");
    assert_eq!(doc["schema"], 1, "{doc}");
    assert!(doc["error"]["exit_code"].as_u64().unwrap() > 0, "{doc}");
}

#[test]
fn builds_killed_while_downloading_leave_no_partial_file_behind() {
    use rbuild_testing::{Fault, FaultProxy, Times};
    let registry = Registry::plain().expect("registry");
    push_fixture(&registry);
    // A slow link (2 MB/s) to the registry, so each kill lands while base blobs stream in.
    let proxy = FaultProxy::in_front_of(&registry).expect("proxy");
    proxy.inject(
        "GET",
        r"/blobs/sha256:",
        Fault::Throttle {
            bytes_per_sec: 2_000_000,
        },
        Times::Always,
    );
    let slow_base = format!("{}/library/python:3.11-slim", proxy.host());
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    let cache = tmp.path().join("cache");
    let layout = tmp.path().join("layout");
    for k in 0..10u64 {
        let out = format!("oci:{}:k{k}", layout.display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
            .args([
                "build",
                dir.to_str().unwrap(),
                "--platform",
                "linux/amd64",
                "--base",
                &slow_base,
                "--output",
                &out,
            ])
            .env("RBUILD_CACHE_DIR", &cache)
            .env("HOME", tmp.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1200 + 150 * k));
        let _ = child.kill();
        let _ = child.wait();
    }
    let partial_before: Vec<PathBuf> = files_under(&cache.join("tmp"));
    assert!(
        !partial_before.is_empty(),
        "the kills left partial downloads to clean up (else this test tests nothing)"
    );
    // Files older than the next run must be gone after it and `cache prune`.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let run_start = std::time::SystemTime::now();
    let base = format!("{}/library/python:3.11-slim", registry.host());
    ok(&build_into(&dir, &base, &layout, "after", &cache));
    ok(&rbuild(&["cache", "prune"], &cache));
    let old: Vec<String> = files_under(&cache.join("tmp"))
        .into_iter()
        .chain(files_under(&cache.join("blobs")))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let stale = std::fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < run_start);
            // In blobs/ only complete blobs (named by their digest) may stay.
            stale && (p.starts_with(cache.join("tmp")) || name.starts_with('.'))
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(old.is_empty(), "partial files left behind: {old:?}");
    // What stayed in blobs/ is whole: every blob hashes to its name.
    for p in files_under(&cache.join("blobs/sha256")) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(
            rbuild_oci::Digest::of(&bytes).hex(),
            name,
            "{} is whole",
            p.display()
        );
    }
}
