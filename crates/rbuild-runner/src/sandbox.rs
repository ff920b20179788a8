//! Confinement of a child process without privileges or namespaces.
//!
//! Prepared in the parent ([`Confinement::prepare`]): a Landlock ruleset (read and execute on the
//! unpacked root, everything under the scratch directory, a few device files; no TCP bind or
//! connect with Landlock ABI ≥ 4; no signals to, or abstract Unix sockets of, processes outside
//! the sandbox with ABI ≥ 6) and a seccomp filter. Applied in the child between `fork` and `exec`
//! ([`Confinement::apply`]) with raw, async-signal-safe system calls only: `setsid()` (so the
//! whole process group can be killed), `RLIMIT_CORE` 0, `RLIMIT_FSIZE`, `PR_SET_NO_NEW_PRIVS`,
//! the seccomp filter (denies `setsid`/`setpgid`, so no descendant leaves the process group, and
//! system calls of a foreign ABI), then `landlock_restrict_self`.
//!
//! Not covered: UDP, and connecting to path-named Unix sockets the rules let it read
//! (the root holds none).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

// Landlock ABI (include/uapi/linux/landlock.h).
const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: libc::c_int = 1;

const FS_EXECUTE: u64 = 1 << 0;
const FS_WRITE_FILE: u64 = 1 << 1;
const FS_READ_FILE: u64 = 1 << 2;
const FS_READ_DIR: u64 = 1 << 3;
const FS_REFER: u64 = 1 << 13;
const FS_TRUNCATE: u64 = 1 << 14;
const FS_IOCTL_DEV: u64 = 1 << 15;
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version of the running kernel, `None` when Landlock is unavailable
/// (not built in, or not enabled in the `lsm=` list).
pub fn landlock_abi() -> Option<u32> {
    // SAFETY: the documented version query: no pointer is read.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    (r > 0).then_some(r as u32)
}

/// Every filesystem right the kernel's ABI knows.
fn fs_rights(abi: u32) -> u64 {
    let mut r = (1u64 << 13) - 1;
    if abi >= 2 {
        r |= FS_REFER;
    }
    if abi >= 3 {
        r |= FS_TRUNCATE;
    }
    if abi >= 5 {
        r |= FS_IOCTL_DEV;
    }
    r
}

/// Rights that apply to a file (not a directory).
fn file_rights(abi: u32) -> u64 {
    let mut r = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE;
    if abi >= 3 {
        r |= FS_TRUNCATE;
    }
    if abi >= 5 {
        r |= FS_IOCTL_DEV;
    }
    r
}

fn open_path(p: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::other(format!("{} contains a NUL byte", p.display())))?;
    // SAFETY: a valid C string; the returned fd is owned below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn add_rule(ruleset: &OwnedFd, path: &Path, access: u64) -> io::Result<()> {
    let fd = open_path(path)?;
    let attr = PathBeneathAttr {
        allowed_access: access,
        parent_fd: fd.as_raw_fd(),
    };
    // SAFETY: attr lives across the call; the kernel copies it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot add a Landlock rule for {}: {e}", path.display()),
        ));
    }
    Ok(())
}

/// A Landlock ruleset for one run: read+execute on `root`, everything under `scratch`.
fn ruleset(abi: u32, root: &Path, scratch: &Path) -> io::Result<OwnedFd> {
    let attr = RulesetAttr {
        handled_access_fs: fs_rights(abi),
        handled_access_net: if abi >= 4 {
            NET_BIND_TCP | NET_CONNECT_TCP
        } else {
            0
        },
        scoped: if abi >= 6 {
            SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        } else {
            0
        },
    };
    // SAFETY: attr is valid for its size; returns a new fd (close-on-exec) or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("cannot create a Landlock ruleset: {e}"),
        ));
    }
    // SAFETY: a fresh fd we own.
    let rs = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    add_rule(&rs, root, FS_EXECUTE | FS_READ_FILE | FS_READ_DIR)?;
    add_rule(&rs, scratch, fs_rights(abi))?;
    let dev_rw = file_rights(abi) & !FS_EXECUTE & !FS_IOCTL_DEV;
    for (dev, access) in [
        ("/dev/null", dev_rw),
        ("/dev/zero", FS_READ_FILE),
        ("/dev/urandom", FS_READ_FILE),
        ("/dev/random", FS_READ_FILE),
    ] {
        if Path::new(dev).exists() {
            add_rule(&rs, Path::new(dev), access)?;
        }
    }
    // CPU counts (glibc's sysconf reads these).
    for dir in ["/sys/devices/system/cpu"] {
        if Path::new(dir).is_dir() {
            add_rule(&rs, Path::new(dir), FS_READ_FILE | FS_READ_DIR)?;
        }
    }
    Ok(rs)
}

