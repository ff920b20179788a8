//! The version a VCS-versioned project (setuptools-scm, hatch-vcs) would get, computed on the build
//! machine.
//!
//! setuptools-scm (which hatch-vcs uses) asks `git` for the version. The base image usually has no
//! git, and the backend runs there, so rbuild asks the build machine's `git` instead and hands the
//! result to the backend as `SETUPTOOLS_SCM_PRETEND_VERSION`, the variable setuptools-scm
//! documents for builds without a repository. The version follows setuptools-scm's default
//! schemes (`guess-next-dev` with `node-and-date`):
//!
//! | repository state | version |
//! |---|---|
//! | on tag `v1.2.3`, clean | `1.2.3` |
//! | 4 commits after `v1.2.3` | `1.2.4.dev4+gabc1234` |
//! | uncommitted changes | `…+gabc1234.d20261204` (today's date, UTC) |
//! | no tag | `0.1.devN+gabc1234` (N = commits) |
//!
//! A `SETUPTOOLS_SCM_PRETEND_VERSION` set by the user wins.

use std::path::Path;
use std::process::Command;

use rbuild_python::version::Version;

/// Whether `build_requires` (the `[build-system] requires` list) uses a VCS versioning plugin.
pub fn uses_scm_version(build_requires: &[String]) -> bool {
    build_requires.iter().any(|r| {
        let r = r.to_ascii_lowercase().replace('_', "-");
        r.starts_with("setuptools-scm") || r.starts_with("hatch-vcs")
    })
}

/// The version setuptools-scm would compute for the git checkout containing `dir`, asked of the
/// build machine's `git`. Errors say what is missing and how to give the version instead.
pub fn scm_version(dir: &Path) -> Result<String, String> {
    if let Ok(v) = std::env::var("SETUPTOOLS_SCM_PRETEND_VERSION")
        && !v.trim().is_empty()
    {
        return Ok(v.trim().to_string());
    }
    let fix = "set SETUPTOOLS_SCM_PRETEND_VERSION to the version to build";
    let git = |args: &[&str]| -> Result<String, String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env_remove("GIT_DIR")
            .output()
            .map_err(|e| {
                format!("its version comes from git, which cannot be run here ({e}); {fix}")
            })?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    git(&["rev-parse", "--git-dir"]).map_err(|e| {
        format!(
            "its version comes from git, but {} is not in a git checkout ({e}); {fix}",
            dir.display()
        )
    })?;
    let dirty = !git(&["status", "--porcelain", "--untracked-files=no"])?.is_empty();
    let date = || chrono_date_utc();
    match git(&["describe", "--tags", "--long", "--match", "*[0-9]*"]) {
        Ok(d) => from_describe(&d, dirty, date),
        Err(_) => {
            let count = git(&["rev-list", "--count", "HEAD"]).unwrap_or_else(|_| "0".into());
            let hash = git(&["rev-parse", "--short", "HEAD"])
                .map(|h| format!("g{h}"))
                .unwrap_or_default();
            Ok(with_local(format!("0.1.dev{count}"), &hash, dirty, date))
        }
    }
}

/// `TAG-DISTANCE-gHASH` (from `git describe --long`) as setuptools-scm's version.
fn from_describe(describe: &str, dirty: bool, date: impl Fn() -> String) -> Result<String, String> {
    let bad = || format!("cannot read `git describe` output {describe:?}");
    let (rest, hash) = describe.rsplit_once('-').ok_or_else(bad)?;
    let (tag, distance) = rest.rsplit_once('-').ok_or_else(bad)?;
    let distance: u64 = distance.parse().map_err(|_| bad())?;
    // setuptools-scm's default tag regex: an optional prefix, then the version.
    let start = tag.find(|c: char| c.is_ascii_digit()).ok_or_else(bad)?;
    let version = Version::parse(&tag[start..]).map_err(|e| {
        format!(
            "the tag {tag:?} is not a version ({e}); {}",
            "tag releases as X.Y.Z"
        )
    })?;
    if distance == 0 && !dirty {
        return Ok(version.to_string());
    }
    let mut release = version.release().to_vec();
    if let Some(last) = release.last_mut() {
        *last += 1;
    }
    let next = Version::from_release(&release);
    Ok(with_local(
        format!("{next}.dev{distance}"),
        hash,
        dirty,
        date,
    ))
}

fn with_local(public: String, hash: &str, dirty: bool, date: impl Fn() -> String) -> String {
    let mut local: Vec<String> = Vec::new();
    if !hash.is_empty() {
        local.push(hash.to_string());
    }
    if dirty {
        local.push(format!("d{}", date()));
    }
    if local.is_empty() {
        public
    } else {
        format!("{public}+{}", local.join("."))
    }
}

/// Today's date (UTC) as `YYYYMMDD`.
fn chrono_date_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> String {
        "20261204".into()
    }

    #[test]
    fn versions_follow_setuptools_scm_defaults() {
        let v = |d: &str, dirty: bool| from_describe(d, dirty, today).unwrap();
        assert_eq!(v("v1.2.3-0-gabc1234", false), "1.2.3");
        assert_eq!(v("1.2.3-0-gabc1234", false), "1.2.3");
        assert_eq!(v("v1.2.3-4-gabc1234", false), "1.2.4.dev4+gabc1234");
        assert_eq!(
            v("v1.2.3-0-gabc1234", true),
            "1.2.4.dev0+gabc1234.d20261204"
        );
        assert_eq!(v("release-2.0-1-gffff000", false), "2.1.dev1+gffff000");
        assert!(from_describe("garbage", false, today).is_err());
        assert!(from_describe("vX-0-gabc", false, today).is_err());
    }

    #[test]
    fn the_date_is_a_calendar_date() {
        let d = chrono_date_utc();
        assert_eq!(d.len(), 8);
        assert!(d.as_str() >= "20250101", "{d}");
    }

    #[test]
    fn plugins_are_recognised() {
        let r = |s: &[&str]| uses_scm_version(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert!(r(&["hatchling", "hatch-vcs"]));
        assert!(r(&["setuptools>=64", "setuptools_scm[toml]>=8"]));
        assert!(!r(&["hatchling"]));
    }

    #[test]
    fn a_real_checkout() {
        if Command::new("git").arg("--version").output().is_err() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        std::fs::write(dir.path().join("a"), "1").unwrap();
        git(&["add", "a"]);
        git(&["commit", "-qm", "one"]);
        git(&["tag", "v3.1.0"]);
        assert_eq!(scm_version(dir.path()).unwrap(), "3.1.0");
        std::fs::write(dir.path().join("a"), "2").unwrap();
        git(&["commit", "-qam", "two"]);
        let v = scm_version(dir.path()).unwrap();
        assert!(v.starts_with("3.1.1.dev1+g"), "{v}");
    }
}
