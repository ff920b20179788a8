//! One streaming, whiteout-aware reader of an image's layers, shared by everything that reads the
//! base image's files.
//!
//! [`read_layers`] reads each layer (an uncompressed tar stream, base layer first) once, entry by
//! entry, and applies it to one or more [`Merged`] views with the OCI layer semantics:
//!
//! - `DIR/.wh.NAME` deletes `DIR/NAME` (and everything under it) from the layers below;
//! - `DIR/.wh..wh..opq` empties `DIR` of everything from the layers below;
//! - a non-directory replaces whatever a lower layer had at its path (a directory with all it holds);
//!   a directory over a directory merges with it;
//! - whiteouts only hide what lower layers hold, never the entries of their own layer; later layers
//!   win.
//!
//! A view keeps only what its [`Visitor`] asks for: the visitor sees every entry's path, kind, mode,
//! size and link target and decides, from those alone, whether to skip it, keep a value for it, or read
//! its content (a head, a small text, a parsed database) into a value. Nothing else of a layer is held:
//! memory is what the visitors keep. When more than one visitor reads the same file, its content is
//! read into memory once and each gets the same bytes.
//!
//! Target detection is one visitor ([`crate::target::TargetFiles`]), the base facts another
//! ([`BaseFactsVisitor`], read into [`BaseFacts`]); a build runs both over one decompression of each
//! layer.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use serde::{Deserialize, Serialize};

/// What kind of tar entry an [`Entry`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular (or contiguous) file.
    File,
    /// A symbolic link; [`Entry::link`] is its target as written.
    Symlink,
    /// A hard link; [`Entry::link`] is the linked path as written in the tar.
    Hardlink,
    /// Anything else (devices, FIFOs, …): kept by no visitor shipped here, but it still replaces a
    /// lower layer's entry at its path.
    Other,
}

/// One entry of a layer, as a [`Visitor`] sees it (whiteout entries are never shown).
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The path, relative, without a leading `/`, `.` components or a trailing `/`; `""` for the
    /// root directory. Entries with `..` components are ignored.
    pub path: &'a str,
    /// The kind.
    pub kind: EntryKind,
    /// The permission bits (`& 0o7777`); `0o755` when the header's mode cannot be read.
    pub mode: u32,
    /// The size the header gives (the content's length for files).
    pub size: u64,
    /// The target of a symbolic or hard link, lossily decoded, as written.
    pub link: Option<&'a str>,
    /// The numeric owner (`uid`, `gid`) the header gives; `(0, 0)` when it cannot be read.
    pub owner: (u32, u32),
    /// The modification time (seconds since the epoch) the header gives; `0` when it cannot be
    /// read. What a container runtime gives the file, and so what a timestamp-based `.pyc` of it
    /// must record.
    pub mtime: u64,
}

impl Entry<'_> {
    /// The directory part of the path (`""` at the top).
    pub fn dir(&self) -> &str {
        self.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
    }

    /// The last component of the path.
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(self.path)
    }
}

/// What a visitor does with an entry, decided from the [`Entry`] alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interest<N> {
    /// Not kept; a non-directory still replaces what lower layers had at its path.
    Skip,
    /// Kept as this value, without reading the content.
    Keep(N),
    /// The content is needed: [`Visitor::read`] is called with it.
    Read,
}

/// Decides what a [`Merged`] view keeps of each entry.
pub trait Visitor {
    /// The value kept for a path.
    type Node;

