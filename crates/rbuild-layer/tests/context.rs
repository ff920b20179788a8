//! The context walk and the app layer, on real directory trees.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use rbuild_layer::{
    EntryKind, Error, IgnoreFile, LayerOptions, WalkWarning, load_context, walk_context,
    write_context_layer,
};

/// Creates files (`path` → content), directories (`path/`) and symlinks (`path -> target`).
fn tree(root: &Path, spec: &[&str]) {
    for item in spec {
        if let Some((link, target)) = item.split_once(" -> ") {
            let p = root.join(link);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            symlink(target, p).unwrap();
        } else if let Some(dir) = item.strip_suffix('/') {
            fs::create_dir_all(root.join(dir)).unwrap();
        } else {
            let p = root.join(item);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, format!("content of {item}\n")).unwrap();
        }
    }
}

fn paths(dir: &Path, ignore: &str) -> Vec<String> {
    let ig = IgnoreFile::parse(".dockerignore", ignore).unwrap();
    walk_context(dir, Some(&ig))
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.path)
        .collect()
}

const PROJECT: &[&str] = &[
    ".dockerignore",
    "Dockerfile",
    "pyproject.toml",
    "README.md",
    "app/__init__.py",
    "app/main.py",
    "app/__pycache__/main.cpython-311.pyc",
    "app/static/",
    "tests/test_main.py",
    "data/keep.txt",
    "data/big.bin",
    "data/sub/deep.txt",
    ".venv/bin/python -> /usr/bin/python3",
    ".venv/lib/site.py",
    "node_modules/left-pad/package.json",
    "node_modules/left-pad/index.js",
    ".git/HEAD",
];

#[test]
fn python_allowlist() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), PROJECT);
    assert_eq!(
        paths(d.path(), "*\n!app\n!pyproject.toml\n**/__pycache__\n"),
        [
            "app",
            "app/__init__.py",
            "app/main.py",
            "app/static",
            "pyproject.toml"
        ]
    );
}

#[test]
fn reinclude_inside_an_excluded_directory_brings_its_parents() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), PROJECT);
    let got = paths(d.path(), "*\n!data/sub/deep.txt\n");
    assert_eq!(got, ["data", "data/sub", "data/sub/deep.txt"]);
}

#[test]
fn wildcard_exception_enters_excluded_directories() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), PROJECT);
    let got = paths(d.path(), "*\n!**/package.json\n");
    assert_eq!(
        got,
        [
            "node_modules",
            "node_modules/left-pad",
            "node_modules/left-pad/package.json"
        ]
    );
}

#[test]
fn not_excluded_directory_is_sent_even_if_empty() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), PROJECT);
    let got = paths(d.path(), "*\n!data\ndata/*\n");
    assert_eq!(got, ["data"]);
}

#[test]
fn double_star_patterns_and_ordinary_ignore_files() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), PROJECT);
    let got = paths(
        d.path(),
        "**/__pycache__\n**/*.json\n.git\n.venv\nnode_modules/**\ndata\ntests\n",
    );
    assert_eq!(
        got,
        [
            ".dockerignore",
            "Dockerfile",
            "README.md",
            "app",
            "app/__init__.py",
            "app/main.py",
            "app/static",
            "node_modules",
            "pyproject.toml",
        ]
    );
}

