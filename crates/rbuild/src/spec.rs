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

/// Every decision about the image's config: the recipe's entrypoint, cmd, env, port and
/// healthcheck for the project's app; then the request's settings over them; the user; the git
/// labels. Fails when the recipe does not fit the project or the user is not numeric.
pub fn image_settings(
    req: &BuildRequest,
    recipe: Option<&Recipe>,
    target: &Target,
    facts: &ProjectFacts,
    context: &ContextInfo,
) -> Result<ImageSettings, BuildError> {
    let app_dir = req.app_dir.clone();
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
    if let Some(r) = recipe {
        apply_recipe(&mut spec, &mut env, r, target, facts)?;
        if user.is_none() {
            user = r.user.clone();
        }
    }
    if context.src_layout {
        env.push((
            "PYTHONPATH".into(),
            format!("{}/src", app_dir.trim_end_matches('/')),
        ));
    }
    env.push(("HOME".into(), app_dir.clone()));
    env.extend(req.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    spec.env = env;
    if req.entrypoint.is_some() {
        spec.entrypoint = req.entrypoint.clone();
        spec.cmd = None;
    }
    if req.cmd.is_some() {
        spec.cmd = req.cmd.clone();
    }
    spec.ports.extend(req.ports.iter().cloned());
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
    let user = user.unwrap_or_else(|| "1001:1001".into());
    let (uid, gid) = parse_user(&user).ok_or_else(|| {
        other(format!(
            "--user {user:?}: expected numeric UID[:GID], e.g. 1001:1001"
        ))
    })?;
    spec.user = Some(format!("{uid}:{gid}"));
    Ok(ImageSettings { spec, uid, gid })
}

/// The recipe's part of the settings.
fn apply_recipe(
    spec: &mut ImageSpec,
    env: &mut Vec<(String, String)>,
    r: &Recipe,
    target: &Target,
    facts: &ProjectFacts,
) -> Result<(), RecipeError> {
    let app = recipe::app_target(r, facts)?;
    spec.entrypoint = Some(recipe::render(
        &r.entrypoint,
        &target.interpreter,
        &app,
        r.port,
    ));
    spec.cmd = Some(recipe::render(&r.cmd, &target.interpreter, &app, r.port));
    env.extend(r.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(p) = r.port {
        spec.ports.push(p.to_string());
        env.push(("PORT".into(), p.to_string()));
    }
    spec.healthcheck = recipe::healthcheck(r, &target.interpreter);
    spec.labels
        .insert("dev.rbuild.recipe".into(), r.name.clone());
    Ok(())
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
