//! The pipeline: phases and concurrency only. Every platform is planned (base, target, wheels,
//! cache lookups) before anything is downloaded or built; then the wheels of every dependency layer
//! to build are fetched in one batch; then each platform's layers and image are made side by side.
//!
//! Layers, base first: the base image's layers, the dependency layers (every locked wheel installed
//! without Python, split under a budget by [`crate::layers::deps::partition`]: heavy wheels alone,
//! the rest in name-hash groups; each layer cached under its own key), the user layer (`/etc/passwd` and `/etc/group` with the app user, only when the
//! base lacks the uid) and the app layer (the filtered context under the app directory).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use rbuild_index::{IndexClient, WheelRequest};
use rbuild_layer::LayerOptions;
use rbuild_lock::{ChosenWheel, Lock};
use rbuild_oci::{
    Descriptor, Digest, Index, MediaType, Platform, RawManifest, Store, canonical_json,
};
use rbuild_python::target::Target;
use rbuild_registry::{Client, Reference};

use crate::BuildError;
use crate::BuildProgress;
use crate::NoBuildProgress;
use crate::PlatformFailure;
use crate::assemble::{ImageFormat, NewLayer, assemble};
use crate::error::other;
use crate::image::{BlobLocation, BuiltImage, BuiltLayer, LayerKind, LayerStatus, PlatformImage};
use crate::layers::Previous;
use crate::layers::app::{AppLayer, ProjectInstall};
use crate::layers::bytecode::Bytecode;
use crate::layers::deps::DepsLayer;
use crate::layers::deps::LABEL_SDISTS;
use crate::layers::deps::wheel_request;
use crate::layers::deps::{DepsGroup, DepsPart};
use crate::layers::stdlib::StdlibLayer;
use crate::layers::user::UserLayer;
use crate::plan::PlatformPlan;
use crate::plan::base::ResolvedBase;
use crate::plan::base::Tops;
use crate::plan::record::LABEL_TARGET;
use crate::plan::record::Recorded;
use crate::plan::record::RecordedWheels;
use crate::plan::record::record_plan;
use crate::plan::wheels::LockRead;
use crate::plan::wheels::WheelPlan;
use crate::progress::Warn;
use crate::progress::elapsed;
use crate::recipe::{self, ProjectFacts, Recipe};
use crate::request::BaseRef;
use crate::request::BuildRequest;
use crate::rootfs::BaseFacts;
use crate::runner::BasePython;
use crate::spec::ContextInfo;
use crate::spec::ImageSettings;
use crate::spec::choose_recipe;
use crate::spec::image_settings_on;

/// What a build produced.
#[derive(Clone, Debug)]
pub struct BuildOutput {
    /// The image.
    pub image: BuiltImage,
    /// The plan per platform.
    pub plans: Vec<PlatformPlan>,
    /// Platforms left out (with `skip_unsupported_platforms`) and why.
    pub skipped: Vec<(String, String)>,
}

/// Builds images. Cheap to clone; holds no global state.
#[derive(Clone)]
pub struct Builder {
    pub(crate) client: Client,
    pub(crate) index: IndexClient,
    pub(crate) store: Store,
    pub(crate) progress: Arc<dyn BuildProgress>,
    /// Small blobs the caller attaches to each build beyond the app layer and the configs (its
    /// SBOM, provenance, signature blobs), when it pushes to the first `--cache-from`: how many
    /// upload sessions to open ahead ([`Builder::set_attachment_blobs`]); `None`: none.
    attachment_blobs: Option<usize>,
}

/// The dependency layers of one platform ([`crate::layers::deps::partition`]), in image order.
pub(crate) struct DepsPlan {
    pub(crate) layers: Vec<DepsLayerPlan>,
}

/// One dependency layer of a platform: its share of the wheels, its cache key and, when found,
/// the cached layer.
pub(crate) struct DepsLayerPlan {
    pub(crate) key: String,
    pub(crate) group: DepsGroup,
    pub(crate) cached: Option<BuiltLayer>,
}

impl DepsPlan {
    /// The wheels of the layers that are not cached (to download and build).
    pub(crate) fn wheels_to_build(&self) -> impl Iterator<Item = &ChosenWheel> {
        self.layers
            .iter()
            .filter(|l| l.cached.is_none())
            .flat_map(|l| l.group.wheels.iter())
    }
}

/// One platform after phase 1 of a build (planned, nothing built yet).
pub(crate) struct PreparedPlatform {
    pub(crate) platform: Platform,
    pub(crate) base: ResolvedBase,
    pub(crate) prev: Previous,
    pub(crate) target: Target,
    pub(crate) facts: Option<BaseFacts>,
    pub(crate) lock: Option<Lock>,
    pub(crate) wheels: Vec<ChosenWheel>,
    /// Hash-pinned sdists built into wheels for packages with no fitting wheel.
    pub(crate) sdists: Vec<rbuild_lock::SdistBuild>,
    /// The `dev.rbuild.sdists` label (set once the dependency layer is known).
    pub(crate) sdist_label: Option<String>,
    /// The key under which `wheels` are recorded in the image ([`LABEL_WHEELS`]); `None` when the
    /// choice could change without the lock changing (a package without hashes, find-links).
    pub(crate) plan_key: Option<String>,
    /// `None`: no lockfile, no dependency layer.
    pub(crate) deps: Option<DepsPlan>,
    /// The image settings (recipe, env, user, ...).
    pub(crate) settings: ImageSettings,
}

/// A task whose handle aborts it when dropped: a build that is dropped (cancelled) stops its
/// platforms' tasks too instead of leaving them running detached.
pub(crate) struct ScopedTask<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for ScopedTask<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for ScopedTask<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Spawns `future` as a task of its own (so platforms run on several threads) that is aborted
/// when its handle is dropped.
pub(crate) fn spawn_scoped<F>(future: F) -> ScopedTask<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    ScopedTask(tokio::spawn(future))
}

/// How many platforms are worked on at once: one per CPU (installing and compressing a layer
/// keeps one busy), at least two (the rest of the work waits on the network), at most eight.
pub(crate) fn platform_concurrency() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(2, 8)
}

/// Per-platform results, in request order: all of them, or every failure (a single-platform
/// request fails with its own error, unwrapped).
pub(crate) fn collect_platforms<T>(
    platforms: &[String],
    results: Vec<Result<T, BuildError>>,
) -> Result<Vec<T>, BuildError> {
    let mut ok = Vec::new();
    let mut failures = Vec::new();
    for (platform, r) in platforms.iter().zip(results) {
        match r {
            Ok(t) => ok.push(t),
            Err(error) => failures.push(PlatformFailure {
                platform: platform.clone(),
                error,
            }),
        }
    }
    match failures.len() {
        0 => Ok(ok),
        1 if platforms.len() == 1 => Err(failures.remove(0).error),
        _ => Err(BuildError::Platforms(failures)),
    }
}

