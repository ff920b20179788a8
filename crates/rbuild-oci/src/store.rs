//! The content store: blobs by digest under one root directory.
//!
//! ```text
//! $RBUILD_CACHE_DIR (default $XDG_CACHE_HOME/rbuild, else ~/.cache/rbuild)
//! ├── blobs/sha256/<hex>     verified content: layers, configs, manifests, wheels
//! ├── keys/<namespace>/<key> small records (e.g. layer cache key → layer descriptor)
//! ├── leases/<id>            one per process using the store, locked while it runs
//! └── tmp/                   in-flight writes; renamed into place only once verified
//! ```
//!
//! Every blob is written to a temp file in `tmp/` while its digest is computed, and renamed into
//! `blobs/` only when the digest matches, so a crash or a corrupt download never leaves a partial or
//! wrong entry. Renames are atomic and two processes writing the same digest write the same bytes, so
//! several rbuild processes can share one store.
//!
//! **Damage heals.** A stored blob is checked against its digest the first time a process asks for
//! it ([`Store::contains`], [`Store::blob_size`]) and as it streams ([`Store::open_verified`]): a
//! blob whose bytes do not match (a flipped bit, a truncation) or that is not a regular file (a
//! directory in its place) is removed and reported as absent, so the caller fetches or builds it
//! again. Every such repair is logged ([`Store::take_repairs`]) for the caller to show; a build
//! that failed because of one can simply be run again once ([`StoreError::is_repaired`]).
//!
//! **Pruning beside builds.** Every process that opens the store holds a *lease* (a locked file in
//! `leases/`) while it runs, and marks what it uses (the first check of a blob sets its
//! modification time). [`Store::prune`] keeps every entry used or written since the oldest running
//! lease started, so `rbuild cache prune --all` never removes what a running build relies on.
//! Leftover temp files of killed runs (partial downloads) are removed by the next process that
//! opens the store and by [`Store::prune`], once no running process could own them.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tempfile::NamedTempFile;

use crate::Digest;
use crate::digest::{Hasher, HashingWriter};

/// What fixes a store that cannot be written.
const STORE_FIX: &str = "make it a writable directory, or point RBUILD_CACHE_DIR at one (e.g. RBUILD_CACHE_DIR=/tmp/rbuild-cache)";

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
    /// The store's directory cannot be used (read-only, not a directory, not ours).
    #[error("the content store {path} cannot be used ({reason}); {STORE_FIX}")]
    Unusable {
        /// The store's root.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The disk holding the store is full.
    #[error(
        "no space left for the content store {path} ({action}); free space on that disk (`rbuild cache prune` removes entries not used for 30 days, `--all` everything), or set RBUILD_CACHE_DIR to a directory on a disk with room"
    )]
    Full {
        /// The store's root.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
    },
    /// A stored blob did not match its digest (or was not a regular file, or vanished while in
    /// use); it was removed, and the next attempt fetches or builds it again.
    #[error(
        "the content store entry {path} for {digest} was damaged ({why}); it was removed: run again to fetch or build it anew"
    )]
    Damaged {
        /// Which blob.
        digest: Digest,
        /// Where it was.
        path: PathBuf,
        /// What was wrong.
        why: String,
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

impl StoreError {
    /// Whether this error (or one in its source chain, including inside an [`io::Error`]) is a
    /// damaged entry that was removed: running the same work again fetches or builds it anew.
    pub fn is_repaired(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = cur {
            if let Some(StoreError::Damaged { .. }) = e.downcast_ref::<StoreError>() {
                return true;
            }
            if let Some(io) = e.downcast_ref::<io::Error>()
                && let Some(inner) = io.get_ref()
                && Self::is_repaired(inner)
            {
                return true;
            }
            cur = e.source();
        }
        false
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| classify(action, path, source)
}

/// An io error as a store error: a full disk and a read-only or foreign store get their own
/// messages (naming the way out).
fn classify(action: &'static str, path: &Path, source: io::Error) -> StoreError {
    let root = store_root_of(path);
    match source.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            StoreError::Full { path: root, action }
        }
        io::ErrorKind::ReadOnlyFilesystem
        | io::ErrorKind::PermissionDenied
        | io::ErrorKind::NotADirectory => StoreError::Unusable {
            path: root,
            reason: format!("{action} {}: {source}", path.display()),
        },
        _ => StoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        },
    }
}

