//! A PEP 517 build frontend driven by the target image's own interpreter, and native wheels
//! for projects whose PEP 621 metadata is static.
//!
//! # Building an sdist
//!
//! [`build_wheel`] turns a source distribution into a wheel the way `pip wheel` with build
//! isolation would, but with the interpreter of the image being built (any
//! [`rbuild_runner::Python`]):
//!
//! 1. the sdist is unpacked under the scratch directory, refusing anything that would leave it
//!    ([`sdist`]);
//! 2. `[build-system]` is read ([`pyproject`]); without it, `setuptools>=40.8.0` and
//!    `setuptools.build_meta:__legacy__`; `backend-path` must stay inside the tree;
//! 3. the build requirements are chosen greedily from a [`BuildEnv`] (the pipeline's index and
//!    store, or a directory of wheels) for the target's markers and tags, followed through their
//!    `Requires-Dist`, and installed with `rbuild-wheel` into a scratch site directory
//!    ([`env`]);
//! 4. the backend's `get_requires_for_build_wheel` runs, its extra requirements are installed
//!    the same way, then `build_wheel` runs ([`hooks`]), each in its own process, killed at
//!    [`Python::time_limit`];
//! 5. the result is the wheel file plus every build requirement used (name, version, file,
//!    sha256) and the build's output ([`BuiltWheel`]).
//!
//! A failed build is classified ([`classify`]): when the output shows that a compiler, Python's
//! headers or another tool is missing, the error is [`BuildError::NeedsCompiler`] naming the
//! package, what it needs and the ways out; otherwise [`BuildError::BackendFailed`] with the
//! last lines of output.
//!
//! # The project itself
//!
//! [`project_wheel`] produces the wheel of the project being containerized. With static
//! `[project]` metadata (no `dynamic` entries) and an import package it can find, it writes the
//! wheel natively, without a backend or an interpreter ([`project`]); otherwise (dynamic
//! version from the VCS, `[tool.poetry]` without `[project]`, …) it builds through the backend
//! like an sdist. Either way the caller installs the wheel with `rbuild-wheel`, which writes the
//! `.dist-info` (with `INSTALLER` and `RECORD`) and the entry-point launchers for the image's
//! interpreter.
//!
//! # Caching
//!
//! Nothing is cached here. A built wheel is a function of the sdist's sha256, the target
//! interpreter (`python.describe()` and version), [`BUILDER_VERSION`] and the build
//! requirements used ([`BuiltWheel::build_requirements`]); the pipeline keys its store entry on
//! those.

pub mod classify;
pub mod env;
pub mod hooks;
pub mod project;
pub mod pyproject;
pub mod scm;
pub mod sdist;

mod index_env;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rbuild_python::wheel_name::WheelFilename;
use rbuild_runner::Python;

pub use env::{BuildEnv, BuildTarget, Candidate, DirBuildEnv, FetchedWheel, UsedRequirement};
pub use index_env::IndexBuildEnv;
pub use project::{ProjectInfo, native_project_wheel, project_wheel};
pub use pyproject::{BuildSystem, read_build_system};
pub use sdist::{Extracted, SdistLimits, extract_sdist};

/// Version of the builder; part of a built wheel's cache key. Bump when the same inputs could
/// give a different wheel (driver script, isolation flags, default environment).
pub const BUILDER_VERSION: u32 = 1;

/// The `SOURCE_DATE_EPOCH` given to backends unless [`BuildOptions::env`] sets one
/// (1980-01-01, the earliest zip timestamp): backends that honour it build reproducible wheels.
pub const DEFAULT_SOURCE_DATE_EPOCH: &str = "315532800";

/// Options of a build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Caps on the sdist's contents.
    pub limits: SdistLimits,
    /// Extra environment for the backend processes (e.g. `PATH`, `SETUPTOOLS_SCM_PRETEND_VERSION`).
    pub env: Vec<(String, String)>,
}

