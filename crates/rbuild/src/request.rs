//! What a build is asked to do: the base, the platforms, the lockfile and every image setting;
//! where those settings come from, and the checks they pass before anything is downloaded.
//!
//! # Where settings come from
//!
//! Highest first (see [`crate::config`] for the keys):
//!
//! 1. the caller's own settings ([`RequestFlags`]: the CLI's flags, or [`crate::Build`]'s methods);
//! 2. `RBUILD_*` environment variables (`RBUILD_TO` completed like ko's `KO_DOCKER_REPO`);
//! 3. `[tool.rbuild]` in the context's `pyproject.toml`, or its `rbuild.toml`;
//! 4. the named recipe (its app directory, e.g. s2i's `/opt/app-root/src`);
//! 5. defaults (`/app`, gzip, OCI, the host platform, `SOURCE_DATE_EPOCH` or 1980-01-01).
//!
//! [`BuildRequest::from_flags`] merges them (one function for the CLI and the library), and
//! [`BuildRequest::validate`] checks everything that needs no network: the user, the ports, the
//! recipe name, the app directory and the format/compression pair.
//!
//! ```
//! use rbuild::{BuildRequest, ConfigSources, RequestFlags};
//! let project = tempfile::tempdir()?;
//! std::fs::write(
//!     project.path().join("pyproject.toml"),
//!     "[project]\nname = \"demo\"\n[tool.rbuild]\nports = [8000]\nuser = \"2000\"\n",
//! )?;
//! let mut flags = RequestFlags::default();
//! flags.settings.user = Some("3000:3000".into()); // a flag beats the file
//! let env = |k: &str| (k == "SOURCE_DATE_EPOCH").then(|| "1700000000".to_string());
//! let resolved = BuildRequest::from_flags(project.path(), flags, ConfigSources::Env(&env))?;
//! assert_eq!(resolved.request.user.as_deref(), Some("3000:3000"));
//! assert_eq!(resolved.request.ports, ["8000/tcp"]);
//! assert_eq!(resolved.request.epoch, 1_700_000_000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rbuild_layer::Compression;
use rbuild_lock::ResolveOptions;
use rbuild_oci::{ManifestKind, Platform, Store};
use rbuild_python::target::TargetOverrides;
use rbuild_registry::{Client, Reference};

use crate::assemble::ImageFormat;
use crate::config::{ConfigError, Settings};
use crate::publish::Sink;
use crate::recipe::{self, RecipeError};

/// The base image used when none is given and the target is not fully given.
pub const DEFAULT_BASE: &str = "python:3.12-slim";

/// The base image to build on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseRef {
    /// An empty image.
    Scratch,
    /// An image in a registry.
    Image(Reference),
}

impl BaseRef {
    /// `scratch`, or an image reference (`python:3.12-slim`).
    pub fn parse(s: &str) -> Result<BaseRef, RequestError> {
        match s {
            "scratch" => Ok(BaseRef::Scratch),
            r => {
                Reference::parse(r)
                    .map(BaseRef::Image)
                    .map_err(|source| RequestError::Reference {
                        setting: "base",
                        value: r.to_string(),
                        source,
                    })
            }
        }
    }
}

/// Everything a build needs to know.
#[derive(Clone, Debug)]
#[non_exhaustive]
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
    /// `app_dir` was set by `--app-dir` or `app-dir` in the config (else the base's `WorkingDir`
    /// wins over it, see [`crate::spec::image_settings_on`]).
    pub app_dir_explicit: bool,
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
    /// The app object a recipe serves (`--app module:object` / `module:create_app()`); `None`
    /// detects it from the source.
    pub app: Option<String>,
    /// The health check: `None` adds one only when the app declares a health route.
    pub healthcheck: Option<crate::recipe::HealthcheckSetting>,
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
    /// Build even when the lock lacks requirements of the packages it installs (a warning lists
    /// them) instead of failing.
    pub allow_incomplete_lock: bool,
    /// Ship bytecode compiled by the base's own interpreter in the dependency and app layers
    /// (default on; a `scratch` base has no interpreter and gets none).
    pub compile_bytecode: bool,
    /// Without a `.dockerignore`/`.containerignore`, leave out what rbuild's default Python
    /// ignore list and the project's `.gitignore` name (default on).
    pub default_ignores: bool,
    /// The most dependency layers per image and platform
    /// ([`crate::layers::deps::partition`]; default
    /// [`crate::layers::deps::DEFAULT_DEPS_LAYERS`], 1 to
    /// [`crate::layers::deps::MAX_DEPS_LAYERS`]).
    pub deps_layers: usize,
}

