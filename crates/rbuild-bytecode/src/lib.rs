//! Deterministic CPython bytecode for the files that go into image layers.
//!
//! [`Compiler::compile`] turns a set of `.py` files (each with the absolute path it will have in
//! the image) into PEP 552 *unchecked-hash* `.pyc` files whose bytes are identical across runs,
//! machines, compile orders and worker counts, using the target image's own interpreter through
//! the [`rbuild_runner::Python`] trait.
//!
//! # What one `.pyc` is
//! - header: the interpreter's magic number, flags `0b01` (hash-based, source not checked: the
//!   image is immutable, so no `stat` and no mtime is involved), and the source hash from
//!   `importlib.util.source_hash` of the target interpreter;
//! - body: `marshal.dumps(compile(source, image_path, "exec", dont_inherit=True, optimize=0))`,
//!   so `co_filename` is the path inside the image, then normalised (below);
//! - location in the image: `<dir>/__pycache__/<stem>.<cache_tag>.pyc` ([`pyc_image_path`]),
//!   where the import system looks first.
//!
//! Sources that do not compile (a `SyntaxError` in a Python 2 file or in a template shipped inside
//! a wheel, null bytes, a bad coding cookie, …) are *skipped* and listed with the reason, as pip,
//! uv and `compileall` do: the module then compiles at import time, exactly as without bytecode.
//!
//! # Determinism
//! Three things could make the bytes differ:
//! 1. **Object sharing.** CPython's `marshal` marks an object with `FLAG_REF` when its
//!    reference count is above one, which depends on what the process did before (bpo-34093,
//!    gh-98819), and the compiler's constant cache shares equal constants or not depending on
//!    what other live modules interned (gh-129724, the scipy `.pyc` of astral-sh/uv#10619): compile
//!    order and the number of workers change the bytes. Distributions clear unused flags after
//!    the fact (Fedora's `marshalparser --fix`, `add-determinism`), which fixes the first but not
//!    the second. We rewrite every `.pyc` as it arrives, in Rust, into a canonical form that
//!    depends only on the value it loads to: [`normalize_marshal`] reads the marshal stream
//!    (code-object layouts for CPython 3.8–3.14, [`CodeLayout`]) into a tree, writes each
//!    immutable constant value once in full (flagged exactly when it occurs again) and every
//!    later occurrence as a reference, with dense indices in the reader's order. The result loads
//!    to equal code objects (tested against `marshal.loads` of the interpreter's own output on
//!    the standard library) and is never larger (2% smaller on the standard library).
//! 2. **Set order.** Frozenset constants (`x in {"a", "b"}`) are written in iteration order,
//!    which follows string hashes. Workers run with `PYTHONHASHSEED=0` and the script refuses to
//!    run with hash randomization on (3.13+ additionally sorts set elements). This is why the
//!    workers run with `-S -s -B` and not `-I`: `-I` implies `-E`, which would ignore
//!    `PYTHONHASHSEED` (and the `PYTHONHOME` a base-image runner sets).
//! 3. **Timestamps.** None: unchecked-hash pycs carry no mtime.
//! 4. **Interned singletons.** Before 3.12, whether the process-wide one-character strings (and
//!    `""`) are interned depends on what the process ran before (a base without standard-library
//!    `.pyc` compiles its start-up modules from source), and marshal writes interned and plain
//!    strings with different type codes. Each worker interns all of them first.
//!
//! # Workers
//! `workers` long-running `python -S -s -B -c <worker.py>` processes (the script is embedded
//! with `include_str!`) speak a length-prefixed protocol on stdin/stdout: rbuild sends the image
//! path and the source bytes (so the interpreter reads nothing outside its scratch directory),
//! the worker answers with the `.pyc` bytes, a skip reason, or an error. Sources are sorted by
//! image path and dealt round-robin to the workers. Each worker runs in its own process group,
//! with non-blocking pipes, and is killed when it outlives [`Python::time_limit`]; a worker that
//! dies, prints garbage or times out fails the whole call with an error naming the interpreter,
//! the file being compiled and the last lines of its stderr — never a partial result.
//!
//! A worker's start-up (process, confinement, interpreter) is the fixed cost of a compile; a
//! caller that knows early that it will compile can spawn one ahead with [`Standby::start`] and
//! hand it to [`Compiler::with_standby`], so that start-up overlaps its other work.
//!
//! # Cache
//! With [`Compiler::with_cache`], results (compiled files and skip verdicts) are stored in a
//! [`PycCache`] keyed by interpreter, image path, source sha256 and [`FORMAT_VERSION`]; a warm
//! rebuild reads them instead of compiling. Layer cache keys must include
//! [`InterpreterInfo::fingerprint`] (which contains [`FORMAT_VERSION`]).
//!
//! # Use from the pipeline
//! The call is blocking (run it on `spawn_blocking`). Give each call its own scratch directory;
//! the interpreter's working directory is `scratch/work`, and without a cache the `.pyc` files
//! are written to `scratch/out`. Append [`CompileOutput::pycs`] (sorted by image path) to the
//! layer after the sources.

