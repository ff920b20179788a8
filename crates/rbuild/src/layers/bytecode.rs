//! Bytecode for the dependency and app layers, compiled by the base image's own interpreter.
//!
//! One [`Bytecode`] per build. Its interpreter is the base image of the build machine's own
//! platform (bytecode does not depend on the CPU, so it compiles for every platform of the
//! build), unpacked from the store by [`rbuild_runner`] and started only when a `.py` file is not
//! in the `.pyc` cache ([`rbuild_bytecode::PycCache`], in the store's `pyc/` directory): a warm
//! rebuild starts no interpreter and unpacks nothing. What the interpreter is (version, magic
//! number, cache tag) is remembered per interpreter (this platform's manifest digest of the base
//! and the interpreter's path, hashed into the store key) in the store's `pyc-interpreter` keys.
//!
//! A warm rebuild whose app changed pays for one interpreter start; to keep that off the
//! critical path, the build starts the interpreter the last build of the same base reference ran
//! ([`start_standby`], remembered in `pyc-standby` keys) while the registry is asked, and the
//! compile uses it when the base resolves to the same image.
//!
//! The dependency layer spools the `.py` files the wheel installation writes into its
//! `purelib`/`platlib` ([`SpoolSink`]), compiles them and appends the `.pyc` files, sorted, to the
//! same layer; the app layer does the same with the context's `.py` files.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rbuild_bytecode::{CompileOutput, Compiler, InterpreterInfo, PycCache, Source, Standby};
use rbuild_layer::{Context, EntryKind, LayerWriter};
use rbuild_oci::{Platform, Store};
use rbuild_registry::Reference;
use rbuild_runner::{PyVersion, Python};
use rbuild_wheel::EntrySink;

use crate::BuildError;
use crate::runner::BasePython;

/// How many interpreter processes compile side by side: `RBUILD_BYTECODE_WORKERS`, else the
/// number of CPUs up to 4. The `.pyc` bytes do not depend on it (a test builds with 1 and 4).
fn workers() -> usize {
    std::env::var("RBUILD_BYTECODE_WORKERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(4)
        })
}

/// Bytecode compilation for one build.
pub(crate) struct Bytecode {
    compiler: Compiler,
    store: Store,
    /// The interpreter's identity (`<manifest digest>|<path>`), when its image is known.
    identity: Option<String>,
    /// The store key of the interpreter's description (`pyc-interpreter`), when its image is known.
    info_key: Option<String>,
    info_known: bool,
}

impl Bytecode {
    /// Bytecode compiled by `python`, the base image's interpreter for the build machine's
    /// platform (shared with the sdist builder: prepared at most once per build). `standby` is
    /// the worker [`start_standby`] started, used when it is this interpreter's.
    pub(crate) fn new(
        store: Store,
        python: Arc<BasePython>,
        standby: Option<(String, Standby)>,
    ) -> Bytecode {
        let identity = python.info_key();
        let info_key = identity.as_deref().map(store_key);
        let mut compiler =
            Compiler::new(python, workers()).with_cache(PycCache::new(store.root().join("pyc")));
        // A standby of another interpreter (the tag moved, another path) is dropped: killed.
        if let Some((id, s)) = standby
            && identity.as_deref() == Some(id.as_str())
        {
            compiler = compiler.with_standby(s);
        }
        let stored = info_key
            .as_ref()
            .and_then(|k| store.get_key("pyc-interpreter", k).ok().flatten())
            .and_then(|b| decode_info(&b));
        let info_known = stored.is_some();
        if let Some(info) = stored {
            compiler = compiler.with_interpreter_info(info);
        }
        Bytecode {
            compiler,
            store,
            identity,
            info_key,
            info_known,
        }
    }

    /// Remembers, for the next build of `reference` on this machine, which interpreter this
    /// build runs and where the app goes (see [`start_standby`]); written only when it changed.
    pub(crate) fn remember(&self, reference: &Reference, app_dir: &str) {
        let Some(identity) = &self.identity else {
            return;
        };
        let record = serde_json::to_vec(&serde_json::json!({
            "identity": identity,
            "app_dir": app_dir,
        }))
        .expect("json");
        let key = standby_key(reference);
        if self.store.get_key(STANDBY_NS, &key).ok().flatten().as_ref() != Some(&record) {
            let _ = self.store.put_key(STANDBY_NS, &key, &record);
        }
    }

    /// Compiles `sources` (blocking), in a scratch directory of the store removed afterwards.
    pub(crate) fn compile(
        &self,
        scratch: &Path,
        sources: &[Source],
    ) -> Result<CompileOutput, BuildError> {
        let out = self
            .compiler
            .compile(scratch, sources)
            .map_err(|e| BuildError::Bytecode(e.to_string()))?;
        if let (false, Some(key)) = (self.info_known, &self.info_key) {
            let _ = self
                .store
                .put_key("pyc-interpreter", key, &encode_info(&out.interpreter));
        }
        Ok(out)
    }

