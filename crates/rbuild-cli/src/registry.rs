//! Building the registry client from the global flags, and reporting its progress as log lines.

use std::sync::Arc;

use anyhow::Context;
use rbuild_oci::Store;
use rbuild_registry::{Client, ClientOptions, Progress, ProgressEvent};

use crate::cli::GlobalArgs;

/// Logs blob and manifest events (`-v`).
struct LogProgress;

impl Progress for LogProgress {
    fn event(&self, e: ProgressEvent) {
        match e {
            ProgressEvent::BlobStarted {
                digest,
                size,
                upload,
            } => tracing::debug!(
                "{} {digest} ({})",
                if upload { "uploading" } else { "downloading" },
                crate::output::human_size(size)
            ),
            ProgressEvent::BlobRestarted { digest } => tracing::debug!("restarting {digest}"),
            ProgressEvent::BlobFinished { digest, upload } => tracing::debug!(
                "{} {digest}",
                if upload { "uploaded" } else { "downloaded" }
            ),
            ProgressEvent::BlobSkipped { digest } => tracing::debug!("already present: {digest}"),
            ProgressEvent::BlobMounted { digest, from } => {
                tracing::debug!("mounted {digest} from {from}")
            }
            ProgressEvent::ManifestPushed { digest, reference } => {
                tracing::debug!("pushed {reference} ({digest})")
            }
            ProgressEvent::BlobAdvanced { .. } => {}
        }
    }
}

/// Client options from the global flags.
pub fn client_options(global: &GlobalArgs) -> ClientOptions {
    let mut opts = ClientOptions {
        insecure_registries: global.insecure_registry.clone(),
        ..Default::default()
    };
    opts.tls.extra_ca_files = global.ca_file.clone();
    opts
}

/// A registry client configured from the global flags.
pub fn client(global: &GlobalArgs, opts: ClientOptions) -> anyhow::Result<Client> {
    let _ = global;
    Ok(Client::new(opts)?.with_progress(Arc::new(LogProgress)))
}

/// The content store (`$RBUILD_CACHE_DIR`, default `$XDG_CACHE_HOME/rbuild`).
pub fn store() -> anyhow::Result<Store> {
    let root = Store::default_root();
    Store::open(&root).with_context(|| format!("opening the content store {}", root.display()))
}