// Classic BPF for seccomp.
#[repr(C)]
#[derive(Clone, Copy)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: Option<u32> = Some(0xc000_003e);
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: Option<u32> = Some(0xc000_00b7);
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: Option<u32> = None;

/// The filter: foreign-ABI system calls fail with ENOSYS; `setsid` and `setpgid` with EPERM.
fn seccomp_program() -> Option<Vec<SockFilter>> {
    let arch = AUDIT_ARCH?;
    let f = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    let mut p = vec![
        f(BPF_LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        f(BPF_JEQ_K, 1, 0, arch),
        f(BPF_RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32),
        f(BPF_LD_W_ABS, 0, 0, 0), // seccomp_data.nr
    ];
    if cfg!(target_arch = "x86_64") {
        // x32 system calls share the arch value; their numbers have bit 30 set.
        p.push(f(BPF_JGE_K, 0, 1, 0x4000_0000));
        p.push(f(BPF_RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32));
    }
    for nr in [libc::SYS_setsid, libc::SYS_setpgid] {
        p.push(f(BPF_JEQ_K, 0, 1, nr as u32));
        p.push(f(BPF_RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32));
    }
    p.push(f(BPF_RET_K, 0, 0, RET_ALLOW));
    Some(p)
}

/// What the child applies to itself before `exec`.
pub(crate) struct Confinement {
    ruleset: Option<OwnedFd>,
    seccomp: Option<Vec<SockFilter>>,
    file_size_limit: u64,
}

// SAFETY: the raw pointer inside `SockFprog` is only built in the child; `SockFilter` is plain data.
unsafe impl Send for Confinement {}
// SAFETY: as above; nothing is mutated after construction.
unsafe impl Sync for Confinement {}

impl Confinement {
    /// Prepares the confinement; `landlock`: `None` skips Landlock (the caller decided to run
    /// unconfined), else the ABI to use.
    pub(crate) fn prepare(
        landlock: Option<u32>,
        root: &Path,
        scratch: &Path,
    ) -> io::Result<Confinement> {
        let ruleset = match landlock {
            Some(abi) => Some(ruleset(abi, root, scratch)?),
            None => None,
        };
        Ok(Confinement {
            ruleset,
            seccomp: seccomp_program(),
            file_size_limit: 4 << 30,
        })
    }

    /// Installs the confinement as a `pre_exec` hook of `cmd`.
    pub(crate) fn install(self, cmd: &mut Command) {
        let c = Arc::new(self);
        // SAFETY: the hook only makes raw system calls (async-signal-safe) on data prepared in
        // the parent; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || c.apply());
        }
    }

    /// Runs in the child between `fork` and `exec`: raw system calls only.
    fn apply(&self) -> io::Result<()> {
        let check = |r: libc::c_long| {
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        // SAFETY (all blocks below): plain system calls with valid arguments.
        unsafe {
            // A caller may already have made the child a process group leader
            // (`Command::process_group(0)` runs before this hook), and then `setsid` fails with
            // EPERM: a group of its own is what is needed, so that is fine.
            if libc::getpgid(0) != libc::getpid() {
                check(libc::setsid() as libc::c_long)?;
            }
            let core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            check(libc::setrlimit(libc::RLIMIT_CORE, &core) as libc::c_long)?;
            let fsize = libc::rlimit {
                rlim_cur: self.file_size_limit,
                rlim_max: self.file_size_limit,
            };
            check(libc::setrlimit(libc::RLIMIT_FSIZE, &fsize) as libc::c_long)?;
            check(libc::prctl(
                libc::PR_SET_NO_NEW_PRIVS,
                1 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) as libc::c_long)?;
            if let Some(prog) = &self.seccomp {
                let fprog = SockFprog {
                    len: prog.len() as u16,
                    filter: prog.as_ptr(),
                };
                let r = libc::prctl(
                    libc::PR_SET_SECCOMP,
                    2 as libc::c_ulong, // SECCOMP_MODE_FILTER
                    &fprog as *const SockFprog,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                );
                // A kernel without seccomp (EINVAL) still gets the rest.
                if r < 0 && *libc::__errno_location() != libc::EINVAL {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(rs) = &self.ruleset {
                check(libc::syscall(
                    libc::SYS_landlock_restrict_self,
                    rs.as_raw_fd(),
                    0u32,
                ))?;
            }
        }
        Ok(())
    }
}
