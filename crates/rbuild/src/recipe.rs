//! Builder recipes: how an app of a known shape is started (entrypoint, env, port, health check).
//!
//! Recipes are TOML files, one per app shape, in the repository's `builder-recipes/` directory. They
//! are embedded in the binary as the defaults; a directory named by `RBUILD_RECIPES_DIR` adds recipes
//! or replaces embedded ones of the same name, read at build time.
//!
//! Placeholders in `entrypoint` and `cmd`: `{python}` (the detected interpreter), `{module}` and
//! `{object}` (the app's module and object, detected from the source), `{port}`, and
//! `{launcher}`: Python code ([`LAUNCHER`]) that, run as `{python} -c {launcher} ARGS...`, expands
//! `${NAME:-default}` in ARGS from the container's environment and execs `{python} ARGS...`.
//!
//! The embedded recipes need no shell: their entrypoints are exec form, started by the image's own
//! Python, so they run on shell-less bases (distroless, chiselled rocks). `$PORT` and
//! `$WEB_CONCURRENCY` are still read when the container starts (`${WEB_CONCURRENCY:-2*CPU+1}`
//! defaults to twice the CPUs the container may use, plus one). An entrypoint that names a shell
//! (or a script whose `#!` line does) on a base without it fails the build before any download
//! ([`RecipeError::NeedsProgram`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// A recipe as written in `builder-recipes/NAME.toml`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Recipe {
    /// Name (`fastapi`).
    pub name: String,
    /// One line for `rbuild recipes`.
    pub description: String,
    /// Chosen when one of these packages is locked ...
    #[serde(default)]
    pub detect_packages: Vec<String>,
    /// ... and a source file contains one of these strings (or, for names ending in `.py`/`.sh` or
    /// starting with `.`, such a file exists).
    #[serde(default)]
    pub detect_source: Vec<String>,
    /// Packages the lock must contain for the recipe to work (e.g. `uvicorn`).
    #[serde(default)]
    pub requires_packages: Vec<String>,
    /// Entrypoint template.
    pub entrypoint: Vec<String>,
    /// Cmd template.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Port the app listens on.
    #[serde(default)]
    pub port: Option<u16>,
    /// Path a health check requests (web recipes).
    #[serde(default)]
    pub health_path: Option<String>,
    /// App directory in the image (default `/app`).
    #[serde(default)]
    pub app_dir: Option<String>,
    /// User (default `1001:1001`).
    #[serde(default)]
    pub user: Option<String>,
    /// Environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// The `{launcher}` code: expands `${NAME:-default}` in its arguments from the environment (a
/// set, non-empty `NAME` wins; the default `2*CPU+1` is twice the usable CPUs plus one) and execs
/// the interpreter running it with them. The image's Python is the launcher, so no shell is needed.
pub const LAUNCHER: &str = "import os,re,sys;c=lambda:str(2*len(os.sched_getaffinity(0))+1);f=lambda m:os.environ.get(m[1]) or (c() if m[2]=='2*CPU+1' else m[2]);os.execv(sys.executable,[sys.executable]+[re.sub(r'\\$\\{(\\w+):-([^}]*)\\}',f,a) for a in sys.argv[1:]])";

/// Errors about recipes.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// A recipe file does not parse.
    #[error("recipe {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// No recipe of that name.
    #[error("no recipe named {name:?}; available: {available}")]
    Unknown {
        /// Asked for.
        name: String,
        /// What exists.
        available: String,
    },
    /// A recipe that does not fit the project.
    #[error("recipe {recipe:?} does not fit this project: {why}")]
    DoesNotFit {
        /// The recipe.
        recipe: String,
        /// Why.
        why: String,
    },
    /// The entrypoint needs a program (a shell) the base does not have.
    #[error(
        "{what} needs {program}, which the base image does not have (a base without a shell, like distroless or a chiselled rock); {fix}"
    )]
    NeedsProgram {
        /// What needs it: the recipe, the entrypoint, a script.
        what: String,
        /// The program (`/bin/sh`).
        program: String,
        /// The ways out.
        fix: String,
    },
    /// Nothing detected.
    #[error(
        "could not tell how to start this app: {why}; pass --recipe NAME (see `rbuild recipes`) or --entrypoint"
    )]
    NotDetected {
        /// What was looked at.
        why: String,
    },
}