impl Builder {
    /// A builder using `client` for registries, `index` for wheels and `store` as the content store.
    pub fn new(client: Client, index: IndexClient, store: Store) -> Self {
        Builder {
            client,
            index,
            store,
            progress: Arc::new(NoBuildProgress),
            attachment_blobs: None,
        }
    }

    /// Declares that the caller pushes each build to its first `--cache-from` reference (the
    /// default when it pushes to `--to`), with `n` small blobs attached beyond the app layer and
    /// the configs (an SBOM document, a provenance statement, their empty config: 3). When the
    /// context changed since the last build for that destination, that many upload sessions
    /// more than the app layer and the configs need are opened in its repository while the
    /// build runs, so the push sends each new blob at once instead of first asking for a
    /// session (a round trip less). The push cancels the ones no blob used.
    pub fn set_attachment_blobs(&mut self, n: usize) {
        self.attachment_blobs = Some(n);
    }

    /// Reports progress to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn BuildProgress>) -> Self {
        self.progress = progress;
        self
    }

    /// The registry client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The content store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Builds the image for every requested platform.
    pub async fn build(&self, req: &BuildRequest) -> Result<BuildOutput, BuildError> {
        req.validate()?;
        if !req.context.is_dir() {
            return Err(other(format!(
                "the build context {} is not a directory; pass the project directory (the one with your lockfile)",
                req.context.display()
            )));
        }
        let project = self.load_project(req).await?;
        // Upload sessions for the new blobs, opened while the registry is read and the image
        // built, when the context changed since the last build for this destination.
        let fingerprint = self.open_sessions_if_changed(req, &project.context);
        // The compile worker of the last build of this base, started while the registry is
        // asked (when an app file's bytecode is not cached; checked against the base resolved).
        let standby = self.standby_for(req, &project);
        // 1. Every platform planned: a platform that cannot be built fails here, before any
        //    wheel is downloaded or layer written.
        let (mut prepared, skipped) = self.prepare_all(req, &project).await?;
        // The app directory the settings chose (the base's WorkingDir, the recipe's): one for
        // every platform, since the app layer is shared.
        let chosen;
        let req = match prepared.first().map(|p| p.settings.app_dir.clone()) {
            Some(dir) if dir != req.app_dir || !req.app_dir_explicit => {
                if let Some(p) = prepared.iter().find(|p| p.settings.app_dir != dir) {
                    return Err(other(format!(
                        "the platforms' bases declare different WorkingDirs ({dir} and {} on {}); pass --app-dir to choose one",
                        p.settings.app_dir, p.platform
                    )));
                }
                chosen = BuildRequest {
                    app_dir: dir,
                    ..req.clone()
                };
                &chosen
            }
            _ => req,
        };
        let locals = local_installs(req, &prepared)?;
        // 2. The wheels of every dependency layer to build, in one batch.
        self.download_shared(&prepared).await?;
        let present = previous_blobs(&prepared);
        let python = self.base_python_for(req, &prepared);
        let standby = match standby {
            Some(task) => task.await.ok().flatten(),
            None => None,
        };
        let bytecode = self.bytecode_for(req, python.as_ref(), standby);
        if let (Some(bc), BaseRef::Image(reference)) = (&bytecode, &req.base) {
            bc.remember(reference, &req.app_dir);
        }
        // 3. The app layer once, then each platform's layers and image.
        let mut base_dirs = std::collections::BTreeMap::new();
        if let Some(p) = prepared.first_mut()
            && p.base.reference.is_some()
        {
            let facts = self.facts_of(req, p).await?;
            let mut prefix = String::new();
            for part in req.app_dir.split('/').filter(|p| !p.is_empty()) {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                let mode = facts.dir_modes.get(&prefix).copied();
                let owner = facts.dir_owners.get(&prefix).copied();
                if let (Some(mode), owner) = (mode, owner)
                    && (mode != 0o755 || owner.is_some())
                {
                    let (uid, gid) = owner.unwrap_or((0, 0));
                    base_dirs.insert(prefix.clone(), (mode, uid, gid));
                }
            }
        }
        let app = AppLayer {
            context: project.context.clone(),
            app_dir: req.app_dir.clone(),
            base_dirs,
            options: layer_options(req),
            bytecode: bytecode.clone(),
            project: self
                .project_install(req, &project, &locals, &mut prepared)
                .await?,
            python: python.clone(),
        };
        let app_layer = self
            .layer(&app, &None, req.format, "all")
            .await?
            .expect("the app layer is always written");
        let (images, plans) = self
            .finish_all(
                req,
                prepared,
                app_layer,
                (&project, locals),
                (bytecode, python),
            )
            .await?;
        let index = (req.platforms.len() > 1).then(|| index_of(&images, req.format));
        let image = BuiltImage {
            images,
            index,
            present,
            attachments: Vec::new(),
        };
        self.store_metadata(&image).await?;
        if let Some((key, fingerprint)) = fingerprint {
            // Best effort: without it the next build only opens no sessions ahead.
            let _ = self.store.put_key(CONTEXT_NS, &key, fingerprint.as_bytes());
        }
        Ok(BuildOutput {
            image,
            plans,
            skipped,
        })
    }

    /// Which projects the app layer installs (the context itself when it is packaged, and the
    /// local projects its lock names), and where.
    async fn project_install(
        &self,
        req: &BuildRequest,
        project: &Project,
        locals: &[LocalInstall],
        prepared: &mut [PreparedPlatform],
    ) -> Result<Option<ProjectInstall>, BuildError> {
        let mut dirs = Vec::new();
        if project.meta.as_ref().is_some_and(|m| m.packaged) {
            dirs.push((req.context.clone(), "the project itself".to_string()));
        }
        dirs.extend(locals.iter().map(|l| (l.dir.clone(), l.describe())));
        if dirs.is_empty() {
            return Ok(None);
        }
        let Some(p) = prepared.first_mut() else {
            return Ok(None);
        };
        let facts = self.facts_of(req, p).await?;
        Ok(Some(ProjectInstall {
            target: p.target.clone(),
            facts,
            dirs,
        }))
    }

    /// The base image's interpreter for this build (bytecode, sdists), when the base is an
    /// image (a `scratch` base has none: its images carry no bytecode and build no sdist).
    /// Prepared lazily, at most once per build.
    fn base_python_for(
        &self,
        req: &BuildRequest,
        prepared: &[PreparedPlatform],
    ) -> Option<Arc<BasePython>> {
        let BaseRef::Image(reference) = &req.base else {
            return None;
        };
        let host = Platform::host();
        let p = prepared
            .iter()
            .find(|p| p.platform == host)
            .or(prepared.first())?;
        let v = &p.target.python_version;
        let host_image = (p.platform == host)
            .then(|| {
                p.base.image.manifest_digest.map(|d| {
                    (
                        d,
                        p.base.image.layers.clone(),
                        p.base.image.config.rootfs.diff_ids.clone(),
                    )
                })
            })
            .flatten();
        Some(Arc::new(BasePython::new(
            self.client.clone(),
            self.store.clone(),
            reference.clone(),
            p.target.interpreter.clone(),
            rbuild_runner::PyVersion {
                major: v.major as u8,
                minor: v.minor as u8,
            },
            host_image,
        )))
    }

    /// Bytecode compilation for this build, when asked for and the base has an interpreter.
    fn bytecode_for(
        &self,
        req: &BuildRequest,
        python: Option<&Arc<BasePython>>,
        standby: Option<(String, rbuild_bytecode::Standby)>,
    ) -> Option<Arc<Bytecode>> {
        if !req.compile_bytecode {
            return None;
        }
        Some(Arc::new(Bytecode::new(
            self.store.clone(),
            python?.clone(),
            standby,
        )))
    }

    /// Starts (on the blocking pool) the compile worker the last build of this base ran, when
    /// the build compiles bytecode and the context has a `.py` file not in the bytecode cache;
    /// see [`crate::layers::bytecode::start_standby`]. Dropping the task's result kills it.
    fn standby_for(
        &self,
        req: &BuildRequest,
        project: &Project,
    ) -> Option<tokio::task::JoinHandle<Option<(String, rbuild_bytecode::Standby)>>> {
        let BaseRef::Image(reference) = &req.base else {
            return None;
        };
        if !req.compile_bytecode {
            return None;
        }
        let (store, reference, ctx) = (
            self.store.clone(),
            reference.clone(),
            project.context.clone(),
        );
        Some(tokio::task::spawn_blocking(move || {
            crate::layers::bytecode::start_standby(&store, &reference, &ctx)
        }))
    }

    /// Opens upload sessions in the destination (the first `--cache-from`, by default the first
    /// `--to`) for the app layer, each platform's config and the caller's attachments, when the
    /// last build for it recorded a context fingerprint and this context's differs (the app
    /// changed: those blobs are new). Returns this context's fingerprint and where to record it
    /// once the build is done.
    fn open_sessions_if_changed(
        &self,
        req: &BuildRequest,
        ctx: &rbuild_layer::Context,
    ) -> Option<(String, String)> {
        let dst = req.cache_from.first()?;
        let key = crate::layers::cache_key(CONTEXT_NS, 1, &(dst.to_string(), req.platforms.len()));
        let fingerprint = context_fingerprint(ctx)?;
        let last = self.store.get_key(CONTEXT_NS, &key).ok().flatten();
        if let Some(extra) = self.attachment_blobs
            && last.is_some_and(|l| l != fingerprint.as_bytes())
        {
            let n = 1 + req.platforms.len().max(1) + extra;
            self.client.open_upload_sessions(dst, n);
        }
        Some((key, fingerprint))
    }

    /// The context (its ignore file applied), read once for every platform, and the facts the
    /// recipes and image settings need from it.
    async fn load_project(&self, req: &BuildRequest) -> Result<Arc<Project>, BuildError> {
        let (dir, defaults) = (req.context.clone(), req.default_ignores);
        let ctx = tokio::task::spawn_blocking(move || {
            rbuild_layer::load_context_with_defaults(&dir, defaults)
        })
        .await
        .map_err(other)??;
        for w in &ctx.warnings {
            if w.is_note() {
                self.progress.notice(&w.to_string());
            } else {
                self.progress.warning(&w.to_string());
            }
        }
        let facts = ProjectFacts::from_context(&ctx, Vec::new());
        if let Some(w) = unlocked_imports_warning(req, &facts) {
            self.progress.warning(&w);
        }
        Ok(Arc::new(Project {
            facts,
            info: ContextInfo::of(&ctx),
            recipes: recipe::load_recipes()?,
            meta: ProjectMeta::read(&req.context),
            context: Arc::new(ctx),
        }))
    }

    /// Phase 1 for every platform, concurrently (each platform a task of its own, so their CPU
    /// work runs on several threads). Unsupported platforms are left out when the request says so.
    async fn prepare_all(
        &self,
        req: &BuildRequest,
        project: &Arc<Project>,
    ) -> Result<(Vec<PreparedPlatform>, Vec<(String, String)>), BuildError> {
        let tops = Arc::new(Tops::default());
        let shared_req = Arc::new(req.clone());
        let results: Vec<Result<PreparedPlatform, BuildError>> =
            futures::stream::iter(req.platforms.iter().cloned())
                .map(|p| {
                    let (builder, req, tops, project) = (
                        self.clone(),
                        shared_req.clone(),
                        tops.clone(),
                        project.clone(),
                    );
                    spawn_scoped(async move {
                        builder.prepare_platform(&req, &p, &tops, &project).await
                    })
                })
                .buffered(platform_concurrency())
                .map(|joined| joined.map_err(other).and_then(|r| r))
                .collect()
                .await;
        let mut skipped = Vec::new();
        let mut failures = Vec::new();
        let mut prepared = Vec::new();
        for (platform, r) in req.platforms.iter().zip(results) {
            match r {
                Ok(p) => prepared.push(p),
                Err(error) => failures.push(PlatformFailure {
                    platform: platform.to_string(),
                    error,
                }),
            }
        }
        let multi = req.platforms.len() > 1;
        if multi
            && req.skip_unsupported_platforms
            && failures.iter().all(|f| f.error.is_unsupported_platform())
        {
            for f in failures.drain(..) {
                self.progress.info(&format!(
                    "{} left out of the index: {}",
                    f.platform, f.error
                ));
                skipped.push((f.platform, f.error.to_string()));
            }
            if prepared.is_empty() {
                return Err(other(format!(
                    "no platform could be built; every one is unsupported:\n  {}",
                    skipped
                        .iter()
                        .map(|(p, why)| format!("{p}: {}", why.replace('\n', "\n  ")))
                        .collect::<Vec<_>>()
                        .join("\n  ")
                )));
            }
        }
        if !failures.is_empty() {
            return Err(if multi {
                BuildError::Platforms(failures)
            } else {
                failures.remove(0).error
            });
        }
        Ok((prepared, skipped))
    }

    /// The wheels of every dependency layer to build, downloaded in one batch so a wheel that
    /// several platforms share (pure Python) is fetched once. (One platform downloads its own.)
    async fn download_shared(&self, prepared: &[PreparedPlatform]) -> Result<(), BuildError> {
        let to_build: Vec<&PreparedPlatform> = prepared
            .iter()
            .filter(|p| {
                p.deps
                    .as_ref()
                    .is_some_and(|d| d.wheels_to_build().next().is_some())
            })
            .collect();
        if to_build.len() < 2 {
            return Ok(());
        }
        let t1 = Instant::now();
        let requests: Vec<WheelRequest> = to_build
            .iter()
            .flat_map(|p| {
                p.deps
                    .iter()
                    .flat_map(|d| d.wheels_to_build())
                    .map(wheel_request)
            })
            .collect();
        let wanted = requests.len();
        let downloaded = self
            .index
            .download_all(requests, &self.store, &Warn(self.progress.clone()))
            .await?;
        let unique: BTreeMap<Digest, (bool, u64)> = downloaded
            .iter()
            .map(|d| (d.sha256, (d.fetched, d.size)))
            .collect();
        let fetched: Vec<u64> = unique
            .values()
            .filter(|(f, _)| *f)
            .map(|(_, size)| *size)
            .collect();
        self.progress.step(
            "all",
            "download",
            &format!(
                "{wanted} wheels for {} platforms: {} different files ({} downloaded, {})",
                to_build.len(),
                unique.len(),
                fetched.len(),
                crate::progress::human_size(fetched.iter().sum::<u64>()),
            ),
            elapsed(t1),
        );
        Ok(())
    }

    /// Phase 3 for every platform, concurrently (installing and compressing run on blocking
    /// threads, one per platform).
    async fn finish_all(
        &self,
        req: &BuildRequest,
        prepared: Vec<PreparedPlatform>,
        app_layer: BuiltLayer,
        (project, locals): (&Arc<Project>, Vec<LocalInstall>),
        (bytecode, python): (Option<Arc<Bytecode>>, Option<Arc<BasePython>>),
    ) -> Result<(Vec<PlatformImage>, Vec<PlatformPlan>), BuildError> {
        let names: Vec<String> = prepared.iter().map(|p| p.platform.to_string()).collect();
        let shared = Arc::new((
            req.clone(),
            app_layer,
            (project.clone(), locals),
            bytecode,
            python,
        ));
        let results: Vec<Result<(PlatformImage, PlatformPlan), BuildError>> =
            futures::stream::iter(prepared)
                .map(|p| {
                    let (builder, shared) = (self.clone(), shared.clone());
                    spawn_scoped(async move {
                        let (req, app_layer, (project, locals), bytecode, python) = &*shared;
                        builder
                            .finish_platform(
                                req,
                                p,
                                app_layer,
                                (project, locals),
                                (bytecode.as_ref(), python.as_ref()),
                            )
                            .await
                    })
                })
                .buffered(platform_concurrency())
                .map(|joined| joined.map_err(other).and_then(|r| r))
                .collect()
                .await;
        Ok(collect_platforms(&names, results)?.into_iter().unzip())
    }

    /// Keeps manifests and configs in the store too (for `inspect` and local sinks): written side
    /// by side on the blocking pool (each is synced to disk; one after the other they added about
    /// 2 ms to a warm two-platform build).
    async fn store_metadata(&self, image: &BuiltImage) -> Result<(), BuildError> {
        let metadata: Vec<Vec<u8>> = image
            .images
            .iter()
            .flat_map(|p| [p.manifest.bytes.clone(), p.config_bytes.clone()])
            .chain(image.index.iter().map(|i| i.bytes.clone()))
            .collect();
        futures::future::try_join_all(metadata.into_iter().map(|bytes| {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || store.put_bytes(&bytes))
        }))
        .await
        .map_err(other)?
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        Ok(())
    }

    /// Phase 1 of a build for one platform: the base, the target, the lock, the image settings
    /// (the recipe must fit before any index is asked), the wheels, and whether the dependency
    /// layer is already cached (locally or in a previous image).
    pub(crate) async fn prepare_platform(
        &self,
        req: &BuildRequest,
        platform: &Platform,
        tops: &Tops,
        project: &Project,
    ) -> Result<PreparedPlatform, BuildError> {
        let plat = platform.to_string();
        let t0 = Instant::now();
        // The base and the previous image are asked for at once (one round trip, not two).
        let previous = async {
            if req.cache_from.is_empty() {
                None
            } else {
                self.previous_image(req, platform, tops).await
            }
        };
        let (base, prev) = futures::join!(self.resolve_base(req, platform, tops), previous);
        let base = base?;
        self.progress.step(
            &plat,
            "resolve",
            &format!(
                "base {} ({})",
                base.image
                    .manifest_digest
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "scratch".into()),
                crate::progress::count(base.image.layers.len(), "layer", "layers")
            ),
            elapsed(t0),
        );
        let (target, mut facts) = self.target_for(req, platform, &base, &prev).await?;
        let read = self.read_lock_for(req, &target).await?;
        let base_defaults = crate::spec::BaseDefaults::of(
            &base.image.config,
            facts.as_ref().and_then(|f| f.passwd.as_deref()),
        );
        let settings = self.settings_for(req, &target, project, read.as_ref(), &base_defaults)?;
        // A shell (or another launcher) the entrypoint needs must be in the base: checked
        // before any wheel is downloaded.
        if !settings.needs.is_empty() && base.reference.is_some() {
            if facts.is_none() {
                facts = Some(self.base_facts(req, &base, platform).await?.1);
            }
            let f = facts.as_ref().expect("just read");
            crate::spec::check_programs(&settings.needs, |p| f.has_program(p))?;
        }
        let plan = self.wheels_for(req, &target, &base, &prev, read).await?;
        let deps = match &plan.lock_digest {
            None => None,
            Some(_) => {
                let layers = Self::deps_layers_plan(
                    req,
                    &plan.chosen,
                    &plan.sdists,
                    &target,
                    base.image.manifest_digest,
                )
                .into_iter()
                .map(|(key, group)| {
                    let cached =
                        self.cached_layer(LayerKind::Deps, &key, &prev, req.format, &plat)?;
                    Ok(DepsLayerPlan { key, group, cached })
                })
                .collect::<Result<Vec<_>, BuildError>>()?;
                Some(DepsPlan { layers })
            }
        };
        Ok(PreparedPlatform {
            platform: platform.clone(),
            base,
            prev,
            target,
            facts,
            lock: plan.lock,
            wheels: plan.chosen,
            sdists: plan.sdists,
            sdist_label: None,
            plan_key: plan.plan_key,
            deps,
            settings,
        })
    }

    /// The target: from the local store, else the previous image's record (same base and
    /// overrides), else read from the base layers (with the base facts).
    async fn target_for(
        &self,
        req: &BuildRequest,
        platform: &Platform,
        base: &ResolvedBase,
        prev: &Previous,
    ) -> Result<(Target, Option<BaseFacts>), BuildError> {
        let base_digest = base.image.manifest_digest;
        if let Some(d) = &base_digest
            && let Some((t, f)) = self.stored_base_facts(d, req)?
        {
            return Ok((t, Some(f)));
        }
        let overrides = Self::overrides_key(req);
        if let Some(rec) = prev
            .as_ref()
            .and_then(|(_, _, cfg)| {
                let label = cfg.config.as_ref()?.labels.as_ref()?.get(LABEL_TARGET)?;
                serde_json::from_str::<Recorded>(label).ok()
            })
            .filter(|r| {
                base.reference.is_some() && r.base_digest == base_digest && r.overrides == overrides
            })
        {
            self.progress
                .info("target taken from the previous image (base unchanged)");
            return Ok((rec.target, None));
        }
        let (t, f) = self.base_facts(req, base, platform).await?;
        Ok((t, Some(f)))
    }

    /// The image settings for this platform: the recipe chosen and checked against the locked
    /// packages (before any index is asked or wheel downloaded).
    fn settings_for(
        &self,
        req: &BuildRequest,
        target: &Target,
        project: &Project,
        read: Option<&LockRead>,
        base: &crate::spec::BaseDefaults,
    ) -> Result<ImageSettings, BuildError> {
        let facts = ProjectFacts {
            packages: read
                .map(|r| {
                    r.lock
                        .packages
                        .iter()
                        .map(|p| rbuild_python::normalize_name(&p.name))
                        .collect()
                })
                .unwrap_or_default(),
            ..project.facts.clone()
        };
        let (recipe, warning) = choose_recipe(req, &project.recipes, &facts)?;
        if let Some(w) = warning {
            self.progress.warning(&w);
        }
        let settings = image_settings_on(req, recipe, target, &facts, &project.info, base)?;
        for note in &settings.notes {
            self.progress.info(note);
        }
        Ok(settings)
    }

    /// The wheels: the previous image's choice stands in for index listings the store lacks when
    /// it was made for the same lock and target and its layer is found; else the index is asked.
    /// Fails when a locked package has no wheel for the target.
    async fn wheels_for(
        &self,
        req: &BuildRequest,
        target: &Target,
        base: &ResolvedBase,
        prev: &Previous,
        read: Option<LockRead>,
    ) -> Result<WheelPlan, BuildError> {
        let Some(read) = read else {
            return Ok(WheelPlan::none());
        };
        let recorded = prev
            .as_ref()
            .and_then(|(_, _, cfg)| RecordedWheels::from_config(cfg));
        let mut plan = self.choose_wheels(&read, recorded.as_ref()).await?;
        if plan.from_record {
            // The record only names the wheels (no URLs): it serves when it finds every
            // dependency layer. If not, a layer is built, and the index is asked where the files
            // are.
            let layers = Self::deps_layers_plan(
                req,
                &plan.chosen,
                &plan.sdists,
                target,
                base.image.manifest_digest,
            );
            let mut all_found = true;
            for (key, _) in &layers {
                if Self::remote_layer(prev, key).is_none() && self.local_layer(key, true)?.is_none()
                {
                    all_found = false;
                    break;
                }
            }
            if !all_found {
                plan = self.choose_wheels(&read, None).await?;
            }
        }
        let (sdists, missing) = crate::plan::sdists_for_base(req, plan.sdists, plan.missing);
        (plan.sdists, plan.missing) = (sdists, missing);
        if !plan.missing.is_empty() {
            return Err(BuildError::NoWheels {
                platform: target.platform.to_string(),
                missing: plan.missing,
            });
        }
        Ok(plan)
    }

    /// Phase 3 of a build for one platform: the dependency layer (unless cached), the user layer,
    /// the config and the manifest.
    pub(crate) async fn finish_platform(
        &self,
        req: &BuildRequest,
        mut p: PreparedPlatform,
        app_layer: &BuiltLayer,
        (project, locals): (&Project, &[LocalInstall]),
        (bytecode, python): (Option<&Arc<Bytecode>>, Option<&Arc<BasePython>>),
    ) -> Result<(PlatformImage, PlatformPlan), BuildError> {
        let plat = p.platform.to_string();
        let mut layers: Vec<(BuiltLayer, String)> = Vec::new();
        if let (Some(bytecode), Some(python)) = (bytecode, python)
            && let Some(l) = self.stdlib_layer(req, &p, bytecode, python).await?
        {
            layers.push((l, crate::layers::stdlib::HISTORY.to_string()));
        }
        if let Some(DepsPlan { layers: plans }) = p.deps.take() {
            let facts = if plans.iter().any(|l| l.cached.is_none()) {
                Some(self.facts_of(req, &mut p).await?)
            } else {
                None
            };
            let count = plans.len();
            let (prev, target, plat) = (&p.prev, &p.target, &plat);
            // The layers to build, side by side (each installs and compresses on a blocking
            // thread); cached ones are taken as they are.
            let to_build: Vec<DepsLayer> = plans
                .iter()
                .filter(|l| l.cached.is_none())
                .map(|l| DepsLayer {
                    key: l.key.clone(),
                    part: l.group.part.clone(),
                    wheels: l.group.wheels.clone(),
                    sdists: l.group.sdists.clone(),
                    python: python.cloned(),
                    target: target.clone(),
                    facts: facts.clone().expect("read when a layer is built"),
                    platform: plat.clone(),
                    strict: req.strict,
                    options: layer_options(req),
                    bytecode: bytecode.cloned(),
                })
                .collect();
            let mut futures = Vec::new();
            for deps in &to_build {
                futures.push(self.layer(deps, prev, req.format, plat));
            }
            let mut new_layers = futures::stream::iter(futures)
                .buffered(deps_build_concurrency())
                .collect::<Vec<_>>()
                .await
                .into_iter();
            let mut built = Vec::new();
            for l in &plans {
                built.push(match &l.cached {
                    Some(layer) => layer.clone(),
                    None => new_layers
                        .next()
                        .expect("one result per layer built")?
                        .expect("a dependency layer is always written"),
                });
            }
            let prev_label = p
                .prev
                .as_ref()
                .and_then(|(_, _, cfg)| cfg.config.as_ref()?.labels.as_ref()?.get(LABEL_SDISTS));
            let with_sdists: Vec<(&str, &[rbuild_lock::SdistBuild])> = plans
                .iter()
                .map(|l| (l.key.as_str(), l.group.sdists.as_slice()))
                .collect();
            p.sdist_label = self.sdist_label(&with_sdists, prev_label)?;
            if let Some(lock) = &p.lock {
                let keys: Vec<&str> = plans.iter().map(|l| l.key.as_str()).collect();
                let locals: Vec<&ProjectMeta> = locals.iter().map(|l| &l.meta).collect();
                let projects = (project.meta.as_ref(), locals.as_slice());
                self.check_lock_closure(req, &keys, lock, &p.target, projects)?;
            }
            for (i, (plan, layer)) in plans.iter().zip(built).enumerate() {
                layers.push((layer, deps_history(&p, &plan.group, i, count)));
            }
        }
        let (uid, gid) = (p.settings.uid, p.settings.gid);
        if p.base.reference.is_some() && uid != 0 && !p.settings.base_user {
            let options = layer_options(req);
            let home = p.settings.home.clone();
            let key = UserLayer::key_for(
                p.base.image.manifest_digest,
                uid,
                gid,
                home.as_deref().unwrap_or(&req.app_dir),
                home.is_some(),
                &options,
            );
            let user = match self.cached_layer(LayerKind::User, &key, &p.prev, req.format, &plat)? {
                Some(l) => Some(l),
                None => {
                    let user = UserLayer {
                        key,
                        facts: self.facts_of(req, &mut p).await?,
                        uid,
                        gid,
                        home: home.clone().unwrap_or_else(|| req.app_dir.clone()),
                        create_home: home.is_some(),
                        options,
                    };
                    self.layer(&user, &p.prev, req.format, &plat).await?
                }
            };
            if let Some(l) = user {
                layers.push((
                    l,
                    format!("rbuild: add user {uid}:{gid} to /etc/passwd and /etc/group"),
                ));
            }
        }
        let mut app = app_layer.clone();
        app.descriptor.annotations = None;
        layers.push((
            app,
            format!("rbuild: copy the build context to {}", req.app_dir),
        ));
        self.assemble_platform(req, p, layers)
    }

    /// The bytecode layer for the base's standard library ([`crate::layers::stdlib`]), when the
    /// base is an image whose standard library lacks it.
    async fn stdlib_layer(
        &self,
        req: &BuildRequest,
        p: &PreparedPlatform,
        bytecode: &Arc<Bytecode>,
        python: &Arc<BasePython>,
    ) -> Result<Option<BuiltLayer>, BuildError> {
        let (Some(reference), Some(digest)) = (&p.base.reference, p.base.image.manifest_digest)
        else {
            return Ok(None);
        };
        if !req.ships_bytecode() {
            return Ok(None);
        }
        let plat = p.platform.to_string();
        let options = layer_options(req);
        let key = StdlibLayer::key_for(digest, &p.target.interpreter, &options);
        let v = p.target.python_version;
        let layer = StdlibLayer {
            key,
            reference: reference.clone(),
            base_digest: digest,
            layers: p.base.image.layers.clone(),
            diff_ids: p.base.image.config.rootfs.diff_ids.clone(),
            cache_tag: format!("cpython-{}{}", v.major, v.minor),
            python: python.clone(),
            bytecode: bytecode.clone(),
            options,
            platform: plat.clone(),
        };
        self.layer(&layer, &p.prev, req.format, &plat).await
    }

    /// The base facts of a prepared platform, read from the base layers when the target came
    /// from elsewhere (the previous image's record).
    async fn facts_of(
        &self,
        req: &BuildRequest,
        p: &mut PreparedPlatform,
    ) -> Result<BaseFacts, BuildError> {
        if p.facts.is_none() {
            p.facts = Some(self.base_facts(req, &p.base, &p.platform).await?.1);
        }
        Ok(p.facts.clone().expect("just set"))
    }

    /// The config and manifest of one platform, with the labels recording the plan.
    fn assemble_platform(
        &self,
        req: &BuildRequest,
        p: PreparedPlatform,
        added: Vec<(BuiltLayer, String)>,
    ) -> Result<(PlatformImage, PlatformPlan), BuildError> {
        let mut spec = p.settings.spec.clone();
        record_plan(
            &mut spec.labels,
            &Recorded {
                base_digest: p.base.image.manifest_digest,
                overrides: Self::overrides_key(req),
                target: p.target.clone(),
            },
            p.plan_key.as_deref(),
            &p.wheels,
        )?;
        if let Some(l) = &p.sdist_label {
            spec.labels.insert(LABEL_SDISTS.into(), l.clone());
        }
        let new_layers: Vec<NewLayer> = added
            .iter()
            .map(|(l, history)| NewLayer {
                descriptor: l.descriptor.clone(),
                diff_id: l.diff_id,
                created_by: history.clone(),
            })
            .collect();
        let assembled = assemble(&p.base.image, &new_layers, &spec, req.format)?;
        let mut layers = base_layers(&p.base);
        layers.extend(added.into_iter().map(|(l, _)| l));
        // Media types as assembled (Docker/OCI conversion).
        for (l, d) in layers.iter_mut().zip(assembled.manifest.layers.iter()) {
            l.descriptor = d.clone();
        }
        let manifest_type = match req.format {
            ImageFormat::Oci => MediaType::OCI_MANIFEST,
            ImageFormat::Docker => MediaType::DOCKER_MANIFEST,
        };
        let manifest = RawManifest::new(assembled.manifest_bytes.clone(), Some(manifest_type));
        let mut image_platform = Platform::new(
            &assembled.config.os,
            &assembled.config.architecture,
            assembled.config.variant.as_deref(),
        );
        image_platform.os_version = assembled.config.os_version.clone();
        let image = PlatformImage {
            platform: image_platform,
            manifest,
            config: assembled.config,
            config_bytes: assembled.config_bytes,
            layers,
        };
        let plan = PlatformPlan {
            base_defaults: crate::spec::BaseDefaults::of(
                &p.base.image.config,
                p.facts.as_ref().and_then(|f| f.passwd.as_deref()),
            ),
            platform: p.platform.to_string(),
            base_digest: p.base.image.manifest_digest.map(|d| d.to_string()),
            target: p.target,
            lockfile: p.lock.as_ref().map(|l| l.path.clone()),
            notes: p.lock.map(|l| l.notes).unwrap_or_default(),
            packages: p.wheels,
            sdists: p.sdists,
            missing: Vec::new(),
        };
        Ok((image, plan))
    }
}

