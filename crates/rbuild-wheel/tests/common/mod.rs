//! Shared test helpers: a sink that applies entries onto a directory (checking the ordering
//! contract), and a builder for synthetic wheels.
#![allow(dead_code)]

pub mod pypi;

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rbuild_wheel::EntrySink;
use sha2::{Digest, Sha256};

/// One sink call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Dir(String, u32),
    File(String, u32, u64, [u8; 32]),
    Symlink(String, String),
    Whiteout(String),
}

/// Applies entries onto `root` like a container runtime applies a layer (whiteouts delete),
/// and asserts the sink contract: strictly increasing tar paths, each parent emitted earlier.
pub struct TreeSink {
    pub root: PathBuf,
    pub events: Vec<Event>,
    last_key: Option<String>,
    dirs: BTreeSet<String>,
    seen: BTreeSet<String>,
}

impl TreeSink {
    pub fn new(root: &Path) -> TreeSink {
        fs::create_dir_all(root).unwrap();
        TreeSink {
            root: root.to_path_buf(),
            events: Vec::new(),
            last_key: None,
            dirs: BTreeSet::new(),
            seen: BTreeSet::new(),
        }
    }

    fn check(&mut self, key: String, path: &str) {
        assert!(
            !path.is_empty() && !path.starts_with('/') && !path.ends_with('/'),
            "bad path {path:?}"
        );
        if let Some(last) = &self.last_key {
            assert!(
                key.as_bytes() > last.as_bytes(),
                "entries out of order: {last:?} then {key:?}"
            );
        }
        let parent = path.rfind('/').map_or("", |i| &path[..i]);
        assert!(
            parent.is_empty() || self.dirs.contains(parent),
            "{path:?} emitted before its parent directory"
        );
        assert!(self.seen.insert(path.to_string()), "{path:?} emitted twice");
        self.last_key = Some(key);
    }

    fn host(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }
}

impl EntrySink for TreeSink {
    fn dir(&mut self, path: &str, mode: u32) -> std::io::Result<()> {
        self.check(path.to_string(), path);
        self.dirs.insert(path.to_string());
        let p = self.host(path);
        if p.symlink_metadata().map(|m| !m.is_dir()).unwrap_or(false) {
            fs::remove_file(&p)?;
        }
        fs::create_dir_all(&p)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
        self.events.push(Event::Dir(path.to_string(), mode));
        Ok(())
    }

    fn file(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        content: &mut dyn Read,
    ) -> std::io::Result<()> {
        self.check(path.to_string(), path);
        let p = self.host(path);
        if let Ok(m) = p.symlink_metadata() {
            if m.is_dir() {
                fs::remove_dir_all(&p)?;
            } else {
                fs::remove_file(&p)?;
            }
        }
        let mut f = fs::File::create(&p)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 8192];
        let mut total = 0u64;
        loop {
            let n = content.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            f.write_all(&buf[..n])?;
            total += n as u64;
        }
        assert_eq!(total, size, "{path}: size mismatch");
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
        self.events.push(Event::File(
            path.to_string(),
            mode,
            size,
            hasher.finalize().into(),
        ));
        Ok(())
    }

    fn symlink(&mut self, path: &str, target: &str) -> std::io::Result<()> {
        self.check(path.to_string(), path);
        self.events
            .push(Event::Symlink(path.to_string(), target.to_string()));
        std::os::unix::fs::symlink(target, self.host(path))
    }

    fn whiteout(&mut self, path: &str) -> std::io::Result<()> {
        let parent = path.rfind('/').map_or("", |i| &path[..i]);
        let name = &path[parent.len() + usize::from(!parent.is_empty())..];
        let key = if parent.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{parent}/.wh.{name}")
        };
        self.check(key, path);
        let p = self.host(path);
        if let Ok(m) = p.symlink_metadata() {
            if m.is_dir() {
                fs::remove_dir_all(&p)?;
            } else {
                fs::remove_file(&p)?;
            }
        }
        self.events.push(Event::Whiteout(path.to_string()));
        Ok(())
    }
}

/// A sink that only records calls (reading file contents).
#[derive(Default)]
pub struct LogSink {
    pub events: Vec<Event>,
}

