//! End to end: bytecode (issue #15). The dependency and app layers carry `.pyc` compiled by the
//! base image's own Python (the Debian-built fixture, run natively by rbuild-runner), byte for byte
//! the same from two checkouts, at two times, with 1 and 4 compile workers and separate caches; the
//! running image (runc) imports every third-party and app module from that bytecode.

use std::path::{Path, PathBuf};

use rbuild_e2e::{Bundle, copy_tree, rbuild, repo_root, sh};
use rbuild_testing::Registry;
use serde_json::Value;

const BASE_REPO: &str = rbuild_testing::SLIM_BASE_REPO;

struct Env {
    registry: Registry,
}

impl Env {
    fn new() -> Env {
        rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
        let registry = Registry::plain_with_slim_base().expect("a registry with the base fixture");
        Env { registry }
    }

    /// `rbuild build --json` with its own cache and `RBUILD_BYTECODE_WORKERS=workers`.
    fn build(&self, dir: &Path, cache: &Path, workers: &str, extra: &[&str]) -> Value {
        let base = format!("{}/{BASE_REPO}", self.registry.host());
        let mut args = vec!["build", "--json", "--base", base.as_str()];
        args.extend_from_slice(extra);
        rbuild(dir, cache, &[("RBUILD_BYTECODE_WORKERS", workers)], &args)
            .ok()
            .json()
    }
}

/// A copy of `examples/NAME` (or of `bench/NAME`) in a new directory of its own.
fn checkout(from: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("project");
    copy_tree(&repo_root().join(from), &dir);
    (tmp, dir)
}

/// The paths (and sizes) of the `.pyc` entries of an OCI layout's layers, per layer digest.
fn pyc_entries(layout: &Path) -> Vec<(String, u64)> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest_digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(blob(manifest_digest)).unwrap()).unwrap();
    let mut out = Vec::new();
    for l in manifest["layers"].as_array().unwrap() {
        let listing = sh(
            "tar",
            &[
                "-tvzf",
                &blob(l["digest"].as_str().unwrap()).display().to_string(),
            ],
        );
        for line in String::from_utf8_lossy(&listing.stdout).lines() {
            if line.ends_with(".pyc") {
                let cols: Vec<&str> = line.split_whitespace().collect();
                out.push((
                    cols[5].trim_start_matches("./").to_string(),
                    cols[2].parse().unwrap(),
                ));
            }
        }
    }
    out
}

