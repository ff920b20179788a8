//! `rbuild copy SRC DST [--platform ...]`: copy an image between registry references.

use anyhow::Context;
use clap::Args;
use rbuild_oci::Top;
use rbuild_registry::{Reference, RegistryBlobs, RegistrySink};

use crate::cli::{GlobalArgs, PlatformArgs};
use crate::{output, registry};

/// Arguments of `rbuild copy`.
#[derive(Debug, Args)]
#[command(
    after_help = "Like `crane copy`: without --platform the whole index is copied with every \
platform, byte for byte, so the destination has the same digest. With one --platform only that \
platform's manifest is copied; with several, a new index over just those. Blobs are mounted when \
source and destination are on the same registry."
)]
pub struct CopyArgs {
    /// The image to copy (e.g. python:3.12-slim, localhost:5000/app:1, name@sha256:...).
    #[arg(value_name = "SRC")]
    pub src: String,
    /// Where to copy it.
    #[arg(value_name = "DST")]
    pub dst: String,
    /// Platform selection.
    #[command(flatten)]
    pub platform: PlatformArgs,
    /// Credentials USER:PASSWORD for the source registry.
    #[arg(long, value_name = "USER:PASSWORD")]
    pub src_creds: Option<String>,
    /// Credentials USER:PASSWORD for the destination registry (overrides --creds).
    #[arg(long, value_name = "USER:PASSWORD")]
    pub dest_creds: Option<String>,
    /// How to reach registries.
    #[command(flatten)]
    pub network: crate::cli::NetworkArgs,
    /// Credentials for the registry.
    #[command(flatten)]
    pub creds: crate::cli::CredsArgs,
}

/// Runs `rbuild copy`.
pub async fn run(global: &GlobalArgs, args: CopyArgs) -> anyhow::Result<()> {
    let src = Reference::parse(&args.src).context("source")?;
    let dst = Reference::parse(&args.dst).context("destination")?;
    let platforms = args.platform.platforms();
    let mut extra = Vec::new();
    if let Some(c) = &args.src_creds {
        extra.push((&src, registry::user_pass("--src-creds", c)?, "--src-creds"));
    }
    if let Some(c) = &args.dest_creds {
        extra.push((
            &dst,
            registry::user_pass("--dest-creds", c)?,
            "--dest-creds",
        ));
    }
    let explicit = registry::explicit_credentials(global, &dst, &extra)?;
    let client = registry::client(global, registry::client_options_for(global, explicit))?;
    let store = registry::store()?;
    tracing::debug!("copying {src} to {dst}");
    let what = || format!("copying {} to {}", src.familiar(), dst.familiar());
    // Pull into the model, then push with the registry sink (the push `rbuild build --to` uses).
    let artifact = client
        .pull(
            &src,
            (!platforms.is_empty()).then_some(platforms.as_slice()),
            &store,
        )
        .await
        .with_context(what)?;
    let digest = artifact.digest();
    if let Some(want) = dst.digest()
        && *want != digest
    {
        anyhow::bail!(
            "{}: the destination {dst} names digest {want}, but the content to copy is {digest}",
            what()
        );
    }
    let blobs = RegistryBlobs::of_repository(client.clone(), store.clone(), src.clone());
    let sink = RegistrySink::new(client.clone(), store.clone(), vec![dst.clone()]);
    let pushed = sink.push(&artifact, &blobs).await.with_context(what)?;
    let media_type = artifact.top.manifest().media_type.clone();
    let manifests = 1 + match &artifact.top {
        Top::Index { images, .. } => images.len(),
        Top::Image(_) => 0,
    };
    let destination = match dst.tag() {
        Some(t) => dst.with_tag(t)?.with_digest(digest),
        None => dst.by_digest(digest),
    };
    if global.json {
        output::json_doc(serde_json::json!({
            "source": src.to_string(),
            "destination": destination.to_string(),
            "digest": digest.to_string(),
            "mediaType": media_type.to_string(),
            "manifests": manifests,
            "blobs": {
                "uploaded": pushed.uploaded,
                "mounted": pushed.mounted,
                "skipped": pushed.existing,
            },
        }))
    } else if global.quiet > 0 {
        output::lines(&digest.to_string())
    } else {
        output::lines(&format!(
            "copied {} to {} ({} manifest{}; blobs: {} uploaded, {} mounted, {} already present)",
            src.familiar(),
            destination.familiar(),
            manifests,
            if manifests == 1 { "" } else { "s" },
            pushed.uploaded,
            pushed.mounted,
            pushed.existing
        ))
    }
}
