//! Errors of a build: each message says what failed, where, and what to do.

use serde::Serialize;

use crate::recipe::{self};

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
    /// Bytecode could not be compiled (the message names the interpreter or file and the way
    /// out, `--no-compile-bytecode`).
    #[error("bytecode: {0}")]
    Bytecode(String),
    /// A source distribution could not be built into a wheel (the message names the package,
    /// what is missing and the ways out).
    #[error(transparent)]
    Sdist(#[from] rbuild_pep517::BuildError),
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
    /// The lock lacks requirements of the packages it installs (the image would fail to import
    /// them); `--allow-incomplete-lock` builds anyway.
    #[error(transparent)]
    IncompleteLock(#[from] rbuild_python::closure::IncompleteLock),
    /// Anything else, with its message.
    #[error("{0}")]
    Other(String),
    /// The request is wrong; found before anything is downloaded.
    #[error(transparent)]
    Request(#[from] crate::request::RequestError),
    /// A rebase is not safe for Python; every reason of every platform is named.
    #[error(transparent)]
    Refused(Box<crate::rebase::RebaseRefused>),
}

impl BuildError {
    /// True when the error means "this platform cannot be built from these inputs": a locked
    /// package has no wheel for it, or the base image has no manifest for it. Such platforms are
    /// left out with [`crate::BuildRequest::skip_unsupported_platforms`]; every other error fails the build.
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

pub(crate) fn describe_failures(failures: &[PlatformFailure]) -> String {
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

pub(crate) fn other(e: impl std::fmt::Display) -> BuildError {
    BuildError::Other(e.to_string())
}
