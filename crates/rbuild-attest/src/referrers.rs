//! OCI 1.1 artifact manifests and the referrers tag schema.
//!
//! An attachment is an image manifest with `artifactType`, the empty config
//! (`application/vnd.oci.empty.v1+json`, `{}`), one layer holding the document, and `subject`
//! naming the image it is about. A registry with the referrers API lists it under
//! `GET /v2/NAME/referrers/DIGEST`; one without (distribution 2.8) is given the fallback of the
//! distribution spec: the tag `sha256-<hex of the subject digest>` names an OCI index whose
//! `manifests` are the descriptors of every referrer (with `artifactType` and annotations),
//! merged with what the tag already lists.

use std::collections::BTreeMap;

use rbuild_oci::{
    Descriptor, Digest, Image, ImageError, Index, Manifest, MediaType, RawManifest, canonical_json,
};

/// The prefix of referrers tags (`sha256-`).
pub const REFERRERS_TAG_PREFIX: &str = "sha256-";

/// The referrers tag of `subject` (`sha256-<hex>`).
pub fn referrers_tag(subject: &Digest) -> String {
    format!("{REFERRERS_TAG_PREFIX}{}", subject.hex())
}

/// An artifact manifest with its blobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactManifest {
    /// The manifest and config, as an [`Image`] the sinks take.
    pub image: Image,
    /// The document (the one layer's bytes).
    pub blob: Vec<u8>,
    /// The config bytes (`{}`).
    pub config: Vec<u8>,
}

impl ArtifactManifest {
    /// An artifact of `artifact_type` holding `blob` (of `blob_media_type`) about `subject`, with
    /// `annotations` on the manifest (canonical JSON, so the same inputs give the same digest).
    pub fn new(
        artifact_type: &str,
        blob_media_type: &str,
        blob: Vec<u8>,
        subject: Descriptor,
        annotations: BTreeMap<String, String>,
    ) -> Result<ArtifactManifest, ImageError> {
        let config = b"{}".to_vec();
        let subject = Descriptor::new(subject.media_type, subject.digest, subject.size);
        let m = Manifest {
            schema_version: 2,
            media_type: Some(MediaType::from(MediaType::OCI_MANIFEST)),
            artifact_type: Some(artifact_type.to_string()),
            config: Descriptor::new(
                MediaType::OCI_EMPTY,
                Digest::of(&config),
                config.len() as u64,
            ),
            layers: vec![Descriptor::new(
                blob_media_type,
                Digest::of(&blob),
                blob.len() as u64,
            )],
            subject: Some(subject),
            annotations: (!annotations.is_empty()).then_some(annotations),
        };
        let raw = RawManifest::new(
            canonical_json(&m).expect("serializable"),
            Some(MediaType::OCI_MANIFEST),
        );
        Ok(ArtifactManifest {
            image: Image::new(raw, config.clone())?,
            blob,
            config,
        })
    }
}

/// The descriptor of a referrer in a referrers index: media type, digest, size, `artifactType`
/// (the manifest's, else its config's media type) and the manifest's annotations.
pub fn referrer_descriptor(image: &Image) -> Descriptor {
    let m = image.parsed_manifest();
    let raw = image.manifest();
    let mut d = Descriptor::new(raw.media_type.clone(), raw.digest, raw.bytes.len() as u64);
    d.artifact_type = Some(
        m.artifact_type
            .clone()
            .unwrap_or_else(|| m.config.media_type.as_str().to_string()),
    );
    d.annotations = m.annotations.clone();
    d
}

/// The referrers index for a subject: `existing` (the tag's current index, when there is one)
/// with `new` descriptors added (a digest already listed is replaced), sorted by digest so the
/// same referrers always give the same index.
pub fn merge_referrers(existing: Option<&Index>, new: &[Descriptor]) -> RawManifest {
    let mut by_digest: BTreeMap<Digest, Descriptor> = BTreeMap::new();
    for d in existing.iter().flat_map(|i| i.manifests.iter()) {
        by_digest.insert(d.digest, d.clone());
    }
    for d in new {
        by_digest.insert(d.digest, d.clone());
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(MediaType::from(MediaType::OCI_INDEX)),
        artifact_type: None,
        manifests: by_digest.into_values().collect(),
        subject: None,
        annotations: None,
    };
    RawManifest::new(
        canonical_json(&index).expect("serializable"),
        Some(MediaType::OCI_INDEX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbuild_oci::ManifestKind;

    fn subject() -> Descriptor {
        Descriptor::new(MediaType::OCI_MANIFEST, Digest::of(b"image"), 5)
    }

    #[test]
    fn an_artifact_names_its_subject_and_type() {
        let a = ArtifactManifest::new(
            "application/spdx+json",
            "application/spdx+json",
            b"{\"spdxVersion\":\"SPDX-2.3\"}".to_vec(),
            subject(),
            BTreeMap::from([("k".to_string(), "v".to_string())]),
        )
        .unwrap();
        let m = a.image.parsed_manifest();
        assert_eq!(m.subject.as_ref().unwrap().digest, Digest::of(b"image"));
        assert_eq!(m.artifact_type.as_deref(), Some("application/spdx+json"));
        assert_eq!(m.config.media_type.as_str(), MediaType::OCI_EMPTY);
        assert_eq!(m.layers[0].digest, Digest::of(&a.blob));
        let d = referrer_descriptor(&a.image);
        assert_eq!(d.artifact_type.as_deref(), Some("application/spdx+json"));
        assert_eq!(d.annotations.as_ref().unwrap()["k"], "v");
        assert_eq!(
            referrers_tag(&Digest::of(b"image")),
            format!("sha256-{}", Digest::of(b"image").hex())
        );
    }

    #[test]
    fn referrers_merge_with_what_the_tag_lists() {
        let a = Descriptor::new(MediaType::OCI_MANIFEST, Digest::of(b"a"), 1);
        let b = Descriptor::new(MediaType::OCI_MANIFEST, Digest::of(b"b"), 2);
        let first = merge_referrers(None, std::slice::from_ref(&a));
        let ManifestKind::Index(idx) = first.parse().unwrap() else {
            panic!()
        };
        let second = merge_referrers(Some(&idx), &[b.clone(), a.clone()]);
        let ManifestKind::Index(idx2) = second.parse().unwrap() else {
            panic!()
        };
        assert_eq!(idx2.manifests.len(), 2);
        // Order does not depend on the order given.
        assert_eq!(second, merge_referrers(Some(&idx), &[a, b]));
    }
}