/// The caller's own settings: the highest level of a request (the CLI's flags, or the methods of
/// [`crate::Build`]). Everything is text, parsed and checked by [`BuildRequest::from_flags`].
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct RequestFlags {
    /// The settings that also have a config key and an `RBUILD_*` variable.
    pub settings: Settings,
    /// `--python-version X.Y[.Z]`.
    pub python_version: Option<String>,
    /// `--libc glibc-X.Y` / `musl-X.Y`.
    pub libc: Option<String>,
    /// `--site-packages DIR`.
    pub site_packages: Option<String>,
    /// `--interpreter PATH`.
    pub interpreter: Option<String>,
    /// `--marker-env KEY=VALUE`.
    pub marker_env: BTreeMap<String, String>,
    /// `--require-hashes`.
    pub require_hashes: bool,
    /// `--offline`.
    pub offline: bool,
    /// `--cache-from REF` (the first `to` is always added).
    pub cache_from: Vec<String>,
    /// `--strict`.
    pub strict: bool,
    /// `--skip-unsupported-platforms`.
    pub skip_unsupported_platforms: bool,
    /// `--allow-incomplete-lock`.
    pub allow_incomplete_lock: bool,
    /// Timestamps (beats `SOURCE_DATE_EPOCH`).
    pub epoch: Option<u64>,
}

/// Where the levels below the caller's own settings come from.
#[derive(Clone, Copy)]
pub enum ConfigSources<'a> {
    /// Nothing but the caller's settings and the defaults: neither the project's
    /// `[tool.rbuild]` / `rbuild.toml`, nor `RBUILD_*`, nor `SOURCE_DATE_EPOCH`.
    Isolated,
    /// The project file, and `RBUILD_*` and `SOURCE_DATE_EPOCH` read through this function
    /// ([`ConfigSources::process`] for the process environment).
    Env(&'a (dyn Fn(&str) -> Option<String> + Sync)),
}

fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

impl ConfigSources<'static> {
    /// The project file and the process environment (what `rbuild build` reads).
    pub fn process() -> Self {
        ConfigSources::Env(&process_env)
    }
}

impl std::fmt::Debug for ConfigSources<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConfigSources::Isolated => "Isolated",
            ConfigSources::Env(_) => "Env(..)",
        })
    }
}

/// A request merged from every level, with the settings that are not part of [`BuildRequest`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ResolvedRequest {
    /// The request, validated.
    pub request: BuildRequest,
    /// The merged settings (`to`, the index settings, ...).
    pub settings: Settings,
    /// The references to push to (`to`), parsed.
    pub to: Vec<Reference>,
    /// `platforms` held `all`: every platform of the base's index, which needs the registry
    /// ([`ResolvedRequest::expand_all_platforms`]); `request.platforms` then holds the others.
    pub all_platforms: bool,
    /// The project's name (`[project] name`), when there is one.
    pub project: Option<String>,
    /// `--offline`.
    pub offline: bool,
}

