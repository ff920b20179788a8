//! `rbuild build [CONTEXT]` and `rbuild plan [CONTEXT]`: build an image for a Python project, or show
//! what would go in it.
//!
//! Settings come from, highest first: these flags, `RBUILD_*` environment variables, `[tool.rbuild]`
//! in `pyproject.toml` or `rbuild.toml`, the recipe, defaults (see `rbuild::config`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use rbuild::image::{BuiltImage, LayerKind};
use rbuild::publish::{parse_output, publish};
use rbuild::{
    BaseRef, BuildRequest, Builder, ConfigSources, IndexClient, IndexOptions, Platform,
    RequestFlags, ResolvedRequest, Settings, Sink,
};
use serde_json::json;

use super::decisions::target_line;

use crate::cli::GlobalArgs;
use crate::{output, registry};

/// A JSON array of strings given as one flag value (`--entrypoint '["python3","-m","app"]'`).
///
/// A newtype, because clap reads `Option<Vec<String>>` as "a list of flag values" and then fails
/// at runtime when the parser returns the whole list from one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonList(pub Vec<String>);

fn json_array(s: &str) -> Result<JsonList, String> {
    serde_json::from_str::<Vec<String>>(s)
        .map(JsonList)
        .map_err(|_| {
            format!(
                "expected a JSON array of strings, e.g. '[\"python3\",\"-m\",\"app\"]', got {s:?}"
            )
        })
}

/// `--platform`: `all`, or a comma-separated list of os/arch[/variant] (checked here, so a typo is
/// a usage error).
fn parse_platforms(s: &str) -> Result<Vec<String>, String> {
    if s.trim() == "all" {
        return Ok(vec!["all".to_string()]);
    }
    let list = Platform::parse_list(s).map_err(|e| e.to_string())?;
    if list.is_empty() {
        return Err("expected os/arch[/variant] or all, e.g. linux/amd64,linux/arm64".to_string());
    }
    Ok(list.iter().map(|p| p.to_string()).collect())
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// Flags shared by `build` and `plan`.
#[derive(Debug, Args, Clone, Default)]
pub struct ResolveArgs {
    /// The project directory (default: the current directory).
    #[arg(value_name = "CONTEXT")]
    pub context: Option<PathBuf>,
    /// Base image (default python:3.12-slim from Docker Hub, or `scratch`). [env: RBUILD_BASE]
    #[arg(long, value_name = "REF", help_heading = "Base and platforms")]
    pub base: Option<String>,
    /// Platform(s) as os/arch[/variant], comma-separated or repeated (e.g.
    /// linux/amd64,linux/arm64); `all` for every platform of the base index (default: this
    /// machine's). [env: RBUILD_PLATFORMS]
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]|all", value_parser = parse_platforms, help_heading = "Base and platforms")]
    pub platform: Vec<Vec<String>>,
    /// Build every platform of the base index (the same as --platform all).
    #[arg(long = "all-platforms", help_heading = "Base and platforms")]
    pub all_platforms: bool,
    /// The lockfile (default: uv.lock, pylock.toml, poetry.lock or requirements.txt in CONTEXT). [env: RBUILD_LOCK]
    #[arg(long, value_name = "FILE", help_heading = "Dependencies")]
    pub lock: Option<PathBuf>,
    /// Install this extra of the project (repeatable). [env: RBUILD_EXTRAS]
    #[arg(long = "extra", value_name = "NAME", help_heading = "Dependencies")]
    pub extras: Vec<String>,
    /// Install this dependency group (repeatable). [env: RBUILD_GROUPS]
    #[arg(long = "group", value_name = "NAME", help_heading = "Dependencies")]
    pub groups: Vec<String>,
    /// The package index (default https://pypi.org/simple). [env: RBUILD_INDEX_URL]
    #[arg(long = "index-url", value_name = "URL", help_heading = "Dependencies")]
    pub index_url: Option<String>,
    /// Another index, searched after --index-url (repeatable). [env: RBUILD_EXTRA_INDEX_URL]
    #[arg(
        long = "extra-index-url",
        value_name = "URL",
        help_heading = "Dependencies"
    )]
    pub extra_index_url: Vec<String>,
    /// A directory of wheels searched before any index (repeatable). [env: RBUILD_FIND_LINKS]
    #[arg(long = "find-links", value_name = "DIR", help_heading = "Dependencies")]
    pub find_links: Vec<String>,
    /// Use only the content store and --find-links: no index requests.
    #[arg(long, help_heading = "Dependencies")]
    pub offline: bool,
    /// Refuse lock entries without a sha256.
    #[arg(long = "require-hashes", help_heading = "Dependencies")]
    pub require_hashes: bool,
    /// Python version of the base (X.Y or X.Y.Z), instead of detecting it.
    #[arg(
        long = "python-version",
        value_name = "X.Y",
        help_heading = "Target overrides"
    )]
    pub python_version: Option<String>,
    /// C library of the base (glibc-2.36, musl-1.2), instead of detecting it.
    #[arg(long, value_name = "FAMILY-X.Y", help_heading = "Target overrides")]
    pub libc: Option<String>,
    /// Site-packages directory in the image, instead of detecting it.
    #[arg(
        long = "site-packages",
        value_name = "DIR",
        help_heading = "Target overrides"
    )]
    pub site_packages: Option<String>,
    /// Interpreter path in the image, instead of detecting it.
    #[arg(long, value_name = "PATH", help_heading = "Target overrides")]
    pub interpreter: Option<String>,
    /// A PEP 508 marker value the image cannot tell (platform_release, platform_version).
    #[arg(long = "marker-env", value_name = "KEY=VALUE", value_parser = key_value, help_heading = "Target overrides")]
    pub marker_env: Vec<(String, String)>,
    /// How to reach registries.
    #[command(flatten)]
    pub network: crate::cli::NetworkArgs,
}

