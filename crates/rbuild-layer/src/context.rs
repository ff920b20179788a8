//! The build-context walk and the app layer built from it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::dockerignore::{IgnoreFile, MatchInfo};
use crate::error::{Error, Result};
use crate::writer::{LayerInfo, LayerOptions, LayerWriter, check_path, normalize_mode};

/// Directory names that should almost never be copied into an image; without an ignore file,
/// the walk warns when it finds them. A host `.venv` in `/app` shadows the image's dependencies.
pub const CLUTTER_NAMES: [&str; 4] = [".venv", "__pycache__", ".git", "node_modules"];

/// What a context entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file (hard links are regular files too).
    File {
        /// Size in bytes when the context was walked.
        size: u64,
        /// Whether any executable bit is set.
        executable: bool,
    },
    /// A symbolic link, stored as a link: its target is never read or followed.
    Symlink {
        /// The link's target, as `readlink` returns it.
        target: String,
    },
}

/// One file, directory or symlink of the build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    /// The path relative to the context root, `/`-separated, no trailing `/`.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
    /// Its permission bits on disk (`0o7777` mask), for information: layers normalize modes.
    pub mode: u32,
}

/// Something the walk noticed that does not stop the build. Reported, never printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkWarning {
    /// A socket, FIFO or device file was left out: images cannot carry them from a context.
    SkippedSpecialFile {
        /// The path relative to the context root.
        path: String,
        /// `socket`, `fifo`, `character device` or `block device`.
        kind: &'static str,
    },
    /// There is no `.dockerignore`/`.containerignore` and a directory (or file) with one of the
    /// [`CLUTTER_NAMES`] will be copied.
    UnignoredClutter {
        /// The name found (e.g. `.venv`).
        name: &'static str,
        /// The first path with that name, in walk order.
        path: String,
        /// How many entries have that name.
        count: usize,
    },
    /// There is no ignore file: rbuild's default ignore list (and `.gitignore`) left these out.
    DefaultIgnores {
        /// The topmost paths left out, sorted.
        left_out: Vec<String>,
        /// Whether a `.gitignore` contributed patterns.
        gitignore: bool,
    },
    /// Files that look like secrets are copied (the project's ignore file does not exclude them).
    SecretsCopied {
        /// Their paths.
        paths: Vec<String>,
    },
}

impl WalkWarning {
    /// True for what is a plain statement of what was done (the default ignore list's summary),
    /// not a warning about something the user may not want.
    pub fn is_note(&self) -> bool {
        matches!(self, WalkWarning::DefaultIgnores { .. })
    }
}

impl fmt::Display for WalkWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalkWarning::SkippedSpecialFile { path, kind } => {
                write!(
                    f,
                    "{path}: {kind} skipped (only files, directories and symlinks are copied)"
                )
            }
            WalkWarning::DefaultIgnores {
                left_out,
                gitignore,
            } => {
                let shown: Vec<&str> = left_out.iter().take(8).map(String::as_str).collect();
                let more = left_out.len().saturating_sub(shown.len());
                write!(
                    f,
                    "no .dockerignore: left out {}{} (rbuild's default Python ignore list{}); add a .dockerignore to choose, or pass --no-default-ignores",
                    shown.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    },
                    if *gitignore { " and .gitignore" } else { "" }
                )
            }
            WalkWarning::SecretsCopied { paths } if paths.len() == 1 => write!(
                f,
                "{} looks like it holds secrets and will be copied into the image; add it to .dockerignore if it should not be",
                paths[0]
            ),
            WalkWarning::SecretsCopied { paths } => write!(
                f,
                "these files look like they hold secrets and will be copied into the image: {}; add them to .dockerignore if they should not be",
                paths.join(", ")
            ),
            WalkWarning::UnignoredClutter { name, path, count } => {
                let more = if *count > 1 {
                    format!(" and {} more", count - 1)
                } else {
                    String::new()
                };
                write!(
                    f,
                    "{path}{more} will be copied into the image because there is no .dockerignore; \
                     add `{}` to a .dockerignore to leave it out",
                    if *name == "__pycache__" {
                        "**/__pycache__".to_string()
                    } else {
                        name.to_string()
                    }
                )
            }
        }
    }
}

/// A walked build context: what goes into the app layer.
#[derive(Debug, Clone)]
pub struct Context {
    /// The context directory as given.
    pub root: PathBuf,
    /// The ignore file that was applied, if any.
    pub ignore_file: Option<PathBuf>,
    /// The entries to copy, sorted by the bytes of their path (parents before children).
    pub entries: Vec<ContextEntry>,
    /// Warnings for the user.
    pub warnings: Vec<WalkWarning>,
}

