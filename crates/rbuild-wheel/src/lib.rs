//! Installs wheels into a container layer without running Python and without unpacking to disk.
//!
//! Each wheel (a zip file, usually in the content store) is read in place and turned into tar
//! entries handed to an [`EntrySink`]; the layer crate implements the sink for its deterministic
//! tar writer. The installed tree is the one [pypa/installer] writes for the same scheme (checked
//! by `tests/equivalence.rs` against installer 1.1.0 on real PyPI wheels).
//!
//! # What gets installed where
//!
//! | in the wheel | goes to |
//! |---|---|
//! | root files (when `WHEEL` says `Root-Is-Purelib: true`) | [`InstallTarget::purelib`] |
//! | root files (otherwise, e.g. maturin and C-extension wheels) | [`InstallTarget::platlib`] |
//! | `{name}-{ver}.data/purelib/…`, `…/platlib/…` | purelib, platlib |
//! | `{name}-{ver}.data/scripts/…` | [`InstallTarget::scripts`]; a first line starting with `#!python` becomes `#!<interpreter>` (the rest of that line is dropped, as installer's `fix_shebang` does) |
//! | `{name}-{ver}.data/headers/…` | `<headers>/<Name from METADATA>/…` |
//! | `{name}-{ver}.data/data/…` | [`InstallTarget::data`] |
//! | `console_scripts` / `gui_scripts` in `entry_points.txt` | a launcher in `scripts`, mode 0755, byte-identical to installer's posix launcher |
//!
//! Files get mode 0755 when the zip entry is a regular file with an executable bit
//! (`external_attr >> 16`), else 0644, like installer and pip. The dist-info directory gains
//! `INSTALLER` (`<installer>\n`) and a rewritten `RECORD` listing every installed file with its
//! sha256 and size, paths relative to the directory holding the dist-info (`../../../bin/x` for
//! scripts), sorted as installer 1.1 sorts them; RECORD's own row has no hash or size. No
//! `REQUESTED` or `direct_url.json` is added (installer adds neither). Members inside a
//! `__pycache__` directory are verified but not installed (installer 1.1 skips them too).
//!
//! # Two phases
//!
//! [`plan`] opens every wheel, checks it, and decides every output entry; nothing is written.
//! [`Plan::write`] then emits the entries, sorted by path bytes, each parent directory once
//! before its children. [`install_wheels`] does both.
//!
//! The plan phase rejects a wheel (so that nothing of it, nor of any other wheel, is written)
//! when:
//! - its file name, dist-info directory or `METADATA` name/version disagree with each other or
//!   with the name and version the lockfile expects (compared normalized, PEP 503 / PEP 440);
//! - a member is not listed in `RECORD` (except `RECORD` itself and `RECORD.jws`/`RECORD.p7s`),
//!   has no hash there, or its bytes do not match the listed sha256/sha384/sha512 and size (every
//!   member is streamed through the hash once);
//! - a member path is absolute, has `..`, `.` or empty components, a backslash or NUL, a
//!   component starting with `.wh.`, is not valid UTF-8, or is encrypted; a `.data` directory
//!   other than `{name}-{version}.data` exists, or a `.data` member is outside
//!   `purelib/platlib/scripts/headers/data`;
//! - an entry-point script name is not a single safe file name (`/`, `..`, NUL, …), or
//!   `entry_points.txt` cannot be read as installer reads it;
//! - two outputs of one wheel land on the same path (installer fails the same way).
//!
//! Zip entries whose mode says "symlink" are installed as regular files holding the link text
//! (as installer does); no symlink is ever created, so nothing can point outside the tree.
//!
//! The hash pass is spread over [`InstallOptions::threads`] threads in pieces of about 16 MiB
//! (each thread reads through its own file handle); the zip CRC is not checked because every
//! byte is checked against its sha256. A [`Plan`] keeps one open file per wheel until it is
//! written or dropped; nothing but the central directories and the small metadata files is held
//! in memory, whatever the size of the members.
//!
//! During writing, each member is decompressed again and re-hashed while it streams into the
//! sink; if its bytes changed since the plan, the last chunk is withheld, the sink sees an error
//! and [`Error::ChangedDuringInstall`] is returned. A write-phase error leaves a partial stream:
//! the caller must discard the layer.
//!
//! # Several wheels, and the base image
//!
//! Wheels are processed in the order of their normalized names. Two wheels writing the same
//! path with the same bytes and mode is silent; different content gives a
//! [`Warning::Conflict`] naming both and the later wheel wins, or [`Error::Conflict`] with
//! [`InstallOptions::strict`]. A path that is a file for one wheel and a directory for another
//! (or a directory in the base) is always an error.
//!
//! A distribution in the base ([`BaseInfo::installed`]) with the name of a wheel being
//! installed is replaced, as pip would uninstall it first: every path in its RECORD gets an OCI
//! whiteout unless the new install writes that path; its dist-info directory is whited out
//! unless the new install writes into it; directories below its site directory that only it
//! used (no other base distribution's RECORD has files there and the new install does not
//! write there) are whited out whole; `__pycache__/<stem>.cpython-XY[.opt-N].pyc` of each `.py`
//! it listed are whited out so that no stale bytecode survives. Whiteouts are only emitted
//! where the parent directory exists in the base ([`BaseInfo::dir_modes`] must list every
//! directory of the base). A base distribution without RECORD (a Debian package, an
//! `.egg-info`) cannot be removed that way: its metadata directory (or file) is whited out so
//! that `importlib.metadata` sees one version, its files are left in place and written over, and
//! a [`Warning::NoRecord`] names it.
//!
//! Parent directories get the mode the base has for them, else 0755.
//!
//! # Example
//!
//! ```no_run
//! use rbuild_wheel::*;
//! # struct MySink;
//! # impl EntrySink for MySink {
//! #   fn dir(&mut self, _: &str, _: u32) -> std::io::Result<()> { Ok(()) }
//! #   fn file(&mut self, _: &str, _: u32, _: u64, _: &mut dyn std::io::Read) -> std::io::Result<()> { Ok(()) }
//! #   fn symlink(&mut self, _: &str, _: &str) -> std::io::Result<()> { Ok(()) }
//! #   fn whiteout(&mut self, _: &str) -> std::io::Result<()> { Ok(()) }
//! # }
//! let target = InstallTarget {
//!     interpreter: "/usr/bin/python3.11".into(),
//!     purelib: "/usr/local/lib/python3.11/dist-packages".into(),
//!     platlib: "/usr/local/lib/python3.11/dist-packages".into(),
//!     scripts: "/usr/local/bin".into(),
//!     headers: "/usr/local/include/python3.11".into(),
//!     data: "/usr/local".into(),
//!     python_version: (3, 11),
//! };
//! let wheels = vec![WheelInput {
//!     path: "/cache/sha256/ab/cd...".into(),
//!     filename: "six-1.17.0-py2.py3-none-any.whl".into(),
//!     expected_name: "six".into(),
//!     expected_version: "1.17.0".into(),
//! }];
//! let report = install_wheels(&wheels, &target, &BaseInfo::default(), &InstallOptions::default(), &mut MySink)?;
//! for w in &report.warnings {
//!     eprintln!("warning: {w}");
//! }
//! # Ok::<(), rbuild_wheel::Error>(())
//! ```
//!
//! [pypa/installer]: https://github.com/pypa/installer

