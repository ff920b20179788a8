//! The build pipeline: resolve → fetch → layer → assemble, for one or several platforms.
//!
//! Layers, base first: the base image's layers, the dependency layer (every locked wheel installed
//! without Python), the user layer (`/etc/passwd` and `/etc/group` with the app user, only when the
//! base lacks the uid) and the app layer (the filtered context under the app directory).
//!
//! The dependency and user layers are keyed by the hash of everything that changes their bytes; a key
//! seen before returns the stored layer without opening a wheel (`cached-local`), and a key found on
//! the previous image in the registry reuses that layer without downloading it (`cached-remote`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use rbuild_index::{IndexClient, WheelRequest};
use rbuild_layer::{Compression, LayerInfo, LayerOptions, LayerWriter};
use rbuild_lock::{ChosenWheel, Lock, LockedFile, ResolveOptions};
use rbuild_oci::{
    ANNOTATION_LAYER_KEY, Descriptor, Digest, ImageConfig, Index, ManifestKind, MediaType,
    Platform, RawManifest, Store, canonical_json,
};
use rbuild_python::target::{Target, TargetOverrides};
use rbuild_registry::{Client, Reference};
use serde::{Deserialize, Serialize};

use crate::assemble::{BaseImage, ImageFormat, ImageSpec, NewLayer, assemble};
use crate::base_facts::{BaseFacts, open_layer};
use crate::image::{BlobLocation, BuiltImage, BuiltLayer, LayerKind, LayerStatus, PlatformImage};
use crate::recipe::{self, ProjectFacts, Recipe};
use crate::user::{parse_user, user_files};

/// The version of the dependency-layer format; part of every cache key. 2: gzip layers larger
/// than 1 MiB are written as independent blocks (rbuild-layer's `GZIP_BLOCK`), which changes their
/// bytes; a store filled by an older rbuild must not hand out the older encoding for the same key.
/// 3: every gzip block is compressed by a new compressor (a reused one made some blocks depend on
/// which thread compressed them), which changes some layers' bytes.
pub const LAYER_FORMAT_VERSION: u32 = 3;
/// Config label holding what a fresh runner needs to recompute the cache keys.
pub const LABEL_TARGET: &str = "dev.rbuild.target";
/// Config label with the wheels chosen for this image's lockfile and target (`{"key", "wheels"}`),
/// so a runner with an empty store and the same lock finds the dependency layer without asking the
/// package index (see [`Builder::build`]).
pub const LABEL_WHEELS: &str = "dev.rbuild.wheels";

/// The base image to build on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseRef {
    /// An empty image.
    Scratch,
    /// An image in a registry.
    Image(Reference),
}

/// Everything a build needs to know.
#[derive(Clone, Debug)]
pub struct BuildRequest {
    /// The project directory (build context).
    pub context: PathBuf,
    /// The base image.
    pub base: BaseRef,
    /// Platforms to build (at least one).
    pub platforms: Vec<Platform>,
    /// The lockfile; `None` detects it in the context (no lockfile: no dependency layer).
    pub lock: Option<PathBuf>,
    /// Extras and groups.
    pub resolve: ResolveOptions,
    /// The app directory in the image (`/app`).
    pub app_dir: String,
    /// Entrypoint (overrides the recipe).
    pub entrypoint: Option<Vec<String>>,
    /// Cmd (overrides the recipe).
    pub cmd: Option<Vec<String>>,
    /// Environment added after the recipe's.
    pub env: BTreeMap<String, String>,
    /// `uid[:gid]`; `None` uses the recipe's or `1001:1001`.
    pub user: Option<String>,
    /// Exposed ports (in addition to the recipe's).
    pub ports: Vec<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// The recipe: `None` detects one; `Some("none")` uses none.
    pub recipe: Option<String>,
    /// Layer compression.
    pub compression: Compression,
    /// Manifest format.
    pub format: ImageFormat,
    /// `SOURCE_DATE_EPOCH`.
    pub epoch: u64,
    /// Flags that replace target detection.
    pub target_overrides: TargetOverrides,
    /// `--marker-env KEY=VALUE`.
    pub marker_overrides: BTreeMap<String, String>,
    /// Images to look for reusable layers in (`--cache-from`, and the first `--to`).
    pub cache_from: Vec<Reference>,
    /// Make wheel conflicts errors.
    pub strict: bool,
    /// Skip platforms whose wheels are missing instead of failing.
    pub skip_unsupported_platforms: bool,
}

impl BuildRequest {
    /// A request with the defaults for `context` on `base`.
    pub fn new(context: impl Into<PathBuf>, base: BaseRef) -> Self {
        BuildRequest {
            context: context.into(),
            base,
            platforms: vec![Platform::host()],
            lock: None,
            resolve: ResolveOptions::default(),
            app_dir: "/app".into(),
            entrypoint: None,
            cmd: None,
            env: BTreeMap::new(),
            user: None,
            ports: Vec::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            recipe: None,
            compression: Compression::Gzip,
            format: ImageFormat::Oci,
            epoch: crate::time::DEFAULT_EPOCH,
            target_overrides: TargetOverrides::default(),
            marker_overrides: BTreeMap::new(),
            cache_from: Vec::new(),
            strict: false,
            skip_unsupported_platforms: false,
        }
    }
}

