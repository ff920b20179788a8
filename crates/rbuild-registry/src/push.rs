//! The push algorithm, the one every push goes through (`rbuild build --to`, `rbuild copy`): the
//! registry [`Sink`], and [`RegistryBlobs`], a [`BlobSource`] over the content store and registry
//! repositories.
//!
//! For each destination: every blob is checked with `HEAD` unless a manifest read in this build
//! from that repository already names it, or it is a small blob this build made that the
//! previous image does not name (uploaded at once); what another repository of the same registry holds is
//! mounted (the blob's own repository, or a destination pushed before); the rest is uploaded from
//! the content store, a config written there from the artifact's own bytes, a layer downloaded
//! first when the source has it only in a registry (so each blob is read from the source at most
//! once). Every request for one destination uses one token scope set: the destination's push scope
//! and the pull scope of every repository a blob is mounted from. Then the platform
//! manifests are pushed by digest, the index, the tag last (so a failure never leaves a tag pointing
//! at missing blobs), then attachments by digest. When a blob assumed present turns out to be gone
//! (`BLOB_UNKNOWN` on the manifest), every blob is checked again and the manifests pushed again.
//!
//! With several destinations, the blobs go to every destination before any manifest, so a
//! destination that is down or refuses the push fails it before any tag moves; a failure while
//! the tags are pushed is reported with the references that were updated and those that were not
//! ([`Error::Partial`]).

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use rbuild_oci::{
    Artifact, BlobReader, BlobSource, BoxFuture, Descriptor, Digest, RemoteRepository, Sink,
    SinkError, SinkReport, Store, Top,
};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::progress::ProgressEvent;
use crate::reference::Reference;
use crate::repository::{Access, MountOutcome, Repository, UploadStart};

/// Blobs up to this size are uploaded without waiting for the transfer limit
/// ([`crate::ClientOptions::concurrency`]): the limit is for moving data, and a small blob's
/// upload is mostly waiting for the registry.
const SMALL_BLOB: u64 = 1024 * 1024;

/// A most-likely-new blob up to this size is uploaded without asking first whether the registry
/// has it (no `HEAD`): sending its bytes again costs less than the request, and the registry
/// keeps one copy. Such a blob is one this build made (an app layer, a config, an SBOM) and the
/// previous image of the destination does not name.
const UPLOAD_WITHOUT_HEAD_MAX: u64 = 256 * 1024;

/// How many blobs are looked up (`HEAD`) at once while pushing.
const HEAD_CONCURRENCY: usize = 16;

/// Blobs that are not pushed: foreign / non-distributable layers that name external URLs.
fn is_foreign(d: &Descriptor) -> bool {
    d.urls.as_ref().is_some_and(|u| !u.is_empty())
        && (d.media_type.as_str().contains("foreign")
            || d.media_type.as_str().contains("nondistributable"))
}

fn same_repository(a: &Reference, b: &Reference) -> bool {
    a.registry() == b.registry() && a.repository() == b.repository()
}

/// A [`SinkError`] from a registry error (kept in the chain, so it can be downcast).
pub fn sink_error(e: Error) -> SinkError {
    SinkError::Other(Box::new(e))
}

/// A registry error from what a [`BlobSource`] returned (a registry error is unwrapped).
fn from_sink(e: SinkError) -> Error {
    match e {
        SinkError::Store(s) => Error::Store(s),
        SinkError::Other(b) => match b.downcast::<Error>() {
            Ok(e) => *e,
            Err(b) => Error::Invalid(b.to_string()),
        },
        other => Error::Invalid(other.to_string()),
    }
}

/// Blobs in the content store, and blobs in registry repositories that are read (downloaded into
/// the store, verified as they stream) only when a sink needs their bytes.
#[derive(Clone)]
pub struct RegistryBlobs {
    client: Client,
    store: Store,
    remote: BTreeMap<Digest, Reference>,
    fallback: Option<Reference>,
}

impl RegistryBlobs {
    /// Blobs of the content store only.
    pub fn new(client: Client, store: Store) -> RegistryBlobs {
        RegistryBlobs {
            client,
            store,
            remote: BTreeMap::new(),
            fallback: None,
        }
    }