/// The store root a path inside it belongs to (the path itself when it is not recognisably inside).
fn store_root_of(path: &Path) -> PathBuf {
    for a in path.ancestors() {
        if a.join("blobs").is_dir() && a.join("tmp").is_dir() {
            return a.to_path_buf();
        }
    }
    path.to_path_buf()
}

/// Slack for coarse file timestamps when comparing them with a lease's start.
const CLOCK_SLACK: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct Shared {
    /// Blobs checked by this process: digest → (size, inode) when checked.
    verified: Mutex<HashMap<Digest, (u64, u64)>>,
    /// Damaged entries removed, for the caller to report.
    repairs: Mutex<Vec<String>>,
    /// This process's lease (locked; removed when the last clone of the store is dropped).
    lease: Option<Lease>,
}

#[derive(Debug)]
struct Lease {
    path: PathBuf,
    _file: File,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// What [`Store::prune`] removes.
#[derive(Clone, Copy, Debug)]
pub struct PruneOptions {
    /// Remove every entry (still keeping what running builds use).
    pub all: bool,
    /// Remove entries not written or used for this long.
    pub older_than: Duration,
}

/// What [`Store::prune`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Entries (blobs, records, temp files) removed.
    pub removed: u64,
    /// Bytes freed.
    pub freed: u64,
    /// Entries kept because a running build uses them.
    pub in_use: u64,
    /// Running processes (other than this one) holding the store.
    pub running: u64,
}

/// A content-addressed store on disk. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    shared: Arc<Shared>,
}

static LEASE_SEQ: AtomicU64 = AtomicU64::new(0);