/// What the pipeline reads from the context once for every platform.
pub(crate) struct Project {
    pub(crate) context: Arc<rbuild_layer::Context>,
    /// Sources and files for the recipes (no packages: those are per platform).
    pub(crate) facts: ProjectFacts,
    pub(crate) info: ContextInfo,
    pub(crate) recipes: BTreeMap<String, Recipe>,
    /// The context's `pyproject.toml` `[project]`, read once.
    pub(crate) meta: Option<ProjectMeta>,
}

/// What a build needs of the context's `pyproject.toml` `[project]` table.
pub(crate) struct ProjectMeta {
    /// Its name, version, dependencies (optional ones marked with their `extra`) and extras, as
    /// the closure check reads an installed distribution.
    pub(crate) requires: rbuild_python::closure::DistRequirements,
    /// Whether it is installed itself (`[build-system]`, or uv's `tool.uv.package = true`): uv
    /// and poetry install those; a project without a build system is "virtual".
    pub(crate) packaged: bool,
}

impl ProjectMeta {
    /// `[project]` of `dir/pyproject.toml`, when there is one with a name.
    pub(crate) fn read(dir: &std::path::Path) -> Option<ProjectMeta> {
        let text = std::fs::read_to_string(dir.join("pyproject.toml")).ok()?;
        let doc: toml::Table = text.parse().ok()?;
        let project = doc.get("project")?.as_table()?;
        let strings = |v: Option<&toml::Value>| -> Vec<String> {
            v.and_then(toml::Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut requires_dist = strings(project.get("dependencies"));
        let mut provides_extra = Vec::new();
        if let Some(optional) = project
            .get("optional-dependencies")
            .and_then(|o| o.as_table())
        {
            for (extra, reqs) in optional {
                provides_extra.push(extra.clone());
                for r in strings(Some(reqs)) {
                    requires_dist.push(match r.split_once(';') {
                        Some((req, marker)) => {
                            format!("{req}; ({}) and extra == \"{extra}\"", marker.trim())
                        }
                        None => format!("{r}; extra == \"{extra}\""),
                    });
                }
            }
        }
        let uv_package = doc
            .get("tool")
            .and_then(|t| t.get("uv"))
            .and_then(|t| t.get("package"))
            .and_then(toml::Value::as_bool);
        Some(ProjectMeta {
            requires: rbuild_python::closure::DistRequirements {
                name: project.get("name")?.as_str()?.to_string(),
                version: project
                    .get("version")
                    .and_then(toml::Value::as_str)
                    .unwrap_or("(dynamic version)")
                    .to_string(),
                requires_dist,
                provides_extra,
            },
            packaged: uv_package.unwrap_or_else(|| doc.contains_key("build-system")),
        })
    }
}

/// A project the lock installs from a directory of the context (a uv workspace member, a path
/// dependency): built from its source into the app layer, like the project itself.
pub(crate) struct LocalInstall {
    /// Its directory (inside the context).
    pub(crate) dir: std::path::PathBuf,
    /// The directory as the lock writes it.
    pub(crate) path: String,
    /// Its `[project]` (name and requirements for the closure check).
    pub(crate) meta: ProjectMeta,
}

impl LocalInstall {
    /// How messages name it: "`mylib` (packages/mylib)".
    pub(crate) fn describe(&self) -> String {
        format!("`{}` ({})", self.meta.requires.name, self.path)
    }
}

/// The local projects of the build's lock, each checked to be a project directory inside the
/// context: the image is built from the context only, as `docker build` is.
fn local_installs(
    req: &BuildRequest,
    prepared: &[PreparedPlatform],
) -> Result<Vec<LocalInstall>, BuildError> {
    let Some(lock) = prepared.iter().find_map(|p| p.lock.as_ref()) else {
        return Ok(Vec::new());
    };
    if lock.local_projects.is_empty() {
        return Ok(Vec::new());
    }
    let root = req.context.canonicalize().map_err(other)?;
    let lock_dir = lock.path.parent().unwrap_or(&req.context);
    let mut out = Vec::new();
    for l in &lock.local_projects {
        let what = format!(
            "`{}` (a workspace member or path dependency in {}, at {})",
            l.name,
            lock.path.display(),
            l.path
        );
        let dir = lock_dir
            .join(&l.path)
            .canonicalize()
            .map_err(|e| other(format!("{what}: its directory cannot be read: {e}")))?;
        if !dir.starts_with(&root) {
            return Err(other(format!(
                "{what} is outside the build context {}: rbuild builds the image from the context \
                 only; move the project inside it (or build from a directory that contains both), \
                 or publish it to an index and lock it from there",
                req.context.display()
            )));
        }
        let meta = ProjectMeta::read(&dir).ok_or_else(|| {
            other(format!(
                "{what}: {} has no [project] table with a name; give it PEP 621 metadata",
                dir.join("pyproject.toml").display()
            ))
        })?;
        out.push(LocalInstall {
            dir,
            path: l.path.clone(),
            meta,
        });
    }
    Ok(out)
}

fn layer_options(req: &BuildRequest) -> LayerOptions {
    LayerOptions {
        compression: req.compression,
        mtime: req.epoch,
    }
}

/// The history line of dependency layer `index` of `count`: how many wheels it installs from
/// which lockfile and, with several layers, which part it holds.
fn deps_history(p: &PreparedPlatform, group: &DepsGroup, index: usize, count: usize) -> String {
    let lockfile = p
        .lock
        .as_ref()
        .map(|l| {
            l.path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string()
        })
        .unwrap_or_default();
    match &group.part {
        DepsPart::All => format!(
            "rbuild: install {} locked wheels from {lockfile}",
            group.wheels.len()
        ),
        part => format!(
            "rbuild: install {} from {lockfile} (dependency layer {}/{count}: {part})",
            crate::progress::count(
                group.wheels.len() + group.sdists.len(),
                "locked wheel",
                "locked wheels"
            ),
            index + 1
        ),
    }
}

/// How many dependency layers of one platform are built at once: one per CPU, at most four.
fn deps_build_concurrency() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

/// The base image's layers, where their bytes are.
fn base_layers(base: &ResolvedBase) -> Vec<BuiltLayer> {
    base.image
        .layers
        .iter()
        .zip(base.image.config.rootfs.diff_ids.iter())
        .map(|(d, diff)| BuiltLayer {
            descriptor: d.clone(),
            diff_id: *diff,
            kind: LayerKind::Base,
            status: LayerStatus::Base,
            location: match &base.reference {
                Some(r) => BlobLocation::Remote(r.clone()),
                None => BlobLocation::Store,
            },
        })
        .collect()
}

/// What the previous images' manifests name is in their repositories (no HEAD needed).
fn previous_blobs(prepared: &[PreparedPlatform]) -> Vec<(Reference, Digest)> {
    prepared
        .iter()
        .filter_map(|p| p.prev.as_ref())
        .flat_map(|(r, m, _)| {
            m.layers
                .iter()
                .map(|l| l.digest)
                .chain(std::iter::once(m.config.digest))
                .map(move |d| (r.clone(), d))
        })
        .collect()
}

/// The index over the platform images (several platforms asked for: an index, even when only
/// one was left, so the shape users asked for stays stable).
fn index_of(images: &[PlatformImage], format: ImageFormat) -> RawManifest {
    let (index_type, manifest_type) = match format {
        ImageFormat::Oci => (MediaType::OCI_INDEX, MediaType::OCI_MANIFEST),
        ImageFormat::Docker => (MediaType::DOCKER_MANIFEST_LIST, MediaType::DOCKER_MANIFEST),
    };
    let idx = Index {
        schema_version: 2,
        media_type: Some(MediaType::from(index_type)),
        artifact_type: None,
        manifests: images
            .iter()
            .map(|p| {
                let mut d = Descriptor::new(
                    manifest_type,
                    p.manifest.digest,
                    p.manifest.bytes.len() as u64,
                );
                d.platform = Some(p.platform.clone());
                d
            })
            .collect(),
        subject: None,
        annotations: None,
    };
    let bytes = canonical_json(&idx).expect("index serializes");
    RawManifest::new(bytes, Some(index_type))
}

/// With no lockfile, the third-party modules the code imports would be missing from the image
/// unless the base has them: a warning naming each one (`None` when there is a lock or no such
/// import).
fn unlocked_imports_warning(req: &BuildRequest, facts: &ProjectFacts) -> Option<String> {
    if req.lock.is_some() || rbuild_lock::detect_lockfile(&req.context).is_ok() {
        return None;
    }
    let sources: std::collections::BTreeMap<&str, &str> = facts
        .sources
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let files = facts
        .files
        .iter()
        .map(|f| (f.as_str(), sources.get(f.as_str()).map(|c| c.as_bytes())));
    let imports = rbuild_python::imports::third_party_imports(files);
    if imports.is_empty() {
        return None;
    }
    let list: Vec<String> = imports
        .iter()
        .map(|i| format!("{} ({})", i.module, i.first_seen))
        .collect();
    Some(format!(
        "the build context {} has no lockfile, but its code imports {}: the image has them only \
         if the base image does; add a lockfile (`uv lock`, `uv pip compile requirements.in -o requirements.txt \
         --generate-hashes`) or pass --lock FILE",
        req.context.display(),
        list.join(", ")
    ))
}

/// Store records: the context fingerprint of the last build for a destination
/// ([`Builder::set_attachment_blobs`]).
const CONTEXT_NS: &str = "context-fingerprint";

/// What changes when a file of the context changes, cheaply (paths, kinds, sizes, executable
/// bits, modification times, link targets; no contents): a changed fingerprint means the app layer
/// is most likely new. `None` when a file cannot be examined.
fn context_fingerprint(ctx: &rbuild_layer::Context) -> Option<String> {
    use std::fmt::Write as _;
    use std::os::unix::fs::MetadataExt;
    let mut text = String::new();
    for e in &ctx.entries {
        let _ = write!(text, "{}\0", e.path);
        match &e.kind {
            rbuild_layer::EntryKind::Dir => text.push_str("d\0"),
            rbuild_layer::EntryKind::Symlink { target } => {
                let _ = write!(text, "l{target}\0");
            }
            rbuild_layer::EntryKind::File { size, executable } => {
                let m = std::fs::symlink_metadata(ctx.root.join(&e.path)).ok()?;
                let _ = write!(
                    text,
                    "f{size} {executable} {} {}\0",
                    m.mtime(),
                    m.mtime_nsec()
                );
            }
        }
    }
    Some(Digest::of(text.as_bytes()).hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MissingWheel;

    /// The fingerprint that decides whether upload sessions are opened ahead: the same for an
    /// untouched context (also when copied with its times, as a restored CI cache is), another
    /// when a file's contents, size or time change, or a file is added.
    #[test]
    fn the_context_fingerprint_follows_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = |ctx: &std::path::Path| {
            context_fingerprint(&rbuild_layer::load_context(ctx).unwrap()).unwrap()
        };
        std::fs::create_dir(dir.path().join("app")).unwrap();
        std::fs::write(dir.path().join("app/main.py"), "print(1)\n").unwrap();
        let first = f(dir.path());
        assert_eq!(f(dir.path()), first, "nothing changed");
        let main = std::fs::File::options()
            .write(true)
            .open(dir.path().join("app/main.py"))
            .unwrap();
        main.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(7))
            .unwrap();
        let touched = f(dir.path());
        assert_ne!(touched, first, "a new modification time");
        std::fs::write(dir.path().join("app/main.py"), "print(22)\n").unwrap();
        main.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(7))
            .unwrap();
        assert_ne!(f(dir.path()), touched, "another size, same time");
        std::fs::write(dir.path().join("app/extra.py"), "").unwrap();
        let added = f(dir.path());
        assert_ne!(added, touched);
        assert_eq!(f(dir.path()), added);
    }