    /// A scratch directory under the store (same filesystem as the cache), removed on drop.
    pub(crate) fn scratch(&self) -> Result<tempfile::TempDir, BuildError> {
        let dir = self.store.root().join("tmp");
        std::fs::create_dir_all(&dir).map_err(|e| BuildError::Bytecode(e.to_string()))?;
        tempfile::Builder::new()
            .prefix("bytecode-")
            .tempdir_in(dir)
            .map_err(|e| BuildError::Bytecode(e.to_string()))
    }
}

/// A store key (letters, digits, `-`) for an interpreter identity (`sha256:…|/usr/bin/python3`),
/// which holds characters store keys may not.
pub(crate) fn store_key(identity: &str) -> String {
    rbuild_oci::Digest::of(identity.as_bytes()).hex()
}

/// Store namespace of what the last build with bytecode ran for a base reference on this
/// machine: `{"identity": "<manifest digest>|<interpreter path>", "app_dir": "/app"}`.
const STANDBY_NS: &str = "pyc-standby";

fn standby_key(reference: &Reference) -> String {
    store_key(&format!("{reference}|{}", Platform::host()))
}

/// Starts the interpreter the last build of `reference` ran ([`Bytecode::remember`]), when the
/// context has a `.py` file whose bytecode is not in the cache (under the app directory that
/// build used) and that base is unpacked in the store: a warm rebuild with a changed app file
/// then has its compile worker up by the time the registry has answered. Returns the worker
/// with the interpreter's identity, which [`Bytecode::new`] compares with the base the build
/// resolved. `None` (nothing started) when any of that is missing; blocking.
pub(crate) fn start_standby(
    store: &Store,
    reference: &Reference,
    ctx: &Context,
) -> Option<(String, Standby)> {
    let record = store.get_key(STANDBY_NS, &standby_key(reference)).ok()??;
    let record: serde_json::Value = serde_json::from_slice(&record).ok()?;
    let identity = record.get("identity")?.as_str()?;
    let app_dir = record.get("app_dir")?.as_str()?;
    let (digest, interpreter) = identity.split_once('|')?;
    let info = decode_info(
        &store
            .get_key("pyc-interpreter", &store_key(identity))
            .ok()??,
    )?;
    let cache = PycCache::new(store.root().join("pyc"));
    let prefix = app_dir.trim_matches('/');
    let changed = ctx.entries.iter().any(|e| {
        if !matches!(e.kind, EntryKind::File { .. })
            || !e.path.ends_with(".py")
            || e.path.split('/').any(|c| c == "__pycache__")
        {
            return false;
        }
        let image_path = format!("/{prefix}/{}", e.path).replace("//", "/");
        std::fs::File::open(ctx.root.join(&e.path))
            .and_then(rbuild_oci::Digest::of_reader)
            .is_ok_and(|(d, _)| !cache.contains(&PycCache::key(&info, &image_path, d.raw())))
    });
    if !changed {
        return None;
    }
    let python = crate::runner::unpacked_python(store, digest, interpreter)?;
    if python.version() != info.version {
        return None;
    }
    let standby = Standby::start(&python, &store.root().join("tmp")).ok()?;
    Some((identity.to_string(), standby))
}

/// The stored description of an interpreter: one line per field.
fn encode_info(info: &InterpreterInfo) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "major": info.version.major,
        "minor": info.version.minor,
        "cache_tag": info.cache_tag,
        "magic": hex::encode(info.magic),
        "sys_version": info.sys_version,
    }))
    .expect("json")
}

fn decode_info(bytes: &[u8]) -> Option<InterpreterInfo> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let magic = hex::decode(v.get("magic")?.as_str()?).ok()?;
    Some(InterpreterInfo {
        version: PyVersion {
            major: u8::try_from(v.get("major")?.as_u64()?).ok()?,
            minor: u8::try_from(v.get("minor")?.as_u64()?).ok()?,
        },
        cache_tag: v.get("cache_tag")?.as_str()?.to_string(),
        magic: magic.try_into().ok()?,
        sys_version: v.get("sys_version")?.as_str()?.to_string(),
    })
}

/// An [`EntrySink`] that passes everything on and keeps a copy of every `.py` file written under
/// one of `site_dirs` (layer paths, no leading `/`) in `spool`, for compiling afterwards.
pub(crate) struct SpoolSink<'a, S: EntrySink> {
    inner: &'a mut S,
    site_dirs: Vec<String>,
    spool: PathBuf,
    sources: Vec<Source>,
    dirs: BTreeSet<String>,
}

impl<'a, S: EntrySink> SpoolSink<'a, S> {
    /// Spools into `spool` (created).
    pub(crate) fn new(
        inner: &'a mut S,
        site_dirs: Vec<String>,
        spool: PathBuf,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(&spool)?;
        Ok(SpoolSink {
            inner,
            site_dirs: site_dirs
                .into_iter()
                .map(|d| d.trim_matches('/').to_string())
                .collect(),
            spool,
            sources: Vec::new(),
            dirs: BTreeSet::new(),
        })
    }

    /// The spooled sources and the directories written.
    pub(crate) fn finish(self) -> (Vec<Source>, BTreeSet<String>) {
        (self.sources, self.dirs)
    }

