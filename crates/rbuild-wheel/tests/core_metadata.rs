//! Core metadata (`Requires-Dist`, `Provides-Extra`) of wheels: from the install report and
//! from [`read_wheel_metadata`], on real PyPI wheels pinned by sha256 (compared with Python's
//! own `email` parser) and on synthetic ones.
//!
//! The PyPI wheels come from the shared cache of `tests/common/pypi.rs`; without PyPI (and an
//! empty cache) or without `python3` those tests print why and pass.

mod common;

use std::fs;
use std::process::Command;

use common::pypi::{Pin, fetch};
use common::*;
use rbuild_wheel::{
    BaseInfo, CoreMetadata, Error, InstallOptions, install_wheels, read_wheel_metadata,
};

const REDIS: Pin = Pin {
    name: "redis",
    version: "5.2.1",
    file: "redis-5.2.1-py3-none-any.whl",
    sha256: "ee7e1056b9aea0f04c6c2ed59452947f34c4940ee025f5dd83e6a6418b6989e4",
};

const REQUESTS: Pin = Pin {
    name: "requests",
    version: "2.32.3",
    file: "requests-2.32.3-py3-none-any.whl",
    sha256: "70761cfe03c773ceb22aa2f671b4757976145175cdfca038c02654d061d6dcc6",
};

/// Prints `Requires-Dist` and `Provides-Extra` as Python's email parser (compat32, the policy
/// importlib.metadata uses) reads them from the wheel's METADATA, one value per line, with the
/// folding line breaks removed.
const ORACLE_PY: &str = r#"
import sys, zipfile
from email.parser import HeaderParser
with zipfile.ZipFile(sys.argv[1]) as z:
    [name] = [n for n in z.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1]
    msg = HeaderParser().parsestr(z.read(name).decode("utf-8"))
for key in ("Name", "Version", "Requires-Python"):
    print(f"{key}: {(msg.get(key) or '').strip()}")
for key in ("Requires-Dist", "Provides-Extra"):
    for v in msg.get_all(key) or []:
        v = v.replace("\r\n", "").replace("\n", "").strip(" \t")
        print(f"{key}: {v}")
"#;

fn oracle(path: &std::path::Path) -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", ORACLE_PY])
        .arg(path)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "the oracle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

fn as_oracle_text(m: &CoreMetadata) -> String {
    let mut s = String::new();
    for (k, v) in [
        ("Name", &m.name),
        ("Version", &m.version),
        (
            "Requires-Python",
            &m.requires_python.clone().unwrap_or_default(),
        ),
    ] {
        s.push_str(&format!("{k}: {v}\n"));
    }
    for v in &m.requires_dist {
        s.push_str(&format!("Requires-Dist: {v}\n"));
    }
    for v in &m.provides_extra {
        s.push_str(&format!("Provides-Extra: {v}\n"));
    }
    s
}

#[test]
fn real_wheels_from_pypi() {
    let mut paths = Vec::new();
    for pin in [&REDIS, &REQUESTS] {
        match fetch(pin) {
            Ok(p) => paths.push(p),
            Err(why) => {
                eprintln!("skipping: {why}");
                return;
            }
        }
    }

    let redis = read_wheel_metadata(&paths[0], REDIS.file).unwrap();
    assert_eq!(redis.name, "redis");
    assert_eq!(redis.version, "5.2.1");
    assert_eq!(redis.requires_python.as_deref(), Some(">=3.8"));
    assert_eq!(
        redis.requires_dist,
        [
            "async-timeout>=4.0.3; python_full_version < \"3.11.3\"",
            "hiredis>=3.0.0; extra == \"hiredis\"",
            "cryptography>=36.0.1; extra == \"ocsp\"",
            "pyopenssl==23.2.1; extra == \"ocsp\"",
            "requests>=2.31.0; extra == \"ocsp\"",
        ]
    );
    assert_eq!(redis.provides_extra, ["hiredis", "ocsp"]);

    let requests = read_wheel_metadata(&paths[1], REQUESTS.file).unwrap();
    assert_eq!(
        requests.requires_dist,
        [
            "charset-normalizer <4,>=2",
            "idna <4,>=2.5",
            "urllib3 <3,>=1.21.1",
            "certifi >=2017.4.17",
            "PySocks !=1.5.7,>=1.5.6 ; extra == 'socks'",
            "chardet <6,>=3.0.2 ; extra == 'use_chardet_on_py3'",
        ]
    );
    assert_eq!(
        requests.provides_extra,
        ["security", "socks", "use_chardet_on_py3"]
    );

    // Python's own parser reads the same values.
    for (path, ours) in paths.iter().zip([&redis, &requests]) {
        match oracle(path) {
            Some(theirs) => assert_eq!(as_oracle_text(ours), theirs, "{}", path.display()),
            None => eprintln!("no python3: the comparison with the email parser is skipped"),
        }
    }

    // The install report carries the same metadata, for every wheel it installs.
    let dir = tempfile::tempdir().unwrap();
    let inputs = [
        input(&paths[0], REDIS.name, REDIS.version),
        input(&paths[1], REQUESTS.name, REQUESTS.version),
    ];
    let mut sink = TreeSink::new(dir.path());
    let report = install_wheels(
        &inputs,
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut sink,
    )
    .unwrap();
    let got: Vec<&CoreMetadata> = report
        .distributions
        .iter()
        .map(|d| &d.core_metadata)
        .collect();
    assert_eq!(got, [&redis, &requests]);
}