const EMBEDDED: [(&str, &str); 5] = [
    (
        "fastapi.toml",
        include_str!("../../../builder-recipes/fastapi.toml"),
    ),
    (
        "flask.toml",
        include_str!("../../../builder-recipes/flask.toml"),
    ),
    (
        "django.toml",
        include_str!("../../../builder-recipes/django.toml"),
    ),
    (
        "script.toml",
        include_str!("../../../builder-recipes/script.toml"),
    ),
    (
        "s2i.toml",
        include_str!("../../../builder-recipes/s2i.toml"),
    ),
];

fn parse(path: &str, text: &str) -> Result<Recipe, RecipeError> {
    toml::from_str(text).map_err(|e| RecipeError::Parse {
        path: path.to_string(),
        message: e.to_string(),
    })
}

/// All recipes: the embedded ones, overridden or extended by `*.toml` in `$RBUILD_RECIPES_DIR`.
pub fn load_recipes() -> Result<BTreeMap<String, Recipe>, RecipeError> {
    let mut out = BTreeMap::new();
    for (name, text) in EMBEDDED {
        let r = parse(&format!("builder-recipes/{name}"), text)?;
        out.insert(r.name.clone(), r);
    }
    if let Some(dir) = std::env::var_os("RBUILD_RECIPES_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| RecipeError::Parse {
                path: dir.display().to_string(),
                message: e.to_string(),
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| RecipeError::Parse {
                path: f.display().to_string(),
                message: e.to_string(),
            })?;
            let r = parse(&f.display().to_string(), &text)?;
            out.insert(r.name.clone(), r);
        }
    }
    Ok(out)
}

/// What the project looks like, for detection.
#[derive(Clone, Debug, Default)]
pub struct ProjectFacts {
    /// Normalized names of the locked packages.
    pub packages: Vec<String>,
    /// Python source files (relative paths, `/`-separated) with their content (only small files are read).
    pub sources: Vec<(String, String)>,
    /// All relative file paths in the context.
    pub files: Vec<String>,
    /// Scripts (files starting with `#!`, and `*.sh`): relative path → the program their `#!` line
    /// runs (`/bin/sh` for a `.sh` file without one), see [`crate::spec::shebang_program`].
    pub shebangs: BTreeMap<String, String>,
}

impl ProjectFacts {
    /// Collects facts from the build context as it will be copied (the ignore file applied): `.py`
    /// files up to 256 KiB, at most 4 directories deep, skipping hidden directories (but `.s2i`),
    /// virtualenvs and caches. Paths are in walk order (component by component).
    pub fn from_context(ctx: &rbuild_layer::Context, packages: Vec<String>) -> Self {
        let skipped_dir = |name: &str| {
            name.starts_with('.') && name != ".s2i"
                || matches!(
                    name,
                    "__pycache__" | "node_modules" | "venv" | "site-packages"
                )
        };
        let mut entries: Vec<&rbuild_layer::ContextEntry> = ctx
            .entries
            .iter()
            .filter(|e| {
                let parts: Vec<&str> = e.path.split('/').collect();
                let (dirs, name) = parts.split_at(parts.len() - 1);
                dirs.len() <= 4 && !dirs.iter().any(|d| skipped_dir(d)) && {
                    match e.kind {
                        rbuild_layer::EntryKind::Dir => name[0] == ".s2i",
                        rbuild_layer::EntryKind::File { .. } => true,
                        _ => false,
                    }
                }
            })
            .collect();
        entries.sort_by(|a, b| a.path.split('/').cmp(b.path.split('/')));
        let mut facts = ProjectFacts {
            packages,
            ..Default::default()
        };
        for e in entries {
            if let rbuild_layer::EntryKind::File { size, .. } = e.kind
                && e.path.ends_with(".py")
                && size <= 256 * 1024
                && let Ok(text) = std::fs::read_to_string(ctx.root.join(&e.path))
            {
                facts.sources.push((e.path.clone(), text));
            }
            if let rbuild_layer::EntryKind::File { .. } = e.kind
                && !e.path.ends_with(".py")
                && let Some(head) = file_head(&ctx.root.join(&e.path))
                && (head.starts_with(b"#!") || e.path.ends_with(".sh"))
            {
                facts
                    .shebangs
                    .insert(e.path.clone(), crate::spec::shebang_program(&head));
            }
            facts.files.push(e.path.clone());
        }
        facts
    }

    fn has_package(&self, p: &str) -> bool {
        self.packages.iter().any(|x| x == p)
    }
}

/// The first 256 bytes of a file.
fn file_head(path: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(256)
        .read_to_end(&mut head)
        .ok()?;
    Some(head)
}

