//! Is the lock complete? Every requirement of every distribution an image installs must be met by
//! the image itself.
//!
//! A lockfile that is missing a package still installs: a `requirements.txt` holding only the
//! top-level pins, or one compiled on another Python patch release (`redis` needs `async-timeout`
//! only when `python_full_version < "3.11.3"`) gives an image that dies with
//! `ModuleNotFoundError`. [`check_closure`] finds this before anything is pushed, from the
//! `Requires-Dist` lines of the installed distributions' core metadata.
//!
//! # Rules
//!
//! - Each `Requires-Dist` is a PEP 508 requirement ([`crate::requirement::Requirement`]). Its
//!   marker is evaluated for the target ([`MarkerEnv`]) with `extra` bound to each extra of the
//!   distribution that is *activated* (as pip evaluates it; [`MarkerTree::evaluate`]); with none,
//!   `extra == "x"` is false.
//! - Extras are activated by [`Available::request_extras`] (root requests: `uvicorn[standard]` in
//!   the lock, the project's `--extra`) and by every requirement that applies
//!   (`uvicorn[standard]` required by another installed distribution, or by `uvicorn` itself under
//!   one of its extras), repeated until nothing changes.
//! - A requirement that applies is met when a distribution of its (PEP 503 normalized) name is
//!   installed ([`DistRequirements`]) or [`Available`] (the lock, the base image, the project).
//!   When that distribution's version is known, the requirement's specifiers must contain it
//!   (pre-releases allowed, as `pip check` does); otherwise it is a
//!   [`MissingKind::VersionConflict`].
//! - A marker that cannot be decided for the target (`python_full_version` when the image does not
//!   tell its patch release, `platform_release`) is no problem when the name is available anyway;
//!   otherwise it is reported as [`MissingKind::Undecided`].
//! - A `Requires-Dist` that is not PEP 508 is reported as [`MissingKind::Invalid`].
//!
//! Requirements of the base image's own distributions and of the project are not checked (only
//! the `dists` given are). The result is sorted (by missing name, requirement, then needer) and
//! free of duplicates.
//!
//! ```
//! use rbuild_python::closure::{Available, DistRequirements, Origin, check_closure};
//! use rbuild_python::markers::MarkerEnv;
//! use rbuild_python::target::MajorMinor;
//!
//! let redis = DistRequirements {
//!     name: "redis".into(),
//!     version: "5.2.1".into(),
//!     requires_dist: vec![r#"async-timeout>=4.0.3; python_full_version < "3.11.3""#.into()],
//!     provides_extra: vec![],
//! };
//! let mut available = Available::new();
//! available.insert("redis", Some("5.2.1"), Origin::Lock);
//! // Debian bookworm's python3 is 3.11.2: async-timeout is needed.
//! let env = MarkerEnv::cpython_linux(MajorMinor::new(3, 11), Some("3.11.2"), "x86_64");
//! let missing = check_closure(&[redis.clone()], &available, &env);
//! assert_eq!(missing.len(), 1);
//! assert_eq!(missing[0].to_string(), "async-timeout>=4.0.3 (needed by redis 5.2.1)");
//! // Python 3.11.9 does not need it.
//! let env = MarkerEnv::cpython_linux(MajorMinor::new(3, 11), Some("3.11.9"), "x86_64");
//! assert!(check_closure(&[redis], &available, &env).is_empty());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::markers::{MarkerEnv, MarkerTree, MarkerVariable};
use crate::name::normalize_name;
use crate::requirement::Requirement;
use crate::target::InstalledDist;
use crate::version::Version;

/// What one installed distribution requires (from its `METADATA`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DistRequirements {
    /// `Name` (any spelling).
    pub name: String,
    /// `Version`.
    pub version: String,
    /// Every `Requires-Dist` value.
    pub requires_dist: Vec<String>,
    /// Every `Provides-Extra` value.
    pub provides_extra: Vec<String>,
}

/// Where an available distribution comes from (for messages, and precedence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// The lockfile (installed in the dependency layer).
    Lock,
    /// Already installed in the base image.
    Base,
    /// The project being built (installed in the app layer).
    Project,
}

