//! PEP 508 environment markers, evaluated for an image instead of the running machine.
//!
//! A marker is a boolean expression over environment variables (`python_version >= "3.10" and
//! sys_platform == "linux"`). [`MarkerTree::parse`] accepts the full PEP 508 grammar (`and` binds tighter
//! than `or`, parentheses, every comparison operator, `in`/`not in`, variables on either side, the legacy
//! dotted names such as `os.name`) plus PEP 751's set-valued `extras` and `dependency_groups`.
//!
//! # Evaluation
//!
//! Comparisons follow `packaging.markers` 26.3:
//!
//! - for `python_version`, `python_full_version`, `implementation_version` and `platform_release`, when
//!   the operator and the literal form a valid PEP 440 specifier, the other side is compared as a version
//!   (pre-releases allowed; a side that is not a version never matches);
//! - otherwise values compare as strings: `==`/`!=` equality, `<=`/`>=` equality too, `<`/`>` are
//!   always false, `in`/`not in` are substring tests, and `~=`/`===` are an error;
//! - `extra` is compared with PEP 503-normalized names; as pip does, a marker is true for a set of extras
//!   when it is true for at least one of them taken alone (or for `extra == ""` when there are none);
//! - `"name" in extras` / `"name" in dependency_groups` test membership (normalized names);
//!   those two may only be used that way.
//!
//! # What rbuild knows about the image
//!
//! A [`MarkerEnv`] for a CPython-on-Linux image has `sys_platform = "linux"`, `platform_system = "Linux"`,
//! `os_name = "posix"`, `implementation_name = "cpython"`, `platform_python_implementation = "CPython"`,
//! `platform_machine` = the wheel CPU name, `python_version = "X.Y"`, and `python_full_version` (=
//! `implementation_version`) when the image tells it.
//!
//! When the patch version is unknown, a comparison on `python_full_version` is still decided when it
//! gives the same answer for every `X.Y.Z` (so `python_full_version >= "3.8"` is true on 3.11), and is
//! an [`MarkerError::UnknownVariable`] error otherwise. `platform_release` and `platform_version` describe
//! the kernel the container will run on, which an image cannot know: a marker that needs them is an
//! error unless they are given as overrides (`--marker-env KEY=VALUE`). An `and` with a false side is
//! false and an `or` with a true side is true even if the other side could not be evaluated.
//!
//! ```
//! use rbuild_python::markers::{MarkerEnv, MarkerTree};
//! use rbuild_python::target::MajorMinor;
//! let env = MarkerEnv::cpython_linux(MajorMinor::new(3, 11), None, "x86_64");
//! let m = MarkerTree::parse(r#"sys_platform == "win32" or (python_version >= "3.9" and extra == "Socks")"#).unwrap();
//! assert!(!m.evaluate(&env, &[], &[]).unwrap());
//! assert!(m.evaluate(&env, &["socks".to_string()], &[]).unwrap());
//! let kernel = MarkerTree::parse(r#"platform_release >= "6""#).unwrap();
//! assert!(kernel.evaluate(&env, &[], &[]).is_err());
//! let env = env.with_override("platform_release", "6.1.0").unwrap();
//! assert!(kernel.evaluate(&env, &[], &[]).unwrap());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::name::normalize_name;
use crate::target::MajorMinor;
use crate::version::{Operator, Version, VersionSpecifier};

/// A marker that cannot be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkerError {
    /// The marker text does not follow PEP 508.
    #[error("invalid marker `{input}` at character {position}: {message}")]
    Parse {
        /// The marker as written.
        input: String,
        /// 0-based character offset of the problem.
        position: usize,
        /// What was expected.
        message: String,
    },
    /// The marker needs a value rbuild cannot know for the image.
    #[error(
        "the marker `{marker}` needs `{variable}`, which {why}; give it with `--marker-env {variable}=VALUE`"
    )]
    UnknownVariable {
        /// The variable (`platform_release`).
        variable: String,
        /// The comparison that needs it.
        marker: String,
        /// Why it is unknown.
        why: String,
    },
    /// The comparison is not defined (e.g. `~=` on strings, `extras` compared with `==`).
    #[error("the marker `{marker}` cannot be evaluated: {reason}")]
    UndefinedComparison {
        /// The comparison.
        marker: String,
        /// Why.
        reason: String,
    },
    /// An override names a variable that does not exist.
    #[error("`{key}` is not a marker variable (known: {known})")]
    UnknownOverride {
        /// The key given.
        key: String,
        /// The known variable names.
        known: String,
    },
}

