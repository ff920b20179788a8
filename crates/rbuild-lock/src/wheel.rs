//! Choosing the wheel of a locked package for a target, as pip would.

use std::collections::BTreeSet;
use std::path::PathBuf;

use rbuild_oci::Digest;
use rbuild_python::tags::Tags;
use rbuild_python::wheel_name::WheelFilename;

use crate::error::{Error, Result};
use crate::model::{FileKind, LockedFile, LockedPackage};

/// The file to install for one package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChosenWheel {
    /// The normalized package name.
    pub name: String,
    /// The locked version.
    pub version: String,
    /// The wheel file name.
    pub filename: String,
    /// Where to download it, when the lock says.
    pub url: Option<String>,
    /// A local wheel (inside the lockfile's directory), when the lock names one.
    pub path: Option<PathBuf>,
    /// The index to find the file on by name when there is neither `url` nor `path` (Poetry); `None`
    /// means the configured/default index.
    pub index: Option<String>,
    /// The sha256 to verify; `None` only for requirements files without hashes (then the index's hash
    /// is used).
    pub sha256: Option<Digest>,
    /// The size, when the lock records it.
    pub size: Option<u64>,
    /// The wheel's best tag for the target (`cp311-cp311-manylinux_2_17_x86_64`).
    pub tag: String,
    /// That tag's rank in the target's tag list (0 is best).
    pub rank: usize,
    /// Where the file was chosen from: the lock's files, the index's listing (requirements files,
    /// Pipfile.lock), or a `--find-links` directory as the fallback of
    /// [`LockedPackage::with_find_links_files`].
    #[serde(default, skip_serializing_if = "WheelOrigin::is_lock")]
    pub origin: WheelOrigin,
}

/// A source distribution to build into a wheel, for a package with no fitting wheel
/// ([`choose_sdist`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SdistBuild {
    /// The normalized package name.
    pub name: String,
    /// The locked version.
    pub version: String,
    /// The sdist file name (`docopt-0.6.2.tar.gz`).
    pub filename: String,
    /// Where to download it, when the lock (or the index listing) says.
    pub url: Option<String>,
    /// A local file (inside the lockfile's directory), when the lock names one.
    pub path: Option<PathBuf>,
    /// The index to find the file on by name when there is neither `url` nor `path`.
    pub index: Option<String>,
    /// The sha256 the lock pins it to (always set: an sdist is built only when hash-verified).
    pub sha256: Digest,
    /// The size, when the lock records it.
    pub size: Option<u64>,
}

/// The source distribution to build for `pkg` when [`choose_wheel`] finds no wheel for the
/// target: the first sdist among the package's (lock- or index-listed, hash-allowed) files whose
/// sha256 is known. `None` when there is none, or the files were never listed.
///
/// Only files the lock allows are considered (for requirements files, the index's files were
/// filtered by the line's hashes in [`LockedPackage::with_index_files`]), so building from it is
/// as verified as installing a wheel.
pub fn choose_sdist(pkg: &LockedPackage) -> Option<SdistBuild> {
    if !pkg.files_listed {
        return None;
    }
    pkg.files
        .iter()
        .filter(|f| f.kind == FileKind::Sdist)
        .find_map(|f| {
            Some(SdistBuild {
                name: pkg.name.clone(),
                version: pkg.version.clone(),
                filename: f.filename.clone(),
                url: f.url.clone(),
                path: f.path.clone(),
                index: pkg.source.index_url().map(str::to_string),
                sha256: f.sha256?,
                size: f.size,
            })
        })
}

/// Where a [`ChosenWheel`] was chosen from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WheelOrigin {
    /// A file the lock lists (uv.lock, pylock.toml, poetry.lock, pdm.lock).
    #[default]
    Lock,
    /// A file the index lists whose hash the lock allows ([`LockedPackage::with_index_files`]).
    Index,
    /// A wheel of the user's `--find-links` directory, taken because no locked file fits the target
    /// ([`LockedPackage::with_find_links_files`]); verified against its own hash, not the lock's.
    FindLinks,
}

impl WheelOrigin {
    fn is_lock(&self) -> bool {
        *self == WheelOrigin::Lock
    }
}

/// A one-line summary of the platforms of wheels that do not fit, e.g. `only musllinux/aarch64 wheels
/// (cp311-cp311-musllinux_1_2_aarch64)`.
fn describe_wheels(wheels: &[WheelFilename]) -> String {
    if wheels.is_empty() {
        return "no wheels at all".into();
    }
    let mut families = BTreeSet::new();
    let mut pythons = BTreeSet::new();
    for w in wheels {
        for t in &w.tags {
            families.insert(platform_family(&t.platform));
            pythons.insert(t.interpreter.clone());
        }
    }
    let fam = families.into_iter().collect::<Vec<_>>().join(", ");
    let py = pythons.into_iter().collect::<Vec<_>>().join(", ");
    let mut names: Vec<&str> = wheels.iter().map(|w| w.filename.as_str()).collect();
    let more = names.len().saturating_sub(8);
    names.truncate(8);
    let mut list = names.join(", ");
    if more > 0 {
        list.push_str(&format!(", and {more} more"));
    }
    format!("only {fam} wheels for {py} ({list})")
}

