//! Finding the base's interpreter, its loader, library path and `PYTHONHOME` in an unpacked root,
//! and starting it confined.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::sandbox::{Confinement, landlock_abi};
use crate::unpack::resolve_in_root;
use crate::{PyVersion, Python, RunnerError};

/// The flag named when the base's interpreter cannot run here.
const NO_RUN_HINT: &str = "--no-compile-bytecode";

/// The dynamic loader the interpreter asks for, and what it accepts on its command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loader {
    /// Its physical path inside the root (relative, no leading `/`).
    pub path: String,
    /// glibc's `--inhibit-cache` (skips the build machine's `/etc/ld.so.cache`).
    pub inhibit_cache: bool,
    /// `--argv0` (glibc ≥ 2.33, musl ≥ 1.2.2).
    pub argv0: bool,
}

/// The base image's own CPython, unpacked, ready to start on the build machine.
///
/// The command is `<root>/<loader> [--inhibit-cache] --library-path <L> <root>/<interpreter> args…`
/// (a statically linked interpreter is started directly), with a cleared
/// environment (`PYTHONHOME`, `PYTHONHASHSEED=0`, `PYTHONDONTWRITEBYTECODE=1`,
/// `PYTHONNOUSERSITE=1`, `PYTHONUTF8=1`, `LC_ALL=C.UTF-8`, `HOME`/`TMPDIR` = scratch, `PATH` = the
/// root's bin directories), the scratch directory as working directory, and the confinement of
/// [`crate::sandbox`]: Landlock (writes only under scratch, reads only the root, no TCP), its own
/// process group, no new privileges, no core dumps.
///
/// Both glibc's and musl's loaders accept `--library-path` (musl also reads `LD_LIBRARY_PATH`;
/// only glibc has `--inhibit-cache`). `--argv0` is deliberately not passed: CPython derives its
/// prefix from `argv[0]` when `-I`/`-E` make it ignore `PYTHONHOME`, so `argv[0]` must be the
/// interpreter's host path under the root (`sys.executable` is that path).
///
/// `-I` and `-E` also ignore `PYTHONHASHSEED`: consumers that need stable hashing pass `-s`
/// (and `-P` on 3.11+) instead.
///
/// Where Landlock is unavailable, [`Python::command`] fails with [`RunnerError::NoSandbox`] unless
/// [`TargetPython::unsandboxed`] was set (no user-namespace fallback yet).
///
/// Known limits: `sys.prefix` and `sys.executable`-derived paths are host paths under the root;
/// a subprocess started through `sys.executable` cannot run (the loader is not in the path);
/// absolute `RUNPATH`s of the interpreter are not added to the library path.
#[derive(Debug, Clone)]
pub struct TargetPython {
    root: PathBuf,
    in_image: String,
    interpreter: String,
    loader: Option<Loader>,
    library_path: Vec<String>,
    home: String,
    /// The standard library's directory (relative, physical: `usr/local/lib/python3.12`).
    stdlib: String,
    version: PyVersion,
    unsandboxed: bool,
    time_limit: Duration,
    label: Option<String>,
}

/// The build machine's ELF class and machine, and a name for messages.
fn host_elf() -> (u8, u16, &'static str) {
    if cfg!(target_arch = "x86_64") {
        (2, 62, "x86_64")
    } else if cfg!(target_arch = "aarch64") {
        (2, 183, "aarch64")
    } else if cfg!(target_arch = "x86") {
        (1, 3, "i386")
    } else if cfg!(target_arch = "arm") {
        (1, 40, "arm")
    } else if cfg!(target_arch = "riscv64") {
        (2, 243, "riscv64")
    } else if cfg!(target_arch = "s390x") {
        (2, 22, "s390x")
    } else if cfg!(target_arch = "powerpc64") {
        (2, 21, "ppc64")
    } else {
        (0, 0, std::env::consts::ARCH)
    }
}

fn machine_name(machine: u16) -> &'static str {
    match machine {
        3 => "i386",
        40 => "arm",
        62 => "x86_64",
        183 => "aarch64",
        243 => "riscv64",
        22 => "s390x",
        21 => "ppc64",
        8 => "mips",
        _ => "an unknown architecture",
    }
}

