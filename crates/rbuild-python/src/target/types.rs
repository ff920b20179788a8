//! The serializable description of a target.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::markers::MarkerEnv;
use crate::tags::{TagTarget, Tags};

/// A `major.minor` pair (Python `3.11`, glibc `2.36`, musl `1.2`); serialized as the string `"3.11"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MajorMinor {
    /// The major number.
    pub major: u32,
    /// The minor number.
    pub minor: u32,
}

impl MajorMinor {
    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        MajorMinor { major, minor }
    }

    /// Reads the leading `X.Y` of a version string such as `2.36-9+deb12u4` or `3.11.2`.
    pub fn parse_prefix(s: &str) -> Option<MajorMinor> {
        let mut it = s.splitn(3, '.');
        let major = it.next()?;
        let rest = it.next()?;
        let minor: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if major.is_empty() || minor.is_empty() || !major.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(MajorMinor::new(major.parse().ok()?, minor.parse().ok()?))
    }
}

impl fmt::Display for MajorMinor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for MajorMinor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s
            .split_once('.')
            .ok_or_else(|| format!("`{s}` is not of the form X.Y"))?;
        let p = |x: &str| {
            if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("`{s}` is not of the form X.Y"));
            }
            x.parse::<u32>()
                .map_err(|_| format!("`{s}` has a number too large"))
        };
        Ok(MajorMinor::new(p(a)?, p(b)?))
    }
}

impl Serialize for MajorMinor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MajorMinor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The C library family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LibcFamily {
    /// GNU libc (manylinux wheels).
    Glibc,
    /// musl (musllinux wheels).
    Musl,
}

/// The C library of the image: family and `major.minor` version.
///
/// Written and parsed as `glibc-2.36` / `musl-1.2` (the `--libc` flag's syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Libc {
    /// glibc or musl.
    pub family: LibcFamily,
    /// The version, e.g. `2.36`.
    pub version: MajorMinor,
}

impl Libc {
    /// glibc `major.minor`.
    pub const fn glibc(major: u32, minor: u32) -> Self {
        Libc {
            family: LibcFamily::Glibc,
            version: MajorMinor::new(major, minor),
        }
    }

    /// musl `major.minor`.
    pub const fn musl(major: u32, minor: u32) -> Self {
        Libc {
            family: LibcFamily::Musl,
            version: MajorMinor::new(major, minor),
        }
    }
}

impl fmt::Display for Libc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fam = match self.family {
            LibcFamily::Glibc => "glibc",
            LibcFamily::Musl => "musl",
        };
        write!(f, "{fam}-{}", self.version)
    }
}

impl FromStr for Libc {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "`{s}` is not a libc: expected `glibc-X.Y` (e.g. glibc-2.36) or `musl-X.Y` (e.g. musl-1.2)"
            )
        };
        let (fam, ver) = s.split_once(['-', ':', ' ']).ok_or_else(bad)?;
        let family = match fam.to_ascii_lowercase().as_str() {
            "glibc" | "gnu" => LibcFamily::Glibc,
            "musl" => LibcFamily::Musl,
            _ => return Err(bad()),
        };
        let version = ver.parse::<MajorMinor>().map_err(|_| bad())?;
        Ok(Libc { family, version })
    }
}

/// The OCI platform of the image: rbuild-oci's [`rbuild_oci::Platform`], the one platform type of
/// rbuild (re-exported here so `rbuild_python::target::Platform` keeps working).
pub use rbuild_oci::Platform;

/// How a [`Target`] writes its platform: `os`, `architecture`, then `variant` (and the fields only
/// Windows images have, when set), in that order. The order differs from the OCI image config's,
/// and must not change, because a target's JSON is stored in cache records and image labels.
mod platform_json {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Platform;

    #[derive(Serialize, Deserialize)]
    struct TargetPlatform {
        os: String,
        architecture: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variant: Option<String>,
        #[serde(
            rename = "os.version",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        os_version: Option<String>,
        #[serde(
            rename = "os.features",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        os_features: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        features: Option<Vec<String>>,
    }