/// A marker variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MarkerVariable {
    /// `python_version` (`3.11`).
    PythonVersion,
    /// `python_full_version` (`3.11.2`).
    PythonFullVersion,
    /// `os_name` (`posix`); also written `os.name`.
    OsName,
    /// `sys_platform` (`linux`); also `sys.platform`.
    SysPlatform,
    /// `platform_release` (kernel release: unknown for an image).
    PlatformRelease,
    /// `platform_system` (`Linux`).
    PlatformSystem,
    /// `platform_version` (kernel version string: unknown for an image); also `platform.version`.
    PlatformVersion,
    /// `platform_machine` (`x86_64`); also `platform.machine`.
    PlatformMachine,
    /// `platform_python_implementation` (`CPython`); also `platform.python_implementation`,
    /// `python_implementation`.
    PlatformPythonImplementation,
    /// `implementation_name` (`cpython`).
    ImplementationName,
    /// `implementation_version` (same as `python_full_version` on CPython).
    ImplementationVersion,
    /// `extra` (one requested extra).
    Extra,
    /// `extras` (PEP 751: the set of requested extras).
    Extras,
    /// `dependency_groups` (PEP 751: the set of requested groups).
    DependencyGroups,
}

impl MarkerVariable {
    /// All variables, in PEP 508 order.
    pub const ALL: [MarkerVariable; 14] = [
        MarkerVariable::PythonVersion,
        MarkerVariable::PythonFullVersion,
        MarkerVariable::OsName,
        MarkerVariable::SysPlatform,
        MarkerVariable::PlatformRelease,
        MarkerVariable::PlatformSystem,
        MarkerVariable::PlatformVersion,
        MarkerVariable::PlatformMachine,
        MarkerVariable::PlatformPythonImplementation,
        MarkerVariable::ImplementationName,
        MarkerVariable::ImplementationVersion,
        MarkerVariable::Extra,
        MarkerVariable::Extras,
        MarkerVariable::DependencyGroups,
    ];

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            MarkerVariable::PythonVersion => "python_version",
            MarkerVariable::PythonFullVersion => "python_full_version",
            MarkerVariable::OsName => "os_name",
            MarkerVariable::SysPlatform => "sys_platform",
            MarkerVariable::PlatformRelease => "platform_release",
            MarkerVariable::PlatformSystem => "platform_system",
            MarkerVariable::PlatformVersion => "platform_version",
            MarkerVariable::PlatformMachine => "platform_machine",
            MarkerVariable::PlatformPythonImplementation => "platform_python_implementation",
            MarkerVariable::ImplementationName => "implementation_name",
            MarkerVariable::ImplementationVersion => "implementation_version",
            MarkerVariable::Extra => "extra",
            MarkerVariable::Extras => "extras",
            MarkerVariable::DependencyGroups => "dependency_groups",
        }
    }

    /// Parses a canonical or legacy (`os.name`, `python_implementation`) variable name.
    pub fn from_name(s: &str) -> Option<MarkerVariable> {
        Some(match s {
            "python_version" => MarkerVariable::PythonVersion,
            "python_full_version" => MarkerVariable::PythonFullVersion,
            "os_name" | "os.name" => MarkerVariable::OsName,
            "sys_platform" | "sys.platform" => MarkerVariable::SysPlatform,
            "platform_release" => MarkerVariable::PlatformRelease,
            "platform_system" => MarkerVariable::PlatformSystem,
            "platform_version" | "platform.version" => MarkerVariable::PlatformVersion,
            "platform_machine" | "platform.machine" => MarkerVariable::PlatformMachine,
            "platform_python_implementation"
            | "platform.python_implementation"
            | "python_implementation" => MarkerVariable::PlatformPythonImplementation,
            "implementation_name" => MarkerVariable::ImplementationName,
            "implementation_version" => MarkerVariable::ImplementationVersion,
            "extra" => MarkerVariable::Extra,
            "extras" => MarkerVariable::Extras,
            "dependency_groups" => MarkerVariable::DependencyGroups,
            _ => return None,
        })
    }

    fn is_version(self) -> bool {
        matches!(
            self,
            MarkerVariable::PythonVersion
                | MarkerVariable::PythonFullVersion
                | MarkerVariable::ImplementationVersion
                | MarkerVariable::PlatformRelease
        )
    }

    fn is_set(self) -> bool {
        matches!(
            self,
            MarkerVariable::Extras | MarkerVariable::DependencyGroups
        )
    }
}

impl fmt::Display for MarkerVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One side of a marker comparison.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MarkerValue {
    /// An environment variable.
    Variable(MarkerVariable),
    /// A quoted string.
    Literal(String),
}

impl fmt::Display for MarkerValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MarkerValue::Variable(v) => write!(f, "{v}"),
            MarkerValue::Literal(s) if s.contains('"') => write!(f, "'{s}'"),
            MarkerValue::Literal(s) => write!(f, "\"{s}\""),
        }
    }
}

/// A marker comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkerOperator {
    /// One of the version comparison operators (`==`, `>=`, `~=`, `===`, …).
    Compare(Operator),
    /// `in`.
    In,
    /// `not in`.
    NotIn,
}

