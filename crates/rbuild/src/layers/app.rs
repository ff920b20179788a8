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
use crate::layers::bytecode::{Bytecode, SpoolSink, append_pycs, summary};
use crate::layers::deps::install_target;
use crate::layers::{LayerBuilder, LayerRecord};
use crate::progress::elapsed;
use crate::rootfs::BaseFacts;
use rbuild_python::target::Target;

/// The app layer of a build.
pub(crate) struct AppLayer {
    pub(crate) context: Arc<Context>,
    /// The app directory in the image (`/app`).
    pub(crate) app_dir: String,
    /// The app directory and its parents as the base has them, when not root's `0755`: path
    /// (relative) → (mode, uid, gid). The layer repeats them so, never changing a base directory
    /// (an S2I base's `/opt/app-root/src` stays 1001:0 and group-writable).
    pub(crate) base_dirs: std::collections::BTreeMap<String, (u32, u32, u32)>,
    pub(crate) options: LayerOptions,
    /// Compiles the app's `.py` files into the layer, when the build ships bytecode (the
    /// context's own `__pycache__` directories are then left out).
    pub(crate) bytecode: Option<Arc<Bytecode>>,
    /// Installs the project itself and the local projects the lock names (workspace members,
    /// path dependencies) — each a wheel written natively from static PEP 621 metadata — into
    /// the target's site-packages, as `uv sync --no-editable` would.
    pub(crate) project: Option<ProjectInstall>,
    /// The base's interpreter, which runs the build backend of a project whose metadata is
    /// dynamic (a version from git).
    pub(crate) python: Option<Arc<crate::runner::BasePython>>,
}

/// What building a project with its backend needs (run on the blocking pool).
struct Backend {
    python: Arc<crate::runner::BasePython>,
    index: rbuild_index::IndexClient,
    store: rbuild_oci::Store,
    handle: tokio::runtime::Handle,
    target: rbuild_pep517::BuildTarget,
}

/// Which projects are installed from the context, and where: the target and base of the
/// build's platforms (their install schemes are the same across the platforms of one base).
pub(crate) struct ProjectInstall {
    pub(crate) target: Target,
    pub(crate) facts: BaseFacts,
    /// The projects' directories (the context itself first, when it is packaged), each with
    /// how messages name it.
    pub(crate) dirs: Vec<(std::path::PathBuf, String)>,
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
        let base_dirs = self.base_dirs.clone();
        let opts = self.options;
        let writer = builder.store.writer()?;
        let _busy = crate::progress::busy(
            &*builder.progress,
            crate::progress::Activity::Compress,
            "all",
            "app",
        );
        let bytecode = self.bytecode.clone();
        let project = self
            .project
            .as_ref()
            .map(|p| (install_target(&p.target, &p.facts), p.dirs.clone()));
        let site_dirs: Vec<String> = self
            .project
            .as_ref()
            .map(|p| {
                vec![
                    p.target.scheme.purelib.clone(),
                    p.target.scheme.platlib.clone(),
                ]
            })
            .unwrap_or_default();
        let scratch_root = builder.store.root().join("tmp");
        let backend = match (&self.python, &self.project) {
            (Some(python), Some(p)) => Some(Backend {
                python: python.clone(),
                index: builder.index.clone(),
                store: builder.store.clone(),
                handle: tokio::runtime::Handle::current(),
                target: rbuild_pep517::BuildTarget {
                    markers: p.target.marker_env(),
                    tags: p.target.tags(),
                },
            }),
            _ => None,
        };
        let (blob, info, compiled, installed) = tokio::task::spawn_blocking(move || {
            write_app_layer(AppInputs {
                ctx: &ctx,
                dir: &dir,
                base_dirs: &base_dirs,
                opts: &opts,
                writer,
                bytecode: bytecode.as_deref(),
                project: project.as_ref(),
                site_dirs,
                scratch_root: &scratch_root,
                backend: backend.as_ref(),
            })
        })
        .await
        .map_err(other)??;
        if !installed.is_empty() {
            builder.progress.info(&format!(
                "installed in the app layer: {}",
                installed.join(", ")
            ));
        }
        if let Some((line, seconds)) = compiled {
            builder.progress.step("all", "bytecode", &line, seconds);
        }
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

/// Whether a context path is inside a `__pycache__` directory (or is one).
fn in_pycache(path: &str) -> bool {
    path.split('/').any(|c| c == "__pycache__")
}

/// A project's wheel: written natively from static metadata, else built by its backend with the
/// base's interpreter (a dynamic version from git: see `rbuild_pep517::scm`).
fn project_wheel(
    dir: &std::path::Path,
    what: &str,
    out: &std::path::Path,
    backend: Option<&Backend>,
) -> Result<rbuild_pep517::BuiltWheel, BuildError> {
    let why = match rbuild_pep517::native_project_wheel(dir, out)
        .map_err(|e| other(format!("{what}: {e}")))?
    {
        Ok(wheel) => return Ok(wheel),
        Err(why) => why,
    };
    let Some(b) = backend else {
        return Err(other(format!(
            "{what} needs its build backend ({why}), which runs with the base image's Python, and \
             this build has none (a scratch base); give it static metadata ([project] with name \
             and version)"
        )));
    };
    let env = rbuild_pep517::IndexBuildEnv::new(&b.index, &b.store, b.handle.clone());
    rbuild_pep517::project_wheel(
        Some(b.python.as_ref()),
        dir,
        out,
        &env,
        &b.target,
        &rbuild_pep517::BuildOptions::default(),
    )
    .map_err(|e| other(format!("{what}: {e}")))
}

/// What [`write_app_layer`] needs.
struct AppInputs<'a, W: std::io::Write> {
    ctx: &'a Context,
    dir: &'a str,
    base_dirs: &'a std::collections::BTreeMap<String, (u32, u32, u32)>,
    opts: &'a LayerOptions,
    writer: W,
    bytecode: Option<&'a Bytecode>,
    #[allow(clippy::type_complexity)]
    project: Option<&'a (
        (rbuild_wheel::InstallTarget, rbuild_wheel::BaseInfo),
        Vec<(std::path::PathBuf, String)>,
    )>,
    site_dirs: Vec<String>,
    scratch_root: &'a std::path::Path,
    backend: Option<&'a Backend>,
}

