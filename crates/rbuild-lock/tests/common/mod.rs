//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rbuild_lock::{Lock, ResolveOptions, read_lock};
use rbuild_python::markers::MarkerEnv;
use rbuild_python::tags::{TagTarget, Tags};
use rbuild_python::target::{Libc, MajorMinor};

/// `tests/data/REL`.
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// CPython 3.11.2 on glibc 2.36 x86_64 (Debian bookworm's python3).
pub fn env311() -> MarkerEnv {
    MarkerEnv::cpython_linux(MajorMinor::new(3, 11), Some("3.11.2"), "x86_64")
}

/// The tags of [`env311`].
pub fn tags311() -> Tags {
    Tags::for_target(&TagTarget::new(
        MajorMinor::new(3, 11),
        Libc::glibc(2, 36),
        "x86_64",
    ))
}

/// Reads `tests/data/REL` for [`env311`].
pub fn read(rel: &str, options: &ResolveOptions) -> Lock {
    read_lock(&data(rel), &env311(), options).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Options with these extras and groups.
pub fn opts(extras: &[&str], groups: &[&str]) -> ResolveOptions {
    ResolveOptions {
        extras: extras.iter().map(|s| s.to_string()).collect(),
        groups: groups.iter().map(|s| s.to_string()).collect(),
        require_hashes: false,
    }
}

/// The (name, version) pins of a lock, sorted.
pub fn pins(lock: &Lock) -> Vec<(String, String)> {
    lock.packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect()
}

/// Writes `text` to `DIR/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}
