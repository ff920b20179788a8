//! Wheel file names: `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
//!
//! Each of the three tag fields may be a *compressed tag set* (`py2.py3`), and the wheel supports every
//! combination; [`WheelFilename::tags`] is that expanded set.
//!
//! ```
//! use rbuild_python::wheel_name::WheelFilename;
//! let w = WheelFilename::parse("six-1.16.0-py2.py3-none-any.whl").unwrap();
//! assert_eq!(w.name, "six");
//! assert_eq!(w.version.to_string(), "1.16.0");
//! let tags: Vec<String> = w.tags.iter().map(|t| t.to_string()).collect();
//! assert_eq!(tags, ["py2-none-any", "py3-none-any"]);
//! assert!(WheelFilename::parse("../evil-1.0-py3-none-any.whl").is_err());
//! ```

use std::fmt;

use crate::name::{normalize_name, validate_name};
use crate::version::Version;

/// A wheel file name that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{filename}` is not a valid wheel file name: {reason}")]
pub struct WheelNameError {
    /// The file name as given.
    pub filename: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One compatibility tag triple, lowercased (`cp312-abi3-manylinux_2_17_x86_64`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WheelTag {
    /// The Python tag (`cp312`, `py3`).
    pub interpreter: String,
    /// The ABI tag (`cp312`, `abi3`, `none`).
    pub abi: String,
    /// The platform tag (`manylinux_2_17_x86_64`, `any`).
    pub platform: String,
}

impl WheelTag {
    /// A tag from its three parts (lowercased).
    pub fn new(interpreter: &str, abi: &str, platform: &str) -> Self {
        WheelTag {
            interpreter: interpreter.to_ascii_lowercase(),
            abi: abi.to_ascii_lowercase(),
            platform: platform.to_ascii_lowercase(),
        }
    }

    /// Parses `py3-none-any`; a compressed tag set gives several tags.
    pub fn parse_set(s: &str) -> Option<Vec<WheelTag>> {
        let parts: Vec<&str> = s.split('-').collect();
        if parts.len() != 3 {
            return None;
        }
        expand(parts[0], parts[1], parts[2])
    }
}

impl fmt::Display for WheelTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.interpreter, self.abi, self.platform)
    }
}

fn expand(py: &str, abi: &str, plat: &str) -> Option<Vec<WheelTag>> {
    let split = |s: &str| -> Option<Vec<String>> {
        let v: Vec<String> = s.split('.').map(|p| p.to_ascii_lowercase()).collect();
        if v.iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return None;
        }
        Some(v)
    };
    let (pys, abis, plats) = (split(py)?, split(abi)?, split(plat)?);
    if pys.len() * abis.len() * plats.len() > 4096 {
        return None;
    }
    let mut out = Vec::new();
    for p in &pys {
        for a in &abis {
            for pl in &plats {
                let t = WheelTag {
                    interpreter: p.clone(),
                    abi: a.clone(),
                    platform: pl.clone(),
                };
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
    }
    Some(out)
}

/// The optional build tag: a number, then an optional string (`1` or `2b`); sorts numerically first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BuildTag {
    /// The leading number.
    pub number: u64,
    /// What follows the number (often empty).
    pub suffix: String,
}

/// A parsed wheel file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelFilename {
    /// The file name as given.
    pub filename: String,
    /// The distribution name, normalized per PEP 503.
    pub name: String,
    /// The version.
    pub version: Version,
    /// The build tag, if any.
    pub build: Option<BuildTag>,
    /// The expanded tag set, in the order the compressed sets list them.
    pub tags: Vec<WheelTag>,
}