mod cache;
mod marshal;
mod worker;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rbuild_runner::{PyVersion, Python};
use sha2::{Digest, Sha256};

pub use cache::PycCache;
pub use marshal::{CodeLayout, MarshalError, check_marshal, normalize_marshal};

use cache::CacheHit;
use worker::{Failure, Reply, Worker, describe_status};

/// Version of the bytes this crate produces for a given interpreter and source (the `.pyc`
/// layout, the normalisation, the compile flags). Bumped whenever they change; part of the
/// [`PycCache`] key and of [`InterpreterInfo::fingerprint`], which layer cache keys include.
/// 2: workers intern every one-character string first (`worker.py`), which changes the type byte
/// of such constants in some files.
pub const FORMAT_VERSION: u32 = 2;

/// The 16-byte header of a *timestamp-based* `.pyc` (PEP 552 flags `0`, as `compileall` and
/// CPython's own installation write them) for a source of `source_mtime` seconds and
/// `source_size` bytes, both kept modulo 2³² as the interpreter compares them: the import
/// system loads the file only while the source it finds has that mtime and size, and compiles
/// the source otherwise. For files this crate does not own (a base image's standard library,
/// which a rebase may replace), where an unchecked-hash `.pyc` could outlive its source. The
/// body after the header is the same as in the unchecked-hash files [`Compiler::compile`] writes.
pub fn timestamp_header(magic: [u8; 4], source_mtime: u64, source_size: u64) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[..4].copy_from_slice(&magic);
    h[8..12].copy_from_slice(&((source_mtime & 0xFFFF_FFFF) as u32).to_le_bytes());
    h[12..].copy_from_slice(&((source_size & 0xFFFF_FFFF) as u32).to_le_bytes());
    h
}

/// One `.py` file to compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Absolute path of the `.py` file inside the image (becomes `co_filename`).
    pub image_path: String,
    /// Where rbuild can read the file now.
    pub host_path: PathBuf,
}

/// What the target interpreter says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterpreterInfo {
    /// `major.minor`.
    pub version: PyVersion,
    /// `sys.implementation.cache_tag`, e.g. `cpython-311`.
    pub cache_tag: String,
    /// `importlib.util.MAGIC_NUMBER`.
    pub magic: [u8; 4],
    /// `sys.version` (full version, build date, compiler): the compiler's exact identity.
    pub sys_version: String,
}

impl InterpreterInfo {
    /// A stable one-line description of everything the `.pyc` bytes depend on besides the
    /// sources, for layer cache keys: `rbuild-pyc/1 cpython-311 a70d0d0a 3.11.2 (main, …)`.
    pub fn fingerprint(&self) -> String {
        format!(
            "rbuild-pyc/{FORMAT_VERSION} {} {} {}",
            self.cache_tag,
            hex::encode(self.magic),
            self.sys_version.replace('\n', " ")
        )
    }
}

/// One compiled file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledPyc {
    /// The source's path in the image.
    pub source_image_path: String,
    /// Where the `.pyc` goes in the image (`…/__pycache__/<stem>.<tag>.pyc`).
    pub pyc_image_path: String,
    /// The `.pyc` on disk: in the cache when one is used, else under `scratch/out`.
    pub file: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it came from the cache.
    pub reused: bool,
}

