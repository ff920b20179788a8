//! Rebase: an image rbuild built, with its base layers swapped for another base's, when that is
//! safe for Python; the dependency, user and app layers are kept byte for byte, and so is the
//! standard library's bytecode layer of a base that had none (`layers/stdlib.rs`): its
//! `.pyc` are timestamp-based, so the new base's interpreter compiles any module whose source
//! changed instead of running them (the next `rbuild build` compiles the new base's).
//!
//! Like `crane rebase` (go-containerregistry's `mutate.Rebase`) the new image is the old one with
//! the old base's layers and history replaced by the new base's, but rbuild knows what the kept
//! layers need, because the image records it (label `dev.rbuild.target`: the target the wheels were
//! chosen and installed for) and its dependency layers say which wheels they installed (each
//! `.dist-info/WHEEL` file's tags). [`Builder::rebase`] reads the new base's target with the same
//! detection a build uses, and refuses, naming every reason, unless for each platform:
//!
//! - the new base has the platform, with the same CPU (wheel architecture);
//! - its CPython is the same `X.Y` with the same ABI (flags of the interpreter's name: `3.13t`);
//! - its C library is the same family, and at least as new as the highest manylinux/musllinux tag
//!   any installed wheel needs (a wheel's need is the lowest of its own tags; a wheel built from an
//!   sdist on the old base needs the old base's version);
//! - the install scheme is the same (interpreter path, which console scripts name; purelib,
//!   platlib, scripts, headers, data);
//! - no distribution the image installs is installed differently in the new base: the dependency
//!   layer whites out exactly what the old base had (same name, version and `.dist-info` path), so
//!   the new base may have that same copy or none, never another;
//! - the user layer's `/etc/passwd` and `/etc/group` are the new base's with the user added (they
//!   replace the base's files, so a new base with other users would lose them).
//!
//! The config is merged three ways (old base, image, new base): a setting the build left as the
//! old base had it takes the new base's value, one the build set keeps the image's (`Env` and
//! `Labels` key by key). Then the base annotations and labels, the history (the new base's, then
//! the image's own entries), the recorded target (`dev.rbuild.target`, for the new base) and, when
//! the image had them, its SBOM (regenerated: the new base's OS packages, the same Python
//! distributions) and provenance (the new subject and base) are updated; a signature is made only
//! when asked for. Multi-platform indexes are rebased per platform.

use std::collections::BTreeMap;

use rbuild_attest::{ArtifactManifest, STATEMENT_MEDIA_TYPE, SigningKey};
use rbuild_oci::{
    ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, Descriptor, Digest, ImageConfig, Index, Manifest,
    ManifestKind, MediaType, Platform, RawManifest, canonical_json,
};
use rbuild_python::rootfs::{BaseFactsVisitor, Merged, read_layers};
use rbuild_python::target::{LibcFamily, MajorMinor, Target};
use rbuild_registry::{Access, Reference};
use rbuild_sbom::{BaseImage as SbomBase, Format, Inventory};
use serde_json::{Value, json};

use crate::BuildError;
use crate::Builder;
use crate::error::other;
use crate::image::{BlobLocation, BuiltImage, BuiltLayer, LayerKind, LayerStatus, PlatformImage};
use crate::plan::base::ResolvedBase;
use crate::plan::record::{LABEL_TARGET, Recorded};
use crate::rootfs::{BaseFacts, open_layer};
use crate::supply::{ANNOTATION_PREDICATE_TYPE, Attachment, AttachmentKind};

/// What to rebase onto what.
#[derive(Clone, Debug)]
pub struct RebaseRequest {
    /// The image rbuild built (a tag or digest; an index is rebased per platform).
    pub image: Reference,
    /// The new base (a tag or digest; it must have every platform of the image).
    pub new_base: Reference,
    /// Sign the new top manifest with this key for this `registry/repository`.
    pub sign: Option<(SigningKey, String)>,
}

/// The reasons one platform cannot be rebased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The platform (`linux/amd64`).
    pub platform: String,
    /// Each reason, one sentence naming what differs and where.
    pub reasons: Vec<String>,
}

/// Why a rebase was refused: every platform that is not safe to rebase, with every reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(.image, .new_base, .refusals))]
pub struct RebaseRefused {
    /// The image.
    pub image: String,
    /// The new base.
    pub new_base: String,
    /// Per platform, the reasons.
    pub refusals: Vec<Refusal>,
}

fn describe(image: &str, new_base: &str, refusals: &[Refusal]) -> String {
    let mut s = format!("refusing to rebase {image} onto {new_base}:");
    for r in refusals {
        for why in &r.reasons {
            s.push_str(&format!("\n  {}: {why}", r.platform));
        }
    }
    s.push_str("\nrebuild the image on the new base instead (rbuild build --base ...)");
    s
}

/// What one platform's rebase did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RebasedPlatform {
    /// The platform.
    pub platform: String,
    /// The image's manifest before.
    pub old_manifest: Digest,
    /// The manifest after.
    pub new_manifest: Digest,
    /// The old base (name, digest) as the image recorded it.
    pub old_base: (String, Digest),
    /// The new base's platform manifest.
    pub new_base: (String, Digest),
    /// The layers kept (dependency, user and app), by digest, in order.
    pub kept: Vec<Digest>,
    /// The new base's target, as now recorded.
    pub target: Target,
}

/// A rebased image, ready to publish ([`crate::publish::publish`]).
#[derive(Clone, Debug)]
pub struct RebaseOutput {
    /// The new image (with its attachments).
    pub image: BuiltImage,
    /// Per platform, what changed.
    pub platforms: Vec<RebasedPlatform>,
}

/// One platform of the image, read.
struct Source {
    platform: Platform,
    index_entry: Option<Descriptor>,
    manifest: RawManifest,
    parsed: Manifest,
    config: ImageConfig,
}

/// One platform, checked and ready to assemble.
struct Checked {
    src: Source,
    old_base: (String, Digest),
    old_base_config: ImageConfig,
    base_count: usize,
    new_base: ResolvedBase,
    recorded: Recorded,
    target: Target,
}