/// The app object a recipe starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppTarget {
    /// Python module (`app.main`).
    pub module: String,
    /// Object in it (`app`).
    pub object: String,
}

fn module_of(rel: &str) -> String {
    let m = rel.trim_end_matches(".py").replace('/', ".");
    let m = m.strip_prefix("src.").map(str::to_string).unwrap_or(m);
    m.strip_suffix(".__init__").map(str::to_string).unwrap_or(m)
}

/// Finds `NAME = Ctor(` in the sources (first match in path order, shallowest first).
fn find_object(facts: &ProjectFacts, ctors: &[String]) -> Option<AppTarget> {
    let mut candidates: Vec<&(String, String)> = facts.sources.iter().collect();
    candidates.sort_by_key(|(p, _)| (p.matches('/').count(), p.clone()));
    for (path, text) in candidates {
        for line in text.lines() {
            let l = line.trim_start();
            if line.len() != l.len() {
                continue; // only module-level assignments
            }
            for ctor in ctors {
                if let Some(idx) = l.find(ctor.as_str()) {
                    let lhs = l[..idx].trim_end();
                    if let Some(var) = lhs.strip_suffix('=').map(str::trim) {
                        let var = var.split(':').next().unwrap_or(var).trim();
                        if !var.is_empty() && var.chars().all(|c| c.is_alphanumeric() || c == '_') {
                            return Some(AppTarget {
                                module: module_of(path),
                                object: var.to_string(),
                            });
                        }
                    }
                }
            }
        }
    }
    None
}

/// Detects the app target for `recipe`.
pub fn app_target(recipe: &Recipe, facts: &ProjectFacts) -> Result<AppTarget, RecipeError> {
    let fit = |why: String| RecipeError::DoesNotFit {
        recipe: recipe.name.clone(),
        why,
    };
    for p in &recipe.requires_packages {
        if !facts.has_package(p) {
            return Err(fit(format!(
                "it runs {p}, which is not in the lockfile; add {p} to your dependencies"
            )));
        }
    }
    match recipe.name.as_str() {
        "django" => {
            if !facts.files.iter().any(|f| f == "manage.py") {
                return Err(fit(
                    "there is no manage.py at the root of the context".into()
                ));
            }
            let wsgi = facts
                .files
                .iter()
                .filter(|f| f.ends_with("/wsgi.py"))
                .min_by_key(|f| f.matches('/').count())
                .ok_or_else(|| fit("no PROJECT/wsgi.py found".into()))?;
            Ok(AppTarget {
                module: module_of(wsgi),
                object: "application".into(),
            })
        }
        // s2i's run decides at start what to run (the image settings check that it can).
        "s2i" => Ok(AppTarget {
            module: String::new(),
            object: String::new(),
        }),
        "script" => {
            let mut mains: Vec<&String> = facts
                .files
                .iter()
                .filter(|f| f.ends_with("/__main__.py"))
                .collect();
            mains.sort_by_key(|f| (f.matches('/').count(), f.to_string()));
            if let Some(m) = mains.first() {
                return Ok(AppTarget {
                    module: module_of(m.trim_end_matches("/__main__.py")),
                    object: String::new(),
                });
            }
            for f in ["main.py", "app.py"] {
                if facts.files.iter().any(|x| x == f) {
                    return Ok(AppTarget {
                        module: module_of(f),
                        object: String::new(),
                    });
                }
            }
            Err(fit(
                "no PACKAGE/__main__.py, main.py or app.py found; pass --entrypoint".into(),
            ))
        }
        _ => {
            let ctors: Vec<String> = recipe
                .detect_source
                .iter()
                .filter(|s| s.ends_with('('))
                .cloned()
                .collect();
            find_object(facts, &ctors).ok_or_else(|| {
                fit(format!(
                    "no module-level `app = {}...)` found in the Python sources",
                    ctors.first().map(String::as_str).unwrap_or("")
                ))
            })
        }
    }
}