mod core_metadata;
mod metadata;
mod paths;
mod plan;
mod record;
mod scan;
mod write;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;

pub use core_metadata::{CoreMetadata, read_wheel_metadata};
// Names, versions and wheel file names are rbuild-python's; re-exported under their old paths.
pub use plan::{Plan, inherited, plan};
pub use rbuild_python::normalize_name;
pub use rbuild_python::version::versions_equal;
pub use rbuild_python::wheel_name::WheelFilename;
pub use record::parse_record_paths;

/// Version of this crate's output format. Part of a dependency layer's cache key: it changes
/// whenever the same wheels, target and base would give different entries.
pub const FORMAT_VERSION: u32 = 1;

/// Where the installer's output goes. The layer crate implements this for its tar writer.
///
/// Paths are image paths: relative to the image root, `/`-separated, no leading or trailing
/// `/`. Entries arrive sorted by path bytes (a whiteout sorts as its `.wh.` file), every parent
/// directory before its children and exactly once; the sink neither sorts nor creates parents.
pub trait EntrySink {
    /// A directory with permission bits `mode` (e.g. `0o755`, `0o2775`).
    fn dir(&mut self, path: &str, mode: u32) -> io::Result<()>;
    /// A regular file of exactly `size` bytes, read from `content` (read it to the end: the
    /// last read verifies the bytes and fails when they are not the planned ones).
    fn file(&mut self, path: &str, mode: u32, size: u64, content: &mut dyn Read) -> io::Result<()>;
    /// A symbolic link. (Never called by this crate today: wheels cannot carry symlinks.)
    fn symlink(&mut self, path: &str, target: &str) -> io::Result<()>;
    /// An OCI whiteout hiding `path` of lower layers; the sink writes `parent/.wh.name`.
    fn whiteout(&mut self, path: &str) -> io::Result<()>;
    /// A directory owned by `owner` (`uid`, `gid`): a base directory repeated with its own owner,
    /// or a new one below a base directory owned by the image's user (see [`BaseInfo::dir_owners`]).
    /// The default ignores the owner (for sinks that write to a plain directory tree).
    fn dir_owned(&mut self, path: &str, mode: u32, owner: (u32, u32)) -> io::Result<()> {
        let _ = owner;
        self.dir(path, mode)
    }
    /// A regular file owned by `owner` (see [`EntrySink::dir_owned`] and [`EntrySink::file`]).
    fn file_owned(
        &mut self,
        path: &str,
        mode: u32,
        owner: (u32, u32),
        size: u64,
        content: &mut dyn Read,
    ) -> io::Result<()> {
        let _ = owner;
        self.file(path, mode, size, content)
    }
}