impl Builder {
    /// Rebases `req.image` onto `req.new_base` (see the module docs): checks every platform,
    /// refuses with [`BuildError::Refused`] naming each reason, else assembles the new image and
    /// its attachments. Nothing is published (publish the output with
    /// [`crate::publish::publish`]).
    pub async fn rebase(&self, req: &RebaseRequest) -> Result<RebaseOutput, BuildError> {
        let top = self.client.get_manifest(&req.image).await?;
        let sources = self.read_sources(&req.image, &top).await?;
        let base_top = self.client.get_manifest(&req.new_base).await?;
        let mut refusals = Vec::new();
        let mut checked = Vec::new();
        for src in sources {
            let platform = src.platform.to_string();
            match self.check(req, &base_top, src).await? {
                Ok(c) => checked.push(c),
                Err(reasons) => refusals.push(Refusal { platform, reasons }),
            }
        }
        if !refusals.is_empty() {
            return Err(BuildError::Refused(Box::new(RebaseRefused {
                image: req.image.to_string(),
                new_base: req.new_base.to_string(),
                refusals,
            })));
        }
        let mut images = Vec::new();
        let mut done = Vec::new();
        let mut present = Vec::new();
        for c in checked {
            let (image, report) = self.assemble_rebased(req, &c)?;
            for l in &image.layers {
                if let BlobLocation::Remote(r) = &l.location {
                    present.push((r.clone(), l.descriptor.digest));
                }
            }
            self.store.put_bytes(&image.manifest.bytes)?;
            self.store.put_bytes(&image.config_bytes)?;
            images.push((image, c));
            done.push(report);
        }
        let index = match top.parse().map_err(other)? {
            ManifestKind::Index(i) => Some(new_index(&top, i, &images)?),
            ManifestKind::Image(_) => None,
        };
        if let Some(i) = &index {
            self.store.put_bytes(&i.bytes)?;
        }
        let mut attachments = Vec::new();
        for (image, c) in &images {
            attachments.extend(self.reattach(req, image, c).await?);
        }
        let mut image = BuiltImage {
            images: images.into_iter().map(|(i, _)| i).collect(),
            index,
            present,
            attachments,
        };
        if let Some((key, reference)) = &req.sign {
            let top = image.digest();
            let s = rbuild_attest::SignatureManifest::sign(key, reference, &top);
            self.store.put_bytes(&s.payload)?;
            self.store.put_bytes(&s.config)?;
            self.store.put_bytes(&s.image.manifest().bytes)?;
            image.attachments.push(Attachment {
                kind: AttachmentKind::Signature,
                image: s.image,
                tag: Some(s.tag),
                subject: top,
            });
        }
        Ok(RebaseOutput {
            image,
            platforms: done,
        })
    }

    /// Every platform image of `top` (attestation entries of an index left out).
    async fn read_sources(
        &self,
        reference: &Reference,
        top: &RawManifest,
    ) -> Result<Vec<Source>, BuildError> {
        let repo = self.client.repository(reference, Access::Pull)?;
        let mut entries = Vec::new();
        match top.parse().map_err(other)? {
            ManifestKind::Image(m) => entries.push((None, top.clone(), m)),
            ManifestKind::Index(i) => {
                for d in i.manifests {
                    let Some(p) = &d.platform else { continue };
                    if p.os == "unknown" || p.architecture == "unknown" {
                        continue;
                    }
                    let raw = repo.get_manifest(&d.digest.to_string()).await?;
                    let ManifestKind::Image(m) = raw.parse().map_err(other)? else {
                        return Err(other(format!(
                            "{reference}: the entry {} for {p} is an index; rbuild rebases images built by rbuild",
                            d.digest
                        )));
                    };
                    entries.push((Some(d.clone()), raw, m));
                }
            }
        }
        let mut out = Vec::new();
        for (entry, manifest, parsed) in entries {
            let bytes = repo.get_small_blob(&parsed.config).await?;
            let config = ImageConfig::from_slice(&bytes)
                .map_err(|e| other(format!("{reference}: its config does not parse: {e}")))?;
            let mut platform =
                Platform::new(&config.os, &config.architecture, config.variant.as_deref());
            if let Some(p) = entry.as_ref().and_then(|d| d.platform.clone()) {
                platform = p;
            }
            out.push(Source {
                platform,
                index_entry: entry,
                manifest,
                parsed,
                config,
            });
        }
        Ok(out)
    }

