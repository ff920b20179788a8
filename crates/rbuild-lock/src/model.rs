//! The format-independent result: what to install for one target.

use std::path::PathBuf;

use rbuild_oci::Digest;

/// The lockfile formats rbuild reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockFormat {
    /// `uv.lock`.
    UvLock,
    /// `pylock.toml` / `pylock.NAME.toml` (PEP 751).
    Pylock,
    /// `poetry.lock` (Poetry 1.x lock-version 1.x/2.0 and Poetry 2.x lock-version 2.1).
    PoetryLock,
    /// A pip requirements file as `uv pip compile`, `pip-compile` or `uv export` write it.
    Requirements,
    /// `Pipfile.lock` (pipenv, pipfile-spec 6): hashes per package, like a requirements file.
    Pipfile,
    /// `pdm.lock` (PDM, lock_version 4.x).
    Pdm,
}

impl LockFormat {
    /// The usual file name (`requirements.txt` for [`LockFormat::Requirements`]).
    pub fn file_name(self) -> &'static str {
        match self {
            LockFormat::UvLock => "uv.lock",
            LockFormat::Pylock => "pylock.toml",
            LockFormat::PoetryLock => "poetry.lock",
            LockFormat::Requirements => "requirements.txt",
            LockFormat::Pipfile => "Pipfile.lock",
            LockFormat::Pdm => "pdm.lock",
        }
    }

    /// Tells the format from a file name: `uv.lock`, `pylock.toml`/`pylock.NAME.toml`, `poetry.lock`,
    /// `Pipfile.lock`, `pdm.lock`; anything else ending in `.txt` is a requirements file.
    pub fn from_path(path: &std::path::Path) -> Option<LockFormat> {
        let name = path.file_name()?.to_str()?;
        if name == "uv.lock" {
            Some(LockFormat::UvLock)
        } else if name == "poetry.lock" {
            Some(LockFormat::PoetryLock)
        } else if name == "Pipfile.lock" {
            Some(LockFormat::Pipfile)
        } else if name == "pdm.lock" {
            Some(LockFormat::Pdm)
        } else if name == "pylock.toml"
            || (name.len() > 11
                && name.starts_with("pylock.")
                && name.ends_with(".toml")
                && !name["pylock.".len()..name.len() - ".toml".len()].contains('.'))
        {
            Some(LockFormat::Pylock)
        } else if name.ends_with(".txt") {
            Some(LockFormat::Requirements)
        } else {
            None
        }
    }
}

impl std::fmt::Display for LockFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockFormat::UvLock => "uv.lock",
            LockFormat::Pylock => "pylock.toml",
            LockFormat::PoetryLock => "poetry.lock",
            LockFormat::Requirements => "requirements file",
            LockFormat::Pipfile => "Pipfile.lock",
            LockFormat::Pdm => "pdm.lock",
        })
    }
}

/// Where a package's files come from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PackageSource {
    /// A package index (PEP 503/691 simple API). `url` is the index the lock names (a Poetry legacy
    /// source, uv's `registry`, pylock's `index`); `None` means the indexes the user configured, or
    /// PyPI (`https://pypi.org/simple`) by default.
    Index {
        /// The index base URL, e.g. `https://pypi.org/simple`.
        url: Option<String>,
    },
}

impl PackageSource {
    /// The index URL the lock names, if any.
    pub fn index_url(&self) -> Option<&str> {
        match self {
            PackageSource::Index { url } => url.as_deref(),
        }
    }
}

/// Whether a file is a wheel or a source distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A `.whl`.
    Wheel,
    /// Anything else (`.tar.gz`, `.zip`, …): rbuild never builds these.
    Sdist,
}

/// One distribution file of a locked package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockedFile {
    /// The file name (`idna-3.20-py3-none-any.whl`), never containing a path separator.
    pub filename: String,
    /// Wheel or sdist.
    pub kind: FileKind,
    /// Where to download it, when the lock says (uv.lock, pylock.toml). `None` for Poetry (and pylock
    /// `path` files): the index client finds the URL on the package's index by file name.
    pub url: Option<String>,
    /// A local file (pylock `path`, uv local registries), resolved against the lockfile's directory and
    /// guaranteed to stay inside it.
    pub path: Option<PathBuf>,
    /// The expected sha256, `None` only where the lock format allows it (a requirements file without
    /// any hash).
    pub sha256: Option<Digest>,
    /// The size in bytes, when the lock records it.
    pub size: Option<u64>,
}

/// One package to install, pinned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockedPackage {
    /// The PEP 503-normalized name (validated: no `/`, no `..`).
    pub name: String,
    /// The version exactly as locked (validated as PEP 440).
    pub version: String,
    /// Where its files come from.
    pub source: PackageSource,
    /// The files the lock lists (wheels and sdists). Empty for requirements files, which record only
    /// hashes: see [`LockedPackage::hashes`] and [`LockedPackage::with_index_files`].
    pub files: Vec<LockedFile>,
    /// For requirements files: the allowed sha256 hashes (pip's `--hash`); any file whose hash is one
    /// of these may be installed. Empty when the line has no hash. Empty for the other formats, whose
    /// hashes are per file.
    pub hashes: Vec<Digest>,
    /// Whether the files come with the lock (`true` for uv.lock, pylock.toml, poetry.lock) or must be
    /// listed from the index (`false` for requirements files).
    pub files_listed: bool,
    /// Whether [`LockedPackage::files`] came from the index ([`LockedPackage::with_index_files`]) rather
    /// than from the lock.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub files_from_index: bool,
    /// Wheels of exactly this name and version found in the user's `--find-links` directories
    /// ([`LockedPackage::with_find_links_files`]): [`crate::choose_wheel`] falls back to them only
    /// when no locked file fits the target (or the package is locked as sdist-only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub find_links_files: Vec<LockedFile>,
    /// Where the lock pins it (the file, and the line for requirements files), for messages;
    /// `None` when the reader does not say.
    #[serde(skip)]
    pub location: Option<crate::Location>,
}

