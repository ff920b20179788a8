//! Error reporting and exit codes: one `error: ...` line on stderr (plus `hint:` lines), exit 1.
//! Usage errors are reported by clap with exit code 2.

use std::process::ExitCode;

/// The exit code for a failed command.
pub const FAILURE: u8 = 1;

/// The error and its causes on one line, each cause shown once; an error that lists
/// several items (missing requirements, failed platforms) keeps them on indented lines.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    let joined = parts.join(": ");
    let mut lines = joined
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty());
    let mut out = lines.next().unwrap_or_default().to_string();
    for l in lines {
        out.push_str("\n  ");
        out.push_str(l.trim_start());
    }
    out
}

/// Hints from the first error in the chain that has one.
pub fn hints(err: &anyhow::Error) -> Vec<String> {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<rbuild_registry::Error>()
            && let Some(h) = e.hint()
        {
            return vec![h];
        }
    }
    Vec::new()
}

/// Prints the error and returns the exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(err));
    for h in hints(err) {
        eprintln!("hint: {h}");
    }
    ExitCode::from(FAILURE)
}