    /// What to do with an entry.
    fn interest(&mut self, entry: &Entry<'_>) -> Interest<Self::Node>;

    /// Reads an entry whose [`Visitor::interest`] was [`Interest::Read`] into the value to keep
    /// (`None`: not kept after all). `content` need not be read to its end.
    fn read(&mut self, entry: &Entry<'_>, content: &mut dyn Read)
    -> io::Result<Option<Self::Node>>;

    /// The value to keep for a directory that a layer does not list but a path of one of its entries
    /// goes through (`path` is that directory, a proper prefix of the entry's path), unless something is
    /// already kept there. `None` (the default) keeps nothing.
    fn implied_dir(&mut self, path: &str) -> Option<Self::Node> {
        let _ = path;
        None
    }
}

/// A merged view that layers are applied to by [`read_layers`]. Implemented by [`Merged`]; implement
/// it by delegation to wrap a `Merged` in a type of your own.
pub trait Apply {
    /// Whether the content of this entry is wanted (called once per non-whiteout entry, right before
    /// [`Apply::entry`]).
    fn wants_content(&mut self, entry: &Entry<'_>) -> bool;
    /// Applies an entry; `content` is its content if [`Apply::wants_content`] said so, else empty.
    fn entry(&mut self, entry: &Entry<'_>, content: &mut dyn Read) -> io::Result<()>;
    /// `.wh.NAME` in the current layer: `path` (and everything under it) goes from the lower layers.
    fn whiteout(&mut self, path: &str);
    /// `.wh..wh..opq` in the current layer: `dir` (`""` for the root) is emptied of the lower layers.
    fn opaque(&mut self, dir: &str);
    /// The current layer ended: its changes take effect.
    fn end_layer(&mut self);
}

/// What one layer changes, applied when it ends (whiteouts only hide lower layers).
struct Diff<N> {
    /// Kept entries of this layer: path → (is a directory, value).
    entries: BTreeMap<String, (bool, N)>,
    /// Values for directories implied by the paths of this layer's entries.
    implied: BTreeMap<String, N>,
    whiteouts: Vec<String>,
    opaque: Vec<String>,
}

impl<N> Default for Diff<N> {
    fn default() -> Self {
        Diff {
            entries: BTreeMap::new(),
            implied: BTreeMap::new(),
            whiteouts: Vec::new(),
            opaque: Vec::new(),
        }
    }
}

/// The merged view of all layers read so far, holding only what one [`Visitor`] keeps: path
/// (relative, `""` for the root) → value.
pub struct Merged<V: Visitor> {
    visitor: V,
    nodes: BTreeMap<String, V::Node>,
    diff: Diff<V::Node>,
    /// The interest of the entry between [`Apply::wants_content`] and [`Apply::entry`].
    pending: Option<Interest<V::Node>>,
}

impl<V: Visitor> Merged<V> {
    /// An empty view (no layers) kept by `visitor`.
    pub fn new(visitor: V) -> Merged<V> {
        Merged {
            visitor,
            nodes: BTreeMap::new(),
            diff: Diff::default(),
            pending: None,
        }
    }

    /// What is kept, by path.
    pub fn nodes(&self) -> &BTreeMap<String, V::Node> {
        &self.nodes
    }

    /// The visitor and what is kept.
    pub fn into_parts(self) -> (V, BTreeMap<String, V::Node>) {
        (self.visitor, self.nodes)
    }

    fn has_path_or_below(&self, path: &str) -> bool {
        let prefix = format!("{path}/");
        self.nodes.contains_key(path)
            || self
                .nodes
                .range(prefix.clone()..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    fn remove_below(&mut self, dir: &str) {
        if dir.is_empty() {
            self.nodes.retain(|k, _| k.is_empty());
            return;
        }
        let prefix = format!("{dir}/");
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }
}

impl<V: Visitor> Apply for Merged<V> {
    fn wants_content(&mut self, entry: &Entry<'_>) -> bool {
        let interest = self.visitor.interest(entry);
        let wants = matches!(interest, Interest::Read);
        self.pending = Some(interest);
        wants
    }

    fn entry(&mut self, entry: &Entry<'_>, content: &mut dyn Read) -> io::Result<()> {
        let interest = match self.pending.take() {
            Some(i) => i,
            None => self.visitor.interest(entry),
        };
        let node = match interest {
            Interest::Skip => None,
            Interest::Keep(n) => Some(n),
            Interest::Read => self.visitor.read(entry, content)?,
        };
        // The directories a path goes through exist, listed or not.
        let path = entry.path;
        for (i, _) in path.match_indices('/') {
            let dir = &path[..i];
            if !self.diff.implied.contains_key(dir)
                && let Some(n) = self.visitor.implied_dir(dir)
            {
                self.diff.implied.insert(dir.to_string(), n);
            }
        }
        let is_dir = entry.kind == EntryKind::Dir;
        match node {
            Some(n) => {
                self.diff.entries.insert(path.to_string(), (is_dir, n));
            }
            None if !is_dir => {
                // A non-directory we do not keep still replaces whatever a lower layer had there.
                self.diff.entries.remove(path);
                if self.has_path_or_below(path) {
                    self.diff.whiteouts.push(path.to_string());
                }
            }
            None => {}
        }
        Ok(())
    }

    fn whiteout(&mut self, path: &str) {
        self.diff.whiteouts.push(path.to_string());
    }

    fn opaque(&mut self, dir: &str) {
        self.diff.opaque.push(dir.to_string());
    }

    fn end_layer(&mut self) {
        let diff = std::mem::take(&mut self.diff);
        for dir in &diff.opaque {
            self.remove_below(dir);
        }
        for path in &diff.whiteouts {
            self.nodes.remove(path);
            self.remove_below(path);
        }
        for (path, (is_dir, node)) in diff.entries {
            if !is_dir {
                self.remove_below(&path);
            }
            self.nodes.insert(path, node);
        }
        for (dir, node) in diff.implied {
            self.nodes.entry(dir).or_insert(node);
        }
    }
}

/// A layer that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read layer {index} of the base image: {source}")]
pub struct LayerError {
    /// 0-based index, base layer first.
    pub index: usize,
    /// The I/O or tar error (or the error opening the layer).
    #[source]
    pub source: io::Error,
}

/// Normalizes a tar path: no leading `./` or `/`, no trailing `/`, no `.` components (`""` for the
/// root); `None` for paths with `..`, which never name anything inside the image.
pub fn clean_path(raw: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Reads the layers (uncompressed tar streams, base layer first; an `Err` item is that layer's
/// error) once each and applies every entry to every view, in order. Returns how many layers were
/// read.
pub fn read_layers<I, R>(layers: I, views: &mut [&mut dyn Apply]) -> Result<usize, LayerError>
where
    I: IntoIterator<Item = io::Result<R>>,
    R: Read,
{
    let mut count = 0;
    for (index, layer) in layers.into_iter().enumerate() {
        count += 1;
        let reader = layer.map_err(|source| LayerError { index, source })?;
        apply_layer(reader, views).map_err(|source| LayerError { index, source })?;
    }
    Ok(count)
}

/// Applies one uncompressed layer tar stream to the views, then reads the stream to its end (the
/// padding after the tar's end marker), so a reader that checks the whole stream (a layer's
/// `diff_id`) sees all of it.
fn apply_layer(mut reader: impl Read, views: &mut [&mut dyn Apply]) -> io::Result<()> {
    apply_entries(&mut reader, views)?;
    io::copy(&mut reader, &mut io::sink())?;
    Ok(())
}

fn apply_entries(reader: impl Read, views: &mut [&mut dyn Apply]) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    let mut wants = vec![false; views.len()];
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(path) = clean_path(&raw) else {
            continue;
        };
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        if name == ".wh..wh..opq" {
            views.iter_mut().for_each(|v| v.opaque(dir));
            continue;
        }
        if let Some(victim) = name.strip_prefix(".wh.") {
            let victim = if dir.is_empty() {
                victim.to_string()
            } else {
                format!("{dir}/{victim}")
            };
            views.iter_mut().for_each(|v| v.whiteout(&victim));
            continue;
        }
        let header = entry.header();
        let tar_kind = header.entry_type();
        let kind = if tar_kind.is_dir() {
            EntryKind::Dir
        } else if tar_kind.is_symlink() {
            EntryKind::Symlink
        } else if tar_kind.is_hard_link() {
            EntryKind::Hardlink
        } else if tar_kind.is_file() || tar_kind == tar::EntryType::Continuous {
            EntryKind::File
        } else {
            EntryKind::Other
        };
        let mode = header.mode().unwrap_or(0o755) & 0o7777;
        let link = match kind {
            EntryKind::Symlink | EntryKind::Hardlink => entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        };
        let id = |v: io::Result<u64>| v.ok().and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
        let owner = (id(header.uid()), id(header.gid()));
        let e = Entry {
            path: &path,
            kind,
            mode,
            size: entry.size(),
            link: link.as_deref(),
            owner,
            mtime: header.mtime().unwrap_or(0),
        };
        for (w, v) in wants.iter_mut().zip(views.iter_mut()) {
            *w = v.wants_content(&e);
        }
        let readers = wants.iter().filter(|w| **w).count();
        let shared = if readers > 1 {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf)?;
            Some(buf)
        } else {
            None
        };
        for (w, v) in wants.iter().zip(views.iter_mut()) {
            match (w, &shared) {
                (false, _) => v.entry(&e, &mut io::empty())?,
                (true, Some(buf)) => v.entry(&e, &mut buf.as_slice())?,
                (true, None) => v.entry(&e, &mut entry)?,
            }
        }
    }
    views.iter_mut().for_each(|v| v.end_layer());
    Ok(())
}

/// Facts from the base image's files besides the Python target: `/etc/passwd`, `/etc/group`,
/// directory modes, and the RECORD of every installed distribution (to replace one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseFacts {
    /// `/etc/passwd`, when present.
    pub passwd: Option<String>,
    /// `/etc/group`, when present.
    pub group: Option<String>,
    /// Modes of directories (relative paths without leading `/`; `""` is the root when a layer lists
    /// it).
    pub dir_modes: BTreeMap<String, u32>,
    /// Owners (`uid`, `gid`) of the directories not owned by `0:0` (e.g. a venv owned by
    /// `1001:0`); a directory missing here that is in [`BaseFacts::dir_modes`] is owned by root.
    #[serde(default)]
    pub dir_owners: BTreeMap<String, (u32, u32)>,
    /// RECORD files of installed distributions: dist-info path (relative) → RECORD text.
    pub records: BTreeMap<String, String>,
    /// The launchers an entrypoint may name that the base has (files or links, relative paths):
    /// the shells and `env` of [`PROGRAMS`] in `bin/`, `usr/bin/`, `sbin/`, `usr/sbin/`,
    /// `usr/local/bin/`.
    #[serde(default)]
    pub programs: BTreeSet<String>,
}

/// The program names [`BaseFacts::programs`] records: what a recipe, an entrypoint or a script's
/// `#!` line may need that a shell-less base (distroless, chiselled) lacks.
pub const PROGRAMS: [&str; 7] = ["sh", "bash", "dash", "ash", "zsh", "busybox", "env"];

fn program_path(path: &str) -> bool {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    matches!(
        dir,
        "bin" | "usr/bin" | "sbin" | "usr/sbin" | "usr/local/bin"
    ) && PROGRAMS.contains(&name)
}

impl BaseFacts {
    /// Whether the base has the program at `path` (absolute, e.g. `/bin/sh`). With a merged
    /// `/usr` (`/bin` a link to `usr/bin`), `/bin/X` and `/usr/bin/X` are the same file, so either
    /// answers. `None`: `path` is not one [`BaseFacts::programs`] tracks.
    pub fn has_program(&self, path: &str) -> Option<bool> {
        let rel = path.trim_start_matches('/');
        if !program_path(rel) {
            return None;
        }
        let twin = match rel.split_once('/') {
            Some(("bin", n)) => format!("usr/bin/{n}"),
            Some(("sbin", n)) => format!("usr/sbin/{n}"),
            Some(("usr", rest)) if !rest.starts_with("local/") => rest.to_string(),
            _ => rel.to_string(),
        };
        Some(self.programs.contains(rel) || self.programs.contains(&twin))
    }
}

/// What [`BaseFactsVisitor`] keeps of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactNode {
    /// A directory owned by `0:0` and its permission bits.
    Dir(u32),
    /// A directory with another owner: permission bits and (`uid`, `gid`).
    OwnedDir(u32, (u32, u32)),
    /// A small text file (`etc/passwd`, `etc/group`, a `*.dist-info/RECORD`). Not valid UTF-8: empty.
    Text(String),
    /// A file or link at one of the program paths [`BaseFacts::programs`] records.
    Program,
}

/// The [`Visitor`] of [`BaseFacts`]: every directory's mode, and the texts of `etc/passwd`,
/// `etc/group` and each `*.dist-info/RECORD` (at most 8 directories deep) up to 4 MiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct BaseFactsVisitor;

/// The largest text file [`BaseFactsVisitor`] reads.
const SMALL_TEXT: u64 = 4 * 1024 * 1024;

fn wanted_text(path: &str) -> bool {
    path == "etc/passwd"
        || path == "etc/group"
        || (path.ends_with(".dist-info/RECORD") && path.matches('/').count() <= 8)
}

impl Visitor for BaseFactsVisitor {
    type Node = FactNode;

    fn interest(&mut self, entry: &Entry<'_>) -> Interest<FactNode> {
        match entry.kind {
            EntryKind::Dir if entry.owner == (0, 0) => Interest::Keep(FactNode::Dir(entry.mode)),
            EntryKind::Dir => Interest::Keep(FactNode::OwnedDir(entry.mode, entry.owner)),
            EntryKind::File if wanted_text(entry.path) && entry.size <= SMALL_TEXT => {
                Interest::Read
            }
            EntryKind::File | EntryKind::Symlink | EntryKind::Hardlink
                if program_path(entry.path) =>
            {
                Interest::Keep(FactNode::Program)
            }
            _ => Interest::Skip,
        }
    }

    fn read(&mut self, _: &Entry<'_>, content: &mut dyn Read) -> io::Result<Option<FactNode>> {
        let mut text = String::new();
        // Unreadable or not UTF-8: kept as empty, as if it listed nothing.
        content.read_to_string(&mut text).ok();
        Ok(Some(FactNode::Text(text)))
    }
}

impl BaseFacts {
    /// The facts kept in a view read by [`BaseFactsVisitor`].
    pub fn from_merged(view: Merged<BaseFactsVisitor>) -> BaseFacts {
        let mut facts = BaseFacts::default();
        for (path, node) in view.into_parts().1 {
            match node {
                FactNode::Dir(mode) => {
                    facts.dir_modes.insert(path, mode);
                }
                FactNode::OwnedDir(mode, owner) => {
                    facts.dir_owners.insert(path.clone(), owner);
                    facts.dir_modes.insert(path, mode);
                }
                FactNode::Program => {
                    facts.programs.insert(path);
                }
                FactNode::Text(text) => match path.as_str() {
                    "etc/passwd" => facts.passwd = Some(text),
                    "etc/group" => facts.group = Some(text),
                    _ => {
                        if let Some(dist_info) = path.strip_suffix("/RECORD") {
                            facts.records.insert(dist_info.to_string(), text);
                        }
                    }
                },
            }
        }
        facts
    }

    /// Reads the facts from uncompressed layer tars, base first (one pass of [`read_layers`] with
    /// [`BaseFactsVisitor`] alone).
    pub fn read<R: Read>(
        layers: impl IntoIterator<Item = io::Result<R>>,
    ) -> Result<BaseFacts, LayerError> {
        let mut view = Merged::new(BaseFactsVisitor);
        read_layers(layers, &mut [&mut view])?;
        Ok(BaseFacts::from_merged(view))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum E<'a> {
        Dir(&'a str),
        File(&'a str, &'a str),
        Link(&'a str, &'a str),
    }
    use E::*;

    fn layer(entries: &[E<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_ustar();
            match e {
                Dir(p) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o2775);
                    h.set_size(0);
                    b.append_data(&mut h, p, &[][..]).unwrap();
                }
                File(p, c) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(0o644);
                    h.set_size(c.len() as u64);
                    b.append_data(&mut h, p, c.as_bytes()).unwrap();
                }
                Link(p, t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    b.append_link(&mut h, p, t).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn ok(layers: &[Vec<u8>]) -> impl Iterator<Item = io::Result<&[u8]>> {
        layers.iter().map(|l| Ok(l.as_slice()))
    }

    /// Keeps every path, with its kind and the text of files under `read/`.
    struct All;
    impl Visitor for All {
        type Node = String;
        fn interest(&mut self, e: &Entry<'_>) -> Interest<String> {
            if e.path.starts_with("read/") && e.kind == EntryKind::File {
                Interest::Read
            } else {
                Interest::Keep(format!("{:?}", e.kind))
            }
        }
        fn read(&mut self, _: &Entry<'_>, c: &mut dyn Read) -> io::Result<Option<String>> {
            let mut s = String::new();
            c.read_to_string(&mut s)?;
            Ok(Some(s))
        }
    }

    /// Keeps only files named `keep*`, and `kept-dir` directories implied by their paths.
    struct Some_;
    impl Visitor for Some_ {
        type Node = &'static str;
        fn interest(&mut self, e: &Entry<'_>) -> Interest<&'static str> {
            match e.kind {
                EntryKind::File if e.name().starts_with("keep") => Interest::Keep("file"),
                _ => Interest::Skip,
            }
        }
        fn read(&mut self, _: &Entry<'_>, _: &mut dyn Read) -> io::Result<Option<&'static str>> {
            unreachable!("never asks for content")
        }
        fn implied_dir(&mut self, path: &str) -> Option<&'static str> {
            path.ends_with("kept-dir").then_some("implied")
        }
    }

    fn keys<N>(m: &BTreeMap<String, N>) -> Vec<&str> {
        m.keys().map(String::as_str).collect()
    }

    #[test]
    fn whiteouts_opaque_dirs_and_replacement() {
        let l1 = layer(&[
            Dir("a"),
            File("a/one", ""),
            Dir("a/sub"),
            File("a/sub/two", ""),
            Dir("b"),
            File("b/x", ""),
            Dir("c"),
            File("c/y", ""),
            File("d", ""),
        ]);
        let l2 = layer(&[
            File("a/.wh.sub", ""),
            // A whiteout does not hide its own layer's entries.
            File("b/.wh..wh..opq", ""),
            File("b/new", ""),
            // A symlink replaces a directory and all it holds.
            Link("c", "a"),
            // A directory replaces a file.
            Dir("d"),
        ]);
        let mut v = Merged::new(All);
        assert_eq!(read_layers(ok(&[l1, l2]), &mut [&mut v]).unwrap(), 2);
        assert_eq!(
            keys(v.nodes()),
            ["a", "a/one", "b", "b/new", "c", "d"],
            "{:?}",
            v.nodes()
        );
        assert_eq!(v.nodes()["c"], "Symlink");
        assert_eq!(v.nodes()["d"], "Dir");
    }

    #[test]
    fn a_file_not_kept_still_replaces_what_was_kept() {
        let l1 = layer(&[File("x/keep", ""), File("y/keep", "")]);
        let l2 = layer(&[File("x", ""), Link("y/keep", "elsewhere")]);
        let mut v = Merged::new(Some_);
        read_layers(ok(std::slice::from_ref(&l1)), &mut [&mut v]).unwrap();
        assert_eq!(keys(v.nodes()), ["x/keep", "y/keep"]);
        let mut v = Merged::new(Some_);
        read_layers(ok(&[l1, l2]), &mut [&mut v]).unwrap();
        assert!(v.nodes().is_empty(), "{:?}", v.nodes());
    }

    #[test]
    fn implied_directories_and_later_layers_win() {
        let l1 = layer(&[File("p/kept-dir/q/keep", "")]);
        let mut v = Merged::new(Some_);
        read_layers(ok(&[l1]), &mut [&mut v]).unwrap();
        assert_eq!(v.nodes()["p/kept-dir"], "implied");
        assert_eq!(keys(v.nodes()), ["p/kept-dir", "p/kept-dir/q/keep"]);

        let l1 = layer(&[File("read/t", "old")]);
        let l2 = layer(&[File("read/t", "new")]);
        let mut v = Merged::new(All);
        read_layers(ok(&[l1, l2]), &mut [&mut v]).unwrap();
        assert_eq!(v.nodes()["read/t"], "new");
    }

    #[test]
    fn two_visitors_reading_one_file_get_the_same_bytes() {
        let l = layer(&[File("read/t", "shared"), File("read/u", "also")]);
        let (mut a, mut b, mut c) = (Merged::new(All), Merged::new(All), Merged::new(Some_));
        read_layers(ok(&[l]), &mut [&mut a, &mut b, &mut c]).unwrap();
        for v in [&a, &b] {
            assert_eq!(v.nodes()["read/t"], "shared");
            assert_eq!(v.nodes()["read/u"], "also");
        }
        assert!(c.nodes().is_empty());
    }

    #[test]
    fn errors_name_the_layer() {
        let good = layer(&[File("a", "")]);
        let layers: Vec<io::Result<&[u8]>> =
            vec![Ok(&good), Err(io::Error::other("blob missing")), Ok(&good)];
        let err = read_layers(layers, &mut [&mut Merged::new(All)]).unwrap_err();
        assert_eq!(err.index, 1);
        assert_eq!(
            err.to_string(),
            "cannot read layer 1 of the base image: blob missing"
        );
        let truncated = &good[..700];
        let err = read_layers([Ok(truncated)], &mut [&mut Merged::new(All)]).unwrap_err();
        assert_eq!(err.index, 0);
    }

    /// Counts the bytes read and fails at the end of the stream, as a diff_id check does.
    struct FailsAtEnd<'a>(&'a [u8]);
    impl Read for FailsAtEnd<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            if n == 0 && !buf.is_empty() {
                return Err(io::Error::other("checked at the end"));
            }
            Ok(n)
        }
    }

    #[test]
    fn each_layer_is_read_to_its_end() {
        // tar::Builder pads the archive past its end marker; the padding is read too, so a check
        // at the end of the stream (the diff_id) always runs.
        let l = layer(&[File("a", "x")]);
        let err = read_layers(
            [Ok::<_, io::Error>(FailsAtEnd(&l))],
            &mut [&mut Merged::new(All)],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read layer 0 of the base image: checked at the end"
        );
    }

    #[test]
    fn base_facts_honour_whiteouts_and_layer_order() {
        let l1 = layer(&[
            Dir("etc"),
            File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
            File("etc/group", "root:x:0:\n"),
            Dir("usr/local/lib/python3.11/dist-packages"),
            File(
                "usr/local/lib/python3.11/dist-packages/pip-23.0.dist-info/RECORD",
                "pip/__init__.py,,\n",
            ),
            Dir("opt/x"),
            Dir("opt/x/y"),
        ]);
        let l2 = layer(&[
            File(
                "etc/passwd",
                "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
            ),
            File(
                "usr/local/lib/python3.11/dist-packages/.wh.pip-23.0.dist-info",
                "",
            ),
            File(
                "usr/local/lib/python3.11/dist-packages/pip-24.0.dist-info/RECORD",
                "pip/__init__.py,,\n",
            ),
            File("opt/x/.wh..wh..opq", ""),
            Dir("opt/x/z"),
        ]);
        let f = BaseFacts::read(ok(&[l1, l2])).unwrap();
        assert!(f.passwd.unwrap().contains("nobody"));
        assert_eq!(f.group.as_deref(), Some("root:x:0:\n"));
        assert_eq!(
            f.records.keys().cloned().collect::<Vec<_>>(),
            vec!["usr/local/lib/python3.11/dist-packages/pip-24.0.dist-info".to_string()]
        );
        assert_eq!(
            f.dir_modes.get("usr/local/lib/python3.11/dist-packages"),
            Some(&0o2775)
        );
        assert!(f.dir_modes.contains_key("opt/x/z"));
        assert!(
            !f.dir_modes.contains_key("opt/x/y"),
            "opaque whiteout hides the lower layer's entries"
        );
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean_path("./usr//bin/").as_deref(), Some("usr/bin"));
        assert_eq!(clean_path("./").as_deref(), Some(""));
        assert_eq!(clean_path("a/../b"), None);
    }

    #[test]
    fn base_facts_keep_owners_of_directories_not_owned_by_root() {
        let mut b = tar::Builder::new(Vec::new());
        for (p, uid, gid) in [("opt/app-root", 1001, 0), ("opt", 0, 0), ("srv", 0, 50)] {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o2775);
            h.set_uid(uid);
            h.set_gid(gid);
            h.set_size(0);
            b.append_data(&mut h, p, &[][..]).unwrap();
        }
        let l = b.into_inner().unwrap();
        let mut view = Merged::new(BaseFactsVisitor);
        read_layers(ok(&[l]), &mut [&mut view]).unwrap();
        let f = BaseFacts::from_merged(view);
        assert_eq!(
            f.dir_owners.into_iter().collect::<Vec<_>>(),
            [
                ("opt/app-root".to_string(), (1001, 0)),
                ("srv".to_string(), (0, 50))
            ]
        );
        assert_eq!(f.dir_modes.len(), 3);
    }
}