    /// Blobs of `repository` (what a pull from it names), read from the store when they are there.
    pub fn of_repository(client: Client, store: Store, repository: Reference) -> RegistryBlobs {
        RegistryBlobs {
            fallback: Some(repository),
            ..RegistryBlobs::new(client, store)
        }
    }

    /// Says that the blob `digest` is in `repository` (when it is not in the store).
    pub fn with_remote(mut self, digest: Digest, repository: Reference) -> RegistryBlobs {
        self.remote.insert(digest, repository);
        self
    }

    /// The repository the blob `digest` can be read from, if any.
    pub fn repository_of(&self, digest: &Digest) -> Option<&Reference> {
        self.remote.get(digest).or(self.fallback.as_ref())
    }

    /// Makes sure the blob is in the store, downloading it when it is only in a registry.
    pub async fn localize(&self, descriptor: &Descriptor) -> Result<()> {
        if self.store.contains(&descriptor.digest) {
            return Ok(());
        }
        match self.repository_of(&descriptor.digest) {
            Some(r) => {
                self.client
                    .repository(r, Access::Pull)?
                    .fetch_blob(descriptor, &self.store)
                    .await?;
                Ok(())
            }
            None => Err(Error::Invalid(format!(
                "blob {} is neither in the content store ({}) nor in a repository this build read; build again to recreate it",
                descriptor.digest,
                self.store.root().display()
            ))),
        }
    }
}

impl BlobSource for RegistryBlobs {
    fn open<'a>(
        &'a self,
        descriptor: &'a Descriptor,
    ) -> BoxFuture<'a, std::result::Result<BlobReader, SinkError>> {
        Box::pin(async move {
            self.localize(descriptor).await.map_err(sink_error)?;
            Ok(Box::new(self.store.open_verified(&descriptor.digest)?) as BlobReader)
        })
    }

    fn remote(&self, digest: &Digest) -> Option<RemoteRepository> {
        self.repository_of(digest).map(|r| RemoteRepository {
            registry: r.registry().to_string(),
            repository: r.repository().to_string(),
        })
    }
}

/// The registry sink: pushes an artifact to one or several references. Later destinations on the
/// same registry mount from the first; a second reference to the same repository pushes only the
/// manifests.
#[derive(Clone)]
pub struct RegistrySink {
    client: Client,
    store: Store,
    destinations: Vec<Reference>,
    known: BTreeMap<(String, String), BTreeSet<Digest>>,
}

impl RegistrySink {
    /// A sink pushing to `destinations`, in order; blobs are uploaded from `store` (where a
    /// [`BlobSource`] that is not the store is first read into).
    pub fn new(client: Client, store: Store, destinations: Vec<Reference>) -> RegistrySink {
        RegistrySink {
            client,
            store,
            destinations,
            known: BTreeMap::new(),
        }
    }

    /// Says that `repository` has the blobs `digests` (a manifest read from it in this build names
    /// them): they are not checked with `HEAD`. Should one be gone, the push checks every blob.
    pub fn with_known_blobs(
        mut self,
        repository: &Reference,
        digests: impl IntoIterator<Item = Digest>,
    ) -> RegistrySink {
        self.known
            .entry((
                repository.registry().to_string(),
                repository.repository().to_string(),
            ))
            .or_default()
            .extend(digests);
        self
    }

    /// The destinations.
    pub fn destinations(&self) -> &[Reference] {
        &self.destinations
    }

