//! End to end on the kinds of Python base image users bring (issue 17): an S2I/UBI-like venv base
//! owned by 1001:0, a shell-less base, a trimmed Debian python, Docker Hub's /usr/local layout and
//! Debian trixie (fixtures built by tests/fixtures/kinds/build-kind.sh). Each builds the FastAPI
//! example, runs it with runc as the image's user and checks what that user sees.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use rbuild_e2e::{Bundle, copy_tree, free_port, rbuild, repo_root};
use rbuild_testing::{Kind, KindFixture, Registry};
use serde_json::Value;

struct Env {
    registry: Registry,
    cache: tempfile::TempDir,
    base: String,
}

impl Env {
    fn new(kind: Kind) -> Env {
        rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
        let registry = Registry::plain().expect("start the registry");
        let fixture = KindFixture::ensure(kind).expect("kind fixture");
        let repo = format!("bases/{}:latest", kind.as_str());
        fixture.push_to(&registry, &repo).expect("push the fixture");
        let base = format!("{}/{repo}", registry.host());
        Env {
            registry,
            cache: tempfile::tempdir().unwrap(),
            base,
        }
    }
    fn run(&self, dir: &Path, args: &[&str]) -> rbuild_e2e::Run {
        let mut all = vec![args[0], "--json", "--base", self.base.as_str()];
        all.extend_from_slice(&args[1..]);
        rbuild(dir, self.cache.path(), &[], &all)
    }
    fn to(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.host())
    }
}

fn example(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_tree(&repo_root().join("examples").join(name), &dir);
    (tmp, dir)
}

/// What the image's user sees, printed by the image's Python as JSON.
const PROBE: &str = r#"import json, os, sys, importlib.util as u
home = os.environ.get('HOME', '')
ok = False
try:
    p = os.path.join(home, '.rbuild-probe')
    open(p, 'w').write('x'); os.remove(p); ok = True
except OSError as e:
    ok = repr(e)
print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'home': home, 'home_writable': ok,
    'path': sys.path, 'fastapi': u.find_spec('fastapi') is not None, 'cwd': os.getcwd()}))"#;

struct Built {
    plan: Value,
    /// `rbuild build --json`.
    build: Value,
    bundle: Bundle,
    port: u16,
}

/// `rbuild plan` and `rbuild build` of the FastAPI example on `kind`, pulled into a runc bundle.
fn build_fastapi(env: &Env, extra: &[&str]) -> Built {
    let (_tmp, dir) = example("fastapi-app");
    let plan = env.run(&dir, &["plan"]).ok().json();
    let port = free_port();
    let to = env.to("demo/app:v1");
    let port_env = format!("PORT={port}");
    let mut args = vec!["build", "--to", to.as_str(), "--env", port_env.as_str()];
    args.extend_from_slice(extra);
    let build = env.run(&dir, &args).ok().json();
    Built {
        plan,
        build,
        bundle: Bundle::pull(&to),
        port,
    }
}

