//! Installed-tree equivalence with pypa/installer (the PyPI package, 1.1.0, no bytecode) on real
//! PyPI wheels pinned by sha256.
//!
//! The wheels cover: a pure wheel (six), platlib wheels with `.so` files (markupsafe, greenlet),
//! `.data/scripts` with `#!python` (docutils 0.17.1), `.data/headers` (greenlet), `.data/data`
//! (ipykernel), console scripts (pyflakes), gui scripts (pygubu-designer, whose wheel also ships
//! `__pycache__` members that both installers skip), a PEP 420 namespace shared by two wheels
//! (jaraco.functools, jaraco.context) and a maturin wheel with `Root-Is-Purelib: false` (rpds-py).
//!
//! Wheels are cached in `$RBUILD_TEST_WHEELS` (default `~/.cache/rbuild-test-wheels`) and
//! verified by sha256 on every run. Without PyPI (and without a filled cache) or without a
//! Python >= 3.10 the test prints why and passes without checking anything. The launchers and
//! `.so` imports are run with the host `python3`; the gui launcher needs tkinter
//! (Debian: `python3-tk`).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::pypi::{Pin, fetch};
use common::*;
use rbuild_wheel::{BaseInfo, InstallOptions, InstallTarget, install_wheels};

const WHEELS: &[Pin] = &[
    Pin {
        name: "six",
        version: "1.17.0",
        file: "six-1.17.0-py2.py3-none-any.whl",
        sha256: "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",
    },
    Pin {
        name: "markupsafe",
        version: "3.0.3",
        file: "markupsafe-3.0.3-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl",
        sha256: "0bf2a864d67e76e5c9a34dc26ec616a66b9888e25e7b9460e1c76d3293bd9dbf",
    },
    Pin {
        name: "docutils",
        version: "0.17.1",
        file: "docutils-0.17.1-py2.py3-none-any.whl",
        sha256: "cf316c8370a737a022b72b56874f6602acf974a37a9fba42ec2876387549fc61",
    },
    Pin {
        name: "greenlet",
        version: "3.5.6",
        file: "greenlet-3.5.6-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        sha256: "1c20ea32a73d17b9b60e3371240e17b0068120c98a5ec01a224a7dd8c89733ba",
    },
    Pin {
        name: "ipykernel",
        version: "7.4.0",
        file: "ipykernel-7.4.0-py3-none-any.whl",
        sha256: "a6757f790ddc5a6006b813d82da1a9dbb65b3a00f2b6607df776418c6566ec1c",
    },
    Pin {
        name: "pyflakes",
        version: "4.1.0",
        file: "pyflakes-4.1.0-py2.py3-none-any.whl",
        sha256: "b2e05e6bac8e49b67be2a6ffa63422c60f7193fc72e8180255907b41ec997dc1",
    },
    Pin {
        name: "pygubu",
        version: "0.42.1",
        file: "pygubu-0.42.1-py3-none-any.whl",
        sha256: "5cd862eee64ab6b67f2f878fad8054dc64fe60521a98e2c44478f373602ffb51",
    },
    Pin {
        name: "pygubu-designer",
        version: "0.46.2",
        file: "pygubu_designer-0.46.2-py3-none-any.whl",
        sha256: "d5b192965430ba44dd5eb8abe931e7fb056f48e04390baee33f44759c5442e47",
    },
    Pin {
        name: "jaraco-functools",
        version: "4.6.0",
        file: "jaraco_functools-4.6.0-py3-none-any.whl",
        sha256: "99e3dc0060c5cbe8fcd1cdb36258e2a65ca40f1566b2033b12abb1bb44dd3c30",
    },
    Pin {
        name: "jaraco-context",
        version: "6.1.2",
        file: "jaraco_context-6.1.2-py3-none-any.whl",
        sha256: "bf8150b79a2d5d91ae48629d8b427a8f7ba0e1097dd6202a9059f29a36379535",
    },
    Pin {
        name: "rpds-py",
        version: "2026.9.1",
        file: "rpds_py-2026.9.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        sha256: "136a1c3fe4402b7008bc81cb62ee538481795b61a7e83df88dff3b3f02b726ff",
    },
];

