//! Build environments: where build requirements come from, how one wheel per requirement is
//! chosen, and how the chosen wheels are installed into a scratch site directory.
//!
//! The choice is greedy, as a build frontend without a resolver would make it: for each
//! requirement (in the order met, breadth first), the newest version that satisfies the
//! specifier, whose wheel fits the target's tags (`py3-none-any` or the target's own) and whose
//! `Requires-Python` admits the target; pre-releases only when the specifier names one or
//! nothing else fits. Then its `Requires-Dist` (markers evaluated for the target with the
//! requested extras) are followed. A later requirement that the chosen version does not
//! satisfy is a [`BuildError::Conflict`] naming both requirements: there is no backtracking.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rbuild_python::markers::{MarkerEnv, MarkerVariable};
use rbuild_python::requirement::Requirement;
use rbuild_python::tags::Tags;
use rbuild_python::version::{Version, VersionSpecifiers};
use rbuild_python::wheel_name::WheelFilename;
use rbuild_wheel::{BaseInfo, EntrySink, InstallOptions, InstallTarget, WheelInput};
use sha2::Digest as _;

use crate::BuildError;

/// One wheel file a [`BuildEnv`] can provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The wheel file name (`name-version-tags.whl`).
    pub filename: String,
    /// Its sha256 (lowercase hex), when known before fetching (an index lists it).
    pub sha256: Option<String>,
    /// The `Requires-Python` the index lists, if any.
    pub requires_python: Option<String>,
    /// Where it is: a URL or a local path, meaningful to the [`BuildEnv`] that listed it.
    pub location: String,
}

/// A wheel on disk whose bytes were verified by the [`BuildEnv`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedWheel {
    /// The local file.
    pub path: PathBuf,
    /// Its sha256 (lowercase hex), checked.
    pub sha256: String,
}

/// Where build requirements come from. The pipeline implements it over its index client and
/// content store; [`DirBuildEnv`] serves a directory of wheels (offline builds, tests).
pub trait BuildEnv: Send + Sync {
    /// Every wheel that could satisfy `req` (the requirement's name; any version: the frontend
    /// filters). An empty list means "none available".
    fn wheels_for(&self, req: &Requirement) -> Result<Vec<Candidate>, String>;
    /// The candidate as a local, verified file.
    fn fetch(&self, candidate: &Candidate) -> Result<FetchedWheel, String>;
}

/// A build requirement that was installed for a build.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsedRequirement {
    /// Normalized name.
    pub name: String,
    /// Version (as in the wheel file name).
    pub version: String,
    /// The wheel file name.
    pub filename: String,
    /// Its sha256 (lowercase hex).
    pub sha256: String,
}

/// What the frontend needs to know about the target interpreter to choose build requirements.
#[derive(Debug, Clone)]
pub struct BuildTarget {
    /// Marker values of the target (`Target::marker_env`).
    pub markers: MarkerEnv,
    /// Compatible wheel tags of the target, best first (`Target::tags`).
    pub tags: Tags,
}

impl BuildTarget {
    fn python_version(&self) -> Option<Version> {
        self.markers
            .get(MarkerVariable::PythonFullVersion)
            .or_else(|| self.markers.get(MarkerVariable::PythonVersion))
            .and_then(|v| Version::parse(v).ok())
    }
}

/// A directory of wheel files as a [`BuildEnv`] (`--find-links`-style, no network).
#[derive(Debug, Clone)]
pub struct DirBuildEnv {
    dir: PathBuf,
}

impl DirBuildEnv {
    /// Serves the `*.whl` files directly in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirBuildEnv { dir: dir.into() }
    }
}

/// The sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

