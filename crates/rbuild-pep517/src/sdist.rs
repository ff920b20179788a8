//! Safe extraction of source distributions (`.tar.gz` and `.zip`).
//!
//! An sdist is untrusted input. Every member path is checked before anything is written:
//! absolute paths, `..`, empty or `.` components, backslashes and NUL are refused; the total
//! size, the size of one member and the number of members are capped ([`SdistLimits`]).
//! Nothing is written outside the destination directory:
//! - regular files are created with `create_new` below directories this module created itself
//!   (never through a link);
//! - hard links and symbolic links whose target is a regular file of the same archive are
//!   materialized as copies of that file after every regular file is written; links to
//!   anything else (outside the tree, to a directory, dangling) are skipped and listed in
//!   [`Extracted::skipped_links`]. No link is ever created.
//! - device files, FIFOs and other special members are skipped.
//!
//! Modes are normalized: 0755 for members with any executable bit, else 0644.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::BuildError;

/// Caps on what an sdist may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdistLimits {
    /// Total bytes of all regular files (after decompression).
    pub max_total_bytes: u64,
    /// Bytes of one member.
    pub max_file_bytes: u64,
    /// Number of members (files, directories, links).
    pub max_members: u64,
}

impl Default for SdistLimits {
    fn default() -> Self {
        SdistLimits {
            max_total_bytes: 1 << 30,
            max_file_bytes: 256 << 20,
            max_members: 100_000,
        }
    }
}

/// What [`extract_sdist`] unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The project directory: the archive's single top-level directory that holds a
    /// `pyproject.toml` or `setup.py` (or the destination itself when those are at the top).
    pub project_dir: PathBuf,
    /// Regular files written (links materialized as copies included).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Link members that were not materialized (target outside the archive, a directory, or
    /// missing), as `member -> target`.
    pub skipped_links: Vec<String>,
}

/// Checks an archive member path and returns its components.
pub(crate) fn safe_components(member: &str) -> Result<Vec<&str>, String> {
    if member.starts_with('/') {
        return Err("is an absolute path".into());
    }
    if member.contains('\\') || member.contains('\0') {
        return Err("contains a backslash or NUL".into());
    }
    let trimmed = member.trim_end_matches('/');
    let trimmed = trimmed.strip_prefix("./").unwrap_or(trimmed);
    let mut out = Vec::new();
    for c in trimmed.split('/') {
        match c {
            "" | "." => return Err("has an empty or `.` component".into()),
            ".." => return Err("has a `..` component".into()),
            _ => out.push(c),
        }
    }
    if out.is_empty() {
        return Err("is empty".into());
    }
    Ok(out)
}

/// Resolves a link target (relative to the link's directory) to an archive path, or `None` when
/// it leaves the archive.
fn resolve_link(link_components: &[&str], target: &str, hard: bool) -> Option<String> {
    if target.starts_with('/') || target.contains('\0') || target.contains('\\') {
        return None;
    }
    let mut stack: Vec<&str> = if hard {
        Vec::new()
    } else {
        link_components[..link_components.len() - 1].to_vec()
    };
    let target = target.strip_prefix("./").unwrap_or(target);
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                stack.pop()?;
            }
            c => stack.push(c),
        }
    }
    if stack.is_empty() {
        None
    } else {
        Some(stack.join("/"))
    }
}

enum Kind {
    File { exec: bool },
    Dir,
    Link { target: String, hard: bool },
    Other,
}

struct Writer<'a> {
    dest: &'a Path,
    limits: SdistLimits,
    sdist: &'a Path,
    members: u64,
    files: u64,
    bytes: u64,
    dirs: BTreeSet<String>,
    written: BTreeMap<String, bool>,
    links: Vec<(String, String, bool)>,
}

