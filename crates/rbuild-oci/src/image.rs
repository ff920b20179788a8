//! One image model for pulled, stored and built images alike.
//!
//! - [`Layer`]: a layer's descriptor (digest, size, media type, annotations) and its diff_id;
//! - [`Image`]: exact manifest bytes, exact config bytes and the layers; its digest, platform and
//!   layers are derived from those bytes, never stored a second time;
//! - [`Top`]: what a reference names: one image, or an index over several;
//! - [`Artifact`]: a top plus attachments, manifests that point at an image through `subject`
//!   (SBOMs and signatures).
//!
//! Sinks ([`crate::Sink`]) take an [`Artifact`] and read its blobs from a [`crate::BlobSource`].

use std::collections::BTreeMap;

use crate::{Descriptor, Digest, ImageConfig, Manifest, ManifestKind, Platform, RawManifest};

/// Why manifest and config bytes do not make an [`Image`] or [`Top`].
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The manifest does not parse.
    #[error(transparent)]
    Manifest(#[from] crate::ManifestError),
    /// An index where an image manifest was expected (or the reverse).
    #[error("manifest {digest} is {found}, but {expected} was expected")]
    Kind {
        /// Which manifest.
        digest: Digest,
        /// What it is.
        found: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// The config bytes are not the ones the manifest names.
    #[error(
        "manifest {manifest} names config {expected}, but the config bytes given hash to {actual}"
    )]
    ConfigMismatch {
        /// Which manifest.
        manifest: Digest,
        /// The config digest in the manifest.
        expected: Digest,
        /// The digest of the bytes given.
        actual: Digest,
    },
    /// An image given with an index that does not name it.
    #[error("index {index} has no entry for manifest {manifest}")]
    NotInIndex {
        /// The index.
        index: Digest,
        /// The manifest it does not name.
        manifest: Digest,
    },
}

/// A layer: its descriptor as in the manifest, and the digest of its uncompressed tar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// The descriptor, as in the manifest.
    pub descriptor: Descriptor,
    /// sha256 of the uncompressed tar, from the config's `rootfs.diff_ids`; `None` for the blobs of
    /// an artifact whose config lists no diff_ids (an attestation copied as it is).
    pub diff_id: Option<Digest>,
}

/// An image: manifest and config as exact bytes, with the layers they describe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    manifest: RawManifest,
    parsed: Manifest,
    config: Vec<u8>,
    layers: Vec<Layer>,
    platform: Option<Platform>,
}

impl Image {
    /// An image from its manifest and the config bytes that manifest names (verified by digest).
    /// Layers, diff_ids and the platform are read from the two; a config that is not an image config
    /// (an artifact's) gives no platform and no diff_ids.
    pub fn new(manifest: RawManifest, config: Vec<u8>) -> Result<Image, ImageError> {
        let parsed = match manifest.parse()? {
            ManifestKind::Image(m) => m,
            ManifestKind::Index(_) => {
                return Err(ImageError::Kind {
                    digest: manifest.digest,
                    found: "an index",
                    expected: "an image manifest",
                });
            }
        };
        let actual = Digest::of(&config);
        if actual != parsed.config.digest {
            return Err(ImageError::ConfigMismatch {
                manifest: manifest.digest,
                expected: parsed.config.digest,
                actual,
            });
        }
        let cfg = ImageConfig::from_slice(&config).ok();
        let diff_ids = cfg
            .as_ref()
            .map(|c| &c.rootfs.diff_ids)
            .filter(|d| d.len() == parsed.layers.len());
        let layers = parsed
            .layers
            .iter()
            .enumerate()
            .map(|(i, d)| Layer {
                descriptor: d.clone(),
                diff_id: diff_ids.map(|ids| ids[i]),
            })
            .collect();
        let platform = cfg.filter(|c| !c.os.is_empty()).map(|c| {
            let mut p = Platform::new(&c.os, &c.architecture, c.variant.as_deref());
            p.os_version = c.os_version.clone();
            p
        });
        Ok(Image {
            manifest,
            parsed,
            config,
            layers,
            platform,
        })
    }

