//! The tag lists must equal what `packaging.tags` computes for the same target, in the same order.
//!
//! The oracle is `tests/oracle/sys_tags.py`, run with the real `packaging` library with its detection
//! forced to the target:
//!
//! - Debian's `python3-packaging` (23.0 on bookworm) at `/usr/bin/python3` — always run; it ranks
//!   `linux_ARCH` last, so it is compared with [`NativeLinuxTag::Last`];
//! - `packaging` 26.3 (what pip 26.3 vendors) in a venv under the temp dir, installed from PyPI on first
//!   use — it ranks `linux_ARCH` first, rbuild's default. Skipped with a note when PyPI is unreachable.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::packaging_26_3;
use rbuild_python::tags::{NativeLinuxTag, TagTarget, Tags};
use rbuild_python::target::{Libc, LibcFamily, MajorMinor};

struct Case {
    python: (u32, u32),
    libc: Libc,
    arch: &'static str,
}

/// The four targets the acceptance criteria name, then more CPU/libc combinations.
const CASES: &[Case] = &[
    Case {
        python: (3, 12),
        libc: Libc::glibc(2, 36),
        arch: "x86_64",
    },
    Case {
        python: (3, 11),
        libc: Libc::glibc(2, 36),
        arch: "aarch64",
    },
    Case {
        python: (3, 12),
        libc: Libc::musl(1, 2),
        arch: "x86_64",
    },
    Case {
        python: (3, 13),
        libc: Libc::glibc(2, 28),
        arch: "x86_64",
    },
    Case {
        python: (3, 10),
        libc: Libc::glibc(2, 17),
        arch: "i686",
    },
    Case {
        python: (3, 12),
        libc: Libc::glibc(2, 31),
        arch: "armv7l",
    },
    Case {
        python: (3, 9),
        libc: Libc::glibc(2, 35),
        arch: "ppc64le",
    },
    Case {
        python: (3, 11),
        libc: Libc::glibc(2, 16),
        arch: "s390x",
    },
    Case {
        python: (3, 14),
        libc: Libc::musl(1, 1),
        arch: "aarch64",
    },
    Case {
        python: (3, 8),
        libc: Libc::glibc(2, 4),
        arch: "x86_64",
    },
];

fn oracle_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/sys_tags.py")
}

/// Runs the oracle; returns packaging's version and one tag list per case.
fn run_oracle(python: &Path) -> (String, Vec<Vec<String>>) {
    let targets: Vec<serde_json::Value> = CASES
        .iter()
        .map(|c| {
            let fam = match c.libc.family {
                LibcFamily::Glibc => "glibc",
                LibcFamily::Musl => "musl",
            };
            serde_json::json!({
                "python": [c.python.0, c.python.1],
                "libc": [fam, c.libc.version.major, c.libc.version.minor],
                "arch": c.arch,
            })
        })
        .collect();
    let out = Command::new(python)
        .arg(oracle_script())
        .arg(serde_json::to_string(&targets).unwrap())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "oracle failed with {}: {}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let version = v["packaging"].as_str().unwrap().to_string();
    let lists = serde_json::from_value(v["targets"].clone()).unwrap();
    (version, lists)
}

fn ours(c: &Case, native: NativeLinuxTag) -> Vec<String> {
    let mut t = TagTarget::new(MajorMinor::new(c.python.0, c.python.1), c.libc, c.arch);
    t.native_linux = native;
    Tags::for_target(&t).to_strings()
}

/// Where `linux_ARCH` goes for a given packaging version (moved first in 26.3).
fn policy_of(packaging_version: &str) -> NativeLinuxTag {
    let mm = MajorMinor::parse_prefix(packaging_version).expect("packaging version");
    if mm >= MajorMinor::new(26, 3) {
        NativeLinuxTag::First
    } else {
        NativeLinuxTag::Last
    }
}

fn compare(python: &Path) -> String {
    let (version, lists) = run_oracle(python);
    let policy = policy_of(&version);
    assert_eq!(lists.len(), CASES.len());
    for (c, want) in CASES.iter().zip(&lists) {
        let got = ours(c, policy);
        if &got != want {
            let first_diff = got
                .iter()
                .zip(want)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(want.len()));
            panic!(
                "cp{}{} {} {}: tag order differs from packaging {version} at index {first_diff}: \
                 ours {:?} vs packaging {:?} (lengths {} vs {})",
                c.python.0,
                c.python.1,
                c.libc,
                c.arch,
                got.get(first_diff),
                want.get(first_diff),
                got.len(),
                want.len()
            );
        }
    }
    version
}

#[test]
fn equals_debian_packaging() {
    let python = Path::new("/usr/bin/python3");
    assert!(
        python.exists(),
        "/usr/bin/python3 is needed as the oracle (Debian packages python3 and python3-packaging)"
    );
    let version = compare(python);
    eprintln!(
        "tags equal packaging {version} (/usr/bin/python3) for {} targets",
        CASES.len()
    );
}

#[test]
fn equals_current_packaging() {
    let Some(py) = packaging_26_3() else {
        eprintln!("SKIPPED: the packaging 26.3 oracle is unavailable; only the Debian oracle ran");
        return;
    };
    let version = compare(&py);
    assert_eq!(policy_of(&version), NativeLinuxTag::default());
    eprintln!("tags equal packaging {version} for {} targets", CASES.len());
}

#[test]
fn the_oracle_detects_a_wrong_order() {
    // Guard against a vacuous comparison: a swapped pair must be noticed.
    let (_, lists) = run_oracle(Path::new("/usr/bin/python3"));
    let mut got = ours(&CASES[0], NativeLinuxTag::Last);
    assert_eq!(got, lists[0]);
    got.swap(1, 2);
    assert_ne!(got, lists[0]);
    assert!(
        lists[0].len() > 500,
        "cp312/glibc 2.36/x86_64 has {} tags",
        lists[0].len()
    );
}