/// A wheel whose METADATA folds a requirement over two lines, spells header names in other
/// cases and has a description body mentioning `Requires-Dist:`.
fn tricky_members() -> Vec<Member> {
    let mut m = dist_info("pkg", "1.0", true);
    m[0] = member(
        "pkg-1.0.dist-info/METADATA",
        b"Metadata-Version: 2.1\r\nName: pkg\r\nVersion: 1.0\r\n\
          requires-dist: a>=1\r\nRequires-Dist: b[x];\r\n  extra == \"fast\"\r\n\
          PROVIDES-EXTRA: fast\r\n\r\nRequires-Dist: not-a-requirement\r\n",
    );
    m.push(member("pkg/__init__.py", b"x = 1\n"));
    m
}

#[test]
fn folded_headers_from_report_and_file_agree() {
    let dir = tempfile::tempdir().unwrap();
    let w = build_wheel(
        dir.path(),
        "pkg-1.0-py3-none-any.whl",
        "pkg-1.0.dist-info",
        &tricky_members(),
    );
    let m = read_wheel_metadata(&w, "pkg-1.0-py3-none-any.whl").unwrap();
    assert_eq!(m.requires_dist, ["a>=1", "b[x];  extra == \"fast\""]);
    assert_eq!(m.provides_extra, ["fast"]);
    let report = install_wheels(
        &[input(&w, "pkg", "1.0")],
        &debian_target(),
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut LogSink::default(),
    )
    .unwrap();
    assert_eq!(report.distributions[0].core_metadata, m);
    if let Some(theirs) = oracle(&w) {
        assert_eq!(as_oracle_text(&m), theirs);
    }
}

#[test]
fn only_the_metadata_member_is_read() {
    // Another (stored, so findable) member's bytes are damaged after the zip was written:
    // reading it would fail its CRC; reading METADATA does not touch it.
    let dir = tempfile::tempdir().unwrap();
    let marker = b"UNIQUE-PAYLOAD-0123456789-UNIQUE-PAYLOAD";
    let path = dir.path().join("stored-1.0-py3-none-any.whl");
    {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(fs::File::create(&path).unwrap());
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("stored-1.0.dist-info/METADATA", stored)
            .unwrap();
        zip.write_all(b"Name: stored\nVersion: 1.0\nRequires-Dist: six\n")
            .unwrap();
        zip.start_file("stored/data.bin", stored).unwrap();
        zip.write_all(marker).unwrap();
        zip.finish().unwrap();
    }
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .unwrap();
    bytes[at..at + marker.len()].fill(b'X');
    fs::write(&path, &bytes).unwrap();
    let m = read_wheel_metadata(&path, "stored-1.0-py3-none-any.whl").unwrap();
    assert_eq!(m.requires_dist, ["six"]);
    // The damage is real: reading the other member fails.
    let mut z = zip::ZipArchive::new(fs::File::open(&path).unwrap()).unwrap();
    let mut f = z.by_name("stored/data.bin").unwrap();
    assert!(std::io::Read::read_to_end(&mut f, &mut Vec::new()).is_err());
}

#[test]
fn errors_name_the_wheel() {
    let dir = tempfile::tempdir().unwrap();
    let missing =
        read_wheel_metadata(&dir.path().join("nope.whl"), "pkg-1.0-py3-none-any.whl").unwrap_err();
    assert!(matches!(missing, Error::Io { .. }), "{missing}");
    assert!(missing.to_string().contains("pkg-1.0-py3-none-any.whl"));

    let no_meta = build_wheel(
        dir.path(),
        "pkg-1.0-py3-none-any.whl",
        "pkg-1.0.dist-info",
        &[member("pkg/__init__.py", b"")],
    );
    let e = read_wheel_metadata(&no_meta, "pkg-1.0-py3-none-any.whl").unwrap_err();
    assert!(e.to_string().contains("pkg-1.0-py3-none-any.whl"), "{e}");
    assert!(e.to_string().contains("METADATA"), "{e}");

    let mut members = dist_info("pkg", "1.0", true);
    members[0] = member("pkg-1.0.dist-info/METADATA", b"Name: pkg\n");
    let no_version = build_wheel(
        dir.path(),
        "v-1.0-py3-none-any.whl",
        "pkg-1.0.dist-info",
        &members,
    );
    let e = read_wheel_metadata(&no_version, "pkg-1.0-py3-none-any.whl").unwrap_err();
    assert!(matches!(e, Error::InvalidMetadata { .. }), "{e}");
    assert!(e.to_string().contains("Version"), "{e}");

    let e = read_wheel_metadata(&no_meta, "not-a-wheel-name.zip").unwrap_err();
    assert!(matches!(e, Error::InvalidWheel { .. }), "{e}");
}
