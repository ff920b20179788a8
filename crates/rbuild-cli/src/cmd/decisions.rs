//! The decisions a build makes, shown to the user: lockfile, recipe and why it was chosen,
//! entrypoint/cmd, user, working directory, ports, healthcheck, base digest and target. `rbuild
//! build` reads them from the image it made; `rbuild plan` computes them with the same library
//! function the build uses ([`rbuild::spec::image_settings`]).

use std::collections::BTreeMap;

use rbuild::recipe::{ProjectFacts, Recipe};
use rbuild::spec::{ContextInfo, choose_recipe, image_settings};
use rbuild::{BuildRequest, PlatformPlan};
use serde_json::{Value, json};

/// What was decided for one platform.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decisions {
    /// `linux/amd64`.
    pub platform: String,
    /// The lockfile read, when there is one.
    pub lockfile: Option<String>,
    /// How many packages it locks for this platform.
    pub packages: usize,
    /// The recipe, when one applies.
    pub recipe: Option<String>,
    /// Why that recipe (or none).
    pub recipe_reason: String,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Cmd.
    pub cmd: Option<Vec<String>>,
    /// User.
    pub user: Option<String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Exposed ports.
    pub ports: Vec<String>,
    /// The healthcheck's test, when there is one.
    pub healthcheck: Option<Vec<String>>,
    /// The base image's manifest digest (none for `scratch`).
    pub base_digest: Option<String>,
    /// The target, one line.
    pub target: String,
}

/// Why the recipe was (or was not) chosen.
fn recipe_reason(
    req: &BuildRequest,
    recipe: Option<&str>,
    recipes: &BTreeMap<String, Recipe>,
) -> String {
    match (req.recipe.as_deref(), recipe) {
        (Some("none"), _) => "none: --recipe none (or RBUILD_RECIPE / [tool.rbuild])".into(),
        (Some(_), _) => "set by --recipe (or RBUILD_RECIPE / [tool.rbuild])".into(),
        (None, _) if req.entrypoint.is_some() => "none: the entrypoint is given".into(),
        (None, Some(name)) => match recipes.get(name) {
            Some(r) if !r.requires_packages.is_empty() => format!(
                "detected: the lockfile has {}",
                r.requires_packages.join(", ")
            ),
            _ => "detected from the project's files".into(),
        },
        (None, None) => "none detected: the image keeps the base's entrypoint".into(),
    }
}

/// One line for the target.
pub fn target_line(pl: &PlatformPlan) -> String {
    let t = &pl.target;
    format!(
        "Python {}{} at {}, {}, site-packages {}",
        t.python_version,
        t.python_full_version
            .as_ref()
            .map(|v| format!(" ({v})"))
            .unwrap_or_default(),
        t.interpreter,
        t.libc,
        t.scheme.purelib
    )
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect()
    })
}