    /// Pushes `artifact` to every destination (what [`Sink::write`] does, with the registry's own
    /// error type): the blobs to every destination first, then the manifests, each destination's
    /// tag last. With several destinations, a failure is an [`Error::Partial`] that lists which
    /// references were updated (a failure while pushing blobs updates none).
    pub async fn push(&self, artifact: &Artifact, blobs: &dyn BlobSource) -> Result<SinkReport> {
        let mut report = SinkReport::default();
        let all: Vec<Descriptor> = artifact
            .blobs()
            .into_iter()
            .filter(|d| !is_foreign(d))
            .collect();
        struct Prepared<'a> {
            dst: &'a Reference,
            repo: Repository,
            skip: BTreeSet<Digest>,
            mount_from: Option<&'a Reference>,
            referrers: Option<Referrers>,
        }
        let mut prepared: Vec<Prepared<'_>> = Vec::new();
        let mut pushed: Vec<&Reference> = Vec::new();
        // Blobs the pipelined push got into the registry before it gave up.
        let mut pipelined = BTreeSet::new();
        for dst in &self.destinations {
            let same_repo_done = pushed.iter().any(|r| same_repository(r, dst));
            let mount_from = pushed
                .iter()
                .find(|r| r.registry() == dst.registry() && r.repository() != dst.repository())
                .copied();
            let mut skip: BTreeSet<Digest> = self
                .known
                .get(&(dst.registry().to_string(), dst.repository().to_string()))
                .cloned()
                .unwrap_or_default();
            // Every request of this destination's push (blob checks, mounts, uploads, manifests)
            // uses one scope set, the destination's push scope and the pull scope of every
            // repository a blob may be mounted from: one token for the whole push.
            let sources: BTreeSet<String> = all
                .iter()
                .filter_map(|d| mount_source(blobs, &d.digest, dst, mount_from))
                .collect();
            let repo = self
                .client
                .repository(
                    dst,
                    Access::PushMountingFromAll(sources.into_iter().collect()),
                )
                .map_err(|e| self.partial(&[], e))?;
            if self.destinations.len() == 1 {
                match self.push_pipelined(&repo, artifact, blobs, &skip).await {
                    Pipelined::Done { uploaded, existing } => {
                        report.uploaded += uploaded;
                        report.existing += existing;
                        report.references.push(reference_line(dst, artifact));
                        return Ok(report);
                    }
                    Pipelined::Partly(taken) => {
                        skip.extend(taken.iter().copied());
                        pipelined = taken;
                    }
                    Pipelined::NotTried => {}
                }
            }
            let mut referrers = None;
            if !same_repo_done
                && !artifact.attachments.is_empty()
                && repo.referrers_prefetched(&artifact.attachments)
            {
                // The referrers tags were read ahead (the build read the previous image, whose
                // attachments these are when nothing changed): an attachment they list is there,
                // its blobs too.
                let read = repo
                    .referrers_indexes(&artifact.attachments)
                    .await
                    .map_err(|e| self.partial(&[], e))?;
                let mut with_listed = skip.clone();
                for a in artifact.attachments.iter().filter(|a| is_listed(&read, a)) {
                    with_listed.extend(a.blobs().map(|d| d.digest));
                }
                self.push_blobs(
                    &repo,
                    artifact,
                    mount_from,
                    blobs,
                    &mut report,
                    &with_listed,
                )
                .await
                .map_err(|e| self.partial(&[], e))?;
                referrers = Some(read);
                pushed.push(dst);
            } else if !same_repo_done {
                // The referrers tags the attachments go under are read while the blobs go up
                // (the same round trips).
                let (pushed_blobs, read) = futures::join!(
                    self.push_blobs(&repo, artifact, mount_from, blobs, &mut report, &skip),
                    repo.referrers_indexes(&artifact.attachments)
                );
                pushed_blobs.map_err(|e| self.partial(&[], e))?;
                referrers = Some(read.map_err(|e| self.partial(&[], e))?);
                pushed.push(dst);
            }
            prepared.push(Prepared {
                dst,
                repo,
                skip,
                mount_from,
                referrers,
            });
        }
        let mut updated: Vec<&Reference> = Vec::new();
        for p in prepared {
            let Prepared {
                dst,
                repo,
                mut skip,
                mount_from,
                referrers,
            } = p;
            // A destination in a repository pushed to before in this call reads the referrers
            // tags now (the earlier destination may have just changed them).
            let referrers = match referrers {
                Some(r) => r,
                None => repo
                    .referrers_indexes(&artifact.attachments)
                    .await
                    .map_err(|e| self.partial(&updated, e))?,
            };
            loop {
                // Sessions opened ahead that no blob used are cancelled while the manifests go
                // up (the same round trip).
                let (pushed, ()) = futures::join!(
                    push_manifests(&repo, artifact, dst, &referrers),
                    repo.cancel_sessions_ahead()
                );
                match pushed {
                    Err(e) if e.is_blob_unknown() && !skip.is_empty() => {
                        // A blob the previous manifest named is gone (deleted since): check every
                        // blob, upload what is missing, and push the manifests again.
                        skip.clear();
                        self.push_blobs(&repo, artifact, mount_from, blobs, &mut report, &skip)
                            .await
                            .map_err(|e| self.partial(&updated, e))?;
                    }
                    Err(e) => return Err(self.partial(&updated, e)),
                    Ok(()) => break,
                }
            }
            updated.push(dst);
            report.references.push(reference_line(dst, artifact));
        }
        // What the pipelined push uploaded was counted as already there.
        report.existing -= pipelined.len().min(report.existing);
        report.uploaded += pipelined.len();
        Ok(report)
    }

    /// The push of a warm build in one round trip: when every blob the registry may lack is a
    /// small one this build made (the app layer, the configs, the attachments' documents) and
    /// an upload session is open for each ([`Client::open_upload_sessions`]), the blobs, the
    /// manifests that name them, the tag and the referrers tags that list the attachments go
    /// on pipelined connections ([`rbuild_http::pipeline`]), each request right behind those
    /// it depends on: the registry handles them in order, so the chain costs one round trip
    /// where one request at a time costs four (blobs, manifests, referrers tags). Two
    /// connections: the images' chain and the attachments' (one when they share a new blob).
    ///
    /// Every request is one the usual push may repeat: should any answer be missing or wrong
    /// (a proxy that takes one request per connection, a session that expired, a `401`), what
    /// the registry took is kept ([`Pipelined::Partly`]) and the usual push does the rest.
    async fn push_pipelined(
        &self,
        repo: &Repository,
        artifact: &Artifact,
        blobs: &dyn BlobSource,
        present: &BTreeSet<Digest>,
    ) -> Pipelined {
        let dst = repo.reference();
        let store = &self.store;
        let configs: BTreeMap<Digest, &[u8]> = artifact
            .images()
            .map(|i| (i.config_descriptor().digest, i.config_bytes()))
            .collect();
        let new: Vec<Descriptor> = artifact
            .blobs()
            .into_iter()
            .filter(|d| !is_foreign(d) && !present.contains(&d.digest))
            .collect();
        let eligible = !present.is_empty()
            && !top_is_known(repo, artifact)
            && new.iter().all(|d| {
                d.size <= UPLOAD_WITHOUT_HEAD_MAX
                    && mount_source(blobs, &d.digest, dst, None).is_none()
                    && (store.contains(&d.digest) || configs.contains_key(&d.digest))
            })
            && self.client.sessions_ahead(dst.registry(), dst.repository()) >= new.len();
        if !eligible {
            return Pipelined::NotTried;
        }
        let image_blobs: BTreeSet<Digest> = artifact
            .top
            .images()
            .iter()
            .flat_map(|i| i.blobs().map(|d| d.digest))
            .collect();
        let attachment_blobs: BTreeSet<Digest> = artifact
            .attachments
            .iter()
            .flat_map(|a| a.blobs().map(|d| d.digest))
            .filter(|d| !present.contains(d))
            .collect();
        let shared = image_blobs.iter().any(|d| attachment_blobs.contains(d));
        let (images, attachments) = match (repo.pipeline().await, shared) {
            (Some(one), true) => (one, None),
            (Some(one), false) => match repo.pipeline().await {
                Some(two) => (one, Some(two)),
                None => (one, None),
            },
            (None, _) => return Pipelined::NotTried,
        };
        let attachments = attachments.as_ref().unwrap_or(&images);
        let mut sessions = Vec::new();
        for _ in &new {
            match repo.take_session_ahead().await {
                Some(s) => sessions.push(s),
                None => break,
            }
        }
        // Every blob in the store (a config written there from the artifact's bytes), every
        // session on the registry's own origin (one on object storage takes no credentials and
        // is left to the usual push), or nothing is sent.
        let stored = new.iter().all(|d| {
            store.contains(&d.digest)
                || configs
                    .get(&d.digest)
                    .is_some_and(|bytes| store.put_bytes(bytes).is_ok())
        });
        if !stored
            || sessions.len() < new.len()
            || !sessions.iter().all(|s| repo.session_on_own_origin(s))
        {
            for s in sessions {
                self.client
                    .return_session(dst.registry(), dst.repository(), s);
            }
            return Pipelined::NotTried;
        }
        tracing::debug!(
            "{dst}: pushing {} new blobs and the manifests pipelined",
            new.len()
        );
        // The images' blobs first, then the attachments' documents.
        let mut order: Vec<&Descriptor> = new.iter().collect();
        order.sort_by_key(|d| !image_blobs.contains(&d.digest));
        let mut uploads = Vec::new();
        let mut refused = Vec::new();
        for (d, s) in order.into_iter().zip(sessions) {
            let line = match image_blobs.contains(&d.digest) {
                true => &images,
                false => attachments,
            };
            match line.upload_blob(d, store, s.clone()) {
                // A session whose blob the registry did not take goes back to the pool: the
                // usual push sends into it again (a session that is gone after all is
                // replaced by a new one there).
                Ok(sent) => uploads.push(async move { sent.await.then_some(d.digest).ok_or(s) }),
                Err(s) => refused.push(s),
            }
        }
        let mut manifests = Vec::new();
        if let Top::Index {
            images: platform, ..
        } = &artifact.top
        {
            for i in platform {
                manifests.push(images.push_manifest(i.manifest(), None));
            }
        }
        let top_tag = dst.tag().filter(|_| dst.digest().is_none());
        manifests.push(images.push_manifest(artifact.top.manifest(), top_tag));
        for a in &artifact.attachments {
            manifests.push(
                attachments.push_manifest(a.manifest(), artifact.attachment_tag(&a.digest())),
            );
        }
        // The referrers tags list the attachments: read (a `GET` on another connection, or the
        // read started ahead) while the above is under way, then sent behind it.
        let referrers = async {
            let existing = repo.referrers_indexes(&artifact.attachments).await.ok()?;
            let tags = repo.referrers_tags_to_push(&artifact.attachments, &existing);
            let sent: Vec<_> = tags
                .iter()
                .map(|(m, tag)| attachments.push_manifest(m, Some(tag)))
                .collect();
            Some(
                futures::future::join_all(sent)
                    .await
                    .into_iter()
                    .all(|ok| ok),
            )
        };
        let (taken, manifests_ok, referrers_ok, ()) = futures::join!(
            futures::future::join_all(uploads),
            futures::future::join_all(manifests),
            referrers,
            repo.cancel_sessions_ahead()
        );
        for s in refused {
            repo.cancel_upload(s).await;
        }
        let mut untaken = Vec::new();
        let taken: BTreeSet<Digest> = taken
            .into_iter()
            .filter_map(|t| t.map_err(|s| untaken.push(s)).ok())
            .collect();
        if taken.len() == new.len()
            && manifests_ok.iter().all(|ok| *ok)
            && referrers_ok == Some(true)
        {
            let mut existing = 0;
            for d in artifact
                .blobs()
                .iter()
                .filter(|d| !is_foreign(d) && present.contains(&d.digest))
            {
                existing += 1;
                self.client
                    .progress(ProgressEvent::BlobSkipped { digest: d.digest });
            }
            return Pipelined::Done {
                uploaded: new.len(),
                existing,
            };
        }
        for s in untaken {
            self.client
                .return_session(dst.registry(), dst.repository(), s);
        }
        tracing::debug!(
            "{dst}: the pipelined push is incomplete ({} of {} blobs taken); pushing the rest one request at a time",
            taken.len(),
            new.len()
        );
        Pipelined::Partly(taken)
    }

    /// `e` as it is for a single destination; for several, an [`Error::Partial`] that says which
    /// were `updated` and which not.
    fn partial(&self, updated: &[&Reference], e: Error) -> Error {
        let names: Vec<String> = self.destinations.iter().map(|d| d.to_string()).collect();
        let mut distinct = names.clone();
        distinct.sort();
        distinct.dedup();
        if distinct.len() < 2 {
            return e;
        }
        let updated: Vec<String> = updated.iter().map(|d| d.to_string()).collect();
        let mut not_updated: Vec<String> = Vec::new();
        for n in names {
            if !updated.contains(&n) && !not_updated.contains(&n) {
                not_updated.push(n);
            }
        }
        Error::Partial {
            updated,
            not_updated,
            source: Box::new(e),
        }
    }

    async fn push_blobs(
        &self,
        repo: &Repository,
        artifact: &Artifact,
        mount_from: Option<&Reference>,
        blobs: &dyn BlobSource,
        report: &mut SinkReport,
        present: &BTreeSet<Digest>,
    ) -> Result<()> {
        #[derive(Default)]
        struct Counts {
            uploaded: usize,
            mounted: usize,
            existing: usize,
        }
        let client = &self.client;
        let store = &self.store;
        // Existence checks are cheap requests: many at once. Mounts and uploads move data: at most
        // `concurrency` at once.
        let transfers = tokio::sync::Semaphore::new(client.options().concurrency.max(1));
        let transfers = &transfers;
        let dst = repo.reference();
        // The configs' bytes are in the artifact (verified when it was made): one that must be
        // uploaded is written to the store from them, never read from the source again.
        let configs: BTreeMap<Digest, &[u8]> = artifact
            .images()
            .map(|i| (i.config_descriptor().digest, i.config_bytes()))
            .collect();
        let configs = &configs;
        let unchanged = top_is_known(repo, artifact);
        let all = artifact.blobs().into_iter().filter(|d| !is_foreign(d));
        let results: Vec<Counts> = futures::stream::iter(all)
            .map(|d| async move {
                // The repository this blob can be mounted from, on the same registry (`repo`'s
                // token covers it).
                let source = mount_source(blobs, &d.digest, dst, mount_from);
                let mut c = Counts::default();
                if present.contains(&d.digest) {
                    client.progress(ProgressEvent::BlobSkipped { digest: d.digest });
                    c.existing = 1;
                    return Ok::<_, Error>(c);
                }
                // A blob the previous manifest of this destination does not name, that is in the
                // store (or is a config) and cannot be mounted, is most likely new (the app layer
                // and the config of a warm build, its provenance): its upload starts together
                // with the `HEAD` instead of after it, saving a round trip. Should the `HEAD` find
                // it after all, the session opened is cancelled (`DELETE`, while other blobs
                // upload). Not when the destination tag is known to name this very image (nothing
                // changed: the attachments, functions of the image, are most likely there too).
                let speculate = !present.is_empty()
                    && !unchanged
                    && source.is_none()
                    && (store.contains(&d.digest) || configs.contains_key(&d.digest));
                if speculate {
                    if !store.contains(&d.digest)
                        && let Some(bytes) = configs.get(&d.digest)
                    {
                        store.put_bytes(bytes)?;
                    }
                    if d.size <= UPLOAD_WITHOUT_HEAD_MAX {
                        upload_without_head(repo, &d, store).await?;
                        c.uploaded = 1;
                        return Ok(c);
                    }
                    let (exists, started) =
                        futures::join!(repo.blob_exists(&d.digest), repo.begin_upload(&d, store));
                    // The HEAD decides: a blob that is there is skipped whatever the upload
                    // start answered (a registry may refuse the `POST` and still have the blob).
                    if exists? {
                        if let Ok(UploadStart::Session(s)) = started {
                            repo.cancel_upload(s).await;
                        }
                        client.progress(ProgressEvent::BlobSkipped { digest: d.digest });
                        c.existing = 1;
                        return Ok(c);
                    }
                    // Small blobs (the app layer, configs, attachments) do not wait for the
                    // transfer limit, which is for moving data.
                    let _permit = match d.size > SMALL_BLOB {
                        true => Some(transfers.acquire().await.expect("semaphore never closed")),
                        false => None,
                    };
                    match started? {
                        UploadStart::Done => {}
                        UploadStart::Session(s) => repo.upload_blob(&d, store, Some(s)).await?,
                    }
                    c.uploaded = 1;
                    return Ok(c);
                }
                if repo.blob_exists(&d.digest).await? {
                    client.progress(ProgressEvent::BlobSkipped { digest: d.digest });
                    c.existing = 1;
                    return Ok(c);
                }
                let _permit = transfers.acquire().await.expect("semaphore never closed");
                let mut session = None;
                if let Some(from) = &source {
                    match repo.mount_blob(&d.digest, from).await? {
                        MountOutcome::Mounted => {
                            client.progress(ProgressEvent::BlobMounted {
                                digest: d.digest,
                                from: from.clone(),
                            });
                            c.mounted = 1;
                            return Ok(c);
                        }
                        MountOutcome::Session(s) => session = Some(s),
                    }
                }
                if !store.contains(&d.digest)
                    && let Some(bytes) = configs.get(&d.digest)
                {
                    store.put_bytes(bytes)?;
                }
                if !store.contains(&d.digest) {
                    let reader = blobs.open(&d).await.map_err(from_sink)?;
                    if !store.contains(&d.digest) {
                        let (store, d) = (store.clone(), d.clone());
                        tokio::task::spawn_blocking(move || {
                            store.put_verified(reader, &d.digest, Some(d.size))
                        })
                        .await
                        .map_err(|e| {
                            Error::Invalid(format!("reading blob into the store: {e}"))
                        })??;
                    }
                }
                repo.upload_blob(&d, store, session).await?;
                c.uploaded = 1;
                Ok(c)
            })
            .buffer_unordered(HEAD_CONCURRENCY.max(client.options().concurrency))
            .try_collect()
            .await?;
        for c in results {
            report.uploaded += c.uploaded;
            report.mounted += c.mounted;
            report.existing += c.existing;
        }
        Ok(())
    }
}

