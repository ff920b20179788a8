//! Error reporting and exit codes: one `error: ...` line on stderr (plus `hint:` lines), exit 1;
//! exit 2 for usage errors (clap's, and the settings rbuild checks before any work: a bad
//! reference, an unknown recipe, no destination, a config file of the wrong shape).

use std::process::ExitCode;

use crate::style;

/// The exit code for a failed command.
pub const FAILURE: u8 = 1;
/// The exit code for a usage error.
pub const USAGE: u8 = 2;

/// An error of the CLI's own with hints, a usage error (exit 2) or not.
#[derive(Debug)]
pub struct Hinted {
    /// The `error:` line.
    pub message: String,
    /// `hint:` lines.
    pub hints: Vec<String>,
    /// Exit 2.
    pub usage: bool,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// A usage error with hints.
pub fn usage(message: impl Into<String>, hints: &[&str]) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        message: message.into(),
        hints: hints.iter().map(|h| h.to_string()).collect(),
        usage: true,
    })
}

/// The exit code for `err`: 2 for usage errors, else 1.
pub fn code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<Hinted>().is_some_and(|h| h.usage)
            || cause.downcast_ref::<rbuild::RequestError>().is_some()
            || cause.downcast_ref::<rbuild::ConfigError>().is_some()
        {
            return USAGE;
        }
    }
    FAILURE
}

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

/// The registry error in `err`'s chain, also when a library error wraps it transparently
/// (`BuildError::Registry`, `PublishError::Registry`, which do not show it as a cause of its own).
pub fn registry_error(err: &anyhow::Error) -> Option<&rbuild_registry::Error> {
    err.chain().find_map(|cause| {
        cause
            .downcast_ref::<rbuild_registry::Error>()
            .or_else(|| match cause.downcast_ref::<rbuild::BuildError>() {
                Some(rbuild::BuildError::Registry(e)) => Some(e),
                _ => None,
            })
            .or_else(|| match cause.downcast_ref::<rbuild::PublishError>() {
                Some(rbuild::PublishError::Registry(e)) => Some(e),
                _ => None,
            })
    })
}

/// Hints from the first error in the chain that has one.
pub fn hints(err: &anyhow::Error) -> Vec<String> {
    for cause in err.chain() {
        if let Some(h) = cause.downcast_ref::<Hinted>()
            && !h.hints.is_empty()
        {
            return h.hints.clone();
        }
    }
    registry_error(err)
        .and_then(|e| e.hint())
        .into_iter()
        .collect()
}

/// The error as a JSON object for `--json` (`{"error": {"message", "causes", "hints",
/// "exit_code"}}`): what stdout carries when a command fails.
pub fn json_error(err: &anyhow::Error) -> serde_json::Value {
    let mut causes: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !causes.contains(&s) {
            causes.push(s);
        }
    }
    serde_json::json!({
        "error": {
            "message": one_line(err),
            "causes": causes,
            "hints": hints(err),
            "exit_code": code(err),
        }
    })
}

/// Prints the error and returns the exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    crate::bars::println(&format!("{} {}", style::error(), one_line(err)));
    for h in hints(err) {
        crate::bars::println(&format!("{} {h}", style::hint()));
    }
    ExitCode::from(code(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_with_their_hints() {
        let e = usage("no destination", &["pass --to REF"]).context("building");
        assert_eq!(code(&e), USAGE);
        assert_eq!(hints(&e), ["pass --to REF"]);
        assert_eq!(code(&anyhow::anyhow!("network down")), FAILURE);
    }

    #[test]
    fn a_failure_as_json_has_the_message_causes_hints_and_code() {
        let e = usage("no destination", &["pass --to REF"]).context("building");
        let v = json_error(&e);
        assert_eq!(v["error"]["message"], "building: no destination");
        assert_eq!(v["error"]["causes"][1], "no destination");
        assert_eq!(v["error"]["hints"][0], "pass --to REF");
        assert_eq!(v["error"]["exit_code"], 2);
    }
}