impl BuildEnv for DirBuildEnv {
    fn wheels_for(&self, req: &Requirement) -> Result<Vec<Candidate>, String> {
        let rd = fs::read_dir(&self.dir)
            .map_err(|e| format!("cannot list {}: {e}", self.dir.display()))?;
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(|e| format!("cannot list {}: {e}", self.dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(w) = WheelFilename::parse(&name)
                && w.name == req.name
            {
                out.push(Candidate {
                    filename: name,
                    sha256: None,
                    requires_python: None,
                    location: e.path().display().to_string(),
                });
            }
        }
        out.sort_by(|a, b| a.filename.cmp(&b.filename));
        Ok(out)
    }

    fn fetch(&self, c: &Candidate) -> Result<FetchedWheel, String> {
        let path = PathBuf::from(&c.location);
        let sha256 =
            sha256_file(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if let Some(want) = &c.sha256
            && *want != sha256
        {
            return Err(format!(
                "{} has sha256 {sha256}, expected {want}",
                path.display()
            ));
        }
        Ok(FetchedWheel { path, sha256 })
    }
}

/// One chosen wheel with its metadata.
#[derive(Debug, Clone)]
pub(crate) struct Chosen {
    pub used: UsedRequirement,
    pub path: PathBuf,
    pub version: Version,
    /// The requirement that chose it, as text, and who asked (for conflict messages).
    pub why: String,
    pub requires_dist: Vec<String>,
    pub extras_done: Vec<String>,
}

fn allows_pre(spec: &VersionSpecifiers) -> bool {
    spec.iter().any(|s| s.version().is_prerelease())
}

/// Chooses wheels for `roots` (each with who asked for it), adding to `chosen` (keyed by
/// normalized name). See the module docs.
pub(crate) fn resolve(
    roots: &[(Requirement, String)],
    env: &dyn BuildEnv,
    target: &BuildTarget,
    package: &str,
    chosen: &mut BTreeMap<String, Chosen>,
) -> Result<(), BuildError> {
    let py = target.python_version();
    let mut queue: VecDeque<(Requirement, String, Vec<String>)> = roots
        .iter()
        .map(|(r, by)| (r.clone(), by.clone(), Vec::new()))
        .collect();
    while let Some((req, by, parent_extras)) = queue.pop_front() {
        if let Some(m) = &req.marker {
            let applies = m
                .evaluate(&target.markers, &parent_extras, &[])
                .map_err(|e| BuildError::Requirement {
                    package: package.to_string(),
                    requirement: format!("{req} (required by {by})"),
                    reason: e.to_string(),
                })?;
            if !applies {
                continue;
            }
        }
        let why = format!("{} (required by {by})", strip_marker(&req));
        if req.url.is_some() {
            return Err(BuildError::Requirement {
                package: package.to_string(),
                requirement: why,
                reason: "direct URL build requirements are not supported; provide the wheel through --find-links".into(),
            });
        }
        if let Some(c) = chosen.get_mut(&req.name) {
            if !req.specifiers.contains(&c.version) {
                return Err(BuildError::Conflict {
                    package: package.to_string(),
                    first: format!("{} {} chosen for {}", c.used.name, c.used.version, c.why),
                    second: why,
                });
            }
            let new: Vec<String> = req
                .extras
                .iter()
                .filter(|e| !c.extras_done.contains(e))
                .cloned()
                .collect();
            if !new.is_empty() {
                c.extras_done.extend(new.iter().cloned());
                let who = format!("{}[{}] {}", c.used.name, new.join(","), c.used.version);
                for rd in c.requires_dist.clone() {
                    let r = parse_req(&rd, package, &who)?;
                    // Only the requirements that the new extras add.
                    if r.marker
                        .as_ref()
                        .is_some_and(|m| m.uses(MarkerVariable::Extra))
                    {
                        queue.push_back((r, who.clone(), new.clone()));
                    }
                }
            }
            continue;
        }
        let candidates = env
            .wheels_for(&req)
            .map_err(|reason| BuildError::Requirement {
                package: package.to_string(),
                requirement: why.clone(),
                reason,
            })?;
        let mut fitting: Vec<(Version, usize, Candidate)> = Vec::new();
        for c in candidates {
            let Ok(w) = WheelFilename::parse(&c.filename) else {
                continue;
            };
            if w.name != req.name || !req.specifiers.contains(&w.version) {
                continue;
            }
            let Some(rank) = target.tags.best_rank(&w) else {
                continue;
            };
            if let (Some(rp), Some(py)) = (&c.requires_python, &py)
                && let Ok(spec) = VersionSpecifiers::parse(rp)
                && !spec.contains(py)
            {
                continue;
            }
            fitting.push((w.version, rank, c));
        }
        if !allows_pre(&req.specifiers) && fitting.iter().any(|f| !f.0.is_prerelease()) {
            fitting.retain(|f| !f.0.is_prerelease());
        }
        // Newest version first, then the best tag.
        fitting.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let Some((version, _, cand)) = fitting.into_iter().next() else {
            return Err(BuildError::Requirement {
                package: package.to_string(),
                requirement: why,
                reason:
                    "no wheel of it fits the target (version, Requires-Python and tags checked)"
                        .into(),
            });
        };
        let fetched = env.fetch(&cand).map_err(|reason| BuildError::Requirement {
            package: package.to_string(),
            requirement: why.clone(),
            reason,
        })?;
        let meta = rbuild_wheel::read_wheel_metadata(&fetched.path, &cand.filename)?;
        if let (Some(rp), Some(py)) = (&meta.requires_python, &py)
            && let Ok(spec) = VersionSpecifiers::parse(rp)
            && !spec.contains(py)
        {
            return Err(BuildError::Requirement {
                package: package.to_string(),
                requirement: why,
                reason: format!(
                    "{} requires Python {rp}, and the index did not say so",
                    cand.filename
                ),
            });
        }
        let version_text = WheelFilename::parse(&cand.filename)
            .map(|w| w.version_as_written().to_string())
            .unwrap_or_else(|_| version.to_string());
        let who = format!("{} {}", req.name, version_text);
        for rd in &meta.requires_dist {
            let r = parse_req(rd, package, &who)?;
            queue.push_back((r, who.clone(), req.extras.clone()));
        }
        chosen.insert(
            req.name.clone(),
            Chosen {
                used: UsedRequirement {
                    name: req.name.clone(),
                    version: version_text,
                    filename: cand.filename.clone(),
                    sha256: fetched.sha256,
                },
                path: fetched.path,
                version,
                why,
                requires_dist: meta.requires_dist.clone(),
                extras_done: req.extras.clone(),
            },
        );
    }
    Ok(())
}

fn strip_marker(r: &Requirement) -> String {
    let mut r = r.clone();
    r.marker = None;
    r.to_string()
}

pub(crate) fn parse_req(text: &str, package: &str, by: &str) -> Result<Requirement, BuildError> {
    Requirement::parse(text).map_err(|e| BuildError::Requirement {
        package: package.to_string(),
        requirement: format!("{text} (required by {by})"),
        reason: e.to_string(),
    })
}

/// Writes installer entries under a host directory (the "image root" of a build environment).
pub(crate) struct DirSink {
    pub root: PathBuf,
}

impl EntrySink for DirSink {
    fn dir(&mut self, path: &str, _mode: u32) -> io::Result<()> {
        fs::create_dir_all(self.root.join(path))
    }
    fn file(
        &mut self,
        path: &str,
        mode: u32,
        _size: u64,
        content: &mut dyn Read,
    ) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let p = self.root.join(path);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)?;
        io::copy(content, &mut f)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode & 0o777))
    }
    fn symlink(&mut self, path: &str, _target: &str) -> io::Result<()> {
        Err(io::Error::other(format!(
            "{path}: symlinks are not installed into a build environment"
        )))
    }
    fn whiteout(&mut self, _path: &str) -> io::Result<()> {
        Ok(())
    }
}

