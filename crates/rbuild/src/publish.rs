//! Publishing a built image: to registries, an OCI layout or a docker-archive, or any
//! [`rbuild_oci::Sink`].
//!
//! [`Sink`] names a destination as the CLI's flags do; [`sinks`] turns them into sinks composed in a
//! [`MultiSink`] (registries first): one [`RegistrySink`] for every registry reference (the push
//! algorithm `rbuild copy` uses too; several destination references share one upload: later
//! repositories mount from the first), [`OciLayoutSink`]s and [`DockerArchiveSink`]s. Sinks take
//! only the model ([`BuiltImage::artifact`]); [`publish_to`] writes to any sink.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rbuild_oci::{
    Digest, DockerArchiveSink, MultiSink, OciLayoutSink, SinkError, SinkReport, Store,
};
use rbuild_registry::{Client, Reference, RegistrySink};

use crate::image::BuiltImage;

/// Where to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    /// A registry reference (`--to`).
    Registry(Reference),
    /// An OCI layout directory with an optional tag (`--output oci:DIR[:TAG]`).
    OciLayout {
        /// The directory.
        dir: PathBuf,
        /// The tag (`org.opencontainers.image.ref.name`).
        tag: Option<String>,
    },
    /// A docker-archive file (`--output docker-archive:FILE`), with the tag recorded in it.
    DockerArchive {
        /// The file.
        file: PathBuf,
        /// `name:tag` recorded as RepoTags.
        tag: Option<String>,
    },
}

/// Errors while publishing.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] rbuild_registry::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] rbuild_oci::StoreError),
    /// The OCI layout failed.
    #[error(transparent)]
    Layout(#[from] rbuild_oci::LayoutError),
    /// The archive failed.
    #[error(transparent)]
    Archive(#[from] rbuild_oci::ArchiveError),
    /// An unusable sink spec.
    #[error("{0}")]
    Sink(String),
    /// A sink implemented elsewhere failed.
    #[error("{0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Parses `--output` values: `oci:DIR[:TAG]`, `docker-archive:FILE[:NAME:TAG]`.
pub fn parse_output(s: &str) -> Result<Sink, PublishError> {
    if let Some(rest) = s.strip_prefix("oci:") {
        let (dir, tag) = match rest.rsplit_once(':') {
            Some((d, t)) if !t.contains('/') && !d.is_empty() => (d, Some(t.to_string())),
            _ => (rest, None),
        };
        if dir.is_empty() {
            return Err(PublishError::Sink(format!(
                "--output {s}: the directory is missing (oci:DIR[:TAG])"
            )));
        }
        return Ok(Sink::OciLayout {
            dir: PathBuf::from(dir),
            tag,
        });
    }
    if let Some(rest) = s.strip_prefix("docker-archive:") {
        let (file, tag) = match rest.split_once(':') {
            Some((f, t)) if !f.is_empty() => (f, Some(t.to_string())),
            _ => (rest, None),
        };
        if file.is_empty() {
            return Err(PublishError::Sink(format!(
                "--output {s}: the file is missing (docker-archive:FILE[:NAME:TAG])"
            )));
        }
        return Ok(Sink::DockerArchive {
            file: PathBuf::from(file),
            tag,
        });
    }
    Err(PublishError::Sink(format!(
        "--output {s:?}: unknown sink; use oci:DIR[:TAG] or docker-archive:FILE (or --to REF for a registry)"
    )))
}

/// What publishing did, for reports.
pub type PublishReport = SinkReport;

impl From<SinkError> for PublishError {
    fn from(e: SinkError) -> Self {
        match e {
            SinkError::Store(e) => PublishError::Store(e),
            SinkError::Layout(e) => PublishError::Layout(e),
            SinkError::Archive(e) => PublishError::Archive(e),
            SinkError::Invalid(s) => PublishError::Sink(s),
            SinkError::Other(b) => match b.downcast::<rbuild_registry::Error>() {
                Ok(e) => PublishError::Registry(*e),
                Err(b) => PublishError::Other(b),
            },
        }
    }
}

/// The sinks `specs` name, composed: one registry sink for every `Sink::Registry` (in order:
/// later repositories mount from the first; blobs a manifest read in this build names are not
/// checked), then the OCI layouts and docker-archives in their order.
pub fn sinks(client: &Client, image: &BuiltImage, specs: &[Sink], store: &Store) -> MultiSink {
    let registries: Vec<Reference> = specs
        .iter()
        .filter_map(|s| match s {
            Sink::Registry(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    let mut multi = MultiSink::default();
    if !registries.is_empty() {
        let mut known: BTreeMap<String, (&Reference, Vec<Digest>)> = BTreeMap::new();
        for (r, d) in &image.present {
            known.entry(r.name()).or_insert((r, Vec::new())).1.push(*d);
        }
        let mut registry = RegistrySink::new(client.clone(), store.clone(), registries);
        for (r, digests) in known.into_values() {
            registry = registry.with_known_blobs(r, digests);
        }
        multi.push(Box::new(registry));
    }
    for s in specs {
        match s {
            Sink::Registry(_) => {}
            Sink::OciLayout { dir, tag } => multi.push(Box::new(OciLayoutSink {
                dir: dir.clone(),
                tag: tag.clone(),
            })),
            Sink::DockerArchive { file, tag } => multi.push(Box::new(DockerArchiveSink {
                file: file.clone(),
                tag: tag.clone(),
                mtime: crate::time::DEFAULT_EPOCH,
            })),
        }
    }
    multi
}

/// Publishes `image` to every sink, registries first.
pub async fn publish(
    client: &Client,
    image: &BuiltImage,
    sinks: &[Sink],
    store: &Store,
) -> Result<PublishReport, PublishError> {
    let multi = self::sinks(client, image, sinks, store);
    publish_to(client, image, &multi, store).await
}

/// Publishes `image` to one [`rbuild_oci::Sink`] (any implementation, a [`MultiSink`] too): the
/// sink gets the image as an [`rbuild_oci::Artifact`] and reads blobs from the content store, or
/// from the registry repository a layer was found in when it was never downloaded.
pub async fn publish_to(
    client: &Client,
    image: &BuiltImage,
    sink: &dyn rbuild_oci::Sink,
    store: &Store,
) -> Result<PublishReport, PublishError> {
    let artifact = image
        .artifact()
        .map_err(|e| PublishError::Sink(format!("the built image is not valid: {e}")))?;
    for p in &image.images {
        store.put_bytes(&p.config_bytes)?;
    }
    let blobs = image.blob_source(client, store);
    Ok(sink.write(&artifact, &blobs).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_parse() {
        assert_eq!(
            parse_output("oci:/tmp/x:v1").unwrap(),
            Sink::OciLayout {
                dir: "/tmp/x".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            parse_output("oci:out").unwrap(),
            Sink::OciLayout {
                dir: "out".into(),
                tag: None
            }
        );
        assert_eq!(
            parse_output("docker-archive:img.tar").unwrap(),
            Sink::DockerArchive {
                file: "img.tar".into(),
                tag: None
            }
        );
        assert_eq!(
            parse_output("docker-archive:img.tar:app:v1").unwrap(),
            Sink::DockerArchive {
                file: "img.tar".into(),
                tag: Some("app:v1".into())
            }
        );
        assert!(parse_output("dir:/x").is_err());
        assert!(parse_output("oci:").is_err());
    }
}
