//! The real base fixture's CPython (Debian bookworm, python3.11), unpacked and run confined.
//!
//! Skipped with a note when the fixture cannot be built here (it needs root, mmdebstrap and
//! network the first time; later runs use the cache).

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rbuild_runner::{Limits, PyVersion, Python, RunError, TargetPython, UnpackedBase, run_bounded};
use rbuild_testing::{BaseFixture, Platform};
use serde_json::Value;

/// The fixture's amd64 image unpacked into a cache shared by the tests (keyed by its config
/// digest), readable by every user.
fn unpacked() -> Option<UnpackedBase> {
    let fixture = match BaseFixture::ensure() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("SKIPPED: the base fixture is unavailable here: {e}");
            return None;
        }
    };
    let desc = fixture.platform_descriptor(Platform::Amd64).unwrap();
    let manifest: Value =
        serde_json::from_slice(&fixture.blob(desc["digest"].as_str().unwrap()).unwrap()).unwrap();
    let key = manifest["config"]["digest"].as_str().unwrap().to_string();
    let layout = fixture.layout_dir().to_path_buf();
    let layers = manifest["layers"].as_array().unwrap().clone();
    let streams = layers.into_iter().map(move |l| -> io::Result<_> {
        let hex = l["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap();
        let f = File::open(layout.join("blobs/sha256").join(hex))?;
        Ok(flate2::read::MultiGzDecoder::new(BufReader::new(f)))
    });
    let cache = std::env::temp_dir().join("rbuild-runner-test-unpacked");
    fs::create_dir_all(&cache).unwrap();
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o755)).unwrap();
    Some(UnpackedBase::open_or_unpack(&cache, &key, streams).unwrap())
}

fn py(base: &UnpackedBase) -> TargetPython {
    TargetPython::locate(base.root(), "/usr/bin/python3").unwrap()
}

fn run(py: &TargetPython, scratch: &Path, code: &str) -> Result<String, RunError> {
    let cmd = py
        .command(
            &["-s".into(), "-c".into(), OsString::from(code)],
            scratch,
            &[],
        )
        .unwrap();
    let out = run_bounded(cmd, None, &Limits::with_timeout(Duration::from_secs(60)))?;
    Ok(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn locates_the_interpreter_loader_and_home() {
    let Some(base) = unpacked() else { return };
    let py = py(&base);
    assert_eq!(py.interpreter(), "usr/bin/python3.11");
    assert_eq!(py.home(), "usr");
    assert_eq!(py.stdlib_dir(), "usr/lib/python3.11");
    assert_eq!(
        py.version(),
        PyVersion {
            major: 3,
            minor: 11
        }
    );
    let loader = py.loader().expect("dynamically linked");
    assert_eq!(loader.path, "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    assert!(loader.inhibit_cache && loader.argv0, "{loader:?}");
    assert!(
        py.library_path()
            .contains(&"usr/lib/x86_64-linux-gnu".to_string()),
        "{:?}",
        py.library_path()
    );
    // Merged /usr: /lib is /usr/lib, listed once.
    assert_eq!(
        py.library_path().iter().filter(|d| *d == "usr/lib").count(),
        1
    );
    // Skipped trees are not unpacked.
    assert!(!base.root().join("usr/share/doc").exists());
    assert!(!base.root().join("var").exists());
}

#[test]
fn runs_the_base_python_confined() {
    let Some(base) = unpacked() else { return };
    let py = py(&base);
    let scratch = tempfile::tempdir().unwrap();
    let out = run(
        &py,
        scratch.path(),
        "import sys, json, encodings, os\n\
         print(json.dumps([list(sys.version_info[:2]), sys.prefix, sys.argv[0] if sys.argv else '', \
         sorted(k for k in os.environ if k.startswith('PYTHON')), os.getcwd()]))\n\
         compile('def f(x):\\n    return x + 1\\n', '/app/m.py', 'exec')",
    )
    .unwrap();
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v[0], serde_json::json!([3, 11]));
    assert_eq!(
        v[1].as_str().unwrap(),
        py.host_prefix().to_str().unwrap(),
        "sys.prefix is PYTHONHOME"
    );
    assert_eq!(
        v[3],
        serde_json::json!([
            "PYTHONDONTWRITEBYTECODE",
            "PYTHONHASHSEED",
            "PYTHONHOME",
            "PYTHONNOUSERSITE",
            "PYTHONUTF8"
        ]),
        "no host PYTHON* variable leaks"
    );
    assert_eq!(
        fs::canonicalize(v[4].as_str().unwrap()).unwrap(),
        fs::canonicalize(scratch.path()).unwrap()
    );
}

#[test]
fn host_python_variables_do_not_leak() {
    let Some(base) = unpacked() else { return };
    let py = py(&base);
    let scratch = tempfile::tempdir().unwrap();
    let mut cmd = py
        .command(
            &["-c".into(), "import os,sys; print(os.environ.get('PYTHONPATH'), os.environ.get('SECRET'), sys.flags.ignore_environment)".into()],
            scratch.path(),
            &[],
        )
        .unwrap();
    // Variables set on the command by a careless caller before its env was cleared are gone;
    // these are set after, so they must show: the point is the host process's own environment.
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "None None 0");
}

#[test]
fn writes_outside_scratch_and_tcp_are_denied() {
    let Some(base) = unpacked() else { return };
    let py = py(&base);
    let scratch = tempfile::tempdir().unwrap();
    let outside =
        std::env::temp_dir().join(format!("rbuild-runner-outside-{}", std::process::id()));
    let in_root = base.root().join("usr/lib/rbuild-runner-was-here");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let code = format!(
        "import socket\n\
         def attempt(f):\n    try:\n        f(); return 'allowed'\n    except OSError as e:\n        return type(e).__name__\n\
         print(attempt(lambda: open({outside:?}, 'w').write('x')))\n\
         print(attempt(lambda: open({in_root:?}, 'w').write('x')))\n\
         print(attempt(lambda: open('/etc/hostname').read()))\n\
         print(attempt(lambda: socket.create_connection(('127.0.0.1', {port}), timeout=5)))\n\
         print(attempt(lambda: open('inside', 'w').write('x')))\n",
        outside = outside.display().to_string(),
        in_root = in_root.display().to_string(),
    );
    let out = run(&py, scratch.path(), &code).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "PermissionError",
            "PermissionError",
            "PermissionError",
            "PermissionError",
            "allowed"
        ],
        "{out}"
    );
    assert!(!outside.exists());
    assert!(!in_root.exists());
    assert!(scratch.path().join("inside").exists());
    // Nothing connected.
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err());
}

