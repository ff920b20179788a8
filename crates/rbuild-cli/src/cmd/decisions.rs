//! The decisions a build makes, shown to the user: lockfile, recipe and why it was chosen,
//! entrypoint/cmd, user, working directory, ports, healthcheck, base digest and target. `rbuild
//! build` reads them from the image it made; `rbuild plan` computes them with the same library
//! function the build uses ([`rbuild::spec::image_settings_on`], with the base's `User`, `HOME` and `WorkingDir`). With `-v` (and always in
//! `--json`) each platform also carries the evidence: where the lockfile was found (or who named
//! it), what in the project made the recipe fit, and which parts of the target were given by
//! flags and which were detected in the base image.

use std::collections::BTreeMap;

use rbuild::recipe::{ProjectFacts, Recipe};
use rbuild::spec::{ContextInfo, choose_recipe, image_settings_on};
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
    /// Why: the lockfile's, the recipe's and the target's evidence, one line each (empty when not
    /// asked for).
    pub evidence: Vec<String>,
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

/// What made each decision, one line per subject (lockfile, recipe, target).
fn evidence(
    req: &BuildRequest,
    pl: Option<&PlatformPlan>,
    recipe: Option<&Recipe>,
    facts: Option<&ProjectFacts>,
) -> Vec<String> {
    let mut out = Vec::new();
    let context = req.context.display();
    // The lockfile: named by the user, or the first of the known names in the context.
    let lockfile = pl.and_then(|p| p.lockfile.as_ref());
    let names = rbuild_lock::LOCKFILE_NAMES.join(", ");
    out.push(match (&req.lock, lockfile) {
        (Some(l), _) => format!(
            "lockfile: {} named by --lock (or RBUILD_LOCK, or `lock` in [tool.rbuild])",
            l.display()
        ),
        (None, Some(l)) => {
            let found = l
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let others: Vec<&str> = rbuild_lock::LOCKFILE_NAMES
                .iter()
                .copied()
                .filter(|n| *n != found && req.context.join(n).is_file())
                .collect();
            let mut line =
                format!("lockfile: {found} found in {context}, the first there of {names}");
            if !others.is_empty() {
                line.push_str(&format!("; also there, not read: {}", others.join(", ")));
            }
            line
        }
        (None, None) => format!("lockfile: none of {names} in {context}"),
    });
    // The recipe: what in the project matched it.
    if let (Some(r), Some(facts), None, None) = (
        recipe,
        facts,
        req.recipe.as_deref(),
        req.entrypoint.as_ref(),
    ) {
        let mut why = Vec::new();
        let pkgs: Vec<&str> = r
            .detect_packages
            .iter()
            .filter(|p| facts.packages.iter().any(|x| x == *p))
            .map(String::as_str)
            .collect();
        if !pkgs.is_empty() {
            why.push(format!("{} locked", pkgs.join(", ")));
        }
        for pat in &r.detect_source {
            let files: Vec<&str> =
                if pat.ends_with(".py") || pat.ends_with(".sh") || pat.starts_with('.') {
                    facts
                        .files
                        .iter()
                        .filter(|f| *f == pat || f.ends_with(&format!("/{pat}")))
                        .map(String::as_str)
                        .collect()
                } else {
                    facts
                        .sources
                        .iter()
                        .filter(|(_, t)| t.contains(pat.as_str()))
                        .map(|(f, _)| f.as_str())
                        .collect()
                };
            if let Some(first) = files.first() {
                let more = if files.len() > 1 {
                    format!(" (and {} more)", files.len() - 1)
                } else {
                    String::new()
                };
                if pat.ends_with(".py") || pat.ends_with(".sh") || pat.starts_with('.') {
                    why.push(format!("{first} exists{more}"));
                } else {
                    why.push(format!("`{pat}` in {first}{more}"));
                }
            }
        }
        out.push(format!(
            "recipe: {} because {}",
            r.name,
            if why.is_empty() {
                "it is the default".to_string()
            } else {
                why.join("; ")
            }
        ));
    } else if let (None, Some(facts), None, None) = (
        recipe,
        facts,
        req.recipe.as_deref(),
        req.entrypoint.as_ref(),
    ) {
        out.push(format!(
            "recipe: none fits: {} and {} looked at",
            rbuild::progress::count(facts.sources.len(), "Python file", "Python files"),
            rbuild::progress::count(facts.packages.len(), "locked package", "locked packages")
        ));
    }
    // The target: given by flags, or detected in the base image's files.
    if let Some(pl) = pl {
        let o = &req.target_overrides;
        let t = &pl.target;
        let base = match &req.base {
            rbuild::BaseRef::Scratch => "scratch".to_string(),
            rbuild::BaseRef::Image(r) => match &pl.base_digest {
                Some(d) => format!("{}@{d}", r.familiar()),
                None => r.familiar(),
            },
        };
        let part = |what: &str, value: String, flag: &str, given: bool| {
            if given {
                format!("{what} {value} given by {flag}")
            } else {
                format!("{what} {value} detected in the base image's files")
            }
        };
        let parts = [
            part(
                "Python",
                t.python_full_version
                    .clone()
                    .unwrap_or_else(|| t.python_version.to_string()),
                "--python-version",
                o.python_version.is_some(),
            ),
            part("libc", t.libc.to_string(), "--libc", o.libc.is_some()),
            part(
                "interpreter",
                t.interpreter.clone(),
                "--interpreter",
                o.interpreter.is_some(),
            ),
            part(
                "site-packages",
                t.scheme.purelib.clone(),
                "--site-packages",
                o.site_packages.is_some(),
            ),
        ];
        out.push(format!(
            "target: base {base}, {}; {} already installed there",
            parts.join(", "),
            rbuild::progress::count(t.installed.len(), "distribution", "distributions")
        ));
    }
    out
}

