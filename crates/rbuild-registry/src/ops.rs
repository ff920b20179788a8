//! High-level operations: resolve an image for a platform, fetch blobs in parallel, copy images.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::TryStreamExt;
use rbuild_oci::{
    Descriptor, Digest, ImageConfig, Index, Manifest, ManifestKind, MediaType, Platform,
    RawManifest, Store, canonical_json,
};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::progress::ProgressEvent;
use crate::reference::Reference;
use crate::repository::{Access, MountOutcome, Repository};

/// An image resolved for one platform.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// The reference it was resolved from.
    pub reference: Reference,
    /// The index or manifest list, when the reference named one.
    pub index: Option<RawManifest>,
    /// The platform's image manifest, exact bytes.
    pub manifest: RawManifest,
    /// The parsed manifest.
    pub image: Manifest,
}

/// What a copy did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyOutcome {
    /// The digest of what the destination now names (equal to the source's unless a subset of
    /// platforms was selected).
    pub digest: Digest,
    /// Its media type.
    pub media_type: MediaType,
    /// The destination as `registry/repo:tag@digest`.
    pub destination: Reference,
    /// Manifests and indexes pushed.
    pub manifests: usize,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs mounted from the source repository.
    pub blobs_mounted: usize,
    /// Blobs the destination already had.
    pub blobs_skipped: usize,
}

/// Blobs that are not to be copied: foreign / non-distributable layers that name external URLs.
fn is_foreign(d: &Descriptor) -> bool {
    d.urls.as_ref().is_some_and(|u| !u.is_empty())
        && (d.media_type.as_str().contains("foreign")
            || d.media_type.as_str().contains("nondistributable"))
}

impl Client {
    /// Fetches the manifest or index `reference` names (see [`Repository::get_manifest`]).
    pub async fn get_manifest(&self, reference: &Reference) -> Result<RawManifest> {
        self.repository(reference, Access::Pull)?
            .get_manifest(&reference.identifier())
            .await
    }

