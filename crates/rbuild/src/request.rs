//! What a build is asked to do: the base, the platforms, the lockfile and every image setting.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rbuild_layer::Compression;
use rbuild_lock::ResolveOptions;
use rbuild_oci::Platform;
use rbuild_python::target::TargetOverrides;
use rbuild_registry::Reference;

use crate::assemble::ImageFormat;

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
    /// Build even when the lock lacks requirements of the packages it installs (a warning lists
    /// them) instead of failing.
    pub allow_incomplete_lock: bool,
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
            allow_incomplete_lock: false,
        }
    }
}