/// The multiarch triplets whose library directories the build machine's binaries use.
fn triplets() -> &'static [&'static str] {
    if cfg!(target_arch = "x86_64") {
        &["x86_64-linux-gnu"]
    } else if cfg!(target_arch = "aarch64") {
        &["aarch64-linux-gnu"]
    } else if cfg!(target_arch = "x86") {
        &["i386-linux-gnu"]
    } else if cfg!(target_arch = "arm") {
        &["arm-linux-gnueabihf", "arm-linux-gnueabi"]
    } else if cfg!(target_arch = "riscv64") {
        &["riscv64-linux-gnu"]
    } else if cfg!(target_arch = "s390x") {
        &["s390x-linux-gnu"]
    } else if cfg!(target_arch = "powerpc64") {
        &["powerpc64le-linux-gnu", "powerpc64-linux-gnu"]
    } else {
        &[]
    }
}

/// What the ELF header of the interpreter says.
struct ElfInfo {
    class: u8,
    big_endian: bool,
    machine: u16,
    interp: Option<String>,
}

fn read_elf(path: &Path) -> io::Result<Option<ElfInfo>> {
    let mut f = fs::File::open(path)?;
    let mut h = [0u8; 64];
    let n = f.read(&mut h)?;
    if n < 52 || h[..4] != *b"\x7fELF" {
        return Ok(None);
    }
    let class = h[4];
    let be = h[5] == 2;
    let u16_at = |b: &[u8], o: usize| {
        let a = [b[o], b[o + 1]];
        if be {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        }
    };
    let u32_at = |b: &[u8], o: usize| {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if be {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        }
    };
    let u64_at = |b: &[u8], o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[o..o + 8]);
        if be {
            u64::from_be_bytes(a)
        } else {
            u64::from_le_bytes(a)
        }
    };
    let machine = u16_at(&h, 18);
    let (phoff, phentsize, phnum) = match class {
        2 if n >= 64 => (u64_at(&h, 32), u16_at(&h, 54), u16_at(&h, 56)),
        1 => (u64::from(u32_at(&h, 28)), u16_at(&h, 42), u16_at(&h, 44)),
        _ => return Ok(None),
    };
    let size = usize::from(phentsize) * usize::from(phnum);
    if phentsize < 32 || size > 1 << 20 {
        return Ok(None);
    }
    // Only the program headers and the loader's name are read (the interpreter is megabytes).
    let at = |off: u64, len: usize| -> io::Result<Option<Vec<u8>>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len];
        match f.read_exact_at(&mut buf, off) {
            Ok(()) => Ok(Some(buf)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    };
    let Some(phdrs) = at(phoff, size)? else {
        return Ok(None);
    };
    let mut interp = None;
    for ph in phdrs.chunks(usize::from(phentsize)) {
        if u32_at(ph, 0) != 3 {
            continue; // not PT_INTERP
        }
        let (off, len) = if class == 2 {
            (u64_at(ph, 8), u64_at(ph, 32))
        } else {
            (u64::from(u32_at(ph, 4)), u64::from(u32_at(ph, 16)))
        };
        if len > 4096 {
            return Ok(None);
        }
        let Some(raw) = at(off, len as usize)? else {
            return Ok(None);
        };
        let raw = raw.split(|b| *b == 0).next().unwrap_or(&[]);
        interp = Some(String::from_utf8_lossy(raw).into_owned());
    }
    Ok(Some(ElfInfo {
        class,
        big_endian: be,
        machine,
        interp,
    }))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `X.Y` from `pythonX.Y` (or `pythonX.Yt`).
fn parse_version(dir_name: &str) -> Option<PyVersion> {
    let v = dir_name.strip_prefix("python")?;
    let v = v.strip_suffix('t').unwrap_or(v);
    let (a, b) = v.split_once('.')?;
    Some(PyVersion {
        major: a.parse().ok()?,
        minor: b.parse().ok()?,
    })
}

/// The `pythonX.Y` directories holding `os.py` under `prefix/lib` and `prefix/lib64`.
fn stdlib_dirs(root: &Path, prefix: &str) -> Vec<(PyVersion, String)> {
    let mut found = Vec::new();
    for lib in ["lib", "lib64"] {
        let dir = root.join(prefix).join(lib);
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        let mut names: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for n in names {
            if let Some(v) = parse_version(&n)
                && dir.join(&n).join("os.py").is_file()
            {
                found.push((v, format!("{prefix}/{lib}/{n}")));
            }
        }
    }
    found
}

fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

/// Directories listed by `etc/ld.so.conf` (and its includes) inside `root`, in order.
fn ld_so_conf_dirs(root: &Path) -> Vec<String> {
    fn read(root: &Path, file: &str, depth: usize, out: &mut Vec<String>) {
        if depth > 8 {
            return;
        }
        let Ok(Some(phys)) = resolve_in_root(root, file, true) else {
            return;
        };
        let Ok(text) = fs::read_to_string(root.join(&phys)) else {
            return;
        };
        let base = parent(file.trim_start_matches('/')).to_string();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() || line.starts_with("hwcap") {
                continue;
            }
            if let Some(pats) = line.strip_prefix("include") {
                if !pats.starts_with(char::is_whitespace) {
                    continue;
                }
                for pat in pats.split_whitespace() {
                    let pat = if pat.starts_with('/') {
                        pat.to_string()
                    } else {
                        format!("/{base}/{pat}")
                    };
                    for f in glob_last(root, &pat) {
                        read(root, &f, depth + 1, out);
                    }
                }
                continue;
            }
            for d in line.split(|c: char| c.is_whitespace() || c == ':' || c == ',') {
                if d.starts_with('/') {
                    out.push(d.to_string());
                }
            }
        }
    }
    let mut out = Vec::new();
    read(root, "/etc/ld.so.conf", 0, &mut out);
    out
}

