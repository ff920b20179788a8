//! The image settings (entrypoint, env, user, ports, labels) from the request, the recipe, the
//! target and the context: one pure function, [`image_settings`], so every decision about the
//! image's config is made in one place and can be tested without building anything.

use std::collections::BTreeMap;
use std::path::Path;

use rbuild_python::target::Target;

use crate::BuildError;
use crate::assemble::ImageSpec;
use crate::error::other;
use crate::layers::user::parse_user;
use crate::recipe::{self, ProjectFacts, Recipe, RecipeError};
use crate::request::BuildRequest;

/// The image settings for one platform, and the user they run as.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSettings {
    /// Entrypoint, cmd, env, ports, labels, annotations, healthcheck, working dir, user.
    pub spec: ImageSpec,
    /// The numeric user id the image runs as.
    pub uid: u32,
    /// The numeric group id the image runs as.
    pub gid: u32,
    /// The base's own non-root `User` runs the app (no user is added to `/etc/passwd`).
    pub base_user: bool,
    /// What the settings change of the base's `User`, `WorkingDir` and `HOME`, for the build
    /// output (empty when the base's are kept).
    pub notes: Vec<String>,
    /// The directory the build context is copied to (and the `WorkingDir`): `--app-dir`, else
    /// the base's `WorkingDir`, else the recipe's (s2i: `/opt/app-root/src`), else `/app`.
    pub app_dir: String,
    /// A home directory the user layer creates, owned by the image's user, when the image runs
    /// as a user rbuild adds (root bases): `/home/app`.
    pub home: Option<String>,
    /// Programs the entrypoint needs besides the image's Python (a shell), checked against the
    /// base's files before any download ([`check_programs`]).
    pub needs: Vec<ProgramNeed>,
}

/// A program the image needs to start (e.g. `/bin/sh` for a shell-form entrypoint or an `app.sh`
/// whose `#!` line names it), what needs it and the ways out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramNeed {
    /// The absolute path (`/bin/sh`).
    pub program: String,
    /// What needs it (`recipe "s2i" (app.sh starts with #!/bin/sh)`).
    pub what: String,
    /// The ways out.
    pub fix: String,
}

/// Fails when the base lacks a program the entrypoint needs: `programs` answers whether the base
/// has a path (`None`: not a path the base facts track, so not checked).
pub fn check_programs(
    needs: &[ProgramNeed],
    programs: impl Fn(&str) -> Option<bool>,
) -> Result<(), RecipeError> {
    for n in needs {
        if programs(&n.program) == Some(false) {
            return Err(RecipeError::NeedsProgram {
                what: n.what.clone(),
                program: n.program.clone(),
                fix: n.fix.clone(),
            });
        }
    }
    Ok(())
}

/// The program a script's `#!` line runs (`#!/usr/bin/env bash` → `/usr/bin/env`); no `#!` line:
/// `/bin/sh` (as a shell runs it).
pub fn shebang_program(script: &[u8]) -> String {
    let first = script.split(|b| *b == b'\n').next().unwrap_or_default();
    match first.strip_prefix(b"#!") {
        Some(rest) => String::from_utf8_lossy(rest)
            .split_whitespace()
            .next()
            .unwrap_or("/bin/sh")
            .to_string(),
        None => "/bin/sh".into(),
    }
}

/// What the base image's config (and `/etc/passwd`, when read) declares that the image settings
/// respect: its non-root `User`, its `HOME`, its `WorkingDir`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaseDefaults {
    /// `config.User` (`1001`, `1001:0`, `default`), when set and not root.
    pub user: Option<String>,
    /// `HOME` in `config.Env`.
    pub home: Option<String>,
    /// `config.WorkingDir`, when set and not `/`.
    pub working_dir: Option<String>,
    /// `/etc/passwd` of the base, when it was read (to find a user's primary group and home).
    pub passwd: Option<String>,
    /// `config.Env` (e.g. an s2i base's `APP_MODULE`).
    pub env: BTreeMap<String, String>,
}

