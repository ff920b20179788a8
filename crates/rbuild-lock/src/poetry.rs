//! `poetry.lock`.
//!
//! Lock-version 2.1 (Poetry 2.x) records for each package the `groups` it belongs to and its `markers`
//! (one string for all groups, or a table per group; absent means "always"). rbuild installs a package
//! when one of its groups is selected (`main`, plus [`ResolveOptions::groups`]) and that group's marker
//! holds for the target with the requested extras (Poetry writes root extras into the markers as
//! `extra == "NAME"`).
//!
//! Older locks (Poetry 1.x: lock-version 1.x and 2.0) record neither, so rbuild reads `pyproject.toml`
//! beside the lock and walks the graph as Poetry's solver would: the main dependencies
//! (`[project.dependencies]` for Poetry 2 projects, else `[tool.poetry.dependencies]` without `python`;
//! optional ones only through a requested extra of `[tool.poetry.extras]` or
//! `[project.optional-dependencies]`), the requested groups (`[tool.poetry.group.NAME.dependencies]`,
//! `[tool.poetry.dev-dependencies]` as `dev`, PEP 735 `[dependency-groups]`), then each package's
//! `[package.dependencies]` with their markers (optional ones only through the package's activated
//! extras). Poetry's own constraint syntax (`^1.2`, `~1.2`, `1.2.*`, `>=1,<2 || >3`) is understood where
//! it matters: the `python` key of a dependency, and picking between two locked versions of one package.
//!
//! Files come with name and hash only. A package's `[package.source]` of type `legacy` names its index;
//! without one the package comes from the default index (PyPI). A `directory` source (a path
//! dependency, `develop = true` or not) is a [`LocalProject`](crate::LocalProject) the caller
//! builds from its directory; `git`, `file` and `url` sources are refused.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

use rbuild_python::markers::{MarkerEnv, MarkerTree, MarkerVariable};
use rbuild_python::requirement::Requirement;
use rbuild_python::version::{Version, VersionSpecifier};
use serde::Deserialize;

use crate::error::{Error, Location, Result};
use crate::model::{
    LocalProject, Lock, LockFormat, LockedFile, LockedPackage, PackageSource, ResolveOptions,
};
use crate::util::{check_filename, check_name, check_version, is_url, parse_algo_hash, read_text};

