//! Shared helpers: the host interpreter, the target description, pinned PyPI files.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rbuild_pep517::{BuildOptions, BuildTarget};
use rbuild_python::markers::MarkerEnv;
use rbuild_python::tags::{TagTarget, Tags};
use rbuild_python::target::{Libc, MajorMinor};
use rbuild_runner::{HostPython, PyVersion};

pub const PYTHON: &str = "/usr/bin/python3.11";

pub fn python() -> HostPython {
    HostPython::new(
        PYTHON,
        PyVersion {
            major: 3,
            minor: 11,
        },
    )
}

pub fn target() -> BuildTarget {
    BuildTarget {
        markers: MarkerEnv::cpython_linux(MajorMinor::new(3, 11), Some("3.11.2"), "x86_64"),
        tags: Tags::for_target(&TagTarget::new(
            MajorMinor::new(3, 11),
            Libc::glibc(2, 36),
            "x86_64",
        )),
    }
}

/// Options whose `PATH` is an empty directory: no compiler, no tool at all (the interpreter
/// itself is started by absolute path). `/bin:/usr/bin` would be Python's default otherwise.
pub fn no_tools(empty: &Path) -> BuildOptions {
    fs::create_dir_all(empty).unwrap();
    BuildOptions {
        env: vec![("PATH".into(), empty.display().to_string())],
        ..Default::default()
    }
}

/// A file of a PyPI release, pinned by sha256.
pub struct Pin {
    pub name: &'static str,
    pub file: &'static str,
    pub sha256: &'static str,
}

const FETCH_PY: &str = r#"
import json, sys, urllib.request, urllib.error
name, filename, dest = sys.argv[1:4]
try:
    req = urllib.request.Request(f"https://pypi.org/simple/{name}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    files = json.load(urllib.request.urlopen(req, timeout=60))["files"]
    [f] = [f for f in files if f["filename"] == filename]
    data = urllib.request.urlopen(f["url"], timeout=120).read()
except (urllib.error.URLError, OSError) as e:
    print(f"PyPI unreachable: {e}", file=sys.stderr)
    sys.exit(3)
open(dest, "wb").write(data)
"#;

pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RBUILD_TEST_WHEELS") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache/rbuild-test-wheels")
}

/// The pinned file from the cache, downloading it if needed. `Err` = PyPI unreachable.
pub fn fetch(pin: &Pin) -> Result<PathBuf, String> {
    let dir = cache_dir();
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join(pin.file);
    if path.exists() && rbuild_pep517::env::sha256_file(&path).unwrap() == pin.sha256 {
        return Ok(path);
    }
    let tmp = dir.join(format!(".{}.part", pin.file));
    let out = Command::new(PYTHON)
        .args(["-c", FETCH_PY, pin.name, pin.file])
        .arg(&tmp)
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if out.status.code() == Some(3) {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    assert!(
        out.status.success(),
        "downloading {} failed: {}",
        pin.file,
        String::from_utf8_lossy(&out.stderr)
    );
    let got = rbuild_pep517::env::sha256_file(&tmp).unwrap();
    assert_eq!(
        got, pin.sha256,
        "{} from PyPI does not have the pinned sha256",
        pin.file
    );
    fs::rename(&tmp, &path).unwrap();
    Ok(path)
}

/// Installs `wheel` into `root` (site dir `root/site`, scripts `root/bin`) with rbuild-wheel.
pub fn install(wheel: &rbuild_pep517::BuiltWheel, root: &Path) -> rbuild_wheel::InstallReport {
    struct Sink(PathBuf);
    impl rbuild_wheel::EntrySink for Sink {
        fn dir(&mut self, p: &str, _: u32) -> std::io::Result<()> {
            fs::create_dir_all(self.0.join(p))
        }
        fn file(
            &mut self,
            p: &str,
            mode: u32,
            _: u64,
            c: &mut dyn std::io::Read,
        ) -> std::io::Result<()> {
            use std::os::unix::fs::PermissionsExt;
            let mut f = fs::File::create(self.0.join(p))?;
            std::io::copy(c, &mut f)?;
            fs::set_permissions(self.0.join(p), fs::Permissions::from_mode(mode))
        }
        fn symlink(&mut self, _: &str, _: &str) -> std::io::Result<()> {
            unreachable!()
        }
        fn whiteout(&mut self, _: &str) -> std::io::Result<()> {
            Ok(())
        }
    }
    let target = rbuild_wheel::InstallTarget {
        interpreter: PYTHON.into(),
        purelib: "/site".into(),
        platlib: "/site".into(),
        scripts: "/bin".into(),
        headers: "/include".into(),
        data: "/data".into(),
        python_version: (3, 11),
    };
    fs::create_dir_all(root).unwrap();
    rbuild_wheel::install_wheels(
        &[rbuild_wheel::WheelInput {
            path: wheel.path.clone(),
            filename: wheel.filename.clone(),
            expected_name: wheel.name.clone(),
            expected_version: wheel.version.clone(),
        }],
        &target,
        &Default::default(),
        &Default::default(),
        &mut Sink(root.to_path_buf()),
    )
    .unwrap()
}

/// Runs `code` in the host interpreter with `root/site` as its only site directory.
pub fn run_with_site(root: &Path, code: &str) -> String {
    let code = format!(
        "import site; site.addsitedir({:?})\n{code}",
        root.join("site").display().to_string()
    );
    let out = Command::new(PYTHON)
        .args(["-I", "-S", "-c", &code])
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Writes a `.tar.gz` sdist at `path` holding `files` under `top/`.
pub fn make_sdist(path: &Path, top: &str, files: &[(&str, &str)]) {
    let f = fs::File::create(path).unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        f,
        flate2::Compression::fast(),
    ));
    for (p, c) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(c.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, format!("{top}/{p}"), c.as_bytes())
            .unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}
