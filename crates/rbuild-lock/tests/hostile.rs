//! Hostile and broken lockfiles: each gives its own clear error naming the file (and line, for
//! requirements files) and the package.

mod common;

use std::path::Path;

use common::{env311, opts, pins, tags311, write};
use rbuild_lock::{Error, Lock, ResolveOptions, choose_wheel, read_lock};

const H1: &str = "0a30ef8f5322a4173720ae6712dc9a5e58f5a19868f3f167b4b5778db066c2b5";
const H2: &str = "6bc31bbbec6dfaaedc1676dbc11dbda96fe22a2b5c400e9ebad113fec44a9dc6";

fn read_ok(dir: &Path, name: &str, text: &str, options: &ResolveOptions) -> Lock {
    let p = write(dir, name, text);
    read_lock(&p, &env311(), options).unwrap_or_else(|e| panic!("{e}"))
}

fn read_err(dir: &Path, name: &str, text: &str, options: &ResolveOptions) -> (Error, String) {
    let p = write(dir, name, text);
    match read_lock(&p, &env311(), options) {
        Ok(l) => panic!("expected an error for {name}, got {:?}", pins(&l)),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&p.display().to_string()),
                "the message names the file: {msg}"
            );
            (e, msg)
        }
    }
}

fn req_err(text: &str, options: &ResolveOptions) -> (Error, String) {
    let tmp = tempfile::tempdir().unwrap();
    read_err(tmp.path(), "requirements.txt", text, options)
}

// --- requirements.txt ---------------------------------------------------------------------------------

#[test]
fn requirements_hashes_follow_pip() {
    let tmp = tempfile::tempdir().unwrap();
    // No hashes at all: allowed, with a note, unless hashes are required.
    let lock = read_ok(
        tmp.path(),
        "requirements.txt",
        "idna==3.20\ncertifi==2026.10.18\n",
        &ResolveOptions::default(),
    );
    assert!(!lock.hashes_required);
    assert!(
        lock.notes
            .iter()
            .any(|n| n.contains("no requirement has a hash")),
        "{:?}",
        lock.notes
    );

    let (e, m) = req_err(
        "idna==3.20\n",
        &ResolveOptions {
            require_hashes: true,
            ..Default::default()
        },
    );
    assert!(matches!(e, Error::MissingHash { .. }), "{m}");
    assert!(
        m.contains("requirements.txt:1")
            && m.contains("idna==3.20")
            && m.contains("--require-hashes"),
        "{m}"
    );

    // `--require-hashes` in the file does the same.
    let (_, m) = req_err(
        "--require-hashes\n\nidna==3.20\n",
        &ResolveOptions::default(),
    );
    assert!(m.contains("requirements.txt:3"), "{m}");

    // A mix: the unhashed one is named, with its line, and the rule explained.
    let (e, m) = req_err(
        &format!(
            "# comment\nidna==3.20 \\\n    --hash=sha256:{H1}\n    # via x\ncertifi==2026.10.18\n"
        ),
        &ResolveOptions::default(),
    );
    assert!(matches!(e, Error::MissingHash { .. }), "{m}");
    assert!(
        m.contains("requirements.txt:5") && m.contains("certifi==2026.10.18"),
        "{m}"
    );
    assert!(
        m.contains("requirements.txt:2") && m.contains("every one"),
        "{m}"
    );

    // Only another algorithm: cannot be verified.
    let (_, m) = req_err(
        &format!("idna==3.20 --hash=sha512:{H1}{H1}\n"),
        &ResolveOptions::default(),
    );
    assert!(
        m.contains("sha512") && m.contains("requirements.txt:1"),
        "{m}"
    );

    // A malformed hash.
    let (_, m) = req_err("idna==3.20 --hash=sha256:abc\n", &ResolveOptions::default());
    assert!(m.contains("not a sha256 hash"), "{m}");
}