/// What [`RegistrySink::push_pipelined`] did.
enum Pipelined {
    /// Not tried: a blob that may be missing is not one to send unasked, a session is missing,
    /// no connection.
    NotTried,
    /// Everything is in the registry: the blobs uploaded and those it had.
    Done { uploaded: usize, existing: usize },
    /// Something is not: the blobs the registry took.
    Partly(BTreeSet<Digest>),
}

/// How a push report names a destination pushed: `registry/repo:tag@digest`.
fn reference_line(dst: &Reference, artifact: &Artifact) -> String {
    format!(
        "{}{}@{}",
        dst.name(),
        dst.tag()
            .filter(|_| dst.digest().is_none())
            .map(|t| format!(":{t}"))
            .unwrap_or_default(),
        artifact.digest()
    )
}

/// Uploads a small new blob without asking first whether the registry has it: into a session
/// the build opened ahead when there is one ([`crate::Client::open_upload_sessions`]), else one
/// opened now (or in the single request, where the registry takes that).
async fn upload_without_head(repo: &Repository, d: &Descriptor, store: &Store) -> Result<()> {
    if let Some(s) = repo.take_session_ahead().await {
        match repo.upload_blob(d, store, Some(s)).await {
            // The session is gone (expired, dropped by the registry): a new one.
            Err(Error::Status { .. }) => {}
            done => return done,
        }
    }
    match repo.begin_upload(d, store).await? {
        UploadStart::Done => Ok(()),
        UploadStart::Session(s) => repo.upload_blob(d, store, Some(s)).await,
    }
}

