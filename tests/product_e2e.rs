//! The product face, end to end: a new user's first build with only `RBUILD_TO` and `RBUILD_BASE`,
//! every recipe's example answering, `rbuild cache`, `--json` for machines, and the library's example
//! program pushing an image.

use std::path::Path;
use std::time::Duration;

use rbuild_e2e::{Bundle, copy_tree, free_port, rbuild, repo_root, sh};
use rbuild_testing::Registry;
use serde_json::Value;

const BASE_REPO: &str = rbuild_testing::SLIM_BASE_REPO;

fn setup() -> (Registry, tempfile::TempDir) {
    rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
    let registry = Registry::plain_with_slim_base().expect("a registry with the base fixture");
    (registry, tempfile::tempdir().unwrap())
}

fn example(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_tree(&repo_root().join("examples").join(name), &dir);
    (tmp, dir)
}

fn build(registry: &Registry, cache: &Path, dir: &Path, to: &str, extra: &[&str]) -> Value {
    let base = format!("{}/{BASE_REPO}", registry.host());
    let to = format!("{}/{to}", registry.host());
    let mut args = vec![
        "build",
        "--json",
        "--base",
        base.as_str(),
        "--to",
        to.as_str(),
    ];
    args.extend_from_slice(extra);
    let run = rbuild(dir, cache, &[], &args).ok();
    assert!(
        !run.stdout.contains('\x1b') && !run.stderr.contains('\x1b'),
        "no terminal escape codes without a TTY"
    );
    run.json()
}

