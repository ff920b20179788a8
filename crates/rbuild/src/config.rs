//! Project configuration and its precedence.
//!
//! Highest first: CLI flags > `RBUILD_*` environment variables > `[tool.rbuild]` in `pyproject.toml`
//! or an `rbuild.toml` (both at once is an error) > the recipe > defaults. Keys mirror the flags:
//!
//! | key | type | flag | environment |
//! |---|---|---|---|
//! | `base` | string | `--base` | `RBUILD_BASE` |
//! | `to` | list | `--to` | `RBUILD_TO` (a repository without tag gets `/<project>:latest`, like ko's `KO_DOCKER_REPO`) |
//! | `platforms` | list | `--platform` | `RBUILD_PLATFORMS` |
//! | `lock` | string | `--lock` | `RBUILD_LOCK` |
//! | `extras`, `groups` | list | `--extra`, `--group` | `RBUILD_EXTRAS`, `RBUILD_GROUPS` |
//! | `app-dir` | string | `--app-dir` | `RBUILD_APP_DIR` |
//! | `entrypoint`, `cmd` | list | `--entrypoint`, `--cmd` (JSON arrays) | `RBUILD_ENTRYPOINT`, `RBUILD_CMD` (JSON arrays) |
//! | `env`, `labels`, `annotations` | table | `--env`, `--label`, `--annotation` `K=V` | `RBUILD_ENV`, `RBUILD_LABELS`, `RBUILD_ANNOTATIONS` |
//! | `user` | string | `--user` | `RBUILD_USER` |
//! | `ports` | list | `--port` | `RBUILD_PORTS` |
//! | `recipe` | string | `--recipe` | `RBUILD_RECIPE` |
//! | `app` | string | `--app` | `RBUILD_APP` (the app object a web recipe serves: `module:object` or `module:create_app()`) |
//! | `healthcheck` | bool, path or table | `--healthcheck PATH`, `--no-healthcheck` | `RBUILD_HEALTHCHECK` (`false`, `true` or a path; default: only when the app declares a health route) |
//! | `index-url`, `extra-index-url`, `find-links` | string, list, list | same names | `RBUILD_INDEX_URL`, ... |
//! | `compression`, `format` | string | `--compression`, `--format` | `RBUILD_COMPRESSION`, `RBUILD_FORMAT` |
//! | `compile-bytecode` | bool | `--compile-bytecode`, `--no-compile-bytecode` | `RBUILD_COMPILE_BYTECODE` (`true`/`false`, `1`/`0`) |
//! | `deps-layers` | integer | `--deps-layers N` | `RBUILD_DEPS_LAYERS` (the most dependency layers per image, 1 to 64; default 8) |
//! | `default-ignores` | bool | `--no-default-ignores` | `RBUILD_DEFAULT_IGNORES` (without an ignore file: rbuild's Python ignore list and `.gitignore`; default true) |
//!
//! Maps (`env`, `labels`, `annotations`) merge across levels, the higher level winning per key.
//! `rbuild.toml` holds the keys at its top level, or the same `[tool.rbuild]` table as
//! `pyproject.toml`. A list key given a single value is an error that shows the list form.
//!
//! Lists in environment variables are comma-separated. Unknown keys are errors that suggest the
//! nearest known key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every configuration value; `None` means "not set at this level".
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Settings {
    /// Base image reference.
    pub base: Option<String>,
    /// Target references.
    pub to: Option<Vec<String>>,
    /// Platforms (`os/arch[/variant]`, or `all`).
    pub platforms: Option<Vec<String>>,
    /// Lockfile path.
    pub lock: Option<String>,
    /// Extras to install.
    pub extras: Option<Vec<String>>,
    /// Dependency groups to install.
    pub groups: Option<Vec<String>>,
    /// App directory in the image.
    pub app_dir: Option<String>,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Cmd.
    pub cmd: Option<Vec<String>>,
    /// Environment.
    pub env: Option<BTreeMap<String, String>>,
    /// User (`uid[:gid]`).
    pub user: Option<String>,
    /// Exposed ports.
    pub ports: Option<Vec<String>>,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Recipe name.
    pub recipe: Option<String>,
    /// The app object (`module:object`, `module:create_app()`).
    pub app: Option<String>,
    /// The health check (`false`, `true`, a path, or a table of settings).
    pub healthcheck: Option<crate::recipe::HealthcheckSetting>,
    /// Primary package index.
    pub index_url: Option<String>,
    /// Extra package indexes.
    pub extra_index_url: Option<Vec<String>>,
    /// Local wheel directories.
    pub find_links: Option<Vec<String>>,
    /// `gzip` or `zstd`.
    pub compression: Option<String>,
    /// `oci` or `docker`.
    pub format: Option<String>,
    /// Whether the layers carry bytecode (`.pyc`) compiled by the base's own interpreter.
    pub compile_bytecode: Option<bool>,
    /// Without an ignore file, apply rbuild's default Python ignore list and `.gitignore`.
    pub default_ignores: Option<bool>,
    /// The most dependency layers per image (heavy distributions alone, the rest in groups).
    pub deps_layers: Option<usize>,
}

