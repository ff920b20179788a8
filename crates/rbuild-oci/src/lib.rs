//! The OCI image model used everywhere in rbuild.
//!
//! - [`Digest`]: validated `sha256:` content digests and streaming hashers;
//! - [`MediaType`]: OCI and Docker schema 2 media types;
//! - [`Descriptor`], [`Manifest`], [`Index`], [`RawManifest`]: manifests as parsed values and as exact bytes;
//! - [`Platform`]: `os/arch[/variant]` and index platform selection (attestations skipped);
//! - [`ImageConfig`]: the image configuration, keeping every field it does not model;
//! - [`Store`]: the content store, blobs verified while they stream in;
//! - [`Image`], [`Layer`], [`Top`], [`Artifact`]: one model for pulled, stored and built images;
//! - sinks ([`Sink`], reading blobs from a [`BlobSource`]): [`OciLayoutSink`] (`oci:DIR[:TAG]`),
//!   [`DockerArchiveSink`] (`docker-archive:FILE`) and [`MultiSink`];
//! - [`progress`]: the one progress [`progress::Event`] type every long step reports through;
//! - [`canonical_json`]: what rbuild writes itself has sorted keys, so the same image always has the
//!   same digest. Manifests that rbuild only copies keep their exact bytes ([`RawManifest`]).

mod canonical;
mod config;
mod digest;
mod docker_archive;
mod image;
mod layout;
mod manifest;
mod media_type;
mod platform;
pub mod progress;
mod sink;
mod store;

pub use canonical::canonical_json;
pub use config::{ContainerConfig, History, ImageConfig, RootFs};
pub use digest::{Digest, DigestError, Hasher, HashingReader, HashingWriter};
pub use docker_archive::{ArchiveError, write_docker_archive};
pub use image::{Artifact, Image, ImageError, Layer, Top};
pub use layout::{LayoutError, LayoutLock, OciLayout};
pub use manifest::{
    ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, ANNOTATION_CREATED, ANNOTATION_LAYER_KEY,
    ANNOTATION_REF_NAME, Descriptor, Index, Manifest, ManifestError, ManifestKind, NoSuchPlatform,
    RawManifest,
};
pub use media_type::{LayerCompression, MediaType};
pub use platform::{Platform, PlatformParseError};
pub use sink::{
    BlobReader, BlobSource, BoxFuture, DockerArchiveSink, MultiSink, OciLayoutSink,
    RemoteRepository, Sink, SinkError, SinkReport,
};
pub use store::{BlobWriter, PruneOptions, PruneReport, Store, StoreError, VerifiedBlob};
