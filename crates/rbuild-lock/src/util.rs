//! Helpers shared by the readers: bounded file reading, names, versions, hashes, file names, paths.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use rbuild_oci::Digest;

use crate::error::{Error, Location, Result};
use crate::model::FileKind;

/// No real lockfile comes near this; refusing bigger files bounds memory on hostile input.
pub(crate) const MAX_LOCKFILE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a lockfile as UTF-8 (a leading BOM dropped), refusing files over [`MAX_LOCKFILE_BYTES`].
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > MAX_LOCKFILE_BYTES {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            size,
            limit: MAX_LOCKFILE_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(MAX_LOCKFILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_LOCKFILE_BYTES {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit: MAX_LOCKFILE_BYTES,
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| Error::Invalid {
        location: Location::file(path),
        message: format!(
            "not UTF-8 text (invalid byte at offset {}); lockfiles must be UTF-8",
            e.utf8_error().valid_up_to()
        ),
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// Validates a distribution name (PEP 508, no `/`, no `..`) and returns it normalized (PEP 503).
pub(crate) fn check_name(location: &Location, name: &str) -> Result<String> {
    rbuild_python::validate_name(name).map_err(|source| Error::InvalidName {
        location: location.clone(),
        source,
    })?;
    Ok(rbuild_python::normalize_name(name))
}

/// Validates a PEP 440 version and returns it as written (trimmed).
pub(crate) fn check_version(location: &Location, package: &str, version: &str) -> Result<String> {
    let v = version.trim();
    rbuild_python::version::Version::parse(v).map_err(|_| Error::InvalidVersion {
        location: location.clone(),
        package: package.to_string(),
        version: version.to_string(),
    })?;
    Ok(v.to_string())
}

/// Whether two versions are equal per PEP 440 (`1.0` == `1.0.0`); falls back to string equality.
pub(crate) fn same_version(a: &str, b: &str) -> bool {
    use rbuild_python::version::Version;
    match (Version::parse(a), Version::parse(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Parses a hex sha256 (any case), with or without a `sha256:` prefix.
pub(crate) fn parse_sha256(s: &str) -> Option<Digest> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    Digest::parse(&format!("sha256:{}", hex.to_ascii_lowercase())).ok()
}

/// Parses `ALGO:HEX` (uv, Poetry): `Ok(Some(digest))` for sha256, `Ok(None)` for another algorithm,
/// `Err(message)` when malformed.
pub(crate) fn parse_algo_hash(s: &str) -> std::result::Result<Option<Digest>, String> {
    let Some((algo, hex)) = s.split_once(':') else {
        return Err(format!("hash `{s}` is not of the form ALGORITHM:HEX"));
    };
    if !algo.eq_ignore_ascii_case("sha256") {
        if algo.is_empty() || !algo.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("hash `{s}` has a malformed algorithm"));
        }
        return Ok(None);
    }
    parse_sha256(hex)
        .map(Some)
        .ok_or_else(|| format!("`{s}` is not a sha256 hash (64 hex digits)"))
}

/// Decodes `%XX` escapes (file names in URLs, e.g. `%2B` for `+`). Invalid escapes stay as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The file name at the end of a URL (query and fragment dropped, percent-decoded).
pub(crate) fn filename_from_url(url: &str) -> Option<String> {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let path = &url[..end];
    let last = path.rsplit('/').next()?;
    let name = percent_decode(last);
    if name.is_empty() { None } else { Some(name) }
}

/// Checks a distribution file name: not empty, no path separator, not `.`/`..`, no control character.
pub(crate) fn check_filename(
    location: &Location,
    package: &str,
    filename: &str,
) -> Result<FileKind> {
    if filename.is_empty()
        || filename == "."
        || filename == ".."
        || filename.contains(['/', '\\'])
        || filename.chars().any(|c| c.is_control())
    {
        return Err(Error::Invalid {
            location: location.clone(),
            message: format!(
                "package `{package}` lists the file name {filename:?}, which is not a plain file name; \
                 refusing the lockfile"
            ),
        });
    }
    Ok(if filename.ends_with(".whl") {
        FileKind::Wheel
    } else {
        FileKind::Sdist
    })
}

/// Resolves a relative path written in a lockfile against the lockfile's directory, refusing absolute
/// paths and any `..` component, so the result never leaves that directory.
pub(crate) fn resolve_inside(
    location: &Location,
    lock_dir: &Path,
    package: &str,
    rel: &str,
) -> Result<PathBuf> {
    let p = Path::new(rel);
    let mut out = lock_dir.to_path_buf();
    let mut depth = 0usize;
    for c in p.components() {
        match c {
            Component::Normal(n) => {
                out.push(n);
                depth += 1;
            }
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(Error::Invalid {
                    location: location.clone(),
                    message: format!(
                        "package `{package}` names the local file {rel:?}, which is not inside the \
                         lockfile's directory; refusing it"
                    ),
                });
            }
        }
    }
    if depth == 0 || rel.contains('\0') {
        return Err(Error::Invalid {
            location: location.clone(),
            message: format!(
                "package `{package}` names the local file {rel:?}, which is not a file"
            ),
        });
    }
    Ok(out)
}

/// Whether a URL-ish string is a remote URL (has a scheme).
pub(crate) fn is_url(s: &str) -> bool {
    match s.find("://") {
        Some(i) => {
            i > 0
                && s[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        }
        None => false,
    }
}

/// Whether an index URL is PyPI's own simple index (`https://pypi.org/simple`, the legacy
/// `pypi.python.org`), which lock formats name explicitly but which means "the configured index".
pub(crate) fn is_pypi(url: &str) -> bool {
    let u = url.trim_end_matches('/').to_ascii_lowercase();
    let u = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .unwrap_or(&u);
    matches!(
        u,
        "pypi.org/simple" | "pypi.python.org/simple" | "www.pypi.org/simple"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes() {
        let h = "0A30EF8F5322A4173720AE6712DC9A5E58F5A19868F3F167B4B5778DB066C2B5";
        assert!(parse_sha256(h).is_some());
        assert!(parse_sha256(&format!("sha256:{h}")).is_some());
        assert!(parse_sha256("abc").is_none());
        assert!(matches!(
            parse_algo_hash(&format!("sha256:{h}")),
            Ok(Some(_))
        ));
        assert!(matches!(parse_algo_hash("md5:abc"), Ok(None)));
        assert!(parse_algo_hash("sha256:xyz").is_err());
        assert!(parse_algo_hash("nocolon").is_err());
    }

    #[test]
    fn url_file_names() {
        assert_eq!(
            filename_from_url("https://h/p/torch-2.0%2Bcpu-cp311-cp311-linux_x86_64.whl#sha256=ab")
                .as_deref(),
            Some("torch-2.0+cpu-cp311-cp311-linux_x86_64.whl")
        );
        assert_eq!(filename_from_url("https://h/a/").as_deref(), None);
        assert_eq!(filename_from_url("x%2").as_deref(), Some("x%2"));
        assert_eq!(filename_from_url("x%").as_deref(), Some("x%"));
    }

    #[test]
    fn paths_stay_inside() {
        let loc = Location::file("/ctx/pylock.toml");
        let dir = Path::new("/ctx");
        assert_eq!(
            resolve_inside(&loc, dir, "p", "./wheels/a.whl").unwrap(),
            Path::new("/ctx/wheels/a.whl")
        );
        for bad in ["../a.whl", "/etc/passwd", "wheels/../../a.whl", ".", ""] {
            assert!(resolve_inside(&loc, dir, "p", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_names() {
        let loc = Location::file("x");
        assert_eq!(
            check_filename(&loc, "p", "a-1-py3-none-any.whl").unwrap(),
            FileKind::Wheel
        );
        assert_eq!(
            check_filename(&loc, "p", "a-1.tar.gz").unwrap(),
            FileKind::Sdist
        );
        for bad in ["", "..", "a/b.whl", "a\\b.whl", "a\nb.whl"] {
            assert!(check_filename(&loc, "p", bad).is_err());
        }
    }
}