#[test]
fn a_failing_script_reports_its_code_and_stderr() {
    let Some(base) = unpacked() else { return };
    let py = py(&base);
    let scratch = tempfile::tempdir().unwrap();
    let e = run(
        &py,
        scratch.path(),
        "import sys; sys.stderr.write('boom here\\n'); sys.exit(3)",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("exited with code 3") && e.contains("boom here"),
        "{e}"
    );
}

/// Runs the inner test below as uid 65534 inside a user namespace whose
/// `user.max_user_namespaces` is 0, so user namespaces are unavailable to it.
#[test]
fn runs_as_an_unprivileged_user_without_user_namespaces() {
    let Some(base) = unpacked() else { return };
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to switch to uid 65534");
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let exe = std::env::current_exe().unwrap();
    // The outer user namespace maps uids 0..65536 to themselves (we are root, so we may write the
    // map); inside it, root sets max_user_namespaces to 0 and drops to 65534. The shell execs again
    // once the map exists: capabilities in the namespace are granted at exec by a mapped root.
    let script = format!(
        "read _ && exec sh -c 'echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --reuid 65534 --regid 65534 --clear-groups {} --exact inner_unprivileged --ignored --nocapture'",
        exe.display()
    );
    let mut child = Command::new("unshare")
        .args(["-U", "--", "sh", "-c", &script])
        .env("RBUILD_RUNNER_INNER_ROOT", base.root())
        .env("RBUILD_RUNNER_INNER_SCRATCH", scratch.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let ours = fs::read_link("/proc/self/ns/user").unwrap();
    let mut tries = 0;
    while fs::read_link(format!("/proc/{pid}/ns/user")).unwrap() == ours {
        tries += 1;
        assert!(tries < 500, "unshare did not create a user namespace");
        std::thread::sleep(Duration::from_millis(10));
    }
    fs::write(format!("/proc/{pid}/uid_map"), "0 0 65536\n").unwrap();
    fs::write(format!("/proc/{pid}/gid_map"), "0 0 65536\n").unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("INNER OK"),
        "the inner test did not run: {text}"
    );
}

#[test]
#[ignore = "run by runs_as_an_unprivileged_user_without_user_namespaces"]
fn inner_unprivileged() {
    let root = PathBuf::from(std::env::var_os("RBUILD_RUNNER_INNER_ROOT").unwrap());
    let scratch = PathBuf::from(std::env::var_os("RBUILD_RUNNER_INNER_SCRATCH").unwrap());
    assert_eq!(unsafe { libc::geteuid() }, 65534);
    let unshare = Command::new("unshare")
        .args(["-U", "true"])
        .output()
        .unwrap();
    assert!(
        !unshare.status.success(),
        "user namespaces are still available"
    );
    let py = TargetPython::locate(&root, "/usr/bin/python3").unwrap();
    let out = run(
        &py,
        &scratch,
        "import os, sys; open('w', 'w').write('x'); print(os.getuid(), sys.version_info[:2])",
    )
    .unwrap();
    assert_eq!(out.trim(), "65534 (3, 11)");
    println!("INNER OK");
}