/// Loads the context's ignore file ([`IgnoreFile::load`]) and walks it ([`walk_context`]).
pub fn load_context(dir: &Path) -> Result<Context> {
    check_root(dir)?;
    match IgnoreFile::load(dir)? {
        Some((path, ignore)) => {
            let mut ctx = walk_context(dir, Some(&ignore))?;
            ctx.ignore_file = Some(path);
            Ok(ctx)
        }
        None => walk_context(dir, None),
    }
}

fn check_root(dir: &Path) -> Result<()> {
    let meta = fs::metadata(dir).map_err(|e| Error::io("cannot read the build context", dir, e))?;
    if !meta.is_dir() {
        return Err(Error::ContextNotADirectory(dir.to_path_buf()));
    }
    Ok(())
}

/// Walks the build context `dir` and returns what BuildKit would send for it with `ignore`
/// applied (`None`: no ignore file, everything is sent and clutter is reported).
///
/// Symlinks are recorded, never followed; hard links are regular files; sockets, FIFOs and
/// devices are skipped with a warning. Every included regular file is opened once, so an
/// unreadable file is an error here, naming it, before any layer is written. An unreadable
/// directory is an error too, unless it is excluded (BuildKit ignores permission errors there).
pub fn walk_context(dir: &Path, ignore: Option<&IgnoreFile>) -> Result<Context> {
    check_root(dir)?;
    let mut w = Walker {
        ignore,
        entries: Vec::new(),
        warnings: Vec::new(),
        stack: Vec::new(),
        clutter: BTreeMap::new(),
    };
    w.walk_dir(dir, "", &MatchInfo::default(), false, false)?;
    let Walker {
        mut entries,
        mut warnings,
        clutter,
        ..
    } = w;
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    for (name, (path, count)) in clutter {
        warnings.push(WalkWarning::UnignoredClutter { name, path, count });
    }
    Ok(Context {
        root: dir.to_path_buf(),
        ignore_file: None,
        entries,
        warnings,
    })
}

struct Pending {
    path: String,
    mode: u32,
    emitted: bool,
    lossy: bool,
    abs: PathBuf,
}

struct Walker<'a> {
    ignore: Option<&'a IgnoreFile>,
    entries: Vec<ContextEntry>,
    warnings: Vec<WalkWarning>,
    stack: Vec<Pending>,
    clutter: BTreeMap<&'static str, (String, usize)>,
}

/// A name as Go sees it when matching: valid UTF-8 as is, each invalid byte as U+FFFD.
fn lossy_name(name: &OsStr) -> (String, bool) {
    match name.to_str() {
        Some(s) => (s.to_string(), false),
        None => {
            let mut out = String::new();
            for chunk in name.as_bytes().utf8_chunks() {
                out.push_str(chunk.valid());
                out.extend(std::iter::repeat_n('\u{FFFD}', chunk.invalid().len()));
            }
            (out, true)
        }
    }
}

/// Opens a file for reading without following a final symlink or blocking on a FIFO.
fn open_nofollow(path: &Path) -> std::io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

