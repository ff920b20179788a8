//! PEP 508 requirement strings: `name[extra1,extra2] (>=1, <2) ; marker` or `name @ url ; marker`.
//!
//! ```
//! use rbuild_python::requirement::Requirement;
//! let r = Requirement::parse(r#"Uvicorn[Standard]>=0.30 ; python_version >= "3.9""#).unwrap();
//! assert_eq!(r.name, "uvicorn");
//! assert_eq!(r.extras, ["standard"]);
//! assert_eq!(r.specifiers.to_string(), ">=0.30");
//! assert!(r.marker.is_some());
//! let r = Requirement::parse("pkg @ https://example.com/pkg-1.0-py3-none-any.whl").unwrap();
//! assert_eq!(r.url.as_deref(), Some("https://example.com/pkg-1.0-py3-none-any.whl"));
//! ```

use std::fmt;

use crate::markers::{MarkerError, MarkerTree};
use crate::name::{normalize_name, validate_name};
use crate::version::VersionSpecifiers;

/// A requirement string that does not follow PEP 508.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid requirement `{input}`: {message}")]
pub struct RequirementError {
    /// The requirement as written.
    pub input: String,
    /// What is wrong.
    pub message: String,
}

/// A parsed PEP 508 requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The distribution name, normalized per PEP 503.
    pub name: String,
    /// The name as written.
    pub raw_name: String,
    /// The requested extras, normalized, in the order written, without duplicates.
    pub extras: Vec<String>,
    /// The version specifiers (empty when there are none or for a URL requirement).
    pub specifiers: VersionSpecifiers,
    /// The URL of a direct reference (`name @ url`).
    pub url: Option<String>,
    /// The environment marker after `;`, if any.
    pub marker: Option<MarkerTree>,
}

impl Requirement {
    /// Parses a PEP 508 requirement string.
    pub fn parse(input: &str) -> Result<Self, RequirementError> {
        let err = |message: String| RequirementError {
            input: input.to_string(),
            message,
        };
        let s = input.trim();
        let name_len = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
            .unwrap_or(s.len());
        let raw_name = &s[..name_len];
        validate_name(raw_name).map_err(|e| err(e.to_string()))?;
        let mut rest = s[name_len..].trim_start();

        let mut extras = Vec::new();
        if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| err("missing `]` after the extras".into()))?;
            for e in r[..end].split(',') {
                let e = e.trim();
                if e.is_empty() {
                    if r[..end].trim().is_empty() {
                        break;
                    }
                    return Err(err("empty extra name".into()));
                }
                validate_name(e).map_err(|x| err(format!("extra: {x}")))?;
                let n = normalize_name(e);
                if !extras.contains(&n) {
                    extras.push(n);
                }
            }
            rest = r[end + 1..].trim_start();
        }

        let mut url = None;
        let mut specifiers = VersionSpecifiers::default();
        let marker_text;
        if let Some(r) = rest.strip_prefix('@') {
            let r = r.trim_start();
            let end = r.find(char::is_whitespace).unwrap_or(r.len());
            let u = &r[..end];
            if u.is_empty() {
                return Err(err("missing URL after `@`".into()));
            }
            url = Some(u.to_string());
            let after = r[end..].trim_start();
            marker_text = match after.strip_prefix(';') {
                Some(m) => Some(m),
                None if after.is_empty() => None,
                None => return Err(err(format!("unexpected `{after}` after the URL"))),
            };
        } else {
            let (spec_part, m) = match rest.find(';') {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            marker_text = m;
            let mut spec = spec_part.trim();
            if let Some(inner) = spec.strip_prefix('(') {
                spec = inner
                    .strip_suffix(')')
                    .ok_or_else(|| err("missing `)` after the version specifiers".into()))?;
            }
            if !spec.trim().is_empty() {
                specifiers = VersionSpecifiers::parse(spec).map_err(|e| err(e.to_string()))?;
            }
        }

        let marker = match marker_text {
            Some(m) if m.trim().is_empty() => return Err(err("empty marker after `;`".into())),
            Some(m) => Some(MarkerTree::parse(m).map_err(|e: MarkerError| err(e.to_string()))?),
            None => None,
        };
        Ok(Requirement {
            name: normalize_name(raw_name),
            raw_name: raw_name.to_string(),
            extras,
            specifiers,
            url,
            marker,
        })
    }
}

impl std::str::FromStr for Requirement {
    type Err = RequirementError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Requirement::parse(s)
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.extras.is_empty() {
            write!(f, "[{}]", self.extras.join(","))?;
        }
        if let Some(u) = &self.url {
            write!(f, " @ {u}")?;
            if self.marker.is_some() {
                f.write_str(" ")?;
            }
        } else {
            write!(f, "{}", self.specifiers)?;
        }
        if let Some(m) = &self.marker {
            write!(f, "; {m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        let r = Requirement::parse("requests").unwrap();
        assert_eq!(
            (r.name.as_str(), r.extras.len(), r.specifiers.is_empty()),
            ("requests", 0, true)
        );

        let r = Requirement::parse(
            "Foo_Bar [Security , tests] (>=2.8.1, ==2.8.*) ; python_version < \"2.7\"",
        )
        .unwrap();
        assert_eq!(r.name, "foo-bar");
        assert_eq!(r.raw_name, "Foo_Bar");
        assert_eq!(r.extras, ["security", "tests"]);
        assert_eq!(r.specifiers.to_string(), ">=2.8.1,==2.8.*");
        assert_eq!(r.marker.unwrap().to_string(), "python_version < \"2.7\"");

        let r = Requirement::parse("name>=3;os_name=='a'").unwrap();
        assert_eq!(r.specifiers.to_string(), ">=3");
        assert!(r.marker.is_some());

        let r = Requirement::parse("name@http://foo.com ; python_version=='3.9'").unwrap();
        assert_eq!(r.url.as_deref(), Some("http://foo.com"));
        assert!(r.marker.is_some());

        let r = Requirement::parse("pkg[]==1.0").unwrap();
        assert!(r.extras.is_empty());
    }

    #[test]
    fn rejects_bad() {
        for bad in [
            "",
            "../x",
            "x/y==1",
            "name[",
            "name[a,,b]",
            "name (>=1",
            "name >= 1 ; ",
            "name == 1 ; bogus == 'x'",
            "name @",
            "name @ http://x/y.whl garbage",
            "name ==",
        ] {
            assert!(Requirement::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = Requirement::parse(&s);
        }

        #[test]
        fn never_panics_on_requirement_like(s in "[a-zA-Z_.-]{1,8}( ?\\[[a-z, ]{0,8}\\]?)?( ?[<>=!~]{1,3} ?[0-9.*a-z+]{0,8}(,[<>=]{1,2}[0-9.]{1,4})?)?( ?@ ?[a-z:/.]{0,10})?( ?; ?[a-z_ .()=<>'\"]{0,30})?") {
            if let Ok(r) = Requirement::parse(&s) {
                // Whatever parses must print as something that parses to the same requirement.
                let again = Requirement::parse(&r.to_string());
                proptest::prop_assert!(again.is_ok(), "{} -> {}", s, r);
            }
        }
    }
}
