//! End to end: source distributions (issue #16, item 1). A Flask app whose hash-pinned
//! requirements.txt holds two pure-Python sdist-only packages builds on the slim fixture (the
//! sdists built into wheels by the base's own Python) and answers HTTP using both; a second build
//! builds no sdist (the built wheels come from the store); an sdist that needs a C compiler fails
//! with one message naming the package, what it needs and the ways out, and writes nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rbuild_e2e::{Bundle, copy_tree, free_port, rbuild, repo_root};
use rbuild_testing::Registry;
use serde_json::Value;

const BASE_REPO: &str = rbuild_testing::SLIM_BASE_REPO;

/// Two pure-Python packages PyPI has only as sdists (checked with the simple API: no wheel of
/// these versions exists), pinned by their sdists' sha256.
const SDISTS: &str = "docopt==0.6.2 \\\n    --hash=sha256:49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491\n\
termcolor==1.1.0 \\\n    --hash=sha256:1d6d69ce66211143803fbc56652b41d73b4a400a2891d7bf7a1cdf4c02de613b\n";

/// A C extension published for CPython 3.11 only as an sdist.
const NETIFACES: &str = "netifaces==0.11.0 \\\n    --hash=sha256:043a79146eb2907edf439899f262b3dfe41717d34124298ed281139a8b93ca32\n";

const APP: &str = r#""""The Flask example, using the two sdist-only packages."""

import docopt
from flask import Flask
from termcolor import colored

app = Flask(__name__)


@app.get("/health")
def health():
    return {"status": "ok"}


@app.get("/sdists")
def sdists():
    return {"docopt": docopt.__version__, "colored": colored("hi", "red")}
"#;

fn registry() -> Registry {
    rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
    Registry::plain_with_slim_base().expect("a registry with the base fixture")
}

/// The Flask example with the sdist-only packages added to its lock and used by its code.
fn flask_with_sdists() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("flask-sdists");
    copy_tree(&repo_root().join("examples/flask-app"), &dir);
    let req = dir.join("requirements.txt");
    let mut text = std::fs::read_to_string(&req).unwrap();
    text.push_str(SDISTS);
    std::fs::write(&req, text).unwrap();
    std::fs::write(dir.join("app/main.py"), APP).unwrap();
    (tmp, dir)
}

fn build(registry: &Registry, dir: &Path, cache: &Path, extra: &[&str]) -> rbuild_e2e::Run {
    let base = format!("{}/{BASE_REPO}", registry.host());
    let mut args = vec!["build", "-v", "--base", base.as_str()];
    args.extend_from_slice(extra);
    rbuild(dir, cache, &[], &args)
}

#[test]
fn a_flask_app_with_two_sdist_only_packages_builds_serves_and_rebuilds_without_building() {
    let registry = registry();
    let (_t, dir) = flask_with_sdists();
    let cache = tempfile::tempdir().unwrap();
    let port = free_port();
    let to = format!("{}/demo/sdists:1", registry.host());

    // The plan shows the sdists to build.
    let base = format!("{}/{BASE_REPO}", registry.host());
    let plan = rbuild(&dir, cache.path(), &[], &["plan", "--base", &base]).ok();
    for name in ["docopt-0.6.2.tar.gz", "termcolor-1.1.0.tar.gz"] {
        assert!(
            plan.stdout.contains(name) && plan.stdout.contains("source distribution"),
            "{}",
            plan.stdout
        );
    }

    let first = build(
        &registry,
        &dir,
        cache.path(),
        &["--to", &to, "--env", &format!("PORT={port}")],
    )
    .ok();
    let out = format!("{}{}", first.stdout, first.stderr);
    assert!(out.contains("built docopt-0.6.2-py"), "{out}");
    assert!(out.contains("built termcolor-1.1.0-py"), "{out}");
    // -v shows the backend's output.
    assert!(out.contains("build output of docopt 0.6.2"), "{out}");

    let bundle = Bundle::pull(&to);
    // The image records the built sdists: name, version and both hashes.
    let cfg = rbuild_e2e::sh(
        "skopeo",
        &[
            "inspect",
            "--config",
            "--tls-verify=false",
            &format!("docker://{to}"),
        ],
    );
    let cfg: Value = serde_json::from_slice(&cfg.stdout).unwrap();
    let label = cfg["config"]["Labels"]["dev.rbuild.sdists"]
        .as_str()
        .unwrap_or_default();
    let recorded: Value = serde_json::from_str(label).unwrap_or_else(|e| panic!("{e}: {cfg}"));
    assert_eq!(recorded[0]["name"], "docopt", "{recorded}");
    assert_eq!(
        recorded[0]["sdist_sha256"],
        "sha256:49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491"
    );
    assert!(
        recorded[0]["wheel_sha256"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(
        !recorded[0]["build_requirements"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(recorded[1]["name"], "termcolor", "{recorded}");
    let container = bundle.start();
    let (status, body) = container.get(port, "/sdists", Duration::from_secs(40));
    assert_eq!(status, 200, "{body}\n{}", container.log());
    assert!(body.contains("0.6.2"), "{body}");
    assert!(body.contains("\\u001b[31mhi"), "{body}");
    drop(container);

    // Another dependency layer (no bytecode) for the same sdists: the wheels built before are
    // taken from the store, no sdist is built.
    let second = build(
        &registry,
        &dir,
        cache.path(),
        &["--no-compile-bytecode", "--to", &to],
    )
    .ok();
    let out = format!("{}{}", second.stdout, second.stderr);
    assert!(out.contains("no sdist built"), "{out}");
    assert!(!out.contains("built docopt-"), "{out}");

    // The same build again: the dependency layer itself is cached.
    let third = build(
        &registry,
        &dir,
        cache.path(),
        &["--no-compile-bytecode", "--to", &to],
    )
    .ok();
    let out = format!("{}{}", third.stdout, third.stderr);
    assert!(!out.contains("built docopt-"), "{out}");
}

#[test]
fn an_sdist_that_needs_a_compiler_fails_naming_it_and_writes_nothing() {
    let registry = registry();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("netifaces-app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("requirements.txt"), NETIFACES).unwrap();
    std::fs::write(dir.join("main.py"), "import netifaces\n").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let output = format!("oci:{}:t", layout.display());
    let run = build(
        &registry,
        &dir,
        cache.path(),
        &[
            "--output",
            &output,
            "--entrypoint",
            r#"["python3","main.py"]"#,
        ],
    );
    assert_ne!(run.code, 0, "{}", run.stdout);
    let err = &run.stderr;
    assert!(err.contains("netifaces 0.11.0"), "{err}");
    assert!(err.contains("which the base image does not have"), "{err}");
    assert!(err.contains("--find-links"), "{err}");
    assert!(!layout.exists(), "nothing is written");
}
