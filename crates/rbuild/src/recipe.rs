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
    /// Path a health check requests when one is configured without a path and no health route
    /// is found in the source (web recipes). A health check is added only when the app has a
    /// health route ([`health_route`]) or the configuration asks for one.
    #[serde(default)]
    pub health_path: Option<String>,
    /// How the server is told that the app object is a factory to call (`module:create_app()`):
    /// an argument added after the `{module}:{object}` one, with the `()` dropped (uvicorn's
    /// `--factory`). Without it the object is passed as `create_app()` (gunicorn calls it).
    #[serde(default)]
    pub factory_flag: Option<String>,
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
        /// Why, and the ways out.
        why: String,
    },
    /// `--app` / `app` in the configuration is not `module:object`.
    #[error("--app {value:?}: {why}; {fix}")]
    BadApp {
        /// The value given.
        value: String,
        /// What is wrong.
        why: String,
        /// What to write instead.
        fix: String,
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

const APP_FORMS: &str =
    "write MODULE:OBJECT (`app.main:app`) or MODULE:FACTORY() (`app:create_app()`)";

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
    let r: Recipe = toml::from_str(text).map_err(|e| RecipeError::Parse {
        path: path.to_string(),
        message: e.to_string(),
    })?;
    // The path is written into the health check's Python source.
    if let Some(h) = &r.health_path
        && !crate::config::valid_health_path(h)
    {
        return Err(RecipeError::Parse {
            path: path.to_string(),
            message: format!(
                "health-path {h:?}: expected an absolute URL path of letters, digits and /_.~-?=&"
            ),
        });
    }
    Ok(r)
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
    /// Object in it (`app`), or a factory call (`create_app()`).
    pub object: String,
}

impl AppTarget {
    /// Parses `--app MODULE:OBJECT` (`app.main:app`, `app:create_app()`, `pkg:make_app("prod")`);
    /// for the script recipe a bare `MODULE` is allowed (`allow_bare`).
    pub fn parse(value: &str, allow_bare: bool) -> Result<AppTarget, RecipeError> {
        let bad = |why: &str| RecipeError::BadApp {
            value: value.to_string(),
            why: why.to_string(),
            fix: APP_FORMS.to_string(),
        };
        let ident = |s: &str| {
            !s.is_empty()
                && !s.starts_with(|c: char| c.is_ascii_digit())
                && s.chars().all(|c| c.is_alphanumeric() || c == '_')
        };
        let (module, object) = match value.split_once(':') {
            Some((m, o)) => (m, o),
            None if allow_bare => (value, ""),
            None => return Err(bad("no `:OBJECT`")),
        };
        if !module.split('.').all(ident) {
            return Err(bad(&format!("{module:?} is not a dotted module name")));
        }
        if !object.is_empty() {
            let name = object.split_once('(').map(|(n, _)| n).unwrap_or(object);
            if !ident(name) || (object.contains('(') && !object.ends_with(')')) {
                return Err(bad(&format!(
                    "{object:?} is not an object name or a factory call"
                )));
            }
        } else if !allow_bare {
            return Err(bad("the object after `:` is empty"));
        }
        Ok(AppTarget {
            module: module.to_string(),
            object: object.to_string(),
        })
    }

    /// Whether the object is a factory call (`create_app()`).
    pub fn is_factory(&self) -> bool {
        self.object.ends_with(')')
    }
}

fn module_of(rel: &str) -> String {
    let m = rel.trim_end_matches(".py").replace('/', ".");
    let m = m.strip_prefix("src.").map(str::to_string).unwrap_or(m);
    m.strip_suffix(".__init__").map(str::to_string).unwrap_or(m)
}

/// Finds `NAME = Ctor(` in the sources (first match in path order, shallowest first); else an app
/// factory: a module-level `def create_app(...)` or `def make_app(...)` callable without arguments
/// in a source that constructs the app (`Flask(`), as `create_app()` (what `flask run` looks for).
fn find_object(facts: &ProjectFacts, ctors: &[String]) -> Option<AppTarget> {
    let mut candidates: Vec<&(String, String)> = facts.sources.iter().collect();
    candidates.sort_by_key(|(p, _)| (p.matches('/').count(), p.clone()));
    find_assignment(&candidates, ctors).or_else(|| find_factory(&candidates, ctors))
}

