//! The target of a build: the Python, install scheme, C library and CPU of one platform of a base image.
//!
//! [`detect_target`] reads the base image's layers once (uncompressed tar streams, base layer first,
//! whiteouts and layer order honoured, nothing unpacked) and decides, without running anything:
//!
//! - **The interpreter**: the first directory of the image's `PATH` (from the config's `Env`; Docker's
//!   default `PATH` otherwise, with `/opt/app-root/bin` first for UBI/S2I images) holding `python3`,
//!   `python` or `pythonX.Y`. `X.Y` comes from the name the link chain ends in (`python3 → python3.11`),
//!   else the highest `pythonX.Y` beside it, else the venv's `pyvenv.cfg`. The interpreter path is
//!   `DIR/pythonX.Y` when that exists (else the name found), as `PATH` spells `DIR`.
//! - **`X.Y.Z`**, when the image tells it: a venv's `pyvenv.cfg`, `PREFIX/include/pythonX.Y/patchlevel.h`,
//!   the config's `PYTHON_VERSION` (Docker Hub images), the dpkg package `pythonX.Y`/`pythonX.Y-minimal`
//!   (`3.11.2-6+deb12u5` → `3.11.2`) or apk's `python3`. Otherwise it is `None` (see
//!   [`crate::markers`] for how markers then behave).
//! - **The scheme** pip would use, from the interpreter's prefix (the directory above `bin`):
//!
//!   | image | purelib = platlib | scripts | data | headers |
//!   |---|---|---|---|---|
//!   | Docker Hub (`/usr/local/bin/python3.12`), any other prefix `P` | `P/lib/pythonX.Y/site-packages` | `P/bin` | `P` | `P/include/pythonX.Y` |
//!   | Debian/Ubuntu python3 (`/usr/bin`; its `sysconfig.py` defines Debian's `posix_local` scheme, or without one readable `/usr/lib/python3/dist-packages` or dpkg's `pythonX.Y-minimal`) | `/usr/local/lib/pythonX.Y/dist-packages` | `/usr/local/bin` | `/usr/local` | `/usr/local/include/pythonX.Y` |
//!   | Fedora/RHEL python3 (`/usr/bin`, `/usr/lib64/pythonX.Y` exists) | `/usr/local/lib/pythonX.Y/site-packages` (platlib `/usr/local/lib64/…`) | `/usr/local/bin` | `/usr/local` | `/usr/local/include/pythonX.Y` |
//!   | other `/usr/bin` Pythons (Alpine) | `/usr/lib/pythonX.Y/site-packages` | `/usr/bin` | `/usr` | `/usr/include/pythonX.Y` |
//!   | a venv (`P/pyvenv.cfg`, e.g. UBI/S2I's `/opt/app-root`) | `P/lib/pythonX.Y/site-packages` | `P/bin` | `P` | `P/include/site/pythonX.Y` |
//!
//! - **The C library**: its family from the interpreter's ELF program interpreter (`ld-musl-*` or
//!   `ld-linux-*`), else from what the image holds; glibc's version from dpkg's `libc6` record
//!   (`status` or distroless' `status.d/`), else a `libc-2.NN.so`/`ld-2.NN.so` name, else the banner
//!   inside `libc.so.6` (RPM-based images); musl's version from apk's `musl` record. A musl image
//!   without an apk database is an error asking for `--libc musl-1.Y`: rbuild does not guess.
//! - **The CPU** from the OCI platform ([`wheel_arch_for`]).
//! - **Installed distributions**: every `*.dist-info` directly in the site directories (the scheme's
//!   purelib/platlib, plus the distribution's own: `/usr/lib/python3/dist-packages` and
//!   `/usr/lib/pythonX.Y/dist-packages` on Debian, `/usr/lib{,64}/pythonX.Y/site-packages` on Fedora),
//!   with name and version from `METADATA` (or the directory name) and whether it has a `RECORD`.
//!   A venv's `include-system-site-packages` is not followed.
//!
//! [`TargetOverrides`] replace any part (`--python-version`, `--libc`, `--site-packages`,
//! `--interpreter`). With no layers at all (`--base scratch`), the Python version and libc must be given
//! and the scheme is Docker Hub's unless `--interpreter`/`--site-packages` say otherwise.

mod interp;
mod scan;
mod types;

use std::collections::BTreeMap;
use std::io::{self, Read};

pub use types::{
    InstalledDist, Libc, LibcFamily, MajorMinor, Platform, Scheme, Target, wheel_arch_for,
};

use crate::name::normalize_name;
use crate::rootfs::{Apply, Entry, LayerError, Merged};
use crate::version::Version;
use scan::{FileFacts, Node, Tree};