#[test]
fn requirements_refuse_what_is_not_an_exact_pin() {
    for (text, line, want) in [
        ("idna==3.20\nrequests>=2\n", 2, "not pinned to one version"),
        ("requests\n", 1, "not pinned to one version"),
        ("requests==2.*\n", 1, "not pinned to one version"),
        ("requests>=2,<3\n", 1, "not pinned to one version"),
        (
            "git+https://github.com/psf/requests.git@v2.32.0#egg=requests\n",
            1,
            "version-control",
        ),
        (
            "requests @ git+https://github.com/psf/requests.git@v2.32.0\n",
            1,
            "version-control",
        ),
        (
            "\n\nrequests @ https://example.com/requests-2.0-py3-none-any.whl\n",
            3,
            "direct URL",
        ),
        (
            "https://example.com/requests-2.0-py3-none-any.whl\n",
            1,
            "direct URL",
        ),
        ("./wheels/requests-2.0-py3-none-any.whl\n", 1, "local path"),
        (
            "requests @ file:///tmp/requests-2.0-py3-none-any.whl\n",
            1,
            "local path",
        ),
        ("file:///tmp/requests\n", 1, "local path"),
        ("-e ./other-project\n", 1, "editable"),
        (
            "-e git+https://github.com/psf/requests.git#egg=requests\n",
            1,
            "editable",
        ),
        ("--bogus-option x\n", 1, "unknown option"),
        (
            "idna==3.20 -i https://x\n",
            1,
            "cannot follow a requirement",
        ),
        ("-r https://example.com/req.txt\n", 1, "network"),
        ("idna==3.20\nidna==3.7\n", 2, "more than once"),
        ("idna[==3.20\n", 1, "invalid requirement"),
    ] {
        let (_, m) = req_err(text, &ResolveOptions::default());
        assert!(
            m.contains(&format!("requirements.txt:{line}")),
            "{text:?}: {m}"
        );
        assert!(m.contains(want), "{text:?}: {m}");
    }
}

#[test]
fn requirements_refuse_invalid_names_first() {
    for (text, want) in [
        ("../evil==1.0\n", "not a valid package name"),
        ("a/b==1.0\n", "path separator"),
        ("..==1.0\n", "not a valid package name"),
    ] {
        let (e, m) = req_err(text, &ResolveOptions::default());
        assert!(m.contains(want), "{text:?}: {m}");
        assert!(matches!(e, Error::InvalidName { .. }), "{text:?}: {m}");
        assert!(m.contains("requirements.txt:1"), "{m}");
    }
    let (_, m) = req_err("\n-c constraints.txt\n", &ResolveOptions::default());
    assert!(
        m.contains("requirements.txt:2") && m.contains("cannot read the included file"),
        "{m}"
    );
}

#[test]
fn requirements_markers_and_self_editable() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = read_ok(
        tmp.path(),
        "requirements.txt",
        "-e .\n\
         -e file:.\n\
         pywin32==312 ; sys_platform == 'win32'\n\
         requests ; sys_platform == 'win32'\n\
         uvloop==0.23.0 ; platform_python_implementation != 'PyPy' and sys_platform != 'win32'\n\
         Typing_Extensions==4.16.0 ; python_version < '3.13'   # inline comment\n",
        &ResolveOptions::default(),
    );
    assert_eq!(
        pins(&lock),
        [
            ("typing-extensions".to_string(), "4.16.0".to_string()),
            ("uvloop".to_string(), "0.23.0".to_string())
        ]
    );
    assert_eq!(
        lock.notes
            .iter()
            .filter(|n| n.contains("the project itself"))
            .count(),
        2
    );

    // A marker the image cannot decide names the package and the flag to use.
    let (e, m) = req_err(
        "distro==1.0 ; platform_release >= '5'\n",
        &ResolveOptions::default(),
    );
    assert!(matches!(e, Error::Marker { .. }), "{m}");
    assert!(
        m.contains("distro") && m.contains("--marker-env") && m.contains("requirements.txt:1"),
        "{m}"
    );
}