#[test]
fn bytecode_is_identical_across_checkouts_times_worker_counts_and_caches() {
    let env = Env::new();
    for project in ["examples/fastapi-app", "bench/heavy"] {
        let (_a, a) = checkout(project);
        let (_b, b) = checkout(project);
        // The second checkout: other mtimes, other owner, built later with another worker count.
        sh(
            "touch",
            &["-d", "2003-04-05 06:07:08", &b.display().to_string()],
        );
        for entry in std::fs::read_dir(&b).unwrap() {
            let p = entry.unwrap().path();
            sh(
                "touch",
                &["-d", "2011-12-13 14:15:16", &p.display().to_string()],
            );
        }
        sh("chown", &["-R", "4321:4321", &b.display().to_string()]);
        let (cache_a, cache_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (out_a, out_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let oci = |d: &Path| format!("oci:{}:t", d.join("layout").display());
        let first = env.build(&a, cache_a.path(), "1", &["--output", &oci(out_a.path())]);
        let second = env.build(&b, cache_b.path(), "4", &["--output", &oci(out_b.path())]);
        assert_eq!(
            first["digest"], second["digest"],
            "{project}: the same image from two checkouts, 1 and 4 workers, two caches"
        );
        let pycs = pyc_entries(&out_a.path().join("layout"));
        assert!(
            pycs.iter().any(
                |(p, _)| p.starts_with("usr/local/lib/python3.11/dist-packages/")
                    && p.contains("/__pycache__/")
            ),
            "{project}: the dependency layer carries bytecode: {:?}",
            pycs.iter()
                .filter(|(p, _)| !p.starts_with("usr/lib/python3.11"))
                .take(8)
                .collect::<Vec<_>>()
        );
        if project.starts_with("examples/") {
            assert!(
                pycs.iter()
                    .any(|(p, _)| p.starts_with("app/") && p.ends_with(".cpython-311.pyc")),
                "{project}: the app layer carries bytecode: {pycs:?}"
            );
        }
        // A warm rebuild (same cache, nothing changed) compiles nothing.
        let warm = env.build(&a, cache_a.path(), "1", &["--output", &oci(out_a.path())]);
        assert_eq!(warm["digest"], first["digest"]);
    }
}

#[test]
fn the_running_image_imports_every_third_party_and_app_module_from_bytecode() {
    let env = Env::new();
    let (_t, dir) = checkout("examples/fastapi-app");
    let cache = tempfile::tempdir().unwrap();
    let to = format!("{}/demo/bytecode:1", env.registry.host());
    env.build(&dir, cache.path(), "2", &["--to", &to]);
    let bundle = Bundle::pull(&to);
    // `python -v` says `# code object from /path/x.py` when it compiles a source and names the
    // `.pyc` when it loads bytecode.
    let out = bundle.import_trace("fastapi, uvicorn, pydantic, app.main");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    let compiled: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("# code object from ") && l.ends_with(".py"))
        .filter(|l| l.contains("-packages/") || l.contains(" /app/"))
        .collect();
    assert!(
        compiled.is_empty(),
        "modules compiled at import instead of loaded from bytecode: {compiled:?}"
    );
    let loaded = out
        .lines()
        .filter(|l| l.starts_with("# code object from '") && l.contains("-packages/"))
        .count();
    assert!(
        loaded > 100,
        "few modules loaded from bytecode ({loaded}):\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("# code object from '/app/") && l.ends_with(".pyc'")),
        "the app's own module from bytecode:\n{out}"
    );
}

/// Makes `dir` and everything below it readable and writable by any user (for the uid 65534 run).
fn open_to_all(dir: &Path) {
    sh("chmod", &["-R", "a+rwX", &dir.display().to_string()]);
}

#[test]
fn an_unprivileged_user_without_user_namespaces_builds_with_bytecode() {
    let uid = sh("id", &["-u"]);
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        eprintln!("SKIPPED: needs root to switch to uid 65534");
        return;
    }
    let env = Env::new();
    let (tmp, dir) = checkout("examples/fastapi-app");
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    for d in [tmp.path(), cache.path(), out.path(), home.path()] {
        open_to_all(d);
    }
    let layout = out.path().join("layout");
    let base = format!("{}/{BASE_REPO}", env.registry.host());
    // In a user namespace of its own (uids mapped 1:1 by us, root), root turns user namespaces off
    // (`user.max_user_namespaces` = 0) and drops to uid 65534, which checks that `unshare -U`
    // fails and then runs rbuild.
    let inner = format!(
        "if unshare -U true 2>/dev/null; then echo USERNS-AVAILABLE; exit 3; fi; \
         cd {dir} && exec env -i HOME={home} PATH=/usr/bin:/bin RBUILD_CACHE_DIR={cache} \
         {bin} build --base {base} --output oci:{layout}:t",
        dir = dir.display(),
        home = home.path().display(),
        cache = cache.path().display(),
        bin = rbuild_e2e::rbuild_bin().display(),
        layout = layout.display(),
    );
    let script = format!(
        "read _ && exec sh -c 'echo 0 > /proc/sys/user/max_user_namespaces && \
         exec setpriv --reuid 65534 --regid 65534 --clear-groups sh -c \"{inner}\"'"
    );
    let mut child = std::process::Command::new("unshare")
        .args(["-U", "--", "sh", "-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
    let mut tries = 0;
    while std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap() == ours {
        tries += 1;
        assert!(tries < 500, "unshare did not create a user namespace");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::fs::write(format!("/proc/{pid}/uid_map"), "0 0 65536\n").unwrap();
    std::fs::write(format!("/proc/{pid}/gid_map"), "0 0 65536\n").unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let run = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{text}");
    assert!(text.contains("bytecode"), "the bytecode step ran: {text}");
    let pycs = pyc_entries(&layout);
    assert!(
        pycs.iter().any(|(p, _)| p.starts_with("app/")),
        "the app's bytecode is in the image: {text}"
    );
}