    fn wanted(&self, path: &str) -> bool {
        let p = path.trim_start_matches('/');
        p.ends_with(".py")
            && self.site_dirs.iter().any(|d| {
                p.strip_prefix(d.as_str())
                    .is_some_and(|r| r.starts_with('/'))
            })
    }
}

impl<S: EntrySink> EntrySink for SpoolSink<'_, S> {
    fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        self.dir_owned(path, mode, (0, 0))
    }

    fn dir_owned(&mut self, path: &str, mode: u32, owner: (u32, u32)) -> io::Result<()> {
        self.dirs.insert(path.trim_matches('/').to_string());
        self.inner.dir_owned(path, mode, owner)
    }

    fn file(&mut self, path: &str, mode: u32, size: u64, content: &mut dyn Read) -> io::Result<()> {
        self.file_owned(path, mode, (0, 0), size, content)
    }

    fn file_owned(
        &mut self,
        path: &str,
        mode: u32,
        owner: (u32, u32),
        size: u64,
        content: &mut dyn Read,
    ) -> io::Result<()> {
        if !self.wanted(path) {
            return self.inner.file_owned(path, mode, owner, size, content);
        }
        let host_path = self.spool.join(format!("{}.py", self.sources.len()));
        let mut copy = io::BufWriter::new(std::fs::File::create(&host_path)?);
        let mut tee = Tee {
            inner: content,
            copy: &mut copy,
        };
        self.inner.file_owned(path, mode, owner, size, &mut tee)?;
        copy.flush()?;
        self.sources.push(Source {
            image_path: format!("/{}", path.trim_start_matches('/')),
            host_path,
        });
        Ok(())
    }

    fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.inner.symlink(path, target)
    }

    fn whiteout(&mut self, path: &str) -> io::Result<()> {
        self.inner.whiteout(path)
    }
}

/// A reader that copies what it reads.
struct Tee<'a> {
    inner: &'a mut dyn Read,
    copy: &'a mut dyn Write,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Mode and (`uid`, `gid`) of a new entry at an image path, given the mode it would have.
pub(crate) type OwnerOf<'a> = dyn Fn(&str, u32) -> (u32, (u32, u32)) + 'a;

/// Each source's mtime and size (image path → (mtime, size)), for timestamp-based `.pyc` files
/// ([`rbuild_bytecode::timestamp_header`]).
pub(crate) type SourceStats = std::collections::BTreeMap<String, (u64, u64)>;

/// Appends the compiled `.pyc` files (sorted by path) to a layer, with a `__pycache__`
/// directory entry before the first file of each directory not in `written`. `owner_of(path,
/// mode)` gives each new entry's mode and (`uid`, `gid`) (see [`rbuild_wheel::inherited`]).
/// `stamps`: write each file timestamp-based for its source's mtime and size instead of with the
/// unchecked-hash header it was compiled with (the body is the same).
pub(crate) fn append_pycs<W: Write>(
    w: &mut LayerWriter<W>,
    out: &CompileOutput,
    written: &BTreeSet<String>,
    owner_of: &OwnerOf<'_>,
    stamps: Option<&SourceStats>,
) -> Result<u64, BuildError> {
    let mut dirs = written.clone();
    let mut bytes = 0;
    for pyc in &out.pycs {
        let path = pyc.pyc_image_path.trim_start_matches('/');
        if let Some((dir, _)) = path.rsplit_once('/')
            && dirs.insert(dir.to_string())
        {
            let (mode, (uid, gid)) = owner_of(dir, 0o755);
            w.append_dir_owned(dir, mode, uid, gid)?;
        }
        let failed = |e: io::Error| BuildError::Bytecode(format!("{}: {e}", pyc.file.display()));
        let mut f = std::fs::File::open(&pyc.file).map_err(failed)?;
        let mut header = [0u8; 16];
        if let Some(stamps) = stamps {
            let (mtime, size) = stamps.get(&pyc.source_image_path).copied().ok_or_else(|| {
                BuildError::Bytecode(format!("no source stat for {}", pyc.source_image_path))
            })?;
            f.read_exact(&mut header).map_err(failed)?;
            let magic = header[..4].try_into().expect("four bytes");
            header = rbuild_bytecode::timestamp_header(magic, mtime, size);
        }
        let head = if stamps.is_some() { &header[..] } else { &[] };
        let mut data = io::Cursor::new(head).chain(f);
        let (mode, (uid, gid)) = owner_of(path, 0o644);
        w.append_file_owned(path, mode, pyc.size, &mut data, uid, gid)?;
        bytes += pyc.size;
    }
    Ok(bytes)
}

/// One line for the build output: how many files were compiled, reused and skipped.
pub(crate) fn summary(out: &CompileOutput, bytes: u64) -> String {
    format!(
        "{} .pyc ({} compiled, {} from the cache, {} sources skipped), {:.1} MB, {}",
        out.pycs.len(),
        out.compiled,
        out.reused,
        out.skipped.len(),
        bytes as f64 / 1e6,
        out.interpreter.cache_tag
    )
}
