//! Sinks: where an [`Artifact`] is written, and [`BlobSource`]s: where its blobs are read from.
//!
//! A [`Sink`] takes only the model (an [`Artifact`]) and a [`BlobSource`]; it can be implemented
//! outside rbuild's crates. This crate has the local sinks, [`OciLayoutSink`] and
//! [`DockerArchiveSink`], and [`MultiSink`], which writes to several (registries first);
//! `rbuild-registry` has the registry sink.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::future::Future;
use std::io::Read;
use std::path::PathBuf;
use std::pin::Pin;

use crate::{
    ArchiveError, Artifact, Descriptor, Digest, LayoutError, OciLayout, Store, StoreError,
};

/// A boxed, sendable future (what [`Sink`] and [`BlobSource`] return, so both are object safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A reader of one blob's bytes.
pub type BlobReader = Box<dyn Read + Send>;

/// A repository of a registry that holds a blob: a registry sink can mount it from there.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RemoteRepository {
    /// The registry, as in a reference (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// The repository (`library/python`).
    pub repository: String,
}

/// Where a sink reads blobs from: the content store, a registry repository, or both.
pub trait BlobSource: Send + Sync {
    /// Opens the blob `descriptor` names. Its bytes are verified against the digest: as they are
    /// read, or before (the content store holds only verified blobs).
    fn open<'a>(
        &'a self,
        descriptor: &'a Descriptor,
    ) -> BoxFuture<'a, Result<BlobReader, SinkError>>;

    /// The repository that holds the blob, when it is in a registry (not downloaded): a registry
    /// sink mounts it from there instead of uploading it.
    fn remote(&self, _digest: &Digest) -> Option<RemoteRepository> {
        None
    }
}

impl BlobSource for Store {
    fn open<'a>(
        &'a self,
        descriptor: &'a Descriptor,
    ) -> BoxFuture<'a, Result<BlobReader, SinkError>> {
        let r = self
            .open_verified(&descriptor.digest)
            .map(|f| Box::new(f) as BlobReader)
            .map_err(SinkError::from);
        Box::pin(async move { r })
    }
}

/// What a sink did, for reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkReport {
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    /// Blobs the destination already had.
    pub existing: usize,
    /// References written (`REF@digest`, `oci:DIR:TAG`, `docker-archive:FILE`).
    pub references: Vec<String>,
}

impl SinkReport {
    /// Adds `other`'s counts and references to this one.
    pub fn add(&mut self, other: SinkReport) {
        self.uploaded += other.uploaded;
        self.mounted += other.mounted;
        self.existing += other.existing;
        self.references.extend(other.references);
    }
}

/// Why a sink failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The content store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The OCI layout failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The docker-archive failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The artifact cannot be written to this sink (e.g. several platforms into a docker-archive).
    #[error("{0}")]
    Invalid(String),
    /// Any other failure (a registry's, or a sink's implemented elsewhere); the error stays in the
    /// chain, so callers can downcast it.
    #[error("{0}")]
    Other(#[source] Box<dyn StdError + Send + Sync>),
}

/// A destination for an artifact. Implementable outside rbuild: take only the model.
pub trait Sink: Send + Sync {
    /// A name for messages (`registry localhost:5000/app`, `oci:out`).
    fn name(&self) -> String;

    /// Writes `artifact`, reading its blobs from `blobs`.
    fn write<'a>(
        &'a self,
        artifact: &'a Artifact,
        blobs: &'a dyn BlobSource,
    ) -> BoxFuture<'a, Result<SinkReport, SinkError>>;

    /// Whether it writes to a registry: [`MultiSink`] writes those first, so a failed push leaves
    /// no local copy behind.
    fn is_registry(&self) -> bool {
        false
    }
}

/// Several sinks written one after the other: registries first, then the others in their order.
#[derive(Default)]
pub struct MultiSink {
    sinks: Vec<Box<dyn Sink>>,
}

impl MultiSink {
    /// The sinks, reordered so registries come first (otherwise in the order given).
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> MultiSink {
        let mut m = MultiSink::default();
        for s in sinks {
            m.push(s);
        }
        m
    }

    /// Adds a sink (after the other registries when it is one).
    pub fn push(&mut self, sink: Box<dyn Sink>) {
        let at = if sink.is_registry() {
            self.sinks.iter().take_while(|s| s.is_registry()).count()
        } else {
            self.sinks.len()
        };
        self.sinks.insert(at, sink);
    }

    /// The sinks, in the order they are written.
    pub fn sinks(&self) -> &[Box<dyn Sink>] {
        &self.sinks
    }

    /// Whether there is no sink.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

impl Sink for MultiSink {
    fn name(&self) -> String {
        self.sinks
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn write<'a>(
        &'a self,
        artifact: &'a Artifact,
        blobs: &'a dyn BlobSource,
    ) -> BoxFuture<'a, Result<SinkReport, SinkError>> {
        Box::pin(async move {
            let mut report = SinkReport::default();
            for s in &self.sinks {
                report.add(s.write(artifact, blobs).await?);
            }
            Ok(report)
        })
    }

    fn is_registry(&self) -> bool {
        self.sinks.iter().any(|s| s.is_registry())
    }
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SinkError> + Send + 'static,
) -> Result<T, SinkError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SinkError::Invalid(format!("a sink's file writer failed: {e}")))?
}