impl BaseDefaults {
    /// Reads them from the base config and, when known, the base's `/etc/passwd`.
    pub fn of(config: &rbuild_oci::ImageConfig, passwd: Option<&str>) -> BaseDefaults {
        let c = config.config.as_ref();
        let user = c
            .and_then(|c| c.user.clone())
            .filter(|u| !u.is_empty() && !matches!(u.as_str(), "0" | "root" | "0:0" | "root:root"));
        BaseDefaults {
            user,
            home: config.env("HOME").map(str::to_string),
            working_dir: c
                .and_then(|c| c.working_dir.clone())
                .filter(|w| !w.is_empty() && w != "/"),
            passwd: passwd.map(str::to_string),
            env: c
                .and_then(|c| c.env.as_ref())
                .map(|e| {
                    e.iter()
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// `(uid, gid, home)` of the base's user: numeric parts as given, names and a missing group
    /// looked up in `/etc/passwd` (as a runtime does); `None` when it cannot be told.
    fn user_ids(&self) -> Option<(u32, u32, Option<String>)> {
        let user = self.user.as_deref()?;
        let (u, g) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user, None),
        };
        let entry = self.passwd.as_deref().and_then(|p| {
            p.lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 6 && (f[0] == u || f[2] == u))
        });
        let uid = u
            .parse()
            .ok()
            .or_else(|| entry.as_ref().and_then(|f| f[2].parse().ok()))?;
        let gid = match g {
            Some(g) => g.parse().ok()?,
            None => entry.as_ref().and_then(|f| f[3].parse().ok()).unwrap_or(0),
        };
        Some((uid, gid, entry.map(|f| f[5].to_string())))
    }
}

/// What the build knows about the context, for the image settings.
#[derive(Clone, Debug, Default)]
pub struct ContextInfo {
    /// A `src/` layout without top-level modules: `PYTHONPATH` gets `APP_DIR/src`.
    pub src_layout: bool,
    /// `(remote URL, HEAD commit)` of a git checkout.
    pub git: Option<(Option<String>, String)>,
}

impl ContextInfo {
    /// Reads it from the loaded (filtered) context.
    pub fn of(ctx: &rbuild_layer::Context) -> ContextInfo {
        ContextInfo {
            src_layout: ctx.entries.iter().any(|e| e.path == "src")
                && !ctx
                    .entries
                    .iter()
                    .any(|e| e.path.ends_with(".py") && !e.path.contains('/')),
            git: git_info(&ctx.root),
        }
    }
}

/// The recipe the request names, else the one detected for the project (`None`: the request
/// names `none`, gives an entrypoint, or nothing was detected; the warning says so).
pub fn choose_recipe<'a>(
    req: &BuildRequest,
    recipes: &'a BTreeMap<String, Recipe>,
    facts: &ProjectFacts,
) -> Result<(Option<&'a Recipe>, Option<String>), RecipeError> {
    match req.recipe.as_deref() {
        Some("none") => Ok((None, None)),
        Some(name) => {
            recipes
                .get(name)
                .map(|r| (Some(r), None))
                .ok_or_else(|| RecipeError::Unknown {
                    name: name.to_string(),
                    available: recipes.keys().cloned().collect::<Vec<_>>().join(", "),
                })
        }
        None if req.entrypoint.is_some() => Ok((None, None)),
        None => Ok(match recipe::detect(recipes, facts) {
            Ok(r) => (Some(r), None),
            Err(e) => (
                None,
                Some(format!("{e}; the image keeps the base's entrypoint")),
            ),
        }),
    }
}

/// [`image_settings_on`] a root base that declares nothing ([`BaseDefaults::default`]).
pub fn image_settings(
    req: &BuildRequest,
    recipe: Option<&Recipe>,
    target: &Target,
    facts: &ProjectFacts,
    context: &ContextInfo,
) -> Result<ImageSettings, BuildError> {
    image_settings_on(
        req,
        recipe,
        target,
        facts,
        context,
        &BaseDefaults::default(),
    )
}

