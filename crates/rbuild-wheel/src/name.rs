//! Distribution names, wheel file names and PEP 440 version equality.
//!
//! This crate only needs to answer "is this the distribution the lockfile asked for?", so it
//! carries a small, self-contained PEP 440 parser instead of depending on the resolver's.

use std::cmp::Ordering;

/// Normalizes a distribution name as PEP 503 does: lowercase, runs of `-`, `_` and `.` become
/// one `-`.
///
/// ```
/// assert_eq!(rbuild_wheel::normalize_name("Zope.Interface"), "zope-interface");
/// assert_eq!(rbuild_wheel::normalize_name("jaraco_functools"), "jaraco-functools");
/// ```
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

/// The parts of a wheel file name (`{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelFilename {
    /// The distribution name as written in the file name (escaped, e.g. `jaraco_functools`).
    pub name: String,
    /// The version as written in the file name.
    pub version: String,
    /// The optional build tag.
    pub build: Option<String>,
    /// `python-abi-platform`, as written.
    pub tag: String,
}

impl WheelFilename {
    /// Parses a wheel file name; `None` when it does not have the wheel shape.
    ///
    /// ```
    /// let w = rbuild_wheel::WheelFilename::parse("six-1.17.0-py2.py3-none-any.whl").unwrap();
    /// assert_eq!((w.name.as_str(), w.version.as_str()), ("six", "1.17.0"));
    /// ```
    pub fn parse(filename: &str) -> Option<WheelFilename> {
        let stem = filename.strip_suffix(".whl")?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build, tag) = match parts.as_slice() {
            [n, v, py, abi, plat] => (*n, *v, None, format!("{py}-{abi}-{plat}")),
            [n, v, b, py, abi, plat] => (*n, *v, Some(b.to_string()), format!("{py}-{abi}-{plat}")),
            _ => return None,
        };
        if name.is_empty() || version.is_empty() || tag.split('-').any(str::is_empty) {
            return None;
        }
        if let Some(b) = &build
            && !b.starts_with(|c: char| c.is_ascii_digit())
        {
            return None;
        }
        Some(WheelFilename {
            name: name.to_string(),
            version: version.to_string(),
            build,
            tag,
        })
    }
}

