//! The dependency part of a distribution's core metadata (`*.dist-info/METADATA`): `Name`,
//! `Version`, every `Requires-Dist`, every `Provides-Extra` and `Requires-Python`.
//!
//! `METADATA` is an RFC 822 style header block followed by an optional body (the long
//! description), read here as Python's `email` parser with the `compat32` policy reads it (which
//! is what `importlib.metadata` and `packaging.metadata` use):
//!
//! - header names are case-insensitive (`requires-dist:` is `Requires-Dist:`);
//! - a line starting with a space or tab continues the previous header; the value is unfolded
//!   (the line break is removed, the leading whitespace of the continuation kept);
//! - the header block ends at the first empty line (or a line that is neither a header nor a
//!   continuation), so a `Requires-Dist:` inside the description is not a requirement;
//! - leading spaces and tabs of a value are dropped, and trailing ones too (as
//!   `packaging.metadata` strips them);
//! - lines end with `\n` or `\r\n`.
//!
//! [`read_wheel_metadata`] reads this from a wheel file on disk without installing it: only the
//! zip's central directory and the one `METADATA` member are read (for a dependency layer that
//! is cached, so that the installer does not run). [`crate::install_wheels`] reports the same for
//! each wheel it installs ([`crate::InstalledDistribution::core_metadata`]).
//!
//! ```
//! use rbuild_wheel::CoreMetadata;
//! let text = "Metadata-Version: 2.1\nName: redis\nVersion: 5.2.1\n\
//!             Requires-Dist: async-timeout>=4.0.3; python_full_version < \"3.11.3\"\n\
//!             Provides-Extra: hiredis\nrequires-dist: hiredis>=3.0.0;\n  extra == \"hiredis\"\n\n\
//!             Requires-Dist: this is the description\n";
//! let m = CoreMetadata::parse(text).unwrap();
//! assert_eq!((m.name.as_str(), m.version.as_str()), ("redis", "5.2.1"));
//! assert_eq!(m.requires_dist, [
//!     "async-timeout>=4.0.3; python_full_version < \"3.11.3\"",
//!     "hiredis>=3.0.0;  extra == \"hiredis\"",
//! ]);
//! assert_eq!(m.provides_extra, ["hiredis"]);
//! ```

use std::fs::File;
use std::io::Read;
use std::path::Path;

use zip::ZipArchive;

use crate::Error;
use crate::{WheelFilename, normalize_name};

/// The largest `METADATA` read (the same bound the installer uses for its metadata files).
const METADATA_LIMIT: u64 = 64 << 20;

/// What a distribution needs, from its core metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreMetadata {
    /// `Name`, as written (trimmed).
    pub name: String,
    /// `Version`, as written (trimmed).
    pub version: String,
    /// Every `Requires-Dist` value (PEP 508 requirement strings), in file order, unfolded and
    /// trimmed.
    pub requires_dist: Vec<String>,
    /// Every `Provides-Extra` value, in file order, as written (trimmed).
    pub provides_extra: Vec<String>,
    /// `Requires-Python`, if present.
    pub requires_python: Option<String>,
}

impl CoreMetadata {
    /// Reads the header block of a `METADATA` text. Fails (with what is wrong) when `Name` or
    /// `Version` is missing or empty.
    pub fn parse(text: &str) -> Result<CoreMetadata, String> {
        let mut out = CoreMetadata::default();
        let mut name = None;
        let mut version = None;
        for (key, value) in headers(text) {
            let value = value.trim_matches([' ', '\t']).to_string();
            if key.eq_ignore_ascii_case("Name") {
                name.get_or_insert(value);
            } else if key.eq_ignore_ascii_case("Version") {
                version.get_or_insert(value);
            } else if key.eq_ignore_ascii_case("Requires-Dist") {
                if !value.is_empty() {
                    out.requires_dist.push(value);
                }
            } else if key.eq_ignore_ascii_case("Provides-Extra") {
                if !value.is_empty() {
                    out.provides_extra.push(value);
                }
            } else if key.eq_ignore_ascii_case("Requires-Python") {
                out.requires_python.get_or_insert(value);
            }
        }
        out.name = name
            .filter(|n| !n.is_empty())
            .ok_or("it has no Name header")?;
        out.version = version
            .filter(|v| !v.is_empty())
            .ok_or("it has no Version header")?;
        Ok(out)
    }
}

/// Every header of the header block of `text`, in order, with unfolded values (leading spaces
/// and tabs of the first line removed; see the module docs).
pub(crate) fn headers(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            match current.as_mut() {
                Some((_, v)) => v.push_str(line),
                // A continuation before any header: compat32 treats it as a defect and
                // ends the headers.
                None => break,
            }
            continue;
        }
        out.extend(current.take());
        match line.split_once(':') {
            Some((k, v)) if !k.is_empty() && !k.contains([' ', '\t']) => {
                current = Some((k.to_string(), v.trim_start_matches([' ', '\t']).to_string()));
            }
            _ => break,
        }
    }
    out.extend(current);
    out
}

