//! What target detection keeps of an image's files, as a [`Visitor`] of the one whiteout-aware
//! layer reader ([`crate::rootfs`]), and the queries detection asks of the merged view ([`Tree`]).
//!
//! Only "interesting" paths are kept, so memory stays small:
//! directories named like Python library dirs, `bin/python*` entries (symlink targets and the first
//! 4 KiB of files, for the ELF header), top-level symlinks (merged `/usr`), C library files, and parsed
//! summaries of small text files (package databases, `METADATA`, `pyvenv.cfg`, `patchlevel.h`).

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};

use crate::rootfs::{Entry, EntryKind, Interest, Visitor};

use crate::target::types::MajorMinor;

/// What is kept about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// A directory (explicit or implied by a kept descendant's path).
    Dir,
    /// A symbolic link and its target, as written.
    Symlink(String),
    /// A hard link to another path of the image.
    Hardlink(String),
    /// A regular file and what was read from it.
    File(FileFacts),
}

/// What was read from a regular file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum FileFacts {
    /// Nothing needed (its existence is enough).
    #[default]
    Present,
    /// The first bytes of a `bin/python*` file (ELF header and program headers).
    Head(Vec<u8>),
    /// A dpkg or apk database: package name → version, for the packages detection cares about.
    Packages(BTreeMap<String, String>),
    /// A `*.dist-info/METADATA`: name and version (either may be missing if the file is malformed).
    Metadata {
        /// `Name:`.
        name: Option<String>,
        /// `Version:`.
        version: Option<String>,
    },
    /// `key = value` lines of a `pyvenv.cfg`.
    VenvCfg(BTreeMap<String, String>),
    /// `PY_VERSION` from a `patchlevel.h`.
    PatchLevel(Option<String>),
    /// The glibc version from the banner inside `libc.so.6`.
    GlibcBanner(Option<MajorMinor>),
    /// What a stdlib `sysconfig.py` says about its default install scheme: Debian's patched copy
    /// defines the `posix_local` scheme (`/usr/local/lib/pythonX.Y/dist-packages`) that its
    /// interpreter uses outside a venv.
    Sysconfig {
        /// It defines Debian's `posix_local` scheme.
        posix_local: bool,
    },
}

/// The merged view of all layers (only kept paths, relative, without a leading `/`).
#[derive(Debug, Default)]
pub(crate) struct Tree {
    pub(crate) nodes: BTreeMap<String, Node>,
}

/// How a file must be read, decided from its path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Skip,
    Keep,
    Head,
    Dpkg,
    Apk,
    Metadata,
    VenvCfg,
    PatchLevel,
    GlibcBanner,
    Sysconfig,
}

