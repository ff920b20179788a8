//! Lockfile readers: turn a lockfile and a target into the exact packages to install, with the files
//! (and hashes) to install them from.
//!
//! Six formats give one result type, [`Lock`]:
//!
//! | file | format | what is read |
//! |---|---|---|
//! | `uv.lock` | [`LockFormat::UvLock`] | the dependency graph walked from the project (`source = { editable = "." }` / `{ virtual = "." }`, else `[manifest] members`) |
//! | `pylock.toml`, `pylock.NAME.toml` | [`LockFormat::Pylock`] | PEP 751: every `[[packages]]` entry whose `marker` holds |
//! | `poetry.lock` | [`LockFormat::PoetryLock`] | lock-version 2.1: `groups` + `markers` per package; older: the graph walked from `pyproject.toml` |
//! | `Pipfile.lock` | [`LockFormat::Pipfile`] | the `default` section (and `develop` for the group `dev`), each entry's `markers` evaluated; hashes only, like a requirements file |
//! | `pdm.lock` | [`LockFormat::Pdm`] | `[[package]]` entries whose `groups` are selected (`default` + extras + groups) and whose `marker` holds |
//! | `requirements.txt` (any `*.txt`) | [`LockFormat::Requirements`] | `name==version ; marker --hash=…` lines, `-r`/`-c` includes |
//!
//! [`detect_lockfile`] looks in a directory in that order (uv.lock first). [`read_lock`] reads one for a
//! target described by its [`MarkerEnv`]: markers are evaluated for
//! the image, not for the machine running rbuild, so `pywin32 ; sys_platform == "win32"` is left out
//! and `uvloop ; sys_platform != "win32"` is kept. [`choose_wheel`] then picks, for each package, the
//! wheel pip would pick for the target's [`Tags`](rbuild_python::tags::Tags).
//!
//! ```no_run
//! use rbuild_lock::{ResolveOptions, choose_wheel, detect_lockfile, read_lock};
//! use rbuild_python::markers::MarkerEnv;
//! use rbuild_python::tags::{TagTarget, Tags};
//! use rbuild_python::target::{Libc, MajorMinor};
//!
//! let env = MarkerEnv::cpython_linux(MajorMinor::new(3, 11), Some("3.11.2"), "x86_64");
//! let tags = Tags::for_target(&TagTarget::new(MajorMinor::new(3, 11), Libc::glibc(2, 36), "x86_64"));
//! let path = detect_lockfile("app/".as_ref())?;
//! let lock = read_lock(&path, &env, &ResolveOptions { extras: vec!["cli".into()], ..Default::default() })?;
//! for pkg in &lock.packages {
//!     let wheel = choose_wheel(pkg, &tags)?; // requirements files: list the index's files first
//!     println!("{} {} {} {:?}", pkg.name, pkg.version, wheel.filename, wheel.url);
//! }
//! # Ok::<(), rbuild_lock::Error>(())
//! ```
//!
//! # What each format may contain
//!
//! rbuild installs wheels from package indexes (and local wheels inside the context). Everything else
//! is refused with an error naming the file (the line, for requirements files) and the package: VCS
//! (`git+https://…`), local paths to files and direct URLs, Poetry `git`/`file`/`url` sources, pylock
//! `vcs`/`directory`/`archive` entries. The project itself (`-e .` in a requirements file, the uv
//! root, pylock's `directory = { path = "." }`) is skipped with a note in [`Lock::notes`]: its source
//! goes in the app layer. Projects installed from other directories (uv workspace members, Poetry
//! `directory` sources) are listed in [`Lock::local_projects`] for the caller to build.
//!
//! Names are validated (PEP 508, no `/`, no `..`) before anything else is done with them, and versions
//! are parsed as PEP 440.
//!
//! # Selection
//!
//! [`ResolveOptions::extras`] and [`ResolveOptions::groups`] add the project's extras and dependency
//! groups to its default dependencies. Nothing is added implicitly: uv's default `dev` group is *not*
//! installed unless asked for (an image is not a development environment); Poetry's `main` group always
//! is; pylock's `default-groups` always are. Asking for an extra or group the lock does not know is an
//! error listing the ones it knows. A requirements file records one selection, so asking for extras or
//! groups with one is an error.
//!
//! # Hashes
//!
//! Hashes follow pip. uv.lock, pylock.toml, poetry.lock and pdm.lock need a sha256 for every file;
//! Pipfile.lock a sha256 for every package. In a
//! requirements file, once any requirement has a `--hash`, every one must (the error names the one
//! without); a file with no hashes at all is accepted ([`Lock::hashes_required`] is then `false`: the
//! index client takes the index's hashes and should warn) unless [`ResolveOptions::require_hashes`] or
//! `--require-hashes` in the file. Only sha256 is used; a requirement with only other algorithms is an
//! error.
//!
//! # Files and URLs
//!
//! uv.lock and pylock.toml give each file's URL; Poetry gives only file names and hashes, so
//! [`ChosenWheel::url`] is `None` and [`ChosenWheel::index`] names the package's source (or `None` for
//! PyPI/the configured index): the index client finds the URL by file name. Requirements files give only
//! hashes: [`LockedPackage::files_listed`] is `false`, and the index client lists the index's files and
//! calls [`LockedPackage::with_index_files`] before [`choose_wheel`].
//!
//! This crate does no network access.

