//! SBOMs from what a build knows, never from a scan.
//!
//! rbuild installs every Python distribution itself (each wheel pinned by sha256 in the lock) and
//! knows the base image by digest, so its SBOM is an exact inventory rather than a guess:
//!
//! - [`Inventory`]: the image (digest, platform), the base image (name, digest), the base's OS
//!   packages ([`OsInventory`], read from its package database by [`os::OsFiles`]) and every
//!   Python distribution ([`PythonDist`]: name, version, wheel file and sha256, and where it came
//!   from: [`DistSource`]);
//! - [`spdx_json`]: SPDX 2.3 JSON; [`cyclonedx_json`]: CycloneDX 1.6 JSON;
//! - [`os`]: readers of `/var/lib/dpkg/status` (and distroless `status.d/`), `/lib/apk/db/installed`
//!   and `os-release`; an rpm database is reported as unreadable (rbuild does not run rpm).
//!
//! Both documents are pure functions of the inventory, written as canonical JSON: no wall clock
//! (the creation time is the image's own, from `SOURCE_DATE_EPOCH`), no random UUIDs (the SPDX
//! document namespace and the CycloneDX serial number are derived from the content), every list
//! sorted. The same image always has the byte-identical SBOM.
//!
//! ```
//! use rbuild_sbom::{DistSource, Inventory, OsInventory, PythonDist, FileRef};
//! let inv = Inventory {
//!     image_name: "app".into(),
//!     image_digest: "sha256:0000000000000000000000000000000000000000000000000000000000000001".parse().unwrap(),
//!     platform: "linux/amd64".into(),
//!     created: "2024-01-01T00:00:00Z".into(),
//!     tool_version: "0.1.0".into(),
//!     base: None,
//!     os: OsInventory::None,
//!     python: vec![PythonDist {
//!         name: "idna".into(),
//!         version: "3.7".into(),
//!         wheel: Some(FileRef {
//!             filename: "idna-3.7-py3-none-any.whl".into(),
//!             sha256: "sha256:82fee1fc78add43492d3a1898bfa6d8a904cc97d8427f683ed8e798d07761aa0".parse().unwrap(),
//!         }),
//!         source: DistSource::Index { url: "https://pypi.org/simple".into() },
//!     }],
//! };
//! let doc: serde_json::Value = serde_json::from_slice(&rbuild_sbom::spdx_json(&inv)).unwrap();
//! assert_eq!(doc["spdxVersion"], "SPDX-2.3");
//! assert_eq!(rbuild_sbom::spdx_json(&inv), rbuild_sbom::spdx_json(&inv));
//! ```

mod cyclonedx;
mod inventory;
pub mod os;
mod purl;
mod spdx;

pub use cyclonedx::{CYCLONEDX_MEDIA_TYPE, cyclonedx_json};
pub use inventory::{
    BaseImage, DistSource, FileRef, Inventory, OsInventory, OsPackage, PackageManager, PythonDist,
    SdistRef,
};
pub use purl::{deb_purl, oci_purl, pypi_purl};
pub use spdx::{SPDX_MEDIA_TYPE, spdx_json};

/// Which SBOM format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// SPDX 2.3 JSON (`application/spdx+json`).
    Spdx,
    /// CycloneDX 1.6 JSON (`application/vnd.cyclonedx+json`).
    CycloneDx,
}

impl Format {
    /// The media type of the document (also the artifact type of its OCI artifact).
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Spdx => SPDX_MEDIA_TYPE,
            Format::CycloneDx => CYCLONEDX_MEDIA_TYPE,
        }
    }

    /// The document for `inventory` in this format (canonical JSON bytes).
    pub fn write(self, inventory: &Inventory) -> Vec<u8> {
        match self {
            Format::Spdx => spdx_json(inventory),
            Format::CycloneDx => cyclonedx_json(inventory),
        }
    }

    /// The format whose media type is `media_type`, if any.
    pub fn from_media_type(media_type: &str) -> Option<Format> {
        match media_type {
            SPDX_MEDIA_TYPE => Some(Format::Spdx),
            CYCLONEDX_MEDIA_TYPE => Some(Format::CycloneDx),
            _ => None,
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "spdx" | "spdx-json" => Ok(Format::Spdx),
            "cyclonedx" | "cyclonedx-json" | "cdx" => Ok(Format::CycloneDx),
            other => Err(format!(
                "unknown SBOM format {other:?}: use spdx or cyclonedx (or none)"
            )),
        }
    }
}

