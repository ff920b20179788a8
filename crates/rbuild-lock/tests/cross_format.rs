//! One project locked by the real tools in four formats (see tests/data/README.md): every reader must
//! give the same pins and the same wheel for cp311 / glibc 2.36 / x86_64, and that must be what pip
//! itself chooses.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{data, env311, opts, pins, read, tags311};
use rbuild_lock::{
    ChosenWheel, Lock, LockFormat, LockedFile, ResolveOptions, choose_wheel, read_lock,
};
use rbuild_python::markers::MarkerEnv;
use rbuild_python::target::MajorMinor;

/// The default selection of every format, for the lockdemo project.
const DEFAULT_LOCKS: &[&str] = &[
    "lockdemo/uv.lock",
    "lockdemo/pylock.toml",
    "lockdemo/requirements.txt",
    "lockdemo/requirements-compile.txt",
    "lockdemo-poetry2/poetry.lock",
    "lockdemo-poetry2-pypi/poetry.lock",
    "lockdemo-poetry1/poetry.lock",
];

/// Chooses wheels; for a requirements file, the "index listing" is the file list of uv.lock (the
/// same files PyPI lists), filtered by the requirement's hashes.
fn wheels(lock: &Lock, listing: &Lock) -> BTreeMap<String, ChosenWheel> {
    lock.packages
        .iter()
        .map(|p| {
            let p = if p.files_listed {
                p.clone()
            } else {
                let files: Vec<LockedFile> = listing.get(&p.name).unwrap().files.clone();
                let with = p.with_index_files(files);
                assert!(
                    !with.files.is_empty(),
                    "{}: no index file matches its hashes",
                    p.name
                );
                with
            };
            let w = choose_wheel(&p, &tags311()).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            (p.name.clone(), w)
        })
        .collect()
}

