//! End to end: `rbuild build` on the example apps against the real registry and the Debian-built base
//! fixture, checked with independent tools (skopeo, umoci, runc) as a runtime would start the image.

use std::path::Path;
use std::time::Duration;

use rbuild_e2e::{Bundle, copy_tree, free_port, rbuild, repo_root, sh};
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
    fn base(&self) -> String {
        format!("{}/{BASE_REPO}", self.registry.host())
    }
    fn to(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.host())
    }
    fn build(&self, dir: &Path, extra: &[&str]) -> rbuild_e2e::Run {
        let base = self.base();
        let mut args = vec!["build", "--json", "--base", base.as_str()];
        args.extend_from_slice(extra);
        // Nothing pushed nor written: build into the store only (rbuild otherwise wants a destination).
        if !extra.iter().any(|a| *a == "--to" || *a == "--output") {
            args.push("--no-push");
        }
        rbuild(dir, self.cache.path(), &[], &args)
    }
}

fn example(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_tree(&repo_root().join("examples").join(name), &dir);
    (tmp, dir)
}

fn layers(doc: &Value) -> Vec<Value> {
    doc["platforms"][0]["layers"].as_array().unwrap().clone()
}

fn layer_of<'a>(layers: &'a [Value], kind: &str) -> &'a Value {
    layers
        .iter()
        .find(|l| l["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} layer in {layers:?}"))
}

