//! Colours on stderr, decided once like uv: `NO_COLOR` (non-empty) turns them off and wins over
//! everything; else `CLICOLOR_FORCE` or `FORCE_COLOR` (non-empty, not `0`) turn them on; else they
//! are on when stderr is a terminal (and `TERM` is not `dumb`).

use std::io::IsTerminal;
use std::sync::OnceLock;

static COLOR: OnceLock<bool> = OnceLock::new();

/// The decision for an environment read through `var` and a terminal or not.
pub fn decide(var: impl Fn(&str) -> Option<String>, terminal: bool) -> bool {
    let set = |k: &str| var(k).is_some_and(|v| !v.is_empty());
    let forced = |k: &str| var(k).is_some_and(|v| !v.is_empty() && v != "0");
    if set("NO_COLOR") {
        false
    } else if forced("CLICOLOR_FORCE") || forced("FORCE_COLOR") {
        true
    } else {
        terminal && var("TERM").as_deref() != Some("dumb")
    }
}

/// True when rbuild's stderr messages are coloured.
pub fn enabled() -> bool {
    *COLOR.get_or_init(|| decide(|k| std::env::var(k).ok(), std::io::stderr().is_terminal()))
}

/// The same decision for clap's own messages and help.
pub fn clap_choice() -> clap::ColorChoice {
    if enabled() {
        clap::ColorChoice::Always
    } else {
        clap::ColorChoice::Never
    }
}

fn paint(code: &str, text: &str) -> String {
    if enabled() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// `error:` in bold red.
pub fn error() -> String {
    paint("1;31", "error:")
}

/// `warning:` in bold yellow.
pub fn warning() -> String {
    paint("1;33", "warning:")
}

/// `hint:` in bold cyan.
pub fn hint() -> String {
    paint("1;36", "hint:")
}

/// `note:` in bold blue (retries, long waits).
pub fn note() -> String {
    paint("1;34", "note:")
}

/// A step name (`[linux/amd64] deps`) in bold.
pub fn bold(text: &str) -> String {
    paint("1", text)
}

#[cfg(test)]
mod tests {
    use super::decide;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(a, _)| *a == k)
                .map(|(_, b)| b.to_string())
        }
    }

    #[test]
    fn no_color_wins_then_force_then_terminal() {
        assert!(decide(env(&[]), true));
        assert!(!decide(env(&[]), false));
        assert!(!decide(env(&[("TERM", "dumb")]), true));
        assert!(!decide(env(&[("NO_COLOR", "1")]), true));
        assert!(!decide(
            env(&[("NO_COLOR", "1"), ("FORCE_COLOR", "1")]),
            false
        ));
        assert!(
            decide(env(&[("NO_COLOR", "")]), true),
            "empty NO_COLOR is unset"
        );
        assert!(decide(env(&[("CLICOLOR_FORCE", "1")]), false));
        assert!(decide(env(&[("FORCE_COLOR", "true")]), false));
        assert!(!decide(env(&[("FORCE_COLOR", "0")]), false));
    }
}
