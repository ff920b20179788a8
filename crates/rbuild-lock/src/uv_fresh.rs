//! Is a uv.lock up to date with its project? (uv's `--locked` check, for the requirements.)
//!
//! uv records in the lock the requirements it locked for each project of the workspace:
//! `[package.metadata] requires-dist` (the `[project] dependencies`, plus each
//! `[project.optional-dependencies]` entry with `extra == 'NAME'` and-ed to its marker) and
//! `[package.metadata.requires-dev]` (the `[dependency-groups]`, `include-group` expanded, and
//! `[tool.uv] dev-dependencies` as `dev`). When pyproject.toml says something else, `uv sync
//! --locked` refuses with "The lockfile at `uv.lock` needs to be updated"; rbuild does the same rather
//! than install what the project no longer asks for.
//!
//! Requirements are compared as uv compares them: names and extras normalized, version specifiers
//! as a set, order ignored, and markers by meaning, not text (uv rewrites `python_version < '3.11'` as
//! `python_full_version < '3.11'`, `platform_system == 'Windows'` as `sys_platform == 'win32'`, and drops
//! what `requires-python` already implies). Two markers are taken as the same when they agree on
//! every environment of a grid of realistic ones (Linux, Windows and macOS; common machines; CPython
//! and PyPy; every Python the project's `requires-python` allows; each extra). Sources
//! (`[tool.uv.sources]`) are not compared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rbuild_python::markers::{MarkerEnv, MarkerTree};
use rbuild_python::requirement::Requirement;
use rbuild_python::target::MajorMinor;
use rbuild_python::version::{Version, VersionSpecifiers};
use serde::Deserialize;

use crate::error::{Error, Location, Result};
use crate::util::read_text;

#[derive(Debug, Deserialize)]
struct UvLockMeta {
    #[serde(default, rename = "package")]
    packages: Vec<LockPackage>,
}