/// A module-level `def create_app(` / `def make_app(` whose parameters all have defaults, in a
/// source that calls one of `ctors`.
fn find_factory(candidates: &[&(String, String)], ctors: &[String]) -> Option<AppTarget> {
    for (path, text) in candidates {
        if !ctors.iter().any(|c| text.contains(c.as_str())) {
            continue;
        }
        for name in ["create_app", "make_app"] {
            let Some(at) = text
                .find(&format!("\ndef {name}("))
                .map(|i| i + 1)
                .or_else(|| text.starts_with(&format!("def {name}(")).then_some(0))
            else {
                continue;
            };
            let params = &text[at + name.len() + 5..];
            let Some(end) = params.find(')') else {
                continue;
            };
            let callable_bare = params[..end]
                .split(',')
                .map(|p| p.split('#').next().unwrap_or("").trim())
                .filter(|p| !p.is_empty())
                .all(|p| p.contains('=') || p.starts_with('*'));
            if callable_bare {
                return Some(AppTarget {
                    module: module_of(path),
                    object: format!("{name}()"),
                });
            }
        }
    }
    None
}

/// The first module-level `NAME = Ctor(`.
fn find_assignment(candidates: &[&(String, String)], ctors: &[String]) -> Option<AppTarget> {
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

/// The app target for `recipe`: `explicit` (`--app`, `app` in the configuration) when given,
/// else detected from the project.
pub fn app_target(
    recipe: &Recipe,
    facts: &ProjectFacts,
    explicit: Option<&str>,
) -> Result<AppTarget, RecipeError> {
    let fit = |why: String| RecipeError::DoesNotFit {
        recipe: recipe.name.clone(),
        why,
    };
    for p in &recipe.requires_packages {
        if !facts.has_package(p) {
            return Err(fit(format!(
                "it runs {p}, which is not in the lockfile; add {p} to your dependencies and lock again"
            )));
        }
    }
    if let Some(app) = explicit {
        return match recipe.name.as_str() {
            "s2i" => Err(RecipeError::BadApp {
                value: app.to_string(),
                why: "the s2i recipe reads the app from its environment".into(),
                fix: "use --env APP_MODULE=MODULE:OBJECT (served by gunicorn) instead".into(),
            }),
            "script" => {
                let t = AppTarget::parse(app, true)?;
                if t.object.is_empty() {
                    Ok(t)
                } else {
                    Err(RecipeError::BadApp {
                        value: app.to_string(),
                        why: "the script recipe runs a module (`python -m MODULE`)".into(),
                        fix: "write --app MODULE".into(),
                    })
                }
            }
            _ => {
                let t = AppTarget::parse(app, false)?;
                if t.is_factory() && recipe.factory_flag.is_some() && !t.object.ends_with("()") {
                    return Err(RecipeError::BadApp {
                        value: app.to_string(),
                        why: format!(
                            "the {} recipe's server calls a factory without arguments",
                            recipe.name
                        ),
                        fix: "write MODULE:FACTORY() and read settings from the environment".into(),
                    });
                }
                Ok(t)
            }
        };
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
                    "no module-level `app = {}...)` and no `def create_app()` found in the Python sources; name the app with --app MODULE:OBJECT or --app MODULE:create_app()",
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

/// Fills a template's placeholders. A factory call (`create_app()`) is passed to a server that
/// takes a flag for it ([`Recipe::factory_flag`], uvicorn's `--factory`) as `create_app` followed
/// by that flag.
pub fn render(
    recipe: &Recipe,
    template: &[String],
    python: &str,
    target: &AppTarget,
    port: Option<u16>,
) -> Vec<String> {
    let flag = recipe.factory_flag.as_ref().filter(|_| target.is_factory());
    let object = match flag {
        Some(_) => target.object.trim_end_matches("()"),
        None => target.object.as_str(),
    };
    let mut out = Vec::with_capacity(template.len() + 1);
    for s in template {
        out.push(
            s.replace("{python}", python)
                .replace("{module}", &target.module)
                .replace("{object}", object)
                .replace("{port}", &port.map(|p| p.to_string()).unwrap_or_default())
                .replace("{launcher}", LAUNCHER),
        );
        if let Some(f) = flag
            && s.contains("{object}")
        {
            out.push(f.clone());
        }
    }
    out
}

/// A health check's settings (`healthcheck = { path = "/healthz", interval = "30s" }` in
/// `[tool.rbuild]`); unset fields take the defaults: the app's health route, else the recipe's
/// `health-path`; every 30 s, 5 s timeout, 10 s start period, 3 retries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthcheckConfig {
    /// The path requested (`/healthz`).
    pub path: Option<String>,
    /// Time between checks.
    pub interval: Option<std::time::Duration>,
    /// Time one check may take.
    pub timeout: Option<std::time::Duration>,
    /// Time after start during which failures do not count.
    pub start_period: Option<std::time::Duration>,
    /// Failures in a row before the container is unhealthy.
    pub retries: Option<u32>,
}

/// The `healthcheck` setting: `false` / `--no-healthcheck` for none, else one with these
/// settings. Not set at all: a health check only when the app has a health route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthcheckSetting {
    /// No health check, even when the app has a health route.
    Off,
    /// A health check (`true`, a path, or a table).
    On(HealthcheckConfig),
}

/// Parses a duration: `30s`, `500ms`, `1m30s`, `2h`.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let mut total = std::time::Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let d = match &rest[..unit] {
            "ms" => std::time::Duration::from_millis(n),
            "s" => std::time::Duration::from_secs(n),
            "m" => std::time::Duration::from_secs(n.checked_mul(60)?),
            "h" => std::time::Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(d)?;
        rest = &rest[unit..];
    }
    Some(total)
}