/// Expands a `*` in the last component of an absolute in-image path (sorted), as ldconfig does.
fn glob_last(root: &Path, pat: &str) -> Vec<String> {
    let (dir, name) = pat.rsplit_once('/').unwrap_or(("", pat));
    if !name.contains('*') {
        return vec![pat.to_string()];
    }
    let Ok(Some(phys)) = resolve_in_root(root, dir, true) else {
        return Vec::new();
    };
    let Ok(rd) = fs::read_dir(root.join(&phys)) else {
        return Vec::new();
    };
    let parts: Vec<&str> = name.split('*').collect();
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| glob_match(&parts, n))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    out.sort();
    out
}

fn glob_match(parts: &[&str], name: &str) -> bool {
    let (first, rest) = match parts.split_first() {
        Some(x) => x,
        None => return name.is_empty(),
    };
    let Some(mut s) = name.strip_prefix(first) else {
        return false;
    };
    for (i, p) in rest.iter().enumerate() {
        if i == rest.len() - 1 {
            return s.ends_with(p);
        }
        match s.find(p) {
            Some(at) => s = &s[at + p.len()..],
            None => return false,
        }
    }
    s.is_empty()
}

impl TargetPython {
    /// Finds the interpreter `interpreter_in_image` (e.g. `/usr/local/bin/python3`, a venv's
    /// `bin/python`) in the unpacked `root`: its symlinks are resolved inside the root, its ELF
    /// header must match the build machine, its loader (`PT_INTERP`) and library directories are
    /// looked up inside the root, and `PYTHONHOME` is the prefix holding `lib/pythonX.Y/os.py`
    /// (through `pyvenv.cfg`'s `home` for a venv).
    pub fn locate(root: &Path, interpreter_in_image: &str) -> Result<TargetPython, RunnerError> {
        let no = |reason: String| RunnerError::NoInterpreter {
            path: interpreter_in_image.to_string(),
            reason,
        };
        if root.to_string_lossy().contains(':') {
            return Err(no(format!(
                "the unpacked root {} contains `:`, which a library path cannot hold",
                root.display()
            )));
        }
        let interpreter = resolve_in_root(root, interpreter_in_image, true)
            .map_err(|e| no(e.to_string()))?
            .ok_or_else(|| no("no such file".into()))?;
        let host_path = root.join(&interpreter);
        if !host_path.is_file() {
            return Err(no(format!("/{interpreter} is not a file")));
        }
        let elf = read_elf(&host_path)
            .map_err(|e| no(format!("cannot read /{interpreter}: {e}")))?
            .ok_or_else(|| no(format!("/{interpreter} is not an ELF executable")))?;
        let (class, machine, host_name) = host_elf();
        if elf.class != class
            || elf.machine != machine
            || elf.big_endian != cfg!(target_endian = "big")
        {
            return Err(RunnerError::NotRunnable {
                interpreter: interpreter_in_image.to_string(),
                found: format!(
                    "{} ({}-bit ELF, machine {})",
                    machine_name(elf.machine),
                    if elf.class == 2 { 64 } else { 32 },
                    elf.machine
                ),
                host: host_name.to_string(),
                hint: NO_RUN_HINT.to_string(),
            });
        }
        let loader = match &elf.interp {
            None => None,
            Some(interp) => {
                let phys = resolve_in_root(root, interp, true)
                    .map_err(|e| no(e.to_string()))?
                    .filter(|p| root.join(p).is_file())
                    .ok_or_else(|| {
                        no(format!(
                            "its dynamic loader {interp} is not in the base image"
                        ))
                    })?;
                let bytes = fs::read(root.join(&phys))
                    .map_err(|e| no(format!("cannot read the loader {interp}: {e}")))?;
                Some(Loader {
                    inhibit_cache: contains(&bytes, b"--inhibit-cache"),
                    argv0: contains(&bytes, b"--argv0") || contains(&bytes, b"argv0"),
                    path: phys,
                })
            }
        };

        // PYTHONHOME: the prefix of the binary, else of a venv's `home`.
        let name = interpreter.rsplit('/').next().unwrap_or("");
        let wanted = parse_version(name);
        let mut prefixes = vec![parent(parent(&interpreter)).to_string()];
        let given = interpreter_in_image.trim_start_matches('/');
        for cfg in [
            format!("{}/pyvenv.cfg", parent(given)),
            format!("{}/pyvenv.cfg", parent(parent(given))),
        ] {
            let Ok(Some(phys)) = resolve_in_root(root, &cfg, true) else {
                continue;
            };
            let Ok(text) = fs::read_to_string(root.join(phys)) else {
                continue;
            };
            for line in text.lines() {
                if let Some((k, v)) = line.split_once('=')
                    && k.trim() == "home"
                    && let Ok(Some(home)) = resolve_in_root(root, v.trim(), true)
                {
                    prefixes.push(parent(&home).to_string());
                }
            }
        }
        let mut searched = Vec::new();
        let mut chosen = None;
        for prefix in &prefixes {
            searched.push(format!("/{prefix}/lib/pythonX.Y/os.py"));
            let dirs = stdlib_dirs(root, prefix);
            let pick = match wanted {
                Some(v) => dirs.iter().find(|(d, _)| *d == v),
                None if dirs.len() == 1 => dirs.first(),
                None => None,
            };
            if let Some((v, dir)) = pick {
                chosen = Some((prefix.clone(), *v, dir.clone()));
                break;
            }
        }
        let Some((home, version, stdlib)) = chosen else {
            return Err(RunnerError::NoStdlib {
                interpreter: interpreter_in_image.to_string(),
                searched: searched.join(", "),
            });
        };

        // Library path: ld.so.conf first (what the loader's cache holds), then the standard dirs.
        let mut dirs: Vec<String> = ld_so_conf_dirs(root);
        for base in [
            "lib",
            "lib64",
            "usr/lib",
            "usr/lib64",
            "usr/local/lib",
            "usr/local/lib64",
        ] {
            for t in triplets() {
                dirs.push(format!("/{base}/{t}"));
            }
        }
        for base in [
            "lib",
            "lib64",
            "usr/lib",
            "usr/lib64",
            "usr/local/lib",
            "usr/local/lib64",
        ] {
            dirs.push(format!("/{base}"));
        }
        let mut library_path: Vec<String> = Vec::new();
        for d in dirs {
            if let Ok(Some(phys)) = resolve_in_root(root, &d, true)
                && root.join(&phys).is_dir()
                && !phys.contains(':')
                && !library_path.contains(&phys)
            {
                library_path.push(phys);
            }
        }

        Ok(TargetPython {
            root: root.to_path_buf(),
            in_image: interpreter_in_image.to_string(),
            interpreter,
            loader,
            library_path,
            home,
            stdlib,
            version,
            unsandboxed: false,
            time_limit: Duration::from_secs(600),
            label: None,
        })
    }

