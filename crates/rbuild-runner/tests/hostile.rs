//! A hostile base: its "python" is a small C program (tests/hostile.c, built with the host's gcc
//! and shipped with the host's loader and libc as a one-layer image) that writes outside its
//! scratch directory, prints 50 MB, never exits, or leaves a child behind.
//! Skipped with a note when gcc is not installed.

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rbuild_runner::{
    BoundedChild, Limits, Python, RunError, TargetPython, UnpackedBase, run_bounded,
};

struct Hostile {
    _dir: tempfile::TempDir,
    base: UnpackedBase,
}

fn hostile() -> Option<Hostile> {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("python3.11");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile.c");
    let built = Command::new("gcc")
        .args(["-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: cannot build tests/hostile.c with gcc");
        return None;
    }
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, path, data).unwrap();
    };
    add("usr/bin/python3.11", &fs::read(&bin).unwrap(), 0o755);
    add("usr/lib/python3.11/os.py", b"# not really\n", 0o644);
    add(
        "lib64/ld-linux-x86-64.so.2",
        &fs::read("/lib64/ld-linux-x86-64.so.2").unwrap(),
        0o755,
    );
    add(
        "lib/x86_64-linux-gnu/libc.so.6",
        &fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap(),
        0o755,
    );
    let layer = tar.into_inner().unwrap();
    let base = UnpackedBase::open_or_unpack(
        &dir.path().join("cache"),
        "hostile",
        [Ok::<_, io::Error>(io::Cursor::new(layer))],
    )
    .unwrap();
    Some(Hostile { _dir: dir, base })
}

fn py(h: &Hostile) -> TargetPython {
    TargetPython::locate(h.base.root(), "/usr/bin/python3.11").unwrap()
}

fn cmd(py: &TargetPython, scratch: &Path, args: &[&str]) -> Command {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    py.command(&args, scratch, &[]).unwrap()
}

/// Every file under `dir` with its size (to compare before and after).
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path(), m.len()));
        }
    }
    out.sort();
    out
}

#[test]
fn writes_outside_scratch_are_denied() {
    let Some(h) = hostile() else { return };
    let py = py(&h);
    assert_eq!(py.version().to_string(), "3.11");
    let scratch = tempfile::tempdir().unwrap();
    let outside = std::env::temp_dir().join(format!("rbuild-hostile-{}", std::process::id()));
    let in_root = h.base.root().join("usr/bin/pwned");
    let inside = scratch.path().join("ok");
    let before = snapshot(h.base.root());
    let out = run_bounded(
        cmd(
            &py,
            scratch.path(),
            &[
                "write",
                outside.to_str().unwrap(),
                in_root.to_str().unwrap(),
                inside.to_str().unwrap(),
            ],
        ),
        None,
        &Limits::with_timeout(Duration::from_secs(20)),
    )
    .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        format!(
            "{} denied\n{} denied\n{} created\n",
            outside.display(),
            in_root.display(),
            inside.display()
        )
    );
    assert!(!outside.exists());
    assert_eq!(snapshot(h.base.root()), before, "the root is unchanged");
    assert!(inside.exists());
}

#[test]
fn output_is_capped() {
    let Some(h) = hostile() else { return };
    let py = py(&h);
    let scratch = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_stdout: 1 << 20,
        label: Some("the hostile python".into()),
        ..Limits::with_timeout(Duration::from_secs(20))
    };
    let start = Instant::now();
    let e = run_bounded(cmd(&py, scratch.path(), &["garbage"]), None, &limits).unwrap_err();
    assert!(
        matches!(
            e,
            RunError::TooMuchOutput {
                stream: "stdout",
                limit: 1048576,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "the hostile python printed more than 1048576 bytes on stdout and was killed"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_deadline_kills_it() {
    let Some(h) = hostile() else { return };
    let py = py(&h);
    let scratch = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let e = run_bounded(
        cmd(&py, scratch.path(), &["sleep"]),
        Some(b"ignored input"),
        &Limits::with_timeout(Duration::from_secs(2)),
    )
    .unwrap_err();
    let took = start.elapsed();
    assert!(matches!(e, RunError::TimedOut { .. }), "{e}");
    assert!(e.to_string().contains("timed out after 2 s"), "{e}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

fn gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie waiting for its (new) parent to reap it runs nothing.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn no_process_outlives_it() {
    let Some(h) = hostile() else { return };
    let py = py(&h);
    let scratch = tempfile::tempdir().unwrap();
    let out = run_bounded(
        cmd(&py, scratch.path(), &["fork"]),
        None,
        &Limits::with_timeout(Duration::from_secs(20)),
    )
    .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (pid, escaped) = text
        .trim()
        .strip_prefix("child ")
        .and_then(|r| r.split_once(" escaped="))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(escaped, "0", "setsid is denied in the sandbox");
    let pid: u32 = pid.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while !gone(pid) {
        assert!(
            Instant::now() < deadline,
            "process {pid} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_streaming_child_is_killed_at_the_deadline_and_on_drop() {
    let Some(h) = hostile() else { return };
    let py = py(&h);
    let scratch = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut child = BoundedChild::spawn(
        cmd(&py, scratch.path(), &["sleep"]),
        &Limits::with_timeout(Duration::from_secs(1)),
    )
    .unwrap();
    let mut buf = Vec::new();
    // Blocks until the watchdog kills the group.
    child.stdout.take().unwrap().read_to_end(&mut buf).unwrap();
    let e = child.wait().unwrap_err();
    assert!(matches!(e, RunError::TimedOut { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(5));

    let child = BoundedChild::spawn(
        cmd(&py, scratch.path(), &["sleep"]),
        &Limits::with_timeout(Duration::from_secs(600)),
    )
    .unwrap();
    let pid = child.id();
    assert!(!gone(pid));
    drop(child);
    assert!(gone(pid), "dropping the child kills it");
}

#[test]
fn a_foreign_interpreter_is_not_runnable() {
    let Some(h) = hostile() else { return };
    // Patch e_machine to aarch64 (183) in a copy of the root.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let status = Command::new("cp")
        .arg("-a")
        .arg(h.base.root())
        .arg(&root)
        .status()
        .unwrap();
    assert!(status.success());
    let bin = root.join("usr/bin/python3.11");
    let mut bytes = fs::read(&bin).unwrap();
    bytes[18..20].copy_from_slice(&183u16.to_le_bytes());
    fs::write(&bin, bytes).unwrap();
    let e = TargetPython::locate(&root, "/usr/bin/python3.11")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("aarch64") && e.contains("x86_64") && e.contains("--no-compile-bytecode"),
        "{e}"
    );
}
