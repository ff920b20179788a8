//! Independent readers: GNU tar lists and extracts what the writer produces (PAX long names,
//! unicode names, long symlink targets, modes, mtime, owner), and `gzip -t` accepts the stream.

use std::process::Command;

use rbuild_layer::{LayerOptions, LayerWriter};

#[test]
fn gnu_tar_and_gzip_read_the_layer() {
    if Command::new("tar").arg("--version").output().is_err() {
        eprintln!("NOTE: GNU tar is not installed; skipping");
        return;
    }
    let long_dir = "d".repeat(120);
    let long_file = format!("{long_dir}/{}", "f".repeat(110));
    let split = format!("{}/{}", "p".repeat(80), "n".repeat(80));
    let target = "../".repeat(40) + "etc/passwd";
    let opts = LayerOptions {
        mtime: 1_700_000_000,
        ..LayerOptions::default()
    };
    let mut w = LayerWriter::new(Vec::new(), &opts).unwrap();
    w.append_bytes("app/main.py", 0o644, b"print('hi')\n")
        .unwrap();
    w.append_bytes("app/run", 0o755, b"#!/bin/sh\n").unwrap();
    w.append_bytes(&format!("app/{long_file}"), 0o600, b"deep")
        .unwrap();
    w.append_bytes(&format!("app/{split}"), 0o644, b"split")
        .unwrap();
    w.append_bytes("app/ünïcødé.txt", 0o644, b"u").unwrap();
    w.append_symlink("app/link", &target).unwrap();
    let (blob, _) = w.finish().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("layer.tar.gz");
    std::fs::write(&layer, &blob).unwrap();
    assert!(
        Command::new("gzip")
            .arg("-t")
            .arg(&layer)
            .status()
            .unwrap()
            .success()
    );

    let out = Command::new("tar")
        .args([
            "--list",
            "--verbose",
            "--numeric-owner",
            "--full-time",
            "-z",
            "-f",
        ])
        .arg(&layer)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = listing.lines().collect();
    assert!(
        lines
            .iter()
            .all(|l| l.contains(" 0/0 ") && l.contains("2023-11-14 22:13:20")),
        "{listing}"
    );
    assert!(
        lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" app/"),
        "{listing}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(" app/run")),
        "{listing}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("-rw-------") && l.ends_with(&long_file)),
        "{listing}"
    );
    assert!(lines.iter().any(|l| l.ends_with(&split)), "{listing}");
    assert!(
        lines.iter().any(|l| l.ends_with("app/ünïcødé.txt")),
        "{listing}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("lrwxrwxrwx") && l.ends_with(&format!("app/link -> {target}"))),
        "{listing}"
    );
    assert!(
        !listing.contains("PaxHeaders"),
        "PAX headers must be consumed, not listed: {listing}"
    );

    let x = dir.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let st = Command::new("tar")
        .args(["-x", "-z", "-f"])
        .arg(&layer)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::read(x.join("app").join(&long_file)).unwrap(),
        b"deep"
    );
    assert_eq!(
        std::fs::read_link(x.join("app/link"))
            .unwrap()
            .to_str()
            .unwrap(),
        target
    );
}