fn is_python_name(base: &str) -> bool {
    let Some(rest) = base.strip_prefix("python") else {
        return false;
    };
    rest.is_empty() || rest.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// `python3`, `python3.11`, `python` as directory names under `lib`.
fn is_python_lib_dir(base: &str) -> bool {
    is_python_name(base) && base.len() > "python".len()
}

fn is_libc_dir(dir: &str) -> bool {
    // lib, lib64, lib32, usr/lib, usr/lib64, and one level of multiarch (lib/x86_64-linux-gnu).
    let mut parts = dir.split('/');
    let mut first = parts.next().unwrap_or("");
    if first == "usr" {
        first = parts.next().unwrap_or("");
    }
    if !matches!(first, "lib" | "lib64" | "lib32" | "libx32") {
        return false;
    }
    parts.count() <= 1
}

fn want(path: &str) -> Want {
    let (dir, base) = match path.rsplit_once('/') {
        Some((d, b)) => (d, b),
        None => ("", path),
    };
    let parent = dir.rsplit('/').next().unwrap_or("");
    if parent == "bin" && is_python_name(base) {
        return Want::Head;
    }
    if base == "pyvenv.cfg" {
        return Want::VenvCfg;
    }
    if base == "METADATA" && parent.ends_with(".dist-info") {
        return Want::Metadata;
    }
    if base == "RECORD" && parent.ends_with(".dist-info") {
        return Want::Keep;
    }
    if base == "patchlevel.h"
        && is_python_lib_dir(parent)
        && dir.ends_with(&format!("include/{parent}"))
    {
        return Want::PatchLevel;
    }
    if base == "sysconfig.py"
        && is_python_lib_dir(parent)
        && dir.ends_with(&format!("lib/{parent}"))
    {
        return Want::Sysconfig;
    }
    if path == "var/lib/dpkg/status" || dir == "var/lib/dpkg/status.d" {
        return Want::Dpkg;
    }
    if path == "lib/apk/db/installed" || path == "usr/lib/apk/db/installed" {
        return Want::Apk;
    }
    if is_libc_dir(dir) {
        if base == "libc.so.6" {
            return Want::GlibcBanner;
        }
        if (base.starts_with("ld-musl-") && base.ends_with(".so.1"))
            || (base.starts_with("libc-") && base.ends_with(".so"))
            || (base.starts_with("ld-") && base.ends_with(".so"))
            || base.starts_with("ld-linux")
            || base.starts_with("ld64.so")
        {
            return Want::Keep;
        }
    }
    Want::Skip
}

/// Whether a directory path is worth remembering (Python library dirs and package dirs).
fn interesting_dir(base: &str) -> bool {
    is_python_lib_dir(base)
        || base == "site-packages"
        || base == "dist-packages"
        || base.ends_with(".dist-info")
        || base == "bin"
}

/// Normalizes a tar path like [`crate::rootfs::clean_path`], but `None` for the root too.
pub(crate) fn clean_path(raw: &str) -> Option<String> {
    crate::rootfs::clean_path(raw).filter(|p| !p.is_empty())
}

const HEAD_BYTES: u64 = 4096;
const SMALL_FILE: u64 = 256 * 1024;
const MAX_LINE: usize = 64 * 1024;

/// The [`Visitor`] of target detection: keeps what [`want`] and [`interesting_dir`] ask for.
#[derive(Debug, Default)]
pub(crate) struct TargetVisitor;

impl Visitor for TargetVisitor {
    type Node = Node;

    fn interest(&mut self, e: &Entry<'_>) -> Interest<Node> {
        if e.path.is_empty() {
            return Interest::Skip;
        }
        let keep_if = |keep: bool, node: Node| {
            if keep {
                Interest::Keep(node)
            } else {
                Interest::Skip
            }
        };
        match e.kind {
            EntryKind::Dir => keep_if(interesting_dir(e.name()), Node::Dir),
            // Top-level links (merged /usr), python links and C library links.
            EntryKind::Symlink => keep_if(
                !e.path.contains('/') || want(e.path) != Want::Skip,
                Node::Symlink(e.link.unwrap_or_default().to_string()),
            ),
            EntryKind::Hardlink => keep_if(
                want(e.path) != Want::Skip,
                Node::Hardlink(e.link.and_then(clean_path).unwrap_or_default()),
            ),
            EntryKind::File => match want(e.path) {
                Want::Skip => Interest::Skip,
                Want::Keep => Interest::Keep(Node::File(FileFacts::Present)),
                _ => Interest::Read,
            },
            EntryKind::Other => Interest::Skip,
        }
    }

    fn read(&mut self, e: &Entry<'_>, mut content: &mut dyn Read) -> io::Result<Option<Node>> {
        Ok(read_file(want(e.path), &mut content)?.map(Node::File))
    }

    /// A kept descendant implies its interesting ancestors exist.
    fn implied_dir(&mut self, path: &str) -> Option<Node> {
        interesting_dir(path.rsplit('/').next().unwrap_or(path)).then_some(Node::Dir)
    }
}

impl Tree {
    /// Follows symlinks (and hard links) through the kept nodes; returns the final path. Links to paths
    /// that were not kept resolve to the link target's path as written.
    pub(crate) fn resolve(&self, path: &str) -> String {
        let mut pending: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        pending.reverse();
        let mut current: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            match comp.as_str() {
                "." => continue,
                ".." => {
                    current.pop();
                    continue;
                }
                _ => {}
            }
            current.push(comp);
            let joined = current.join("/");
            let link = match self.nodes.get(&joined) {
                Some(Node::Symlink(t)) => Some((t.clone(), false)),
                Some(Node::Hardlink(t)) => Some((t.clone(), true)),
                _ => None,
            };
            if let Some((target, absolute_always)) = link {
                hops += 1;
                if hops > 40 {
                    break;
                }
                current.pop();
                if target.starts_with('/') || absolute_always {
                    current.clear();
                }
                let mut parts: Vec<String> = target
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect();
                parts.reverse();
                pending.extend(parts);
            }
        }
        current.join("/")
    }

    /// The chain of names a path goes through while resolving it (its own name, then each link target).
    pub(crate) fn link_chain(&self, path: &str) -> Vec<String> {
        let mut chain = vec![path.to_string()];
        let mut cur = path.to_string();
        for _ in 0..40 {
            let parent = cur
                .rsplit_once('/')
                .map(|(d, _)| d.to_string())
                .unwrap_or_default();
            let resolved_parent = self.resolve(&parent);
            let key = if resolved_parent.is_empty() {
                cur.rsplit('/').next().unwrap_or("").to_string()
            } else {
                format!("{resolved_parent}/{}", cur.rsplit('/').next().unwrap_or(""))
            };
            let next = match self.nodes.get(&key) {
                Some(Node::Symlink(t)) if t.starts_with('/') => clean_path(t),
                Some(Node::Symlink(t)) => clean_path(&format!("{resolved_parent}/{t}")),
                Some(Node::Hardlink(t)) => Some(t.clone()),
                _ => None,
            };
            match next {
                Some(n) if !chain.contains(&n) => {
                    chain.push(n.clone());
                    cur = n;
                }
                _ => break,
            }
        }
        chain
    }

    /// The node at a path after resolving links in its directories (not in its last component).
    pub(crate) fn get(&self, path: &str) -> Option<&Node> {
        let (dir, base) = match path.rsplit_once('/') {
            Some((d, b)) => (self.resolve(d), b),
            None => (String::new(), path),
        };
        let key = if dir.is_empty() {
            base.to_string()
        } else {
            format!("{dir}/{base}")
        };
        self.nodes.get(&key)
    }

    /// Whether a path (with links followed) exists as anything kept.
    pub(crate) fn exists(&self, path: &str) -> bool {
        let resolved = self.resolve(path);
        self.nodes.contains_key(&resolved)
    }

    /// Kept direct children of a directory (links in the directory path followed): `(name, node)`.
    pub(crate) fn children(&self, dir: &str) -> Vec<(String, &Node)> {
        let dir = self.resolve(dir);
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, v)| {
                let rest = &k[prefix.len()..];
                (!rest.contains('/')).then(|| (rest.to_string(), v))
            })
            .collect()
    }
}

