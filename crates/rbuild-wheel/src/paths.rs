//! Lexical path handling. Image paths are relative to the image root, `/`-separated, without a
//! leading or trailing `/`; the root itself is `""`.

/// Why a relative path inside a wheel or scheme is refused, or `None` when it is safe: not
/// empty, not absolute, no `\`, no NUL, no empty, `.` or `..` component, and no component
/// starting with `.wh.` (which a container runtime would read as a whiteout).
pub(crate) fn unsafe_relative(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("has an empty path");
    }
    if path.starts_with('/') {
        return Some("is an absolute path");
    }
    if path.contains('\0') {
        return Some("contains a NUL byte");
    }
    if path.contains('\\') {
        return Some("contains a backslash");
    }
    for c in path.split('/') {
        match c {
            "" => return Some("has an empty path component"),
            "." => return Some("has a `.` component"),
            ".." => return Some("has a `..` component that would leave its directory"),
            _ if c.starts_with(".wh.") => {
                return Some("has a component starting with `.wh.` (an OCI whiteout marker)");
            }
            _ => {}
        }
    }
    None
}

/// Normalizes an absolute path lexically (`os.path.normpath`), returning the image path.
/// `None` when it is not absolute or contains NUL.
pub(crate) fn image_path_of_absolute(path: &str) -> Option<String> {
    if !path.starts_with('/') || path.contains('\0') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

/// Joins `rel` to the image directory `base` and normalizes `.`/`..` lexically. `None` when the
/// result would leave the image root. An absolute `rel` is taken from the root.
pub(crate) fn resolve_in_root(base: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    let start = if rel.starts_with('/') { "" } else { base };
    for c in start.split('/').chain(rel.split('/')) {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

/// Joins two image paths.
pub(crate) fn join(base: &str, rel: &str) -> String {
    if base.is_empty() {
        rel.to_string()
    } else {
        format!("{base}/{rel}")
    }
}

/// `os.path.relpath(target, start)` for two normalized image paths.
pub(crate) fn relpath(target: &str, start: &str) -> String {
    let t: Vec<&str> = target.split('/').filter(|s| !s.is_empty()).collect();
    let s: Vec<&str> = start.split('/').filter(|s| !s.is_empty()).collect();
    let common = t.iter().zip(&s).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; s.len() - common];
    parts.extend(&t[common..]);
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// The parent image path (`""` for a top-level entry).
pub(crate) fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// Every ancestor directory of `path`, outermost first (excluding the root and `path`).
pub(crate) fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// True when `path` is `dir` or lies below it.
pub(crate) fn is_within(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path == dir
        || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "a//b",
            "a/./b",
            "a\\b",
            "a\0b",
            "a/.wh.b",
            ".wh..wh..opq",
            "a/",
        ] {
            assert!(unsafe_relative(bad).is_some(), "{bad:?}");
        }
        for good in ["a", "a/b.py", "a/..b", "a/b../c", "...", "a/.whx"] {
            assert!(unsafe_relative(good).is_none(), "{good:?}");
        }
    }

    #[test]
    fn normalizing() {
        assert_eq!(
            image_path_of_absolute("/usr/local//lib/./x/../y/").unwrap(),
            "usr/local/lib/y"
        );
        assert_eq!(image_path_of_absolute("/").unwrap(), "");
        assert!(image_path_of_absolute("usr").is_none());
        assert_eq!(
            resolve_in_root("usr/local/lib/python3.11/site-packages", "../../../bin/pip").unwrap(),
            "usr/local/bin/pip"
        );
        assert_eq!(resolve_in_root("a/b", "/etc/x").unwrap(), "etc/x");
        assert!(resolve_in_root("a/b", "../../../x").is_none());
    }

    #[test]
    fn relpaths() {
        assert_eq!(
            relpath("usr/local/bin", "usr/local/lib/python3.11/dist-packages"),
            "../../../bin"
        );
        assert_eq!(
            relpath("usr/lib64/site", "usr/lib/site"),
            "../../lib64/site"
        );
        assert_eq!(relpath("a/b", "a/b"), ".");
        assert_eq!(relpath("a/b/c", "a"), "b/c");
        assert_eq!(relpath("", "a/b"), "../..");
    }

    #[test]
    fn tree_helpers() {
        assert_eq!(parent("a/b/c"), "a/b");
        assert_eq!(parent("a"), "");
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert!(is_within("a/b", "a"));
        assert!(!is_within("ab", "a"));
        assert!(is_within("a", "a"));
    }
}