const INSTALLER: Pin = Pin {
    name: "installer",
    version: "1.1.0",
    file: "installer-1.1.0-py3-none-any.whl",
    sha256: "f55f5728ff61d3dd54dbc5a397cf3f7307cb64b180c20b72afbebf01c9e2c8a0",
};

/// Installs wheels with pypa/installer (from its wheel on sys.path) into a destdir.
const ORACLE_PY: &str = r#"
import os, sys
from email.parser import HeaderParser
sys.path.insert(0, sys.argv[1])
import installer
from installer.destinations import SchemeDictionaryDestination
from installer.sources import WheelFile
os.umask(0o022)
destdir, interpreter, purelib, platlib, scripts, headers, data = sys.argv[2:9]
for wheel in sys.argv[9:]:
    with WheelFile.open(wheel) as source:
        source.validate_record(validate_contents=True)
        meta = HeaderParser().parsestr(source.read_dist_info("METADATA"))
        scheme = {"purelib": purelib, "platlib": platlib, "scripts": scripts,
                  "headers": os.path.join(headers, meta["Name"]), "data": data}
        dest = SchemeDictionaryDestination(scheme, interpreter, "posix",
                                           bytecode_optimization_levels=(), destdir=destdir)
        installer.install(source, dest, {"INSTALLER": b"rbuild\n"})
"#;

fn python_ok() -> Result<(), String> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.version_info >= (3, 10))"])
        .output()
        .map_err(|e| format!("no python3: {e}"))?;
    if String::from_utf8_lossy(&out.stdout).trim() != "True" {
        return Err("pypa/installer 1.1 needs Python >= 3.10".into());
    }
    Ok(())
}

fn split_target() -> InstallTarget {
    InstallTarget {
        interpreter: "/usr/bin/python3.11".into(),
        purelib: "/usr/lib/python3.11/site-packages".into(),
        platlib: "/usr/lib64/python3.11/site-packages".into(),
        scripts: "/usr/bin".into(),
        headers: "/usr/include/python3.11".into(),
        data: "/usr".into(),
        python_version: (3, 11),
    }
}

fn run_oracle(installer: &Path, wheels: &[PathBuf], target: &InstallTarget, destdir: &Path) {
    let out = Command::new("python3")
        .args(["-c", ORACLE_PY])
        .arg(installer)
        .arg(destdir)
        .args([
            &target.interpreter,
            &target.purelib,
            &target.platlib,
            &target.scripts,
            &target.headers,
            &target.data,
        ])
        .args(wheels)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pypa/installer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn record_rows(text: &str) -> BTreeSet<String> {
    text.lines().map(str::to_string).collect()
}

/// Launcher names declared by the installed entry_points.txt files.
fn launcher_names(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in walk(root) {
        if !p.ends_with(".dist-info/entry_points.txt") {
            continue;
        }
        let mut in_scripts = false;
        for line in fs::read_to_string(root.join(&p)).unwrap().lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_scripts = line == "[console_scripts]" || line == "[gui_scripts]";
            } else if in_scripts && let Some((name, _)) = line.split_once('=') {
                out.insert(name.trim().to_string());
            }
        }
    }
    out
}