    /// Checks one platform: `Ok(Err(reasons))` when it is not safe.
    async fn check(
        &self,
        req: &RebaseRequest,
        base_top: &RawManifest,
        src: Source,
    ) -> Result<Result<Checked, Vec<String>>, BuildError> {
        let mut reasons = Vec::new();
        let label = |k: &str| {
            src.config
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(k))
                .cloned()
        };
        let Some(recorded) =
            label(LABEL_TARGET).and_then(|l| serde_json::from_str::<Recorded>(&l).ok())
        else {
            reasons.push(format!(
                "the image has no `{LABEL_TARGET}` label: it was not built by rbuild (or by one too old to record its target), so nothing tells what its layers need"
            ));
            return Ok(Err(reasons));
        };
        let annotations = src.parsed.annotations.clone().unwrap_or_default();
        let base_name = annotations
            .get(ANNOTATION_BASE_NAME)
            .cloned()
            .or_else(|| label(ANNOTATION_BASE_NAME));
        let (Some(base_name), Some(base_digest)) = (base_name, recorded.base_digest) else {
            reasons.push(
                "the image records no base image (built on scratch): there are no base layers to swap"
                    .to_string(),
            );
            return Ok(Err(reasons));
        };
        // The old base: its manifest tells how many of the image's layers are its, its config
        // what the build inherited.
        let old_ref = Reference::parse(&base_name)
            .map_err(|e| other(format!("the image's base name {base_name:?}: {e}")))?
            .by_digest(base_digest);
        let old = match self.client.get_manifest(&old_ref).await {
            Ok(m) => m,
            Err(e) => {
                reasons.push(format!(
                    "the old base {old_ref} cannot be read ({e}); its manifest and config are needed to tell its layers and settings from the image's"
                ));
                return Ok(Err(reasons));
            }
        };
        let ManifestKind::Image(old_manifest) = old.parse().map_err(other)? else {
            return Err(other(format!(
                "{old_ref} is an index, not a platform manifest"
            )));
        };
        let old_repo = self.client.repository(&old_ref, Access::Pull)?;
        let old_base_config =
            ImageConfig::from_slice(&old_repo.get_small_blob(&old_manifest.config).await?)
                .map_err(|e| other(format!("{old_ref}: its config does not parse: {e}")))?;
        let base_count = old_manifest.layers.len();
        let prefix_ok = src.parsed.layers.len() >= base_count
            && src.parsed.layers[..base_count]
                .iter()
                .zip(&old_manifest.layers)
                .all(|(a, b)| a.digest == b.digest)
            && src.config.history.len() >= old_base_config.history.len();
        if !prefix_ok {
            reasons.push(format!(
                "the image's first {base_count} layers are not the layers of its recorded base {old_ref}"
            ));
            return Ok(Err(reasons));
        }
        // The new base, and its target read by the build's own detection.
        let new_base = match self
            .client
            .resolve_image_from(
                &req.new_base,
                base_top.clone(),
                &src.platform,
                Some(&self.store),
            )
            .await
        {
            Ok(r) => r,
            Err(rbuild_registry::Error::Platform { details, .. }) => {
                reasons.push(format!(
                    "the new base {} has no image for {} ({details})",
                    req.new_base, src.platform
                ));
                return Ok(Err(reasons));
            }
            Err(e) => return Err(e.into()),
        };
        let (_, new_config) = self.client.fetch_config(&new_base, &self.store).await?;
        let new_base = ResolvedBase {
            image: crate::assemble::BaseImage {
                name: Some(req.new_base.to_string()),
                manifest_digest: Some(new_base.manifest.digest),
                layers: new_base.image.layers.clone(),
                config: new_config,
            },
            reference: Some(req.new_base.clone()),
        };
        let overrides = recorded.overrides.target_overrides()?;
        let (target, facts) = match self
            .base_facts_for(&overrides, &recorded.overrides, &new_base, &src.platform)
            .await
        {
            Ok(t) => t,
            Err(BuildError::Target(e)) => {
                reasons.push(format!("the new base's Python cannot be used: {e}"));
                return Ok(Err(reasons));
            }
            Err(e) => return Err(e),
        };
        let old_t = &recorded.target;
        // The wheels the dependency layers hold, as installed (their `WHEEL` files).
        let kinds = layer_kinds(&src.config, old_base_config.history.len());
        let deps: Vec<Descriptor> = kinds
            .iter()
            .enumerate()
            .filter(|(_, k)| **k == LayerKind::Deps)
            .map(|(i, _)| src.parsed.layers[base_count + i].clone())
            .collect();
        let wheels = self.installed_wheels(&req.image, &deps).await?;
        reasons.extend(python_reasons(old_t, &target));
        reasons.extend(libc_reasons(old_t, &target, &wheels));
        reasons.extend(conflict_reasons(old_t, &target, &wheels));
        // The user layer replaces /etc/passwd and /etc/group.
        if let Some(i) = kinds.iter().position(|k| *k == LayerKind::User) {
            let desc = &src.parsed.layers[base_count + i];
            let user = self.layer_facts(&req.image, desc).await?;
            reasons.extend(user_reasons(&user, &facts));
        }
        if !reasons.is_empty() {
            return Ok(Err(reasons));
        }
        Ok(Ok(Checked {
            src,
            old_base: (base_name, base_digest),
            old_base_config,
            base_count,
            new_base,
            recorded,
            target,
        }))
    }

    /// The target and base facts of a base for recorded overrides (cached by base digest, as a
    /// build caches them).
    async fn base_facts_for(
        &self,
        overrides: &rbuild_python::target::TargetOverrides,
        key: &crate::plan::record::Overrides,
        base: &ResolvedBase,
        platform: &Platform,
    ) -> Result<(Target, BaseFacts), BuildError> {
        let mut req = crate::request::BuildRequest::new(
            ".",
            crate::request::BaseRef::Image(base.reference.clone().expect("a pulled base")),
        );
        req.target_overrides = overrides.clone();
        req.marker_overrides = key.markers().clone();
        self.base_facts(&req, base, platform).await
    }

    /// Every distribution the dependency layers install: name and version from its
    /// `.dist-info` directory, platform tags from its `WHEEL` file.
    async fn installed_wheels(
        &self,
        reference: &Reference,
        layers: &[Descriptor],
    ) -> Result<Vec<InstalledWheel>, BuildError> {
        let missing: Vec<Descriptor> = layers
            .iter()
            .filter(|d| !self.store.contains(&d.digest))
            .cloned()
            .collect();
        if !missing.is_empty() {
            self.client
                .fetch_blobs(reference, &missing, &self.store)
                .await?;
        }
        let store = self.store.clone();
        let layers = layers.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut view = Merged::new(WheelFiles);
            read_layers(
                layers.iter().map(|d| open_layer(&store, d)),
                &mut [&mut view],
            )
            .map_err(|e| other(format!("reading the dependency layers: {e}")))?;
            Ok(view
                .into_parts()
                .1
                .into_iter()
                .filter_map(|(path, text)| InstalledWheel::from_wheel_file(&path, &text))
                .collect())
        })
        .await
        .map_err(other)?
    }

    /// `/etc/passwd` and `/etc/group` of one layer of `reference`'s repository.
    async fn layer_facts(
        &self,
        reference: &Reference,
        desc: &Descriptor,
    ) -> Result<BaseFacts, BuildError> {
        if !self.store.contains(&desc.digest) {
            self.client
                .fetch_blobs(reference, std::slice::from_ref(desc), &self.store)
                .await?;
        }
        let mut view = Merged::new(BaseFactsVisitor);
        read_layers([open_layer(&self.store, desc)], &mut [&mut view])
            .map_err(|e| other(format!("reading the user layer {}: {e}", desc.digest)))?;
        Ok(BaseFacts::from_merged(view))
    }

    /// The new platform image: new base layers and config merged, the kept layers unchanged.
    fn assemble_rebased(
        &self,
        req: &RebaseRequest,
        c: &Checked,
    ) -> Result<(PlatformImage, RebasedPlatform), BuildError> {
        let src = &c.src;
        let new_base = &c.new_base.image;
        let new_digest = new_base.manifest_digest.expect("a pulled base");
        let docker = src
            .manifest
            .media_type
            .as_str()
            .eq(MediaType::DOCKER_MANIFEST);
        // Config: merged settings, the new base's layers and history, then the image's own.
        let mut config = src.config.clone();
        config.config = merge_config(
            c.old_base_config.config.as_ref(),
            src.config.config.as_ref(),
            new_base.config.config.as_ref(),
        )?;
        let kept_ids = &src.config.rootfs.diff_ids[c.base_count..];
        config.rootfs.diff_ids = new_base.config.rootfs.diff_ids.clone();
        config.rootfs.diff_ids.extend_from_slice(kept_ids);
        let own_history = src.config.history[c.old_base_config.history.len()..].to_vec();
        config.history = new_base.config.history.clone();
        config.history.extend(own_history);
        let recorded = Recorded {
            base_digest: Some(new_digest),
            overrides: c.recorded.overrides.clone(),
            target: c.target.clone(),
        };
        let c_mut = config.config_mut();
        let labels = c_mut.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(ANNOTATION_BASE_NAME.into(), req.new_base.to_string());
        labels.insert(ANNOTATION_BASE_DIGEST.into(), new_digest.to_string());
        labels.insert(
            LABEL_TARGET.into(),
            String::from_utf8(canonical_json(&recorded).map_err(other)?).map_err(other)?,
        );
        let config_bytes = canonical_json(&config).map_err(other)?;
        // Manifest: the new base's layers (media types as the image's format wants), the rest
        // as they were.
        let mut manifest = src.parsed.clone();
        manifest.config = Descriptor::new(
            manifest.config.media_type.clone(),
            Digest::of(&config_bytes),
            config_bytes.len() as u64,
        );
        let format = if docker {
            crate::ImageFormat::Docker
        } else {
            crate::ImageFormat::Oci
        };
        let mut layers = Vec::new();
        let mut built = Vec::new();
        for d in &new_base.layers {
            let mut d = d.clone();
            d.media_type = crate::assemble::convert_layer_type(&d.media_type, format, d.digest)?;
            built.push(BuiltLayer {
                descriptor: d.clone(),
                diff_id: Digest::of(b""),
                kind: LayerKind::Base,
                status: LayerStatus::Base,
                location: BlobLocation::Remote(req.new_base.clone()),
            });
            layers.push(d);
        }
        for (l, id) in built.iter_mut().zip(&new_base.config.rootfs.diff_ids) {
            l.diff_id = *id;
        }
        let kinds = layer_kinds(&src.config, c.old_base_config.history.len());
        let kept: Vec<Descriptor> = src.parsed.layers[c.base_count..].to_vec();
        for (i, d) in kept.iter().enumerate() {
            built.push(BuiltLayer {
                descriptor: d.clone(),
                diff_id: kept_ids[i],
                kind: kinds.get(i).copied().unwrap_or(LayerKind::App),
                status: LayerStatus::CachedRemote,
                location: BlobLocation::Remote(req.image.clone()),
            });
            layers.push(d.clone());
        }
        manifest.layers = layers;
        if let Some(a) = manifest.annotations.as_mut() {
            a.insert(ANNOTATION_BASE_NAME.into(), req.new_base.to_string());
            a.insert(ANNOTATION_BASE_DIGEST.into(), new_digest.to_string());
        }
        let bytes = canonical_json(&manifest).map_err(other)?;
        let raw = RawManifest::new(bytes, Some(src.manifest.media_type.as_str()));
        let report = RebasedPlatform {
            platform: src.platform.to_string(),
            old_manifest: src.manifest.digest,
            new_manifest: raw.digest,
            old_base: c.old_base.clone(),
            new_base: (req.new_base.to_string(), new_digest),
            kept: kept.iter().map(|d| d.digest).collect(),
            target: c.target.clone(),
        };
        Ok((
            PlatformImage {
                platform: src.platform.clone(),
                manifest: raw,
                config,
                config_bytes,
                layers: built,
            },
            report,
        ))
    }

    /// The old image's SBOM and provenance, made again for the rebased image.
    async fn reattach(
        &self,
        req: &RebaseRequest,
        image: &PlatformImage,
        c: &Checked,
    ) -> Result<Vec<Attachment>, BuildError> {
        let repo = self.client.repository(&req.image, Access::Pull)?;
        let referrers = repo.referrers(&c.src.manifest.digest).await?;
        let subject = image.manifest.digest;
        let mut subject_desc = Descriptor::new(
            image.manifest.media_type.clone(),
            subject,
            image.manifest.bytes.len() as u64,
        );
        subject_desc.platform = None;
        let new_digest = c.new_base.image.manifest_digest.expect("a pulled base");
        let mut out = Vec::new();
        for d in referrers {
            let Some(t) = d.artifact_type.as_deref() else {
                continue;
            };
            if let Some(format) = Format::from_media_type(t) {
                if out
                    .iter()
                    .any(|a: &Attachment| a.kind == AttachmentKind::Sbom)
                {
                    continue;
                }
                let old = attachment_blob(&repo, &d).await?;
                let back = rbuild_sbom::read_python(format, &old).map_err(|e| {
                    other(format!(
                        "the SBOM {} of {} cannot be read back: {e}",
                        d.digest, req.image
                    ))
                })?;
                let inv = Inventory {
                    image_name: back.image_name,
                    image_digest: subject,
                    platform: image.platform.to_string(),
                    created: back.created,
                    tool_version: env!("CARGO_PKG_VERSION").to_string(),
                    base: Some(SbomBase {
                        name: req.new_base.to_string(),
                        digest: new_digest,
                    }),
                    os: self.os_inventory(image).await?,
                    python: back.python,
                };
                let a = ArtifactManifest::new(
                    format.media_type(),
                    format.media_type(),
                    format.write(&inv),
                    subject_desc.clone(),
                    BTreeMap::new(),
                )
                .map_err(other)?;
                out.push(self.keep(AttachmentKind::Sbom, a, subject)?);
            } else if t == STATEMENT_MEDIA_TYPE {
                if out.iter().any(|a| a.kind == AttachmentKind::Provenance) {
                    continue;
                }
                let old = attachment_blob(&repo, &d).await?;
                let mut statement: Value = serde_json::from_slice(&old)
                    .map_err(|e| other(format!("the provenance {} is not JSON: {e}", d.digest)))?;
                rebase_statement(&mut statement, c, req, subject, new_digest);
                let a = ArtifactManifest::new(
                    STATEMENT_MEDIA_TYPE,
                    STATEMENT_MEDIA_TYPE,
                    canonical_json(&statement).map_err(other)?,
                    subject_desc.clone(),
                    d.annotations
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|(k, _)| k == ANNOTATION_PREDICATE_TYPE)
                        .collect(),
                )
                .map_err(other)?;
                out.push(self.keep(AttachmentKind::Provenance, a, subject)?);
            }
        }
        Ok(out)
    }
}