/// The repository of `dst`'s registry the blob `digest` can be mounted from: the one `blobs` reads
/// it from, else `mount_from` (a destination pushed before), when on the same registry.
fn mount_source(
    blobs: &dyn BlobSource,
    digest: &Digest,
    dst: &Reference,
    mount_from: Option<&Reference>,
) -> Option<String> {
    match (blobs.remote(digest), mount_from) {
        (Some(r), _) if r.registry == dst.registry() && r.repository != dst.repository() => {
            Some(r.repository)
        }
        (_, Some(m)) if m.registry() == dst.registry() => Some(m.repository().to_string()),
        _ => None,
    }
}

/// Whether the destination tag of `repo` is known to name `artifact`'s top manifest already:
/// this client read it moments ago ([`crate::TAG_MEMORY`]) and it named that digest.
fn top_is_known(repo: &Repository, artifact: &Artifact) -> bool {
    let dst = repo.reference();
    dst.digest().is_none()
        && dst.tag().is_some_and(|tag| {
            repo.client()
                .known_tag(dst.registry(), dst.repository(), tag)
                .is_some_and(|d| d == artifact.digest())
        })
}

/// The referrers indexes of the attachments' subjects in one repository, by subject (`None`: no
/// referrers tag yet).
type Referrers = BTreeMap<Digest, Option<rbuild_oci::Index>>;

