//! Platform compatibility tags for a CPython-on-Linux target, in the order `packaging.tags.sys_tags()`
//! would list them inside the image.
//!
//! The list is built exactly as `packaging` 26.3 (the version pip 26.3 vendors) builds it, but from the
//! target's Python version, libc and CPU instead of the running machine's:
//!
//! 1. `cpXY-cpXY-P` for every platform `P`, then `cpXY-abi3-P`, then `cpXY-none-P`, then `cpXW-abi3-P`
//!    for every older minor `W` down to `cp32`;
//! 2. `py3Y-none-P`, `py3-none-P`, `py3W-none-P` … `py30-none-P`;
//! 3. `cpXY-none-any`, then `py3Y-none-any`, `py3-none-any`, `py3W-none-any` … `py30-none-any`.
//!
//! The platforms `P`, best first, are:
//!
//! - `linux_ARCH` (unportable wheels, see below);
//! - on glibc: `manylinux_2_Z_ARCH` from the target's glibc minor down to the oldest level for the CPU
//!   (`2_5` on x86_64 and i686, `2_17` everywhere else), each followed by its legacy alias where one
//!   exists (`manylinux2014` = 2_17, `manylinux2010` = 2_12, `manylinux1` = 2_5). Only CPUs with a
//!   manylinux definition get them (x86_64, i686, aarch64, armv7l, ppc64, ppc64le, s390x, riscv64,
//!   loongarch64); armv7l is assumed to be the hard-float ABI, as Debian's `armhf` and every `arm/v7`
//!   Python image are;
//! - on musl: `musllinux_1_Y_ARCH` from the target's musl minor down to `musllinux_1_0`.
//!
//! # `linux_ARCH`
//!
//! PyPI refuses `linux_*` wheels, so they only ever come from a `--find-links` directory, typically
//! wheels the user built for this target. rbuild accepts them and, like `packaging` ≥ 26.3 (pypa/packaging
//! #160: a wheel built for this very platform is the most specific), ranks them **first**. Older
//! `packaging` releases (such as Debian's 23.0) rank them last; [`NativeLinuxTag::Last`] reproduces that
//! and [`NativeLinuxTag::Never`] refuses them.
//!
//! Targets that `packaging` itself would see differently, and rbuild does not model: an `arm/v7` image
//! run on an arm64 kernel (Python reports `armv8l` there and adds `linux_armv8l`/`manylinux_*_armv8l`),
//! free-threaded (`cp313t`) and debug (`cp312d`) builds.
//!
//! ```
//! use rbuild_python::tags::{TagTarget, Tags};
//! use rbuild_python::target::{Libc, MajorMinor};
//! let tags = Tags::for_target(&TagTarget::new(
//!     MajorMinor::new(3, 12),
//!     Libc::glibc(2, 36),
//!     "x86_64",
//! ));
//! let s = tags.to_strings();
//! assert_eq!(s[0], "cp312-cp312-linux_x86_64");
//! assert_eq!(s[1], "cp312-cp312-manylinux_2_36_x86_64");
//! assert_eq!(s.last().unwrap(), "py30-none-any");
//! ```

use std::collections::HashMap;

use crate::target::{Libc, LibcFamily, MajorMinor};
use crate::wheel_name::{WheelFilename, WheelTag};

/// Where unportable `linux_ARCH` wheels rank (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NativeLinuxTag {
    /// Before every manylinux/musllinux platform, as `packaging` ≥ 26.3 (pip ≥ 26.3) does.
    #[default]
    First,
    /// After every manylinux/musllinux platform, as `packaging` < 26.3 does.
    Last,
    /// Not compatible at all.
    Never,
}

/// What the tag list is computed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTarget {
    /// CPython `X.Y`.
    pub python_version: MajorMinor,
    /// The C library of the image.
    pub libc: Libc,
    /// The wheel CPU name (`x86_64`, `aarch64`, `armv7l`, `i686`, `ppc64le`, `s390x`, …).
    pub arch: String,
    /// Where `linux_ARCH` ranks.
    pub native_linux: NativeLinuxTag,
}

impl TagTarget {
    /// A target with the default [`NativeLinuxTag`] policy.
    pub fn new(python_version: MajorMinor, libc: Libc, arch: &str) -> Self {
        TagTarget {
            python_version,
            libc,
            arch: arch.to_string(),
            native_linux: NativeLinuxTag::default(),
        }
    }
}

