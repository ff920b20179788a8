//! `pipx install rbuild` / `uv tool install rbuild` (issue #18, item 11): the host's binary wheel,
//! built by maturin from crates/rbuild-cli/pyproject.toml, installs into a fresh venv whose
//! `rbuild` answers `--version` and builds and pushes an image to a real registry.
//!
//! The wheel is built in the profile and target directory of the `rbuild` this test was built
//! with, so cargo finds the CLI already compiled and maturin only packs it: no second compile of
//! the CLI in CI. maturin comes from PyPI, pinned by sha256 (packaging/maturin-requirements.txt).
//! The cross-compiled release wheels (manylinux, musllinux; x86_64, aarch64) come from
//! packaging/build-wheels.sh.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::skopeo_raw;
use rbuild_testing::Registry;

/// The repository's root.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A fresh venv at `dir` (Debian's python3-venv, from tests/fixtures/install-packages.sh), with
/// pip or without.
fn venv(dir: &Path, with_pip: bool) -> PathBuf {
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "venv"]);
    if !with_pip {
        cmd.arg("--without-pip");
    }
    run(cmd.arg(dir));
    dir.join("bin")
}

#[test]
fn host_wheel_installs_into_a_fresh_venv_and_builds() {
    let root = repo_root();
    let tmp = tempfile::tempdir().unwrap();

    // target/<profile dir>/rbuild: the target directory and the cargo profile it was built with.
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_rbuild"));
    let profile_dir = exe.parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev",
        "release" => "release",
        other => other,
    };

    // maturin, pinned by hash, in a venv of its own.
    let tools = venv(&tmp.path().join("tools"), true);
    run(Command::new(tools.join("pip"))
        .args(["install", "-q", "--require-hashes", "-r"])
        .arg(root.join("packaging/maturin-requirements.txt")));

    // The host's wheel, from the same target directory and profile as this test's `rbuild`. The
    // variables cargo and nextest set for this test (package name, manifest dir, ...) are not
    // passed on: they are not the CLI's. The ones that configure cargo (CARGO_INCREMENTAL,
    // CARGO_PROFILE_*, CARGO_BUILD_*, RUSTFLAGS) are, so that cargo finds the CLI up to date.
    let dist = tmp.path().join("dist");
    let mut maturin = Command::new(tools.join("maturin"));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        let of_this_test = [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ]
        .contains(&&*k)
            || k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_EXE_")
            || k.starts_with("NEXTEST");
        if of_this_test {
            maturin.env_remove(&*k);
        }
    }
    let built = run(maturin
        .current_dir(&root)
        .args(["build", "--locked", "--profile", profile, "--manifest-path"])
        .arg(root.join("crates/rbuild-cli/Cargo.toml"))
        .arg("--out")
        .arg(&dist)
        .env("CARGO_TARGET_DIR", target_dir));
    let log = String::from_utf8_lossy(&built.stderr);
    // Recompiling here would cost CI minutes: the CLI's dependencies must be built with the same
    // features as in the workspace's test build (see [workspace.dependencies] serde, getrandom).
    let compiled: Vec<&str> = log
        .lines()
        .filter(|l| l.trim_start().starts_with("Compiling "))
        .collect();
    eprintln!("maturin compiled {} crate(s): {compiled:?}", compiled.len());

    let wheels: Vec<PathBuf> = std::fs::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    assert_eq!(wheels.len(), 1, "one wheel: {wheels:?}\n{log}");
    let wheel = &wheels[0];
    let name = wheel.file_name().unwrap().to_str().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        name.starts_with(&format!("rbuild-{version}-py3-none-manylinux_")),
        "a py3-none manylinux wheel of rbuild {version}: {name}"
    );
    assert!(
        name.ends_with(&format!("_{}.whl", std::env::consts::ARCH)),
        "{name}"
    );

    // A fresh venv, the wheel only (no index), installed by the tools' pip into it (`--python`):
    // `rbuild` is on the venv's PATH.
    let app = venv(&tmp.path().join("app"), false);
    run(Command::new(tools.join("pip"))
        .arg("--python")
        .arg(app.join("python"))
        .args(["install", "-q", "--no-index"])
        .arg(wheel));
    let rbuild = app.join("rbuild");
    assert!(
        std::fs::symlink_metadata(&rbuild).unwrap().is_file(),
        "the wheel installed the executable itself"
    );
    let out = run(Command::new(&rbuild).arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("rbuild {version}")
    );

    // A build pushed to a real registry by the installed `rbuild` (a scratch base with the target
    // given: no base fixture needed).
    let registry = Registry::plain().expect("registry");
    let project = tmp.path().join("hello");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("main.py"), "print('hello')\n").unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let to = format!("{}/wheel/hello:v1", registry.host());
    let out = run(Command::new(&rbuild)
        .args(["build"])
        .arg(&project)
        .args([
            "--base",
            "scratch",
            "--python-version",
            "3.11",
            "--libc",
            "glibc-2.36",
            "--platform",
            "linux/amd64",
            "--entrypoint",
            r#"["python3","main.py"]"#,
            "-q",
            "--to",
            &to,
        ])
        .env("HOME", &home)
        .env("PATH", format!("{}:/usr/bin:/bin", app.display()))
        .env("RBUILD_CACHE_DIR", tmp.path().join("cache"))
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("RBUILD_LOG")
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (reference, digest) = stdout.trim().split_once('@').expect("REF@digest");
    assert_eq!(reference, to);
    let raw = skopeo_raw(&to).expect("skopeo reads the pushed image");
    assert_eq!(rbuild_oci::Digest::of(&raw).to_string(), digest);
}