mod error;
mod model;
mod pdm;
mod pipfile;
mod poetry;
mod pylock;
mod requirements;
mod util;
mod uv;
mod uv_fresh;
mod wheel;

use std::path::{Path, PathBuf};

pub use error::{Error, Location, Result};
pub use model::{
    FileKind, LocalProject, Lock, LockFormat, LockedFile, LockedPackage, PackageSource,
    ResolveOptions,
};
pub use rbuild_python::markers::MarkerEnv;
pub use uv_fresh::check_uv_lock_fresh;
pub use wheel::{ChosenWheel, SdistBuild, WheelOrigin, choose_sdist, choose_wheel};

/// The lockfile names [`detect_lockfile`] looks for, in order.
pub const LOCKFILE_NAMES: [&str; 6] = [
    "uv.lock",
    "pylock.toml",
    "poetry.lock",
    "Pipfile.lock",
    "pdm.lock",
    "requirements.txt",
];

/// The subdirectories searched for requirements files when the top level has no lockfile.
const REQUIREMENTS_DIRS: [&str; 2] = ["requirements", "requirements.d"];

/// Finds the lockfile in a context directory: the first of `uv.lock`, `pylock.toml`, `poetry.lock`,
/// `Pipfile.lock`, `pdm.lock`, `requirements.txt` that is a file.
///
/// Without one:
/// - requirements files in `requirements/` (or `requirements.d/`) give
///   [`Error::LockfileElsewhere`], suggesting `--lock requirements/main.txt` (or `prod.txt`, …);
/// - a `pyproject.toml` that declares dependencies (`[project] dependencies`, or Poetry's
///   `[tool.poetry.dependencies]` beyond `python`) gives [`Error::UnlockedProject`]: they would not
///   be installed;
/// - otherwise [`Error::NoLockfile`]: the context has no dependencies to install.
pub fn detect_lockfile(context_dir: &Path) -> Result<PathBuf> {
    for name in LOCKFILE_NAMES {
        let p = context_dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    let mut candidates = Vec::new();
    for sub in REQUIREMENTS_DIRS {
        let Ok(entries) = std::fs::read_dir(context_dir.join(sub)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".txt") && e.path().is_file() {
                candidates.push(Path::new(sub).join(name));
            }
        }
    }
    if !candidates.is_empty() {
        candidates.sort();
        let suggested = [
            "main.txt",
            "prod.txt",
            "production.txt",
            "base.txt",
            "requirements.txt",
        ]
        .iter()
        .find_map(|want| {
            candidates
                .iter()
                .find(|c| c.file_name().is_some_and(|n| n == *want))
        })
        .unwrap_or(&candidates[0])
        .clone();
        return Err(Error::LockfileElsewhere {
            dir: context_dir.to_path_buf(),
            candidates,
            suggested,
        });
    }
    let pyproject = context_dir.join("pyproject.toml");
    let dependencies = declared_dependencies(&pyproject);
    if !dependencies.is_empty() {
        return Err(Error::UnlockedProject {
            pyproject,
            dependencies,
        });
    }
    Err(Error::NoLockfile {
        dir: context_dir.to_path_buf(),
    })
}