/// A source that was not compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSource {
    /// The source's path in the image.
    pub image_path: String,
    /// Why (`SyntaxError: invalid syntax (x.py, line 3)`).
    pub reason: String,
}

/// The result of [`Compiler::compile`].
#[derive(Debug, Clone)]
pub struct CompileOutput {
    /// Compiled files, sorted by [`CompiledPyc::pyc_image_path`].
    pub pycs: Vec<CompiledPyc>,
    /// Sources that do not compile, sorted by image path.
    pub skipped: Vec<SkippedSource>,
    /// Sources sent to the interpreter in this call.
    pub compiled: usize,
    /// Sources answered from the cache (compiled files and skip verdicts).
    pub reused: usize,
    /// The interpreter that compiled (or would have compiled) them.
    pub interpreter: InterpreterInfo,
}

/// Why bytecode could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum BytecodeError {
    /// A source's image path is not an absolute `.py` path.
    #[error(
        "cannot compile {image_path}: {reason} (bytecode sources need an absolute image path ending in .py)"
    )]
    InvalidSource {
        /// The offending path.
        image_path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Two sources claim the same image path.
    #[error(
        "two sources for {image_path} in one bytecode compile: {first} and {second}; each image path may appear once"
    )]
    DuplicateSource {
        /// The image path.
        image_path: String,
        /// The first host path.
        first: PathBuf,
        /// The second host path.
        second: PathBuf,
    },
    /// A source could not be read.
    #[error("cannot read {path} (source of {image_path}) for bytecode compilation: {source}")]
    ReadSource {
        /// Host path.
        path: PathBuf,
        /// Image path.
        image_path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The interpreter's version has no known bytecode layout.
    #[error(
        "{interpreter} is Python {version}; rbuild compiles bytecode for CPython 3.8 to 3.14 only: turn bytecode off with --no-compile-bytecode"
    )]
    Unsupported {
        /// The interpreter.
        interpreter: String,
        /// Its version.
        version: String,
    },
    /// The interpreter could not be started.
    #[error(
        "cannot start {interpreter} to compile bytecode: {source} (turn bytecode off with --no-compile-bytecode)"
    )]
    Spawn {
        /// The interpreter.
        interpreter: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A worker exceeded the time limit and was killed.
    #[error(
        "{interpreter} did not finish compiling bytecode within {limit:?} and was killed {during}; last stderr lines:\n{stderr}"
    )]
    TimedOut {
        /// The interpreter.
        interpreter: String,
        /// The limit.
        limit: Duration,
        /// `while compiling /app/x.py` / `while starting`.
        during: String,
        /// Its last stderr lines.
        stderr: String,
    },
    /// A worker exited or closed its pipes unexpectedly.
    #[error("{interpreter} {status} {during} (bytecode worker); last stderr lines:\n{stderr}")]
    Died {
        /// The interpreter.
        interpreter: String,
        /// `exited with status 3` / `was killed by signal 11`.
        status: String,
        /// `while compiling /app/x.py` / `while starting`.
        during: String,
        /// Its last stderr lines.
        stderr: String,
    },
    /// A worker wrote something that is not the protocol.
    #[error(
        "{interpreter} sent {detail} {during} instead of bytecode (is it really a Python interpreter?); last stderr lines:\n{stderr}"
    )]
    Garbage {
        /// The interpreter.
        interpreter: String,
        /// What was wrong.
        detail: String,
        /// `while compiling /app/x.py` / `while starting`.
        during: String,
        /// Its last stderr lines.
        stderr: String,
    },
    /// A worker reported an internal error (e.g. `marshal.dumps` failed).
    #[error("{interpreter} failed {during}: {message}; last stderr lines:\n{stderr}")]
    Internal {
        /// The interpreter.
        interpreter: String,
        /// `while compiling /app/x.py`.
        during: String,
        /// Its message.
        message: String,
        /// Its last stderr lines.
        stderr: String,
    },
    /// A worker's answer is not a `.pyc` of the expected interpreter.
    #[error("{interpreter} produced an invalid .pyc for {image_path}: {detail}")]
    BadPyc {
        /// The interpreter.
        interpreter: String,
        /// The source's image path.
        image_path: String,
        /// What is wrong.
        detail: String,
    },
    /// Another worker of the same interpreter reports something else than the first.
    #[error(
        "{interpreter} reports {found} but the compile was set up for {expected}; clear the bytecode cache settings or the interpreter info"
    )]
    InterpreterMismatch {
        /// The interpreter.
        interpreter: String,
        /// What was expected.
        expected: String,
        /// What it said.
        found: String,
    },
    /// An output or cache file could not be written.
    #[error("cannot write bytecode file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The image path of the `.pyc` for the source at `image_path`:
