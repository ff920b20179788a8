//! PEP 440 versions and version specifiers, as far as rbuild needs them.
//!
//! A [`Version`] is parsed with the same grammar `packaging.version.Version` accepts (case-insensitive,
//! surrounding whitespace and a leading `v` allowed, every alternative spelling of the pre-, post- and
//! dev-release parts), and is displayed in its normalized form:
//!
//! ```
//! use rbuild_python::version::Version;
//! let v: Version = "1.0-RC.1_POST2.dev".parse().unwrap();
//! assert_eq!(v.to_string(), "1.0rc1.post2.dev0");
//! assert!("1.0".parse::<Version>().unwrap() == "1.0.0".parse().unwrap());
//! assert!("1.0.dev1".parse::<Version>().unwrap() < "1.0a1".parse().unwrap());
//! assert!("1!0.1".parse::<Version>().unwrap() > "2024.1".parse().unwrap());
//! ```
//!
//! [`VersionSpecifiers`] is a comma-separated list of [`VersionSpecifier`]s (`>=3.9, !=3.9.1, <4`), all of
//! which must hold. [`VersionSpecifiers::contains`] follows `packaging.specifiers.Specifier.contains`
//! (26.3, which implements PEP 440's exclusive-comparison rules exactly) with `prereleases=True` — the way pip checks `requires-python` and the way PEP 508 markers compare versions —
//! so a pre-release is never excluded just for being a pre-release:
//!
//! ```
//! use rbuild_python::version::{Version, VersionSpecifiers};
//! let spec: VersionSpecifiers = ">=3.9, <3.13, !=3.11.*".parse().unwrap();
//! assert!(spec.contains(&"3.12.1".parse().unwrap()));
//! assert!(!spec.contains(&"3.11.4".parse().unwrap()));
//! assert!("~=2.2".parse::<VersionSpecifiers>().unwrap().contains(&"2.9".parse().unwrap()));
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

/// A version or specifier that does not follow PEP 440.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The text is not a PEP 440 version.
    #[error(
        "`{0}` is not a valid PEP 440 version (expected something like `1.2.3`, `2.0rc1`, `1.0.post1`)"
    )]
    InvalidVersion(String),
    /// A number in the version does not fit in 64 bits.
    #[error("`{0}` has a number too large to handle")]
    NumberTooLarge(String),
    /// The text is not a PEP 440 version specifier.
    #[error("`{spec}` is not a valid version specifier: {reason}")]
    InvalidSpecifier {
        /// The specifier as written.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The kind of a pre-release: `a` (alpha), `b` (beta) or `rc` (release candidate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PreKind {
    /// `a`, `alpha`.
    Alpha,
    /// `b`, `beta`.
    Beta,
    /// `rc`, `c`, `pre`, `preview`.
    Rc,
}

impl PreKind {
    fn as_str(self) -> &'static str {
        match self {
            PreKind::Alpha => "a",
            PreKind::Beta => "b",
            PreKind::Rc => "rc",
        }
    }
}

/// One segment of a local version label (`+ubuntu.1` has `ubuntu` and `1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LocalSegment {
    /// A numeric segment; sorts after every alphanumeric one.
    Number(u64),
    /// An alphanumeric segment, lowercased.
    Text(String),
}

impl Ord for LocalSegment {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (LocalSegment::Number(a), LocalSegment::Number(b)) => a.cmp(b),
            (LocalSegment::Text(a), LocalSegment::Text(b)) => a.cmp(b),
            (LocalSegment::Number(_), LocalSegment::Text(_)) => Ordering::Greater,
            (LocalSegment::Text(_), LocalSegment::Number(_)) => Ordering::Less,
        }
    }
}

impl PartialOrd for LocalSegment {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for LocalSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalSegment::Number(n) => write!(f, "{n}"),
            LocalSegment::Text(s) => f.write_str(s),
        }
    }
}

