//! Whiteout-aware extraction of a base image's layers into a directory, cached under a key.
//!
//! The layers are read once each by [`rbuild_python::rootfs::read_layers`]; [`Extractor`] applies
//! each entry to the disk as it streams by:
//!
//! - skipped: `/usr/share/{doc,man,info,locale}`, `/var`, `/dev`, `/proc`, `/sys`, `/run`, `/tmp`,
//!   `/home`, `/root` (nothing the interpreter needs), device nodes and FIFOs;
//! - modes normalised: setuid/setgid/sticky dropped, owners ignored (everything belongs to whoever
//!   unpacks), directories at least `u+rwx`, files at least `u+r`;
//! - symbolic links with absolute targets are rewritten to relative ones that stay inside the root
//!   (`usr/local/bin/python3 -> /usr/bin/python3.11` becomes `../../../usr/bin/python3.11`), as are
//!   relative targets that would climb above it;
//! - paths are resolved inside the root the way a `chroot` would: a symlinked parent directory
//!   (`lib -> usr/lib`) is followed, but an absolute or `..` target restarts at or stops at the
//!   root, so nothing is ever written outside it. Final components are created with no-follow
//!   calls (`O_EXCL`, `mkdir`, `symlink`) after whatever was there is removed;
//! - hard links whose target leaves the root (`..`) are refused; targets inside it are linked
//!   (never following a final symlink);
//! - `.wh.NAME` and `.wh..wh..opq` remove what lower layers put there, never what the current
//!   layer wrote (in any order within the layer).
//!
//! The extracting process is the only writer of the directory, so the checks cannot race.
//!
//! [`UnpackedBase::open_or_unpack`] extracts into a temporary sibling of `cache_dir/key` and renames
//! it into place with a completion marker, so concurrent builds and interrupted ones are safe.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rbuild_python::rootfs::{Apply, Entry, EntryKind, clean_path, read_layers};

use crate::RunnerError;

/// Top-level paths (relative, no leading `/`) that are never extracted.
const SKIPPED: &[&str] = &[
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var",
    "dev",
    "proc",
    "sys",
    "run",
    "tmp",
    "home",
    "root",
];

/// The marker written next to `rootfs/` once extraction finished.
const MARKER: &str = "complete";

/// How many symbolic links one path may go through while resolving it inside the root.
const MAX_LINKS: usize = 40;