    fn no_wheel(platform: &str, name: &str) -> BuildError {
        BuildError::NoWheels {
            platform: platform.into(),
            missing: vec![MissingWheel {
                name: name.into(),
                version: "1.0".into(),
                reason: format!(
                    "no wheel of {name} 1.0 fits the target cp311-cp311-manylinux_2_36_aarch64"
                ),
            }],
        }
    }

    #[test]
    fn only_missing_wheels_and_missing_base_platforms_are_unsupported() {
        assert!(no_wheel("linux/arm64", "psutil").is_unsupported_platform());
        let base = BuildError::Registry(rbuild_registry::Error::Platform {
            reference: "python:3.11".into(),
            details: rbuild_oci::NoSuchPlatform {
                wanted: "linux/s390x".into(),
                available: "linux/amd64, linux/arm64/v8".into(),
            },
        });
        assert!(base.is_unsupported_platform());
        assert!(!other("connection refused").is_unsupported_platform());
    }

    #[test]
    fn one_platform_failing_among_several_names_it_and_the_way_out() {
        let names = vec!["linux/amd64".to_string(), "linux/arm64".to_string()];
        let err = collect_platforms(&names, vec![Ok(()), Err(no_wheel("linux/arm64", "psutil"))])
            .unwrap_err();
        let msg = err.to_string();
        assert_eq!(
            msg,
            "a locked package has no usable wheel for linux/arm64: no wheel of psutil 1.0 fits the \
             target cp311-cp311-manylinux_2_36_aarch64; or, to build the other platforms without \
             linux/arm64, pass --skip-unsupported-platforms"
        );
        // Another kind of failure is not something to skip: no such advice.
        let err =
            collect_platforms(&names, vec![Err(other("index unreachable")), Ok(())]).unwrap_err();
        assert_eq!(err.to_string(), "linux/amd64: index unreachable");
    }