#[test]
fn all_formats_agree_on_pins_and_wheels() {
    let uv = read("lockdemo/uv.lock", &ResolveOptions::default());
    let expected = pins(&uv);
    let names: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    // The extra `uvicorn[standard]` is followed, Linux-only markers hold, Windows-only ones do not,
    // the `cli` extra and the `dev` group are not installed by default, nor is the project itself.
    for n in [
        "fastapi",
        "uvicorn",
        "requests",
        "uvloop",
        "httptools",
        "watchfiles",
        "websockets",
        "pyyaml",
    ] {
        assert!(names.contains(&n), "{n} missing: {names:?}");
    }
    for n in ["colorama", "pywin32", "rich", "pytest", "lockdemo"] {
        assert!(!names.contains(&n), "{n} must not be installed: {names:?}");
    }
    assert_eq!(expected.len(), 24, "{names:?}");

    let uv_wheels = wheels(&uv, &uv);
    for rel in DEFAULT_LOCKS {
        let lock = read(rel, &ResolveOptions::default());
        assert_eq!(pins(&lock), expected, "{rel}");
        let w = wheels(&lock, &uv);
        for (name, want) in &uv_wheels {
            let got = &w[name];
            assert_eq!(got.filename, want.filename, "{rel}: {name}");
            assert_eq!(got.sha256, want.sha256, "{rel}: {name}");
        }
    }
    // Spot checks of the ranking: a cp311 manylinux wheel beats abi3 and pure wheels.
    assert_eq!(
        uv_wheels["pydantic-core"].filename,
        "pydantic_core-2.50.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
    );
    assert_eq!(
        uv_wheels["watchfiles"].filename,
        "watchfiles-1.3.0-cp310-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    );
    assert!(
        uv_wheels["uvloop"]
            .url
            .as_deref()
            .unwrap()
            .starts_with("https://files.pythonhosted.org/")
    );
}

#[test]
fn formats_report_their_sources() {
    let uv = read("lockdemo/uv.lock", &ResolveOptions::default());
    assert_eq!(uv.format, LockFormat::UvLock);
    assert!(uv.hashes_required);
    assert_eq!(
        uv.packages[0].source.index_url(),
        Some("https://pypi.org/simple")
    );
    assert!(
        uv.notes.iter().any(|n| n.contains("lockdemo")),
        "{:?}",
        uv.notes
    );

    let req = read("lockdemo/requirements.txt", &ResolveOptions::default());
    assert_eq!(req.format, LockFormat::Requirements);
    assert!(req.hashes_required);
    assert!(
        req.notes.iter().any(|n| n.contains("-e .")),
        "{:?}",
        req.notes
    );
    assert!(
        req.packages
            .iter()
            .all(|p| !p.files_listed && !p.hashes.is_empty())
    );
    assert_eq!(
        choose_wheel(&req.packages[0], &tags311())
            .unwrap_err()
            .to_string(),
        format!(
            "{} {}: the lockfile lists no files for it (requirements files record only hashes); list \
             the index's files and call `LockedPackage::with_index_files` first",
            req.packages[0].name, req.packages[0].version
        )
    );

    let pylock = read("lockdemo/pylock.toml", &ResolveOptions::default());
    assert!(
        pylock.notes.iter().any(|n| n.contains("project itself")),
        "{:?}",
        pylock.notes
    );

    // Poetry: file names and hashes only; the URL comes from the package's index by file name.
    let p2 = read("lockdemo-poetry2/poetry.lock", &ResolveOptions::default());
    let w = choose_wheel(p2.get("idna").unwrap(), &tags311()).unwrap();
    assert_eq!(w.url, None);
    assert_eq!(w.index.as_deref(), Some("https://pypi.org/simple"));
    let pypi = read(
        "lockdemo-poetry2-pypi/poetry.lock",
        &ResolveOptions::default(),
    );
    let w = choose_wheel(pypi.get("idna").unwrap(), &tags311()).unwrap();
    assert_eq!((w.url, w.index), (None, None));
}

#[test]
fn extras_and_groups_agree() {
    let uv = read("lockdemo/uv.lock", &opts(&["cli"], &["dev"]));
    let expected = pins(&uv);
    let names: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    for n in [
        "rich",
        "pygments",
        "markdown-it-py",
        "pytest",
        "pluggy",
        "iniconfig",
    ] {
        assert!(names.contains(&n), "{n} missing: {names:?}");
    }
    assert!(
        !names.contains(&"colorama"),
        "pytest's colorama is Windows-only"
    );
    // uv exports the dev group by default.
    assert_eq!(
        pins(&read(
            "lockdemo/requirements-dev-cli.txt",
            &ResolveOptions::default()
        )),
        expected
    );
    assert_eq!(
        pins(&read(
            "lockdemo/pylock.full.toml",
            &ResolveOptions::default()
        )),
        expected
    );
    for rel in [
        "lockdemo-poetry2/poetry.lock",
        "lockdemo-poetry1/poetry.lock",
    ] {
        assert_eq!(
            pins(&read(rel, &opts(&["cli"], &["dev"]))),
            expected,
            "{rel}"
        );
    }
    // Only the extra, only the group.
    let cli = pins(&read("lockdemo/uv.lock", &opts(&["cli"], &[])));
    let dev = pins(&read("lockdemo/uv.lock", &opts(&[], &["dev"])));
    assert!(cli.iter().any(|(n, _)| n == "rich") && !cli.iter().any(|(n, _)| n == "pytest"));
    assert!(dev.iter().any(|(n, _)| n == "pytest") && !dev.iter().any(|(n, _)| n == "rich"));
    for rel in [
        "lockdemo-poetry2/poetry.lock",
        "lockdemo-poetry1/poetry.lock",
    ] {
        assert_eq!(pins(&read(rel, &opts(&["cli"], &[]))), cli, "{rel}");
        assert_eq!(pins(&read(rel, &opts(&[], &["dev"]))), dev, "{rel}");
    }
}

/// The error reading `tests/data/REL` with `options`.
fn error(rel: &str, options: &ResolveOptions) -> String {
    match read_lock(&data(rel), &env311(), options) {
        Ok(lock) => panic!("{rel}: expected an error, got {:?}", pins(&lock)),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_extras_and_groups_are_errors() {
    for rel in [
        "lockdemo/uv.lock",
        "lockdemo-poetry2/poetry.lock",
        "lockdemo-poetry1/poetry.lock",
    ] {
        let e = error(rel, &opts(&["nope"], &[]));
        assert!(
            e.contains("extra `nope` is not in the lockfile") && e.contains("cli"),
            "{rel}: {e}"
        );
        let e = error(rel, &opts(&[], &["nope"]));
        assert!(
            e.contains("dependency group `nope` is not in the lockfile") && e.contains("dev"),
            "{rel}: {e}"
        );
    }
    // uv's pylock export is single-use: it lists no extras.
    let e = error("lockdemo/pylock.toml", &opts(&["cli"], &[]));
    assert!(e.contains("export it again"), "{e}");
    let e = error("lockdemo/requirements.txt", &opts(&["cli"], &[]));
    assert!(e.contains("one fixed selection"), "{e}");
}

#[test]
fn forked_resolution_picks_by_marker() {
    let env39 = MarkerEnv::cpython_linux(MajorMinor::new(3, 9), Some("3.9.18"), "x86_64");
    for rel in [
        "forkdemo/uv.lock",
        "forkdemo/pylock.toml",
        "forkdemo/requirements.txt",
    ] {
        let l311 = read(rel, &ResolveOptions::default());
        assert_eq!(
            pins(&l311),
            [("idna".to_string(), "3.20".to_string())],
            "{rel}"
        );
        let l39 = read_lock(&data(rel), &env39, &ResolveOptions::default()).unwrap();
        assert_eq!(
            pins(&l39),
            [("idna".to_string(), "3.7".to_string())],
            "{rel}"
        );
    }
    // Without the patch version `python_full_version >= '3.11'` is still decided for 3.11.
    let env_short = MarkerEnv::cpython_linux(MajorMinor::new(3, 11), None, "x86_64");
    let l = read_lock(
        &data("forkdemo/uv.lock"),
        &env_short,
        &ResolveOptions::default(),
    )
    .unwrap();
    assert_eq!(pins(&l), [("idna".to_string(), "3.20".to_string())]);

    let all = read("forkdemo/uv.lock", &opts(&["socks"], &["lint"]));
    let names: Vec<String> = all.packages.iter().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["colorama", "idna", "pysocks"]);
}

#[test]
fn conflicting_extras_pick_their_versions() {
    let pins_of = |extras: &[&str], groups: &[&str]| {
        read("conflictdemo/uv.lock", &opts(extras, groups))
            .packages
            .iter()
            .map(|p| format!("{}=={}", p.name, p.version))
            .collect::<Vec<_>>()
    };
    assert_eq!(pins_of(&[], &[]), ["certifi==2026.10.18"]);
    assert_eq!(
        pins_of(&["old"], &[]),
        [
            "certifi==2026.10.18",
            "chardet==4.0.0",
            "idna==2.10",
            "requests==2.25.1",
            "urllib3==1.26.20"
        ]
    );
    assert_eq!(
        pins_of(&["new"], &[]),
        [
            "certifi==2026.10.18",
            "charset-normalizer==3.5.2",
            "idna==3.20",
            "requests==2.32.3",
            "urllib3==1.26.20"
        ]
    );
    assert_eq!(
        pins_of(&[], &["legacy"]),
        ["certifi==2026.10.18", "idna==3.6"]
    );
    let e = error("conflictdemo/uv.lock", &opts(&["old", "new"], &[]));
    assert!(
        e.contains("extra `new` and extra `old`") && e.contains("conflicting"),
        "{e}"
    );
    let e = error("conflictdemo/uv.lock", &opts(&["new"], &["legacy"]));
    assert!(e.contains("conflicting"), "{e}");
}

#[test]
fn requires_python_is_checked() {
    let env312 = MarkerEnv::cpython_linux(MajorMinor::new(3, 12), Some("3.12.1"), "x86_64");
    for rel in [
        "lockdemo/uv.lock",
        "lockdemo/pylock.toml",
        "lockdemo-poetry2/poetry.lock",
    ] {
        let e = match read_lock(&data(rel), &env312, &ResolveOptions::default()) {
            Ok(l) => panic!("{rel}: expected an error, got {:?}", pins(&l)),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains("requires Python") && e.contains("3.12.1"),
            "{rel}: {e}"
        );
    }
}

// --- pip as the oracle -------------------------------------------------------------------------------

/// The manylinux platforms for glibc 2.36 on x86_64, best first, as `packaging.tags` lists them.
fn manylinux_platforms() -> Vec<String> {
    let mut out = Vec::new();
    for minor in (5..=36).rev() {
        out.push(format!("manylinux_2_{minor}_x86_64"));
        match minor {
            17 => out.push("manylinux2014_x86_64".into()),
            12 => out.push("manylinux2010_x86_64".into()),
            5 => out.push("manylinux1_x86_64".into()),
            _ => {}
        }
    }
    out
}

fn pypi_reachable() -> bool {
    use std::net::{TcpStream, ToSocketAddrs};
    let Ok(mut addrs) = ("pypi.org", 443).to_socket_addrs() else {
        return false;
    };
    addrs.any(|a| TcpStream::connect_timeout(&a, std::time::Duration::from_secs(5)).is_ok())
}

#[test]
fn pip_chooses_the_same_pins_and_wheels() {
    let python = std::env::var("RBUILD_TEST_PIP").unwrap_or_else(|_| "python3".into());
    let pip_ok = Command::new(&python)
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !pip_ok {
        println!("SKIPPED: `{python} -m pip` is not available (set RBUILD_TEST_PIP)");
        return;
    }
    if !pypi_reachable() {
        println!("SKIPPED: pypi.org:443 is not reachable");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // pip refuses the editable project line when hashes are required; the rest is uv's file as is.
    let text = std::fs::read_to_string(data("lockdemo/requirements.txt")).unwrap();
    let filtered: String = text
        .lines()
        .filter(|l| l.trim() != "-e .")
        .map(|l| format!("{l}\n"))
        .collect();
    let req = common::write(tmp.path(), "requirements.txt", &filtered);
    let report = tmp.path().join("report.json");
    let mut cmd = Command::new(&python);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--dry-run",
        "--quiet",
        "--ignore-installed",
    ])
    .arg("--report")
    .arg(&report)
    .args([
        "--only-binary=:all:",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
    ])
    .arg("--target")
    .arg(tmp.path().join("target"))
    .arg("-r")
    .arg(&req)
    .env("PIP_DISABLE_PIP_VERSION_CHECK", "1");
    for p in manylinux_platforms() {
        cmd.args(["--platform", &p]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "pip failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let mut pip: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    for item in report["install"].as_array().unwrap() {
        let name = rbuild_python::normalize_name(item["metadata"]["name"].as_str().unwrap());
        let version = item["metadata"]["version"].as_str().unwrap().to_string();
        let url = item["download_info"]["url"].as_str().unwrap();
        let filename = url.rsplit('/').next().unwrap().to_string();
        let info = &item["download_info"]["archive_info"];
        let sha = info["hashes"]["sha256"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                info["hash"]
                    .as_str()
                    .and_then(|h| h.strip_prefix("sha256="))
                    .map(str::to_string)
            })
            .unwrap();
        pip.insert(name, (version, filename, sha));
    }

    let uv = read("lockdemo/uv.lock", &ResolveOptions::default());
    let uv_wheels = wheels(&uv, &uv);
    let ours: BTreeMap<String, (String, String, String)> = uv_wheels
        .iter()
        .map(|(n, w)| {
            (
                n.clone(),
                (
                    w.version.clone(),
                    w.filename.clone(),
                    w.sha256.unwrap().hex(),
                ),
            )
        })
        .collect();
    assert_eq!(ours, pip);
}