/// The known keys, as spelled in files.
pub const KEYS: [&str; 25] = [
    "base",
    "to",
    "platforms",
    "lock",
    "extras",
    "groups",
    "app-dir",
    "entrypoint",
    "cmd",
    "env",
    "user",
    "ports",
    "labels",
    "annotations",
    "recipe",
    "app",
    "healthcheck",
    "index-url",
    "extra-index-url",
    "find-links",
    "compression",
    "format",
    "compile-bytecode",
    "default-ignores",
    "deps-layers",
];

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Both config files exist.
    #[error(
        "both {rbuild_toml} and [tool.rbuild] in {pyproject} configure rbuild; keep one of them"
    )]
    Both {
        /// rbuild.toml.
        rbuild_toml: PathBuf,
        /// pyproject.toml.
        pyproject: PathBuf,
    },
    /// An unknown key.
    #[error("{file}: unknown key {key:?}{}", suggestion.as_ref().map(|s| format!("; did you mean {s:?}?")).unwrap_or_default())]
    UnknownKey {
        /// Where.
        file: String,
        /// The key.
        key: String,
        /// The nearest known key.
        suggestion: Option<String>,
    },
    /// A value of the wrong type.
    #[error("{file}: {key} must be {expected}")]
    Type {
        /// Where.
        file: String,
        /// The key.
        key: String,
        /// What it should be.
        expected: &'static str,
    },
    /// A file that does not parse.
    #[error("{file}: {message}")]
    Parse {
        /// Where.
        file: String,
        /// What is wrong.
        message: String,
    },
}

/// Whether `path` may be requested by the health check: an absolute URL path of letters, digits
/// and `/_.~-?=&` (it is written into the probe's Python source).
pub fn valid_health_path(path: &str) -> bool {
    path.starts_with('/')
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_.~-?=&".contains(c))
}