/// Whether `path` (relative, clean) is skipped.
pub fn is_skipped(path: &str) -> bool {
    SKIPPED.iter().any(|s| {
        path.strip_prefix(s)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// A base image's files extracted into a directory.
#[derive(Debug, Clone)]
pub struct UnpackedBase {
    root: PathBuf,
}

impl UnpackedBase {
    /// The root directory of the extracted files (what `/` is inside the image).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// An already extracted root (no check is made).
    pub fn at(root: impl Into<PathBuf>) -> UnpackedBase {
        UnpackedBase { root: root.into() }
    }

    /// Whether `cache_dir/key` holds a completed unpack ([`UnpackedBase::open_or_unpack`] would
    /// reuse it without reading a layer).
    pub fn is_complete(cache_dir: &Path, key: &str) -> bool {
        cache_dir.join(key.replace(':', "-")).join(MARKER).is_file()
    }

    /// Reuses `cache_dir/key/rootfs` if a previous call completed it; otherwise extracts `layers`
    /// (uncompressed tar streams, base layer first) into a temporary sibling and renames it into
    /// place. `key` names the base, e.g. its config digest: `sha256:…` is accepted (`:` becomes
    /// `-`); other characters than ASCII letters, digits, `.`, `_`, `-` are refused.
    pub fn open_or_unpack<I, R>(
        cache_dir: &Path,
        key: &str,
        layers: I,
    ) -> Result<UnpackedBase, RunnerError>
    where
        I: IntoIterator<Item = io::Result<R>>,
        R: Read,
    {
        let name = key.replace(':', "-");
        if name.is_empty()
            || name.starts_with('.')
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(RunnerError::BadKey {
                key: key.to_string(),
            });
        }
        let io_err = |what: &str, path: &Path, source: io::Error| RunnerError::Io {
            what: format!("{what} {}", path.display()),
            source,
        };
        fs::create_dir_all(cache_dir)
            .map_err(|e| io_err("cannot create the cache directory", cache_dir, e))?;
        let dest = cache_dir.join(&name);
        if dest.join(MARKER).is_file() {
            return Ok(UnpackedBase {
                root: dest.join("rootfs"),
            });
        }
        remove_stale_temps(cache_dir, &name);
        let tmp = cache_dir.join(format!(
            ".tmp-{name}-{}-{:x}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let result = (|| {
            fs::create_dir(&tmp).map_err(|e| io_err("cannot create", &tmp, e))?;
            let rootfs = tmp.join("rootfs");
            fs::create_dir(&rootfs).map_err(|e| io_err("cannot create", &rootfs, e))?;
            unpack_into(&rootfs, layers)?;
            fs::write(tmp.join(MARKER), b"")
                .map_err(|e| io_err("cannot write the marker in", &tmp, e))?;
            // The directory itself: other users (a build running as another uid) may read it.
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
                .map_err(|e| io_err("cannot chmod", &tmp, e))?;
            Ok::<(), RunnerError>(())
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        match fs::rename(&tmp, &dest) {
            Ok(()) => {}
            Err(_) if dest.join(MARKER).is_file() => {
                // Another build finished first: use its copy.
                let _ = fs::remove_dir_all(&tmp);
            }
            Err(_) => {
                // Something incomplete is in the way (not made by this code: renames are atomic).
                let _ = fs::remove_dir_all(&dest);
                if let Err(e) = fs::rename(&tmp, &dest) {
                    let _ = fs::remove_dir_all(&tmp);
                    if !dest.join(MARKER).is_file() {
                        return Err(io_err("cannot rename the unpacked base to", &dest, e));
                    }
                }
            }
        }
        Ok(UnpackedBase {
            root: dest.join("rootfs"),
        })
    }
}

/// Removes temporary directories of `name` left by interrupted runs more than an hour ago.
fn remove_stale_temps(cache_dir: &Path, name: &str) {
    let prefix = format!(".tmp-{name}-");
    let Ok(dir) = fs::read_dir(cache_dir) else {
        return;
    };
    for entry in dir.flatten() {
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        if !n.starts_with(&prefix) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if old {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Extracts `layers` (uncompressed tar streams, base layer first) into `root`, an existing
/// (normally empty) directory. See the module docs for the rules.
pub fn unpack_into<I, R>(root: &Path, layers: I) -> Result<(), RunnerError>
where
    I: IntoIterator<Item = io::Result<R>>,
    R: Read,
{
    let mut ex = Extractor::new(root);
    read_layers(layers, &mut [&mut ex]).map_err(|e| match ex.refused.take() {
        Some(r) => r,
        None => RunnerError::Layer(e),
    })?;
    if let Some(r) = ex.refused.take() {
        return Err(r);
    }
    if let Some(e) = ex.deferred.take() {
        return Err(RunnerError::Io {
            what: format!("cannot unpack the base into {}", root.display()),
            source: e,
        });
    }
    fix_bytecode_mtimes(root);
    Ok(())
}

/// Applies layer entries to a directory on disk (an [`Apply`] for [`read_layers`]).
pub struct Extractor {
    root: PathBuf,
    /// Physical paths (relative) written by the current layer.
    written: BTreeSet<String>,
    /// An error from a whiteout (which cannot return one), reported at the next entry.
    deferred: Option<io::Error>,
    /// An entry refused for safety (reported instead of the layer error).
    refused: Option<RunnerError>,
}

impl Extractor {
    /// An extractor writing into `root`.
    pub fn new(root: &Path) -> Extractor {
        Extractor {
            root: root.to_path_buf(),
            written: BTreeSet::new(),
            deferred: None,
            refused: None,
        }
    }

    fn host(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    /// Resolves `rel` inside the root (see [`resolve_in_root`]), creating missing directories
    /// (mode 0755) when `create`.
    fn resolve(&self, rel: &str, create: bool) -> io::Result<Option<String>> {
        resolve_impl(&self.root, rel, true, create)
    }

    /// Removes what is at physical `rel` unless the current layer wrote it; inside a directory the
    /// current layer wrote, removes what it did not write.
    fn remove_lower(&self, rel: &str) -> io::Result<()> {
        let host = self.host(rel);
        let Ok(meta) = fs::symlink_metadata(&host) else {
            return Ok(());
        };
        let prefix = format!("{rel}/");
        let written_below = self
            .written
            .range(prefix.clone()..)
            .next()
            .is_some_and(|p| p.starts_with(&prefix));
        if !self.written.contains(rel) && !written_below {
            return remove_any(&host, &meta);
        }
        if meta.is_dir() {
            for child in fs::read_dir(&host)? {
                let child = child?;
                let name = child.file_name();
                let Some(name) = name.to_str() else {
                    continue;
                };
                self.remove_lower(&join(rel, name))?;
            }
        }
        Ok(())
    }

    fn apply(&mut self, entry: &Entry<'_>, content: &mut dyn Read) -> io::Result<()> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let path = entry.path;
        if path.is_empty() || is_skipped(path) {
            return Ok(());
        }
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let Some(parent) = self.resolve(dir, true)? else {
            return Ok(());
        };
        let phys = join(&parent, name);
        let host = self.host(&phys);
        let existing = fs::symlink_metadata(&host).ok();
        match entry.kind {
            EntryKind::Dir => {
                match existing {
                    Some(m) if m.is_dir() => {}
                    Some(m) => {
                        remove_any(&host, &m)?;
                        fs::create_dir(&host)?;
                    }
                    None => fs::create_dir(&host)?,
                }
                fs::set_permissions(&host, fs::Permissions::from_mode(dir_mode(entry.mode)))?;
            }
            EntryKind::File => {
                if let Some(m) = existing {
                    remove_any(&host, &m)?;
                }
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&host)?;
                io::copy(content, &mut f)?;
                f.set_permissions(fs::Permissions::from_mode(file_mode(entry.mode)))?;
            }
            EntryKind::Symlink => {
                let target = entry.link.unwrap_or("");
                let rewritten = rewrite_link(&parent, target);
                if let Some(m) = existing {
                    remove_any(&host, &m)?;
                }
                symlink(rewritten, &host)?;
            }
            EntryKind::Hardlink => {
                let raw = entry.link.unwrap_or("");
                let Some(target) = clean_path(raw).filter(|t| !t.is_empty()) else {
                    self.refused = Some(RunnerError::UnsafeEntry {
                        path: format!("/{path}"),
                        reason: format!("it is a hard link to {raw}, outside the image's root"),
                    });
                    return Err(io::Error::other("unsafe hard link"));
                };
                if is_skipped(&target) {
                    return Ok(());
                }
                let (tdir, tname) = target.rsplit_once('/').unwrap_or(("", target.as_str()));
                let Some(tparent) = self.resolve(tdir, false)? else {
                    return Ok(());
                };
                let src = self.host(&join(&tparent, tname));
                match fs::symlink_metadata(&src) {
                    Ok(m) if m.is_dir() => {
                        self.refused = Some(RunnerError::UnsafeEntry {
                            path: format!("/{path}"),
                            reason: format!("it is a hard link to the directory /{target}"),
                        });
                        return Err(io::Error::other("hard link to a directory"));
                    }
                    Ok(_) => {}
                    // The target was skipped or is missing: nothing to link.
                    Err(_) => return Ok(()),
                }
                if src == host {
                    return Ok(());
                }
                if let Some(m) = existing {
                    remove_any(&host, &m)?;
                }
                // linkat without AT_SYMLINK_FOLLOW: links a symlink itself, never what it names.
                fs::hard_link(&src, &host)?;
            }
            EntryKind::Other => {
                // Devices and FIFOs are not extracted, but still replace what was there.
                if let Some(m) = existing {
                    remove_any(&host, &m)?;
                }
                return Ok(());
            }
        }
        self.written.insert(phys);
        Ok(())
    }
}

impl Apply for Extractor {
    fn wants_content(&mut self, entry: &Entry<'_>) -> bool {
        entry.kind == EntryKind::File && !is_skipped(entry.path)
    }

    fn entry(&mut self, entry: &Entry<'_>, content: &mut dyn Read) -> io::Result<()> {
        self.apply(entry, content)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot extract /{}: {e}", entry.path)))
    }

    fn whiteout(&mut self, path: &str) {
        if is_skipped(path) || self.deferred.is_some() {
            return;
        }
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let r = self.resolve(dir, false).and_then(|parent| match parent {
            Some(p) => self.remove_lower(&join(&p, name)),
            None => Ok(()),
        });
        if let Err(e) = r {
            self.deferred = Some(io::Error::new(
                e.kind(),
                format!("cannot apply the whiteout of /{path}: {e}"),
            ));
        }
    }

    fn opaque(&mut self, dir: &str) {
        if (!dir.is_empty() && is_skipped(dir)) || self.deferred.is_some() {
            return;
        }
        let r = self.resolve(dir, false).and_then(|phys| {
            let Some(phys) = phys else { return Ok(()) };
            let host = self.host(&phys);
            if !host.is_dir() {
                return Ok(());
            }
            for child in fs::read_dir(&host)? {
                let child = child?;
                if let Some(name) = child.file_name().to_str() {
                    self.remove_lower(&join(&phys, name))?;
                }
            }
            Ok(())
        });
        if let Err(e) = r {
            self.deferred = Some(io::Error::new(
                e.kind(),
                format!("cannot empty the opaque directory /{dir}: {e}"),
            ));
        }
    }

    fn end_layer(&mut self) {
        self.written.clear();
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn dir_mode(mode: u32) -> u32 {
    (mode & 0o777) | 0o700
}

fn file_mode(mode: u32) -> u32 {
    (mode & 0o777) | 0o400
}

fn remove_any(host: &Path, meta: &fs::Metadata) -> io::Result<()> {
    if meta.is_dir() {
        fs::remove_dir_all(host)
    } else {
        fs::remove_file(host)
    }
}

/// Resolves `path` (relative or absolute inside the image) to the physical path inside `root`
/// (relative, no leading `/`, no symlinks left except the last component when `!follow_last`),
/// with `chroot` semantics: symlinks are followed, absolute targets restart at the root, `..`
/// stops at the root. `None` when a component does not exist.
pub fn resolve_in_root(root: &Path, path: &str, follow_last: bool) -> io::Result<Option<String>> {
    resolve_impl(root, path, follow_last, false)
}

fn resolve_impl(
    root: &Path,
    path: &str,
    follow_last: bool,
    create: bool,
) -> io::Result<Option<String>> {
    // Components still to walk, in reverse (last to pop first).
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .rev()
        .map(String::from)
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let rel = if done.is_empty() {
            c.clone()
        } else {
            format!("{}/{c}", done.join("/"))
        };
        let host = root.join(&rel);
        match fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() => {
                if todo.is_empty() && !follow_last {
                    done.push(c);
                    continue;
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links resolving /{path}"
                    )));
                }
                let target = fs::read_link(&host)?;
                let target = target.to_string_lossy();
                if target.starts_with('/') {
                    done.clear();
                }
                todo.extend(
                    target
                        .split('/')
                        .filter(|c| !c.is_empty() && *c != ".")
                        .rev()
                        .map(String::from),
                );
            }
            Ok(m) if m.is_dir() || todo.is_empty() => done.push(c),
            Ok(m) => {
                // A file where a directory is needed.
                if !create {
                    return Ok(None);
                }
                remove_any(&host, &m)?;
                fs::create_dir(&host)?;
                fs::set_permissions(&host, fs::Permissions::from_mode(0o755))?;
                done.push(c);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create {
                    return Ok(None);
                }
                fs::create_dir(&host)?;
                fs::set_permissions(&host, fs::Permissions::from_mode(0o755))?;
                done.push(c);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Some(done.join("/")))
}

/// The target to write for a symlink placed in the physical directory `parent` (relative) whose
/// tar target is `target`: absolute targets become relative to `parent`; relative ones that would
/// climb above the root are clamped the same way; others are kept.
pub fn rewrite_link(parent: &str, target: &str) -> String {
    let depth = if parent.is_empty() {
        0
    } else {
        parent.split('/').count()
    };
    let absolute = |comps: Vec<&str>| -> String {
        let mut s = "../".repeat(depth);
        s.push_str(&comps.join("/"));
        if s.is_empty() {
            ".".to_string()
        } else {
            s.trim_end_matches('/').to_string()
        }
    };
    let lexical = |start: Vec<&'static str>, t: &str| -> Vec<String> {
        let mut out: Vec<String> = start.into_iter().map(String::from).collect();
        for c in t.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    out.pop();
                }
                c => out.push(c.to_string()),
            }
        }
        out
    };
    if target.starts_with('/') {
        let comps = lexical(vec![], target);
        return absolute(comps.iter().map(String::as_str).collect());
    }
    // Does the relative target climb above the root?
    let mut level = depth as isize;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                level -= 1;
                if level < 0 {
                    let mut full: Vec<String> = parent
                        .split('/')
                        .filter(|c| !c.is_empty())
                        .map(String::from)
                        .collect();
                    for c in target.split('/') {
                        match c {
                            "" | "." => {}
                            ".." => {
                                full.pop();
                            }
                            c => full.push(c.to_string()),
                        }
                    }
                    return absolute(full.iter().map(String::as_str).collect());
                }
            }
            _ => level += 1,
        }
    }
    target.to_string()
}

