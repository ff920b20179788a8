//! The Python target of an image: interpreter, install scheme, libc and CPU detection, platform tags and
//! PEP 508 markers.
//!
//! rbuild never runs Python to learn about the image it builds for. It reads the base image's layers
//! ([`target::detect_target`]) and computes what pip would compute inside it:
//!
//! - [`version`]: PEP 440 versions and specifiers (`requires-python`, markers);
//! - [`normalize_name`] / [`validate_name`]: PEP 503 / PEP 508 names, checked before any request;
//! - [`wheel_name`]: wheel file names and their expanded tag sets;
//! - [`tags`]: the ordered compatibility tags `packaging.tags.sys_tags()` would give in the image;
//! - [`markers`]: PEP 508 markers evaluated for the image (with PEP 751 `extras`/`dependency_groups`);
//! - [`requirement`]: PEP 508 requirement strings;
//! - [`rootfs`]: the one whiteout-aware reader of an image's layers, with visitors (target files,
//!   [`rootfs::BaseFacts`]);
//! - [`target`]: the [`target::Target`] itself and its detection from layers;
//! - [`closure`]: whether the distributions an image installs have all they require;
//! - [`imports`]: the third-party modules a project's source imports.
//!
//! Every module has its own error type; [`Error`] wraps them all for callers that want one.

pub mod closure;
pub mod imports;
pub mod markers;
mod name;
pub mod requirement;
pub mod rootfs;
pub mod tags;
pub mod target;
pub mod version;
pub mod wheel_name;

pub use name::{NameError, normalize_name, validate_name};

/// Any error of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An invalid PEP 440 version or specifier.
    #[error(transparent)]
    Version(#[from] version::VersionError),
    /// An invalid distribution name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// An invalid wheel file name.
    #[error(transparent)]
    WheelName(#[from] wheel_name::WheelNameError),
    /// A marker that cannot be parsed or evaluated.
    #[error(transparent)]
    Marker(#[from] markers::MarkerError),
    /// An invalid requirement string.
    #[error(transparent)]
    Requirement(#[from] requirement::RequirementError),
    /// The target of an image could not be determined.
    #[error(transparent)]
    Target(#[from] target::TargetError),
}
