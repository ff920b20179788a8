//! Recipes start the app the way its platform expects (issue 17, item 6), end to end on the slim
//! base fixture: a health check only where the app has a health route or one is configured, the
//! port of `--port` bound, set in `PORT` and exposed, an app factory served, and a detected recipe
//! that does not fit the project refused before any download with every way out.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rbuild_e2e::{Bundle, copy_tree, free_port, rbuild, repo_root};
use rbuild_testing::Registry;
use serde_json::Value;

const BASE_REPO: &str = rbuild_testing::SLIM_BASE_REPO;

struct Env {
    registry: Registry,
    cache: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
        let registry = Registry::plain_with_slim_base().expect("a registry with the base fixture");
        Env {
            registry,
            cache: tempfile::tempdir().unwrap(),
        }
    }

    fn base(&self) -> String {
        format!("{}/{BASE_REPO}", self.registry.host())
    }

    fn to(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.host())
    }

    /// `rbuild ARGS --base BASE` in `dir`.
    fn run(&self, dir: &Path, args: &[&str]) -> rbuild_e2e::Run {
        self.run_with(dir, &[], args)
    }

    /// `rbuild ARGS --base BASE` in `dir` with `env` set.
    fn run_with(&self, dir: &Path, env: &[(&str, &str)], args: &[&str]) -> rbuild_e2e::Run {
        let base = self.base();
        let mut all = args.to_vec();
        all.extend_from_slice(&["--base", base.as_str()]);
        rbuild(dir, self.cache.path(), env, &all)
    }

    /// The decisions `rbuild plan --json` states for the one platform, with `env` set.
    fn plan(&self, dir: &Path, env: &[(&str, &str)]) -> Value {
        let doc = self.run_with(dir, env, &["plan", "--json"]).ok().json();
        doc["targets"][0]["decisions"].clone()
    }

    /// Builds and pushes `dir` to `repo_tag` and pulls the image into a runc bundle.
    fn build(&self, dir: &Path, repo_tag: &str, extra: &[&str]) -> Bundle {
        let to = self.to(repo_tag);
        let mut args = vec!["build", "--to", to.as_str()];
        args.extend_from_slice(extra);
        self.run(dir, &args).ok();
        Bundle::pull(&to)
    }
}

/// Panics with the output unless the run failed.
fn failed(run: rbuild_e2e::Run) -> rbuild_e2e::Run {
    assert_ne!(
        run.code, 0,
        "rbuild succeeded\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    run
}

fn example(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_tree(&repo_root().join("examples").join(name), &dir);
    (tmp, dir)
}

/// The image config as the registry has it (raw: `Healthcheck` is a Docker extension that
/// skopeo's parsed form drops).
fn image_config(env: &Env, repo_tag: &str) -> Value {
    let out = rbuild_e2e::sh(
        "skopeo",
        &[
            "inspect",
            "--config",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}", env.to(repo_tag)),
        ],
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_healthcheck_only_where_the_app_has_a_route_or_one_is_configured() {
    let env = Env::new();
    let (_t, dir) = example("fastapi-app");
    // The example declares GET /health: the check requests it with the image's Python.
    let d = env.plan(&dir, &[]);
    let test = d["healthcheck"].to_string();
    assert!(
        test.contains("/health'") && test.contains("python3"),
        "{d:#}"
    );

    // Without the route there is no health check (it would mark the container unhealthy).
    let main = dir.join("app/main.py");
    let source = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, source.replace("@app.get(\"/health\")", "")).unwrap();
    assert_eq!(env.plan(&dir, &[])["healthcheck"], Value::Null);
    // ... unless configured: a path (RBUILD_HEALTHCHECK, as --healthcheck), then the project's
    // table with its timings.
    let d = env.plan(&dir, &[("RBUILD_HEALTHCHECK", "/healthz")]);
    assert!(d["healthcheck"].to_string().contains("/healthz'"), "{d:#}");
    let pyproject = dir.join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject).unwrap();
    std::fs::write(
        &pyproject,
        format!(
            "{text}\n[tool.rbuild]\nhealthcheck = {{ path = \"/\", interval = \"1m\", retries = 5 }}\n"
        ),
    )
    .unwrap();
    let bundle = env.build(&dir, "demo/hc:configured", &[]);
    drop(bundle);
    let hc = &image_config(&env, "demo/hc:configured")["config"]["Healthcheck"];
    assert!(hc["Test"].to_string().contains(":%s/'"), "{hc:#}");
    assert_eq!(hc["Interval"], 60_000_000_000u64, "{hc:#}");
    assert_eq!(hc["Retries"], 5, "{hc:#}");
    // --no-healthcheck wins over the configuration (and switches off a base's check, as Docker
    // writes it).
    drop(env.build(&dir, "demo/hc:off", &["--no-healthcheck"]));
    assert_eq!(
        image_config(&env, "demo/hc:off")["config"]["Healthcheck"],
        serde_json::json!({"Test": ["NONE"]})
    );
    // A bad table is named with its forms.
    std::fs::write(
        &pyproject,
        format!("{text}\n[tool.rbuild]\nhealthcheck = {{ path = \"/x\", intervall = \"1m\" }}\n"),
    )
    .unwrap();
    let err = failed(env.run(&dir, &["plan"])).stderr;
    assert!(err.contains("healthcheck.intervall"), "{err}");
    assert!(err.contains("healthcheck.interval"), "{err}");

    // Django: the route in urls.py, as Django writes it.
    let (_t, dir) = example("django-app");
    let d = env.plan(&dir, &[]);
    assert!(d["healthcheck"].to_string().contains("/health'"), "{d:#}");
}