    /// The manifest, exact bytes.
    pub fn manifest(&self) -> &RawManifest {
        &self.manifest
    }

    /// The parsed manifest.
    pub fn parsed_manifest(&self) -> &Manifest {
        &self.parsed
    }

    /// The manifest's digest.
    pub fn digest(&self) -> Digest {
        self.manifest.digest
    }

    /// The config bytes, exactly as the manifest names them.
    pub fn config_bytes(&self) -> &[u8] {
        &self.config
    }

    /// The config's descriptor, as in the manifest.
    pub fn config_descriptor(&self) -> &Descriptor {
        &self.parsed.config
    }

    /// The layers, base first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The platform, from the config (`os`, `architecture`, `variant`, `os.version`); `None` when
    /// the config is not an image config.
    pub fn platform(&self) -> Option<&Platform> {
        self.platform.as_ref()
    }

    /// A descriptor of the manifest, with the platform when there is one.
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(
            self.manifest.media_type.clone(),
            self.manifest.digest,
            self.manifest.bytes.len() as u64,
        );
        d.platform = self.platform.clone();
        d
    }

    /// The blobs the manifest names: the config, then the layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.parsed.config).chain(self.parsed.layers.iter())
    }
}

/// What a reference names: one image, or an index over several.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Top {
    /// A single image.
    Image(Image),
    /// An index (or Docker manifest list) with the images it names, in its order.
    Index {
        /// The index, exact bytes.
        manifest: RawManifest,
        /// The images it names.
        images: Vec<Image>,
    },
}

impl Top {
    /// An index over `images`, each of which it must name.
    pub fn index(manifest: RawManifest, images: Vec<Image>) -> Result<Top, ImageError> {
        let index = match manifest.parse()? {
            ManifestKind::Index(i) => i,
            ManifestKind::Image(_) => {
                return Err(ImageError::Kind {
                    digest: manifest.digest,
                    found: "an image manifest",
                    expected: "an index",
                });
            }
        };
        if let Some(missing) = images
            .iter()
            .find(|img| !index.manifests.iter().any(|d| d.digest == img.digest()))
        {
            return Err(ImageError::NotInIndex {
                index: manifest.digest,
                manifest: missing.digest(),
            });
        }
        Ok(Top::Index { manifest, images })
    }

    /// The top-level manifest or index.
    pub fn manifest(&self) -> &RawManifest {
        match self {
            Top::Image(i) => i.manifest(),
            Top::Index { manifest, .. } => manifest,
        }
    }

    /// The digest a reference to it resolves to.
    pub fn digest(&self) -> Digest {
        self.manifest().digest
    }

    /// The images: the one, or those of the index.
    pub fn images(&self) -> &[Image] {
        match self {
            Top::Image(i) => std::slice::from_ref(i),
            Top::Index { images, .. } => images,
        }
    }

    /// Whether it is an index.
    pub fn is_index(&self) -> bool {
        matches!(self, Top::Index { .. })
    }

    /// A descriptor of the top manifest; a single image's carries its platform.
    pub fn descriptor(&self) -> Descriptor {
        match self {
            Top::Image(i) => i.descriptor(),
            Top::Index { manifest, .. } => Descriptor::new(
                manifest.media_type.clone(),
                manifest.digest,
                manifest.bytes.len() as u64,
            ),
        }
    }
}

/// What is published: a top (image or index) and attachments that point at it through `subject`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// The image or index.
    pub top: Top,
    /// Manifests attached to an image of `top` (SBOMs, signatures), pushed after it by digest.
    pub attachments: Vec<Image>,
    /// Tags of attachments that are found by tag rather than by `subject` (a cosign signature:
    /// `sha256-<hex>.sig`), by attachment manifest digest.
    pub attachment_tags: BTreeMap<Digest, String>,
}