impl fmt::Display for MarkerOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MarkerOperator::Compare(op) => write!(f, "{op}"),
            MarkerOperator::In => f.write_str("in"),
            MarkerOperator::NotIn => f.write_str("not in"),
        }
    }
}

/// One comparison: `lhs op rhs`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MarkerExpression {
    /// The left side.
    pub lhs: MarkerValue,
    /// The operator.
    pub op: MarkerOperator,
    /// The right side.
    pub rhs: MarkerValue,
}

impl fmt::Display for MarkerExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.lhs, self.op, self.rhs)
    }
}

/// A parsed marker expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MarkerTree {
    /// All must hold (`And(vec![])` is always true).
    And(Vec<MarkerTree>),
    /// At least one must hold (`Or(vec![])` is always false).
    Or(Vec<MarkerTree>),
    /// One comparison.
    Expression(MarkerExpression),
}

impl Default for MarkerTree {
    fn default() -> Self {
        MarkerTree::always()
    }
}

/// Which variables have no value for the image, and why.
fn unknown_reason(var: MarkerVariable) -> &'static str {
    match var {
        MarkerVariable::PlatformRelease | MarkerVariable::PlatformVersion => {
            "describes the kernel of the machine that will run the container, which an image cannot know"
        }
        MarkerVariable::PythonFullVersion | MarkerVariable::ImplementationVersion => {
            "needs the image's full Python version (X.Y.Z), which could not be read from the image \
             (`--python-version X.Y.Z` gives it too)"
        }
        _ => "has no value for this image",
    }
}

/// The values of the marker variables for one target, plus user overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerEnv {
    values: BTreeMap<MarkerVariable, String>,
    overrides: BTreeMap<MarkerVariable, String>,
}

impl MarkerEnv {
    /// The environment of CPython `python_version` (full version if known) on Linux on `machine`
    /// (`platform_machine`, i.e. the wheel CPU name such as `x86_64`).
    pub fn cpython_linux(
        python_version: MajorMinor,
        full_version: Option<&str>,
        machine: &str,
    ) -> Self {
        let mut values = BTreeMap::new();
        let mut set = |k, v: &str| {
            values.insert(k, v.to_string());
        };
        set(MarkerVariable::PythonVersion, &python_version.to_string());
        if let Some(full) = full_version {
            set(MarkerVariable::PythonFullVersion, full);
            set(MarkerVariable::ImplementationVersion, full);
        }
        set(MarkerVariable::OsName, "posix");
        set(MarkerVariable::SysPlatform, "linux");
        set(MarkerVariable::PlatformSystem, "Linux");
        set(MarkerVariable::PlatformMachine, machine);
        set(MarkerVariable::PlatformPythonImplementation, "CPython");
        set(MarkerVariable::ImplementationName, "cpython");
        MarkerEnv {
            values,
            overrides: BTreeMap::new(),
        }
    }

    /// Sets (or replaces) an override; `key` is a marker variable name (`platform_release`). Overrides
    /// win over detected values. `extra`, `extras` and `dependency_groups` cannot be overridden: they
    /// come from the request.
    pub fn with_override(mut self, key: &str, value: &str) -> Result<Self, MarkerError> {
        let var = MarkerVariable::from_name(key.trim())
            .filter(|v| !matches!(v, MarkerVariable::Extra) && !v.is_set())
            .ok_or_else(|| MarkerError::UnknownOverride {
                key: key.to_string(),
                known: MarkerVariable::ALL[..11]
                    .iter()
                    .map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        self.overrides.insert(var, value.to_string());
        Ok(self)
    }

    /// The overrides given, by canonical variable name.
    pub fn overrides(&self) -> BTreeMap<String, String> {
        self.overrides
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.clone()))
            .collect()
    }

    /// The value of a variable (override first), if known. `extra`, `extras` and `dependency_groups`
    /// have none here: they are given to [`MarkerTree::evaluate`].
    pub fn get(&self, var: MarkerVariable) -> Option<&str> {
        self.overrides
            .get(&var)
            .or_else(|| self.values.get(&var))
            .map(String::as_str)
    }
}

/// The value of one side during evaluation.
enum Side<'a> {
    Str(&'a str),
    Set(&'a [String]),
    /// `python_full_version` with an unknown patch number.
    UnknownPatch(MarkerVariable),
}

struct EvalCtx<'a> {
    env: &'a MarkerEnv,
    extra: &'a str,
    extras: &'a [String],
    groups: &'a [String],
}

impl MarkerTree {
    /// The marker that always holds.
    pub fn always() -> Self {
        MarkerTree::And(Vec::new())
    }