impl Origin {
    fn has(self) -> &'static str {
        match self {
            Origin::Lock => "the lock has",
            Origin::Base => "the base image has",
            Origin::Project => "the project is",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    version: Option<String>,
    origin: Origin,
}

/// The distributions the image will have, and the extras requested from outside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Available {
    dists: BTreeMap<String, Entry>,
    extras: BTreeMap<String, BTreeSet<String>>,
}

impl Available {
    /// Nothing available.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `name` (any spelling) available, with its version when known. A later insert of the
    /// same name replaces the earlier one, except that a [`Origin::Base`] entry never replaces
    /// another (a wheel of the lock replaces the base's copy in the image).
    pub fn insert(&mut self, name: &str, version: Option<&str>, origin: Origin) {
        let key = normalize_name(name);
        if origin == Origin::Base
            && self
                .dists
                .get(&key)
                .is_some_and(|e| e.origin != Origin::Base)
        {
            return;
        }
        self.dists.insert(
            key,
            Entry {
                version: version.map(|v| v.trim().to_string()),
                origin,
            },
        );
    }

    /// Makes the base image's installed distributions available ([`Origin::Base`]).
    pub fn insert_base(&mut self, installed: &[InstalledDist]) {
        for d in installed {
            self.insert(&d.name, Some(&d.version), Origin::Base);
        }
    }

    /// Requests extras of `name` from outside the metadata (`uvicorn[standard]` in the lock, the
    /// project's `--extra`); names are normalized.
    pub fn request_extras<I, S>(&mut self, name: &str, extras: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let set = self.extras.entry(normalize_name(name)).or_default();
        set.extend(extras.into_iter().map(|e| normalize_name(e.as_ref())));
    }

    /// Whether `name` (any spelling) is available.
    pub fn contains(&self, name: &str) -> bool {
        self.dists.contains_key(&normalize_name(name))
    }

    /// The version of `name` (any spelling), when it is available and its version known.
    pub fn version(&self, name: &str) -> Option<&str> {
        self.dists
            .get(&normalize_name(name))
            .and_then(|e| e.version.as_deref())
    }
}

/// Why a requirement is not met.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum MissingKind {
    /// Nothing of that name is installed or available.
    Missing,
    /// A distribution of that name is there, in a version the specifiers exclude.
    VersionConflict {
        /// Its version.
        found: String,
        /// Where it comes from.
        origin: Origin,
    },
    /// Nothing of that name is there, and whether the requirement applies to the target cannot
    /// be decided (its marker needs a value the image does not tell).
    Undecided {
        /// Why (the marker error).
        reason: String,
    },
    /// The `Requires-Dist` value is not a PEP 508 requirement.
    Invalid {
        /// The parse error.
        reason: String,
    },
}

/// One requirement of an installed distribution that the image does not meet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MissingRequirement {
    /// The normalized name required (for [`MissingKind::Invalid`], the text as written).
    pub name: String,
    /// The requirement without its marker (`async-timeout>=4.0.3`).
    pub requirement: String,
    /// Who needs it: `redis 5.2.1`, or `uvicorn[standard] 0.30.0` when an extra brings it in.
    pub needed_by: String,
    /// Why it is not met.
    pub kind: MissingKind,
}

impl fmt::Display for MissingRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (needed by {}", self.requirement, self.needed_by)?;
        match &self.kind {
            MissingKind::Missing => {}
            MissingKind::VersionConflict { found, origin } => {
                write!(f, "; {} {} {found}", origin.has(), self.name)?
            }
            MissingKind::Undecided { reason } => {
                write!(f, "; whether it applies is unknown: {reason}")?
            }
            MissingKind::Invalid { reason } => write!(f, "; not a valid requirement: {reason}")?,
        }
        f.write_str(")")
    }
}

/// Unmet requirements as one error message for the user (see the module docs for an example).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct IncompleteLock {
    /// What is not met, as [`check_closure`] returns it.
    pub missing: Vec<MissingRequirement>,
    /// The target's Python (`3.11.2`), named in the advice when known.
    pub python: Option<String>,
}