/// A request that is wrong before anything is downloaded. Each message names the setting and
/// says what to write instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The project file or an `RBUILD_*` variable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A reference that does not parse.
    #[error("{setting} {value}: {source}")]
    Reference {
        /// `base`, `to` or `cache-from`.
        setting: &'static str,
        /// The text.
        value: String,
        /// Why.
        source: rbuild_registry::ReferenceError,
    },
    /// A platform that does not parse.
    #[error("platform {value:?}: {source}; expected os/arch[/variant] or all, e.g. linux/amd64")]
    Platform {
        /// The text.
        value: String,
        /// Why.
        source: rbuild_oci::PlatformParseError,
    },
    /// `--platform all` on `scratch`.
    #[error(
        "--platform all needs a base image, not scratch; name the platforms, e.g. --platform linux/amd64"
    )]
    AllOnScratch,
    /// A target override that does not parse.
    #[error(transparent)]
    Target(#[from] rbuild_python::target::TargetError),
    /// `SOURCE_DATE_EPOCH`.
    #[error(transparent)]
    Epoch(rbuild_layer::Error),
    /// A user that is not numeric.
    #[error("--user {0:?}: expected numeric UID[:GID], e.g. 1001:1001")]
    User(String),
    /// A port that does not parse.
    #[error(
        "--port {0:?}: expected a number from 1 to 65535, optionally with /tcp, /udp or /sctp, e.g. 8000 or 53/udp"
    )]
    Port(String),
    /// `--app` with no recipe to serve it.
    #[error(
        "--app {0:?} names the app a recipe serves, but no recipe runs (--recipe none or --entrypoint); write the command in --entrypoint instead, or drop --recipe none"
    )]
    AppWithoutRecipe(String),

    /// An unknown recipe, or recipe files that do not parse.
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    /// A relative app directory.
    #[error("--app-dir {0}: must be an absolute path in the image, e.g. /app")]
    AppDir(String),
    /// An unknown compression.
    #[error("--compression {0}: expected gzip or zstd")]
    Compression(String),
    /// An unknown format.
    #[error("--format {0}: expected oci or docker")]
    Format(String),
    /// A dependency-layer budget out of range.
    #[error(
        "--deps-layers {0}: expected 1 to {max} (containerd allows 127 layers per image, base included); the default is {default}",
        max = crate::layers::deps::MAX_DEPS_LAYERS,
        default = crate::layers::deps::DEFAULT_DEPS_LAYERS
    )]
    DepsLayers(usize),
    /// zstd layers in Docker's format.
    #[error(
        "--format docker cannot hold zstd-compressed layers; use --format oci or --compression gzip"
    )]
    ZstdInDocker,
    /// A docker-archive asked for with several platforms.
    #[error(
        "docker-archive holds one platform, but {0} were asked for; choose one with --platform"
    )]
    DockerArchivePlatforms(usize),
    /// No platform.
    #[error("no platform to build; name one, e.g. --platform linux/amd64")]
    NoPlatforms,
    /// `--platform all`: the base's index could not be read.
    #[error("--platform all: reading the platforms of {base}: {source}")]
    BasePlatforms {
        /// The base.
        base: String,
        /// Why.
        source: Box<rbuild_registry::Error>,
    },
}

impl BuildRequest {
    /// A request with the defaults for `context` on `base` (nothing read from the project or the
    /// environment; see [`BuildRequest::from_flags`]).
    pub fn new(context: impl Into<PathBuf>, base: BaseRef) -> Self {
        BuildRequest {
            context: context.into(),
            base,
            platforms: vec![Platform::host()],
            lock: None,
            resolve: ResolveOptions::default(),
            app_dir: "/app".into(),
            app_dir_explicit: false,
            entrypoint: None,
            cmd: None,
            env: BTreeMap::new(),
            user: None,
            ports: Vec::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            recipe: None,
            app: None,
            healthcheck: None,
            compression: Compression::Gzip,
            format: ImageFormat::Oci,
            epoch: crate::time::DEFAULT_EPOCH,
            target_overrides: TargetOverrides::default(),
            marker_overrides: BTreeMap::new(),
            cache_from: Vec::new(),
            strict: false,
            skip_unsupported_platforms: false,
            allow_incomplete_lock: false,
            compile_bytecode: true,
            default_ignores: true,
            deps_layers: crate::layers::deps::DEFAULT_DEPS_LAYERS,
        }
    }

    /// The merged settings of `sources` with `flags` on top (see the module docs), before any
    /// recipe or default: what [`BuildRequest::from_flags`] builds its request from.
    pub fn merged_settings(
        context: &Path,
        flags: &Settings,
        sources: ConfigSources<'_>,
    ) -> Result<(Settings, Option<String>), RequestError> {
        let (file, project, env) = match sources {
            ConfigSources::Isolated => (Settings::default(), None, Settings::default()),
            ConfigSources::Env(get) => {
                let (file, project) = Settings::from_project_dir(context)?;
                let name = crate::config::repo_name(context, project.as_deref());
                let env = Settings::from_env(get, Some(&name))?;
                (file, project, env)
            }
        };
        let mut flags = flags.clone();
        let name = crate::config::repo_name(context, project.as_deref());
        flags.to = flags.to.map(|t| {
            t.iter()
                .map(|r| crate::config::complete_repo(r, Some(&name)))
                .collect()
        });
        let settings = Settings::default()
            .overlay(file)
            .overlay(env)
            .overlay(flags);
        Ok((settings, project))
    }

