//! `rbuild sbom REF`, `rbuild attestations REF` and `rbuild verify REF --key PUB`: read back what
//! `rbuild build` attached to an image.
//!
//! Attachments are found by the image's platform manifest digest: through the registry's
//! referrers API, else the referrers tag (`sha256-<hex>`). A signature is the cosign manifest
//! under `sha256-<hex>.sig` of the top digest (the index, or the single manifest).

use anyhow::{Context, bail};
use clap::Args;
use rbuild_attest::{SIMPLE_SIGNING_MEDIA_TYPE, VerifyingKey, signature_tag, verify_signatures};
use rbuild_oci::{Descriptor, Digest, ManifestKind, Platform};
use rbuild_registry::{Access, Client, Reference, Repository};
use serde_json::json;

use crate::cli::{GlobalArgs, PlatformArgs};
use crate::{output, registry};

/// Arguments of `rbuild sbom`.
#[derive(Debug, Args)]
pub struct SbomArgs {
    /// The image (registry/repository:tag or @sha256:...).
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The platform whose SBOM to print, when REF is an index (default: the host's, else the first).
    #[command(flatten)]
    pub platform: PlatformArgs,
    /// Only an SBOM in this format (spdx or cyclonedx).
    #[arg(long, value_name = "spdx|cyclonedx")]
    pub format: Option<String>,
    /// How to reach registries.
    #[command(flatten)]
    pub network: crate::cli::NetworkArgs,
    /// Credentials for the registry.
    #[command(flatten)]
    pub creds: crate::cli::CredsArgs,
}

/// Arguments of `rbuild attestations`.
#[derive(Debug, Args)]
pub struct AttestationsArgs {
    /// The image.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Only these platforms (default: every platform of an index).
    #[command(flatten)]
    pub platform: PlatformArgs,
    /// List the attached manifests (platform, digest, artifact type) instead of printing the
    /// in-toto statements.
    #[arg(long)]
    pub list: bool,
    /// How to reach registries.
    #[command(flatten)]
    pub network: crate::cli::NetworkArgs,
    /// Credentials for the registry.
    #[command(flatten)]
    pub creds: crate::cli::CredsArgs,
}

/// Arguments of `rbuild verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The public key (PEM, as `cosign.pub`).
    #[arg(long, value_name = "PUB")]
    pub key: std::path::PathBuf,
    /// How to reach registries.
    #[command(flatten)]
    pub network: crate::cli::NetworkArgs,
    /// Credentials for the registry.
    #[command(flatten)]
    pub creds: crate::cli::CredsArgs,
}

/// The repository, the top digest and each platform manifest (platform, digest) of `reference`.
async fn open(
    global: &GlobalArgs,
    reference: &str,
) -> anyhow::Result<(
    Reference,
    Repository,
    Digest,
    Vec<(Option<Platform>, Digest)>,
)> {
    let reference = Reference::parse(reference)?;
    let explicit = registry::explicit_credentials(global, &reference, &[])?;
    let client: Client = registry::client(global, registry::client_options_for(global, explicit))?;
    let top = client
        .get_manifest(&reference)
        .await
        .with_context(|| format!("reading {}", reference.familiar()))?;
    let repo = client.repository(&reference, Access::Pull)?;
    let images = match top.parse()? {
        ManifestKind::Image(_) => vec![(None, top.digest)],
        ManifestKind::Index(i) => i
            .manifests
            .iter()
            .filter(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os != "unknown" && p.architecture != "unknown")
            })
            .map(|d| (d.platform.clone(), d.digest))
            .collect(),
    };
    Ok((reference, repo, top.digest, images))
}

/// The one layer of an attachment manifest.
async fn attachment_blob(repo: &Repository, d: &Descriptor) -> anyhow::Result<Vec<u8>> {
    let m = repo.get_manifest(&d.digest.to_string()).await?;
    let ManifestKind::Image(m) = m.parse()? else {
        bail!(
            "attachment {} is an index, not an artifact manifest",
            d.digest
        );
    };
    let Some(layer) = m.layers.first() else {
        bail!("attachment {} has no layer", d.digest);
    };
    Ok(repo.get_small_blob(layer).await?)
}

