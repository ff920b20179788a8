//! `rbuild`: build container images for Python applications without Docker.
//!
//! The binary is a thin shell over the rbuild libraries: each subcommand lives in its own module
//! under [`cmd`]; global flags, output, logging and error reporting are shared plumbing.

// Doc comments on the clap types are the `--help` texts users read (`HOST[:PORT]`, URLs), not
// rustdoc for Rust readers: rustdoc's link lints do not apply to them.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::bare_urls)]

mod bars;
mod cli;
mod cmd;
mod exit;
mod logging;
mod output;
mod registry;
mod style;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    let matches = cli::Cli::command()
        .color(style::clap_choice())
        .get_matches();
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    logging::init(&cli.global);
    bars::init(cli.global.quiet > 0, cli.global.json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return exit::report(&anyhow::Error::new(e).context("starting the async runtime"));
        }
    };
    let json = cli.global.json;
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                // Machines reading stdout get the failure as a document too.
                let _ = output::json_doc(exit::json_error(&e));
            }
            exit::report(&e)
        }
    }
}