fn compare_trees(ours: &Path, theirs: &Path, target: &InstallTarget) {
    let a = walk(ours);
    let b = walk(theirs);
    let only_ours: Vec<_> = a.iter().filter(|p| !b.contains(p)).collect();
    let only_theirs: Vec<_> = b.iter().filter(|p| !a.contains(p)).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "paths differ\nonly rbuild: {only_ours:#?}\nonly installer: {only_theirs:#?}"
    );

    let launchers = launcher_names(ours);
    let scripts_dir = target.scripts.trim_start_matches('/');
    let mut compared = 0;
    for p in a.iter().filter(|p| !p.ends_with('/')) {
        let (pa, pb) = (ours.join(p), theirs.join(p));
        let (ma, mb) = (
            fs::metadata(&pa).unwrap().permissions().mode(),
            fs::metadata(&pb).unwrap().permissions().mode(),
        );
        assert_eq!(
            ma & 0o111 != 0,
            mb & 0o111 != 0,
            "{p}: executable bits differ ({ma:o} vs {mb:o})"
        );
        let (da, db) = (fs::read(&pa).unwrap(), fs::read(&pb).unwrap());
        if p.ends_with(".dist-info/RECORD") {
            // Equal as a set of rows, except INSTALLER and launcher rows, which must describe
            // what was really written.
            let (ra, rb) = (
                record_rows(&String::from_utf8(da).unwrap()),
                record_rows(&String::from_utf8(db).unwrap()),
            );
            let site = Path::new(p).parent().unwrap().parent().unwrap();
            let special = |row: &String| {
                let path = row.split(',').next().unwrap();
                let full = rbuild_path(site, path);
                path.ends_with(".dist-info/INSTALLER")
                    || (full.starts_with(scripts_dir)
                        && launchers.contains(full.rsplit('/').next().unwrap()))
            };
            let plain_a: BTreeSet<_> = ra.iter().filter(|r| !special(r)).collect();
            let plain_b: BTreeSet<_> = rb.iter().filter(|r| !special(r)).collect();
            assert_eq!(plain_a, plain_b, "{p}: RECORD rows differ");
            for row in &ra {
                let mut f = row.rsplitn(3, ',');
                let (size, hash, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
                if path.ends_with(".dist-info/RECORD") {
                    assert_eq!((hash, size), ("", ""), "{p}: RECORD's own row");
                    continue;
                }
                let data = fs::read(ours.join(rbuild_path(site, path))).unwrap();
                assert_eq!(
                    hash,
                    record_hash(&data),
                    "{p}: row {row} does not match the installed file"
                );
                assert_eq!(size, data.len().to_string(), "{p}: row {row}");
            }
            assert_eq!(
                ra.iter().filter(|r| special(r)).count(),
                rb.iter().filter(|r| special(r)).count(),
                "{p}"
            );
        } else {
            assert!(da == db, "{p}: contents differ");
        }
        compared += 1;
    }
    assert!(compared > 500, "only {compared} files compared");
}

/// Joins a RECORD path to the directory holding the dist-info, normalizing `..`.
fn rbuild_path(site: &Path, rel: &str) -> String {
    let mut parts: Vec<String> = site
        .to_str()
        .unwrap()
        .split('/')
        .map(str::to_string)
        .collect();
    for c in rel.split('/') {
        match c {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            c => parts.push(c.to_string()),
        }
    }
    parts.join("/")
}

fn run_script(root: &Path, target: &InstallTarget, script: &str, args: &[&str], expect: &str) {
    let scripts = root.join(target.scripts.trim_start_matches('/'));
    let path = scripts.join(script);
    let text = fs::read(&path).unwrap();
    let first = text.split(|b| *b == b'\n').next().unwrap();
    assert_eq!(
        first,
        format!("#!{}", target.interpreter).as_bytes(),
        "{script}: shebang"
    );
    let pythonpath = format!(
        "{}:{}",
        root.join(target.purelib.trim_start_matches('/')).display(),
        root.join(target.platlib.trim_start_matches('/')).display()
    );
    let out = Command::new("python3")
        .arg(&path)
        .args(args)
        .env("PYTHONPATH", pythonpath)
        .env_remove("DISPLAY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(expect),
        "{script} {args:?} printed {stdout:?}, expected {expect:?}"
    );
}