/// A layer being written is a sink: the installer's entries go straight into the layer tar.
impl<W: io::Write> EntrySink for rbuild_layer::LayerWriter<W> {
    fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        self.append_dir(path, mode).map_err(io::Error::other)
    }
    fn file(&mut self, path: &str, mode: u32, size: u64, content: &mut dyn Read) -> io::Result<()> {
        self.append_file(path, mode, size, content)
            .map_err(io::Error::other)
    }
    fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.append_symlink(path, target).map_err(io::Error::other)
    }
    fn whiteout(&mut self, path: &str) -> io::Result<()> {
        self.append_whiteout(path).map_err(io::Error::other)
    }
    fn dir_owned(&mut self, path: &str, mode: u32, owner: (u32, u32)) -> io::Result<()> {
        self.append_dir_owned(path, mode, owner.0, owner.1)
            .map_err(io::Error::other)
    }
    fn file_owned(
        &mut self,
        path: &str,
        mode: u32,
        owner: (u32, u32),
        size: u64,
        content: &mut dyn Read,
    ) -> io::Result<()> {
        self.append_file_owned(path, mode, size, content, owner.0, owner.1)
            .map_err(io::Error::other)
    }
}

/// The install scheme of the target image (absolute paths inside the image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallTarget {
    /// The interpreter for shebangs, e.g. `/usr/bin/python3.11`.
    pub interpreter: String,
    /// Pure-Python packages, e.g. `/usr/local/lib/python3.11/dist-packages`.
    pub purelib: String,
    /// Platform-specific packages (often equal to `purelib`).
    pub platlib: String,
    /// Scripts, e.g. `/usr/local/bin`.
    pub scripts: String,
    /// Base directory for C headers, e.g. `/usr/local/include/python3.11`; the distribution's
    /// `Name` from `METADATA` is appended as pip does.
    pub headers: String,
    /// Data root, e.g. `/usr/local`.
    pub data: String,
    /// The target Python version; names the `__pycache__` files whited out when a base
    /// distribution is replaced.
    pub python_version: (u8, u8),
}

/// One wheel to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelInput {
    /// Where the wheel's bytes are (a file in the content store).
    pub path: PathBuf,
    /// The wheel's file name (`name-version-tags.whl`); the store path does not carry it.
    pub filename: String,
    /// The distribution name the lockfile expects.
    pub expected_name: String,
    /// The version the lockfile expects.
    pub expected_version: String,
}

