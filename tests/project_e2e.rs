//! End to end: the project itself (issue #16, item 3). A packaged project (`[project]` with a
//! `[build-system]`) is installed into the image's site-packages from its own wheel, written
//! natively from its static PEP 621 metadata, as `uv sync --no-editable` leaves it: its console
//! script runs and `importlib.metadata.version()` answers, for the image's non-root user.
//! Workspace members and path dependencies (a uv workspace, a Poetry `path` dependency) are
//! installed the same way from their directories in the context; one outside the context is
//! refused before anything is pushed.

use rbuild_e2e::{Bundle, rbuild};
use rbuild_testing::Registry;

const BASE_REPO: &str = rbuild_testing::SLIM_BASE_REPO;

fn write(root: &std::path::Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

#[test]
fn a_src_layout_project_is_installed_with_its_script_and_version() {
    rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
    let registry = Registry::plain_with_slim_base().expect("a registry with the base fixture");
    let project = tempfile::tempdir().unwrap();
    write(
        project.path(),
        &[
            (
                "pyproject.toml",
                "[project]\nname = \"Hello_App\"\nversion = \"1.2.3\"\nrequires-python = \">=3.8\"\n\n\
                 [project.scripts]\nhello = \"hello_app.cli:main\"\n\n\
                 [build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n",
            ),
            (
                "src/hello_app/__init__.py",
                "from importlib.metadata import version\n__version__ = version(\"hello-app\")\n",
            ),
            (
                "src/hello_app/cli.py",
                "def main():\n    import hello_app\n    print(\"hello\", hello_app.__version__)\n",
            ),
        ],
    );
    let cache = tempfile::tempdir().unwrap();
    let to = format!("{}/demo/project:1", registry.host());
    let base = format!("{}/{BASE_REPO}", registry.host());
    let run = rbuild(
        project.path(),
        cache.path(),
        &[],
        &[
            "build",
            "-v",
            "--base",
            &base,
            "--to",
            &to,
            "--entrypoint",
            r#"["hello"]"#,
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let bundle = Bundle::pull(&to);
    assert_eq!(bundle.exec(&["hello"]).trim(), "hello 1.2.3");
    let out = bundle.exec(&[
        "python3",
        "-c",
        "import hello_app, os, importlib.metadata as m; \
         print(hello_app.__version__, os.getuid(), m.distribution('hello-app')._path)",
    ]);
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields[0], "1.2.3", "{out}");
    assert_ne!(fields[1], "0", "runs as the image's non-root user: {out}");
    assert!(
        fields[2].contains("-packages/hello_app-1.2.3.dist-info"),
        "the distribution is installed in site-packages: {out}"
    );
}

/// Copies a fixture project of `tests/fixtures` into a fresh directory.
fn fixture_copy(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name);
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dir.path())
        .status()
        .unwrap()
        .success();
    assert!(ok, "copy {}", src.display());
    dir
}

/// Builds `project` on the base fixture and pushes it to `demo/NAME:1`: the run, the reference
/// and the registry (alive while the caller holds it).
fn build_on_fixture(
    project: &std::path::Path,
    name: &str,
    extra: &[&str],
) -> (rbuild_e2e::Run, String, Registry) {
    rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
    let registry = Registry::plain_with_slim_base().expect("a registry with the base fixture");
    let cache = tempfile::tempdir().unwrap();
    let to = format!("{}/demo/{name}:1", registry.host());
    let base = format!("{}/{BASE_REPO}", registry.host());
    let mut args = vec!["build", "--base", &base, "--to", &to];
    args.extend_from_slice(extra);
    let run = rbuild(project, cache.path(), &[], &args);
    (run, to, registry)
}

#[test]
fn a_uv_workspace_installs_its_members() {
    // tests/fixtures/workspace: `uv lock` of a root project `shop` depending on the member
    // `shop-api`, which depends on the member `shop-core` and on idna from PyPI.
    let project = fixture_copy("workspace");
    let (run, to, _registry) = build_on_fixture(
        project.path(),
        "workspace",
        &["-v", "--entrypoint", r#"["shop"]"#],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("shop-api 0.2.0") && run.stderr.contains("shop-core 0.3.0"),
        "the build says which projects it installed: {}",
        run.stderr
    );
    let bundle = Bundle::pull(&to);
    assert_eq!(
        bundle.exec(&["shop"]).trim(),
        "shop 0.1.0 api 0.2.0 core 0.3.0 idna xn--bcher-kva.example"
    );
}

#[test]
fn a_poetry_path_dependency_is_installed() {
    // tests/fixtures/poetry-path: `poetry lock` (Poetry 2) of `reports`, whose library
    // `reportlib` is a `path` dependency (develop = true) in libs/.
    let project = fixture_copy("poetry-path");
    let (run, to, _registry) = build_on_fixture(
        project.path(),
        "poetry-path",
        &["--entrypoint", r#"["python3", "-m", "reports"]"#],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let bundle = Bundle::pull(&to);
    assert_eq!(
        bundle.exec(&["python3", "-m", "reports"]).trim(),
        "reports 1.0.0 reportlib 0.5.0 idna xn--bcher-kva.example"
    );
}

#[test]
fn a_path_dependency_outside_the_context_is_refused_before_the_push() {
    let outer = fixture_copy("poetry-path");
    let project = outer.path().join("app");
    std::fs::create_dir(&project).unwrap();
    for f in ["pyproject.toml", "poetry.lock", "reports"] {
        std::fs::rename(outer.path().join(f), project.join(f)).unwrap();
    }
    for f in ["pyproject.toml", "poetry.lock"] {
        let p = project.join(f);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            text.replace("\"libs/reportlib\"", "\"../libs/reportlib\""),
        )
        .unwrap();
    }
    let (run, to, _registry) = build_on_fixture(&project, "outside", &[]);
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("`reportlib`")
            && run.stderr.contains("../libs/reportlib")
            && run.stderr.contains("outside the build context"),
        "{}",
        run.stderr
    );
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{to}")])
        .output()
        .unwrap();
    assert!(!out.status.success(), "nothing was pushed to {to}");
}

#[test]
fn a_project_versioned_by_git_gets_its_real_version() {
    // hatch-vcs (setuptools-scm underneath) reads the version from git; the backend runs with the
    // base's Python, which has no git: rbuild computes the version from the checkout.
    let project = tempfile::tempdir().unwrap();
    write(
        project.path(),
        &[
            (
                "pyproject.toml",
                "[project]\nname = \"vcsapp\"\ndynamic = [\"version\"]\nrequires-python = \">=3.8\"\n\n\
                 [project.scripts]\nvcsapp = \"vcsapp:main\"\n\n\
                 [tool.hatch.version]\nsource = \"vcs\"\n\n\
                 [build-system]\nrequires = [\"hatchling\", \"hatch-vcs\"]\nbuild-backend = \"hatchling.build\"\n",
            ),
            (
                "src/vcsapp/__init__.py",
                "from importlib.metadata import version\n\n\ndef main():\n    print(\"vcsapp\", version(\"vcsapp\"))\n",
            ),
        ],
    );
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .arg("-C")
            .arg(project.path())
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .expect("git (installed by .ci/run)")
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "first"]);
    git(&["tag", "v2.5.0"]);
    let (run, to, _registry) =
        build_on_fixture(project.path(), "vcsapp", &["--entrypoint", r#"["vcsapp"]"#]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let bundle = Bundle::pull(&to);
    assert_eq!(bundle.exec(&["vcsapp"]).trim(), "vcsapp 2.5.0");
}