#[test]
fn no_ignore_file_sends_everything_and_warns_about_clutter() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), &PROJECT[1..]);
    tree(d.path(), &["pkg/__pycache__/x.pyc"]);
    let ctx = load_context(d.path()).unwrap();
    assert!(ctx.ignore_file.is_none());
    assert!(ctx.entries.iter().any(|e| e.path == ".venv/lib/site.py"));
    let clutter: Vec<_> = ctx
        .warnings
        .iter()
        .filter_map(|w| match w {
            WalkWarning::UnignoredClutter { name, path, count } => {
                Some((*name, path.as_str(), *count))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        clutter,
        [
            (".git", ".git", 1),
            (".venv", ".venv", 1),
            ("__pycache__", "app/__pycache__", 2),
            ("node_modules", "node_modules", 1),
        ]
    );
    let msg = ctx
        .warnings
        .iter()
        .find(|w| w.to_string().contains("__pycache__"))
        .unwrap()
        .to_string();
    assert!(
        msg.contains("app/__pycache__ and 1 more") && msg.contains("**/__pycache__"),
        "{msg}"
    );

    // With an ignore file, no clutter warning.
    fs::write(d.path().join(".dockerignore"), ".venv\n").unwrap();
    let ctx = load_context(d.path()).unwrap();
    assert!(ctx.ignore_file.as_ref().unwrap().ends_with(".dockerignore"));
    assert!(ctx.warnings.is_empty());
    assert!(!ctx.entries.iter().any(|e| e.path.starts_with(".venv")));
}

#[test]
fn entries_kinds_order_and_special_files() {
    let d = tempfile::tempdir().unwrap();
    tree(
        d.path(),
        &[
            "a/b",
            "a-c",
            "run.sh",
            "outside -> ../../etc/passwd",
            "dangling -> nowhere",
            "empty/",
        ],
    );
    fs::set_permissions(d.path().join("run.sh"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::hard_link(d.path().join("a-c"), d.path().join("hard")).unwrap();
    let fifo = std::ffi::CString::new(d.path().join("fifo").into_os_string().into_encoded_bytes())
        .unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    let _sock = std::os::unix::net::UnixListener::bind(d.path().join("sock")).unwrap();

    let ctx = walk_context(d.path(), None).unwrap();
    let got: Vec<_> = ctx
        .entries
        .iter()
        .map(|e| (e.path.as_str(), &e.kind))
        .collect();
    let file = |size, executable| EntryKind::File { size, executable };
    let link = |t: &str| EntryKind::Symlink {
        target: t.to_string(),
    };
    assert_eq!(
        got,
        [
            ("a", &EntryKind::Dir),
            ("a-c", &file(15, false)),
            ("a/b", &file(15, false)),
            ("dangling", &link("nowhere")),
            ("empty", &EntryKind::Dir),
            ("hard", &file(15, false)),
            ("outside", &link("../../etc/passwd")),
            ("run.sh", &file(18, true)),
        ],
        "sorted by path bytes ('-' < '/'), symlinks not followed, hard link is a file"
    );
    let skipped: Vec<_> = ctx.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped[0].starts_with("fifo: fifo skipped"), "{skipped:?}");
    assert!(
        skipped[1].starts_with("sock: socket skipped"),
        "{skipped:?}"
    );
}

#[test]
fn context_must_be_a_directory() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), &["file"]);
    let e = load_context(&d.path().join("file")).unwrap_err();
    assert!(matches!(e, Error::ContextNotADirectory(_)), "{e}");
    assert!(e.to_string().contains("is not a directory"));
    let e = load_context(&d.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing") && e.contains("No such file"), "{e}");
}

#[test]
fn bad_ignore_file_is_an_error_naming_the_line() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), &["a"]);
    fs::write(d.path().join(".dockerignore"), "a\nb[\n").unwrap();
    let e = load_context(d.path()).unwrap_err().to_string();
    assert!(
        e.contains(".dockerignore:2:") && e.contains("unclosed"),
        "{e}"
    );
}

#[test]
fn non_utf8_names_are_refused_unless_excluded() {
    use std::os::unix::ffi::OsStrExt;
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), &["ok.txt"]);
    fs::write(
        d.path().join(std::ffi::OsStr::from_bytes(b"bad\xff.txt")),
        "x",
    )
    .unwrap();
    let e = walk_context(d.path(), None).unwrap_err();
    assert!(matches!(e, Error::NonUtf8Path(_)), "{e}");
    let ig = IgnoreFile::parse("x", "bad*").unwrap();
    let ctx = walk_context(d.path(), Some(&ig)).unwrap();
    assert_eq!(ctx.entries.len(), 1);
}

/// (path, type flag, mode, uid, gid, "uname/gname", data)
type TarEntry = (String, u8, u32, u64, u64, String, Vec<u8>);

