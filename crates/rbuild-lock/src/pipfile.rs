//! `Pipfile.lock` (pipenv, `pipfile-spec` 6).
//!
//! A JSON object with `_meta` (the `sources`, i.e. the indexes, by name) and two sections of pinned
//! packages: `default` (always installed) and `develop` (installed only when the `dev` or `develop`
//! group is asked for). Each entry is `"name": {"version": "==X", "hashes": ["sha256:…"], "markers":
//! "…", "index": "SOURCE-NAME", "extras": […]}`; its `markers` are evaluated for the target and an entry
//! whose marker does not hold is left out.
//!
//! Like a requirements file, a Pipfile.lock records only hashes, not files: the index client lists the
//! index's files and calls [`crate::LockedPackage::with_index_files`]. Every entry that applies must
//! carry a sha256 hash. An entry's `index` names one of `_meta.sources`; PyPI itself maps to "the
//! configured index" (`None`), as for Poetry. The project itself (`{"editable": true, "path": "."}`)
//! is skipped with a note; `git`/`hg`/`svn`/`bzr`, `path` and `file` entries are refused, but only
//! when their marker holds for the target.

use std::collections::BTreeMap;
use std::path::Path;

use rbuild_python::markers::{MarkerEnv, MarkerTree};
use serde::Deserialize;

use crate::error::{Error, Location, Result};
use crate::model::{Lock, LockFormat, LockedPackage, PackageSource, ResolveOptions};
use crate::util::{check_name, check_version, is_pypi, parse_algo_hash, read_text};

#[derive(Debug, Deserialize)]
struct PipfileLock {
    #[serde(rename = "_meta")]
    meta: Option<Meta>,
    #[serde(default)]
    default: BTreeMap<String, Entry>,
    #[serde(default)]
    develop: BTreeMap<String, Entry>,
}