    /// Parses a PEP 508 marker expression.
    pub fn parse(input: &str) -> Result<Self, MarkerError> {
        let tokens = tokenize(input)?;
        let mut p = Parser {
            input,
            tokens,
            pos: 0,
            depth: 0,
        };
        let tree = p.parse_or()?;
        if p.pos < p.tokens.len() {
            return Err(p.error_at(p.pos, "expected `and`, `or` or the end of the marker"));
        }
        Ok(tree)
    }

    /// Both markers (`self and other`).
    pub fn and(self, other: MarkerTree) -> MarkerTree {
        let mut items = match self {
            MarkerTree::And(v) => v,
            t => vec![t],
        };
        match other {
            MarkerTree::And(v) => items.extend(v),
            t => items.push(t),
        }
        MarkerTree::And(items)
    }

    /// Either marker (`self or other`).
    pub fn or(self, other: MarkerTree) -> MarkerTree {
        let mut items = match self {
            MarkerTree::Or(v) => v,
            t => vec![t],
        };
        match other {
            MarkerTree::Or(v) => items.extend(v),
            t => items.push(t),
        }
        MarkerTree::Or(items)
    }

    /// Whether the marker mentions `var` anywhere.
    pub fn uses(&self, var: MarkerVariable) -> bool {
        match self {
            MarkerTree::And(v) | MarkerTree::Or(v) => v.iter().any(|t| t.uses(var)),
            MarkerTree::Expression(e) => {
                e.lhs == MarkerValue::Variable(var) || e.rhs == MarkerValue::Variable(var)
            }
        }
    }

    /// Evaluates the marker for the environment, the requested extras and the requested dependency
    /// groups (names are normalized before comparing). See the module docs for the rules.
    pub fn evaluate(
        &self,
        env: &MarkerEnv,
        extras: &[String],
        groups: &[String],
    ) -> Result<bool, MarkerError> {
        let extras: Vec<String> = extras.iter().map(|e| normalize_name(e)).collect();
        let groups: Vec<String> = groups.iter().map(|e| normalize_name(e)).collect();
        let singles: Vec<&str> = if extras.is_empty() || !self.uses(MarkerVariable::Extra) {
            vec![""]
        } else {
            extras.iter().map(String::as_str).collect()
        };
        let mut first_err = None;
        for extra in singles {
            let ctx = EvalCtx {
                env,
                extra,
                extras: &extras,
                groups: &groups,
            };
            match self.eval(&ctx) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(false),
        }
    }

    fn eval(&self, ctx: &EvalCtx<'_>) -> Result<bool, MarkerError> {
        match self {
            MarkerTree::And(items) => {
                let mut err = None;
                for t in items {
                    match t.eval(ctx) {
                        Ok(false) => return Ok(false),
                        Ok(true) => {}
                        Err(e) => {
                            err.get_or_insert(e);
                        }
                    }
                }
                err.map_or(Ok(true), Err)
            }
            MarkerTree::Or(items) => {
                let mut err = None;
                for t in items {
                    match t.eval(ctx) {
                        Ok(true) => return Ok(true),
                        Ok(false) => {}
                        Err(e) => {
                            err.get_or_insert(e);
                        }
                    }
                }
                err.map_or(Ok(false), Err)
            }
            MarkerTree::Expression(e) => e.eval(ctx),
        }
    }
}

impl MarkerExpression {
    fn side<'a>(&self, v: &'a MarkerValue, ctx: &EvalCtx<'a>) -> Result<Side<'a>, MarkerError> {
        match v {
            MarkerValue::Literal(s) => Ok(Side::Str(s)),
            MarkerValue::Variable(var) => match var {
                MarkerVariable::Extra => Ok(Side::Str(ctx.extra)),
                MarkerVariable::Extras => Ok(Side::Set(ctx.extras)),
                MarkerVariable::DependencyGroups => Ok(Side::Set(ctx.groups)),
                _ => match ctx.env.get(*var) {
                    Some(s) => Ok(Side::Str(s)),
                    None if matches!(
                        var,
                        MarkerVariable::PythonFullVersion | MarkerVariable::ImplementationVersion
                    ) =>
                    {
                        Ok(Side::UnknownPatch(*var))
                    }
                    None => Err(self.unknown(*var)),
                },
            },
        }
    }

    fn unknown(&self, var: MarkerVariable) -> MarkerError {
        MarkerError::UnknownVariable {
            variable: var.as_str().to_string(),
            marker: self.to_string(),
            why: unknown_reason(var).to_string(),
        }
    }

    fn undefined(&self, reason: &str) -> MarkerError {
        MarkerError::UndefinedComparison {
            marker: self.to_string(),
            reason: reason.to_string(),
        }
    }

    /// The variable that decides how values compare: the left one if it is a variable, else the right.
    fn key(&self) -> Option<MarkerVariable> {
        match (&self.lhs, &self.rhs) {
            (MarkerValue::Variable(v), _) | (_, MarkerValue::Variable(v)) => Some(*v),
            _ => None,
        }
    }

