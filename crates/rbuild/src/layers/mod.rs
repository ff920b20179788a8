//! The layers rbuild adds, one module per kind, behind one cache lookup: a layer is keyed by the
//! hash of everything that changes its bytes; a key seen before returns the stored layer
//! (`cached-local`), and a key found on the previous image in the registry reuses that layer
//! without downloading it (`cached-remote`).

pub mod app;
pub(crate) mod bytecode;
pub mod deps;
pub(crate) mod stdlib;
pub mod user;

use rbuild_layer::LayerInfo;
use rbuild_oci::{ANNOTATION_LAYER_KEY, Descriptor, Digest, ImageConfig, canonical_json};
use rbuild_registry::Reference;
use serde::{Deserialize, Serialize};

use crate::BuildError;
use crate::Builder;
use crate::assemble::ImageFormat;
use crate::error::other;
use crate::image::{BlobLocation, BuiltLayer, LayerKind, LayerStatus};

/// The version of the dependency-layer format; part of every cache key. 2: gzip layers larger
/// than 1 MiB are written as independent blocks (rbuild-layer's `GZIP_BLOCK`), which changes their
/// bytes; a store filled by an older rbuild must not hand out the older encoding for the same key.
/// 3: every gzip block is compressed by a new compressor (a reused one made some blocks depend on
/// which thread compressed them), which changes some layers' bytes.
pub const LAYER_FORMAT_VERSION: u32 = 3;

/// A typed, versioned cache key: the sha256 (hex) of the canonical JSON of
/// `{"kind": KIND, "version": VERSION, "inputs": INPUTS}`. Every key in the store and every layer
/// annotation is made this way: a kind's version changes whenever the bytes its inputs produce
/// would, and no key ever holds Rust `Debug` text (which may change between compiler versions).
pub fn cache_key<T: Serialize>(kind: &str, version: u32, inputs: &T) -> String {
    #[derive(Serialize)]
    struct Key<'a, T> {
        kind: &'a str,
        version: u32,
        inputs: &'a T,
    }
    let key = Key {
        kind,
        version,
        inputs,
    };
    Digest::of(&canonical_json(&key).expect("a cache key serializes")).hex()
}

/// One kind of layer rbuild adds: how it is keyed, described and built. The cache lookup
/// ([`Builder::cached_layer`]) and the cascade local → remote → build ([`Builder::layer`]) are
/// the same for every kind.
pub(crate) trait LayerBuilder: Send + Sync {
    /// What the layer holds.
    fn kind(&self) -> LayerKind;
    /// Its cache key (`None`: built every time).
    fn key(&self) -> Option<&str>;
    /// Writes the layer into the store (`None`: nothing to add, e.g. the base has the user).
    fn build(
        &self,
        builder: &Builder,
    ) -> impl Future<Output = Result<Option<LayerRecord>, BuildError>> + Send;
}

/// Store namespace of the keys whose layer turned out to add nothing.
const EMPTY_NS: &str = "layers-empty";

/// A layer's bytes as kept in the store under its cache key (`layers` keys).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    pub(crate) digest: Digest,
    pub(crate) diff_id: Digest,
    pub(crate) size: u64,
    pub(crate) media_type: String,
}

/// The previous image this build replaces (first usable `--cache-from`): its manifest and config.
pub(crate) type Previous = Option<(Reference, rbuild_oci::Manifest, ImageConfig)>;

impl Builder {
    /// The layer `kind` under `key` from the local store, else from the previous image (not
    /// downloaded), without building it.
    pub(crate) fn cached_layer(
        &self,
        kind: LayerKind,
        key: &str,
        prev: &Previous,
        format: ImageFormat,
        platform: &str,
    ) -> Result<Option<BuiltLayer>, BuildError> {
        // A layer the previous image has is in the registry pushed to: its local bytes are
        // read only by another sink, which verifies them as it reads.
        let remote = Self::remote_layer(prev, key);
        let (rec, status, location) = if let Some(rec) = self.local_layer(key, remote.is_none())? {
            (rec, LayerStatus::CachedLocal, BlobLocation::Store)
        } else if let Some((r, rec)) = remote {
            (rec, LayerStatus::CachedRemote, BlobLocation::Remote(r))
        } else {
            return Ok(None);
        };
        let from = match &location {
            BlobLocation::Remote(r) => format!(" from {r}"),
            BlobLocation::Store => String::new(),
        };
        self.progress.step(
            platform,
            kind_name(kind),
            &format!(
                "{} {}{from}",
                status_name(status),
                &rec.digest.to_string()[..19]
            ),
            0.0,
        );
        Ok(Some(Self::built_layer(
            &rec,
            Some(key),
            kind,
            status,
            location,
            format,
        )))
    }