/// Whether the referrers tag of `attachment`'s subject lists it (it was pushed, and its blobs).
fn is_listed(referrers: &Referrers, attachment: &rbuild_oci::Image) -> bool {
    attachment
        .parsed_manifest()
        .subject
        .as_ref()
        .is_some_and(|s| {
            referrers
                .get(&s.digest)
                .and_then(Option::as_ref)
                .is_some_and(|i| i.manifests.iter().any(|m| m.digest == attachment.digest()))
        })
}

/// Pushes the platforms' manifests (at once; their blobs are all there), then the index or the
/// single manifest, under the tag last; the attachments by digest alongside (they only name the
/// image as their `subject`, which registries take before the subject exists); then the
/// referrers tags, which list the attachments (distribution checks that an index's manifests
/// exist).
///
/// Skipped as already there: the manifests, when this client read the destination tag moments
/// ago ([`crate::TAG_MEMORY`]) and it named this very manifest (a build with nothing changed);
/// an attachment without a tag of its own that its subject's referrers tag (`referrers`, read
/// during this push) already lists.
async fn push_manifests(
    repo: &Repository,
    artifact: &Artifact,
    dst: &Reference,
    referrers: &Referrers,
) -> Result<()> {
    let top = artifact.top.manifest();
    let unchanged = top_is_known(repo, artifact);
    let image = async {
        if unchanged {
            tracing::debug!(
                "{}: the tag already names {}; not pushed again",
                dst,
                top.digest
            );
            return Ok(());
        }
        if let Top::Index { images, .. } = &artifact.top {
            futures::future::try_join_all(
                images
                    .iter()
                    .map(|i| repo.push_manifest(i.manifest(), None)),
            )
            .await?;
        }
        match dst.tag() {
            Some(tag) if dst.digest().is_none() => repo.push_manifest(top, Some(tag)).await,
            _ => repo.push_manifest(top, None).await,
        }
    };
    let attachments = futures::future::try_join_all(
        artifact
            .attachments
            .iter()
            .map(|a| (a, artifact.attachment_tag(&a.digest())))
            .filter(|(a, tag)| tag.is_some() || !is_listed(referrers, a))
            .map(|(a, tag)| repo.push_manifest(a.manifest(), tag)),
    );
    let (image, attachments) = futures::join!(image, attachments);
    image?;
    attachments?;
    // Registries without the referrers API (distribution 2.8) find attachments by subject
    // through the referrers tag schema.
    repo.add_referrers_to(&artifact.attachments, referrers)
        .await?;
    Ok(())
}

impl Sink for RegistrySink {
    fn name(&self) -> String {
        let names: Vec<String> = self.destinations.iter().map(|d| d.to_string()).collect();
        format!("registry {}", names.join(", "))
    }

    fn write<'a>(
        &'a self,
        artifact: &'a Artifact,
        blobs: &'a dyn BlobSource,
    ) -> BoxFuture<'a, std::result::Result<SinkReport, SinkError>> {
        Box::pin(async move { self.push(artifact, blobs).await.map_err(sink_error) })
    }

    fn is_registry(&self) -> bool {
        true
    }
}
