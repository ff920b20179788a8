//! Reading back the Python part of an SBOM rbuild wrote: a rebase keeps the image's Python
//! distributions exactly as the build recorded them (wheel, sha256, origin) and writes a new
//! document for the new base's OS packages.
//!
//! Only documents written by [`crate::spdx_json`] and [`crate::cyclonedx_json`] are read: the
//! fields and wording are theirs (`sourceInfo`, `rbuild:*` properties).

use serde_json::Value;

use crate::{DistSource, FileRef, Format, PythonDist, SdistRef};

/// What an SBOM says about the image apart from its base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadBack {
    /// The image's name.
    pub image_name: String,
    /// The creation time written.
    pub created: String,
    /// Every Python distribution, as written.
    pub python: Vec<PythonDist>,
}

/// Reads the image name, creation time and Python distributions of a document rbuild wrote in
/// `format`; the error says what is missing or malformed.
pub fn read_python(format: Format, bytes: &[u8]) -> Result<ReadBack, String> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the SBOM is not JSON: {e}"))?;
    match format {
        Format::Spdx => read_spdx(&doc),
        Format::CycloneDx => read_cyclonedx(&doc),
    }
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)?.as_str()
}

fn digest(hex: &str) -> Result<rbuild_oci::Digest, String> {
    format!("sha256:{hex}")
        .parse()
        .map_err(|e| format!("bad sha256 {hex:?} in the SBOM: {e}"))
}

fn purl_of(p: &Value) -> Option<&str> {
    p.get("externalRefs")?
        .as_array()?
        .iter()
        .find(|r| s(r, "referenceType") == Some("purl"))
        .and_then(|r| s(r, "referenceLocator"))
}

fn read_spdx(doc: &Value) -> Result<ReadBack, String> {
    if s(doc, "spdxVersion") != Some("SPDX-2.3") {
        return Err("not an SPDX 2.3 document".into());
    }
    let name = s(doc, "name").ok_or("the SPDX document has no name")?;
    let image_name = name.rsplit_once('@').map(|(n, _)| n).unwrap_or(name);
    let created = doc
        .pointer("/creationInfo/created")
        .and_then(Value::as_str)
        .ok_or("the SPDX document has no creationInfo.created")?;
    let packages = doc
        .get("packages")
        .and_then(Value::as_array)
        .ok_or("the SPDX document has no packages")?;
    let by_id = |id: &str| packages.iter().find(|p| s(p, "SPDXID") == Some(id));
    let empty = Vec::new();
    let rels = doc
        .get("relationships")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut python = Vec::new();
    for p in packages {
        let is_pypi = purl_of(p).is_some_and(|u| u.starts_with("pkg:pypi/"));
        if !is_pypi || s(p, "primaryPackagePurpose") == Some("SOURCE") {
            continue;
        }
        let id = s(p, "SPDXID").unwrap_or_default();
        let dist_name = s(p, "name").ok_or("a Python package without a name")?;
        let version = s(p, "versionInfo").ok_or("a Python package without a version")?;
        let wheel = match (
            s(p, "packageFileName"),
            p.pointer("/checksums/0/checksumValue"),
        ) {
            (Some(f), Some(Value::String(h))) => Some(FileRef {
                filename: f.to_string(),
                sha256: digest(h)?,
            }),
            _ => None,
        };
        let info = s(p, "sourceInfo").unwrap_or_default();
        let source = if let Some(url) = info.strip_prefix("downloaded from the package index ") {
            DistSource::Index { url: url.into() }
        } else if let Some(path) = info.strip_prefix("the lockfile's local file ") {
            DistSource::LocalFile { path: path.into() }
        } else if info == DistSource::FindLinks.describe() {
            DistSource::FindLinks
        } else if info == DistSource::Project.describe() {
            DistSource::Project
        } else if info.starts_with("built by rbuild from the source distribution") {
            let sdist = rels
                .iter()
                .find(|r| {
                    s(r, "spdxElementId") == Some(id)
                        && s(r, "relationshipType") == Some("GENERATED_FROM")
                })
                .and_then(|r| by_id(s(r, "relatedSpdxElement")?))
                .ok_or_else(|| format!("{dist_name} {version}: its sdist package is missing"))?;
            let h = sdist
                .pointer("/checksums/0/checksumValue")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{dist_name} {version}: its sdist has no sha256"))?;
            DistSource::Sdist {
                sdist: SdistRef {
                    filename: s(sdist, "packageFileName").map(str::to_string),
                    sha256: digest(h)?,
                },
            }
        } else {
            return Err(format!(
                "{dist_name} {version}: unknown sourceInfo {info:?} (not written by rbuild)"
            ));
        };
        python.push(PythonDist {
            name: dist_name.into(),
            version: version.into(),
            wheel,
            source,
        });
    }
    Ok(ReadBack {
        image_name: image_name.into(),
        created: created.into(),
        python,
    })
}

