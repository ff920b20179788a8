//! Builder recipes: how an app of a known shape is started (entrypoint, env, port, health check).
//!
//! Recipes are TOML files, one per app shape, in the repository's `builder-recipes/` directory. They
//! are embedded in the binary as the defaults; a directory named by `RBUILD_RECIPES_DIR` adds recipes
//! or replaces embedded ones of the same name, read at build time.
//!
//! Placeholders in `entrypoint` and `cmd`: `{python}` (the detected interpreter), `{module}` and
//! `{object}` (the app's module and object, detected from the source), `{port}`.

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
            facts.files.push(e.path.clone());
        }
        facts
    }

    fn has_package(&self, p: &str) -> bool {
        self.packages.iter().any(|x| x == p)
    }
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
        "script" | "s2i" => {
            let web = find_object(facts, &["FastAPI(".into(), "Flask(".into()]);
            if let (Some(t), "s2i") = (web, recipe.name.as_str()) {
                return Ok(t);
            }
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
        assert!(
            ep[2].contains("/usr/bin/python3.11 -m uvicorn app.main:app"),
            "{ep:?}"
        );
        assert!(ep[2].contains("${PORT:-8000}"), "{ep:?}");

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
