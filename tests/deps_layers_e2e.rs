//! Dependency layers under a budget (issue #21), end to end against the real registry and the
//! Debian-built base fixture, with real wheels from PyPI pinned by sha256: the same lock installed
//! in one layer and in several gives the same merged filesystem (read back with skopeo + umoci),
//! the base's pip is still replaced (whiteouts in pip's own layer), and one small pin added leaves
//! the heavy layers byte-identical and uploads a few percent of the dependency bytes.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rbuild_e2e::{Bundle, copy_tree, rbuild, repo_root};
use rbuild_testing::Registry;
use serde_json::Value;

const BASE_REPO: &str = rbuild_testing::SLIM_BASE_REPO;

struct Env {
    registry: Registry,
    cache: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
        let registry = Registry::plain_with_slim_base().expect("a registry with the base fixture");
        Env {
            registry,
            cache: tempfile::tempdir().unwrap(),
        }
    }
    fn to(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.host())
    }
    fn build_in(&self, cache: &Path, dir: &Path, extra: &[&str]) -> Value {
        let base = format!("{}/{BASE_REPO}", self.registry.host());
        let mut args = vec![
            "build",
            "--json",
            "--base",
            base.as_str(),
            "--recipe",
            "none",
            "--entrypoint",
            r#"["python3"]"#,
        ];
        args.extend_from_slice(extra);
        if !extra.contains(&"--to") {
            args.push("--no-push");
        }
        rbuild(dir, cache, &[], &args).ok().json()
    }
    fn build(&self, dir: &Path, extra: &[&str]) -> Value {
        self.build_in(self.cache.path(), dir, extra)
    }
}

/// The pins of the test project: numpy (heavy, from tests/fixtures/heavy), pip newer than the
/// base fixture's 24.0 (heavy too: 1.8 MB; it replaces the base's pip) and three small
/// pure-Python wheels.
fn requirements() -> String {
    let heavy =
        std::fs::read_to_string(repo_root().join("tests/fixtures/heavy/requirements.txt")).unwrap();
    let mut numpy = String::new();
    let mut inside = false;
    for line in heavy.lines() {
        if line.starts_with("numpy==") {
            inside = true;
        } else if !line.starts_with(' ') {
            inside = false;
        }
        if inside {
            numpy.push_str(line);
            numpy.push('\n');
        }
    }
    assert!(numpy.contains("--hash=sha256:"), "numpy pins: {numpy}");
    numpy.pop();
    // A requirements file's last hash line has no continuation.
    let numpy = numpy.trim_end_matches(" \\").to_string() + "\n";
    numpy
        + "pip==25.1.1 \\\n    --hash=sha256:2913a38a2abf4ea6b64ab507bd9e967f3b53dc1ede74b01b0931e1ce548751af\n\
           idna==3.10 \\\n    --hash=sha256:946d195a0d259cbba61165e88e65941f16e9b36ea6ddb97f00452bae8b1287d3\n\
           certifi==2025.1.31 \\\n    --hash=sha256:ca78db4565a652026a4db2bcdf68f2fb589ea80d0be70e03929ed730746b84fe\n\
           packaging==24.2 \\\n    --hash=sha256:09abb1bccd265c01f4a3aa3f7a7db064b36514d2cba19a2f694fe6150451a759\n"
}

const SIX: &str = "six==1.17.0 \\\n    --hash=sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274\n";

fn project() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layers");
    copy_tree(&repo_root().join("tests/fixtures/heavy"), &dir);
    std::fs::write(
        dir.join("requirements.in"),
        "numpy\npip\nidna\ncertifi\npackaging\n",
    )
    .unwrap();
    std::fs::write(dir.join("requirements.txt"), requirements()).unwrap();
    (tmp, dir)
}

fn deps_layers(doc: &Value) -> Vec<Value> {
    doc["platforms"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "deps")
        .cloned()
        .collect()
}

/// What a path is in a merged root filesystem: kind, mode and owner (contents compared apart).
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir(u32, u32, u32),
    File(u32, u32, u32, u64),
    Link(String),
}