/// An OCI image layout directory with an optional tag (`--output oci:DIR[:TAG]`): every blob, the
/// manifests, and the top in `index.json` (under the tag; a single image's entry carries its
/// platform). Attachments are listed in `index.json` without a tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OciLayoutSink {
    /// The directory (created when missing).
    pub dir: PathBuf,
    /// The tag (`org.opencontainers.image.ref.name`).
    pub tag: Option<String>,
}

impl Sink for OciLayoutSink {
    fn name(&self) -> String {
        format!(
            "oci:{}{}",
            self.dir.display(),
            self.tag
                .as_ref()
                .map(|t| format!(":{t}"))
                .unwrap_or_default()
        )
    }

    fn write<'a>(
        &'a self,
        artifact: &'a Artifact,
        blobs: &'a dyn BlobSource,
    ) -> BoxFuture<'a, Result<SinkReport, SinkError>> {
        Box::pin(async move {
            let layout = OciLayout::open_or_create(&self.dir)?;
            // One writer at a time: tags of concurrent builds are all kept.
            let lock = {
                let layout = layout.clone();
                blocking(move || Ok(layout.lock()?)).await?
            };
            for d in artifact.blobs() {
                if layout.blob_path(&d.digest).is_file() {
                    continue;
                }
                let mut reader = blobs.open(&d).await?;
                let layout = layout.clone();
                blocking(move || Ok(layout.put_blob(&d.digest, &mut reader)?)).await?;
            }
            for image in artifact.top.images() {
                layout.put_bytes(&image.manifest().bytes)?;
            }
            let top = artifact.top.manifest();
            layout.put_bytes(&top.bytes)?;
            layout.add_to_index_locked(&lock, artifact.top.descriptor(), self.tag.as_deref())?;
            for a in &artifact.attachments {
                layout.put_bytes(&a.manifest().bytes)?;
                layout.add_to_index_locked(
                    &lock,
                    a.descriptor(),
                    artifact.attachment_tag(&a.digest()),
                )?;
            }
            drop(lock);
            Ok(SinkReport {
                references: vec![self.name()],
                ..SinkReport::default()
            })
        })
    }
}

/// A docker-archive file (`--output docker-archive:FILE[:NAME:TAG]`) holding one platform's image,
/// with `name:tag` recorded as RepoTags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerArchiveSink {
    /// The file.
    pub file: PathBuf,
    /// `name:tag` recorded as RepoTags.
    pub tag: Option<String>,
    /// The mtime of the tar entries (seconds since the epoch).
    pub mtime: u64,
}

impl Sink for DockerArchiveSink {
    fn name(&self) -> String {
        format!("docker-archive:{}", self.file.display())
    }

    fn write<'a>(
        &'a self,
        artifact: &'a Artifact,
        blobs: &'a dyn BlobSource,
    ) -> BoxFuture<'a, Result<SinkReport, SinkError>> {
        Box::pin(async move {
            let image = match artifact.top.images() {
                [one] => one.clone(),
                many => {
                    return Err(SinkError::Invalid(format!(
                        "docker-archive {} holds one platform, but {} were built; choose one with --platform",
                        self.file.display(),
                        many.len()
                    )));
                }
            };
            // The writer reads each layer twice (its size and diff_id, then into the archive):
            // open both readers here, where the source may download.
            let mut readers: BTreeMap<Digest, Vec<BlobReader>> = BTreeMap::new();
            for l in image.layers() {
                if readers.contains_key(&l.descriptor.digest) {
                    continue;
                }
                let second = blobs.open(&l.descriptor).await?;
                let first = blobs.open(&l.descriptor).await?;
                readers.insert(l.descriptor.digest, vec![second, first]);
            }
            let (file, tags, mtime) = (
                self.file.clone(),
                self.tag.iter().cloned().collect::<Vec<_>>(),
                self.mtime,
            );
            blocking(move || {
                let mut open = |d: &Descriptor| {
                    readers
                        .get_mut(&d.digest)
                        .and_then(Vec::pop)
                        .ok_or_else(|| {
                            std::io::Error::other(format!("blob {} opened too often", d.digest))
                        })
                };
                Ok(crate::write_docker_archive(
                    &file, &image, &tags, &mut open, mtime,
                )?)
            })
            .await?;
            Ok(SinkReport {
                references: vec![self.name()],
                ..SinkReport::default()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str, bool);

    impl Sink for Named {
        fn name(&self) -> String {
            self.0.into()
        }
        fn write<'a>(
            &'a self,
            _artifact: &'a Artifact,
            _blobs: &'a dyn BlobSource,
        ) -> BoxFuture<'a, Result<SinkReport, SinkError>> {
            Box::pin(async move {
                Ok(SinkReport {
                    references: vec![self.0.into()],
                    ..SinkReport::default()
                })
            })
        }
        fn is_registry(&self) -> bool {
            self.1
        }
    }

    #[test]
    fn multisink_writes_registries_first_and_otherwise_keeps_the_order() {
        let m = MultiSink::new(vec![
            Box::new(Named("oci", false)),
            Box::new(Named("reg1", true)),
            Box::new(Named("archive", false)),
            Box::new(Named("reg2", true)),
        ]);
        assert_eq!(m.name(), "reg1, reg2, oci, archive");
        assert!(m.is_registry());
        assert!(!MultiSink::default().is_registry());
    }
}
