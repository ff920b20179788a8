//! Descriptors, image manifests and indexes (OCI and Docker schema 2).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Digest, MediaType, Platform};

/// Annotation holding the tag of an entry in an OCI layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Annotation naming the base image.
pub const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";
/// Annotation holding the base image's manifest digest.
pub const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
/// Annotation: creation time.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Annotation on a layer descriptor holding rbuild's cache key for that layer.
pub const ANNOTATION_LAYER_KEY: &str = "dev.rbuild.layer.key";

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: MediaType,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Alternative download URLs (foreign layers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform, in index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor with only the required fields.
    pub fn new(media_type: impl Into<MediaType>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }

    /// An annotation value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// Sets an annotation.
    pub fn set_annotation(&mut self, key: &str, value: impl Into<String>) {
        self.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_string(), value.into());
    }
}

impl From<String> for MediaType {
    fn from(s: String) -> Self {
        MediaType(s)
    }
}

/// An image manifest (OCI, or Docker schema 2 which has the same shape).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type (umoci omits it; then it is OCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// Artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// Layers, base first.
    pub layers: Vec<Descriptor>,
    /// Subject (referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index or Docker manifest list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// Artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Entries.
    pub manifests: Vec<Descriptor>,
    /// Subject (referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Why an index has no entry for a platform.
#[derive(Debug, thiserror::Error)]
#[error("the index has no image for {wanted}; it offers: {available}")]
pub struct NoSuchPlatform {
    /// What was asked for.
    pub wanted: String,
    /// What the index has, comma-separated.
    pub available: String,
}

impl Index {
    /// The runnable image entries (manifests with a platform that is not `unknown/unknown`).
    pub fn image_entries(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifests.iter().filter(|d| {
            d.media_type.is_manifest() && d.platform.as_ref().is_none_or(|p| !p.is_unknown())
        })
    }

    /// The entry for `wanted`, skipping attestations; the first match wins, as in containerd.
    pub fn select(&self, wanted: &Platform) -> Result<&Descriptor, NoSuchPlatform> {
        self.image_entries()
            .find(|d| d.platform.as_ref().is_some_and(|p| p.satisfies(wanted)))
            .ok_or_else(|| NoSuchPlatform {
                wanted: wanted.to_string(),
                available: self
                    .image_entries()
                    .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// A manifest or index as fetched: its exact bytes, digest and media type, so copies never change it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawManifest {
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// Their digest.
    pub digest: Digest,
    /// The media type (from `Content-Type`, the `mediaType` field, or inferred).
    pub media_type: MediaType,
}

/// A parsed manifest or index.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum ManifestKind {
    /// An image manifest.
    Image(Manifest),
    /// An index or manifest list.
    Index(Index),
}

/// Why manifest bytes do not parse.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the expected shape.
    #[error("manifest {digest} ({media_type}) is not valid: {source}")]
    Json {
        /// Which manifest.
        digest: Digest,
        /// Its media type.
        media_type: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A media type rbuild cannot read (e.g. Docker schema 1).
    #[error(
        "manifest {digest} has media type {media_type:?}, which rbuild does not read (it reads OCI and Docker schema 2 manifests and indexes)"
    )]
    Unsupported {
        /// Which manifest.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
}

impl RawManifest {
    /// Wraps bytes, computing the digest. The media type is `content_type` when it is a manifest or
    /// index type, else the document's `mediaType`, else inferred from its shape (`manifests` → OCI
    /// index, `config` → OCI manifest).
    pub fn new(bytes: Vec<u8>, content_type: Option<&str>) -> Self {
        let digest = Digest::of(&bytes);
        let media_type = content_type
            .map(|c| c.split(';').next().unwrap_or("").trim())
            .map(MediaType::from)
            .filter(|m| m.is_index() || m.is_manifest())
            .unwrap_or_else(|| infer_media_type(&bytes));
        RawManifest {
            bytes,
            digest,
            media_type,
        }
    }

    /// Parses the bytes.
    pub fn parse(&self) -> Result<ManifestKind, ManifestError> {
        let err = |source| ManifestError::Json {
            digest: self.digest,
            media_type: self.media_type.to_string(),
            source,
        };
        if self.media_type.is_index() {
            Ok(ManifestKind::Index(
                serde_json::from_slice(&self.bytes).map_err(err)?,
            ))
        } else if self.media_type.is_manifest() {
            Ok(ManifestKind::Image(
                serde_json::from_slice(&self.bytes).map_err(err)?,
            ))
        } else {
            Err(ManifestError::Unsupported {
                digest: self.digest,
                media_type: self.media_type.to_string(),
            })
        }
    }
}

fn infer_media_type(bytes: &[u8]) -> MediaType {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(m),
            ..
        }) => MediaType(m),
        Ok(Probe {
            manifests: Some(_), ..
        }) => MediaType::from(MediaType::OCI_INDEX),
        Ok(Probe {
            config: Some(_), ..
        }) => MediaType::from(MediaType::OCI_MANIFEST),
        _ => MediaType::from("application/octet-stream"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
      {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":10,"platform":{"architecture":"unknown","os":"unknown"}},
      {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":10,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
      {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":10,"platform":{"architecture":"amd64","os":"linux"}}]}"#;

    #[test]
    fn selects_platforms_and_skips_attestations() {
        let raw = RawManifest::new(INDEX.as_bytes().to_vec(), None);
        assert!(raw.media_type.is_index());
        let ManifestKind::Index(index) = raw.parse().unwrap() else {
            panic!("not an index")
        };
        assert_eq!(index.image_entries().count(), 2);
        assert!(
            index
                .select(&"linux/arm64".parse().unwrap())
                .unwrap()
                .digest
                .hex()
                .starts_with("2222")
        );
        assert!(
            index
                .select(&"linux/amd64".parse().unwrap())
                .unwrap()
                .digest
                .hex()
                .starts_with("3333")
        );
        let err = index
            .select(&"linux/s390x".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("linux/arm64/v8, linux/amd64"), "{err}");
    }

    #[test]
    fn umoci_manifest_without_media_type_is_oci() {
        let m = r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1},"layers":[]}"#;
        let raw = RawManifest::new(m.as_bytes().to_vec(), Some("application/octet-stream"));
        assert_eq!(raw.media_type, MediaType::OCI_MANIFEST);
        assert!(matches!(raw.parse().unwrap(), ManifestKind::Image(_)));
    }
}