/// Health routes looked for in the source, most specific first.
const HEALTH_ROUTES: [&str; 5] = ["/health", "/healthz", "/healthcheck", "/livez", "/ping"];

/// Calls a line must contain for a route literal on it to count as a route.
const ROUTE_CALLS: [&str; 8] = [
    ".get(",
    ".head(",
    "route(",
    "path(",
    "Route(",
    "add_url_rule(",
    "api_route(",
    "add_api_route(",
];

/// The app's health route, when its source declares one (`@app.get("/health")`,
/// `@app.route("/healthz")`, Django's `path("health/", ...)`): the path and the file it was found
/// in. The recipe's `health-path` is looked for first, then `/health`, `/healthz`,
/// `/healthcheck`, `/livez`, `/ping`.
pub fn health_route(recipe: &Recipe, facts: &ProjectFacts) -> Option<(String, String)> {
    let mut routes: Vec<&str> = recipe
        .health_path
        .iter()
        .map(String::as_str)
        .filter(|p| *p != "/")
        .collect();
    for r in HEALTH_ROUTES {
        if !routes.contains(&r) {
            routes.push(r);
        }
    }
    for route in routes {
        let bare = route.trim_start_matches('/');
        for (file, text) in &facts.sources {
            for line in text.lines() {
                if !ROUTE_CALLS.iter().any(|c| line.contains(c)) {
                    continue;
                }
                for q in ['"', '\''] {
                    for (lit, found) in [
                        (format!("{q}{route}{q}"), route.to_string()),
                        (format!("{q}{route}/{q}"), format!("{route}/")),
                        // Django: path("health/", ...) and path("health", ...).
                        (format!("path({q}{bare}/{q}"), format!("{route}/")),
                        (format!("path({q}{bare}{q}"), route.to_string()),
                    ] {
                        if line.contains(&lit) {
                            return Some((found, file.clone()));
                        }
                    }
                }
            }
        }
    }
    None
}