impl LockedPackage {
    /// Whether a file the index lists may be installed for this package: its hash must be one of
    /// [`LockedPackage::hashes`] (when the lock has any), or match the hash of the same-named file in
    /// [`LockedPackage::files`].
    pub fn allows(&self, filename: &str, sha256: Option<&Digest>) -> bool {
        if self.files_listed {
            return self.files.iter().any(|f| {
                f.filename == filename && (f.sha256.is_none() || f.sha256.as_ref() == sha256)
            });
        }
        if self.hashes.is_empty() {
            return true;
        }
        sha256.is_some_and(|h| self.hashes.contains(h))
    }

    /// For a package from a requirements file: the same package with the files the index lists,
    /// keeping only those [`LockedPackage::allows`] (so when the lock has hashes, a file the index gives
    /// no hash for is dropped: it could not be verified). Then [`crate::choose_wheel`] can choose among
    /// them. For packages whose lock lists files this returns a clone.
    pub fn with_index_files(&self, index_files: Vec<LockedFile>) -> LockedPackage {
        let mut out = self.clone();
        if self.files_listed {
            return out;
        }
        out.files = index_files
            .into_iter()
            .filter(|f| self.allows(&f.filename, f.sha256.as_ref()))
            .collect();
        out.files_listed = true;
        out.files_from_index = true;
        out
    }

    /// The same package, offering the wheels of a `--find-links` directory as a fallback.
    ///
    /// A hash-pinned lock never lets a find-links wheel replace a locked file. But when none of the
    /// locked files fits the target (say, the lock has only x86_64 wheels and an sdist, and the user
    /// built the aarch64 wheel), the user's own directory is the trust anchor: a wheel there with
    /// exactly this normalized name and version is accepted, and [`crate::choose_wheel`] marks the
    /// result [`crate::WheelOrigin::FindLinks`]. Only wheels whose file name gives this name and
    /// version are kept (others are dropped here); each should carry its `path` (or a `file:` `url`)
    /// and, when known, the `sha256` of the file as read, so that the download verifies those bytes.
    pub fn with_find_links_files(&self, files: Vec<LockedFile>) -> LockedPackage {
        let mut out = self.clone();
        out.find_links_files = files
            .into_iter()
            .filter(|f| {
                f.kind == FileKind::Wheel
                    && rbuild_python::wheel_name::WheelFilename::parse(&f.filename).is_ok_and(|w| {
                        w.name == self.name
                            && crate::util::same_version(&w.version.to_string(), &self.version)
                    })
            })
            .collect();
        out
    }
}

/// The result of reading a lockfile for one target: what to install, in a stable order (sorted by
/// name), after evaluating markers, extras and groups.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lock {
    /// The format read.
    pub format: LockFormat,
    /// The lockfile.
    pub path: PathBuf,
    /// The packages to install, sorted by name, one per name.
    pub packages: Vec<LockedPackage>,
    /// `--index-url` from a requirements file (replaces the default index).
    pub index_url: Option<String>,
    /// `--extra-index-url` lines of a requirements file.
    pub extra_index_urls: Vec<String>,
    /// `--find-links` lines of a requirements file, as written.
    pub find_links: Vec<String>,
    /// `--no-index` in a requirements file.
    pub no_index: bool,
    /// Whether every file must be verified against a lock hash (always for uv.lock, pylock.toml and
    /// poetry.lock; for requirements files when any line has a hash, `--require-hashes` is in the file,
    /// or [`crate::ResolveOptions::require_hashes`]). When `false`, the index client takes hashes from the
    /// index and should warn.
    pub hashes_required: bool,
    /// Things the caller should show the user (e.g. "-e . skipped: the project goes in the app layer").
    pub notes: Vec<String>,
    /// Projects the lock installs from a directory (uv workspace members, `path` dependencies,
    /// Poetry `directory` sources), sorted by name. Their dependencies are in
    /// [`Lock::packages`]; the projects themselves are built from their source by the caller.
    /// The project in the lockfile's own directory is not among them.
    pub local_projects: Vec<LocalProject>,
}

/// A project the lock installs from a local directory (a workspace member, a path dependency).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LocalProject {
    /// The PEP 503-normalized name.
    pub name: String,
    /// The version the lock records, when it records one (a dynamic version has none).
    pub version: Option<String>,
    /// The directory as the lock writes it, relative to the lockfile's directory, with `/`
    /// separators (`packages/lib`). It may contain `..`: the caller decides whether it may leave
    /// the build context.
    pub path: String,
    /// Whether the lock asks for an editable install (`uv` `editable`, Poetry `develop = true`).
    /// Images get a regular install either way, as `uv sync --no-editable` does.
    pub editable: bool,
}

impl Lock {
    /// The package with this (normalized) name.
    pub fn get(&self, name: &str) -> Option<&LockedPackage> {
        self.packages
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.packages[i])
    }
}

/// What to extract, in addition to the default dependencies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolveOptions {
    /// Extras of the project (`--extra`): uv `optional-dependencies`, pylock `extras`, Poetry extras.
    pub extras: Vec<String>,
    /// Dependency groups (`--group`): uv `dependency-groups`/`dev-dependencies`, pylock
    /// `dependency-groups`, Poetry groups (`main` is always included).
    pub groups: Vec<String>,
    /// Refuse a requirements file without hashes (pip's `--require-hashes`).
    pub require_hashes: bool,
}