/// A boolean as environment variables write it: `1`/`true`/`yes`/`on`, `0`/`false`/`no`/`off`
/// (any case).
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `RBUILD_HEALTHCHECK` / `--healthcheck`: `false`/`off`/`0` (none), `true`/`on`/`1` (one on
/// the detected route or the recipe's path) or a path (`/healthz`).
pub fn healthcheck_from_text(v: &str) -> Option<crate::recipe::HealthcheckSetting> {
    use crate::recipe::{HealthcheckConfig, HealthcheckSetting};
    match parse_bool(v) {
        Some(false) => Some(HealthcheckSetting::Off),
        Some(true) => Some(HealthcheckSetting::On(HealthcheckConfig::default())),
        None if v.trim().eq_ignore_ascii_case("none") => Some(HealthcheckSetting::Off),
        None if valid_health_path(v.trim()) => Some(HealthcheckSetting::On(HealthcheckConfig {
            path: Some(v.trim().to_string()),
            ..HealthcheckConfig::default()
        })),
        None => None,
    }
}

/// `healthcheck = false | true | "/path" | { path, interval, timeout, start-period, retries }`.
fn healthcheck_from_toml(
    file: &str,
    v: &toml::Value,
) -> Result<crate::recipe::HealthcheckSetting, ConfigError> {
    use crate::recipe::{HealthcheckConfig, HealthcheckSetting, parse_duration};
    let err = |expected: &'static str| ConfigError::Type {
        file: file.to_string(),
        key: "healthcheck".into(),
        expected,
    };
    const FORMS: &str = "false, true, a path (\"/healthz\") or a table { path = \"/healthz\", interval = \"30s\", timeout = \"5s\", start-period = \"10s\", retries = 3 }";
    match v {
        toml::Value::Boolean(false) => Ok(HealthcheckSetting::Off),
        toml::Value::Boolean(true) => Ok(HealthcheckSetting::On(HealthcheckConfig::default())),
        toml::Value::String(p) if valid_health_path(p) => {
            Ok(HealthcheckSetting::On(HealthcheckConfig {
                path: Some(p.clone()),
                ..HealthcheckConfig::default()
            }))
        }
        toml::Value::Table(t) => {
            let mut cfg = HealthcheckConfig::default();
            for (k, x) in t {
                let duration = || {
                    x.as_str().and_then(parse_duration).ok_or_else(|| {
                        err("a table whose times are strings like \"30s\", \"500ms\" or \"1m\"")
                    })
                };
                match k.as_str() {
                    "path" => {
                        cfg.path = Some(
                            x.as_str()
                                .filter(|p| valid_health_path(p))
                                .ok_or_else(|| err("a table whose path starts with / and has no quotes, spaces or %"))?
                                .to_string(),
                        )
                    }
                    "interval" => cfg.interval = Some(duration()?),
                    "timeout" => cfg.timeout = Some(duration()?),
                    "start-period" => cfg.start_period = Some(duration()?),
                    "retries" => {
                        cfg.retries = Some(
                            x.as_integer()
                                .and_then(|i| u32::try_from(i).ok())
                                .ok_or_else(|| err("a table whose retries is a number"))?,
                        )
                    }
                    other => {
                        return Err(ConfigError::UnknownKey {
                            file: file.to_string(),
                            key: format!("healthcheck.{other}"),
                            suggestion: ["path", "interval", "timeout", "start-period", "retries"]
                                .iter()
                                .map(|c| (levenshtein(other, c), *c))
                                .filter(|(d, _)| *d <= 3)
                                .min()
                                .map(|(_, c)| format!("healthcheck.{c}")),
                        });
                    }
                }
            }
            Ok(HealthcheckSetting::On(cfg))
        }
        _ => Err(err(FORMS)),
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known key nearest to `key`, when it is close enough to be a typo.
pub fn suggest(key: &str) -> Option<String> {
    let norm = key.replace('_', "-").to_ascii_lowercase();
    KEYS.iter()
        .map(|k| (levenshtein(&norm, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3) || k.starts_with(&norm) || norm.starts_with(k))
        .min()
        .map(|(_, k)| k.to_string())
}

impl Settings {
    /// Values of `higher` win over `self`; maps (`env`, `labels`, `annotations`) merge, with
    /// `higher` winning per key.
    pub fn overlay(mut self, higher: Settings) -> Settings {
        macro_rules! take {
            ($($f:ident),*) => { $( if higher.$f.is_some() { self.$f = higher.$f; } )* };
        }
        // Maps merge: each key of the higher level wins, the other keys stay.
        macro_rules! merge {
            ($($f:ident),*) => { $( if let Some(h) = higher.$f {
                self.$f.get_or_insert_with(Default::default).extend(h);
            } )* };
        }
        merge!(env, labels, annotations);
        take!(
            base,
            to,
            platforms,
            lock,
            extras,
            groups,
            app_dir,
            entrypoint,
            cmd,
            user,
            ports,
            recipe,
            app,
            healthcheck,
            index_url,
            extra_index_url,
            find_links,
            compression,
            format,
            compile_bytecode,
            default_ignores,
            deps_layers
        );
        self
    }

    /// Parses a TOML table of keys (from `rbuild.toml` or `[tool.rbuild]`).
    pub fn from_table(file: &str, table: &toml::Table) -> Result<Settings, ConfigError> {
        let mut s = Settings::default();
        let ty = |key: &str, expected| ConfigError::Type {
            file: file.to_string(),
            key: key.to_string(),
            expected,
        };
        let string = |k: &str, v: &toml::Value| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| ty(k, "a string"))
        };
        let list = |k: &str, v: &toml::Value| -> Result<Vec<String>, ConfigError> {
            match v {
                toml::Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| ty(k, "a list of strings"))
                    })
                    .collect(),
                toml::Value::String(x) => Err(ConfigError::Type {
                    file: file.to_string(),
                    key: k.to_string(),
                    expected: leak(format!(
                        "a list of strings, not a single string (write {k} = [{x:?}])"
                    )),
                }),
                _ => Err(ty(k, "a list of strings")),
            }
        };
        let ports = |k: &str, v: &toml::Value| -> Result<Vec<String>, ConfigError> {
            let one = |x: &toml::Value| match x {
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::String(s) => Ok(s.clone()),
                _ => Err(ty(k, "a list of ports (numbers or \"N/proto\")")),
            };
            match v {
                toml::Value::Array(a) => a.iter().map(one).collect(),
                x => Err(ConfigError::Type {
                    file: file.to_string(),
                    key: k.to_string(),
                    expected: leak(format!(
                        "a list of ports, not a single value (write {k} = [{x}])"
                    )),
                }),
            }
        };
        let map = |k: &str, v: &toml::Value| -> Result<BTreeMap<String, String>, ConfigError> {
            let t = v.as_table().ok_or_else(|| ty(k, "a table of strings"))?;
            t.iter()
                .map(|(kk, vv)| match vv {
                    toml::Value::String(x) => Ok((kk.clone(), x.clone())),
                    toml::Value::Integer(i) => Ok((kk.clone(), i.to_string())),
                    toml::Value::Boolean(b) => Ok((kk.clone(), b.to_string())),
                    _ => Err(ty(k, "a table of strings")),
                })
                .collect()
        };
        for (key, v) in table {
            match key.as_str() {
                "base" => s.base = Some(string(key, v)?),
                "to" => s.to = Some(list(key, v)?),
                "platforms" => s.platforms = Some(list(key, v)?),
                "lock" => s.lock = Some(string(key, v)?),
                "extras" => s.extras = Some(list(key, v)?),
                "groups" => s.groups = Some(list(key, v)?),
                "app-dir" => s.app_dir = Some(string(key, v)?),
                "entrypoint" => s.entrypoint = Some(list(key, v)?),
                "cmd" => s.cmd = Some(list(key, v)?),
                "env" => s.env = Some(map(key, v)?),
                "user" => s.user = Some(string(key, v)?),
                "ports" => s.ports = Some(ports(key, v)?),
                "labels" => s.labels = Some(map(key, v)?),
                "annotations" => s.annotations = Some(map(key, v)?),
                "recipe" => s.recipe = Some(string(key, v)?),
                "app" => s.app = Some(string(key, v)?),
                "healthcheck" => s.healthcheck = Some(healthcheck_from_toml(file, v)?),
                "index-url" => s.index_url = Some(string(key, v)?),
                "extra-index-url" => s.extra_index_url = Some(list(key, v)?),
                "find-links" => s.find_links = Some(list(key, v)?),
                "compression" => s.compression = Some(string(key, v)?),
                "format" => s.format = Some(string(key, v)?),
                "compile-bytecode" => {
                    s.compile_bytecode = Some(v.as_bool().ok_or_else(|| ty(key, "true or false"))?)
                }
                "default-ignores" => {
                    s.default_ignores = Some(v.as_bool().ok_or_else(|| ty(key, "true or false"))?)
                }
                "deps-layers" => {
                    s.deps_layers = Some(
                        v.as_integer()
                            .and_then(|i| usize::try_from(i).ok())
                            .ok_or_else(|| ty(key, "a number of layers, e.g. 8"))?,
                    )
                }
                other => {
                    return Err(ConfigError::UnknownKey {
                        file: file.to_string(),
                        key: other.to_string(),
                        suggestion: suggest(other),
                    });
                }
            }
        }
        Ok(s)
    }

    /// Reads `rbuild.toml` or `[tool.rbuild]` from `pyproject.toml` in `dir`; also returns the project
    /// name from `[project] name` when there is one.
    pub fn from_project_dir(dir: &Path) -> Result<(Settings, Option<String>), ConfigError> {
        let read = |p: &Path| -> Result<Option<toml::Table>, ConfigError> {
            match std::fs::read_to_string(p) {
                Ok(text) => text
                    .parse::<toml::Table>()
                    .map(Some)
                    .map_err(|e| ConfigError::Parse {
                        file: p.display().to_string(),
                        message: e.to_string(),
                    }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ConfigError::Parse {
                    file: p.display().to_string(),
                    message: e.to_string(),
                }),
            }
        };
        let pyproject_path = dir.join("pyproject.toml");
        let rbuild_path = dir.join("rbuild.toml");
        let pyproject = read(&pyproject_path)?;
        let name = pyproject
            .as_ref()
            .and_then(|t| t.get("project")?.get("name")?.as_str().map(str::to_string))
            .or_else(|| {
                pyproject.as_ref().and_then(|t| {
                    t.get("tool")?
                        .get("poetry")?
                        .get("name")?
                        .as_str()
                        .map(str::to_string)
                })
            });
        let tool = pyproject
            .as_ref()
            .and_then(|t| t.get("tool")?.get("rbuild")?.as_table().cloned());
        let rbuild = read(&rbuild_path)?;
        let settings = match (rbuild, tool) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Both {
                    rbuild_toml: rbuild_path,
                    pyproject: pyproject_path,
                });
            }
            (Some(t), None) => {
                // The same `[tool.rbuild]` table as pyproject's is accepted in rbuild.toml too.
                match t
                    .get("tool")
                    .and_then(|x| x.get("rbuild"))
                    .and_then(|x| x.as_table())
                {
                    Some(inner)
                        if t.len() == 1 && t["tool"].as_table().is_some_and(|x| x.len() == 1) =>
                    {
                        Settings::from_table(
                            &format!("{} [tool.rbuild]", rbuild_path.display()),
                            inner,
                        )?
                    }
                    _ => Settings::from_table(&rbuild_path.display().to_string(), &t)?,
                }
            }
            (None, Some(t)) => {
                Settings::from_table(&format!("{} [tool.rbuild]", pyproject_path.display()), &t)?
            }
            (None, None) => Settings::default(),
        };
        Ok((settings, name))
    }

    /// Reads `RBUILD_*` variables through `get` (the process environment in production).
    pub fn from_env(
        get: impl Fn(&str) -> Option<String>,
        project: Option<&str>,
    ) -> Result<Settings, ConfigError> {
        let var = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let list = |k: &str| {
            var(k).map(|v| {
                v.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>()
            })
        };
        let json_list = |k: &str| -> Result<Option<Vec<String>>, ConfigError> {
            var(k)
                .map(|v| {
                    serde_json::from_str::<Vec<String>>(&v).map_err(|_| ConfigError::Type {
                        file: "environment".into(),
                        key: k.into(),
                        expected: "a JSON array of strings, e.g. [\"python3\",\"-m\",\"app\"]",
                    })
                })
                .transpose()
        };
        let kv = |k: &str| -> Result<Option<BTreeMap<String, String>>, ConfigError> {
            list(k)
                .map(|items| {
                    items
                        .into_iter()
                        .map(|i| {
                            i.split_once('=')
                                .map(|(a, b)| (a.to_string(), b.to_string()))
                                .ok_or(ConfigError::Type {
                                    file: "environment".into(),
                                    key: k.into(),
                                    expected: "comma-separated KEY=VALUE pairs",
                                })
                        })
                        .collect()
                })
                .transpose()
        };
        let boolean = |k: &str| -> Result<Option<bool>, ConfigError> {
            var(k)
                .map(|v| {
                    parse_bool(&v).ok_or_else(|| ConfigError::Type {
                        file: "environment".into(),
                        key: k.into(),
                        expected: "true or false (1 or 0)",
                    })
                })
                .transpose()
        };
        let to = list("RBUILD_TO").map(|refs| {
            refs.into_iter()
                .map(|r| complete_repo(&r, project))
                .collect()
        });
        Ok(Settings {
            base: var("RBUILD_BASE"),
            to,
            platforms: list("RBUILD_PLATFORMS"),
            lock: var("RBUILD_LOCK"),
            extras: list("RBUILD_EXTRAS"),
            groups: list("RBUILD_GROUPS"),
            app_dir: var("RBUILD_APP_DIR"),
            entrypoint: json_list("RBUILD_ENTRYPOINT")?,
            cmd: json_list("RBUILD_CMD")?,
            env: kv("RBUILD_ENV")?,
            user: var("RBUILD_USER"),
            ports: list("RBUILD_PORTS"),
            labels: kv("RBUILD_LABELS")?,
            annotations: kv("RBUILD_ANNOTATIONS")?,
            recipe: var("RBUILD_RECIPE"),
            app: var("RBUILD_APP"),
            healthcheck: var("RBUILD_HEALTHCHECK")
                .map(|v| {
                    healthcheck_from_text(&v).ok_or(ConfigError::Type {
                        file: "environment".into(),
                        key: "RBUILD_HEALTHCHECK".into(),
                        expected: "false, true or a path such as /healthz",
                    })
                })
                .transpose()?,
            index_url: var("RBUILD_INDEX_URL"),
            extra_index_url: list("RBUILD_EXTRA_INDEX_URL"),
            find_links: list("RBUILD_FIND_LINKS"),
            compression: var("RBUILD_COMPRESSION"),
            format: var("RBUILD_FORMAT"),
            compile_bytecode: boolean("RBUILD_COMPILE_BYTECODE")?,
            default_ignores: boolean("RBUILD_DEFAULT_IGNORES")?,
            deps_layers: var("RBUILD_DEPS_LAYERS")
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| ConfigError::Type {
                        file: "environment".into(),
                        key: "RBUILD_DEPS_LAYERS".into(),
                        expected: "a number of layers, e.g. 8",
                    })
                })
                .transpose()?,
        })
    }
}