/// The Docker `Healthcheck`: an HTTP GET of `path` on the app's port (`$PORT` when set at run
/// time) with the image's own Python (no curl or shell needed).
pub fn healthcheck(
    python: &str,
    path: &str,
    port: u16,
    cfg: &HealthcheckConfig,
) -> serde_json::Value {
    let probe = format!(
        "import os,sys,urllib.request; urllib.request.urlopen('http://127.0.0.1:%s{path}' % os.environ.get('PORT', '{port}'), timeout=4)"
    );
    let nanos = |d: Option<std::time::Duration>, default: u64| {
        d.map(|d| d.as_nanos() as u64)
            .unwrap_or(default * 1_000_000_000)
    };
    serde_json::json!({
        "Test": ["CMD", python, "-c", probe],
        "Interval": nanos(cfg.interval, 30),
        "Timeout": nanos(cfg.timeout, 5),
        "StartPeriod": nanos(cfg.start_period, 10),
        "Retries": cfg.retries.unwrap_or(3)
    })
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
        let t = app_target(r, &f, None).unwrap();
        assert_eq!(
            t,
            AppTarget {
                module: "app.main".into(),
                object: "app".into()
            }
        );
        let ep = render(r, &r.entrypoint, "/usr/bin/python3.11", &t, r.port);
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
        let err = app_target(r, &f, None).unwrap_err().to_string();
        assert!(err.contains("gunicorn"), "{err}");

        let f = facts(&["django", "gunicorn"], &[("settings.py", "")]);
        let err = app_target(&recipes["django"], &f, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("manage.py"), "{err}");
        let f = facts(
            &["django", "gunicorn"],
            &[("manage.py", ""), ("mysite/wsgi.py", "")],
        );
        assert_eq!(detect(&recipes, &f).unwrap().name, "django");
        assert_eq!(
            app_target(&recipes["django"], &f, None).unwrap().module,
            "mysite.wsgi"
        );

        let f = facts(&[], &[("tool/__main__.py", "print(1)\n")]);
        assert_eq!(detect(&recipes, &f).unwrap().name, "script");
        assert_eq!(
            app_target(&recipes["script"], &f, None).unwrap().module,
            "tool"
        );
        let f = facts(&[], &[("app.sh", "")]);
        assert_eq!(detect(&recipes, &f).unwrap().name, "s2i");
        assert!(detect(&recipes, &facts(&[], &[("README.md", "")])).is_err());
    }

    #[test]
    fn health_routes_are_found_only_where_the_app_declares_them() {
        let recipes = load_recipes().unwrap();
        let fastapi = &recipes["fastapi"];
        let with = |text: &str| facts(&["fastapi", "uvicorn"], &[("app/main.py", text)]);
        let app = "from fastapi import FastAPI\napp = FastAPI()\n";
        assert_eq!(
            health_route(
                fastapi,
                &with(&format!("{app}@app.get(\"/health\")\ndef h(): ...\n"))
            ),
            Some(("/health".into(), "app/main.py".into()))
        );
        assert_eq!(
            health_route(
                fastapi,
                &with(&format!(
                    "{app}@router.api_route('/healthz', methods=['GET'])\n"
                ))
            ),
            Some(("/healthz".into(), "app/main.py".into()))
        );
        // No route: no health check (the container would be marked unhealthy).
        assert_eq!(
            health_route(fastapi, &with(&format!("{app}@app.get(\"/\")\n"))),
            None
        );
        // A string that is not a route does not count.
        assert_eq!(
            health_route(fastapi, &with(&format!("{app}DOC = \"/health\"\n"))),
            None
        );
        // Django: path("health/", ...) in urls.py, with or without the slash.
        let django = &recipes["django"];
        let urls = |t: &str| facts(&["django"], &[("mysite/urls.py", t)]);
        assert_eq!(
            health_route(
                django,
                &urls("urlpatterns = [path(\"health/\", views.health)]\n")
            ),
            Some(("/health/".into(), "mysite/urls.py".into()))
        );
        assert_eq!(
            health_route(
                django,
                &urls("urlpatterns = [path('healthz', h), path('', h)]\n")
            ),
            Some(("/healthz".into(), "mysite/urls.py".into()))
        );
        assert_eq!(
            health_route(django, &urls("urlpatterns = [path('', h)]\n")),
            None
        );
    }

    #[test]
    fn app_factories_are_detected_and_passed_as_each_server_takes_them() {
        let recipes = load_recipes().unwrap();
        let f = facts(
            &["flask", "gunicorn"],
            &[(
                "web/__init__.py",
                "from flask import Flask\n\ndef create_app(config=None):\n    app = Flask(__name__)\n    return app\n",
            )],
        );
        let r = detect(&recipes, &f).unwrap();
        assert_eq!(r.name, "flask");
        let t = app_target(r, &f, None).unwrap();
        assert_eq!(
            (t.module.as_str(), t.object.as_str()),
            ("web", "create_app()")
        );
        // gunicorn calls `module:create_app()` itself.
        let ep = render(r, &r.entrypoint, "python3", &t, r.port);
        assert_eq!(ep.last().unwrap(), "web:create_app()", "{ep:?}");
        // A factory that needs an argument is not called without one.
        let f = facts(
            &["flask", "gunicorn"],
            &[(
                "web.py",
                "from flask import Flask\ndef create_app(config):\n    return Flask(__name__)\n",
            )],
        );
        let err = app_target(r, &f, None).unwrap_err().to_string();
        assert!(err.contains("--app MODULE:create_app()"), "{err}");
        // uvicorn takes `module:create_app --factory`.
        let fastapi = &recipes["fastapi"];
        let f = facts(&["fastapi", "uvicorn"], &[]);
        let t = app_target(fastapi, &f, Some("svc.main:build()")).unwrap();
        let ep = render(fastapi, &fastapi.entrypoint, "python3", &t, Some(9000));
        let at = ep
            .iter()
            .position(|a| a == "svc.main:build")
            .expect("target");
        assert_eq!(ep[at + 1], "--factory", "{ep:?}");
        assert!(ep.contains(&"${PORT:-9000}".to_string()), "{ep:?}");
        // --app forms.
        assert!(AppTarget::parse("app.main:app", false).is_ok());
        for bad in [
            "app.main",
            "app..main:app",
            "app:1x",
            "app:make(",
            ":app",
            "app:",
        ] {
            let e = AppTarget::parse(bad, false).unwrap_err().to_string();
            assert!(e.contains("MODULE:OBJECT"), "{bad}: {e}");
        }
        assert!(app_target(fastapi, &f, Some("svc:make(1)")).is_err());
        assert!(
            app_target(&recipes["s2i"], &f, Some("svc:app"))
                .unwrap_err()
                .to_string()
                .contains("APP_MODULE")
        );
        assert_eq!(
            app_target(&recipes["script"], &f, Some("tool.cli"))
                .unwrap()
                .module,
            "tool.cli"
        );
    }

    #[test]
    fn a_recipes_health_path_must_be_a_plain_url_path() {
        let base = "name = \"x\"\ndescription = \"x\"\nentrypoint = [\"{python}\"]\n";
        assert!(parse("x.toml", &format!("{base}health-path = \"/ok\"\n")).is_ok());
        let err = parse("x.toml", &format!("{base}health-path = \"/x') or 1 #\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.toml") && err.contains("health-path"),
            "{err}"
        );
    }

    #[test]
    fn durations_parse_as_docker_writes_them() {
        let s = std::time::Duration::from_secs;
        assert_eq!(parse_duration("30s"), Some(s(30)));
        assert_eq!(parse_duration("1m30s"), Some(s(90)));
        assert_eq!(
            parse_duration("500ms"),
            Some(std::time::Duration::from_millis(500))
        );
        assert_eq!(parse_duration("2h"), Some(s(7200)));
        for bad in ["", "30", "s", "3x", "-1s", "1.5s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
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
        let ep = render(r, &r.entrypoint, "python3", &target, r.port);
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
