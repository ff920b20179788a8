//! Replacing a distribution of the base image: the layer's whiteouts, applied onto the base,
//! must leave exactly what a fresh install of the new version (plus the untouched base) has.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use rbuild_wheel::{
    BaseDist, BaseInfo, InstallOptions, Warning, install_wheels, parse_record_paths,
};

const SITE: &str = "usr/local/lib/python3.11/dist-packages";

fn pip_wheel(
    dir: &Path,
    version: &str,
    files: &[(&str, &str)],
    scripts: &[&str],
) -> std::path::PathBuf {
    let mut m = dist_info("pip", version, true);
    for (p, body) in files {
        m.push(member(p, body.as_bytes()));
    }
    let eps: String = scripts
        .iter()
        .map(|s| format!("{s} = pip._internal.cli.main:main\n"))
        .collect();
    m.push(member(
        &format!("pip-{version}.dist-info/entry_points.txt"),
        format!("[console_scripts]\n{eps}").as_bytes(),
    ));
    build_wheel(
        dir,
        &format!("pip-{version}-py3-none-any.whl"),
        &format!("pip-{version}.dist-info"),
        &m,
    )
}

fn other_wheel(dir: &Path) -> std::path::PathBuf {
    let mut m = dist_info("otherdist", "1.0", true);
    m.push(member("shared/other_part.py", b"OTHER = 1\n"));
    m.push(member("otherdist.py", b"import shared.other_part\n"));
    build_wheel(
        dir,
        "otherdist-1.0-py3-none-any.whl",
        "otherdist-1.0.dist-info",
        &m,
    )
}

fn old_pip(dir: &Path) -> std::path::PathBuf {
    pip_wheel(
        dir,
        "23.0.1",
        &[
            ("pip/__init__.py", "__version__ = '23.0.1'\n"),
            ("pip/_internal/__init__.py", ""),
            ("pip/_internal/cli/main.py", "def main(): return 0\n"),
            ("pip/_internal/gone.py", "OLD = True\n"),
            ("pip/_vendor/oldlib/__init__.py", "x = 1\n"),
            ("pip/_vendor/oldlib/deep/y.py", "y = 2\n"),
            ("shared/pip_part.py", "PIP = 1\n"),
        ],
        &["pip", "pip3", "pip3.11"],
    )
}

fn new_pip(dir: &Path) -> std::path::PathBuf {
    pip_wheel(
        dir,
        "24.0",
        &[
            ("pip/__init__.py", "__version__ = '24.0'\n"),
            ("pip/_internal/__init__.py", ""),
            ("pip/_internal/cli/main.py", "def main(): return 0\n"),
            ("pip/_internal/added.py", "NEW = True\n"),
        ],
        &["pip", "pip3"],
    )
}