/// Every decision about the image's config: the recipe's entrypoint, cmd, env, port and
/// healthcheck for the project's app; then the request's settings over them; the user; the git
/// labels. Fails when the recipe does not fit the project or the user is not numeric.
///
/// The base's declarations are respected: a base that runs as a non-root user (`1001`, primary
/// group 0 on OpenShift-style images) keeps it unless `--user` says otherwise (a recipe's default
/// user does not replace it), with the base's `HOME` unless `--env HOME=…` sets one; the base's
/// `WorkingDir` is the app directory unless `--app-dir` says otherwise. On a root base the image
/// runs as the non-root default (1001) with a home it owns (`/home/app`, created by the user
/// layer); the app files stay owned by root. Where the settings change the base's `User`,
/// `WorkingDir` or `HOME`, [`ImageSettings::notes`] says so.
pub fn image_settings_on(
    req: &BuildRequest,
    recipe: Option<&Recipe>,
    target: &Target,
    facts: &ProjectFacts,
    context: &ContextInfo,
    base: &BaseDefaults,
) -> Result<ImageSettings, BuildError> {
    let mut notes = Vec::new();
    let app_dir = if req.app_dir_explicit {
        req.app_dir.clone()
    } else if let Some(w) = &base.working_dir {
        w.clone()
    } else if let Some(d) = recipe.and_then(|r| r.app_dir.clone()) {
        d
    } else {
        req.app_dir.clone()
    };
    let mut spec = ImageSpec {
        created: crate::time::rfc3339(req.epoch),
        working_dir: Some(app_dir.clone()),
        ..ImageSpec::default()
    };
    let mut env: Vec<(String, String)> = vec![
        ("PYTHONUNBUFFERED".into(), "1".into()),
        ("PYTHONFAULTHANDLER".into(), "1".into()),
        ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
    ];
    let mut user = req.user.clone();
    let base_ids = base.user_ids();
    let keep_base_user = user.is_none() && base_ids.is_some();
    let mut needs = Vec::new();
    let port = app_port(req, recipe);
    if let Some(r) = recipe {
        apply_recipe(&mut spec, &mut env, r, target, facts, req, port)?;
        if r.name == "s2i" {
            needs.extend(s2i_check(req, facts, base)?);
        }
        if user.is_none() && !keep_base_user {
            user = r.user.clone();
        }
    }
    if context.src_layout {
        env.push((
            "PYTHONPATH".into(),
            format!("{}/src", app_dir.trim_end_matches('/')),
        ));
    }
    // The user: the base's, else --user or the recipe's, else 1001:1001.
    let (uid, gid) = if keep_base_user {
        let (uid, gid, _) = base_ids.clone().expect("checked");
        (uid, gid)
    } else {
        let user = user.unwrap_or_else(|| "1001:1001".into());
        parse_user(&user).ok_or_else(|| {
            other(format!(
                "--user {user:?}: expected numeric UID[:GID], e.g. 1001:1001"
            ))
        })?
    };
    // HOME: the base's with its own user; else the home /etc/passwd gives the user, else one the
    // user layer creates for it (root keeps the base's, else /root).
    let home_flag = req.env.iter().any(|(k, _)| k == "HOME");
    let mut new_home = None;
    let home = if keep_base_user {
        base.home.clone().unwrap_or_else(|| {
            base_ids
                .as_ref()
                .and_then(|(_, _, h)| h.clone())
                .unwrap_or_else(|| app_dir.clone())
        })
    } else if uid == 0 {
        base.home.clone().unwrap_or_else(|| "/root".into())
    } else {
        match passwd_home(base.passwd.as_deref(), uid) {
            Some(h) => h,
            None => {
                new_home = Some("/home/app".to_string());
                "/home/app".into()
            }
        }
    };
    if !home_flag {
        if base.home.as_deref() != Some(home.as_str()) {
            if let Some(h) = &base.home {
                notes.push(format!(
                    "HOME: the base's {h} is replaced by {home}, the home of user {uid} (--env HOME=… sets another)"
                ));
            }
            env.push(("HOME".into(), home));
        }
    } else if let Some(h) = &base.home {
        notes.push(format!("HOME: the base's {h} is replaced by --env HOME"));
    }
    env.extend(req.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    spec.env = env;
    if req.entrypoint.is_some() {
        spec.entrypoint = req.entrypoint.clone();
        spec.cmd = None;
    }
    if req.cmd.is_some() {
        spec.cmd = req.cmd.clone();
    }
    if let Some(ep) = &spec.entrypoint
        && let Some(first) = ep.first()
        && first.starts_with('/')
        && first != &target.interpreter
    {
        let (what, fix) = match (&req.entrypoint, recipe) {
            (Some(_), _) => (
                "the entrypoint (--entrypoint or `entrypoint` in [tool.rbuild])".to_string(),
                "give an exec-form entrypoint that starts the image's Python (e.g. --entrypoint '[\"python3\", \"-m\", \"app\"]'), or use a base with a shell".to_string(),
            ),
            (None, Some(r)) => (
                format!("recipe {:?} (its entrypoint starts {first})", r.name),
                "use a recipe that starts the image's Python (the embedded fastapi, flask, django, script and s2i need no shell), pass --entrypoint with an exec-form command, or use a base with a shell".to_string(),
            ),
            (None, None) => (String::new(), String::new()),
        };
        if !what.is_empty() {
            needs.push(ProgramNeed {
                program: first.clone(),
                what,
                fix,
            });
        }
    }
    spec.ports.extend(req.ports.iter().cloned());
    spec.healthcheck = healthcheck_for(req, recipe, facts, port, &target.interpreter)?;
    spec.labels.extend(req.labels.clone());
    spec.annotations.extend(req.annotations.clone());
    if let Some((source, revision)) = &context.git {
        for map in [&mut spec.labels, &mut spec.annotations] {
            if let Some(s) = source {
                map.insert("org.opencontainers.image.source".into(), s.clone());
            }
            map.insert("org.opencontainers.image.revision".into(), revision.clone());
        }
    }
    if let Some(w) = &base.working_dir
        && w != &app_dir
    {
        notes.push(format!(
            "WorkingDir: the base's {w} is replaced by the app directory {app_dir} (--app-dir {w} keeps it)"
        ));
    }
    if keep_base_user {
        // The config keeps the base's User as written (the runtime resolves its group).
        spec.user = None;
        return Ok(ImageSettings {
            spec,
            uid,
            gid,
            base_user: true,
            notes,
            app_dir,
            home: None,
            needs,
        });
    }
    spec.user = Some(format!("{uid}:{gid}"));
    if let Some(b) = &base.user {
        notes.push(format!(
            "User: the base's {b} is replaced by {uid}:{gid} (--user)"
        ));
    }
    Ok(ImageSettings {
        spec,
        uid,
        gid,
        base_user: false,
        notes,
        app_dir,
        home: new_home,
        needs,
    })
}

/// The home `/etc/passwd` gives `uid`, when it has an entry with a real home (not `/`,
/// `/nonexistent`).
fn passwd_home(passwd: Option<&str>, uid: u32) -> Option<String> {
    passwd?
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[2] == uid.to_string())
        .map(|f| f[5].to_string())
        .filter(|h| h.starts_with('/') && h != "/" && !h.contains("nonexistent"))
}

