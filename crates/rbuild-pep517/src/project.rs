//! The project being containerized, as a wheel.
//!
//! `uv sync --no-editable` installs the project as a regular (non-editable) distribution: its
//! import packages copied into site-packages, a `.dist-info` with `METADATA`,
//! `entry_points.txt`, `INSTALLER` and `RECORD`, and launchers for its scripts. rbuild does the
//! same by producing **a wheel of the project** and installing it with `rbuild-wheel` like every
//! other wheel. A wheel rather than a list of (site-packages path, host file) pairs or a `.pth`
//! file because:
//! - one install path for everything: the launchers, `RECORD`, `INSTALLER`, modes and conflict
//!   checks are `rbuild-wheel`'s, identical to those of the dependencies (and to pypa/installer);
//! - static and dynamic projects give the same kind of result (a backend build is a wheel too),
//!   so the pipeline has one code path and one cache entry kind (keyed by the wheel's sha256);
//! - a `.pth` pointing at the app directory would import the working tree, not what the
//!   project's packaging selects, and is what an *editable* install does (`--no-editable` is
//!   the behaviour asked for); `importlib.metadata` would still need a `.dist-info`.
//!
//! # Native wheels
//!
//! [`native_project_wheel`] writes the wheel without any interpreter when `pyproject.toml` has a
//! `[project]` table with `name` and `version` and no `dynamic` entry, and the import package
//! can be found:
//! - hints: `tool.setuptools.packages` (a list), `tool.setuptools.package-dir` (`"" = "src"`),
//!   `tool.setuptools.packages.find.where`, `tool.hatch.build.targets.wheel.packages`,
//!   `tool.flit.module.name`, `tool.uv.build-backend.module-name`/`module-root`;
//! - otherwise the name's import form (`my-app` → `my_app`) as `src/my_app/`, `my_app/`,
//!   `src/my_app.py` or `my_app.py`; else the single package directory in `src/`.
//!
//! Every regular file below a package directory is included, except `__pycache__`, `*.pyc`,
//! `*.pyo`, dotfiles and symbolic links. `METADATA` follows the core metadata specification
//! (2.4 when `license` is an SPDX expression, else 2.3) from the PEP 621 fields: `Name`,
//! `Version`, `Summary`, `Requires-Python`, `License-Expression`/`License`, `Author(-email)`,
//! `Maintainer(-email)`, `Keywords`, `Classifier`, `Project-URL`, `Requires-Dist` (optional
//! dependencies with `extra == "…"` markers), `Provides-Extra` and the readme as the body.
//! `entry_points.txt` comes from `[project.scripts]`, `[project.gui-scripts]` and
//! `[project.entry-points]`. The zip is deterministic (sorted members, fixed timestamps).
//!
//! Anything else (a `dynamic` field such as a version from hatch-vcs or setuptools-scm, no
//! `[project]`, no package found) goes through the backend: [`project_wheel`] copies the project
//! into the scratch directory (the backend writes into its tree) and calls
//! [`crate::build_tree`].

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rbuild_python::normalize_name;
use rbuild_python::requirement::Requirement;
use rbuild_python::version::Version;
use rbuild_runner::Python;
use sha2::Digest as _;
use toml::Value;

use crate::env::{BuildEnv, BuildTarget};
use crate::pyproject::read_toml;
use crate::{BuildError, BuildOptions, BuiltWheel};

/// What [`native_project_wheel`] found out when it could not write the wheel natively.
pub type NotNative = String;

/// Name and version of a project, from `[project]` (or the directory name when absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectInfo {
    /// The name as written.
    pub name: String,
    /// The version, when static.
    pub version: Option<String>,
    /// The `dynamic` entries.
    pub dynamic: Vec<String>,
}