fn files_under(dir: &Path) -> Vec<(PathBuf, fs::Metadata)> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if let Ok(m) = fs::symlink_metadata(&p) {
            if m.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push((p, m));
            }
        }
    }
    out
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

    /// Opens (creating if needed) the store at `root`, holding a lease on it while the store (any
    /// clone) lives, and removes temp files that killed runs left behind.
    ///
    /// A store that cannot be written (read-only, not a directory, not ours) fails here with one
    /// [`StoreError::Unusable`] naming the directory and the way out.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        let unusable = |reason: String| StoreError::Unusable {
            path: root.clone(),
            reason,
        };
        if let Ok(m) = fs::metadata(&root)
            && !m.is_dir()
        {
            return Err(unusable("it is not a directory".into()));
        }
        for sub in ["blobs/sha256", "keys", "tmp", "leases"] {
            let p = root.join(sub);
            if let Err(e) = fs::create_dir_all(&p) {
                return Err(match e.kind() {
                    io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => StoreError::Full {
                        path: root.clone(),
                        action: "create",
                    },
                    _ => unusable(format!("cannot create {}: {e}", p.display())),
                });
            }
            if !p.is_dir() {
                return Err(unusable(format!("{} is not a directory", p.display())));
            }
        }
        // Writable? (A read-only store would otherwise fail later, once per blob.)
        let tmp = root.join("tmp");
        if let Err(e) = NamedTempFile::with_prefix_in(".probe-", &tmp) {
            return Err(match e.kind() {
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => StoreError::Full {
                    path: root.clone(),
                    action: "write",
                },
                _ => unusable(format!("cannot write in {}: {e}", tmp.display())),
            });
        }
        let lease = Self::take_lease(&root).map_err(|e| unusable(format!("lease: {e}")))?;
        let store = Store {
            root,
            shared: Arc::new(Shared {
                lease: Some(lease),
                ..Shared::default()
            }),
        };
        store.remove_stale_temps();
        Ok(store)
    }

    /// Opens the store at [`Store::default_root`].
    pub fn open_default() -> Result<Self, StoreError> {
        Self::open(Self::default_root())
    }

    fn take_lease(root: &Path) -> io::Result<Lease> {
        let dir = root.join("leases");
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let name = format!(
            "{}-{}-{nanos}",
            std::process::id(),
            LEASE_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        // Locked before it gets its name, so a prune never mistakes it for a dead run's.
        let new = dir.join(format!(".new-{name}"));
        let file = File::create(&new)?;
        file.lock()?;
        let path = dir.join(name);
        fs::rename(&new, &path)?;
        Ok(Lease { path, _file: file })
    }

    /// When each running process other than this one started using the store; the leases of
    /// processes that are gone are removed.
    fn running_since(&self) -> Vec<SystemTime> {
        let own = self.shared.lease.as_ref().map(|l| l.path.clone());
        let mut out = Vec::new();
        let Ok(rd) = fs::read_dir(self.root.join("leases")) else {
            return out;
        };
        for e in rd.flatten() {
            let p = e.path();
            if Some(&p) == own.as_ref() {
                continue;
            }
            let Ok(m) = fs::metadata(&p) else { continue };
            let Ok(start) = m.modified() else { continue };
            let young = start
                .elapsed()
                .map(|d| d < Duration::from_secs(60))
                .unwrap_or(true);
            if e.file_name().to_string_lossy().starts_with('.') && young {
                // Being created: count it as running.
                out.push(start);
                continue;
            }
            let Ok(f) = File::open(&p) else { continue };
            match f.try_lock() {
                Ok(()) => {
                    let _ = fs::remove_file(&p);
                }
                Err(_) => out.push(start),
            }
        }
        out
    }

    /// Entries changed at or after this time may be in use by a running process (`None`: no other
    /// process is running).
    fn held_since(&self) -> Option<SystemTime> {
        self.running_since()
            .into_iter()
            .min()
            .map(|t| t.checked_sub(CLOCK_SLACK).unwrap_or(t))
    }

    /// Removes temp files no running process can own (left by killed runs); returns what was
    /// removed and freed.
    fn remove_stale_temps(&self) -> (u64, u64, u64) {
        let held = self
            .held_since()
            .unwrap_or_else(SystemTime::now)
            .checked_sub(CLOCK_SLACK)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let (mut removed, mut freed, mut kept) = (0, 0, 0);
        for (p, m) in files_under(&self.root.join("tmp")) {
            if m.modified().map(|t| t >= held).unwrap_or(true) {
                kept += 1;
            } else if fs::remove_file(&p).is_ok() {
                removed += 1;
                freed += m.len();
            }
        }
        (removed, freed, kept)
    }

    /// Frees space: temp files of killed runs, and blobs and records not used for
    /// `options.older_than` (every one with `options.all`), but never what a running process
    /// (holding its lease) has used or written since it started.
    pub fn prune(&self, options: PruneOptions) -> Result<PruneReport, StoreError> {
        let running = self.running_since();
        let held = running
            .iter()
            .min()
            .map(|t| t.checked_sub(CLOCK_SLACK).unwrap_or(*t));
        let in_use =
            |m: &fs::Metadata| held.is_some_and(|h| m.modified().map(|t| t >= h).unwrap_or(true));
        let (removed, freed, kept) = self.remove_stale_temps();
        let mut report = PruneReport {
            removed,
            freed,
            in_use: kept,
            running: running.len() as u64,
        };
        let cutoff = SystemTime::now()
            .checked_sub(options.older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for sub in ["blobs/sha256", "keys"] {
            for (p, m) in files_under(&self.root.join(sub)) {
                let used = m.accessed().ok().max(m.modified().ok());
                if !(options.all || used.map(|t| t < cutoff).unwrap_or(true)) {
                    continue;
                }
                // Checked again right before removing: a build may have just used it.
                let now = fs::symlink_metadata(&p);
                if in_use(&m) || now.as_ref().map(&in_use).unwrap_or(true) {
                    report.in_use += 1;
                    continue;
                }
                if fs::remove_file(&p).is_ok() {
                    report.removed += 1;
                    report.freed += m.len();
                }
            }
        }
        Ok(report)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// The damaged entries removed so far (since the last call), one line each: what was wrong
    /// and that it was removed. A caller shows them, and runs again once when its work failed
    /// because of one.
    pub fn take_repairs(&self) -> Vec<String> {
        std::mem::take(&mut *self.shared.repairs.lock().expect("repairs lock"))
    }

    /// Removes a damaged blob (only if `ino`, when given, is still the file at its path) and
    /// records the repair.
    fn evict(&self, digest: &Digest, ino: Option<u64>, why: &str) -> StoreError {
        let path = self.blob_path(digest);
        self.shared
            .verified
            .lock()
            .expect("verified lock")
            .remove(digest);
        if let Ok(m) = fs::symlink_metadata(&path)
            && ino.is_none_or(|i| i == m.ino())
        {
            let _ = if m.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
        self.shared
            .repairs
            .lock()
            .expect("repairs lock")
            .push(format!(
                "repaired the content store: {digest} was damaged ({why}); removed {}, fetched or built again",
                path.display()
            ));
        StoreError::Damaged {
            digest: *digest,
            path,
            why: why.to_string(),
        }
    }

    /// The size of a stored blob whose bytes match its digest (checked in full the first time
    /// this process asks, and its use marked for [`Store::prune`]); a damaged one is removed and
    /// reported absent.
    fn checked(&self, digest: &Digest) -> Option<u64> {
        let p = self.blob_path(digest);
        let meta = fs::symlink_metadata(&p).ok()?;
        if !meta.is_file() {
            self.evict(digest, None, "not a regular file");
            return None;
        }
        let seen = self
            .shared
            .verified
            .lock()
            .expect("verified lock")
            .get(digest)
            .copied();
        if seen == Some((meta.len(), meta.ino())) {
            return Some(meta.len());
        }
        let f = File::open(&p).ok()?;
        let ino = f.metadata().ok()?.ino();
        let (actual, n) = Digest::of_reader(io::BufReader::with_capacity(256 * 1024, f)).ok()?;
        if actual != *digest {
            self.evict(
                digest,
                Some(ino),
                &format!("its {n} bytes have digest {actual}"),
            );
            return None;
        }
        if !Self::mark_used(&p) {
            return None;
        }
        self.shared
            .verified
            .lock()
            .expect("verified lock")
            .insert(*digest, (n, ino));
        Some(n)
    }

    /// True when a regular file of `size` bytes is stored under `digest` (marked used, like
    /// [`Store::contains`]), without reading it: for a blob the build may never read (a cached
    /// layer the registry already has). Every read verifies the bytes on its own
    /// ([`Store::open_verified`], [`Store::blob_size`], [`Store::read_blob`]), and a damaged
    /// entry found then is removed and reported ([`Store::take_repairs`]).
    pub fn holds(&self, digest: &Digest, size: u64) -> bool {
        let p = self.blob_path(digest);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() && m.len() == size => {}
            Ok(m) if !m.is_file() => {
                self.evict(digest, None, "not a regular file");
                return false;
            }
            _ => return false,
        }
        Self::mark_used(&p)
    }

    /// Marks the blob at `path` used (prune keeps what running builds use); false when it is
    /// gone meanwhile.
    fn mark_used(path: &Path) -> bool {
        !matches!(
            File::options()
                .append(true)
                .open(path)
                .and_then(|f| f.set_modified(SystemTime::now())),
            Err(e) if e.kind() == io::ErrorKind::NotFound
        )
    }

    /// True when the blob is stored (and its bytes match its digest; see [`Store::checked`]).
    pub fn contains(&self, digest: &Digest) -> bool {
        self.checked(digest).is_some()
    }

    /// The size of a stored blob (verified like [`Store::contains`]).
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.checked(digest)
    }

    fn open_file(&self, digest: &Digest) -> Result<File, StoreError> {
        let p = self.blob_path(digest);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(self.evict(digest, None, "not a regular file")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(self.evict(digest, None, "missing: removed while in use"));
            }
            Err(e) => return Err(classify("open", &p, e)),
        }
        File::open(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => self.evict(digest, None, "missing: removed while in use"),
            _ => classify("open", &p, e),
        })
    }

    /// Opens a stored blob for reading (unchecked: prefer [`Store::open_verified`]).
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        self.open_file(digest)
    }

    /// Opens a stored blob for reading, hashing it as it streams: reaching its end with bytes
    /// that do not match the digest fails the read with [`StoreError::Damaged`] (inside the
    /// [`io::Error`]) and removes the entry.
    pub fn open_verified(&self, digest: &Digest) -> Result<VerifiedBlob, StoreError> {
        let file = self.open_file(digest)?;
        let ino = file.metadata().map(|m| m.ino()).ok();
        Ok(VerifiedBlob {
            store: self.clone(),
            digest: *digest,
            ino,
            file,
            hasher: Some(Hasher::new()),
        })
    }

    /// Reads a small stored blob (a manifest or config) into memory, checking its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let mut f = self.open_file(digest)?;
        let ino = f.metadata().map(|m| m.ino()).ok();
        let mut bytes = Vec::new();
        let p = self.blob_path(digest);
        f.read_to_end(&mut bytes).map_err(io_err("read", &p))?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(self.evict(
                digest,
                ino,
                &format!("its {} bytes have digest {actual}", bytes.len()),
            ));
        }
        Ok(bytes)
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

    /// Reads a small record stored with [`Store::put_key`]. Something other than a file in its
    /// place is removed (and the repair recorded): the record is absent. Callers treat a record
    /// that does not parse as absent too.
    pub fn get_key(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let p = self.key_path(namespace, key)?;
        match fs::symlink_metadata(&p) {
            Ok(m) if !m.is_file() => {
                let _ = if m.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                self.shared
                    .repairs
                    .lock()
                    .expect("repairs lock")
                    .push(format!(
                        "repaired the content store: the record {} was not a file; removed",
                        p.display()
                    ));
                return Ok(None);
            }
            _ => {}
        }
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(classify("read", &p, e)),
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
        f.persist(&p)
            .map_err(|e| classify("rename into", &p, e.error))?;
        Ok(())
    }

    /// Removes a record.
    pub fn remove_key(&self, namespace: &str, key: &str) -> Result<(), StoreError> {
        let p = self.key_path(namespace, key)?;
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(classify("remove", &p, e)),
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
        let file = buf
            .into_inner()
            .map_err(|e| classify("flush", &self.store.root.join("tmp"), e.into_error()))?;
        Ok((self.store, file, digest, size))
    }

    fn persist(store: &Store, file: NamedTempFile, digest: &Digest) -> Result<PathBuf, StoreError> {
        let dest = store.blob_path(digest);
        if fs::symlink_metadata(&dest).is_ok_and(|m| !m.is_file()) {
            // Damage in its place (a directory): removed, so the verified bytes can go there.
            store.evict(digest, None, "not a regular file");
        }
        file.as_file().sync_data().ok();
        file.persist(&dest)
            .map_err(|e| classify("rename into", &dest, e.error))?;
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

/// A stored blob being read, hashed as it streams ([`Store::open_verified`]).
pub struct VerifiedBlob {
    store: Store,
    digest: Digest,
    ino: Option<u64>,
    file: File,
    hasher: Option<Hasher>,
}

impl VerifiedBlob {
    /// Reads what is left (when the reader stopped before the end) and checks the digest.
    pub fn verify_rest(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }
}

impl Read for VerifiedBlob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if n > 0 {
            if let Some(h) = self.hasher.as_mut() {
                h.update(&buf[..n]);
            }
            return Ok(n);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(h) = self.hasher.take() {
            let len = h.len();
            let actual = h.finish();
            if actual != self.digest {
                let err = self.store.evict(
                    &self.digest,
                    self.ino,
                    &format!("its {len} bytes have digest {actual}"),
                );
                return Err(io::Error::new(io::ErrorKind::InvalidData, err));
            }
        }
        Ok(0)
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

#[cfg(test)]
mod heal_tests {
    use super::*;

    fn stored(store: &Store, bytes: &[u8]) -> Digest {
        let d = Digest::of(bytes);
        store.put_verified(bytes, &d, None).unwrap();
        d
    }

    #[test]
    fn a_flipped_byte_a_truncation_or_a_directory_is_removed_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = vec![7u8; 100_000];
        // Each kind of damage, seen by a fresh process (a new store: nothing verified yet).
        type Damage = fn(&Path);
        let damages: [(&str, Damage); 3] = [
            ("flip", |p| {
                let mut b = fs::read(p).unwrap();
                b[500] ^= 1;
                fs::write(p, b).unwrap();
            }),
            ("truncate", |p| {
                let b = fs::read(p).unwrap();
                fs::write(p, &b[..b.len() / 2]).unwrap();
            }),
            ("directory", |p| {
                fs::remove_file(p).unwrap();
                fs::create_dir_all(p.join("x")).unwrap();
            }),
        ];
        for (name, damage) in damages {
            let d = stored(&Store::open(dir.path()).unwrap(), &bytes);
            let store = Store::open(dir.path()).unwrap();
            damage(&store.blob_path(&d));
            assert!(!store.contains(&d), "{name}: a damaged blob is absent");
            assert!(!store.blob_path(&d).exists(), "{name}: and removed");
            let repairs = store.take_repairs();
            assert_eq!(repairs.len(), 1, "{name}: {repairs:?}");
            assert!(repairs[0].contains(&d.to_string()), "{name}: {repairs:?}");
            // Stored again, it is whole.
            store.put_verified(&bytes[..], &d, None).unwrap();
            assert!(store.contains(&d), "{name}");
        }
    }

    #[test]
    fn holds_checks_presence_and_size_and_leaves_the_bytes_to_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = stored(&store, b"cached layer bytes");
        assert!(store.holds(&d, 18));
        assert!(!store.holds(&d, 17), "another size is not this blob");
        assert!(!store.holds(&Digest::of(b"absent"), 6));
        // A flipped byte is not seen without reading; the first read finds it and removes it.
        fs::write(store.blob_path(&d), b"cached layer bytez").unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.holds(&d, 18));
        assert_eq!(store.blob_size(&d), None, "a verified read refuses it");
        assert!(!store.holds(&d, 18), "and it is gone");
        assert_eq!(store.take_repairs().len(), 1);
        // Something other than a file in its place is removed at once.
        let d = stored(&store, b"x");
        fs::remove_file(store.blob_path(&d)).unwrap();
        fs::create_dir_all(store.blob_path(&d).join("y")).unwrap();
        assert!(!store.holds(&d, 1));
        assert!(!store.blob_path(&d).exists());
    }

    #[test]
    fn a_blob_damaged_after_the_check_fails_its_reader_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = stored(&store, b"some layer bytes");
        assert!(store.contains(&d));
        fs::write(store.blob_path(&d), b"some layer bytez").unwrap();
        let mut r = store.open_verified(&d).unwrap();
        let err = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert!(StoreError::is_repaired(&err), "{err}");
        assert!(err.to_string().contains("was damaged"), "{err}");
        assert!(!store.blob_path(&d).exists());
        // A whole blob reads through.
        let d = stored(&store, b"fine");
        let mut out = Vec::new();
        store
            .open_verified(&d)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"fine");
        // read_blob checks too.
        let d = stored(&store, b"{\"a\":1}");
        fs::write(store.blob_path(&d), b"{\"a\":2}").unwrap();
        let err = store.read_blob(&d).unwrap_err();
        assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
    }

    #[test]
    fn a_record_that_is_a_directory_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fs::create_dir_all(dir.path().join("keys/layers/k/x")).unwrap();
        assert!(store.get_key("layers", "k").unwrap().is_none());
        store.put_key("layers", "k", b"1").unwrap();
        assert_eq!(store.get_key("layers", "k").unwrap().unwrap(), b"1");
    }

    #[test]
    fn an_unusable_store_gives_one_message_naming_it_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cache");
        fs::write(&file, b"").unwrap();
        let err = Store::open(&file).unwrap_err().to_string();
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(
            err.contains("not a directory") && err.contains("RBUILD_CACHE_DIR"),
            "{err}"
        );
    }

    #[test]
    fn prune_keeps_what_a_running_process_uses_and_removes_dead_runs_temps() {
        let dir = tempfile::tempdir().unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        let setup = Store::open(dir.path()).unwrap();
        let kept = stored(&setup, b"used by the running build");
        let gone = stored(&setup, b"not used");
        for d in [kept, gone] {
            File::options()
                .append(true)
                .open(setup.blob_path(&d))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        // A killed run's partial download.
        let partial = dir.path().join("tmp/blob-dead");
        fs::write(&partial, b"partial").unwrap();
        File::options()
            .append(true)
            .open(&partial)
            .unwrap()
            .set_modified(old)
            .unwrap();
        drop(setup);
        // A leftover lease of a killed process (not locked).
        fs::write(dir.path().join("leases/999999-0-0"), b"").unwrap();

        let build = Store::open(dir.path()).unwrap();
        assert!(
            !partial.exists(),
            "the next process removes dead runs' temps"
        );
        assert!(build.contains(&kept));
        let pruner = Store::open(dir.path()).unwrap();
        let report = pruner
            .prune(PruneOptions {
                all: true,
                older_than: Duration::ZERO,
            })
            .unwrap();
        assert_eq!(report.running, 1, "{report:?}");
        assert!(build.blob_path(&kept).is_file(), "in use: kept");
        assert!(!build.blob_path(&gone).exists(), "unused: removed");
        assert!(!dir.path().join("leases/999999-0-0").exists());
        drop(build);
        pruner
            .prune(PruneOptions {
                all: true,
                older_than: Duration::ZERO,
            })
            .unwrap();
        assert!(
            !pruner.blob_path(&kept).exists(),
            "no build running: removed"
        );
    }
}
