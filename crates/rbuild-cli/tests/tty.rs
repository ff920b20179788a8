//! rbuild on a terminal, driven through a pseudo-terminal (`script(1)`): progress is drawn during
//! the install step of a build with a ~300 MB dependency layer (numpy, pandas, scipy from PyPI,
//! pinned by sha256), rbuild's own messages are coloured, and `NO_COLOR` turns every colour off
//! (the progress is still drawn).

use std::path::Path;
use std::process::Command;

fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs rbuild under a pseudo-terminal and returns everything the terminal received.
fn on_a_tty(args: &[&str], dir: &Path, cache: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let mut line = shell_quote(env!("CARGO_BIN_EXE_rbuild"));
    for a in args {
        line.push(' ');
        line.push_str(&shell_quote(a));
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qfec", &line, "/dev/null"])
        .current_dir(dir)
        .env("RBUILD_CACHE_DIR", cache)
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("FORCE_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("RBUILD_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("script(1) from util-linux");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn progress_during_a_long_install_and_colours_on_a_terminal_none_with_no_color() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("script(1) is not installed; skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("heavy");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["requirements.txt", "requirements.in"] {
        std::fs::copy(
            repo_root().join("tests/fixtures/heavy").join(f),
            dir.join(f),
        )
        .unwrap();
    }
    std::fs::write(dir.join("main.py"), "import numpy\n").unwrap();
    let cache = tmp.path().join("cache");
    let args = [
        "build",
        "--no-push",
        "--base",
        "scratch",
        "--python-version",
        "3.11",
        "--libc",
        "glibc-2.36",
        "--platform",
        "linux/amd64",
        "--recipe",
        "none",
        "--entrypoint",
        r#"["python3"]"#,
    ];
    let (ok, tty) = on_a_tty(&args, &dir, &cache, &[]);
    assert!(ok, "{tty}");
    // The install step has a live line: its spinner is redrawn while the wheels are installed.
    // (Each frame: `  install ⠋ [linux/amd64] deps  3s`.)
    let redraws = tty
        .split("install ")
        .skip(1)
        .filter(|frame| {
            let mut c = frame.chars();
            c.next().is_some_and(|sp| sp != ' ') && c.as_str().starts_with(" [linux/amd64] deps")
        })
        .count();
    assert!(
        redraws >= 3,
        "install progress redrawn {redraws} times:\n{tty}"
    );
    // Wheel downloads have byte bars in MiB.
    assert!(tty.contains("wheel") && tty.contains("MiB"), "{tty}");
    // rbuild's own lines are coloured (bold step names) on a terminal.
    assert!(tty.contains("\x1b[1m[linux/amd64] deps"), "{tty:?}");

    // NO_COLOR: no colour at all, progress still drawn (the deps layer is rebuilt: new cache
    // for the layer, wheels from the first cache are not reused, so install runs again).
    std::fs::remove_dir_all(cache.join("keys")).ok();
    let (ok, plain) = on_a_tty(&args, &dir, &cache, &[("NO_COLOR", "1")]);
    assert!(ok, "{plain}");
    assert!(plain.contains("[linux/amd64] deps"), "{plain}");
    for sgr in ["\x1b[1m", "\x1b[31m", "\x1b[33m", "\x1b[36m", "\x1b[1;3"] {
        assert!(
            !plain.contains(sgr),
            "colour {sgr:?} with NO_COLOR: {plain:?}"
        );
    }
    // An error on a terminal: `error:` in red, `hint:` in cyan; none with NO_COLOR.
    let (_, err) = on_a_tty(&["build"], &dir, &cache, &[]);
    assert!(
        err.contains("\x1b[1;31merror:\x1b[0m") && err.contains("\x1b[1;36mhint:\x1b[0m"),
        "{err:?}"
    );
    let (_, err) = on_a_tty(&["build"], &dir, &cache, &[("NO_COLOR", "1")]);
    assert!(
        err.contains("error: no destination") && !err.contains('\x1b'),
        "{err:?}"
    );
}