/// Installs `wheels` into an empty root (a stand-in for an image built from scratch).
fn install_into(
    root: &Path,
    wheels: &[(std::path::PathBuf, &str, &str)],
    base: &BaseInfo,
) -> rbuild_wheel::InstallReport {
    let inputs: Vec<_> = wheels.iter().map(|(p, n, v)| input(p, n, v)).collect();
    let mut sink = TreeSink::new(root);
    install_wheels(
        &inputs,
        &debian_target(),
        base,
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap()
}

fn dir_modes(root: &Path) -> BTreeMap<String, u32> {
    walk(root)
        .into_iter()
        .filter_map(|p| p.strip_suffix('/').map(str::to_string))
        .map(|p| {
            let mode = fs::metadata(root.join(&p)).unwrap().permissions().mode() & 0o7777;
            (p, mode)
        })
        .collect()
}

fn base_dist(root: &Path, name: &str, version: &str, record: bool) -> BaseDist {
    let dist_info = format!("{SITE}/{name}-{version}.dist-info");
    BaseDist {
        name: name.into(),
        version: version.into(),
        record: record.then(|| {
            parse_record_paths(&fs::read(root.join(&dist_info).join("RECORD")).unwrap()).unwrap()
        }),
        dist_info,
        site_dir: SITE.into(),
    }
}

fn tree_with_contents(root: &Path) -> Vec<(String, Vec<u8>)> {
    walk(root)
        .into_iter()
        .map(|p| {
            let data = if p.ends_with('/') {
                Vec::new()
            } else {
                fs::read(root.join(&p)).unwrap()
            };
            (p, data)
        })
        .collect()
}

#[test]
fn replacing_pip_leaves_exactly_the_new_version() {
    let wheels = tempfile::tempdir().unwrap();
    let (old, new, other) = (
        old_pip(wheels.path()),
        new_pip(wheels.path()),
        other_wheel(wheels.path()),
    );

    // The base: old pip and another distribution sharing the `shared/` directory, plus bytecode
    // Python compiled later (not in RECORD) and the setgid site directory Debian has.
    let base = tempfile::tempdir().unwrap();
    install_into(
        base.path(),
        &[(old, "pip", "23.0.1"), (other.clone(), "otherdist", "1.0")],
        &BaseInfo::default(),
    );
    for dir in ["pip/__pycache__", "pip/_internal/__pycache__"] {
        fs::create_dir_all(base.path().join(SITE).join(dir)).unwrap();
    }
    fs::write(
        base.path()
            .join(SITE)
            .join("pip/__pycache__/__init__.cpython-311.pyc"),
        b"stale",
    )
    .unwrap();
    fs::write(
        base.path()
            .join(SITE)
            .join("pip/_internal/__pycache__/__init__.cpython-311.opt-1.pyc"),
        b"stale",
    )
    .unwrap();
    fs::set_permissions(base.path().join(SITE), fs::Permissions::from_mode(0o2775)).unwrap();
    let info = BaseInfo {
        dir_modes: dir_modes(base.path()),
        dir_owners: Default::default(),
        installed: vec![
            base_dist(base.path(), "pip", "23.0.1", true),
            base_dist(base.path(), "otherdist", "1.0", true),
        ],
    };

    // The dependency layer installs new pip; applying it onto the base...
    let inputs = [input(&new, "pip", "24.0")];
    let mut sink = TreeSink::new(base.path());
    let report = install_wheels(
        &inputs,
        &debian_target(),
        &info,
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap();
    assert_eq!(report.replaced.len(), 1);
    assert_eq!(report.replaced[0].version, "23.0.1");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);

    // ...gives the same tree as installing new pip next to otherdist from scratch.
    let fresh = tempfile::tempdir().unwrap();
    install_into(
        fresh.path(),
        &[(new, "pip", "24.0"), (other, "otherdist", "1.0")],
        &BaseInfo::default(),
    );
    // (Emptied `__pycache__` directories may remain: the layer cannot know what else the base
    // cached there, and an empty cache directory is harmless.)
    let got: Vec<_> = tree_with_contents(base.path())
        .into_iter()
        .filter(|(p, _)| !p.ends_with("/__pycache__/"))
        .collect();
    let want = tree_with_contents(fresh.path());
    let got_paths: Vec<_> = got.iter().map(|(p, _)| p.as_str()).collect();
    let want_paths: Vec<_> = want.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(got_paths, want_paths);
    assert_eq!(got, want);

    // The whiteouts are minimal: whole directories only pip used, single files elsewhere, and
    // nothing for paths the new version writes.
    let whiteouts: Vec<String> = sink
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Whiteout(p) => {
                Some(p.strip_prefix(&format!("{SITE}/")).unwrap_or(p).to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        whiteouts,
        [
            "usr/local/bin/pip3.11",
            "pip-23.0.1.dist-info",
            "pip/_vendor",
            "pip/__pycache__/__init__.cpython-311.opt-1.pyc",
            "pip/__pycache__/__init__.cpython-311.opt-2.pyc",
            "pip/__pycache__/__init__.cpython-311.pyc",
            "pip/_internal/gone.py",
            "pip/_internal/__pycache__/__init__.cpython-311.opt-1.pyc",
            "pip/_internal/__pycache__/__init__.cpython-311.opt-2.pyc",
            "pip/_internal/__pycache__/__init__.cpython-311.pyc",
            "pip/_internal/__pycache__/gone.cpython-311.opt-1.pyc",
            "pip/_internal/__pycache__/gone.cpython-311.opt-2.pyc",
            "pip/_internal/__pycache__/gone.cpython-311.pyc",
            "shared/pip_part.py",
        ]
    );
    for must in [
        "pip-23.0.1.dist-info",
        "pip/_internal/gone.py",
        "pip/_vendor",
        "shared/pip_part.py",
        "usr/local/bin/pip3.11",
        "pip/__pycache__/__init__.cpython-311.pyc",
        "pip/_internal/__pycache__/__init__.cpython-311.opt-1.pyc",
    ] {
        assert!(
            whiteouts.iter().any(|w| w == must),
            "missing whiteout {must}: {whiteouts:?}"
        );
    }
    for never in [
        "pip/__init__.py",
        "pip/_internal",
        "shared",
        "usr/local/bin/pip",
        "usr/local/bin/pip3",
    ] {
        assert!(
            !whiteouts.iter().any(|w| w == never),
            "unexpected whiteout {never}"
        );
    }
    assert!(
        !whiteouts.iter().any(|w| w.starts_with("pip/_vendor/")),
        "redundant whiteouts below pip/_vendor"
    );
    // The site directory keeps the base's mode.
    assert!(sink.events.contains(&Event::Dir(SITE.into(), 0o2775)));
}

#[test]
fn same_version_reinstall_keeps_the_dist_info_directory() {
    let wheels = tempfile::tempdir().unwrap();
    let new = new_pip(wheels.path());
    let base = tempfile::tempdir().unwrap();
    install_into(
        base.path(),
        &[(new.clone(), "pip", "24.0")],
        &BaseInfo::default(),
    );
    fs::write(
        base.path().join(SITE).join("pip-24.0.dist-info/REQUESTED"),
        b"",
    )
    .unwrap();
    let mut record = parse_record_paths(
        &fs::read(base.path().join(SITE).join("pip-24.0.dist-info/RECORD")).unwrap(),
    )
    .unwrap();
    record.push("pip-24.0.dist-info/REQUESTED".into());
    let info = BaseInfo {
        dir_modes: dir_modes(base.path()),
        dir_owners: Default::default(),
        installed: vec![BaseDist {
            name: "pip".into(),
            version: "24.0".into(),
            dist_info: format!("{SITE}/pip-24.0.dist-info"),
            record: Some(record),
            site_dir: SITE.into(),
        }],
    };
    let mut sink = TreeSink::new(base.path());
    install_wheels(
        &[input(&new, "pip", "24.0")],
        &debian_target(),
        &info,
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap();
    let whiteouts: Vec<_> = sink
        .events
        .iter()
        .filter(|e| matches!(e, Event::Whiteout(_)))
        .collect();
    assert_eq!(
        whiteouts,
        [&Event::Whiteout(format!(
            "{SITE}/pip-24.0.dist-info/REQUESTED"
        ))]
    );
    let fresh = tempfile::tempdir().unwrap();
    install_into(fresh.path(), &[(new, "pip", "24.0")], &BaseInfo::default());
    assert_eq!(
        tree_with_contents(base.path()),
        tree_with_contents(fresh.path())
    );
}

#[test]
fn base_dist_without_record_is_installed_over_with_a_warning() {
    let wheels = tempfile::tempdir().unwrap();
    let new = new_pip(wheels.path());
    let base = tempfile::tempdir().unwrap();
    let deb_site = "usr/lib/python3/dist-packages";
    fs::create_dir_all(base.path().join(deb_site).join("pip-22.3.1.egg-info")).unwrap();
    fs::create_dir_all(base.path().join(deb_site).join("pip")).unwrap();
    fs::write(base.path().join(deb_site).join("pip/__init__.py"), b"old").unwrap();
    fs::write(
        base.path()
            .join(deb_site)
            .join("pip-22.3.1.egg-info/PKG-INFO"),
        b"Name: pip\n",
    )
    .unwrap();
    let info = BaseInfo {
        dir_modes: dir_modes(base.path()),
        dir_owners: Default::default(),
        installed: vec![BaseDist {
            name: "pip".into(),
            version: "22.3.1".into(),
            dist_info: format!("{deb_site}/pip-22.3.1.egg-info"),
            record: None,
            site_dir: deb_site.into(),
        }],
    };
    let mut sink = TreeSink::new(base.path());
    let report = install_wheels(
        &[input(&new, "pip", "24.0")],
        &debian_target(),
        &info,
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap();
    assert!(
        matches!(&report.warnings[..], [Warning::NoRecord { name, version, .. }] if name == "pip" && version == "22.3.1")
    );
    let msg = report.warnings[0].to_string();
    assert!(
        msg.contains("pip 22.3.1") && msg.contains("no RECORD"),
        "{msg}"
    );
    // Only the metadata is hidden (one version visible to importlib.metadata); the files stay.
    let whiteouts: Vec<_> = sink
        .events
        .iter()
        .filter(|e| matches!(e, Event::Whiteout(_)))
        .collect();
    assert_eq!(
        whiteouts,
        [&Event::Whiteout(format!("{deb_site}/pip-22.3.1.egg-info"))]
    );
    assert!(base.path().join(deb_site).join("pip/__init__.py").exists());
    assert!(
        !base
            .path()
            .join(deb_site)
            .join("pip-22.3.1.egg-info")
            .exists()
    );
}

#[test]
fn base_record_paths_outside_the_root_are_ignored() {
    let wheels = tempfile::tempdir().unwrap();
    let new = new_pip(wheels.path());
    let info = BaseInfo {
        dir_modes: [("usr".to_string(), 0o755)].into_iter().collect(),
        dir_owners: Default::default(),
        installed: vec![BaseDist {
            name: "PIP".into(),
            version: "1".into(),
            dist_info: format!("{SITE}/pip-1.dist-info"),
            record: Some(vec!["../../../../../../../../etc/passwd".into()]),
            site_dir: SITE.into(),
        }],
    };
    let mut sink = LogSink::default();
    let report = install_wheels(
        &[input(&new, "pip", "24.0")],
        &debian_target(),
        &info,
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| matches!(w, Warning::BaseRecordOutsideRoot { .. }))
    );
    assert!(
        !sink
            .events
            .iter()
            .any(|e| matches!(e, Event::Whiteout(p) if p.contains("passwd")))
    );
}
