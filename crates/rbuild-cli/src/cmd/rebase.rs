//! `rbuild rebase REF --base NEWBASE [--to REF2]`: a thin wrapper over [`rbuild::Builder::rebase`]
//! and the publish machinery `rbuild build` uses.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use rbuild::publish::{Sink, parse_output, publish};
use rbuild::{Builder, IndexClient, IndexOptions, RebaseRequest};
use rbuild_registry::Reference;
use serde_json::json;

use crate::cli::GlobalArgs;
use crate::{output, registry};

/// Arguments of `rbuild rebase`.
#[derive(Debug, Args)]
#[command(
    after_help = "Like `crane rebase`, but only when it is safe for Python: the image's dependency, \
user and app layers are kept byte for byte, and the rebase is refused (naming every reason) unless \
the new base has the same CPython X.Y and ABI, CPU, install scheme and interpreter path, the same \
C library family at a version no older than any installed wheel needs, no other copy of a \
distribution the image installs, and the /etc/passwd and /etc/group the user layer extends. The \
base annotations, history, recorded target, SBOM and provenance are updated.\n\nExample:\n  \
rbuild rebase registry.example/app:1.0 --base registry.example/python:3.11-slim-patched"
)]
pub struct RebaseArgs {
    /// The image rbuild built (a tag or digest; every platform of an index is rebased).
    #[arg(value_name = "REF")]
    pub reference: String,
    /// The new base image.
    #[arg(long = "base", value_name = "NEWBASE")]
    pub base: String,
    /// Where to push the rebased image (default: REF itself, when it has a tag).
    #[arg(long, short = 't', value_name = "REF2")]
    pub to: Option<String>,
    /// Also write the result to oci:DIR[:TAG] or docker-archive:FILE[:NAME:TAG] (repeatable).
    #[arg(long, value_name = "SINK")]
    pub output: Vec<String>,
    /// Sign the rebased image with this ECDSA P-256 key (cosign's format; password in
    /// COSIGN_PASSWORD). Without it the rebased image is not signed (an old signature does not
    /// cover a new digest).
    #[arg(
        long = "sign-key",
        value_name = "FILE",
        env = "RBUILD_SIGN_KEY",
        hide_env_values = true
    )]
    pub sign_key: Option<std::path::PathBuf>,
    /// How to reach registries.
    #[command(flatten)]
    pub network: crate::cli::NetworkArgs,
    /// Credentials for the registry written to.
    #[command(flatten)]
    pub creds: crate::cli::CredsArgs,
}

/// Runs `rbuild rebase`.
pub async fn run(global: &GlobalArgs, args: RebaseArgs) -> anyhow::Result<()> {
    let image = Reference::parse(&args.reference).context("REF")?;
    let new_base = Reference::parse(&args.base).context("--base")?;
    let to = match &args.to {
        Some(t) => Reference::parse(t).context("--to")?,
        None if image.tag().is_some() && image.digest().is_none() => image.clone(),
        None => {
            return Err(crate::exit::usage(
                format!("{image} names a digest, which cannot be pushed to again"),
                &["give --to REF2 (a tag) for the rebased image"],
            ));
        }
    };
    let mut sinks = vec![Sink::Registry(to.clone())];
    for o in &args.output {
        sinks.push(parse_output(o).map_err(|e| {
            crate::exit::usage(
                format!("--output {o}: {e}"),
                &["write oci:DIR[:TAG] or docker-archive:FILE[:NAME:TAG]"],
            )
        })?);
    }
    let sign = match &args.sign_key {
        Some(path) => Some((rbuild::SigningKey::from_file(path)?, to.name())),
        None => None,
    };
    let explicit = registry::explicit_credentials(global, &to, &[])?;
    let client = registry::client(global, registry::client_options_for(global, explicit))?;
    let store = registry::store()?;
    // No package index is asked: a rebase keeps the dependency layers as they are.
    let index = IndexClient::new(IndexOptions::default())?;
    let builder = Builder::new(client, index, store).with_progress(Arc::new(
        crate::bars::BuildRenderer(crate::bars::renderer()),
    ));
    let req = RebaseRequest {
        image: image.clone(),
        new_base: new_base.clone(),
        sign,
    };
    let out = builder
        .rebase(&req)
        .await
        .with_context(|| format!("rebasing {} onto {}", image.familiar(), new_base.familiar()))?;
    let report = publish(builder.client(), &out.image, &sinks, builder.store())
        .await
        .with_context(|| format!("publishing the rebased image to {to}"))?;
    let digest = out.image.digest();
    let pushed = match to.tag() {
        Some(t) => to.with_tag(t)?.with_digest(digest),
        None => to.by_digest(digest),
    };
    if global.json {
        return output::json_doc(json!({
            "image": pushed.to_string(),
            "digest": digest.to_string(),
            "platforms": out.platforms,
            "attachments": out.image.attachments.iter().map(|a| json!({
                "kind": a.kind,
                "digest": a.image.digest().to_string(),
                "subject": a.subject.to_string(),
            })).collect::<Vec<_>>(),
            "blobs": {"uploaded": report.uploaded, "mounted": report.mounted, "skipped": report.existing},
        }));
    }
    if global.quiet == 0 {
        for p in &out.platforms {
            crate::bars::println(&format!(
                "[{}] rebased {} from {}@{} onto {}@{}: {} layers kept",
                p.platform,
                p.old_manifest,
                p.old_base.0,
                p.old_base.1,
                p.new_base.0,
                p.new_base.1,
                p.kept.len()
            ));
        }
    }
    output::lines(&pushed.to_string())
}