    /// The request for `context`: `flags` over `RBUILD_*` over the project's `[tool.rbuild]` or
    /// `rbuild.toml` over the recipe over the defaults, read from `sources`; then
    /// [validated](BuildRequest::validate). Nothing is downloaded; `platforms = ["all"]` is left
    /// for [`ResolvedRequest::expand_all_platforms`].
    pub fn from_flags(
        context: impl Into<PathBuf>,
        flags: RequestFlags,
        sources: ConfigSources<'_>,
    ) -> Result<ResolvedRequest, RequestError> {
        let context = context.into();
        let (settings, project) = Self::merged_settings(&context, &flags.settings, sources)?;

        // With the target fully given (python version, libc and a platform), no base is needed.
        let target_given = flags.python_version.is_some()
            && flags.libc.is_some()
            && flags
                .settings
                .platforms
                .iter()
                .flatten()
                .any(|p| p != "all");
        let default_base = if target_given {
            "scratch"
        } else {
            DEFAULT_BASE
        };
        let base = BaseRef::parse(settings.base.as_deref().unwrap_or(default_base))?;

        let (platforms, all_platforms) = Self::platforms_from(&settings, &base)?;

        let mut request = BuildRequest::new(context, base);
        request.platforms = platforms;
        request.lock = settings.lock.as_ref().map(PathBuf::from);
        request.resolve.extras = settings.extras.clone().unwrap_or_default();
        request.resolve.groups = settings.groups.clone().unwrap_or_default();
        request.resolve.require_hashes = flags.require_hashes;
        Self::apply_target_flags(&mut request, &flags)?;

        Self::apply_image_settings(&mut request, &settings)?;
        request.epoch = match (flags.epoch, sources) {
            (Some(e), _) => e,
            (None, ConfigSources::Env(get)) => match get("SOURCE_DATE_EPOCH") {
                Some(v) if !v.is_empty() => {
                    rbuild_layer::parse_source_date_epoch(&v).map_err(RequestError::Epoch)?
                }
                _ => crate::time::DEFAULT_EPOCH,
            },
            (None, ConfigSources::Isolated) => crate::time::DEFAULT_EPOCH,
        };
        request.strict = flags.strict;
        request.skip_unsupported_platforms = flags.skip_unsupported_platforms;
        request.allow_incomplete_lock = flags.allow_incomplete_lock;
        let parse_ref = |setting: &'static str, r: &str| {
            Reference::parse(r).map_err(|source| RequestError::Reference {
                setting,
                value: r.to_string(),
                source,
            })
        };
        let to = settings
            .to
            .iter()
            .flatten()
            .map(|t| parse_ref("to", t))
            .collect::<Result<Vec<_>, _>>()?;
        for c in &flags.cache_from {
            request.cache_from.push(parse_ref("cache-from", c)?);
        }
        request.cache_from.extend(to.first().cloned());

