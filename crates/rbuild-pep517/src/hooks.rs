//! Calling PEP 517 hooks in the target interpreter through a small driver script (the shape of
//! `pyproject_hooks`' `_in_process.py`), one process per hook.
//!
//! The interpreter runs with `-I -S`: no user or system site-packages, no `PYTHON*` variables,
//! so nothing of the base's own packages leaks into the build (build isolation as pip does it).
//! The driver then adds the build environment with `site.addsitedir` (so its `.pth` files, such
//! as setuptools' distutils shim, are processed), puts `backend-path` first on `sys.path`,
//! changes into the source tree, imports the backend and calls the hook. The hook's result goes
//! to a JSON file; stdout and stderr go to one log file. The process runs in its own process
//! group, which is killed when the time limit passes.

use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rbuild_runner::Python;

/// The driver run in the target interpreter.
pub const DRIVER: &str = r#"
import json, os, sys, traceback

def main():
    site_dir, src, backend_spec, backend_path, hook, outdir, result = sys.argv[1:8]
    import site
    site.addsitedir(site_dir)
    for p in reversed(json.loads(backend_path)):
        sys.path.insert(0, p)
    os.chdir(src)

    def write(obj):
        with open(result, "w", encoding="utf-8") as f:
            json.dump(obj, f)

    mod_name, _, obj_path = backend_spec.partition(":")
    try:
        import importlib
        backend = importlib.import_module(mod_name)
        for part in filter(None, obj_path.split(".")):
            backend = getattr(backend, part)
    except Exception:
        traceback.print_exc()
        write({"unavailable": traceback.format_exc()})
        return 3
    sys.stdout.flush()
    if hook == "get_requires_for_build_wheel":
        fn = getattr(backend, hook, None)
        value = list(fn(None)) if fn is not None else []
    elif hook == "build_wheel":
        value = backend.build_wheel(outdir, None, None)
    else:
        raise SystemExit("unknown hook " + hook)
    write({"value": value})
    return 0

sys.exit(main())
"#;

/// The outcome of one hook process.
#[derive(Debug)]
pub(crate) struct HookRun {
    /// The JSON the driver wrote, if any.
    pub result: Option<serde_json::Value>,
    /// stdout and stderr, interleaved.
    pub output: String,
    /// Whether the process exited 0.
    pub success: bool,
    /// Whether it was killed at the time limit.
    pub timed_out: bool,
}

pub(crate) struct HookCall<'a> {
    pub python: &'a dyn Python,
    pub scratch: &'a Path,
    pub site_dir: &'a Path,
    pub src: &'a Path,
    pub backend: &'a str,
    pub backend_path: &'a [PathBuf],
    pub outdir: &'a Path,
    pub env: &'a [(String, String)],
}

pub(crate) fn run_hook(call: &HookCall<'_>, hook: &str) -> std::io::Result<HookRun> {
    let driver = call.scratch.join("_rbuild_pep517_driver.py");
    fs::write(&driver, DRIVER)?;
    let result = call.scratch.join(format!("_rbuild_{hook}.json"));
    let _ = fs::remove_file(&result);
    let log = call.scratch.join(format!("_rbuild_{hook}.log"));
    let backend_path: Vec<String> = call
        .backend_path
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let args: Vec<OsString> = vec![
        "-I".into(),
        "-S".into(),
        driver.into(),
        call.site_dir.into(),
        call.src.into(),
        call.backend.into(),
        serde_json::to_string(&backend_path)
            .unwrap_or_default()
            .into(),
        hook.into(),
        call.outdir.into(),
        result.clone().into(),
    ];
    let mut cmd = call.python.command(&args, call.scratch, call.env)?;
    let log_file = fs::File::create(&log)?;
    cmd.stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .process_group(0);
    let mut child = cmd.spawn()?;
    let limit = call.python.time_limit();
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() >= limit {
            timed_out = true;
            // SAFETY: kill(2) on the child's own process group (created by `process_group(0)`).
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = String::new();
    if let Ok(mut f) = fs::File::open(&log) {
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        output = String::from_utf8_lossy(&bytes).into_owned();
    }
    let result = fs::read(&result)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    Ok(HookRun {
        result,
        output,
        success: status.success() && !timed_out,
        timed_out,
    })
}