/// sha256 hex of `bytes` (for IDs derived from content).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn d(n: u8) -> rbuild_oci::Digest {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
            .parse()
            .unwrap()
    }

    pub(crate) fn sample() -> Inventory {
        Inventory {
            image_name: "fastapi-app".into(),
            image_digest: d(1),
            platform: "linux/amd64".into(),
            created: "1970-01-01T00:00:00Z".into(),
            tool_version: "0.1.0".into(),
            base: Some(BaseImage {
                name: "127.0.0.1:5000/library/python:3.11-slim".into(),
                digest: d(2),
            }),
            os: OsInventory::Packages {
                manager: PackageManager::Dpkg,
                distro_id: Some("debian".into()),
                distro_version: Some("12".into()),
                packages: vec![
                    OsPackage {
                        name: "libc6".into(),
                        version: "2.36-9".into(),
                        arch: Some("amd64".into()),
                        source: Some("glibc".into()),
                    },
                    OsPackage {
                        name: "python3.11".into(),
                        version: "3.11.2-6".into(),
                        arch: Some("amd64".into()),
                        source: None,
                    },
                ],
            },
            python: vec![
                PythonDist {
                    name: "fastapi".into(),
                    version: "0.115.0".into(),
                    wheel: Some(FileRef {
                        filename: "fastapi-0.115.0-py3-none-any.whl".into(),
                        sha256: d(3),
                    }),
                    source: DistSource::Index {
                        url: "https://pypi.org/simple".into(),
                    },
                },
                PythonDist {
                    name: "docopt".into(),
                    version: "0.6.2".into(),
                    wheel: Some(FileRef {
                        filename: "docopt-0.6.2-py2.py3-none-any.whl".into(),
                        sha256: d(4),
                    }),
                    source: DistSource::Sdist {
                        sdist: SdistRef {
                            filename: Some("docopt-0.6.2.tar.gz".into()),
                            sha256: d(5),
                        },
                    },
                },
                PythonDist {
                    name: "app".into(),
                    version: "1.0".into(),
                    wheel: None,
                    source: DistSource::Project,
                },
            ],
        }
    }

    #[test]
    fn spdx_lists_everything_with_relationships_and_a_content_namespace() {
        let inv = sample();
        let bytes = spdx_json(&inv);
        assert_eq!(bytes, spdx_json(&inv), "byte-identical");
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        let pkgs = doc["packages"].as_array().unwrap();
        // image, base, 2 OS, 3 Python, 1 sdist
        assert_eq!(pkgs.len(), 8);
        let fastapi = pkgs.iter().find(|p| p["name"] == "fastapi").unwrap();
        assert_eq!(fastapi["versionInfo"], "0.115.0");
        assert_eq!(fastapi["checksums"][0]["checksumValue"], d(3).hex());
        assert_eq!(
            fastapi["externalRefs"][0]["referenceLocator"],
            "pkg:pypi/fastapi@0.115.0"
        );
        let libc = pkgs.iter().find(|p| p["name"] == "libc6").unwrap();
        assert_eq!(libc["versionInfo"], "2.36-9");
        let rels = doc["relationships"].as_array().unwrap();
        assert!(
            rels.iter()
                .any(|r| r["relationshipType"] == "GENERATED_FROM")
        );
        assert!(
            rels.iter()
                .any(|r| r["relationshipType"] == "DESCENDANT_OF")
        );
        let ns = doc["documentNamespace"].as_str().unwrap();
        assert!(
            ns.starts_with("https://spdx.org/spdxdocs/rbuild-fastapi-app-"),
            "{ns}"
        );
        // Another image: another namespace.
        let mut other = inv.clone();
        other.image_digest = d(9);
        let doc2: Value = serde_json::from_slice(&spdx_json(&other)).unwrap();
        assert_ne!(doc2["documentNamespace"], doc["documentNamespace"]);
        // IDs are unique.
        let ids: std::collections::BTreeSet<&str> =
            pkgs.iter().map(|p| p["SPDXID"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), pkgs.len());
    }

    #[test]
    fn cyclonedx_has_a_content_serial_and_hashes() {
        let inv = sample();
        let bytes = cyclonedx_json(&inv);
        assert_eq!(bytes, cyclonedx_json(&inv));
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        let serial = doc["serialNumber"].as_str().unwrap();
        assert_eq!(serial.len(), "urn:uuid:".len() + 36, "{serial}");
        assert_eq!(&serial[9 + 14..9 + 15], "5", "{serial}");
        let comps = doc["components"].as_array().unwrap();
        assert_eq!(comps.len(), 6, "2 OS, base, 3 Python");
        let docopt = comps.iter().find(|c| c["name"] == "docopt").unwrap();
        assert_eq!(docopt["hashes"][0]["content"], d(4).hex());
        assert!(
            docopt["properties"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "rbuild:sdist-sha256" && p["value"] == d(5).hex())
        );
        assert_eq!(doc["dependencies"][0]["ref"], "image");
    }

    #[test]
    fn formats_parse() {
        assert_eq!("spdx".parse::<Format>().unwrap(), Format::Spdx);
        assert_eq!("cyclonedx".parse::<Format>().unwrap(), Format::CycloneDx);
        assert!("xml".parse::<Format>().is_err());
        assert_eq!(
            Format::from_media_type(Format::CycloneDx.media_type()),
            Some(Format::CycloneDx)
        );
    }
}