#[test]
fn installed_tree_matches_pypa_installer() {
    if let Err(why) = python_ok() {
        eprintln!("SKIPPED installed-tree equivalence: {why}");
        return;
    }
    let mut wheels = Vec::new();
    for pin in WHEELS {
        match fetch(pin) {
            Ok(p) => wheels.push((p, pin)),
            Err(why) => {
                eprintln!("SKIPPED installed-tree equivalence: {why}");
                return;
            }
        }
    }
    let installer = match fetch(&INSTALLER) {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIPPED installed-tree equivalence: {why}");
            return;
        }
    };
    let paths: Vec<PathBuf> = wheels.iter().map(|(p, _)| p.clone()).collect();
    let inputs: Vec<_> = wheels
        .iter()
        .map(|(p, pin)| rbuild_wheel::WheelInput {
            path: p.clone(),
            filename: pin.file.into(),
            expected_name: pin.name.into(),
            expected_version: pin.version.into(),
        })
        .collect();

    for target in [debian_target(), split_target()] {
        let ours = tempfile::tempdir().unwrap();
        let mut sink = TreeSink::new(ours.path());
        let report = install_wheels(
            &inputs,
            &target,
            &BaseInfo::default(),
            &InstallOptions::default(),
            &mut sink,
        )
        .unwrap();
        assert!(
            report
                .warnings
                .iter()
                .all(|w| matches!(w, rbuild_wheel::Warning::PycacheSkipped { .. })),
            "{:?}",
            report.warnings
        );
        assert!(
            !report.warnings.is_empty(),
            "pygubu_designer ships __pycache__ members"
        );
        let theirs = tempfile::tempdir().unwrap();
        run_oracle(&installer, &paths, &target, theirs.path());
        compare_trees(ours.path(), theirs.path(), &target);

        // The features the wheel set is meant to cover are really there.
        let has = |p: &str| ours.path().join(p.trim_start_matches('/')).exists();
        let t = &target;
        assert!(
            has(&format!("{}/greenlet/greenlet.h", t.headers)),
            ".data/headers"
        );
        assert!(
            has(&format!(
                "{}/share/jupyter/kernels/python3/kernel.json",
                t.data
            )),
            ".data/data"
        );
        assert!(
            has(&format!("{}/rpds_py-2026.9.1.dist-info/RECORD", t.platlib)),
            "maturin root in platlib"
        );
        assert!(
            has(&format!("{}/six.py", t.purelib)),
            "pure wheel in purelib"
        );
        assert!(
            has(&format!("{}/jaraco/functools/__init__.py", t.purelib))
                && !has(&format!("{}/jaraco/__init__.py", t.purelib))
        );
        let rst2html = fs::read_to_string(
            ours.path()
                .join(t.scripts.trim_start_matches('/'))
                .join("rst2html.py"),
        )
        .unwrap();
        assert!(
            rst2html.starts_with(&format!("#!{}\n", t.interpreter)),
            ".data/scripts #!python rewritten"
        );
    }

    // Every launcher starts with the target interpreter and runs; so do the .data scripts.
    let root = tempfile::tempdir().unwrap();
    let target = debian_target();
    let mut sink = TreeSink::new(root.path());
    install_wheels(
        &inputs,
        &target,
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap();
    let launchers = launcher_names(root.path());
    assert_eq!(
        launchers,
        ["pyflakes", "pygubu-designer"]
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    );
    run_script(root.path(), &target, "pyflakes", &["--version"], "4.1.0");
    run_script(
        root.path(),
        &target,
        "pygubu-designer",
        &["--help"],
        "pygubu-designer: 0.46.2",
    );
    run_script(
        root.path(),
        &target,
        "rst2html.py",
        &["--version"],
        "Docutils 0.17.1",
    );
    run_script(
        root.path(),
        &target,
        "rst2man.py",
        &["--version"],
        "Docutils 0.17.1",
    );

    // The compiled modules load and importlib.metadata sees every distribution once.
    let site = root.path().join(target.purelib.trim_start_matches('/'));
    let check = r#"
import importlib.metadata as md, platform, sys
site, names = sys.argv[1], sys.argv[2:]
found = {}
for d in md.distributions(path=[site]):
    found.setdefault(d.metadata["Name"].lower().replace("_", "-").replace(".", "-"), []).append(d.version)
for n in names:
    assert len(found.get(n, [])) == 1, (n, found.get(n))
if sys.version_info[:2] == (3, 11) and platform.machine() == "x86_64":
    import markupsafe._speedups, greenlet._greenlet, rpds, six, docutils, pyflakes
    assert markupsafe.escape("<a>") == "&lt;a&gt;"
    assert rpds.HashTrieMap({1: 2})[1] == 2
    print("imports ok")
import jaraco
assert not hasattr(jaraco, "__file__") or jaraco.__file__ is None, "jaraco must be a namespace package"
print("ok")
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", check]).arg(&site).env("PYTHONPATH", &site);
    cmd.args(WHEELS.iter().map(|p| p.name));
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if !stdout.contains("imports ok") {
        eprintln!("note: compiled modules not imported (host python is not CPython 3.11 x86_64)");
    }
}