/// The s2i recipe's checks: it fits when the project has something s2i's `run` starts (an
/// `APP_SCRIPT`/`APP_FILE`/`APP_MODULE`/`APP_CONFIG` in the environment, `app.sh`, `app.py`,
/// `wsgi.py`, `manage.py` or `gunicorn.conf.py`); the script it runs (`$APP_SCRIPT`, else
/// `app.sh`) needs the program its `#!` line names.
fn s2i_check(
    req: &BuildRequest,
    facts: &ProjectFacts,
    base: &BaseDefaults,
) -> Result<Vec<ProgramNeed>, RecipeError> {
    let var = |k: &str| {
        req.env
            .get(k)
            .or_else(|| base.env.get(k))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let has = |f: &str| facts.files.iter().any(|x| x == f);
    let vars = ["APP_SCRIPT", "APP_FILE", "APP_MODULE", "APP_CONFIG"];
    let files = [
        "app.sh",
        "app.py",
        "wsgi.py",
        "manage.py",
        "gunicorn.conf.py",
    ];
    if !vars.iter().any(|v| var(v).is_some()) && !files.iter().any(|f| has(f)) {
        return Err(RecipeError::DoesNotFit {
            recipe: "s2i".into(),
            why: "s2i's run starts $APP_SCRIPT, app.sh, $APP_FILE, app.py, $APP_MODULE or wsgi.py with gunicorn, or manage.py, and the project has none of them; add app.py or app.sh, or set one with --env APP_MODULE=package.module:app".into(),
        });
    }
    let script = match (var("APP_SCRIPT"), var("APP_FILE"), var("APP_MODULE")) {
        (Some(s), _, _) => Some(s),
        (None, None, None) => Some("app.sh".to_string()),
        _ => None,
    };
    let Some(script) = script else {
        return Ok(Vec::new());
    };
    let rel = script.trim_start_matches("./").to_string();
    let Some(program) = facts.shebangs.get(&rel).cloned() else {
        return Ok(Vec::new());
    };
    Ok(vec![ProgramNeed {
        program: program.clone(),
        what: format!("recipe \"s2i\" ({rel} starts with #!{program})"),
        fix: format!(
            "start the app without a shell: --env APP_MODULE=package.module:app (gunicorn) or --env APP_FILE=app.py, and leave {rel} out of the context (.dockerignore); or give {rel} a #!/usr/bin/python3 line; or use a base with {program}"
        ),
    }])
}

/// The port the app listens on: the first TCP port of `--port`/`ports`, else the recipe's.
pub fn app_port(req: &BuildRequest, recipe: Option<&Recipe>) -> Option<u16> {
    req.ports
        .iter()
        .find_map(|p| {
            let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            (proto == "tcp").then(|| n.parse().ok()).flatten()
        })
        .or(recipe.and_then(|r| r.port))
}

/// The recipe's part of the settings: entrypoint and cmd for the app (`--app`, else detected) on
/// `port`, the recipe's env, `PORT` and the port exposed.
fn apply_recipe(
    spec: &mut ImageSpec,
    env: &mut Vec<(String, String)>,
    r: &Recipe,
    target: &Target,
    facts: &ProjectFacts,
    req: &BuildRequest,
    port: Option<u16>,
) -> Result<(), RecipeError> {
    let app = recipe::app_target(r, facts, req.app.as_deref()).map_err(|e| match e {
        RecipeError::DoesNotFit { recipe, why } => {
            let ways = if req.recipe.is_some() {
                "; or choose another recipe (`rbuild recipes`), --recipe none to keep the base image's entrypoint, or --entrypoint '[\"python3\", \"-m\", \"MODULE\"]'"
            } else {
                "; or, since this recipe was only detected, start the app another way: --recipe script to run it with `python -m MODULE`, --recipe none to keep the base image's entrypoint, or --entrypoint '[\"python3\", \"-m\", \"MODULE\"]'"
            };
            RecipeError::DoesNotFit {
                recipe,
                why: format!("{why}{ways}"),
            }
        }
        e => e,
    })?;
    if let Some(given) = &req.app
        && !module_present(facts, &app.module)
    {
        return Err(RecipeError::BadApp {
            value: given.clone(),
            why: format!(
                "module {:?} is neither in the build context ({}.py, {}/, or under src/) nor a locked package, so the image could not start",
                app.module,
                app.module.replace('.', "/"),
                app.module.replace('.', "/")
            ),
            fix: "name a module of the project (check the spelling and the .dockerignore)".into(),
        });
    }
    let python = &target.interpreter;
    spec.entrypoint = Some(recipe::render(r, &r.entrypoint, python, &app, port));
    spec.cmd = Some(recipe::render(r, &r.cmd, python, &app, port));
    env.extend(r.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(p) = port {
        spec.ports.push(p.to_string());
        env.push(("PORT".into(), p.to_string()));
    }
    spec.labels
        .insert("dev.rbuild.recipe".into(), r.name.clone());
    Ok(())
}

/// Whether `module` (`app.main`) is in the context (`app/main.py`, `app/main/…`, also under
/// `src/`) or its top-level name is a locked package's.
fn module_present(facts: &ProjectFacts, module: &str) -> bool {
    let top = module.split('.').next().unwrap_or(module);
    // The facts list files at most 4 directories deep: deeper modules are checked by their
    // top-level package.
    let path = if module.matches('.').count() > 4 {
        top.to_string()
    } else {
        module.replace('.', "/")
    };
    let in_context = ["", "src/"].iter().any(|root| {
        let p = format!("{root}{path}");
        facts
            .files
            .iter()
            .any(|f| *f == format!("{p}.py") || f.starts_with(&format!("{p}/")))
    });
    in_context
        || facts
            .packages
            .iter()
            .any(|p| *p == rbuild_python::normalize_name(top))
}

/// The health check: none with `--no-healthcheck` / `healthcheck = false` (`{"Test": ["NONE"]}`,
/// which also switches off one the base declares); one on the configured
/// path (else the app's health route, else the recipe's `health-path`) when configured; else one
/// only when a web recipe runs the app and its source declares a health route
/// ([`recipe::health_route`]).
fn healthcheck_for(
    req: &BuildRequest,
    recipe: Option<&Recipe>,
    facts: &ProjectFacts,
    port: Option<u16>,
    python: &str,
) -> Result<Option<serde_json::Value>, BuildError> {
    let route = || {
        recipe
            .and_then(|r| recipe::health_route(r, facts))
            .map(|(p, _)| p)
    };
    match &req.healthcheck {
        // Docker's way to switch off a check the base image declares.
        Some(recipe::HealthcheckSetting::Off) => Ok(Some(serde_json::json!({"Test": ["NONE"]}))),
        Some(recipe::HealthcheckSetting::On(cfg)) => {
            let path = cfg
                .path
                .clone()
                .or_else(route)
                .or_else(|| recipe.and_then(|r| r.health_path.clone()))
                .unwrap_or_else(|| "/health".into());
            let port = port.ok_or_else(|| {
                other(
                    "the healthcheck needs the port the app listens on: pass --port (or `ports` in [tool.rbuild]), or --no-healthcheck",
                )
            })?;
            Ok(Some(recipe::healthcheck(python, &path, port, cfg)))
        }
        None => Ok(match (route(), port) {
            (Some(path), Some(port)) if recipe.is_some_and(|r| r.port.is_some()) => Some(
                recipe::healthcheck(python, &path, port, &Default::default()),
            ),
            _ => None,
        }),
    }
}

/// `(remote URL, HEAD commit)` when `dir` is a git checkout (read from `.git` without running git).
pub(crate) fn git_info(dir: &Path) -> Option<(Option<String>, String)> {
    let git = dir.join(".git");
    if !git.is_dir() {
        return None;
    }
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let revision = match head.strip_prefix("ref: ") {
        Some(r) => match std::fs::read_to_string(git.join(r)) {
            Ok(s) => s.trim().to_string(),
            Err(_) => {
                let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
                packed
                    .lines()
                    .find(|l| l.ends_with(&format!(" {r}")))?
                    .split(' ')
                    .next()?
                    .to_string()
            }
        },
        None => head.to_string(),
    };
    if revision.len() != 40 || !revision.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let config = std::fs::read_to_string(git.join("config")).unwrap_or_default();
    let mut in_origin = false;
    let mut url = None;
    for line in config.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_origin = l == "[remote \"origin\"]";
        } else if in_origin
            && let Some(u) = l.strip_prefix("url = ").or_else(|| l.strip_prefix("url="))
        {
            // Never record credentials embedded in a remote URL.
            let u = match u.split_once("://") {
                Some((scheme, rest)) => match rest.split_once('@') {
                    Some((_, host))
                        if !rest.split('/').next().unwrap_or("").is_empty()
                            && rest.find('@') < rest.find('/') =>
                    {
                        format!("{scheme}://{host}")
                    }
                    _ => u.to_string(),
                },
                None => u.to_string(),
            };
            url = Some(u);
        }
    }
    Some((url, revision))
}

