//! Bytecode for a base image's standard library, when the base ships it without.
//!
//! Docker Hub's `python` images delete every `.pyc` under `/usr/local` when they are built, the
//! standard library's included, and an image's user cannot write them at run time: every
//! container start compiles `asyncio`, `email`, `typing`, `json`, … again. Measured on the
//! fastapi example (bench/bytecode.sh): the first import takes 0.54 s with the dependencies'
//! bytecode alone and 0.23 s with the standard library's too.
//!
//! When the build ships bytecode and the standard library of the base's interpreter (the
//! directory holding `os.py`, as the runner finds it) has modules without a
//! `__pycache__/<stem>.<cache tag>.pyc`, one layer right above the base's adds those files:
//!
//! - compiled by the same [`Bytecode`] as the dependency and app layers (the build machine's
//!   interpreter of the same base), so `co_filename` is the path in the image and the bytes are
//!   the same on every machine;
//! - **timestamp-based** (PEP 552 flags `0`, [`rbuild_bytecode::timestamp_header`]), recording
//!   each source's mtime and size as the base's layer gives them: what CPython's own installation
//!   writes. The interpreter checks them with one `stat`, and a source that is not that file (a
//!   rebase onto another base keeps this layer) makes it compile the source instead of running
//!   the stale bytecode;
//! - not for the subtrees no service imports: tests (`test`, `tests`, `idle_test`, which Docker
//!   Hub removes anyway), `idlelib`, `tkinter`, `turtledemo`, `lib2to3`, `ensurepip`,
//!   `pydoc_data`, `config-*`, nor for `site-packages`/`dist-packages`.
//!
//! Keyed by the platform's base manifest digest, the interpreter path and the formats. On a miss
//! one pass over the base's layers lists the standard library's sources and `.pyc` files, and a
//! second copies out only the sources that lack bytecode. A base that needs nothing (Debian's
//! `python3`, whose packages compile at install) costs that one pass, once: it is remembered as
//! such, as every layer that turns out empty is (`Builder::layer`), so a warm build reads one key
//! either way.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use rbuild_bytecode::{Source, pyc_image_path};
use rbuild_layer::{LayerOptions, LayerWriter};
use rbuild_oci::{Descriptor, Digest};
use rbuild_python::rootfs::{Entry, EntryKind, Interest, Merged, Visitor, read_layers};
use rbuild_registry::Reference;
use serde::Serialize;

use crate::BuildError;
use crate::Builder;
use crate::error::other;
use crate::image::LayerKind;
use crate::layers::bytecode::{Bytecode, SourceStats, append_pycs};
use crate::layers::{LAYER_FORMAT_VERSION, LayerBuilder, LayerRecord, cache_key};
use crate::rootfs::open_layer_checked;
use crate::runner::BasePython;

/// The history line of the layer (how a rebase recognises it).
pub(crate) const HISTORY: &str = "rbuild: bytecode for the base image's standard library";

/// Subtrees (first component under the standard library) that get no bytecode.
const SKIPPED_TOP: &[&str] = &[
    "site-packages",
    "dist-packages",
    "idlelib",
    "tkinter",
    "turtledemo",
    "lib2to3",
    "ensurepip",
    "pydoc_data",
];

/// Directory names that get no bytecode wherever they are.
const SKIPPED_ANYWHERE: &[&str] = &["test", "tests", "idle_test", "__pycache__"];

/// Whether `rel` (a path under the standard library, relative to it) gets bytecode.
fn wanted(rel: &str) -> bool {
    let Some((dirs, _file)) = rel.rsplit_once('/') else {
        return true;
    };
    let first = dirs.split('/').next().unwrap_or_default();
    !(SKIPPED_TOP.contains(&first)
        || first.starts_with("config-")
        || dirs.split('/').any(|d| SKIPPED_ANYWHERE.contains(&d)))
}

/// The standard-library bytecode layer of one platform.
pub(crate) struct StdlibLayer {
    pub(crate) key: String,
    /// The base (this platform's manifest digest), its layers and their diff_ids (each checked
    /// as it is read).
    pub(crate) reference: Reference,
    pub(crate) base_digest: Digest,
    pub(crate) layers: Vec<Descriptor>,
    pub(crate) diff_ids: Vec<Digest>,
    /// `cpython-XY`: the cache tag whose `.pyc` files the base may already have.
    pub(crate) cache_tag: String,
    pub(crate) python: Arc<BasePython>,
    pub(crate) bytecode: Arc<Bytecode>,
    pub(crate) options: LayerOptions,
    pub(crate) platform: String,
}

impl StdlibLayer {
    /// The cache key: the platform's base image, the interpreter and every format involved.
    pub(crate) fn key_for(
        base_digest: Digest,
        interpreter: &str,
        options: &LayerOptions,
    ) -> String {
        #[derive(Serialize)]
        struct Inputs<'a> {
            layer_format: u32,
            pyc_format: u32,
            base: String,
            interpreter: &'a str,
            epoch: u64,
            compression: &'static str,
        }
        cache_key(
            "stdlib-bytecode",
            1,
            &Inputs {
                layer_format: LAYER_FORMAT_VERSION,
                pyc_format: rbuild_bytecode::FORMAT_VERSION,
                base: base_digest.to_string(),
                interpreter,
                epoch: options.mtime,
                compression: options.compression.as_str(),
            },
        )
    }
}

