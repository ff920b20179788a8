//! End to end: the project itself (issue #16, item 3). A packaged project (`[project]` with a
//! `[build-system]`) is installed into the image's site-packages from its own wheel, written
//! natively from its static PEP 621 metadata, as `uv sync --no-editable` leaves it: its console
//! script runs and `importlib.metadata.version()` answers, for the image's non-root user.

use rbuild_e2e::{Bundle, rbuild};
use rbuild_testing::{BaseFixture, Registry};

const BASE_REPO: &str = "library/python:3.11-slim";

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
    let registry = Registry::plain().expect("start the registry");
    BaseFixture::ensure()
        .expect("base fixture")
        .push_to(&registry, BASE_REPO)
        .expect("push the base fixture");
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
