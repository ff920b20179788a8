//! High-level operations: resolve an image for a platform, fetch blobs in parallel, pull an image
//! into the model (for `rbuild copy`, which pushes it with the registry sink).

use std::collections::BTreeSet;

use futures::{StreamExt, TryStreamExt};
use rbuild_oci::{
    Artifact, Descriptor, Image, ImageConfig, ImageError, Index, Manifest, ManifestKind, Platform,
    RawManifest, Store, Top, canonical_json,
};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::repository::{Access, Repository};

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

    /// Pulls what `src` names into the model, like the first half of `crane copy`: by default the
    /// whole index with every platform, manifests byte for byte (so a push has the same digest);
    /// with one platform, that platform's manifest; with several, a new index over just those
    /// entries. Manifests and configs are read (configs from `store` when there); layers are not downloaded:
    /// read them with [`RegistryBlobs::of_repository`](crate::RegistryBlobs::of_repository).
    pub async fn pull(
        &self,
        src: &Reference,
        platforms: Option<&[Platform]>,
        store: &Store,
    ) -> Result<Artifact> {
        let src_repo = self.repository(src, Access::Pull)?;
        let top = src_repo.get_manifest(&src.identifier()).await?;
        let root = match (top.parse()?, platforms) {
            (ManifestKind::Index(index), Some(ps)) if !ps.is_empty() => {
                self.select_platforms(&src_repo, src, &top, &index, ps)
                    .await?
            }
            _ => top,
        };
        let invalid = |e: ImageError| Error::Invalid(format!("{src}: {e}"));
        let top = match root.parse()? {
            ManifestKind::Image(m) => Top::Image(pull_image(&src_repo, root, &m, store).await?),
            ManifestKind::Index(index) => {
                let mut seen = BTreeSet::new();
                let children: Vec<&Descriptor> = index
                    .manifests
                    .iter()
                    .filter(|d| seen.insert(d.digest))
                    .collect();
                let images = futures::stream::iter(children.into_iter().map(|d| {
                    let src_repo = &src_repo;
                    async move {
                        let raw = src_repo.get_manifest(&d.digest.to_string()).await?;
                        match raw.parse()? {
                            ManifestKind::Image(m) => pull_image(src_repo, raw, &m, store).await,
                            ManifestKind::Index(_) => Err(Error::Invalid(format!(
                                "{src}: entry {} is itself an index, which rbuild does not copy",
                                d.digest
                            ))),
                        }
                    }
                }))
                .buffered(self.options().concurrency.max(1))
                .try_collect::<Vec<_>>()
                .await?;
                Top::index(root, images).map_err(invalid)?
            }
        };
        Ok(Artifact::new(top))
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

/// An image of `repo` in the model, with its config.
async fn pull_image(
    repo: &Repository,
    manifest: RawManifest,
    parsed: &Manifest,
    store: &Store,
) -> Result<Image> {
    // From the store when it is there; else read (verified) without keeping it: a copy within one
    // registry mounts it and nothing goes through the store.
    let config = if store.contains(&parsed.config.digest) {
        store.read_blob(&parsed.config.digest)?
    } else {
        repo.get_small_blob(&parsed.config).await?
    };
    Image::new(manifest, config).map_err(|e| Error::Invalid(format!("{}: {e}", repo.reference())))
}
