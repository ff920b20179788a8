//! Publishing a built image: to registries, an OCI layout or a docker-archive.
//!
//! The registry sink checks every blob with `HEAD`, mounts what another repository of the same registry
//! has, uploads the rest from the content store, then pushes the platform manifests by digest, the
//! index, and the tags last, so a failure never leaves a tag pointing at missing blobs. Several
//! destination references share one upload: later repositories mount from the first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use futures::{StreamExt, TryStreamExt};
use rbuild_oci::{ArchiveImage, Descriptor, Digest, OciLayout, Store, write_docker_archive};
use rbuild_registry::{Access, Client, MountOutcome, Reference};

use crate::image::{BlobLocation, BuiltImage};

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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs mounted.
    pub mounted: usize,
    /// Blobs the destination already had.
    pub existing: usize,
    /// References written (`REF@digest`, paths).
    pub references: Vec<String>,
}

/// Every blob the image needs, once, with where it is.
fn blobs(
    image: &BuiltImage,
    store: &Store,
) -> Result<Vec<(Descriptor, BlobLocation)>, PublishError> {
    let mut out: BTreeMap<Digest, (Descriptor, BlobLocation)> = BTreeMap::new();
    for p in &image.images {
        for l in &p.layers {
            out.entry(l.descriptor.digest)
                .or_insert_with(|| (l.descriptor.clone(), l.location.clone()));
        }
        let cfg = &p
            .manifest
            .parse()
            .map_err(|e| PublishError::Sink(e.to_string()))?;
        if let rbuild_oci::ManifestKind::Image(m) = cfg {
            store.put_bytes(&p.config_bytes)?;
            out.entry(m.config.digest)
                .or_insert_with(|| (m.config.clone(), BlobLocation::Store));
        }
    }
    Ok(out.into_values().collect())
}

/// Makes sure every blob is in the store (downloading remote ones).
async fn localize(
    client: &Client,
    blobs: &[(Descriptor, BlobLocation)],
    store: &Store,
) -> Result<(), PublishError> {
    let remote: Vec<_> = blobs
        .iter()
        .filter_map(|(d, loc)| match loc {
            BlobLocation::Remote(r) if !store.contains(&d.digest) => Some((d.clone(), r.clone())),
            _ => None,
        })
        .collect();
    futures::stream::iter(remote.into_iter().map(Ok::<_, PublishError>))
        .try_for_each_concurrent(4, |(d, r)| async move {
            client
                .repository(&r, Access::Pull)?
                .fetch_blob(&d, store)
                .await?;
            Ok(())
        })
        .await
}

/// Publishes `image` to every sink, registries first.
pub async fn publish(
    client: &Client,
    image: &BuiltImage,
    sinks: &[Sink],
    store: &Store,
) -> Result<PublishReport, PublishError> {
    let mut report = PublishReport::default();
    let all = blobs(image, store)?;
    let registries: Vec<&Reference> = sinks
        .iter()
        .filter_map(|s| {
            if let Sink::Registry(r) = s {
                Some(r)
            } else {
                None
            }
        })
        .collect();
    let mut pushed_repos: Vec<Reference> = Vec::new();
    for dst in registries {
        let same_repo_done = pushed_repos
            .iter()
            .any(|r| r.registry() == dst.registry() && r.repository() == dst.repository());
        // Blobs a manifest read in this build from this very repository names: no HEAD for them.
        let present: BTreeSet<Digest> = image
            .present
            .iter()
            .filter(|(r, _)| r.registry() == dst.registry() && r.repository() == dst.repository())
            .map(|(_, d)| *d)
            .collect();
        let mount_from = pushed_repos
            .iter()
            .find(|r| r.registry() == dst.registry() && r.repository() != dst.repository())
            .cloned();
        let repo = client.repository(dst, Access::Push)?;
        let mut skip = present;
        let mut check_blobs = !same_repo_done;
        loop {
            if check_blobs {
                push_blobs(
                    client,
                    dst,
                    &all,
                    mount_from.as_ref(),
                    store,
                    &mut report,
                    &skip,
                )
                .await?;
            }
            match push_manifests(&repo, image, dst).await {
                Err(PublishError::Registry(e)) if e.is_blob_unknown() && !skip.is_empty() => {
                    // A blob the previous manifest named is gone (deleted since): check every
                    // blob, upload what is missing, and push the manifests again.
                    skip.clear();
                    check_blobs = true;
                }
                r => break r?,
            }
        }
        if !same_repo_done {
            pushed_repos.push(dst.clone());
        }
        let top = image.top();
        report.references.push(format!(
            "{}{}@{}",
            dst.name(),
            dst.tag()
                .filter(|_| dst.digest().is_none())
                .map(|t| format!(":{t}"))
                .unwrap_or_default(),
            top.digest
        ));
    }
    let local_needed = sinks.iter().any(|s| !matches!(s, Sink::Registry(_)));
    if local_needed {
        localize(client, &all, store).await?;
    }
    for sink in sinks {
        match sink {
            Sink::Registry(_) => {}
            Sink::OciLayout { dir, tag } => {
                let layout = OciLayout::open_or_create(dir)?;
                for (d, _) in &all {
                    let mut f = store.open_blob(&d.digest)?;
                    layout.put_blob(&d.digest, &mut f)?;
                }
                for p in &image.images {
                    layout.put_bytes(&p.manifest.bytes)?;
                }
                let top = image.top();
                layout.put_bytes(&top.bytes)?;
                let mut desc =
                    Descriptor::new(top.media_type.clone(), top.digest, top.bytes.len() as u64);
                if image.index.is_none() {
                    desc.platform = Some(image.images[0].platform.clone());
                }
                layout.add_to_index(desc, tag.as_deref())?;
                report.references.push(format!(
                    "oci:{}{}",
                    dir.display(),
                    tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default()
                ));
            }
            Sink::DockerArchive { file, tag } => {
                if image.images.len() != 1 {
                    return Err(PublishError::Sink(format!(
                        "docker-archive {} holds one platform, but {} were built; choose one with --platform",
                        file.display(),
                        image.images.len()
                    )));
                }
                let p = &image.images[0];
                let archive = ArchiveImage {
                    config: &p.config_bytes,
                    layers: p
                        .layers
                        .iter()
                        .map(|l| (l.descriptor.clone(), l.diff_id))
                        .collect(),
                    repo_tags: tag.iter().cloned().collect(),
                };
                let mtime = crate::time::DEFAULT_EPOCH;
                let store2 = store.clone();
                let file2 = file.clone();
                let owned = (
                    archive.config.to_vec(),
                    archive.layers.clone(),
                    archive.repo_tags.clone(),
                );
                tokio::task::spawn_blocking(move || {
                    let img = ArchiveImage {
                        config: &owned.0,
                        layers: owned.1,
                        repo_tags: owned.2,
                    };
                    write_docker_archive(&file2, &img, &store2, mtime)
                })
                .await
                .map_err(|e| PublishError::Sink(format!("docker-archive writer failed: {e}")))??;
                report
                    .references
                    .push(format!("docker-archive:{}", file.display()));
            }
        }
    }
    Ok(report)
}