/// Installs the chosen wheels not yet installed into `<root>/site` (scripts into `<root>/bin`).
pub(crate) fn install(
    root: &Path,
    chosen: &[&Chosen],
    python_version: (u8, u8),
) -> Result<(), BuildError> {
    if chosen.is_empty() {
        return Ok(());
    }
    let abs = |s: &str| format!("/{s}");
    let target = InstallTarget {
        interpreter: "/usr/bin/python3".into(),
        purelib: abs("site"),
        platlib: abs("site"),
        scripts: abs("bin"),
        headers: abs("include"),
        data: abs("data"),
        python_version,
    };
    let wheels: Vec<WheelInput> = chosen
        .iter()
        .map(|c| WheelInput {
            path: c.path.clone(),
            filename: c.used.filename.clone(),
            expected_name: c.used.name.clone(),
            expected_version: c.used.version.clone(),
        })
        .collect();
    let opts = InstallOptions {
        threads: 1,
        ..Default::default()
    };
    // The installer writes image paths (`site/...`, `bin/...`) relative to the sink's root.
    let mut sink = DirSink {
        root: root.to_path_buf(),
    };
    rbuild_wheel::install_wheels(&wheels, &target, &BaseInfo::default(), &opts, &mut sink)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbuild_python::tags::TagTarget;
    use rbuild_python::target::{Libc, MajorMinor};
    use std::io::Write;

    fn wheel(dir: &Path, name: &str, version: &str, requires: &[&str]) {
        use base64::Engine as _;
        let dist = format!("{name}-{version}");
        let mut meta = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
        for r in requires {
            meta.push_str(&format!("Requires-Dist: {r}\n"));
        }
        let files = [
            (format!("{name}.py"), b"".to_vec()),
            (format!("{dist}.dist-info/METADATA"), meta.into_bytes()),
            (
                format!("{dist}.dist-info/WHEEL"),
                b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n".to_vec(),
            ),
        ];
        let mut record = String::new();
        for (p, d) in &files {
            let h =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(d));
            record.push_str(&format!("{p},sha256={h},{}\n", d.len()));
        }
        record.push_str(&format!("{dist}.dist-info/RECORD,,\n"));
        let f = fs::File::create(dir.join(format!("{dist}-py3-none-any.whl"))).unwrap();
        let mut z = zip::ZipWriter::new(f);
        for (p, d) in &files {
            z.start_file(p.as_str(), zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(d).unwrap();
        }
        z.start_file(
            format!("{dist}.dist-info/RECORD"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        z.write_all(record.as_bytes()).unwrap();
        z.finish().unwrap();
    }

    fn target() -> BuildTarget {
        BuildTarget {
            markers: MarkerEnv::cpython_linux(MajorMinor::new(3, 11), Some("3.11.2"), "x86_64"),
            tags: Tags::for_target(&TagTarget::new(
                MajorMinor::new(3, 11),
                Libc::glibc(2, 36),
                "x86_64",
            )),
        }
    }

    fn roots(reqs: &[&str]) -> Vec<(Requirement, String)> {
        reqs.iter()
            .map(|r| (Requirement::parse(r).unwrap(), "test".to_string()))
            .collect()
    }

    #[test]
    fn picks_newest_fitting_and_follows_requires_dist_with_markers_and_extras() {
        let d = tempfile::tempdir().unwrap();
        wheel(d.path(), "a", "1.0", &["b>=1"]);
        wheel(
            d.path(),
            "a",
            "2.0",
            &["b<2", "c; python_version < '3.8'", "d; extra == 'x'"],
        );
        wheel(d.path(), "a", "3.0rc1", &[]);
        wheel(d.path(), "b", "1.5", &[]);
        wheel(d.path(), "b", "2.0", &[]);
        wheel(d.path(), "d", "1.0", &[]);
        let mut chosen = BTreeMap::new();
        resolve(
            &roots(&["a[x]"]),
            &DirBuildEnv::new(d.path()),
            &target(),
            "pkg",
            &mut chosen,
        )
        .unwrap();
        let got: Vec<(&str, &str)> = chosen
            .values()
            .map(|c| (c.used.name.as_str(), c.used.version.as_str()))
            .collect();
        assert_eq!(got, [("a", "2.0"), ("b", "1.5"), ("d", "1.0")]);
        assert!(chosen.values().all(|c| c.used.sha256.len() == 64));
    }

    #[test]
    fn a_conflict_names_both_requirements() {
        let d = tempfile::tempdir().unwrap();
        wheel(d.path(), "a", "1.0", &["b<2"]);
        wheel(d.path(), "b", "1.0", &[]);
        wheel(d.path(), "b", "2.0", &[]);
        let mut chosen = BTreeMap::new();
        let err = resolve(
            &roots(&["b>=2", "a"]),
            &DirBuildEnv::new(d.path()),
            &target(),
            "pkg",
            &mut chosen,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "building pkg: conflicting build requirements: b 2.0 chosen for b>=2 (required by test), \
             but b<2 (required by a 1.0); provide a fitting set of wheels with --find-links"
        );
        let err = resolve(
            &roots(&["zzz"]),
            &DirBuildEnv::new(d.path()),
            &target(),
            "pkg",
            &mut BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("build requirement zzz (required by test): no wheel"),
            "{err}"
        );
    }
}