/// Arguments of `rbuild build`.
#[derive(Debug, Args, Clone)]
pub struct BuildArgs {
    /// Push to this reference (repeatable: several tags, one upload). A repository without a
    /// tag gets the project's name and `latest` (ko's rule: `--to ghcr.io/me` pushes
    /// ghcr.io/me/<project>:latest); `host:port` alone is a registry. [env: RBUILD_TO]
    #[arg(
        long,
        short = 't',
        visible_alias = "tag",
        value_name = "REF",
        help_heading = "Destination",
        display_order = 0
    )]
    pub to: Vec<String>,
    /// Also write oci:DIR[:TAG] or docker-archive:FILE[:NAME:TAG] (repeatable).
    #[arg(long, value_name = "SINK", help_heading = "Destination")]
    pub output: Vec<String>,
    /// Build into the content store only and print the digest (no --to or --output needed).
    #[arg(long = "no-push", help_heading = "Destination", conflicts_with = "to")]
    pub no_push: bool,
    /// Docker's habit: rbuild always pushes to every --to, so --push is accepted and does nothing.
    #[arg(long, hide = true)]
    pub push: bool,
    /// What to resolve.
    #[command(flatten)]
    pub resolve: ResolveArgs,
    /// Credentials for the registry.
    #[command(flatten)]
    pub creds: crate::cli::CredsArgs,
    /// Where the app goes in the image (default /app; also the WorkingDir). [env: RBUILD_APP_DIR]
    #[arg(long = "app-dir", value_name = "DIR", help_heading = "Image settings")]
    pub app_dir: Option<String>,
    /// Entrypoint as a JSON array, as in a Dockerfile's exec form. [env: RBUILD_ENTRYPOINT]
    #[arg(long, value_name = "JSON", value_parser = json_array, help_heading = "Image settings")]
    pub entrypoint: Option<JsonList>,
    /// Cmd as a JSON array. [env: RBUILD_CMD]
    #[arg(long, value_name = "JSON", value_parser = json_array, help_heading = "Image settings")]
    pub cmd: Option<JsonList>,
    /// Environment variable (repeatable). [env: RBUILD_ENV]
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value, help_heading = "Image settings")]
    pub env: Vec<(String, String)>,
    /// Run as UID[:GID] (default 1001:1001, a user named app). [env: RBUILD_USER]
    #[arg(long, value_name = "UID[:GID]", help_heading = "Image settings")]
    pub user: Option<String>,
    /// The port the app listens on (the first TCP one: the recipe's server binds it, PORT is set
    /// and it is exposed); repeat to expose more. [env: RBUILD_PORTS]
    #[arg(long, value_name = "PORT[/PROTO]", help_heading = "Image settings")]
    pub port: Vec<String>,
    /// The app object the recipe serves: MODULE:OBJECT, or MODULE:FACTORY() for an app
    /// factory. Default: detected (`app = FastAPI()`, `def create_app()`). [env: RBUILD_APP]
    #[arg(long, value_name = "MODULE:OBJECT", help_heading = "Image settings")]
    pub app: Option<String>,
    /// Add a health check that requests PATH on the app's port. Default: one only when the app
    /// declares a health route (/health, /healthz, ...). [env: RBUILD_HEALTHCHECK]
    #[arg(long, value_name = "PATH", value_parser = parse_healthcheck, help_heading = "Image settings", conflicts_with = "no_healthcheck")]
    pub healthcheck: Option<rbuild::recipe::HealthcheckSetting>,
    /// No health check, even when the app declares a health route.
    #[arg(long = "no-healthcheck", help_heading = "Image settings")]
    pub no_healthcheck: bool,
    /// Image label (repeatable). [env: RBUILD_LABELS]
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value, help_heading = "Image settings")]
    pub label: Vec<(String, String)>,
    /// Manifest annotation (repeatable). [env: RBUILD_ANNOTATIONS]
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value, help_heading = "Image settings")]
    pub annotation: Vec<(String, String)>,
    /// The recipe (see `rbuild recipes`); `none` for none. Default: detected. [env: RBUILD_RECIPE]
    #[arg(long, value_name = "NAME", help_heading = "Image settings")]
    pub recipe: Option<String>,
    /// Layer compression: gzip (default) or zstd. [env: RBUILD_COMPRESSION]
    #[arg(long, value_name = "gzip|zstd", help_heading = "Caching and outputs")]
    pub compression: Option<String>,
    /// Manifest format: oci (default) or docker. [env: RBUILD_FORMAT]
    #[arg(long, value_name = "oci|docker", help_heading = "Caching and outputs")]
    pub format: Option<String>,
    /// Reuse layers from this image (the first --to is always looked at).
    #[arg(
        long = "cache-from",
        value_name = "REF",
        help_heading = "Caching and outputs"
    )]
    pub cache_from: Vec<String>,
    /// Make two wheels writing different bytes to one path an error.
    #[arg(long, help_heading = "Dependencies")]
    pub strict: bool,
    /// Leave out platforms whose wheels are missing instead of failing.
    #[arg(
        long = "skip-unsupported-platforms",
        help_heading = "Base and platforms"
    )]
    pub skip_unsupported_platforms: bool,
    /// Build even when the lock lacks requirements of the packages it installs (warns instead).
    #[arg(long = "allow-incomplete-lock", help_heading = "Dependencies")]
    pub allow_incomplete_lock: bool,
    /// Compile bytecode (.pyc) for the dependency and app layers with the base's own Python
    /// (the default; deterministic, PEP 552 unchecked-hash). [env: RBUILD_COMPILE_BYTECODE]
    #[arg(
        long = "compile-bytecode",
        overrides_with = "no_compile_bytecode",
        help_heading = "Image settings"
    )]
    pub compile_bytecode: bool,
    /// Without a .dockerignore, copy everything (no built-in Python ignore list, no .gitignore).
    /// [env: RBUILD_DEFAULT_IGNORES=false]
    #[arg(long = "no-default-ignores", help_heading = "Image settings")]
    pub no_default_ignores: bool,
    /// Ship no bytecode: every container start compiles what it imports.
    #[arg(
        long = "no-compile-bytecode",
        overrides_with = "compile_bytecode",
        help_heading = "Image settings"
    )]
    pub no_compile_bytecode: bool,
    /// The most dependency layers per image: each heavy wheel (1 MiB or more) gets its own,
    /// largest first, the rest share a few groups by name, so one changed pin rebuilds and
    /// uploads one small layer. 1 puts every dependency in one layer. [default: 8]
    /// [env: RBUILD_DEPS_LAYERS]
    #[arg(long = "deps-layers", value_name = "N", help_heading = "Dependencies")]
    pub deps_layers: Option<usize>,
    /// Attach an SBOM to every platform image: spdx (SPDX 2.3 JSON, the default), cyclonedx
    /// (CycloneDX 1.6 JSON) or none.
    #[arg(
        long,
        value_name = "spdx|cyclonedx|none",
        env = "RBUILD_SBOM",
        hide_env_values = true,
        help_heading = "Supply chain"
    )]
    pub sbom: Option<String>,
    /// Attach SLSA v1 provenance (an in-toto statement) to every platform image (the default).
    #[arg(long, overrides_with = "no_provenance", help_heading = "Supply chain")]
    pub provenance: bool,
    /// Attach no provenance.
    #[arg(
        long = "no-provenance",
        overrides_with = "provenance",
        help_heading = "Supply chain"
    )]
    pub no_provenance: bool,
    /// Sign the pushed image with this ECDSA P-256 key (cosign's format: `cosign
    /// generate-key-pair`, password in COSIGN_PASSWORD; or a PKCS#8 PEM). Keyless signing is
    /// not supported.
    #[arg(
        long = "sign-key",
        value_name = "FILE",
        env = "RBUILD_SIGN_KEY",
        hide_env_values = true,
        help_heading = "Supply chain"
    )]
    pub sign_key: Option<std::path::PathBuf>,
}