#[test]
fn requirements_includes() {
    let tmp = tempfile::tempdir().unwrap();
    write(
        tmp.path(),
        "sub/base.txt",
        "--index-url https://example.com/simple\n-c constraints.txt\nrequests\n",
    );
    write(
        tmp.path(),
        "sub/constraints.txt",
        "requests==2.34.2\nnot-required==1.0\n",
    );
    let lock = read_ok(
        tmp.path(),
        "requirements.txt",
        "-r sub/base.txt\n--extra-index-url=https://extra.example.com/simple\n--find-links ./wheels\nidna==3.20\n",
        &ResolveOptions::default(),
    );
    assert_eq!(
        pins(&lock),
        [
            ("idna".to_string(), "3.20".to_string()),
            ("requests".to_string(), "2.34.2".to_string())
        ]
    );
    assert_eq!(
        lock.index_url.as_deref(),
        Some("https://example.com/simple")
    );
    assert_eq!(lock.extra_index_urls, ["https://extra.example.com/simple"]);
    assert_eq!(lock.find_links, ["./wheels"]);

    // A constraint that disagrees with the pin.
    write(tmp.path(), "c2.txt", "idna==3.7\n");
    let (_, m) = read_err(
        tmp.path(),
        "r2.txt",
        "-c c2.txt\nidna==3.20\n",
        &ResolveOptions::default(),
    );
    assert!(m.contains("r2.txt:2") && m.contains("c2.txt:1"), "{m}");

    // Cycles are refused, naming the chain.
    write(tmp.path(), "a.txt", "idna==3.20\n-r b.txt\n");
    write(tmp.path(), "b.txt", "\n-r a.txt\n");
    let (e, m) = read_err(
        tmp.path(),
        "a.txt",
        "idna==3.20\n-r b.txt\n",
        &ResolveOptions::default(),
    );
    assert!(matches!(e, Error::IncludeCycle { .. }), "{m}");
    assert!(m.contains("b.txt:2") && m.contains("a.txt -> "), "{m}");
    // Including yourself.
    let (e, _) = read_err(
        tmp.path(),
        "self.txt",
        "-r self.txt\n",
        &ResolveOptions::default(),
    );
    assert!(matches!(e, Error::IncludeCycle { .. }));
}

// --- uv.lock ------------------------------------------------------------------------------------------

fn uv_lock(extra_root_deps: &str, packages: &str) -> String {
    format!(
        r#"version = 1
revision = 3
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = {{ virtual = "." }}
dependencies = [
    {{ name = "idna" }},
{extra_root_deps}]

[[package]]
name = "idna"
version = "3.20"
source = {{ registry = "https://pypi.org/simple" }}
wheels = [
    {{ url = "https://files.pythonhosted.org/packages/58/a2/idna-3.20-py3-none-any.whl", hash = "sha256:{H2}", size = 69583 }},
]
{packages}"#
    )
}

#[test]
fn uv_lock_sources_rbuild_does_not_install() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = read_ok(
        tmp.path(),
        "uv.lock",
        &uv_lock("", ""),
        &ResolveOptions::default(),
    );
    assert_eq!(pins(&ok), [("idna".to_string(), "3.20".to_string())]);

    for (source, want) in [
        (
            r#"{ git = "https://github.com/org/mylib?rev=main#0123abcd" }"#,
            "a git source",
        ),
        (
            r#"{ path = "../mylib-1.0-py3-none-any.whl" }"#,
            "a local path source",
        ),
        (
            r#"{ url = "https://example.com/mylib-1.0.tar.gz" }"#,
            "a direct URL source",
        ),
    ] {
        let text = uv_lock(
            "    { name = \"mylib\" },\n",
            &format!("\n[[package]]\nname = \"mylib\"\nversion = \"1.0\"\nsource = {source}\n"),
        );
        let (e, m) = read_err(tmp.path(), "uv.lock", &text, &ResolveOptions::default());
        assert!(matches!(e, Error::Unsupported { .. }), "{m}");
        assert!(
            m.contains("`mylib` (needed by `app`)")
                && m.contains(want)
                && m.contains("not supported yet"),
            "{m}"
        );
    }
}

