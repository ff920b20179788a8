//! The base image of each platform, and the target and base facts read from its layers (cached by
//! base digest, or taken from the previous image).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rbuild_oci::{Digest, ImageConfig, Platform, RawManifest};
use rbuild_python::target::Target;
use rbuild_registry::{Client, Reference};

use crate::BuildError;
use crate::Builder;
use crate::assemble::BaseImage;
use crate::error::other;
use crate::layers::cache_key;
use crate::plan::record::Overrides;
use crate::progress::elapsed;
use crate::request::{BaseRef, BuildRequest};
use crate::rootfs::{BaseFacts, open_layer_checked, read_base};

/// The base of one platform, resolved.
pub(crate) struct ResolvedBase {
    pub(crate) image: BaseImage,
    pub(crate) reference: Option<Reference>,
}

/// Top-level manifests (what a tag names) fetched once per build and shared by its platforms:
/// a two-platform build asks for the base's tag and the previous image's tag once each.
#[derive(Default)]
pub(crate) struct Tops(std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::OnceCell<RawManifest>>>>);

impl Tops {
    pub(crate) async fn get(
        &self,
        client: &Client,
        reference: &Reference,
    ) -> Result<RawManifest, rbuild_registry::Error> {
        let cell = self
            .0
            .lock()
            .expect("tops lock")
            .entry(reference.to_string())
            .or_default()
            .clone();
        cell.get_or_try_init(|| client.get_manifest(reference))
            .await
            .cloned()
    }
}

impl Builder {
    pub(crate) async fn resolve_base(
        &self,
        req: &BuildRequest,
        platform: &Platform,
        tops: &Tops,
    ) -> Result<ResolvedBase, BuildError> {
        match &req.base {
            BaseRef::Scratch => Ok(ResolvedBase {
                image: BaseImage::scratch(
                    &platform.os,
                    &platform.architecture,
                    platform.variant.as_deref(),
                ),
                reference: None,
            }),
            BaseRef::Image(r) => {
                let top = tops.get(&self.client, r).await?;
                let resolved = self
                    .client
                    .resolve_image_from(r, top, platform, Some(&self.store))
                    .await?;
                let (_, config) = self.client.fetch_config(&resolved, &self.store).await?;
                Ok(ResolvedBase {
                    image: BaseImage {
                        name: Some(r.to_string()),
                        manifest_digest: Some(resolved.manifest.digest),
                        layers: resolved.image.layers.clone(),
                        config,
                    },
                    reference: Some(r.clone()),
                })
            }
        }
    }

    pub(crate) fn overrides_key(req: &BuildRequest) -> Overrides {
        Overrides::of(req)
    }

    /// The store key of the target and base facts read from a base image (`base-facts`).
    pub(crate) fn base_facts_key(base_digest: &Digest, req: &BuildRequest) -> String {
        cache_key(
            "base-facts",
            // 3: the facts hold the owners of directories not owned by root (`dir_owners`);
            // 4: and the shells and `env` the base has (`programs`).
            4,
            &(base_digest.to_string(), Self::overrides_key(req)),
        )
    }

    /// The target and base facts kept in the store for this base and these overrides.
    pub(crate) fn stored_base_facts(
        &self,
        base_digest: &Digest,
        req: &BuildRequest,
    ) -> Result<Option<(Target, BaseFacts)>, BuildError> {
        Ok(self
            .store
            .get_key("base-facts", &Self::base_facts_key(base_digest, req))?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Fetches the base layers and reads the target and base facts (cached by base digest).
    pub(crate) async fn base_facts(
        &self,
        req: &BuildRequest,
        base: &ResolvedBase,
        platform: &Platform,
    ) -> Result<(Target, BaseFacts), BuildError> {
        let plat = platform.clone();
        let Some(reference) = &base.reference else {
            let target = rbuild_python::target::target_without_base(&plat, &req.target_overrides)?;
            return Ok((target, BaseFacts::default()));
        };
        let digest = base
            .image
            .manifest_digest
            .expect("a pulled base has a digest");
        if let Some(stored) = self.stored_base_facts(&digest, req)? {
            return Ok(stored);
        }
        let t0 = Instant::now();
        self.client
            .fetch_blobs(reference, &base.image.layers, &self.store)
            .await?;
        let store = self.store.clone();
        let layers = base.image.layers.clone();
        let diff_ids = base.image.config.rootfs.diff_ids.clone();
        let env = base
            .image
            .config
            .config
            .as_ref()
            .and_then(|c| c.env.clone())
            .unwrap_or_default();
        let overrides = req.target_overrides.clone();
        let (target, facts) = tokio::task::spawn_blocking(move || {
            // One decompression of each layer (checked against its diff_id as it streams), one
            // pass with both visitors.
            read_base(
                layers
                    .iter()
                    .enumerate()
                    .map(|(i, d)| open_layer_checked(&store, i, d, &diff_ids)),
                &plat,
                &env,
                &overrides,
            )
        })
        .await
        .map_err(other)??;
        self.store.put_key(
            "base-facts",
            &Self::base_facts_key(&digest, req),
            &serde_json::to_vec(&(&target, &facts)).map_err(other)?,
        )?;
        self.progress.step(
            &platform.to_string(),
            "base",
            &format!(
                "read {} base layers: Python {} at {}",
                base.image.layers.len(),
                target.python_version,
                target.interpreter
            ),
            elapsed(t0),
        );
        Ok((target, facts))
    }

    /// Reads a previous image for `platform` from the cache references: its manifest and config.
    pub(crate) async fn previous_image(
        &self,
        req: &BuildRequest,
        platform: &Platform,
        tops: &Tops,
    ) -> Option<(Reference, rbuild_oci::Manifest, ImageConfig)> {
        for r in &req.cache_from {
            let attempt = async {
                let top = tops.get(&self.client, r).await?;
                let resolved = self
                    .client
                    .resolve_image_from(r, top, platform, Some(&self.store))
                    .await?;
                // The attachments of the previous image are listed under its referrers tag: a
                // build that changes nothing pushes the same ones, and finds that tag read by then
                // (in the background, while it builds) instead of reading it when it pushes.
                self.client.prefetch_referrers(r, resolved.manifest.digest);
                let (_, config) = self.client.fetch_config(&resolved, &self.store).await?;
                Ok::<_, rbuild_registry::Error>((r.clone(), resolved.image, config))
            };
            match attempt.await {
                Ok(found) => return Some(found),
                Err(e) => self
                    .progress
                    .info(&format!("cache image {r} not usable: {e}")),
            }
        }
        None
    }
}
