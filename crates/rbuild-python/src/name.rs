//! Distribution names: validation (PEP 508) and normalization (PEP 503).
//!
//! Every name that comes from a lockfile, an index page or a wheel file name goes through
//! [`validate_name`] before rbuild builds a URL or a path from it, so a name such as `../../etc` or
//! `a/b` never reaches the network or the file system.
//!
//! ```
//! use rbuild_python::{normalize_name, validate_name};
//! assert_eq!(normalize_name("Foo.Bar__baz"), "foo-bar-baz");
//! assert!(validate_name("zope.interface").is_ok());
//! assert!(validate_name("../etc").is_err());
//! ```

/// A distribution name that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{name}` is not a valid package name: {reason} (a name is letters, digits, `.`, `-` and `_`, \
     starting and ending with a letter or digit)"
)]
pub struct NameError {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Normalizes a distribution name per PEP 503: runs of `-`, `_` and `.` become one `-`, and letters are
/// lowercased. Does not validate; call [`validate_name`] first for untrusted input.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.extend(c.to_lowercase());
            in_sep = false;
        }
    }
    out
}

/// Checks a distribution name against PEP 508's `^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$`
/// (case-insensitive, ASCII only). As a second line of defence, names containing `..` are refused too,
/// even though PEP 508 would allow `a..b`; no real project uses such a name.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let err = |reason| {
        Err(NameError {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return err("it is empty");
    }
    if name.len() > 255 {
        return err("it is longer than 255 characters");
    }
    let bytes = name.as_bytes();
    if let Some(&b) = bytes
        .iter()
        .find(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')))
    {
        return if b == b'/' || b == b'\\' {
            err("it contains a path separator")
        } else {
            err("it contains a character other than letters, digits, `.`, `-` and `_`")
        };
    }
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return err("it must start and end with a letter or digit");
    }
    if name.contains("..") {
        return err("it contains `..`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        for (a, b) in [
            ("friendly-bard", "friendly-bard"),
            ("Friendly-Bard", "friendly-bard"),
            ("FRIENDLY-BARD", "friendly-bard"),
            ("friendly.bard", "friendly-bard"),
            ("friendly_bard", "friendly-bard"),
            ("friendly--bard", "friendly-bard"),
            ("FrIeNdLy-._.-bArD", "friendly-bard"),
        ] {
            assert_eq!(normalize_name(a), b);
        }
    }

    #[test]
    fn validates() {
        for ok in [
            "a",
            "A1",
            "zope.interface",
            "typing_extensions",
            "ruamel.yaml.clib",
            "x-y",
        ] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "-a", "a-", ".a", "a.", "a/b", "..", "../etc", "a..b", "a b", "ä", "a\\b", "a\0",
            "a;b",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        let e = validate_name("a/b").unwrap_err().to_string();
        assert!(e.contains("path separator"), "{e}");
    }
}