#[derive(Debug, Deserialize)]
pub(crate) struct PoetryLock {
    #[serde(default, rename = "package")]
    packages: Vec<Package>,
    #[serde(default)]
    metadata: Metadata,
    /// The project's extras (`cli = ["rich"]`).
    #[serde(default)]
    extras: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Metadata {
    lock_version: Option<String>,
    python_versions: Option<String>,
    /// Lock-version 1.x kept the files here, by package name.
    #[serde(default)]
    files: BTreeMap<String, Vec<FileEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Package {
    name: String,
    version: String,
    groups: Option<Vec<String>>,
    markers: Option<Markers>,
    #[serde(default)]
    files: Vec<FileEntry>,
    #[serde(default)]
    dependencies: BTreeMap<String, DepSpec>,
    #[serde(default)]
    extras: BTreeMap<String, Vec<String>>,
    source: Option<Source>,
    /// `develop = true`: an editable path dependency.
    #[serde(default)]
    develop: bool,
}

impl Package {
    /// The directory of a `directory` source (a path dependency), relative to the lockfile's.
    fn directory(&self) -> Option<&str> {
        self.source
            .as_ref()
            .filter(|s| s.kind == "directory")
            .map(|s| s.url.trim_end_matches('/'))
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Markers {
    All(String),
    PerGroup(BTreeMap<String, String>),
}

#[derive(Debug, Deserialize)]
struct Source {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    url: String,
}

#[derive(Debug, Deserialize)]
struct FileEntry {
    file: String,
    hash: Option<String>,
    url: Option<String>,
}

/// A dependency as Poetry writes it: `"^1.0"`, `{ version, markers, optional, extras, python }`, or a
/// list of those (multiple-constraint dependencies).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum DepSpec {
    Constraint(String),
    Table(DepTable),
    Multiple(Vec<DepTable>),
}

#[derive(Debug, Clone, Default, Deserialize)]
struct DepTable {
    version: Option<String>,
    markers: Option<String>,
    #[serde(default)]
    optional: bool,
    #[serde(default)]
    extras: Vec<String>,
    python: Option<String>,
    platform: Option<String>,
    git: Option<String>,
    path: Option<String>,
    url: Option<String>,
    file: Option<String>,
}

impl DepSpec {
    fn entries(&self) -> Vec<DepTable> {
        match self {
            DepSpec::Constraint(c) => vec![DepTable {
                version: Some(c.clone()),
                ..Default::default()
            }],
            DepSpec::Table(t) => vec![t.clone()],
            DepSpec::Multiple(v) => v.clone(),
        }
    }
}

/// Parses the TOML and validates every package and dependency name.
pub(crate) fn parse(path: &Path, text: &str) -> Result<PoetryLock> {
    let lock: PoetryLock = toml::from_str(text).map_err(|e| Error::Toml {
        path: path.to_path_buf(),
        format: "poetry.lock",
        message: e.to_string(),
    })?;
    let loc = Location::file(path);
    for p in &lock.packages {
        check_name(&loc, &p.name)?;
        for d in p.dependencies.keys() {
            check_name(&loc, d)?;
        }
    }
    for n in lock.metadata.files.keys() {
        check_name(&loc, n)?;
    }
    if let Some(v) = &lock.metadata.lock_version {
        let major = v.split('.').next().unwrap_or("");
        if !matches!(major, "1" | "2") {
            return Err(Error::UnsupportedVersion {
                location: loc,
                message: format!(
                    "poetry.lock lock-version {v:?} is not supported (rbuild reads 1.x and 2.x)"
                ),
            });
        }
    }
    Ok(lock)
}

// ---------------------------------------------------------------------------------------------------
// Poetry constraints

/// Whether `v` satisfies a Poetry constraint; `None` when the constraint is not understood.
pub(crate) fn poetry_constraint_contains(constraint: &str, v: &Version) -> Option<bool> {
    let c = constraint.trim();
    if c.is_empty() || c == "*" {
        return Some(true);
    }
    let alternatives: Vec<&str> = c.split("||").flat_map(|a| a.split('|')).collect();
    let mut any = false;
    for alt in alternatives {
        let mut all = true;
        for atom in atoms(alt)? {
            if !atom_contains(&atom, v)? {
                all = false;
            }
        }
        if all {
            any = true;
        }
    }
    Some(any)
}

/// Splits one `||` alternative into atoms (`>=1.0,<2`, `>= 1.0 < 2`).
fn atoms(alt: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut pending_op: Option<String> = None;
    for word in alt.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
        if word
            .chars()
            .all(|c| matches!(c, '<' | '>' | '=' | '!' | '~' | '^'))
        {
            if pending_op.is_some() {
                return None;
            }
            pending_op = Some(word.to_string());
            continue;
        }
        match pending_op.take() {
            Some(op) => out.push(format!("{op}{word}")),
            None => out.push(word.to_string()),
        }
    }
    if pending_op.is_some() {
        return None;
    }
    Some(out)
}

fn atom_contains(atom: &str, v: &Version) -> Option<bool> {
    if atom == "*" {
        return Some(true);
    }
    let bounds =
        |lower: &Version, upper: Version| -> Option<bool> { Some(v >= lower && *v < upper) };
    if let Some(rest) = atom.strip_prefix('^') {
        let base = Version::parse(rest.trim()).ok()?;
        let r = base.release();
        let upper = if r[0] > 0 || r.len() == 1 {
            Version::from_release(&[r[0].checked_add(1)?])
        } else if r[1] > 0 || r.len() == 2 {
            Version::from_release(&[0, r[1].checked_add(1)?])
        } else {
            Version::from_release(&[0, 0, r[2].checked_add(1)?])
        };
        return bounds(&base, upper);
    }
    if let Some(rest) = atom.strip_prefix('~').filter(|r| !r.starts_with('=')) {
        let base = Version::parse(rest.trim()).ok()?;
        let r = base.release();
        let upper = if r.len() == 1 {
            Version::from_release(&[r[0].checked_add(1)?])
        } else {
            Version::from_release(&[r[0], r[1].checked_add(1)?])
        };
        return bounds(&base, upper);
    }
    let spec = if atom.starts_with(['<', '>', '!', '~']) || atom.starts_with("==") {
        atom.to_string()
    } else if let Some(rest) = atom.strip_prefix('=') {
        format!("=={rest}")
    } else {
        format!("=={atom}")
    };
    VersionSpecifier::parse(&spec).ok().map(|s| s.contains(v))
}

// ---------------------------------------------------------------------------------------------------
// pyproject.toml

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Pyproject {
    project: Option<Project>,
    #[serde(default)]
    tool: ToolTable,
    #[serde(default)]
    dependency_groups: BTreeMap<String, Vec<toml::Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Project {
    dependencies: Option<Vec<String>>,
    #[serde(default)]
    optional_dependencies: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct ToolTable {
    #[serde(default)]
    poetry: ToolPoetry,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ToolPoetry {
    #[serde(default)]
    dependencies: BTreeMap<String, DepSpec>,
    #[serde(default)]
    dev_dependencies: BTreeMap<String, DepSpec>,
    #[serde(default)]
    group: BTreeMap<String, Group>,
    #[serde(default)]
    extras: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct Group {
    #[serde(default)]
    dependencies: BTreeMap<String, DepSpec>,
}

/// A dependency of the project (or of a locked package), normalized.
#[derive(Debug, Clone)]
struct Edge {
    name: String,
    extras: Vec<String>,
    constraint: Option<String>,
    marker: Option<String>,
    python: Option<String>,
    platform: Option<String>,
    /// For a dependency of a locked package: it is optional (needs an extra of the dependent).
    optional: bool,
    /// `git`/`path`/`url`/`file` dependency, described.
    direct: Option<String>,
    /// The extras of the dependent that are active, for markers testing `extra`.
    marker_extras: Vec<String>,
}

fn edges_from_table(name: &str, spec: &DepSpec) -> Vec<Edge> {
    spec.entries()
        .into_iter()
        .map(|t| Edge {
            name: rbuild_python::normalize_name(name),
            extras: t
                .extras
                .iter()
                .map(|e| rbuild_python::normalize_name(e))
                .collect(),
            constraint: t.version.clone(),
            marker: t.markers.clone(),
            python: t.python.clone(),
            platform: t.platform.clone(),
            optional: t.optional,
            direct: t
                .git
                .as_ref()
                .map(|g| format!("git ({g})"))
                .or_else(|| t.path.as_ref().map(|p| format!("a local path ({p})")))
                .or_else(|| t.file.as_ref().map(|p| format!("a local file ({p})")))
                .or_else(|| t.url.as_ref().map(|u| format!("a URL ({u})"))),
            marker_extras: Vec::new(),
        })
        .collect()
}

fn edge_from_pep508(loc: &Location, s: &str) -> Result<Edge> {
    let name_end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        .unwrap_or(s.len());
    check_name(loc, s[..name_end].trim())?;
    let r = Requirement::parse(s).map_err(|e| Error::Invalid {
        location: loc.clone(),
        message: e.to_string(),
    })?;
    Ok(Edge {
        name: r.name.clone(),
        extras: r.extras.clone(),
        constraint: (!r.specifiers.is_empty()).then(|| r.specifiers.to_string()),
        marker: r.marker.as_ref().map(|m| m.to_string()),
        python: None,
        platform: None,
        optional: false,
        direct: r.url.as_ref().map(|u| format!("a URL ({u})")),
        marker_extras: Vec::new(),
    })
}

/// The project's root edges for the requested extras and groups, from pyproject.toml.
fn root_edges(
    loc: &Location,
    py: &Pyproject,
    extras: &[String],
    groups: &[String],
) -> Result<Vec<Edge>> {
    let poetry = &py.tool.poetry;
    let mut out = Vec::new();
    let project_deps = py.project.as_ref().and_then(|p| p.dependencies.as_ref());
    if let Some(deps) = project_deps {
        for d in deps {
            out.push(edge_from_pep508(loc, d)?);
        }
        if let Some(p) = &py.project {
            let known: Vec<String> = p
                .optional_dependencies
                .keys()
                .map(|k| rbuild_python::normalize_name(k))
                .collect();
            check_known(loc, "extra", extras, &known)?;
            for (k, deps) in &p.optional_dependencies {
                if extras.contains(&rbuild_python::normalize_name(k)) {
                    for d in deps {
                        out.push(edge_from_pep508(loc, d)?);
                    }
                }
            }
        }
    } else {
        let known: Vec<String> = poetry
            .extras
            .keys()
            .map(|k| rbuild_python::normalize_name(k))
            .collect();
        check_known(loc, "extra", extras, &known)?;
        let via_extras: BTreeSet<String> = poetry
            .extras
            .iter()
            .filter(|(k, _)| extras.contains(&rbuild_python::normalize_name(k)))
            .flat_map(|(_, v)| v.iter().map(|n| rbuild_python::normalize_name(dep_name(n))))
            .collect();
        for (name, spec) in &poetry.dependencies {
            if name == "python" {
                continue;
            }
            check_name(loc, name)?;
            for mut e in edges_from_table(name, spec) {
                if e.optional {
                    if !via_extras.contains(&e.name) {
                        continue;
                    }
                    e.optional = false;
                }
                out.push(e);
            }
        }
    }
    // Groups.
    let mut known_groups: Vec<String> = poetry
        .group
        .keys()
        .map(|k| rbuild_python::normalize_name(k))
        .collect();
    if !poetry.dev_dependencies.is_empty() {
        known_groups.push("dev".into());
    }
    known_groups.extend(
        py.dependency_groups
            .keys()
            .map(|k| rbuild_python::normalize_name(k)),
    );
    check_known(loc, "dependency group", groups, &known_groups)?;
    for (g, group) in &poetry.group {
        if groups.contains(&rbuild_python::normalize_name(g)) {
            for (name, spec) in &group.dependencies {
                check_name(loc, name)?;
                out.extend(edges_from_table(name, spec).into_iter().map(|mut e| {
                    e.optional = false;
                    e
                }));
            }
        }
    }
    if groups.iter().any(|g| g == "dev") {
        for (name, spec) in &poetry.dev_dependencies {
            check_name(loc, name)?;
            out.extend(edges_from_table(name, spec));
        }
    }
    for g in groups {
        pep735_group(loc, py, g, &mut out, 0)?;
    }
    Ok(out)
}

/// PEP 735 `[dependency-groups]`, following `{ include-group = "…" }`.
fn pep735_group(
    loc: &Location,
    py: &Pyproject,
    group: &str,
    out: &mut Vec<Edge>,
    depth: usize,
) -> Result<()> {
    if depth > 32 {
        return Err(Error::Invalid {
            location: loc.clone(),
            message: "[dependency-groups] include each other in a cycle".into(),
        });
    }
    for (g, items) in &py.dependency_groups {
        if rbuild_python::normalize_name(g) != group {
            continue;
        }
        for item in items {
            match item {
                toml::Value::String(s) => out.push(edge_from_pep508(loc, s)?),
                toml::Value::Table(t) => {
                    if let Some(inc) = t.get("include-group").and_then(|v| v.as_str()) {
                        pep735_group(loc, py, &rbuild_python::normalize_name(inc), out, depth + 1)?;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// `"rich (>=1.0)"` / `"rich[extra] (>=1)"` → `rich`.
fn dep_name(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        .unwrap_or(s.len());
    &s[..end]
}

fn check_known(
    loc: &Location,
    kind: &'static str,
    asked: &[String],
    known: &[String],
) -> Result<()> {
    for a in asked {
        if !known.contains(a) {
            let mut k = known.to_vec();
            k.sort();
            k.dedup();
            return Err(Error::UnknownSelection {
                location: loc.clone(),
                kind,
                name: a.clone(),
                available: if k.is_empty() {
                    "none".into()
                } else {
                    k.join(", ")
                },
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Reading

/// Reads a poetry.lock for the target.
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
    let lock = parse(path, text)?;
    let loc = Location::file(path);
    let mut notes = Vec::new();
    let python = target_python(env);
    if let (Some(pv), Some(py)) = (&lock.metadata.python_versions, &python) {
        match poetry_constraint_contains(pv, py) {
            Some(true) => {}
            Some(false) => {
                return Err(Error::RequiresPython {
                    location: loc,
                    requires: pv.clone(),
                    what: String::new(),
                    python: py.to_string(),
                });
            }
            None => notes.push(format!(
                "{}: python-versions {pv:?} not understood; not checked",
                path.display()
            )),
        }
    }
    let extras: Vec<String> = options
        .extras
        .iter()
        .map(|e| rbuild_python::normalize_name(e))
        .collect();
    let mut groups: Vec<String> = vec!["main".into()];
    for g in &options.groups {
        let g = rbuild_python::normalize_name(g);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let lock_dir = path.parent().unwrap_or(Path::new(""));
    let records_groups =
        lock.packages.iter().all(|p| p.groups.is_some()) && !lock.packages.is_empty();

    let selected: Vec<usize> = if records_groups {
        let known: Vec<String> = lock
            .extras
            .keys()
            .map(|k| rbuild_python::normalize_name(k))
            .collect();
        check_known(&loc, "extra", &extras, &known)?;
        select_by_groups(&loc, &lock, lock_dir, env, &extras, &groups)?
    } else {
        let pyproject = lock_dir.join("pyproject.toml");
        if !pyproject.is_file() {
            return Err(Error::Invalid {
                location: loc,
                message: format!(
                    "this poetry.lock (lock-version {}) does not record which group each package belongs \
                     to, so rbuild reads pyproject.toml beside it, but there is none; put it next to \
                     the lock, or relock with Poetry 2 (lock-version 2.1)",
                    lock.metadata.lock_version.as_deref().unwrap_or("unknown")
                ),
            });
        }
        let ptext = read_text(&pyproject)?;
        let py: Pyproject = toml::from_str(&ptext).map_err(|e| Error::Toml {
            path: pyproject.clone(),
            format: "pyproject.toml",
            message: e.to_string(),
        })?;
        let roots = root_edges(&Location::file(&pyproject), &py, &extras, &groups[1..])?;
        walk(&loc, &lock, env, python.as_ref(), roots)?
    };

    let mut packages: BTreeMap<String, LockedPackage> = BTreeMap::new();
    let mut local_projects: Vec<LocalProject> = Vec::new();
    for i in selected {
        let p = &lock.packages[i];
        let name = rbuild_python::normalize_name(&p.name);
        if let Some(dir) = p.directory() {
            if !local_projects.iter().any(|l| l.name == name) {
                local_projects.push(LocalProject {
                    name,
                    version: Some(p.version.clone()),
                    path: dir.to_string(),
                    editable: p.develop,
                });
            }
            continue;
        }
        let pkg = locked_package(&loc, &lock, p, &name)?;
        if let Some(prev) = packages.get(&name) {
            if prev.version != pkg.version {
                return Err(Error::Ambiguous {
                    location: loc,
                    package: name,
                    versions: format!("{} and {}", prev.version, pkg.version),
                });
            }
            continue;
        }
        packages.insert(name, pkg);
    }
    local_projects.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Lock {
        format: LockFormat::PoetryLock,
        path: path.to_path_buf(),
        packages: packages.into_values().collect(),
        index_url: None,
        extra_index_urls: Vec::new(),
        find_links: Vec::new(),
        no_index: false,
        hashes_required: true,
        notes,
        local_projects,
    })
}

fn target_python(env: &MarkerEnv) -> Option<Version> {
    env.get(MarkerVariable::PythonFullVersion)
        .and_then(|v| Version::parse(v).ok())
        .or_else(|| {
            env.get(MarkerVariable::PythonVersion)
                .and_then(|v| Version::parse(v).ok())
        })
}

fn eval_marker(
    loc: &Location,
    package: &str,
    text: &str,
    env: &MarkerEnv,
    extras: &[String],
) -> Result<bool> {
    let err = |message: String| Error::Marker {
        location: loc.clone(),
        package: package.to_string(),
        message,
    };
    MarkerTree::parse(text)
        .map_err(|e| err(e.to_string()))?
        .evaluate(env, extras, &[])
        .map_err(|e| err(e.to_string()))
}

/// Lock-version 2.1: `groups` and `markers` per package.
fn select_by_groups(
    loc: &Location,
    lock: &PoetryLock,
    _lock_dir: &Path,
    env: &MarkerEnv,
    extras: &[String],
    groups: &[String],
) -> Result<Vec<usize>> {
    let mut known: Vec<String> = lock
        .packages
        .iter()
        .flat_map(|p| p.groups.iter().flatten())
        .map(|g| rbuild_python::normalize_name(g))
        .collect();
    known.sort();
    known.dedup();
    check_known(loc, "dependency group", &groups[1..], &known)?;
    let mut out = Vec::new();
    for (i, p) in lock.packages.iter().enumerate() {
        let name = rbuild_python::normalize_name(&p.name);
        let pg: Vec<String> = p
            .groups
            .iter()
            .flatten()
            .map(|g| rbuild_python::normalize_name(g))
            .collect();
        let mut include = false;
        for g in groups.iter().filter(|g| pg.contains(g)) {
            let marker = match &p.markers {
                None => None,
                Some(Markers::All(m)) => Some(m.as_str()),
                Some(Markers::PerGroup(t)) => t
                    .iter()
                    .find(|(k, _)| rbuild_python::normalize_name(k) == *g)
                    .map(|(_, v)| v.as_str()),
            };
            let holds = match marker {
                None => true,
                Some(m) if m.trim() == "*" || m.trim().is_empty() => true,
                Some(m) => eval_marker(loc, &name, m, env, extras)?,
            };
            if holds {
                include = true;
                break;
            }
        }
        if include {
            out.push(i);
        }
    }
    Ok(out)
}

/// Older locks: walk the graph from the project's dependencies.
fn walk(
    loc: &Location,
    lock: &PoetryLock,
    env: &MarkerEnv,
    python: Option<&Version>,
    roots: Vec<Edge>,
) -> Result<Vec<usize>> {
    let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, p) in lock.packages.iter().enumerate() {
        by_name
            .entry(rbuild_python::normalize_name(&p.name))
            .or_default()
            .push(i);
    }
    // Package index -> extras activated on it.
    let mut active: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let mut queue: VecDeque<(String, Edge)> = roots
        .into_iter()
        .map(|e| ("the project".to_string(), e))
        .collect();
    let mut processed: BTreeSet<(usize, Option<String>)> = BTreeSet::new();

    while let Some((from, edge)) = queue.pop_front() {
        // Does the edge apply to the target?
        if let (Some(p), Some(py)) = (&edge.python, python)
            && poetry_constraint_contains(p, py) == Some(false)
        {
            continue;
        }
        if let Some(plat) = &edge.platform
            && env.get(MarkerVariable::SysPlatform) != Some(plat.as_str())
        {
            continue;
        }
        if let Some(m) = &edge.marker
            && !eval_marker(loc, &edge.name, m, env, &edge.marker_extras)?
        {
            continue;
        }
        // A path dependency on a directory is a local project (built by the caller).
        let local_dir = by_name
            .get(&edge.name)
            .is_some_and(|c| c.iter().all(|&i| lock.packages[i].directory().is_some()));
        if let Some(d) = edge.direct.as_ref().filter(|_| !local_dir) {
            return Err(Error::Unsupported {
                location: loc.clone(),
                what: format!("`{}` (needed by {from}) comes from {d}, which", edge.name),
                hint: "rbuild installs wheels from package indexes only: build its wheel and pass \
                       --find-links DIR"
                    .into(),
            });
        }
        let candidates = by_name.get(&edge.name).cloned().unwrap_or_default();
        let fitting: Vec<usize> = if candidates.len() > 1 {
            candidates
                .iter()
                .copied()
                .filter(|&i| {
                    let v = Version::parse(&lock.packages[i].version);
                    match (&edge.constraint, v) {
                        (Some(c), Ok(v)) => poetry_constraint_contains(c, &v).unwrap_or(true),
                        _ => true,
                    }
                })
                .collect()
        } else {
            candidates.clone()
        };
        let i = match fitting.as_slice() {
            [] if candidates.is_empty() => {
                return Err(Error::MissingPackage {
                    location: loc.clone(),
                    from,
                    package: edge.name.clone(),
                });
            }
            [] => {
                return Err(Error::MissingPackage {
                    location: loc.clone(),
                    from,
                    package: format!("{} {}", edge.name, edge.constraint.as_deref().unwrap_or("")),
                });
            }
            [one] => *one,
            many => {
                return Err(Error::Ambiguous {
                    location: loc.clone(),
                    package: edge.name.clone(),
                    versions: many
                        .iter()
                        .map(|&i| lock.packages[i].version.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        };
        let entry = active.entry(i).or_default();
        let mut new_extras: Vec<String> = Vec::new();
        for e in &edge.extras {
            if entry.insert(e.clone()) {
                new_extras.push(e.clone());
            }
        }
        let first = processed.insert((i, None));
        let p = &lock.packages[i];
        let pname = rbuild_python::normalize_name(&p.name);
        let act: Vec<String> = entry.iter().cloned().collect();
        // Plain dependencies the first time; optional ones for each newly activated extra.
        for (dname, spec) in &p.dependencies {
            for mut e in edges_from_table(dname, spec) {
                if e.optional {
                    let via: Vec<&String> = new_extras
                        .iter()
                        .filter(|x| {
                            p.extras.iter().any(|(k, names)| {
                                rbuild_python::normalize_name(k) == **x
                                    && names.iter().any(|n| {
                                        rbuild_python::normalize_name(dep_name(n)) == e.name
                                    })
                            })
                        })
                        .collect();
                    if via.is_empty() {
                        continue;
                    }
                    if !processed.insert((i, Some(format!("{}:{}", via[0], e.name)))) {
                        continue;
                    }
                    e.optional = false;
                    e.marker_extras = act.clone();
                    queue.push_back((pname.clone(), e));
                } else if first {
                    e.marker_extras = act.clone();
                    queue.push_back((pname.clone(), e));
                }
            }
        }
    }
    Ok(active.into_keys().collect())
}

fn locked_package(
    loc: &Location,
    lock: &PoetryLock,
    p: &Package,
    name: &str,
) -> Result<LockedPackage> {
    let version = check_version(loc, name, &p.version)?;
    let index = match &p.source {
        None => None,
        Some(s) => match s.kind.as_str() {
            "legacy" if is_url(&s.url) => Some(s.url.trim_end_matches('/').to_string()),
            "pypi" => None,
            other => {
                return Err(Error::Unsupported {
                    location: loc.clone(),
                    what: format!("`{name}` {version} comes from a `{other}` source ({}), which", s.url),
                    hint: "rbuild installs wheels from package indexes only: build its wheel and pass \
                           --find-links DIR"
                        .into(),
                });
            }
        },
    };
    let entries: Vec<&FileEntry> = if !p.files.is_empty() {
        p.files.iter().collect()
    } else {
        lock.metadata
            .files
            .iter()
            .filter(|(k, _)| rbuild_python::normalize_name(k) == name)
            .flat_map(|(_, v)| v.iter())
            .collect()
    };
    let mut files = Vec::new();
    for f in entries {
        let kind = check_filename(loc, name, &f.file)?;
        let what = format!("`{name}` {version} file `{}`", f.file);
        let hash =
            f.hash
                .as_deref()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| Error::MissingHash {
                    location: loc.clone(),
                    what: what.clone(),
                    why: "poetry.lock entries must carry one; relock with Poetry".into(),
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
        files.push(LockedFile {
            filename: f.file.clone(),
            kind,
            url: f.url.clone().filter(|u| is_url(u)),
            path: None,
            sha256: Some(sha256),
            size: None,
        });
    }
    Ok(LockedPackage {
        name: name.to_string(),
        version,
        source: PackageSource::Index { url: index },
        files,
        hashes: Vec::new(),
        files_listed: true,
        files_from_index: false,
        find_links_files: Vec::new(),
        location: Some(loc.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(constraint: &str, v: &str) -> Option<bool> {
        poetry_constraint_contains(constraint, &Version::parse(v).unwrap())
    }

    #[test]
    fn constraints() {
        assert_eq!(c("*", "1.0"), Some(true));
        assert_eq!(c("^3.8", "3.11.2"), Some(true));
        assert_eq!(c("^3.8", "4.0"), Some(false));
        assert_eq!(c("^0.2.3", "0.2.9"), Some(true));
        assert_eq!(c("^0.2.3", "0.3.0"), Some(false));
        assert_eq!(c("^0.0.3", "0.0.4"), Some(false));
        assert_eq!(c("~1.2.3", "1.2.9"), Some(true));
        assert_eq!(c("~1.2.3", "1.3"), Some(false));
        assert_eq!(c("~=1.2", "1.9"), Some(true));
        assert_eq!(c(">=3.11,<3.12", "3.11.2"), Some(true));
        assert_eq!(c(">= 3.11, < 3.12", "3.12.0"), Some(false));
        assert_eq!(c(">=2.7,!=3.0.*,!=3.1.*", "3.1.2"), Some(false));
        assert_eq!(c(">=2.7 <3.0 || >=3.4", "3.2"), Some(false));
        assert_eq!(c(">=2.7 <3.0 || >=3.4", "3.11"), Some(true));
        assert_eq!(c("3.11.*", "3.11.2"), Some(true));
        assert_eq!(c("1.0", "1.0.0"), Some(true));
        assert_eq!(c("=1.0", "1.1"), Some(false));
        assert_eq!(c(">= <", "1"), None);
        assert_eq!(c("^x", "1"), None);
    }
}
