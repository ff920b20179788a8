//! `uv.lock`: the dependency graph walked from the project.
//!
//! The root is the package whose source is the lockfile's directory (`{ editable = "." }`,
//! `{ virtual = "." }`, `{ directory = "." }`), or else the `[manifest] members`. The root is not
//! installed (its source goes in the app layer); its `dependencies`, the `optional-dependencies` of the
//! requested extras and the `dev-dependencies` (dependency groups) of the requested groups are
//! followed, each edge's `marker` evaluated for the target and its `extra = [..]` activating the
//! dependency's own optional dependencies. A forked resolution can hold two versions of one package;
//! the edges then name the `version` (and `source`) and their markers tell which one applies.
//!
//! uv encodes conflicting extras and groups in markers as `extra == 'extra-N-PKG-EXTRA'` /
//! `'group-N-PKG-GROUP'` (N the length of PKG); those are evaluated with the extras and groups activated
//! during the walk, which is repeated until that set no longer grows.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

use rbuild_python::markers::{MarkerEnv, MarkerTree};
use serde::Deserialize;

use crate::error::{Error, Location, Result};
use crate::model::{
    LocalProject, Lock, LockFormat, LockedFile, LockedPackage, PackageSource, ResolveOptions,
};
use crate::util::{
    check_filename, check_name, check_version, filename_from_url, is_url, parse_algo_hash,
    resolve_inside, same_version,
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct UvLock {
    version: Option<i64>,
    requires_python: Option<String>,
    /// Sets of extras/groups that cannot be installed together (`[tool.uv] conflicts`).
    #[serde(default)]
    conflicts: Vec<Vec<ConflictItem>>,
    #[serde(default)]
    manifest: Manifest,
    #[serde(default, rename = "package")]
    packages: Vec<Package>,
}

#[derive(Debug, Deserialize)]
struct ConflictItem {
    package: String,
    extra: Option<String>,
    group: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Manifest {
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    requirements: Vec<ManifestRequirement>,
    #[serde(default)]
    dependency_groups: BTreeMap<String, Vec<ManifestRequirement>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ManifestRequirement {
    name: String,
    #[serde(default)]
    extras: Vec<String>,
    marker: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Package {
    name: String,
    version: Option<String>,
    #[serde(default)]
    source: toml::Table,
    #[serde(default)]
    resolution_markers: Vec<String>,
    #[serde(default)]
    dependencies: Vec<Dependency>,
    #[serde(default)]
    optional_dependencies: BTreeMap<String, Vec<Dependency>>,
    #[serde(default)]
    dev_dependencies: BTreeMap<String, Vec<Dependency>>,
    #[serde(default)]
    dependency_groups: BTreeMap<String, Vec<Dependency>>,
    sdist: Option<FileEntry>,
    #[serde(default)]
    wheels: Vec<FileEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Dependency {
    name: String,
    version: Option<String>,
    source: Option<toml::Table>,
    marker: Option<String>,
    #[serde(default)]
    extra: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FileEntry {
    url: Option<String>,
    path: Option<String>,
    filename: Option<String>,
    hash: Option<String>,
    size: Option<u64>,
}

/// Parses the TOML and validates every package name (before anything else uses them).
pub(crate) fn parse(path: &Path, text: &str) -> Result<UvLock> {
    let lock: UvLock = toml::from_str(text).map_err(|e| Error::Toml {
        path: path.to_path_buf(),
        format: "uv.lock",
        message: e.to_string(),
    })?;
    let loc = Location::file(path);
    for p in &lock.packages {
        check_name(&loc, &p.name)?;
        for d in p
            .dependencies
            .iter()
            .chain(p.optional_dependencies.values().flatten())
            .chain(p.dev_dependencies.values().flatten())
            .chain(p.dependency_groups.values().flatten())
        {
            check_name(&loc, &d.name)?;
        }
    }
    for r in lock
        .manifest
        .requirements
        .iter()
        .chain(lock.manifest.dependency_groups.values().flatten())
    {
        check_name(&loc, &r.name)?;
    }
    for m in &lock.manifest.members {
        check_name(&loc, m)?;
    }
    match lock.version {
        Some(1) => {}
        Some(v) => {
            return Err(Error::UnsupportedVersion {
                location: loc,
                message: format!(
                    "uv.lock format version {v} is not supported (rbuild reads version 1); \
                     regenerate it with a uv that writes version 1, or export pylock.toml"
                ),
            });
        }
        None => {
            return Err(Error::Invalid {
                location: loc,
                message: "missing the top-level `version`; is this really a uv.lock?".into(),
            });
        }
    }
    Ok(lock)
}

/// What kind of source a package has.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SourceKind {
    /// A remote index.
    Registry(String),
    /// A local directory of wheels (`registry = "../wheels"`).
    LocalRegistry(String),
    /// The project itself (editable/virtual/directory at `.`).
    Root,
    /// A workspace member or path dependency (editable/virtual/directory elsewhere): built from
    /// its directory by the caller, not downloaded.
    Member {
        /// The directory, relative to the lockfile's.
        path: String,
        /// `editable = …`.
        editable: bool,
        /// `virtual = …`: not installed itself (no build system); its dependencies are.
        virtual_: bool,
    },
    /// Anything else, described for the error.
    Other(String),
}

fn source_kind(source: &toml::Table) -> SourceKind {
    let s = |k: &str| source.get(k).and_then(|v| v.as_str());
    if let Some(r) = s("registry") {
        return if is_url(r) {
            SourceKind::Registry(r.to_string())
        } else {
            SourceKind::LocalRegistry(r.to_string())
        };
    }
    for k in ["editable", "virtual", "directory"] {
        if let Some(p) = s(k) {
            return if matches!(p, "." | "./" | "") {
                SourceKind::Root
            } else {
                SourceKind::Member {
                    path: p.trim_end_matches('/').to_string(),
                    editable: k == "editable",
                    virtual_: k == "virtual",
                }
            };
        }
    }
    if let Some(g) = s("git") {
        return SourceKind::Other(format!("a git source ({g})"));
    }
    if let Some(p) = s("path") {
        return SourceKind::Other(format!("a local path source ({p})"));
    }
    if let Some(u) = s("url") {
        return SourceKind::Other(format!("a direct URL source ({u})"));
    }
    SourceKind::Other(format!("an unknown source ({source})"))
}

/// `extra-N-PKG-EXTRA` / `group-N-PKG-GROUP` as uv writes conflict markers.
fn encode(kind: &str, package: &str, item: &str) -> String {
    format!("{kind}-{}-{package}-{item}", package.len())
}

struct Walker<'a> {
    lock: &'a UvLock,
    loc: Location,
    env: &'a MarkerEnv,
    by_name: BTreeMap<String, Vec<usize>>,
    names: Vec<String>,
    markers: BTreeMap<String, MarkerTree>,
}

impl<'a> Walker<'a> {
    fn marker(&mut self, package: &str, text: &str) -> Result<&MarkerTree> {
        if !self.markers.contains_key(text) {
            let m = MarkerTree::parse(text).map_err(|e| Error::Marker {
                location: self.loc.clone(),
                package: package.to_string(),
                message: e.to_string(),
            })?;
            self.markers.insert(text.to_string(), m);
        }
        Ok(&self.markers[text])
    }

    fn holds(
        &mut self,
        package: &str,
        marker: Option<&str>,
        extras: &[String],
        groups: &[String],
    ) -> Result<bool> {
        let Some(text) = marker else { return Ok(true) };
        let env = self.env;
        let loc = self.loc.clone();
        self.marker(package, text)?
            .evaluate(env, extras, groups)
            .map_err(|e| Error::Marker {
                location: loc,
                package: package.to_string(),
                message: e.to_string(),
            })
    }

    /// The package an edge points to.
    fn resolve_edge(
        &mut self,
        from: &str,
        name: &str,
        version: Option<&str>,
        source: Option<&toml::Table>,
        extras: &[String],
        groups: &[String],
    ) -> Result<usize> {
        let key = rbuild_python::normalize_name(name);
        let candidates: Vec<usize> = self
            .by_name
            .get(&key)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|&i| {
                let p = &self.lock.packages[i];
                version.is_none_or(|v| p.version.as_deref().is_some_and(|pv| same_version(pv, v)))
                    && source.is_none_or(|s| *s == p.source)
            })
            .collect();
        match candidates.as_slice() {
            [] => Err(Error::MissingPackage {
                location: self.loc.clone(),
                from: from.to_string(),
                package: match version {
                    Some(v) => format!("{name} {v}"),
                    None => name.to_string(),
                },
            }),
            [one] => Ok(*one),
            many => {
                // An edge without a version into a fork: the package's resolution markers decide.
                let mut fitting = Vec::new();
                for &i in many {
                    let rm = self.lock.packages[i].resolution_markers.clone();
                    let mut ok = rm.is_empty();
                    for m in &rm {
                        if self.holds(name, Some(m), extras, groups)? {
                            ok = true;
                            break;
                        }
                    }
                    if ok {
                        fitting.push(i);
                    }
                }
                match fitting.as_slice() {
                    [one] => Ok(*one),
                    _ => Err(Error::Ambiguous {
                        location: self.loc.clone(),
                        package: key,
                        versions: many
                            .iter()
                            .map(|&i| self.lock.packages[i].version.clone().unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }),
                }
            }
        }
    }
}

/// Reads a uv.lock for the target.
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
    if let Some(rp) = &lock.requires_python {
        crate::pylock::check_requires_python(&loc, rp, "", env, &mut notes)?;
    }

    let names: Vec<String> = lock
        .packages
        .iter()
        .map(|p| rbuild_python::normalize_name(&p.name))
        .collect();
    let mut by_name: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, n) in names.iter().enumerate() {
        by_name.entry(n.clone()).or_default().push(i);
    }
    let kinds: Vec<SourceKind> = lock
        .packages
        .iter()
        .map(|p| source_kind(&p.source))
        .collect();

    // The roots: the project in the lockfile's directory, else the workspace members.
    let mut roots: Vec<usize> = (0..lock.packages.len())
        .filter(|&i| kinds[i] == SourceKind::Root)
        .collect();
    if roots.is_empty() && !lock.manifest.members.is_empty() {
        // A workspace without a root project: `uv sync` there installs every member.
        let members: BTreeSet<String> = lock
            .manifest
            .members
            .iter()
            .map(|m| rbuild_python::normalize_name(m))
            .collect();
        roots = (0..lock.packages.len())
            .filter(|&i| {
                members.contains(&names[i]) && matches!(kinds[i], SourceKind::Member { .. })
            })
            .collect();
    }
    roots.sort();

    let extras: Vec<String> = options
        .extras
        .iter()
        .map(|e| rbuild_python::normalize_name(e))
        .collect();
    let groups: Vec<String> = options
        .groups
        .iter()
        .map(|g| rbuild_python::normalize_name(g))
        .collect();

    // Every requested extra and group must exist somewhere at the root.
    let root_extras: BTreeSet<String> = roots
        .iter()
        .flat_map(|&r| lock.packages[r].optional_dependencies.keys())
        .map(|e| rbuild_python::normalize_name(e))
        .collect();
    let root_groups: BTreeSet<String> = roots
        .iter()
        .flat_map(|&r| {
            lock.packages[r]
                .dev_dependencies
                .keys()
                .chain(lock.packages[r].dependency_groups.keys())
        })
        .chain(lock.manifest.dependency_groups.keys())
        .map(|g| rbuild_python::normalize_name(g))
        .collect();
    let list = |s: &BTreeSet<String>| {
        if s.is_empty() {
            "none".to_string()
        } else {
            s.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    };
    for e in &extras {
        if !root_extras.contains(e) {
            return Err(Error::UnknownSelection {
                location: loc,
                kind: "extra",
                name: e.clone(),
                available: list(&root_extras),
            });
        }
    }
    for g in &groups {
        if !root_groups.contains(g) {
            return Err(Error::UnknownSelection {
                location: loc,
                kind: "dependency group",
                name: g.clone(),
                available: list(&root_groups),
            });
        }
    }

    // uv refuses to install extras/groups declared as conflicting together; so does rbuild.
    for set in &lock.conflicts {
        let hits: Vec<String> = set
            .iter()
            .filter(|c| {
                roots
                    .iter()
                    .any(|&r| names[r] == rbuild_python::normalize_name(&c.package))
            })
            .filter_map(|c| match (&c.extra, &c.group) {
                (Some(e), _) if extras.contains(&rbuild_python::normalize_name(e)) => {
                    Some(format!("extra `{e}`"))
                }
                (_, Some(g)) if groups.contains(&rbuild_python::normalize_name(g)) => {
                    Some(format!("group `{g}`"))
                }
                _ => None,
            })
            .collect();
        if hits.len() > 1 {
            return Err(Error::SelectionNotSupported {
                location: loc,
                message: format!(
                    "{} are declared as conflicting (`[tool.uv] conflicts`) and cannot be installed together; \
                     ask for one of them",
                    hits.join(" and ")
                ),
            });
        }
    }

    let mut w = Walker {
        lock: &lock,
        loc: loc.clone(),
        env,
        by_name,
        names: names.clone(),
        markers: BTreeMap::new(),
    };

    // The extras/groups activated so far, plain and uv-encoded, for marker evaluation.
    let mut active: BTreeSet<(usize, String)> = BTreeSet::new();
    for &r in &roots {
        for e in &extras {
            active.insert((r, e.clone()));
        }
    }
    let mut included;
    let mut rounds = 0;
    loop {
        rounds += 1;
        let mut marker_extras: Vec<String> = extras.clone();
        for (p, e) in &active {
            marker_extras.push(encode("extra", &w.names[*p], e));
        }
        let mut marker_groups: Vec<String> = groups.clone();
        for &r in &roots {
            for g in &groups {
                marker_extras.push(encode("group", &w.names[r], g));
                marker_groups.push(g.clone());
            }
        }
        marker_extras.sort();
        marker_extras.dedup();

        let (inc, seen) = walk(
            &mut w,
            &roots,
            &kinds,
            &extras,
            &groups,
            &marker_extras,
            &marker_groups,
        )?;
        included = inc;
        let grown = seen.iter().any(|x| !active.contains(x));
        if !grown || rounds > 16 {
            break;
        }
        active.extend(seen);
    }

    // Members that are roots (a workspace without a root project) are installed too.
    included.extend(
        roots
            .iter()
            .copied()
            .filter(|&r| matches!(kinds[r], SourceKind::Member { .. })),
    );
    // One entry per name.
    let mut packages: BTreeMap<String, LockedPackage> = BTreeMap::new();
    let mut local_projects: Vec<LocalProject> = Vec::new();
    let lock_dir = path.parent().unwrap_or(Path::new(""));
    for i in included {
        let p = &lock.packages[i];
        let name = names[i].clone();
        if let SourceKind::Member {
            path: dir,
            editable,
            virtual_,
        } = &kinds[i]
        {
            if !virtual_ {
                local_projects.push(LocalProject {
                    name,
                    version: p.version.clone(),
                    path: dir.clone(),
                    editable: *editable,
                });
            }
            continue;
        }
        let pkg = locked_package(&loc, lock_dir, p, &name, &kinds[i])?;
        if let Some(prev) = packages.get(&name) {
            return Err(Error::Ambiguous {
                location: loc,
                package: name,
                versions: format!("{} and {}", prev.version, pkg.version),
            });
        }
        packages.insert(name, pkg);
    }
    local_projects.sort_by(|a, b| a.name.cmp(&b.name));
    let roots: Vec<usize> = roots
        .into_iter()
        .filter(|&r| kinds[r] == SourceKind::Root)
        .collect();
    if !roots.is_empty() {
        notes.push(format!(
            "{}: the project {} is not installed from the lock: its source goes in the app layer",
            path.display(),
            roots
                .iter()
                .map(|&r| names[r].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Lock {
        format: LockFormat::UvLock,
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

/// The packages to install and every (package, extra) activated during a walk.
type WalkResult = (BTreeSet<usize>, BTreeSet<(usize, String)>);

/// One walk of the graph; returns the packages to install and every (package, extra) activated.
#[allow(clippy::too_many_arguments)]
fn walk(
    w: &mut Walker<'_>,
    roots: &[usize],
    kinds: &[SourceKind],
    extras: &[String],
    groups: &[String],
    marker_extras: &[String],
    marker_groups: &[String],
) -> Result<WalkResult> {
    let lock = w.lock;
    let mut included = BTreeSet::new();
    let mut seen: BTreeSet<(usize, Option<String>)> = BTreeSet::new();
    let mut queue: VecDeque<(usize, Option<String>)> = VecDeque::new();
    let mut edges: Vec<(usize, &Dependency)> = Vec::new();

    for &r in roots {
        queue.push_back((r, None));
        seen.insert((r, None));
        for e in extras {
            if lock.packages[r]
                .optional_dependencies
                .keys()
                .any(|k| rbuild_python::normalize_name(k) == *e)
                && seen.insert((r, Some(e.clone())))
            {
                queue.push_back((r, Some(e.clone())));
            }
        }
        let p = &lock.packages[r];
        for (g, deps) in p.dev_dependencies.iter().chain(p.dependency_groups.iter()) {
            if groups.contains(&rbuild_python::normalize_name(g)) {
                edges.extend(deps.iter().map(|d| (r, d)));
            }
        }
    }

    // Root-level requirements of a project-less lock (scripts, `[manifest] dependency-groups`).
    let mut root_reqs: Vec<&ManifestRequirement> = Vec::new();
    if roots.is_empty() {
        root_reqs.extend(lock.manifest.requirements.iter());
    }
    for (g, reqs) in &lock.manifest.dependency_groups {
        if groups.contains(&rbuild_python::normalize_name(g)) {
            root_reqs.extend(reqs.iter());
        }
    }
    for req in root_reqs {
        if !w.holds(
            &req.name,
            req.marker.as_deref(),
            marker_extras,
            marker_groups,
        )? {
            continue;
        }
        let i = w.resolve_edge(
            "the project",
            &req.name,
            None,
            None,
            marker_extras,
            marker_groups,
        )?;
        add(
            w,
            kinds,
            "the project",
            i,
            &req.extras,
            &mut included,
            &mut seen,
            &mut queue,
        )?;
    }

    let process = |w: &mut Walker<'_>,
                   from: usize,
                   d: &Dependency,
                   included: &mut BTreeSet<usize>,
                   seen: &mut BTreeSet<(usize, Option<String>)>,
                   queue: &mut VecDeque<(usize, Option<String>)>|
     -> Result<()> {
        if !w.holds(&d.name, d.marker.as_deref(), marker_extras, marker_groups)? {
            return Ok(());
        }
        let from_name = w.names[from].clone();
        let i = w.resolve_edge(
            &from_name,
            &d.name,
            d.version.as_deref(),
            d.source.as_ref(),
            marker_extras,
            marker_groups,
        )?;
        add(w, kinds, &from_name, i, &d.extra, included, seen, queue)
    };

    for (from, d) in edges {
        process(w, from, d, &mut included, &mut seen, &mut queue)?;
    }
    while let Some((i, extra)) = queue.pop_front() {
        let p = &lock.packages[i];
        let deps: Vec<&Dependency> = match &extra {
            None => p.dependencies.iter().collect(),
            Some(e) => p
                .optional_dependencies
                .iter()
                .filter(|(k, _)| rbuild_python::normalize_name(k) == *e)
                .flat_map(|(_, v)| v.iter())
                .collect(),
        };
        for d in deps {
            process(w, i, d, &mut included, &mut seen, &mut queue)?;
        }
    }
    let activated = seen
        .into_iter()
        .filter_map(|(i, e)| e.map(|e| (i, e)))
        .collect();
    Ok((included, activated))
}

#[allow(clippy::too_many_arguments)]
fn add(
    w: &mut Walker<'_>,
    kinds: &[SourceKind],
    from: &str,
    i: usize,
    dep_extras: &[String],
    included: &mut BTreeSet<usize>,
    seen: &mut BTreeSet<(usize, Option<String>)>,
    queue: &mut VecDeque<(usize, Option<String>)>,
) -> Result<()> {
    match &kinds[i] {
        SourceKind::Root => {}
        SourceKind::Registry(_) | SourceKind::LocalRegistry(_) | SourceKind::Member { .. } => {
            included.insert(i);
        }
        SourceKind::Other(what) => {
            return Err(Error::Unsupported {
                location: w.loc.clone(),
                what: format!(
                    "`{}` (needed by `{from}`) comes from {what}, which",
                    w.names[i]
                ),
                hint:
                    "rbuild installs wheels from package indexes only: publish it to an index, or \
                       build its wheel and pass --find-links DIR"
                        .into(),
            });
        }
    }
    if seen.insert((i, None)) {
        queue.push_back((i, None));
    }
    for e in dep_extras {
        let e = rbuild_python::normalize_name(e);
        if seen.insert((i, Some(e.clone()))) {
            queue.push_back((i, Some(e)));
        }
    }
    Ok(())
}

fn locked_package(
    loc: &Location,
    lock_dir: &Path,
    p: &Package,
    name: &str,
    kind: &SourceKind,
) -> Result<LockedPackage> {
    let version = p.version.as_deref().ok_or_else(|| Error::Invalid {
        location: loc.clone(),
        message: format!("package `{name}` has no version; relock it"),
    })?;
    let version = check_version(loc, name, version)?;
    let (index, local_dir) = match kind {
        SourceKind::Registry(u) => (Some(u.clone()), None),
        SourceKind::LocalRegistry(d) => (None, Some(d.as_str())),
        _ => (None, None),
    };
    let mut files = Vec::new();
    for f in p.wheels.iter().chain(p.sdist.iter()) {
        let filename = f
            .filename
            .clone()
            .or_else(|| f.url.as_deref().and_then(filename_from_url))
            .or_else(|| {
                f.path
                    .as_deref()
                    .and_then(|p| p.rsplit(['/', '\\']).next().map(str::to_string))
            })
            .ok_or_else(|| Error::Invalid {
                location: loc.clone(),
                message: format!("a file of `{name}` has neither url, path nor filename"),
            })?;
        let kind = check_filename(loc, name, &filename)?;
        let what = format!("`{name}` {version} file `{filename}`");
        let hash = f.hash.as_deref().ok_or_else(|| Error::MissingHash {
            location: loc.clone(),
            what: what.clone(),
            why: "uv.lock entries must carry one; relock with uv (without --no-hashes)".into(),
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
        let path = match (&f.path, local_dir, &url) {
            (Some(p), _, _) => Some(resolve_inside(loc, lock_dir, name, p)?),
            (None, Some(dir), None) => Some(resolve_inside(
                loc,
                lock_dir,
                name,
                &format!("{dir}/{filename}"),
            )?),
            _ => None,
        };
        files.push(LockedFile {
            filename,
            kind,
            url,
            path,
            sha256: Some(sha256),
            size: f.size,
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
