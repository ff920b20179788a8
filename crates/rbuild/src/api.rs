//! The typed builder: the shortest way to build and publish an image from Rust.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rbuild_index::{IndexClient, IndexOptions};
use rbuild_layer::Compression;
use rbuild_oci::{Platform, Store};
use rbuild_registry::{Client, ClientOptions, Reference};

use crate::image::BuiltImage;
use crate::publish::{PublishError, PublishReport, Sink, publish};
use crate::{BaseRef, BuildError, BuildOutput, BuildProgress, BuildRequest, Builder};

/// Errors of the typed builder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reference that does not parse.
    #[error("invalid image reference {reference:?}: {source}")]
    Reference {
        /// The text.
        reference: String,
        /// Why.
        source: rbuild_registry::ReferenceError,
    },
    /// A setting that does not parse.
    #[error("{0}")]
    Setting(String),
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

/// A build being described. Nothing happens until [`Build::build`].
///
/// ```no_run
/// # async fn demo() -> Result<(), rbuild::Error> {
/// let built = rbuild::Build::new("python:3.12-slim")?
///     .context("examples/fastapi-app")
///     .recipe("fastapi")
///     .env("LOG_LEVEL", "info")
///     .build()
///     .await?;
/// built.push("registry.example.com/team/fastapi-app:1.0").await?;
/// println!("{}", built.digest());
/// # Ok(()) }
/// ```
pub struct Build {
    request: BuildRequest,
    client: ClientOptions,
    index: IndexOptions,
    store: Option<Store>,
    progress: Option<Arc<dyn BuildProgress>>,
}

impl Build {
    /// A build on `base` (`scratch`, or a reference such as `python:3.12-slim`) of the current
    /// directory, for the host platform.
    pub fn new(base: &str) -> Result<Build, Error> {
        let base = match base {
            "scratch" => BaseRef::Scratch,
            r => BaseRef::Image(Reference::parse(r).map_err(|source| Error::Reference {
                reference: r.into(),
                source,
            })?),
        };
        Ok(Build {
            request: BuildRequest::new(".", base),
            client: ClientOptions::default(),
            index: IndexOptions::default(),
            store: None,
            progress: None,
        })
    }

    /// The project directory.
    pub fn context(mut self, dir: impl Into<PathBuf>) -> Self {
        self.request.context = dir.into();
        self
    }

    /// The lockfile (default: detected in the context).
    pub fn lockfile(mut self, path: impl Into<PathBuf>) -> Self {
        self.request.lock = Some(path.into());
        self
    }

    /// The recipe (`fastapi`, `flask`, `django`, `script`, `s2i`, or `none`); default: detected.
    pub fn recipe(mut self, name: &str) -> Self {
        self.request.recipe = Some(name.to_string());
        self
    }

    /// The entrypoint (exec form).
    pub fn entrypoint<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.request.entrypoint = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// An environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.request.env.insert(key.to_string(), value.to_string());
        self
    }

    /// Labels.
    pub fn labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.request.labels.extend(labels);
        self
    }

    /// The user (`UID[:GID]`).
    pub fn user(mut self, user: &str) -> Self {
        self.request.user = Some(user.to_string());
        self
    }

    /// The app directory in the image.
    pub fn app_dir(mut self, dir: &str) -> Self {
        self.request.app_dir = dir.to_string();
        self
    }

    /// Platforms to build (`linux/amd64`, ...).
    pub fn platforms(mut self, platforms: impl IntoIterator<Item = Platform>) -> Self {
        self.request.platforms = platforms.into_iter().collect();
        self
    }

    /// Layer compression.
    pub fn compression(mut self, c: Compression) -> Self {
        self.request.compression = c;
        self
    }

    /// `SOURCE_DATE_EPOCH` for timestamps.
    pub fn epoch(mut self, seconds: u64) -> Self {
        self.request.epoch = seconds;
        self
    }

    /// The target's Python version, instead of detecting it (needed for `scratch` with a lockfile).
    pub fn python_version(mut self, version: &str) -> Result<Self, Error> {
        self.request
            .target_overrides
            .set_python_version(version)
            .map_err(|e| Error::Setting(e.to_string()))?;
        Ok(self)
    }

    /// The target's C library (`glibc-2.36`, `musl-1.2`), instead of detecting it.
    pub fn libc(mut self, libc: &str) -> Result<Self, Error> {
        self.request
            .target_overrides
            .set_libc(libc)
            .map_err(|e| Error::Setting(e.to_string()))?;
        Ok(self)
    }

    /// A registry reached over plain HTTP / without certificate checks.
    pub fn insecure_registry(mut self, host: &str) -> Self {
        self.client.insecure_registries.push(host.to_string());
        self
    }

    /// Registry client options (credentials, CAs, retries).
    pub fn registry_options(mut self, options: ClientOptions) -> Self {
        self.client = options;
        self
    }

    /// Package index options.
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

    /// The full request, for settings without a method here.
    pub fn request_mut(&mut self) -> &mut BuildRequest {
        &mut self.request
    }

    /// Builds the image (nothing is published yet). Dropping the future cancels the build; the store
    /// is never left with a partial entry.
    pub async fn build(self) -> Result<Built, Error> {
        let store = match self.store {
            Some(s) => s,
            None => Store::open_default()?,
        };
        let mut builder = Builder::new(
            Client::new(self.client)?,
            IndexClient::new(self.index)?,
            store,
        );
        if let Some(p) = self.progress {
            builder = builder.with_progress(p);
        }
        let output = builder.build(&self.request).await?;
        Ok(Built { builder, output })
    }
}

/// A built image, ready to publish to any number of sinks.
pub struct Built {
    builder: Builder,
    output: BuildOutput,
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
