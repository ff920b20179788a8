//! Hostile and broken wheels are rejected in the plan phase with a message naming the wheel and
//! the member, and the sink receives nothing at all (not even from other, valid wheels).

mod common;

use std::io::Write;

use common::*;
use rbuild_wheel::{BaseInfo, Error, InstallOptions, install_wheels};

const WHEEL: &str = "pkg-1.0-py3-none-any.whl";

fn good_members() -> Vec<Member> {
    let mut m = dist_info("pkg", "1.0", true);
    m.push(member("pkg/__init__.py", b"print('hi')\n"));
    m
}

/// Installs `pkg` (built from `members`) together with a valid `good` wheel; returns the error
/// and asserts that the sink saw nothing.
fn reject(members: Vec<Member>) -> (Error, String) {
    let dir = tempfile::tempdir().unwrap();
    let bad = build_wheel(dir.path(), WHEEL, "pkg-1.0.dist-info", &members);
    let mut good = dist_info("good", "2.0", true);
    good.push(member("good.py", b"x = 1\n"));
    let good = build_wheel(
        dir.path(),
        "good-2.0-py3-none-any.whl",
        "good-2.0.dist-info",
        &good,
    );
    let mut sink = LogSink::default();
    let err = install_wheels(
        &[input(&good, "good", "2.0"), input(&bad, "pkg", "1.0")],
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut sink,
    )
    .expect_err("the wheel must be rejected");
    assert!(
        sink.events.is_empty(),
        "the sink received {:?}",
        sink.events
    );
    let msg = err.to_string();
    eprintln!("rejected: {msg}");
    assert!(
        msg.contains(WHEEL),
        "message does not name the wheel: {msg}"
    );
    (err, msg)
}