#[cfg(test)]
mod base_defaults_tests {
    use super::*;

    #[test]
    fn the_base_user_is_resolved_as_a_runtime_does() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\ndefault:x:1001:0:Default:/opt/app-root/src:/sbin/nologin\n";
        let with = |user: &str, passwd: Option<&str>| BaseDefaults {
            user: Some(user.into()),
            passwd: passwd.map(str::to_string),
            ..BaseDefaults::default()
        };
        // A numeric user takes its primary group and home from /etc/passwd.
        assert_eq!(
            with("1001", Some(passwd)).user_ids(),
            Some((1001, 0, Some("/opt/app-root/src".into())))
        );
        assert_eq!(
            with("default", Some(passwd)).user_ids(),
            Some((1001, 0, Some("/opt/app-root/src".into())))
        );
        assert_eq!(
            with("1001:5", Some(passwd)).user_ids().map(|u| u.1),
            Some(5)
        );
        // Without /etc/passwd: numeric only, group 0 (OpenShift's convention).
        assert_eq!(with("1001", None).user_ids(), Some((1001, 0, None)));
        assert_eq!(with("someone", None).user_ids(), None);
        assert_eq!(BaseDefaults::default().user_ids(), None);
    }
}

#[cfg(test)]
mod recipe_settings_tests {
    use super::*;
    use crate::recipe::{HealthcheckConfig, HealthcheckSetting, load_recipes};