impl BuildArgs {
    /// The attachments asked for: an SBOM (spdx unless `--sbom none`), provenance (unless
    /// `--no-provenance`) and a signature for the first registry destination.
    fn supply_chain(
        &self,
        pushed: &[rbuild_registry::Reference],
    ) -> anyhow::Result<rbuild::SupplyChain> {
        let sbom = match self.sbom.as_deref().unwrap_or("spdx") {
            "none" => None,
            f => Some(f.parse::<rbuild::SbomFormat>().map_err(|e| {
                crate::exit::usage(format!("--sbom {f}: {e}"), &["use spdx, cyclonedx or none"])
            })?),
        };
        let sign = match &self.sign_key {
            None => None,
            Some(path) => {
                let Some(first) = pushed.first() else {
                    return Err(crate::exit::usage(
                        "--sign-key signs what is pushed, but nothing is pushed".to_string(),
                        &["give --to REF (the signature goes to REF's repository)"],
                    ));
                };
                let key = rbuild::SigningKey::from_file(path)?;
                Some((key, first.name()))
            }
        };
        Ok(rbuild::SupplyChain {
            sbom,
            provenance: !self.no_provenance,
            sign,
        })
    }
}

/// Arguments of `rbuild plan`.
#[derive(Debug, Args, Clone)]
pub struct PlanArgs {
    /// What to resolve.
    #[command(flatten)]
    pub resolve: ResolveArgs,
}

