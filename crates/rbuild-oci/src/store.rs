//! The content store: blobs by digest under one root directory.
//!
//! ```text
//! $RBUILD_CACHE_DIR (default $XDG_CACHE_HOME/rbuild, else ~/.cache/rbuild)
//! ├── blobs/sha256/<hex>     verified content: layers, configs, manifests, wheels
//! ├── keys/<namespace>/<key> small records (e.g. layer cache key → layer descriptor)
//! └── tmp/                   in-flight writes; renamed into place only once verified
//! ```
//!
//! Every blob is written to a temp file in `tmp/` while its digest is computed, and renamed into
//! `blobs/` only when the digest matches, so a crash or a corrupt download never leaves a partial or
//! wrong entry. Renames are atomic and two processes writing the same digest write the same bytes, so
//! several rbuild processes can share one store.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::Digest;
use crate::digest::HashingWriter;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("content store: {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Content did not match the digest it was supposed to have. Nothing was stored.
    #[error(
        "content for {expected} does not match its digest (got {actual}, {size} bytes); it was not stored"
    )]
    DigestMismatch {
        /// The digest the content should have had.
        expected: Digest,
        /// The digest it had.
        actual: Digest,
        /// How many bytes were received.
        size: u64,
    },
    /// Content had another size than announced.
    #[error(
        "content for {digest} has {actual} bytes, but {expected} were announced; it was not stored"
    )]
    SizeMismatch {
        /// Which blob.
        digest: Digest,
        /// Announced size.
        expected: u64,
        /// Received size.
        actual: u64,
    },
    /// A key namespace or key with characters that could escape the store.
    #[error("invalid content-store key {0:?}")]
    InvalidKey(String),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A content-addressed store on disk. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Where the store lives by default: `$RBUILD_CACHE_DIR`, else `$XDG_CACHE_HOME/rbuild`, else
    /// `$HOME/.cache/rbuild`.
    pub fn default_root() -> PathBuf {
        if let Some(dir) = std::env::var_os("RBUILD_CACHE_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("rbuild");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        home.join(".cache").join("rbuild")
    }

    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for sub in ["blobs/sha256", "keys", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_err("create", &p))?;
        }
        Ok(Store { root })
    }

    /// Opens the store at [`Store::default_root`].
    pub fn open_default() -> Result<Self, StoreError> {
        Self::open(Self::default_root())
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// True when the blob is stored.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The size of a stored blob.
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(digest))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Opens a stored blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let p = self.blob_path(digest);
        File::open(&p).map_err(io_err("open", &p))
    }

    /// Reads a small stored blob (a manifest or config) into memory.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(digest);
        fs::read(&p).map_err(io_err("read", &p))
    }

    /// Starts writing a new blob.
    pub fn writer(&self) -> Result<BlobWriter, StoreError> {
        let tmp = self.root.join("tmp");
        let file = NamedTempFile::with_prefix_in("blob-", &tmp)
            .map_err(io_err("create a temp file in", &tmp))?;
        Ok(BlobWriter {
            store: self.clone(),
            inner: HashingWriter::new(BufWriter::with_capacity(256 * 1024, file)),
        })
    }

    /// Stores `bytes`, returning their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        if self.contains(&digest) {
            return Ok(digest);
        }
        let mut w = self.writer()?;
        w.write_all(bytes).map_err(io_err("write", &self.root))?;
        w.commit_expecting(&digest, None)?;
        Ok(digest)
    }

    /// Streams `reader` into the store, verifying it against `expected` (and `size` when given).
    pub fn put_verified(
        &self,
        mut reader: impl Read,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<PathBuf, StoreError> {
        if self.contains(expected) {
            return Ok(self.blob_path(expected));
        }
        let mut w = self.writer()?;
        io::copy(&mut reader, &mut w).map_err(io_err("write", &self.root))?;
        w.commit_expecting(expected, size)
    }

    fn key_path(&self, namespace: &str, key: &str) -> Result<PathBuf, StoreError> {
        let ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 200
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && !s.starts_with('.')
        };
        if !ok(namespace) {
            return Err(StoreError::InvalidKey(namespace.to_string()));
        }
        if !ok(key) {
            return Err(StoreError::InvalidKey(key.to_string()));
        }
        Ok(self.root.join("keys").join(namespace).join(key))
    }

    /// Reads a small record stored with [`Store::put_key`].
    pub fn get_key(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let p = self.key_path(namespace, key)?;
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io {
                action: "read",
                path: p,
                source: e,
            }),
        }
    }

    /// Stores a small record atomically (temp file + rename).
    pub fn put_key(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let p = self.key_path(namespace, key)?;
        let dir = p.parent().expect("key path has a parent");
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let tmp = self.root.join("tmp");
        let mut f = NamedTempFile::with_prefix_in("key-", &tmp)
            .map_err(io_err("create a temp file in", &tmp))?;
        f.write_all(value).map_err(io_err("write", &tmp))?;
        f.persist(&p).map_err(|e| StoreError::Io {
            action: "rename into",
            path: p.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Removes a record.
    pub fn remove_key(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        let p = self.key_path(namespace, key)?;
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::Io {
                action: "remove",
                path: p,
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

/// A blob being written; dropped without commit, it leaves nothing behind.
pub struct BlobWriter {
    store: Store,
    inner: HashingWriter<BufWriter<NamedTempFile>>,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    fn finish_file(self) -> Result<(Store, NamedTempFile, Digest, u64), StoreError> {
        let (buf, digest, size) = self.inner.finish();
        let file = buf.into_inner().map_err(|e| StoreError::Io {
            action: "flush",
            path: self.store.root.join("tmp"),
            source: e.into_error(),
        })?;
        Ok((self.store, file, digest, size))
    }

    fn persist(store: &Store, file: NamedTempFile, digest: &Digest) -> Result<PathBuf, StoreError> {
        let dest = store.blob_path(digest);
        file.as_file().sync_data().ok();
        file.persist(&dest).map_err(|e| StoreError::Io {
            action: "rename into",
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(dest)
    }

    /// Stores the blob if it has digest `expected` (and size `size` when given); otherwise deletes it and
    /// fails. Returns the blob's path.
    pub fn commit_expecting(
        self,
        expected: &Digest,
        size: Option<u64>,
    ) -> Result<PathBuf, StoreError> {
        let (store, file, actual, got) = self.finish_file()?;
        if actual != *expected {
            return Err(StoreError::DigestMismatch {
                expected: *expected,
                actual,
                size: got,
            });
        }
        if let Some(want) = size.filter(|w| *w != got) {
            return Err(StoreError::SizeMismatch {
                digest: actual,
                expected: want,
                actual: got,
            });
        }
        Self::persist(&store, file, &actual)
    }

    /// Stores the blob under the digest of what was written.
    pub fn commit(self) -> Result<(Digest, u64), StoreError> {
        let (store, file, digest, size) = self.finish_file()?;
        Self::persist(&store, file, &digest)?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_blobs_enter_and_bad_ones_never_do() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let good = b"hello layer".to_vec();
        let digest = Digest::of(&good);
        store
            .put_verified(&good[..], &digest, Some(good.len() as u64))
            .unwrap();
        assert_eq!(store.read_blob(&digest).unwrap(), good);

        let wanted = Digest::of(b"something else");
        let err = store
            .put_verified(&b"tampered"[..], &wanted, None)
            .unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }));
        assert!(err.to_string().contains(&wanted.to_string()), "{err}");
        assert!(!store.contains(&wanted));
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "no temp file left behind"
        );

        let err = store
            .put_verified(&b"abc"[..], &Digest::of(b"abc"), Some(4))
            .unwrap_err();
        assert!(matches!(err, StoreError::SizeMismatch { .. }));
        assert!(!store.contains(&Digest::of(b"abc")));
    }

    #[test]
    fn keys_are_atomic_and_cannot_escape() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put_key("layers", "abc", b"1").unwrap();
        store.put_key("layers", "abc", b"2").unwrap();
        assert_eq!(store.get_key("layers", "abc").unwrap().unwrap(), b"2");
        assert!(store.get_key("layers", "missing").unwrap().is_none());
        assert!(store.put_key("..", "x", b"").is_err());
        assert!(store.put_key("layers", "../x", b"").is_err());
    }
}
