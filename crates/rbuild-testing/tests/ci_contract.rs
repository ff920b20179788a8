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

/// The README's set-up command and CI install the same packages through one script, so the test
/// command passes after the set-up command as it does in CI (issue #18, item 10).
#[test]
fn setup_and_ci_share_one_install_step() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let (ci, job) = (read(".ci/run"), read("tests/fixtures/main-job.sh"));
    for (name, text) in [(".ci/run", &ci), ("main-job.sh", &job)] {
        assert!(
            text.lines()
                .any(|l| l.trim() == "tests/fixtures/install-packages.sh"),
            "{name} runs tests/fixtures/install-packages.sh"
        );
        assert!(
            !text.contains("apt-get install"),
            "{name} installs nothing on its own"
        );
    }
    let out = std::process::Command::new(root.join("tests/fixtures/install-packages.sh"))
        .arg("--list")
        .output()
        .unwrap();
    let list = String::from_utf8(out.stdout).unwrap();
    // What the tests need beyond the main job: the packaging oracle (tags_oracle) among them.
    for p in [
        "python3-packaging",
        "docker-registry",
        "umoci",
        "runc",
        "git",
    ] {
        assert!(list.lines().any(|l| l == p), "{p} is installed: {list}");
    }
}
