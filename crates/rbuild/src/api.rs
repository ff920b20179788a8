//! The typed builder: the shortest way to build and publish an image from Rust.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rbuild_index::{IndexClient, IndexOptions};
use rbuild_layer::Compression;
use rbuild_oci::{Platform, Store};
use rbuild_registry::{
    ChainCredentials, Client, ClientOptions, Credential, DefaultCredentials, Reference,
    StaticCredentials,
};

use crate::assemble::ImageFormat;
use crate::image::BuiltImage;
use crate::publish::{PublishError, PublishReport, Sink, publish};
use crate::request::{ConfigSources, RequestError, RequestFlags, ResolvedRequest};
use crate::{BuildError, BuildOutput, BuildProgress, BuildRequest, Builder};

/// Errors of the typed builder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A reference that does not parse.
    #[error("invalid image reference {reference:?}: {source}")]
    Reference {
        /// The text.
        reference: String,
        /// Why.
        source: rbuild_registry::ReferenceError,
    },
    /// The request is wrong (a setting, the project's `[tool.rbuild]`, an `RBUILD_*` variable);
    /// found before anything is downloaded.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// Setting up the registry client.
    #[error(transparent)]
    Registry(#[from] rbuild_registry::Error),
    /// Setting up the index client.
    #[error(transparent)]
    Index(#[from] rbuild_index::Error),
    /// Opening the store.
    #[error(transparent)]
    Store(#[from] rbuild_oci::StoreError),
    /// The build.
    #[error(transparent)]
    Build(Box<BuildError>),
    /// Publishing.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl From<BuildError> for Error {
    fn from(e: BuildError) -> Self {
        Error::Build(Box::new(e))
    }
}

/// A build being described. Nothing happens until [`Build::build`]; every setting is checked
/// there, before anything is downloaded.
///
/// The settings given here are the highest level, like `rbuild build`'s flags: below them come
/// `RBUILD_*` environment variables, the project's `[tool.rbuild]` (or `rbuild.toml`), the recipe
/// and the defaults, and `SOURCE_DATE_EPOCH` sets the timestamps, exactly as for the CLI (see
/// [`crate::request`]). So the same project gives the same image through either.
/// [`Build::isolated`] reads neither the environment nor the project file.
///
/// Registry credentials: those given with [`Build::credential`], then podman's `auth.json`, then
/// Docker's `config.json` and its helpers (as the CLI), unless [`Build::registry_options`]
/// replaces the client options.
///
/// ```no_run
/// # async fn demo() -> Result<(), rbuild::Error> {
/// let built = rbuild::Build::new("python:3.12-slim")
///     .context("examples/fastapi-app")
///     .recipe("fastapi")
///     .env("LOG_LEVEL", "info")
///     .port("8000")
///     .build()
///     .await?;
/// built.push("registry.example.com/team/fastapi-app:1.0").await?;
/// println!("{}", built.digest());
/// # Ok(()) }
/// ```
pub struct Build {
    context: PathBuf,
    flags: RequestFlags,
    isolated: bool,
    client: Option<ClientOptions>,
    insecure: Vec<String>,
    credentials: StaticCredentials,
    index: IndexOptions,
    store: Option<Store>,
    progress: Option<Arc<dyn BuildProgress>>,
}

impl Build {
    /// A build on `base` (`scratch`, or a reference such as `python:3.12-slim`) of the current
    /// directory. The reference is checked by [`Build::build`].
    pub fn new(base: &str) -> Build {
        let mut b = Build::project(".");
        b.flags.settings.base = Some(base.to_string());
        b
    }

    /// A build of the project in `context` on the base its configuration names (`base` in
    /// `[tool.rbuild]` or `RBUILD_BASE`; default `python:3.12-slim`, or `scratch` when the
    /// Python version, libc and platform are all given).
    pub fn project(context: impl Into<PathBuf>) -> Build {
        Build {
            context: context.into(),
            flags: RequestFlags::default(),
            isolated: false,
            client: None,
            insecure: Vec::new(),
            credentials: StaticCredentials::new(),
            index: IndexOptions::default(),
            store: None,
            progress: None,
        }
    }

    /// Reads neither `RBUILD_*` nor `SOURCE_DATE_EPOCH` nor the project's `[tool.rbuild]` /
    /// `rbuild.toml`: only the settings given here and the defaults.
    pub fn isolated(mut self) -> Self {
        self.isolated = true;
        self
    }

    /// The base image (`scratch`, or a reference).
    pub fn base(mut self, base: &str) -> Self {
        self.flags.settings.base = Some(base.to_string());
        self
    }

    /// The project directory.
    pub fn context(mut self, dir: impl Into<PathBuf>) -> Self {
        self.context = dir.into();
        self
    }

    /// The lockfile (default: detected in the context).
    pub fn lockfile(mut self, path: impl Into<PathBuf>) -> Self {
        self.flags.settings.lock = Some(path.into().display().to_string());
        self
    }

    /// Installs this extra of the project (repeatable).
    pub fn extra(mut self, name: &str) -> Self {
        push(&mut self.flags.settings.extras, name);
        self
    }

    /// Installs this dependency group (repeatable).
    pub fn group(mut self, name: &str) -> Self {
        push(&mut self.flags.settings.groups, name);
        self
    }

    /// The package index (default `https://pypi.org/simple`).
    pub fn index_url(mut self, url: &str) -> Self {
        self.flags.settings.index_url = Some(url.to_string());
        self
    }

    /// Another index, searched after the index URL (repeatable).
    pub fn extra_index_url(mut self, url: &str) -> Self {
        push(&mut self.flags.settings.extra_index_url, url);
        self
    }

    /// A directory of wheels searched before any index (repeatable).
    pub fn find_links(mut self, dir: impl Into<PathBuf>) -> Self {
        push(
            &mut self.flags.settings.find_links,
            &dir.into().display().to_string(),
        );
        self
    }

    /// Uses only the content store and the find-links directories: no index requests.
    pub fn offline(mut self, offline: bool) -> Self {
        self.flags.offline = offline;
        self
    }

    /// Refuses lock entries without a sha256.
    pub fn require_hashes(mut self, require: bool) -> Self {
        self.flags.require_hashes = require;
        self
    }

    /// The recipe (`fastapi`, `flask`, `django`, `script`, `s2i`, or `none`); default: detected.
    pub fn recipe(mut self, name: &str) -> Self {
        self.flags.settings.recipe = Some(name.to_string());
        self
    }

    /// The entrypoint (exec form).
    pub fn entrypoint<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.flags.settings.entrypoint = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// The cmd (exec form).
    pub fn cmd<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.flags.settings.cmd = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// An environment variable (repeatable). Like `--env`, the variables given here replace the
    /// `env` table of the project's configuration.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        insert(&mut self.flags.settings.env, key, value);
        self
    }

    /// A label (repeatable; replaces the configuration's `labels`, like `--label`).
    pub fn label(mut self, key: &str, value: &str) -> Self {
        insert(&mut self.flags.settings.labels, key, value);
        self
    }

    /// Several labels (see [`Build::label`]).
    pub fn labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.flags
            .settings
            .labels
            .get_or_insert_with(BTreeMap::new)
            .extend(labels);
        self
    }

    /// A manifest annotation (repeatable; replaces the configuration's `annotations`).
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        insert(&mut self.flags.settings.annotations, key, value);
        self
    }

    /// The user (`UID[:GID]`, numeric).
    pub fn user(mut self, user: &str) -> Self {
        self.flags.settings.user = Some(user.to_string());
        self
    }

    /// An exposed port (`8000`, `53/udp`; repeatable; replaces the configuration's `ports`).
    pub fn port(mut self, port: &str) -> Self {
        push(&mut self.flags.settings.ports, port);
        self
    }

    /// The app object the recipe serves (`app.main:app`, `app:create_app()`; `--app`).
    pub fn app(mut self, app: &str) -> Self {
        self.flags.settings.app = Some(app.to_string());
        self
    }

    /// The health check (`--healthcheck PATH`, `--no-healthcheck`); not set: one only when the
    /// app declares a health route.
    pub fn healthcheck(mut self, setting: crate::recipe::HealthcheckSetting) -> Self {
        self.flags.settings.healthcheck = Some(setting);
        self
    }

    /// The app directory in the image (absolute; default `/app`).
    pub fn app_dir(mut self, dir: &str) -> Self {
        self.flags.settings.app_dir = Some(dir.to_string());
        self
    }

    /// Platforms to build (`linux/amd64`, ...).
    pub fn platforms(mut self, platforms: impl IntoIterator<Item = Platform>) -> Self {
        self.flags.settings.platforms =
            Some(platforms.into_iter().map(|p| p.to_string()).collect());
        self
    }

    /// Builds every platform of the base image's index.
    pub fn all_platforms(mut self) -> Self {
        self.flags.settings.platforms = Some(vec!["all".into()]);
        self
    }

    /// Whether the layers carry bytecode compiled by the base's own Python (default: yes).
    pub fn compile_bytecode(mut self, compile: bool) -> Self {
        self.flags.settings.compile_bytecode = Some(compile);
        self
    }

    /// The most dependency layers per image and platform (`--deps-layers`; 1 puts every
    /// dependency in one layer).
    pub fn deps_layers(mut self, n: usize) -> Self {
        self.flags.settings.deps_layers = Some(n);
        self
    }

    /// Layer compression.
    pub fn compression(mut self, c: Compression) -> Self {
        self.flags.settings.compression = Some(c.as_str().to_string());
        self
    }

    /// Manifest format.
    pub fn format(mut self, format: ImageFormat) -> Self {
        self.flags.settings.format = Some(
            match format {
                ImageFormat::Oci => "oci",
                ImageFormat::Docker => "docker",
            }
            .to_string(),
        );
        self
    }

    /// Seconds since the Unix epoch for every timestamp (beats `SOURCE_DATE_EPOCH`).
    pub fn epoch(mut self, seconds: u64) -> Self {
        self.flags.epoch = Some(seconds);
        self
    }

    /// The target's Python version (`X.Y` or `X.Y.Z`) instead of detecting it (needed for
    /// `scratch` with a lockfile).
    pub fn python_version(mut self, version: &str) -> Self {
        self.flags.python_version = Some(version.to_string());
        self
    }

    /// The target's C library (`glibc-2.36`, `musl-1.2`), instead of detecting it.
    pub fn libc(mut self, libc: &str) -> Self {
        self.flags.libc = Some(libc.to_string());
        self
    }

    /// The site-packages directory in the image, instead of detecting it.
    pub fn site_packages(mut self, dir: &str) -> Self {
        self.flags.site_packages = Some(dir.to_string());
        self
    }

    /// The interpreter path in the image, instead of detecting it.
    pub fn interpreter(mut self, path: &str) -> Self {
        self.flags.interpreter = Some(path.to_string());
        self
    }

    /// A PEP 508 marker value the image cannot tell (`platform_release`, ...).
    pub fn marker_env(mut self, key: &str, value: &str) -> Self {
        self.flags
            .marker_env
            .insert(key.to_string(), value.to_string());
        self
    }

    /// An image to look for reusable layers in (repeatable).
    pub fn cache_from(mut self, reference: &str) -> Self {
        self.flags.cache_from.push(reference.to_string());
        self
    }

    /// Makes two wheels writing different bytes to one path an error.
    pub fn strict(mut self, strict: bool) -> Self {
        self.flags.strict = strict;
        self
    }

    /// Leaves out platforms whose wheels are missing instead of failing.
    pub fn skip_unsupported_platforms(mut self, skip: bool) -> Self {
        self.flags.skip_unsupported_platforms = skip;
        self
    }

    /// Builds even when the lock misses requirements of the packages it installs (a warning
    /// instead of an error; the image may fail at import time).
    pub fn allow_incomplete_lock(mut self, allow: bool) -> Self {
        self.flags.allow_incomplete_lock = allow;
        self
    }

    /// A registry reached over plain HTTP / without certificate checks.
    pub fn insecure_registry(mut self, host: &str) -> Self {
        self.insecure.push(host.to_string());
        self
    }

    /// Credentials for `registry` (`host[:port]`), consulted before podman's and Docker's files.
    pub fn credential(mut self, registry: &str, credential: Credential) -> Self {
        self.credentials.insert(registry, credential);
        self
    }

    /// Registry client options (credentials, CAs, retries), replacing the defaults entirely
    /// (including [`Build::credential`]s and the default keychain).
    pub fn registry_options(mut self, options: ClientOptions) -> Self {
        self.client = Some(options);
        self
    }

    /// Package index options; the index settings of the request (`index_url`, ...) are applied
    /// on top.
    pub fn index_options(mut self, options: IndexOptions) -> Self {
        self.index = options;
        self
    }

    /// The content store (default: `$RBUILD_CACHE_DIR` or `~/.cache/rbuild`).
    pub fn store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Where progress goes (the library never prints).
    pub fn progress(mut self, progress: Arc<dyn BuildProgress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The caller's settings as a whole, for the CLI-shaped view of this build.
    pub fn flags_mut(&mut self) -> &mut RequestFlags {
        &mut self.flags
    }

    /// The request this build would run: every level merged and validated, nothing downloaded
    /// (`all` platforms are not expanded yet).
    pub fn request(&self) -> Result<ResolvedRequest, Error> {
        let sources = if self.isolated {
            ConfigSources::Isolated
        } else {
            ConfigSources::process()
        };
        Ok(BuildRequest::from_flags(
            self.context.clone(),
            self.flags.clone(),
            sources,
        )?)
    }

    /// Builds the image (nothing is published yet). Every setting is checked first, before
    /// anything is downloaded. Dropping the future cancels the build; the store is never left
    /// with a partial entry.
    pub async fn build(self) -> Result<Built, Error> {
        let mut resolved = self.request()?;
        let store = match self.store {
            Some(s) => s,
            None => Store::open_default()?,
        };
        let client_options = match self.client {
            Some(o) => o,
            None => ClientOptions {
                insecure_registries: self.insecure.clone(),
                certs_dirs: vec![
                    "/etc/containers/certs.d".into(),
                    "/etc/docker/certs.d".into(),
                ],
                credentials: Arc::new(ChainCredentials(vec![
                    Box::new(self.credentials),
                    Box::new(DefaultCredentials::from_env()),
                ])),
                host_memory: Some(store.clone()),
                ..Default::default()
            },
        };
        let client = Client::new(client_options)?;
        resolved.expand_all_platforms(&client, &store).await?;
        let index = IndexClient::new(resolved.index_options(self.index))?;
        let mut builder = Builder::new(client, index, store);
        if let Some(p) = self.progress {
            builder = builder.with_progress(p);
        }
        let output = builder.build(&resolved.request).await?;
        Ok(Built {
            builder,
            output,
            to: resolved.to,
        })
    }
}