#[test]
fn a_new_user_builds_with_only_rbuild_to_and_rbuild_base() {
    let (registry, cache) = setup();
    let (_t, dir) = example("fastapi-app");
    let base = format!("{}/{BASE_REPO}", registry.host());
    let repo = format!("{}/team", registry.host());
    let run = rbuild(
        &dir,
        cache.path(),
        &[("RBUILD_TO", &repo), ("RBUILD_BASE", &base)],
        &["build"],
    )
    .ok();
    // RBUILD_TO is a repository: the project's name and `latest` are added, like KO_DOCKER_REPO.
    let pushed = format!("{}/team/fastapi-app:latest", registry.host());
    assert!(
        run.stdout.contains(&pushed),
        "stdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stderr.contains("deps"),
        "one line per step: {}",
        run.stderr
    );
    assert!(!run.stderr.contains('\x1b'));

    let bundle = Bundle::pull(&pushed);
    let cfg = bundle.config();
    assert_eq!(cfg["process"]["user"]["uid"], 1001);
    let args = cfg["process"]["args"].as_array().unwrap();
    // Exec form, started by the image's Python (no shell): `... -m uvicorn app.main:app ...`.
    let args: Vec<&str> = args.iter().map(|a| a.as_str().unwrap_or("")).collect();
    assert!(
        args.windows(3)
            .any(|w| w == ["-m", "uvicorn", "app.main:app"]),
        "{args:?}"
    );
    let container = bundle.start();
    let (status, body) = container.get(8000, "/health", Duration::from_secs(40));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn django_recipe_serves_with_gunicorn() {
    let (registry, cache) = setup();
    let (_t, dir) = example("django-app");
    let port = free_port();
    let doc = build(
        &registry,
        cache.path(),
        &dir,
        "demo/django:v1",
        &["--env", &format!("PORT={port}")],
    );
    let kinds: Vec<&str> = doc["platforms"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    // The base's two layers, the dependencies (split under --deps-layers), the user, the app.
    assert_eq!(kinds[..2], ["base", "base"], "{kinds:?}");
    assert_eq!(kinds[kinds.len() - 2..], ["user", "app"], "{kinds:?}");
    let deps = &kinds[2..kinds.len() - 2];
    assert!(
        !deps.is_empty() && deps.iter().all(|k| *k == "deps"),
        "{kinds:?}"
    );
    let bundle = Bundle::pull(&format!("{}/demo/django:v1", registry.host()));
    let args = bundle.config()["process"]["args"].clone();
    assert!(
        args.as_array()
            .unwrap()
            .iter()
            .any(|a| a == "mysite.wsgi:application"),
        "{args}"
    );
    let container = bundle.start();
    let (status, body) = container.get(port, "/health", Duration::from_secs(40));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn script_recipe_runs_the_module() {
    let (registry, cache) = setup();
    let (_t, dir) = example("script-app");
    let doc = build(&registry, cache.path(), &dir, "demo/script:v1", &[]);
    let kinds: Vec<&str> = doc["platforms"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["base", "base", "user", "app"],
        "no lockfile, no dependency layer"
    );
    let bundle = Bundle::pull(&format!("{}/demo/script:v1", registry.host()));
    let c = bundle.start();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        c.log().contains("hello from rbuild on Python 3.11"),
        "{}",
        c.log()
    );
}

#[test]
fn s2i_recipe_runs_app_script_or_app_sh() {
    let (registry, cache) = setup();
    let (_t, dir) = example("s2i-app");
    build(
        &registry,
        cache.path(),
        &dir,
        "demo/s2i:v1",
        &["--recipe", "s2i"],
    );
    let bundle = Bundle::pull(&format!("{}/demo/s2i:v1", registry.host()));
    let cfg = bundle.config();
    assert_eq!(cfg["process"]["cwd"], "/opt/app-root/src");
    let c = bundle.start();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        c.log()
            .contains("app.sh ran in /opt/app-root/src as uid 1001"),
        "{}",
        c.log()
    );
    drop(c);
    // With APP_SCRIPT set, that script runs instead.
    let mut cfg = bundle.config();
    cfg["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push("APP_SCRIPT=other.sh".into());
    std::fs::write(
        bundle.dir.path().join("bundle/config.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();
    let c = bundle.start();
    std::thread::sleep(Duration::from_secs(2));
    assert!(c.log().contains("APP_SCRIPT ran: other.sh"), "{}", c.log());
}

#[test]
fn json_output_cache_info_and_prune() {
    let (registry, cache) = setup();
    let (_t, dir) = example("flask-app");
    let doc = build(&registry, cache.path(), &dir, "demo/json:v1", &[]);
    assert!(doc["digest"].as_str().unwrap().starts_with("sha256:"));
    for l in doc["platforms"][0]["layers"].as_array().unwrap() {
        for field in ["digest", "diff_id", "size", "kind", "status"] {
            assert!(!l[field].is_null(), "{field} in {l}");
        }
    }
    let info = rbuild(&dir, cache.path(), &[], &["cache", "info", "--json"])
        .ok()
        .json();
    let before = info["bytes"].as_u64().unwrap();
    assert!(
        info["kinds"]["wheels"]["bytes"].as_u64().unwrap() > 0,
        "{info}"
    );
    assert!(
        before > 40_000_000,
        "the base layers are in the store: {info}"
    );
    let pruned = rbuild(
        &dir,
        cache.path(),
        &[],
        &["cache", "prune", "--all", "--json"],
    )
    .ok()
    .json();
    assert!(
        pruned["freed_bytes"].as_u64().unwrap() >= before / 2,
        "{pruned}"
    );
    let after = rbuild(&dir, cache.path(), &[], &["cache", "info", "--json"])
        .ok()
        .json();
    assert!(after["bytes"].as_u64().unwrap() < before / 10);
    // A later build still works, and gives the same image.
    let again = build(&registry, cache.path(), &dir, "demo/json:v2", &[]);
    assert_eq!(again["digest"], doc["digest"]);
}

#[test]
fn the_library_example_program_pushes_an_image() {
    let (registry, cache) = setup();
    let root = repo_root();
    let base = format!("{}/{BASE_REPO}", registry.host());
    let to = format!("{}/demo/library:v1", registry.host());
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "run",
            "-q",
            "-p",
            "rbuild",
            "--example",
            "build_and_push",
            "--",
        ])
        .arg(root.join("examples/flask-app"))
        .args([&base, &to])
        .env("RBUILD_CACHE_DIR", cache.path())
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("demo/library:v1@sha256:"), "{printed}");
    let inspect = sh(
        "skopeo",
        &["inspect", "--tls-verify=false", &format!("docker://{to}")],
    );
    let v: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert!(printed.contains(v["Digest"].as_str().unwrap()));
}
