//! Golden digests: the images the examples build must not change while the pipeline is refactored.
//!
//! Two sets, in `tests/golden/digests.json`:
//! - **scratch**: every example built on `scratch` with the target given (`--python-version 3.11
//!   --libc glibc-2.36`), so the digests depend only on rbuild and the locked wheels (pinned by
//!   sha256), never on the Debian packages the base fixture was built from: checked everywhere.
//!   One and two platforms, OCI and Docker formats, OCI layout, docker-archive and registry sinks.
//! - **fixture**: the examples on the Debian-built base fixture (user layer, base facts, pip
//!   whiteouts). The fixture's own digest changes when Debian publishes updates, so these are kept
//!   per fixture digest and checked when the fixture matches.
//!
//! Every image config of the scratch set is also an `insta` snapshot (`tests/snapshots/`), so a
//! change shows *what* changed. A deliberate change: `RBUILD_UPDATE_GOLDEN=1` rewrites the digests
//! file (and `INSTA_UPDATE=always` the snapshots); the commit says why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rbuild_e2e::{copy_tree, rbuild, repo_root, sh};
use rbuild_testing::{BaseFixture, Registry};
use serde_json::Value;

const BASE_REPO: &str = "library/python:3.11-slim";
const SCRATCH: &[&str] = &[
    "--base",
    "scratch",
    "--python-version",
    "3.11",
    "--libc",
    "glibc-2.36",
];

/// (name, example, extra flags)
fn scratch_cases() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    vec![
        ("fastapi", "fastapi-app", vec!["--platform", "linux/amd64"]),
        (
            "fastapi-two-platforms",
            "fastapi-app",
            vec!["--platform", "linux/amd64,linux/arm64"],
        ),
        (
            "fastapi-docker",
            "fastapi-app",
            vec![
                "--platform",
                "linux/amd64",
                "--format",
                "docker",
                "--compression",
                "gzip",
            ],
        ),
        ("flask", "flask-app", vec!["--platform", "linux/amd64"]),
        ("django", "django-app", vec!["--platform", "linux/amd64"]),
        (
            "s2i",
            "s2i-app",
            vec!["--platform", "linux/amd64", "--recipe", "s2i"],
        ),
        (
            "script",
            "script-app",
            vec![
                "--platform",
                "linux/amd64",
                "--entrypoint",
                r#"["/usr/local/bin/python3","-m","greeter"]"#,
                "--env",
                "GREETING=hi",
                "--port",
                "9000",
                "--label",
                "team=core",
            ],
        ),
    ]
}

fn golden_path() -> PathBuf {
    repo_root().join("tests/golden/digests.json")
}

fn load_golden() -> Value {
    std::fs::read(golden_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({"scratch": {}, "fixture": {}}))
}

fn updating() -> bool {
    std::env::var_os("RBUILD_UPDATE_GOLDEN").is_some()
}

/// Checks `got` against the golden set `set` (updating it when asked); returns the mismatches.
fn compare(set: &str, key: Option<&str>, got: &BTreeMap<String, String>) -> Vec<String> {
    let mut golden = load_golden();
    let slot = match key {
        Some(k) => &mut golden[set][k],
        None => &mut golden[set],
    };
    if updating() {
        *slot = serde_json::to_value(got).unwrap();
        let mut text = serde_json::to_string_pretty(&golden).unwrap();
        text.push('\n');
        std::fs::write(golden_path(), text).unwrap();
        return Vec::new();
    }
    got.iter()
        .filter(|(name, digest)| slot.get(name.as_str()).and_then(Value::as_str) != Some(digest))
        .map(|(name, digest)| {
            format!(
                "{set} {name}: built {digest}, golden {}",
                slot.get(name.as_str()).unwrap_or(&Value::Null)
            )
        })
        .collect()
}

fn example(name: &str, into: &Path) -> PathBuf {
    let dir = into.join(name);
    copy_tree(&repo_root().join("examples").join(name), &dir);
    dir
}

/// The config JSON of the single image in an OCI layout tag.
fn layout_config(layout: &Path, tag: &str) -> Value {
    serde_json::from_slice(
        &sh(
            "skopeo",
            &[
                "inspect",
                "--config",
                &format!("oci:{}:{tag}", layout.display()),
            ],
        )
        .stdout,
    )
    .unwrap()
}

