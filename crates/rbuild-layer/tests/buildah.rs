//! Cross-check of the context walk against a real builder: buildah's `COPY . /ctx/` from
//! `FROM scratch`, exported with `--output type=local`, must contain exactly the paths our walk
//! produces for the same context and `.dockerignore`.
//!
//! Only cases where buildah (1.28) and BuildKit agree are checked. Where they differ rbuild
//! follows BuildKit, and the table/context tests hold BuildKit's answer:
//! - an exception with a wildcard (`node_modules` + `!**/package.json`, `*` + `!**/keep.txt`):
//!   BuildKit enters excluded directories and re-includes the matches; buildah 1.28 copies
//!   nothing from them;
//! - `a/x` + `!a`: BuildKit's walk excludes `a/x` (the exception was skipped at `a/`, where
//!   nothing was excluded yet); buildah copies it.
//!
//! Skipped, with a note, when `buildah` is not installed.

use std::fs;
use std::path::Path;
use std::process::Command;

use rbuild_layer::load_context;

const TREE: &[&str] = &[
    "pyproject.toml",
    "README.md",
    "docs/index.md",
    "app/__init__.py",
    "app/main.py",
    "app/x.pyc",
    "app/__pycache__/main.cpython-311.pyc",
    "app/sub/__pycache__/a.pyc",
    "app/sub/a.py",
    "tests/test_main.py",
    "data/other.txt",
    "data/sub/keep.txt",
    "data/sub/drop.txt",
];

fn list(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if e.file_type().unwrap().is_dir() {
            list(&e.path(), &rel, out);
        }
        out.push(rel);
    }
}

fn buildah_paths(work: &Path, ctx: &Path) -> Vec<String> {
    let out = work.join("out");
    let _ = fs::remove_dir_all(&out);
    fs::write(work.join("Containerfile"), "FROM scratch\nCOPY . /ctx/\n").unwrap();
    let result = Command::new("buildah")
        .arg("--root")
        .arg(work.join("storage"))
        .arg("--runroot")
        .arg(work.join("run"))
        .args([
            "--storage-driver",
            "vfs",
            "build",
            "--isolation",
            "chroot",
            "-f",
        ])
        .arg(work.join("Containerfile"))
        .arg("--output")
        .arg(format!("type=local,dest={}", out.display()))
        .arg(ctx)
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "buildah build failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let mut paths = Vec::new();
    if out.join("ctx").exists() {
        list(&out.join("ctx"), "", &mut paths);
    }
    paths.sort();
    paths
}

#[test]
fn walk_agrees_with_buildah_copy() {
    if Command::new("buildah").arg("--version").output().is_err() {
        eprintln!("NOTE: buildah is not installed; skipping the buildah cross-check");
        return;
    }
    let cases: &[(&str, &str)] = &[
        ("`*` then `!app`", "*\n!app\n!pyproject.toml\n"),
        (
            "re-include inside an excluded directory",
            "data\n!data/sub/keep.txt\n",
        ),
        ("`**` patterns", "**/__pycache__\n**/*.pyc\n"),
        (
            "a not-excluded directory stays even when emptied",
            "data/*\n**/*.md\n",
        ),
        (
            "last line wins, exceptions of exceptions",
            "*.md\n!README*.md\nREADME.md\n!docs\n",
        ),
    ];
    let work = tempfile::tempdir().unwrap();
    for (name, ignore) in cases {
        let ctx = work.path().join("ctx");
        let _ = fs::remove_dir_all(&ctx);
        for f in TREE {
            let p = ctx.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, *f).unwrap();
        }
        fs::write(ctx.join(".dockerignore"), ignore).unwrap();

        let ours: Vec<String> = load_context(&ctx)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.path)
            .collect();
        let theirs = buildah_paths(work.path(), &ctx);
        assert_eq!(ours, theirs, "case {name}: {ignore:?}");
        eprintln!("buildah agrees on {name}: {} paths", ours.len());
    }
}