/// Gives each source file the mtime its timestamp-based bytecode (`__pycache__/*.pyc`, PEP 3147)
/// recorded, when the sizes agree, so the interpreter uses the base's bytecode instead of
/// compiling the standard library again in every run (tar mtimes are not kept by extraction).
fn fix_bytecode_mtimes(root: &Path) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            let path = e.path();
            if e.file_name() == "__pycache__" {
                fix_pycache(&path);
            } else {
                stack.push(path);
            }
        }
    }
}

fn fix_pycache(pycache: &Path) {
    let Some(src_dir) = pycache.parent() else {
        return;
    };
    let Ok(rd) = fs::read_dir(pycache) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(".pyc") {
            continue;
        }
        let Some((module, _)) = name.split_once('.') else {
            continue;
        };
        let mut head = [0u8; 16];
        let ok = fs::File::open(e.path())
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok();
        if !ok || head[4..8] != [0, 0, 0, 0] {
            continue; // hash-based or unreadable
        }
        let mtime = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        let size = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
        let src = src_dir.join(format!("{module}.py"));
        let Ok(m) = fs::symlink_metadata(&src) else {
            continue;
        };
        if !m.is_file() || (m.len() & 0xffff_ffff) as u32 != size {
            continue;
        }
        let Ok(f) = fs::File::options().write(true).open(&src) else {
            continue;
        };
        let _ = f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(mtime)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &str, u32)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, mode) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            match *kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.set_size(0);
                    b.append_link(&mut h, path, data).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, data.as_bytes()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};

    fn unpack(layers: Vec<Vec<u8>>) -> (tempfile::TempDir, Result<(), RunnerError>) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let r = unpack_into(&root, layers.into_iter().map(|l| Ok(io::Cursor::new(l))));
        (dir, r)
    }

    #[test]
    fn rewrites_links() {
        assert_eq!(
            rewrite_link("usr/local/bin", "/usr/bin/python3.11"),
            "../../../usr/bin/python3.11"
        );
        assert_eq!(rewrite_link("", "/usr/lib"), "usr/lib");
        assert_eq!(rewrite_link("", "usr/lib"), "usr/lib");
        assert_eq!(rewrite_link("usr/bin", "python3.11"), "python3.11");
        assert_eq!(rewrite_link("usr/bin", "../../../../etc/x"), "../../etc/x");
        assert_eq!(rewrite_link("a", "/"), "..");
        assert_eq!(rewrite_link("", "/"), ".");
    }

    #[test]
    fn extracts_with_whiteouts_skips_and_safe_links() {
        let l1 = tar_of(&[
            ("usr/", D, "", 0o755),
            ("usr/lib/", D, "", 0o755),
            ("usr/lib/a.txt", F, "a", 0o4755),
            ("usr/lib/gone", F, "x", 0o644),
            ("usr/lib/opq/", D, "", 0o755),
            ("usr/lib/opq/old", F, "old", 0o644),
            ("lib", S, "usr/lib", 0o777),
            ("usr/share/doc/x/README", F, "doc", 0o644),
            ("var/log/x", F, "log", 0o644),
            ("usr/bin/", D, "", 0o700),
            ("usr/bin/python3.11", F, "py", 0o755),
            ("usr/local/bin/python3", S, "/usr/bin/python3.11", 0o777),
            ("escape", S, "/../../../../etc", 0o777),
        ]);
        let l2 = tar_of(&[
            ("usr/lib/.wh.gone", F, "", 0o644),
            ("usr/lib/opq/new", F, "new", 0o644),
            ("usr/lib/opq/.wh..wh..opq", F, "", 0o644),
            ("lib/via-link", F, "v", 0o644),
            ("escape/passwd", F, "not outside", 0o644),
            ("usr/lib/hard", H, "usr/lib/a.txt", 0o644),
        ]);
        let (dir, r) = unpack(vec![l1, l2]);
        r.unwrap();
        let root = dir.path().join("root");
        assert_eq!(fs::read_to_string(root.join("usr/lib/a.txt")).unwrap(), "a");
        let mode = fs::metadata(root.join("usr/lib/a.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755, "setuid dropped");
        assert!(!root.join("usr/lib/gone").exists());
        assert!(!root.join("usr/lib/opq/old").exists());
        assert_eq!(
            fs::read_to_string(root.join("usr/lib/opq/new")).unwrap(),
            "new"
        );
        assert_eq!(
            fs::read_to_string(root.join("usr/lib/via-link")).unwrap(),
            "v"
        );
        assert!(!root.join("usr/share/doc").exists());
        assert!(!root.join("var").exists());
        assert_eq!(
            fs::read_link(root.join("usr/local/bin/python3")).unwrap(),
            Path::new("../../../usr/bin/python3.11")
        );
        assert_eq!(
            fs::read_to_string(root.join("usr/local/bin/python3")).unwrap(),
            "py"
        );
        // The escaping symlink points at the root's own etc, and the file went there.
        assert_eq!(
            fs::read_link(root.join("escape")).unwrap(),
            Path::new("etc")
        );
        assert_eq!(
            fs::read_to_string(root.join("etc/passwd")).unwrap(),
            "not outside"
        );
        assert!(!dir.path().join("etc").exists());
        assert_eq!(fs::read_to_string(root.join("usr/lib/hard")).unwrap(), "a");
        let bin_mode = fs::metadata(root.join("usr/bin"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(bin_mode & 0o777, 0o700);
    }

    #[test]
    fn whiteouts_do_not_hide_their_own_layer() {
        let l1 = tar_of(&[("d/", D, "", 0o755), ("d/old", F, "1", 0o644)]);
        // New entries come before the opaque marker and the whiteout in the same layer.
        let l2 = tar_of(&[
            ("d/new", F, "2", 0o644),
            ("d/old", F, "3", 0o644),
            ("d/.wh..wh..opq", F, "", 0o644),
            ("d/.wh.old", F, "", 0o644),
        ]);
        let (dir, r) = unpack(vec![l1, l2]);
        r.unwrap();
        let root = dir.path().join("root");
        assert_eq!(fs::read_to_string(root.join("d/new")).unwrap(), "2");
        assert_eq!(fs::read_to_string(root.join("d/old")).unwrap(), "3");
    }

    #[test]
    fn refuses_a_hard_link_out_of_the_root() {
        let l1 = tar_of(&[("x", H, "../../etc/passwd", 0o644)]);
        let (dir, r) = unpack(vec![l1]);
        let e = r.unwrap_err().to_string();
        assert!(e.contains("/x") && e.contains("outside"), "{e}");
        assert!(!dir.path().join("root/x").exists());
    }

    #[test]
    fn writes_through_symlinked_parents_stay_inside() {
        // A symlink to an absolute host directory, then a file through it.
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().display().to_string();
        let l1 = tar_of(&[("evil", S, &target, 0o777)]);
        let l2 = tar_of(&[("evil/pwned", F, "x", 0o644)]);
        let (dir, r) = unpack(vec![l1, l2]);
        r.unwrap();
        assert!(!outside.path().join("pwned").exists());
        let inside = dir
            .path()
            .join("root")
            .join(target.trim_start_matches('/'))
            .join("pwned");
        assert!(inside.exists());
    }

    #[test]
    fn caches_under_the_key() {
        let cache = tempfile::tempdir().unwrap();
        let l1 = tar_of(&[("f", F, "1", 0o644)]);
        let a = UnpackedBase::open_or_unpack(
            cache.path(),
            "sha256:abc",
            [Ok(io::Cursor::new(l1.clone()))],
        )
        .unwrap();
        assert_eq!(fs::read_to_string(a.root().join("f")).unwrap(), "1");
        // A second call reuses it: the layers are not read.
        let b = UnpackedBase::open_or_unpack(
            cache.path(),
            "sha256:abc",
            [Err::<io::Cursor<Vec<u8>>, _>(io::Error::other("not read"))],
        )
        .unwrap();
        assert_eq!(a.root(), b.root());
        // A failed unpack leaves nothing behind.
        let e = UnpackedBase::open_or_unpack(
            cache.path(),
            "other",
            [Err::<io::Cursor<Vec<u8>>, _>(io::Error::other("broken"))],
        );
        assert!(e.is_err());
        let names: Vec<_> = fs::read_dir(cache.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["sha256-abc".to_string()]);
        assert!(
            UnpackedBase::open_or_unpack(cache.path(), "../x", [Ok(io::Cursor::new(l1))]).is_err()
        );
    }
}