const PIP_OLD: Pin = Pin {
    name: "pip",
    version: "23.0.1",
    file: "pip-23.0.1-py3-none-any.whl",
    sha256: "236bcb61156d76c4b8a05821b988c7b8c35bf0da28a4b614e8d6ab5212c25c6f",
};
const PIP_NEW: Pin = Pin {
    name: "pip",
    version: "24.0",
    file: "pip-24.0-py3-none-any.whl",
    sha256: "ba0d021a166865d2265246961bec0152ff124de910c5cc39f1156ce3fa7c69dc",
};

/// Real pip in the base replaced by another real pip: applying the layer's whiteouts onto the
/// base gives the tree of a fresh install, and Python sees one pip, the new one.
#[test]
fn replacing_real_pip_in_the_base() {
    let (old, new) = match (fetch(&PIP_OLD), fetch(&PIP_NEW)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(why), _) | (_, Err(why)) => {
            eprintln!("SKIPPED pip replacement: {why}");
            return;
        }
    };
    let target = debian_target();
    let site = target.purelib.trim_start_matches('/').to_string();
    let input = |p: &Path, pin: &Pin| rbuild_wheel::WheelInput {
        path: p.to_path_buf(),
        filename: pin.file.into(),
        expected_name: pin.name.into(),
        expected_version: pin.version.into(),
    };
    let base = tempfile::tempdir().unwrap();
    install_wheels(
        &[input(&old, &PIP_OLD)],
        &target,
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut TreeSink::new(base.path()),
    )
    .unwrap();
    let dir_modes = walk(base.path())
        .into_iter()
        .filter_map(|p| p.strip_suffix('/').map(str::to_string))
        .map(|p| {
            (
                p.clone(),
                fs::metadata(base.path().join(&p))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o7777,
            )
        })
        .collect();
    let dist_info = format!("{site}/pip-23.0.1.dist-info");
    let record = rbuild_wheel::parse_record_paths(
        &fs::read(base.path().join(&dist_info).join("RECORD")).unwrap(),
    )
    .unwrap();
    let info = BaseInfo {
        dir_modes,
        dir_owners: Default::default(),
        installed: vec![rbuild_wheel::BaseDist {
            name: "pip".into(),
            version: "23.0.1".into(),
            dist_info,
            record: Some(record),
            site_dir: site.clone(),
        }],
    };
    let mut sink = TreeSink::new(base.path());
    let report = install_wheels(
        &[input(&new, &PIP_NEW)],
        &target,
        &info,
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap();
    assert_eq!(report.replaced.len(), 1);
    let whiteouts: Vec<_> = sink
        .events
        .iter()
        .filter(|e| matches!(e, Event::Whiteout(_)))
        .collect();
    assert!(
        whiteouts.contains(&&Event::Whiteout(format!("{site}/pip-23.0.1.dist-info"))),
        "{whiteouts:?}"
    );

    let fresh = tempfile::tempdir().unwrap();
    install_wheels(
        &[input(&new, &PIP_NEW)],
        &target,
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut TreeSink::new(fresh.path()),
    )
    .unwrap();
    assert_eq!(walk(base.path()), walk(fresh.path()));
    for p in walk(fresh.path()).iter().filter(|p| !p.ends_with('/')) {
        assert!(
            fs::read(base.path().join(p)).unwrap() == fs::read(fresh.path().join(p)).unwrap(),
            "{p} differs"
        );
    }

    if python_ok().is_ok() {
        let out = Command::new("python3")
            .args(["-c", "import importlib.metadata as m, sys; print([d.version for d in m.distributions(path=[sys.argv[1]]) if d.metadata['Name'] == 'pip'])"])
            .arg(base.path().join(&site))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "['24.0']");
        let out = Command::new("python3")
            .args(["-m", "pip", "--version"])
            .env("PYTHONPATH", base.path().join(&site))
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("pip 24.0 "),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
