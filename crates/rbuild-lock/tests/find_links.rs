//! A hash-pinned lock whose files do not fit the target (or that holds only an sdist) accepts a
//! wheel of exactly that name and version from the user's `--find-links` directory; a locked file
//! that fits always wins. The same in every format.

mod common;

use std::path::{Path, PathBuf};

use common::{env311, tags311, write};
use rbuild_lock::{
    ChosenWheel, FileKind, LockedFile, LockedPackage, ResolveOptions, WheelOrigin, choose_wheel,
    read_lock,
};
use rbuild_oci::Digest;

/// The sdist's hash in every lock (the bytes do not matter: nothing is downloaded here).
const SDIST: &str = "0a30ef8f5322a4173720ae6712dc9a5e58f5a19868f3f167b4b5778db066c2b5";
/// A Windows-only wheel's hash.
const WIN: &str = "1a30ef8f5322a4173720ae6712dc9a5e58f5a19868f3f167b4b5778db066c2b5";

/// Builds a tiny wheel (a zip with METADATA, WHEEL and RECORD) in `dir`; returns its path.
fn build_wheel(dir: &Path, name: &str, version: &str) -> PathBuf {
    let filename = format!("{name}-{version}-py3-none-any.whl");
    let path = dir.join(&filename);
    let dist = format!("{name}-{version}.dist-info");
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, zipfile\n\
             p, d, n, v = sys.argv[1:]\n\
             with zipfile.ZipFile(p, 'w') as z:\n\
             \x20   z.writestr(f'{n}/__init__.py', '')\n\
             \x20   z.writestr(f'{d}/METADATA', f'Metadata-Version: 2.1\\nName: {n}\\nVersion: {v}\\n')\n\
             \x20   z.writestr(f'{d}/WHEEL', 'Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')\n\
             \x20   z.writestr(f'{d}/RECORD', '')\n",
        )
        .arg(&path)
        .arg(&dist)
        .arg(name)
        .arg(version)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        // No python3: any bytes make a file whose name is a wheel's.
        std::fs::write(&path, format!("{name} {version}")).unwrap();
    }
    path
}

/// What the caller gives from a find-links directory: every file there, hashed.
fn find_links_files(dir: &Path) -> Vec<LockedFile> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".whl"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let path = dir.join(&n);
            let (sha, size) = Digest::of_reader(std::fs::File::open(&path).unwrap()).unwrap();
            LockedFile {
                filename: n,
                kind: FileKind::Wheel,
                url: None,
                path: Some(path),
                sha256: Some(sha),
                size: Some(size),
            }
        })
        .collect()
}

/// The locks, each pinning `tiny 1.0` (sdist + a Windows wheel) and `fits 2.0` (a py3 wheel).
fn locks(dir: &Path) -> Vec<PathBuf> {
    let uv = format!(
        r#"version = 1
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [{{ name = "tiny" }}, {{ name = "fits" }}]

[[package]]
name = "tiny"
version = "1.0"
source = {{ registry = "https://pypi.org/simple" }}
sdist = {{ url = "https://files.example/tiny-1.0.tar.gz", hash = "sha256:{SDIST}" }}
wheels = [{{ url = "https://files.example/tiny-1.0-cp311-cp311-win_amd64.whl", hash = "sha256:{WIN}" }}]

[[package]]
name = "fits"
version = "2.0"
source = {{ registry = "https://pypi.org/simple" }}
wheels = [{{ url = "https://files.example/fits-2.0-py3-none-any.whl", hash = "sha256:{WIN}" }}]
"#
    );
    let pylock = format!(
        r#"lock-version = "1.0"
created-by = "test"

[[packages]]
name = "tiny"
version = "1.0"
sdist = {{ url = "https://files.example/tiny-1.0.tar.gz", hashes = {{ sha256 = "{SDIST}" }} }}
wheels = [{{ url = "https://files.example/tiny-1.0-cp311-cp311-win_amd64.whl", hashes = {{ sha256 = "{WIN}" }} }}]

[[packages]]
name = "fits"
version = "2.0"
wheels = [{{ url = "https://files.example/fits-2.0-py3-none-any.whl", hashes = {{ sha256 = "{WIN}" }} }}]
"#
    );
    let poetry = format!(
        r#"[[package]]
name = "tiny"
version = "1.0"
groups = ["main"]
files = [
    {{ file = "tiny-1.0.tar.gz", hash = "sha256:{SDIST}" }},
    {{ file = "tiny-1.0-cp311-cp311-win_amd64.whl", hash = "sha256:{WIN}" }},
]

[[package]]
name = "fits"
version = "2.0"
groups = ["main"]
files = [{{ file = "fits-2.0-py3-none-any.whl", hash = "sha256:{WIN}" }}]

[metadata]
lock-version = "2.1"
python-versions = ">=3.11"
"#
    );
    let req = format!(
        "tiny==1.0 --hash=sha256:{SDIST} --hash=sha256:{WIN}\nfits==2.0 --hash=sha256:{WIN}\n"
    );
    vec![
        write(&dir.join("uv"), "uv.lock", &uv),
        write(&dir.join("pylock"), "pylock.toml", &pylock),
        write(&dir.join("poetry"), "poetry.lock", &poetry),
        write(&dir.join("req"), "requirements.txt", &req),
    ]
}