        if !all_platforms {
            request.validate()?;
        } else {
            request.validate_settings()?;
        }
        // Ports normalised once validated (`8000` → `8000/tcp`), as the image config writes them.
        request.ports = request
            .ports
            .iter()
            .map(|p| crate::assemble::normalize_port(p).map_err(|_| RequestError::Port(p.clone())))
            .collect::<Result<_, _>>()?;
        Ok(ResolvedRequest {
            request,
            settings,
            to,
            all_platforms,
            project,
            offline: flags.offline,
        })
    }

    /// The platforms named in the settings, each once, and whether `all` was among them.
    fn platforms_from(
        settings: &Settings,
        base: &BaseRef,
    ) -> Result<(Vec<Platform>, bool), RequestError> {
        let mut all_platforms = false;
        let mut platforms: Vec<Platform> = Vec::new();
        for p in settings.platforms.iter().flatten() {
            if p == "all" {
                all_platforms = true;
                continue;
            }
            let p: Platform = p.parse().map_err(|source| RequestError::Platform {
                value: p.clone(),
                source,
            })?;
            if !platforms.contains(&p) {
                platforms.push(p);
            }
        }
        if all_platforms && *base == BaseRef::Scratch {
            return Err(RequestError::AllOnScratch);
        }
        if platforms.is_empty() && !all_platforms {
            platforms.push(Platform::host());
        }
        Ok((platforms, all_platforms))
    }

    /// The target overrides (`--python-version`, `--libc`, …) and marker overrides of the flags.
    fn apply_target_flags(
        request: &mut BuildRequest,
        flags: &RequestFlags,
    ) -> Result<(), RequestError> {
        if let Some(v) = &flags.python_version {
            request.target_overrides.set_python_version(v)?;
        }
        if let Some(v) = &flags.libc {
            request.target_overrides.set_libc(v)?;
        }
        if let Some(v) = &flags.site_packages {
            request.target_overrides.set_site_packages(v)?;
        }
        if let Some(v) = &flags.interpreter {
            request.target_overrides.set_interpreter(v)?;
        }
        request.marker_overrides = flags.marker_env.clone();
        Ok(())
    }

    /// The image settings (app dir, entrypoint, env, user, ports, labels, recipe, compression, format).
    fn apply_image_settings(
        request: &mut BuildRequest,
        settings: &Settings,
    ) -> Result<(), RequestError> {
        // A recipe named in the flags or config may choose the app directory (s2i: /opt/app-root/src).
        let recipe_dir = match settings.recipe.as_deref() {
            Some(name) if name != "none" => known_recipe(name)?.app_dir,
            _ => None,
        };
        request.app_dir = settings
            .app_dir
            .clone()
            .or(recipe_dir)
            .unwrap_or_else(|| "/app".into());
        request.app_dir_explicit = settings.app_dir.is_some();
        request.entrypoint = settings.entrypoint.clone();
        request.cmd = settings.cmd.clone();
        request.env = settings.env.clone().unwrap_or_default();
        request.user = settings.user.clone();
        request.ports = settings.ports.clone().unwrap_or_default();
        request.labels = settings.labels.clone().unwrap_or_default();
        request.annotations = settings.annotations.clone().unwrap_or_default();
        request.recipe = settings.recipe.clone();
        request.app = settings.app.clone();
        request.healthcheck = settings.healthcheck.clone();
        request.compression = match settings.compression.as_deref() {
            None => Compression::Gzip,
            Some(c) => c
                .parse()
                .map_err(|_| RequestError::Compression(c.to_string()))?,
        };
        request.compile_bytecode = settings.compile_bytecode.unwrap_or(true);
        request.default_ignores = settings.default_ignores.unwrap_or(true);
        request.deps_layers = settings
            .deps_layers
            .unwrap_or(crate::layers::deps::DEFAULT_DEPS_LAYERS);
        request.format = match settings.format.as_deref() {
            None | Some("oci") => ImageFormat::Oci,
            Some("docker") => ImageFormat::Docker,
            Some(f) => return Err(RequestError::Format(f.to_string())),
        };
        Ok(())
    }

    /// Whether the images carry bytecode: asked for, and a base with an interpreter (not
    /// `scratch`).
    pub fn ships_bytecode(&self) -> bool {
        self.compile_bytecode && matches!(self.base, BaseRef::Image(_))
    }

    /// Checks everything about the request that needs no network, so a wrong setting fails
    /// before any download: at least one platform, a numeric `user`, valid `ports`, a known
    /// `recipe`, an absolute `app_dir`, and no zstd layers in Docker's format.
    ///
    /// Whether a named or detected recipe *fits* the project needs the lock's packages; the
    /// pipeline checks that.
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.platforms.is_empty() {
            return Err(RequestError::NoPlatforms);
        }
        self.validate_settings()
    }

    fn validate_settings(&self) -> Result<(), RequestError> {
        if let Some(u) = &self.user
            && crate::layers::user::parse_user(u).is_none()
        {
            return Err(RequestError::User(u.clone()));
        }
        for p in &self.ports {
            if crate::assemble::normalize_port(p).is_err() {
                return Err(RequestError::Port(p.clone()));
            }
        }
        if let Some(name) = self.recipe.as_deref()
            && name != "none"
        {
            known_recipe(name)?;
        }
        if let Some(app) = &self.app {
            if self.recipe.as_deref() == Some("none")
                || (self.entrypoint.is_some() && self.recipe.is_none())
            {
                return Err(RequestError::AppWithoutRecipe(app.clone()));
            }
            crate::recipe::AppTarget::parse(app, true)?;
        }
        if !self.app_dir.starts_with('/') {
            return Err(RequestError::AppDir(self.app_dir.clone()));
        }
        if self.format == ImageFormat::Docker && self.compression == Compression::Zstd {
            return Err(RequestError::ZstdInDocker);
        }
        if !(1..=crate::layers::deps::MAX_DEPS_LAYERS).contains(&self.deps_layers) {
            return Err(RequestError::DepsLayers(self.deps_layers));
        }
        Ok(())
    }

    /// Checks the sinks against the request: a docker-archive holds one platform.
    pub fn validate_sinks(&self, sinks: &[Sink]) -> Result<(), RequestError> {
        if sinks
            .iter()
            .any(|s| matches!(s, Sink::DockerArchive { .. }))
            && self.platforms.len() > 1
        {
            return Err(RequestError::DockerArchivePlatforms(self.platforms.len()));
        }
        Ok(())
    }
}