impl WheelFilename {
    /// Parses a wheel file name (no directory part).
    pub fn parse(filename: &str) -> Result<Self, WheelNameError> {
        let err = |reason: &str| WheelNameError {
            filename: filename.to_string(),
            reason: reason.to_string(),
        };
        if filename.contains(['/', '\\']) {
            return Err(err("it contains a path separator"));
        }
        let stem = filename
            .strip_suffix(".whl")
            .ok_or_else(|| err("it does not end in `.whl`"))?;
        let parts: Vec<&str> = stem.split('-').collect();
        if parts.len() != 5 && parts.len() != 6 {
            return Err(err(
                "expected `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl` (4 or 5 dashes)",
            ));
        }
        let name_part = parts[0];
        if name_part.contains("__") {
            return Err(err("the name part contains `__`"));
        }
        validate_name(name_part).map_err(|e| err(&format!("bad name: {}", e.reason)))?;
        let version = Version::parse(parts[1])
            .map_err(|_| err(&format!("`{}` is not a PEP 440 version", parts[1])))?;
        let build = if parts.len() == 6 {
            let b = parts[2];
            let digits = b.bytes().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return Err(err("the build tag must start with a digit"));
            }
            let number = b[..digits]
                .parse::<u64>()
                .map_err(|_| err("the build number is too large"))?;
            Some(BuildTag {
                number,
                suffix: b[digits..].to_string(),
            })
        } else {
            None
        };
        let n = parts.len();
        let tags = expand(parts[n - 3], parts[n - 2], parts[n - 1]).ok_or_else(|| {
            err("a compatibility tag is empty or has characters other than letters, digits and `_`")
        })?;
        Ok(WheelFilename {
            filename: filename.to_string(),
            name: normalize_name(name_part),
            version,
            build,
            tags,
        })
    }
}

impl WheelFilename {
    /// The name part exactly as the file name spells it (`Typing_Extensions`), which names the
    /// wheel's `{name}-{version}.data` directory; [`WheelFilename::name`] is the normalized form.
    pub fn name_as_written(&self) -> &str {
        self.filename.split('-').next().unwrap_or_default()
    }

    /// The version part exactly as the file name spells it (`1.0RC1`);
    /// [`WheelFilename::version`] is the parsed form.
    pub fn version_as_written(&self) -> &str {
        self.filename.split('-').nth(1).unwrap_or_default()
    }
}

impl fmt::Display for WheelFilename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.filename)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_names() {
        let w = WheelFilename::parse(
            "numpy-2.1.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        )
        .unwrap();
        assert_eq!(w.name, "numpy");
        assert_eq!(w.version, "2.1.3".parse().unwrap());
        assert_eq!(w.build, None);
        let tags: Vec<String> = w.tags.iter().map(|t| t.to_string()).collect();
        assert_eq!(
            tags,
            [
                "cp312-cp312-manylinux_2_17_x86_64",
                "cp312-cp312-manylinux2014_x86_64"
            ]
        );

        let w = WheelFilename::parse("Typing_Extensions-4.12.2-1b-py3-none-any.whl").unwrap();
        assert_eq!(w.name, "typing-extensions");
        assert_eq!(
            w.build,
            Some(BuildTag {
                number: 1,
                suffix: "b".into()
            })
        );
        assert_eq!(w.tags, vec![WheelTag::new("py3", "none", "any")]);
        assert_eq!(w.name_as_written(), "Typing_Extensions");
        assert_eq!(w.version_as_written(), "4.12.2");
    }

    /// rbuild-wheel used to carry a lenient parser of its own, which accepted any name and
    /// version text; this one is the only parser now, so these are refused everywhere.
    #[test]
    fn refuses_what_the_lenient_parser_accepted() {
        for bad in [
            "pkg-notaversion-py3-none-any.whl",
            "pkg-1.0-py3-none-any!.whl",
            "p\u{e4}ckage-1.0-py3-none-any.whl",
            "pkg_-1.0-py3-none-any.whl",
        ] {
            assert!(WheelFilename::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "six-1.16.0-py2.py3-none-any.zip",
            "six-1.16.0-none-any.whl",
            "six-1.16.0-1-2-py3-none-any.whl",
            "six-notaversion-py3-none-any.whl",
            "six-1.0-x1-py3-none-any.whl",
            "six-1.0-py3..py2-none-any.whl",
            "six-1.0-py3-none-.whl",
            "six__x-1.0-py3-none-any.whl",
            "../six-1.0-py3-none-any.whl",
            "dir/six-1.0-py3-none-any.whl",
            ".-1.0-py3-none-any.whl",
        ] {
            let e = WheelFilename::parse(bad);
            assert!(e.is_err(), "{bad} should be rejected");
        }
        let msg = WheelFilename::parse("six-1.0-py3-any.whl")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("six-1.0-py3-any.whl") && msg.contains("dashes"),
            "{msg}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn never_panics(s in "[a-z0-9._+!-]{0,40}(\\.whl)?") {
            let _ = WheelFilename::parse(&s);
        }
    }
}