#[test]
fn uv_lock_workspace_members_are_local_projects() {
    let tmp = tempfile::tempdir().unwrap();
    // A root project depending on an editable member, which depends on idna; a second member
    // given as a plain directory; a virtual member is not installed itself.
    let text = uv_lock(
        "    { name = \"mylib\" },\n    { name = \"tools\" },\n    { name = \"meta\" },\n",
        r#"
[[package]]
name = "mylib"
version = "1.0"
source = { editable = "packages/mylib" }
dependencies = [{ name = "idna" }]

[[package]]
name = "tools"
version = "2.0"
source = { directory = "packages/tools/" }

[[package]]
name = "meta"
version = "0.0.0"
source = { virtual = "packages/meta" }
"#,
    );
    let lock = read_ok(tmp.path(), "uv.lock", &text, &ResolveOptions::default());
    assert_eq!(pins(&lock), [("idna".to_string(), "3.20".to_string())]);
    let local: Vec<(&str, Option<&str>, &str, bool)> = lock
        .local_projects
        .iter()
        .map(|l| {
            (
                l.name.as_str(),
                l.version.as_deref(),
                l.path.as_str(),
                l.editable,
            )
        })
        .collect();
    assert_eq!(
        local,
        [
            ("mylib", Some("1.0"), "packages/mylib", true),
            ("tools", Some("2.0"), "packages/tools", false)
        ]
    );
}

#[test]
fn uv_lock_workspace_without_root_installs_every_member() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        r#"version = 1
revision = 3
requires-python = ">=3.11"

[manifest]
members = ["api", "core"]

[[package]]
name = "api"
version = "0.1.0"
source = {{ editable = "packages/api" }}
dependencies = [{{ name = "core" }}]

[[package]]
name = "core"
version = "0.2.0"
source = {{ editable = "packages/core" }}
dependencies = [{{ name = "idna" }}]

[[package]]
name = "idna"
version = "3.20"
source = {{ registry = "https://pypi.org/simple" }}
wheels = [
    {{ url = "https://files.pythonhosted.org/packages/58/a2/idna-3.20-py3-none-any.whl", hash = "sha256:{H2}", size = 69583 }},
]
"#
    );
    let lock = read_ok(tmp.path(), "uv.lock", &text, &ResolveOptions::default());
    assert_eq!(pins(&lock), [("idna".to_string(), "3.20".to_string())]);
    let names: Vec<&str> = lock
        .local_projects
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["api", "core"]);
}

#[test]
fn uv_lock_broken_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let no_hash = uv_lock("", "").replace(&format!(", hash = \"sha256:{H2}\""), "");
    let (e, m) = read_err(tmp.path(), "uv.lock", &no_hash, &ResolveOptions::default());
    assert!(
        matches!(e, Error::MissingHash { .. }) && m.contains("idna-3.20-py3-none-any.whl"),
        "{m}"
    );

    let evil = uv_lock("    { name = \"../evil\" },\n", "");
    let (e, m) = read_err(tmp.path(), "uv.lock", &evil, &ResolveOptions::default());
    assert!(
        matches!(e, Error::InvalidName { .. }) && m.contains("../evil"),
        "{m}"
    );

    let evil = uv_lock("", "").replace("name = \"idna\"", "name = \"a/b\"");
    let (e, m) = read_err(tmp.path(), "uv.lock", &evil, &ResolveOptions::default());
    assert!(
        matches!(e, Error::InvalidName { .. }) && m.contains("path separator"),
        "{m}"
    );

    let missing = uv_lock("    { name = \"ghost\" },\n", "");
    let (e, m) = read_err(tmp.path(), "uv.lock", &missing, &ResolveOptions::default());
    assert!(
        matches!(e, Error::MissingPackage { .. }) && m.contains("ghost"),
        "{m}"
    );

    let traversal = uv_lock("", "").replace(
        "url = \"https://files.pythonhosted.org/packages/58/a2/idna-3.20-py3-none-any.whl\"",
        "path = \"../../idna-3.20-py3-none-any.whl\"",
    );
    let (_, m) = read_err(
        tmp.path(),
        "uv.lock",
        &traversal,
        &ResolveOptions::default(),
    );
    assert!(m.contains("not inside the lockfile's directory"), "{m}");

    let bad_file = uv_lock("", "").replace(
        "packages/58/a2/idna-3.20-py3-none-any.whl",
        "packages/58/a2/",
    );
    let (_, m) = read_err(tmp.path(), "uv.lock", &bad_file, &ResolveOptions::default());
    assert!(m.contains("idna"), "{m}");

    let v2 = uv_lock("", "").replacen("version = 1", "version = 2", 1);
    let (e, m) = read_err(tmp.path(), "uv.lock", &v2, &ResolveOptions::default());
    assert!(matches!(e, Error::UnsupportedVersion { .. }), "{m}");

    let (e, m) = read_err(
        tmp.path(),
        "uv.lock",
        "version = 1\n[[package]]\nname = 3\n",
        &ResolveOptions::default(),
    );
    assert!(matches!(e, Error::Toml { .. }) && m.contains("line"), "{m}");

    let bad_version = uv_lock("", "").replace("version = \"3.20\"", "version = \"3.20; rm -rf\"");
    let (e, m) = read_err(
        tmp.path(),
        "uv.lock",
        &bad_version,
        &ResolveOptions::default(),
    );
    assert!(matches!(e, Error::InvalidVersion { .. }), "{m}");
}