impl Artifact {
    /// An artifact without attachments.
    pub fn new(top: Top) -> Artifact {
        Artifact {
            top,
            attachments: Vec::new(),
            attachment_tags: BTreeMap::new(),
        }
    }

    /// The tag an attachment is pushed under besides its digest, if any.
    pub fn attachment_tag(&self, attachment: &Digest) -> Option<&str> {
        self.attachment_tags.get(attachment).map(String::as_str)
    }

    /// The digest a reference to it resolves to.
    pub fn digest(&self) -> Digest {
        self.top.digest()
    }

    /// Every image: the top's, then the attachments.
    pub fn images(&self) -> impl Iterator<Item = &Image> {
        self.top.images().iter().chain(self.attachments.iter())
    }

    /// Every blob (configs and layers) of every image, once each, in digest order.
    pub fn blobs(&self) -> Vec<Descriptor> {
        let mut out: BTreeMap<Digest, Descriptor> = BTreeMap::new();
        for image in self.images() {
            for d in image.blobs() {
                out.entry(d.digest).or_insert_with(|| d.clone());
            }
        }
        out.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Index, MediaType, canonical_json};

    fn image(arch: &str) -> Image {
        let layer = b"layer bytes";
        let diff = Digest::of(b"tar");
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#
        )
        .into_bytes();
        let m = Manifest {
            schema_version: 2,
            media_type: Some(MediaType::from(MediaType::OCI_MANIFEST)),
            artifact_type: None,
            config: Descriptor::new(
                MediaType::OCI_CONFIG,
                Digest::of(&config),
                config.len() as u64,
            ),
            layers: vec![Descriptor::new(
                MediaType::OCI_LAYER_GZIP,
                Digest::of(layer),
                layer.len() as u64,
            )],
            subject: None,
            annotations: None,
        };
        let raw = RawManifest::new(canonical_json(&m).unwrap(), Some(MediaType::OCI_MANIFEST));
        Image::new(raw, config).unwrap()
    }

    #[test]
    fn an_image_derives_layers_and_platform_from_its_bytes() {
        let img = image("arm64");
        assert_eq!(img.platform().unwrap().to_string(), "linux/arm64");
        assert_eq!(img.layers().len(), 1);
        assert_eq!(img.layers()[0].diff_id, Some(Digest::of(b"tar")));
        assert_eq!(img.descriptor().platform, img.platform().cloned());
        assert_eq!(img.blobs().count(), 2);
    }

    #[test]
    fn config_bytes_must_match_the_manifest() {
        let img = image("amd64");
        let err = Image::new(img.manifest().clone(), b"{}".to_vec()).unwrap_err();
        assert!(matches!(err, ImageError::ConfigMismatch { .. }), "{err}");
    }

    #[test]
    fn an_index_names_its_images_and_blobs_are_listed_once() {
        let (a, b) = (image("amd64"), image("arm64"));
        let idx = Index {
            schema_version: 2,
            media_type: Some(MediaType::from(MediaType::OCI_INDEX)),
            artifact_type: None,
            manifests: vec![a.descriptor(), b.descriptor()],
            subject: None,
            annotations: None,
        };
        let raw = RawManifest::new(canonical_json(&idx).unwrap(), Some(MediaType::OCI_INDEX));
        let top = Top::index(raw.clone(), vec![a.clone(), b.clone()]).unwrap();
        assert_eq!(top.digest(), raw.digest);
        assert_eq!(top.images().len(), 2);
        // The layer is shared: two configs and one layer.
        assert_eq!(Artifact::new(top).blobs().len(), 3);
        let other = image("s390x");
        assert!(matches!(
            Top::index(raw, vec![other]),
            Err(ImageError::NotInIndex { .. })
        ));
        assert!(matches!(
            Top::index(a.manifest().clone(), vec![]),
            Err(ImageError::Kind { .. })
        ));
    }
}