#[derive(Debug, Default, Deserialize)]
struct Meta {
    #[serde(rename = "pipfile-spec")]
    pipfile_spec: Option<i64>,
    #[serde(default)]
    sources: Vec<Source>,
    #[serde(default)]
    requires: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Source {
    name: String,
    url: String,
}

#[derive(Debug, Deserialize)]
struct Entry {
    version: Option<String>,
    hashes: Option<Vec<String>>,
    markers: Option<String>,
    index: Option<String>,
    #[serde(default)]
    editable: bool,
    path: Option<String>,
    file: Option<String>,
    git: Option<String>,
    hg: Option<String>,
    svn: Option<String>,
    bzr: Option<String>,
    /// Marker variables written as keys (`"sys_platform": "== 'win32'"`), as the Pipfile allows.
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

impl Entry {
    /// The entry's marker: `markers` and-ed with any marker-variable keys.
    fn marker(&self) -> Option<String> {
        let mut parts: Vec<String> = self.markers.iter().map(|m| format!("({m})")).collect();
        for (k, v) in &self.other {
            if rbuild_python::markers::MarkerVariable::from_name(k).is_some()
                && let Some(cond) = v.as_str()
            {
                parts.push(format!("{k} {cond}"));
            }
        }
        (!parts.is_empty()).then(|| parts.join(" and "))
    }
}

/// Reads a Pipfile.lock for the target.
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
    let lock: PipfileLock = serde_json::from_str(text).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        format: "Pipfile.lock",
        message: e.to_string(),
    })?;
    let meta = lock.meta.unwrap_or_default();
    if let Some(spec) = meta.pipfile_spec
        && spec != 6
    {
        return Err(Error::UnsupportedVersion {
            location: loc,
            message: format!(
                "Pipfile.lock pipfile-spec {spec} is not supported (rbuild reads pipfile-spec 6); \
                 relock with a current pipenv (`pipenv lock`)"
            ),
        });
    }
    if !options.extras.is_empty() {
        return Err(Error::SelectionNotSupported {
            location: loc,
            message: "a Pipfile.lock records no extras of the project, so --extra does not apply; \
                      add the packages to the Pipfile's [packages] and run `pipenv lock`"
                .into(),
        });
    }
    let mut develop = false;
    for g in &options.groups {
        match rbuild_python::normalize_name(g).as_str() {
            "dev" | "develop" => develop = true,
            "default" => {}
            other => {
                return Err(Error::UnknownSelection {
                    location: loc,
                    kind: "dependency group",
                    name: other.to_string(),
                    available: "dev (the `develop` section; `default` is always installed)".into(),
                });
            }
        }
    }
    let mut notes = Vec::new();
    if let Some(want) = meta.requires.get("python_version").and_then(|v| v.as_str())
        && let Some(have) = env.get(rbuild_python::markers::MarkerVariable::PythonVersion)
        && want != have
    {
        notes.push(format!(
            "{}: locked for Python {want} (`_meta.requires.python_version`), the target has Python \
             {have}; markers are evaluated for the target",
            path.display()
        ));
    }

    let mut sections: Vec<(&'static str, &BTreeMap<String, Entry>)> =
        vec![("default", &lock.default)];
    if develop {
        sections.push(("develop", &lock.develop));
    }
    let mut packages: BTreeMap<String, (LockedPackage, &'static str)> = BTreeMap::new();
    for (section, entries) in sections {
        for (raw_name, e) in entries {
            let name = check_name(&loc, raw_name)?;
            let what = format!("`{section}` entry `{raw_name}`");
            if let Some(m) = &e.marker() {
                let holds = MarkerTree::parse(m)
                    .and_then(|t| t.evaluate(env, &[], &[]))
                    .map_err(|err| Error::Marker {
                        location: loc.clone(),
                        package: name.clone(),
                        message: format!("{what}: {err}"),
                    })?;
                if !holds {
                    continue;
                }
            }
            if e.editable && matches!(e.path.as_deref().map(str::trim), Some("." | "./")) {
                notes.push(format!(
                    "{}: {what} (`path = \".\"`, the project itself) skipped: its source goes in the \
                     app layer",
                    path.display()
                ));
                continue;
            }
            let direct = e
                .git
                .as_ref()
                .map(|u| format!("git ({u})"))
                .or_else(|| e.hg.as_ref().map(|u| format!("hg ({u})")))
                .or_else(|| e.svn.as_ref().map(|u| format!("svn ({u})")))
                .or_else(|| e.bzr.as_ref().map(|u| format!("bzr ({u})")))
                .or_else(|| e.path.as_ref().map(|p| format!("a local path ({p})")))
                .or_else(|| {
                    e.file
                        .as_ref()
                        .map(|f| format!("a direct URL or file ({f})"))
                });
            if let Some(d) = direct {
                return Err(Error::Unsupported {
                    location: loc,
                    what: format!("{what} comes from {d}, which"),
                    hint:
                        "rbuild installs wheels from package indexes only: publish it to an index, \
                           or build its wheel and pass --find-links DIR"
                            .into(),
                });
            }
            let version = e.version.as_deref().ok_or_else(|| Error::Invalid {
                location: loc.clone(),
                message: format!(
                    "{what} has no `version`; rbuild installs exact pins: relock with `pipenv lock`"
                ),
            })?;
            let Some(v) = version
                .trim()
                .strip_prefix("===")
                .or_else(|| version.trim().strip_prefix("=="))
                .filter(|v| !v.contains('*'))
            else {
                return Err(Error::Invalid {
                    location: loc,
                    message: format!(
                        "{what} has version `{version}`, not one exact pin; pipenv writes `*` for a \
                         package it could not resolve on the machine that locked (e.g. a Windows-only \
                         package whose Pipfile entry has no `markers`): give it `markers = \"…\"` in \
                         the Pipfile and run `pipenv lock`"
                    ),
                });
            };
            let version = check_version(&loc, &name, v)?;
            let hashes_raw = e.hashes.as_deref().unwrap_or(&[]);
            if hashes_raw.is_empty() {
                return Err(Error::MissingHash {
                    location: loc,
                    what: format!("{what} ({name} {version})"),
                    why: "every Pipfile.lock entry must carry `hashes`; relock with `pipenv lock`"
                        .into(),
                });
            }
            let mut hashes = Vec::new();
            for h in hashes_raw {
                let d = parse_algo_hash(h).map_err(|m| Error::Invalid {
                    location: loc.clone(),
                    message: format!("{what}: {m}"),
                })?;
                if let Some(d) = d
                    && !hashes.contains(&d)
                {
                    hashes.push(d);
                }
            }
            if hashes.is_empty() {
                return Err(Error::MissingHash {
                    location: loc,
                    what: format!("{what} ({name} {version})"),
                    why: "only other algorithms; rbuild verifies files with sha256".into(),
                });
            }
            hashes.sort();
            let index = match &e.index {
                None => None,
                Some(i) => {
                    let s = meta.sources.iter().find(|s| s.name == *i).ok_or_else(|| {
                        Error::Invalid {
                            location: loc.clone(),
                            message: format!(
                                "{what} names the index `{i}`, which is not in `_meta.sources` (it \
                                 has: {}); relock with `pipenv lock`",
                                list_sources(&meta.sources)
                            ),
                        }
                    })?;
                    if !crate::util::is_url(&s.url) {
                        return Err(Error::Invalid {
                            location: loc,
                            message: format!(
                                "source `{}` in `_meta.sources` has the URL {:?}, which is not an \
                                 absolute URL",
                                s.name, s.url
                            ),
                        });
                    }
                    let url = s.url.trim_end_matches('/').to_string();
                    (!is_pypi(&url)).then_some(url)
                }
            };
            let pkg = LockedPackage {
                name: name.clone(),
                version: version.clone(),
                source: PackageSource::Index { url: index },
                files: Vec::new(),
                hashes,
                files_listed: false,
                files_from_index: false,
                find_links_files: Vec::new(),
                location: None,
            };
            if let Some((prev, prev_section)) = packages.get_mut(&name) {
                if !crate::util::same_version(&prev.version, &version) {
                    return Err(Error::Ambiguous {
                        location: loc,
                        package: name,
                        versions: format!(
                            "{} in `{prev_section}`, {version} in `{section}`",
                            prev.version
                        ),
                    });
                }
                for h in pkg.hashes {
                    if !prev.hashes.contains(&h) {
                        prev.hashes.push(h);
                    }
                }
                prev.hashes.sort();
                continue;
            }
            packages.insert(name, (pkg, section));
        }
    }
    Ok(Lock {
        format: LockFormat::Pipfile,
        path: path.to_path_buf(),
        packages: packages.into_values().map(|(p, _)| p).collect(),
        index_url: None,
        extra_index_urls: Vec::new(),
        find_links: Vec::new(),
        no_index: false,
        hashes_required: true,
        notes,
        local_projects: Vec::new(),
    })
}

fn list_sources(sources: &[Source]) -> String {
    if sources.is_empty() {
        "none".into()
    } else {
        sources
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