impl fmt::Display for IncompleteLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.missing.len();
        let s = if n == 1 { "" } else { "s" };
        if self
            .missing
            .iter()
            .all(|m| matches!(m.kind, MissingKind::Missing))
        {
            writeln!(
                f,
                "the lock is missing {n} requirement{s} of the packages it installs:"
            )?;
        } else {
            writeln!(
                f,
                "the lock does not satisfy {n} requirement{s} of the packages it installs:"
            )?;
        }
        for m in &self.missing {
            writeln!(f, "  {m}")?;
        }
        let python = match &self.python {
            Some(p) => format!("Python {p}, e.g. `uv pip compile --python-version {p}`"),
            None => "the image's Python".to_string(),
        };
        write!(
            f,
            "add them to the lock (regenerate it with `uv pip compile` / `pip-compile` for {python}), \
             or pass --allow-incomplete-lock to build anyway"
        )
    }
}

/// One installed distribution, its requirements parsed.
struct Node<'a> {
    dist: &'a DistRequirements,
    reqs: Vec<(&'a str, Result<Requirement, String>)>,
}

/// Whether a requirement applies for `extras` (activated extras of its distribution).
fn applies(
    marker: &Option<MarkerTree>,
    env: &MarkerEnv,
    extras: &[String],
) -> Result<bool, String> {
    match marker {
        None => Ok(true),
        Some(m) => m.evaluate(env, extras, &[]).map_err(|e| e.to_string()),
    }
}

