//! OCI and Docker schema 2 media types.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A media type string. Known types have constants and predicates; unknown types are kept as they are.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MediaType(pub String);

impl MediaType {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &'static str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &'static str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &'static str = "application/vnd.oci.image.config.v1+json";
    /// OCI uncompressed layer.
    pub const OCI_LAYER_TAR: &'static str = "application/vnd.oci.image.layer.v1.tar";
    /// OCI gzip layer.
    pub const OCI_LAYER_GZIP: &'static str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// OCI zstd layer.
    pub const OCI_LAYER_ZSTD: &'static str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// OCI non-distributable gzip layer (deprecated, still read).
    pub const OCI_LAYER_NONDIST_GZIP: &'static str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    /// OCI empty descriptor payload (`{}`).
    pub const OCI_EMPTY: &'static str = "application/vnd.oci.empty.v1+json";
    /// Docker schema 2 manifest.
    pub const DOCKER_MANIFEST: &'static str =
        "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_MANIFEST_LIST: &'static str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &'static str = "application/vnd.docker.container.image.v1+json";
    /// Docker gzip layer.
    pub const DOCKER_LAYER_GZIP: &'static str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker foreign layer.
    pub const DOCKER_LAYER_FOREIGN: &'static str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

    /// Every manifest and index type rbuild reads, in the order sent in `Accept`.
    pub const ACCEPT_MANIFESTS: [&'static str; 4] = [
        Self::OCI_INDEX,
        Self::DOCKER_MANIFEST_LIST,
        Self::OCI_MANIFEST,
        Self::DOCKER_MANIFEST,
    ];

    /// Wraps a string.
    pub fn new(s: impl Into<String>) -> Self {
        MediaType(s.into())
    }
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// An OCI index or Docker manifest list.
    pub fn is_index(&self) -> bool {
        matches!(
            self.0.as_str(),
            Self::OCI_INDEX | Self::DOCKER_MANIFEST_LIST
        )
    }
    /// An OCI or Docker schema 2 image manifest.
    pub fn is_manifest(&self) -> bool {
        matches!(self.0.as_str(), Self::OCI_MANIFEST | Self::DOCKER_MANIFEST)
    }
    /// An image config.
    pub fn is_config(&self) -> bool {
        matches!(self.0.as_str(), Self::OCI_CONFIG | Self::DOCKER_CONFIG)
    }
    /// A Docker (not OCI) type.
    pub fn is_docker(&self) -> bool {
        self.0.starts_with("application/vnd.docker.")
    }
    /// A layer type; see [`LayerCompression`] for how it is compressed.
    pub fn is_layer(&self) -> bool {
        self.layer_compression().is_some()
    }
    /// How a layer of this type is compressed, or `None` when this is not a layer type.
    pub fn layer_compression(&self) -> Option<LayerCompression> {
        match self.0.as_str() {
            Self::OCI_LAYER_TAR | "application/vnd.oci.image.layer.nondistributable.v1.tar" => {
                Some(LayerCompression::None)
            }
            Self::OCI_LAYER_GZIP
            | Self::OCI_LAYER_NONDIST_GZIP
            | Self::DOCKER_LAYER_GZIP
            | Self::DOCKER_LAYER_FOREIGN => Some(LayerCompression::Gzip),
            Self::OCI_LAYER_ZSTD
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(LayerCompression::Zstd)
            }
            _ => None,
        }
    }
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerCompression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl From<&str> for MediaType {
    fn from(s: &str) -> Self {
        MediaType(s.to_string())
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl PartialEq<&str> for MediaType {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}
