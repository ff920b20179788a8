//! A built image: per platform, a manifest, a config and layers that know where their bytes are.

use rbuild_oci::{
    Artifact, Descriptor, Digest, Image, ImageConfig, ImageError, Platform, RawManifest, Top,
};
use rbuild_registry::Reference;
use serde::Serialize;

/// What a layer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    /// A layer of the base image.
    Base,
    /// Bytecode for the base image's standard library, when the base has none.
    Stdlib,
    /// The dependency layer (installed wheels).
    Deps,
    /// `/etc/passwd` and `/etc/group` with the app user.
    User,
    /// The application.
    App,
}

/// How a layer came to be in this build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerStatus {
    /// Taken from the base image.
    Base,
    /// Built by this run.
    Built,
    /// Found in the local store by its cache key.
    CachedLocal,
    /// Found in a previous image in the registry by its cache key.
    CachedRemote,
}

/// Where a blob's bytes can be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobLocation {
    /// In the local content store.
    Store,
    /// In a repository of a registry (not downloaded).
    Remote(Reference),
}

/// A layer of a built image.
#[derive(Clone, Debug)]
pub struct BuiltLayer {
    /// Its descriptor, as in the manifest.
    pub descriptor: Descriptor,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// What it holds.
    pub kind: LayerKind,
    /// How it came to be.
    pub status: LayerStatus,
    /// Where its bytes are.
    pub location: BlobLocation,
}

/// One platform's image.
#[derive(Clone, Debug)]
pub struct PlatformImage {
    /// The platform.
    pub platform: Platform,
    /// The manifest (canonical bytes).
    pub manifest: RawManifest,
    /// The config.
    pub config: ImageConfig,
    /// Config bytes as referenced by the manifest.
    pub config_bytes: Vec<u8>,
    /// Layers, base first.
    pub layers: Vec<BuiltLayer>,
}

/// A built image: one or several platforms (then with an index over them).
#[derive(Clone, Debug)]
pub struct BuiltImage {
    /// The per-platform images.
    pub images: Vec<PlatformImage>,
    /// The index, when more than one platform was built.
    pub index: Option<RawManifest>,
    /// Blobs that a manifest read during the build from that repository names (the previous
    /// image's layers and config): a push to that repository need not ask whether it has them.
    pub present: Vec<(Reference, Digest)>,
    /// Manifests attached to the image: SBOMs, provenance, a signature
    /// ([`crate::Builder::attach`]).
    pub attachments: Vec<crate::supply::Attachment>,
}

impl BuiltImage {
    /// The digest a reference to this image resolves to: the index when there is one, else the
    /// single manifest.
    pub fn digest(&self) -> Digest {
        match &self.index {
            Some(i) => i.digest,
            None => self.images[0].manifest.digest,
        }
    }

    /// The top-level manifest or index.
    pub fn top(&self) -> &RawManifest {
        match &self.index {
            Some(i) => i,
            None => &self.images[0].manifest,
        }
    }
}

impl PlatformImage {
    /// This platform's image in the model the sinks take.
    pub fn to_image(&self) -> Result<Image, ImageError> {
        Image::new(self.manifest.clone(), self.config_bytes.clone())
    }
}

impl BuiltImage {
    /// Where a sink reads this image's blobs: the content store, and the registry repository of
    /// each layer that was found there and never downloaded.
    pub fn blob_source(
        &self,
        client: &rbuild_registry::Client,
        store: &rbuild_oci::Store,
    ) -> rbuild_registry::RegistryBlobs {
        let mut blobs = rbuild_registry::RegistryBlobs::new(client.clone(), store.clone());
        for l in self.images.iter().flat_map(|p| &p.layers) {
            if let BlobLocation::Remote(r) = &l.location {
                blobs = blobs.with_remote(l.descriptor.digest, r.clone());
            }
        }
        blobs
    }

    /// The image in the model the sinks take ([`rbuild_oci::Sink`]): build-only facts (layer kind,
    /// cache status, where blobs are) stay here.
    pub fn artifact(&self) -> Result<Artifact, ImageError> {
        let images = self
            .images
            .iter()
            .map(PlatformImage::to_image)
            .collect::<Result<Vec<_>, _>>()?;
        let top = match &self.index {
            Some(index) => Top::index(index.clone(), images)?,
            None => Top::Image(images.into_iter().next().expect("a build has an image")),
        };
        let mut artifact = Artifact::new(top);
        for a in &self.attachments {
            if let Some(tag) = &a.tag {
                artifact
                    .attachment_tags
                    .insert(a.image.digest(), tag.clone());
            }
            artifact.attachments.push(a.image.clone());
        }
        Ok(artifact)
    }
}