/// What the base image already has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseInfo {
    /// Every directory of the base (image paths) with its permission bits, e.g.
    /// `"usr/local/lib/python3.11/dist-packages" -> 0o2775`.
    pub dir_modes: BTreeMap<String, u32>,
    /// Owners (`uid`, `gid`) of the base directories not owned by `0:0`. A layer repeating such a
    /// directory keeps its owner; new entries below it get its owner and group (and group write
    /// when it has it), so a venv owned by the image's user stays that user's.
    pub dir_owners: BTreeMap<String, (u32, u32)>,
    /// Python distributions installed in the base.
    pub installed: Vec<BaseDist>,
}

/// A distribution installed in the base image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseDist {
    /// Its name (any spelling; compared normalized).
    pub name: String,
    /// Its version.
    pub version: String,
    /// Image path of its `.dist-info` / `.egg-info` directory (or `.egg-info` file).
    pub dist_info: String,
    /// The paths of its RECORD (see [`parse_record_paths`]), relative to `site_dir`; `None`
    /// when it has no RECORD.
    pub record: Option<Vec<String>>,
    /// Image path of the directory holding `dist_info`.
    pub site_dir: String,
}

/// Options of an install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallOptions {
    /// Make a conflict between two wheels (same path, different bytes) an error.
    pub strict: bool,
    /// Written to each `INSTALLER` file (followed by a newline).
    pub installer: String,
    /// Threads for the plan phase's hashing; 0 means one per CPU.
    pub threads: usize,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            strict: false,
            installer: "rbuild".to_string(),
            threads: 0,
        }
    }
}

/// What an install did (or, from [`Plan::report`], will do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// The installed distributions, sorted by normalized name.
    pub distributions: Vec<InstalledDistribution>,
    /// Base distributions replaced by an installed one.
    pub replaced: Vec<ReplacedDistribution>,
    /// Things the user should know; the install still succeeded.
    pub warnings: Vec<Warning>,
    /// Regular files written.
    pub files: u64,
    /// Bytes of regular files written (uncompressed).
    pub bytes: u64,
    /// Directory entries written.
    pub directories: u64,
    /// Whiteouts written.
    pub whiteouts: u64,
}

/// A distribution that was installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledDistribution {
    /// `Name` from its METADATA.
    pub name: String,
    /// Its version (from the dist-info directory name).
    pub version: String,
    /// The wheel's file name.
    pub wheel: String,
    /// Image path of the installed `.dist-info` directory.
    pub dist_info: String,
    /// Files of this wheel in the layer (after conflicts were settled).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Its `METADATA`'s dependency fields (`Requires-Dist`, `Provides-Extra`, …), from the
    /// bytes checked against its RECORD.
    pub core_metadata: CoreMetadata,
}

/// A base distribution that an installed wheel replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplacedDistribution {
    /// Its name as the base records it.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Image path of its metadata directory.
    pub dist_info: String,
    /// Whether its RECORD was available (else only its metadata was hidden).
    pub had_record: bool,
}