/// The project's wheel: native when possible, else built by its backend with `python`.
///
/// `scratch` must be an existing empty directory; the wheel is written below it. Without
/// `python`, a project that needs its backend is an error saying why.
pub fn project_wheel(
    python: Option<&dyn Python>,
    project_dir: &Path,
    scratch: &Path,
    requirements: &dyn BuildEnv,
    target: &BuildTarget,
    opts: &BuildOptions,
) -> Result<BuiltWheel, BuildError> {
    let out = scratch.join("native");
    let why = match native_project_wheel(project_dir, &out)? {
        Ok(w) => return Ok(w),
        Err(why) => why,
    };
    let Some(python) = python else {
        return Err(BuildError::Project {
            dir: project_dir.to_path_buf(),
            reason: format!(
                "{why}, so it must be built by its build backend, which needs the target interpreter"
            ),
        });
    };
    let src = scratch.join("project");
    copy_tree(project_dir, &src)?;
    let info = project_info(project_dir).ok();
    let name = info
        .as_ref()
        .map(|i| normalize_name(&i.name))
        .unwrap_or_else(|| {
            project_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    // A version from git (setuptools-scm, hatch-vcs): computed here, where git and the
    // repository are, since the copy has no `.git` and the base usually no git.
    let mut opts = opts.clone();
    let scm = info
        .as_ref()
        .is_some_and(|i| i.dynamic.iter().any(|d| d == "version"))
        && crate::scm::uses_scm_version(&crate::read_build_system(project_dir)?.requires);
    let pretend = "SETUPTOOLS_SCM_PRETEND_VERSION";
    if scm && !opts.env.iter().any(|(k, _)| k == pretend) {
        let v = crate::scm::scm_version(project_dir).map_err(|reason| BuildError::Project {
            dir: project_dir.to_path_buf(),
            reason,
        })?;
        opts.env.push((pretend.to_string(), v));
    }
    let version = info
        .and_then(|i| i.version)
        .or_else(|| {
            opts.env
                .iter()
                .find(|(k, _)| k == pretend)
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|| "(dynamic version)".into());
    crate::build_tree(
        python,
        &src,
        scratch,
        requirements,
        target,
        &opts,
        (&name, &version),
    )
}

/// Directory names never copied from a project into the build tree.
const SKIP_DIRS: &[&str] = &[
    ".git",
    ".venv",
    "venv",
    "node_modules",
    "__pycache__",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    "build",
    "dist",
];

fn copy_tree(from: &Path, to: &Path) -> Result<(), BuildError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| BuildError::Io { path: p, source }
    };
    fs::create_dir_all(to).map_err(io(to))?;
    let mut entries: Vec<_> = fs::read_dir(from)
        .map_err(io(from))?
        .collect::<Result<_, _>>()
        .map_err(io(from))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let ft = e.file_type().map_err(io(&e.path()))?;
        let dest = to.join(&name);
        if ft.is_dir() {
            if SKIP_DIRS.contains(&name.to_string_lossy().as_ref()) {
                continue;
            }
            copy_tree(&e.path(), &dest)?;
        } else if ft.is_file() {
            fs::copy(e.path(), &dest).map_err(io(&e.path()))?;
        } else if ft.is_symlink() {
            let target = fs::read_link(e.path()).map_err(io(&e.path()))?;
            std::os::unix::fs::symlink(target, &dest).map_err(io(&dest))?;
        }
    }
    Ok(())
}

/// Name, version and dynamic fields of the project at `dir`.
pub fn project_info(dir: &Path) -> Result<ProjectInfo, BuildError> {
    let path = dir.join("pyproject.toml");
    let doc = read_toml(&path)?;
    let bad = |reason: &str| BuildError::Pyproject {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let project = doc
        .get("project")
        .and_then(Value::as_table)
        .ok_or_else(|| bad("it has no [project] table"))?;
    let name = project
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("project.name is missing"))?
        .to_string();
    let dynamic = match project.get("dynamic") {
        None => Vec::new(),
        Some(v) => v
            .as_array()
            .ok_or_else(|| bad("project.dynamic is not a list"))?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
    };
    Ok(ProjectInfo {
        name,
        version: project
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_string),
        dynamic,
    })
}

fn strs(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn get<'a>(doc: &'a toml::Table, path: &[&str]) -> Option<&'a Value> {
    let mut cur = doc.get(path[0])?;
    for p in &path[1..] {
        cur = cur.as_table()?.get(*p)?;
    }
    Some(cur)
}