/// The index listing of a requirements-file package: the files the other locks name, plus the
/// find-links wheel as an index client lists it (its hash matches none of the lock's).
fn index_listing(p: &LockedPackage, fl: &[LockedFile]) -> Vec<LockedFile> {
    let d = |h: &str| Some(Digest::parse(&format!("sha256:{h}")).unwrap());
    let mut out = match p.name.as_str() {
        "tiny" => vec![
            LockedFile {
                filename: "tiny-1.0.tar.gz".into(),
                kind: FileKind::Sdist,
                url: Some("https://files.example/tiny-1.0.tar.gz".into()),
                path: None,
                sha256: d(SDIST),
                size: None,
            },
            LockedFile {
                filename: "tiny-1.0-cp311-cp311-win_amd64.whl".into(),
                kind: FileKind::Wheel,
                url: Some("https://files.example/tiny-1.0-cp311-cp311-win_amd64.whl".into()),
                path: None,
                sha256: d(WIN),
                size: None,
            },
        ],
        _ => vec![LockedFile {
            filename: "fits-2.0-py3-none-any.whl".into(),
            kind: FileKind::Wheel,
            url: Some("https://files.example/fits-2.0-py3-none-any.whl".into()),
            path: None,
            sha256: d(WIN),
            size: None,
        }],
    };
    out.extend(fl.iter().cloned());
    out
}

#[test]
fn find_links_wheels_fill_in_where_no_locked_file_fits() {
    let tmp = tempfile::tempdir().unwrap();
    let wheels = tmp.path().join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    let tiny = build_wheel(&wheels, "tiny", "1.0");
    build_wheel(&wheels, "tiny", "1.1"); // another version: never taken
    build_wheel(&wheels, "fits", "2.0"); // a locked wheel fits: never taken
    build_wheel(&wheels, "other", "1.0");
    let fl = find_links_files(&wheels);
    let tiny_sha = Digest::of_reader(std::fs::File::open(&tiny).unwrap())
        .unwrap()
        .0;

    for path in locks(tmp.path()) {
        let lock = read_lock(&path, &env311(), &ResolveOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let choose = |name: &str, offer: bool| -> Result<ChosenWheel, String> {
            let mut p = lock.get(name).unwrap().clone();
            if !p.files_listed {
                p = p.with_index_files(index_listing(&p, &fl));
            }
            if offer {
                p = p.with_find_links_files(fl.clone());
            }
            choose_wheel(&p, &tags311()).map_err(|e| e.to_string())
        };
        let what = path.display();
        // Without the directory: only an sdist and a Windows wheel.
        let e = choose("tiny", false).unwrap_err();
        assert!(e.contains("no wheel of tiny 1.0 fits"), "{what}: {e}");
        // With it: the user's wheel of exactly tiny 1.0.
        let w = choose("tiny", true).unwrap();
        assert_eq!(w.filename, "tiny-1.0-py3-none-any.whl", "{what}");
        assert_eq!(w.origin, WheelOrigin::FindLinks, "{what}");
        assert_eq!(w.path.as_deref(), Some(tiny.as_path()), "{what}");
        assert_eq!(w.sha256, Some(tiny_sha), "{what}");
        assert_eq!(w.index, None, "{what}");
        // A locked wheel that fits wins over the directory.
        let w = choose("fits", true).unwrap();
        assert_eq!(w.filename, "fits-2.0-py3-none-any.whl", "{what}");
        assert_ne!(w.origin, WheelOrigin::FindLinks, "{what}");
        assert_ne!(
            w.path,
            Some(wheels.join("fits-2.0-py3-none-any.whl")),
            "{what}"
        );
        let want = if lock.packages[0].files_listed {
            WheelOrigin::Lock
        } else {
            WheelOrigin::Index
        };
        assert_eq!(w.origin, want, "{what}");
    }
}

#[test]
fn sdist_only_and_wrong_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let uv = format!(
        r#"version = 1
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [{{ name = "tiny" }}]

[[package]]
name = "tiny"
version = "1.0"
source = {{ registry = "https://pypi.org/simple" }}
sdist = {{ url = "https://files.example/tiny-1.0.tar.gz", hash = "sha256:{SDIST}" }}
"#
    );
    let path = write(tmp.path(), "uv.lock", &uv);
    let lock = read_lock(&path, &env311(), &ResolveOptions::default()).unwrap();
    let pkg = lock.get("tiny").unwrap();
    let e = choose_wheel(pkg, &tags311()).unwrap_err().to_string();
    assert!(e.contains("only the source distribution"), "{e}");
    let wheels = tmp.path().join("wheels");
    std::fs::create_dir_all(&wheels).unwrap();
    build_wheel(&wheels, "tiny", "1.0.1");
    let offered = pkg.with_find_links_files(find_links_files(&wheels));
    assert!(offered.find_links_files.is_empty(), "1.0.1 is not 1.0");
    build_wheel(&wheels, "Tiny", "1.0");
    let w = choose_wheel(
        &pkg.with_find_links_files(find_links_files(&wheels)),
        &tags311(),
    )
    .unwrap();
    assert_eq!(
        (w.filename.as_str(), w.origin),
        ("Tiny-1.0-py3-none-any.whl", WheelOrigin::FindLinks)
    );
}
