//! `rbuild recipes`: the builder recipes and what each sets.

use clap::Args;
use serde_json::json;

use crate::cli::GlobalArgs;
use crate::output;

/// Arguments of `rbuild recipes`.
#[derive(Debug, Args)]
pub struct RecipesArgs {}

/// Runs `rbuild recipes`.
pub async fn run(global: &GlobalArgs, _args: RecipesArgs) -> anyhow::Result<()> {
    let recipes = rbuild::recipe::load_recipes()?;
    if global.json {
        let list: Vec<serde_json::Value> = recipes
            .values()
            .map(|r| {
                json!({
                    "name": r.name, "description": r.description, "detect_packages": r.detect_packages,
                    "detect_source": r.detect_source, "requires_packages": r.requires_packages,
                    "entrypoint": r.entrypoint, "cmd": r.cmd, "port": r.port, "health_path": r.health_path,
                    "app_dir": r.app_dir.clone().unwrap_or_else(|| "/app".into()),
                    "user": r.user.clone().unwrap_or_else(|| "1001:1001".into()), "env": r.env,
                })
            })
            .collect();
        return output::json_doc(json!({ "recipes": list }));
    }
    let mut text = String::new();
    for r in recipes.values() {
        text.push_str(&format!("{}\n  {}\n", r.name, r.description));
        if !r.detect_packages.is_empty() {
            text.push_str(&format!(
                "  chosen when: {} locked and {} in the source\n",
                r.detect_packages.join(" or "),
                r.detect_source.join(" or ")
            ));
        } else {
            text.push_str(&format!(
                "  chosen when: {} present\n",
                r.detect_source.join(" or ")
            ));
        }
        text.push_str(&format!(
            "  entrypoint:  {}\n",
            serde_json::to_string(&r.entrypoint)?
        ));
        if let Some(p) = r.port {
            text.push_str(&format!(
                "  port:        {p} (PORT overrides it at run time)\n"
            ));
        }
        if let Some(h) = &r.health_path {
            text.push_str(&format!(
                "  healthcheck: GET of the app's health route ({h}, /healthz, ...) when its source declares one\n"
            ));
        }
        text.push_str(&format!(
            "  user:        {}   app dir: {}\n",
            r.user.clone().unwrap_or_else(|| "1001:1001".into()),
            r.app_dir.clone().unwrap_or_else(|| "/app".into())
        ));
        let env: Vec<String> = r.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        text.push_str(&format!("  env:         {}\n\n", env.join(" ")));
    }
    output::lines(&text)
}
