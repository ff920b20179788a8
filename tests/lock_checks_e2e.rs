//! No silently broken image (issue #16): a lock that is not the full closure, a stale uv.lock, a
//! project with dependencies and no lock each fail before anything is written or pushed, naming
//! what is missing and the way out; `--allow-incomplete-lock` builds anyway with a warning. And a
//! wheel from a relative `--find-links` directory stands in for a package the hash-pinned lock
//! has no fitting file for.

use std::path::Path;

use rbuild_e2e::{copy_tree, rbuild, repo_root};
use rbuild_testing::{BaseFixture, Registry};

/// The target given, no base needed (the closure check runs on the wheels' own metadata).
const SCRATCH: &[&str] = &[
    "--base",
    "scratch",
    "--python-version",
    "3.11",
    "--libc",
    "glibc-2.36",
    "--platform",
    "linux/amd64",
    "--entrypoint",
    r#"["/usr/local/bin/python3","-m","app"]"#,
];

const FLASK_303: &str = "flask==3.0.3 \\\n    --hash=sha256:34e815dfaa43340d1d15a5c3a02b8476004037eb4840b34910c6e21679d288f3\n";
const REDIS_501: &str = "redis==5.0.1 \\\n    --hash=sha256:ed4802971884ae19d640775ba3b03aa2e7bd5e8fb8dfaed2decce4d0fc48391f\n";

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn build(dir: &Path, cache: &Path, extra: &[&str]) -> (rbuild_e2e::Run, std::path::PathBuf) {
    rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
    let layout = dir.join("out-layout");
    let out = format!("oci:{}:t", layout.display());
    let mut args = vec!["build", "--output", out.as_str()];
    args.extend_from_slice(extra);
    (rbuild(dir, cache, &[], &args), layout)
}

