//! The app layer: the build context (its ignore file applied) under the app directory. The same
//! for every platform, so it is built once per build; it is not cached (writing it is faster than
//! any key over the context's bytes would be to compute).

use std::sync::Arc;
use std::time::Instant;

use rbuild_layer::{Context, LayerOptions};

use crate::BuildError;
use crate::Builder;
use crate::error::other;
use crate::image::LayerKind;
use crate::layers::{LayerBuilder, LayerRecord};
use crate::progress::elapsed;

/// The app layer of a build.
pub(crate) struct AppLayer {
    pub(crate) context: Arc<Context>,
    /// The app directory in the image (`/app`).
    pub(crate) app_dir: String,
    pub(crate) options: LayerOptions,
}

impl LayerBuilder for AppLayer {
    fn kind(&self) -> LayerKind {
        LayerKind::App
    }
    fn key(&self) -> Option<&str> {
        None
    }
    async fn build(&self, builder: &Builder) -> Result<Option<LayerRecord>, BuildError> {
        let t0 = Instant::now();
        let ctx = self.context.clone();
        let dir = self.app_dir.trim_matches('/').to_string();
        let opts = self.options;
        let writer = builder.store.writer()?;
        let _busy = crate::progress::busy(
            &*builder.progress,
            crate::progress::Activity::Compress,
            "all",
            "app",
        );
        let (blob, info) = tokio::task::spawn_blocking(move || {
            rbuild_layer::write_context_layer(&ctx, &dir, &opts, writer)
        })
        .await
        .map_err(other)??;
        let rec = builder.finish_layer(None, blob, &info)?;
        builder.progress.step(
            "all",
            "app",
            &format!(
                "{} under {} → {} ({})",
                crate::progress::count(self.context.entries.len(), "entry", "entries"),
                self.app_dir,
                &rec.digest.to_string()[..19],
                crate::progress::human_size(rec.size)
            ),
            elapsed(t0),
        );
        Ok(Some(rec))
    }
}