    /// Allows running unconfined (no Landlock) where the kernel cannot confine; the default
    /// (`false`) refuses with [`RunnerError::NoSandbox`].
    pub fn unsandboxed(mut self, allow: bool) -> TargetPython {
        self.unsandboxed = allow;
        self
    }

    /// Sets [`Python::time_limit`] (default 600 s).
    pub fn with_time_limit(mut self, limit: Duration) -> TargetPython {
        self.time_limit = limit;
        self
    }

    /// Sets what [`Python::describe`] says (e.g. `python3.11 from the base image sha256:…`).
    pub fn with_label(mut self, label: impl Into<String>) -> TargetPython {
        self.label = Some(label.into());
        self
    }

    /// The unpacked root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The interpreter's physical path inside the root (relative, symlinks resolved).
    pub fn interpreter(&self) -> &str {
        &self.interpreter
    }

    /// The loader, `None` for a statically linked interpreter.
    pub fn loader(&self) -> Option<&Loader> {
        self.loader.as_ref()
    }

    /// The library directories (physical, relative to the root), in search order.
    pub fn library_path(&self) -> &[String] {
        &self.library_path
    }

    /// `PYTHONHOME` inside the image (relative, e.g. `usr` or `usr/local`).
    pub fn home(&self) -> &str {
        &self.home
    }