/// The flags as the highest level of the request (the library merges the lower ones).
/// `--healthcheck PATH` (or `true`/`false`).
fn parse_healthcheck(v: &str) -> Result<rbuild::recipe::HealthcheckSetting, String> {
    rbuild::config::healthcheck_from_text(v).ok_or_else(|| {
        "expected a path such as /healthz (letters, digits and /_.~-?=&), true or false".into()
    })
}

fn flags_from_args(r: &ResolveArgs, b: Option<&BuildArgs>) -> RequestFlags {
    let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let map = |v: &Vec<(String, String)>| {
        (!v.is_empty()).then(|| v.iter().cloned().collect::<BTreeMap<_, _>>())
    };
    let mut s = Settings::default();
    s.base = r.base.clone();
    s.platforms = {
        let mut p: Vec<String> = Vec::new();
        for x in r.platform.iter().flatten() {
            if !p.contains(x) {
                p.push(x.clone());
            }
        }
        if r.all_platforms || p.iter().any(|x| x == "all") {
            Some(vec!["all".into()])
        } else {
            (!p.is_empty()).then_some(p)
        }
    };
    s.lock = r.lock.as_ref().map(|p| p.display().to_string());
    s.extras = list(&r.extras);
    s.groups = list(&r.groups);
    s.index_url = r.index_url.clone();
    s.extra_index_url = list(&r.extra_index_url);
    s.find_links = list(&r.find_links);
    let mut f = RequestFlags::default();
    if let Some(b) = b {
        s.to = list(&b.to);
        s.app_dir = b.app_dir.clone();
        s.entrypoint = b.entrypoint.clone().map(|j| j.0);
        s.cmd = b.cmd.clone().map(|j| j.0);
        s.env = map(&b.env);
        s.user = b.user.clone();
        s.ports = list(&b.port);
        s.labels = map(&b.label);
        s.annotations = map(&b.annotation);
        s.recipe = b.recipe.clone();
        s.app = b.app.clone();
        s.healthcheck = if b.no_healthcheck {
            Some(rbuild::recipe::HealthcheckSetting::Off)
        } else {
            b.healthcheck.clone()
        };
        s.compression = b.compression.clone();
        s.format = b.format.clone();
        s.compile_bytecode = match (b.compile_bytecode, b.no_compile_bytecode) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        };
        if b.no_default_ignores {
            s.default_ignores = Some(false);
        }
        s.deps_layers = b.deps_layers;
        f.cache_from = b.cache_from.clone();
        f.strict = b.strict;
        f.skip_unsupported_platforms = b.skip_unsupported_platforms;
        f.allow_incomplete_lock = b.allow_incomplete_lock;
    }
    f.settings = s;
    f.python_version = r.python_version.clone();
    f.libc = r.libc.clone();
    f.site_packages = r.site_packages.clone();
    f.interpreter = r.interpreter.clone();
    f.marker_env = r.marker_env.iter().cloned().collect();
    f.require_hashes = r.require_hashes;
    f.offline = r.offline;
    f
}

struct Prepared {
    resolved: ResolvedRequest,
    builder: Builder,
}