/// Picks the recipe for a project: the web recipes by locked package + source, then s2i, then script.
pub fn detect<'a>(
    recipes: &'a BTreeMap<String, Recipe>,
    facts: &ProjectFacts,
) -> Result<&'a Recipe, RecipeError> {
    let source_hit = |r: &Recipe| {
        r.detect_source.iter().any(|pat| {
            if pat.ends_with(".py") || pat.ends_with(".sh") || pat.starts_with('.') {
                facts
                    .files
                    .iter()
                    .any(|f| f == pat || f.ends_with(&format!("/{pat}")))
            } else {
                facts.sources.iter().any(|(_, t)| t.contains(pat.as_str()))
            }
        })
    };
    for name in ["django", "fastapi", "flask"] {
        if let Some(r) = recipes.get(name)
            && r.detect_packages.iter().any(|p| facts.has_package(p))
            && source_hit(r)
        {
            return Ok(r);
        }
    }
    for r in recipes.values() {
        if !["django", "fastapi", "flask", "s2i", "script"].contains(&r.name.as_str())
            && r.detect_packages.iter().any(|p| facts.has_package(p))
            && source_hit(r)
        {
            return Ok(r);
        }
    }
    for name in ["s2i", "script"] {
        if let Some(r) = recipes.get(name)
            && source_hit(r)
        {
            return Ok(r);
        }
    }
    Err(RecipeError::NotDetected {
        why: format!(
            "{} and {} looked at",
            crate::progress::count(facts.sources.len(), "Python file", "Python files"),
            crate::progress::count(facts.packages.len(), "locked package", "locked packages")
        ),
    })
}

/// Fills a template's placeholders.
pub fn render(
    template: &[String],
    python: &str,
    target: &AppTarget,
    port: Option<u16>,
) -> Vec<String> {
    template
        .iter()
        .map(|s| {
            s.replace("{python}", python)
                .replace("{module}", &target.module)
                .replace("{object}", &target.object)
                .replace("{port}", &port.map(|p| p.to_string()).unwrap_or_default())
                .replace("{launcher}", LAUNCHER)
        })
        .collect()
}