    /// The layer `b` describes: cached under its key when seen before, else built. A key whose
    /// build added nothing (the base has the user, or its standard library's bytecode) is
    /// remembered as such (`layers-empty` keys), so it is not built again.
    pub(crate) async fn layer<B: LayerBuilder>(
        &self,
        b: &B,
        prev: &Previous,
        format: ImageFormat,
        platform: &str,
    ) -> Result<Option<BuiltLayer>, BuildError> {
        if let Some(key) = b.key() {
            if let Some(cached) = self.cached_layer(b.kind(), key, prev, format, platform)? {
                return Ok(Some(cached));
            }
            if self.store.get_key(EMPTY_NS, key)?.is_some() {
                return Ok(None);
            }
        }
        let built = b.build(self).await?;
        if let (None, Some(key)) = (&built, b.key()) {
            // Best effort: without it the next build only builds it again.
            let _ = self.store.put_key(EMPTY_NS, key, b"{}");
        }
        Ok(built.map(|rec| {
            Self::built_layer(
                &rec,
                b.key(),
                b.kind(),
                LayerStatus::Built,
                BlobLocation::Store,
                format,
            )
        }))
    }

    /// The layer stored under `key`. `verify`: hash its bytes now (it is going to be uploaded);
    /// otherwise only its presence and size are checked, and whatever reads it later verifies
    /// it then ([`rbuild_oci::Store::holds`]).
    pub(crate) fn local_layer(
        &self,
        key: &str,
        verify: bool,
    ) -> Result<Option<LayerRecord>, BuildError> {
        if let Some(bytes) = self.store.get_key("layers", key)?
            && let Ok(rec) = serde_json::from_slice::<LayerRecord>(&bytes)
            && if verify {
                self.store.contains(&rec.digest)
            } else {
                self.store.holds(&rec.digest, rec.size)
            }
        {
            return Ok(Some(rec));
        }
        Ok(None)
    }

    pub(crate) fn remote_layer(prev: &Previous, key: &str) -> Option<(Reference, LayerRecord)> {
        let (r, manifest, config) = prev.as_ref()?;
        let i = manifest
            .layers
            .iter()
            .position(|d| d.annotation(ANNOTATION_LAYER_KEY) == Some(key))?;
        let d = &manifest.layers[i];
        let diff_id = *config.rootfs.diff_ids.get(i)?;
        Some((
            r.clone(),
            LayerRecord {
                digest: d.digest,
                diff_id,
                size: d.size,
                media_type: d.media_type.to_string(),
            },
        ))
    }

    pub(crate) fn built_layer(
        rec: &LayerRecord,
        key: Option<&str>,
        kind: LayerKind,
        status: LayerStatus,
        location: BlobLocation,
        format: ImageFormat,
    ) -> BuiltLayer {
        let mut d = Descriptor::new(rec.media_type.clone(), rec.digest, rec.size);
        if let Some(key) = key
            && format == ImageFormat::Oci
        {
            d.set_annotation(ANNOTATION_LAYER_KEY, key);
        }
        BuiltLayer {
            descriptor: d,
            diff_id: rec.diff_id,
            kind,
            status,
            location,
        }
    }

    pub(crate) fn finish_layer(
        &self,
        key: Option<&str>,
        writer: rbuild_oci::BlobWriter,
        info: &LayerInfo,
    ) -> Result<LayerRecord, BuildError> {
        let (digest, size) = writer.commit()?;
        debug_assert_eq!(digest, info.digest);
        let rec = LayerRecord {
            digest,
            diff_id: info.diff_id,
            size,
            media_type: info.media_type().to_string(),
        };
        if let Some(k) = key {
            self.store
                .put_key("layers", k, &serde_json::to_vec(&rec).map_err(other)?)?;
        }
        Ok(rec)
    }
}

fn kind_name(kind: LayerKind) -> &'static str {
    match kind {
        LayerKind::Base => "base",
        LayerKind::Stdlib => "stdlib",
        LayerKind::Deps => "deps",
        LayerKind::User => "user",
        LayerKind::App => "app",
    }
}

fn status_name(status: LayerStatus) -> &'static str {
    match status {
        LayerStatus::Base => "base",
        LayerStatus::Built => "built",
        LayerStatus::CachedLocal => "cached-local",
        LayerStatus::CachedRemote => "cached-remote",
    }
}