#[test]
fn uv_lock_local_wheels_stay_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let text = uv_lock("", "").replace(
        "url = \"https://files.pythonhosted.org/packages/58/a2/idna-3.20-py3-none-any.whl\"",
        "path = \"wheels/idna-3.20-py3-none-any.whl\"",
    );
    let lock = read_ok(tmp.path(), "uv.lock", &text, &ResolveOptions::default());
    let w = choose_wheel(&lock.packages[0], &tags311()).unwrap();
    assert_eq!(
        w.path.as_deref(),
        Some(
            tmp.path()
                .join("wheels/idna-3.20-py3-none-any.whl")
                .as_path()
        )
    );
    assert_eq!(w.url, None);
}

// --- choose_wheel -------------------------------------------------------------------------------------

#[test]
fn sdist_only_and_foreign_wheels() {
    let tmp = tempfile::tempdir().unwrap();
    let sdist_only = uv_lock(
        "    { name = \"oldlib\" },\n",
        &format!(
            "\n[[package]]\nname = \"oldlib\"\nversion = \"1.0\"\nsource = {{ registry = \"https://pypi.org/simple\" }}\n\
             sdist = {{ url = \"https://files.pythonhosted.org/oldlib-1.0.tar.gz\", hash = \"sha256:{H1}\", size = 10 }}\n"
        ),
    );
    let lock = read_ok(
        tmp.path(),
        "uv.lock",
        &sdist_only,
        &ResolveOptions::default(),
    );
    let e = choose_wheel(lock.get("oldlib").unwrap(), &tags311()).unwrap_err();
    assert!(matches!(e, Error::SdistOnly { .. }));
    let m = e.to_string();
    assert!(
        m.contains("oldlib 1.0") && m.contains("oldlib-1.0.tar.gz") && m.contains("--find-links"),
        "{m}"
    );
    assert!(lock.choose_wheels(&tags311()).is_err());

    let musl_arm = uv_lock(
        "    { name = \"fastlib\" },\n",
        &format!(
            "\n[[package]]\nname = \"fastlib\"\nversion = \"2.0\"\nsource = {{ registry = \"https://pypi.org/simple\" }}\n\
             sdist = {{ url = \"https://files.pythonhosted.org/fastlib-2.0.tar.gz\", hash = \"sha256:{H1}\" }}\n\
             wheels = [\n\
             {{ url = \"https://files.pythonhosted.org/fastlib-2.0-cp311-cp311-musllinux_1_2_aarch64.whl\", hash = \"sha256:{H1}\" }},\n\
             {{ url = \"https://files.pythonhosted.org/fastlib-2.0-cp312-cp312-musllinux_1_1_aarch64.whl\", hash = \"sha256:{H2}\" }},\n\
             ]\n"
        ),
    );
    let lock = read_ok(tmp.path(), "uv.lock", &musl_arm, &ResolveOptions::default());
    let e = choose_wheel(lock.get("fastlib").unwrap(), &tags311()).unwrap_err();
    assert!(matches!(e, Error::NoWheel { .. }));
    let m = e.to_string();
    assert!(
        m.contains("fastlib 2.0") && m.contains("only musllinux/aarch64 wheels for cp311, cp312"),
        "{m}"
    );
    assert!(
        m.contains("cp311-cp311-")
            && m.contains("fastlib-2.0-cp311-cp311-musllinux_1_2_aarch64.whl"),
        "{m}"
    );
}