/// The Docker `Healthcheck` for a web recipe: an HTTP GET of `health_path` with the image's own Python.
pub fn healthcheck(recipe: &Recipe, python: &str) -> Option<serde_json::Value> {
    let path = recipe.health_path.as_ref()?;
    let port = recipe.port?;
    let probe = format!(
        "import os,sys,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s{path}' % os.environ.get('PORT', '{port}'), timeout=4)"
    );
    Some(serde_json::json!({
        "Test": ["CMD", python, "-c", probe],
        "Interval": 30_000_000_000u64,
        "Timeout": 5_000_000_000u64,
        "StartPeriod": 10_000_000_000u64,
        "Retries": 3
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(packages: &[&str], files: &[(&str, &str)]) -> ProjectFacts {
        ProjectFacts {
            packages: packages.iter().map(|s| s.to_string()).collect(),
            sources: files
                .iter()
                .filter(|(p, _)| p.ends_with(".py"))
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect(),
            files: files.iter().map(|(p, _)| p.to_string()).collect(),
            shebangs: files
                .iter()
                .filter(|(p, t)| t.starts_with("#!") || p.ends_with(".sh"))
                .map(|(p, t)| (p.to_string(), crate::spec::shebang_program(t.as_bytes())))
                .collect(),
        }
    }

    #[test]
    fn embedded_recipes_parse_and_detect() {
        let recipes = load_recipes().unwrap();
        assert_eq!(
            recipes.keys().cloned().collect::<Vec<_>>(),
            ["django", "fastapi", "flask", "s2i", "script"]
        );
        let f = facts(
            &["fastapi", "uvicorn"],
            &[(
                "app/main.py",
                "from fastapi import FastAPI\napp = FastAPI()\n",
            )],
        );
        let r = detect(&recipes, &f).unwrap();
        assert_eq!(r.name, "fastapi");
        let t = app_target(r, &f).unwrap();
        assert_eq!(
            t,
            AppTarget {
                module: "app.main".into(),
                object: "app".into()
            }
        );
        let ep = render(&r.entrypoint, "/usr/bin/python3.11", &t, r.port);
        // Exec form: the image's Python launches uvicorn, no shell.
        assert_eq!(ep[..2], ["/usr/bin/python3.11", "-c"], "{ep:?}");
        assert_eq!(ep[2], LAUNCHER);
        assert_eq!(ep[3..6], ["-m", "uvicorn", "app.main:app"], "{ep:?}");
        assert!(ep.contains(&"${PORT:-8000}".to_string()), "{ep:?}");

        let f = facts(
            &["flask"],
            &[("wsgi.py", "import flask\nserver = flask.Flask(__name__)\n")],
        );
        let r = detect(&recipes, &f).unwrap();
        assert_eq!(r.name, "flask");
        let err = app_target(r, &f).unwrap_err().to_string();
        assert!(err.contains("gunicorn"), "{err}");

        let f = facts(&["django", "gunicorn"], &[("settings.py", "")]);
        let err = app_target(&recipes["django"], &f).unwrap_err().to_string();
        assert!(err.contains("manage.py"), "{err}");
        let f = facts(
            &["django", "gunicorn"],
            &[("manage.py", ""), ("mysite/wsgi.py", "")],
        );
        assert_eq!(detect(&recipes, &f).unwrap().name, "django");
        assert_eq!(
            app_target(&recipes["django"], &f).unwrap().module,
            "mysite.wsgi"
        );

        let f = facts(&[], &[("tool/__main__.py", "print(1)\n")]);
        assert_eq!(detect(&recipes, &f).unwrap().name, "script");
        assert_eq!(app_target(&recipes["script"], &f).unwrap().module, "tool");
        let f = facts(&[], &[("app.sh", "")]);
        assert_eq!(detect(&recipes, &f).unwrap().name, "s2i");
        assert!(detect(&recipes, &facts(&[], &[("README.md", "")])).is_err());
    }
}

/// The s2i recipe's launcher (s2i's `run`, in Python) run by the host's `python3` in a scratch app
/// directory, with stand-in `gunicorn`/`django` packages that print what they were started with:
/// the precedence of `APP_SCRIPT` / `app.sh` / `APP_FILE` / `APP_MODULE` / `APP_CONFIG` / Django.
#[cfg(test)]
mod s2i_run_tests {
    use super::*;
    use std::process::Command;

    /// Runs the s2i entrypoint in a directory holding `files`; `stubs` are the stand-in packages
    /// installed. Returns (exit code, stdout, stderr).
    fn s2i_run(
        files: &[(&str, &str)],
        env: &[(&str, &str)],
        stubs: &[&str],
    ) -> (i32, String, String) {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("src");
        let site = tmp.path().join("site");
        for (path, text) in files {
            let p = app.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
        }
        std::fs::create_dir_all(&app).unwrap();
        for stub in stubs {
            let d = site.join(stub);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("__init__.py"), "").unwrap();
            std::fs::write(
                d.join("__main__.py"),
                format!(
                    "import json, os, sys\nprint(json.dumps({{'ran': '{stub}', 'argv': sys.argv[1:], 'cwd': os.getcwd(), 'web': os.environ.get('WEB_CONCURRENCY')}}))\n"
                ),
            )
            .unwrap();
        }
        let recipes = load_recipes().unwrap();
        let r = &recipes["s2i"];
        let target = AppTarget {
            module: String::new(),
            object: String::new(),
        };
        let ep = render(&r.entrypoint, "python3", &target, r.port);
        assert_eq!(ep[0], "python3");
        let out = Command::new(&ep[0])
            .args(&ep[1..])
            .current_dir(&app)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("PYTHONPATH", &site)
            .envs(env.iter().copied())
            .output()
            .expect("python3 on the host");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The JSON line a stand-in printed.
    fn started(stdout: &str) -> serde_json::Value {
        let line = stdout
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no stand-in ran: {stdout}"));
        serde_json::from_str(line).unwrap()
    }

    const APP_SH: (&str, &str) = ("app.sh", "#!/bin/sh\necho app.sh ran\n");
    const APP_PY: (&str, &str) = ("app.py", "print('app.py ran')\n");

    #[test]
    fn app_script_honours_a_bash_shebang() {
        let files = [
            (
                "run.sh",
                "#!/bin/bash\necho \"bash ${BASH_VERSINFO[0]} ran\"\n",
            ),
            APP_SH,
            APP_PY,
        ];
        let (code, out, err) = s2i_run(&files, &[("APP_SCRIPT", "run.sh")], &["gunicorn"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("Running application from script (run.sh)"),
            "{out}"
        );
        assert!(out.contains("bash ") && out.contains(" ran"), "{out}");
        assert!(
            !out.contains("app.sh ran") && !out.contains("app.py ran"),
            "{out}"
        );
    }

    #[test]
    fn app_script_honours_a_python_shebang() {
        let files = [
            (
                "bin/start",
                "#!/usr/bin/env python3\nimport sys\nprint('python', sys.version_info[0], 'ran')\n",
            ),
            APP_SH,
        ];
        let (code, out, err) = s2i_run(&files, &[("APP_SCRIPT", "bin/start")], &[]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("python 3 ran"), "{out}");
        // Missing APP_SCRIPT fails as s2i's run does.
        let (code, _, err) = s2i_run(&files, &[("APP_SCRIPT", "nope.sh")], &[]);
        assert_eq!(code, 1);
        assert!(err.contains("file 'nope.sh' not found"), "{err}");
    }

    #[test]
    fn app_sh_alone_runs() {
        let (code, out, err) = s2i_run(&[APP_SH], &[], &["gunicorn"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("app.sh ran"), "{out}");
        // app.sh wins over app.py when nothing is set.
        let (_, out, _) = s2i_run(&[APP_SH, APP_PY], &[], &[]);
        assert!(
            out.contains("app.sh ran") && !out.contains("app.py ran"),
            "{out}"
        );
    }

    #[test]
    fn app_file_runs_with_the_images_python() {
        let files = [APP_SH, APP_PY, ("server.py", "print('server.py ran')\n")];
        let (code, out, err) = s2i_run(&files, &[("APP_FILE", "server.py")], &["gunicorn"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("server.py ran"), "{out}");
        assert!(
            !out.contains("app.sh ran"),
            "APP_FILE set: app.sh is no default: {out}"
        );
        // No APP_*: app.py is the default after app.sh.
        let (_, out, _) = s2i_run(&[APP_PY], &[], &["gunicorn"]);
        assert!(out.contains("app.py ran"), "{out}");
    }

    #[test]
    fn app_module_is_served_by_gunicorn() {
        let files = [APP_PY, ("web/main.py", "app = None\n")];
        let (code, out, err) = s2i_run(
            &files,
            &[("APP_MODULE", "web.main:app"), ("PORT", "9123")],
            &["gunicorn"],
        );
        assert_eq!(code, 0, "{err}");
        let v = started(&out);
        assert_eq!(v["ran"], "gunicorn", "{out}");
        assert_eq!(
            v["argv"],
            serde_json::json!(["web.main:app", "--bind=0.0.0.0:9123", "--access-logfile=-"])
        );
        assert!(
            v["web"].as_str().unwrap().parse::<u32>().unwrap() >= 1,
            "{v}"
        );
        assert!(
            !out.contains("app.py ran"),
            "APP_MODULE set: app.py is no default: {out}"
        );
    }

    #[test]
    fn app_config_is_given_to_gunicorn() {
        let files = [
            ("wsgi.py", "application = None\n"),
            ("config.py", "workers = 3\n"),
        ];
        let (code, out, err) = s2i_run(&files, &[("APP_CONFIG", "config.py")], &["gunicorn"]);
        assert_eq!(code, 0, "{err}");
        let v = started(&out);
        // ./wsgi.py is the module; with APP_CONFIG the default bind is left to the config.
        assert_eq!(
            v["argv"],
            serde_json::json!(["wsgi", "--config", "config.py"]),
            "{out}"
        );
        let (_, out, _) = s2i_run(
            &files,
            &[("APP_CONFIG", "config.py"), ("APP_MODULE", "site:app")],
            &["gunicorn"],
        );
        assert_eq!(
            started(&out)["argv"],
            serde_json::json!(["site:app", "--config", "config.py"])
        );
    }

    #[test]
    fn django_wsgi_is_detected_and_migrated() {
        let files = [
            (
                "manage.py",
                "import sys\nopen('migrated', 'w').write(' '.join(sys.argv[1:]))\n",
            ),
            ("mysite/__init__.py", ""),
            ("mysite/wsgi.py", "application = None\n"),
        ];
        let (code, out, err) = s2i_run(&files, &[("PORT", "8081")], &["gunicorn", "django"]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("Migrating database"), "{out}");
        let v = started(&out);
        assert_eq!(v["ran"], "gunicorn");
        assert_eq!(
            v["argv"],
            serde_json::json!(["mysite.wsgi", "--bind=0.0.0.0:8081", "--access-logfile=-"])
        );
        // Without gunicorn: manage.py runserver (DISABLE_MIGRATE skips the migration).
        let files = [(
            "manage.py",
            "import sys\nprint('manage.py', *sys.argv[1:])\n",
        )];
        let (code, out, err) = s2i_run(
            &files,
            &[("DISABLE_MIGRATE", "1"), ("PORT", "8082")],
            &["django"],
        );
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("manage.py runserver 0.0.0.0:8082"), "{out}");
        assert!(!out.contains("Migrating"), "{out}");
    }

    #[test]
    fn nothing_to_run_fails_as_s2i_does() {
        let (code, _, err) = s2i_run(&[("README.md", "")], &[], &[]);
        assert_eq!(code, 1);
        assert!(
            err.contains("don't know how to run your application"),
            "{err}"
        );
    }
}