/// `/app/pkg/mod.py` → `/app/pkg/__pycache__/mod.cpython-311.pyc`. `None` when `image_path` is
/// not a module file name (`/app/.py`, no `.py` suffix).
pub fn pyc_image_path(image_path: &str, cache_tag: &str) -> Option<String> {
    let (dir, name) = image_path.rsplit_once('/')?;
    let stem = name.strip_suffix(".py")?;
    if stem.is_empty() {
        return None;
    }
    Some(format!("{dir}/__pycache__/{stem}.{cache_tag}.pyc"))
}

/// Test-only knobs (not part of the supported API).
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// Python code each worker runs before its first compile (imports, compiles of other code).
    pub prelude: Option<String>,
    /// Deal the sources in reverse image-path order.
    pub reverse: bool,
    /// Keep the interpreter's raw marshal output (to show the normalisation matters).
    pub raw: bool,
}

/// Compiles `.py` files with the target interpreter; see the crate docs.
pub struct Compiler {
    python: Arc<dyn Python>,
    workers: usize,
    cache: Option<PycCache>,
    info: OnceLock<InterpreterInfo>,
    /// A worker started ahead of need ([`Compiler::with_standby`]), taken by the first compile
    /// that has something to send.
    standby: Mutex<Option<Standby>>,
    test: TestOptions,
}

/// A worker started ahead of need: the target interpreter running the compile script, spawned
/// (not waited for) by [`Standby::start`] so that its start-up overlaps other work, e.g. the
/// registry round trips of a build. Give it to [`Compiler::with_standby`]; the first compile that
/// has a source to send reads its start-up message and uses it if it is the compiler's
/// interpreter (the same [`InterpreterInfo`]). Dropping it kills the interpreter (its whole
/// process group) and removes its scratch directory.
pub struct Standby {
    worker: Worker,
}

impl Standby {
    /// Spawns `python` with the compile script in a new scratch directory under `tmp_parent`
    /// (same confinement, environment and time limit as any worker: the deadline runs from now).
    pub fn start(python: &dyn Python, tmp_parent: &Path) -> Result<Standby, BytecodeError> {
        let write = |source| BytecodeError::Write {
            path: tmp_parent.to_owned(),
            source,
        };
        fs::create_dir_all(tmp_parent).map_err(write)?;
        let scratch = tempfile::Builder::new()
            .prefix("bytecode-standby-")
            .tempdir_in(tmp_parent)
            .map_err(write)?;
        let work = Compiler::work_dir(scratch.path())?;
        let mut worker = Worker::spawn(python, &work, &[])
            .map_err(|f| failure(python.describe(), f, "while starting"))?;
        worker.keep_scratch(scratch);
        Ok(Standby { worker })
    }
}

/// What one worker produced for one source.
enum Outcome {
    Pyc { file: PathBuf, size: u64 },
    Skipped(String),
}

struct Job {
    index: usize,
    image_path: String,
    host_path: PathBuf,
    key: Option<String>,
}

impl Compiler {
    /// A compiler using `python` with up to `workers` processes (at least one).
    pub fn new(python: Arc<dyn Python>, workers: usize) -> Compiler {
        Compiler {
            python,
            workers: workers.max(1),
            cache: None,
            info: OnceLock::new(),
            standby: Mutex::new(None),
            test: TestOptions::default(),
        }
    }