/// The dependencies a pyproject.toml declares (`[project] dependencies`, else Poetry's
/// `[tool.poetry.dependencies]` without `python`); empty when there is no readable file.
fn declared_dependencies(pyproject: &Path) -> Vec<String> {
    let Ok(text) = util::read_text(pyproject) else {
        return Vec::new();
    };
    let Ok(v) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let strings = |a: &toml::Value| -> Vec<String> {
        a.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let project = v
        .get("project")
        .and_then(|p| p.get("dependencies"))
        .map(strings)
        .unwrap_or_default();
    if !project.is_empty() {
        return project;
    }
    v.get("tool")
        .and_then(|t| t.get("poetry"))
        .and_then(|p| p.get("dependencies"))
        .and_then(|d| d.as_table())
        .map(|t| {
            t.keys()
                .filter(|k| k.as_str() != "python")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a lockfile for one target: the format comes from the file name (see
/// [`LockFormat::from_path`]); use [`read_lock_as`] to force one.
///
/// A `uv.lock` with a `pyproject.toml` beside it is first checked to be up to date with it
/// ([`check_uv_lock_fresh`]): a stale lock is [`Error::StaleLock`], as `uv sync --locked` refuses it.
pub fn read_lock(path: &Path, env: &MarkerEnv, options: &ResolveOptions) -> Result<Lock> {
    let format = LockFormat::from_path(path).ok_or_else(|| Error::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    if format == LockFormat::UvLock {
        let pyproject = path
            .parent()
            .unwrap_or(Path::new(""))
            .join("pyproject.toml");
        if pyproject.is_file() {
            check_uv_lock_fresh(path, &pyproject)?;
        }
    }
    read_lock_as(format, path, env, options)
}

/// Reads a lockfile in the given format for one target.
pub fn read_lock_as(
    format: LockFormat,
    path: &Path,
    env: &MarkerEnv,
    options: &ResolveOptions,
) -> Result<Lock> {
    match format {
        LockFormat::UvLock => uv::read(path, env, options),
        LockFormat::Pylock => pylock::read(path, env, options),
        LockFormat::PoetryLock => poetry::read(path, env, options),
        LockFormat::Requirements => requirements::read(path, env, options),
        LockFormat::Pipfile => pipfile::read(path, env, options),
        LockFormat::Pdm => pdm::read(path, env, options),
    }
}

/// Reads lockfile text for one target, as [`read_lock_as`] does with the file's content. `path` names
/// the file in messages and anchors relative paths (requirements includes, local wheels, Poetry's
/// `pyproject.toml`).
pub fn read_lock_str(
    format: LockFormat,
    path: &Path,
    text: &str,
    env: &MarkerEnv,
    options: &ResolveOptions,
) -> Result<Lock> {
    match format {
        LockFormat::UvLock => uv::read_str(path, text, env, options),
        LockFormat::Pylock => pylock::read_str(path, text, env, options),
        LockFormat::PoetryLock => poetry::read_str(path, text, env, options),
        LockFormat::Requirements => requirements::read_str(path, text, env, options),
        LockFormat::Pipfile => pipfile::read_str(path, text, env, options),
        LockFormat::Pdm => pdm::read_str(path, text, env, options),
    }
}

impl Lock {
    /// Chooses the wheel of every package ([`choose_wheel`]), in package order; the first failure is
    /// returned.
    pub fn choose_wheels(&self, tags: &rbuild_python::tags::Tags) -> Result<Vec<ChosenWheel>> {
        self.packages
            .iter()
            .map(|p| choose_wheel(p, tags))
            .collect()
    }
}
