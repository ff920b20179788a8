//! Platforms (`os/arch[/variant]`) and choosing one in an index.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The platform of an image, as in an index entry or an image config.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, `arm`, `386`, `ppc64le`, `s390x`, ...).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// OS version (Windows only).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features (Windows only).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant (`v7`, `v8`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// CPU features (reserved by the spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
}

/// A platform string that does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid platform {0:?}: expected os/arch or os/arch/variant, e.g. linux/amd64 or linux/arm/v7"
)]
pub struct PlatformParseError(pub String);

impl Platform {
    /// `os/arch` with an optional variant.
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Self {
        Platform {
            architecture: arch.to_string(),
            os: os.to_string(),
            os_version: None,
            os_features: None,
            variant: variant.map(str::to_string),
            features: None,
        }
    }

    /// `linux/amd64`.
    pub fn linux_amd64() -> Self {
        Self::new("linux", "amd64", None)
    }

    /// The platform of the machine running rbuild, as an image platform (`linux/<GOARCH>`).
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        let variant = if arch == "arm" { Some("v7") } else { None };
        Self::new("linux", arch, variant)
    }

    /// The variant with the defaults the container ecosystem applies (arm64 → `v8`, arm → `v7`).
    fn normalized_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None) => Some("v8"),
            ("arm", None) => Some("v7"),
            (_, v) => v,
        }
    }

    /// True when an index entry with platform `self` satisfies a request for `wanted`: os and
    /// architecture equal and variants equal after defaults; a request without variant matches any
    /// variant of the architecture only when the entry's variant is the default one.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        if self.os != wanted.os || self.architecture != wanted.architecture {
            return false;
        }
        match wanted.variant.as_deref() {
            None => {
                self.normalized_variant() == wanted.normalized_variant() || self.variant.is_none()
            }
            Some(_) => self.normalized_variant() == wanted.normalized_variant(),
        }
    }

    /// Attestation and other non-runnable entries (`unknown/unknown`).
    pub fn is_unknown(&self) -> bool {
        self.os == "unknown" || self.architecture == "unknown"
    }

    /// Parses a comma-separated list (`linux/amd64,linux/arm64`).
    pub fn parse_list(s: &str) -> Result<Vec<Platform>, PlatformParseError> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Platform::from_str)
            .collect()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => {
                Ok(Platform::new(os, arch, Some(variant)))
            }
            _ => Err(PlatformParseError(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_and_matching() {
        let p: Platform = "linux/arm/v7".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux/amd64/v2/x".parse::<Platform>().is_err());
        let arm64 = Platform::new("linux", "arm64", Some("v8"));
        assert!(arm64.satisfies(&"linux/arm64".parse().unwrap()));
        assert!(
            Platform::new("linux", "arm64", None).satisfies(&"linux/arm64/v8".parse().unwrap())
        );
        assert!(
            !Platform::new("linux", "arm", Some("v6")).satisfies(&"linux/arm".parse().unwrap())
        );
        assert!(!Platform::linux_amd64().satisfies(&"linux/arm64".parse().unwrap()));
        assert_eq!(
            Platform::parse_list("linux/amd64, linux/arm64")
                .unwrap()
                .len(),
            2
        );
    }
}