impl LayerBuilder for StdlibLayer {
    fn kind(&self) -> LayerKind {
        LayerKind::Stdlib
    }
    fn key(&self) -> Option<&str> {
        Some(&self.key)
    }
    async fn build(&self, builder: &Builder) -> Result<Option<LayerRecord>, BuildError> {
        let t0 = std::time::Instant::now();
        let (python, cache_tag, digest) = (
            self.python.clone(),
            self.cache_tag.clone(),
            self.base_digest,
        );
        // The build machine's own platform has its base unpacked for the interpreter already:
        // a base whose standard library has all its bytecode (most) needs no pass over its
        // layers.
        let complete = tokio::task::spawn_blocking(move || {
            let stdlib = python.stdlib_dir().map_err(BuildError::Bytecode)?;
            Ok::<_, BuildError>(
                python
                    .unpacked_dir(digest, &stdlib)
                    .is_some_and(|dir| !lacks_bytecode(&dir, "", &cache_tag)),
            )
        })
        .await
        .map_err(other)??;
        if complete {
            return Ok(None);
        }
        builder
            .client
            .fetch_blobs(&self.reference, &self.layers, &builder.store)
            .await?;
        let python = self.python.clone();
        let bytecode = self.bytecode.clone();
        let store = builder.store.clone();
        let (layers, diff_ids) = (self.layers.clone(), self.diff_ids.clone());
        let (cache_tag, options) = (self.cache_tag.clone(), self.options);
        let built = tokio::task::spawn_blocking(move || {
            let stdlib = python.stdlib_dir().map_err(BuildError::Bytecode)?;
            let scratch = bytecode.scratch()?;
            let spool = scratch.path().join("stdlib");
            std::fs::create_dir_all(&spool).map_err(other)?;
            // First which modules lack bytecode (most bases: none), then only their sources.
            let listed = stdlib_files(&store, &layers, &diff_ids, &stdlib, None, &spool)?;
            let missing: BTreeSet<String> = listed
                .iter()
                .filter(|(path, node)| {
                    matches!(node, StdlibNode::Py { .. })
                        && pyc_image_path(&format!("/{path}"), &cache_tag)
                            .is_some_and(|pyc| !listed.contains_key(pyc.trim_start_matches('/')))
                })
                .map(|(path, _)| path.clone())
                .collect();
            if missing.is_empty() {
                return Ok::<_, BuildError>(None);
            }
            let read = stdlib_files(&store, &layers, &diff_ids, &stdlib, Some(&missing), &spool)?;
            let mut sources = Vec::new();
            let mut stats = SourceStats::new();
            for (path, node) in read {
                let StdlibNode::Py {
                    mtime,
                    size,
                    host: Some(host),
                } = node
                else {
                    continue;
                };
                let image_path = format!("/{path}");
                stats.insert(image_path.clone(), (mtime, size));
                sources.push(Source {
                    image_path,
                    host_path: host,
                });
            }
            let out = bytecode.compile(scratch.path(), &sources)?;
            let mut w = LayerWriter::new(store.writer()?, &options)?;
            w.auto_parents(false);
            let root = |_: &str, mode| (mode, (0, 0));
            let bytes = append_pycs(&mut w, &out, &BTreeSet::new(), &root, Some(&stats))?;
            let (blob, info) = w.finish()?;
            Ok(Some((blob, info, out, bytes, stdlib)))
        })
        .await
        .map_err(other)??;
        let Some((blob, info, out, bytes, stdlib)) = built else {
            return Ok(None);
        };
        builder.progress.step(
            &self.platform,
            "bytecode",
            &format!(
                "standard library /{stdlib}: {}",
                crate::layers::bytecode::summary(&out, bytes)
            ),
            t0.elapsed().as_secs_f64(),
        );
        Ok(Some(builder.finish_layer(Some(&self.key), blob, &info)?))
    }
}

/// Whether the unpacked standard library `dir` has a module (under `rel`, its path relative to
/// the standard library) without a `__pycache__/<stem>.<cache_tag>.pyc`; an unreadable directory
/// counts as lacking (the layers are read then).
fn lacks_bytecode(dir: &std::path::Path, rel: &str, cache_tag: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return true;
    };
    let mut names: Vec<(String, std::fs::FileType)> = Vec::new();
    for e in entries {
        let Ok(e) = e else { return true };
        let (Ok(name), Ok(kind)) = (e.file_name().into_string(), e.file_type()) else {
            return true;
        };
        names.push((name, kind));
    }
    names.iter().any(|(name, kind)| {
        let rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if kind.is_dir() {
            name != "__pycache__"
                && wanted(&format!("{rel}/x.py"))
                && lacks_bytecode(&dir.join(name), &rel, cache_tag)
        } else {
            kind.is_file()
                && name.ends_with(".py")
                && wanted(&rel)
                && pyc_image_path(&format!("/{rel}"), cache_tag).is_some_and(|pyc| {
                    let pyc_name = pyc.rsplit('/').next().unwrap_or_default();
                    !dir.join("__pycache__").join(pyc_name).is_file()
                })
        }
    })
}