/// The requirements of `dists` that neither `dists` nor `available` meet, for the target `env`
/// (see the module docs for the rules).
pub fn check_closure(
    dists: &[DistRequirements],
    available: &Available,
    env: &MarkerEnv,
) -> Vec<MissingRequirement> {
    // Installed distributions by normalized name (the first of a name wins).
    let mut nodes: BTreeMap<String, Node<'_>> = BTreeMap::new();
    for d in dists {
        nodes
            .entry(normalize_name(&d.name))
            .or_insert_with(|| Node {
                dist: d,
                reqs: d
                    .requires_dist
                    .iter()
                    .map(|r| (r.as_str(), Requirement::parse(r).map_err(|e| e.message)))
                    .collect(),
            });
    }

    // Activated extras, to a fixpoint.
    let mut active: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, extras) in &available.extras {
        if nodes.contains_key(name) {
            active
                .entry(name.clone())
                .or_default()
                .extend(extras.iter().cloned());
        }
    }
    loop {
        let mut add: Vec<(String, String)> = Vec::new();
        for (name, node) in &nodes {
            let extras: Vec<String> = active.get(name).into_iter().flatten().cloned().collect();
            for (_, req) in &node.reqs {
                let Ok(req) = req else { continue };
                if req.extras.is_empty() || !nodes.contains_key(&req.name) {
                    continue;
                }
                if applies(&req.marker, env, &extras) != Ok(true) {
                    continue;
                }
                for e in &req.extras {
                    if !active.get(&req.name).is_some_and(|s| s.contains(e)) {
                        add.push((req.name.clone(), e.clone()));
                    }
                }
            }
        }
        if add.is_empty() {
            break;
        }
        for (n, e) in add {
            active.entry(n).or_default().insert(e);
        }
    }

    let mut out: BTreeSet<MissingRequirement> = BTreeSet::new();
    for (name, node) in &nodes {
        let extras: Vec<String> = active.get(name).into_iter().flatten().cloned().collect();
        let who = |via: Option<&str>| match via {
            Some(e) => format!(
                "{}[{e}] {}",
                node.dist.name.trim(),
                node.dist.version.trim()
            ),
            None => format!("{} {}", node.dist.name.trim(), node.dist.version.trim()),
        };
        for (text, req) in &node.reqs {
            let req = match req {
                Ok(r) => r,
                Err(reason) => {
                    out.insert(MissingRequirement {
                        name: text.trim().to_string(),
                        requirement: text.trim().to_string(),
                        needed_by: who(None),
                        kind: MissingKind::Invalid {
                            reason: reason.clone(),
                        },
                    });
                    continue;
                }
            };
            let bare = Requirement {
                marker: None,
                ..req.clone()
            }
            .to_string();
            // The installed or available version of the required name: Some(None) = there,
            // version unknown.
            let there: Option<(Option<&str>, Origin)> = match nodes.get(&req.name) {
                Some(n) => Some((Some(n.dist.version.as_str()), Origin::Lock)),
                None => available
                    .dists
                    .get(&req.name)
                    .map(|e| (e.version.as_deref(), e.origin)),
            };
            let decided = applies(&req.marker, env, &extras);
            let kind = match (decided, there) {
                (Ok(false), _) => continue,
                (Err(_), Some(_)) => continue,
                (Err(reason), None) => MissingKind::Undecided { reason },
                (Ok(true), None) => MissingKind::Missing,
                (Ok(true), Some((version, origin))) => {
                    let conflict = version.and_then(|v| {
                        let parsed = Version::parse(v.trim()).ok()?;
                        (!req.specifiers.contains(&parsed)).then(|| v.trim().to_string())
                    });
                    match conflict {
                        Some(found) => MissingKind::VersionConflict { found, origin },
                        None => continue,
                    }
                }
            };
            // Name the extra that brings the requirement in, when one does.
            let via = match &req.marker {
                Some(m) if m.uses(MarkerVariable::Extra) => extras
                    .iter()
                    .find(|e| m.evaluate(env, std::slice::from_ref(*e), &[]) == Ok(true))
                    .map(String::as_str),
                _ => None,
            };
            out.insert(MissingRequirement {
                name: req.name.clone(),
                requirement: bare,
                needed_by: who(via),
                kind,
            });
        }
    }
    let mut out: Vec<MissingRequirement> = out.into_iter().collect();
    out.sort_by(|a, b| {
        (&a.name, &a.requirement, &a.needed_by, &a.kind).cmp(&(
            &b.name,
            &b.requirement,
            &b.needed_by,
            &b.kind,
        ))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::MajorMinor;

    fn dist(name: &str, version: &str, reqs: &[&str]) -> DistRequirements {
        DistRequirements {
            name: name.into(),
            version: version.into(),
            requires_dist: reqs.iter().map(|s| s.to_string()).collect(),
            provides_extra: Vec::new(),
        }
    }

    fn env(full: &str) -> MarkerEnv {
        let mm = MajorMinor::parse_prefix(full).unwrap();
        MarkerEnv::cpython_linux(mm, Some(full), "x86_64")
    }

    /// `available` holds every dist of `dists` (as the lock) plus `extra` names from the base.
    fn avail(dists: &[DistRequirements], base: &[(&str, &str)]) -> Available {
        let mut a = Available::new();
        for (n, v) in base {
            a.insert(n, Some(v), Origin::Base);
        }
        for d in dists {
            a.insert(&d.name, Some(&d.version), Origin::Lock);
        }
        a
    }

    fn names(m: &[MissingRequirement]) -> Vec<(&str, &str)> {
        m.iter()
            .map(|m| (m.requirement.as_str(), m.needed_by.as_str()))
            .collect()
    }

    const REDIS: &[&str] = &[
        r#"async-timeout>=4.0.3; python_full_version < "3.11.3""#,
        r#"hiredis>=3.0.0; extra == "hiredis""#,
        r#"cryptography>=36.0.1; extra == "ocsp""#,
    ];

    #[test]
    fn marker_dependent_requirement_that_applies_is_reported() {
        let dists = [dist("redis", "5.2.1", REDIS)];
        let m = check_closure(&dists, &avail(&dists, &[]), &env("3.11.2"));
        assert_eq!(names(&m), [("async-timeout>=4.0.3", "redis 5.2.1")]);
        assert_eq!(m[0].kind, MissingKind::Missing);
        assert_eq!(m[0].name, "async-timeout");
    }

    #[test]
    fn marker_dependent_requirement_that_does_not_apply_is_not_reported() {
        let dists = [dist("redis", "5.2.1", REDIS)];
        assert!(check_closure(&dists, &avail(&dists, &[]), &env("3.11.3")).is_empty());
        assert!(check_closure(&dists, &avail(&dists, &[]), &env("3.12.0")).is_empty());
    }

    #[test]
    fn unknown_patch_release_is_undecided_unless_available() {
        let dists = [dist("redis", "5.2.1", REDIS)];
        let no_patch = MarkerEnv::cpython_linux(MajorMinor::new(3, 11), None, "x86_64");
        let m = check_closure(&dists, &avail(&dists, &[]), &no_patch);
        assert_eq!(names(&m), [("async-timeout>=4.0.3", "redis 5.2.1")]);
        assert!(
            matches!(&m[0].kind, MissingKind::Undecided { reason } if reason.contains("python_full_version"))
        );
        // Decided on 3.10 whatever the patch: it applies.
        let on_310 = MarkerEnv::cpython_linux(MajorMinor::new(3, 10), None, "x86_64");
        let m = check_closure(&dists, &avail(&dists, &[]), &on_310);
        assert_eq!(m[0].kind, MissingKind::Missing);
        // Present anyway: nothing to decide.
        let mut a = avail(&dists, &[]);
        a.insert("async_timeout", Some("4.0.3"), Origin::Lock);
        assert!(check_closure(&dists, &a, &no_patch).is_empty());
    }

    #[test]
    fn extras_are_activated_transitively() {
        // app requires fastapi[standard]; fastapi[standard] requires uvicorn[standard];
        // uvicorn[standard] requires uvloop and watchfiles.
        let dists = [
            dist("app-lib", "1.0", &["FastAPI[Standard]>=0.100"]),
            dist(
                "fastapi",
                "0.115.0",
                &[
                    "starlette",
                    r#"uvicorn[standard]>=0.12; extra == "standard""#,
                ],
            ),
            dist(
                "uvicorn",
                "0.30.0",
                &[
                    "h11>=0.8",
                    r#"uvloop>=0.14; (sys_platform != "win32" and sys_platform != "cygwin") and extra == "standard""#,
                    r#"watchfiles>=0.13; extra == "standard""#,
                    r#"colorama>=0.4; sys_platform == "win32" and extra == "standard""#,
                ],
            ),
        ];
        let mut a = avail(&dists, &[]);
        a.insert("starlette", Some("0.38.0"), Origin::Lock);
        a.insert("h11", Some("0.14.0"), Origin::Lock);
        let m = check_closure(&dists, &a, &env("3.12.4"));
        assert_eq!(
            names(&m),
            [
                ("uvloop>=0.14", "uvicorn[standard] 0.30.0"),
                ("watchfiles>=0.13", "uvicorn[standard] 0.30.0"),
            ]
        );
        // Without the root requirement, no extra is active and nothing is missing.
        let m = check_closure(&dists[1..], &a, &env("3.12.4"));
        assert!(m.is_empty(), "{m:?}");
        // A root request (`uvicorn[standard]` in the lock) activates it too.
        a.request_extras("Uvicorn", ["STANDARD"]);
        let m = check_closure(&dists[2..], &a, &env("3.12.4"));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn self_extras() {
        // pkg[all] requires pkg[redis] and pkg[yaml]; those require redis and pyyaml.
        let dists = [dist(
            "pkg",
            "2.0",
            &[
                r#"pkg[redis,yaml]; extra == "all""#,
                r#"redis>=5; extra == "redis""#,
                r#"pyyaml; extra == "yaml""#,
                r#"never; extra == "other""#,
            ],
        )];
        let mut a = avail(&dists, &[]);
        a.request_extras("pkg", ["all"]);
        a.insert("redis", Some("5.2.1"), Origin::Lock);
        let m = check_closure(&dists, &a, &env("3.11.2"));
        assert_eq!(names(&m), [("pyyaml", "pkg[yaml] 2.0")]);
    }

    #[test]
    fn satisfied_by_the_base_image() {
        let dists = [dist(
            "pip-tools",
            "7.4.1",
            &["pip>=22.2", "setuptools", "wheel"],
        )];
        let a = avail(&dists, &[("pip", "23.0.1"), ("setuptools", "66.1.1")]);
        let m = check_closure(&dists, &a, &env("3.11.2"));
        assert_eq!(names(&m), [("wheel", "pip-tools 7.4.1")]);
        // The project itself (version unknown) counts as well.
        let mut a = a;
        a.insert("wheel", None, Origin::Project);
        assert!(check_closure(&dists, &a, &env("3.11.2")).is_empty());
    }

    #[test]
    fn version_conflicts_are_their_own_kind() {
        let dists = [
            dist(
                "requests",
                "2.32.3",
                &["urllib3 <3,>=1.21.1", "idna<4,>=2.5"],
            ),
            dist("urllib3", "3.0.0", &[]),
        ];
        let a = avail(&dists, &[("idna", "3.3")]);
        let m = check_closure(&dists, &a, &env("3.11.2"));
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].requirement, "urllib3<3,>=1.21.1");
        assert_eq!(
            m[0].kind,
            MissingKind::VersionConflict {
                found: "3.0.0".into(),
                origin: Origin::Lock
            }
        );
        assert_eq!(
            m[0].to_string(),
            "urllib3<3,>=1.21.1 (needed by requests 2.32.3; the lock has urllib3 3.0.0)"
        );
        // A base version that conflicts, replaced by a lock version that fits: fine.
        let mut a = Available::new();
        a.insert("urllib3", Some("1.26.0"), Origin::Lock);
        a.insert("urllib3", Some("3.0.0"), Origin::Base);
        a.insert("idna", Some("3.3"), Origin::Base);
        assert!(check_closure(&dists[..1], &a, &env("3.11.2")).is_empty());
        // Pre-releases are allowed, as pip check does.
        let mut a = Available::new();
        a.insert("urllib3", Some("2.0.0rc1"), Origin::Lock);
        a.insert("idna", Some("3.3"), Origin::Lock);
        assert!(check_closure(&dists[..1], &a, &env("3.11.2")).is_empty());
    }

    #[test]
    fn invalid_requirements_are_reported() {
        let dists = [dist("bad", "1", &["this is not; a requirement", "ok"])];
        let mut a = avail(&dists, &[]);
        a.insert("ok", None, Origin::Lock);
        let m = check_closure(&dists, &a, &env("3.11.2"));
        assert_eq!(m.len(), 1);
        assert!(matches!(m[0].kind, MissingKind::Invalid { .. }));
        assert!(
            m[0].to_string()
                .contains("needed by bad 1; not a valid requirement")
        );
    }

    #[test]
    fn output_is_sorted_and_deduplicated_whatever_the_input_order() {
        let a_ = dist(
            "a",
            "1",
            &["zz", "yy", "zz", r#"zz; python_version >= "3""#],
        );
        let b_ = dist("b", "1", &["yy", "xx[e]>=1"]);
        let m1 = check_closure(&[a_.clone(), b_.clone()], &Available::new(), &env("3.11.2"));
        let m2 = check_closure(&[b_, a_], &Available::new(), &env("3.11.2"));
        assert_eq!(m1, m2);
        assert_eq!(
            names(&m1),
            [
                ("xx[e]>=1", "b 1"),
                ("yy", "a 1"),
                ("yy", "b 1"),
                ("zz", "a 1")
            ]
        );
    }

    /// The `Requires-Dist` lines of redis 5.2.1 and requests 2.32.3 exactly as their wheels on
    /// PyPI have them (rbuild-wheel's `tests/core_metadata.rs` reads the same from the wheels).
    #[test]
    fn real_metadata_three_top_level_pins() {
        let redis = dist(
            "redis",
            "5.2.1",
            &[
                "async-timeout>=4.0.3; python_full_version < \"3.11.3\"",
                "hiredis>=3.0.0; extra == \"hiredis\"",
                "cryptography>=36.0.1; extra == \"ocsp\"",
                "pyopenssl==23.2.1; extra == \"ocsp\"",
                "requests>=2.31.0; extra == \"ocsp\"",
            ],
        );
        let requests = dist(
            "requests",
            "2.32.3",
            &[
                "charset-normalizer <4,>=2",
                "idna <4,>=2.5",
                "urllib3 <3,>=1.21.1",
                "certifi >=2017.4.17",
                "PySocks !=1.5.7,>=1.5.6 ; extra == 'socks'",
                "chardet <6,>=3.0.2 ; extra == 'use_chardet_on_py3'",
            ],
        );
        let flask = dist("flask", "3.0.3", &[]);
        // A requirements.txt with only the three top-level pins, on Debian bookworm (3.11.2).
        let dists = [redis, requests, flask];
        let a = avail(&dists, &[("pip", "23.0.1")]);
        let m = check_closure(&dists, &a, &env("3.11.2"));
        assert_eq!(
            names(&m),
            [
                ("async-timeout>=4.0.3", "redis 5.2.1"),
                ("certifi>=2017.4.17", "requests 2.32.3"),
                ("charset-normalizer<4,>=2", "requests 2.32.3"),
                ("idna<4,>=2.5", "requests 2.32.3"),
                ("urllib3<3,>=1.21.1", "requests 2.32.3"),
            ]
        );
        // redis[ocsp] requested from outside: its extra's requirements join (requests is there).
        let mut a = a;
        a.request_extras("redis", ["ocsp"]);
        let m = check_closure(&dists, &a, &env("3.12.1"));
        let m: Vec<&str> = m.iter().map(|m| m.needed_by.as_str()).collect();
        assert_eq!(m.iter().filter(|n| **n == "redis[ocsp] 5.2.1").count(), 2);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn never_panics_and_is_deterministic(
            reqs in proptest::collection::vec("\\PC{0,40}|[a-c]( ?\\[[a-c,]{0,5}\\])?( ?[<>=!~]{1,2} ?[0-9.]{1,4})?( ?; ?extra == '[a-c]')?", 0..8),
            extras in proptest::collection::vec("[a-c]", 0..3),
        ) {
            let dists = [dist("a", "1", &reqs.iter().map(String::as_str).collect::<Vec<_>>()), dist("b", "2.0", &["a[b]", "c[a]"])];
            let mut a = Available::new();
            a.request_extras("a", &extras);
            let one = check_closure(&dists, &a, &env("3.11.2"));
            let two = check_closure(&[dists[1].clone(), dists[0].clone()], &a, &env("3.11.2"));
            proptest::prop_assert_eq!(one, two);
        }
    }

    #[test]
    fn base_dists_from_the_target() {
        let installed = [InstalledDist {
            name: "pip".into(),
            version: "23.0.1".into(),
            dist_info_path: "/usr/lib/python3/dist-packages/pip-23.0.1.dist-info".into(),
            has_record: false,
        }];
        let mut a = Available::new();
        a.insert("pip", Some("24.2"), Origin::Lock);
        a.insert_base(&installed);
        assert_eq!(a.version("PIP"), Some("24.2"));
        let mut b = Available::new();
        b.insert_base(&installed);
        assert_eq!(b.version("pip"), Some("23.0.1"));
        let dists = [dist("x", "1", &["pip>=24"])];
        let m = check_closure(&dists, &b, &env("3.11.2"));
        assert_eq!(
            m[0].to_string(),
            "pip>=24 (needed by x 1; the base image has pip 23.0.1)"
        );
    }

    #[test]
    fn message() {
        let dists = [
            dist("redis", "5.2.1", REDIS),
            dist(
                "requests",
                "2.32.3",
                &["idna<4,>=2.5", "certifi>=2017.4.17"],
            ),
        ];
        let mut a = avail(&dists, &[]);
        a.insert("certifi", Some("2024.8.30"), Origin::Lock);
        let missing = check_closure(&dists, &a, &env("3.11.2"));
        let e = IncompleteLock {
            missing,
            python: Some("3.11.2".into()),
        };
        assert_eq!(
            e.to_string(),
            "the lock is missing 2 requirements of the packages it installs:\n  \
             async-timeout>=4.0.3 (needed by redis 5.2.1)\n  \
             idna<4,>=2.5 (needed by requests 2.32.3)\n\
             add them to the lock (regenerate it with `uv pip compile` / `pip-compile` for \
             Python 3.11.2, e.g. `uv pip compile --python-version 3.11.2`), or pass \
             --allow-incomplete-lock to build anyway"
        );
        let one = IncompleteLock {
            missing: e.missing[..1].to_vec(),
            python: None,
        };
        assert!(
            one.to_string()
                .starts_with("the lock is missing 1 requirement of")
        );
        assert!(one.to_string().contains("for the image's Python)"));
    }
}