    /// Resolves `reference` to the image manifest for `platform`: through the index when it names
    /// one (attestation entries skipped), else the manifest itself.
    pub async fn resolve_image(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<ResolvedImage> {
        self.resolve_image_in(reference, platform, None).await
    }

    /// [`Client::resolve_image`], reading a single image's config from `store` when it is there
    /// (verified content: no request) instead of from the registry.
    pub async fn resolve_image_in(
        &self,
        reference: &Reference,
        platform: &Platform,
        store: Option<&Store>,
    ) -> Result<ResolvedImage> {
        let top = self.get_manifest(reference).await?;
        self.resolve_image_from(reference, top, platform, store)
            .await
    }

    /// [`Client::resolve_image_in`] from a top-level manifest or index already fetched for
    /// `reference` (a build for several platforms asks for a tag once). With a `store`, a
    /// platform's manifest named by digest in the index, and a single image's config, are read
    /// from the store when they are there (content verified by digest: no request), and a
    /// manifest fetched by digest is kept there.
    pub async fn resolve_image_from(
        &self,
        reference: &Reference,
        top: RawManifest,
        platform: &Platform,
        store: Option<&Store>,
    ) -> Result<ResolvedImage> {
        let repo = self.repository(reference, Access::Pull)?;
        match top.parse()? {
            ManifestKind::Image(image) => {
                // A single image: check that its config is for the platform asked for.
                let bytes = match store.filter(|s| s.contains(&image.config.digest)) {
                    Some(s) => s.read_blob(&image.config.digest)?,
                    None => repo.get_small_blob(&image.config).await?,
                };
                if let Ok(config) = ImageConfig::from_slice(&bytes) {
                    let mut has = Platform::new(&config.os, &config.architecture, None);
                    has.variant = config.variant.clone();
                    if !has.satisfies(platform) {
                        return Err(Error::Platform {
                            reference: reference.to_string(),
                            details: rbuild_oci::NoSuchPlatform {
                                wanted: platform.to_string(),
                                available: has.to_string(),
                            },
                        });
                    }
                }
                Ok(ResolvedImage {
                    reference: reference.clone(),
                    index: None,
                    manifest: top,
                    image,
                })
            }
            ManifestKind::Index(index) => {
                let entry = index.select(platform).map_err(|details| Error::Platform {
                    reference: reference.to_string(),
                    details,
                })?;
                let stored = store
                    .filter(|s| s.contains(&entry.digest))
                    .and_then(|s| s.read_blob(&entry.digest).ok())
                    .map(|bytes| RawManifest::new(bytes, Some(entry.media_type.as_str())));
                let manifest = match stored {
                    Some(m) if m.digest == entry.digest => m,
                    _ => {
                        let m = repo.get_manifest(&entry.digest.to_string()).await?;
                        if let Some(s) = store {
                            s.put_bytes(&m.bytes)?;
                        }
                        m
                    }
                };
                match manifest.parse()? {
                    ManifestKind::Image(image) => Ok(ResolvedImage {
                        reference: reference.clone(),
                        index: Some(top),
                        manifest,
                        image,
                    }),
                    ManifestKind::Index(_) => Err(Error::Invalid(format!(
                        "{reference}: the entry for {platform} is itself an index, which rbuild does not resolve"
                    ))),
                }
            }
        }
    }

    /// Fetches blobs of `reference`'s repository into `store`, `concurrency` at a time, each
    /// verified while it streams.
    pub async fn fetch_blobs(
        &self,
        reference: &Reference,
        blobs: &[Descriptor],
        store: &Store,
    ) -> Result<()> {
        let repo = self.repository(reference, Access::Pull)?;
        futures::stream::iter(blobs.iter().map(Ok))
            .try_for_each_concurrent(self.options().concurrency.max(1), |d| {
                let repo = repo.clone();
                async move { repo.fetch_blob(d, store).await.map(|_| ()) }
            })
            .await
    }

    /// Fetches and parses the config of a resolved image (through `store`).
    pub async fn fetch_config(
        &self,
        image: &ResolvedImage,
        store: &Store,
    ) -> Result<(Vec<u8>, ImageConfig)> {
        let repo = self.repository(&image.reference, Access::Pull)?;
        repo.fetch_blob(&image.image.config, store).await?;
        let bytes = store.read_blob(&image.image.config.digest)?;
        let config = ImageConfig::from_slice(&bytes).map_err(|e| {
            Error::Invalid(format!(
                "{}: config {} is not a valid image config: {e}",
                image.reference, image.image.config.digest
            ))
        })?;
        Ok((bytes, config))
    }

    /// Copies an image like `crane copy`: by default the whole index with every platform, manifests
    /// byte for byte (so the destination digest equals the source's); with one platform, that
    /// platform's manifest; with several, a new index over just those entries. Blobs the destination
    /// has are skipped; on the same registry they are mounted from the source repository; otherwise
    /// they stream through `store` and are uploaded. Child manifests are pushed by digest first and
    /// the tag last, so a failure never leaves the tag pointing at missing content.
    pub async fn copy(
        &self,
        src: &Reference,
        dst: &Reference,
        platforms: Option<&[Platform]>,
        store: &Store,
    ) -> Result<CopyOutcome> {
        let src_repo = self.repository(src, Access::Pull)?;
        let top = src_repo.get_manifest(&src.identifier()).await?;
        let root = match (top.parse()?, platforms) {
            (ManifestKind::Index(index), Some(ps)) if !ps.is_empty() => {
                self.select_platforms(&src_repo, src, &top, &index, ps)
                    .await?
            }
            _ => top,
        };

        // Breadth-first walk: root, its children, their children...; pushed in reverse.
        let mut nodes: Vec<RawManifest> = vec![root.clone()];
        let mut blobs: Vec<Descriptor> = Vec::new();
        let mut seen_blobs = BTreeSet::new();
        let mut seen_nodes = BTreeSet::from([root.digest]);
        let mut i = 0;
        while i < nodes.len() {
            match nodes[i].parse()? {
                ManifestKind::Index(index) => {
                    for child in &index.manifests {
                        if seen_nodes.insert(child.digest) {
                            let raw = src_repo.get_manifest(&child.digest.to_string()).await?;
                            nodes.push(raw);
                        }
                    }
                }
                ManifestKind::Image(m) => {
                    for d in std::iter::once(&m.config).chain(m.layers.iter()) {
                        if !is_foreign(d) && seen_blobs.insert(d.digest) {
                            blobs.push(d.clone());
                        }
                    }
                }
            }
            i += 1;
        }

        if let Some(want) = dst.digest()
            && *want != root.digest
        {
            return Err(Error::Invalid(format!(
                "the destination {dst} names digest {want}, but the content to copy is {}",
                root.digest
            )));
        }
        let same_registry = src.api_host() == dst.api_host();
        let mount_from = (same_registry && src.repository() != dst.repository())
            .then(|| src.repository().to_string());
        let dst_repo = self.repository(
            dst,
            match &mount_from {
                Some(from) => Access::PushMountingFrom(from.clone()),
                None => Access::Push,
            },
        )?;

        let uploaded = AtomicUsize::new(0);
        let mounted = AtomicUsize::new(0);
        let skipped = AtomicUsize::new(0);
        futures::stream::iter(blobs.iter().map(Ok))
            .try_for_each_concurrent(self.options().concurrency.max(1), |d| {
                let (src_repo, dst_repo) = (&src_repo, &dst_repo);
                let (uploaded, mounted, skipped) = (&uploaded, &mounted, &skipped);
                let mount_from = mount_from.as_deref();
                async move {
                    if dst_repo.blob_exists(&d.digest).await? {
                        skipped.fetch_add(1, Ordering::Relaxed);
                        self.progress(ProgressEvent::BlobSkipped { digest: d.digest });
                        return Ok(());
                    }
                    let mut session = None;
                    if let Some(from) = mount_from {
                        match dst_repo.mount_blob(&d.digest, from).await? {
                            MountOutcome::Mounted => {
                                mounted.fetch_add(1, Ordering::Relaxed);
                                self.progress(ProgressEvent::BlobMounted {
                                    digest: d.digest,
                                    from: from.to_string(),
                                });
                                return Ok(());
                            }
                            MountOutcome::Session(s) => session = Some(s),
                        }
                    }
                    src_repo.fetch_blob(d, store).await?;
                    dst_repo.upload_blob(d, store, session).await?;
                    uploaded.fetch_add(1, Ordering::Relaxed);
                    Ok::<(), Error>(())
                }
            })
            .await?;

        for node in nodes.iter().skip(1).rev() {
            dst_repo.push_manifest(node, None).await?;
        }
        dst_repo.push_manifest(&root, dst.tag()).await?;

        let destination = match dst.tag() {
            Some(t) => dst.with_tag(t)?.with_digest(root.digest),
            None => dst.by_digest(root.digest),
        };
        Ok(CopyOutcome {
            digest: root.digest,
            media_type: root.media_type.clone(),
            destination,
            manifests: nodes.len(),
            blobs_uploaded: uploaded.into_inner(),
            blobs_mounted: mounted.into_inner(),
            blobs_skipped: skipped.into_inner(),
        })
    }

    async fn select_platforms(
        &self,
        src_repo: &Repository,
        src: &Reference,
        top: &RawManifest,
        index: &Index,
        platforms: &[Platform],
    ) -> Result<RawManifest> {
        let mut entries: Vec<Descriptor> = Vec::new();
        for p in platforms {
            let e = index.select(p).map_err(|details| Error::Platform {
                reference: src.to_string(),
                details,
            })?;
            if !entries.iter().any(|x| x.digest == e.digest) {
                entries.push(e.clone());
            }
        }
        if let [one] = entries.as_slice() {
            return src_repo.get_manifest(&one.digest.to_string()).await;
        }
        let filtered = Index {
            schema_version: 2,
            media_type: Some(top.media_type.clone()),
            artifact_type: index.artifact_type.clone(),
            manifests: entries,
            subject: None,
            annotations: index.annotations.clone(),
        };
        let bytes = canonical_json(&filtered)
            .map_err(|e| Error::Invalid(format!("cannot serialize the filtered index: {e}")))?;
        Ok(RawManifest::new(bytes, Some(top.media_type.as_str())))
    }
}
