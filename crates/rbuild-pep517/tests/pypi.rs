//! Real sdists from PyPI, pinned by sha256, built with the host interpreter (3.11) and
//! `PATH` set to an empty directory (no compiler, no tools). Build requirements come from PyPI
//! through rbuild-index ([`IndexBuildEnv`]) into a store cached under
//! `~/.cache/rbuild-test-wheels/pep517-store`. A test prints why and passes when PyPI cannot be
//! reached and the cache does not hold the sdist.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use rbuild_index::{IndexClient, IndexOptions};
use rbuild_pep517::{
    BuildError, BuildOptions, BuiltWheel, DirBuildEnv, IndexBuildEnv, build_wheel, project_wheel,
};

const DOCOPT: Pin = Pin {
    name: "docopt",
    file: "docopt-0.6.2.tar.gz",
    sha256: "49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491",
};
const WGET: Pin = Pin {
    name: "wget",
    file: "wget-3.2.zip",
    sha256: "35e630eca2aa50ce998b9b1a127bb26b30dfee573702782aa982f875e3f16061",
};
const TOMLI: Pin = Pin {
    name: "tomli",
    file: "tomli-2.0.1.tar.gz",
    sha256: "de526c12914f0c550d15924c62d72abc48d6fe7364aa87328337a31007fe8a4f",
};
const INICONFIG: Pin = Pin {
    name: "iniconfig",
    file: "iniconfig-2.0.0.tar.gz",
    sha256: "2d91e135bf72d31a410b17c16da610a82cb55f6b0477d1a902134b24a455b8b3",
};
const NETIFACES: Pin = Pin {
    name: "netifaces",
    file: "netifaces-0.11.0.tar.gz",
    sha256: "043a79146eb2907edf439899f262b3dfe41717d34124298ed281139a8b93ca32",
};

/// Builds `sdist` with build requirements from PyPI.
fn build_from_pypi(
    sdist: &Path,
    scratch: &Path,
    opts: &BuildOptions,
) -> Result<BuiltWheel, BuildError> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = IndexClient::new(IndexOptions::default()).unwrap();
    let store = rbuild_oci::Store::open(cache_dir().join("pep517-store")).unwrap();
    let env = IndexBuildEnv::new(&client, &store, rt.handle().clone());
    fs::create_dir_all(scratch).unwrap();
    build_wheel(&python(), sdist, scratch, &env, &target(), opts)
}

macro_rules! pinned {
    ($pin:expr) => {
        match fetch(&$pin) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        }
    };
}

fn names(w: &BuiltWheel) -> Vec<&str> {
    w.build_requirements
        .iter()
        .map(|r| r.name.as_str())
        .collect()
}

#[test]
fn setuptools_legacy_sdist_without_pyproject_builds_and_rebuilds_offline_identically() {
    let sd = pinned!(DOCOPT);
    let d = tempfile::tempdir().unwrap();
    let opts = no_tools(&d.path().join("empty"));
    let w = build_from_pypi(&sd, &d.path().join("s1"), &opts).unwrap();
    assert_eq!((w.name.as_str(), w.version.as_str()), ("docopt", "0.6.2"));
    assert!(w.filename.starts_with("docopt-0.6.2-py"), "{}", w.filename);
    assert_eq!(w.backend, "setuptools.build_meta:__legacy__");
    assert!(
        names(&w).contains(&"setuptools"),
        "{:?}",
        w.build_requirements
    );
    for r in &w.build_requirements {
        assert_eq!(r.sha256.len(), 64, "{r:?}");
    }
    let root = d.path().join("root");
    install(&w, &root);
    let out = run_with_site(&root, "import docopt; print(docopt.__version__)");
    assert_eq!(out.trim(), "0.6.2");

    // The same build requirements from a directory (no network): the same wheel, byte for byte
    // (SOURCE_DATE_EPOCH), so a cache keyed by sdist + target + builder + requirements is sound.
    let wheels = d.path().join("wheels");
    fs::create_dir(&wheels).unwrap();
    for r in &w.build_requirements {
        let stored = rbuild_oci::Store::open(cache_dir().join("pep517-store")).unwrap();
        let digest = rbuild_oci::Digest::parse(&format!("sha256:{}", r.sha256)).unwrap();
        fs::copy(stored.blob_path(&digest), wheels.join(&r.filename)).unwrap();
    }
    let scratch = d.path().join("s2");
    fs::create_dir(&scratch).unwrap();
    let again = build_wheel(
        &python(),
        &sd,
        &scratch,
        &DirBuildEnv::new(&wheels),
        &target(),
        &opts,
    )
    .unwrap();
    assert_eq!(again.build_requirements, w.build_requirements);
    assert_eq!(
        rbuild_pep517::env::sha256_file(&again.path).unwrap(),
        rbuild_pep517::env::sha256_file(&w.path).unwrap()
    );
}