#[test]
fn good_wheels_install() {
    // The baseline the other tests mutate is itself accepted.
    let dir = tempfile::tempdir().unwrap();
    let w = build_wheel(dir.path(), WHEEL, "pkg-1.0.dist-info", &good_members());
    let mut sink = LogSink::default();
    let report = install_wheels(
        &[input(&w, "pkg", "1.0")],
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap();
    assert_eq!(report.files, 5); // __init__.py, METADATA, WHEEL, INSTALLER, RECORD
    assert!(sink.events.iter().any(|e| matches!(e, Event::File(p, ..) if p == "usr/local/lib/python3.11/dist-packages/pkg/__init__.py")));
}

#[test]
fn absolute_member() {
    let mut m = good_members();
    m.push(member("/etc/cron.d/evil", b"* * * * * root sh\n"));
    let (err, msg) = reject(m);
    assert!(
        matches!(err, Error::UnsafeMember { ref member, .. } if member == "/etc/cron.d/evil"),
        "{err:?}"
    );
    assert!(msg.contains("absolute"), "{msg}");
}

#[test]
fn dotdot_member() {
    let mut m = good_members();
    m.push(member("../../../../usr/bin/python3", b"evil"));
    let (err, msg) = reject(m);
    assert!(
        matches!(err, Error::UnsafeMember { ref member, .. } if member == "../../../../usr/bin/python3"),
        "{err:?}"
    );
    assert!(msg.contains(".."), "{msg}");
}

#[test]
fn data_dir_escape() {
    let mut m = good_members();
    m.push(member(
        "pkg-1.0.data/data/../../../etc/passwd",
        b"root::0:0::/:/bin/sh\n",
    ));
    let (err, _) = reject(m);
    assert!(
        matches!(err, Error::UnsafeMember { ref member, .. } if member == "pkg-1.0.data/data/../../../etc/passwd"),
        "{err:?}"
    );
}

#[test]
fn data_dir_unknown_scheme() {
    let mut m = good_members();
    m.push(member("pkg-1.0.data/etc/passwd", b"x"));
    let (err, msg) = reject(m);
    assert!(matches!(err, Error::InvalidWheel { .. }), "{err:?}");
    assert!(msg.contains("pkg-1.0.data/etc/passwd"), "{msg}");
}

#[test]
fn foreign_data_dir() {
    let mut m = good_members();
    m.push(member("other-9.data/scripts/x", b"#!/bin/sh\n"));
    let (_, msg) = reject(m);
    assert!(msg.contains("other-9.data"), "{msg}");
}

#[test]
fn backslash_and_whiteout_names() {
    let mut m = good_members();
    m.push(member("pkg\\..\\..\\evil.py", b"x"));
    let (err, msg) = reject(m);
    assert!(
        matches!(err, Error::UnsafeMember { .. }) && msg.contains("backslash"),
        "{msg}"
    );

    // A `.wh.` file would delete base files when the layer is applied.
    let mut m = good_members();
    m.push(member("pkg-1.0.data/data/bin/.wh.python3", b""));
    let (err, msg) = reject(m);
    assert!(
        matches!(err, Error::UnsafeMember { .. }) && msg.contains(".wh."),
        "{msg}"
    );
}

#[test]
fn entry_point_escapes_scripts_dir() {
    for name in ["../x", "a/b", "..", ".wh.python3"] {
        let mut m = good_members();
        m.push(member(
            "pkg-1.0.dist-info/entry_points.txt",
            format!("[console_scripts]\n{name} = pkg:main\n").as_bytes(),
        ));
        let (err, msg) = reject(m);
        assert!(matches!(err, Error::UnsafeMember { .. }), "{name}: {err:?}");
        assert!(msg.contains(&format!("entry point {name}")), "{msg}");
    }
}

#[test]
fn record_hash_mismatch() {
    let mut m = good_members();
    m[2].record_hash = Some(record_hash(b"something else"));
    let (err, msg) = reject(m);
    assert!(
        matches!(err, Error::RecordMismatch { ref member, .. } if member == "pkg/__init__.py"),
        "{err:?}"
    );
    assert!(msg.contains("sha256 differs"), "{msg}");
}

#[test]
fn record_size_mismatch_and_missing_hash() {
    let dir = tempfile::tempdir().unwrap();
    // Hand-written RECORD: right hash, wrong size.
    let body = b"print('hi')\n";
    let path = dir.path().join(WHEEL);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    for m in dist_info("pkg", "1.0", true) {
        zip.start_file(m.name.as_str(), opts).unwrap();
        zip.write_all(&m.data).unwrap();
    }
    zip.start_file("pkg/__init__.py", opts).unwrap();
    zip.write_all(body).unwrap();
    zip.start_file("pkg/empty.py", opts).unwrap();
    let mut record = String::new();
    for m in dist_info("pkg", "1.0", true) {
        record.push_str(&format!(
            "{},{},{}\n",
            m.name,
            record_hash(&m.data),
            m.data.len()
        ));
    }
    record.push_str(&format!(
        "pkg/__init__.py,{},999\npkg/empty.py,,\npkg-1.0.dist-info/RECORD,,\n",
        record_hash(body)
    ));
    zip.start_file("pkg-1.0.dist-info/RECORD", opts).unwrap();
    zip.write_all(record.as_bytes()).unwrap();
    zip.finish().unwrap();
    let mut sink = LogSink::default();
    let err = install_wheels(
        &[input(&path, "pkg", "1.0")],
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap_err();
    assert!(sink.events.is_empty());
    let msg = err.to_string();
    // Members are checked in zip order: __init__.py first.
    assert!(
        matches!(err, Error::RecordMismatch { ref member, .. } if member == "pkg/__init__.py"),
        "{msg}"
    );
    assert!(msg.contains("RECORD says 999"), "{msg}");
}

#[test]
fn member_missing_from_record() {
    let mut m = good_members();
    let mut extra = member("pkg/backdoor.py", b"import os\n");
    extra.in_record = false;
    m.push(extra);
    let (err, msg) = reject(m);
    assert!(
        matches!(err, Error::NotInRecord { ref member, .. } if member == "pkg/backdoor.py"),
        "{err:?}"
    );
    assert!(msg.contains("not listed in its RECORD"), "{msg}");
}

#[test]
fn dist_info_name_mismatch() {
    let mut m = dist_info("other", "1.0", true);
    m.push(member("pkg/__init__.py", b""));
    let dir = tempfile::tempdir().unwrap();
    let w = build_wheel(dir.path(), WHEEL, "other-1.0.dist-info", &m);
    let mut sink = LogSink::default();
    let err = install_wheels(
        &[input(&w, "pkg", "1.0")],
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap_err();
    assert!(sink.events.is_empty());
    let msg = err.to_string();
    assert!(matches!(err, Error::InvalidWheel { .. }), "{err:?}");
    assert!(
        msg.contains("other-1.0.dist-info") && msg.contains(WHEEL),
        "{msg}"
    );
}

#[test]
fn dist_info_version_mismatch() {
    let mut m = dist_info("pkg", "1.1", true);
    m.push(member("pkg/__init__.py", b""));
    let (_, msg) = reject_raw(m, "pkg-1.1.dist-info");
    assert!(msg.contains("pkg-1.1.dist-info"), "{msg}");
}

#[test]
fn metadata_name_mismatch() {
    let mut m = dist_info("pkg", "1.0", true);
    m[0].data = b"Metadata-Version: 2.1\nName: notpkg\nVersion: 1.0\n".to_vec();
    let (err, msg) = reject(m);
    assert!(
        matches!(err, Error::InvalidMetadata { ref file, .. } if file == "METADATA"),
        "{err:?}"
    );
    assert!(msg.contains("notpkg"), "{msg}");
}

#[test]
fn unexpected_version_from_lockfile() {
    let dir = tempfile::tempdir().unwrap();
    let w = build_wheel(dir.path(), WHEEL, "pkg-1.0.dist-info", &good_members());
    let mut sink = LogSink::default();
    let err = install_wheels(
        &[input(&w, "pkg", "2.0")],
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::UnexpectedDistribution { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("pkg 2.0"), "{err}");
    assert!(sink.events.is_empty());
}

#[test]
fn two_outputs_on_one_path() {
    // A root file and a .data/purelib file landing on the same path (installer fails too).
    let mut m = good_members();
    m.push(member("pkg-1.0.data/purelib/pkg/__init__.py", b"other"));
    let (err, msg) = reject(m);
    assert!(matches!(err, Error::InvalidWheel { .. }), "{err:?}");
    assert!(msg.contains("pkg/__init__.py"), "{msg}");
}

#[test]
fn unsupported_wheel_version() {
    let mut m = good_members();
    m[1].data = b"Wheel-Version: 2.0\nRoot-Is-Purelib: true\n".to_vec();
    let (err, _) = reject(m);
    assert!(
        matches!(err, Error::InvalidMetadata { ref file, .. } if file == "WHEEL"),
        "{err:?}"
    );
}

#[test]
fn not_a_zip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(WHEEL);
    std::fs::write(&p, b"this is not a zip file").unwrap();
    let mut sink = LogSink::default();
    let err = install_wheels(
        &[input(&p, "pkg", "1.0")],
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Zip { .. }), "{err:?}");
    assert!(sink.events.is_empty());
}

#[test]
fn corrupted_compressed_data() {
    // Flip bytes inside a deflated member: the zip layer (CRC) or RECORD must catch it.
    let dir = tempfile::tempdir().unwrap();
    let mut m = good_members();
    m.push(member(
        "pkg/big.py",
        &b"x = 'some compressible text'\n".repeat(2000),
    ));
    let w = build_wheel(dir.path(), WHEEL, "pkg-1.0.dist-info", &m);
    let mut bytes = std::fs::read(&w).unwrap();
    let needle = b"pkg/big.py";
    let at = bytes
        .windows(needle.len())
        .position(|x| x == needle)
        .unwrap()
        + needle.len()
        + 40;
    bytes[at] ^= 0x55;
    bytes[at + 1] ^= 0x55;
    std::fs::write(&w, &bytes).unwrap();
    let mut sink = LogSink::default();
    let err = install_wheels(
        &[input(&w, "pkg", "1.0")],
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Zip { member: Some(m), .. } | Error::RecordMismatch { member: m, .. } if m == "pkg/big.py"),
        "{err:?}"
    );
    assert!(sink.events.is_empty());
}

#[test]
fn changed_between_plan_and_write() {
    // The second guard: the wheel's bytes change after planning (same structure, stored member).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(WHEEL);
    let body = b"SAFE_CONTENT_MARKER = 1\n".repeat(100);
    let write = |body: &[u8]| {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let mut record = String::new();
        for m in dist_info("pkg", "1.0", true) {
            zip.start_file(m.name.as_str(), opts).unwrap();
            zip.write_all(&m.data).unwrap();
            record.push_str(&format!(
                "{},{},{}\n",
                m.name,
                record_hash(&m.data),
                m.data.len()
            ));
        }
        zip.start_file("pkg/__init__.py", opts).unwrap();
        zip.write_all(body).unwrap();
        record.push_str(&format!(
            "pkg/__init__.py,{},{}\npkg-1.0.dist-info/RECORD,,\n",
            record_hash(body),
            body.len()
        ));
        zip.start_file("pkg-1.0.dist-info/RECORD", opts).unwrap();
        zip.write_all(record.as_bytes()).unwrap();
        zip.finish().unwrap();
    };
    write(&body);
    let plan = rbuild_wheel::plan(
        &[input(&path, "pkg", "1.0")],
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
    )
    .unwrap();
    // Overwrite the member's bytes in place (the plan holds the file open).
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(4).rposition(|x| x == b"SAFE").unwrap();
    bytes[at..at + 4].copy_from_slice(b"EVIL");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();

    let root = tempfile::tempdir().unwrap();
    let mut sink = TreeSink::new(root.path());
    let err = plan.write(&mut sink).unwrap_err();
    assert!(
        matches!(&err, Error::ChangedDuringInstall { member, .. } | Error::Zip { member: Some(member), .. } if member == "pkg/__init__.py"),
        "{err:?}"
    );
    // The tampered file was never completed in the sink.
    assert!(
        !sink
            .events
            .iter()
            .any(|e| matches!(e, Event::File(p, ..) if p.ends_with("pkg/__init__.py")))
    );
    let written = std::fs::read(
        root.path()
            .join("usr/local/lib/python3.11/dist-packages/pkg/__init__.py"),
    )
    .unwrap_or_default();
    assert!(
        !written.windows(4).any(|x| x == b"EVIL"),
        "tampered bytes reached the layer"
    );
}

fn reject_raw(members: Vec<Member>, record_dir: &str) -> (Error, String) {
    let dir = tempfile::tempdir().unwrap();
    let w = build_wheel(dir.path(), WHEEL, record_dir, &members);
    let mut sink = LogSink::default();
    let err = install_wheels(
        &[input(&w, "pkg", "1.0")],
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap_err();
    assert!(sink.events.is_empty());
    let msg = err.to_string();
    assert!(msg.contains(WHEEL), "{msg}");
    (err, msg)
}

#[test]
fn file_name_version_must_be_pep440() {
    // The file-name parser is rbuild-python's (the one the lock reader and index client use); it
    // refuses a version that is not PEP 440, where this crate's former lenient parser let
    // `notaversion` through as long as the lockfile spelled it the same way.
    let dir = tempfile::tempdir().unwrap();
    let name = "pkg-notaversion-py3-none-any.whl";
    let mut m = dist_info("pkg", "notaversion", true);
    m.push(member("pkg/__init__.py", b""));
    let w = build_wheel(dir.path(), name, "pkg-notaversion.dist-info", &m);
    let mut sink = LogSink::default();
    let err = install_wheels(
        &[input(&w, "pkg", "notaversion")],
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidWheel { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(name) && msg.contains("PEP 440"),
        "message must name the wheel and the rule: {msg}"
    );
    assert!(sink.events.is_empty());
}
