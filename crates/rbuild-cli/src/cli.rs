//! The command line: global flags and the subcommand list.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use rbuild_oci::Platform;

use crate::cmd;

/// Build container images for Python applications without Docker.
#[derive(Debug, Parser)]
#[command(
    name = "rbuild",
    version,
    about,
    long_about = "Build container images for Python applications without Docker.\n\n\
rbuild reads your project's lockfile (uv.lock, pylock.toml, poetry.lock or a hashed\n\
requirements.txt), installs the exact wheels into a layer on top of a Python base image,\n\
adds your code, and pushes the image to a registry (or writes an OCI layout or a\n\
docker-archive). No daemon, no Dockerfile, the same digest for the same inputs.",
    after_help = "Examples:\n  \
rbuild build --to ghcr.io/me/app:1.0           build the project here and push it\n  \
RBUILD_TO=ghcr.io/me rbuild build              push to ghcr.io/me/<project>:latest (like ko)\n  \
rbuild build --platform linux/amd64,linux/arm64 --to registry.example/app:2\n  \
rbuild plan                                    show the target and the wheels, build nothing\n  \
rbuild login ghcr.io -u me --password-stdin    store credentials (podman's auth.json)\n\n\
Settings come from flags, then RBUILD_* variables, then [tool.rbuild] in pyproject.toml.",
    max_term_width = 100
)]
pub struct Cli {
    /// Flags every subcommand accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. (Parsed once per run, so variant sizes do not matter.)
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Build an image for the Python project in CONTEXT and push or write it.
    Build(cmd::build::BuildArgs),
    /// Show the target and the wheels a build would install, per platform.
    Plan(cmd::build::PlanArgs),
    /// List the builder recipes and what each sets.
    Recipes(cmd::recipes::RecipesArgs),
    /// Inspect or prune the content store.
    Cache(cmd::cache::CacheArgs),
    /// Copy an image (every platform of an index by default) from one registry reference to another.
    Copy(cmd::copy::CopyArgs),
    /// Show an image's manifest, platforms, layers or config.
    Inspect(cmd::inspect::InspectArgs),
    /// Store credentials for a registry (in the auth.json podman and skopeo read).
    Login(cmd::login::LoginArgs),
    /// Remove the stored credentials for a registry.
    Logout(cmd::login::LogoutArgs),
    /// Print the SBOM attached to an image (SPDX or CycloneDX JSON).
    Sbom(cmd::attest::SbomArgs),
    /// Print the in-toto statements (SLSA provenance) attached to an image, or list attachments.
    Attestations(cmd::attest::AttestationsArgs),
    /// Verify an image's cosign signature with a public key.
    Verify(cmd::attest::VerifyArgs),
    /// Swap the base layers of an image rbuild built for another base's, when safe for Python.
    Rebase(cmd::rebase::RebaseArgs),
}

/// Flags every subcommand takes (output and logging), plus the registry settings of the
/// subcommand that ran ([`NetworkArgs`], [`CredsArgs`]: only the subcommands that reach a
/// registry take those flags; [`GlobalArgs::with`] copies them in).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// `--insecure-registry` of the subcommand.
    #[arg(skip)]
    pub insecure_registry: Vec<String>,
    /// `--ca-file` of the subcommand.
    #[arg(skip)]
    pub ca_file: Vec<PathBuf>,
    /// `--creds` of the subcommand.
    #[arg(skip)]
    pub creds: Option<String>,
    /// `--timeout` (or `RBUILD_HTTP_TIMEOUT`) of the subcommand.
    #[arg(skip)]
    pub timeout: Option<std::time::Duration>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v: requests and steps, -vv: everything).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less output (-q: no progress or warnings, only results and errors).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub quiet: u8,
}

/// How to reach registries and package indexes: the flags of the subcommands that do (build,
/// plan, copy, inspect, login, sbom, attestations, verify).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Registry options")]
pub struct NetworkArgs {
    /// Allow plain HTTP to HOST[:PORT] and do not verify its TLS certificate (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Trust this CA certificate (PEM) in addition to the system store (repeatable).
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_file: Vec<PathBuf>,
    /// Give up on a registry or index request after SECS seconds without progress (no answer, or
    /// a stalled or trickling transfer; slow but steady transfers go on). Retried like other
    /// network faults. Default 30.
    #[arg(
        long,
        value_name = "SECS",
        env = "RBUILD_HTTP_TIMEOUT",
        hide_env_values = true,
        value_parser = parse_timeout
    )]
    pub timeout: Option<std::time::Duration>,
}

/// `--creds`: the flag of the subcommands that send credentials to a registry of their own
/// choosing (build, copy, inspect, sbom, attestations, verify).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Registry options")]
pub struct CredsArgs {
    /// Credentials USER:PASSWORD for the registry written to (copy: the destination; inspect,
    /// sbom, attestations, verify: the image's registry). Also: RBUILD_REGISTRY_USERNAME and
    /// RBUILD_REGISTRY_PASSWORD.
    #[arg(long, value_name = "USER:PASSWORD", hide_env_values = true)]
    pub creds: Option<String>,
}