impl Walker<'_> {
    fn emit_parents(&mut self) -> Result<()> {
        for p in self.stack.iter_mut().filter(|p| !p.emitted) {
            if p.lossy {
                return Err(Error::NonUtf8Path(p.abs.clone()));
            }
            p.emitted = true;
            self.entries.push(ContextEntry {
                path: p.path.clone(),
                kind: EntryKind::Dir,
                mode: p.mode,
            });
        }
        Ok(())
    }

    fn walk_dir(
        &mut self,
        abs: &Path,
        rel: &str,
        info: &MatchInfo,
        excluded: bool,
        lossy: bool,
    ) -> Result<()> {
        let rd = match fs::read_dir(abs) {
            Ok(rd) => rd,
            Err(e) if excluded && e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(()),
            Err(e) => return Err(Error::io("cannot read directory", abs, e)),
        };
        let mut children = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("cannot read directory", abs, e))?;
            let ft = entry
                .file_type()
                .map_err(|e| Error::io("cannot stat", entry.path(), e))?;
            children.push((entry.file_name(), ft));
        }
        children.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));

        for (name, ft) in children {
            let child_abs = abs.join(&name);
            let (name_str, name_lossy) = lossy_name(&name);
            let child_lossy = lossy || name_lossy;
            let child_rel = if rel.is_empty() {
                name_str.clone()
            } else {
                format!("{rel}/{name_str}")
            };
            let is_dir = ft.is_dir();

            let (mut skip, mut child_info) = (false, MatchInfo::default());
            if let Some(ig) = self.ignore {
                let (m, ci) = ig.matches_with_parent(&child_rel, info);
                child_info = ci;
                if m {
                    if is_dir && !ig.must_enter_excluded_dir(&child_rel) {
                        continue;
                    }
                    skip = true;
                }
            } else if let Some(name) = CLUTTER_NAMES.iter().find(|n| **n == name_str) {
                let e = self
                    .clutter
                    .entry(name)
                    .or_insert_with(|| (child_rel.clone(), 0));
                e.1 += 1;
            }

            if is_dir {
                let mode = match fs::symlink_metadata(&child_abs) {
                    Ok(m) => m.permissions().mode() & 0o7777,
                    Err(_) if skip => 0o755,
                    Err(e) => return Err(Error::io("cannot stat", child_abs, e)),
                };
                self.stack.push(Pending {
                    path: child_rel.clone(),
                    mode,
                    emitted: false,
                    lossy: child_lossy,
                    abs: child_abs.clone(),
                });
                if !skip {
                    self.emit_parents()?;
                }
                let r = self.walk_dir(&child_abs, &child_rel, &child_info, skip, child_lossy);
                self.stack.pop();
                r?;
                continue;
            }
            if skip {
                continue;
            }

            let special = if ft.is_socket() {
                Some("socket")
            } else if ft.is_fifo() {
                Some("fifo")
            } else if ft.is_char_device() {
                Some("character device")
            } else if ft.is_block_device() {
                Some("block device")
            } else {
                None
            };
            if let Some(kind) = special {
                self.warnings.push(WalkWarning::SkippedSpecialFile {
                    path: child_rel,
                    kind,
                });
                continue;
            }
            if child_lossy {
                return Err(Error::NonUtf8Path(child_abs));
            }
            self.emit_parents()?;

            let meta = fs::symlink_metadata(&child_abs)
                .map_err(|e| Error::io("cannot stat", &child_abs, e))?;
            let mode = meta.permissions().mode() & 0o7777;
            let kind = if ft.is_symlink() {
                let target = fs::read_link(&child_abs)
                    .map_err(|e| Error::io("cannot read symlink", &child_abs, e))?;
                let target = target
                    .into_os_string()
                    .into_string()
                    .map_err(|_| Error::NonUtf8Path(child_abs.clone()))?;
                EntryKind::Symlink { target }
            } else {
                open_nofollow(&child_abs).map_err(|e| Error::io("cannot open", &child_abs, e))?;
                EntryKind::File {
                    size: meta.len(),
                    executable: mode & 0o111 != 0,
                }
            };
            self.entries.push(ContextEntry {
                path: child_rel,
                kind,
                mode,
            });
        }
        Ok(())
    }
}

/// Writes the app layer: the context's entries under `prefix` (e.g. `app` for `/app`), with the
/// prefix directories themselves, all owned by root, directories and executables `0755`, other
/// files `0644`, symlinks as links. Files are streamed one at a time; a file whose size changed
/// since the walk is an error (the layer must then be discarded).
pub fn write_context_layer<W: Write>(
    ctx: &Context,
    prefix: &str,
    opts: &LayerOptions,
    out: W,
) -> Result<(W, LayerInfo)> {
    let mut w = LayerWriter::new(out, opts)?;
    write_context_entries(ctx, prefix, &mut w, |_| true)?;
    w.finish()
}

/// Appends the context's entries under `prefix` (and the prefix directories) to a layer being
/// written, as [`write_context_layer`] does, leaving out the entries for which `keep` (given the
/// path relative to the context root) is false. Prefix directories the writer already has (e.g.
/// appended with a base's owner and mode) are not written again. The caller may append more entries (compiled
/// bytecode, for instance) before finishing the layer.
pub fn write_context_entries<W: Write>(
    ctx: &Context,
    prefix: &str,
    w: &mut LayerWriter<W>,
    keep: impl Fn(&str) -> bool,
) -> Result<()> {
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty() {
        let prefix = check_path(prefix, true)?;
        for (i, _) in prefix.match_indices('/') {
            if !w.has_dir(&prefix[..i]) {
                w.append_dir(&prefix[..i], 0o755)?;
            }
        }
        if !w.has_dir(prefix) {
            w.append_dir(prefix, 0o755)?;
        }
    }
    let join = |p: &str| {
        if prefix.is_empty() {
            p.to_string()
        } else {
            format!("{prefix}/{p}")
        }
    };
    for e in ctx.entries.iter().filter(|e| keep(&e.path)) {
        let path = join(&e.path);
        match &e.kind {
            EntryKind::Dir => w.append_dir(&path, normalize_mode(true, false))?,
            EntryKind::Symlink { target } => w.append_symlink(&path, target)?,
            EntryKind::File { size, executable } => {
                let src = ctx.root.join(&e.path);
                let mut f = open_nofollow(&src).map_err(|e| Error::io("cannot open", &src, e))?;
                let meta = f
                    .metadata()
                    .map_err(|e| Error::io("cannot stat", &src, e))?;
                if !meta.is_file() {
                    return Err(Error::io(
                        "changed while building",
                        &src,
                        std::io::Error::other("it is no longer a regular file"),
                    ));
                }
                w.append_file(&path, normalize_mode(false, *executable), *size, &mut f)?;
            }
        }
    }
    Ok(())
}