/// Writes the project's wheel into `out_dir` without a backend. `Ok(Err(why))` when the project
/// needs its backend (see the module docs).
pub fn native_project_wheel(
    project_dir: &Path,
    out_dir: &Path,
) -> Result<Result<BuiltWheel, NotNative>, BuildError> {
    let path = project_dir.join("pyproject.toml");
    if !path.is_file() {
        return Ok(Err("it has no pyproject.toml".into()));
    }
    let doc = read_toml(&path)?;
    let Some(project) = doc.get("project").and_then(Value::as_table) else {
        return Ok(Err("its pyproject.toml has no [project] table".into()));
    };
    let info = project_info(project_dir)?;
    if !info.dynamic.is_empty() {
        return Ok(Err(format!(
            "its metadata is dynamic ({})",
            info.dynamic.join(", ")
        )));
    }
    let bad = |reason: String| BuildError::Pyproject {
        path: path.clone(),
        reason,
    };
    let Some(version) = &info.version else {
        return Err(bad(
            "project.version is missing and not listed in project.dynamic".into(),
        ));
    };
    let version = Version::parse(version)
        .map_err(|e| bad(format!("project.version: {e}")))?
        .to_string();
    rbuild_python::validate_name(&info.name).map_err(|e| bad(format!("project.name: {e}")))?;
    let files = match find_package_files(project_dir, &doc, &info.name)? {
        Ok(f) => f,
        Err(why) => return Ok(Err(why)),
    };
    let metadata = metadata(project, &info.name, &version, project_dir, &path)?;
    let entry_points = entry_points(project, &path)?;

    let dist = format!(
        "{}-{}",
        normalize_name(&info.name).replace('-', "_"),
        version
    );
    let filename = format!("{dist}-py3-none-any.whl");
    fs::create_dir_all(out_dir).map_err(|source| BuildError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let wheel_path = out_dir.join(&filename);
    let mut members: Vec<(String, Vec<u8>, bool)> = Vec::new();
    for (rel, host) in &files {
        let bytes = fs::read(host).map_err(|source| BuildError::Io {
            path: host.clone(),
            source,
        })?;
        let exec = {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(host)
                .map(|m| m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        };
        members.push((rel.clone(), bytes, exec));
    }
    let di = format!("{dist}.dist-info");
    members.push((format!("{di}/METADATA"), metadata.into_bytes(), false));
    members.push((
        format!("{di}/WHEEL"),
        b"Wheel-Version: 1.0\nGenerator: rbuild\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
            .to_vec(),
        false,
    ));
    if let Some(ep) = entry_points {
        members.push((format!("{di}/entry_points.txt"), ep.into_bytes(), false));
    }
    let mut record = String::new();
    for (name, bytes, _) in &members {
        let hash =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(bytes));
        record.push_str(&format!(
            "{},sha256={hash},{}\n",
            csv_field(name),
            bytes.len()
        ));
    }
    record.push_str(&format!("{di}/RECORD,,\n"));
    members.push((format!("{di}/RECORD"), record.into_bytes(), false));

    let io = |source: std::io::Error| BuildError::Io {
        path: wheel_path.clone(),
        source,
    };
    let file = fs::File::create(&wheel_path).map_err(io)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    for (name, bytes, exec) in &members {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(if *exec { 0o755 } else { 0o644 });
        zip.start_file(name.as_str(), opts)
            .map_err(|e| io(std::io::Error::other(e)))?;
        zip.write_all(bytes).map_err(io)?;
    }
    zip.finish()
        .map_err(|e| io(std::io::Error::other(e)))?
        .flush()
        .map_err(io)?;
    Ok(Ok(BuiltWheel {
        path: wheel_path,
        filename,
        name: normalize_name(&info.name),
        version,
        build_requirements: Vec::new(),
        backend: "rbuild (native)".into(),
        output: String::new(),
    }))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `(path in the wheel, host file)` of every file of the project's import packages, sorted;
/// `Ok(Err(why))` when none can be found.
fn find_package_files(
    dir: &Path,
    doc: &toml::Table,
    name: &str,
) -> Result<Result<Vec<(String, PathBuf)>, NotNative>, BuildError> {
    // (root directory relative to the project, import path relative to that root)
    let mut roots: Vec<(String, String)> = Vec::new();
    let import = normalize_name(name).replace('-', "_");
    let st_root = get(doc, &["tool", "setuptools", "package-dir"])
        .and_then(Value::as_table)
        .and_then(|t| t.get(""))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(list) = get(doc, &["tool", "setuptools", "packages"]).and_then(Value::as_array) {
        let root = st_root.clone().unwrap_or_default();
        // Only top-level packages: sub-packages are inside them.
        for p in list
            .iter()
            .filter_map(Value::as_str)
            .filter(|p| !p.contains('.'))
        {
            roots.push((root.clone(), p.to_string()));
        }
    }
    for p in strs(get(
        doc,
        &["tool", "hatch", "build", "targets", "wheel", "packages"],
    )) {
        let p = p.trim_end_matches('/');
        match p.rsplit_once('/') {
            Some((root, leaf)) => roots.push((root.to_string(), leaf.to_string())),
            None => roots.push((String::new(), p.to_string())),
        }
    }
    if let Some(m) = get(doc, &["tool", "flit", "module", "name"]).and_then(Value::as_str) {
        roots.push((String::new(), m.replace('.', "/")));
        roots.push(("src".into(), m.replace('.', "/")));
    }
    let uv_root = get(doc, &["tool", "uv", "build-backend", "module-root"])
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(m) =
        get(doc, &["tool", "uv", "build-backend", "module-name"]).and_then(Value::as_str)
    {
        roots.push((
            uv_root.clone().unwrap_or_else(|| "src".into()),
            m.replace('.', "/"),
        ));
    }
    if roots.is_empty() {
        let mut bases = Vec::new();
        if let Some(w) = get(doc, &["tool", "setuptools", "packages", "find", "where"]) {
            bases.extend(strs(Some(w)));
        }
        bases.extend(st_root.clone());
        bases.extend(uv_root);
        bases.push("src".into());
        bases.push(String::new());
        for b in &bases {
            roots.push((b.clone(), import.clone()));
        }
        // A src layout whose single package is not named after the project.
        if let Ok(rd) = fs::read_dir(dir.join("src")) {
            let mut pkgs: Vec<String> = rd
                .filter_map(Result::ok)
                .filter(|e| e.path().join("__init__.py").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            pkgs.sort();
            if pkgs.len() == 1 {
                roots.push(("src".into(), pkgs.remove(0)));
            }
        }
    }
    let defaults = roots_are_defaults(doc);
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (root, rel) in &roots {
        for c in root.split('/').chain(rel.split('/')) {
            if c == ".." || c.starts_with('/') {
                return Err(BuildError::Project {
                    dir: dir.to_path_buf(),
                    reason: format!("package path {root}/{rel} leaves the project"),
                });
            }
        }
        let base = if root.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(root)
        };
        let pkg = base.join(rel);
        let module = base.join(format!("{rel}.py"));
        if pkg.is_dir() {
            collect(&pkg, rel, &mut files)?;
        } else if module.is_file() {
            files.insert(format!("{rel}.py"), module);
        }
        if !files.is_empty() && defaults {
            break;
        }
    }
    if files.is_empty() {
        return Ok(Err(format!(
            "no import package for {name} was found (looked for {import}/ and {import}.py at the top and in src/)"
        )));
    }
    Ok(Ok(files.into_iter().collect()))
}

/// Whether package locations come from the default search (first match wins) rather than hints
/// (all listed packages are included).
fn roots_are_defaults(doc: &toml::Table) -> bool {
    get(doc, &["tool", "setuptools", "packages"])
        .and_then(Value::as_array)
        .is_none()
        && get(
            doc,
            &["tool", "hatch", "build", "targets", "wheel", "packages"],
        )
        .is_none()
        && get(doc, &["tool", "flit", "module", "name"]).is_none()
        && get(doc, &["tool", "uv", "build-backend", "module-name"]).is_none()
}

fn collect(dir: &Path, rel: &str, out: &mut BTreeMap<String, PathBuf>) -> Result<(), BuildError> {
    let io = |source| BuildError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.')
            || name == "__pycache__"
            || name.ends_with(".pyc")
            || name.ends_with(".pyo")
        {
            continue;
        }
        let ft = e.file_type().map_err(io)?;
        let child = format!("{rel}/{name}");
        if ft.is_dir() {
            collect(&e.path(), &child, out)?;
        } else if ft.is_file() {
            out.insert(child, e.path());
        }
    }
    Ok(())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn fold(s: &str) -> String {
    s.trim_end().replace('\n', "\n        ")
}

fn metadata(
    project: &toml::Table,
    name: &str,
    version: &str,
    dir: &Path,
    path: &Path,
) -> Result<String, BuildError> {
    let bad = |reason: String| BuildError::Pyproject {
        path: path.to_path_buf(),
        reason,
    };
    let mut h: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| h.push((k.to_string(), v));
    let mut meta_version = "2.3";
    push("Name", name.to_string());
    push("Version", version.to_string());
    if let Some(d) = project.get("description").and_then(Value::as_str) {
        push("Summary", one_line(d));
    }
    let kw = strs(project.get("keywords"));
    if !kw.is_empty() {
        push("Keywords", kw.join(","));
    }
    if let Some(urls) = project.get("urls").and_then(Value::as_table) {
        for (label, url) in urls {
            if let Some(u) = url.as_str() {
                push("Project-URL", format!("{label}, {u}"));
            }
        }
    }
    for (field, plain, email) in [
        ("authors", "Author", "Author-email"),
        ("maintainers", "Maintainer", "Maintainer-email"),
    ] {
        let mut names = Vec::new();
        let mut emails = Vec::new();
        for p in project
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let n = p.get("name").and_then(Value::as_str);
            let e = p.get("email").and_then(Value::as_str);
            match (n, e) {
                (Some(n), Some(e)) => emails.push(format!("{n} <{e}>")),
                (None, Some(e)) => emails.push(e.to_string()),
                (Some(n), None) => names.push(n.to_string()),
                (None, None) => {}
            }
        }
        if !names.is_empty() {
            push(plain, names.join(", "));
        }
        if !emails.is_empty() {
            push(email, emails.join(", "));
        }
    }
    match project.get("license") {
        Some(Value::String(expr)) => {
            meta_version = "2.4";
            push("License-Expression", expr.clone());
        }
        Some(Value::Table(t)) => {
            if let Some(text) = t.get("text").and_then(Value::as_str) {
                push("License", fold(text));
            }
        }
        _ => {}
    }
    for c in strs(project.get("classifiers")) {
        push("Classifier", c);
    }
    if let Some(rp) = project.get("requires-python").and_then(Value::as_str) {
        push("Requires-Python", rp.to_string());
    }
    for d in strs(project.get("dependencies")) {
        let r = Requirement::parse(&d).map_err(|e| bad(format!("project.dependencies: {e}")))?;
        push("Requires-Dist", r.to_string());
    }
    if let Some(opt) = project
        .get("optional-dependencies")
        .and_then(Value::as_table)
    {
        for (extra, deps) in opt {
            let extra = normalize_name(extra);
            push("Provides-Extra", extra.clone());
            for d in strs(Some(deps)) {
                let mut r = Requirement::parse(&d)
                    .map_err(|e| bad(format!("project.optional-dependencies.{extra}: {e}")))?;
                let marker = r.marker.take();
                let m = match marker {
                    Some(m) => format!("({m}) and extra == \"{extra}\""),
                    None => format!("extra == \"{extra}\""),
                };
                push("Requires-Dist", format!("{r}; {m}"));
            }
        }
    }
    let mut body = None;
    match project.get("readme") {
        Some(Value::String(f)) => {
            let ct = if f.to_ascii_lowercase().ends_with(".md") {
                "text/markdown"
            } else if f.to_ascii_lowercase().ends_with(".rst") {
                "text/x-rst"
            } else {
                "text/plain"
            };
            body = Some((read_readme(dir, f, path)?, ct.to_string()));
        }
        Some(Value::Table(t)) => {
            let ct = t
                .get("content-type")
                .and_then(Value::as_str)
                .unwrap_or("text/plain")
                .to_string();
            if let Some(text) = t.get("text").and_then(Value::as_str) {
                body = Some((text.to_string(), ct));
            } else if let Some(f) = t.get("file").and_then(Value::as_str) {
                body = Some((read_readme(dir, f, path)?, ct));
            }
        }
        _ => {}
    }
    if let Some((_, ct)) = &body {
        push("Description-Content-Type", ct.clone());
    }
    let mut out = format!("Metadata-Version: {meta_version}\n");
    for (k, v) in h {
        out.push_str(&format!("{k}: {v}\n"));
    }
    if let Some((text, _)) = body {
        out.push('\n');
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

fn read_readme(dir: &Path, f: &str, path: &Path) -> Result<String, BuildError> {
    if f.starts_with('/') || f.split(['/', '\\']).any(|c| c == "..") {
        return Err(BuildError::Pyproject {
            path: path.to_path_buf(),
            reason: format!("project.readme {f:?} is outside the project"),
        });
    }
    fs::read_to_string(dir.join(f)).map_err(|source| BuildError::Io {
        path: dir.join(f),
        source,
    })
}

fn entry_points(project: &toml::Table, path: &Path) -> Result<Option<String>, BuildError> {
    let mut groups: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let bad = |reason: String| BuildError::Pyproject {
        path: path.to_path_buf(),
        reason,
    };
    let mut add = |group: &str, table: &toml::Table| -> Result<(), BuildError> {
        for (k, v) in table {
            let v = v
                .as_str()
                .ok_or_else(|| bad(format!("entry point {group}.{k} is not a string")))?;
            if k.contains(['=', '[', ']', '\n']) || v.contains('\n') {
                return Err(bad(format!(
                    "entry point {group}.{k} has an invalid name or value"
                )));
            }
            groups
                .entry(group.to_string())
                .or_default()
                .insert(k.clone(), v.to_string());
        }
        Ok(())
    };
    if let Some(t) = project.get("scripts").and_then(Value::as_table) {
        add("console_scripts", t)?;
    }
    if let Some(t) = project.get("gui-scripts").and_then(Value::as_table) {
        add("gui_scripts", t)?;
    }
    if let Some(eps) = project.get("entry-points").and_then(Value::as_table) {
        for (group, t) in eps {
            if group == "console_scripts" || group == "gui_scripts" {
                return Err(bad(format!(
                    "project.entry-points.{group} is not allowed (PEP 621): use project.scripts / project.gui-scripts"
                )));
            }
            let t = t
                .as_table()
                .ok_or_else(|| bad(format!("project.entry-points.{group} is not a table")))?;
            add(group, t)?;
        }
    }
    if groups.is_empty() {
        return Ok(None);
    }
    let mut out = String::new();
    for (g, eps) in groups {
        out.push_str(&format!("[{g}]\n"));
        for (k, v) in eps {
            out.push_str(&format!("{k} = {v}\n"));
        }
        out.push('\n');
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (p, c) in files {
            let p = dir.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, c).unwrap();
        }
    }

    fn members(wheel: &Path) -> BTreeMap<String, String> {
        let mut z = zip::ZipArchive::new(fs::File::open(wheel).unwrap()).unwrap();
        let mut out = BTreeMap::new();
        for i in 0..z.len() {
            let mut f = z.by_index(i).unwrap();
            let mut s = String::new();
            std::io::Read::read_to_string(&mut f, &mut s).unwrap();
            out.insert(f.name().unwrap().into_owned(), s);
        }
        out
    }

    #[test]
    fn src_layout_with_scripts_is_native() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                (
                    "pyproject.toml",
                    r#"
[project]
name = "My-App"
version = "1.2.0"
description = "An app\nthat does things"
requires-python = ">=3.10"
dependencies = ["requests>=2; python_version >= '3.8'"]
license = "MIT"
authors = [{name = "A B", email = "a@b.c"}, {name = "Solo"}]
readme = "README.md"
[project.optional-dependencies]
Fast = ["orjson", "uvloop; sys_platform == 'linux'"]
[project.scripts]
my-app = "my_app.cli:main"
[project.entry-points."myapp.plugins"]
x = "my_app.x:X"
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"#,
                ),
                ("README.md", "# Hello\n"),
                (
                    "src/my_app/__init__.py",
                    "import importlib.metadata as m\n__version__ = m.version('my-app')\n",
                ),
                ("src/my_app/cli.py", "def main(): print('hi')\n"),
                ("src/my_app/data/x.json", "{}"),
                ("src/my_app/__pycache__/cli.cpython-311.pyc", "junk"),
                ("tests/test_x.py", ""),
            ],
        );
        let out = d.path().join("out");
        let w = native_project_wheel(d.path(), &out).unwrap().unwrap();
        assert_eq!(w.filename, "my_app-1.2.0-py3-none-any.whl");
        let m = members(&w.path);
        let names: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "my_app-1.2.0.dist-info/METADATA",
                "my_app-1.2.0.dist-info/RECORD",
                "my_app-1.2.0.dist-info/WHEEL",
                "my_app-1.2.0.dist-info/entry_points.txt",
                "my_app/__init__.py",
                "my_app/cli.py",
                "my_app/data/x.json",
            ]
        );
        let meta = &m["my_app-1.2.0.dist-info/METADATA"];
        assert_eq!(
            meta,
            "Metadata-Version: 2.4\nName: My-App\nVersion: 1.2.0\nSummary: An app that does things\n\
             Author: Solo\nAuthor-email: A B <a@b.c>\nLicense-Expression: MIT\nRequires-Python: >=3.10\n\
             Requires-Dist: requests>=2; python_version >= \"3.8\"\nProvides-Extra: fast\n\
             Requires-Dist: orjson; extra == \"fast\"\n\
             Requires-Dist: uvloop; (sys_platform == \"linux\") and extra == \"fast\"\n\
             Description-Content-Type: text/markdown\n\n# Hello\n"
        );
        assert_eq!(
            m["my_app-1.2.0.dist-info/entry_points.txt"],
            "[console_scripts]\nmy-app = my_app.cli:main\n\n[myapp.plugins]\nx = my_app.x:X\n\n"
        );
        // The wheel installs with rbuild-wheel (RECORD verified, launcher written).
        let target = rbuild_wheel::InstallTarget {
            interpreter: "/usr/bin/python3.11".into(),
            purelib: "/site".into(),
            platlib: "/site".into(),
            scripts: "/bin".into(),
            headers: "/inc".into(),
            data: "/".into(),
            python_version: (3, 11),
        };
        let root = d.path().join("root");
        fs::create_dir(&root).unwrap();
        let mut sink = crate::env::DirSink { root: root.clone() };
        rbuild_wheel::install_wheels(
            &[rbuild_wheel::WheelInput {
                path: w.path.clone(),
                filename: w.filename.clone(),
                expected_name: "my-app".into(),
                expected_version: "1.2.0".into(),
            }],
            &target,
            &Default::default(),
            &Default::default(),
            &mut sink,
        )
        .unwrap();
        let launcher = fs::read_to_string(root.join("bin/my-app")).unwrap();
        assert!(launcher.starts_with("#!/usr/bin/python3.11"), "{launcher}");
        assert!(
            launcher.contains("from my_app.cli import main"),
            "{launcher}"
        );
        assert!(root.join("site/my_app/cli.py").is_file());
        // Deterministic: the same project gives the same bytes.
        let again = native_project_wheel(d.path(), &d.path().join("again"))
            .unwrap()
            .unwrap();
        assert_eq!(fs::read(&w.path).unwrap(), fs::read(&again.path).unwrap());
    }

    #[test]
    fn dynamic_or_unfindable_projects_need_the_backend() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                (
                    "pyproject.toml",
                    "[project]\nname='x'\ndynamic=['version']\n",
                ),
                ("x/__init__.py", ""),
            ],
        );
        let why = native_project_wheel(d.path(), &d.path().join("o"))
            .unwrap()
            .unwrap_err();
        assert!(why.contains("dynamic (version)"), "{why}");

        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                ("pyproject.toml", "[project]\nname='x'\nversion='1'\n"),
                ("app.py", ""),
            ],
        );
        let why = native_project_wheel(d.path(), &d.path().join("o"))
            .unwrap()
            .unwrap_err();
        assert!(why.contains("no import package"), "{why}");
    }

    #[test]
    fn flat_layout_and_hints() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                (
                    "pyproject.toml",
                    "[project]\nname='svc'\nversion='0.1'\n[tool.hatch.build.targets.wheel]\npackages=['lib/core', 'lib/extra']\n",
                ),
                ("lib/core/__init__.py", ""),
                ("lib/extra/__init__.py", ""),
                ("svc.py", ""),
            ],
        );
        let w = native_project_wheel(d.path(), &d.path().join("o"))
            .unwrap()
            .unwrap();
        let m = members(&w.path);
        assert!(m.contains_key("core/__init__.py") && m.contains_key("extra/__init__.py"));
        assert!(!m.contains_key("svc.py"));

        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            &[
                ("pyproject.toml", "[project]\nname='svc'\nversion='0.1'\n"),
                ("svc.py", ""),
            ],
        );
        let w = native_project_wheel(d.path(), &d.path().join("o"))
            .unwrap()
            .unwrap();
        assert!(members(&w.path).contains_key("svc.py"));
    }
}