#[derive(Debug, Deserialize)]
struct LockPackage {
    name: String,
    #[serde(default)]
    source: toml::Table,
    #[serde(default)]
    metadata: Option<LockMetadata>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct LockMetadata {
    #[serde(default)]
    requires_dist: Vec<LockReq>,
    #[serde(default)]
    requires_dev: BTreeMap<String, Vec<LockReq>>,
    #[serde(default)]
    provides_extras: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct LockReq {
    name: String,
    #[serde(default)]
    extras: Vec<String>,
    specifier: Option<String>,
    marker: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Pyproject {
    project: Option<Project>,
    #[serde(default)]
    dependency_groups: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    tool: Tool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Project {
    name: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
    #[serde(default)]
    optional_dependencies: BTreeMap<String, Vec<String>>,
    requires_python: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Tool {
    #[serde(default)]
    uv: ToolUv,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ToolUv {
    #[serde(default)]
    dev_dependencies: Vec<String>,
}

/// One requirement, normalized for comparison.
#[derive(Debug, Clone)]
struct Req {
    name: String,
    extras: Vec<String>,
    specifiers: Vec<String>,
    marker: Option<MarkerTree>,
    /// As shown in messages.
    display: String,
}

impl Req {
    fn new(
        name: &str,
        extras: &[String],
        specifiers: &str,
        marker: Option<MarkerTree>,
    ) -> Option<Req> {
        let name = rbuild_python::normalize_name(name);
        let mut extras: Vec<String> = extras
            .iter()
            .map(|e| rbuild_python::normalize_name(e))
            .collect();
        extras.sort();
        extras.dedup();
        let mut specs: Vec<String> = VersionSpecifiers::parse(specifiers.trim())
            .ok()?
            .iter()
            .map(|s| s.to_string())
            .collect();
        specs.sort();
        let mut display = name.clone();
        if !extras.is_empty() {
            display.push_str(&format!("[{}]", extras.join(",")));
        }
        display.push_str(&specs.join(","));
        if let Some(m) = &marker {
            display.push_str(&format!(" ; {m}"));
        }
        Some(Req {
            name,
            extras,
            specifiers: specs,
            marker,
            display,
        })
    }
}

/// The environments markers are compared on.
struct Grid {
    envs: Vec<MarkerEnv>,
    extras: Vec<Vec<String>>,
}

impl Grid {
    fn new(requires_python: Option<&str>, extras: &[String]) -> Grid {
        let allowed = requires_python.and_then(|r| VersionSpecifiers::parse(r.trim()).ok());
        let mut envs = Vec::new();
        let mut pythons: Vec<(u64, u64)> = vec![(2, 7)];
        pythons.extend((0..=16).map(|m| (3, m)));
        for (major, minor) in pythons {
            for patch in [0, 1, 20] {
                let full = format!("{major}.{minor}.{patch}");
                if let (Some(a), Ok(v)) = (&allowed, Version::parse(&full))
                    && !a.contains(&v)
                {
                    continue;
                }
                for (platform, system, os) in [
                    ("linux", "Linux", "posix"),
                    ("win32", "Windows", "nt"),
                    ("darwin", "Darwin", "posix"),
                ] {
                    for machine in ["x86_64", "aarch64", "AMD64", "arm64", "i686", "ppc64le"] {
                        for (imp, imp_name) in [("CPython", "cpython"), ("PyPy", "pypy")] {
                            let env = MarkerEnv::cpython_linux(
                                MajorMinor::new(major as u32, minor as u32),
                                Some(&full),
                                machine,
                            );
                            let env = [
                                ("sys_platform", platform),
                                ("platform_system", system),
                                ("os_name", os),
                                ("platform_python_implementation", imp),
                                ("implementation_name", imp_name),
                            ]
                            .iter()
                            .try_fold(env, |e, (k, v)| e.with_override(k, v));
                            if let Ok(env) = env {
                                envs.push(env);
                            }
                        }
                    }
                }
            }
        }
        let mut ex: Vec<Vec<String>> = vec![Vec::new()];
        ex.extend(extras.iter().map(|e| vec![e.clone()]));
        Grid { envs, extras: ex }
    }

    /// Whether two markers mean the same on every environment of the grid (text equality when one
    /// cannot be evaluated).
    fn same(&self, a: Option<&MarkerTree>, b: Option<&MarkerTree>) -> bool {
        let always = MarkerTree::always();
        let (a, b) = (a.unwrap_or(&always), b.unwrap_or(&always));
        if a.to_string() == b.to_string() {
            return true;
        }
        for env in &self.envs {
            for extras in &self.extras {
                match (a.evaluate(env, extras, &[]), b.evaluate(env, extras, &[])) {
                    (Ok(x), Ok(y)) if x == y => {}
                    (Ok(_), Ok(_)) => return false,
                    _ => return a.to_string() == b.to_string(),
                }
            }
        }
        true
    }
}

/// Compares two requirement lists; the first difference, described, if any.
fn diff(grid: &Grid, locked: &[Req], declared: &[Req], what: &str) -> Option<String> {
    let mut unused: Vec<bool> = vec![true; locked.len()];
    for d in declared {
        let hit = locked.iter().enumerate().position(|(i, l)| {
            unused[i]
                && l.name == d.name
                && l.extras == d.extras
                && l.specifiers == d.specifiers
                && grid.same(l.marker.as_ref(), d.marker.as_ref())
        });
        match hit {
            Some(i) => unused[i] = false,
            None => {
                let was = locked
                    .iter()
                    .enumerate()
                    .find(|(i, l)| unused[*i] && l.name == d.name)
                    .map(|(_, l)| format!(" (the lock has `{}`)", l.display))
                    .unwrap_or_default();
                return Some(format!(
                    "`{}` in {what} of pyproject.toml is not in the lock{was}",
                    d.display
                ));
            }
        }
    }
    locked.iter().zip(&unused).find(|(_, u)| **u).map(|(l, _)| {
        format!(
            "`{}` is in the lock but no longer in {what} of pyproject.toml",
            l.display
        )
    })
}

fn parse_pep508(pyproject: &Path, s: &str) -> Result<Requirement> {
    Requirement::parse(s).map_err(|e| Error::Invalid {
        location: Location::file(pyproject),
        message: format!("requirement `{s}`: {e}"),
    })
}

fn req_of(r: &Requirement, extra_marker: Option<&str>) -> Option<Req> {
    let mut marker = r.marker.clone();
    if let Some(x) = extra_marker {
        let m = MarkerTree::parse(&format!("extra == '{x}'")).ok()?;
        marker = Some(match marker {
            Some(m0) => m0.and(m),
            None => m,
        });
    }
    Req::new(&r.name, &r.extras, &r.specifiers.to_string(), marker)
}

fn group_reqs(
    pyproject: &Path,
    py: &Pyproject,
    group: &str,
    out: &mut Vec<Req>,
    depth: usize,
) -> Result<()> {
    if depth > 32 {
        return Err(Error::Invalid {
            location: Location::file(pyproject),
            message: "[dependency-groups] include each other in a cycle".into(),
        });
    }
    for (g, items) in &py.dependency_groups {
        if rbuild_python::normalize_name(g) != group {
            continue;
        }
        for item in items {
            match item {
                toml::Value::String(s) => out.extend(req_of(&parse_pep508(pyproject, s)?, None)),
                toml::Value::Table(t) => {
                    if let Some(inc) = t.get("include-group").and_then(|v| v.as_str()) {
                        group_reqs(
                            pyproject,
                            py,
                            &rbuild_python::normalize_name(inc),
                            out,
                            depth + 1,
                        )?;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn stale(lock: &Path, pyproject: &Path, project: &str, detail: String) -> Error {
    Error::StaleLock {
        lock: lock.to_path_buf(),
        pyproject: pyproject.to_path_buf(),
        project: project.to_string(),
        detail,
    }
}

/// Compares one project's pyproject.toml with what the lock recorded for it.
fn check_project(
    lock_path: &Path,
    pyproject: &Path,
    py: &Pyproject,
    meta: &LockMetadata,
    name: &str,
) -> Result<()> {
    let project = py.project.as_ref();
    let mut extras: Vec<String> = meta
        .provides_extras
        .iter()
        .map(|e| rbuild_python::normalize_name(e))
        .collect();
    let declared_extras: Vec<String> = project
        .map(|p| {
            p.optional_dependencies
                .keys()
                .map(|k| rbuild_python::normalize_name(k))
                .collect()
        })
        .unwrap_or_default();
    for e in &declared_extras {
        if !extras.contains(e) {
            extras.push(e.clone());
        }
    }
    let grid = Grid::new(project.and_then(|p| p.requires_python.as_deref()), &extras);
    let locked: Vec<Req> = meta
        .requires_dist
        .iter()
        .filter_map(|r| {
            let marker = r.marker.as_deref().and_then(|m| MarkerTree::parse(m).ok());
            Req::new(
                &r.name,
                &r.extras,
                r.specifier.as_deref().unwrap_or(""),
                marker,
            )
        })
        .collect();
    let mut declared = Vec::new();
    if let Some(p) = project {
        for d in &p.dependencies {
            declared.extend(req_of(&parse_pep508(pyproject, d)?, None));
        }
        for (x, deps) in &p.optional_dependencies {
            let x = rbuild_python::normalize_name(x);
            for d in deps {
                declared.extend(req_of(&parse_pep508(pyproject, d)?, Some(&x)));
            }
        }
    }
    if let Some(d) = diff(
        &grid,
        &locked,
        &declared,
        "[project] dependencies/optional-dependencies",
    ) {
        return Err(stale(lock_path, pyproject, name, d));
    }
    // Dependency groups.
    let mut groups: Vec<String> = py
        .dependency_groups
        .keys()
        .map(|g| rbuild_python::normalize_name(g))
        .collect();
    if !py.tool.uv.dev_dependencies.is_empty() && !groups.contains(&"dev".to_string()) {
        groups.push("dev".into());
    }
    for g in meta.requires_dev.keys() {
        let g = rbuild_python::normalize_name(g);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    groups.sort();
    for g in groups {
        let locked: Vec<Req> = meta
            .requires_dev
            .iter()
            .filter(|(k, _)| rbuild_python::normalize_name(k) == g)
            .flat_map(|(_, v)| v.iter())
            .filter_map(|r| {
                let marker = r.marker.as_deref().and_then(|m| MarkerTree::parse(m).ok());
                Req::new(
                    &r.name,
                    &r.extras,
                    r.specifier.as_deref().unwrap_or(""),
                    marker,
                )
            })
            .collect();
        let mut declared = Vec::new();
        group_reqs(pyproject, py, &g, &mut declared, 0)?;
        if g == "dev" {
            for d in &py.tool.uv.dev_dependencies {
                declared.extend(req_of(&parse_pep508(pyproject, d)?, None));
            }
        }
        if let Some(d) = diff(
            &grid,
            &locked,
            &declared,
            &format!("[dependency-groups] {g}"),
        ) {
            return Err(stale(lock_path, pyproject, name, d));
        }
    }
    Ok(())
}

fn read_pyproject(path: &Path) -> Result<Pyproject> {
    let text = read_text(path)?;
    toml::from_str(&text).map_err(|e| Error::Toml {
        path: path.to_path_buf(),
        format: "pyproject.toml",
        message: e.to_string(),
    })
}

/// Checks that `lock_path` (a uv.lock) still records what `pyproject` (the project's pyproject.toml,
/// normally beside it) and the pyproject.toml of each workspace member (found under the lock's
/// directory at the member's `source` path) ask for. Fails with [`Error::StaleLock`] naming the first
/// requirement that differs, the way `uv sync --locked` refuses a stale lock.
///
/// A lock without a project entry for the pyproject's `[project] name` is stale too; a pyproject.toml
/// without a `[project]` table (a virtual workspace root) is not compared.
pub fn check_uv_lock_fresh(lock_path: &Path, pyproject: &Path) -> Result<()> {
    let text = read_text(lock_path)?;
    let lock: UvLockMeta = toml::from_str(&text).map_err(|e| Error::Toml {
        path: lock_path.to_path_buf(),
        format: "uv.lock",
        message: e.to_string(),
    })?;
    let lock_dir = lock_path.parent().unwrap_or(Path::new(""));
    let root = read_pyproject(pyproject)?;
    let empty = LockMetadata::default();
    if let Some(name) = root.project.as_ref().and_then(|p| p.name.as_deref()) {
        let norm = rbuild_python::normalize_name(name);
        let entry = lock.packages.iter().find(|p| {
            rbuild_python::normalize_name(&p.name) == norm && member_path(&p.source).is_some()
        });
        let Some(entry) = entry else {
            return Err(stale(
                lock_path,
                pyproject,
                &norm,
                format!("the lock has no entry for the project `{norm}`"),
            ));
        };
        check_project(
            lock_path,
            pyproject,
            &root,
            entry.metadata.as_ref().unwrap_or(&empty),
            &norm,
        )?;
    }
    // Workspace members other than the root.
    for p in &lock.packages {
        let Some(rel) = member_path(&p.source) else {
            continue;
        };
        if matches!(rel.trim_end_matches('/'), "." | "") {
            continue;
        }
        if rel.split(['/', '\\']).any(|c| c == "..") || Path::new(rel).is_absolute() {
            continue;
        }
        let member: PathBuf = lock_dir.join(rel).join("pyproject.toml");
        if !member.is_file() {
            continue;
        }
        let py = read_pyproject(&member)?;
        check_project(
            lock_path,
            &member,
            &py,
            p.metadata.as_ref().unwrap_or(&empty),
            &rbuild_python::normalize_name(&p.name),
        )?;
    }
    Ok(())
}

/// The path of a workspace project (`editable`, `virtual` or `directory` source).
fn member_path(source: &toml::Table) -> Option<&str> {
    ["editable", "virtual", "directory"]
        .iter()
        .find_map(|k| source.get(*k).and_then(|v| v.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_compare_by_meaning() {
        let grid = Grid::new(Some(">=3.9"), &["cli".to_string()]);
        let m = |s: &str| MarkerTree::parse(s).unwrap();
        assert!(grid.same(
            Some(&m("python_version < '3.11'")),
            Some(&m("python_full_version < '3.11'"))
        ));
        assert!(grid.same(
            Some(&m("platform_system == 'Windows'")),
            Some(&m("sys_platform == 'win32'"))
        ));
        // Implied by requires-python: dropped by uv.
        assert!(grid.same(Some(&m("python_version >= '3.8'")), None));
        assert!(!grid.same(Some(&m("sys_platform == 'linux'")), None));
        assert!(!grid.same(
            Some(&m("extra == 'cli'")),
            Some(&m("platform_machine == 'aarch64'"))
        ));
    }
}
