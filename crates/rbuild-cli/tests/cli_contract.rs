//! The CLI's output and destination contract (issue #18): stdout is `REF@digest` per pushed
//! reference (also with `-q`, which only silences stderr), `--json` carries `schema` and
//! `warnings`, `--to`/`RBUILD_TO` follow ko's rule, no destination is a usage error, maps merge
//! across config levels, usage errors exit 2 before any work, and colours follow `NO_COLOR` /
//! `FORCE_COLOR`.
//!
//! The builds use a `scratch` base with the target given, and no lockfile: no network, no base
//! fixture, a plain registry from rbuild-testing.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use rbuild_testing::Registry;
use serde_json::Value;

/// A target that needs no base image.
const TARGET: &[&str] = &[
    "--base",
    "scratch",
    "--python-version",
    "3.11",
    "--libc",
    "glibc-2.36",
    "--platform",
    "linux/amd64",
    "--entrypoint",
    r#"["python3","main.py"]"#,
];

/// A project without a name in a directory called `dir_name`.
fn project(root: &Path, dir_name: &str) -> PathBuf {
    let dir = root.join(dir_name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.py"), "print('hello')\n").unwrap();
    dir
}

fn run_in(dir: &Path, args: &[&str], cache: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut all = vec!["build", dir.to_str().unwrap()];
    all.extend_from_slice(TARGET);
    all.extend_from_slice(args);
    rbuild_env(&all, cache, env)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn quiet_prints_ref_at_digest_and_only_silences_stderr() {
    let registry = Registry::plain().expect("registry");
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = project(tmp.path(), "hello");
    let to = format!("{}/team/hello:v1", registry.host());

    let quiet = run_in(&dir, &["-q", "--to", &to], &cache, &[]);
    let stdout = ok(&quiet);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].starts_with(&format!("{to}@sha256:")),
        "-q prints REF@digest, pullable as it is: {stdout}"
    );
    assert_eq!(stderr(&quiet), "", "-q: nothing on stderr");

    // Without -q: the same stdout, steps on stderr.
    let loud = run_in(&dir, &["--to", &to], &cache, &[]);
    assert_eq!(ok(&loud), stdout);
    assert!(stderr(&loud).contains("layers"), "{}", stderr(&loud));

    // The digest names what was pushed.
    let digest = lines[0].split_once('@').unwrap().1;
    let raw = skopeo_raw(&to).expect("pushed");
    assert_eq!(rbuild_oci::Digest::of(&raw).to_string(), digest);
}