#[test]
fn scratch_images_match_their_golden_digests_and_config_snapshots() {
    rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
    let registry = Registry::plain().expect("start the registry");
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut got = BTreeMap::new();
    for (name, ex, extra) in scratch_cases() {
        let dir = example(ex, &work.path().join(name));
        let layout = work.path().join(format!("{name}-layout"));
        let mut args = vec!["build", "--json"];
        args.extend_from_slice(SCRATCH);
        args.extend(extra.iter().copied());
        let out = format!("oci:{}:g", layout.display());
        args.extend(["--output", out.as_str()]);
        let doc = rbuild(&dir, cache.path(), &[], &args).ok().json();
        let digest = doc["digest"].as_str().unwrap().to_string();
        got.insert(name.to_string(), digest.clone());
        if !name.contains("two-platforms") && !name.contains("docker") {
            let mut cfg = layout_config(&layout, "g");
            // The revision/source labels depend on the checkout (none here: a copied tree).
            if let Some(l) = cfg["config"]["Labels"].as_object_mut() {
                l.retain(|k, _| !k.starts_with("org.opencontainers.image.revision"));
            }
            insta::assert_json_snapshot!(format!("config-{name}"), cfg);
        }
        if name == "fastapi" {
            // The same image through the two other sinks.
            let archive = work.path().join("fastapi.tar");
            let to = format!("{}/golden/fastapi:g", registry.host());
            let mut args = vec!["build", "--json"];
            args.extend_from_slice(SCRATCH);
            args.extend(extra.iter().copied());
            let out = format!("docker-archive:{}:golden/fastapi:g", archive.display());
            args.extend(["--output", out.as_str(), "--to", to.as_str()]);
            let again = rbuild(&dir, cache.path(), &[], &args).ok().json();
            assert_eq!(
                again["digest"].as_str().unwrap(),
                digest,
                "same image on every sink"
            );
            assert_eq!(
                again["references"][0].as_str().unwrap(),
                format!("{to}@{digest}")
            );
            let (archive_digest, _) = rbuild_oci_digest(&archive);
            got.insert("fastapi-docker-archive-file".into(), archive_digest);
        }
    }
    let bad = compare("scratch", None, &got);
    assert!(
        bad.is_empty(),
        "golden digests changed:\n{}",
        bad.join("\n")
    );
}

/// A digest over the layout's manifest and config with the registry's address (in the base-name
/// annotation and label; its port changes every run) replaced by `REGISTRY`, and the config's
/// digest in the manifest (which changes with it) by `CONFIG`.
fn manifest_without_registry(layout: &Path, host: &str) -> String {
    let blob = |digest: &str| {
        let text =
            std::fs::read_to_string(layout.join("blobs/sha256").join(&digest["sha256:".len()..]))
                .unwrap();
        assert!(text.contains(host), "the base is named by its registry");
        text.replace(host, "REGISTRY")
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(&manifest_digest["sha256:".len()..]),
        )
        .unwrap(),
    )
    .unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let both = format!(
        "{}\n{}",
        blob(manifest_digest).replace(config_digest, "CONFIG"),
        blob(config_digest)
    );
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), both).unwrap();
    rbuild_oci_digest(tmp.path()).0
}

fn rbuild_oci_digest(path: &Path) -> (String, u64) {
    let out = sh("sha256sum", &[&path.display().to_string()]);
    let hex = String::from_utf8(out.stdout).unwrap();
    let hex = hex.split_whitespace().next().unwrap().to_string();
    (
        format!("sha256:{hex}"),
        std::fs::metadata(path).unwrap().len(),
    )
}

#[test]
fn fixture_images_match_their_golden_digests_for_this_fixture() {
    rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
    let registry = Registry::plain().expect("start the registry");
    let fixture = BaseFixture::ensure().expect("base fixture");
    fixture.push_to(&registry, BASE_REPO).unwrap();
    let base_digest = fixture.descriptor().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let base = format!("{}/{BASE_REPO}", registry.host());
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut got = BTreeMap::new();
    for (name, ex, extra) in [
        ("fastapi", "fastapi-app", vec![]),
        ("flask", "flask-app", vec![]),
        ("django", "django-app", vec!["--user", "1234:1234"]),
        ("s2i", "s2i-app", vec!["--recipe", "s2i"]),
        ("fastapi-zstd", "fastapi-app", vec!["--compression", "zstd"]),
    ] {
        let dir = example(ex, &work.path().join(name));
        let layout = work.path().join(format!("{name}-layout"));
        let out = format!("oci:{}:g", layout.display());
        let mut args = vec!["build", "--json", "--base", base.as_str(), "--output", &out];
        args.extend(extra.iter().copied());
        rbuild(&dir, cache.path(), &[], &args).ok();
        got.insert(
            name.to_string(),
            manifest_without_registry(&layout, &registry.host()),
        );
    }
    let golden = load_golden();
    if !updating() && golden["fixture"].get(&base_digest).is_none() {
        eprintln!(
            "the base fixture here ({base_digest}) is not one the golden file knows (Debian updated \
             its packages); only the scratch set is checked. Known: {}",
            golden["fixture"]
        );
        return;
    }
    let bad = compare("fixture", Some(&base_digest), &got);
    assert!(
        bad.is_empty(),
        "golden digests changed:\n{}",
        bad.join("\n")
    );
}