fn read_layer(blob: &[u8]) -> Vec<TarEntry> {
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(blob));
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.entry_type().as_byte(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                format!("{:?}/{:?}", h.username().unwrap(), h.groupname().unwrap()),
                data,
            )
        })
        .collect()
}

#[test]
fn app_layer_under_a_prefix_owned_by_root_with_normalized_modes() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), &["main.py", "bin/run", "lib -> bin", "private/"]);
    fs::set_permissions(d.path().join("bin/run"), fs::Permissions::from_mode(0o744)).unwrap();
    fs::set_permissions(d.path().join("main.py"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(d.path().join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    let ctx = walk_context(d.path(), None).unwrap();
    let (blob, info) =
        write_context_layer(&ctx, "/opt/app/", &LayerOptions::default(), Vec::new()).unwrap();
    assert_eq!(info.size, blob.len() as u64);
    let es = read_layer(&blob);
    let summary: Vec<_> = es.iter().map(|e| (e.0.as_str(), e.1, e.2)).collect();
    assert_eq!(
        summary,
        [
            ("opt/", b'5', 0o755),
            ("opt/app/", b'5', 0o755),
            ("opt/app/bin/", b'5', 0o755),
            ("opt/app/bin/run", b'0', 0o755),
            ("opt/app/lib", b'2', 0o777),
            ("opt/app/main.py", b'0', 0o644),
            ("opt/app/private/", b'5', 0o755),
        ]
    );
    assert!(
        es.iter()
            .all(|e| e.3 == 0 && e.4 == 0 && e.5 == "Some(\"\")/Some(\"\")")
    );
    assert_eq!(es[5].6, b"content of main.py\n");
}

#[test]
fn a_file_that_changes_after_the_walk_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), &["grows.txt"]);
    let ctx = walk_context(d.path(), None).unwrap();
    fs::write(
        d.path().join("grows.txt"),
        "much longer content than before\n",
    )
    .unwrap();
    let e =
        write_context_layer(&ctx, "app", &LayerOptions::default(), std::io::sink()).unwrap_err();
    assert!(
        e.to_string()
            .contains("app/grows.txt changed while it was being read"),
        "{e}"
    );
}

/// Runs the calling test as user `nobody` when the suite runs as root (root reads everything);
/// returns true when the caller should run its body.
fn unprivileged(test: &str) -> bool {
    use std::os::unix::process::CommandExt;
    if unsafe { libc::geteuid() } != 0 {
        return true;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "as nobody: {text}");
    assert!(
        text.contains("1 passed"),
        "the test did not run as nobody: {text}"
    );
    false
}

#[test]
fn unreadable_file_or_directory_is_an_error_naming_it() {
    if !unprivileged("unreadable_file_or_directory_is_an_error_naming_it") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    tree(d.path(), &["ok.txt", "secret.txt", "locked/inner.txt"]);
    fs::set_permissions(
        d.path().join("secret.txt"),
        fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let e = walk_context(d.path(), None).unwrap_err().to_string();
    assert!(
        e.contains("cannot open") && e.contains("secret.txt") && e.contains("Permission denied"),
        "{e}"
    );

    fs::set_permissions(
        d.path().join("secret.txt"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    fs::set_permissions(d.path().join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    let e = walk_context(d.path(), None).unwrap_err().to_string();
    assert!(
        e.contains("cannot read directory") && e.contains("locked"),
        "{e}"
    );

    // Excluded: never opened, even when exceptions with wildcards make the walk enter
    // excluded directories (BuildKit ignores permission errors there too).
    fs::set_permissions(
        d.path().join("secret.txt"),
        fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let ig = IgnoreFile::parse("x", "secret.txt\nlocked\n!**/*.md\n").unwrap();
    let ctx = walk_context(d.path(), Some(&ig)).unwrap();
    assert_eq!(
        ctx.entries
            .iter()
            .map(|e| e.path.as_str())
            .collect::<Vec<_>>(),
        ["ok.txt"]
    );
    fs::set_permissions(d.path().join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
}