/// A PEP 440 version. Equality and ordering follow PEP 440 (`1.0 == 1.0.0`); `Display` gives the normalized
/// form.
#[derive(Debug, Clone)]
pub struct Version {
    epoch: u64,
    release: Vec<u64>,
    pre: Option<(PreKind, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Vec<LocalSegment>,
}

static VERSION_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^\s*v?
        (?:(?P<epoch>[0-9]+)!)?
        (?P<release>[0-9]+(?:\.[0-9]+)*)
        (?P<pre>[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?
        (?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?))?
        (?P<dev>[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
        (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
        \s*$",
    )
    .expect("static regex")
});

fn parse_num(s: &str, whole: &str) -> Result<u64, VersionError> {
    s.parse::<u64>()
        .map_err(|_| VersionError::NumberTooLarge(whole.to_string()))
}

impl Version {
    /// Parses a PEP 440 version (same as `str::parse`).
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        // Most versions are plain releases (`2.32.3`): read those without the regex, which is
        // most of the CPU a lock or an index listing costs to read.
        if let Some(release) = Self::plain_release(s) {
            return Ok(Version {
                epoch: 0,
                release: release?,
                pre: None,
                post: None,
                dev: None,
                local: Vec::new(),
            });
        }
        Self::parse_general(s)
    }

    /// The release numbers of `s` when it is only digits separated by single dots (`None` for
    /// anything else, which [`Version::parse_general`] reads).
    fn plain_release(s: &str) -> Option<Result<Vec<u64>, VersionError>> {
        let b = s.as_bytes();
        let plain = !b.is_empty()
            && b[0].is_ascii_digit()
            && b[b.len() - 1].is_ascii_digit()
            && b.iter().all(|c| c.is_ascii_digit() || *c == b'.')
            && !s.contains("..");
        plain.then(|| s.split('.').map(|p| parse_num(p, s)).collect())
    }

    /// Parses any PEP 440 version with the full grammar.
    fn parse_general(s: &str) -> Result<Self, VersionError> {
        let caps = VERSION_RE
            .captures(s)
            .ok_or_else(|| VersionError::InvalidVersion(s.to_string()))?;
        let epoch = match caps.name("epoch") {
            Some(m) => parse_num(m.as_str(), s)?,
            None => 0,
        };
        let release = caps["release"]
            .split('.')
            .map(|p| parse_num(p, s))
            .collect::<Result<Vec<_>, _>>()?;
        let pre = match caps.name("pre_l") {
            Some(l) => {
                let kind = match l.as_str().to_ascii_lowercase().as_str() {
                    "a" | "alpha" => PreKind::Alpha,
                    "b" | "beta" => PreKind::Beta,
                    _ => PreKind::Rc,
                };
                let n = match caps.name("pre_n") {
                    Some(m) => parse_num(m.as_str(), s)?,
                    None => 0,
                };
                Some((kind, n))
            }
            None => None,
        };
        let post = if caps.name("post").is_some() {
            match caps.name("post_n1").or_else(|| caps.name("post_n2")) {
                Some(m) => Some(parse_num(m.as_str(), s)?),
                None => Some(0),
            }
        } else {
            None
        };
        let dev = if caps.name("dev").is_some() {
            match caps.name("dev_n") {
                Some(m) => Some(parse_num(m.as_str(), s)?),
                None => Some(0),
            }
        } else {
            None
        };
        let local = match caps.name("local") {
            Some(m) => m
                .as_str()
                .split(['-', '_', '.'])
                .map(|seg| {
                    if seg.bytes().all(|b| b.is_ascii_digit()) {
                        parse_num(seg, s).map(LocalSegment::Number)
                    } else {
                        Ok(LocalSegment::Text(seg.to_ascii_lowercase()))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        Ok(Version {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    /// A plain release version such as `3.11.2`.
    pub fn from_release(release: &[u64]) -> Self {
        Version {
            epoch: 0,
            release: if release.is_empty() {
                vec![0]
            } else {
                release.to_vec()
            },
            pre: None,
            post: None,
            dev: None,
            local: Vec::new(),
        }
    }

    /// The epoch (`1` in `1!2.0`; 0 when absent).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The release numbers (`[2, 0]` in `2.0rc1`), as written (trailing zeros kept).
    pub fn release(&self) -> &[u64] {
        &self.release
    }

    /// The pre-release part, if any.
    pub fn pre(&self) -> Option<(PreKind, u64)> {
        self.pre
    }

    /// The post-release number, if any.
    pub fn post(&self) -> Option<u64> {
        self.post
    }

    /// The dev-release number, if any.
    pub fn dev(&self) -> Option<u64> {
        self.dev
    }

    /// The local version label segments (empty when there is none).
    pub fn local(&self) -> &[LocalSegment] {
        &self.local
    }

    /// Whether this is a pre-release (has a pre- or dev-release part).
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    /// Whether this is a post-release.
    pub fn is_postrelease(&self) -> bool {
        self.post.is_some()
    }

    /// The version without its local label (`1.0+abc` → `1.0`).
    pub fn public(&self) -> Version {
        Version {
            local: Vec::new(),
            ..self.clone()
        }
    }

    /// Epoch and release only (`1!2.0rc1.post1` → `1!2.0`).
    pub fn base(&self) -> Version {
        Version {
            epoch: self.epoch,
            release: self.release.clone(),
            pre: None,
            post: None,
            dev: None,
            local: Vec::new(),
        }
    }

    fn release_trimmed(&self) -> &[u64] {
        let mut end = self.release.len();
        while end > 1 && self.release[end - 1] == 0 {
            end -= 1;
        }
        // `0` and `0.0` compare equal: trim down to nothing when everything is zero.
        if end == 1 && self.release[0] == 0 {
            return &[];
        }
        &self.release[..end]
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch != 0 {
            write!(f, "{}!", self.epoch)?;
        }
        for (i, n) in self.release.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{n}")?;
        }
        if let Some((kind, n)) = self.pre {
            write!(f, "{}{n}", kind.as_str())?;
        }
        if let Some(n) = self.post {
            write!(f, ".post{n}")?;
        }
        if let Some(n) = self.dev {
            write!(f, ".dev{n}")?;
        }
        if !self.local.is_empty() {
            f.write_str("+")?;
            for (i, seg) in self.local.iter().enumerate() {
                if i > 0 {
                    f.write_str(".")?;
                }
                write!(f, "{seg}")?;
            }
        }
        Ok(())
    }
}

/// The pre-release sort key of packaging's `_cmpkey`: a dev-only release sorts before every pre-release,
/// a final (or post) release after them.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum PreKey {
    DevOnly,
    Pre(PreKind, u64),
    Final,
}

impl Version {
    fn pre_key(&self) -> PreKey {
        match self.pre {
            Some((k, n)) => PreKey::Pre(k, n),
            None if self.post.is_none() && self.dev.is_some() => PreKey::DevOnly,
            None => PreKey::Final,
        }
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| self.release_trimmed().cmp(other.release_trimmed()))
            .then_with(|| self.pre_key().cmp(&other.pre_key()))
            // No post release sorts before any post release.
            .then_with(|| self.post.cmp(&other.post))
            // No dev release sorts after any dev release.
            .then_with(|| match (self.dev, other.dev) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(&b),
            })
            // No local label sorts before any local label; segments compare element-wise.
            .then_with(|| self.local.cmp(&other.local))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.epoch.hash(state);
        self.release_trimmed().hash(state);
        self.pre.hash(state);
        self.post.hash(state);
        self.dev.hash(state);
        self.local.hash(state);
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A comparison operator of a version specifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `==` (with `.*`: prefix match).
    Equal,
    /// `!=` (with `.*`: prefix exclusion).
    NotEqual,
    /// `<=`.
    LessEqual,
    /// `>=`.
    GreaterEqual,
    /// `<` (excludes pre-releases of the given version).
    Less,
    /// `>` (excludes post-releases and local versions of the given version).
    Greater,
    /// `~=` (compatible release).
    Compatible,
    /// `===` (arbitrary string equality).
    Arbitrary,
}

impl Operator {
    /// The operator as written in a specifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Equal => "==",
            Operator::NotEqual => "!=",
            Operator::LessEqual => "<=",
            Operator::GreaterEqual => ">=",
            Operator::Less => "<",
            Operator::Greater => ">",
            Operator::Compatible => "~=",
            Operator::Arbitrary => "===",
        }
    }

    /// Splits a leading operator off `s` (longest match first).
    pub(crate) fn split_prefix(s: &str) -> Option<(Operator, &str)> {
        const OPS: [(&str, Operator); 8] = [
            ("===", Operator::Arbitrary),
            ("==", Operator::Equal),
            ("!=", Operator::NotEqual),
            ("<=", Operator::LessEqual),
            (">=", Operator::GreaterEqual),
            ("~=", Operator::Compatible),
            ("<", Operator::Less),
            (">", Operator::Greater),
        ];
        OPS.iter()
            .find(|(p, _)| s.starts_with(p))
            .map(|(p, op)| (*op, &s[p.len()..]))
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One version specifier such as `>=3.9`, `==1.*` or `~=2.2.0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionSpecifier {
    op: Operator,
    /// The version (for `.*` specifiers: the prefix; unused for `===`).
    version: Version,
    wildcard: bool,
    /// The text after the operator, trimmed (used by `===` and for display).
    text: String,
}

impl VersionSpecifier {
    /// Parses one specifier.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let trimmed = s.trim();
        let invalid = |reason: &str| VersionError::InvalidSpecifier {
            spec: trimmed.to_string(),
            reason: reason.to_string(),
        };
        let (op, rest) = Operator::split_prefix(trimmed)
            .ok_or_else(|| invalid("it must start with one of == != <= >= < > ~= ==="))?;
        let text = rest.trim().to_string();
        if text.is_empty() {
            return Err(invalid("the version is missing"));
        }
        if op == Operator::Arbitrary {
            if text
                .chars()
                .any(|c| c.is_whitespace() || c == ',' || c == ';')
            {
                return Err(invalid("`===` takes a single word"));
            }
            return Ok(VersionSpecifier {
                op,
                version: Version::from_release(&[0]),
                wildcard: false,
                text,
            });
        }
        let (vtext, wildcard) = match text.strip_suffix(".*") {
            Some(prefix) => (prefix, true),
            None => (text.as_str(), false),
        };
        let version = Version::parse(vtext).map_err(|_| invalid("the version is not PEP 440"))?;
        if wildcard {
            if !matches!(op, Operator::Equal | Operator::NotEqual) {
                return Err(invalid("`.*` is only allowed with == and !="));
            }
            if version.pre.is_some()
                || version.post.is_some()
                || version.dev.is_some()
                || !version.local.is_empty()
            {
                return Err(invalid(
                    "`.*` may only follow a release number such as `1.2`",
                ));
            }
        }
        if !version.local.is_empty() && !matches!(op, Operator::Equal | Operator::NotEqual) {
            return Err(invalid(
                "a local version label is only allowed with == and !=",
            ));
        }
        if op == Operator::Compatible && version.release.len() < 2 {
            return Err(invalid(
                "`~=` needs at least two release numbers, e.g. `~=1.4`",
            ));
        }
        Ok(VersionSpecifier {
            op,
            version,
            wildcard,
            text,
        })
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.op
    }

    /// The version compared against (the prefix for `==X.*`/`!=X.*`; meaningless for `===`).
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// Whether this is a `.*` prefix specifier.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// Whether `v` satisfies this specifier (pre-releases allowed).
    pub fn contains(&self, v: &Version) -> bool {
        let spec = &self.version;
        match self.op {
            Operator::Equal if self.wildcard => prefix_match(spec, v),
            Operator::NotEqual if self.wildcard => !prefix_match(spec, v),
            Operator::Equal => {
                if spec.local.is_empty() {
                    v.public() == *spec
                } else {
                    v == spec
                }
            }
            Operator::NotEqual => {
                if spec.local.is_empty() {
                    v.public() != *spec
                } else {
                    v != spec
                }
            }
            Operator::LessEqual => v.public() <= *spec,
            Operator::GreaterEqual => v.public() >= *spec,
            Operator::Less => {
                // `<V` excludes V's own pre-releases unless V is one: everything must sort below
                // `V.dev0` (PEP 440; `packaging` ≥ 26 computes the same bound).
                if spec.is_prerelease() {
                    v < spec
                } else {
                    let bound = Version {
                        dev: Some(0),
                        local: Vec::new(),
                        ..spec.clone()
                    };
                    *v < bound
                }
            }
            Operator::Greater => {
                if v <= spec {
                    return false;
                }
                if spec.dev.is_some() || spec.post.is_some() {
                    // Only V's local versions sit between V and the next possible version.
                    return v.public() > *spec;
                }
                // `>V` excludes V's local versions and V's post-releases (and their dev releases):
                // everything with V's epoch, release and pre-release.
                !(v.epoch == spec.epoch
                    && v.release_trimmed() == spec.release_trimmed()
                    && v.pre == spec.pre)
            }
            Operator::Compatible => {
                let prefix_len = spec.release.len() - 1;
                let prefix = Version {
                    epoch: spec.epoch,
                    release: spec.release[..prefix_len].to_vec(),
                    pre: None,
                    post: None,
                    dev: None,
                    local: Vec::new(),
                };
                v.public() >= *spec && prefix_match(&prefix, v)
            }
            Operator::Arbitrary => v.to_string().eq_ignore_ascii_case(&self.text),
        }
    }
}

/// `==prefix.*`: same epoch and the release, padded with zeros, starts with the prefix's release.
fn prefix_match(prefix: &Version, v: &Version) -> bool {
    if v.epoch != prefix.epoch {
        return false;
    }
    prefix
        .release
        .iter()
        .enumerate()
        .all(|(i, p)| v.release.get(i).copied().unwrap_or(0) == *p)
}

impl FromStr for VersionSpecifier {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VersionSpecifier::parse(s)
    }
}

impl fmt::Display for VersionSpecifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            Operator::Arbitrary => write!(f, "==={}", self.text),
            _ if self.wildcard => write!(f, "{}{}.*", self.op, self.version),
            _ => write!(f, "{}{}", self.op, self.version),
        }
    }
}

/// A comma-separated list of specifiers that must all hold; empty means "any version".
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct VersionSpecifiers(Vec<VersionSpecifier>);

impl VersionSpecifiers {
    /// Parses `>=1.0, <2`; an empty (or all-whitespace) string gives the empty list.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        if s.trim().is_empty() {
            return Ok(VersionSpecifiers(Vec::new()));
        }
        s.split(',')
            .map(VersionSpecifier::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(VersionSpecifiers)
    }

    /// Whether `v` satisfies every specifier (pre-releases allowed).
    pub fn contains(&self, v: &Version) -> bool {
        self.0.iter().all(|s| s.contains(v))
    }

    /// The specifiers.
    pub fn iter(&self) -> std::slice::Iter<'_, VersionSpecifier> {
        self.0.iter()
    }

    /// Whether there is no specifier at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for VersionSpecifiers {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VersionSpecifiers::parse(s)
    }
}

impl fmt::Display for VersionSpecifiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

impl From<Vec<VersionSpecifier>> for VersionSpecifiers {
    fn from(v: Vec<VersionSpecifier>) -> Self {
        VersionSpecifiers(v)
    }
}

impl<'a> IntoIterator for &'a VersionSpecifiers {
    type Item = &'a VersionSpecifier;
    type IntoIter = std::slice::Iter<'a, VersionSpecifier>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// True when two version strings denote the same PEP 440 version (`1.0` == `1.0.0`, `1.0-1` ==
/// `1.0.post1`, `2.0RC1` == `2.0rc1`); when either is not a valid PEP 440 version (or has a number
/// too large for a `u64`), the two are compared as trimmed, case-insensitive strings.
///
/// This is how a wheel's file name, `.dist-info` directory and `METADATA` are checked against each
/// other and against the version a lockfile pins.
///
/// ```
/// use rbuild_python::version::versions_equal;
/// assert!(versions_equal("1.0", "1.0.0"));
/// assert!(versions_equal("2.0RC1", "2.0rc1"));
/// assert!(versions_equal("1.0-1", "1.0.post1"));
/// assert!(!versions_equal("1.0", "1.0.1"));
/// assert!(versions_equal("not a version", "Not A Version"));
/// ```
pub fn versions_equal(a: &str, b: &str) -> bool {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn normalizes_like_pep440() {
        let cases = [
            ("1.0", "1.0"),
            ("v1.0", "1.0"),
            (" 1.0\n", "1.0"),
            ("1.0.post1", "1.0.post1"),
            ("1.0-1", "1.0.post1"),
            ("1.0post", "1.0.post0"),
            ("1.0.r2", "1.0.post2"),
            ("1.0-rev3", "1.0.post3"),
            ("2.0rc1", "2.0rc1"),
            ("2.0c1", "2.0rc1"),
            ("2.0-pre.1", "2.0rc1"),
            ("2.0preview2", "2.0rc2"),
            ("2.0.alpha", "2.0a0"),
            ("2.0BETA3", "2.0b3"),
            ("1!2.0", "1!2.0"),
            ("0!2.0", "2.0"),
            ("1.0.dev", "1.0.dev0"),
            ("1.0-dev-2", "1.0.dev2"),
            ("1.0+abc", "1.0+abc"),
            ("1.0+ABC-1_2", "1.0+abc.1.2"),
            ("1.0+007", "1.0+7"),
            ("1.01.002", "1.1.2"),
            ("1.0a1.post2.dev3", "1.0a1.post2.dev3"),
        ];
        for (input, want) in cases {
            assert_eq!(v(input).to_string(), want, "{input}");
        }
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "", "1.", ".1", "1..0", "a", "1.0+", "1.0+a..b", "1.0-", "1.0 0", "1.0final", "1,0",
            "1.0.x", "1!", "!1", "1.0+a+b",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn orders_like_the_spec_example() {
        // The ordering example of PEP 440's "Summary of permitted suffixes and relative ordering".
        let ordered = [
            "1.dev0",
            "1.0.dev456",
            "1.0a1",
            "1.0a2.dev456",
            "1.0a12.dev456",
            "1.0a12",
            "1.0b1.dev456",
            "1.0b2",
            "1.0b2.post345.dev456",
            "1.0b2.post345",
            "1.0rc1.dev456",
            "1.0rc1",
            "1.0",
            "1.0+abc.5",
            "1.0+abc.7",
            "1.0+5",
            "1.0.post456.dev34",
            "1.0.post456",
            "1.0.15",
            "1.1.dev1",
            "1!0.1",
        ];
        for w in ordered.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
            assert!(v(w[1]) > v(w[0]), "{} > {}", w[1], w[0]);
        }
        assert_eq!(v("1.0"), v("1.0.0.0"));
        assert_eq!(v("0"), v("0.0"));
        assert_ne!(v("1.0"), v("1.0+0"));
        assert!(v("1.0+a") < v("1.0+a.0"));
    }

    fn contains(spec: &str, version: &str) -> bool {
        spec.parse::<VersionSpecifiers>()
            .unwrap()
            .contains(&v(version))
    }

    #[test]
    fn specifiers_follow_pep440() {
        let yes = [
            ("==1.0", "1.0.0"),
            ("==1.0", "1.0+local"),
            ("==1.0+local", "1.0+local"),
            ("==1.*", "1.9"),
            ("==1.*", "1.0rc1"),
            ("==1.1.*", "1.1"),
            ("==1.0.*", "1"),
            ("==1!1.*", "1!1.2"),
            ("!=1.1.*", "1.2"),
            ("!=1.0", "1.1"),
            ("<=2.0", "2.0+abc"),
            (">=2.0", "2.0+abc"),
            (">=2.0", "2.0.post1"),
            ("<2.0", "1.9"),
            ("<2.0rc1", "2.0b1"),
            (">2.0", "2.1"),
            (">2.0.post1", "2.0.post2"),
            ("~=2.2", "2.3"),
            ("~=2.2", "2.2"),
            ("~=1.4.5", "1.4.9"),
            ("~=2.2.post3", "2.2.post4"),
            ("~=1.4.5a4", "1.4.5"),
            ("===1.0", "1.0"),
            (">=3.8, <4", "3.12.1"),
            ("", "0.1"),
            (">=3.11", "3.12.0rc1"),
            // PEP 440's exclusive comparisons only exclude V's own family.
            (">1.0.post1", "1.0.post2+abc"),
            (">1.0rc1", "1.0.post1"),
            ("<1.0.post1", "1.0rc1"),
            (">1.0.dev1", "1.0.dev2"),
        ];
        for (s, ver) in yes {
            assert!(contains(s, ver), "{ver} should satisfy {s}");
        }
        let no = [
            ("==1.0", "1.0.1"),
            ("==1.0+local", "1.0"),
            ("==1.0+local", "1.0+other"),
            ("==1.*", "2.0"),
            ("==1.1.*", "1.10"),
            ("==1!1.*", "1.2"),
            ("!=1.1.*", "1.1.5"),
            ("!=1.0", "1.0+abc"),
            ("<2.0", "2.0b1"),
            ("<2.0", "2.0.dev1"),
            ("<2.0", "2.0"),
            (">2.0", "2.0.post1"),
            (">2.0", "2.0.post1.dev1"),
            (">1.0.dev1", "1.0.dev1+local"),
            ("<1.0.post1", "1.0.post1.dev0"),
            (">2.0", "2.0+abc"),
            (">2.0", "2.0"),
            ("~=2.2", "3.0"),
            ("~=1.4.5", "1.5.0"),
            ("~=1.4.5", "1.4.4"),
            ("===1.0", "1.0.0"),
            (">=3.8, <4", "4.0"),
        ];
        for (s, ver) in no {
            assert!(!contains(s, ver), "{ver} should not satisfy {s}");
        }
    }

    #[test]
    fn rejects_invalid_specifiers() {
        for bad in [
            "1.0",
            ">=",
            "=>1.0",
            "~=1",
            "~=1.*",
            ">=1.*",
            "<1.0+local",
            "==1.0a1.*",
            "== 1.0 2",
            "==1.0,",
            "=== a b",
        ] {
            assert!(
                VersionSpecifiers::parse(bad).is_err(),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn specifier_display_round_trips() {
        let s: VersionSpecifiers = " >= 1.0 , != 1.5.* ,<2.0rc1,===foo".parse().unwrap();
        assert_eq!(s.to_string(), ">=1.0,!=1.5.*,<2.0rc1,===foo");
        assert_eq!(s.to_string().parse::<VersionSpecifiers>().unwrap(), s);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = Version::parse(&s);
            let _ = VersionSpecifiers::parse(&s);
        }

        #[test]
        fn the_plain_release_fast_path_reads_what_the_grammar_reads(
            s in "[0-9.]{0,12}|[0-9]{18,22}(\\.[0-9]{1,3}){0,2}|v?[0-9.]{1,6}(rc1|\\.post2|\\+local| )?"
        ) {
            let fast = Version::parse(&s);
            let general = Version::parse_general(&s);
            match (&fast, &general) {
                (Ok(a), Ok(b)) => {
                    proptest::prop_assert_eq!(a.release(), b.release());
                    proptest::prop_assert_eq!(a.to_string(), b.to_string());
                    proptest::prop_assert_eq!(
                        (a.epoch(), a.pre(), a.post(), a.dev(), a.local()),
                        (b.epoch(), b.pre(), b.post(), b.dev(), b.local())
                    );
                }
                (Err(a), Err(b)) => proptest::prop_assert_eq!(a, b),
                _ => proptest::prop_assert!(false, "{s:?}: fast {fast:?}, general {general:?}"),
            }
        }

        #[test]
        fn display_is_a_fixed_point(
            epoch in proptest::option::of(0u64..3),
            release in proptest::collection::vec(0u64..20, 1..4),
            pre in proptest::option::of((0usize..3, 0u64..5)),
            post in proptest::option::of(0u64..5),
            dev in proptest::option::of(0u64..5),
        ) {
            let mut s = String::new();
            if let Some(e) = epoch { s.push_str(&format!("{e}!")); }
            s.push_str(&release.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("."));
            if let Some((k, n)) = pre { s.push_str(&format!("{}{n}", ["a", "b", "rc"][k])); }
            if let Some(n) = post { s.push_str(&format!(".post{n}")); }
            if let Some(n) = dev { s.push_str(&format!(".dev{n}")); }
            let parsed = Version::parse(&s).unwrap();
            let again = Version::parse(&parsed.to_string()).unwrap();
            proptest::prop_assert_eq!(&parsed, &again);
            proptest::prop_assert_eq!(parsed.to_string(), again.to_string());
        }
    }

    #[test]
    fn versions_equal_follows_pep440_then_text() {
        assert!(versions_equal("v1.0", "1"));
        assert!(versions_equal("1!2.0", "1!2"));
        assert!(!versions_equal("1!2.0", "2.0"));
        assert!(versions_equal("1.0a1", "1.0alpha1"));
        assert!(versions_equal("1.0a", "1.0a0"));
        assert!(versions_equal("1.0.dev", "1.0dev0"));
        assert!(versions_equal("1.0+Ubuntu-1", "1.0+ubuntu.1"));
        assert!(versions_equal("1.0+abc.01", "1.0+abc.1"));
        assert!(!versions_equal("1.0+abc", "1.0"));
        assert!(!versions_equal("1.0rc1", "1.0"));
        assert!(!versions_equal("1.0.post1", "1.0"));
        assert!(versions_equal("01.002", "1.2"));
        assert!(versions_equal("2026.09.01", "2026.9.1"));
        assert!(versions_equal(" 1.0 ", "1.0"));
        assert!(versions_equal("not a version", "Not A Version"));
        assert!(!versions_equal("1.0", "1.0."));
    }

    /// rbuild-wheel's former private parser compared release numbers of any length as digit
    /// strings; this one reads them as `u64`, so a number beyond `u64` is not a version and
    /// two spellings of it only match as identical text. The stricter answer: never equal by
    /// accident.
    #[test]
    fn versions_equal_with_huge_numbers_compares_text() {
        assert!(!versions_equal(
            "1.18446744073709551616",
            "1.018446744073709551616"
        ));
        assert!(versions_equal(
            "1.18446744073709551616",
            "1.18446744073709551616"
        ));
    }
}