    /// Reuses and stores results in `cache`.
    pub fn with_cache(mut self, cache: PycCache) -> Compiler {
        self.cache = Some(cache);
        self
    }

    /// States what the interpreter is (as an earlier [`Compiler::interpreter_info`] reported,
    /// e.g. remembered per base image), so a fully cached compile starts no process. Workers
    /// that do start check it and fail on a mismatch.
    pub fn with_interpreter_info(self, info: InterpreterInfo) -> Compiler {
        let _ = self.info.set(info);
        self
    }

    /// Compiles with `standby` (see [`Standby`]) instead of starting the first worker, when the
    /// interpreter it runs says it is this compiler's interpreter; otherwise it is killed and a
    /// worker is started as usual. A compiler that never compiles anything kills it when dropped.
    pub fn with_standby(self, standby: Standby) -> Compiler {
        *self.standby.lock().expect("standby lock") = Some(standby);
        self
    }

    #[doc(hidden)]
    pub fn with_test_options(mut self, test: TestOptions) -> Compiler {
        self.test = test;
        self
    }

    /// What the interpreter is; starts it once (in `scratch/work`) unless already known.
    pub fn interpreter_info(&self, scratch: &Path) -> Result<InterpreterInfo, BytecodeError> {
        if let Some(info) = self.info.get() {
            return Ok(info.clone());
        }
        let (info, worker) = self.start_worker(scratch, "while starting")?;
        drop(worker);
        Ok(self.info.get_or_init(|| info).clone())
    }

    fn describe(&self) -> String {
        self.python.describe()
    }

    fn work_dir(scratch: &Path) -> Result<PathBuf, BytecodeError> {
        let dir = scratch.join("work");
        fs::create_dir_all(&dir).map_err(|source| BytecodeError::Write {
            path: dir.clone(),
            source,
        })?;
        Ok(dir)
    }

    fn failure(&self, f: Failure, during: &str) -> BytecodeError {
        failure(self.describe(), f, during)
    }

    /// The standby worker, when there is one and it runs the interpreter described by `info`
    /// (another one is killed); reads its start-up message (normally sent long before). A
    /// standby that fails to start is this interpreter failing: its error is returned (starting
    /// another would only wait for the time limit again).
    fn take_standby(&self, info: &InterpreterInfo) -> Result<Option<Worker>, BytecodeError> {
        let Some(Standby { mut worker }) = self.standby.lock().ok().and_then(|mut g| g.take())
        else {
            return Ok(None);
        };
        let hello = worker
            .hello()
            .map_err(|f| self.failure(f, "while starting"))?;
        let same = parse_version(&hello.version) == Some(info.version)
            && hello.cache_tag == info.cache_tag
            && hello.magic == info.magic
            && hello.sys_version == info.sys_version;
        Ok(same.then_some(worker))
    }

    /// Starts a worker and reads its hello; checks it against the known info.
    fn start_worker(
        &self,
        scratch: &Path,
        during: &str,
    ) -> Result<(InterpreterInfo, Worker), BytecodeError> {
        let work = Self::work_dir(scratch)?;
        let mut env = Vec::new();
        if let Some(p) = &self.test.prelude {
            env.push(("RBUILD_BYTECODE_TEST_PRELUDE".to_owned(), p.clone()));
        }
        let mut worker = Worker::spawn(self.python.as_ref(), &work, &env)
            .map_err(|f| self.failure(f, during))?;
        let hello = worker.hello().map_err(|f| self.failure(f, during))?;
        let version = parse_version(&hello.version).ok_or_else(|| BytecodeError::Garbage {
            interpreter: self.describe(),
            detail: format!("a version that is not major.minor ({:?})", hello.version),
            during: during.to_owned(),
            stderr: String::new(),
        })?;
        let info = InterpreterInfo {
            version,
            cache_tag: hello.cache_tag,
            magic: hello.magic,
            sys_version: hello.sys_version,
        };
        if let Some(known) = self.info.get()
            && known != &info
        {
            return Err(BytecodeError::InterpreterMismatch {
                interpreter: self.describe(),
                expected: known.fingerprint(),
                found: info.fingerprint(),
            });
        }
        Ok((info, worker))
    }