/// A distribution a dependency layer installs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct InstalledWheel {
    /// The normalized name.
    name: String,
    /// The version.
    version: String,
    /// Its `.dist-info` directory in the image.
    dist_info: String,
    /// The platform tags of its `WHEEL` file (`manylinux_2_17_x86_64`, `any`).
    platforms: Vec<String>,
}

impl InstalledWheel {
    /// From `…/NAME-VERSION.dist-info/WHEEL` and its text.
    fn from_wheel_file(path: &str, text: &str) -> Option<InstalledWheel> {
        let dir = path.strip_suffix("/WHEEL")?;
        let stem = dir.rsplit('/').next()?.strip_suffix(".dist-info")?;
        let (name, version) = stem.rsplit_once('-')?;
        let mut platforms: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("Tag:"))
            .filter_map(|t| t.trim().rsplit('-').next().map(str::to_string))
            .collect();
        platforms.sort();
        platforms.dedup();
        Some(InstalledWheel {
            name: rbuild_python::normalize_name(name),
            version: version.to_string(),
            dist_info: format!("/{dir}"),
            platforms,
        })
    }
}

/// The rootfs visitor that keeps the `WHEEL` file of every installed distribution.
struct WheelFiles;

impl rbuild_python::rootfs::Visitor for WheelFiles {
    type Node = String;