/// A wheel built by a backend (or written natively for the project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltWheel {
    /// The wheel file (under the scratch directory: move or copy it into the store).
    pub path: PathBuf,
    /// Its file name.
    pub filename: String,
    /// The distribution name (normalized).
    pub name: String,
    /// The version, as in the file name.
    pub version: String,
    /// Every build requirement installed for the build, sorted by name (empty for a native
    /// project wheel).
    pub build_requirements: Vec<UsedRequirement>,
    /// The backend (`module:object`), or `rbuild (native)` for a wheel written without one.
    pub backend: String,
    /// Everything the backend printed (stdout and stderr of each hook), for `-v`.
    pub output: String,
}

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The sdist cannot be unpacked safely.
    #[error("source distribution {}: {reason}", sdist.display())]
    Sdist {
        /// The archive.
        sdist: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `pyproject.toml` is invalid.
    #[error("{}: {reason}", path.display())]
    Pyproject {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A build requirement cannot be provided.
    #[error("building {package}: build requirement {requirement}: {reason}")]
    Requirement {
        /// The package being built.
        package: String,
        /// The requirement and who asked for it.
        requirement: String,
        /// What is wrong.
        reason: String,
    },
    /// Two build requirements disagree (the frontend does not backtrack).
    #[error(
        "building {package}: conflicting build requirements: {first}, but {second}; provide a fitting set of wheels with --find-links"
    )]
    Conflict {
        /// The package being built.
        package: String,
        /// What was chosen first, and why.
        first: String,
        /// The requirement it does not satisfy.
        second: String,
    },
    /// Installing a build requirement failed.
    #[error("installing a build requirement failed: {0}")]
    Install(#[from] rbuild_wheel::Error),
    /// The interpreter could not be started.
    #[error("cannot start {python}: {source}")]
    Spawn {
        /// The interpreter.
        python: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The backend cannot be imported.
    #[error(
        "building {package} {version}: the build backend {backend} cannot be imported by the target interpreter; is it in build-system.requires?\n{tail}"
    )]
    BackendUnavailable {
        /// The package.
        package: String,
        /// Its version.
        version: String,
        /// The backend.
        backend: String,
        /// The last lines of output.
        tail: String,
    },
    /// The build needs a compiler or tool the target interpreter's environment lacks.
    #[error(
        "building {package} {version} from source needs {what}, which the base image does not have. \
         Either build on a base image that has it (e.g. a non-slim python image), or build a wheel of \
         {package} {version} elsewhere and pass its directory with --find-links DIR"
    )]
    NeedsCompiler {
        /// The package.
        package: String,
        /// Its version.
        version: String,
        /// What is missing.
        what: String,
        /// The last lines of output.
        tail: String,
    },
    /// The backend failed for another reason.
    #[error("building {package} {version}: {hook} failed:\n{tail}")]
    BackendFailed {
        /// The package.
        package: String,
        /// Its version.
        version: String,
        /// The hook and the backend (`build_wheel of setuptools.build_meta`).
        hook: String,
        /// The last lines of output.
        tail: String,
    },
    /// The build ran longer than the interpreter's time limit and was killed.
    #[error(
        "building {package} {version}: {hook} ran longer than {seconds} s and was killed; the last output was:\n{tail}"
    )]
    TimedOut {
        /// The package.
        package: String,
        /// Its version.
        version: String,
        /// The hook.
        hook: String,
        /// The limit.
        seconds: u64,
        /// The last lines of output.
        tail: String,
    },
    /// The backend returned something that is not the wheel it should have written.
    #[error("building {package} {version}: {reason}")]
    BadWheel {
        /// The package.
        package: String,
        /// Its version.
        version: String,
        /// What is wrong.
        reason: String,
    },
    /// The project cannot be turned into a distribution.
    #[error("project {}: {reason}", dir.display())]
    Project {
        /// The project directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

const TAIL_LINES: usize = 30;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `(name, version)` of an sdist file name (`name-version.tar.gz`), best effort.
fn sdist_name_version(sdist: &Path) -> (String, String) {
    let file = sdist
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("sdist");
    let stem = [".tar.gz", ".tgz", ".zip"]
        .iter()
        .find_map(|s| file.strip_suffix(s))
        .unwrap_or(file);
    match stem.rsplit_once('-') {
        Some((n, v)) => (rbuild_python::normalize_name(n), v.to_string()),
        None => (stem.to_string(), String::new()),
    }
}

/// Builds the wheel of the source distribution `sdist` with `python`; see the crate docs.
///
/// `scratch` must be an existing, empty directory the caller removes afterwards; everything
/// (the unpacked tree, the build environment, the wheel) goes there. `target` describes the
/// interpreter for choosing build requirements (its markers and tags).
pub fn build_wheel(
    python: &dyn Python,
    sdist: &Path,
    scratch: &Path,
    requirements: &dyn BuildEnv,
    target: &BuildTarget,
    opts: &BuildOptions,
) -> Result<BuiltWheel, BuildError> {
    let (mut name, mut version) = sdist_name_version(sdist);
    let src_root = scratch.join("src");
    let extracted = extract_sdist(sdist, &src_root, &opts.limits)?;
    if let Ok(text) = fs::read_to_string(extracted.project_dir.join("PKG-INFO"))
        && let Ok(m) = rbuild_wheel::CoreMetadata::parse(&text)
    {
        name = rbuild_python::normalize_name(&m.name);
        version = m.version;
    }
    build_tree(
        python,
        &extracted.project_dir,
        scratch,
        requirements,
        target,
        opts,
        (&name, &version),
    )
}

/// Builds the wheel of the source tree `src` (which must be under `scratch`, as the backend
/// writes into it). `label` is the `(name, version)` used in messages.
pub fn build_tree(
    python: &dyn Python,
    src: &Path,
    scratch: &Path,
    requirements: &dyn BuildEnv,
    target: &BuildTarget,
    opts: &BuildOptions,
    label: (&str, &str),
) -> Result<BuiltWheel, BuildError> {
    let (package, version) = (label.0.to_string(), label.1.to_string());
    let system = read_build_system(src)?;
    let env_root = scratch.join("env");
    let site_dir = env_root.join("site");
    let outdir = scratch.join("dist");
    for d in [&site_dir, &outdir] {
        fs::create_dir_all(d).map_err(io_err(d))?;
    }
    let pyver = python.version();
    let pyver = (pyver.major, pyver.minor);
    let mut chosen = BTreeMap::new();
    let roots = system
        .requires
        .iter()
        .map(|r| {
            env::parse_req(r, &package, "build-system.requires")
                .map(|q| (q, format!("build-system.requires of {package}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    env::resolve(&roots, requirements, target, &package, &mut chosen)?;
    env::install(&env_root, &chosen.values().collect::<Vec<_>>(), pyver)?;

    let mut hook_env = opts.env.clone();
    if !hook_env.iter().any(|(k, _)| k == "SOURCE_DATE_EPOCH") {
        hook_env.push(("SOURCE_DATE_EPOCH".into(), DEFAULT_SOURCE_DATE_EPOCH.into()));
    }
    let call = hooks::HookCall {
        python,
        scratch,
        site_dir: &site_dir,
        src,
        backend: &system.backend,
        backend_path: &system.backend_path,
        outdir: &outdir,
        env: &hook_env,
    };
    let mut output = String::new();
    let run = |hook: &str, output: &mut String| -> Result<serde_json::Value, BuildError> {
        let r = hooks::run_hook(&call, hook).map_err(|source| BuildError::Spawn {
            python: python.describe(),
            source,
        })?;
        output.push_str(&r.output);
        let tail = classify::tail(&r.output, TAIL_LINES);
        if r.timed_out {
            return Err(BuildError::TimedOut {
                package: package.clone(),
                version: version.clone(),
                hook: hook.to_string(),
                seconds: python.time_limit().as_secs(),
                tail,
            });
        }
        if let Some(u) = r.result.as_ref().and_then(|v| v.get("unavailable")) {
            let _ = u;
            return Err(BuildError::BackendUnavailable {
                package: package.clone(),
                version: version.clone(),
                backend: system.backend.clone(),
                tail,
            });
        }
        match r
            .result
            .and_then(|mut v| v.get_mut("value").map(serde_json::Value::take))
        {
            Some(v) if r.success => Ok(v),
            _ => Err(match classify::missing_tool(&r.output, Some(src)) {
                Some(what) => BuildError::NeedsCompiler {
                    package: package.clone(),
                    version: version.clone(),
                    what,
                    tail,
                },
                None => BuildError::BackendFailed {
                    package: package.clone(),
                    version: version.clone(),
                    hook: format!("{hook} of {}", system.backend),
                    tail,
                },
            }),
        }
    };

    let extra = run("get_requires_for_build_wheel", &mut output)?;
    let extra: Vec<String> = extra
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let before: Vec<String> = chosen.keys().cloned().collect();
    let roots = extra
        .iter()
        .map(|r| {
            env::parse_req(r, &package, "get_requires_for_build_wheel")
                .map(|q| (q, format!("get_requires_for_build_wheel of {package}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    env::resolve(&roots, requirements, target, &package, &mut chosen)?;
    let new: Vec<_> = chosen
        .iter()
        .filter(|(k, _)| !before.contains(k))
        .map(|(_, v)| v)
        .collect();
    env::install(&env_root, &new, pyver)?;

    let filename = run("build_wheel", &mut output)?;
    let bad = |reason: String| BuildError::BadWheel {
        package: package.clone(),
        version: version.clone(),
        reason,
    };
    let filename = filename
        .as_str()
        .ok_or_else(|| bad("build_wheel did not return a file name".into()))?
        .to_string();
    if filename.contains('/') || !filename.ends_with(".whl") {
        return Err(bad(format!(
            "build_wheel returned {filename:?}, not a wheel file name"
        )));
    }
    let path = outdir.join(&filename);
    if !path.is_file() {
        return Err(bad(format!(
            "build_wheel returned {filename} but did not write it"
        )));
    }
    let w = WheelFilename::parse(&filename).map_err(|e| bad(e.to_string()))?;
    Ok(BuiltWheel {
        path,
        name: w.name.clone(),
        version: w.version_as_written().to_string(),
        filename,
        build_requirements: chosen.into_values().map(|c| c.used).collect(),
        backend: system.backend,
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdist_names() {
        assert_eq!(
            sdist_name_version(Path::new("/x/Foo_Bar-1.0.tar.gz")),
            ("foo-bar".to_string(), "1.0".to_string())
        );
        assert_eq!(
            sdist_name_version(Path::new("wget-3.2.zip")),
            ("wget".to_string(), "3.2".to_string())
        );
    }
}