    fn target() -> Target {
        serde_json::from_value(serde_json::json!({
            "platform": {"os": "linux", "architecture": "amd64"},
            "python_version": "3.11",
            "python_full_version": null,
            "interpreter": "/usr/bin/python3.11",
            "scheme": {"purelib": "/usr/local/lib/python3.11/dist-packages",
                "platlib": "/usr/local/lib/python3.11/dist-packages",
                "scripts": "/usr/local/bin", "headers": "/usr/local/include/python3.11",
                "data": "/usr/local"},
            "libc": {"family": "glibc", "version": "2.36"},
            "arch": "x86_64",
            "installed": [],
        }))
        .unwrap()
    }

    fn fastapi(source: &str) -> ProjectFacts {
        ProjectFacts {
            packages: vec!["fastapi".into(), "uvicorn".into()],
            sources: vec![("app/main.py".into(), source.into())],
            files: vec!["app/main.py".into()],
            ..ProjectFacts::default()
        }
    }

    fn settings(req: &BuildRequest, facts: &ProjectFacts) -> ImageSettings {
        let recipes = load_recipes().unwrap();
        let (recipe, _) = choose_recipe(req, &recipes, facts).unwrap();
        image_settings(req, recipe, &target(), facts, &ContextInfo::default()).unwrap()
    }