/// `--to`/`RBUILD_TO` semantics, ko's `KO_DOCKER_REPO` rule: a reference with a tag or digest is
/// kept; anything else is a repository (or, alone, a registry host: `localhost:5000`,
/// `registry.example`) to which the project's name and `latest` are appended
/// (`registry.example/team` → `registry.example/team/myapp:latest`). Without a project name the
/// reference is only given `latest`; [`repo_name`] gives the name rbuild uses.
pub fn complete_repo(r: &str, project: Option<&str>) -> String {
    let r = r.trim_end_matches('/');
    let (first, rest) = match r.split_once('/') {
        Some((f, rest)) => (f, Some(rest)),
        None => (r, None),
    };
    let host_only =
        rest.is_none() && (first.contains('.') || first.contains(':') || first == "localhost");
    let last = r.rsplit('/').next().unwrap_or(r);
    if !host_only && (r.contains('@') || last.contains(':')) {
        return r.to_string();
    }
    match project {
        Some(p) => format!("{r}/{}:latest", normalize_repo_name(p)),
        None => format!("{r}:latest"),
    }
}

/// A project or directory name as a repository path component: lowercase, runs of characters
/// other than `[a-z0-9]` become one `-`, trimmed of `-` (`My_App` → `my-app`).
pub fn normalize_repo_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let t = out.trim_matches('-');
    if t.is_empty() {
        "app".to_string()
    } else {
        t.to_string()
    }
}

