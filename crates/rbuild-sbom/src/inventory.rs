//! The typed inventory an SBOM is written from.

use rbuild_oci::Digest;
use serde::Serialize;

/// Everything in one platform's image, as the build knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Inventory {
    /// A name for the image (the project's name; never a host path).
    pub image_name: String,
    /// The image manifest's digest (the SBOM's subject).
    pub image_digest: Digest,
    /// `os/arch[/variant]`.
    pub platform: String,
    /// The creation time, RFC 3339 UTC (`2024-01-01T00:00:00Z`): the image's own, never the clock.
    pub created: String,
    /// The version of rbuild that built it.
    pub tool_version: String,
    /// The base image, when it is not `scratch`.
    pub base: Option<BaseImage>,
    /// The base's OS packages.
    pub os: OsInventory,
    /// Every Python distribution rbuild installed (the project's own included).
    pub python: Vec<PythonDist>,
}

/// The base image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BaseImage {
    /// Its reference as given (`registry/library/python:3.11-slim`).
    pub name: String,
    /// The digest of the platform manifest the image was built on.
    pub digest: Digest,
}

/// The base image's OS packages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum OsInventory {
    /// No base (`scratch`), or no package database in it.
    None,
    /// Read from a package database.
    Packages {
        /// Which database.
        manager: PackageManager,
        /// `ID` of `os-release` (`debian`, `alpine`), when present.
        distro_id: Option<String>,
        /// `VERSION_ID` of `os-release` (`12`), when present.
        distro_version: Option<String>,
        /// The installed packages, sorted by name then architecture.
        packages: Vec<OsPackage>,
    },
    /// A database rbuild does not read (rpm), with the reason.
    Unreadable {
        /// Why (which database, what to do).
        reason: String,
    },
}

/// An OS package database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum PackageManager {
    /// Debian's dpkg (`/var/lib/dpkg/status`, distroless `status.d/`).
    Dpkg,
    /// Alpine's apk (`/lib/apk/db/installed`).
    Apk,
}

/// One installed OS package.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct OsPackage {
    /// The package name.
    pub name: String,
    /// The installed version (`2.36-9+deb12u4`).
    pub version: String,
    /// The architecture (`amd64`, `all`, `x86_64`), when recorded.
    pub arch: Option<String>,
    /// The source package (dpkg `Source`, apk origin), when recorded and different from the name.
    pub source: Option<String>,
}

/// A Python distribution installed into the image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PythonDist {
    /// The normalized name.
    pub name: String,
    /// The version.
    pub version: String,
    /// The wheel installed (file name and sha256), when known.
    pub wheel: Option<FileRef>,
    /// Where it came from.
    pub source: DistSource,
}

/// A file and its sha256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FileRef {
    /// The file name (no directory).
    pub filename: String,
    /// Its sha256.
    pub sha256: Digest,
}

/// Where a Python distribution came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum DistSource {
    /// A package index (its simple API URL, or the file's URL without query or credentials).
    Index {
        /// The URL.
        url: String,
    },
    /// A wheel file the lockfile names inside the project (path relative to the lockfile).
    LocalFile {
        /// The relative path.
        path: String,
    },
    /// A `--find-links` directory (the directory itself is a host path and not recorded).
    FindLinks,
    /// A wheel built by this build from a hash-pinned source distribution.
    Sdist {
        /// The sdist, by file name when known and sha256.
        sdist: SdistRef,
    },
    /// The project being built (its own wheel, built from the context).
    Project,
}

/// A source distribution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SdistRef {
    /// The file name, when known.
    pub filename: Option<String>,
    /// Its sha256 (the lock's pin).
    pub sha256: Digest,
}

impl DistSource {
    /// One line for humans and the SPDX `sourceInfo` field.
    pub fn describe(&self) -> String {
        match self {
            DistSource::Index { url } => format!("downloaded from the package index {url}"),
            DistSource::LocalFile { path } => format!("the lockfile's local file {path}"),
            DistSource::FindLinks => "a wheel of a --find-links directory".to_string(),
            DistSource::Sdist { sdist } => format!(
                "built by rbuild from the source distribution {} ({})",
                sdist
                    .filename
                    .as_deref()
                    .unwrap_or("(file name not recorded)"),
                sdist.sha256
            ),
            DistSource::Project => "the project itself, built from the build context".to_string(),
        }
    }

    /// A short kind (`index`, `local-file`, `find-links`, `sdist`, `project`).
    pub fn kind(&self) -> &'static str {
        match self {
            DistSource::Index { .. } => "index",
            DistSource::LocalFile { .. } => "local-file",
            DistSource::FindLinks => "find-links",
            DistSource::Sdist { .. } => "sdist",
            DistSource::Project => "project",
        }
    }
}