/// Runs `rbuild sbom`.
pub async fn run_sbom(global: &GlobalArgs, args: SbomArgs) -> anyhow::Result<()> {
    let (reference, repo, _, images) = open(global, &args.reference).await?;
    let wanted: Vec<&str> = match args.format.as_deref() {
        None => vec![
            rbuild_sbom::SPDX_MEDIA_TYPE,
            rbuild_sbom::CYCLONEDX_MEDIA_TYPE,
        ],
        Some(f) => vec![
            f.parse::<rbuild_sbom::Format>()
                .map_err(anyhow::Error::msg)?
                .media_type(),
        ],
    };
    let platforms = args.platform.platforms();
    let host = Platform::host();
    let chosen = images
        .iter()
        .find(|(p, _)| match platforms.first() {
            Some(want) => p.as_ref() == Some(want),
            None => p.is_none() || p.as_ref() == Some(&host),
        })
        .or(if platforms.is_empty() {
            images.first()
        } else {
            None
        });
    let Some((_, subject)) = chosen else {
        bail!(
            "{} has no image for {}",
            reference.familiar(),
            platforms
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let referrers = repo.referrers(subject).await?;
    let Some(d) = referrers.iter().find(|d| {
        d.artifact_type
            .as_deref()
            .is_some_and(|t| wanted.contains(&t))
    }) else {
        bail!(
            "{}@{subject} has no SBOM attached (looked for {} through the referrers API and the tag sha256-{}); build it with rbuild build --sbom spdx",
            reference.name(),
            wanted.join(" or "),
            subject.hex()
        );
    };
    output::raw(&attachment_blob(&repo, d).await?)
}

/// Runs `rbuild attestations`.
pub async fn run_attestations(global: &GlobalArgs, args: AttestationsArgs) -> anyhow::Result<()> {
    let (_, repo, _, images) = open(global, &args.reference).await?;
    let only = args.platform.platforms();
    let mut listed = Vec::new();
    let mut statements = Vec::new();
    for (platform, subject) in &images {
        if !only.is_empty() && !platform.as_ref().is_some_and(|p| only.contains(p)) {
            continue;
        }
        for d in repo.referrers(subject).await? {
            let artifact_type = d.artifact_type.clone().unwrap_or_default();
            listed.push(json!({
                "platform": platform.as_ref().map(|p| p.to_string()),
                "subject": subject.to_string(),
                "digest": d.digest.to_string(),
                "artifactType": artifact_type,
                "predicateType": d.annotation(rbuild::supply::ANNOTATION_PREDICATE_TYPE),
            }));
            if artifact_type == rbuild_attest::STATEMENT_MEDIA_TYPE && !args.list {
                let bytes = attachment_blob(&repo, &d).await?;
                statements.push(
                    serde_json::from_slice::<serde_json::Value>(&bytes)
                        .with_context(|| format!("the statement {} is not JSON", d.digest))?,
                );
            }
        }
    }
    if args.list {
        if global.json {
            return output::json_doc(json!({"attachments": listed}));
        }
        let lines: Vec<String> = listed
            .iter()
            .map(|v| {
                format!(
                    "{:<14} {}  {}{}",
                    v["platform"].as_str().unwrap_or("-"),
                    v["digest"].as_str().unwrap_or(""),
                    v["artifactType"].as_str().unwrap_or(""),
                    v["predicateType"]
                        .as_str()
                        .map(|p| format!(" ({p})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        return output::lines(&lines.join("\n"));
    }
    if statements.is_empty() {
        bail!("no in-toto statement is attached (build with rbuild build --provenance)");
    }
    for s in statements {
        output::lines(&serde_json::to_string(&s)?)?;
    }
    Ok(())
}

/// Runs `rbuild verify`.
pub async fn run_verify(global: &GlobalArgs, args: VerifyArgs) -> anyhow::Result<()> {
    let (reference, repo, top, _) = open(global, &args.reference).await?;
    let what = args.key.display().to_string();
    let pem = std::fs::read_to_string(&args.key)
        .with_context(|| format!("reading the public key {what}"))?;
    let key = VerifyingKey::from_pem(&what, &pem)?;
    let tag = signature_tag(&top);
    let sig = repo.get_manifest(&tag).await.with_context(|| {
        format!(
            "{}@{top} has no signature (tag {tag}); sign it with rbuild build --sign-key",
            reference.name()
        )
    })?;
    let ManifestKind::Image(m) = sig.parse()? else {
        bail!("{tag} is an index, not a signature manifest");
    };
    let mut payloads = std::collections::BTreeMap::new();
    for l in &m.layers {
        if l.media_type.as_str() == SIMPLE_SIGNING_MEDIA_TYPE {
            payloads.insert(l.digest, repo.get_small_blob(l).await?);
        }
    }
    let refs = verify_signatures(&m, &key, &top, |l| {
        payloads
            .get(&l.digest)
            .cloned()
            .ok_or_else(|| "payload not fetched".to_string())
    })?;
    if global.json {
        return output::json_doc(json!({
            "verified": true,
            "digest": top.to_string(),
            "identities": refs,
        }));
    }
    output::lines(&format!(
        "Verified OK: {}@{top} is signed by {what} (docker-reference {})",
        reference.name(),
        refs.join(", ")
    ))
}