impl Writer<'_> {
    fn err(&self, reason: String) -> BuildError {
        BuildError::Sdist {
            sdist: self.sdist.to_path_buf(),
            reason,
        }
    }

    fn io(&self, path: &Path, source: io::Error) -> BuildError {
        BuildError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn ensure_dirs(&mut self, comps: &[&str]) -> Result<(), BuildError> {
        let mut rel = String::new();
        for c in comps {
            if !rel.is_empty() {
                rel.push('/');
            }
            rel.push_str(c);
            if self.written.contains_key(&rel) {
                return Err(self.err(format!("{rel:?} is both a file and a directory")));
            }
            if self.dirs.insert(rel.clone()) {
                let p = self.dest.join(&rel);
                fs::create_dir(&p).map_err(|e| self.io(&p, e))?;
            }
        }
        Ok(())
    }

    fn member(
        &mut self,
        name: &str,
        kind: Kind,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), BuildError> {
        self.members += 1;
        if self.members > self.limits.max_members {
            return Err(self.err(format!(
                "it has more than {} members",
                self.limits.max_members
            )));
        }
        let comps = safe_components(name).map_err(|r| {
            self.err(format!(
                "member {name:?} {r}; the archive is malformed or malicious"
            ))
        })?;
        let rel = comps.join("/");
        match kind {
            Kind::Dir => self.ensure_dirs(&comps),
            Kind::Other => Ok(()),
            Kind::Link { target, hard } => {
                self.links.push((rel, target, hard));
                Ok(())
            }
            Kind::File { exec } => {
                if size > self.limits.max_file_bytes {
                    return Err(self.err(format!(
                        "member {name:?} is {size} bytes, more than the limit of {}",
                        self.limits.max_file_bytes
                    )));
                }
                if self.dirs.contains(&rel) || self.written.contains_key(&rel) {
                    return Err(self.err(format!("member {name:?} appears twice")));
                }
                self.ensure_dirs(&comps[..comps.len() - 1])?;
                let p = self.dest.join(&rel);
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&p)
                    .map_err(|e| self.io(&p, e))?;
                let cap = self
                    .limits
                    .max_file_bytes
                    .min(self.limits.max_total_bytes.saturating_sub(self.bytes));
                let n = io::copy(&mut data.take(cap + 1), &mut f).map_err(|e| self.io(&p, e))?;
                if n > cap {
                    return Err(self.err(format!(
                        "it unpacks to more than the limit ({} bytes in total, {} per member)",
                        self.limits.max_total_bytes, self.limits.max_file_bytes
                    )));
                }
                set_mode(&p, exec).map_err(|e| self.io(&p, e))?;
                self.bytes += n;
                self.files += 1;
                self.written.insert(rel, exec);
                Ok(())
            }
        }
    }

    fn finish_links(&mut self) -> Result<Vec<String>, BuildError> {
        let mut skipped = Vec::new();
        let links = std::mem::take(&mut self.links);
        for (rel, target, hard) in links {
            let comps: Vec<&str> = rel.split('/').collect();
            let resolved = resolve_link(&comps, &target, hard);
            match resolved.and_then(|r| self.written.get(&r).map(|e| (r, *e))) {
                Some((src, exec))
                    if !self.written.contains_key(&rel) && !self.dirs.contains(&rel) =>
                {
                    self.ensure_dirs(&comps[..comps.len() - 1])?;
                    let from = self.dest.join(&src);
                    let to = self.dest.join(&rel);
                    let size = fs::metadata(&from).map_err(|e| self.io(&from, e))?.len();
                    if self.bytes + size > self.limits.max_total_bytes {
                        return Err(self.err(format!(
                            "it unpacks to more than the limit of {} bytes",
                            self.limits.max_total_bytes
                        )));
                    }
                    let mut input = fs::File::open(&from).map_err(|e| self.io(&from, e))?;
                    let mut out = fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&to)
                        .map_err(|e| self.io(&to, e))?;
                    io::copy(&mut input, &mut out).map_err(|e| self.io(&to, e))?;
                    out.flush().map_err(|e| self.io(&to, e))?;
                    set_mode(&to, exec).map_err(|e| self.io(&to, e))?;
                    self.bytes += size;
                    self.files += 1;
                    self.written.insert(rel, exec);
                }
                _ => skipped.push(format!("{rel} -> {target}")),
            }
        }
        Ok(skipped)
    }
}

fn set_mode(p: &Path, exec: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(
        p,
        fs::Permissions::from_mode(if exec { 0o755 } else { 0o644 }),
    )
}

