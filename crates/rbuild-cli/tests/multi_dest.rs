//! A build pushed to two registries: when the second one is down, no tag moves and the error
//! lists both references as not updated; when the second one refuses its tag, the error says the
//! first was updated and the second not. Both exit 1.
//!
//! The builds use a `scratch` base with the target given and no lockfile.

mod common;

use std::path::Path;

use common::*;
use rbuild_testing::{Fault, FaultProxy, Registry, Times};

const TARGET: &[&str] = &[
    "--base",
    "scratch",
    "--python-version",
    "3.11",
    "--libc",
    "glibc-2.36",
    "--platform",
    "linux/amd64",
];

fn build(dir: &Path, to: &[&str], cache: &Path) -> std::process::Output {
    let mut args = vec!["build", dir.to_str().unwrap(), "--timeout", "3"];
    for t in to {
        args.extend_from_slice(&["--to", t]);
    }
    args.extend_from_slice(TARGET);
    rbuild(&args, cache)
}

fn project(root: &Path) -> std::path::PathBuf {
    let dir = root.join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.py"), "print('hello')\n").unwrap();
    dir
}

#[test]
fn the_second_registry_down_moves_no_tag_and_names_both() {
    let a_reg = Registry::plain().expect("registry");
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    let a = format!("{}/team/app:v1", a_reg.host());
    let b = format!("{down}/team/app:v1");
    let out = build(&dir, &[&a, &b], &tmp.path().join("cache"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&down.to_string())
            && stderr.contains("updated: none")
            && stderr.contains(&format!("not updated: {a}, {b}")),
        "{stderr}"
    );
    assert!(skopeo_raw(&a).is_none(), "the first tag was not created");
}

#[test]
fn a_refused_second_tag_lists_what_was_updated() {
    let a_reg = Registry::plain().expect("registry");
    let b_reg = Registry::plain().expect("registry");
    let b_proxy = FaultProxy::in_front_of(&b_reg).unwrap();
    b_proxy.inject("PUT", r"/manifests/", Fault::Status(400), Times::Always);
    let tmp = tempfile::tempdir().unwrap();
    let dir = project(tmp.path());
    let a = format!("{}/team/app:v1", a_reg.host());
    let b = format!("{}/team/app:v1", b_proxy.host());
    let out = build(&dir, &[&a, &b], &tmp.path().join("cache"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("updated: {a}")) && stderr.contains(&format!("not updated: {b}")),
        "{stderr}"
    );
    assert!(skopeo_raw(&a).is_some(), "the first tag was pushed");
}