    /// The standard library's directory inside the image (relative, physical, the one holding
    /// `os.py`: `usr/local/lib/python3.12`, Debian's `usr/lib/python3.11`).
    pub fn stdlib_dir(&self) -> &str {
        &self.stdlib
    }

    /// `PYTHONHOME` on the build machine (what `sys.prefix` is when it runs).
    pub fn host_prefix(&self) -> PathBuf {
        self.root.join(&self.home)
    }

    /// Whether this kernel can confine the interpreter; `Err(NoSandbox)` unless it can or
    /// [`TargetPython::unsandboxed`] allowed running without.
    pub fn sandbox_available(&self) -> Result<Option<u32>, RunnerError> {
        match landlock_abi() {
            Some(abi) => Ok(Some(abi)),
            None if self.unsandboxed => Ok(None),
            None => Err(RunnerError::NoSandbox {
                reason: "Landlock is not available in this kernel".into(),
            }),
        }
    }

    fn bin_path(&self) -> OsString {
        let mut parts: Vec<String> = Vec::new();
        for d in [
            "usr/local/bin",
            "usr/bin",
            "bin",
            "usr/local/sbin",
            "usr/sbin",
            "sbin",
        ] {
            if let Ok(Some(phys)) = resolve_in_root(&self.root, d, true)
                && self.root.join(&phys).is_dir()
            {
                let p = self.root.join(&phys).to_string_lossy().into_owned();
                if !parts.contains(&p) {
                    parts.push(p);
                }
            }
        }
        parts.join(":").into()
    }
}

impl Python for TargetPython {
    fn version(&self) -> PyVersion {
        self.version
    }

    fn command(
        &self,
        args: &[OsString],
        scratch: &Path,
        env: &[(String, String)],
    ) -> io::Result<Command> {
        let abi = self.sandbox_available().map_err(io::Error::other)?;
        let interp_host = self.root.join(&self.interpreter);
        let mut cmd = match &self.loader {
            Some(loader) => {
                let mut c = Command::new(self.root.join(&loader.path));
                if loader.inhibit_cache {
                    c.arg("--inhibit-cache");
                }
                let lp: Vec<String> = self
                    .library_path
                    .iter()
                    .map(|d| self.root.join(d).to_string_lossy().into_owned())
                    .collect();
                c.arg("--library-path").arg(lp.join(":"));
                // No `--argv0`: CPython finds its prefix from argv[0] (`-I`/`-E` ignore
                // PYTHONHOME), and the image path would name the build machine's own files.
                c.arg(&interp_host);
                c
            }
            None => Command::new(&interp_host),
        };
        cmd.args(args)
            .current_dir(scratch)
            .env_clear()
            .env("PYTHONHOME", self.host_prefix())
            .env("PYTHONHASHSEED", "0")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONNOUSERSITE", "1")
            .env("PYTHONUTF8", "1")
            .env("LC_ALL", "C.UTF-8")
            .env("HOME", scratch)
            .env("TMPDIR", scratch)
            .env("PATH", self.bin_path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Confinement::prepare(abi, &self.root, scratch)?.install(&mut cmd);
        Ok(cmd)
    }

    fn time_limit(&self) -> Duration {
        self.time_limit
    }

    fn describe(&self) -> String {
        match &self.label {
            Some(l) => l.clone(),
            None => format!(
                "python{} of the base image ({}, unpacked in {})",
                self.version,
                self.in_image,
                self.root.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_and_globs() {
        assert_eq!(
            parse_version("python3.11"),
            Some(PyVersion {
                major: 3,
                minor: 11
            })
        );
        assert_eq!(
            parse_version("python3.13t"),
            Some(PyVersion {
                major: 3,
                minor: 13
            })
        );
        assert_eq!(parse_version("python3"), None);
        assert!(glob_match(&["", ".conf"], "libc.conf"));
        assert!(!glob_match(&["", ".conf"], "libc.conf.bak"));
        assert!(glob_match(&["x86_64-", ""], "x86_64-linux-gnu"));
    }

    #[test]
    fn reads_the_host_python_elf() {
        let elf = read_elf(Path::new("/proc/self/exe")).unwrap().unwrap();
        let (class, machine, _) = host_elf();
        assert_eq!((elf.class, elf.machine), (class, machine));
        assert!(elf.interp.unwrap().contains("ld-"));
    }
}