/// Why the target of an image could not be determined.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A layer could not be read.
    #[error("cannot read layer {index} of the base image: {source}")]
    Layer {
        /// 0-based index, base layer first.
        index: usize,
        /// The I/O or tar error.
        #[source]
        source: io::Error,
    },
    /// The platform is not Linux or its CPU is unknown.
    #[error("platform {platform} is not supported: {reason}")]
    UnsupportedPlatform {
        /// The platform.
        platform: String,
        /// Why.
        reason: String,
    },
    /// No Python was found.
    #[error(
        "no Python interpreter found in the base image for {platform} (looked on PATH: {searched}; \
         found: {found}); use a base image that has Python (e.g. --base python:3.12-slim, or your \
         platform's Python image); only if the base has a Python rbuild cannot see, pass \
         --python-version X.Y and --interpreter /path/to/pythonX.Y (and --site-packages DIR if pip \
         would not use PREFIX/lib/pythonX.Y/site-packages)"
    )]
    NoPython {
        /// The platform.
        platform: String,
        /// The directories searched.
        searched: String,
        /// Python-looking things that were found.
        found: String,
    },
    /// The Python found is not the version asked for.
    #[error(
        "the base image for {platform} has Python {found} ({interpreter}), not {wanted}; \
         pass --interpreter to use a Python rbuild cannot see, or drop --python-version"
    )]
    PythonMismatch {
        /// The platform.
        platform: String,
        /// The version asked for.
        wanted: MajorMinor,
        /// The version found.
        found: MajorMinor,
        /// Where.
        interpreter: String,
    },
    /// The C library could not be determined.
    #[error(
        "cannot tell the C library of the base image for {platform} ({found}); pass --libc glibc-X.Y or --libc musl-X.Y"
    )]
    NoLibc {
        /// The platform.
        platform: String,
        /// What was found.
        found: String,
    },
    /// The interpreter does not resolve, inside the image, to an ELF executable: a dangling or
    /// looping link, a script, a directory.
    #[error(
        "the interpreter {path} of the base image for {platform} cannot run: {reason}; fix the \
         base image, or pass --interpreter with the path of its real Python"
    )]
    BadInterpreter {
        /// The platform.
        platform: String,
        /// The interpreter, as the image's `PATH` (or `--interpreter`) spells it.
        path: String,
        /// What it leads to.
        reason: String,
    },
    /// The interpreter's install scheme could not be told with confidence.
    #[error(
        "cannot tell where {interpreter} on {platform} installs packages: {evidence}; pass --site-packages DIR (a directory on that interpreter's sys.path)"
    )]
    UnsureScheme {
        /// The platform.
        platform: String,
        /// The interpreter.
        interpreter: String,
        /// What was found, and how it conflicts.
        evidence: String,
    },
    /// An override is malformed.
    #[error("invalid {flag} `{value}`: {reason}")]
    BadOverride {
        /// The flag (`--python-version`).
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// User-given values that replace detection (the `--python-version`, `--libc`, `--site-packages` and
/// `--interpreter` flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetOverrides {
    /// `X.Y`.
    pub python_version: Option<MajorMinor>,
    /// `X.Y.Z` (set by [`TargetOverrides::set_python_version`] when given).
    pub python_full_version: Option<String>,
    /// The C library.
    pub libc: Option<Libc>,
    /// Where packages go (purelib = platlib), absolute.
    pub site_packages: Option<String>,
    /// The interpreter, absolute.
    pub interpreter: Option<String>,
}