    fn interest(
        &mut self,
        entry: &rbuild_python::rootfs::Entry<'_>,
    ) -> rbuild_python::rootfs::Interest<String> {
        if entry.kind == rbuild_python::rootfs::EntryKind::File
            && entry.path.ends_with(".dist-info/WHEEL")
            && entry.size <= 64 * 1024
        {
            rbuild_python::rootfs::Interest::Read
        } else {
            rbuild_python::rootfs::Interest::Skip
        }
    }

    fn read(
        &mut self,
        _: &rbuild_python::rootfs::Entry<'_>,
        content: &mut dyn std::io::Read,
    ) -> std::io::Result<Option<String>> {
        let mut s = String::new();
        content.read_to_string(&mut s).ok();
        Ok(Some(s))
    }
}

/// The one layer of an attachment manifest.
async fn attachment_blob(
    repo: &rbuild_registry::Repository,
    d: &Descriptor,
) -> Result<Vec<u8>, BuildError> {
    let m = repo.get_manifest(&d.digest.to_string()).await?;
    let ManifestKind::Image(m) = m.parse().map_err(other)? else {
        return Err(other(format!("attachment {} is an index", d.digest)));
    };
    let layer = m
        .layers
        .first()
        .ok_or_else(|| other(format!("attachment {} has no layer", d.digest)))?;
    Ok(repo.get_small_blob(layer).await?)
}

/// The provenance statement of the rebased image: its subject, the new base as the base-image
/// input and `base` parameter, and what the rebase replaced (internal parameters).
fn rebase_statement(
    s: &mut Value,
    c: &Checked,
    req: &RebaseRequest,
    subject: Digest,
    new_base: Digest,
) {
    if let Some(subjects) = s["subject"].as_array_mut() {
        for sub in subjects {
            sub["digest"] = json!({"sha256": subject.hex()});
        }
    }
    let def = &mut s["predicate"]["buildDefinition"];
    if let Some(deps) = def["resolvedDependencies"].as_array_mut() {
        for d in deps.iter_mut().filter(|d| d["name"] == "base-image") {
            d["uri"] = json!(rbuild_sbom::oci_purl(&req.new_base.to_string(), &new_base));
            d["digest"] = json!({"sha256": new_base.hex()});
        }
    }
    if def["externalParameters"].is_object() {
        def["externalParameters"]["base"] = json!(req.new_base.to_string());
    }
    def["internalParameters"]["rebasedFrom"] = json!({
        "image": c.src.manifest.digest.to_string(),
        "base": c.old_base.0,
        "baseDigest": c.old_base.1.to_string(),
    });
}

/// The kind of each of the image's own layers (after the base's), from their history lines.
fn layer_kinds(config: &ImageConfig, base_history: usize) -> Vec<LayerKind> {
    config.history[base_history.min(config.history.len())..]
        .iter()
        .filter(|h| h.empty_layer != Some(true))
        .map(|h| {
            let by = h.created_by.as_deref().unwrap_or_default();
            if by.starts_with("rbuild: install") {
                LayerKind::Deps
            } else if by.starts_with("rbuild: add user") {
                LayerKind::User
            } else if by == crate::layers::stdlib::HISTORY {
                LayerKind::Stdlib
            } else {
                LayerKind::App
            }
        })
        .collect()
}

/// The ABI flags of an interpreter's name (`python3.13t` → `t`).
fn abi_flags(interpreter: &str, v: MajorMinor) -> String {
    let base = interpreter.rsplit('/').next().unwrap_or(interpreter);
    base.strip_prefix(&format!("python{v}"))
        .unwrap_or_default()
        .to_string()
}