/// The decisions of a built platform image, read from its config.
pub fn of_build(
    req: &BuildRequest,
    plan: Option<&PlatformPlan>,
    platform: &str,
    config_bytes: &[u8],
) -> Decisions {
    let cfg: Value = serde_json::from_slice(config_bytes).unwrap_or_default();
    let c = &cfg["config"];
    let labels = &c["Labels"];
    let recipe = labels["dev.rbuild.recipe"].as_str().map(str::to_string);
    let recipes = rbuild::recipe::load_recipes().unwrap_or_default();
    let base_digest = labels["dev.rbuild.target"]
        .as_str()
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
        .and_then(|t| t["base_digest"].as_str().map(str::to_string));
    Decisions {
        platform: platform.to_string(),
        lockfile: plan.and_then(|p| p.lockfile.as_ref().map(|l| l.display().to_string())),
        packages: plan.map(|p| p.packages.len()).unwrap_or(0),
        recipe_reason: recipe_reason(req, recipe.as_deref(), &recipes),
        recipe,
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        user: c["User"].as_str().map(str::to_string),
        workdir: c["WorkingDir"].as_str().map(str::to_string),
        ports: c["ExposedPorts"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        healthcheck: strings(&c["Healthcheck"]["Test"]),
        base_digest,
        target: plan.map(target_line).unwrap_or_default(),
    }
}

/// The decisions a build of `plan` would make (what `rbuild plan` shows), computed as the build
/// computes them; `Err` carries the reason the build would fail (e.g. a recipe that does not fit).
pub fn of_plan(req: &BuildRequest, pl: &PlatformPlan) -> Result<Decisions, String> {
    let ctx = rbuild_layer::load_context_with_defaults(&req.context, req.default_ignores)
        .map_err(|e| e.to_string())?;
    let mut facts = ProjectFacts::from_context(&ctx, Vec::new());
    facts.packages = pl
        .packages
        .iter()
        .map(|w| w.name.to_ascii_lowercase().replace(['_', '.'], "-"))
        .collect();
    let recipes = rbuild::recipe::load_recipes().map_err(|e| e.to_string())?;
    let (recipe, _) = choose_recipe(req, &recipes, &facts).map_err(|e| e.to_string())?;
    let s = image_settings(req, recipe, &pl.target, &facts, &ContextInfo::of(&ctx))
        .map_err(|e| e.to_string())?;
    Ok(Decisions {
        platform: pl.platform.clone(),
        lockfile: pl.lockfile.as_ref().map(|l| l.display().to_string()),
        packages: pl.packages.len(),
        recipe: recipe.map(|r| r.name.clone()),
        recipe_reason: recipe_reason(req, recipe.map(|r| r.name.as_str()), &recipes),
        entrypoint: s.spec.entrypoint.clone(),
        cmd: s.spec.cmd.clone(),
        user: s.spec.user.clone(),
        workdir: s.spec.working_dir.clone(),
        ports: s.spec.ports.clone(),
        healthcheck: s
            .spec
            .healthcheck
            .as_ref()
            .and_then(|h| strings(&h["Test"])),
        base_digest: pl.base_digest.clone(),
        target: target_line(pl),
    })
}

impl Decisions {
    /// The JSON form (snake_case keys).
    pub fn json(&self) -> Value {
        json!({
            "platform": self.platform,
            "lockfile": self.lockfile,
            "packages": self.packages,
            "recipe": self.recipe,
            "recipe_reason": self.recipe_reason,
            "entrypoint": self.entrypoint,
            "cmd": self.cmd,
            "user": self.user,
            "workdir": self.workdir,
            "ports": self.ports,
            "healthcheck": self.healthcheck,
            "base_digest": self.base_digest,
            "target": self.target,
        })
    }

    /// Indented lines for humans; `full` false shows only what differs per platform (base and
    /// target).
    pub fn text(&self, full: bool) -> String {
        let list = |v: &Option<Vec<String>>| {
            v.as_ref()
                .map(|v| serde_json::to_string(v).unwrap_or_default())
                .unwrap_or_else(|| "(the base's)".into())
        };
        let mut out = String::new();
        let mut line = |k: &str, v: String| out.push_str(&format!("  {k:<12}{v}\n"));
        if full {
            line(
                "lockfile",
                match &self.lockfile {
                    Some(l) => format!(
                        "{l} ({})",
                        rbuild::progress::count(self.packages, "package", "packages")
                    ),
                    None => "none: no dependency layer".into(),
                },
            );
            line(
                "recipe",
                match &self.recipe {
                    Some(r) => format!("{r} ({})", self.recipe_reason),
                    None => self.recipe_reason.clone(),
                },
            );
            line("entrypoint", list(&self.entrypoint));
            if self.cmd.as_ref().is_some_and(|c| !c.is_empty()) {
                line("cmd", list(&self.cmd));
            }
            line(
                "user",
                self.user.clone().unwrap_or_else(|| "(the base's)".into()),
            );
            line("workdir", self.workdir.clone().unwrap_or_default());
            line(
                "ports",
                if self.ports.is_empty() {
                    "none".into()
                } else {
                    self.ports.join(", ")
                },
            );
            line(
                "healthcheck",
                self.healthcheck
                    .as_ref()
                    .map(|h| h.join(" "))
                    .unwrap_or_else(|| "none".into()),
            );
        }
        if let Some(b) = &self.base_digest {
            line("base", b.clone());
        }
        if !self.target.is_empty() {
            line("target", self.target.clone());
        }
        out
    }
}

/// The decisions of every platform as text: the first platform in full, the others with only
/// their base and target unless something else differs.
pub fn text(all: &[Decisions]) -> String {
    let mut out = String::new();
    let first = all.first();
    for d in all {
        let same = first.is_some_and(|f| {
            let mut a = f.clone();
            let mut b = d.clone();
            for x in [&mut a, &mut b] {
                x.platform.clear();
                x.base_digest = None;
                x.target.clear();
            }
            a == b
        });
        let full = Some(d) == first || !same;
        out.push_str(&format!("{}:\n{}", d.platform, d.text(full)));
    }
    out
}
