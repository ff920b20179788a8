//! `pdm.lock` (PDM, lock_version 4.x with the default `inherit_metadata` strategy).
//!
//! `[metadata] groups` lists the groups the lock covers: `default` (the project's dependencies), the
//! project's extras (`[project.optional-dependencies]`) and its dependency groups, all under one name
//! space. Each `[[package]]` records the `groups` it belongs to and one `marker` (absent means
//! "always"); rbuild installs a package when one of its groups is selected (`default`, plus
//! [`ResolveOptions::extras`] and [`ResolveOptions::groups`]) and its marker holds for the target. A
//! package locked with extras appears once per extra set (`extras = ["standard"]`) with the same
//! version and files: these are one package.
//!
//! Files come as `{file, hash}` (found on the index by name, as for Poetry) or, with the
//! `static_urls` strategy, `{url, hash}`. `[[metadata.targets]]` (PDM 2.20+) names the environments
//! the lock was made for: the target's Python must satisfy one target's `requires_python`.
//! `git`/`path`/`url` packages and editable ones are refused (only when their group and marker
//! apply).

use std::collections::BTreeMap;
use std::path::Path;

use rbuild_python::markers::{MarkerEnv, MarkerTree};
use serde::Deserialize;

use crate::error::{Error, Location, Result};
use crate::model::{Lock, LockFormat, LockedFile, LockedPackage, PackageSource, ResolveOptions};
use crate::util::{
    check_filename, check_name, check_version, filename_from_url, is_url, parse_algo_hash,
    read_text, same_version,
};

#[derive(Debug, Deserialize)]
struct PdmLock {
    metadata: Option<Metadata>,
    #[serde(default, rename = "package")]
    packages: Vec<Package>,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    groups: Vec<String>,
    lock_version: Option<String>,
    requires_python: Option<String>,
    #[serde(default)]
    targets: Vec<Target>,
}