/// The name appended to a `--to`/`RBUILD_TO` repository: the project's name, else the context
/// directory's name (resolved, so `.` works), normalised.
pub fn repo_name(context: &Path, project: Option<&str>) -> String {
    if let Some(p) = project {
        return normalize_repo_name(p);
    }
    let dir = std::fs::canonicalize(context).unwrap_or_else(|_| context.to_path_buf());
    normalize_repo_name(
        &dir.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
    )
}

/// Leaks a message built once per failed run (an error path), so [`ConfigError::Type`] can keep
/// its `&'static str` field.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn each_level_overrides_the_one_below() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[project]\nname = \"My_App\"\n[tool.rbuild]\nbase = \"file/base\"\nports = [8000]\nuser = \"2000\"\ncompression = \"zstd\"\n",
        )
        .unwrap();
        let (file, name) = Settings::from_project_dir(dir.path()).unwrap();
        assert_eq!(name.as_deref(), Some("My_App"));
        let recipe = Settings {
            user: Some("1001:1001".into()),
            app_dir: Some("/app".into()),
            ports: Some(vec!["9000".into()]),
            ..Default::default()
        };
        let envs = Settings::from_env(
            env(&[
                ("RBUILD_BASE", "env/base"),
                ("RBUILD_TO", "reg.example/team"),
            ]),
            name.as_deref(),
        )
        .unwrap();
        let flags = Settings {
            base: Some("flag/base".into()),
            ..Default::default()
        };
        let merged = Settings::default()
            .overlay(recipe.clone())
            .overlay(file.clone())
            .overlay(envs.clone())
            .overlay(flags.clone());
        assert_eq!(merged.base.as_deref(), Some("flag/base"), "flags beat env");
        let merged = Settings::default()
            .overlay(recipe.clone())
            .overlay(file.clone())
            .overlay(envs.clone());
        assert_eq!(
            merged.base.as_deref(),
            Some("env/base"),
            "env beats the file"
        );
        assert_eq!(
            merged.to.as_ref().unwrap(),
            &vec!["reg.example/team/my-app:latest".to_string()]
        );
        assert_eq!(
            merged.user.as_deref(),
            Some("2000"),
            "the file beats the recipe"
        );
        assert_eq!(merged.ports.as_ref().unwrap(), &vec!["8000".to_string()]);
        assert_eq!(
            merged.app_dir.as_deref(),
            Some("/app"),
            "the recipe beats defaults"
        );
        assert_eq!(merged.compression.as_deref(), Some("zstd"));
    }

    #[test]
    fn unknown_keys_suggest_and_both_files_conflict() {
        let t: toml::Table = "entrypiont = [\"x\"]".parse().unwrap();
        let err = Settings::from_table("rbuild.toml", &t)
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean \"entrypoint\""), "{err}");
        let t: toml::Table = "index_url = \"x\"".parse().unwrap();
        assert!(
            Settings::from_table("rbuild.toml", &t)
                .unwrap_err()
                .to_string()
                .contains("\"index-url\"")
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pyproject.toml"),
            "[tool.rbuild]\nbase = \"a\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("rbuild.toml"), "base = \"b\"\n").unwrap();
        assert!(matches!(
            Settings::from_project_dir(dir.path()),
            Err(ConfigError::Both { .. })
        ));
        assert_eq!(
            complete_repo("127.0.0.1:5000/x:v1", Some("p")),
            "127.0.0.1:5000/x:v1"
        );
        assert_eq!(
            complete_repo("127.0.0.1:5000/team", Some("p")),
            "127.0.0.1:5000/team/p:latest"
        );
    }

    #[test]
    fn to_follows_kos_rule() {
        // A registry host alone is never a Docker Hub repository.
        assert_eq!(
            complete_repo("localhost:5000", Some("app")),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            complete_repo("registry.example", Some("app")),
            "registry.example/app:latest"
        );
        // The same for --to and RBUILD_TO: a repository gets the project appended.
        assert_eq!(complete_repo("a/b", Some("proj")), "a/b/proj:latest");
        assert_eq!(complete_repo("a/b:v1", Some("proj")), "a/b:v1");
        assert_eq!(
            complete_repo("h:5000/a/b@sha256:00", Some("p")),
            "h:5000/a/b@sha256:00"
        );
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path().join("My Service_2");
        std::fs::create_dir(&ctx).unwrap();
        assert_eq!(repo_name(&ctx, None), "my-service-2");
        assert_eq!(repo_name(&ctx, Some("Real_Name")), "real-name");
    }

    #[test]
    fn maps_merge_per_key_across_levels() {
        let map = |kv: &[(&str, &str)]| {
            Some(
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        let file = Settings {
            env: map(&[("A", "file"), ("B", "file")]),
            labels: map(&[("team", "core")]),
            ..Default::default()
        };
        let flags = Settings {
            env: map(&[("B", "flag"), ("C", "flag")]),
            ..Default::default()
        };
        let merged = file.overlay(flags);
        assert_eq!(
            merged.env,
            map(&[("A", "file"), ("B", "flag"), ("C", "flag")])
        );
        assert_eq!(merged.labels, map(&[("team", "core")]));
    }

    #[test]
    fn rbuild_toml_takes_the_tool_rbuild_table_and_scalars_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rbuild.toml"),
            "[tool.rbuild]\nuser = \"2000\"\n",
        )
        .unwrap();
        let (s, _) = Settings::from_project_dir(dir.path()).unwrap();
        assert_eq!(s.user.as_deref(), Some("2000"));
        let t: toml::Table = "ports = 9000".parse().unwrap();
        let err = Settings::from_table("rbuild.toml", &t)
            .unwrap_err()
            .to_string();
        assert!(err.contains("rbuild.toml: ports must be a list"), "{err}");
        assert!(err.contains("ports = [9000]"), "{err}");
        let t: toml::Table = "to = \"reg/x:v1\"".parse().unwrap();
        let err = Settings::from_table("pyproject.toml [tool.rbuild]", &t)
            .unwrap_err()
            .to_string();
        assert!(err.contains("to must be a list of strings"), "{err}");
    }
}