#[test]
fn zip_sdist_builds() {
    let sd = pinned!(WGET);
    let d = tempfile::tempdir().unwrap();
    let w = build_from_pypi(&sd, &d.path().join("s"), &no_tools(&d.path().join("empty"))).unwrap();
    assert_eq!((w.name.as_str(), w.version.as_str()), ("wget", "3.2"));
    let root = d.path().join("root");
    install(&w, &root);
    assert_eq!(
        run_with_site(&root, "import wget; print(wget.__version__)").trim(),
        "3.2"
    );
}

#[test]
fn flit_core_sdist_builds() {
    let sd = pinned!(TOMLI);
    let d = tempfile::tempdir().unwrap();
    let w = build_from_pypi(&sd, &d.path().join("s"), &no_tools(&d.path().join("empty"))).unwrap();
    assert_eq!(w.filename, "tomli-2.0.1-py3-none-any.whl");
    assert_eq!(w.backend, "flit_core.buildapi");
    assert_eq!(names(&w), ["flit-core"]);
    assert!(
        w.build_requirements[0].version.starts_with("3."),
        "{:?}",
        w.build_requirements
    );
    let root = d.path().join("root");
    install(&w, &root);
    assert_eq!(
        run_with_site(&root, "import tomli; print(tomli.loads('a=1'))").trim(),
        "{'a': 1}"
    );
}

#[test]
fn hatchling_with_hatch_vcs_sdist_takes_its_version_from_pkg_info() {
    let sd = pinned!(INICONFIG);
    let d = tempfile::tempdir().unwrap();
    let w = build_from_pypi(&sd, &d.path().join("s"), &no_tools(&d.path().join("empty"))).unwrap();
    assert_eq!(w.filename, "iniconfig-2.0.0-py3-none-any.whl");
    assert_eq!(w.backend, "hatchling.build");
    let n = names(&w);
    for want in [
        "hatchling",
        "hatch-vcs",
        "setuptools-scm",
        "packaging",
        "pluggy",
    ] {
        assert!(n.contains(&want), "{want} missing from {n:?}");
    }
    let root = d.path().join("root");
    install(&w, &root);
    let out = run_with_site(
        &root,
        "import importlib.metadata as m, iniconfig; print(m.version('iniconfig'))",
    );
    assert_eq!(out.trim(), "2.0.0");
}