/// Unpacks the sdist at `sdist` (`.tar.gz`/`.tgz` or `.zip`, by file name) into `dest`, which
/// must be an empty (or new) directory. See the module docs for what is refused.
pub fn extract_sdist(
    sdist: &Path,
    dest: &Path,
    limits: &SdistLimits,
) -> Result<Extracted, BuildError> {
    let name = sdist
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    fs::create_dir_all(dest).map_err(|e| BuildError::Io {
        path: dest.to_path_buf(),
        source: e,
    })?;
    let mut w = Writer {
        dest,
        limits: *limits,
        sdist,
        members: 0,
        files: 0,
        bytes: 0,
        dirs: BTreeSet::new(),
        written: BTreeMap::new(),
        links: Vec::new(),
    };
    let open = || {
        fs::File::open(sdist).map_err(|e| BuildError::Io {
            path: sdist.to_path_buf(),
            source: e,
        })
    };
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        let gz = flate2::read::GzDecoder::new(io::BufReader::new(open()?));
        let mut ar = tar::Archive::new(gz);
        let entries = ar
            .entries()
            .map_err(|e| w.err(format!("it is not a gzip tar archive: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| w.err(format!("the tar archive is broken: {e}")))?;
            let path = entry.path_bytes().into_owned();
            let path = String::from_utf8(path)
                .map_err(|_| w.err("a member name is not valid UTF-8".into()))?;
            let header = entry.header();
            let et = header.entry_type();
            let kind = if et.is_file() || et == tar::EntryType::Continuous {
                Kind::File {
                    exec: header.mode().unwrap_or(0o644) & 0o111 != 0,
                }
            } else if et.is_dir() {
                Kind::Dir
            } else if et.is_symlink() || et.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                Kind::Link {
                    target,
                    hard: et.is_hard_link(),
                }
            } else if et.is_pax_global_extensions()
                || et.is_pax_local_extensions()
                || et.is_gnu_longname()
                || et.is_gnu_longlink()
            {
                continue;
            } else {
                Kind::Other
            };
            let size = entry.size();
            w.member(&path, kind, size, &mut entry)?;
        }
    } else if name.ends_with(".zip") {
        let mut ar = zip::ZipArchive::new(io::BufReader::new(open()?))
            .map_err(|e| w.err(format!("it is not a zip archive: {e}")))?;
        for i in 0..ar.len() {
            let mut f = ar
                .by_index(i)
                .map_err(|e| w.err(format!("the zip archive is broken: {e}")))?;
            let path = f
                .name()
                .map_err(|e| w.err(format!("a member name is invalid: {e}")))?
                .into_owned();
            let mode = f.unix_mode();
            let kind = if f.is_dir() {
                Kind::Dir
            } else if f.is_symlink() {
                let mut target = String::new();
                f.by_ref()
                    .take(4096)
                    .read_to_string(&mut target)
                    .map_err(|e| w.err(format!("member {path:?} cannot be read: {e}")))?;
                Kind::Link {
                    target,
                    hard: false,
                }
            } else {
                Kind::File {
                    exec: mode.unwrap_or(0o644) & 0o111 != 0,
                }
            };
            let size = f.size();
            w.member(&path, kind, size, &mut f)?;
        }
    } else {
        return Err(w.err(
            "its file name does not end in .tar.gz, .tgz or .zip; only those sdist formats are supported".into(),
        ));
    }
    let skipped_links = w.finish_links()?;
    let project_dir = find_project_dir(dest).ok_or_else(|| {
        w.err(
            "it has no pyproject.toml or setup.py at its top or in its single top-level directory"
                .into(),
        )
    })?;
    Ok(Extracted {
        project_dir,
        files: w.files,
        bytes: w.bytes,
        skipped_links,
    })
}

fn is_project(dir: &Path) -> bool {
    dir.join("pyproject.toml").is_file() || dir.join("setup.py").is_file()
}

