//! The OCI image layout sink (`--output oci:DIR[:TAG]`).
//!
//! A new layout is created, or an existing one is extended: blobs are added (existing ones kept), and
//! the image is added to `index.json`, replacing an entry whose `org.opencontainers.image.ref.name`
//! annotation holds the same tag. Blobs are written first, each through a temp file and a rename, and
//! `index.json` is replaced atomically last, so an interrupted write never leaves an entry that points
//! at missing blobs.
//!
//! Several writers may share one layout: a write holds [`OciLayout::lock`] (an exclusive lock on
//! `index.json.lock` beside `index.json`), so each read-change-replace of `index.json` sees the
//! previous one and no tag is lost. Temp files go to `.rbuild-tmp/` in the layout, never into
//! `blobs/` (where `umoci gc` would take a killed write's leftover for a corrupt blob); a later
//! writer removes what a killed one left there.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    ANNOTATION_REF_NAME, Descriptor, Digest, HashingWriter, Index, MediaType, canonical_json,
};

/// Errors from the OCI layout sink.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A filesystem operation failed.
    #[error("OCI layout {path}: {action}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The directory exists but is not an OCI layout.
    #[error(
        "{path} exists but is not an OCI image layout ({why}); choose an empty or new directory"
    )]
    NotALayout {
        /// Where.
        path: PathBuf,
        /// Why not.
        why: String,
    },
    /// A blob's bytes do not match its digest.
    #[error("OCI layout {path}: blob {expected} has digest {actual}; not written")]
    DigestMismatch {
        /// Where.
        path: PathBuf,
        /// Expected digest.
        expected: Digest,
        /// Actual digest.
        actual: Digest,
    },
}

/// The exclusive write lock of a layout ([`OciLayout::lock`]); released when dropped.
#[derive(Debug)]
pub struct LayoutLock {
    _file: fs::File,
}

/// Where temp files go inside a layout (outside `blobs/`).
const TMP_DIR: &str = ".rbuild-tmp";

/// Temp files in [`TMP_DIR`] older than this are a killed writer's.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(600);

#[derive(Serialize, Deserialize)]
struct OciLayoutFile {
    #[serde(rename = "imageLayoutVersion")]
    image_layout_version: String,
}

/// An OCI image layout directory being written.
#[derive(Clone, Debug)]
pub struct OciLayout {
    dir: PathBuf,
}

impl OciLayout {
    /// Opens an existing layout or creates a new one (the directory may exist if it is empty).
    pub fn open_or_create(dir: impl Into<PathBuf>) -> Result<Self, LayoutError> {
        let dir = dir.into();
        fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LayoutError + use<> {
            let path = path.to_path_buf();
            move |source| LayoutError::Io {
                action,
                path,
                source,
            }
        }
        let marker = dir.join("oci-layout");
        if marker.is_file() {
            let bytes = fs::read(&marker).map_err(io("read", &marker))?;
            let parsed: OciLayoutFile =
                serde_json::from_slice(&bytes).map_err(|e| LayoutError::NotALayout {
                    path: dir.clone(),
                    why: format!("oci-layout: {e}"),
                })?;
            if parsed.image_layout_version != "1.0.0" {
                return Err(LayoutError::NotALayout {
                    path: dir.clone(),
                    why: format!("imageLayoutVersion {:?}", parsed.image_layout_version),
                });
            }
        } else {
            if dir.exists() {
                // Another writer creating the same layout right now leaves only these.
                let ours = |n: &str| {
                    ["blobs", TMP_DIR, "index.json.lock", "oci-layout"].contains(&n)
                        || n.starts_with(".tmp-")
                };
                let non_empty = fs::read_dir(&dir)
                    .map_err(io("list", &dir))?
                    .flatten()
                    .any(|e| !ours(&e.file_name().to_string_lossy()));
                if non_empty {
                    return Err(LayoutError::NotALayout {
                        path: dir.clone(),
                        why: "no oci-layout file".into(),
                    });
                }
            }
            fs::create_dir_all(&dir).map_err(io("create", &dir))?;
            let layout = OciLayoutFile {
                image_layout_version: "1.0.0".into(),
            };
            write_atomic(
                &dir,
                &marker,
                &canonical_json(&layout).expect("serializable"),
            )?;
        }
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(io("create", &blobs))?;
        Ok(OciLayout { dir })
    }

