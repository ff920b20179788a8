//! The pipeline: phases and concurrency only. Every platform is planned (base, target, wheels,
//! cache lookups) before anything is downloaded or built; then the wheels of every dependency layer
//! to build are fetched in one batch; then each platform's layers and image are made side by side.
//!
//! Layers, base first: the base image's layers, the dependency layer (every locked wheel installed
//! without Python), the user layer (`/etc/passwd` and `/etc/group` with the app user, only when the
//! base lacks the uid) and the app layer (the filtered context under the app directory).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use rbuild_index::{IndexClient, WheelRequest};
use rbuild_layer::LayerOptions;
use rbuild_lock::{ChosenWheel, Lock};
use rbuild_oci::{
    Descriptor, Digest, ImageConfig, Index, ManifestKind, MediaType, Platform, RawManifest, Store,
    canonical_json,
};
use rbuild_python::target::Target;
use rbuild_registry::{Client, Reference};

use crate::BuildError;
use crate::BuildProgress;
use crate::NoBuildProgress;
use crate::PlatformFailure;
use crate::assemble::{ImageFormat, ImageSpec, NewLayer, assemble};
use crate::error::other;
use crate::image::{BlobLocation, BuiltImage, BuiltLayer, LayerKind, LayerStatus, PlatformImage};
use crate::layers::LAYER_FORMAT_VERSION;
use crate::layers::LayerRecord;
use crate::layers::deps::wheel_request;
use crate::layers::user::parse_user;
use crate::plan::PlatformPlan;
use crate::plan::base::ResolvedBase;
use crate::plan::base::Tops;
use crate::plan::record::LABEL_TARGET;
use crate::plan::record::LABEL_WHEELS;
use crate::plan::record::Recorded;
use crate::plan::record::RecordedWheels;
use crate::plan::wheels::WheelPlan;
use crate::progress::Warn;
use crate::progress::elapsed;
use crate::recipe::{self, ProjectFacts, Recipe};
use crate::request::BuildRequest;
use crate::rootfs::BaseFacts;
use crate::spec::git_info;

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
}

/// The dependency layer of one platform: its cache key and, when found, the cached layer.
pub(crate) struct DepsPlan {
    pub(crate) key: String,
    pub(crate) cached: Option<BuiltLayer>,
}