/// A non-fatal finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// Two wheels write different bytes (or modes) to one path; `winner` is in the layer.
    Conflict {
        /// Image path.
        path: String,
        /// The wheel whose file is kept (the later one by normalized name).
        winner: String,
        /// The wheel whose file was overwritten.
        loser: String,
    },
    /// A base distribution without RECORD was installed over.
    NoRecord {
        /// Its name.
        name: String,
        /// Its version.
        version: String,
        /// Its metadata path.
        dist_info: String,
    },
    /// A base distribution's RECORD lists a path outside the image root; it was ignored.
    BaseRecordOutsideRoot {
        /// The distribution.
        name: String,
        /// The RECORD path.
        path: String,
    },
    /// A wheel member inside `__pycache__` was not installed.
    PycacheSkipped {
        /// The wheel file name.
        wheel: String,
        /// The member.
        member: String,
    },
    /// A wheel shipped its own `INSTALLER`; the generated one replaces it.
    InstallerReplaced {
        /// The wheel file name.
        wheel: String,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Conflict {
                path,
                winner,
                loser,
            } => write!(
                f,
                "/{path} is installed by both {loser} and {winner} with different contents; keeping {winner}'s (use --strict to make this an error)"
            ),
            Warning::NoRecord {
                name,
                version,
                dist_info,
            } => write!(
                f,
                "{name} {version} in the base image has no RECORD (/{dist_info}), so its files cannot be removed; its metadata is hidden and the new version is installed over it"
            ),
            Warning::BaseRecordOutsideRoot { name, path } => {
                write!(
                    f,
                    "RECORD of {name} in the base image lists {path:?}, which is outside the image; ignored"
                )
            }
            Warning::PycacheSkipped { wheel, member } => {
                write!(
                    f,
                    "{wheel}: {member} is inside __pycache__ and was not installed"
                )
            }
            Warning::InstallerReplaced { wheel } => {
                write!(
                    f,
                    "{wheel} ships its own INSTALLER file; it was replaced by the generated one"
                )
            }
        }
    }
}

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The install target is not usable.
    #[error("invalid install target: {reason}")]
    InvalidTarget {
        /// What is wrong.
        reason: String,
    },
    /// The wheel file could not be read.
    #[error("cannot read wheel {wheel} at {}: {source}", path.display())]
    Io {
        /// Wheel file name.
        wheel: String,
        /// Where it was read from.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The zip structure (or a member's compressed data) is broken.
    #[error("wheel {wheel} is not a valid zip archive{}: {source}; re-download it", member.as_ref().map(|m| format!(" (member {m:?})")).unwrap_or_default())]
    Zip {
        /// Wheel file name.
        wheel: String,
        /// The member being read, if any.
        member: Option<String>,
        /// The cause.
        source: zip::result::ZipError,
    },
    /// The wheel is not the distribution the lockfile asked for.
    #[error("wheel {wheel} is {found}, but the lockfile expects {expected}")]
    UnexpectedDistribution {
        /// Wheel file name.
        wheel: String,
        /// What the wheel is.
        found: String,
        /// What was expected.
        expected: String,
    },
    /// A member would land outside its directory or has an unsafe name.
    #[error(
        "wheel {wheel}: member {member:?} {reason}; the wheel is malformed or malicious and was not installed"
    )]
    UnsafeMember {
        /// Wheel file name.
        wheel: String,
        /// The member (or entry-point script name).
        member: String,
        /// What is unsafe.
        reason: String,
    },
    /// A member is not listed in the wheel's RECORD.
    #[error(
        "wheel {wheel}: member {member:?} is not listed in its RECORD; the wheel was altered after it was built and was not installed"
    )]
    NotInRecord {
        /// Wheel file name.
        wheel: String,
        /// The member.
        member: String,
    },
    /// A member's bytes do not match the wheel's RECORD.
    #[error(
        "wheel {wheel}: member {member:?} does not match its RECORD entry ({detail}); the wheel is corrupt or was tampered with and was not installed"
    )]
    RecordMismatch {
        /// Wheel file name.
        wheel: String,
        /// The member.
        member: String,
        /// What differs.
        detail: String,
    },
    /// A metadata file (`WHEEL`, `METADATA`, `RECORD`, `entry_points.txt`) is invalid.
    #[error("wheel {wheel}: invalid {file}: {reason}")]
    InvalidMetadata {
        /// Wheel file name.
        wheel: String,
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The wheel's layout is invalid.
    #[error("wheel {wheel}: {reason}")]
    InvalidWheel {
        /// Wheel file name.
        wheel: String,
        /// What is wrong.
        reason: String,
    },
    /// Two wheels are for the same distribution.
    #[error("two wheels for {name}: {first} and {second}; the lockfile must choose one")]
    DuplicateDistribution {
        /// Normalized name.
        name: String,
        /// One wheel.
        first: String,
        /// The other.
        second: String,
    },
    /// With `strict`, two wheels write different contents to one path.
    #[error(
        "/{path} is installed by both {first} and {second} with different contents (strict mode)"
    )]
    Conflict {
        /// Image path.
        path: String,
        /// One wheel.
        first: String,
        /// The other.
        second: String,
    },
    /// A path would be both a file and a directory.
    #[error("/{path}: {reason}")]
    PathConflict {
        /// Image path.
        path: String,
        /// Who wants what.
        reason: String,
    },
    /// An installed distribution's RECORD cannot be read.
    #[error("invalid RECORD of an installed distribution: {reason}")]
    BaseRecord {
        /// What is wrong.
        reason: String,
    },
    /// A member's bytes changed between the plan and the write.
    #[error(
        "wheel {wheel}: member {member:?} changed while it was being installed; the layer is incomplete and must be discarded"
    )]
    ChangedDuringInstall {
        /// Wheel file name.
        wheel: String,
        /// The member.
        member: String,
    },
    /// The sink failed.
    #[error("writing /{path} to the layer failed: {source}")]
    Sink {
        /// Image path.
        path: String,
        /// The cause.
        source: io::Error,
    },
}