impl GlobalArgs {
    /// These flags with the subcommand's registry settings.
    pub fn with(&self, network: &NetworkArgs, creds: Option<&CredsArgs>) -> GlobalArgs {
        GlobalArgs {
            insecure_registry: network.insecure_registry.clone(),
            ca_file: network.ca_file.clone(),
            creds: creds.and_then(|c| c.creds.clone()),
            timeout: network.timeout,
            ..self.clone()
        }
    }

    /// The HTTP time bounds `--timeout` (or `RBUILD_HTTP_TIMEOUT`) asks for.
    pub fn timeouts(&self) -> rbuild_registry::Timeouts {
        self.timeout
            .map(rbuild_registry::Timeouts::with_idle)
            .unwrap_or_default()
    }
}

fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    rbuild_registry::Timeouts::parse_env_value(s)
        .map(|t| t.idle)
        .map_err(|e| e.to_string())
}

/// `--platform os/arch[/variant]`, comma-separated or repeated.
#[derive(Debug, Args, Clone, Default)]
pub struct PlatformArgs {
    /// Platform(s) as os/arch[/variant], comma-separated or repeated (e.g. linux/amd64,linux/arm64).
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]", value_parser = parse_platforms)]
    pub platform: Vec<Vec<Platform>>,
}

impl PlatformArgs {
    /// The platforms given, in order, without duplicates; empty when none was given.
    pub fn platforms(&self) -> Vec<Platform> {
        let mut out: Vec<Platform> = Vec::new();
        for p in self.platform.iter().flatten() {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }
}

fn parse_platforms(s: &str) -> Result<Vec<Platform>, String> {
    let list = Platform::parse_list(s).map_err(|e| e.to_string())?;
    if list.is_empty() {
        return Err("expected os/arch[/variant], e.g. linux/amd64".to_string());
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn platforms_comma_separated_or_repeated() {
        let cli = Cli::try_parse_from([
            "rbuild",
            "inspect",
            "x",
            "--platform",
            "linux/amd64,linux/arm64",
            "--platform",
            "linux/arm/v7",
            "--platform",
            "linux/amd64",
        ])
        .unwrap();
        let Command::Inspect(a) = cli.command else {
            panic!()
        };
        let got: Vec<String> = a
            .platform
            .platforms()
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(got, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
        let err =
            Cli::try_parse_from(["rbuild", "inspect", "x", "--platform", "linux"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn global_flags_anywhere() {
        let cli = Cli::try_parse_from([
            "rbuild",
            "copy",
            "a",
            "b",
            "--insecure-registry",
            "h:5000",
            "-vv",
            "--json",
        ])
        .unwrap();
        assert_eq!(cli.global.verbose, 2);
        assert!(cli.global.json);
        let Command::Copy(a) = &cli.command else {
            panic!()
        };
        let g = cli.global.with(&a.network, Some(&a.creds));
        assert_eq!(g.insecure_registry, ["h:5000"]);
        assert_eq!(g.timeouts(), rbuild_registry::Timeouts::default());
    }

    #[test]
    fn subcommands_take_only_the_registry_flags_they_use() {
        // No registry: recipes, cache, logout take none of the registry flags.
        for args in [
            &["rbuild", "recipes", "--insecure-registry", "h"][..],
            &["rbuild", "cache", "info", "--ca-file", "f"],
            &["rbuild", "cache", "prune", "--timeout", "3"],
            &["rbuild", "logout", "h", "--creds", "u:p"],
            // plan writes nowhere and login takes its own credentials: no --creds.
            &["rbuild", "plan", "--creds", "u:p"],
            &["rbuild", "login", "h", "--creds", "u:p"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::UnknownArgument,
                "{args:?}"
            );
        }
        for args in [
            &[
                "rbuild",
                "plan",
                "--insecure-registry",
                "h",
                "--timeout",
                "3",
            ][..],
            &["rbuild", "login", "h", "--ca-file", "f"],
            &[
                "rbuild",
                "build",
                "--creds",
                "u:p",
                "--insecure-registry",
                "h",
            ],
            &["rbuild", "verify", "x", "--key", "k", "--creds", "u:p"],
            &["rbuild", "recipes", "--json", "-v"],
        ] {
            Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
    }

    #[test]
    fn timeout_flag() {
        let cli = Cli::try_parse_from(["rbuild", "inspect", "x", "--timeout", "2.5"]).unwrap();
        let Command::Inspect(a) = &cli.command else {
            panic!()
        };
        assert_eq!(
            cli.global.with(&a.network, Some(&a.creds)).timeouts().idle,
            std::time::Duration::from_millis(2500)
        );
        let err = Cli::try_parse_from(["rbuild", "inspect", "x", "--timeout", "0"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("RBUILD_HTTP_TIMEOUT"), "{err}");
    }
}
