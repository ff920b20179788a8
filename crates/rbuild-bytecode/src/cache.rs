//! A content-addressed cache of normalised `.pyc` files, so that warm rebuilds compile nothing
//! that did not change.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::marshal::{CodeLayout, check_marshal};
use crate::{FORMAT_VERSION, InterpreterInfo};

/// A directory of compiled `.pyc` (and of "does not compile" verdicts), keyed by everything the
/// bytes depend on: the interpreter (cache tag, magic number, full `sys.version`), the image path
/// (it is the code's `co_filename`), the source's sha256 and [`FORMAT_VERSION`].
///
/// Entries are written atomically (temporary file + rename) and never modified, so concurrent
/// builds may share a directory. An entry that does not look like a `.pyc` of the expected
/// interpreter (wrong length, wrong magic or flags, a marshal stream that does not parse) is
/// ignored and recompiled.
#[derive(Debug, Clone)]
pub struct PycCache {
    dir: PathBuf,
}

/// What the cache holds for one key.
pub(crate) enum CacheHit {
    /// A valid compiled file at this path.
    Pyc(PathBuf),
    /// The source does not compile, for this reason.
    Skipped(String),
}

impl PycCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> PycCache {
        PycCache { dir: dir.into() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of one source: hex sha256 over length-prefixed fields.
    pub fn key(
        interpreter: &InterpreterInfo,
        image_path: &str,
        source_sha256: &[u8; 32],
    ) -> String {
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        };
        field(b"rbuild-pyc");
        field(&FORMAT_VERSION.to_be_bytes());
        field(interpreter.cache_tag.as_bytes());
        field(&interpreter.magic);
        field(interpreter.sys_version.as_bytes());
        field(image_path.as_bytes());
        field(source_sha256);
        hex::encode(h.finalize())
    }

    fn path(&self, key: &str, ext: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.{ext}"))
    }

    /// Whether `key` has an entry (a compiled file or a skip verdict), without reading it: a
    /// cheap guess of whether a compile will start an interpreter.
    pub fn contains(&self, key: &str) -> bool {
        self.path(key, "pyc").is_file() || self.path(key, "skip").is_file()
    }

    /// Looks up `key`; invalid entries are reported as misses.
    pub(crate) fn get(
        &self,
        key: &str,
        interpreter: &InterpreterInfo,
        layout: CodeLayout,
    ) -> Option<CacheHit> {
        let pyc = self.path(key, "pyc");
        if let Ok(data) = fs::read(&pyc)
            && valid_pyc(&data, interpreter, layout)
        {
            return Some(CacheHit::Pyc(pyc));
        }
        let skip = self.path(key, "skip");
        if let Ok(data) = fs::read(&skip)
            && let Some(reason) = data.strip_prefix(b"rbuild-skip\n")
            && let Ok(reason) = std::str::from_utf8(reason)
        {
            return Some(CacheHit::Skipped(reason.to_owned()));
        }
        None
    }

    /// Stores a compiled file; returns its path in the cache.
    pub(crate) fn put_pyc(&self, key: &str, data: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.path(key, "pyc");
        write_atomic(&path, data)?;
        Ok(path)
    }

    /// Records that the source of `key` does not compile.
    pub(crate) fn put_skip(&self, key: &str, reason: &str) -> std::io::Result<()> {
        let mut data = b"rbuild-skip\n".to_vec();
        data.extend_from_slice(reason.as_bytes());
        write_atomic(&self.path(key, "skip"), &data)
    }
}

/// Whether `data` is a normalised unchecked-hash `.pyc` of `interpreter`.
pub(crate) fn valid_pyc(data: &[u8], interpreter: &InterpreterInfo, layout: CodeLayout) -> bool {
    data.len() > 16
        && data[..4] == interpreter.magic
        && data[4..8] == [1, 0, 0, 0]
        && check_marshal(&data[16..], layout).is_ok()
}

/// Writes `data` to `path` through a temporary file in the same directory and a rename.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("entry");
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        unique_suffix()
    ));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        // No fsync: a torn entry after a crash fails validation and is recompiled.
        f.write_all(data)?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A per-process unique suffix for temporary names.
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}", N.fetch_add(1, Ordering::Relaxed))
}
