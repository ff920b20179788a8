//! The base image's OS packages, from its package database files.
//!
//! [`wanted`] says which paths of the merged base rootfs to read (relative, no leading `/`):
//! `var/lib/dpkg/status`, every file of `var/lib/dpkg/status.d/` (distroless), `lib/apk/db/installed`,
//! `etc/os-release` and `usr/lib/os-release`; an rpm database (`var/lib/rpm/…`,
//! `usr/lib/sysimage/rpm/…`) is only noted. The caller reads the layers (whiteouts applied) and
//! gives the texts to [`OsFiles`]; [`OsFiles::inventory`] parses them.
//!
//! dpkg: a package is listed when its `Status` ends in `installed` (not `config-files`,
//! `half-installed`, …). apk: every record of the installed database.

use std::collections::BTreeMap;

use crate::{OsInventory, OsPackage, PackageManager};

/// What to do with a path of the base rootfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Not needed.
    No,
    /// Read its text into [`OsFiles::files`].
    Read,
    /// Only note that it exists ([`OsFiles::rpm_db`]).
    Note,
}

const DPKG_STATUS: &str = "var/lib/dpkg/status";
const DPKG_STATUS_D: &str = "var/lib/dpkg/status.d/";
const APK_INSTALLED: &str = "lib/apk/db/installed";
const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];

/// Whether `path` (relative, as in a layer) is one of the files [`OsFiles`] reads.
pub fn wanted(path: &str) -> Want {
    if path == DPKG_STATUS || path == APK_INSTALLED || OS_RELEASE.contains(&path) {
        return Want::Read;
    }
    if let Some(name) = path.strip_prefix(DPKG_STATUS_D)
        && !name.is_empty()
        && !name.contains('/')
        && !name.ends_with(".md5sums")
    {
        return Want::Read;
    }
    let rpm = ["var/lib/rpm/", "usr/lib/sysimage/rpm/"];
    if rpm.iter().any(|d| {
        path.strip_prefix(d)
            .is_some_and(|n| matches!(n, "Packages" | "Packages.db" | "rpmdb.sqlite"))
    }) {
        return Want::Note;
    }
    Want::No
}

/// The package database files found in a base rootfs.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OsFiles {
    /// Path (relative) → text, for every path [`wanted`] says to read.
    pub files: BTreeMap<String, String>,
    /// The rpm database found, if any (its path).
    pub rpm_db: Option<String>,
}

impl OsFiles {
    /// The OS inventory these files describe. `None` files: [`OsInventory::None`].
    pub fn inventory(&self) -> OsInventory {
        let release = OS_RELEASE
            .iter()
            .find_map(|p| self.files.get(*p))
            .map(|t| parse_os_release(t))
            .unwrap_or_default();
        let distro_id = release.get("ID").cloned();
        let distro_version = release.get("VERSION_ID").cloned();
        let mut dpkg: Vec<OsPackage> = Vec::new();
        let mut has_dpkg = false;
        for (path, text) in &self.files {
            if path == DPKG_STATUS || path.starts_with(DPKG_STATUS_D) {
                has_dpkg = true;
                dpkg.extend(parse_dpkg_status(text));
            }
        }
        let (manager, mut packages) = if has_dpkg {
            (PackageManager::Dpkg, dpkg)
        } else if let Some(text) = self.files.get(APK_INSTALLED) {
            (PackageManager::Apk, parse_apk_installed(text))
        } else if let Some(db) = &self.rpm_db {
            return OsInventory::Unreadable {
                reason: format!(
                    "the base image has an rpm database (/{db}), which rbuild does not read without running rpm; its OS packages are not listed"
                ),
            };
        } else {
            return OsInventory::None;
        };
        packages.sort();
        packages.dedup();
        OsInventory::Packages {
            manager,
            distro_id,
            distro_version,
            packages,
        }
    }
}