#[derive(Debug, Deserialize)]
struct Target {
    requires_python: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Package {
    name: String,
    version: Option<String>,
    groups: Option<Vec<String>>,
    marker: Option<String>,
    #[serde(default)]
    files: Vec<FileEntry>,
    git: Option<String>,
    path: Option<String>,
    url: Option<String>,
    #[serde(default)]
    editable: bool,
}

#[derive(Debug, Deserialize)]
struct FileEntry {
    file: Option<String>,
    url: Option<String>,
    hash: Option<String>,
}

/// Reads a pdm.lock for the target.
pub(crate) fn read(path: &Path, env: &MarkerEnv, options: &ResolveOptions) -> Result<Lock> {
    let text = read_text(path)?;
    read_str(path, &text, env, options)
}

pub(crate) fn read_str(
    path: &Path,
    text: &str,
    env: &MarkerEnv,
    options: &ResolveOptions,
) -> Result<Lock> {
    let loc = Location::file(path);
    let lock: PdmLock = toml::from_str(text).map_err(|e| Error::Toml {
        path: path.to_path_buf(),
        format: "pdm.lock",
        message: e.to_string(),
    })?;
    for p in &lock.packages {
        check_name(&loc, &p.name)?;
    }
    let meta = lock.metadata.ok_or_else(|| Error::Invalid {
        location: loc.clone(),
        message:
            "missing the `[metadata]` table; is this really a pdm.lock? relock with `pdm lock`"
                .into(),
    })?;
    match meta.lock_version.as_deref() {
        Some(v) if v.split('.').next() == Some("4") => {}
        Some(v) => {
            return Err(Error::UnsupportedVersion {
                location: loc,
                message: format!(
                    "pdm.lock lock_version {v:?} is not supported (rbuild reads 4.x); relock with a \
                     current PDM (`pdm lock`)"
                ),
            });
        }
        None => {
            return Err(Error::Invalid {
                location: loc,
                message: "`[metadata]` has no `lock_version`; relock with `pdm lock`".into(),
            });
        }
    }
    let mut notes = Vec::new();
    // The environments the lock was made for.
    let requires: Vec<&str> = meta
        .targets
        .iter()
        .filter_map(|t| t.requires_python.as_deref())
        .chain(meta.requires_python.as_deref())
        .collect();
    if !requires.is_empty() {
        let mut first_err = None;
        let mut any = false;
        for r in &requires {
            match crate::pylock::check_requires_python(&loc, r, "", env, &mut notes) {
                Ok(()) => any = true,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if !any && let Some(e) = first_err {
            return Err(e);
        }
    }

    let known: Vec<String> = meta
        .groups
        .iter()
        .map(|g| rbuild_python::normalize_name(g))
        .collect();
    let available = || {
        let mut k: Vec<&str> = known
            .iter()
            .map(String::as_str)
            .filter(|g| *g != "default")
            .collect();
        k.sort();
        k.dedup();
        if k.is_empty() {
            "none; lock them with `pdm lock -G NAME` (or `-G :all`)".to_string()
        } else {
            k.join(", ")
        }
    };
    let mut selected = vec!["default".to_string()];
    for (kind, asked) in [
        ("extra", &options.extras),
        ("dependency group", &options.groups),
    ] {
        for a in asked {
            let a = rbuild_python::normalize_name(a);
            if !known.contains(&a) {
                return Err(Error::UnknownSelection {
                    location: loc,
                    kind,
                    name: a,
                    available: available(),
                });
            }
            if !selected.contains(&a) {
                selected.push(a);
            }
        }
    }
    let extras: Vec<String> = options
        .extras
        .iter()
        .map(|e| rbuild_python::normalize_name(e))
        .collect();

    let mut packages: BTreeMap<String, LockedPackage> = BTreeMap::new();
    for p in &lock.packages {
        let name = rbuild_python::normalize_name(&p.name);
        let what = format!("[[package]] `{}`", p.name);
        let Some(groups) = &p.groups else {
            return Err(Error::UnsupportedVersion {
                location: loc,
                message: format!(
                    "{what} records no `groups`: this lock was made without the `inherit_metadata` \
                     strategy, so rbuild cannot tell what to install; relock with `pdm lock \
                     --strategy inherit_metadata`"
                ),
            });
        };
        if !groups
            .iter()
            .any(|g| selected.contains(&rbuild_python::normalize_name(g)))
        {
            continue;
        }
        if let Some(m) = &p.marker {
            let holds = MarkerTree::parse(m)
                .and_then(|t| t.evaluate(env, &extras, &[]))
                .map_err(|e| Error::Marker {
                    location: loc.clone(),
                    package: name.clone(),
                    message: format!("{what}: {e}"),
                })?;
            if !holds {
                continue;
            }
        }
        let direct = p
            .git
            .as_ref()
            .map(|g| format!("git ({g})"))
            .or_else(|| p.path.as_ref().map(|d| format!("a local path ({d})")))
            .or_else(|| p.url.as_ref().map(|u| format!("a direct URL ({u})")))
            .or_else(|| p.editable.then(|| "an editable install".to_string()));
        if let Some(d) = direct {
            return Err(Error::Unsupported {
                location: loc,
                what: format!("{what} comes from {d}, which"),
                hint:
                    "rbuild installs wheels from package indexes only: publish it to an index, or \
                       build its wheel and pass --find-links DIR"
                        .into(),
            });
        }
        let version = p.version.as_deref().ok_or_else(|| Error::Invalid {
            location: loc.clone(),
            message: format!("{what} has no `version`; relock with `pdm lock`"),
        })?;
        let version = check_version(&loc, &name, version)?;
        if p.files.is_empty() {
            return Err(Error::MissingHash {
                location: loc,
                what: format!("{what} {version}"),
                why: "it lists no `files` (each with a hash); relock with `pdm lock`".into(),
            });
        }
        let mut files = Vec::new();
        for f in &p.files {
            files.push(locked_file(&loc, &name, &version, f)?);
        }
        match packages.get_mut(&name) {
            Some(prev) if same_version(&prev.version, &version) => {
                // The same package locked with other extras: one package.
                for f in files {
                    if !prev.files.iter().any(|x| x.filename == f.filename) {
                        prev.files.push(f);
                    }
                }
            }
            Some(prev) => {
                return Err(Error::Ambiguous {
                    location: loc,
                    package: name,
                    versions: format!("{} and {version}", prev.version),
                });
            }
            None => {
                packages.insert(
                    name.clone(),
                    LockedPackage {
                        name,
                        version,
                        source: PackageSource::Index { url: None },
                        files,
                        hashes: Vec::new(),
                        files_listed: true,
                        files_from_index: false,
                        find_links_files: Vec::new(),
                        location: None,
                    },
                );
            }
        }
    }
    Ok(Lock {
        format: LockFormat::Pdm,
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

fn locked_file(loc: &Location, name: &str, version: &str, f: &FileEntry) -> Result<LockedFile> {
    let filename = f
        .file
        .clone()
        .or_else(|| f.url.as_deref().and_then(filename_from_url))
        .ok_or_else(|| Error::Invalid {
            location: loc.clone(),
            message: format!("a file of `{name}` {version} has neither `file` nor `url`"),
        })?;
    let kind = check_filename(loc, name, &filename)?;
    let what = format!("`{name}` {version} file `{filename}`");
    let hash = f
        .hash
        .as_deref()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::MissingHash {
            location: loc.clone(),
            what: what.clone(),
            why: "pdm.lock files must carry one; relock with `pdm lock`".into(),
        })?;
    let sha256 = parse_algo_hash(hash)
        .map_err(|m| Error::Invalid {
            location: loc.clone(),
            message: format!("{what}: {m}"),
        })?
        .ok_or_else(|| Error::MissingHash {
            location: loc.clone(),
            what: what.clone(),
            why: format!("only `{hash}`; rbuild verifies files with sha256"),
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
    Ok(LockedFile {
        filename,
        kind,
        url,
        path: None,
        sha256: Some(sha256),
        size: None,
    })
}