#[test]
fn a_lock_with_only_top_level_pins_fails_naming_each_missing_requirement() {
    let p = project(&[
        ("requirements.txt", FLASK_303),
        ("app.py", "import flask\n"),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let (r, layout) = build(p.path(), cache.path(), SCRATCH);
    assert_eq!(r.code, 1, "{}", r.stderr);
    for missing in ["werkzeug", "jinja2", "itsdangerous", "click", "blinker"] {
        assert!(
            r.stderr.contains(missing) && r.stderr.to_lowercase().contains("needed by flask 3.0.3"),
            "{missing}: {}",
            r.stderr
        );
    }
    assert!(r.stderr.contains("--allow-incomplete-lock"), "{}", r.stderr);
    assert!(!layout.join("index.json").exists(), "nothing written");

    let mut args = SCRATCH.to_vec();
    args.push("--allow-incomplete-lock");
    let (r, layout) = build(p.path(), cache.path(), &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("warning") && r.stderr.contains("werkzeug"),
        "{}",
        r.stderr
    );
    assert!(layout.join("index.json").exists());
}

#[test]
fn a_marker_dependent_requirement_of_the_base_python_must_be_locked() {
    // redis 5.0.1 needs async-timeout on Python < 3.11.3; the fixture's Python is 3.11.2.
    let registry = Registry::plain().expect("registry");
    let fixture = BaseFixture::ensure().expect("base fixture");
    fixture
        .push_to(&registry, "library/python:3.11-slim")
        .unwrap();
    let base = format!("{}/library/python:3.11-slim", registry.host());
    let p = project(&[
        ("requirements.txt", REDIS_501),
        ("app.py", "import redis\n"),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let (r, _) = build(
        p.path(),
        cache.path(),
        &["--base", &base, "--recipe", "none"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("async-timeout") && r.stderr.contains("needed by redis 5.0.1"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("3.11.2"),
        "names the image's Python: {}",
        r.stderr
    );
}

#[test]
fn a_stale_uv_lock_and_an_unlocked_project_fail_with_the_fix() {
    rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("fastapi-app");
    copy_tree(&repo_root().join("examples/fastapi-app"), &dir);
    let pyproject = std::fs::read_to_string(dir.join("pyproject.toml")).unwrap();
    let stale = pyproject.replacen(
        "dependencies = [",
        "dependencies = [\n    \"httpx>=0.27\",",
        1,
    );
    assert_ne!(stale, pyproject, "the example lists dependencies");
    std::fs::write(dir.join("pyproject.toml"), &stale).unwrap();
    let (r, layout) = build(&dir, cache.path(), SCRATCH);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("uv lock") && r.stderr.contains("httpx"),
        "{}",
        r.stderr
    );
    assert!(!layout.join("index.json").exists());

    std::fs::remove_file(dir.join("uv.lock")).unwrap();
    let (r, _) = build(&dir, cache.path(), SCRATCH);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("uv lock") && r.stderr.contains("fastapi"),
        "{}",
        r.stderr
    );
}

/// A tiny pure-Python wheel with a valid RECORD.
fn tiny_wheel(dir: &Path, name: &str, version: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let script = r#"
import base64, hashlib, sys, zipfile
out, n, v = sys.argv[1:]
d = f"{n}-{v}.dist-info"
files = {
    f"{n}/__init__.py": f"VERSION = {v!r}\n",
    f"{d}/METADATA": f"Metadata-Version: 2.1\nName: {n}\nVersion: {v}\n",
    f"{d}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = ""
for path, text in files.items():
    h = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
    record += f"{path},sha256={h},{len(text.encode())}\n"
record += f"{d}/RECORD,,\n"
with zipfile.ZipFile(f"{out}/{n}-{v}-py3-none-any.whl", "w") as z:
    for path, text in files.items():
        z.writestr(path, text)
    z.writestr(f"{d}/RECORD", record)
"#;
    let status = std::process::Command::new("python3")
        .args(["-c", script, &dir.display().to_string(), name, version])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_relative_find_links_wheel_stands_in_for_a_package_the_lock_has_no_wheel_for() {
    // The lock pins rbuildtiny's sdist (its hash); the index is never asked (--offline).
    let p = project(&[
        (
            "requirements.txt",
            "rbuildtiny==1.0 \\\n    --hash=sha256:0a30ef8f5322a4173720ae6712dc9a5e58f5a19868f3f167b4b5778db066c2b5\n",
        ),
        ("app.py", "import rbuildtiny\n"),
    ]);
    tiny_wheel(&p.path().join("wheels"), "rbuildtiny", "1.0");
    let cache = tempfile::tempdir().unwrap();
    let mut args = SCRATCH.to_vec();
    args.extend(["--find-links", "wheels", "--offline", "--json"]);
    let (r, layout) = build(p.path(), cache.path(), &args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(layout.join("index.json").exists());
    let cfg: serde_json::Value = serde_json::from_slice(
        &rbuild_e2e::sh(
            "skopeo",
            &[
                "inspect",
                "--config",
                &format!("oci:{}:t", layout.display()),
            ],
        )
        .stdout,
    )
    .unwrap();
    let recorded = cfg["config"]["Labels"]["dev.rbuild.find-links"]
        .as_str()
        .unwrap_or_else(|| panic!("the image records the find-links wheel: {cfg}"));
    assert!(
        recorded.contains("rbuildtiny-1.0-py3-none-any.whl"),
        "{recorded}"
    );
}

#[test]
fn code_that_imports_third_party_modules_without_a_lock_is_warned_about_by_name() {
    let p = project(&[
        (
            "app.py",
            "import os, json\nimport helpers\nfrom flask import Flask\nimport yaml\n",
        ),
        ("helpers.py", "import requests\n"),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let (r, layout) = build(p.path(), cache.path(), SCRATCH);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warning = r
        .stderr
        .lines()
        .find(|l| l.contains("has no lockfile"))
        .unwrap_or_else(|| panic!("no warning: {}", r.stderr));
    for module in [
        "flask (app.py:3)",
        "requests (helpers.py:1)",
        "yaml (app.py:4)",
    ] {
        assert!(warning.contains(module), "{module}: {warning}");
    }
    for local_or_stdlib in ["helpers (", "json", "os "] {
        assert!(
            !warning.contains(local_or_stdlib),
            "{local_or_stdlib}: {warning}"
        );
    }
    assert!(layout.join("index.json").exists());

    // With a lock, no such warning.
    std::fs::write(p.path().join("requirements.txt"), "").unwrap();
    let (r, _) = build(p.path(), cache.path(), SCRATCH);
    assert!(!r.stderr.contains("has no lockfile"), "{}", r.stderr);
}

#[test]
fn a_dependency_the_project_declares_but_the_lock_lacks_fails_the_build() {
    // requirements.txt pins nothing the project needs; pyproject.toml says it needs `six`.
    let p = project(&[
        (
            "pyproject.toml",
            "[project]\nname = \"needs-six\"\nversion = \"1.0\"\ndependencies = [\"six>=1.16\"]\n\n\
             [project.optional-dependencies]\nfast = [\"orjson; python_version >= '3.8'\"]\n",
        ),
        ("requirements.txt", ""),
        ("app.py", "import six\n"),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let (r, layout) = build(p.path(), cache.path(), SCRATCH);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("six>=1.16") && r.stderr.contains("needs-six"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("orjson"),
        "an extra not asked for: {}",
        r.stderr
    );
    assert!(!layout.join("index.json").exists(), "nothing written");
}