fn probe(bundle: &Bundle, python: &str) -> Value {
    let out = bundle.exec(&[python, "-c", PROBE]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn answers(b: &Built) {
    let c = b.bundle.start();
    let Some((status, body)) = rbuild_e2e::http_get(b.port, "/health", Duration::from_secs(40))
    else {
        let mut errs = String::new();
        for e in std::fs::read_dir(b.bundle.dir.path()).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "err") {
                errs.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        panic!(
            "no answer on port {}; config {:#}\nstdout:\n{}\nstderr:\n{errs}",
            b.port,
            b.bundle.config()["process"],
            c.log()
        );
    };
    assert_eq!(status, 200, "{body}");
}

fn target(plan: &Value) -> &Value {
    &plan["targets"][0]
}

/// The directory dependencies go to, as the plan says.
fn purelib(plan: &Value) -> String {
    target(plan)["scheme"]["purelib"]
        .as_str()
        .unwrap_or_else(|| panic!("no purelib in {plan:#}"))
        .to_string()
}

#[test]
fn s2i_like_base_keeps_its_user_home_and_venv_owner() {
    let env = Env::new(Kind::S2i);
    let b = build_fastapi(&env, &[]);
    assert_eq!(
        purelib(&b.plan),
        "/opt/app-root/lib/python3.11/site-packages"
    );
    // `rbuild plan` states the build's decisions: the base's user and WorkingDir kept.
    let d = &b.plan["targets"][0]["decisions"];
    assert_eq!(d["user"], "1001", "{d:#}");
    assert_eq!(d["workdir"], "/opt/app-root/src", "{d:#}");
    let cfg = b.bundle.config();
    assert_eq!(cfg["process"]["user"]["uid"], 1001, "{:#}", cfg["process"]);
    assert_eq!(cfg["process"]["user"]["gid"], 0, "{:#}", cfg["process"]);
    let site = b
        .bundle
        .rootfs()
        .join("opt/app-root/lib/python3.11/site-packages");
    for p in [
        site.clone(),
        site.join("fastapi"),
        site.join("fastapi/__init__.py"),
    ] {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (1001, 0), "{}", p.display());
        assert_eq!(m.mode() & 0o020, 0o020, "group write on {}", p.display());
    }
    // The image's own process first (exec rewrites the bundle's process args).
    answers(&b);
    let v = probe(&b.bundle, "/opt/app-root/bin/python3");
    assert_eq!(v["uid"], 1001, "{v}");
    assert_eq!(v["gid"], 0, "{v}");
    assert_eq!(v["home"], "/opt/app-root/src", "{v}");
    assert_eq!(v["home_writable"], true, "{v}");
    assert!(
        v["path"]
            .as_array()
            .unwrap()
            .contains(&"/opt/app-root/lib/python3.11/site-packages".into()),
        "{v}"
    );
    assert_eq!(v["fastapi"], true, "{v}");
    console_scripts_run(&b);
}

fn plain_kind(kind: Kind, python: &str, expected_purelib: &str) {
    let env = Env::new(kind);
    let b = build_fastapi(&env, &[]);
    assert_eq!(purelib(&b.plan), expected_purelib, "{:#}", b.plan);
    // Debian's python3 packages compile their standard library at install: nothing to add.
    // Docker Hub's images delete those files: the build adds them.
    assert_eq!(
        !stdlib_layers(&b.build).is_empty(),
        kind == Kind::Local,
        "{kind:?}: {:#}",
        b.build
    );
    answers(&b);
    let v = probe(&b.bundle, python);
    assert_eq!(v["uid"], 1001, "{v}");
    assert!(
        v["path"]
            .as_array()
            .unwrap()
            .contains(&expected_purelib.into()),
        "{expected_purelib} not on sys.path: {v}"
    );
    assert_eq!(v["fastapi"], true, "{v}");
    assert_eq!(v["home_writable"], true, "{v}");
    console_scripts_run(&b);
}

/// The digests of the image's standard-library bytecode layers.
fn stdlib_layers(build: &Value) -> Vec<String> {
    build["platforms"][0]["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("no layers in {build:#}"))
        .iter()
        .filter(|l| l["kind"] == "stdlib")
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// On Docker Hub's layout (no `.pyc` under `/usr/local`), the image gets timestamp-based
/// bytecode for the standard library right above the base: the running image compiles no module
/// at all, the layer is the same from another store with another worker count, and a source that
/// changes under it (as a rebase onto another base would) is compiled again, never run stale.
#[test]
fn docker_hub_layout_gets_bytecode_for_its_standard_library() {
    let env = Env::new(Kind::Local);
    let (_tmp, dir) = example("fastapi-app");
    let to = env.to("demo/stdlib:v1");
    let first = env.run(&dir, &["build", "--to", &to]).ok().json();
    let layers = first["platforms"][0]["layers"].as_array().unwrap();
    let stdlib = stdlib_layers(&first);
    assert_eq!(stdlib.len(), 1, "{first:#}");
    let base_count = layers.iter().filter(|l| l["kind"] == "base").count();
    assert_eq!(
        layers[base_count]["kind"], "stdlib",
        "right above the base: {first:#}"
    );

    let other_cache = tempfile::tempdir().unwrap();
    let to2 = env.to("demo/stdlib:v2");
    let second = rbuild(
        &dir,
        other_cache.path(),
        &[("RBUILD_BYTECODE_WORKERS", "4")],
        &["build", "--json", "--base", &env.base, "--to", &to2],
    )
    .ok()
    .json();
    assert_eq!(stdlib_layers(&second), stdlib, "another store, 4 workers");
    assert_eq!(second["digest"], first["digest"]);

    let bundle = Bundle::pull(&to);
    let out = bundle.import_trace("asyncio, email.message, json, fastapi, uvicorn, pydantic");
    assert_eq!(out.lines().next(), Some("0"), "{out}");
    let compiled: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("# code object from ") && !l.ends_with(".pyc'"))
        .collect();
    assert!(compiled.is_empty(), "compiled at import: {compiled:?}");
    let stdlib_loaded = out
        .lines()
        .filter(|l| l.starts_with("# code object from '/usr/local/lib/python3.11/asyncio/"))
        .count();
    assert!(stdlib_loaded > 10, "asyncio from bytecode:\n{out}");

    // The header records the source's mtime and size (PEP 552 flags 0).
    let root = bundle
        .dir
        .path()
        .join("bundle/rootfs/usr/local/lib/python3.11/json");
    let pyc = std::fs::read(root.join("__pycache__/__init__.cpython-311.pyc")).unwrap();
    let src = std::fs::metadata(root.join("__init__.py")).unwrap();
    assert_eq!(pyc[4..8], [0, 0, 0, 0]);
    assert_eq!(
        u32::from_le_bytes(pyc[8..12].try_into().unwrap()) as i64,
        src.mtime()
    );
    assert_eq!(
        u32::from_le_bytes(pyc[12..16].try_into().unwrap()) as u64,
        src.size()
    );
    // A source that is not the one compiled is compiled again.
    let mut text = std::fs::read_to_string(root.join("__init__.py")).unwrap();
    text.push_str("\nREBASED = True\n");
    std::fs::write(root.join("__init__.py"), text).unwrap();
    let out = bundle.exec(&["python3", "-c", "import json; print(json.REBASED)"]);
    assert!(
        out.lines().any(|l| l == "True"),
        "the changed source's code ran: {out}"
    );
}

/// A console script of the dependencies runs as the image's user, from the scripts directory the
/// plan names (its `#!` names the image's Python, no shell involved).
fn console_scripts_run(b: &Built) {
    let scripts = target(&b.plan)["scheme"]["scripts"]
        .as_str()
        .unwrap()
        .to_string();
    let out = b.bundle.exec(&[&format!("{scripts}/uvicorn"), "--version"]);
    assert!(out.contains("uvicorn"), "{out}");
}

#[test]
fn trimmed_debian_python_installs_where_its_sys_path_looks() {
    plain_kind(
        Kind::Trimmed,
        "/usr/bin/python3",
        "/usr/local/lib/python3.11/dist-packages",
    );
}

#[test]
fn docker_hub_layout_installs_into_site_packages() {
    plain_kind(
        Kind::Local,
        "/usr/local/bin/python3",
        "/usr/local/lib/python3.11/site-packages",
    );
}

#[test]
fn trixie_base_serves_with_python_3_13() {
    plain_kind(
        Kind::Trixie,
        "/usr/bin/python3",
        "/usr/local/lib/python3.13/dist-packages",
    );
}

/// On a root base the default user 1001 gets a HOME it owns (issue 17, item 2): `/home/app`,
/// created by the user layer; the app files stay owned by root.
#[test]
fn root_base_default_user_can_write_its_home() {
    let env = Env::new(Kind::Trimmed);
    let b = build_fastapi(&env, &[]);
    let v = probe(&b.bundle, "/usr/bin/python3");
    assert_eq!(v["uid"], 1001, "{v}");
    assert_eq!(v["home"], "/home/app", "{v}");
    assert_eq!(v["home_writable"], true, "{v}");
    assert_eq!(v["cwd"], "/app", "{v}");
    let main = std::fs::metadata(b.bundle.rootfs().join("app/app/main.py")).unwrap();
    assert_eq!((main.uid(), main.gid()), (0, 0), "app files owned by root");
    assert_eq!(main.mode() & 0o022, 0, "app files not writable by others");
    let home = std::fs::metadata(b.bundle.rootfs().join("home/app")).unwrap();
    assert_eq!((home.uid(), home.gid()), (1001, 1001));
    let passwd = std::fs::read_to_string(b.bundle.rootfs().join("etc/passwd")).unwrap();
    assert!(passwd.contains(":1001:1001::/home/app:"), "{passwd}");
}

/// The recipes start the app with the image's Python, in exec form (issue 17, item 5): the
/// FastAPI example answers on a base without any shell.
#[test]
fn shellless_base_serves_fastapi() {
    plain_kind(
        Kind::Shellless,
        "/usr/bin/python3",
        "/usr/local/lib/python3.11/dist-packages",
    );
}

/// On a base without a shell, a recipe whose entrypoint is a shell command, or an s2i `app.sh`
/// run by `/bin/sh`, fails the build before anything is downloaded, naming the recipe and the
/// fix.
#[test]
fn shellless_base_refuses_a_recipe_that_needs_a_shell_before_any_download() {
    let env = Env::new(Kind::Shellless);
    let (_tmp, dir) = example("fastapi-app");
    let recipes = tempfile::tempdir().unwrap();
    std::fs::write(
        recipes.path().join("fastapi.toml"),
        r#"name = "fastapi"
description = "uvicorn through a shell"
detect-packages = ["fastapi"]
detect-source = ["FastAPI("]
requires-packages = ["uvicorn"]
entrypoint = ["/bin/sh", "-c", "exec {python} -m uvicorn {module}:{object} --port ${PORT:-8000}"]
port = 8000
"#,
    )
    .unwrap();
    let to = env.to("demo/shell:v1");
    let args = [
        "build",
        "--json",
        "--base",
        env.base.as_str(),
        "--to",
        to.as_str(),
    ];
    let run = rbuild(
        &dir,
        env.cache.path(),
        &[("RBUILD_RECIPES_DIR", recipes.path().to_str().unwrap())],
        &args,
    );
    assert_ne!(
        run.code, 0,
        "built on a base without /bin/sh: {}",
        run.stdout
    );
    for want in [
        "recipe \"fastapi\"",
        "/bin/sh",
        "does not have",
        "--entrypoint",
    ] {
        assert!(
            run.stderr.contains(want),
            "{want:?} missing in:\n{}",
            run.stderr
        );
    }
    assert!(
        !run.stdout.contains("download") && !run.stderr.contains("download"),
        "something was downloaded:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    let wheels: Vec<_> = walk_files(env.cache.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".whl"))
        .collect();
    assert!(wheels.is_empty(), "{wheels:?}");

    // s2i runs app.sh, whose #! line is /bin/sh.
    let (_tmp, dir) = example("s2i-app");
    let run = env.run(&dir, &["build", "--to", to.as_str(), "--recipe", "s2i"]);
    assert_ne!(
        run.code, 0,
        "built on a base without /bin/sh: {}",
        run.stdout
    );
    for want in [
        "recipe \"s2i\"",
        "app.sh starts with #!/bin/sh",
        "APP_MODULE",
    ] {
        assert!(
            run.stderr.contains(want),
            "{want:?} missing in:\n{}",
            run.stderr
        );
    }
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The s2i recipe on the S2I-like base (issue 17, item 3): detected or named, the app goes to the
/// base's WorkingDir and the image is configured the same; with nothing set, s2i's run starts
/// app.sh (its #!/bin/sh line honoured) as the base's user; with APP_MODULE, gunicorn serves it.
#[test]
fn s2i_base_runs_app_sh_and_serves_app_module_with_gunicorn() {
    let env = Env::new(Kind::S2i);
    let (_tmp, dir) = example("s2i-app");
    let detected = env.to("demo/s2i:detected");
    let named = env.to("demo/s2i:named");
    env.run(&dir, &["build", "--to", detected.as_str()]).ok();
    env.run(&dir, &["build", "--to", named.as_str(), "--recipe", "s2i"])
        .ok();
    let (d, n) = (Bundle::pull(&detected), Bundle::pull(&named));
    assert_eq!(
        d.config()["process"],
        n.config()["process"],
        "detected and named s2i differ"
    );
    assert_eq!(d.config()["process"]["cwd"], "/opt/app-root/src");
    assert!(d.rootfs().join("opt/app-root/src/app.sh").is_file());
    let args: Vec<String> = d.config()["process"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = d.exec(&args);
    assert!(
        out.contains("app.sh ran in /opt/app-root/src as uid 1001"),
        "{out}"
    );

    let (_tmp, dir) = example("flask-app");
    let port = free_port();
    let port_env = format!("PORT={port}");
    let to = env.to("demo/s2i:module");
    env.run(
        &dir,
        &[
            "build",
            "--to",
            to.as_str(),
            "--recipe",
            "s2i",
            "--env",
            "APP_MODULE=app.main:app",
            "--env",
            port_env.as_str(),
        ],
    )
    .ok();
    let b = Built {
        plan: Value::Null,
        build: Value::Null,
        bundle: Bundle::pull(&to),
        port,
    };
    answers(&b);
}