fn walk(root: &Path) -> BTreeMap<String, Node> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let node = if m.file_type().is_symlink() {
                Node::Link(std::fs::read_link(&p).unwrap().display().to_string())
            } else if m.is_dir() {
                Node::Dir(m.mode() & 0o7777, m.uid(), m.gid())
            } else {
                Node::File(m.mode() & 0o7777, m.uid(), m.gid(), m.len())
            };
            let is_dir = matches!(node, Node::Dir(..));
            out.insert(rel, node);
            if is_dir {
                go(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    go(root, root, &mut out);
    out
}

/// The paths under `root` whose name is `name`.
fn find(root: &Path, name: &str) -> Vec<String> {
    walk(root)
        .into_keys()
        .filter(|p| p.rsplit('/').next() == Some(name))
        .collect()
}

#[test]
fn one_and_several_dependency_layers_install_the_same_files_and_replace_the_base_pip() {
    let env = Env::new();
    let (_t, dir) = project();
    let one_ref = env.to("layers/merged:one");
    let many_ref = env.to("layers/merged:many");
    let one = env.build(&dir, &["--deps-layers", "1", "--to", &one_ref]);
    let many = env.build(&dir, &["--deps-layers", "8", "--to", &many_ref]);
    assert_eq!(deps_layers(&one).len(), 1);
    let many_deps = deps_layers(&many);
    // numpy and pip alone, the three small wheels in (at most) two groups.
    assert!(
        (3..=4).contains(&many_deps.len()),
        "dependency layers: {many_deps:?}"
    );
    assert_ne!(one["digest"], many["digest"]);

    let (a, b) = (Bundle::pull(&one_ref), Bundle::pull(&many_ref));
    let (ta, tb) = (walk(&a.rootfs()), walk(&b.rootfs()));
    let only_a: Vec<&String> = ta.keys().filter(|k| !tb.contains_key(*k)).collect();
    let only_b: Vec<&String> = tb.keys().filter(|k| !ta.contains_key(*k)).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "only with one layer: {only_a:?}\nonly with several: {only_b:?}"
    );
    for (path, node) in &ta {
        assert_eq!(node, &tb[path], "/{path}");
        if let Node::File(..) = node {
            let (x, y) = (
                std::fs::read(a.rootfs().join(path)).unwrap(),
                std::fs::read(b.rootfs().join(path)).unwrap(),
            );
            assert!(x == y, "/{path} differs");
        }
    }
    // The base's pip 24.0 is gone (RECORD, files, metadata), pip 25.1.1 is there, once.
    let root = b.rootfs();
    assert!(find(&root, "pip-24.0.dist-info").is_empty());
    let dist_infos = find(&root, "pip-25.1.1.dist-info");
    assert_eq!(dist_infos.len(), 1, "{dist_infos:?}");
    let record = std::fs::read_to_string(root.join(&dist_infos[0]).join("RECORD")).unwrap();
    assert!(record.contains("pip/__init__.py,sha256="), "{record}");
    assert!(root.join("usr/local/bin/pip").exists());
    let numpy = find(&root, "numpy-2.4.6.dist-info");
    assert_eq!(numpy.len(), 1, "{numpy:?}");
}

#[test]
fn a_small_pin_leaves_the_heavy_layers_alone_uploads_little_and_builds_reproducibly() {
    let env = Env::new();
    let (_t, dir) = project();
    let v1 = env.build(&dir, &["--to", &env.to("layers/heavy:v1")]);
    let log_before = env.registry.access_log().len();

    let mut req = std::fs::read_to_string(dir.join("requirements.txt")).unwrap();
    req.push_str(SIX);
    std::fs::write(dir.join("requirements.txt"), req).unwrap();
    let v2 = env.build(&dir, &["--to", &env.to("layers/heavy:v2")]);
    let (d1, d2) = (deps_layers(&v1), deps_layers(&v2));
    let digests = |d: &[Value]| -> Vec<String> {
        d.iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect()
    };
    let changed: Vec<&Value> = d2
        .iter()
        .filter(|l| !digests(&d1).contains(&l["digest"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        changed.len(),
        1,
        "one dependency layer changes: {d1:?}\n{d2:?}"
    );
    assert_eq!(changed[0]["status"], "built");
    // The two heavy layers (numpy, then pip: largest first) are byte-identical and come from
    // the store.
    for i in 0..2 {
        assert_eq!(d1[i]["digest"], d2[i]["digest"], "heavy layer {i}");
        assert_eq!(d2[i]["status"], "cached-local");
    }
    assert!(d1[0]["size"].as_u64().unwrap() > 10_000_000, "{:?}", d1[0]);

    // What went up: the blobs finished after the first push, sized from the new manifest.
    let sizes: BTreeMap<String, u64> = v2["platforms"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().unwrap().to_string(),
                l["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let uploaded: u64 = env.registry.access_log()[log_before..]
        .iter()
        .filter(|e| e.method == "PUT" && e.uri.contains("/blobs/uploads/"))
        .filter_map(|e| {
            let digest = e.uri.split("digest=").nth(1)?.split('&').next()?;
            let digest = digest.replace("%3A", ":").replace("%3a", ":");
            Some(sizes.get(&digest).copied().unwrap_or(0))
        })
        .sum();
    let total: u64 = d2.iter().map(|l| l["size"].as_u64().unwrap()).sum();
    assert!(
        uploaded * 20 <= total,
        "uploaded {uploaded} bytes of {total} dependency bytes"
    );
    eprintln!(
        "a small pin: {uploaded} bytes uploaded of {total} dependency bytes ({:.2} %)",
        uploaded as f64 * 100.0 / total as f64
    );

    // Reproducible: a second store, nothing shared but the inputs, gives the same image.
    let other = tempfile::tempdir().unwrap();
    let again = env.build_in(other.path(), &dir, &[]);
    assert_eq!(again["digest"], v2["digest"]);
}