impl TargetOverrides {
    /// Sets the Python version from `X.Y` or `X.Y.Z` (the `--python-version` flag).
    pub fn set_python_version(&mut self, value: &str) -> Result<(), TargetError> {
        let bad = |reason: &str| TargetError::BadOverride {
            flag: "--python-version",
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let v =
            Version::parse(value).map_err(|_| bad("expected X.Y or X.Y.Z, e.g. 3.12 or 3.12.4"))?;
        let r = v.release();
        if v.epoch() != 0 || r.len() < 2 || r.len() > 3 || !v.local().is_empty() {
            return Err(bad("expected X.Y or X.Y.Z, e.g. 3.12 or 3.12.4"));
        }
        if r[0] != 3 {
            return Err(bad("rbuild supports CPython 3 only"));
        }
        let mm = MajorMinor::new(
            r[0] as u32,
            u32::try_from(r[1]).map_err(|_| bad("minor too large"))?,
        );
        self.python_version = Some(mm);
        self.python_full_version = (r.len() == 3).then(|| v.to_string());
        Ok(())
    }

    /// Sets the C library from `glibc-X.Y` / `musl-X.Y` (the `--libc` flag).
    pub fn set_libc(&mut self, value: &str) -> Result<(), TargetError> {
        self.libc = Some(value.parse().map_err(|reason| TargetError::BadOverride {
            flag: "--libc",
            value: value.to_string(),
            reason,
        })?);
        Ok(())
    }

    /// Sets the site-packages directory (the `--site-packages` flag); must be absolute.
    pub fn set_site_packages(&mut self, value: &str) -> Result<(), TargetError> {
        self.site_packages = Some(absolute("--site-packages", value)?);
        Ok(())
    }

    /// Sets the interpreter path (the `--interpreter` flag); must be absolute.
    pub fn set_interpreter(&mut self, value: &str) -> Result<(), TargetError> {
        self.interpreter = Some(absolute("--interpreter", value)?);
        Ok(())
    }
}

fn absolute(flag: &'static str, value: &str) -> Result<String, TargetError> {
    let bad = |reason: &str| TargetError::BadOverride {
        flag,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if !value.starts_with('/') {
        return Err(bad("must be an absolute path inside the image"));
    }
    let clean =
        scan::clean_path(value).ok_or_else(|| bad("must name a path below / without `..`"))?;
    Ok(format!("/{clean}"))
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The kind of installation the interpreter belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    /// A prefix of its own (`/usr/local`, `/opt/python`): `P/lib/pythonX.Y/site-packages`.
    Prefix(String),
    /// Debian/Ubuntu's python3 in `/usr`.
    Debian,
    /// Fedora/RHEL's python3 in `/usr`.
    Fedora,
    /// A virtual environment at `P`.
    Venv(String),
}

impl Layout {
    fn scheme(&self, py: MajorMinor) -> Scheme {
        let x = format!("python{py}");
        let prefix_scheme = |p: &str, headers: String| Scheme {
            purelib: format!("{p}/lib/{x}/site-packages"),
            platlib: format!("{p}/lib/{x}/site-packages"),
            scripts: format!("{p}/bin"),
            headers,
            data: p.to_string(),
        };
        match self {
            Layout::Prefix(p) => prefix_scheme(p, format!("{p}/include/{x}")),
            Layout::Venv(p) => prefix_scheme(p, format!("{p}/include/site/{x}")),
            Layout::Debian => Scheme {
                purelib: format!("/usr/local/lib/{x}/dist-packages"),
                platlib: format!("/usr/local/lib/{x}/dist-packages"),
                scripts: "/usr/local/bin".into(),
                headers: format!("/usr/local/include/{x}"),
                data: "/usr/local".into(),
            },
            Layout::Fedora => Scheme {
                purelib: format!("/usr/local/lib/{x}/site-packages"),
                platlib: format!("/usr/local/lib64/{x}/site-packages"),
                scripts: "/usr/local/bin".into(),
                headers: format!("/usr/local/include/{x}"),
                data: "/usr/local".into(),
            },
        }
    }

    /// Extra directories on `sys.path` where the distribution itself installs packages.
    fn system_site_dirs(&self, py: MajorMinor) -> Vec<String> {
        let x = format!("python{py}");
        match self {
            Layout::Debian => vec![
                "/usr/lib/python3/dist-packages".into(),
                format!("/usr/lib/{x}/dist-packages"),
            ],
            Layout::Fedora => vec![
                format!("/usr/lib64/{x}/site-packages"),
                format!("/usr/lib/{x}/site-packages"),
            ],
            Layout::Prefix(_) | Layout::Venv(_) => vec![],
        }
    }

    fn prefix(&self) -> &str {
        match self {
            Layout::Prefix(p) | Layout::Venv(p) => p,
            Layout::Debian | Layout::Fedora => "/usr",
        }
    }
}

/// Parses `pythonX.Y` (also `pythonX.Ym`, as old builds name it) into `X.Y`.
fn python_name_version(base: &str) -> Option<MajorMinor> {
    let rest = base.strip_prefix("python")?;
    let rest = rest.strip_suffix('m').unwrap_or(rest);
    let mm: MajorMinor = rest.parse().ok()?;
    Some(mm)
}

/// What was found about the interpreter.
struct Interp {
    /// Absolute path as `PATH` spells it.
    path: String,
    version: MajorMinor,
    /// The resolved (real) path inside the tree, without a leading `/`.
    resolved: String,
}

fn env_lookup<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn is_file_like(n: &Node) -> bool {
    !matches!(n, Node::Dir)
}

/// Looks for a Python in one directory (absolute, as written in `PATH`).
fn python_in_dir(tree: &Tree, dir: &str, want: Option<MajorMinor>) -> Option<Interp> {
    let rel = dir.trim_start_matches('/');
    let children = tree.children(rel);
    let has = |name: &str| {
        children
            .iter()
            .any(|(n, node)| n == name && is_file_like(node))
    };
    let mut versioned: Vec<MajorMinor> = children
        .iter()
        .filter(|(_, n)| is_file_like(n))
        .filter_map(|(n, _)| python_name_version(n))
        .collect();
    versioned.sort();
    let make = |name: &str, version: MajorMinor| {
        let path = format!("{}/{name}", dir.trim_end_matches('/'));
        let resolved = tree.resolve(path.trim_start_matches('/'));
        Interp {
            path,
            version,
            resolved,
        }
    };
    if let Some(w) = want {
        let name = format!("python{w}");
        return has(&name).then(|| make(&name, w));
    }
    for generic in ["python3", "python"] {
        if !has(generic) {
            continue;
        }
        let path = format!("{}/{generic}", rel.trim_end_matches('/'));
        let chain = tree.link_chain(&path);
        let from_chain = chain
            .iter()
            .find_map(|p| python_name_version(p.rsplit('/').next().unwrap_or("")));
        let version = from_chain
            .or_else(|| versioned.last().copied())
            .or_else(|| {
                // A venv made with --copies: ask its pyvenv.cfg.
                let prefix = rel.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                venv_version(tree, prefix).map(|(mm, _)| mm)
            })?;
        let name = format!("python{version}");
        return Some(if has(&name) {
            make(&name, version)
        } else {
            make(generic, version)
        });
    }
    let v = *versioned.last()?;
    Some(make(&format!("python{v}"), v))
}

/// `pyvenv.cfg` of a prefix: `X.Y` and the full version if it records one.
fn venv_version(tree: &Tree, prefix: &str) -> Option<(MajorMinor, Option<String>)> {
    let path = if prefix.is_empty() {
        "pyvenv.cfg".to_string()
    } else {
        format!("{prefix}/pyvenv.cfg")
    };
    let Some(Node::File(FileFacts::VenvCfg(cfg))) = tree.get(&path) else {
        return None;
    };
    let full = cfg
        .get("version_info")
        .or_else(|| cfg.get("version"))
        .map(|v| {
            // virtualenv writes `3.11.2.final.0`.
            let parts: Vec<&str> = v.split('.').collect();
            if parts.len() >= 4 && parts[3].bytes().all(|b| b.is_ascii_digit()) {
                parts[..3].join(".")
            } else {
                v.clone()
            }
        })?;
    let mm = MajorMinor::parse_prefix(&full)?;
    let full = Version::parse(&full).ok().map(|v| v.to_string());
    Some((mm, full))
}

/// Python-looking entries anywhere in the tree, for error messages.
fn pythons_found(tree: &Tree) -> String {
    let found: Vec<String> = tree
        .nodes
        .iter()
        .filter(|(k, v)| {
            is_file_like(v)
                && k.rsplit_once('/')
                    .is_some_and(|(d, b)| d.ends_with("bin") && b.starts_with("python"))
        })
        .map(|(k, _)| format!("/{k}"))
        .take(20)
        .collect();
    if found.is_empty() {
        "no bin/python* anywhere".into()
    } else {
        found.join(", ")
    }
}

/// The upstream part of a distribution package version: `1:3.11.2-6+deb12u5` → `3.11.2`.
fn upstream_version(v: &str) -> &str {
    let v = v.split_once(':').map(|(_, r)| r).unwrap_or(v);
    v.split(['-', '~', '+']).next().unwrap_or(v)
}

/// All package records of the image's databases (dpkg `status`, `status.d/*`, apk).
fn packages(tree: &Tree) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let sources = [
        "var/lib/dpkg/status",
        "lib/apk/db/installed",
        "usr/lib/apk/db/installed",
    ];
    for s in sources {
        if let Some(Node::File(FileFacts::Packages(p))) = tree.get(s) {
            out.extend(p.clone());
        }
    }
    for (_, node) in tree.children("var/lib/dpkg/status.d") {
        if let Node::File(FileFacts::Packages(p)) = node {
            out.extend(p.clone());
        }
    }
    out
}

fn full_version_matches(full: &str, mm: MajorMinor) -> Option<String> {
    let v = Version::parse(full).ok()?;
    let r = v.release();
    (r.len() >= 3 && r[0] == u64::from(mm.major) && r[1] == u64::from(mm.minor))
        .then(|| v.to_string())
}

fn detect_full_version(
    tree: &Tree,
    layout: &Layout,
    mm: MajorMinor,
    config_env: &[String],
    pkgs: &BTreeMap<String, String>,
) -> Option<String> {
    if let Layout::Venv(p) = layout
        && let Some((vmm, Some(full))) = venv_version(tree, p.trim_start_matches('/'))
        && vmm == mm
    {
        return Some(full);
    }
    let prefix = layout.prefix().trim_start_matches('/');
    let patchlevel = format!("{prefix}/include/python{mm}/patchlevel.h");
    if let Some(Node::File(FileFacts::PatchLevel(Some(v)))) = tree.get(&patchlevel)
        && let Some(f) = full_version_matches(v, mm)
    {
        return Some(f);
    }
    if let Some(v) = env_lookup(config_env, "PYTHON_VERSION")
        && let Some(f) = full_version_matches(v, mm)
    {
        return Some(f);
    }
    if matches!(layout, Layout::Prefix(p) if p != "/usr") {
        // A Python of its own prefix is not the distribution's package.
        return None;
    }
    for name in [
        format!("python{mm}"),
        format!("python{mm}-minimal"),
        "python3".to_string(),
    ] {
        if let Some(v) = pkgs.get(&name)
            && let Some(f) = full_version_matches(upstream_version(v), mm)
        {
            return Some(f);
        }
    }
    None
}

fn detect_libc(
    tree: &Tree,
    interp: Option<&Interp>,
    pkgs: &BTreeMap<String, String>,
) -> Result<Libc, String> {
    // Family: the interpreter's own ELF interpreter is the truth when we have it.
    let elf_family = interp.and_then(|i| match tree.nodes.get(&i.resolved) {
        Some(Node::File(FileFacts::Head(head))) => scan::elf_interpreter(head),
        _ => None,
    });
    let mut glibc_versions: Vec<(String, MajorMinor)> = Vec::new();
    let mut musl_loaders: Vec<String> = Vec::new();
    let mut glibc_files: Vec<String> = Vec::new();
    if let Some(v) = pkgs.get("libc6").or_else(|| pkgs.get("glibc"))
        && let Some(mm) = MajorMinor::parse_prefix(upstream_version(v))
    {
        glibc_versions.push((format!("package libc6 {v}"), mm));
    }
    for (path, node) in &tree.nodes {
        let base = path.rsplit('/').next().unwrap_or(path);
        let from_name = |n: &str| -> Option<MajorMinor> {
            let v = n
                .strip_prefix("libc-")
                .or_else(|| n.strip_prefix("ld-"))?
                .strip_suffix(".so")?;
            MajorMinor::parse_prefix(v).filter(|mm| mm.to_string() == v)
        };
        match node {
            Node::File(FileFacts::GlibcBanner(Some(mm))) => {
                glibc_versions.push((format!("/{path}"), *mm));
            }
            Node::File(FileFacts::GlibcBanner(None)) => glibc_files.push(format!("/{path}")),
            _ if base.starts_with("ld-musl-") => musl_loaders.push(format!("/{path}")),
            Node::Symlink(t) if base.starts_with("ld-linux") || base.starts_with("ld64.so") => {
                let tb = t.rsplit('/').next().unwrap_or(t);
                match from_name(tb) {
                    Some(mm) => glibc_versions.push((format!("/{path} -> {t}"), mm)),
                    None => glibc_files.push(format!("/{path}")),
                }
            }
            Node::File(_) | Node::Hardlink(_) => {
                if let Some(mm) = from_name(base) {
                    glibc_versions.push((format!("/{path}"), mm));
                } else if base.starts_with("ld-linux") || base.starts_with("ld64.so") {
                    glibc_files.push(format!("/{path}"));
                }
            }
            _ => {}
        }
    }
    let musl_version = pkgs
        .get("musl")
        .and_then(|v| MajorMinor::parse_prefix(upstream_version(v)));
    let family = match elf_family.as_deref() {
        Some(l) if l.contains("musl") => Some(LibcFamily::Musl),
        Some(l) if l.contains("ld-linux") || l.contains("ld64.so") => Some(LibcFamily::Glibc),
        _ => {
            let glibc = !glibc_versions.is_empty() || !glibc_files.is_empty();
            let musl = !musl_loaders.is_empty() || musl_version.is_some();
            match (glibc, musl) {
                (true, false) => Some(LibcFamily::Glibc),
                (false, true) => Some(LibcFamily::Musl),
                _ => None,
            }
        }
    };
    let describe = || {
        let mut parts: Vec<String> = glibc_versions
            .iter()
            .map(|(w, mm)| format!("glibc {mm} from {w}"))
            .collect();
        parts.extend(
            glibc_files
                .iter()
                .map(|f| format!("glibc file {f} (no version)")),
        );
        parts.extend(musl_loaders.iter().map(|f| format!("musl loader {f}")));
        if let Some(mm) = musl_version {
            parts.push(format!("package musl {mm}"));
        }
        if let Some(l) = &elf_family {
            parts.push(format!("the interpreter asks for {l}"));
        }
        if parts.is_empty() {
            "found no C library".to_string()
        } else {
            format!("found: {}", parts.join(", "))
        }
    };
    match family {
        Some(LibcFamily::Glibc) => glibc_versions
            .first()
            .map(|(_, mm)| Libc {
                family: LibcFamily::Glibc,
                version: *mm,
            })
            .ok_or_else(|| format!("glibc without a readable version; {}", describe())),
        Some(LibcFamily::Musl) => musl_version
            .map(|mm| Libc {
                family: LibcFamily::Musl,
                version: mm,
            })
            .ok_or_else(|| format!("musl without an apk record of its version; {}", describe())),
        None => Err(describe()),
    }
}

fn installed_in(tree: &Tree, site_dirs: &[String]) -> Vec<InstalledDist> {
    let mut out = Vec::new();
    let mut seen_dirs = std::collections::BTreeSet::new();
    for site in site_dirs {
        let rel = site.trim_start_matches('/');
        let resolved = tree.resolve(rel);
        if !seen_dirs.insert(resolved.clone()) {
            continue;
        }
        for (name, node) in tree.children(rel) {
            if *node != Node::Dir {
                continue;
            }
            let Some(stem) = name.strip_suffix(".dist-info") else {
                continue;
            };
            let dist_dir = format!("{resolved}/{name}");
            let (meta_name, meta_version) = match tree.nodes.get(&format!("{dist_dir}/METADATA")) {
                Some(Node::File(FileFacts::Metadata { name, version })) => {
                    (name.clone(), version.clone())
                }
                _ => (None, None),
            };
            let (dir_name, dir_version) = match stem.split_once('-') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => (stem.to_string(), String::new()),
            };
            out.push(InstalledDist {
                name: normalize_name(&meta_name.unwrap_or(dir_name)),
                version: meta_version.unwrap_or(dir_version),
                dist_info_path: format!("{}/{name}", site.trim_end_matches('/')),
                has_record: tree.nodes.contains_key(&format!("{dist_dir}/RECORD")),
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether the stdlib's `sysconfig.py` of `prefix` (relative) defines Debian's `posix_local`
/// scheme; `None` when it was not found.
fn debian_sysconfig(tree: &Tree, prefix: &str, mm: MajorMinor) -> Option<bool> {
    let path = if prefix.is_empty() {
        format!("lib/python{mm}/sysconfig.py")
    } else {
        format!("{prefix}/lib/python{mm}/sysconfig.py")
    };
    match tree.get(&path) {
        Some(Node::File(FileFacts::Sysconfig { posix_local })) => Some(*posix_local),
        _ => None,
    }
}

/// The installation `interpreter` belongs to, decided from what the interpreter itself would use:
/// its stdlib's `sysconfig.py` (Debian's defines `posix_local`, which its python uses outside a
/// venv, so a Debian python stays Debian even without `/usr/lib/python3/dist-packages`, as in
/// trimmed or chiselled images), then Debian's own directory and the dpkg record of
/// `pythonX.Y-minimal`, then Fedora's `lib64`. Conflicting evidence is an error, not a guess.
fn layout_for(
    tree: &Tree,
    interpreter: &str,
    mm: MajorMinor,
    pkgs: &BTreeMap<String, String>,
) -> Result<Layout, String> {
    // The prefix is the directory above `bin`.
    let parent = interpreter.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let prefix = parent.strip_suffix("/bin").unwrap_or(parent);
    let rel = prefix.trim_start_matches('/');
    let resolved = tree.resolve(rel);
    let cfg = if resolved.is_empty() {
        "pyvenv.cfg".to_string()
    } else {
        format!("{resolved}/pyvenv.cfg")
    };
    if matches!(tree.nodes.get(&cfg), Some(Node::File(_))) {
        return Ok(Layout::Venv(if prefix.is_empty() {
            "/".into()
        } else {
            prefix.to_string()
        }));
    }
    if resolved == "usr" || prefix.is_empty() {
        let dist_packages = tree.exists("usr/lib/python3/dist-packages");
        let minimal = format!("python{mm}-minimal");
        let dpkg = pkgs.contains_key(&minimal);
        return match debian_sysconfig(tree, "usr", mm) {
            Some(true) => Ok(Layout::Debian),
            Some(false) if dist_packages => Err(format!(
                "/usr/lib/python{mm}/sysconfig.py has no Debian posix_local scheme, but \
                 /usr/lib/python3/dist-packages (Debian's) exists{}",
                if dpkg {
                    format!(" and dpkg records {minimal}")
                } else {
                    String::new()
                }
            )),
            Some(false) => Ok(if tree.exists(&format!("usr/lib64/python{mm}")) {
                Layout::Fedora
            } else {
                Layout::Prefix("/usr".into())
            }),
            None if dist_packages || dpkg => Ok(Layout::Debian),
            None if tree.exists(&format!("usr/lib64/python{mm}")) => Ok(Layout::Fedora),
            None => Ok(Layout::Prefix("/usr".into())),
        };
    }
    if debian_sysconfig(tree, rel, mm) == Some(true) {
        // Debian's patched interpreter outside /usr installs into PREFIX/local/lib/…/dist-packages,
        // which rbuild's layouts do not model.
        return Err(format!(
            "{prefix}/lib/python{mm}/sysconfig.py is Debian's (posix_local scheme) but the \
             interpreter is not in /usr"
        ));
    }
    Ok(Layout::Prefix(prefix.to_string()))
}

/// Reads the layers of one platform of a base image and decides its [`Target`].
///
/// `layers` are the uncompressed layer tar streams, base layer first (an `Err` item is reported as that
/// layer's error); `config_env` is the image config's `Env` (`KEY=VALUE`, may be empty); `overrides` are
/// the user's flags. See the module docs for what is read and how.
pub fn detect_target<I, R>(
    layers: I,
    platform: &Platform,
    config_env: &[String],
    overrides: &TargetOverrides,
) -> Result<Target, TargetError>
where
    I: IntoIterator<Item = io::Result<R>>,
    R: Read,
{
    check_platform(platform)?;
    let mut files = TargetFiles::new();
    crate::rootfs::read_layers(layers, &mut [&mut files])?;
    detect_target_in(files, platform, config_env, overrides)
}

/// What target detection keeps of a base image's files: a view for [`crate::rootfs::read_layers`]
/// (so that one pass over the layers can feed other visitors too), then given to
/// [`detect_target_in`].
pub struct TargetFiles(Merged<scan::TargetVisitor>, Merged<interp::LinkVisitor>);

impl TargetFiles {
    /// An empty view (no layers read).
    pub fn new() -> TargetFiles {
        TargetFiles(
            Merged::new(scan::TargetVisitor),
            Merged::new(interp::LinkVisitor),
        )
    }
}

impl Default for TargetFiles {
    fn default() -> Self {
        TargetFiles::new()
    }
}

impl Apply for TargetFiles {
    // The link view never reads content: the content goes to the detection view alone.
    fn wants_content(&mut self, entry: &Entry<'_>) -> bool {
        let links = self.1.wants_content(entry);
        debug_assert!(!links, "the link view reads no content");
        self.0.wants_content(entry)
    }
    fn entry(&mut self, entry: &Entry<'_>, content: &mut dyn Read) -> io::Result<()> {
        self.1.entry(entry, &mut io::empty())?;
        self.0.entry(entry, content)
    }
    fn whiteout(&mut self, path: &str) {
        self.0.whiteout(path);
        self.1.whiteout(path);
    }
    fn opaque(&mut self, dir: &str) {
        self.0.opaque(dir);
        self.1.opaque(dir);
    }
    fn end_layer(&mut self) {
        self.0.end_layer();
        self.1.end_layer();
    }
}

impl From<LayerError> for TargetError {
    fn from(e: LayerError) -> TargetError {
        TargetError::Layer {
            index: e.index,
            source: e.source,
        }
    }
}

/// Decides the [`Target`] of one platform of a base image from its files, read by
/// [`crate::rootfs::read_layers`] into `files` (see [`detect_target`], which reads and decides).
pub fn detect_target_in(
    files: TargetFiles,
    platform: &Platform,
    config_env: &[String],
    overrides: &TargetOverrides,
) -> Result<Target, TargetError> {
    let (plat, arch) = check_platform(platform)?;
    let tree = Tree {
        nodes: files.0.into_parts().1,
    };
    let links = files.1.into_parts().1;
    // The interpreter.
    let path_var = env_lookup(config_env, "PATH")
        .map(str::to_string)
        .unwrap_or_else(|| format!("/opt/app-root/bin:{DEFAULT_PATH}"));
    let path_dirs: Vec<&str> = path_var.split(':').filter(|d| d.starts_with('/')).collect();
    let interp: Option<Interp> = match &overrides.interpreter {
        Some(p) => {
            let rel = p.trim_start_matches('/');
            let resolved = tree.resolve(rel);
            let base = p.rsplit('/').next().unwrap_or("");
            let from_chain = tree
                .link_chain(rel)
                .iter()
                .find_map(|c| python_name_version(c.rsplit('/').next().unwrap_or("")));
            let version = overrides
                .python_version
                .or_else(|| python_name_version(base))
                .or(from_chain);
            match version {
                Some(version) => Some(Interp {
                    path: p.clone(),
                    version,
                    resolved,
                }),
                None => {
                    return Err(TargetError::BadOverride {
                        flag: "--interpreter",
                        value: p.clone(),
                        reason: "cannot tell its Python version from its name or links; add --python-version X.Y".into(),
                    });
                }
            }
        }
        None => {
            let mut found = None;
            if let Some(w) = overrides.python_version {
                found = path_dirs
                    .iter()
                    .find_map(|d| python_in_dir(&tree, d, Some(w)));
            }
            if found.is_none() {
                let any = path_dirs.iter().find_map(|d| python_in_dir(&tree, d, None));
                if let (Some(w), Some(a)) = (overrides.python_version, &any)
                    && a.version != w
                {
                    return Err(TargetError::PythonMismatch {
                        platform: plat,
                        wanted: w,
                        found: a.version,
                        interpreter: a.path.clone(),
                    });
                }
                found = any;
            }
            found
        }
    };

    let (interpreter, mm, layout) = match (interp.as_ref(), overrides.python_version) {
        (Some(i), _) => (
            i.path.clone(),
            i.version,
            layout_for(&tree, &i.path, i.version, &packages(&tree)).map_err(|evidence| {
                TargetError::UnsureScheme {
                    platform: plat.clone(),
                    interpreter: i.path.clone(),
                    evidence,
                }
            })?,
        ),
        (None, Some(mm)) if !has_any_python(&tree) => {
            // No Python in the image (or no image, no layers): Docker Hub's layout.
            (
                format!("/usr/local/bin/python{mm}"),
                mm,
                Layout::Prefix("/usr/local".into()),
            )
        }
        (None, _) => {
            return Err(TargetError::NoPython {
                platform: plat,
                searched: path_dirs.join(", "),
                found: pythons_found(&tree),
            });
        }
    };

    if let Some(i) = &interp {
        interp::check_interpreter(
            &links,
            &tree,
            &plat,
            &i.path,
            overrides.interpreter.is_none(),
        )?;
    }

    let pkgs = packages(&tree);
    let python_full_version = overrides
        .python_full_version
        .clone()
        .filter(|f| full_version_matches(f, mm).is_some())
        .or_else(|| detect_full_version(&tree, &layout, mm, config_env, &pkgs));

    let libc = match overrides.libc {
        Some(l) => l,
        None => {
            detect_libc(&tree, interp.as_ref(), &pkgs).map_err(|found| TargetError::NoLibc {
                platform: plat.clone(),
                found,
            })?
        }
    };

    let mut scheme = layout.scheme(mm);
    let mut site_dirs = vec![scheme.purelib.clone(), scheme.platlib.clone()];
    if let Some(sp) = &overrides.site_packages {
        scheme.purelib = sp.clone();
        scheme.platlib = sp.clone();
        site_dirs.insert(0, sp.clone());
    }
    site_dirs.extend(layout.system_site_dirs(mm));
    let installed = installed_in(&tree, &site_dirs);

    Ok(Target {
        platform: platform.clone(),
        python_version: mm,
        python_full_version,
        interpreter,
        scheme,
        libc,
        arch: arch.to_string(),
        installed,
    })
}

/// The platform as text and its wheel CPU name, or why rbuild cannot build for it.
fn check_platform(platform: &Platform) -> Result<(String, &'static str), TargetError> {
    let plat = platform.to_string();
    if platform.os != "linux" {
        return Err(TargetError::UnsupportedPlatform {
            platform: plat,
            reason: "rbuild builds Linux images only".into(),
        });
    }
    let arch = wheel_arch_for(&platform.architecture, platform.variant.as_deref()).ok_or_else(|| {
        TargetError::UnsupportedPlatform {
            platform: plat.clone(),
            reason: "no wheel platform tag is known for this CPU (known: amd64, arm64, arm/v7, arm/v6, 386, ppc64le, s390x, riscv64, loong64)".into(),
        }
    })?;

    Ok((plat, arch))
}

fn has_any_python(tree: &Tree) -> bool {
    tree.nodes.iter().any(|(k, v)| {
        let Some((dir, base)) = k.rsplit_once('/') else {
            return false;
        };
        is_file_like(v)
            && dir.ends_with("bin")
            && (base == "python3" || python_name_version(base).is_some())
    })
}

/// The target of an image built on nothing (`--base scratch`, or no `--base`): everything comes from
/// the overrides, which must give the Python version and the libc.
pub fn target_without_base(
    platform: &Platform,
    overrides: &TargetOverrides,
) -> Result<Target, TargetError> {
    if overrides.python_version.is_none() || overrides.libc.is_none() {
        return Err(TargetError::BadOverride {
            flag: "--base",
            value: "scratch".into(),
            reason: "without a base image, --python-version and --libc must both be given".into(),
        });
    }
    detect_target(
        std::iter::empty::<io::Result<io::Empty>>(),
        platform,
        &[],
        overrides,
    )
}