fn locked_versions(dir: &Path) -> Vec<(String, String)> {
    // Read pins with the same tool a user would trust: the lockfile text.
    let mut out = Vec::new();
    if dir.join("uv.lock").exists() {
        let t: toml_like::Doc =
            toml_like::parse(&std::fs::read_to_string(dir.join("uv.lock")).unwrap());
        for (name, version, virtual_root) in t.packages {
            if !virtual_root {
                out.push((name, version));
            }
        }
    } else {
        for line in std::fs::read_to_string(dir.join("requirements.txt"))
            .unwrap()
            .lines()
        {
            if let Some((n, v)) = line.split_once("==")
                && !n.starts_with(' ')
                && !n.starts_with('#')
            {
                out.push((
                    n.trim().to_string(),
                    v.split_whitespace().next().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

/// A tiny reader for uv.lock's `[[package]]` name/version/source lines (enough for the check).
mod toml_like {
    pub struct Doc {
        pub packages: Vec<(String, String, bool)>,
    }
    pub fn parse(text: &str) -> Doc {
        let mut packages = Vec::new();
        let mut cur: Option<(String, String, bool)> = None;
        for line in text.lines() {
            if line == "[[package]]" {
                if let Some(p) = cur.take() {
                    packages.push(p);
                }
                cur = Some((String::new(), String::new(), false));
            } else if let Some(p) = cur.as_mut() {
                if let Some(v) = line.strip_prefix("name = ") {
                    p.0 = v.trim_matches('"').to_string();
                } else if let Some(v) = line.strip_prefix("version = ") {
                    p.1 = v.trim_matches('"').to_string();
                } else if line.starts_with("source = { virtual")
                    || line.starts_with("source = { editable")
                {
                    p.2 = true;
                }
            }
        }
        packages.extend(cur);
        Doc { packages }
    }
}

fn norm(n: &str) -> String {
    n.to_ascii_lowercase().replace(['_', '.'], "-")
}

/// Runs the image's process and checks `GET /health`, then checks users, ownership and installed
/// distributions inside the image.
fn check_running_app(reference: &str, port: u16, dir: &Path) {
    let bundle = Bundle::pull(reference);
    let cfg = bundle.config();
    assert_eq!(cfg["process"]["user"]["uid"], 1001, "runs as uid 1001");
    assert_eq!(cfg["process"]["cwd"], "/app");
    let container = bundle.start();
    let (status, body) = container.get(port, "/health", Duration::from_secs(40));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"status\":\"ok\"") || body.contains("\"status\": \"ok\""),
        "{body}"
    );
    drop(container);

    // Files under /app belong to root and are not writable by the app user.
    let meta = std::fs::metadata(bundle.rootfs().join("app/app/main.py")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0);
    assert_eq!(std::os::unix::fs::MetadataExt::mode(&meta) & 0o777, 0o644);

    let script = "import getpass, os, json, importlib.metadata as m\n\
        print(json.dumps({'user': getpass.getuser(), 'uid': os.getuid(), \
        'dists': sorted([d.metadata['Name'], d.version] for d in m.distributions())}))";
    let out = bundle.exec(&["/usr/bin/python3.11", "-c", script]);
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["user"], "app");
    assert_eq!(v["uid"], 1001);
    let dists: Vec<(String, String)> = v["dists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                norm(d[0].as_str().unwrap()),
                d[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (name, version) in locked_versions(dir) {
        assert!(
            dists.contains(&(norm(&name), version.clone())),
            "{name}=={version} missing from {dists:?}"
        );
    }
    assert_eq!(
        dists.iter().filter(|(n, _)| n == "pip").count(),
        1,
        "pip listed once: {dists:?}"
    );
}

#[test]
fn fastapi_example_builds_pushes_and_serves_as_non_root() {
    let env = Env::new();
    let (_tmp, dir) = example("fastapi-app");
    let port = free_port();
    let to = env.to("demo/fastapi:v1");
    let run = env
        .build(&dir, &["--to", &to, "--env", &format!("PORT={port}")])
        .ok();
    let doc = run.json();
    let digest = doc["digest"].as_str().unwrap();
    assert!(
        doc["references"][0]
            .as_str()
            .unwrap()
            .ends_with(&format!("demo/fastapi:v1@{digest}"))
    );
    let l = layers(&doc);
    let mut kinds: Vec<&str> = l.iter().map(|x| x["kind"].as_str().unwrap()).collect();
    let deps = kinds.iter().filter(|k| **k == "deps").count();
    // pydantic-core (2 MB) alone, the small wheels in the name-hash groups (8 layers at most).
    assert!((2..=8).contains(&deps), "{kinds:?}");
    kinds.dedup();
    assert_eq!(kinds, ["base", "deps", "user", "app"]);
    assert_eq!(layer_of(&l, "deps")["status"], "built");
    // skopeo sees the same manifest digest.
    let inspect = sh(
        "skopeo",
        &["inspect", "--tls-verify=false", &format!("docker://{to}")],
    );
    let sk: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(sk["Digest"], digest);
    check_running_app(&to, port, &dir);
}

#[test]
fn flask_example_serves_with_gunicorn() {
    let env = Env::new();
    let (_tmp, dir) = example("flask-app");
    let port = free_port();
    let to = env.to("demo/flask:v1");
    let doc = env
        .build(
            &dir,
            &[
                "--to",
                &to,
                "--env",
                &format!("PORT={port}"),
                "--env",
                "WEB_CONCURRENCY=2",
            ],
        )
        .ok()
        .json();
    assert_eq!(layer_of(&layers(&doc), "deps")["status"], "built");
    let bundle = Bundle::pull(&to);
    // Exec form, started by the image's Python: `... -m gunicorn ...`.
    let args = bundle.config()["process"]["args"].clone();
    let args: Vec<&str> = args
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap_or(""))
        .collect();
    assert!(args.windows(2).any(|w| w == ["-m", "gunicorn"]), "{args:?}");
    check_running_app(&to, port, &dir);
}

#[test]
fn builds_are_reproducible_and_layers_change_only_with_their_inputs() {
    let env = Env::new();
    let (_t1, a) = example("flask-app");
    let (_t2, b) = example("flask-app");
    // Different mtimes and owners in the second copy.
    sh(
        "touch",
        &[
            "-d",
            "2001-02-03 04:05:06",
            &b.join("app/main.py").display().to_string(),
        ],
    );
    sh("chown", &["-R", "4321:4321", &b.display().to_string()]);
    sh(
        "chmod",
        &["g+w", &b.join("app/main.py").display().to_string()],
    );
    let out_a = tempfile::tempdir().unwrap();
    let first = env
        .build(
            &a,
            &[
                "--output",
                &format!("oci:{}:v1", out_a.path().join("a").display()),
            ],
        )
        .ok()
        .json();
    // A second store, so nothing is shared but the inputs.
    let other_cache = tempfile::tempdir().unwrap();
    let base = env.base();
    let second = rbuild(
        &b,
        other_cache.path(),
        &[],
        &["build", "--json", "--base", &base, "--no-push"],
    )
    .ok()
    .json();
    assert_eq!(
        first["digest"], second["digest"],
        "same inputs from two directories give the same image"
    );

    // One app file changes: only the app layer changes.
    std::fs::write(
        b.join("app/main.py"),
        std::fs::read_to_string(b.join("app/main.py")).unwrap() + "\n# changed\n",
    )
    .unwrap();
    let app_changed = env.build(&b, &[]).ok().json();
    let (l1, l2) = (layers(&first), layers(&app_changed));
    assert_eq!(layer_of(&l2, "deps")["status"], "cached-local");
    for kind in ["deps", "user"] {
        assert_eq!(
            layer_of(&l1, kind)["digest"],
            layer_of(&l2, kind)["digest"],
            "{kind} layer unchanged"
        );
    }
    assert_ne!(
        layer_of(&l1, "app")["digest"],
        layer_of(&l2, "app")["digest"]
    );

    // One pin added to the lockfile: only the dependency layer changes.
    let mut req = std::fs::read_to_string(a.join("requirements.txt")).unwrap();
    req.push_str("six==1.17.0 \\\n    --hash=sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274\n");
    std::fs::write(a.join("requirements.txt"), req).unwrap();
    let deps_changed = env.build(&a, &[]).ok().json();
    let l3 = layers(&deps_changed);
    // One dependency layer (six's group) is built anew; the others are the same.
    let deps_of =
        |l: &[Value]| -> Vec<Value> { l.iter().filter(|x| x["kind"] == "deps").cloned().collect() };
    let (d1, d3) = (deps_of(&l1), deps_of(&l3));
    let changed: Vec<&Value> = d3
        .iter()
        .filter(|x| !d1.iter().any(|y| y["digest"] == x["digest"]))
        .collect();
    assert_eq!(changed.len(), 1, "{d1:?}\n{d3:?}");
    assert_eq!(changed[0]["status"], "built");
    // requirements.txt is part of the context, so the app layer changes with it too; the user layer
    // and the base layers never do.
    assert_eq!(
        layer_of(&l1, "user")["digest"],
        layer_of(&l3, "user")["digest"]
    );
    assert_eq!(l1[0]["digest"], l3[0]["digest"]);
}

#[test]
fn unchanged_lock_reuses_the_layer_without_opening_a_wheel() {
    let env = Env::new();
    let (_t, dir) = example("fastapi-app");
    let first = env.build(&dir, &[]).ok().json();
    // Remove every blob from the store except the layers rbuild made: a build that needed a wheel
    // (or a base layer) would now have to download it, and the index is made unreachable.
    let keep: Vec<String> = layers(&first)
        .iter()
        .filter(|l| l["kind"] != "base")
        .map(|l| {
            l["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string()
        })
        .collect();
    let blobs = env.cache.path().join("blobs/sha256");
    let mut removed = 0;
    for e in std::fs::read_dir(&blobs).unwrap() {
        let e = e.unwrap();
        if !keep.contains(&e.file_name().to_string_lossy().to_string()) {
            std::fs::remove_file(e.path()).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 10, "wheels and base layers were in the store");
    let base = env.base();
    let second = rbuild(
        &dir,
        env.cache.path(),
        &UNREACHABLE_INDEX,
        &["build", "--json", "--base", &base, "--no-push"],
    )
    .ok()
    .json();
    assert_eq!(first["digest"], second["digest"]);
    assert_eq!(layer_of(&layers(&second), "deps")["status"], "cached-local");
}

#[test]
fn empty_runner_reuses_the_dependency_layer_from_the_registry() {
    let env = Env::new();
    let (_t, dir) = example("fastapi-app");
    let to = env.to("demo/remote-cache:latest");
    let first = env.build(&dir, &["--to", &to]).ok().json();
    let deps_digest = layer_of(&layers(&first), "deps")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let before = env.registry.access_log().len();

    // A fresh runner: empty store, the package index unreachable.
    let fresh = tempfile::tempdir().unwrap();
    let base = env.base();
    let second = rbuild(
        &dir,
        fresh.path(),
        &UNREACHABLE_INDEX,
        &["build", "--json", "--base", &base, "--to", &to],
    )
    .ok()
    .json();
    assert_eq!(second["digest"], first["digest"], "the same image");
    let l = layers(&second);
    assert_eq!(layer_of(&l, "deps")["status"], "cached-remote");
    assert_eq!(layer_of(&l, "user")["status"], "cached-remote");
    let log = env.registry.access_log();
    // The layers rbuild made are reused without being downloaded. (The base's own layers are
    // fetched: the app's bytecode is compiled by the base's interpreter, and a fresh runner has
    // neither the interpreter nor the `.pyc` cache.)
    let layer_digests: Vec<String> = layers(&first)
        .iter()
        .filter(|l| l["kind"] != "base")
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    let fetched: Vec<_> = log[before..]
        .iter()
        .filter(|e| {
            e.method == "GET"
                && layer_digests
                    .iter()
                    .any(|d| e.uri.ends_with(&format!("/blobs/{d}")))
        })
        .collect();
    assert!(
        fetched.is_empty(),
        "no layer blob was downloaded, but: {fetched:?} (deps {deps_digest})"
    );
    assert!(
        !fresh
            .path()
            .join("blobs/sha256")
            .join(deps_digest.trim_start_matches("sha256:"))
            .exists()
    );
}

#[test]
fn an_empty_runner_with_an_unchanged_requirements_lock_asks_the_index_nothing() {
    // requirements.txt pins by hashes but names no files: a fresh store must ask the index which
    // file each hash is, unless the image it replaces recorded the choice for the same lock.
    let env = Env::new();
    let (_t, dir) = example("flask-app");
    let to = env.to("demo/flask-cache:latest");
    let first = env.build(&dir, &["--to", &to]).ok().json();
    let base = env.base();
    let fresh = tempfile::tempdir().unwrap();
    let second = rbuild(
        &dir,
        fresh.path(),
        &UNREACHABLE_INDEX,
        &["build", "--json", "--base", &base, "--to", &to],
    )
    .ok()
    .json();
    assert_eq!(second["digest"], first["digest"], "the same image");
    assert_eq!(
        layer_of(&layers(&second), "deps")["status"],
        "cached-remote"
    );

    // The record names no URLs: when it finds no layer (another SOURCE_DATE_EPOCH changes the
    // layer's key, not the choice), the index is asked where the files are and the layer is built.
    let fresh = tempfile::tempdir().unwrap();
    let other_epoch = rbuild(
        &dir,
        fresh.path(),
        &[("SOURCE_DATE_EPOCH", "1700000000")],
        &["build", "--json", "--base", &base, "--to", &to],
    )
    .ok()
    .json();
    assert_eq!(layer_of(&layers(&other_epoch), "deps")["status"], "built");

    // Any change to the lock (here a comment) and the record does not apply: the index is asked,
    // and it is unreachable.
    let req = dir.join("requirements.txt");
    let mut text = std::fs::read_to_string(&req).unwrap();
    text.push_str("# a comment\n");
    std::fs::write(&req, text).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let third = rbuild(
        &dir,
        fresh.path(),
        &UNREACHABLE_INDEX,
        &["build", "--json", "--base", &base, "--to", &to],
    );
    assert_eq!(third.code, 1, "{}", third.stderr);
    assert!(
        third.stderr.contains("127.0.0.1:9") || third.stderr.contains("pypi.org"),
        "the index is what failed: {}",
        third.stderr
    );
}

#[test]
fn oci_layout_and_docker_archive_sinks_are_readable_by_skopeo_and_umoci() {
    let env = Env::new();
    let (_t, dir) = example("flask-app");
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    let archive = out.path().join("image.tar");
    let doc = env
        .build(
            &dir,
            &[
                "--output",
                &format!("oci:{}:v1", layout.display()),
                "--output",
                &format!("docker-archive:{}:flask-app:v1", archive.display()),
            ],
        )
        .ok()
        .json();
    let sk = sh(
        "skopeo",
        &["inspect", &format!("oci:{}:v1", layout.display())],
    );
    let v: Value = serde_json::from_slice(&sk.stdout).unwrap();
    assert_eq!(v["Digest"], doc["digest"]);
    sh(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:v1", layout.display()),
            &out.path().join("bundle").display().to_string(),
        ],
    );
    assert!(out.path().join("bundle/rootfs/app/app/main.py").is_file());
    // The docker-archive loads with skopeo's docker-archive transport, every layer verified.
    sh(
        "skopeo",
        &["inspect", &format!("docker-archive:{}", archive.display())],
    );
    sh(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("docker-archive:{}", archive.display()),
            &format!("oci:{}:fromarchive", out.path().join("l2").display()),
        ],
    );
    // Building again into the same layout with another tag keeps both entries.
    env.build(&dir, &["--output", &format!("oci:{}:v2", layout.display())])
        .ok();
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    // Two tagged entries (the SBOM and provenance attachments are listed untagged, once).
    let manifests = index["manifests"].as_array().unwrap();
    let tagged = manifests
        .iter()
        .filter(|m| m["annotations"]["org.opencontainers.image.ref.name"].is_string())
        .count();
    assert_eq!(tagged, 2, "{index}");
    assert_eq!(manifests.len(), 4, "{index}");
}

#[test]
fn bad_inputs_fail_with_one_clear_message_and_push_nothing() {
    let env = Env::new();
    let cache = env.cache.path();
    // Not a directory.
    let r = rbuild(
        &repo_root(),
        cache,
        &[],
        &["build", "--base", &env.base(), "README.md"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("not a directory"), "{}", r.stderr);

    // A .dockerignore with a bad pattern: the error names the file and the line.
    let (_t, dir) = example("flask-app");
    std::fs::write(dir.join(".dockerignore"), "# ok\n*.pyc\n[unclosed\n").unwrap();
    let to = env.to("demo/bad:v1");
    let r = rbuild(
        &dir,
        cache,
        &[],
        &["build", "--base", &env.base(), "--to", &to],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(".dockerignore") && r.stderr.contains('3'),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{}",
        r.stderr
    );

    // A lockfile whose hashes match no file of the package (neither the wheel nor the sdist, which
    // would otherwise be built): refused, nothing pushed.
    std::fs::remove_file(dir.join(".dockerignore")).unwrap();
    let req = std::fs::read_to_string(dir.join("requirements.txt")).unwrap();
    let tampered = req
        .replace(
            "--hash=sha256:ec400d38950de4dfd418cff8328b2c8faed0edb0d517d3394e457c317908ca4d",
            "--hash=sha256:0000000000000000000000000000000000000000000000000000000000000000",
        )
        .replace(
            "--hash=sha256:f014447a0101dc57e294f6c18ca6b40227a4c90e9bdb586042628030cba004ec",
            "--hash=sha256:1111111111111111111111111111111111111111111111111111111111111111",
        );
    assert_ne!(req, tampered);
    std::fs::write(dir.join("requirements.txt"), tampered).unwrap();
    let r = rbuild(
        &dir,
        cache,
        &[],
        &["build", "--base", &env.base(), "--to", &to],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("gunicorn"),
        "the message names the package: {}",
        r.stderr
    );
    let inspect = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{to}")])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "no tag was pushed");

    // A usage error exits 2.
    let r = rbuild(
        &dir,
        cache,
        &[],
        &["build", "--entrypoint", "python -m app"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn a_two_gigabyte_sparse_file_builds_in_flat_memory() {
    let env = Env::new();
    let (_t, dir) = example("flask-app");
    let f = std::fs::File::create(dir.join("big.bin")).unwrap();
    f.set_len(2 << 30).unwrap();
    drop(f);
    let out = tempfile::tempdir().unwrap();
    let r = env
        .build(
            &dir,
            &[
                "--output",
                &format!("oci:{}", out.path().join("l").display()),
            ],
        )
        .ok();
    let app = layer_of(&layers(&r.json()), "app").clone();
    assert!(
        app["size"].as_u64().unwrap() < 50 << 20,
        "zeros compress: {app}"
    );
    assert!(r.max_rss_kb < 100 * 1024, "peak RSS {} kB", r.max_rss_kb);
}

const UNREACHABLE_INDEX: [(&str, &str); 4] = [
    ("HTTPS_PROXY", "http://127.0.0.1:9"),
    ("https_proxy", "http://127.0.0.1:9"),
    ("NO_PROXY", "127.0.0.1,localhost"),
    ("no_proxy", "127.0.0.1,localhost"),
];

#[test]
fn stored_wheels_rebuild_with_the_index_unreachable_and_offline_says_what_is_missing() {
    let env = Env::new();
    let (_t, dir) = example("fastapi-app");
    let base = env.base();
    env.build(&dir, &[]).ok();
    // Another compression is another dependency layer: it must be built again, from stored wheels only.
    let zstd = rbuild(
        &dir,
        env.cache.path(),
        &UNREACHABLE_INDEX,
        &[
            "build",
            "--json",
            "--base",
            &base,
            "--compression",
            "zstd",
            "--no-push",
        ],
    )
    .ok()
    .json();
    let deps = layer_of(&layers(&zstd), "deps").clone();
    assert_eq!(deps["status"], "built");
    assert_eq!(
        deps["media_type"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    // `plan` works offline too.
    let plan = rbuild(
        &dir,
        env.cache.path(),
        &UNREACHABLE_INDEX,
        &["plan", "--json", "--base", &base, "--offline"],
    )
    .ok()
    .json();
    assert_eq!(plan["targets"][0]["python_version"], "3.11");
    assert_eq!(plan["targets"][0]["interpreter"], "/usr/bin/python3.11");
    assert_eq!(plan["targets"][0]["libc"]["version"], "2.36");
    // The base digest the build would use, in the target and in the decisions (#18 item 2).
    let base_digest = plan["targets"][0]["base_digest"]
        .as_str()
        .unwrap_or_default();
    assert!(base_digest.starts_with("sha256:"), "{plan}");
    assert_eq!(
        plan["targets"][0]["decisions"]["base_digest"], base_digest,
        "{plan}"
    );
    assert!(
        plan["targets"][0]["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "pydantic-core")
    );

    // --offline with an empty store: the missing wheels are listed, nothing is built.
    let empty = tempfile::tempdir().unwrap();
    let r = rbuild(
        &dir,
        empty.path(),
        &[],
        &[
            "build",
            "--no-push",
            "--base",
            &base,
            "--offline",
            "--compression",
            "zstd",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("pydantic") && r.stderr.contains("offline"),
        "{}",
        r.stderr
    );
}

#[test]
fn scratch_base_has_no_user_layer_and_git_checkouts_are_labelled() {
    let env = Env::new();
    let (_t, dir) = example("script-app");
    sh("git", &["-C", &dir.display().to_string(), "init", "-q"]);
    sh(
        "git",
        &[
            "-C",
            &dir.display().to_string(),
            "remote",
            "add",
            "origin",
            "https://user:secret@example.com/team/script-app.git",
        ],
    );
    sh(
        "git",
        &[
            "-C",
            &dir.display().to_string(),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
    );
    let head = String::from_utf8(
        sh(
            "git",
            &["-C", &dir.display().to_string(), "rev-parse", "HEAD"],
        )
        .stdout,
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("l");
    let doc = rbuild(
        &dir,
        env.cache.path(),
        &[],
        &[
            "build",
            "--json",
            "--no-push",
            "--base",
            "scratch",
            "--python-version",
            "3.12",
            "--libc",
            "glibc-2.36",
            "--platform",
            "linux/amd64",
            "--entrypoint",
            r#"["/usr/local/bin/python3","-m","greeter"]"#,
            "--output",
            &format!("oci:{}:v1", layout.display()),
        ],
    )
    .ok()
    .json();
    let all = layers(&doc);
    let kinds: Vec<&str> = all.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["app"],
        "scratch: no base layers, no passwd so no user layer, no lockfile"
    );
    let cfg: Value = serde_json::from_slice(
        &sh(
            "skopeo",
            &[
                "inspect",
                "--config",
                &format!("oci:{}:v1", layout.display()),
            ],
        )
        .stdout,
    )
    .unwrap();
    let labels = &cfg["config"]["Labels"];
    assert_eq!(labels["org.opencontainers.image.revision"], head.trim());
    assert_eq!(
        labels["org.opencontainers.image.source"], "https://example.com/team/script-app.git",
        "credentials never recorded"
    );
    assert_eq!(cfg["config"]["User"], "1001:1001");
    assert_eq!(cfg["config"]["WorkingDir"], "/app");
    assert_eq!(cfg["created"], "1980-01-01T00:00:00Z");
}

#[test]
fn a_300_mb_dependency_layer_builds_in_under_150_mb_of_memory() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("heavy");
    copy_tree(&repo_root().join("tests/fixtures/heavy"), &dir);
    let out = tempfile::tempdir().unwrap();
    let r = env
        .build(
            &dir,
            &[
                "--recipe",
                "none",
                "--entrypoint",
                r#"["python3"]"#,
                // One dependency layer of about 300 MB, as the test is about.
                "--deps-layers",
                "1",
                "--output",
                &format!("oci:{}", out.path().join("l").display()),
            ],
        )
        .ok();
    let doc = r.json();
    let deps = layer_of(&layers(&doc), "deps").clone();
    assert_eq!(deps["status"], "built");
    // The layer's uncompressed size, read back from the layout with an independent tool.
    let blob = out.path().join("l/blobs/sha256").join(
        deps["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let listing = sh(
        "sh",
        &["-c", &format!("gzip -dc {} | wc -c", blob.display())],
    );
    let uncompressed: u64 = String::from_utf8_lossy(&listing.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(
        uncompressed > 200_000_000,
        "a heavy layer: {uncompressed} bytes"
    );
    assert!(
        r.max_rss_kb < 150 * 1024,
        "peak RSS {} kB for a {} MB layer",
        r.max_rss_kb,
        uncompressed / 1_000_000
    );
    eprintln!(
        "heavy: {} MB uncompressed, peak RSS {} MB",
        uncompressed / 1_000_000,
        r.max_rss_kb / 1024
    );
}

/// Writes a wheel whose RECORD is right but one member escapes site-packages (`../../../../etc/x`).
fn zip_slip_wheel(dir: &Path) -> (String, String) {
    let script = r#"
import base64, hashlib, sys, zipfile
out = sys.argv[1]
def rec(name, data):
    h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={h},{len(data)}"
files = {
    "evil/__init__.py": b"",
    "../../../../etc/rbuild-was-here": b"pwned\n",
    "evil-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n",
    "evil-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = "\n".join(rec(n, d) for n, d in files.items()) + "\nevil-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile(out, "w") as z:
    for n, d in files.items():
        z.writestr(n, d)
    z.writestr("evil-1.0.dist-info/RECORD", record)
print(hashlib.sha256(open(out, "rb").read()).hexdigest())
"#;
    let name = "evil-1.0-py3-none-any.whl".to_string();
    let out = sh(
        "python3",
        &["-c", script, &dir.join(&name).display().to_string()],
    );
    (
        name,
        String::from_utf8(out.stdout).unwrap().trim().to_string(),
    )
}

#[test]
fn a_zip_slip_wheel_is_rejected_and_nothing_is_pushed() {
    let env = Env::new();
    let (_t, dir) = example("script-app");
    let wheels = tempfile::tempdir().unwrap();
    let (_, sha) = zip_slip_wheel(wheels.path());
    std::fs::write(
        dir.join("requirements.txt"),
        format!("evil==1.0 \\\n    --hash=sha256:{sha}\n"),
    )
    .unwrap();
    let to = env.to("demo/evil:v1");
    let base = env.base();
    let r = rbuild(
        &dir,
        env.cache.path(),
        &[],
        &[
            "build",
            "--base",
            &base,
            "--to",
            &to,
            "--find-links",
            &wheels.path().display().to_string(),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("evil-1.0-py3-none-any.whl") && r.stderr.contains("etc/rbuild-was-here"),
        "names the wheel and the member: {}",
        r.stderr
    );
    assert_eq!(
        r.stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{}",
        r.stderr
    );
    let inspect = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{to}")])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "no tag was pushed");
    assert!(!Path::new("/etc/rbuild-was-here").exists());
}

/// A rebuild into the repository its previous image came from does not ask (`HEAD`) about the
/// blobs that image's manifest names: they are there. When one was deleted since, the registry
/// refuses the manifest (`MANIFEST_BLOB_UNKNOWN`); rbuild then checks every blob, uploads the
/// missing one and pushes again, and the image pulls whole.
#[test]
fn a_rebuild_trusts_the_previous_manifest_and_recovers_when_a_blob_is_gone() {
    let env = Env::new();
    let (_t, dir) = example("fastapi-app");
    let to = env.to("demo/present:latest");
    // The HEAD counts below are of the image's own blobs (a new image has a new SBOM and
    // provenance: tests/supply_chain_e2e.rs).
    let first = env
        .build(&dir, &["--to", &to, "--sbom", "none", "--no-provenance"])
        .ok()
        .json();
    let known: Vec<String> = layers(&first)
        .iter()
        .filter(|l| l["kind"] != "app")
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    let heads_since = |before: usize| -> Vec<String> {
        env.registry.access_log()[before..]
            .iter()
            .filter(|e| e.method == "HEAD" && e.uri.contains("/demo/present/blobs/"))
            .map(|e| e.uri.rsplit('/').next().unwrap().to_string())
            .collect()
    };
    let main = dir.join("app/main.py");
    let edit = |n: u32| {
        let mut text = std::fs::read_to_string(&main).unwrap();
        text.push_str(&format!("\n# edit {n}\n"));
        std::fs::write(&main, text).unwrap();
    };

    // One app file changed: only the new app layer and config are sent; nothing the previous
    // manifest names is looked up.
    edit(1);
    let before = env.registry.access_log().len();
    let second = env
        .build(&dir, &["--to", &to, "--sbom", "none", "--no-provenance"])
        .ok()
        .json();
    let heads = heads_since(before);
    assert!(
        heads.iter().all(|d| !known.contains(d)),
        "HEAD asked for blobs the previous manifest names: {heads:?} (known {known:?})"
    );
    assert!(
        heads.is_empty(),
        "the app layer and the config, small and new, go up without a HEAD: {heads:?}"
    );
    let posts = env.registry.access_log()[before..]
        .iter()
        .filter(|e| e.method == "POST" && e.uri.contains("/demo/present/blobs/uploads/"))
        .count();
    assert_eq!(posts, 2, "the app layer and the config are uploaded");
    // The context changed since the first build: their upload sessions were opened while the
    // build ran (crates/rbuild-registry/tests/round_trips.rs counts the round trip saved), and
    // none is left open.
    let uploads = env
        .registry
        .storage_dir()
        .join("docker/registry/v2/repositories/demo/present/_uploads");
    let open: Vec<_> = std::fs::read_dir(&uploads)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(open.is_empty(), "upload sessions left open: {open:?}");
    assert_eq!(
        layer_of(&layers(&second), "deps")["digest"],
        layer_of(&layers(&first), "deps")["digest"]
    );

    // The dependency layer's blob is deleted from the repository behind rbuild's back.
    let deps = layer_of(&layers(&second), "deps")["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{}/v2/demo/present/blobs/{deps}", env.registry.url());
    let out = sh(
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "DELETE",
            &url,
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "202", "DELETE {url}");

    edit(2);
    let before = env.registry.access_log().len();
    let third = env
        .build(&dir, &["--to", &to, "--sbom", "none", "--no-provenance"])
        .ok()
        .json();
    let log = env.registry.access_log();
    let refused = log[before..]
        .iter()
        .filter(|e| e.method == "PUT" && e.uri.contains("/manifests/") && e.status == 400)
        .count();
    assert!(refused >= 1, "the first manifest PUT is refused");
    let reuploaded = log[before..]
        .iter()
        .filter(|e| {
            e.method == "PUT"
                && e.uri
                    .contains(&format!("digest={}", deps.replace("sha256:", "sha256%3A")))
        })
        .count();
    assert_eq!(reuploaded, 1, "the deleted blob is uploaded again");

    // The image is whole: skopeo copies it out, verifying every blob.
    let out_dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = vec!["copy".into(), "--quiet".into()];
    args.extend(env.registry.skopeo_flags("src"));
    args.push(format!("docker://{to}"));
    args.push(format!("oci:{}:x", out_dir.path().join("oci").display()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sh("skopeo", &args);
    assert!(
        out.status.success(),
        "skopeo copy of the rebuilt image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(third["digest"], second["digest"]);
}
