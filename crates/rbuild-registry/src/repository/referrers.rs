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
    /// The referrers index under `subject`'s referrers tag, when there is one: the read
    /// [`Client::prefetch_referrers`] started, when there is one and it succeeded, else
    /// [`Repository::read_referrers_tag`].
    pub(crate) async fn referrers_tag_index(&self, subject: &Digest) -> Result<Option<Index>> {
        let reference = self.reference();
        if let Some(read) = self.client().prefetched_referrers(
            reference.registry(),
            reference.repository(),
            subject,
            false,
        ) && let Some(index) = read.await
        {
            return Ok(index);
        }
        self.read_referrers_tag(subject).await
    }

    /// Whether every subject of `attachments` has a referrers tag read started ahead.
    pub(crate) fn referrers_prefetched(&self, attachments: &[Image]) -> bool {
        let reference = self.reference();
        attachments
            .iter()
            .filter_map(|a| a.parsed_manifest().subject.as_ref())
            .all(|s| {
                self.client()
                    .prefetched_referrers(
                        reference.registry(),
                        reference.repository(),
                        &s.digest,
                        true,
                    )
                    .is_some()
            })
    }

    /// Reads `subject`'s referrers tag (one `GET`; a tag that is not there is `404`).
    pub(crate) async fn read_referrers_tag(&self, subject: &Digest) -> Result<Option<Index>> {
        let tag = referrers_tag(subject);
        match self.get_manifest(&tag).await {
            Ok(raw) => match raw.parse() {
                Ok(ManifestKind::Index(i)) => Ok(Some(i)),
                _ => Ok(None),
            },
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The referrers indexes of the subjects of `attachments` (read at once): what
    /// [`Repository::add_referrers_to`] merges with, and which attachments are already listed.
    pub(crate) async fn referrers_indexes(
        &self,
        attachments: &[Image],
    ) -> Result<BTreeMap<Digest, Option<Index>>> {
        let subjects: std::collections::BTreeSet<Digest> = attachments
            .iter()
            .filter_map(|a| a.parsed_manifest().subject.as_ref().map(|s| s.digest))
            .collect();
        let read = futures::future::try_join_all(
            subjects
                .into_iter()
                .map(|s| async move { Ok::<_, Error>((s, self.referrers_tag_index(&s).await?)) }),
        )
        .await?;
        Ok(read.into_iter().collect())
    }

    /// Adds every attachment that has a `subject` to its subject's referrers tag (one index per
    /// subject, merged with what the tag lists; not pushed again when nothing changes).
    pub async fn add_referrers(&self, attachments: &[Image]) -> Result<()> {
        let existing = self.referrers_indexes(attachments).await?;
        self.add_referrers_to(attachments, &existing).await
    }

    /// [`Repository::add_referrers`] with the referrers indexes already read (`existing`, from
    /// [`Repository::referrers_indexes`]); the subjects' tags are pushed at once.
    pub(crate) async fn add_referrers_to(
        &self,
        attachments: &[Image],
        existing: &BTreeMap<Digest, Option<Index>>,
    ) -> Result<()> {
        let merged_all = self.referrers_tags_to_push(attachments, existing);
        futures::future::try_join_all(
            merged_all
                .iter()
                .map(|(m, tag)| self.push_manifest(m, Some(tag))),
        )
        .await?;
        Ok(())
    }

    /// The referrers indexes [`Repository::add_referrers_to`] pushes, with their tags: each
    /// subject's (read into `existing`) with `attachments` merged in, where that changes it. A
    /// read of such a tag started ahead is dropped (out of date once the tag is pushed).
    pub(crate) fn referrers_tags_to_push(
        &self,
        attachments: &[Image],
        existing: &BTreeMap<Digest, Option<Index>>,
    ) -> Vec<(rbuild_oci::RawManifest, String)> {
        let mut by_subject: BTreeMap<Digest, Vec<Descriptor>> = BTreeMap::new();
        for a in attachments {
            if let Some(s) = &a.parsed_manifest().subject {
                by_subject
                    .entry(s.digest)
                    .or_default()
                    .push(referrer_descriptor(a));
            }
        }
        let mut merged_all = Vec::new();
        for (subject, descriptors) in by_subject {
            let existing = existing.get(&subject).cloned().flatten();
            let merged = merge_referrers(existing.as_ref(), &descriptors);
            // Already listed (the same build pushed again): the tag is left as it is.
            let unchanged = existing
                .as_ref()
                .is_some_and(|e| merge_referrers(Some(e), &[]).digest == merged.digest);
            if !unchanged {
                // A read of this tag started ahead is out of date once it is pushed.
                let reference = self.reference();
                self.client().prefetched_referrers(
                    reference.registry(),
                    reference.repository(),
                    &subject,
                    false,
                );
                merged_all.push((merged, referrers_tag(&subject)));
            }
        }
        merged_all
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