/// A parsed PEP 440 version, enough to decide equality (`1.0` == `1.0.0`, `1.0-post1` ==
/// `1.0.post1`, `1.0RC1` == `1.0rc1`).
#[derive(Debug, Clone)]
struct Pep440 {
    epoch: String,
    release: Vec<String>,
    pre: Option<(&'static str, String)>,
    post: Option<String>,
    dev: Option<String>,
    local: Vec<String>,
}

fn strip_zeros(s: &str) -> String {
    let t = s.trim_start_matches('0');
    if t.is_empty() {
        "0".to_string()
    } else {
        t.to_string()
    }
}

fn cmp_num(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Pep440 {
    fn parse(input: &str) -> Option<Pep440> {
        let s = input.trim().to_ascii_lowercase();
        let mut rest: &str = s.strip_prefix('v').unwrap_or(&s);
        let (main, local) = match rest.split_once('+') {
            Some((m, l)) => (m.to_string(), Some(l.to_string())),
            None => (rest.to_string(), None),
        };
        rest = &main;
        let digits = |r: &str| r.chars().take_while(char::is_ascii_digit).count();
        // epoch
        let mut epoch = "0".to_string();
        let n = digits(rest);
        if n > 0 && rest[n..].starts_with('!') {
            epoch = strip_zeros(&rest[..n]);
            rest = &rest[n + 1..];
        }
        // release
        let mut release = Vec::new();
        loop {
            let n = digits(rest);
            if n == 0 {
                return None;
            }
            release.push(strip_zeros(&rest[..n]));
            rest = &rest[n..];
            if rest.starts_with('.') && digits(&rest[1..]) > 0 {
                rest = &rest[1..];
            } else {
                break;
            }
        }
        let sep = |r: &str| -> usize { usize::from(r.starts_with(['.', '-', '_'])) };
        let number = |r: &str| -> (String, usize) {
            let s = sep(r);
            let n = digits(&r[s..]);
            if n == 0 {
                ("0".to_string(), 0)
            } else {
                (strip_zeros(&r[s..s + n]), s + n)
            }
        };
        // pre-release
        let mut pre = None;
        {
            let s = sep(rest);
            let after = &rest[s..];
            const PRE: [(&str, &str); 8] = [
                ("alpha", "a"),
                ("beta", "b"),
                ("preview", "rc"),
                ("pre", "rc"),
                ("rc", "rc"),
                ("a", "a"),
                ("b", "b"),
                ("c", "rc"),
            ];
            if let Some((word, kind)) = PRE.iter().find(|(w, _)| after.starts_with(w)) {
                let after = &after[word.len()..];
                let (num, used) = number(after);
                pre = Some((*kind, num));
                rest = &after[used..];
            }
        }
        // post-release
        let mut post = None;
        if rest.starts_with('-') && digits(&rest[1..]) > 0 {
            let n = digits(&rest[1..]);
            post = Some(strip_zeros(&rest[1..1 + n]));
            rest = &rest[1 + n..];
        } else {
            let s = sep(rest);
            let after = &rest[s..];
            if let Some(word) = ["post", "rev", "r"].iter().find(|w| after.starts_with(**w)) {
                let after = &after[word.len()..];
                let (num, used) = number(after);
                post = Some(num);
                rest = &after[used..];
            }
        }
        // dev-release
        let mut dev = None;
        {
            let s = sep(rest);
            let after = &rest[s..];
            if let Some(after) = after.strip_prefix("dev") {
                let (num, used) = number(after);
                dev = Some(num);
                rest = &after[used..];
            }
        }
        if !rest.is_empty() {
            return None;
        }
        let local = match local {
            None => Vec::new(),
            Some(l) => {
                let parts: Vec<String> = l.split(['.', '-', '_']).map(str::to_string).collect();
                if parts
                    .iter()
                    .any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric()))
                {
                    return None;
                }
                parts
                    .into_iter()
                    .map(|p| {
                        if p.chars().all(|c| c.is_ascii_digit()) {
                            strip_zeros(&p)
                        } else {
                            p
                        }
                    })
                    .collect()
            }
        };
        Some(Pep440 {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }

    fn same_as(&self, other: &Pep440) -> bool {
        let trim = |r: &[String]| -> usize {
            let mut n = r.len();
            while n > 1 && r[n - 1] == "0" {
                n -= 1;
            }
            n
        };
        let (a, b) = (
            &self.release[..trim(&self.release)],
            &other.release[..trim(&other.release)],
        );
        self.epoch == other.epoch
            && a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| cmp_num(x, y) == Ordering::Equal)
            && self.pre == other.pre
            && self.post == other.post
            && self.dev == other.dev
            && self.local == other.local
    }
}

/// True when two version strings denote the same PEP 440 version; versions that are not valid
/// PEP 440 are compared as lowercase strings.
///
/// ```
/// assert!(rbuild_wheel::versions_equal("1.0", "1.0.0"));
/// assert!(rbuild_wheel::versions_equal("2.0RC1", "2.0rc1"));
/// assert!(rbuild_wheel::versions_equal("1.0-1", "1.0.post1"));
/// assert!(!rbuild_wheel::versions_equal("1.0", "1.0.1"));
/// ```
pub fn versions_equal(a: &str, b: &str) -> bool {
    match (Pep440::parse(a), Pep440::parse(b)) {
        (Some(x), Some(y)) => x.same_as(&y),
        _ => a.trim().eq_ignore_ascii_case(b.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize_name("Foo__Bar-.baz"), "foo-bar-baz");
        assert_eq!(normalize_name("rpds_py"), normalize_name("rpds-py"));
    }

    #[test]
    fn filenames() {
        let w = WheelFilename::parse(
            "rpds_py-2026.9.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        )
        .unwrap();
        assert_eq!(w.name, "rpds_py");
        assert_eq!(w.version, "2026.9.1");
        assert_eq!(
            w.tag,
            "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
        );
        let w = WheelFilename::parse("foo-1.0-1build-py3-none-any.whl").unwrap();
        assert_eq!(w.build.as_deref(), Some("1build"));
        assert!(WheelFilename::parse("foo-1.0-x-py3-none-any.whl").is_none());
        assert!(WheelFilename::parse("foo-1.0.whl").is_none());
        assert!(WheelFilename::parse("foo-1.0-py3-none-any.zip").is_none());
    }

    #[test]
    fn versions() {
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
        assert!(versions_equal("not a version", "Not A Version"));
    }
}