    pub(super) fn serialize<S: Serializer>(p: &Platform, s: S) -> Result<S::Ok, S::Error> {
        TargetPlatform {
            os: p.os.clone(),
            architecture: p.architecture.clone(),
            variant: p.variant.clone(),
            os_version: p.os_version.clone(),
            os_features: p.os_features.clone(),
            features: p.features.clone(),
        }
        .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Platform, D::Error> {
        let t = TargetPlatform::deserialize(d)?;
        Ok(Platform {
            architecture: t.architecture,
            os: t.os,
            os_version: t.os_version,
            os_features: t.os_features,
            variant: t.variant,
            features: t.features,
        })
    }
}

/// Where pip would install a wheel's parts in the image (absolute paths inside the image).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scheme {
    /// Pure-Python modules (`.../site-packages`).
    pub purelib: String,
    /// Extension modules (usually equal to `purelib`).
    pub platlib: String,
    /// Console scripts (`/usr/local/bin`).
    pub scripts: String,
    /// C headers: the base directory; the installer appends the distribution name.
    pub headers: String,
    /// The `.data/data` root (`/usr/local`).
    pub data: String,
}

/// A distribution already installed in the base image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstalledDist {
    /// The name, normalized per PEP 503.
    pub name: String,
    /// The version as recorded in METADATA (or the directory name).
    pub version: String,
    /// The absolute path of its `.dist-info` directory.
    pub dist_info_path: String,
    /// Whether it has a RECORD (without one, pip cannot uninstall it).
    pub has_record: bool,
}

/// Everything rbuild needs to know about the Python of one platform of a base image.
///
/// It is recorded in built images, so its serialization is stable: fields in a fixed order, `installed`
/// sorted by name then path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The OCI platform.
    #[serde(with = "platform_json")]
    pub platform: Platform,
    /// CPython `X.Y`.
    pub python_version: MajorMinor,
    /// `X.Y.Z` when it could be read from the image (or was given).
    pub python_full_version: Option<String>,
    /// The interpreter's absolute path in the image (`/usr/local/bin/python3.12`).
    pub interpreter: String,
    /// The install scheme pip would use.
    pub scheme: Scheme,
    /// The C library.
    pub libc: Libc,
    /// The wheel CPU name (`x86_64`, `aarch64`, `armv7l`, `i686`, `ppc64le`, `s390x`).
    pub arch: String,
    /// Distributions already installed, sorted.
    pub installed: Vec<InstalledDist>,
}

impl Target {
    /// The input of the tag computation (default `linux_ARCH` policy).
    pub fn tag_target(&self) -> TagTarget {
        TagTarget::new(self.python_version, self.libc, &self.arch)
    }

    /// The ordered compatibility tags of this target.
    pub fn tags(&self) -> Tags {
        Tags::for_target(&self.tag_target())
    }

    /// The PEP 508 marker environment of this target (no overrides; add them with
    /// [`MarkerEnv::with_override`]).
    pub fn marker_env(&self) -> MarkerEnv {
        MarkerEnv::cpython_linux(
            self.python_version,
            self.python_full_version.as_deref(),
            &self.arch,
        )
    }
}