    #[tokio::test]
    async fn a_dropped_platform_task_is_aborted() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = spawn_scoped(async move {
            let _keep = tx;
            std::future::pending::<()>().await
        });
        drop(task);
        // Aborting drops the task's future and with it the sender: the receiver sees it closed.
        let closed = tokio::time::timeout(std::time::Duration::from_secs(10), rx)
            .await
            .expect("the task was aborted");
        assert!(closed.is_err());
        // A task that is awaited gives its result.
        assert_eq!(spawn_scoped(async { 7 }).await.unwrap(), 7);
    }

    #[test]
    fn every_failing_platform_is_listed() {
        let names = vec!["linux/amd64".to_string(), "linux/arm64".to_string()];
        let err = collect_platforms::<()>(
            &names,
            vec![
                Err(other("index unreachable")),
                Err(no_wheel("linux/arm64", "psutil")),
            ],
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("2 platforms failed:\n  linux/amd64: index unreachable\n  "),
            "{msg}"
        );
        assert!(
            msg.contains("no usable wheel for linux/arm64: no wheel of psutil"),
            "{msg}"
        );
    }

    #[test]
    fn a_single_platform_request_fails_with_its_own_error() {
        let names = vec!["linux/arm64".to_string()];
        let err = collect_platforms::<()>(&names, vec![Err(no_wheel("linux/arm64", "psutil"))])
            .unwrap_err();
        assert!(matches!(err, BuildError::NoWheels { .. }));
        assert!(!err.to_string().contains("--skip-unsupported-platforms"));
    }

    #[test]
    fn several_missing_wheels_are_each_on_a_line() {
        let err = BuildError::NoWheels {
            platform: "linux/arm64".into(),
            missing: ["a", "b"]
                .iter()
                .map(|n| MissingWheel {
                    name: (*n).into(),
                    version: "1".into(),
                    reason: format!("no wheel of {n} 1"),
                })
                .collect(),
        };
        assert_eq!(
            err.to_string(),
            "2 locked packages have no usable wheel for linux/arm64:\n  no wheel of a 1\n  no wheel of b 1"
        );
    }
}
