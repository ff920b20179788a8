//! The app layer: the build context (its ignore file applied) under the app directory. The same
//! for every platform, so it is built once per build; it is not cached (writing it is faster than
//! any key over the context's bytes would be to compute).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use rbuild_bytecode::Source;
use rbuild_layer::{Context, EntryKind, LayerOptions, LayerWriter, write_context_entries};

use crate::BuildError;
use crate::Builder;
use crate::error::other;
use crate::image::LayerKind;
use crate::layers::bytecode::{Bytecode, append_pycs, summary};
use crate::layers::{LayerBuilder, LayerRecord};
use crate::progress::elapsed;

/// The app layer of a build.
pub(crate) struct AppLayer {
    pub(crate) context: Arc<Context>,
    /// The app directory in the image (`/app`).
    pub(crate) app_dir: String,
    pub(crate) options: LayerOptions,
    /// Compiles the app's `.py` files into the layer, when the build ships bytecode (the
    /// context's own `__pycache__` directories are then left out).
    pub(crate) bytecode: Option<Arc<Bytecode>>,
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
        let bytecode = self.bytecode.clone();
        let (blob, info, compiled) = tokio::task::spawn_blocking(move || {
            let mut w = LayerWriter::new(writer, &opts)?;
            let Some(bc) = bytecode else {
                write_context_entries(&ctx, &dir, &mut w, |_| true)?;
                let (blob, info) = w.finish()?;
                return Ok::<_, BuildError>((blob, info, None));
            };
            let t = Instant::now();
            let sources: Vec<Source> = ctx
                .entries
                .iter()
                .filter(|e| {
                    matches!(e.kind, EntryKind::File { .. })
                        && e.path.ends_with(".py")
                        && !in_pycache(&e.path)
                })
                .map(|e| Source {
                    image_path: format!("/{dir}/{}", e.path).replace("//", "/"),
                    host_path: ctx.root.join(&e.path),
                })
                .collect();
            let scratch = bc.scratch()?;
            let out = bc.compile(scratch.path(), &sources)?;
            write_context_entries(&ctx, &dir, &mut w, |p| !in_pycache(p))?;
            let prefix = dir.trim_matches('/');
            let written: BTreeSet<String> = ctx
                .entries
                .iter()
                .filter(|e| matches!(e.kind, EntryKind::Dir) && !in_pycache(&e.path))
                .map(|e| {
                    format!("{prefix}/{}", e.path)
                        .trim_start_matches('/')
                        .to_string()
                })
                .chain(std::iter::once(prefix.to_string()))
                .collect();
            let bytes = append_pycs(&mut w, &out, &written)?;
            let (blob, info) = w.finish()?;
            Ok((blob, info, Some((summary(&out, bytes), elapsed(t)))))
        })
        .await
        .map_err(other)??;
        if let Some((line, seconds)) = compiled {
            builder.progress.step("all", "bytecode", &line, seconds);
        }
        let rec = builder.finish_layer(None, blob, &info)?;
        builder.progress.step(
            "all",
            "app",
            &format!(
                "{} entries under {} → {} ({:.1} kB)",
                self.context.entries.len(),
                self.app_dir,
                &rec.digest.to_string()[..19],
                rec.size as f64 / 1e3
            ),
            elapsed(t0),
        );
        Ok(Some(rec))
    }
}

/// Whether a context path is inside a `__pycache__` directory (or is one).
fn in_pycache(path: &str) -> bool {
    path.split('/').any(|c| c == "__pycache__")
}