    fn eval(&self, ctx: &EvalCtx<'_>) -> Result<bool, MarkerError> {
        let key = self.key();
        let lhs = self.side(&self.lhs, ctx)?;
        let rhs = self.side(&self.rhs, ctx)?;
        match (lhs, rhs) {
            (Side::Set(_), _) => Err(self.undefined(
                "`extras` and `dependency_groups` can only be used as `\"name\" in extras`",
            )),
            (Side::Str(l), Side::Set(set)) => {
                let l = normalize_name(l);
                match self.op {
                    MarkerOperator::In => Ok(set.contains(&l)),
                    MarkerOperator::NotIn => Ok(!set.contains(&l)),
                    MarkerOperator::Compare(_) => Err(self.undefined(
                        "`extras` and `dependency_groups` can only be used with `in` and `not in`",
                    )),
                }
            }
            (Side::UnknownPatch(_), Side::Set(_)) => Err(self.undefined(
                "`extras` and `dependency_groups` can only be compared with a quoted name",
            )),
            (Side::UnknownPatch(_), Side::UnknownPatch(_)) => {
                Err(self.unknown(MarkerVariable::PythonFullVersion))
            }
            (Side::UnknownPatch(var), Side::Str(r)) => {
                self.eval_unknown_patch(ctx, var, key, r, true)
            }
            (Side::Str(l), Side::UnknownPatch(var)) => {
                self.eval_unknown_patch(ctx, var, key, l, false)
            }
            (Side::Str(l), Side::Str(r)) => self.compare(key, l, r),
        }
    }

    /// Decides a comparison with `X.Y.?` when every patch number gives the same answer: the answer can
    /// only change at a number written in the literal, so trying 0, 1, a huge number and every number
    /// of the literal ±1 covers all cases.
    fn eval_unknown_patch(
        &self,
        ctx: &EvalCtx<'_>,
        var: MarkerVariable,
        key: Option<MarkerVariable>,
        literal: &str,
        unknown_is_lhs: bool,
    ) -> Result<bool, MarkerError> {
        let Some(MajorMinor { major, minor }) = ctx
            .env
            .get(MarkerVariable::PythonVersion)
            .and_then(|v| v.parse::<MajorMinor>().ok())
        else {
            return Err(self.unknown(var));
        };
        let mut patches: BTreeSet<u64> = [0, 1, 99_999].into_iter().collect();
        for run in literal.split(|c: char| !c.is_ascii_digit()) {
            if let Ok(n) = run.parse::<u64>() {
                patches.extend([n.saturating_sub(1), n, n.saturating_add(1)]);
            }
        }
        let mut result = None;
        for p in patches {
            let candidate = format!("{major}.{minor}.{p}");
            let r = if unknown_is_lhs {
                self.compare(key, &candidate, literal)?
            } else {
                self.compare(key, literal, &candidate)?
            };
            match result {
                None => result = Some(r),
                Some(prev) if prev != r => return Err(self.unknown(var)),
                Some(_) => {}
            }
        }
        Ok(result.unwrap_or(false))
    }

    fn compare(&self, key: Option<MarkerVariable>, l: &str, r: &str) -> Result<bool, MarkerError> {
        let (mut l, mut r) = (l.to_string(), r.to_string());
        if key == Some(MarkerVariable::Extra) {
            if let MarkerValue::Literal(_) = self.lhs {
                l = normalize_name(&l);
            }
            if let MarkerValue::Literal(_) = self.rhs {
                r = normalize_name(&r);
            }
        }
        if key.is_some_and(MarkerVariable::is_version)
            && let MarkerOperator::Compare(op) = self.op
            && let Ok(spec) = VersionSpecifier::parse(&format!("{op}{r}"))
        {
            return Ok(match Version::parse(&l) {
                Ok(v) => spec.contains(&v),
                Err(_) => false,
            });
        }
        Ok(match self.op {
            MarkerOperator::In => r.contains(l.as_str()),
            MarkerOperator::NotIn => !r.contains(l.as_str()),
            MarkerOperator::Compare(op) => match op {
                Operator::Equal | Operator::LessEqual | Operator::GreaterEqual => l == r,
                Operator::NotEqual => l != r,
                Operator::Less | Operator::Greater => false,
                Operator::Compatible | Operator::Arbitrary => {
                    return Err(self.undefined(&format!(
                        "`{op}` needs a version on the right, and `{r}` is not one"
                    )));
                }
            },
        })
    }
}