#[test]
fn the_port_flag_is_bound_set_and_exposed_and_the_healthcheck_passes_on_it() {
    let env = Env::new();
    let (_t, dir) = example("flask-app");
    let port = free_port();
    let p = port.to_string();
    let bundle = env.build(&dir, "demo/port:v1", &["--port", &p]);
    let cfg = image_config(&env, "demo/port:v1");
    let exposed: Vec<&String> = cfg["config"]["ExposedPorts"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(exposed, [&format!("{port}/tcp")], "only the app's port");
    let envs = cfg["config"]["Env"].to_string();
    assert!(envs.contains(&format!("\"PORT={port}\"")), "{envs}");
    assert!(
        cfg["config"]["Entrypoint"]
            .to_string()
            .contains(&format!("0.0.0.0:${{PORT:-{port}}}")),
        "{cfg:#}"
    );
    // No --env PORT: the server binds the port of --port.
    let c = bundle.start();
    let (status, body) = c.get(port, "/health", Duration::from_secs(40));
    assert_eq!(status, 200, "{body}");
    // The health check, run as the runtime would (in the image, as its user), passes.
    let test: Vec<String> = serde_json::from_value(cfg["config"]["Healthcheck"]["Test"].clone())
        .expect("a healthcheck: the example has GET /health");
    assert_eq!(test[0], "CMD");
    let args: Vec<&str> = test[1..].iter().map(String::as_str).collect();
    let probe = Bundle::pull(&env.to("demo/port:v1"));
    probe.exec(&args);
}

#[test]
fn an_app_factory_is_detected_and_served() {
    let env = Env::new();
    // Flask's application factory pattern, no module-level app: gunicorn calls create_app().
    let (_t, dir) = example("flask-app");
    std::fs::write(
        dir.join("app/main.py"),
        "from flask import Flask\n\n\ndef create_app(config=None):\n    app = Flask(__name__)\n\n    @app.get(\"/health\")\n    def health():\n        return {\"status\": \"factory\"}\n\n    return app\n",
    )
    .unwrap();
    let port = free_port();
    let port_env = format!("PORT={port}");
    let bundle = env.build(&dir, "demo/factory:flask", &["--env", &port_env]);
    let c = bundle.start();
    let (status, body) = c.get(port, "/health", Duration::from_secs(40));
    assert_eq!((status, body.contains("factory")), (200, true), "{body}");
    drop(c);

    // FastAPI with --app MODULE:FACTORY(): uvicorn gets --factory.
    let (_t, dir) = example("fastapi-app");
    std::fs::write(
        dir.join("app/main.py"),
        "from fastapi import FastAPI\n\n\ndef build():\n    api = FastAPI()\n\n    @api.get(\"/health\")\n    def health() -> dict[str, str]:\n        return {\"status\": \"factory\"}\n\n    return api\n",
    )
    .unwrap();
    // Nothing to detect: the plan's decisions say so and name --app.
    let err = env.plan(&dir, &[])["error"].to_string();
    assert!(err.contains("--app MODULE:create_app()"), "{err}");
    let port = free_port();
    let port_env = format!("PORT={port}");
    let bundle = env.build(
        &dir,
        "demo/factory:fastapi",
        &["--app", "app.main:build()", "--env", &port_env],
    );
    let c = bundle.start();
    let (status, body) = c.get(port, "/health", Duration::from_secs(40));
    assert_eq!((status, body.contains("factory")), (200, true), "{body}");
}

#[test]
fn a_detected_recipe_that_does_not_fit_names_every_way_out_before_any_download() {
    let env = Env::new();
    let (_t, dir) = example("flask-app");
    // The lock without gunicorn (flask detected, its server missing).
    let req = dir.join("requirements.txt");
    let text = std::fs::read_to_string(&req).unwrap();
    let mut out = String::new();
    let mut skip = false;
    for line in text.lines() {
        if line.starts_with("gunicorn==") {
            skip = true;
        } else if !line.starts_with(' ') {
            skip = false;
        }
        if !skip {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(!out.contains("gunicorn=="));
    std::fs::write(&req, out.replace("    # via gunicorn\n", "")).unwrap();
    // An index that cannot answer: a download attempt would fail with another error.
    let run = failed(env.run(
        &dir,
        &[
            "build",
            "--to",
            &env.to("demo/nofit:v1"),
            "--index-url",
            "http://127.0.0.1:9/simple",
        ],
    ));
    let err = run.stderr;
    for way in [
        "add gunicorn to your dependencies",
        "--recipe script",
        "--recipe none",
        "--entrypoint",
    ] {
        assert!(err.contains(way), "{way:?} missing from: {err}");
    }
    assert!(!err.contains("127.0.0.1:9"), "nothing downloaded: {err}");
    // Nothing pushed.
    let inspect = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}", env.to("demo/nofit:v1")),
        ])
        .output()
        .unwrap();
    assert!(!inspect.status.success());
}
