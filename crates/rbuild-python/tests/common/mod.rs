//! Shared helpers of the oracle tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A venv with `packaging` 26.3 (what pip 26.3 vendors), created once under the temp dir and reused;
/// `None` (with a note on stderr) when it cannot be made, e.g. without `python3-venv` or PyPI.
pub fn packaging_26_3() -> Option<PathBuf> {
    let dir = std::env::temp_dir().join("rbuild-oracle-packaging-26.3");
    let py = dir.join("bin/python");
    let ok = |py: &Path| {
        Command::new(py)
            .args([
                "-c",
                "import packaging,sys; sys.exit(packaging.__version__ != '26.3')",
            ])
            .status()
            .is_ok_and(|s| s.success())
    };
    if py.exists() && ok(&py) {
        return Some(py);
    }
    // Several test binaries may get here at once: serialize on a lock file next to the venv.
    let lock =
        std::fs::File::create(std::env::temp_dir().join("rbuild-oracle-packaging-26.3.lock"))
            .ok()?;
    lock.lock().ok()?; // released when `lock` is dropped
    if py.exists() && ok(&py) {
        return Some(py);
    }
    let made = ["/usr/bin/python3", "python3"].iter().any(|base| {
        Command::new(base)
            .args(["-m", "venv", "--clear"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success())
    });
    if !made {
        eprintln!("note: cannot create a venv (python3-venv missing?)");
        return None;
    }
    let installed = Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "packaging==26.3",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if installed && ok(&py) {
        Some(py)
    } else {
        eprintln!("note: cannot pip-install packaging==26.3 (PyPI unreachable?)");
        None
    }
}