fn find_project_dir(dest: &Path) -> Option<PathBuf> {
    if is_project(dest) {
        return Some(dest.to_path_buf());
    }
    let mut dirs = Vec::new();
    for e in fs::read_dir(dest).ok()? {
        let e = e.ok()?;
        if e.file_type().ok()?.is_dir() {
            dirs.push(e.path());
        }
    }
    dirs.sort();
    let candidates: Vec<_> = dirs.into_iter().filter(|d| is_project(d)).collect();
    if candidates.len() == 1 {
        candidates.into_iter().next()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (name, et, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*et);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // Write the raw name so that hostile names reach the extractor unchanged.
            let raw = h.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                raw.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    fn extract(bytes: &[u8], name: &str) -> (tempfile::TempDir, Result<Extracted, BuildError>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        fs::write(&p, bytes).unwrap();
        let dest = dir.path().join("out");
        let r = extract_sdist(&p, &dest, &SdistLimits::default());
        (dir, r)
    }

    use tar::EntryType as E;

    #[test]
    fn extracts_a_normal_sdist_and_finds_the_project() {
        let bytes = tar_gz(&[
            ("pkg-1.0/", E::Directory, b"", None),
            ("pkg-1.0/setup.py", E::Regular, b"print()", None),
            ("pkg-1.0/pkg/__init__.py", E::Regular, b"x = 1\n", None),
            ("pkg-1.0/README", E::Symlink, b"", Some("pkg/__init__.py")),
            ("pkg-1.0/evil", E::Symlink, b"", Some("../../etc/passwd")),
        ]);
        let (dir, r) = extract(&bytes, "pkg-1.0.tar.gz");
        let ex = r.unwrap();
        assert_eq!(ex.project_dir, dir.path().join("out/pkg-1.0"));
        assert_eq!(fs::read(ex.project_dir.join("README")).unwrap(), b"x = 1\n");
        assert!(
            !fs::symlink_metadata(ex.project_dir.join("README"))
                .unwrap()
                .is_symlink()
        );
        assert!(!ex.project_dir.join("evil").exists());
        assert_eq!(ex.skipped_links, ["pkg-1.0/evil -> ../../etc/passwd"]);
        assert_eq!(ex.files, 3);
    }

    #[test]
    fn refuses_escaping_paths() {
        for bad in ["../x", "/etc/x", "a/../../x", "a/./b"] {
            let bytes = tar_gz(&[(bad, E::Regular, b"x", None)]);
            let (dir, r) = extract(&bytes, "x-1.tar.gz");
            let err = r.unwrap_err().to_string();
            assert!(err.contains("malformed or malicious"), "{bad}: {err}");
            assert!(!dir.path().join("x").exists());
        }
    }

    #[test]
    fn caps_total_size() {
        let big = vec![b'a'; 1000];
        let bytes = tar_gz(&[
            ("p/setup.py", E::Regular, &big, None),
            ("p/b", E::Regular, &big, None),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p-1.tar.gz");
        fs::write(&p, bytes).unwrap();
        let limits = SdistLimits {
            max_total_bytes: 1500,
            ..Default::default()
        };
        let err = extract_sdist(&p, &dir.path().join("o"), &limits).unwrap_err();
        assert!(err.to_string().contains("more than the limit"), "{err}");
    }

    #[test]
    fn extracts_zip_and_refuses_zip_slip() {
        use zip::write::SimpleFileOptions;
        let mut good = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        good.start_file("w-3.2/setup.py", SimpleFileOptions::default())
            .unwrap();
        good.write_all(b"pass").unwrap();
        let good = good.finish().unwrap().into_inner();
        let (_d, r) = extract(&good, "w-3.2.zip");
        assert!(r.unwrap().project_dir.ends_with("w-3.2"));

        let mut bad = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        bad.start_file("../evil.py", SimpleFileOptions::default())
            .unwrap();
        bad.write_all(b"pass").unwrap();
        let bad = bad.finish().unwrap().into_inner();
        let (_d, r) = extract(&bad, "w-3.2.zip");
        assert!(r.unwrap_err().to_string().contains("`..`"));
    }

    proptest::proptest! {
        #[test]
        fn accepted_paths_stay_inside(p in "[a-z./\\\\]{1,16}") {
            if let Ok(c) = safe_components(&p) {
                proptest::prop_assert!(c.iter().all(|c| !c.is_empty() && *c != "." && *c != ".."));
            }
        }
    }
}
