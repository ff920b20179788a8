//! The rbuild library: build container images for Python applications without Docker, from Rust.
//!
//! rbuild reads a project's lockfile, picks for every pinned package the wheel that fits the base
//! image's interpreter, libc and CPU, installs the wheels without running Python into one dependency
//! layer keyed by the lockfile, adds the application as a separate layer that honours `.dockerignore`,
//! and publishes the image to a registry, an OCI layout or a docker-archive. Same inputs, same digests.
//!
//! Pipeline: resolve (base image, target, wheels) → fetch (verified into the content store) → layer
//! (dependency, user and app layers, deterministic) → assemble (config + manifest) → publish.
//!
//! # Example
//!
//! Build an image for a small app on an empty base and write it as an OCI layout (no network needed:
//! there is no lockfile, so no wheels; `scratch` has no Python, so the target is given):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let project = tempfile::tempdir()?;
//! std::fs::write(project.path().join("main.py"), "print('hello')\n")?;
//! let cache = tempfile::tempdir()?;
//! let store = rbuild::Store::open(cache.path())?;
//! let out = tempfile::tempdir()?;
//!
//! let built = rbuild::Build::new("scratch")
//!     .context(project.path())
//!     .platforms(["linux/amd64".parse::<rbuild::Platform>()?])
//!     .python_version("3.12")
//!     .libc("glibc-2.36")
//!     .entrypoint(["/usr/local/bin/python3", "-m", "main"])
//!     .label("team", "core")
//!     .store(store)
//!     .build()
//!     .await?;
//! built.write_oci_layout(out.path().join("layout"), Some("v1")).await?;
//!
//! // The same inputs always give the same image.
//! assert!(out.path().join("layout/index.json").is_file());
//! println!("built {}", built.digest());
//! # Ok(()) }
//! ```
//!
//! Settings given to [`Build`] are the highest level, as `rbuild build`'s flags are: below them
//! come `RBUILD_*` variables, the project's `[tool.rbuild]` (or `rbuild.toml`), the recipe and the
//! defaults, and `SOURCE_DATE_EPOCH` sets the timestamps, so the library and the CLI build the
//! same image from the same project ([`request`] describes the merge; [`Build::isolated`] turns
//! it off). Every setting is checked before anything is downloaded ([`BuildRequest::validate`]).
//!
//! For full control use [`Builder`] with a [`BuildRequest`] (from [`BuildRequest::from_flags`]),
//! and [`publish::publish`] with any [`Sink`]s. Every type in a public signature is re-exported
//! here, so `rbuild` is the only dependency a library user needs. Progress is reported through [`BuildProgress`], which the
//! caller implements; the library never prints and keeps no global state.

mod api;
pub mod assemble;
pub mod config;
pub mod error;
pub mod image;
pub mod layers;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod publish;
pub mod recipe;
pub mod request;
pub mod rootfs;
pub(crate) mod runner;
pub mod spec;
pub mod supply;
pub mod time;

pub use api::{Build, Built, Error};
pub use assemble::ImageFormat;
pub use config::{ConfigError, Settings};
pub use error::{BuildError, MissingWheel, PlatformFailure};
pub use image::BuiltImage;
pub use pipeline::{BuildOutput, Builder};
pub use plan::PlatformPlan;
pub use progress::{BuildProgress, NoBuildProgress};
pub use publish::{PublishError, PublishReport, Sink};
pub use recipe::RecipeError;
pub use request::{
    BaseRef, BuildRequest, ConfigSources, DEFAULT_BASE, RequestError, RequestFlags, ResolvedRequest,
};
pub use supply::{Attachment, AttachmentKind, SupplyChain};

// The types of other rbuild crates that appear in this crate's public signatures.
pub use rbuild_attest::{SigningKey, VerifyingKey};
pub use rbuild_index::{IndexClient, IndexOptions};
pub use rbuild_layer::Compression;
pub use rbuild_lock::{ChosenWheel, ResolveOptions};
pub use rbuild_oci::{Digest, Platform, PlatformParseError, Store, StoreError};
pub use rbuild_python::target::{Target, TargetOverrides};
pub use rbuild_registry::{
    Client, ClientOptions, Credential, CredentialProvider, Reference, ReferenceError,
};
pub use rbuild_sbom::Format as SbomFormat;

/// The README's Rust examples, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
