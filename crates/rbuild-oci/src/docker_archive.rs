//! The docker-archive sink (`--output docker-archive:FILE`): the tarball `docker save` writes and
//! `docker load` / `podman load` / skopeo's `docker-archive:` transport read.
//!
//! Layout of the archive: `manifest.json` (`[{"Config", "RepoTags", "Layers"}]`), the config as
//! `<config hex>.json`, and each layer *uncompressed* as `<diff_id hex>.tar`, which every loader accepts.
//! Each layer is decompressed twice (once to learn its size and check its diff_id, once into the
//! archive) so nothing is held in memory or unpacked to disk. The archive is written to a temp file
//! beside the destination and renamed at the end: an error leaves no partial file.

use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{Descriptor, Digest, HashingReader, Image, LayerCompression, canonical_json};

/// Errors from the docker-archive sink.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A filesystem operation failed.
    #[error("docker-archive {path}: {action}: {source}")]
    Io {
        /// What was being done.
        action: String,
        /// Where.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A layer's uncompressed bytes do not match the config's diff_id.
    #[error(
        "docker-archive: layer {digest} uncompresses to {actual}, but the config says {expected}"
    )]
    DiffIdMismatch {
        /// The layer blob.
        digest: Digest,
        /// The diff_id from the config.
        expected: Digest,
        /// What it really is.
        actual: Digest,
    },
    /// The config lists no diff_id for a layer (not an image config).
    #[error(
        "docker-archive: layer {digest} has no diff_id in the image config; only images can be written to a docker-archive"
    )]
    NoDiffId {
        /// The layer blob.
        digest: Digest,
    },
    /// A layer type that cannot be decompressed.
    #[error(
        "docker-archive: layer {digest} has media type {media_type}, which is not a layer type rbuild can read"
    )]
    UnknownLayerType {
        /// The layer blob.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
}

#[derive(Serialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn decompressor<'a>(
    desc: &Descriptor,
    raw: Box<dyn Read + Send + 'a>,
) -> Result<Box<dyn Read + 'a>, ArchiveError> {
    let io_err = |source| ArchiveError::Io {
        action: format!("decompress layer {}", desc.digest),
        path: PathBuf::new(),
        source,
    };
    match desc.media_type.layer_compression() {
        Some(LayerCompression::None) => Ok(raw),
        Some(LayerCompression::Gzip) => Ok(Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::new(raw),
        ))),
        Some(LayerCompression::Zstd) => Ok(Box::new(
            zstd::stream::read::Decoder::new(raw).map_err(io_err)?,
        )),
        None => Err(ArchiveError::UnknownLayerType {
            digest: desc.digest,
            media_type: desc.media_type.to_string(),
        }),
    }
}

/// Writes `image` as a docker-archive at `dest` with `repo_tags` (`name:tag`, may be empty);
/// `open` opens a layer's blob (twice per layer: once to learn its size and check its diff_id, once
/// into the archive); tar entries get `mtime`.
pub fn write_docker_archive(
    dest: &Path,
    image: &Image,
    repo_tags: &[String],
    open: &mut dyn FnMut(&Descriptor) -> io::Result<Box<dyn Read + Send>>,
    mtime: u64,
) -> Result<(), ArchiveError> {
    let err = |action: &str| {
        let action = action.to_string();
        move |source| ArchiveError::Io {
            action: action.clone(),
            path: dest.to_path_buf(),
            source,
        }
    };
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::NamedTempFile::with_prefix_in(".rbuild-archive-", &parent)
        .map_err(err("create temp file"))?;
    let mut tar = tar::Builder::new(BufWriter::with_capacity(1 << 20, tmp));
    tar.mode(tar::HeaderMode::Deterministic);

    let header = |size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h
    };

    let config = image.config_bytes();
    let config_name = format!("{}.json", Digest::of(config).hex());
    let mut layer_names = Vec::new();
    for layer in image.layers() {
        let desc = &layer.descriptor;
        let diff_id = layer.diff_id.ok_or(ArchiveError::NoDiffId {
            digest: desc.digest,
        })?;
        let name = format!("{}.tar", diff_id.hex());
        if layer_names.contains(&name) {
            layer_names.push(name);
            continue;
        }
        // Pass 1: size and diff_id.
        let raw = open(desc).map_err(err(&format!("open layer {}", desc.digest)))?;
        let mut hashing = HashingReader::new(decompressor(desc, raw)?);
        io::copy(&mut hashing, &mut io::sink())
            .map_err(err(&format!("read layer {}", desc.digest)))?;
        let (_, actual, size) = hashing.finish();
        if actual != diff_id {
            return Err(ArchiveError::DiffIdMismatch {
                digest: desc.digest,
                expected: diff_id,
                actual,
            });
        }
        // Pass 2: into the archive.
        let raw = open(desc).map_err(err(&format!("open layer {}", desc.digest)))?;
        let mut h = header(size);
        tar.append_data(&mut h, &name, decompressor(desc, raw)?.take(size))
            .map_err(err(&format!("write layer {}", desc.digest)))?;
        layer_names.push(name);
    }
    let mut h = header(config.len() as u64);
    tar.append_data(&mut h, &config_name, config)
        .map_err(err("write config"))?;
    let manifest = canonical_json(&[ManifestEntry {
        config: config_name,
        repo_tags: repo_tags.to_vec(),
        layers: layer_names,
    }])
    .expect("serializable");
    let mut h = header(manifest.len() as u64);
    tar.append_data(&mut h, "manifest.json", &manifest[..])
        .map_err(err("write manifest.json"))?;
    let buf = tar.into_inner().map_err(err("finish tar"))?;
    let mut tmp = buf.into_inner().map_err(|e| ArchiveError::Io {
        action: "flush".into(),
        path: dest.to_path_buf(),
        source: e.into_error(),
    })?;
    tmp.flush().map_err(err("flush"))?;
    tmp.persist(dest).map_err(|e| ArchiveError::Io {
        action: "rename into place".into(),
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}