/// The request from the flags, the environment and the project (merged and checked by the
/// library before anything is downloaded), and a builder with the clients it needs.
async fn prepare(
    global: &GlobalArgs,
    r: &ResolveArgs,
    b: Option<&BuildArgs>,
) -> anyhow::Result<Prepared> {
    let context = r.context.clone().unwrap_or_else(|| PathBuf::from("."));
    if !context.is_dir() {
        bail!(
            "the build context {} is not a directory; run rbuild in your project directory or pass it as CONTEXT",
            context.display()
        );
    }
    let mut resolved =
        BuildRequest::from_flags(context, flags_from_args(r, b), ConfigSources::process())?;
    if let Some(b) = b
        && resolved.to.is_empty()
        && b.output.is_empty()
        && !b.no_push
    {
        return Err(crate::exit::usage(
            "no destination: rbuild build needs to know where the image goes",
            &[
                "pass --to REF (or -t REF), e.g. --to ghcr.io/me/app:1.0",
                "or set RBUILD_TO (a repository: the project's name is appended, as ko does)",
                "or set `to = [\"REF\"]` in [tool.rbuild]; --output oci:DIR writes a directory, --no-push only builds and prints the digest",
            ],
        ));
    }
    // `--creds` / RBUILD_REGISTRY_* apply to the registry pushed to (the first --to), else the base's.
    let target_ref = match resolved.to.first() {
        Some(t) => Some(t.clone()),
        None => match &resolved.request.base {
            BaseRef::Image(r) => Some(r.clone()),
            BaseRef::Scratch => None,
        },
    };
    let mut opts = match &target_ref {
        Some(t) => {
            registry::client_options_for(global, registry::explicit_credentials(global, t, &[])?)
        }
        None => registry::client_options(global),
    };
    let store = registry::store()?;
    opts.host_memory = Some(store.clone());
    let client = registry::client(global, opts)?;
    resolved.expand_all_platforms(&client, &store).await?;
    let index_opts = resolved.index_options(IndexOptions {
        extra_ca_files: global.ca_file.clone(),
        timeouts: global.timeouts(),
        ..Default::default()
    });
    let index = IndexClient::new(index_opts)?;
    let builder = Builder::new(client, index, store).with_progress(Arc::new(
        crate::bars::BuildRenderer(crate::bars::renderer()),
    ));
    Ok(Prepared { resolved, builder })
}