/// Reads the core metadata of the wheel at `path` (its file name `filename` names the
/// distribution; the content store path does not). Only the zip central directory and the
/// `{name}-{version}.dist-info/METADATA` member are read, streamed up to 64 MiB; nothing is
/// verified against `RECORD` (the wheel is expected to be one the store verified by hash).
pub fn read_wheel_metadata(path: &Path, filename: &str) -> Result<CoreMetadata, Error> {
    let invalid = |reason: String| Error::InvalidWheel {
        wheel: filename.to_string(),
        reason,
    };
    let fname = WheelFilename::parse(filename).map_err(|e| invalid(e.to_string()))?;
    let file = File::open(path).map_err(|source| Error::Io {
        wheel: filename.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    let zip_err = |member: Option<&str>, source| Error::Zip {
        wheel: filename.to_string(),
        member: member.map(str::to_string),
        source,
    };
    let mut archive = ZipArchive::new(file).map_err(|e| zip_err(None, e))?;

    // `<dir>.dist-info/METADATA` at the top; when there are several, the one whose directory
    // names this distribution.
    let want = normalize_name(&fname.name);
    let mut candidates: Vec<(usize, String)> = Vec::new();
    for index in 0..archive.len() {
        let entry = archive.by_index_data(index).map_err(|e| zip_err(None, e))?;
        let Ok(name) = std::str::from_utf8(entry.name_raw()) else {
            continue;
        };
        if let Some(dir) = name.strip_suffix(".dist-info/METADATA")
            && !dir.is_empty()
            && !dir.contains('/')
        {
            candidates.push((index, name.to_string()));
        }
    }
    let chosen = match candidates.as_slice() {
        [] => return Err(invalid("it has no *.dist-info/METADATA".into())),
        [one] => one.clone(),
        many => many
            .iter()
            .find(|(_, n)| {
                n.split_once(".dist-info/")
                    .and_then(|(d, _)| d.rsplit_once('-'))
                    .is_some_and(|(dn, _)| normalize_name(dn) == want)
            })
            .cloned()
            .ok_or_else(|| {
                invalid(format!(
                    "it has {} .dist-info directories and none is for {}",
                    many.len(),
                    fname.name
                ))
            })?,
    };
    let (index, member) = chosen;
    let mut entry = archive
        .by_index(index)
        .map_err(|e| zip_err(Some(&member), e))?;
    if entry.size() > METADATA_LIMIT {
        return Err(invalid(format!("{member} is larger than 64 MiB")));
    }
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    (&mut entry)
        .take(METADATA_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| zip_err(Some(&member), e.into()))?;
    let bad = |reason: String| Error::InvalidMetadata {
        wheel: filename.to_string(),
        file: "METADATA".to_string(),
        reason,
    };
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
    CoreMetadata::parse(&text).map_err(|r| bad(r.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_requirements_case_and_folding() {
        let text = "Metadata-Version: 2.1\r\nNAME:  Foo_Bar \r\nversion: 1.0\r\n\
                    Requires-Dist: a>=1\r\nREQUIRES-DIST: b\r\n\t; python_version < \"3.9\"\r\n\
                    Provides-Extra: Socks\r\nprovides-extra: use_chardet_on_py3\r\n\
                    Requires-Python: >=3.8\r\nRequires-Dist:\r\n\r\n\
                    Requires-Dist: c\r\n";
        let m = CoreMetadata::parse(text).unwrap();
        assert_eq!(m.name, "Foo_Bar");
        assert_eq!(m.version, "1.0");
        assert_eq!(m.requires_dist, ["a>=1", "b\t; python_version < \"3.9\""]);
        assert_eq!(m.provides_extra, ["Socks", "use_chardet_on_py3"]);
        assert_eq!(m.requires_python.as_deref(), Some(">=3.8"));
    }

    #[test]
    fn headers_end_at_the_body_or_a_non_header_line() {
        let text = "Name: x\nVersion: 1\nRequires-Dist: a\nnot a header\nRequires-Dist: b\n";
        assert_eq!(CoreMetadata::parse(text).unwrap().requires_dist, ["a"]);
        let text = "Name: x\nVersion: 1\n\nRequires-Dist: b\n";
        assert!(CoreMetadata::parse(text).unwrap().requires_dist.is_empty());
        // The first Name/Version win, as `msg["Name"]` does.
        let text = "Name: x\nName: y\nVersion: 1\nVersion: 2\n";
        let m = CoreMetadata::parse(text).unwrap();
        assert_eq!((m.name.as_str(), m.version.as_str()), ("x", "1"));
    }

    #[test]
    fn name_and_version_are_required() {
        assert!(CoreMetadata::parse("Version: 1\n").is_err());
        assert!(CoreMetadata::parse("Name: x\n").is_err());
        assert!(CoreMetadata::parse("Name:\nVersion: 1\n").is_err());
        assert!(CoreMetadata::parse("").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = CoreMetadata::parse(&s);
        }

        #[test]
        fn every_requires_dist_line_is_found(
            reqs in proptest::collection::vec("[a-z][a-z0-9]{0,6}( ?>=[0-9]{1,2})?", 0..6),
        ) {
            let mut text = String::from("Name: x\nVersion: 1\n");
            for (i, r) in reqs.iter().enumerate() {
                let key = if i % 2 == 0 { "Requires-Dist" } else { "requires-dist" };
                text.push_str(&format!("{key}: {r}\n"));
            }
            text.push_str("\nRequires-Dist: body\n");
            let m = CoreMetadata::parse(&text).unwrap();
            proptest::prop_assert_eq!(m.requires_dist, reqs);
        }
    }
}