fn known_recipe(name: &str) -> Result<recipe::Recipe, RequestError> {
    let recipes = recipe::load_recipes()?;
    recipes.get(name).cloned().ok_or_else(|| {
        RequestError::Recipe(RecipeError::Unknown {
            name: name.to_string(),
            available: recipes.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    })
}

impl ResolvedRequest {
    /// Replaces `all` in the platforms by every platform of the base image's index (the platform
    /// of its config when the base is a single image), keeping each platform once; then validates
    /// the request. Does nothing when `all` was not asked for.
    pub async fn expand_all_platforms(
        &mut self,
        client: &Client,
        store: &Store,
    ) -> Result<(), RequestError> {
        if !self.all_platforms {
            return Ok(());
        }
        let BaseRef::Image(base) = &self.request.base else {
            return Err(RequestError::AllOnScratch);
        };
        let err = |e: rbuild_registry::Error| RequestError::BasePlatforms {
            base: base.to_string(),
            source: Box::new(e),
        };
        let top = client.get_manifest(base).await.map_err(err)?;
        let mut platforms: Vec<Platform> = Vec::new();
        match top.parse().map_err(|e| err(e.into()))? {
            ManifestKind::Index(index) => {
                platforms.extend(index.image_entries().filter_map(|d| d.platform.clone()));
            }
            ManifestKind::Image(_) => {
                let resolved = client
                    .resolve_image(base, &Platform::host())
                    .await
                    .map_err(err)?;
                let (_, cfg) = client.fetch_config(&resolved, store).await.map_err(err)?;
                platforms.push(Platform::new(
                    &cfg.os,
                    &cfg.architecture,
                    cfg.variant.as_deref(),
                ));
            }
        }
        for p in std::mem::take(&mut self.request.platforms) {
            if !platforms.contains(&p) {
                platforms.push(p);
            }
        }
        self.request.platforms = platforms;
        self.all_platforms = false;
        self.request.validate()
    }

    /// `base` with the merged index settings (`index-url`, `extra-index-url`, `find-links`) and
    /// the `offline` and `require_hashes` flags applied.
    pub fn index_options(&self, base: rbuild_index::IndexOptions) -> rbuild_index::IndexOptions {
        let mut o = base;
        if let Some(u) = &self.settings.index_url {
            o.index_url = Some(u.clone());
        }
        if let Some(x) = &self.settings.extra_index_url {
            o.extra_index_urls = x.clone();
        }
        if let Some(f) = &self.settings.find_links {
            o.find_links = f.iter().map(PathBuf::from).collect();
        }
        o.offline |= self.offline;
        o.require_hashes |= self.request.resolve.require_hashes;
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Sync {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn project(pyproject: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pyproject.toml"), pyproject).unwrap();
        dir
    }

    const FILE: &str = "[project]\nname = \"My_App\"\n[tool.rbuild]\nbase = \"file/base\"\nuser = \"2000\"\ncompression = \"zstd\"\nports = [8000]\nplatforms = [\"linux/arm64\"]\n";

    fn resolve(
        dir: &Path,
        flags: RequestFlags,
        vars: &[(&str, &str)],
    ) -> Result<ResolvedRequest, RequestError> {
        let get = env(vars);
        BuildRequest::from_flags(dir, flags, ConfigSources::Env(&get))
    }

    #[test]
    fn scalars_take_the_flag_then_env_then_file_then_default() {
        let dir = project(FILE);
        let vars = [
            ("RBUILD_BASE", "env/base"),
            ("RBUILD_USER", "3000:3000"),
            ("RBUILD_TO", "reg.example/team"),
        ];
        let mut flags = RequestFlags::default();
        flags.settings.base = Some("flag/base".into());
        let r = resolve(dir.path(), flags, &vars).unwrap();
        assert_eq!(
            r.request.base,
            BaseRef::parse("flag/base").unwrap(),
            "flags beat env"
        );
        assert_eq!(
            r.request.user.as_deref(),
            Some("3000:3000"),
            "env beats the file"
        );
        assert_eq!(
            r.request.compression,
            Compression::Zstd,
            "the file beats the default"
        );
        assert_eq!(r.request.ports, ["8000/tcp"], "ports normalised");
        assert_eq!(r.request.platforms, [Platform::new("linux", "arm64", None)]);
        assert_eq!(r.request.app_dir, "/app", "the default");
        assert_eq!(r.request.format, ImageFormat::Oci);
        assert_eq!(
            r.to,
            [Reference::parse("reg.example/team/my-app:latest").unwrap()],
            "RBUILD_TO completed like KO_DOCKER_REPO"
        );
        assert_eq!(r.request.cache_from, r.to, "the first --to is a cache");
        assert_eq!(r.project.as_deref(), Some("My_App"));

        let r = resolve(dir.path(), RequestFlags::default(), &vars[..1]).unwrap();
        assert_eq!(r.request.base, BaseRef::parse("env/base").unwrap());
        assert_eq!(
            r.request.user.as_deref(),
            Some("2000"),
            "the file when no env"
        );
        let r = resolve(dir.path(), RequestFlags::default(), &[]).unwrap();
        assert_eq!(r.request.base, BaseRef::parse("file/base").unwrap());
    }

    #[test]
    fn isolated_reads_neither_the_project_nor_the_environment() {
        let dir = project(FILE);
        let r =
            BuildRequest::from_flags(dir.path(), RequestFlags::default(), ConfigSources::Isolated)
                .unwrap();
        assert_eq!(r.request.base, BaseRef::parse(DEFAULT_BASE).unwrap());
        assert_eq!(r.request.user, None);
        assert_eq!(r.request.compression, Compression::Gzip);
        assert_eq!(r.request.platforms, [Platform::host()]);
        assert_eq!(r.request.epoch, crate::time::DEFAULT_EPOCH);
    }

    #[test]
    fn source_date_epoch_is_read_and_an_explicit_epoch_beats_it() {
        let dir = project("[project]\nname = \"x\"\n");
        let r = resolve(
            dir.path(),
            RequestFlags::default(),
            &[("SOURCE_DATE_EPOCH", "1700000000")],
        )
        .unwrap();
        assert_eq!(r.request.epoch, 1_700_000_000);
        let flags = RequestFlags {
            epoch: Some(42),
            ..Default::default()
        };
        let r = resolve(dir.path(), flags, &[("SOURCE_DATE_EPOCH", "1700000000")]).unwrap();
        assert_eq!(r.request.epoch, 42);
        let r = resolve(
            dir.path(),
            RequestFlags::default(),
            &[("SOURCE_DATE_EPOCH", "")],
        )
        .unwrap();
        assert_eq!(
            r.request.epoch,
            crate::time::DEFAULT_EPOCH,
            "empty is unset"
        );
        let err = resolve(
            dir.path(),
            RequestFlags::default(),
            &[("SOURCE_DATE_EPOCH", "yesterday")],
        )
        .unwrap_err();
        assert!(matches!(err, RequestError::Epoch(_)), "{err}");
        assert!(err.to_string().contains("SOURCE_DATE_EPOCH"), "{err}");
    }

    #[test]
    fn a_named_recipe_chooses_the_app_dir_below_the_settings() {
        let dir = project("[tool.rbuild]\nrecipe = \"s2i\"\n");
        let r = resolve(dir.path(), RequestFlags::default(), &[]).unwrap();
        assert_eq!(r.request.app_dir, "/opt/app-root/src");
        let r = resolve(
            dir.path(),
            RequestFlags::default(),
            &[("RBUILD_APP_DIR", "/srv")],
        )
        .unwrap();
        assert_eq!(r.request.app_dir, "/srv");
    }

    #[test]
    fn the_target_given_defaults_the_base_to_scratch() {
        let dir = project("");
        let mut flags = RequestFlags {
            python_version: Some("3.11".into()),
            libc: Some("glibc-2.36".into()),
            ..Default::default()
        };
        flags.settings.platforms = Some(vec!["linux/amd64".into()]);
        let r = resolve(dir.path(), flags.clone(), &[]).unwrap();
        assert_eq!(r.request.base, BaseRef::Scratch);
        flags.settings.platforms = Some(vec!["all".into()]);
        let r = resolve(dir.path(), flags.clone(), &[]).unwrap();
        assert_eq!(r.request.base, BaseRef::parse(DEFAULT_BASE).unwrap());
        assert!(r.all_platforms && r.request.platforms.is_empty());
        flags.settings.base = Some("scratch".into());
        assert!(matches!(
            resolve(dir.path(), flags, &[]).unwrap_err(),
            RequestError::AllOnScratch
        ));
    }

    fn flags_with(f: impl FnOnce(&mut Settings)) -> RequestFlags {
        let mut flags = RequestFlags::default();
        f(&mut flags.settings);
        flags
    }

    #[test]
    fn bad_settings_fail_with_what_to_write() {
        let dir = project("");
        let err = |flags| {
            resolve(dir.path(), flags, &[])
                .expect_err("should be refused")
                .to_string()
        };
        assert!(err(flags_with(|s| s.user = Some("app".into()))).contains("numeric UID[:GID]"));
        assert!(err(flags_with(|s| s.user = Some("1000:staff".into()))).contains("--user"));
        assert!(
            err(flags_with(|s| s.ports = Some(vec!["http".into()]))).contains("--port \"http\"")
        );
        assert!(err(flags_with(|s| s.ports = Some(vec!["0".into()]))).contains("1 to 65535"));
        let e = err(flags_with(|s| s.recipe = Some("fastapy".into())));
        assert!(
            e.contains("no recipe named \"fastapy\"") && e.contains("fastapi, flask"),
            "{e}"
        );
        assert!(err(flags_with(|s| s.app_dir = Some("app".into()))).contains("absolute"));
        assert!(err(flags_with(|s| s.compression = Some("xz".into()))).contains("gzip or zstd"));
        assert!(err(flags_with(|s| s.format = Some("v1".into()))).contains("oci or docker"));
        let e = err(flags_with(|s| {
            s.format = Some("docker".into());
            s.compression = Some("zstd".into());
        }));
        assert!(e.contains("--compression gzip"), "{e}");
        assert!(err(flags_with(|s| s.platforms = Some(vec!["linux".into()]))).contains("platform"));
        assert!(err(flags_with(|s| s.base = Some("UPPER/Case".into()))).contains("base"));
        for n in [0, 65] {
            let e = err(flags_with(|s| s.deps_layers = Some(n)));
            assert!(e.contains("--deps-layers") && e.contains("1 to 64"), "{e}");
        }
    }

    #[test]
    fn deps_layers_come_from_the_file_and_default_to_the_budget() {
        let dir = project("[tool.rbuild]\ndeps-layers = 3\n");
        let r = resolve(dir.path(), RequestFlags::default(), &[]).unwrap();
        assert_eq!(r.request.deps_layers, 3);
        let r = resolve(dir.path(), flags_with(|s| s.deps_layers = Some(1)), &[]).unwrap();
        assert_eq!(r.request.deps_layers, 1);
        let dir = project("");
        let r = resolve(dir.path(), RequestFlags::default(), &[]).unwrap();
        assert_eq!(
            r.request.deps_layers,
            crate::layers::deps::DEFAULT_DEPS_LAYERS
        );
        let dir = project("[tool.rbuild]\ndeps-layers = \"many\"\n");
        let e = resolve(dir.path(), RequestFlags::default(), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("deps-layers") && e.contains("a number of layers"),
            "{e}"
        );
    }

    #[test]
    fn a_docker_archive_holds_one_platform() {
        let mut r = BuildRequest::new(".", BaseRef::Scratch);
        let sinks = [Sink::DockerArchive {
            file: "x.tar".into(),
            tag: None,
        }];
        r.platforms = vec![Platform::linux_amd64()];
        r.validate_sinks(&sinks).unwrap();
        r.platforms.push(Platform::new("linux", "arm64", None));
        assert!(matches!(
            r.validate_sinks(&sinks),
            Err(RequestError::DockerArchivePlatforms(2))
        ));
        r.platforms.clear();
        assert!(matches!(r.validate(), Err(RequestError::NoPlatforms)));
    }
}