    /// Waits for and takes the layout's write lock (`index.json.lock`), then removes what killed
    /// writers left behind: their temp files in `.rbuild-tmp/` (older than ten minutes) and (from older rbuild versions)
    /// `blobs/sha256/.tmp-*`. Hold it across a whole write ([`crate::OciLayoutSink`] does).
    pub fn lock(&self) -> Result<LayoutLock, LayoutError> {
        let p = self.dir.join("index.json.lock");
        let err = |action| {
            let path = p.clone();
            move |source| LayoutError::Io {
                action,
                path,
                source,
            }
        };
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(err("open the lock file"))?;
        file.lock().map_err(err("lock"))?;
        // A blob being written without the lock (the public `put_blob`) may still own a young one.
        if let Ok(rd) = fs::read_dir(self.dir.join(TMP_DIR)) {
            for e in rd.flatten() {
                let stale = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STALE_TEMP);
                if stale {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        if let Ok(rd) = fs::read_dir(self.dir.join("blobs/sha256")) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(LayoutLock { _file: file })
    }

    fn tmp_dir(&self) -> Result<PathBuf, LayoutError> {
        let t = self.dir.join(TMP_DIR);
        fs::create_dir_all(&t).map_err(|source| LayoutError::Io {
            action: "create",
            path: t.clone(),
            source,
        })?;
        Ok(t)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of a blob in the layout.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// Adds a blob, streamed from `reader` and verified against `digest`. Existing blobs are kept.
    pub fn put_blob(&self, digest: &Digest, reader: &mut dyn Read) -> Result<(), LayoutError> {
        let dest = self.blob_path(digest);
        if dest.is_file() {
            return Ok(());
        }
        let io = |action| {
            let path = dest.clone();
            move |source| LayoutError::Io {
                action,
                path,
                source,
            }
        };
        let tmp = tempfile::NamedTempFile::with_prefix_in("blob-", self.tmp_dir()?)
            .map_err(io("create temp file"))?;
        let mut w = HashingWriter::new(io::BufWriter::new(tmp));
        io::copy(reader, &mut w).map_err(io("write"))?;
        let (buf, actual, _) = w.finish();
        if actual != *digest {
            return Err(LayoutError::DigestMismatch {
                path: dest.clone(),
                expected: *digest,
                actual,
            });
        }
        let tmp = buf.into_inner().map_err(|e| LayoutError::Io {
            action: "flush",
            path: dest.clone(),
            source: e.into_error(),
        })?;
        tmp.persist(&dest).map_err(|e| LayoutError::Io {
            action: "rename",
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Adds small bytes as a blob.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, LayoutError> {
        let digest = Digest::of(bytes);
        self.put_blob(&digest, &mut &bytes[..])?;
        Ok(digest)
    }

    /// Reads `index.json` (an empty index when missing).
    pub fn index(&self) -> Result<Index, LayoutError> {
        let p = self.dir.join("index.json");
        match fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LayoutError::NotALayout {
                path: self.dir.clone(),
                why: format!("index.json: {e}"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index {
                schema_version: 2,
                media_type: Some(MediaType::from(MediaType::OCI_INDEX)),
                artifact_type: None,
                manifests: Vec::new(),
                subject: None,
                annotations: None,
            }),
            Err(e) => Err(LayoutError::Io {
                action: "read",
                path: p,
                source: e,
            }),
        }
    }

    /// Adds `manifest` (a descriptor of a manifest or index already written with [`OciLayout::put_blob`])
    /// to `index.json` under `tag` (the `org.opencontainers.image.ref.name` annotation), replacing an entry
    /// with the same tag; without a tag the entry is appended unless the same digest is already listed.
    /// Takes the layout's lock for the change ([`OciLayout::add_to_index_locked`] when the caller
    /// holds it already).
    pub fn add_to_index(&self, manifest: Descriptor, tag: Option<&str>) -> Result<(), LayoutError> {
        let lock = self.lock()?;
        self.add_to_index_locked(&lock, manifest, tag)
    }

    /// [`OciLayout::add_to_index`] by a writer holding the layout's lock.
    pub fn add_to_index_locked(
        &self,
        _lock: &LayoutLock,
        mut manifest: Descriptor,
        tag: Option<&str>,
    ) -> Result<(), LayoutError> {
        if !self.blob_path(&manifest.digest).is_file() {
            return Err(LayoutError::Io {
                action: "add to index.json",
                path: self.blob_path(&manifest.digest),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "the manifest blob was not written first",
                ),
            });
        }
        let mut index = self.index()?;
        match tag {
            Some(tag) => {
                manifest.set_annotation(ANNOTATION_REF_NAME, tag);
                index
                    .manifests
                    .retain(|d| d.annotation(ANNOTATION_REF_NAME) != Some(tag));
                index.manifests.push(manifest);
            }
            None => {
                if !index.manifests.iter().any(|d| {
                    d.digest == manifest.digest && d.annotation(ANNOTATION_REF_NAME).is_none()
                }) {
                    index.manifests.push(manifest);
                }
            }
        }
        let bytes = canonical_json(&index).expect("serializable");
        write_atomic(&self.tmp_dir()?, &self.dir.join("index.json"), &bytes)
    }
}

fn write_atomic(dir: &Path, dest: &Path, bytes: &[u8]) -> Result<(), LayoutError> {
    let err = |action| {
        move |source| LayoutError::Io {
            action,
            path: dest.to_path_buf(),
            source,
        }
    };
    let mut tmp =
        tempfile::NamedTempFile::with_prefix_in(".tmp-", dir).map_err(err("create temp file"))?;
    tmp.write_all(bytes).map_err(err("write"))?;
    tmp.as_file().sync_data().map_err(err("sync"))?;
    tmp.persist(dest).map_err(|e| LayoutError::Io {
        action: "rename",
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_lose_no_tag_and_leave_no_temp_in_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // A fresh directory: created by whichever writer comes first.
        let fresh = dir.path().join("fresh");
        let creators: Vec<_> = (0..8)
            .map(|_| {
                let fresh = fresh.clone();
                std::thread::spawn(move || OciLayout::open_or_create(&fresh).map(|_| ()))
            })
            .collect();
        for c in creators {
            c.join().unwrap().unwrap();
        }
        OciLayout::open_or_create(&out).unwrap();
        // A killed writer's leftovers.
        fs::write(out.join("blobs/sha256/.tmp-dead"), b"x").unwrap();
        fs::create_dir_all(out.join(TMP_DIR)).unwrap();
        fs::write(out.join(TMP_DIR).join("blob-dead"), b"x").unwrap();
        fs::File::options()
            .append(true)
            .open(out.join(TMP_DIR).join("blob-dead"))
            .unwrap()
            .set_modified(std::time::SystemTime::now() - 2 * STALE_TEMP)
            .unwrap();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let out = out.clone();
                std::thread::spawn(move || {
                    for round in 0..10 {
                        let layout = OciLayout::open_or_create(&out).unwrap();
                        let body = format!("{{\"i\":{i},\"r\":{round}}}");
                        let d = layout.put_bytes(body.as_bytes()).unwrap();
                        let desc = Descriptor::new(MediaType::OCI_MANIFEST, d, body.len() as u64);
                        layout
                            .add_to_index(desc, Some(&format!("t{i}-{round}")))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let index = OciLayout::open_or_create(&out).unwrap().index().unwrap();
        assert_eq!(index.manifests.len(), 80, "every tag present");
        assert!(!out.join("blobs/sha256/.tmp-dead").exists());
        assert!(!out.join(TMP_DIR).join("blob-dead").exists());
    }

    #[test]
    fn tags_replace_entries_and_blobs_are_verified() {
        let dir = tempfile::tempdir().unwrap();
        let layout = OciLayout::open_or_create(dir.path().join("out")).unwrap();
        let m1 = layout.put_bytes(b"{\"a\":1}").unwrap();
        let m2 = layout.put_bytes(b"{\"a\":2}").unwrap();
        let d = |digest| Descriptor::new(MediaType::OCI_MANIFEST, digest, 7);
        layout.add_to_index(d(m1), Some("v1")).unwrap();
        layout.add_to_index(d(m2), Some("v1")).unwrap();
        layout.add_to_index(d(m1), Some("v0")).unwrap();
        let reopened = OciLayout::open_or_create(dir.path().join("out")).unwrap();
        let index = reopened.index().unwrap();
        assert_eq!(index.manifests.len(), 2);
        assert_eq!(
            index
                .manifests
                .iter()
                .find(|e| e.annotation(ANNOTATION_REF_NAME) == Some("v1"))
                .unwrap()
                .digest,
            m2
        );
        let err = layout
            .put_blob(&Digest::of(b"x"), &mut &b"y"[..])
            .unwrap_err();
        assert!(matches!(err, LayoutError::DigestMismatch { .. }));
        assert!(!layout.blob_path(&Digest::of(b"x")).exists());
        assert!(
            fs::read_dir(layout.blob_path(&m1).parent().unwrap())
                .unwrap()
                .flatten()
                .all(|e| !e.file_name().to_string_lossy().starts_with('.')),
            "no temp file in blobs/"
        );
        fs::write(dir.path().join("junk"), b"").unwrap();
        assert!(
            OciLayout::open_or_create(dir.path()).is_err(),
            "a non-empty non-layout dir is refused"
        );
    }
}