/// `KEY=value` lines of os-release, quotes removed.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// The installed packages of a dpkg status file (RFC 822-style paragraphs).
pub fn parse_dpkg_status(text: &str) -> Vec<OsPackage> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        for line in para.lines() {
            if line.starts_with([' ', '\t']) {
                continue; // a continuation line (Description, Conffiles)
            }
            if let Some((k, v)) = line.split_once(':') {
                fields.insert(k.trim(), v.trim());
            }
        }
        let (Some(name), Some(version)) = (fields.get("Package"), fields.get("Version")) else {
            continue;
        };
        // Distroless status.d files carry no Status: a file there is an installed package.
        if let Some(status) = fields.get("Status")
            && status.split_whitespace().last() != Some("installed")
        {
            continue;
        }
        if name.is_empty() || version.is_empty() {
            continue;
        }
        let source = fields
            .get("Source")
            .map(|s| s.split_whitespace().next().unwrap_or(s).to_string())
            .filter(|s| !s.is_empty() && s != name);
        out.push(OsPackage {
            name: name.to_string(),
            version: version.to_string(),
            arch: fields
                .get("Architecture")
                .filter(|a| !a.is_empty())
                .map(|a| a.to_string()),
            source,
        });
    }
    out
}

/// The packages of an apk installed database (`P:`, `V:`, `A:`, `o:` lines; records separated by
/// blank lines).
pub fn parse_apk_installed(text: &str) -> Vec<OsPackage> {
    let mut out = Vec::new();
    for record in text.split("\n\n") {
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        for line in record.lines() {
            if let Some((k, v)) = line.split_once(':')
                && k.len() == 1
            {
                fields.entry(k).or_insert(v);
            }
        }
        let (Some(name), Some(version)) = (fields.get("P"), fields.get("V")) else {
            continue;
        };
        out.push(OsPackage {
            name: name.to_string(),
            version: version.to_string(),
            arch: fields.get("A").map(|a| a.to_string()),
            source: fields.get("o").map(|o| o.to_string()).filter(|o| o != name),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STATUS: &str = "Package: libc6\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nMulti-Arch: same\nSource: glibc\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n Contains the standard libraries.\n\nPackage: oldpkg\nStatus: deinstall ok config-files\nVersion: 1.0\n\nPackage: python3.11\nStatus: install ok installed\nArchitecture: amd64\nSource: python3.11 (3.11.2-6)\nVersion: 3.11.2-6+deb12u2\n";

    #[test]
    fn dpkg_lists_installed_packages_only() {
        let p = parse_dpkg_status(STATUS);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "libc6");
        assert_eq!(p[0].version, "2.36-9+deb12u4");
        assert_eq!(p[0].arch.as_deref(), Some("amd64"));
        assert_eq!(p[0].source.as_deref(), Some("glibc"));
        assert_eq!(p[1].name, "python3.11");
        assert_eq!(p[1].source, None, "the source is the package itself");
    }

    #[test]
    fn apk_records_are_read() {
        let text = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\no:musl\n\nC:Q1def=\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\no:openssl\n";
        let p = parse_apk_installed(text);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].name.as_str(), p[0].source.as_deref()), ("musl", None));
        assert_eq!(p[1].source.as_deref(), Some("openssl"));
    }

    #[test]
    fn the_inventory_names_the_database_and_distro() {
        assert_eq!(wanted("var/lib/dpkg/status"), Want::Read);
        assert_eq!(wanted("var/lib/dpkg/status.d/base"), Want::Read);
        assert_eq!(wanted("var/lib/dpkg/status.d/base.md5sums"), Want::No);
        assert_eq!(wanted("var/lib/rpm/rpmdb.sqlite"), Want::Note);
        assert_eq!(wanted("etc/passwd"), Want::No);
        let mut f = OsFiles::default();
        f.files.insert("var/lib/dpkg/status".into(), STATUS.into());
        f.files.insert(
            "etc/os-release".into(),
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n".into(),
        );
        match f.inventory() {
            OsInventory::Packages {
                manager,
                distro_id,
                distro_version,
                packages,
            } => {
                assert_eq!(manager, PackageManager::Dpkg);
                assert_eq!(distro_id.as_deref(), Some("debian"));
                assert_eq!(distro_version.as_deref(), Some("12"));
                assert_eq!(packages.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        let rpm = OsFiles {
            files: BTreeMap::new(),
            rpm_db: Some("var/lib/rpm/rpmdb.sqlite".into()),
        };
        match rpm.inventory() {
            OsInventory::Unreadable { reason } => {
                assert!(reason.contains("/var/lib/rpm/rpmdb.sqlite"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(OsFiles::default().inventory(), OsInventory::None);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,400}") {
            let _ = parse_dpkg_status(&s);
            let _ = parse_apk_installed(&s);
            let _ = parse_os_release(&s);
        }
    }
}