    const APP: &str = "from fastapi import FastAPI\napp = FastAPI()\n";

    #[test]
    fn a_healthcheck_follows_the_route_or_the_configuration() {
        let req = BuildRequest::new(".", crate::request::BaseRef::Scratch);
        let with_route = fastapi(&format!("{APP}@app.get('/healthz')\ndef h(): ...\n"));
        let hc = settings(&req, &with_route).spec.healthcheck.expect("route");
        assert!(
            hc["Test"][3].as_str().unwrap().contains(":%s/healthz'"),
            "{hc}"
        );
        assert!(hc["Test"][3].as_str().unwrap().contains("'8000'"), "{hc}");
        let without = fastapi(APP);
        assert_eq!(settings(&req, &without).spec.healthcheck, None);
        let mut on = req.clone();
        on.healthcheck = Some(HealthcheckSetting::On(HealthcheckConfig {
            interval: Some(std::time::Duration::from_secs(5)),
            ..HealthcheckConfig::default()
        }));
        let hc = settings(&on, &without)
            .spec
            .healthcheck
            .expect("configured");
        assert!(
            hc["Test"][3].as_str().unwrap().contains(":%s/health'"),
            "{hc}"
        );
        assert_eq!(hc["Interval"], 5_000_000_000u64);
        let mut off = req.clone();
        off.healthcheck = Some(HealthcheckSetting::Off);
        assert_eq!(
            settings(&off, &with_route).spec.healthcheck,
            Some(serde_json::json!({"Test": ["NONE"]}))
        );
        // Configured where nothing says which port the app listens on: the error says --port.
        let mut script = on.clone();
        script.recipe = Some("script".into());
        let facts = ProjectFacts {
            files: vec!["main.py".into()],
            ..ProjectFacts::default()
        };
        let recipes = load_recipes().unwrap();
        let err = image_settings(
            &script,
            Some(&recipes["script"]),
            &target(),
            &facts,
            &ContextInfo::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("--port"), "{err}");
    }