/// The app layer: the context under the app directory, the project's own wheel installed (when
/// packaged), and the bytecode of both (when shipped). Blocking.
#[allow(clippy::type_complexity)]
fn write_app_layer<W: std::io::Write>(
    a: AppInputs<'_, W>,
) -> Result<
    (
        W,
        rbuild_layer::LayerInfo,
        Option<(String, f64)>,
        Vec<String>,
    ),
    BuildError,
> {
    let mut w = LayerWriter::new(a.writer, a.opts)?;
    let mut prefix = String::new();
    for part in a.dir.split('/').filter(|p| !p.is_empty()) {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        match a.base_dirs.get(&prefix) {
            Some((mode, uid, gid)) => w.append_dir_owned(&prefix, *mode, *uid, *gid)?,
            None => w.append_dir(&prefix, 0o755)?,
        }
    }
    let keep = |p: &str| a.bytecode.is_none() || !in_pycache(p);
    write_context_entries(a.ctx, a.dir, &mut w, keep)?;
    std::fs::create_dir_all(a.scratch_root).map_err(other)?;
    let scratch = tempfile::Builder::new()
        .prefix("app-")
        .tempdir_in(a.scratch_root)
        .map_err(other)?;
    // The project's own wheel, installed like any wheel (its .py files spooled for bytecode).
    let mut spooled: Vec<Source> = Vec::new();
    let mut dirs_written: BTreeSet<String> = BTreeSet::new();
    let mut installed = Vec::new();
    if let Some(((target, base), dirs)) = a.project {
        let mut inputs = Vec::new();
        for (i, (dir, what)) in dirs.iter().enumerate() {
            let out = scratch.path().join(format!("wheel-{i}"));
            std::fs::create_dir_all(&out).map_err(other)?;
            let wheel = project_wheel(dir, what, &out, a.backend)?;
            installed.push(format!("{} {}", wheel.name, wheel.version));
            inputs.push(rbuild_wheel::WheelInput {
                path: wheel.path.clone(),
                filename: wheel.filename.clone(),
                expected_name: wheel.name.clone(),
                expected_version: wheel.version.clone(),
            });
        }
        let opts = rbuild_wheel::InstallOptions::default();
        if a.bytecode.is_some() {
            let mut spool =
                SpoolSink::new(&mut w, a.site_dirs.clone(), scratch.path().join("spool"))
                    .map_err(other)?;
            rbuild_wheel::install_wheels(&inputs, target, base, &opts, &mut spool)?;
            (spooled, dirs_written) = spool.finish();
        } else {
            rbuild_wheel::install_wheels(&inputs, target, base, &opts, &mut w)?;
        }
    }
    let Some(bc) = a.bytecode else {
        let (blob, info) = w.finish()?;
        return Ok((blob, info, None, installed));
    };
    let t = Instant::now();
    let prefix = a.dir.trim_matches('/');
    let mut sources: Vec<Source> = a
        .ctx
        .entries
        .iter()
        .filter(|e| {
            matches!(e.kind, EntryKind::File { .. })
                && e.path.ends_with(".py")
                && !in_pycache(&e.path)
        })
        .map(|e| Source {
            image_path: format!("/{prefix}/{}", e.path).replace("//", "/"),
            host_path: a.ctx.root.join(&e.path),
        })
        .collect();
    sources.extend(spooled);
    let out = bc.compile(&scratch.path().join("compile"), &sources)?;
    let written: BTreeSet<String> = a
        .ctx
        .entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Dir) && !in_pycache(&e.path))
        .map(|e| {
            format!("{prefix}/{}", e.path)
                .trim_start_matches('/')
                .to_string()
        })
        .chain(std::iter::once(prefix.to_string()))
        .chain(dirs_written)
        .collect();
    let bytes = append_pycs(&mut w, &out, &written, &|_, mode| (mode, (0, 0)), None)?;
    let (blob, info) = w.finish()?;
    Ok((
        blob,
        info,
        Some((summary(&out, bytes), elapsed(t))),
        installed,
    ))
}
