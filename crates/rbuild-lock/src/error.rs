//! The one error type of this crate.

use std::fmt;
use std::path::PathBuf;

/// Where in a lockfile something was found: the file, and for line-oriented formats the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The lockfile (or included requirements file).
    pub path: PathBuf,
    /// The 1-based line, for requirements files.
    pub line: Option<usize>,
}

impl Location {
    /// A whole-file location.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Location {
            path: path.into(),
            line: None,
        }
    }

    /// A line of a file.
    pub fn line(path: impl Into<PathBuf>, line: usize) -> Self {
        Location {
            path: path.into(),
            line: Some(line),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// Everything that can go wrong reading a lockfile or choosing a wheel. Each message names the file
/// (and line, for requirements files) or the package, and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No lockfile was found in the context directory.
    #[error(
        "no lockfile in {}: looked for uv.lock, pylock.toml, poetry.lock, Pipfile.lock, pdm.lock and \
         requirements.txt; \
         create one (e.g. `uv lock`) or name it with --lock FILE",
        dir.display()
    )]
    NoLockfile {
        /// The directory searched.
        dir: PathBuf,
    },

    /// No lockfile in the context directory, but its pyproject.toml declares dependencies: building
    /// without a lock would leave them out of the image.
    #[error(
        "{} declares dependencies ({}) but there is no lockfile beside it (looked for uv.lock, \
         pylock.toml, poetry.lock, Pipfile.lock, pdm.lock and requirements.txt), so they would not be \
         installed; lock them (`uv lock`, `poetry lock` or `pdm lock`) or name a lockfile with --lock FILE",
        pyproject.display(),
        summarize(dependencies)
    )]
    UnlockedProject {
        /// The pyproject.toml.
        pyproject: PathBuf,
        /// The declared dependencies, as written.
        dependencies: Vec<String>,
    },

    /// No lockfile at the top of the context directory, but requirements files in a subdirectory
    /// (`requirements/main.txt`): rbuild does not guess which one.
    #[error(
        "no lockfile in {}, but {} holds requirements files ({}); name the one to install with \
         --lock {}",
        dir.display(),
        candidates.first().and_then(|c| c.parent()).map(|p| p.display().to_string()).unwrap_or_default(),
        candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", "),
        suggested.display()
    )]
    LockfileElsewhere {
        /// The directory searched.
        dir: PathBuf,
        /// The requirements files found, relative to `dir`, sorted.
        candidates: Vec<PathBuf>,
        /// The one suggested (`main.txt`, `prod.txt`, … when present), relative to `dir`.
        suggested: PathBuf,
    },

    /// The file name does not say which format it is.
    #[error(
        "{}: cannot tell the lockfile format from the file name; rbuild reads uv.lock, pylock.toml \
         (or pylock.NAME.toml), poetry.lock, Pipfile.lock, pdm.lock and requirements files (*.txt)",
        path.display()
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },

    /// A uv.lock that no longer records what pyproject.toml asks for (uv's `--locked` check).
    #[error(
        "The lockfile at `{}` needs to be updated: {detail} (project `{project}`, {}). To update the \
         lockfile, run `uv lock`; rbuild installs exactly what the lock holds, as `uv sync --locked` does",
        lock.display(),
        pyproject.display()
    )]
    StaleLock {
        /// The uv.lock.
        lock: PathBuf,
        /// The pyproject.toml that differs.
        pyproject: PathBuf,
        /// The project (normalized name).
        project: String,
        /// The first requirement that differs.
        detail: String,
    },

    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The file is larger than any real lockfile.
    #[error("{}: {size} bytes is larger than the {limit} bytes rbuild accepts for a lockfile", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },

    /// The file is not valid TOML, or a field has the wrong type.
    #[error("{}: not a valid {format} file: {message}", path.display())]
    Toml {
        /// The file.
        path: PathBuf,
        /// Which format was expected.
        format: &'static str,
        /// The parser's message (with line and column).
        message: String,
    },

    /// The file is not valid JSON (Pipfile.lock), or a field has the wrong type.
    #[error("{}: not a valid {format} file: {message}; relock it", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// Which format was expected.
        format: &'static str,
        /// The parser's message (with line and column).
        message: String,
    },

    /// The lockfile is malformed in a way the parser does not otherwise name.
    #[error("{location}: {message}")]
    Invalid {
        /// Where.
        location: Location,
        /// What is wrong and what to do.
        message: String,
    },

    /// A package name that is not a valid PEP 508 name (e.g. contains `/` or `..`). Checked before
    /// anything else is done with the name.
    #[error("{location}: refusing the lockfile: {source}")]
    InvalidName {
        /// Where.
        location: Location,
        /// Which name and why.
        source: rbuild_python::NameError,
    },

    /// A version that is not a PEP 440 version.
    #[error(
        "{location}: package `{package}` has version `{version}`, which is not a PEP 440 version"
    )]
    InvalidVersion {
        /// Where.
        location: Location,
        /// The package.
        package: String,
        /// The version as written.
        version: String,
    },

    /// A requirement in a requirements file that is not pinned to one version.
    #[error(
        "{location}: `{requirement}` is not pinned to one version; rbuild installs exact pins only: \
         generate the file with `uv pip compile`/`pip-compile`/`uv export`, or pin it with `==`"
    )]
    Unpinned {
        /// Where.
        location: Location,
        /// The requirement as written.
        requirement: String,
    },

    /// A source rbuild does not install (yet): VCS, local path, direct URL, workspace member, sdist-only
    /// archive…
    #[error("{location}: {what} is not supported yet: {hint}")]
    Unsupported {
        /// Where.
        location: Location,
        /// What was found (names the package).
        what: String,
        /// What to do instead.
        hint: String,
    },

    /// A file without a sha256 where one is required.
    #[error("{location}: {what} has no sha256 hash, but {why}")]
    MissingHash {
        /// Where.
        location: Location,
        /// The package (and file).
        what: String,
        /// Why a hash is required and what to do.
        why: String,
    },

    /// `-r`/`-c` includes that form a cycle.
    #[error(
        "{location}: `{include}` is already being read ({chain}); requirements files must not include each other in a cycle"
    )]
    IncludeCycle {
        /// The including line.
        location: Location,
        /// The included file.
        include: PathBuf,
        /// The chain of files.
        chain: String,
    },

    /// An environment marker that cannot be parsed or evaluated for the target (e.g. it needs
    /// `platform_release`).
    #[error("{location}: the marker of `{package}` cannot be evaluated for the target: {message}")]
    Marker {
        /// Where.
        location: Location,
        /// The package the marker belongs to.
        package: String,
        /// The marker error.
        message: String,
    },

    /// The target's Python does not satisfy the lockfile's `requires-python`.
    #[error(
        "{location}: the lockfile requires Python {requires}{what}, but the target has Python {python}; \
         choose a base image with a matching Python or relock"
    )]
    RequiresPython {
        /// Where.
        location: Location,
        /// The specifier.
        requires: String,
        /// Which package, if the requirement is per package.
        what: String,
        /// The target's Python version.
        python: String,
    },

    /// None of the lockfile's `environments` matches the target.
    #[error(
        "{location}: the lockfile was made for the environments {environments:?}, none of which matches the target"
    )]
    Environment {
        /// Where.
        location: Location,
        /// The environments listed.
        environments: Vec<String>,
    },

    /// Several entries of one package apply to the target.
    #[error(
        "{location}: {package} is locked more than once for the target ({versions}); the lockfile is ambiguous: relock it"
    )]
    Ambiguous {
        /// Where.
        location: Location,
        /// The package.
        package: String,
        /// The versions that apply.
        versions: String,
    },

    /// A dependency names a package that is not in the lockfile.
    #[error(
        "{location}: `{from}` depends on `{package}`, which is not in the lockfile; the lockfile is incomplete or corrupt: relock it"
    )]
    MissingPackage {
        /// Where.
        location: Location,
        /// The dependent.
        from: String,
        /// The missing package.
        package: String,
    },

    /// An extra or dependency group was asked for that the lockfile does not know.
    #[error("{location}: {kind} `{name}` is not in the lockfile (it has: {available})")]
    UnknownSelection {
        /// Where.
        location: Location,
        /// `extra` or `dependency group`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// What the lockfile offers (and a hint for formats that record one selection only).
        available: String,
    },

    /// The lockfile's format version is not one rbuild reads.
    #[error("{location}: {message}")]
    UnsupportedVersion {
        /// Where.
        location: Location,
        /// Which version, and which ones are supported.
        message: String,
    },

    /// The package has no wheel that fits the target.
    #[error(
        "no wheel of {package} {version} fits the target {target}: {available}; \
         pick a base image that matches a wheel, or build a wheel for the target and pass --find-links DIR"
    )]
    NoWheel {
        /// The package.
        package: String,
        /// Its version.
        version: String,
        /// The target's best tag (e.g. `cp311-cp311-manylinux_2_36_x86_64`).
        target: String,
        /// What exists, summarized (e.g. "only musllinux/aarch64 wheels: …").
        available: String,
    },

    /// The package is published as a source distribution only.
    #[error(
        "{package} {version} has no wheel, only the source distribution {sdist}; rbuild never builds \
         source distributions: build the wheel for the target yourself (e.g. `pip wheel --no-deps \
         {package}=={version} -w wheels/` in a matching image) and pass --find-links wheels/"
    )]
    SdistOnly {
        /// The package.
        package: String,
        /// Its version.
        version: String,
        /// The sdist file name.
        sdist: String,
    },

    /// The lock lists no files for the package (requirements files only record hashes): the file list
    /// must come from the index.
    #[error(
        "{package} {version}: the lockfile lists no files for it (requirements files record only \
         hashes); list the index's files and call `LockedPackage::with_index_files` first"
    )]
    NoFileList {
        /// The package.
        package: String,
        /// Its version.
        version: String,
    },

    /// The lock records no file at all for a package (`files = []` in poetry.lock, a uv.lock
    /// package without `wheels` or `sdist`): nothing may be installed for it.
    #[error(
        "{location}: the lock records no file for {package} {version} (no wheel, no source \
         distribution), so there is nothing rbuild may install for it; relock ({relock}) so that \
         the lock lists its files with their hashes, or pass --find-links DIR with its wheel"
    )]
    NoFilesLocked {
        /// The lockfile.
        location: Location,
        /// The package.
        package: String,
        /// Its version.
        version: String,
        /// The command that relocks (e.g. `poetry lock --regenerate`).
        relock: String,
    },

    /// None of the files the index serves for a hash-pinned version has one of the lock's hashes.
    #[error(
        "{location}: {pin} is pinned by {hashes}, but none of the files the index serves for it \
         has that hash: it serves {served}; the hashes are stale or the files changed: regenerate \
         the file with hashes (`uv pip compile --generate-hashes` or `pip-compile \
         --generate-hashes`), or check --index-url"
    )]
    HashMismatch {
        /// The line that pins it.
        location: Location,
        /// The package and its version (`idna==3.10`).
        pin: String,
        /// The expected hashes (`--hash=sha256:…`, joined).
        hashes: String,
        /// What the index serves: file names with their sha256.
        served: String,
    },

    /// Extras or groups were asked for with a format that records one fixed selection.
    #[error("{location}: {message}")]
    SelectionNotSupported {
        /// Where.
        location: Location,
        /// What to do.
        message: String,
    },
}

/// The first few items of a list, for messages.
fn summarize(items: &[String]) -> String {
    let mut out = items.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 5 {
        out.push_str(&format!(", and {} more", items.len() - 5));
    }
    out
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