/// CPUs with a manylinux definition (PEP 599 / PEP 600 as `packaging` knows them).
fn has_manylinux(arch: &str) -> bool {
    matches!(
        arch,
        "x86_64"
            | "i686"
            | "aarch64"
            | "armv7l"
            | "ppc64"
            | "ppc64le"
            | "s390x"
            | "loongarch64"
            | "riscv64"
    )
}

/// The glibc minor `packaging` assumes as the last one of a past major version.
const LAST_GLIBC_MINOR: u32 = 50;

/// The platform tags of a target, best first (see the module docs).
pub fn platform_tags(target: &TagTarget) -> Vec<String> {
    let arch = target.arch.as_str();
    let mut out = Vec::new();
    let native = format!("linux_{arch}");
    if target.native_linux == NativeLinuxTag::First {
        out.push(native.clone());
    }
    let MajorMinor { major, minor } = target.libc.version;
    match target.libc.family {
        LibcFamily::Glibc if has_manylinux(arch) => {
            // The oldest level is 2_17 except on x86, where it is 2_5.
            let too_old: (u32, i64) = if matches!(arch, "x86_64" | "i686") {
                (2, 4)
            } else {
                (2, 16)
            };
            let mut maxes = vec![(major, minor)];
            for m in (2..major).rev() {
                maxes.push((m, LAST_GLIBC_MINOR));
            }
            for (max_major, max_minor) in maxes {
                let min_minor = if max_major == too_old.0 {
                    too_old.1
                } else {
                    -1
                };
                let mut m = i64::from(max_minor);
                while m > min_minor {
                    out.push(format!("manylinux_{max_major}_{m}_{arch}"));
                    let legacy = match (max_major, m) {
                        (2, 17) => Some("manylinux2014"),
                        (2, 12) => Some("manylinux2010"),
                        (2, 5) => Some("manylinux1"),
                        _ => None,
                    };
                    if let Some(l) = legacy {
                        out.push(format!("{l}_{arch}"));
                    }
                    m -= 1;
                }
            }
        }
        LibcFamily::Glibc => {}
        LibcFamily::Musl => {
            for m in (0..=minor).rev() {
                out.push(format!("musllinux_{major}_{m}_{arch}"));
            }
        }
    }
    if target.native_linux == NativeLinuxTag::Last {
        out.push(native);
    }
    out
}

/// The ordered list of tags a target supports, with a fast rank lookup.
#[derive(Debug, Clone)]
pub struct Tags {
    tags: Vec<WheelTag>,
    ranks: HashMap<WheelTag, usize>,
}

impl Tags {
    /// Computes the tags `packaging.tags.sys_tags()` would give inside the target image.
    pub fn for_target(target: &TagTarget) -> Tags {
        let platforms = platform_tags(target);
        let MajorMinor { major, minor } = target.python_version;
        let interp = format!("cp{major}{minor}");
        let mut tags = Vec::new();
        let mut push = |i: &str, a: &str, p: &str| tags.push(WheelTag::new(i, a, p));

        // cpython_tags(): the interpreter's own ABI first.
        let mut abi = interp.clone();
        if (major, minor) < (3, 8) {
            abi.push('m');
        }
        for p in &platforms {
            push(&interp, &abi, p);
        }
        let abi3 = (major, minor) >= (3, 2);
        if abi3 {
            for p in &platforms {
                push(&interp, "abi3", p);
            }
        }
        for p in &platforms {
            push(&interp, "none", p);
        }
        if abi3 {
            for older in (2..minor).rev() {
                for p in &platforms {
                    push(&format!("cp{major}{older}"), "abi3", p);
                }
            }
        }

        // compatible_tags(interpreter="cpXY").
        let mut py_range = vec![format!("py{major}{minor}"), format!("py{major}")];
        py_range.extend((0..minor).rev().map(|m| format!("py{major}{m}")));
        for py in &py_range {
            for p in &platforms {
                push(py, "none", p);
            }
        }
        push(&interp, "none", "any");
        for py in &py_range {
            push(py, "none", "any");
        }

        let mut ranks = HashMap::with_capacity(tags.len());
        for (i, t) in tags.iter().enumerate() {
            ranks.entry(t.clone()).or_insert(i);
        }
        Tags { tags, ranks }
    }

    /// The rank of a tag (0 is best), or `None` when the target does not support it.
    pub fn rank(&self, tag: &WheelTag) -> Option<usize> {
        self.ranks.get(tag).copied()
    }