// --- pylock.toml --------------------------------------------------------------------------------------

fn pylock(packages: &str) -> String {
    format!(
        r#"lock-version = "1.0"
created-by = "test"
requires-python = ">=3.9"
extras = ["cli"]
dependency-groups = ["dev"]
default-groups = ["default"]

[[packages]]
name = "idna"
version = "3.20"
marker = "'default' in dependency_groups"
index = "https://pypi.org/simple"
wheels = [{{ url = "https://files.pythonhosted.org/idna-3.20-py3-none-any.whl", size = 69583, hashes = {{ sha256 = "{H2}" }} }}]
{packages}"#
    )
}

#[test]
fn pylock_multi_use_markers() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[[packages]]\nname = \"rich\"\nversion = \"15.0\"\nmarker = \"'cli' in extras\"\n\
         wheels = [{{ name = \"rich-15.0-py3-none-any.whl\", url = \"https://h/rich-15.0-py3-none-any.whl\", hashes = {{ sha256 = \"{H1}\" }} }}]\n\
         \n[[packages]]\nname = \"pytest\"\nmarker = \"'dev' in dependency_groups and sys_platform == 'linux'\"\n\
         wheels = [{{ path = \"wheels/pytest-9.0-py3-none-any.whl\", hashes = {{ sha256 = \"{H1}\", md5 = \"x\" }} }}]\n"
    );
    let text = pylock(&extra);
    let names = |l: &Lock| {
        l.packages
            .iter()
            .map(|p| format!("{}=={}", p.name, p.version))
            .collect::<Vec<_>>()
    };
    let l = read_ok(tmp.path(), "pylock.toml", &text, &ResolveOptions::default());
    assert_eq!(names(&l), ["idna==3.20"]);
    let l = read_ok(tmp.path(), "pylock.toml", &text, &opts(&["cli"], &["dev"]));
    assert_eq!(names(&l), ["idna==3.20", "pytest==9.0", "rich==15.0"]);
    let w = choose_wheel(l.get("pytest").unwrap(), &tags311()).unwrap();
    assert_eq!(
        w.path.as_deref(),
        Some(
            tmp.path()
                .join("wheels/pytest-9.0-py3-none-any.whl")
                .as_path()
        )
    );

    let (e, m) = read_err(tmp.path(), "pylock.toml", &text, &opts(&["nope"], &[]));
    assert!(
        matches!(e, Error::UnknownSelection { .. }) && m.contains("cli"),
        "{m}"
    );
}