    /// Compiles `sources`; see the crate docs. Blocking.
    pub fn compile(
        &self,
        scratch: &Path,
        sources: &[Source],
    ) -> Result<CompileOutput, BytecodeError> {
        // Validate and order by image path.
        let mut order: Vec<usize> = (0..sources.len()).collect();
        order.sort_by(|&a, &b| sources[a].image_path.cmp(&sources[b].image_path));
        for pair in order.windows(2) {
            let (a, b) = (&sources[pair[0]], &sources[pair[1]]);
            if a.image_path == b.image_path {
                return Err(BytecodeError::DuplicateSource {
                    image_path: a.image_path.clone(),
                    first: a.host_path.clone(),
                    second: b.host_path.clone(),
                });
            }
        }
        for s in sources {
            let reason = if !s.image_path.starts_with('/') {
                Some("not absolute")
            } else if !s.image_path.ends_with(".py") {
                Some("not a .py file")
            } else if s.image_path.contains('\0') {
                Some("contains a NUL byte")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(BytecodeError::InvalidSource {
                    image_path: s.image_path.clone(),
                    reason: reason.into(),
                });
            }
        }

        // Know the interpreter; keep the probing worker to compile with.
        let mut first_worker = None;
        let info = match self.info.get() {
            Some(info) => info.clone(),
            None if sources.is_empty() => self.interpreter_info(scratch)?,
            None => {
                let (info, w) = self.start_worker(scratch, "while starting")?;
                first_worker = Some(w);
                self.info.get_or_init(|| info).clone()
            }
        };
        let layout =
            CodeLayout::for_version(info.version).ok_or_else(|| BytecodeError::Unsupported {
                interpreter: self.describe(),
                version: info.version.to_string(),
            })?;

        // Cache lookups.
        let mut outcomes: Vec<Option<(Outcome, bool)>> = (0..sources.len()).map(|_| None).collect();
        let mut jobs = Vec::new();
        let mut reused = 0;
        for &i in &order {
            let s = &sources[i];
            if pyc_image_path(&s.image_path, &info.cache_tag).is_none() {
                outcomes[i] = Some((Outcome::Skipped("not a module file name".into()), false));
                continue;
            }
            let key = match &self.cache {
                Some(cache) if !self.test.raw => {
                    let digest =
                        sha256_file(&s.host_path).map_err(|source| BytecodeError::ReadSource {
                            path: s.host_path.clone(),
                            image_path: s.image_path.clone(),
                            source,
                        })?;
                    let key = PycCache::key(&info, &s.image_path, &digest);
                    match cache.get(&key, &info, layout) {
                        Some(CacheHit::Pyc(file)) => {
                            let size = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
                            outcomes[i] = Some((Outcome::Pyc { file, size }, true));
                            reused += 1;
                            continue;
                        }
                        Some(CacheHit::Skipped(reason)) => {
                            outcomes[i] = Some((Outcome::Skipped(reason), true));
                            reused += 1;
                            continue;
                        }
                        None => Some(key),
                    }
                }
                _ => None,
            };
            jobs.push(Job {
                index: i,
                image_path: s.image_path.clone(),
                host_path: s.host_path.clone(),
                key,
            });
        }
        if self.test.reverse {
            jobs.reverse();
        }
        let compiled = jobs.len();
        if first_worker.is_none() && !jobs.is_empty() {
            first_worker = self.take_standby(&info)?;
        }

        if !jobs.is_empty() {
            let out_dir = scratch.join("out");
            if self.cache.is_none() || self.test.raw {
                fs::create_dir_all(&out_dir).map_err(|source| BytecodeError::Write {
                    path: out_dir.clone(),
                    source,
                })?;
            }
            let n = self.workers.min(jobs.len());
            let mut parts: Vec<Vec<Job>> = (0..n).map(|_| Vec::new()).collect();
            for (k, job) in jobs.into_iter().enumerate() {
                parts[k % n].push(job);
            }
            let abort = AtomicBool::new(false);
            let first_worker = Mutex::new(first_worker);
            let results: Vec<Result<Vec<(usize, Outcome)>, BytecodeError>> =
                std::thread::scope(|scope| {
                    let handles: Vec<_> = parts
                        .into_iter()
                        .enumerate()
                        .map(|(w, part)| {
                            let abort = &abort;
                            let first_worker = &first_worker;
                            let out_dir = &out_dir;
                            scope.spawn(move || {
                                let reuse = if w == 0 {
                                    first_worker.lock().ok().and_then(|mut g| g.take())
                                } else {
                                    None
                                };
                                let r =
                                    self.run_worker(scratch, reuse, part, layout, out_dir, abort);
                                if r.is_err() {
                                    abort.store(true, Ordering::SeqCst);
                                }
                                r
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("bytecode worker thread panicked"))
                        .collect()
                });
            let mut first_err = None;
            for r in results {
                match r {
                    Ok(done) => {
                        for (i, o) in done {
                            outcomes[i] = Some((o, false));
                        }
                    }
                    Err(e) => {
                        // Prefer a real failure over the "aborted because another failed" ones.
                        if first_err.is_none() {
                            first_err = Some(e);
                        }
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
        } else {
            drop(first_worker);
        }

        let mut pycs = Vec::new();
        let mut skipped = Vec::new();
        for &i in &order {
            let s = &sources[i];
            match outcomes[i].take() {
                Some((Outcome::Pyc { file, size }, was_reused)) => pycs.push(CompiledPyc {
                    source_image_path: s.image_path.clone(),
                    pyc_image_path: pyc_image_path(&s.image_path, &info.cache_tag)
                        .expect("checked above"),
                    file,
                    size,
                    reused: was_reused,
                }),
                Some((Outcome::Skipped(reason), _)) => skipped.push(SkippedSource {
                    image_path: s.image_path.clone(),
                    reason,
                }),
                None => unreachable!("every source has an outcome when no worker failed"),
            }
        }
        pycs.sort_by(|a, b| a.pyc_image_path.cmp(&b.pyc_image_path));
        Ok(CompileOutput {
            pycs,
            skipped,
            compiled,
            reused,
            interpreter: info,
        })
    }

    fn run_worker(
        &self,
        scratch: &Path,
        reuse: Option<Worker>,
        jobs: Vec<Job>,
        layout: CodeLayout,
        out_dir: &Path,
        abort: &AtomicBool,
    ) -> Result<Vec<(usize, Outcome)>, BytecodeError> {
        let info = self.info.get().expect("known before workers start").clone();
        let mut worker = match reuse {
            Some(w) => w,
            None => self.start_worker(scratch, "while starting")?.1,
        };
        let mut done = Vec::with_capacity(jobs.len());
        for job in jobs {
            if abort.load(Ordering::SeqCst) {
                // Another worker failed; its error is the one reported.
                return Ok(done);
            }
            let during = format!("while compiling {}", job.image_path);
            let source = fs::read(&job.host_path).map_err(|source| BytecodeError::ReadSource {
                path: job.host_path.clone(),
                image_path: job.image_path.clone(),
                source,
            })?;
            let reply = worker
                .compile(&job.image_path, &source)
                .map_err(|f| self.failure(f, &during))?;
            let outcome = match reply {
                Reply::Skipped(reason) => {
                    if let (Some(cache), Some(key)) = (&self.cache, &job.key) {
                        cache
                            .put_skip(key, &reason)
                            .map_err(|source| BytecodeError::Write {
                                path: cache.dir().to_owned(),
                                source,
                            })?;
                    }
                    Outcome::Skipped(reason)
                }
                Reply::Pyc(raw) => {
                    let bad = |detail: String| BytecodeError::BadPyc {
                        interpreter: self.describe(),
                        image_path: job.image_path.clone(),
                        detail,
                    };
                    if raw.len() <= 16 || raw[..4] != info.magic || raw[4..8] != [1, 0, 0, 0] {
                        return Err(bad("wrong header".into()));
                    }
                    let data = if self.test.raw {
                        raw
                    } else {
                        let body = normalize_marshal(&raw[16..], layout)
                            .map_err(|e| bad(e.to_string()))?;
                        let mut data = raw[..16].to_vec();
                        data.extend_from_slice(&body);
                        data
                    };
                    let size = data.len() as u64;
                    let file = match (&self.cache, &job.key) {
                        (Some(cache), Some(key)) => {
                            cache
                                .put_pyc(key, &data)
                                .map_err(|source| BytecodeError::Write {
                                    path: cache.dir().to_owned(),
                                    source,
                                })?
                        }
                        _ => {
                            let path = out_dir.join(format!("{:06}.pyc", job.index));
                            fs::write(&path, &data).map_err(|source| BytecodeError::Write {
                                path: path.clone(),
                                source,
                            })?;
                            path
                        }
                    };
                    Outcome::Pyc { file, size }
                }
            };
            done.push((job.index, outcome));
        }
        worker
            .finish()
            .map_err(|f| self.failure(f, "after its last file"))?;
        Ok(done)
    }
}

/// A worker failure as the error naming `interpreter`.
fn failure(interpreter: String, f: Failure, during: &str) -> BytecodeError {
    let during = during.to_owned();
    match f {
        Failure::Spawn(source) => BytecodeError::Spawn {
            interpreter,
            source,
        },
        Failure::TimedOut { limit, stderr } => BytecodeError::TimedOut {
            interpreter,
            limit,
            during,
            stderr,
        },
        Failure::Died { status, stderr } => BytecodeError::Died {
            interpreter,
            status: describe_status(status),
            during,
            stderr,
        },
        Failure::Garbage { detail, stderr } => BytecodeError::Garbage {
            interpreter,
            detail,
            during,
            stderr,
        },
        Failure::Internal { message, stderr } => BytecodeError::Internal {
            interpreter,
            during,
            message,
            stderr,
        },
    }
}

fn parse_version(s: &str) -> Option<PyVersion> {
    let (major, minor) = s.split_once('.')?;
    Some(PyVersion {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
    })
}

fn sha256_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyc_paths_follow_importlib() {
        let p = |s| pyc_image_path(s, "cpython-311");
        assert_eq!(
            p("/app/pkg/mod.py").as_deref(),
            Some("/app/pkg/__pycache__/mod.cpython-311.pyc")
        );
        assert_eq!(
            p("/a/foo.bar.py").as_deref(),
            Some("/a/__pycache__/foo.bar.cpython-311.pyc")
        );
        assert_eq!(p("/app/.py"), None);
        assert_eq!(p("/app/x.pyi"), None);
    }

    #[test]
    fn the_timestamp_header_is_the_one_py_compile_writes() {
        // The build machine's CPython writes a timestamp-based `.pyc` for a source of a known
        // mtime and size; the header made here for the same facts must be byte for byte its.
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("m.py");
        let source = b"x = 1\n";
        fs::write(&src, source).unwrap();
        let mtime = 1_700_000_123u64;
        fs::File::options()
            .write(true)
            .open(&src)
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(mtime))
            .unwrap();
        let status = std::process::Command::new("python3")
            .current_dir(dir.path())
            .args([
                "-c",
                "import py_compile as p; p.compile('m.py', cfile='m.pyc', doraise=True, \
                 invalidation_mode=p.PycInvalidationMode.TIMESTAMP)",
            ])
            .status()
            .unwrap();
        assert!(status.success());
        let pyc = fs::read(dir.path().join("m.pyc")).unwrap();
        let magic: [u8; 4] = pyc[..4].try_into().unwrap();
        assert_eq!(
            timestamp_header(magic, mtime, source.len() as u64),
            pyc[..16]
        );
        // Modulo 2^32, as the interpreter compares them.
        let h = timestamp_header(magic, (1 << 32) + 5, (1 << 32) + 7);
        assert_eq!(&h[4..], &[0, 0, 0, 0, 5, 0, 0, 0, 7, 0, 0, 0]);
    }

    #[test]
    fn versions_parse() {
        assert_eq!(
            parse_version("3.11"),
            Some(PyVersion {
                major: 3,
                minor: 11
            })
        );
        assert_eq!(parse_version("3"), None);
        assert_eq!(parse_version("x.y"), None);
    }
}