    /// The best rank among a wheel's tags, or `None` when the wheel does not fit the target. Among
    /// several wheels of one release, the one with the lowest rank is the one pip would install.
    pub fn best_rank(&self, wheel: &WheelFilename) -> Option<usize> {
        wheel.tags.iter().filter_map(|t| self.rank(t)).min()
    }

    /// Whether the wheel fits the target.
    pub fn is_compatible(&self, wheel: &WheelFilename) -> bool {
        self.best_rank(wheel).is_some()
    }

    /// The tags, best first.
    pub fn iter(&self) -> std::slice::Iter<'_, WheelTag> {
        self.tags.iter()
    }

    /// The tags as strings (`cp312-cp312-manylinux_2_36_x86_64`), best first.
    pub fn to_strings(&self) -> Vec<String> {
        self.tags.iter().map(|t| t.to_string()).collect()
    }

    /// How many tags there are.
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    /// Whether there are none (never true for a real target).
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(py: (u32, u32), libc: Libc, arch: &str, native: NativeLinuxTag) -> TagTarget {
        TagTarget {
            python_version: MajorMinor::new(py.0, py.1),
            libc,
            arch: arch.into(),
            native_linux: native,
        }
    }

    #[test]
    fn glibc_platforms_on_aarch64_stop_at_2_17() {
        let p = platform_tags(&target(
            (3, 11),
            Libc::glibc(2, 19),
            "aarch64",
            NativeLinuxTag::Last,
        ));
        assert_eq!(
            p,
            [
                "manylinux_2_19_aarch64",
                "manylinux_2_18_aarch64",
                "manylinux_2_17_aarch64",
                "manylinux2014_aarch64",
                "linux_aarch64"
            ]
        );
    }

    #[test]
    fn glibc_platforms_on_i686_reach_manylinux1() {
        let p = platform_tags(&target(
            (3, 11),
            Libc::glibc(2, 13),
            "i686",
            NativeLinuxTag::First,
        ));
        assert_eq!(
            p,
            [
                "linux_i686",
                "manylinux_2_13_i686",
                "manylinux_2_12_i686",
                "manylinux2010_i686",
                "manylinux_2_11_i686",
                "manylinux_2_10_i686",
                "manylinux_2_9_i686",
                "manylinux_2_8_i686",
                "manylinux_2_7_i686",
                "manylinux_2_6_i686",
                "manylinux_2_5_i686",
                "manylinux1_i686",
            ]
        );
    }

    #[test]
    fn musl_and_unknown_arch() {
        let p = platform_tags(&target(
            (3, 12),
            Libc::musl(1, 2),
            "armv7l",
            NativeLinuxTag::Never,
        ));
        assert_eq!(
            p,
            [
                "musllinux_1_2_armv7l",
                "musllinux_1_1_armv7l",
                "musllinux_1_0_armv7l"
            ]
        );
        let p = platform_tags(&target(
            (3, 12),
            Libc::glibc(2, 36),
            "armv6l",
            NativeLinuxTag::First,
        ));
        assert_eq!(p, ["linux_armv6l"]);
    }

    #[test]
    fn ranks_pick_the_best_wheel() {
        let tags = Tags::for_target(&target(
            (3, 12),
            Libc::glibc(2, 36),
            "x86_64",
            NativeLinuxTag::First,
        ));
        let rank = |f: &str| tags.best_rank(&WheelFilename::parse(f).unwrap());
        let native =
            rank("a-1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl").unwrap();
        let abi3 = rank("a-1-cp38-abi3-manylinux_2_28_x86_64.whl").unwrap();
        let pure = rank("a-1-py3-none-any.whl").unwrap();
        assert!(native < abi3 && abi3 < pure);
        assert_eq!(rank("a-1-cp312-cp312-musllinux_1_2_x86_64.whl"), None);
        assert_eq!(rank("a-1-cp312-cp312-manylinux_2_39_x86_64.whl"), None);
        assert_eq!(rank("a-1-cp313-cp313-manylinux_2_17_x86_64.whl"), None);
        assert_eq!(rank("a-1-cp312-cp312-manylinux_2_17_aarch64.whl"), None);
        assert_eq!(rank("a-1-py2-none-any.whl"), None);
        assert_eq!(rank("a-1-cp312-none-any.whl"), Some(tags.len() - 15));
    }
}
