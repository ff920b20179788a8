//! What rbuild reads from the base image's files besides the Python target: `/etc/passwd`,
//! `/etc/group`, directory modes, and the RECORD of every installed distribution (to replace one).
//!
//! One streaming pass over the layers (whiteouts and layer order honoured); only small files are kept.
//! The result is cached in the store by base manifest digest, so warm builds never open a base layer.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use rbuild_oci::{Descriptor, LayerCompression, Store};
use serde::{Deserialize, Serialize};

/// Facts from the base image's files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseFacts {
    /// `/etc/passwd`, when present.
    pub passwd: Option<String>,
    /// `/etc/group`, when present.
    pub group: Option<String>,
    /// Modes of directories (relative paths without leading `/`).
    pub dir_modes: BTreeMap<String, u32>,
    /// RECORD files of installed distributions: dist-info path (relative) → RECORD text.
    pub records: BTreeMap<String, String>,
}

const SMALL: u64 = 4 * 1024 * 1024;

fn wanted_file(path: &str) -> bool {
    path == "etc/passwd"
        || path == "etc/group"
        || (path.ends_with(".dist-info/RECORD") && path.matches('/').count() <= 8)
}

/// Opens a layer blob from the store, decompressed.
pub fn open_layer(store: &Store, desc: &Descriptor) -> io::Result<Box<dyn Read + Send>> {
    let f = io::BufReader::with_capacity(
        256 * 1024,
        store.open_blob(&desc.digest).map_err(io::Error::other)?,
    );
    Ok(match desc.media_type.layer_compression() {
        Some(LayerCompression::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Some(LayerCompression::Zstd) => Box::new(zstd::stream::read::Decoder::with_buffer(f)?),
        Some(LayerCompression::None) => Box::new(f),
        None => {
            return Err(io::Error::other(format!(
                "{} is not a layer media type ({})",
                desc.digest, desc.media_type
            )));
        }
    })
}

fn clean(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

fn remove_below<V>(
    map: &mut BTreeMap<String, V>,
    prefix: &str,
    keep: &BTreeSet<String>,
    include_self: bool,
) {
    let doomed: Vec<String> = map
        .keys()
        .filter(|k| {
            (include_self && k.as_str() == prefix)
                || k.starts_with(&format!("{prefix}/"))
                || prefix.is_empty()
        })
        .filter(|k| !keep.contains(*k))
        .cloned()
        .collect();
    for k in doomed {
        map.remove(&k);
    }
}

impl BaseFacts {
    /// Reads the facts from uncompressed layer tars, base first.
    pub fn read<R: Read>(layers: impl IntoIterator<Item = io::Result<R>>) -> io::Result<BaseFacts> {
        let mut files: BTreeMap<String, String> = BTreeMap::new();
        let mut dirs: BTreeMap<String, u32> = BTreeMap::new();
        for layer in layers {
            let mut archive = tar::Archive::new(layer?);
            let mut added: BTreeSet<String> = BTreeSet::new();
            let mut opaque: Vec<String> = Vec::new();
            for entry in archive.entries()? {
                let mut entry = entry?;
                let raw = String::from_utf8_lossy(&entry.path_bytes()).to_string();
                let Some(path) = clean(&raw) else { continue };
                let (parent, name) = match path.rsplit_once('/') {
                    Some((p, n)) => (p.to_string(), n.to_string()),
                    None => (String::new(), path.clone()),
                };
                if name == ".wh..wh..opq" {
                    opaque.push(parent);
                    continue;
                }
                if let Some(target) = name.strip_prefix(".wh.") {
                    let victim = if parent.is_empty() {
                        target.to_string()
                    } else {
                        format!("{parent}/{target}")
                    };
                    let none = BTreeSet::new();
                    remove_below(&mut files, &victim, &none, true);
                    remove_below(&mut dirs, &victim, &none, true);
                    continue;
                }
                let kind = entry.header().entry_type();
                if kind.is_dir() {
                    let mode = entry.header().mode().unwrap_or(0o755) & 0o7777;
                    dirs.insert(path.clone(), mode);
                    added.insert(path);
                } else if kind.is_file() && wanted_file(&path) && entry.size() <= SMALL {
                    let mut text = String::new();
                    entry.read_to_string(&mut text).ok();
                    files.insert(path.clone(), text);
                    added.insert(path);
                } else {
                    // Any other entry replaces a file we kept at that path.
                    files.remove(&path);
                }
            }
            for dir in opaque {
                remove_below(&mut files, &dir, &added, false);
                remove_below(&mut dirs, &dir, &added, false);
            }
        }
        let passwd = files.remove("etc/passwd");
        let group = files.remove("etc/group");
        let records = files
            .into_iter()
            .filter_map(|(k, v)| k.strip_suffix("/RECORD").map(|d| (d.to_string(), v)))
            .collect();
        Ok(BaseFacts {
            passwd,
            group,
            dir_modes: dirs,
            records,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut h = tar::Header::new_ustar();
            match content {
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o2775);
                    h.set_size(0);
                    b.append_data(&mut h, path, &[][..]).unwrap();
                }
                Some(c) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(0o644);
                    h.set_size(c.len() as u64);
                    b.append_data(&mut h, path, c.as_bytes()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_and_layer_order_are_honoured() {
        let l1 = layer(&[
            ("etc", None),
            ("etc/passwd", Some("root:x:0:0::/root:/bin/sh\n")),
            ("etc/group", Some("root:x:0:\n")),
            ("usr/local/lib/python3.11/dist-packages", None),
            (
                "usr/local/lib/python3.11/dist-packages/pip-23.0.dist-info/RECORD",
                Some("pip/__init__.py,,\n"),
            ),
            ("opt/x", None),
            ("opt/x/y", None),
        ]);
        let l2 = layer(&[
            (
                "etc/passwd",
                Some("root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"),
            ),
            (
                "usr/local/lib/python3.11/dist-packages/.wh.pip-23.0.dist-info",
                Some(""),
            ),
            (
                "usr/local/lib/python3.11/dist-packages/pip-24.0.dist-info/RECORD",
                Some("pip/__init__.py,,\n"),
            ),
            ("opt/x/.wh..wh..opq", Some("")),
            ("opt/x/z", None),
        ]);
        let f = BaseFacts::read([Ok::<_, io::Error>(&l1[..]), Ok(&l2[..])]).unwrap();
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
}