/// The project facts recipe detection reads (the context as it will be copied), with the
/// packages `pl` installs; `None` when the context cannot be read.
fn facts_for(req: &BuildRequest, pl: Option<&PlatformPlan>) -> Option<ProjectFacts> {
    let ctx = rbuild_layer::load_context_with_defaults(&req.context, req.default_ignores).ok()?;
    let mut facts = ProjectFacts::from_context(&ctx, Vec::new());
    facts.packages = normalized_packages(pl);
    Some(facts)
}

fn normalized_packages(pl: Option<&PlatformPlan>) -> Vec<String> {
    pl.map(|pl| {
        pl.packages
            .iter()
            .map(|w| w.name.to_ascii_lowercase().replace(['_', '.'], "-"))
            .collect()
    })
    .unwrap_or_default()
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .map(|x| x.as_str().unwrap_or_default().to_string())
            .collect()
    })
}

/// The decisions of a built platform image, read from its config; with the evidence when
/// `with_evidence`.
pub fn of_build(
    req: &BuildRequest,
    plan: Option<&PlatformPlan>,
    platform: &str,
    config_bytes: &[u8],
    with_evidence: bool,
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
    let evidence = if with_evidence {
        let facts = facts_for(req, plan);
        let r = recipe.as_deref().and_then(|n| recipes.get(n));
        evidence(req, plan, r, facts.as_ref())
    } else {
        Vec::new()
    };
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
        evidence,
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
    facts.packages = normalized_packages(Some(pl));
    let recipes = rbuild::recipe::load_recipes().map_err(|e| e.to_string())?;
    let (recipe, _) = choose_recipe(req, &recipes, &facts).map_err(|e| e.to_string())?;
    let s = image_settings_on(
        req,
        recipe,
        &pl.target,
        &facts,
        &ContextInfo::of(&ctx),
        &pl.base_defaults,
    )
    .map_err(|e| e.to_string())?;
    Ok(Decisions {
        platform: pl.platform.clone(),
        lockfile: pl.lockfile.as_ref().map(|l| l.display().to_string()),
        packages: pl.packages.len(),
        recipe: recipe.map(|r| r.name.clone()),
        recipe_reason: recipe_reason(req, recipe.map(|r| r.name.as_str()), &recipes),
        entrypoint: s.spec.entrypoint.clone(),
        cmd: s.spec.cmd.clone(),
        // The base's own User when the image keeps it (the config then leaves it as written).
        user: s
            .spec
            .user
            .clone()
            .or_else(|| pl.base_defaults.user.clone()),
        workdir: s.spec.working_dir.clone(),
        ports: s.spec.ports.clone(),
        healthcheck: s
            .spec
            .healthcheck
            .as_ref()
            .and_then(|h| strings(&h["Test"])),
        base_digest: pl.base_digest.clone(),
        target: target_line(pl),
        evidence: evidence(req, Some(pl), recipe, Some(&facts)),
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
            "evidence": self.evidence,
        })
    }

    /// Indented lines for humans; `full` false shows only what differs per platform (base and
    /// target); `verbose` adds the evidence.
    pub fn text(&self, full: bool, verbose: bool) -> String {
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
        if verbose {
            for e in &self.evidence {
                line("why", e.clone());
            }
        }
        out
    }
}

/// The decisions of every platform as text: the first platform in full, the others with only
/// their base and target unless something else differs; `verbose` (`-v`) adds each platform's
/// evidence.
pub fn text(all: &[Decisions], verbose: bool) -> String {
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
                x.evidence.clear();
            }
            a == b
        });
        let full = Some(d) == first || !same;
        out.push_str(&format!("{}:\n{}", d.platform, d.text(full, verbose)));
    }
    out
}