#[test]
fn pylock_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    for (pkg, want) in [
        (
            "name = \"mylib\"\nvcs = { type = \"git\", url = \"https://github.com/o/mylib\", commit-id = \"abc\" }\n",
            "version-control",
        ),
        (
            "name = \"mylib\"\ndirectory = { path = \"../mylib\" }\n",
            "local directory",
        ),
        (
            "name = \"mylib\"\narchive = { url = \"https://h/mylib.tar.gz\", hashes = { sha256 = \"x\" } }\n",
            "archive",
        ),
        (
            "name = \"mylib\"\nversion = \"1\"\nwheels = [{ url = \"https://h/mylib-1-py3-none-any.whl\", hashes = {} }]\n",
            "no sha256 hash",
        ),
        (
            "name = \"mylib\"\nversion = \"1\"\nwheels = [{ url = \"https://h/mylib-1-py3-none-any.whl\", hashes = { md5 = \"00\" } }]\n",
            "only md5",
        ),
        (
            "name = \"mylib\"\nversion = \"1\"\nwheels = [{ path = \"../../mylib-1-py3-none-any.whl\", hashes = { sha256 = \"H\" } }]\n",
            "not inside",
        ),
        (
            "name = \"../mylib\"\nversion = \"1\"\n",
            "not a valid package name",
        ),
        (
            "name = \"idna\"\nversion = \"3.7\"\nwheels = [{ url = \"https://h/idna-3.7-py3-none-any.whl\", hashes = { sha256 = \"H\" } }]\n",
            "more than once",
        ),
        (
            "name = \"mylib\"\nversion = \"1\"\nrequires-python = \">=3.12\"\nwheels = [{ url = \"https://h/mylib-1-py3-none-any.whl\", hashes = { sha256 = \"H\" } }]\n",
            "requires Python >=3.12 for `mylib`",
        ),
        (
            "name = \"mylib\"\nversion = \"1\"\nmarker = \"platform_version == '1'\"\n",
            "platform_version",
        ),
    ] {
        let text = pylock(&format!(
            "\n[[packages]]\n{}",
            pkg.replace("\"H\"", &format!("\"{H1}\""))
        ));
        let (_, m) = read_err(tmp.path(), "pylock.toml", &text, &ResolveOptions::default());
        assert!(m.contains(want), "{pkg}: {m}");
    }
    let (e, m) = read_err(
        tmp.path(),
        "pylock.toml",
        &pylock("").replace("\"1.0\"", "\"2.0\""),
        &ResolveOptions::default(),
    );
    assert!(matches!(e, Error::UnsupportedVersion { .. }), "{m}");
    let envs = pylock("").replace(
        "created-by",
        "environments = [\"sys_platform == 'win32'\"]\ncreated-by",
    );
    let (e, _) = read_err(tmp.path(), "pylock.toml", &envs, &ResolveOptions::default());
    assert!(matches!(e, Error::Environment { .. }));
    // The project itself is skipped.
    let me =
        pylock("\n[[packages]]\nname = \"app\"\ndirectory = { path = \".\", editable = true }\n");
    let l = read_ok(tmp.path(), "pylock.toml", &me, &ResolveOptions::default());
    assert_eq!(l.packages.len(), 1);
    assert!(l.notes.iter().any(|n| n.contains("`app`")));
}

// --- poetry.lock --------------------------------------------------------------------------------------

#[test]
fn poetry_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let lock = |source: &str, name: &str| {
        format!(
            "[[package]]\nname = \"{name}\"\nversion = \"1.0\"\ndescription = \"\"\noptional = false\n\
             python-versions = \"*\"\ngroups = [\"main\"]\nfiles = []\n{source}\n\
             [metadata]\nlock-version = \"2.1\"\npython-versions = \">=3.11,<3.12\"\ncontent-hash = \"x\"\n"
        )
    };
    let (e, m) = read_err(
        tmp.path(),
        "poetry.lock",
        &lock(
            "\n[package.source]\ntype = \"git\"\nurl = \"https://github.com/o/mylib.git\"\nreference = \"main\"\n",
            "mylib",
        ),
        &ResolveOptions::default(),
    );
    assert!(
        matches!(e, Error::Unsupported { .. })
            && m.contains("`mylib` 1.0 comes from a `git` source"),
        "{m}"
    );

    let (e, m) = read_err(
        tmp.path(),
        "poetry.lock",
        &lock("", "../evil"),
        &ResolveOptions::default(),
    );
    assert!(
        matches!(e, Error::InvalidName { .. }) && m.contains("../evil"),
        "{m}"
    );

    let text = lock("", "mylib").replace(
        "files = []",
        "files = [{file = \"mylib-1.0-py3-none-any.whl\", hash = \"\"}]",
    );
    let (e, m) = read_err(tmp.path(), "poetry.lock", &text, &ResolveOptions::default());
    assert!(
        matches!(e, Error::MissingHash { .. }) && m.contains("mylib-1.0-py3-none-any.whl"),
        "{m}"
    );

    let text = lock("", "mylib").replace(
        "files = []",
        "files = [{file = \"../mylib-1.0-py3-none-any.whl\", hash = \"sha256:00\"}]",
    );
    let (_, m) = read_err(tmp.path(), "poetry.lock", &text, &ResolveOptions::default());
    assert!(m.contains("not a plain file name"), "{m}");

    // A Poetry 1.x lock records no groups: without pyproject.toml beside it, say so.
    let old = lock("", "mylib")
        .replace("groups = [\"main\"]\n", "")
        .replace("\"2.1\"", "\"2.0\"");
    let (_, m) = read_err(tmp.path(), "poetry.lock", &old, &ResolveOptions::default());
    assert!(m.contains("pyproject.toml beside it"), "{m}");
}