/// The standard library's files in the merged base layers: every module source and `.pyc`; the
/// sources in `read` are also copied into `spool`.
fn stdlib_files(
    store: &rbuild_oci::Store,
    layers: &[Descriptor],
    diff_ids: &[Digest],
    stdlib: &str,
    read: Option<&BTreeSet<String>>,
    spool: &std::path::Path,
) -> Result<BTreeMap<String, StdlibNode>, BuildError> {
    let mut view = Merged::new(StdlibFiles {
        dir: stdlib.to_string(),
        read: read.cloned(),
        spool: spool.to_path_buf(),
        spooled: 0,
    });
    read_layers(
        layers
            .iter()
            .enumerate()
            .map(|(i, d)| open_layer_checked(store, i, d, diff_ids)),
        &mut [&mut view],
    )
    .map_err(|e| other(format!("reading the base's standard library: {e}")))?;
    Ok(view.into_parts().1)
}

/// What the merged view keeps under the standard library.
enum StdlibNode {
    /// A module source: its mtime and size as the layer gives them, and its spooled copy when
    /// it was read.
    Py {
        mtime: u64,
        size: u64,
        host: Option<PathBuf>,
    },
    /// A `.pyc` file the base has.
    Pyc,
}

/// Keeps the standard library's module sources and `.pyc` files; the sources in `read` are
/// copied into `spool` as they stream by.
struct StdlibFiles {
    /// The standard library (relative, no trailing `/`).
    dir: String,
    read: Option<BTreeSet<String>>,
    spool: PathBuf,
    spooled: usize,
}

impl StdlibFiles {
    fn relative<'a>(&self, path: &'a str) -> Option<&'a str> {
        path.strip_prefix(self.dir.as_str())?.strip_prefix('/')
    }
}

impl Visitor for StdlibFiles {
    type Node = StdlibNode;

    fn interest(&mut self, entry: &Entry<'_>) -> Interest<StdlibNode> {
        let Some(rel) = self.relative(entry.path) else {
            return Interest::Skip;
        };
        if entry.kind != EntryKind::File {
            return Interest::Skip;
        }
        if rel.ends_with(".pyc") && rel.contains("__pycache__/") {
            Interest::Keep(StdlibNode::Pyc)
        } else if rel.ends_with(".py") && wanted(rel) {
            match &self.read {
                Some(read) if read.contains(entry.path) => Interest::Read,
                _ => Interest::Keep(StdlibNode::Py {
                    mtime: entry.mtime,
                    size: entry.size,
                    host: None,
                }),
            }
        } else {
            Interest::Skip
        }
    }

    fn read(
        &mut self,
        entry: &Entry<'_>,
        content: &mut dyn Read,
    ) -> io::Result<Option<StdlibNode>> {
        let host = self.spool.join(format!("{}.py", self.spooled));
        self.spooled += 1;
        let mut f = std::fs::File::create(&host)?;
        let size = io::copy(content, &mut f)?;
        Ok(Some(StdlibNode::Py {
            mtime: entry.mtime,
            size,
            host: Some(host),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::{lacks_bytecode, wanted};

    #[test]
    fn an_unpacked_standard_library_lacks_bytecode_only_for_a_wanted_module() {
        let dir = tempfile::tempdir().unwrap();
        let put = |p: &str| {
            let p = dir.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        };
        put("os.py");
        put("__pycache__/os.cpython-311.pyc");
        put("asyncio/base_events.py");
        put("asyncio/__pycache__/base_events.cpython-311.pyc");
        put("test/test_os.py");
        put("site-packages/pip/__init__.py");
        put("README.txt");
        assert!(!lacks_bytecode(dir.path(), "", "cpython-311"));
        assert!(lacks_bytecode(dir.path(), "", "cpython-312"), "another tag");
        put("json/__init__.py");
        assert!(lacks_bytecode(dir.path(), "", "cpython-311"));
    }

    #[test]
    fn tests_gui_and_installed_packages_get_no_bytecode() {
        for yes in [
            "os.py",
            "asyncio/base_events.py",
            "email/mime/text.py",
            "json/__init__.py",
        ] {
            assert!(wanted(yes), "{yes}");
        }
        for no in [
            "test/test_os.py",
            "unittest/test/test_case.py",
            "ctypes/test/__init__.py",
            "idlelib/idle.py",
            "tkinter/__init__.py",
            "lib2to3/pytree.py",
            "site-packages/pip/__init__.py",
            "dist-packages/x.py",
            "config-3.12-x86_64-linux-gnu/python-config.py",
            "pydoc_data/topics.py",
        ] {
            assert!(!wanted(no), "{no}");
        }
    }
}