/// The wheel CPU name for an OCI architecture and variant, or `None` when rbuild does not know it.
///
/// `amd64`→`x86_64`, `arm64`→`aarch64`, `arm/v7` (and `arm` without a variant)→`armv7l`,
/// `arm/v6`→`armv6l`, `386`→`i686`, `ppc64le`, `s390x`, `riscv64`, `loong64`→`loongarch64`.
pub fn wheel_arch_for(oci_arch: &str, variant: Option<&str>) -> Option<&'static str> {
    Some(match (oci_arch, variant) {
        ("amd64", _) => "x86_64",
        ("arm64", _) => "aarch64",
        ("arm", None | Some("v7")) => "armv7l",
        ("arm", Some("v6")) => "armv6l",
        ("386", _) => "i686",
        ("ppc64le", _) => "ppc64le",
        ("s390x", _) => "s390x",
        ("riscv64", _) => "riscv64",
        ("loong64", _) => "loongarch64",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm64(variant: Option<&str>) -> Platform {
        Platform::new("linux", "arm64", variant)
    }

    #[test]
    fn libc_round_trips() {
        for s in ["glibc-2.36", "musl-1.2"] {
            assert_eq!(s.parse::<Libc>().unwrap().to_string(), s);
        }
        assert!("glibc".parse::<Libc>().is_err());
        assert!("bsd-1.0".parse::<Libc>().is_err());
        assert!("glibc-2".parse::<Libc>().is_err());
    }

    #[test]
    fn arch_mapping() {
        assert_eq!(wheel_arch_for("amd64", None), Some("x86_64"));
        assert_eq!(wheel_arch_for("arm64", Some("v8")), Some("aarch64"));
        assert_eq!(wheel_arch_for("arm", Some("v7")), Some("armv7l"));
        assert_eq!(wheel_arch_for("386", None), Some("i686"));
        assert_eq!(wheel_arch_for("ppc64le", None), Some("ppc64le"));
        assert_eq!(wheel_arch_for("s390x", None), Some("s390x"));
        assert_eq!(wheel_arch_for("mips64le", None), None);
        assert_eq!(wheel_arch_for("arm", Some("v5")), None);
    }

    #[test]
    fn major_minor_prefix() {
        assert_eq!(
            MajorMinor::parse_prefix("2.36-9+deb12u4"),
            Some(MajorMinor::new(2, 36))
        );
        assert_eq!(
            MajorMinor::parse_prefix("1.2.4-r2"),
            Some(MajorMinor::new(1, 2))
        );
        assert_eq!(MajorMinor::parse_prefix("2"), None);
        assert_eq!(MajorMinor::parse_prefix("x.1"), None);
    }

    /// The JSON of a `Target` is stored in cache records and in an image label: pinned here, byte
    /// for byte, so that a change of its types (such as `Platform` becoming rbuild-oci's) cannot
    /// change it.
    #[test]
    fn target_json_is_pinned() {
        let target = |variant: Option<&str>| Target {
            platform: arm64(variant),
            python_version: MajorMinor::new(3, 11),
            python_full_version: Some("3.11.2".into()),
            interpreter: "/usr/bin/python3.11".into(),
            scheme: Scheme {
                purelib: "/usr/local/lib/python3.11/dist-packages".into(),
                platlib: "/usr/local/lib/python3.11/dist-packages".into(),
                scripts: "/usr/local/bin".into(),
                headers: "/usr/local/include/python3.11".into(),
                data: "/usr/local".into(),
            },
            libc: Libc::glibc(2, 36),
            arch: "aarch64".into(),
            installed: vec![InstalledDist {
                name: "pip".into(),
                version: "23.0.1".into(),
                dist_info_path: "/usr/lib/python3/dist-packages/pip-23.0.1.dist-info".into(),
                has_record: true,
            }],
        };
        let tail = r#""python_version":"3.11","python_full_version":"3.11.2","interpreter":"/usr/bin/python3.11","scheme":{"purelib":"/usr/local/lib/python3.11/dist-packages","platlib":"/usr/local/lib/python3.11/dist-packages","scripts":"/usr/local/bin","headers":"/usr/local/include/python3.11","data":"/usr/local"},"libc":{"family":"glibc","version":"2.36"},"arch":"aarch64","installed":[{"name":"pip","version":"23.0.1","dist_info_path":"/usr/lib/python3/dist-packages/pip-23.0.1.dist-info","has_record":true}]}"#;
        for (variant, platform) in [
            (
                None,
                r#"{"platform":{"os":"linux","architecture":"arm64"},"#,
            ),
            (
                Some("v8"),
                r#"{"platform":{"os":"linux","architecture":"arm64","variant":"v8"},"#,
            ),
        ] {
            let t = target(variant);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("{platform}{tail}"));
            let back: Target = serde_json::from_str(&json).unwrap();
            assert_eq!(back, t);
        }
    }
}