/// `manylinux/x86_64`, `musllinux/aarch64`, `macosx/arm64`, `win/amd64`, `any`, …
fn platform_family(platform: &str) -> String {
    if platform == "any" {
        return "any-platform".into();
    }
    for (prefix, family) in [
        ("manylinux_", "manylinux"),
        ("manylinux1_", "manylinux"),
        ("manylinux2010_", "manylinux"),
        ("manylinux2014_", "manylinux"),
        ("musllinux_", "musllinux"),
        ("macosx_", "macosx"),
        ("linux_", "linux"),
        ("win_", "win"),
        ("android_", "android"),
        ("ios_", "ios"),
    ] {
        if let Some(rest) = platform.strip_prefix(prefix) {
            // manylinux_2_17_x86_64 / musllinux_1_2_aarch64 / macosx_11_0_arm64: skip the version parts.
            let arch = if matches!(family, "manylinux" | "musllinux" | "macosx")
                && prefix.ends_with("x_")
            {
                rest.splitn(3, '_').nth(2).unwrap_or(rest)
            } else {
                rest
            };
            return format!("{family}/{arch}");
        }
    }
    if platform == "win32" {
        return "win/x86".into();
    }
    platform.to_string()
}

/// Chooses, among the package's files, the wheel whose best tag ranks highest for the target (ties:
/// the higher build tag, then the file name, so the choice is deterministic). Wheels whose name or
/// version in the file name differ from the package's are ignored.
///
/// Errors: [`Error::NoFileList`] for a requirements-file package whose files have not been listed from
/// the index yet (see [`LockedPackage::with_index_files`]); [`Error::SdistOnly`] when only source
/// distributions exist; [`Error::NoWheel`] listing the wheels that exist when none fits.
pub fn choose_wheel(pkg: &LockedPackage, tags: &Tags) -> Result<ChosenWheel> {
    if !pkg.files_listed {
        return Err(Error::NoFileList {
            package: pkg.name.clone(),
            version: pkg.version.clone(),
        });
    }
    let origin = if pkg.files_from_index {
        WheelOrigin::Index
    } else {
        WheelOrigin::Lock
    };
    if pkg.files.is_empty()
        && !pkg.files_from_index
        && pkg.find_links_files.is_empty()
        && let Some(location) = &pkg.location
    {
        return Err(no_files_locked(pkg, location));
    }
    let (best, wheels) = best_wheel(pkg, &pkg.files, tags);
    if let Some(c) = best {
        return Ok(ChosenWheel { origin, ..c });
    }
    // No locked file fits: the user's own wheels of exactly this name and version.
    if let (Some(c), _) = best_wheel(pkg, &pkg.find_links_files, tags) {
        return Ok(ChosenWheel {
            origin: WheelOrigin::FindLinks,
            index: None,
            ..c
        });
    }
    if wheels.is_empty()
        && let Some(sdist) = pkg.files.iter().find(|f| f.kind == FileKind::Sdist)
    {
        return Err(Error::SdistOnly {
            package: pkg.name.clone(),
            version: pkg.version.clone(),
            sdist: sdist.filename.clone(),
        });
    }
    let mut available = describe_wheels(&wheels);
    if !pkg.find_links_files.is_empty() {
        let (_, fl) = best_wheel(pkg, &pkg.find_links_files, tags);
        available.push_str(&format!(
            "; the --find-links wheels do not fit either ({})",
            fl.iter()
                .map(|w| w.filename.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Err(Error::NoWheel {
        package: pkg.name.clone(),
        version: pkg.version.clone(),
        // The best libc-specific tag (a musl target's musllinux one), not the bare linux_ARCH.
        target: tags
            .iter()
            .map(|t| t.to_string())
            .find(|t| t.contains("musllinux") || t.contains("manylinux"))
            .map(|t| match t.contains("musllinux") {
                true => format!("{t} (musl: only musllinux wheels fit)"),
                false => t,
            })
            .or_else(|| tags.iter().next().map(|t| t.to_string()))
            .unwrap_or_default(),
        available,
    })
}

/// [`Error::NoFilesLocked`], with the command that relocks the lock at `location`.
fn no_files_locked(pkg: &LockedPackage, location: &crate::Location) -> Error {
    let file = location
        .path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let relock = match file.as_str() {
        "poetry.lock" => {
            "`poetry lock --regenerate`, or `poetry lock --no-update` with Poetry 1".into()
        }
        "uv.lock" => format!("`uv lock --refresh-package {}`", pkg.name),
        "pdm.lock" => "`pdm lock --refresh`".into(),
        "Pipfile.lock" => "`pipenv lock`".into(),
        _ => "with the tool that wrote it".into(),
    };
    Error::NoFilesLocked {
        location: location.clone(),
        package: pkg.name.clone(),
        version: pkg.version.clone(),
        relock,
    }
}

/// The best wheel among `files` for the target, and every wheel of the package's name and version.
fn best_wheel(
    pkg: &LockedPackage,
    files: &[LockedFile],
    tags: &Tags,
) -> (Option<ChosenWheel>, Vec<WheelFilename>) {
    let mut best: Option<(usize, &LockedFile, WheelFilename, String)> = None;
    let mut wheels = Vec::new();
    for f in files.iter().filter(|f| f.kind == FileKind::Wheel) {
        let Ok(w) = WheelFilename::parse(&f.filename) else {
            continue;
        };
        if w.name != pkg.name || !crate::util::same_version(&w.version.to_string(), &pkg.version) {
            continue;
        }
        let ranked = w
            .tags
            .iter()
            .filter_map(|t| tags.rank(t).map(|r| (r, t.to_string())))
            .min_by_key(|(r, _)| *r);
        if let Some((rank, tag)) = ranked {
            let better = match &best {
                None => true,
                Some((br, bf, bw, _)) => {
                    (rank, std::cmp::Reverse(&w.build), &f.filename)
                        < (*br, std::cmp::Reverse(&bw.build), &bf.filename)
                }
            };
            if better {
                best = Some((rank, f, w.clone(), tag));
            }
        }
        wheels.push(w);
    }
    let chosen = best.map(|(rank, f, _, tag)| ChosenWheel {
        name: pkg.name.clone(),
        version: pkg.version.clone(),
        filename: f.filename.clone(),
        url: f.url.clone(),
        path: f.path.clone(),
        index: pkg.source.index_url().map(str::to_string),
        sha256: f.sha256,
        size: f.size,
        tag,
        rank,
        origin: WheelOrigin::Lock,
    });
    (chosen, wheels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(platform_family("manylinux_2_17_x86_64"), "manylinux/x86_64");
        assert_eq!(
            platform_family("manylinux2014_aarch64"),
            "manylinux/aarch64"
        );
        assert_eq!(platform_family("manylinux1_x86_64"), "manylinux/x86_64");
        assert_eq!(
            platform_family("musllinux_1_2_aarch64"),
            "musllinux/aarch64"
        );
        assert_eq!(platform_family("macosx_11_0_arm64"), "macosx/arm64");
        assert_eq!(platform_family("win_amd64"), "win/amd64");
        assert_eq!(platform_family("win32"), "win/x86");
        assert_eq!(platform_family("linux_x86_64"), "linux/x86_64");
        assert_eq!(platform_family("any"), "any-platform");
    }
}

#[cfg(test)]
mod sdist_tests {
    use super::*;
    use crate::model::{LockedFile, PackageSource};

    fn pkg(files: Vec<LockedFile>, listed: bool) -> LockedPackage {
        LockedPackage {
            name: "docopt".into(),
            version: "0.6.2".into(),
            source: PackageSource::Index { url: None },
            files,
            hashes: Vec::new(),
            files_listed: listed,
            files_from_index: false,
            find_links_files: Vec::new(),
            location: None,
        }
    }

    fn sdist(sha: Option<Digest>) -> LockedFile {
        LockedFile {
            filename: "docopt-0.6.2.tar.gz".into(),
            kind: FileKind::Sdist,
            url: Some("https://files.example/docopt-0.6.2.tar.gz".into()),
            path: None,
            sha256: sha,
            size: Some(25901),
        }
    }

    #[test]
    fn an_sdist_with_a_hash_is_chosen_for_building() {
        let d = Digest::of(b"x");
        let s = choose_sdist(&pkg(vec![sdist(Some(d))], true)).expect("an sdist");
        assert_eq!(s.filename, "docopt-0.6.2.tar.gz");
        assert_eq!(s.sha256, d);
        assert_eq!(s.size, Some(25901));
    }

    #[test]
    fn no_sdist_without_a_hash_or_a_listing() {
        assert!(choose_sdist(&pkg(vec![sdist(None)], true)).is_none());
        assert!(choose_sdist(&pkg(vec![sdist(Some(Digest::of(b"x")))], false)).is_none());
        assert!(choose_sdist(&pkg(Vec::new(), true)).is_none());
    }

    #[test]
    fn a_lock_entry_without_files_says_so_and_how_to_relock() {
        use rbuild_python::tags::{TagTarget, Tags};
        use rbuild_python::target::{Libc, MajorMinor};
        let tags = Tags::for_target(&TagTarget::new(
            MajorMinor::new(3, 11),
            Libc::glibc(2, 36),
            "x86_64",
        ));
        for (file, relock) in [
            ("poetry.lock", "`poetry lock --regenerate`"),
            ("uv.lock", "`uv lock --refresh-package docopt`"),
        ] {
            let mut p = pkg(Vec::new(), true);
            p.location = Some(crate::Location::file(format!("/ctx/{file}")));
            let e = choose_wheel(&p, &tags).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "/ctx/{file}: the lock records no file for docopt 0.6.2 (no wheel, no source \
                     distribution), so there is nothing rbuild may install for it; relock ({relock}"
                )),
                "{e}"
            );
        }
    }
}
