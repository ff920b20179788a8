//! The frontend end to end with in-tree backends (`backend-path`), no network: the host
//! interpreter runs the hooks.

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use rbuild_pep517::{BuildError, DirBuildEnv, build_wheel};
use rbuild_runner::{HostPython, PyVersion, Python};

const MINI_BACKEND: &str = r#"
import os, sys, zipfile, hashlib, base64, time, subprocess

def get_requires_for_build_wheel(config_settings=None):
    if os.path.exists("SLOW"):
        time.sleep(60)
    print("requires hook ran; sys.flags.no_site =", sys.flags.no_site)
    return []

def build_wheel(outdir, config_settings=None, metadata_directory=None):
    if os.path.exists("FAIL"):
        raise RuntimeError("mini backend refuses: FAIL exists")
    if os.path.exists("COMPILE"):
        subprocess.check_call(["gcc", "-c", "x.c"])
    name = "mini-1.0-py3-none-any.whl"
    files = {
        "mini.py": b"X = 1\n",
        "mini-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: mini\nVersion: 1.0\n",
        "mini-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    rec = "".join(
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\n"
        for p, d in files.items()
    ) + "mini-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(os.path.join(outdir, name), "w") as z:
        for p, d in files.items():
            z.writestr(p, d)
        z.writestr("mini-1.0.dist-info/RECORD", rec)
    return name
"#;

const PYPROJECT: &str =
    "[build-system]\nrequires = []\nbuild-backend = \"mini\"\nbackend-path = [\"_b\"]\n";

fn sdist(dir: &Path, extra: &[(&str, &str)]) -> std::path::PathBuf {
    let p = dir.join("mini-1.0.tar.gz");
    let mut files = vec![("pyproject.toml", PYPROJECT), ("_b/mini.py", MINI_BACKEND)];
    files.extend_from_slice(extra);
    make_sdist(&p, "mini-1.0", &files);
    p
}

#[test]
fn in_tree_backend_builds_a_wheel_in_isolation() {
    let d = tempfile::tempdir().unwrap();
    let sd = sdist(d.path(), &[]);
    let scratch = d.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let wheels = d.path().join("wheels");
    std::fs::create_dir(&wheels).unwrap();
    let w = build_wheel(
        &python(),
        &sd,
        &scratch,
        &DirBuildEnv::new(&wheels),
        &target(),
        &no_tools(&d.path().join("empty")),
    )
    .unwrap();
    assert_eq!(w.filename, "mini-1.0-py3-none-any.whl");
    assert_eq!((w.name.as_str(), w.version.as_str()), ("mini", "1.0"));
    assert!(w.build_requirements.is_empty());
    assert_eq!(w.backend, "mini");
    // -I -S: no site-packages of the host leak in; the output is captured.
    assert!(w.output.contains("sys.flags.no_site = 1"), "{}", w.output);
    let root = d.path().join("root");
    install(&w, &root);
    assert_eq!(
        run_with_site(&root, "import mini; print(mini.X)").trim(),
        "1"
    );
}

#[test]
fn backend_failure_reports_the_last_lines() {
    let d = tempfile::tempdir().unwrap();
    let sd = sdist(d.path(), &[("FAIL", "")]);
    let scratch = d.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let err = build_wheel(
        &python(),
        &sd,
        &scratch,
        &DirBuildEnv::new(d.path()),
        &target(),
        &no_tools(&d.path().join("empty")),
    )
    .unwrap_err();
    assert!(matches!(err, BuildError::BackendFailed { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("building mini 1.0: build_wheel of mini failed"),
        "{msg}"
    );
    assert!(
        msg.contains("RuntimeError: mini backend refuses: FAIL exists"),
        "{msg}"
    );
}

#[test]
fn a_missing_compiler_is_named_with_the_ways_out() {
    let d = tempfile::tempdir().unwrap();
    let sd = sdist(d.path(), &[("COMPILE", ""), ("x.c", "int x;\n")]);
    let scratch = d.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let err = build_wheel(
        &python(),
        &sd,
        &scratch,
        &DirBuildEnv::new(d.path()),
        &target(),
        &no_tools(&d.path().join("empty")),
    )
    .unwrap_err();
    let BuildError::NeedsCompiler {
        package,
        version,
        what,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((package.as_str(), version.as_str()), ("mini", "1.0"));
    assert!(what.contains("C compiler (gcc"), "{what}");
    let msg = err.to_string();
    assert!(
        msg.contains("--find-links DIR") && msg.contains("base image"),
        "{msg}"
    );
}

/// The host interpreter with a short time limit.
struct Impatient(HostPython);

impl Python for Impatient {
    fn version(&self) -> PyVersion {
        self.0.version()
    }
    fn command(
        &self,
        args: &[OsString],
        scratch: &Path,
        env: &[(String, String)],
    ) -> std::io::Result<Command> {
        self.0.command(args, scratch, env)
    }
    fn time_limit(&self) -> Duration {
        Duration::from_secs(2)
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
}

#[test]
fn a_build_past_the_time_limit_is_killed() {
    let d = tempfile::tempdir().unwrap();
    let sd = sdist(d.path(), &[("SLOW", "")]);
    let scratch = d.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let start = std::time::Instant::now();
    let err = build_wheel(
        &Impatient(python()),
        &sd,
        &scratch,
        &DirBuildEnv::new(d.path()),
        &target(),
        &no_tools(&d.path().join("empty")),
    )
    .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(
        matches!(err, BuildError::TimedOut { seconds: 2, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("get_requires_for_build_wheel ran longer than 2 s")
    );
}

#[test]
fn an_unimportable_backend_is_named() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("nob-1.0.tar.gz");
    make_sdist(
        &p,
        "nob-1.0",
        &[(
            "pyproject.toml",
            "[build-system]\nrequires = []\nbuild-backend = \"no_such_backend\"\n",
        )],
    );
    let scratch = d.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let err = build_wheel(
        &python(),
        &p,
        &scratch,
        &DirBuildEnv::new(d.path()),
        &target(),
        &no_tools(&d.path().join("empty")),
    )
    .unwrap_err();
    assert!(
        matches!(err, BuildError::BackendUnavailable { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("no_such_backend cannot be imported"),
        "{err}"
    );
}
