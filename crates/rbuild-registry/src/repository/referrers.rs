//! Referrers: the manifests whose `subject` is a given manifest (SBOMs, provenance).
//!
//! Read through the referrers API (`GET /v2/NAME/referrers/DIGEST`) where the registry has it,
//! else through the referrers tag schema (`sha256-<hex>` naming an index of referrer
//! descriptors). Pushing always maintains the tag schema (merged with what the tag already
//! lists): distribution 2.8 has no referrers API, and a registry that has one ignores the tag.

use std::collections::BTreeMap;

use rbuild_attest::{merge_referrers, referrer_descriptor, referrers_tag};
use rbuild_oci::{Image, Index, ManifestKind};

use super::*;

impl Repository {
    /// The referrers index under `subject`'s referrers tag, when there is one.
    async fn referrers_tag_index(&self, subject: &Digest) -> Result<Option<Index>> {
        let tag = referrers_tag(subject);
        if self.head_manifest(&tag).await?.is_none() {
            return Ok(None);
        }
        match self.get_manifest(&tag).await?.parse() {
            Ok(ManifestKind::Index(i)) => Ok(Some(i)),
            _ => Ok(None),
        }
    }

    /// Adds every attachment that has a `subject` to its subject's referrers tag (one index per
    /// subject, merged with what the tag lists; not pushed again when nothing changes).
    pub async fn add_referrers(&self, attachments: &[Image]) -> Result<()> {
        let mut by_subject: BTreeMap<Digest, Vec<Descriptor>> = BTreeMap::new();
        for a in attachments {
            if let Some(s) = &a.parsed_manifest().subject {
                by_subject
                    .entry(s.digest)
                    .or_default()
                    .push(referrer_descriptor(a));
            }
        }
        for (subject, descriptors) in by_subject {
            let existing = self.referrers_tag_index(&subject).await?;
            let merged = merge_referrers(existing.as_ref(), &descriptors);
            // Already listed (the same build pushed again): the tag is left as it is.
            let unchanged = existing
                .as_ref()
                .is_some_and(|e| merge_referrers(Some(e), &[]).digest == merged.digest);
            if !unchanged {
                self.push_manifest(&merged, Some(&referrers_tag(&subject)))
                    .await?;
            }
        }
        Ok(())
    }

    /// The descriptors of the manifests that refer to `subject`: from the referrers API when the
    /// registry answers it, else from the referrers tag (empty when neither lists any).
    pub async fn referrers(&self, subject: &Digest) -> Result<Vec<Descriptor>> {
        let what = format!("listing the referrers of {}@{subject}", self.name());
        let mut req = Self::req(
            Method::GET,
            self.url(&format!("referrers/{subject}")).await?,
        );
        req.headers
            .push(("accept", MediaType::OCI_INDEX.to_string()));
        let resp = self.send(&req, &what).await?;
        if resp.status().as_u16() == 200 {
            let bytes = read_limited(resp, MAX_MANIFEST_SIZE, &what, &self.host.name).await?;
            if let Ok(index) = serde_json::from_slice::<Index>(&bytes) {
                return Ok(index.manifests);
            }
        }
        Ok(self
            .referrers_tag_index(subject)
            .await?
            .map(|i| i.manifests)
            .unwrap_or_default())
    }
}
