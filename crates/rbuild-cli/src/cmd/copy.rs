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
}

/// Runs `rbuild copy`.
pub async fn run(global: &GlobalArgs, args: CopyArgs) -> anyhow::Result<()> {
    let src = Reference::parse(&args.src).context("source")?;
    let dst = Reference::parse(&args.dst).context("destination")?;
    let platforms = args.platform.platforms();
    let client = registry::client(global, registry::client_options(global))?;
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