/// Errors from a build. Each message says what failed, where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Registry.
    #[error(transparent)]
    Registry(#[from] rbuild_registry::Error),
    /// Store.
    #[error(transparent)]
    Store(#[from] rbuild_oci::StoreError),
    /// Layer writing or the context.
    #[error(transparent)]
    Layer(#[from] rbuild_layer::Error),
    /// Target detection.
    #[error(transparent)]
    Target(#[from] rbuild_python::target::TargetError),
    /// Lockfile.
    #[error(transparent)]
    Lock(#[from] rbuild_lock::Error),
    /// Index and downloads.
    #[error(transparent)]
    Index(#[from] rbuild_index::Error),
    /// Wheel installation.
    #[error(transparent)]
    Wheel(#[from] rbuild_wheel::Error),
    /// Recipe.
    #[error(transparent)]
    Recipe(#[from] recipe::RecipeError),
    /// Assembly.
    #[error(transparent)]
    Assemble(#[from] crate::assemble::AssembleError),
    /// Locked packages without a wheel for a platform (e.g. only x86_64 wheels, building arm64).
    #[error(
        "{}",
        match missing.as_slice() {
            [one] => format!("a locked package has no usable wheel for {platform}: {}", one.reason),
            all => format!(
                "{} locked packages have no usable wheel for {platform}:\n  {}",
                all.len(),
                all.iter().map(|m| m.reason.as_str()).collect::<Vec<_>>().join("\n  ")
            ),
        }
    )]
    NoWheels {
        /// The platform (`linux/arm64/v8`).
        platform: String,
        /// Each package without a fitting wheel, and why.
        missing: Vec<MissingWheel>,
    },
    /// One or more platforms of a multi-platform build failed; nothing was built or published.
    #[error("{}", describe_failures(.0))]
    Platforms(Vec<PlatformFailure>),
    /// Anything else, with its message.
    #[error("{0}")]
    Other(String),
}

impl BuildError {
    /// True when the error means "this platform cannot be built from these inputs": a locked
    /// package has no wheel for it, or the base image has no manifest for it. Such platforms are
    /// left out with [`BuildRequest::skip_unsupported_platforms`]; every other error fails the build.
    pub fn is_unsupported_platform(&self) -> bool {
        matches!(
            self,
            BuildError::NoWheels { .. }
                | BuildError::Registry(rbuild_registry::Error::Platform { .. })
        )
    }
}

/// A platform that failed in a multi-platform build.
#[derive(Debug)]
pub struct PlatformFailure {
    /// The platform as requested (`linux/arm64`).
    pub platform: String,
    /// Why.
    pub error: BuildError,
}

fn describe_failures(failures: &[PlatformFailure]) -> String {
    let one = |f: &PlatformFailure| match &f.error {
        // Already names its platform.
        BuildError::NoWheels { .. } => f.error.to_string(),
        e => format!("{}: {e}", f.platform),
    };
    match failures {
        [f] => {
            let mut s = one(f);
            if f.error.is_unsupported_platform() {
                s.push_str(&format!(
                    "; or, to build the other platforms without {}, pass --skip-unsupported-platforms",
                    f.platform
                ));
            }
            s
        }
        fs => format!(
            "{} platforms failed:\n  {}",
            fs.len(),
            fs.iter()
                .map(|f| one(f).replace('\n', "\n  "))
                .collect::<Vec<_>>()
                .join("\n  ")
        ),
    }
}

/// A locked package without a wheel that fits a platform.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MissingWheel {
    /// The package (normalized name).
    pub name: String,
    /// Its locked version.
    pub version: String,
    /// Why no wheel fits, and what to do (the lock reader's message).
    pub reason: String,
}

fn other(e: impl std::fmt::Display) -> BuildError {
    BuildError::Other(e.to_string())
}

/// Receives what the build does; the library never prints.
pub trait BuildProgress: Send + Sync {
    /// A step finished (`what` is one line, e.g. "resolved base ... in 0.2 s").
    fn step(&self, platform: &str, step: &str, detail: &str, seconds: f64) {
        let _ = (platform, step, detail, seconds);
    }
    /// Something the user should know (e.g. a wheel conflict).
    fn warning(&self, message: &str) {
        let _ = message;
    }
    /// Verbose information (shown at `-v`).
    fn info(&self, message: &str) {
        let _ = message;
    }
    /// A wheel download started (again, when retried); `size` when known.
    fn download_started(&self, filename: &str, size: Option<u64>) {
        let _ = (filename, size);
    }
    /// `n` more bytes of `filename` arrived.
    fn download_advanced(&self, filename: &str, n: u64) {
        let _ = (filename, n);
    }
    /// `filename` is in the store, verified.
    fn download_finished(&self, filename: &str) {
        let _ = filename;
    }
}

/// A [`BuildProgress`] that ignores everything.
pub struct NoBuildProgress;
impl BuildProgress for NoBuildProgress {}

/// The wheels chosen for one platform.
#[derive(Clone, Debug, Serialize)]
pub struct PlatformPlan {
    /// The platform.
    pub platform: String,
    /// The detected target.
    pub target: Target,
    /// The lockfile read (`None`: no dependencies).
    pub lockfile: Option<PathBuf>,
    /// Chosen wheels, sorted by name.
    pub packages: Vec<ChosenWheel>,
    /// Notes from the lock reader.
    pub notes: Vec<String>,
    /// Packages without a fitting wheel (only from [`Builder::plan_platforms`]; a build fails
    /// instead).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingWheel>,
}

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
    client: Client,
    index: IndexClient,
    store: Store,
    progress: Arc<dyn BuildProgress>,
}

/// What is recorded in the image (label [`LABEL_TARGET`]) so a fresh runner can recompute cache keys.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Recorded {
    base_digest: Option<Digest>,
    overrides: String,
    target: Target,
}

/// The wheel choice recorded in the image (label [`LABEL_WHEELS`]): valid for another build whose
/// [`Builder::plan_key`] is `key`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct RecordedWheels {
    key: String,
    wheels: Vec<ChosenWheel>,
}

impl RecordedWheels {
    /// The record in a previous image's config, if it has one that parses.
    fn from_config(config: &ImageConfig) -> Option<RecordedWheels> {
        let label = config.config.as_ref()?.labels.as_ref()?.get(LABEL_WHEELS)?;
        serde_json::from_str(label).ok()
    }

    /// The recorded wheels in the lock's package order (the order a fresh choice has), when they
    /// are exactly the lock's packages, each at its locked version and with a sha256 the lock
    /// allows; `None` otherwise.
    fn choice_for(&self, lock: &Lock) -> Option<Vec<ChosenWheel>> {
        if self.wheels.len() != lock.packages.len() {
            return None;
        }
        lock.packages
            .iter()
            .map(|p| {
                let name = rbuild_python::normalize_name(&p.name);
                self.wheels
                    .iter()
                    .find(|w| {
                        rbuild_python::normalize_name(&w.name) == name
                            && w.version == p.version
                            && w.path.is_none()
                            && w.sha256.is_some_and(|d| p.hashes.contains(&d))
                    })
                    .cloned()
            })
            .collect()
    }
}

/// The wheels chosen for one target ([`Builder::plan_wheels_with`]).
struct WheelPlan {
    /// `None`: no lockfile.
    lock: Option<Lock>,
    /// The sha256 of the lockfile's bytes.
    lock_digest: Option<Digest>,
    chosen: Vec<ChosenWheel>,
    missing: Vec<MissingWheel>,
    /// The key the choice is recorded under ([`LABEL_WHEELS`]); `None` when it could change
    /// without the lock changing (a package without hashes, find-links).
    plan_key: Option<String>,
    /// The choice was taken from the previous image's record.
    from_record: bool,
}

impl WheelPlan {
    fn none() -> Self {
        WheelPlan {
            lock: None,
            lock_digest: None,
            chosen: Vec::new(),
            missing: Vec::new(),
            plan_key: None,
            from_record: false,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct LayerRecord {
    digest: Digest,
    diff_id: Digest,
    size: u64,
    media_type: String,
}

/// The base of one platform, resolved.
struct ResolvedBase {
    image: BaseImage,
    reference: Option<Reference>,
}

/// The dependency layer of one platform: its cache key and, when found, the cached layer.
struct DepsPlan {
    key: String,
    cached: Option<BuiltLayer>,
}

/// One platform after phase 1 of a build (planned, nothing built yet).
struct PreparedPlatform {
    platform: Platform,
    base: ResolvedBase,
    prev: Option<(Reference, rbuild_oci::Manifest, ImageConfig)>,
    target: Target,
    facts: Option<BaseFacts>,
    lock: Option<Lock>,
    wheels: Vec<ChosenWheel>,
    /// The key under which `wheels` are recorded in the image ([`LABEL_WHEELS`]); `None` when the
    /// choice could change without the lock changing (a package without hashes, find-links).
    plan_key: Option<String>,
    /// `None`: no lockfile, no dependency layer.
    deps: Option<DepsPlan>,
}

/// Top-level manifests (what a tag names) fetched once per build and shared by its platforms:
/// a two-platform build asks for the base's tag and the previous image's tag once each.
#[derive(Default)]
struct Tops(std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::OnceCell<RawManifest>>>>);

impl Tops {
    async fn get(
        &self,
        client: &Client,
        reference: &Reference,
    ) -> Result<RawManifest, rbuild_registry::Error> {
        let cell = self
            .0
            .lock()
            .expect("tops lock")
            .entry(reference.to_string())
            .or_default()
            .clone();
        cell.get_or_try_init(|| client.get_manifest(reference))
            .await
            .cloned()
    }
}

/// A task whose handle aborts it when dropped: a build that is dropped (cancelled) stops its
/// platforms' tasks too instead of leaving them running detached.
struct ScopedTask<T>(tokio::task::JoinHandle<T>);

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
fn spawn_scoped<F>(future: F) -> ScopedTask<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    ScopedTask(tokio::spawn(future))
}

/// How many platforms are worked on at once: one per CPU (installing and compressing a layer
/// keeps one busy), at least two (the rest of the work waits on the network), at most eight.
fn platform_concurrency() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(2, 8)
}

/// Per-platform results, in request order: all of them, or every failure (a single-platform
/// request fails with its own error, unwrapped).
fn collect_platforms<T>(
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

fn wheel_request(w: &ChosenWheel) -> WheelRequest {
    // A file from a --find-links directory is copied from its path, not downloaded.
    let local = w
        .url
        .as_deref()
        .and_then(|u| u.strip_prefix("file://"))
        .map(PathBuf::from);
    WheelRequest {
        name: w.name.clone(),
        version: w.version.clone(),
        filename: w.filename.clone(),
        url: if local.is_some() { None } else { w.url.clone() },
        path: local.or_else(|| w.path.clone()),
        index: w.index.clone(),
        sha256: w.sha256,
        size: w.size,
    }
}

/// Passes the index client's warnings on to the build's progress.
struct Warn(Arc<dyn BuildProgress>);
impl rbuild_index::Progress for Warn {
    fn warning(&self, message: &str) {
        self.0.warning(message);
    }
    fn started(&self, filename: &str, size: Option<u64>) {
        self.0.download_started(filename, size);
    }
    fn bytes(&self, filename: &str, n: u64) {
        self.0.download_advanced(filename, n);
    }
    fn finished(&self, filename: &str, _sha256: &Digest, _size: u64) {
        self.0.download_finished(filename);
    }
}

/// Adapts the layer writer to the wheel installer's sink.
struct Sink<'a, W: std::io::Write>(&'a mut LayerWriter<W>);

impl<W: std::io::Write> rbuild_wheel::EntrySink for Sink<'_, W> {
    fn dir(&mut self, path: &str, mode: u32) -> std::io::Result<()> {
        self.0.append_dir(path, mode).map_err(std::io::Error::other)
    }
    fn file(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        content: &mut dyn Read,
    ) -> std::io::Result<()> {
        self.0
            .append_file(path, mode, size, content)
            .map_err(std::io::Error::other)
    }
    fn symlink(&mut self, path: &str, target: &str) -> std::io::Result<()> {
        self.0
            .append_symlink(path, target)
            .map_err(std::io::Error::other)
    }
    fn whiteout(&mut self, path: &str) -> std::io::Result<()> {
        self.0.append_whiteout(path).map_err(std::io::Error::other)
    }
}

/// A file of an index listing, as kept in the store (`index-files` keys).
#[derive(Serialize, Deserialize)]
struct CachedFile {
    filename: String,
    wheel: bool,
    url: Option<String>,
    sha256: Option<Digest>,
    size: Option<u64>,
}

/// The store key of the index's answer for a package pinned by hashes (none for a package
/// without hashes, or when `--find-links` directories take part).
fn listing_key(
    indexes: &[String],
    find_links: bool,
    pkg: &rbuild_lock::LockedPackage,
) -> Option<String> {
    (!pkg.hashes.is_empty() && !find_links).then(|| {
        let mut hashes: Vec<String> = pkg.hashes.iter().map(|h| h.to_string()).collect();
        hashes.sort();
        Digest::of(
            format!(
                "index-files|1|{:?}|{:?}|{}|{}|{}",
                indexes,
                pkg.source.index_url(),
                pkg.name,
                pkg.version,
                hashes.join(",")
            )
            .as_bytes(),
        )
        .hex()
    })
}

/// The package with its files when the lock lists them or the store keeps the index's answer
/// under `key` ([`listing_key`]); `None` when the index must be asked.
fn stored_listing(
    store: &Store,
    key: Option<&str>,
    pkg: &rbuild_lock::LockedPackage,
) -> Result<Option<rbuild_lock::LockedPackage>, BuildError> {
    if pkg.files_listed {
        return Ok(Some(pkg.clone()));
    }
    let Some(key) = key else {
        return Ok(None);
    };
    let Some(bytes) = store.get_key("index-files", key)? else {
        return Ok(None);
    };
    let Ok(files) = serde_json::from_slice::<Vec<CachedFile>>(&bytes) else {
        return Ok(None);
    };
    let files = files
        .into_iter()
        .map(|c| LockedFile {
            kind: if c.wheel {
                rbuild_lock::FileKind::Wheel
            } else {
                rbuild_lock::FileKind::Sdist
            },
            filename: c.filename,
            url: c.url,
            path: None,
            sha256: c.sha256,
            size: c.size,
        })
        .collect();
    Ok(Some(pkg.with_index_files(files)))
}

fn elapsed(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn sha256_file(path: &Path) -> Result<Digest, BuildError> {
    let f = std::fs::File::open(path)
        .map_err(|e| other(format!("cannot read {}: {e}", path.display())))?;
    Ok(Digest::of_reader(f)
        .map_err(|e| other(format!("cannot read {}: {e}", path.display())))?
        .0)
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

    async fn resolve_base(
        &self,
        req: &BuildRequest,
        platform: &Platform,
        tops: &Tops,
    ) -> Result<ResolvedBase, BuildError> {
        match &req.base {
            BaseRef::Scratch => Ok(ResolvedBase {
                image: BaseImage::scratch(
                    &platform.os,
                    &platform.architecture,
                    platform.variant.as_deref(),
                ),
                reference: None,
            }),
            BaseRef::Image(r) => {
                let top = tops.get(&self.client, r).await?;
                let resolved = self
                    .client
                    .resolve_image_from(r, top, platform, Some(&self.store))
                    .await?;
                let (_, config) = self.client.fetch_config(&resolved, &self.store).await?;
                Ok(ResolvedBase {
                    image: BaseImage {
                        name: Some(r.to_string()),
                        manifest_digest: Some(resolved.manifest.digest),
                        layers: resolved.image.layers.clone(),
                        config,
                    },
                    reference: Some(r.clone()),
                })
            }
        }
    }

    fn overrides_key(req: &BuildRequest) -> String {
        format!("{:?}|{:?}", req.target_overrides, req.marker_overrides)
    }

    /// The store key of the target and base facts read from a base image (`base-facts`).
    fn base_facts_key(base_digest: &Digest, req: &BuildRequest) -> String {
        Digest::of(format!("{base_digest}|{}", Self::overrides_key(req)).as_bytes()).hex()
    }

    /// The target and base facts kept in the store for this base and these overrides.
    fn stored_base_facts(
        &self,
        base_digest: &Digest,
        req: &BuildRequest,
    ) -> Result<Option<(Target, BaseFacts)>, BuildError> {
        Ok(self
            .store
            .get_key("base-facts", &Self::base_facts_key(base_digest, req))?
            .and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Fetches the base layers and reads the target and base facts (cached by base digest).
    async fn base_facts(
        &self,
        req: &BuildRequest,
        base: &ResolvedBase,
        platform: &Platform,
    ) -> Result<(Target, BaseFacts), BuildError> {
        let plat = rbuild_python::target::Platform::new(
            &platform.os,
            &platform.architecture,
            platform.variant.as_deref(),
        );
        let Some(reference) = &base.reference else {
            let target = rbuild_python::target::target_without_base(&plat, &req.target_overrides)?;
            return Ok((target, BaseFacts::default()));
        };
        let digest = base
            .image
            .manifest_digest
            .expect("a pulled base has a digest");
        if let Some(stored) = self.stored_base_facts(&digest, req)? {
            return Ok(stored);
        }
        let t0 = Instant::now();
        self.client
            .fetch_blobs(reference, &base.image.layers, &self.store)
            .await?;
        let store = self.store.clone();
        let layers = base.image.layers.clone();
        let env = base
            .image
            .config
            .config
            .as_ref()
            .and_then(|c| c.env.clone())
            .unwrap_or_default();
        let overrides = req.target_overrides.clone();
        let (target, facts) =
            tokio::task::spawn_blocking(move || -> Result<(Target, BaseFacts), BuildError> {
                // One decompression of each layer feeds both readers.
                let (target, facts) = tee::read_twice(
                    layers.iter().map(|d| open_layer(&store, d)),
                    |l| rbuild_python::target::detect_target(l, &plat, &env, &overrides),
                    BaseFacts::read,
                );
                let target = target?;
                let facts =
                    facts.map_err(|e| other(format!("reading the base image's layers: {e}")))?;
                Ok((target, facts))
            })
            .await
            .map_err(other)??;
        self.store.put_key(
            "base-facts",
            &Self::base_facts_key(&digest, req),
            &serde_json::to_vec(&(&target, &facts)).map_err(other)?,
        )?;
        self.progress.step(
            &platform.to_string(),
            "base",
            &format!(
                "read {} base layers: Python {} at {}",
                base.image.layers.len(),
                target.python_version,
                target.interpreter
            ),
            elapsed(t0),
        );
        Ok((target, facts))
    }

    /// Reads a previous image for `platform` from the cache references: its manifest and config.
    async fn previous_image(
        &self,
        req: &BuildRequest,
        platform: &Platform,
        tops: &Tops,
    ) -> Option<(Reference, rbuild_oci::Manifest, ImageConfig)> {
        for r in &req.cache_from {
            let attempt = async {
                let top = tops.get(&self.client, r).await?;
                let resolved = self
                    .client
                    .resolve_image_from(r, top, platform, Some(&self.store))
                    .await?;
                let (_, config) = self.client.fetch_config(&resolved, &self.store).await?;
                Ok::<_, rbuild_registry::Error>((r.clone(), resolved.image, config))
            };
            match attempt.await {
                Ok(found) => return Some(found),
                Err(e) => self
                    .progress
                    .info(&format!("cache image {r} not usable: {e}")),
            }
        }
        None
    }

    fn local_layer(&self, key: &str) -> Result<Option<LayerRecord>, BuildError> {
        if let Some(bytes) = self.store.get_key("layers", key)?
            && let Ok(rec) = serde_json::from_slice::<LayerRecord>(&bytes)
            && self.store.contains(&rec.digest)
        {
            return Ok(Some(rec));
        }
        Ok(None)
    }

    fn remote_layer(
        prev: &Option<(Reference, rbuild_oci::Manifest, ImageConfig)>,
        key: &str,
    ) -> Option<(Reference, LayerRecord)> {
        let (r, manifest, config) = prev.as_ref()?;
        let i = manifest
            .layers
            .iter()
            .position(|d| d.annotation(ANNOTATION_LAYER_KEY) == Some(key))?;
        let d = &manifest.layers[i];
        let diff_id = *config.rootfs.diff_ids.get(i)?;
        Some((
            r.clone(),
            LayerRecord {
                digest: d.digest,
                diff_id,
                size: d.size,
                media_type: d.media_type.to_string(),
            },
        ))
    }

    fn built_layer(
        rec: &LayerRecord,
        key: &str,
        kind: LayerKind,
        status: LayerStatus,
        location: BlobLocation,
        format: ImageFormat,
    ) -> BuiltLayer {
        let mut d = Descriptor::new(rec.media_type.clone(), rec.digest, rec.size);
        if format == ImageFormat::Oci {
            d.set_annotation(ANNOTATION_LAYER_KEY, key);
        }
        BuiltLayer {
            descriptor: d,
            diff_id: rec.diff_id,
            kind,
            status,
            location,
        }
    }

    fn finish_layer(
        &self,
        key: Option<&str>,
        writer: rbuild_oci::BlobWriter,
        info: &LayerInfo,
    ) -> Result<LayerRecord, BuildError> {
        let (digest, size) = writer.commit()?;
        debug_assert_eq!(digest, info.digest);
        let rec = LayerRecord {
            digest,
            diff_id: info.diff_id,
            size,
            media_type: info.media_type().to_string(),
        };
        if let Some(k) = key {
            self.store
                .put_key("layers", k, &serde_json::to_vec(&rec).map_err(other)?)?;
        }
        Ok(rec)
    }

    /// Reads the lock for `target` and chooses each package's wheel.
    ///
    /// Fails with [`BuildError::NoWheels`] (naming every such package and the platform) when a
    /// locked package has no wheel that fits the target.
    pub async fn plan_wheels(
        &self,
        req: &BuildRequest,
        target: &Target,
    ) -> Result<(Option<Lock>, Vec<ChosenWheel>), BuildError> {
        let (lock, chosen, missing) = self.plan_wheels_partial(req, target).await?;
        if !missing.is_empty() {
            return Err(BuildError::NoWheels {
                platform: target.platform.to_string(),
                missing,
            });
        }
        Ok((lock, chosen))
    }

    /// Like [`Builder::plan_wheels`], but packages without a fitting wheel are returned (third
    /// element) instead of failing, so a plan can show them next to the other platforms' wheels.
    pub async fn plan_wheels_partial(
        &self,
        req: &BuildRequest,
        target: &Target,
    ) -> Result<(Option<Lock>, Vec<ChosenWheel>, Vec<MissingWheel>), BuildError> {
        let plan = self.plan_wheels_with(req, target, None).await?;
        Ok((plan.lock, plan.chosen, plan.missing))
    }

    /// The key a wheel choice is recorded under ([`LABEL_WHEELS`]): everything the choice depends
    /// on when every package is pinned by hashes (the lockfile's bytes and name, the target, the
    /// extras, groups and marker overrides, the indexes).
    fn plan_key(
        &self,
        req: &BuildRequest,
        target: &Target,
        lock: &Lock,
        lock_digest: &Digest,
    ) -> String {
        #[derive(Serialize)]
        struct Key<'a> {
            version: u32,
            lock: String,
            lock_name: String,
            target: &'a Target,
            resolve: String,
            markers: String,
            indexes: Vec<String>,
        }
        let k = Key {
            version: 1,
            lock: lock_digest.to_string(),
            lock_name: lock
                .path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            target,
            resolve: format!("{:?}", req.resolve),
            markers: format!("{:?}", req.marker_overrides),
            indexes: self.index.indexes(),
        };
        Digest::of(&canonical_json(&k).expect("key serializes")).hex()
    }

    /// [`Builder::plan_wheels_partial`] with the lock's digest, the plan key when the choice is
    /// fixed by the lock, and whether the choice was taken from `recorded`: with a record (from the
    /// image this build replaces) under the same key, a lock whose listings the store lacks takes
    /// the recorded choice instead of asking the index.
    async fn plan_wheels_with(
        &self,
        req: &BuildRequest,
        target: &Target,
        recorded: Option<&RecordedWheels>,
    ) -> Result<WheelPlan, BuildError> {
        let lock_path = match &req.lock {
            Some(p) => p.clone(),
            None => match rbuild_lock::detect_lockfile(&req.context) {
                Ok(p) => p,
                Err(rbuild_lock::Error::NoLockfile { .. }) => {
                    return Ok(WheelPlan::none());
                }
                Err(e) => return Err(e.into()),
            },
        };
        let mut env = target.marker_env();
        for (k, v) in &req.marker_overrides {
            env = env.with_override(k, v).map_err(other)?;
        }
        // Reading the lock and the stored index answers is blocking work: off the async threads,
        // so the platforms of a multi-platform build do it side by side.
        let (lock, tags, stored, lock_digest, fixed) = {
            let store = self.store.clone();
            let indexes = self.index.indexes();
            let find_links = !self.index.options().find_links.is_empty();
            let resolve = req.resolve.clone();
            let target = target.clone();
            tokio::task::spawn_blocking(move || -> Result<_, BuildError> {
                let lock = rbuild_lock::read_lock(&lock_path, &env, &resolve)?;
                let stored = lock
                    .packages
                    .iter()
                    .map(|p| {
                        let key = listing_key(&indexes, find_links, p);
                        Ok((stored_listing(&store, key.as_deref(), p)?, key))
                    })
                    .collect::<Result<Vec<_>, BuildError>>()?;
                // The choice is fixed by the lock when every package is pinned by hashes and no
                // local directory of wheels takes part.
                let fixed = !find_links
                    && lock.find_links.is_empty()
                    && lock.packages.iter().all(|p| !p.hashes.is_empty());
                let lock_digest = sha256_file(&lock.path)?;
                Ok((lock, target.tags(), stored, lock_digest, fixed))
            })
            .await
            .map_err(other)??
        };
        let plan_key = fixed.then(|| self.plan_key(req, target, &lock, &lock_digest));
        if let (Some(key), Some(rec)) = (&plan_key, recorded)
            && rec.key == *key
            && stored.iter().any(|(s, _)| s.is_none())
            && let Some(chosen) = rec.choice_for(&lock)
        {
            // The image this build replaces chose these wheels for the same lock and target: no
            // need to ask the index for the listings the store does not have.
            return Ok(WheelPlan {
                lock: Some(lock),
                lock_digest: Some(lock_digest),
                chosen,
                missing: Vec::new(),
                plan_key,
                from_record: true,
            });
        }
        let mut chosen = Vec::new();
        let mut missing = Vec::new();
        // Ask the index about every other package at once (16 at a time), not one after the other.
        use futures::StreamExt as _;
        let listed: Vec<Result<rbuild_lock::LockedPackage, BuildError>> =
            futures::stream::iter(lock.packages.iter().cloned().zip(stored))
                .map(|(pkg, (stored, key))| async move {
                    match stored {
                        Some(p) => Ok(p),
                        None => self.index_files(pkg, key).await,
                    }
                })
                .buffered(16)
                .collect()
                .await;
        for pkg in listed {
            let pkg = pkg?;
            match rbuild_lock::choose_wheel(&pkg, &tags) {
                Ok(c) => chosen.push(c),
                Err(e) => missing.push(MissingWheel {
                    name: pkg.name.clone(),
                    version: pkg.version.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        Ok(WheelPlan {
            lock: Some(lock),
            lock_digest: Some(lock_digest),
            chosen,
            missing,
            plan_key,
            from_record: false,
        })
    }

    /// The package with its files from the index. The index's answer for a
    /// package pinned by hashes is kept in the store (only the files those hashes allow, which
    /// cannot change), so building the same pins again asks the index nothing.
    ///
    /// The caller has looked in the lock and the store first ([`stored_listing`]) under
    /// `cache_key` ([`listing_key`]), where the answer is kept.
    async fn index_files(
        &self,
        pkg: rbuild_lock::LockedPackage,
        cache_key: Option<String>,
    ) -> Result<rbuild_lock::LockedPackage, BuildError> {
        let files = self
            .index
            .list_files_in(&pkg.name, pkg.source.index_url())
            .await?;
        let files = files
            .into_iter()
            .filter(|f| {
                rbuild_python::wheel_name::WheelFilename::parse(&f.filename)
                    .map(|w| {
                        w.version.to_string() == pkg.version
                            || rbuild_python::normalize_name(&w.version.to_string())
                                == rbuild_python::normalize_name(&pkg.version)
                    })
                    .unwrap_or(false)
                    || (!f.is_wheel() && f.filename.contains(&format!("-{}.", pkg.version)))
            })
            .map(|f| LockedFile {
                kind: if f.is_wheel() {
                    rbuild_lock::FileKind::Wheel
                } else {
                    rbuild_lock::FileKind::Sdist
                },
                // A --find-links file is listed before it is hashed: hash it here so the
                // lock's hashes can be checked against it.
                sha256: f.sha256.or_else(|| {
                    let path = f.url.strip_prefix("file://")?;
                    let file = std::fs::File::open(path).ok()?;
                    Digest::of_reader(file).ok().map(|(d, _)| d)
                }),
                filename: f.filename,
                url: Some(f.url),
                path: None,
                size: f.size,
            })
            .collect();
        let out = pkg.with_index_files(files);
        if let Some(k) = &cache_key
            && !out.files.is_empty()
        {
            let cached: Vec<CachedFile> = out
                .files
                .iter()
                .map(|f| CachedFile {
                    filename: f.filename.clone(),
                    wheel: f.kind == rbuild_lock::FileKind::Wheel,
                    url: f.url.clone(),
                    sha256: f.sha256,
                    size: f.size,
                })
                .collect();
            self.store.put_key(
                "index-files",
                k,
                &serde_json::to_vec(&cached).map_err(other)?,
            )?;
        }
        Ok(out)
    }

    fn deps_key(
        req: &BuildRequest,
        lock_digest: &Digest,
        wheels: &[ChosenWheel],
        target: &Target,
        base_digest: Option<Digest>,
    ) -> String {
        #[derive(Serialize)]
        struct Key<'a> {
            version: u32,
            lock: String,
            wheels: Vec<(&'a str, &'a str, Option<String>)>,
            target: &'a Target,
            base: Option<String>,
            epoch: u64,
            compression: &'static str,
            strict: bool,
        }
        let k = Key {
            version: LAYER_FORMAT_VERSION,
            lock: lock_digest.to_string(),
            wheels: wheels
                .iter()
                .map(|w| {
                    (
                        w.name.as_str(),
                        w.filename.as_str(),
                        w.sha256.map(|d| d.to_string()),
                    )
                })
                .collect(),
            target,
            base: base_digest.map(|d| d.to_string()),
            epoch: req.epoch,
            compression: req.compression.as_str(),
            strict: req.strict,
        };
        Digest::of(&canonical_json(&k).expect("key serializes")).hex()
    }

    /// Downloads the wheels and installs them into a new layer in the store.
    async fn build_deps_layer(
        &self,
        req: &BuildRequest,
        key: &str,
        wheels: &[ChosenWheel],
        target: &Target,
        facts: &BaseFacts,
        platform: &str,
    ) -> Result<LayerRecord, BuildError> {
        let t0 = Instant::now();
        let requests: Vec<WheelRequest> = wheels.iter().map(wheel_request).collect();
        let downloaded = self
            .index
            .download_all(requests, &self.store, &Warn(self.progress.clone()))
            .await?;
        let fetched = downloaded.iter().filter(|d| d.fetched).count();
        let bytes: u64 = downloaded
            .iter()
            .filter(|d| d.fetched)
            .map(|d| d.size)
            .sum();
        self.progress.step(
            platform,
            "download",
            &format!(
                "{} wheels ({} downloaded, {:.1} MB; {} from the store)",
                downloaded.len(),
                fetched,
                bytes as f64 / 1e6,
                downloaded.len() - fetched
            ),
            elapsed(t0),
        );

        let t1 = Instant::now();
        let inputs: Vec<rbuild_wheel::WheelInput> = downloaded
            .iter()
            .map(|d| rbuild_wheel::WheelInput {
                path: d.path.clone(),
                filename: d.filename.clone(),
                expected_name: d.name.clone(),
                expected_version: d.version.clone(),
            })
            .collect();
        let install_target = rbuild_wheel::InstallTarget {
            interpreter: target.interpreter.clone(),
            purelib: target.scheme.purelib.clone(),
            platlib: target.scheme.platlib.clone(),
            scripts: target.scheme.scripts.clone(),
            headers: target.scheme.headers.clone(),
            data: target.scheme.data.clone(),
            python_version: (
                target.python_version.major as u8,
                target.python_version.minor as u8,
            ),
        };
        let installed = target
            .installed
            .iter()
            .map(|d| {
                let rel = d.dist_info_path.trim_start_matches('/').to_string();
                let site_dir = d
                    .dist_info_path
                    .rsplit_once('/')
                    .map(|(p, _)| p.to_string())
                    .unwrap_or_default();
                rbuild_wheel::BaseDist {
                    name: d.name.clone(),
                    version: d.version.clone(),
                    dist_info: d.dist_info_path.clone(),
                    record: facts
                        .records
                        .get(&rel)
                        .and_then(|r| rbuild_wheel::parse_record_paths(r.as_bytes()).ok()),
                    site_dir,
                }
            })
            .collect();
        let base_info = rbuild_wheel::BaseInfo {
            dir_modes: facts.dir_modes.clone(),
            installed,
        };
        let opts = rbuild_wheel::InstallOptions {
            strict: req.strict,
            ..Default::default()
        };
        let layer_opts = LayerOptions {
            compression: req.compression,
            mtime: req.epoch,
        };
        let writer = self.store.writer()?;
        let (blob, info, report) = tokio::task::spawn_blocking(move || -> Result<_, BuildError> {
            let mut w = LayerWriter::new(writer, &layer_opts)?;
            w.auto_parents(false);
            let report = rbuild_wheel::install_wheels(
                &inputs,
                &install_target,
                &base_info,
                &opts,
                &mut Sink(&mut w),
            )?;
            let (blob, info) = w.finish()?;
            Ok((blob, info, report))
        })
        .await
        .map_err(other)??;
        for w in &report.warnings {
            self.progress.warning(&format!("{w:?}"));
        }
        let rec = self.finish_layer(Some(key), blob, &info)?;
        self.progress.step(
            platform,
            "deps",
            &format!(
                "installed {} distributions, {} files, {:.1} MB → {} ({:.1} MB {})",
                report.distributions.len(),
                report.files,
                info.uncompressed_size as f64 / 1e6,
                &rec.digest.to_string()[..19],
                rec.size as f64 / 1e6,
                req.compression.as_str()
            ),
            elapsed(t1),
        );
        Ok(rec)
    }

    fn build_user_layer(
        &self,
        req: &BuildRequest,
        facts: &BaseFacts,
        uid: u32,
        gid: u32,
        home: &str,
        key: &str,
    ) -> Result<Option<LayerRecord>, BuildError> {
        let files = user_files(
            facts.passwd.as_deref().map(str::as_bytes),
            facts.group.as_deref().map(str::as_bytes),
            uid,
            gid,
            "app",
            home,
        );
        if files.passwd.is_none() && files.group.is_none() {
            return Ok(None);
        }
        let opts = LayerOptions {
            compression: req.compression,
            mtime: req.epoch,
        };
        let mut w = LayerWriter::new(self.store.writer()?, &opts)?;
        w.auto_parents(false);
        w.append_dir("etc", facts.dir_modes.get("etc").copied().unwrap_or(0o755))?;
        if let Some(g) = &files.group {
            w.append_bytes("etc/group", 0o644, g)?;
        }
        if let Some(p) = &files.passwd {
            w.append_bytes("etc/passwd", 0o644, p)?;
        }
        let (blob, info) = w.finish()?;
        Ok(Some(self.finish_layer(Some(key), blob, &info)?))
    }

    /// Plans one platform (target + wheels) without building anything. Fails like a build would
    /// when a locked package has no wheel for the platform.
    pub async fn plan(
        &self,
        req: &BuildRequest,
        platform: &Platform,
    ) -> Result<PlatformPlan, BuildError> {
        let plan = self.plan_partial(req, platform, &Tops::default()).await?;
        if !plan.missing.is_empty() {
            return Err(BuildError::NoWheels {
                platform: plan.target.platform.to_string(),
                missing: plan.missing,
            });
        }
        Ok(plan)
    }

    async fn plan_partial(
        &self,
        req: &BuildRequest,
        platform: &Platform,
        tops: &Tops,
    ) -> Result<PlatformPlan, BuildError> {
        let base = self.resolve_base(req, platform, tops).await?;
        let (target, _) = self.base_facts(req, &base, platform).await?;
        let (lock, packages, missing) = self.plan_wheels_partial(req, &target).await?;
        Ok(PlatformPlan {
            platform: platform.to_string(),
            target,
            lockfile: lock.as_ref().map(|l| l.path.clone()),
            notes: lock.map(|l| l.notes).unwrap_or_default(),
            packages,
            missing,
        })
    }

    /// Plans every requested platform, concurrently, in the order requested.
    ///
    /// A platform where some locked packages have no fitting wheel is still planned: those packages
    /// are in [`PlatformPlan::missing`], so the plans can be shown side by side. Any other error
    /// (the base has no such platform, the index cannot be reached) fails, naming the platform.
    pub async fn plan_platforms(
        &self,
        req: &BuildRequest,
    ) -> Result<Vec<PlatformPlan>, BuildError> {
        let tops = Tops::default();
        let results: Vec<Result<PlatformPlan, BuildError>> =
            futures::stream::iter(req.platforms.iter())
                .map(|p| self.plan_partial(req, p, &tops))
                .buffered(platform_concurrency())
                .collect()
                .await;
        let names: Vec<String> = req.platforms.iter().map(|p| p.to_string()).collect();
        collect_platforms(&names, results)
    }

    /// Builds the image for every requested platform.
    pub async fn build(&self, req: &BuildRequest) -> Result<BuildOutput, BuildError> {
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
    async fn prepare_platform(
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
    async fn finish_platform(
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

/// Reading a sequence of layer streams once for two consumers.
mod tee {
    use std::cell::RefCell;
    use std::io::{self, Read};
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

    /// Bytes per message.
    const CHUNK: usize = 256 * 1024;
    /// Messages in flight per consumer (so at most 2 × 8 × 256 KiB buffered).
    const DEPTH: usize = 8;

    enum Msg {
        /// A layer starts (or could not be opened).
        Start(Result<(), String>),
        Data(Arc<[u8]>),
        /// The layer ended (or failed while reading).
        End(Result<(), String>),
    }

    /// Runs `a` and `b` on their own threads, each over the same layers (as an iterator of
    /// `io::Result<reader>`, like `layers`), while this thread reads (decompresses) each layer once
    /// and hands both the same bytes. A consumer may stop early (return, or skip the rest of a layer);
    /// the other still gets everything.
    pub fn read_twice<L, R, A, B, TA, TB>(layers: L, a: A, b: B) -> (TA, TB)
    where
        L: IntoIterator<Item = io::Result<R>>,
        R: Read,
        A: FnOnce(Layers) -> TA + Send,
        B: FnOnce(Layers) -> TB + Send,
        TA: Send,
        TB: Send,
    {
        let (tx_a, rx_a) = sync_channel(DEPTH);
        let (tx_b, rx_b) = sync_channel(DEPTH);
        std::thread::scope(|scope| {
            let ha = scope.spawn(move || a(Layers::new(rx_a)));
            let hb = scope.spawn(move || b(Layers::new(rx_b)));
            produce(layers, [Some(tx_a), Some(tx_b)]);
            let ra = ha.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            let rb = hb.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            (ra, rb)
        })
    }

    fn produce<L, R>(layers: L, mut txs: [Option<SyncSender<Msg>>; 2])
    where
        L: IntoIterator<Item = io::Result<R>>,
        R: Read,
    {
        // A consumer that has gone (dropped its receiver) is no longer fed.
        let send = |txs: &mut [Option<SyncSender<Msg>>; 2], msg: &dyn Fn() -> Msg| {
            for tx in txs.iter_mut() {
                if tx.as_ref().is_some_and(|t| t.send(msg()).is_err()) {
                    *tx = None;
                }
            }
            txs.iter().any(Option::is_some)
        };
        for layer in layers {
            let mut reader = match layer {
                Ok(r) => r,
                Err(e) => {
                    let e = e.to_string();
                    if !send(&mut txs, &|| Msg::Start(Err(e.clone()))) {
                        return;
                    }
                    continue;
                }
            };
            if !send(&mut txs, &|| Msg::Start(Ok(()))) {
                return;
            }
            let end = loop {
                let mut buf = vec![0u8; CHUNK];
                let mut n = 0;
                let read = loop {
                    match reader.read(&mut buf[n..]) {
                        Ok(0) => break Ok(()),
                        Ok(k) => {
                            n += k;
                            if n == CHUNK {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e.to_string()),
                    }
                };
                if n > 0 {
                    buf.truncate(n);
                    let data: Arc<[u8]> = buf.into();
                    if !send(&mut txs, &|| Msg::Data(data.clone())) {
                        return;
                    }
                }
                match read {
                    Ok(()) if n == CHUNK => {}
                    r => break r,
                }
            };
            if !send(&mut txs, &|| Msg::End(end.clone())) {
                return;
            }
        }
    }

    struct State {
        rx: Receiver<Msg>,
        /// Inside a layer whose `End` has not been received.
        in_layer: bool,
        /// How many layers have started (a reader of an earlier layer reads nothing more).
        layer: u64,
    }

    /// One consumer's view of the layers: an iterator of readers, one per layer, in order.
    pub struct Layers {
        state: Rc<RefCell<State>>,
    }

    impl Layers {
        fn new(rx: Receiver<Msg>) -> Layers {
            Layers {
                state: Rc::new(RefCell::new(State {
                    rx,
                    in_layer: false,
                    layer: 0,
                })),
            }
        }
    }

    impl Iterator for Layers {
        type Item = io::Result<LayerReader>;

        fn next(&mut self) -> Option<Self::Item> {
            let mut st = self.state.borrow_mut();
            // Skip what the previous layer's reader left unread.
            while st.in_layer {
                match st.rx.recv() {
                    Ok(Msg::End(_)) | Err(_) => st.in_layer = false,
                    Ok(_) => {}
                }
            }
            match st.rx.recv().ok()? {
                Msg::Start(Ok(())) => {
                    st.in_layer = true;
                    st.layer += 1;
                    Some(Ok(LayerReader {
                        layer: st.layer,
                        state: self.state.clone(),
                        chunk: None,
                        pos: 0,
                    }))
                }
                Msg::Start(Err(e)) => Some(Err(io::Error::other(e))),
                // Not sent outside a layer.
                Msg::Data(_) | Msg::End(_) => None,
            }
        }
    }

    /// The bytes of one layer.
    pub struct LayerReader {
        layer: u64,
        state: Rc<RefCell<State>>,
        chunk: Option<Arc<[u8]>>,
        pos: usize,
    }

    impl Read for LayerReader {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            loop {
                if let Some(c) = &self.chunk {
                    if self.pos < c.len() {
                        let n = out.len().min(c.len() - self.pos);
                        out[..n].copy_from_slice(&c[self.pos..self.pos + n]);
                        self.pos += n;
                        return Ok(n);
                    }
                    self.chunk = None;
                }
                let mut st = self.state.borrow_mut();
                if !st.in_layer || st.layer != self.layer {
                    return Ok(0);
                }
                match st.rx.recv() {
                    Ok(Msg::Data(d)) => {
                        self.chunk = Some(d);
                        self.pos = 0;
                    }
                    Ok(Msg::End(r)) => {
                        st.in_layer = false;
                        return r.map(|()| 0).map_err(io::Error::other);
                    }
                    Ok(Msg::Start(_)) | Err(_) => {
                        st.in_layer = false;
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the layer stream ended early",
                        ));
                    }
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn layers(contents: &[&[u8]]) -> Vec<io::Result<io::Cursor<Vec<u8>>>> {
            contents
                .iter()
                .map(|c| Ok(io::Cursor::new(c.to_vec())))
                .collect()
        }

        fn read_all(l: Layers) -> Vec<io::Result<Vec<u8>>> {
            l.map(|r| {
                let mut v = Vec::new();
                r?.read_to_end(&mut v)?;
                Ok(v)
            })
            .collect()
        }

        #[test]
        fn both_consumers_get_every_byte_of_every_layer() {
            let big: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
            let input: Vec<&[u8]> = vec![b"first", &big, b"", b"last"];
            let (a, b) = read_twice(layers(&input), read_all, read_all);
            for got in [a, b] {
                let got: Vec<Vec<u8>> = got.into_iter().map(Result::unwrap).collect();
                assert_eq!(got, input.iter().map(|c| c.to_vec()).collect::<Vec<_>>());
            }
        }

        #[test]
        fn a_consumer_that_stops_early_does_not_block_the_other() {
            let big: Vec<u8> = vec![7; 40 * CHUNK];
            let input: Vec<&[u8]> = vec![&big, &big, b"end"];
            let (first_bytes, all) = read_twice(
                layers(&input),
                |mut l| {
                    let mut head = [0u8; 3];
                    l.next().unwrap().unwrap().read_exact(&mut head).unwrap();
                    head
                },
                read_all,
            );
            assert_eq!(first_bytes, [7, 7, 7]);
            assert_eq!(all.len(), 3);
            assert_eq!(all[2].as_ref().unwrap(), b"end");
        }

        #[test]
        fn skipping_the_rest_of_a_layer_lands_on_the_next_one() {
            let big: Vec<u8> = vec![1; 5 * CHUNK];
            let input: Vec<&[u8]> = vec![&big, b"second"];
            let (a, _) = read_twice(
                layers(&input),
                |mut l| {
                    let mut one = [0u8; 1];
                    l.next().unwrap().unwrap().read_exact(&mut one).unwrap();
                    let mut v = Vec::new();
                    l.next().unwrap().unwrap().read_to_end(&mut v).unwrap();
                    (one, v, l.next().is_none())
                },
                |_| (),
            );
            assert_eq!(a, ([1], b"second".to_vec(), true));

            // A reader kept past its layer reads nothing of the next one.
            let (stale, _) = read_twice(
                layers(&[b"one", b"two"]),
                |mut l| {
                    let mut first = l.next().unwrap().unwrap();
                    let _second = l.next().unwrap().unwrap();
                    let mut v = Vec::new();
                    first.read_to_end(&mut v).unwrap();
                    v
                },
                |_| (),
            );
            assert!(stale.is_empty());
        }

        #[test]
        fn open_and_read_errors_reach_both_consumers() {
            struct Failing;
            impl Read for Failing {
                fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                    Err(io::Error::other("corrupt gzip"))
                }
            }
            let input: Vec<io::Result<Box<dyn Read>>> = vec![
                Err(io::Error::other("blob missing")),
                Ok(Box::new(Failing)),
                Ok(Box::new(io::Cursor::new(b"ok".to_vec()))),
            ];
            let (a, b) = read_twice(input, read_all, read_all);
            for got in [a, b] {
                assert_eq!(got.len(), 3);
                assert!(
                    got[0]
                        .as_ref()
                        .unwrap_err()
                        .to_string()
                        .contains("blob missing")
                );
                assert!(
                    got[1]
                        .as_ref()
                        .unwrap_err()
                        .to_string()
                        .contains("corrupt gzip")
                );
                assert_eq!(got[2].as_ref().unwrap(), b"ok");
            }
        }
    }
}

/// `(remote URL, HEAD commit)` when `dir` is a git checkout (read from `.git` without running git).
fn git_info(dir: &Path) -> Option<(Option<String>, String)> {
    let git = dir.join(".git");
    if !git.is_dir() {
        return None;
    }
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let revision = match head.strip_prefix("ref: ") {
        Some(r) => match std::fs::read_to_string(git.join(r)) {
            Ok(s) => s.trim().to_string(),
            Err(_) => {
                let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
                packed
                    .lines()
                    .find(|l| l.ends_with(&format!(" {r}")))?
                    .split(' ')
                    .next()?
                    .to_string()
            }
        },
        None => head.to_string(),
    };
    if revision.len() != 40 || !revision.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let config = std::fs::read_to_string(git.join("config")).unwrap_or_default();
    let mut in_origin = false;
    let mut url = None;
    for line in config.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_origin = l == "[remote \"origin\"]";
        } else if in_origin
            && let Some(u) = l.strip_prefix("url = ").or_else(|| l.strip_prefix("url="))
        {
            // Never record credentials embedded in a remote URL.
            let u = match u.split_once("://") {
                Some((scheme, rest)) => match rest.split_once('@') {
                    Some((_, host))
                        if !rest.split('/').next().unwrap_or("").is_empty()
                            && rest.find('@') < rest.find('/') =>
                    {
                        format!("{scheme}://{host}")
                    }
                    _ => u.to_string(),
                },
                None => u.to_string(),
            };
            url = Some(u);
        }
    }
    Some((url, revision))
}

#[cfg(test)]
mod tests {
    use super::*;

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