fn read_file(want: Want, r: &mut impl Read) -> io::Result<Option<FileFacts>> {
    Ok(Some(match want {
        Want::Skip => return Ok(None),
        Want::Keep => FileFacts::Present,
        Want::Head => {
            let mut buf = Vec::new();
            r.take(HEAD_BYTES).read_to_end(&mut buf)?;
            FileFacts::Head(buf)
        }
        Want::Dpkg => FileFacts::Packages(parse_dpkg(r)?),
        Want::Apk => FileFacts::Packages(parse_apk(r)?),
        Want::Metadata => {
            let mut name = None;
            let mut version = None;
            for_each_line(&mut r.take(SMALL_FILE), |line| {
                if line.is_empty() {
                    return false;
                }
                if let Some(v) = line.strip_prefix("Name:") {
                    name.get_or_insert_with(|| v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("Version:") {
                    version.get_or_insert_with(|| v.trim().to_string());
                }
                true
            })?;
            FileFacts::Metadata { name, version }
        }
        Want::VenvCfg => {
            let mut map = BTreeMap::new();
            for_each_line(&mut r.take(SMALL_FILE), |line| {
                if let Some((k, v)) = line.split_once('=') {
                    map.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
                true
            })?;
            FileFacts::VenvCfg(map)
        }
        Want::PatchLevel => {
            let mut found = None;
            for_each_line(&mut r.take(SMALL_FILE), |line| {
                let l = line.trim_start();
                if let Some(rest) = l.strip_prefix("#define") {
                    let rest = rest.trim_start();
                    if let Some(v) = rest.strip_prefix("PY_VERSION")
                        && v.starts_with(char::is_whitespace)
                    {
                        found = Some(v.trim().trim_matches('"').to_string());
                        return false;
                    }
                }
                true
            })?;
            FileFacts::PatchLevel(found)
        }
        Want::GlibcBanner => FileFacts::GlibcBanner(scan_glibc_banner(r)?),
        Want::Sysconfig => {
            let mut text = Vec::new();
            r.take(SMALL_FILE).read_to_end(&mut text)?;
            let text = String::from_utf8_lossy(&text);
            FileFacts::Sysconfig {
                posix_local: text.contains("'posix_local': {")
                    || text.contains("\"posix_local\": {"),
            }
        }
    }))
}

/// Calls `f` on each line (without the newline, lossily decoded) until it returns false. Lines longer
/// than [`MAX_LINE`] are cut.
fn for_each_line(r: &mut impl Read, mut f: impl FnMut(&str) -> bool) -> io::Result<()> {
    let mut reader = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = read_line_capped(&mut reader, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        if !f(&String::from_utf8_lossy(&buf)) {
            // Drain so the tar reader can move on (it would skip anyway).
            return Ok(());
        }
    }
}

/// Reads one line, keeping at most [`MAX_LINE`] bytes of it; returns the bytes consumed.
fn read_line_capped(r: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<usize> {
    let mut consumed = 0;
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = MAX_LINE.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let len = chunk.len();
        r.consume(len);
        consumed += len;
        if done {
            return Ok(consumed);
        }
    }
}

/// Whether detection cares about a package of a distribution database.
fn relevant_package(name: &str) -> bool {
    name == "libc6"
        || name == "musl"
        || name == "glibc"
        || name == "python3"
        || (name.starts_with("python3.") && {
            let rest = &name["python3.".len()..];
            let rest = rest.strip_suffix("-minimal").unwrap_or(rest);
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
        })
}

/// dpkg's `status` (or one `status.d/` file): `Package:`/`Version:` of installed relevant packages.
pub(crate) fn parse_dpkg(r: &mut impl Read) -> io::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut package: Option<String> = None;
    let mut version: Option<String> = None;
    let mut installed = true;
    let mut flush = |p: &mut Option<String>, v: &mut Option<String>, inst: &mut bool| {
        if let (Some(p), Some(v)) = (p.take(), v.take())
            && *inst
            && relevant_package(&p)
        {
            out.insert(p, v);
        }
        *p = None;
        *v = None;
        *inst = true;
    };
    for_each_line(r, |line| {
        if line.trim().is_empty() {
            flush(&mut package, &mut version, &mut installed);
        } else if let Some(v) = line.strip_prefix("Package:") {
            package = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Version:") {
            version = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("Status:") {
            // "install ok installed"; a removed package keeps its stanza as "deinstall ok config-files".
            installed = v.trim().ends_with(" installed");
        }
        true
    })?;
    flush(&mut package, &mut version, &mut installed);
    Ok(out)
}

/// apk's `installed` database: `P:`/`V:` of relevant packages.
pub(crate) fn parse_apk(r: &mut impl Read) -> io::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut package: Option<String> = None;
    let mut version: Option<String> = None;
    let mut flush = |p: &mut Option<String>, v: &mut Option<String>| {
        if let (Some(p), Some(v)) = (p.take(), v.take())
            && relevant_package(&p)
        {
            out.insert(p, v);
        }
    };
    for_each_line(r, |line| {
        if line.trim().is_empty() {
            flush(&mut package, &mut version);
        } else if let Some(v) = line.strip_prefix("P:") {
            package = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("V:") {
            version = Some(v.trim().to_string());
        }
        true
    })?;
    flush(&mut package, &mut version);
    Ok(out)
}

/// Looks for glibc's banner (`... release version 2.36.`) in `libc.so.6`, streaming.
pub(crate) fn scan_glibc_banner(r: &mut impl Read) -> io::Result<Option<MajorMinor>> {
    const NEEDLE: &[u8] = b"release version ";
    const TAIL: usize = 12;
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match r.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let eof = n == 0;
        carry.extend_from_slice(&buf[..n]);
        let mut from = 0;
        while let Some(i) = find(&carry[from..], NEEDLE) {
            let start = from + i + NEEDLE.len();
            if !eof && carry.len() < start + TAIL {
                // Not enough bytes yet to read the version: keep them for the next round.
                break;
            }
            let tail = &carry[start..carry.len().min(start + TAIL)];
            let text: String = tail
                .iter()
                .take_while(|b| b.is_ascii_digit() || **b == b'.')
                .map(|b| *b as char)
                .collect();
            if let Some(mm) = MajorMinor::parse_prefix(&text) {
                // Drain the rest so the tar stream stays aligned (the tar reader would skip it anyway).
                io::copy(r, &mut io::sink())?;
                return Ok(Some(mm));
            }
            from = start;
        }
        if eof {
            return Ok(None);
        }
        let keep = carry.len().min(NEEDLE.len() + TAIL);
        carry.drain(..carry.len() - keep);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Minimal ELF reading: the program interpreter (`PT_INTERP`) from the first bytes of a file.
pub(crate) fn elf_interpreter(head: &[u8]) -> Option<String> {
    if head.len() < 52 || &head[..4] != b"\x7fELF" {
        return None;
    }
    let is64 = head[4] == 2;
    let le = head[5] == 1;
    let u16_at = |o: usize| -> Option<u64> {
        let b = head.get(o..o + 2)?;
        Some(if le {
            u16::from_le_bytes([b[0], b[1]])
        } else {
            u16::from_be_bytes([b[0], b[1]])
        } as u64)
    };
    let u32_at = |o: usize| -> Option<u64> {
        let b: [u8; 4] = head.get(o..o + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        } as u64)
    };
    let u64_at = |o: usize| -> Option<u64> {
        let b: [u8; 8] = head.get(o..o + 8)?.try_into().ok()?;
        Some(if le {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    let (phoff, phentsize, phnum) = if is64 {
        (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?)
    } else {
        (u32_at(0x1c)?, u16_at(0x2a)?, u16_at(0x2c)?)
    };
    for i in 0..phnum.min(64) {
        let ph = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        if u32_at(ph)? != 3 {
            continue; // not PT_INTERP
        }
        let (off, size) = if is64 {
            (u64_at(ph + 8)?, u64_at(ph + 32)?)
        } else {
            (u32_at(ph + 4)?, u32_at(ph + 16)?)
        };
        let off = usize::try_from(off).ok()?;
        let size = usize::try_from(size).ok()?.min(256);
        let bytes = head.get(off..off.checked_add(size)?)?;
        let s: String = bytes
            .iter()
            .take_while(|b| **b != 0)
            .map(|b| *b as char)
            .collect();
        return Some(s);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wants() {
        assert_eq!(want("usr/local/bin/python3.12"), Want::Head);
        assert_eq!(want("usr/bin/python3"), Want::Head);
        assert_eq!(want("usr/bin/python3-config"), Want::Skip);
        assert_eq!(want("usr/bin/pythonista"), Want::Skip);
        assert_eq!(
            want("usr/lib/x86_64-linux-gnu/libc.so.6"),
            Want::GlibcBanner
        );
        assert_eq!(want("lib/ld-musl-x86_64.so.1"), Want::Keep);
        assert_eq!(want("usr/lib/x86_64-linux-gnu/libc-2.31.so"), Want::Keep);
        assert_eq!(
            want("usr/lib/python3/dist-packages/foo/libc.so.6"),
            Want::Skip
        );
        assert_eq!(want("var/lib/dpkg/status"), Want::Dpkg);
        assert_eq!(want("var/lib/dpkg/status.d/libc6"), Want::Dpkg);
        assert_eq!(want("lib/apk/db/installed"), Want::Apk);
        assert_eq!(
            want("usr/local/include/python3.12/patchlevel.h"),
            Want::PatchLevel
        );
        assert_eq!(
            want("usr/local/lib/python3.12/site-packages/pip-24.0.dist-info/METADATA"),
            Want::Metadata
        );
    }

    #[test]
    fn dpkg_status() {
        let text = "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u4\nDescription: x\n long\n\n\
                    Package: python3.11\nStatus: deinstall ok config-files\nVersion: 3.11.2-6\n\n\
                    Package: python3.11-minimal\nStatus: install ok installed\nVersion: 3.11.2-6+deb12u5\n\n\
                    Package: bash\nStatus: install ok installed\nVersion: 5.2\n";
        let m = parse_dpkg(&mut text.as_bytes()).unwrap();
        assert_eq!(m.get("libc6").map(String::as_str), Some("2.36-9+deb12u4"));
        assert_eq!(m.get("python3.11"), None);
        assert_eq!(
            m.get("python3.11-minimal").map(String::as_str),
            Some("3.11.2-6+deb12u5")
        );
        assert_eq!(m.get("bash"), None);
    }

    #[test]
    fn glibc_banner_across_chunks() {
        let mut data = vec![0u8; 64 * 1024 - 20];
        data.extend_from_slice(
            b"GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36.\n",
        );
        data.extend(vec![1u8; 1000]);
        assert_eq!(
            scan_glibc_banner(&mut data.as_slice()).unwrap(),
            Some(MajorMinor::new(2, 36))
        );
        assert_eq!(scan_glibc_banner(&mut &b"nothing here"[..]).unwrap(), None);
        assert_eq!(
            scan_glibc_banner(&mut &b"x release version 2.34."[..]).unwrap(),
            Some(MajorMinor::new(2, 34))
        );
    }

    /// The ELF reader and the banner scan agree with this machine's own (real) binaries.
    #[test]
    fn real_host_binaries() {
        let Ok(out) = std::process::Command::new("getconf")
            .arg("GNU_LIBC_VERSION")
            .output()
        else {
            eprintln!("SKIPPED: no getconf");
            return;
        };
        let want = String::from_utf8_lossy(&out.stdout);
        let want = MajorMinor::parse_prefix(want.trim().trim_start_matches("glibc ")).unwrap();
        let libc = [
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/aarch64-linux-gnu/libc.so.6",
            "/usr/lib64/libc.so.6",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
        let Some(libc) = libc else {
            eprintln!("SKIPPED: no libc.so.6 at a known path");
            return;
        };
        let mut f = std::fs::File::open(libc).unwrap();
        assert_eq!(scan_glibc_banner(&mut f).unwrap(), Some(want));

        let mut head = Vec::new();
        std::fs::File::open("/bin/sh")
            .unwrap()
            .take(HEAD_BYTES)
            .read_to_end(&mut head)
            .unwrap();
        let interp = elf_interpreter(&head).expect("/bin/sh has a program interpreter");
        assert!(
            interp.contains("ld-linux") || interp.contains("ld64.so"),
            "{interp}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn elf_reader_never_panics(mut head in proptest::collection::vec(proptest::num::u8::ANY, 0..600), le in proptest::bool::ANY) {
            if head.len() >= 6 {
                head[..4].copy_from_slice(b"\x7fELF");
                head[5] = if le { 1 } else { 2 };
            }
            let _ = elf_interpreter(&head);
        }
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean_path("./usr//bin/"), Some("usr/bin".into()));
        assert_eq!(clean_path("/"), None);
        assert_eq!(clean_path("a/../b"), None);
    }
}