impl EntrySink for LogSink {
    fn dir(&mut self, path: &str, mode: u32) -> std::io::Result<()> {
        self.events.push(Event::Dir(path.into(), mode));
        Ok(())
    }
    fn file(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        content: &mut dyn Read,
    ) -> std::io::Result<()> {
        let mut v = Vec::new();
        content.read_to_end(&mut v)?;
        assert_eq!(v.len() as u64, size);
        self.events.push(Event::File(
            path.into(),
            mode,
            size,
            Sha256::digest(&v).into(),
        ));
        Ok(())
    }
    fn symlink(&mut self, path: &str, target: &str) -> std::io::Result<()> {
        self.events.push(Event::Symlink(path.into(), target.into()));
        Ok(())
    }
    fn whiteout(&mut self, path: &str) -> std::io::Result<()> {
        self.events.push(Event::Whiteout(path.into()));
        Ok(())
    }
}

pub fn record_hash(data: &[u8]) -> String {
    format!(
        "sha256={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(data))
    )
}

/// A member of a synthetic wheel.
pub struct Member {
    pub name: String,
    pub data: Vec<u8>,
    pub mode: u32,
    /// Listed in RECORD (with its true hash unless `record_hash` overrides it).
    pub in_record: bool,
    pub record_hash: Option<String>,
}

pub fn member(name: &str, data: &[u8]) -> Member {
    Member {
        name: name.into(),
        data: data.to_vec(),
        mode: 0o644,
        in_record: true,
        record_hash: None,
    }
}

/// The usual metadata members of `name-version`.
pub fn dist_info(name: &str, version: &str, purelib: bool) -> Vec<Member> {
    let di = format!("{name}-{version}.dist-info");
    vec![
        member(&format!("{di}/METADATA"), format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").as_bytes()),
        member(
            &format!("{di}/WHEEL"),
            format!("Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: {purelib}\nTag: py3-none-any\n").as_bytes(),
        ),
    ]
}

/// Writes a wheel zip at `dir/filename` with a RECORD computed from `members` (RECORD is added
/// under `record_dir`, usually the dist-info directory).
pub fn build_wheel(dir: &Path, filename: &str, record_dir: &str, members: &[Member]) -> PathBuf {
    let path = dir.join(filename);
    let file = fs::File::create(&path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let mut record = String::new();
    for m in members {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(m.mode);
        zip.start_file(m.name.as_str(), opts).unwrap();
        zip.write_all(&m.data).unwrap();
        if m.in_record {
            let hash = m
                .record_hash
                .clone()
                .unwrap_or_else(|| record_hash(&m.data));
            record.push_str(&format!("{},{},{}\n", m.name, hash, m.data.len()));
        }
    }
    let record_name = format!("{record_dir}/RECORD");
    record.push_str(&format!("{record_name},,\n"));
    zip.start_file(record_name, zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(record.as_bytes()).unwrap();
    zip.finish().unwrap();
    path
}

pub fn debian_target() -> rbuild_wheel::InstallTarget {
    rbuild_wheel::InstallTarget {
        interpreter: "/usr/bin/python3.11".into(),
        purelib: "/usr/local/lib/python3.11/dist-packages".into(),
        platlib: "/usr/local/lib/python3.11/dist-packages".into(),
        scripts: "/usr/local/bin".into(),
        headers: "/usr/local/include/python3.11".into(),
        data: "/usr/local".into(),
        python_version: (3, 11),
    }
}

pub fn input(path: &Path, name: &str, version: &str) -> rbuild_wheel::WheelInput {
    rbuild_wheel::WheelInput {
        path: path.to_path_buf(),
        filename: path.file_name().unwrap().to_str().unwrap().to_string(),
        expected_name: name.into(),
        expected_version: version.into(),
    }
}

/// Every path below `root` (relative, sorted), directories with a trailing `/`.
pub fn walk(root: &Path) -> Vec<String> {
    fn rec(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            if p.symlink_metadata().unwrap().is_dir() {
                out.push(format!("{rel}/"));
                rec(root, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        rec(root, root, &mut out);
    }
    out.sort();
    out
}
