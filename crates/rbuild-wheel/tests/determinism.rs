//! Same wheels, same entries: independent of input order and of thread scheduling; conflicts
//! between wheels are settled by normalized name.

mod common;

use std::path::PathBuf;

use common::*;
use rbuild_wheel::{BaseInfo, Error, InstallOptions, Warning, WheelInput, install_wheels};

struct Set {
    _dir: tempfile::TempDir,
    inputs: Vec<WheelInput>,
}

fn wheel(
    dir: &std::path::Path,
    name: &str,
    files: &[(&str, &[u8], u32)],
    data: &[(&str, &[u8])],
) -> PathBuf {
    let mut m = dist_info(name, "1.0", true);
    for (p, body, mode) in files {
        let mut x = member(p, body);
        x.mode = *mode;
        m.push(x);
    }
    for (p, body) in data {
        m.push(member(&format!("{name}-1.0.data/{p}"), body));
    }
    m.push(member(
        &format!("{name}-1.0.dist-info/entry_points.txt"),
        format!("[console_scripts]\n{name}-cli = {name}:main\n").as_bytes(),
    ));
    build_wheel(
        dir,
        &format!("{name}-1.0-py3-none-any.whl"),
        &format!("{name}-1.0.dist-info"),
        &m,
    )
}

fn set() -> Set {
    let dir = tempfile::tempdir().unwrap();
    let a = wheel(
        dir.path(),
        "alpha",
        &[
            ("alpha/__init__.py", b"def main(): pass\n", 0o644),
            ("ns/shared.txt", b"same\n", 0o644),
            ("tool.sh", b"#!/bin/sh\n", 0o755),
        ],
        &[
            ("scripts/alpha-run", b"#!python -u\nprint(1)\n"),
            ("data/share/alpha/x.json", b"{}"),
        ],
    );
    let b = wheel(
        dir.path(),
        "Beta_Pkg",
        &[
            ("beta/__init__.py", b"def main(): pass\n", 0o644),
            ("ns/shared.txt", b"same\n", 0o644),
        ],
        &[
            ("headers/beta.h", b"#pragma once\n"),
            ("platlib/beta_ext.py", b""),
        ],
    );
    let c = wheel(
        dir.path(),
        "gamma",
        &[("gamma.py", b"def main(): pass\n", 0o644)],
        &[],
    );
    let inputs = vec![
        input(&a, "alpha", "1.0"),
        input(&b, "beta-pkg", "1.0"),
        input(&c, "gamma", "1.0"),
    ];
    Set { _dir: dir, inputs }
}

fn run(inputs: &[WheelInput], threads: usize) -> Vec<Event> {
    let mut sink = LogSink::default();
    let opts = InstallOptions {
        threads,
        ..InstallOptions::default()
    };
    install_wheels(
        inputs,
        &debian_target(),
        &BaseInfo::default(),
        &opts,
        &mut sink,
    )
    .unwrap();
    sink.events
}

#[test]
fn same_output_regardless_of_order_and_threads() {
    let s = set();
    let first = run(&s.inputs, 1);
    assert_eq!(first, run(&s.inputs, 1));
    let mut reversed = s.inputs.clone();
    reversed.reverse();
    assert_eq!(first, run(&reversed, 3));
    assert_eq!(
        first,
        run(
            &[
                s.inputs[1].clone(),
                s.inputs[2].clone(),
                s.inputs[0].clone()
            ],
            2
        )
    );
}