// --- detection ----------------------------------------------------------------------------------------

#[test]
fn detection_order_and_formats() {
    use rbuild_lock::{LockFormat, detect_lockfile};
    let tmp = tempfile::tempdir().unwrap();
    let e = detect_lockfile(tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains("no lockfile in") && e.contains("--lock FILE"),
        "{e}"
    );
    for (name, want) in [
        ("requirements.txt", "requirements.txt"),
        ("poetry.lock", "poetry.lock"),
        ("pylock.toml", "pylock.toml"),
        ("uv.lock", "uv.lock"),
    ] {
        write(tmp.path(), name, "");
        assert_eq!(detect_lockfile(tmp.path()).unwrap(), tmp.path().join(want));
    }
    for (name, format) in [
        ("uv.lock", Some(LockFormat::UvLock)),
        ("pylock.toml", Some(LockFormat::Pylock)),
        ("pylock.web.toml", Some(LockFormat::Pylock)),
        ("pylock.a.b.toml", None),
        ("poetry.lock", Some(LockFormat::PoetryLock)),
        ("requirements-prod.txt", Some(LockFormat::Requirements)),
        ("Pipfile.lock", Some(LockFormat::Pipfile)),
        ("pdm.lock", Some(LockFormat::Pdm)),
        ("Cargo.lock", None),
    ] {
        assert_eq!(LockFormat::from_path(Path::new(name)), format, "{name}");
    }
    let e = read_lock(
        &tmp.path().join("Cargo.lock"),
        &env311(),
        &ResolveOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::UnknownFormat { .. }), "{e}");
}

#[test]
fn poetry_path_dependency_is_a_local_project() {
    let tmp = tempfile::tempdir().unwrap();
    // Poetry 1.x style (lock-version 2.0): the walk starts from pyproject.toml, whose path
    // dependency points at a directory the lock records as a `directory` source.
    write(
        tmp.path(),
        "pyproject.toml",
        "[tool.poetry]\nname = \"app\"\nversion = \"0.1.0\"\n\n[tool.poetry.dependencies]\n\
         python = \"^3.11\"\nmylib = { path = \"libs/mylib\", develop = true }\n",
    );
    let text = format!(
        "[[package]]\nname = \"idna\"\nversion = \"3.20\"\ndescription = \"\"\noptional = false\n\
         python-versions = \"*\"\nfiles = [{{file = \"idna-3.20-py3-none-any.whl\", hash = \"sha256:{H2}\"}}]\n\n\
         [[package]]\nname = \"mylib\"\nversion = \"1.0\"\ndescription = \"\"\noptional = false\n\
         python-versions = \"*\"\nfiles = []\ndevelop = true\n\n[package.dependencies]\nidna = \"*\"\n\n\
         [package.source]\ntype = \"directory\"\nurl = \"libs/mylib\"\n\n\
         [metadata]\nlock-version = \"2.0\"\npython-versions = \"^3.11\"\ncontent-hash = \"x\"\n"
    );
    let lock = read_ok(tmp.path(), "poetry.lock", &text, &ResolveOptions::default());
    assert_eq!(pins(&lock), [("idna".to_string(), "3.20".to_string())]);
    assert_eq!(lock.local_projects.len(), 1, "{:?}", lock.local_projects);
    let l = &lock.local_projects[0];
    assert_eq!(
        (
            l.name.as_str(),
            l.version.as_deref(),
            l.path.as_str(),
            l.editable
        ),
        ("mylib", Some("1.0"), "libs/mylib", true)
    );
}