fn read_cyclonedx(doc: &Value) -> Result<ReadBack, String> {
    if s(doc, "bomFormat") != Some("CycloneDX") {
        return Err("not a CycloneDX document".into());
    }
    let image_name = doc
        .pointer("/metadata/component/name")
        .and_then(Value::as_str)
        .ok_or("the CycloneDX document has no metadata.component.name")?;
    let created = doc
        .pointer("/metadata/timestamp")
        .and_then(Value::as_str)
        .ok_or("the CycloneDX document has no metadata.timestamp")?;
    let empty = Vec::new();
    let components = doc
        .get("components")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut python = Vec::new();
    for c in components {
        if !s(c, "purl").is_some_and(|u| u.starts_with("pkg:pypi/")) {
            continue;
        }
        let props: Vec<(&str, &str)> = c
            .get("properties")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
            .iter()
            .filter_map(|p| Some((s(p, "name")?, s(p, "value")?)))
            .collect();
        let prop = |k: &str| props.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let dist_name = s(c, "name").ok_or("a Python component without a name")?;
        let version = s(c, "version").ok_or("a Python component without a version")?;
        let wheel = match (prop("rbuild:wheel"), c.pointer("/hashes/0/content")) {
            (Some(f), Some(Value::String(h))) => Some(FileRef {
                filename: f.to_string(),
                sha256: digest(h)?,
            }),
            _ => None,
        };
        let source = match prop("rbuild:source") {
            Some("index") => DistSource::Index {
                url: prop("rbuild:index-url").unwrap_or_default().into(),
            },
            Some("local-file") => DistSource::LocalFile {
                path: prop("rbuild:local-file").unwrap_or_default().into(),
            },
            Some("find-links") => DistSource::FindLinks,
            Some("project") => DistSource::Project,
            Some("sdist") => DistSource::Sdist {
                sdist: SdistRef {
                    filename: prop("rbuild:sdist").map(str::to_string),
                    sha256: digest(prop("rbuild:sdist-sha256").ok_or_else(|| {
                        format!("{dist_name} {version}: its sdist has no sha256")
                    })?)?,
                },
            },
            other => {
                return Err(format!(
                    "{dist_name} {version}: unknown rbuild:source {other:?} (not written by rbuild)"
                ));
            }
        };
        python.push(PythonDist {
            name: dist_name.into(),
            version: version.into(),
            wheel,
            source,
        });
    }
    Ok(ReadBack {
        image_name: image_name.into(),
        created: created.into(),
        python,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_read_back_what_was_written() {
        let inv = crate::tests::sample();
        for format in [Format::Spdx, Format::CycloneDx] {
            let back = read_python(format, &format.write(&inv)).unwrap();
            assert_eq!(back.image_name, inv.image_name, "{format:?}");
            assert_eq!(back.created, inv.created, "{format:?}");
            let mut got = back.python.clone();
            let mut want = inv.python.clone();
            got.sort_by(|a, b| a.name.cmp(&b.name));
            want.sort_by(|a, b| a.name.cmp(&b.name));
            assert_eq!(got, want, "{format:?}");
        }
        assert!(read_python(Format::Spdx, b"{}").is_err());
        assert!(read_python(Format::CycloneDx, b"[").is_err());
    }
}