/// One platform after phase 1 of a build (planned, nothing built yet).
pub(crate) struct PreparedPlatform {
    pub(crate) platform: Platform,
    pub(crate) base: ResolvedBase,
    pub(crate) prev: Option<(Reference, rbuild_oci::Manifest, ImageConfig)>,
    pub(crate) target: Target,
    pub(crate) facts: Option<BaseFacts>,
    pub(crate) lock: Option<Lock>,
    pub(crate) wheels: Vec<ChosenWheel>,
    /// The key under which `wheels` are recorded in the image ([`LABEL_WHEELS`]); `None` when the
    /// choice could change without the lock changing (a package without hashes, find-links).
    pub(crate) plan_key: Option<String>,
    /// `None`: no lockfile, no dependency layer.
    pub(crate) deps: Option<DepsPlan>,
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
        }
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
        // The app layer is the same for every platform: build it once.
        let t0 = Instant::now();
        let ctx = {
            let dir = req.context.clone();
            tokio::task::spawn_blocking(move || rbuild_layer::load_context(&dir))
                .await
                .map_err(other)??
        };
        for w in &ctx.warnings {
            self.progress.warning(&w.to_string());
        }
        let recipes = recipe::load_recipes()?;
        let app_layer = {
            let store = self.store.clone();
            let ctx2 = ctx.clone();
            let app_dir = req.app_dir.trim_matches('/').to_string();
            let opts = LayerOptions {
                compression: req.compression,
                mtime: req.epoch,
            };
            let writer = store.writer()?;
            let (blob, info) = tokio::task::spawn_blocking(move || {
                rbuild_layer::write_context_layer(&ctx2, &app_dir, &opts, writer)
            })
            .await
            .map_err(other)??;
            self.finish_layer(None, blob, &info)?
        };
        self.progress.step(
            "all",
            "app",
            &format!(
                "{} entries under {} → {} ({:.1} kB)",
                ctx.entries.len(),
                req.app_dir,
                &app_layer.digest.to_string()[..19],
                app_layer.size as f64 / 1e3
            ),
            elapsed(t0),
        );

        // 1. Every platform's base, target and wheels, concurrently: a platform that cannot be
        //    built fails the build here, before any wheel is downloaded or layer written (unless
        //    it is unsupported and the request says to leave such platforms out).
        //    Each platform is a task of its own, so their CPU work (reading the lock, choosing
        //    wheels, cache lookups) runs on several threads.
        let tops = Arc::new(Tops::default());
        let shared_req = Arc::new(req.clone());
        let results: Vec<Result<PreparedPlatform, BuildError>> =
            futures::stream::iter(req.platforms.iter().cloned())
                .map(|p| {
                    let (builder, req, tops) = (self.clone(), shared_req.clone(), tops.clone());
                    spawn_scoped(async move { builder.prepare_platform(&req, &p, &tops).await })
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
                Err(e) => failures.push(PlatformFailure {
                    platform: platform.to_string(),
                    error: e,
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

        // 2. The wheels of every dependency layer to build, downloaded in one batch so a wheel
        //    that several platforms share (pure Python) is fetched once.
        let to_build: Vec<&PreparedPlatform> = prepared
            .iter()
            .filter(|p| p.deps.as_ref().is_some_and(|d| d.cached.is_none()))
            .collect();
        if to_build.len() > 1 {
            let t1 = Instant::now();
            let requests: Vec<WheelRequest> = to_build
                .iter()
                .flat_map(|p| p.wheels.iter().map(wheel_request))
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
                    "{wanted} wheels for {} platforms: {} different files ({} downloaded, {:.1} MB)",
                    to_build.len(),
                    unique.len(),
                    fetched.len(),
                    fetched.iter().sum::<u64>() as f64 / 1e6,
                ),
                elapsed(t1),
            );
        }

        // What the previous images' manifests name is in their repositories (no HEAD needed).
        let present: Vec<(Reference, Digest)> = prepared
            .iter()
            .filter_map(|p| p.prev.as_ref())
            .flat_map(|(r, m, _)| {
                m.layers
                    .iter()
                    .map(|l| l.digest)
                    .chain(std::iter::once(m.config.digest))
                    .map(move |d| (r.clone(), d))
            })
            .collect();

        // 3. Each platform's layers and image, concurrently (installing and compressing run on
        //    blocking threads, one per platform).
        let names: Vec<String> = prepared.iter().map(|p| p.platform.to_string()).collect();
        let finishing = Arc::new((ctx, app_layer, recipes));
        let results: Vec<Result<(PlatformImage, PlatformPlan), BuildError>> =
            futures::stream::iter(prepared)
                .map(|p| {
                    let (builder, req, f) = (self.clone(), shared_req.clone(), finishing.clone());
                    spawn_scoped(async move {
                        let (ctx, app_layer, recipes) = &*f;
                        builder
                            .finish_platform(&req, p, ctx, app_layer, recipes)
                            .await
                    })
                })
                .buffered(platform_concurrency())
                .map(|joined| joined.map_err(other).and_then(|r| r))
                .collect()
                .await;
        let built = collect_platforms(&names, results)?;
        let (images, plans): (Vec<PlatformImage>, Vec<PlatformPlan>) = built.into_iter().unzip();
        // Several platforms asked for: an index, even when only one was left (the shape users asked
        // for stays stable).
        let index = multi.then(|| {
            let (index_type, manifest_type) = match req.format {
                ImageFormat::Oci => (MediaType::OCI_INDEX, MediaType::OCI_MANIFEST),
                ImageFormat::Docker => {
                    (MediaType::DOCKER_MANIFEST_LIST, MediaType::DOCKER_MANIFEST)
                }
            };
            let idx = Index {
                schema_version: 2,
                media_type: Some(MediaType::from(index_type)),
                artifact_type: None,
                manifests: images
                    .iter()
                    .map(|p: &PlatformImage| {
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
        });
        let image = BuiltImage {
            images,
            index,
            present,
        };
        // Keep manifests and configs in the store too (for `inspect` and local sinks): written side
        // by side on the blocking pool (each is synced to disk; one after the other they added about
        // 2 ms to a warm two-platform build).
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
        Ok(BuildOutput {
            image,
            plans,
            skipped,
        })
    }

    /// Phase 1 of a build for one platform: the base, the target, the wheels, and whether the
    /// dependency layer is already cached (locally or in a previous image).
    pub(crate) async fn prepare_platform(
        &self,
        req: &BuildRequest,
        platform: &Platform,
        tops: &Tops,
    ) -> Result<PreparedPlatform, BuildError> {
        let plat = platform.to_string();
        let t0 = Instant::now();
        let base = self.resolve_base(req, platform, tops).await?;
        self.progress.step(
            &plat,
            "resolve",
            &format!(
                "base {} ({} layers)",
                base.image
                    .manifest_digest
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "scratch".into()),
                base.image.layers.len()
            ),
            elapsed(t0),
        );
        let base_digest = base.image.manifest_digest;
        let overrides = Self::overrides_key(req);

        // The target: local cache, else the previous image's record, else the base layers.
        let prev = if req.cache_from.is_empty() {
            None
        } else {
            self.previous_image(req, platform, tops).await
        };
        let mut facts: Option<BaseFacts> = None;
        let local = match &base_digest {
            Some(d) => self.stored_base_facts(d, req)?,
            None => None,
        };
        let target = if let Some((t, f)) = local {
            facts = Some(f);
            t
        } else if let Some(rec) = prev
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
            rec.target
        } else {
            let (t, f) = self.base_facts(req, &base, platform).await?;
            facts = Some(f);
            t
        };

        // Wheels (the previous image's choice stands in for index listings the store lacks, when
        // it was made for the same lock and target).
        let recorded = prev
            .as_ref()
            .and_then(|(_, _, cfg)| RecordedWheels::from_config(cfg));
        let mut plan = self
            .plan_wheels_with(req, &target, recorded.as_ref())
            .await?;
        if plan.from_record
            && let Some(d) = &plan.lock_digest
        {
            // The record only names the wheels (no URLs): it serves when it finds the layer. If
            // not, the layer is built, and the index is asked where the files are.
            let key = Self::deps_key(req, d, &plan.chosen, &target, base_digest);
            if self.local_layer(&key)?.is_none() && Self::remote_layer(&prev, &key).is_none() {
                plan = self.plan_wheels_with(req, &target, None).await?;
            }
        }
        let WheelPlan {
            lock,
            lock_digest,
            chosen: wheels,
            missing,
            plan_key,
            ..
        } = plan;
        if !missing.is_empty() {
            return Err(BuildError::NoWheels {
                platform: target.platform.to_string(),
                missing,
            });
        }
        let deps = match &lock_digest {
            None => None,
            Some(lock_digest) => {
                let key = Self::deps_key(req, lock_digest, &wheels, &target, base_digest);
                let cached = if let Some(rec) = self.local_layer(&key)? {
                    self.progress.step(
                        &plat,
                        "deps",
                        &format!("cached-local {}", &rec.digest.to_string()[..19]),
                        0.0,
                    );
                    Some(Self::built_layer(
                        &rec,
                        &key,
                        LayerKind::Deps,
                        LayerStatus::CachedLocal,
                        BlobLocation::Store,
                        req.format,
                    ))
                } else if let Some((r, rec)) = Self::remote_layer(&prev, &key) {
                    self.progress.step(
                        &plat,
                        "deps",
                        &format!("cached-remote {} from {r}", &rec.digest.to_string()[..19]),
                        0.0,
                    );
                    Some(Self::built_layer(
                        &rec,
                        &key,
                        LayerKind::Deps,
                        LayerStatus::CachedRemote,
                        BlobLocation::Remote(r),
                        req.format,
                    ))
                } else {
                    None
                };
                Some(DepsPlan { key, cached })
            }
        };
        Ok(PreparedPlatform {
            platform: platform.clone(),
            base,
            prev,
            target,
            facts,
            lock,
            wheels,
            plan_key,
            deps,
        })
    }

    /// Phase 3 of a build for one platform: the dependency layer (unless cached), the user layer,
    /// the config and the manifest.
    pub(crate) async fn finish_platform(
        &self,
        req: &BuildRequest,
        prepared: PreparedPlatform,
        ctx: &rbuild_layer::Context,
        app_layer: &LayerRecord,
        recipes: &BTreeMap<String, Recipe>,
    ) -> Result<(PlatformImage, PlatformPlan), BuildError> {
        let PreparedPlatform {
            platform,
            base,
            prev,
            target,
            mut facts,
            lock,
            wheels,
            plan_key,
            deps,
        } = prepared;
        let platform = &platform;
        let plat = platform.to_string();
        let base_digest = base.image.manifest_digest;
        let overrides = Self::overrides_key(req);
        let mut layers: Vec<BuiltLayer> = base
            .image
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
            .collect();

        if let Some(DepsPlan { key, cached }) = deps {
            let layer = match cached {
                Some(layer) => layer,
                None => {
                    let f = match &facts {
                        Some(f) => f.clone(),
                        None => {
                            let (_, f) = self.base_facts(req, &base, platform).await?;
                            facts = Some(f.clone());
                            f
                        }
                    };
                    let rec = self
                        .build_deps_layer(req, &key, &wheels, &target, &f, &plat)
                        .await?;
                    Self::built_layer(
                        &rec,
                        &key,
                        LayerKind::Deps,
                        LayerStatus::Built,
                        BlobLocation::Store,
                        req.format,
                    )
                }
            };
            layers.push(layer);
        }

        // Recipe and user.
        let packages: Vec<String> = wheels.iter().map(|w| w.name.clone()).collect();
        let recipe = match req.recipe.as_deref() {
            Some("none") => None,
            Some(name) => Some(
                recipes
                    .get(name)
                    .ok_or_else(|| recipe::RecipeError::Unknown {
                        name: name.to_string(),
                        available: recipes.keys().cloned().collect::<Vec<_>>().join(", "),
                    })?,
            ),
            None if req.entrypoint.is_some() => None,
            None => {
                let facts = ProjectFacts::scan(&req.context, packages.clone());
                match recipe::detect(recipes, &facts) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        self.progress
                            .warning(&format!("{e}; the image keeps the base's entrypoint"));
                        None
                    }
                }
            }
        };
        let mut spec = ImageSpec {
            created: crate::time::rfc3339(req.epoch),
            ..ImageSpec::default()
        };
        let app_dir = req.app_dir.clone();
        spec.working_dir = Some(app_dir.clone());
        let mut env: Vec<(String, String)> = vec![
            ("PYTHONUNBUFFERED".into(), "1".into()),
            ("PYTHONFAULTHANDLER".into(), "1".into()),
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
        ];
        let mut user = req.user.clone();
        if let Some(r) = recipe {
            let facts = ProjectFacts::scan(&req.context, packages.clone());
            let target_app = recipe::app_target(r, &facts)?;
            spec.entrypoint = Some(recipe::render(
                &r.entrypoint,
                &target.interpreter,
                &target_app,
                r.port,
            ));
            spec.cmd = Some(recipe::render(
                &r.cmd,
                &target.interpreter,
                &target_app,
                r.port,
            ));
            for (k, v) in &r.env {
                env.push((k.clone(), v.clone()));
            }
            if let Some(p) = r.port {
                spec.ports.push(p.to_string());
                env.push(("PORT".into(), p.to_string()));
            }
            spec.healthcheck = recipe::healthcheck(r, &target.interpreter);
            if user.is_none() {
                user = r.user.clone();
            }
            spec.labels
                .insert("dev.rbuild.recipe".into(), r.name.clone());
        }
        if ctx.entries.iter().any(|e| e.path == "src")
            && !ctx
                .entries
                .iter()
                .any(|e| e.path.ends_with(".py") && !e.path.contains('/'))
        {
            env.push((
                "PYTHONPATH".into(),
                format!("{}/src", app_dir.trim_end_matches('/')),
            ));
        }
        env.push(("HOME".into(), app_dir.clone()));
        for (k, v) in &req.env {
            env.push((k.clone(), v.clone()));
        }
        spec.env = env;
        if req.entrypoint.is_some() {
            spec.entrypoint = req.entrypoint.clone();
            spec.cmd = None;
        }
        if req.cmd.is_some() {
            spec.cmd = req.cmd.clone();
        }
        spec.ports.extend(req.ports.iter().cloned());
        spec.labels.extend(req.labels.clone());
        spec.annotations.extend(req.annotations.clone());
        if let Some((source, revision)) = git_info(&req.context) {
            if let Some(s) = source {
                spec.labels
                    .insert("org.opencontainers.image.source".into(), s.clone());
                spec.annotations
                    .insert("org.opencontainers.image.source".into(), s);
            }
            spec.labels
                .insert("org.opencontainers.image.revision".into(), revision.clone());
            spec.annotations
                .insert("org.opencontainers.image.revision".into(), revision);
        }
        let user = user.unwrap_or_else(|| "1001:1001".into());
        let (uid, gid) = parse_user(&user).ok_or_else(|| {
            other(format!(
                "--user {user:?}: expected numeric UID[:GID], e.g. 1001:1001"
            ))
        })?;
        spec.user = Some(format!("{uid}:{gid}"));
        if base.reference.is_some() && uid != 0 {
            let key = Digest::of(
                format!(
                    "user|{LAYER_FORMAT_VERSION}|{}|{uid}|{gid}|{app_dir}|{}|{}",
                    base_digest.map(|d| d.to_string()).unwrap_or_default(),
                    req.epoch,
                    req.compression.as_str()
                )
                .as_bytes(),
            )
            .hex();
            let layer = if let Some(rec) = self.local_layer(&key)? {
                Some(Self::built_layer(
                    &rec,
                    &key,
                    LayerKind::User,
                    LayerStatus::CachedLocal,
                    BlobLocation::Store,
                    req.format,
                ))
            } else if let Some((r, rec)) = Self::remote_layer(&prev, &key) {
                Some(Self::built_layer(
                    &rec,
                    &key,
                    LayerKind::User,
                    LayerStatus::CachedRemote,
                    BlobLocation::Remote(r),
                    req.format,
                ))
            } else {
                let f = match &facts {
                    Some(f) => f.clone(),
                    None => self.base_facts(req, &base, platform).await?.1,
                };
                self.build_user_layer(req, &f, uid, gid, &app_dir, &key)?
                    .map(|rec| {
                        Self::built_layer(
                            &rec,
                            &key,
                            LayerKind::User,
                            LayerStatus::Built,
                            BlobLocation::Store,
                            req.format,
                        )
                    })
            };
            layers.extend(layer);
        }

        let mut app = Self::built_layer(
            app_layer,
            "",
            LayerKind::App,
            LayerStatus::Built,
            BlobLocation::Store,
            req.format,
        );
        app.descriptor.annotations = None;
        layers.push(app);

        // Record what a fresh runner needs to recompute the keys.
        let recorded = Recorded {
            base_digest,
            overrides,
            target: target.clone(),
        };
        spec.labels.insert(
            LABEL_TARGET.into(),
            String::from_utf8(canonical_json(&recorded).map_err(other)?).map_err(other)?,
        );
        if let Some(key) = plan_key {
            // Names, versions, files and hashes only: a URL may carry an index's signed query
            // or point at a private host, and is looked up again when a file is needed.
            let rec = RecordedWheels {
                key,
                wheels: wheels
                    .iter()
                    .map(|w| ChosenWheel {
                        url: None,
                        path: None,
                        index: None,
                        ..w.clone()
                    })
                    .collect(),
            };
            spec.labels.insert(
                LABEL_WHEELS.into(),
                String::from_utf8(canonical_json(&rec).map_err(other)?).map_err(other)?,
            );
        }

        let new_layers: Vec<NewLayer> = layers
            .iter()
            .filter(|l| l.kind != LayerKind::Base)
            .map(|l| NewLayer {
                descriptor: l.descriptor.clone(),
                diff_id: l.diff_id,
                created_by: match l.kind {
                    LayerKind::Deps => format!(
                        "rbuild: install {} locked wheels from {}",
                        wheels.len(),
                        lock.as_ref()
                            .map(|l| l
                                .path
                                .file_name()
                                .unwrap_or_default()
                                .to_string_lossy()
                                .to_string())
                            .unwrap_or_default()
                    ),
                    LayerKind::User => {
                        format!("rbuild: add user {uid}:{gid} to /etc/passwd and /etc/group")
                    }
                    LayerKind::App => format!("rbuild: copy the build context to {app_dir}"),
                    LayerKind::Base => String::new(),
                },
            })
            .collect();
        let assembled = assemble(&base.image, &new_layers, &spec, req.format)?;
        // Media types as assembled (Docker/OCI conversion).
        for (l, d) in layers.iter_mut().zip(assembled.manifest.layers.iter()) {
            l.descriptor = d.clone();
        }
        let manifest_type = match req.format {
            ImageFormat::Oci => MediaType::OCI_MANIFEST,
            ImageFormat::Docker => MediaType::DOCKER_MANIFEST,
        };
        let manifest = RawManifest::new(assembled.manifest_bytes.clone(), Some(manifest_type));
        let _ = ManifestKind::Image(assembled.manifest.clone());
        let mut image_platform = Platform::new(
            &assembled.config.os,
            &assembled.config.architecture,
            assembled.config.variant.as_deref(),
        );
        image_platform.os_version = assembled.config.os_version.clone();
        Ok((
            PlatformImage {
                platform: image_platform,
                manifest,
                config: assembled.config,
                config_bytes: assembled.config_bytes,
                layers,
            },
            PlatformPlan {
                platform: plat,
                target,
                lockfile: lock.as_ref().map(|l| l.path.clone()),
                notes: lock.map(|l| l.notes).unwrap_or_default(),
                packages: wheels,
                missing: Vec::new(),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MissingWheel;

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
