//! Reproducibility: the same tree, copied twice with different mtimes, owners, permission masks
//! and creation order, gives byte-identical layers.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime};

use rbuild_layer::{Compression, LayerInfo, LayerOptions, load_context, write_context_layer};

const FILES: &[(&str, &str, bool)] = &[
    ("app/__init__.py", "", false),
    ("app/main.py", "print('hello')\n", false),
    (
        "app/cli.py",
        "#!/usr/bin/env python3\nimport app.main\n",
        true,
    ),
    ("app/data/words.txt", "alpha\nbeta\n", false),
    ("pyproject.toml", "[project]\nname = 'app'\n", false),
    ("README.md", "# app\n", false),
];

/// Builds the tree under `root` in the given order, with `umask`, `mtime`, and (when running as
/// root) owner `owner`.
fn build(root: &Path, reverse: bool, umask: u32, mtime: SystemTime, owner: Option<(u32, u32)>) {
    let old = unsafe { libc::umask(umask as libc::mode_t) };
    let mut files: Vec<_> = FILES.to_vec();
    if reverse {
        files.reverse();
    }
    for (path, content, exec) in files {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        if exec {
            let mode = fs::metadata(&p).unwrap().permissions().mode();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode | 0o100)).unwrap();
        }
    }
    fs::create_dir_all(root.join("app/empty")).unwrap();
    symlink("main.py", root.join("app/entry.py")).unwrap();
    fs::write(root.join(".dockerignore"), "*\n!app\n!pyproject.toml\n").unwrap();
    unsafe { libc::umask(old) };
    for entry in walk(root) {
        let f = fs::File::options().read(true).open(&entry).unwrap();
        f.set_modified(mtime).unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::lchown(&entry, Some(uid), Some(gid)).unwrap();
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_symlink() {
            continue;
        }
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

fn layer(root: &Path, opts: &LayerOptions) -> (Vec<u8>, LayerInfo) {
    let ctx = load_context(root).unwrap();
    write_context_layer(&ctx, "app", opts, Vec::new()).unwrap()
}

#[test]
fn same_tree_same_bytes_whatever_the_copy() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let is_root = unsafe { libc::geteuid() } == 0;
    build(
        a.path(),
        false,
        0o022,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000),
        None,
    );
    build(
        b.path(),
        true,
        0o077,
        SystemTime::now(),
        is_root.then_some((1234, 5678)),
    );
    // The copies really differ on disk.
    let ma = fs::metadata(a.path().join("app/main.py")).unwrap();
    let mb = fs::metadata(b.path().join("app/main.py")).unwrap();
    assert_ne!(
        ma.permissions().mode() & 0o777,
        mb.permissions().mode() & 0o777
    );
    assert_ne!(ma.modified().unwrap(), mb.modified().unwrap());

    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let opts = LayerOptions::default().with_compression(compression);
        let (blob_a, info_a) = layer(a.path(), &opts);
        std::thread::sleep(Duration::from_millis(1100)); // a different current time
        let (blob_b, info_b) = layer(b.path(), &opts);
        assert_eq!(info_a, info_b, "{compression}");
        assert!(blob_a == blob_b, "{compression}: blobs differ");
    }

    // Changing one byte of one file changes the layer; so does SOURCE_DATE_EPOCH.
    let (_, before) = layer(a.path(), &LayerOptions::default());
    fs::write(a.path().join("app/main.py"), "print('hellO')\n").unwrap();
    let (_, after) = layer(a.path(), &LayerOptions::default());
    assert_ne!(before.digest, after.digest);
    assert_ne!(before.diff_id, after.diff_id);
    let (_, other_epoch) = layer(
        a.path(),
        &LayerOptions {
            mtime: 1,
            ..LayerOptions::default()
        },
    );
    assert_ne!(after.diff_id, other_epoch.diff_id);
}