fn image_json(image: &BuiltImage, references: &[String]) -> serde_json::Value {
    json!({
        "digest": image.digest().to_string(),
        "references": references,
        "platforms": image.images.iter().map(|p| json!({
            "platform": p.platform.to_string(),
            "digest": p.manifest.digest.to_string(),
            "config": rbuild_oci::Digest::of(&p.config_bytes).to_string(),
            "layers": p.layers.iter().map(|l| json!({
                "digest": l.descriptor.digest.to_string(),
                "diff_id": l.diff_id.to_string(),
                "size": l.descriptor.size,
                "media_type": l.descriptor.media_type.to_string(),
                "kind": l.kind,
                "status": l.status,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Says which registry (base or target) and which operation when `e` is a registry error.
fn registry_context(e: anyhow::Error, what: &str) -> anyhow::Error {
    if crate::exit::registry_error(&e).is_some() {
        e.context(what.to_string())
    } else {
        e
    }
}

/// What stdout gets for a build: `REF@digest` for each reference pushed, else the digest.
pub fn stdout_lines(
    pushed: &[rbuild_registry::Reference],
    digest: &rbuild_oci::Digest,
) -> Vec<String> {
    if pushed.is_empty() {
        return vec![digest.to_string()];
    }
    pushed
        .iter()
        .map(|r| {
            let r = r.to_string();
            // A reference given by digest already names the image.
            match r.split_once('@') {
                Some((name, _)) => format!("{name}@{digest}"),
                None => format!("{r}@{digest}"),
            }
        })
        .collect()
}

fn layer_word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Builds the image and writes it to every sink (one attempt).
async fn build_and_publish(
    p: &Prepared,
    sinks: &[Sink],
    pushed: &[rbuild_registry::Reference],
    base_what: &str,
    supply: &rbuild::SupplyChain,
) -> anyhow::Result<(rbuild::BuildOutput, rbuild::publish::PublishReport, Instant)> {
    let mut out = p
        .builder
        .build(&p.resolved.request)
        .await
        .map_err(|e| registry_context(anyhow::Error::new(e), base_what))
        .context("build failed")?;
    if !sinks.is_empty() {
        p.builder
            .attach(&p.resolved.request, &mut out, supply)
            .await
            .map_err(|e| registry_context(anyhow::Error::new(e), base_what))
            .context("attaching the SBOM, provenance and signature")?;
    }
    let t1 = Instant::now();
    let report = publish(p.builder.client(), &out.image, sinks, p.builder.store())
        .await
        .map_err(|e| {
            let targets: Vec<String> = pushed.iter().map(|r| r.to_string()).collect();
            let host = pushed
                .first()
                .map(|r| r.registry().to_string())
                .unwrap_or_default();
            registry_context(
                anyhow::Error::new(e),
                &format!("target registry {host}: pushing {}", targets.join(", ")),
            )
        })
        .context("publishing the image")?;
    Ok((out, report, t1))
}

/// Runs `rbuild build`.
///
/// stdout: `REF@digest` for each reference pushed (or the digest when nothing was pushed), the
/// same with `-q` (which only silences stderr); `--json`: one document with `schema` and
/// `warnings`.
pub async fn run(global: &GlobalArgs, args: BuildArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut sinks: Vec<Sink> = Vec::new();
    for o in &args.output {
        sinks.push(parse_output(o).map_err(|e| {
            crate::exit::usage(
                format!("--output {o}: {e}"),
                &["write oci:DIR[:TAG] or docker-archive:FILE[:NAME:TAG]"],
            )
        })?);
    }
    if args.push && global.quiet == 0 {
        crate::bars::println(
            "note: --push is not needed: rbuild pushes to every --to (-t) it is given",
        );
    }
    let mut p = prepare(global, &args.resolve, Some(&args)).await?;
    // --no-push: nothing goes to a registry (RBUILD_TO and `to` in the project are left alone).
    let pushed: Vec<rbuild_registry::Reference> = if args.no_push {
        Vec::new()
    } else {
        p.resolved.to.clone()
    };
    let mut all: Vec<Sink> = pushed.iter().cloned().map(Sink::Registry).collect();
    all.extend(sinks);
    let sinks = all;
    // A docker-archive holds one platform: refuse before building.
    p.resolved.request.validate_sinks(&sinks)?;
    let request = &p.resolved.request;
    let base_what = match &request.base {
        BaseRef::Image(r) => format!("base registry {}: pulling {r}", r.registry()),
        BaseRef::Scratch => "base".to_string(),
    };
    let supply = args.supply_chain(&pushed)?;
    // The build pushes to its first --cache-from (by default the first --to): it may open
    // upload sessions there while it builds, for the new blobs and the attachments' (the SBOM,
    // the provenance, their empty config; a signature's layer and config).
    if p.resolved
        .request
        .cache_from
        .first()
        .is_some_and(|c| pushed.contains(c))
    {
        p.builder.set_attachment_blobs(supply.new_blobs());
    }
    // A damaged content-store entry found on the way is removed (and said so); when the build or
    // the publish failed because of one, they run once more and fetch or build it anew.
    let mut attempt = 0;
    let (out, report, t1) = loop {
        attempt += 1;
        let result = build_and_publish(&p, &sinks, &pushed, &base_what, &supply).await;
        let repairs = p.builder.store().take_repairs();
        for r in &repairs {
            crate::bars::warn(r);
        }
        match result {
            Err(e)
                if attempt == 1
                    && (!repairs.is_empty()
                        || e.chain().any(rbuild_oci::StoreError::is_repaired)) =>
            {
                crate::bars::warn(&format!(
                    "building again after repairing the content store {} (the first attempt failed: {})",
                    p.builder.store().root().display(),
                    crate::exit::one_line(&e)
                ));
            }
            r => break r?,
        }
    };
    let chatty = global.quiet == 0 && !global.json;
    if !sinks.is_empty() && chatty {
        crate::bars::println(&format!(
            "{} {}, {} mounted, {} already there ({:.2} s)",
            crate::style::bold("[all] publish "),
            rbuild::progress::count(report.uploaded, "blob uploaded", "blobs uploaded"),
            report.mounted,
            report.existing,
            t1.elapsed().as_secs_f64()
        ));
    }
    for (plat, why) in &out.skipped {
        crate::bars::warn(&format!(
            "{plat} skipped, left out of the index: {}",
            why.replace('\n', " ")
        ));
    }
    let digest = out.image.digest();
    let lines = stdout_lines(&pushed, &digest);
    let decided: Vec<super::decisions::Decisions> = out
        .image
        .images
        .iter()
        .map(|img| {
            let platform = img.platform.to_string();
            let plan = out.plans.iter().find(|pl| pl.platform == platform);
            super::decisions::of_build(
                request,
                plan,
                &platform,
                &img.config_bytes,
                global.json || global.verbose > 0,
            )
        })
        .collect();
    if global.json {
        let mut v = image_json(&out.image, &report.references);
        v["pushed"] = json!(if pushed.is_empty() {
            Vec::new()
        } else {
            lines.clone()
        });
        v["skipped_platforms"] = json!(
            out.skipped
                .iter()
                .map(|(p, w)| json!({"platform": p, "reason": w}))
                .collect::<Vec<_>>()
        );
        v["blobs"] = json!({"uploaded": report.uploaded, "mounted": report.mounted, "existing": report.existing});
        v["decisions"] = json!(decided.iter().map(|d| d.json()).collect::<Vec<_>>());
        return output::json_doc(v);
    }
    if chatty {
        crate::bars::println(&format!(
            "{}\n{}",
            crate::style::bold("decisions"),
            super::decisions::text(&decided, global.verbose > 0).trim_end()
        ));
        for p in &out.image.images {
            let built: Vec<String> = p
                .layers
                .iter()
                .filter(|l| l.kind != LayerKind::Base)
                .map(|l| format!("{} {}", layer_word(&l.kind), layer_word(&l.status)))
                .collect();
            crate::bars::println(&format!(
                "{} {}",
                crate::style::bold(&format!("[{}] layers  ", p.platform)),
                built.join(", ")
            ));
        }
    }
    for l in &lines {
        output::lines(l)?;
    }
    if chatty {
        crate::bars::println(&format!(
            "built {} in {:.2} s",
            digest,
            t0.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// Runs `rbuild plan`.
///
/// One platform: its target and one line per wheel. Several: each platform's target, then one
/// table with a column per platform (the wheel tag chosen for each package), so platform wheels
/// (`pydantic-core`) stand out from the shared pure-Python ones. Packages without a fitting wheel
/// are shown in place, and then make the command fail, as the build would.
pub async fn run_plan(global: &GlobalArgs, args: PlanArgs) -> anyhow::Result<()> {
    let p = prepare(global, &args.resolve, None).await?;
    let plans = p
        .builder
        .plan_platforms(&p.resolved.request)
        .await
        .context("planning")?;
    if global.json {
        let targets: Vec<serde_json::Value> = plans
            .iter()
            .map(|pl| {
                let t = &pl.target;
                json!({
                    "platform": pl.platform,
                    "python_version": t.python_version.to_string(),
                    "python_full_version": t.python_full_version,
                    "interpreter": t.interpreter,
                    "scheme": t.scheme,
                    "libc": t.libc,
                    "tags": t.tags().to_strings(),
                    "installed": t.installed.iter().map(|d| json!({"name": d.name, "version": d.version})).collect::<Vec<_>>(),
                    "base_digest": pl.base_digest,
                    "lockfile": pl.lockfile,
                    "packages": pl.packages.iter().map(|w| json!({
                        "name": w.name, "version": w.version, "filename": w.filename,
                        "url": w.url, "sha256": w.sha256.map(|d| d.hex()), "size": w.size,
                    })).collect::<Vec<_>>(),
                    "sdists": pl.sdists.iter().map(|s| json!({
                        "name": s.name, "version": s.version, "filename": s.filename,
                        "url": s.url, "sha256": s.sha256.hex(), "size": s.size,
                    })).collect::<Vec<_>>(),
                    "missing": pl.missing.iter().map(|m| json!({
                        "name": m.name, "version": m.version, "reason": m.reason,
                    })).collect::<Vec<_>>(),
                    "decisions": match super::decisions::of_plan(&p.resolved.request, pl) {
                        Ok(d) => d.json(),
                        Err(e) => json!({"error": e}),
                    },
                })
            })
            .collect();
        output::json_doc(json!({ "targets": targets }))?;
    } else {
        if plans.len() == 1 {
            output::lines(&plan_text(&plans[0]))?;
        } else {
            output::lines(&plan_table(&plans))?;
        }
        let mut decided = Vec::new();
        for pl in &plans {
            match super::decisions::of_plan(&p.resolved.request, pl) {
                Ok(d) => decided.push(d),
                Err(e) => crate::bars::warn(&format!("{}: {e}", pl.platform)),
            }
        }
        if !decided.is_empty() {
            output::lines(&format!(
                "\nthe image would get:\n{}",
                super::decisions::text(&decided, global.verbose > 0)
            ))?;
        }
    }
    let failed: Vec<String> = plans
        .iter()
        .filter(|pl| !pl.missing.is_empty())
        .map(|pl| {
            rbuild::BuildError::NoWheels {
                platform: pl.platform.clone(),
                missing: pl.missing.clone(),
            }
            .to_string()
        })
        .collect();
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(())
}

/// One platform's plan as text.
fn plan_text(pl: &rbuild::PlatformPlan) -> String {
    let mut text = format!("{}: {}\n", pl.platform, target_line(pl));
    match &pl.lockfile {
        Some(l) => text.push_str(&format!(
            "  lockfile {}: {}\n",
            l.display(),
            rbuild::progress::count(
                pl.packages.len() + pl.sdists.len() + pl.missing.len(),
                "package",
                "packages",
            )
        )),
        None => text.push_str("  no lockfile: no dependency layer\n"),
    }
    for w in &pl.packages {
        text.push_str(&format!(
            "  {:<28} {:<14} {}\n",
            w.name, w.version, w.filename
        ));
    }
    for s in &pl.sdists {
        text.push_str(&format!(
            "  {:<28} {:<14} {} (source distribution: built with the base image's Python)\n",
            s.name, s.version, s.filename
        ));
    }
    for m in &pl.missing {
        text.push_str(&format!(
            "  {:<28} {:<14} NO WHEEL FITS\n",
            m.name, m.version
        ));
    }
    for n in &pl.notes {
        text.push_str(&format!("  note: {n}\n"));
    }
    text
}

/// Several platforms' plans side by side: one row per package, one column per platform holding the
/// tag of the chosen wheel (`cp311-cp311-manylinux_2_17_aarch64`, `py3-none-any`).
fn plan_table(plans: &[rbuild::PlatformPlan]) -> String {
    /// What one platform gets for one package.
    enum Cell {
        Wheel {
            version: String,
            tag: String,
            file: String,
        },
        Missing {
            version: String,
        },
        Sdist {
            version: String,
        },
    }
    let mut rows: BTreeMap<String, Vec<Option<Cell>>> = BTreeMap::new();
    for (i, pl) in plans.iter().enumerate() {
        let mut put = |name: &str, cell: Cell| {
            rows.entry(name.to_string())
                .or_insert_with(|| (0..plans.len()).map(|_| None).collect())[i] = Some(cell);
        };
        for w in &pl.packages {
            put(
                &w.name,
                Cell::Wheel {
                    version: w.version.clone(),
                    tag: w.tag.clone(),
                    file: w.filename.clone(),
                },
            );
        }
        for s in &pl.sdists {
            put(
                &s.name,
                Cell::Sdist {
                    version: s.version.clone(),
                },
            );
        }
        for m in &pl.missing {
            put(
                &m.name,
                Cell::Missing {
                    version: m.version.clone(),
                },
            );
        }
    }
    let width = plans.iter().map(|pl| pl.platform.len()).max().unwrap_or(0);
    let mut text = String::new();
    for pl in plans {
        text.push_str(&format!("{:<width$}  {}\n", pl.platform, target_line(pl)));
    }
    let lockfiles: Vec<String> = plans
        .iter()
        .map(|pl| {
            pl.lockfile
                .as_ref()
                .map(|l| l.display().to_string())
                .unwrap_or_default()
        })
        .collect();
    match lockfiles.first() {
        Some(l) if l.is_empty() => text.push_str("no lockfile: no dependency layer\n"),
        Some(l) if lockfiles.iter().all(|x| x == l) => text.push_str(&format!(
            "lockfile {l}: {}\n",
            rbuild::progress::count(rows.len(), "package", "packages")
        )),
        _ => text.push_str(&format!("lockfiles {}\n", lockfiles.join(", "))),
    }
    if rows.is_empty() {
        return text;
    }
    // Columns: package, version (when every platform has the same one), one per platform.
    let version_of = |c: &Option<Cell>| match c {
        Some(Cell::Wheel { version, .. })
        | Some(Cell::Missing { version })
        | Some(Cell::Sdist { version }) => Some(version.clone()),
        None => None,
    };
    let mut table: Vec<Vec<String>> = vec![{
        let mut h = vec!["PACKAGE".to_string(), "VERSION".to_string()];
        h.extend(plans.iter().map(|pl| pl.platform.clone()));
        h
    }];
    let mut shared = 0;
    for (name, cells) in &rows {
        let versions: Vec<Option<String>> = cells.iter().map(version_of).collect();
        let one_version = versions
            .iter()
            .flatten()
            .all(|v| Some(v) == versions.iter().flatten().next());
        let mut row = vec![
            name.clone(),
            if one_version {
                versions
                    .iter()
                    .flatten()
                    .next()
                    .cloned()
                    .unwrap_or_default()
            } else {
                "(differs)".to_string()
            },
        ];
        for c in cells {
            row.push(match c {
                Some(Cell::Wheel { version, tag, .. }) if !one_version => {
                    format!("{version} {tag}")
                }
                Some(Cell::Wheel { tag, .. }) => tag.clone(),
                Some(Cell::Missing { .. }) => "NO WHEEL FITS".to_string(),
                Some(Cell::Sdist { .. }) => "BUILT FROM SDIST".to_string(),
                None => "-".to_string(),
            });
        }
        let files: Vec<&str> = cells
            .iter()
            .map(|c| match c {
                Some(Cell::Wheel { file, .. }) => file.as_str(),
                _ => "",
            })
            .collect();
        if !files[0].is_empty() && files.iter().all(|f| *f == files[0]) {
            shared += 1;
        }
        table.push(row);
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    text.push('\n');
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text.push_str(&format!(
        "\n{shared} of {} packages use the same wheel file on every platform\n",
        rows.len()
    ));
    // Notes every platform has once, the others with their platform.
    let mut printed: Vec<&String> = Vec::new();
    for pl in plans {
        for n in &pl.notes {
            if plans.iter().all(|o| o.notes.contains(n)) {
                if !printed.contains(&n) {
                    text.push_str(&format!("note: {n}\n"));
                    printed.push(n);
                }
            } else {
                text.push_str(&format!("note ({}): {n}\n", pl.platform));
            }
        }
    }
    text
}
