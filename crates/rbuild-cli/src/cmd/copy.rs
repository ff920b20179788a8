//! `rbuild copy SRC DST [--platform ...]`: copy an image between registry references.

use anyhow::Context;
use clap::Args;
use rbuild_registry::Reference;

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
}

/// Runs `rbuild copy`.
pub async fn run(global: &GlobalArgs, args: CopyArgs) -> anyhow::Result<()> {
    let src = Reference::parse(&args.src).context("source")?;
    let dst = Reference::parse(&args.dst).context("destination")?;
    let platforms = args.platform.platforms();
    let mut extra = Vec::new();
    if let Some(c) = &args.src_creds {
        extra.push((&src, registry::user_pass("--src-creds", c)?));
    }
    if let Some(c) = &args.dest_creds {
        extra.push((&dst, registry::user_pass("--dest-creds", c)?));
    }
    let explicit = registry::explicit_credentials(global, &dst, &extra)?;
    let client = registry::client(global, registry::client_options_for(global, explicit))?;
    let store = registry::store()?;
    tracing::debug!("copying {src} to {dst}");
    let done = client
        .copy(
            &src,
            &dst,
            (!platforms.is_empty()).then_some(platforms.as_slice()),
            &store,
        )
        .await
        .with_context(|| format!("copying {} to {}", src.familiar(), dst.familiar()))?;
    if global.json {
        output::json(&serde_json::json!({
            "source": src.to_string(),
            "destination": done.destination.to_string(),
            "digest": done.digest.to_string(),
            "mediaType": done.media_type.to_string(),
            "manifests": done.manifests,
            "blobs": {
                "uploaded": done.blobs_uploaded,
                "mounted": done.blobs_mounted,
                "skipped": done.blobs_skipped,
            },
        }))
    } else if global.quiet > 0 {
        output::lines(&done.digest.to_string())
    } else {
        output::lines(&format!(
            "copied {} to {} ({} manifest{}; blobs: {} uploaded, {} mounted, {} already present)",
            src.familiar(),
            done.destination.familiar(),
            done.manifests,
            if done.manifests == 1 { "" } else { "s" },
            done.blobs_uploaded,
            done.blobs_mounted,
            done.blobs_skipped
        ))
    }
}
