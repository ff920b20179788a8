//! One module per subcommand; [`run`] dispatches.

pub mod attest;
pub mod build;
pub mod cache;
pub mod copy;
pub mod decisions;
pub mod inspect;
pub mod login;
pub mod rebase;
pub mod recipes;

use crate::cli::{Cli, Command};

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Build(args) => {
            let g = g.with(&args.resolve.network, Some(&args.creds));
            build::run(&g, args).await
        }
        Command::Plan(args) => {
            let g = g.with(&args.resolve.network, None);
            build::run_plan(&g, args).await
        }
        Command::Recipes(args) => recipes::run(g, args).await,
        Command::Cache(args) => cache::run(g, args).await,
        Command::Copy(args) => copy::run(&g.with(&args.network, Some(&args.creds)), args).await,
        Command::Inspect(args) => {
            inspect::run(&g.with(&args.network, Some(&args.creds)), args).await
        }
        Command::Login(args) => login::run_login(&g.with(&args.network, None), args).await,
        Command::Logout(args) => login::run_logout(g, args).await,
        Command::Sbom(args) => {
            attest::run_sbom(&g.with(&args.network, Some(&args.creds)), args).await
        }
        Command::Attestations(args) => {
            attest::run_attestations(&g.with(&args.network, Some(&args.creds)), args).await
        }
        Command::Verify(args) => {
            attest::run_verify(&g.with(&args.network, Some(&args.creds)), args).await
        }
        Command::Rebase(args) => rebase::run(&g.with(&args.network, Some(&args.creds)), args).await,
    }
}