#[test]
fn c_extension_sdist_without_a_compiler_needs_compiler() {
    let sd = pinned!(NETIFACES);
    let d = tempfile::tempdir().unwrap();
    let err =
        build_from_pypi(&sd, &d.path().join("s"), &no_tools(&d.path().join("empty"))).unwrap_err();
    let BuildError::NeedsCompiler {
        package,
        version,
        what,
        tail,
    } = &err
    else {
        panic!("expected NeedsCompiler, got {err}");
    };
    assert_eq!(
        (package.as_str(), version.as_str()),
        ("netifaces", "0.11.0")
    );
    // setuptools ran the compiler it was configured with, and the empty PATH has none.
    assert!(
        what.contains("C compiler (") && what.contains("gcc is not available"),
        "{what}"
    );
    assert!(tail.contains("gcc"), "{tail}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("building netifaces 0.11.0 from source needs a C compiler"),
        "{msg}"
    );
    assert!(msg.contains("--find-links DIR"), "{msg}");
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@e")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@e")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn project_with_a_version_from_setuptools_scm_gets_its_tag() {
    let d = tempfile::tempdir().unwrap();
    let proj = d.path().join("proj");
    fs::create_dir_all(proj.join("src/scmapp")).unwrap();
    fs::write(
        proj.join("pyproject.toml"),
        "[build-system]\nrequires = [\"setuptools>=64\", \"setuptools-scm>=8\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
         [project]\nname = \"scmapp\"\ndynamic = [\"version\"]\n\n[project.scripts]\nscmapp = \"scmapp:main\"\n\n[tool.setuptools_scm]\n",
    )
    .unwrap();
    fs::write(
        proj.join("src/scmapp/__init__.py"),
        "import importlib.metadata\n__version__ = importlib.metadata.version('scmapp')\ndef main():\n    print('scmapp', __version__)\n",
    )
    .unwrap();
    git(&proj, &["init", "-q"]);
    git(&proj, &["add", "."]);
    git(&proj, &["commit", "-qm", "init"]);
    git(&proj, &["tag", "v1.4.2"]);
    // The backend runs git (setuptools-scm): give it a PATH with git.
    let opts = BuildOptions {
        env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
        ..Default::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = IndexClient::new(IndexOptions::default()).unwrap();
    let store = rbuild_oci::Store::open(cache_dir().join("pep517-store")).unwrap();
    let env = IndexBuildEnv::new(&client, &store, rt.handle().clone());
    let scratch = d.path().join("s");
    fs::create_dir(&scratch).unwrap();
    let w = match project_wheel(Some(&python()), &proj, &scratch, &env, &target(), &opts) {
        Ok(w) => w,
        Err(BuildError::Requirement { reason, .. }) if reason.contains("connect") => {
            eprintln!("skipped: {reason}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert_eq!(w.filename, "scmapp-1.4.2-py3-none-any.whl");
    assert_eq!(w.backend, "setuptools.build_meta");
    assert!(names(&w).contains(&"setuptools-scm"));
    let root = d.path().join("root");
    install(&w, &root);
    let launcher = fs::read_to_string(root.join("bin/scmapp")).unwrap();
    assert!(launcher.starts_with(&format!("#!{PYTHON}")), "{launcher}");
    let out = run_with_site(&root, "import scmapp; scmapp.main()");
    assert_eq!(out.trim(), "scmapp 1.4.2");
}

#[test]
fn static_src_layout_project_is_written_natively_without_an_interpreter() {
    let d = tempfile::tempdir().unwrap();
    let proj = d.path().join("proj");
    fs::create_dir_all(proj.join("src/hello_app")).unwrap();
    fs::write(
        proj.join("pyproject.toml"),
        "[project]\nname = \"hello-app\"\nversion = \"0.3.1\"\ndependencies = [\"tomli>=1\"]\n\
         [project.scripts]\nhello = \"hello_app.cli:main\"\n\
         [build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n",
    )
    .unwrap();
    fs::write(
        proj.join("src/hello_app/__init__.py"),
        "import importlib.metadata\n__version__ = importlib.metadata.version('hello-app')\n",
    )
    .unwrap();
    fs::write(
        proj.join("src/hello_app/cli.py"),
        "from hello_app import __version__\ndef main():\n    print('hello', __version__)\n",
    )
    .unwrap();
    let scratch = d.path().join("s");
    fs::create_dir(&scratch).unwrap();
    // No interpreter and an empty build environment: nothing may be needed.
    let w = project_wheel(
        None,
        &proj,
        &scratch,
        &DirBuildEnv::new(&scratch),
        &target(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(w.backend, "rbuild (native)");
    assert_eq!(w.filename, "hello_app-0.3.1-py3-none-any.whl");
    let root = d.path().join("root");
    let report = install(&w, &root);
    assert_eq!(
        report.distributions[0].core_metadata.requires_dist,
        ["tomli>=1"]
    );
    let launcher = fs::read_to_string(root.join("bin/hello")).unwrap();
    assert!(launcher.starts_with(&format!("#!{PYTHON}")));
    // Run the launcher itself with the site dir on the path.
    let code = format!(
        "import runpy, sys; sys.argv = ['hello']; runpy.run_path({:?}, run_name='__main__')",
        root.join("bin/hello").display().to_string()
    );
    let out = run_with_site(&root, &code);
    assert_eq!(out.trim(), "hello 0.3.1");
}