/// Python version, ABI, CPU and install scheme.
fn python_reasons(old: &Target, new: &Target) -> Vec<String> {
    let mut r = Vec::new();
    if old.python_version != new.python_version {
        r.push(format!(
            "the new base has Python {} ({}), the image's dependency layers were installed for Python {}: compiled extensions, bytecode and the site-packages directory are per X.Y",
            new.python_version, new.interpreter, old.python_version
        ));
    } else {
        let (a, b) = (
            abi_flags(&old.interpreter, old.python_version),
            abi_flags(&new.interpreter, new.python_version),
        );
        if a != b {
            r.push(format!(
                "the new base's CPython ABI is cp{}{}{b} ({}), the image's is cp{}{}{a} ({})",
                new.python_version.major,
                new.python_version.minor,
                new.interpreter,
                old.python_version.major,
                old.python_version.minor,
                old.interpreter
            ));
        }
    }
    if old.arch != new.arch || old.platform.architecture != new.platform.architecture {
        r.push(format!(
            "the new base's CPU is {} ({}), the image's is {} ({})",
            new.platform.architecture, new.arch, old.platform.architecture, old.arch
        ));
    }
    if old.interpreter != new.interpreter && old.python_version == new.python_version {
        r.push(format!(
            "the new base's interpreter is {}, the image's is {} (console scripts in the dependency layers start {})",
            new.interpreter, old.interpreter, old.interpreter
        ));
    }
    for (what, a, b) in [
        ("purelib", &old.scheme.purelib, &new.scheme.purelib),
        ("platlib", &old.scheme.platlib, &new.scheme.platlib),
        ("scripts", &old.scheme.scripts, &new.scheme.scripts),
        ("headers", &old.scheme.headers, &new.scheme.headers),
        ("data", &old.scheme.data, &new.scheme.data),
    ] {
        if a != b {
            r.push(format!(
                "the install scheme differs: the new base's {what} directory is {b}, the image's is {a}"
            ));
        }
    }
    r
}

/// The C library a wheel needs: family and lowest version among its platform tags; `None` when
/// it needs none (pure Python). A `linux_*` tag (a wheel built on the old base) needs `built_on`.
fn libc_need(
    platforms: &[String],
    built_on: rbuild_python::target::Libc,
) -> Option<(LibcFamily, MajorMinor, String)> {
    let mut best: Option<(LibcFamily, MajorMinor, String)> = None;
    for p in platforms {
        let p = p.as_str();
        let need = if let Some(rest) = p.strip_prefix("manylinux_") {
            parse_xy(rest).map(|v| (LibcFamily::Glibc, v))
        } else if let Some(rest) = p.strip_prefix("musllinux_") {
            parse_xy(rest).map(|v| (LibcFamily::Musl, v))
        } else if p.starts_with("manylinux2014_") {
            Some((LibcFamily::Glibc, MajorMinor::new(2, 17)))
        } else if p.starts_with("manylinux2010_") {
            Some((LibcFamily::Glibc, MajorMinor::new(2, 12)))
        } else if p.starts_with("manylinux1_") {
            Some((LibcFamily::Glibc, MajorMinor::new(2, 5)))
        } else if p.starts_with("linux_") {
            Some((built_on.family, built_on.version))
        } else {
            None
        };
        if let Some((f, v)) = need
            && best.as_ref().is_none_or(|(bf, bv, _)| *bf == f && v < *bv)
        {
            best = Some((f, v, p.to_string()));
        }
    }
    best
}

fn parse_xy(rest: &str) -> Option<MajorMinor> {
    let mut it = rest.splitn(3, '_');
    let x = it.next()?.parse().ok()?;
    let y = it.next()?.parse().ok()?;
    Some(MajorMinor::new(x, y))
}

/// The C library: family, and version against what every wheel needs.
fn libc_reasons(old: &Target, new: &Target, wheels: &[InstalledWheel]) -> Vec<String> {
    let mut r = Vec::new();
    if old.libc.family != new.libc.family {
        r.push(format!(
            "the new base's C library is {} where the image's is {}: its wheels were chosen and installed for {}",
            new.libc,
            old.libc,
            match old.libc.family {
                LibcFamily::Glibc => "glibc (manylinux)",
                LibcFamily::Musl => "musl (musllinux)",
            }
        ));
        return r;
    }
    let mut highest: Option<(MajorMinor, String)> = None;
    for w in wheels {
        if let Some((f, v, tag)) = libc_need(&w.platforms, old.libc)
            && f == new.libc.family
            && highest.as_ref().is_none_or(|(h, _)| v > *h)
        {
            highest = Some((
                v,
                format!("{tag} of {} {} ({})", w.name, w.version, w.dist_info),
            ));
        }
    }
    if let Some((need, what)) = highest
        && new.libc.version < need
    {
        r.push(format!(
            "the new base's {} is older than {need}, which {what} needs",
            new.libc
        ));
    }
    r
}

/// Distributions the image installs that the new base has in another copy than the old base had
/// (the dependency layers white out only the old base's copy).
fn conflict_reasons(old: &Target, new: &Target, wheels: &[InstalledWheel]) -> Vec<String> {
    let mut r = Vec::new();
    let mut names: Vec<(String, String)> = wheels
        .iter()
        .map(|w| (w.name.clone(), w.version.clone()))
        .collect();
    names.sort();
    names.dedup();
    for (name, version) in names {
        for d in new.installed.iter().filter(|d| d.name == name) {
            let same = old.installed.iter().any(|o| {
                o.name == d.name && o.version == d.version && o.dist_info_path == d.dist_info_path
            });
            if same {
                continue;
            }
            let before = old
                .installed
                .iter()
                .filter(|o| o.name == name)
                .map(|o| format!("{} {} at {}", o.name, o.version, o.dist_info_path))
                .collect::<Vec<_>>();
            r.push(format!(
                "the new base installs {name} {} ({}), which the image installs too ({name} {version}); its dependency layer whites out only {}, so both copies would be on sys.path",
                d.version,
                d.dist_info_path,
                if before.is_empty() {
                    "what the old base had (no such distribution)".to_string()
                } else {
                    format!("the old base's {}", before.join(", "))
                }
            ));
        }
    }
    r
}

