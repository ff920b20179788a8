//! `rbuild --help` and `rbuild build --help`, snapshot-tested: what rbuild does with examples, the
//! build options grouped with `--to` first and the environment variable of each setting.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("COLUMNS")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn top_level_help() {
    let text = help(&["--help"]);
    assert!(text.starts_with("Build container images for Python applications"));
    assert!(text.contains("Examples:"));
    insta::assert_snapshot!("rbuild-help", text);
}

#[test]
fn build_help() {
    let text = help(&["build", "--help"]);
    let dest = text.find("Destination:").unwrap();
    let base = text.find("Base and platforms:").unwrap();
    assert!(dest < base, "the destination comes first");
    assert!(
        text[dest..]
            .trim_start_matches("Destination:")
            .trim_start()
            .starts_with("-t, --to <REF>")
    );
    assert!(text.contains("[env: RBUILD_TO]"));
    insta::assert_snapshot!("rbuild-build-help", text);
}
