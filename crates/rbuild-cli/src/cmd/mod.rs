//! One module per subcommand; [`run`] dispatches.

pub mod attest;
pub mod build;
pub mod cache;
pub mod copy;
pub mod decisions;
pub mod inspect;
pub mod login;
pub mod recipes;

use crate::cli::{Cli, Command};

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Build(args) => build::run(&cli.global, args).await,
        Command::Plan(args) => build::run_plan(&cli.global, args).await,
        Command::Recipes(args) => recipes::run(&cli.global, args).await,
        Command::Cache(args) => cache::run(&cli.global, args).await,
        Command::Copy(args) => copy::run(&cli.global, args).await,
        Command::Inspect(args) => inspect::run(&cli.global, args).await,
        Command::Login(args) => login::run_login(&cli.global, args).await,
        Command::Logout(args) => login::run_logout(&cli.global, args).await,
        Command::Sbom(args) => attest::run_sbom(&cli.global, args).await,
        Command::Attestations(args) => attest::run_attestations(&cli.global, args).await,
        Command::Verify(args) => attest::run_verify(&cli.global, args).await,
    }
}