impl fmt::Display for MarkerTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn write(t: &MarkerTree, f: &mut fmt::Formatter<'_>, nested: bool) -> fmt::Result {
            match t {
                MarkerTree::Expression(e) => write!(f, "{e}"),
                MarkerTree::And(items) | MarkerTree::Or(items) => {
                    let sep = if matches!(t, MarkerTree::And(_)) {
                        " and "
                    } else {
                        " or "
                    };
                    if items.is_empty() {
                        // Only reachable for the constant markers; print something that parses.
                        return if matches!(t, MarkerTree::And(_)) {
                            f.write_str("python_version >= \"0\"")
                        } else {
                            f.write_str("python_version < \"0\"")
                        };
                    }
                    let paren = nested && items.len() > 1;
                    if paren {
                        f.write_str("(")?;
                    }
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            f.write_str(sep)?;
                        }
                        write(item, f, true)?;
                    }
                    if paren {
                        f.write_str(")")?;
                    }
                    Ok(())
                }
            }
        }
        write(self, f, false)
    }
}

impl std::str::FromStr for MarkerTree {
    type Err = MarkerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MarkerTree::parse(s)
    }
}

// ---------------------------------------------------------------------------------------------------
// Tokenizer and parser.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Op(MarkerOperator),
    Var(MarkerVariable),
    Str(String),
}