    #[test]
    fn an_app_module_that_is_not_there_is_refused() {
        let mut req = BuildRequest::new(".", crate::request::BaseRef::Scratch);
        let facts = fastapi(APP);
        let recipes = load_recipes().unwrap();
        let with = |app: &str| {
            let mut r = req.clone();
            r.app = Some(app.into());
            image_settings(
                &r,
                Some(&recipes["fastapi"]),
                &target(),
                &facts,
                &ContextInfo::default(),
            )
        };
        let err = with("ap.main:app").unwrap_err().to_string();
        assert!(
            err.contains("--app \"ap.main:app\"") && err.contains("could not start"),
            "{err}"
        );
        assert!(with("app.main:app").is_ok());
        // A locked package's module (a dependency serving the app) is accepted.
        assert!(with("uvicorn.workers:app").is_ok());
        req.app = None;
        assert!(
            image_settings(
                &req,
                Some(&recipes["fastapi"]),
                &target(),
                &facts,
                &ContextInfo::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn the_port_flag_is_the_apps_port_everywhere() {
        let mut req = BuildRequest::new(".", crate::request::BaseRef::Scratch);
        req.ports = vec!["9000/tcp".into(), "9090/udp".into()];
        let s = settings(&req, &fastapi(&format!("{APP}@app.get('/health')\n")));
        let ep = s.spec.entrypoint.unwrap();
        assert!(ep.contains(&"${PORT:-9000}".to_string()), "{ep:?}");
        assert!(s.spec.env.contains(&("PORT".into(), "9000".into())));
        let mut ports = s.spec.ports.clone();
        ports.sort();
        ports.dedup_by(|a, b| a.trim_end_matches("/tcp") == b.trim_end_matches("/tcp"));
        assert_eq!(ports, ["9000", "9090/udp"], "8000 no longer exposed");
        let hc = s.spec.healthcheck.unwrap();
        assert!(hc["Test"][3].as_str().unwrap().contains("'9000'"), "{hc}");
    }
}
