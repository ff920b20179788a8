//! `rbuild cache info` and `rbuild cache prune`: the content store (`$RBUILD_CACHE_DIR`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::cli::GlobalArgs;
use crate::{output, registry};

/// Arguments of `rbuild cache`.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: CacheAction,
}

/// `rbuild cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Show where the store is and its size by kind.
    Info,
    /// Free space: leftovers of interrupted writes, and entries not used for --older-than days.
    /// Safe beside running builds: what they use is kept.
    Prune {
        /// Remove everything no running build uses (the next build downloads again).
        #[arg(long)]
        all: bool,
        /// Remove entries not written or used for this many days.
        #[arg(long = "older-than", value_name = "DAYS", default_value_t = 30)]
        older_than: u64,
    },
}

#[derive(Default)]
struct Kinds {
    sizes: BTreeMap<&'static str, (u64, u64)>,
}

impl Kinds {
    fn add(&mut self, kind: &'static str, size: u64) {
        let e = self.sizes.entry(kind).or_default();
        e.0 += 1;
        e.1 += size;
    }
}

fn read_dir_files(dir: &Path) -> Vec<(std::path::PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if let Ok(m) = std::fs::symlink_metadata(&p) {
            if m.is_dir() {
                out.extend(read_dir_files(&p));
            } else {
                out.push((p, m));
            }
        }
    }
    out
}

/// Digests the store's records name, by kind.
fn known(root: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut wheels = BTreeSet::new();
    let mut layers = BTreeSet::new();
    for (p, _) in read_dir_files(&root.join("keys/wheel-files")) {
        if let Ok(v) =
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(&p).unwrap_or_default())
            && let Some(d) = v["sha256"].as_str()
        {
            wheels.insert(d.trim_start_matches("sha256:").to_string());
        }
    }
    for (p, _) in read_dir_files(&root.join("keys/layers")) {
        if let Ok(v) =
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(&p).unwrap_or_default())
            && let Some(d) = v["digest"].as_str()
        {
            layers.insert(d.trim_start_matches("sha256:").to_string());
        }
    }
    (wheels, layers)
}

fn info(root: &Path) -> Kinds {
    let (wheels, layers) = known(root);
    let mut k = Kinds::default();
    for (p, m) in read_dir_files(&root.join("blobs/sha256")) {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let kind = if wheels.contains(&name) {
            "wheels"
        } else if layers.contains(&name) {
            "built_layers"
        } else if m.len() > 64 * 1024 {
            "image_layers"
        } else {
            "small_blobs"
        };
        k.add(kind, m.len());
    }
    for (_, m) in read_dir_files(&root.join("keys")) {
        k.add("records", m.len());
    }
    for (_, m) in read_dir_files(&root.join("tmp")) {
        k.add("unfinished_writes", m.len());
    }
    k
}

/// What a `kinds` key of `cache info --json` holds, for the text output.
fn kind_label(key: &str) -> &str {
    match key {
        "wheels" => "wheels",
        "built_layers" => "built layers (deps, user)",
        "image_layers" => "image layers (base, app)",
        "small_blobs" => "manifests, configs, small layers",
        "records" => "records",
        "unfinished_writes" => "unfinished writes",
        other => other,
    }
}

/// Runs `rbuild cache`.
pub async fn run(global: &GlobalArgs, args: CacheArgs) -> anyhow::Result<()> {
    let store = registry::store()?;
    let root = store.root().to_path_buf();
    match args.action {
        CacheAction::Info => {
            let k = info(&root);
            let total: u64 = k.sizes.values().map(|(_, s)| s).sum();
            if global.json {
                let kinds: BTreeMap<&str, serde_json::Value> = k
                    .sizes
                    .iter()
                    .map(|(n, (c, s))| (*n, json!({"entries": c, "bytes": s})))
                    .collect();
                return output::json_doc(json!({"path": root, "bytes": total, "kinds": kinds}));
            }
            let mut text = format!(
                "content store {} ({})\n",
                root.display(),
                output::human_size(total)
            );
            for (name, (count, size)) in &k.sizes {
                text.push_str(&format!(
                    "  {:<34} {:>14}  {:>10}\n",
                    kind_label(name),
                    rbuild::progress::count(*count as usize, "entry", "entries"),
                    output::human_size(*size)
                ));
            }
            output::lines(&text)
        }
        CacheAction::Prune { all, older_than } => {
            // Entries a running build uses (since it started) are kept, even with --all.
            let report = store.prune(rbuild_oci::PruneOptions {
                all,
                older_than: Duration::from_secs(older_than.saturating_mul(86_400)),
            })?;
            let (removed, freed) = (report.removed, report.freed);
            if global.json {
                return output::json_doc(json!({
                    "path": root,
                    "removed": removed,
                    "freed_bytes": freed,
                    "kept_in_use": report.in_use,
                    "running_builds": report.running,
                }));
            }
            let kept = if report.in_use > 0 {
                format!(
                    "; kept {} in use by {} running",
                    rbuild::progress::count(report.in_use as usize, "entry", "entries"),
                    rbuild::progress::count(report.running as usize, "build", "builds"),
                )
            } else {
                String::new()
            };
            output::lines(&format!(
                "removed {}, freed {} from {}{kept}",
                rbuild::progress::count(removed as usize, "entry", "entries"),
                output::human_size(freed),
                root.display()
            ))
        }
    }
}
