//! `.ci/run` runs exactly the test command that README.md's "Quick start" gives, and both scripts
//! it relies on are executable bash with strict mode.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[test]
fn ci_runs_the_readme_test_command() {
    let ci = std::fs::read_to_string(repo().join(".ci/run")).unwrap();
    let command = ci
        .lines()
        .find_map(|l| l.strip_prefix("TEST_COMMAND='"))
        .and_then(|l| l.strip_suffix('\''))
        .expect(".ci/run defines TEST_COMMAND='...'");
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let quick = readme
        .split("## Quick start")
        .nth(1)
        .expect("README.md has a Quick start section");
    let block: Vec<&str> = quick
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```sh block")
        .lines()
        .collect();
    assert_eq!(block.len(), 2, "Quick start gives exactly two commands");
    assert_eq!(
        block[1], command,
        "README's test command and .ci/run's differ"
    );
    assert!(
        ci.contains("\neval \"$TEST_COMMAND\"\n"),
        ".ci/run must run eval \"$TEST_COMMAND\""
    );
    assert_eq!(block[0], "tests/fixtures/main-job.sh");
}

#[test]
fn scripts_are_executable_and_strict() {
    for script in [
        ".ci/run",
        "tests/fixtures/main-job.sh",
        "tests/fixtures/base/build-base.sh",
    ] {
        let path = repo().join(script);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{script} is not executable");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#!/usr/bin/env bash\n"), "{script}");
        assert!(text.contains("\nset -euo pipefail\n"), "{script}");
    }
}