#[test]
fn output_is_sorted_with_parents_first() {
    let s = set();
    let root = tempfile::tempdir().unwrap();
    let mut sink = TreeSink::new(root.path()); // asserts order and parents on every call
    let report = install_wheels(
        &s.inputs,
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap();
    let files = sink
        .events
        .iter()
        .filter(|e| matches!(e, Event::File(..)))
        .count() as u64;
    assert_eq!(report.files, files);
    assert_eq!(
        report.directories,
        sink.events
            .iter()
            .filter(|e| matches!(e, Event::Dir(..)))
            .count() as u64
    );
    // Identical files from two wheels are silent.
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    // Schemes: headers under the METADATA name, data under /usr/local, #!python fixed, launchers.
    let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
    assert_eq!(
        read("usr/local/include/python3.11/Beta_Pkg/beta.h"),
        "#pragma once\n"
    );
    assert_eq!(read("usr/local/share/alpha/x.json"), "{}");
    assert_eq!(
        read("usr/local/bin/alpha-run"),
        "#!/usr/bin/python3.11\nprint(1)\n"
    );
    assert!(read("usr/local/bin/gamma-cli").starts_with("#!/usr/bin/python3.11\n"));
    let mode = |p: &str| {
        sink.events.iter().find_map(|e| match e {
            Event::File(q, m, ..) if q == p => Some(*m),
            _ => None,
        })
    };
    assert_eq!(mode("usr/local/bin/gamma-cli"), Some(0o755));
    assert_eq!(
        mode("usr/local/lib/python3.11/dist-packages/tool.sh"),
        Some(0o755)
    );
    assert_eq!(
        mode("usr/local/lib/python3.11/dist-packages/gamma.py"),
        Some(0o644)
    );
    // RECORD of alpha lists scripts and data relative to the site directory.
    let record = read("usr/local/lib/python3.11/dist-packages/alpha-1.0.dist-info/RECORD");
    assert!(
        record.contains("../../../bin/alpha-run,sha256="),
        "{record}"
    );
    assert!(
        record.contains("../../../bin/alpha-cli,sha256="),
        "{record}"
    );
    assert!(
        record.contains("../../../share/alpha/x.json,sha256="),
        "{record}"
    );
    assert!(
        record.contains("alpha-1.0.dist-info/INSTALLER,sha256="),
        "{record}"
    );
    assert!(
        record.contains("alpha-1.0.dist-info/RECORD,,\n"),
        "{record}"
    );
    let beta = read("usr/local/lib/python3.11/dist-packages/Beta_Pkg-1.0.dist-info/RECORD");
    assert!(
        beta.contains("../../../include/python3.11/Beta_Pkg/beta.h,sha256="),
        "{beta}"
    );
    assert_eq!(
        read("usr/local/lib/python3.11/dist-packages/alpha-1.0.dist-info/INSTALLER"),
        "rbuild\n"
    );
}

fn conflicting() -> (tempfile::TempDir, Vec<WheelInput>) {
    let dir = tempfile::tempdir().unwrap();
    let a = wheel(
        dir.path(),
        "aaa",
        &[("common/conf.py", b"A = 1\n", 0o644)],
        &[],
    );
    let b = wheel(
        dir.path(),
        "bbb",
        &[("common/conf.py", b"B = 2\n", 0o644)],
        &[],
    );
    let inputs = vec![input(&b, "bbb", "1.0"), input(&a, "aaa", "1.0")];
    (dir, inputs)
}

#[test]
fn conflicting_files_warn_and_the_later_name_wins() {
    let (_dir, inputs) = conflicting();
    let root = tempfile::tempdir().unwrap();
    let mut sink = TreeSink::new(root.path());
    let report = install_wheels(
        &inputs,
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap();
    assert_eq!(
        report.warnings,
        [Warning::Conflict {
            path: "usr/local/lib/python3.11/dist-packages/common/conf.py".into(),
            winner: "bbb-1.0-py3-none-any.whl".into(),
            loser: "aaa-1.0-py3-none-any.whl".into(),
        }]
    );
    let msg = report.warnings[0].to_string();
    assert!(
        msg.contains("aaa-1.0-py3-none-any.whl") && msg.contains("bbb-1.0-py3-none-any.whl"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(
            root.path()
                .join("usr/local/lib/python3.11/dist-packages/common/conf.py")
        )
        .unwrap(),
        b"B = 2\n"
    );
}

#[test]
fn strict_mode_makes_conflicts_errors() {
    let (_dir, inputs) = conflicting();
    let mut sink = LogSink::default();
    let opts = InstallOptions {
        strict: true,
        ..InstallOptions::default()
    };
    let err = install_wheels(
        &inputs,
        &debian_target(),
        &BaseInfo::default(),
        &opts,
        &mut sink,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert!(err.to_string().contains("common/conf.py"));
    assert!(sink.events.is_empty());
}

#[test]
fn file_versus_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = wheel(dir.path(), "aaa", &[("thing", b"file\n", 0o644)], &[]);
    let b = wheel(dir.path(), "bbb", &[("thing/inside.py", b"", 0o644)], &[]);
    let mut sink = LogSink::default();
    let err = install_wheels(
        &[input(&a, "aaa", "1.0"), input(&b, "bbb", "1.0")],
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap_err();
    assert!(matches!(err, Error::PathConflict { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("aaa-1.0") && msg.contains("bbb-1.0"), "{msg}");
    assert!(sink.events.is_empty());
}

#[test]
fn duplicate_distribution_is_an_error() {
    let s = set();
    let mut inputs = s.inputs.clone();
    inputs.push(WheelInput {
        expected_name: "ALPHA".into(),
        ..s.inputs[0].clone()
    });
    let err = install_wheels(
        &inputs,
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut LogSink::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::DuplicateDistribution { .. }),
        "{err:?}"
    );
}

#[test]
fn split_purelib_and_platlib() {
    // Root-Is-Purelib: false puts the root (and the dist-info) in platlib; RECORD paths to
    // purelib files become relative.
    let dir = tempfile::tempdir().unwrap();
    let mut m = dist_info("ext", "1.0", false);
    m.push(member("ext/_native.so", b"\x7fELF"));
    m.push(member("ext-1.0.data/purelib/ext_pure.py", b"x = 1\n"));
    let w = build_wheel(
        dir.path(),
        "ext-1.0-cp311-cp311-linux_x86_64.whl",
        "ext-1.0.dist-info",
        &m,
    );
    let mut target = debian_target();
    target.platlib = "/usr/local/lib64/python3.11/site-packages".into();
    target.purelib = "/usr/local/lib/python3.11/site-packages".into();
    let root = tempfile::tempdir().unwrap();
    let mut sink = TreeSink::new(root.path());
    install_wheels(
        &[input(&w, "ext", "1.0")],
        &target,
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap();
    let record = std::fs::read_to_string(
        root.path()
            .join("usr/local/lib64/python3.11/site-packages/ext-1.0.dist-info/RECORD"),
    )
    .unwrap();
    assert!(record.contains("ext/_native.so,sha256="), "{record}");
    assert!(
        record.contains("../../../lib/python3.11/site-packages/ext_pure.py,sha256="),
        "{record}"
    );
    assert!(
        root.path()
            .join("usr/local/lib/python3.11/site-packages/ext_pure.py")
            .exists()
    );
}