/// Plans and writes an install: see the crate docs. Nothing is written when planning fails.
pub fn install_wheels(
    wheels: &[WheelInput],
    target: &InstallTarget,
    base: &BaseInfo,
    opts: &InstallOptions,
    sink: &mut dyn EntrySink,
) -> Result<InstallReport, Error> {
    plan(wheels, target, base, opts)?.write(sink)
}

#[cfg(test)]
mod proptests {
    //! Parsers of untrusted input never panic, and path checks keep paths inside their root.
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn record_parser_never_panics(text in "\\PC*") {
            let _ = crate::record::parse_record(&text);
            let _ = crate::record::parse_record_paths(text.as_bytes());
        }

        #[test]
        fn record_rows_round_trip(path in "[^\r\n]{1,40}", hash in "[a-z0-9=,\"]{0,20}", size in "[0-9]{0,5}") {
            let mut out = Vec::new();
            crate::record::write_row(&mut out, &path, &hash, &size);
            let rows = crate::record::parse_csv(std::str::from_utf8(&out).unwrap());
            prop_assert_eq!(rows, vec![vec![path, hash, size]]);
        }

        #[test]
        fn entry_points_parser_never_panics(text in "(\\[[a-z_]{0,15}\\]\n|[ \t]{0,3}[a-zA-Z0-9_.:= \\[\\]%/-]{0,30}\n|#.*\n)*") {
            if let Ok(eps) = crate::metadata::parse_entry_points(&text) {
                for ep in eps {
                    prop_assert!(!ep.module.is_empty() && !ep.attr.is_empty());
                }
            }
        }

        #[test]
        fn header_parser_never_panics(text in "\\PC*", name in "[A-Za-z-]{1,10}") {
            let _ = crate::metadata::header(&text, &name);
        }

        #[test]
        fn versions_are_equal_to_themselves(v in "[vV]?[0-9]{1,3}(\\.[0-9]{1,3}){0,3}((a|b|rc|alpha|c)[0-9]{0,2})?(\\.post[0-9]?)?(\\.dev[0-9]?)?(\\+[a-z0-9]{1,4}(\\.[a-z0-9]{1,3})?)?") {
            prop_assert!(crate::versions_equal(&v, &v));
            prop_assert!(crate::versions_equal(&v, &v.to_uppercase()));
            let padded = format!(" {} ", v);
            prop_assert!(crate::versions_equal(&v, &padded));
        }

        #[test]
        fn version_parser_never_panics(a in "\\PC{0,20}", b in "\\PC{0,20}") {
            let _ = crate::versions_equal(&a, &b);
            let _ = crate::WheelFilename::parse(&a);
        }

        #[test]
        fn accepted_member_paths_stay_inside(rel in "[a-z./\\\\]{1,20}", base in "(usr/(local/)?)?[a-z]{1,5}") {
            if crate::paths::unsafe_relative(&rel).is_none() {
                let joined = crate::paths::join(&base, &rel);
                let resolved = crate::paths::resolve_in_root("", &joined).unwrap();
                prop_assert!(crate::paths::is_within(&resolved, &base), "{} escaped {}", rel, base);
                prop_assert_eq!(resolved, joined);
            }
        }
    }
}