/// Pushes the platforms' manifests (at once; their blobs are all there), then the index or the
/// single manifest, under the tag last.
async fn push_manifests(
    repo: &rbuild_registry::Repository,
    image: &BuiltImage,
    dst: &Reference,
) -> Result<(), PublishError> {
    if image.index.is_some() {
        futures::future::try_join_all(
            image
                .images
                .iter()
                .map(|p| repo.push_manifest(&p.manifest, None)),
        )
        .await?;
    }
    let top = image.top();
    match dst.tag() {
        Some(tag) if dst.digest().is_none() => repo.push_manifest(top, Some(tag)).await?,
        _ => repo.push_manifest(top, None).await?,
    };
    Ok(())
}

/// How many blobs are looked up (`HEAD`) at once while pushing.
const HEAD_CONCURRENCY: usize = 16;

async fn push_blobs(
    client: &Client,
    dst: &Reference,
    blobs: &[(Descriptor, BlobLocation)],
    mount_from: Option<&Reference>,
    store: &Store,
    report: &mut PublishReport,
    present: &BTreeSet<Digest>,
) -> Result<(), PublishError> {
    #[derive(Default)]
    struct Counts {
        uploaded: usize,
        mounted: usize,
        existing: usize,
    }
    // Existence checks are cheap requests: many at once. Mounts and uploads move data: at most
    // `concurrency` at once.
    let transfers = tokio::sync::Semaphore::new(client.options().concurrency.max(1));
    let transfers = &transfers;
    let results: Vec<Counts> = futures::stream::iter(blobs.iter().cloned())
        .map(|(d, loc)| async move {
            // The repository this blob can be mounted from, on the same registry.
            let source = match (&loc, mount_from) {
                (BlobLocation::Remote(r), _)
                    if r.registry() == dst.registry() && r.repository() != dst.repository() =>
                {
                    Some(r.repository().to_string())
                }
                (_, Some(m)) if m.registry() == dst.registry() => Some(m.repository().to_string()),
                _ => None,
            };
            let access = match &source {
                Some(from) => Access::PushMountingFrom(from.clone()),
                None => Access::Push,
            };
            let repo = client.repository(dst, access)?;
            let mut c = Counts::default();
            if present.contains(&d.digest) || repo.blob_exists(&d.digest).await? {
                c.existing = 1;
                return Ok::<_, PublishError>(c);
            }
            let _permit = transfers.acquire().await.expect("semaphore never closed");
            let mut session = None;
            if let Some(from) = &source {
                match repo.mount_blob(&d.digest, from).await? {
                    MountOutcome::Mounted => {
                        c.mounted = 1;
                        return Ok(c);
                    }
                    MountOutcome::Session(s) => session = Some(s),
                }
            }
            if !store.contains(&d.digest)
                && let BlobLocation::Remote(r) = &loc
            {
                client
                    .repository(r, Access::Pull)?
                    .fetch_blob(&d, store)
                    .await?;
            }
            repo.upload_blob(&d, store, session).await?;
            c.uploaded = 1;
            Ok(c)
        })
        .buffer_unordered(HEAD_CONCURRENCY.max(client.options().concurrency))
        .try_collect()
        .await?;
    for c in results {
        report.uploaded += c.uploaded;
        report.mounted += c.mounted;
        report.existing += c.existing;
    }
    Ok(())
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