/// The user layer's `/etc/passwd` and `/etc/group` must be the new base's with lines added.
fn user_reasons(user: &BaseFacts, new: &BaseFacts) -> Vec<String> {
    let mut r = Vec::new();
    for (file, layer, base) in [
        ("/etc/passwd", &user.passwd, &new.passwd),
        ("/etc/group", &user.group, &new.group),
    ] {
        let (Some(layer), Some(base)) = (layer, base) else {
            continue;
        };
        let base_t = base.trim_end_matches('\n');
        let extends =
            layer.trim_end_matches('\n') == base_t || layer.starts_with(&format!("{base_t}\n"));
        if !extends {
            let lost: Vec<&str> = base
                .lines()
                .filter(|l| !layer.lines().any(|x| x == *l))
                .collect();
            r.push(format!(
                "the image's user layer replaces {file} with the old base's copy plus the app user, and the new base's {file} differs ({}); the new base's entries would be lost",
                if lost.is_empty() {
                    "its lines are in another order".to_string()
                } else {
                    format!(
                        "missing from the layer: {}",
                        lost.iter()
                            .map(|l| l.split(':').next().unwrap_or(l))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
        }
    }
    r
}

/// A three-way merge of the `config` object: the image's value where the build changed the old
/// base's, else the new base's (`Env` and `Labels` key by key).
fn merge_config(
    old: Option<&rbuild_oci::ContainerConfig>,
    image: Option<&rbuild_oci::ContainerConfig>,
    new: Option<&rbuild_oci::ContainerConfig>,
) -> Result<Option<rbuild_oci::ContainerConfig>, BuildError> {
    let obj = |c: Option<&rbuild_oci::ContainerConfig>| -> Result<serde_json::Map<String, Value>, BuildError> {
        Ok(match c {
            Some(c) => match serde_json::to_value(c).map_err(other)? {
                Value::Object(m) => m,
                _ => Default::default(),
            },
            None => Default::default(),
        })
    };
    let (old, image, new) = (obj(old)?, obj(image)?, obj(new)?);
    let mut out = new.clone();
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(image.keys()).collect();
    for k in keys {
        match k.as_str() {
            "Env" => {
                let list = |m: &serde_json::Map<String, Value>| -> Vec<String> {
                    m.get("Env")
                        .and_then(|v| serde_json::from_value(v.clone()).ok())
                        .unwrap_or_default()
                };
                let (o, i) = (list(&old), list(&image));
                let mut merged = list(&new);
                for e in &i {
                    if o.contains(e) {
                        continue;
                    }
                    let key = e.split('=').next().unwrap_or(e);
                    match merged.iter().position(|m| m.split('=').next() == Some(key)) {
                        Some(p) => merged[p] = e.clone(),
                        None => merged.push(e.clone()),
                    }
                }
                if merged.is_empty() {
                    out.remove("Env");
                } else {
                    out.insert("Env".into(), json!(merged));
                }
            }
            "Labels" => {
                let map = |m: &serde_json::Map<String, Value>| -> BTreeMap<String, String> {
                    m.get("Labels")
                        .and_then(|v| serde_json::from_value(v.clone()).ok())
                        .unwrap_or_default()
                };
                let (o, i) = (map(&old), map(&image));
                let mut merged = map(&new);
                for (key, v) in &i {
                    if o.get(key) != Some(v) {
                        merged.insert(key.clone(), v.clone());
                    }
                }
                if merged.is_empty() {
                    out.remove("Labels");
                } else {
                    out.insert("Labels".into(), json!(merged));
                }
            }
            _ => {
                if old.get(k) == image.get(k) {
                    continue;
                }
                match image.get(k) {
                    Some(v) => out.insert(k.clone(), v.clone()),
                    None => out.remove(k),
                };
            }
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        serde_json::from_value(Value::Object(out)).map_err(other)?,
    ))
}

/// The index over the rebased platform manifests: the old index with each platform entry's
/// digest and size replaced (annotations kept), attestation entries left out.
fn new_index(
    top: &RawManifest,
    mut index: Index,
    images: &[(PlatformImage, Checked)],
) -> Result<RawManifest, BuildError> {
    let mut manifests = Vec::new();
    for (image, c) in images {
        let mut d = c.src.index_entry.clone().unwrap_or_else(|| {
            Descriptor::new(image.manifest.media_type.clone(), image.manifest.digest, 0)
        });
        d.digest = image.manifest.digest;
        d.size = image.manifest.bytes.len() as u64;
        manifests.push(d);
    }
    index.manifests = manifests;
    let bytes = canonical_json(&index).map_err(other)?;
    Ok(RawManifest::new(bytes, Some(top.media_type.as_str())))
}

impl crate::plan::record::Overrides {
    /// The recorded overrides as target detection takes them.
    pub(crate) fn target_overrides(
        &self,
    ) -> Result<rbuild_python::target::TargetOverrides, BuildError> {
        let mut t = rbuild_python::target::TargetOverrides::default();
        if let Some(v) = &self.python_version {
            t.set_python_version(v)?;
        }
        if let Some(v) = &self.python_full_version {
            t.set_python_version(v)?;
        }
        if let Some(v) = &self.libc {
            t.set_libc(v)?;
        }
        if let Some(v) = &self.site_packages {
            t.set_site_packages(v)?;
        }
        if let Some(v) = &self.interpreter {
            t.set_interpreter(v)?;
        }
        Ok(t)
    }

    /// The recorded marker overrides.
    pub(crate) fn markers(&self) -> &BTreeMap<String, String> {
        &self.markers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel(name: &str, version: &str, tags: &str) -> InstalledWheel {
        let text: String = tags.split(',').map(|t| format!("Tag: {t}\n")).collect();
        InstalledWheel::from_wheel_file(
            &format!(
                "usr/local/lib/python3.11/dist-packages/{}-{version}.dist-info/WHEEL",
                name.replace('-', "_")
            ),
            &format!("Wheel-Version: 1.0\nRoot-Is-Purelib: false\n{text}"),
        )
        .unwrap()
    }

    #[test]
    fn a_wheel_needs_the_lowest_of_its_tags() {
        let glibc = "glibc-2.36".parse().unwrap();
        let w = wheel(
            "pydantic-core",
            "2.27.2",
            "cp311-cp311-manylinux_2_17_x86_64,cp311-cp311-manylinux2014_x86_64",
        );
        assert_eq!(w.name, "pydantic-core");
        assert_eq!(w.version, "2.27.2");
        let (f, v, _) = libc_need(&w.platforms, glibc).unwrap();
        assert_eq!((f, v), (LibcFamily::Glibc, MajorMinor::new(2, 17)));
        let w = wheel("x", "1", "cp311-cp311-musllinux_1_2_x86_64");
        let (f, v, _) = libc_need(&w.platforms, glibc).unwrap();
        assert_eq!((f, v), (LibcFamily::Musl, MajorMinor::new(1, 2)));
        assert_eq!(
            libc_need(&wheel("idna", "3.7", "py3-none-any").platforms, glibc),
            None
        );
        let w = wheel(
            "x",
            "1",
            "cp311-cp311-manylinux_2_28_x86_64,cp311-cp311-manylinux_2_5_x86_64",
        );
        assert_eq!(
            libc_need(&w.platforms, glibc).unwrap().1,
            MajorMinor::new(2, 5)
        );
        // Built on the old base from an sdist: needs the old base's glibc.
        let w = wheel("docopt-ext", "0.1", "cp311-cp311-linux_x86_64");
        assert_eq!(
            libc_need(&w.platforms, glibc).unwrap().1,
            MajorMinor::new(2, 36)
        );
    }

    #[test]
    fn the_config_keeps_what_the_build_set_and_takes_the_rest_from_the_new_base() {
        let c = |v: Value| -> rbuild_oci::ContainerConfig { serde_json::from_value(v).unwrap() };
        let old = c(
            json!({"Env": ["PATH=/usr/bin", "LANG=C", "V=1"], "Cmd": ["python3"],
            "Labels": {"base": "old", "keep": "x"}, "WorkingDir": "/"}),
        );
        let image = c(
            json!({"Env": ["PATH=/usr/bin", "LANG=C", "V=1", "PORT=8000"],
            "Entrypoint": ["python3", "-m", "app"], "Labels": {"base": "old", "keep": "x", "app": "y"},
            "WorkingDir": "/app"}),
        );
        let new = c(
            json!({"Env": ["PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8"], "Cmd": ["python3"],
            "Labels": {"base": "new"}, "WorkingDir": "/", "User": "1001"}),
        );
        let m = merge_config(Some(&old), Some(&image), Some(&new))
            .unwrap()
            .unwrap();
        assert_eq!(
            m.env.unwrap(),
            ["PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8", "PORT=8000"]
        );
        assert_eq!(m.cmd, None, "the build cleared Cmd");
        assert_eq!(m.entrypoint.unwrap(), ["python3", "-m", "app"]);
        assert_eq!(m.working_dir.as_deref(), Some("/app"));
        assert_eq!(m.user.as_deref(), Some("1001"));
        let labels = m.labels.unwrap();
        assert_eq!(labels["base"], "new");
        assert_eq!(labels["app"], "y");
        assert!(!labels.contains_key("keep"), "the new base dropped it");
    }

    fn target(py: &str, interp: &str, libc: &str) -> Target {
        let mut t: Target = serde_json::from_value(json!({
            "platform": {"os": "linux", "architecture": "amd64"},
            "python_version": py,
            "python_full_version": null,
            "interpreter": interp,
            "scheme": {"purelib": "/usr/local/lib/python3.11/dist-packages",
                "platlib": "/usr/local/lib/python3.11/dist-packages",
                "scripts": "/usr/local/bin", "headers": "/usr/local/include/python3.11",
                "data": "/usr/local"},
            "libc": {"family": "glibc", "version": "2.36"},
            "arch": "x86_64",
            "installed": [],
        }))
        .unwrap();
        t.libc = libc.parse().unwrap();
        t
    }

    #[test]
    fn each_reason_is_named() {
        let old = target("3.11", "/usr/bin/python3.11", "glibc-2.36");
        let wheels = vec![wheel(
            "pydantic-core",
            "2.27.2",
            "cp311-cp311-manylinux_2_17_x86_64,cp311-cp311-manylinux2014_x86_64",
        )];
        assert!(python_reasons(&old, &old).is_empty());
        assert!(libc_reasons(&old, &old, &wheels).is_empty());
        let py = target("3.13", "/usr/bin/python3.13", "glibc-2.41");
        let r = python_reasons(&old, &py);
        assert!(r[0].contains("Python 3.13"), "{r:?}");
        let t = target("3.11", "/usr/bin/python3.11t", "glibc-2.36");
        assert!(python_reasons(&old, &t)[0].contains("ABI is cp311t"));
        let musl = target("3.11", "/usr/bin/python3.11", "musl-1.2");
        assert!(libc_reasons(&old, &musl, &wheels)[0].contains("musl-1.2"));
        let older = target("3.11", "/usr/bin/python3.11", "glibc-2.12");
        let r = libc_reasons(&old, &older, &wheels);
        assert!(r[0].contains("glibc-2.12 is older than 2.17"), "{r:?}");
        assert!(r[0].contains("pydantic-core 2.27.2"), "{r:?}");
    }

    #[test]
    fn a_base_distribution_the_image_replaces_must_be_the_same_copy() {
        let mut old = target("3.11", "/usr/bin/python3.11", "glibc-2.36");
        let pip = |v: &str| rbuild_python::target::InstalledDist {
            name: "pip".into(),
            version: v.into(),
            dist_info_path: format!("/usr/local/lib/python3.11/dist-packages/pip-{v}.dist-info"),
            has_record: true,
        };
        old.installed = vec![pip("24.0")];
        let wheels = vec![wheel("pip", "25.0", "py3-none-any")];
        assert!(conflict_reasons(&old, &old, &wheels).is_empty());
        let mut new = old.clone();
        new.installed = vec![pip("23.0")];
        let r = conflict_reasons(&old, &new, &wheels);
        assert_eq!(r.len(), 1);
        assert!(r[0].contains("installs pip 23.0"), "{r:?}");
        new.installed.clear();
        assert!(conflict_reasons(&old, &new, &wheels).is_empty());
    }

    #[test]
    fn the_user_layer_must_extend_the_new_base_files() {
        let f = |p: &str, g: &str| BaseFacts {
            passwd: Some(p.into()),
            group: Some(g.into()),
            ..BaseFacts::default()
        };
        let layer = f(
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n",
            "root:x:0:\napp:x:1000:\n",
        );
        assert!(user_reasons(&layer, &f("root:x:0:0::/root:/bin/sh\n", "root:x:0:\n")).is_empty());
        let r = user_reasons(
            &layer,
            &f(
                "root:x:0:0::/root:/bin/sh\nsvc:x:5:5::/:/bin/false\n",
                "root:x:0:\n",
            ),
        );
        assert_eq!(r.len(), 1);
        assert!(
            r[0].contains("/etc/passwd") && r[0].contains("svc"),
            "{r:?}"
        );
    }
}
