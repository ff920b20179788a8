//! `pylock.toml` (PEP 751): every `[[packages]]` entry whose `marker` holds for the target.
//!
//! Following the spec's installation steps: `lock-version` must be `1.x`; `requires-python` and
//! `environments` are checked against the target; `extras` is the set of requested extras and
//! `dependency_groups` the requested groups plus `default-groups`, both checked against what the lock
//! lists and both visible to markers (`'cli' in extras`); each package's own `requires-python` must
//! hold; two entries of one name applying at once is an error; `vcs`, `directory` and `archive`
//! entries are refused (except `directory = { path = "." }`, the project itself, skipped with a note).

use std::collections::BTreeMap;
use std::path::Path;

use rbuild_python::markers::{MarkerEnv, MarkerTree, MarkerVariable};
use rbuild_python::version::{Version, VersionSpecifiers};
use serde::Deserialize;

use crate::error::{Error, Location, Result};
use crate::model::{Lock, LockFormat, LockedFile, LockedPackage, PackageSource, ResolveOptions};
use crate::util::{
    check_filename, check_name, check_version, filename_from_url, is_url, parse_sha256,
    resolve_inside,
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct Pylock {
    lock_version: Option<String>,
    #[serde(default)]
    environments: Vec<String>,
    requires_python: Option<String>,
    #[serde(default)]
    extras: Vec<String>,
    #[serde(default)]
    dependency_groups: Vec<String>,
    #[serde(default)]
    default_groups: Vec<String>,
    #[serde(default)]
    packages: Vec<Package>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Package {
    name: String,
    version: Option<String>,
    marker: Option<String>,
    requires_python: Option<String>,
    index: Option<String>,
    vcs: Option<toml::Table>,
    directory: Option<Directory>,
    archive: Option<toml::Table>,
    sdist: Option<FileEntry>,
    #[serde(default)]
    wheels: Vec<FileEntry>,
}

#[derive(Debug, Deserialize)]
struct Directory {
    path: String,
}

#[derive(Debug, Deserialize)]
struct FileEntry {
    name: Option<String>,
    url: Option<String>,
    path: Option<String>,
    size: Option<u64>,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
}

/// Checks a `requires-python` specifier against the target's Python (the full version when known;
/// with only `X.Y` known, a specifier true for some patch levels and false for others gives a note).
pub(crate) fn check_requires_python(
    loc: &Location,
    spec: &str,
    what: &str,
    env: &MarkerEnv,
    notes: &mut Vec<String>,
) -> Result<()> {
    let specs = VersionSpecifiers::parse(spec.trim()).map_err(|e| Error::Invalid {
        location: loc.clone(),
        message: format!("`requires-python = {spec:?}`{what} is not a PEP 440 specifier: {e}"),
    })?;
    let full = env.get(MarkerVariable::PythonFullVersion);
    let short = env.get(MarkerVariable::PythonVersion).unwrap_or("");
    let fail = |python: &str| Error::RequiresPython {
        location: loc.clone(),
        requires: spec.to_string(),
        what: what.to_string(),
        python: python.to_string(),
    };
    match full.and_then(|f| Version::parse(f).ok()) {
        Some(v) => {
            if !specs.contains(&v) {
                return Err(fail(full.unwrap_or_default()));
            }
        }
        None => {
            let lo = Version::parse(&format!("{short}.0"));
            let hi = Version::parse(&format!("{short}.999"));
            if let (Ok(lo), Ok(hi)) = (lo, hi) {
                match (specs.contains(&lo), specs.contains(&hi)) {
                    (false, false) => return Err(fail(short)),
                    (true, true) => {}
                    _ => notes.push(format!(
                        "{loc}: `requires-python = {spec:?}`{what} depends on the patch version of \
                         Python {short}, which is not known for the target; not checked"
                    )),
                }
            }
        }
    }
    Ok(())
}

/// Parses the TOML and validates names and the format version.
pub(crate) fn parse(path: &Path, text: &str) -> Result<Pylock> {
    let lock: Pylock = toml::from_str(text).map_err(|e| Error::Toml {
        path: path.to_path_buf(),
        format: "pylock.toml",
        message: e.to_string(),
    })?;
    let loc = Location::file(path);
    for p in &lock.packages {
        check_name(&loc, &p.name)?;
    }
    let Some(v) = &lock.lock_version else {
        return Err(Error::Invalid {
            location: loc,
            message: "missing `lock-version`; is this really a pylock.toml?".into(),
        });
    };
    let major = v.split('.').next().unwrap_or("");
    if major != "1" {
        return Err(Error::UnsupportedVersion {
            location: loc,
            message: format!(
                "pylock.toml lock-version {v:?} is not supported (rbuild reads 1.x, PEP 751)"
            ),
        });
    }
    Ok(lock)
}

/// Reads a pylock.toml for the target.
pub(crate) fn read(path: &Path, env: &MarkerEnv, options: &ResolveOptions) -> Result<Lock> {
    let text = crate::util::read_text(path)?;
    read_str(path, &text, env, options)
}

pub(crate) fn read_str(
    path: &Path,
    text: &str,
    env: &MarkerEnv,
    options: &ResolveOptions,
) -> Result<Lock> {
    let lock = parse(path, text)?;
    let loc = Location::file(path);
    let mut notes = Vec::new();

    let norm = |v: &[String]| -> Vec<String> {
        v.iter().map(|s| rbuild_python::normalize_name(s)).collect()
    };
    let known_extras = norm(&lock.extras);
    let known_groups = norm(&lock.dependency_groups);
    let extras = norm(&options.extras);
    let mut groups = norm(&options.groups);
    let single_use_hint = "; a lock exported for one selection lists none: export it again with the \
                           extras and groups you want";
    for e in &extras {
        if !known_extras.contains(e) {
            return Err(Error::UnknownSelection {
                location: loc,
                kind: "extra",
                name: e.clone(),
                available: if known_extras.is_empty() {
                    format!("none{single_use_hint}")
                } else {
                    known_extras.join(", ")
                },
            });
        }
    }
    for g in &groups {
        if !known_groups.contains(g) {
            return Err(Error::UnknownSelection {
                location: loc,
                kind: "dependency group",
                name: g.clone(),
                available: if known_groups.is_empty() {
                    format!("none{single_use_hint}")
                } else {
                    known_groups.join(", ")
                },
            });
        }
    }
    for d in norm(&lock.default_groups) {
        if !groups.contains(&d) {
            groups.push(d);
        }
    }

    if let Some(rp) = &lock.requires_python {
        check_requires_python(&loc, rp, "", env, &mut notes)?;
    }
    let eval = |package: &str, text: &str| -> Result<bool> {
        let err = |message: String| Error::Marker {
            location: loc.clone(),
            package: package.to_string(),
            message,
        };
        MarkerTree::parse(text)
            .map_err(|e| err(e.to_string()))?
            .evaluate(env, &extras, &groups)
            .map_err(|e| err(e.to_string()))
    };
    if !lock.environments.is_empty() {
        let mut any = false;
        for e in &lock.environments {
            if eval("(environments)", e)? {
                any = true;
                break;
            }
        }
        if !any {
            return Err(Error::Environment {
                location: loc,
                environments: lock.environments.clone(),
            });
        }
    }

    let lock_dir = path.parent().unwrap_or(Path::new(""));
    let mut packages: BTreeMap<String, LockedPackage> = BTreeMap::new();
    for p in &lock.packages {
        let name = rbuild_python::normalize_name(&p.name);
        if let Some(m) = &p.marker
            && !eval(&name, m)?
        {
            continue;
        }
        if let Some(rp) = &p.requires_python {
            check_requires_python(&loc, rp, &format!(" for `{name}`"), env, &mut notes)?;
        }
        let sources = [p.vcs.is_some(), p.directory.is_some(), p.archive.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        let has_files = p.sdist.is_some() || !p.wheels.is_empty();
        if sources > 1 || (sources == 1 && has_files) {
            return Err(Error::Invalid {
                location: loc,
                message: format!(
                    "package `{name}` has more than one source (vcs, directory, archive and sdist/wheels \
                     are mutually exclusive)"
                ),
            });
        }
        if let Some(d) = &p.directory {
            if matches!(d.path.trim_end_matches('/'), "." | "") {
                notes.push(format!(
                    "{}: `{name}` (directory \".\", the project itself) skipped: its source goes in the app layer",
                    path.display()
                ));
                continue;
            }
            return Err(unsupported(
                &loc,
                &name,
                &format!("a local directory ({:?})", d.path),
            ));
        }
        if p.vcs.is_some() {
            return Err(unsupported(&loc, &name, "a version-control (vcs) source"));
        }
        if p.archive.is_some() {
            return Err(unsupported(
                &loc,
                &name,
                "an archive (direct URL or path) source",
            ));
        }
        if !has_files {
            return Err(Error::Invalid {
                location: loc,
                message: format!(
                    "package `{name}` lists no source (no wheels, sdist, vcs, directory or archive)"
                ),
            });
        }
        let mut files = Vec::new();
        for f in p.wheels.iter().chain(p.sdist.iter()) {
            files.push(locked_file(&loc, lock_dir, &name, f)?);
        }
        let version = match &p.version {
            Some(v) => check_version(&loc, &name, v)?,
            None => {
                // The version may be left out; the wheel names then tell it.
                let from_wheels: Vec<String> = files
                    .iter()
                    .filter_map(|f| {
                        rbuild_python::wheel_name::WheelFilename::parse(&f.filename).ok()
                    })
                    .map(|w| w.version.to_string())
                    .collect();
                match from_wheels.first() {
                    Some(v) if from_wheels.iter().all(|x| x == v) => v.clone(),
                    _ => {
                        return Err(Error::Invalid {
                            location: loc,
                            message: format!(
                                "package `{name}` has no version and its wheel names do not tell one"
                            ),
                        });
                    }
                }
            }
        };
        if let Some(prev) = packages.get(&name) {
            return Err(Error::Ambiguous {
                location: loc,
                package: name,
                versions: format!("{} and {version}", prev.version),
            });
        }
        packages.insert(
            name.clone(),
            LockedPackage {
                name,
                version,
                source: PackageSource::Index {
                    url: p.index.clone(),
                },
                files,
                hashes: Vec::new(),
                files_listed: true,
                files_from_index: false,
                find_links_files: Vec::new(),
                location: None,
            },
        );
    }
    Ok(Lock {
        format: LockFormat::Pylock,
        path: path.to_path_buf(),
        packages: packages.into_values().collect(),
        index_url: None,
        extra_index_urls: Vec::new(),
        find_links: Vec::new(),
        no_index: false,
        hashes_required: true,
        notes,
        local_projects: Vec::new(),
    })
}

fn unsupported(loc: &Location, name: &str, what: &str) -> Error {
    Error::Unsupported {
        location: loc.clone(),
        what: format!("`{name}` comes from {what}, which"),
        hint: "rbuild installs wheels only: build its wheel and pass --find-links DIR, or lock it from \
               an index"
            .into(),
    }
}

fn locked_file(loc: &Location, lock_dir: &Path, name: &str, f: &FileEntry) -> Result<LockedFile> {
    let filename = f
        .name
        .clone()
        .or_else(|| f.url.as_deref().and_then(filename_from_url))
        .or_else(|| {
            f.path
                .as_deref()
                .and_then(|p| p.rsplit(['/', '\\']).next().map(str::to_string))
        })
        .ok_or_else(|| Error::Invalid {
            location: loc.clone(),
            message: format!("a file of `{name}` has neither name, url nor path"),
        })?;
    let kind = check_filename(loc, name, &filename)?;
    let what = format!("`{name}` file `{filename}`");
    if f.hashes.is_empty() {
        return Err(Error::MissingHash {
            location: loc.clone(),
            what,
            why: "pylock.toml requires `hashes` for every file (PEP 751)".into(),
        });
    }
    let sha = f
        .hashes
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("sha256"))
        .map(|(_, v)| v)
        .ok_or_else(|| Error::MissingHash {
            location: loc.clone(),
            what: what.clone(),
            why: format!(
                "only {} hashes; rbuild verifies files with sha256",
                f.hashes.keys().cloned().collect::<Vec<_>>().join("/")
            ),
        })?;
    let sha256 = parse_sha256(sha).ok_or_else(|| Error::Invalid {
        location: loc.clone(),
        message: format!("{what}: `{sha}` is not a sha256 hash (64 hex digits)"),
    })?;
    let url = match &f.url {
        Some(u) if is_url(u) => Some(u.clone()),
        Some(u) => {
            return Err(Error::Invalid {
                location: loc.clone(),
                message: format!("{what} has the URL {u:?}, which is not an absolute URL"),
            });
        }
        None => None,
    };
    let path = match &f.path {
        Some(p) => Some(resolve_inside(loc, lock_dir, name, p)?),
        None => None,
    };
    if url.is_none() && path.is_none() {
        return Err(Error::Invalid {
            location: loc.clone(),
            message: format!("{what} has neither url nor path"),
        });
    }
    Ok(LockedFile {
        filename,
        kind,
        url,
        path,
        sha256: Some(sha256),
        size: f.size,
    })
}