#[test]
fn json_has_schema_warnings_and_pushed_references() {
    let registry = Registry::plain().expect("registry");
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = project(tmp.path(), "hello");
    // A `.env` the project's own ignore file lets through is warned about.
    std::fs::write(dir.join(".dockerignore"), "*.log\n").unwrap();
    std::fs::write(dir.join(".env"), "SECRET_KEY=abc\n").unwrap();
    let to = format!("{}/team/hello:v1", registry.host());
    let out = run_in(&dir, &["--json", "--to", &to], &cache, &[]);
    let doc: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(doc["schema"], 1, "{doc}");
    let warnings = doc["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap_or("").contains(".env")),
        "the .env warning is in the JSON: {doc}"
    );
    let pushed = doc["pushed"][0].as_str().unwrap();
    assert_eq!(
        pushed,
        format!("{to}@{}", doc["digest"].as_str().unwrap()),
        "{doc}"
    );
    // Every key is snake_case.
    fn keys(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    out.push(k.clone());
                    keys(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    keys(&doc, &mut all);
    for k in all {
        assert!(
            k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "key {k:?} is not snake_case"
        );
    }
    // `cache info --json`: snake_case kinds, schema, warnings.
    let info: Value =
        serde_json::from_str(&ok(&rbuild(&["cache", "info", "--json"], &cache))).unwrap();
    assert_eq!(info["schema"], 1);
    for k in info["kinds"].as_object().unwrap().keys() {
        assert!(
            k.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "cache kind {k:?} is not snake_case: {info}"
        );
    }
}

#[test]
fn to_and_rbuild_to_follow_kos_rule() {
    let registry = Registry::plain().expect("registry");
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = project(tmp.path(), "My_Service");
    let host = registry.host();

    // host:port alone is that registry, never Docker Hub; the directory's name is appended.
    let out = run_in(&dir, &["-q"], &cache, &[("RBUILD_TO", &host)]);
    let want = format!("{host}/my-service:latest@");
    assert!(ok(&out).starts_with(&want), "{}", ok(&out));

    // A nameless project under RBUILD_TO=host/ns goes to host/ns/<dirname>.
    let ns = format!("{host}/ns");
    let env_out = ok(&run_in(&dir, &["-q"], &cache, &[("RBUILD_TO", &ns)]));
    assert!(
        env_out.starts_with(&format!("{host}/ns/my-service:latest@")),
        "{env_out}"
    );
    // --to with the same value gives the same reference.
    let flag_out = ok(&run_in(&dir, &["-q", "--to", &ns], &cache, &[]));
    assert_eq!(flag_out, env_out);
    assert!(skopeo_raw(&format!("{host}/ns/my-service:latest")).is_some());

    // -t and --tag are --to, as Docker users type them; --push is accepted.
    let t = format!("{host}/ns/tagged:v2");
    let out = ok(&run_in(&dir, &["-q", "-t", &t, "--push"], &cache, &[]));
    assert!(out.starts_with(&format!("{t}@sha256:")), "{out}");
    let out = ok(&run_in(&dir, &["-q", "--tag", &t], &cache, &[]));
    assert!(out.starts_with(&format!("{t}@sha256:")), "{out}");
}

#[test]
fn no_destination_is_a_usage_error_unless_no_push() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = project(tmp.path(), "hello");
    let out = run_in(&dir, &[], &cache, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.starts_with("error: no destination"), "{err}");
    for way in ["--to", "RBUILD_TO", "[tool.rbuild]"] {
        assert!(err.contains(way), "names {way}: {err}");
    }
    assert!(
        !cache.join("blobs").exists()
            || std::fs::read_dir(cache.join("blobs/sha256"))
                .map(|d| d.count())
                .unwrap_or(0)
                == 0,
        "nothing was built"
    );
    // --no-push: built into the store, the digest on stdout.
    let out = run_in(&dir, &["--no-push"], &cache, &[]);
    let stdout = ok(&out);
    assert!(stdout.trim().starts_with("sha256:"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1);
    // --no-push with --to is a contradiction.
    let out = run_in(&dir, &["--no-push", "--to", "localhost:1/x:y"], &cache, &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn env_and_labels_merge_across_levels() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = project(tmp.path(), "merge");
    std::fs::write(
        dir.join("pyproject.toml"),
        "[project]\nname = \"merge\"\nversion = \"1\"\n\n[tool.rbuild.env]\nFROM_FILE = \"file\"\nBOTH = \"file\"\n\n[tool.rbuild.labels]\nteam = \"core\"\n",
    )
    .unwrap();
    let layout = tmp.path().join("layout");
    let output = format!("oci:{}:m", layout.display());
    let out = run_in(
        &dir,
        &[
            "--json",
            "--output",
            &output,
            "--env",
            "BOTH=flag",
            "--label",
            "extra=yes",
        ],
        &cache,
        &[("RBUILD_ENV", "FROM_ENV=env")],
    );
    let doc: Value = serde_json::from_str(&ok(&out)).unwrap();
    let config_digest = doc["platforms"][0]["config"].as_str().unwrap();
    let config: Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(config_digest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let env: Vec<&str> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in ["FROM_FILE=file", "FROM_ENV=env", "BOTH=flag"] {
        assert!(env.contains(&want), "{want} in {env:?}");
    }
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["team"], "core", "{labels}");
    assert_eq!(labels["extra"], "yes", "{labels}");
}

#[test]
fn usage_errors_exit_2_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = project(tmp.path(), "usage");
    for (args, says) in [
        (vec!["--to", "Bad Ref!!"], "to"),
        (vec!["--no-push", "--recipe", "fastapy"], "no recipe named"),
    ] {
        let out = run_in(&dir, &args, &cache, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    // A scalar where a list is expected is named, with the fix.
    std::fs::write(dir.join("rbuild.toml"), "ports = 9000\n").unwrap();
    let out = run_in(&dir, &["--no-push"], &cache, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ports must be a list") && stderr(&out).contains("ports = [9000]"),
        "{}",
        stderr(&out)
    );
    // rbuild.toml takes the same [tool.rbuild] table as pyproject.toml.
    std::fs::write(dir.join("rbuild.toml"), "[tool.rbuild]\nports = [9000]\n").unwrap();
    ok(&run_in(&dir, &["--no-push"], &cache, &[]));
}

#[test]
fn colours_follow_no_color_and_force_color() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = project(tmp.path(), "colour");
    // Not a terminal: no colour unless forced.
    let plain = run_in(&dir, &[], &cache, &[]);
    assert!(stderr(&plain).starts_with("error: "), "{}", stderr(&plain));
    assert!(!stderr(&plain).contains('\x1b'));
    let forced = run_in(&dir, &[], &cache, &[("FORCE_COLOR", "1")]);
    assert!(
        stderr(&forced).contains("\x1b[1;31merror:\x1b[0m")
            && stderr(&forced).contains("\x1b[1;36mhint:"),
        "{:?}",
        stderr(&forced)
    );
    let clicolor = run_in(&dir, &[], &cache, &[("CLICOLOR_FORCE", "1")]);
    assert!(stderr(&clicolor).contains("\x1b[1;31merror:"));
    let none = run_in(
        &dir,
        &[],
        &cache,
        &[("FORCE_COLOR", "1"), ("NO_COLOR", "1")],
    );
    assert!(!stderr(&none).contains('\x1b'), "NO_COLOR wins");
}

#[test]
fn a_uv_init_project_copies_no_git_venv_or_env_and_shows_its_decisions() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = project(tmp.path(), "uvinit");
    for (f, text) in [
        (".git/HEAD", "ref: refs/heads/main\n"),
        (".venv/bin/python", "x"),
        (".venv/pyvenv.cfg", "home = /usr/bin\n"),
        (".env", "SECRET_KEY=abc\n"),
        ("__pycache__/main.cpython-312.pyc", "x"),
        (".gitignore", "*.log\n"),
        ("debug.log", "x"),
        (
            "pyproject.toml",
            "[project]\nname = \"uvinit\"\nversion = \"0.1.0\"\n",
        ),
    ] {
        std::fs::create_dir_all(dir.join(f).parent().unwrap()).unwrap();
        std::fs::write(dir.join(f), text).unwrap();
    }
    let layout = tmp.path().join("layout");
    let output = format!("oci:{}:u", layout.display());
    let out = run_in(&dir, &["--json", "--output", &output], &cache, &[]);
    let doc: Value = serde_json::from_str(&ok(&out)).unwrap();
    let warnings: Vec<&str> = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    // What the default list left out is stated in one `note:` line, not a warning.
    assert!(
        !warnings.iter().any(|w| w.contains("left out")),
        "{warnings:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let note = stderr
        .lines()
        .find(|l| l.contains("left out"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(note.starts_with("note:"), "{note}");
    assert!(
        note.contains(".env, .git, .gitignore")
            || note.contains(".env, .git, .venv, __pycache__, debug.log"),
        "{note}"
    );
    // The app layer (the last one) holds the project, not .git, .venv, .env or the log.
    let app = doc["platforms"][0]["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let list = std::process::Command::new("tar")
        .arg("tzf")
        .arg(layout.join("blobs/sha256").join(app))
        .output()
        .unwrap();
    let files = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(files.contains("app/main.py"), "{files}");
    for gone in [".git/", ".venv/", ".env", "__pycache__/", "debug.log"] {
        assert!(
            !files.lines().any(|l| l == format!("app/{gone}")),
            "{gone} copied: {files}"
        );
    }
    // The decisions are in the JSON.
    let d = &doc["decisions"][0];
    assert_eq!(d["platform"], "linux/amd64", "{doc}");
    assert_eq!(d["entrypoint"], serde_json::json!(["python3", "main.py"]));
    assert_eq!(d["user"], "1001:1001");
    assert_eq!(d["workdir"], "/app");
    assert_eq!(d["recipe_reason"], "none: the entrypoint is given");

    // With a .dockerignore of its own, a .env about to be copied is named.
    std::fs::write(dir.join(".dockerignore"), ".git\n.venv\n").unwrap();
    let out = run_in(&dir, &["--no-push"], &cache, &[]);
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("warning: .env looks like it holds secrets and will be copied into the image"),
        "{err}"
    );
    // And the human output states the decisions.
    for k in [
        "lockfile",
        "recipe",
        "entrypoint",
        "user",
        "workdir",
        "ports",
        "healthcheck",
        "target",
    ] {
        assert!(err.contains(&format!("  {k}")), "{k}: {err}");
    }
}

/// `-v` adds the evidence for each decision (issue #18 item 2): where the lockfile was looked for,
/// what made the recipe fit, which parts of the target were given and which detected; without
/// `-v` the decisions are shown without it; `--json` always carries it.
#[test]
fn verbose_shows_the_evidence_for_the_decisions() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = project(tmp.path(), "hello");
    // The target is given, the entrypoint is not: the `script` recipe is detected from main.py.
    let target: Vec<&str> = TARGET[..8].to_vec();
    assert_eq!(target[6], "--platform");
    let args = |extra: &[&'static str]| {
        let mut all = vec!["build", dir.to_str().unwrap()];
        all.extend_from_slice(&target);
        all.push("--no-push");
        all.extend_from_slice(extra);
        all.iter().map(|s| s.to_string()).collect::<Vec<String>>()
    };
    let run = |extra: &[&'static str]| {
        let a = args(extra);
        rbuild_env(
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
            &cache,
            &[],
        )
    };

    let plain = run(&[]);
    ok(&plain);
    let err = stderr(&plain);
    assert!(err.contains("recipe") && err.contains("script"), "{err}");
    assert!(!err.contains("why"), "no evidence without -v: {err}");

    let verbose = run(&["-v"]);
    ok(&verbose);
    let err = stderr(&verbose);
    let why: Vec<&str> = err
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("why"))
        .map(str::trim)
        .collect();
    let context = dir.display().to_string();
    assert_eq!(why.len(), 3, "lockfile, recipe, target: {err}");
    assert_eq!(
        why[0],
        format!(
            "lockfile: none of uv.lock, pylock.toml, poetry.lock, Pipfile.lock, pdm.lock, requirements.txt in {context}"
        ),
        "{err}"
    );
    assert_eq!(why[1], "recipe: script because main.py exists", "{err}");
    assert!(
        why[2].starts_with("target: base scratch, Python 3.11 given by --python-version, libc glibc-2.36 given by --libc, interpreter ")
            && why[2].contains("detected in the base image's files")
            && why[2].ends_with("0 distributions already installed there"),
        "{err}"
    );

    // --json carries the evidence without -v; the stdout of -v is the same digest.
    let json = run(&["--json"]);
    let doc: Value = serde_json::from_str(&ok(&json)).unwrap();
    let evidence = doc["decisions"][0]["evidence"]
        .as_array()
        .expect("evidence");
    assert_eq!(evidence.len(), 3, "{doc}");
    assert_eq!(evidence[1], "recipe: script because main.py exists");
    assert_eq!(ok(&verbose), ok(&plain));

    // `rbuild plan -v` shows the same evidence.
    let mut plan = vec!["plan", dir.to_str().unwrap()];
    plan.extend_from_slice(&target);
    plan.push("-v");
    let out = rbuild_env(&plan, &cache, &[]);
    let text = ok(&out);
    assert!(
        text.contains("why") && text.contains("recipe: script because main.py exists"),
        "{text}\n{}",
        stderr(&out)
    );
}
