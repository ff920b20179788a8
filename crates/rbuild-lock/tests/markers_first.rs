//! An entry rbuild refuses (VCS, path, direct URL) is skipped when its marker does not hold for the
//! target, as pip skips it; it is refused when the marker holds. In every format.

mod common;

use common::{env311, pins, write};
use rbuild_lock::{ResolveOptions, read_lock};
use rbuild_python::markers::MarkerEnv;
use rbuild_python::target::MajorMinor;

const H: &str = "0a30ef8f5322a4173720ae6712dc9a5e58f5a19868f3f167b4b5778db066c2b5";

fn aarch64() -> MarkerEnv {
    MarkerEnv::cpython_linux(MajorMinor::new(3, 11), Some("3.11.2"), "aarch64")
}

/// Reads `name` with `text` for x86_64 (the marker fails: the entry is skipped) and for aarch64 (the
/// marker holds: refused with a message naming `what`).
fn check(name: &str, text: &str, what: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), name, text);
    let lock = read_lock(&path, &env311(), &ResolveOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        pins(&lock),
        [("idna".to_string(), "3.20".to_string())],
        "{name}"
    );
    let e = read_lock(&path, &aarch64(), &ResolveOptions::default())
        .expect_err(name)
        .to_string();
    assert!(
        e.contains(what) && e.contains("not supported"),
        "{name}: {e}"
    );
}

#[test]
fn requirements_direct_url_with_marker() {
    let idna = format!("idna==3.20 --hash=sha256:{H}\n");
    check(
        "requirements.txt",
        &format!(
            "{idna}torch @ https://download.example/torch-2.0-cp311-cp311-linux_aarch64.whl ; platform_machine == 'aarch64' --hash=sha256:{H}\n"
        ),
        "a direct URL requirement",
    );
    check(
        "requirements.txt",
        &format!("{idna}git+https://github.com/o/r@v1#egg=r ; platform_machine == 'aarch64'\n"),
        "version-control",
    );
    check(
        "requirements.txt",
        &format!("{idna}./wheels/r-1-py3-none-any.whl ; platform_machine == 'aarch64'\n"),
        "a local path requirement",
    );
    // Without a marker it is refused everywhere.
    let tmp = tempfile::tempdir().unwrap();
    let path = write(
        tmp.path(),
        "requirements.txt",
        "r @ git+https://github.com/o/r@v1\n",
    );
    let e = read_lock(&path, &env311(), &ResolveOptions::default()).unwrap_err();
    assert!(e.to_string().contains("requirements.txt:1"), "{e}");
}

#[test]
fn uv_lock_vcs_dependency_with_marker() {
    check(
        "uv.lock",
        &format!(
            r#"version = 1
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [
    {{ name = "idna" }},
    {{ name = "r", marker = "platform_machine == 'aarch64'" }},
]

[[package]]
name = "idna"
version = "3.20"
source = {{ registry = "https://pypi.org/simple" }}
wheels = [{{ url = "https://files.example/idna-3.20-py3-none-any.whl", hash = "sha256:{H}" }}]

[[package]]
name = "r"
version = "1"
source = {{ git = "https://github.com/o/r?rev=v1#abc" }}
"#
        ),
        "`r`",
    );
}

#[test]
fn pylock_vcs_entry_with_marker() {
    check(
        "pylock.toml",
        &format!(
            r#"lock-version = "1.0"
created-by = "test"

[[packages]]
name = "idna"
version = "3.20"
wheels = [{{ url = "https://files.example/idna-3.20-py3-none-any.whl", hashes = {{ sha256 = "{H}" }} }}]

[[packages]]
name = "r"
marker = "platform_machine == 'aarch64'"
vcs = {{ type = "git", url = "https://github.com/o/r", commit-id = "abc" }}
"#
        ),
        "`r`",
    );
}

#[test]
fn poetry_git_source_with_marker() {
    check(
        "poetry.lock",
        &format!(
            r#"[[package]]
name = "idna"
version = "3.20"
groups = ["main"]
files = [{{ file = "idna-3.20-py3-none-any.whl", hash = "sha256:{H}" }}]

[[package]]
name = "r"
version = "1"
groups = ["main"]
markers = "platform_machine == \"aarch64\""
files = []

[package.source]
type = "git"
url = "https://github.com/o/r"
reference = "v1"
resolved_reference = "abc"

[metadata]
lock-version = "2.1"
python-versions = ">=3.11"
"#
        ),
        "`r`",
    );
}

#[test]
fn pipfile_git_entry_with_marker() {
    check(
        "Pipfile.lock",
        &format!(
            r#"{{"_meta": {{"pipfile-spec": 6, "sources": []}},
               "default": {{
                 "idna": {{"version": "==3.20", "hashes": ["sha256:{H}"]}},
                 "r": {{"git": "https://github.com/o/r", "ref": "abc", "markers": "platform_machine == 'aarch64'"}}
               }}}}"#
        ),
        "`r`",
    );
}

#[test]
fn pdm_git_package_with_marker() {
    check(
        "pdm.lock",
        &format!(
            r#"[metadata]
groups = ["default"]
lock_version = "4.5.0"

[[package]]
name = "idna"
version = "3.20"
groups = ["default"]
files = [{{ file = "idna-3.20-py3-none-any.whl", hash = "sha256:{H}" }}]

[[package]]
name = "r"
version = "1"
groups = ["default"]
marker = "platform_machine == \"aarch64\""
git = "https://github.com/o/r"
revision = "abc"
"#
        ),
        "`r`",
    );
}