fn tokenize(input: &str) -> Result<Vec<(usize, Tok)>, MarkerError> {
    let err = |pos: usize, msg: &str| MarkerError::Parse {
        input: input.to_string(),
        position: pos,
        message: msg.to_string(),
    };
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        match c {
            '(' => {
                out.push((start, Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push((start, Tok::RParen));
                i += 1;
            }
            '"' | '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&d| d == c)
                    .ok_or_else(|| err(start, "unterminated string"))?;
                let s: String = chars[i + 1..i + 1 + end].iter().collect();
                out.push((start, Tok::Str(s)));
                i += end + 2;
            }
            '=' | '!' | '<' | '>' | '~' => {
                let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
                let (op, len) = match Operator::split_prefix(&rest) {
                    Some((op, tail)) => (op, rest.chars().count() - tail.chars().count()),
                    None => return Err(err(start, "expected one of == != <= >= < > ~= ===")),
                };
                out.push((start, Tok::Op(MarkerOperator::Compare(op))));
                i += len;
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | '.'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let tok = match word.as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "in" => Tok::Op(MarkerOperator::In),
                    "not" => {
                        let mut j = i;
                        while j < chars.len() && chars[j].is_whitespace() {
                            j += 1;
                        }
                        let k = j + 2;
                        if j == i
                            || k > chars.len()
                            || chars[j..k].iter().collect::<String>() != "in"
                            || chars
                                .get(k)
                                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
                        {
                            return Err(err(start, "expected `in` after `not`"));
                        }
                        i = k;
                        Tok::Op(MarkerOperator::NotIn)
                    }
                    w => match MarkerVariable::from_name(w) {
                        Some(v) => Tok::Var(v),
                        None => {
                            return Err(err(
                                start,
                                &format!(
                                    "`{w}` is not a marker variable (expected e.g. python_version, sys_platform, extra)"
                                ),
                            ));
                        }
                    },
                };
                out.push((start, tok));
            }
            _ => return Err(err(start, &format!("unexpected character `{c}`"))),
        }
    }
    Ok(out)
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<(usize, Tok)>,
    pos: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    fn error_at(&self, tok: usize, msg: &str) -> MarkerError {
        let position = self
            .tokens
            .get(tok)
            .map(|(p, _)| *p)
            .unwrap_or_else(|| self.input.chars().count());
        MarkerError::Parse {
            input: self.input.to_string(),
            position,
            message: msg.to_string(),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn parse_or(&mut self) -> Result<MarkerTree, MarkerError> {
        let mut items = vec![self.parse_and()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            items.push(self.parse_and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            MarkerTree::Or(items)
        })
    }

    fn parse_and(&mut self) -> Result<MarkerTree, MarkerError> {
        let mut items = vec![self.parse_atom()?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            items.push(self.parse_atom()?);
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            MarkerTree::And(items)
        })
    }

    fn parse_atom(&mut self) -> Result<MarkerTree, MarkerError> {
        if self.peek() == Some(&Tok::LParen) {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.error_at(self.pos, "parentheses nested too deeply"));
            }
            self.pos += 1;
            let inner = self.parse_or()?;
            if self.peek() != Some(&Tok::RParen) {
                return Err(self.error_at(self.pos, "expected `)`"));
            }
            self.pos += 1;
            self.depth -= 1;
            return Ok(inner);
        }
        let lhs = self.parse_value()?;
        let op = match self.peek() {
            Some(Tok::Op(op)) => *op,
            _ => {
                return Err(self.error_at(
                    self.pos,
                    "expected a comparison operator (==, >=, in, not in, …)",
                ));
            }
        };
        self.pos += 1;
        let rhs = self.parse_value()?;
        Ok(MarkerTree::Expression(MarkerExpression { lhs, op, rhs }))
    }

    fn parse_value(&mut self) -> Result<MarkerValue, MarkerError> {
        let v = match self.peek() {
            Some(Tok::Var(v)) => MarkerValue::Variable(*v),
            Some(Tok::Str(s)) => MarkerValue::Literal(s.clone()),
            _ => {
                return Err(
                    self.error_at(self.pos, "expected a marker variable or a quoted string")
                );
            }
        };
        self.pos += 1;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> MarkerEnv {
        MarkerEnv::cpython_linux(MajorMinor::new(3, 11), Some("3.11.2"), "x86_64")
    }

    fn eval_with(
        m: &str,
        env: &MarkerEnv,
        extras: &[&str],
        groups: &[&str],
    ) -> Result<bool, MarkerError> {
        let extras: Vec<String> = extras.iter().map(|s| s.to_string()).collect();
        let groups: Vec<String> = groups.iter().map(|s| s.to_string()).collect();
        MarkerTree::parse(m)
            .unwrap()
            .evaluate(env, &extras, &groups)
    }

    fn eval(m: &str) -> bool {
        eval_with(m, &env(), &[], &[]).unwrap()
    }

    #[test]
    fn target_values() {
        for m in [
            r#"sys_platform == "linux""#,
            r#"platform_system == "Linux""#,
            r#"os_name == "posix""#,
            r#"os.name == "posix""#,
            r#"implementation_name == "cpython""#,
            r#"platform_python_implementation == "CPython""#,
            r#"python_implementation == "CPython""#,
            r#"platform_machine == "x86_64""#,
            r#"platform.machine in "x86_64 aarch64""#,
            r#"python_version == "3.11""#,
            r#"python_version >= "3.8""#,
            r#"python_version < "3.12""#,
            r#"python_version > "3.9""#,
            r#"python_version ~= "3.10""#,
            r#"python_version == "3.*""#,
            r#"python_full_version >= "3.11.2""#,
            r#"implementation_version == "3.11.2""#,
            r#"'3.10' < python_version"#,
            r#"python_version not in "2.7 3.6""#,
            r#"platform_machine != "aarch64""#,
        ] {
            assert!(eval(m), "{m} should be true");
        }
        for m in [
            r#"sys_platform == "win32""#,
            r#"sys_platform == "darwin" or platform_system == "Windows""#,
            r#"python_version < "3.11""#,
            r#"python_version > "3.11""#,
            r#"python_full_version > "3.11.2""#,
            r#"platform_machine < "z""#,
            r#"python_version >= "3.12" and sys_platform == "linux""#,
            r#"implementation_name == "pypy""#,
        ] {
            assert!(!eval(m), "{m} should be false");
        }
    }

    #[test]
    fn version_comparison_is_pep440_not_lexicographic() {
        // As strings "3.9" > "3.11"; as versions it is the other way round.
        assert!(eval(r#"python_version > "3.9""#));
        assert!(!eval(r#"python_version < "3.9""#));
        // `3.11` and `3.11.0` are the same version.
        assert!(eval(r#"python_version == "3.11.0""#));
    }

    #[test]
    fn precedence_and_parens() {
        // and binds tighter than or.
        assert!(eval(
            r#"sys_platform == "linux" or sys_platform == "win32" and python_version < "3""#
        ));
        assert!(!eval(
            r#"(sys_platform == "linux" or sys_platform == "win32") and python_version < "3""#
        ));
    }

    #[test]
    fn extras_follow_pip() {
        let e = env();
        assert!(!eval_with(r#"extra == "socks""#, &e, &[], &[]).unwrap());
        assert!(eval_with(r#"extra == "socks""#, &e, &["SOCKS"], &[]).unwrap());
        assert!(eval_with(r#"extra == "Foo.Bar""#, &e, &["foo_bar"], &[]).unwrap());
        assert!(eval_with(r#""socks" == extra"#, &e, &["a", "socks"], &[]).unwrap());
        assert!(eval_with(r#"extra != "socks""#, &e, &[], &[]).unwrap());
        // pip evaluates once per extra: `extra == a and extra == b` never holds.
        assert!(!eval_with(r#"extra == "a" and extra == "b""#, &e, &["a", "b"], &[]).unwrap());
    }

    #[test]
    fn pep751_sets() {
        let e = env();
        assert!(eval_with(r#""Dev" in dependency_groups"#, &e, &[], &["dev"]).unwrap());
        assert!(!eval_with(r#""dev" in dependency_groups"#, &e, &[], &[]).unwrap());
        assert!(eval_with(r#""test" not in dependency_groups"#, &e, &[], &["dev"]).unwrap());
        assert!(eval_with(r#""standard" in extras"#, &e, &["Standard"], &[]).unwrap());
        assert!(matches!(
            eval_with(r#"extras == "x""#, &e, &[], &[]),
            Err(MarkerError::UndefinedComparison { .. })
        ));
    }

    #[test]
    fn kernel_variables_need_overrides() {
        let e = env();
        let err = eval_with(r#"platform_release >= "5.10""#, &e, &[], &[]).unwrap_err();
        match &err {
            MarkerError::UnknownVariable { variable, .. } => {
                assert_eq!(variable, "platform_release")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string()
                .contains("--marker-env platform_release=VALUE"),
            "{err}"
        );
        // A decided `and`/`or` does not need the unknown side.
        assert!(
            !eval_with(
                r#"sys_platform == "win32" and platform_release >= "5""#,
                &e,
                &[],
                &[]
            )
            .unwrap()
        );
        assert!(
            eval_with(
                r#"platform_version == "x" or sys_platform == "linux""#,
                &e,
                &[],
                &[]
            )
            .unwrap()
        );
        let e = e
            .with_override("platform_release", "6.1.0-18-amd64")
            .unwrap();
        assert!(!eval_with(r#"platform_release >= "6.2""#, &e, &[], &[]).unwrap());
        assert!(eval_with(r#"platform_release == "6.1.0-18-amd64""#, &e, &[], &[]).unwrap());
        assert!(e.clone().with_override("extra", "x").is_err());
        assert!(e.with_override("kernel", "x").is_err());
    }

    #[test]
    fn unknown_patch_version_is_decided_when_it_can_be() {
        let e = MarkerEnv::cpython_linux(MajorMinor::new(3, 11), None, "aarch64");
        let run = |m: &str| eval_with(m, &e, &[], &[]);
        assert!(run(r#"python_full_version >= "3.8""#).unwrap());
        assert!(run(r#"python_full_version >= "3.11""#).unwrap());
        assert!(run(r#"python_full_version == "3.11.*""#).unwrap());
        assert!(!run(r#"python_full_version < "3.11""#).unwrap());
        assert!(!run(r#"python_full_version >= "3.12.0""#).unwrap());
        for ambiguous in [
            r#"python_full_version >= "3.11.4""#,
            r#"python_full_version != "3.11.2""#,
            r#"python_full_version in "3.11.4, 3.11.5""#,
            r#""3.11.3" < implementation_version"#,
        ] {
            match run(ambiguous) {
                Err(MarkerError::UnknownVariable { .. }) => {}
                other => panic!("{ambiguous}: {other:?}"),
            }
        }
        let e = e.with_override("python_full_version", "3.11.9").unwrap();
        assert!(eval_with(r#"python_full_version >= "3.11.4""#, &e, &[], &[]).unwrap());
    }

    #[test]
    fn undefined_comparisons() {
        assert!(matches!(
            eval_with(r#"platform_machine ~= "x86""#, &env(), &[], &[]),
            Err(MarkerError::UndefinedComparison { .. })
        ));
    }

    #[test]
    fn parse_errors_point_at_the_problem() {
        for (bad, pos) in [
            (r#"python_version >= "3.8" and"#, 27),
            (r#"python_version >= "3.8"#, 18),
            (r#"python_versionx >= "3.8""#, 0),
            (r#"(python_version >= "3.8""#, 24),
            (r#"python_version = "3.8""#, 15),
            (r#"python_version not "3.8""#, 15),
            (r#""a" "b""#, 4),
            ("", 0),
            (r#"python_version >= "3.8")"#, 23),
        ] {
            match MarkerTree::parse(bad) {
                Err(MarkerError::Parse { position, .. }) => assert_eq!(position, pos, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn display_round_trips() {
        for m in [
            r#"python_version >= "3.8" and (sys_platform == "linux" or extra == 'a"b')"#,
            r#"os_name == "posix""#,
            r#"(python_version < "3" or python_version > "4") and platform_machine not in "x86_64""#,
        ] {
            let t = MarkerTree::parse(m).unwrap();
            let again = MarkerTree::parse(&t.to_string()).unwrap();
            assert_eq!(t, again, "{m} -> {t}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn parser_never_panics(s in "\\PC{0,80}") {
            let _ = MarkerTree::parse(&s);
        }

        #[test]
        fn parser_never_panics_on_marker_like_text(
            s in "([()]|and |or |not |in |python_version|extra|sys_platform|extras|[<>=!~]{1,3}|'[a-z0-9.* ]{0,5}'|\"[0-9.]{0,5}\"| ){0,24}"
        ) {
            if let Ok(t) = MarkerTree::parse(&s) {
                let _ = t.evaluate(&env(), &["x".to_string()], &[]);
                let printed = t.to_string();
                proptest::prop_assert_eq!(MarkerTree::parse(&printed).ok(), Some(t));
            }
        }

        #[test]
        fn deep_nesting_is_an_error_not_a_crash(n in 60usize..5000) {
            let s = format!("{}python_version >= \"3\"{}", "(".repeat(n), ")".repeat(n));
            let r = MarkerTree::parse(&s);
            proptest::prop_assert_eq!(r.is_ok(), n <= MAX_DEPTH);
        }
    }
}
