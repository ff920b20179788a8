//! Package URLs (purl): `pkg:pypi/…`, `pkg:deb/…`, `pkg:apk/…`, `pkg:oci/…`.

use rbuild_oci::Digest;

use crate::{OsPackage, PackageManager};

/// Percent-encodes everything but the purl-safe characters (`A-Za-z0-9.-_~`, and `+` in versions
/// is encoded too, as the purl spec asks).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// PEP 503 normalization: lowercase, runs of `-_.` become one `-`.
fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// `pkg:pypi/NAME@VERSION` (name normalized as PEP 503 and the purl spec ask).
pub fn pypi_purl(name: &str, version: &str) -> String {
    format!("pkg:pypi/{}@{}", enc(&normalize(name)), enc(version))
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-12` (or `pkg:apk/alpine/…` for apk).
pub fn deb_purl(
    manager: PackageManager,
    distro_id: Option<&str>,
    distro_version: Option<&str>,
    p: &OsPackage,
) -> String {
    let (kind, default_ns) = match manager {
        PackageManager::Dpkg => ("deb", "debian"),
        PackageManager::Apk => ("apk", "alpine"),
    };
    let ns = distro_id.unwrap_or(default_ns).to_lowercase();
    let mut q: Vec<String> = Vec::new();
    if let Some(a) = &p.arch {
        q.push(format!("arch={}", enc(a)));
    }
    if let Some(v) = distro_version {
        q.push(format!("distro={}", enc(&format!("{ns}-{v}"))));
    }
    let mut s = format!(
        "pkg:{kind}/{}/{}@{}",
        enc(&ns),
        enc(&p.name.to_lowercase()),
        enc(&p.version)
    );
    if !q.is_empty() {
        s.push('?');
        s.push_str(&q.join("&"));
    }
    s
}

/// `pkg:oci/NAME@sha256%3A…?repository_url=REGISTRY/REPO` for an image reference
/// (`registry/repo/name:tag`).
pub fn oci_purl(reference: &str, digest: &Digest) -> String {
    let without_digest = reference.split('@').next().unwrap_or(reference);
    // The tag is the part after the last ':' that is after the last '/'.
    let slash = without_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (repo, tag) = match without_digest[slash..].rfind(':') {
        Some(i) => (
            &without_digest[..slash + i],
            Some(&without_digest[slash + i + 1..]),
        ),
        None => (without_digest, None),
    };
    let last = repo.rsplit('/').next().unwrap_or(repo).to_lowercase();
    let mut s = format!(
        "pkg:oci/{}@{}?repository_url={}",
        enc(&last),
        enc(&digest.to_string()),
        enc(&repo.to_lowercase())
    );
    if let Some(t) = tag {
        s.push_str(&format!("&tag={}", enc(t)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_are_normalized_and_encoded() {
        assert_eq!(
            pypi_purl("Typing_Extensions", "4.12.2"),
            "pkg:pypi/typing-extensions@4.12.2"
        );
        let p = OsPackage {
            name: "libc6".into(),
            version: "1:2.36-9+deb12u4".into(),
            arch: Some("amd64".into()),
            source: None,
        };
        assert_eq!(
            deb_purl(PackageManager::Dpkg, Some("debian"), Some("12"), &p),
            "pkg:deb/debian/libc6@1%3A2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
        );
        let d: Digest = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
            .parse()
            .unwrap();
        assert_eq!(
            oci_purl("127.0.0.1:5000/library/python:3.11-slim", &d),
            "pkg:oci/python@sha256%3A0000000000000000000000000000000000000000000000000000000000000001?repository_url=127.0.0.1%3A5000%2Flibrary%2Fpython&tag=3.11-slim"
        );
    }
}