fn push(list: &mut Option<Vec<String>>, value: &str) {
    list.get_or_insert_with(Vec::new).push(value.to_string());
}

fn insert(map: &mut Option<BTreeMap<String, String>>, key: &str, value: &str) {
    map.get_or_insert_with(BTreeMap::new)
        .insert(key.to_string(), value.to_string());
}

/// A built image, ready to publish to any number of sinks.
pub struct Built {
    builder: Builder,
    output: BuildOutput,
    to: Vec<Reference>,
}

impl Built {
    /// The digest of the image (its index when several platforms were built).
    pub fn digest(&self) -> rbuild_oci::Digest {
        self.output.image.digest()
    }

    /// The image.
    pub fn image(&self) -> &BuiltImage {
        &self.output.image
    }

    /// Everything the build produced (plans per platform, skipped platforms).
    pub fn output(&self) -> &BuildOutput {
        &self.output
    }

    /// The references the configuration names (`to` in `[tool.rbuild]`, `RBUILD_TO`); publish
    /// to them with [`Built::push_configured`].
    pub fn configured_targets(&self) -> &[Reference] {
        &self.to
    }

    /// Publishes to several sinks (registries first, then layouts and archives).
    pub async fn publish(&self, sinks: &[Sink]) -> Result<PublishReport, Error> {
        Ok(publish(
            self.builder.client(),
            &self.output.image,
            sinks,
            self.builder.store(),
        )
        .await?)
    }

    /// Pushes to the configured targets ([`Built::configured_targets`]).
    pub async fn push_configured(&self) -> Result<PublishReport, Error> {
        let sinks: Vec<Sink> = self.to.iter().cloned().map(Sink::Registry).collect();
        self.publish(&sinks).await
    }

    /// Pushes to one registry reference.
    pub async fn push(&self, reference: &str) -> Result<PublishReport, Error> {
        let r = Reference::parse(reference).map_err(|source| Error::Reference {
            reference: reference.into(),
            source,
        })?;
        self.publish(&[Sink::Registry(r)]).await
    }

    /// Writes an OCI image layout at `dir` with `tag`.
    pub async fn write_oci_layout(
        &self,
        dir: impl Into<PathBuf>,
        tag: Option<&str>,
    ) -> Result<PublishReport, Error> {
        self.publish(&[Sink::OciLayout {
            dir: dir.into(),
            tag: tag.map(str::to_string),
        }])
        .await
    }
}
