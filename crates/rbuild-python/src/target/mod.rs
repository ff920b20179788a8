//! The target of a build: the Python, install scheme, C library and CPU of one platform of a base image.
//!
//! See [`detect_target`] for how it is read from the image's layers.

mod types;

pub use types::{
    InstalledDist, Libc, LibcFamily, MajorMinor, Platform, Scheme, Target, wheel_arch_for,
};
