//! `rbuild inspect REF [--platform ...] [--raw] [--config]`: show an image.

use anyhow::{Context, bail};
use clap::Args;
use rbuild_oci::{ManifestKind, Platform, RawManifest};
use rbuild_registry::Reference;

use crate::cli::{GlobalArgs, PlatformArgs};
use crate::{output, registry};

/// Arguments of `rbuild inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image (e.g. python:3.12-slim, localhost:5000/app:1, name@sha256:...).
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Show this platform's image manifest instead of the index (one platform).
    #[command(flatten)]
    pub platform: PlatformArgs,
    /// Print the exact manifest bytes as the registry serves them.
    #[arg(long, conflicts_with = "config")]
    pub raw: bool,
    /// Print the image config (of the host platform, or --platform, when REF is an index).
    #[arg(long)]
    pub config: bool,
    /// How to reach registries.
    #[command(flatten)]
    pub network: crate::cli::NetworkArgs,
    /// Credentials for the registry.
    #[command(flatten)]
    pub creds: crate::cli::CredsArgs,
}

fn one_platform(args: &InspectArgs) -> anyhow::Result<Option<Platform>> {
    match args.platform.platforms().as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        _ => bail!("inspect shows one platform at a time; pass a single --platform"),
    }
}

/// Runs `rbuild inspect`.
pub async fn run(global: &GlobalArgs, args: InspectArgs) -> anyhow::Result<()> {
    let reference = Reference::parse(&args.reference)?;
    let platform = one_platform(&args)?;
    let explicit = registry::explicit_credentials(global, &reference, &[])?;
    let client = registry::client(global, registry::client_options_for(global, explicit))?;

    if args.config {
        let p = platform.unwrap_or_else(Platform::host);
        let image = client.resolve_image(&reference, &p).await?;
        let store = registry::store()?;
        let (bytes, _) = client
            .fetch_config(&image, &store)
            .await
            .with_context(|| format!("fetching the config of {}", reference.familiar()))?;
        return output::raw(&bytes);
    }

    let (index, manifest) = match &platform {
        Some(p) => {
            let image = client.resolve_image(&reference, p).await?;
            (image.index, image.manifest)
        }
        None => (None, client.get_manifest(&reference).await?),
    };
    if args.raw {
        return output::raw(&manifest.bytes);
    }
    let summary = summarize(&reference, index.as_ref(), &manifest)?;
    if global.json {
        output::json_doc(summary)
    } else {
        output::lines(&human(&summary))
    }
}

fn summarize(
    reference: &Reference,
    index: Option<&RawManifest>,
    manifest: &RawManifest,
) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::json!({
        "reference": reference.to_string(),
        "digest": manifest.digest.to_string(),
        "mediaType": manifest.media_type.to_string(),
        "size": manifest.bytes.len(),
    });
    if let Some(i) = index {
        v["index"] = serde_json::json!({"digest": i.digest.to_string(), "mediaType": i.media_type.to_string()});
    }
    match manifest.parse()? {
        ManifestKind::Index(idx) => {
            v["manifests"] = idx
                .manifests
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "platform": d.platform.as_ref().map(|p| p.to_string()),
                        "digest": d.digest.to_string(),
                        "mediaType": d.media_type.to_string(),
                        "size": d.size,
                    })
                })
                .collect();
        }
        ManifestKind::Image(m) => {
            v["config"] = serde_json::json!({
                "digest": m.config.digest.to_string(),
                "mediaType": m.config.media_type.to_string(),
                "size": m.config.size,
            });
            v["layers"] = m
                .layers
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "digest": d.digest.to_string(),
                        "mediaType": d.media_type.to_string(),
                        "size": d.size,
                    })
                })
                .collect();
            v["totalSize"] = (m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>()).into();
        }
    }
    Ok(v)
}

fn human(v: &serde_json::Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    let mut out = format!(
        "Reference:  {}\nDigest:     {}\nMedia type: {}\n",
        s("reference"),
        s("digest"),
        s("mediaType")
    );
    if let Some(i) = v.get("index") {
        out += &format!("Index:      {}\n", i["digest"].as_str().unwrap_or(""));
    }
    if let Some(ms) = v["manifests"].as_array() {
        out += "Platforms:\n";
        for m in ms {
            out += &format!(
                "  {:<16} {}  {}\n",
                m["platform"].as_str().unwrap_or("-"),
                m["digest"].as_str().unwrap_or(""),
                output::human_size(m["size"].as_u64().unwrap_or(0))
            );
        }
    }
    if let Some(ls) = v["layers"].as_array() {
        out += &format!(
            "Config:     {}  {}\nLayers:\n",
            v["config"]["digest"].as_str().unwrap_or(""),
            output::human_size(v["config"]["size"].as_u64().unwrap_or(0))
        );
        for l in ls {
            out += &format!(
                "  {}  {:>9}  {}\n",
                l["digest"].as_str().unwrap_or(""),
                output::human_size(l["size"].as_u64().unwrap_or(0)),
                l["mediaType"].as_str().unwrap_or("")
            );
        }
        out += &format!(
            "Total size: {}\n",
            output::human_size(v["totalSize"].as_u64().unwrap_or(0))
        );
    }
    out
}
