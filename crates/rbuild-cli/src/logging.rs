//! Log output on stderr through `tracing`.
//!
//! Default: warnings. `-q`: errors only. `-v`: rbuild's steps and every registry request (method,
//! URL without query string, status). `-vv`: everything rbuild traces, each line with the time since start. Third-party crates stay at
//! `warn` (their debug output is not needed, and rbuild never hands them a credential in a form they
//! would print: `Authorization` values are marked sensitive).

use tracing_subscriber::EnvFilter;

use crate::cli::GlobalArgs;

/// Installs the subscriber. `RBUILD_LOG` (an `EnvFilter` directive) overrides the flags.
pub fn init(global: &GlobalArgs) {
    let rbuild_level = match (global.quiet, global.verbose) {
        (q, _) if q > 0 => "error",
        (_, 0) => "warn",
        (_, 1) => "debug",
        _ => "trace",
    };
    let others = if global.quiet > 0 { "error" } else { "warn" };
    let directives = std::env::var("RBUILD_LOG").unwrap_or_else(|_| {
        format!(
            "{others},rbuild={rbuild_level},rbuild_cli={rbuild_level},rbuild_registry={rbuild_level},rbuild_oci={rbuild_level}"
        )
    });
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(global.verbose > 1)
        .with_ansi(crate::style::enabled());
    // -vv: each line with the time since start, to see where a build spends it.
    let _ = if global.verbose > 1 {
        builder
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .try_init()
    } else {
        builder.without_time().try_init()
    };
}
